"""Export a checkpoint as safetensors + JSON config: the form to share a detector in.

    python export.py runs/fine_tune_for/best.pt runs/fine_tune_for/detector.safetensors
    python export.py aasist-l exports/aasist-l.safetensors

Reads anything `--checkpoint` accepts (a registry name, a published file, this project's best.pt / last.pt)
and writes OUT (the weights; no pickle, so loading it can never run code; its metadata describes the model)
and OUT with the suffix .json (format, arch, config and calibration, readable). Every script's --checkpoint
loads the exported file. Only weights, config and calibration are exported: never a training state.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from checkpoints import load_model_or_exit, save_checkpoint, weights_sha256


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    p = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    p.add_argument("checkpoint", help="a checkpoint file or registry name")
    p.add_argument("out", type=Path, help="the .safetensors file to write (its .json goes beside it)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> Path:
    if args.out.suffix != ".safetensors":
        raise SystemExit(f"error: {args.out} should end in .safetensors")
    model, info = load_model_or_exit(args.checkpoint)
    path = save_checkpoint(args.out, model, info["calibration"], format="safetensors")
    print(f"{path} (+ {path.with_suffix('.json').name}): {info['arch']} from {info['source']} "
          f"({info['format']}), weights sha256 {weights_sha256(model)}")  # fmt: skip
    return path


if __name__ == "__main__":
    main(parse_args())
