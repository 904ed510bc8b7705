"""download_file against a loopback HTTP server that honours Range requests."""

from __future__ import annotations

import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tardiff.data import load_cohort, physionet2012
from tardiff.data.download import download_file
from tardiff.errors import DataError

PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, size=200_000, dtype=np.uint8))


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; /broken answers 500, /cut closes the connection half way."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/broken":
            self.send_error(500, "server error")
            return
        if self.path == "/cut":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404, "not found")
            return
        start = 0
        wanted = self.headers.get("Range")
        if wanted and self.server.honour_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {"file.bin": PAYLOAD}
    httpd.requests = []
    httpd.honour_range = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_fresh_download(server, tmp_path):
    dest = tmp_path / "sub" / "file.bin"
    assert download_file(server.url + "file.bin", dest, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "file.bin.part").exists()
    assert server.requests == [("/file.bin", None)]


def test_resume_from_partial_file(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:123_456])
    download_file(server.url + "file.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/file.bin", "bytes=123456-")]  # only the rest was asked for


def test_server_ignoring_range_restarts(server, tmp_path):
    server.honour_range = False
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes that must not stay in front")
    download_file(server.url + "file.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_refetched_after_416(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD + b"extra")
    download_file(server.url + "file.bin", dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


@pytest.mark.parametrize("path", ["broken", "cut", "missing.bin"])
def test_failing_server_leaves_no_final_file(server, tmp_path, path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DataError) as err:
        download_file(server.url + path, dest, progress=False, timeout=10)
    message = str(err.value)
    assert server.url + path in message and "--data-dir" in message and "\n" not in message
    assert not dest.exists()
    if path == "cut":  # what arrived is kept for the next try to resume
        assert (tmp_path / "file.bin.part").read_bytes() == PAYLOAD[: len(PAYLOAD) // 2]


def test_unreachable_server(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        download_file("http://127.0.0.1:9/none", tmp_path / "x", progress=False, timeout=5)
    assert not (tmp_path / "x").exists()


def _tiny_set() -> tuple[bytes, bytes]:
    """A one-set PhysioNet 2012 archive with two records, and its outcomes file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for rid, hr in ((1, 80), (2, 90)):
            text = f"Time,Parameter,Value\n00:00,RecordID,{rid}\n00:00,Age,50\n00:05,HR,{hr}\n".encode()
            member = tarfile.TarInfo(f"set-a/{rid}.txt")
            member.size = len(text)
            tar.addfile(member, io.BytesIO(text))
    outcomes = b"RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n1,1,1,5,-1,0\n2,1,1,2,1,1\n"
    return buffer.getvalue(), outcomes


def test_physionet_load_downloads_missing_files(server, tmp_path, monkeypatch):
    archive, outcomes = _tiny_set()
    server.files.update({"set-a.tar.gz": archive, "Outcomes-a.txt": outcomes})
    monkeypatch.setattr(physionet2012, "BASE_URL", server.url)
    folder = tmp_path / "physionet2012"
    with pytest.raises(DataError):  # presence checks never download
        physionet2012.find_source_files(folder)
    assert not folder.exists()
    cohort = physionet2012.load(folder, "mortality", sets="a", download=True, progress=False)
    assert cohort.y.tolist() == [0, 1] and cohort.X[:, 0, physionet2012.FEATURES.index("HR")].tolist() == [80, 90]
    assert sorted(p.name for p in folder.iterdir()) == ["Outcomes-a.txt", "set-a.tar.gz"]
    assert physionet2012.find_source_files(folder, sets="a") == [folder / "set-a.tar.gz", folder / "Outcomes-a.txt"]
    with pytest.raises(DataError, match="holds only set a"):  # the default sets a and b are not all there
        physionet2012.find_source_files(folder)


def test_named_folder_is_a_download_target_only_when_asked(server, tmp_path, monkeypatch, capfd):
    archive, outcomes = _tiny_set()
    server.files.update({"set-a.tar.gz": archive, "Outcomes-a.txt": outcomes})
    monkeypatch.setattr(physionet2012, "BASE_URL", server.url)
    folder = tmp_path / "named"
    with pytest.raises(DataError, match="does not exist"):
        load_cohort("physionet2012", folder, sets="a", progress=False)
    assert not folder.exists() and server.requests == []
    capfd.readouterr()
    cohort = load_cohort("physionet2012", folder, sets="a", download=True, progress=False)
    assert cohort.stay_ids.tolist() == [1, 2] and len(server.requests) == 2
    assert capfd.readouterr().err == ""  # progress=False reaches the download bars too


def test_default_folder_is_the_download_target(server, tmp_path, monkeypatch):
    archive, outcomes = _tiny_set()
    server.files.update({"set-a.tar.gz": archive, "Outcomes-a.txt": outcomes})
    monkeypatch.setattr(physionet2012, "BASE_URL", server.url)
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(DataError, match="no PhysioNet 2012 data"):  # download=False: only a message
        load_cohort("physionet2012", sets="a", download=False, progress=False)
    assert server.requests == []
    cohort = load_cohort("physionet2012", sets="a", progress=False)
    assert cohort.y.tolist() == [0, 1]
    assert sorted(p.name for p in (tmp_path / "root" / "physionet2012").iterdir()) == ["Outcomes-a.txt", "set-a.tar.gz"]


def test_download_into_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DataError, match=r"not-a-folder is a file, not a folder.*--data-dir") as err:
        download_file("http://127.0.0.1:9/x", blocker / "set-a.tar.gz", progress=False, timeout=5)
    assert "\n" not in str(err.value) and blocker.read_text() == "x"
