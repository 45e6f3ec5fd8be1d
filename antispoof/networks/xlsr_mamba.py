"""XLSR-Mamba (Xiao & Das, IEEE SPL 2025; swagshaw/XLSR-Mamba): the wav2vec 2.0 XLS-R 300M front end,
Linear(1024, 144), BatchNorm2d + SELU, and a dual-column bidirectional Mamba: one stack of Mamba blocks reads
the frames forwards, another reads them reversed, each column is attention-pooled over time, and
Linear(288, 144) + Linear(144, 2) classify. Config, network (with a pure-PyTorch selective scan: no CUDA
kernel) and the released format (`model.safetensors` on the Hub, `best.pth` from the authors' Drive:
`ssl_model.model.*` in fairseq names, `LL.*`, `first_bn.*`, `conformer.forward_layers.*`, ...).

The reference (model.py + mamba_blocks.py over mamba-ssm 1.1.4): RMSNorm with fused add, fp32 residuals,
and, in its bidirectional branch, the final RMSNorm is applied to the column's *input* plus its residual
stream (the last block's mixer output is left out); kept here. Input: its ASVspoof 2021 LA/DF evaluation
tiles or cuts to 66,800 samples, its In-the-Wild script to 64,600; score = the raw logit `logits[:, 1]`
(index 1 = bona fide).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antispoof.networks.common import Family, Format, InputPolicy, build_and_load, make_config, tensor_dict
from antispoof.networks.keymaps import split_fairseq_frontend
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2


@dataclass
class XLSRMambaConfig(Wav2Vec2FrontEndConfig):
    """Defaults = the released XLSR-Mamba (main.py: --emb-size 144, --num_encoders 12: 6 blocks a column)."""

    emb_size: int = 144  # d_model of the Mamba blocks (LL's output size)
    n_layer: int = 6  # Mamba blocks per column (the reference's num_encoders // 2)
    d_state: int = 16  # mamba-ssm Mamba defaults
    d_conv: int = 4
    expand: int = 2
    norm_eps: float = 1e-5
    n_samples: int = 66800  # Dataset_eval's cut for ASVspoof 2021 LA / DF (In-the-Wild: 64,600)


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, z: Tensor) -> Tensor:
    """The Mamba selective scan in plain PyTorch (as mamba-ssm's `selective_scan_ref` with delta_softplus and
    input-dependent B, C). u, delta, z (batch, d, L); A (d, n); B, C (batch, n, L); D (d) -> (batch, d, L).

    h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t, y_t = C_t . h_t + D u_t, then y * silu(z). In float32."""
    dtype = u.dtype
    u, delta, B, C = u.float(), delta.float(), B.float(), C.float()
    decay = torch.exp(delta.unsqueeze(-1) * A.float()[:, None, :])  # (batch, d, L, n)
    drive = (delta * u).unsqueeze(-1) * B.transpose(1, 2).unsqueeze(1)  # (batch, d, L, n)
    states = torch.empty_like(decay)  # every h_t, so that C is applied in one product
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    for t in range(u.shape[2]):
        h = torch.addcmul(drive[:, :, t], decay[:, :, t], h)
        states[:, :, t] = h
    ys = (states * C.transpose(1, 2).unsqueeze(1)).sum(dim=-1)  # (batch, d, L)
    y = ys + u * D.float()[:, None]
    return (y * F.silu(z.float())).to(dtype)


class Mamba(nn.Module):
    """mamba-ssm 1.1.4's `Mamba` mixer (parameter names kept), computed without its fused kernels."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2):
        super().__init__()
        self.d_inner = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state = d_state
        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # S4D real init
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, h: Tensor) -> Tensor:  # (batch, L, d_model) -> same
        length = h.shape[1]
        x, z = self.in_proj(h).transpose(1, 2).chunk(2, dim=1)  # 2 x (batch, d_inner, L)
        x = F.silu(self.conv1d(x)[..., :length])  # causal depthwise conv
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(dt @ self.dt_proj.weight.T + self.dt_proj.bias).transpose(1, 2)  # (batch, d, L)
        A = -torch.exp(self.A_log.float())
        y = selective_scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D, z)
        return self.out_proj(y.transpose(1, 2))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    """Add -> RMSNorm -> Mamba, returning (mixer output, residual stream), as mamba-ssm's `Block`."""

    def __init__(self, cfg: XLSRMambaConfig):
        super().__init__()
        self.mixer = Mamba(cfg.emb_size, cfg.d_state, cfg.d_conv, cfg.expand)
        self.norm = RMSNorm(cfg.emb_size, cfg.norm_eps)

    def forward(self, h: Tensor, residual: Tensor | None) -> tuple[Tensor, Tensor]:
        residual = h if residual is None else h + residual
        return self.mixer(self.norm(residual)), residual


