"""Fit a calibration (score -> natural-log LLR, bona fide vs spoof) on a labelled evaluation run, and store it
where every script finds it.

    python evaluate_custom.py --data data/my_val --checkpoint aasist --out-dir runs/my_val   # score first
    python calibrate.py runs/my_val                            # fit, write <checkpoint>.calibration.json

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
from collections import Counter
from pathlib import Path

import antispoof.cli as cli
import antispoof.evaluation.calibration as calibration


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    cli.add_run(p, help="evaluation run folder (holds scores.csv)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint the run was scored with (default: the one the run records)",
    )
    cli.add_operating_point(p)
    p.add_argument(
        "--fit-prior",
        type=float,
        default=None,
        help="prior of a fake used to weight the classes in the fit (default: the effective prior of "
        "--prior/--cost, 0.345 for ASVspoof 5)",
    )
    return cli.parse_run(p, argv)


MIN_FILES_PER_CLASS = 30  # below this a fitted map mostly reflects the smoothing and the few files drawn


def read_record(run: Path) -> dict:
    """The run's run.json (what produced its scores); exits when it is missing or is not a JSON object."""
    path = run / "run.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        sys.exit(
            f"error: {path} not found, so what produced {run}/scores.csv cannot be checked (a calibration is "
            "only valid for the weights and policy it was fitted on): score the labelled set with "
            "evaluate_custom.py --out-dir RUN, then calibrate.py --run RUN"
        )
    except (OSError, UnicodeDecodeError, ValueError) as err:
        sys.exit(f"error: {path} cannot be read as JSON ({err}): re-score the run (evaluate_custom.py)")
    if not isinstance(record, dict):
        sys.exit(f"error: {path} holds {type(record).__name__}, not a run record: re-score the run")
    return record


