"""Run folders: what produced their rows (run.json), and when a folder may be reused.

    record = run_record(model, info, checkpoint="la", settings={...}, data={...})
    prepare_run_dir(out_dir, record, resume=False, overwrite=False)  # before anything is scored

An evaluation folder holds one run. `run.json` records what produced its rows: the checkpoint (as given,
the file it resolved to, that file's sha256 when cheap to compute), `checkpoints.weights_sha256` of the
weights (which survives re-saving), `config_sha256` of the model config that shapes the scores (with the
config itself, `model_config`), and every setting that changes a score (`SCORE_SETTINGS`: the input policy's
`describe()`, max-duration, the score kind, precision). The dataset is recorded too, but not
compared: rows are keyed by path, so resuming over a larger or smaller file list keeps them consistent.

Rules, applied before anything is scored:
- a folder with no run in it is used as it is;
- `--resume` continues a run only if run.json's weights and scoring settings equal this run's; otherwise it
  refuses and names each difference (a folder without run.json cannot be checked and is refused too);
- `--overwrite` deletes the earlier run's files first (`RUN_FILES`, its plots, temporary files); other files
  in the folder are left alone;
- anything else with an earlier run in the folder is refused.
Files computed from scores.csv (metrics.json, plots, comparison.json, analyse.py's report) are deleted
before scoring starts, on resume too, and rewritten at the end: a killed run never leaves old metrics beside
new scores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from antispoof.checkpoints.files import config_sha256, effective_config, weights_sha256
from antispoof.checkpoints.registry import sha256sum
from antispoof.reports.plots import PLOT_FILES
from antispoof.utils import json_text, write_json

RUN_FILE = "run.json"
# analyse.py's report, its figures and its cache of the audio's attributes: computed from scores.csv too
REPORT_FILES = (
    "report.md", "report_scores.png", "report_duration.png", "report_change.png", "attributes.csv",
)  # fmt: skip
# stress.py's robustness.json / .png are computed from scores.csv as well
DERIVED_FILES = ("metrics.json", "comparison.json", "robustness.json", "robustness.png", *REPORT_FILES)
RUN_FILES = (RUN_FILE, "args.json", "scores.csv", *DERIVED_FILES)
SCORE_SETTINGS = (
    "weights_sha256", "config_sha256", "arch", "policy", "max_duration_s", "score_kind", "precision",
)  # fmt: skip
CHEAP_HASH_BYTES = 256 * 2**20  # the checkpoint file itself is hashed up to this size (~1 s)


class RunFolderError(ValueError):
    """The run folder cannot be used as asked; the message says what to do."""


def run_record(
    model: nn.Module, info: dict, *, checkpoint: str, settings: dict, data: dict, sha256: str | None = None
) -> dict:
    """run.json's content: the checkpoint and weights fingerprint, `settings` (the SCORE_SETTINGS that apply)
    and `data` (what was scored; informational). `sha256`: the weights' fingerprint if the caller has it."""
    source = str(info.get("source") or checkpoint)
    file_sha256 = None
    if Path(source).is_file() and Path(source).stat().st_size <= CHEAP_HASH_BYTES:
        file_sha256 = sha256sum(source)
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_source": source,
        "checkpoint_file_sha256": file_sha256,
        "weights_sha256": sha256 or weights_sha256(model),
        # The same weights under another config (--model-config pool_ratios) are another detector.
        "config_sha256": config_sha256(model),
        "model_config": effective_config(model),
        "arch": info.get("arch"),
        **settings,
        "data": data,
    }


def differences(before: dict, now: dict) -> list[str]:
    """One line per scoring setting that differs between two run records."""
    lines = []
    for key in SCORE_SETTINGS:
        if key in before or key in now:
            old, new = before.get(key, "(not recorded)"), now.get(key, "(not recorded)")
            if old != new:
                lines.append(f"{key}: {json_text(old, None)} in run.json, {json_text(new, None)} now")
                if key == "weights_sha256":
                    lines[-1] += f" (checkpoint {before.get('checkpoint')} then, {now.get('checkpoint')} now)"
                if key == "config_sha256":
                    lines[-1] += _config_change(before.get("model_config"), now.get("model_config"))
    return lines


