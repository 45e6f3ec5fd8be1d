"""The model zoo: NII AntiDeepfake and XLS-R + SLS against their reference implementations (../shared/golden),
the key-map negative controls of the golden READMEs, and the full-size parameter counts.

Golden data: antideepfake_tiny (unmodified models/W2V.py with fairseq 862efab, two front-end structures) and
sls_tiny (unmodified SLS model.py with its modified fairseq). Tolerance atol = rtol = 1e-4, as both READMEs
recommend (correct implementations differ by <= 5e-6; every wrong mapping tried moves x by >= 1e-2).
"""

import json

import numpy as np
import pytest
import torch
from torch.testing import assert_close

import antispoof.checkpoints.files as C
import antispoof.networks as M
from antispoof.networks.wav2vec import layer_outputs

TOL = {"atol": 1e-4, "rtol": 1e-4}
TINY_HEADS = {"num_attention_heads": 4}  # the one size tensors cannot show (golden config.json)
ADF_VARIANTS = ("tiny_mms_style", "tiny_w2v_small_style")


@pytest.fixture(scope="module")
def adf_inputs(golden):
    return torch.load(golden / "antideepfake_tiny" / "inputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def sls_io(golden):
    d = golden / "sls_tiny"
    return torch.load(d / "inputs.pt", weights_only=True)["x"], torch.load(
        d / "outputs.pt", weights_only=True
    )


def _adf_outputs(golden, variant):
    return torch.load(golden / "antideepfake_tiny" / variant / "outputs.pt", weights_only=True)


def _check_adf(model, inputs, golden_out, rows=(0, 1, 2, 3), only_x: bool = False) -> None:
    """Every tensor the reference computes, per file (batch 1, whole file, as its inference). `only_x`: the
    front end's output alone (every wrong mapping tried moves it by >= 1e-2)."""
    for i in rows:
        x = inputs["preprocessed"][i][None]  # already resampled and layer-normed by the reference
        with torch.no_grad():
            if only_x:
                assert_close(model.m_ssl(x).last_hidden_state[0], golden_out["x"][i], **TOL)
                continue
            front = model.m_ssl(x)
            layers = torch.stack(layer_outputs(model.m_ssl, x))  # (L, 1, T, D)
            logits = model.proj_fc(front.last_hidden_state.mean(dim=1))  # = model(x), without a third pass
        assert_close(front.extract_features[0], golden_out["features"][i], **TOL)
        assert_close(layers[:, 0], golden_out["layer_outputs"][i], **TOL)
        assert_close(front.last_hidden_state[0], golden_out["x"][i], **TOL)
        assert_close(logits[0], golden_out["logits"][i], **TOL)
        score = logits.softmax(dim=-1)[0, M.REAL_INDEX]  # the reference's evaluation.py score
        assert_close(score, torch.tensor(golden_out["score_prob_real"][i]), **TOL)


# --------------------------------------------------------------------------------------------------
# AntiDeepfake
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ADF_VARIANTS)
@pytest.mark.parametrize("filename", ["detector.ckpt", "model_state_dict.pt"])
def test_antideepfake_reproduces_golden(golden, adf_inputs, variant, filename):
    model, info = C.load_model(golden / "antideepfake_tiny" / variant / filename, config=TINY_HEADS)
    assert info["format"] == "antideepfake" and info["arch"] == "antideepfake"
    assert isinstance(model, M.AntiDeepfake) and not model.training
    assert model.default_policy == M.InputPolicy("whole", normalize=True)
    assert model.score_kind == "softmax_real"
    # The structure comes from the tensors (layer-norm convs + bias, or a GroupNorm in conv 0 and no bias).
    structure = (model.config.feat_extract_norm, model.config.do_stable_layer_norm, model.config.conv_bias)
    assert structure == (("layer", True, True) if variant == "tiny_mms_style" else ("group", False, False))
    golden_out = _adf_outputs(golden, variant)
    with torch.no_grad():  # the forward itself, on every file
        for x, logits in zip(adf_inputs["preprocessed"], golden_out["logits"], strict=True):
            assert_close(model(x[None])[0], logits, **TOL)
    if filename == "detector.ckpt":  # the two files hold the same tensors: the intermediates once
        _check_adf(model, adf_inputs, golden_out)


