"""app.py end to end: the real server in a subprocess on 127.0.0.1, driven by Debian's headless Chromium.

Needs /usr/bin/chromium (apt-get install chromium); Playwright never downloads a browser here.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
START_TIMEOUT_S = 90
SCORE_TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ANSWER = re.compile(r"Likely fake|Likely real|Inconclusive|No answer: this detector is not calibrated")


@pytest.fixture(scope="module")
def app_url(golden, calibrated_aasist, tmp_path_factory):
    """Start `python app.py --checkpoint AASIST.pth --checkpoint aasist_cal.pth` (the released AASIST, then a
    copy with a whole-clip calibration fitted on sample files) and return its URL once it prints it."""
    tmp = tmp_path_factory.mktemp("app")
    calibrated = tmp / "aasist_cal.pth"
    shutil.copy(calibrated_aasist[0], calibrated)
    shutil.copy(str(calibrated_aasist[0]) + ".calibration.json", str(calibrated) + ".calibration.json")
    pretrained = tmp / "pretrained"  # holds AASIST-L only: the page offers it as registry entry "aasist-l"
    pretrained.mkdir()
    shutil.copy(golden / "aasist" / "AASIST-L.pth", pretrained)
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp / "gradio"),
        "SSL_AASIST_PRETRAINED_DIR": str(pretrained),
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    log_path = tmp / "app.log"
    command = [
        sys.executable,
        str(REPO / "app.py"),
        "--checkpoint",
        str(golden / "aasist" / "AASIST.pth"),
        "--checkpoint",
        str(calibrated),
        "--port",
        str(port),
        "--device",
        "cpu",
        "--max-seconds",
        "10",
        "--max-mb",
        "2",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            for line in log_path.read_text().splitlines():
                if line.startswith("Running on http"):
                    url = line.split()[-1]
            if url:
                break
            time.sleep(0.2)
        if not url:
            pytest.fail(f"app.py did not print its URL (exit {proc.poll()}):\n{log_path.read_text()}")
        assert url.startswith(f"http://127.0.0.1:{port}"), url
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh tab on the app. Requests leaving 127.0.0.1 are blocked, and fail the test after it."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    outside = []

    def local_only(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    page = context.new_page()
    page.goto(app_url)
    page.locator("#audio-input").wait_for()
    yield page
    context.close()
    assert not outside, f"the page tried to reach the internet: {outside}"


def upload(page, path: Path) -> None:
    page.locator("#audio-input input[type=file]").set_input_files(str(path))


def choose(page, label: str) -> None:
    page.locator("#checkpoint input").click()
    page.get_by_role("option", name=label).click()


def open_details(page):
    """Open the collapsed details block (closed on every page load) and return its text's locator."""
    details = page.locator("#details")
    if not details.is_visible():
        page.locator("#details-block").get_by_text("Details: how this answer was made").click()
    return details


