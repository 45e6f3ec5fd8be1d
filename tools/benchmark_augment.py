"""Training step time with and without --augment (fine_tune_for.py), on the CPU: is channel augmentation
cheap enough to leave on?

    python tools/benchmark_augment.py --checkpoint aasist-l --data data/sample --steps 5 --rounds 3

Arms, interleaved in every round so that machine load hits them alike: none; codec with an empty cache (the
first epoch: a DataLoader worker runs ffmpeg for each drawn file and codec); codec with that cache filled
(every later epoch); noise + reverb. A step is one batch from the training DataLoader (the workers decode and
augment while the model trains) plus forward, backward and an Adam update of the real model, as
fine_tune_for.py runs it. Prints the median step time of each arm over the rounds [min-max], its ratio to
"none" within each round, and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from antispoof.audio.datasets import load_dataset  # noqa: E402
from antispoof.checkpoints.files import load_model  # noqa: E402
from antispoof.training.augment import ChannelAugment  # noqa: E402
from antispoof.training.data import ClipDataset, collate_clips  # noqa: E402


def step_time(model, items, augment, args, epoch: int) -> float:
    """Seconds per training step over `args.steps` steps (the first batch's wait included)."""
    clips = ClipDataset(items, augment=augment, seed=epoch)
    clips.set_epoch(epoch)
    loader = DataLoader(clips, args.batch_size, shuffle=False, num_workers=args.workers,
                        collate_fn=collate_clips)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    model.train()
    start, steps = time.perf_counter(), 0
    for batch in loader:
        loss = torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if steps == args.steps:
            break
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="aasist-l")
    p.add_argument("--data", default="data/sample")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="steps per arm and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers (fine_tune_for.py's --workers)")
    args = p.parse_args()
    torch.manual_seed(0)
    items = load_dataset(args.data)
    model, _ = load_model(args.checkpoint, map_location="cpu")
    load_before = os.getloadavg()[0]
    times: dict[str, list[float]] = {}
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache:  # a cold codec cache every round
            arms = {
                "none": None,
                "codec, empty cache (epoch 1)": ChannelAugment.build(["codec"], 0.5, cache_dir=cache),
                "codec, cache filled (later epochs)": ChannelAugment.build(["codec"], 0.5, cache_dir=cache),
                "noise + reverb": ChannelAugment.build(["noise", "reverb"], 0.5, cache_dir=cache),
            }
            for name, augment in arms.items():  # the same clips (epoch r) for the two codec arms
                times.setdefault(name, []).append(step_time(model, items, augment, args, epoch=r))
        print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True)
    load_after = os.getloadavg()[0]
    print(
        f"\n{args.checkpoint}, batch {args.batch_size}, {args.workers} DataLoader worker(s), {args.steps} "
        f"steps x {args.rounds} rounds; 1-min load {load_before:.1f} before, {load_after:.1f} after"
    )
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t, times["none"], strict=True)]
        print(f"  {name:<36} {statistics.median(t):.2f} s/step [{min(t):.2f}-{max(t):.2f}]  "
              f"x{statistics.median(ratios):.2f} of none [{min(ratios):.2f}-{max(ratios):.2f}]")  # fmt: skip


if __name__ == "__main__":
    main()
