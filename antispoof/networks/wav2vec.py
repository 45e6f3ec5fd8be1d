"""The wav2vec 2.0 front end of SSL-AASIST, AntiDeepfake and XLS-R + SLS: transformers' `Wav2Vec2Model`.

No fairseq. Two fairseq structures exist, and the tensors of a checkpoint tell them apart:

- XLS-R / MMS / wav2vec 2.0 large (the default): fairseq extractor_mode=layer_norm (a LayerNorm in every conv
  layer), conv_bias=True, layer_norm_first=True (pre-LN layers, then a final encoder LayerNorm); transformers
  feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True.
- wav2vec 2.0 base: extractor_mode=default (GroupNorm in conv layer 0 only), conv_bias=False, post-LN layers
  (the encoder LayerNorm comes before the layers); transformers "group", False, False.

`Wav2Vec2FrontEndConfig` holds the front-end fields under transformers' names (fairseq names in the comments);
each detector's config extends it. `FrontEndMixin` gives a detector freezing and gradient checkpointing of its
front end, and `layer_outputs` returns every encoder layer's output (before the final LayerNorm).
A HuBERT front end (`frontend_type="hubert"`, transformers' `HubertModel`) has the same tensors and the same
computation in eval (no quantizer; fairseq's `label_embs_concat` / `final_proj` are pretraining-only).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class Wav2Vec2FrontEndConfig:
    """wav2vec 2.0 front-end hyper-parameters. Defaults = XLS-R 300M (the SSL-AASIST / SLS front end)."""

    # conv feature extractor: conv_feature_layers = [(512,10,5)] + [(512,3,2)]*4 + [(512,2,2)]*2
    conv_dim: list[int] = field(default_factory=lambda: [512] * 7)
    conv_kernel: list[int] = field(default_factory=lambda: [10, 3, 3, 3, 3, 2, 2])
    conv_stride: list[int] = field(default_factory=lambda: [5, 2, 2, 2, 2, 2, 2])  # total stride 320
    hidden_size: int = 1024  # encoder_embed_dim
    num_hidden_layers: int = 24  # encoder_layers
    num_attention_heads: int = 16  # encoder_attention_heads
    intermediate_size: int = 4096  # encoder_ffn_embed_dim
    num_conv_pos_embeddings: int = 128  # conv_pos
    num_conv_pos_embedding_groups: int = 16  # conv_pos_groups
    hidden_act: str = "gelu"  # activation_fn
    layer_norm_eps: float = 1e-5
    # Structure (see the module docstring): "layer" + True + True = XLS-R; "group" + False + False = base.
    feat_extract_norm: str = "layer"  # extractor_mode: "layer" = layer_norm, "group" = default
    do_stable_layer_norm: bool = True  # layer_norm_first
    conv_bias: bool = True  # conv_bias
    frontend_type: str = "wav2vec2"  # "wav2vec2" (Wav2Vec2Model) or "hubert" (HubertModel, e.g. HuBERT-XL)
    feat_proj_layer_norm: bool = True  # the LayerNorm before the feature projection; only HuBERT may lack it
    # Front-end dropout while fine-tuning: 0.0, as in the cfg of the fairseq large / XLS-R pretraining
    # checkpoints the references fine-tune from (wav2vec2_large_librivox.yaml, xlsr_53_56k.pt: dropout,
    # attention_dropout, activation_dropout, encoder_layerdrop, dropout_input all 0.0). Loading a fairseq
    # checkpoint takes the values of its own cfg.
    hidden_dropout: float = 0.0  # dropout
    attention_dropout: float = 0.0  # attention_dropout
    activation_dropout: float = 0.0  # activation_dropout
    feat_proj_dropout: float = 0.0  # dropout_input
    layerdrop: float = 0.0  # encoder_layerdrop
    # Options for a 0.3-2 B parameter front end.
    freeze_frontend: bool = False  # train the head only (front end in eval mode, no gradients)
    gradient_checkpointing: bool = False  # recompute front-end activations in backward to save memory
    attn_implementation: str = "sdpa"  # "sdpa" or "eager"; both match the references within 1e-6


FRONTEND_TYPES = ("wav2vec2", "hubert")


def wav2vec2_config(cfg: Wav2Vec2FrontEndConfig):
    """transformers `Wav2Vec2Config` (or `HubertConfig`) of a front end described by `cfg`."""
    from transformers import HubertConfig, Wav2Vec2Config

    if cfg.feat_extract_norm not in ("layer", "group"):
        raise ValueError(f"feat_extract_norm must be 'layer' or 'group', not {cfg.feat_extract_norm!r}")
    if cfg.frontend_type not in FRONTEND_TYPES:
        raise ValueError(f"frontend_type must be one of {FRONTEND_TYPES}, not {cfg.frontend_type!r}")
    if not cfg.feat_proj_layer_norm and cfg.frontend_type != "hubert":
        raise ValueError(
            "feat_proj_layer_norm=False exists only in the HuBERT front end (frontend_type='hubert')"
        )
    extra = {"feat_proj_layer_norm": cfg.feat_proj_layer_norm} if cfg.frontend_type == "hubert" else {}
    return (HubertConfig if cfg.frontend_type == "hubert" else Wav2Vec2Config)(
        **extra,
        conv_dim=list(cfg.conv_dim),
        conv_kernel=list(cfg.conv_kernel),
        conv_stride=list(cfg.conv_stride),
        conv_bias=cfg.conv_bias,
        feat_extract_norm=cfg.feat_extract_norm,
        feat_extract_activation="gelu",
        do_stable_layer_norm=cfg.do_stable_layer_norm,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        num_conv_pos_embeddings=cfg.num_conv_pos_embeddings,
        num_conv_pos_embedding_groups=cfg.num_conv_pos_embedding_groups,
        hidden_act=cfg.hidden_act,
        layer_norm_eps=cfg.layer_norm_eps,
        hidden_dropout=cfg.hidden_dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        feat_proj_dropout=cfg.feat_proj_dropout,
        layerdrop=cfg.layerdrop,
        # The references call the model with mask=False: no SpecAugment, so no masked_spec_embed either.
        apply_spec_augment=False,
        mask_time_prob=0.0,
        mask_feature_prob=0.0,
        attn_implementation=cfg.attn_implementation,
    )


def new_wav2vec2(cfg: Wav2Vec2FrontEndConfig) -> nn.Module:
    """A transformers `Wav2Vec2Model` (or `HubertModel`) with random weights."""
    from transformers import HubertModel, Wav2Vec2Model

    return (HubertModel if cfg.frontend_type == "hubert" else Wav2Vec2Model)(wav2vec2_config(cfg))


class FrontEndMixin:
    """Freezing and gradient checkpointing of a detector's front end (`self.frontend`, a Wav2Vec2Model)."""

    config: Wav2Vec2FrontEndConfig
    frontend: nn.Module

    def _init_frontend_options(self) -> None:
        self.set_frontend_frozen(self.config.freeze_frontend)
        self.set_gradient_checkpointing(self.config.gradient_checkpointing)

    def set_frontend_frozen(self, frozen: bool = True) -> None:
        """Freeze (no gradients, eval mode even in train()) or unfreeze the wav2vec 2.0 front end."""
        self.config.freeze_frontend = frozen
        self.frontend.requires_grad_(not frozen)
        self.train(self.training)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the front end's layer activations during backward: less memory, more compute."""
        was_enabled = getattr(self, "_checkpointing", False)
        self.config.gradient_checkpointing = self._checkpointing = enabled
        hf = self.frontend
        # transformers >= 5 calls it activation checkpointing, older versions gradient checkpointing.
        if enabled:
            if hasattr(hf, "activation_checkpointing_enable"):
                hf.activation_checkpointing_enable({"use_reentrant": False})
            else:
                hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        elif was_enabled:
            getattr(hf, "activation_checkpointing_disable", hf.gradient_checkpointing_disable)()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_frontend:
            self.frontend.eval()
        return self

    def frontend_features(self, x: Tensor) -> Tensor:
        """(B, T) waveform -> (B, frames, hidden_size): the last encoder output (after the final LayerNorm of
        the pre-LN structure = fairseq `features_only=True)['x']`)."""
        with torch.no_grad() if self.config.freeze_frontend else contextlib.nullcontext():
            return self.frontend(x).last_hidden_state

    def frontend_layer_outputs(self, x: Tensor) -> list[Tensor]:
        """(B, T) waveform -> every encoder layer's output, L x (B, frames, hidden_size)."""
        with torch.no_grad() if self.config.freeze_frontend else contextlib.nullcontext():
            return layer_outputs(self.frontend, x)

    def frontend_hidden_states(self, x: Tensor) -> list[Tensor]:
        """(B, T) waveform -> L + 1 x (B, frames, hidden_size), as transformers 4.x's `hidden_states`."""
        with torch.no_grad() if self.config.freeze_frontend else contextlib.nullcontext():
            return hidden_states(self.frontend, x)


