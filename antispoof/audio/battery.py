"""The condition battery of the robustness stress test: what a recording goes through on a user's channel.

    battery = default_battery()            # named, versioned: BATTERY_NAME, BATTERY_VERSION
    usable, skipped = available(battery)    # a condition whose encoder is missing: {name: reason}
    y = apply(condition, x, seed)           # 16 kHz mono float32 in and out

Every condition takes 16 kHz mono float32 audio (what `decode.load_audio` returns) and gives 16 kHz mono
float32 audio back:
- codec: an ffmpeg round trip (encode at the given bit rate, decode, back to 16 kHz with soxr as
  `load_audio` resamples). The codec's own delay handling is kept (no re-alignment or trimming), so a file
  may come back a fraction of a codec frame longer, as a player would play it;
- telephone: band-limited to 300-3400 Hz at 8 kHz, coded with G.711 mu-law or GSM 06.10, back to 16 kHz (no
  energy above 4 kHz); G.722 is the wideband (16 kHz, 64 kbit/s) VoIP codec;
- noise: white or speech-shaped noise (or a file of `--noise DIR`) at an SNR, the ratio of the mean squares
  over the whole clip (pauses included);
- reverb: a seeded synthetic room impulse response (exponentially decaying noise of the given RT60 after a
  direct path; direct-to-reverberant ratio 0 dB), the output scaled back to the input's RMS so that only the
  reverberation changes;
- gain (-20 dB), clipping (the peak driven 12 dB over full scale, then clipped to +-1), and leading/trailing
  silence (1 s of digital silence added at each end, or the silence below -40 dB of the peak trimmed).
The output is float32 and never clipped unless the condition says so (noise can push peaks above 1).

Conditions are deterministic: randomness comes from `seed` only (`seed_for` derives one per condition and
file content), and ffmpeg runs single-threaded with bit-exact flags; `fingerprint` names everything that
determines a condition's output (battery version, parameters, seed, the ffmpeg version for codecs), which is
how the cache (`battery_cache.py`) keys its files.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from antispoof.audio.decode import SAMPLE_RATE, AudioError, load_audio, resample
from antispoof.utils import json_text

BATTERY_NAME = "default"
# Bump when any condition's parameters or processing change: cached audio of another version is never reused.
BATTERY_VERSION = 1
FAMILIES = ("clean", "codec", "telephone", "noise", "reverb", "gain", "silence")
SNRS_DB = (20, 10, 5)
TELEPHONE_RATE = 8000
TELEPHONE_BAND_HZ = (300, 3400)  # the ITU-T narrowband telephone channel
FFMPEG_TIMEOUT_S = 120


class ConditionError(AudioError):
    """A condition that cannot be applied to this audio (the message is the per-file reason)."""


@dataclass(frozen=True)
class Condition:
    """One named transformation of the battery.

    `kind` selects the processing ("clean", "ffmpeg", "noise", "reverb", "gain", "clip", "pad", "trim");
    `params` are its parameters (all recorded, all in the fingerprint); `encoder` is the ffmpeg encoder a
    codec needs (None for the rest).
    """

    name: str
    family: str
    kind: str
    description: str
    params: dict = field(default_factory=dict)
    encoder: str | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "params": self.params,
            "encoder": self.encoder,
        }


def _codec(name: str, encoder: str, description: str, args: list[str], container: str, **params) -> Condition:
    family = "telephone" if params.get("rate") == TELEPHONE_RATE or encoder == "g722" else "codec"
    params = {"encoder_args": args, "container": container, "rate": SAMPLE_RATE, **params}
    return Condition(name, family, "ffmpeg", description, params, encoder)


def default_battery(noise_dir: str | os.PathLike | None = None) -> list[Condition]:
    """The default battery (BATTERY_VERSION); with `noise_dir`, three more conditions mix its files in."""
    clean = Condition(
        "clean", "clean", "clean", "the files as they are (the reference the others are compared to)"
    )
    return [clean, *codec_conditions(), *noise_conditions(noise_dir), *room_level_silence_conditions()]


def codec_conditions() -> list[Condition]:
    """Codecs at the bit rates of streaming, VoIP and voice notes, and telephone channels."""
    band = list(TELEPHONE_BAND_HZ)
    return [
        _codec("mp3_32k", "libmp3lame", "MP3 (LAME) at 32 kbit/s", ["-b:a", "32k"], "mp3"),
        _codec("mp3_64k", "libmp3lame", "MP3 (LAME) at 64 kbit/s", ["-b:a", "64k"], "mp3"),
        _codec("mp3_128k", "libmp3lame", "MP3 (LAME) at 128 kbit/s", ["-b:a", "128k"], "mp3"),
        _codec("aac_64k", "aac", "AAC-LC (ffmpeg's encoder) at 64 kbit/s in M4A", ["-b:a", "64k"], "ipod"),
        _codec(
            "opus_12k",
            "libopus",
            "Opus at 12 kbit/s, VoIP mode (calls, voice notes)",
            ["-b:a", "12k", "-application", "voip"],
            "ogg",
        ),
        _codec(
            "opus_24k",
            "libopus",
            "Opus at 24 kbit/s, VoIP mode (calls, voice notes)",
            ["-b:a", "24k", "-application", "voip"],
            "ogg",
        ),
        _codec("vorbis_32k", "libvorbis", "Ogg Vorbis at 32 kbit/s", ["-b:a", "32k"], "ogg"),
        _codec(
            "tel_mulaw",
            "pcm_mulaw",
            "telephone: 300-3400 Hz at 8 kHz, G.711 mu-law (64 kbit/s)",
            [],
            "wav",
            rate=TELEPHONE_RATE,
            band_hz=band,
        ),
        _codec(
            "tel_gsm",
            "libgsm_ms",
            "telephone: 300-3400 Hz at 8 kHz, GSM 06.10 full rate (13 kbit/s)",
            [],
            "wav",
            rate=TELEPHONE_RATE,
            band_hz=band,
        ),
        _codec("voip_g722", "g722", "wideband VoIP: G.722 at 16 kHz (64 kbit/s)", [], "g722"),
    ]


def noise_conditions(noise_dir: str | os.PathLike | None) -> list[Condition]:
    """White and speech-shaped noise at each SNR (seeded), and the files of `noise_dir` if given."""
    battery = []
    for color in ("white", "speech"):
        for snr in SNRS_DB:
            what = "white noise" if color == "white" else "speech-shaped noise"
            battery.append(
                Condition(
                    f"{color}_snr{snr}",
                    "noise",
                    "noise",
                    f"{what} at {snr} dB SNR",
                    {"noise": color, "snr_db": snr},
                )
            )
    if noise_dir is not None:
        files = noise_files(noise_dir)
        digest = hashlib.sha256(b"".join(file_sha256(f).encode() for f in files)).hexdigest()[:16]
        for snr in SNRS_DB:
            battery.append(
                Condition(
                    f"user_snr{snr}",
                    "noise",
                    "noise",
                    f"noise from {noise_dir} ({len(files)} files) at {snr} dB SNR",
                    {
                        "noise": "files",
                        "snr_db": snr,
                        "files": [str(f) for f in files],
                        "files_sha256": digest,
                    },
                )
            )
    return battery


def room_level_silence_conditions() -> list[Condition]:
    """Reverberation (synthetic rooms), level changes and leading/trailing silence changes."""
    return [
        Condition("reverb_rt03", "reverb", "reverb", "synthetic room, RT60 0.3 s (office)", {"rt60_s": 0.3}),
        Condition("reverb_rt08", "reverb", "reverb", "synthetic room, RT60 0.8 s (hall)", {"rt60_s": 0.8}),
        Condition("gain_m20db", "gain", "gain", "20 dB quieter", {"gain_db": -20.0}),
        Condition(
            "clipping", "gain", "clip", "peak driven 12 dB over full scale, clipped to +-1", {"over_db": 12.0}
        ),
        Condition(
            "silence_pad", "silence", "pad", "1 s of digital silence added before and after", {"seconds": 1.0}
        ),
        Condition(
            "silence_trim",
            "silence",
            "trim",
            "leading/trailing audio below -40 dB of the peak cut",
            {"top_db": 40.0},
        ),
    ]


def select(battery: list[Condition], names: list[str] | None) -> list[Condition]:
    """The conditions named (a family name selects the whole family); "clean" is always kept first."""
    if not names:
        return battery
    known = {c.name for c in battery} | set(FAMILIES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [c for c in battery if c.name == "clean" or c.name in names or c.family in names]


# ---------------------------------------------------------------------------------------------------------
# ffmpeg: which encoders this build has, and its version (recorded: codecs change between versions)


@functools.cache
def ffmpeg_info(ffmpeg: str = "ffmpeg") -> tuple[str | None, frozenset[str]]:
    """(the `ffmpeg -version` line, the names of its audio encoders); (None, {}) when ffmpeg is missing."""
    exe = shutil.which(ffmpeg)
    if exe is None:
        return None, frozenset()
    version = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stdout
    listing = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    names = set()
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0].startswith("A"):
            names.add(parts[1])
    return (version.splitlines() or ["ffmpeg (unknown version)"])[0], frozenset(names)


def available(battery: list[Condition], ffmpeg: str = "ffmpeg") -> tuple[list[Condition], dict[str, str]]:
    """(the conditions this machine can apply, {name: why another one is skipped})."""
    version, encoders = ffmpeg_info(ffmpeg)
    usable, skipped = [], {}
    for c in battery:
        if c.encoder is None:
            usable.append(c)
        elif version is None:
            skipped[c.name] = f"{ffmpeg} not found on PATH (install ffmpeg to run the codec conditions)"
        elif c.encoder not in encoders:
            skipped[c.name] = f"this ffmpeg has no '{c.encoder}' encoder ({version})"
        else:
            usable.append(c)
    return usable, skipped


def fingerprint(condition: Condition, seed: int, ffmpeg: str = "ffmpeg") -> str:
    """A short hash of everything that determines the condition's output, except the input audio."""
    spec = {"battery": BATTERY_VERSION, **condition.as_dict(), "seed": seed}
    if condition.kind == "ffmpeg":
        spec["ffmpeg"] = ffmpeg_info(ffmpeg)[0]
    return hashlib.sha256(json_text(spec, indent=None).encode()).hexdigest()[:12]


