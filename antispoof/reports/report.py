"""The analysis report of an evaluation run (analyse.py): RUN/report.md, its figures, the printed summary.

    found = write_report("runs/custom_for", compare="runs/custom_la")   # -> runs/custom_for/report.md

It analyses an evaluation run as a reviewer would: what the numbers mean, where the detector fails, whether
the data let it score something other than spoofing, and (with a comparison run) what changed and why.

What it reads and what report.md's four sections hold: analyse.py's docstring (its --help). The numbers
come from analysis.py (breakdowns, confounds) and compare.py (the change); this module lays them out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import antispoof.reports.analysis as an
import antispoof.reports.attributes as attributes
import antispoof.reports.compare as cmp
from antispoof.audio.decode import SAMPLE_RATE
from antispoof.evaluation.metric_table import METRICS
from antispoof.evaluation.metrics import polarity_message
from antispoof.scoring.decision import DEFAULT_P_FAKE_THRESHOLD
from antispoof.utils import atomic_write_text


def write_report(
    run_dir: str | os.PathLike,
    compare: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    workers: int = 1,
    condition: str | None = None,
) -> dict:
    """Write RUN/report.md (and its figures), print its summary, return the findings (confounds, diagnosis,
    ...). `compare`: an earlier run folder (section 4); `data`: where the audio is now, if it moved;
    `workers`: processes reading the audio attributes; `condition`: the condition of a stress-test run
    (stress.py) to analyse, into RUN/analysis_<condition>/report.md (a stress run given as `compare` is
    compared through its clean condition). FileNotFoundError / ValueError (a damaged metrics.json or
    scores.csv, a run without AUC/EER) when the run cannot be reported on."""
    run = an.Run(run_dir, condition)
    before = an.Run(compare, clean_if_stress=True) if compare is not None else None
    if run.metrics.get("auc") is None or run.threshold is None:
        raise ValueError(f"{run.folder}/metrics.json has no AUC/EER (it needs scored real and fake files)")
    paths = [r["path"] for r in run.rows] + ([r["path"] for r in before.rows] if before else [])
    attrs = attributes.file_attributes(paths, data, run.folder / "attributes.csv", workers)
    # A condition such as silence_pad changes the duration on purpose: only unconditioned rows are checked.
    unconditioned = [
        r for r in run.rows + (before.rows if before else []) if r.get("condition") in (None, "clean")
    ]
    moved = attributes.check_durations(unconditioned, attrs)
    if moved:
        print(
            f"warning: {moved} file(s) found now are not the scored ones (their duration differs from "
            f"scores.csv's; --data {data} may point at other files of the same name): their audio "
            "attributes are left out",
            file=sys.stderr,
        )
    found = {
        "headline": headline(run),
        "groups": an.groups(run),
        "breakdown": an.breakdown(run, attrs),
        "confounds": an.confounds(run, attrs),
        "unreadable": sum(attrs[r["path"]].get("error") is not None for r in run.rows),
    }
    if before is not None:
        pair = cmp.paired(before, run)
        changes = cmp.subset_changes(before, run, attrs)
        found.update(
            metric_changes=cmp.metric_changes(before, run),
            subset_changes=changes,
            pair=pair,
            diagnosis=cmp.diagnose(before, run, pair, changes),
        )
    figures = write_figures(run, before, attrs, found)
    report = render(run, before, attrs, found, figures)
    run.out_dir.mkdir(exist_ok=True)
    atomic_write_text(run.out_dir / "report.md", report)
    print(summary(run, found))
    return found


# --------------------------------------------------------------------------------------------- headline
def headline(run: an.Run) -> list[str]:
    """The headline bullets: performance, the operating point in plain numbers, DCF/Cllr, polarity."""
    m = run.metrics
    n_real, n_fake = int(run.labels.sum()), int(len(run.labels) - run.labels.sum())
    out = [
        f"AUC {m['auc']:.4f}{ci(m.get('auc_ci95'))}, EER {100 * m['eer']:.2f} %"
        f"{ci(m.get('eer_ci95'), 100, '.2f')} on {n_real} real and {n_fake} fake files (95 % bootstrap "
        "intervals; positive class = real, higher score = more real)."
    ]
    fa, fr = an.error_rates(run.labels, run.verdict_real())
    wrong = (fa * n_fake + fr * n_real) / (n_real + n_fake)
    out.append(
        f"Operating threshold {run.threshold:.3f}, {run.threshold_source}: a file is called real when its "
        f"score is at or above it. There, {fa:.1f} of every 100 fakes are accepted as real (false accepts) "
        f"and {fr:.1f} of every 100 real files are rejected as fake (false rejects): {wrong:.1f} of every "
        "100 files of this mix get the wrong verdict."
    )
    if m.get("threshold") is None and run.llr is None:  # what score.py and the app answer without calibration
        fa, fr = an.error_rates(run.labels, run.p_fake < DEFAULT_P_FAKE_THRESHOLD)
        out.append(
            f"score.py and the app, with no calibration in the checkpoint, call a file fake when p_fake >= "
            f"{DEFAULT_P_FAKE_THRESHOLD}: on these files that accepts {fa:.1f} of every 100 fakes and "
            f"rejects {fr:.1f} of every 100 real files (calibrate on data like yours to do better)."
        )
    out += dcf_lines(m)
    real_med = float(np.median(run.scores[run.labels == 1]))
    fake_med = float(np.median(run.scores[run.labels == 0]))
    if m["auc"] >= 0.5:
        out.append(
            f"Polarity: the scores point the right way: real files score higher than fakes (median "
            f"{real_med:.3f} vs {fake_med:.3f}). An AUC far below 0.5 would mean inverted labels or scores."
        )
    else:
        out.append(f"**POLARITY WARNING**: {m.get('polarity_warning') or polarity_message(m['auc'])}")
    if m.get("n_skipped"):
        out.append(
            f"{m['n_skipped']} files could not be scored and are left out (metrics.json skipped_reasons)."
        )
    if min(n_real, n_fake) < 100:
        out.append(
            f"With {min(n_real, n_fake)} files in the smaller class the intervals are wide: read small "
            "differences between runs, groups or attributes as noise."
        )
    return out


def dcf_lines(m: dict) -> list[str]:
    """minDCF/actDCF/Cllr as metrics.json has them (none for runs that predate them), and what they mean."""
    names = [x for x in METRICS if x.key in ("min_dcf", "act_dcf", "cllr", "min_cllr") and not x.calibrated]
    have = [
        f"{x.label} {m[x.key]:.4f}{' ' + x.unit if x.unit else ''}{ci(m.get(f'{x.key}_ci95'), 1, '.4f')}"
        for x in names
        if m.get(x.key) is not None
    ]
    if not have:
        return []
    rule = (m.get("operating_point") or {}).get("rule", "ASVspoof 5 Track 1 costs")
    out = [
        f"{', '.join(have)} at {rule} (lower is better; 1 = no better than always answering the same). "
        "actDCF and Cllr read the score as a log-likelihood ratio: on a raw score they measure "
        "miscalibration as much as separation; minDCF and minCllr do not depend on calibration."
    ]
    cal = m.get("calibrated")
    if cal:
        out.append(
            f"Calibrated LLRs: actDCF {cal['act_dcf']:.4f}, Cllr {cal['cllr']:.4f} bits; their Bayes "
            f"decisions (real when llr >= {cal['llr_threshold']:.3f}) accept "
            f"{100 * cal['far_at_llr_threshold']:.1f} of every 100 fakes and reject "
            f"{100 * cal['frr_at_llr_threshold']:.1f} of every 100 real files."
        )
    return out


def ci(lo_hi, scale: float = 1.0, spec: str = ".3f") -> str:
    return f" [{lo_hi[0] * scale:{spec}}, {lo_hi[1] * scale:{spec}}]" if lo_hi else ""


# ---------------------------------------------------------------------------------------------- figures
def write_figures(run: an.Run, before: an.Run | None, attrs: dict, found: dict) -> dict[str, str]:
    """The report's PNGs beside report.md; returns {what: file name}."""
    import antispoof.reports.plots as plots

    out = {}
    real, fake = run.scores[run.labels == 1], run.scores[run.labels == 0]
    panels = [("all files", real, fake)]
    for g in found["groups"][:11]:  # hardest first; 12 panels at most
        label, group = g["group"].split("/", 1)
        own = np.array([r["label"] == label and r.get("group") == group for r in run.rows])
        mine = run.scores[own]
        panels.append(
            (
                f"{g['group']} vs all {'fakes' if label == 'real' else 'real'}",
                mine if label == "real" else real,
                mine if label == "fake" else fake,
            )
        )
    subject = plots.subject(run.metrics)  # the model and the data, in every figure's title
    plots.plot_score_panels(panels, run.threshold, run.out_dir / "report_scores.png", subject)
    out["scores"] = "report_scores.png"
    durations = np.array([attrs[r["path"]].get("duration_s") or np.nan for r in run.rows], dtype=np.float64)
    known = np.isfinite(durations) & (durations > 0)
    if known.any():
        path = run.out_dir / "report_duration.png"
        plots.plot_score_vs_duration(
            durations[known], run.scores[known], run.labels[known], run.threshold, path,
            input_seconds=head_seconds(run.metrics.get("policy")), subject=plots.subject(run.metrics),
        )  # fmt: skip
        out["duration"] = path.name
    if before is not None and len(found["pair"]["paths"]):
        pair = found["pair"]
        path = run.out_dir / "report_change.png"
        plots.plot_before_after(
            pair["before"], pair["after"], pair["label_after"], (before.threshold, run.threshold), path,
            subject=f"{before.name} -> {run.name} on {plots.subject(run.metrics).split(' on ', 1)[-1]}",
        )  # fmt: skip
        out["change"] = path.name
    return out


