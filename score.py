"""Check recordings with a deepfake detector: one verdict per file, and with --window per-window scores.

    python score.py clip.wav folder/ "more/*.flac" list.txt --checkpoint aasist
    python score.py folder/ --checkpoint runs/exp/best.pth --output-format csv --output scores.csv
    python score.py long_call.wav --window --checkpoint LA_model.pth --threshold 0.5 --output-format json

Inputs: audio files, folders (searched recursively, through links), globs, .txt/.lst files listing one path
a line, or "-" for such a list on stdin (`find data -name '*.wav' | python score.py -`).
Each file is scored by scoring.score_items (the code evaluation uses) under the model's input policy, as
evaluate_custom.py does: for SSL-AASIST and AASIST the reference's first 64,600 samples (~4.04 s, tiled if
shorter). With --window the whole file is scored as 4.04 s windows with 50 % overlap (--hop): the file's
score and p_fake come from the mean of its windows' logits, and every window's score is listed with its
start time. The output states the policy and the score definition.

Score direction: `score` is the model's reference score (SSL-AASIST and AASIST: the real-class logit, model
output index 1): higher = more likely real. `p_fake` = softmax(logits)[0], the probability of the fake class.
Verdict (antispoof.scoring.decision.decision_for), the first that applies:
- --threshold T: "real" when score >= T;
- the checkpoint's calibration (`<checkpoint>.calibration.json` written by calibrate.py, or the one
  fine_tune_for.py stores in best.pt): llr = scale * score + offset, a natural-log likelihood ratio, and
  "real" when llr >= -log(beta), the Bayes decision for a prior of a fake --prior and the costs --cost
  (default ASVspoof 5's: Pspoof 0.05, Cmiss 1, Cfa 10, threshold -0.642). Each file gets its `llr`. A
  calibration fitted for other weights or under another input policy (e.g. without --window when this run
  uses it) is refused with a message and exit status 2; --no-calibration ignores it;
- neither (e.g. the released AASIST / SSL-AASIST weights): "fake" when p_fake >= 0.5 (the larger logit wins),
  which assumes the priors of the training data.
The output always states the rule it used. --score-file also writes the ASVspoof 5 score file
(filename<TAB>cm-score, the llr when calibrated, else the score).

Files that cannot be read get a row with status "error" and the reason; the others are still scored.
Notes (silence, a file longer than --max-duration) are in the `note` column.
Exit status: 0 = every file scored, 1 = some files failed, 2 = no file scored (none found or readable, or
the checkpoint could not be loaded).
"""

import argparse
import csv
import io
import math
import sys
from pathlib import Path

import antispoof.cli as cli
import antispoof.evaluation.calibration as calibration
from antispoof.audio.datasets import Item, list_audio_files
from antispoof.checkpoints.files import parse_model_config
from antispoof.scoring.decision import DEFAULT_P_FAKE_THRESHOLD, Decision, is_scored
from antispoof.scoring.scorefile import asvspoof5_score_file
from antispoof.scoring.setup import Scorer
from antispoof.utils import atomic_write_text, json_text, raw_names_on_stdio

