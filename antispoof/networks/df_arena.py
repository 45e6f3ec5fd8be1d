"""DF Arena (Speech-Arena-2025/DF_Arena_1B_V_1, _500M_V_1, _100M_V_1; "RAPTOR", Kulkarni et al. 2026): a
wav2vec 2.0 front end (XLS-R 1B / 300M), every hidden state pooled over time by a learned attention
(`attn_scores`), one sigmoid weight per hidden state (`fc0`), the weighted sum, BatchNorm2d + SELU, and a
Conformer head with a class token (`conformer`: 4 blocks, `fc5` Linear(D, 2)). Config, network, presets and
the released `pytorch_model.bin` (the transformers remote-code model: keys `backbone.*`, the front end in
transformers names).

The reference pipeline (`AntispoofingFeatureExtractor` + `pipeline_antispoofing.py`): one file at a time, the
first 64,600 samples (tiled if shorter), no normalisation; label 0 = spoof, 1 = bonafide; its score is
softmax(logits)[:, 1]. Its `backbone.py` reads `hidden_states` of transformers 4.x: the L + 1 states end with
the final LayerNorm's output (`wav2vec.hidden_states` rebuilds that in every transformers version).

The Conformer head's code (`conformer.py`, `FinalConformer`) was not found in any public copy: this head is
TCM-ADD's `MyConformer` with its head-token `ConformerBlock` (ductuantruong/tcm_add), whose parameter count
matches the published sizes (436 M for 500M, 1,148 M for 1B); see tests/data/df_arena_tiny/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
from antispoof.networks.keymaps import fill_unreadable_sizes, frontend_from_transformers_tensors
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2

LICENSE_NOTICE = (
    "DF Arena weights (Speech-Arena-2025) are released under a non-commercial license ('other' on the Hub): "
    "read the model card before any use beyond research"
)


@dataclass
class DFArenaConfig(Wav2Vec2FrontEndConfig):
    """DF Arena. Defaults = DF_Arena_1B_V_1: XLS-R 1B front end (1280 wide, 48 layers), the Conformer head of
    its backbone.py (4 heads, ff_mult 4, expansion 2, kernel 31, 4 blocks, 10,000 positions)."""

    hidden_size: int = 1280
    num_hidden_layers: int = 48
    intermediate_size: int = 5120
    conformer_heads: int = 4
    conformer_ff_mult: int = 4
    conformer_exp_fac: int = 2
    conformer_kernel_size: int = 31
    conformer_blocks: int = 4
    max_positions: int = 10000  # rows of the fixed sinusoidal table: frames + 1 must not exceed it


DF_ARENA_PRESETS = {
    "df-arena-1b": DFArenaConfig(),
    "df-arena-500m": DFArenaConfig(hidden_size=1024, num_hidden_layers=24, intermediate_size=4096),
}


def sinusoidal_embedding(n_positions: int, dim: int) -> Tensor:
    """(1, n_positions, dim): sin on even, cos on odd channels, as the reference (float32, row by row)."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    rate = torch.tensor([10000 ** (2 * (i // 2) / dim) for i in range(dim)], dtype=torch.float64)
    pe = (pos / rate).float()  # the reference divides in Python floats, then stores float32
    pe[:, 0::2] = torch.sin(pe[:, 0::2])
    pe[:, 1::2] = torch.cos(pe[:, 1::2])
    return pe.unsqueeze(0)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor):
        return self.fn(self.norm(x))


class _Half(nn.Module):
    """0.5 * fn(x): the Macaron half-step feed-forward (`Scale(0.5, ...)` in the reference)."""

    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) * 0.5


