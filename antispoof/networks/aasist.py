"""clovaai AASIST / AASIST-L (Jung et al., ICASSP 2022): a fixed sinc filter bank on the raw waveform + the
AASIST graph-attention back end, which SSL-AASIST (ssl_aasist.py) shares. Config, network, presets and the
clovaai checkpoint format.

The back-end parameter names are those of the reference code (`first_bn`, `encoder`, `GAT_layer_S`,
`HtrgGAT_layer_ST11`, `pool_hS1`, `out_layer`, ...), so released weights load with `strict=True`.
Output: logits (B, 2), index 1 = real (bona fide); the reference score is the raw logit `logits[:, 1]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antispoof.networks.common import (
    REFERENCE_HEAD,
    Family,
    Format,
    describe,
    make_config,
    strict_load,
    strip_prefix,
    tensor_dict,
)


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


def residual_encoder(filts: list, time_pool: int) -> nn.Sequential:
    # Each block wrapped in its own Sequential: checkpoint keys are encoder.{i}.0.*
    specs = [(filts[1], True), (filts[2], False), (filts[3], False)] + [(filts[4], False)] * 3
    return nn.Sequential(*(nn.Sequential(Residual_block(f, first, time_pool)) for f, first in specs))


class GraphBackEnd(nn.Module):
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


class AASIST(GraphBackEnd):
    """clovaai AASIST / AASIST-L on raw 16 kHz waveform. forward: (B, T) -> logits (B, 2)."""

    arch = "aasist"
    build_on_meta = False  # small, and its sinc filter buffer is computed, not loaded
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
        self.encoder = residual_encoder(filts, time_pool=3)
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


def backend_sizes(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """filts and gat_dims of an AASIST back end from its tensors (reference naming, no prefix)."""
    blocks = [sd[f"encoder.{i}.0.conv1.weight"].shape for i in range(4)]  # (out, in, 2, 3)
    return {
        "filts": [[int(s[1]), int(s[0])] for s in blocks],
        "gat_dims": [
            sd["GAT_layer_S.att_proj.weight"].shape[0],
            sd["HtrgGAT_layer_ST11.att_proj.weight"].shape[0],
        ],
    }


def load_clovaai(sd: Mapping[str, Tensor], overrides, source: str) -> AASIST:
    """clovaai AASIST / AASIST-L state dict -> AASIST (the preset whose sizes match, unless overridden)."""
    sd = strip_prefix(sd, "module.")
    try:
        b = backend_sizes(sd)
    except KeyError as err:
        raise ValueError(
            f"{source} looks like an AASIST state dict but lacks {err}: {describe(sd)}"
        ) from None
    preset = next(
        (
            name
            for name, p in AASIST_PRESETS.items()
            if p.filts[1:] == b["filts"] and p.gat_dims == b["gat_dims"]
        ),
        None,
    )
    if preset is None and not overrides:
        raise ValueError(
            f"{source} is an AASIST state dict of an unknown size (filts {b['filts']}, "
            f"gat_dims {b['gat_dims']}); "
            "pass its model_config as config= (a dict or the clovaai .conf's model_config as JSON)"
        )
    base = replace(AASIST_PRESETS[preset]) if preset else None
    model = AASIST(make_config(AASISTConfig, overrides, base=base))
    strict_load(model, sd, source)
    return model


def _is_clovaai(state: Mapping) -> bool:
    sd = tensor_dict(state)
    return sd is not None and {"pos_S", "out_layer.weight", "GAT_layer_S.att_weight"} <= set(sd)


FAMILY = Family(
    network=AASIST,
    config=AASISTConfig,
    presets={"aasist-l": AASIST_PRESETS["aasist-l"]},
    formats=(
        Format(
            "clovaai",
            "aasist",
            _is_clovaai,
            load_clovaai,
            published="a clovaai AASIST state dict (AASIST.pth / AASIST-L.pth)",
        ),
    ),
)
