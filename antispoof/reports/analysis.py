"""The numbers behind analyse.py's report: audio attributes of the scored files, per-group and per-attribute
breakdowns and the confound check (comparing two runs: compare.py).

Conventions: labels 1 = real, 0 = fake (positive class = real); higher score = more real. A file's verdict is
the one score.py gives: on a calibrated run (an `llr` column), "real" when llr >= the operating point's Bayes
threshold (as a score: metrics.json's `threshold`); otherwise "real" when score >= the stored threshold, else
the run's EER threshold (thresholds.py: one comparison everywhere).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from antispoof.evaluation.metrics import (
    ASVSPOOF5,
    OperatingPoint,
    compute_auc,
    metrics_by_group,
    metrics_from_rows,
)
from antispoof.evaluation.thresholds import is_real
from antispoof.reports.attributes import channels_name
from antispoof.scoring.scorefile import read_scores

CONFOUND_AUC = 0.8  # an attribute that alone separates the classes this well gets a loud warning
FEW_PAIRS = 100  # fewer real/fake pairs sharing a value than this: the stratified AUC is no evidence
MIRROR_TOLERANCE = 0.05  # |AUC_after - (1 - AUC_before)| below this is a mirror image
COLLAPSE_DROP = 0.15  # a group whose AUC falls this much while the rest holds (within REST_STABLE)...
REST_STABLE = 0.05  # ...points to domain shift
SURVIVES = (
    0.05  # a stratified AUC within this of the overall one: the separation does not come from the attribute
)
WORST_FILES = 5
RESCORE = "re-run evaluate_custom.py --resume on the run (it rewrites metrics.json from scores.csv)"

# (key, title, kind, bin edges for numbers): what the report breaks the results down by.
ATTRIBUTES = (
    ("format", "format", "category", None),
    ("container", "container", "category", None),
    ("codec", "codec", "category", None),
    ("sample_rate", "sample rate", "category", None),
    ("channels", "channels", "category", None),
    ("duration_s", "duration", "number", (2.0, 4.04, 8.0, 16.0)),  # 4.04 s: what the reference model sees
    ("loudness_dbfs", "loudness", "number", (-40.0, -30.0, -20.0, -10.0)),
    ("lead_silence_s", "leading silence", "number", (0.05, 0.2, 0.5, 1.0)),
    ("trail_silence_s", "trailing silence", "number", (0.05, 0.2, 0.5, 1.0)),
)
FORMAT_KEYS = ("format", "container", "codec", "sample_rate", "channels")
UNITS = {"duration_s": " s", "loudness_dbfs": " dBFS", "lead_silence_s": " s", "trail_silence_s": " s"}
WHAT_IT_SCORES = {
    "duration_s": "the length",
    "loudness_dbfs": "the recording level",
    "lead_silence_s": "the silence",
    "trail_silence_s": "the silence",
}


# ---------------------------------------------------------------------------------------------------- runs
def read_run_record(folder: Path) -> dict:
    """The run's run.json (what produced its scores: checkpoint, weights, model config), {} when it has
    none or it is unreadable (an older run: what depends on it is then not said)."""
    try:
        record = json.loads((Path(folder) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def checkpoint_label(checkpoint: str | None) -> str:
    """A short name for a run's checkpoint, for column headers: the registry name or file name as given,
    with its run folder for a fine-tuning run's best.pt / last.pt ("fine_tune_for/best.pt")."""
    if not checkpoint:
        return "?"
    path = Path(str(checkpoint))
    if path.name in ("best.pt", "last.pt") and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name


