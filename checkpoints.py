"""Checkpoint files: the registry and downloads, safe loading, format detection, key maps, saving.

One adapter per published format turns a file into a `model.py` network:

    reference         SSL_Anti-spoofing state dict (`ssl_model.model.*`, `LL.*`, ...), e.g. LA_model.pth
    fairseq_pretrain  a fairseq wav2vec 2.0 pretraining checkpoint (cfg or legacy args), e.g. xlsr2_300m.pt
    transformers      a transformers folder or Hub id of a wav2vec 2.0 model
    clovaai           clovaai AASIST / AASIST-L state dict
    project           a checkpoint written by `save_checkpoint` (this repo's fine-tuning)

Every file is read with `torch.load(weights_only=True)`: no pickled code ever runs.

Registry names (pretrained/registry.json: la, df, xlsr-300m, aasist, aasist-l) resolve to files in
pretrained/ (override with env SSL_AASIST_PRETRAINED_DIR). Plain-URL entries download themselves on first use
(resumable, size and sha256 checked); Google Drive ones must be fetched by hand, and asking for one that is
not there prints exactly what to download and where to put it. Env SSL_AASIST_MIRROR=<base URL> fetches every
registry file from <base URL>/<filename> instead (a lab mirror, or a local server in tests); checksums still
apply.

    model, info = load_model("la")               # registry name, or a path to any supported file
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import http.client
import json
import os
import pickle
import re
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from model import (
    AASIST,
    AASIST_PRESETS,
    ARCHS,
    SSLAASIST,
    SSLAASISTConfig,
    _canonical_arch,
    _make_config,
    wav2vec2_config,
)

# --------------------------------------------------------------------------------------------------
# Registry and downloads
# --------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent
REGISTRY_PATH = REPO / "pretrained" / "registry.json"
REGISTRY: dict[str, dict] = json.loads(REGISTRY_PATH.read_text())
PRETRAINED_DIR = Path(os.environ.get("SSL_AASIST_PRETRAINED_DIR", REPO / "pretrained"))
CHUNK = 1 << 20


def pretrained_dir() -> Path:
    """Where registry files live: env SSL_AASIST_PRETRAINED_DIR (read at each call) or repo/pretrained."""
    return Path(os.environ.get("SSL_AASIST_PRETRAINED_DIR", REPO / "pretrained")).expanduser()


def sha256sum(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def manual_instructions(name: str, dest: Path) -> str:
    entry = REGISTRY[name]
    steps = "\n".join(f"  {i}. {s.format(dest=dest)}" for i, s in enumerate(entry["instructions"], 1))
    return (
        f"Checkpoint {name!r} ({entry['filename']}) is not in {dest.parent}.\n"
        f"{entry['description']}.\n"
        "It is hosted on Google Drive, which does not allow scripted downloads, so fetch it by hand:\n"
        f"{steps}\n"
        f"Or pass the file's path directly, e.g. --checkpoint /path/to/{entry['filename']}."
    )


def resolve_checkpoint(spec: str, download: bool = True, mirror: str | None = None) -> Path:
    """A checkpoint path from a file/folder path or a registry name; downloads plain-URL entries when missing.

    mirror (or env SSL_AASIST_MIRROR): base URL that serves registry files by their file name.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    name = spec.lower()
    if name not in REGISTRY:
        raise FileNotFoundError(
            f"{spec!r} is neither an existing file nor a known checkpoint name. Known names: "
            f"{', '.join(REGISTRY)} (see pretrained/README.md)."
        )
    entry = REGISTRY[name]
    dest = pretrained_dir() / entry["filename"]
    if dest.exists():
        if entry.get("size") and dest.stat().st_size != entry["size"]:
            warnings.warn(
                f"{dest} has {dest.stat().st_size:,} bytes, but the published {entry['filename']} has "
                f"{entry['size']:,}: it may be truncated or a different release.",
                stacklevel=2,
            )
        return dest
    mirror = mirror or os.environ.get("SSL_AASIST_MIRROR")
    if entry.get("manual") and not mirror:
        raise FileNotFoundError(manual_instructions(name, dest))
    url = f"{mirror.rstrip('/')}/{entry['filename']}" if mirror else entry["url"]
    if not download:
        raise FileNotFoundError(
            f"{dest} is missing; download it with: python download.py {name}  (from {url})"
        )
    print(f"Downloading {name} ({entry['filename']}) from {url} to {dest}", file=sys.stderr)
    return _download(url, dest, sha256=entry.get("sha256"), size=entry.get("size"))


