"""The model zoo, round 2: DF Arena, XLSR-Mamba and the AntiDeepfake HuBERT front end against golden data from
their original code (tests/data/<family>_tiny, each with a README of provenance), their negative controls, and
the full-size parameter counts the model cards state. Tolerance atol = rtol = 1e-4, as for the first round.
"""

import json

import pytest
import torch
from torch.testing import assert_close

import antispoof.checkpoints.files as C
import antispoof.networks as M

TOL = {"atol": 1e-4, "rtol": 1e-4}
TINY_HEADS = {"num_attention_heads": 4}  # the one front-end size tensors cannot show
DATA = C.Path(__file__).resolve().parent / "data"


def _reference_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """The references' pad (np.tile, then cut): the first n samples, the file repeated if shorter."""
    return x.repeat(n // len(x) + 1)[:n]


def _raw_inputs(golden, recipe: list[str]) -> list[torch.Tensor]:
    """The raw waveforms a golden folder names (`inputs.pt` recipe), rebuilt from ../shared/golden."""
    a = torch.load(golden / "ssl_aasist_tiny" / "inputs.pt", weights_only=True)["x"]
    b = torch.load(golden / "antideepfake_tiny" / "inputs.pt", weights_only=True)["raw"]
    pieces = {
        "ssl_aasist_tiny/inputs.pt x[0, :26320]": a[0, :26320],
        "ssl_aasist_tiny/inputs.pt x[1]": a[1],
        "ssl_aasist_tiny/inputs.pt x[2]": a[2],
        "antideepfake_tiny/inputs.pt raw[1]": b[1],
    }
    pieces["cat(antideepfake_tiny/inputs.pt raw[1], ssl_aasist_tiny/inputs.pt x[0, :26320])"] = torch.cat(
        [b[1], a[0, :26320]]
    )
    return [pieces[r] for r in recipe]


# --------------------------------------------------------------------------------------------------
# DF Arena
# --------------------------------------------------------------------------------------------------

DFA = DATA / "df_arena_tiny"


@pytest.fixture(scope="module")
def dfa(golden):
    recipe = torch.load(DFA / "inputs.pt", weights_only=True)["recipe"]
    x = torch.stack([_reference_pad(r, 64600) for r in _raw_inputs(golden, recipe)])
    return x, torch.load(DFA / "outputs.pt", weights_only=True)


def _check_dfa(model, x, out, rows=slice(None)) -> None:
    """Every tensor the reference exposes, from one front-end pass; the forward itself on the first row."""
    x = x[rows]
    with torch.no_grad():
        states = torch.stack(model.frontend_hidden_states(x), dim=1)  # (B, L + 1, frames, D)
        pooled, weights = model.layer_weights(states)
        head_in = model.head_input(states)
        embedding = model.conformer.embedding(head_in)
        logits = model.conformer.fc5(embedding)
        assert_close(model(x[:1]), logits[:1], **TOL)
    assert_close(states, out["hidden_states"][rows], **TOL)
    assert_close(pooled, out["layer_pooled"][rows], **TOL)
    assert_close(weights[..., 0], out["layer_weights"][rows], **TOL)
    assert_close(head_in, out["conformer_input"][rows], **TOL)
    assert_close(embedding, out["embedding"][rows], **TOL)
    assert_close(logits, out["logits"][rows], **TOL)
    assert_close(logits.softmax(dim=-1)[:, M.REAL_INDEX], out["score"][rows], **TOL)


def test_df_arena_reproduces_golden(dfa):
    x, out = dfa
    model, info = C.load_model(DFA / "pytorch_model.bin", config=TINY_HEADS)
    assert info["format"] == "df_arena" and isinstance(model, M.DFArena) and not model.training
    assert (model.default_policy, model.score_kind) == (M.REFERENCE_HEAD, "softmax_real")
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.conformer_blocks, cfg.conformer_heads) == (
        16,
        2,
        4,
        4,
    )
    assert (cfg.conformer_kernel_size, cfg.max_positions) == (31, 10000)
    _check_dfa(model, x, out)


