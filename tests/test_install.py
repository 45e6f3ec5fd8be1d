"""`pip install .` into a fresh virtual environment gives the package and working console commands.

The venv sees this Python's packages (--system-site-packages) and pip may not use an index, so nothing is
downloaded: the test checks the project's packaging, not the network.
"""

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pip_install_gives_the_package_and_console_commands(tmp_path):
    src = tmp_path / "src"  # a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if not name.startswith(("data/", "pretrained/", "tests/")) and (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    venv = tmp_path / "venv"
    # --without-pip: the venv uses this Python's pip and setuptools (a venv's bundled setuptools is older).
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
                   check=True)  # fmt: skip
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps", src],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip

    # Every library module was installed (a sub-package missing from pyproject.toml's list fails here).
    code = "import antispoof, pathlib; print(pathlib.Path(antispoof.__file__).parent)"
    installed = Path(subprocess.run([python, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                    check=True).stdout.strip())  # fmt: skip
    assert installed != ROOT / "antispoof"
    wanted = {p.relative_to(ROOT / "antispoof") for p in (ROOT / "antispoof").rglob("*.py")}
    wanted |= {p.relative_to(ROOT / "antispoof") for p in (ROOT / "antispoof").rglob("*.json")}
    assert wanted <= {p.relative_to(installed) for p in installed.rglob("*") if p.is_file()}
    assert not (installed.parent / "score.py").exists() and not (installed.parent / "utils.py").exists()

    # The registry's AASIST ships in the checkout's pretrained/, not in the package.
    env = {**os.environ, "SSL_AASIST_PRETRAINED_DIR": str(ROOT / "pretrained")}
    help_text = subprocess.run([bin_dir / "antispoof-evaluate", "--help"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "--layout" in help_text and "--checkpoint" in help_text
    clip = ROOT / "data" / "sample" / "fake" / "espeak_01.wav"
    scored = subprocess.run(
        [bin_dir / "antispoof-score", clip, "--checkpoint", "aasist", "--reference-policy", "--output-format",
         "csv", "--backend", "torch", "--workers", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    row = next(csv.DictReader(io.StringIO(scored.stdout)))
    assert row["status"] == "ok" and row["verdict"] == "fake" and row["policy"] == "head n=64600"
