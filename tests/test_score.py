"""score.py with the released AASIST weights on ../shared/audio: verdicts, reasons, windows, formats."""

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import score
from antispoof.checkpoints.files import load_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]

REAL = ["118-121721-0000.flac", "1183-124566-0000.flac"]
FAKE = ["espeak_01.wav", "espeak_02.wav"]
# broken/ files load_audio refuses, and (a word of) the reason each must give.
REFUSED = {
    "empty_0_bytes.wav": "empty file",
    "text_not_audio.mp3": "not a decodable audio file",
    "truncated.flac": "truncated",
    "too_short_0.05s.wav": "too short",
}
WINDOW_S = 64600 / 16000
MAX_DURATION = (
    "8"  # score only the first 8 s of long_70s.wav (3 windows): AASIST takes ~1 s a window on a CPU
)


@pytest.fixture(scope="module")
def aasist(golden):
    return golden / "aasist" / "AASIST.pth"


@pytest.fixture(scope="module")
def inputs(audio_dir) -> list[str]:
    sample = audio_dir / "sample_custom"
    return [str(sample / "real" / f) for f in REAL] + [str(sample / "fake" / f) for f in FAKE]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """score.main in this process (one torch import for all tests); returns (exit status, stdout, stderr)."""
    status = score.main(score.parse_args([*argv, "--workers", "0", "--device", "cpu"]))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def report(aasist, inputs, audio_dir, tmp_path_factory) -> dict:
    """One --window JSON run over 2 real + 2 espeak files + every file of broken/ (a folder argument)."""
    out = tmp_path_factory.mktemp("score") / "scores.json"
    argv = [*inputs, str(audio_dir / "broken"), "--checkpoint", str(aasist), "--output-format", "json"]
    argv += [
        "--output",
        str(out),
        "--window",
        "--max-duration",
        MAX_DURATION,
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    status = score.main(score.parse_args(argv))
    document = json.loads(out.read_text())
    document["exit_status"] = status
    document["by_name"] = {f["path"].rsplit("/", 1)[-1]: f for f in document["files"]}
    return document


def test_every_file_gets_one_row_and_the_run_reports_partial_failure(report, audio_dir):
    broken = sorted(p.name for p in (audio_dir / "broken").iterdir())
    assert sorted(report["by_name"]) == sorted(REAL + FAKE + broken)
    assert report["exit_status"] == score.EXIT_SOME_FAILED


def test_broken_files_get_their_reason(report):
    for name, reason in REFUSED.items():
        row = report["by_name"][name]
        assert row["status"] == "error", row
        assert reason in row["reason"], row
        assert "score" not in row


def test_decodable_odd_files_are_scored(report):
    for name in ("silent_5s.wav", "stereo_48k.wav", "pcm24_16k.wav", "mono_8k.wav", "long_70s.wav"):
        row = report["by_name"][name]
        assert row["status"] == "ok", row
        assert row["verdict"] in ("real", "fake")
        assert 0.0 <= row["p_fake"] <= 1.0


def test_verdict_direction_librispeech_real_espeak_fake(report):
    for name in REAL:
        assert report["by_name"][name]["verdict"] == "real", report["by_name"][name]
        assert report["by_name"][name]["p_fake"] < 0.5
    for name in FAKE:
        assert report["by_name"][name]["verdict"] == "fake", report["by_name"][name]
        assert report["by_name"][name]["p_fake"] >= 0.5


def test_score_is_the_reference_real_logit(report, golden):
    """A 3.6 s file is one (tiled) window: its score is clovaai's logit[:, 1] for the same audio."""
    reference = torch.load(golden / "aasist" / "outputs.pt", weights_only=True)["AASIST"]["score"]
    names = torch.load(golden / "aasist" / "inputs.pt", weights_only=True)["names"]
    row_index = next(i for i, n in enumerate(names) if "118-121721-0000" in n)
    assert report["by_name"]["118-121721-0000.flac"]["score"] == pytest.approx(
        float(reference[row_index]), abs=1e-4
    )


def test_long_file_has_windows_covering_what_was_scored(report):
    row = report["by_name"]["long_70s.wav"]
    starts = [w["start"] for w in row["windows"]]
    assert len(starts) == 3
    assert starts[0] == 0.0 and starts == sorted(starts)
    assert starts[-1] + WINDOW_S == pytest.approx(
        float(MAX_DURATION), abs=1e-3
    )  # the last one ends at the end
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) < WINDOW_S  # windows overlap: no gap
    assert row["scored_s"] == pytest.approx(float(MAX_DURATION))
    assert "only the first 8.0 s of 70.0 s were scored" in row["note"]
    for w in row["windows"]:
        assert w["verdict"] == ("fake" if w["p_fake"] >= 0.5 else "real")
    # The file's score is the mean of the window logits, so it lies between the window scores.
    assert min(w["score"] for w in row["windows"]) <= row["score"] <= max(w["score"] for w in row["windows"])
    assert len(report["by_name"]["118-121721-0000.flac"]["windows"]) == 1


