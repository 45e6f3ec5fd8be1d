"""Batch scoring and evaluation: files -> scores.csv -> metrics.json + plots.

    rows = score_items(model, items, out_csv="run/scores.csv")  # any items; labels may be None
    metrics = evaluate(model, items, "run")  # labelled items: scores.csv, metrics.json, plots

Pipeline: a `torch.utils.data.DataLoader` decodes files (`audio.load_audio`; in worker processes, or in
the main process with workers=0, the default on <= 2 cores), the main process runs batches through the
model (bf16 autocast on CUDA, fp32 on CPU unless asked, optional `torch.compile`), and every finished batch
is appended to scores.csv (scorefile.py) and flushed, so an interrupted run keeps what it scored and
`resume=True` scores only the rest. Under `torchrun` the files are sharded across ranks and rank 0 gathers
each round of batches and writes the file (nothing scored twice, nothing lost).

What the model sees per file is its input policy (`model.InputPolicy`): the model's own `default_policy`
unless the caller passes another (`policy_for(model, window=True)` for the scripts' --window):
- "head", the reference's rule: the first `n_samples` (64,600 = 4.04 s), shorter files tiled. A longer file
  gets the note "cropped: ..." (its `duration_s` says how long it was).
- "windows": overlapping windows of `n_samples` every `hop` samples (default 50 % overlap) cover the whole
  file (up to `max_seconds`). The file's logits are the **mean of its windows' logits** (file rule "mean",
  evaluation's --window), or those of its most fake-sounding window (file rule "min", score.py's and the
  app's whole-clip answer); `score` and `p_fake` come from them, and every window's own score stays in
  `windows`.
- "whole": the whole file (up to `max_seconds`) in one pass, at its own length, for models trained on whole
  utterances (AntiDeepfake). Files of equal length share a batch; files of different lengths are never
  zero-padded together (these models have no padding mask, so padding would change their scores): in
  practice batch 1, as the reference runs, unless a data set has many files of one length (for-2sec).

Scores: `score` = `reference_score(logits, model.score_kind)`, the score the model's reference writes (for
SSL-AASIST and AASIST the real-class logit `logits[:, REAL_INDEX]`); higher = more likely real. `p_fake` =
softmax(logits)[:, FAKE_INDEX] for every model. Every row, scores.csv and metrics.json carry the policy
(`InputPolicy.describe()`) and the score kind. `status` is "ok" or the reason the file was skipped. The
verdict rule that score.py and app.py apply is in decision.py; `evaluate` (scores.csv -> metrics.json) in
evaluate.py.

Memory of `score_items`: a step holds `batch_size` files; at most (2 * workers + 1) steps are in flight. Under
"head" a file is n_samples (258 kB); under "windows" up to 2 x `policy.max_seconds` of float32 audio (50 %
overlap); under "whole" up to `policy.max_seconds`, and the model's attention over the whole file grows with
the square of its length, so lower --max-duration, --batch-size or --workers for long files.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

import antispoof.distributed as dist
from antispoof.audio.datasets import Item
from antispoof.audio.decode import SAMPLE_RATE, AudioError, AudioInfo, is_silent, load_audio, pad_or_crop
from antispoof.audio.decode import windows as cut_windows
from antispoof.constants import AMP_CHOICES, default_workers
from antispoof.networks import FAKE_INDEX, REAL_INDEX, REFERENCE_HEAD, InputPolicy
from antispoof.scoring.onnx_backend import scoring_model
from antispoof.scoring.scorefile import ScoreWriter
from antispoof.utils import seed_worker

# model.score_kind -> what `score` is (index 1 = real in every model here).
SCORE_KINDS = {
    "logit_real": "logits[:, 1], the real-class logit",
    "log_softmax_real": "log_softmax(logits)[:, 1], the log-probability of real",
    "softmax_real": "softmax(logits)[:, 1], the probability of real",
}


def reference_score(logits: Tensor, kind: str) -> Tensor:
    """The score (B,) a model's reference writes, from logits (B, 2); higher = more likely real."""
    logits = logits.float()
    if kind == "logit_real":
        return logits[:, REAL_INDEX]
    if kind == "log_softmax_real":
        return logits.log_softmax(dim=-1)[:, REAL_INDEX]
    if kind == "softmax_real":
        return logits.softmax(dim=-1)[:, REAL_INDEX]
    raise ValueError(f"unknown score kind {kind!r}; known: {', '.join(SCORE_KINDS)}")


