"""No silent wrong results in the data layer: data folders, PhysioNet sets, progress bars,
and the verified caches (checksums, umask, cross-process locks)."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_data_core import toy_cohort
from test_loaders_real import OUTCOMES_A, OUTCOMES_B, RECORDS_A, RECORDS_B, write_set

from tardiff.data import data_availability, data_status, expected_files, load_cohort, physionet2012, resolve_data_dir
from tardiff.data.cache import (
    CacheWarning, artifact_cache_dir, atomic_path, current_umask, default_cache_dir, file_lock, load_arrays,
    load_cohort_file, read_json_verified, save_arrays, save_cohort, write_json, write_json_verified,
)
from tardiff.errors import DataError

NEEDS_DATA = ["physionet2012", "mimic3", "yaib", "eicu"]


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    """Nothing here may reach the network: a download attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected download: fetch{args}")
    monkeypatch.setattr(physionet2012, "fetch", refuse)


@pytest.fixture
def set_a_only(tmp_path) -> Path:
    folder = tmp_path / "only-a"
    write_set(folder, "a", RECORDS_A, OUTCOMES_A)
    return folder


def _one_line_error(match, fn, *args, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


# ---------------------------------------------------------------- data folders

@pytest.mark.parametrize("name", NEEDS_DATA)
def test_data_dir_that_is_a_file(tmp_path, name):
    path = tmp_path / "a-file.txt"
    path.write_text("not a folder")
    _one_line_error(rf"{name} data folder .*a-file.txt is a file, not a folder; pass --data-dir",
                    load_cohort, name, path)
    assert data_availability(name, path).present is False and data_status(name, path) == (False, str(path))
    assert path.read_text() == "not a folder"


@pytest.mark.parametrize("name", NEEDS_DATA)
def test_named_data_dir_that_does_not_exist(tmp_path, name):
    missing = tmp_path / "nowhere"
    message = _one_line_error(rf"{name} data folder .*nowhere does not exist; pass --data-dir",
                              load_cohort, name, missing)
    assert expected_files(name) in message  # says what the folder should hold
    assert not missing.exists() and list(tmp_path.iterdir()) == []  # no folder made, nothing downloaded


@pytest.mark.parametrize("name,match", [
    ("physionet2012", r"no PhysioNet 2012 data in .*empty for sets a, b: expected set-a.tar.gz, Outcomes-a.txt"),
    ("mimic3", r"MIMIC-III tables missing in .*empty: PATIENTS.csv\(.gz\)"),
    ("yaib", r"no YAIB cohort in .*empty: missing dyn.parquet"),
    ("eicu", r"eICU tables missing in .*empty: patient.csv\(.gz\)"),
])
def test_named_data_dir_without_the_files(tmp_path, name, match):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(match, load_cohort, name, empty, progress=False)
    assert list(empty.iterdir()) == []  # never a download target


def test_mimic3_and_eicu_share_one_find_source_files(tmp_path):
    """Issue #22: the two loaders held copies of one function; both are now made by tardiff.data.sources."""
    from tardiff.data import eicu, mimic3, sources

    assert mimic3.find_source_files.__code__ is eicu.find_source_files.__code__
    assert mimic3.find_table is sources.find_table
    for table in ("patient", "VITALPERIODIC"):  # any case of file name, .csv or .csv.gz
        (tmp_path / f"{table}.csv{'.gz' if table == 'patient' else ''}").write_text("")
    assert eicu.find_source_files(tmp_path) == [tmp_path / "patient.csv.gz", tmp_path / "VITALPERIODIC.csv"]
    _one_line_error(r"MIMIC-III tables missing in .*: PATIENTS.csv\(.gz\), ADMISSIONS.csv\(.gz\), ICUSTAYS.csv\(.gz\), "
                    r"CHARTEVENTS.csv\(.gz\); pass --data-dir to the folder of the MIMIC-III v1.4 CSV files",
                    mimic3.find_source_files, tmp_path)


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.delenv("TARDIFF_DATA_DIR", raising=False)
    assert resolve_data_dir("eicu") == Path("data/eicu")
    monkeypatch.setenv("TARDIFF_DATA_DIR", str(tmp_path))
    assert resolve_data_dir("eicu") == tmp_path / "eicu" and resolve_data_dir("eicu", "/x") == Path("/x")


# ---------------------------------------------------------------- PhysioNet sets

def test_folder_with_set_a_only(set_a_only):
    message = _one_line_error(r"holds only set a: pass sets='a' \(--sets a\) or add set-b.tar.gz, Outcomes-b.txt",
                              load_cohort, "physionet2012", set_a_only, progress=False)
    assert "for sets a, b" in message
    cohort = load_cohort("physionet2012", set_a_only, sets="a", progress=False)
    assert cohort.stay_ids.tolist() == [1001, 1002, 1004] and cohort.info["sets"] == ["a"]
    _one_line_error(r"for sets a, b, c: it holds only set a", load_cohort, "physionet2012", set_a_only, sets="abc")


def test_availability_reports_only_what_is_usable(set_a_only, tmp_path):
    default = data_availability("physionet2012", set_a_only)
    assert default.present is False and default.where == str(set_a_only)
    assert default.detail.startswith("sets found: a;") and "Outcomes-b.txt" in default.detail
    only_a = data_availability("physionet2012", set_a_only, sets="a")
    assert only_a.present is True and only_a.detail == "sets found: a"
    assert data_status("physionet2012", set_a_only) == (False, str(set_a_only))
    assert data_status("physionet2012", set_a_only, sets="a") == (True, str(set_a_only))
    write_set(set_a_only, "b", RECORDS_B, OUTCOMES_B)
    both = data_availability("physionet2012", set_a_only)
    assert both.present is True and both.detail == "sets found: a, b"
    assert data_availability("physionet2012", set_a_only, sets="abc").present is False
    nowhere = data_availability("physionet2012", tmp_path / "nowhere")
    assert not nowhere.present and nowhere.detail.startswith("the folder does not exist")
    assert data_availability("simulated").present and data_availability("mimic3", set_a_only).present is False


def test_sets_choose_the_cache_entry(set_a_only, tmp_path):
    write_set(set_a_only, "b", RECORDS_B, OUTCOMES_B)
    cache = tmp_path / "cache"
    a = load_cohort("physionet2012", set_a_only, sets="a", cache_dir=cache, progress=False)
    ab = load_cohort("physionet2012", set_a_only, cache_dir=cache, progress=False)
    assert a.shape[0] == 3 and ab.shape[0] == 5 and len(list(cache.glob("*.npz"))) == 2


# ---------------------------------------------------------------- progress

def test_progress_false_silences_every_loader_bar(set_a_only, capfd):
    load_cohort("physionet2012", set_a_only, sets="a", cache=False, progress=False)
    assert capfd.readouterr().err == ""
    load_cohort("physionet2012", set_a_only, sets="a", cache=False, progress=True)
    assert "set-a.tar.gz" in capfd.readouterr().err


def test_progress_reaches_the_table_loaders(tmp_path, capfd):
    from test_loaders_real import _write_yaib

    _write_yaib(tmp_path / "y", [0, 1])
    load_cohort("yaib", tmp_path / "y", cache=False, progress=False)  # accepted by every loader
    load_cohort("simulated", n=40, seed=0, cache=False, progress=False)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- cohort cache

def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # flip bytes in the middle: a corrupt member
        mid = len(data) // 2
        path.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:])


