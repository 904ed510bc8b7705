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


def _serve_tiny_set(server, monkeypatch, archive, outcomes):
    """The loopback server serves a tiny set A under the challenge's names, with its own manifest."""
    server.files.update({"set-a.tar.gz": archive, "Outcomes-a.txt": outcomes})
    monkeypatch.setattr(physionet2012, "BASE_URL", server.url)
    monkeypatch.setattr(physionet2012, "FILES", {"set-a.tar.gz": (len(archive), _digest(archive)),
                                                 "Outcomes-a.txt": (len(outcomes), _digest(outcomes))})


def test_physionet_load_downloads_missing_files(server, tmp_path, monkeypatch):
    archive, outcomes = _tiny_set()
    _serve_tiny_set(server, monkeypatch, archive, outcomes)
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
    _serve_tiny_set(server, monkeypatch, archive, outcomes)
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
    _serve_tiny_set(server, monkeypatch, archive, outcomes)
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


# --------------------------------------------------------------------------------------------
# Checksums, and the open demos (MIMIC-III demo, YAIB demo cohorts) fetched on first use

import gzip  # noqa: E402
import hashlib  # noqa: E402

import pandas as pd  # noqa: E402

from tardiff.data import mimic3, yaib  # noqa: E402
from tardiff.data.download import sha256_file  # noqa: E402
from tardiff.data.registry import OPEN_DATA, ensure_open_data, fetch_open_data  # noqa: E402
from tardiff.errors import ParameterError  # noqa: E402


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_checksum_and_size_are_checked_before_the_rename(server, tmp_path):
    dest = tmp_path / "file.bin"
    download_file(server.url + "file.bin", dest, progress=False, sha256=_digest(PAYLOAD), size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and sha256_file(dest) == _digest(PAYLOAD)


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_checksum_mismatch_removes_the_file(server, tmp_path, wrong):
    dest = tmp_path / "file.bin"
    expected = {"sha256": _digest(b"another file"), "size": None} if wrong == "sha256" else {"size": len(PAYLOAD) - 1}
    with pytest.raises(DataError, match="is not the published file") as err:
        download_file(server.url + "file.bin", dest, progress=False, **expected)
    message = str(err.value)
    assert "\n" not in message and server.url + "file.bin" in message and "removed" in message
    assert not dest.exists() and not (tmp_path / "file.bin.part").exists()  # the next try starts afresh


def test_resume_then_checksum(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:50_000])
    download_file(server.url + "file.bin", dest, progress=False, sha256=_digest(PAYLOAD), size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and server.requests == [("/file.bin", "bytes=50000-")]


def test_part_longer_than_the_published_size_is_discarded(server, tmp_path):
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD + b"junk")
    download_file(server.url + "file.bin", dest, progress=False, sha256=_digest(PAYLOAD), size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and server.requests == [("/file.bin", None)]  # no stale Range asked


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _tiny_mimic_demo() -> dict[str, bytes]:
    """The four demo tables (lower-case columns, as the demo has them) for two ICU stays."""
    return {
        "PATIENTS.csv": _csv(pd.DataFrame({"row_id": [1, 2], "subject_id": [10, 11], "gender": ["F", "M"],
                                           "dob": ["2100-01-01 00:00:00", "2080-06-01 00:00:00"]})),
        "ADMISSIONS.csv": _csv(pd.DataFrame({"row_id": [1, 2], "subject_id": [10, 11], "hadm_id": [100, 101],
                                             "hospital_expire_flag": [0, 1]})),
        "ICUSTAYS.csv": _csv(pd.DataFrame({"row_id": [1, 2], "subject_id": [10, 11], "hadm_id": [100, 101],
                                           "icustay_id": [200, 201], "first_careunit": ["MICU", "SICU"],
                                           "intime": ["2160-01-01 00:00:00", "2150-01-01 00:00:00"],
                                           "los": [1.5, 4.0]})),
        "CHARTEVENTS.csv": _csv(pd.DataFrame({
            "row_id": [1, 2, 3], "subject_id": [10, 10, 11], "hadm_id": [100, 100, 101], "icustay_id": [200, 200, 201],
            "itemid": [211, 220045, 211], "charttime": ["2160-01-01 00:30:00", "2160-01-01 02:10:00",
                                                       "2150-01-01 01:00:00"],
            "value": ["80", "90", "120"], "valuenum": [80.0, 90.0, 120.0], "error": [0, 0, 0],
        })),
    }


def _tiny_yaib_cohort() -> dict[str, bytes]:
    """dyn, sta and outc parquet files of a three-stay mortality24 cohort."""
    frames = {
        "dyn.parquet": pd.DataFrame({"stay_id": [1, 1, 2, 3], "time": pd.to_timedelta([0, 1, 0, 2], unit="h"),
                                     "hr": [70.0, 72.0, 110.0, 95.0], "sbp": [120.0, None, 90.0, 100.0]}),
        "sta.parquet": pd.DataFrame({"stay_id": [1, 2, 3], "age": [60, 70, 80], "sex": ["Male", "Female", "Male"],
                                     "height": [170.0, 160.0, None], "weight": [70.0, 60.0, 80.0]}),
        "outc.parquet": pd.DataFrame({"stay_id": [1, 2, 3], "label": [0, 1, 0]}),
    }
    out = {}
    for name, frame in frames.items():
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        out[name] = buffer.getvalue()
    return out


@pytest.fixture
def mimic_demo(server, monkeypatch):
    """The loopback server serves a tiny MIMIC-III demo under the demo's real file names."""
    tables = _tiny_mimic_demo()
    server.files.update({f"mimiciii-demo/1.4/{name}": body for name, body in tables.items()})
    monkeypatch.setattr(mimic3, "DEMO_BASE_URL", server.url + "mimiciii-demo/1.4/")
    monkeypatch.setattr(mimic3, "DEMO_FILES", {name: (len(body), _digest(body)) for name, body in tables.items()})
    return tables


@pytest.fixture
def yaib_demo(server, monkeypatch):
    """The loopback server serves a tiny mortality24/eicu_demo cohort at YAIB's demo_data paths."""
    files = _tiny_yaib_cohort()
    server.files.update({f"YAIB/main/demo_data/mortality24/eicu_demo/{n}": body for n, body in files.items()})
    monkeypatch.setattr(yaib, "DEMO_BASE_URL", server.url + "YAIB/main/demo_data/")
    manifest = dict(yaib.DEMO_FILES)
    manifest.update({f"mortality24/eicu_demo/{n}": (len(body), _digest(body)) for n, body in files.items()})
    monkeypatch.setattr(yaib, "DEMO_FILES", manifest)
    return files


def test_the_manifests_name_what_the_loaders_read():
    assert set(mimic3.DEMO_FILES) == {f"{table}.csv" for table in mimic3.TABLES}  # PhysioNet's file names
    assert mimic3.DEMO_BASE_URL == "https://physionet.org/files/mimiciii-demo/1.4/"
    assert yaib.DEMO_BASE_URL == "https://raw.githubusercontent.com/rvandewater/YAIB/main/demo_data/"
    assert set(yaib.DEMO_FILES) == {f"{c}/{f}" for c in yaib.DEMO_COHORTS for f in yaib.FILES}
    assert {c.split("/")[0] for c in yaib.DEMO_COHORTS} <= set(yaib.TASKS)
    for size, sha in [*mimic3.DEMO_FILES.values(), *yaib.DEMO_FILES.values()]:
        assert size > 0 and len(sha) == 64 and int(sha, 16) >= 0
    assert {"physionet2012", "mimic3_demo", "yaib_demo/mortality24/eicu_demo"} <= set(OPEN_DATA)
    for spec in OPEN_DATA.values():
        assert spec.license in ("ODC-By 1.0", "ODbL 1.0") and "Goldberger" in spec.citation


def test_mimic_demo_is_downloaded_into_the_default_folder(server, mimic_demo, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path / "root"))
    capfd.readouterr()
    folder = ensure_open_data("mimic3_demo", progress=False)
    assert folder == tmp_path / "root" / "mimic3_demo"
    assert sorted(p.name for p in folder.iterdir()) == sorted(mimic_demo)  # no .part left
    assert sorted(path for path, _ in server.requests) == sorted(f"/mimiciii-demo/1.4/{n}" for n in mimic_demo)
    assert capfd.readouterr().err == ""  # progress=False: no bars
    cohort = load_cohort(OPEN_DATA["mimic3_demo"].dataset, folder, "mortality", progress=False, cache=False)
    assert cohort.stay_ids.tolist() == [200, 201] and cohort.y.tolist() == [0, 1]
    assert cohort.X[0, 0, mimic3.FEATURES.index("HR")] == 80 and cohort.X[1, 1, mimic3.FEATURES.index("HR")] == 120
    server.requests.clear()
    assert ensure_open_data("mimic3_demo", progress=False) == folder and server.requests == []  # present: no request


