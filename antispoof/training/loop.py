"""A fine-tuning run of any detector in antispoof.networks: its folder, its epochs, its test scoring.

One epoch (training pass, validation pass, the calibration best.pt carries) is trainer.py's; the clips come
from data.py; what a run keeps on disk (last.pt, best.pt, history.json), written so that a kill at any
instant leaves a consistent run folder, from state.py. `fit(config)` runs one experiment in
`config.out_dir` (the run folder):

    for each epoch:  train (shuffled by epoch, optional RawBoost, bf16 autocast on CUDA, DDP under torchrun)
                     -> validate through scoring.score_items (loss, AUC, EER; positive class = real)
                     -> best.pt when the validation EER improved, last.pt, history.json + loss_curves.png
    at the end:      best.pt scores the test split once, through Scorer.evaluate, into RUN/test/

Everything random in an epoch is a function of (seed, epoch): the sampler is seeded by epoch, each clip's crop
and RawBoost draw come from a generator seeded by (seed, epoch, index), and the torch RNG state (dropout) is
saved in last.pt. So `--resume` continues a stopped run exactly: 1 epoch + resume + 1 epoch gives the
same weights as 2 epochs in one go. Checkpoints are written at the end of each epoch, so a run killed
mid-epoch loses at most that epoch.

Label convention (networks): index 1 = real (bona fide), index 0 = fake (spoof). Training targets come from
`LABEL_TO_INDEX` only; `data.check_label_convention` stops a run whose mapping disagrees.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader

import antispoof.audio.datasets as data
import antispoof.distributed as distributed
import antispoof.evaluation.calibration as calib
import antispoof.evaluation.metric_table as metric_table
import antispoof.reports.plots as plots
import antispoof.runs as runs
import antispoof.utils as utils
from antispoof.checkpoints.files import (
    load_model_or_exit,
    model_from_checkpoint,
    parse_model_config,
    read_checkpoint,
)
from antispoof.networks import FAKE_INDEX, REAL_INDEX
from antispoof.scoring.setup import Scorer
from antispoof.training.config import TrainConfig, settings_text
from antispoof.training.data import build_loaders, check_label_convention, load_split
from antispoof.training.state import (
    History,
    clear_run,
    clear_unfinished,
    recover,
    save_epoch,
    set_rng_state,
    warn_changed_flags,
)
from antispoof.training.trainer import (
    Trainer,
    autocast_dtype,
    class_weights,
    lr_lambda,
    make_optimizer,
    validation_calibration,
)

# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------


def load_initial_model(config: TrainConfig, source: str | Path) -> tuple[nn.Module, dict, dict]:
    """(model, info, training state): from --checkpoint for a new run (empty state), or from the run's own
    last.pt for --resume (its weights and its "training" state, read once). --model-config overrides apply,
    then --freeze-frontend / --gradient-checkpointing."""
    try:
        overrides = parse_model_config(config.model_config)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    if config.resume:
        try:
            contents = read_checkpoint(source)
            model, info = model_from_checkpoint(contents, str(source), config=overrides)
            state = contents["training"]
        except (OSError, ValueError, RuntimeError, KeyError) as err:
            raise SystemExit(f"error: --resume: cannot read the training state in {source}: {err}") from err
    else:
        (model, info), state = load_model_or_exit(source, config=overrides), {}
    for flag, method in (("freeze_frontend", "set_frontend_frozen"),
                         ("gradient_checkpointing", "set_gradient_checkpointing")):  # fmt: skip
        if getattr(config, flag):
            if not hasattr(model, method):
                name = flag.replace("_", "-")
                raise SystemExit(f"error: --{name} applies to SSL-AASIST; {info['arch']} has no wav2vec 2.0 "
                                 "front end")  # fmt: skip
            getattr(model, method)(True)
    return model, info, state


def open_run(config: TrainConfig) -> tuple[TrainConfig, Path, tuple[list, list, list | None]]:
    """The run folder and the (training, validation, test) items, checked before anything is loaded: a run
    already in the folder is refused unless --resume (continue it) or --overwrite (delete it first); the
    splits must not share files. Returns the config (resume turned off when there is nothing to continue)."""
    if config.grad_accum < 1 or config.batch_size < 1 or config.epochs < 1:
        raise SystemExit("error: --epochs, --batch-size and --grad-accum must be at least 1")
    if config.resume and config.overwrite:
        raise SystemExit("error: --resume and --overwrite contradict each other: pass one of them")
    try:
        run_dir = runs.make_run_dir(config.out_dir)  # before any data is read: a file there is refused first
    except runs.RunFolderError as err:
        raise SystemExit(f"error: {err}") from None
    last_path = run_dir / "last.pt"
    if last_path.exists() and config.overwrite and distributed.is_main():
        clear_run(run_dir)
    elif last_path.exists() and not config.resume:
        raise SystemExit(f"error: {run_dir} already holds a run (last.pt): pass --resume to continue it, "
                         "--overwrite to replace it, or choose another --out-dir")  # fmt: skip
    if config.resume and not last_path.exists():  # killed before its first epoch ended: nothing to continue
        print(f"note: --resume: {last_path} does not exist yet; starting the run from --checkpoint")
        config = config.replace(resume=False)
    splits = [("training", config.train_split), ("validation", config.val_split)]
    splits += [("test", config.test_split)] if config.test_split != "none" else []
    items = [data.spread(load_split(config.data, config.layout, name, role), config.limit)
             for role, name in splits]  # fmt: skip
    train_items = items[0]
    for role, other in zip(("validation", "test"), items[1:], strict=False):
        shared = {it.path for it in train_items} & {it.path for it in other}
        if shared:
            raise SystemExit(
                f"error: the training and {role} splits share {len(shared)} files (e.g. "
                f"{sorted(shared)[0]}): {config.data} has no separate splits in layout {config.layout!r}: "
                "use training|validation|testing folders (FoR) or train/dev/eval protocols (ASVspoof)"
            )
    return config, run_dir, (items[0], items[1], items[2] if len(items) > 2 else None)


def fit(config: TrainConfig) -> dict:
    """Train, validate every epoch, keep last.pt / best.pt, then score the test split once with best.pt.

    Returns the history (history.json's content) on rank 0 and {} on the other ranks.
    """
    check_label_convention()
    config, run_dir, splits = open_run(config)
    distributed.init()
    device = distributed.device(config.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():  # the effective settings, recipe included (also in last.pt)
        utils.write_json(run_dir / "args.json", config.as_dict())
    utils.set_seed(config.seed)

    # A new run starts from --checkpoint; a resumed one from its own last.pt (weights and training state).
    source = run_dir / "last.pt" if config.resume else config.checkpoint
    model, info, state = load_initial_model(config, source)
    history = open_history(config, run_dir, state)
    trainer, train = make_trainer(config, model, state, history, run_dir, device, splits[0])
    if distributed.is_main():
        trainer.wandb_run = start_wandb(config, run_dir, state.get("wandb_id"), info)
        print(describe_run(config, info, splits, device, trainer.amp_dtype, train.steps_per_epoch,
                           train.clips_per_epoch()))  # fmt: skip
    train_epochs(trainer, train, splits, first_epoch=int(state.get("epoch", 0)))

    test_items = splits[2]
    if test_items is not None and history.test is None:
        history.test = score_test(config, run_dir / "best.pt", history.best, test_items, run_dir, device)
        if distributed.is_main():
            history.save(run_dir)
            if trainer.wandb_run is not None:
                test = history.test
                trainer.wandb_run.summary.update(
                    {f"test/{k}": test[k] for k in metric_table.SUMMARY_KEYS if test.get(k) is not None}
                )
    if trainer.wandb_run is not None:
        trainer.wandb_run.finish()
    distributed.barrier()
    distributed.cleanup()
    return history.as_dict() if distributed.is_main() else {}


def open_history(config: TrainConfig, run_dir: Path, state: dict) -> History:
    """The run's history: empty for a new run (leftovers of an unfinished one cleared), last.pt's for a
    resumed one (after finishing or undoing what a kill interrupted); the test record is rank 0's on every
    rank."""
    history = History.from_dict(state.get("history"))
    history.subject = plots.subject({"checkpoint": config.checkpoint, "data": config.data})
    if distributed.is_main():
        if config.resume:
            warn_changed_flags(TrainConfig.from_saved(state.get("args", {})).as_dict(), config.as_dict())
            recover(run_dir, history)
        else:
            clear_unfinished(run_dir)
    history.test = distributed.broadcast(history.test)
    return history


@dataclass
class TrainingData:
    """The training split as an epoch reads it."""

    dataset: object  # train_data's dataset: set_epoch(epoch) reseeds crops and RawBoost
    sampler: object  # set_epoch(epoch) reshuffles
    loader: DataLoader
    batch_size: int
    steps_per_epoch: int

    def clips_per_epoch(self) -> int:
        """Clips an epoch trains on, all processes together (drop_last leaves a partial batch out)."""
        return min(len(self.sampler), len(self.loader) * self.batch_size) * distributed.world_size()


def make_trainer(config: TrainConfig, model: nn.Module, state: dict, history: History, run_dir: Path,
                 device: torch.device, train_items: list) -> tuple[Trainer, TrainingData]:  # fmt: skip
    """Model on its device (DDP-wrapped under torchrun), loaders, optimiser, schedule and scaler; a resumed
    run gets back its optimiser, scheduler, scaler and RNG state."""
    model.to(device)
    amp_dtype = autocast_dtype(config.amp, device)
    if torch_dist.is_initialized():
        # Every trainable parameter gets a gradient each step (the unused bn1 of the reference quirk takes
        # none), so DDP skips its unused-parameter search, unless layerdrop skips whole encoder layers.
        layerdrop = getattr(model.config, "layerdrop", 0.0)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=layerdrop > 0,
        )  # fmt: skip
    train_set, sampler, loader = build_loaders(config, train_items)
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum)
    train = TrainingData(train_set, sampler, loader, config.batch_size, steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_lambda(s, config.warmup_steps, total_steps, config.schedule)
    )
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    weight = class_weights(*config.class_weights).to(device) if config.loss == "weighted-ce" else None
    if config.resume:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    trainer = Trainer(config, model, optimizer, scheduler, scaler, weight, device, amp_dtype, run_dir,
                      history, step=int(state.get("step", 0)))  # fmt: skip
    return trainer, train


def train_epochs(trainer: Trainer, train: TrainingData, splits: tuple, first_epoch: int) -> None:
    """Epochs first_epoch+1 .. config.epochs: train, validate, then (rank 0) best.pt when the validation EER
    improved, last.pt, history.json, wandb, a summary line and the run's ETA."""
    config, history = trainer.config, trainer.history
    _, val_items, test_items = splits
    best_eer = history.best["val_eer"] if history.best else math.inf
    started = time.monotonic()
    for epoch in range(first_epoch, config.epochs):
        train.sampler.set_epoch(epoch)
        train.dataset.set_epoch(epoch)
        train_stats = trainer.train_epoch(train.loader, epoch, train.clips_per_epoch())
        val_started = time.monotonic()
        val = trainer.validate(val_items, epoch)
        val_s = time.monotonic() - val_started
        if distributed.is_main():
            row = {"epoch": epoch + 1, "step": trainer.step, **train_stats, **val, "lr": trainer.current_lr()}
            history.epochs.append(row)
            improved = val["val_eer"] < best_eer  # chosen on validation only; the first epoch always counts
            if improved:
                best_eer = val["val_eer"]
                history.best = {"epoch": epoch + 1, "val_eer": val["val_eer"], "val_auc": val["val_auc"],
                                "val_threshold": val["val_threshold"]}  # fmt: skip
            save_epoch(trainer.run_dir, trainer.model, validation_calibration(trainer.model, val, epoch + 1),
                       trainer.training_state(epoch), history, improved)  # fmt: skip
            log_epoch(trainer.wandb_run, row, trainer.step)
            print(epoch_line(row, config.epochs, improved))
            per_epoch = (time.monotonic() - started) / (epoch + 1 - first_epoch)
            n_test = len(test_items) if test_items else 0
            print(run_eta(per_epoch, config.epochs - epoch - 1, val_s * n_test / max(1, len(val_items))))
        distributed.barrier()


def score_test(config, best_path: Path, best: dict, items: list[data.Item], run_dir: Path, device) -> dict:
    """Score the test split once with best.pt through the evaluation pipeline (RUN/test/scores.csv, ...).

    `best`: history's record of the best epoch (rank 0's; its epoch and weights_sha256 go into metrics.json).
    """
    best = distributed.broadcast(best)
    if distributed.is_main():  # not recorded as finished for this best.pt: from another best, or cut short
        shutil.rmtree(run_dir / "test", ignore_errors=True)
    distributed.barrier()
    # The validation split's calibration, fitted for these very weights when best.pt was written.
    scorer = Scorer.load(
        best_path, device=device, backend="torch", amp=config.amp, workers=config.workers,
        batch_size=config.eval_batch_size or config.batch_size,
    )  # fmt: skip
    calibration = scorer.info["calibration"]
    if distributed.is_main():
        print(f"Scoring the test split ({len(items)} files) once, with best.pt (epoch {best['epoch']})")
    provenance = {
        "checkpoint": str(best_path),
        "epoch": best["epoch"],
        "weights_sha256": best["weights_sha256"],
    }
    m = scorer.evaluate(
        items, run_dir / "test", calibration=calibration, progress=not config.quiet,
        extra={**provenance,
               "calibration": calib.summary(calibration, str(best_path)) if calibration else None},
    )  # fmt: skip
    keep = metric_table.SUMMARY_KEYS
    return {**provenance, **{k: m.get(k) for k in keep}, "calibrated": m.get("calibrated")}


def start_wandb(config: TrainConfig, run_dir: Path, wandb_id: str | None, info: dict):
    """The wandb run of rank 0 (offline unless logged in); a resumed run continues its wandb run id."""
    logged = {**config.as_dict(), "init_format": info.get("format"), "arch": info.get("arch")}
    kwargs = {"id": wandb_id, "resume": "allow"} if wandb_id else {}
    return utils.init_wandb(config.wandb_project, run_dir, logged, mode=config.wandb, **kwargs)


def log_epoch(wandb_run, row: dict, step: int) -> None:
    """An epoch's wandb row: the losses, and the validation metrics of metric_table that the row holds."""
    if wandb_run is not None:
        scores = {f"val/{m.key}": row[f"val_{m.key}"] for m in metric_table.METRICS if f"val_{m.key}" in row}
        losses = {"train/epoch_loss": row["train_loss"], "val/loss": row["val_loss"]}
        wandb_run.log({"epoch": row["epoch"], **losses, **scores, "train/clips_per_s": row["clips_per_s"]},
                      step=step)  # fmt: skip


def epoch_line(row: dict, epochs: int, improved: bool) -> str:
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} | "
        f"val loss {row['val_loss']:.4f}, AUC {row['val_auc']:.4f}, EER {100 * row['val_eer']:.2f} %"
        f"{' (best)' if improved else ''} | {row['clips_per_s']:.2f} clips/s"
    )