@pytest.mark.parametrize("how", ["truncate", "empty", "flip"])
def test_damaged_cohort_file_warns_and_is_rebuilt(tmp_path, how):
    path = tmp_path / "c.npz"
    save_cohort(path, toy_cohort())
    _damage(path, how)
    with pytest.warns(CacheWarning, match="ignoring damaged cache file .*c.npz"):
        assert load_cohort_file(path) is None


def test_load_cohort_rebuilds_a_truncated_cache(tmp_path):
    cache = tmp_path / "cache"
    first = load_cohort("simulated", n=40, seed=0, cache_dir=cache)
    [path] = cache.glob("*.npz")
    _damage(path, "truncate")
    with pytest.warns(CacheWarning):
        again = load_cohort("simulated", n=40, seed=0, cache_dir=cache)
    np.testing.assert_array_equal(again.X, first.X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_cohort_file(path) is not None  # rewritten whole


def test_cohort_file_with_edited_values_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    save_cohort(path, toy_cohort())
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["y"] = 1 - arrays["y"]  # a valid zip whose labels were changed: only the checksum tells
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        assert load_cohort_file(path) is None


# ---------------------------------------------------------------- verified arrays

def test_arrays_round_trip(tmp_path):
    arrays = {"X": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "y": np.array([0, 1]),
              "names": np.array(["a", "bc"]), "mask": np.array([True, False]), "empty": np.zeros((0, 3))}
    save_arrays(tmp_path / "a.npz", **arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_arrays(tmp_path / "a.npz")
        assert load_arrays(tmp_path / "absent.npz") is None  # a cold cache is not a warning
    assert sorted(back) == sorted(arrays)
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value)
    with pytest.raises(TypeError, match="object arrays"):
        save_arrays(tmp_path / "o.npz", o=np.array([None, 1], dtype=object))


@pytest.mark.parametrize("how", ["truncate", "empty", "flip", "edited", "no-checksum", "wrong-dtype"])
def test_damaged_arrays_warn_and_are_deleted(tmp_path, how):
    path = tmp_path / "a.npz"
    X = np.random.default_rng(0).normal(size=(50, 20))
    save_arrays(path, X=X, y=np.arange(50))
    if how in ("edited", "no-checksum", "wrong-dtype"):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        if how == "edited":
            arrays["X"][3, 4] += 1e-9
        elif how == "no-checksum":
            del arrays["__checksum__"]
        else:
            arrays["y"] = arrays["y"].astype(np.int32)  # same numbers, different bytes
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    else:
        _damage(path, how)
    with pytest.warns(CacheWarning, match=r"ignoring damaged cache file .*a.npz \(.*\); it is rebuilt"):
        assert load_arrays(path) is None
    assert not path.exists()


# ---------------------------------------------------------------- verified JSON

RECORD = {"method": "tardiff", "protocol": "TSTR", "seed": 0, "auprc": 0.4123, "auroc": float("nan"),
          "sizes": (120, 30), "value": np.float32(0.5)}


def test_json_round_trip(tmp_path):
    path = tmp_path / "r.json"
    write_json_verified(path, RECORD)
    back = read_json_verified(path)
    assert back["auprc"] == 0.4123 and back["sizes"] == [120, 30] and back["value"] == 0.5 and np.isnan(back["auroc"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_json_verified(tmp_path / "absent.json") is None


@pytest.mark.parametrize("how", ["edited", "truncate", "empty", "no-checksum", "not-json"])
def test_damaged_json_warns(tmp_path, how):
    path = tmp_path / "r.json"
    write_json_verified(path, RECORD)
    text = path.read_text()
    if how == "edited":
        doc = json.loads(text)
        doc["payload"]["auprc"] = 42
        path.write_text(json.dumps(doc, indent=2))
    elif how == "truncate":
        path.write_text(text[: len(text) // 2])
    elif how == "empty":
        path.write_text("")
    elif how == "no-checksum":
        write_json(path, RECORD)
    else:
        path.write_bytes(b"\xff\xfe garbage")
    with pytest.warns(CacheWarning, match="ignoring damaged cache file"):
        assert read_json_verified(path) is None


# ---------------------------------------------------------------- permissions

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        save_arrays(tmp_path / "a.npz", x=np.zeros(2))
        write_json_verified(tmp_path / "r.json", {"a": 1})
        save_cohort(tmp_path / "c.npz", toy_cohort())
        with atomic_path(tmp_path / "t.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    for name in ("a.npz", "r.json", "c.npz", "t.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# ---------------------------------------------------------------- cache folders

def test_cache_dirs_follow_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TARDIFF_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path and artifact_cache_dir() == tmp_path / "artifacts"
    monkeypatch.delenv("TARDIFF_CACHE_DIR")
    assert default_cache_dir() == Path("data/cache") and artifact_cache_dir() == Path("data/cache/artifacts")


# ---------------------------------------------------------------- cross-process lock

def _compute_once(target: str, log: str, started, hold: float) -> None:
    """Take the lock; compute the artifact (slowly) only if it is not there yet."""
    with file_lock(target):
        started.set()
        if Path(target).exists():
            outcome = "found"
        else:
            time.sleep(hold)
            save_arrays(target, value=np.array([os.getpid()]))
            outcome = "computed"
        with open(log, "a") as fh:  # inside the lock: the log order is the lock order
            fh.write(f"{outcome} {time.monotonic():.6f}\n")


@pytest.mark.skipif(os.name != "posix", reason="file_lock uses fcntl.flock (POSIX)")
def test_file_lock_serialises_two_processes(tmp_path):
    ctx = multiprocessing.get_context("fork")  # no re-import of the test module in the child
    target, log = str(tmp_path / "artifact.npz"), str(tmp_path / "log.txt")
    first_in = ctx.Event()
    first = ctx.Process(target=_compute_once, args=(target, log, first_in, 0.6))
    first.start()
    assert first_in.wait(10)
    second = ctx.Process(target=_compute_once, args=(target, log, ctx.Event(), 0.0))
    start = time.monotonic()
    second.start()
    first.join(10)
    second.join(10)
    assert first.exitcode == 0 and second.exitcode == 0
    outcomes = [line.split() for line in Path(log).read_text().splitlines()]
    assert [o for o, _ in outcomes] == ["computed", "found"]  # the second waited, then found it
    assert float(outcomes[1][1]) - start > 0.3
    assert load_arrays(target)["value"].tolist() == [first.pid]


def test_file_lock_timeout(tmp_path):
    target = tmp_path / "artifact.npz"
    ctx = multiprocessing.get_context("fork")
    holding, release = ctx.Event(), ctx.Event()

    def hold():
        with file_lock(target):
            holding.set()
            release.wait(10)

    other = ctx.Process(target=hold)
    other.start()
    try:
        assert holding.wait(10)
        with pytest.raises(TimeoutError, match="still held"):
            with file_lock(target, timeout=0.2):
                pass
    finally:
        release.set()
        other.join(10)
    with file_lock(target, timeout=1) as lock:
        assert lock == Path(f"{target}.lock")


def test_npz_is_a_zip(tmp_path):
    """save_arrays writes a plain .npz: other tools (numpy alone) can read it."""
    save_arrays(tmp_path / "a.npz", x=np.ones(3))
    assert zipfile.is_zipfile(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        assert z["x"].tolist() == [1, 1, 1]
