"""calibration.py: the fitted LLR map, its validation, storage beside a checkpoint, and refusals."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

import antispoof.evaluation.calibration as calibration
from antispoof.evaluation.calibration import CalibrationError
from antispoof.evaluation.metrics import ASVSPOOF5, compute_cllr

SHA = "ab" * 32
OTHER_SHA = "cd" * 32


def make(scale=2.0, offset=-0.5, policy="head n=64600", sha=SHA) -> dict:
    real, fake = np.array([1.0, 2.0, 0.5]), np.array([-1.0, 0.7, -2.0])
    cal = calibration.fit(real, fake, policy=policy, weights_sha256=sha)
    return {**cal, "scale": scale, "offset": offset}


@pytest.mark.parametrize("p_spoof_fit", [0.5, calibration.effective_p_spoof(), 0.05])
def test_fit_recovers_the_true_llr(p_spoof_fit):
    # Real ~ N(1, 1), fake ~ N(-1, 1): the true LLR is log N(s; 1, 1) / N(s; -1, 1) = 2 s, whatever the prior
    # the classes are weighted with (a well-specified model is unbiased at any fitting prior).
    rng = np.random.default_rng(0)
    real, fake = rng.normal(1, 1, 20000), rng.normal(-1, 1, 15000)
    scale, offset = calibration.fit_affine(real, fake, p_spoof_fit)
    assert scale == pytest.approx(2.0, abs=0.06) and offset == pytest.approx(0.0, abs=0.05)
    # Shifting and stretching the scores changes the map, not the LLRs.
    scale2, offset2 = calibration.fit_affine(10 * real + 3, 10 * fake + 3, p_spoof_fit)
    assert scale2 * 13 + offset2 == pytest.approx(scale * 1 + offset, abs=1e-6)


def test_fit_minimizes_the_weighted_cross_entropy():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(2, 1.5, 300), rng.normal(-1.5, 2, 200)
    p = 0.3
    scale, offset = calibration.fit_affine(real, fake, p)
    t = np.r_[np.full(300, 300.5 / 301), np.full(200, 0.5 / 201)]  # smoothed labels
    w = np.r_[np.full(300, (1 - p) / 300), np.full(200, p / 200)]
    s = np.r_[real, fake]

    def loss(a, b):
        z = a * s + b + math.log((1 - p) / p)
        return np.sum(w * (np.logaddexp(0, z) - t * z))

    best = loss(scale, offset)
    for da, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert best < loss(scale + da, offset + db)


def test_separable_classes_give_a_finite_map():
    cal = calibration.fit([3.0, 4.0, 5.0], [-3.0, -4.0, -5.0], policy="head n=64600", weights_sha256=SHA)
    assert 0 < cal["scale"] < 10 and math.isfinite(cal["offset"])
    llr = calibration.apply(cal, [4.0, -4.0])
    assert llr[0] > ASVSPOOF5.llr_threshold > llr[1]
    assert cal["fit"]["cllr_calibrated"] < 1 and cal["fit"]["min_cllr"] == 0


def test_fit_refuses_inverted_or_one_class_data():
    with pytest.raises(CalibrationError, match="does not grow with realness"):
        calibration.fit([-3.0, -4.0], [3.0, 4.0], policy="head n=64600", weights_sha256=SHA)
    with pytest.raises(CalibrationError, match="real and fake"):
        calibration.fit([1.0], [], policy="head n=64600", weights_sha256=SHA)
    with pytest.raises(CalibrationError, match="finite"):
        calibration.fit([1.0, math.nan], [0.0], policy="head n=64600", weights_sha256=SHA)


def test_p_fake_is_the_posterior_at_the_prior():
    assert calibration.p_fake([0.0], 0.5)[0] == pytest.approx(0.5)
    assert calibration.p_fake([0.0], 0.05)[0] == pytest.approx(0.05)
    # At the Bayes threshold the posterior odds of fake equal Cmiss / Cfa.
    p = calibration.p_fake([ASVSPOOF5.llr_threshold], ASVSPOOF5.p_spoof)[0]
    assert p / (1 - p) == pytest.approx(ASVSPOOF5.c_miss / ASVSPOOF5.c_fa)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"scale": math.nan}, "scale must be a finite number"),
        ({"offset": math.inf}, "offset must be a finite number"),
        ({"scale": "2"}, "scale must be a finite number"),
        ({"scale": True}, "scale must be a finite number"),
        ({"scale": -1.0}, "scale must be positive"),
        ({"policy": ""}, "no scoring policy"),
        ({"weights_sha256": "abc"}, "64 hex digits"),
        ({"format": "other/1"}, "expected 'ssl-aasist-calibration/1'"),
    ],
)
def test_validate_refuses_malformed(change, message):
    with pytest.raises(CalibrationError, match=message):
        calibration.validate({**make(), **change}, "test")


def test_validate_refuses_an_old_threshold_only_calibration():
    with pytest.raises(CalibrationError, match="only an EER threshold"):
        calibration.validate({"threshold": -1.2, "source": "validation EER"}, "best.pt")
    with pytest.raises(CalibrationError, match="JSON object"):
        calibration.validate([1, 2], "x")


def test_check_applies_refuses_other_weights_or_policy():
    cal = make()
    calibration.check_applies(cal, policy="head n=64600", weights_sha256=SHA, where="w")
    with pytest.raises(CalibrationError, match="other weights"):
        calibration.check_applies(cal, policy="head n=64600", weights_sha256=OTHER_SHA, where="w")
    with pytest.raises(CalibrationError, match="scoring policy 'head n=64600', not 'windows"):
        calibration.check_applies(cal, policy="windows n=64600 hop=32300", weights_sha256=SHA, where="w")


def test_side_file_round_trip_and_precedence(tmp_path):
    checkpoint = tmp_path / "model.pth"
    checkpoint.write_bytes(b"weights")
    info = {"source": str(checkpoint), "calibration": None}
    assert calibration.find(checkpoint, info) == (None, "")
    inside = make(scale=1.0)
    cal, where = calibration.find(checkpoint, {**info, "calibration": inside})
    assert cal == inside and "stored in" in where
    side = calibration.save(checkpoint, make(scale=3.0))
    assert side == tmp_path / "model.pth.calibration.json"
    cal, where = calibration.find(checkpoint, {**info, "calibration": inside})  # the side file wins
    assert cal["scale"] == 3.0 and where == str(side)
    assert json.loads(side.read_text())["weights_sha256"] == SHA
    side.write_text('{"format": "ssl-aasist-calibration/1", "scale": NaN')
    with pytest.raises(CalibrationError, match="cannot be read as JSON"):
        calibration.find(checkpoint, info)
    side.write_text(json.dumps({**make(), "scale": None}))
    with pytest.raises(CalibrationError, match="scale must be a finite number"):
        calibration.find(checkpoint, info)


def test_calibration_lowers_cllr_on_held_out_scores():
    # Raw scores that rank well but are shifted and too confident; a map fitted on one half helps the other.
    rng = np.random.default_rng(3)
    real, fake = 4 * rng.normal(1, 1, 400) - 6, 4 * rng.normal(-1, 1, 400) - 6
    cal = calibration.fit(real[:200], fake[:200], policy="head n=64600", weights_sha256=SHA)
    held_real, held_fake = real[200:], fake[200:]
    raw = compute_cllr(held_real, held_fake)
    calibrated = compute_cllr(calibration.apply(cal, held_real), calibration.apply(cal, held_fake))
    assert calibrated < 0.6 * raw


def _blue_pixels(png) -> int:
    """Pixels of the DET curve's colour (matplotlib tab:blue) in a PNG."""
    import matplotlib.image

    rgb = (matplotlib.image.imread(png)[..., :3] * 255).astype(int)
    return int(np.sum(np.all(np.abs(rgb - [31, 119, 180]) < 30, axis=-1)))


