"""Executing the book's notebooks with papermill, several at once.

:func:`execute_run` runs one notebook into its page atomically (a failure keeps the partial
output as ``<name>.failed.ipynb``); :func:`execute_runs` runs a list of them, one worker
process and kernel each, with the BLAS/OpenMP threads split between them.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from tardiff.book.runs import NotebookRun, display_path
from tardiff.data.cache import write_json
from tardiff.errors import TardiffError


def retitle_notebook(path: str | os.PathLike, title: str) -> bool:
    """Make ``title`` the notebook's first level-1 heading; the old heading becomes a subtitle.

    Every experiment page is the same notebook, so without this the table of contents would
    list the same title once per dataset. Returns whether a heading was found.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("# "):
                old = line[2:].strip()
                if old != title:
                    lines[i:i + 1] = [f"# {title}", "", f"*{old}*"]
                    cell.source = "\n".join(lines)
                    nbformat.write(nb, path)
                return True
        return False
    return False


def _relative_metadata(path: Path, run: NotebookRun) -> None:
    """Record the notebook's paths as the repository sees them: papermill keeps the builder's absolute
    input and output paths in the metadata, which the book publishes with each page's source."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    record = nb.metadata.get("papermill")
    if record is not None:
        record["input_path"], record["output_path"] = run.source, run.output
        nbformat.write(nb, path)


def execute_run(run: NotebookRun, parameters: dict, root: str | os.PathLike = ".", progress: bool = True,
                title: str | None = None) -> Path:
    """Execute ``run.source`` with papermill into ``run.output``, atomically.

    The notebook runs with the ``python3`` kernel and the repository root as working
    directory. It is written under a temporary name and renamed on success; if a cell fails,
    the partial output is kept as ``<name>.failed.ipynb`` and a :class:`TardiffError` names it.
    With ``title``, the executed copy's first heading becomes ``title`` (:func:`retitle_notebook`).

    Examples
    --------
    >>> execute_run(get_run("tutorial_01_diffusion"), {"scale": "smoke"})  # doctest: +SKIP
    PosixPath('book/teaching/tutorial_01_diffusion.ipynb')
    """
    import papermill  # the book tool chain (pip install -e ".[book]")
    from papermill.exceptions import PapermillExecutionError

    root = Path(root)
    source = root / run.source
    out = root / run.output
    failed = out.with_name(out.stem + ".failed.ipynb")
    out.parent.mkdir(parents=True, exist_ok=True)
    # A temporary name that still ends in .ipynb (papermill warns otherwise); renamed into place
    # on success, like tardiff.data.cache.atomic_path.
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.running.ipynb")
    try:
        papermill.execute_notebook(
            str(source), str(tmp), parameters=parameters, kernel_name="python3", cwd=str(root),
            progress_bar=progress, log_output=False,
        )
        _relative_metadata(tmp, run)
        if title:
            retitle_notebook(tmp, title)
        os.replace(tmp, out)
    except Exception as exc:  # the kernel's error is in the notebook; re-raised as one line below
        if tmp.exists():
            os.replace(tmp, failed)
        if isinstance(exc, PapermillExecutionError):
            detail = str(exc.evalue).splitlines()[0] if exc.evalue else ""
            what = f"cell [{exc.exec_count}] raised {exc.ename}: {detail}"
        else:
            what = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        kept = f"; the partial output is {display_path(failed, root)}" if failed.exists() else ""
        raise TardiffError(f"notebook {run.source} failed for {run.name!r} ({what.strip()}){kept}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _execute_into_place(run: NotebookRun, parameters: dict, root: Path, progress: bool, title: str) -> Path:
    """Execute ``run``, then remove what stood in for it before (a ``.md`` placeholder, an old failure)."""
    retitle = title if run.kind == "experiment" else None
    executed = execute_run(run, parameters, root=root, progress=progress, title=retitle)
    if run.kind == "experiment":  # what collect_results needs to label this run's rows
        write_json(root / run.out_dir / "book_run.json", {
            "run": run.name, "title": title, "source": run.source, "parameters": parameters,
        })
    for stale in (root / (run.page + ".md"), executed.with_name(executed.stem + ".failed.ipynb")):
        if stale.exists():
            stale.unlink()
    return executed


def available_cpus() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_jobs(scale: str) -> int:
    """Notebooks to execute at once: one per core, at most four; one at paper scale.

    The cpu-scale models are small, so one core per notebook uses a machine better than
    several threads in one notebook (PyTorch's intra-op threads hardly help at these sizes
    and slow down sharply when cores are contended). Paper-scale runs share one GPU, so
    they go one at a time.
    """
    return 1 if scale == "paper" else min(4, available_cpus())


@contextmanager
def _kernel_threads(threads: int):
    """Set the BLAS/OpenMP thread count the kernels inherit, unless the user already chose one."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    user_set = saved["OMP_NUM_THREADS"] is not None
    try:
        if not user_set:
            for name in names:
                os.environ[name] = str(threads)
        yield
    finally:
        if not user_set:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def longest_first(pending: list[tuple[NotebookRun, dict, str]]) -> list[int]:
    """Indices of ``pending``, the longest notebook (:attr:`NotebookRun.cpu_minutes`) first.

    The pool takes notebooks in this order, so the long ones start at once and the short ones
    fill the gaps at the end (longest-processing-time-first scheduling). Started in table
    order instead, the cpu book on two cores left one core idle for about three minutes while
    the other finished the eICU demo, begun after the simulated chapter.

    Examples
    --------
    >>> from tardiff.book.runs import get_run
    >>> runs = [(get_run(name), {}, "") for name in ("tutorial_02_influence", "physionet2012", "simulated")]
    >>> longest_first(runs)
    [1, 2, 0]
    """
    return sorted(range(len(pending)), key=lambda i: -pending[i][0].cpu_minutes)


def execute_runs(pending: list[tuple[NotebookRun, dict, str]], root: str | os.PathLike = ".", *,
                 jobs: int = 1, progress: bool = True) -> list[Path]:
    """Execute ``(run, parameters, title)`` triples, ``jobs`` at a time, each into place.

    With ``jobs > 1`` every notebook runs in its own worker process and kernel, the longest
    first (:func:`longest_first`), and each kernel gets ``cores // jobs`` threads
    (``OMP_NUM_THREADS``, unless already set). A failing
    notebook does not stop the others: all of them finish (their pages are kept), then the
    first failure is raised.

    Returns the executed notebooks, in the order of ``pending``.
    """
    root = Path(root)
    threads = max(1, available_cpus() // max(1, jobs))
    done: dict[int, Path] = {}
    errors: list[tuple[int, BaseException]] = []
    bar = tqdm(total=len(pending), desc="book notebooks", disable=not progress)
    with _kernel_threads(threads):
        if jobs == 1 or len(pending) <= 1:
            for i, (run, params, title) in enumerate(pending):
                bar.set_postfix_str(run.name)
                try:
                    done[i] = _execute_into_place(run, params, root, progress, title)
                except TardiffError as exc:
                    errors.append((i, exc))
                bar.update(1)
        else:
            # spawn: a fresh interpreter per worker, never a fork of a process holding threads
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                futures = {}
                for i in longest_first(pending):  # dicts keep insertion order: the pool starts them in this order
                    run, params, title = pending[i]
                    futures[pool.submit(_execute_into_place, run, params, root, False, title)] = i
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        done[i] = future.result()
                    except TardiffError as exc:
                        errors.append((i, exc))
                    bar.set_postfix_str(f"{pending[i][0].name} done")
                    bar.update(1)
    bar.close()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return [done[i] for i in sorted(done)]