# ----------------------------------------------------------------------------------------------- report


def head_seconds(policy: str | None) -> float | None:
    """Seconds of each file the model sees under a "head n=N" policy (InputPolicy.describe); None for
    windows, whole files or a run that does not say."""
    if not policy or not policy.startswith("head n="):
        return None
    return int(policy.split()[1].removeprefix("n=")) / SAMPLE_RATE


def render(run: an.Run, before: an.Run | None, attrs: dict, found: dict, figures: dict) -> str:
    """report.md: plain Markdown (tables, bullets, images), readable on GitHub and in a terminal."""
    m = run.metrics
    md = [f"# Analysis of `{run.folder}`", ""]
    md.append(
        f"Checkpoint `{m.get('checkpoint', '?')}` on `{m.get('data', '?')}`; positive class = real, higher "
        f"score = more real; a file is called real when its score is at or above {run.threshold:.3f}."
    )
    if run.condition:
        what = m.get("condition_text") or "see robustness.json"
        md += [
            "",
            f"Condition `{run.condition}` of this stress-test run ({what}): every file as the detector heard "
            "it after the condition; the audio attributes below are those of the original files. The run's "
            "robustness report is `../report.md`.",
        ]
    scoring = m.get("score_definition") or m.get("policy") or m.get("aggregation")
    if scoring:
        md += ["", f"Scoring: {scoring}."]
    md += ["", "## 1. Headline", ""] + [f"- {line}" for line in found["headline"]]
    md += ["", f"![score histograms per class and per group]({figures['scores']})", ""]

    md += failures_section(run, attrs, found, figures) + confounds_section(found)
    if before is not None:
        md += render_change(run, before, found, figures)
    return "\n".join(md) + "\n"


