"""Scoring speed of the pipeline vs the original one-file loop, and what each faster mode costs in accuracy.

    python benchmark_scoring.py --checkpoint aasist --data data/sample --files 40 --profile
    python benchmark_scoring.py --random ssl_aasist --files 8 --variants torch,torch-bf16,onnx-int8 --profile
    python benchmark_scoring.py --checkpoint la --files 512 --batch-size 64 --workers 8 --device cuda

Every method scores the same files in the same run, each in a fresh child process (so one's memory does not
count against another), after one warm-up batch:
- naive: the original scripts' loop: `librosa.load` of one file, the reference's pad/crop, batch 1, fp32
  PyTorch, one file after the other;
- pipeline: `scoring.score_items` as evaluate_custom.py runs it with these flags (DataLoader decoding workers,
  batches of --batch-size, --backend: onnxruntime for AASIST on a CPU by default, --amp, --compile);
- each of --variants: the pipeline with another backend or precision: `torch` (PyTorch fp32), `torch-bf16`
  (bf16 autocast), `onnx` (onnxruntime fp32), `onnx-int8` (onnxruntime, int8 MatMul weights).
Each row gives files/s, the speed-up over naive, peak resident memory and the accuracy cost against the
naive fp32 scores: max |score difference| and, for labelled files, the change in EER (points) and AUC. A
mode whose EER moves by more than 0.5 points is marked: it is not fit to be a default.

--profile adds where the time goes (one batch of the files, PyTorch fp32, `torch.profiler`): decode, resample,
the front end (AASIST's sinc convolution / wav2vec 2.0's conv feature extractor), the encoder (residual 2-D
encoder / transformer) and the graph back end, plus the heaviest operators.
One-off costs (the ONNX export, kept in pretrained/onnx/ for the next run) happen before the warm-up and are
reported as setup, not timed. --random ARCH scores with seeded random weights instead of a checkpoint (speed
does not depend on them; the accuracy columns then only compare modes). --files larger than the dataset
repeats its files (as symbolic links under new names).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from antispoof.audio.datasets import Item, load_dataset
from antispoof.audio.decode import NB_SAMP, SAMPLE_RATE, pad_or_crop, resample
from antispoof.evaluation.metrics import compute_auc, compute_eer
from antispoof.scoring.core import (
    AMP_CHOICES,
    default_batch_size,
    default_workers,
    logits_to_scores,
    score_items,
)
from antispoof.scoring.onnx_backend import BACKENDS, OnnxDetector, scoring_model
from antispoof.utils import pick_device

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "audio" / "sample_custom"
VARIANTS = {  # name -> (backend, amp)
    "torch": ("torch", "fp32"),
    "torch-bf16": ("torch", "bf16"),
    "onnx": ("onnx", "fp32"),
    "onnx-int8": ("onnx-int8", "fp32"),
}
EER_BOUND = 0.5  # points: a mode that moves EER more than this is not a default


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Flag defaults in --help, and the module docstring as written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", default="aasist", help="checkpoint file or registry name")
    p.add_argument(
        "--random", default=None, choices=("aasist", "ssl_aasist"), help="seeded random weights of this arch"
    )
    p.add_argument(
        "--model-config",
        default=None,
        help='config overrides for load_model, JSON text or file, e.g. {"num_attention_heads": 4}',
    )
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset (any layout evaluate_custom.py reads)")
    p.add_argument("--format", default="auto")
    p.add_argument("--files", type=int, default=40, help="files to score (the dataset repeats if smaller)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="pipeline batch (default: 64 on CUDA, 4 on CPU)"
    )
    p.add_argument("--workers", type=int, default=default_workers(), help="pipeline decoding workers")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--amp", default="auto", choices=AMP_CHOICES, help="pipeline autocast (auto = bf16 on CUDA)"
    )
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="pipeline backend (evaluate_custom's)")
    p.add_argument("--compile", action="store_true", help="torch.compile in the pipeline")
    p.add_argument(
        "--variants", default="", help=f"comma-separated extra pipeline modes: {', '.join(VARIANTS)}"
    )
    p.add_argument("--profile", action="store_true", help="also profile where the time goes")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--file-list", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown --variants {unknown}: choose from {', '.join(VARIANTS)}")
    return args


def naive_scores(model, paths: list[str], device: torch.device) -> list[float]:
    """The original scripts' loop: librosa.load one file, pad/crop, batch 1, fp32."""
    import librosa

    scores = []
    with torch.inference_mode():
        for path in paths:
            x, _ = librosa.load(path, sr=SAMPLE_RATE)
            logits = model(torch.from_numpy(pad_or_crop(x))[None].to(device))
            scores.append(logits_to_scores(logits)[0].item())
    return scores


