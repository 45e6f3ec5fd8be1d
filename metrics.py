"""Detection metrics: EER, AUC, bootstrap intervals, per-group breakdowns.

Conventions, as in ASVspoof: the positive (target) class is real (bona fide) and a higher score means "more
likely real". `compute_eer` follows the ASVspoof evaluation scripts exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POSITIVE_CLASS = "real (bona fide)"
SCORE_DIRECTION = "higher score = more likely real (score = real-class logit)"


def det_curve(real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every threshold, as in the ASVspoof scripts.

    Returns (frr, far, thresholds), each of length N + 1 for N scores. Entry i rejects (calls fake) the i
    lowest scores, i.e. the rule "real when score > thresholds[i]" (up to ties); entry 0 accepts everything.
    frr is the fraction of real files rejected, far the fraction of fake files accepted.
    """
    real = np.asarray(real_scores, dtype=np.float64)
    fake = np.asarray(fake_scores, dtype=np.float64)
    scores = np.concatenate([real, fake])
    is_real = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    order = np.argsort(scores, kind="mergesort")  # stable: ties keep real before fake, as the reference does
    is_real = is_real[order]
    rejected_real = np.cumsum(is_real)  # real files at or below each sorted position
    rejected_fake = np.arange(1, len(scores) + 1) - rejected_real
    frr = np.concatenate([[0.0], rejected_real / len(real)])
    far = np.concatenate([[1.0], (len(fake) - rejected_fake) / len(fake)])
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return frr, far, thresholds


def compute_eer(real_scores: Sequence[float], fake_scores: Sequence[float]) -> tuple[float, float]:
    """Equal error rate and its threshold (ASVspoof definition).

    On the DET curve of `det_curve`, take the point where |FRR - FAR| is smallest (the first one on ties) and
    return (mean(FRR, FAR) there, the score threshold there).
    """
    if len(real_scores) == 0 or len(fake_scores) == 0:
        raise ValueError("EER needs at least one real and one fake score")
    frr, far, thresholds = det_curve(np.asarray(real_scores), np.asarray(fake_scores))
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(thresholds[i])


