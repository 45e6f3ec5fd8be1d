"""SSL-AASIST (Tak et al., Odyssey 2022): the wav2vec 2.0 XLS-R 300M front end (transformers' `Wav2Vec2Model`,
no fairseq) + the AASIST graph-attention back end (aasist.py). Config, network and the SSL_Anti-spoofing state
dict format (`ssl_model.model.*` in fairseq names, `LL.*`, `GAT_layer_S.*`, ..., e.g. LA_model.pth).

Output: logits (B, 2), index 1 = real (bona fide); the reference score is the raw logit `logits[:, 1]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from antispoof.networks.aasist import GraphBackEnd, backend_sizes, residual_encoder
from antispoof.networks.common import (
    REFERENCE_HEAD,
    Family,
    Format,
    build_and_load,
    describe,
    make_config,
    strip_prefix,
    tensor_dict,
)
from antispoof.networks.keymaps import (
    fairseq_to_transformers,
    fill_unreadable_sizes,
    frontend_sizes_from_fairseq,
)
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2


@dataclass
class SSLAASISTConfig(Wav2Vec2FrontEndConfig):
    """Every hyper-parameter of SSL-AASIST. Defaults = the published model (XLS-R 300M + reference back end).

    Front-end fields (transformers' `Wav2Vec2Config` names, fairseq names in the comments) come from
    `wav2vec.Wav2Vec2FrontEndConfig`; the AASIST back-end fields follow.
    """

    # AASIST back end (hard-coded in the reference Model.__init__). filts[0] = LL output size, which becomes
    # the frequency axis of the 2-D map; filts[1:] = (in, out) channels of the residual blocks.
    filts: list = field(default_factory=lambda: [128, [1, 32], [32, 32], [32, 64], [64, 64]])
    gat_dims: list[int] = field(default_factory=lambda: [64, 32])
    pool_ratios: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5, 0.5])
    temperatures: list[float] = field(default_factory=lambda: [2.0, 2.0, 100.0, 100.0])
    attention_channels: int = 128  # hidden channels of the 1x1-conv attention used for the SAP pooling


# --------------------------------------------------------------------------------------------------
# SSL-AASIST
# --------------------------------------------------------------------------------------------------


class SSLAASIST(FrontEndMixin, GraphBackEnd):
    """wav2vec 2.0 (XLS-R) front end + AASIST back end. forward: 16 kHz waveform (B, T) -> logits (B, 2)."""

    arch = "ssl_aasist"
    default_policy = REFERENCE_HEAD
    score_kind = "logit_real"  # the score the reference writes: logits[:, REAL_INDEX]

    def __init__(self, config: SSLAASISTConfig | None = None):
        super().__init__()
        cfg = config or SSLAASISTConfig()
        self.config = cfg
        self.ssl_model = new_wav2vec2(cfg)
        filts = cfg.filts
        c = filts[-1][-1]
        self.LL = nn.Linear(cfg.hidden_size, filts[0])
        self.first_bn = nn.BatchNorm2d(1)
        self.first_bn1 = nn.BatchNorm2d(c)
        self.selu = nn.SELU()
        self.encoder = residual_encoder(filts, time_pool=1)
        self.attention = nn.Sequential(
            nn.Conv2d(c, cfg.attention_channels, kernel_size=1),
            nn.SELU(),
            nn.BatchNorm2d(cfg.attention_channels),
            nn.Conv2d(cfg.attention_channels, c, kernel_size=1),
        )
        # The (3, 3) max-pool after LL turns filts[0] = 128 LL outputs into 42 spectral nodes.
        self._init_graph(filts[0] // 3, c, cfg.gat_dims, cfg.pool_ratios, cfg.temperatures)
        self._init_frontend_options()

    @property
    def frontend(self) -> nn.Module:
        return self.ssl_model

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:  # (B, T, 1) as some loaders produce
            x = x.squeeze(-1)
        x = self.LL(self.frontend_features(x))  # (B, frames, filts[0]); 64,600 samples -> 201 frames
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, filts[0], frames)
        x = self.selu(self.first_bn(F.max_pool2d(x, (3, 3))))  # (B, 1, 42, 67)
        x = self.selu(self.first_bn1(self.encoder(x)))  # (B, C, 42, 67)
        w = self.attention(x)  # (B, C, 42, 67)
        # Self-attentive pooling over time -> spectral nodes, over frequency -> temporal nodes.
        e_S = (x * F.softmax(w, dim=-1)).sum(dim=-1).transpose(1, 2) + self.pos_S  # (B, 42, C)
        e_T = (x * F.softmax(w, dim=-2)).sum(dim=-2).transpose(1, 2)  # (B, 67, C)
        return self._graph_forward(e_S, e_T)


def load_reference(sd: Mapping[str, Tensor], overrides: Mapping[str, Any], source: str) -> SSLAASIST:
    """SSL_Anti-spoofing state dict (fairseq names under ssl_model.model.) -> SSLAASIST."""
    sd = strip_prefix(sd, "module.")  # saved from DataParallel
    prefix = "ssl_model.model."
    front = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    back = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    try:
        sizes = fill_unreadable_sizes(frontend_sizes_from_fairseq(front, source), overrides, source)
        b = backend_sizes(back)
        sizes["filts"] = [back["LL.weight"].shape[0], *b["filts"]]
        sizes["gat_dims"] = b["gat_dims"]
        sizes["attention_channels"] = back["attention.0.weight"].shape[0]
    except KeyError as err:
        raise ValueError(
            f"{source} looks like an SSL-AASIST state dict but lacks {err}: {describe(sd)}"
        ) from None
    cfg = make_config(SSLAASISTConfig, {**sizes, **overrides})
    state = {**{f"ssl_model.{k}": v for k, v in fairseq_to_transformers(front).items()}, **back}
    return build_and_load(SSLAASIST, cfg, state, source)


def _is_reference(state: Mapping) -> bool:
    sd = tensor_dict(state)
    return sd is not None and any(k.startswith("ssl_model.model.") for k in sd) and "fc0.weight" not in sd


FAMILY = Family(
    network=SSLAASIST,
    config=SSLAASISTConfig,
    formats=(
        Format(
            "reference",
            "ssl_aasist",
            _is_reference,
            load_reference,
            published="an SSL-AASIST state dict in the reference naming (keys 'ssl_model.model.*', 'LL.*', "
            "'GAT_layer_S.*', ..., e.g. LA_model.pth)",
        ),
    ),
)
