"""Export a checkpoint in a form to share or deploy: safetensors + JSON config, or an ONNX graph.

    python export.py runs/fine_tune_for/best.pt runs/fine_tune_for/detector.safetensors
    python export.py aasist-l exports/aasist-l.safetensors
    python export.py aasist exports/aasist.onnx                # onnxruntime, checked against PyTorch
    python export.py la exports/la-int8.onnx --int8            # int8 MatMul weights (opt-in, see README)

Reads anything `--checkpoint` accepts (a registry name, a published file, this project's best.pt / last.pt).

.safetensors: writes OUT (the weights; no pickle, so loading it can never run code; its metadata describes the
model) and OUT with the suffix .json (format, arch, config and calibration, readable). Every script's
--checkpoint loads the exported file. Only weights, config and calibration are exported, never a
training state.

.onnx: a graph for onnxruntime (or any ONNX runtime): input `waveform`, float32 (batch, 64600) at 16 kHz ->
output `logits`, float32 (batch, 2), index 1 = real (bona fide); score = logits[:, 1] (higher = more real),
p_fake = softmax(logits)[:, 0]. The batch size is free, the length fixed. Before OUT is written, onnxruntime
runs the graph on the first clips of --check-data plus noise and its logits are compared with PyTorch's:
above --atol the export is refused. --int8 (onnxruntime's dynamic quantisation of MatMul weights) changes
the scores: the difference is printed, not gated; measure it with benchmark_scoring.py before trusting it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import antispoof.cli as cli
from antispoof.checkpoints.files import (
    load_model_or_exit,
    parse_model_config,
    save_checkpoint,
    weights_sha256,
)

DEFAULT_CHECK_DATA = Path(__file__).resolve().parent / "data" / "sample"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    p.add_argument("checkpoint", help="a checkpoint file or registry name")
    p.add_argument(
        "out", type=Path, help="the .safetensors (its .json goes beside it) or .onnx file to write"
    )
    p.add_argument(
        "--model-config",
        default=None,
        help='config overrides for load_model, JSON text or file, e.g. {"num_attention_heads": 4}',
    )
    p.add_argument("--int8", action="store_true", help=".onnx: quantise MatMul weights to int8 (opt-in)")
    p.add_argument(
        "--check-data", default=str(DEFAULT_CHECK_DATA), help=".onnx: dataset whose first clips check it"
    )
    p.add_argument("--atol", type=float, default=1e-4, help=".onnx: largest accepted |logit difference|")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> Path:
    if args.out.suffix not in (".safetensors", ".onnx"):
        raise SystemExit(f"error: {args.out} should end in .safetensors or .onnx")
    config = args.model_config  # a file (a clovaai .conf too) is read by load_model
    if config is not None and not Path(config).is_file():
        try:
            config = parse_model_config(config)
        except ValueError as err:  # '{bad': a message, not a JSONDecodeError traceback
            raise SystemExit(f"error: {err}") from None
    model, info = load_model_or_exit(args.checkpoint, config=config)
    if args.out.suffix == ".onnx":
        return export_onnx_checked(model, args)
    path = save_checkpoint(args.out, model, info["calibration"], format="safetensors")
    print(f"{path} (+ {path.with_suffix('.json').name}): {info['arch']} from {info['source']} "
          f"({info['format']}), weights sha256 {weights_sha256(model)}")  # fmt: skip
    return path


def export_onnx_checked(model, args: argparse.Namespace) -> Path:
    """Write the ONNX graph to a temporary file, compare onnxruntime with PyTorch, then move it to OUT."""
    import antispoof.scoring.onnx_backend as ob

    policy = getattr(model, "default_policy", None)
    if policy is not None and policy.mode == "whole":
        raise SystemExit(
            f"error: {model.arch} scores whole files of any length; the ONNX export has a fixed input length "
            "(64,600 samples), so it is not offered for it yet. Export it as .safetensors instead."
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent) as tmp:
        path = Path(tmp) / "model.onnx"
        ob.write_onnx(model, path)
        if args.int8:
            ob.quantize_int8(path, Path(tmp) / "int8.onnx")
            path = Path(tmp) / "int8.onnx"
        diff = ob.max_logit_diff(model, path, ob.check_inputs(args.check_data))
        if not args.int8 and diff > args.atol:
            raise SystemExit(
                f"error: onnxruntime's logits differ from PyTorch's by {diff:.2e} (> --atol {args.atol:g}); "
                f"{args.out} not written. Report it with your torch and onnxruntime versions."
            )
        os.replace(path, args.out)
    kind = "int8 MatMul weights" if args.int8 else "float32"
    print(
        f"{args.out}: {model.arch} as ONNX ({args.out.stat().st_size / 2**20:.1f} MB, {kind}), waveform "
        f"(batch, 64600) -> logits (batch, 2), {ob.LABELS}; max |logit difference| vs PyTorch {diff:.1e}"
    )
    return args.out


if __name__ == "__main__":
    main(parse_args())
