"""stress.py and antispoof/scoring/stress.py: every condition is scored through score_items (the clean rows
equal evaluate()'s scores of the same files), robustness.json / .png / report.md, the condition column in
scores.csv (old files still read; analyse.py slices a run by it), a bad file's rows, a missing encoder, the
cache reused by a second run, and --compare."""

import dataclasses
import json
import shutil

import pytest

import analyse
import stress as stress_script
from antispoof.audio import battery as cond
from antispoof.audio import battery_cache
from antispoof.audio.datasets import load_dataset
from antispoof.evaluation import calibration
from antispoof.reports.analysis import Run
from antispoof.scoring import stress
from antispoof.scoring.core import score_items
from antispoof.scoring.evaluate import evaluate
from antispoof.scoring.scorefile import CSV_COLUMNS, read_scores, write_scores
from antispoof.scoring.setup import Scorer

SHA = "0" * 64
TINY_INFO = {"source": "tiny", "arch": "ssl_aasist", "format": "reference"}
BATTERY = {c.name: c for c in cond.default_battery()}
needs_ffmpeg = pytest.mark.skipif(cond.ffmpeg_info()[0] is None, reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def four_and_a_broken(audio_dir, tmp_path_factory):
    """real/ + fake/, the two shortest files of each class, and a truncated FLAC among the fakes."""
    root = tmp_path_factory.mktemp("stress_data")
    for label in ("real", "fake"):
        (root / label).mkdir()
        files = sorted((audio_dir / "sample_custom" / label).iterdir(), key=lambda p: p.stat().st_size)
        for src in files[:2]:
            shutil.copy(src, root / label / src.name)
    shutil.copy(audio_dir / "broken" / "truncated.flac", root / "fake" / "truncated.flac")
    return root


@needs_ffmpeg
def test_stress_scores_every_condition_through_score_items(tiny, four_and_a_broken, tmp_path):
    items = load_dataset(four_and_a_broken)
    ghost = dataclasses.replace(BATTERY["mp3_32k"], name="ghost", encoder="libnot_an_encoder")
    usable, skipped = cond.available([BATTERY[n] for n in ("clean", "mp3_32k", "white_snr10")] + [ghost])
    out = tmp_path / "run"
    opts = {"batch_size": 2, "workers": 0, "device": "cpu", "progress": False}
    # The tiny model has random weights: a calibration as a checkpoint would carry it (one fitted on clean
    # is tested below), so that verdicts and their flips exist.
    cal = calibration.build(
        1.0, 0.0, policy="head n=64600", weights_sha256=SHA, score_kind="logit_real", fit={}
    )
    scorer = Scorer.for_model(tiny, TINY_INFO, device="cpu", batch_size=2, workers=0)
    result = stress.stress(
        scorer,
        items,
        out,
        conditions=usable,
        skipped_conditions=skipped,
        cache_dir=tmp_path / "cache",
        n_bootstrap=20,
        calibration=cal,
        calibration_source="the test's",
        progress=False,
    )

    rows = read_scores(out / "scores.csv")
    assert len(rows) == len(items) * 3 and [r["condition"] for r in rows[:: len(items)]] == [
        "clean",
        "mp3_32k",
        "white_snr10",
    ]
    broken = [r for r in rows if r["path"].endswith("truncated.flac")]
    assert len(broken) == 3 and all(r["status"].startswith("truncated or corrupt") for r in broken)
    # clean = the files scored exactly as evaluate_custom.py scores them (one scoring path)
    evaluate(tiny, items, tmp_path / "eval", n_bootstrap=0, plots=False, **opts)
    reference = {r["path"]: r["score"] for r in read_scores(tmp_path / "eval" / "scores.csv")}
    for r in rows:
        if r["condition"] == "clean":  # (equal up to float noise: the batches hold other files)
            assert r["score"] == pytest.approx(reference[r["path"]], abs=1e-5)
    # a condition's row is score_items' row of its conditioned audio, relabelled with the original path
    mp3 = next(r for r in rows if r["condition"] == "mp3_32k" and r["status"] == "ok")
    coded = battery_cache.cache_path(tmp_path / "cache", BATTERY["mp3_32k"], 0, cond.file_sha256(mp3["path"]))
    assert mp3["score"] == pytest.approx(score_items(tiny, [str(coded)], **opts)[0]["score"], abs=1e-5)

    on_disk = json.loads((out / "robustness.json").read_text())
    assert on_disk["skipped_conditions"] == {
        "ghost": f"this ffmpeg has no 'libnot_an_encoder' encoder ({cond.ffmpeg_info()[0]})"
    }
    assert on_disk["battery"]["ffmpeg"].startswith("ffmpeg version") and on_disk["battery"]["seed"] == 0
    assert list(on_disk["conditions"]) == ["clean", "mp3_32k", "white_snr10"]
    for name, entry in on_disk["conditions"].items():
        assert entry["n_scored"] == 4 and entry["n_skipped"] == 1
        assert {"auc", "eer", "eer_ci95", "min_dcf", "act_dcf", "act_dcf_ci95", "cllr", "flip_rate"} <= set(
            entry
        )
        assert entry["status"] in (("reference",) if name == "clean" else ("holds", "degraded", "broken"))
    assert on_disk["conditions"]["clean"]["flip_rate"] == 0.0
    assert on_disk["calibration"]["in_sample_for_clean"] is False
    assert on_disk["positive_class"].startswith("real") and result["policy"] == "head n=64600"
    assert all(w["condition"] != "clean" for w in on_disk["worst_files"])
    report = (out / "report.md").read_text()
    assert "## Robustness to the channel" in report and "ghost (this ffmpeg has no" in report
    assert (out / "robustness.png").stat().st_size > 10_000

    # analyse.py slices the run by its condition column: one condition, compared with the run's clean one
    with pytest.raises(SystemExit, match="stress-test run .*pass --condition NAME, one of clean, mp3_32k"):
        analyse.main(analyse.parse_args([str(out)]))
    argv = [str(out), "--condition", "mp3_32k", "--compare", str(out), "--workers", "1"]
    found = analyse.main(analyse.parse_args(argv))
    sliced = (out / "analysis_mp3_32k" / "report.md").read_text()
    assert "Condition `mp3_32k` of this stress-test run (MP3 (LAME) at 32 kbit/s)" in sliced
    assert "## 4. Change from" in sliced and len(found["pair"]["paths"]) == 4  # the 4 readable files, paired
    assert Run(out, "mp3_32k").metrics["eer"] == on_disk["conditions"]["mp3_32k"]["eer"]
    assert "## Robustness to the channel" in (out / "report.md").read_text()  # the run's report is kept


def test_calibration_fitted_on_clean_is_held_fixed(tiny):
    rows = [
        {"condition": c, "label": lab, "status": "ok", "score": s + shift}
        for c, shift in (("clean", 0.0), ("mp3_32k", -3.0))
        for lab, s in (("real", 2.0), ("real", 1.0), ("fake", -1.0), ("fake", -2.5))
    ]
    scorer = Scorer.for_model(tiny, TINY_INFO, device="cpu")
    cal, source = stress._fit_on_clean(rows, scorer, stress.ASVSPOOF5)
    clean_only = calibration.fit([2.0, 1.0], [-1.0, -2.5], policy="head n=64600", weights_sha256=SHA)
    assert cal["weights_sha256"] == scorer.weights_sha256() and cal["policy"] == "head n=64600"
    assert (cal["scale"], cal["offset"]) == (clean_only["scale"], clean_only["offset"])  # mp3 rows not used
    assert source == "fitted on this run's clean condition"
    assert stress._calibration_record(cal, source)["in_sample_for_clean"] is True
    inverted = [{**r, "score": -r["score"]} for r in rows]
    assert stress._fit_on_clean(inverted, scorer, stress.ASVSPOOF5) == (None, "")


def test_condition_column_is_optional_in_scores_csv(tmp_path):
    row = {"path": "a.wav", "label": "real", "score": 1.5, "status": "ok", "n_windows": 1, "windows": []}
    write_scores(tmp_path / "plain.csv", [row])
    assert (tmp_path / "plain.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)  # unchanged header
    assert "condition" not in read_scores(tmp_path / "plain.csv")[0]  # old files read as before
    write_scores(tmp_path / "stress.csv", [{**row, "condition": "mp3_32k"}])
    assert (tmp_path / "stress.csv").read_text().splitlines()[0].endswith(",condition")
    assert read_scores(tmp_path / "stress.csv")[0]["condition"] == "mp3_32k"


@needs_ffmpeg
def test_script_second_detector_reuses_the_cache_and_compare(
    tiny_checkpoint, four_and_a_broken, tmp_path, capsys
):
    def run(out, *extra):
        args = [
            "--data",
            str(four_and_a_broken),
            "--checkpoint",
            str(tiny_checkpoint),
            "--out-dir",
            str(out),
            "--conditions",
            "gain_m20db",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--encode-workers",
            "2",
            "--workers",
            "0",
            "--batch-size",
            "2",
            "--bootstrap",
            "10",
            "--limit",
            "3",
            *extra,
        ]
        return stress_script.main(stress_script.parse_args(args))

    run(tmp_path / "a", "--keep-audio")
    assert "3 computed, 0 reused" in capsys.readouterr().out  # 3 files x gain_m20db
    kept = sorted(p.relative_to(tmp_path / "a" / "audio") for p in (tmp_path / "a" / "audio").rglob("*.wav"))
    rows = read_scores(tmp_path / "a" / "scores.csv")
    assert len(kept) == sum(r["status"] == "ok" for r in rows if r["condition"] == "gain_m20db") >= 2
    assert all(p.parts[0] == "gain_m20db" and p.parts[1] in ("real", "fake") for p in kept)
    run(tmp_path / "b")
    printed = capsys.readouterr().out
    assert "0 computed, 3 reused" in printed and "took" in printed  # a bad file's reason is reused too
    compare = ["--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out-dir", str(tmp_path / "ab")]
    comparison = stress_script.main(stress_script.parse_args(compare))
    assert comparison["conditions"]["gain_m20db"]["eer_difference"] == 0.0  # same detector, same audio
    assert (tmp_path / "ab" / "robustness_compare.png").exists()
    assert "| gain_m20db |" in (tmp_path / "ab" / "robustness_compare.md").read_text()
    # runs of another seed do not hold the same audio: refused
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    result = json.loads((tmp_path / "c" / "robustness.json").read_text())
    result["battery"]["seed"] = 1
    (tmp_path / "c" / "robustness.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit, match="different batteries \\(seed 0 vs 1\\)"):
        stress_script.main(stress_script.parse_args([*compare[:2], str(tmp_path / "c"), *compare[3:]]))
