"""The console commands of an installed package (`pip install .`): `antispoof-score ...` runs score.py as
`python score.py ...` does in a checkout, with the same flags, output and exit status.

The scripts are installed inside the package (antispoof.scripts.score, ...: pyproject.toml), so nothing with a
generic name (score, app, utils) lands at the top of site-packages.
"""

from __future__ import annotations

import runpy


def _run(script: str) -> None:
    runpy.run_module(f"antispoof.scripts.{script}", run_name="__main__", alter_sys=True)


def evaluate_custom() -> None:
    _run("evaluate_custom")


def evaluate_custom_for() -> None:
    _run("evaluate_custom_for")


def fine_tune_for() -> None:
    _run("fine_tune_for")


def score() -> None:
    _run("score")


def app() -> None:
    _run("app")


def calibrate() -> None:
    _run("calibrate")


def analyse() -> None:
    _run("analyse")


def download() -> None:
    _run("download")


def export() -> None:
    _run("export")


def stress() -> None:
    _run("stress")
