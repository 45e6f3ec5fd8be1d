"""Evaluation of a labelled set: score it into scores.csv, then metrics.json, plots and one summary line.

metrics = evaluate(model, items, "run")  # labelled items: scores.csv, metrics.json, plots
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from torch import nn

import antispoof.distributed as dist
from antispoof.audio.datasets import Item
from antispoof.evaluation.metrics import (
    ASVSPOOF5,
    OperatingPoint,
    group_table,
    metrics_from_rows,
    print_polarity_warning,
    summary_line,
)
from antispoof.evaluation.thresholds import score_at_llr
from antispoof.networks import InputPolicy
from antispoof.scoring.core import policy_for, score_definition, score_items, score_kind
from antispoof.scoring.scorefile import read_scores, write_scores
from antispoof.utils import write_json


def evaluate(
    model: nn.Module,
    items: list[Item],
    out_dir: str | os.PathLike,
    *,
    n_bootstrap: int = 1000,
    threshold: float | None = None,
    plots: bool = True,
    wandb_run=None,
    extra: dict | None = None,
    policy: InputPolicy | None = None,
    calibration: dict | None = None,
    op: OperatingPoint = ASVSPOOF5,
    **score_opts,
) -> dict:
    """Score labelled `items` into OUT_DIR/scores.csv, then compute metrics.json and plots from that file.

    `policy`: the input policy (None: the model's default). `score_opts` go to `score_items` (batch_size,
    workers, device, resume, compile, amp, ...). `calibration` (calibration.py; the caller has checked that
    it applies to this model and policy): scores.csv gains each file's `llr` and metrics.json a `calibrated`
    block (actDCF, Cllr of the LLRs) beside the raw-score metrics, and `threshold` defaults to the score at
    which its Bayes decision flips. `op`: the operating point of minDCF,
    actDCF and the Bayes decisions (default ASVspoof 5's).
    `threshold`: a calibrated decision threshold on the score, reported with its error rates. `extra` is
    stored in metrics.json (e.g. the checkpoint). Prints one summary line (and a loud warning if AUC < 0.5).
    Returns the metrics on rank 0 and {} on other ranks.
    """
    unlabelled = [i.path for i in items if i.label not in ("real", "fake")]
    if unlabelled:
        raise ValueError(
            f"evaluation needs labels 'real'/'fake'; {len(unlabelled)} items have none, "
            f"e.g. {unlabelled[0]} (use score.py to score unlabelled files)"
        )
    out_dir = Path(out_dir)
    policy = policy or policy_for(model)
    start = time.perf_counter()
    score_items(model, items, out_csv=out_dir / "scores.csv", policy=policy, **score_opts)
    if not dist.is_main():
        return {}
    seconds = time.perf_counter() - start
    rows = read_scores(out_dir / "scores.csv")  # metrics come from the score file, as written
    if calibration is not None and threshold is None:  # the Bayes threshold on the llr, as a score
        threshold = score_at_llr(calibration, op.llr_threshold)
    if calibration is not None:
        import antispoof.evaluation.calibration as calib

        for row in rows:
            row["llr"] = float(calib.apply(calibration, row["score"])) if row["status"] == "ok" else None
        write_scores(out_dir / "scores.csv", rows)
    metrics = metrics_from_rows(rows, n_bootstrap=n_bootstrap, threshold=threshold, op=op)
    metrics["policy"] = policy.describe()
    metrics["score_kind"] = score_kind(model)
    metrics["score_definition"] = score_definition(policy, metrics["score_kind"])
    metrics["scoring_seconds"] = round(seconds, 2)
    metrics.update(extra or {})
    if plots:
        import antispoof.reports.plots as plotting

        metrics["plots"] = plotting.save_all(rows, out_dir, metrics)
    write_json(out_dir / "metrics.json", metrics)
    if metrics["polarity_warning"]:
        print_polarity_warning(metrics["polarity_warning"])
    print(summary_line(metrics, out_dir))
    if metrics["by_group"]:
        print(group_table(metrics["by_group"]))
    if wandb_run is not None:
        log_to_wandb(wandb_run, metrics, rows, out_dir)
    return metrics


def log_to_wandb(run, metrics: dict, rows: list[dict], out_dir: Path) -> None:
    """Scalars, the plots and the score table to a wandb run."""
    import wandb

    scalars = {
        f"eval/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for key in ("auc", "eer"):
        if metrics.get(f"{key}_ci95"):
            scalars[f"eval/{key}_ci95_lo"], scalars[f"eval/{key}_ci95_hi"] = metrics[f"{key}_ci95"]
    images = {f"eval/{Path(p).stem}": wandb.Image(str(out_dir / p)) for p in metrics.get("plots", [])}
    columns = ["path", "label", "score", "p_fake", "status", "duration_s", "note"]
    table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
    run.log({**scalars, **images, "eval/scores": table})
    run.summary.update(scalars)
