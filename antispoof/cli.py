"""The command-line flags the scripts share, defined once: a flag means the same thing in every script.

    p = cli.parser(__doc__)                           # the one HelpFormatter (defaults, docstring as written)
    cli.add_data(p)                                   # --data, --layout (dataset layout; old name --format)
    cli.add_checkpoint(p, default="la")               # --checkpoint
    cli.add_model_config(p)                           # --model-config
    cli.add_policy(p)                                 # --window, --hop, --max-duration (+ the whole clip)
    cli.add_compute(p)                                # --device, --batch-size, --workers, --amp, --seed
    cli.add_backend(p)                                # --backend
    cli.add_operating_point(p)                        # --prior, --cost
    cli.add_calibration_flags(p, no_calibration=...)  # --no-calibration, --score-file
    cli.add_overwrite(p); cli.add_limit(p)            # --overwrite, --limit
    cli.add_run(p, help=...)                          # RUN or --run RUN
    cli.add_wandb(p, default="disabled", project="ssl-aasist-eval")  # --wandb, --wandb-project

A script may give a flag another default, never another meaning. Where defaults differ, the reason:
- --checkpoint: la in evaluate_custom.py and fine_tune_for.py (the workflow's model: SSL-AASIST trained on
  ASVspoof 2019 LA, the one the published numbers are about); aasist, or the strongest detector present, in
  score.py and app.py (an answer on a CPU without a manual 1.2 GB download).
- --seed: 1234 in fine_tune_for.py (SSL_Anti-spoofing's training seed: dropout, shuffling, RawBoost); 0 in
  evaluation, where only the decoding workers draw random numbers and no score depends on them.
- --wandb: auto in fine_tune_for.py (its result is a curve over epochs); disabled in evaluation (its result
  is one line and metrics.json).
- --workers: one per core but one (at most 8) in fine_tune_for.py, where training clips are decoded and
  augmented on the fly; the same for scoring, except none on machines of 2 cores or fewer, where a decoding
  process took CPU from the model (constants.default_workers).

This module imports no torch (choices come from antispoof.constants), so every --help stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from antispoof.audio.datasets import FORMATS
from antispoof.constants import AMP_CHOICES, BACKENDS, SINGLE_RECORDING_PRIOR, default_workers
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint

WANDB_MODES = ("auto", "online", "offline", "disabled")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Flag defaults in --help (a None default is explained by the help text), the docstring as written."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parser(description: str | None) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)


def add_data(
    p,
    help: str = "dataset folder, or a CSV file (path,label) / In-the-Wild meta.csv",
    default: str | None = None,
) -> None:
    """--data (required unless given a `default`) and --layout (its old name --format still works, with a
    note: "format" also names checkpoint, output and export formats)."""
    p.add_argument("--data", required=default is None, default=default, help=help)
    layouts = ("auto", *FORMATS)
    p.add_argument(
        "--layout", default="auto", choices=layouts, help="dataset layout (antispoof/audio/datasets.py)"
    )
    p.add_argument(
        "--format", dest="layout", choices=layouts, action=_Renamed, new="--layout", help=argparse.SUPPRESS
    )


class _Renamed(argparse.Action):
    """A flag's old name: accepted, with a note naming the new one."""

    def __init__(self, *args, new: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is now {self.new} (the old name still works, for now)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_checkpoint(p, default: str | None, help: str = "checkpoint file or registry name") -> None:
    p.add_argument("--checkpoint", default=default, help=f"{help} (python download.py --list)")


def add_model_config(p, help: str = "") -> None:
    """--model-config: config overrides for what a checkpoint cannot tell (checkpoints.parse_model_config)."""
    p.add_argument(
        "--model-config",
        default=None,
        help="JSON (inline or a file) of model config overrides, for sizes a checkpoint cannot tell, e.g. "
        f"'{{\"num_attention_heads\": 16}}'{help}",
    )


def add_policy(p, hop: bool = True, single_recording: bool = False) -> None:
    """--window (and --hop, --max-duration): what of each file the model sees (scoring.policy_for); and the
    whole-clip answer: the default of `single_recording` scripts (score.py, app.py; --reference-policy turns
    it off), --whole-clip elsewhere (to evaluate or calibrate that answer)."""
    p.add_argument(
        "--window",
        action="store_true",
        help="score whole files as overlapping 4.04 s windows (mean logit; every window kept) instead of the "
        "model's input policy (SSL-AASIST, AASIST: the reference's first 4.04 s)",
    )
    whole_clip = (
        "every second of each file: 4.04 s windows, the file scored by its most fake-sounding window (a "
        "whole-file model reads the whole file)"
    )
    if single_recording:
        p.add_argument(
            "--reference-policy",
            dest="whole_clip",
            action="store_false",
            help=f"score under the model's input policy, as evaluate_custom.py does, instead of {whole_clip}",
        )
    else:
        p.add_argument(
            "--whole-clip",
            action="store_true",
            help=f"score {whole_clip}: score.py's and the app's answer for one recording (fit its "
            "calibration on such a run)",
        )
    if hop:
        p.add_argument(
            "--hop", type=float, default=None, help="seconds between window starts (default: half a window)"
        )
        p.add_argument(
            "--max-duration",
            type=float,
            default=None,
            help="with --window or a whole-file model (AntiDeepfake), seconds scored per file (default: 600; "
            "the rest: a note)",
        )


def add_device(p) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:1, mps")


def add_compute(
    p,
    *,
    batch_size_help: str = "model inputs per forward pass (default: 64 on CUDA, 4 on CPU)",
    batch_size_default=None,
    workers: int | None = None,
    seed: int | None = 0,
) -> None:
    """--device, --batch-size, --workers, --amp and, unless `seed` is None (nothing random), --seed."""
    add_device(p)
    p.add_argument("--batch-size", type=int, default=batch_size_default, help=batch_size_help)
    rule = "on <= 2 cores none (they would take CPU from the model), else " if workers is None else ""
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers() if workers is None else workers,
        help=f"audio decoding processes (0 = in the main process); {rule}one per core but one, at most 8",
    )
    p.add_argument(
        "--amp", default="auto", choices=AMP_CHOICES, help="autocast: auto = bf16 on CUDA, none elsewhere"
    )
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed, help="random seed")