def _fetch(url: str, part: Path, size: int | None) -> None:
    """One attempt: append to `part` from where it stops (HTTP Range); raises on any network error."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"User-Agent": "ssl-aasist-download/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and (size is None or have == size):
            return  # the part file is already complete
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length else None  # what this response should bring the file to
        total = size if size is not None else expected
        with (
            open(part, "ab" if have else "wb") as f,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-5]
            ) as bar,
        ):
            while block := response.read(CHUNK):
                f.write(block)
                bar.update(len(block))
            got = f.tell()
        if expected is not None and got < expected:  # http.client returns b"" when the server hangs up early
            raise ConnectionError(f"connection closed after {got:,} of {expected:,} bytes")


def download(
    url: str, dest: str | Path, sha256: str | None = None, size: int | None = None, retries: int = 3
) -> Path:
    """Download `url` to `dest` with a progress bar; resume `dest.part` after an interruption (HTTP Range),
    check size and sha256, then move into place atomically (os.replace). Returns dest.

    A dropped connection is retried `retries` times, each attempt resuming; if all fail, the `.part` file is
    kept and the next call resumes it.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, size)
            break
        except urllib.error.HTTPError as err:
            raise RuntimeError(
                f"download of {url} failed: HTTP {err.code} {err.reason}. Check the URL (or "
                f"SSL_AASIST_MIRROR), or download the file by hand to {dest}."
            ) from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if attempt == retries:
                got = part.stat().st_size if part.exists() else 0
                raise RuntimeError(
                    f"download of {url} interrupted after {got:,} bytes ({err}); "
                    f"run the same command again to resume from {part}"
                ) from err
            print(
                f"download interrupted ({err}); resuming (attempt {attempt + 2} of {retries + 1})",
                file=sys.stderr,
            )
    got = part.stat().st_size
    if size is not None and got != size:
        raise RuntimeError(f"{url}: got {got:,} bytes, expected {size:,}; run again to resume or retry")
    if sha256 is not None:
        digest = sha256sum(part)
        if digest != sha256.lower():
            part.unlink()
            raise ValueError(
                f"{url}: sha256 {digest} does not match the expected {sha256}; the download was "
                "deleted. The file on the server differs from the registered one."
            )
    os.replace(part, dest)
    return dest


_download = download  # resolve_checkpoint's `download` argument shadows the function's name



# --------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------

