"""NII AntiDeepfake (Ge et al., ASRU 2025; nii-yamagishilab/AntiDeepfake `models/W2V.py`): a wav2vec 2.0 front
end (w2v small/large, MMS 300M/1B, XLS-R 1B/2B), the mean over all frames, `proj_fc` Linear(D, 2). Config,
network, the six released sizes and the released format (`m_ssl.model.*` in fairseq names + `proj_fc.*`: the
SpeechBrain `.ckpt`, the Hugging Face `model.safetensors`, or `Model.state_dict()`).

The reference scores a whole file (batch 1) after a waveform layer norm; its score is softmax(logits)[:, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from antispoof.networks.common import Family, Format, InputPolicy, build_and_load, make_config, tensor_dict
from antispoof.networks.keymaps import split_fairseq_frontend
from antispoof.networks.wav2vec import FrontEndMixin, Wav2Vec2FrontEndConfig, new_wav2vec2

LICENSE_NOTICE = (
    "AntiDeepfake weights (and models fine-tuned from them) are licensed CC BY-NC-SA 4.0 by NII Yamagishi "
    "Lab: non-commercial use only, share-alike, with attribution (github.com/nii-yamagishilab/AntiDeepfake)"
)


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
    # models/HBT.py: fairseq HuBERT (hubert_xlarge_ll60k: layer-norm convs without bias, pre-LN layers).
    "hubert_xl": AntiDeepfakeConfig(
        hidden_size=1280,
        num_hidden_layers=48,
        intermediate_size=5120,
        conv_bias=False,
        frontend_type="hubert",
    ),
}


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


def load_antideepfake(state: Mapping[str, Tensor], overrides, source: str) -> nn.Module:
    """NII AntiDeepfake state dict (`m_ssl.model.*` in fairseq names, `proj_fc.*`), as in the released
    SpeechBrain `.ckpt`, `model.safetensors` or `Model.state_dict()` -> AntiDeepfake. The front-end structure
    comes from the tensors, not from the model's name."""
    front, head, sizes = split_fairseq_frontend(
        state, "m_ssl.model.", "antideepfake", overrides, source, base_structure=True
    )
    cfg = make_config(AntiDeepfakeConfig, {**sizes, **overrides})
    return build_and_load(AntiDeepfake, cfg, {**{f"m_ssl.{k}": v for k, v in front.items()}, **head}, source)


def _is_antideepfake(state: Mapping) -> bool:
    sd = tensor_dict(state)
    return sd is not None and any(k.startswith("m_ssl.model.") for k in sd) and "proj_fc.weight" in sd


FAMILY = Family(
    network=AntiDeepfake,
    config=AntiDeepfakeConfig,
    presets={f"antideepfake-{size}": cfg for size, cfg in ANTIDEEPFAKE_PRESETS.items()},
    formats=(
        Format(
            "antideepfake",
            "antideepfake",
            _is_antideepfake,
            load_antideepfake,
            published="an NII AntiDeepfake state dict ('m_ssl.model.*' and 'proj_fc.*': the .ckpt or "
            "model.safetensors releases)",
        ),
    ),
    license_notice=LICENSE_NOTICE,
)
