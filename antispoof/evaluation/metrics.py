"""Detection metrics: EER, AUC, minDCF, actDCF, Cllr, minCllr, bootstrap intervals, per-group breakdowns.

Conventions, as in ASVspoof: the positive (target) class is real (bona fide) and a higher score means "more
likely real". EER, minDCF, actDCF and Cllr give the numbers of the official ASVspoof 5 evaluation package
(evaluation-package/calculate_modules.py; tests/test_metrics.py checks them against its output on the same
scores, tests/data/asvspoof5_reference.json). actDCF and Cllr read the score as a natural-log likelihood ratio
(LLR) of bona fide vs spoof: on raw detector scores they measure calibration as much as discrimination, and
they mean what they say only on calibrated LLRs (calibration.py). `metrics_from_rows` makes metrics.json from
scores.csv rows and `summary_line` the one line an evaluation prints.
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from antispoof.evaluation.metric_table import METRIC_KEYS
from antispoof.evaluation.thresholds import RULE, error_rates

POSITIVE_CLASS = "real (bona fide)"
SCORE_DIRECTION = "higher score = more likely real (score_definition says how the score is computed)"
LLR_NOTE = (
    "act_dcf and cllr read `score` as a natural-log likelihood ratio (bona fide vs spoof); a raw detector "
    "score is not one, so on raw scores they also measure miscalibration. min_dcf, min_cllr, eer and auc "
    "do not depend on calibration. `calibrated` (when present) gives them on the calibrated `llr`."
)


@dataclass(frozen=True)
class OperatingPoint:
    """A Bayes decision setting: prior of a spoof (fake) and the two error costs.

    The default is ASVspoof 5 Track 1's (Pspoof 0.05, Cmiss 1 for rejecting bona fide, Cfa 10 for accepting
    a spoof). On natural-log LLRs the cost-minimizing rule is "real when llr >= llr_threshold",
    llr_threshold = -log(beta) with beta = Cmiss (1 - Pspoof) / (Cfa Pspoof) (1.9, so about -0.642).
    """

    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0

    def __post_init__(self):
        if not 0 < self.p_spoof < 1:
            raise ValueError(f"the prior of a spoof must be strictly between 0 and 1, got {self.p_spoof}")
        if not (self.c_miss > 0 and self.c_fa > 0 and math.isfinite(self.c_miss * self.c_fa)):
            raise ValueError(f"costs must be positive and finite, got c_miss {self.c_miss}, c_fa {self.c_fa}")

    @property
    def beta(self) -> float:
        return self.c_miss * (1 - self.p_spoof) / (self.c_fa * self.p_spoof)

    @property
    def llr_threshold(self) -> float:
        """The Bayes threshold on a natural-log LLR (bona fide vs spoof): real when llr >= it."""
        return -math.log(self.beta)

    @property
    def normalizer(self) -> float:
        """The cost of the better of "accept all" and "reject all": a normalized DCF of 1 is no better."""
        return min(self.c_miss * (1 - self.p_spoof), self.c_fa * self.p_spoof)

    def describe(self) -> str:
        return (
            f"Pspoof {self.p_spoof:g}, Cmiss {self.c_miss:g}, Cfa {self.c_fa:g}: real when "
            f"llr >= {self.llr_threshold:.4f} (= -log beta, beta {self.beta:.4g})"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "llr_threshold": self.llr_threshold, "rule": self.describe()}


ASVSPOOF5 = OperatingPoint()


def det_curve(real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every threshold, as in the ASVspoof scripts.

    Returns (frr, far, thresholds), each of length N + 1 for N scores. Entry i rejects (calls fake) the i
    lowest scores, i.e. the project's rule "real when score >= thresholds[i]" (thresholds.py; up to ties):
    thresholds[i] is the lowest score accepted, and the last entry, which rejects everything, lies 0.001
    above the highest score. (The ASVspoof package lists the highest score rejected instead, for the rule
    "real when score > t": the same points, each named by the neighbouring score.) frr is the fraction of
    real files rejected, far the fraction of fake files accepted.
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
    thresholds = np.concatenate([scores[order], [scores[order[-1]] + 0.001]])
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


def dcf_curve(frr: np.ndarray, far: np.ndarray, op: OperatingPoint = ASVSPOOF5) -> np.ndarray:
    """Normalized detection cost at every point of a DET curve (as the ASVspoof 5 package's minDCF)."""
    return (op.c_miss * (1 - op.p_spoof) * frr + op.c_fa * op.p_spoof * far) / op.normalizer


def compute_min_dcf(
    real_scores: Sequence[float], fake_scores: Sequence[float], op: OperatingPoint = ASVSPOOF5
) -> tuple[float, float]:
    """Minimum normalized DCF over every threshold of the DET curve, and that threshold (ASVspoof 5 minDCF).

    The cost a perfectly calibrated system would pay: 0 is perfect, 1 is no better than a fixed decision.
    """
    if len(real_scores) == 0 or len(fake_scores) == 0:
        raise ValueError("minDCF needs at least one real and one fake score")
    frr, far, thresholds = det_curve(np.asarray(real_scores), np.asarray(fake_scores))
    costs = dcf_curve(frr, far, op)
    i = int(np.argmin(costs))  # the first minimum, as the reference's strict '<' scan
    return float(costs[i]), float(thresholds[i])


def compute_act_dcf(
    real_llrs: Sequence[float], fake_llrs: Sequence[float], op: OperatingPoint = ASVSPOOF5
) -> float:
    """Normalized DCF of the Bayes decisions "real when llr >= -log(beta)" (ASVspoof 5 actDCF).

    The cost actually paid when the scores are used as natural-log LLRs; actDCF - minDCF is the price of
    miscalibration at this operating point.
    """
    real, fake = np.asarray(real_llrs, dtype=np.float64), np.asarray(fake_llrs, dtype=np.float64)
    if len(real) == 0 or len(fake) == 0:
        raise ValueError("actDCF needs at least one real and one fake score")
    miss, false_alarm = error_rates(real, fake, op.llr_threshold)
    return float(dcf_curve(miss, false_alarm, op))


def compute_cllr(real_llrs: Sequence[float], fake_llrs: Sequence[float]) -> float:
    """Cllr in bits: the mean cross-entropy of natural-log LLRs at prior 0.5 (ASVspoof 5 Cllr).

    0 is perfect, 1 is a system that always says llr = 0 (no information), above 1 is worse than that.
    """
    real, fake = np.asarray(real_llrs, dtype=np.float64), np.asarray(fake_llrs, dtype=np.float64)
    if len(real) == 0 or len(fake) == 0:
        raise ValueError("Cllr needs at least one real and one fake score")
    # logaddexp(0, -x) = log(1 + exp(-x)) without overflow for very negative x
    return float((np.mean(np.logaddexp(0, -real)) + np.mean(np.logaddexp(0, fake))) / (2 * math.log(2)))


def pav_llrs(real_scores: Sequence[float], fake_scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The LLRs of the best monotone calibration of these scores (pool-adjacent-violators), real then fake.

    Equal scores are pooled first (a monotone map gives them one value). PAV then fits the non-decreasing
    posterior P(real | score) closest to the labels; dividing out the data's own prior odds turns it into
    LLRs (+-inf where a pool holds one class only).
    """
    real, fake = np.asarray(real_scores, dtype=np.float64), np.asarray(fake_scores, dtype=np.float64)
    scores = np.concatenate([real, fake])
    unique, inverse = np.unique(scores, return_inverse=True)
    is_real = np.r_[np.ones(len(real)), np.zeros(len(fake))]
    n_real = np.bincount(inverse, weights=is_real, minlength=len(unique))
    n_all = np.bincount(inverse, minlength=len(unique)).astype(np.float64)
    blocks: list[list[float]] = []  # [real count, file count, distinct scores] of each pooled block
    for r, n in zip(n_real, n_all, strict=True):
        blocks.append([r, n, 1])
        # merge while the block before has a posterior at least as high (cross-multiplied: no division)
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] >= blocks[-1][0] * blocks[-2][1]:
            r_last, n_last, k_last = blocks.pop()
            blocks[-1][0] += r_last
            blocks[-1][1] += n_last
            blocks[-1][2] += k_last
    posterior = np.repeat([b[0] / b[1] for b in blocks], [b[2] for b in blocks])[inverse]
    prior_log_odds = math.log(len(real) / len(fake))
    with np.errstate(divide="ignore"):
        llrs = np.log(posterior) - np.log1p(-posterior) - prior_log_odds
    return llrs[: len(real)], llrs[len(real) :]


def compute_min_cllr(real_scores: Sequence[float], fake_scores: Sequence[float]) -> float:
    """minCllr in bits: the Cllr after the best monotone calibration (PAV) of the scores.

    What Cllr would be with perfect calibration; Cllr - minCllr is the calibration loss.
    """
    if len(real_scores) == 0 or len(fake_scores) == 0:
        raise ValueError("minCllr needs at least one real and one fake score")
    return compute_cllr(*pav_llrs(real_scores, fake_scores))


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
    llrs: Sequence[float] | None = None,
    op: OperatingPoint = ASVSPOOF5,
) -> dict:
    """metrics.json's numbers for labels "real"/"fake" and real-class scores (higher = more real).

    AUC, EER (+ threshold), minDCF (+ threshold), actDCF, Cllr and minCllr at the operating point `op`
    (default ASVspoof 5's), with 95 % bootstrap intervals: real and fake files are resampled separately
    (class sizes stay fixed) `n_bootstrap` times (0 = no intervals; minCllr gets none). `llrs`: the same
    files' calibrated natural-log LLRs; then `calibrated` holds actDCF, Cllr (with intervals), minDCF,
    minCllr and the error rates of the Bayes decisions "real when llr >= op.llr_threshold". With
    `threshold` (a decision threshold on the score), also the error rates of "real when score >= threshold".
    With only one class present the metrics are None and `note` says why. `polarity_warning` is set when
    AUC < 0.5.
    """
    labels = list(labels)
    bad = sorted({lab for lab in labels if lab not in ("real", "fake")})
    if bad:
        raise ValueError(f"labels must be 'real' or 'fake', got {bad}")
    y = np.array([lab == "real" for lab in labels], dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    real, fake = s[y == 1], s[y == 0]
    metrics: dict = {key: None for key in (*METRIC_KEYS, "min_dcf_threshold")}  # metric_table's list
    metrics.update({f"{key}_ci95": None for key in CI_KEYS})
    metrics.update(
        n_real=int(len(real)),
        n_fake=int(len(fake)),
        positive_class=POSITIVE_CLASS,
        score_direction=SCORE_DIRECTION,
        operating_point=op.as_dict(),
        llr_note=LLR_NOTE,
        n_bootstrap=int(n_bootstrap),
        polarity_warning=None,
    )
    if len(real) == 0 or len(fake) == 0:
        metrics["note"] = f"metrics need both classes; got {len(real)} real and {len(fake)} fake files"
        return metrics
    metrics["auc"] = compute_auc(y, s)
    metrics["eer"], metrics["eer_threshold"] = compute_eer(real, fake)
    metrics["min_dcf"], metrics["min_dcf_threshold"] = compute_min_dcf(real, fake, op)
    metrics["act_dcf"] = compute_act_dcf(real, fake, op)
    metrics["cllr"] = compute_cllr(real, fake)
    metrics["min_cllr"] = compute_min_cllr(real, fake)
    llr = None if llrs is None else np.asarray(llrs, dtype=np.float64)
    if llr is not None:
        if llr.shape != s.shape or not np.all(np.isfinite(llr)):
            raise ValueError("llrs must be finite numbers, one per score")
        metrics["calibrated"] = calibrated_metrics(llr[y == 1], llr[y == 0], op)
    if n_bootstrap > 0:
        llr_pair = None if llr is None else (llr[y == 1], llr[y == 0])
        intervals = bootstrap_ci(real, fake, n_bootstrap, seed, op=op, llrs=llr_pair)
        for key in CI_KEYS:
            metrics[f"{key}_ci95"] = intervals[key]
        if llr is not None:
            for key in ("act_dcf", "cllr"):
                metrics["calibrated"][f"{key}_ci95"] = intervals[f"calibrated_{key}"]
    if threshold is not None:  # the verdicts score.py gives at this threshold (thresholds.is_real)
        frr, far = error_rates(real, fake, threshold)
        metrics["threshold"] = float(threshold)
        metrics["decision_rule"] = RULE
        metrics["frr_at_threshold"] = frr
        metrics["far_at_threshold"] = far
        metrics["accuracy_at_threshold"] = float((len(real) * (1 - frr) + len(fake) * (1 - far)) / len(s))
    if metrics["auc"] < 0.5:
        metrics["polarity_warning"] = polarity_message(metrics["auc"])
    return metrics


DCF_KEYS = ("min_dcf", "min_dcf_threshold", "act_dcf", "cllr")
CI_KEYS = ("auc", "eer", "min_dcf", "act_dcf", "cllr")


def calibrated_metrics(real_llrs: np.ndarray, fake_llrs: np.ndarray, op: OperatingPoint = ASVSPOOF5) -> dict:
    """actDCF, Cllr, minDCF, minCllr of calibrated LLRs, and the error rates of their Bayes decisions."""
    frr, far = error_rates(real_llrs, fake_llrs, op.llr_threshold)
    return {
        "act_dcf": compute_act_dcf(real_llrs, fake_llrs, op),
        "cllr": compute_cllr(real_llrs, fake_llrs),
        "min_dcf": compute_min_dcf(real_llrs, fake_llrs, op)[0],
        "min_cllr": compute_min_cllr(real_llrs, fake_llrs),
        "llr_threshold": op.llr_threshold,
        "frr_at_llr_threshold": frr,
        "far_at_llr_threshold": far,
    }


def bootstrap_ci(
    real: np.ndarray,
    fake: np.ndarray,
    n_bootstrap: int = 1000,
    seed: int = 0,
    *,
    op: OperatingPoint = ASVSPOOF5,
    llrs: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, list[float]]:
    """95 % percentile intervals ([lo, hi]) over stratified bootstrap resamples: auc, eer, min_dcf, act_dcf,
    cllr of the scores and, with `llrs` (real, fake LLRs of the same files, resampled with them),
    calibrated_act_dcf and calibrated_cllr."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_bootstrap):
        i_real = rng.integers(0, len(real), len(real))
        i_fake = rng.integers(0, len(fake), len(fake))
        r, f = real[i_real], fake[i_fake]
        frr, far, _ = det_curve(r, f)
        k = int(np.argmin(np.abs(frr - far)))
        values = {
            "auc": _fast_auc(r, f),
            "eer": (frr[k] + far[k]) / 2,
            "min_dcf": float(np.min(dcf_curve(frr, far, op))),
            "act_dcf": compute_act_dcf(r, f, op),
            "cllr": compute_cllr(r, f),
        }
        if llrs is not None:
            lr, lf = llrs[0][i_real], llrs[1][i_fake]
            values["calibrated_act_dcf"] = compute_act_dcf(lr, lf, op)
            values["calibrated_cllr"] = compute_cllr(lr, lf)
        for key, value in values.items():
            draws.setdefault(key, []).append(value)
    return {key: _percentiles(values) for key, values in draws.items()}


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


def metrics_by_group(rows: list[dict], op: OperatingPoint = ASVSPOOF5) -> dict:
    """AUC, EER, minDCF, actDCF, Cllr, minCllr of each group (attack, generator, sub-folder) against every
    file of the other class.

    As ASVspoof reports per-attack EERs: the fakes of one group against all the real files (and the reals
    of one group against all the fakes). Keys "fake/<group>" / "real/<group>", hardest (highest EER) first;
    {} when no file has a group. Rows with an `llr` add the calibrated actDCF and Cllr.
    """
    scores: dict[str, list[tuple[float, float | None]]] = {"real": [], "fake": []}
    members: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for r in rows:
        pair = (r["score"], r.get("llr"))
        scores[r["label"]].append(pair)
        if r.get("group"):
            members.setdefault((r["label"], r["group"]), []).append(pair)
    out = {}
    for (label, group), own in members.items():
        others = scores["fake" if label == "real" else "real"]
        if not others:
            continue
        real, fake = (own, others) if label == "real" else (others, own)
        real_s, fake_s = [p[0] for p in real], [p[0] for p in fake]
        eer, threshold = compute_eer(real_s, fake_s)
        y = np.r_[np.ones(len(real)), np.zeros(len(fake))]
        auc = compute_auc(y, np.r_[real_s, fake_s])
        out[f"{label}/{group}"] = {
            "n": len(own),
            "auc": auc,
            "eer": eer,
            "eer_threshold": threshold,
            "min_dcf": compute_min_dcf(real_s, fake_s, op)[0],
            "act_dcf": compute_act_dcf(real_s, fake_s, op),
            "cllr": compute_cllr(real_s, fake_s),
            "min_cllr": compute_min_cllr(real_s, fake_s),
        }
        if all(p[1] is not None for p in real + fake):
            real_l, fake_l = [p[1] for p in real], [p[1] for p in fake]
            out[f"{label}/{group}"]["calibrated"] = {
                "act_dcf": compute_act_dcf(real_l, fake_l, op),
                "cllr": compute_cllr(real_l, fake_l),
            }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["eer"]))


def group_table(by_group: dict, limit: int = 10) -> str:
    """The per-group breakdown as a few printed lines (hardest groups first)."""
    shown = f" ({limit} of {len(by_group)})" if len(by_group) > limit else ""
    lines = [f"per group, each against every file of the other class, hardest first{shown}:"]
    for name, m in list(by_group.items())[:limit]:
        lines.append(
            f"  {name:<32} n={m['n']:<6} AUC {m['auc']:.4f}  EER {100 * m['eer']:>6.2f} %  "
            f"minDCF {m['min_dcf']:.4f}"
        )
    return "\n".join(lines)


def metrics_from_rows(rows: list[dict], **metric_opts) -> dict:
    """metrics.json content from scores.csv rows: `compute_metrics` (with the calibrated `llr` column when
    every scored row has one) + skipped files by reason."""
    ok = [r for r in rows if r["status"] == "ok"]
    llrs = [r["llr"] for r in ok] if ok and all(r.get("llr") is not None for r in ok) else None
    metrics = compute_metrics([r["label"] for r in ok], [r["score"] for r in ok], llrs=llrs, **metric_opts)
    op = metric_opts.get("op", ASVSPOOF5)
    skipped = Counter(r["status"] for r in rows if r["status"] != "ok")
    metrics.update(
        n_files=len(rows),
        n_scored=len(ok),
        n_skipped=sum(skipped.values()),
        skipped_reasons=dict(skipped.most_common()),
        n_cropped=sum(r["note"].startswith("cropped") for r in ok),
        by_group=metrics_by_group(ok, op),
    )
    return metrics


def summary_line(metrics: dict, out_dir: str | os.PathLike) -> str:
    """One line: AUC and EER with their 95 % intervals, minDCF, counts, the convention, where files are."""

    def ci(key, scale=1.0, fmt="{:.3f}"):
        lo_hi = metrics.get(f"{key}_ci95")
        return f" [{fmt.format(lo_hi[0] * scale)}, {fmt.format(lo_hi[1] * scale)}]" if lo_hi else ""

    if metrics["auc"] is None:
        result = metrics.get("note", "no metrics")
    else:
        auc = f"AUC {metrics['auc']:.4f}{ci('auc')}"
        eer = f"EER {100 * metrics['eer']:.2f} %{ci('eer', 100, '{:.2f}')}"
        result = f"{auc}  {eer} (threshold {metrics['eer_threshold']:.3f})  minDCF {metrics['min_dcf']:.4f}"
        if metrics.get("calibrated"):
            cal = metrics["calibrated"]
            result += f"  calibrated: actDCF {cal['act_dcf']:.4f}, Cllr {cal['cllr']:.3f} bits"
    skipped = f", {metrics['n_skipped']} skipped" if metrics["n_skipped"] else ""
    return (
        f"{result} | {metrics['n_real']} real, {metrics['n_fake']} fake{skipped} | positive = real, "
        f"higher score = more real | {out_dir}/metrics.json"
    )


def print_polarity_warning(message: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\nPOLARITY WARNING: {message}\n{bar}\n", file=sys.stderr)