PROJECT_FORMAT = "ssl-aasist-project/1"


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def weights_sha256(model: nn.Module) -> str:
    """A fingerprint of the weights themselves: sha256 over every state-dict entry (name, dtype, shape, bytes)
    in key order. Unlike a file's sha256 it survives re-saving in another format (.pt, safetensors, a project
    checkpoint with new calibration), so run folders and calibrations record it to say which weights they
    belong to."""
    h = hashlib.sha256()
    for name, tensor in _unwrap(model).state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> None:
    """Write a self-describing project checkpoint atomically (temporary file, then os.replace).

    Stores {"format", "arch", "config", "model": state_dict, **extra}. Everything in `extra` must load with
    torch.load(weights_only=True): tensors, numbers, strings and containers of them (an argparse.Namespace
    is stored as a dict).
    """
    model = _unwrap(model)
    extra = {k: vars(v) if isinstance(v, argparse.Namespace) else v for k, v in extra.items()}
    reserved = {"format", "arch", "config", "model"} & set(extra)
    if reserved:
        raise ValueError(f"save_checkpoint: {sorted(reserved)} are reserved names")
    state = {
        "format": PROJECT_FORMAT,
        "arch": model.arch,
        "config": asdict(model.config),
        "model": model.state_dict(),
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# fairseq wav2vec 2.0 -> transformers key names
# --------------------------------------------------------------------------------------------------

# Pretraining-only parts of a fairseq wav2vec 2.0 model, dropped on purpose: the contrastive-task heads and
# mask_emb, the SpecAugment mask vector (unused with mask=False). Every other key must map.
FAIRSEQ_PRETRAINING_ONLY = re.compile(r"(quantizer|project_q|final_proj)\..*|mask_emb")

_FAIRSEQ_TO_HF = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.layer_norm.\2",
    ),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    # weight norm: weight = g * v / ||v||; torch's parametrization API names g original0 and v original1
    (r"encoder\.pos_conv\.0\.weight_g", r"encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.weight_v", r"encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)",
        r"encoder.layers.\1.attention.\2_proj.\3",
    ),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
]