def add_backend(p) -> None:
    """--backend: what runs the model when scoring (PyTorch, or onnxruntime on a CPU)."""
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="torch, or onnxruntime on a CPU (onnx; onnx-int8: int8 weights, scores move, opt-in); "
        "auto = onnxruntime for AASIST on a CPU (the same scores, ~4x PyTorch's pipeline on 2 cores)",
    )


def add_wandb(p, default: str, project: str) -> None:
    p.add_argument(
        "--wandb",
        default=default,
        choices=WANDB_MODES,
        help="log to wandb: auto = online if logged in (WANDB_API_KEY), else offline into the run folder",
    )
    p.add_argument("--wandb-project", default=project, help="wandb project")


def add_operating_point(p) -> None:
    """--prior and --cost: the operating point of every script that makes or judges decisions."""
    p.add_argument(
        "--prior",
        type=float,
        default=ASVSPOOF5.p_spoof,
        help="prior probability that a file is fake (ASVspoof 5: 0.05)",
    )
    p.add_argument(
        "--cost",
        type=float,
        nargs=2,
        default=(ASVSPOOF5.c_miss, ASVSPOOF5.c_fa),
        metavar=("C_MISS", "C_FA"),
        help="cost of calling a real file fake, and of calling a fake file real (ASVspoof 5: 1 10)",
    )


def add_fake_prior(p) -> None:
    """--fake-prior: the prior of the three answers a single recording gets (score.py and app.py)."""
    p.add_argument(
        "--fake-prior",
        type=open_probability,
        default=SINGLE_RECORDING_PRIOR,
        help="chance that a recording is fake before listening, for the calibrated answer (0.5: even odds)",
    )


def open_probability(text: str) -> float:
    """argparse type: a probability strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def operating_point(args: argparse.Namespace) -> OperatingPoint:
    """The OperatingPoint of --prior / --cost; exits with the reason when they are invalid."""
    try:
        return OperatingPoint(args.prior, *args.cost)
    except ValueError as err:
        sys.exit(f"error: {err}")


def add_run(p, help: str) -> None:
    """A run folder, given either way: `SCRIPT RUN` or `SCRIPT --run RUN` (analyse.py and calibrate.py)."""
    p.add_argument("run", type=Path, nargs="?", default=None, help=help)
    p.add_argument(
        "--run", type=Path, dest="run_flag", default=None, metavar="RUN", help="the same, as a flag"
    )


def parse_run(p: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a parser that has `add_run`: exactly one run folder, in `args.run`."""
    args = p.parse_args(argv)
    if (args.run is None) == (args.run_flag is None):
        p.error("give the run folder once: RUN or --run RUN")
    args.run = args.run if args.run is not None else args.run_flag
    del args.run_flag
    return args


