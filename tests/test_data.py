"""data.py: every dataset layout, built as a small fixture from ../shared/audio, parses with its labels."""

import csv
from pathlib import Path

import pytest
import soundfile as sf

from antispoof.audio.datasets import (
    FORMATS,
    Item,
    detect_format,
    list_audio_files,
    load_dataset,
    normalize_label,
)


@pytest.fixture(scope="module")
def clips(audio_dir):
    """Two real and two fake (path, label) pairs from the shared sample."""
    real = sorted((audio_dir / "sample_custom" / "real").glob("*.flac"))[:2]
    fake = sorted((audio_dir / "sample_custom" / "fake").glob("*.wav"))[:2]
    return [(p, "real") for p in real] + [(p, "fake") for p in fake]


def write_clip(src: Path, dst: Path) -> Path:
    """Re-encode `src` (first second) to `dst`, in the format its suffix names, with soundfile."""
    x, sr = sf.read(src, frames=16000)
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, x, sr)
    return dst


def labels_by_name(items):
    return {Path(i.path).stem: i.label for i in items}


def test_folder_any_depth_and_format(tmp_path, clips):
    (r1, _), (r2, _), (f1, _), (f2, _) = clips
    write_clip(r1, tmp_path / "real" / "a.flac")
    write_clip(r2, tmp_path / "real" / "spk1" / "deep" / "b.ogg")
    write_clip(f1, tmp_path / "fake" / "c.wav")
    write_clip(f2, tmp_path / "Fake" / "tts" / "d.wav")
    (tmp_path / "real" / "notes.txt").write_text("not audio")
    assert detect_format(tmp_path) == "folder"
    items = load_dataset(tmp_path)
    assert labels_by_name(items) == {"a": "real", "b": "real", "c": "fake", "d": "fake"}
    # The sub-folder right below real/ or fake/ names the group (generator, corpus) for the breakdown.
    assert {Path(i.path).stem: i.group for i in items} == {"a": None, "b": "spk1", "c": None, "d": "tts"}


def test_shared_sample_custom(audio_dir):
    items = load_dataset(audio_dir / "sample_custom")
    assert len(items) == 40
    assert sum(i.label == "real" for i in items) == 20
    # Labels agree with the sample's own labels.csv.
    with open(audio_dir / "labels.csv") as f:
        truth = {Path(r["path"]).stem: r["label"] for r in csv.DictReader(f)}
    assert labels_by_name(items) == truth


def test_fake_or_real_splits(tmp_path, clips):
    for split in ("training", "validation", "testing"):
        for k, (src, label) in enumerate(clips):
            write_clip(src, tmp_path / split / label / f"{split}_{k}.wav")
    assert detect_format(tmp_path) == "for"
    test = load_dataset(tmp_path)  # default split: testing
    assert {Path(i.path).parent.parent.name for i in test} == {"testing"}
    assert len(test) == 4 and sorted(i.label for i in test) == ["fake", "fake", "real", "real"]
    train = load_dataset(tmp_path, "for", split="training")
    assert all("/training/" in i.path for i in train)
    with pytest.raises(ValueError, match="training, validation, testing"):
        load_dataset(tmp_path, "for", split="dev")


def test_asvspoof2019_protocol(tmp_path, clips):
    protocols = tmp_path / "LA" / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    lines = []
    for k, (src, label) in enumerate(clips):
        utt = f"LA_E_{1000 + k}"
        write_clip(src, tmp_path / "LA" / "ASVspoof2019_LA_eval" / "flac" / f"{utt}.flac")
        key = "bonafide" if label == "real" else "spoof"
        lines.append(f"LA_0039 {utt} - {'-' if label == 'real' else 'A11'} {key}")
    (protocols / "ASVspoof2019.LA.cm.eval.trl.txt").write_text("\n".join(lines) + "\n")
    (protocols / "ASVspoof2019.LA.cm.train.trn.txt").write_text(lines[0] + "\n")
    root = tmp_path / "LA"
    assert detect_format(root) == "asvspoof2019"
    items = load_dataset(root)
    assert [i.label for i in items] == [label for _, label in clips]
    assert [i.group for i in items] == [None if label == "real" else "A11" for _, label in clips]
    assert all(Path(i.path).exists() for i in items)
    assert len(load_dataset(root, "asvspoof2019", split="train")) == 1


def test_asvspoof2021_keys_keep_eval_phase_only(tmp_path, clips):
    keys = tmp_path / "keys" / "CM"
    keys.mkdir(parents=True)
    lines = []
    for k, (src, label) in enumerate(clips):
        trial = f"DF_E_{2000 + k}"
        part = f"ASVspoof2021_DF_eval_part0{k % 2}"  # the DF audio comes in parts; found in either
        write_clip(src, tmp_path / part / "flac" / f"{trial}.flac")
        key = "bonafide" if label == "real" else "spoof"
        phase = "progress" if k == 0 else "eval"  # DF rows carry extra columns after the phase
        lines.append(f"LA_0043 {trial} mp3m4a asvspoof A09 {key} notrim {phase} traditional_vocoder - - - -")
    (keys / "trial_metadata.txt").write_text("\n".join(lines) + "\n")
    assert detect_format(tmp_path) == "asvspoof2021"
    items = load_dataset(tmp_path)
    assert [Path(i.path).stem for i in items] == ["DF_E_2001", "DF_E_2002", "DF_E_2003"]
    assert [i.label for i in items] == ["real", "fake", "fake"]
    assert [i.group for i in items] == [None, "A09", "A09"]  # the attack, for fakes only
    assert all(Path(i.path).exists() for i in items)
    assert len(load_dataset(tmp_path, split="progress")) == 1


