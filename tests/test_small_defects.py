"""Issue 22 item 12: small defects found by the second round of attacks, one test each (each seen failing
before its fix, as the test's comment says)."""

import shutil
import struct

import numpy as np
import pytest
import soundfile as sf

import antispoof.training.state as train_state
import evaluate_custom
import fine_tune_for
from antispoof.audio.decode import load_audio


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