def failures_section(run: an.Run, attrs: dict, found: dict, figures: dict) -> list[str]:
    """Section 2 of report.md: per group, per audio attribute, and the files it gets most wrong."""
    md = []
    md += ["## 2. Where it fails", "", "### Per group", ""]
    if found["groups"]:
        md += [
            "Each group against every file of the other class (as ASVspoof's per-attack EER), hardest first.",
            "",
        ]
        rows = [
            [
                g["group"],
                g["n"],
                f"{g['auc']:.4f}",
                f"{100 * g['eer']:.2f}",
                num(g["errors"], ".1f"),
                num(g["median"], ".3f"),
            ]
            for g in found["groups"]
        ]
        md += table("group|files|AUC|EER (%)|wrong verdicts / 100|median score", "lrrrrr", rows)
    else:
        md.append(
            "No groups: put fakes in one sub-folder per generator (`fake/xtts/`, ...) or give a CSV a "
            "`group` column to see which generator it misses."
        )
    md += ["", "### Per attribute, read from the audio", ""]
    if found["unreadable"]:
        md += [f"The attributes of {found['unreadable']} files could not be read (see attributes.csv).", ""]
    single = [f"{b['title']} {b['rows'][0]['value']}" for b in found["breakdown"] if len(b["rows"]) == 1]
    if single:
        md += [f"Every file has the same {', '.join(single)}.", ""]
    rows = [
        [
            b["title"] if k == 0 else "",
            r["value"],
            r["n_real"],
            r["n_fake"],
            num(r["auc"], ".4f"),
            num(r["fa"], ".1f"),
            num(r["fr"], ".1f"),
        ]
        for b in found["breakdown"]
        if len(b["rows"]) > 1
        for k, r in enumerate(b["rows"])
    ]
    md += table(
        "attribute|value|real|fake|AUC within|false accepts / 100 fakes|false rejects / 100 reals",
        "llrrrrr",
        rows,
    )
    if "duration" in figures:
        md += ["", f"![score vs duration]({figures['duration']})"]
    md += ["", "### Files it gets most wrong", ""]
    for title, idx in zip(
        ("Fakes scored most real", "Real files scored most fake"), an.worst_files(run), strict=True
    ):
        md += [f"{title}:", ""]
        md += table(
            "file|group|score|verdict|format|duration|loudness|silence lead / trail",
            "llrlllrr",
            [file_row(run, i, attrs) for i in idx],
        )
        md.append("")

    return md


