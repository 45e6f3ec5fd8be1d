"""The settings of a fine-tuning run as one dataclass: fine_tune_for.py turns its flags into it, and Python
callers build it directly.

    from antispoof.training.config import TrainConfig
    from antispoof.training.loop import fit
    history = fit(TrainConfig(data="data/for-2sec", checkpoint="aasist", out_dir="runs/ft", epochs=1))

RUN/args.json and last.pt store `as_dict()`: the keys are the flags' names (`--weight-decay` ->
weight_decay), as they were when fine_tune_for.py passed its argparse namespace, so earlier runs resume as
before (`from_saved` reads their older spellings). A recipe fills the settings not given (`with_recipe`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from antispoof.constants import loader_workers

# Presets for settings the user did not give (fine_tune_for.py --recipe).
RECIPES = {
    # The original FoR fine-tuning run: 5 epochs of plain cross-entropy at lr 5e-5.
    "original": {"epochs": 5, "lr": 5e-5, "weight_decay": 0.0, "loss": "ce", "batch_size": 14, "rawboost": 0},
    # SSL_Anti-spoofing's training recipe (main_SSL_LA.py): Adam lr 1e-6, weight decay 1e-4, batch 14,
    # class-weighted cross-entropy (0.1 fake, 0.9 real) and RawBoost series 1+2. The epoch count is --epochs.
    "reference": {"lr": 1e-6, "weight_decay": 1e-4, "loss": "weighted-ce", "batch_size": 14, "rawboost": 5},
}


def recipe_values(name: str) -> dict:
    """The settings a recipe sets ("reference" takes "original"'s where it names none, e.g. epochs)."""
    return {**RECIPES["original"], **RECIPES[name]}


@dataclass
class TrainConfig:
    """One fine-tuning run. Defaults are fine_tune_for.py's; the recipe settings (epochs, lr, weight_decay,
    loss, batch_size, rawboost) default to the "original" recipe's values."""

    data: str  # dataset root (FoR: holds training|validation|testing)
    layout: str = "auto"  # dataset layout (audio.datasets.FORMATS)
    train_split: str = "training"
    val_split: str = "validation"  # picks the best epoch and fits best.pt's calibration
    test_split: str = "testing"  # scored once at the end with best.pt; "none" to skip
    out_dir: str = "runs/fine_tune_for"
    resume: bool = False  # continue the run in out_dir from its last.pt
    overwrite: bool = False  # delete the run in out_dir first
    limit: int | None = None  # use only N files of each split, spread over it (smoke runs)
    checkpoint: str = "la"  # initial weights: a registry name or a checkpoint path
    model_config: str | None = None  # JSON text or file of config overrides
    freeze_frontend: bool = False
    gradient_checkpointing: bool = False
    recipe: str = "original"
    optimizer: str = "adam"  # adam | adamw
    class_weights: list[float] = field(default_factory=lambda: [0.1, 0.9])  # weighted-ce: fake, real
    eval_batch_size: int | None = None  # validation/test batch (None: batch_size)
    grad_accum: int = 1
    clip_grad: float = 0.0  # max gradient norm (0 = none)
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine, after the warm-up
    crop: str = "head"  # head (reference) | random: the 4 s window of longer training files
    augment: list[str] | None = None  # channel augmentation families (training.augment.AUGMENT_FAMILIES)
    augment_prob: float = 0.5  # share of clips --augment changes
    device: str = "auto"
    workers: int = field(default_factory=loader_workers)  # DataLoader processes: what the machine has
    amp: str = "auto"
    seed: int = 1234
    wandb: str = "auto"  # auto | online | offline | disabled
    wandb_project: str = "ssl-aasist-for"
    quiet: bool = False  # no progress bars
    epochs: int = RECIPES["original"]["epochs"]
    lr: float = RECIPES["original"]["lr"]
    weight_decay: float = RECIPES["original"]["weight_decay"]
    loss: str = RECIPES["original"]["loss"]  # ce | weighted-ce
    batch_size: int = RECIPES["original"]["batch_size"]  # clips per training step and process
    rawboost: int = RECIPES["original"]["rawboost"]  # RawBoost algorithm (0 = off)
    from_recipe: list[str] = field(default_factory=list)  # the settings the recipe filled (marked in the log)

    @classmethod
    def with_recipe(cls, **given) -> TrainConfig:
        """A config whose recipe settings not in `given` come from its `recipe` (default "original"; listed in
        from_recipe)."""
        recipe = given.pop("recipe", "original")
        values = recipe_values(recipe)
        filled = sorted(k for k in values if k not in given)
        return cls(**{**{k: values[k] for k in filled}, **given}, recipe=recipe, from_recipe=filled)

    @classmethod
    def from_saved(cls, saved: dict) -> TrainConfig:
        """The config of args.json / last.pt, older spellings included ("format" was the layout's key)."""
        saved = dict(saved)
        if "format" in saved and "layout" not in saved:
            saved["layout"] = saved.pop("format")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})

    def as_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return replace(self, **changes)


def settings_text(config) -> str:
    """The effective settings as flags, for the log; settings a recipe filled in are marked with *."""
    values = config.as_dict() if hasattr(config, "as_dict") else vars(config)
    marked = set(values.get("from_recipe", ()))
    parts = []
    for key, value in sorted(values.items()):
        if key == "from_recipe":
            continue
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        parts.append(f"--{key.replace('_', '-')} {shown}{'*' if key in marked else ''}")
    recipe = values.get("recipe")
    lines = [f"Settings{f' (* = from --recipe {recipe})' if marked else ''}:"]
    for part in parts:  # wrapped at 110 columns, never inside a flag
        if len(lines[-1]) + 1 + len(part) > 110:
            lines.append(" ")
        lines[-1] += " " + part
    return "\n".join(lines)
