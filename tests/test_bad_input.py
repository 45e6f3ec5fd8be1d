"""Hostile inputs (issue 10): names that are not UTF-8, symlinked folders, truncated WAVs, odd CSVs, odd
paths, unusable calibration values. Each test failed before its fix."""

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import evaluate_custom
import score
from antispoof.audio.datasets import list_audio_files, load_dataset
from antispoof.checkpoints.files import save_checkpoint
from antispoof.scoring.core import score_items
from antispoof.scoring.scorefile import read_scores

BAD_NAME = b"bad\xff\xfe.flac"  # not UTF-8: os.listdir returns it with surrogateescape code points


@pytest.fixture(scope="module")
def real_file(audio_dir) -> Path:
    return audio_dir / "sample_custom" / "real" / "118-121721-0000.flac"


@pytest.fixture(scope="module")
def fake_file(audio_dir) -> Path:
    return audio_dir / "sample_custom" / "fake" / "espeak_01.wav"


@pytest.fixture
def bad_name_data(tmp_path, real_file, fake_file) -> Path:
    """real/bad\\xff\\xfe.flac + fake/espeak_01.wav."""
    root = tmp_path / "data"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copy(real_file, os.path.join(os.fsencode(root / "real"), BAD_NAME))
    shutil.copy(fake_file, root / "fake" / fake_file.name)
    return root


def run_score(argv: list[str], capsys) -> tuple[int, str, str]:
    status = score.main(score.parse_args([*argv, "--workers", "0", "--device", "cpu"]))
    out, err = capsys.readouterr()
    return status, out, err


# --- item 4: any name the filesystem allows round-trips --------------------------------------------------


