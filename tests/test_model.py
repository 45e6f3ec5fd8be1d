"""model.py: parity with the reference implementations (../shared/golden), loading of every checkpoint format,
the full-size architecture, project checkpoints and the errors users see.

Tolerance: atol = rtol = 1e-4, as golden/README.md recommends (correct implementations differ by <= 5e-6;
every wrong key mapping tried moves the features by >= 1.8e-2 and the logits by >= 8e-4).
"""

import json
import os
import resource
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import antispoof.checkpoints.files as C
import antispoof.checkpoints.reading as reading
import antispoof.networks as M
import export
import score

REPO = Path(__file__).resolve().parents[1]

TOL = {"atol": 1e-4, "rtol": 1e-4}
# The one front-end size that tensors cannot show (golden config.json: encoder_attention_heads).
TINY_HEADS = {"num_attention_heads": 4}


@pytest.fixture(scope="module")
def tiny_dir(golden):
    return golden / "ssl_aasist_tiny"


@pytest.fixture(scope="module")
def tiny_io(tiny_dir):
    inputs = torch.load(tiny_dir / "inputs.pt", weights_only=True)
    outputs = torch.load(tiny_dir / "outputs.pt", weights_only=True)
    return inputs["x"], outputs


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    model, info = C.load_model(tiny_dir / "model_state_dict.pt", config=TINY_HEADS)
    return model, info


@pytest.fixture(scope="module")
def aasist_io(golden):
    return (
        torch.load(golden / "aasist" / "inputs.pt", weights_only=True)["x"],
        torch.load(golden / "aasist" / "outputs.pt", weights_only=True),
    )


# --------------------------------------------------------------------------------------------------
# Golden parity
# --------------------------------------------------------------------------------------------------


