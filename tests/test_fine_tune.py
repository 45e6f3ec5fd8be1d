"""fine_tune_for.py / training.py on CPU: real models (tiny SSL-AASIST, AASIST-L), real audio, real wandb.

The toy FoR folder is built from ../shared/audio/sample_custom (real = LibriSpeech FLAC, fake = espeak WAV).
Its validation files are copies of the training files, so a model that learns the training labels must rank
them the right way round: that makes the label-direction check sharp with a handful of CPU steps.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import antispoof.evaluation.calibration as calibration
import antispoof.training.data as train_data
import antispoof.training.loop as training
import antispoof.training.state as train_state
import antispoof.training.trainer as trainer
import evaluate_custom
import fine_tune_for
from antispoof.audio.datasets import Item
from antispoof.checkpoints.files import load_model, read_checkpoint, save_checkpoint, weights_sha256
from antispoof.evaluation.metrics import compute_metrics
from antispoof.networks import FAKE_INDEX, REAL_INDEX, build_model
from antispoof.scoring.core import score_items
from antispoof.scoring.scorefile import read_scores
from antispoof.training.config import settings_text

REPO = Path(__file__).resolve().parents[1]
# The learnable toy setting: frozen tiny front end, the back end trained with a high rate, 1 step per epoch.
TOY_FLAGS = ["--batch-size", "6", "--lr", "1e-3", "--freeze-frontend", "--workers", "0", "--quiet"]
TOY_EPOCHS = 4


# ----------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_init(golden, toy_for, tmp_path_factory) -> Path:
    """The golden tiny SSL-AASIST as a project checkpoint, made a neutral starting point for the toy task.

    The golden back end is random with perturbed BatchNorm statistics: the statistics are re-estimated on the
    toy training clips (so eval mode sees what training sees) and the output layer is zeroed (every score
    starts equal, the loss at ln 2). Whatever ranking the model then has comes from the training labels.
    """
    tiny = golden / "ssl_aasist_tiny" / "model_state_dict.pt"
    model, _ = load_model(tiny, config={"num_attention_heads": 4})
    clips = train_data.ClipDataset(train_data.load_split(toy_for, "auto", "training", "training"))
    x = train_data.collate_clips([clips[i] for i in range(len(clips))])["x"]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: the statistics of this one batch
    with torch.no_grad():
        model.train()(x)
        model.out_layer.weight.zero_()
        model.out_layer.bias.zero_()
    for bn in norms:
        bn.momentum = 0.1
    path = tmp_path_factory.mktemp("init") / "tiny_ssl_aasist.pt"
    save_checkpoint(path, model.eval())
    return path


@pytest.fixture
def placeholder_figures(monkeypatch):
    """Laying out and rendering figures is a large part of a tiny run and not what the tests using this are
    about: each figure's file is still written and committed where the real one is, with placeholder bytes."""
    monkeypatch.setattr(Figure, "savefig", lambda self, path, **kw: Path(path).write_bytes(b"\x89PNG"))
    monkeypatch.setattr(Figure, "tight_layout", lambda self, **kw: None)


