"""fairseq wav2vec 2.0 / HuBERT tensors -> transformers: the key map, the sizes and structure read from tensor
shapes, and the fairseq pretraining checkpoint as a front end for a new detector. Shared by every family whose
reference runs a fairseq front end; no file I/O.
"""

from __future__ import annotations

import argparse
import ast
import re
import warnings
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from antispoof.networks.common import Format, describe, make_config, short_list, strict_load, strip_prefix
from antispoof.networks.wav2vec import Wav2Vec2FrontEndConfig


def conv_frames(n_samples: int, kernels: list[int], strides: list[int]) -> int:
    """Frames the conv feature extractor makes of n_samples (no padding): 64,600 -> 201 for wav2vec 2.0."""
    for k, st in zip(kernels, strides, strict=True):
        n_samples = (n_samples - k) // st + 1
    return n_samples


# --------------------------------------------------------------------------------------------------
# fairseq wav2vec 2.0 -> transformers key names
# --------------------------------------------------------------------------------------------------

# Pretraining-only parts of a fairseq wav2vec 2.0 model, dropped on purpose: the contrastive-task heads and
# mask_emb, the SpecAugment mask vector (unused with mask=False). Every other key must map.
FAIRSEQ_PRETRAINING_ONLY = re.compile(r"(quantizer|project_q|final_proj)\..*|mask_emb|label_embs_concat")

_FAIRSEQ_TO_HF = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (
        r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",
        r"feature_extractor.conv_layers.\1.layer_norm.\2",
    ),
    # wav2vec 2.0 base structure: GroupNorm in conv layer 0 only (transformers keeps the layer_norm name)
    (
        r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)",
        r"feature_extractor.conv_layers.0.layer_norm.\1",
    ),
    (r"layer_norm\.(weight|bias)", r"feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", r"encoder.pos_conv_embed.conv.bias"),
    # weight norm: weight = g * v / ||v||; torch's parametrization API names g original0 and v original1
    (r"encoder\.pos_conv\.0\.weight_g", r"encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.weight_v", r"encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (
        r"encoder\.layers\.(\d+)\.self_attn\.(q|k|v|out)_proj\.(weight|bias)",
        r"encoder.layers.\1.attention.\2_proj.\3",
    ),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"encoder.layers.\1.layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", r"encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", r"encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"encoder.layers.\1.final_layer_norm.\2"),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.layer_norm.\1"),
]


