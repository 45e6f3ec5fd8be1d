"""What a fine-tuning run keeps on disk, written so that a kill at any instant leaves a consistent run folder.

    RUN/best.pt         the best epoch's weights, config and calibration (lean: the file to keep or share)
    RUN/last.pt         the latest epoch: the same + "training" (optimizer, scheduler, RNG, history, ...)
    RUN/history.json    per-step and per-epoch numbers (+ loss_curves.png), derived from last.pt's history
    RUN/test/           the test split scored once with best.pt

last.pt is the commit point. An epoch that improves on validation writes its weights to best.pt.staged first,
then last.pt (whose history names the best epoch and its weights_sha256), then renames best.pt.staged to
best.pt; history.json and the curves follow. `recover` (at --resume) finishes or undoes whatever a kill
interrupted: it removes temporary files, renames a staged best that last.pt names (or deletes one it does
not), checks that best.pt holds the weights last.pt names, and drops a test/ folder that history.json does
not record as finished for that best.pt. Every file is written through a temporary file and os.replace.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import antispoof.evaluation.metrics as metrics
import antispoof.reports.plots as plots
import antispoof.utils as utils
from antispoof.checkpoints.files import (
    atomic_torch_save,
    project_state,
    read_checkpoint,
    save_checkpoint,
    weights_sha256,
)

# Flags that may change between a run and its --resume without changing the result.
RESUME_FREE_FLAGS = {"resume", "epochs", "workers", "device", "wandb", "wandb_project", "quiet",
                     "eval_batch_size", "test_split", "out_dir", "data", "checkpoint",
                     "from_recipe", "overwrite"}  # fmt: skip


@dataclass
class History:
    """Per-step train loss and per-epoch metrics; saved as history.json and loss_curves.png."""

    steps: list = field(default_factory=list)  # {"step", "epoch", "loss", "lr"}
    epochs: list = field(
        default_factory=list
    )  # {"epoch", "train_loss", "val_loss", "val_auc", "val_eer", ...}
    best: dict | None = None  # {"epoch", "val_eer", "val_auc", "val_threshold", "weights_sha256"}
    test: dict | None = None
    subject: str = ""  # "la on for-norm": the model and data, for the figure's title (not in history.json)

    def as_dict(self) -> dict:
        return {
            "positive_class": metrics.POSITIVE_CLASS,
            "score_direction": metrics.SCORE_DIRECTION,
            "best": self.best,
            "epochs": self.epochs,
            "steps": self.steps,
            "test": self.test,
        }

    @classmethod
    def from_dict(cls, d: dict | None) -> History:
        d = d or {}
        return cls(d.get("steps", []), d.get("epochs", []), d.get("best"), d.get("test"))

    def save(self, run_dir: Path) -> None:
        utils.write_json(run_dir / "history.json", self.as_dict())
        plots.plot_loss_curves(self.steps, self.epochs, run_dir / "loss_curves.png", self.subject)


# ----------------------------------------------------------------------------------------------------
# RNG state
# ----------------------------------------------------------------------------------------------------


def rng_state() -> dict:
    """Every global RNG, in containers that torch.load(weights_only=True) reads."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------
# Writing an epoch, recovering after a kill
# ----------------------------------------------------------------------------------------------------


def save_epoch(
    run_dir: Path, model: nn.Module, calibration: dict, training: dict, history: History, improved: bool
) -> None:
    """Write the end of an epoch in commit order: staged best, last.pt (the commit), best.pt, history.

    `history.best` must already name this epoch when `improved`; its weights_sha256 is filled in here.
    """
    staged = run_dir / "best.pt.staged"
    if improved:
        history.best["weights_sha256"] = weights_sha256(model)
        history.test = None  # a resumed run with more epochs found a new best: its test split is scored again
        save_checkpoint(staged, model, calibration, format="pt")
    training = {**training, "history": history.as_dict()}
    atomic_torch_save({**project_state(model, calibration), "training": training}, run_dir / "last.pt")
    if improved:
        os.replace(staged, run_dir / "best.pt")
    history.save(run_dir)


def recover(run_dir: Path, history: History) -> None:
    """Make RUN agree with last.pt's `history` after a kill at any instant (see the module docstring).

    Stops with a message when best.pt is missing or holds other weights than last.pt names and nothing
    staged can repair it (a file replaced or deleted by hand). Sets `history.test` when history.json
    records a finished test scoring of the same best.pt.
    """
    _remove_temporary_files(run_dir)
    best, staged = run_dir / "best.pt", run_dir / "best.pt.staged"
    expected = history.best["weights_sha256"] if history.best else None
    if staged.exists():
        if expected is not None and _file_weights_sha256(staged) == expected:
            os.replace(staged, best)  # killed after last.pt recorded this best, before the rename
        else:
            staged.unlink()  # killed before last.pt recorded it: that epoch is trained again
    if expected is not None and (not best.exists() or _file_weights_sha256(best) != expected):
        raise SystemExit(
            f"error: {best} does not hold the weights of the best epoch that last.pt records (epoch "
            f"{history.best['epoch']}); it was replaced or deleted outside this run. Start a new run, or "
            "copy the right best.pt back"
        )
    saved = _read_history_json(run_dir)
    finished = (
        saved.get("test") and saved.get("best") == history.best and (run_dir / "test/metrics.json").exists()
    )
    if finished:
        history.test = saved["test"]
    else:
        shutil.rmtree(run_dir / "test", ignore_errors=True)  # scored by another best.pt, or interrupted
    history.save(run_dir)


def _file_weights_sha256(path: Path) -> str:
    return weights_sha256(read_checkpoint(path)["model"])


def _read_history_json(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):  # missing, or cut by hand: the test split is scored again
        return {}


def clear_run(run_dir: Path) -> None:
    """--overwrite: delete what an earlier run wrote in RUN (its checkpoints, settings, history, curves,
    validation/ and test/ scores); other files in the folder, and its wandb logs, are left alone."""
    for name in ("last.pt", "best.pt", "best.pt.staged", "args.json", "history.json", "loss_curves.png",
                 "skipped_files.tsv"):  # fmt: skip
        (run_dir / name).unlink(missing_ok=True)
    for folder in ("validation", "test"):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    _remove_temporary_files(run_dir)


def clear_unfinished(run_dir: Path) -> None:
    """A new run in a folder without last.pt: drop the temporary and staged files of a run killed before
    its first epoch was committed."""
    _remove_temporary_files(run_dir)
    (run_dir / "best.pt.staged").unlink(missing_ok=True)


def _remove_temporary_files(run_dir: Path) -> None:
    """The temporary files of interrupted atomic writes, in RUN and the folders the run writes:
    `.NAME.<pid>.tmp` (utils, checkpoints) and `.NAME.<pid>.tmp.png` (plots, which must end in .png)."""
    for folder in (run_dir, run_dir / "validation", run_dir / "test"):
        for tmp in [*folder.glob(".*.tmp"), *folder.glob(".*.tmp.png")]:
            tmp.unlink(missing_ok=True)


def warn_changed_flags(saved: dict, current: dict) -> None:
    changed = {
        k: (saved.get(k), v) for k, v in current.items() if k not in RESUME_FREE_FLAGS and saved.get(k) != v
    }
    if saved.get("epochs") != current["epochs"] and current["schedule"] == "cosine":
        changed["epochs (the cosine schedule spans all epochs)"] = (saved.get("epochs"), current["epochs"])
    if changed:
        details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
        print(f"warning: resuming with flags that differ from the stopped run ({details}); the result will "
              "not equal an uninterrupted run")  # fmt: skip