class Run:
    """A run folder: its scored rows (status ok), metrics.json, and the operating threshold.

    A stress-test run (stress.py) is analysed one condition at a time: `condition` picks its rows, and the
    metrics are computed from them as robustness.json's are (its operating point, calibration held fixed);
    the report then goes to RUN/analysis_<condition>/ (RUN/report.md is the robustness report).
    `clean_if_stress`: read a stress run through its clean condition when no `condition` is given (the
    earlier run of a comparison); an evaluation run is read as it is."""

    def __init__(self, folder: Path, condition: str | None = None, *, clean_if_stress: bool = False):
        self.folder = self.out_dir = Path(folder)
        if not (self.folder / "scores.csv").is_file():
            raise FileNotFoundError(
                f"{self.folder / 'scores.csv'} not found: run evaluate_custom.py --out-dir {folder} first"
            )
        self.all_rows = read_scores(self.folder / "scores.csv")
        conditions = list(dict.fromkeys(r["condition"] for r in self.all_rows if r.get("condition")))
        if conditions and condition is None and clean_if_stress:
            condition = "clean"
        self.condition = condition
        if conditions:
            self.all_rows = self.condition_rows(conditions, condition)
            self.out_dir = self.folder / f"analysis_{condition}"
            self.metrics = self.condition_metrics()
        elif condition is not None:
            raise ValueError(f"--condition {condition}: {folder} is an evaluation run, not a stress-test run")
        else:
            self.metrics = self.read_metrics()
        self.rows = [r for r in self.all_rows if r["status"] == "ok" and r["label"] in ("real", "fake")]
        self.record = read_run_record(self.folder)
        self.name = checkpoint_label(self.record.get("checkpoint") or self.metrics.get("checkpoint"))
        self.name += f" [{condition}]" if condition else ""
        self.labels = np.array([r["label"] == "real" for r in self.rows], dtype=np.int64)  # 1 = real
        self.scores = np.array([r["score"] for r in self.rows], dtype=np.float64)
        self.p_fake = np.array([r["p_fake"] for r in self.rows], dtype=np.float64)
        llr = [r.get("llr") for r in self.rows]
        calibrated = self.metrics.get("calibrated") or {}
        self.llr = self.llr_threshold = None
        if self.rows and calibrated.get("llr_threshold") is not None and all(v is not None for v in llr):
            self.llr = np.array(llr, dtype=np.float64)
            self.llr_threshold = float(calibrated["llr_threshold"])
        if self.metrics.get("threshold") is not None:
            # evaluate.py stores the score at which the calibrated Bayes decision flips
            # (thresholds.score_at_llr), so the verdicts below are score.py's, file for file.
            self.threshold = float(self.metrics["threshold"])
            self.threshold_source = (
                f"where the calibrated LLR reaches the operating point's Bayes threshold "
                f"{self.llr_threshold:.3f} (the verdict score.py and the app give)"
                if self.llr is not None
                else "the decision threshold stored with the run"
            )
        elif self.llr is not None:
            # No score threshold recorded (a run written by other tools): decide on the LLR itself, and draw
            # the line where the (increasing) calibration map crosses the Bayes threshold.
            order = np.argsort(self.llr, kind="mergesort")
            self.threshold = float(np.interp(self.llr_threshold, self.llr[order], self.scores[order]))
            self.threshold_source = (
                f"where the calibrated LLR reaches the operating point's Bayes threshold "
                f"{self.llr_threshold:.3f} (the verdict score.py and the app give)"
            )
        else:
            self.threshold = self.metrics.get("eer_threshold")
            self.threshold_source = "this run's EER threshold (chosen on these same files, so optimistic)"

    def read_metrics(self) -> dict:
        """metrics.json of an evaluation run; a missing or damaged one says how to rewrite it."""
        path = self.folder / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: run evaluate_custom.py --out-dir {self.folder} first")
        try:
            metrics = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # UnicodeDecodeError, JSONDecodeError
            raise ValueError(f"{path} cannot be read as JSON ({err}): {RESCORE}") from None
        if not isinstance(metrics, dict):
            raise ValueError(f"{path} is not an evaluation's metrics: {RESCORE}")
        return metrics

    def condition_rows(self, conditions: list[str], condition: str | None) -> list[dict]:
        """The rows of one condition of a stress-test run; refuses a missing or unknown `condition`."""
        if condition not in conditions:
            what = "pass --condition NAME" if condition is None else f"it has no condition {condition!r}"
            raise ValueError(
                f"{self.folder} is a stress-test run (stress.py): {what}, one of {', '.join(conditions)} "
                f"(--compare {self.folder} then compares with its clean condition)"
            )
        return [r for r in self.all_rows if r["condition"] == condition]

    def condition_metrics(self) -> dict:
        """A condition's metrics as metrics.json would hold them, under robustness.json's operating point
        (the calibrated llr column, held fixed across conditions, gives the verdicts)."""
        try:
            result = json.loads((self.folder / "robustness.json").read_text())
            op = OperatingPoint(**{k: result["operating_point"][k] for k in ("p_spoof", "c_miss", "c_fa")})
            described = result["conditions"][self.condition]["description"]
        except (OSError, ValueError, KeyError, TypeError):  # a run killed before robustness.json
            op, described, result = ASVSPOOF5, None, {}
        metrics = metrics_from_rows(self.all_rows, op=op)
        metrics.update(checkpoint=result.get("checkpoint"), data=result.get("data"))
        metrics.update(condition=self.condition, condition_text=described)
        return metrics

    def verdict_real(self) -> np.ndarray:
        """Each file's verdict is real (thresholds.is_real, the rule score.py applies): score >= the stored
        threshold; on a calibrated run without one, LLR >= the Bayes threshold."""
        if self.metrics.get("threshold") is None and self.llr is not None:
            return is_real(self.llr, self.llr_threshold)
        return is_real(self.scores, self.threshold)