def test_in_the_wild_meta_csv(tmp_path, clips):
    rows = ["file,speaker,label"]
    for k, (src, label) in enumerate(clips):
        write_clip(src, tmp_path / f"{k}.wav")
        rows.append(f"{k}.wav,Speaker {k},{'bona-fide' if label == 'real' else 'spoof'}")
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    assert detect_format(tmp_path) == "in_the_wild"
    items = load_dataset(tmp_path)
    assert [i.label for i in items] == [label for _, label in clips]
    assert all(Path(i.path).exists() for i in items)
    assert load_dataset(tmp_path / "meta.csv") == items  # the meta.csv file itself works too


def test_csv_path_label(tmp_path, clips):
    rows = ["path,label,group"]
    for k, (src, label) in enumerate(clips):
        write_clip(src, tmp_path / "audio" / f"{k}.flac")
        rows.append(f"audio/{k}.flac,{label},{'' if label == 'real' else 'tts-' + str(k)}")
    rows.append(f"{clips[0][0]},real,")  # an absolute path stays as it is
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    assert detect_format(tmp_path / "list.csv") == "csv"
    items = load_dataset(tmp_path / "list.csv")
    assert items[0] == Item(str(tmp_path / "audio" / "0.flac"), "real")
    assert items[-1] == Item(str(clips[0][0]), "real")
    assert [i.label for i in items[:4]] == [label for _, label in clips]
    assert [i.group for i in items[:4]] == [
        None if lab == "real" else f"tts-{k}" for k, (_, lab) in enumerate(clips)
    ]


def test_bad_inputs_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--format"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown format"):
        load_dataset(tmp_path, format="librispeech")
    (tmp_path / "bad.csv").write_text("file,kind\na.wav,real\n")
    with pytest.raises(ValueError, match="'path' and 'label'"):
        load_dataset(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="unknown label"):
        normalize_label("1")


def test_label_spellings():
    assert [normalize_label(s) for s in ("bonafide", "Bona-fide", "REAL", "spoof", "fake")] == [
        "real", "real", "real", "fake", "fake",
    ]  # fmt: skip
    assert set(FORMATS) == {"folder", "for", "asvspoof2019", "asvspoof2021", "in_the_wild", "csv"}


def test_list_audio_files(tmp_path, audio_dir):
    real = audio_dir / "sample_custom" / "real"
    one = sorted(real.glob("*.flac"))[0]
    (tmp_path / "list.txt").write_text(f"# files to score\n{one}\n")
    found = list_audio_files([real, str(audio_dir / "sample_custom" / "fake" / "espeak_0*.wav"), one])
    assert len(found) == 29 and found.count(str(one)) == 1  # 20 real + espeak_01..09, duplicates dropped
    assert list_audio_files([tmp_path / "list.txt"]) == [str(one)]
    with pytest.raises(FileNotFoundError):
        list_audio_files([tmp_path / "nope.wav"])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        list_audio_files([str(tmp_path / "*.flac")])


def test_globs_over_link_loops_end_and_list_each_file_once(tmp_path):
    """Issue 22 item 8 (seen failing before: with `up -> ..` and `self -> .` the glob did not end within
    the 60 s limit; with `up` alone, one file came back under 41 names)."""
    import os
    import subprocess
    import sys

    (tmp_path / "g" / "a").mkdir(parents=True)
    for name in ("g/a/x.wav", "g/b.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    os.symlink("..", tmp_path / "g" / "a" / "up")
    code = "import sys; from antispoof.audio.datasets import list_audio_files as f; print(f(sys.argv[1:]))"
    repo = Path(__file__).resolve().parents[1]

    def expand(*specs):
        env = {**os.environ, "PYTHONPATH": str(repo)}
        command = [sys.executable, "-c", code, *specs]
        out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        return eval(out.stdout), out.stderr

    assert expand("g/**/*.wav")[0] == ["g/a/x.wav", "g/b.wav"]
    os.symlink(".", tmp_path / "g" / "a" / "self")
    found, notes = expand("g/**/*.wav")
    assert found == ["g/a/x.wav", "g/b.wav"] and "already read; skipped" in notes
    # One file under several names (a path through `..`, a link to it) is listed once, by its first name.
    os.symlink("b.wav", tmp_path / "g" / "same.wav")
    assert expand("g/b.wav", "g/a/../b.wav", "g/same.wav", "g/a/up/b.wav")[0] == ["g/b.wav"]


def test_csv_refuses_one_file_under_two_names_and_a_repeated_column(tmp_path):
    """Issue 22 item 9 (seen failing before: both CSVs were accepted, one audio counted in both classes,
    and 'path,label,label' took the last label column)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.flac").write_bytes(b"fLaC")
    (tmp_path / "twice.csv").write_text("path,label\nreal/a.flac,real\nreal/../real/a.flac,fake\n")
    with pytest.raises(ValueError, match=r"twice.csv:3: real/../real/a.flac is the same file as real/a.flac "
                                         r"\(first on line 2\)"):  # fmt: skip
        load_dataset(tmp_path / "twice.csv")
    (tmp_path / "columns.csv").write_text("path,label,label\nreal/a.flac,real,fake\n")
    with pytest.raises(ValueError, match="columns.csv:1: the header names 'label' more than once"):
        load_dataset(tmp_path / "columns.csv")