def test_reference_state_dict_reproduces_golden_features_and_logits(tiny, tiny_io):
    model, info = tiny
    x, golden = tiny_io
    assert info == {
        "arch": "ssl_aasist",
        "format": "reference",
        "source": info["source"],
        "calibration": None,
    }
    assert not model.training
    cfg = model.config
    # Sizes read from the tensors: conv channels, embed dim, layers, ffn, conv_pos and its groups.
    assert (cfg.conv_dim, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (
        [32] * 7,
        64,
        2,
        128,
    )
    assert (cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups) == (16, 4)
    with torch.no_grad():
        front = model.ssl_model(x, output_hidden_states=True)
        logits = model(x)
    assert_close(front.extract_features, golden["features"], **TOL)
    assert_close(front.hidden_states[1], golden["layer_outputs"][0], **TOL)
    assert_close(front.last_hidden_state, golden["x"], **TOL)
    assert logits.shape == (3, 2)
    assert_close(logits, golden["logits"], **TOL)


def test_module_prefix_from_dataparallel_loads_the_same(tiny, tiny_io, tiny_dir, tmp_path):
    state = torch.load(tiny_dir / "model_state_dict.pt", weights_only=True)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    model, info = C.load_model(tmp_path / "dp.pth", config=TINY_HEADS)
    assert info["format"] == "reference"
    with torch.no_grad():
        assert_close(model(tiny_io[0]), tiny_io[1]["logits"], **TOL)


def test_eager_attention_matches_sdpa(tiny_dir, tiny_io):
    model, _ = C.load_model(
        tiny_dir / "model_state_dict.pt", config={**TINY_HEADS, "attn_implementation": "eager"}
    )
    with torch.no_grad():
        assert_close(model.ssl_model(tiny_io[0]).last_hidden_state, tiny_io[1]["x"], **TOL)


@pytest.mark.parametrize("name", ["fairseq_w2v_checkpoint.pt", "fairseq_w2v_checkpoint_legacy_args.pt"])
def test_fairseq_pretraining_checkpoint_reproduces_features(tiny_dir, tiny_io, name):
    with pytest.warns(UserWarning, match="back end is randomly initialised"):
        model, info = C.load_model(tiny_dir / name)
    assert info["format"] == "fairseq_pretrain" and info["arch"] == "ssl_aasist"
    assert model.config.num_attention_heads == 4  # from the checkpoint's cfg / argparse args
    with torch.no_grad():
        assert_close(model.ssl_model(tiny_io[0]).last_hidden_state, tiny_io[1]["x"], **TOL)
        assert model(tiny_io[0]).shape == (3, 2)


# Rows of golden/aasist/inputs.pt: 0-2 LibriSpeech (real), 3-4 espeak-ng TTS (fake), 5 white noise (fake).
# AASIST is slow on a CPU (~1 s per clip), so each model runs 3 rows; together they cover all 6.
@pytest.mark.parametrize(("name", "rows"), [("AASIST", [0, 3, 5]), ("AASIST-L", [1, 2, 4])])
def test_clovaai_aasist_reproduces_reference_logits(golden, aasist_io, name, rows):
    x, outputs = aasist_io
    model, info = C.load_model(golden / "aasist" / f"{name}.pth")
    assert info["format"] == "clovaai" and info["arch"] == "aasist"
    assert model.config == M.AASIST_PRESETS[name.lower()]
    assert_close(model.sinc_filters, outputs[name]["sinc_band_pass"], atol=1e-7, rtol=0)
    with torch.no_grad():
        logits = model(x[rows])
    assert_close(logits, outputs[name]["logits"][rows], **TOL)
    # Label direction: LibriSpeech is called real, TTS and noise fake.
    expected = [M.REAL_INDEX if row < 3 else M.FAKE_INDEX for row in rows]
    assert logits.argmax(dim=1).tolist() == expected
    assert M.LABEL_TO_INDEX == {"fake": 0, "real": 1}


def test_transformers_folder_starts_a_detector(tiny, tiny_io, tmp_path):
    # Laid out like facebook/wav2vec2-xls-r-300m: a Wav2Vec2ForPreTraining (keys under "wav2vec2.", with the
    # quantizer heads and a SpecAugment mask vector) saved by save_pretrained.
    from transformers import Wav2Vec2ForPreTraining

    hub_config = M.wav2vec2_config(tiny[0].config)
    hub_config.mask_time_prob, hub_config.codevector_dim, hub_config.proj_codevector_dim = 0.075, 32, 32
    pretraining = Wav2Vec2ForPreTraining(hub_config)
    result = pretraining.wav2vec2.load_state_dict(tiny[0].ssl_model.state_dict(), strict=False)
    assert result.missing_keys == ["masked_spec_embed"] and not result.unexpected_keys
    pretraining.save_pretrained(tmp_path / "xlsr-tiny")
    with pytest.warns(UserWarning, match="back end is randomly initialised"):
        model, info = C.load_model(tmp_path / "xlsr-tiny")
    assert info["format"] == "transformers" and model.config.num_attention_heads == 4
    with torch.no_grad():
        assert_close(model.ssl_model(tiny_io[0]).last_hidden_state, tiny_io[1]["x"], **TOL)


# --------------------------------------------------------------------------------------------------
# Full size
# --------------------------------------------------------------------------------------------------


def _xlsr_300m_detector_params() -> int:
    """Parameter count of SSL-AASIST, derived from the architecture rather than from our code.

    Front end, XLS-R 300M as the detector uses it (C = 512 conv channels, D = 1024, 24 layers, FFN 4096,
    positional conv kernel 128 in 16 groups, all convs with bias, LayerNorms with weight + bias):
    """
    C, D, layers, ffn, k_pos, groups = 512, 1024, 24, 4096, 128, 16
    conv = (C * 1 * 10 + C + 2 * C) + 4 * (C * C * 3 + C + 2 * C) + 2 * (C * C * 2 + C + 2 * C)
    projection = 2 * C + C * D + D  # feature LayerNorm + post_extract_proj
    pos_conv = D * (D // groups) * k_pos + k_pos + D  # weight_v + weight_g (1, 1, 128) + bias
    layer = 4 * (D * D + D) + 2 * D + (D * ffn + ffn) + (ffn * D + D) + 2 * D
    front = conv + projection + pos_conv + layers * layer + 2 * D  # + final encoder LayerNorm
    # = 315,437,696, the "about 315.4 M" of XLS-R 300M. fairseq's xlsr2_300m.pt has 2,198,656 more, in
    # pretraining-only parts (mask_emb, quantizer, project_q, final_proj) that the detector drops.
    return front


def _backend_params(golden) -> int:
    """The AASIST back end: every parameter (not BatchNorm buffers) of the reference tiny state dict outside
    ssl_model, whose back end has the published sizes except LL (128 x 64 there, 128 x 1024 here)."""
    state = torch.load(golden / "ssl_aasist_tiny" / "model_state_dict.pt", weights_only=True)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    tiny_back = sum(
        v.numel() for k, v in state.items() if not k.startswith("ssl_model.") and not k.endswith(buffers)
    )
    return tiny_back - (128 * 64 + 128) + (128 * 1024 + 128)  # 447,242


def test_full_size_default_config_builds_with_reference_parameter_count(golden):
    model = M.build_model("ssl_aasist").eval()
    assert model.arch == "ssl_aasist" and model.config == M.SSLAASISTConfig()
    assert sum(p.numel() for p in model.ssl_model.parameters()) == _xlsr_300m_detector_params()
    total = sum(p.numel() for p in model.parameters())
    assert total == _xlsr_300m_detector_params() + _backend_params(golden) == 315_884_938
    with torch.no_grad():  # one clip (~6 s of CPU each): batching is covered by the tiny models
        logits = model(torch.randn(1, 64600) * 0.1)
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------

SMALL = {
    "conv_dim": [8] * 7,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "num_conv_pos_embeddings": 4,
    "num_conv_pos_embedding_groups": 2,
}


def _grads(model, x, seed=0):
    model.zero_grad()
    torch.manual_seed(seed)
    model(x)[:, M.REAL_INDEX].sum().backward()
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def test_frozen_front_end_gets_no_gradient_and_stays_in_eval():
    model = M.build_model("ssl_aasist", {**SMALL, "freeze_frontend": True}).train()
    assert not model.ssl_model.training and model.LL.training
    grads = _grads(model, torch.randn(2, 16000))
    assert all(g is None for n, g in grads.items() if n.startswith("ssl_model."))
    assert grads["LL.weight"].abs().sum() > 0
    model.set_frontend_frozen(False)
    model.train()
    assert model.ssl_model.training
    grads = _grads(model, torch.randn(2, 16000))
    assert grads["ssl_model.encoder.layers.0.attention.q_proj.weight"] is not None


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = M.build_model("ssl_aasist", SMALL).train()
    x = torch.randn(2, 16000)
    plain = _grads(model, x)
    model.set_gradient_checkpointing(True)
    assert model.ssl_model.encoder.gradient_checkpointing
    checkpointed = _grads(model, x)
    for name, grad in plain.items():
        assert_close(checkpointed[name], grad, atol=1e-5, rtol=1e-4, msg=name)


# --------------------------------------------------------------------------------------------------
# Project checkpoints
# --------------------------------------------------------------------------------------------------


def test_project_checkpoint_round_trip(tiny, tiny_io, tmp_path):
    model, _ = tiny
    path = tmp_path / "run" / "best.pt"
    calibration = {"threshold": 0.25, "source": "validation EER"}
    C.save_checkpoint(path, model, calibration=calibration)
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == C.PROJECT_FORMAT and raw["arch"] == "ssl_aasist"
    assert set(raw) == {"format", "arch", "config", "model", "calibration"}  # lean: nothing else

    loaded, info = C.load_model(path)
    assert info["format"] == "project" and info["calibration"] == calibration
    assert loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(tiny_io[0]), model(tiny_io[0]))

    # Loaded weights are ordinary trainable parameters (the loader assigns them to a model built on "meta").
    grads = _grads(loaded.train(), torch.randn(2, 16000))
    assert grads["ssl_model.encoder.pos_conv_embed.conv.parametrizations.weight.original0"] is not None
    assert grads["LL.weight"] is not None and grads["encoder.1.0.bn1.weight"] is None  # bn1: unused quirk

    frozen, _ = C.load_model(path, config={"freeze_frontend": True})
    assert frozen.config.freeze_frontend and not any(p.requires_grad for p in frozen.ssl_model.parameters())


def test_project_checkpoint_of_aasist_l(golden, aasist_io, tmp_path):
    model, _ = C.load_model(golden / "aasist" / "AASIST-L.pth")
    C.save_checkpoint(tmp_path / "l.pt", model)
    loaded, info = C.load_model(tmp_path / "l.pt", arch="aasist")
    assert info["arch"] == "aasist" and loaded.config == M.AASIST_PRESETS["aasist-l"]
    with torch.no_grad():
        assert_close(loaded(aasist_io[0][:1]), aasist_io[1]["AASIST-L"]["logits"][:1], **TOL)


def test_build_model_rejects_unknown_fields_and_archs():
    with pytest.raises(ValueError, match="unknown SSLAASISTConfig field.*hidden_sise"):
        M.build_model("ssl_aasist", {"hidden_sise": 8})
    with pytest.raises(ValueError, match="unknown arch"):
        M.build_model("rawnet2")
    assert M.build_model("aasist-l").config == M.AASIST_PRESETS["aasist-l"]


# --------------------------------------------------------------------------------------------------
# Errors users see
# --------------------------------------------------------------------------------------------------


def test_missing_and_unexpected_keys_are_listed(tiny_dir, tmp_path):
    state = torch.load(tiny_dir / "model_state_dict.pt", weights_only=True)
    del state["GAT_layer_T.att_weight"]
    state["extra_head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as err:
        C.load_model(tmp_path / "bad.pth", config=TINY_HEADS)
    message = str(err.value)
    assert "missing keys (1): GAT_layer_T.att_weight" in message
    assert "unexpected keys (1): extra_head.weight" in message


def test_unmapped_fairseq_key_is_an_error(tiny_dir, tmp_path):
    state = torch.load(tiny_dir / "model_state_dict.pt", weights_only=True)
    state["ssl_model.model.encoder.layers.0.self_attn.rel_pos.weight"] = torch.zeros(4)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(
        ValueError, match=r"no transformers counterpart: encoder\.layers\.0\.self_attn\.rel_pos"
    ):
        C.load_model(tmp_path / "bad.pth", config=TINY_HEADS)


def test_unknown_head_count_asks_for_a_config(tiny_dir):
    with pytest.raises(ValueError, match=r"attention heads cannot be read.*num_attention_heads"):
        C.load_model(tiny_dir / "model_state_dict.pt")


def test_wrong_files_say_what_they_are_and_what_was_expected(golden, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot be read as a PyTorch checkpoint.*expected one of"):
        C.load_model(text)

    torch.save({"weight": torch.zeros(3), "bias": torch.zeros(3)}, tmp_path / "linear.pt")
    with pytest.raises(
        ValueError, match=r"holds a dict with 2 keys \(2 tensors\): weight, bias; expected one of"
    ):
        C.load_model(tmp_path / "linear.pt")

    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"holds a list; expected one of"):
        C.load_model(tmp_path / "list.pt")

    with pytest.raises(ValueError, match="holds a model of arch 'aasist', but arch='ssl_aasist'"):
        C.load_model(golden / "aasist" / "AASIST.pth", arch="ssl_aasist")

    with pytest.raises(
        FileNotFoundError, match="neither an existing file nor a known checkpoint name.*aasist-l"
    ):
        C.load_model(tmp_path / "missing.pth")


def test_pickled_code_is_never_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (warnings.warn, ("pickle executed",))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"needs Python objects that could run code .*warn"):
            C.load_model(tmp_path / "evil.pt")


def test_numpy_data_in_a_checkpoint_is_allowed(tiny, tmp_path):
    # numpy arrays/scalars (e.g. a numpy RNG state in a training checkpoint) rebuild data only.
    state = {**C.project_state(tiny[0]), "training": {"rng": np.random.get_state(), "best": np.float64(0.5)}}
    torch.save(state, tmp_path / "np.pt")
    contents = C.read_checkpoint(tmp_path / "np.pt")
    assert contents["training"]["best"] == 0.5 and contents["training"]["rng"][0] == "MT19937"
    C.load_model(tmp_path / "np.pt")


def test_safetensors_export_loads_everywhere_a_checkpoint_is_read(golden, aasist_io, tmp_path):
    model, _ = C.load_model(golden / "aasist" / "AASIST-L.pth")
    calibration = {"threshold": 1.5, "source": "validation EER"}
    path = C.save_checkpoint(tmp_path / "export" / "aasist-l.safetensors", model, calibration)
    assert sorted(p.name for p in path.parent.iterdir()) == ["aasist-l.json", "aasist-l.safetensors"]
    description = json.loads((path.parent / "aasist-l.json").read_text())
    assert description["format"] == C.PROJECT_FORMAT and description["arch"] == "aasist"
    loaded, info = C.load_model(path)
    assert info["format"] == "project" and info["calibration"] == calibration
    assert C.weights_sha256(loaded) == C.weights_sha256(model)
    with torch.no_grad():
        assert_close(loaded(aasist_io[0][:1]), aasist_io[1]["AASIST-L"]["logits"][:1], **TOL)

    # Without metadata, the JSON beside the file describes it; a bare state dict is detected as usual.
    tensors, _ = reading.read_safetensors(path)
    from safetensors.torch import save_file

    save_file(tensors, tmp_path / "export" / "bare.safetensors")
    assert C.load_model(tmp_path / "export" / "bare.safetensors")[1]["format"] == "clovaai"  # by its keys
    (tmp_path / "export" / "bare.json").write_text(json.dumps(description))
    assert C.load_model(tmp_path / "export" / "bare.safetensors")[1]["format"] == "project"

    # The command line: any checkpoint -> safetensors + JSON, with the mode `open` would give (not 0600).
    out = export.main(
        export.parse_args([str(golden / "aasist" / "AASIST-L.pth"), str(tmp_path / "l.safetensors")])
    )
    assert C.weights_sha256(C.load_model(out)[0]) == C.weights_sha256(model)
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask

    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot be read as a safetensors file"):
        C.load_model(tmp_path / "cut.safetensors")


def test_weights_sha256_names_the_weights_not_the_file(tmp_path):
    model = M.build_model("aasist-l")
    digest = C.weights_sha256(model)
    C.save_checkpoint(tmp_path / "a.pt", model)
    reloaded, _ = C.load_model(tmp_path / "a.pt")
    assert C.weights_sha256(reloaded) == digest  # same weights, another file
    with torch.no_grad():
        next(reloaded.parameters()).view(-1)[0] += 1e-6
    assert C.weights_sha256(reloaded) != digest  # one changed value is another fingerprint


# --------------------------------------------------------------------------------------------------
# Malformed checkpoints: the loader's message, never a raw traceback
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def aasist_l_state(golden) -> dict:
    """AASIST-L as a project checkpoint's contents, to break in one place per test."""
    model, _ = C.load_model(golden / "aasist" / "AASIST-L.pth")
    return C.project_state(model, {"threshold": 0.5, "source": "validation EER"})


def _refused(path: Path, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        C.load_model(path)


def test_malformed_project_structure_is_named_not_a_traceback(aasist_l_state, tmp_path, monkeypatch, capsys):
    cases = {
        "config_not_a_dict": ({"config": "gat_dims=64"}, r"config must be a dict"),
        "no_weights": ({"model": None}, r"weights \('model'\) must be a dict of tensors"),
        "weights_a_list": ({"model": [torch.zeros(1)]}, r"weights \('model'\) must be a dict of tensors"),
        "weight_not_a_tensor": (
            {"model": {**aasist_l_state["model"], "out_layer.weight": "x"}},
            r"out_layer\.weight",
        ),
        "arch_a_number": ({"arch": 5}, r"unknown arch 5"),
        "calibration_a_string": ({"calibration": "0.5"}, r"calibration must be a dict"),
        "threshold_a_string": ({"calibration": {"threshold": "0.5"}}, r"threshold must be a number"),
    }
    for name, (change, match) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save({**aasist_l_state, **change}, path)
        _refused(path, match)
    del aasist_l_state["config"]
    torch.save(aasist_l_state, tmp_path / "no_config.pt")
    _refused(tmp_path / "no_config.pt", r"lacks 'config'")
    # score.py ends with the loader's message and exit status 2 (no file scored), as the README says.
    monkeypatch.chdir(REPO)
    status = score.main(
        score.parse_args(["data/sample/real", "--checkpoint", str(tmp_path / "no_config.pt")])
    )
    assert status == 2 and "error: cannot load checkpoint" in capsys.readouterr().err


def test_config_types_and_ranges_are_checked_before_building(aasist_l_state, tmp_path):
    cases = {
        "gat_dims": ("64", r"gat_dims must be a list"),
        "pool_ratios": ([0.4, 0.5, 7.0, 0.5], r"pool_ratios.*between 0 and 1"),
        "temperatures": ([2.0, float("nan"), 100.0, 100.0], r"temperatures.*finite"),
        "first_conv": (-128, r"first_conv must be a positive"),
        "sample_rate": (True, r"sample_rate must be an int"),
    }
    for field_name, (value, match) in cases.items():
        state = {**aasist_l_state, "config": {**aasist_l_state["config"], field_name: value}}
        torch.save(state, tmp_path / f"{field_name}.pt")
        _refused(tmp_path / f"{field_name}.pt", match)


def test_absurd_sizes_are_refused_before_allocation(aasist_l_state, tmp_path):
    """gat_dims 30000 would build ~GBs of graph layers before the weights' shapes could disagree."""
    state = {**aasist_l_state, "config": {**aasist_l_state["config"], "gat_dims": [30000, 30000]}}
    torch.save(state, tmp_path / "huge.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    _refused(tmp_path / "huge.pt", r"gat_dims")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300 * 1024


def test_tensors_claiming_more_memory_than_the_file_holds_are_refused(aasist_l_state, tmp_path):
    """A stride-0 (expanded) tensor stores one value and claims 40 GB: refused before anything uses it."""
    expanded = torch.zeros(1).expand(10_000_000_000)
    torch.save({**aasist_l_state, "model": {**aasist_l_state["model"], "pos_S": expanded}}, tmp_path / "x.pt")
    _refused(tmp_path / "x.pt", r"pos_S.*claims 40,000,000,000 bytes")
    torch.save({"pos_S": expanded, "out_layer.weight": torch.zeros(2, 2)}, tmp_path / "bare.pth")
    _refused(tmp_path / "bare.pth", r"pos_S.*claims")
