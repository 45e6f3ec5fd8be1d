"""GPU benchmark of the full-size SSL-AASIST: end-to-end scoring, model-only and training throughput.

    python benchmark_gpu.py --out-dir runs/bench_gpu --compile        # a CUDA machine
    python benchmark_gpu.py --tiny --files 24 --device cpu --out-dir /tmp/b --arms naive,train-fp32  # smoke

It generates its own corpus on the spot (speech-like synthetic signals, 2-10 s, flac/wav/mp3 at 8-48 kHz;
plus a fixed 4 s set for the scoring target). Then every arm starts in its own warm process (model built,
compiled where asked, one warm-up pass) and the arms are timed in turn, --rounds times (A B C, A B C, ...):
- naive: the original scripts' loop (librosa.load of one file, batch 1, fp32) on --naive-files files;
- pipeline-fp32 / pipeline-bf16 / pipeline-bf16-compile: files/s through evaluate_custom.py's pipeline
  (`score_items`: decoding workers, batching, autocast, torch.compile) on the 4 s corpus; pipeline-mixed:
  the default precision on the 2-10 s corpus;
- model-fp32-b1 / model-bf16 / model-bf16-compile: clips/s of the model alone on random input already on
  the device (batch 1 in fp32, as the original scripts; --batch-size in bf16);
- train-fp32 / train-bf16: clips/s and peak memory of fine_tune_for.py's step (forward, CE, backward, Adam),
  fp32 at the reference's batch 14 vs bf16 at a larger batch;
- peak: (2048 x 2048) matmuls in fp32 (TF32 on CUDA, as the arms run) and bf16: the device's practical peak.
Each figure is the median [min-max] over the rounds, each ratio is taken within a round, and each row shows
its FLOP rate (FLOPs per clip from torch's FLOP counter; training: forward + backward) as a fraction of the
peak of its precision. The load before and after every round is recorded, with a loud note when it moved.
Once, after the rounds: where the time goes (decode, resample, host-to-device, conv feature extractor,
transformer, back end) and the equivalence check (max |score difference| bf16 vs fp32 on the corpus, and
EER on the --labelled folder in both precisions).

Random weights: speed does not depend on them (the equivalence check uses the same weights in both
precisions). Prints a table and writes bench.json in --out-dir.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from antispoof import benchmark, cli
from antispoof.audio.datasets import Item, load_dataset
from antispoof.audio.decode import NB_SAMP, SAMPLE_RATE, pad_or_crop, resample
from antispoof.evaluation.metrics import compute_metrics
from antispoof.networks import SSLAASIST, SSLAASISTConfig, build_model
from antispoof.scoring.core import score_items
from antispoof.utils import pick_device, set_seed, write_json

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
ARMS = (
    "naive",
    "pipeline-fp32",
    "pipeline-bf16",
    "pipeline-bf16-compile",
    "pipeline-mixed",
    "model-fp32-b1",
    "model-bf16",
    "model-bf16-compile",
    "train-fp32",
    "train-bf16",
)
RATIOS = {  # name: (arm, baseline arm), each taken within a round
    "end_to_end_bf16_vs_naive": ("pipeline-bf16", "naive"),
    "end_to_end_fp32_vs_naive": ("pipeline-fp32", "naive"),
    "model_bf16_vs_fp32_b1": ("model-bf16", "model-fp32-b1"),
    "training_bf16_vs_reference": ("train-bf16", "train-fp32"),
}
ONE_SHOT = ("breakdown", "labelled")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    p.add_argument("--out-dir", default="runs/bench_gpu", help="corpus and bench.json go here")
    p.add_argument("--files", type=int, default=4000, help="files in each generated corpus")
    p.add_argument("--naive-files", type=int, default=200, help="files the (slow) naive loop scores")
    cli.add_device(p)
    p.add_argument("--batch-size", type=int, default=128, help="scoring / model-only batch size")
    p.add_argument("--train-batch-size", type=int, default=64, help="bf16 training batch size")
    p.add_argument("--ref-train-batch-size", type=int, default=14, help="the reference's fp32 training batch")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps per pass")
    p.add_argument("--workers", type=int, default=None, help="decoding workers (default: all cores but one)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument(
        "--arms", default=",".join(a for a in ARMS if "compile" not in a), help="comma-separated arms to time"
    )
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of every arm (at least 3)")
    p.add_argument("--peak-seconds", type=float, default=0.5, help="length of each matmul peak measurement")
    p.add_argument("--tiny", action="store_true", help="tiny front end (for a CPU smoke run)")
    p.add_argument(
        "--labelled",
        default=str(Path(__file__).resolve().parent / "data" / "sample"),
        help="real/fake folder for the bf16-vs-fp32 EER check ('none' to skip)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)  # set by the parent in its children
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.arms = [a for a in args.arms.split(",") if a]
    if args.compile:
        args.arms += [a for a in ARMS if "compile" in a and a not in args.arms]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        p.error(f"unknown --arms {unknown}: choose from {', '.join(ARMS)}")
    if args.rounds < 3:
        p.error("--rounds must be at least 3: one round cannot tell a burst of load from the code")
    return args


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
# Arms
# ----------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def corpora(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(the fixed 4 s corpus, the mixed 2-10 s corpus): written once, then only listed."""
    out_dir = Path(args.out_dir)
    fixed = make_corpus(out_dir / "corpus_4s", args.files, args.seed + 1, (4.0, 4.0))
    mixed = make_corpus(out_dir / "corpus_mixed", args.files, args.seed, (2.0, 10.0))
    return fixed, mixed


def arm_setup(args: argparse.Namespace):
    """Child process: build the model (the same seeded weights in every arm), warm up; (info, one pass)."""
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    fixed, mixed = corpora(args)
    set_seed(args.seed)
    model = build_model("ssl_aasist", SSLAASISTConfig(**TINY) if args.tiny else SSLAASISTConfig()).to(device)
    model.eval()
    arm = args.arm
    info = {"device": str(device), "params_m": sum(p.numel() for p in model.parameters()) / 1e6}
    if arm == "breakdown":
        return info, lambda: breakdown(model, fixed, device, args.batch_size)
    if arm == "labelled":
        return info, lambda: labelled_eer(model, device, args)
    if arm.startswith("train"):
        return training_arm(model, device, args, info)
    info["flops_per_clip"] = benchmark.flops_per_clip(model, torch.zeros(1, NB_SAMP, device=device))
    if arm == "naive":
        files = fixed[: args.naive_files]
        benchmark.naive_scores(model, files[:1], device)  # warm-up
        info["precision"] = "fp32"
        return info, lambda: timed(
            device, len(files), "files/s", benchmark.naive_scores, model, files, device
        )
    if arm.startswith("pipeline"):
        items = [Item(p, None) for p in (mixed if arm == "pipeline-mixed" else fixed)]
        amp = {"pipeline-fp32": "fp32", "pipeline-mixed": "auto"}.get(arm, "bf16")
        opts = dict(batch_size=args.batch_size, workers=args.workers, device=device, amp=amp, progress=False)
        opts["compile"] = "compile" in arm
        score_items(model, items[: args.batch_size], **opts)  # warm-up (and compilation)
        info["precision"] = "bf16" if amp == "bf16" or (amp == "auto" and device.type == "cuda") else "fp32"

        def scores() -> list:
            return [r["score"] for r in score_items(model, items, **opts)]

        return info, lambda: timed(device, len(items), "files/s", scores)
    return model_arm(model, device, args, info)


def model_arm(model: nn.Module, device: torch.device, args: argparse.Namespace, info: dict):
    """clips/s of the model alone on random input already on the device: fp32 at batch 1 (the original
    scripts) or bf16 autocast at --batch-size (optionally compiled)."""
    bf16 = args.arm != "model-fp32-b1"
    batch = args.batch_size if bf16 else 1
    forward = torch.compile(model, dynamic=False) if "compile" in args.arm else model
    x = torch.randn(batch, NB_SAMP, device=device) * 0.1
    steps = (10 if bf16 else 50) if device.type == "cuda" else 1

    def run(n: int) -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            for _ in range(n):
                forward(x)

    run(3 if "compile" in args.arm else 1)  # warm-up (and compilation)
    info["precision"] = "bf16" if bf16 else "fp32"
    return info, lambda: timed(device, batch * steps, "clips/s", run, steps)


