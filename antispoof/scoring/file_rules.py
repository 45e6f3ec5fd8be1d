"""How one answer for a whole file is formed from the scores of its windows (the "windows" input policy).

    score = file_score([w["score"] for w in row["windows"]], "min")

- "mean": the mean of the windows' scores (for the real-class logit, the score of the mean logit: what
  `--window` has always reported, and what evaluation keeps for reproducibility);
- "min": the lowest window score, the window that sounds most fake: a fake spliced into real speech decides
  the answer instead of being averaged away with the real windows around it;
- "softmin": -log(mean(exp(-score))), a smooth minimum between the two (dominated by the lowest windows).

benchmark_file_rules.py compares them on labelled long clips (audio/longclips.py); the README gives the
numbers and the rule score.py and the app use for a single recording.
"""

from __future__ import annotations

import numpy as np

FILE_RULES = {
    "mean": "the mean of the window scores",
    "min": "the lowest window score (the most fake-sounding window)",
    "softmin": "a smooth minimum of the window scores, -log(mean(exp(-score)))",
}


def file_score(window_scores, rule: str) -> float:
    """One score for a file from its windows' scores (higher = more real) under `rule` (FILE_RULES)."""
    s = np.asarray(window_scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("a file needs at least one window score")
    if rule == "mean":
        return float(s.mean())
    if rule == "min":
        return float(s.min())
    if rule == "softmin":  # log-mean-exp of -s, shifted by the minimum so that exp never overflows
        low = s.min()
        return float(low - np.log(np.mean(np.exp(-(s - low)))))
    raise ValueError(f"unknown file rule {rule!r}; known: {', '.join(FILE_RULES)}")


def fake_spans(windows: list[dict], verdict_key: str = "verdict") -> list[tuple[float, float]]:
    """The time ranges (seconds) covered by windows whose verdict is fake, overlapping windows merged."""
    spans: list[list[float]] = []
    for w in sorted(windows, key=lambda w: w["start"]):
        if w.get(verdict_key) != "fake":
            continue
        if spans and w["start"] <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], w["end"])
        else:
            spans.append([w["start"], w["end"]])
    return [(a, b) for a, b in spans]
