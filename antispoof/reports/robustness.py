"""The stress test's figure and report section: EER and actDCF per condition against clean, and which
conditions break the detector (robustness.json, antispoof.evaluation.robustness)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from antispoof.reports.plots import plt, save_figure

STATUS_MARK = {"broken": "x", "degraded": "!", "holds": "", "reference": "", "unscored": "?"}
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_robustness(runs: list[tuple[str, dict]], path: Path) -> None:
    """Horizontal bars of EER (%) and actDCF per condition, one colour per run (`(label, robustness.json)`),
    95 % intervals as whiskers and each run's clean value as a dashed line; "x" marks a broken condition,
    "!" a degraded one."""
    names = list(runs[0][1]["conditions"])
    for _, result in runs[1:]:
        names += [n for n in result["conditions"] if n not in names]
    families = {n: r["conditions"][n]["family"] for _, r in runs for n in r["conditions"]}
    y = np.arange(len(names))
    height = 0.8 / len(runs)
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.28 * len(names) + 1.6), sharey=True, layout="constrained")
    panels = (("eer", 100.0, "EER (%)"), ("act_dcf", 1.0, "actDCF (calibration held fixed)"))
    for ax, (key, scale, xlabel) in zip(axes, panels, strict=True):
        for k, (label, result) in enumerate(runs):
            color = COLORS[k % len(COLORS)]
            conds = result["conditions"]
            values = np.array([_get(conds, n, key) for n in names], dtype=float) * scale
            lo_hi = [conds.get(n, {}).get(f"{key}_ci95") for n in names]
            err = np.array(
                [
                    [v - lh[0] * scale, lh[1] * scale - v] if lh and np.isfinite(v) else [0, 0]
                    for v, lh in zip(values, lo_hi, strict=True)
                ]
            ).T
            offset = y - 0.4 + height * (k + 0.5)
            ax.barh(
                offset,
                np.nan_to_num(values),
                height,
                xerr=np.maximum(err, 0),
                color=color,
                alpha=0.85,
                error_kw={"lw": 0.8, "capsize": 1.5},
                label=label,
            )
            clean = _get(conds, "clean", key) * scale
            if np.isfinite(clean):
                ax.axvline(clean, color=color, ls="--", lw=0.9)
            for yi, n in zip(offset, names, strict=True):  # the status, right of the actDCF panel
                mark = STATUS_MARK.get(conds.get(n, {}).get("status", ""), "")
                if mark and key == "act_dcf":
                    ax.annotate(mark, xy=(1.0, yi), xycoords=("axes fraction", "data"), xytext=(3, 0),
                                textcoords="offset points", va="center", fontsize=8, fontweight="bold",
                                color=color, annotation_clip=False)  # fmt: skip
        if key == "act_dcf":
            ax.axvline(1.0, color="0.5", ls=":", lw=0.9)  # no better than always the same answer
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [f"{n}  ({families[n]})" for n in names], fontsize=7)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7, loc="lower right")
    first = runs[0][1]
    fig.suptitle(
        f"Robustness ({first['battery']['name']} battery v{first['battery']['version']}, "
        f"{first['n_files']} files): dashed = clean, x = broken, ! = degraded",
        fontsize=9,
    )
    save_figure(fig, path)


def _get(conds: dict, name: str, key: str) -> float:
    value = conds.get(name, {}).get(key)
    return np.nan if value is None else float(value)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _ci(entry: dict, key: str, scale: float = 100.0, fmt: str = "{:.1f}") -> str:
    lo_hi = entry.get(f"{key}_ci95")
    return "" if not lo_hi else f" [{fmt.format(lo_hi[0] * scale)}, {fmt.format(lo_hi[1] * scale)}]"


def markdown_section(result: dict, figure: str = "robustness.png") -> str:
    """The report.md section of one stress run: what was run, the table, what breaks, the worst files."""
    conds = result["conditions"]
    cal = result["calibration"]
    broken = [n for n, e in conds.items() if e["status"] == "broken"]
    degraded = [n for n, e in conds.items() if e["status"] == "degraded"]
    data = f" ({result['data']})" if result.get("data") else ""
    lines = [
        "## Robustness to the channel (stress.py)",
        "",
        f"{result['n_files']} files{data} under the "
        f"**{result['battery']['name']}** battery, version "
        f"{result['battery']['version']}, seed {result['battery']['seed']} ({result['battery']['ffmpeg']}); "
        f"checkpoint {result['checkpoint']} ({result['arch']}); {result['score_definition']}. "
        "Positive class = real. Calibration held fixed across conditions: " + cal["note"] + ".",
        "",
        f"![robustness]({figure})",
        "",
    ]
    if broken:
        lines.append(
            f"**Breaks the detector** (calibrated actDCF >= 1: its verdicts are worth no more than "
            f"answering the same for every file): {', '.join(broken)}."
        )
    if degraded:
        lines.append(
            f"**Degrades it** (EER or actDCF worse than clean with disjoint 95 % intervals, or >= 10 % "
            f"of the verdicts flipped): {', '.join(degraded)}."
        )
    if not broken and not degraded:
        lines.append("No condition breaks or measurably degrades the detector on these files.")
    if result.get("skipped_conditions"):
        lines.append(
            "Skipped: " + "; ".join(f"{n} ({why})" for n, why in result["skipped_conditions"].items()) + "."
        )
    lines += [
        "",
        "| condition | family | EER % [95 % CI] | AUC | minDCF | actDCF [95 % CI] | Cllr | verdict flips "
        "| status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, e in conds.items():
        flips = (
            "-"
            if e["flip_rate"] is None
            else f"{100 * e['flip_rate']:.0f} % ({e['flips_real_to_fake']} real->fake, "
            f"{e['flips_fake_to_real']} fake->real)"
        )
        auc = "-" if e["auc"] is None else f"{e['auc']:.3f}"
        min_dcf = "-" if e["min_dcf"] is None else f"{e['min_dcf']:.3f}"
        act = "-" if e["act_dcf"] is None else f"{e['act_dcf']:.3f}{_ci(e, 'act_dcf', 1.0, '{:.2f}')}"
        cllr = "-" if e["cllr"] is None else f"{e['cllr']:.3f}"
        skipped = f", {e['n_skipped']} skipped" if e.get("n_skipped") else ""
        lines.append(
            f"| {name} | {e['family']}{skipped} | {_pct(e['eer'])}{_ci(e, 'eer')} | {auc} | {min_dcf} | "
            f"{act} | {cllr} | {flips} | {e['status']} |"
        )
    if result.get("worst_files"):
        lines += ["", "Files moved furthest towards the wrong class (score change in score units):", ""]
        for w in result["worst_files"]:
            lines.append(
                f"- `{w['path']}` ({w['label']}) under {w['condition']}: {w['clean_score']:.3f} -> "
                f"{w['score']:.3f}, verdict {w['clean_verdict']} -> {w['verdict']}"
            )
    return "\n".join(lines) + "\n"


def markdown_comparison(comparison: dict, figure: str = "robustness_compare.png") -> str:
    """The report section of `stress.py --compare`: both runs' EER and actDCF per condition side by side."""
    a, b = comparison["runs"]
    lines = [
        "## Robustness compared (stress.py --compare)",
        "",
        f"A = {a['label']} ({a['checkpoint']}), B = {b['label']} ({b['checkpoint']}); "
        f"{comparison['battery']}; {comparison['n_files']} files.",
        "",
        f"![robustness compared]({figure})",
        "",
        "| condition | EER % A | EER % B | B - A (points) | actDCF A | actDCF B | status A | status B |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in comparison["conditions"].items():
        diff = "-" if row["eer_difference"] is None else f"{100 * row['eer_difference']:+.1f}"
        act = [("-" if v is None else f"{v:.3f}") for v in (row["act_dcf_a"], row["act_dcf_b"])]
        lines.append(
            f"| {name} | {_pct(row['eer_a'])} | {_pct(row['eer_b'])} | {diff} | {act[0]} | {act[1]} | "
            f"{row['status_a']} | {row['status_b']} |"
        )
    for note in comparison["notes"]:
        lines.append(f"\n{note}")
    return "\n".join(lines) + "\n"