def test_plots_det_with_operating_points_and_reliability(tmp_path):
    import antispoof.reports.plots as plots
    from antispoof.evaluation.metrics import compute_metrics

    rng = np.random.default_rng(0)
    for name, (real, fake) in {
        "separable": (rng.uniform(1, 5, 20), rng.uniform(-8, -3, 20)),  # was an empty DET frame
        "overlapping": (rng.normal(1, 1, 60), rng.normal(-1, 1.5, 40)),
    }.items():
        labels = ["real"] * len(real) + ["fake"] * len(fake)
        scores = np.r_[real, fake]
        llrs = 0.8 * scores - 0.3
        metrics = compute_metrics(labels, scores, n_bootstrap=0, llrs=llrs)
        rows = [
            {"status": "ok", "label": lab, "score": s, "p_fake": 1 / (1 + math.exp(s)), "llr": llr}
            for lab, s, llr in zip(labels, scores, llrs, strict=True)
        ]
        out = tmp_path / name
        assert plots.save_all(rows, out, metrics) == [
            "roc.png",
            "det.png",
            "score_hist.png",
            "reliability.png",
        ]
        assert _blue_pixels(out / "det.png") > 300, name  # the curve is inside the frame
        assert _blue_pixels(out / "reliability.png") > 100, name  # the calibrated series is drawn