def compute_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC with real as the positive class (labels: 1 = real, 0 = fake)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def compute_metrics(
    labels: Sequence[str],
    scores: Sequence[float],
    *,
    n_bootstrap: int = 1000,
    threshold: float | None = None,
    seed: int = 0,
) -> dict:
    """AUC, EER (+ threshold) and 95 % bootstrap intervals for labels "real"/"fake" and real-class scores.

    The bootstrap resamples real and fake files separately (class sizes stay fixed) `n_bootstrap` times
    (0 = no intervals). With `threshold` (e.g. a checkpoint's calibrated one), also report the error rates
    of the rule "real when score > threshold". With only one class present, auc/eer are None and `note`
    says why. `polarity_warning` is set when AUC < 0.5.
    """
    labels = list(labels)
    bad = sorted({lab for lab in labels if lab not in ("real", "fake")})
    if bad:
        raise ValueError(f"labels must be 'real' or 'fake', got {bad}")
    y = np.array([lab == "real" for lab in labels], dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    real, fake = s[y == 1], s[y == 0]
    metrics: dict = {
        "auc": None,
        "eer": None,
        "eer_threshold": None,
        "auc_ci95": None,
        "eer_ci95": None,
        "n_real": int(len(real)),
        "n_fake": int(len(fake)),
        "positive_class": POSITIVE_CLASS,
        "score_direction": SCORE_DIRECTION,
        "n_bootstrap": int(n_bootstrap),
        "polarity_warning": None,
    }
    if len(real) == 0 or len(fake) == 0:
        metrics["note"] = f"AUC and EER need both classes; got {len(real)} real and {len(fake)} fake files"
        return metrics
    metrics["auc"] = compute_auc(y, s)
    metrics["eer"], metrics["eer_threshold"] = compute_eer(real, fake)
    if n_bootstrap > 0:
        metrics["auc_ci95"], metrics["eer_ci95"] = bootstrap_ci(real, fake, n_bootstrap, seed)
    if threshold is not None:
        metrics["threshold"] = float(threshold)
        metrics["frr_at_threshold"] = float(np.mean(real <= threshold))
        metrics["far_at_threshold"] = float(np.mean(fake > threshold))
        metrics["accuracy_at_threshold"] = float(
            (np.sum(real > threshold) + np.sum(fake <= threshold)) / len(s)
        )
    if metrics["auc"] < 0.5:
        metrics["polarity_warning"] = polarity_message(metrics["auc"])
    return metrics


def bootstrap_ci(
    real: np.ndarray, fake: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> tuple[list[float], list[float]]:
    """95 % percentile intervals ([lo, hi]) of AUC and EER over stratified bootstrap resamples."""
    rng = np.random.default_rng(seed)
    aucs, eers = [], []
    for _ in range(n_bootstrap):
        r = real[rng.integers(0, len(real), len(real))]
        f = fake[rng.integers(0, len(fake), len(fake))]
        aucs.append(_fast_auc(r, f))
        eers.append(compute_eer(r, f)[0])
    return _percentiles(aucs), _percentiles(eers)


def _fast_auc(real: np.ndarray, fake: np.ndarray) -> float:
    """AUC as the Mann-Whitney statistic (ties count 1/2): sklearn's roc_auc_score, without its overhead."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([real, fake]))
    return float((ranks[: len(real)].sum() - len(real) * (len(real) + 1) / 2) / (len(real) * len(fake)))


def _percentiles(values: list[float]) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def polarity_message(auc: float) -> str:
    """The explanation printed and recorded when AUC < 0.5."""
    return (
        f"AUC = {auc:.3f} is below 0.5: the scores rank fake files above real ones. If it is far below "
        f"0.5 (1 - AUC = {1 - auc:.3f} is the AUC with the direction flipped), the labels or the score "
        "direction are probably inverted: check that real files are labelled 'real', that the score is the "
        "real-class logit (output index 1 = real, higher = more real), and that the checkpoint was trained "
        "with model.LABEL_TO_INDEX (a fine-tune that maps real->0 inverts the model). Near 0.5 it just "
        "means the model cannot separate these data."
    )


def metrics_by_group(rows: list[dict]) -> dict:
    """AUC and EER of each group (attack, generator, sub-folder) against every file of the other class.

    As ASVspoof reports per-attack EERs: the fakes of one group against all the real files (and the reals
    of one group against all the fakes). Keys "fake/<group>" / "real/<group>", hardest (highest EER) first;
    {} when no file has a group.
    """
    scores = {"real": [], "fake": []}
    members: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        scores[r["label"]].append(r["score"])
        if r.get("group"):
            members.setdefault((r["label"], r["group"]), []).append(r["score"])
    out = {}
    for (label, group), own in members.items():
        others = scores["fake" if label == "real" else "real"]
        if not others:
            continue
        real, fake = (own, others) if label == "real" else (others, own)
        eer, threshold = compute_eer(real, fake)
        y = np.r_[np.ones(len(real)), np.zeros(len(fake))]
        auc = compute_auc(y, np.r_[real, fake])
        out[f"{label}/{group}"] = {"n": len(own), "auc": auc, "eer": eer, "eer_threshold": threshold}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["eer"]))


def group_table(by_group: dict, limit: int = 10) -> str:
    """The per-group breakdown as a few printed lines (hardest groups first)."""
    shown = f" ({limit} of {len(by_group)})" if len(by_group) > limit else ""
    lines = [f"per group, each against every file of the other class, hardest first{shown}:"]
    for name, m in list(by_group.items())[:limit]:
        lines.append(f"  {name:<32} n={m['n']:<6} AUC {m['auc']:.4f}  EER {100 * m['eer']:.2f} %")
    return "\n".join(lines)
