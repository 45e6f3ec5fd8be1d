"""Score calibration: an affine map from a detector's score to a natural-log likelihood ratio (LLR).

    cal = fit(real_scores, fake_scores, policy="head n=64600", weights_sha256=sha, score_kind="logit_real")
    save(checkpoint_path, cal)                      # <checkpoint>.calibration.json beside the checkpoint
    cal, where = find(checkpoint_path, info)        # the side file, else the one inside a project checkpoint
    check_applies(cal, policy=..., weights_sha256=..., where=where)   # refuses other weights or policies
    llrs = apply(cal, scores)

`llr = scale * score + offset` is the log of P(score | bona fide) / P(score | spoof): positive = evidence for
real. The map is fitted by prior-weighted logistic regression, as the BOSARIS / FoCal tools used for ASVspoof
score fusion do: each class's mean cross-entropy is weighted by the fitting prior, and the prior log-odds are
added to the LLR inside the sigmoid, so the LLR itself carries no prior. Labels are smoothed as in Platt
(1999), with the Jeffreys pseudo-count 1/2 instead of his 1 ((N_real + 1/2) / (N_real + 1) for a real file,
(1/2) / (N_fake + 1) for a fake one): classes that separate perfectly (the bundled sample does) then give a
steep but finite map instead of an infinite one, whose confidence grows with the number of files.

A calibration is only valid for the model (weights and config) and the scoring policy it was fitted under (a
window-mean score is not distributed like a first-4-s score): it records them, and `check_applies` refuses
any other.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np

from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint, compute_cllr, compute_min_cllr
from antispoof.utils import write_json

FORMAT = "ssl-aasist-calibration/1"
SIDE_SUFFIX = ".calibration.json"
METHOD = (
    "prior-weighted logistic regression (BOSARIS/FoCal), Jeffreys-smoothed labels (N + 1/2) / (N + 1): "
    "llr = scale * score + offset, natural log, bona fide vs spoof"
)


class CalibrationError(ValueError):
    """A calibration that is malformed, or that does not belong to these weights or this scoring policy."""


def effective_p_spoof(op: OperatingPoint = ASVSPOOF5) -> float:
    """The spoof prior that folds the costs in: Cfa Pspoof / (Cfa Pspoof + Cmiss (1 - Pspoof)) (0.345 for
    ASVspoof 5). Fitting at it makes the LLRs most accurate around that operating point's threshold."""
    return op.c_fa * op.p_spoof / (op.c_fa * op.p_spoof + op.c_miss * (1 - op.p_spoof))


def fit_affine(
    real_scores, fake_scores, p_spoof: float = effective_p_spoof(), iterations: int = 100
) -> tuple[float, float]:
    """(scale, offset) of the LLR map minimizing the prior-weighted cross-entropy with smoothed labels.

    Newton's method with step halving on the convex 2-parameter objective; the scores are standardized first
    so that the steps are well conditioned whatever their range.
    """
    real = np.asarray(real_scores, dtype=np.float64)
    fake = np.asarray(fake_scores, dtype=np.float64)
    if len(real) == 0 or len(fake) == 0:
        raise CalibrationError(
            f"calibration needs real and fake files; got {len(real)} real, {len(fake)} fake"
        )
    if not (np.all(np.isfinite(real)) and np.all(np.isfinite(fake))):
        raise CalibrationError("calibration needs finite scores")
    if not 0 < p_spoof < 1:
        raise CalibrationError(
            f"the fitting prior of a spoof must be strictly between 0 and 1, got {p_spoof}"
        )
    s = np.concatenate([real, fake])
    center, spread = float(s.mean()), float(s.std()) or 1.0
    x = (s - center) / spread
    target = np.r_[
        np.full(len(real), (len(real) + 0.5) / (len(real) + 1)), np.full(len(fake), 0.5 / (len(fake) + 1))
    ]
    weight = np.r_[np.full(len(real), (1 - p_spoof) / len(real)), np.full(len(fake), p_spoof / len(fake))]
    prior_log_odds = math.log((1 - p_spoof) / p_spoof)  # of real

    def loss(w: np.ndarray) -> float:
        z = w[0] * x + w[1] + prior_log_odds
        return float(np.sum(weight * (np.logaddexp(0, z) - target * z)))  # cross-entropy with soft targets

    w = np.zeros(2)
    for _ in range(iterations):
        z = w[0] * x + w[1] + prior_log_odds
        p = 1 / (1 + np.exp(-z))
        features = np.stack([x, np.ones_like(x)])  # (2, N)
        grad = features @ (weight * (p - target))
        hess = (features * (weight * p * (1 - p))) @ features.T + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        current, t = loss(w), 1.0
        while loss(w - t * step) > current and t > 1e-6:
            t /= 2
        w = w - t * step
        if np.max(np.abs(t * step)) < 1e-10:
            break
    scale = w[0] / spread
    return float(scale), float(w[1] - scale * center)