def layer_outputs(hf_model: nn.Module, x: Tensor) -> list[Tensor]:
    """Every encoder layer's own output, L x (B, frames, D): in the pre-LN structure, before the final encoder
    LayerNorm (the last layer included), as fairseq's `layer_results`.

    Taken with forward hooks on the layers, not from `hidden_states`: what transformers puts last in
    `hidden_states` differs between versions (post-LN in 4.x, the layer's own output in 5.x).
    """
    captured, _ = _run_capturing(hf_model, x)
    layers = hf_model.encoder.layers
    # A layer skipped by LayerDrop (training only) leaves no output: then fewer than L entries.
    if len(captured) != len(layers):
        raise RuntimeError(
            f"got {len(captured)} layer outputs from {len(layers)} layers: LayerDrop skipped a layer, "
            "which the layer-weighted heads cannot use; set layerdrop=0"
        )
    return captured


def _run_capturing(hf_model: nn.Module, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """(every layer's own output, the model's last_hidden_state), from one forward pass."""
    captured: list[Tensor] = []

    def keep(_module, _inputs, output):
        # transformers 4.x layers return a tuple (hidden_states, attention weights?), 5.x a tensor.
        captured.append(output[0] if isinstance(output, tuple) else output)

    handles = [layer.register_forward_hook(keep) for layer in hf_model.encoder.layers]
    try:
        last = hf_model(x).last_hidden_state
    finally:
        for handle in handles:
            handle.remove()
    return captured, last


def hidden_states(hf_model: nn.Module, x: Tensor) -> list[Tensor]:
    """L + 1 tensors (B, frames, D) as transformers 4.x returns `hidden_states` (the version the DF Arena
    weights were trained with): the input of layer 0, the outputs of layers 1 .. L-1, then `last_hidden_state`
    (after the final LayerNorm in the pre-LN structure). transformers 5 ends with the last layer's own output
    instead, so the list is built with hooks, the same in every version."""
    inputs: list[Tensor] = []
    handle = hf_model.encoder.layers[0].register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
    try:
        outputs, last = _run_capturing(hf_model, x)
    finally:
        handle.remove()
    if len(outputs) != len(hf_model.encoder.layers) or len(inputs) != 1:
        raise RuntimeError(
            "LayerDrop skipped a layer, which the layer-weighted heads cannot use; set layerdrop=0"
        )
    return [inputs[0], *outputs[:-1], last]
