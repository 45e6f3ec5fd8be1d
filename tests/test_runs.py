"""runs.py through evaluate_custom.py: run.json provenance, --resume refuses to mix runs, --overwrite,
derived files never outlive the scores they came from, and a bad --compare baseline fails first."""

import json
import shutil

import pytest
import torch
from torch import nn

import evaluate_custom
import evaluate_custom_for
from antispoof.audio.datasets import load_dataset
from antispoof.checkpoints.files import load_model, save_checkpoint, weights_sha256
from antispoof.runs import REPORT_FILES, prepare_run_dir
from antispoof.scoring.evaluate import evaluate


@pytest.fixture(scope="module")
def checkpoints(tiny, tmp_path_factory):
    """Two project checkpoints of the tiny model: its weights, and the same with one weight changed."""
    folder = tmp_path_factory.mktemp("ckpt")
    save_checkpoint(folder / "a.pt", tiny)
    other = load_model(folder / "a.pt")[0]
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    save_checkpoint(folder / "b.pt", other)
    return folder / "a.pt", folder / "b.pt"


@pytest.fixture(scope="module")
def two_files(audio_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    for label, name in (("real", "118-121721-0000.flac"), ("fake", "espeak_01.wav")):
        (root / label).mkdir()
        shutil.copy(audio_dir / "sample_custom" / label / name, root / label / name)
    return root


def run(data, checkpoint, out, *extra):
    argv = ["--data", str(data), "--checkpoint", str(checkpoint), "--out-dir", str(out), "--workers", "0"]
    return evaluate_custom.main(evaluate_custom.parse_args([*argv, "--bootstrap", "0", *extra]))


@pytest.fixture(scope="module")
def finished(two_files, checkpoints, tmp_path_factory):
    """A complete run with checkpoint a.pt."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run(two_files, checkpoints[0], out)
    return out


def test_run_json_records_what_produced_the_rows(finished, checkpoints, tiny):
    record = json.loads((finished / "run.json").read_text())
    assert record["weights_sha256"] == weights_sha256(tiny)
    assert record["checkpoint"] == str(checkpoints[0]) and len(record["checkpoint_file_sha256"]) == 64
    assert (record["policy"], record["max_duration_s"], record["precision"]) == ("head n=64600", None, "fp32")
    assert json.loads((finished / "metrics.json").read_text())["weights_sha256"] == record["weights_sha256"]


@pytest.mark.parametrize(
    "change, named",
    [
        (["b"], "weights_sha256"),  # another checkpoint
        (["a", "--window"], 'policy: "head n=64600" in run.json, "windows n=64600 hop=32300" now'),
    ],
)
def test_resume_refuses_other_settings_and_names_them(
    finished, two_files, checkpoints, tmp_path, change, named
):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "metrics.json").unlink()  # as a killed run leaves it
    before = (out / "scores.csv").read_bytes()
    checkpoint = checkpoints[0] if change[0] == "a" else checkpoints[1]
    with pytest.raises(SystemExit) as exit_info:
        run(two_files, checkpoint, out, "--resume", *change[1:])
    assert "resuming would mix two runs" in str(exit_info.value) and named in str(exit_info.value)
    assert (out / "scores.csv").read_bytes() == before  # nothing scored, nothing rewritten


def test_existing_run_is_refused_without_resume_or_overwrite(finished, two_files, checkpoints, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    with pytest.raises(SystemExit, match="already holds a run .*pass --resume .* --overwrite"):
        run(two_files, checkpoints[1], out)
    (out / "run.json").unlink()  # an older run, without provenance
    with pytest.raises(SystemExit, match="no run.json"):
        run(two_files, checkpoints[0], out, "--resume")


class DiesAfterOneBatch(nn.Module):
    """The model, killed (KeyboardInterrupt) on its second forward pass, as a run killed part-way."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > 1:
            raise KeyboardInterrupt
        return self.model(x)


def test_overwrite_clears_the_old_run_before_scoring(finished, two_files, checkpoints, tiny, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    assert (out / "metrics.json").exists() and list(out.glob("*.png"))
    (out / "notes.md").write_text("the user's own file")  # not the run's: left alone
    record = {"weights_sha256": "new", "policy": "head n=64600"}
    prepare_run_dir(out, record, resume=False, overwrite=True)
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            DiesAfterOneBatch(tiny), load_dataset(two_files), out, batch_size=1, workers=0, n_bootstrap=0
        )
    # The killed run's folder holds its own partial scores and run.json, and nothing of the old run.
    assert sorted(p.name for p in out.iterdir()) == ["notes.md", "run.json", "scores.csv"]
    assert json.loads((out / "run.json").read_text()) == record
    assert len((out / "scores.csv").read_text().splitlines()) == 2  # header + the one file scored


def test_a_new_folder_is_used_as_it_is(tmp_path):
    (tmp_path / "figure.png").write_bytes(b"\x89PNG")  # a folder without a run: nothing is deleted
    prepare_run_dir(tmp_path, {"weights_sha256": "x"}, resume=False, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "run.json"]


def test_resume_deletes_stale_metrics_before_scoring(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    for name in REPORT_FILES:  # analyse.py's report of the old rows
        (out / name).write_text("stale")
    prepare_run_dir(out, json.loads((out / "run.json").read_text()), resume=True, overwrite=False)
    assert sorted(p.name for p in out.iterdir()) == ["args.json", "run.json", "scores.csv"]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"auc": "high"}', "\xff\xfe"])
def test_compare_with_a_corrupt_baseline_fails_before_the_evaluation(
    two_files, checkpoints, tmp_path, content
):
    baseline = tmp_path / "la"
    baseline.mkdir()
    (baseline / "metrics.json").write_bytes(content.encode("latin-1"))
    out = tmp_path / "for"
    argv = ["--data", str(two_files), "--checkpoint", str(checkpoints[0]), "--out-dir", str(out)]
    with pytest.raises(SystemExit, match="error: .*metrics.json") as exit_info:
        evaluate_custom_for.main(evaluate_custom_for.parse_args([*argv, "--compare", str(baseline)]))
    assert "leave out --compare" in str(exit_info.value)
    assert not out.exists()  # refused before anything was scored


def test_nan_calibration_threshold_is_ignored_with_a_warning(tiny, two_files, tmp_path, capsys):
    import antispoof.evaluation.calibration as calibration
    from antispoof.checkpoints.files import weights_sha256

    cal = calibration.fit([1.0, 2.0], [-1.0, 0.5], policy="head n=64600", weights_sha256=weights_sha256(tiny))
    checkpoint = tmp_path / "nan.pt"
    save_checkpoint(checkpoint, tiny, calibration={**cal, "scale": float("nan")})
    metrics = run(two_files, checkpoint, tmp_path / "run")
    err = capsys.readouterr().err
    assert "calibration not applied" in err and "scale must be a finite number" in err
    text = (tmp_path / "run" / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["auc"] == metrics["auc"] is not None