def test_df_arena_from_safetensors_and_a_project_checkpoint(dfa, tmp_path):
    from safetensors.torch import save_file

    x, out = dfa
    sd = torch.load(DFA / "pytorch_model.bin", weights_only=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "model.safetensors")
    model, info = C.load_model(tmp_path / "model.safetensors", config=TINY_HEADS)
    assert info["format"] == "df_arena"
    _check_dfa(model, x, out, rows=slice(3, 4))
    C.save_checkpoint(tmp_path / "best.pt", model)
    again, info = C.load_model(tmp_path / "best.pt")
    assert info["format"] == "project" and again.config == model.config
    _check_dfa(again, x, out, rows=slice(3, 4))


def _dfa_broken(name):
    def edit(sd):
        p = "backbone."
        if name == "qkv split":  # a q/k/v layout instead of the fused qkv: refused
            w = sd.pop(p + "conformer.encoder_blocks.0.attn.fn.qkv.weight")
            for i, part in enumerate("qkv"):
                sd[p + f"conformer.encoder_blocks.0.attn.fn.to_{part}.weight"] = w.chunk(3)[i]
        elif name == "head-token pos_embed at init":
            sd[p + "conformer.encoder_blocks.0.attn.fn.pos_embed"].zero_()
        elif name == "first_bn stats at init":
            sd[p + "first_bn.running_mean"].zero_()
            sd[p + "first_bn.running_var"].fill_(1.0)
        elif name == "q/k weight-norm swapped":
            g = "ssl_model.encoder.pos_conv_embed.conv.parametrizations.weight.original0"
            sd[p + g].fill_(1.0)
        elif name == "other prefix":
            return {"model." + k[len(p) :]: v for k, v in sd.items()}
        return sd

    return edit


@pytest.mark.parametrize(
    "control", ["qkv split", "head-token pos_embed at init", "first_bn stats at init", "other prefix"]
)
def test_df_arena_wrong_mappings_are_refused_or_caught(dfa, tmp_path, control):
    x, out = dfa
    sd = _dfa_broken(control)(torch.load(DFA / "pytorch_model.bin", weights_only=True))
    torch.save(sd, tmp_path / "broken.bin")
    try:
        model, _ = C.load_model(tmp_path / "broken.bin", config=TINY_HEADS)
    except ValueError:
        return  # refused
    with torch.no_grad():
        assert (model(x[:1]) - out["logits"][:1]).abs().max() > 1e-2  # caught


def test_df_arena_hidden_states_end_with_the_final_layer_norm(dfa):
    """transformers 4.x (the authors') ends `hidden_states` with the final LayerNorm's output; 5.x with the
    last layer's own output. The golden logits tell them apart by 0.5 (README): the 4.x list is rebuilt."""
    x, out = dfa
    model, _ = C.load_model(DFA / "pytorch_model.bin", config=TINY_HEADS)
    with torch.no_grad():
        states = model.frontend_hidden_states(x[:1])
        last_layer = M.wav2vec.layer_outputs(model.ssl_model, x[:1])[-1]
    assert_close(states[-1], model.ssl_model(x[:1]).last_hidden_state)
    assert (states[-1] - last_layer).abs().max() > 1e-2


def test_df_arena_with_a_hubert_base_front_end_loads_from_its_tensors(tmp_path):
    """DF Arena 100M's front end is not public (the RAPTOR paper's compact models are HuBERT / WavLM). A
    transformers HubertModel of the base structure without the feature-projection LayerNorm (GroupNorm conv 0,
    post-LN layers, no conv bias) is read from the tensors alone: structure, type and outputs round-trip."""
    cfg = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 32,
           "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
           "feat_extract_norm": "group", "do_stable_layer_norm": False, "conv_bias": False,
           "frontend_type": "hubert", "feat_proj_layer_norm": False, "conformer_blocks": 1}  # fmt: skip
    torch.manual_seed(0)
    built = M.build_model("df_arena", cfg).eval()
    torch.save({f"backbone.{k}": v for k, v in built.state_dict().items()}, tmp_path / "pytorch_model.bin")
    model, info = C.load_model(tmp_path / "pytorch_model.bin", config=TINY_HEADS)
    assert info["format"] == "df_arena" and type(model.ssl_model).__name__ == "HubertModel"
    assert {k: getattr(model.config, k) for k in cfg} == cfg
    x = torch.randn(2, 16000)
    with torch.no_grad():
        assert_close(model(x), built(x))


