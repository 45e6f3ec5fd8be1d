"""One verdict rule everywhere: a file scored exactly at the decision threshold gets the same verdict from
score.py, metrics.json (evaluate_custom.py) and the analysis report (analyse.py). Released AASIST weights,
real audio, a calibration whose Bayes threshold lands exactly on one real file's score."""

import json
import shutil

import numpy as np
import pytest

import analyse
import evaluate_custom
import score
from antispoof.checkpoints.files import load_model, weights_sha256
from antispoof.evaluation import calibration, thresholds
from antispoof.evaluation.metrics import ASVSPOOF5, compute_eer, det_curve
from antispoof.reports import analysis

REAL = "1183-124566-0000.flac"
FAKES = ["espeak_01.wav", "espeak_02.wav"]


def test_the_rule_is_score_at_or_above_the_threshold():
    assert thresholds.is_real([0.9, 1.0, 1.1], 1.0).tolist() == [False, True, True]
    assert thresholds.error_rates([1.0, 2.0], [1.0, 0.0], 1.0) == (0.0, 0.5)  # the fake at 1.0 is accepted
    cal = {"scale": 2.0, "offset": -1.0}
    t = thresholds.score_at_llr(cal, ASVSPOOF5.llr_threshold)
    assert calibration.apply(cal, t) == pytest.approx(ASVSPOOF5.llr_threshold)


def test_det_curve_thresholds_name_each_split_under_the_rule():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(1, 1, 30), rng.normal(-1, 1, 20)
    frr, far, ts = det_curve(real, fake)
    for i in range(len(ts)):  # every point of the curve is what the rule does at its threshold
        assert thresholds.error_rates(real, fake, ts[i]) == pytest.approx((frr[i], far[i]))
    eer, t = compute_eer(real, fake)
    frr_t, far_t = thresholds.error_rates(real, fake, t)
    assert abs(frr_t - far_t) <= max(1 / len(real), 1 / len(fake)) and (frr_t + far_t) / 2 == eer


def test_a_file_exactly_at_the_threshold_gets_one_verdict_everywhere(golden, audio_dir, tmp_path, capsys):
    checkpoint = tmp_path / "AASIST.pth"  # a copy: its calibration side file goes beside it
    shutil.copy(golden / "aasist" / "AASIST.pth", checkpoint)
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    (data / "fake").mkdir()
    sample = audio_dir / "sample_custom"
    shutil.copy(sample / "real" / REAL, data / "real" / REAL)
    for name in FAKES:
        shutil.copy(sample / "fake" / name, data / "fake" / name)
    common = ["--checkpoint", str(checkpoint), "--workers", "0", "--device", "cpu"]  # AASIST's policy: head
    one_file = ["--output-format", "json", "--reference-policy"]  # score.py under the evaluation's policy

    # The real file's score, then a calibration whose Bayes threshold maps back exactly onto it.
    assert score.main(score.parse_args([str(data / "real" / REAL), *common, *one_file])) == 0
    s = json.loads(capsys.readouterr().out)["files"][0]["score"]
    model, _ = load_model(str(checkpoint), map_location="cpu")
    offset = ASVSPOOF5.llr_threshold - s
    while thresholds.score_at_llr({"scale": 1.0, "offset": offset}, ASVSPOOF5.llr_threshold) != s:
        offset = float(np.nextafter(offset, np.inf))  # rounding: nudge until it lands exactly on s
    cal = calibration.build(
        1.0, offset, policy="head n=64600", weights_sha256=weights_sha256(model), score_kind="logit_real",
        fit={"data": "made up for this test", "n_real": 1, "n_fake": 2},
    )  # fmt: skip
    calibration.save(checkpoint, cal)

    # score.py
    assert score.main(score.parse_args([str(data / "real" / REAL), *common, *one_file])) == 0
    scored = json.loads(capsys.readouterr().out)["files"][0]
    assert scored["score"] == s
    # metrics.json: the real file is the only real one, so its verdict is frr_at_threshold
    run = tmp_path / "run"
    evaluate_custom.main(
        evaluate_custom.parse_args(["--data", str(data), "--out-dir", str(run), "--bootstrap", "0", *common])
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["threshold"] == s and metrics["n_real"] == 1
    # the report
    analyse.main(analyse.parse_args([str(run), "--workers", "1"]))
    report = analysis.Run(run)
    mine = [i for i, r in enumerate(report.rows) if r["label"] == "real"]
    assert report.scores[mine[0]] == s

    verdicts = {
        "score.py": scored["verdict"],
        "metrics.json": "real" if metrics["frr_at_threshold"] == 0.0 else "fake",
        "report": "real" if report.verdict_real()[mine[0]] else "fake",
    }
    assert verdicts == dict.fromkeys(verdicts, "real"), verdicts  # real when score >= threshold
    assert "0.0 of every 100 real files are rejected" in (run / "report.md").read_text()
