"""The one list of detection metrics: key in metrics.json, label, unit, which direction is better, and how it
is printed. metrics.json, the comparison of two runs (evaluate_custom_for.py --compare, analyse.py's
section 4), the report, wandb and training's summary read it; `compare_metrics` is the one comparison.

    for m in METRICS: print(m.label, m.format(metrics[m.key]), m.unit)
    rows = compare_metrics(before_metrics, after_metrics)   # one row per metric both runs have

Conventions of every metric: positive class = real (bona fide), higher score = more real.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric. `scale` turns the stored value into the printed one (EER is stored as a fraction and
    printed in %); `better` is "higher", "lower" or "" (a threshold or a count: neither)."""

    key: str
    label: str
    unit: str = ""
    better: str = "lower"
    scale: float = 1.0
    spec: str = ".4f"
    calibrated: bool = False  # read from metrics.json["calibrated"] (on the calibrated LLRs)

    def value(self, metrics: dict) -> float | None:
        """The printed-scale value in a metrics.json dict, None when it has none."""
        source = (metrics.get("calibrated") or {}) if self.calibrated else metrics
        value = source.get(self.key) if isinstance(source, dict) else None
        return value if value is None or self.scale == 1 else value * self.scale  # counts stay ints

    def interval(self, metrics: dict) -> list[float] | None:
        """The 95 % bootstrap interval at the printed scale, None when metrics.json has none."""
        source = (metrics.get("calibrated") or {}) if self.calibrated else metrics
        lo_hi = source.get(f"{self.key}_ci95") if isinstance(source, dict) else None
        return None if not lo_hi else [self.scale * v for v in lo_hi]

    @property
    def name(self) -> str:
        """The label with its unit, as a table header: "EER (%)", "Cllr (bits)"."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


METRICS = (
    Metric("auc", "AUC", better="higher"),
    Metric("eer", "EER", "%", scale=100, spec=".2f"),
    Metric("eer_threshold", "EER threshold", better="", spec=".3f"),
    Metric("min_dcf", "minDCF"),
    Metric("act_dcf", "actDCF"),  # the raw score read as an LLR: only meaningful on LLRs
    Metric("cllr", "Cllr", "bits"),
    Metric("min_cllr", "minCllr", "bits"),
    Metric("act_dcf", "actDCF calibrated", calibrated=True),
    Metric("cllr", "Cllr calibrated", "bits", calibrated=True),
)
COUNTS = (
    Metric("n_real", "real files", better="", spec="d"),
    Metric("n_fake", "fake files", better="", spec="d"),
    Metric("n_skipped", "skipped files", better="", spec="d"),
)
METRIC_KEYS = tuple(dict.fromkeys(m.key for m in METRICS if not m.calibrated))  # metrics.json's own keys
# What training keeps of the test split's metrics (history.json, wandb's summary).
SUMMARY_KEYS = (*METRIC_KEYS, *(m.key for m in COUNTS))


def compare_metrics(before: dict, after: dict, metrics: tuple[Metric, ...] = METRICS + COUNTS) -> list[dict]:
    """Each metric both metrics.json dicts have: before, after and the change at the printed scale, the 95 %
    intervals and whether they overlap (None when a run has no interval), whether the change is an
    improvement (None for thresholds, counts and no change), and the Metric itself."""
    rows = []
    for m in metrics:
        a, b = m.value(before), m.value(after)
        if a is None or b is None:
            continue
        ci_a, ci_b = m.interval(before), m.interval(after)
        overlap = None if not (ci_a and ci_b) else ci_a[0] <= ci_b[1] and ci_b[0] <= ci_a[1]
        better = None if not m.better or a == b else (b > a) == (m.better == "higher")
        rows.append(
            dict(
                metric=m.name,
                key=m.key,
                before=a,
                after=b,
                change=b - a,
                ci_before=ci_a,
                ci_after=ci_b,
                overlap=overlap,
                improved=better,
                spec=m.spec,
                better=m.better,
            )
        )
    return rows
