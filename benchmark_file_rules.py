"""Which file-level rule should answer for a whole recording? EER and Cllr of each rule on long clips.

    python benchmark_file_rules.py --checkpoint aasist --data data/sample --n-per-kind 10
    python benchmark_file_rules.py --checkpoint aasist-l --out-dir runs/file_rules

The clips (antispoof/audio/longclips.py) are built from the --data folder's real/ and fake/ files: real
utterances joined, fake utterances joined, and fakes spliced into real speech after its first 4.04 s. Each
clip is scored once under the model's own policy ("head": the reference's first 4.04 s) and once as 4.04 s
windows with 50 % overlap; the rules (scoring/file_rules.py) then turn the window scores into one score per
clip. For each rule: EER over all clips, EER of real clips against spliced ones only, minCllr, and Cllr of
calibrated LLRs (an affine calibration fitted on one half of the clips and applied to the other, both ways:
never on the clips it is judged on). Writes OUT_DIR/file_rules.json and prints a table. A small,
easy set (espeak-ng fakes): it ranks rules, it does not measure a detector.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import antispoof.cli as cli
from antispoof.audio.longclips import build_long_clips
from antispoof.checkpoints.files import load_model
from antispoof.evaluation.calibration import fit_affine
from antispoof.evaluation.metrics import compute_cllr, compute_eer, compute_min_cllr
from antispoof.scoring.core import default_batch_size, policy_for, score_items
from antispoof.scoring.file_rules import FILE_RULES, file_score
from antispoof.utils import pick_device, write_json


def cross_fitted_llrs(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """LLRs from an affine calibration fitted on the other fold, for each of the two folds."""
    llrs = np.empty_like(scores)
    for k in (0, 1):
        train, test = folds != k, folds == k
        scale, offset = fit_affine(scores[train & (labels == 1)], scores[train & (labels == 0)], p_spoof=0.5)
        llrs[test] = scale * scores[test] + offset
    return llrs


def rule_metrics(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: np.ndarray) -> dict:
    real, fake = scores[labels == 1], scores[labels == 0]
    spliced = scores[groups == "spliced"]
    llrs = cross_fitted_llrs(scores, labels, folds)
    return {
        "eer": compute_eer(real, fake)[0],
        "eer_real_vs_spliced": compute_eer(real, spliced)[0],
        "min_cllr": compute_min_cllr(real, fake),
        "cllr_cross_fitted": compute_cllr(llrs[labels == 1], llrs[labels == 0]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__.split("\n\n")[0])
    cli.add_checkpoint(p, "aasist")
    p.add_argument("--data", default="data/sample", help="folder with real/ and fake/ short utterances")
    p.add_argument("--n-per-kind", type=int, default=10, help="clips of each kind (real, fake, spliced)")
    p.add_argument("--out-dir", default="runs/file_rules", help="where the clips and file_rules.json go")
    p.add_argument("--seed", type=int, default=0, help="seed of the clip construction")
    cli.add_device(p)
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    items = build_long_clips(args.data, os.path.join(args.out_dir, "clips"), args.n_per_kind, args.seed)
    model, _ = load_model(args.checkpoint, map_location=device)
    opts = dict(
        batch_size=default_batch_size(device), workers=0, device=device, backend="auto", progress=False
    )
    start = time.perf_counter()
    head = score_items(model, items, policy=policy_for(model), **opts)
    windows = score_items(model, items, policy=policy_for(model, window=True), **opts)
    seconds = time.perf_counter() - start
    bad = [r["path"] for r in head + windows if r["status"] != "ok"]
    if bad:
        sys.exit(f"error: {len(bad)} clips could not be scored, e.g. {bad[0]}")
    labels = np.array([i.label == "real" for i in items], dtype=np.int64)
    groups = np.array([i.group for i in items])
    folds = np.array([k % 2 for k in range(len(items))])  # alternate within each kind: both folds hold all
    candidates = {"head (first 4.04 s)": np.array([r["score"] for r in head])}
    for rule in FILE_RULES:
        candidates[f"windows, {rule}"] = np.array([file_score([w["score"] for w in r["windows"]], rule)
                                                   for r in windows])  # fmt: skip
    results = {name: rule_metrics(s, labels, groups, folds) for name, s in candidates.items()}
    print(
        f"{len(items)} clips ({args.n_per_kind} real, fake, spliced each), {args.checkpoint}, {seconds:.0f} s"
    )
    print(f"{'rule':<22} {'EER %':>6} {'EER real/spliced %':>19} {'Cllr (cross-fit)':>17} {'minCllr':>8}")
    for name, m in results.items():
        print(f"{name:<22} {100 * m['eer']:>6.1f} {100 * m['eer_real_vs_spliced']:>19.1f} "
              f"{m['cllr_cross_fitted']:>17.3f} {m['min_cllr']:>8.3f}")  # fmt: skip
    document = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "n_per_kind": args.n_per_kind,
        "seed": args.seed,
        "rules": FILE_RULES,
        "results": results,
        "scoring_seconds": round(seconds, 1),
        "note": "EER and minCllr on all clips; Cllr of LLRs calibrated on the other half (2 folds); bits",
    }
    write_json(os.path.join(args.out_dir, "file_rules.json"), document)
    return document


if __name__ == "__main__":
    main(parse_args())
