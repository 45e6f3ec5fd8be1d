"""The scoring set-up: everything that decides how a file becomes a score and a verdict, in one object.

    scorer = Scorer.load("aasist", device="auto", window=False)  # model, info, policy, device, amp, backend
    scorer.decide(threshold=None, op=ASVSPOOF5)                  # the verdict rule (score.py, the app)
    rows = scorer.score(["clip.wav"])                            # score_items rows (+ verdicts once decided)
    metrics = scorer.evaluate(items, "runs/x")                   # labelled items: scores.csv, metrics.json

score.py, app.py, evaluate_custom.py and fine-tuning's test scoring build their scorer here, so the settings
that change a score (input policy, precision, backend) are chosen the same way everywhere and recorded from
one place (`settings()`, run.json's scoring settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

import antispoof.distributed as dist
from antispoof.audio.datasets import Item
from antispoof.checkpoints.files import load_model
from antispoof.evaluation.metrics import ASVSPOOF5, OperatingPoint
from antispoof.networks import InputPolicy
from antispoof.scoring.core import (
    default_batch_size,
    policy_for,
    precision,
    score_definition,
    score_items,
    score_kind,
)
from antispoof.scoring.decision import (
    UNTRAINED_BACK_END,
    Decision,
    add_verdicts,
    checked_calibration,
    decision_for,
)
from antispoof.scoring.evaluate import evaluate
from antispoof.scoring.onnx_backend import resolve_backend, scoring_model


@dataclass
class Scorer:
    """A loaded detector and how it scores: `policy` (what of a file the model sees), `device`, `amp`
    (autocast: auto = bf16 on CUDA, fp32 elsewhere), `backend` (torch, or onnxruntime on a CPU), `batch_size`
    (None: 64 on CUDA, 4 elsewhere), `workers` (decoding processes; None: `default_workers()`), and
    `decision`, the verdict rule, set by `decide` (None: rows get no verdict)."""

    model: nn.Module
    info: dict
    policy: InputPolicy
    device: torch.device
    amp: str = "auto"
    backend: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    decision: Decision | None = None
    _sha256: str | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike,
        *,
        device: str | torch.device = "auto",
        model_config: dict | None = None,
        map_location: str | torch.device | None = None,
        window: bool = False,
        hop_s: float | None = None,
        max_seconds: float | None = None,
        whole_clip: bool = False,
        **settings: Any,
    ) -> Scorer:
        """Load a checkpoint (a path or a registry name) and set up its scoring. `device` "auto" is this
        process's own GPU under torchrun, else CUDA, MPS or CPU; the model is loaded onto it unless
        `map_location` says otherwise. `window`, `hop_s`, `max_seconds`: the scripts' --window, --hop,
        --max-duration; `whole_clip`: every second of a recording (score.py, the app; `policy_for`).
        `settings`: amp, backend, batch_size, workers.
        Raises the loader's OSError / ValueError / RuntimeError, whose messages say what to do."""
        device = dist.device(device) if isinstance(device, str) else torch.device(device)
        model, info = load_model(
            checkpoint, map_location=device if map_location is None else map_location, config=model_config
        )
        return cls.for_model(
            model, info, device=device, window=window, hop_s=hop_s, max_seconds=max_seconds,
            whole_clip=whole_clip, **settings,
        )  # fmt: skip

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        info: dict,
        *,
        device: str | torch.device = "auto",
        window: bool = False,
        hop_s: float | None = None,
        max_seconds: float | None = None,
        whole_clip: bool = False,
        **settings: Any,
    ) -> Scorer:
        """The scorer of a model already loaded (`load_model`'s model and info)."""
        device = dist.device(device) if isinstance(device, str) else torch.device(device)
        policy = policy_for(model, window, hop_s, max_seconds, whole_clip)
        return cls(model, info, policy, device, **settings)

    def with_window(self, window: bool, whole_clip: bool = False) -> Scorer:
        """The same model under the model's own policy, overlapping windows or the whole-clip policy (the
        app's choice); no verdict rule yet (a calibration belongs to one policy)."""
        return replace(self, policy=policy_for(self.model, window, whole_clip=whole_clip), decision=None)

    # ---- what the scores are --------------------------------------------------------------------------

    @property
    def untrained(self) -> bool:
        """True for a pretrained front end around a random back end (not a detector yet)."""
        return self.info["format"] in UNTRAINED_BACK_END

    @property
    def kind(self) -> str:
        """The model's score kind (`scoring.core.SCORE_KINDS`)."""
        return score_kind(self.model)

    @property
    def definition(self) -> str:
        """One sentence saying how a file's score is made."""
        return score_definition(self.policy, self.kind)

    @property
    def precision(self) -> str:
        """fp32, bf16 or fp16: what `amp` means on this device."""
        return precision(self.device, self.amp)

    def resolved_backend(self) -> str:
        """torch, onnx or onnx-int8: what `backend` means for this model, device and precision."""
        return resolve_backend(self.model, self.backend, self.device, self.amp)

    def weights_sha256(self) -> str:
        """The weights' fingerprint (computed once: hashing a 1.2 GB model takes seconds)."""
        if self._sha256 is None:
            from antispoof.checkpoints.files import weights_sha256

            self._sha256 = weights_sha256(self.model)
        return self._sha256

    def config_sha256(self) -> str:
        """The fingerprint of the model config that shapes the scores (`checkpoints.files.config_sha256`)."""
        from antispoof.checkpoints.files import config_sha256

        return config_sha256(self.model)

    def settings(self) -> dict:
        """The settings that change a score, as run.json records them (`runs.SCORE_SETTINGS`)."""
        return {
            "policy": self.policy.describe(),
            "max_duration_s": None if self.policy.mode == "head" else self.policy.max_seconds,
            "score_kind": self.kind,
            "precision": self.precision,
            "backend": self.resolved_backend(),
        }

    # ---- verdicts -------------------------------------------------------------------------------------

    def calibration(self) -> tuple[dict | None, str]:
        """The checkpoint's calibration checked against these weights and this policy: (calibration, where),
        (None, "") when it has none; CalibrationError (a ValueError) when it has one that does not apply."""
        return checked_calibration(self.model, self.info, self.policy.describe(), self.weights_sha256())

    def decide(
        self, threshold: float | None = None, *, op: OperatingPoint = ASVSPOOF5, use_calibration: bool = True
    ) -> Decision:
        """Set and return the verdict rule (`decision_for`): `threshold`, else the checked calibration, else
        p_fake >= 0.5. Raises ValueError for a non-finite threshold or a calibration that does not apply."""
        self.decision = decision_for(
            self.info,
            threshold,
            model=self.model,
            policy=self.policy,
            op=op,
            use_calibration=use_calibration,
            sha256=self.weights_sha256() if use_calibration and threshold is None else None,
        )
        return self.decision

    # ---- scoring --------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Build what scoring runs now (the one-off ONNX export of the onnxruntime backend), not at the first
        file."""
        scoring_model(self.model, self.backend, self.device, self.amp)

    def score_options(self, **overrides: Any) -> dict:
        """Keyword arguments of `score_items` for this set-up; `overrides` win."""
        options = {
            "policy": self.policy,
            "device": self.device,
            "amp": self.amp,
            "backend": self.backend,
            "batch_size": self.batch_size or default_batch_size(self.device),
            "workers": self.workers,
        }
        return {**options, **overrides}

    def score(self, items: list[Item | str | os.PathLike], **options: Any) -> list[dict]:
        """`score_items` rows of `items` (paths or Items) under this set-up, with `verdict` (and `llr` when
        calibrated) once `decide` was called. `options`: score_items' (out_csv, resume, decoded, progress,
        ...)."""
        rows = score_items(self.model, items, **self.score_options(**options))
        if self.decision is not None:
            add_verdicts(rows, self.decision)
        return rows

    def evaluate(self, items: list[Item], out_dir: str | os.PathLike, **options: Any) -> dict:
        """`scoring.evaluate.evaluate` of labelled `items` into `out_dir` under this set-up (scores.csv,
        metrics.json, plots). `options`: evaluate's (calibration, op, extra, n_bootstrap, ...) and
        score_items' (resume, compile, progress...)."""
        return evaluate(self.model, items, out_dir, **self.score_options(**options))
