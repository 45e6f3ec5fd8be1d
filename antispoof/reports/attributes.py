"""The audio attributes of the files a run scored (container, codec, rate, channels, duration, loudness,
silences), read once with `audio.describe` and cached beside the run in attributes.csv (by path, size and
mtime), for analysis.py's breakdowns and confound check.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from antispoof.audio.decode import DESCRIBE_KEYS
from antispoof.utils import atomic_write_text

RAW_KEYS = DESCRIBE_KEYS  # one column per attribute audio.describe reads
DURATION_TOLERANCE_S = 0.1  # decoders differ by a frame or two (MP3 padding); another file differs more


def resolve(path: str, data: Path | None) -> Path:
    """The file a scores.csv path names now: as written, or under --data (the path's tail below DIR)."""
    p = Path(path)
    if p.exists() or data is None:
        return p
    parts = p.parts[1:] if p.is_absolute() else p.parts
    for k in range(len(parts)):  # data/sample/real/x.flac -> DIR/data/sample/real/x.flac, DIR/sample/..., ...
        candidate = data.joinpath(*parts[k:])
        if candidate.exists():
            return candidate
    return p


def file_attributes(paths: list[str], data: Path | None, cache: Path, workers: int) -> dict[str, dict]:
    """`audio.describe` of every path (cached in `cache` by path, size and mtime), plus "format" from it."""
    import antispoof.audio.decode as audio

    cached = read_cache(cache)
    out, todo = {}, []
    for path in dict.fromkeys(paths):
        file = resolve(path, data)
        stamp = f"{file.stat().st_size}:{file.stat().st_mtime_ns}" if file.is_file() else ""
        row = cached.get(path)
        if row and stamp and row.get("stamp") == stamp:
            out[path] = row
        elif stamp:
            todo.append((path, file, stamp))
        else:
            out[path] = {**dict.fromkeys(RAW_KEYS), "error": "audio not found (pass --data DIR)", "stamp": ""}
    if todo:
        from multiprocessing import Pool

        from tqdm import tqdm

        files = [str(f) for _, f, _ in todo]
        with Pool(workers) if workers > 1 else _InProcess() as pool:
            described = list(
                tqdm(
                    pool.imap(audio.describe, files, chunksize=8),
                    total=len(files),
                    desc="reading audio attributes",
                    unit="file",
                    disable=len(files) < 50,
                )
            )
        for (path, _, stamp), attrs in zip(todo, described, strict=True):
            out[path] = {**attrs, "stamp": stamp}
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=("path", "stamp", *RAW_KEYS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {"path": p, **{k: ("" if a.get(k) is None else a[k]) for k in ("stamp", *RAW_KEYS)}}
            for p, a in out.items()
        )
        atomic_write_text(cache, buf.getvalue())
    for attrs in out.values():
        attrs["format"] = format_name(attrs)
    return out


class _InProcess:
    """Pool stand-in for --workers 1 (no child processes)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items, chunksize=1):
        return map(fn, items)


def read_cache(cache: Path) -> dict[str, dict]:
    """The attributes cache (path -> typed attributes); {} with a note when it is damaged (a killed copy, an
    edit), so that it is rebuilt from the audio instead of ending the analysis."""
    if not cache.is_file():
        return {}
    try:
        with open(cache, newline="", encoding="utf-8", errors="surrogateescape") as f:  # as written
            return {r["path"]: _typed(r) for r in csv.DictReader(f)}
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as err:
        note = f"note: {cache} is damaged ({type(err).__name__}: {err}); reading the audio again"
        print(note, file=sys.stderr)
        return {}


def check_durations(rows: list[dict], attrs: dict[str, dict]) -> int:
    """Mark the files whose duration now differs from the one scores.csv recorded when they were scored:
    another file of the same name (a wrong --data) or a changed file. Their attributes describe something
    else, so they get an error instead; returns how many."""
    wrong = 0
    for row in rows:
        a = attrs.get(row["path"])
        scored, now = row.get("duration_s"), (a or {}).get("duration_s")
        if a is None or a.get("error") or scored is None or now is None:
            continue
        if abs(scored - now) > DURATION_TOLERANCE_S:
            a.update(dict.fromkeys(RAW_KEYS), format=None)
            a["error"] = f"not the scored file: {now:.2f} s now, {scored:.2f} s when scored (wrong --data?)"
            wrong += 1
    return wrong


def _typed(row: dict) -> dict:
    out = {k: (row.get(k) or None) for k in ("stamp", *RAW_KEYS)}
    for k in ("sample_rate", "channels"):
        out[k] = int(out[k]) if out[k] else None
    for k in ("duration_s", "loudness_dbfs", "lead_silence_s", "trail_silence_s"):
        out[k] = float(out[k]) if out[k] else None
    return out


def format_name(a: dict) -> str | None:
    """'FLAC (pcm_16) at 16 kHz, mono': the container, codec, rate and channels in one phrase."""
    if a.get("container") is None:
        return None
    text = a["container"].upper() + (f" ({a['codec']})" if a.get("codec") else "")
    if a.get("sample_rate"):
        text += f" at {a['sample_rate'] / 1000:g} kHz"
    return text + (f", {channels_name(a['channels'])}" if a.get("channels") else "")


def channels_name(n: int) -> str:
    return {1: "mono", 2: "stereo"}.get(n, f"{n} channels")