def test_gzipped_tables_count_as_present(server, mimic_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path))
    folder = tmp_path / "mimic3_demo"
    folder.mkdir()
    for name, body in mimic_demo.items():
        if name != "ICUSTAYS.csv":
            (folder / f"{name}.gz").write_bytes(gzip.compress(body))
    ensure_open_data("mimic3_demo", progress=False)
    assert server.requests == [("/mimiciii-demo/1.4/ICUSTAYS.csv", None)]  # only the missing table


def test_mimic_demo_resumes_a_partial_table(server, mimic_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path))
    folder = tmp_path / "mimic3_demo"
    folder.mkdir()
    chart = mimic_demo["CHARTEVENTS.csv"]
    (folder / "CHARTEVENTS.csv.part").write_bytes(chart[:40])
    ensure_open_data("mimic3_demo", progress=False)
    assert (folder / "CHARTEVENTS.csv").read_bytes() == chart
    assert ("/mimiciii-demo/1.4/CHARTEVENTS.csv", "bytes=40-") in server.requests
    assert not list(folder.glob("*.part"))


def test_mimic_demo_checksum_mismatch_is_one_line(server, mimic_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path))
    server.files["mimiciii-demo/1.4/ICUSTAYS.csv"] = mimic_demo["ICUSTAYS.csv"].replace(b"MICU", b"CCU ")  # same size
    with pytest.raises(DataError, match=r"ICUSTAYS.csv downloaded from .* is not the published file \(sha256") as err:
        ensure_open_data("mimic3_demo", progress=False)
    assert "\n" not in str(err.value)
    folder = tmp_path / "mimic3_demo"
    assert not (folder / "ICUSTAYS.csv").exists() and not (folder / "ICUSTAYS.csv.part").exists()


