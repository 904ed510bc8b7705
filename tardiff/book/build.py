"""Building the whole book: execute the notebooks, write the results page, run jupyter-book.

:func:`build_book` is what ``tardiff book`` and ``make book`` call:

1. it executes each run of :data:`~tardiff.book.runs.NOTEBOOK_RUNS` whose source notebook
   and data are present, into ``book/experiments/`` or ``book/teaching/`` (generated,
   git-ignored), and writes a short markdown page instead where the data or the source
   notebook is missing, so the table of contents always resolves;
2. it gathers each experiment's ``summary.csv`` into the generated results table and
   overview figure that ``book/results.md`` includes;
3. it runs ``jupyter-book build`` on the repository root (``_config.yml`` and ``_toc.yml``
   live there) and returns the HTML folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from tardiff.book.execute import default_jobs, execute_runs
from tardiff.book.pages import write_data_absent_page, write_not_executed_page
from tardiff.book.results import write_results_page
from tardiff.book.runs import NOTEBOOK_RUNS, data_root, get_run, locate_data, run_parameters, run_title
from tardiff.book.paths import DATA_VARIABLE, symbolic_data_dir
from tardiff.data.cache import atomic_path
from tardiff.data.registry import fetch_open_data
from tardiff.errors import DataError, ParameterError, TardiffError
from tardiff.presets import check_scale


def _jupyter_book_command() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise TardiffError('jupyter-book is not installed; run `pip install -e ".[book]"` (or `make book`)')
    return [found]


def run_jupyter_book(root: str | os.PathLike = ".", warnings_as_errors: bool = False, progress: bool = True) -> Path:
    """Run ``jupyter-book build --all`` on ``root``; log to ``_build/jupyter-book.log``; return ``_build/html``."""
    root = Path(root)
    cmd = [*_jupyter_book_command(), "build", str(root), "--all"]
    if warnings_as_errors:
        cmd += ["-W", "--keep-going"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if progress:
            sys.stdout.write(line)
    proc.wait()
    log = root / "_build" / "jupyter-book.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(log) as tmp:
        tmp.write_text("".join(lines), encoding="utf-8")
    if proc.returncode != 0:
        plain = (re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in lines)  # drop terminal colours
        problems = [ln for ln in plain if "WARNING" in ln or "ERROR" in ln]
        first = f": {problems[0]}" if problems else ""
        raise TardiffError(
            f"jupyter-book build failed with {len(problems)} warning(s)/error(s){first}; the full log is {log}"
        )
    return root / "_build" / "html"


def build_book(
    scale: str = "cpu",
    data_dir: str | os.PathLike | None = None,
    only: Iterable[str] | None = None,
    strict: bool = False,
    progress: bool = True,
    warnings_as_errors: bool = False,
    root: str | os.PathLike = Path("."),
    jobs: int | None = None,
    results: str | os.PathLike | None = None,
    download: bool = True,
) -> Path:
    """Execute the book's notebooks, write the results page, and build the HTML book.

    Parameters
    ----------
    scale : {"smoke", "cpu", "paper"}
        Passed to every notebook as the ``scale`` parameter.
    data_dir : path, optional
        Folder with one sub-folder per dataset (``physionet2012/``, ``mimic3/`` or
        ``mimic3_demo/``, ``yaib_demo/mortality24/eicu_demo/``, ...); defaults to
        ``$TARDIFF_DATA_DIR``, else ``<root>/data``.
    only : iterable of str, optional
        Names of the runs to execute (see :data:`NOTEBOOK_RUNS`); the others keep their
        earlier output, or get a placeholder page if they have none.
    strict : bool
        Raise instead of writing a placeholder when a source notebook is missing.
    progress : bool
        Show papermill's and Sphinx's progress.
    warnings_as_errors : bool
        Build with ``-W --keep-going`` (any Sphinx warning fails the build).
    root : path
        The repository root (where ``_config.yml`` and ``_toc.yml`` are).
    jobs : int, optional
        Notebooks executed at once, each in its own kernel (see :func:`execute_runs`);
        default :func:`default_jobs`.
    results : path, optional
        A folder of stored runs, one sub-folder per experiment chapter (``results/paper``
        holding ``physionet2012/``, ``eicu_demo/``, ...; see :mod:`tardiff.book.stored`). Each
        chapter with a stored run is rendered from it (the notebook's ``results_dir``): no data
        is needed and nothing is trained. The other chapters are executed as usual.
    download : bool
        Without ``data_dir``, fetch a chapter's missing open data (PhysioNet 2012, the
        MIMIC-III demo, the YAIB demo cohorts) into the default data folder first; a failed
        download becomes that chapter's data-absent page, with the reason. A folder named with
        ``data_dir`` is never downloaded into.

    Returns
    -------
    pathlib.Path
        The HTML folder, ``<root>/_build/html``.

    Raises
    ------
    TardiffError
        If a notebook fails (its partial output is kept as ``.failed.ipynb``), a source
        notebook is missing with ``strict=True``, or the Sphinx build fails.

    Examples
    --------
    >>> build_book(scale="smoke", only=["simulated"])  # doctest: +SKIP
    PosixPath('_build/html')
    """
    check_scale(scale)
    root = Path(root)
    if not (root / "_config.yml").exists():
        raise ParameterError(f"{root.resolve()} has no _config.yml; run from the repository root or pass root=")
    selected = None if only is None else {get_run(name).name for name in only}

    jobs = default_jobs(scale) if jobs is None else int(jobs)
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, got {jobs}")
    if results is not None and not Path(results).is_dir():
        raise ParameterError(f"--results {results}: no such folder; it should hold one stored run per chapter "
                             "(e.g. results/paper/physionet2012, written by `tardiff book --store`)")
    base = data_root(data_dir, root)

    pending = []  # (run, parameters, title) of the runs to execute
    for run in NOTEBOOK_RUNS:
        chosen = selected is None or run.name in selected
        has_output = (root / run.output).exists() or (root / (run.page + ".md")).exists()
        if not chosen:
            if not has_output:
                write_not_executed_page(run, "it was not selected in this build.", root)
            continue
        if not (root / run.source).exists():
            if strict:
                raise TardiffError(f"source notebook {run.source} is missing; restore it or build with strict=False")
            write_not_executed_page(run, "that notebook is not in this copy of the repository.", root)
            continue
        stored = _stored_run(results, run)
        if stored is not None:
            params = run_parameters(run, scale, None, root, results_dir=stored)
            pending.append((run, params, run_title(run, _stored_data_dir(stored))))
            continue
        present, folder, looked = locate_data(run, data_dir, root)
        reason = None
        if not present and data_dir is None and download:
            try:
                folder = fetch_open_data(run.data_subdirs or (run.dataset,), base, progress=progress)
            except DataError as err:  # offline, or the host changed: the chapter says so instead
                folder, reason = None, str(err)
            present = folder is not None
        if not present:  # the page names the folders symbolically, as $TARDIFF_DATA_DIR/<sub-folder>
            write_data_absent_page(run, [symbolic_data_dir(p, base) for p in looked], root)
            if reason:
                print(f"tardiff book: {run.name}: the open data could not be downloaded: {reason}", file=sys.stderr)
            continue
        pending.append((run, run_parameters(run, scale, folder, root, data_dir), run_title(run, folder)))

    with _environment(DATA_VARIABLE, str(base)):  # the kernels expand $TARDIFF_DATA_DIR in their data_dir
        execute_runs(pending, root, jobs=jobs, progress=progress)
    write_results_page(root)
    return run_jupyter_book(root, warnings_as_errors=warnings_as_errors, progress=progress)



def _stored_run(results: str | os.PathLike | None, run) -> Path | None:
    """``<results>/<run name>`` when it holds a stored run of an experiment chapter."""
    if results is None or run.kind != "experiment":
        return None
    folder = Path(results) / run.name
    return folder if (folder / "results.json").is_file() else None


def _stored_data_dir(folder: Path) -> str | None:
    """The (symbolic) data folder a stored run was made from, which tells a demo from the full dataset."""
    import json

    try:
        return json.loads((folder / "results.json").read_text(encoding="utf-8")).get("config", {}).get("data_dir")
    except (OSError, ValueError) as exc:
        raise TardiffError(f"{folder}/results.json is not readable JSON ({exc}); store that run again") from exc


@contextmanager
def _environment(name: str, value: str):
    """Set an environment variable for the duration (the notebooks' kernels inherit it)."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved
