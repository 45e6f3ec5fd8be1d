"""GPU benchmark of the full-size SSL-AASIST: end-to-end scoring, model-only and training throughput.

    python benchmark_gpu.py --out-dir runs/bench_gpu --compile        # a CUDA machine
    python benchmark_gpu.py --tiny --files 24 --device cpu --out-dir /tmp/b   # smoke run on a CPU

It generates its own corpus on the spot (speech-like synthetic signals, 2-10 s, flac/wav/mp3 at 8-48 kHz;
plus a fixed 4 s set for the scoring target), then measures, each against the naive loop of the original
scripts (librosa.load of one file, batch 1, fp32) in the same run:

- end to end: files/s through evaluate_custom.py's pipeline (`scoring.score_items`: decoding workers,
  batching, bf16 autocast, optional torch.compile);
- model only: clips/s on random (B, 64600) input already on the device;
- training: clips/s and peak memory of fine_tune_for.py's step (`training.Trainer.train_epoch`), fp32 batch 14
  (the reference recipe) vs bf16 at a larger batch;
- where the time goes: decode, resample, host-to-device, conv feature extractor, transformer, back end;
- equivalence: max |score difference| bf16 vs fp32 on the corpus, and EER on ../shared/audio when it is there.

Random weights: speed does not depend on them (the equivalence check uses the same weights in both
precisions).
Prints a table and writes bench.json in --out-dir.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from antispoof.audio.datasets import Item, load_dataset
from antispoof.audio.decode import NB_SAMP, SAMPLE_RATE, pad_or_crop, resample
from antispoof.evaluation.metrics import compute_metrics
from antispoof.networks import SSLAASIST, SSLAASISTConfig, build_model
from antispoof.scoring.core import score_items
from antispoof.utils import pick_device, set_seed, write_json
from benchmark_scoring import naive_scores

RATES = (8000, 16000, 22050, 44100, 48000)
FORMATS = ("flac", "wav", "mp3")
TINY = dict(  # the golden tiny model's sizes: same code path, CPU-friendly
    conv_dim=[32] * 7,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out-dir", default="runs/bench_gpu", help="corpus and bench.json go here")
    p.add_argument("--files", type=int, default=4000, help="files in each generated corpus")
    p.add_argument("--naive-files", type=int, default=200, help="files the (slow) naive loop scores")
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto")
    p.add_argument("--batch-size", type=int, default=128, help="scoring / model-only batch size")
    p.add_argument("--train-batch-size", type=int, default=64, help="bf16 training batch size")
    p.add_argument("--ref-train-batch-size", type=int, default=14, help="the reference's fp32 training batch")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per setting")
    p.add_argument("--workers", type=int, default=None, help="decoding workers (default: all cores but one)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--tiny", action="store_true", help="tiny front end (for a CPU smoke run)")
    p.add_argument(
        "--labelled",
        default=str(Path(__file__).resolve().parent.parent / "shared" / "audio" / "sample_custom"),
        help="real/fake folder for the bf16-vs-fp32 EER check ('none' to skip)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------------


def synth_speechlike(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """A voiced-speech-like signal: harmonics of a wandering f0, syllable-rate envelope, some noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12) if k * f0.max() < sr / 2)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None)
    x = 0.3 * voiced * envelope + 0.01 * rng.standard_normal(len(t))
    return (x / max(1e-6, np.abs(x).max()) * 0.8).astype(np.float32)


def _write_one(job: tuple[str, int, float, int, str]) -> str:
    path, seed, seconds, sr, fmt = job
    x = synth_speechlike(np.random.default_rng(seed), seconds, sr)
    sf.write(path, x, sr, format=fmt.upper())
    return path


def make_corpus(folder: Path, n: int, seed: int, seconds: tuple[float, float]) -> list[str]:
    """`n` files of `seconds` (uniform range) at mixed rates and formats; reused when already there."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    jobs = []
    for i in range(n):
        fmt = FORMATS[i % len(FORMATS)]
        sr = int(rng.choice(RATES))
        jobs.append((str(folder / f"{i:05d}.{fmt}"), seed * 1_000_003 + i, rng.uniform(*seconds), sr, fmt))
    missing = [j for j in jobs if not os.path.exists(j[0])]
    if missing:
        with ProcessPoolExecutor() as pool:
            list(pool.map(_write_one, missing, chunksize=32))
    return [j[0] for j in jobs]


# ----------------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def naive_scoring(model: nn.Module, files: list[str], device: torch.device) -> dict:
    """The original scripts' loop (benchmark_scoring.naive_scores): librosa.load, batch 1, fp32."""
    model.eval()
    reset_peak(device)
    start = time.perf_counter()
    naive_scores(model, files, device)
    sync(device)
    elapsed = time.perf_counter() - start
    return {"files_per_s": len(files) / elapsed, "peak_gb": peak_gb(device)}