def add_overwrite(p) -> None:
    p.add_argument(
        "--overwrite", action="store_true", help="delete the earlier run in --out-dir first, then start anew"
    )


def add_limit(p) -> None:
    p.add_argument(
        "--limit", type=int, default=None, help="use only N files, spread over the dataset (smoke runs)"
    )


def add_calibration_flags(p, no_calibration: str) -> None:
    """--no-calibration and --score-file (the ASVspoof 5 score file: the llr when calibrated)."""
    p.add_argument("--no-calibration", action="store_true", help=no_calibration)
    p.add_argument(
        "--score-file",
        type=Path,
        default=None,
        help="also write an ASVspoof 5 score file (filename<TAB>cm-score; the calibrated llr when a "
        "calibration applies, else the raw score)",
    )


def evaluation_parser(description: str | None, checkpoint: str) -> argparse.ArgumentParser:
    """The flags of evaluate_custom.py and evaluate_custom_for.py (`run_evaluation`); `checkpoint`: the
    default --checkpoint."""
    p = parser(description)
    add_data(p)
    p.add_argument(
        "--split",
        default=None,
        help="FoR: training|validation|testing (default testing); ASVspoof 2019: train|dev|eval; "
        "ASVspoof 2021: the phase (default eval)",
    )
    add_checkpoint(p, checkpoint)
    add_model_config(p)
    p.add_argument(
        "--out-dir", type=Path, required=True, help="run folder for scores.csv, metrics.json, plots"
    )
    add_policy(p)
    add_compute(p)
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model (batches are padded to --batch-size, so it compiles once)",
    )
    add_backend(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish the run in --out-dir: keep its rows, score the rest (refused if run.json's checkpoint "
        "weights or scoring settings differ)",
    )
    add_overwrite(p)
    add_limit(p)
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95 %% intervals (0 = off)"
    )
    add_wandb(p, default="disabled", project="ssl-aasist-eval")
    add_operating_point(p)
    add_calibration_flags(p, no_calibration="ignore the checkpoint's calibration: raw scores only")
    return p


def policy_origin(args: argparse.Namespace) -> str:
    """Why this input policy: the flag that chose it, or the model's reference policy."""
    if args.whole_clip:
        return "--whole-clip"
    return "--window" if args.window else "the model's reference policy, as published numbers are made"


def load_scorer(args: argparse.Namespace, checkpoint: str | None = None):
    """The Scorer that the shared flags describe (add_checkpoint, add_model_config, add_policy, add_device,
    add_compute, add_backend), for `checkpoint` (default: --checkpoint). Raises the loaders' OSError /
    ValueError / RuntimeError, whose messages say what to do."""
    from antispoof.checkpoints.files import parse_model_config
    from antispoof.scoring.setup import Scorer

    return Scorer.load(
        checkpoint or args.checkpoint,
        device=args.device,
        model_config=parse_model_config(args.model_config),
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


def run_evaluation(args: argparse.Namespace) -> dict:
    """evaluate_custom.py: score a labelled set into a run folder (`evaluation_parser`'s flags); returns the
    metrics (rank 0) or {} (other torchrun ranks). Every refusal ends the run with its message."""
    import antispoof.distributed as dist
    import antispoof.scoring.scorefile as scorefile
    from antispoof.audio.datasets import load_dataset, spread
    from antispoof.runs import RunFolderError
    from antispoof.scoring.evaluate import evaluate_run
    from antispoof.utils import atomic_write_text, init_wandb, raw_names_on_stdio, set_seed, write_json

    raw_names_on_stdio()
    dist.init()
    set_seed(args.seed)
    try:
        items = load_dataset(args.data, format=args.layout, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    items = spread(items, args.limit)
    try:
        scorer = load_scorer(args)
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
            data={"data": str(args.data), "layout": args.layout, "split": args.split, "limit": args.limit},
            resume=args.resume,
            overwrite=args.overwrite,
            use_calibration=not args.no_calibration,
            op=operating_point(args),
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