def training_arm(model: nn.Module, device: torch.device, args: argparse.Namespace, info: dict):
    """clips/s of fine_tune_for.py's step (forward, weighted CE, backward, Adam step): fp32 at the
    reference's batch, or bf16 autocast at --train-batch-size."""
    bf16 = args.arm == "train-bf16"
    batch = args.train_batch_size if bf16 else args.ref_train_batch_size
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss(weight=torch.tensor([0.1, 0.9], device=device))
    x = torch.randn(batch, NB_SAMP, device=device) * 0.1
    y = torch.randint(0, 2, (batch,), device=device)

    def step(n: int = 1) -> None:
        for _ in range(n):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            criterion(logits.float(), y).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    # Training FLOPs of one clip: forward and backward (the optimizer step's element-wise work not counted).
    info["flops_per_clip"] = benchmark.flops_per_clip(model, x[:1], backward=True)
    step()  # warm-up: allocator, Adam state
    steps = args.train_steps if device.type == "cuda" else 1
    info["precision"] = "bf16" if bf16 else "fp32"
    return info, lambda: timed(device, batch * steps, "clips/s", step, steps)


def timed(device: torch.device, n: int, unit: str, fn, *fn_args) -> dict:
    """One timed call of fn(*fn_args) doing `n` files or clips: its rate and peak device memory (its return
    value, scores, kept under "scores" when it is a list)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    out = fn(*fn_args)
    sync(device)
    rate = n / (time.perf_counter() - start)
    return {
        "rate": rate,
        "unit": unit,
        "peak_gb": peak_gb(device),
        "scores": out if isinstance(out, list) else None,
    }


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


def labelled_eer(model: nn.Module, device: torch.device, args: argparse.Namespace) -> dict:
    """EER (%) on the --labelled real/fake folder in fp32 and bf16 (empty when skipped or not there)."""
    if args.labelled == "none" or not Path(args.labelled).exists():
        return {}
    items = load_dataset(args.labelled)
    out = {}
    for amp in ("fp32", "bf16"):
        rows = score_items(model, items, batch_size=args.batch_size, workers=args.workers, device=device,
                           amp=amp, progress=False)  # fmt: skip
        ok = [r for r in rows if r["status"] == "ok"]
        out[amp] = round(100 * compute_metrics([r["label"] for r in ok], [r["score"] for r in ok])["eer"], 3)
    return out


# ----------------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> dict:
    if args.arm is not None:  # a child: one arm, timed when the parent asks
        benchmark.serve(lambda: arm_setup(args))
        return {}
    device = pick_device(args.device)
    out_dir = Path(args.out_dir)
    print(f"generating corpora in {out_dir} ...", flush=True)
    corpora(args)
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, *args.argv, "--arm"]
    arms = {a: [*cmd, a] for a in args.arms}
    arms["peak"] = benchmark.peak_command(args.peak_seconds, str(device))
    run = benchmark.interleave(arms, args.rounds, logs)
    once = [a for a in ONE_SHOT if a != "labelled" or args.labelled != "none"]
    extras = {a: benchmark.run_once(a, [*cmd, a], logs) for a in once}
    result = summarize(args, run, extras, device)
    write_json(out_dir / "bench.json", result)
    print_table(result)
    print(f"wrote {out_dir / 'bench.json'}")
    return result


def summarize(args: argparse.Namespace, run: dict, extras: dict, device: torch.device) -> dict:
    """Median [min-max] rates and ratios over the rounds, FLOP rates against the measured peaks."""
    rounds = run["rounds"]
    peaks = {dt: max(r["arms"]["peak"][dt] for r in rounds) for dt in benchmark.PEAK_DTYPES}
    rows = {}
    for arm in args.arms:
        info = run["setup"][arm]
        rate = benchmark.summarize([r["arms"][arm]["rate"] for r in rounds])
        gflops = info["flops_per_clip"] * rate["median"] / 1e9
        peak = peaks["bfloat16" if info["precision"] == "bf16" else "float32"]
        gb = [r["arms"][arm]["peak_gb"] for r in rounds]
        rows[arm] = {
            **info,
            "rate": rate,
            "unit": rounds[0]["arms"][arm]["unit"],
            "gflops_per_s": gflops,
            "fraction_of_peak": gflops / peak,
            "peak_gb": None if None in gb else max(gb),
        }
    ratios = {
        name: benchmark.summarize([r["arms"][a]["rate"] / r["arms"][b]["rate"] for r in rounds])
        for name, (a, b) in RATIOS.items()
        if a in rows and b in rows
    }
    equivalence = None
    if "pipeline-fp32" in rows and "pipeline-bf16" in rows:
        a, b = (
            np.array(rounds[0]["arms"][k]["scores"], dtype=float) for k in ("pipeline-fp32", "pipeline-bf16")
        )
        diff = np.abs(a - b)[~np.isnan(a - b)]  # files a precision could not score are None (NaN)
        equivalence = {
            "n": int(diff.size),
            "max_abs_score_diff": float(diff.max()),
            "mean": float(diff.mean()),
        }
    for r in rounds:  # scores served the equivalence check; the JSON keeps the timings
        for a in r["arms"].values():
            a.pop("scores", None)
    return {
        "machine": {**benchmark.machine(), "device": _device_name(device)},
        "model": f"SSL-AASIST {'tiny' if args.tiny else 'XLS-R 300M'}",
        "rounds": len(rounds),
        "peak_gflops": peaks,
        "rows": rows,
        "ratios": ratios,
        "equivalence_bf16_vs_fp32": equivalence,
        "eer_labelled_percent": extras.get("labelled") or None,
        "breakdown_s_per_1000_files": extras["breakdown"],
        "load": [{"before": r["load_before"], "after": r["load_after"]} for r in rounds],
        "load_note": benchmark.load_note(rounds),
    }


def print_table(s: dict) -> None:
    m = s["machine"]
    host = f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}"
    print(f"\n{s['model']} on {m['device']} ({host}), {s['rounds']} rounds")
    print(f"matmul peak measured in this run: fp32 {s['peak_gflops']['float32']:.0f} GFLOP/s "
          f"(TF32 on CUDA), bf16 {s['peak_gflops']['bfloat16']:.0f} GFLOP/s")  # fmt: skip
    print(f"{'arm':<24}{'median [min-max]':>28}{'GFLOP/clip':>11}{'GFLOP/s':>10}{'of peak':>8}{'peak GB':>8}")
    for arm, r in s["rows"].items():
        rate = r["rate"]
        text = f"{rate['median']:.1f} [{rate['min']:.1f}-{rate['max']:.1f}] {r['unit']}"
        gb = "" if r["peak_gb"] is None else f"{r['peak_gb']:.1f}"
        print(f"{arm:<24}{text:>28}{r['flops_per_clip'] / 1e9:>11.1f}{r['gflops_per_s']:>10.0f}"
              f"{100 * r['fraction_of_peak']:>7.1f}%{gb:>8}")  # fmt: skip
    ratios = [f"{k} {v['median']:.2f}x [{v['min']:.2f}-{v['max']:.2f}]" for k, v in s["ratios"].items()]
    print("ratios (within each round): " + ", ".join(ratios))
    print("breakdown (s per 1,000 files): "
          + ", ".join(f"{k} {v:.2f}" for k, v in s["breakdown_s_per_1000_files"].items()))  # fmt: skip
    eq = s["equivalence_bf16_vs_fp32"]
    if eq:
        print(f"bf16 vs fp32: max |score diff| {eq['max_abs_score_diff']:.4f} over {eq['n']} files")
    if s["eer_labelled_percent"]:
        print(f"EER (%) on the labelled folder, fp32 / bf16: {s['eer_labelled_percent']}")
    print("load (1-minute average) before->after each round: "
          + ", ".join(f"{r['before']:.2f}->{r['after']:.2f}" for r in s["load"]))  # fmt: skip
    if s["load_note"]:
        print(s["load_note"])


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


if __name__ == "__main__":
    main(parse_args())
