"""scores.csv, the file every evaluation writes first and computes its metrics from: columns, writer, reader.

One row per file (`scoring.score_items` rows): path, label (real/fake or empty), score (the model's reference
score, higher = more real), p_fake (softmax probability of fake), logit_fake, logit_real (the file's logits),
status ("ok" or the reason the file was skipped), duration_s, scored_s, n_windows, note, group, policy (the
input policy, `InputPolicy.describe()`), score_kind and windows (JSON, only when a file has several).
Optional columns (`OPTIONAL_COLUMNS`) come last, only in files whose rows have them: `condition` (the stress
test's channel condition, stress.py: one row per file and condition). Rows of files without them have no
such key, so they read back exactly as written.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from antispoof.utils import atomic_write_text, json_text

CSV_COLUMNS = (
    "path",
    "label",
    "score",
    "p_fake",
    "logit_fake",
    "logit_real",
    "llr",
    "status",
    "duration_s",
    "scored_s",
    "n_windows",
    "note",
    "group",
    "policy",
    "score_kind",
    "windows",
)
OPTIONAL_COLUMNS = ("condition",)


class ScoreWriter:
    """scores.csv, appended per batch and flushed; on resume, the rows already there are kept.

    A row counts only once its line is complete (ends with a newline), so a run killed mid-write loses at
    most the row being written. `finish` rewrites the file in item order, atomically.
    """

    def __init__(self, path: str | os.PathLike, resume: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done: dict[str, dict] = {}
        if resume and self.path.exists():
            self.done = {r["path"]: r for r in read_scores(self.path)}
            print(f"resuming: {len(self.done)} files already in {self.path}", file=sys.stderr)
        elif self.path.exists():
            print(f"note: overwriting {self.path} (pass --resume to continue it instead)", file=sys.stderr)
        # Start from a clean file holding exactly the kept rows (drops a half-written last line).
        atomic_write_text(self.path, _csv_text(self.done.values()))
        self._file = open(self.path, "a", newline="", encoding="utf-8", errors="surrogateescape")

    def write(self, rows: list[dict]) -> None:
        if rows:
            self._file.write(_csv_text(rows, header=False))
            self._file.flush()

    def finish(self, rows: list[dict]) -> None:
        self._file.close()
        atomic_write_text(self.path, _csv_text(rows))


def write_scores(path: str | os.PathLike, rows: list[dict]) -> None:
    """score_items rows as a scores.csv, written atomically."""
    atomic_write_text(path, _csv_text(rows))


def _csv_text(rows, header: bool = True) -> str:
    rows = list(rows)
    columns = CSV_COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(r.get(c) is not None for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        cells = {k: _cell(row.get(k)) for k in columns}
        cells["windows"] = json_text(row["windows"], indent=None) if row.get("n_windows", 0) > 1 else ""
        writer.writerow(cells)
    return buf.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):  # shortest repr that reads back exactly; np.float64 -> float
        return repr(float(value))
    return str(value)


def read_scores(path: str | os.PathLike) -> list[dict]:
    """Rows of a scores.csv (types restored: floats, None for empty cells, windows as a list).

    An incomplete last line (a run killed while writing) is ignored. The file is UTF-8; a file name that is
    not valid UTF-8 is stored as its raw bytes and read back as the same name (surrogateescape, as
    `os.fsdecode` spells it). A row that is not this module's (an edited number, a binary file) is a
    ValueError naming `file:line`.
    """
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        text = f.read()  # newline="": a name holding "\r" or "\n" (quoted by csv) stays as it is
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = []
    reader = csv.DictReader(io.StringIO(text))
    try:
        for raw in reader:
            rows.append(_typed_row(raw))
    except (ValueError, csv.Error) as err:  # a hand-edited score "abc", a binary file, a broken windows cell
        raise ValueError(f"{os.fsdecode(path)}:{reader.line_num}: not a scores.csv row ({err})") from None
    return rows


def _typed_row(raw: dict) -> dict:
    row = {k: (raw.get(k) or None) for k in CSV_COLUMNS}
    row.update({k: raw[k] or None for k in OPTIONAL_COLUMNS if k in raw})  # only files that have them
    for k in ("score", "p_fake", "llr", "logit_fake", "logit_real", "duration_s", "scored_s"):
        row[k] = float(row[k]) if row[k] is not None else None
    row["n_windows"] = int(row["n_windows"] or 0)
    row["note"] = row["note"] or ""
    row["windows"] = json.loads(row["windows"]) if row["windows"] else _single_window(row)
    return row


def _single_window(row: dict) -> list[dict]:
    if row["n_windows"] != 1:
        return []
    # One input from the start: it covers what was scored (the head, or the whole of a short file).
    return [{"start": 0.0, "end": row["scored_s"], "score": row["score"], "p_fake": row["p_fake"]}]


def asvspoof5_score_file(rows: list[dict], use_llr: bool) -> str:
    """The ASVspoof 5 score file of scored rows: a header, then `filename<TAB>cm-score` (higher = bona fide).

    filename = the file name without its extension (the challenge's trial id), or the whole path when two
    files share a name; cm-score = the calibrated `llr` with `use_llr`, else the raw score.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    names = [Path(r["path"]).stem for r in ok]
    if len(set(names)) < len(names):
        names = [r["path"] for r in ok]
    key = "llr" if use_llr else "score"
    lines = ["filename\tcm-score"] + [f"{n}\t{r[key]!r}" for n, r in zip(names, ok, strict=True)]
    return "\n".join(lines) + "\n"
