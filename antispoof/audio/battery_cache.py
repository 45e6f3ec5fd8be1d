"""Conditioned audio on disk, computed once and shared: the stress test's and training's cache.

    done = prepare(paths, conditions, cache_dir, seed=0, workers=2)  # {(path, name): Prepared}
    path = cached_file(path, condition, cache_dir, seed)              # one file (training workers)

A conditioned file lives at CACHE/v<BATTERY_VERSION>/<condition>-<fingerprint>/<content sha256>.wav: the key
is the battery version, the condition with everything that determines its output (parameters, seed, the
ffmpeg version for codecs: `conditions.fingerprint`) and the source file's content, not its path, so a second
detector scored on the same files, or the same files elsewhere, reuses the audio. A file a condition cannot
be applied to keeps its reason in a `.err` file beside it, so the next run reports it without retrying.
Files are written to a temporary name and renamed, so parallel workers and runs never see half a file.

The audio is a 32-bit float WAV written here (no PEAK chunk with a timestamp, as libsndfile would add), so
the same condition, seed and input always give the same bytes, and levels above full scale (noise) survive.
"""

from __future__ import annotations

import os
import struct
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from antispoof.audio import battery as cond
from antispoof.audio.decode import SAMPLE_RATE, AudioError, load_audio


@dataclass(frozen=True)
class Prepared:
    """One (file, condition): the audio to score, or why there is none."""

    path: str | None  # the conditioned audio (the source file itself for "clean"); None when it failed
    reason: str = ""  # why it failed ("" when it did not)
    computed: bool = False  # True when made by this call, False when reused from the cache


def default_cache_dir() -> Path:
    """$ANTISPOOF_CACHE/conditions, else $XDG_CACHE_HOME/antispoof/conditions (~/.cache by default)."""
    if os.environ.get("ANTISPOOF_CACHE"):
        return Path(os.environ["ANTISPOOF_CACHE"]) / "conditions"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "antispoof" / "conditions"


def cache_path(
    cache_dir: str | os.PathLike, condition: cond.Condition, seed: int, content_sha256: str
) -> Path:
    folder = f"{condition.name}-{cond.fingerprint(condition, seed)}"
    return Path(cache_dir) / f"v{cond.BATTERY_VERSION}" / folder / f"{content_sha256}.wav"


def prepare(
    paths: list[str],
    conditions: list[cond.Condition],
    cache_dir: str | os.PathLike,
    *,
    seed: int = 0,
    workers: int = 0,
) -> dict[tuple[str, str], Prepared]:
    """Every condition applied to every file, through the cache; {(path, condition name): Prepared}.

    One job per file (the file is decoded once for all its conditions), spread over `workers` processes
    (0 = in this process). A file that cannot be decoded gets the decoder's reason under every condition.
    """
    jobs = [(p, conditions, str(cache_dir), seed) for p in paths]
    if workers > 0 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_prepare_file, *zip(*jobs, strict=True), chunksize=1))
    else:
        results = [_prepare_file(*job) for job in jobs]
    return {
        (p, name): done for p, by_name in zip(paths, results, strict=True) for name, done in by_name.items()
    }


def _prepare_file(
    path: str, conditions: list[cond.Condition], cache_dir: str, seed: int
) -> dict[str, Prepared]:
    out: dict[str, Prepared] = {}
    try:
        sha = cond.file_sha256(path)
    except OSError as err:
        return {c.name: Prepared(None, f"cannot read the file: {err.strerror or err}") for c in conditions}
    audio: np.ndarray | None = None
    for c in conditions:
        if c.kind == "clean":  # the file as it is: scored exactly as evaluate_custom.py scores it
            out[c.name] = Prepared(path)
            continue
        target = cache_path(cache_dir, c, seed, sha)
        if target.exists():
            out[c.name] = Prepared(str(target))
            continue
        if target.with_suffix(".err").exists():
            out[c.name] = Prepared(None, target.with_suffix(".err").read_text(encoding="utf-8"))
            continue
        try:
            if audio is None:
                audio = load_audio(path)
            y = cond.apply(c, audio, cond.seed_for(seed, c.name, sha))
        except AudioError as err:  # ConditionError included: the file's row says why
            _atomic_write(target.with_suffix(".err"), str(err).encode())
            out[c.name] = Prepared(None, str(err), computed=True)
            continue
        _atomic_write(target, float_wav_bytes(y))
        out[c.name] = Prepared(str(target), computed=True)
    return out


def cached_file(
    path: str, condition: cond.Condition, cache_dir: str | os.PathLike, seed: int = 0
) -> Prepared:
    """One file under one condition, through the cache (what a training worker asks for)."""
    return _prepare_file(str(path), [condition], str(cache_dir), seed)[condition.name]


def float_wav_bytes(x: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A mono 32-bit IEEE float WAV of `x` (RIFF, fmt format 3, fact, data): nothing time-dependent."""
    data = np.asarray(x, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    fact = struct.pack("<I", len(x))
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<I", 4) + fact
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _atomic_write(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
