"""XLS-R + SLS (Zhang et al., ACM MM 2024; QiShanZhang/SLSforASVspoof-2021-DF): every encoder layer's output,
weighted by a sigmoid of fc0 on its time mean, summed; BatchNorm2d, SELU, max-pool, fc1/fc3 + SELU,
LogSoftmax.
Config, network and the authors' state dict format (`ssl_model.model.*` in fairseq names, `first_bn`, `fc0`,
`fc1`, `fc3`; with or without DataParallel's `module.`). The reference score is the LogSoftmax output [:, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antispoof.networks.common import Family, Format, InputPolicy, build_and_load, make_config, tensor_dict
from antispoof.networks.keymaps import conv_frames, split_fairseq_frontend
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2


@dataclass
class SLSConfig(Wav2Vec2FrontEndConfig):
    """XLS-R + SLS (QiShanZhang/SLSforASVspoof-2021-DF). Defaults = the published model (XLS-R 300M)."""

    n_samples: int = 64600  # the fixed input length the classifier is sized for (201 frames)
    fc1_hidden: int = 1024  # fc1 output size


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


def load_sls(state: Mapping[str, Tensor], overrides, source: str) -> nn.Module:
    """XLS-R + SLS state dict (`ssl_model.model.*` in fairseq names, `first_bn`, `fc0`, `fc1`, `fc3`; with or
    without DataParallel's `module.`) -> SLS."""
    front, head, sizes = split_fairseq_frontend(state, "ssl_model.model.", "sls", overrides, source)
    sizes["fc1_hidden"] = head["fc1.weight"].shape[0]
    cfg = make_config(SLSConfig, {**sizes, **overrides})
    frames = conv_frames(cfg.n_samples, cfg.conv_kernel, cfg.conv_stride)
    expected = (frames // 3) * (cfg.hidden_size // 3)
    if head["fc1.weight"].shape[1] != expected:
        raise ValueError(
            f"{source}: fc1 takes {head['fc1.weight'].shape[1]} inputs, but {cfg.n_samples}-sample inputs "
            f"give {expected} ({frames} frames); pass config={{'n_samples': N}} with the input length it was "
            "trained on"
        )
    return build_and_load(SLS, cfg, {**{f"ssl_model.{k}": v for k, v in front.items()}, **head}, source)


def _is_sls(state: Mapping) -> bool:
    sd = tensor_dict(state)
    return (
        sd is not None
        and any(k.startswith("ssl_model.model.") for k in sd)
        and {"fc0.weight", "fc1.weight", "fc3.weight", "first_bn.running_mean"} <= set(sd)
    )


FAMILY = Family(
    network=SLS,
    config=SLSConfig,
    formats=(
        Format(
            "sls",
            "sls",
            _is_sls,
            load_sls,
            published="an XLS-R + SLS state dict ('ssl_model.model.*', 'fc0.*', 'fc1.*', 'fc3.*', "
            "'first_bn.*')",
        ),
    ),
)
