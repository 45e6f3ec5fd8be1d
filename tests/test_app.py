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


@pytest.fixture(scope="module")
def app_url(golden, tmp_path_factory):
    """Start `python app.py --checkpoint AASIST.pth` and return its URL once it prints it."""
    tmp = tmp_path_factory.mktemp("app")
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


def test_page_offers_the_given_checkpoint_and_those_in_pretrained(page):
    expect(page.locator("#checkpoint input")).to_have_value("AASIST.pth")  # --checkpoint comes first
    expect(page.locator("#status")).to_contain_text("Upload or record")
    page.locator("#checkpoint input").click()
    options = page.get_by_role("option")  # their text starts with a check-mark glyph (shown when selected)
    expect(options).to_have_text([re.compile(r"AASIST\.pth$"), re.compile(r"aasist-l$")])


def test_checkpoint_choice_is_used(page, audio_dir):
    page.locator("#checkpoint input").click()
    page.get_by_role("option", name="aasist-l").click()
    upload(page, audio_dir / "sample_custom" / "real" / "118-121721-0000.flac")
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("Checkpoint aasist-l", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("Verdict: REAL")


def test_real_recording_gets_real_verdict(page, audio_dir, tmp_path):
    upload(page, audio_dir / "sample_custom" / "real" / "118-121721-0000.flac")
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("Verdict: REAL", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text(re.compile(r"p_fake (= 0\.[0-4]\d\d|< 0\.001)"))  # below 0.5
    expect(page.locator("#status")).to_contain_text("Checked 118-121721-0000.flac")
    # Both plots rendered (matplotlib figures arrive as images).
    expect(page.locator("#timeline img")).to_be_visible()
    expect(page.locator("#waveform img")).to_be_visible()
    shot = tmp_path / "app_real.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("APP_SCREENSHOT_DIR"):
        shutil.copy(shot, os.environ["APP_SCREENSHOT_DIR"])


def test_model_policy_by_default_and_windows_on_request(page, audio_dir):
    """A 6.2 s clip: the model's policy (AASIST: the first 4.04 s) first, then the windows box (3 windows)."""
    upload(page, audio_dir / "sample_custom" / "real" / "1183-124566-0000.flac")
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("Input policy head n=64600", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("1 window(s)")
    page.locator("#window input").check()
    page.locator("#check-button").click()
    expect(verdict).to_contain_text("Input policy windows n=64600 hop=32300", timeout=SCORE_TIMEOUT_MS)
    expect(verdict).to_contain_text("3 window(s)")


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
        expect(page.locator("#verdict")).to_contain_text(re.compile(r"Verdict: (REAL|FAKE)"))
        times.append(time.perf_counter() - start)
    with capsys.disabled():
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"\napp, AASIST, 10 s clip, upload to verdict: first {times[0]:.2f} s, again {times[1]:.2f} s "
              f"(load average {load})")  # fmt: skip


def test_espeak_recording_gets_fake_verdict(page, audio_dir):
    upload(page, audio_dir / "sample_custom" / "fake" / "espeak_01.wav")
    expect(page.locator("#verdict")).to_contain_text("Verdict: FAKE", timeout=SCORE_TIMEOUT_MS)


@pytest.mark.parametrize(
    ("name", "reason"),
    [("text_not_audio.mp3", "not a decodable audio file"), ("empty_0_bytes.wav", "empty file")],
)
def test_broken_file_shows_reason(page, audio_dir, name, reason):
    upload(page, audio_dir / "broken" / name)
    status = page.locator("#status")
    expect(status).to_contain_text("Could not read this file", timeout=SCORE_TIMEOUT_MS)
    expect(status).to_contain_text(reason)
    expect(page.locator("#verdict")).not_to_contain_text("Verdict")


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
        expect(page.locator("#verdict")).to_contain_text(re.compile(r"Verdict: (REAL|FAKE)"))
    finally:
        browser.close()
