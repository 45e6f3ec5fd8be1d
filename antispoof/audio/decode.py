"""Audio loading shared by every script: any common file -> 16 kHz mono float32, plus fixed-length cuts.

Decoding policy (what `load_audio` does, in order):

1. `soundfile` (libsndfile: wav, flac, ogg/vorbis/opus, mp3, aiff, ...) reads the file as float32. A format
   libsndfile does not know (m4a/aac, wma, webm, ...) falls back to `audioread` (ffmpeg), 16-bit PCM.
2. Several channels are downmixed by their mean; any other sample rate is resampled to 16 kHz with soxr
   (quality "HQ", output length ceil(n * 16000 / sr)). This is what `librosa.load(path, sr=16000)`, the
   reference's loader, returns, sample for sample.
3. No amplitude normalization (the reference feeds the raw waveform).

A file is rejected with an `AudioError` whose message is the per-file reason when it is missing, empty,
undecodable, truncated or corrupt (decoding stops before the length its header declares: such a file is
*rejected*, never scored from its decodable prefix, so a damaged file cannot pass as a complete one; for WAV,
whose reader silently stops at the end of the file, the data chunk's declared size is checked), shorter
than `MIN_DURATION_S` (0.1 s: less than that holds no speech, and tiling it to 4 s makes a buzz), or holds
NaN/inf samples. A WAV whose header leaves the length unset (0 or 0xFFFFFFFF: streamed by a writer that
could not seek back) is read to its end with a note (`AudioInfo.note`). Silence is accepted (the model's
score stays finite); callers may flag it with `is_silent`.

Huge files are capped: at most `MAX_DURATION_S` (600 s) is decoded, so memory and time stay bounded;
`AudioInfo.capped` says when that happened (the scorer writes it into the file's note). The model itself
sees `NB_SAMP` samples per window: the head of the file by default (`pad_or_crop`, the reference's rule),
or overlapping windows (`windows`).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from antispoof.constants import DEFAULT_HOP, NB_SAMP, SAMPLE_RATE  # noqa: F401  (re-exported)

MIN_DURATION_S = 0.1  # shorter files are rejected as "too short"
MAX_DURATION_S = 600.0  # at most this much of a file is decoded (the rest is ignored, with a note)


class AudioError(Exception):
    """A file that cannot be used; the message is the per-file reason shown to the user."""


@dataclass
class AudioInfo:
    """How long the file is and how much of it `load_audio` returned."""

    duration_s: float  # the whole file, as far as known (header or decoded length)
    loaded_s: float  # the returned audio
    note: str = ""  # something the user should know about how the file was read (e.g. a streamed WAV)

    @property
    def capped(self) -> bool:
        """True when only the head of the file was decoded (`max_duration` was reached)."""
        return self.duration_s > self.loaded_s + 1 / SAMPLE_RATE


def load_audio(
    path: str | os.PathLike,
    *,
    max_duration: float | None = MAX_DURATION_S,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, AudioInfo]:
    """Decode `path` to float32 mono at `SAMPLE_RATE`; raise `AudioError` with the reason if it is unusable.

    At most `max_duration` seconds are decoded (None = all): pass `NB_SAMP / SAMPLE_RATE` when only the head
    is needed. With `return_info`, also return an `AudioInfo` (full and loaded duration).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError("file not found")
    if path.is_dir():
        raise AudioError("is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")

    note = ""
    try:
        x, sr, declared_s = _read_soundfile(path, max_duration)
        note = _check_wav_length(path)
    except _UnknownFormatError:
        x, sr, declared_s = _read_audioread(path, max_duration)

    mono = _model_audio(x, sr, max_duration)
    loaded_s = len(mono) / SAMPLE_RATE
    if return_info:
        return mono, AudioInfo(duration_s=max(declared_s, loaded_s), loaded_s=loaded_s, note=note)
    return mono


