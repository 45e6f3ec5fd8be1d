"""Score a labelled real/fake dataset with a checkpoint and report AUC and EER (positive class = real).

    python evaluate_custom.py --data DIR --checkpoint la --out-dir runs/eval_la
    python evaluate_custom.py --data ASVspoof2019/LA --format asvspoof2019 --split eval --checkpoint aasist \\
        --out-dir runs/aasist_la19
    torchrun --nproc_per_node 4 evaluate_custom.py --data DIR --checkpoint la --out-dir runs/eval_la

By default each file is scored under the model's reference input policy (SSL-AASIST and AASIST: the first
64,600 samples, 4.04 s, tiled if shorter): that is how published numbers are reproduced. --window scores
overlapping windows (mean logit); --whole-clip scores the whole file with its most fake-sounding window
deciding, the answer score.py and the app give for one recording (evaluate it, or fit its calibration, here).
The run prints the policy and every output records it.

Writes into --out-dir: scores.csv (path,label,score,p_fake,logit_fake,logit_real,llr,status,duration_s,
scored_s,n_windows,note,group,policy,score_kind,windows; written as it goes, so --resume finishes an
interrupted run), metrics.json (auc, eer, eer_threshold, min_dcf, act_dcf, cllr, min_cllr at the
--prior/--cost operating point, default ASVspoof 5's, 95 % bootstrap intervals, counts, skipped files by
reason, positive class, policy and score definition, and by_group: the same per generator sub-folder or
ASVspoof attack), roc.png, det.png, score_hist.png, reliability.png, args.json and run.json (the checkpoint,
its weights' sha256 and the scoring settings: --resume refuses to mix runs, and an existing run is replaced
only with --overwrite; see runs.py); prints one summary line. When the checkpoint has a calibration for these
weights and this policy (calibrate.py), scores.csv gains `llr` and metrics.json `calibrated` (actDCF, Cllr of
the LLRs); a calibration for other weights or another policy is refused (the run is then uncalibrated, and
says why). --score-file writes the ASVspoof 5 score file (filename<TAB>cm-score).
score = the model's reference score (SSL-AASIST and AASIST: the real-class logit; higher = more real),
p_fake = softmax probability of fake.
Unreadable files are skipped with their reason in `status` and counted; the exit status is 0 whenever metrics
could be computed (see metrics.json's n_skipped), 1 when no metrics could be computed (e.g. every file of a
class failed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import antispoof.cli as cli
import antispoof.distributed as dist
import antispoof.scoring.scorefile as scorefile
from antispoof.audio.datasets import load_dataset
from antispoof.checkpoints.files import parse_model_config
from antispoof.runs import RunFolderError
from antispoof.scoring.evaluate import evaluate_run
from antispoof.scoring.setup import Scorer
from antispoof.utils import atomic_write_text, init_wandb, raw_names_on_stdio, set_seed, write_json

DEFAULT_CHECKPOINT = "la"  # registry name of the reference LA_model.pth (see pretrained/README.md)


def build_parser(description: str = __doc__) -> argparse.ArgumentParser:
    p = cli.parser(description)
    cli.add_data(p)
    p.add_argument(
        "--split",
        default=None,
        help="FoR: training|validation|testing (default testing); ASVspoof 2019: train|dev|eval; "
        "ASVspoof 2021: the phase (default eval)",
    )
    cli.add_checkpoint(p, DEFAULT_CHECKPOINT)
    cli.add_model_config(p)
    p.add_argument(
        "--out-dir", type=Path, required=True, help="run folder for scores.csv, metrics.json, plots"
    )
    cli.add_policy(p)
    cli.add_compute(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (batches are padded to --batch-size, so it compiles once)",
    )
    cli.add_backend(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish the run in --out-dir: keep its rows, score the rest (refused if run.json's checkpoint "
        "weights or scoring settings differ)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="delete the earlier run in --out-dir first, then start anew"
    )
    p.add_argument(
        "--limit", type=int, default=None, help="score only N files, spread over the dataset (smoke runs)"
    )
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95 %% intervals (0 = off)"
    )
    cli.add_wandb(p, default="disabled", project="ssl-aasist-eval")
    cli.add_operating_point(p)
    p.add_argument(
        "--no-calibration", action="store_true", help="ignore the checkpoint's calibration: raw scores only"
    )
    p.add_argument(
        "--score-file",
        type=Path,
        default=None,
        help="also write an ASVspoof 5 score file (filename<TAB>cm-score; the calibrated llr when a "
        "calibration applies, else the raw score)",
    )
    return p


def policy_origin(args: argparse.Namespace) -> str:
    """Why this input policy: the flag that chose it, or the model's reference policy."""
    if args.whole_clip:
        return "--whole-clip"
    return "--window" if args.window else "the model's reference policy, as published numbers are made"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    """Run the evaluation; returns the metrics (rank 0) or {} (other torchrun ranks)."""
    raw_names_on_stdio()
    dist.init()
    set_seed(args.seed)
    try:
        items = load_dataset(args.data, format=args.format, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    if args.limit is not None and args.limit < len(items):
        step = len(items) / args.limit  # spread over the list, so both classes are in a smoke run
        items = [items[int(k * step)] for k in range(args.limit)]
    try:
        model_config = parse_model_config(args.model_config)
    except ValueError as err:
        sys.exit(f"error: {err}")
    try:
        scorer = Scorer.load(
            args.checkpoint,
            device=args.device,
            model_config=model_config,
            map_location="cpu",  # moved to the device when scoring starts
            window=args.window,
            hop_s=args.hop,
            max_seconds=args.max_duration,
            whole_clip=args.whole_clip,
            amp=args.amp,
            backend=args.backend,
            batch_size=args.batch_size,
            workers=args.workers,
        )
    except (OSError, ValueError, RuntimeError) as err:  # the loaders' messages say what to do
        sys.exit(f"error: cannot load checkpoint {args.checkpoint}: {err}")

    def start_logging():  # once the run folder is accepted: the flags beside the scores, and wandb
        write_json(args.out_dir / "args.json", vars(args))
        return init_wandb(args.wandb_project, args.out_dir, vars(args), mode=args.wandb)

    try:
        metrics = evaluate_run(
            scorer,
            items,
            args.out_dir,
            checkpoint=args.checkpoint,
            data={"data": str(args.data), "format": args.format, "split": args.split, "limit": args.limit},
            resume=args.resume,
            overwrite=args.overwrite,
            use_calibration=not args.no_calibration,
            op=cli.operating_point(args),
            on_start=start_logging,
            policy_origin=policy_origin(args),
            n_bootstrap=args.bootstrap,
            compile=args.compile,
        )
    except RunFolderError as err:
        sys.exit(f"error: {err}")
    if args.score_file is not None and dist.is_main():
        rows = scorefile.read_scores(args.out_dir / "scores.csv")
        calibrated = metrics.get("calibration") is not None
        atomic_write_text(args.score_file, scorefile.asvspoof5_score_file(rows, use_llr=calibrated))
        what = "calibrated llr" if calibrated else "raw score (no calibration applies)"
        print(f"wrote {args.score_file} (ASVspoof 5 score file, cm-score = {what})")
    dist.cleanup()
    return metrics


if __name__ == "__main__":
    result = main(parse_args())
    sys.exit(1 if dist.is_main() and result.get("auc") is None else 0)
