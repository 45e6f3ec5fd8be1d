"""Check recordings with a deepfake detector: an answer per file, how sure it is, and where it hears a fake.

    python score.py clip.wav folder/ "more/*.flac" list.txt          # the strongest detector present
    python score.py folder/ --checkpoint runs/exp/best.pt --output-format csv --output scores.csv
    python score.py labels.csv --checkpoint aasist --reference-policy  # the paths of evaluate_custom.py's CSV

Inputs: audio files, folders (searched recursively, through links), globs, .txt/.lst files listing one path
a line, .csv dataset files (path,label as evaluate_custom.py reads them, or In-the-Wild's meta.csv: their
paths are scored), or "-" for a list on stdin (`find data -name '*.wav' | python score.py -`).

Detector: --checkpoint, else the strongest registry detector present locally by published In-the-Wild EER
(AASIST, which ships with the code, otherwise, with a warning: it is wrong about 43 times in 100 on real-world
speech). The output starts with its model card (training data, languages, published EERs, license).

What is scored: every second of each file (scoring.core.policy_for `whole_clip`): a model whose reference
reads only the first 4.04 s is run over 4.04 s windows with 50 % overlap (--hop), and the file's score is
its most fake-sounding window's (file rule "min": best EER and Cllr on the long-clip benchmark, README), so a
fake spliced into real speech is not averaged away; whole-file models read the whole file. Every window's
score is listed with its start time, and the time ranges of fake-leaning windows are given.
--reference-policy scores as evaluate_custom.py does (SSL-AASIST, AASIST: the first 4.04 s), --window as
windows with the mean logit. The output states the policy and the score definition.

Score direction: `score` is the model's reference score (SSL-AASIST and AASIST: the real-class logit, model
output index 1): higher = more likely real. `p_fake` = softmax(logits)[0], an uncalibrated softmax.

The answer (decision.add_answers): with a calibration for these weights and this policy (calibrate.py, or
the one fine_tune_for.py stores in best.pt), llr = scale * score + offset and the posterior P(fake) at the
prior --fake-prior (default 0.5, even odds: nothing is known about one recording before listening) give
"likely fake" / "inconclusive" / "likely real" (posterior odds of 9 to 1 needed), with where the
calibration came from. Without one there is no answer: the score is not a probability, and the output says
which way it leans and the command that calibrates it.
`verdict` (for programs; scoring.decision.decision_for), the first that applies: --threshold T: "real" when
score >= T; the calibration: "real" when llr >= -log(beta), the Bayes decision for --prior and --cost
(default ASVspoof 5's: Pspoof 0.05, Cmiss 1, Cfa 10); else "fake" when p_fake >= 0.5 (the larger logit),
which assumes the training data's priors. A calibration fitted for other weights or another policy is
refused with a message and exit status 2; --no-calibration ignores it. --score-file also writes the
ASVspoof 5 score file (filename<TAB>cm-score, the llr when calibrated, else the score).

Files that cannot be read get a row with status "error" and the reason; the others are still scored.
Notes (silence, a file longer than --max-duration) are in the `note` column, warnings about recording
conditions far from the training data (long, silent, telephone band) in `warnings`.
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
from antispoof.audio.conditions import far_from_training
from antispoof.audio.datasets import Item, list_audio_files, load_dataset, unique_files
from antispoof.audio.decode import AudioError, load_audio
from antispoof.checkpoints.cards import best_local_detector, card_lines, model_card
from antispoof.scoring.decision import (
    Decision,
    add_answers,
    is_scored,
    public_name,
)
from antispoof.scoring.recording import plain_sentence, rule_lines, spans_text
from antispoof.scoring.scorefile import asvspoof5_score_file
from antispoof.scoring.setup import Scorer
from antispoof.utils import atomic_write_text, json_text, raw_names_on_stdio

CSV_FIELDS = (
    "path",
    "status",
    "answer",
    "p_fake_calibrated",
    "fake_spans",
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
    "warnings",
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


def answer_cell(row: dict) -> str:
    """The table's answer: a calibrated band, or which way an uncalibrated score leans."""
    return row["answer"] if row["answer"] != "uncalibrated" else f"leans {row['leans']} (uncalibrated)"


