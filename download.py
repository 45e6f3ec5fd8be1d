"""Known pretrained checkpoints (antispoof/checkpoints/registry.json) and a resumable, checksummed downloader.

    python download.py aasist            # download (plain-URL entries) or print manual instructions
    python download.py --list            # the registry
    python download.py --markdown        # the README's model zoo table, generated from the registry

Every script's --checkpoint goes through `resolve_checkpoint`: a file path, or a registry name (la, df,
xlsr-300m, aasist, aasist-l, antideepfake-<size>[-nda], antideepfake-hubert-xl, sls-df,
df-arena-<1b|500m|100m>, xlsr-mamba-<la|df>; --list shows each with its training data, published EERs,
input policy, size, license, pinned revision and what was inferred). Files live in pretrained/ (override
with env SSL_AASIST_PRETRAINED_DIR).
Plain-URL checkpoints download themselves on first use; Hugging Face ones go through huggingface_hub into the
user's Hugging Face cache (HF_ENDPOINT selects a mirror; downloads resume); Google Drive ones must be fetched
by hand, and asking for one that is not there prints exactly what to download and where to put it.
Env SSL_AASIST_MIRROR=<base URL> fetches every registry file from <base URL>/<filename> instead (a lab mirror,
or a local server in tests); checksums still apply.
"""

from __future__ import annotations

import argparse
import sys

import antispoof.cli as cli
from antispoof.checkpoints.registry import (
    REGISTRY,
    resolve_checkpoint,
    sha256sum,
    unverified_note,
    zoo_table,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    p.add_argument("names", nargs="*", default=[], help=f"registry names: {', '.join(REGISTRY)}")
    p.add_argument("--list", action="store_true", help="list the registry and what is already present")
    p.add_argument("--verify", action="store_true", help="check size and sha256 of files already present")
    p.add_argument(
        "--markdown", action="store_true", help="print the README's model zoo table (from the registry)"
    )
    return p.parse_args(argv)


def describe_entry(name: str, entry: dict) -> str:
    """One registry entry for --list: where it comes from, whether it is here, what it is, its license."""
    if entry.get("hf_repo"):
        how = f"auto (Hugging Face {entry['hf_repo']})"
    else:
        how = "manual (Google Drive)" if entry.get("manual") else "auto (URL)"
    try:
        path = resolve_checkpoint(name, download=False)
        note = unverified_note(path) if path.exists() else ""
        present = "-" if not path.exists() else f"present ({note})" if note else "present"
    except (FileNotFoundError, RuntimeError, ValueError):
        present = "-"
    lines = [f"{name:24s} {entry['arch']:13s} {how:60s} {present}", f"    {entry['description']}"]
    for key, label in (("training_data", "trained on"), ("published_eer", "published EER"),
                       ("input_policy", "input"), ("params", "size"), ("license", "license"),
                       ("checksum_note", "checksum"), ("also", "also")):  # fmt: skip
        if entry.get(key):
            lines.append(f"    {label}: {entry[key]}")
    if entry.get("hf_repo"):
        pin = entry.get("revision")
        lines.append(
            f"    revision: {pin or 'none pinned (no public metadata found): the newest is fetched'}"
        )
    if entry.get("inferred"):
        lines.append(f"    inferred, not verified: {'; '.join(entry['inferred'])}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    if args.markdown:
        print(zoo_table())
        return
    if args.list or not args.names:
        print("\n\n".join(describe_entry(name, entry) for name, entry in REGISTRY.items()))
        return
    status = 0
    for name in args.names:
        try:
            path = resolve_checkpoint(name)
        except (FileNotFoundError, RuntimeError, ValueError) as err:
            print(err, file=sys.stderr)
            status = 1
            continue
        entry = REGISTRY.get(name.lower(), {})
        if args.verify and entry.get("sha256"):
            ok = sha256sum(path) == entry["sha256"]
            print(f"{path}: sha256 {'OK' if ok else 'MISMATCH'}")
            status |= not ok
        else:
            print(path)
    sys.exit(status)


if __name__ == "__main__":
    main(parse_args())
