"""What every detector family shares: label indices, the input policy, config building, strict loading and the
`Format` / `Family` records each family file declares. No file I/O: files are read in checkpoints/.

A family module (`networks/<family>.py`) defines its network (with `arch`, `default_policy`, `score_kind`),
its config dataclass, its presets, and the checkpoint formats its authors publish (a `matches` test on the
loaded contents and a `load` that builds the network from them). It ends with `FAMILY = Family(...)`, and
`networks/__init__.py` lists it in `FAMILIES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antispoof.constants import DEFAULT_HOP, NB_SAMP

REAL_INDEX = 1  # bona fide
FAKE_INDEX = 0  # spoof
LABEL_TO_INDEX = {"fake": FAKE_INDEX, "real": REAL_INDEX}

POLICY_MODES = ("head", "windows", "whole")
FILE_RULES = ("mean", "min")  # how "windows" makes one file score (scoring/file_rules.py)


@dataclass(frozen=True)
class InputPolicy:
    """What the model sees of a file, and how a file's score comes from it.

    mode "head": the first `n_samples` (tiled if shorter), as the reference scripts; "windows": windows of
    `n_samples` every `hop` samples over the whole file, the file's logits = the mean of its windows' logits
    (`file_rule` "mean") or those of its most fake-sounding window ("min");
    "whole": the whole file (up to `max_seconds`) in one pass, for models trained on whole utterances.
    `normalize`: layer-norm each input waveform (zero mean, unit variance) before the model.
    """

    mode: str = "head"
    n_samples: int = NB_SAMP
    hop: int = DEFAULT_HOP
    max_seconds: float = 600.0
    normalize: bool = False
    file_rule: str = "mean"

    def __post_init__(self):
        if self.mode not in POLICY_MODES:
            raise ValueError(f"input policy mode must be one of {POLICY_MODES}, got {self.mode!r}")
        if self.file_rule not in FILE_RULES:
            raise ValueError(f"file rule must be one of {FILE_RULES}, got {self.file_rule!r}")
        if self.n_samples < 1 or self.hop < 1 or self.max_seconds <= 0:
            raise ValueError(f"input policy needs n_samples, hop, max_seconds > 0, got {self}")

    def describe(self) -> str:
        """A short stable string stored with every score, e.g. "head n=64600", "windows n=64600 hop=32300"."""
        text = {
            "head": f"head n={self.n_samples}",
            "windows": f"windows n={self.n_samples} hop={self.hop}"
            + ("" if self.file_rule == "mean" else f" file={self.file_rule}"),
            "whole": f"whole max_s={self.max_seconds:g}",
        }[self.mode]
        return text + (" normalize" if self.normalize else "")


REFERENCE_HEAD = InputPolicy("head")  # SSL_Anti-spoofing and clovaai: the first 64,600 samples, tiled


def short_list(keys, n: int = 12) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def describe(obj: Any) -> str:
    """What a loaded object looks like, for error messages."""
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        n_tensors = sum(isinstance(v, Tensor) for v in obj.values())
        return f"a dict with {len(keys)} keys ({n_tensors} tensors): {short_list(keys, 8)}"
    return f"a {type(obj).__name__}"


def strict_load(model: nn.Module, state: Mapping[str, Tensor], source: str, assign: bool = False) -> None:
    """load_state_dict(strict=True), with an error that lists the missing and unexpected keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = [f"{source} does not match the {model.arch} model built for it:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {short_list(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {short_list(unexpected)}")
        if wrong_shape:
            parts.append(
                f"  shape mismatches (file vs model) ({len(wrong_shape)}): {short_list(wrong_shape, 6)}"
            )
        raise ValueError("\n".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)


def build_and_load(network: type[nn.Module], cfg, state: Mapping[str, Tensor], source: str) -> nn.Module:
    """A `network` holding exactly `state`. Large models are built on the meta device (no memory, no random
    initialisation: ~10 s saved for a 300M model) and take the loaded tensors; a network whose buffers are
    computed, not loaded (AASIST's sinc filters), sets `build_on_meta = False`."""
    if not getattr(network, "build_on_meta", True):
        model = network(cfg)
        strict_load(model, state, source)
        return model
    with torch.device("meta"):
        model = network(cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    strict_load(model, state, source, assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()]), "tensor left on meta"
    return model


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def tensor_dict(state: Mapping) -> dict[str, Tensor] | None:
    """The state dict without a DataParallel 'module.' prefix, or None if `state` is not all tensors."""
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        return None
    return strip_prefix(state, "module.")


@dataclass(frozen=True)
class Format:
    """A published checkpoint format: which arch it builds, how to recognise it, how to load it."""

    name: str
    arch: str
    matches: Callable[[Mapping], bool]  # the contents of a file (after safe reading) -> is it this format?
    load: Callable[..., nn.Module]  # (contents, config overrides, source[, arch for `starts`])
    published: str  # what such a file looks like, for the error of a file that is no known format
    starts: tuple[str, ...] = ()  # a front end only: the archs it can start a new detector of (load's arch=)


@dataclass(frozen=True)
class Family:
    """One detector family: its network class, config dataclass, named presets and published formats."""

    network: type[nn.Module]
    config: type
    formats: tuple[Format, ...] = ()
    presets: Mapping[str, Any] = field(default_factory=dict)  # 'aasist-l' -> a config of `config`
    license_notice: str | None = None  # printed once when trained weights of this family are loaded

    @property
    def arch(self) -> str:
        return self.network.arch


def make_config(cls: type, config: Any = None, base: Any = None):
    """A `cls` config dataclass from None / dataclass / dict / JSON path, applied over `base`."""
    cfg = base if base is not None else cls()
    if config is None:
        return cfg
    if isinstance(config, (str, Path)):
        config = json.loads(Path(config).read_text())
    if is_dataclass(config):
        if not isinstance(config, cls):
            raise ValueError(f"config is a {type(config).__name__}, but this model needs a {cls.__name__}")
        return replace(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, a {cls.__name__}, a JSON path or None, not {type(config)}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(names)}")
    return replace(cfg, **config)
