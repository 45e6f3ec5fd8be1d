"""The detector families and `build_model`. Each family is one file here (network, config, presets, input
policy and score, and the checkpoint formats its authors publish); this module only lists them.

    ssl_aasist.py    SSL-AASIST (XLS-R 300M + AASIST), the SSL_Anti-spoofing state dict (LA_model.pth)
    aasist.py        clovaai AASIST / AASIST-L and the graph back end, the clovaai state dict
    antideepfake.py  NII AntiDeepfake (wav2vec 2.0 / MMS / XLS-R + mean + Linear), its releases
    sls.py           XLS-R + SLS, the authors' state dict
    df_arena.py      DF Arena 1B / 500M (XLS-R + layer attention + Conformer), its pytorch_model.bin
    xlsr_mamba.py    XLSR-Mamba (XLS-R + dual-column bidirectional Mamba), its model.safetensors
    wav2vec.py       the transformers wav2vec 2.0 front end the others share
    keymaps.py       fairseq -> transformers key names, sizes from tensors, fairseq pretraining checkpoints
    common.py        labels, InputPolicy, Format / Family, strict loading

Output of every network: logits (B, 2) with index 1 = real (bona fide), index 0 = fake (spoof); each network's
`score_kind` says which score its reference writes (e.g. "logit_real" = logits[:, 1]).

    net = build_model("aasist-l")   # random weights (released ones: checkpoints.files.load_model)
    logits = net(waveform_batch)                 # (B, 64600) float32, 16 kHz -> (B, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from torch import nn

from antispoof.networks import aasist, antideepfake, df_arena, sls, ssl_aasist, xlsr_mamba
from antispoof.networks.aasist import (
    AASIST,
    AASIST_PRESETS,
    AASISTConfig,
    GraphAttentionLayer,
    GraphPool,
    HtrgGraphAttentionLayer,
    Residual_block,
    sinc_filterbank,
)
from antispoof.networks.antideepfake import ANTIDEEPFAKE_PRESETS, AntiDeepfake, AntiDeepfakeConfig
from antispoof.networks.common import (
    FAKE_INDEX,
    FILE_RULES,
    LABEL_TO_INDEX,
    POLICY_MODES,
    REAL_INDEX,
    REFERENCE_HEAD,
    Family,
    Format,
    InputPolicy,
    make_config,
)
from antispoof.networks.df_arena import DF_ARENA_PRESETS, DFArena, DFArenaConfig
from antispoof.networks.keymaps import FAIRSEQ_PRETRAIN, conv_frames
from antispoof.networks.sls import SLS, SLSConfig
from antispoof.networks.ssl_aasist import SSLAASIST, SSLAASISTConfig
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2, wav2vec2_config
from antispoof.networks.xlsr_mamba import XLSRMamba, XLSRMambaConfig

# Adding a detector: its file here, and one line in this tuple (its formats are tried in this order, after the
# front-end formats, so a format that matches a subset of another's keys comes after it).
FAMILIES: dict[str, Family] = {
    f.arch: f
    for f in (
        xlsr_mamba.FAMILY,  # before ssl_aasist: the SSL-AASIST reference format matches a subset of its keys
        ssl_aasist.FAMILY,
        aasist.FAMILY,
        antideepfake.FAMILY,
        sls.FAMILY,
        df_arena.FAMILY,
    )
}

ARCHS = tuple(FAMILIES)
NETWORKS = {arch: f.network for arch, f in FAMILIES.items()}
_CONFIG_CLASSES = {arch: f.config for arch, f in FAMILIES.items()}
# Front-end formats first: a fairseq pretraining checkpoint starts a new detector of several families.
FORMATS: list[Format] = [FAIRSEQ_PRETRAIN, *(fmt for f in FAMILIES.values() for fmt in f.formats)]
# What each published format looks like, for the error of a file that is none of them.
PUBLISHED = ", ".join(
    [fmt.published for fmt in FORMATS] + ["a transformers wav2vec 2.0 folder (config.json + weights)"]
)


def detect(state: Mapping) -> Format | None:
    """The published format a loaded file holds, or None."""
    return next((f for f in FORMATS if f.matches(state)), None)


def config_for(arch: str, config: Any = None, base: Any = None):
    """A config dataclass for `arch` from None / dataclass / dict / JSON path, applied over `base`."""
    try:
        return make_config(_CONFIG_CLASSES[arch], config, base)
    except ValueError as err:
        raise ValueError(f"arch {arch!r}: {err}") from None


def _presets() -> dict[str, tuple[str, Any]]:
    """Normalised preset name ('aasist_l', 'antideepfake_w2v_small') -> (arch, config)."""
    return {
        name.lower().replace("-", "_"): (arch, cfg)
        for arch, f in FAMILIES.items()
        for name, cfg in f.presets.items()
    }


def canonical_arch(arch: str) -> tuple[str, Any]:
    """(arch, preset config or None) from a name: an arch, or a family's preset such as 'aasist-l' or
    'antideepfake-<size>'."""
    name = arch.lower().replace("-", "_")
    if name in ARCHS:
        return name, None
    presets = _presets()
    if name in presets:
        return presets[name]
    if f"antideepfake_{name}" in presets:  # a bare AntiDeepfake size, as its hparams files name them
        return presets[f"antideepfake_{name}"]
    names = ", ".join([*map(repr, ARCHS), *(repr(p) for f in FAMILIES.values() for p in f.presets)])
    raise ValueError(f"unknown arch {arch!r}; choose one of {names}")


def build_model(arch: str, config: Any = None) -> nn.Module:
    """A new model with random weights. arch: one of ARCHS ('ssl_aasist', 'aasist', 'antideepfake', ...) or
    a family preset ('aasist-l', 'antideepfake-<w2v_small|w2v_large|mms_300m|mms_1b|xlsr_1b|xlsr_2b>', ...).

    config: None (defaults), a config dataclass, a dict of its fields, or a path to a JSON file of them.
    """
    arch, preset = canonical_arch(arch)
    cfg = config_for(arch, config, base=replace(preset) if preset else None)
    return NETWORKS[arch](cfg)


__all__ = [
    "InputPolicy",
    "SSLAASISTConfig",
    "AASISTConfig",
    "AntiDeepfakeConfig",
    "SLSConfig",
    "GraphAttentionLayer",
    "HtrgGraphAttentionLayer",
    "GraphPool",
    "Residual_block",
    "SSLAASIST",
    "sinc_filterbank",
    "AASIST",
    "AntiDeepfake",
    "conv_frames",
    "SLS",
    "DFArena",
    "DFArenaConfig",
    "DF_ARENA_PRESETS",
    "XLSRMamba",
    "XLSRMambaConfig",
    "build_model",
    "REAL_INDEX",
    "FAKE_INDEX",
    "LABEL_TO_INDEX",
    "ARCHS",
    "POLICY_MODES",
    "FILE_RULES",
    "REFERENCE_HEAD",
    "AASIST_PRESETS",
    "ANTIDEEPFAKE_PRESETS",
    "NETWORKS",
    "FAMILIES",
    "Wav2Vec2FrontEndConfig",
    "FrontEndMixin",
    "new_wav2vec2",
    "wav2vec2_config",
]
