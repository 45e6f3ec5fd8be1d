"""The robustness stress test: a labelled set under every condition of a battery, scored by the one scoring
path, with each condition's metrics and verdicts against clean.

    result = stress(scorer, items, "runs/stress", conditions=battery)   # robustness.json, .png, report.md
    comparison = compare(["runs/stress_a", "runs/stress_b"], "runs/stress_ab")

Steps: (1) every condition is applied to every file through the on-disk cache (`battery_cache.prepare`,
parallel worker processes; a second detector reuses the audio); (2) every conditioned file is scored in one
`score_items` call, the path every other score of this project takes; (3) one calibration is held fixed
across conditions: the checkpoint's when it has one for these weights and this policy, otherwise one fitted
on the clean condition's scores (in-sample for clean, as the report says); (4) scores.csv gets one row per
(file, condition) with the `condition` column, then robustness.json, robustness.png and report.md are made
from that file.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from antispoof.audio import battery as cond
from antispoof.audio import battery_cache
from antispoof.audio.datasets import Item
from antispoof.evaluation import calibration as calib
from antispoof.evaluation import robustness
from antispoof.evaluation.metrics import ASVSPOOF5, LLR_NOTE, POSITIVE_CLASS, SCORE_DIRECTION, OperatingPoint
from antispoof.networks import InputPolicy
from antispoof.reports import robustness as report
from antispoof.scoring.decision import Decision, add_verdicts
from antispoof.scoring.scorefile import read_scores, write_scores
from antispoof.scoring.setup import Scorer
from antispoof.utils import atomic_write_text, write_json

STRESS_FILES = ("robustness.json", "robustness.png", "report.md")


def stress(
    scorer: Scorer,
    items: list[Item],
    out_dir: str | os.PathLike,
    *,
    conditions: list[cond.Condition],
    skipped_conditions: dict[str, str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    encode_workers: int = 0,
    n_bootstrap: int = 1000,
    calibration: dict | None = None,
    calibration_source: str = "",
    op: OperatingPoint = ASVSPOOF5,
    keep_audio: bool = False,
    extra: dict | None = None,
    progress: bool = True,
) -> dict:
    """Run the stress test of labelled `items` into `out_dir` with `scorer` (its model, input policy and
    scoring settings); returns robustness.json's content.

    `conditions` must start with "clean" (`battery.default_battery`); `skipped_conditions` ({name: reason},
    from `battery.available`) are recorded. `calibration`: the checkpoint's, already checked to apply
    (None: one is fitted on clean). `encode_workers`: processes that apply the conditions. `keep_audio`: copy
    every conditioned file into OUT/audio/<condition>/ to listen to.
    """
    if not conditions or conditions[0].name != "clean":
        raise ValueError(
            "the battery must start with the 'clean' condition: it is what the others are compared to"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else battery_cache.default_cache_dir()
    start = time.perf_counter()

    prepared = battery_cache.prepare([i.path for i in items], conditions, cache_dir, seed=seed,
                                     workers=encode_workers)  # fmt: skip
    prepare_s = time.perf_counter() - start
    n_computed = sum(p.computed for p in prepared.values())
    n_conditioned = len(items) * (len(conditions) - 1)  # clean is the files themselves
    print(
        f"conditions ready in {prepare_s:.1f} s: {n_computed} computed, {n_conditioned - n_computed} reused "
        f"from {cache_dir}"
    )
    rows = _score_conditions(scorer, items, conditions, prepared, progress)
    score_s = time.perf_counter() - start - prepare_s

    if calibration is None:
        calibration, calibration_source = _fit_on_clean(rows, scorer, op)
    decision = Decision(None, calibration_source, calibration, op) if calibration else None
    if decision:
        add_verdicts(rows, decision)
    write_scores(out_dir / "scores.csv", rows)
    rows = read_scores(out_dir / "scores.csv")  # metrics come from the score file, as written
    for row in rows:
        row["verdict"] = None  # the verdict is not a column: the same rule gives it back
    if decision:
        add_verdicts(rows, decision)

    result = _result(scorer, items, conditions, rows, seed, n_bootstrap, op, calibration, calibration_source,
                     decision)  # fmt: skip
    result.update(skipped_conditions=dict(skipped_conditions or {}), **(extra or {}))
    report.plot_robustness([(scorer.info.get("arch") or "detector", result)], out_dir / "robustness.png")
    if keep_audio:
        result["kept_audio"] = _keep_audio(prepared, items, conditions, out_dir / "audio")
    result["seconds"] = {
        "prepare_conditions": round(prepare_s, 1),
        "scoring": round(score_s, 1),
        "total": round(time.perf_counter() - start, 1),
    }
    write_json(out_dir / "robustness.json", result)
    atomic_write_text(out_dir / "report.md", "# Stress test report\n\n" + report.markdown_section(result))
    return result


def _score_conditions(scorer: Scorer, items: list[Item], conditions, prepared, progress: bool) -> list[dict]:
    """One score_items call over every conditioned file; one row per (condition, file), in that order, with
    the original path and the `condition`; a file without audio under a condition gets the reason."""
    to_score: dict[str, Item] = {}  # files of identical content share their conditioned audio: scored once
    for item in items:
        for c in conditions:
            p = prepared[(item.path, c.name)].path
            if p is not None:
                to_score.setdefault(p, Item(p, item.label, item.group))
    scored = scorer.score(list(to_score.values()), desc="scoring conditions", progress=progress)
    by_audio = {r["path"]: r for r in scored}
    rows = []
    for c in conditions:
        for item in items:
            done = prepared[(item.path, c.name)]
            if done.path:
                row = dict(by_audio[done.path])
            else:
                row = _unscored_row(done.reason, scorer.policy, scorer.kind)
            row.update(path=item.path, label=item.label, group=item.group, condition=c.name)
            rows.append(row)
    return rows


def _result(scorer, items, conditions, rows, seed, n_bootstrap, op, calibration, source, decision) -> dict:
    """robustness.json's content (without timings): the battery, the detector, the per-condition metrics."""
    per_condition = robustness.condition_metrics(rows, [c.name for c in conditions], n_bootstrap=n_bootstrap,
                                                 op=op)  # fmt: skip
    for c in conditions:
        per_condition[c.name] = {"family": c.family, "description": c.description, **per_condition[c.name]}
    version, _ = cond.ffmpeg_info()
    return {
        "battery": {
            "name": cond.BATTERY_NAME,
            "version": cond.BATTERY_VERSION,
            "seed": seed,
            "ffmpeg": version or "ffmpeg not found",
            "conditions": [c.as_dict() for c in conditions],
        },
        "checkpoint": scorer.info.get("source"),
        "arch": scorer.info.get("arch"),
        "weights_sha256": scorer.weights_sha256(),
        "n_files": len(items),
        "positive_class": POSITIVE_CLASS,
        "score_direction": SCORE_DIRECTION,
        "policy": scorer.policy.describe(),
        "score_kind": scorer.kind,
        "score_definition": scorer.definition,
        "operating_point": op.as_dict(),
        "calibration": _calibration_record(calibration, source),
        "verdict_rule": decision.describe() if decision else "none (no calibration could be fitted)",
        "metrics_note": "act_dcf and cllr are those of the calibrated llr, the calibration held fixed; "
        "raw_score holds them for the raw score. " + LLR_NOTE,
        "status_rule": robustness.STATUS_RULE,
        "conditions": per_condition,
        "worst_files": robustness.worst_files(rows),
        "most_flipped_files": robustness.most_flipped(rows),
    }


