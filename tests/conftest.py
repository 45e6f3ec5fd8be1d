"""Shared test fixtures: the ../shared reference data and small generated datasets."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"
AUDIO = SHARED / "audio"


def require_shared(path: Path) -> Path:
    """Return `path`, or fail loudly in CI / skip elsewhere when the ../shared data is missing."""
    if path.exists():
        return path
    message = f"{path} is missing: clone the repo with ../shared beside it (see README)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def golden() -> Path:
    return require_shared(GOLDEN)


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    return require_shared(AUDIO)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch, tmp_path):
    """Real wandb, but never online from a test."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tiny(golden):
    """The tiny golden SSL-AASIST (random weights, reference key names; 4 heads, which the file cannot tell).
    Shared by every test module that does not define its own: tests score with it, none may change it."""
    from antispoof.checkpoints.files import load_model

    model, _ = load_model(
        golden / "ssl_aasist_tiny" / "model_state_dict.pt", config={"num_attention_heads": 4}
    )
    return model


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny, tmp_path_factory):
    """The tiny model as a project checkpoint, so every command line loads it without extra flags."""
    from antispoof.checkpoints.files import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, tiny)
    return path


@pytest.fixture(scope="session")
def calibrated_aasist(golden, audio_dir, tmp_path_factory):
    """A copy of the released AASIST with a whole-clip calibration fitted the way the README says, on 16 of
    the sample's files (evaluate_custom.py --whole-clip, then calibrate.py); (checkpoint, run folder)."""
    import shutil

    import calibrate
    import evaluate_custom

    folder = tmp_path_factory.mktemp("calibrated_aasist")
    checkpoint = folder / "AASIST.pth"
    shutil.copy(golden / "aasist" / "AASIST.pth", checkpoint)
    run = folder / "sample_run"
    evaluate_custom.main(
        evaluate_custom.parse_args(
            ["--data", str(audio_dir / "sample_custom"), "--checkpoint", str(checkpoint), "--whole-clip",
             "--out-dir", str(run), "--limit", "16", "--bootstrap", "0", "--workers", "0", "--device", "cpu"]
        )
    )  # fmt: skip
    calibrate.main(calibrate.parse_args(["--run", str(run)]))
    return checkpoint, run
