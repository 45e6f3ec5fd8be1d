"""metrics.py (EER, minDCF, actDCF, Cllr as ASVspoof 5 defines them, minCllr, AUC, bootstrap intervals,
polarity) and utils.py helpers."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from antispoof.evaluation.metrics import (
    ASVSPOOF5,
    OperatingPoint,
    compute_act_dcf,
    compute_cllr,
    compute_eer,
    compute_metrics,
    compute_min_cllr,
    compute_min_dcf,
    dcf_curve,
    det_curve,
    pav_llrs,
)
from antispoof.utils import atomic_write_text, init_wandb, pick_device, set_seed


def test_eer_exact_crossing():
    # Sorted: .1f .2f .3r .4f .6f .7r .8r .9r. Rejecting the 4 lowest gives FRR = FAR = 1/4; under the rule
    # "real when score >= threshold" that is threshold 0.6, the lowest score accepted.
    eer, threshold = compute_eer([0.9, 0.8, 0.7, 0.3], [0.6, 0.4, 0.2, 0.1])
    assert eer == pytest.approx(0.25) and threshold == pytest.approx(0.6)


def test_eer_without_crossing_takes_the_closest_point():
    # Sorted: 0f 1r 2r 2.5f 3r 3.5f 4r 5r. |FRR - FAR| is smallest (1/15) after rejecting the 4 lowest:
    # FRR = 2/5, FAR = 1/3, so EER = (2/5 + 1/3) / 2 = 11/30 at threshold 3 (the lowest score accepted).
    eer, threshold = compute_eer([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 2.5, 3.5])
    assert eer == pytest.approx(11 / 30) and threshold == pytest.approx(3.0)


def test_eer_ties_sort_real_first_like_the_reference():
    # A stable sort with real scores listed first: a tie rejects the real file before the fake one.
    assert compute_eer([0.5], [0.5]) == (1.0, 0.5)


def test_eer_matches_threshold_sweep_on_random_scores():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(1, 1, 300), rng.normal(-1, 1, 200)
    eer, threshold = compute_eer(real, fake)
    # Independent: sweep "real when score >= t" over every score and take the closest FRR/FAR pair.
    best = min(
        (abs(np.mean(real < t) - np.mean(fake >= t)), (np.mean(real < t) + np.mean(fake >= t)) / 2, t)
        for t in np.sort(np.concatenate([real, fake]))
    )
    assert eer == pytest.approx(best[1]) and threshold == pytest.approx(best[2])
    frr, far, _ = det_curve(real, fake)
    assert frr[0] == 0 and far[0] == 1 and frr[-1] == 1 and far[-1] == 0
    assert np.all(np.diff(frr) >= 0) and np.all(np.diff(far) <= 0)


# Numbers printed by the official ASVspoof 5 package (commit in its "provenance") on these very scores.
REFERENCE = json.loads((Path(__file__).parent / "data" / "asvspoof5_reference.json").read_text())


@pytest.mark.parametrize("name", sorted(REFERENCE["sets"]))
def test_equals_the_official_asvspoof5_package(name):
    ref = REFERENCE["sets"][name]
    real, fake = np.array(ref["bona_fide"]), np.array(ref["spoof"])
    eer, eer_threshold = compute_eer(real, fake)
    min_dcf, min_dcf_threshold = compute_min_dcf(real, fake)
    assert eer == pytest.approx(ref["eer"], abs=1e-9)
    # The package names the point "reject the i lowest scores" by the highest score rejected (its rule: real
    # when score > t), this project by the lowest score accepted (real when score >= t, thresholds.py).
    frr, far, ours = det_curve(real, fake)
    ranked = np.sort(np.r_[real, fake], kind="mergesort")
    package = np.r_[ranked[0] - 0.001, ranked]  # the package's threshold list
    i_eer, i_dcf = int(np.argmin(np.abs(frr - far))), int(np.argmin(dcf_curve(frr, far)))
    assert package[i_eer] == pytest.approx(ref["eer_threshold"], abs=1e-9) and eer_threshold == ours[i_eer]
    assert package[i_dcf] == pytest.approx(ref["min_dcf_threshold"], abs=1e-9)
    assert min_dcf_threshold == ours[i_dcf]
    assert min_dcf == pytest.approx(ref["min_dcf"], abs=1e-9)
    assert compute_act_dcf(real, fake) == pytest.approx(ref["act_dcf"], abs=1e-9)
    assert ASVSPOOF5.llr_threshold == pytest.approx(ref["act_dcf_threshold"], abs=1e-12)
    assert compute_cllr(real, fake) == pytest.approx(ref["cllr"], abs=1e-9)
    m = compute_metrics(["real"] * len(real) + ["fake"] * len(fake), np.r_[real, fake], n_bootstrap=0)
    assert [m[k] for k in ("eer", "min_dcf", "act_dcf", "cllr")] == [eer, min_dcf, m["act_dcf"], m["cllr"]]


def test_reference_covers_the_hard_cases():
    sets = REFERENCE["sets"]
    assert REFERENCE["provenance"]["costs"] == {"p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0}
    assert sets["perfect_separation"]["min_dcf"] == 0 and sets["perfect_separation_wrong_side"]["act_dcf"] > 1
    assert sets["misses_only"]["act_dcf"] > 0 and sets["false_alarms_only"]["min_dcf"] > 0
    assert len(set(sets["ties"]["bona_fide"])) < len(sets["ties"]["bona_fide"])


def test_operating_point():
    assert ASVSPOOF5.beta == pytest.approx(1.9) and ASVSPOOF5.llr_threshold == pytest.approx(-math.log(1.9))
    # At p_spoof 0.5 and equal costs the Bayes rule is llr >= 0.
    assert OperatingPoint(0.5, 1, 1).llr_threshold == 0
    assert OperatingPoint(0.5, 1, 1).normalizer == 0.5
    for bad in ((0.0, 1, 10), (1.0, 1, 10), (0.05, 0, 10), (0.05, 1, float("inf"))):
        with pytest.raises(ValueError):
            OperatingPoint(*bad)


def test_act_dcf_counts_a_score_on_the_threshold_as_real():
    t = ASVSPOOF5.llr_threshold
    assert compute_act_dcf([t], [t - 1]) == 0  # a real file exactly on the threshold is accepted
    assert compute_act_dcf([t + 1], [t]) == pytest.approx(0.05 * 10 / 0.5)  # a fake on it is a false alarm


def test_min_cllr_by_hand():
    # Sorted: 1f 2r 3f 4r. PAV pools (2r, 3f) into posterior 1/2 = the data's prior, so LLR 0 there and
    # +-inf at the ends: each class pays log2(2) on one of its two files, minCllr = (1/2 + 1/2) / 2 = 0.5.
    real_llr, fake_llr = pav_llrs([2.0, 4.0], [1.0, 3.0])
    assert real_llr.tolist() == [0.0, math.inf] and fake_llr.tolist() == [-math.inf, 0.0]
    assert compute_min_cllr([2.0, 4.0], [1.0, 3.0]) == pytest.approx(0.5)
    assert compute_min_cllr([5.0, 6.0], [1.0, 2.0, 3.0]) == 0  # separable: a perfect calibration exists
    assert compute_min_cllr([0.0] * 3, [0.0] * 5) == pytest.approx(1.0)  # all tied: no information at all


def test_min_cllr_is_the_best_monotone_calibration():
    rng = np.random.default_rng(2)
    real = np.round(rng.normal(1, 1, 200), 1)  # rounded: ties across the classes
    fake = np.round(rng.normal(-1, 1.5, 150), 1)
    min_cllr = compute_min_cllr(real, fake)
    assert 0 < min_cllr < compute_cllr(real, fake)
    for scale in (0.3, 1.0, 2.0):  # no affine (monotone) calibration beats it
        for offset in (-1.0, 0.0, 1.0):
            assert min_cllr <= compute_cllr(scale * real + offset, scale * fake + offset)
    # Independent PAV: sklearn's isotonic regression of the labels on the scores gives the same posteriors.
    from sklearn.isotonic import IsotonicRegression

    scores = np.r_[real, fake]
    posterior = IsotonicRegression(y_min=0, y_max=1).fit_transform(scores, np.r_[np.ones(200), np.zeros(150)])
    ours = np.r_[pav_llrs(real, fake)]
    with np.errstate(divide="ignore"):
        expected = np.log(posterior) - np.log1p(-posterior) - math.log(200 / 150)
    assert np.allclose(ours, expected, atol=1e-9)
    # A monotone map of the scores changes nothing.
    assert compute_min_cllr(np.exp(real), np.exp(fake)) == pytest.approx(min_cllr, abs=1e-12)


def test_metrics_keys_values_and_intervals():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 60), rng.normal(-1, 1, 40)])
    labels = ["real"] * 60 + ["fake"] * 40
    m = compute_metrics(labels, scores, n_bootstrap=200, threshold=0.0)
    assert m["auc"] == pytest.approx(roc_auc_score([1] * 60 + [0] * 40, scores))
    assert (m["eer"], m["eer_threshold"]) == compute_eer(scores[:60], scores[60:])
    assert m["n_real"] == 60 and m["n_fake"] == 40
    assert m["auc_ci95"][0] <= m["auc"] <= m["auc_ci95"][1]
    assert m["eer_ci95"][0] <= m["eer"] <= m["eer_ci95"][1]
    for key in ("min_dcf", "act_dcf", "cllr"):
        assert m[f"{key}_ci95"][0] <= m[key] <= m[f"{key}_ci95"][1]
    assert m["min_dcf"] == compute_min_dcf(scores[:60], scores[60:])[0]
    assert m["min_cllr"] == compute_min_cllr(scores[:60], scores[60:]) <= m["cllr"]
    assert m["operating_point"]["p_spoof"] == 0.05 and "llr" in m["llr_note"]
    assert "real" in m["positive_class"] and "higher" in m["score_direction"]
    assert m["frr_at_threshold"] == pytest.approx(np.mean(scores[:60] < 0))  # real when score >= 0
    assert m["polarity_warning"] is None
    json.dumps(m)  # plain JSON types only
    again = compute_metrics(labels, scores, n_bootstrap=200, threshold=0.0)
    assert again == m  # the bootstrap is seeded


def test_calibrated_metrics_from_llrs():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 60), rng.normal(-1, 1, 40)])
    labels = ["real"] * 60 + ["fake"] * 40
    llrs = 2 * scores - 0.5
    m = compute_metrics(labels, scores, n_bootstrap=50, llrs=llrs)
    cal = m["calibrated"]
    assert cal["act_dcf"] == compute_act_dcf(llrs[:60], llrs[60:])
    assert cal["cllr"] == compute_cllr(llrs[:60], llrs[60:])
    assert cal["min_dcf"] == pytest.approx(m["min_dcf"]) and cal["min_cllr"] == pytest.approx(m["min_cllr"])
    assert cal["frr_at_llr_threshold"] == np.mean(llrs[:60] < ASVSPOOF5.llr_threshold)
    assert cal["cllr_ci95"][0] <= cal["cllr"] <= cal["cllr_ci95"][1]
    with pytest.raises(ValueError, match="finite"):
        compute_metrics(labels, scores, n_bootstrap=0, llrs=np.r_[llrs[:-1], np.nan])


def test_polarity_warning_on_inverted_labels():
    scores = [2.0, 1.5, 1.0, -1.0, -1.5, -2.0]
    inverted = ["fake", "fake", "fake", "real", "real", "real"]
    m = compute_metrics(inverted, scores, n_bootstrap=0)
    assert m["auc"] == 0.0
    assert "inverted" in m["polarity_warning"] and "LABEL_TO_INDEX" in m["polarity_warning"]
    assert compute_metrics(list(reversed(inverted)), scores, n_bootstrap=0)["polarity_warning"] is None


def test_one_class_gives_a_note_not_a_crash():
    m = compute_metrics(["real", "real"], [1.0, 2.0], n_bootstrap=10)
    assert m["auc"] is None and m["eer"] is None and m["min_dcf"] is None and "both classes" in m["note"]
    with pytest.raises(ValueError, match="'real' or 'fake'"):
        compute_metrics(["bonafide"], [1.0])


def test_atomic_write_text(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["metrics.json"]  # no temporary file left behind


def test_set_seed_and_device():
    set_seed(3)
    a = (np.random.rand(), torch.rand(1).item())
    set_seed(3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cpu"):
            pick_device("cuda")


def test_init_wandb_offline_and_disabled(tmp_path):
    assert init_wandb("ssl-aasist-test", tmp_path, {"a": 1}, mode="disabled") is None
    run = init_wandb("ssl-aasist-test", tmp_path, {"a": 1})  # the test env sets WANDB_MODE=offline
    try:
        run.log({"x": 1.0})
        assert run.config["a"] == 1
    finally:
        run.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_one_metric_table_and_one_comparison():
    """metric_table: metrics.json holds every metric the table lists, and compare_metrics judges each change
    by the metric's own direction (a higher AUC and a lower EER are better; a threshold is neither)."""
    from antispoof.evaluation.metric_table import METRIC_KEYS, compare_metrics

    rng = np.random.default_rng(0)
    labels = ["real"] * 30 + ["fake"] * 30
    before = compute_metrics(labels, np.r_[rng.normal(1, 1, 30), rng.normal(-1, 1, 30)], n_bootstrap=20)
    after = compute_metrics(labels, np.r_[rng.normal(2, 1, 30), rng.normal(-2, 1, 30)], n_bootstrap=20)
    assert set(METRIC_KEYS) <= set(before)
    rows = {r["key"]: r for r in compare_metrics(before, after)}
    assert rows["auc"]["improved"] is True and rows["auc"]["change"] > 0
    assert rows["eer"]["improved"] is True and rows["eer"]["before"] == 100 * before["eer"]  # printed in %
    assert rows["eer_threshold"]["improved"] is None and rows["n_real"]["change"] == 0
    assert rows["n_real"]["improved"] is None and isinstance(rows["n_real"]["before"], int)
    worse = {r["key"]: r for r in compare_metrics(after, before)}
    assert worse["auc"]["improved"] is False and worse["min_dcf"]["improved"] is False
    assert isinstance(rows["auc"]["overlap"], bool)
