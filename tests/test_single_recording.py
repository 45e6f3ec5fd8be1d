"""score.py on one long recording with default settings: the whole clip is looked at, a fake spliced in after
the reference's first 4.04 s is found and located, an uncalibrated detector gives no answer, and a calibrated
one says where its calibration came from. Released AASIST, real audio (audio/longclips.py)."""

import json

import pytest

import score
from antispoof.audio.longclips import build_long_clips


@pytest.fixture(scope="module")
def spliced(audio_dir, tmp_path_factory):
    """A spliced clip: real speech, then an espeak-ng fake from after 4.04 s, then real speech again."""
    folder = tmp_path_factory.mktemp("long_clips")
    build_long_clips(audio_dir / "sample_custom", folder, n_per_kind=1)
    row = (folder / "labels.csv").read_text().splitlines()[-1].split(",")
    return folder / row[0], (float(row[3]), float(row[4]))


def run(argv, capsys) -> dict:
    assert (
        score.main(score.parse_args([*argv, "--workers", "0", "--device", "cpu", "--output-format", "json"]))
        == 0
    )
    return json.loads(capsys.readouterr().out)


def overlaps(spans, start, end) -> bool:
    return any(a < end and b > start for a, b in spans)


def test_an_uncalibrated_detector_answers_nothing_and_points_at_the_fake(spliced, golden, capsys):
    path, (start, end) = spliced
    document = run([str(path), "--checkpoint", str(golden / "aasist" / "AASIST.pth")], capsys)
    (file,) = document["files"]
    assert file["answer"] == "uncalibrated" and file["p_fake_calibrated"] is None
    assert file["leans"] == "fake" and overlaps(file["fake_spans"], start, end), (file["fake_spans"], start)
    assert "No answer" in file["summary"] and "calibrate.py" in " ".join(document["answer_rule"])
    assert document["policy"] == "windows n=64600 hop=32300 file=min"
    # The reference's first 4.04 s hears only the real speech before the fake.
    reference = run(
        [str(path), "--checkpoint", str(golden / "aasist" / "AASIST.pth"), "--reference-policy"], capsys
    )
    assert reference["files"][0]["leans"] == "real" and reference["policy"] == "head n=64600"


def test_a_calibrated_detector_does_not_call_a_spliced_fake_likely_real(spliced, calibrated_aasist, capsys):
    path, (start, end) = spliced
    checkpoint, _ = calibrated_aasist
    document = run([str(path), "--checkpoint", str(checkpoint)], capsys)
    (file,) = document["files"]
    assert file["answer"] != "likely real" and file["p_fake_calibrated"] > 0.5, file
    assert overlaps(file["fake_spans"], start, end)
    provenance = document["answer_rule"][1]
    assert "calibrated on sample_run (8 real and 8 fake files, Cllr" in provenance and "Cllr" in provenance
    assert str(checkpoint.parent) not in provenance  # named, not located
    assert "even odds" in document["answer_rule"][0]


def test_a_dataset_csv_is_read_as_a_list_of_paths(spliced, golden, capsys):
    path, _ = spliced
    document = run(
        [str(path.parent.parent / "labels.csv"), "--checkpoint", str(golden / "aasist" / "AASIST.pth")],
        capsys,
    )
    assert len(document["files"]) == 3 and all(f["status"] == "ok" for f in document["files"])
