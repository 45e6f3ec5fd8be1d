"""Input policies: one file, checkpoint and policy -> one score in evaluate_custom.py, score.py and the app;
every output says which policy and score definition produced it."""

import csv
import json
import shutil

import pytest
import torch

import antispoof.scoring.core as scoring
import evaluate_custom
import score
from antispoof.networks import REFERENCE_HEAD, InputPolicy

LONG_REAL = "1183-124566-0000.flac"  # 6.2 s: the head (4.04 s) and the 3 windows see different audio
FAKE = "espeak_01.wav"  # 2.6 s: one tiled input under either policy


@pytest.fixture(scope="module")
def two_files(audio_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for label, name in (("real", LONG_REAL), ("fake", FAKE)):
        (root / label).mkdir()
        shutil.copy(audio_dir / "sample_custom" / label / name, root / label / name)
    return root


def test_policy_strings_and_checks():
    assert REFERENCE_HEAD.describe() == "head n=64600"
    assert InputPolicy("windows").describe() == "windows n=64600 hop=32300"
    assert InputPolicy("whole", max_seconds=30, normalize=True).describe() == "whole max_s=30 normalize"
    with pytest.raises(ValueError, match="mode must be one of"):
        InputPolicy("tail")
    with pytest.raises(ValueError, match="> 0"):
        InputPolicy("windows", hop=0)


def test_reference_score_kinds():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])  # (B, 2): index 1 = real
    torch.testing.assert_close(scoring.reference_score(logits, "logit_real"), torch.tensor([-1.0, 3.0]))
    torch.testing.assert_close(
        scoring.reference_score(logits, "log_softmax_real"), logits.log_softmax(-1)[:, 1]
    )
    torch.testing.assert_close(scoring.reference_score(logits, "softmax_real"), logits.softmax(-1)[:, 1])
    with pytest.raises(ValueError, match="unknown score kind"):
        scoring.reference_score(logits, "logit_fake")


@pytest.mark.parametrize("window", [False, True], ids=["model default (head)", "--window"])
def test_same_file_same_policy_same_score_in_every_script(
    tiny_checkpoint, two_files, tmp_path, window, capsys
):
    import app

    flags = ["--window"] if window else []
    expected_policy = "windows n=64600 hop=32300" if window else "head n=64600"
    common = ["--checkpoint", str(tiny_checkpoint), "--workers", "0", "--device", "cpu", *flags]

    # evaluate_custom.py: scores.csv and metrics.json
    out_dir = tmp_path / "eval"
    argv = ["--data", str(two_files), "--out-dir", str(out_dir), "--bootstrap", "0", *common]
    metrics = evaluate_custom.main(evaluate_custom.parse_args(argv))
    assert f"input policy: {expected_policy}" in capsys.readouterr().out
    assert metrics["policy"] == expected_policy and metrics["score_kind"] == "logit_real"
    assert metrics["score_definition"].startswith("score = logits[:, 1], the real-class logit")
    with open(out_dir / "scores.csv", newline="") as f:
        rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}
    assert {r["policy"] for r in rows.values()} == {expected_policy}
    assert {r["score_kind"] for r in rows.values()} == {"logit_real"}
    evaluated = {name: float(r["score"]) for name, r in rows.items()}

    # score.py: JSON output
    files = [str(two_files / "real" / LONG_REAL), str(two_files / "fake" / FAKE)]
    out = tmp_path / "score.json"
    argv = [*files, "--output-format", "json", "--output", str(out), *common]
    if not window:  # score.py looks at the whole clip by default; this is the evaluation's policy
        argv.append("--reference-policy")
    assert score.main(score.parse_args(argv)) == 0
    document = json.loads(out.read_text())
    assert document["policy"] == expected_policy
    assert document["score_definition"] == metrics["score_definition"]
    scored = {f["path"].rsplit("/", 1)[-1]: f["score"] for f in document["files"]}

    # the app's scoring function
    detector = app.Detector({"tiny": str(tiny_checkpoint)}, "cpu")
    shown = {}
    for path in files:
        row, _, definition, _ = detector.score(path, "tiny", "windows (mean)" if window else "first 4.04 s")
        assert row["policy"] == expected_policy and definition == metrics["score_definition"]
        shown[path.rsplit("/", 1)[-1]] = row["score"]

    for name in (LONG_REAL, FAKE):
        assert scored[name] == pytest.approx(evaluated[name], abs=1e-5)
        assert shown[name] == pytest.approx(evaluated[name], abs=1e-5)
    n_windows = {f["path"].rsplit("/", 1)[-1]: len(f["windows"]) for f in document["files"]}
    assert n_windows == {LONG_REAL: 3 if window else 1, FAKE: 1}  # windows at 0, 2.02, 2.13 s