def test_antideepfake_from_model_safetensors_and_project_checkpoint(golden, adf_inputs, tmp_path):
    """The Hugging Face release is a model.safetensors of the same state dict; a fine-tuned model is saved
    as a project checkpoint. Both load to the same numbers."""
    from safetensors.torch import save_file

    variant = "tiny_w2v_small_style"
    sd = torch.load(golden / "antideepfake_tiny" / variant / "model_state_dict.pt", weights_only=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "model.safetensors")
    model, info = C.load_model(tmp_path / "model.safetensors", config=TINY_HEADS)
    assert info["format"] == "antideepfake"
    _check_adf(model, adf_inputs, _adf_outputs(golden, variant), rows=[2])
    C.save_checkpoint(tmp_path / "best.pt", model)
    again, info = C.load_model(tmp_path / "best.pt")
    assert info["format"] == "project" and again.config == model.config
    _check_adf(again, adf_inputs, _adf_outputs(golden, variant), rows=[2])


def test_antideepfake_head_count_comes_from_the_model_config(golden):
    with pytest.raises(ValueError, match="attention heads cannot be read.*num_attention_heads"):
        C.load_model(golden / "antideepfake_tiny" / "tiny_mms_style" / "detector.ckpt")


# --------------------------------------------------------------------------------------------------
# XLS-R + SLS
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filename", ["model_state_dict.pt", "model_state_dict_dataparallel.pt"])
def test_sls_reproduces_golden(golden, sls_io, filename):
    x, out = sls_io
    model, info = C.load_model(golden / "sls_tiny" / filename, config=TINY_HEADS)
    assert info["format"] == "sls" and isinstance(model, M.SLS) and not model.training
    assert model.fc1.in_features == 1407 and model.config.fc1_hidden == 128
    assert (model.default_policy, model.score_kind) == (M.InputPolicy("head"), "log_softmax_real")
    if filename == "model_state_dict_dataparallel.pt":  # the same tensors under module.: the output once
        with torch.no_grad():
            assert_close(model(x), out["log_probs"], **TOL)
        return
    with torch.no_grad():
        front = model.ssl_model(x)
        layers = torch.stack(layer_outputs(model.ssl_model, x))  # (L, B, T, D)
        weights = model.sig(model.fc0(layers.mean(dim=2))).transpose(0, 1)  # (B, L, 1)
        log_probs = model(x)
    assert_close(front.extract_features, out["features"], **TOL)
    assert_close(layers.transpose(1, 2), out["layer_results"], **TOL)  # fairseq's (L, T, B, D)
    assert_close(weights, out["y0_fc0"].sigmoid(), **TOL)
    assert_close(weights[..., None], out["y0"], **TOL)
    assert_close(log_probs, out["log_probs"], **TOL)
    assert_close(log_probs[:, M.REAL_INDEX], out["score"], **TOL)


def test_sls_front_end_from_the_fairseq_pretraining_checkpoint(golden, sls_io):
    x, out = sls_io
    with pytest.warns(UserWarning, match="sls back end is randomly initialised"):
        model, info = C.load_model(golden / "sls_tiny" / "fairseq_w2v_checkpoint.pt", arch="sls")
    assert info["format"] == "fairseq_pretrain" and isinstance(model, M.SLS)
    with torch.no_grad():
        front = model.ssl_model(x)
        layers = torch.stack(layer_outputs(model.ssl_model, x))
        assert model(x).shape == (4, 2)
    assert_close(front.extract_features, out["features"], **TOL)
    assert_close(layers.transpose(1, 2), out["layer_results"], **TOL)
    assert_close(front.last_hidden_state, out["x"], **TOL)