def seed_for(seed: int, condition: str, content_sha256: str) -> int:
    """The seed of one condition applied to one file: different files get independent noise and rooms."""
    digest = hashlib.sha256(f"{seed}|{condition}|{content_sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


# ---------------------------------------------------------------------------------------------------------
# Applying a condition


def apply(condition: Condition, x: np.ndarray, seed: int, ffmpeg: str = "ffmpeg") -> np.ndarray:
    """`condition` applied to `x` (16 kHz mono float32); ConditionError with the reason if it cannot be."""
    x = np.asarray(x, dtype=np.float32)
    p, rng = condition.params, np.random.default_rng(seed)
    kind = condition.kind
    if kind == "clean":
        y = x
    elif kind == "ffmpeg":
        y = codec_round_trip(x, condition, ffmpeg)
    elif kind == "noise":
        y = add_noise(x, _noise(p, len(x), rng), p["snr_db"])
    elif kind == "reverb":
        y = reverberate(x, room_impulse_response(p["rt60_s"], rng))
    elif kind == "gain":
        y = x * np.float32(10 ** (p["gain_db"] / 20))
    elif kind == "clip":
        y = np.clip(x * (10 ** (p["over_db"] / 20) / _peak(x)), -1.0, 1.0)
    elif kind == "pad":
        pad = np.zeros(round(p["seconds"] * SAMPLE_RATE), dtype=np.float32)
        y = np.concatenate([pad, x, pad])
    elif kind == "trim":
        y = trim_silence(x, p["top_db"])
    else:
        raise ValueError(f"unknown condition kind {kind!r}")
    return np.ascontiguousarray(y, dtype=np.float32)


def codec_round_trip(x: np.ndarray, condition: Condition, ffmpeg: str = "ffmpeg") -> np.ndarray:
    """Encode `x` with the condition's ffmpeg encoder and decode it again, at 16 kHz.

    The telephone conditions first band-limit to `band_hz` at 8 kHz (4th-order Butterworth band-pass after
    soxr's anti-aliased resampling), so the coded signal has no energy above 4 kHz.
    """
    p = condition.params
    rate = p["rate"]
    if rate != SAMPLE_RATE:
        x = _resample(x, SAMPLE_RATE, rate)
    if p.get("band_hz"):
        sos = signal.butter(4, p["band_hz"], btype="bandpass", fs=rate, output="sos")
        x = signal.sosfilt(sos, x).astype(np.float32)
    quiet = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-threads", "1"]
    exact = ["-fflags", "+bitexact", "-flags:a", "+bitexact"]  # no version strings or timestamps in the file
    with tempfile.TemporaryDirectory(prefix="antispoof-codec-") as tmp:
        source, coded, decoded = (
            Path(tmp, "in.wav"),
            Path(tmp, f"coded.{p['container']}"),
            Path(tmp, "out.wav"),
        )
        sf.write(source, x, rate, subtype="FLOAT")
        encode = [
            ffmpeg,
            *quiet,
            "-i",
            str(source),
            *exact,
            "-c:a",
            condition.encoder,
            *p["encoder_args"],
            "-f",
            p["container"],
            str(coded),
        ]
        _run(encode, condition, "encode")
        _run(
            [ffmpeg, *quiet, "-i", str(coded), "-f", "wav", "-c:a", "pcm_f32le", str(decoded)],
            condition,
            "decode",
        )
        y, sr = sf.read(decoded, dtype="float32", always_2d=True)
    if y.shape[0] == 0:
        raise ConditionError(f"{condition.name}: the codec returned no audio")
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    return _resample(y, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else y


def _run(command: list[str], condition: Condition, step: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise ConditionError(f"{condition.name}: ffmpeg {step} took over {FFMPEG_TIMEOUT_S} s") from err
    except OSError as err:  # ffmpeg vanished or cannot be run
        raise ConditionError(f"{condition.name}: cannot run ffmpeg ({err})") from err
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConditionError(f"{condition.name}: ffmpeg could not {step} this audio: {last}")


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_out == SAMPLE_RATE:
        return resample(x, sr_in)  # exactly as load_audio resamples a file
    import soxr

    return soxr.resample(x, sr_in, sr_out, quality="HQ").astype(np.float32)


def _peak(x: np.ndarray) -> float:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak == 0:
        raise ConditionError("silent audio: every sample is zero, so a level cannot be set")
    return peak


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """x + noise scaled so that 10 log10(mean(x^2) / mean(noise^2)) = snr_db (whole-clip mean squares)."""
    p_signal, p_noise = float(np.mean(np.square(x, dtype=np.float64))), float(np.mean(np.square(noise)))
    if p_signal == 0:
        raise ConditionError("silent audio: an SNR is undefined")
    scale = math.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return (x.astype(np.float64) + scale * noise).astype(np.float32)


def _noise(params: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    if params["noise"] == "white":
        return rng.standard_normal(n)
    if params["noise"] == "speech":
        return speech_shaped_noise(n, rng)
    return _file_noise(params["files"], n, rng)


def speech_shaped_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a long-term average speech spectrum: high-passed at 100 Hz, flat to 500 Hz, then
    -6 dB per octave (about 18 dB down at 4 kHz, close to Byrne et al. 1994's LTASS)."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    power = (f / 100) ** 2 / (1 + (f / 100) ** 2) / (1 + (f / 500) ** 2)
    return np.fft.irfft(spectrum * np.sqrt(power), n)


def noise_files(folder: str | os.PathLike) -> list[Path]:
    """The audio files of a --noise folder (any depth), sorted; ValueError when there are none."""
    from antispoof.audio.datasets import walk_files

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--noise {folder}: not a folder")
    files = sorted(walk_files(root))
    if not files:
        raise ValueError(f"--noise {folder}: no audio files in it")
    return files


def _file_noise(files: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded noise file, from a seeded offset, looped to `n` samples."""
    path = files[int(rng.integers(len(files)))]
    try:
        noise = load_audio(path).astype(np.float64)
    except AudioError as err:
        raise ConditionError(f"noise file {path}: {err}") from err
    if not np.any(noise):
        raise ConditionError(f"noise file {path} is silent")
    start = int(rng.integers(len(noise)))
    return np.resize(np.roll(noise, -start), n)


def room_impulse_response(rt60_s: float, rng: np.random.Generator, drr_db: float = 0.0) -> np.ndarray:
    """A synthetic RIR: a unit direct path, then Gaussian noise decaying 60 dB in `rt60_s` seconds starting
    2.5 ms later (early reflections), scaled to a direct-to-reverberant energy ratio of `drr_db`."""
    n = int(1.2 * rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-3 * math.log(10) * t / rt60_s)
    tail[: int(0.0025 * SAMPLE_RATE)] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / np.sum(np.square(tail)))
    tail[0] = 1.0
    return tail


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """x convolved with `rir`, cut to x's length (the tail past the end is dropped, as a recording stops),
    at x's RMS so that the level stays what it was."""
    y = signal.fftconvolve(x.astype(np.float64), rir)[: len(x)]
    rms_in, rms_out = np.sqrt(np.mean(np.square(x, dtype=np.float64))), np.sqrt(np.mean(np.square(y)))
    return y * (rms_in / rms_out) if rms_out > 0 else y


def trim_silence(x: np.ndarray, top_db: float, frame: int = 320) -> np.ndarray:
    """x without its leading and trailing 20 ms frames whose RMS is more than `top_db` below the loudest."""
    n_frames = len(x) // frame
    if n_frames == 0:
        return x
    rms = np.sqrt(
        np.mean(np.square(x[: n_frames * frame].reshape(n_frames, frame), dtype=np.float64), axis=1)
    )
    if not np.any(rms):
        raise ConditionError("silent audio: nothing to trim to")
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-12) / rms.max()) > -top_db)
    return x[loud[0] * frame : min(len(x), (loud[-1] + 1) * frame)]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