def make_for(root: Path, audio_dir: Path, split_files: dict) -> Path:
    """A FoR layout ROOT/{split}/{real,fake}/ with copies of sample_custom files: {split: (reals, fakes)}."""
    reals = sorted((audio_dir / "sample_custom" / "real").iterdir())
    fakes = sorted((audio_dir / "sample_custom" / "fake").iterdir())
    for split, (real_idx, fake_idx) in split_files.items():
        for label, files, idx in (("real", reals, real_idx), ("fake", fakes, fake_idx)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in idx:
                shutil.copy(files[i], folder / files[i].name)
    return root


@pytest.fixture(scope="module")
def toy_for(audio_dir, tmp_path_factory) -> Path:
    three = ([0, 1, 2], [0, 1, 2])
    return make_for(tmp_path_factory.mktemp("toy") / "for", audio_dir,
                    {"training": three, "validation": three, "testing": ([5], [5])})  # fmt: skip


def run(data: Path, out: Path, init: Path, *flags: str, epochs: int = TOY_EPOCHS) -> dict:
    argv = ["--data", str(data), "--out-dir", str(out), "--checkpoint", str(init), "--epochs", str(epochs)]
    return fine_tune_for.main(fine_tune_for.parse_args(argv + TOY_FLAGS + list(flags)))


@pytest.fixture(scope="module")
def toy_run(toy_for, tiny_init, tmp_path_factory) -> tuple[Path, dict]:
    """A full run: 5 epochs, wandb offline, test split scored at the end."""
    out = tmp_path_factory.mktemp("toy_run") / "run"
    os.environ["WANDB_SILENT"] = "true"
    history = run(toy_for, out, tiny_init, "--wandb", "offline")
    return out, history


# ----------------------------------------------------------------------------------------------------
# End to end with the tiny SSL-AASIST
# ----------------------------------------------------------------------------------------------------


def test_run_writes_checkpoints_history_curves_and_test_scores(toy_run):
    out, history = toy_run
    for name in (
        "args.json",
        "last.pt",
        "best.pt",
        "history.json",
        "loss_curves.png",
        "test/scores.csv",
        "test/metrics.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    settings = json.loads((out / "args.json").read_text())  # the effective settings, recipe included
    assert settings["lr"] == 1e-3 and settings["epochs"] == TOY_EPOCHS and settings["weight_decay"] == 0.0
    assert settings["recipe"] == "original"
    assert settings["from_recipe"] == ["loss", "rawboost", "weight_decay"]
    saved = json.loads((out / "history.json").read_text())
    assert saved == json.loads(json.dumps(history))
    assert [e["epoch"] for e in saved["epochs"]] == list(range(1, TOY_EPOCHS + 1))
    assert len(saved["steps"]) == TOY_EPOCHS  # 6 clips, batch 6: one optimizer step per epoch
    assert saved["positive_class"].startswith("real")
    best = min(saved["epochs"], key=lambda e: e["val_eer"])  # the first epoch with the lowest validation EER
    assert saved["best"]["epoch"] == best["epoch"]
    test_metrics = json.loads((out / "test" / "metrics.json").read_text())
    assert (
        test_metrics["epoch"] == saved["best"]["epoch"]
        and test_metrics["n_real"] == test_metrics["n_fake"] == 1
    )
    assert saved["test"]["auc"] == test_metrics["auc"]


def test_loss_goes_down_and_labels_point_the_right_way(toy_run):
    """Positive class real, score logits[:, 1]: after training on the labels, validation AUC > 0.5."""
    epochs = toy_run[1]["epochs"]
    assert epochs[0]["train_loss"] == pytest.approx(np.log(2), abs=1e-3)  # zeroed output layer: ln 2
    losses = [e["train_loss"] for e in epochs]
    assert losses == sorted(losses, reverse=True) and losses[-1] < losses[0] - 0.03
    assert all(e["val_auc"] > 0.5 for e in epochs)


def test_best_checkpoint_reloads_with_its_validation_numbers_and_calibration(toy_run, toy_for):
    out, history = toy_run
    model, info = load_model(out / "best.pt")
    assert info["format"] == "project" and info["arch"] == "ssl_aasist"
    # The calibration: score -> LLR fitted on the best epoch's validation scores, for these weights, under
    # the policy validation scores with (the first 64,600 samples).
    cal = info["calibration"]
    best_row = history["epochs"][history["best"]["epoch"] - 1]
    assert cal["fit"]["data"] == "validation split" and cal["fit"]["epoch"] == history["best"]["epoch"]
    assert (cal["scale"], cal["offset"]) == (best_row["val_llr_scale"], best_row["val_llr_offset"])
    assert cal["weights_sha256"] == weights_sha256(model) and cal["policy"] == "head n=64600"
    # best.pt is lean (weights, config, calibration): the weights' bytes plus torch's per-tensor framing (its
    # name in the pickle, a zip record, 64-byte alignment: ~360 B here) and a few KB, no optimizer state.
    tensors = model.state_dict().values()
    weight_bytes = sum(t.numel() * t.element_size() for t in tensors)
    assert set(torch.load(out / "best.pt", weights_only=True)) == {"format", "arch", "config", "model",
                                                                   "calibration"}  # fmt: skip
    assert (out / "best.pt").stat().st_size <= weight_bytes + 512 * len(tensors) + 8 * 1024
    # last.pt holds the whole training state, which training.py reads itself.
    state = read_checkpoint(out / "last.pt")["training"]
    assert {"optimizer", "scheduler", "rng", "args", "step", "history"} <= set(state)
    assert state["args"]["lr"] == 1e-3 and state["epoch"] == TOY_EPOCHS
    assert (out / "last.pt").stat().st_size > 2 * weight_bytes  # Adam's two moments
    # The reloaded weights reproduce the validation AUC/EER the run recorded for that epoch.
    rows = score_items(model, train_data.load_split(toy_for, "auto", "validation", "validation"), workers=0)
    metrics = compute_metrics([r["label"] for r in rows], [r["score"] for r in rows], n_bootstrap=0)
    assert metrics["auc"] == pytest.approx(history["best"]["val_auc"])
    assert metrics["eer_threshold"] == pytest.approx(history["best"]["val_threshold"], abs=1e-5)
    real, fake = ([r["score"] for r in rows if r["label"] == lab] for lab in ("real", "fake"))
    assert calibration.fit_affine(real, fake) == pytest.approx((cal["scale"], cal["offset"]), abs=1e-4)
    assert load_model(out / "last.pt")[1]["calibration"]["fit"]["epoch"] == TOY_EPOCHS
    # The test split was scored once with that calibration applied: raw and calibrated metrics side by side.
    test_metrics = json.loads((out / "test" / "metrics.json").read_text())
    assert test_metrics["calibration"]["scale"] == cal["scale"] and "cllr" in test_metrics["calibrated"]


def test_calibrate_refuses_validation_scores_of_other_weights(toy_run):
    """validation/ holds the last epoch's scores; best.pt is an earlier epoch's weights. calibrate.py refused
    nothing before and replaced best.pt's calibration with one fitted on the last epoch's scores (seen);
    now validation/run.json names the weights, and --run RUN says best.pt is calibrated already."""
    import calibrate

    out, history = toy_run
    record = json.loads((out / "validation" / "run.json").read_text())
    assert record["epoch"] == TOY_EPOCHS and record["policy"] == "head n=64600"
    assert record["weights_sha256"] == weights_sha256(load_model(out / "last.pt")[0])
    assert history["best"]["epoch"] < TOY_EPOCHS  # the case of the issue: best.pt holds other weights
    before = read_checkpoint(out / "best.pt")["calibration"]
    argv = ["--run", str(out / "validation"), "--checkpoint", str(out / "best.pt")]
    with pytest.raises(SystemExit, match=f"other weights \\(epoch {TOY_EPOCHS}'s weights"):
        calibrate.main(calibrate.parse_args(argv))
    assert read_checkpoint(out / "best.pt")["calibration"] == before
    assert not calibration.side_file(out / "best.pt").exists()
    with pytest.raises(SystemExit, match="best.pt already carries a calibration.*evaluate_custom.py"):
        calibrate.main(calibrate.parse_args(["--run", str(out)]))


def test_validation_scores_equal_evaluate_custom_scores(toy_run, toy_for, tmp_path):
    """Validation goes through scoring.py: the last epoch's validation scores (RUN/validation/scores.csv,
    weights in last.pt) are evaluate_custom.py's scores of the validation split with last.pt."""
    out, history = toy_run
    argv = ["--data", str(toy_for), "--split", "validation", "--checkpoint", str(out / "last.pt")]
    argv += ["--out-dir", str(tmp_path / "eval"), "--workers", "0", "--bootstrap", "0", "--device", "cpu"]
    metrics = evaluate_custom.main(evaluate_custom.parse_args(argv))
    validation = {r["path"]: r for r in read_scores(out / "validation" / "scores.csv")}
    evaluated = {r["path"]: r for r in read_scores(tmp_path / "eval" / "scores.csv")}
    assert sorted(validation) == sorted(evaluated) and len(validation) == 6
    for path, row in evaluated.items():
        assert validation[path]["policy"] == row["policy"] == "head n=64600"
        for key in ("score", "p_fake", "logit_fake", "logit_real"):
            assert validation[path][key] == pytest.approx(row[key], abs=1e-5), (path, key)
    last = history["epochs"][-1]
    assert metrics["auc"] == pytest.approx(last["val_auc"])
    assert metrics["eer"] == pytest.approx(last["val_eer"])


def read_wandb_history(run_file: Path) -> list[dict]:
    """History rows of an offline .wandb file: its record framing (LevelDB-log style, 32 KiB blocks, 7-byte
    headers) read here, each record decoded with wandb's own protobuf definitions."""
    from wandb.proto import wandb_internal_pb2

    blob = run_file.read_bytes()
    assert blob[:4] == b":W&B", "not a wandb transaction log"
    rows, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(blob):
        if block - pos % block < 7:  # too little room left in the block for a header: padding
            pos += block - pos % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", blob[pos : pos + 7])
        pending += blob[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})  # fmt: skip
    return rows


def test_wandb_offline_run_holds_the_curves(toy_run):
    out, history = toy_run
    run_files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 1
    rows = read_wandb_history(run_files[0])
    step_rows = [r for r in rows if "train/loss" in r]
    assert [r["_step"] for r in step_rows] == [s["step"] for s in history["steps"]]
    assert [r["train/loss"] for r in step_rows] == pytest.approx([s["loss"] for s in history["steps"]])
    assert all("lr" in r for r in step_rows)
    epoch_rows = [r for r in rows if "val/eer" in r]
    assert [r["val/auc"] for r in epoch_rows] == pytest.approx([e["val_auc"] for e in history["epochs"]])
    assert [r["val/loss"] for r in epoch_rows] == pytest.approx([e["val_loss"] for e in history["epochs"]])


# ----------------------------------------------------------------------------------------------------
# Label safety
# ----------------------------------------------------------------------------------------------------


def test_flipped_label_mapping_is_refused(toy_for, tiny_init, tmp_path, monkeypatch):
    monkeypatch.setattr(train_data, "LABEL_TO_INDEX", {"fake": REAL_INDEX, "real": FAKE_INDEX})
    with pytest.raises(RuntimeError, match="invert the detector"):
        run(toy_for, tmp_path / "run", tiny_init, "--wandb", "disabled")


def test_a_flipped_training_run_fails_the_direction_check(
    toy_run, toy_for, tiny_init, tmp_path, monkeypatch, placeholder_figures
):
    """Without the guard, the flip reproduces the original bug: the same run gives validation AUC < 0.5 (the
    mirror image of the correct run), so the AUC > 0.5 check of the correct run does test the direction."""
    for module in (train_data, trainer):  # the training targets and the validation loss's
        monkeypatch.setattr(module, "LABEL_TO_INDEX", {"fake": REAL_INDEX, "real": FAKE_INDEX})
    monkeypatch.setattr(training, "check_label_convention", lambda mapping=None: None)
    flipped = run(toy_for, tmp_path / "run", tiny_init, "--wandb", "disabled", "--test-split", "none")
    for bad, good in zip(flipped["epochs"], toy_run[1]["epochs"], strict=True):
        assert bad["val_auc"] < 0.5 < good["val_auc"]
        assert bad["val_auc"] == pytest.approx(1 - good["val_auc"])


def test_class_weights_follow_the_class_indices():
    w = trainer.class_weights(fake_weight=0.1, real_weight=0.9)
    assert w[REAL_INDEX] == pytest.approx(0.9) and w[FAKE_INDEX] == pytest.approx(0.1)


# ----------------------------------------------------------------------------------------------------
# Exact resume
# ----------------------------------------------------------------------------------------------------


def test_one_epoch_plus_resume_equals_two_epochs(audio_dir, tiny_init, tmp_path, placeholder_figures):
    """Full fine-tuning (front end too), 2 steps per epoch, warm-up, random crops and RawBoost."""
    data = make_for(tmp_path / "for", audio_dir, {"training": ([0, 1], [0, 1]), "validation": ([3], [3])})
    flags = ["--batch-size", "2", "--lr", "1e-3", "--warmup-steps", "3", "--crop", "random",
             "--rawboost", "5", "--workers", "0", "--quiet", "--wandb", "disabled",
             "--test-split", "none"]  # fmt: skip

    def go(out, epochs, *extra):
        argv = [
            "--data",
            str(data),
            "--out-dir",
            str(out),
            "--checkpoint",
            str(tiny_init),
            "--epochs",
            str(epochs),
        ]
        return fine_tune_for.main(fine_tune_for.parse_args(argv + flags + list(extra)))

    straight = go(tmp_path / "straight", 2)
    go(tmp_path / "split", 1)
    with pytest.raises(SystemExit, match="--resume"):
        go(tmp_path / "split", 2)  # an existing run is never overwritten by accident
    resumed = go(tmp_path / "split", 2, "--resume")

    a, _ = load_model(tmp_path / "straight" / "last.pt")
    b, _ = load_model(tmp_path / "split" / "last.pt")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), [k for k in sa if not torch.equal(sa[k], sb[k])][:5]
    assert [s["loss"] for s in resumed["steps"]] == [s["loss"] for s in straight["steps"]]
    assert [s["lr"] for s in resumed["steps"]] == [s["lr"] for s in straight["steps"]]
    assert len(straight["steps"]) == 4
    # The first run's weights moved: the comparison above is not between two untouched models.
    init, _ = load_model(tiny_init)
    assert not torch.equal(init.state_dict()["LL.weight"], sa["LL.weight"])


