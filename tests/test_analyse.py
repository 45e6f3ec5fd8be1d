"""analyse.py on small made-up runs: generated audio (really encoded and decoded), scores.csv written by the
scorer's writer and metrics.json by metrics.metrics_from_rows; the scores are chosen, the analysis is not."""

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import analyse
import antispoof.audio.decode as audio
import antispoof.reports.analysis as analysis
import antispoof.reports.attributes as attributes
from antispoof.evaluation.metrics import metrics_from_rows
from antispoof.reports.report import head_seconds
from antispoof.runs import REPORT_FILES
from antispoof.scoring.scorefile import CSV_COLUMNS, ScoreWriter
from antispoof.utils import write_json

N = 8  # files per class


def tone(seconds: float, level: float, seed: int, sr: int) -> np.ndarray:
    """A voiced-ish signal: a 180 Hz tone with harmonics and a little noise, peak about `level`."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in (1, 2, 3))
    x = x + 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (level * x / np.abs(x).max()).astype(np.float32)


def write_audio(path, x: np.ndarray, sr: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), x, sr)
    return str(path)


def write_run(
    folder, files: list[tuple[str, str, float, str | None]], n_bootstrap: int = 50, llr=None
) -> None:
    """A run folder as evaluate_custom.py leaves it: scores.csv (the scorer's writer) and metrics.json;
    `llr(score)`: the calibration a calibrated checkpoint would apply."""
    rows = []
    for path, label, score, group in files:
        p_fake = float(1 / (1 + np.exp(score)))  # any monotone stand-in; the analysis reads `score`
        rows.append(
            dict(
                path=path,
                label=label,
                score=float(score),
                p_fake=p_fake,
                status="ok",
                duration_s=sf.info(path).duration if Path(path).is_file() else 1.0,  # as the scorer records
                scored_s=1.0,
                n_windows=1,
                note="",
                group=group,
                windows=[],
            )
        )
        if llr is not None:
            rows[-1]["llr"] = float(llr(score))
    writer = ScoreWriter(folder / "scores.csv", resume=False)
    writer.write(rows)
    writer.finish(rows)
    metrics = metrics_from_rows(rows, n_bootstrap=n_bootstrap)
    metrics.update(checkpoint=f"made-up {folder.name}", data="made-up")
    write_json(folder / "metrics.json", metrics)


def scores(seed: int, shift: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping real/fake scores (AUC well above 0.5, below 1)."""
    rng = np.random.default_rng(seed)
    return rng.normal(shift / 2, 1, N), rng.normal(-shift / 2, 1, N)


def run_analyse(*argv) -> dict:
    return analyse.main(analyse.parse_args([*map(str, argv), "--workers", "1"]))


@pytest.fixture(scope="module")
def clean_audio(tmp_path_factory):
    """Real and fake files that differ in nothing the audio shows: pair i shares its waveform and format
    (half FLAC 16 kHz, half MP3 24 kHz in each class)."""
    root = tmp_path_factory.mktemp("clean")
    files = []
    for i in range(N):
        ext, sr = ("flac", 16000) if i % 2 else ("mp3", 24000)
        x = tone(0.6 + 0.1 * i, 0.1 + 0.05 * i, seed=i, sr=sr)
        for label in ("real", "fake"):
            files.append((write_audio(root / label / f"{label}_{i}.{ext}", x, sr), label))
    return files


def test_mp3_fakes_and_flac_reals_raise_the_confound_warning(tmp_path, capsys):
    real_scores, fake_scores = scores(0)
    files = []
    for i in range(N):  # same levels and lengths in both classes: only the format tells them apart
        x16, x24 = tone(0.6 + 0.1 * i, 0.3, i, 16000), tone(0.6 + 0.1 * i, 0.3, i, 24000)
        files.append(
            (write_audio(tmp_path / "data/real" / f"r{i}.flac", x16, 16000), "real", real_scores[i], None)
        )
        files.append(
            (write_audio(tmp_path / "data/fake" / f"f{i}.mp3", x24, 24000), "fake", fake_scores[i], None)
        )
    write_run(tmp_path / "run", files)

    found = run_analyse(tmp_path / "run")

    fmt = next(c for c in found["confounds"] if c["key"] == "format")
    assert fmt["warning"] and fmt["alone_auc"] == 1.0
    assert fmt["stratified_auc"] is None  # no format holds both classes: the detector cannot be checked
    assert "real files are all FLAC (pcm_16) at 16 kHz, mono; fakes are all MP3" in fmt["message"]
    assert "at 24 kHz" in fmt["message"] and "may be scoring the format" in fmt["message"]
    assert [c["key"] for c in found["confounds"] if c.get("message")] == [
        "format"
    ]  # one warning for the family
    loudness = next(c for c in found["confounds"] if c["key"] == "loudness_dbfs")
    assert not loudness["warning"]
    # every attribute is tabulated, each file in one row (no silence at all is the "< 0.05 s" bin)
    assert [b["key"] for b in found["breakdown"]] == [key for key, *_ in analysis.ATTRIBUTES]
    assert all(sum(r["n_real"] + r["n_fake"] for r in b["rows"]) == 2 * N for b in found["breakdown"])
    printed = capsys.readouterr().out
    assert "CONFOUND WARNING (format)" in printed
    assert "CONFOUND WARNING (format)" in (tmp_path / "run/report.md").read_text()


def test_a_detector_that_scores_the_format_loses_its_separation_within_formats(tmp_path):
    files = []
    for label, n_flac in (("real", N - 1), ("fake", 1)):  # 7 of 8 reals are FLAC, 7 of 8 fakes MP3
        for i in range(N):
            flac = i < n_flac
            ext, sr = ("flac", 16000) if flac else ("mp3", 24000)
            path = write_audio(tmp_path / label / f"{i}.{ext}", tone(0.6 + 0.1 * i, 0.3, i, sr), sr)
            files.append((path, label, 3.0 if flac else 0.0, None))  # the "detector" sees only the format
    write_run(tmp_path / "run", files)

    found = run_analyse(tmp_path / "run")

    fmt = next(c for c in found["confounds"] if c["key"] == "format")
    assert fmt["alone_auc"] == pytest.approx(0.875) and fmt["detector_auc"] == pytest.approx(0.875)
    assert fmt["stratified_auc"] == pytest.approx(0.5)  # within a format the scores say nothing
    assert "may be scoring the format" in fmt["message"] and "falls from 0.875 to 0.500" in fmt["message"]
    duration = next(c for c in found["confounds"] if c["key"] == "duration_s")  # same lengths in both classes
    assert not duration["warning"] and duration["stratified_auc"] == pytest.approx(0.875)


def test_clean_run_raises_neither_warning_nor_inversion(tmp_path, clean_audio, capsys):
    real_scores, fake_scores = scores(1)
    later_real, later_fake = real_scores + np.linspace(-0.3, 0.3, N), fake_scores - 0.2
    for name, (r, f) in (("before", (real_scores, fake_scores)), ("after", (later_real, later_fake))):
        it_r, it_f = iter(r), iter(f)
        write_run(
            tmp_path / name,
            [(p, lab, next(it_r) if lab == "real" else next(it_f), None) for p, lab in clean_audio],
        )

    found = run_analyse(tmp_path / "after", "--compare", tmp_path / "before")

    assert not [c for c in found["confounds"] if c["warning"]]
    assert all(c["alone_auc"] == pytest.approx(0.5) for c in found["confounds"])
    kinds = [kind for kind, _ in found["diagnosis"]]
    assert "inversion" not in kinds and "labels" not in kinds
    printed = capsys.readouterr().out
    assert "WARNING" not in printed and "inversion" not in printed


def test_label_flipped_twin_is_diagnosed_as_inversion_and_report_renders(tmp_path, clean_audio):
    real_scores, fake_scores = scores(2, shift=4.0)
    it_r, it_f = iter(real_scores), iter(fake_scores)
    files = [
        (p, lab, next(it_r) if lab == "real" else next(it_f), f"g{i % 2}")
        for i, (p, lab) in enumerate(clean_audio)
    ]
    flip = {"real": "fake", "fake": "real"}
    write_run(tmp_path / "run", files)
    write_run(tmp_path / "twin", [(p, flip[lab], s, g) for p, lab, s, g in files])

    found = run_analyse(tmp_path / "twin", "--compare", tmp_path / "run")

    kinds = dict(found["diagnosis"])
    assert "inversion" in kinds and "labels were inverted" in kinds["inversion"]
    assert kinds["labels"].startswith(f"{2 * N} of {2 * N} files")
    report = (tmp_path / "twin/report.md").read_text()
    for heading in ("## 1. Headline", "## 2. Where it fails", "## 3. Confound check", "## 4. Change from"):
        assert heading in report
    assert "Label or score inversion" in report
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"report_scores.png", "report_duration.png", "report_change.png"} <= set(images)
    for name in images:
        assert (tmp_path / "twin" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = {p.name for p in (tmp_path / "twin").glob("report_*.png")}
    assert written == set(images)  # every figure written is shown, none is missing
    names = {p.name for p in (tmp_path / "twin").iterdir()} - {"scores.csv", "metrics.json"}
    assert names == set(REPORT_FILES)  # all analyse.py writes, so a re-run of the evaluation clears it


def test_negated_shifted_and_scaled_scores_get_their_diagnoses(tmp_path, clean_audio):
    real_scores, fake_scores = scores(3, shift=4.0)
    it_r, it_f = iter(real_scores), iter(fake_scores)
    files = [(p, lab, next(it_r) if lab == "real" else next(it_f), None) for p, lab in clean_audio]
    write_run(tmp_path / "base", files)
    write_run(tmp_path / "negated", [(p, lab, -s, g) for p, lab, s, g in files])
    write_run(tmp_path / "shifted", [(p, lab, s + 5.0, g) for p, lab, s, g in files])
    write_run(tmp_path / "scaled", [(p, lab, 3.0 * s, g) for p, lab, s, g in files])

    negated = dict(run_analyse(tmp_path / "negated", "--compare", tmp_path / "base")["diagnosis"])
    shifted = dict(run_analyse(tmp_path / "shifted", "--compare", tmp_path / "base")["diagnosis"])
    scaled = dict(run_analyse(tmp_path / "scaled", "--compare", tmp_path / "base")["diagnosis"])

    assert "score direction flipped" in negated["inversion"] and "labels" not in negated
    assert list(shifted) == ["calibration"] and "every score moved by about +5.000" in shifted["calibration"]
    assert list(scaled) == ["calibration"] and "rescaled (after = 3.00 x before" in scaled["calibration"]


def test_collapse_of_one_group_is_domain_shift(tmp_path, clean_audio):
    rng = np.random.default_rng(4)
    # pairs 0-3 (MP3 and FLAC) are xtts, 4-7 vits: the group cuts across the formats
    groups = {p: ("xtts" if i // 2 < N // 2 else "vits") for i, (p, _) in enumerate(clean_audio)}
    before, after = [], []
    for p, lab in clean_audio:
        s = rng.normal(2 if lab == "real" else -2, 0.5)
        before.append((p, lab, s, groups[p] if lab == "fake" else None))
        collapsed = lab == "fake" and groups[p] == "xtts"
        after.append((p, lab, rng.normal(2, 0.5) if collapsed else s, groups[p] if lab == "fake" else None))
    write_run(tmp_path / "before", before)
    write_run(tmp_path / "after", after)

    found = run_analyse(tmp_path / "after", "--compare", tmp_path / "before")

    shifts = [text for kind, text in found["diagnosis"] if kind == "domain_shift"]
    assert shifts and "group fake/xtts collapsed" in shifts[0]
    assert not any("fake/vits" in text for text in shifts)
    pair = found["pair"]
    changed = pair["verdict_before"] != pair["verdict_after"]
    flipped = {p for p, c in zip(pair["paths"], changed, strict=True) if c}
    fakes = {p for p in flipped if "/fake/" in p}  # (reals may flip too: the EER threshold moved up)
    assert fakes and all(groups[p] == "xtts" for p in fakes)  # the collapsed fakes, no others
    report = (tmp_path / "after/report.md").read_text()
    assert f"**Verdict flips**: {len(flipped)} of the {2 * N} files both runs scored" in report


@pytest.mark.skipif("llr" not in CSV_COLUMNS, reason="scores.csv has no llr column yet (issue 12)")
def test_a_calibrated_run_is_judged_by_its_llr_verdict(tmp_path, clean_audio):
    real_scores, fake_scores = scores(5)
    it_r, it_f = iter(real_scores), iter(fake_scores)
    files = [(p, lab, next(it_r) if lab == "real" else next(it_f), None) for p, lab in clean_audio]
    write_run(tmp_path / "run", files, llr=lambda s: 2.0 * s - 1.0)

    found = run_analyse(tmp_path / "run")

    run = analysis.Run(tmp_path / "run")
    bayes = run.metrics["calibrated"]["llr_threshold"]  # about -0.64 at ASVspoof 5's operating point
    assert run.threshold == pytest.approx((bayes + 1.0) / 2.0)  # the score where 2 s - 1 reaches it
    np.testing.assert_array_equal(run.verdict_real(), 2.0 * run.scores - 1.0 >= bayes)
    assert "Bayes threshold" in found["headline"][1] and "p_fake >= 0.5" not in " ".join(found["headline"])


def test_describe_reads_format_level_and_silence(tmp_path):
    sr = 16000
    x = np.concatenate(
        [np.zeros(int(0.3 * sr)), 0.5 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr), np.zeros(int(0.5 * sr))]
    ).astype(np.float32)
    a = audio.describe(write_audio(tmp_path / "x.flac", x, sr))
    assert (a["container"], a["codec"], a["sample_rate"], a["channels"]) == ("flac", "pcm_16", 16000, 1)
    assert a["duration_s"] == pytest.approx(1.8)
    assert a["lead_silence_s"] == pytest.approx(0.3, abs=0.011)
    assert a["trail_silence_s"] == pytest.approx(0.5, abs=0.011)
    assert a["loudness_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2) * np.sqrt(1 / 1.8)), abs=0.05)
    assert audio.describe(tmp_path / "missing.wav")["error"] == "file not found"
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/bad\xff\xfe.flac")  # a name that is not UTF-8
    write_audio(Path(odd), x, sr)
    assert audio.describe(odd)["codec"] == "pcm_16"  # read by libsndfile, not the ffprobe fallback


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_describe_asks_ffprobe_for_what_libsndfile_cannot_read(tmp_path):
    wav = write_audio(tmp_path / "x.wav", tone(1.0, 0.3, 0, 22050), 22050)
    m4a = tmp_path / "x.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", wav, "-ac", "2", str(m4a)], check=True)
    a = audio.describe(m4a)
    assert (a["container"], a["codec"], a["sample_rate"], a["channels"]) == ("m4a", "aac", 22050, 2)
    assert a["error"] is None and a["loudness_dbfs"] < 0


def test_moved_audio_is_found_under_data(tmp_path):
    moved = tmp_path / "new/sample/real/x.flac"
    moved.parent.mkdir(parents=True)
    moved.write_bytes(b"")
    assert attributes.resolve("data/sample/real/x.flac", tmp_path / "new") == moved
    assert attributes.resolve("/old/home/sample/real/x.flac", tmp_path / "new/sample") == moved
    assert attributes.resolve("data/sample/real/y.flac", tmp_path / "new") == Path("data/sample/real/y.flac")


def test_duration_plot_marks_the_model_input_only_under_a_head_policy():
    """The score-vs-duration figure draws "N s model input" for a head policy only: under windows or whole
    files the model sees all of each file, and a 4.04 s line would mislead."""
    assert head_seconds("head n=64600") == pytest.approx(4.0375)
    assert head_seconds("head n=32000") == pytest.approx(2.0)
    for policy in ("windows n=64600 hop=32300", "whole max_s=600 normalize", None, ""):
        assert head_seconds(policy) is None


def read_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_compare_reads_both_run_records(tmp_path, clean_audio):
    """Issue 22 item 3 (seen failing: a 'calibration change ... re-calibrate' across AASIST and a model
    fine-tuned from AASIST-L, columns 'LA run / FoR run', advice to re-calibrate a calibrated checkpoint)."""
    import evaluate_custom_for

    real_scores, fake_scores = scores(3, shift=4.0)
    it_r, it_f = iter(real_scores), iter(fake_scores)
    files = [(p, lab, next(it_r) if lab == "real" else next(it_f), None) for p, lab in clean_audio]
    aasist = {"arch": "aasist", "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]], "gat_dims": [64, 32]}
    aasist_l = {**aasist, "filts": [70, [1, 32], [32, 32], [32, 24], [24, 24]], "gat_dims": [24, 32]}
    for name, checkpoint, config, shift in (
        ("base", "pretrained/AASIST.pth", aasist, 0.0),
        ("other", "runs/ft_from_l/best.pt", aasist_l, 5.0),
        ("tuned", "runs/ft/best.pt", aasist, 5.0),
    ):
        write_run(tmp_path / name, [(p, lab, s + shift, g) for p, lab, s, g in files])
        record = {"checkpoint": checkpoint, "arch": "aasist", "model_config": config}
        write_json(tmp_path / name / "run.json", record)
    other = run_analyse(tmp_path / "other", "--compare", tmp_path / "base")
    kinds = dict(other["diagnosis"])
    assert "models" in kinds and "calibration" not in kinds and "filts, gat_dims" in kinds["models"]
    report = (tmp_path / "other" / "report.md").read_text()
    assert "| before: AASIST.pth | after: ft_from_l/best.pt |" in report
    # One network, a calibrated later run: the diagnosis stands, and knows the calibration is there.
    metrics = read_metrics(tmp_path / "tuned")
    metrics["calibration"] = {"source": "runs/ft/best.pt", "fitted_on": "validation split", "scale": 1.0}
    write_json(tmp_path / "tuned" / "metrics.json", metrics)
    tuned = dict(run_analyse(tmp_path / "tuned", "--compare", tmp_path / "base")["diagnosis"])
    assert "its own calibration (runs/ft/best.pt" in tuned["calibration"] and "re-calibrate" not in str(tuned)
    before, after = (read_metrics(tmp_path / n) for n in ("base", "other"))
    header = evaluate_custom_for.compare(before, after)[0].splitlines()[0]
    assert "made-up base" in header and "made-up other" in header and "LA run" not in header


def test_damaged_run_files_and_audio_that_is_not_the_scored_file(tmp_path, clean_audio, capsys):
    """Issue 22 item 11 (seen failing before: a JSONDecodeError traceback for a corrupt metrics.json and for a
    corrupt attributes cache; a 48 kHz stereo file of the same name under --data described as the scored
    one)."""
    real_scores, fake_scores = scores(5)
    it_r, it_f = iter(real_scores), iter(fake_scores)
    files = [(p, lab, next(it_r) if lab == "real" else next(it_f), None) for p, lab in clean_audio]
    write_run(tmp_path / "run", files)
    run_analyse(tmp_path / "run")
    cache = tmp_path / "run" / "attributes.csv"
    with open(cache, newline="") as f:
        table = list(csv.reader(f))
    table[1][table[0].index("sample_rate")] = "16 kHz"  # an edited (or cut) cache whose stamps still match
    with open(cache, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(table)
    found = run_analyse(tmp_path / "run")  # rebuilt from the audio
    assert "is damaged" in capsys.readouterr().err and found["unreadable"] == 0
    assert (tmp_path / "run" / "attributes.csv").read_text().count("\n") == len(files) + 1
    # --data pointing at other files of the same names: the first one is 48 kHz stereo and 3 s long.
    moved = tmp_path / "run_moved"
    shutil.copytree(tmp_path / "run", moved)
    (moved / "attributes.csv").unlink()
    elsewhere = tmp_path / "elsewhere"
    first = Path(files[0][0])
    other = elsewhere / first.parent.name / first.name
    write_audio(other, np.stack([tone(3.0, 0.3, 9, 48000)] * 2, axis=1), 48000)
    rows = (moved / "scores.csv").read_text().replace(str(first.parent), "/gone/" + first.parent.name)
    (moved / "scores.csv").write_text(rows)
    found = run_analyse(moved, "--data", elsewhere)
    assert "1 file(s) found now are not the scored ones" in capsys.readouterr().err
    assert found["unreadable"] >= 1
    (tmp_path / "run" / "metrics.json").write_text("{not json")
    with pytest.raises(SystemExit, match="metrics.json cannot be read as JSON"):
        run_analyse(tmp_path / "run")


def test_a_non_monotone_attribute_is_caught_binned_and_pairs_are_counted(tmp_path):
    """Issue 22 item 2 (seen failing before: trailing silence that only fakes have in a middle range was
    tested as a monotone score, AUC ~0.5, and warned of nothing; pairs were printed as a rounded share)."""
    rng = np.random.default_rng(1)
    files = []
    for i in range(N):
        for label, silence in (("real", 0.0 if i % 2 else 1.0), ("fake", 0.1)):
            x = np.r_[tone(0.8, 0.3, i, 16000), np.zeros(int(silence * 16000), np.float32)]
            path = write_audio(tmp_path / label / f"{label}_{i}.flac", x, 16000)
            files.append((path, label, float(rng.normal()), None))
    write_run(tmp_path / "run", files)
    found = run_analyse(tmp_path / "run")
    trail = next(c for c in found["confounds"] if c["key"] == "trail_silence_s")
    assert trail["warning"] and trail["alone_auc"] == pytest.approx(1.0)
    assert "binned" in trail["direction"] and "optimistic" in trail["direction"]
    # The format test's 7 + 7 pairs that share a format are counted, and said to be too few.
    files = []
    for label, n_flac in (("real", N - 1), ("fake", 1)):
        for i in range(N):
            ext, sr = ("flac", 16000) if i < n_flac else ("mp3", 24000)
            path = write_audio(tmp_path / "f" / label / f"{i}.{ext}", tone(0.6 + 0.1 * i, 0.3, i, sr), sr)
            files.append((path, label, 3.0 if i < n_flac else 0.0, None))
    write_run(tmp_path / "run2", files)
    fmt = next(c for c in run_analyse(tmp_path / "run2")["confounds"] if c["key"] == "format")
    assert "14 real/fake pairs (8 real and 8 fake files) share a value" in fmt["message"]
    assert "not evidence either way" in fmt["message"]