def fit(
    real_scores,
    fake_scores,
    *,
    policy: str,
    weights_sha256: str,
    config_sha256: str | None = None,
    score_kind: str = "logit_real",
    op: OperatingPoint = ASVSPOOF5,
    p_spoof_fit: float | None = None,
    data: str = "",
) -> dict:
    """A complete calibration dict: the fitted map, what it applies to, how it was fitted and how well.

    `p_spoof_fit`: the fitting prior (default: `effective_p_spoof(op)`). `data`: where the scores came from.
    `config_sha256`: `checkpoints.files.config_sha256` of the model (the scripts always give it).
    """
    p_fit = effective_p_spoof(op) if p_spoof_fit is None else p_spoof_fit
    scale, offset = fit_affine(real_scores, fake_scores, p_fit)
    if not scale > 0:
        raise CalibrationError(
            f"the fitted scale is {scale:.4g}: on these data the score does not grow with realness (AUC <= "
            "0.5). Check that real files are labelled real and that the run used the right checkpoint."
        )
    real, fake = np.asarray(real_scores, dtype=np.float64), np.asarray(fake_scores, dtype=np.float64)
    stats = {
        "method": METHOD,
        "p_spoof": p_fit,
        "data": data,
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
        "cllr_raw": compute_cllr(real, fake),
        "cllr_calibrated": compute_cllr(scale * real + offset, scale * fake + offset),
        "min_cllr": compute_min_cllr(real, fake),
    }
    return build(
        scale,
        offset,
        policy=policy,
        weights_sha256=weights_sha256,
        config_sha256=config_sha256,
        score_kind=score_kind,
        fit=stats,
    )


def build(
    scale: float,
    offset: float,
    *,
    policy: str,
    weights_sha256: str,
    score_kind: str,
    fit: dict,
    config_sha256: str | None = None,
) -> dict:
    """A calibration dict from a fitted map; `fit` says how and on what it was fitted. Validated."""
    cal = {
        "format": FORMAT,
        "scale": scale,
        "offset": offset,
        "llr": "natural-log likelihood ratio of bona fide vs spoof: llr = scale * score + offset",
        "policy": policy,
        "weights_sha256": weights_sha256,
        **({"config_sha256": config_sha256} if config_sha256 else {}),
        "score_kind": score_kind,
        "fit": fit,
    }
    return validate(cal, "the fitted calibration")


