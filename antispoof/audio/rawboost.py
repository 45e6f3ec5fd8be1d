"""RawBoost data augmentation for raw waveforms (Tak et al., ICASSP 2022).

Three distortions, applied to a float waveform at 16 kHz before it is padded or cropped:

1. linear and non-linear convolutive noise (LnL): the sum of the signal's first `n_f` powers, each passed
   through a random cascade of band-stop ("notch") FIR filters, the non-linear terms attenuated;
2. impulsive signal-dependent noise (ISD): up to `p_percent` % of the samples get a random multiplicative
   disturbance;
3. stationary signal-independent noise (SSI): white noise, coloured by a random notch-filter cascade, added
   at a random SNR.

`ALGOS` numbers the combinations as the reference training scripts do (SSL_Anti-spoofing `--algo`): 0 none,
1-3 the single algorithms, 4-7 series combinations, 8 algorithms 1 and 2 in parallel. Every random draw comes
from the `numpy.random.Generator` the caller passes, so a clip's augmentation is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

ALGOS = {
    0: "none",
    1: "LnL convolutive noise",
    2: "ISD impulsive noise",
    3: "SSI coloured additive noise",
    4: "series 1+2+3",
    5: "series 1+2",
    6: "series 1+3",
    7: "series 2+3",
    8: "parallel 1||2",
}

SERIES = {1: (1,), 2: (2,), 3: (3,), 4: (1, 2, 3), 5: (1, 2), 6: (1, 3), 7: (2, 3)}  # algorithms run in order


@dataclass(frozen=True)
class RawBoostConfig:
    """RawBoost parameters; the defaults are the reference's (its flag names in brackets)."""

    # notch-filter cascade, used by LnL and SSI
    n_bands: int = 5  # filters in the cascade [nBands]
    min_freq: float = 20.0  # centre frequency range, Hz [minF, maxF]
    max_freq: float = 8000.0
    min_bw: float = 100.0  # bandwidth range, Hz [minBW, maxBW]
    max_bw: float = 1000.0
    min_coeff: int = 10  # FIR length range, forced odd [minCoeff, maxCoeff]
    max_coeff: int = 100
    min_gain: float = 0.0  # gain range of the linear component, dB [minG, maxG]
    max_gain: float = 0.0
    # LnL: the non-linear terms get min_gain - min_bias .. max_gain - max_bias dB
    min_bias_lin_nonlin: float = 5.0  # [minBiasLinNonLin]
    max_bias_lin_nonlin: float = 20.0  # [maxBiasLinNonLin]
    n_f: int = 5  # highest power of the signal, 1 = linear only [N_f]
    # ISD
    p_percent: float = 10.0  # at most this percentage of the samples is disturbed [P]
    g_sd: float = 2.0  # gain of the impulsive disturbance [g_sd]
    # SSI
    snr_min: float = 10.0  # SNR range, dB [SNRmin, SNRmax]
    snr_max: float = 40.0


def _uniform(rng: np.random.Generator, a: float, b: float) -> float:
    """U(a, b) in either order (the reference's non-linear gain range runs from -5 down to -20 dB)."""
    return float(rng.uniform(min(a, b), max(a, b)))


def _peak_normalize(x: np.ndarray, always: bool = False) -> np.ndarray:
    """Scale `x` to a peak of 1 (always, or only when it clips); an all-zero signal is returned unchanged."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0 and (always or peak > 1):
        return x / peak
    return x


def notch_filter_coeffs(
    rng: np.random.Generator, cfg: RawBoostConfig, fs: int, min_gain: float, max_gain: float
) -> np.ndarray:
    """FIR taps of a cascade of `cfg.n_bands` random band-stop filters, scaled to a random peak gain [dB]."""
    taps = np.ones(1)
    nyquist = fs / 2
    for _ in range(cfg.n_bands):
        centre = _uniform(rng, cfg.min_freq, cfg.max_freq)
        width = _uniform(rng, cfg.min_bw, cfg.max_bw)
        n_taps = int(_uniform(rng, cfg.min_coeff, cfg.max_coeff))
        n_taps += 1 - n_taps % 2  # a band-stop FIR needs an odd length (type I)
        low = max(centre - width / 2, 1e-3)
        high = min(centre + width / 2, nyquist - 1e-3)
        if low >= high:  # the band fell outside (0, fs/2): this filter would be a no-op
            continue
        band_stop = signal.firwin(n_taps, [low, high], window="hamming", pass_zero="bandstop", fs=fs)
        taps = np.convolve(taps, band_stop)
    gain_db = _uniform(rng, min_gain, max_gain)
    _, response = signal.freqz(taps, 1, fs=fs)
    return 10 ** (gain_db / 20) * taps / np.max(np.abs(response))


def fir_filter(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Filter `x` with linear-phase FIR `taps`, compensating the group delay so the output stays aligned."""
    delay = (len(taps) - 1) // 2
    return np.convolve(x, taps)[delay : delay + len(x)]