def confounds_section(found: dict) -> list[str]:
    """Section 3 of report.md: can an attribute alone tell real from fake, and what is left without it."""
    md = []
    md += ["## 3. Confound check", ""]
    md.append(
        "Can an attribute of the files alone tell real from fake? Its AUC alone (numbers in both directions, "
        "categories in their best order) says how well; the detector's AUC counting only real/fake pairs "
        "with the same attribute value says how much of its separation is left once the attribute cannot "
        "help."
    )
    md.append("")
    for c in found["confounds"]:
        if c.get("message"):
            md += [f"> **CONFOUND WARNING ({c['title']})**: {c['message']}", ""]
    rows = [
        [
            c["title"],
            f"{c['alone_auc']:.3f}{' **!**' if c['warning'] else ''}",
            c["direction"],
            num(c["stratified_auc"], ".3f"),
            f"{c['pairs']['pairs']:,} ({c['pairs']['real']} real, {c['pairs']['fake']} fake files)",
        ]
        for c in found["confounds"]
    ]
    md += table(
        "attribute|AUC of the attribute alone|how|detector AUC, attribute held fixed|pairs compared",
        "lrlrr",
        rows,
    )
    md.append("")
    return md


def render_change(run: an.Run, before: an.Run, found: dict, figures: dict) -> list[str]:
    """Section 4: the change from the earlier run."""
    md = [f"## 4. Change from `{before.folder}`", ""]
    md.append(
        f"Before: `{before.metrics.get('checkpoint', '?')}`; after: `{run.metrics.get('checkpoint', '?')}`."
    )
    if before.metrics.get("data") != run.metrics.get("data"):
        md.append(
            f"**The runs scored different data** (`{before.metrics.get('data')}` vs "
            f"`{run.metrics.get('data')}`): not a like-for-like comparison."
        )
    if before.metrics.get("policy") != run.metrics.get("policy"):
        md.append(
            f"**The runs scored the files differently** (input policy `{before.metrics.get('policy')}` vs "
            f"`{run.metrics.get('policy')}`): part of the change may come from that."
        )
    md += ["", "**Diagnosis**:", ""] + [f"- {text}" for _, text in found["diagnosis"]] + [""]
    rows = []
    for c in found["metric_changes"]:
        spec = c["spec"]
        overlap = "" if c["overlap"] is None else ("yes" if c["overlap"] else "**no**")
        rows.append(
            [
                c["metric"],
                f"{c['before']:{spec}}{ci(c['ci_before'], 1, spec)}",
                f"{c['after']:{spec}}{ci(c['ci_after'], 1, spec)}",
                f"{c['change']:+{spec}}",
                overlap,
            ]
        )
    names = f"before: {before.name}|after: {run.name}"  # labelled by checkpoint, never by a guess ("LA")
    md += table(f"metric|{names}|change|95 % intervals overlap", "lrrrl", rows)
    md += [
        "",
        "Per group and attribute value (AUC; a one-class group against every file of the other class):",
        "",
    ]
    changes = sorted(found["subset_changes"], key=lambda c: c["change"] if c["change"] is not None else 0)
    rows = [
        [
            c["subset"],
            c["n_after"],
            num(c["before"], ".4f"),
            num(c["after"], ".4f"),
            num(c["change"], "+.4f"),
            f"{num(c['rest_before'], '.4f')} -> {num(c['rest_after'], '.4f')}",
        ]
        for c in changes
    ]
    md += table("files|n|AUC before|AUC after|change|rest of the files, before -> after", "lrrrrl", rows)
    pair = found["pair"]
    flip = pair["verdict_before"] != pair["verdict_after"]
    right = pair["verdict_after"] == (pair["label_after"] == 1)  # judged by the later run's labels
    md += [
        "",
        f"**Verdict flips**: {int(flip.sum())} of the {len(flip)} files both runs scored changed verdict "
        f"({int((flip & right).sum())} now right, {int((flip & ~right).sum())} now wrong), each run at its "
        "own threshold.",
        "",
    ]
    order = np.argsort(-np.abs(pair["after"] - pair["before"]) * flip)[: min(10, int(flip.sum()))]
    rows = [
        [
            short(pair["paths"][i]),
            "real" if pair["label_after"][i] else "fake",
            f"{pair['before'][i]:.3f}",
            f"{pair['after'][i]:.3f}",
            "right" if right[i] else "wrong",
        ]
        for i in order
    ]
    if rows:
        md += table("file|label|score before|score after|verdict now", "llrrl", rows)
    if "change" in figures:
        md += ["", f"![per-file score before and after]({figures['change']})"]
    return md + [""]