# Published sizes: the Speech Anti-Spoofing Arena's model pages (SpeechAntiSpoofingBenchmarks/DF_Arena_*).
DF_ARENA_SIZES_M = {"df-arena-500m": 436, "df-arena-1b": 1148}


@pytest.mark.parametrize("preset", sorted(DF_ARENA_SIZES_M))
def test_full_size_df_arena_builds_with_the_published_parameter_count(preset):
    with torch.device("meta"):
        model = M.build_model(preset)
        if preset == "df-arena-500m":  # the forward's shapes once (the 1B differs only in sizes)
            assert model(torch.empty(1, 64600)).shape == (1, 2)
    total = sum(p.numel() for p in model.parameters())
    assert abs(total / 1e6 - DF_ARENA_SIZES_M[preset]) < 1.0, total


def test_score_py_reproduces_df_arena_scores(dfa, golden, tmp_path, capsys):
    """score.py FILES --checkpoint pytorch_model.bin --reference-policy: decoding, the first 64,600 samples
    tiled, a batch of files, softmax(logits)[:, 1] give the pipeline's per-file score."""
    import soundfile as sf

    import score

    recipe = torch.load(DFA / "inputs.pt", weights_only=True)["recipe"]
    paths = []
    for i, raw in enumerate(_raw_inputs(golden, recipe)):
        sf.write(tmp_path / f"{i}.wav", raw.numpy(), 16000, "FLOAT")
        paths.append(str(tmp_path / f"{i}.wav"))
    args = score.parse_args(
        [*paths, "--checkpoint", str(DFA / "pytorch_model.bin"), "--model-config", json.dumps(TINY_HEADS)]
        + ["--reference-policy"]
        + ["--output-format", "json", "--workers", "0", "--batch-size", "4", "--device", "cpu"]
    )
    assert score.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "head n=64600" and "softmax(logits)[:, 1]" in out["score_definition"]
    scores = [f["score"] for f in out["files"]]
    assert scores == pytest.approx(dfa[1]["score"].tolist(), abs=1e-4)


# --------------------------------------------------------------------------------------------------
# XLSR-Mamba
# --------------------------------------------------------------------------------------------------

XM = DATA / "xlsr_mamba_tiny"


@pytest.fixture(scope="module")
def xm(golden):
    raws = _raw_inputs(golden, torch.load(XM / "inputs.pt", weights_only=True)["recipe"])
    x66 = torch.stack([_reference_pad(r, 66800) for r in raws])
    x64 = torch.stack([_reference_pad(r, 64600) for r in raws])
    model, info = C.load_model(XM / "model.safetensors", config=TINY_HEADS)
    return model, info, x66, x64, torch.load(XM / "outputs.pt", weights_only=True)


def test_xlsr_mamba_reproduces_golden(xm):
    model, info, x66, x64, out = xm
    assert info["format"] == "xlsr_mamba" and isinstance(model, M.XLSRMamba) and not model.training
    assert model.default_policy == M.InputPolicy("head", n_samples=66800) and model.score_kind == "logit_real"
    cfg = model.config
    assert (cfg.emb_size, cfg.n_layer, cfg.d_state, cfg.d_conv, cfg.expand) == (16, 2, 16, 4, 2)
    with torch.no_grad():
        ssl_x = model.frontend_features(x66)
        mixer_in = model.selu(model.first_bn(model.LL(ssl_x).unsqueeze(1))).squeeze(1)
        logits = model.conformer(mixer_in)
        assert_close(model.mixer_input(x66[:1]), mixer_in[:1], **TOL)
        logits_itw = model(x64[4:])  # the In-the-Wild script's 64,600-sample cut
    assert_close(ssl_x, out["ssl_x"], **TOL)
    assert_close(mixer_in, out["mixer_input"], **TOL)
    assert_close(logits, out["logits"], **TOL)
    assert_close(logits[:, M.REAL_INDEX], out["score"], **TOL)
    assert_close(logits_itw, out["logits_itw_64600"][4:], **TOL)


