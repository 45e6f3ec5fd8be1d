"""The registry of published checkpoints (antispoof/checkpoints/registry.json) and their downloads.

Registry names (la, df, xlsr-300m, aasist, aasist-l, the zoo) resolve to files in pretrained/ (override with
env SSL_AASIST_PRETRAINED_DIR). AASIST and AASIST-L ship there; other plain-URL entries download themselves on
first use (resumable, size and sha256 checked), Hugging Face ones go through huggingface_hub, and Google Drive
ones must be fetched by hand: asking for one that is not there prints exactly what to download and where to
put it. Env SSL_AASIST_MIRROR=<base URL> fetches every registry file from <base URL>/<filename> instead (a lab
mirror, or a local server in tests); checksums still apply. download.py is the command line over it;
checkpoints.load_model takes registry names through `resolve_checkpoint`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]  # the checkout, when the package runs from one
REGISTRY_PATH = Path(__file__).with_name("registry.json")
REGISTRY: dict[str, dict] = json.loads(REGISTRY_PATH.read_text())
CHUNK = 1 << 20


def pretrained_dir() -> Path:
    """Where registry files live: env SSL_AASIST_PRETRAINED_DIR (read at each call), else the checkout's
    pretrained/ (which ships AASIST and AASIST-L), else ~/.cache/antispoof/pretrained (installed)."""
    if "SSL_AASIST_PRETRAINED_DIR" in os.environ:
        return Path(os.environ["SSL_AASIST_PRETRAINED_DIR"]).expanduser()
    if (REPO / "pretrained").is_dir():
        return REPO / "pretrained"
    return Path("~/.cache/antispoof/pretrained").expanduser()


def sha256sum(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def manual_instructions(name: str, dest: Path) -> str:
    entry = REGISTRY[name]
    steps = "\n".join(f"  {i}. {s.format(dest=dest)}" for i, s in enumerate(entry["instructions"], 1))
    return (
        f"Checkpoint {name!r} ({entry['filename']}) is not in {dest.parent}.\n"
        f"{entry['description']}.\n"
        "It is hosted on Google Drive, which does not allow scripted downloads, so fetch it by hand:\n"
        f"{steps}\n"
        f"Or pass the file's path directly, e.g. --checkpoint /path/to/{entry['filename']}."
    )


def resolve_checkpoint(spec: str, download: bool = True, mirror: str | None = None) -> Path:
    """A checkpoint path from a file/folder path or a registry name; downloads plain-URL entries when missing.

    mirror (or env SSL_AASIST_MIRROR): base URL that serves registry files by their file name.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    name = spec.lower()
    if name not in REGISTRY:
        raise FileNotFoundError(
            f"{spec!r} is neither an existing file nor a known checkpoint name. Known names: "
            f"{', '.join(REGISTRY)} (see pretrained/README.md)."
        )
    entry = REGISTRY[name]
    dest = pretrained_dir() / entry["filename"]
    if dest.exists():
        if unverified_note(dest).startswith("changed"):
            warnings.warn(f"{dest} {unverified_note(dest)}: it may be truncated", stacklevel=2)
        if entry.get("size") and dest.stat().st_size != entry["size"]:
            warnings.warn(
                f"{dest} has {dest.stat().st_size:,} bytes, but the published {entry['filename']} has "
                f"{entry['size']:,}: it may be truncated or a different release.",
                stacklevel=2,
            )
        return dest
    if entry.get("hf_repo"):
        return _from_hugging_face(name, entry, download)
    mirror = mirror or os.environ.get("SSL_AASIST_MIRROR")
    if entry.get("manual") and not mirror:
        raise FileNotFoundError(manual_instructions(name, dest))
    url = f"{mirror.rstrip('/')}/{entry['filename']}" if mirror else entry["url"]
    if not download:
        raise FileNotFoundError(
            f"{dest} is missing; download it with: python download.py {name}  (from {url})"
        )
    print(f"Downloading {name} ({entry['filename']}) from {url} to {dest}", file=sys.stderr)
    return _download(url, dest, sha256=entry.get("sha256"), size=entry.get("size"))


def _from_hugging_face(name: str, entry: dict, download: bool) -> Path:
    """A Hugging Face-hosted registry file through huggingface_hub: kept in the user's HF cache (HF_HOME /
    HF_HUB_CACHE, shared with other tools), fetched from HF_ENDPOINT (a mirror) if set, resumed after an
    interruption. Env vars are read at each call, not when huggingface_hub was imported."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo, filename = entry["hf_repo"], entry["hf_filename"]
    endpoint = os.environ.get("HF_ENDPOINT")
    where = f"{endpoint or 'https://huggingface.co'}/{repo} ({filename})"
    if download:
        print(f"Fetching {name} from {where} into the Hugging Face cache", file=sys.stderr)
    try:
        path = hf_hub_download(
            repo,
            filename,
            revision=entry.get("revision"),  # a pinned commit where public metadata gave one; None = main
            endpoint=endpoint,
            cache_dir=os.environ.get("HF_HUB_CACHE"),
            local_files_only=not download,
        )
    except LocalEntryNotFoundError:
        if download:
            raise RuntimeError(
                f"cannot reach {where} and {name} is not in the Hugging Face cache: check the network or set "
                f"HF_ENDPOINT to a mirror, or put the file at {pretrained_dir() / entry['filename']}"
            ) from None
        raise FileNotFoundError(
            f"{name} is not in the Hugging Face cache; download it with: python download.py {name}"
        ) from None
    except Exception as err:  # noqa: BLE001 - the hub raises many types (HTTP, repository, revision errors)
        raise RuntimeError(f"download of {name} from {where} failed: {type(err).__name__}: {err}") from err
    return Path(path)


def _fetch(url: str, part: Path, size: int | None) -> bool:
    """One attempt: append to `part` from where it stops (HTTP Range); raises on any network error. Returns
    whether the server said how long the file is (Content-Length): without it, a cut connection looks like
    the end of the file."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"User-Agent": "ssl-aasist-download/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and (size is None or have == size):
            return True  # the part file is already complete
        raise
    with response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length else None  # what this response should bring the file to
        total = size if size is not None else expected
        with (
            open(part, "ab" if have else "wb") as f,
            tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-5]
            ) as bar,
        ):
            while block := response.read(CHUNK):
                f.write(block)
                bar.update(len(block))
            got = f.tell()
        if expected is not None and got < expected:  # http.client returns b"" when the server hangs up early
            raise ConnectionError(f"connection closed after {got:,} of {expected:,} bytes")
    return expected is not None