def load(args: argparse.Namespace, device: torch.device):
    """The model under test: a checkpoint, or seeded random weights (the same in every child process)."""
    config = _model_config(args.model_config)
    if args.random:
        from antispoof.networks import build_model

        torch.manual_seed(0)
        return build_model(args.random, config).to(device).eval()
    from antispoof.checkpoints.files import load_model

    return load_model(args.checkpoint, map_location=device, config=config)[0]


def run_phase(args: argparse.Namespace) -> dict:
    """Child process: load the model, set up and warm up, time one method over the listed files."""
    paths = args.file_list.read_text().splitlines()
    device = pick_device(args.device)
    args.batch_size = args.batch_size or default_batch_size(device)
    model = load(args, device)
    if args.phase == "profile":
        return profile(model, paths[: args.batch_size], device)
    backend, amp = VARIANTS.get(args.phase, (args.backend, args.amp))
    opts = dict(batch_size=args.batch_size, workers=args.workers, device=device, amp=amp, backend=backend)
    opts.update(compile=args.compile and args.phase == "pipeline", progress=False)
    start = time.perf_counter()
    if args.phase == "naive":
        naive_scores(model, paths[:1], device)  # warm-up
        method = lambda: naive_scores(model, paths, device)  # noqa: E731
    else:
        score_items(model, [Item(p) for p in paths[: args.batch_size]], **opts)  # export, compile, warm-up
        method = lambda: [r["score"] for r in score_items(model, [Item(p) for p in paths], **opts)]  # noqa: E731
    setup_s = time.perf_counter() - start
    if args.phase != "naive":  # what "auto" resolved to
        backend = "onnx" if isinstance(scoring_model(model, backend, device, amp), OnnxDetector) else "torch"
        backend += "-int8" if backend == "onnx" and opts["backend"] == "onnx-int8" else ""
        amp = amp if amp != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    scores = method()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "files_per_s": len(paths) / seconds,
        "seconds": seconds,
        "setup_s": setup_s,
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "peak_worker_rss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN) if args.phase != "naive" else None,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "device": str(device),
        "batch_size": args.batch_size if args.phase != "naive" else 1,
        "backend": "torch" if args.phase == "naive" else backend,
        "amp": "fp32" if args.phase == "naive" else amp,
        "torch_threads": torch.get_num_threads(),
        "scores": scores,
    }


def profile(model, paths: list[str], device: torch.device) -> dict:
    """Milliseconds per clip in each stage: decode and resample (per file), then the model's stages on one
    batch (PyTorch fp32, `torch.profiler` ranges opened and closed by module hooks), and the top operators."""
    import soundfile as sf
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    start = time.perf_counter()
    heads = [sf.read(p, frames=NB_SAMP, dtype="float32", always_2d=True) for p in paths]
    decode_ms = 1000 * (time.perf_counter() - start) / len(paths)
    rates = sorted({sr for _, sr in heads})
    # The sample files are 16 kHz (nothing to resample): time what a 44.1 kHz recording would cost.
    x44 = np.random.default_rng(0).normal(0, 0.1, int(NB_SAMP * 44100 / SAMPLE_RATE)).astype(np.float32)
    start = time.perf_counter()
    resample(x44, 44100)
    resample_ms = 1000 * (time.perf_counter() - start)
    batch = torch.from_numpy(np.stack([pad_or_crop(x.mean(axis=1)) for x, _ in heads])).to(device)

    marks = _stage_marks(model)
    ranges: list = []

    def mark(i: int):
        def hook(*_):
            if ranges:
                ranges.pop().__exit__(None, None, None)
            if i + 1 < len(marks):
                ranges.append(record_function(f"stage: {marks[i][2]}"))
                ranges[-1].__enter__()

        return hook

    handles = [
        (module.register_forward_pre_hook if when == "pre" else module.register_forward_hook)(mark(i))
        for i, (module, when, _) in enumerate(marks)
    ]
    with torch.inference_mode():
        model(batch)  # warm-up
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            model(batch)
    for h in handles:
        h.remove()
    events = prof.key_averages()
    stages = [e for e in events if e.key.startswith("stage: ")]
    stage_us = {e.key.removeprefix("stage: "): e.cpu_time_total for e in stages}
    ops = sorted((e for e in events if e not in stages), key=lambda e: -e.self_cpu_time_total)
    n = len(batch)
    return {
        "batch_size": n,
        "decode_ms": decode_ms,
        "native_rates": rates,
        "resample_44k_ms": resample_ms,
        "stages_ms": {name: us / 1000 / n for name, us in stage_us.items()},
        "top_ops_ms": {e.key: e.self_cpu_time_total / 1000 / n for e in ops[:6]},
        "model_ms": sum(stage_us.values()) / 1000 / n,
    }