def test_a_named_folder_is_never_a_download_target(server, mimic_demo, yaib_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path / "root"))
    named = tmp_path / "named"
    for name in ("mimic3_demo", "yaib_demo/mortality24/eicu_demo"):
        with pytest.raises(DataError, match=r"does not exist; expected .*leave the data folder unset to download"):
            ensure_open_data(name, named / name, progress=False)
    with pytest.raises(DataError, match="lacks some of its files"):
        named.mkdir()
        ensure_open_data("mimic3_demo", named, progress=False)
    assert server.requests == [] and list(named.iterdir()) == [] and not (tmp_path / "root").exists()
    with pytest.raises(ParameterError, match="not open data"):
        ensure_open_data("eicu")
    # only when asked
    assert ensure_open_data("mimic3_demo", named, download=True, progress=False) == named
    assert sorted(p.name for p in named.iterdir()) == sorted(mimic_demo)


def test_the_default_folder_is_left_alone_when_download_is_false(server, mimic_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="mimic3_demo folder"):
        ensure_open_data("mimic3_demo", download=False)
    assert server.requests == [] and not (tmp_path / "mimic3_demo").exists()


def test_yaib_demo_cohort_for_a_book_chapter(server, yaib_demo, tmp_path, monkeypatch):
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    root = tmp_path / "data"
    subdirs = ("yaib/mortality24/eicu_demo", "yaib_demo/mortality24/eicu_demo")  # the eicu_demo chapter's candidates
    folder = fetch_open_data(subdirs, root, progress=False)
    assert folder == root / "yaib_demo" / "mortality24" / "eicu_demo"
    assert sorted(p.name for p in folder.iterdir()) == sorted(yaib.FILES)
    assert sorted(path for path, _ in server.requests) == sorted(
        f"/YAIB/main/demo_data/mortality24/eicu_demo/{n}" for n in yaib.FILES)
    assert not (root / "yaib").exists()  # a user-built cohort folder is never filled
    cohort = load_cohort("yaib", folder, "mortality24", progress=False, cache=False)
    assert cohort.stay_ids.tolist() == [1, 2, 3] and cohort.y.tolist() == [0, 1, 0] and cohort.shape[2] == 2
    assert fetch_open_data(("mimic3", "eicu"), root) is None and server.requests[3:] == []
    with pytest.raises(ParameterError, match="no YAIB demo cohort"):
        yaib.fetch_demo(tmp_path / "x", "los/eicu_demo")


def test_yaib_demo_checksum_mismatch(server, yaib_demo, tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path))
    server.files["YAIB/main/demo_data/mortality24/eicu_demo/outc.parquet"] = b"not a parquet file"
    wrong = r"outc.parquet downloaded from .* is not the published file \(\d+ bytes, expected"
    with pytest.raises(DataError, match=wrong):
        ensure_open_data("yaib_demo/mortality24/eicu_demo", progress=False)
    folder = tmp_path / "yaib_demo" / "mortality24" / "eicu_demo"
    assert sorted(p.name for p in folder.iterdir()) == ["dyn.parquet", "sta.parquet"]  # only the good ones stay


def test_a_damaged_physionet_download_is_refused(server, tmp_path, monkeypatch):
    archive, outcomes = _tiny_set()
    _serve_tiny_set(server, monkeypatch, archive, outcomes)
    server.files["Outcomes-a.txt"] = outcomes.replace(b"1,1,1,5", b"1,1,1,6")  # same size, other bytes
    folder = tmp_path / "physionet2012"
    with pytest.raises(DataError, match="Outcomes-a.txt.*sha256"):
        physionet2012.load(folder, "mortality", sets="a", download=True, progress=False)
    assert not (folder / "Outcomes-a.txt").exists()  # nothing unverified is left under the final name


def test_the_published_checksums_match_the_shared_copies(shared_data):
    """The manifests were taken from ../shared/data: the demo tables decompressed, the YAIB files as they are."""
    for name, (size, sha) in physionet2012.FILES.items():
        local = shared_data / "physionet2012" / name
        assert (local.stat().st_size, sha256_file(local)) == (size, sha), name
    for name, (size, sha) in mimic3.DEMO_FILES.items():
        body = gzip.decompress((shared_data / "mimic3_demo" / f"{name}.gz").read_bytes())
        assert (len(body), _digest(body)) == (size, sha), name
    for path, (size, sha) in yaib.DEMO_FILES.items():
        local = shared_data / "yaib_demo" / path
        assert (local.stat().st_size, sha256_file(local)) == (size, sha), path