def shoot(page, name: str, tmp_path) -> None:
    """A full-page screenshot with the details open, copied to $APP_SCREENSHOT_DIR when set (for a person)."""
    open_details(page)
    shot = tmp_path / f"app_{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("APP_SCREENSHOT_DIR"):
        Path(os.environ["APP_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, os.environ["APP_SCREENSHOT_DIR"])


def no_server_paths(text: str) -> bool:
    """True when `text` holds no absolute path of this machine (the repo, the test's files, /tmp)."""
    return not any(root in text for root in (str(REPO), "/tmp/", "/work/", "/home/", "/root/"))


@pytest.fixture(scope="module")
def spliced_clip(audio_dir, tmp_path_factory) -> tuple[Path, float]:
    """9 s: a 6.2 s LibriSpeech reading, 0.2 s of silence, then an espeak-ng fake (from 6.4 s): inside
    --max-seconds 10. Returns (path, the fake's start)."""
    real, sr = sf.read(audio_dir / "sample_custom" / "real" / "1183-124566-0000.flac", dtype="float32")
    fake, _ = sf.read(audio_dir / "sample_custom" / "fake" / "espeak_01.wav", dtype="float32")
    path = tmp_path_factory.mktemp("spliced") / "spliced_fake.wav"
    sf.write(path, np.concatenate([real, np.zeros(sr // 5, np.float32), fake]), sr)
    return path, (len(real) + sr // 5) / sr


def test_page_offers_the_given_checkpoint_and_those_in_pretrained(page):
    expect(page.locator("#checkpoint input")).to_have_value("AASIST.pth")  # --checkpoint comes first
    expect(page.locator("#status")).to_contain_text("Upload or record")
    expect(page.locator("#intro")).to_contain_text("Detector at start: AASIST.pth, given with --checkpoint")
    expect(page.locator("#intro")).to_contain_text("P(fake) = 0.5, even odds")
    page.locator("#checkpoint input").click()
    options = page.get_by_role("option")  # their text starts with a check-mark glyph (shown when selected)
    expect(options).to_have_text(
        [re.compile(r"AASIST\.pth$"), re.compile(r"aasist_cal\.pth$"), re.compile(r"aasist-l$")]
    )


def test_checkpoint_choice_is_used(page, audio_dir):
    choose(page, "aasist-l")
    upload(page, audio_dir / "sample_custom" / "real" / "118-121721-0000.flac")
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("About the detector aasist-l", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("No answer: this detector is not calibrated")


def test_real_recording_is_likely_real_with_its_provenance(page, audio_dir, tmp_path):
    choose(page, "aasist_cal.pth")
    upload(page, audio_dir / "sample_custom" / "real" / "118-121721-0000.flac")
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("Likely real", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("chance that it is fake at")
    expect(verdict).not_to_contain_text("logits")  # the jargon waits in the collapsed details
    expect(open_details(page)).to_contain_text("calibrated on sample_run (8 real and 8 fake files, Cllr")
    expect(verdict).to_contain_text("wrong about 43 times in 100")  # the model card, in plain words
    expect(page.locator("#status")).to_contain_text("Checked 118-121721-0000.flac")
    # Both plots rendered (matplotlib figures arrive as images).
    expect(page.locator("#timeline img")).to_be_visible()
    expect(page.locator("#waveform img")).to_be_visible()
    assert no_server_paths(page.locator("body").inner_text())
    shoot(page, "real", tmp_path)


def test_whole_clip_by_default_and_the_reference_policy_on_request(page, audio_dir):
    """A 6.2 s clip: every second of it by default (3 windows), the reference's first 4.04 s on request."""
    upload(page, audio_dir / "sample_custom" / "real" / "1183-124566-0000.flac")
    expect(page.locator("#status")).to_contain_text("Checked 1183-124566-0000.flac", timeout=SCORE_TIMEOUT_MS)
    verdict = open_details(page)
    expect(verdict).to_contain_text("Input policy windows n=64600 hop=32300 file=min")
    expect(verdict).to_contain_text("3 window(s)")
    page.locator("#policy").get_by_label("first 4.04 s").check()
    page.locator("#check-button").click()
    expect(verdict).to_contain_text("Input policy head n=64600", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("1 window(s)")


def test_time_from_upload_to_verdict_10s_clip(page, audio_dir, tmp_path, capsys):
    """Logs (never asserts) how long a 10 s clip takes from upload to verdict with AASIST (--checkpoint).

    Two clips: the second shows the warm time (the model and its onnxruntime session already loaded)."""
    x, sr = sf.read(audio_dir / "sample_custom" / "real" / "118-121721-0000.flac", dtype="float32")
    times = []
    for name in ("clip10_a.wav", "clip10_b.wav"):
        path = tmp_path / name
        sf.write(path, np.tile(x, 3)[: 10 * sr - sr // 100], sr)  # 9.99 s: inside --max-seconds 10
        if times:  # a fresh page: the audio box holds the first clip now
            page.reload()
            page.locator("#audio-input").wait_for()
        start = time.perf_counter()
        upload(page, path)
        expect(page.locator("#status")).to_contain_text(f"Checked {name}", timeout=SCORE_TIMEOUT_MS)
        expect(page.locator("#verdict")).to_contain_text(ANSWER)
        times.append(time.perf_counter() - start)
    with capsys.disabled():
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"\napp, AASIST, 10 s clip, upload to verdict: first {times[0]:.2f} s, again {times[1]:.2f} s "
              f"(load average {load})")  # fmt: skip


def test_espeak_recording_is_likely_fake(page, audio_dir, tmp_path):
    choose(page, "aasist_cal.pth")
    upload(page, audio_dir / "sample_custom" / "fake" / "espeak_01.wav")
    expect(page.locator("#verdict")).to_contain_text("Likely fake", timeout=SCORE_TIMEOUT_MS)
    shoot(page, "fake", tmp_path)


def test_a_fake_spliced_in_after_4_s_is_found_and_located(page, spliced_clip, tmp_path):
    path, fake_start = spliced_clip
    choose(page, "aasist_cal.pth")
    upload(page, path)
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text(re.compile(r"Likely fake|Inconclusive"), timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("The parts that sound most fake:")
    result = page.locator("#result").inner_text()
    assert '"answer"' in result and no_server_paths(result)
    shoot(page, "spliced", tmp_path)


def test_an_uncalibrated_detector_gives_no_real_or_fake_headline(page, spliced_clip, tmp_path):
    upload(page, spliced_clip[0])  # AASIST.pth: the released weights, no calibration
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("No answer: this detector is not calibrated", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("The score leans fake")
    expect(verdict).to_contain_text("python calibrate.py --run")
    headline = verdict.locator("h2").inner_text()
    assert not re.search(r"\b(REAL|FAKE|Likely)\b", headline), headline
    expect(page.locator("#result")).to_contain_text('"verdict": null')  # nor in the API's JSON
    assert no_server_paths(page.locator("body").inner_text())
    shoot(page, "uncalibrated", tmp_path)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("text_not_audio.mp3", "not a decodable audio file"), ("empty_0_bytes.wav", "empty file")],
)
def test_broken_file_shows_reason(page, audio_dir, name, reason):
    upload(page, audio_dir / "broken" / name)
    status = page.locator("#status")
    expect(status).to_contain_text("Could not read this file", timeout=SCORE_TIMEOUT_MS)
    expect(status).to_contain_text(reason)
    expect(page.locator("#verdict")).not_to_contain_text(ANSWER)


def test_too_long_file_is_refused(page, audio_dir, tmp_path):
    speech, rate = sf.read(audio_dir / "sample_custom" / "fake" / "espeak_01.wav", dtype="int16")
    clip = tmp_path / "twelve_seconds.wav"  # 384 kB: under the size limit, over the 10 s one
    sf.write(clip, np.resize(speech, 12 * rate), rate)
    upload(page, clip)
    expect(page.locator("#status")).to_contain_text("Too long: 12 s (limit 10 s)", timeout=SCORE_TIMEOUT_MS)


def test_too_large_file_is_refused(page, audio_dir):
    upload(page, audio_dir / "broken" / "long_70s.wav")  # 2.1 MiB; the app was started with --max-mb 2
    expect(
        page.get_by_text('File(s) exceed the maximum allowed size of 2.0 Mb: "long_70s.wav"')
    ).to_be_visible()
    expect(page.locator("#status")).to_contain_text("Upload or record")


def test_unsupported_type_is_refused(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    upload(page, notes)  # Gradio's widget takes audio/* types only and says so
    expect(page.get_by_text("Invalid file type: notes.txt")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("Upload or record")


def test_audio_type_the_loader_does_not_take_is_refused(page, tmp_path):
    clip = tmp_path / "clip.amr"  # audio/amr passes the widget; the app's own type check refuses it
    clip.write_bytes(b"#!AMR\n" + bytes(64))
    upload(page, clip)
    expect(page.locator("#status")).to_contain_text("Unsupported file type '.amr'", timeout=SCORE_TIMEOUT_MS)


def test_microphone_recording_is_checked(playwright, app_url, audio_dir):
    """Chromium's fake capture device plays a file as the microphone: Record, Stop, and the clip is scored."""
    microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={audio_dir / 'sample_custom' / 'fake' / 'espeak_03.wav'}",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + microphone)
    try:
        page = browser.new_context(permissions=["microphone"]).new_page()
        page.goto(app_url)
        widget = page.locator("#audio-input")
        widget.get_by_role("button", name="Record audio").click()
        widget.get_by_role("button", name="Record", exact=True).click()
        page.wait_for_timeout(2500)
        widget.get_by_role("button", name="Stop", exact=True).locator("visible=true").first.click()
        expect(page.locator("#status")).to_contain_text("Checked audio", timeout=SCORE_TIMEOUT_MS)
        expect(page.locator("#verdict")).to_contain_text(ANSWER)
    finally:
        browser.close()


def readme_python_block(section: str) -> str:
    """The first ```python block under the README heading `section`."""
    text = (REPO / "README.md").read_text()
    body = text[text.index(f"## {section}") :]
    return body[body.index("```python\n") + len("```python\n") : body.index("\n```", body.index("```python"))]


def test_the_readme_gradio_client_example_runs_against_the_live_app(app_url, spliced_clip, capsys):
    """The README's HTTP example as written, with this app's address, clip and calibrated detector."""
    code = readme_python_block("HTTP use")
    code = code.replace("http://127.0.0.1:7860/", app_url).replace('"clip.wav"', repr(str(spliced_clip[0])))
    code = code.replace('"aasist"', '"aasist_cal.pth"')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example itself
    result = namespace["result"]
    assert result["answer"] in ("likely fake", "inconclusive") and result["p_fake_calibrated"] > 0.5
    assert result["fake_spans"] and len(result["windows"]) == 4 and "leans_fake" in result["windows"][0]
    assert result["file"] == "spliced_fake.wav" and no_server_paths(str(result))
    assert "likely" in capsys.readouterr().out or result["answer"] == "inconclusive"