def attribute_value(key: str, kind: str, edges, attrs: dict):
    """The table cell an attribute puts a file in: the category, or the bin its number falls in."""
    v = attrs.get(key)
    if v is None:
        return None
    if key == "sample_rate":
        return f"{v / 1000:g} kHz"
    if key == "channels":
        return channels_name(v)
    if kind == "category":
        return str(v)
    return bin_label(v, edges, UNITS.get(key, ""))


def bin_label(v: float, edges, unit: str) -> str:
    i = int(np.searchsorted(edges, v, side="right"))
    if i == 0:
        return f"< {edges[0]:g}{unit}"
    if i == len(edges):
        return f">= {edges[-1]:g}{unit}"
    return f"{edges[i - 1]:g} to {edges[i]:g}{unit}"


def bin_order(key: str, kind: str, edges, cells: list) -> list:
    """The table cells present, in a readable order: bins low to high, categories most common first."""
    present = Counter(c for c in cells if c is not None)
    if kind == "number":
        unit = UNITS.get(key, "")
        labels = [bin_label(e - 1e-9, edges, unit) for e in edges] + [bin_label(edges[-1], edges, unit)]
        return [b for b in labels if b in present]
    return [v for v, _ in present.most_common()]


# ----------------------------------------------------------------------------------------------- measures
def auc_or_none(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """AUC (real positive), or None when a class is missing."""
    return compute_auc(labels, scores) if 0 < labels.sum() < len(labels) else None


def error_rates(labels: np.ndarray, verdict_real: np.ndarray) -> tuple[float | None, float | None]:
    """(false accepts per 100 fake files, false rejects per 100 real files); None for a missing class."""
    fake, real = labels == 0, labels == 1
    fa = 100 * float(np.mean(verdict_real[fake])) if fake.any() else None
    fr = 100 * float(np.mean(~verdict_real[real])) if real.any() else None
    return fa, fr


def stratified_auc(labels: np.ndarray, scores: np.ndarray, strata: list) -> tuple[float | None, dict]:
    """The detector's AUC counting only real/fake pairs in the same stratum, and what it rests on.

    The pooled Mann-Whitney statistic: each stratum's AUC weighted by its real x fake pairs. It is what is
    left of the detector's separation once the attribute is held fixed; None when no stratum holds both
    classes. The evidence: {"pairs", "share" (of all real/fake pairs), "real", "fake" (files in strata
    that hold both classes)}: an AUC from a handful of pairs is no evidence either way.
    """
    total = float(labels.sum() * (len(labels) - labels.sum()))
    num = den = 0.0
    real = fake = 0
    for s in set(strata) - {None}:
        m = np.array([x == s for x in strata])
        n_real = int(labels[m].sum())
        pairs = float(n_real * (m.sum() - n_real))
        if pairs:
            num += pairs * compute_auc(labels[m], scores[m])
            den += pairs
            real, fake = real + n_real, fake + int(m.sum()) - n_real
    evidence = {"pairs": int(den), "share": den / total if total else 0.0, "real": real, "fake": fake}
    return (num / den if den else None), evidence


def pairs_text(evidence: dict, share: str) -> str:
    """E.g. "28 real/fake pairs (5 real and 13 fake files) share a value, 0.3 % of all pairs": counts, never a
    rounded 0 %; few pairs are said to be no evidence."""
    text = (
        f"{evidence['pairs']:,} real/fake pairs ({evidence['real']} real and {evidence['fake']} fake files) "
        f"share a {share}, {100 * evidence['share']:.2g} % of all pairs"
    )
    if evidence["pairs"] < FEW_PAIRS:
        text += f"; an AUC from fewer than {FEW_PAIRS} pairs is not evidence either way"
    return text


def binned_auc(labels: np.ndarray, cells: list) -> float:
    """How well an attribute's values (or bins) alone separate the classes, the values taken as categories
    in their best order (by share of real files): catches a non-monotone attribute (fakes at 0.05-0.2 s of
    trailing silence, reals at none and at more), which a monotone AUC misses. Optimistic: the order is
    chosen on the same files."""
    share = {v: labels[[x == v for x in cells]].mean() for v in set(cells)}
    return compute_auc(labels, np.array([share[v] for v in cells]))


def confounds(run: Run, attrs: dict[str, dict]) -> list[dict]:
    """For each attribute: its AUC alone as a score (both directions), and the detector's stratified AUC."""
    out = []
    for key, title, kind, edges in ATTRIBUTES:
        raw = [attrs[r["path"]].get(key) for r in run.rows]
        known = np.array([v is not None for v in raw])
        if known.sum() < 2:
            continue
        y, s = run.labels[known], run.scores[known]
        values = [v for v in raw if v is not None]
        cells = [attribute_value(key, kind, edges, attrs[r["path"]]) for r in run.rows]
        if len(set(values)) < 2 or not 0 < y.sum() < len(y):
            alone, direction = 0.5, "one value for every file"
        elif kind == "number":
            auc = compute_auc(y, np.array(values, dtype=np.float64))
            known_cells = [c for c, k in zip(cells, known, strict=True) if k]
            binned = binned_auc(y, known_cells)
            alone = max(auc, 1 - auc, binned)
            direction = (
                f"AUC {auc:.3f} with higher = real, {1 - auc:.3f} with lower = real; "
                f"{binned:.3f} binned ({len(set(known_cells))} bins in their best order: optimistic)"
            )
        else:  # categories in their best order (by share of real files): the most any use of it can separate
            alone = binned_auc(y, values)
            direction = "categories ordered by their share of real files (optimistic)"
        strat, evidence = stratified_auc(y, s, [c for c, k in zip(cells, known, strict=True) if k])
        item = {
            "key": key,
            "title": title,
            "alone_auc": alone,
            "direction": direction,
            "detector_auc": auc_or_none(y, s),
            "stratified_auc": strat,
            "pairs_within": evidence["share"],
            "pairs": evidence,
            "warning": alone >= CONFOUND_AUC,
        }
        out.append((item, kind, values, y))
    # The format attributes overlap (FLAC vs MP3 is also a container split): one warning for them, the first.
    family = [c["title"] for c, *_ in out if c["warning"] and c["key"] in FORMAT_KEYS]
    for c, kind, values, y in out:
        if c["warning"] and c["title"] not in family[1:]:
            also = family[1:] if c["key"] in FORMAT_KEYS else []
            c["message"] = confound_message(c, kind, values, y, also)
    return [c for c, *_ in out]


def confound_message(c: dict, kind: str, values: list, y: np.ndarray, also: list[str]) -> str:
    """E.g. "real files are all FLAC at 16 kHz; fakes are all MP3 at 24 kHz: the detector may be scoring the
    format", with the detector's AUC within the attribute's strata beside it."""
    key, title = c["key"], c["title"]
    if kind == "category":
        sides = []
        for label, cls in (("real files are", 1), ("fakes are", 0)):
            vals = Counter(v for v, k in zip(values, y, strict=True) if k == cls)
            top, n = vals.most_common(1)[0]
            share = "all" if n == sum(vals.values()) else f"{100 * n / sum(vals.values()):.0f} %"
            sides.append(f"{label} {share} {format_value(key, top)}")
        what = "the format" if key in FORMAT_KEYS else f"the {title}"
    else:
        v = np.array(values, dtype=np.float64)
        unit = UNITS.get(key, "")
        sides = [
            f"real files have a median {title} of {np.median(v[y == 1]):.2f}{unit}",
            f"fakes {np.median(v[y == 0]):.2f}{unit}",
        ]
        what = WHAT_IT_SCORES.get(key, f"the {title}")
    also = f"; so does the {', '.join(also)}" if also else ""
    alone = f"the {title} alone separates the classes with AUC {c['alone_auc']:.3f}{also}"
    strat, overall = c["stratified_auc"], c["detector_auc"]
    if strat is None:
        return (
            f"{'; '.join(sides)}: the detector may be scoring {what} ({alone}). No {title} value holds both "
            f"classes, so it cannot be checked with the {title} held fixed: score files of both classes that "
            f"share a {title} (re-encode some of one class) to find out."
        )
    share = "value" if kind == "category" else "bin"
    pairs = pairs_text(c["pairs"], share)
    if strat >= overall - SURVIVES:
        return (
            f"{'; '.join(sides)} ({alone}). With the {title} held fixed the detector keeps its separation "
            f"(AUC {strat:.3f}, overall {overall:.3f}; {pairs}): it is not scoring the {title} alone, but "
            "metrics on these files mix the two."
        )
    return (
        f"{'; '.join(sides)}: the detector may be scoring {what} ({alone}). With the {title} held fixed its "
        f"AUC falls from {overall:.3f} to {strat:.3f} ({pairs})."
    )


def format_value(key: str, v) -> str:
    if key == "sample_rate":
        return f"{v / 1000:g} kHz"
    if key == "channels":
        return channels_name(v)
    return str(v).upper() if key == "container" else str(v)


def breakdown(run: Run, attrs: dict[str, dict]) -> list[dict]:
    """Per attribute: each value (or bin) with its files per class, the AUC within it and the errors at the
    operating threshold. An attribute with one value for every file is a single line."""
    verdict = run.verdict_real()
    out = []
    for key, title, kind, edges in ATTRIBUTES:
        cells = [attribute_value(key, kind, edges, attrs[r["path"]]) for r in run.rows]
        table = []
        for value in bin_order(key, kind, edges, cells):
            m = np.array([c == value for c in cells])
            y, s = run.labels[m], run.scores[m]
            fa, fr = error_rates(y, verdict[m])
            table.append(
                {
                    "value": value,
                    "n_real": int(y.sum()),
                    "n_fake": int(len(y) - y.sum()),
                    "auc": auc_or_none(y, s),
                    "fa": fa,
                    "fr": fr,
                }
            )
        if table:
            out.append({"key": key, "title": title, "rows": table, "unknown": sum(c is None for c in cells)})
    return out


def groups(run: Run) -> list[dict]:
    """metrics.json's by_group (each group against every file of the other class), with its errors at the
    operating threshold and median score."""
    by_group = run.metrics.get("by_group") or metrics_by_group(run.rows)
    verdict = run.verdict_real()
    out = []
    for name, g in by_group.items():
        label, group = name.split("/", 1)
        m = np.array([r["label"] == label and r.get("group") == group for r in run.rows])
        wrong = verdict[m] if label == "fake" else ~verdict[m]
        out.append(
            {
                "group": name,
                "n": g["n"],
                "auc": g["auc"],
                "eer": g["eer"],
                "errors": 100 * float(wrong.mean()) if m.any() else None,
                "median": float(np.median(run.scores[m])) if m.any() else None,
            }
        )
    return out


def worst_files(run: Run, k: int = WORST_FILES) -> tuple[list[int], list[int]]:
    """Row indices of the fakes scored most real and the real files scored most fake."""
    order = np.argsort(run.scores, kind="mergesort")
    fakes = [int(i) for i in order[::-1] if run.labels[i] == 0][:k]
    reals = [int(i) for i in order if run.labels[i] == 1][:k]
    return fakes, reals
