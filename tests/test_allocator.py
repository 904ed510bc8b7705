"""The allocator setting (tardiff.allocator): set on Linux with glibc, refused on request."""

import ctypes
import ctypes.util
import sys

import pytest

from tardiff.allocator import keep_freed_memory


def _has_glibc_mallopt() -> bool:
    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not (sys.platform.startswith("linux") and _has_glibc_mallopt()), reason="glibc only")
def test_the_thresholds_are_set_on_linux_and_setting_them_again_is_harmless(monkeypatch):
    monkeypatch.delenv("TARDIFF_MALLOC_TUNING", raising=False)
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True


def test_tardiff_malloc_tuning_0_keeps_the_c_librarys_defaults(monkeypatch):
    monkeypatch.setenv("TARDIFF_MALLOC_TUNING", "0")
    assert keep_freed_memory() is False


def test_the_command_line_and_the_executor_set_it(monkeypatch, capsys):
    """`tardiff` and a notebook's run (the executor) both call it: the bench's numbers depend on it."""
    from tardiff import cli
    from tardiff.errors import ParameterError
    from tardiff.experiment import executor

    calls = []
    monkeypatch.setattr("tardiff.allocator.keep_freed_memory", lambda: calls.append("cli") or True)
    monkeypatch.setattr(executor, "keep_freed_memory", lambda: calls.append("executor") or True)
    cli.main(["datasets"])
    assert calls == ["cli"]
    with pytest.raises(ParameterError, match="--workers"):
        executor.run(None, workers=0)  # refused after the call, before any work
    assert calls == ["cli", "executor"]