def fairseq_to_transformers(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a fairseq wav2vec 2.0 state dict (no prefix) to transformers `Wav2Vec2Model` names.

    Pretraining-only keys are dropped; any other key that no rule maps is an error listing them.
    """
    out, unmapped = {}, []
    for key, value in state.items():
        if FAIRSEQ_PRETRAINING_ONLY.fullmatch(key):
            continue
        for pattern, target in _FAIRSEQ_TO_HF:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, target, key)] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(
            f"{len(unmapped)} fairseq wav2vec 2.0 key(s) have no transformers counterpart: "
            f"{_short_list(unmapped)}"
        )
    return out


# --------------------------------------------------------------------------------------------------
# Inferring configurations from tensors
# --------------------------------------------------------------------------------------------------

# Attention heads cannot be read from tensor shapes; the known wav2vec 2.0 sizes (hidden size -> heads):
# base 768 -> 12, large / XLS-R 300M 1024 -> 16, XLS-R 1B 1280 -> 16, XLS-R 2B 1920 -> 16.
_KNOWN_HEADS = {768: 12, 1024: 16, 1280: 16, 1920: 16}


def _frontend_sizes_from_fairseq(sd: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """Front-end sizes from fairseq-named wav2vec 2.0 tensors (no prefix); heads and strides do not show."""
    convs = sorted(
        int(m.group(1))
        for k in sd
        if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", k))
    )
    if not convs or "post_extract_proj.weight" not in sd or "encoder.pos_conv.0.weight_v" not in sd:
        raise ValueError(
            f"{source}: the wav2vec 2.0 tensors are not in the XLS-R layout (conv feature layers, "
            f"post_extract_proj and a positional conv are needed); found {_describe(sd)}"
        )
    hidden = sd["post_extract_proj.weight"].shape[0]
    layers = sorted(
        {int(m.group(1)) for k in sd if (m := re.fullmatch(r"encoder\.layers\.(\d+)\.fc1\.weight", k))}
    )
    pos_v = sd["encoder.pos_conv.0.weight_v"]  # (D, D / groups, K)
    return {
        "conv_dim": [sd[f"feature_extractor.conv_layers.{i}.0.weight"].shape[0] for i in convs],
        "conv_kernel": [sd[f"feature_extractor.conv_layers.{i}.0.weight"].shape[2] for i in convs],
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "intermediate_size": sd["encoder.layers.0.fc1.weight"].shape[0],
        "num_conv_pos_embeddings": pos_v.shape[2],
        "num_conv_pos_embedding_groups": hidden // pos_v.shape[1],
    }


def _fill_unreadable_sizes(
    sizes: dict[str, Any], overrides: Mapping[str, Any], source: str
) -> dict[str, Any]:
    """Add the attention heads and conv strides, which tensors do not show, from overrides or known models."""
    sizes = dict(sizes)
    default = SSLAASISTConfig()
    if "num_attention_heads" not in sizes:
        heads = overrides.get("num_attention_heads", _KNOWN_HEADS.get(sizes["hidden_size"]))
        if heads is None:
            raise ValueError(
                f"{source}: the number of attention heads cannot be read from the tensors of a wav2vec 2.0 "
                f"with hidden size {sizes['hidden_size']}; pass config={{'num_attention_heads': N}} "
                "(or a JSON config)"
            )
        sizes["num_attention_heads"] = heads
    if "conv_stride" not in sizes:
        if "conv_stride" in overrides:
            sizes["conv_stride"] = overrides["conv_stride"]
        elif list(sizes["conv_kernel"]) == default.conv_kernel:
            sizes["conv_stride"] = default.conv_stride  # the wav2vec 2.0 / XLS-R layout
        else:
            raise ValueError(
                f"{source}: conv kernels {sizes['conv_kernel']} differ from wav2vec 2.0's; pass "
                f"config={{'conv_stride': [...]}}"
            )
    return sizes


def _backend_sizes(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """filts and gat_dims of an AASIST back end from its tensors (reference naming, no prefix)."""
    blocks = [sd[f"encoder.{i}.0.conv1.weight"].shape for i in range(4)]  # (out, in, 2, 3)
    return {
        "filts": [[int(s[1]), int(s[0])] for s in blocks],
        "gat_dims": [
            sd["GAT_layer_S.att_proj.weight"].shape[0],
            sd["HtrgGAT_layer_ST11.att_proj.weight"].shape[0],
        ],
    }


def _parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq conv_feature_layers, e.g. "[(512,10,5)] + [(512,3,2)] * 4", evaluated without eval()."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported conv_feature_layers expression: {spec!r}")

    return [tuple(layer) for layer in ev(ast.parse(spec, mode="eval"))]


def _config_from_fairseq_cfg(model_cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    """SSLAASISTConfig front-end fields from a fairseq wav2vec2 model cfg (dict, or vars() of its args)."""
    if model_cfg.get("_name", model_cfg.get("arch", "wav2vec2")) not in ("wav2vec2", "wav2vec2_large"):
        raise ValueError(
            f"{source}: fairseq model {model_cfg.get('_name') or model_cfg.get('arch')!r} is not a "
            "wav2vec 2.0 pretraining model"
        )
    if model_cfg.get("extractor_mode") != "layer_norm" or not model_cfg.get("layer_norm_first"):
        raise ValueError(
            f"{source}: this wav2vec 2.0 uses extractor_mode={model_cfg.get('extractor_mode')!r}, "
            f"layer_norm_first={model_cfg.get('layer_norm_first')!r}; SSL-AASIST needs the XLS-R layout "
            "(layer_norm, layer_norm_first=True), e.g. xlsr2_300m.pt"
        )
    layers = _parse_conv_layers(model_cfg["conv_feature_layers"])
    cfg = {
        "conv_dim": [c for c, _, _ in layers],
        "conv_kernel": [k for _, k, _ in layers],
        "conv_stride": [s for _, _, s in layers],
        "num_attention_heads": model_cfg["encoder_attention_heads"],
        "hidden_act": model_cfg.get("activation_fn", "gelu"),
    }
    for ours, theirs in [
        ("hidden_dropout", "dropout"),
        ("attention_dropout", "attention_dropout"),
        ("activation_dropout", "activation_dropout"),
        ("feat_proj_dropout", "dropout_input"),
        ("layerdrop", "encoder_layerdrop"),
    ]:
        if theirs in model_cfg:
            cfg[ours] = float(model_cfg[theirs])
    return cfg


def _config_from_transformers(hf) -> dict[str, Any]:
    """SSLAASISTConfig front-end fields from a transformers Wav2Vec2Config (XLS-R layout required)."""
    if hf.feat_extract_norm != "layer" or not hf.do_stable_layer_norm or not hf.conv_bias:
        raise ValueError(
            f"transformers model has feat_extract_norm={hf.feat_extract_norm!r}, do_stable_layer_norm="
            f"{hf.do_stable_layer_norm}, conv_bias={hf.conv_bias}; SSL-AASIST needs the XLS-R layout "
            "('layer', True, True), e.g. facebook/wav2vec2-xls-r-300m"
        )
    names = [
        "conv_dim",
        "conv_kernel",
        "conv_stride",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "num_conv_pos_embeddings",
        "num_conv_pos_embedding_groups",
        "hidden_act",
        "layer_norm_eps",
    ]
    return {n: list(getattr(hf, n)) if n.startswith("conv_") else getattr(hf, n) for n in names}


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _short_list(keys, n: int = 12) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _describe(obj: Any) -> str:
    """What a loaded object looks like, for error messages."""
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        n_tensors = sum(isinstance(v, Tensor) for v in obj.values())
        return f"a dict with {len(keys)} keys ({n_tensors} tensors): {_short_list(keys, 8)}"
    return f"a {type(obj).__name__}"


_EXPECTED = (
    "expected one of: an SSL-AASIST state dict in the reference naming (keys 'ssl_model.model.*', 'LL.*', "
    "'GAT_layer_S.*', ..., e.g. LA_model.pth), a fairseq wav2vec 2.0 pretraining checkpoint (keys "
    "'cfg'/'args' and 'model', e.g. xlsr2_300m.pt), a clovaai AASIST state dict (AASIST.pth / AASIST-L.pth), "
    "this project's "
    f"checkpoint (format {PROJECT_FORMAT!r}), or a transformers wav2vec 2.0 folder (config.json + weights)"
)


def _strict_load(model: nn.Module, state: Mapping[str, Tensor], source: str, assign: bool = False) -> None:
    """load_state_dict(strict=True), with an error that lists the missing and unexpected keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = [f"{source} does not match the {model.arch} model built for it:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {_short_list(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {_short_list(unexpected)}")
        if wrong_shape:
            parts.append(
                f"  shape mismatches (file vs model) ({len(wrong_shape)}): {_short_list(wrong_shape, 6)}"
            )
        raise ValueError("\n".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)


def _build_and_load(arch: str, cfg, state: Mapping[str, Tensor], source: str) -> nn.Module:
    """The model of `arch` holding exactly `state`. SSL-AASIST is built on the meta device (no memory, no
    random initialisation: ~10 s saved for the full model) and takes the loaded tensors as its own."""
    if arch == "aasist":  # small, and its sinc filter buffer is computed, not loaded
        model = AASIST(cfg)
        _strict_load(model, state, source)
        return model
    with torch.device("meta"):
        model = SSLAASIST(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    _strict_load(model, state, source, assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()]), "tensor left on meta"
    return model


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
            with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()]):
                return torch.load(path, map_location=map_location, weights_only=True)
        if needed:
            refused = [g for g in needed if g not in allowed]
            raise ValueError(
                f"{path} needs Python objects that could run code when unpickled "
                f"({_short_list(refused)}), so it is not loaded. {_EXPECTED}"
            ) from None
        raise _unreadable(path, err) from None
    except Exception as err:  # noqa: BLE001 - truncated or non-PyTorch files fail in many ways
        raise _unreadable(path, err) from err