def _unscored_row(reason: str, policy: InputPolicy, kind: str) -> dict:
    """A scores.csv row for a file a condition could not be applied to (or that could not be read)."""
    return {
        "score": None,
        "p_fake": None,
        "logit_fake": None,
        "logit_real": None,
        "llr": None,
        "status": reason,
        "duration_s": None,
        "scored_s": None,
        "n_windows": 0,
        "note": "",
        "windows": [],
        "policy": policy.describe(),
        "score_kind": kind,
    }


def _fit_on_clean(rows: list[dict], scorer: Scorer, op: OperatingPoint) -> tuple[dict | None, str]:
    """A calibration fitted on the clean condition's scores (None, "" when none can be: one class missing,
    or scores that do not grow with realness)."""
    clean = [r for r in rows if r["condition"] == "clean" and r["status"] == "ok"]
    real = [r["score"] for r in clean if r["label"] == "real"]
    fake = [r["score"] for r in clean if r["label"] == "fake"]
    try:
        cal = calib.fit(
            real,
            fake,
            policy=scorer.policy.describe(),
            weights_sha256=scorer.weights_sha256(),
            config_sha256=scorer.config_sha256(),
            score_kind=scorer.kind,
            op=op,
            data="the clean condition of this stress run",
        )
    except calib.CalibrationError as err:
        print(
            f"warning: no calibration could be fitted on the clean condition ({err}); actDCF and Cllr are "
            "left out and no verdicts are given"
        )
        return None, ""
    return cal, "fitted on this run's clean condition"


def _calibration_record(cal: dict | None, source: str) -> dict:
    if cal is None:
        return {
            "source": None,
            "note": "none could be fitted, so actDCF, Cllr and verdict flips are left out",
        }
    in_sample = source.startswith("fitted")
    note = f"llr = {cal['scale']:.4g} * score {cal['offset']:+.4g}, " + (
        "fitted on the clean condition's scores of these files (the checkpoint has none), so clean's "
        "actDCF and Cllr are in-sample (optimistic) and the other conditions show what the channel does "
        "to a detector calibrated on clean audio"
        if in_sample
        else f"the checkpoint's calibration ({source})"
    )
    return {
        "source": source,
        "scale": cal["scale"],
        "offset": cal["offset"],
        "in_sample_for_clean": in_sample,
        "note": note,
    }


