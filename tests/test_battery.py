"""antispoof/audio/battery.py and battery_cache.py: each condition changes the audio as specified, the
battery is deterministic (same seed, same bytes), a missing encoder is skipped with a reason, and a file a
condition cannot be applied to gets the reason."""

import dataclasses
import math

import numpy as np
import pytest
import soundfile as sf

from antispoof.audio import battery as cond
from antispoof.audio import battery_cache
from antispoof.audio.decode import SAMPLE_RATE, load_audio

BATTERY = {c.name: c for c in cond.default_battery()}
needs_ffmpeg = pytest.mark.skipif(cond.ffmpeg_info()[0] is None, reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def speech(audio_dir):
    """1.5 s of a real LibriSpeech reader (16 kHz)."""
    path = sorted((audio_dir / "sample_custom" / "real").iterdir())[0]
    return load_audio(path)[: int(1.5 * SAMPLE_RATE)]


def band_energy_db(y: np.ndarray, above_hz: float) -> float:
    """Energy above `above_hz` relative to the total, in dB."""
    power = np.abs(np.fft.rfft(y.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
    return 10 * math.log10(power[f > above_hz].sum() / power.sum())


def test_battery_covers_the_issue_and_names_are_unique():
    names = list(BATTERY)
    assert len(names) == len(set(names)) and names[0] == "clean"
    for name in (
        "mp3_32k",
        "mp3_64k",
        "mp3_128k",
        "aac_64k",
        "opus_12k",
        "opus_24k",
        "vorbis_32k",
        "tel_mulaw",
        "tel_gsm",
        "white_snr5",
        "speech_snr20",
        "reverb_rt03",
        "reverb_rt08",
        "gain_m20db",
        "clipping",
        "silence_pad",
        "silence_trim",
    ):
        assert name in BATTERY
    assert {c.family for c in BATTERY.values()} == set(cond.FAMILIES)


@needs_ffmpeg
@pytest.mark.parametrize("name", ["tel_mulaw", "tel_gsm"])
def test_telephone_has_no_energy_above_4khz(name):
    # White noise has as much energy above 4 kHz as below: the worst case for the band limit.
    x = (0.1 * np.random.default_rng(0).standard_normal(SAMPLE_RATE)).astype(np.float32)
    assert band_energy_db(x, 4000) > -4
    y = cond.apply(BATTERY[name], x, seed=0)
    assert len(y) == len(x)
    assert band_energy_db(y, 4000) < -50  # seen: -67 dB (mu-law), -58 dB (GSM)


@pytest.mark.parametrize("name", ["white_snr20", "white_snr5", "speech_snr10"])
def test_noise_snr_within_half_a_db(speech, name):
    y = cond.apply(BATTERY[name], speech, seed=3)
    noise = y.astype(np.float64) - speech
    snr = 10 * math.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))
    assert abs(snr - BATTERY[name].params["snr_db"]) < 0.5


def test_speech_shaped_noise_falls_6db_per_octave_above_500hz():
    n = cond.speech_shaped_noise(SAMPLE_RATE * 8, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(len(n), 1 / SAMPLE_RATE)

    def density_db(hz):  # mean power within +-5 % of hz
        return 10 * math.log10(power[(f > 0.95 * hz) & (f < 1.05 * hz)].mean())

    # spec: 1 / (1 + (f / 500)^2) above the 100 Hz high-pass: 4 kHz is 10 log10(65 / 5) = 11.1 dB below 1 kHz
    assert density_db(1000) - density_db(4000) == pytest.approx(11.1, abs=1.0)
    assert density_db(300) - density_db(40) > 6  # the high-pass


def test_user_noise_folder(speech, tmp_path):
    (tmp_path / "noise").mkdir()
    hum = 0.2 * np.sin(2 * np.pi * 50 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    sf.write(tmp_path / "noise" / "hum.wav", hum, SAMPLE_RATE)
    user = {c.name: c for c in cond.default_battery(tmp_path / "noise")}
    y = cond.apply(user["user_snr10"], speech, seed=1)
    noise = y.astype(np.float64) - speech
    assert abs(10 * math.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2)) - 10) < 0.5
    spectrum = np.abs(np.fft.rfft(noise))
    assert np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == pytest.approx(50, abs=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        cond.default_battery(tmp_path / "empty")


@needs_ffmpeg
@pytest.mark.parametrize("name,frame", [("opus_12k", 320), ("opus_24k", 320), ("aac_64k", 1024)])
def test_codec_round_trip_keeps_the_length_within_one_frame(speech, name, frame):
    y = cond.apply(BATTERY[name], speech, seed=0)
    assert abs(len(y) - len(speech)) < frame  # Opus: 20 ms = 320 samples; AAC: 1024 samples
    # and it is the same speech, not shifted: the coded signal correlates with the original at lag 0
    corr = np.corrcoef(y[: len(speech)], speech)[0, 1]
    assert corr > 0.8


def test_reverb_rt60_gain_clipping_and_silence(speech):
    rir = cond.room_impulse_response(0.8, np.random.default_rng(0))
    edc = 10 * np.log10(np.cumsum(rir[::-1] ** 2)[::-1] / np.sum(rir**2))  # Schroeder decay curve
    t = np.arange(len(rir)) / SAMPLE_RATE
    fit = (edc <= -5) & (edc >= -25)
    assert -60 / np.polyfit(t[fit], edc[fit], 1)[0] == pytest.approx(0.8, rel=0.1)  # T20 estimate
    y = cond.apply(BATTERY["reverb_rt08"], speech, seed=0)
    assert len(y) == len(speech) and np.sqrt(np.mean(y**2)) == pytest.approx(
        np.sqrt(np.mean(speech**2)), 1e-4
    )
    assert not np.allclose(y, speech, atol=1e-3)

    quiet = cond.apply(BATTERY["gain_m20db"], speech, seed=0)
    assert 20 * np.log10(np.abs(quiet).max() / np.abs(speech).max()) == pytest.approx(-20, abs=1e-4)
    clipped = cond.apply(BATTERY["clipping"], speech, seed=0)
    assert np.abs(clipped).max() == 1.0 and np.mean(np.abs(clipped) == 1.0) > 0.01

    padded = cond.apply(BATTERY["silence_pad"], speech, seed=0)
    assert len(padded) == len(speech) + 2 * SAMPLE_RATE and not padded[:SAMPLE_RATE].any()
    lead = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), speech])
    trimmed = cond.apply(BATTERY["silence_trim"], lead, seed=0)
    assert len(trimmed) <= len(speech) and np.abs(trimmed[:320]).max() > 0


