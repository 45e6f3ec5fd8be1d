"""Checkpoint files: the registry and downloads, safe reading, format dispatch, this project's format, saving.

`load_model` reads a file safely, then hands its contents to the adapter of the format it holds: this
project's own (`save_checkpoint`) here, the published ones (reference SSL-AASIST, fairseq pretraining,
clovaai AASIST, transformers) in formats.py, with their key maps.

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
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

import formats
import utils
from formats import build_and_load, describe, short_list
from model import ARCHS, _canonical_arch, _make_config

# --------------------------------------------------------------------------------------------------
# Registry and downloads
# --------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent
REGISTRY_PATH = REPO / "pretrained" / "registry.json"
REGISTRY: dict[str, dict] = json.loads(REGISTRY_PATH.read_text())
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
    if entry.get("hf_repo"):
        return _from_hugging_face(name, entry, download)
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


def _from_hugging_face(name: str, entry: dict, download: bool) -> Path:
    """A Hugging Face-hosted registry file through huggingface_hub: kept in the user's HF cache (HF_HOME /
    HF_HUB_CACHE, shared with other tools), fetched from HF_ENDPOINT (a mirror) if set, resumed after an
    interruption. Env vars are read at each call, not when huggingface_hub was imported."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, filename = entry["hf_repo"], entry["hf_filename"]
    endpoint = os.environ.get("HF_ENDPOINT")
    where = f"{endpoint or 'https://huggingface.co'}/{repo} ({filename})"
    if download:
        print(f"Fetching {name} from {where} into the Hugging Face cache", file=sys.stderr)
    try:
        path = hf_hub_download(
            repo,
            filename,
            endpoint=endpoint,
            cache_dir=os.environ.get("HF_HUB_CACHE"),
            local_files_only=not download,
        )
    except LocalEntryNotFoundError:
        if download:
            raise RuntimeError(
                f"cannot reach {where} and {name} is not in the Hugging Face cache: check the network or set "
                f"HF_ENDPOINT to a mirror, or put the file at {pretrained_dir() / entry['filename']}"
            ) from None
        raise FileNotFoundError(
            f"{name} is not in the Hugging Face cache; download it with: python download.py {name}"
        ) from None
    except Exception as err:  # noqa: BLE001 - the hub raises many types (HTTP, repository, revision errors)
        raise RuntimeError(f"download of {name} from {where} failed: {type(err).__name__}: {err}") from err
    return Path(path)


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

_EXPECTED = f"expected one of: {formats.PUBLISHED}, or this project's checkpoint (format {PROJECT_FORMAT!r})"


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
                f"({short_list(refused)}), so it is not loaded. {_EXPECTED}"
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
        raise ValueError(f"{path} holds {describe(contents)}; {_EXPECTED}")
    return contents


def _check_arch(requested: str | None, found: str, source: str) -> None:
    if requested is not None and _canonical_arch(requested)[0] != found:
        raise ValueError(f"{source} holds a model of arch {found!r}, but arch={requested!r} was asked for")


def _load_project(state: dict, arch, overrides, source: str) -> nn.Module:
    found = state.get("arch")
    if found not in ARCHS:
        raise ValueError(f"{source}: project checkpoint names an unknown arch {found!r}")
    _check_arch(arch, found, source)
    cfg = _make_config(found, {**state["config"], **overrides})
    return build_and_load(found, cfg, state["model"], source)


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
            model = formats.load_transformers(spec, overrides, spec)
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
        model = formats.load_transformers(str(path), overrides, source)
        return _to_device(model, map_location), _info(model, "transformers", source)

    model, info = model_from_checkpoint(read_checkpoint(path, map_location), source, arch=arch, config=config)
    _license_notice(spec, model, info["format"])
    return _to_device(model, map_location), info


ANTIDEEPFAKE_LICENSE = (
    "AntiDeepfake weights (and models fine-tuned from them) are licensed CC BY-NC-SA 4.0 by NII Yamagishi "
    "Lab: non-commercial use only, share-alike, with attribution (github.com/nii-yamagishilab/AntiDeepfake)"
)
_notices_shown: set[str] = set()


def _license_notice(spec: str, model: nn.Module, fmt: str) -> None:
    """Print the license of non-commercial weights once per process: a registry entry marked non-commercial,
    or any trained AntiDeepfake model (not a new one around a pretraining front end)."""
    entry = REGISTRY.get(spec.lower(), {})
    if entry.get("non_commercial"):
        notice = f"{spec}: {entry['license']}"
    elif getattr(model, "arch", None) == "antideepfake" and fmt != "fairseq_pretrain":
        notice = ANTIDEEPFAKE_LICENSE
    else:
        return
    if notice not in _notices_shown:
        _notices_shown.add(notice)
        print(f"license: {notice}", file=sys.stderr)


def model_from_checkpoint(
    contents: Mapping, source: str, *, arch: str | None = None, config: Any = None
) -> tuple[nn.Module, dict]:
    """The model (train mode, CPU or where the tensors are) and info of contents `read_checkpoint` returned.

    `load_model` = resolve the name + read_checkpoint + this; training's --resume calls it directly on the
    last.pt it has read for its training state.
    """
    overrides = _config_overrides(config)
    if str(contents.get("format", "")).startswith("ssl-aasist-project/"):
        if contents["format"] != PROJECT_FORMAT:
            raise ValueError(
                f"{source} is a project checkpoint of format {contents['format']!r}; this code reads "
                f"{PROJECT_FORMAT!r}"
            )
        model = _load_project(contents, arch, overrides, source)
        return model, _info(model, "project", source, contents.get("calibration"))
    fmt = formats.detect(contents)
    if fmt is None:
        raise ValueError(f"{source} holds {describe(contents)}; {_EXPECTED}")
    if arch is not None and _canonical_arch(arch)[0] in fmt.starts:  # a front end for a new detector
        model = fmt.load(contents, overrides, source, arch=_canonical_arch(arch)[0])
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
