"""Resumable, atomic file downloads for open datasets.

:func:`download_file` streams a URL into ``<dest>.part`` and renames it onto ``dest`` only
when the whole file has arrived, so ``dest`` either is complete or does not exist. An
interrupted download leaves the ``.part`` file behind; the next call resumes it with an HTTP
``Range`` request (and starts over when the server does not honour ranges). Given the file's
published size and SHA-256, the arrived file is checked before the rename: a mismatch removes
it and raises a one-line :class:`~tardiff.errors.DataError`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from tardiff.errors import DataError

CHUNK_BYTES = 1 << 16
USER_AGENT = "tardiff-downloader/0.1 (+https://physionet.org)"


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 lower-case hex digits (read in 1 MiB blocks).

    Examples
    --------
    >>> len(sha256_file(__file__))
    64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: str | os.PathLike, *, progress: bool = True, timeout: float = 60,
                  sha256: str | None = None, size: int | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` where one exists.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` address.
    dest : path
        Where the complete file ends up; its folder is created when missing (a one-line
        :class:`DataError` when that is impossible, e.g. because the folder is a file).
    progress : bool
        Show a tqdm progress bar.
    timeout : float
        Seconds to wait for the server before giving up (per connection and per read).
    sha256 : str, optional
        The file's published SHA-256 (hex). The complete file is checked before it is renamed
        onto ``dest``; on a mismatch it is deleted (so the next try starts afresh).
    size : int, optional
        The file's size in bytes, checked the same way (and a longer ``.part`` is discarded).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DataError
        When the download fails; the message names the URL and says to retry (the partial
        file is kept and resumed) or to pass ``--data-dir`` to a folder holding the files.
        When the file arrived but its size or checksum is wrong (the file is removed).

    Examples
    --------
    >>> download_file("https://physionet.org/files/challenge-2012/1.0.0/Outcomes-a.txt",
    ...               "data/physionet2012/Outcomes-a.txt")  # doctest: +SKIP
    PosixPath('data/physionet2012/Outcomes-a.txt')
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the folder (or one above it) is a file, or not writable
        blocker = next((p for p in (dest.parent, *dest.parent.parents) if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else f"{type(exc).__name__}: {exc.strerror or exc}"
        raise DataError(
            f"cannot download into {dest.parent} ({reason}); pass --data-dir to a folder (or set TARDIFF_DATA_DIR)"
        ) from None
    if size is not None and part.exists() and part.stat().st_size > size:
        part.unlink()  # longer than the published file: not a prefix of it
    try:
        _fetch(url, part, progress=progress, timeout=timeout, desc=dest.name)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        # HTTPError is a URLError; timeouts are OSError; a cut connection is an HTTPException
        reason = getattr(exc, "reason", None) or exc
        # Offline, nothing was written: mention a partial file only when one exists to resume.
        resume = (f"the {part.stat().st_size}-byte partial file {part.name} is resumed"
                  if part.is_file() and part.stat().st_size else "nothing was written")
        raise DataError(
            f"could not download {url} ({reason}); retry later ({resume}) "
            "or pass --data-dir to a folder that already holds the files"
        ) from None
    _verify(part, url, dest.name, sha256=sha256, size=size)
    os.replace(part, dest)
    return dest


def _verify(part: Path, url: str, name: str, *, sha256: str | None, size: int | None) -> None:
    """Delete ``part`` and raise a one-line DataError when its size or SHA-256 is not the published one."""
    problem = None
    if size is not None and part.stat().st_size != size:
        problem = f"{part.stat().st_size} bytes, expected {size}"
    elif sha256 is not None:
        got = sha256_file(part)
        if got != sha256.lower():
            problem = f"sha256 {got[:16]}..., expected {sha256.lower()[:16]}..."
    if problem is not None:
        part.unlink()
        raise DataError(
            f"{name} downloaded from {url} is not the published file ({problem}); it was removed: retry, "
            "or pass --data-dir to a folder that already holds the files"
        )


def _fetch(url: str, part: Path, *, progress: bool, timeout: float, desc: str) -> None:
    """Stream ``url`` into ``part``, appending to what it already holds when the server allows."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # asked past the end: the .part is stale or complete; start over
            part.unlink()
            return _fetch(url, part, progress=progress, timeout=timeout, desc=desc)
        raise
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: overwrite the partial one
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        written = have
        with open(part, "ab" if resumed else "wb") as fh, tqdm(
            total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=desc, disable=not progress, leave=False,
        ) as bar:
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                fh.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if expected is not None and written != expected:
        raise OSError(f"connection closed after {written} of {expected} bytes")
