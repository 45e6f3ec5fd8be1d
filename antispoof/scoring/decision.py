"""The verdict rule: how a score becomes "real" or "fake" (score.py, app.py, the analysis report).

decision = decision_for(info, model=model, policy=policy)   # --threshold, calibration, or p_fake >= 0.5
add_verdicts(rows, decision)                                  # score_items rows gain verdict (and llr)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from antispoof.constants import SINGLE_RECORDING_PRIOR
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint
from antispoof.evaluation.thresholds import is_real, score_at_llr
from antispoof.networks import InputPolicy

# The verdict rule (score.py, app.py): a threshold on the score, or p_fake >= 0.5 without one.
DEFAULT_P_FAKE_THRESHOLD = 0.5
# load_model formats that wrap a pretrained front end around a random back end: not a detector yet.
UNTRAINED_BACK_END = ("fairseq_pretrain", "transformers")


@dataclass(frozen=True)
class Decision:
    """How a score becomes a verdict, in order of precedence:

    - `threshold` (--threshold): "real when score >= threshold", on the raw score;
    - `calibration` (calibration.py; checked to fit these weights and this policy): llr = scale * score +
      offset, "real when llr >= op.llr_threshold", the Bayes decision for the operating point `op` (prior
      of a fake and the two error costs; default ASVspoof 5's);
    - neither: "fake when p_fake >= 0.5" (the larger logit wins), which assumes the training data's priors.
    """

    threshold: float | None
    source: str
    calibration: dict | None = None
    op: OperatingPoint = ASVSPOOF5

    def llr(self, score: float) -> float | None:
        """The calibrated natural-log LLR of a score (None without a calibration)."""
        if self.calibration is None or self.threshold is not None:
            return None
        return self.calibration["scale"] * score + self.calibration["offset"]

    def score_threshold(self) -> float | None:
        """The score at which the verdict flips (for plots): --threshold, or the calibrated Bayes threshold
        mapped back to the score; None for the p_fake rule."""
        if self.threshold is not None:
            return self.threshold
        if self.calibration is not None:
            return score_at_llr(self.calibration, self.op.llr_threshold)
        return None

    def verdict(self, score: float, p_fake: float) -> str:
        """'real' or 'fake' for one file or window."""
        if self.threshold is None and self.calibration is None:
            return "fake" if p_fake >= DEFAULT_P_FAKE_THRESHOLD else "real"
        # The one comparison (thresholds.is_real), on the score: metrics.json and the report use it too.
        return "real" if is_real(score, self.score_threshold()) else "fake"

    def describe(self) -> str:
        if self.threshold is not None:
            return f"real if score >= {self.threshold:.4g} ({self.source})"
        if self.calibration is not None:
            cal, op = self.calibration, self.op
            return (
                f"real if llr >= {op.llr_threshold:.3f}, the Bayes decision for Pspoof {op.p_spoof:g}, Cmiss "
                f"{op.c_miss:g}, Cfa {op.c_fa:g}; llr = {cal['scale']:.4g} * score {cal['offset']:+.4g} "
                f"(calibration from {self.source})"
            )
        return f"fake if p_fake >= {DEFAULT_P_FAKE_THRESHOLD} ({self.source})"

    def as_dict(self) -> dict:
        calibrated = self.threshold is None and self.calibration is not None
        applies_to = "score" if self.threshold is not None else "llr" if calibrated else "p_fake"
        out = {"threshold": self.threshold, "applies_to": applies_to, "source": self.source,
               "rule": self.describe()}  # fmt: skip
        if calibrated:
            out.update(
                llr_threshold=self.op.llr_threshold,
                operating_point=self.op.as_dict(),
                calibration={k: self.calibration[k] for k in ("scale", "offset", "llr", "policy")},
            )
        return out


def decision_for(
    info: dict,
    threshold: float | None = None,
    *,
    model: nn.Module | None = None,
    policy: InputPolicy | None = None,
    op: OperatingPoint = ASVSPOOF5,
    use_calibration: bool = True,
    sha256: str | None = None,
) -> Decision:
    """The verdict rule: --threshold, else the checkpoint's calibration (side file or stored; needs `model`
    and `policy` to check that it belongs to them; `sha256`: the model's `weights_sha256` if the caller has
    it), else the p_fake >= 0.5 default.

    Raises ValueError (calibration.CalibrationError) for a non-finite threshold, or a calibration that is
    malformed or fitted for other weights or another policy: it is refused, never silently applied.
    """
    import antispoof.evaluation.calibration as calib

    if threshold is not None:
        if not math.isfinite(threshold):
            raise ValueError(f"--threshold must be a finite number, got {threshold!r}")
        return Decision(float(threshold), "--threshold")
    if use_calibration:
        if model is None or policy is None:
            cal, where = calib.find(None, info)
        else:
            cal, where = checked_calibration(model, info, policy.describe(), sha256)
        if cal is not None:
            return Decision(None, where, cal, op)
    return Decision(None, "default: the checkpoint has no calibration")


def checked_calibration(
    model: nn.Module, info: dict, policy: str, sha256: str | None = None
) -> tuple[dict | None, str]:
    """The calibration of a loaded checkpoint, checked against its weights and the scoring `policy` string
    (`InputPolicy.describe()`): (calibration, where found), (None, "") when there is none, CalibrationError
    when there is one that is malformed or belongs to other weights, another model config or another policy.
    `sha256`: the model's `weights_sha256` when the caller has it already (hashing a 1.2 GB model takes
    seconds)."""
    import antispoof.evaluation.calibration as calib
    from antispoof.checkpoints.files import config_sha256, weights_sha256

    cal, where = calib.find(None, info)
    if cal is not None:
        sha256 = sha256 or weights_sha256(model)
        calib.check_applies(
            cal, policy=policy, weights_sha256=sha256, config_sha256=config_sha256(model), where=where
        )
    return cal, where


def is_scored(row: dict) -> bool:
    """score_items rows: status is "ok", or the reason the file was skipped."""
    return row["status"] == "ok"


def add_verdicts(rows: list[dict], decision: Decision) -> list[dict]:
    """Add `verdict` (and, with a calibration, `llr`) to every scored row and window of score_items rows (in
    place); returns `rows`."""
    for row in rows:
        if not is_scored(row):
            row["verdict"] = ""
            continue
        row["verdict"] = decision.verdict(row["score"], row["p_fake"])
        if decision.llr(0.0) is not None:
            row["llr"] = decision.llr(row["score"])
        for window in row.get("windows") or []:
            window["verdict"] = decision.verdict(window["score"], window["p_fake"])
            if decision.llr(0.0) is not None:
                window["llr"] = decision.llr(window["score"])
    return rows


# ------------------------------------------------------------------------------------------------ answers
# A single recording gets one of three answers, from its calibrated LLR and a prior the user can set. The
# prior is even odds by default: nothing is known about one recording before listening to it (evaluation
# keeps ASVspoof 5's operating point, Pspoof 0.05, for the binary verdicts it counts).
BAND_ODDS = 9.0  # "likely" needs posterior odds of at least 9 to 1 (a posterior probability of 0.9)
ANSWERS = ("likely fake", "inconclusive", "likely real")


@dataclass(frozen=True)
class Bands:
    """The three answers of a calibrated detector: "likely real" when the posterior odds of real are at least
    `odds` to 1, "likely fake" when those of fake are, "inconclusive" between; at the prior `p_fake_prior`.

    Each edge is an LLR, mapped back onto the score (thresholds.score_at_llr) and compared with the one rule
    (thresholds.is_real), as every verdict is."""

    calibration: dict
    p_fake_prior: float = SINGLE_RECORDING_PRIOR
    odds: float = BAND_ODDS

    def __post_init__(self):
        if not 0 < self.p_fake_prior < 1:
            raise ValueError(f"the prior of a fake must be strictly between 0 and 1, got {self.p_fake_prior}")
        if not self.odds > 1:
            raise ValueError(f"the band odds must be above 1, got {self.odds}")

    @property
    def prior_log_odds_real(self) -> float:
        return math.log((1 - self.p_fake_prior) / self.p_fake_prior)

    def edges(self) -> tuple[float, float]:
        """(score below which the answer is "likely fake", score from which it is "likely real")."""
        log_odds = math.log(self.odds)
        return (
            score_at_llr(self.calibration, -log_odds - self.prior_log_odds_real),
            score_at_llr(self.calibration, log_odds - self.prior_log_odds_real),
        )

    def p_fake(self, score: float) -> float:
        """The posterior probability that the recording is fake, at the prior."""
        llr = self.calibration["scale"] * score + self.calibration["offset"]
        return 1 / (1 + math.exp(min(700.0, llr + self.prior_log_odds_real)))

    def answer(self, score: float) -> str:
        fake_edge, real_edge = self.edges()
        if is_real(score, real_edge):
            return "likely real"
        return "inconclusive" if is_real(score, fake_edge) else "likely fake"

    def leans_real(self, score: float) -> bool:
        """Which way a score leans: real when the posterior odds of real are at least even."""
        return bool(is_real(score, score_at_llr(self.calibration, -self.prior_log_odds_real)))

    def describe(self) -> str:
        p = self.odds / (1 + self.odds)
        return (
            f"likely fake when P(fake) >= {p:.2g}, likely real when P(fake) <= {1 - p:.2g} (posterior odds "
            f"{self.odds:g} to 1), inconclusive between; before listening, P(fake) = {self.p_fake_prior:g}"
            + (" (even odds)" if self.p_fake_prior == 0.5 else "")
        )


def public_name(where: str) -> str:
    """`where` (a calibration's source, a checkpoint) with every absolute path cut to its last part: answers
    may be public (the app with --share), the server's file system is not."""
    return re.sub(r"(?<![\w.:/~-])/(?:[^/\s'\"]+/)*([^/\s'\"]*)", r"\1", where)


def provenance(calibration: dict, where: str) -> str:
    """Where a calibration came from, in one line: its data, file counts and Cllr, and the file holding it."""
    fit = calibration.get("fit") or {}
    data = Path(str(fit["data"])).name if fit.get("data") else "data not recorded"
    counts = (
        f"{fit['n_real']} real and {fit['n_fake']} fake files"
        if fit.get("n_real") is not None and fit.get("n_fake") is not None
        else "file counts not recorded"
    )
    cllr = fit.get("cllr_calibrated")
    quality = f", Cllr {cllr:.3f} bits on them" if isinstance(cllr, (int, float)) else ""
    return f"calibrated on {data} ({counts}{quality}); {public_name(where)}"


def answer_for(row: dict, bands: Bands | None) -> dict:
    """A scored row's answer: with `bands` (a calibrated detector) one of ANSWERS and the posterior
    P(fake); without, "uncalibrated" and the way the larger logit leans. Also `fake_spans`: the time ranges
    of the windows that lean fake (so a fake spliced into real speech is pointed at, not averaged away)."""
    if bands is None:
        lean = "fake" if row["p_fake"] >= DEFAULT_P_FAKE_THRESHOLD else "real"
        out = {"answer": "uncalibrated", "leans": lean, "p_fake_calibrated": None}
        leans_fake = [w["p_fake"] >= DEFAULT_P_FAKE_THRESHOLD for w in row["windows"]]
    else:
        lean = "real" if bands.leans_real(row["score"]) else "fake"
        out = {
            "answer": bands.answer(row["score"]),
            "leans": lean,
            "p_fake_calibrated": bands.p_fake(row["score"]),
        }
        leans_fake = [not bands.leans_real(w["score"]) for w in row["windows"]]
    spans: list[list[float]] = []
    for w, fake in zip(row["windows"], leans_fake, strict=True):
        w["leans_fake"] = bool(fake)
        if not fake:
            continue
        if spans and w["start"] <= spans[-1][1]:  # overlapping windows: one range
            spans[-1][1] = max(spans[-1][1], w["end"])
        else:
            spans.append([w["start"], w["end"]])
    out["fake_spans"] = [(round(a, 2), round(b, 2)) for a, b in spans]
    return out


def add_answers(
    rows: list[dict], decision: Decision, p_fake_prior: float = SINGLE_RECORDING_PRIOR
) -> Bands | None:
    """Add answer_for's keys to every scored row (in place); returns the Bands used (None: uncalibrated or
    a --threshold rule, which has no probabilities)."""
    calibrated = decision.threshold is None and decision.calibration is not None
    bands = Bands(decision.calibration, p_fake_prior) if calibrated else None
    for row in rows:
        if is_scored(row):
            row.update(answer_for(row, bands))
    return bands