def test_sls_layer_outputs_are_taken_before_the_final_layer_norm(golden, sls_io):
    """The golden README's traps: the last layer after the final LayerNorm (HF last_hidden_state), or the
    encoder input as layer 0, each move the output far beyond the tolerance."""
    x, out = sls_io
    model, _ = C.load_model(golden / "sls_tiny" / "model_state_dict.pt", config=TINY_HEADS)
    with torch.no_grad():
        layers = layer_outputs(model.ssl_model, x)
        post_ln = model.ssl_model(x).last_hidden_state
    assert (post_ln - layers[-1]).abs().max() > 1e-2
    assert_close(layers[-1], out["layer_results"][-1].transpose(0, 1), **TOL)


# --------------------------------------------------------------------------------------------------
# Negative controls: every wrong mapping of the golden READMEs is refused (missing / unexpected / misshapen
# key) or caught (parity fails)
# --------------------------------------------------------------------------------------------------

FS = "m_ssl.model."


def _swap(sd, a, b):
    sd[a], sd[b] = sd[b].clone(), sd[a].clone()


CONTROLS = {
    "weight_g ignored": lambda sd: sd.pop(FS + "encoder.pos_conv.0.weight_g"),
    "q/k weights swapped": lambda sd: _swap(
        sd, FS + "encoder.layers.0.self_attn.q_proj.weight", FS + "encoder.layers.0.self_attn.k_proj.weight"
    ),
    "feature LayerNorm at init": lambda sd: (
        sd.pop(FS + "layer_norm.weight"),
        sd.pop(FS + "layer_norm.bias"),
    ),
    "pos_conv bias zero": lambda sd: sd[FS + "encoder.pos_conv.0.bias"].zero_(),
    "attention / final LayerNorm swapped": lambda sd: _swap(
        sd,
        FS + "encoder.layers.0.self_attn_layer_norm.weight",
        FS + "encoder.layers.0.final_layer_norm.weight",
    ),
    "encoder.layer_norm at init": lambda sd: sd[FS + "encoder.layer_norm.weight"].fill_(1.0),
    "conv layer 0 norm at init": lambda sd: [
        sd[k].fill_(1.0)
        for k in list(sd)
        if k.startswith(FS + "feature_extractor.conv_layers.0.2") and "weight" in k
    ],
    "unknown key": lambda sd: sd.__setitem__(FS + "encoder.extra_proj.weight", torch.zeros(2)),
}


@pytest.mark.parametrize("variant", ADF_VARIANTS)
@pytest.mark.parametrize("control", sorted(CONTROLS))
def test_antideepfake_wrong_mappings_are_refused_or_caught(golden, adf_inputs, tmp_path, variant, control):
    sd = torch.load(golden / "antideepfake_tiny" / variant / "model_state_dict.pt", weights_only=True)
    CONTROLS[control](sd)
    torch.save(sd, tmp_path / "broken.pt")
    try:
        model, _ = C.load_model(tmp_path / "broken.pt", config=TINY_HEADS)
    except ValueError:
        return  # refused
    with pytest.raises(AssertionError):  # caught
        _check_adf(model, adf_inputs, _adf_outputs(golden, variant), rows=[0], only_x=True)


SLS_CONTROLS = {
    "first_bn running stats at default": lambda sd: (
        sd["first_bn.running_mean"].zero_(),
        sd["first_bn.running_var"].fill_(1.0),
    ),
    "fc0.bias zero": lambda sd: sd["fc0.bias"].zero_(),
    "first_bn stats missing": lambda sd: sd.pop("first_bn.running_var"),
}


@pytest.mark.parametrize("control", sorted(SLS_CONTROLS))
def test_sls_wrong_back_end_weights_are_refused_or_caught(golden, sls_io, tmp_path, control):
    x, out = sls_io
    sd = torch.load(golden / "sls_tiny" / "model_state_dict.pt", weights_only=True)
    SLS_CONTROLS[control](sd)
    torch.save(sd, tmp_path / "broken.pt")
    try:
        model, _ = C.load_model(tmp_path / "broken.pt", config=TINY_HEADS)
    except ValueError:
        return
    with torch.no_grad():
        assert (model(x) - out["log_probs"]).abs().max() > 1e-2


