"""Known pretrained checkpoints (pretrained/registry.json) and a resumable, checksummed downloader.

    python download.py aasist            # download (plain-URL entries) or print manual instructions
    python download.py --list            # the registry

Every script's --checkpoint goes through `resolve_checkpoint`: a file path, or a registry name (la, df,
xlsr-300m, aasist, aasist-l). Files live in pretrained/ (override with env SSL_AASIST_PRETRAINED_DIR).
Plain-URL checkpoints download themselves on first use; Google Drive ones must be fetched by hand, and asking
for one that is not there prints exactly what to download and where to put it.
Env SSL_AASIST_MIRROR=<base URL> fetches every registry file from <base URL>/<filename> instead (a lab mirror,
or a local server in tests); checksums still apply.
"""

from __future__ import annotations

import argparse
import sys

from checkpoints import REGISTRY, pretrained_dir, resolve_checkpoint, sha256sum


def parse_args() -> argparse.Namespace:
    class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    p = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    p.add_argument("names", nargs="*", default=[], help=f"registry names: {', '.join(REGISTRY)}")
    p.add_argument("--list", action="store_true", help="list the registry and what is already present")
    p.add_argument("--verify", action="store_true", help="check size and sha256 of files already present")
    return p.parse_args()


def main(args: argparse.Namespace) -> None:
    if args.list or not args.names:
        for name, e in REGISTRY.items():
            dest = pretrained_dir() / e["filename"]
            how = "manual (Google Drive)" if e.get("manual") else "auto"
            print(
                f"{name:10s} {e['arch']:10s} {e['filename']:26s} {how:22s} "
                f"{'present' if dest.exists() else '-'}"
            )
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
