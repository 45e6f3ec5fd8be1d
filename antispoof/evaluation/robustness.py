"""Robustness metrics: how each channel condition changes a detector's metrics and verdicts against clean.

    per_condition = condition_metrics(rows, conditions, n_bootstrap=1000, op=op)
    worst = worst_files(rows, limit=10)

`rows` are scores.csv rows of a stress run: one per (file, condition), with `condition`, `score`, the
calibrated `llr` and `verdict` of one calibration held fixed across conditions (the question is whether the
calibrated verdict still holds on another channel, so the map is never refitted per condition). Each
condition gets `metrics_from_rows`'s numbers (AUC, EER, minDCF, actDCF, Cllr with 95 % bootstrap intervals,
positive class = real), the verdict flip rate against clean on the files scored under both, and a status:
- "broken": actDCF of the calibrated verdicts >= 1, i.e. they cost as much as or more than answering
  "real" (or "fake") for every file without listening;
- "degraded": EER or actDCF worse than clean's with disjoint 95 % intervals, or DEGRADED_FLIP_RATE of the
  verdicts flipped;
- "holds": neither.
"""

from __future__ import annotations

from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint, metrics_from_rows

DEGRADED_FLIP_RATE = 0.10  # a tenth of the verdicts changed by the channel alone
BROKEN_ACT_DCF = 1.0  # a normalized cost of 1 = no better than always giving the same answer
STATUS_RULE = (
    f"broken: calibrated actDCF >= {BROKEN_ACT_DCF:g}; degraded: EER or actDCF worse than clean's with "
    f"disjoint 95 % intervals, or >= {100 * DEGRADED_FLIP_RATE:g} % of the verdicts flipped; holds: neither"
)
KEPT = (
    "auc",
    "eer",
    "eer_threshold",
    "min_dcf",
    "n_real",
    "n_fake",
    "n_files",
    "n_scored",
    "n_skipped",
    "skipped_reasons",
    "polarity_warning",
    "note",
)


def condition_metrics(
    rows: list[dict], conditions: list[str], *, n_bootstrap: int = 1000, op: OperatingPoint = ASVSPOOF5
) -> dict[str, dict]:
    """{condition: its metrics, flips against clean and status}, in the order of `conditions` ("clean" first).

    actDCF and Cllr are those of the calibrated `llr` (calibration held fixed); `raw_score` keeps the raw
    score's actDCF and Cllr (which read the score as an LLR) for reference.
    """
    by_condition = {c: [r for r in rows if r["condition"] == c] for c in conditions}
    clean = {r["path"]: r for r in by_condition.get("clean", []) if r["status"] == "ok"}
    out = {}
    for name, cond_rows in by_condition.items():
        m = metrics_from_rows(cond_rows, n_bootstrap=n_bootstrap, op=op)
        entry = {k: m.get(k) for k in KEPT}
        entry["auc_ci95"], entry["eer_ci95"], entry["min_dcf_ci95"] = (
            m["auc_ci95"],
            m["eer_ci95"],
            m["min_dcf_ci95"],
        )
        cal = m.get("calibrated") or {}
        entry["act_dcf"], entry["act_dcf_ci95"] = cal.get("act_dcf"), cal.get("act_dcf_ci95")
        entry["cllr"], entry["cllr_ci95"] = cal.get("cllr"), cal.get("cllr_ci95")
        entry["frr_at_llr_threshold"] = cal.get("frr_at_llr_threshold")
        entry["far_at_llr_threshold"] = cal.get("far_at_llr_threshold")
        entry["raw_score"] = {"act_dcf": m.get("act_dcf"), "cllr": m.get("cllr")}
        entry.update(flips(clean, cond_rows))
        out[name] = entry
    reference = out.get("clean")
    for name, entry in out.items():
        entry["status"] = status(entry, reference) if name != "clean" else "reference"
        if reference and entry["eer"] is not None and reference["eer"] is not None:
            entry["eer_change"] = entry["eer"] - reference["eer"]
    return out


def flips(clean: dict[str, dict], cond_rows: list[dict]) -> dict:
    """How many verdicts differ from clean's, over the files scored under both; by direction (flip_rate None
    when there are no verdicts)."""
    pairs = [(clean[r["path"]], r) for r in cond_rows if r["status"] == "ok" and r["path"] in clean]
    pairs = [(a, b) for a, b in pairs if a.get("verdict") and b.get("verdict")]  # none without a calibration
    real_to_fake = sum(a["verdict"] == "real" and b["verdict"] == "fake" for a, b in pairs)
    fake_to_real = sum(a["verdict"] == "fake" and b["verdict"] == "real" for a, b in pairs)
    n = len(pairs)
    return {
        "n_compared": n,
        "flip_rate": (real_to_fake + fake_to_real) / n if n else None,
        "flips_real_to_fake": real_to_fake,
        "flips_fake_to_real": fake_to_real,
    }


def status(entry: dict, clean: dict | None) -> str:
    """ "broken", "degraded" or "holds" (see the module docstring); "unscored" without metrics."""
    if entry["eer"] is None:
        return "unscored"
    if entry["act_dcf"] is not None and entry["act_dcf"] >= BROKEN_ACT_DCF:
        return "broken"
    if entry["flip_rate"] is not None and entry["flip_rate"] >= DEGRADED_FLIP_RATE:
        return "degraded"
    if clean is not None:
        for key in ("eer", "act_dcf"):
            now, ref = entry.get(f"{key}_ci95"), clean.get(f"{key}_ci95")
            if now and ref and now[0] > ref[1]:
                return "degraded"
    return "holds"


def damage(clean_row: dict, row: dict) -> float:
    """How far a condition moved a file towards the wrong class, in score units (< 0: towards its own)."""
    moved = row["score"] - clean_row["score"]
    return -moved if clean_row["label"] == "real" else moved


def worst_files(rows: list[dict], limit: int = 10) -> list[dict]:
    """The (file, condition) pairs whose score moved furthest towards the wrong class, worst first."""
    clean = {r["path"]: r for r in rows if r["condition"] == "clean" and r["status"] == "ok"}
    out = []
    for r in rows:
        base = clean.get(r["path"])
        if r["condition"] == "clean" or r["status"] != "ok" or base is None:
            continue
        out.append(
            {
                "path": r["path"],
                "label": r["label"],
                "condition": r["condition"],
                "clean_score": base["score"],
                "score": r["score"],
                "damage": damage(base, r),
                "clean_verdict": base.get("verdict"),
                "verdict": r.get("verdict"),
            }
        )
    out.sort(key=lambda w: -w["damage"])
    return out[:limit]


def most_flipped(rows: list[dict], limit: int = 10) -> list[dict]:
    """Files whose verdict differs from their clean verdict under the most conditions."""
    clean = {r["path"]: r for r in rows if r["condition"] == "clean" and r["status"] == "ok"}
    counts: dict[str, list[str]] = {}
    for r in rows:
        base = clean.get(r["path"])
        if (
            base is not None
            and r["condition"] != "clean"
            and r["status"] == "ok"
            and r["verdict"] != base["verdict"]
        ):
            counts.setdefault(r["path"], []).append(r["condition"])
    ranked = sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]
    return [
        {
            "path": p,
            "label": clean[p]["label"],
            "clean_verdict": clean[p]["verdict"],
            "n_flipped": len(c),
            "conditions": c,
        }
        for p, c in ranked
    ]