def table(header: str, align: str, rows: list[list]) -> list[str]:
    """A Markdown table: `header` "a|b|c", `align` one l/r per column, cells escaped."""
    rule = "|".join("--:" if a == "r" else "---" for a in align)
    return [f"| {header.replace('|', ' | ')} |", f"|{rule}|"] + [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in rows
    ]


def file_row(run: an.Run, i: int, attrs: dict) -> list:
    r, a = run.rows[i], attrs[run.rows[i]["path"]]
    real = bool(run.verdict_real()[i])
    verdict = ("real" if real else "fake") + (" (right)" if real == bool(run.labels[i]) else " (wrong)")
    silence = a.get("error") or ""
    if a.get("lead_silence_s") is not None:
        silence = f"{a['lead_silence_s']:.2f} / {a['trail_silence_s']:.2f} s"
    loud = f"{a['loudness_dbfs']:.1f} dBFS" if a.get("loudness_dbfs") is not None else ""
    dur = f"{a['duration_s']:.2f} s" if a.get("duration_s") is not None else ""
    return [
        short(r["path"]),
        r.get("group") or "",
        f"{r['score']:.3f}",
        verdict,
        a.get("format") or "",
        dur,
        loud,
        silence,
    ]


def short(path: str) -> str:
    """The last three parts of a path (class folder, sub-folder, file), enough to find it."""
    return "/".join(Path(path).parts[-3:])


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def num(v, spec: str) -> str:
    return "n/a" if v is None else f"{v:{spec}}"


# ---------------------------------------------------------------------------------------------- summary
def summary(run: an.Run, found: dict) -> str:
    """What is printed: the headline, loud confound warnings, the diagnosis, where the report is."""
    lines = [line.replace("**", "") for line in found["headline"]]
    if run.condition:
        note = f"Condition {run.condition} of a stress-test run: scores of the conditioned audio; "
        lines.insert(0, note + "the audio attributes below are the original files'")
    warnings = [
        f"CONFOUND WARNING ({c['title']}): {c['message']}" for c in found["confounds"] if c.get("message")
    ]
    if warnings:
        lines += ["!" * 100, *warnings, "!" * 100]
    for _, text in found.get("diagnosis", []):
        lines.append(f"change: {text}")
    if found["unreadable"]:
        lines.append(
            f"note: the attributes of {found['unreadable']} files could not be read (missing audio? "
            "pass --data DIR); RUN/attributes.csv says why"
        )
    lines.append(f"report: {run.out_dir / 'report.md'}")
    return "\n".join(lines)
