"""onnxruntime on CPUs: ONNX export of a detector, its int8 variant, and a session that scores like the model.

    fast = scoring_model(model, "auto", torch.device("cpu"))  # onnxruntime for AASIST on a CPU, else model
    rows = scoring.score_items(fast, items, ...)

The graph: input `waveform`, float32 (batch, n_samples) at 16 kHz -> output `logits`, float32 (batch, 2),
index 1 = real (bona fide); the batch size is free, the length fixed (the graph pools a fixed number of
nodes). Its metadata records the architecture, input length, label convention, `weights_sha256` of the
weights and `config_sha256` of the config. The export for scoring is kept in pretrained/onnx/, named by both
fingerprints and served only when its metadata records them: made once per model.
`export.py model.onnx` writes one for deployment, checked against PyTorch.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from antispoof.audio.datasets import load_dataset
from antispoof.audio.decode import NB_SAMP, SAMPLE_RATE, load_audio, pad_or_crop
from antispoof.checkpoints.files import config_sha256, weights_sha256
from antispoof.checkpoints.registry import pretrained_dir
from antispoof.constants import BACKENDS
from antispoof.networks import REFERENCE_HEAD

OPSET = 17
# `--backend auto` runs these architectures in onnxruntime on a CPU because there it measured faster than
# PyTorch fp32 in the same benchmark_scoring.py run (README, Performance): AASIST and AASIST-L, exported in
# seconds. Full-size SSL-AASIST also measured faster in onnxruntime fp32 (1.45x PyTorch's batch-4 pipeline,
# 1.22x the naive loop, on a 2-core Xeon), but its one-off export takes ~30 s and 6.5 GB, more than a short
# run saves: opt-in (`--backend onnx`). Families not measured (AntiDeepfake, SLS, ...) stay on PyTorch.
# Add an architecture only with a measurement.
ONNX_FASTER_ON_CPU = ("aasist",)
LABELS = "index 1 = real (bona fide), index 0 = fake (spoof); score = logits[:, 1], higher = more real"


def export_onnx(model: nn.Module, out: str | os.PathLike | io.BytesIO, n_samples: int = NB_SAMP) -> None:
    """Write `model` (waveform (B, n_samples) -> logits (B, 2)) as an ONNX graph with a free batch size.

    Uses the TorchScript exporter (`dynamo=False`): seconds for AASIST here, where the torch.export-based one
    took 167 s on a loaded 2-core CPU and needs onnxscript besides; the golden parity tests check the result.
    """
    model = model.cpu().eval()
    example = torch.zeros(2, n_samples)
    with warnings.catch_warnings(), torch.no_grad():
        # Deprecation notice of the TorchScript exporter; tracer notes about the graph-pool sizes, which are
        # constants for a fixed input length (the reason the length is not a free axis).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            out,
            input_names=["waveform"],
            output_names=["logits"],
            dynamic_axes={"waveform": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def add_metadata(onnx_model, model: nn.Module, n_samples: int, **extra: str) -> None:
    """Record what the graph is in the ONNX file's metadata (`onnx.ModelProto.metadata_props`)."""
    props = {
        "arch": model.arch,
        "n_samples": str(n_samples),
        "sample_rate": "16000",
        "labels": LABELS,
        # What a caller feeds the graph (e.g. "head n=64600": the first 64,600 samples, tiled if shorter).
        "input_policy": getattr(model, "default_policy", REFERENCE_HEAD).describe(),
        "score_kind": getattr(model, "score_kind", "logit_real"),
        "weights_sha256": weights_sha256(model),
        "config_sha256": config_sha256(model),
        **extra,
    }
    for key, value in props.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """onnxruntime's dynamic quantisation: int8 MatMul weights, activations quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])


class OnnxDetector(nn.Module):
    """An onnxruntime CPU session with the detector's interface: forward((B, n_samples)) -> logits (B, 2).

    It carries the exported model's `arch`, `default_policy` and `score_kind`, and has no parameters, so
    `scoring.score_items` runs it like the PyTorch model (`.to`, `.eval`, inference mode and autocast are
    no-ops here).
    """

    def __init__(self, path: str | os.PathLike, like: nn.Module, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = str(path)
        self.arch = like.arch
        self.default_policy = getattr(like, "default_policy", REFERENCE_HEAD)
        self.score_kind = getattr(like, "score_kind", "logit_real")
        self.n_samples = self.session.get_inputs()[0].shape[1]
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)  # what `add_metadata` wrote

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_samples:
            raise ValueError(
                f"the ONNX graph takes (batch, {self.n_samples}) waveforms, got {tuple(x.shape)}"
            )
        waveform = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(["logits"], {"waveform": waveform})[0])


def cache_key(model: nn.Module, int8: bool = False, n_samples: int = NB_SAMP) -> dict[str, str]:
    """What an exported graph must record to be served for `model`: the weights, the effective config
    (the same weights with other pool_ratios are another detector), the input length and the variant."""
    return {
        "weights_sha256": weights_sha256(model),
        "config_sha256": config_sha256(model),
        "n_samples": str(n_samples),
        "variant": "int8" if int8 else "fp32",
    }


def onnx_session(model: nn.Module, int8: bool = False, n_samples: int = NB_SAMP) -> OnnxDetector:
    """An onnxruntime session of the model's cached ONNX graph, named by its weights and config; the graph is
    exported on first use. Sessions are kept per file, so scoring the same model again (the app) reuses one.

    A cached file is served only if onnxruntime opens it and its metadata records this model's `cache_key`:
    a graph copied over another's name, or an empty or cut file (a killed copy, a full disk), is exported
    again, with a note, and replaced atomically. The cache is pretrained/onnx/; where that cannot be
    written, a folder of this user's own (`user_cache_dir`), never a shared one where another user could
    plant a graph.
    """
    key = cache_key(model, int8, n_samples)
    fingerprint = hashlib.sha256(f"{key['weights_sha256']}|{key['config_sha256']}".encode()).hexdigest()
    name = f"{model.arch}-{fingerprint[:16]}-{n_samples}{'-int8' if int8 else ''}.onnx"
    folder = pretrained_dir() / "onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only install
        folder = user_cache_dir()
    path = folder / name
    kept = _SESSIONS.get(str(path))
    if kept is not None and _mismatch(kept.metadata, key) is None:
        return kept
    if path.exists():
        try:
            session = OnnxDetector(path, model)
            problem = _mismatch(session.metadata, key)
        except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            problem = f"cannot be read by onnxruntime ({type(err).__name__})"
        if problem is None:
            _SESSIONS[str(path)] = session
            return session
        print(f"warning: the cached graph {path} {problem}: exporting it again", file=sys.stderr, flush=True)
    print(f"exporting the model to {path} (once) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / "model.onnx"
        if int8:  # quantised from the float32 export, which is kept too
            quantize_int8(onnx_session(model, n_samples=n_samples).path, staged)
            _set_metadata(staged, {"variant": "int8"})
        else:
            write_onnx(model, staged, n_samples)
        os.replace(staged, path)
    _SESSIONS[str(path)] = OnnxDetector(path, model)
    return _SESSIONS[str(path)]


def cached_onnx(model: nn.Module, int8: bool = False, n_samples: int = NB_SAMP) -> Path:
    """The path of the model's checked ONNX graph in the cache (`onnx_session`)."""
    return Path(onnx_session(model, int8, n_samples).path)


