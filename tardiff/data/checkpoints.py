"""Model checkpoints written atomically beside a SHA-256 sidecar, and read back verified.

Split from :mod:`tardiff.data.cache` (which re-exports these names): a checkpoint is one
``torch.save`` blob whose digest sits in ``<file>.sha256`` (``sha256sum`` format), so a
truncated, edited or half-written checkpoint is detected when read, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from tardiff.data.cache import DAMAGED_FILE_ERRORS, _warn_damaged, atomic_path
from tardiff.errors import DataError


#: Suffix of the sidecar holding a checkpoint's SHA-256, in ``sha256sum`` format, so that
#: ``sha256sum -c model.pt.sha256`` checks it by hand too.
DIGEST_SUFFIX = ".sha256"


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def save_checkpoint(path: str | os.PathLike, obj) -> str:
    """``torch.save`` ``obj`` to ``path`` atomically, with its SHA-256 in ``path + ".sha256"``; return the digest.

    The digest is written after the checkpoint: a crash between the two leaves a checkpoint
    whose digest is missing or stale, which :func:`load_checkpoint` rebuilds, never trusts.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
    >>> digest = save_checkpoint(path, {"w": torch.ones(2)})
    >>> load_checkpoint(path)["w"].tolist(), checkpoint_digest(path) == digest
    ([1.0, 1.0], True)
    """
    import io

    import torch

    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    with atomic_path(_digest_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    return digest


def _verified_bytes(path: Path) -> tuple[bytes, str]:
    """The checkpoint's bytes and digest; ValueError naming the reason when it does not match its sidecar."""
    sidecar = _digest_path(path)
    if not sidecar.is_file():
        raise ValueError(f"no checksum file {sidecar.name}: not written by save_checkpoint, or interrupted")
    stored = sidecar.read_text().split()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not stored or stored[0] != digest:
        raise ValueError("checksum mismatch: the file was edited or truncated after it was written")
    return data, digest


def _load_verified(path: Path, map_location):
    """torch.load of the verified bytes; raises one of :data:`CHECKPOINT_ERRORS` when damaged."""
    import io

    import torch

    data, _ = _verified_bytes(path)
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


#: What reading a damaged checkpoint can raise (torch reports a bad zip as a RuntimeError).
CHECKPOINT_ERRORS = (*DAMAGED_FILE_ERRORS, RuntimeError, EOFError)


def read_checkpoint(path: str | os.PathLike, map_location="cpu"):
    """The object saved by :func:`save_checkpoint`, verified; a one-line :class:`DataError` otherwise.

    For a checkpoint the user names (nothing to rebuild it from). Loads with
    ``weights_only=True``: tensors, dicts, lists, strings and numbers only, never code.

    Examples
    --------
    >>> read_checkpoint("no/such/model.pt")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    tardiff.errors.DataError: checkpoint no/such/model.pt does not exist; ...
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist; train the model first or check the path")
    try:
        return _load_verified(path, map_location)
    except CHECKPOINT_ERRORS as exc:
        raise DataError(f"checkpoint {path} is damaged or was edited ({type(exc).__name__}: {exc}); "
                        "delete it and train again") from None


def load_checkpoint(path: str | os.PathLike, map_location="cpu"):
    """The object saved by :func:`save_checkpoint`, or None for the caller to rebuild it.

    None silently when ``path`` is absent; None with a :class:`CacheWarning` when it is
    truncated, unreadable, lacks its ``.sha256`` sidecar or does not match it (an edited
    file). A damaged checkpoint and its sidecar are deleted, so the rebuilt one replaces them.

    Examples
    --------
    >>> import tempfile, pathlib, torch, warnings
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
    >>> _ = save_checkpoint(path, {"w": torch.ones(2)})
    >>> _ = path.write_bytes(path.read_bytes()[:-10])  # truncated
    >>> with warnings.catch_warnings(record=True):
    ...     print(load_checkpoint(path), path.exists())
    None False
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return _load_verified(path, map_location)
    except CHECKPOINT_ERRORS as exc:
        _warn_damaged(path, f"{type(exc).__name__}: {exc}")
        for stale in (path, _digest_path(path)):
            with contextlib.suppress(OSError):
                stale.unlink()
        return None


def checkpoint_digest(path: str | os.PathLike) -> str:
    """The verified SHA-256 of a checkpoint written by :func:`save_checkpoint`.

    What to key results computed with the model by: an edited checkpoint changes the key (and
    fails verification here with a one-line :class:`DataError`).
    """
    path = Path(path)
    try:
        return _verified_bytes(path)[1]
    except DAMAGED_FILE_ERRORS as exc:  # FileNotFoundError is an OSError
        raise DataError(f"checkpoint {path} is damaged or was edited ({type(exc).__name__}: {exc}); "
                        "delete it and train again") from None
