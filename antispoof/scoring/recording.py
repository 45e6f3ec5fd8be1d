"""The answer for one recording, in words: what score.py prints and the app shows above its details.

    bands = add_answers(rows, decision, p_fake_prior)     # decision.py: answer, leans, P(fake), fake spans
    plain_sentence(rows[0], bands)                        # one sentence for a non-expert
    rule_lines(decision, bands, checkpoint)               # how the answer is made, or why there is none

Only a calibrated detector answers "likely fake", "inconclusive" or "likely real"; an uncalibrated one says
which way its score leans and how to calibrate it, never REAL or FAKE.
"""

from __future__ import annotations

from antispoof.scoring.decision import Bands, Decision, provenance


def spans_text(spans: list) -> str:
    return ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in spans)


def calibrate_command(checkpoint: str) -> str:
    """The commands that fit a calibration for the whole-clip answer on the user's own labelled files."""
    return (
        f"python evaluate_custom.py --data YOUR_LABELLED_FOLDER --checkpoint {checkpoint} --whole-clip "
        "--out-dir runs/my_calibration && python calibrate.py --run runs/my_calibration"
    )


def plain_sentence(row: dict, bands: Bands | None) -> str:
    """One sentence a non-expert can act on, from a row with answer_for's keys."""
    where = ""
    if row["fake_spans"] and row["n_windows"] > 1:
        where = f" The parts that sound most fake: {spans_text(row['fake_spans'])}."
    if bands is None:
        return (
            f"No answer: this detector is not calibrated, so its score is not a probability. The score leans "
            f"{row['leans']}, which on its own says little.{where}"
        )
    chance = f"{100 * row['p_fake_calibrated']:.0f} %"
    if 0 < row["p_fake_calibrated"] < 0.01:
        chance = "under 1 %"
    elif 0.99 < row["p_fake_calibrated"] < 1:
        chance = "over 99 %"
    prior = "even odds" if bands.p_fake_prior == 0.5 else f"a {bands.p_fake_prior:g} chance of a fake"
    lead = {
        "likely fake": "This recording is likely fake",
        "likely real": "This recording is likely real",
        "inconclusive": "The detector cannot tell whether this recording is real or fake",
    }[row["answer"]]
    return f"{lead}: it puts the chance that it is fake at {chance} (starting from {prior}).{where}"


def rule_lines(decision: Decision, bands: Bands | None, checkpoint: str) -> list[str]:
    """How the answer is made: the bands and the calibration's provenance, or the missing calibration."""
    if bands is not None:
        where = provenance(decision.calibration, decision.source)
        return [f"answer: {bands.describe()}", f"calibration: {where}"]
    if decision.threshold is not None:
        return [f"answer: none (a --threshold rule gives verdicts, not probabilities): {decision.describe()}"]
    return [
        "answer: none: the detector is not calibrated, so its score is not a probability (only the way it "
        "leans is shown).",
        f"to calibrate it on labelled recordings like yours: {calibrate_command(checkpoint)}",
    ]
