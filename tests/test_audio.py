"""audio.py: decoding of every file in ../shared/audio (good and broken), parity with the reference loader."""

import shutil
import subprocess

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from antispoof.audio.decode import (
    MIN_DURATION_S,
    NB_SAMP,
    SAMPLE_RATE,
    AudioError,
    is_silent,
    load_audio,
    pad_or_crop,
    windows,
)


@pytest.fixture(scope="module")
def broken(audio_dir):
    return audio_dir / "broken"


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty_0_bytes.wav", "empty file"),
        ("text_not_audio.mp3", "not a decodable audio file"),
        ("truncated.flac", "truncated or corrupt"),
        ("too_short_0.05s.wav", "too short"),
        ("does_not_exist.wav", "file not found"),
    ],
)
def test_unusable_files_raise_their_reason(broken, name, reason):
    with pytest.raises(AudioError, match=reason):
        load_audio(broken / name)


def test_truncated_flac_is_rejected_not_scored_from_its_prefix(broken):
    # librosa/ffmpeg would silently return the 2.3 s that decode; the header declares 6.17 s.
    with pytest.raises(AudioError, match="6.17 s"):
        load_audio(broken / "truncated.flac")


@pytest.mark.parametrize(
    "name, n_samples, peak",
    [
        ("stereo_48k.wav", 60348, None),  # downmixed + resampled 48k -> 16k
        ("pcm24_16k.wav", 41989, 0.97),  # 24-bit decoded to [-1, 1], not misread as 16-bit
        ("mono_8k.wav", 61306, None),  # upsampled
        ("silent_5s.wav", 80000, 0.0),
    ],
)
def test_unusual_files_decode_like_librosa(broken, name, n_samples, peak):
    x = load_audio(broken / name)
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == n_samples
    reference, _ = librosa.load(broken / name, sr=SAMPLE_RATE)  # the reference's loader
    np.testing.assert_allclose(x, reference, atol=1e-6)
    if peak is not None:
        assert np.abs(x).max() == pytest.approx(peak, abs=1e-3)


def test_stereo_is_downmixed_by_mean(broken):
    raw, sr = sf.read(broken / "stereo_48k.wav", dtype="float32")
    np.testing.assert_allclose(raw[:, 1], 0.5 * raw[:, 0], atol=1e-4)  # the file's own construction
    x = load_audio(broken / "stereo_48k.wav")
    left_only, _ = librosa.load(broken / "stereo_48k.wav", sr=SAMPLE_RATE, mono=False)
    np.testing.assert_allclose(x, 0.75 * left_only[0], atol=2e-4)


def test_silence_is_accepted_and_flagged(broken):
    x = load_audio(broken / "silent_5s.wav")
    assert is_silent(x) and np.isfinite(x).all()


def test_long_file_is_capped_and_says_so(broken):
    x, info = load_audio(broken / "long_70s.wav", max_duration=10.0, return_info=True)
    assert len(x) == 10 * SAMPLE_RATE
    assert info.capped and info.duration_s == pytest.approx(70.0) and info.loaded_s == pytest.approx(10.0)
    x, info = load_audio(broken / "long_70s.wav", return_info=True)  # default cap (600 s) is above 70 s
    assert len(x) == 70 * SAMPLE_RATE and not info.capped


def test_head_only_read_equals_full_read_then_crop(broken, tmp_path):
    # Reading only what the model needs must not change the samples, also across resampling.
    head = load_audio(broken / "long_70s.wav", max_duration=NB_SAMP / SAMPLE_RATE)
    np.testing.assert_array_equal(head, load_audio(broken / "long_70s.wav")[:NB_SAMP])
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "n44.wav", 0.1 * rng.standard_normal(44100 * 6), 44100, subtype="FLOAT")
    head = load_audio(tmp_path / "n44.wav", max_duration=NB_SAMP / SAMPLE_RATE)
    assert len(head) == NB_SAMP
    np.testing.assert_allclose(head, load_audio(tmp_path / "n44.wav")[:NB_SAMP], atol=1e-5)


def test_non_finite_samples_are_rejected(tmp_path):
    x = np.zeros(SAMPLE_RATE, dtype=np.float32)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_minimum_duration_boundary(tmp_path):
    n = int(MIN_DURATION_S * SAMPLE_RATE)
    sf.write(tmp_path / "ok.wav", np.full(n, 0.1, dtype=np.float32), SAMPLE_RATE)
    sf.write(tmp_path / "short.wav", np.full(n - 1, 0.1, dtype=np.float32), SAMPLE_RATE)
    assert len(load_audio(tmp_path / "ok.wav")) == n
    with pytest.raises(AudioError, match="too short"):
        load_audio(tmp_path / "short.wav")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg for the m4a fallback")
def test_m4a_decodes_through_the_ffmpeg_fallback(audio_dir, tmp_path):
    src = audio_dir / "sample_custom" / "real" / "118-121721-0000.flac"
    dst = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:a", "aac", str(dst)], check=True)
    x = load_audio(dst)
    ref = load_audio(src)
    assert abs(len(x) - len(ref)) < 0.1 * SAMPLE_RATE  # AAC adds encoder priming
    assert 0.5 < np.abs(x).max() / np.abs(ref).max() < 2.0


def test_reference_input_reproduced_exactly(audio_dir, golden):
    # Row 1 of the AASIST golden inputs is LibriSpeech 118-121721-0000 (3.6 s), tiled to NB_SAMP.
    inputs = torch.load(golden / "aasist" / "inputs.pt", weights_only=True)
    x = pad_or_crop(load_audio(audio_dir / "sample_custom" / "real" / "118-121721-0000.flac"))
    np.testing.assert_allclose(x, inputs["x"][1].numpy(), atol=1e-7)


def test_pad_or_crop_tiles_then_crops():
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(pad_or_crop(x, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(pad_or_crop(x, 3), [0, 1, 2])
    assert len(pad_or_crop(np.zeros(NB_SAMP + 7, np.float32))) == NB_SAMP


def test_windows_cover_every_sample_without_padding():
    x = np.arange(25, dtype=np.float32)
    w, starts = windows(x, n=10, hop=5)
    np.testing.assert_array_equal(starts * SAMPLE_RATE, [0, 5, 10, 15])
    np.testing.assert_array_equal(w[-1], x[15:25])
    w, starts = windows(np.arange(27, dtype=np.float32), n=10, hop=5)
    np.testing.assert_array_equal(starts * SAMPLE_RATE, [0, 5, 10, 15, 17])  # last window ends at the end
    w, starts = windows(np.arange(4, dtype=np.float32), n=10, hop=5)  # short: one tiled window
    assert w.shape == (1, 10) and starts.tolist() == [0.0]