DEFAULT_CHECKPOINT = "aasist"  # registry name: clovaai AASIST, small enough for a CPU
CSV_FIELDS = (
    "path",
    "status",
    "verdict",
    "score",
    "p_fake",
    "llr",
    "duration_s",
    "n_windows",
    "windows",
    "policy",
    "score_kind",
    "rule",
    "reason",
    "note",
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_NONE_SCORED = 0, 1, 2
OUTPUT_FORMATS = ("table", "csv", "json")


def exit_status(rows: list[dict]) -> int:
    """0 if every file was scored, 1 if some failed, 2 if none was scored."""
    n_ok = sum(map(is_scored, rows))
    if n_ok == 0:
        return EXIT_NONE_SCORED
    return EXIT_OK if n_ok == len(rows) else EXIT_SOME_FAILED


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def format_table(rows: list[dict], decision: Decision, checkpoint: str, policy: str, definition: str) -> str:
    """Human-readable table; a file with more than one window lists its windows below its row."""
    width = max([len("file")] + [len(row["path"]) for row in rows])
    lines = [
        f"checkpoint: {checkpoint}",
        f"input policy: {policy}",
        definition,
        f"verdict rule: {decision.describe()}",
        "",
        f"{'file':<{width}}  {'verdict':<7}  {'p_fake':>6}  {'score':>8}  {'llr':>8}  {'length':>7}  note",
    ]
    for row in rows:
        if not is_scored(row):
            lines.append(
                f"{row['path']:<{width}}  {'ERROR':<7}  {'':>6}  {'':>8}  {'':>8}  {'':>7}  {row['status']}"
            )
            continue
        lines.append(
            f"{row['path']:<{width}}  {row['verdict']:<7}  {row['p_fake']:>6.3f}  {row['score']:>8.3f}  "
            f"{_fmt(row.get('llr'), 3):>8}  {row['duration_s']:>6.1f}s  {row['note']}".rstrip()
        )
        if row["n_windows"] > 1:
            for w in row["windows"]:
                span = f"  window {w['start']:6.2f}-{w['end']:6.2f}s"
                lines.append(
                    f"{span:<{width}}  {w['verdict']:<7}  {w['p_fake']:>6.3f}  {w['score']:>8.3f}  "
                    f"{_fmt(w.get('llr'), 3):>8}".rstrip()
                )
    lines += ["", summary_line(rows)]
    return "\n".join(lines) + "\n"


def summary_line(rows: list[dict]) -> str:
    ok = [row for row in rows if is_scored(row)]
    n_real = sum(row["verdict"] == "real" for row in ok)
    failed = len(rows) - len(ok)
    return (
        f"{len(ok)} of {len(rows)} files scored ({n_real} real, {len(ok) - n_real} fake), "
        f"{failed} failed{' (see their reason)' if failed else ''}"
    )


def format_csv(rows: list[dict], decision: Decision) -> str:
    """One line per file; `windows` holds the per-window scores as JSON (as in evaluation's scores.csv)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        ok = is_scored(row)
        writer.writerow(
            {
                "path": row["path"],
                "status": "ok" if ok else "error",
                "verdict": row["verdict"],
                "score": _fmt(row["score"], 6),
                "p_fake": _fmt(row["p_fake"], 6),
                "llr": _fmt(row.get("llr"), 6),
                "duration_s": _fmt(row["duration_s"], 3),
                "n_windows": row["n_windows"] if ok else "",
                "windows": json_text(row["windows"], indent=None) if ok else "",
                "policy": row["policy"],
                "score_kind": row["score_kind"],
                "rule": decision.describe(),
                "reason": "" if ok else row["status"],
                "note": row["note"],
            }
        )
    return buffer.getvalue()


def format_json(rows: list[dict], decision: Decision, checkpoint: str, policy: str, definition: str) -> str:
    """{"checkpoint", "policy", "score_definition", "score_direction", "decision", "files": [...]}."""
    files = []
    for row in rows:
        if is_scored(row):
            keys = ("path", "verdict", "score", "p_fake", "duration_s", "scored_s", "note", "windows")
            llr = {"llr": row["llr"]} if row.get("llr") is not None else {}
            files.append({"status": "ok", **{k: row[k] for k in keys}, **llr})
        else:
            files.append({"path": row["path"], "status": "error", "reason": row["status"]})
    document = {
        "checkpoint": checkpoint,
        "policy": policy,
        "score_definition": definition,
        "score_direction": "higher = more likely real",
        "decision": decision.as_dict(),
        "files": files,
    }
    return json_text(document)


def finite_float(text: str) -> float:
    """argparse type: a float that is not NaN or infinite."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="+", help="audio files, folders, globs, .txt/.lst list files, or - (a list on stdin)"
    )
    cli.add_checkpoint(parser, DEFAULT_CHECKPOINT)
    cli.add_model_config(parser)
    parser.add_argument(
        "--threshold",
        type=finite_float,
        default=None,
        help="verdict threshold on the score (real if score >= it); overrides the checkpoint's calibration",
    )
    parser.add_argument(
        "--output-format", choices=OUTPUT_FORMATS, default="table", help="table, or csv / json for programs"
    )
    # --format names the dataset layout in the other scripts; here it was the output format.
    parser.add_argument("--format", dest="old_format", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help="write the output here instead of stdout")
    cli.add_policy(parser)
    cli.add_compute(parser, seed=None)
    cli.add_backend(parser)
    calibration.add_operating_point_args(parser)
    parser.add_argument(
        "--no-calibration", action="store_true", help="ignore the checkpoint's calibration (default rule)"
    )
    parser.add_argument(
        "--score-file",
        type=Path,
        default=None,
        help="also write an ASVspoof 5 score file (filename<TAB>cm-score: the llr when calibrated, else the "
        "score)",
    )
    args = parser.parse_args(argv)
    if args.old_format is not None:
        parser.error(
            f"--format is now --output-format (--format is the dataset layout in the other scripts): "
            f"use --output-format {args.old_format}"
        )
    return args


