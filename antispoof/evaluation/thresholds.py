"""The one verdict comparison, and the score at which a calibrated decision flips.

Every part of the project that decides, counts or reports a verdict calls these: score.py and the app
(scoring/decision.py), metrics.json's error rates at a threshold and actDCF (metrics.py), the analysis report
(reports/analysis.py) and the figures. The convention is the one ASVspoof 5's actDCF uses:

    a file is called real when its value >= the threshold

where the value is the score (higher = more real) or the calibrated natural-log LLR. A file exactly at the
threshold is real everywhere. This module imports numpy only, so the metrics can use it without importing
the scoring code.
"""

from __future__ import annotations

import numpy as np

RULE = "real when score >= threshold"


def is_real(values, threshold: float) -> np.ndarray:
    """True where a file is called real: its score (or calibrated LLR) is at or above `threshold`."""
    return np.asarray(values, dtype=np.float64) >= threshold


def error_rates(real_values, fake_values, threshold: float) -> tuple[float, float]:
    """(false reject rate, false accept rate) of the rule: the fraction of real files called fake, and of
    fake files called real. An empty class gives NaN for its rate."""
    real = np.asarray(real_values, dtype=np.float64)
    fake = np.asarray(fake_values, dtype=np.float64)
    frr = float(np.mean(~is_real(real, threshold))) if len(real) else float("nan")
    far = float(np.mean(is_real(fake, threshold))) if len(fake) else float("nan")
    return frr, far


def score_at_llr(calibration: dict, llr: float) -> float:
    """The score whose calibrated LLR (llr = scale * score + offset, scale > 0) is `llr`: the Bayes
    threshold -log(beta), or a band edge, mapped back onto the score.

    Decisions compare the score with this value (never the LLR with its threshold), so that a file exactly
    at the threshold gets the same verdict from score.py, metrics.json and the report whatever the rounding
    of the affine map.
    """
    return (llr - calibration["offset"]) / calibration["scale"]
