"""Keep freed memory in the process, so that large CPU tensors do not page-fault on every allocation.

PyTorch allocates CPU tensors with the C library's ``malloc``. With glibc's defaults, a block of
several megabytes is served by ``mmap`` and handed back to the system when freed, and the heap is
trimmed, so each fresh large tensor is faulted in and zero-filled page by page again. Sampling
allocates such tensors at every step (the UNet's activations, the guidance's per-step states). On
a 2-core VM, 20 guided DDIM steps at batch 256 took 14.3-15.0 s with the defaults and 12.9 s with
this setting, unguided 5.2-5.3 s and 4.8 s (the sampler of ``tardiff bench``'s cpu configuration;
benchmarks/README.md).

PyTorch's CPU performance guide suggests preloading jemalloc or tcmalloc for this; :func:`keep_freed_memory`
is the in-process equivalent for glibc: blocks up to glibc's largest mmap threshold (32 MiB) come
from the heap, and up to 1 GiB of freed memory stays there for the next allocation. The numbers
computed do not change. It is called by the ``tardiff`` command and by the experiment executor;
set ``TARDIFF_MALLOC_TUNING=0`` to keep the C library's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

#: mallopt's parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit systems (a larger value is refused)
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they were set.

    Does nothing (False) outside Linux, without glibc's ``mallopt`` (e.g. musl), or with
    ``TARDIFF_MALLOC_TUNING=0``. Calling it again is harmless.
    """
    if os.environ.get("TARDIFF_MALLOC_TUNING", "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # Both: setting either turns glibc's adaptive mmap threshold off, so a trim threshold alone
    # leaves every block above 128 KiB to mmap (measured: slower than the defaults).
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@functools.lru_cache(maxsize=1)
def _mallopt():
    """glibc's ``mallopt``, or None (looked up once: the executor asks for every task)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc's name; find_library may start a subprocess, so it comes second
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"))
        except (OSError, TypeError):
            return None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt
