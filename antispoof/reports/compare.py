"""Comparing two evaluation runs of the same files (analyse.py --compare): the metrics side by side with
their intervals, AUC per group and attribute value, per-file verdict flips, and the diagnosis of the change
(inversion, domain shift, calibration change).

Conventions as in analysis.py: labels 1 = real, 0 = fake; higher score = more real.
"""

from __future__ import annotations

import numpy as np

from antispoof.evaluation.metric_table import METRICS, compare_metrics
from antispoof.evaluation.metrics import compute_auc
from antispoof.reports.analysis import (
    ATTRIBUTES,
    COLLAPSE_DROP,
    MIRROR_TOLERANCE,
    REST_STABLE,
    Run,
    attribute_value,
    auc_or_none,
    bin_order,
    error_rates,
)


def metric_changes(before: Run, after: Run) -> list[dict]:
    """Each metric both runs have (`metric_table.compare_metrics`: before, after, change, 95 % intervals and
    whether they overlap), then the errors per 100 files at each run's own operating threshold."""
    out = compare_metrics(before.metrics, after.metrics, METRICS)
    rates = [error_rates(run.labels, run.verdict_real()) for run in (before, after)]
    for k, name in enumerate(("false accepts / 100 fakes", "false rejects / 100 reals")):
        a, b = rates[0][k], rates[1][k]
        if a is not None and b is not None:
            out.append(
                dict(
                    metric=name,
                    before=a,
                    after=b,
                    change=b - a,
                    ci_before=None,
                    ci_after=None,
                    overlap=None,
                    spec=".1f",
                )
            )
    return out


def subset_auc(run: Run, mask: np.ndarray) -> float | None:
    """AUC of the files in `mask`: within them when they hold both classes, else against every file of the
    other class (as metrics.json's by_group)."""
    y = run.labels[mask]
    if not mask.any():
        return None
    if 0 < y.sum() < len(y):
        return compute_auc(y, run.scores[mask])
    other = (run.labels != y[0]) & ~mask
    both = mask | other
    return auc_or_none(run.labels[both], run.scores[both])


def subsets(run: Run, attrs: dict[str, dict]) -> dict[str, np.ndarray]:
    """Masks of the groups ("group fake/xtts") and attribute strata ("container = mp3") of a run."""
    out = {}
    for name in {f"{r['label']}/{r['group']}" for r in run.rows if r.get("group")}:
        label, group = name.split("/", 1)
        out[f"group {name}"] = np.array([r["label"] == label and r.get("group") == group for r in run.rows])
    for key, title, kind, edges in ATTRIBUTES:
        cells = [attribute_value(key, kind, edges, attrs[r["path"]]) for r in run.rows]
        if key != "format" and len(set(cells) - {None}) > 1:
            for value in bin_order(key, kind, edges, cells):
                out[f"{title} {value}"] = np.array([c == value for c in cells])
    return out


def subset_changes(before: Run, after: Run, attrs: dict[str, dict]) -> list[dict]:
    """AUC of every group and attribute stratum in both runs, and of the rest of the files."""
    sb, sa = subsets(before, attrs), subsets(after, attrs)
    out = []
    for name in [k for k in sb if k in sa]:  # groups first, then attributes
        a, b = subset_auc(before, sb[name]), subset_auc(after, sa[name])
        rest_a = auc_or_none(before.labels[~sb[name]], before.scores[~sb[name]])
        rest_b = auc_or_none(after.labels[~sa[name]], after.scores[~sa[name]])
        change = None if a is None or b is None else b - a
        out.append(
            dict(
                subset=name,
                n_before=int(sb[name].sum()),
                n_after=int(sa[name].sum()),
                before=a,
                after=b,
                change=change,
                rest_before=rest_a,
                rest_after=rest_b,
            )
        )
    return out