def audio_from_array(
    x: np.ndarray, sample_rate: int, *, max_duration: float | None = MAX_DURATION_S
) -> tuple[np.ndarray, AudioInfo]:
    """An in-memory waveform as `load_audio` returns a file: float32 mono at `SAMPLE_RATE`, with its
    `AudioInfo`. `x`: (samples,) or (samples, channels), float (not rescaled) or integer PCM (scaled to
    [-1, 1) as soundfile reads it); the same checks as a file (AudioError: empty, NaN/inf, too short)."""
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise AudioError(f"a waveform is (samples,) or (samples, channels), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / np.float32(-np.iinfo(x.dtype).min)
    x = x.reshape(len(x), -1).astype(np.float32, copy=False)
    mono = _model_audio(x, int(sample_rate), max_duration)
    loaded_s = len(mono) / SAMPLE_RATE
    return mono, AudioInfo(duration_s=max(len(x) / sample_rate, loaded_s), loaded_s=loaded_s)


def _model_audio(x: np.ndarray, sr: int, max_duration: float | None) -> np.ndarray:
    """Decoded samples (n, channels) at `sr` -> what the models read: float32 mono at SAMPLE_RATE, at most
    `max_duration` s; AudioError when empty, not finite or too short."""
    if x.shape[0] == 0:
        raise AudioError("no audio samples (empty stream)")
    if not np.isfinite(x).all():
        raise AudioError("corrupt samples (NaN or inf in the decoded audio)")
    mono = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    if sr != SAMPLE_RATE:
        mono = resample(mono, sr)
    if max_duration is not None:
        mono = mono[: math.ceil(max_duration * SAMPLE_RATE)]
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    loaded_s = len(mono) / SAMPLE_RATE
    if loaded_s < MIN_DURATION_S:
        raise AudioError(f"too short: {loaded_s:.3f} s (minimum {MIN_DURATION_S} s)")
    return mono


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    """Resample mono `x` from `sr` to `SAMPLE_RATE` with soxr HQ, length ceil(n * ratio) as librosa does."""
    y = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    n_out = math.ceil(len(x) * SAMPLE_RATE / sr)
    if len(y) < n_out:
        y = np.pad(y, (0, n_out - len(y)))
    return y[:n_out]


def is_silent(x: np.ndarray) -> bool:
    """True for digital silence (every sample zero)."""
    return not np.any(x)


def pad_or_crop(x: np.ndarray, n: int = NB_SAMP) -> np.ndarray:
    """The reference's fixed-length rule: keep the first `n` samples; shorter audio is tiled to `n`."""
    if len(x) >= n:
        return x[:n]
    reps = n // len(x) + 1
    return np.tile(x, reps)[:n]


def windows(x: np.ndarray, n: int = NB_SAMP, hop: int = DEFAULT_HOP) -> tuple[np.ndarray, np.ndarray]:
    """Cut `x` into overlapping windows of `n` samples every `hop` samples.

    Returns (windows (W, n) float32, start times in seconds (W,)). Audio of at most `n` samples gives one
    window (`pad_or_crop`); otherwise the windows start at 0, hop, 2*hop, ... and, when the last one would
    stop short of the end, one more window ends exactly at the end, so every sample is covered and no window
    is padded.
    """
    if hop <= 0:
        raise ValueError(f"hop must be positive, got {hop}")
    if len(x) <= n:
        return pad_or_crop(x, n)[None, :], np.zeros(1)
    starts = list(range(0, len(x) - n + 1, hop))
    if starts[-1] + n < len(x):
        starts.append(len(x) - n)
    stacked = np.stack([x[s : s + n] for s in starts])
    return stacked, np.asarray(starts, dtype=np.float64) / SAMPLE_RATE


SILENCE_TOP_DB = 40.0  # a 10 ms frame this far below the file's loudest frame counts as silence
_FRAME = SAMPLE_RATE // 100  # 10 ms at 16 kHz


# What `describe` tells of a file, in this order (the analysis report's attributes.csv columns).
DESCRIBE_KEYS = (
    "container",
    "codec",
    "sample_rate",
    "channels",
    "duration_s",
    "loudness_dbfs",
    "lead_silence_s",
    "trail_silence_s",
    "error",
)


def describe(path: str | os.PathLike) -> dict:
    """What a file is, read from the file itself (for the analysis report's breakdowns and confound check).

    Keys: container ("flac", "wav", "mp3", "ogg", ...), codec ("pcm_16", "mpeg_layer_iii", "vorbis", "aac",
    ...), sample_rate and channels (native, from the header), duration_s, loudness_dbfs (RMS level of the
    16 kHz mono signal `load_audio` gives the model; a full-scale square wave is 0 dBFS, digital silence
    -120), lead_silence_s / trail_silence_s (10 ms frames more than `SILENCE_TOP_DB` below the loudest frame,
    at the start / end), and error (None, or why the file could not be read: then only what the header
    told is filled, the rest is None). Never raises for a bad file.
    """
    path = Path(path)
    out = dict.fromkeys(DESCRIBE_KEYS)
    try:
        info = sf.info(os.fsencode(path))  # by its bytes: any name the filesystem allows
        out.update(
            container=info.format.lower(),
            codec=info.subtype.lower(),
            sample_rate=info.samplerate,
            channels=info.channels,
            duration_s=info.frames / max(info.samplerate, 1),
        )
    except Exception:  # noqa: BLE001 - libsndfile does not know it (m4a, ...) or cannot read it: ask ffprobe
        out.update(_ffprobe(path))
    try:
        x, meta = load_audio(path, return_info=True)
    except AudioError as err:
        out["error"] = str(err)
        return out
    except Exception as err:  # noqa: BLE001 - one odd file must not end an analysis of thousands
        out["error"] = f"unexpected error while decoding: {type(err).__name__}: {err}"
        return out
    out["duration_s"] = meta.duration_s
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    out["loudness_dbfs"] = max(-120.0, 20 * math.log10(rms)) if rms > 0 else -120.0
    n = len(x) // _FRAME
    frames = x[: n * _FRAME].reshape(n, _FRAME).astype(np.float64)  # (frames, 160)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)  # dB per 10 ms frame
    loud = np.flatnonzero(level > level.max() - SILENCE_TOP_DB) if rms > 0 else np.zeros(0, dtype=int)
    if len(loud) == 0:  # digital silence: all of it is silence
        out["lead_silence_s"] = out["trail_silence_s"] = len(x) / SAMPLE_RATE
    else:
        out["lead_silence_s"] = float(loud[0] * _FRAME / SAMPLE_RATE)
        out["trail_silence_s"] = float((len(x) - (loud[-1] + 1) * _FRAME) / SAMPLE_RATE)
    return out


def _ffprobe(path: Path) -> dict:
    """Container, codec, rate, channels and duration from ffprobe; the extension alone if it is missing."""
    import json
    import subprocess

    out = {"container": path.suffix.lower().lstrip(".") or None}
    cmd = [
        "ffprobe",
        "-v",
        "error",
        "-select_streams",
        "a:0",
        "-print_format",
        "json",
        "-show_entries",
        "format=format_name,duration:stream=codec_name,sample_rate,channels",
        str(path),
    ]
    try:
        probe = json.loads(subprocess.run(cmd, capture_output=True, timeout=60, check=True).stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return out
    names = probe.get("format", {}).get("format_name", "").split(",")
    if out["container"] not in names:  # "mov,mp4,m4a,3gp,3g2,mj2": keep the extension when it is one of them
        out["container"] = names[0] or out["container"]
    stream = (probe.get("streams") or [{}])[0]
    out.update(codec=stream.get("codec_name"), channels=stream.get("channels"))
    with contextlib.suppress(TypeError, ValueError):
        out["sample_rate"] = int(stream["sample_rate"])
    with contextlib.suppress(KeyError, TypeError, ValueError):
        out["duration_s"] = float(probe["format"]["duration"])
    return out


class _UnknownFormatError(Exception):
    """libsndfile does not recognise the container: try the ffmpeg-based fallback."""


def _read_soundfile(path: Path, max_duration: float | None) -> tuple[np.ndarray, int, float]:
    """(frames (N, C) float32, native rate, declared duration in s) via libsndfile."""
    source = _wav_source(path)
    try:
        info = sf.info(source)
    except sf.LibsndfileError as err:
        raise _UnknownFormatError from err
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError("no audio samples (header declares 0 frames)")
    frames = -1 if max_duration is None else _native_frames(max_duration, info.samplerate)
    try:
        if isinstance(source, io.BytesIO):
            source.seek(0)  # sf.info read it
        x, sr = sf.read(source, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        declared = info.frames / info.samplerate
        reason = str(err).splitlines()[0].removeprefix("Error : ").strip()
        raise AudioError(
            f"truncated or corrupt: decoding failed ({reason}); the header declares {declared:.2f} s"
        ) from err
    expected = info.frames if frames < 0 else min(frames, info.frames)
    if len(x) < expected - sr // 100:
        raise AudioError(
            f"truncated or corrupt: decoded {len(x) / sr:.2f} s but the header declares "
            f"{info.frames / sr:.2f} s"
        )
    return x, sr, info.frames / info.samplerate


_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what writers that cannot seek back (pipes, live capture) leave


def _wav_data_chunk(path: Path) -> tuple[int, int, int, int, int] | None:
    """(offset of the data chunk's size field, that size, bytes the file holds after it, block align, rate)
    of a RIFF/WAVE file; None for other files or a WAV without a data chunk."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        file_size = os.fstat(f.fileno()).st_size
        block_align, rate = 0, 0
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None  # no data chunk: libsndfile has already refused such a file
            chunk_id, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if chunk_id == b"fmt " and size >= 16:
                fmt = f.read(16)
                rate, block_align = int.from_bytes(fmt[4:8], "little"), int.from_bytes(fmt[12:14], "little")
                f.seek(size - 16 + size % 2, os.SEEK_CUR)
            elif chunk_id == b"data":
                return f.tell() - 4, size, file_size - f.tell(), block_align, rate
            else:
                f.seek(size + size % 2, os.SEEK_CUR)  # chunks are padded to an even size


def _wav_source(path: Path) -> str | bytes | io.BytesIO:
    """What libsndfile should read for `path`: the file itself, or, for a WAV whose data size field is 0
    (a streaming writer that never went back to fill it in) but which holds audio after it, the file in
    memory with that field set to the whole frames it holds. libsndfile reads 0 frames from such a file
    (0xFFFFFFFF it already reads to the end)."""
    chunk = _wav_data_chunk(path)
    if chunk is None or chunk[1] != 0 or chunk[2] < max(chunk[3], 1):
        return os.fsencode(path)
    offset, _, held, block_align, _ = chunk
    data = bytearray(path.read_bytes())
    data[offset : offset + 4] = (held - held % max(block_align, 1)).to_bytes(4, "little")
    return io.BytesIO(bytes(data))


def _check_wav_length(path: Path) -> str:
    """Compare a RIFF/WAVE file's declared data length with the bytes it holds.

    libsndfile quietly reads what is there when a WAV's data chunk is shorter than its header says (a cut
    download, a header claiming 4 GB), so the file would be scored as if complete. A data chunk that ends
    early raises AudioError ("truncated or corrupt", as for any other format); a size field of 0 or
    0xFFFFFFFF (a streamed WAV whose writer never knew the length) returns a note instead. Other files: "".
    """
    chunk = _wav_data_chunk(path)
    if chunk is None:
        return ""
    _, size, held, block_align, rate = chunk
    bytes_per_s = block_align * rate
    if size in _WAV_UNKNOWN_SIZES:
        return "WAV header without the audio length (a streamed recording?): scored what the file holds"
    if bytes_per_s > 0 and size - held >= max(block_align, 1):  # less than one frame short is padding
        raise AudioError(
            f"truncated or corrupt: the WAV header declares {size / bytes_per_s:.2f} s of audio but the file "
            f"holds {held / bytes_per_s:.2f} s"
        )
    return ""


def _read_audioread(path: Path, max_duration: float | None) -> tuple[np.ndarray, int, float]:
    """(frames (N, C) float32, native rate, declared duration in s) via audioread (ffmpeg), 16-bit PCM."""
    with warnings.catch_warnings():  # audioread's backends import aifc/audioop/sunau, deprecated in 3.11+
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioread  # a librosa dependency; imported here because most files never need it

        backends = audioread.available_backends()

    try:
        with audioread.audio_open(str(path), backends=backends) as f:
            sr, channels, declared = f.samplerate, f.channels, float(f.duration or 0.0)
            limit = None if max_duration is None else _native_frames(max_duration, sr) * channels
            chunks, n = [], 0
            for buf in f:
                chunk = np.frombuffer(buf, dtype="<i2")
                chunks.append(chunk)
                n += len(chunk)
                if limit is not None and n >= limit:
                    break
    except (audioread.NoBackendError, EOFError) as err:
        raise AudioError(f"not a decodable audio file ({path.suffix or 'no extension'})") from err
    except Exception as err:  # noqa: BLE001 - ffmpeg failures surface as several exception types
        raise AudioError(f"decoding failed: {type(err).__name__}: {err}".strip()) from err
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype="<i2")
    pcm = pcm[: len(pcm) - len(pcm) % channels]
    if limit is not None:
        pcm = pcm[:limit]
    x = (pcm.astype(np.float32) / 32768.0).reshape(-1, channels)
    decoded = len(x) / sr
    complete = limit is not None and len(pcm) >= limit
    # ffmpeg reports the header duration rounded to 0.1 s: allow that much (and codec priming) of slack.
    if not complete and declared > 0 and decoded < 0.95 * declared - 0.2:
        raise AudioError(
            f"truncated or corrupt: decoded {decoded:.2f} s but the header declares {declared:.2f} s"
        )
    return x, sr, max(declared, decoded)


def _native_frames(seconds: float, sr: int) -> int:
    """Native-rate frames to read for `seconds` of output (+ 50 ms so the resampler sees past the end)."""
    return int(math.ceil(seconds * sr)) + (0 if sr == SAMPLE_RATE else sr // 20)