class Killed(BaseException):
    """A kill at a file write (BaseException: no `except Exception` of the code under test stops it)."""


def test_a_kill_at_any_file_write_resumes_to_an_agreeing_run(
    audio_dir, tmp_path, monkeypatch, placeholder_figures
):
    """Every file of a run is committed by os.replace: kill the run at the N-th one, for every N (leaving the
    temporary file behind, as a real kill does), then --resume. best.pt, history.json and test/ must agree
    and equal the uninterrupted run's, with no temporary or staged file left. A random tiny AASIST (6.7k
    parameters) keeps the ~20 runs fast; with seed 1 its first epoch ranks the pair the wrong way round and
    the second improves, so a kill can also strand an older best.pt."""
    data = make_for(tmp_path / "for", audio_dir, {"training": ([0], [0]), "validation": ([0], [0]),
                                                  "testing": ([5], [5])})  # fmt: skip
    torch.manual_seed(0)
    tiny = build_model(
        "aasist", {"first_conv": 16, "filts": [8, [1, 4], [4, 4], [4, 8], [8, 8]], "gat_dims": [8, 8]}
    )
    save_checkpoint(tmp_path / "tiny_aasist.pt", tiny.eval())
    real_replace, calls, kill_at = os.replace, [], [0]

    def replace(src, dst, *args, **kwargs):
        calls.append(Path(dst).name)
        if len(calls) == kill_at[0]:
            if str(src).endswith(".tmp"):
                os.link(src, f"{src}.killed.tmp")  # what a SIGKILL would leave behind
            raise Killed
        return real_replace(src, dst, *args, **kwargs)

    def go(out, *extra):
        argv = ["--data", str(data), "--out-dir", str(out), "--checkpoint", str(tmp_path / "tiny_aasist.pt"),
                "--epochs", "2", "--batch-size", "2", "--lr", "1e-2", "--seed", "1", "--workers", "0",
                "--quiet", "--wandb", "disabled"]  # fmt: skip
        return fine_tune_for.main(fine_tune_for.parse_args(argv + list(extra)))

    monkeypatch.setattr(os, "replace", replace)
    straight = go(tmp_path / "straight")
    writes = list(calls)
    assert straight["best"]["epoch"] == 2  # the second epoch improves: a kill can strand an older best.pt
    assert writes.count("best.pt") == 2 and "metrics.json" in writes
    for n in range(1, len(writes) + 1):
        out = tmp_path / f"kill{n}"
        calls.clear()
        kill_at[0] = n
        with pytest.raises(Killed):
            go(out)
        kill_at[0] = 0
        resumed = go(out, "--resume")
        where = f"killed at write {n} ({writes[n - 1]})"
        assert resumed["best"] == straight["best"], where
        assert json.loads((out / "history.json").read_text()) == json.loads(json.dumps(resumed)), where
        best, _ = load_model(out / "best.pt")
        assert weights_sha256(best) == straight["best"]["weights_sha256"], where
        test = json.loads((out / "test" / "metrics.json").read_text())
        assert (test["epoch"], test["weights_sha256"]) == (2, straight["best"]["weights_sha256"]), where
        assert [e["val_eer"] for e in resumed["epochs"]] == [1.0, 0.0], where
        assert resumed["test"]["auc"] == test["auc"] == straight["test"]["auc"], where
        left = [p.name for p in out.rglob("*") if p.name.endswith((".tmp", ".staged"))]
        assert not left, (where, left)

    # A finished run resumed with more epochs that finds a new best scores the test split again with it.
    assert go(tmp_path / "more", "--epochs", "1")["test"]["epoch"] == 1
    more = go(tmp_path / "more", "--resume")
    assert (
        more["test"]["epoch"]
        == 2
        == json.loads((tmp_path / "more" / "test" / "metrics.json").read_text())["epoch"]
    )