def _stage_marks(model) -> list[tuple]:
    """(module, "pre" | "post", name of the stage that starts there); the last mark ends the last stage."""
    if getattr(model, "arch", None) == "aasist":
        return [
            (model, "pre", "sinc front end + pool"),
            (model.encoder, "pre", "residual encoder"),
            (model.encoder, "post", "graph back end"),
            (model, "post", ""),
        ]
    if getattr(model, "arch", None) == "ssl_aasist":
        return [
            (model, "pre", "wav2vec 2.0 conv feature extractor"),
            (model.ssl_model.feature_extractor, "post", "transformer encoder"),
            (model.ssl_model, "post", "AASIST back end"),
            (model, "post", ""),
        ]
    return [(model, "pre", "model"), (model, "post", "")]


def main(args: argparse.Namespace) -> dict:
    if args.phase is not None:
        print(json.dumps(run_phase(args)))
        return {}
    items = load_dataset(args.data, format=args.format)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = _file_list(items, args.files, Path(tmp))
        file_list = Path(tmp) / "files.txt"
        file_list.write_text("\n".join(paths) + "\n")
        phases = ["naive", "pipeline", *args.variants] + (["profile"] if args.profile else [])
        for phase in phases:
            print(f"{phase}: scoring {len(paths)} files ...", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, *sys.argv[1:], "--phase", phase, "--file-list", str(file_list)]
            child = subprocess.run(cmd, capture_output=True, text=True)
            if child.returncode != 0:
                sys.exit(f"error: the {phase} run failed:\n{child.stderr[-3000:]}")
            results[phase] = json.loads(child.stdout.strip().splitlines()[-1])
    naive = results["naive"]
    base = _accuracy(naive["scores"], labels)
    modes = {}
    for phase in ["pipeline", *args.variants]:
        r = results[phase]
        acc = _accuracy(r["scores"], labels)
        r.update(
            speedup=r["files_per_s"] / naive["files_per_s"],
            max_abs_score_diff=max(abs(a - b) for a, b in zip(naive["scores"], r["scores"], strict=True)),
            eer_change_points=None if acc["eer"] is None else 100 * (acc["eer"] - base["eer"]),
            auc_change=None if acc["auc"] is None else acc["auc"] - base["auc"],
        )
        modes[phase] = r
    for r in results.values():
        r.pop("scores", None)
    summary = {
        "checkpoint": f"random {args.random}" if args.random else args.checkpoint,
        "data": args.data,
        "files": len(paths),
        "machine": _machine(),
        "naive": {**naive, **base},
        "modes": modes,
        "pipeline_settings": {"workers": args.workers, "compile": args.compile},
        "profile": results.get("profile"),
    }
    print_table(summary)
    if args.out is not None:
        from antispoof.utils import write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, summary)
    return summary