def pipeline_scoring(model: nn.Module, files: list[str], device: torch.device, args, **opts) -> dict:
    """evaluate_custom.py's pipeline on `files` (on CUDA after a warm-up batch: compile time not counted)."""
    common = dict(batch_size=args.batch_size, workers=args.workers, device=device, progress=False, **opts)
    if device.type == "cuda":
        score_items(model, [Item(p, None) for p in files[: args.batch_size]], **common)
    reset_peak(device)
    start = time.perf_counter()
    rows = score_items(model, [Item(p, None) for p in files], **common)
    sync(device)
    elapsed = time.perf_counter() - start
    ok = sum(r["status"] == "ok" for r in rows)
    return {"files_per_s": len(files) / elapsed, "ok": ok, "peak_gb": peak_gb(device), "rows": rows}


def model_only(
    model: nn.Module, device: torch.device, batch: int, amp: bool, steps: int, compiled=False
) -> dict:
    """clips/s of the model alone on random input already on the device."""
    forward = torch.compile(model, dynamic=False) if compiled else model
    x = torch.randn(batch, NB_SAMP, device=device) * 0.1
    ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    with torch.inference_mode(), ctx:
        for _ in range(3 if compiled else int(device.type == "cuda")):  # warm-up (and compilation)
            forward(x)
        sync(device)
        reset_peak(device)
        start = time.perf_counter()
        for _ in range(steps):
            forward(x)
        sync(device)
    elapsed = time.perf_counter() - start
    return {"clips_per_s": batch * steps / elapsed, "peak_gb": peak_gb(device)}