def download(
    url: str, dest: str | Path, sha256: str | None = None, size: int | None = None, retries: int = 3
) -> Path:
    """Download `url` to `dest` with a progress bar; resume `dest.part` after an interruption (HTTP Range),
    check size and sha256, then move into place atomically (os.replace). Returns dest.

    A dropped connection is retried `retries` times, each attempt resuming; if all fail, the `.part` file is
    kept and the next call resumes it.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    length_known = False
    for attempt in range(retries + 1):
        try:
            length_known = _fetch(url, part, size)
            break
        except urllib.error.HTTPError as err:
            raise RuntimeError(
                f"download of {url} failed: HTTP {err.code} {err.reason}. Check the URL (or "
                f"SSL_AASIST_MIRROR), or download the file by hand to {dest}."
            ) from err
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if attempt == retries:
                got = part.stat().st_size if part.exists() else 0
                raise RuntimeError(
                    f"download of {url} interrupted after {got:,} bytes ({err}); "
                    f"run the same command again to resume from {part}"
                ) from err
            print(
                f"download interrupted ({err}); resuming (attempt {attempt + 2} of {retries + 1})",
                file=sys.stderr,
            )
    got = part.stat().st_size
    if size is not None and got != size:
        raise RuntimeError(f"{url}: got {got:,} bytes, expected {size:,}; run again to resume or retry")
    if sha256 is not None:
        digest = sha256sum(part)
        if digest != sha256.lower():
            part.unlink()
            raise ValueError(
                f"{url}: sha256 {digest} does not match the expected {sha256}; the download was "
                "deleted. The file on the server differs from the registered one."
            )
    if size is None and sha256 is None:
        _record_unverified(url, part, dest, length_known)
    os.replace(part, dest)
    return dest


def download_record(dest: str | Path) -> Path:
    """`<file>.download.json`: what was received for a file the registry publishes no size or sha256 for."""
    return Path(str(dest) + ".download.json")


def _record_unverified(url: str, part: Path, dest: Path, length_known: bool) -> None:
    """Record the size and sha256 of a download nothing published can check (later runs compare the size),
    and say so: without a Content-Length either, a mirror that cut the transfer short looks complete."""
    got = part.stat().st_size
    record = {"url": url, "bytes": got, "sha256": sha256sum(part), "content_length_sent": length_known,
              "verified": False}  # fmt: skip
    download_record(dest).write_text(json.dumps(record, indent=2) + "\n")
    why = "" if length_known else " and the server sent no length, so a transfer cut short cannot be told"
    print(
        f"warning: {dest.name} is unverified: no size or checksum is published{why}; {got:,} bytes received "
        f"(sha256 {record['sha256'][:16]}..., recorded in {download_record(dest).name}). Check it against "
        "the source before trusting its scores.",
        file=sys.stderr,
    )


def unverified_note(dest: str | Path) -> str:
    """Empty for a file with no download record; else why it is unverified, or that it changed since."""
    try:
        record = json.loads(download_record(dest).read_text())
        now = Path(dest).stat().st_size
    except (OSError, ValueError):
        return ""
    if not isinstance(record, dict):
        return ""
    if now != record.get("bytes"):
        return f"changed: {now:,} bytes, {record.get('bytes')} when downloaded"
    sent = "" if record.get("content_length_sent") else ", no length sent"
    return f"unverified: no published size or checksum{sent}"


_download = download  # resolve_checkpoint's `download` argument shadows the function's name


ZOO_COLUMNS = ("model", "trained_on", "eer", "input_score", "size", "license", "download")
ZOO_HEADER = (
    "| name | model | trained on | published EER | input policy, score | size | license | download |\n"
    "|---|---|---|---|---|---|---|---|"
)


def zoo_table(registry: dict | None = None) -> str:
    """The README's model zoo table: one row per registry detector with a `zoo` record (`download.py
    --markdown` prints it; a test checks that the README holds exactly this)."""
    registry = REGISTRY if registry is None else registry
    rows = [
        f"| `{name}` | " + " | ".join(entry["zoo"][c] for c in ZOO_COLUMNS) + " |"
        for name, entry in registry.items()
        if entry.get("zoo")
    ]
    return "\n".join([ZOO_HEADER, *rows])
