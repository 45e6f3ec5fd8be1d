"""metrics.py (EER as ASVspoof defines it, AUC, bootstrap intervals, polarity) and utils.py helpers."""

import json
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metrics import compute_eer, compute_metrics, det_curve
from utils import atomic_write_text, init_wandb, pick_device, set_seed


def test_eer_exact_crossing():
    # Sorted: .1f .2f .3r .4f .6f .7r .8r .9r. Rejecting the 4 lowest gives FRR = FAR = 1/4 at score 0.4.
    eer, threshold = compute_eer([0.9, 0.8, 0.7, 0.3], [0.6, 0.4, 0.2, 0.1])
    assert eer == pytest.approx(0.25) and threshold == pytest.approx(0.4)


def test_eer_without_crossing_takes_the_closest_point():
    # Sorted: 0f 1r 2r 2.5f 3r 3.5f 4r 5r. |FRR - FAR| is smallest (1/15) after rejecting the 4 lowest:
    # FRR = 2/5, FAR = 1/3, so EER = (2/5 + 1/3) / 2 = 11/30 at threshold 2.5.
    eer, threshold = compute_eer([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 2.5, 3.5])
    assert eer == pytest.approx(11 / 30) and threshold == pytest.approx(2.5)


def test_eer_ties_sort_real_first_like_the_reference():
    # A stable sort with real scores listed first: a tie rejects the real file before the fake one.
    assert compute_eer([0.5], [0.5]) == (1.0, 0.5)


def test_eer_matches_threshold_sweep_on_random_scores():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(1, 1, 300), rng.normal(-1, 1, 200)
    eer, threshold = compute_eer(real, fake)
    # Independent: sweep "reject score <= t" over every score and take the closest FRR/FAR pair.
    best = min(
        (abs(np.mean(real <= t) - np.mean(fake > t)), (np.mean(real <= t) + np.mean(fake > t)) / 2, t)
        for t in np.sort(np.concatenate([real, fake]))
    )
    assert eer == pytest.approx(best[1]) and threshold == pytest.approx(best[2])
    frr, far, _ = det_curve(real, fake)
    assert frr[0] == 0 and far[0] == 1 and frr[-1] == 1 and far[-1] == 0
    assert np.all(np.diff(frr) >= 0) and np.all(np.diff(far) <= 0)


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
    assert "real" in m["positive_class"] and "higher" in m["score_direction"]
    assert m["frr_at_threshold"] == pytest.approx(np.mean(scores[:60] <= 0))
    assert m["polarity_warning"] is None
    json.dumps(m)  # plain JSON types only
    again = compute_metrics(labels, scores, n_bootstrap=200, threshold=0.0)
    assert again == m  # the bootstrap is seeded


def test_polarity_warning_on_inverted_labels():
    scores = [2.0, 1.5, 1.0, -1.0, -1.5, -2.0]
    inverted = ["fake", "fake", "fake", "real", "real", "real"]
    m = compute_metrics(inverted, scores, n_bootstrap=0)
    assert m["auc"] == 0.0
    assert "inverted" in m["polarity_warning"] and "LABEL_TO_INDEX" in m["polarity_warning"]
    assert compute_metrics(list(reversed(inverted)), scores, n_bootstrap=0)["polarity_warning"] is None


def test_one_class_gives_a_note_not_a_crash():
    m = compute_metrics(["real", "real"], [1.0, 2.0], n_bootstrap=10)
    assert m["auc"] is None and m["eer"] is None and "both classes" in m["note"]
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