def test_non_utf8_name_round_trips_through_scores_csv_and_resume(tiny, bad_name_data, tmp_path):
    items = load_dataset(bad_name_data)
    out_csv = tmp_path / "run" / "scores.csv"
    rows = score_items(tiny, items, out_csv=out_csv, workers=0, progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert os.fsencode(rows[1]["path"]).endswith(b"/real/" + BAD_NAME)
    assert b"/real/" + BAD_NAME + b"," in out_csv.read_bytes()  # the name's own bytes
    assert read_scores(out_csv) == rows
    again = score_items(tiny, items, out_csv=out_csv, workers=0, progress=False, resume=True)
    assert again == rows  # every row was found again under its name: nothing rescored


def test_non_utf8_name_round_trips_through_score_py_outputs(tiny_checkpoint, bad_name_data, tmp_path, capsys):
    bad = os.fsdecode(os.path.join(os.fsencode(bad_name_data / "real"), BAD_NAME))
    argv = [str(bad_name_data / "real"), "--checkpoint", str(tiny_checkpoint)]
    status, _, _ = run_score([*argv, "--output-format", "csv", "--output", str(tmp_path / "s.csv")], capsys)
    assert status == score.EXIT_OK
    with open(tmp_path / "s.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        assert [r["path"] for r in csv.DictReader(f)] == [bad]
    status, _, _ = run_score([*argv, "--output-format", "json", "--output", str(tmp_path / "s.json")], capsys)
    assert json.loads((tmp_path / "s.json").read_text())["files"][0]["path"] == bad  # \udcff escapes


def test_non_utf8_name_is_printed_as_its_bytes(tiny_checkpoint, bad_name_data, capsysbinary):
    argv = [str(bad_name_data / "real"), "--checkpoint", str(tiny_checkpoint), "--workers", "0"]
    status = score.main(score.parse_args(argv))  # the table on stdout
    assert status == score.EXIT_OK
    assert b"/real/" + BAD_NAME in capsysbinary.readouterr().out


# --- item 8: an unusable calibration value is refused, never turned into verdicts or NaN JSON ----------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_calibration_is_refused(tiny, real_file, tmp_path, capsys, value):
    import antispoof.evaluation.calibration as calibration
    from antispoof.checkpoints.files import weights_sha256

    cal = calibration.fit([1.0, 2.0], [-1.0, 0.5], policy="head n=64600", weights_sha256=weights_sha256(tiny))
    checkpoint = tmp_path / "nan.pt"
    save_checkpoint(checkpoint, tiny, calibration={**cal, "scale": value})
    argv = [str(real_file), "--checkpoint", str(checkpoint), "--output-format", "json"]
    status, out, err = run_score(argv, capsys)
    assert status == score.EXIT_NONE_SCORED
    assert "scale must be a finite number" in err and "calibrate.py" in err
    assert "Traceback" not in err and out == ""


def test_non_finite_threshold_flag_is_refused(real_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        score.parse_args([str(real_file), "--threshold", "nan"])
    assert exit_info.value.code == 2 and "nan is not a finite number" in capsys.readouterr().err


# --- item 6: a WAV shorter than its header says is rejected, not scored as complete ----------------------


def wav_with_data_size(src: Path, dst: Path, keep: float, data_size: int | None = None) -> Path:
    """`src` (a 44-byte-header WAV) cut to `keep` of its bytes, its data size field optionally set."""
    raw = bytearray(src.read_bytes())
    at = raw.index(b"data")
    if data_size is not None:
        raw[at + 4 : at + 8] = data_size.to_bytes(4, "little")
    dst.write_bytes(bytes(raw[: int(len(raw) * keep)]))
    return dst


@pytest.mark.parametrize(
    "keep, data_size, declared",
    [(0.5, None, "2.61 s"), (1.0, 0xFFFFFFF0, "134217.73 s")],  # half the data missing; a 4 GB header
)
def test_truncated_wav_is_rejected_with_its_reason(fake_file, tmp_path, keep, data_size, declared):
    path = wav_with_data_size(fake_file, tmp_path / "cut.wav", keep, data_size)
    (row,) = score_items(torch.nn.Identity(), [str(path)], workers=0, progress=False)
    assert row["status"].startswith("truncated or corrupt: the WAV header declares " + declared)
    assert row["score"] is None


def test_streamed_wav_without_a_length_is_scored_with_a_note(fake_file, tmp_path):
    path = wav_with_data_size(fake_file, tmp_path / "streamed.wav", 1.0, 0xFFFFFFFF)
    linear = torch.nn.Linear(64600, 2)  # any model: the point is what reaches it
    (row,) = score_items(linear, [str(path)], workers=0, progress=False)
    assert row["status"] == "ok" and row["duration_s"] == pytest.approx(2.614, abs=1e-3)
    assert "WAV header without the audio length" in row["note"]


# --- item 5: symbolic links to folders are followed, loops read once ------------------------------------


def test_symlinked_class_folders_and_sub_folders_are_followed(real_file, fake_file, tmp_path, capsys):
    store = tmp_path / "store"  # where the audio really is
    (store / "speakers").mkdir(parents=True)
    (store / "tts").mkdir()
    shutil.copy(real_file, store / "speakers" / "r.flac")
    shutil.copy(fake_file, store / "tts" / "f.wav")
    (store / "tts" / "loop").symlink_to(store / "tts")  # a link back to its own folder
    data = tmp_path / "data"
    (data / "fake").mkdir(parents=True)
    (data / "real").symlink_to(store / "speakers")  # a class folder that is a link
    (data / "fake" / "gen").symlink_to(store / "tts")  # a generator sub-folder that is a link
    (data / "fake" / "gone.wav").symlink_to(tmp_path / "deleted.wav")  # dangling

    items = load_dataset(data)
    assert [(Path(i.path).relative_to(data).as_posix(), i.label, i.group) for i in items] == [
        ("fake/gen/f.wav", "fake", "gen"),
        ("fake/gone.wav", "fake", None),
        ("real/r.flac", "real", None),
    ]
    assert "fake/gen/loop is a link to" in capsys.readouterr().err
    assert list_audio_files([data / "real"]) == [str(data / "real" / "r.flac")]
    (row,) = score_items(torch.nn.Identity(), [items[1]], workers=0, progress=False)
    assert row["status"] == "file not found"


# --- item 9: CSV layouts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Path,Label", "path, label", " PATH ,  Label ", "\ufeffpath,label"])
def test_csv_header_variants_are_accepted(tmp_path, header):
    (tmp_path / "list.csv").write_text(f"{header}\nreal/a.wav, real\n\nfake/b.wav,Spoof \n", encoding="utf-8")
    items = load_dataset(tmp_path / "list.csv")
    assert [(Path(i.path).relative_to(tmp_path).as_posix(), i.label) for i in items] == [
        ("real/a.wav", "real"),
        ("fake/b.wav", "fake"),
    ]


def test_csv_bad_rows_each_get_one_message_and_no_traceback(tmp_path, capsys):
    rows = [
        "path,label",
        "a.wav,real",
        "b.wav,",
        "fake/./a2.wav,fake",
        "fake/a2.wav,fake",
        "c.wav,maybe",
        ",real",
    ]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError) as err:
        load_dataset(tmp_path / "list.csv")
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"4 bad row(s) in {tmp_path / 'list.csv'}")
    assert lines[1:] == [
        f"  {tmp_path / 'list.csv'}:3: b.wav has an empty label (use real or fake)",
        f"  {tmp_path / 'list.csv'}:5: fake/a2.wav is listed again (first on line 4)",
        f"  {tmp_path / 'list.csv'}:6: unknown label 'maybe': use 'real' or 'fake' (or bonafide/spoof)",
        f"  {tmp_path / 'list.csv'}:7: empty path cell",
    ]
    argv = ["--data", str(tmp_path / "list.csv"), "--out-dir", str(tmp_path / "run"), "--checkpoint", "x"]
    with pytest.raises(SystemExit, match="error: 4 bad row"):
        evaluate_custom.main(evaluate_custom.parse_args(argv))


# --- item 10: one spelling per file; lists from stdin -------------------------------------------------------


def test_paths_are_normalised_so_a_file_is_listed_once(fake_file, tmp_path, monkeypatch):
    (tmp_path / "fake").mkdir()
    shutil.copy(fake_file, tmp_path / "fake" / "x.wav")
    monkeypatch.chdir(tmp_path)
    assert list_audio_files(["fake/./x.wav", "fake/x.wav", "./fake//x.wav", "fake"]) == ["fake/x.wav"]


def test_score_py_reads_a_list_of_paths_from_stdin(tiny_checkpoint, audio_dir, tmp_path, monkeypatch, capsys):
    broken = audio_dir / "broken"
    listing = f"# from find\n{broken / 'empty_0_bytes.wav'}\n\n{broken / 'text_not_audio.mp3'}\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(listing.encode())))
    status, out, _ = run_score(["-", "--checkpoint", str(tiny_checkpoint), "--output-format", "csv"], capsys)
    assert (
        status == score.EXIT_NONE_SCORED
    )  # both are unreadable: the point is that both were read from stdin
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(Path(r["path"]).name, r["reason"][:5]) for r in rows] == [
        ("empty_0_bytes.wav", "empty"),
        ("text_not_audio.mp3", "not a"),
    ]


def test_app_error_text_shows_no_server_paths(real_file, tmp_path):
    import app  # gradio: imported here, only for this test

    secret = tmp_path / "srv" / "models"
    secret.mkdir(parents=True)
    (secret / "broken.pt").write_bytes(b"not a checkpoint")
    detector = app.Detector({"broken.pt": str(secret / "broken.pt")}, device="cpu")
    status, *_ = app.check_upload(detector, str(real_file), "broken.pt", max_mb=50, max_seconds=60)
    assert status.startswith("**Error:** Could not load checkpoint 'broken.pt': broken.pt cannot be read")
    assert str(tmp_path) not in status and "/srv/" not in status
    upload = "/tmp/gradio/4f2a/clip.m4a"
    message = f"decoding failed: CalledProcessError: ffmpeg -i '{upload}' returned 1; ratio 64600/16000"
    assert app.public_message(message, detector, None) == (
        "decoding failed: CalledProcessError: ffmpeg -i 'clip.m4a' returned 1; ratio 64600/16000"
    )