# ----------------------------------------------------------------------------------------------------
# AASIST-L (real weights) and torchrun
# ----------------------------------------------------------------------------------------------------


def test_aasist_l_fine_tunes_end_to_end(golden, audio_dir, tmp_path):
    data = make_for(tmp_path / "for", audio_dir,
                    {"training": ([0], [0]), "validation": ([1], [1]), "testing": ([2], [2])})  # fmt: skip
    shutil.copy(audio_dir / "broken" / "truncated.flac", data / "validation" / "real")  # dropped, reported
    out = tmp_path / "run"
    init = golden / "aasist" / "AASIST-L.pth"
    argv = ["--data", str(data), "--out-dir", str(out), "--checkpoint", str(init), "--epochs", "1",
            "--batch-size", "2", "--lr", "1e-5", "--workers", "0", "--quiet",
            "--wandb", "disabled"]  # fmt: skip
    history = fine_tune_for.main(fine_tune_for.parse_args(argv))
    model, info = load_model(out / "best.pt")
    assert info["arch"] == "aasist" and info["calibration"]["fit"]["data"] == "validation split"
    # AASIST-L already tells LibriSpeech from espeak-ng; a tiny step at lr 1e-5 keeps it that way.
    assert history["epochs"][0]["val_auc"] == 1.0
    assert history["epochs"][0]["val_files"] == 2
    skipped = (out / "skipped_files.tsv").read_text().splitlines()
    assert len(skipped) == 1 and skipped[0].startswith(str(data / "validation" / "real" / "truncated.flac"))
    assert history["test"]["auc"] == 1.0
    with pytest.raises(SystemExit, match="--freeze-frontend applies to SSL-AASIST"):
        fine_tune_for.main(
            fine_tune_for.parse_args(argv[:3] + [str(tmp_path / "run2")] + argv[4:] + ["--freeze-frontend"])
        )


