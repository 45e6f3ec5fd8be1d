"""SSL-AASIST and AASIST / AASIST-L: configs, networks, `build_model`, label indices (files: checkpoints/).

SSL-AASIST (Tak et al., Odyssey 2022) = wav2vec 2.0 XLS-R 300M front end (transformers' `Wav2Vec2Model`,
no fairseq) + the AASIST graph-attention back end. AASIST / AASIST-L (Jung et al., ICASSP 2022, clovaai) =
a fixed sinc filter bank on the raw waveform + the same graph back end.

The back-end parameter names are those of the reference code (`LL`, `first_bn`, `encoder`, `GAT_layer_S`,
`HtrgGAT_layer_ST11`, `pool_hS1`, `out_layer`, ...), so released weights load with `strict=True`.

Output: logits (B, 2) with index 1 = real (bona fide) and index 0 = fake (spoof), as in both references. The
score the references write is the raw real-class logit `logits[:, 1]` (higher = more likely real).

    model, info = load_model("la")               # registry name, or a path to any supported file
    logits = model(waveform_batch)               # (B, 64600) float32, 16 kHz, not normalized -> (B, 2)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antispoof.constants import DEFAULT_HOP, NB_SAMP
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2, wav2vec2_config  # noqa: F401

REAL_INDEX = 1  # bona fide
FAKE_INDEX = 0  # spoof
LABEL_TO_INDEX = {"fake": FAKE_INDEX, "real": REAL_INDEX}

ARCHS = ("ssl_aasist", "aasist", "antideepfake", "sls")
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


# --------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------


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


@dataclass
class AASISTConfig:
    """clovaai AASIST `model_config`. Defaults = AASIST.conf; `AASIST_PRESETS["aasist-l"]` = AASIST-L.conf."""

    nb_samp: int = 64600
    first_conv: int = 128  # sinc kernel length (forced odd: 129)
    filts: list = field(default_factory=lambda: [70, [1, 32], [32, 32], [32, 64], [64, 64]])
    gat_dims: list[int] = field(default_factory=lambda: [64, 32])
    pool_ratios: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.5, 0.5])
    temperatures: list[float] = field(default_factory=lambda: [2.0, 2.0, 100.0, 100.0])
    sample_rate: int = 16000


AASIST_PRESETS = {
    "aasist": AASISTConfig(),
    "aasist-l": AASISTConfig(
        filts=[70, [1, 32], [32, 32], [32, 24], [24, 24]], gat_dims=[24, 32], pool_ratios=[0.4, 0.5, 0.7, 0.5]
    ),
}


@dataclass
class AntiDeepfakeConfig(Wav2Vec2FrontEndConfig):
    """NII AntiDeepfake (`models/W2V.py`): a wav2vec 2.0 front end, the mean over frames, Linear(D, 2).
    Defaults = mms_300m; `ANTIDEEPFAKE_PRESETS` holds the six released sizes."""


_BASE_STRUCTURE = {"feat_extract_norm": "group", "do_stable_layer_norm": False, "conv_bias": False}
# The reference's global_configs (models/W2V_configs.py). Released w2v_small / w2v_large checkpoints may carry
# another structure than their name suggests: the loader reads it from the tensors, not from the name.
ANTIDEEPFAKE_PRESETS = {
    "w2v_small": AntiDeepfakeConfig(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        **_BASE_STRUCTURE,
    ),
    "w2v_large": AntiDeepfakeConfig(),
    "mms_300m": AntiDeepfakeConfig(),
    "mms_1b": AntiDeepfakeConfig(hidden_size=1280, num_hidden_layers=48, intermediate_size=5120),
    "xlsr_1b": AntiDeepfakeConfig(hidden_size=1280, num_hidden_layers=48, intermediate_size=5120),
    "xlsr_2b": AntiDeepfakeConfig(hidden_size=1920, num_hidden_layers=48, intermediate_size=7680),
}


@dataclass
class SLSConfig(Wav2Vec2FrontEndConfig):
    """XLS-R + SLS (QiShanZhang/SLSforASVspoof-2021-DF). Defaults = the published model (XLS-R 300M)."""

    n_samples: int = 64600  # the fixed input length the classifier is sized for (201 frames)
    fc1_hidden: int = 1024  # fc1 output size


# --------------------------------------------------------------------------------------------------
# AASIST graph back end (shared by both models)
# --------------------------------------------------------------------------------------------------


def _batch_norm_nodes(bn: nn.BatchNorm1d, x: Tensor) -> Tensor:
    """BatchNorm1d over the feature dim of (B, N, D), every node counted as a sample (as the reference)."""
    return bn(x.reshape(-1, x.size(-1))).view_as(x)


def _pairwise_products(x: Tensor) -> Tensor:
    """(B, N, D) -> (B, N, N, D) with [b, i, j] = x_i * x_j."""
    return x.unsqueeze(2) * x.unsqueeze(1)


class GraphAttentionLayer(nn.Module):
    """Graph attention over a fully connected graph of N nodes (GAT-S / GAT-T)."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = nn.Parameter(nn.init.xavier_normal_(torch.empty(out_dim, 1)))
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temp = temperature

    def forward(self, x: Tensor) -> Tensor:  # (B, N, in_dim) -> (B, N, out_dim)
        x = self.input_drop(x)
        scores = torch.tanh(self.att_proj(_pairwise_products(x))) @ self.att_weight  # (B, N, N, 1)
        # Normalized over the first node index (dim -2 of the 4-D map), as in the reference.
        att = F.softmax(scores / self.temp, dim=-2).squeeze(-1)  # (B, N, N)
        x = self.proj_with_att(att @ x) + self.proj_without_att(x)
        return self.act(_batch_norm_nodes(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention over two node types (temporal, spectral) plus a master node."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        # Attention vectors: within type 1, within type 2, between types, and towards the master node.
        self.att_weight11 = nn.Parameter(nn.init.xavier_normal_(torch.empty(out_dim, 1)))
        self.att_weight22 = nn.Parameter(nn.init.xavier_normal_(torch.empty(out_dim, 1)))
        self.att_weight12 = nn.Parameter(nn.init.xavier_normal_(torch.empty(out_dim, 1)))
        self.att_weightM = nn.Parameter(nn.init.xavier_normal_(torch.empty(out_dim, 1)))
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temp = temperature

    def forward(self, x1: Tensor, x2: Tensor, master: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x1 (B, N1, in), x2 (B, N2, in), master (B or 1, 1, in) -> same shapes with out_dim features."""
        n1 = x1.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)  # (B, N, in), N = N1 + N2
        x = self.input_drop(x)

        # Node-to-node attention with one attention vector per block of the (N, N) map: within type 1,
        # within type 2, and between the types (both directions share att_weight12).
        pair = torch.tanh(self.att_proj(_pairwise_products(x)))  # (B, N, N, out)
        weights = torch.cat([self.att_weight11, self.att_weight22, self.att_weight12], dim=1)  # (out, 3)
        s11, s22, s12 = (pair @ weights).split(1, dim=-1)  # 3 x (B, N, N, 1)
        is_type1 = (torch.arange(x.size(1), device=x.device) < n1)[:, None, None]  # (N, 1, 1)
        same_type = is_type1 == is_type1.transpose(0, 1)  # (N, N, 1)
        scores = torch.where(same_type, torch.where(is_type1, s11, s22), s12)
        att = F.softmax(scores / self.temp, dim=-2).squeeze(-1)  # (B, N, N)

        # Master node: attends to every node (directed edges node -> master).
        m_scores = torch.tanh(self.att_projM(x * master)) @ self.att_weightM  # (B, N, 1)
        m_att = F.softmax(m_scores / self.temp, dim=-2)
        master = self.proj_with_attM(m_att.transpose(1, 2) @ x) + self.proj_without_attM(master)

        x = self.proj_with_att(att @ x) + self.proj_without_att(x)
        x = self.act(_batch_norm_nodes(self.bn, x))
        return x[:, :n1], x[:, n1:], master


class GraphPool(nn.Module):
    """Keep the top `k` fraction of nodes, ranked by a learned sigmoid score that also scales them."""

    def __init__(self, k: float, in_dim: int, p: float):
        super().__init__()
        self.k = k
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(p=p) if p > 0 else nn.Identity()

    def forward(self, h: Tensor) -> Tensor:  # (B, N, D) -> (B, max(int(N * k), 1), D)
        scores = torch.sigmoid(self.proj(self.drop(h)))  # (B, N, 1)
        n_keep = max(int(h.size(1) * self.k), 1)
        idx = torch.topk(scores, n_keep, dim=1).indices.expand(-1, -1, h.size(2))
        return torch.gather(h * scores, 1, idx)


class Residual_block(nn.Module):
    """RawNet2-style 2-D residual block on a (B, C, F, T) map."""

    def __init__(self, nb_filts: list[int], first: bool = False, time_pool: int = 1):
        super().__init__()
        c_in, c_out = nb_filts
        self.first = first
        if not first:
            # Quirk kept from both references: bn1 exists (and is in every checkpoint) but its output is
            # discarded, because conv1 reads the block input. It therefore has no effect and is not run; its
            # parameters take no gradient, so DDP needs no find_unused_parameters for it.
            self.bn1 = nn.BatchNorm2d(c_in).requires_grad_(False)
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=(2, 3), padding=(1, 1))
        self.selu = nn.SELU()
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=(2, 3), padding=(0, 1))
        self.downsample = c_in != c_out
        if self.downsample:
            self.conv_downsample = nn.Conv2d(c_in, c_out, kernel_size=(1, 3), padding=(0, 1))
        # AASIST pools time by 3 after every block; SSL-AASIST does not pool.
        self.mp = nn.MaxPool2d((1, time_pool)) if time_pool > 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)  # (B, c_out, F + 1, T)
        out = self.conv2(self.selu(self.bn2(out)))  # (B, c_out, F, T)
        identity = self.conv_downsample(x) if self.downsample else x
        return self.mp(out + identity)


def _residual_encoder(filts: list, time_pool: int) -> nn.Sequential:
    # Each block wrapped in its own Sequential: checkpoint keys are encoder.{i}.0.*
    specs = [(filts[1], True), (filts[2], False), (filts[3], False)] + [(filts[4], False)] * 3
    return nn.Sequential(*(nn.Sequential(Residual_block(f, first, time_pool)) for f, first in specs))


class _GraphBackEnd(nn.Module):
    """Graph part shared by AASIST and SSL-AASIST: spectral/temporal GAT, two heterogeneous GAT branches."""

    def _init_graph(self, n_spectral_nodes: int, node_dim: int, gat_dims, pool_ratios, temperatures) -> None:
        g0, g1 = gat_dims
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        self.pos_S = nn.Parameter(torch.randn(1, n_spectral_nodes, node_dim))
        self.master1 = nn.Parameter(torch.randn(1, 1, g0))
        self.master2 = nn.Parameter(torch.randn(1, 1, g0))
        self.GAT_layer_S = GraphAttentionLayer(node_dim, g0, temperature=temperatures[0])
        self.GAT_layer_T = GraphAttentionLayer(node_dim, g0, temperature=temperatures[1])
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(g0, g1, temperature=temperatures[2])
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(g1, g1, temperature=temperatures[2])
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(g0, g1, temperature=temperatures[2])
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(g1, g1, temperature=temperatures[2])
        # As in the references: pool_hS*/hT* all use pool_ratios[2], and temperatures[3] is unused.
        self.pool_S = GraphPool(pool_ratios[0], g0, 0.3)
        self.pool_T = GraphPool(pool_ratios[1], g0, 0.3)
        self.pool_hS1 = GraphPool(pool_ratios[2], g1, 0.3)
        self.pool_hT1 = GraphPool(pool_ratios[2], g1, 0.3)
        self.pool_hS2 = GraphPool(pool_ratios[2], g1, 0.3)
        self.pool_hT2 = GraphPool(pool_ratios[2], g1, 0.3)
        self.out_layer = nn.Linear(5 * g1, 2)

    def _branch(self, first, second, pool_S, pool_T, out_T, out_S, master):
        out_T1, out_S1, master1 = first(out_T, out_S, master)
        out_S1, out_T1 = pool_S(out_S1), pool_T(out_T1)
        aug_T, aug_S, aug_master = second(out_T1, out_S1, master1)
        return out_T1 + aug_T, out_S1 + aug_S, master1 + aug_master

    def _graph_forward(self, e_S: Tensor, e_T: Tensor) -> Tensor:
        """Spectral nodes e_S (B, N_S, C) (pos_S added), temporal nodes e_T (B, N_T, C) -> logits (B, 2)."""
        out_S = self.pool_S(self.GAT_layer_S(e_S))  # (B, N_S', g0)
        out_T = self.pool_T(self.GAT_layer_T(e_T))  # (B, N_T', g0)
        batch = e_S.size(0)
        # Two inference branches with their own weights and master nodes; the element-wise max merges them.
        layers1 = (self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1)
        layers2 = (self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2)
        T1, S1, M1 = self._branch(*layers1, out_T, out_S, self.master1.expand(batch, -1, -1))
        T2, S2, M2 = self._branch(*layers2, out_T, out_S, self.master2.expand(batch, -1, -1))
        out_T = torch.maximum(self.drop_way(T1), self.drop_way(T2))  # (B, n_T, g1)
        out_S = torch.maximum(self.drop_way(S1), self.drop_way(S2))  # (B, n_S, g1)
        master = torch.maximum(self.drop_way(M1), self.drop_way(M2))  # (B, 1, g1)
        hidden = torch.cat(
            [
                out_T.abs().amax(dim=1),
                out_T.mean(dim=1),
                out_S.abs().amax(dim=1),
                out_S.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )  # (B, 5 * g1)
        return self.out_layer(self.drop(hidden))


# --------------------------------------------------------------------------------------------------
# SSL-AASIST
# --------------------------------------------------------------------------------------------------


class SSLAASIST(FrontEndMixin, _GraphBackEnd):
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
        self.encoder = _residual_encoder(filts, time_pool=1)
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


# --------------------------------------------------------------------------------------------------
# AASIST / AASIST-L
# --------------------------------------------------------------------------------------------------


def sinc_filterbank(n_filters: int, kernel_size: int, sample_rate: int = 16000) -> Tensor:
    """Fixed band-pass sinc filters with mel-spaced edges, Hamming windowed: (n_filters, odd kernel_size).

    Not a learned parameter and not in AASIST checkpoints, so it is rebuilt here. The sinc terms are
    computed in float32, as the reference does (its time axis is a float32 tensor): this reproduces its
    filters bitwise.
    """
    if kernel_size % 2 == 0:
        kernel_size += 1  # symmetric filters
    hz = (sample_rate // 2) * np.linspace(0, 1, 512 // 2 + 1)
    mel = 2595 * np.log10(1 + hz / 700)
    edges_mel = np.linspace(mel.min(), mel.max(), n_filters + 1)
    edges = (700 * (10 ** (edges_mel / 2595) - 1))[:, None]  # (n_filters + 1, 1) band edges in Hz
    t = np.arange(kernel_size, dtype=np.float32) - np.float32((kernel_size - 1) / 2)
    x = (2 * edges).astype(np.float32) * t / np.float32(sample_rate)  # (n_filters + 1, kernel_size)
    low_pass = (2 * edges / sample_rate).astype(np.float32) * np.sinc(x)  # ideal low-pass at each edge
    band_pass = low_pass[1:] - low_pass[:-1]
    return torch.from_numpy(np.hamming(kernel_size).astype(np.float32) * band_pass)


class AASIST(_GraphBackEnd):
    """clovaai AASIST / AASIST-L on raw 16 kHz waveform. forward: (B, T) -> logits (B, 2)."""

    arch = "aasist"
    default_policy = REFERENCE_HEAD
    score_kind = "logit_real"  # the score the reference writes: logits[:, REAL_INDEX]

    def __init__(self, config: AASISTConfig | None = None):
        super().__init__()
        cfg = config or AASISTConfig()
        self.config = cfg
        filts = cfg.filts
        self.register_buffer(
            "sinc_filters", sinc_filterbank(filts[0], cfg.first_conv, cfg.sample_rate), persistent=False
        )
        self.first_bn = nn.BatchNorm2d(1)
        self.selu = nn.SELU()
        self.encoder = _residual_encoder(filts, time_pool=3)
        # The (3, 3) max-pool after the sinc layer turns filts[0] = 70 filters into 23 spectral nodes.
        self._init_graph(filts[0] // 3, filts[-1][-1], cfg.gat_dims, cfg.pool_ratios, cfg.temperatures)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.squeeze(-1)
        x = F.conv1d(x.unsqueeze(1), self.sinc_filters.unsqueeze(1))  # (B, 70, T - 128)
        x = F.max_pool2d(x.unsqueeze(1).abs(), (3, 3))  # (B, 1, 23, (T - 128) // 3)
        e = self.encoder(self.selu(self.first_bn(x)))  # (B, C, 23, frames)
        e_S = e.abs().amax(dim=3).transpose(1, 2) + self.pos_S  # max over time: (B, 23, C)
        e_T = e.abs().amax(dim=2).transpose(1, 2)  # max over frequency: (B, frames, C)
        return self._graph_forward(e_S, e_T)


# --------------------------------------------------------------------------------------------------
# AntiDeepfake and XLS-R + SLS
# --------------------------------------------------------------------------------------------------


class AntiDeepfake(FrontEndMixin, nn.Module):
    """wav2vec 2.0 -> mean over all frames -> `proj_fc` Linear(D, 2). forward: (B, T) -> logits (B, 2).

    The reference scores a whole file (any length, batch 1) after a waveform layer norm; its score is
    softmax(logits)[:, 1]. Zero padding changes the mean (no padding mask), so batch only equal lengths.
    """

    arch = "antideepfake"
    # The reference's inference: the whole file (any length, no padding), waveform layer-normed.
    default_policy = InputPolicy("whole", normalize=True)
    score_kind = "softmax_real"  # evaluation.py: softmax(logits)[:, 1]

    def __init__(self, config: AntiDeepfakeConfig | None = None):
        super().__init__()
        self.config = config or AntiDeepfakeConfig()
        self.m_ssl = new_wav2vec2(self.config)  # the reference's SSL wrapper was m_ssl.model (fairseq)
        self.proj_fc = nn.Linear(self.config.hidden_size, 2)
        self._init_frontend_options()

    @property
    def frontend(self) -> nn.Module:
        return self.m_ssl

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.squeeze(-1)
        return self.proj_fc(self.frontend_features(x).mean(dim=1))  # (B, frames, D) -> (B, D) -> (B, 2)


def conv_frames(n_samples: int, kernels: list[int], strides: list[int]) -> int:
    """Frames the conv feature extractor makes of n_samples (no padding): 64,600 -> 201 for wav2vec 2.0."""
    for k, st in zip(kernels, strides, strict=True):
        n_samples = (n_samples - k) // st + 1
    return n_samples


class SLS(FrontEndMixin, nn.Module):
    """XLS-R + SLS: every encoder layer's output (before the final LayerNorm), weighted by a sigmoid of fc0 on
    its time mean, summed; BatchNorm2d, SELU, 3x3 max-pool, fc1 + SELU, fc3 + SELU, LogSoftmax.

    forward: (B, n_samples) -> log-probabilities (B, 2); the reference score is their [:, 1].
    """

    arch = "sls"
    score_kind = "log_softmax_real"  # the reference writes the LogSoftmax output [:, 1]

    def __init__(self, config: SLSConfig | None = None):
        super().__init__()
        cfg = self.config = config or SLSConfig()
        self.ssl_model = new_wav2vec2(cfg)
        self.first_bn = nn.BatchNorm2d(num_features=1)
        self.selu = nn.SELU()
        self.fc0 = nn.Linear(cfg.hidden_size, 1)
        self.sig = nn.Sigmoid()
        frames = conv_frames(cfg.n_samples, cfg.conv_kernel, cfg.conv_stride)
        self.fc1 = nn.Linear((frames // 3) * (cfg.hidden_size // 3), cfg.fc1_hidden)  # 67 * 341 = 22,847
        self.fc3 = nn.Linear(cfg.fc1_hidden, 2)
        self.logsoftmax = nn.LogSoftmax(dim=1)
        self._init_frontend_options()

    @property
    def frontend(self) -> nn.Module:
        return self.ssl_model

    @property
    def default_policy(self) -> InputPolicy:
        """The reference's head of exactly `n_samples` (64,600): fc1 is sized for that many frames."""
        return InputPolicy("head", n_samples=self.config.n_samples)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.squeeze(-1)
        layers = torch.stack(self.frontend_layer_outputs(x), dim=1)  # (B, L, frames, D)
        weights = self.sig(self.fc0(layers.mean(dim=2)))  # time mean (B, L, D) -> (B, L, 1)
        x = (layers * weights.unsqueeze(-1)).sum(dim=1).unsqueeze(1)  # (B, 1, frames, D)
        x = F.max_pool2d(self.selu(self.first_bn(x)), (3, 3))  # (B, 1, frames // 3, D // 3)
        x = self.selu(self.fc1(torch.flatten(x, 1)))
        # SELU before the LogSoftmax, as in the reference.
        return self.logsoftmax(self.selu(self.fc3(x)))


# --------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------

_CONFIG_CLASSES = {
    "ssl_aasist": SSLAASISTConfig,
    "aasist": AASISTConfig,
    "antideepfake": AntiDeepfakeConfig,
    "sls": SLSConfig,
}
NETWORKS = {"ssl_aasist": SSLAASIST, "aasist": AASIST, "antideepfake": AntiDeepfake, "sls": SLS}


def _make_config(arch: str, config: Any = None, base: Any = None):
    """A config dataclass for `arch` from None / dataclass / dict / JSON path, applied over `base`."""
    cls = _CONFIG_CLASSES[arch]
    cfg = base if base is not None else cls()
    if config is None:
        return cfg
    if isinstance(config, (str, Path)):
        config = json.loads(Path(config).read_text())
    if is_dataclass(config):
        if not isinstance(config, cls):
            raise ValueError(f"config is a {type(config).__name__}, but arch {arch!r} needs a {cls.__name__}")
        return replace(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, a {cls.__name__}, a JSON path or None, not {type(config)}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(names)}")
    return replace(cfg, **config)


def _canonical_arch(arch: str) -> tuple[str, Any]:
    """(arch, preset config or None) from a name: an arch, 'aasist-l', or 'antideepfake-<size>'."""
    name = arch.lower().replace("-", "_")
    if name in ARCHS:
        return name, None
    if name == "aasist_l":
        return "aasist", AASIST_PRESETS["aasist-l"]
    size = name.removeprefix("antideepfake_")
    if size in ANTIDEEPFAKE_PRESETS:
        return "antideepfake", ANTIDEEPFAKE_PRESETS[size]
    sizes = ", ".join(f"'antideepfake-{k}'" for k in ANTIDEEPFAKE_PRESETS)
    archs = ", ".join(map(repr, ARCHS))
    raise ValueError(f"unknown arch {arch!r}; choose one of {archs}, 'aasist-l', {sizes}")


def build_model(arch: str, config: Any = None) -> nn.Module:
    """A new model with random weights. arch: 'ssl_aasist' | 'aasist' | 'antideepfake' | 'sls', or a preset:
    'aasist-l', 'antideepfake-<w2v_small|w2v_large|mms_300m|mms_1b|xlsr_1b|xlsr_2b>'.

    config: None (defaults), a config dataclass, a dict of its fields, or a path to a JSON file of them.
    """
    arch, preset = _canonical_arch(arch)
    cfg = _make_config(arch, config, base=replace(preset) if preset else None)
    return NETWORKS[arch](cfg)

__all__ = [
    'InputPolicy',
    'SSLAASISTConfig',
    'AASISTConfig',
    'AntiDeepfakeConfig',
    'SLSConfig',
    'GraphAttentionLayer',
    'HtrgGraphAttentionLayer',
    'GraphPool',
    'Residual_block',
    'SSLAASIST',
    'sinc_filterbank',
    'AASIST',
    'AntiDeepfake',
    'conv_frames',
    'SLS',
    'build_model',
    'REAL_INDEX',
    'FAKE_INDEX',
    'LABEL_TO_INDEX',
    'ARCHS',
    'POLICY_MODES',
    'REFERENCE_HEAD',
    'AASIST_PRESETS',
    'ANTIDEEPFAKE_PRESETS',
    'NETWORKS',
    'Wav2Vec2FrontEndConfig',
    'FrontEndMixin',
    'new_wav2vec2',
    'wav2vec2_config',
]