class DualColumnMamba(nn.Module):
    """The reference's `MixerModel` (bidirectional branch): forward and backward columns, final RMSNorm,
    attention pooling per column, LL, classifier."""

    def __init__(self, cfg: XLSRMambaConfig):
        super().__init__()
        e = cfg.emb_size
        self.forward_layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.backward_layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = RMSNorm(e, cfg.norm_eps)
        self.f_attention_pool = nn.Linear(e, 1)
        self.b_attention_pool = nn.Linear(e, 1)
        self.LL = nn.Linear(2 * e, e)
        self.dropout = nn.Dropout(p=0.1)
        self.classifier = nn.Linear(e, 2)

    @staticmethod
    def _column(layers: nn.ModuleList, h: Tensor) -> Tensor:
        residual = None
        for layer in layers:
            h, residual = layer(h, residual)
        return residual

    @staticmethod
    def _pool(scores: nn.Linear, h: Tensor) -> Tensor:  # (B, L, e) -> (B, e)
        return (F.softmax(scores(h), dim=1) * h).sum(dim=1)

    def forward(self, x: Tensor) -> Tensor:  # (B, frames, e) -> logits (B, 2)
        x = self.dropout(x)
        # The reference's final norm takes the column input x (not the last mixer output) plus the residual
        # stream; the backward column's residual is in reversed time order, x is not.
        forward = self.norm_f(x + self._column(self.forward_layers, x))
        backward = self.norm_f(x + self._column(self.backward_layers, x.flip(1)))
        pooled = torch.cat(
            [self._pool(self.f_attention_pool, forward), self._pool(self.b_attention_pool, backward)], 1
        )
        return self.classifier(self.dropout(self.LL(pooled)))


class XLSRMamba(FrontEndMixin, nn.Module):
    """forward: (B, T) 16 kHz waveform -> logits (B, 2), index 1 = bona fide."""

    arch = "xlsr_mamba"
    score_kind = "logit_real"  # produce_evaluation_file writes batch_out[:, 1]

    def __init__(self, config: XLSRMambaConfig | None = None):
        super().__init__()
        cfg = self.config = config or XLSRMambaConfig()
        self.ssl_model = new_wav2vec2(cfg)
        self.LL = nn.Linear(cfg.hidden_size, cfg.emb_size)
        self.first_bn = nn.BatchNorm2d(num_features=1)
        self.selu = nn.SELU()
        self.conformer = DualColumnMamba(cfg)  # the reference's attribute name
        self._init_frontend_options()

    @property
    def frontend(self) -> nn.Module:
        return self.ssl_model

    @property
    def default_policy(self) -> InputPolicy:
        """The reference's ASVspoof 2021 evaluation: the first 66,800 samples, tiled if shorter."""
        return InputPolicy("head", n_samples=self.config.n_samples)

    def mixer_input(self, x: Tensor) -> Tensor:
        """(B, T) waveform -> the dual-column Mamba's input (B, frames, emb_size)."""
        x = self.LL(self.frontend_features(x)).unsqueeze(1)  # (B, 1, frames, emb_size)
        return self.selu(self.first_bn(x)).squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.squeeze(-1)
        return self.conformer(self.mixer_input(x))


def load_xlsr_mamba(state: Mapping[str, Tensor], overrides, source: str) -> XLSRMamba:
    """XLSR-Mamba `model.safetensors` / `best.pth` (with or without DataParallel's `module.`) -> XLSRMamba."""
    front, head, sizes = split_fairseq_frontend(state, "ssl_model.model.", "xlsr_mamba", overrides, source)
    in_proj = head["conformer.forward_layers.0.mixer.in_proj.weight"]  # (2 * expand * e, e)
    layers = {
        int(m.group(1))
        for k in head
        if (m := re.fullmatch(r"conformer\.forward_layers\.(\d+)\.norm\.weight", k))
    }
    sizes |= {
        "emb_size": in_proj.shape[1],
        "expand": in_proj.shape[0] // (2 * in_proj.shape[1]),
        "n_layer": len(layers),
        "d_state": head["conformer.forward_layers.0.mixer.A_log"].shape[1],
        "d_conv": head["conformer.forward_layers.0.mixer.conv1d.weight"].shape[2],
    }
    cfg = make_config(XLSRMambaConfig, {**sizes, **overrides})
    return build_and_load(XLSRMamba, cfg, {**{f"ssl_model.{k}": v for k, v in front.items()}, **head}, source)


def _is_xlsr_mamba(state: Mapping) -> bool:
    sd = tensor_dict(state)
    return (
        sd is not None
        and any(k.startswith("ssl_model.model.") for k in sd)
        and {"conformer.forward_layers.0.mixer.A_log", "conformer.classifier.weight", "LL.weight"} <= set(sd)
    )


FAMILY = Family(
    network=XLSRMamba,
    config=XLSRMambaConfig,
    formats=(
        Format(
            "xlsr_mamba",
            "xlsr_mamba",
            _is_xlsr_mamba,
            load_xlsr_mamba,
            published="an XLSR-Mamba state dict ('ssl_model.model.*', 'LL.*', 'conformer.forward_layers.*', "
            "'conformer.backward_layers.*': model.safetensors)",
        ),
    ),
)