def test_selective_scan_matches_the_recurrence_step_by_step():
    """The scan against its definition, one step at a time (mamba-ssm's `step`), on random inputs."""
    from antispoof.networks.xlsr_mamba import selective_scan

    g = torch.Generator().manual_seed(0)
    b, d, n, length = 2, 3, 4, 7
    u, delta, z = (torch.randn(b, d, length, generator=g) for _ in range(3))
    delta = torch.nn.functional.softplus(delta)
    A, D = -torch.rand(d, n, generator=g), torch.randn(d, generator=g)
    B, Cm = torch.randn(b, n, length, generator=g), torch.randn(b, n, length, generator=g)
    h, ys = torch.zeros(b, d, n), []
    for t in range(length):
        h = (
            torch.exp(delta[:, :, t, None] * A) * h
            + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        )
        ys.append((h * Cm[:, None, :, t]).sum(-1) + D * u[:, :, t])
    expected = torch.stack(ys, dim=2) * torch.nn.functional.silu(z)
    assert_close(selective_scan(u, delta, A, B, Cm, D, z), expected)


XM_CONTROLS = {
    # forward and backward columns exchanged (a wrong key map): both exist, only parity catches it
    "columns swapped": lambda sd: {
        (
            k.replace("forward_layers", "@")
            .replace("backward_layers", "forward_layers")
            .replace("@", "backward_layers")
        ): v
        for k, v in sd.items()
    },
    "attention pools swapped": lambda sd: {
        (
            k.replace("f_attention_pool", "@")
            .replace("b_attention_pool", "f_attention_pool")
            .replace("@", "b_attention_pool")
        ): v
        for k, v in sd.items()
    },
    "A_log missing": lambda sd: {
        k: v for k, v in sd.items() if k != "conformer.forward_layers.0.mixer.A_log"
    },
    "dt_proj bias dropped": lambda sd: {
        k: v for k, v in sd.items() if k != "conformer.backward_layers.1.mixer.dt_proj.bias"
    },
}


@pytest.mark.parametrize("control", sorted(XM_CONTROLS))
def test_xlsr_mamba_wrong_mappings_are_refused_or_caught(xm, tmp_path, control):
    from safetensors.torch import load_file, save_file

    _, _, x66, _, out = xm
    sd = XM_CONTROLS[control](load_file(XM / "model.safetensors"))
    save_file(sd, tmp_path / "broken.safetensors")
    try:
        model, _ = C.load_model(tmp_path / "broken.safetensors", config=TINY_HEADS)
    except ValueError:
        return
    with torch.no_grad():
        assert (model.conformer(out["mixer_input"]) - out["logits"]).abs().max() > 1e-2


def test_xlsr_mamba_final_norm_takes_the_column_input():
    """The reference's quirk: norm_f(x + residual), not norm_f(last mixer output + residual) (README: the
    usual Mamba ending moves the golden logits by 0.44)."""
    from antispoof.networks.xlsr_mamba import DualColumnMamba

    assert "x + self._column(self.forward_layers, x)" in __import__("inspect").getsource(
        DualColumnMamba.forward
    )


def test_full_size_xlsr_mamba_builds_with_the_published_parameter_count():
    with torch.device("meta"):
        model = M.build_model("xlsr_mamba")
        logits = model(torch.empty(1, 66800))
    assert logits.shape == (1, 2) and model.config.n_samples == 66800
    total = sum(p.numel() for p in model.parameters())
    # The authors' "319M" counts the fairseq model whole: its pretraining-only quantizer (codebook 640 x 384,
    # weight_proj 512 -> 640), project_q (768 -> 768), final_proj (1024 -> 768) and mask_emb, not built here.
    pretraining_only = 640 * 384 + (512 * 640 + 640) + (768 * 768 + 768) + (1024 * 768 + 768) + 1024
    assert round((total + pretraining_only) / 1e6) == 319, total


# --------------------------------------------------------------------------------------------------
# AntiDeepfake HuBERT (models/HBT.py)
# --------------------------------------------------------------------------------------------------

HBT = DATA / "antideepfake_hubert_tiny"


def test_antideepfake_hubert_reproduces_golden(golden):
    inputs = torch.load(golden / "antideepfake_tiny" / "inputs.pt", weights_only=True)["preprocessed"]
    out = torch.load(HBT / "outputs.pt", weights_only=True)
    model, info = C.load_model(HBT / "model_state_dict.pt", config=TINY_HEADS)
    assert info["format"] == "antideepfake" and type(model.m_ssl).__name__ == "HubertModel"
    assert (model.config.frontend_type, model.config.conv_bias, model.config.do_stable_layer_norm) == (
        "hubert",
        False,
        True,
    )
    with torch.no_grad():
        for i, wav in enumerate(inputs):
            assert_close(model.m_ssl(wav[None]).last_hidden_state[0], out["x"][i], **TOL)
            logits = model(wav[None])[0]
            assert_close(logits, out["logits"][i], **TOL)
            assert logits.softmax(-1)[M.REAL_INDEX].item() == pytest.approx(
                out["score_prob_real"][i], abs=1e-4
            )


def test_antideepfake_hubert_wrong_structure_is_caught(golden, tmp_path):
    """HuBERT's label embeddings are pretraining-only (dropped); a HuBERT checkpoint read as wav2vec 2.0 base
    structure (post-LN) is caught: README negative control, x moves by 1.56."""
    inputs = torch.load(golden / "antideepfake_tiny" / "inputs.pt", weights_only=True)["preprocessed"]
    out = torch.load(HBT / "outputs.pt", weights_only=True)
    model, _ = C.load_model(HBT / "model_state_dict.pt", config={**TINY_HEADS, "do_stable_layer_norm": False})
    with torch.no_grad():
        assert (model.m_ssl(inputs[0][None]).last_hidden_state[0] - out["x"][0]).abs().max() > 1e-2


# --------------------------------------------------------------------------------------------------
# Fine-tuning a new architecture (tiny): DF Arena with --freeze-frontend
# --------------------------------------------------------------------------------------------------


def test_df_arena_fine_tunes_with_a_frozen_front_end(audio_dir, tmp_path):
    """One epoch of fine_tune_for.py on the tiny DF Arena: the head trains, the front end stays as loaded,
    best.pt reloads as a df_arena project checkpoint."""
    import shutil

    import fine_tune_for

    reals = sorted((audio_dir / "sample_custom" / "real").iterdir())
    fakes = sorted((audio_dir / "sample_custom" / "fake").iterdir())
    for split, i in (("training", 0), ("validation", 1), ("testing", 2)):
        for label, files in (("real", reals), ("fake", fakes)):
            (tmp_path / "for" / split / label).mkdir(parents=True)
            shutil.copy(files[i], tmp_path / "for" / split / label)
    argv = ["--data", str(tmp_path / "for"), "--out-dir", str(tmp_path / "run"), "--checkpoint",
            str(DFA / "pytorch_model.bin"), "--model-config", json.dumps(TINY_HEADS), "--freeze-frontend",
            "--epochs", "1", "--batch-size", "2", "--lr", "1e-3", "--workers", "0", "--quiet",
            "--wandb", "disabled"]  # fmt: skip
    fine_tune_for.main(fine_tune_for.parse_args(argv))
    before, _ = C.load_model(DFA / "pytorch_model.bin", config=TINY_HEADS)
    after, info = C.load_model(tmp_path / "run" / "best.pt")
    assert info["arch"] == "df_arena" and info["format"] == "project"
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("ssl_model."))
    assert not torch.equal(old["conformer.fc5.weight"], new["conformer.fc5.weight"])


