"""Reference numbers from the official ASVspoof 5 evaluation package, for tests/test_metrics.py.

    git clone https://github.com/asvspoof-challenge/asvspoof5 /tmp/asvspoof5
    python tools/asvspoof5_reference.py /tmp/asvspoof5 > tests/data/asvspoof5_reference.json

Builds a few score sets (random, ties, perfect separation, one-sided errors, scores on the actDCF threshold,
inverted, unbalanced), runs the package's own functions on them (evaluation-package/calculate_modules.py:
compute_eer, compute_mindcf, compute_actDCF, calculate_CLLR, with the Track 1 costs of its
calculate_metrics.py: Pspoof 0.05, Cmiss 1, Cfa 10) and prints the scores with the numbers as JSON. The
official code is imported from the clone given, never copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

P_SPOOF, C_MISS, C_FA = 0.05, 1.0, 10.0


def score_sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (bona fide scores, spoof scores); higher = more bona fide."""
    rng = np.random.default_rng(20240915)
    threshold = -np.log(C_MISS * (1 - P_SPOOF) / (C_FA * P_SPOOF))  # actDCF threshold, about -0.642
    sets = {
        "random": (rng.normal(2.0, 1.5, 300), rng.normal(-1.5, 2.0, 200)),
        "ties": (rng.integers(-2, 5, 150).astype(float), rng.integers(-4, 2, 120).astype(float)),
        "all_tied": (np.zeros(5), np.zeros(7)),
        "perfect_separation": (rng.uniform(1.0, 6.0, 40), rng.uniform(-6.0, -2.0, 60)),
        "perfect_separation_wrong_side": (rng.uniform(-3.0, -1.0, 30), rng.uniform(-8.0, -4.0, 30)),
        "misses_only": (
            np.r_[rng.uniform(-5.0, -2.0, 10), rng.uniform(1.0, 5.0, 90)],
            rng.uniform(-9, -6, 80),
        ),
        "false_alarms_only": (
            rng.uniform(2.0, 6.0, 70),
            np.r_[rng.uniform(-6.0, -2.0, 60), rng.uniform(3, 4, 5)],
        ),
        "on_the_threshold": (
            np.r_[np.full(4, threshold), rng.normal(1, 1, 20)],
            np.r_[np.full(3, threshold), rng.normal(-2, 1, 20)],
        ),
        "inverted": (rng.normal(-1.0, 1.0, 50), rng.normal(1.0, 1.0, 50)),
        "unbalanced": (rng.normal(1.0, 2.0, 1000), rng.normal(-2.0, 2.0, 40)),
        "single_pair": (np.array([0.3]), np.array([-0.2])),
    }
    return sets


def main(args: argparse.Namespace) -> None:
    package = Path(args.asvspoof5) / "evaluation-package"
    sys.path.insert(0, str(package))
    import calculate_modules as official  # the official code, from the clone

    commit = (
        subprocess.run(
            ["git", "-C", str(args.asvspoof5), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or args.commit
    )
    out = {
        "provenance": {
            "repository": "https://github.com/asvspoof-challenge/asvspoof5",
            "file": "evaluation-package/calculate_modules.py",
            "commit": commit,
            "script": "tools/asvspoof5_reference.py",
            "numpy": np.__version__,
            "costs": {"p_spoof": P_SPOOF, "c_miss": C_MISS, "c_fa": C_FA},
        },
        "sets": {},
    }
    for name, (bona, spoof) in score_sets().items():
        eer, frr, far, thresholds, eer_threshold = official.compute_eer(bona, spoof)
        min_dcf, min_dcf_threshold = official.compute_mindcf(frr, far, thresholds, P_SPOOF, C_MISS, C_FA)
        act_dcf, act_threshold = official.compute_actDCF(bona, spoof, P_SPOOF, C_MISS, C_FA)
        cllr = official.calculate_CLLR(bona, spoof)
        out["sets"][name] = {
            "bona_fide": bona.tolist(),
            "spoof": spoof.tolist(),
            "eer": float(eer),
            "eer_threshold": float(eer_threshold),
            "min_dcf": float(min_dcf),
            "min_dcf_threshold": float(min_dcf_threshold),
            "act_dcf": float(act_dcf),
            "act_dcf_threshold": float(act_threshold),
            "cllr": float(cllr),
        }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("asvspoof5", help="a clone of asvspoof-challenge/asvspoof5")
    parser.add_argument("--commit", default="", help="the clone's commit, if it is not a git work tree")
    main(parser.parse_args())