def test_torchrun_two_processes(toy_for, tiny_init, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "fine_tune_for.py"), "--data", str(toy_for), "--out-dir", str(out),
           "--checkpoint", str(tiny_init), "--epochs", "1", "--batch-size", "1", "--lr", "3e-3",
           "--workers", "0", "--quiet", "--wandb", "disabled"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"][0]["val_files"] == 6  # both ranks' validation shards gathered
    # 6 clips = 2 processes x batch 1 x 3 steps: DDP would stop at step 2 if a parameter took no gradient
    # (it runs without its unused-parameter search).
    assert len(history["steps"]) == 3
    assert (out / "test" / "metrics.json").is_file()
    load_model(out / "best.pt")


# ----------------------------------------------------------------------------------------------------
# User errors
# ----------------------------------------------------------------------------------------------------


def test_clear_errors_for_wrong_layout_empty_split_and_missing_class(audio_dir, tiny_init, tmp_path):
    def error_of(data):
        with pytest.raises(SystemExit) as err:
            run(data, tmp_path / "run", tiny_init, "--wandb", "disabled")
        return str(err.value)

    junk = tmp_path / "junk"
    (junk / "stuff").mkdir(parents=True)
    (junk / "stuff" / "notes.txt").write_text("no audio here")
    assert "cannot read the training split" in error_of(junk)

    # A real/fake folder without splits would train and validate on the same files.
    assert "share 40 files" in error_of(audio_dir / "sample_custom")

    empty = make_for(tmp_path / "empty", audio_dir, {"training": ([0], [0]), "testing": ([1], [1])})
    (empty / "validation" / "real").mkdir(parents=True)
    assert "validation split" in error_of(empty)

    one_class = make_for(tmp_path / "one", audio_dir, {"training": ([0], [0]), "validation": ([1], [])})
    message = error_of(one_class)
    assert "no 'fake' files" in message and "validation" in message


