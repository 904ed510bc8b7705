"""Atomic, verified file writes, cross-process locks, and the parsed-cohort cache.

Every file the package writes goes through :func:`atomic_path`: it is written under a
temporary name in the same directory and renamed into place only when complete, so an
interrupted run never leaves a half-written cache, checkpoint or result behind. Files get
the permissions the user's umask allows (``0o666 & ~umask``), like any file ``open`` creates.

Cached artifacts are verified when read, never trusted: :func:`save_arrays` /
:func:`load_arrays` and :func:`write_json_verified` / :func:`read_json_verified` store a
SHA-256 checksum of the content in the file and return None (with a :class:`CacheWarning`)
when it is missing, truncated, corrupt or edited, so the caller rebuilds the entry. Two
processes computing the same artifact serialise on :func:`file_lock`.

Where caches live: ``$TARDIFF_CACHE_DIR`` moves every cache, parsed cohorts directly in it
(:func:`default_cache_dir`) and experiment artifacts in its ``artifacts`` folder
(:func:`artifact_cache_dir`); without it both lie under ``data/cache``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from tardiff.data.cohort import Cohort
from tardiff.errors import DataError

CACHE_FORMAT = 3  # bump when the cached layout changes, so stale caches are not read
CHECKSUM_KEY = "__checksum__"
#: What reading a damaged ``.npz`` or JSON file can raise (a truncated zip, a bad CRC, a
#: missing member, a wrong dtype, invalid JSON or UTF-8, a cohort failing its own checks).
DAMAGED_FILE_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError, UnicodeDecodeError)


class CacheWarning(UserWarning):
    """A cache entry was damaged or edited; it is ignored and rebuilt."""


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the system allows.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting and restoring
    it under a lock (``os.umask`` has no read-only form).

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _warn_damaged(path: Path, reason: str) -> None:
    warnings.warn(f"ignoring damaged cache file {path} ({reason}); it is rebuilt", CacheWarning, stacklevel=3)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():  # mkstemp makes 0600 files: give the permissions open() would have
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``path + ".lock"`` for the duration of the block.

    Processes that compute the same artifact take its lock first, then look for the
    artifact: the second one waits until the first has written it and then finds it,
    instead of computing it again or reading it half-written. The lock file is left in
    place (deleting it would let a third process lock a different file).

    POSIX only (``fcntl.flock``): on systems without ``fcntl`` (Windows) the block runs
    unlocked, which costs duplicated work at worst, since every write is atomic. Locks on
    network file systems are only as reliable as the server's ``flock`` support.

    Parameters
    ----------
    path : path
        The artifact to guard (it need not exist).
    timeout : float, optional
        Seconds to wait before raising :class:`TimeoutError`; wait forever when None.

    Yields
    ------
    Path
        The lock file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
    >>> with file_lock(target):
    ...     if not target.exists():
    ...         save_arrays(target, w=np.zeros(3))
    >>> sorted(p.name for p in target.parent.iterdir())
    ['model.npz', 'model.npz.lock']
    """
    lock = Path(f"{os.fspath(path)}.lock")
    try:
        import fcntl
    except ImportError:  # not POSIX: see the docstring
        yield lock
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)  # open() applies the umask itself
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"{lock} is still held after {timeout:g} s by another process") from None
                    time.sleep(0.05)
        try:
            yield lock
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def strict_json(obj, _where: tuple = (), _found: list | None = None):
    """``obj`` in the form JSON reads back, with every NaN or infinity replaced by None (null).

    Python's ``json`` writes NaN and Infinity by default, which is not JSON: ``jq``,
    JavaScript's ``JSON.parse`` and most other readers reject the whole file. Tuples become
    lists, numpy scalars and arrays Python numbers and lists, paths strings.

    Examples
    --------
    >>> strict_json({"sd": float("nan"), "n": np.int64(3), "w": (1.0, np.inf)})
    {'sd': None, 'n': 3, 'w': [1.0, None]}
    """
    if isinstance(obj, dict):
        return {str(k): strict_json(v, (*_where, str(k)), _found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v, (*_where, i), _found) for i, v in enumerate(obj)]
    if isinstance(obj, (np.ndarray, np.generic, Path)):
        return strict_json(_json_default(obj), _where, _found)
    if isinstance(obj, float) and not math.isfinite(obj):
        if _found is not None:
            _found.append([list(_where), repr(obj)])  # 'nan', 'inf' or '-inf'
        return None
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    return _json_default(obj)  # raises TypeError naming the type


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented, strict JSON, atomically: NaN and infinities become null.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
    >>> write_json(path, {"seed_sd": float("nan")})
    >>> path.read_text().split()
    ['{', '"seed_sd":', 'null', '}']
    """
    text = json.dumps(strict_json(obj), indent=2, allow_nan=False)  # allow_nan=False: a NaN left is a bug here
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def _json_checksum(payload, nonfinite=None) -> str:
    """SHA-256 of the canonical JSON text of ``payload`` (sorted keys, no spaces) and the non-finite list."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)  # files of 0.x held NaN
    if nonfinite:  # files without non-finite numbers keep the checksum they always had
        text += json.dumps(nonfinite, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _restore_nonfinite(payload, nonfinite: list):
    """Put back the NaN / infinities that :func:`write_json_verified` stored as null."""
    for where, text in nonfinite:
        if not where:
            return float(text)
        node = payload
        for key in where[:-1]:
            node = node[key]
        if node[where[-1]] is not None:
            raise ValueError("non-finite list does not match the payload")
        node[where[-1]] = float(text)
    return payload


def write_json_verified(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` atomically as ``{"checksum": ..., "payload": obj}`` for :func:`read_json_verified`.

    The payload is stored as it reads back from JSON (tuples become lists, numpy scalars
    Python numbers, keys strings), and the checksum is taken of that form. The file is strict
    JSON: a NaN or infinity is written as null and listed under ``nonfinite``, and
    :func:`read_json_verified` restores it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "record.json"
    >>> write_json_verified(path, {"auprc": 0.41, "seeds": (0, 1)})
    >>> read_json_verified(path)
    {'auprc': 0.41, 'seeds': [0, 1]}
    """
    nonfinite: list = []
    payload = strict_json(obj, (), nonfinite)
    # Strict JSON holds no NaN: each one is stored as null, and its place is listed so that the
    # reader gets the NaN back (a metric that is NaN must not come back as None).
    doc = {"checksum": _json_checksum(payload, nonfinite), "payload": payload}
    if nonfinite:
        doc["nonfinite"] = nonfinite
    write_json(path, doc)


def read_json_verified(path: str | os.PathLike) -> Any | None:
    """The payload written by :func:`write_json_verified`, or None.

    None without a warning when the file is absent; None with a :class:`CacheWarning` when
    it is truncated, not JSON, lacks its checksum, or was edited (the checksum no longer
    matches). The file is left in place: the rebuilt record replaces it atomically.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or "checksum" not in doc or "payload" not in doc:
            raise ValueError("no checksum: not written by write_json_verified")
        nonfinite = doc.get("nonfinite", [])
        if _json_checksum(doc["payload"], nonfinite) != doc["checksum"]:
            raise ValueError("checksum mismatch: the content was changed after it was written")
        return _restore_nonfinite(doc["payload"], nonfinite)
    except (*DAMAGED_FILE_ERRORS, IndexError) as exc:
        _warn_damaged(path, f"{type(exc).__name__}: {exc}")
        return None


def _arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        digest.update(a.data if a.size else b"")
    return digest.hexdigest()


def save_arrays(path: str | os.PathLike, **arrays) -> None:
    """Store numpy arrays in one ``.npz`` file with a checksum of their contents, atomically.

    No pickles: object arrays are refused (use strings or numbers). The checksum is the
    ``__checksum__`` entry, checked by :func:`load_arrays`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "samples.npz"
    >>> save_arrays(path, X=np.ones((2, 3), np.float32), y=np.array([0, 1]))
    >>> sorted(load_arrays(path))
    ['X', 'y']
    """
    if CHECKSUM_KEY in arrays:
        raise ValueError(f"{CHECKSUM_KEY} is reserved for the checksum")
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    objects = [name for name, a in arrays.items() if a.dtype == object]
    if objects:
        raise TypeError(f"cannot store object arrays without pickles: {', '.join(objects)}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays, **{CHECKSUM_KEY: np.array(_arrays_checksum(arrays))})


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays written by :func:`save_arrays`, verified; None when absent or damaged.

    A file that is truncated, corrupt, lacks its checksum or whose content does not match it
    gives a :class:`CacheWarning` and is deleted, so the caller rebuilds it. An absent file
    gives None silently (a cold cache).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}  # reads every member: CRC-checked
        if CHECKSUM_KEY not in arrays:
            raise ValueError("no checksum: not written by save_arrays")
        stored = str(arrays.pop(CHECKSUM_KEY))
        if _arrays_checksum(arrays) != stored:
            raise ValueError("checksum mismatch: the content changed after it was written")
    except DAMAGED_FILE_ERRORS as exc:
        _warn_damaged(path, f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return arrays


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def hash_key(*parts) -> str:
    """A short stable hash of JSON-serialisable ``parts`` (used as a cache key)."""
    text = json.dumps(parts, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """The SHA-256 of named arrays' content that :func:`save_arrays` stores and :func:`load_arrays` checks.

    Use it to key what is computed from arrays (an evaluation record of a synthetic set) by
    their content rather than by how they were made.

    Examples
    --------
    >>> arrays_checksum({"X": np.zeros(2)}) == arrays_checksum({"X": np.zeros(2)}) != arrays_checksum({"X": np.ones(2)})
    True
    """
    return _arrays_checksum({name: np.asarray(a) for name, a in arrays.items()})


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in ``chunk``-byte blocks (never the whole file in memory).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = path.write_bytes(b"abc")
    >>> file_sha256(path)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(paths) -> list:
    """Name, size and SHA-256 of the content of each file: changes whenever a source file's bytes do.

    The content, not the modification time: ``cp -p``, ``rsync -a`` and ``touch -r`` restore
    an mtime, so an edited file of the same size would otherwise serve the old parse. Hashing
    streams the files; for PhysioNet 2012 sets A and B (13.4 MB) it costs 0.015 s with the files
    in the page cache, 0.03 s cold, against ~5 s for a parse (measured on a 2-core CPU, 2026-12).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "Outcomes-a.txt"
    >>> _ = path.write_text("RecordID,In-hospital_death\\n1,0\\n")
    >>> before = file_fingerprint([path])
    >>> _ = path.write_text("RecordID,In-hospital_death\\n1,1\\n")  # same size, new content
    >>> file_fingerprint([path]) == before
    False
    """
    return [[str(p.resolve()), p.stat().st_size, file_sha256(p)] for p in sorted(Path(p) for p in paths)]


def default_cache_dir() -> Path:
    """Where parsed cohorts are cached: ``$TARDIFF_CACHE_DIR``, else ``data/cache`` under the working directory.

    Setting ``TARDIFF_CACHE_DIR`` moves every cache of the package (see :func:`artifact_cache_dir`).
    """
    return Path(os.environ.get("TARDIFF_CACHE_DIR", Path("data") / "cache"))


def artifact_cache_dir() -> Path:
    """Where experiment artifacts are cached: ``$TARDIFF_CACHE_DIR/artifacts``, else ``data/cache/artifacts``.

    Examples
    --------
    >>> artifact_cache_dir() == default_cache_dir() / "artifacts"
    True
    """
    return default_cache_dir() / "artifacts"


def save_cohort(path: str | os.PathLike, cohort: Cohort) -> None:
    """Store a cohort as one verified ``.npz`` file (no pickles), atomically (see :func:`save_arrays`)."""
    arrays = {
        "X": cohort.X, "mask": cohort.mask, "y": cohort.y, "stay_ids": cohort.stay_ids,
        "meta": np.array(json.dumps({
            "format": CACHE_FORMAT, "features": cohort.features, "units": cohort.units,
            "dataset": cohort.dataset, "task": cohort.task, "step_minutes": cohort.step_minutes,
            "info": cohort.info, "static_columns": list(cohort.static.columns),
        }, default=_json_default)),
    }
    if cohort.bayes_posterior is not None:
        arrays["bayes_posterior"] = cohort.bayes_posterior
    for i, col in enumerate(cohort.static.columns):
        values = cohort.static[col].to_numpy()
        if values.dtype == object:  # strings with gaps: store "" plus a mask, so None survives the round trip
            missing = pd.isna(values)
            arrays[f"static_{i}_na"] = missing
            values = np.where(missing, "", values).astype(str)
        arrays[f"static_{i}"] = values
    save_arrays(path, **arrays)


def load_cohort_file(path: str | os.PathLike) -> Cohort | None:
    """Read a cohort written by :func:`save_cohort`; None if absent, stale or damaged.

    A damaged file (truncated, corrupt, edited: anything failing :func:`load_arrays` or the
    cohort's own checks) gives a :class:`CacheWarning` and None, so the cohort is rebuilt.
    A file of an older cache format gives None silently.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
        if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
            return None  # stale, not damaged: the layout changed
    except DAMAGED_FILE_ERRORS as exc:
        _warn_damaged(path, f"{type(exc).__name__}: {exc}")
        return None
    z = load_arrays(path)  # verifies the checksum; warns and deletes when damaged
    if z is None:
        return None
    try:
        # the index gives the row count: a cohort without static columns keeps its N rows
        static = pd.DataFrame({col: _static_column(z, i) for i, col in enumerate(meta["static_columns"])},
                              index=pd.RangeIndex(len(z["y"])))
        return Cohort(
            X=z["X"], mask=z["mask"], y=z["y"], stay_ids=z["stay_ids"], static=static,
            features=meta["features"], units=meta["units"], dataset=meta["dataset"], task=meta["task"],
            step_minutes=meta["step_minutes"], info=meta["info"], bayes_posterior=z.get("bayes_posterior"),
        )
    except DAMAGED_FILE_ERRORS as exc:  # DataError is a ValueError: a cohort failing its checks
        _warn_damaged(path, f"{type(exc).__name__}: {exc}")
        return None


def _static_column(z: dict, i: int) -> np.ndarray:
    values = z[f"static_{i}"]
    if f"static_{i}_na" in z:
        values = np.where(z[f"static_{i}_na"], None, values.astype(object))
    return values