class _FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult),
            nn.SiLU(),
            nn.Dropout(0.0),
            nn.Linear(dim * mult, dim),
            nn.Dropout(0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _HeadTokenAttention(nn.Module):
    """Multi-head self-attention with one extra "head token" per head (the mean of that head's channels
    over time, projected to D); afterwards the class token (row 0) adds the mean of the head tokens and of
    the other rows. Returns (x, attention) as the reference."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.num_heads = heads
        dim_head = dim // heads
        self.scale = dim_head**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.ht_proj = nn.Linear(dim_head, dim)
        self.ht_norm = nn.LayerNorm(dim_head)
        self.pos_embed = nn.Parameter(torch.zeros(1, heads, dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, n, c = x.shape
        h = self.num_heads
        heads = x.reshape(b, n, h, c // h).mean(dim=1)  # (B, h, dh): each head's channels, mean over time
        heads = self.ht_proj(heads).reshape(b, h, h, c // h)  # (B, h, D) viewed as (B, h, h, dh)
        heads = F.gelu(self.ht_norm(heads)).flatten(2) + self.pos_embed  # (B, h, D)
        x = torch.cat([x, heads], dim=1)  # (B, N + h, D)
        q, k, v = self.qkv(x).reshape(b, n + h, 3, h, c // h).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N + h, dh)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = self.proj((attn @ v).transpose(1, 2).reshape(b, n + h, c))
        cls, rows, head_rows = torch.split(x, [1, n - 1, h], dim=1)
        cls = cls + head_rows.mean(dim=1, keepdim=True) + rows.mean(dim=1, keepdim=True)
        return torch.cat([cls, rows], dim=1), attn


class _PreNormAttention(_PreNorm):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.fn(self.norm(x))


class _Transpose(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


class _GLU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        out, gate = x.chunk(2, dim=1)
        return out * gate.sigmoid()


class _DepthWiseConv1d(nn.Module):
    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        pad = kernel_size // 2
        self.padding = (pad, pad - (kernel_size + 1) % 2)  # "same" length for odd and even kernels
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.padding))


class _ConvModule(nn.Module):
    def __init__(self, dim: int, expansion: int, kernel_size: int):
        super().__init__()
        inner = dim * expansion
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            _Transpose(),
            nn.Conv1d(dim, inner * 2, 1),
            _GLU(),
            _DepthWiseConv1d(inner, kernel_size),
            nn.BatchNorm1d(inner),
            nn.SiLU(),
            nn.Conv1d(inner, dim, 1),
            _Transpose(),
            nn.Dropout(0.0),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    """Half feed-forward, head-token attention, convolution module, half feed-forward, LayerNorm."""

    def __init__(self, dim: int, heads: int, ff_mult: int, expansion: int, kernel_size: int):
        super().__init__()
        self.ff1 = _Half(_PreNorm(dim, _FeedForward(dim, ff_mult)))
        self.attn = _PreNormAttention(dim, _HeadTokenAttention(dim, heads))
        self.conv = _ConvModule(dim, expansion, kernel_size)
        self.ff2 = _Half(_PreNorm(dim, _FeedForward(dim, ff_mult)))
        self.post_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.ff1(x) + x
        x = self.attn(x)[0] + x
        x = self.conv(x) + x
        x = self.ff2(x) + x
        return self.post_norm(x)


class ConformerHead(nn.Module):
    """Sinusoidal positions, a class token in front, Conformer blocks, `fc5` on the class token -> (B, 2)."""

    def __init__(self, cfg: DFArenaConfig):
        super().__init__()
        d = cfg.hidden_size
        self.positional_emb = nn.Parameter(sinusoidal_embedding(cfg.max_positions, d), requires_grad=False)
        self.encoder_blocks = nn.ModuleList(
            ConformerBlock(
                d,
                cfg.conformer_heads,
                cfg.conformer_ff_mult,
                cfg.conformer_exp_fac,
                cfg.conformer_kernel_size,
            )
            for _ in range(cfg.conformer_blocks)
        )
        self.class_token = nn.Parameter(torch.rand(1, d))
        self.fc5 = nn.Linear(d, 2)

    def embedding(self, x: Tensor) -> Tensor:
        """(B, frames, D) -> the class token's output (B, D)."""
        if x.size(1) + 1 > self.positional_emb.size(1):
            raise ValueError(f"{x.size(1)} frames exceed the head's {self.positional_emb.size(1)} positions")
        x = x + self.positional_emb[:, : x.size(1)]
        x = torch.cat([self.class_token.expand(x.size(0), 1, -1), x], dim=1)  # (B, 1 + frames, D)
        for block in self.encoder_blocks:
            x = block(x)
        return x[:, 0]

    def forward(self, x: Tensor) -> Tensor:
        return self.fc5(self.embedding(x))


class DFArena(FrontEndMixin, nn.Module):
    """forward: (B, 64600) 16 kHz waveform -> logits (B, 2), index 1 = bona fide."""

    arch = "df_arena"
    default_policy = REFERENCE_HEAD  # the feature extractor's pad: the first 64,600 samples, tiled if shorter
    score_kind = "softmax_real"  # the pipeline's softmax(logits)[:, 1] (id2label 1 = bonafide)

    def __init__(self, config: DFArenaConfig | None = None):
        super().__init__()
        cfg = self.config = config or DFArenaConfig()
        self.ssl_model = new_wav2vec2(cfg)
        self.first_bn = nn.BatchNorm2d(num_features=1)
        self.selu = nn.SELU()
        self.fc0 = nn.Linear(cfg.hidden_size, 1)
        self.sig = nn.Sigmoid()
        self.conformer = ConformerHead(cfg)
        self.attn_scores = nn.Linear(cfg.hidden_size, 1, bias=False)
        self._init_frontend_options()

    @property
    def frontend(self) -> nn.Module:
        return self.ssl_model

    def layer_weights(self, states: Tensor) -> tuple[Tensor, Tensor]:
        """(B, L + 1, frames, D) -> (attention-pooled states (B, L + 1, D), sigmoid weights (B, L + 1, 1))."""
        att = torch.softmax(self.attn_scores(states), dim=2)  # over frames: (B, L + 1, frames, 1)
        pooled = (att * states).sum(dim=2)
        return pooled, self.sig(self.fc0(pooled))

    def head_input(self, states: Tensor) -> Tensor:
        """(B, L + 1, frames, D) hidden states -> the Conformer head's input (B, frames, D)."""
        _, weights = self.layer_weights(states)
        x = (states * weights.unsqueeze(-1)).sum(dim=1)  # (B, frames, D)
        return self.selu(self.first_bn(x.unsqueeze(1))).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.squeeze(-1)
        states = torch.stack(self.frontend_hidden_states(x), dim=1)  # (B, L + 1, frames, D)
        return self.conformer(self.head_input(states))


def head_sizes(sd: Mapping[str, Tensor]) -> dict:
    """The Conformer head's sizes from its tensors (names without the `conformer.` prefix)."""
    d = sd["fc5.weight"].shape[1]
    blocks = {
        int(m.group(1)) for k in sd if (m := re.fullmatch(r"encoder_blocks\.(\d+)\.post_norm\.weight", k))
    }
    return {
        "conformer_heads": sd["encoder_blocks.0.attn.fn.pos_embed"].shape[1],
        "conformer_ff_mult": sd["encoder_blocks.0.ff1.fn.fn.net.0.weight"].shape[0] // d,
        "conformer_exp_fac": sd["encoder_blocks.0.conv.net.2.weight"].shape[0] // (2 * d),
        "conformer_kernel_size": sd["encoder_blocks.0.conv.net.4.conv.weight"].shape[2],
        "conformer_blocks": len(blocks),
        "max_positions": sd["positional_emb"].shape[1],
    }


def load_df_arena(state: Mapping[str, Tensor], overrides, source: str) -> DFArena:
    """DF Arena `pytorch_model.bin` (or its safetensors / `backbone` state dict) -> DFArena."""
    sd = strip_prefix(strip_prefix(state, "module."), "backbone.")
    front = {k[len("ssl_model.") :]: v for k, v in sd.items() if k.startswith("ssl_model.")}
    head = {k: v for k, v in sd.items() if not k.startswith("ssl_model.")}
    try:
        front, sizes = frontend_from_transformers_tensors(front, source)
        sizes = fill_unreadable_sizes(sizes, overrides, source)
        sizes.update(
            head_sizes({k[len("conformer.") :]: v for k, v in head.items() if k.startswith("conformer.")})
        )
    except KeyError as err:
        raise ValueError(
            f"{source} looks like a DF Arena state dict but lacks {err}: {describe(sd)}"
        ) from None
    cfg = make_config(DFArenaConfig, {**sizes, **overrides})
    if head["fc0.weight"].shape[1] != cfg.hidden_size:
        raise ValueError(
            f"{source}: fc0 takes {head['fc0.weight'].shape[1]} inputs, but the front end is "
            f"{cfg.hidden_size} wide"
        )
    return build_and_load(DFArena, cfg, {**{f"ssl_model.{k}": v for k, v in front.items()}, **head}, source)


def _is_df_arena(state: Mapping) -> bool:
    sd = tensor_dict(state)
    if sd is None:
        return False
    sd = strip_prefix(sd, "backbone.")
    return {"attn_scores.weight", "fc0.weight", "conformer.fc5.weight", "conformer.class_token"} <= set(sd)


FAMILY = Family(
    network=DFArena,
    config=DFArenaConfig,
    presets=DF_ARENA_PRESETS,
    formats=(
        Format(
            "df_arena",
            "df_arena",
            _is_df_arena,
            load_df_arena,
            published="a DF Arena pytorch_model.bin ('backbone.ssl_model.*' in transformers names, "
            "'backbone.conformer.*', 'backbone.fc0.*', 'backbone.attn_scores.weight')",
        ),
    ),
    license_notice=LICENSE_NOTICE,
)