# ----------------------------------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------------------------------


def test_clips_are_a_function_of_seed_epoch_and_index(audio_dir):
    items = [Item(str(p), "real") for p in sorted((audio_dir / "sample_custom" / "real").iterdir())[:2]]
    ds = train_data.ClipDataset(items, crop="random", rawboost=5, seed=7)
    first = ds[1]["x"]
    assert first.shape == (train_data.NB_SAMP,) and first.dtype == torch.float32
    assert torch.equal(first, ds[1]["x"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[1]["x"])
    head = train_data.ClipDataset(items, crop="head")[0]
    assert head["y"] == REAL_INDEX and head["skipped"] == []


def test_unreadable_training_file_is_reported_and_replaced(audio_dir):
    good = sorted((audio_dir / "sample_custom" / "fake").iterdir())[0]
    items = [Item(str(audio_dir / "broken" / "empty_0_bytes.wav"), "real"), Item(str(good), "fake")]
    sample = train_data.ClipDataset(items)[0]
    assert sample["index"] == 1 and sample["y"] == FAKE_INDEX
    assert sample["skipped"][0][0].endswith("empty_0_bytes.wav") and "empty" in sample["skipped"][0][1]


def test_recipe_is_shown_in_help_and_the_settings_it_filled_are_marked(capsys):
    """--help names each recipe's value (the same with any --recipe); the run log marks what it filled."""
    for argv in (["--help"], ["--recipe", "reference", "--help"]):
        with pytest.raises(SystemExit):
            fine_tune_for.parse_args(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "peak learning rate (default from --recipe: original 5e-05, reference 1e-06)" in text
    args = fine_tune_for.parse_args(["--data", "d", "--recipe", "reference", "--lr", "1e-3"])
    assert (args.lr, args.weight_decay, args.loss, args.rawboost) == (1e-3, 1e-4, "weighted-ce", 5)
    assert args.from_recipe == ["batch_size", "epochs", "loss", "rawboost", "weight_decay"]  # not lr: given
    settings = " ".join(settings_text(args).split())
    assert "(* = from --recipe reference)" in settings
    assert "--weight-decay 0.0001*" in settings and "--lr 0.001 " in settings


def test_lr_schedule():
    assert [trainer.lr_lambda(s, 4, 10, "constant") for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = [trainer.lr_lambda(s, 2, 10, "cosine") for s in range(11)]
    assert (
        cosine[:3] == [0.5, 1.0, 1.0] and cosine[6] == pytest.approx(0.5) and cosine[10] == pytest.approx(0.0)
    )
    assert all(a >= b for a, b in zip(cosine[2:], cosine[3:], strict=False))


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    state = train_state.rng_state()
    expected = (torch.rand(3), np.random.rand(3))
    torch.save({"rng": state}, tmp_path / "s.pt")
    train_state.set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


def test_recipes_fill_unset_flags_only():
    original = fine_tune_for.parse_args(["--data", "d"])
    assert (original.epochs, original.lr, original.loss, original.checkpoint) == (5, 5e-5, "ce", "la")
    reference = fine_tune_for.parse_args(["--data", "d", "--recipe", "reference", "--lr", "2e-6"])
    assert (reference.lr, reference.weight_decay, reference.loss, reference.rawboost) == (
        2e-6,
        1e-4,
        "weighted-ce",
        5,
    )
    assert reference.class_weights == [0.1, 0.9] and reference.batch_size == 14