def _keep_audio(prepared, items: list[Item], conditions, folder: Path) -> str:
    """Copy each conditioned file to FOLDER/<condition>/<its path below the data's common folder>.wav."""
    root = os.path.commonpath([os.path.dirname(os.path.abspath(i.path)) for i in items])
    for c in conditions[1:]:  # clean: the files themselves
        for item in items:
            done = prepared[(item.path, c.name)]
            if done.path is None:
                continue
            rel = Path(os.path.relpath(os.path.abspath(item.path), root)).with_suffix(".wav")
            target = folder / c.name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(done.path, target)
    return str(folder)


def summary_line(result: dict, out_dir: str | os.PathLike) -> str:
    """One line: clean EER, the worst condition, what breaks, where the files are."""
    conds = result["conditions"]
    clean = conds["clean"]
    scored = {n: e for n, e in conds.items() if n != "clean" and e["eer"] is not None}
    worst = max(scored, key=lambda n: scored[n]["eer"]) if scored else None
    broken = [n for n, e in conds.items() if e["status"] == "broken"]
    degraded = [n for n, e in conds.items() if e["status"] == "degraded"]
    clean_eer = "n/a" if clean["eer"] is None else f"{100 * clean['eer']:.2f} %"
    text = f"clean EER {clean_eer}"
    if worst:
        text += f"; worst {worst} EER {100 * scored[worst]['eer']:.2f} %"
    text += f"; broken: {', '.join(broken) or 'none'}; degraded: {', '.join(degraded) or 'none'}"
    return f"{text} | {len(conds)} conditions, positive = real | {out_dir}/robustness.json"


def compare(run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike) -> dict:
    """Two stress runs side by side: robustness_compare.json, .png and .md in `out_dir`.

    Raises ValueError when a folder holds no robustness.json, or the runs used other batteries, seeds or
    numbers of files (their conditions would not be the same audio).
    """
    if len(run_dirs) != 2:
        raise ValueError(f"--compare takes two stress run folders, got {len(run_dirs)}")
    runs = []
    for d in run_dirs:
        path = Path(d) / "robustness.json"
        if not path.is_file():
            raise ValueError(f"{d} holds no robustness.json: run stress.py into it first")
        runs.append((Path(d).name, json.loads(path.read_text())))
    (la, a), (lb, b) = runs
    for key in ("name", "version", "seed"):
        if a["battery"][key] != b["battery"][key]:
            raise ValueError(
                f"the runs used different batteries ({key} {a['battery'][key]} vs {b['battery'][key]})"
                ": their conditions are not the same audio"
            )
    notes = []
    if a["n_files"] != b["n_files"]:
        raise ValueError(f"the runs scored different files ({a['n_files']} vs {b['n_files']})")
    if a["battery"]["ffmpeg"] != b["battery"]["ffmpeg"]:
        notes.append(
            f"Note: the codecs came from different ffmpeg builds ({a['battery']['ffmpeg']} vs "
            f"{b['battery']['ffmpeg']})."
        )
    rows = {}
    for name in [*a["conditions"], *(n for n in b["conditions"] if n not in a["conditions"])]:
        ea, eb = a["conditions"].get(name, {}), b["conditions"].get(name, {})
        eer_a, eer_b = ea.get("eer"), eb.get("eer")
        rows[name] = {
            "eer_a": eer_a,
            "eer_b": eer_b,
            "eer_difference": None if eer_a is None or eer_b is None else eer_b - eer_a,
            "act_dcf_a": ea.get("act_dcf"),
            "act_dcf_b": eb.get("act_dcf"),
            "status_a": ea.get("status", "absent"),
            "status_b": eb.get("status", "absent"),
        }
    comparison = {
        "runs": [
            {"label": label, "folder": str(d), "checkpoint": r["checkpoint"], "arch": r["arch"]}
            for (label, r), d in zip(runs, run_dirs, strict=True)
        ],
        "battery": f"{a['battery']['name']} battery v{a['battery']['version']}, seed {a['battery']['seed']}",
        "n_files": a["n_files"],
        "positive_class": POSITIVE_CLASS,
        "conditions": rows,
        "notes": notes,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.plot_robustness([(f"A: {la}", a), (f"B: {lb}", b)], out_dir / "robustness_compare.png")
    write_json(out_dir / "robustness_compare.json", comparison)
    atomic_write_text(out_dir / "robustness_compare.md", report.markdown_comparison(comparison))
    return comparison
