"""download.py end to end against a real HTTP server on 127.0.0.1 that serves ../shared/golden/aasist.

The server is http.server with a small handler that honours HTTP Range requests, and that can hang up in
the middle of a file (once per file) to simulate a dropped connection. No test reaches the internet.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

import antispoof.checkpoints.registry as D
import antispoof.networks as M
import download
from antispoof.checkpoints.files import load_model


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """GET /<file> from server.root; 'Range: bytes=N-' -> 206 from byte N; 404 for unknown files."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        server = self.server
        path = server.root / self.path.lstrip("/")
        range_header = self.headers.get("Range")
        server.requests.append((self.path, range_header))
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = int(range_header.removeprefix("bytes=").split("-")[0]) if range_header else 0
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if range_header else 200)
        if range_header:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if path.name in server.drop_once:  # send 40 % of the body, then hang up
            server.drop_once.discard(path.name)
            self.wfile.write(body[: int(len(body) * 0.4)])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(golden):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.root = golden / "aasist"
    httpd.requests = []
    httpd.drop_once = set()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def aasist_l():
    return D.REGISTRY["aasist-l"]


def test_good_file_downloads_with_checksum(server, golden, aasist_l, tmp_path):
    dest = D.download(
        f"{server.url}/AASIST-L.pth", tmp_path / "w" / "AASIST-L.pth", aasist_l["sha256"], aasist_l["size"]
    )
    assert dest.read_bytes() == (golden / "aasist" / "AASIST-L.pth").read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["AASIST-L.pth"]  # no .part left
    assert server.requests == [("/AASIST-L.pth", None)]
    D.download(f"{server.url}/AASIST-L.pth", dest, aasist_l["sha256"])  # present: no new request
    assert len(server.requests) == 1


