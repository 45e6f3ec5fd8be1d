"""benchmark_scoring.py: the interleaved arms and their table, the roofline's FLOP count, the load note, the
per-stage profile, the per-layer drift and the accuracy columns. Speed itself is never asserted here."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import benchmark_scoring as B
from antispoof import benchmark


def test_arms_run_interleaved_in_warm_processes(tiny_checkpoint, audio_dir, capsys, monkeypatch):
    monkeypatch.setenv(
        "OMP_NUM_THREADS", "1"
    )  # arms on one thread each: less CPU spent waiting on a busy CPU
    args = B.parse_args(
        ["--checkpoint", str(tiny_checkpoint), "--data", str(audio_dir / "sample_custom"), "--files", "2",
         "--batch-size", "2", "--workers", "1", "--variants", "workers0", "--peak-seconds", "0.02"]
    )  # fmt: skip
    s = B.main(args)

    assert s["rounds"] == 3 and len(s["load"]) == 3 and s["files"] == 2
    assert list(s["rows"]) == ["naive", "pipeline", "workers0"]
    assert (s["rows"]["pipeline"]["workers"], s["rows"]["workers0"]["workers"]) == (1, 0)
    assert s["rows"]["workers0"]["max_abs_score_diff"] < 1e-2  # the same scores, decoded in-process
    naive, pipeline = s["rows"]["naive"], s["rows"]["pipeline"]
    assert naive["speedup"] == {"median": 1.0, "min": 1.0, "max": 1.0, "n": 3}
    assert pipeline["backend"] == "torch" and pipeline["amp"] == "fp32"  # auto, for SSL-AASIST on a CPU
    for row in (naive, pipeline):
        f = row["files_per_s"]
        assert 0 < f["min"] <= f["median"] <= f["max"] and f["n"] == 3
        assert 0 < row["fraction_of_peak"] < 1
    assert s["flops_per_clip"] > 1e8 and s["peak_gflops"]["float32"] > 0
    # the same clips (real and fake ones) and the same weights: the same scores, batched or not
    assert pipeline["max_abs_score_diff"] < 1e-2 and pipeline["eer_change_points"] is not None
    out = capsys.readouterr().out
    assert "GFLOP per clip" in out and "before->after each round" in out and "fp32, 0 workers)" in out
    assert "positive = real, higher score = more real" in out


def test_rounds_below_three_are_refused():
    with pytest.raises(SystemExit):
        B.parse_args(["--rounds", "2"])


def test_data_default_is_the_sample_that_ships():
    assert B.parse_args([]).data == str(B.DEFAULT_DATA)
    assert (B.DEFAULT_DATA / "real").is_dir() and (B.DEFAULT_DATA / "fake").is_dir()


def test_flop_count_includes_the_cpu_attention_kernel():
    class Attention(nn.Module):
        def forward(self, x):  # (1, 1, 4, 8): q = k = v
            return F.scaled_dot_product_attention(x, x, x)

    # Two (4 x 8) @ (8 x 4)-sized products: 2 * 2 * 4 * 4 * 8 FLOPs; torch's table alone counted 0 here.
    assert benchmark.flops_per_clip(Attention(), torch.randn(1, 1, 4, 8)) == 512
    assert benchmark.flops_per_clip(nn.Linear(10, 20), torch.randn(1, 10)) == 2 * 10 * 20


def test_load_note_speaks_up_only_when_the_load_moved():
    def rounds(before, after, others):
        return [{"load_before": before, "load_after": after, "arms": {"a": {"others_cores": others}}}] * 3

    assert benchmark.load_note(rounds(1.0, 1.3, 0.1)) is None
    assert "moved by more than 0.5" in benchmark.load_note(rounds(1.0, 1.6, 0.1))
    assert "3 of 3 timed passes" in benchmark.load_note(rounds(1.0, 1.0, 0.9))


def test_profile_splits_the_model_into_its_stages(tiny, audio_dir):
    paths = [str(next((audio_dir / "sample_custom" / label).iterdir())) for label in ("real", "fake")]
    p = B.profile(tiny, paths, torch.device("cpu"))
    stages = ["wav2vec 2.0 conv feature extractor", "transformer encoder", "AASIST back end"]
    assert list(p["stages_ms"]) == stages and all(ms > 0 for ms in p["stages_ms"].values())
    assert p["model_ms"] == pytest.approx(sum(p["stages_ms"].values()))
    assert p["decode_ms"] > 0 and p["resample_44k_ms"] > 0 and p["native_rates"] == [16000]
    assert p["top_ops_ms"] and p["batch_size"] == 2


def test_layer_drift_reports_every_front_end_layer(tiny):
    x = torch.randn(2, 64600) * 0.1
    d = B.layer_drift(copy.deepcopy(tiny), x)  # quantises its model in place
    n_layers = len(tiny.frontend.encoder.layers)
    assert d["layers"][:2] == ["conv feature extractor", "feature projection"]
    assert len(d["layers"]) == 2 + n_layers + 2 and d["layers"][-1] == "logits"
    # bf16 moves every stage a little; int8 (Linear layers only) leaves the convolutions exact
    assert all(0 < e < 1 for e in d["bf16"]) and d["int8"][0] == 0 and all(0 < e < 1 for e in d["int8"][1:])
    assert d["score_bf16"] > 0 and d["score_int8"] > 0


def test_accuracy_columns_compare_with_the_naive_scores():
    labels = ["real", "real", "fake", "fake", None]
    assert B._accuracy([3.0, 2.0, -1.0, -2.0, 0.0], labels) == {"eer": 0.0, "auc": 1.0}
    assert B._accuracy([3.0, -1.5, -1.0, -2.0, 0.0], labels) == {"eer": 0.5, "auc": 0.75}
    assert B._accuracy([1.0, 2.0], ["real", "real"]) == {"eer": None, "auc": None}


def test_backend_auto_picks_onnxruntime_only_where_it_measured_faster(tiny):
    from antispoof.networks import build_model
    from antispoof.scoring.onnx_backend import ONNX_FASTER_ON_CPU, resolve_backend

    cpu = torch.device("cpu")
    assert ONNX_FASTER_ON_CPU == ("aasist",)  # AASIST and AASIST-L (README, Performance)
    assert resolve_backend(build_model("aasist-l"), "auto", cpu) == "onnx"
    assert resolve_backend(build_model("aasist-l"), "auto", cpu, amp="bf16") == "torch"
    assert resolve_backend(tiny, "auto", cpu) == "torch"  # SSL-AASIST: a one-off export of minutes, opt-in