def run_eta(per_epoch_s: float, epochs_left: int, test_s: float) -> str:
    """What is left of the whole run, from the epochs so far: the remaining epochs (training + validation)
    and the test split, scored once at the end (estimated from validation's files per second)."""
    left = per_epoch_s * epochs_left + test_s
    parts = [f"{epochs_left} epoch(s) of about {per_epoch_s / 60:.1f} min"] if epochs_left else []
    parts += [f"the test split (~{test_s / 60:.1f} min)"] if test_s else []
    return f"run ETA: about {left / 60:.1f} min left" + (f" ({' and '.join(parts)})" if parts else "")


def dropped_note(n_files: int, n_train: int | None, batch_size: int) -> list[str]:
    """The files an epoch leaves out (the last batch would be partial: DataLoader's drop_last), if any."""
    if n_train is None or n_train >= n_files:
        return []
    return [
        f"  each epoch trains on {n_train} of the {n_files} training files: the last {n_files - n_train} do "
        f"not fill a batch of {batch_size} and are left out (other files each epoch, by the shuffle)"
    ]


def describe_run(
    config, info: dict, splits: tuple, device, amp_dtype, steps_per_epoch: int, n_train: int | None = None
) -> str:
    def counts(items):
        n_real = sum(it.label == "real" for it in items)
        return f"{len(items)} files ({n_real} real, {len(items) - n_real} fake)"

    train_items, val_items, test_items = splits
    precision = "fp32" if amp_dtype is None else f"{str(amp_dtype).removeprefix('torch.')} autocast"
    fake_w, real_w = config.class_weights
    weights = f" (fake {fake_w}, real {real_w})" if config.loss == "weighted-ce" else ""
    return "\n".join([
        f"Run folder: {config.out_dir}" + (" (resumed)" if config.resume else ""),
        f"Model: {info['arch']} from {info['source']} ({info['format']})",
        f"Training {counts(train_items)}; validation {counts(val_items)}"
        + (f"; test {counts(test_items)}" if test_items else ""),
        *dropped_note(len(train_items), n_train, config.batch_size),
        f"Device {device}, {precision}, {distributed.world_size()} process(es), "
        f"{steps_per_epoch} optimizer steps per epoch",
        f"Labels: index {REAL_INDEX} = real, {FAKE_INDEX} = fake (model.LABEL_TO_INDEX); "
        f"loss {config.loss}{weights}",
        settings_text(config) + f"\n  (stored in {config.out_dir}/args.json)",
    ])  # fmt: skip