def validate(cal, where: str) -> dict:
    """`cal` if it is a usable calibration, else CalibrationError saying what is wrong and what to do.

    Finite numbers only: a NaN scale would make every LLR NaN and every verdict "fake".
    """
    fix = "re-fit it with calibrate.py --run RUN (see README)"
    if not isinstance(cal, dict):
        raise CalibrationError(f"{where}: a calibration is a JSON object, got {type(cal).__name__}; {fix}")
    if cal.get("format") != FORMAT:
        if "threshold" in cal and "scale" not in cal:
            raise CalibrationError(
                f"{where} holds only an EER threshold (an older fine_tune_for.py) with no record of the "
                f"scoring policy it was found under, so it is not applied; {fix}"
            )
        raise CalibrationError(f"{where}: format {cal.get('format')!r}, expected {FORMAT!r}; {fix}")
    for key in ("scale", "offset"):
        value = cal.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CalibrationError(f"{where}: {key} must be a finite number, got {value!r}; {fix}")
    if not cal["scale"] > 0:
        raise CalibrationError(
            f"{where}: scale must be positive (higher score = more real), got {cal['scale']}"
        )
    if not isinstance(cal.get("policy"), str) or not cal["policy"]:
        raise CalibrationError(f"{where}: no scoring policy recorded; {fix}")
    if not isinstance(cal.get("weights_sha256"), str) or not re.fullmatch(
        r"[0-9a-f]{64}", cal["weights_sha256"]
    ):
        raise CalibrationError(
            f"{where}: weights_sha256 must be 64 hex digits, got {cal.get('weights_sha256')!r}"
        )
    if "config_sha256" in cal and not (
        isinstance(cal["config_sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", cal["config_sha256"])
    ):
        raise CalibrationError(
            f"{where}: config_sha256 must be 64 hex digits, got {cal.get('config_sha256')!r}"
        )
    return cal


def check_applies(
    cal: dict, *, policy: str, weights_sha256: str, where: str, config_sha256: str | None = None
) -> None:
    """Refuse (CalibrationError) a calibration fitted for other weights, another model config (the same
    weights under other pool_ratios score differently) or under another scoring policy. A calibration of an
    older version records no config: it is checked on the weights and policy only."""
    if cal["weights_sha256"] != weights_sha256:
        raise CalibrationError(
            f"{where} was fitted for other weights (weights_sha256 {cal['weights_sha256'][:12]}..., these "
            f"are {weights_sha256[:12]}...): its LLRs would be wrong. Re-fit it for this checkpoint with "
            "calibrate.py, or delete it."
        )
    if config_sha256 and cal.get("config_sha256") and cal["config_sha256"] != config_sha256:
        raise CalibrationError(
            f"{where} was fitted for these weights under another model config (config_sha256 "
            f"{cal['config_sha256'][:12]}..., this one is {config_sha256[:12]}...; --model-config changes "
            "it): its LLRs would be wrong. Score without the config change, or re-fit it (calibrate.py)."
        )
    if cal["policy"] != policy:
        raise CalibrationError(
            f"{where} was fitted under the scoring policy {cal['policy']!r}, not {policy!r}: scores under "
            "another policy are distributed differently. Score with the policy it was fitted under, or "
            "re-fit it on a run scored with this one (calibrate.py --run RUN)."
        )


def apply(cal: dict, scores) -> np.ndarray:
    """The natural-log LLRs of `scores` (higher = more real)."""
    return cal["scale"] * np.asarray(scores, dtype=np.float64) + cal["offset"]


def p_fake(llrs, p_spoof: float) -> np.ndarray:
    """Posterior probability of fake given the LLRs and a prior probability of a fake."""
    log_odds_real = np.asarray(llrs, dtype=np.float64) + math.log((1 - p_spoof) / p_spoof)
    return 1 / (1 + np.exp(log_odds_real))


def side_file(checkpoint: str | os.PathLike) -> Path:
    """Where the calibration of a checkpoint file lives: `<checkpoint file>.calibration.json`."""
    return Path(str(checkpoint) + SIDE_SUFFIX)


def save(checkpoint: str | os.PathLike, cal: dict) -> Path:
    """Write `cal` beside the checkpoint file (atomically); returns the side file's path."""
    path = side_file(checkpoint)
    write_json(path, validate(cal, "calibration"))
    return path


def find(checkpoint: str | os.PathLike | None, info: dict) -> tuple[dict | None, str]:
    """The calibration that goes with a loaded checkpoint, and where it was found.

    The side file `<info["source"]>.calibration.json` wins (calibrate.py writes it for your data), else the
    one stored inside a project checkpoint (fine_tune_for.py's, fitted on validation). (None, "") if neither.
    Raises CalibrationError for a malformed one: a broken calibration is never silently skipped.
    """
    source = info.get("source") or checkpoint
    if source is not None and side_file(source).is_file():
        path = side_file(source)
        try:
            cal = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CalibrationError(f"{path} cannot be read as JSON ({err}); re-fit it or delete it") from err
        return validate(cal, str(path)), str(path)
    if info.get("calibration"):
        where = f"the calibration stored in {source}"
        return validate(info["calibration"], where), where
    return None, ""


def summary(cal: dict, where: str, op: OperatingPoint = ASVSPOOF5) -> dict:
    """What metrics.json and the scripts' outputs say about an applied calibration."""
    return {
        "source": where,
        "scale": cal["scale"],
        "offset": cal["offset"],
        "policy": cal["policy"],
        "fitted_on": cal.get("fit", {}).get("data"),
        "llr": cal["llr"],
        "decision": op.describe(),
    }
