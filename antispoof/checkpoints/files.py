"""Checkpoint files: safe reading, format dispatch, this project's format, saving (the registry of published
files and their downloads: registry.py).

`load_model` reads a file safely, then hands its contents to the adapter of the format it holds: this
project's own (`save_checkpoint`) here, the published ones in the file of the family that publishes them
(networks/<family>.py, listed by `antispoof.networks.FORMATS`), a transformers folder or Hub id here.

Every file is read with `torch.load(weights_only=True)`: no pickled code ever runs.

    model, info = load_model("la")               # registry name, or a path to any supported file
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import antispoof.utils as utils
from antispoof.checkpoints.reading import EXPECTED, PROJECT_FORMAT, read_checkpoint
from antispoof.checkpoints.registry import REGISTRY, resolve_checkpoint
from antispoof.networks import ARCHS, FAMILIES, NETWORKS, canonical_arch, config_for, detect
from antispoof.networks.common import build_and_load, describe, short_list
from antispoof.networks.keymaps import config_from_transformers, new_detector
from antispoof.networks.wav2vec import wav2vec2_config

# --------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def weights_sha256(model: nn.Module | Mapping[str, Tensor]) -> str:
    """A fingerprint of the weights themselves (a model, or its state dict): sha256 over every state-dict
    entry (name, dtype, shape, bytes) in key order. Unlike a file's sha256 it survives re-saving in another
    format (.pt, safetensors, a project checkpoint with new calibration), so run folders and calibrations
    record it to say which weights they belong to."""
    state = model if isinstance(model, Mapping) else _unwrap(model).state_dict()
    h = hashlib.sha256()
    for name, tensor in state.items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# Config fields that do not change what a model in eval mode computes: dropout is off there, and freezing the
# front end or checkpointing its gradients only changes training. They stay out of the config fingerprint, so
# a checkpoint fine-tuned with --freeze-frontend keeps its calibration when scored without it.
TRAINING_ONLY_CONFIG = frozenset({
    "hidden_dropout", "attention_dropout", "activation_dropout", "feat_proj_dropout", "layerdrop",
    "freeze_frontend", "gradient_checkpointing",
})  # fmt: skip


def effective_config(model: nn.Module) -> dict[str, Any]:
    """The config values that shape the model's scores: its arch and config, less TRAINING_ONLY_CONFIG."""
    model = _unwrap(model)
    config = asdict(model.config) if is_dataclass(getattr(model, "config", None)) else {}
    return {"arch": model.arch, **{k: v for k, v in config.items() if k not in TRAINING_ONLY_CONFIG}}


