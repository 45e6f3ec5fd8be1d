"""Evaluation of a labelled set: score it into scores.csv, then metrics.json, plots and one summary line.

metrics = evaluate(model, items, "run")  # labelled items: scores.csv, metrics.json, plots
metrics = evaluate_run(scorer, items, "run", checkpoint="aasist", data={"data": "data/sample"})
                                         # the same in a run folder: run.json, its rules, the calibration
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # setup.py builds on this module
    from antispoof.scoring.setup import Scorer


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


def evaluate_run(
    scorer: Scorer,
    items: list[Item],
    out_dir: str | os.PathLike,
    *,
    checkpoint: str,
    data: dict,
    resume: bool = False,
    overwrite: bool = False,
    use_calibration: bool = True,
    op: OperatingPoint = ASVSPOOF5,
    on_start: Callable[[], Any] | None = None,
    policy_origin: str = "",
    **options: Any,
) -> dict:
    """A labelled evaluation in a run folder (evaluate_custom.py, `Detector.evaluate`): run.json, then
    scores.csv, metrics.json and plots through `evaluate`.

    `checkpoint`: as the user named it; `data`: what is scored, for run.json ({"data": ...}). The folder
    rules of runs.py apply (`resume`, `overwrite`; RunFolderError, on every torchrun rank, when refused).
    The checkpoint's calibration is used when it applies to these weights and this policy; one that does not
    is reported (a warning and metrics.json's `calibration_note`) and the run goes on uncalibrated.
    `on_start()`: called on rank 0 once the folder is accepted, before scoring; a wandb run it returns gets
    the metrics and is finished. `policy_origin`: why this input policy (printed), e.g. "--window".
    `options`: `evaluate`'s and score_items' (n_bootstrap, compile, ...).
    Returns the metrics (rank 0) or {} (other ranks)."""
    import antispoof.evaluation.calibration as calib
    from antispoof.runs import RunFolderError, prepare_run_dir, run_record

    out_dir = Path(out_dir)
    record = run_record(
        scorer.model, scorer.info, checkpoint=checkpoint, settings=scorer.settings(), data=data,
        sha256=scorer.weights_sha256(),
    )  # fmt: skip
    cal, where, note = None, "", None
    if use_calibration:
        try:
            cal, where = scorer.calibration()
        except calib.CalibrationError as err:
            note = f"calibration not applied: {err}"
            if dist.is_main():
                print(f"warning: {note}", file=sys.stderr)
    refused = None
    if dist.is_main():
        try:
            prepare_run_dir(out_dir, record, resume=resume, overwrite=overwrite)
        except RunFolderError as err:
            refused = str(err)
    refused = dist.broadcast(refused)  # every rank stops, not only the one that checked
    if refused:
        raise RunFolderError(refused)
    info = scorer.info
    if dist.is_main():
        n_real = sum(i.label == "real" for i in items)
        if not policy_origin:
            reference = scorer.policy == policy_for(scorer.model)
            policy_origin = f"{'' if reference else 'not '}the model's reference policy"
        print(
            f"{len(items)} files ({n_real} real, {len(items) - n_real} fake) from {data.get('data')}; "
            f"checkpoint {info['source']} ({info['arch']}, {info['format']})\n"
            f"input policy: {scorer.policy.describe()} ({policy_origin}); {scorer.definition}"
        )
    wandb_run = on_start() if on_start is not None and dist.is_main() else None
    extra = {
        "checkpoint": info["source"],
        "arch": info["arch"],
        "checkpoint_format": info["format"],
        "weights_sha256": record["weights_sha256"],
        "data": str(data.get("data")),
        "calibration": calib.summary(cal, where, op) if cal else None,
        "calibration_note": note,
    }
    metrics = scorer.evaluate(
        items, out_dir, extra=extra, calibration=cal, op=op, resume=resume, wandb_run=wandb_run, **options
    )
    if wandb_run is not None:
        wandb_run.finish()
    return metrics