def _config_change(before, now) -> str:
    """The config values that differ, e.g. " (pool_ratios: [...] then, [...] now)", when both records hold
    their config."""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return ""
    keys = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    changes = [f"{k}: {json_text(before.get(k), None)} then, {json_text(now.get(k), None)} now" for k in keys]
    return f" ({'; '.join(changes)})"


def make_run_dir(out_dir: str | os.PathLike) -> Path:
    """Create `out_dir` (and its parents); RunFolderError when it cannot be a folder (a file of that name)."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # FileExistsError for a file, NotADirectoryError for a file above it
        raise RunFolderError(
            f"--out-dir {out_dir} cannot be made a folder ({err.strerror}): is it, or a folder above it, a "
            "file? Choose another --out-dir"
        ) from None
    return out_dir


def prepare_run_dir(out_dir: str | os.PathLike, record: dict, *, resume: bool, overwrite: bool) -> None:
    """Apply the module's rules to `out_dir` and write run.json; RunFolderError when the folder is refused."""
    out_dir = make_run_dir(out_dir)
    if resume and overwrite:
        raise RunFolderError("--resume and --overwrite contradict each other: pass one of them")
    earlier = [name for name in RUN_FILES if (out_dir / name).exists()]
    if earlier and overwrite:
        _delete(out_dir, RUN_FILES)
    elif earlier and resume:
        if not (out_dir / RUN_FILE).is_file():
            raise RunFolderError(
                f"{out_dir} has no {RUN_FILE}, so what produced its rows cannot be checked: pass --overwrite "
                "(or another --out-dir) to start over"
            )
        try:
            before = json.loads((out_dir / RUN_FILE).read_text())
        except (OSError, ValueError) as err:
            raise RunFolderError(f"{out_dir / RUN_FILE} is unreadable ({err}): pass --overwrite") from err
        diff = differences(before, record)
        if diff:
            raise RunFolderError(
                f"{out_dir} holds rows scored with other settings; resuming would mix two runs:\n  "
                + "\n  ".join(diff)
                + "\nResume with the settings of run.json, or pass --overwrite (or another --out-dir)."
            )
        _record_backends(before, record)
        _delete(out_dir, DERIVED_FILES)  # recomputed from the completed scores.csv at the end
    elif earlier:
        raise RunFolderError(
            f"{out_dir} already holds a run ({', '.join(earlier)}): pass --resume to finish it, --overwrite "
            "to replace it, or choose another --out-dir"
        )
    write_json(out_dir / RUN_FILE, record)


def _record_backends(before: dict, record: dict) -> None:
    """A run resumed with another --backend (PyTorch and onnxruntime agree within 1e-5, so it may continue)
    records both, in order: `backends` lists them and `backend` reads "onnx, then torch", instead of naming
    only the last one as if every row came from it."""
    backends = list(before.get("backends") or [before.get("backend")])
    if record.get("backend") not in backends:
        backends.append(record.get("backend"))
    backends = [b for b in backends if b]
    if len(backends) > 1:
        record["backends"] = backends
        record["backend"] = ", then ".join(backends)


def _delete(out_dir: Path, names: tuple[str, ...]) -> None:
    """Delete `names` and the plots an earlier run wrote (those its metrics.json lists, and plots.PLOT_FILES
    for a run killed before it wrote metrics.json), and temporary files of killed atomic writes."""
    plots = set(PLOT_FILES)
    try:
        plots.update(json.loads((out_dir / "metrics.json").read_text()).get("plots") or [])
    except (OSError, ValueError, AttributeError):
        pass  # no (readable) metrics.json: the known plot names only
    for name in [*names, *DERIVED_FILES, *sorted(plots)]:
        if name == Path(name).name:  # a bare file name: never a path out of the folder
            (out_dir / name).unlink(missing_ok=True)
    for leftover in out_dir.glob(".*.tmp*"):  # utils.atomic_write_text, plots: ".NAME.*.tmp[.png]"
        leftover.unlink()
