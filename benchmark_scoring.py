"""Scoring speed of the pipeline vs the original one-file loop, how close each mode comes to the machine's
peak, and what each faster mode costs in accuracy.

    python benchmark_scoring.py --checkpoint aasist --files 40 --variants torch,torch-bf16,onnx-int8 --profile
    python benchmark_scoring.py --random ssl_aasist --files 8 --variants onnx,torch-bf16 --layer-drift
    python benchmark_scoring.py --checkpoint la --files 512 --batch-size 64 --workers 8 --device cuda

Arms, each in its own warm process (model loaded, one-off work such as the ONNX export done, one warm-up
batch scored), then timed in turn, --rounds times (naive, pipeline, variants, peak; naive, pipeline, ...):
- naive: the original scripts' loop: `librosa.load` of one file, the reference's pad/crop, batch 1, fp32
  PyTorch, one file after the other;
- pipeline: `score_items` as evaluate_custom.py runs it with these flags (DataLoader decoding workers,
  batches of --batch-size, --backend, --amp, --compile);
- each of --variants: the pipeline with another backend or precision: `torch` (PyTorch fp32), `torch-bf16`
  (bf16 autocast), `onnx` (onnxruntime fp32), `onnx-int8` (onnxruntime, int8 MatMul weights), `workers0`
  (the pipeline's backend and precision, decoding in the scoring process instead of --workers processes);
- peak: (2048 x 2048) matmuls in fp32 and bf16, the machine's practical peak, measured under the same load.
Each row gives files/s and the speed-up over the naive loop of the same round (median [min-max] over the
rounds), the FLOP rate it reaches (FLOPs per clip from torch's FLOP counter on one clip) as a fraction of the
peak of its precision, peak resident memory, and the accuracy cost against the naive fp32 scores: max
|score difference| and, on labelled files, the change in EER (points) and AUC. A mode whose EER moves by more
than 0.5 points is marked: it is not fit to be a default. The 1-minute load average is recorded before and
after every round, and the CPU time other processes took during every timed pass; a loud note follows the
table when either moved enough to distort the ratios (thresholds in antispoof/benchmark.py).

--profile adds where the time goes (one batch, PyTorch fp32, `torch.profiler`): decode, resample, the front
end, the encoder and the graph back end, plus the heaviest operators. --layer-drift (wav2vec 2.0 front ends)
adds the relative error of every front-end layer's output under bf16 autocast and under int8 dynamic
quantisation of every Linear (PyTorch's, the scheme of onnxruntime's onnx-int8), against fp32. --random ARCH
scores with seeded random weights instead of a checkpoint (speed does not depend on them; the accuracy
columns then only compare modes, and say nothing of a trained model's accuracy). --files larger than the
dataset repeats its files (as symbolic links under new names).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from antispoof import benchmark, cli
from antispoof.audio.datasets import Item, load_dataset
from antispoof.audio.decode import NB_SAMP, SAMPLE_RATE, load_audio, pad_or_crop, resample
from antispoof.evaluation.metrics import compute_auc, compute_eer
from antispoof.scoring.core import default_batch_size, logits_to_scores, score_items
from antispoof.scoring.onnx_backend import OnnxDetector, resolve_backend, scoring_model
from antispoof.utils import pick_device

DEFAULT_DATA = Path(__file__).resolve().parent / "data" / "sample"  # ships with the repository
VARIANTS = {  # name -> (backend, amp, decoding workers); None: the pipeline's own
    "torch": ("torch", "fp32", None),
    "torch-bf16": ("torch", "bf16", None),
    "onnx": ("onnx", "fp32", None),
    "onnx-int8": ("onnx-int8", "fp32", None),
    "workers0": (None, None, 0),  # the pipeline, decoding in the scoring process (no DataLoader worker)
}
EER_BOUND = 0.5  # points: a mode that moves EER more than this is not a default
ONE_SHOT = ("profile", "layer-drift")  # arms run once, after the timed rounds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    cli.add_checkpoint(p, default="aasist")
    p.add_argument(
        "--random", default=None, choices=("aasist", "ssl_aasist"), help="seeded random weights of this arch"
    )
    cli.add_model_config(p)
    cli.add_data(p, help="dataset (any layout evaluate_custom.py reads)", default=str(DEFAULT_DATA))
    p.add_argument("--files", type=int, default=40, help="files to score (the dataset repeats if smaller)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of every arm (at least 3)")
    cli.add_compute(p, seed=None)
    cli.add_backend(p)
    p.add_argument("--compile", action="store_true", help="torch.compile in the pipeline")
    p.add_argument(
        "--variants", default="", help=f"comma-separated extra pipeline modes: {', '.join(VARIANTS)}"
    )
    p.add_argument("--profile", action="store_true", help="also profile where the time goes")
    p.add_argument("--layer-drift", action="store_true", help="also the per-layer drift of bf16 and int8")
    p.add_argument("--peak-seconds", type=float, default=0.5, help="length of each matmul peak measurement")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--arm", default=None, help=argparse.SUPPRESS)  # set by the parent in its children
    p.add_argument("--file-list", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what the arms are started with
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown --variants {unknown}: choose from {', '.join(VARIANTS)}")
    if args.rounds < 3:
        p.error("--rounds must be at least 3: one round cannot tell a burst of load from the code")
    return args


def load(args: argparse.Namespace, device: torch.device) -> nn.Module:
    """The model under test: a checkpoint, or seeded random weights (the same in every child process)."""
    config = _model_config(args.model_config)
    if args.random:
        from antispoof.networks import build_model

        torch.manual_seed(0)
        model = build_model(args.random, config)
        # One copy of the random weights for all the warm arms: the first arm writes them, every arm maps the
        # file, so their pages are shared (1.2 GB per process for SSL-AASIST otherwise).
        shared = args.file_list.parent / "random_weights.pt"
        if not shared.exists():
            torch.save(model.state_dict(), shared.with_suffix(".partial"))
            os.replace(shared.with_suffix(".partial"), shared)
        model.load_state_dict(torch.load(shared, mmap=True, weights_only=True), assign=True)
        return model.to(device).eval()
    from antispoof.checkpoints.files import load_model

    return load_model(args.checkpoint, map_location=device, config=config)[0]


def arm_setup(args: argparse.Namespace):
    """Child process: load the model, do the one-off work and a warm-up; returns (info, one timed pass)."""
    paths = args.file_list.read_text().splitlines()
    device = pick_device(args.device)
    args.batch_size = args.batch_size or default_batch_size(device)
    model = load(args, device)
    info = {"device": str(device), "torch_threads": torch.get_num_threads()}
    if args.arm == "profile":
        return info, lambda: profile(model, paths[: args.batch_size], device)
    if args.arm == "layer-drift":
        x = torch.from_numpy(np.stack([pad_or_crop(load_audio(p)) for p in paths[: args.batch_size]]))
        return info, lambda: layer_drift(model, x.to(device))
    start = time.perf_counter()
    if args.arm == "naive":
        # The FLOPs of one clip, counted on the fp32 PyTorch model every arm runs (or exported).
        info["flops_per_clip"] = benchmark.flops_per_clip(model, torch.zeros(1, NB_SAMP, device=device))
        benchmark.naive_scores(model, paths[:1], device)  # warm-up
        info.update(batch_size=1, backend="torch", amp="fp32", setup_s=time.perf_counter() - start)
        return info, lambda: {"scores": benchmark.naive_scores(model, paths, device)}
    backend, amp, workers = VARIANTS.get(args.arm, (None, None, None))
    backend, amp = backend or args.backend, amp or args.amp
    info["workers"] = args.workers if workers is None else workers
    info["backend"] = resolve_backend(model, backend, device, amp)  # what "auto" resolved to
    info["amp"] = amp if amp != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    runner = scoring_model(model, backend, device, amp)  # the ONNX export (once per weights) happens here
    if isinstance(runner, OnnxDetector):
        # The session holds its own copy of the weights: drop PyTorch's (1.2 GB for SSL-AASIST), as the
        # other arms stay warm beside this one. Hashing the weights to find the graph is setup, not timed.
        del model
        gc.collect()
    opts = dict(batch_size=args.batch_size, workers=info["workers"], device=device, amp=amp, backend=backend)
    opts.update(compile=args.compile and args.arm == "pipeline", progress=False)
    score_items(runner, [Item(p) for p in paths[: args.batch_size]], **opts)  # compile, warm-up
    info.update(batch_size=args.batch_size, setup_s=time.perf_counter() - start)

    def one_pass() -> dict:
        return {"scores": [r["score"] for r in score_items(runner, [Item(p) for p in paths], **opts)]}

    return info, one_pass


def main(args: argparse.Namespace) -> dict:
    if args.arm is not None:  # a child: one arm, timed when the parent asks
        benchmark.serve(lambda: arm_setup(args))
        return {}
    items = load_dataset(args.data, format=args.layout)
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = _file_list(items, args.files, Path(tmp))
        file_list = Path(tmp) / "files.txt"
        file_list.write_text("\n".join(paths) + "\n")
        cmd = [sys.executable, __file__, *args.argv, "--file-list", str(file_list), "--arm"]
        arms = {a: [*cmd, a] for a in ["naive", "pipeline", *args.variants]}
        arms["peak"] = benchmark.peak_command(args.peak_seconds)
        run = benchmark.interleave(arms, args.rounds, Path(tmp))
        once = [a for a, wanted in zip(ONE_SHOT, (args.profile, args.layer_drift), strict=True) if wanted]
        extras = {a: benchmark.run_once(a, [*cmd, a], Path(tmp)) for a in once}
    summary = summarize(args, run, labels)
    summary.update(extras)
    print_table(summary)
    if args.out is not None:
        from antispoof.utils import write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, summary)
    return summary


def summarize(args: argparse.Namespace, run: dict, labels: list[str | None]) -> dict:
    """Rows of median [min-max] over the rounds, roofline and accuracy columns, the load of every round."""
    rounds = run["rounds"]
    peaks = {dt: max(r["arms"]["peak"][dt] for r in rounds) for dt in ("float32", "bfloat16")}
    flops = run["setup"]["naive"]["flops_per_clip"]
    n = len(labels)
    naive_scores_ = rounds[0]["arms"]["naive"]["scores"]
    base = _accuracy(naive_scores_, labels)
    rows = {}
    for arm, info in run["setup"].items():
        if arm == "peak":
            continue
        fps = [n / r["arms"][arm]["wall_s"] for r in rounds]
        ratio = [n / r["arms"][arm]["wall_s"] / (n / r["arms"]["naive"]["wall_s"]) for r in rounds]
        scores = rounds[0]["arms"][arm]["scores"]
        acc = _accuracy(scores, labels)
        gflops = flops * benchmark.summarize(fps)["median"] / 1e9
        peak = {"fp32": peaks["float32"], "bf16": peaks["bfloat16"]}.get(info["amp"])
        rows[arm] = {
            **info,
            "files_per_s": benchmark.summarize(fps),
            "speedup": benchmark.summarize(ratio),
            "gflops_per_s": gflops,
            # int8 arms: no int8 peak is measured, so no fraction is claimed
            "fraction_of_peak": None if "int8" in info["backend"] or peak is None else gflops / peak,
            "peak_rss_mb": max(r["arms"][arm]["peak_rss_mb"] for r in rounds),
            "max_abs_score_diff": max(abs(a - b) for a, b in zip(naive_scores_, scores, strict=True)),
            "eer_change_points": None if acc["eer"] is None else 100 * (acc["eer"] - base["eer"]),
            "auc_change": None if acc["auc"] is None else acc["auc"] - base["auc"],
        }
    return {
        "checkpoint": f"random {args.random}" if args.random else args.checkpoint,
        "data": args.data,
        "files": n,
        "rounds": len(rounds),
        "machine": benchmark.machine(),
        "peak_gflops": peaks,
        "flops_per_clip": flops,
        "naive_accuracy": base,
        "rows": rows,
        "workers": args.workers,
        "load": [
            {
                "before": r["load_before"],
                "after": r["load_after"],
                "others_cores": {a: v["others_cores"] for a, v in r["arms"].items()},
            }
            for r in rounds
        ],
        "load_note": benchmark.load_note(rounds),
    }


def print_table(s: dict) -> None:
    m, peaks, flops = s["machine"], s["peak_gflops"], s["flops_per_clip"]
    device = s["rows"]["naive"]["device"]
    print(f"{s['files']} files of {s['data']}, {s['checkpoint']}, device {device}, {s['rounds']} rounds")
    isa = ", ".join(k for k in ("avx512_bf16", "amx", "vnni") if m[k]) or "no bf16/int8 instructions"
    print(
        f"machine: {m['cpu']}, {m['cores']} cores ({isa}), torch {m['torch']}, {m['torch_threads']} threads"
    )
    print(
        f"model: {flops / 1e9:.2f} GFLOP per clip (torch's FLOP counter, one clip); matmul peak measured in "
        f"this run: fp32 {peaks['float32']:.0f}, bf16 {peaks['bfloat16']:.0f} GFLOP/s, so at best "
        f"{peaks['float32'] * 1e9 / flops:.1f} files/s in fp32, {peaks['bfloat16'] * 1e9 / flops:.1f} in bf16"
    )
    print(
        f"{'method':<44}{'files/s [min-max]':>20}{'speed-up [min-max]':>21}{'GFLOP/s':>9}{'of peak':>8}"
        f"{'max|dscore|':>12}{'dEER pts':>9}{'dAUC':>8}{'RSS MB':>8}{'setup s':>8}"
    )
    for arm, r in s["rows"].items():
        name = f"{arm} (b{r['batch_size']}, {r['backend']}, {r['amp']}"
        name += ", librosa.load)" if arm == "naive" else f", {r['workers']} workers)"
        f, x = r["files_per_s"], r["speedup"]
        frac = "n/a" if r["fraction_of_peak"] is None else f"{100 * r['fraction_of_peak']:.0f} %"
        deer = "" if r["eer_change_points"] is None else f"{r['eer_change_points']:+.2f}"
        dauc = "" if r["auc_change"] is None else f"{r['auc_change']:+.4f}"
        flag = "  EER moved > 0.5 pts: not a default" if abs(r["eer_change_points"] or 0) > EER_BOUND else ""
        print(
            f"{name:<44}{f['median']:>7.2f} [{f['min']:.2f}-{f['max']:.2f}]".ljust(64)
            + f"{x['median']:>6.2f}x [{x['min']:.2f}-{x['max']:.2f}]".rjust(21)
            + f"{r['gflops_per_s']:>9.0f}{frac:>8}{r['max_abs_score_diff']:>12.1e}"
            f"{deer:>9}{dauc:>8}{r['peak_rss_mb']:>8.0f}{r['setup_s']:>8.1f}{flag}"
        )
    acc = s["naive_accuracy"]
    eer = "" if acc["eer"] is None else f"; naive EER {100 * acc['eer']:.2f} %, AUC {acc['auc']:.4f}"
    print(f"accuracy is against the naive fp32 scores{eer} (positive = real, higher score = more real)")
    print("of peak: against the fp32 or bf16 matmul peak of the row's precision (none is measured for int8)")
    loads = ", ".join(f"{r['before']:.2f}->{r['after']:.2f}" for r in s["load"])
    others = max(v for r in s["load"] for v in r["others_cores"].values())
    print(f"load (1-minute average) before->after each round: {loads}; other processes during the timed "
          f"passes: at most {others:.2f} cores")  # fmt: skip
    if s["load_note"]:
        print(s["load_note"])
    if s.get("profile"):
        print_profile(s["profile"])
    if s.get("layer-drift"):
        print_drift(s["layer-drift"])


def print_profile(p: dict) -> None:
    print(f"where the time goes (ms per clip; model: PyTorch fp32, batch {p['batch_size']}):")
    rates = "/".join(str(r) for r in p["native_rates"])
    print(f"  decode (soundfile, {rates} Hz files, head only)   {p['decode_ms']:8.1f}")
    print(f"  resample (soxr HQ, 44.1 kHz -> 16 kHz, 4.04 s)    {p['resample_44k_ms']:8.1f}")
    for name, ms in p["stages_ms"].items():
        print(f"  {name:<48}{ms:8.1f}  ({100 * ms / p['model_ms']:.0f} % of the model)")
    print("  heaviest operators: " + ", ".join(f"{k} {v:.0f}" for k, v in p["top_ops_ms"].items()))


def print_drift(d: dict) -> None:
    print(f"drift per layer against fp32 (relative error |h - h_fp32| / |h_fp32| on {d['clips']} clips):")
    print(f"  {'layer':<36}{'bf16':>10}{'int8':>10}")
    for k, name in enumerate(d["layers"]):
        print(f"  {name:<36}{d['bf16'][k]:>10.1e}{d['int8'][k]:>10.1e}")
    print(f"  max |score difference|: bf16 {d['score_bf16']:.1e}, int8 {d['score_int8']:.1e}")
    print(f"  int8 = {d['int8_scheme']}")


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


def layer_drift(model: nn.Module, x: torch.Tensor) -> dict:
    """Relative error of each front-end stage's output (conv features, projection, every transformer layer,
    the final LayerNorm) and of the logits, under bf16 autocast and under int8, against fp32, on clips `x`.

    The int8 model is PyTorch's dynamic quantisation of every Linear (int8 weights per tensor, activations
    quantised per batch at run time): the scheme of onnxruntime's onnx-int8, whose own drift shows in the
    scores of the onnx-int8 arm. The model is quantised in place, last (a copy of a 1.2 GB model is not made).
    """
    import warnings

    from torch.ao.quantization import quantize_dynamic

    fp32 = _stage_outputs(model, x, bf16=False)
    bf16 = _stage_outputs(model, x, bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
        int8 = _stage_outputs(quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True), x)

    def rel(a: dict) -> list[float]:
        return [((a[k] - fp32[k]).norm() / fp32[k].norm()).item() for k in fp32]

    kind = getattr(model, "score_kind", "logit_real")
    score = {name: logits_to_scores(out["logits"], kind)[0] for name, out in (("fp32", fp32), ("bf16", bf16),
                                                                               ("int8", int8))}  # fmt: skip
    return {
        "clips": len(x),
        "layers": list(fp32),
        "bf16": rel(bf16),
        "int8": rel(int8),
        "score_bf16": (score["bf16"] - score["fp32"]).abs().max().item(),
        "score_int8": (score["int8"] - score["fp32"]).abs().max().item(),
        "int8_scheme": "PyTorch dynamic quantisation of every Linear (int8 weights, per-batch activations)",
    }


def _stage_outputs(model: nn.Module, x: torch.Tensor, bf16: bool = False) -> dict[str, torch.Tensor]:
    """{stage name: its output as float32} of one forward pass of a wav2vec 2.0 detector, by forward hooks."""
    hf = model.frontend
    stages = {
        "conv feature extractor": hf.feature_extractor,
        "feature projection": hf.feature_projection,
        **{f"transformer layer {i + 1}": layer for i, layer in enumerate(hf.encoder.layers)},
        "front end output (final LayerNorm)": hf,
    }
    out: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, output):
            # layers return a tensor or a tuple (hidden states first); the front end a ModelOutput
            output = getattr(output, "last_hidden_state", output)
            out[name] = (output[0] if isinstance(output, tuple) else output).detach().float()

        return hook

    handles = [module.register_forward_hook(keep(name)) for name, module in stages.items()]
    try:
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            out["logits"] = model(x).float()
    finally:
        for h in handles:
            h.remove()
    return out


def _accuracy(scores: list[float], labels: list[str | None]) -> dict:
    """EER and AUC (real = positive) when both classes are present, else None."""
    real = [s for s, lab in zip(scores, labels, strict=True) if lab == "real"]
    fake = [s for s, lab in zip(scores, labels, strict=True) if lab == "fake"]
    if not real or not fake:
        return {"eer": None, "auc": None}
    y = np.array([1] * len(real) + [0] * len(fake))
    return {"eer": compute_eer(real, fake)[0], "auc": compute_auc(y, np.array(real + fake))}


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


if __name__ == "__main__":
    main(parse_args())