def _mismatch(metadata: dict[str, str], key: dict[str, str]) -> str | None:
    """What a graph's metadata records differently from `key` (None if nothing): "records other ..."."""
    recorded = {k: metadata.get(k, "fp32" if k == "variant" else None) for k in key}
    wrong = [k for k in key if recorded[k] != key[k]]
    if not wrong:
        return None
    return "records other " + ", ".join(f"{k} ({(recorded[k] or 'none')[:16]})" for k in wrong)


def user_cache_dir() -> Path:
    """This user's ONNX cache when pretrained/ is read-only: $XDG_CACHE_HOME/antispoof/onnx (~/.cache), else
    a folder in the temporary directory named by the user id, made 0700 and refused if another user owns it
    or may write to it (a graph there is run as this user's model)."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "antispoof" / "onnx"
    try:
        home.mkdir(parents=True, exist_ok=True)
        return home
    except OSError:
        pass
    folder = Path(tempfile.gettempdir()) / f"antispoof-onnx-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise OSError(
            f"{folder} is not a private folder of this user (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):o}): remove it, or make pretrained/ writable"
        )
    return folder


def _set_metadata(path: Path, props: dict[str, str]) -> None:
    """Set `props` in the metadata of the ONNX file at `path` (kept entries of other keys)."""
    import onnx

    onnx_model = onnx.load(str(path))
    kept = [(p.key, p.value) for p in onnx_model.metadata_props if p.key not in props]
    del onnx_model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(onnx_model, str(path))


def write_onnx(model: nn.Module, path: str | os.PathLike, n_samples: int = NB_SAMP) -> None:
    """`export_onnx` + metadata, written to `path` (weights over 2 GB would need external data: none here)."""
    import onnx

    buf = io.BytesIO()
    export_onnx(model, buf, n_samples)
    onnx_model = onnx.load_from_string(buf.getvalue())
    add_metadata(onnx_model, model, n_samples)
    onnx.save(onnx_model, str(path))


def resolve_backend(model: nn.Module, backend: str, device: torch.device, amp: str = "auto") -> str:
    """What `backend` means for this model on `device`: "torch", "onnx" or "onnx-int8" (`scoring_model`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    policy = getattr(model, "default_policy", REFERENCE_HEAD)
    fp32 = amp in ("auto", "fp32")
    measured_faster = device.type == "cpu" and getattr(model, "arch", None) in ONNX_FASTER_ON_CPU and fp32
    return "onnx" if measured_faster and policy.mode != "whole" and _has_onnxruntime() else "torch"


def scoring_model(model: nn.Module, backend: str, device: torch.device, amp: str = "auto") -> nn.Module:
    """What scoring runs: the PyTorch model, or an onnxruntime session of it (`backend` onnx / onnx-int8).

    "auto" picks onnxruntime on a CPU for AASIST in fp32 (the same scores within 1e-5, about 4x PyTorch's
    batched pipeline on 2 cores) and PyTorch otherwise: full-size SSL-AASIST gains 1.45x in onnxruntime
    but its one-off export takes ~30 s and 6.5 GB, and int8 changes scores, so both are opt-in there
    (`--backend onnx`, `--backend onnx-int8`; README, Performance).
    """
    if isinstance(model, OnnxDetector):
        return model
    backend = resolve_backend(model, backend, device, amp)
    if backend == "torch":
        return model
    policy = getattr(model, "default_policy", REFERENCE_HEAD)
    if device.type != "cpu" or amp in ("bf16", "fp16"):
        raise ValueError(f"--backend {backend} runs in fp32 on the CPU: use --device cpu, or --backend torch")
    if policy.mode == "whole":
        raise ValueError(f"--backend {backend} needs fixed-length input; {model.arch} scores whole files")
    return onnx_session(model, int8=backend == "onnx-int8", n_samples=policy.n_samples)


_SESSIONS: dict[str, OnnxDetector] = {}


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def check_inputs(data: str | os.PathLike | None, n: int = 4) -> Tensor:
    """(n + 1, NB_SAMP) waveforms to compare backends on: the head of n clips spread over the dataset `data`
    (both classes, if it has them), plus noise."""
    clips = []
    if data is not None and Path(data).exists():
        items = load_dataset(str(data))
        for item in items[:: max(1, len(items) // n)][:n]:
            clips.append(pad_or_crop(load_audio(item.path, max_duration=NB_SAMP / SAMPLE_RATE)))
    rng = np.random.default_rng(0)
    clips.append(rng.normal(0, 0.1, NB_SAMP).astype(np.float32))
    return torch.from_numpy(np.stack(clips))


def max_logit_diff(model: nn.Module, path: str | os.PathLike, x: Tensor) -> float:
    """Largest |logit difference| between PyTorch (fp32) and onnxruntime on the waveforms `x`."""
    with torch.inference_mode():
        reference = model.cpu().eval()(x)
    onnx_logits = OnnxDetector(path, model)(x)
    return (onnx_logits - reference).abs().max().item()
