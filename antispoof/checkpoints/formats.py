"""The published checkpoint formats, and how each becomes a `model.py` network.

One adapter per format; `load_model` (checkpoints.py) reads a file safely, then asks `detect` which format it
holds and calls that format's `load`:

    reference         SSL_Anti-spoofing state dict (`ssl_model.model.*`, `LL.*`, ...), e.g. LA_model.pth
    fairseq_pretrain  a fairseq wav2vec 2.0 pretraining checkpoint (cfg or legacy args), e.g. xlsr2_300m.pt
    clovaai           clovaai AASIST / AASIST-L state dict
    transformers      a transformers folder or Hub id of a wav2vec 2.0 model (`load_transformers`)

Adding a format = one `load_*` function here and one `Format` entry in FORMATS. The fairseq -> transformers
key names and the sizes read from tensor shapes live here too: nothing in this module reads or writes files
except through transformers' own loader.
"""

from __future__ import annotations

import argparse
import ast
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from antispoof.networks import (
    AASIST,
    AASIST_PRESETS,
    NETWORKS,
    SSLAASIST,
    SSLAASISTConfig,
    _make_config,
    conv_frames,
    wav2vec2_config,
)


def short_list(keys, n: int = 12) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def describe(obj: Any) -> str:
    """What a loaded object looks like, for error messages."""
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        n_tensors = sum(isinstance(v, Tensor) for v in obj.values())
        return f"a dict with {len(keys)} keys ({n_tensors} tensors): {short_list(keys, 8)}"
    return f"a {type(obj).__name__}"


# What each published format looks like, for the error of a file that is none of them.
PUBLISHED = (
    "an SSL-AASIST state dict in the reference naming (keys 'ssl_model.model.*', 'LL.*', 'GAT_layer_S.*', "
    "..., e.g. LA_model.pth), a fairseq wav2vec 2.0 pretraining checkpoint (keys 'cfg'/'args' and 'model', "
    "e.g. xlsr2_300m.pt), a clovaai AASIST state dict (AASIST.pth / AASIST-L.pth), a transformers "
    "wav2vec 2.0 folder (config.json + weights)"
)


# --------------------------------------------------------------------------------------------------
# fairseq wav2vec 2.0 -> transformers key names
# --------------------------------------------------------------------------------------------------

# Pretraining-only parts of a fairseq wav2vec 2.0 model, dropped on purpose: the contrastive-task heads and
# mask_emb, the SpecAugment mask vector (unused with mask=False). Every other key must map.
FAIRSEQ_PRETRAINING_ONLY = re.compile(r"(quantizer|project_q|final_proj)\..*|mask_emb")

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
    default = SSLAASISTConfig()
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
    """SSLAASISTConfig front-end fields from a fairseq wav2vec2 model cfg (dict, or vars() of its args)."""
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
    """SSLAASISTConfig front-end fields from a transformers Wav2Vec2Config (XLS-R layout required)."""
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


# --------------------------------------------------------------------------------------------------
# Building the model and filling it
# --------------------------------------------------------------------------------------------------


def strict_load(model: nn.Module, state: Mapping[str, Tensor], source: str, assign: bool = False) -> None:
    """load_state_dict(strict=True), with an error that lists the missing and unexpected keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        parts = [f"{source} does not match the {model.arch} model built for it:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {short_list(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {short_list(unexpected)}")
        if wrong_shape:
            parts.append(
                f"  shape mismatches (file vs model) ({len(wrong_shape)}): {short_list(wrong_shape, 6)}"
            )
        raise ValueError("\n".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)


def build_and_load(arch: str, cfg, state: Mapping[str, Tensor], source: str) -> nn.Module:
    """The model of `arch` holding exactly `state`. wav2vec 2.0 models are built on the meta device (no
    memory, no random initialisation: ~10 s saved for a 300M model) and take the loaded tensors."""
    if arch == "aasist":  # small, and its sinc filter buffer is computed, not loaded
        model = AASIST(cfg)
        strict_load(model, state, source)
        return model
    with torch.device("meta"):
        model = NETWORKS[arch](cfg)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    strict_load(model, state, source, assign=True)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()]), "tensor left on meta"
    return model


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


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
    cfg = _make_config("ssl_aasist", {**sizes, **overrides})
    state = {**{f"ssl_model.{k}": v for k, v in fairseq_to_transformers(front).items()}, **back}
    return build_and_load("ssl_aasist", cfg, state, source)


def _frontend_prefix(model: nn.Module) -> str:
    """The state-dict prefix of a detector's wav2vec 2.0 front end: 'ssl_model.' or 'm_ssl.'."""
    return next(f"{name}." for name, child in model.named_children() if child is model.frontend)


def _new_detector(
    frontend_state: dict[str, Tensor], sizes: dict[str, Any], overrides, source: str, arch: str = "ssl_aasist"
) -> nn.Module:
    """A new detector of `arch` around pretrained front-end weights (transformers names); head random."""
    model = NETWORKS[arch](_make_config(arch, {**sizes, **overrides}))
    prefix = _frontend_prefix(model)
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
    return _new_detector(fairseq_to_transformers(front), sizes, overrides, source, arch)


