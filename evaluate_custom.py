"""Score a labelled real/fake dataset with a checkpoint and report AUC and EER (positive class = real).

    python evaluate_custom.py --data DIR --checkpoint la --out-dir runs/eval_la
    python evaluate_custom.py --data ASVspoof2019/LA --layout asvspoof2019 --split eval --checkpoint aasist \\
        --out-dir runs/aasist_la19
    torchrun --nproc_per_node 4 evaluate_custom.py --data DIR --checkpoint la --out-dir runs/eval_la

By default each file is scored under the model's reference input policy (SSL-AASIST and AASIST: the first
64,600 samples, 4.04 s, tiled if shorter): that is how published numbers are reproduced. --window scores
overlapping windows (mean logit); --whole-clip scores the whole file with its most fake-sounding window
deciding, the answer score.py and the app give for one recording (evaluate it, or fit its calibration, here).
The run prints the policy and every output records it.

Writes into --out-dir: scores.csv (path,label,score,p_fake,logit_fake,logit_real,llr,status,duration_s,
scored_s,n_windows,note,group,policy,score_kind,windows; written as it goes, so --resume finishes an
interrupted run), metrics.json (auc, eer, eer_threshold, min_dcf, act_dcf, cllr, min_cllr at the
--prior/--cost operating point, default ASVspoof 5's, 95 % bootstrap intervals, counts, skipped files by
reason, positive class, policy and score definition, and by_group: the same per generator sub-folder or
ASVspoof attack), roc.png, det.png, score_hist.png, reliability.png, args.json and run.json (the checkpoint,
its weights' sha256 and the scoring settings: --resume refuses to mix runs, and an existing run is replaced
only with --overwrite; see runs.py); prints one summary line. When the checkpoint has a calibration for these
weights and this policy (calibrate.py), scores.csv gains `llr` and metrics.json `calibrated` (actDCF, Cllr of
the LLRs); a calibration for other weights or another policy is refused (the run is then uncalibrated, and
says why). --score-file writes the ASVspoof 5 score file (filename<TAB>cm-score).
score = the model's reference score (SSL-AASIST and AASIST: the real-class logit; higher = more real),
p_fake = softmax probability of fake.
Unreadable files are skipped with their reason in `status` and counted; the exit status is 0 whenever metrics
could be computed (see metrics.json's n_skipped), 1 when no metrics could be computed (e.g. every file of a
class failed).
"""

from __future__ import annotations

import argparse
import sys

import antispoof.cli as cli

DEFAULT_CHECKPOINT = "la"  # registry name of the reference LA_model.pth (see pretrained/README.md)


def build_parser(description: str = __doc__) -> argparse.ArgumentParser:
    return cli.evaluation_parser(description, DEFAULT_CHECKPOINT)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    """Run the evaluation; returns the metrics (rank 0) or {} (other torchrun ranks)."""
    return cli.run_evaluation(args)


if __name__ == "__main__":
    import antispoof.distributed as dist

    result = main(parse_args())
    sys.exit(1 if dist.is_main() and result.get("auc") is None else 0)