def header_lines(head: dict) -> list[str]:
    """What every output states first: the detector and why, its card, the policy, score and answer rule."""
    return [
        f"detector: {head['detector']} ({head['why']})",
        *[f"  {line}" for line in head["card"]],
        f"input policy: {head['policy']}",
        head["definition"],
        *head["rule"],
        f"verdict rule (the `verdict` column): {head['verdict_rule']}",
    ]


def format_table(rows: list[dict], head: dict) -> str:
    """Human-readable: the header, one plain sentence and a row per file, its windows below a long file."""
    width = max([len("file")] + [len(row["path"]) for row in rows])
    lines = [*header_lines(head), ""]
    lines.append(
        f"{'file':<{width}}  {'answer':<26}  {'P(fake)':>7}  {'p_fake':>6}  {'score':>8}  {'length':>7}  note"
    )
    for row in rows:
        if not is_scored(row):
            lines.append(
                f"{row['path']:<{width}}  {'ERROR':<26}  {'':>7}  {'':>6}  {'':>8}  {'':>7}  {row['status']}"
            )
            continue
        note = "; ".join(filter(None, [row["note"], *row["warnings"]]))
        lines.append(
            f"{row['path']:<{width}}  {answer_cell(row):<26}  {_fmt(row['p_fake_calibrated'], 3):>7}  "
            f"{row['p_fake']:>6.3f}  {row['score']:>8.3f}  {row['duration_s']:>6.1f}s  {note}".rstrip()
        )
        if len(rows) == 1:  # one recording: the sentence a non-expert reads
            lines.append(f"  {plain_sentence(row, head['bands'])}")
        if row["n_windows"] > 1:
            for w in row["windows"]:
                span = f"  window {w['start']:6.2f}-{w['end']:6.2f}s"
                lean = "fake-leaning" if w.get("leans_fake") else ""
                lines.append(
                    f"{span:<{width}}  {lean:<26}  {'':>7}  {w['p_fake']:>6.3f}  {w['score']:>8.3f}".rstrip()
                )
    lines += ["", summary_line(rows)]
    return "\n".join(lines) + "\n"


def summary_line(rows: list[dict]) -> str:
    ok = [row for row in rows if is_scored(row)]
    counts = {
        answer: sum(answer_cell(row) == answer for row in ok)
        for answer in dict.fromkeys(map(answer_cell, ok))
    }
    failed = len(rows) - len(ok)
    told = ", ".join(f"{n} {answer}" for answer, n in counts.items())
    reason = " (see their reason)" if failed else ""
    return f"{len(ok)} of {len(rows)} files scored ({told}), {failed} failed{reason}"


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
                "answer": answer_cell(row) if ok else "",
                "p_fake_calibrated": _fmt(row.get("p_fake_calibrated"), 6),
                "fake_spans": spans_text(row["fake_spans"]) if ok else "",
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
                "warnings": "; ".join(row.get("warnings", [])),
            }
        )
    return buffer.getvalue()


FILE_KEYS = ("path", "answer", "leans", "p_fake_calibrated", "fake_spans", "verdict", "score", "p_fake",
             "duration_s", "scored_s", "note", "warnings", "windows")  # fmt: skip


def format_json(rows: list[dict], decision: Decision, head: dict) -> str:
    """{"detector", "model_card", "policy", "score_definition", "score_direction", "answer_rule", "decision",
    "files": [...]}."""
    files = []
    for row in rows:
        if is_scored(row):
            llr = {"llr": row["llr"]} if row.get("llr") is not None else {}
            files.append(
                {
                    "status": "ok",
                    **{k: row[k] for k in FILE_KEYS},
                    **llr,
                    "summary": plain_sentence(row, head["bands"]),
                }
            )
        else:
            files.append({"path": row["path"], "status": "error", "reason": row["status"]})
    document = {
        "detector": head["detector"],
        "detector_choice": head["why"],
        "model_card": head["card"],
        "checkpoint": head["checkpoint"],
        "policy": head["policy"],
        "score_definition": head["definition"],
        "score_direction": "higher = more likely real",
        "answer_rule": head["rule"],
        "decision": decision.as_dict(),
        "files": files,
    }
    return json_text(document)


