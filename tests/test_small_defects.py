"""Issue 22 item 12: small defects found by the second round of attacks, one test each (each seen failing
before its fix, as the test's comment says)."""

import io
import json
import shutil
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

import antispoof.training.state as train_state
import evaluate_custom
import export
import fine_tune_for
from antispoof.audio.datasets import list_audio_files
from antispoof.audio.decode import load_audio
from antispoof.checkpoints.files import load_model, project_state
from antispoof.runs import prepare_run_dir
from antispoof.utils import init_wandb


def test_a_killed_plot_write_leaves_no_temporary_file_behind(tmp_path):
    # Seen failing: plots write .NAME.<pid>.tmp.png, which only '.*.tmp' was matched against.
    for folder in (tmp_path, tmp_path / "validation"):
        folder.mkdir(exist_ok=True)
        (folder / ".loss_curves.png.4242.tmp.png").write_bytes(b"\x89PNG")
        (folder / ".history.json.4242.tmp").write_text("{")
    (tmp_path / "notes.tmp.png").write_bytes(b"mine")  # not a temporary file of the run
    train_state.clear_unfinished(tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["notes.tmp.png"]


@pytest.mark.parametrize("script", ["evaluate", "fine_tune"])
def test_an_out_dir_that_is_a_file_is_refused_with_a_message(tmp_path, audio_dir, script):
    # Seen failing: FileExistsError / NotADirectoryError tracebacks.
    data = tmp_path / "data"
    for label, name in (("real", "118-121721-0000.flac"), ("fake", "espeak_01.wav")):
        (data / label).mkdir(parents=True)
        shutil.copy(audio_dir / "sample_custom" / label / name, data / label / name)
    (tmp_path / "taken").write_text("a file")
    for out in (tmp_path / "taken", tmp_path / "taken" / "run"):
        argv = ["--data", str(data), "--out-dir", str(out), "--checkpoint", "aasist", "--workers", "0"]
        with pytest.raises(SystemExit, match="cannot be made a folder"):
            if script == "evaluate":
                evaluate_custom.main(evaluate_custom.parse_args(argv))
            else:
                fine_tune_for.main(fine_tune_for.parse_args(argv))


def test_a_wav_whose_data_size_is_zero_is_read_to_its_end(tmp_path):
    # Seen failing: refused as "no audio samples" although the README says such a WAV is read to the end.
    x = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    path = tmp_path / "streamed.wav"
    sf.write(path, x, 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.index(b"data") + 4
    data[at : at + 4] = struct.pack("<I", 0)  # the RIFF size stays intact
    path.write_bytes(bytes(data))
    y, info = load_audio(path, return_info=True)
    assert len(y) == len(x) and np.abs(y - x).max() < 1e-4
    assert "without the audio length" in info.note


def test_a_config_larger_than_its_weights_is_refused_before_it_is_built(golden, tmp_path):
    # Seen failing: every value within its cap, such a config was built in full (1.75 G parameters, 6.5 GB,
    # for the issue's example; about 0.6 GB for this smaller one) and only then failed on the weights' shapes.
    model, _ = load_model(golden / "aasist" / "AASIST-L.pth")
    state = project_state(model)
    state["config"] = {**state["config"], "gat_dims": [1024, 1024]}
    torch.save(state, tmp_path / "wide.pt")
    with pytest.raises(ValueError, match=r"describes a model of [\d,]+ values, but the file holds 86,270:"):
        load_model(tmp_path / "wide.pt")


def test_export_with_malformed_model_config_says_so(golden, tmp_path):
    # Seen failing: json.JSONDecodeError traceback.
    argv = [str(golden / "aasist" / "AASIST-L.pth"), str(tmp_path / "x.onnx"), "--model-config", "{bad"]
    with pytest.raises(SystemExit, match="--model-config '{bad' is neither a JSON object nor a JSON file"):
        export.main(export.parse_args(argv))


def test_fine_tuning_with_malformed_model_config_says_so(audio_dir, tmp_path):
    # Seen failing: json.JSONDecodeError traceback (training parsed --model-config with its own json.loads).
    sample = audio_dir / "sample_custom"
    for split in ("training", "validation", "testing"):
        for label in ("real", "fake"):
            (tmp_path / "for" / split / label).mkdir(parents=True)
            src = sorted((sample / label).iterdir())[0]
            (tmp_path / "for" / split / label / src.name).symlink_to(src)
    argv = ["--data", str(tmp_path / "for"), "--out-dir", str(tmp_path / "run"), "--checkpoint", "aasist",
            "--model-config", "{bad", "--wandb", "disabled"]  # fmt: skip
    with pytest.raises(SystemExit, match="--model-config '{bad' is neither a JSON object nor a JSON file"):
        fine_tune_for.main(fine_tune_for.parse_args(argv))


def test_a_list_on_stdin_keeps_names_as_find_writes_them(tmp_path, monkeypatch):
    # Seen failing: '#1.wav' was read as a comment and ' spaced.wav' lost its leading space.
    for name in ("#1.wav", " spaced.wav", "plain.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    monkeypatch.chdir(tmp_path)
    listing = "#1.wav\n spaced.wav\n# a comment\n\nplain.wav\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(listing.encode())))
    assert list_audio_files(["-"]) == ["#1.wav", " spaced.wav", "plain.wav"]


def test_resume_with_another_backend_records_both(tmp_path):
    # Seen failing: run.json named only the new backend, although the earlier rows came from the other.
    base = {"weights_sha256": "0" * 64, "config_sha256": "1" * 64, "policy": "head n=64600"}
    prepare_run_dir(tmp_path, {**base, "backend": "onnx"}, resume=False, overwrite=False)
    (tmp_path / "scores.csv").write_text("path\n")
    prepare_run_dir(tmp_path, {**base, "backend": "torch"}, resume=True, overwrite=False)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["backend"] == "onnx, then torch" and record["backends"] == ["onnx", "torch"]


def test_fine_tuning_on_a_small_machine(tmp_path):
    """Issue 22 item 4 (seen failing before: --workers defaulted to 4 on 2 cores; 'Training 240 files' while
    each epoch trained on 238; no ETA for the whole run; wandb printed its summary after the result)."""
    import os

    import antispoof.training.loop as loop
    from antispoof.constants import loader_workers

    args = fine_tune_for.parse_args(["--data", str(tmp_path), "--out-dir", str(tmp_path / "run")])
    assert args.workers == loader_workers() == max(0, min(8, (os.cpu_count() or 1) - 1))
    assert loop.dropped_note(240, 238, 14)[0].startswith("  each epoch trains on 238 of the 240 training")
    assert loop.dropped_note(240, 240, 14) == []
    eta = loop.run_eta(per_epoch_s=120, epochs_left=3, test_s=30)
    assert eta == "run ETA: about 6.5 min left (3 epoch(s) of about 2.0 min and the test split (~0.5 min))"
    run = init_wandb("p", tmp_path, {}, mode="offline")
    try:
        assert run.settings.quiet
    finally:
        run.finish()


def test_scoring_decodes_in_process_on_two_cores():
    # Seen failing: 1 decoding process on 2 cores took CPU from the model (benchmark_scoring.py's workers0
    # arm: AASIST 1.6x, SSL-AASIST 1.08x as fast without it); TrainConfig defaulted to 4 loader workers.
    from antispoof.constants import default_workers, loader_workers
    from antispoof.training.config import TrainConfig

    assert [default_workers(cores) for cores in (1, 2, 3, 4, 16)] == [0, 0, 2, 3, 8]
    assert [loader_workers(cores) for cores in (1, 2, 3, 16)] == [0, 1, 2, 8]
    assert TrainConfig(data="x").workers == loader_workers()
