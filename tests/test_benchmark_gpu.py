"""Smoke run of the GPU benchmark on the CPU with the tiny model: its arms (one of each kind) run interleaved
in their own processes and report rates, FLOP rates and ratios; nothing about speed is asserted."""

import json

import benchmark_gpu


def test_benchmark_runs_on_cpu_with_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per arm: less CPU spent waiting on a busy CPU
    args = benchmark_gpu.parse_args(
        ["--tiny", "--device", "cpu", "--files", "3", "--naive-files", "2", "--batch-size", "2",
         "--ref-train-batch-size", "1", "--workers", "0", "--labelled", "none", "--peak-seconds", "0.02",
         "--arms", "naive,pipeline-fp32,model-fp32-b1,train-fp32", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    result = benchmark_gpu.main(args)

    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["ratios"] == result["ratios"] and result["rounds"] == 3 and len(result["load"]) == 3
    assert set(result["ratios"]) == {"end_to_end_fp32_vs_naive"}  # the only pair both of whose arms ran
    assert {p.suffix for p in (tmp_path / "corpus_mixed").iterdir()} == {".flac", ".wav", ".mp3"}
    rows = result["rows"]
    assert [rows[a]["unit"] for a in args.arms] == ["files/s", "files/s", "clips/s", "clips/s"]
    for row in rows.values():
        assert 0 < row["rate"]["min"] <= row["rate"]["median"] <= row["rate"]["max"]
        assert 0 < row["fraction_of_peak"] < 1
    # a training step counts its backward pass too: about twice the forward's FLOPs, or more
    assert rows["train-fp32"]["flops_per_clip"] > 2 * rows["model-fp32-b1"]["flops_per_clip"]
    assert set(result["breakdown_s_per_1000_files"]) == {
        "decode_1core", "resample_1core", "host_to_device", "feature_extractor", "transformer", "back_end"
    }  # fmt: skip
