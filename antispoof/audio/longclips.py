"""A labelled set of long clips made from short ones, to judge how a file-level answer is formed from windows.

    items = build_long_clips("data/sample", "runs/long_clips")   # writes WAVs + labels.csv, returns Items

A person checking one recording hands over the whole of it, often longer than the 4.04 s a reference model
sees, and a fake may be only part of it. Three kinds of clip, each `n_per_kind` times, from the real/ and
fake/ files of a folder layout (the bundled sample: LibriSpeech readers and espeak-ng voices):
- "real_concat" (label real): 3 to 4 real utterances joined;
- "fake_concat" (label fake): 3 to 4 fake utterances joined;
- "spliced" (label fake, as in PartialSpoof): real utterances filling at least the first 4.04 s, one fake
  utterance, then one more real utterance: a fake that the reference's first 4.04 s never hears.
Utterances are joined with 0.2 s of silence (LibriSpeech and espeak-ng alike are trimmed), at 16 kHz, as
16-bit WAV. labels.csv (path,label,group,fake_start_s,fake_end_s; paths relative to it) is the CSV layout
evaluate_custom.py and score.py read; a spliced clip's fake span says where a file-level answer should point.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from antispoof.audio.datasets import Item, walk_files
from antispoof.audio.decode import SAMPLE_RATE, load_audio
from antispoof.constants import NB_SAMP

GAP_S = 0.2
KINDS = ("real_concat", "fake_concat", "spliced")


def _utterances(folder: Path) -> list[np.ndarray]:
    files = sorted(f for f in walk_files(folder) if f.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise FileNotFoundError(f"no .wav or .flac files under {folder}")
    return [load_audio(f) for f in files]


def _join(parts: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """The parts with GAP_S of silence between them, and each part's start in seconds."""
    gap = np.zeros(round(GAP_S * SAMPLE_RATE), dtype=np.float32)
    out, starts, t = [], [], 0
    for i, part in enumerate(parts):
        if i:
            out.append(gap)
            t += len(gap)
        starts.append(t / SAMPLE_RATE)
        out.append(part)
        t += len(part)
    return np.concatenate(out), starts


def _spliced(real: list[np.ndarray], fake: np.ndarray, rng) -> tuple[np.ndarray, float, float]:
    """Real speech covering the first NB_SAMP samples (plus a margin), one fake utterance, one real one."""
    head: list[np.ndarray] = []
    while sum(map(len, head)) + GAP_S * SAMPLE_RATE * len(head) < NB_SAMP + 0.25 * SAMPLE_RATE:
        head.append(real[rng.integers(len(real))])
    tail = real[rng.integers(len(real))]
    x, starts = _join([*head, fake, tail])
    fake_start = starts[len(head)]
    return x, fake_start, fake_start + len(fake) / SAMPLE_RATE


def build_long_clips(
    source: str | os.PathLike, out_dir: str | os.PathLike, n_per_kind: int = 10, seed: int = 0
) -> list[Item]:
    """Write the clips and OUT_DIR/labels.csv; returns them as Items (group = the kind of clip)."""
    source, out_dir = Path(source), Path(out_dir)
    real, fake = _utterances(source / "real"), _utterances(source / "fake")
    rng = np.random.default_rng(seed)
    rows = []
    for kind in KINDS:
        for i in range(n_per_kind):
            span = ("", "")
            if kind == "spliced":
                x, start, end = _spliced(real, fake[rng.integers(len(fake))], rng)
                span = (f"{start:.3f}", f"{end:.3f}")
            else:
                pool = real if kind == "real_concat" else fake
                picks = rng.choice(len(pool), size=int(rng.integers(3, 5)), replace=False)
                x, _ = _join([pool[j] for j in picks])
            path = out_dir / kind / f"{kind}_{i:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, x, SAMPLE_RATE, subtype="PCM_16")
            label = "real" if kind == "real_concat" else "fake"
            rel = path.relative_to(out_dir).as_posix()
            rows.append(
                {"path": rel, "label": label, "group": kind, "fake_start_s": span[0], "fake_end_s": span[1]}
            )
    with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return [Item(str(out_dir / r["path"]), r["label"], r["group"]) for r in rows]