def _unreadable(path: Path, err: BaseException) -> ValueError:
    first_line = str(err).splitlines()[0] if str(err) else ""
    return ValueError(
        f"{path} cannot be read as a PyTorch checkpoint ({type(err).__name__}: {first_line}); it is "
        f"truncated or not a PyTorch file. {_EXPECTED}"
    )


def _strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _check_arch(requested: str | None, found: str, source: str) -> None:
    if requested is not None and _canonical_arch(requested)[0] != found:
        raise ValueError(f"{source} holds a model of arch {found!r}, but arch={requested!r} was asked for")


def _load_reference_ssl(sd: dict[str, Tensor], overrides: Mapping[str, Any], source: str) -> SSLAASIST:
    """SSL_Anti-spoofing state dict (fairseq names under ssl_model.model.) -> SSLAASIST."""
    prefix = "ssl_model.model."
    front = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    back = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    try:
        sizes = _fill_unreadable_sizes(_frontend_sizes_from_fairseq(front, source), overrides, source)
        b = _backend_sizes(back)
        sizes["filts"] = [back["LL.weight"].shape[0], *b["filts"]]
        sizes["gat_dims"] = b["gat_dims"]
        sizes["attention_channels"] = back["attention.0.weight"].shape[0]
    except KeyError as err:
        raise ValueError(
            f"{source} looks like an SSL-AASIST state dict but lacks {err}: {_describe(sd)}"
        ) from None
    cfg = _make_config("ssl_aasist", {**sizes, **overrides})
    state = {**{f"ssl_model.{k}": v for k, v in fairseq_to_transformers(front).items()}, **back}
    return _build_and_load("ssl_aasist", cfg, state, source)


