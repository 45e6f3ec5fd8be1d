"""The pieces of a single-recording answer: three bands from a calibrated LLR, where a calibration came from,
model cards and the default detector from the registry, recording-condition warnings, the long-clip set."""

import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from antispoof.audio.conditions import far_from_training
from antispoof.audio.decode import load_audio
from antispoof.audio.longclips import build_long_clips
from antispoof.checkpoints import cards
from antispoof.checkpoints.registry import REGISTRY
from antispoof.constants import NB_SAMP, SAMPLE_RATE
from antispoof.scoring.decision import Bands, answer_for, provenance, public_name
from antispoof.scoring.file_rules import file_score

CAL = {"scale": 2.0, "offset": -1.0, "fit": {"data": "/srv/secret/my_dev", "n_real": 30, "n_fake": 20,
                                             "cllr_calibrated": 0.25}}  # fmt: skip


def test_bands_are_posterior_odds_at_the_prior():
    bands = Bands(CAL)  # even odds, 9 to 1
    fake_edge, real_edge = bands.edges()
    # llr = 2 s - 1: likely real from llr = log 9, likely fake below llr = -log 9
    assert real_edge == pytest.approx((math.log(9) + 1) / 2) and fake_edge == pytest.approx(
        (1 - math.log(9)) / 2
    )
    assert bands.answer(real_edge) == "likely real" and bands.p_fake(real_edge) == pytest.approx(0.1)
    assert bands.answer(fake_edge) == "inconclusive"  # at the edge: the one rule, value >= edge
    assert bands.answer(fake_edge - 1e-9) == "likely fake" and bands.p_fake(fake_edge) == pytest.approx(0.9)
    assert bands.answer(0.5) == "inconclusive" and bands.p_fake(0.5) == pytest.approx(0.5)
    skeptic = Bands(CAL, p_fake_prior=0.9)  # a listener who already suspects a fake needs more evidence
    assert skeptic.answer(real_edge) == "inconclusive" and "P(fake) = 0.9" in skeptic.describe()
    assert "even odds" in bands.describe()


def test_an_uncalibrated_answer_only_leans_and_points_at_the_fake_windows():
    windows = [
        {"start": 0.0, "end": 4.0, "score": 2.0, "p_fake": 0.1},
        {"start": 2.0, "end": 6.0, "score": -1.0, "p_fake": 0.8},
        {"start": 4.0, "end": 8.0, "score": -2.0, "p_fake": 0.9},
        {"start": 6.0, "end": 10.0, "score": 3.0, "p_fake": 0.05},
    ]
    row = {"score": -2.0, "p_fake": 0.9, "windows": windows}
    out = answer_for(row, None)
    assert out == {
        "answer": "uncalibrated",
        "leans": "fake",
        "p_fake_calibrated": None,
        "fake_spans": [(2.0, 8.0)],
    }
    calibrated = answer_for(row, Bands(CAL))
    assert calibrated["answer"] == "likely fake" and calibrated["fake_spans"] == [(2.0, 8.0)]
    assert file_score([w["score"] for w in windows], "min") == -2.0
    assert file_score([w["score"] for w in windows], "mean") == pytest.approx(0.5)


def test_provenance_names_data_counts_cllr_and_no_server_path():
    text = provenance(CAL, "the calibration stored in /home/alice/runs/exp/best.pt")
    assert "my_dev" in text and "30 real and 20 fake files" in text and "Cllr 0.250" in text
    assert "/" not in text and "best.pt" in text
    assert public_name("/a/b/AASIST.pth.calibration.json") == "AASIST.pth.calibration.json"
    assert public_name("score 64600/16000 at https://x.org/y") == "score 64600/16000 at https://x.org/y"


def test_model_cards_tolerate_missing_fields_and_say_it_in_plain_words(tmp_path, golden):
    assert "wrong about 43 times in 100" in cards.card_lines(cards.model_card("aasist"))[0]
    assert cards.model_card("pretrained/AASIST-L.pth")["name"] == "aasist-l"  # found by file name
    assert "not published" in cards.card_lines(cards.model_card("aasist-l"))[0]
    assert "given by path" in cards.card_lines(cards.model_card("runs/x/best.pt"))[0]
    copy = tmp_path / "renamed.pth"  # the published file under another name keeps its card
    shutil.copy(golden / "aasist" / "AASIST.pth", copy)
    assert cards.model_card(str(copy))["name"] == "aasist"
    for name in REGISTRY:  # every entry, with or without the card fields, gives a card
        assert cards.card_lines(cards.model_card(name))


def test_default_detector_is_the_strongest_one_present(tmp_path, monkeypatch, golden):
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path))
    shutil.copy(golden / "aasist" / "AASIST.pth", tmp_path / "AASIST.pth")
    name, why = cards.best_local_detector()
    assert name == "aasist" and "WARNING" in why and "43" in why
    (tmp_path / REGISTRY["la"]["filename"]).write_bytes(b"")  # present (never loaded here)
    with pytest.warns(UserWarning, match="truncated"):  # the registry's size check still speaks
        name, why = cards.best_local_detector()
    assert name == "la" and "11.22 %" in why and "WARNING" not in why  # the Arena's In-the-Wild EER


def test_recording_conditions(audio_dir):
    broken = audio_dir / "broken"
    assert "telephone" in " ".join(far_from_training(load_audio(broken / "mono_8k.wav")))
    assert "silence" in " ".join(far_from_training(load_audio(broken / "silent_5s.wav")))
    assert "long (70 s)" in " ".join(far_from_training(load_audio(broken / "long_70s.wav"))[:1])
    clean = load_audio(audio_dir / "sample_custom" / "real" / "118-121721-0000.flac")
    assert far_from_training(clean) == []
    assert "English" in far_from_training(clean, languages="English")[0]


def test_long_clip_set_splices_a_fake_after_the_reference_input(audio_dir, tmp_path):
    items = build_long_clips(audio_dir / "sample_custom", tmp_path, n_per_kind=2)
    assert [i.group for i in items] == ["real_concat"] * 2 + ["fake_concat"] * 2 + ["spliced"] * 2
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    assert rows[0] == "path,label,group,fake_start_s,fake_end_s"
    for line in rows[-2:]:
        path, label, _, start, end = line.split(",")
        assert label == "fake" and float(start) > NB_SAMP / SAMPLE_RATE and float(end) > float(start)
        x, sr = sf.read(tmp_path / path)
        assert sr == SAMPLE_RATE and len(x) / sr > float(end)
        # The spliced fake is the espeak-ng file itself: its samples appear at the stated start.
        assert np.any(np.abs(x[round(float(start) * sr) : round(float(end) * sr)]) > 0)
