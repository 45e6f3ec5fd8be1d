"""utils.py: standard JSON only (never NaN / Infinity), atomic writes that honour the umask."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from antispoof.utils import atomic_write_text, json_text, write_json


def strict_loads(text: str):
    """json.loads that refuses the non-standard NaN / Infinity tokens, as browsers and jq do."""

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_written_as_null():
    obj = {
        "nan": float("nan"),
        "inf": [float("inf"), -float("inf"), 1.5],
        "numpy": (np.float32("nan"), np.float64(2.0), np.int64(3)),
        "array": np.array([0.5, np.inf]),
        "path": Path("runs/x"),
    }
    back = strict_loads(json_text(obj))
    assert back == {
        "nan": None,
        "inf": [None, None, 1.5],
        "numpy": [None, 2.0, 3],
        "array": [0.5, None],
        "path": "runs/x",
    }


def test_write_json_is_standard_json(tmp_path):
    write_json(tmp_path / "m.json", {"auc": float("nan"), "eer": 0.25})
    assert strict_loads((tmp_path / "m.json").read_text()) == {"auc": None, "eer": 0.25}


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "out.txt", "x\n")
        (tmp_path / "plain.txt").write_text("x\n")  # what open() gives, for comparison
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out.txt").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask
    assert not list(tmp_path.glob(".*.tmp"))


def test_non_utf8_file_names_round_trip_through_a_written_file(tmp_path):
    name = os.fsdecode(b"real/bad\xff\xfe.flac")  # surrogateescape code points, as os.listdir returns them
    atomic_write_text(tmp_path / "list.txt", name + "\n")
    assert (tmp_path / "list.txt").read_bytes() == b"real/bad\xff\xfe.flac\n"


def test_scores_csv_round_trips_numpy_floats(tmp_path):
    """A row holding numpy scalars (np.float64 subclasses float; its repr is 'np.float64(...)' under numpy 2)
    reads back as the same numbers."""
    import numpy as np

    from antispoof.scoring.scorefile import read_scores, write_scores

    row = {"path": "real/a.wav", "label": "real", "score": np.float64(1.25), "p_fake": np.float32(0.1),
           "status": "ok"}  # fmt: skip
    write_scores(tmp_path / "scores.csv", [row])
    back = read_scores(tmp_path / "scores.csv")[0]
    assert back["score"] == 1.25 and back["p_fake"] == float(np.float32(0.1))