def logits_to_scores(logits: Tensor, kind: str = "logit_real") -> tuple[Tensor, Tensor]:
    """(score, p_fake) from logits (B, 2): `reference_score` and the softmax probability of fake."""
    return reference_score(logits, kind), logits.float().softmax(dim=-1)[:, FAKE_INDEX]


def score_kind(model: nn.Module) -> str:
    """The model's declared score kind (a bare nn.Module scores like the references: the real logit)."""
    return getattr(getattr(model, "module", model), "score_kind", "logit_real")  # .module: inside DDP


def policy_for(
    model: nn.Module,
    window: bool = False,
    hop_s: float | None = None,
    max_seconds: float | None = None,
    whole_clip: bool = False,
) -> InputPolicy:
    """The model's declared input policy, or overlapping windows with `window` (the scripts' --window: the
    file's logits are the mean of its windows').

    `whole_clip` (score.py and the app, for one recording): every second of the file is looked at. A model
    whose reference reads the first 4.04 s only is run over windows, and the file takes the score of its most
    fake-sounding window (file rule "min": on benchmark_file_rules.py's long clips it has the lowest EER and
    Cllr, and a fake spliced into real speech is not averaged away; README); a whole-file model keeps its
    own policy. `hop_s`: seconds between window starts; `max_seconds`: how much of a file windows / whole
    mode score.
    """
    policy = getattr(getattr(model, "module", model), "default_policy", REFERENCE_HEAD)
    if window:  # asked for by name: it wins over the whole-clip default of score.py and the app
        policy = replace(policy, mode="windows")
    elif whole_clip and policy.mode == "head":
        policy = replace(policy, mode="windows", file_rule="min")
    if hop_s is not None:
        policy = replace(policy, hop=round(hop_s * SAMPLE_RATE))
    if max_seconds is not None:
        policy = replace(policy, max_seconds=max_seconds)
    return policy


def score_definition(policy: InputPolicy, kind: str) -> str:
    """One sentence saying how a file's score is made (metrics.json, score.py, the app)."""
    n_s = policy.n_samples / SAMPLE_RATE
    of = {
        "head": f"of the first {n_s:.2f} s (tiled if shorter)",
        "windows": f"of the {'mean logits' if policy.file_rule == 'mean' else 'most fake-sounding'} of "
        f"{n_s:.2f} s windows every {policy.hop / SAMPLE_RATE:.2f} s",
        "whole": f"of the whole file (up to {policy.max_seconds:g} s)",
    }[policy.mode]
    norm = ", waveform layer-normalized" if policy.normalize else ""
    return f"score = {SCORE_KINDS[kind]}, {of}{norm}; higher = more real; p_fake = softmax(logits)[:, 0]"


def default_batch_size(device: str | torch.device) -> int:
    """Model inputs per forward pass: 64 on CUDA (near the bf16 throughput plateau), 4 elsewhere (CPU
    inference gains nothing from larger batches, and AASIST's activations take ~0.3 GB per clip)."""
    return 64 if torch.device(device).type == "cuda" else 4


