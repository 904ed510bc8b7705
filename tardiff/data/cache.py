"""Atomic file writes and the parsed-cohort cache.

Every file the package writes goes through :func:`atomic_path`: it is written under a
temporary name in the same directory and renamed into place only when complete, so an
interrupted run never leaves a half-written cache, checkpoint or result behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from tardiff.data.cohort import Cohort

CACHE_FORMAT = 2  # bump when the cached layout changes, so stale caches are not read


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
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


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


def file_fingerprint(paths) -> list:
    """Name, size and modification time of each file: changes when a source file changes."""
    out = []
    for p in sorted(Path(p) for p in paths):
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def default_cache_dir() -> Path:
    """``$TARDIFF_CACHE_DIR``, else ``data/cache`` under the working directory."""
    return Path(os.environ.get("TARDIFF_CACHE_DIR", Path("data") / "cache"))


def save_cohort(path: str | os.PathLike, cohort: Cohort) -> None:
    """Store a cohort as one ``.npz`` file (no pickles), atomically."""
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
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_cohort_file(path: str | os.PathLike) -> Cohort | None:
    """Read a cohort written by :func:`save_cohort`; None if absent, unreadable or stale."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                return None
            static = pd.DataFrame({col: _static_column(z, i) for i, col in enumerate(meta["static_columns"])})
            return Cohort(
                X=z["X"], mask=z["mask"], y=z["y"], stay_ids=z["stay_ids"], static=static,
                features=meta["features"], units=meta["units"], dataset=meta["dataset"], task=meta["task"],
                step_minutes=meta["step_minutes"], info=meta["info"],
                bayes_posterior=z["bayes_posterior"] if "bayes_posterior" in z.files else None,
            )
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache entry is rebuilt, never trusted


def _static_column(z, i: int) -> np.ndarray:
    values = z[f"static_{i}"]
    if f"static_{i}_na" in z.files:
        values = np.where(z[f"static_{i}_na"], None, values.astype(object))
    return values

