"""Evaluate the FoR-fine-tuned checkpoint on a labelled dataset and compare it with the LA model's run.

    python evaluate_custom.py --data DIR --checkpoint la --out-dir runs/eval_la          # the LA model first
    python evaluate_custom_for.py --data DIR --out-dir runs/eval_for --compare runs/eval_la

The same evaluation as evaluate_custom.py (every option and output is the same; see its --help), with the
fine-tuned FoR checkpoint (fine_tune_for.py's best.pt) as the default --checkpoint. With --compare RUN, it
prints the LA run's metrics (RUN/metrics.json) and this run's side by side with the change (AUC, EER, minDCF,
minCllr, and actDCF / Cllr both on the raw score and on the calibrated LLR: best.pt carries the calibration
fine_tune_for.py fitted on validation, the LA model one only if you made it with calibrate.py), writes them
to OUT_DIR/comparison.json, and runs analyse.py OUT_DIR --compare RUN: OUT_DIR/report.md explains the change
(per group and audio attribute, verdict flips, and the diagnosis: inversion, domain shift or calibration).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import antispoof.cli as cli
import antispoof.distributed as dist
from antispoof.evaluation.metric_table import COUNTS, METRICS, compare_metrics
from antispoof.reports.analysis import checkpoint_label
from antispoof.utils import write_json

FOR_CHECKPOINT = "runs/fine_tune_for/best.pt"  # fine_tune_for.py's default run folder


def build_parser():
    p = cli.evaluation_parser(__doc__, FOR_CHECKPOINT)
    p.add_argument(
        "--compare", type=Path, default=None, help="run folder of the LA evaluation to compare with"
    )
    return p


def parse_args(argv: list[str] | None = None):
    return build_parser().parse_args(argv)


def main(args) -> dict:
    # The baseline is read first: a bad one must not cost an evaluation before it fails.
    baseline = load_baseline(args.compare, args.out_dir) if args.compare is not None else None
    if args.checkpoint == FOR_CHECKPOINT and not Path(FOR_CHECKPOINT).is_file():
        sys.exit(
            f"error: {FOR_CHECKPOINT} not found: fine-tune first (fine_tune_for.py) or pass --checkpoint"
        )
    metrics = cli.run_evaluation(args)
    if baseline is not None and dist.is_main():
        table, rows = compare(baseline, metrics)
        print(table)
        comparison = {"baseline": str(args.compare), "run": str(args.out_dir), "rows": rows}
        write_json(args.out_dir / "comparison.json", comparison)
        if metrics.get("auc") is not None and (args.compare / "scores.csv").is_file():
            # The analysis a reviewer would do (analyse.py): OUT_DIR/report.md with the change diagnosed.
            from antispoof.reports.report import write_report

            try:
                write_report(args.out_dir, args.compare, workers=max(1, args.workers))
            except (FileNotFoundError, ValueError) as err:
                sys.exit(f"error: {err}")
    return metrics


def load_baseline(run: Path, out_dir: Path) -> dict:
    """RUN/metrics.json, checked to be an evaluation's metrics (numbers where compare() needs them);
    exits with a message otherwise."""
    path = run / "metrics.json"
    if run.resolve() == out_dir.resolve():
        sys.exit(f"error: --compare {run} is the --out-dir of this run: compare with another run folder")
    if not path.is_file():
        sys.exit(f"error: {path} not found: run evaluate_custom.py --out-dir {run} first")
    redo = f"re-run evaluate_custom.py --out-dir {run} --overwrite, or leave out --compare"
    try:
        baseline = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        sys.exit(f"error: {path} is not readable JSON ({err}): {redo}")
    if not isinstance(baseline, dict) or "auc" not in baseline:
        sys.exit(f"error: {path} is not an evaluation's metrics.json (no 'auc'): {redo}")
    for key in COMPARED:
        value = baseline.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            sys.exit(f"error: {path}: {key} is {value!r}, not a number: {redo}")
    return baseline


COMPARED = tuple(m.key for m in (*METRICS, *COUNTS) if not m.calibrated)  # numbers compare() reads


def compare(before: dict, after: dict) -> tuple[str, list[dict]]:
    """Side-by-side text table of two metrics.json dicts (the baseline's, this run's), and its rows
    (`metric_table.compare_metrics`, the comparison analyse.py's report makes too)."""
    rows = compare_metrics(before, after)
    # Columns named by checkpoint: the baseline is not always the LA model, nor the new run FoR's.
    names = [checkpoint_label(m.get("checkpoint"))[-27:] for m in (before, after)]
    header = f"{'':20}{names[0]:>28}{names[1]:>28}{'change':>12}"
    lines = [header, "-" * len(header)]
    for r in rows:
        spec = r["spec"]
        ci_a, ci_b = (f" [{c[0]:.3g}, {c[1]:.3g}]" if c else "" for c in (r["ci_before"], r["ci_after"]))
        mark = {True: " better", False: " worse", None: ""}[r["improved"]]
        cells = (f"{r['before']:{spec}}{ci_a}", f"{r['after']:{spec}}{ci_b}", f"{r['change']:+{spec}}{mark}")
        lines.append(f"{r['metric']:20}{cells[0]:>28}{cells[1]:>28}{cells[2]:>12}")
    lines.append(f"checkpoints: {before.get('checkpoint')} -> {after.get('checkpoint')}")
    if before.get("data") != after.get("data") or before.get("n_files") != after.get("n_files"):
        lines.append(
            f"warning: the runs scored different data ({before.get('data')}, {before.get('n_files')} files "
            f"vs {after.get('data')}, {after.get('n_files')} files): not a like-for-like comparison"
        )
    lines.append(
        "positive class = real; higher score = more real; 'better'/'worse' by each metric's direction (a "
        "higher AUC, a lower EER, minDCF, actDCF, Cllr); 'calibrated' = on the calibrated llr (absent: no "
        "calibration applied); actDCF and Cllr without it read the raw score as an llr"
    )
    return "\n".join(lines), [{k: v for k, v in r.items() if k != "spec"} for r in rows]


if __name__ == "__main__":
    result = main(parse_args())
    sys.exit(1 if dist.is_main() and result.get("auc") is None else 0)