def main(args: argparse.Namespace) -> int:
    raw_names_on_stdio()
    try:
        files = list_audio_files(args.paths)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NONE_SCORED
    if not files:
        print(f"error: no audio files found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_NONE_SCORED
    try:
        scorer = Scorer.load(
            args.checkpoint,
            device=args.device,
            model_config=parse_model_config(args.model_config),
            window=args.window,
            hop_s=args.hop,
            max_seconds=args.max_duration,
            amp=args.amp,
            backend=args.backend,
            batch_size=args.batch_size,
            workers=args.workers,
        )
    except (OSError, ValueError, RuntimeError) as err:  # the loaders' messages say what to do
        print(f"error: cannot load checkpoint {args.checkpoint}: {err}", file=sys.stderr)
        return EXIT_NONE_SCORED
    if scorer.untrained:
        print(
            f"warning: {args.checkpoint} has no trained back end (random); its scores mean nothing",
            file=sys.stderr,
        )
    try:
        decision = scorer.decide(
            args.threshold, op=calibration.operating_point(args), use_calibration=not args.no_calibration
        )
    except ValueError as err:
        print(f"error: {args.checkpoint}: {err}", file=sys.stderr)
        return EXIT_NONE_SCORED
    if decision.threshold is None and decision.calibration is None:
        print(
            f"note: {args.checkpoint} has no calibration, so the default rule applies: fake if p_fake >= "
            f"{DEFAULT_P_FAKE_THRESHOLD}. Calibrate it on labelled data like yours (calibrate.py), or set a "
            "threshold on the score with --threshold.",
            file=sys.stderr,
        )
    policy, definition, info = scorer.policy, scorer.definition, scorer.info
    if args.output_format != "table" or args.output is not None:  # the table states it in its header
        print(f"input policy: {policy.describe()}; {definition}", file=sys.stderr)
    rows = scorer.score([Item(str(path), None) for path in files])

    checkpoint = str(info.get("source") or args.checkpoint)
    if args.output_format == "csv":
        text = format_csv(rows, decision)
    elif args.output_format == "json":
        text = format_json(rows, decision, checkpoint, policy.describe(), definition)
    else:
        text = format_table(rows, decision, checkpoint, policy.describe(), definition)
    if args.score_file is not None:
        use_llr = decision.llr(0.0) is not None
        atomic_write_text(args.score_file, asvspoof5_score_file(rows, use_llr=use_llr))
        print(f"wrote {args.score_file} (cm-score = {'llr' if use_llr else 'score'})", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.output, text)
        print(f"wrote {len(rows)} rows to {args.output}", file=sys.stderr)
    if args.output_format != "table" or args.output is not None:
        print(summary_line(rows), file=sys.stderr)
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