def test_uncalibrated_checkpoint_says_which_rule(report):
    assert report["decision"]["threshold"] is None
    assert report["decision"]["applies_to"] == "p_fake"
    assert "no calibration" in report["decision"]["source"]
    assert "higher = more likely real" in report["score_direction"]


def test_csv_output(aasist, inputs, audio_dir, capsys):
    status, out, err = run(
        [
            inputs[0],
            str(audio_dir / "broken" / "text_not_audio.mp3"),
            "--checkpoint",
            str(aasist),
            "--output-format",
            "csv",
        ],
        capsys,
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[0]["verdict"] == "real" and float(rows[0]["score"]) > 0 and rows[0]["n_windows"] == "1"
    assert [w["start"] for w in json.loads(rows[0]["windows"])] == [0.0]
    assert rows[1]["verdict"] == "" and "not a decodable audio file" in rows[1]["reason"]
    assert all("p_fake >= 0.5" in r["rule"] for r in rows)
    assert status == score.EXIT_SOME_FAILED
    assert "1 of 2 files scored" in err


def test_old_format_flag_says_its_new_name(capsys):
    """--format is the dataset layout in the other scripts; score.py's output format is --output-format."""
    with pytest.raises(SystemExit) as exit_info:
        score.parse_args(["clip.wav", "--format", "csv"])
    assert exit_info.value.code == 2
    assert "use --output-format csv" in capsys.readouterr().err


def test_threshold_flag_overrides_default(aasist, inputs, tmp_path, capsys):
    listing = tmp_path / "files.txt"  # inputs also come as list files and globs
    listing.write_text(f"# one path a line\n{inputs[0]}\n")
    glob = inputs[2].replace("espeak_01", "espeak_0[1]")
    argv = [str(listing), glob, "--checkpoint", str(aasist), "--output-format", "json", "--threshold", "100"]
    status, out, _ = run(argv, capsys)
    document = json.loads(out)
    assert [f["path"] for f in document["files"]] == [inputs[0], inputs[2]]
    assert document["decision"] == {
        "threshold": 100.0,
        "applies_to": "score",
        "source": "--threshold",
        "rule": "real if score >= 100 (--threshold)",
    }
    assert {f["verdict"] for f in document["files"]} == {"fake"}  # every AASIST score is far below 100
    assert status == score.EXIT_OK


def test_stored_calibration_is_used(aasist, inputs, tmp_path, capsys):
    """A calibration stored in a project checkpoint decides on the LLR at the Bayes threshold; an offset that
    puts the threshold at score 3.5 flips a real file scored ~2.98 to fake. An old threshold-only calibration
    is refused."""
    import antispoof.evaluation.calibration as calibration
    from antispoof.checkpoints.files import weights_sha256
    from antispoof.evaluation.metrics import ASVSPOOF5

    model, _ = load_model(aasist)
    offset = ASVSPOOF5.llr_threshold - 3.5  # llr = score + offset >= llr_threshold  <=>  score >= 3.5
    cal = calibration.fit(
        [3.0, 4.0], [-3.0, -4.0], policy="head n=64600", weights_sha256=weights_sha256(model)
    )
    checkpoint = tmp_path / "calibrated.pth"
    save_checkpoint(checkpoint, model, calibration={**cal, "scale": 1.0, "offset": offset})
    argv = [inputs[0], "--checkpoint", str(checkpoint), "--output-format", "json", "--reference-policy"]
    _, out, _ = run(argv, capsys)  # the policy the calibration was fitted under (whole-clip refuses it)
    document = json.loads(out)
    assert document["decision"]["applies_to"] == "llr"
    assert document["decision"]["llr_threshold"] == pytest.approx(-math.log(1.9))
    assert "stored in" in document["decision"]["source"]
    (file,) = document["files"]
    assert file["llr"] == pytest.approx(file["score"] + offset) and file["verdict"] == "fake"
    # The answer for one recording: a band at even odds, and where its calibration came from (no path).
    assert (
        file["answer"] in ("likely fake", "inconclusive", "likely real") and 0 < file["p_fake_calibrated"] < 1
    )
    assert (
        "stored in calibrated.pth" in document["answer_rule"][1]
        and str(tmp_path) not in document["answer_rule"][1]
    )
    old = tmp_path / "old.pth"
    save_checkpoint(old, model, calibration={"threshold": 3.5, "source": "validation EER"})
    status, out, err = run([inputs[0], "--checkpoint", str(old)], capsys)
    assert status == score.EXIT_NONE_SCORED and "only an EER threshold" in err and out == ""


def test_exit_status_when_nothing_is_scored(aasist, audio_dir, capsys):
    refused = [str(audio_dir / "broken" / name) for name in REFUSED]
    status, out, _ = run([*refused, "--checkpoint", str(aasist)], capsys)
    assert status == score.EXIT_NONE_SCORED
    assert "0 of 4 files scored" in out
    status, _, err = run([str(audio_dir / "no_such_file.wav"), "--checkpoint", str(aasist)], capsys)
    assert status == score.EXIT_NONE_SCORED and "no_such_file.wav does not exist" in err
    status, _, err = run([refused[0], "--checkpoint", "no_such_model"], capsys)
    assert status == score.EXIT_NONE_SCORED and "cannot load checkpoint no_such_model" in err


def test_command_line_table(aasist, inputs, audio_dir):
    """The real command line: a table on stdout, exit status 1 when a file fails."""
    command = [
        sys.executable,
        "score.py",
        inputs[0],
        inputs[2],
        str(audio_dir / "broken" / "empty_0_bytes.wav"),
    ]
    result = subprocess.run(
        [*command, "--checkpoint", str(aasist), "--device", "cpu"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == score.EXIT_SOME_FAILED, result.stderr
    lines = result.stdout.splitlines()
    assert "verdict rule (the `verdict` column): fake if p_fake >= 0.5" in result.stdout
    # One recording is looked at whole (the most fake-sounding window decides), not the first 4.04 s.
    assert "input policy: windows n=64600 hop=32300 file=min" in result.stdout
    assert "score = logits[:, 1], the real-class logit, of the most fake-sounding" in result.stdout
    assert "answer: none: the detector is not calibrated" in result.stdout
    assert any("118-121721-0000.flac" in line and " real " in line for line in lines)
    assert any("espeak_01.wav" in line and " fake " in line for line in lines)
    assert any("empty_0_bytes.wav" in line and "ERROR" in line and "empty file" in line for line in lines)
    assert (
        "2 of 3 files scored (1 leans real (uncalibrated), 1 leans fake (uncalibrated)), 1 failed"
        in result.stdout
    )
