"""One epoch of fine-tuning: the loss, the optimiser and its schedule, a training pass and a validation pass.

`Trainer` holds what an epoch needs (model, optimiser, scheduler, scaler, class weights, run folder, history);
loop.py builds it and runs the epochs. Validation scores its files through scoring.score_items, the path
evaluate_custom.py takes, and fits the calibration that best.pt carries on those scores.

Label convention (networks): index 1 = real (bona fide), index 0 = fake (spoof). Targets come from
`LABEL_TO_INDEX` only; AUC/EER read the label strings, so a flipped mapping shows up as AUC < 0.5.
"""

from __future__ import annotations

import contextlib
import math
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
import antispoof.evaluation.metrics as metrics
import antispoof.runs as runs
import antispoof.scoring.core as scoring
import antispoof.scoring.scorefile as scorefile
import antispoof.utils as utils
from antispoof.checkpoints.files import config_sha256, weights_sha256
from antispoof.networks import FAKE_INDEX, LABEL_TO_INDEX, REAL_INDEX
from antispoof.training.config import TrainConfig
from antispoof.training.data import MAX_SUBSTITUTIONS
from antispoof.training.state import History, rng_state

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

    def training_state(self, epoch: int) -> dict:
        """What last.pt keeps to continue exactly after `epoch` (0-based): optimiser, schedule, RNG."""
        return {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": epoch + 1, "step": self.step, "rng": rng_state(), "args": self.config.as_dict(),
            "wandb_id": self.wandb_run.id if self.wandb_run is not None else None,
        }  # fmt: skip

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