@needs_ffmpeg
def test_same_seed_same_bytes_other_seed_other_noise(audio_dir, tmp_path):
    files = [str(sorted((audio_dir / "sample_custom" / "real").iterdir())[1])]
    battery = [BATTERY[n] for n in ("clean", "mp3_32k", "opus_12k", "tel_gsm", "speech_snr5", "reverb_rt03")]
    first = battery_cache.prepare(files, battery, tmp_path / "a", seed=7)
    again = battery_cache.prepare(files, battery, tmp_path / "b", seed=7)
    other = battery_cache.prepare(files, battery, tmp_path / "c", seed=8)
    for c in battery[1:]:
        a, b, o = (d[(files[0], c.name)].path for d in (first, again, other))
        assert open(a, "rb").read() == open(b, "rb").read(), c.name
        if c.family in ("noise", "reverb"):
            assert open(a, "rb").read() != open(o, "rb").read(), c.name
    # the cached file reads back as what `apply` returned, through the project's loader
    x = load_audio(files[0])
    name = "speech_snr5"
    y = cond.apply(BATTERY[name], x, cond.seed_for(7, name, cond.file_sha256(files[0])))
    np.testing.assert_array_equal(load_audio(first[(files[0], name)].path), y)
    # a second run reuses the cache: nothing is computed again
    assert not any(p.computed for p in battery_cache.prepare(files, battery, tmp_path / "a", seed=7).values())


def test_missing_encoder_or_ffmpeg_is_skipped_with_a_reason():
    ghost = dataclasses.replace(BATTERY["mp3_32k"], name="ghost", encoder="libnot_an_encoder")
    usable, skipped = cond.available([BATTERY["clean"], ghost, BATTERY["white_snr5"]])
    assert [c.name for c in usable] == ["clean", "white_snr5"]
    assert "no 'libnot_an_encoder' encoder" in skipped["ghost"]
    usable, skipped = cond.available(list(BATTERY.values()), ffmpeg="ffmpeg-not-installed-here")
    codecs = [c.name for c in BATTERY.values() if c.encoder]
    assert sorted(skipped) == sorted(codecs) and "not found on PATH" in skipped["mp3_32k"]
    assert len(usable) == len(BATTERY) - len(codecs)


@needs_ffmpeg
def test_a_file_a_condition_cannot_take_gets_the_reason(audio_dir, tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    # libgsm codes 8 kHz only: given 16 kHz audio, ffmpeg refuses, as a codec refuses a file it cannot take
    gsm_16k = dataclasses.replace(
        BATTERY["tel_gsm"], name="gsm_16k", params={**BATTERY["tel_gsm"].params, "rate": SAMPLE_RATE}
    )
    battery = [BATTERY["clean"], BATTERY["white_snr10"], gsm_16k]
    done = battery_cache.prepare([str(silent), str(tmp_path / "missing.wav")], battery, tmp_path / "cache")
    assert done[(str(silent), "white_snr10")].reason == "silent audio: an SNR is undefined"
    assert done[(str(silent), "gsm_16k")].reason.startswith("gsm_16k: ffmpeg could not encode this audio")
    assert done[(str(tmp_path / "missing.wav"), "white_snr10")].reason.startswith("cannot read the file")
    # the reason is cached too: a second detector gets it without running ffmpeg again
    again = battery_cache.prepare([str(silent)], battery, tmp_path / "cache")
    assert again[(str(silent), "gsm_16k")] == dataclasses.replace(
        done[(str(silent), "gsm_16k")], computed=False
    )
