"""Shared helpers: seeds, device, atomic writes, wandb. Detection metrics live in metrics.py."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: derive python/numpy seeds from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    """ "auto" = cuda if available, else mps, else cpu; otherwise the named device (checked to exist)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} was asked for but CUDA is not available; use --device cpu")
    return device


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def init_wandb(project: str, run_dir: str | os.PathLike, config: dict, mode: str = "auto", **kwargs):
    """Start a wandb run logging into `run_dir`, or return None when `mode` is "disabled".

    mode "auto": the WANDB_MODE environment variable if set, else "online" when WANDB_API_KEY is set, else
    "offline" (the run is kept under RUN_DIR/wandb; upload it later with `wandb sync`). "online" and
    "offline" are passed to wandb as they are.
    """
    if mode in ("disabled", "off", "none"):
        return None
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        if mode == "disabled":
            return None
    import wandb

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=project, dir=str(run_dir), config=config, mode=mode, **kwargs)
