"""Paths of the book's runs: data folders made symbolic for pages and stored files, and resolved back.

No page or stored file shows the folder names of the machine that built it: a data folder is
written as ``$TARDIFF_DATA_DIR/<sub>`` (:func:`symbolic_data_dir`) and expanded in the kernel
(:func:`resolve_data_dir`); a stored run's folder is found relative to the repository root
(:func:`resolve_results_dir`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tardiff.errors import ParameterError

__all__ = ["DATA_VARIABLE", "resolve_data_dir", "resolve_results_dir", "symbolic_data_dir"]

DATA_VARIABLE = "TARDIFF_DATA_DIR"


def symbolic_data_dir(path: str | os.PathLike | None, data_root: str | os.PathLike | None = None) -> str | None:
    """``path`` as ``$TARDIFF_DATA_DIR/<sub>``: no machine's folder names in a page or a stored file.

    ``data_root`` (default ``$TARDIFF_DATA_DIR``) is the folder holding one sub-folder per
    dataset; a path outside it keeps only its last folder name (``/secure/mimic3`` becomes
    ``$TARDIFF_DATA_DIR/mimic3``). Already symbolic paths and None are returned as they are.

    Examples
    --------
    >>> symbolic_data_dir("/data/yaib_demo/mortality24/eicu_demo", "/data")
    '$TARDIFF_DATA_DIR/yaib_demo/mortality24/eicu_demo'
    >>> symbolic_data_dir("/secure/mimic3", "/data")
    '$TARDIFF_DATA_DIR/mimic3'
    """
    if path is None or str(path).startswith("$"):
        return None if path is None else str(path)
    path = Path(path).expanduser()
    root = data_root if data_root is not None else os.environ.get(DATA_VARIABLE)
    if root:
        try:
            return f"${DATA_VARIABLE}/{path.resolve().relative_to(Path(root).expanduser().resolve()).as_posix()}"
        except ValueError:
            pass
    return f"${DATA_VARIABLE}/{path.name}"


def resolve_data_dir(data_dir: str | None) -> str | None:
    """A notebook's ``data_dir`` parameter with ``$VARIABLES`` and ``~`` expanded (None stays None).

    The book passes ``$TARDIFF_DATA_DIR/<dataset>`` so that no page shows the folder names of
    the machine that built it; this resolves it in the kernel.

    Raises
    ------
    ParameterError
        If the path names an environment variable that is not set.

    Examples
    --------
    >>> resolve_data_dir("$HOME/x") == os.path.join(os.environ["HOME"], "x")
    True
    """
    if data_dir is None:
        return None
    expanded = os.path.expanduser(os.path.expandvars(str(data_dir)))
    if "$" in expanded:
        variable = expanded[expanded.index("$"):].split("/", 1)[0].strip("${}")
        raise ParameterError(f"data_dir {data_dir!r} refers to ${variable}, which is not set; set it to the folder "
                             "holding one sub-folder per dataset, or pass the data folder itself")
    return expanded


def resolve_results_dir(path: str | os.PathLike) -> Path:
    """A stored run's folder as given, or relative to the repository root when it is not found from here.

    The book passes paths relative to the repository root; a notebook run elsewhere (papermill
    with another working directory) still finds them.
    """
    path = Path(os.path.expanduser(os.path.expandvars(str(path))))
    if not path.is_absolute() and not path.exists():
        candidate = Path(__file__).resolve().parents[2] / path
        if candidate.exists():
            return candidate
    return path
