"""scoring.py, evaluate_custom.py, evaluate_custom_for.py: broken files, metrics.json, reference scores, the
polarity guard, windows, a real kill + --resume, and 2-process torchrun == 1 process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import evaluate_custom
import evaluate_custom_for
from antispoof.audio.datasets import Item, load_dataset
from antispoof.checkpoints.files import load_model
from antispoof.evaluation.metrics import (
    compute_act_dcf,
    compute_cllr,
    compute_eer,
    compute_min_cllr,
    compute_min_dcf,
    metrics_by_group,
)
from antispoof.networks import InputPolicy
from antispoof.scoring.core import score_items
from antispoof.scoring.evaluate import evaluate
from antispoof.scoring.scorefile import CSV_COLUMNS, ScoreWriter, read_scores
from antispoof.utils import init_wandb

REPO = Path(__file__).resolve().parents[1]
BROKEN_REASONS = {
    "empty_0_bytes.wav": "empty file",
    "text_not_audio.mp3": "not a decodable audio file",
    "truncated.flac": "truncated or corrupt",
    "too_short_0.05s.wav": "too short",
}
METRIC_KEYS = {
    "auc",
    "eer",
    "eer_threshold",
    "auc_ci95",
    "eer_ci95",
    "n_real",
    "n_fake",
    "n_skipped",
    "positive_class",
    "score_direction",
    "polarity_warning",
    "skipped_reasons",
}


@pytest.fixture(scope="module")
def six_files(audio_dir, tmp_path_factory):
    """real/ + fake/ folder, 3 files each."""
    root = tmp_path_factory.mktemp("six")
    for label in ("real", "fake"):
        (root / label).mkdir()
        for src in sorted((audio_dir / "sample_custom" / label).iterdir())[:3]:
            shutil.copy(src, root / label / src.name)
    return root


def cli_args(data, checkpoint, out_dir, *extra):
    return [
        "--data",
        str(data),
        "--checkpoint",
        str(checkpoint),
        "--out-dir",
        str(out_dir),
        "--batch-size",
        "1",
        "--workers",
        "0",
        "--bootstrap",
        "20",
        "--wandb",
        "disabled",
        *extra,
    ]


def data_rows(csv_path: Path) -> int:
    return max(0, csv_path.read_text().count("\n") - 1) if csv_path.exists() else 0


def test_every_broken_file_gets_its_reason_and_the_run_still_gives_metrics(tiny, audio_dir, tmp_path, capsys):
    data = tmp_path / "data"
    for label in ("real", "fake"):
        (data / label).mkdir(parents=True)
        for src in sorted((audio_dir / "sample_custom" / label).iterdir())[:2]:
            shutil.copy(src, data / label / src.name)
    shutil.copytree(audio_dir / "broken", data / "fake" / "broken")
    out = tmp_path / "run"
    run = init_wandb("ssl-aasist-test", out, {"test": True}, mode="offline")
    metrics = evaluate(tiny, load_dataset(data), out, batch_size=4, workers=2, n_bootstrap=50, wandb_run=run)
    run.finish()

    rows = {Path(r["path"]).name: r for r in read_scores(out / "scores.csv")}
    assert len(rows) == 13
    for name, reason in BROKEN_REASONS.items():
        assert reason in rows[name]["status"] and rows[name]["score"] is None
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert len(ok) == 9 and all(np.isfinite(r["score"]) and 0 <= r["p_fake"] <= 1 for r in ok)
    assert rows["long_70s.wav"]["note"].startswith("cropped: scored the first 4.04 s of 70.00 s")
    assert rows["long_70s.wav"]["duration_s"] == pytest.approx(70.0)
    assert "silent" in rows["silent_5s.wav"]["note"]

    saved = json.loads((out / "metrics.json").read_text())
    assert METRIC_KEYS <= set(saved) and saved == metrics
    assert (saved["n_real"], saved["n_fake"], saved["n_skipped"]) == (2, 7, 4)
    assert sum(saved["skipped_reasons"].values()) == 4
    assert saved["auc_ci95"][0] <= saved["auc"] <= saved["auc_ci95"][1]
    for png in ("roc.png", "det.png", "score_hist.png", "reliability.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (out / "scores.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert "4 skipped" in capsys.readouterr().out
    (wandb_dir,) = (out / "wandb").glob("offline-run-*")  # metrics, the four plots and the score table
    media = wandb_dir / "files" / "media"
    assert len(list((media / "images").rglob("*.png"))) == 4
    assert list((media / "table").rglob("*.table.json"))


def test_reference_score_and_polarity_guard_with_aasist(golden, audio_dir, tmp_path, capsys):
    model, _ = load_model(golden / "aasist" / "AASIST.pth")
    real = audio_dir / "sample_custom" / "real"
    fake = audio_dir / "sample_custom" / "fake"
    # Inverted labels: the real recordings are called fake and the TTS file real.
    items = [
        Item(str(real / "118-121721-0000.flac"), "fake"),
        Item(str(real / "1183-124566-0000.flac"), "fake"),
        Item(str(fake / "espeak_01.wav"), "real"),
    ]
    metrics = evaluate(model, items, tmp_path, n_bootstrap=0, plots=False, workers=0)
    # The pipeline reproduces clovaai's own score for this file (golden row 1, the same recording).
    golden_score = torch.load(golden / "aasist" / "outputs.pt", weights_only=True)["AASIST"]["score"][1]
    assert read_scores(tmp_path / "scores.csv")[0]["score"] == pytest.approx(float(golden_score), abs=1e-4)
    assert metrics["auc"] == 0.0
    assert "inverted" in metrics["polarity_warning"]
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["polarity_warning"] == metrics["polarity_warning"]
    )
    assert "POLARITY WARNING" in capsys.readouterr().err


def test_windows_cover_long_files_and_aggregate_by_mean_logit(tiny, audio_dir, tmp_path):
    item = Item(str(audio_dir / "broken" / "long_70s.wav"), None)  # unlabelled, as score.py passes them
    windows = InputPolicy("windows", max_seconds=12.0)
    (row,) = score_items(tiny, [item], policy=windows, out_csv=tmp_path / "s.csv", workers=0)
    assert row["status"] == "ok" and row["n_windows"] == 5
    starts = [w["start"] for w in row["windows"]]
    assert starts == pytest.approx([0.0, 2.01875, 4.0375, 6.05625, 12.0 - 64600 / 16000])
    # Mean of the logits: the file's score is the mean of the window scores.
    assert row["score"] == pytest.approx(np.mean([w["score"] for w in row["windows"]]), abs=1e-5)
    assert "only the first 12.0 s of 70.0 s" in row["note"]
    (back,) = read_scores(tmp_path / "s.csv")
    assert back == row


def test_bf16_autocast_on_cpu_stays_close(tiny, audio_dir):
    items = [Item(str(audio_dir / "broken" / "mono_8k.wav"))]
    fp32 = score_items(tiny, items, workers=0, amp="fp32", progress=False)[0]["score"]
    bf16 = score_items(tiny, items, workers=0, amp="bf16", progress=False)[0]["score"]
    assert np.isfinite(bf16) and abs(bf16 - fp32) < 0.5


def test_half_written_row_is_dropped_on_resume(tmp_path):
    path = tmp_path / "scores.csv"
    ok_row = {
        "path": "a.wav",
        "label": "real",
        "score": 1.5,
        "p_fake": 0.25,
        "status": "ok",
        "duration_s": 2.0,
        "scored_s": 2.0,
        "n_windows": 1,
        "note": "",
        "windows": [],
    }
    writer = ScoreWriter(path, resume=False)
    writer.write([ok_row])
    writer._file.write("b.wav,fake,-0.3")  # a kill in the middle of a row
    writer._file.close()
    assert [r["path"] for r in read_scores(path)] == ["a.wav"]
    assert list(ScoreWriter(path, resume=True).done) == ["a.wav"]
    assert path.read_text().endswith("\n") and "b.wav" not in path.read_text()


@pytest.fixture(scope="module")
def uninterrupted(six_files, tiny_checkpoint, tmp_path_factory):
    """evaluate_custom.py run once, start to end (the reference for the resume and torchrun tests)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    evaluate_custom.main(evaluate_custom.parse_args(cli_args(six_files, tiny_checkpoint, out)))
    return out


