"""benchmark_scoring.py: the per-stage profile and the accuracy columns (the timed runs are its own job)."""

import pytest
import torch

import antispoof.checkpoints.files as C
import benchmark_scoring as B


def test_profile_splits_the_model_into_its_stages(golden, audio_dir):
    tiny = golden / "ssl_aasist_tiny" / "model_state_dict.pt"
    model, _ = C.load_model(tiny, config={"num_attention_heads": 4})
    paths = [str(next((audio_dir / "sample_custom" / label).iterdir())) for label in ("real", "fake")]
    p = B.profile(model, paths, torch.device("cpu"))
    stages = ["wav2vec 2.0 conv feature extractor", "transformer encoder", "AASIST back end"]
    assert list(p["stages_ms"]) == stages and all(ms > 0 for ms in p["stages_ms"].values())
    assert p["model_ms"] == pytest.approx(sum(p["stages_ms"].values()))
    assert p["decode_ms"] > 0 and p["resample_44k_ms"] > 0 and p["native_rates"] == [16000]
    assert p["top_ops_ms"] and p["batch_size"] == 2


def test_accuracy_columns_compare_with_the_naive_scores():
    labels = ["real", "real", "fake", "fake", None]
    assert B._accuracy([3.0, 2.0, -1.0, -2.0, 0.0], labels) == {"eer": 0.0, "auc": 1.0}
    assert B._accuracy([3.0, -1.5, -1.0, -2.0, 0.0], labels) == {"eer": 0.5, "auc": 0.75}
    assert B._accuracy([1.0, 2.0], ["real", "real"]) == {"eer": None, "auc": None}
