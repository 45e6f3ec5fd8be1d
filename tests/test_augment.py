"""fine_tune_for.py --augment: training clips drawn through the stress test's battery (codec from the cache,
noise and reverb on the window), deterministic per (seed, epoch, index), composable with RawBoost."""

import numpy as np
import pytest

import fine_tune_for
from antispoof.audio import battery
from antispoof.audio.datasets import load_dataset
from antispoof.audio.decode import NB_SAMP, load_audio, pad_or_crop
from antispoof.training.augment import ChannelAugment
from antispoof.training.data import ClipDataset, build_loaders

needs_ffmpeg = pytest.mark.skipif(battery.ffmpeg_info()[0] is None, reason="ffmpeg is not installed")


@pytest.fixture(scope="module")
def two_items(audio_dir):
    items = load_dataset(audio_dir / "sample_custom")
    return [next(i for i in items if i.label == "real"), next(i for i in items if i.label == "fake")]


@needs_ffmpeg
def test_codec_clips_come_from_the_cache_and_repeat_exactly(two_items, tmp_path):
    augment = ChannelAugment.build(["codec"], prob=1.0, seed=0, cache_dir=tmp_path)
    assert all(c.family in ("codec", "telephone") for c in augment.conditions)
    clips = ClipDataset(two_items, augment=augment, seed=5)
    first = clips[0]["x"].numpy()
    coded = list(tmp_path.rglob("*.wav"))
    assert len(coded) == 1  # the whole file, coded once by the drawn codec
    assert np.array_equal(first, pad_or_crop(load_audio(coded[0])[:NB_SAMP], NB_SAMP))
    assert not np.array_equal(first, ClipDataset(two_items, seed=5)[0]["x"].numpy())  # it did change
    assert np.array_equal(ClipDataset(two_items, augment=augment, seed=5)[0]["x"].numpy(), first)  # cached
    assert len(list(tmp_path.rglob("*.wav"))) == 1


def test_noise_reverb_and_rawboost_compose_deterministically(two_items, tmp_path):
    augment = ChannelAugment.build(["noise", "reverb"], prob=1.0, seed=0, cache_dir=tmp_path)
    assert {c.family for c in augment.conditions} == {"noise", "reverb"}
    clean = ClipDataset(two_items, seed=1)[1]["x"].numpy()
    noisy = ClipDataset(two_items, augment=augment, seed=1)
    assert np.array_equal(noisy[1]["x"].numpy(), noisy[1]["x"].numpy())  # a function of (seed, epoch, index)
    assert not np.array_equal(noisy[1]["x"].numpy(), clean)
    noisy.set_epoch(1)  # another epoch draws again
    assert not np.array_equal(noisy[1]["x"].numpy(), ClipDataset(two_items, augment=augment, seed=1)[1]["x"])
    both = ClipDataset(two_items, augment=augment, rawboost=3, seed=1)[1]["x"].numpy()
    assert not np.array_equal(both, ClipDataset(two_items, augment=augment, seed=1)[1]["x"].numpy())
    assert not list(tmp_path.rglob("*.wav"))  # noise and reverb are not cached: fresh for every clip
    never = ChannelAugment.build(["noise"], prob=0.0, seed=0, cache_dir=tmp_path)
    assert np.array_equal(ClipDataset(two_items, augment=never, seed=1)[1]["x"].numpy(), clean)


def test_flags_reach_the_training_loader(two_items, audio_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ANTISPOOF_CACHE", str(tmp_path))
    args = fine_tune_for.parse_args(["--data", str(audio_dir), "--augment", "noise", "reverb",
                                     "--augment-prob", "0.25", "--workers", "0"])  # fmt: skip
    train_set, _, _ = build_loaders(args, two_items)
    assert train_set.augment.prob == 0.25 and train_set.augment.cache_dir == str(tmp_path / "conditions")
    with pytest.raises(ValueError, match="between 0 and 1"):
        ChannelAugment.build(["noise"], prob=1.5)
    with pytest.raises(SystemExit):
        fine_tune_for.parse_args(["--data", str(audio_dir), "--augment", "mp3"])