def fairseq_to_transformers(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a fairseq wav2vec 2.0 state dict (no prefix) to transformers `Wav2Vec2Model` names.

    Pretraining-only keys are dropped; any other key that no rule maps is an error listing them.
    """
    out, unmapped = {}, []
    for key, value in state.items():
        if FAIRSEQ_PRETRAINING_ONLY.fullmatch(key):
            continue
        for pattern, target in _FAIRSEQ_TO_HF:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, target, key)] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(
            f"{len(unmapped)} fairseq wav2vec 2.0 key(s) have no transformers counterpart: "
            f"{short_list(unmapped)}"
        )
    return out


# --------------------------------------------------------------------------------------------------
# Inferring configurations from tensors
# --------------------------------------------------------------------------------------------------

# Attention heads cannot be read from tensor shapes; the known wav2vec 2.0 sizes (hidden size -> heads):
# base 768 -> 12, large / XLS-R 300M 1024 -> 16, XLS-R 1B 1280 -> 16, XLS-R 2B 1920 -> 16.
_KNOWN_HEADS = {768: 12, 1024: 16, 1280: 16, 1920: 16}


def frontend_sizes_from_fairseq(sd: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """Front-end sizes from fairseq-named wav2vec 2.0 tensors (no prefix); heads and strides do not show."""
    convs = sorted(
        int(m.group(1))
        for k in sd
        if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", k))
    )
    if not convs or "post_extract_proj.weight" not in sd or "encoder.pos_conv.0.weight_v" not in sd:
        raise ValueError(
            f"{source}: the wav2vec 2.0 tensors are not in the XLS-R layout (conv feature layers, "
            f"post_extract_proj and a positional conv are needed); found {describe(sd)}"
        )
    hidden = sd["post_extract_proj.weight"].shape[0]
    layers = sorted(
        {int(m.group(1)) for k in sd if (m := re.fullmatch(r"encoder\.layers\.(\d+)\.fc1\.weight", k))}
    )
    pos_v = sd["encoder.pos_conv.0.weight_v"]  # (D, D / groups, K)
    return {
        "conv_dim": [sd[f"feature_extractor.conv_layers.{i}.0.weight"].shape[0] for i in convs],
        "conv_kernel": [sd[f"feature_extractor.conv_layers.{i}.0.weight"].shape[2] for i in convs],
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "intermediate_size": sd["encoder.layers.0.fc1.weight"].shape[0],
        "num_conv_pos_embeddings": pos_v.shape[2],
        "num_conv_pos_embedding_groups": hidden // pos_v.shape[1],
    }


def fill_unreadable_sizes(sizes: dict[str, Any], overrides: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Add the attention heads and conv strides, which tensors do not show, from overrides or known models."""
    sizes = dict(sizes)
    default = Wav2Vec2FrontEndConfig()
    if "num_attention_heads" not in sizes:
        heads = overrides.get("num_attention_heads", _KNOWN_HEADS.get(sizes["hidden_size"]))
        if heads is None:
            raise ValueError(
                f"{source}: the number of attention heads cannot be read from the tensors of a wav2vec 2.0 "
                f"with hidden size {sizes['hidden_size']}; pass config={{'num_attention_heads': N}} "
                "(or a JSON config)"
            )
        sizes["num_attention_heads"] = heads
    if "conv_stride" not in sizes:
        if "conv_stride" in overrides:
            sizes["conv_stride"] = overrides["conv_stride"]
        elif list(sizes["conv_kernel"]) == default.conv_kernel:
            sizes["conv_stride"] = default.conv_stride  # the wav2vec 2.0 / XLS-R layout
        else:
            raise ValueError(
                f"{source}: conv kernels {sizes['conv_kernel']} differ from wav2vec 2.0's; pass "
                f"config={{'conv_stride': [...]}}"
            )
    return sizes


def frontend_structure_from_fairseq(sd: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    """Which wav2vec 2.0 structure fairseq tensors (no prefix) hold. The conv norms and biases show in the
    keys; pre- or post-LN layers do not (same keys), so they follow the extractor, as in every released
    model: layer-norm convs -> pre-LN layers (XLS-R, MMS, large), GroupNorm conv 0 -> post-LN (base)."""
    convs = sorted(
        int(m.group(1))
        for k in sd
        if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", k))
    )
    if convs and all(f"feature_extractor.conv_layers.{i}.2.1.weight" in sd for i in convs):
        norm = "layer"
    elif "feature_extractor.conv_layers.0.2.weight" in sd:
        norm = "group"
    else:
        raise ValueError(
            f"{source}: the conv feature extractor has neither a LayerNorm in every layer (XLS-R structure) "
            f"nor a GroupNorm in layer 0 (wav2vec 2.0 base structure); found {describe(sd)}"
        )
    return {
        "feat_extract_norm": norm,
        "do_stable_layer_norm": norm == "layer",
        "conv_bias": all(f"feature_extractor.conv_layers.{i}.0.bias" in sd for i in convs),
    }


def parse_conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq conv_feature_layers, e.g. "[(512,10,5)] + [(512,3,2)] * 4", evaluated without eval()."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = ev(node.left), ev(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(f"unsupported conv_feature_layers expression: {spec!r}")

    return [tuple(layer) for layer in ev(ast.parse(spec, mode="eval"))]


def config_from_fairseq_cfg(model_cfg: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Front-end config fields from a fairseq wav2vec2 model cfg (dict, or vars() of its args)."""
    if model_cfg.get("_name", model_cfg.get("arch", "wav2vec2")) not in ("wav2vec2", "wav2vec2_large"):
        raise ValueError(
            f"{source}: fairseq model {model_cfg.get('_name') or model_cfg.get('arch')!r} is not a "
            "wav2vec 2.0 pretraining model"
        )
    if model_cfg.get("extractor_mode") != "layer_norm" or not model_cfg.get("layer_norm_first"):
        raise ValueError(
            f"{source}: this wav2vec 2.0 uses extractor_mode={model_cfg.get('extractor_mode')!r}, "
            f"layer_norm_first={model_cfg.get('layer_norm_first')!r}; SSL-AASIST needs the XLS-R layout "
            "(layer_norm, layer_norm_first=True), e.g. xlsr2_300m.pt"
        )
    layers = parse_conv_layers(model_cfg["conv_feature_layers"])
    cfg = {
        "conv_dim": [c for c, _, _ in layers],
        "conv_kernel": [k for _, k, _ in layers],
        "conv_stride": [s for _, _, s in layers],
        "num_attention_heads": model_cfg["encoder_attention_heads"],
        "hidden_act": model_cfg.get("activation_fn", "gelu"),
    }
    for ours, theirs in [
        ("hidden_dropout", "dropout"),
        ("attention_dropout", "attention_dropout"),
        ("activation_dropout", "activation_dropout"),
        ("feat_proj_dropout", "dropout_input"),
        ("layerdrop", "encoder_layerdrop"),
    ]:
        if theirs in model_cfg:
            cfg[ours] = float(model_cfg[theirs])
    return cfg


def config_from_transformers(hf) -> dict[str, Any]:
    """Front-end config fields from a transformers Wav2Vec2Config (XLS-R layout required)."""
    if hf.feat_extract_norm != "layer" or not hf.do_stable_layer_norm or not hf.conv_bias:
        raise ValueError(
            f"transformers model has feat_extract_norm={hf.feat_extract_norm!r}, do_stable_layer_norm="
            f"{hf.do_stable_layer_norm}, conv_bias={hf.conv_bias}; SSL-AASIST needs the XLS-R layout "
            "('layer', True, True), e.g. facebook/wav2vec2-xls-r-300m"
        )
    names = [
        "conv_dim",
        "conv_kernel",
        "conv_stride",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "num_conv_pos_embeddings",
        "num_conv_pos_embedding_groups",
        "hidden_act",
        "layer_norm_eps",
    ]
    return {n: list(getattr(hf, n)) if n.startswith("conv_") else getattr(hf, n) for n in names}


def frontend_prefix(model: nn.Module) -> str:
    """The state-dict prefix of a detector's wav2vec 2.0 front end: 'ssl_model.' or 'm_ssl.'."""
    return next(f"{name}." for name, child in model.named_children() if child is model.frontend)


def new_detector(
    frontend_state: dict[str, Tensor], sizes: dict[str, Any], overrides, source: str, arch: str = "ssl_aasist"
) -> nn.Module:
    """A new detector of `arch` around pretrained front-end weights (transformers names); head random."""
    from antispoof.networks import FAMILIES  # the registry imports this module: resolved at call time

    family = FAMILIES[arch]
    model = family.network(make_config(family.config, {**sizes, **overrides}))
    prefix = frontend_prefix(model)
    state = {
        **{k: v for k, v in model.state_dict().items() if not k.startswith(prefix)},
        **{f"{prefix}{k}": v for k, v in frontend_state.items()},
    }
    strict_load(model, state, source)
    warnings.warn(
        f"{source} holds a pretrained wav2vec 2.0 front end only: the {arch} back end is randomly "
        "initialised. Fine-tune the model before using its scores.",
        stacklevel=3,
    )
    return model


def load_fairseq_pretraining(state: Mapping, overrides, source: str, arch: str = "ssl_aasist") -> nn.Module:
    """fairseq wav2vec 2.0 pretraining checkpoint -> a new detector of `arch` (front end filled, head
    random)."""
    if state.get("cfg") is not None:
        model_cfg = state["cfg"]["model"]
        model_cfg = vars(model_cfg) if isinstance(model_cfg, argparse.Namespace) else dict(model_cfg)
    else:
        model_cfg = (
            vars(state["args"]) if isinstance(state["args"], argparse.Namespace) else dict(state["args"])
        )
    front = state["model"]
    if any(k.startswith("w2v_encoder.") for k in front):
        raise ValueError(
            f"{source} is a fine-tuned (CTC) fairseq model; expected a wav2vec 2.0 pretraining "
            "checkpoint such as xlsr2_300m.pt"
        )
    sizes = {**frontend_sizes_from_fairseq(front, source), **config_from_fairseq_cfg(model_cfg, source)}
    return new_detector(fairseq_to_transformers(front), sizes, overrides, source, arch)


def split_fairseq_frontend(
    state: Mapping[str, Tensor], prefix: str, arch: str, overrides, source: str, base_structure: bool = False
):
    """(front-end tensors in transformers names, head tensors, config sizes) of a reference state dict whose
    front end is a fairseq wav2vec 2.0 under `prefix`. base_structure: whether the wav2vec 2.0 base structure
    (GroupNorm conv 0, post-LN layers) is allowed, or only the XLS-R one."""
    sd = strip_prefix(state, "module.")  # saved from DataParallel
    front = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    head = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    sizes = {**frontend_sizes_from_fairseq(front, source), **frontend_structure_from_fairseq(front, source)}
    sizes = fill_unreadable_sizes(sizes, overrides, source)
    if not base_structure and not sizes["do_stable_layer_norm"]:
        raise ValueError(
            f"{source}: {arch} has an XLS-R front end, but these tensors hold a wav2vec 2.0 base one"
        )
    # HuBERT (fairseq HubertModel) keeps its pretraining label embeddings; wav2vec 2.0 has none.
    sizes["frontend_type"] = "hubert" if "label_embs_concat" in front else "wav2vec2"
    return fairseq_to_transformers(front), head, sizes


def _is_fairseq_pretraining(state: Mapping) -> bool:
    return isinstance(state.get("model"), Mapping) and ("cfg" in state or "args" in state)


FAIRSEQ_PRETRAIN = Format(
    "fairseq_pretrain",
    "ssl_aasist",
    _is_fairseq_pretraining,
    load_fairseq_pretraining,
    published="a fairseq wav2vec 2.0 pretraining checkpoint (keys 'cfg'/'args' and 'model', e.g. "
    "xlsr2_300m.pt)",
    starts=("ssl_aasist", "sls", "antideepfake"),
)


def frontend_from_transformers_tensors(sd: Mapping[str, Tensor], source: str) -> tuple[dict, dict[str, Any]]:
    """(tensors renamed to this torch's weight-norm names, front-end sizes and structure) of a transformers
    Wav2Vec2Model / HubertModel state dict (no prefix), as DF Arena's pytorch_model.bin holds it. Older
    transformers saved the positional conv's weight norm as weight_g / weight_v; `masked_spec_embed` (the
    SpecAugment vector, pretraining only) is dropped."""
    pos = "encoder.pos_conv_embed.conv."
    renames = {
        pos + "weight_g": pos + "parametrizations.weight.original0",
        pos + "weight_v": pos + "parametrizations.weight.original1",
    }
    sd = {renames.get(k, k): v for k, v in sd.items() if k != "masked_spec_embed"}
    convs = sorted(
        int(m.group(1))
        for k in sd
        if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.conv\.weight", k))
    )
    pos_v = sd.get("encoder.pos_conv_embed.conv.parametrizations.weight.original1")
    if not convs or pos_v is None or "feature_projection.projection.weight" not in sd:
        raise ValueError(
            f"{source}: the front-end tensors are not a transformers wav2vec 2.0 / HuBERT model (conv "
            "feature "
            f"layers, feature_projection and a positional conv are needed); found {describe(sd)}"
        )
    hidden = sd["feature_projection.projection.weight"].shape[0]
    layers = {
        int(m.group(1))
        for k in sd
        if (m := re.fullmatch(r"encoder\.layers\.(\d+)\.final_layer_norm\.weight", k))
    }
    if all(f"feature_extractor.conv_layers.{i}.layer_norm.weight" in sd for i in convs):
        norm = "layer"
    elif "feature_extractor.conv_layers.0.layer_norm.weight" in sd:
        norm = "group"
    else:
        raise ValueError(
            f"{source}: the conv feature extractor has neither a LayerNorm in every layer nor a "
            f"GroupNorm in layer 0; found {describe(sd)}"
        )
    sizes = {
        "conv_dim": [sd[f"feature_extractor.conv_layers.{i}.conv.weight"].shape[0] for i in convs],
        "conv_kernel": [sd[f"feature_extractor.conv_layers.{i}.conv.weight"].shape[2] for i in convs],
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "intermediate_size": sd["encoder.layers.0.feed_forward.intermediate_dense.weight"].shape[0],
        "num_conv_pos_embeddings": pos_v.shape[2],
        "num_conv_pos_embedding_groups": hidden // pos_v.shape[1],
        # As in every released model: layer-norm convs come with pre-LN layers, GroupNorm with post-LN.
        "feat_extract_norm": norm,
        "do_stable_layer_norm": norm == "layer",
        "conv_bias": all(f"feature_extractor.conv_layers.{i}.conv.bias" in sd for i in convs),
    }
    if "feature_projection.layer_norm.weight" not in sd:  # only transformers' HubertModel can lack it
        sizes |= {"frontend_type": "hubert", "feat_proj_layer_norm": False}
    return sd, sizes
