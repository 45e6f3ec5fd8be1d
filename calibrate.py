"""Fit a calibration (score -> natural-log LLR, bona fide vs spoof) on a labelled evaluation run, and store it
where every script finds it.

    python evaluate_custom.py --data data/my_val --checkpoint aasist --out-dir runs/my_val   # score first
    python calibrate.py --run runs/my_val                      # fit, write <checkpoint>.calibration.json

The run's scores.csv gives the scores, labels and scoring policy; the checkpoint is the run's (or
--checkpoint). The calibration is written beside the checkpoint file (`<file>.calibration.json`) and, for
this project's own checkpoints (best.pt), also inside the file. score.py, app.py and evaluate_custom.py then
report calibrated LLRs and base verdicts on them, for these weights and this scoring policy only (they refuse
it for any other). Fit on data like the data you will score, and never on the test set you report.

The map is prior-weighted logistic regression (see calibration.py), at the effective prior of the operating
point (--prior, --cost; default ASVspoof 5's) unless --fit-prior says otherwise. Prints Cllr before and after
on the fitting data (optimistic: evaluate on other data to know the real gain).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import antispoof.evaluation.calibration as calibration


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Flag defaults in --help, and the module docstring as written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="evaluation run folder (holds scores.csv)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint the run was scored with (default: the one the run records)",
    )
    calibration.add_operating_point_args(p)
    p.add_argument(
        "--fit-prior",
        type=float,
        default=None,
        help="prior of a fake used to weight the classes in the fit (default: the effective prior of "
        "--prior/--cost, 0.345 for ASVspoof 5)",
    )
    return p.parse_args(argv)


def run_checkpoint(run: Path) -> str | None:
    """The checkpoint a run records (run.json, else metrics.json)."""
    for name in ("run.json", "metrics.json"):
        path = run / name
        if path.is_file():
            try:
                checkpoint = json.loads(path.read_text()).get("checkpoint")
            except (OSError, ValueError):
                continue
            if checkpoint:
                return str(checkpoint)
    return None


def run_policy(rows: list[dict], run: Path) -> str:
    """The one scoring policy of a run's rows; exits if the rows do not record one, or mix several."""
    policies = {r.get("policy") for r in rows}
    if None in policies or "" in policies:
        sys.exit(
            f"error: {run}/scores.csv does not record the scoring policy of its rows (an older version "
            "wrote it): score the run again with evaluate_custom.py"
        )
    if len(policies) > 1:
        sys.exit(f"error: {run}/scores.csv mixes scoring policies {sorted(policies)}: re-score it with one")
    return policies.pop()


def main(args: argparse.Namespace) -> dict:
    from antispoof.checkpoints.files import (  # late: --help stays fast
        config_sha256,
        load_model_or_exit,
        weights_sha256,
    )
    from antispoof.scoring.scorefile import read_scores

    scores_csv = args.run / "scores.csv"
    if not scores_csv.is_file():
        sys.exit(
            f"error: {scores_csv} not found: score a labelled set first (evaluate_custom.py --out-dir RUN)"
        )
    rows = [r for r in read_scores(scores_csv) if r["status"] == "ok" and r["label"] in ("real", "fake")]
    checkpoint = args.checkpoint or run_checkpoint(args.run)
    if checkpoint is None:
        sys.exit(f"error: {args.run} does not record its checkpoint: pass --checkpoint")
    policy = run_policy(rows, args.run)
    op = calibration.operating_point(args)
    model, info = load_model_or_exit(checkpoint, map_location="cpu")
    sha = weights_sha256(model)
    recorded = _recorded_sha(args.run)
    if recorded is not None and recorded != sha:
        sys.exit(
            f"error: {args.run} was scored with other weights (weights_sha256 {recorded[:12]}...) than "
            f"{checkpoint} ({sha[:12]}...): pass the checkpoint it was scored with"
        )
    real = [r["score"] for r in rows if r["label"] == "real"]
    fake = [r["score"] for r in rows if r["label"] == "fake"]
    kinds = {r.get("score_kind") for r in rows} - {None, ""}
    try:
        cal = calibration.fit(
            real,
            fake,
            policy=policy,
            weights_sha256=sha,
            config_sha256=config_sha256(model),
            score_kind=kinds.pop() if len(kinds) == 1 else "logit_real",
            op=op,
            p_spoof_fit=args.fit_prior,
            data=str(args.run),
        )
    except calibration.CalibrationError as err:
        sys.exit(f"error: {err}")
    side = calibration.save(info["source"], cal)
    written = [str(side)]
    if info["format"] == "project":  # this project's own checkpoint also carries it inside
        embed(info["source"], model, cal)
        written.append(f"{info['source']} (inside)")
    fit = cal["fit"]
    print(
        f"llr = {cal['scale']:.4f} * score + {cal['offset']:+.4f}  (natural log, bona fide vs spoof; "
        f"policy {policy!r}; fitted on {fit['n_real']} real + {fit['n_fake']} fake files at Pspoof "
        f"{fit['p_spoof']:.3f})"
    )
    print(
        f"Cllr on the fitting data: raw scores {fit['cllr_raw']:.4f} -> calibrated "
        f"{fit['cllr_calibrated']:.4f} bits (minCllr {fit['min_cllr']:.4f}; optimistic: it is the data "
        "the map was fitted on)"
    )
    print(f"verdicts: {op.describe()}")
    print(f"wrote {', '.join(written)}")
    return cal


def embed(path: str, model, cal: dict) -> None:
    """Store `cal` inside a project checkpoint, keeping all else it holds (last.pt's training state)."""
    from antispoof.checkpoints.files import atomic_torch_save, read_checkpoint, save_checkpoint

    if Path(path).suffix == ".safetensors":
        save_checkpoint(path, model, cal, format="safetensors")
    else:
        atomic_torch_save({**read_checkpoint(path), "calibration": cal}, path)


def _recorded_sha(run: Path) -> str | None:
    path = run / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("weights_sha256")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    main(parse_args())
