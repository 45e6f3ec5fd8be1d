"""export.py: ONNX graphs that onnxruntime runs to within 1e-4 of the reference logits (golden data), the
export command's parity gate, and onnxruntime as the CPU scoring backend."""

import json

import onnx
import pytest
import torch
from torch.testing import assert_close

import antispoof.checkpoints.files as C
import antispoof.scoring.onnx_backend as ob
import export
from antispoof.scoring.core import score_items

TOL = {"atol": 1e-4, "rtol": 1e-4}  # golden/README.md's parity tolerance
TINY_HEADS = {"num_attention_heads": 4}  # the one size of the tiny model its tensors cannot show


def test_aasist_onnx_backend_matches_golden_and_pytorch(golden, audio_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path))
    x = torch.load(golden / "aasist" / "inputs.pt", weights_only=True)["x"]
    outputs = torch.load(golden / "aasist" / "outputs.pt", weights_only=True)
    model, _ = C.load_model(golden / "aasist" / "AASIST.pth")
    fast = ob.scoring_model(model, "auto", torch.device("cpu"))  # auto: onnxruntime for AASIST on a CPU
    assert isinstance(fast, ob.OnnxDetector)
    [path] = (tmp_path / "onnx").glob("aasist-*.onnx")  # exported once, kept under pretrained/onnx
    # All 6 golden rows (LibriSpeech, espeak-ng, noise) in one batch of 6 (the graph was traced at batch 2).
    assert_close(fast(x), outputs["AASIST"]["logits"], **TOL)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["arch"] == "aasist" and meta["n_samples"] == "64600"
    assert meta["weights_sha256"] == C.weights_sha256(model)
    assert "index 1 = real" in meta["labels"]
    assert meta["input_policy"] == "head n=64600" and meta["score_kind"] == "logit_real"
    # Through the scoring pipeline, real files get PyTorch's scores.
    files = [next((audio_dir / "sample_custom" / label).iterdir()) for label in ("real", "fake")]
    opts = dict(batch_size=4, workers=0, device="cpu", progress=False)
    for a, b in zip(score_items(model, files, **opts), score_items(fast, files, **opts), strict=True):
        assert a["status"] == b["status"] == "ok"
        assert abs(a["score"] - b["score"]) < 1e-4 and abs(a["p_fake"] - b["p_fake"]) < 1e-5
    assert ob.scoring_model(model, "torch", torch.device("cpu")) is model


def test_tiny_ssl_aasist_onnx_matches_golden_logits(golden, tmp_path):
    tiny = golden / "ssl_aasist_tiny"
    x = torch.load(tiny / "inputs.pt", weights_only=True)["x"]
    golden_logits = torch.load(tiny / "outputs.pt", weights_only=True)["logits"]
    model, _ = C.load_model(tiny / "model_state_dict.pt", config=TINY_HEADS)
    path = tmp_path / "tiny.onnx"
    ob.write_onnx(model, path)
    session = ob.OnnxDetector(path, model)
    assert_close(session(x), golden_logits, **TOL)
    assert_close(session(x[1:2]), golden_logits[1:2], **TOL)  # a batch of one: the batch axis is free
    with pytest.raises(ValueError, match="takes \\(batch, 64600\\)"):
        session(x[:, :16000])


def test_export_command_gates_on_parity(golden, tmp_path, capsys):
    tiny = golden / "ssl_aasist_tiny" / "model_state_dict.pt"
    common = [str(tiny), "--model-config", json.dumps(TINY_HEADS), "--check-data", "none"]
    out = tmp_path / "sub" / "tiny.onnx"
    assert export.main(export.parse_args([common[0], str(out), *common[1:]])) == out
    printed = capsys.readouterr().out
    assert out.exists() and "index 1 = real" in printed
    assert float(printed.rsplit("vs PyTorch ", 1)[1]) < 1e-4
    # An impossible tolerance refuses the export and leaves no file behind.
    refused = tmp_path / "refused.onnx"
    with pytest.raises(SystemExit, match="differ from PyTorch"):
        export.main(export.parse_args([common[0], str(refused), *common[1:], "--atol", "0"]))
    assert not refused.exists()


def test_export_refuses_whole_file_models(golden, tmp_path):
    adf = golden / "antideepfake_tiny" / "tiny_mms_style" / "model_state_dict.pt"
    out = tmp_path / "adf.onnx"
    with pytest.raises(SystemExit, match="scores whole files"):
        export.main(export.parse_args([str(adf), str(out), "--model-config", json.dumps(TINY_HEADS)]))
    assert not out.exists()