def metrics_checkpoint(run: Path) -> str | None:
    """The checkpoint metrics.json names (a run.json without one: a hand-made or older record)."""
    try:
        checkpoint = json.loads((run / "metrics.json").read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return None
    return str(checkpoint) if checkpoint else None


def fine_tuning_run_message(run: Path) -> str:
    """What to do when --run names a fine-tuning run: its best.pt is calibrated already."""
    cal = None
    try:
        from antispoof.checkpoints.files import read_checkpoint

        cal = read_checkpoint(run / "best.pt").get("calibration")
    except (OSError, ValueError, AttributeError):
        pass
    state = (
        f"{run}/best.pt already carries a calibration, fitted by fine_tune_for.py on the validation scores "
        f"of its own epoch (llr = {cal['scale']:.4g} * score + {cal['offset']:+.4g})"
        if isinstance(cal, dict) and "scale" in cal
        else f"{run}/best.pt carries no calibration (its validation scores could not be fitted)"
    )
    return (
        f"error: {run} is a fine-tuning run, not an evaluation run. {state}. To re-fit it on fresh scores "
        f"of best.pt: python evaluate_custom.py --data DATA --checkpoint {run}/best.pt --out-dir RUN_NEW, "
        "then python calibrate.py --run RUN_NEW (not on the test split you report). "
        f"{run}/validation holds the last epoch's scores: best.pt's only if the last epoch was the best."
    )


def read_rows(run: Path) -> list[dict]:
    """The scored real and fake rows of RUN/scores.csv; exits with the reason when there are none of a class
    or the file is not a scores file."""
    from antispoof.scoring.scorefile import read_scores

    path = run / "scores.csv"
    if not path.is_file():
        sys.exit(f"error: {path} not found: score a labelled set first (evaluate_custom.py --out-dir RUN)")
    try:
        rows = read_scores(path)
    except (OSError, ValueError) as err:
        sys.exit(f"error: {err}: re-score the run (evaluate_custom.py --overwrite)")
    scored = [r for r in rows if r["status"] == "ok" and r["label"] in ("real", "fake")]
    real = sum(r["label"] == "real" for r in scored)
    if not real or real == len(scored):
        skipped = Counter(r["status"] or "no status" for r in rows if r["status"] != "ok")
        reasons = "; ".join(f"{n} {reason}" for reason, n in skipped.most_common()) or "none"
        sys.exit(
            f"error: {path} has {real} scored real and {len(scored) - real} scored fake files (of "
            f"{len(rows)} rows; skipped: {reasons}): a calibration needs scores of both classes"
        )
    return scored


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


def check_scored_by(record: dict, run: Path, checkpoint: str, model, policy: str) -> str:
    """Exit unless run.json says these scores came from `model` (weights and config) under `policy`: a
    calibration fitted on another model's scores would be stored as this one's. Returns weights_sha256."""
    from antispoof.checkpoints.files import config_sha256, weights_sha256

    sha = weights_sha256(model)
    fresh = (
        f"to fit one for {checkpoint}, score labelled data with it: python evaluate_custom.py --data "
        f"{(record.get('data') or {}).get('data') or 'DATA'} --checkpoint {checkpoint} --out-dir RUN_NEW, "
        "then python calibrate.py --run RUN_NEW"
    )
    if record.get("weights_sha256") != sha:
        whose = f"epoch {record['epoch']}'s weights" if "epoch" in record else f"{record.get('checkpoint')}"
        sys.exit(
            f"error: {run}/scores.csv was scored with other weights ({whose}, weights_sha256 "
            f"{str(record.get('weights_sha256'))[:12]}...) than {checkpoint} ({sha[:12]}...): a calibration "
            f"fitted on them would be wrong for {checkpoint}. Pass --checkpoint with the weights that scored "
            f"the run, or {fresh}"
        )
    if record.get("config_sha256") not in (None, config_sha256(model)):
        sys.exit(
            f"error: {run} was scored with these weights under another model config (run.json: "
            f"{record.get('model_config')}; calibrate.py fits the checkpoint's own config): {fresh}"
        )
    if record.get("policy") not in (None, policy):
        sys.exit(f"error: {run}/run.json records policy {record['policy']!r}, scores.csv {policy!r}: rescore")
    return sha


def main(args: argparse.Namespace) -> dict:
    from antispoof.checkpoints.files import config_sha256, load_model_or_exit  # late: --help stays fast

    if (args.run / "best.pt").is_file() and not (args.run / "scores.csv").is_file():
        sys.exit(fine_tuning_run_message(args.run))
    rows = read_rows(args.run)
    policy = run_policy(rows, args.run)
    record = read_record(args.run)
    checkpoint = args.checkpoint or record.get("checkpoint") or metrics_checkpoint(args.run)
    if not checkpoint:
        sys.exit(f"error: {args.run}/run.json does not record its checkpoint: pass --checkpoint")
    op = cli.operating_point(args)
    model, info = load_model_or_exit(checkpoint, map_location="cpu")
    sha = check_scored_by(record, args.run, str(checkpoint), model, policy)
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
    report(cal, policy, op)
    print(f"wrote {', '.join(written)}")
    return cal


def report(cal: dict, policy: str, op) -> None:
    """The fitted map, its Cllr on the fitting data, and a warning when it was fitted on few files."""
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
    if min(fit["n_real"], fit["n_fake"]) < MIN_FILES_PER_CLASS:
        print(
            f"warning: fitted on only {fit['n_real']} real and {fit['n_fake']} fake files (fewer than "
            f"{MIN_FILES_PER_CLASS} of a class): the map, and every LLR and verdict from it, rests on a "
            "handful of scores; fit it on more labelled files like those you will score",
            file=sys.stderr,
        )
    print(f"verdicts: {op.describe()}")


def embed(path: str, model, cal: dict) -> None:
    """Store `cal` inside a project checkpoint, keeping all else it holds (last.pt's training state)."""
    from antispoof.checkpoints.files import atomic_torch_save, read_checkpoint, save_checkpoint

    if Path(path).suffix == ".safetensors":
        save_checkpoint(path, model, cal, format="safetensors")
    else:
        atomic_torch_save({**read_checkpoint(path), "calibration": cal}, path)


if __name__ == "__main__":
    main(parse_args())
