"""Dataset layouts -> a list of `Item(path, label)`, shared by evaluation, fine-tuning and scoring.

Labels are the strings "real" (bona fide) and "fake" (spoof); the model's class indices come from
`model.LABEL_TO_INDEX`. Layouts (`--layout`, or "auto" to detect from the folder):

- `folder`: any folder where each file sits under a directory named `real/` or `fake/` (any depth, any
  case; the nearest such directory wins).
- `for`: Fake-or-Real, `ROOT/{training,validation,testing}/{real,fake}/...`; split = the FoR folder
  (default testing).
- `asvspoof2019`: ASVspoof 2019 LA; protocol
  `ROOT/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.SPLIT.tr?.txt` with lines
  `SPEAKER UTT - ATTACK KEY` (key bonafide/spoof), audio `ROOT/ASVspoof2019_LA_SPLIT/flac/UTT.flac`;
  split = train / dev / eval (default eval).
- `asvspoof2021`: ASVspoof 2021 LA or DF keys, `ROOT/.../CM/trial_metadata.txt` (column 2 the trial,
  6 the key, 8 the phase), audio `ROOT/ASVspoof2021_{LA,DF}_eval/flac/TRIAL.flac`; split = the phase
  kept (default eval, as in the official scoring).
- `in_the_wild`: In-the-Wild, `ROOT/meta.csv` (`file,speaker,label`, labels bona-fide/spoof) and `ROOT/FILE`.
- `csv`: a CSV file whose header holds `path,label` (any case, spaces around names and cells ignored,
  a UTF-8 byte-order mark too; paths relative to the CSV's folder), and optionally `group` (e.g. the
  generator). A row with an empty path or label, an unknown label or a file listed twice (under any name:
  `real/../real/a.flac` is `real/a.flac`) is refused, as is a header naming a column twice:
  `load_dataset` raises one ValueError naming every such row (file:line), so all can be fixed at once.

Folders are read through symbolic links (a class folder `real -> /data/x/real` and links below it); a
folder reached a second time (a link loop, two links to one folder) is read once, with a note on stderr.
Paths are normalised (`fake/./x.wav` is `fake/x.wav`). Missing audio files (dangling links included) are
kept as items: the scorer records "file not found" for them.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("folder", "for", "asvspoof2019", "asvspoof2021", "in_the_wild", "csv")
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff", ".au", ".webm", ".mp4",
)  # fmt: skip
FOR_SPLITS = ("training", "validation", "testing")

# Label spellings used by the supported datasets, mapped to the project's two labels.
_LABEL_ALIASES = {
    "real": "real", "bonafide": "real", "bona-fide": "real", "bona fide": "real", "genuine": "real",
    "fake": "fake", "spoof": "fake", "spoofed": "fake", "deepfake": "fake",
}  # fmt: skip
_SPLIT_ALIASES = {"train": "train", "training": "train", "dev": "dev", "validation": "dev", "eval": "eval",
                  "testing": "eval", "test": "eval"}  # fmt: skip


@dataclass
class Item:
    """One audio file, its label ("real", "fake", or None: unknown, e.g. files to score), and its group.

    `group` names what produced the file where the layout tells it, for the per-group breakdown in
    metrics.json: the ASVspoof attack (A07 ... A19), the sub-folder below `real/` or `fake/` in a folder
    layout (`fake/elevenlabs/x.wav` -> "elevenlabs"), or a CSV's `group` column; None otherwise.
    """

    path: str
    label: str | None = None
    group: str | None = None


def normalize_label(label: str) -> str:
    """Map a dataset's label spelling ("bonafide", "spoof", ...) to "real" / "fake"; ValueError otherwise."""
    key = label.strip().lower()
    if key not in _LABEL_ALIASES:
        raise ValueError(f"unknown label {label!r}: use 'real' or 'fake' (or bonafide/spoof)")
    return _LABEL_ALIASES[key]