def test_wrong_sha256_is_refused_and_nothing_is_kept(server, aasist_l, tmp_path):
    dest = tmp_path / "AASIST-L.pth"
    with pytest.raises(ValueError, match=f"sha256 {aasist_l['sha256']} does not match the expected 0{{64}}"):
        D.download(f"{server.url}/AASIST-L.pth", dest, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_on_the_next_call(server, golden, aasist_l, tmp_path):
    server.drop_once.add("AASIST-L.pth")
    dest = tmp_path / "AASIST-L.pth"
    url = f"{server.url}/AASIST-L.pth"
    with pytest.raises(RuntimeError, match="interrupted after .* run the same command again to resume"):
        D.download(url, dest, aasist_l["sha256"], aasist_l["size"], retries=0)
    part = tmp_path / "AASIST-L.pth.part"
    have = part.stat().st_size
    assert not dest.exists() and have == int(aasist_l["size"] * 0.4)

    D.download(url, dest, aasist_l["sha256"], aasist_l["size"])
    assert server.requests == [("/AASIST-L.pth", None), ("/AASIST-L.pth", f"bytes={have}-")]
    assert dest.read_bytes() == (golden / "aasist" / "AASIST-L.pth").read_bytes()
    assert not part.exists()


def test_dropped_connection_is_retried_from_where_it_stopped(server, golden, tmp_path):
    server.drop_once.add("AASIST.pth")
    entry = D.REGISTRY["aasist"]
    dest = D.download(f"{server.url}/AASIST.pth", tmp_path / "AASIST.pth", entry["sha256"], entry["size"])
    assert [r for _, r in server.requests] == [None, f"bytes={int(entry['size'] * 0.4)}-"]
    assert dest.read_bytes() == (golden / "aasist" / "AASIST.pth").read_bytes()


def test_404_says_what_failed(server, tmp_path):
    with pytest.raises(RuntimeError, match=r"HTTP 404 Not Found.*download the file by hand"):
        D.download(f"{server.url}/missing.pth", tmp_path / "missing.pth")
    assert list(tmp_path.iterdir()) == []


def test_registry_name_downloads_itself_on_first_use(server, golden, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    monkeypatch.setenv("SSL_AASIST_MIRROR", server.url)
    path = D.resolve_checkpoint("aasist")
    assert path == tmp_path / "pretrained" / "AASIST.pth"
    assert path.read_bytes() == (golden / "aasist" / "AASIST.pth").read_bytes()
    assert D.resolve_checkpoint("AASIST") == path and len(server.requests) == 1  # cached

    model, info = load_model("aasist-l")  # load_model takes registry names too
    assert info["format"] == "clovaai" and info["source"] == str(tmp_path / "pretrained" / "AASIST-L.pth")
    assert model.config == M.AASIST_PRESETS["aasist-l"]


def test_manual_checkpoint_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path))
    monkeypatch.delenv("SSL_AASIST_MIRROR", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        load_model("la")
    message = str(err.value)
    for needed in ["LA_model.pth", "drive.google.com/drive/folders/1c4ywztEVlYVijfwbGLl9OEa1SNtFKppB",
                   "Download anyway", f"Move the file to {tmp_path / 'LA_model.pth'}"]:  # fmt: skip
        assert needed in message
    with pytest.raises(FileNotFoundError, match="Best_LA_model_for_DF.pth"):
        D.resolve_checkpoint("df")


def test_unknown_name_lists_the_registry():
    with pytest.raises(FileNotFoundError, match="Known names: la, df, xlsr-300m, aasist, aasist-l"):
        D.resolve_checkpoint("asvspoof5")


def test_registry_is_complete_and_matches_the_released_files(golden):
    registry = json.loads(D.REGISTRY_PATH.read_text())
    sizes = ("w2v-small", "w2v-large", "mms-300m", "mms-1b", "xlsr-1b", "xlsr-2b")
    zoo = {f"antideepfake-{size}{nda}" for size in sizes for nda in ("", "-nda")} | {"antideepfake-hubert-xl"}
    round2 = {"df-arena-1b", "df-arena-500m", "df-arena-100m", "xlsr-mamba-la", "xlsr-mamba-df"}
    assert set(registry) == {"la", "df", "xlsr-300m", "aasist", "aasist-l", "sls-df", *zoo, *round2}
    for name, entry in registry.items():
        assert entry["arch"] in M.ARCHS and entry["license"], name
        # What --list and the README table show, for every entry.
        assert all(entry.get(k) for k in ("training_data", "published_eer", "input_policy", "params")), name
        if entry.get("hf_repo"):  # fetched by huggingface_hub; no checksum is published for these
            assert entry["hf_filename"] and entry["sha256"] is None and entry["checksum_note"], name
            continue
        assert entry["url"].startswith("https://"), name
        assert bool(entry.get("manual")) == ("drive.google.com" in entry["url"]), name
        if entry.get("manual"):
            assert any("{dest}" in step for step in entry["instructions"]), name
    for name in zoo:
        assert "CC BY-NC-SA 4.0" in registry[name]["license"] and registry[name]["non_commercial"], name
    for name, filename in [("aasist", "AASIST.pth"), ("aasist-l", "AASIST-L.pth")]:
        path = golden / "aasist" / filename
        assert registry[name]["filename"] == filename
        assert (registry[name]["size"], registry[name]["sha256"]) == (path.stat().st_size, D.sha256sum(path))
        shipped = D.REPO / "pretrained" / filename  # in the repo, for the offline quick start
        assert shipped.read_bytes() == path.read_bytes() and D.sha256sum(shipped) == registry[name]["sha256"]
    for name in ("LICENSE", "NOTICE"):  # MIT asks for its notice beside the weights
        assert (D.REPO / "pretrained" / f"{name}.clovaai-aasist").read_bytes() == (
            golden / "aasist" / name
        ).read_bytes()


def test_command_line_downloads_verifies_and_explains(server, tmp_path, monkeypatch, capsys):
    env = {**os.environ, "SSL_AASIST_PRETRAINED_DIR": str(tmp_path), "SSL_AASIST_MIRROR": server.url}
    script = str(D.REPO / "download.py")
    ok = subprocess.run(
        [sys.executable, script, "aasist-l", "--verify"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and f"{tmp_path / 'AASIST-L.pth'}: sha256 OK" in ok.stdout

    # The same main() in this process (the command line itself is proven above; each start costs ~2 s).
    monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path))
    monkeypatch.delenv("SSL_AASIST_MIRROR", raising=False)
    with pytest.raises(SystemExit) as manual:
        download.main(download.parse_args(["df"]))
    assert (
        manual.value.code == 1
        and f"Move the file to {tmp_path / 'Best_LA_model_for_DF.pth'}" in capsys.readouterr().err
    )
    download.main(download.parse_args(["--list"]))
    listing = capsys.readouterr().out
    lines = listing.splitlines()
    assert any(line.startswith("aasist-l ") and line.endswith("present") for line in lines)
    zoo_block = listing.split("antideepfake-mms-300m", 1)[1].split("\n\n", 1)[0]
    for fact in ("Hugging Face nii-yamagishilab/mms-300m-anti-deepfake", "license: CC BY-NC-SA 4.0",
                 "published EER: In-the-Wild 4.83 %", "input: whole file"):  # fmt: skip
        assert fact in zoo_block, fact


def test_quick_start_runs_offline_from_a_fresh_copy(tmp_path):
    """The README's quick start on a machine without network: AASIST ships in pretrained/, so a copy of the
    tracked files scores with `--checkpoint aasist` while every download would fail (the mirror is a port
    where nothing listens). Two of the sample files keep it short; the command is the README's."""
    repo = D.REPO
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    copy = tmp_path / "clone"
    for name in filter(None, os.fsdecode(listed).split("\0")):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, copy / name)
    data = copy / "data" / "two"
    for label, name in (("real", "118-121721-0000.flac"), ("fake", "espeak_01.wav")):
        (data / label).mkdir(parents=True)
        shutil.copy2(copy / "data" / "sample" / label / name, data / label / name)
    env = {k: v for k, v in os.environ.items() if k != "SSL_AASIST_PRETRAINED_DIR"}
    env["SSL_AASIST_MIRROR"] = "http://127.0.0.1:9"
    cmd = [sys.executable, "evaluate_custom.py", "--data", "data/two", "--checkpoint", "aasist", "--out-dir",
           "runs/sample_aasist"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "AUC 1.0000" in proc.stdout and "Downloading" not in proc.stderr
    assert (copy / "runs" / "sample_aasist" / "metrics.json").is_file()


class NoLengthHandler(http.server.BaseHTTPRequestHandler):
    """Serves server.body with no Content-Length, then closes: the end of the file and a cut transfer look
    the same, as from a mirror that dropped the connection."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, *args):
        pass


def test_a_download_nothing_can_check_is_recorded_and_said_unverified(tmp_path, monkeypatch, capsys):
    """Issue 22 item 12 (seen failing before: a cut 'df' from a mirror without Content-Length was kept
    silently and listed as present)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NoLengthHandler)
    httpd.body = b"\x80\x02" + bytes(998)  # a fraction of a 1.2 GB checkpoint
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("SSL_AASIST_PRETRAINED_DIR", str(tmp_path))
        monkeypatch.setenv("SSL_AASIST_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}")
        path = D.resolve_checkpoint("df")
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = capsys.readouterr().err
    assert "is unverified" in err and "sent no length" in err and "1,000 bytes" in err
    record = json.loads(D.download_record(path).read_text())
    assert record["bytes"] == 1000 and record["verified"] is False and len(record["sha256"]) == 64
    assert "present (unverified: no published size or checksum, no length sent)" in download.describe_entry(
        "df", D.REGISTRY["df"]
    )
    with open(path, "ab") as f:  # changed (or cut again) since it was downloaded: said on use
        f.write(b"more")
    with pytest.warns(UserWarning, match="changed: 1,004 bytes, 1000 when downloaded"):
        D.resolve_checkpoint("df")
