"""A model's identity is its weights and the config that shapes its scores: the ONNX cache, calibrations and
--resume are keyed by both, and a cached ONNX graph is served only when its metadata says it is this model's.

A small random AASIST (3 s to export) stands in for the released ones: what is checked is which graph is
served, not the weights."""

import json
import os
import shutil
import stat
import tempfile

import pytest
import torch

import antispoof.scoring.onnx_backend as ob
import calibrate
import evaluate_custom
import score
from antispoof.checkpoints.files import config_sha256, weights_sha256
from antispoof.networks import build_model

SMALL = {"filts": [20, [1, 4], [4, 4], [4, 8], [8, 8]], "gat_dims": [8, 8], "first_conv": 16}
OTHER_POOLS = {"pool_ratios": [0.1, 0.1, 0.1, 0.1]}  # the example: the same weights, another model
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_model("aasist", SMALL).eval()


def same_weights(model, **config):
    """`model`'s weights in a model built with `config` changed."""
    other = build_model("aasist", {**SMALL, **config}).eval()
    other.load_state_dict(model.state_dict())
    return other


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    monkeypatch.setattr(ob, "_SESSIONS", {})  # no session of another test's file
    return tmp_path / "pretrained" / "onnx"


def test_config_is_part_of_the_identity(small):
    other = same_weights(small, **OTHER_POOLS)
    assert weights_sha256(other) == weights_sha256(small)
    assert config_sha256(other) != config_sha256(small)
    # Options that only change training (dropout is off in eval mode) leave the identity alone.
    ssl = build_model("ssl_aasist", {"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 8,
                                     "num_attention_heads": 2, "conv_dim": [8] * 7})  # fmt: skip
    training_only = {"freeze_frontend": True, "hidden_dropout": 0.1}
    frozen = build_model("ssl_aasist", {**ssl.config.__dict__, **training_only})
    assert config_sha256(frozen) == config_sha256(ssl)


def test_onnx_cache_is_keyed_by_weights_and_config(small, cache):
    x = torch.randn(2, 64600, generator=torch.Generator().manual_seed(1))
    other = same_weights(small, **OTHER_POOLS)
    fast, fast_other = (ob.scoring_model(m, "onnx", CPU) for m in (small, other))
    assert fast.path != fast_other.path and len(list(cache.glob("*.onnx"))) == 2
    with torch.inference_mode():
        reference = other(x)
    # Seen failing before: the second model was served the first one's graph (another model's logits).
    assert (fast_other(x) - reference).abs().max() < 1e-4
    assert (fast(x) - reference).abs().max() > 1e-3
    assert fast_other.metadata["config_sha256"] == config_sha256(other)


def test_a_wrong_or_broken_cached_graph_is_exported_again(small, cache, capsys):
    other = same_weights(small, **OTHER_POOLS)
    good = ob.cached_onnx(small)
    expected = ob.cached_onnx(other)
    x = torch.randn(1, 64600, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        reference = other(x)
    capsys.readouterr()
    for planted in (good.read_bytes(), b"", good.read_bytes()[:1000]):  # another's graph, empty, cut
        expected.write_bytes(planted)
        ob._SESSIONS.clear()
        served = ob.scoring_model(other, "onnx", CPU)
        assert (served(x) - reference).abs().max() < 1e-4  # seen failing: the planted graph's logits
        assert "exporting it again" in capsys.readouterr().err
    assert not [p for p in cache.iterdir() if p.is_dir()]  # the staging folder is gone


def test_read_only_pretrained_falls_back_to_a_private_cache(small, tmp_path, monkeypatch):
    (tmp_path / "not_a_folder").write_text("")  # pretrained/onnx cannot be made under a file
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path / "not_a_folder"))
    monkeypatch.setattr(ob, "_SESSIONS", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # Seen failing before: the graph went to the shared, world-writable $TMPDIR/ssl-aasist-onnx.
    assert ob.cached_onnx(small).parent == tmp_path / "xdg" / "antispoof" / "onnx"
    # No writable home either: a folder of this user's own in the temporary directory, 0700.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not_a_folder"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    folder = ob.user_cache_dir()
    assert folder.parent == tmp_path / "tmp" and stat.S_IMODE(folder.stat().st_mode) == 0o700
    os.chmod(folder, 0o777)  # planted or loosened by someone: refused
    with pytest.raises(OSError, match="not a private folder"):
        ob.user_cache_dir()


def test_calibration_and_resume_refuse_another_config(golden, audio_dir, tmp_path, monkeypatch, capsys):
    """The issue's three keys through the scripts: a calibration fitted under the default config is refused
    by score.py under --model-config pool_ratios, and so is resuming the run with it (both seen accepted).
    AASIST-L's real weights: a calibration needs scores that grow with realness."""
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    checkpoint = tmp_path / "AASIST-L.pth"
    shutil.copy(golden / "aasist" / "AASIST-L.pth", checkpoint)
    data = tmp_path / "data"
    for label, name in (("real", "118-121721-0000.flac"), ("fake", "espeak_01.wav")):
        (data / label).mkdir(parents=True)
        shutil.copy(audio_dir / "sample_custom" / label / name, data / label / name)
    common = ["--data", str(data), "--checkpoint", str(checkpoint), "--out-dir", str(tmp_path / "run")]
    common += ["--workers", "0", "--bootstrap", "0", "--backend", "torch"]
    evaluate_custom.main(evaluate_custom.parse_args(common))
    calibrate.main(calibrate.parse_args(["--run", str(tmp_path / "run")]))
    assert len(json.loads(calibrate_file(checkpoint).read_text())["config_sha256"]) == 64
    other = ["--model-config", json.dumps(OTHER_POOLS)]
    argv = [str(data / "real" / "118-121721-0000.flac"), "--checkpoint", str(checkpoint), "--workers", "0"]
    argv += ["--reference-policy"]  # the policy the run (and so the calibration) scored under
    capsys.readouterr()
    assert score.main(score.parse_args([*argv, "--backend", "torch"])) == 0
    assert score.main(score.parse_args([*argv, "--backend", "torch", *other])) == 2
    assert "another model config" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"config_sha256: .*pool_ratios: \[0.4, 0.5, 0.7, 0.5\] then"):
        evaluate_custom.main(evaluate_custom.parse_args([*common, "--resume", *other]))


def calibrate_file(checkpoint):
    return checkpoint.with_name(checkpoint.name + ".calibration.json")
