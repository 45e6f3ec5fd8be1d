"""Constants every layer shares (the networks too, which import no audio code), and the command line's
choices, kept here so that `--help` needs no torch."""

import os

SAMPLE_RATE = 16000
NB_SAMP = 64600  # ~4.04 s: the fixed model input length of the reference
DEFAULT_HOP = NB_SAMP // 2  # window hop for long files: 50 % overlap

AMP_CHOICES = ("auto", "bf16", "fp16", "fp32")  # autocast: auto = bf16 on CUDA, fp32 elsewhere
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")  # what runs the model when scoring (onnx_backend.py)
SINGLE_RECORDING_PRIOR = 0.5  # P(fake) of one recording before the detector is heard (scoring/decision.py)


def default_workers(cores: int | None = None) -> int:
    """Decoding processes beside scoring: none on a machine of 2 cores or fewer, where a decoding process
    takes CPU from the model's two threads (measured with benchmark_scoring.py's `workers0` arm: on 2 cores
    in-process decoding scored AASIST 1.6x and full-size SSL-AASIST 1.08x as fast as 1 worker); else one
    core is left for the main process, at most 8."""
    cores = cores or os.cpu_count() or 1
    return 0 if cores <= 2 else loader_workers(cores)


def loader_workers(cores: int | None = None) -> int:
    """DataLoader processes for fine-tuning (decoding, cropping, RawBoost and codec augmentation run beside
    the training step): one core is left for the main process, at most 8."""
    cores = cores or os.cpu_count() or 1
    return max(0, min(8, cores - 1))