def training_speed(model: nn.Module, device: torch.device, batch: int, amp: bool, steps: int) -> dict:
    """clips/s and peak memory of the fine-tuning step: forward, weighted CE, backward, Adam step."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    x = torch.randn(batch, NB_SAMP, device=device) * 0.1
    y = torch.randint(0, 2, (batch,), device=device)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def step():
        with ctx:
            logits = model(x)
        loss = criterion(logits.float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        step()  # warm-up: allocator, Adam state
        sync(device)
    reset_peak(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    elapsed = time.perf_counter() - start
    model.eval()
    return {"clips_per_s": batch * steps / elapsed, "peak_gb": peak_gb(device)}


def breakdown(model: SSLAASIST, files: list[str], device: torch.device, batch: int) -> dict:
    """Seconds per 1,000 files for each stage, one stage at a time (decode/resample on one CPU core)."""
    files = files[:batch]
    t0 = time.perf_counter()
    decoded = [sf.read(p, dtype="float32", always_2d=True) for p in files]
    t1 = time.perf_counter()
    mono = [resample(x.mean(axis=1), sr) if sr != SAMPLE_RATE else x[:, 0] for x, sr in decoded]
    t2 = time.perf_counter()
    x = torch.from_numpy(np.stack([pad_or_crop(m) for m in mono]))
    if device.type == "cuda":
        x = x.pin_memory()  # as the DataLoader delivers it
    sync(device)
    t3 = time.perf_counter()
    xd = x.to(device, non_blocking=True)
    sync(device)
    t4 = time.perf_counter()
    hf = model.ssl_model
    stages = {}
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"),
    ):
        model(xd)  # warm-up
        sync(device)
        s = time.perf_counter()
        conv = hf.feature_extractor(xd)  # (B, C, frames)
        sync(device)
        stages["feature_extractor"] = time.perf_counter() - s
        s = time.perf_counter()
        hidden, _ = hf.feature_projection(conv.transpose(1, 2))
        hf.encoder(hidden)
        sync(device)
        stages["transformer"] = time.perf_counter() - s
        s = time.perf_counter()
        model(xd)
        sync(device)
        whole = time.perf_counter() - s
    stages["back_end"] = max(0.0, whole - stages["feature_extractor"] - stages["transformer"])
    per_k = 1000 / len(files)
    return {
        "decode_1core": (t1 - t0) * per_k,
        "resample_1core": (t2 - t1) * per_k,
        "host_to_device": (t4 - t3) * per_k,
        **{k: v * per_k for k, v in stages.items()},
    }


def equivalence(rows_fp32: list[dict], rows_bf16: list[dict]) -> dict:
    """Max |score difference| bf16 vs fp32 over the files both scored."""
    a = {r["path"]: r["score"] for r in rows_fp32 if r["status"] == "ok"}
    b = {r["path"]: r["score"] for r in rows_bf16 if r["status"] == "ok"}
    common = sorted(a.keys() & b.keys())
    diff = np.abs(np.array([a[p] for p in common]) - np.array([b[p] for p in common]))
    return {
        "n": len(common),
        "max_abs_score_diff": float(diff.max()),
        "mean_abs_score_diff": float(diff.mean()),
    }


def labelled_eer(model: nn.Module, device: torch.device, args) -> dict | None:
    """EER on the --labelled real/fake folder in fp32 and bf16 (None when skipped or not there)."""
    if args.labelled == "none" or not Path(args.labelled).exists():
        return None
    items = load_dataset(args.labelled)
    out = {}
    for amp in ("fp32", "bf16"):
        rows = score_items(model, items, batch_size=args.batch_size, workers=args.workers, device=device,
                           amp=amp, progress=False)  # fmt: skip
        ok = [r for r in rows if r["status"] == "ok"]
        metrics = compute_metrics([r["label"] for r in ok], [r["score"] for r in ok])
        out[amp] = round(metrics["eer"], 3)
    return out


# ----------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict:
    set_seed(args.seed)
    device = pick_device(args.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out_dir = Path(args.out_dir)
    steps = 10 if on_gpu else 1

    print(f"generating corpora in {out_dir} ...", flush=True)
    mixed = make_corpus(out_dir / "corpus_mixed", args.files, args.seed, (2.0, 10.0))
    fixed = make_corpus(out_dir / "corpus_4s", args.files, args.seed + 1, (4.0, 4.0))

    config = SSLAASISTConfig(**TINY) if args.tiny else SSLAASISTConfig()
    model = build_model("ssl_aasist", config).to(device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    result: dict = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if on_gpu else platform.processor() or "cpu",
            "cpu_cores": os.cpu_count(),
            "torch": torch.__version__,
            "model": f"SSL-AASIST {'tiny' if args.tiny else 'XLS-R 300M'} ({n_params / 1e6:.1f} M params)",
        }
    }

    print("naive loop (librosa.load, batch 1, fp32) ...", flush=True)
    result["naive_scoring"] = naive_scoring(model, fixed[: args.naive_files], device)

    print("end-to-end pipeline ...", flush=True)
    e2e = {}
    fp32 = pipeline_scoring(model, fixed, device, args, amp="fp32")
    bf16 = pipeline_scoring(model, fixed, device, args) if on_gpu else fp32  # the default is fp32 on CPU
    e2e["fp32"] = {k: v for k, v in fp32.items() if k != "rows"}
    e2e["default"] = {k: v for k, v in bf16.items() if k != "rows"}
    if args.compile:
        e2e["compile"] = {k: v for k, v in pipeline_scoring(model, fixed, device, args, compile=True).items()
                          if k != "rows"}  # fmt: skip
    mixed_run = pipeline_scoring(model, mixed, device, args)
    e2e["mixed_2_10s"] = {k: v for k, v in mixed_run.items() if k != "rows"}
    result["end_to_end"] = e2e
    result["equivalence_bf16_vs_fp32"] = equivalence(fp32["rows"], bf16["rows"])
    result["equivalence_bf16_vs_fp32"]["eer_sample_custom"] = labelled_eer(model, device, args)

    print("model only ...", flush=True)
    mo = {"fp32_b1": model_only(model, device, 1, False, steps * 5 if on_gpu else 1)}
    mo[f"bf16_b{args.batch_size}"] = model_only(model, device, args.batch_size, on_gpu, steps)
    if args.compile:
        mo[f"bf16_b{args.batch_size}_compile"] = model_only(
            model, device, args.batch_size, on_gpu, steps, True
        )
    result["model_only"] = mo

    print("training ...", flush=True)
    result["training"] = {
        f"fp32_b{args.ref_train_batch_size}": training_speed(
            model, device, args.ref_train_batch_size, False, args.train_steps if on_gpu else 1
        ),
        f"bf16_b{args.train_batch_size}": training_speed(
            model, device, args.train_batch_size, on_gpu, args.train_steps if on_gpu else 1
        ),
    }

    print("breakdown ...", flush=True)
    result["breakdown_s_per_1000_files"] = breakdown(model, fixed, device, args.batch_size)

    naive = result["naive_scoring"]["files_per_s"]
    result["ratios"] = {
        "end_to_end_vs_naive": e2e["default"]["files_per_s"] / naive,
        "model_only_vs_fp32_b1": mo[f"bf16_b{args.batch_size}"]["clips_per_s"] / mo["fp32_b1"]["clips_per_s"],
        "training_vs_reference": result["training"][f"bf16_b{args.train_batch_size}"]["clips_per_s"]
        / result["training"][f"fp32_b{args.ref_train_batch_size}"]["clips_per_s"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "bench.json", result)
    print_table(result)
    print(f"wrote {out_dir / 'bench.json'}")
    return result


def print_table(result: dict) -> None:
    print(f"\n{result['machine']}")
    for section in ("naive_scoring", "end_to_end", "model_only", "training"):
        block = result[section]
        entries = {"": block} if "files_per_s" in block else block
        for name, r in entries.items():
            rate = r.get("files_per_s") or r.get("clips_per_s")
            unit = "files/s" if "files_per_s" in r else "clips/s"
            peak = "" if r.get("peak_gb") is None else f"  peak {r['peak_gb']:.1f} GB"
            print(f"{section:<16} {name:<22} {rate:>10.1f} {unit}{peak}")
    print("breakdown (s per 1,000 files): "
          + ", ".join(f"{k} {v:.2f}" for k, v in result["breakdown_s_per_1000_files"].items()))  # fmt: skip
    print("ratios: " + ", ".join(f"{k} {v:.1f}x" for k, v in result["ratios"].items()))
    eq = result["equivalence_bf16_vs_fp32"]
    print(f"bf16 vs fp32: max |score diff| {eq['max_abs_score_diff']:.4f} over {eq['n']} files; "
          f"EER on sample_custom {eq['eer_sample_custom']}")  # fmt: skip


if __name__ == "__main__":
    main(parse_args())
