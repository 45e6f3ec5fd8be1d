"""The Python API: load a detector, score recordings or waveforms, evaluate a labelled set, calibrate.

    import antispoof
    detector = antispoof.load_detector("aasist")            # a registry name or a checkpoint path
    result = detector.score("clip.wav")                     # one Result: verdict, score, p_fake, llr, ...
    results = detector.score(["a.wav", "folder/"])          # a list of Results, one per file found
    result = detector.score(waveform, sample_rate=44100)    # a numpy array: (samples,) or (samples, channels)
    metrics = detector.evaluate("data/dev", "runs/dev")     # scores.csv, metrics.json, plots (AUC, EER, ...)
    detector.calibrate("runs/dev")                          # fit score -> LLR on that run; verdicts use it

A detector is a `scoring.setup.Scorer` (the object score.py, app.py and evaluate_custom.py build), so a file
scored here gets the score score.py gives it. Every result says what produced it: the input policy, the score
kind and the verdict rule. Higher score = more likely real (index 1 = real, as in the references).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from antispoof.audio.datasets import Item, list_audio_files, load_dataset
from antispoof.audio.decode import AudioError, audio_from_array
from antispoof.evaluation import calibration as calib
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint
from antispoof.scoring.decision import Decision, is_scored
from antispoof.scoring.evaluate import evaluate_run
from antispoof.scoring.scorefile import read_scores
from antispoof.scoring.setup import Scorer


@dataclass(frozen=True)
class Result:
    """One recording's answer. `score`: the model's reference score (higher = more real); `p_fake`: the
    softmax probability of fake (uncalibrated: it assumes the training data's priors); `llr`: the calibrated
    natural-log likelihood ratio (> 0 favours real) and `p_fake_calibrated` the probability of fake at the
    operating point's prior, both None without a calibration; `windows`: per-window scores (start, end in
    seconds), one entry unless the policy is "windows"; `status`: "ok" or why the recording was not scored."""

    path: str
    status: str
    verdict: str
    score: float | None
    p_fake: float | None
    llr: float | None
    p_fake_calibrated: float | None
    policy: str
    score_kind: str
    rule: str
    duration_s: float | None
    note: str
    windows: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Detector:
    """A loaded detector with its scoring set-up and verdict rule (see `load_detector`)."""

    def __init__(self, scorer: Scorer, checkpoint: str):
        self.scorer = scorer
        self.checkpoint = checkpoint  # as the user named it (a registry name or a path)

    def __repr__(self) -> str:
        rule = self.decision.describe() if self.decision else "none"
        arch = self.info["arch"]
        return f"Detector({self.checkpoint!r}, arch={arch!r}, policy={self.policy!r}, rule={rule!r})"

    @property
    def info(self) -> dict:
        """The loader's description: arch, format, source (the file), calibration."""
        return self.scorer.info

    @property
    def policy(self) -> str:
        """What of a recording the model sees, e.g. 'head n=64600' (the first 4.04 s)."""
        return self.scorer.policy.describe()

    @property
    def decision(self) -> Decision | None:
        return self.scorer.decision

    def score(
        self, audio: str | os.PathLike | np.ndarray | list, *, sample_rate: int | None = None
    ) -> Result | list[Result]:
        """Score one recording (a file path, or a waveform array with its `sample_rate`) -> a Result; a list
        of them, a folder (searched recursively), a glob or a .txt/.lst list of paths -> a list of Results.
        Arrays are resampled to 16 kHz (integer PCM scaled to [-1, 1)). A recording that cannot be read gets a
        Result whose `status` says why; the others are still scored."""
        one_path = isinstance(audio, (str, os.PathLike)) and not _expands(audio)
        single = one_path or isinstance(audio, np.ndarray)
        inputs = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        paths, decoded, failed = [], {}, {}
        for k, x in enumerate(inputs):
            if not isinstance(x, np.ndarray):
                paths += list_audio_files([x]) if _expands(x) else [str(x)]
                continue
            if sample_rate is None:
                raise ValueError("scoring an array needs its sample_rate, e.g. score(x, sample_rate=16000)")
            name = f"<array {k}>"
            try:  # decoded here, checked as a file would be; scored without decoding worker processes
                decoded[name] = audio_from_array(x, sample_rate, max_duration=self.scorer.policy.max_seconds)
            except AudioError as err:
                failed[name] = {"path": name, "status": str(err)}
            paths.append(name)
        todo = [Item(p, None) for p in dict.fromkeys(paths) if p not in failed]
        options = {"decoded": decoded, "workers": 0} if decoded else {}
        rows = {row["path"]: row for row in self.scorer.score(todo, progress=False, **options)}
        results = [self._result(rows.get(p) or failed[p]) for p in dict.fromkeys(paths)]
        return results[0] if single else results

    def _result(self, row: dict) -> Result:
        ok = is_scored(row)
        llr = row.get("llr") if ok else None
        p_cal = None
        if llr is not None and self.decision is not None:
            p_cal = float(calib.p_fake([llr], self.decision.op.p_spoof)[0])
        return Result(
            path=row["path"],
            status=row["status"],
            verdict=row.get("verdict", "") if ok else "",
            score=row.get("score") if ok else None,
            p_fake=row.get("p_fake") if ok else None,
            llr=llr,
            p_fake_calibrated=p_cal,
            policy=self.policy,
            score_kind=self.scorer.kind,
            rule=self.decision.describe() if self.decision else "",
            duration_s=row.get("duration_s"),
            note=row.get("note", ""),
            windows=row.get("windows") or [],
        )

    def evaluate(
        self,
        data: str | os.PathLike,
        out_dir: str | os.PathLike,
        *,
        layout: str = "auto",
        split: str | None = None,
        overwrite: bool = False,
        **options: Any,
    ) -> dict:
        """Score a labelled set (a real/ + fake/ folder, FoR, ASVspoof, In-the-Wild or a path,label CSV) into
        the run folder `out_dir` as evaluate_custom.py does (scores.csv, metrics.json, plots, run.json) and
        return the metrics (auc, eer, min_dcf, ...; positive class = real). The checkpoint's calibration is
        used when it applies. `options`: n_bootstrap, plots, resume, progress."""
        items = load_dataset(data, format=layout, split=split)
        return evaluate_run(
            self.scorer,
            items,
            out_dir,
            checkpoint=self.checkpoint,
            data={"data": str(data), "format": layout, "split": split, "limit": None},
            overwrite=overwrite,
            op=self.decision.op if self.decision else ASVSPOOF5,
            **options,
        )

    def calibrate(
        self, run: str | os.PathLike, *, save: bool = False, p_spoof_fit: float | None = None
    ) -> dict:
        """Fit the score -> LLR map on a labelled run of this detector (`evaluate`'s out_dir), as
        calibrate.py does, and make verdicts use it (the Bayes decision at the operating point). `save`:
        also write it beside the checkpoint (<checkpoint>.calibration.json) for the scripts. Returns the
        calibration. Raises ValueError for a run scored under other weights or another policy."""
        run = Path(run)
        rows = [r for r in read_scores(run / "scores.csv") if is_scored(r) and r["label"] in ("real", "fake")]
        policies = {r.get("policy") for r in rows}
        if policies != {self.policy}:
            raise ValueError(f"{run} was scored under {sorted(map(str, policies))}, not {self.policy!r}")
        recorded = json.loads((run / "run.json").read_text())
        if recorded.get("weights_sha256") != self.scorer.weights_sha256():
            raise ValueError(f"{run} was scored with other weights than {self.checkpoint}")
        if recorded.get("config_sha256") not in (None, self.scorer.config_sha256()):
            raise ValueError(f"{run} was scored under another model config than {self.checkpoint}'s")
        op = self.decision.op if self.decision else ASVSPOOF5
        cal = calib.fit(
            [r["score"] for r in rows if r["label"] == "real"],
            [r["score"] for r in rows if r["label"] == "fake"],
            policy=self.policy,
            weights_sha256=recorded["weights_sha256"],
            config_sha256=self.scorer.config_sha256(),
            score_kind=self.scorer.kind,
            op=op,
            p_spoof_fit=p_spoof_fit,
            data=str(run),
        )
        where = str(run)
        if save:
            where = str(calib.save(self.info["source"], cal))
        self.scorer.decision = Decision(None, where, cal, op)
        return cal