def test_sls_input_length_mismatch_says_what_to_pass(golden, tmp_path):
    with pytest.raises(ValueError, match="fc1 takes 1407 inputs.*n_samples"):
        C.load_model(golden / "sls_tiny" / "model_state_dict.pt", config={**TINY_HEADS, "n_samples": 32000})


# --------------------------------------------------------------------------------------------------
# Full size: the published configurations, built on the meta device (no memory, no initialisation)
# --------------------------------------------------------------------------------------------------


def _wav2vec2_params(cfg: M.Wav2Vec2FrontEndConfig) -> int:
    """Parameters of a wav2vec 2.0 front end, from its architecture (not from our code): the conv extractor
    (a LayerNorm in every layer and biases, or a GroupNorm in layer 0 only and no bias), the feature
    LayerNorm + projection, the weight-normed positional conv (weight_v, weight_g (1, 1, K), bias), the layers
    (q/k/v/out, two LayerNorms, FFN) and the encoder LayerNorm."""
    chans, D, F = [1, *cfg.conv_dim], cfg.hidden_size, cfg.intermediate_size
    conv = 0
    for i, k in enumerate(cfg.conv_kernel):
        c_in, c = chans[i], chans[i + 1]
        conv += c_in * c * k + (c if cfg.conv_bias else 0)
        conv += 2 * c if cfg.feat_extract_norm == "layer" or i == 0 else 0
    projection = 2 * chans[-1] + chans[-1] * D + D
    k_pos = cfg.num_conv_pos_embeddings
    pos_conv = D * (D // cfg.num_conv_pos_embedding_groups) * k_pos + k_pos + D
    layer = 4 * (D * D + D) + 2 * D + (D * F + F) + (F * D + D) + 2 * D
    return conv + projection + pos_conv + cfg.num_hidden_layers * layer + 2 * D


# Published sizes (AntiDeepfake model cards; XLS-R / MMS papers) for a sanity check of the formula itself.
ADF_SIZES_M = {
    "w2v_small": 95,
    "w2v_large": 315,
    "mms_300m": 315,
    "mms_1b": 965,
    "xlsr_1b": 965,
    "xlsr_2b": 2162,
    "hubert_xl": 964,  # HuBERT X-Large (Hsu et al. 2021), without its pretraining-only label embeddings
}


@pytest.mark.parametrize("size", sorted(M.ANTIDEEPFAKE_PRESETS))
def test_full_size_antideepfake_builds_with_reference_parameter_count(size):
    with torch.device("meta"):
        model = M.build_model(f"antideepfake-{size}")
        logits = model(torch.empty(1, 48000))
    cfg = model.config
    assert cfg == M.ANTIDEEPFAKE_PRESETS[size] and logits.shape == (1, 2)
    total = sum(p.numel() for p in model.parameters())
    assert total == _wav2vec2_params(cfg) + 2 * cfg.hidden_size + 2  # + proj_fc
    assert abs(total / 1e6 - ADF_SIZES_M[size]) / ADF_SIZES_M[size] < 0.01


def test_full_size_sls_builds_with_reference_parameter_count():
    with torch.device("meta"):
        model = M.build_model("sls")
        log_probs = model(torch.empty(2, 64600))
    assert log_probs.shape == (2, 2) and model.fc1.in_features == 22847  # 67 * 341, the reference's
    head = (1024 + 1) + 2 + (22847 * 1024 + 1024) + (1024 * 2 + 2)  # fc0, first_bn, fc1, fc3
    total = sum(p.numel() for p in model.parameters())
    assert total == _wav2vec2_params(model.config) + head == 315_437_696 + head
    with torch.device("meta"):  # another input length: fc1 and the model's own input policy follow
        short = M.build_model("sls", {"n_samples": 32000})
    assert short.fc1.in_features == (99 // 3) * 341 and short.default_policy.n_samples == 32000


# --------------------------------------------------------------------------------------------------
# The "whole" input policy, end to end from audio files
# --------------------------------------------------------------------------------------------------


def test_score_py_reproduces_antideepfake_reference_scores_from_audio(
    golden, adf_inputs, audio_dir, tmp_path, capsys
):
    """score.py FILES --checkpoint detector.ckpt: decoding, resampling, the waveform layer norm, the whole
    file at batch 1 (different lengths are never padded together), and softmax(logits)[:, 1] as the score
    give the reference's evaluation score per file. A copy of a file has the same length: it shares a batch
    with its original and keeps its score."""
    import shutil

    import soundfile as sf

    import score

    real = audio_dir / "sample_custom" / "real"
    files = {0: real / "328-129766-0000.flac", 1: real / "1624-142933-0000.flac"}
    # Rows 2 and 3 were generated by the reference's prepare_audio.py: written back from the raw samples
    # its read_audio returned (16-bit FLAC holds them exactly).
    for row, name in ((2, "real24k.flac"), (3, "noise.flac")):
        sf.write(
            tmp_path / name, adf_inputs["raw"][row].numpy(), adf_inputs["raw_sample_rate"][row], "PCM_16"
        )
        files[row] = tmp_path / name
    shutil.copy(files[0], tmp_path / "copy_of_0.flac")
    paths = [*map(str, files.values()), str(tmp_path / "copy_of_0.flac")]
    ckpt = golden / "antideepfake_tiny" / "tiny_mms_style" / "detector.ckpt"
    args = score.parse_args(
        [
            *paths,
            "--checkpoint",
            str(ckpt),
            "--model-config",
            '{"num_attention_heads": 4}',
            "--output-format",
            "json",
        ]
        + ["--workers", "0", "--batch-size", "4", "--device", "cpu"]
    )
    assert score.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "whole max_s=600 normalize" and "softmax(logits)[:, 1]" in out["score_definition"]
    scores = {f["path"]: f["score"] for f in out["files"]}
    reference = _adf_outputs(golden, "tiny_mms_style")["score_prob_real"]
    for row in (0, 1, 3):  # 16 kHz files: the reference's numbers
        assert scores[str(files[row])] == pytest.approx(reference[row], abs=1e-4)
    # 24 kHz: soxr resamples where the reference uses torchaudio's sinc filter; the score stays close.
    assert scores[str(files[2])] == pytest.approx(reference[2], abs=2e-3)
    assert scores[str(tmp_path / "copy_of_0.flac")] == pytest.approx(scores[str(files[0])], abs=1e-5)


# --------------------------------------------------------------------------------------------------
# Registry: Hugging Face-hosted entries through huggingface_hub, against a local server
# --------------------------------------------------------------------------------------------------


def test_hugging_face_registry_entry_downloads_loads_and_states_its_license(
    golden, adf_inputs, tmp_path, monkeypatch, capsys
):
    """`antideepfake-mms-300m` is fetched by huggingface_hub from HF_ENDPOINT (a real HTTP server on
    127.0.0.1 serving a model.safetensors the way the Hub does) into HF_HUB_CACHE, then loads; the
    non-commercial license is printed once per process. The file served is the tiny golden model."""
    import hashlib
    import http.server
    import threading

    from safetensors.torch import save_file

    sd = torch.load(
        golden / "antideepfake_tiny" / "tiny_mms_style" / "model_state_dict.pt", weights_only=True
    )
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "served.safetensors")
    payload = (tmp_path / "served.safetensors").read_bytes()
    requests = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _headers(self, found: bool):
            self.send_response(200 if found else 404)
            self.send_header("X-Repo-Commit", "0" * 40)
            self.send_header("ETag", f'"{hashlib.sha256(payload).hexdigest()}"')
            self.send_header("Content-Length", str(len(payload) if found else 0))
            self.end_headers()

        def do_HEAD(self):
            requests.append(("HEAD", self.path))
            self._headers(
                self.path == "/nii-yamagishilab/mms-300m-anti-deepfake/resolve/main/model.safetensors"
            )

        def do_GET(self):
            requests.append(("GET", self.path))
            found = self.path.endswith("/resolve/main/model.safetensors")
            self._headers(found)
            if found:
                self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path / "pretrained"))
        with pytest.raises(FileNotFoundError, match="python download.py antideepfake-mms-300m"):
            C.resolve_checkpoint("antideepfake-mms-300m", download=False)
        monkeypatch.setattr(C, "_notices_shown", set())
        model, info = C.load_model("antideepfake-mms-300m", config=TINY_HEADS)
        path = C.resolve_checkpoint("antideepfake-mms-300m", download=False)  # now in the cache
        C.load_model("antideepfake-mms-300m", config=TINY_HEADS)
    finally:
        server.shutdown()
    assert path.is_relative_to(tmp_path / "hf-cache") and path.read_bytes() == payload
    assert ("GET", "/nii-yamagishilab/mms-300m-anti-deepfake/resolve/main/model.safetensors") in requests
    assert info["format"] == "antideepfake"
    _check_adf(model, adf_inputs, _adf_outputs(golden, "tiny_mms_style"), rows=[0])
    assert capsys.readouterr().err.count("CC BY-NC-SA 4.0") == 1