def paired(before: Run, after: Run) -> dict:
    """The files both runs scored: their labels, scores and verdicts in each run."""
    index = {r["path"]: i for i, r in enumerate(before.rows)}
    pairs = [(index[r["path"]], j) for j, r in enumerate(after.rows) if r["path"] in index]
    ib = np.array([i for i, _ in pairs], dtype=np.int64)
    ia = np.array([j for _, j in pairs], dtype=np.int64)
    return {
        "paths": [after.rows[j]["path"] for j in ia],
        "label_before": before.labels[ib],
        "label_after": after.labels[ia],
        "before": before.scores[ib],
        "after": after.scores[ia],
        "verdict_before": before.verdict_real()[ib],
        "verdict_after": after.verdict_real()[ia],
    }


def model_difference(before: Run, after: Run) -> str | None:
    """How the two runs' networks differ (architecture, or config: AASIST vs AASIST-L), from their run.json;
    None when they are the same network (or a run.json is missing). Then the runs are not one model before
    and after fine-tuning, and a change of score scale says nothing about calibration."""
    rb, ra = before.record, after.record
    if rb.get("arch") and ra.get("arch") and rb["arch"] != ra["arch"]:
        return f"the architectures differ ({rb['arch']} for {before.name}, {ra['arch']} for {after.name})"
    cb, ca = rb.get("model_config"), ra.get("model_config")
    if isinstance(cb, dict) and isinstance(ca, dict) and cb != ca:
        keys = sorted(k for k in set(cb) | set(ca) if cb.get(k) != ca.get(k))
        return (
            f"the networks differ in {', '.join(keys)} (e.g. AASIST and AASIST-L): {after.name} is not "
            f"{before.name} fine-tuned"
        )
    return None


def diagnose(before: Run, after: Run, pair: dict, changes: list[dict]) -> list[tuple[str, str]]:
    """What the numbers support, as (kind, text): "models" (the runs' networks differ, from run.json),
    "labels" (files whose label differs between the runs), "inversion", "domain_shift", "calibration" (only
    for one network), or "change" when no single cause stands out."""
    from scipy.stats import spearmanr

    a, b = before.metrics.get("auc"), after.metrics.get("auc")
    n = len(pair["paths"])
    relabelled = int(np.sum(pair["label_before"] != pair["label_after"]))
    rho = float(spearmanr(pair["before"], pair["after"]).statistic) if n > 2 else float("nan")
    found = []
    different = model_difference(before, after)
    if different:
        found.append(
            (
                "models",
                f"Different models: {different}. Their scores are on scales of their own, so a change of "
                "scale is not diagnosed as a calibration change; the numbers compare two detectors.",
            )
        )
    if relabelled:
        found.append(
            (
                "labels",
                f"{relabelled} of {n} files scored in both runs carry the opposite label in "
                "the two runs: the runs do not share their ground truth.",
            )
        )
    if a is None or b is None:
        return found
    inversion = inversion_finding(a, b, relabelled / max(1, n), rho)
    if inversion:
        return [*found, ("inversion", inversion)]
    found += [("domain_shift", text) for text in domain_shift_findings(changes)]
    calibration = None if different else calibration_finding(before, after, pair, rho)
    found += [("calibration", calibration)] if calibration else []
    if all(kind in ("labels", "models") for kind, _ in found):
        found.append(("change", change_finding(before, after, rho)))
    return found


def inversion_finding(a: float, b: float, relabelled_share: float, rho: float) -> str | None:
    """A mirrored AUC, or one far below 0.5, and its most likely cause; None when neither."""
    mirrored = abs(b - (1 - a)) <= MIRROR_TOLERANCE and abs(a - 0.5) >= 0.2
    if not (mirrored or b < 0.3):
        return None
    if mirrored:
        how = f"a mirrored AUC ({a:.3f} before, {b:.3f} after, and 1 - {a:.3f} = {1 - a:.3f})"
    else:
        how = f"an AUC far below 0.5 ({b:.3f}; with the direction flipped it would be {1 - b:.3f})"
    if relabelled_share >= 0.9 and rho > 0.9:
        cause = (
            "the labels were inverted between the runs (the real and fake folders, or a CSV's label "
            "column, swapped): the scores themselves barely changed"
        )
    elif rho < -0.9:
        cause = (
            f"the score direction flipped: the scores mirror the earlier ones (Spearman {rho:.2f} per "
            "file), as from a checkpoint trained with real -> 0 or p_real read as p_fake"
        )
    else:
        cause = (
            "the model now ranks fakes above real files: the signature of a fine-tune that mapped "
            "real -> 0 (see model.LABEL_TO_INDEX), not of overfitting, which pulls AUC towards 0.5"
        )
    return f"Label or score inversion: {how}. Most likely {cause}."


