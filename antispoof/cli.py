"""The command-line flags the scripts share, defined once: a flag means the same thing in every script.

    p = cli.parser(__doc__)
    cli.add_data(p)                                   # --data, --format (the dataset layout)
    cli.add_checkpoint(p, default="la")               # --checkpoint
    cli.add_model_config(p)                           # --model-config
    cli.add_policy(p)                                 # --window, --hop, --max-duration
    cli.add_compute(p)                                # --device, --batch-size, --workers, --amp, --seed
    cli.add_wandb(p, default="disabled", project="ssl-aasist-eval")  # --wandb, --wandb-project

A script may give a flag another default (fine_tune_for.py seeds with 1234, logs to wandb by default), never
another meaning.
"""

from __future__ import annotations

import argparse
import sys

from antispoof.audio.datasets import FORMATS
from antispoof.constants import AMP_CHOICES, BACKENDS, default_workers
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
    """--data (required unless given a `default`) and --format."""
    p.add_argument("--data", required=default is None, default=default, help=help)
    p.add_argument(
        "--format", default="auto", choices=("auto", *FORMATS), help="dataset layout (see data.py)"
    )


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
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers() if workers is None else workers,
        help="audio decoding processes (0 = decode in the main process)",
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
        "auto = onnxruntime for AASIST on a CPU (the same scores, ~4x faster)",
    )


def add_wandb(p, default: str, project: str) -> None:
    p.add_argument(
        "--wandb",
        default=default,
        choices=WANDB_MODES,
        help="log to wandb: auto = online if logged in (WANDB_API_KEY), else offline into the run folder",
    )
    p.add_argument("--wandb-project", default=project, help="wandb project")


def settings_text(args: argparse.Namespace) -> str:
    """The effective settings as flags, for the log; flags a --recipe filled in are marked with *."""
    marked = set(getattr(args, "from_recipe", ()))
    parts = []
    for key, value in sorted(vars(args).items()):
        if key == "from_recipe":
            continue
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        parts.append(f"--{key.replace('_', '-')} {shown}{'*' if key in marked else ''}")
    lines = [f"Settings{f' (* = from --recipe {args.recipe})' if marked else ''}:"]
    for part in parts:  # wrapped at 110 columns, never inside a flag
        if len(lines[-1]) + 1 + len(part) > 110:
            lines.append(" ")
        lines[-1] += " " + part
    return "\n".join(lines)


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


def operating_point(args: argparse.Namespace) -> OperatingPoint:
    """The OperatingPoint of --prior / --cost; exits with the reason when they are invalid."""
    try:
        return OperatingPoint(args.prior, *args.cost)
    except ValueError as err:
        sys.exit(f"error: {err}")