# --------------------------------------------------------------------------------------------------
# The registry is the one source of the README's zoo table
# --------------------------------------------------------------------------------------------------


def test_readme_zoo_table_is_the_registry():
    from antispoof.checkpoints.registry import REGISTRY, zoo_table

    readme = (DATA.parents[1] / "README.md").read_text()
    assert zoo_table() in readme, "README zoo table out of date: paste `python download.py --markdown`"
    for name, entry in REGISTRY.items():
        assert entry["arch"] in M.ARCHS, name
        if entry.get("detector"):
            assert entry.get("zoo") and entry["published_eer"], name
        if entry.get("hf_repo"):
            assert "revision" in entry and (entry["revision"] or "no revision" in entry["checksum_note"]), (
                name
            )
    corrected = {"w2v-small": "5.31", "w2v-large": "2.89", "xlsr-1b": "4.24", "mms-300m": "4.83",
                 "mms-1b": "3.30", "xlsr-2b": "2.81"}  # fmt: skip
    for size, eer in corrected.items():
        assert f"In-the-Wild {eer} %" in REGISTRY[f"antideepfake-{size}"]["published_eer"], size
    assert "11.22 %" in REGISTRY["la"]["published_eer"] and "10.5 %" not in REGISTRY["la"]["published_eer"]


# --------------------------------------------------------------------------------------------------
# score.py on audio files reproduces each reference's per-file score
# --------------------------------------------------------------------------------------------------


def _score_py(paths, checkpoint, capsys, *flags) -> dict:
    import score

    args = score.parse_args(
        [*map(str, paths), "--checkpoint", str(checkpoint), "--model-config", json.dumps(TINY_HEADS), *flags]
        + ["--output-format", "json", "--workers", "0", "--batch-size", "5", "--device", "cpu"]
    )
    assert score.main(args) == 0
    return json.loads(capsys.readouterr().out)


def test_score_py_reproduces_xlsr_mamba_scores(xm, golden, tmp_path, capsys):
    """--reference-policy: the first 66,800 samples tiled (Dataset_eval), logits[:, 1] per file."""
    import soundfile as sf

    raws = _raw_inputs(golden, torch.load(XM / "inputs.pt", weights_only=True)["recipe"])
    paths = [tmp_path / f"{i}.wav" for i in range(len(raws))]
    for path, raw in zip(paths, raws, strict=True):
        sf.write(path, raw.numpy(), 16000, "FLOAT")
    out = _score_py(paths, XM / "model.safetensors", capsys, "--reference-policy")
    assert out["policy"] == "head n=66800" and "logits[:, 1]" in out["score_definition"]
    assert [f["score"] for f in out["files"]] == pytest.approx(xm[4]["score"].tolist(), abs=1e-4)


def test_score_py_reproduces_antideepfake_hubert_scores(golden, audio_dir, tmp_path, capsys):
    """The whole file, layer-normed, batch 1, softmax(logits)[:, 1] (antideepfake_tiny's 16 kHz inputs)."""
    import soundfile as sf

    inputs = torch.load(golden / "antideepfake_tiny" / "inputs.pt", weights_only=True)
    real = audio_dir / "sample_custom" / "real"
    sf.write(tmp_path / "noise.flac", inputs["raw"][3].numpy(), 16000, "PCM_16")
    paths = [real / "328-129766-0000.flac", real / "1624-142933-0000.flac", tmp_path / "noise.flac"]
    out = _score_py(paths, HBT / "model_state_dict.pt", capsys)
    assert out["policy"] == "whole max_s=600 normalize"
    expected = [torch.load(HBT / "outputs.pt", weights_only=True)["score_prob_real"][i] for i in (0, 1, 3)]
    assert [f["score"] for f in out["files"]] == pytest.approx(expected, abs=1e-4)