# --------------------------------------------------------------------------------------------------
# Fine-tuning an AntiDeepfake model with the same flags as any other
# --------------------------------------------------------------------------------------------------


def test_antideepfake_fine_tunes_end_to_end_with_the_usual_flags(golden, audio_dir, tmp_path):
    from test_fine_tune import make_for

    import fine_tune_for
    from antispoof.scoring.scorefile import read_scores

    data = make_for(tmp_path / "for", audio_dir,
                    {"training": ([0], [0]), "validation": ([1], [1]), "testing": ([2], [2])})  # fmt: skip
    out = tmp_path / "run"
    init = golden / "antideepfake_tiny" / "tiny_w2v_small_style" / "detector.ckpt"
    argv = ["--data", str(data), "--out-dir", str(out), "--checkpoint", str(init), "--epochs", "1",
            "--model-config", '{"num_attention_heads": 4}', "--freeze-frontend", "--batch-size", "2",
            "--lr", "1e-4", "--workers", "0", "--quiet", "--wandb", "disabled"]  # fmt: skip
    history = fine_tune_for.main(fine_tune_for.parse_args(argv))
    model, info = C.load_model(out / "best.pt")
    assert info["arch"] == "antideepfake" and model.config.num_attention_heads == 4
    assert model.config.feat_extract_norm == "group"  # the structure found in the released file travels on
    start, _ = C.load_model(init, config=TINY_HEADS)
    assert torch.equal(
        model.m_ssl.encoder.layers[0].feed_forward.intermediate_dense.weight,
        start.m_ssl.encoder.layers[0].feed_forward.intermediate_dense.weight,
    )
    assert not torch.equal(model.proj_fc.weight, start.proj_fc.weight)  # frozen front end, trained head
    assert (history["test"]["n_real"], history["test"]["n_fake"], history["test"]["n_skipped"]) == (1, 1, 0)
    rows = read_scores(out / "test" / "scores.csv")  # the test split is scored the way the reference scores
    assert {(r["policy"], r["score_kind"]) for r in rows} == {("whole max_s=600 normalize", "softmax_real")}


def test_whole_policy_skips_a_file_too_short_for_the_model_with_a_reason(golden, tmp_path):
    """wav2vec 2.0 needs 400 samples for one frame; audio.py's 0.1 s minimum keeps shorter files from the
    model (a forward error would end the whole run), so under "whole" they are skipped with a reason."""
    import soundfile as sf

    from antispoof.scoring.core import score_items

    sf.write(tmp_path / "blip.wav", np.full(300, 0.1, dtype=np.float32), 16000)  # 300 samples: no frame
    ckpt = golden / "antideepfake_tiny" / "tiny_mms_style" / "detector.ckpt"
    model, _ = C.load_model(ckpt, config=TINY_HEADS)
    (row,) = score_items(model, [str(tmp_path / "blip.wav")], workers=0, device="cpu", progress=False)
    assert row["score"] is None and row["status"].startswith("too short")
