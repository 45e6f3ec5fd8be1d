"""The clips fine-tuning trains on: labelled splits, fixed-length clips (head or random crop, RawBoost),
their batches and the training DataLoader of a run (validation goes through antispoof.scoring).

Every clip is a function of (seed, epoch, index), so a resumed run sees exactly the clips an uninterrupted
one would. Targets come from `model.LABEL_TO_INDEX` only (index 1 = real, 0 = fake).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

import antispoof.audio.datasets as data
import antispoof.distributed as distributed
import antispoof.utils as utils
from antispoof.audio.decode import MAX_DURATION_S, NB_SAMP, SAMPLE_RATE, AudioError, load_audio, pad_or_crop
from antispoof.audio.rawboost import RawBoostConfig, apply_rawboost
from antispoof.networks import FAKE_INDEX, LABEL_TO_INDEX, REAL_INDEX
from antispoof.training.augment import ChannelAugment
from antispoof.training.config import TrainConfig

MAX_SUBSTITUTIONS = 16  # unreadable training files in a row before giving up on a batch slot


def check_label_convention(mapping: dict[str, int] | None = None) -> None:
    """Stop unless training targets follow the model: real -> REAL_INDEX (1), fake -> FAKE_INDEX (0).

    A fine-tune that maps real -> 0 silently inverts the detector (AUC far below 0.5 afterwards).
    """
    mapping = LABEL_TO_INDEX if mapping is None else mapping
    if mapping.get("real") != REAL_INDEX or mapping.get("fake") != FAKE_INDEX or REAL_INDEX == FAKE_INDEX:
        raise RuntimeError(
            f"label mapping {mapping} disagrees with the model's outputs (index {REAL_INDEX} = real, index "
            f"{FAKE_INDEX} = fake): training with it would invert the detector. Use model.LABEL_TO_INDEX."
        )


def load_split(root: str | Path, fmt: str, split: str | None, role: str) -> list[data.Item]:
    """Items of one split, with clear errors for a wrong layout, an empty split or a missing class."""
    try:
        items = data.load_dataset(root, format=fmt, split=split)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: cannot read the {role} split ({split}) of {root}: {err}") from err
    if not items:
        raise SystemExit(f"error: the {role} split ({split}) of {root} holds no audio files")
    unlabelled = [it.path for it in items if it.label not in LABEL_TO_INDEX]
    if unlabelled:
        raise SystemExit(
            f"error: {len(unlabelled)} file(s) of the {role} split have no real/fake label, "
            f"e.g. {unlabelled[0]}"
        )
    counts = {label: sum(it.label == label for it in items) for label in LABEL_TO_INDEX}
    missing = [label for label, n in counts.items() if n == 0]
    if missing:
        raise SystemExit(
            f"error: the {role} split ({split}) of {root} has no '{missing[0]}' files ({counts}); "
            "training and the validation AUC/EER need both classes"
        )
    return items


class ClipDataset(Dataset):
    """Fixed-length training clips with their class index (`LABEL_TO_INDEX`).

    crop "head" takes the first `n_samples` (the reference's rule); "random" takes a random window of longer
    files. Shorter files are tiled to `n_samples`. With `augment` (training/augment.py: codecs, noise,
    reverberation from the stress test's battery) a drawn condition is applied first (a codec to the whole
    file, noise and reverb to the window); with `rawboost` > 0 the window is then augmented, before tiling.
    Randomness comes from a generator seeded by (seed, epoch, index): call
    `set_epoch` before each epoch (DataLoader workers are re-created per epoch and see the new value).

    An unreadable file is reported in the sample's "skipped" list and the next readable file takes its place,
    so that batches keep their size (DDP ranks must stay in step); x is None after MAX_SUBSTITUTIONS
    unreadable files in a row.
    """

    def __init__(
        self,
        items: list[data.Item],
        *,
        n_samples: int = NB_SAMP,
        crop: str = "head",
        rawboost: int = 0,
        rawboost_config: RawBoostConfig | None = None,
        augment: ChannelAugment | None = None,
        seed: int = 0,
    ):
        if crop not in ("head", "random"):
            raise ValueError(f"crop must be 'head' or 'random', got {crop!r}")
        self.items, self.n_samples, self.crop = items, n_samples, crop
        self.rawboost, self.rawboost_config = rawboost, rawboost_config or RawBoostConfig()
        self.augment = augment
        self.seed, self.epoch = seed, 0
        self.targets = [LABEL_TO_INDEX[it.label] for it in items]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        skipped = []
        for attempt in range(MAX_SUBSTITUTIONS):
            i = (index + attempt) % len(self.items)
            try:
                x = self._clip(i)
                return {"x": torch.from_numpy(x), "y": self.targets[i], "index": i, "skipped": skipped}
            except AudioError as err:
                skipped.append((self.items[i].path, str(err)))
        return {"x": None, "y": None, "index": index, "skipped": skipped}

    def _clip(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        # The model sees one window of n samples: RawBoost distorts that window (its SNR and peak level are
        # those of what the model sees), then a short file is tiled. A head crop decodes only the head.
        head_s = self.n_samples / SAMPLE_RATE
        max_duration = head_s if self.crop == "head" else MAX_DURATION_S
        if self.augment:
            condition = self.augment.draw(rng)
            x = self.augment.load(self.items[i].path, condition, max_duration)
        else:
            x = load_audio(self.items[i].path, max_duration=max_duration)
        if self.crop == "random" and len(x) > self.n_samples:
            start = int(rng.integers(0, len(x) - self.n_samples + 1))
            x = x[start : start + self.n_samples]
        else:
            x = x[: self.n_samples]
        if self.augment:
            x = self.augment.window(x, condition, rng)  # noise or reverb on what the model sees
        if self.rawboost:
            x = apply_rawboost(x, self.rawboost, rng, self.rawboost_config, fs=SAMPLE_RATE)
        return pad_or_crop(x, self.n_samples).astype(np.float32, copy=False)


def collate_clips(batch: list[dict]) -> dict:
    """Stack the readable clips.

    Returns {"x": (B, T) float32, "y": (B,) class indices (LABEL_TO_INDEX), "skipped": [(path, reason), ...]}.
    """
    ok = [b for b in batch if b["x"] is not None]
    skipped = [s for b in batch for s in b["skipped"]]
    if not ok:
        return {"x": None, "y": None, "skipped": skipped}
    return {
        "x": torch.stack([b["x"] for b in ok]),
        "y": torch.tensor([b["y"] for b in ok], dtype=torch.int64),
        "skipped": skipped,
    }


def build_loaders(config: TrainConfig, train_items: list) -> tuple:
    """(training dataset, its sampler, training loader)."""
    augment = None
    if config.augment:
        augment = ChannelAugment.build(config.augment, config.augment_prob, seed=config.seed)
        print(f"channel augmentation: {augment.describe()}")
    train_set = ClipDataset(
        train_items, crop=config.crop, rawboost=config.rawboost, augment=augment, seed=config.seed
    )
    # Shuffled by (seed, epoch) through set_epoch, identically with or without torchrun.
    sampler = DistributedSampler(train_set, num_replicas=distributed.world_size(), rank=distributed.rank(),
                                 shuffle=True, seed=config.seed)  # fmt: skip
    common = {"num_workers": config.workers, "collate_fn": collate_clips, "worker_init_fn": utils.seed_worker,
              "pin_memory": torch.cuda.is_available()}  # fmt: skip
    # Drop the last partial batch, as the reference does, unless the split is smaller than one batch.
    drop_last = len(sampler) >= config.batch_size
    train_loader = DataLoader(train_set, config.batch_size, sampler=sampler, drop_last=drop_last, **common)
    return train_set, sampler, train_loader