def _new_detector(
    frontend_state: dict[str, Tensor], sizes: dict[str, Any], overrides, source: str
) -> SSLAASIST:
    """A new SSL-AASIST around pretrained front-end weights (transformers names); the back end is random."""
    model = SSLAASIST(_make_config("ssl_aasist", {**sizes, **overrides}))
    state = {
        **{k: v for k, v in model.state_dict().items() if not k.startswith("ssl_model.")},
        **{f"ssl_model.{k}": v for k, v in frontend_state.items()},
    }
    _strict_load(model, state, source)
    warnings.warn(
        f"{source} holds a pretrained wav2vec 2.0 front end only: the AASIST back end is randomly "
        "initialised. Fine-tune the model before using its scores.",
        stacklevel=3,
    )
    return model


def _load_fairseq_pretraining(state: dict, overrides, source: str) -> SSLAASIST:
    if state.get("cfg") is not None:
        model_cfg = state["cfg"]["model"]
        model_cfg = vars(model_cfg) if isinstance(model_cfg, argparse.Namespace) else dict(model_cfg)
    else:
        model_cfg = (
            vars(state["args"]) if isinstance(state["args"], argparse.Namespace) else dict(state["args"])
        )
    front = state["model"]
    if any(k.startswith("w2v_encoder.") for k in front):
        raise ValueError(
            f"{source} is a fine-tuned (CTC) fairseq model; expected a wav2vec 2.0 pretraining "
            "checkpoint such as xlsr2_300m.pt"
        )
    sizes = {**_frontend_sizes_from_fairseq(front, source), **_config_from_fairseq_cfg(model_cfg, source)}
    return _new_detector(fairseq_to_transformers(front), sizes, overrides, source)