def load_dataset(root: str | os.PathLike, format: str = "auto", split: str | None = None) -> list[Item]:
    """Read the dataset at `root` (a folder, or a CSV file for `csv`) in `format` ("auto" = detect).

    `split` picks FoR's training/validation/testing (default testing), ASVspoof 2019's train/dev/eval (default
    eval; FoR names are accepted too) or ASVspoof 2021's phase (default eval). Raises FileNotFoundError or
    ValueError with a message saying what was expected.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist: pass a dataset folder or a CSV file with path,label")
    if format == "auto":
        format = detect_format(root)
    loaders = {
        "folder": lambda: _load_folder(root),
        "for": lambda: _load_for(root, split or "testing"),
        "asvspoof2019": lambda: _load_asvspoof2019(root, split or "eval"),
        "asvspoof2021": lambda: _load_asvspoof2021(root, split or "eval"),
        "in_the_wild": lambda: _load_in_the_wild(root),
        "csv": lambda: _load_csv(root),
    }
    if format not in loaders:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)} or auto")
    items = loaders[format]()
    if not items:
        raise ValueError(f"no labelled audio files found in {root} (format {format})")
    return items


def detect_format(root: str | os.PathLike) -> str:
    """Guess the layout of `root` (see the module docstring); ValueError when nothing matches."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "in_the_wild" if _csv_header(root)[:3] == ["file", "speaker", "label"] else "csv"
        raise ValueError(f"{root} is a file: pass a dataset folder, or a .csv file with path,label columns")
    if (root / "meta.csv").is_file():
        return "in_the_wild"
    if _find(root, "ASVspoof2019.LA.cm.*.tr?.txt"):
        return "asvspoof2019"
    if _find(root, "trial_metadata.txt"):
        return "asvspoof2021"
    if any((root / s).is_dir() for s in FOR_SPLITS):
        return "for"
    if _has_label_dirs(root):
        return "folder"
    raise ValueError(
        f"cannot tell the dataset layout of {root}: expected real/ and fake/ folders, FoR "
        "training|validation|testing folders, an ASVspoof protocol or keys file, or meta.csv "
        f"(In-the-Wild). Name it with --layout, formerly --format ({', '.join(FORMATS)})."
    )