def lnl_convolutive_noise(
    x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig, fs: int
) -> np.ndarray:
    """Algorithm 1: zero-mean sum of notch-filtered powers x, x^2, ..., x^n_f (non-linear ones attenuated)."""
    y = np.zeros(len(x))
    for power in range(1, cfg.n_f + 1):
        min_gain, max_gain = cfg.min_gain, cfg.max_gain
        if power > 1:
            min_gain, max_gain = (
                cfg.min_gain - cfg.min_bias_lin_nonlin,
                cfg.max_gain - cfg.max_bias_lin_nonlin,
            )
        taps = notch_filter_coeffs(rng, cfg, fs, min_gain, max_gain)
        y += fir_filter(np.power(x, power), taps)
    return _peak_normalize(y - np.mean(y))


def isd_additive_noise(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig) -> np.ndarray:
    """Algorithm 2: add x * g_sd * u1 * u2 (u ~ U(-1, 1)) to beta % of the samples, beta ~ U(0, P)."""
    y = np.array(x, dtype=np.float64, copy=True)
    beta = _uniform(rng, 0, cfg.p_percent)
    n = int(len(x) * beta / 100)
    positions = rng.permutation(len(x))[:n]
    factor = rng.uniform(-1, 1, n) * rng.uniform(-1, 1, n)
    y[positions] += cfg.g_sd * y[positions] * factor
    return _peak_normalize(y)


def ssi_additive_noise(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig, fs: int) -> np.ndarray:
    """Algorithm 3: add white noise coloured by a random notch cascade, at an SNR ~ U(SNRmin, SNRmax) dB."""
    noise = rng.normal(0, 1, len(x))
    noise = fir_filter(noise, notch_filter_coeffs(rng, cfg, fs, cfg.min_gain, cfg.max_gain))
    noise = _peak_normalize(noise, always=True)
    snr_db = _uniform(rng, cfg.snr_min, cfg.snr_max)
    noise_norm = np.linalg.norm(noise)
    if noise_norm == 0:
        return np.asarray(x, dtype=np.float64)
    noise *= np.linalg.norm(x) / noise_norm / 10 ** (snr_db / 20)
    return x + noise


def apply_rawboost(
    x: np.ndarray, algo: int, rng: np.random.Generator, cfg: RawBoostConfig | None = None, fs: int = 16000
) -> np.ndarray:
    """Augment waveform `x` (1-D float) with RawBoost combination `algo` (see `ALGOS`); returns float32."""
    if algo not in ALGOS:
        raise ValueError(f"unknown RawBoost algo {algo}; choose one of {sorted(ALGOS)}: {ALGOS}")
    cfg = cfg or RawBoostConfig()
    x = np.asarray(x, dtype=np.float64)
    if algo == 0 or x.size == 0:
        return x.astype(np.float32)
    if algo == 8:  # parallel: both distortions of the clean signal, summed
        y = _peak_normalize(lnl_convolutive_noise(x, rng, cfg, fs) + isd_additive_noise(x, rng, cfg))
        return y.astype(np.float32)
    for step in SERIES[algo]:
        if step == 1:
            x = lnl_convolutive_noise(x, rng, cfg, fs)
        elif step == 2:
            x = isd_additive_noise(x, rng, cfg)
        else:
            x = ssi_additive_noise(x, rng, cfg, fs)
    return x.astype(np.float32)
