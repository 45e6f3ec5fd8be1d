"""Hostile inputs (issue 10): names that are not UTF-8, symlinked folders, truncated WAVs, odd CSVs, odd
paths, unusable calibration values. Each test failed before its fix."""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import score
from checkpoints import load_model, save_checkpoint
from data import load_dataset
from scoring import read_scores, score_items

BAD_NAME = b"bad\xff\xfe.flac"  # not UTF-8: os.listdir returns it with surrogateescape code points


@pytest.fixture(scope="module")
def tiny(golden):
    model, _ = load_model(
        golden / "ssl_aasist_tiny" / "model_state_dict.pt", config={"num_attention_heads": 4}
    )
    return model


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, tiny)
    return path


@pytest.fixture(scope="module")
def real_file(audio_dir) -> Path:
    return audio_dir / "sample_custom" / "real" / "118-121721-0000.flac"


@pytest.fixture(scope="module")
def fake_file(audio_dir) -> Path:
    return audio_dir / "sample_custom" / "fake" / "espeak_01.wav"


@pytest.fixture
def bad_name_data(tmp_path, real_file, fake_file) -> Path:
    """real/bad\\xff\\xfe.flac + fake/espeak_01.wav."""
    root = tmp_path / "data"
    (root / "real").mkdir(parents=True)
    (root / "fake").mkdir()
    shutil.copy(real_file, os.path.join(os.fsencode(root / "real"), BAD_NAME))
    shutil.copy(fake_file, root / "fake" / fake_file.name)
    return root


def run_score(argv: list[str], capsys) -> tuple[int, str, str]:
    status = score.main(score.parse_args([*argv, "--workers", "0", "--device", "cpu"]))
    out, err = capsys.readouterr()
    return status, out, err


# --- item 4: any name the filesystem allows round-trips --------------------------------------------------


def test_non_utf8_name_round_trips_through_scores_csv_and_resume(tiny, bad_name_data, tmp_path):
    items = load_dataset(bad_name_data)
    out_csv = tmp_path / "run" / "scores.csv"
    rows = score_items(tiny, items, out_csv=out_csv, workers=0, progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert os.fsencode(rows[1]["path"]).endswith(b"/real/" + BAD_NAME)
    assert b"/real/" + BAD_NAME + b"," in out_csv.read_bytes()  # the name's own bytes
    assert read_scores(out_csv) == rows
    again = score_items(tiny, items, out_csv=out_csv, workers=0, progress=False, resume=True)
    assert again == rows  # every row was found again under its name: nothing rescored


def test_non_utf8_name_round_trips_through_score_py_outputs(tiny_checkpoint, bad_name_data, tmp_path, capsys):
    bad = os.fsdecode(os.path.join(os.fsencode(bad_name_data / "real"), BAD_NAME))
    argv = [str(bad_name_data / "real"), "--checkpoint", str(tiny_checkpoint)]
    status, _, _ = run_score([*argv, "--format", "csv", "--output", str(tmp_path / "s.csv")], capsys)
    assert status == score.EXIT_OK
    with open(tmp_path / "s.csv", newline="", encoding="utf-8", errors="surrogateescape") as f:
        assert [r["path"] for r in csv.DictReader(f)] == [bad]
    status, _, _ = run_score([*argv, "--format", "json", "--output", str(tmp_path / "s.json")], capsys)
    assert json.loads((tmp_path / "s.json").read_text())["files"][0]["path"] == bad  # \udcff escapes


def test_non_utf8_name_is_printed_as_its_bytes(tiny_checkpoint, bad_name_data, capsysbinary):
    argv = [str(bad_name_data / "real"), "--checkpoint", str(tiny_checkpoint), "--workers", "0"]
    status = score.main(score.parse_args(argv))  # the table on stdout
    assert status == score.EXIT_OK
    assert b"/real/" + BAD_NAME in capsysbinary.readouterr().out


# --- item 8: an unusable calibration value is refused, never turned into verdicts or NaN JSON ----------


@pytest.mark.parametrize("threshold", [float("nan"), float("inf")])
def test_non_finite_calibration_threshold_is_refused(tiny, real_file, tmp_path, capsys, threshold):
    checkpoint = tmp_path / "nan.pt"
    save_checkpoint(checkpoint, tiny, calibration={"threshold": threshold, "source": "validation EER"})
    argv = [str(real_file), "--checkpoint", str(checkpoint), "--format", "json"]
    status, out, err = run_score(argv, capsys)
    assert status == score.EXIT_NONE_SCORED
    assert "calibration threshold" in err and "not a finite number" in err and "--threshold" in err
    assert "Traceback" not in err and out == ""


def test_non_finite_threshold_flag_is_refused(real_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        score.parse_args([str(real_file), "--threshold", "nan"])
    assert exit_info.value.code == 2 and "nan is not a finite number" in capsys.readouterr().err


# --- item 6: a WAV shorter than its header says is rejected, not scored as complete ----------------------


def wav_with_data_size(src: Path, dst: Path, keep: float, data_size: int | None = None) -> Path:
    """`src` (a 44-byte-header WAV) cut to `keep` of its bytes, its data size field optionally set."""
    raw = bytearray(src.read_bytes())
    at = raw.index(b"data")
    if data_size is not None:
        raw[at + 4 : at + 8] = data_size.to_bytes(4, "little")
    dst.write_bytes(bytes(raw[: int(len(raw) * keep)]))
    return dst


@pytest.mark.parametrize(
    "keep, data_size, declared",
    [(0.5, None, "2.61 s"), (1.0, 0xFFFFFFF0, "134217.73 s")],  # half the data missing; a 4 GB header
)
def test_truncated_wav_is_rejected_with_its_reason(fake_file, tmp_path, keep, data_size, declared):
    path = wav_with_data_size(fake_file, tmp_path / "cut.wav", keep, data_size)
    (row,) = score_items(torch.nn.Identity(), [str(path)], workers=0, progress=False)
    assert row["status"].startswith("truncated or corrupt: the WAV header declares " + declared)
    assert row["score"] is None


def test_streamed_wav_without_a_length_is_scored_with_a_note(tiny, fake_file, tmp_path):
    path = wav_with_data_size(fake_file, tmp_path / "streamed.wav", 1.0, 0xFFFFFFFF)
    (row,) = score_items(tiny, [str(path)], workers=0, progress=False)
    assert row["status"] == "ok" and row["duration_s"] == pytest.approx(2.614, abs=1e-3)
    assert "WAV header without the audio length" in row["note"]