def _expands(spec: Any) -> bool:
    """True for what stands for several recordings: a folder, a glob, a .txt/.lst list of paths."""
    path = Path(spec)
    return path.is_dir() or glob.has_magic(str(spec)) or path.suffix.lower() in (".txt", ".lst")


def load_detector(
    checkpoint: str | os.PathLike = "aasist",
    *,
    device: str = "auto",
    window: bool = False,
    whole_clip: bool = False,
    threshold: float | None = None,
    op: OperatingPoint = ASVSPOOF5,
    use_calibration: bool = True,
    model_config: dict | None = None,
    **settings: Any,
) -> Detector:
    """Load a detector by registry name ("aasist", "aasist-l", "la", "antideepfake-mms-300m", ...; see
    `python download.py --list`) or checkpoint path, with the verdict rule score.py uses: `threshold` on
    the score, else the checkpoint's calibration (checked to fit these weights and policy) at the operating
    point `op` (default ASVspoof 5's), else p_fake >= 0.5. The input policy is the model's reference one (as
    evaluate_custom.py and published numbers; score.py's --reference-policy); `whole_clip`: score.py's
    default, every second of a recording (4.04 s windows, the most fake-sounding one decides); `window`:
    4.04 s windows, mean logit (the scripts' --window). `settings`: amp, backend, batch_size, workers,
    hop_s, max_seconds. Raises the loader's error (FileNotFoundError, ValueError, ...) with what to do."""
    scorer = Scorer.load(
        checkpoint, device=device, model_config=model_config, window=window, whole_clip=whole_clip, **settings
    )
    scorer.decide(threshold, op=op, use_calibration=use_calibration)
    return Detector(scorer, str(checkpoint))