# --- end to end on the bundled sample: fit on one half, apply to the other --------------------------------


@pytest.fixture(scope="module")
def sample_halves(golden, audio_dir, tmp_path_factory):
    """AASIST-L (a copy, so side files land in tmp) scores half A of the bundled sample, calibrate.py fits on
    it, then half B is evaluated with the calibration applied and an ASVspoof 5 score file."""
    import shutil

    import calibrate
    import evaluate_custom

    tmp = tmp_path_factory.mktemp("halves")
    checkpoint = tmp / "AASIST-L.pth"
    shutil.copy(golden / "aasist" / "AASIST-L.pth", checkpoint)
    sample = audio_dir / "sample_custom"
    files = {label: sorted((sample / label).iterdir()) for label in ("real", "fake")}
    for half, start in (("A", 0), ("B", 1)):
        lines = ["path,label"] + [f"{f},{label}" for label in files for f in files[label][start::2]]
        (tmp / f"{half}.csv").write_text("\n".join(lines) + "\n")
    common = ["--checkpoint", str(checkpoint), "--bootstrap", "0", "--workers", "0", "--device", "cpu"]
    run_a, run_b = tmp / "run_A", tmp / "run_B"
    before = evaluate_custom.main(evaluate_custom.parse_args(["--data", str(tmp / "A.csv"), "--out-dir",
                                                             str(run_a), *common]))  # fmt: skip
    cal = calibrate.main(calibrate.parse_args(["--run", str(run_a)]))
    argv = [
        "--data",
        str(tmp / "B.csv"),
        "--out-dir",
        str(run_b),
        "--score-file",
        str(tmp / "B.tsv"),
        *common,
    ]
    after = evaluate_custom.main(evaluate_custom.parse_args(argv))
    return {
        "tmp": tmp,
        "checkpoint": checkpoint,
        "cal": cal,
        "before": before,
        "after": after,
        "run_a": run_a,
        "run_b": run_b,
    }


