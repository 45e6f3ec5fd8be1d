"""Smoke run of the GPU benchmark on the CPU with the tiny model: every section runs and reports numbers."""

import json

import benchmark_gpu


def test_benchmark_runs_on_cpu_with_tiny_model(tmp_path):
    args = benchmark_gpu.parse_args(
        ["--tiny", "--device", "cpu", "--files", "3", "--naive-files", "2", "--batch-size", "2",
         "--train-batch-size", "2", "--ref-train-batch-size", "1", "--workers", "0",
         "--labelled", "none", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    result = benchmark_gpu.main(args)

    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["ratios"] == result["ratios"]
    assert result["end_to_end"]["default"]["ok"] == 3  # flac, wav and mp3 at mixed rates all decode
    assert {p.suffix for p in (tmp_path / "corpus_mixed").iterdir()} == {".flac", ".wav", ".mp3"}
    for section in ("naive_scoring", "model_only", "training"):
        assert all(v > 0 for v in _rates(result[section]))
    assert set(result["breakdown_s_per_1000_files"]) == {
        "decode_1core", "resample_1core", "host_to_device", "feature_extractor", "transformer", "back_end"
    }  # fmt: skip
    # The naive loop and the pipeline decode differently (librosa vs soundfile + soxr) but agree.
    assert result["equivalence_bf16_vs_fp32"]["n"] == 3


def _rates(block):
    entries = [block] if "files_per_s" in block else block.values()
    return [e.get("files_per_s") or e.get("clips_per_s") for e in entries]
