"""RawBoost: each distortion does what the paper says, combinations follow the reference, seeds reproduce."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import signal

from antispoof.audio.rawboost import (
    ALGOS,
    RawBoostConfig,
    apply_rawboost,
    fir_filter,
    isd_additive_noise,
    lnl_convolutive_noise,
    notch_filter_coeffs,
    ssi_additive_noise,
)

FS = 16000


@pytest.fixture(scope="module")
def speech_like() -> np.ndarray:
    """2 s of a harmonic tone with an amplitude envelope, peak 0.3 (never clips after ISD)."""
    t = np.arange(2 * FS) / FS
    x = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220, 440, 660, 1320), start=1))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_algo_keeps_shape_is_finite_and_reproducible(algo, speech_like):
    a = apply_rawboost(speech_like, algo, np.random.default_rng(7))
    b = apply_rawboost(speech_like, algo, np.random.default_rng(7))
    assert a.shape == speech_like.shape and a.dtype == np.float32
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    if algo == 0:
        np.testing.assert_array_equal(a, speech_like)
    else:
        assert not np.allclose(a, speech_like, atol=1e-4)
        c = apply_rawboost(speech_like, algo, np.random.default_rng(8))
        assert not np.allclose(a, c, atol=1e-4), "another seed must give another augmentation"


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_silent_and_tiny_inputs_stay_finite(algo):
    for x in (np.zeros(FS, dtype=np.float32), np.full(50, 0.01, dtype=np.float32)):
        y = apply_rawboost(x, algo, np.random.default_rng(0))
        assert y.shape == x.shape and np.all(np.isfinite(y))


def test_unknown_algo_is_a_clear_error(speech_like):
    with pytest.raises(ValueError, match="unknown RawBoost algo 9"):
        apply_rawboost(speech_like, 9, np.random.default_rng(0))


def test_notch_filter_stops_its_band_and_has_the_drawn_peak_gain():
    cfg = replace(
        RawBoostConfig(),
        n_bands=1,
        min_freq=3000,
        max_freq=3000,
        min_bw=800,
        max_bw=800,
        min_coeff=201,
        max_coeff=202,
    )
    taps = notch_filter_coeffs(np.random.default_rng(0), cfg, FS, min_gain=-6.0, max_gain=-6.0)
    assert len(taps) == 201  # odd length (type I linear phase)
    freqs, response = signal.freqz(taps, 1, worN=4096, fs=FS)
    magnitude = np.abs(response)
    assert np.max(magnitude) == pytest.approx(10 ** (-6 / 20), rel=1e-3)  # -6 dB, on a finer grid
    at = lambda f: magnitude[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(3000) < 0.05 * at(1000)
    assert at(3000) < 0.05 * at(6000)


def test_fir_filter_compensates_the_group_delay():
    x = np.zeros(100)
    x[40] = 1.0
    taps = signal.firwin(31, 2000, fs=FS)  # symmetric low-pass: its peak stays where the impulse was
    y = fir_filter(x, taps)
    assert y.shape == x.shape and int(np.argmax(y)) == 40


def test_isd_disturbs_at_most_p_percent_and_leaves_the_rest(speech_like):
    cfg = replace(RawBoostConfig(), p_percent=10, g_sd=2)
    for seed in range(5):
        y = isd_additive_noise(speech_like, np.random.default_rng(seed), cfg)
        changed = np.flatnonzero(~np.isclose(y, speech_like, rtol=0, atol=1e-7))
        assert 0 < len(changed) <= 0.10 * len(speech_like)
        # each disturbed sample is x * (1 + g_sd * u1 * u2) with |u1 * u2| <= 1
        ratio = y[changed] / speech_like[changed]
        assert np.all(np.abs(ratio - 1) <= cfg.g_sd + 1e-6)


def test_ssi_adds_noise_at_the_drawn_snr(speech_like):
    cfg = replace(RawBoostConfig(), snr_min=20, snr_max=20)
    y = ssi_additive_noise(speech_like, np.random.default_rng(3), cfg, FS)
    noise = y - speech_like
    snr = 20 * np.log10(np.linalg.norm(speech_like) / np.linalg.norm(noise))
    assert snr == pytest.approx(20, abs=1e-3)


def test_lnl_is_zero_mean_and_never_clips(speech_like):
    loud = 3 * speech_like  # peak 0.9: the x^2..x^5 terms push the sum beyond 1 before normalization
    for seed in range(3):
        y = lnl_convolutive_noise(loud, np.random.default_rng(seed), RawBoostConfig(), FS)
        assert abs(np.mean(y)) < 1e-9 or np.max(np.abs(y)) == pytest.approx(1.0)
        assert np.max(np.abs(y)) <= 1.0 + 1e-12


def test_linear_only_lnl_with_zero_gain_is_a_notch_filtered_copy(speech_like):
    """N_f = 1 and 0 dB: the output is x through the notch cascade (no non-linear terms), minus its mean."""
    cfg = replace(RawBoostConfig(), n_f=1)
    y = lnl_convolutive_noise(speech_like, np.random.default_rng(5), cfg, FS)
    taps = notch_filter_coeffs(np.random.default_rng(5), cfg, FS, cfg.min_gain, cfg.max_gain)
    expected = fir_filter(speech_like.astype(np.float64), taps)
    np.testing.assert_allclose(y, expected - expected.mean(), atol=1e-12)


@pytest.mark.parametrize(
    ("algo", "chain"),
    [(4, "123"), (5, "12"), (6, "13"), (7, "23")],
)
def test_series_combinations_apply_the_algorithms_in_order(algo, chain, speech_like):
    cfg = RawBoostConfig()
    rng = np.random.default_rng(11)
    x = speech_like.astype(np.float64)
    for step in chain:
        x = {
            "1": lambda v: lnl_convolutive_noise(v, rng, cfg, FS),
            "2": lambda v: isd_additive_noise(v, rng, cfg),
            "3": lambda v: ssi_additive_noise(v, rng, cfg, FS),
        }[step](x)
    np.testing.assert_allclose(apply_rawboost(speech_like, algo, np.random.default_rng(11)), x, atol=1e-6)


def test_parallel_combination_sums_both_distortions_of_the_clean_signal(speech_like):
    cfg = RawBoostConfig()
    rng = np.random.default_rng(12)
    x = speech_like.astype(np.float64)
    summed = lnl_convolutive_noise(x, rng, cfg, FS) + isd_additive_noise(x, rng, cfg)
    expected = summed / max(1.0, np.max(np.abs(summed)))
    np.testing.assert_allclose(apply_rawboost(speech_like, 8, np.random.default_rng(12)), expected, atol=1e-6)