def test_sample_calibration_from_one_half_lowers_cllr_on_the_other(sample_halves):
    from antispoof.checkpoints.files import load_model, weights_sha256
    from antispoof.scoring.scorefile import read_scores

    cal, after = sample_halves["cal"], sample_halves["after"]
    assert "calibrated" not in sample_halves["before"]  # no calibration existed yet
    side = calibration.side_file(sample_halves["checkpoint"])
    assert json.loads(side.read_text()) == cal  # stored beside the checkpoint, and reloaded from there
    model, _ = load_model(sample_halves["checkpoint"])
    assert cal["weights_sha256"] == weights_sha256(model) and cal["policy"] == "head n=64600"
    assert after["calibration"]["source"] == str(side)
    assert after["calibrated"]["cllr"] < after["cllr"]  # held-out half: calibrated LLRs beat raw scores
    assert after["calibrated"]["act_dcf"] <= after["act_dcf"]
    rows = [r for r in read_scores(sample_halves["run_b"] / "scores.csv") if r["status"] == "ok"]
    assert len(rows) == 20
    for r in rows:
        assert r["llr"] == pytest.approx(cal["scale"] * r["score"] + cal["offset"], abs=1e-12)
    # The other way round too: fitted on half B's scores, applied to half A's (both runs hold their scores).
    a_rows = [r for r in read_scores(sample_halves["run_a"] / "scores.csv") if r["status"] == "ok"]
    real_b, fake_b = ([r["score"] for r in rows if r["label"] == lab] for lab in ("real", "fake"))
    real_a, fake_a = ([r["score"] for r in a_rows if r["label"] == lab] for lab in ("real", "fake"))
    cal_b = calibration.fit(real_b, fake_b, policy=cal["policy"], weights_sha256=cal["weights_sha256"])
    calibrated_a = compute_cllr(calibration.apply(cal_b, real_a), calibration.apply(cal_b, fake_a))
    assert calibrated_a < compute_cllr(real_a, fake_a)
    tsv = (sample_halves["tmp"] / "B.tsv").read_text().splitlines()
    assert tsv[0] == "filename\tcm-score" and len(tsv) == 21
    name, value = tsv[1].split("\t")
    assert float(value) == next(r["llr"] for r in rows if Path(r["path"]).stem == name)


def test_sample_calibration_refused_for_other_weights_or_policy(sample_halves, golden):
    from antispoof.checkpoints.files import load_model
    from antispoof.networks import InputPolicy
    from antispoof.scoring.decision import checked_calibration

    model, info = load_model(sample_halves["checkpoint"])
    cal, where = checked_calibration(model, info, "head n=64600")
    assert cal == sample_halves["cal"]
    with pytest.raises(
        CalibrationError, match="scoring policy 'head n=64600', not 'windows n=64600 hop=32300'"
    ):
        checked_calibration(model, info, InputPolicy("windows").describe())
    other, _ = load_model(golden / "aasist" / "AASIST.pth")  # AASIST, not AASIST-L: other weights
    with pytest.raises(CalibrationError, match="other weights"):
        checked_calibration(other, info, "head n=64600")


