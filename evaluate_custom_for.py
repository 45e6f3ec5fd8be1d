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

import antispoof.distributed as dist
import evaluate_custom
from antispoof.reports.analysis import checkpoint_label
from antispoof.utils import write_json

FOR_CHECKPOINT = "runs/fine_tune_for/best.pt"  # fine_tune_for.py's default run folder


def build_parser():
    p = evaluate_custom.build_parser(__doc__)
    p.set_defaults(checkpoint=FOR_CHECKPOINT)
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
    metrics = evaluate_custom.main(args)
    if baseline is not None and dist.is_main():
        table, rows = compare(baseline, metrics)
        print(table)
        comparison = {"baseline": str(args.compare), "run": str(args.out_dir), "rows": rows}
        write_json(args.out_dir / "comparison.json", comparison)
        if metrics.get("auc") is not None and (args.compare / "scores.csv").is_file():
            import analyse  # the analysis a reviewer would do: OUT_DIR/report.md with the change diagnosed

            argv = [str(args.out_dir), "--compare", str(args.compare), "--workers", str(max(1, args.workers))]
            analyse.main(analyse.parse_args(argv))
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


COMPARED = ("auc", "eer", "eer_threshold", "n_real", "n_fake", "n_skipped")


def compare(before: dict, after: dict) -> tuple[str, list[dict]]:
    """Side-by-side text table of two metrics.json dicts (the baseline's, this run's), and its rows."""

    def pct(m, key):
        return None if m.get(key) is None else 100 * m[key]

    def ci(m, key, scale):
        lo_hi = m.get(f"{key}_ci95")
        return "" if not lo_hi else f" [{scale * lo_hi[0]:.3g}, {scale * lo_hi[1]:.3g}]"

    specs = [
        ("AUC", lambda m: m.get("auc"), lambda m: ci(m, "auc", 1), ".4f"),
        ("EER (%)", lambda m: pct(m, "eer"), lambda m: ci(m, "eer", 100), ".2f"),
        ("EER threshold", lambda m: m.get("eer_threshold"), lambda m: "", ".3f"),
        ("minDCF", lambda m: m.get("min_dcf"), lambda m: ci(m, "min_dcf", 1), ".4f"),
        ("minCllr (bits)", lambda m: m.get("min_cllr"), lambda m: "", ".4f"),
        # actDCF and Cllr read the score as an LLR: raw (as it comes) and calibrated (when one applies)
        ("actDCF raw", lambda m: m.get("act_dcf"), lambda m: ci(m, "act_dcf", 1), ".4f"),
        ("actDCF calib.", lambda m: (m.get("calibrated") or {}).get("act_dcf"), lambda m: "", ".4f"),
        ("Cllr raw", lambda m: m.get("cllr"), lambda m: ci(m, "cllr", 1), ".4f"),
        ("Cllr calib.", lambda m: (m.get("calibrated") or {}).get("cllr"), lambda m: "", ".4f"),
        ("real files", lambda m: m.get("n_real"), lambda m: "", "d"),
        ("fake files", lambda m: m.get("n_fake"), lambda m: "", "d"),
        ("skipped files", lambda m: m.get("n_skipped"), lambda m: "", "d"),
    ]
    rows, lines = [], []
    # Columns named by checkpoint: the baseline is not always the LA model, nor the new run FoR's.
    names = [checkpoint_label(m.get("checkpoint"))[-27:] for m in (before, after)]
    header = f"{'':16}{names[0]:>28}{names[1]:>28}{'change':>12}"
    lines += [header, "-" * len(header)]
    for name, get, interval, spec in specs:
        a, b = get(before), get(after)
        change = None if a is None or b is None else b - a
        rows.append({"metric": name, "before": a, "after": b, "change": change})
        cell_a = "n/a" if a is None else f"{a:{spec}}{interval(before)}"
        cell_b = "n/a" if b is None else f"{b:{spec}}{interval(after)}"
        cell_c = "" if change is None else f"{change:+{spec}}"
        lines.append(f"{name:16}{cell_a:>28}{cell_b:>28}{cell_c:>12}")
    lines.append(f"checkpoints: {before.get('checkpoint')} -> {after.get('checkpoint')}")
    if before.get("data") != after.get("data") or before.get("n_files") != after.get("n_files"):
        lines.append(
            f"warning: the runs scored different data ({before.get('data')}, {before.get('n_files')} files "
            f"vs {after.get('data')}, {after.get('n_files')} files): not a like-for-like comparison"
        )
    lines.append(
        "positive class = real; higher score = more real; a lower EER, minDCF, actDCF, Cllr and a higher AUC "
        "are better; 'calib.' = on the calibrated llr (n/a: no calibration applied), 'raw' = the score read "
        "as an llr"
    )
    return "\n".join(lines), rows


if __name__ == "__main__":
    result = main(parse_args())
    sys.exit(1 if dist.is_main() and result.get("auc") is None else 0)
