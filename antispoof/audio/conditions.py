"""Warnings for a recording that is far from what a detector was trained on (short, clean, wideband speech).

    warnings = far_from_training(x, languages="English (ASVspoof 2019 LA: VCTK speakers)")

What is checked, from the decoded 16 kHz waveform: length (much longer than training utterances), silence
(mostly or entirely), and bandwidth (almost no energy above 4 kHz: telephone-band or heavily compressed
audio). What is not: the language (no language identification here: the card's training languages are
stated instead) and music or noise under the speech.
"""

from __future__ import annotations

import numpy as np

from antispoof.constants import SAMPLE_RATE

LONG_S = 20.0  # training utterances are a few seconds long; beyond this the answer is pieced from windows
SILENT_FRACTION = 0.6  # more than this share of 20 ms frames 40 dB below the loudest: mostly silence
TELEPHONE_HZ = 4000.0
NARROWBAND_SHARE = 1e-3  # energy above 4 kHz below this share of the total: telephone band


def _frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    n = len(x) // frame * frame
    if n == 0:
        return np.array([-120.0])
    rms = np.sqrt(np.mean(x[:n].reshape(-1, frame) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9))


def high_band_share(x: np.ndarray) -> float:
    """The share of the signal's energy above 4 kHz (0 for digital silence)."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    total = spectrum.sum()
    if total == 0:
        return 0.0
    freqs = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(spectrum[freqs > TELEPHONE_HZ].sum() / total)


def far_from_training(x: np.ndarray, languages: str | None = None) -> list[str]:
    """Plain-words warnings about a 16 kHz mono recording; [] when none applies."""
    out = []
    seconds = len(x) / SAMPLE_RATE
    if seconds > LONG_S:
        out.append(
            f"The recording is long ({seconds:.0f} s); detectors are trained on utterances of a few seconds, "
            "so the answer is pieced together from ~4 s windows."
        )
    db = _frame_db(x, SAMPLE_RATE // 50)
    if not np.any(x):
        out.append("The recording is digital silence: there is no speech to judge.")
    else:
        quiet = float(np.mean(db < db.max() - 40))
        if quiet > SILENT_FRACTION:
            out.append(
                f"The recording is mostly silence ({100 * quiet:.0f} % of it): little speech to judge."
            )
        if high_band_share(x) < NARROWBAND_SHARE:
            out.append(
                "The recording has almost no sound above 4 kHz (telephone-band or heavily compressed audio); "
                "the detector was trained on wideband audio and is less reliable here."
            )
    if languages:
        out.append(f"The language is not checked; the detector was trained on: {languages}.")
    return out
