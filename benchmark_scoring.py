"""Scoring throughput and peak memory: evaluate_custom.py's pipeline vs the original scripts' naive loop.

    python benchmark_scoring.py --checkpoint aasist --data ../shared/audio/sample_custom --files 40
    python benchmark_scoring.py --checkpoint la --files 512 --batch-size 64 --workers 8 --device cuda

Both methods score the same files in the same run, each in a fresh child process (so one's memory does not
count against the other), after one warm-up batch:
- naive: `librosa.load` of one file, the reference's pad/crop, batch 1, fp32, one file after the other;
- pipeline: `scoring.score_items` (DataLoader decoding workers, batches of --batch-size, --amp autocast,
  optional --compile), the code evaluate_custom.py runs.
Reports files/s, the ratio pipeline / naive, peak resident memory (the scoring process, and the largest
decoding worker), peak GPU memory on CUDA, and the largest score difference between the two (0 up to float
rounding in fp32). --files larger than the dataset repeats its files (as symbolic links under new names).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from audio import SAMPLE_RATE, pad_or_crop
from data import Item, load_dataset
from scoring import AMP_CHOICES, default_batch_size, default_workers, logits_to_scores, score_items
from utils import json_text, pick_device, write_json

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "shared" / "audio" / "sample_custom"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Flag defaults in --help, and the module docstring as written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--checkpoint", default="aasist", help="checkpoint file or registry name")
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
    p.add_argument("--compile", action="store_true", help="torch.compile in the pipeline")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--phase", choices=("naive", "pipeline"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--file-list", type=Path, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


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


def run_phase(args: argparse.Namespace) -> dict:
    """Child process: load the model, warm up, time one method over the listed files."""
    from checkpoints import load_model

    paths = args.file_list.read_text().splitlines()
    device = pick_device(args.device)
    args.batch_size = args.batch_size or default_batch_size(device)
    model, _ = load_model(args.checkpoint, map_location=device, config=_model_config(args.model_config))
    opts = dict(
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        amp=args.amp,
        compile=args.compile,
        progress=False,
    )
    if args.phase == "naive":
        naive_scores(model, paths[:1], device)  # warm-up
        method = lambda: naive_scores(model, paths, device)  # noqa: E731
    else:
        score_items(model, [Item(p) for p in paths[: args.batch_size]], **opts)  # warm-up (and compile)
        method = lambda: [r["score"] for r in score_items(model, [Item(p) for p in paths], **opts)]  # noqa: E731
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
        "peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "peak_worker_rss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN) if args.phase == "pipeline" else None,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "device": str(device),
        "batch_size": args.batch_size if args.phase == "pipeline" else 1,
        "torch_threads": torch.get_num_threads(),
        "scores": scores,
    }


def main(args: argparse.Namespace) -> dict:
    if args.phase is not None:
        print(json_text(run_phase(args), indent=None))
        return {}
    items = load_dataset(args.data, format=args.format)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _file_list(items, args.files, Path(tmp))
        file_list = Path(tmp) / "files.txt"
        file_list.write_text("\n".join(paths) + "\n")
        results = {}
        for phase in ("naive", "pipeline"):
            print(f"{phase}: scoring {len(paths)} files ...", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, *sys.argv[1:], "--phase", phase, "--file-list", str(file_list)]
            child = subprocess.run(cmd, capture_output=True, text=True)
            if child.returncode != 0:
                sys.exit(f"error: the {phase} run failed:\n{child.stderr[-3000:]}")
            results[phase] = json.loads(child.stdout.strip().splitlines()[-1])
    naive, pipe = results["naive"], results["pipeline"]
    diff = max(abs(a - b) for a, b in zip(naive.pop("scores"), pipe.pop("scores"), strict=True))
    summary = {
        "checkpoint": args.checkpoint,
        "files": len(paths),
        "device": pipe["device"],
        "pipeline_settings": {
            "batch_size": pipe["batch_size"],
            "workers": args.workers,
            "amp": args.amp,
            "compile": args.compile,
        },
        "naive": naive,
        "pipeline": pipe,
        "speedup": pipe["files_per_s"] / naive["files_per_s"],
        "max_abs_score_diff": diff,
    }
    print_table(summary)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, summary)
    return summary


def print_table(s: dict) -> None:
    p = s["pipeline_settings"]
    print(f"{s['files']} files, {s['checkpoint']}, device {s['device']}")
    print(f"{'method':<44}{'files/s':>9}{'seconds':>9}{'peak RSS MB':>13}{'worker MB':>11}{'GPU MB':>9}")
    rows = [
        (f"naive (librosa.load, batch 1, fp32, {s['naive']['torch_threads']} threads)", s["naive"]),
        (
            f"pipeline (batch {p['batch_size']}, {p['workers']} workers, amp {p['amp']}"
            f"{', compile' if p['compile'] else ''})",
            s["pipeline"],
        ),
    ]
    for name, r in rows:
        worker = "" if r["peak_worker_rss_mb"] is None else f"{r['peak_worker_rss_mb']:.0f}"
        gpu = "" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}"
        print(
            f"{name:<44}{r['files_per_s']:>9.2f}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}{worker:>11}{gpu:>9}"
        )
    print(
        f"speedup pipeline / naive: {s['speedup']:.2f}x; max |score difference| {s['max_abs_score_diff']:.1e}"
    )


def _file_list(items: list[Item], n: int, tmp: Path) -> list[str]:
    """n readable paths: the dataset's files, repeated through symbolic links when n exceeds it."""
    paths = [i.path for i in items]
    out = paths[:n]
    for k in range(len(out), n):
        src = Path(paths[k % len(paths)])
        link = tmp / f"repeat{k:06d}{src.suffix}"
        os.symlink(src.resolve(), link)
        out.append(str(link))
    return out


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