def test_sample_calibration_applied_by_score_py_and_app(sample_halves, golden, tmp_path, capsys):
    import shutil

    import app
    import score
    from antispoof.scoring.scorefile import read_scores

    cal = sample_halves["cal"]
    expected = {r["path"]: r for r in read_scores(sample_halves["run_b"] / "scores.csv")}
    paths = [p for p in sorted(expected) if expected[p]["label"] == "real"][:1]
    paths += [p for p in sorted(expected) if expected[p]["label"] == "fake"][:1]
    checkpoint = str(sample_halves["checkpoint"])
    status = score.main(
        score.parse_args(
            [
                *paths,
                "--checkpoint",
                checkpoint,
                "--output-format",
                "json",
                "--workers",
                "0",
                "--reference-policy",
            ]
        )
    )  # the policy the calibration was fitted under (score.py's default is the whole clip)
    document = json.loads(capsys.readouterr().out)
    assert status == score.EXIT_OK and document["decision"]["applies_to"] == "llr"
    assert "Pspoof 0.05, Cmiss 1, Cfa 10" in document["decision"]["rule"]
    for file in document["files"]:  # the same LLR evaluate_custom.py wrote for half B, the same verdict
        assert file["llr"] == pytest.approx(expected[file["path"]]["llr"], abs=1e-4)
        assert file["verdict"] == ("real" if file["llr"] >= ASVSPOOF5.llr_threshold else "fake")
        assert file["verdict"] == expected[file["path"]]["label"]
    # Another scoring policy, or another checkpoint with this side file beside it: refused, nothing scored.
    status = score.main(
        score.parse_args([paths[0], "--checkpoint", checkpoint, "--window", "--workers", "0"])
    )
    captured = capsys.readouterr()
    assert status == score.EXIT_NONE_SCORED and "scoring policy 'head n=64600'" in captured.err
    other = tmp_path / "AASIST.pth"
    shutil.copy(golden / "aasist" / "AASIST.pth", other)
    shutil.copy(calibration.side_file(checkpoint), calibration.side_file(other))
    status = score.main(score.parse_args([paths[0], "--checkpoint", str(other), "--workers", "0"]))
    captured = capsys.readouterr()
    assert status == score.EXIT_NONE_SCORED and "other weights" in captured.err and captured.out == ""
    # The app: the same LLR and rule; with windows ticked, the same refusal as a message.
    detector = app.Detector({"calibrated": checkpoint}, "cpu")
    row, decision, _, bands = detector.score(paths[0], "calibrated", "first 4.04 s")
    assert row["llr"] == pytest.approx(expected[paths[0]]["llr"], abs=1e-4) and decision.calibration == cal
    card = app.model_card(checkpoint)
    _, text = app.verdict_markdown(
        row, decision, bands, "calibrated", card, {"duration_s": 1.0, "definition": "", "warnings": []}
    )
    assert "llr = " in text and "Bayes decision" in text and "calibrated on" in text
    with pytest.raises(ValueError, match="scoring policy"):
        detector.score(paths[0], "calibrated", "windows (mean)")


def test_calibrate_py_stores_inside_project_checkpoints_and_checks_the_run(golden, tmp_path):
    import calibrate
    from antispoof.checkpoints.files import (
        atomic_torch_save,
        load_model,
        project_state,
        read_checkpoint,
        save_checkpoint,
        weights_sha256,
    )
    from antispoof.scoring.scorefile import write_scores

    model, _ = load_model(golden / "aasist" / "AASIST-L.pth")
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    save_checkpoint(best, model)
    atomic_torch_save({**project_state(model), "training": {"epoch": 3}}, last)
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    rows = [
        {"path": f"{label}{i}.wav", "label": label, "score": float(s), "p_fake": 0.5, "status": "ok",
         "n_windows": 1, "windows": [], "note": "", "policy": "head n=64600", "score_kind": "logit_real"}
        for label, mean in (("real", 1.0), ("fake", -1.0))
        for i, s in enumerate(rng.normal(mean, 1.0, 30))
    ]  # fmt: skip
    write_scores(run / "scores.csv", rows)
    (run / "metrics.json").write_text(json.dumps({"checkpoint": str(best)}))
    (run / "run.json").write_text(json.dumps({"weights_sha256": weights_sha256(model)}))  # now required
    cal = calibrate.main(calibrate.parse_args(["--run", str(run)]))
    assert load_model(best)[1]["calibration"] == cal == json.loads(calibration.side_file(best).read_text())
    assert cal["weights_sha256"] == weights_sha256(model) and cal["fit"]["n_real"] == 30
    calibrate.main(calibrate.parse_args(["--run", str(run), "--checkpoint", str(last)]))
    assert read_checkpoint(last)["training"] == {"epoch": 3}  # last.pt keeps its training state
    assert read_checkpoint(last)["calibration"]["scale"] == cal["scale"]
    (run / "run.json").write_text(json.dumps({"weights_sha256": OTHER_SHA}))
    with pytest.raises(SystemExit, match="scored with other weights"):
        calibrate.main(calibrate.parse_args(["--run", str(run)]))
    (run / "run.json").unlink()
    write_scores(run / "scores.csv", [*rows[:-1], {**rows[-1], "policy": "windows n=64600 hop=32300"}])
    with pytest.raises(SystemExit, match="mixes scoring policies"):
        calibrate.main(calibrate.parse_args(["--run", str(run)]))
