"""Fine-tune a detector on Fake-or-Real (or another layout data.py reads), then score its test split once.

    python fine_tune_for.py --data DIR --checkpoint la --out-dir RUN
    python fine_tune_for.py --data DIR --out-dir RUN --resume            # continue a stopped run exactly
    torchrun --nproc_per_node 4 fine_tune_for.py --data DIR --out-dir RUN # DDP, one process per GPU

DIR holds training/, validation/ and testing/, each with real/ and fake/ (FoR: for-norm, for-2sec, ...);
other layouts via --layout and the --*-split names (ASVspoof 2019: --train-split train --val-split dev
--test-split eval). The defaults reproduce the original FoR run (5 epochs, Adam lr 5e-5, cross-entropy, from
the pretrained LA checkpoint); `--recipe reference` switches the unset flags to SSL_Anti-spoofing's recipe
(Adam lr 1e-6, weight decay 1e-4, weighted cross-entropy 0.1 fake / 0.9 real, RawBoost 1+2, batch 14); the
run prints the settings it used, marking those the recipe filled.

RUN receives: best.pt (the epoch of lowest validation EER: weights, config and a calibration, the score ->
LLR map fitted on that epoch's validation scores; this is the file to keep or share), last.pt (the latest
epoch with the whole training state for --resume); every --checkpoint flag of this project accepts both.
Also args.json (the effective settings), validation/scores.csv (the latest epoch's validation scores, scored
as evaluate_custom.py scores), history.json (per-step train loss, per-epoch train/val loss, val AUC/EER),
loss_curves.png, test/ (scores.csv, metrics.json and plots of best.pt, as evaluate_custom.py writes),
skipped_files.tsv (only when some files could not be read) and the wandb run (offline unless logged in;
`wandb sync RUN/wandb/offline-run-*` uploads it). From Python: antispoof.training.loop.fit(TrainConfig(...)).

Labels: output index 1 = real, 0 = fake (model.LABEL_TO_INDEX); validation and test scores are the model's
reference score under its input policy (SSL-AASIST, AASIST: logits[:, 1] of the first 4.04 s).
"""

from __future__ import annotations

import argparse

import antispoof.cli as cli
from antispoof.audio.rawboost import ALGOS
from antispoof.constants import loader_workers
from antispoof.training.augment import AUGMENT_FAMILIES
from antispoof.training.config import RECIPES, TrainConfig, recipe_values

# A recipe flag left out is absent from the parsed flags (SUPPRESS); TrainConfig.with_recipe fills it.
UNSET = argparse.SUPPRESS


def recipe_help(key: str, text: str) -> str:
    """Help text naming each recipe's value: --help shows what --recipe would set, whatever is given."""
    values = ", ".join(f"{name} {recipe_values(name)[key]}" for name in sorted(RECIPES))
    return f"{text} (default from --recipe: {values})"