def load_transformers(name_or_dir: str, overrides, source: str) -> SSLAASIST:
    """A transformers Wav2Vec2 checkpoint (local folder, or Hub id via its cache) -> new detector."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    sizes = config_from_transformers(Wav2Vec2Config.from_pretrained(name_or_dir))
    hf_model, info = Wav2Vec2Model.from_pretrained(
        name_or_dir, config=wav2vec2_config(_make_config("ssl_aasist", sizes)), output_loading_info=True
    )
    if info["missing_keys"] or info.get("mismatched_keys"):
        raise ValueError(
            f"{source}: transformers checkpoint lacks front-end weights: "
            f"{short_list(info['missing_keys'] or info['mismatched_keys'])}"
        )
    return _new_detector(hf_model.state_dict(), sizes, overrides, source)


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
    model = AASIST(_make_config("aasist", overrides, base=base))
    strict_load(model, sd, source)
    return model


def _split_fairseq_frontend(state: Mapping[str, Tensor], prefix: str, arch: str, overrides, source: str):
    """(front-end tensors in transformers names, head tensors, config sizes) of a reference state dict whose
    front end is a fairseq wav2vec 2.0 under `prefix`."""
    sd = strip_prefix(state, "module.")  # saved from DataParallel
    front = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    head = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    sizes = {**frontend_sizes_from_fairseq(front, source), **frontend_structure_from_fairseq(front, source)}
    sizes = fill_unreadable_sizes(sizes, overrides, source)
    if arch != "antideepfake" and not sizes["do_stable_layer_norm"]:
        raise ValueError(
            f"{source}: {arch} has an XLS-R front end, but these tensors hold a wav2vec 2.0 base one"
        )
    return fairseq_to_transformers(front), head, sizes


def load_antideepfake(state: Mapping[str, Tensor], overrides, source: str) -> nn.Module:
    """NII AntiDeepfake state dict (`m_ssl.model.*` in fairseq names, `proj_fc.*`), as in the released
    SpeechBrain `.ckpt`, `model.safetensors` or `Model.state_dict()` -> AntiDeepfake. The front-end structure
    comes from the tensors, not from the model's name."""
    front, head, sizes = _split_fairseq_frontend(state, "m_ssl.model.", "antideepfake", overrides, source)
    cfg = _make_config("antideepfake", {**sizes, **overrides})
    return build_and_load(
        "antideepfake", cfg, {**{f"m_ssl.{k}": v for k, v in front.items()}, **head}, source
    )


def load_sls(state: Mapping[str, Tensor], overrides, source: str) -> nn.Module:
    """XLS-R + SLS state dict (`ssl_model.model.*` in fairseq names, `first_bn`, `fc0`, `fc1`, `fc3`; with or
    without DataParallel's `module.`) -> SLS."""
    front, head, sizes = _split_fairseq_frontend(state, "ssl_model.model.", "sls", overrides, source)
    sizes["fc1_hidden"] = head["fc1.weight"].shape[0]
    cfg = _make_config("sls", {**sizes, **overrides})
    frames = conv_frames(cfg.n_samples, cfg.conv_kernel, cfg.conv_stride)
    expected = (frames // 3) * (cfg.hidden_size // 3)
    if head["fc1.weight"].shape[1] != expected:
        raise ValueError(
            f"{source}: fc1 takes {head['fc1.weight'].shape[1]} inputs, but {cfg.n_samples}-sample inputs "
            f"give {expected} ({frames} frames); pass config={{'n_samples': N}} with the input length it was "
            "trained on"
        )
    return build_and_load("sls", cfg, {**{f"ssl_model.{k}": v for k, v in front.items()}, **head}, source)


# --------------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------------


def _is_fairseq_pretraining(state: Mapping) -> bool:
    return isinstance(state.get("model"), Mapping) and ("cfg" in state or "args" in state)


def _tensor_dict(state: Mapping) -> dict[str, Tensor] | None:
    """The state dict without a DataParallel 'module.' prefix, or None if `state` is not all tensors."""
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        return None
    return strip_prefix(state, "module.")


def _is_reference(state: Mapping) -> bool:
    sd = _tensor_dict(state)
    return sd is not None and any(k.startswith("ssl_model.model.") for k in sd) and "fc0.weight" not in sd


def _is_sls(state: Mapping) -> bool:
    sd = _tensor_dict(state)
    return (
        sd is not None
        and any(k.startswith("ssl_model.model.") for k in sd)
        and {"fc0.weight", "fc1.weight", "fc3.weight", "first_bn.running_mean"} <= set(sd)
    )


def _is_antideepfake(state: Mapping) -> bool:
    sd = _tensor_dict(state)
    return sd is not None and any(k.startswith("m_ssl.model.") for k in sd) and "proj_fc.weight" in sd


def _is_clovaai(state: Mapping) -> bool:
    sd = _tensor_dict(state)
    return sd is not None and {"pos_S", "out_layer.weight", "GAT_layer_S.att_weight"} <= set(sd)


@dataclass(frozen=True)
class Format:
    """A published checkpoint format: which model.py arch it builds, how to recognise it, how to load it."""

    name: str
    arch: str
    matches: Callable[[Mapping], bool]  # the contents of a file (after safe reading) -> is it this format?
    load: Callable[..., nn.Module]  # (contents, config overrides, source[, arch for `starts`])
    starts: tuple[str, ...] = ()  # a front end only: the archs it can start a new detector of (load's arch=)


FORMATS = [
    Format(
        "fairseq_pretrain",
        "ssl_aasist",
        _is_fairseq_pretraining,
        load_fairseq_pretraining,
        starts=("ssl_aasist", "sls", "antideepfake"),
    ),
    Format("reference", "ssl_aasist", _is_reference, load_reference),
    Format("sls", "sls", _is_sls, load_sls),
    Format("antideepfake", "antideepfake", _is_antideepfake, load_antideepfake),
    Format("clovaai", "aasist", _is_clovaai, load_clovaai),
]


def detect(state: Mapping) -> Format | None:
    """The published format a loaded file holds, or None."""
    return next((f for f in FORMATS if f.matches(state)), None)
