"""The fine-tuning loop of the detectors in model.py: optimisation, validation, logs.

The clips it trains on come from train_data.py; what a run keeps on disk (last.pt, best.pt, history.json),
written so that a kill at any instant leaves a consistent run folder, from train_state.py.
`fit(config)` runs one experiment in `config.out_dir` (the run folder):

    for each epoch:  train (shuffled by epoch, optional RawBoost, bf16 autocast on CUDA, DDP under torchrun)
                     -> validate through scoring.score_items (loss, AUC, EER; positive class = real)
                     -> best.pt when the validation EER improved, last.pt, history.json + loss_curves.png
    at the end:      best.pt scores the test split once, through scoring.evaluate.evaluate, into RUN/test/

Everything random in an epoch is a function of (seed, epoch): the sampler is seeded by epoch, each clip's crop
and RawBoost draw come from a generator seeded by (seed, epoch, index), and the torch RNG state (dropout) is
saved in last.pt. So `--resume` continues a stopped run exactly: 1 epoch + resume + 1 epoch gives the
same weights as 2 epochs in one go. Checkpoints are written at the end of each epoch, so a run killed
mid-epoch loses at most that epoch.

Label convention (model.py): index 1 = real (bona fide), index 0 = fake (spoof). Training targets come from
`model.LABEL_TO_INDEX` only; `train_data.check_label_convention` stops a run whose mapping disagrees.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

import antispoof.audio.datasets as data
import antispoof.distributed as distributed
import antispoof.evaluation.calibration as calib
import antispoof.evaluation.metric_table as metric_table
import antispoof.evaluation.metrics as metrics
import antispoof.reports.plots as plots
import antispoof.runs as runs
import antispoof.scoring.core as scoring
import antispoof.scoring.scorefile as scorefile
import antispoof.utils as utils
from antispoof.checkpoints.files import (
    config_sha256,
    load_model_or_exit,
    model_from_checkpoint,
    read_checkpoint,
    weights_sha256,
)
from antispoof.networks import FAKE_INDEX, LABEL_TO_INDEX, REAL_INDEX
from antispoof.scoring.setup import Scorer
from antispoof.training.config import RECIPES, TrainConfig, settings_text  # noqa: F401 (RECIPES: re-exported)
from antispoof.training.data import MAX_SUBSTITUTIONS, build_loaders, check_label_convention, load_split
from antispoof.training.state import (
    History,
    clear_run,
    clear_unfinished,
    recover,
    rng_state,
    save_epoch,
    set_rng_state,
    warn_changed_flags,
)

# ----------------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------------


def class_weights(fake_weight: float, real_weight: float) -> Tensor:
    """Cross-entropy class weights indexed by the model's class indices (never by literal position)."""
    w = torch.zeros(2)
    w[FAKE_INDEX], w[REAL_INDEX] = fake_weight, real_weight
    return w


# ----------------------------------------------------------------------------------------------------
# Distributed helpers (distributed.py holds the rest)
# ----------------------------------------------------------------------------------------------------


def mean_over_ranks(value: float) -> float:
    """The mean of `value` over the torchrun processes (the value itself in a plain run)."""
    if not torch_dist.is_initialized():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if torch_dist.get_backend() == "nccl" else None
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch_dist.all_reduce(t)
    return float(t.item()) / torch_dist.get_world_size()


# ----------------------------------------------------------------------------------------------------
# Optimisation
# ----------------------------------------------------------------------------------------------------