def add_optimisation(p: argparse.ArgumentParser) -> None:
    """The optimisation flags: --recipe and the settings it fills, the optimizer, schedule and loss."""
    o = p.add_argument_group("optimisation")
    o.add_argument(
        "--recipe",
        default="original",
        choices=sorted(RECIPES),
        help="fills the flags marked 'default from --recipe' that are not given: 'original' (the FoR run) or "
        "'reference' (SSL_Anti-spoofing); the run prints the settings it used and stores them in args.json",
    )
    o.add_argument("--epochs", type=int, default=UNSET, help=recipe_help("epochs", "number of epochs"))
    o.add_argument("--lr", type=float, default=UNSET, help=recipe_help("lr", "peak learning rate"))
    o.add_argument("--optimizer", default="adam", choices=("adam", "adamw"), help="optimizer")
    o.add_argument(
        "--weight-decay",
        type=float,
        default=UNSET,
        help=recipe_help("weight_decay", "weight decay (Adam: L2 penalty, as the reference)"),
    )
    o.add_argument("--loss", choices=("ce", "weighted-ce"), default=UNSET,
                   help=recipe_help("loss", "plain or class-weighted cross-entropy"))  # fmt: skip
    o.add_argument("--class-weights", type=float, nargs=2, default=[0.1, 0.9], metavar=("FAKE", "REAL"),
                   help="weighted-ce weights of the fake and real classes")  # fmt: skip
    o.add_argument(
        "--eval-batch-size", type=int, default=None, help="validation/test batch (default: --batch-size)"
    )
    o.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    o.add_argument("--clip-grad", type=float, default=0.0, help="max gradient norm (0 = no clipping)")
    o.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up, in optimizer steps")
    o.add_argument("--schedule", default="constant", choices=("constant", "cosine"), help="lr after warm-up")


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The flags as a TrainConfig (recipe settings not given filled from --recipe)."""
    p = cli.parser(__doc__)
    io = p.add_argument_group("data and run folder")
    cli.add_data(io, help="dataset root (FoR: holds training|validation|testing)")
    io.add_argument("--train-split", default="training", help="split used for training")
    io.add_argument(
        "--val-split", default="validation", help="split that picks the best epoch and fits its calibration"
    )
    io.add_argument("--test-split", default="testing", help="split scored once at the end ('none' to skip)")
    io.add_argument(
        "--out-dir", default="runs/fine_tune_for", help="run folder (checkpoints, history, test/)"
    )
    io.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its last.pt")
    cli.add_overwrite(io)
    cli.add_limit(io)

    m = p.add_argument_group("model")
    cli.add_checkpoint(
        m,
        "la",
        help="initial weights: registry name (la, df, aasist, aasist-l, antideepfake-*, sls-df, df-arena-*, "
        "xlsr-mamba-*), a reference, clovaai, AntiDeepfake (.ckpt, .safetensors), SLS, DF Arena, XLSR-Mamba, "
        "fairseq or project checkpoint, or a transformers XLS-R (new detector, random back end)",
    )
    cli.add_model_config(m)
    m.add_argument("--freeze-frontend", action="store_true",
                   help="train the head only (SSL-AASIST, AntiDeepfake, SLS)")  # fmt: skip
    m.add_argument("--gradient-checkpointing", action="store_true", help="save front-end activation memory")

    add_optimisation(p)

    a = p.add_argument_group("training clips")
    a.add_argument("--crop", default="head", choices=("head", "random"),
                   help="4 s window of longer training files: head (reference) or random")  # fmt: skip
    algos = ", ".join(f"{k} {v}" for k, v in ALGOS.items())
    a.add_argument("--rawboost", type=int, choices=sorted(ALGOS), default=UNSET,
                   help=recipe_help("rawboost", f"RawBoost on the fly: {algos}"))  # fmt: skip
    a.add_argument("--augment", nargs="+", choices=sorted(AUGMENT_FAMILIES), default=None,
                   help="channel augmentation from stress.py's battery, on the fly: codec (MP3, AAC, Opus, "
                   "Vorbis, telephone; coded files cached), noise (white, speech-shaped, 20/10/5 dB), "
                   "reverb; combines with --rawboost")  # fmt: skip
    a.add_argument("--augment-prob", type=float, default=0.5, help="share of clips --augment changes")

    r = p.add_argument_group("run")
    cli.add_compute(
        r,
        batch_size_default=UNSET,
        batch_size_help=recipe_help("batch_size", "clips per training step and process"),
        workers=loader_workers(),  # what the machine has (4 on 2 cores spent more system than user time)
        seed=1234,
    )
    cli.add_wandb(r, default="auto", project="ssl-aasist-for")
    r.add_argument("--quiet", action="store_true", help="no progress bars")

    given = vars(p.parse_args(argv))  # a recipe flag left out is absent (SUPPRESS): the recipe fills it
    return TrainConfig.with_recipe(**given)


def main(config: TrainConfig) -> dict:
    from antispoof.training.loop import fit  # here: --help needs no torch
    from antispoof.utils import raw_names_on_stdio

    raw_names_on_stdio()  # warnings name unreadable files, whatever bytes their names hold
    return fit(config)


if __name__ == "__main__":
    main(parse_args())