def _load_transformers(name_or_dir: str, overrides, source: str) -> SSLAASIST:
    """A transformers Wav2Vec2 checkpoint (local folder, or Hub id via its cache) -> new detector."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    sizes = _config_from_transformers(Wav2Vec2Config.from_pretrained(name_or_dir))
    hf_model, info = Wav2Vec2Model.from_pretrained(
        name_or_dir, config=wav2vec2_config(_make_config("ssl_aasist", sizes)), output_loading_info=True
    )
    if info["missing_keys"] or info.get("mismatched_keys"):
        raise ValueError(
            f"{source}: transformers checkpoint lacks front-end weights: "
            f"{_short_list(info['missing_keys'] or info['mismatched_keys'])}"
        )
    return _new_detector(hf_model.state_dict(), sizes, overrides, source)


def _load_clovaai(sd: dict[str, Tensor], overrides, source: str) -> AASIST:
    try:
        b = _backend_sizes(sd)
    except KeyError as err:
        raise ValueError(
            f"{source} looks like an AASIST state dict but lacks {err}: {_describe(sd)}"
        ) from None
    preset = next(
        (
            name
            for name, p in AASIST_PRESETS.items()
            if p.filts[1:] == b["filts"] and p.gat_dims == b["gat_dims"]
        ),
        None,
    )
    if preset is None and not overrides:
        raise ValueError(
            f"{source} is an AASIST state dict of an unknown size (filts {b['filts']}, "
            f"gat_dims {b['gat_dims']}); "
            "pass its model_config as config= (a dict or the clovaai .conf's model_config as JSON)"
        )
    base = replace(AASIST_PRESETS[preset]) if preset else None
    model = AASIST(_make_config("aasist", overrides, base=base))
    _strict_load(model, sd, source)
    return model


def _load_project(state: dict, arch, overrides, source: str) -> nn.Module:
    found = state.get("arch")
    if found not in ARCHS:
        raise ValueError(f"{source}: project checkpoint names an unknown arch {found!r}")
    _check_arch(arch, found, source)
    cfg = _make_config(found, {**state["config"], **overrides})
    return _build_and_load(found, cfg, state["model"], source)


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

    Returns (model in eval mode, info) with info = {"arch", "format", "source", "calibration", "extra"};
    format is "reference" | "fairseq_pretrain" | "transformers" | "clovaai" | "project".
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
            model = _load_transformers(spec, overrides, spec)
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
            raise ValueError(f"{path} is a folder without config.json; {_EXPECTED}")
        _check_arch(arch, "ssl_aasist", source)
        model = _load_transformers(str(path), overrides, source)
        return _to_device(model, map_location), _info(model, "transformers", source)

    state = _torch_load(path, map_location)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds {_describe(state)}; {_EXPECTED}")

    if str(state.get("format", "")).startswith("ssl-aasist-project/"):
        if state["format"] != PROJECT_FORMAT:
            raise ValueError(
                f"{path} is a project checkpoint of format {state['format']!r}; this code reads "
                f"{PROJECT_FORMAT!r}"
            )
        model = _load_project(state, arch, overrides, source)
        reserved = {"format", "arch", "config", "model", "calibration"}
        extra = {k: v for k, v in state.items() if k not in reserved}
        info = _info(model, "project", source, state.get("calibration"), extra)
    elif isinstance(state.get("model"), Mapping) and ("cfg" in state or "args" in state):
        _check_arch(arch, "ssl_aasist", source)
        model = _load_fairseq_pretraining(dict(state), overrides, source)
        info = _info(model, "fairseq_pretrain", source)
    elif state and all(isinstance(v, Tensor) for v in state.values()):
        sd = _strip_prefix(state, "module.")  # saved from DataParallel
        if any(k.startswith("ssl_model.model.") for k in sd):
            _check_arch(arch, "ssl_aasist", source)
            model = _load_reference_ssl(sd, overrides, source)
            info = _info(model, "reference", source)
        elif "pos_S" in sd and "out_layer.weight" in sd and "GAT_layer_S.att_weight" in sd:
            _check_arch(arch, "aasist", source)
            model = _load_clovaai(sd, overrides, source)
            info = _info(model, "clovaai", source)
        else:
            raise ValueError(f"{path} holds {_describe(sd)}; {_EXPECTED}")
    else:
        raise ValueError(f"{path} holds {_describe(state)}; {_EXPECTED}")
    return _to_device(model, map_location), info


def load_model_or_exit(checkpoint: str | Path, **kwargs: Any) -> tuple[nn.Module, dict]:
    """`load_model` for scripts: a checkpoint that cannot be had or read ends the run with the loader's
    message (which says what to download, or what the file looks like), not a traceback."""
    try:
        return load_model(checkpoint, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:  # missing file, failed download, wrong contents
        raise SystemExit(f"error: cannot load checkpoint {checkpoint}: {err}") from err


def _info(
    model: nn.Module, fmt: str, source: str, calibration: dict | None = None, extra: dict | None = None
):
    return {
        "arch": model.arch,
        "format": fmt,
        "source": source,
        "calibration": calibration,
        "extra": extra or {},
    }