def domain_shift_findings(changes: list[dict]) -> list[str]:
    """Each group that collapsed while the rest of the files held."""
    found = []
    for c in changes:
        if None in (c["change"], c["rest_before"], c["rest_after"]):
            continue
        if c["change"] <= -COLLAPSE_DROP and c["rest_after"] - c["rest_before"] >= -REST_STABLE:
            found.append(
                f"Domain shift: {c['subset']} collapsed (AUC {c['before']:.3f} -> "
                f"{c['after']:.3f}) while the other files held (AUC {c['rest_before']:.3f} -> "
                f"{c['rest_after']:.3f}): the new model no longer covers files like these; training "
                "data unlike them is the usual cause."
            )
    return found


def calibration_finding(before: Run, after: Run, pair: dict, rho: float) -> str | None:
    """Ranking kept while the per-file map after = slope * before + offset is not the identity (one
    network only: two networks' scores live on scales of their own)."""
    a, b = before.metrics["auc"], after.metrics["auc"]
    same = pair["label_before"] == pair["label_after"]
    x, z = pair["before"][same], pair["after"][same]
    if not (len(x) > 2 and abs(b - a) <= 0.02 and rho >= 0.9 and np.ptp(x) > 0 and np.ptp(z) > 0):
        return None
    slope, offset = np.polyfit(x, z, 1)
    fit = 1 - float(np.var(z - (slope * x + offset)) / np.var(z))
    shift = float(np.median(z - x))
    if fit < 0.9 or (abs(slope - 1) < 0.2 and abs(shift) < 0.5 * float(np.std(x))):
        return None
    how = (
        f"every score moved by about {shift:+.3f}"
        if abs(slope - 1) < 0.2
        else f"the scores were rescaled (after = {slope:.2f} x before {offset:+.2f}, R^2 {fit:.2f})"
    )
    ta, tb = before.metrics.get("eer_threshold"), after.metrics.get("eer_threshold")
    return (
        f"Calibration change: {how} while the ranking held (AUC {a:.3f} -> {b:.3f}, Spearman "
        f"{rho:.2f}): the model separates the classes as before, but a fixed threshold now means "
        f"something else (EER threshold {ta:.3f} -> {tb:.3f}); {calibration_advice(after)}"
    )


def change_finding(before: Run, after: Run, rho: float) -> str:
    """How the AUC moved, and whether the 95 % intervals say it is more than resampling noise."""
    a, b = before.metrics["auc"], after.metrics["auc"]
    ci_a, ci_b = before.metrics.get("auc_ci95"), after.metrics.get("auc_ci95")
    noise = ""
    if ci_a and ci_b:
        overlap = ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1]
        noise = (
            " The 95 % intervals overlap: the change is within what resampling the same files gives."
            if overlap
            else " The 95 % intervals do not overlap: the change is beyond resampling noise."
        )
    moved = f"rose from {a:.3f} to {b:.3f}" if b > a else f"fell from {a:.3f} to {b:.3f}"
    moved = moved if round(a, 3) != round(b, 3) else f"stayed at {b:.3f}"
    return f"No single cause stands out: AUC {moved} (per-file scores: Spearman {rho:.2f}).{noise}"


def calibration_advice(after: Run) -> str:
    """What to do about the verdicts of the later run, knowing whether a calibration applied to it."""
    cal = after.metrics.get("calibration")
    if isinstance(cal, dict):
        return (
            f"{after.name}'s verdicts use its own calibration ({cal.get('source')}, fitted on "
            f"{cal.get('fitted_on') or 'data it records'}), which maps the new scale: check that it was "
            "fitted on data like these."
        )
    return (
        f"{after.name} has no calibration: fit one (calibrate.py --run on labelled data like yours) before "
        "using verdicts."
    )
