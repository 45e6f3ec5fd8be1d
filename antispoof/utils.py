"""Shared helpers: seeds, device, atomic writes, JSON, wandb. Detection metrics live in metrics.py."""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import sys
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions that need it: the JSON and file helpers serve torch-free callers
# (calibrate.py, analyse.py, the scripts' --help).


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: derive python/numpy seeds from the worker's torch seed."""
    import torch

    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def raw_names_on_stdio() -> None:
    """Let stdout/stderr print file names that are not valid UTF-8 as their original bytes (surrogateescape,
    what Python already does under the C locale) instead of raising UnicodeEncodeError mid-run."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


def pick_device(name: str = "auto") -> torch.device:
    """ "auto" = cuda if available, else mps, else cpu; otherwise the named device (checked to exist)."""
    import torch

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
    """Write `text` (UTF-8) to `path` through a temporary file in the same folder and `os.replace`.

    The file gets the mode the umask gives a new file (as `open` would; mkstemp's 0600 would hide results
    from the group). Text that holds file names which are not valid UTF-8 (Python's surrogateescape code
    points, as `os.fsdecode` returns them) is written with those names' original bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_ready(obj):
    """`obj` with every non-finite float (NaN, inf) replaced by None, numpy scalars and arrays as Python
    values, tuples as lists and paths as strings: what `json_text` writes."""
    if isinstance(obj, dict):
        return {str(k) if isinstance(k, PurePath) else k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        return json_ready(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def json_text(obj, indent: int | None = 2) -> str:
    """Standard JSON for every file this project writes: NaN and infinities become null (Python's json
    would write the non-standard tokens NaN / Infinity, which strict parsers reject); ends with a newline
    when indented."""
    text = json.dumps(json_ready(obj), indent=indent, allow_nan=False)
    return text + "\n" if indent is not None else text


def write_json(path: str | os.PathLike, obj) -> None:
    """`json_text(obj)` written atomically to `path`."""
    atomic_write_text(path, json_text(obj))


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
    # quiet: no run summary and history table printed after the result (25 lines at the end of a run)
    kwargs.setdefault("settings", wandb.Settings(quiet=True))
    return wandb.init(project=project, dir=str(run_dir), config=config, mode=mode, **kwargs)


__all__ = [
    "set_seed",
    "seed_worker",
    "raw_names_on_stdio",
    "pick_device",
    "atomic_write_text",
    "json_ready",
    "json_text",
    "write_json",
    "init_wandb",
]