def print_table(s: dict) -> None:
    m = s["machine"]
    print(f"{s['files']} files of {s['data']}, {s['checkpoint']}, device {s['naive']['device']}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, bf16 {m['bf16']}, load {m['load']}")
    naive = s["naive"]
    eer = "" if naive["eer"] is None else f"; EER {100 * naive['eer']:.2f} %, AUC {naive['auc']:.4f}"
    header = f"{'method':<48}{'files/s':>8}{'speed-up':>9}{'max|dscore|':>12}{'dEER pts':>9}{'dAUC':>8}"
    print(header + f"{'RSS MB':>8}{'setup s':>8}")
    print(f"{'naive (librosa.load, batch 1, fp32 PyTorch)':<48}{naive['files_per_s']:>8.2f}{'1.00x':>9}")
    for phase, r in s["modes"].items():
        name = f"{phase} (batch {r['batch_size']}, {r['backend']}, {r['amp']}"
        name += f", {s['pipeline_settings']['workers']} workers)"
        deer = "" if r["eer_change_points"] is None else f"{r['eer_change_points']:+.2f}"
        dauc = "" if r["auc_change"] is None else f"{r['auc_change']:+.4f}"
        flag = "  EER moved > 0.5 pts: not a default" if abs(r["eer_change_points"] or 0) > EER_BOUND else ""
        print(
            f"{name:<48}{r['files_per_s']:>8.2f}{r['speedup']:>8.2f}x{r['max_abs_score_diff']:>12.1e}"
            f"{deer:>9}{dauc:>8}{r['peak_rss_mb']:>8.0f}{r['setup_s']:>8.1f}{flag}"
        )
    print(f"accuracy is against the naive fp32 scores{eer} (positive = real, higher score = more real)")
    p = s["profile"]
    if p:
        print(f"where the time goes (ms per clip; model: PyTorch fp32, batch {p['batch_size']}):")
        rates = "/".join(str(r) for r in p["native_rates"])
        print(f"  decode (soundfile, {rates} Hz files, head only)   {p['decode_ms']:8.1f}")
        print(f"  resample (soxr HQ, 44.1 kHz -> 16 kHz, 4.04 s)    {p['resample_44k_ms']:8.1f}")
        for name, ms in p["stages_ms"].items():
            print(f"  {name:<48}{ms:8.1f}  ({100 * ms / p['model_ms']:.0f} % of the model)")
        print("  heaviest operators: " + ", ".join(f"{k} {v:.0f}" for k, v in p["top_ops_ms"].items()))


def _accuracy(scores: list[float], labels: list[str | None]) -> dict:
    """EER and AUC (real = positive) when both classes are present, else None."""
    real = [s for s, lab in zip(scores, labels, strict=True) if lab == "real"]
    fake = [s for s, lab in zip(scores, labels, strict=True) if lab == "fake"]
    if not real or not fake:
        return {"eer": None, "auc": None}
    y = np.array([1] * len(real) + [0] * len(fake))
    return {"eer": compute_eer(real, fake)[0], "auc": compute_auc(y, np.array(real + fake))}


def _machine() -> dict:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")]
    return {
        "cpu": names[0] if names else platform.processor(),
        "cores": os.cpu_count(),
        "bf16": "avx512_bf16" in flags or "amx_bf16" in flags,
        "amx": "amx_tile" in flags,
        "load": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "torch": torch.__version__,
    }


def _file_list(items: list[Item], n: int, tmp: Path) -> tuple[list[str], list[str | None]]:
    """n readable paths and their labels: the dataset's files (spread over it, so both classes are in a
    short run), repeated through symbolic links when n exceeds it."""
    if n < len(items):
        items = [items[int(k * len(items) / n)] for k in range(n)]
    out = [i.path for i in items[:n]]
    labels = [i.label for i in items[:n]]
    for k in range(len(out), n):
        src = Path(items[k % len(items)].path)
        link = tmp / f"repeat{k:06d}{src.suffix}"
        os.symlink(src.resolve(), link)
        out.append(str(link))
        labels.append(items[k % len(items)].label)
    return out, labels


def _model_config(spec: str | None):
    if spec is None:
        return None
    return spec if Path(spec).is_file() else json.loads(spec)


def _maxrss_mb(who: int) -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(who).ru_maxrss * scale / 2**20


if __name__ == "__main__":
    main(parse_args())