def list_audio_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Expand files, folders (recursively, through links), glob patterns, list files (.txt/.lst, one path a
    line, # comments) and "-" (such a list read from stdin).

    Returns unique, normalised paths in the given order (folders sorted). A path that matches nothing raises
    FileNotFoundError, so a typo is not mistaken for an empty input.
    """
    found: list[str] = []
    for spec in paths:
        spec = str(spec)
        p = Path(spec)
        if spec == "-":
            stream = getattr(sys.stdin, "buffer", None)
            text = os.fsdecode(stream.read()) if stream is not None else sys.stdin.read()
            found += _listed_paths(text, Path("."))
        elif p.is_dir():
            found += [str(f) for f in walk_files(p) if _is_audio(f)]
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst"):
            found += _listed_paths(p.read_text(encoding="utf-8", errors="surrogateescape"), p.parent)
        elif p.is_file():
            found.append(str(p))
        elif glob.has_magic(spec):
            matches = glob_files(spec)
            if not matches:
                raise FileNotFoundError(f"no file matches {spec!r}")
            found += matches
        else:
            raise FileNotFoundError(f"{spec} does not exist")
    return unique_files(found)


def file_key(path: str | os.PathLike) -> tuple[int, int] | str:
    """What makes two paths one file: (device, inode) of what they point to, else (a missing file or
    dangling link) the normalised path. `real/a.flac`, `real/../real/a.flac` and a link to it are one file."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.normpath(path)
    return (st.st_dev, st.st_ino)


def unique_files(paths: Iterable[str]) -> list[str]:
    """`paths` without a second name of a file already listed (`file_key`), in the given order."""
    seen: set = set()
    out = []
    for path in paths:
        key = file_key(path)
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


def glob_files(pattern: str) -> list[str]:
    """The files a glob pattern matches, sorted. `**` (any depth) is matched while walking the folders with
    `walk_files`, which reads each real folder once: Python's glob follows a link loop (`up -> ..`) until
    the path is too long, listing one file under dozens of names, or never ends with two loops."""
    if "**" not in pattern:
        return sorted(str(Path(m)) for m in glob.glob(pattern) if Path(m).is_file())
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    found = []
    for f in walk_files(base) if base.is_dir() else []:
        if _matches(f.relative_to(base).parts, parts[fixed:]) and f.is_file():
            found.append(str(f))
    return sorted(found)


def _matches(names: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether the path components `names` match the glob `pattern` components: `**` any number of folders
    (none hidden), any other component one name (fnmatch; a name starting with "." only if the pattern's
    does, as glob)."""
    if not pattern:
        return not names
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        depth = next((i for i, n in enumerate(names) if n.startswith(".")), len(names))
        return any(_matches(names[i:], rest) for i in range(depth + 1))
    return (
        bool(names)
        and (not names[0].startswith(".") or head.startswith("."))
        and fnmatch.fnmatchcase(names[0], head)
        and _matches(names[1:], rest)
    )


def _listed_paths(text: str, base: Path) -> list[str]:
    """The paths of a list (one a line), relative ones taken from `base`, normalised. A line that names an
    existing file is taken as it is, even if it starts with "#" or has spaces around it (`find` writes
    names verbatim); any other line is stripped, and skipped when it is then empty or a # comment."""
    paths = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line and (base / line).exists():
            paths.append(str(base / line))
        elif line.strip() and not line.strip().startswith("#"):
            paths.append(str(base / line.strip()))
    return paths


def walk_files(root: str | os.PathLike) -> list[Path]:
    """Every file below `root`, sorted, following symbolic links to folders.

    Each real folder is read once: a link back to a folder above it (a loop) or a second link to a folder
    already read is skipped with a note on stderr, so no file is listed twice and no walk runs forever.
    Dangling links are listed (the scorer then says "file not found").
    """
    files: list[Path] = []
    seen: dict[tuple[int, int], Path] = {}
    pending = [Path(root)]
    while pending:
        folder = pending.pop()
        try:
            st = folder.stat()
            entries = list(os.scandir(folder))
        except OSError as err:
            print(f"note: cannot read folder {folder} ({err.strerror}); skipped", file=sys.stderr)
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            print(f"note: {folder} is a link to {seen[key]}, already read; skipped", file=sys.stderr)
            continue
        seen[key] = folder
        folders = []
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            (folders if is_dir else files).append(Path(entry.path))
        pending += reversed(folders)  # depth first, in name order: the same folder wins on every run
    return sorted(files)


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _find(root: Path, pattern: str, max_depth: int = 3) -> list[Path]:
    """Files named `pattern` at most `max_depth` folders below `root` (protocols sit near the top)."""
    hits: list[Path] = []
    for depth in range(max_depth + 1):
        hits += sorted(root.glob("/".join(["*"] * depth + [pattern])))
    return hits


def _has_label_dirs(root: Path) -> bool:
    return any(d.is_dir() and d.name.lower() in ("real", "fake") for d in root.iterdir()) or any(
        d.is_dir() and d.name.lower() in ("real", "fake") for d in root.glob("*/*")
    )


def _load_folder(root: Path) -> list[Item]:
    items = []
    for f in walk_files(root):
        if not _is_audio(f):
            continue
        # The nearest enclosing real/ or fake/ folder gives the label.
        parts = f.relative_to(root).parts[:-1]
        nearest = [i for i, p in enumerate(parts) if p.lower() in ("real", "fake")]
        if nearest:
            i = nearest[-1]
            group = parts[i + 1] if i + 1 < len(parts) else None  # fake/<generator>/... -> generator
            items.append(Item(str(f), parts[i].lower(), group))
    return items


def _load_for(root: Path, split: str) -> list[Item]:
    if split not in FOR_SPLITS:
        raise ValueError(f"FoR split must be one of {', '.join(FOR_SPLITS)}, got {split!r}")
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"{split_dir} not found: FoR expects {root}/{{{','.join(FOR_SPLITS)}}}/real|fake"
        )
    return _load_folder(split_dir)


def _load_asvspoof2019(root: Path, split: str) -> list[Item]:
    if split not in _SPLIT_ALIASES:
        raise ValueError(f"ASVspoof 2019 split must be train, dev or eval, got {split!r}")
    split = _SPLIT_ALIASES[split]
    protocols = _find(root, f"ASVspoof2019.LA.cm.{split}.tr?.txt")
    if not protocols:
        raise FileNotFoundError(f"no ASVspoof2019.LA.cm.{split}.tr?.txt protocol under {root}")
    protocol = protocols[0]
    flac_dirs = _find(root, f"ASVspoof2019_LA_{split}/flac")
    flac_dir = flac_dirs[0] if flac_dirs else protocol.parent.parent / f"ASVspoof2019_LA_{split}" / "flac"
    items = []
    for fields in _read_columns(protocol, min_columns=5):
        label = normalize_label(fields[4])
        attack = fields[3] if label == "fake" and fields[3] != "-" else None  # A01 ... A19
        items.append(Item(str(flac_dir / f"{fields[1]}.flac"), label, attack))
    return items


def _load_asvspoof2021(root: Path, phase: str) -> list[Item]:
    keys = _find(root, "trial_metadata.txt", max_depth=4)
    if not keys:
        raise FileNotFoundError(f"no keys/.../CM/trial_metadata.txt under {root}")
    rows = [f for f in _read_columns(keys[0], min_columns=8) if f[7] == phase]
    if not rows:
        raise ValueError(f"{keys[0]} has no trials in phase {phase!r} (phases: progress, eval, hidden_track)")
    # Audio: ASVspoof2021_{LA,DF}_eval/flac/, or several flac/ folders (DF parts extracted apart).
    flac_dirs = [d for d in _find(root, "flac") if d.is_dir()] or [root]
    where = {}
    if len(flac_dirs) > 1:
        for d in reversed(flac_dirs):
            where.update({f.name: d for f in os.scandir(d)})
    items = []
    for f in rows:
        label = normalize_label(f[5])
        attack = f[4] if label == "fake" and f[4] not in ("-", "bonafide") else None  # A07 ... A19
        items.append(Item(str(where.get(f"{f[1]}.flac", flac_dirs[0]) / f"{f[1]}.flac"), label, attack))
    return items


def _load_in_the_wild(root: Path) -> list[Item]:
    return _load_table(root if root.is_file() else root / "meta.csv", path_column="file")


def _load_csv(path: Path) -> list[Item]:
    return _load_table(path, path_column="path")


def _load_table(path: Path, path_column: str) -> list[Item]:
    """Items from a CSV with `path_column` and `label` (and optionally `group`) columns; see the module
    docstring for the accepted variants. Every bad row is named in one ValueError."""
    header, rows = _csv_rows(path)
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:  # csv.DictReader-style reading would silently keep the last such column
        raise ValueError(f"{path}:1: the header names {', '.join(map(repr, twice))} more than once: {header}")
    if path_column not in header or "label" not in header:
        raise ValueError(
            f"{path} needs a header with {path_column!r} and 'label' columns (any case), found {header}"
        )
    items, problems, first_line = [], [], {}
    for line, row in rows:
        where = f"{path}:{line}"
        if not row.get(path_column):
            problems.append(f"{where}: empty {path_column} cell")
            continue
        audio = Path(row[path_column])
        audio = str(audio if audio.is_absolute() else path.parent / audio)  # normalised: no ./ or //
        key = file_key(audio)  # one file under two names (real/../real/a.flac, a link) is one file
        if key in first_line:
            line0, name0, audio0 = first_line[key]
            again = "listed again" if audio0 == audio else f"the same file as {name0}"
            problems.append(f"{where}: {row[path_column]} is {again} (first on line {line0})")
            continue
        first_line[key] = (line, row[path_column], audio)
        if not row.get("label"):
            problems.append(f"{where}: {row[path_column]} has an empty label (use real or fake)")
            continue
        try:
            label = normalize_label(row["label"])
        except ValueError as err:
            problems.append(f"{where}: {err}")
            continue
        items.append(Item(audio, label, row.get("group") or None))  # group: an optional column
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ValueError(
            f"{len(problems)} bad row(s) in {path}; fix them and run again:\n  " + "\n  ".join(shown)
        )
    return items


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict]]]:
    """(header names lowercased and stripped, [(line number, {name: stripped cell})]); blank rows dropped."""
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        rows = []
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append((reader.line_num, {h: c.strip() for h, c in zip(header, cells, strict=False)}))
    return header, rows


def _csv_header(path: Path) -> list[str]:
    return _csv_rows(path)[0]


def _read_columns(path: Path, min_columns: int) -> list[list[str]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < min_columns:
            raise ValueError(f"{path}:{n}: expected at least {min_columns} columns, got {line!r}")
        rows.append(fields)
    return rows


def spread(items: list[Item], limit: int | None) -> list[Item]:
    """At most `limit` items, spread evenly over the list (so a smoke run has both classes); all if None."""
    if limit is None or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(k * step)] for k in range(limit)]
