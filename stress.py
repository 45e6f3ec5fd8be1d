"""Stress test: how a detector holds up when its audio goes through codecs, a phone line, noise,
reverberation, gain changes and silence edits (positive class = real, higher score = more real).

    python stress.py --data data/sample --checkpoint aasist --out-dir runs/stress_aasist
    python stress.py --data DIR --checkpoint la --out-dir runs/stress_la --conditions codec telephone
    python stress.py --compare runs/stress_aasist runs/stress_aasist_l --out-dir runs/stress_compare

Every file of the labelled set goes through every condition of the default battery (antispoof/audio/
battery.py: MP3 32/64/128 kbit/s, AAC 64, Opus 12/24, Vorbis 32, telephone G.711 mu-law and GSM at 8 kHz,
G.722, white and speech-shaped noise at 20/10/5 dB SNR, `--noise DIR` files too, two synthetic rooms, -20 dB,
clipping, added and trimmed silence), is scored as evaluate_custom.py scores it, and each condition is
compared with clean. --conditions keeps some (names or families: codec, telephone, noise, reverb, gain,
silence). Conditions are deterministic (--seed); the conditioned audio is cached in --cache-dir (keyed by
battery version, condition and file content), so a second detector reuses it; a condition whose encoder this
ffmpeg lacks is skipped with the reason, and a file a condition cannot be applied to gets a row saying why.

Writes into --out-dir: scores.csv (one row per file and condition, with the `condition` column),
robustness.json (per condition: AUC, EER, minDCF, actDCF, Cllr with 95 % bootstrap intervals, the verdict
flip rate against clean and a status, holds / degraded / broken; the worst-affected files; the battery, seed
and ffmpeg version), robustness.png (EER and actDCF per condition against clean), report.md (the conditions
that break the detector), run.json, args.json and, with --keep-audio, audio/<condition>/ to listen to. The
calibration is held fixed across conditions: the checkpoint's, else one fitted on the clean condition.
Prints one line and the time taken. --compare A B writes robustness_compare.{json,png,md} of two runs into
--out-dir.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from antispoof import cli
from antispoof.audio import battery, battery_cache
from antispoof.audio.datasets import load_dataset, spread
from antispoof.constants import loader_workers
from antispoof.evaluation import calibration
from antispoof.runs import RunFolderError, prepare_run_dir, run_record
from antispoof.scoring import stress
from antispoof.utils import set_seed, write_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser(__doc__)
    cli.add_data(p, default="data/sample")
    p.add_argument(
        "--split", default=None, help="the split of a FoR / ASVspoof layout (as evaluate_custom.py)"
    )
    cli.add_checkpoint(p, "aasist")
    cli.add_model_config(p)
    p.add_argument(
        "--out-dir", type=Path, required=True, help="run folder (or, with --compare, where it goes)"
    )
    p.add_argument(
        "--conditions",
        nargs="+",
        default=None,
        metavar="NAME",
        help="conditions or families to run (default: the whole battery; clean is always run)",
    )
    p.add_argument(
        "--noise", type=Path, default=None, help="a folder of noise recordings: adds user_snr20/10/5"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=battery_cache.default_cache_dir(),
        help="where conditioned audio is cached ($ANTISPOOF_CACHE/conditions if set)",
    )
    p.add_argument(
        "--encode-workers",
        type=int,
        default=loader_workers() + 1,
        help="processes applying the conditions (0 = in this process)",
    )
    p.add_argument("--keep-audio", action="store_true", help="copy the conditioned audio into OUT/audio/")
    cli.add_policy(p)
    cli.add_compute(p)
    cli.add_backend(p)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95 %% intervals")
    cli.add_limit(p)
    cli.add_operating_point(p)
    p.add_argument(
        "--no-calibration",
        action="store_true",
        help="ignore the checkpoint's calibration: fit one on the clean condition instead",
    )
    cli.add_overwrite(p)
    p.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        default=None,
        metavar=("RUN_A", "RUN_B"),
        help="compare two stress runs instead of running one",
    )
    args = p.parse_args(argv)
    return args


def main(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    if args.compare:
        try:
            comparison = stress.compare(args.compare, args.out_dir)
        except ValueError as err:
            sys.exit(f"error: {err}")
        print(
            f"compared {args.compare[0]} (A) with {args.compare[1]} (B) | "
            f"{args.out_dir}/robustness_compare.md"
        )
        return comparison
    set_seed(args.seed)
    try:
        items = load_dataset(args.data, format=args.layout, split=args.split)
        chosen = battery.select(battery.default_battery(args.noise), args.conditions)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    items = spread(items, args.limit)
    usable, skipped = battery.available(chosen)
    for name, why in skipped.items():
        print(f"skipped condition {name}: {why}", file=sys.stderr)
    try:
        scorer = cli.load_scorer(args)
    except (OSError, ValueError, RuntimeError) as err:  # the loaders' messages say what to do
        sys.exit(f"error: cannot load checkpoint {args.checkpoint}: {err}")
    data = {"data": str(args.data), "layout": args.layout, "split": args.split, "limit": args.limit}
    record = run_record(
        scorer.model, scorer.info, checkpoint=args.checkpoint, settings=scorer.settings(), data=data
    )
    try:
        prepare_run_dir(args.out_dir, record, resume=False, overwrite=args.overwrite)
    except RunFolderError as err:
        sys.exit(f"error: {err}")
    write_json(args.out_dir / "args.json", vars(args))
    cal, where = None, ""
    if not args.no_calibration:
        try:
            cal, where = scorer.calibration()
        except calibration.CalibrationError as err:
            print(
                f"warning: the checkpoint's calibration is not used ({err}); one is fitted on clean instead",
                file=sys.stderr,
            )
    n_real = sum(i.label == "real" for i in items)
    print(
        f"{len(items)} files ({n_real} real, {len(items) - n_real} fake) x {len(usable)} conditions; "
        f"checkpoint {scorer.info['source']} ({scorer.info['arch']}); {scorer.definition}"
    )
    result = stress.stress(
        scorer,
        items,
        args.out_dir,
        conditions=usable,
        skipped_conditions=skipped,
        cache_dir=args.cache_dir,
        seed=args.seed,
        encode_workers=args.encode_workers,
        n_bootstrap=args.bootstrap,
        calibration=cal,
        calibration_source=where,
        op=cli.operating_point(args),
        keep_audio=args.keep_audio,
        extra={"data": str(args.data)},
    )
    print(f"{stress.summary_line(result, args.out_dir)} | took {time.perf_counter() - start:.0f} s")
    return result


if __name__ == "__main__":
    main(parse_args())
