"""Reading checkpoint files without running code: torch files with `torch.load(weights_only=True)` (only
data-only globals allow-listed), .safetensors files; a tensor that claims more memory than its storage holds
(an expanded or overlapping view) is refused before anything uses it.

    contents = read_checkpoint("best.pt")        # a Mapping: a state dict, or a project checkpoint's parts
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from antispoof.networks import PUBLISHED
from antispoof.networks.common import describe, short_list

PROJECT_FORMAT = "ssl-aasist-project/1"
EXPECTED = f"expected one of: {PUBLISHED}, or this project's checkpoint (format {PROJECT_FORMAT!r})"


def _data_only_globals() -> dict[str, Any]:
    """Globals that only rebuild data (never run user code): the legacy fairseq argparse.Namespace, and
    numpy arrays, scalars and dtypes (fairseq meters, numpy RNG states). Keyed by the name stored in the
    pickle, under numpy 1 and numpy 2 module paths."""
    core = np._core if hasattr(np, "_core") else np.core
    allowed = {"argparse.Namespace": argparse.Namespace, "numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[f"{module}._reconstruct"] = core.multiarray._reconstruct
        allowed[f"{module}.scalar"] = core.multiarray.scalar
    for name in dir(np.dtypes):
        if name.endswith("DType"):
            allowed[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    return allowed


def _torch_load(path: Path, map_location) -> Any:
    """torch.load(weights_only=True), never weights_only=False: pickled code is never run. Data-only globals
    (argparse.Namespace of legacy fairseq checkpoints, numpy arrays/scalars) are allow-listed by name."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - not a zip checkpoint: reported below
            needed = None
        allowed = _data_only_globals()
        if needed and all(g in allowed for g in needed):
            # All of them: numpy dtype classes are built inside the pickle without a global of their own.
            try:
                with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]):
                    return torch.load(path, map_location=map_location, weights_only=True)
            except Exception as again:  # noqa: BLE001 - e.g. truncated after the header
                raise _unreadable(path, again) from again
        if needed:
            refused = [g for g in needed if g not in allowed]
            raise ValueError(
                f"{path} needs Python objects that could run code when unpickled "
                f"({short_list(refused)}), so it is not loaded. {EXPECTED}"
            ) from None
        raise _unreadable(path, err) from None
    except Exception as err:  # noqa: BLE001 - truncated or non-PyTorch files fail in many ways
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: BaseException) -> ValueError:
    first_line = str(err).splitlines()[0] if str(err) else ""
    return ValueError(
        f"{path} cannot be read as a PyTorch checkpoint ({type(err).__name__}: {first_line}); it is "
        f"truncated or not a PyTorch file. {EXPECTED}"
    )


def read_safetensors(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata) of a .safetensors file, e.g. a Hugging Face `model.safetensors`.

    The format holds no code and its reader checks that every tensor lies inside the file, so nothing is
    allocated beyond what the file holds; a damaged file ends in a ValueError that says so.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
        if header_len > path.stat().st_size - 8:
            raise ValueError(f"its header claims {header_len:,} bytes, more than the file holds")
        with safe_open(path, framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a Mapping
    except (SafetensorError, ValueError, OSError) as err:
        raise ValueError(
            f"{path} cannot be read as a safetensors file ({type(err).__name__}: {err}); it is truncated or "
            "not a safetensors file"
        ) from None
    return tensors, metadata


def _safetensors_description(path: Path, metadata: dict[str, str]) -> dict[str, Any] | None:
    """The project description of a .safetensors file: from its metadata, else from the JSON beside it
    (`<stem>.json`, or `config.json` in the same folder) when that JSON names the project format."""
    if "format" in metadata:
        try:
            return {
                k: json.loads(metadata[k])
                for k in ("format", "arch", "config", "calibration")
                if k in metadata
            }
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: its metadata is not valid JSON ({err})") from None
    for beside in (path.with_suffix(".json"), path.with_name("config.json")):
        if beside.is_file():
            try:
                description = json.loads(beside.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise ValueError(f"{beside} (the config of {path.name}) is not valid JSON ({err})") from None
            if isinstance(description, dict) and "format" in description:
                return description
    return None


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> Mapping:
    """The contents of a checkpoint file, read without running any code: torch files with
    `torch.load(weights_only=True)`, .safetensors files (a project export, or a bare state dict)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        tensors, metadata = read_safetensors(path)
        description = _safetensors_description(path, metadata)
        if description is None:
            return tensors
        return {**description, "model": tensors}
    contents = _torch_load(path, map_location)
    if not isinstance(contents, Mapping):
        raise ValueError(f"{path} holds {describe(contents)}; {EXPECTED}")
    for name, tensor in _tensors(contents):
        claimed = tensor.numel() * tensor.element_size()
        held = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
        if claimed > held:  # stride 0 (expanded) or overlapping strides: using it would allocate `claimed`
            raise ValueError(
                f"{path}: tensor {name!r} of shape {tuple(tensor.shape)} claims {claimed:,} bytes but its "
                f"storage holds {held:,} (an expanded or overlapping view); not loaded. A saved model's "
                "weights hold their own bytes: re-save them with tensor.contiguous()"
            )
    return contents


def _tensors(obj: Any, name: str = ""):
    """(dotted name, tensor) for every tensor inside nested dicts and lists."""
    if isinstance(obj, Tensor):
        yield name, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _tensors(value, f"{name}.{key}" if name else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{name}.{i}")
