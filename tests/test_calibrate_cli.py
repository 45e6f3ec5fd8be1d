"""calibrate.py on runs it cannot use: a clear message for every one, and a warning for a fit on few files.

The checkpoint is the released AASIST-L (the fit needs no scoring: the rows are written here)."""

import json
import shutil

import numpy as np
import pytest

import calibrate
from antispoof.checkpoints.files import load_model, weights_sha256
from antispoof.scoring.scorefile import write_scores


@pytest.fixture(scope="module")
def checkpoint(golden, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "AASIST-L.pth"
    shutil.copy(golden / "aasist" / "AASIST-L.pth", path)
    return path, weights_sha256(load_model(path)[0])


def make_run(root, checkpoint, n_real=30, n_fake=30, status="ok"):
    path, sha = checkpoint
    rng = np.random.default_rng(0)
    rows = [
        {"path": f"{label}{i}.wav", "label": label, "score": float(s), "p_fake": 0.5, "status": status,
         "n_windows": 1, "windows": [], "note": "", "policy": "head n=64600", "score_kind": "logit_real"}
        for label, mean, n in (("real", 1.0, n_real), ("fake", -1.0, n_fake))
        for i, s in enumerate(rng.normal(mean, 1.0, n))
    ]  # fmt: skip
    write_scores(root / "scores.csv", rows)
    record = {"checkpoint": str(path), "weights_sha256": sha, "policy": "head n=64600"}
    (root / "run.json").write_text(json.dumps(record))
    return root


def calibrate_run(run):
    return calibrate.main(calibrate.parse_args(["--run", str(run)]))


# Each of these gave a traceback before (KeyError: 'pop from an empty set', ValueError, UnicodeDecodeError or
# AttributeError: 'list' object has no attribute 'get'); seen failing.
def test_every_file_skipped(checkpoint, tmp_path):
    run = make_run(tmp_path, checkpoint, n_real=3, n_fake=2, status="error: empty file")
    with pytest.raises(SystemExit, match=r"0 scored real and 0 scored fake files \(of 5 rows; skipped: 5 "):
        calibrate_run(run)


def test_a_hand_edited_score(checkpoint, tmp_path):
    run = make_run(tmp_path, checkpoint)
    lines = (run / "scores.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace(lines[2].split(",")[3], "abc", 1)  # the score of the second row
    (run / "scores.csv").write_text("".join(lines))
    with pytest.raises(SystemExit, match=r"scores.csv:3: not a scores.csv row .*'abc'"):
        calibrate_run(run)


def test_a_binary_scores_file(checkpoint, tmp_path):
    run = make_run(tmp_path, checkpoint)
    (run / "scores.csv").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(SystemExit, match="^error: "):
        calibrate_run(run)


@pytest.mark.parametrize("content", ["[1]", "{not json", ""])
def test_a_run_json_that_is_not_a_record(checkpoint, tmp_path, content):
    run = make_run(tmp_path, checkpoint)
    (run / "run.json").write_text(content)
    with pytest.raises(SystemExit, match="run.json (holds list|cannot be read)"):
        calibrate_run(run)


def test_no_run_json_is_refused(checkpoint, tmp_path):
    run = make_run(tmp_path, checkpoint)
    (run / "run.json").unlink()
    with pytest.raises(SystemExit, match="run.json not found, so what produced"):
        calibrate_run(run)


def test_a_fit_on_a_handful_of_files_warns_with_the_counts(checkpoint, tmp_path, capsys):
    cal = calibrate_run(make_run(tmp_path, checkpoint, n_real=1, n_fake=1))
    assert cal["fit"]["n_real"] == cal["fit"]["n_fake"] == 1
    assert "warning: fitted on only 1 real and 1 fake files" in capsys.readouterr().err
    calibrate_run(make_run(tmp_path, checkpoint))  # 30 of each: no warning
    assert "warning" not in capsys.readouterr().err
