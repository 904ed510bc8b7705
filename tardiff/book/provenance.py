"""Provenance of a run: where its numbers come from (versions, commit, device, dates) and the command that repeats it.

:func:`provenance` is what a stored run's ``provenance.json`` holds; :func:`run_command` the
``tardiff run`` command line rebuilt from a ``results.json`` config.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

# The command that repeats a run derives from the settings' declaration (see its doctest there).
from tardiff.experiment.settings import command_line as run_command

__all__ = ["provenance", "run_command"]


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _device_name(device: str) -> str:
    """A readable name of the device a run used, asked of this machine (where the run normally is)."""
    import torch

    if str(device).startswith("cuda"):
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
        return "a CUDA GPU (stored on a machine without one: name unknown)"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores)" if cpu else "CPU"


def provenance(results: dict, *, run_date: str | None = None, stored_with: str | None = None) -> dict:
    """Where a run's numbers come from: versions, commit, device, dates and the command.

    Versions and the commit are those of the environment storing the run, which is the one
    that ran it when the notebook stores it (``store_dir``) or ``tardiff book --store`` runs
    on the same machine; ``tardiff_version_run`` is the version the run itself recorded.
    """
    import torch

    config = results.get("config", {})
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "dataset": config.get("dataset"), "task": (results.get("records") or [{}])[0].get("task", config.get("task")),
        "scale": config.get("scale"), "device": results.get("device"),
        "device_name": _device_name(str(results.get("device", "cpu"))),
        "git_commit": commit, "git_dirty": None if dirty is None else bool(dirty),
        "tardiff_version": _package_version(), "tardiff_version_run": results.get("version"),
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": platform.python_version(), "platform": platform.platform(terse=True),
        "run_date": run_date, "stored_date": _now(),
        "command": run_command(config) if config else None,
        "stored_with": stored_with or " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def _package_version() -> str:
    import tardiff

    return tardiff.__version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _file_date(path: Path) -> str | None:
    try:
        return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc).replace(microsecond=0).isoformat()
    except OSError:
        return None