def test_killed_then_resumed_equals_uninterrupted(six_files, tiny_checkpoint, uninterrupted, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "evaluate_custom.py", *cli_args(six_files, tiny_checkpoint, out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while data_rows(out / "scores.csv") < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    n_before = len(read_scores(out / "scores.csv"))
    assert 2 <= n_before < 6, f"the run was to be killed part-way, but {n_before} of 6 rows were written"
    assert not (out / "metrics.json").exists()

    evaluate_custom.main(evaluate_custom.parse_args(cli_args(six_files, tiny_checkpoint, out, "--resume")))
    assert (out / "scores.csv").read_text() == (uninterrupted / "scores.csv").read_text()
    resumed, full = (json.loads((d / "metrics.json").read_text()) for d in (out, uninterrupted))
    for m in (resumed, full):
        m.pop("scoring_seconds")
    assert resumed == full


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_processes_equal_one(six_files, tiny_checkpoint, uninterrupted, tmp_path):
    out = tmp_path / "ddp"
    cmd = [
        "torchrun",
        "--standalone",
        "--nproc_per_node",
        "2",
        "evaluate_custom.py",
        *cli_args(six_files, tiny_checkpoint, out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ddp, single = read_scores(out / "scores.csv"), read_scores(uninterrupted / "scores.csv")
    assert [(r["path"], r["label"], r["status"]) for r in ddp] == [
        (r["path"], r["label"], r["status"]) for r in single
    ]
    # Each file scored exactly once, by one of the ranks; only float rounding (threads) may differ.
    np.testing.assert_allclose([r["score"] for r in ddp], [r["score"] for r in single], atol=1e-5)
    assert json.loads((out / "metrics.json").read_text())["auc"] == pytest.approx(
        json.loads((uninterrupted / "metrics.json").read_text())["auc"]
    )


def test_for_script_compares_with_the_la_run(six_files, tiny_checkpoint, uninterrupted, tmp_path, capsys):
    out = tmp_path / "for"
    out.mkdir()
    # Reuse the scores of the same checkpoint (via --resume) so this test exercises only the comparison.
    shutil.copy(uninterrupted / "scores.csv", out / "scores.csv")
    shutil.copy(uninterrupted / "run.json", out / "run.json")  # what produced them: --resume checks it
    args = evaluate_custom_for.parse_args(
        cli_args(six_files, tiny_checkpoint, out, "--resume", "--compare", str(uninterrupted))
    )
    evaluate_custom_for.main(args)
    printed = capsys.readouterr().out
    # Columns named by checkpoint (issue 22 item 3: they said "LA run / FoR run" whatever the runs were).
    assert printed.count(tiny_checkpoint.name) >= 2 and "change" in printed and "LA run" not in printed
    rows = {r["metric"]: r for r in json.loads((out / "comparison.json").read_text())["rows"]}
    assert rows["AUC"]["change"] == 0 and rows["EER (%)"]["before"] == rows["EER (%)"]["after"]
    report = (out / "report.md").read_text()  # analyse.py's report of the change
    assert "## 4. Change from" in report and "No single cause stands out: AUC stayed" in report


def test_for_script_defaults_to_the_fine_tuned_checkpoint(six_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = evaluate_custom_for.parse_args(["--data", str(six_files), "--out-dir", "x"])
    assert args.checkpoint == evaluate_custom_for.FOR_CHECKPOINT
    with pytest.raises(SystemExit, match="fine-tune first"):
        evaluate_custom_for.main(args)


def test_missing_checkpoint_says_what_to_download_without_a_traceback(six_files, tmp_path):
    env = {**os.environ, "SSL_AASIST_PRETRAINED_DIR": str(tmp_path / "empty")}
    cmd = [sys.executable, "evaluate_custom.py", *cli_args(six_files, "la", tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

    assert proc.returncode == 1
    assert "error: cannot load checkpoint la" in proc.stderr
    assert "LA_model.pth" in proc.stderr and "drive.google.com" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_per_group_breakdown_scores_each_group_against_the_other_class():
    rows = [
        {"label": "real", "group": None, "score": 3.0},
        {"label": "real", "group": "libri", "score": 2.0},
        {"label": "real", "group": "libri", "score": 1.0},
        {"label": "fake", "group": "genA", "score": -1.0},
        {"label": "fake", "group": "genA", "score": -2.0},
        {"label": "fake", "group": "genB", "score": 2.5},
        {"label": "fake", "group": "genB", "score": 0.0},
    ]
    by_group = metrics_by_group(rows)

    assert list(by_group) == ["fake/genB", "real/libri", "fake/genA"]  # hardest (highest EER) first
    assert by_group["fake/genA"]["auc"] == 1.0 and by_group["fake/genA"]["eer"] == 0.0
    assert by_group["fake/genB"]["auc"] == pytest.approx(4 / 6)  # 2.5 beats two of the three reals
    assert by_group["fake/genB"]["eer"] == compute_eer([3.0, 2.0, 1.0], [2.5, 0.0])[0]
    real, fake = [2.0, 1.0], [-1.0, -2.0, 2.5, 0.0]
    assert by_group["real/libri"] == {
        "n": 2,
        "auc": pytest.approx(6 / 8),  # 2.0 and 1.0 each beat -1, -2 and 0, not 2.5
        "eer": compute_eer(real, fake)[0],
        "eer_threshold": compute_eer(real, fake)[1],
        "min_dcf": compute_min_dcf(real, fake)[0],
        "act_dcf": compute_act_dcf(real, fake),
        "cllr": compute_cllr(real, fake),
        "min_cllr": compute_min_cllr(real, fake),
    }
    assert metrics_by_group([{**r, "group": None} for r in rows]) == {}


def test_group_travels_into_scores_csv(audio_dir, tmp_path):
    # Unreadable files cost no model time, and their rows carry the group all the same.
    items = [
        Item(str(audio_dir / "broken" / "empty_0_bytes.wav"), "fake", "generator-x"),
        Item(str(audio_dir / "broken" / "text_not_audio.mp3"), "real", None),
    ]
    out_csv = tmp_path / "scores.csv"
    rows = score_items(torch.nn.Identity(), items, out_csv=out_csv, workers=0, progress=False)
    assert [r["group"] for r in rows] == ["generator-x", None]
    assert [r["group"] for r in read_scores(out_csv)] == ["generator-x", None]