class AudioFiles(Dataset):
    """Items -> the model's inputs under `policy`, decoded in DataLoader workers; a bad file is a status."""

    def __init__(self, items: list[Item], policy: InputPolicy, decoded: Mapping | None = None):
        self.items = items
        self.policy = policy
        self.decoded = decoded or {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        sample = {
            "path": item.path,
            "label": item.label,
            "group": item.group,
            "x": None,
            "starts": None,
            "status": "ok",
            "duration_s": None,
            "scored_s": None,
            "note": "",
        }
        policy = self.policy
        head_s = policy.n_samples / SAMPLE_RATE
        # The head policy uses the first n_samples only: decode no more than that.
        max_duration = head_s if policy.mode == "head" else policy.max_seconds
        try:
            if item.path in self.decoded:  # decoded by the caller (the app): cut it as load_audio would
                audio, info = self.decoded[item.path]
                audio = audio[: math.ceil(max_duration * SAMPLE_RATE)]
                info = AudioInfo(duration_s=info.duration_s, loaded_s=len(audio) / SAMPLE_RATE)
            else:
                audio, info = load_audio(item.path, max_duration=max_duration, return_info=True)
        except AudioError as err:
            sample["status"] = str(err)
            return sample
        except Exception as err:  # noqa: BLE001 - one unexpected failure must not end a batch run
            sample["status"] = f"unexpected error while decoding: {type(err).__name__}: {err}"
            return sample
        notes = []
        if policy.mode == "head":
            x, starts = pad_or_crop(audio, policy.n_samples)[None, :], np.zeros(1)
            scored_s = min(info.duration_s, head_s)
            if info.duration_s > head_s:
                notes.append(f"cropped: scored the first {head_s:.2f} s of {info.duration_s:.2f} s")
        elif policy.mode == "windows":
            x, starts = cut_windows(audio, policy.n_samples, policy.hop)
            scored_s = info.loaded_s
            if info.capped:
                notes.append(
                    f"long file: only the first {scored_s:.1f} s of {info.duration_s:.1f} s were scored"
                )
        else:  # "whole": the file itself (up to max_seconds), one input of its own length
            x, starts = audio[None, :], np.zeros(1)
            scored_s = info.loaded_s
            if info.capped:
                notes.append(
                    f"long file: only the first {scored_s:.1f} s of {info.duration_s:.1f} s were scored"
                )
        if info.note:
            notes.append(info.note)
        if is_silent(audio):
            notes.append("silent: every sample is zero")
        x = torch.from_numpy(np.ascontiguousarray(x))  # (inputs, n_samples) float32
        if policy.normalize:  # over each input as a whole, no affine, eps 1e-5 (AntiDeepfake's dataio)
            x = torch.nn.functional.layer_norm(x, x.shape[-1:])
        sample.update(
            x=x,
            starts=starts.tolist(),
            duration_s=info.duration_s,
            scored_s=scored_s,
            note="; ".join(notes),
        )
        return sample


def score_items(
    model: nn.Module,
    items: list[Item],
    *,
    out_csv: str | os.PathLike | None = None,
    batch_size: int = 16,
    workers: int | None = None,
    device: str | torch.device = "auto",
    policy: InputPolicy | None = None,
    resume: bool = False,
    compile: bool = False,
    amp: str = "auto",
    backend: str = "torch",
    decoded: Mapping[str, tuple[np.ndarray, AudioInfo]] | None = None,
    progress: bool = True,
    desc: str = "scoring",
) -> list[dict]:
    """Score `items` (labels may be None) under `policy` (None: the model's `default_policy`); returns one
    row per item, in item order.

    Row keys: path, label, group, score, p_fake, logit_fake, logit_real (the file's logits: the mean over its
    inputs), status ("ok" or the reason), duration_s, scored_s, n_windows, note, policy (`policy.describe()`),
    score_kind, windows (list of {"start", "end", "score", "p_fake"}, seconds; one entry unless the policy is
    "windows"). Skipped files have score/p_fake/logits None.
    `out_csv`: write rows as they are scored (flushed per batch) and, at the end, rewrite the file in item
    order; `resume=True` keeps its rows (skipped files included) and scores only the missing items.
    `batch_size` counts model inputs (windows). `workers`: decoding processes (None = `default_workers()`,
    0 = decode in this process). `amp`: see `amp_dtype`; "bf16" / "fp16" force autocast, "fp32" never.
    `compile`: `torch.compile` the model (batches are padded to `batch_size` so it compiles once). `backend`:
    "torch", or onnxruntime on a CPU ("onnx", "onnx-int8"; "auto" = onnx for AASIST on a CPU, see
    `onnx_backend.scoring_model`). `desc`: the progress bar's label. Under torchrun, call it on every rank
    with the same items: rank 0 returns all rows and writes the CSV, other ranks return [].
    `decoded`: {path: `load_audio(path, return_info=True)`} of files the caller has decoded already (with a
    `max_duration` at least the policy's), used instead of decoding them again. Memory: module docstring.
    """
    items = checked_items(items, batch_size, amp)
    paths = [i.path for i in items]
    policy = policy or policy_for(model)
    kind = score_kind(model)
    device = dist.device(device) if isinstance(device, str) else torch.device(device)
    workers = default_workers() if workers is None else workers

    writer = ScoreWriter(out_csv, resume) if out_csv is not None and dist.is_main() else None
    done = dist.broadcast(writer.done if writer else {})
    done = {p: done[p] for p in paths if p in done}  # rows of files no longer listed are dropped
    todo = dist.shard([i for i in items if i.path not in done])

    loader = DataLoader(
        AudioFiles(todo, policy, decoded),
        batch_size=batch_size,  # files per step; their windows then go through the model batch_size at a time
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",  # pinned batches copy to the GPU asynchronously
        worker_init_fn=seed_worker,
    )
    model = model.to(device).eval()
    # torch.compile, or the backend's model (the model itself for backend "torch")
    forward = torch.compile(model, dynamic=False) if compile else scoring_model(model, backend, device, amp)

    show = progress and dist.is_main()
    bar = tqdm(total=len(items) - len(done), unit="file", desc=desc, disable=not show, dynamic_ncols=True)
    new_rows: list[dict] = []
    batches = iter(loader)
    for _ in range(dist.all_max(len(loader))):
        # A rank with fewer files joins the collective with an empty batch.
        batch = next(batches, None) or collate([])
        rows = _score_batch(forward, batch, device, amp, batch_size, pad=compile, policy=policy, kind=kind)
        gathered = dist.gather(rows)
        if dist.is_main():
            round_rows = [r for rank_rows in gathered for r in rank_rows]
            if writer:
                writer.write(round_rows)
            new_rows += round_rows
            bar.update(len(round_rows))
    bar.close()
    if not dist.is_main():
        return []
    by_path = {**done, **{r["path"]: r for r in new_rows}}
    rows = [by_path[p] for p in paths]
    if writer:
        writer.finish(rows)
    return rows


def checked_items(items: list, batch_size: int, amp: str) -> list[Item]:
    """score_items' arguments checked: paths become unlabelled Items; a path listed twice is refused (rows
    are keyed by path)."""
    items = [Item(str(i), None) if isinstance(i, (str, os.PathLike)) else i for i in items]
    paths = [i.path for i in items]
    if len(set(paths)) != len(paths):
        dup = next(p for p, n in Counter(paths).items() if n > 1)
        raise ValueError(f"{dup} is listed more than once: every file is scored once, keyed by its path")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    return items


def precision(device: torch.device, amp: str) -> str:
    """What `amp` means on `device`: "fp32", "bf16" or "fp16" (recorded in run.json: it changes scores)."""
    if amp == "fp32" or (amp == "auto" and device.type != "cuda"):
        return "fp32"
    return "fp16" if amp == "fp16" else "bf16"


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of --amp, for scoring, validation and training: "auto" = bf16 on CUDA, else none."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision(device, amp)]


def autocast(device: torch.device, amp: str):
    dtype = amp_dtype(amp, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def collate(samples: list[dict]) -> dict:
    """DataLoader collate (runs in the worker): the step's inputs as one (total inputs, n_samples) tensor, or,
    when their lengths differ (the "whole" policy), as a list of (1, length) tensors."""
    xs = [s.pop("x") for s in samples if s["status"] == "ok"]
    if len({x.shape[-1] for x in xs}) > 1:
        return {"x": xs, "files": samples}
    return {"x": torch.cat(xs) if xs else torch.empty(0, 0), "files": samples}


def _model_batches(x: Tensor | list[Tensor], batch_size: int):
    """(row indices, inputs) to run through the model together: slices of `batch_size` rows of a tensor; of
    inputs of different lengths, groups of equal length only (longest first). Nothing is ever zero-padded:
    the whole-file models have no padding mask, so padding would change a file's score (AntiDeepfake's
    logits move by up to 0.19, golden/antideepfake_tiny), while rows of one unpadded batch are independent."""
    if isinstance(x, Tensor):
        for start in range(0, len(x), batch_size):
            yield list(range(start, min(start + batch_size, len(x)))), x[start : start + batch_size]
        return
    by_length: dict[int, list[int]] = {}
    for i in sorted(range(len(x)), key=lambda i: -x[i].shape[-1]):
        by_length.setdefault(x[i].shape[-1], []).append(i)
    for rows in by_length.values():
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            yield idx, torch.cat([x[i] for i in idx])


def _score_batch(
    forward, batch: dict, device, amp: str, batch_size: int, pad: bool, policy: InputPolicy, kind: str
) -> list[dict]:
    """Run a collated step through the model, `batch_size` inputs at a time; one row per file."""
    x, samples = batch["x"], batch["files"]
    logits = torch.empty(len(x), 2)
    with torch.inference_mode(), autocast(device, amp):
        for rows, chunk in _model_batches(x, batch_size):
            chunk = chunk.to(device, non_blocking=True)
            n = len(chunk)
            if pad and n < batch_size:  # a fixed batch size keeps a compiled model from recompiling
                chunk = torch.cat([chunk, chunk.new_zeros(batch_size - n, chunk.shape[1])])
            logits[rows] = forward(chunk)[:n].float().cpu()
    rows, offset = [], 0
    for s in samples:
        row = {k: s[k] for k in ("path", "label", "group", "status", "duration_s", "scored_s", "note")}
        row.update(score=None, p_fake=None, logit_fake=None, logit_real=None, n_windows=0, windows=[])
        row["llr"] = None  # set by add_verdicts / evaluate when a calibration applies
        row.update(policy=policy.describe(), score_kind=kind)
        n = len(s["starts"]) if s["status"] == "ok" else 0
        file_logits = logits[offset : offset + n]  # (n windows, 2)
        offset += n
        if n and not torch.isfinite(file_logits).all():
            row["status"] = "non-finite model output (NaN/inf logits)"
        elif n:
            row.update(_file_scores(file_logits, s["starts"], s["duration_s"], policy, kind))
        rows.append(row)
    return rows


def _file_scores(
    logits: Tensor, starts: list[float], duration_s: float, policy: InputPolicy, kind: str
) -> dict:
    """A file's score from its inputs' logits (n, 2), under the policy's file rule: the mean logit, or the
    logits of the most fake-sounding window (the lowest score); plus each window's own score."""
    win_scores, win_p_fake = logits_to_scores(logits, kind)
    if policy.file_rule == "min":
        file_logits = logits[int(torch.argmin(win_scores))].unsqueeze(0)  # (1, 2)
    else:
        file_logits = logits.mean(dim=0, keepdim=True)  # (1, 2)
    score, p_fake = logits_to_scores(file_logits, kind)
    # A window ends n_samples after its start, or at the end of a shorter file.
    n_s = policy.n_samples / SAMPLE_RATE
    windows = [
        {"start": start, "end": min(start + n_s, duration_s), "score": sc, "p_fake": pf}
        for start, sc, pf in zip(starts, win_scores.tolist(), win_p_fake.tolist(), strict=True)
    ]
    return {
        "score": score.item(),
        "p_fake": p_fake.item(),
        "logit_fake": file_logits[0, FAKE_INDEX].item(),
        "logit_real": file_logits[0, REAL_INDEX].item(),
        "n_windows": len(starts),
        "windows": windows,
    }
