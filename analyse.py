"""Analyse an evaluation run as a reviewer would: what the numbers mean, where the detector fails, whether the
data let it score something other than spoofing, and (with --compare) what changed between two runs and why.

    python analyse.py runs/custom_la                              # writes runs/custom_la/report.md
    python analyse.py runs/custom_for --compare runs/custom_la    # ... plus the change from the LA run
    python analyse.py runs/custom_la --data /new/home/of/custom   # the audio moved since the run
    python analyse.py runs/stress --condition opus_12k --compare runs/stress   # one stress condition vs clean

Reads RUN/scores.csv and RUN/metrics.json (evaluate_custom.py's outputs) and the audio files themselves
(`audio.describe`: container, codec, sample rate, channels, duration, loudness, leading/trailing silence;
cached in RUN/attributes.csv). Writes RUN/report.md (Markdown; its figures RUN/report_*.png beside it) and
prints the summary: the headline, any confound warning, and with --compare the diagnosis.

report.md: 1. headline (AUC, EER, the operating threshold as errors per 100 files, minDCF/actDCF/Cllr when
metrics.json has them, the polarity check); 2. where it fails (per group, per audio attribute, the files it
gets most wrong); 3. confound check (how well each attribute alone separates real from fake, and how much of
the detector's separation survives with the attribute held fixed); 4. with --compare, the change: metrics
side by side, per group and attribute, files whose verdict flipped, and the diagnosis the numbers support.
Positive class = real, higher score = more real; verdicts at the operating threshold (the calibrated LLR's
Bayes threshold on a calibrated run, else the run's EER threshold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import antispoof.cli as cli
from antispoof.constants import default_workers
from antispoof.reports.report import write_report


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    cli.add_run(p, help="run folder with scores.csv and metrics.json (evaluate_custom.py)")
    p.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="an earlier run folder to compare with (a stress-test run: its clean condition)",
    )
    p.add_argument(
        "--condition",
        default=None,
        help="a stress-test run (stress.py) is analysed one condition at a time: which one "
        "(report in RUN/analysis_CONDITION/)",
    )
    p.add_argument(
        "--data", type=Path, default=None, help="where the audio is now, if it moved since the run"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, default_workers()),
        help="processes reading the audio attributes",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.parse_run(build_parser(), argv)


def main(args: argparse.Namespace) -> dict:
    """Write RUN/report.md and print its summary; returns the findings (confounds, diagnosis, ...)."""
    try:
        return write_report(args.run, args.compare, args.data, args.workers, condition=args.condition)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main(parse_args())
