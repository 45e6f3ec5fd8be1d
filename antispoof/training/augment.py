"""Channel augmentation for fine-tuning: random conditions of the stress test's battery, on the fly.

    augment = ChannelAugment.build(["codec", "noise"], prob=0.5, seed=1234)   # fine_tune_for.py --augment
    condition = augment.draw(rng)                        # None (clean) or one condition, per clip
    x = augment.load(path, condition, max_duration)      # the whole file coded (cached), else as it is
    x = augment.window(x, condition, rng)                # noise / reverb on the model's window

"codec" draws from the battery's codec and telephone conditions (ffmpeg round trips), "noise" from its white
and speech-shaped noise at 20/10/5 dB SNR, "reverb" from its two synthetic rooms; each clip is augmented with
probability `prob`, by one condition drawn uniformly from the chosen families. A codec codes the whole file,
as a channel does, and the result is kept in the battery's cache (`battery_cache`, keyed by condition and
file content): a DataLoader worker runs ffmpeg the first time a (file, codec) pair is drawn and reads a
float WAV afterwards, so from the second epoch on a codec costs a file read. Noise and reverb are cheap and
drawn afresh for every clip (new noise, a new room) from the clip's generator, so a resumed run sees the same
clips. A condition that cannot be applied to a file (a silent clip has no SNR) leaves the clip clean.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from antispoof.audio import battery, battery_cache
from antispoof.audio.decode import load_audio

AUGMENT_FAMILIES = {"codec": ("codec", "telephone"), "noise": ("noise",), "reverb": ("reverb",)}


@dataclass(frozen=True)
class ChannelAugment:
    """The conditions clips are drawn from, how often, and where coded files are cached."""

    conditions: tuple[battery.Condition, ...]
    prob: float
    cache_dir: str
    seed: int = 0

    @classmethod
    def build(
        cls, kinds: list[str], prob: float = 0.5, seed: int = 0, cache_dir: str | os.PathLike | None = None
    ) -> ChannelAugment:
        """The augmentation of `kinds` (keys of AUGMENT_FAMILIES); codecs this ffmpeg lacks are left out with
        a note on stderr. ValueError for an unknown kind, a probability outside [0, 1] or nothing usable."""
        unknown = sorted(set(kinds) - set(AUGMENT_FAMILIES))
        if unknown:
            raise ValueError(
                f"unknown --augment {', '.join(unknown)}; choose from {', '.join(AUGMENT_FAMILIES)}"
            )
        if not 0 <= prob <= 1:
            raise ValueError(f"--augment-prob must be between 0 and 1, got {prob}")
        families = {f for k in kinds for f in AUGMENT_FAMILIES[k]}
        chosen = [c for c in battery.default_battery() if c.family in families]
        usable, skipped = battery.available(chosen)
        for name, why in skipped.items():
            print(f"--augment: {name} left out: {why}", file=sys.stderr)
        if not usable:
            raise ValueError(f"--augment {' '.join(kinds)}: no condition can be applied here ({skipped})")
        cache = Path(cache_dir) if cache_dir is not None else battery_cache.default_cache_dir()
        return cls(tuple(usable), prob, str(cache), seed)

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.conditions)
        return f"p={self.prob:g} per clip, one of: {names} (battery v{battery.BATTERY_VERSION})"

    def draw(self, rng: np.random.Generator) -> battery.Condition | None:
        """None (the clip stays clean) with probability 1 - prob, else a condition drawn uniformly."""
        if rng.random() >= self.prob:
            return None
        return self.conditions[int(rng.integers(len(self.conditions)))]

    def load(self, path: str, condition: battery.Condition | None, max_duration: float | None) -> np.ndarray:
        """The file decoded as `load_audio` does; under a codec, the coded file from the cache instead."""
        if condition is not None and condition.kind == "ffmpeg":
            coded = battery_cache.cached_file(path, condition, self.cache_dir, self.seed)
            if coded.path is not None:
                return load_audio(coded.path, max_duration=max_duration)
        return load_audio(path, max_duration=max_duration)

    def window(
        self, x: np.ndarray, condition: battery.Condition | None, rng: np.random.Generator
    ) -> np.ndarray:
        """Noise or reverb applied to the model's window (codecs were applied in `load`)."""
        if condition is None or condition.kind == "ffmpeg":
            return x
        try:
            return battery.apply(condition, x, seed=int(rng.integers(2**63)))
        except battery.ConditionError:  # e.g. a silent window has no SNR: it stays as it is
            return x