def lr_lambda(step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """LR multiplier after `step` optimizer steps: linear warm-up, then constant or cosine decay to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """scoring.amp_dtype, the one --amp rule (bf16 on CUDA by default, fp32 (None) on CPU); training refuses
    half precision off CUDA; "fp16" uses a GradScaler."""
    if amp in ("bf16", "fp16") and device.type != "cuda":
        raise SystemExit(f"error: --amp {amp} needs a CUDA device; on {device.type} use --amp fp32")
    return scoring.amp_dtype(amp, device)


# ----------------------------------------------------------------------------------------------------
# Train / validate
# ----------------------------------------------------------------------------------------------------


@dataclass
class Trainer:
    """What an epoch needs; built by `fit`. Under torchrun `model` is DDP-wrapped."""

    config: TrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler | None
    class_weight: Tensor | None  # on `device`, indexed by FAKE_INDEX / REAL_INDEX
    device: torch.device
    amp_dtype: torch.dtype | None
    run_dir: Path
    history: History
    wandb_run: object | None = None
    step: int = 0
    reported: set = field(default_factory=set)  # unreadable files already reported in this process

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def progress(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, unit="clip", desc=desc, dynamic_ncols=True,
                    disable=not distributed.is_main() or self.config.quiet)  # fmt: skip

    def report_skipped(self, skipped: list) -> None:
        """Warn once about each unreadable file and add it to RUN/skipped_files.tsv (path, reason)."""
        new = [(path, reason) for path, reason in skipped if path not in self.reported]
        if not new:
            return
        with open(self.run_dir / "skipped_files.tsv", "a", encoding="utf-8", errors="surrogateescape") as f:
            for path, reason in new:
                self.reported.add(path)
                f.write(f"{path}\t{reason}\n")
                tqdm.write(f"warning: skipped {path}: {reason}")

    def train_epoch(self, loader: DataLoader, epoch: int, n_clips: int) -> dict:
        """One pass over the training loader; returns {"train_loss", "clips_per_s", "train_time_s"}."""
        model, accum, world = self.model, self.config.grad_accum, distributed.world_size()
        model.train()
        n_batches = len(loader)
        total_loss, total_clips, group_loss = 0.0, 0, 0.0
        bar = self.progress(n_clips, f"epoch {epoch + 1}/{self.config.epochs} train")
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(loader):
            self.report_skipped(batch["skipped"])
            if batch["x"] is None:
                raise SystemExit(
                    f"error: {MAX_SUBSTITUTIONS} unreadable training files in a row; see skipped_files.tsv"
                )
            x = batch["x"].to(self.device, non_blocking=True)  # (B, NB_SAMP)
            y = batch["y"].to(self.device, non_blocking=True)  # (B,) class indices from LABEL_TO_INDEX
            group_start = (i // accum) * accum
            group_size = min(accum, n_batches - group_start)  # the last group of an epoch may be short
            step_now = i + 1 == group_start + group_size
            # Under DDP, gradients are averaged across processes only on the micro-batch that steps.
            no_sync = isinstance(model, nn.parallel.DistributedDataParallel) and not step_now
            with model.no_sync() if no_sync else contextlib.nullcontext():
                with self.autocast():
                    logits = model(x)  # (B, 2)
                loss = F.cross_entropy(logits.float(), y, weight=self.class_weight)
                scaled = loss / group_size
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            group_loss += loss.item() / group_size
            total_loss += loss.item() * len(y)
            total_clips += len(y)
            bar.update(len(y) * world)
            if step_now:
                self.optimizer_step()
                logged = mean_over_ranks(group_loss)
                group_loss = 0.0
                self.log_step(logged, epoch + (i + 1) / n_batches)
                bar.set_postfix(loss=f"{logged:.4f}", lr=f"{self.current_lr():.2e}")
        bar.close()
        elapsed = time.perf_counter() - start
        return {
            "train_loss": mean_over_ranks(total_loss / max(1, total_clips)),
            "clips_per_s": total_clips * world / elapsed,
            "train_time_s": elapsed,
        }

    def optimizer_step(self) -> None:
        if self.config.clip_grad > 0:
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def log_step(self, loss: float, epoch_float: float) -> None:
        if not distributed.is_main():
            return
        lr = self.current_lr()
        self.history.steps.append({"step": self.step, "epoch": round(epoch_float, 6), "loss": loss, "lr": lr})
        if self.wandb_run is not None:
            self.wandb_run.log({"train/loss": loss, "lr": lr, "epoch": epoch_float}, step=self.step)

    def validate(self, items: list[data.Item], epoch: int) -> dict | None:
        """Loss, AUC, EER and EER threshold over the validation split (rank 0; None on other ranks).

        The files go through scoring.score_items, the path evaluate_custom.py takes (same decoding, input
        policy and autocast rule), so RUN/validation/scores.csv (this epoch's) equals what evaluate_custom.py
        writes for the split with this epoch's weights (last.pt).
        """
        model = (
            self.model.module if isinstance(self.model, nn.parallel.DistributedDataParallel) else self.model
        )
        rows = scoring.score_items(
            model, items, batch_size=self.config.eval_batch_size or self.config.batch_size,
            workers=self.config.workers, device=self.device, amp=self.config.amp,
            progress=not self.config.quiet, desc=f"epoch {epoch + 1}/{self.config.epochs} validation",
        )  # fmt: skip
        if not distributed.is_main():
            return None
        self.report_skipped([(r["path"], r["status"]) for r in rows if r["status"] != "ok"])
        scorefile.write_scores(self.run_dir / "validation" / "scores.csv", rows)
        utils.write_json(self.run_dir / "validation" / "run.json", self.validation_record(model, epoch))
        weight = self.class_weight.cpu() if self.class_weight is not None else None
        return validation_metrics(rows, weight)

    def validation_record(self, model: nn.Module, epoch: int) -> dict:
        """validation/run.json: which weights scored validation/scores.csv. They are this epoch's: last.pt's
        after the epoch, best.pt's only if the epoch was the best; calibrate.py refuses to fit them for other
        weights, as for an evaluation run."""
        policy = scoring.policy_for(model)
        settings = {
            "epoch": epoch + 1,
            "policy": policy.describe(),
            "max_duration_s": None if policy.mode == "head" else policy.max_seconds,
            "score_kind": scoring.score_kind(model),
            "precision": scoring.precision(self.device, self.config.amp),
            "backend": "torch",
        }
        data = {"data": str(self.config.data), "layout": self.config.layout, "split": "validation"}
        checkpoint, info = str(self.run_dir / "last.pt"), {"arch": model.arch}
        record = runs.run_record(model, info, checkpoint=checkpoint, settings=settings, data=data)
        record["checkpoint_file_sha256"] = None  # the last.pt on disk is the previous epoch's until saved
        return record


def validation_metrics(rows: list[dict], weight: Tensor | None = None) -> dict:
    """Validation loss, AUC, EER and EER threshold from score_items rows of labelled files.

    The loss takes the file logits and the class indices of `LABEL_TO_INDEX`; AUC/EER take real as the
    positive class and the model's score (higher = more real) from the label strings, independently of the
    mapping that made the targets: a flipped mapping shows up as AUC < 0.5 instead of cancelling out.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    labels = [r["label"] for r in ok]
    if len(set(labels)) < 2:
        raise SystemExit(
            "error: the readable validation files are all of one class; AUC/EER need real and fake files "
            "(see skipped_files.tsv in the run folder)"
        )
    logits = torch.zeros(len(ok), 2)
    logits[:, FAKE_INDEX] = torch.tensor([r["logit_fake"] for r in ok])
    logits[:, REAL_INDEX] = torch.tensor([r["logit_real"] for r in ok])
    targets = torch.tensor([LABEL_TO_INDEX[label] for label in labels])
    m = metrics.compute_metrics(labels, [r["score"] for r in ok], n_bootstrap=0)
    # The calibration best.pt carries: score -> LLR fitted on these validation scores (calibration.py).
    real = np.array([r["score"] for r in ok if r["label"] == "real"])
    fake = np.array([r["score"] for r in ok if r["label"] == "fake"])
    scale, offset = calib.fit_affine(real, fake)
    return {
        "val_loss": float(F.cross_entropy(logits, targets, weight=weight)),
        "val_auc": m["auc"],
        "val_eer": m["eer"],
        "val_threshold": m["eer_threshold"],
        "val_min_dcf": m["min_dcf"],
        "val_cllr_raw": m["cllr"],
        "val_cllr_calibrated": metrics.compute_cllr(scale * real + offset, scale * fake + offset),
        "val_llr_scale": scale,
        "val_llr_offset": offset,
        "val_files": len(ok),
    }


# ----------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------


def load_initial_model(config: TrainConfig, source: str | Path) -> tuple[nn.Module, dict, dict]:
    """(model, info, training state): from --checkpoint for a new run (empty state), or from the run's own
    last.pt for --resume (its weights and its "training" state, read once). --model-config overrides apply,
    then --freeze-frontend / --gradient-checkpointing."""
    overrides = None
    if config.model_config:
        text = config.model_config
        overrides = json.loads(Path(text).read_text() if Path(text).is_file() else text)
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
    config, run_dir, (train_items, val_items, test_items) = open_run(config)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    distributed.init()
    device = distributed.device(config.device)
    run_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():  # the effective settings, recipe included (also in last.pt)
        utils.write_json(run_dir / "args.json", config.as_dict())
    utils.set_seed(config.seed)

    # A new run starts from --checkpoint; a resumed one from its own last.pt (weights and training state).
    model, info, state = load_initial_model(config, last_path if config.resume else config.checkpoint)
    history = History.from_dict(state.get("history"))
    history.subject = plots.subject({"checkpoint": config.checkpoint, "data": config.data})
    if distributed.is_main():
        if config.resume:
            warn_changed_flags(TrainConfig.from_saved(state.get("args", {})).as_dict(), config.as_dict())
            recover(run_dir, history)  # finish or undo what a kill interrupted
        else:
            clear_unfinished(run_dir)
    history.test = distributed.broadcast(history.test)
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

    train_set, sampler, train_loader = build_loaders(config, train_items)
    steps_per_epoch = math.ceil(len(train_loader) / config.grad_accum)
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
    if distributed.is_main():
        trainer.wandb_run = start_wandb(config, run_dir, state.get("wandb_id"), info)
        n_train = min(len(sampler), len(train_loader) * config.batch_size) * distributed.world_size()
        print(describe_run(config, info, (train_items, val_items, test_items), device, amp_dtype,
                           steps_per_epoch, n_train))  # fmt: skip
    best_eer = history.best["val_eer"] if history.best else math.inf

    first_epoch, started = int(state.get("epoch", 0)), time.monotonic()
    for epoch in range(first_epoch, config.epochs):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        n_train = min(len(sampler), len(train_loader) * config.batch_size) * distributed.world_size()
        train_stats = trainer.train_epoch(train_loader, epoch, n_train)
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
            calibration = validation_calibration(model, val, epoch + 1)
            training_state = {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None, "epoch": epoch + 1, "step": trainer.step,
                "rng": rng_state(), "args": config.as_dict(),
                "wandb_id": trainer.wandb_run.id if trainer.wandb_run is not None else None,
            }  # fmt: skip
            save_epoch(run_dir, model, calibration, training_state, history, improved)
            log_epoch(trainer.wandb_run, row, trainer.step)
            print(epoch_line(row, config.epochs, improved))
            done = epoch + 1 - first_epoch
            per_epoch = (time.monotonic() - started) / done
            n_test = len(test_items) if test_items else 0
            print(run_eta(per_epoch, config.epochs - epoch - 1, val_s * n_test / max(1, len(val_items))))
        distributed.barrier()

    if test_items is not None and history.test is None:
        history.test = score_test(config, best_path, history.best, test_items, run_dir, device)
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


def validation_calibration(model: nn.Module, val: dict, epoch: int) -> dict | None:
    """best.pt's calibration: the LLR map fitted on this epoch's validation scores (scored under the model's
    own input policy); None, with a note, when the fit is unusable (e.g. a still inverted model)."""
    fit = {"method": calib.METHOD, "p_spoof": calib.effective_p_spoof(), "data": "validation split",
           "epoch": epoch, "eer": val["val_eer"], "n_files": val["val_files"],
           "cllr_raw": val["val_cllr_raw"], "cllr_calibrated": val["val_cllr_calibrated"]}  # fmt: skip
    try:
        return calib.build(
            val["val_llr_scale"], val["val_llr_offset"], policy=scoring.policy_for(model).describe(),
            weights_sha256=weights_sha256(model), config_sha256=config_sha256(model),
            score_kind=scoring.score_kind(model), fit=fit,
        )  # fmt: skip
    except calib.CalibrationError as err:
        print(f"note: epoch {epoch} stores no calibration: {err}")
        return None


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