def config_sha256(model: nn.Module) -> str:
    """A fingerprint of `effective_config`. The same weights under another config are another detector
    (AASIST's pool_ratios or temperatures change every score), so what is keyed by the weights (the ONNX
    cache, a calibration, a run folder's --resume) is keyed by this too."""
    text = json.dumps(effective_config(model), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def project_state(model: nn.Module, calibration: dict | None = None) -> dict[str, Any]:
    """What a deployable project checkpoint holds: {"format", "arch", "config", "model", "calibration"}."""
    model = _unwrap(model)
    return {
        "format": PROJECT_FORMAT,
        "arch": model.arch,
        "config": asdict(model.config),
        "model": model.state_dict(),
        "calibration": calibration,
    }


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file beside `path`, then os.replace: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(
    path: str | Path, model: nn.Module, calibration: dict | None = None, *, format: str | None = None
) -> Path:
    """Write a lean, self-describing project checkpoint atomically: weights, config and calibration only.

    format "pt" (torch.save; the default unless `path` ends in .safetensors) or "safetensors": the weights in
    `path` (.safetensors, metadata {"format", "arch", "config", "calibration"} as JSON strings) plus the same
    description, readable, in `<path without suffix>.json`. Both load with `load_model`; safetensors is the
    one to share (no pickle at all). Returns the path written.
    """
    path = Path(path)
    fmt = format or ("safetensors" if path.suffix == ".safetensors" else "pt")
    state = project_state(model, calibration)
    if fmt == "pt":
        atomic_torch_save(state, path)
        return path
    if fmt != "safetensors":
        raise ValueError(f"save_checkpoint: format must be 'pt' or 'safetensors', got {format!r}")
    from safetensors.torch import save_file

    description = {k: state[k] for k in ("format", "arch", "config", "calibration")}
    metadata = {k: utils.json_text(v, indent=None) for k, v in description.items()}
    weights = {k: v.detach().cpu().contiguous() for k, v in state["model"].items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(weights, tmp, metadata=metadata)
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # safetensors writes 0600; results are shared as `open` would make them
        utils.write_json(path.with_suffix(".json"), description)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _check_arch(requested: str | None, found: str, source: str) -> None:
    if requested is not None and canonical_arch(requested)[0] != found:
        raise ValueError(f"{source} holds a model of arch {found!r}, but arch={requested!r} was asked for")


def _load_project(state: Mapping, arch, overrides, source: str) -> nn.Module:
    """A project checkpoint's model, after its arch, config, weights and calibration were checked."""
    missing = [key for key in ("arch", "config", "model") if key not in state]
    if missing:
        raise ValueError(f"{source}: the project checkpoint lacks {missing[0]!r}; {EXPECTED}")
    found = state["arch"]
    if not isinstance(found, str) or found not in ARCHS:
        raise ValueError(f"{source}: project checkpoint names an unknown arch {found!r} (known: {ARCHS})")
    _check_arch(arch, found, source)
    weights = state["model"]
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(
            f"{source}: the weights ('model') must be a dict of tensors, got {describe(weights)}"
        )
    bad = [f"{k!r} ({type(v).__name__})" for k, v in weights.items() if not isinstance(v, Tensor)]
    if bad or not all(isinstance(k, str) for k in weights):
        raise ValueError(f"{source}: the weights ('model') must be a dict of tensors; not tensors: {bad}")
    _validate_calibration(state.get("calibration"), source)
    if not isinstance(state["config"], Mapping):
        raise ValueError(f"{source}: the config must be a dict, got {describe(state['config'])}")
    config = {**state["config"], **overrides}
    _validate_config(found, config, source)
    _check_model_size(found, config, weights, source)
    return build_and_load(NETWORKS[found], config_for(found, config), weights, source)


def _check_model_size(arch: str, config: Mapping, weights: Mapping[str, Tensor], source: str) -> None:
    """Refuse a config that describes a larger model than the file's weights fill, before it is built: each
    value within its cap can still multiply into gigabytes (AASIST with wide graph layers: 1.75 G
    parameters). The model is built on the meta device (shapes only, no memory) and its state-dict entries
    counted; loading with strict=True needs exactly the file's count anyway. (Networks that build_and_load
    builds on the meta device allocate nothing before the comparison: no need.)"""
    if getattr(NETWORKS[arch], "build_on_meta", True):
        return
    with torch.device("meta"):
        model = NETWORKS[arch](config_for(arch, config))
    needed = sum(t.numel() for t in model.state_dict().values())
    held = sum(t.numel() for t in weights.values())
    if needed > held:
        raise ValueError(
            f"{source}: its config describes a model of {needed:,} values, but the file holds {held:,}: the "
            "config does not belong to these weights"
        )


def _validate_calibration(cal: Any, source: str) -> None:
    """None, or a dict whose threshold (if any) is a number. Its values (a NaN threshold or scale, a fit for
    other weights) are left to the scripts' rule, calibration.validate: score.py and the app refuse it,
    evaluation ignores it with a warning, since the weights themselves are fine."""
    if cal is None:
        return
    if not isinstance(cal, Mapping):
        raise ValueError(f"{source}: the calibration must be a dict, got {describe(cal)}")
    if "threshold" in cal:
        value = cal["threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: the calibration threshold must be a number, got {value!r}")


# The largest size of each kind that load_model builds. The released models use far less (AASIST's graph
# dims 24-64, XLS-R 2B's hidden size 1920); a file asking for more is damaged or hostile: gat_dims 30000
# would allocate gigabytes of graph layers before its weights could disagree.
_MAX_SIZE = {"gat_dims": 4096, "filts": 4096, "attention_channels": 4096, "fc1_hidden": 16384,
             "hidden_size": 8192, "intermediate_size": 32768, "num_hidden_layers": 128,
             "num_attention_heads": 128, "conv_dim": 8192, "conv_kernel": 1024, "conv_stride": 1024,
             "num_conv_pos_embeddings": 1024, "num_conv_pos_embedding_groups": 1024,
             "first_conv": 4096}  # fmt: skip
_MAX_OTHER = 10**7  # sample counts (600 s at 16 kHz), rates


def _validate_config(arch: str, config: Mapping, source: str) -> None:
    """Types, ranges and sizes of a stored config, checked against the defaults' types before anything is
    built (a string where a list belongs, a negative kernel, a NaN temperature, an absurd size)."""
    defaults = asdict(config_for(arch))
    for key, value in config.items():
        if key in defaults:  # unknown keys: config_for names them
            _check_value(key, value, defaults[key], source, key)


def _check_value(key: str, value: Any, default: Any, source: str, where: str) -> None:
    def refuse(what: str) -> None:
        raise ValueError(f"{source}: config {where} must be {what}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            refuse("true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            refuse("an int")
        if value < 1:
            refuse("a positive int")
        if value > _MAX_SIZE.get(key, _MAX_OTHER):
            refuse(f"at most {_MAX_SIZE.get(key, _MAX_OTHER):,} (larger than any released model)")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            refuse("a finite number")
        low_high = (0.0, 1.0) if key == "pool_ratios" or "dropout" in key or key == "layerdrop" else None
        if low_high and not low_high[0] <= value <= low_high[1]:
            refuse("between 0 and 1")
        if key in ("temperatures", "layer_norm_eps") and not value > 0:
            refuse("positive")
    elif isinstance(default, str):
        if not isinstance(value, str) or len(value) > 64:
            refuse("a short string")
    elif isinstance(default, list):
        fixed = key in ("filts", "gat_dims", "pool_ratios", "temperatures")
        if not isinstance(value, (list, tuple)) or not value or len(value) > 64:
            refuse("a list")
        if fixed and len(value) != len(default):
            refuse(f"a list of {len(default)}")
        for i, item in enumerate(value):
            template = default[min(i, len(default) - 1)] if default else item
            _check_value(key, item, template, source, f"{where}[{i}]")


def parse_model_config(text: str | None) -> dict[str, Any] | None:
    """The scripts' --model-config: inline JSON or a JSON file of config overrides, for sizes a file cannot
    tell (e.g. '{"num_attention_heads": 4}') or options ('{"freeze_frontend": true}'). None if not given."""
    if not text:
        return None
    try:
        value = json.loads(Path(text).read_text() if Path(text).is_file() else text)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
        raise ValueError(
            f"--model-config {text!r} is neither a JSON object nor a JSON file ({err})"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"--model-config must be a JSON object of config fields, got {value!r}")
    return value


def _config_overrides(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, (str, Path)):
        config = json.loads(Path(config).read_text())
        config = config.get("model_config", config)  # a clovaai .conf file
        config = {k: v for k, v in config.items() if k != "architecture"}
    return asdict(config) if is_dataclass(config) else dict(config)


def _is_hub_id(spec: str) -> bool:
    """'facebook/wav2vec2-xls-r-300m'-like: owner/name, no file suffix."""
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", spec)) and not re.search(
        r"\.(pt|pth|bin|ckpt|safetensors)$", spec
    )


def _to_device(model: nn.Module, map_location: Any) -> nn.Module:
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval()


def load_model(
    checkpoint: str | Path, *, map_location: Any = "cpu", arch: str | None = None, config: Any = None
) -> tuple[nn.Module, dict]:
    """Load any supported checkpoint (a path or a registry name such as 'la', 'df', 'aasist', 'aasist-l').

    Returns (model in eval mode, info) with info = {"arch", "format", "source", "calibration"}; format is
    "reference" | "fairseq_pretrain" | "transformers" | "clovaai" | "project" (a .pt or .safetensors file
    written by `save_checkpoint`, or a fine-tuning run's last.pt, whose training state is not read here).
    A transformers Hub id (e.g. 'facebook/wav2vec2-xls-r-300m', read from the Hub cache) or folder starts a
    new detector around a pretrained front end, as does a fairseq pretraining checkpoint (the back end is
    then random, with a warning).
    arch: optional check of the architecture found. config: overrides of config fields (a dict, dataclass or
    JSON path), e.g. {"freeze_frontend": True}, or sizes the file cannot tell (attention heads of an
    unknown wav2vec 2.0 size, an AASIST variant other than AASIST / AASIST-L).
    """
    overrides = _config_overrides(config)
    spec = str(checkpoint)
    path = Path(spec).expanduser()
    if not path.exists() and spec.lower() not in REGISTRY and _is_hub_id(spec):
        _check_arch(arch, "ssl_aasist", spec)
        try:
            model = load_transformers(spec, overrides, spec)
        except OSError as err:
            raise FileNotFoundError(
                f"{spec!r} is neither a file, a registry name ({', '.join(REGISTRY)}) nor a "
                f"transformers model in the Hugging Face cache or on the Hub ({err})"
            ) from err
        return _to_device(model, map_location), _info(model, "transformers", spec)
    if not path.exists():
        path = resolve_checkpoint(spec)
    source = str(path)

    if path.is_dir():
        if not (path / "config.json").exists():
            raise ValueError(f"{path} is a folder without config.json; {EXPECTED}")
        _check_arch(arch, "ssl_aasist", source)
        model = load_transformers(str(path), overrides, source)
        return _to_device(model, map_location), _info(model, "transformers", source)

    model, info = model_from_checkpoint(read_checkpoint(path, map_location), source, arch=arch, config=config)
    _license_notice(spec, model, info["format"])
    return _to_device(model, map_location), info


_notices_shown: set[str] = set()


def _license_notice(spec: str, model: nn.Module, fmt: str) -> None:
    """Print the license of non-commercial weights once per process: a registry entry marked non-commercial,
    or any trained model of a family that declares a license notice (not a new one around a pretraining front
    end)."""
    entry = REGISTRY.get(spec.lower(), {})
    family = FAMILIES.get(getattr(model, "arch", None))
    if entry.get("non_commercial"):
        notice = f"{spec}: {entry['license']}"
    elif family is not None and family.license_notice and fmt != "fairseq_pretrain":
        notice = family.license_notice
    else:
        return
    if notice not in _notices_shown:
        _notices_shown.add(notice)
        print(f"license: {notice}", file=sys.stderr)


def load_transformers(name_or_dir: str, overrides, source: str) -> nn.Module:
    """A transformers Wav2Vec2 checkpoint (local folder, or Hub id via its cache) -> a new SSL-AASIST around
    it (back end random, with a warning)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    sizes = config_from_transformers(Wav2Vec2Config.from_pretrained(name_or_dir))
    hf_model, info = Wav2Vec2Model.from_pretrained(
        name_or_dir, config=wav2vec2_config(config_for("ssl_aasist", sizes)), output_loading_info=True
    )
    if info["missing_keys"] or info.get("mismatched_keys"):
        raise ValueError(
            f"{source}: transformers checkpoint lacks front-end weights: "
            f"{short_list(info['missing_keys'] or info['mismatched_keys'])}"
        )
    return new_detector(hf_model.state_dict(), sizes, overrides, source)


def model_from_checkpoint(
    contents: Mapping, source: str, *, arch: str | None = None, config: Any = None
) -> tuple[nn.Module, dict]:
    """The model (train mode, CPU or where the tensors are) and info of contents `read_checkpoint` returned.

    `load_model` = resolve the name + read_checkpoint + this; training's --resume calls it directly on the
    last.pt it has read for its training state.
    """
    try:
        return _model_from_checkpoint(contents, source, arch, _config_overrides(config))
    except (TypeError, KeyError, AttributeError, IndexError) as err:  # a damaged file the checks above let by
        raise ValueError(f"{source} is malformed ({type(err).__name__}: {err}); {EXPECTED}") from err


def _model_from_checkpoint(contents: Mapping, source: str, arch: str | None, overrides: dict) -> tuple:
    if str(contents.get("format", "")).startswith("ssl-aasist-project/"):
        if contents["format"] != PROJECT_FORMAT:
            raise ValueError(
                f"{source} is a project checkpoint of format {contents['format']!r}; this code reads "
                f"{PROJECT_FORMAT!r}"
            )
        model = _load_project(contents, arch, overrides, source)
        return model, _info(model, "project", source, contents.get("calibration"))
    fmt = detect(contents)
    if fmt is None:
        raise ValueError(f"{source} holds {describe(contents)}; {EXPECTED}")
    if arch is not None and canonical_arch(arch)[0] in fmt.starts:  # a front end for a new detector
        model = fmt.load(contents, overrides, source, arch=canonical_arch(arch)[0])
    else:
        _check_arch(arch, fmt.arch, source)
        model = fmt.load(contents, overrides, source)
    return model, _info(model, fmt.name, source)


def load_model_or_exit(checkpoint: str | Path, **kwargs: Any) -> tuple[nn.Module, dict]:
    """`load_model` for scripts: a checkpoint that cannot be had or read ends the run with the loader's
    message (which says what to download, or what the file looks like), not a traceback."""
    try:
        return load_model(checkpoint, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:  # missing file, failed download, wrong contents
        raise SystemExit(f"error: cannot load checkpoint {checkpoint}: {err}") from err


def _info(model: nn.Module, fmt: str, source: str, calibration: dict | None = None) -> dict:
    return {"arch": model.arch, "format": fmt, "source": source, "calibration": calibration}