def expand_inputs(specs: list[str]) -> list[str]:
    """Audio paths from the command line: a .csv is a dataset file (its paths), anything else as
    `list_audio_files` expands it. FileNotFoundError / ValueError name the bad input."""
    paths: list[str] = []
    for spec in specs:
        if spec.lower().endswith(".csv") and Path(spec).is_file():
            paths += [item.path for item in load_dataset(spec)]
        else:
            paths += list_audio_files([spec])
    return unique_files(paths)  # one file given twice (two names, a link) is scored once


def add_warnings(rows: list[dict], max_seconds: float) -> None:
    """Each scored row's recording-condition warnings (audio/conditions.py; the language is stated once)."""
    for row in rows:
        if not is_scored(row):
            continue
        try:
            row["warnings"] = far_from_training(load_audio(row["path"], max_duration=max_seconds))
        except AudioError:  # it was decoded a moment ago; if not now, the scored row stands without warnings
            row["warnings"] = []


def finite_float(text: str) -> float:
    """argparse type: a float that is not NaN or infinite."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "paths",
        nargs="+",
        help="audio files, folders, globs, .txt/.lst list files, .csv dataset files, or - (a list on stdin)",
    )
    cli.add_checkpoint(
        parser,
        None,
        help="checkpoint file or registry name (default: the strongest detector present locally)",
    )
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
    cli.add_policy(parser, single_recording=True)
    cli.add_compute(parser, seed=None)
    cli.add_backend(parser)
    cli.add_fake_prior(parser)
    cli.add_operating_point(parser)
    cli.add_calibration_flags(parser, no_calibration="ignore the checkpoint's calibration (no answer then)")
    args = parser.parse_args(argv)
    if args.old_format is not None:
        parser.error(
            f"--format is now --output-format (--format is the dataset layout in the other scripts): "
            f"use --output-format {args.old_format}"
        )
    return args


def load_scorer(args: argparse.Namespace) -> tuple[Scorer, str]:
    """The detector (--checkpoint, else the strongest one present) and why it was chosen."""
    why = "--checkpoint"
    if args.checkpoint is None:
        args.checkpoint, why = best_local_detector()
    scorer = cli.load_scorer(args)
    return scorer, why


def main(args: argparse.Namespace) -> int:
    raw_names_on_stdio()
    try:
        files = expand_inputs(args.paths)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_NONE_SCORED
    if not files:
        print(f"error: no audio files found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_NONE_SCORED
    try:
        scorer, why = load_scorer(args)
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
            args.threshold, op=cli.operating_point(args), use_calibration=not args.no_calibration
        )
    except ValueError as err:
        print(f"error: {args.checkpoint}: {err}", file=sys.stderr)
        return EXIT_NONE_SCORED
    policy, definition = scorer.policy, scorer.definition
    rows = scorer.score([Item(str(path), None) for path in files])
    bands = add_answers(rows, decision, args.fake_prior)
    add_warnings(rows, policy.max_seconds)
    card = model_card(str(args.checkpoint))
    head = {
        "detector": card["name"],
        "why": why,
        "card": card_lines(card),
        "checkpoint": str(scorer.info.get("source") or args.checkpoint),
        "policy": policy.describe(),
        "definition": definition,
        "rule": rule_lines(decision, bands, public_name(str(args.checkpoint))),
        "verdict_rule": decision.describe(),
        "bands": bands,
    }
    if args.output_format != "table" or args.output is not None:  # the table states them in its header
        print("\n".join(header_lines(head)), file=sys.stderr)
    if args.output_format == "csv":
        text = format_csv(rows, decision)
    elif args.output_format == "json":
        text = format_json(rows, decision, head)
    else:
        text = format_table(rows, head)
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
