"""Build the compendium's Jupyter Book: run the notebooks, gather the results, render the HTML.

The book is data-driven. :data:`NOTEBOOK_RUNS` lists every papermill run the book consists
of (one experiment notebook per dataset, three teaching notebooks); :func:`build_book`

1. executes each run whose source notebook and data are present, into ``book/experiments/``
   or ``book/teaching/`` (generated, git-ignored), and writes a short markdown page instead
   where the data or the source notebook is missing, so the table of contents always
   resolves (Jupyter Book toc entries omit the suffix: ``.ipynb`` and ``.md`` both serve);
2. gathers each experiment's ``summary.csv`` (:func:`collect_results`) into the generated
   ``book/results_table.md`` and ``book/figures/results_overview.png`` that ``book/results.md``
   includes;
3. runs ``jupyter-book build`` on the repository root (``_config.yml`` and ``_toc.yml`` live
   there) and returns the HTML folder.

The module is also a small Sphinx extension (``sphinx: extra_extensions`` in ``_config.yml``):
it points the Binder/Colab launch buttons of executed pages at their source notebooks, since
the executed copies are generated and not in the repository, and it drops the duplicated
inline scripts that would otherwise raise a JavaScript error on every page.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from tardiff.data.cache import atomic_path, write_json
from tardiff.errors import DataError, ParameterError, TardiffError

EXPERIMENT_NOTEBOOK = "notebooks/experiment.ipynb"
SCALES = ("smoke", "cpu", "paper")

#: Columns every experiment's ``summary.csv`` must have (the contract with the experiment notebook).
SUMMARY_COLUMNS = (
    "dataset", "task", "method", "protocol", "evaluator",
    "auprc_mean", "auprc_std", "auroc_mean", "auroc_std", "minority_f1_mean", "minority_f1_std", "n_seeds",
)
#: Optional columns used when present: TSRTR's synthetic-to-real ratio, the test-set positive
#: rate (the AUPRC of a random ranking) and, for the simulated cohort, the Bayes-optimal AUPRC.
OPTIONAL_SUMMARY_COLUMNS = ("alpha", "prevalence", "bayes_auprc")
#: Column order of the results tables: the reference, TarDiff, its ablation, the baselines, the controls.
METHOD_ORDER = ("real", "tardiff", "unguided", "mcrage", "smote", "ros", "real_cw")
METHOD_LABELS = {"real": "real only", "real_cw": "real, class-weighted", "ros": "random oversampling",
                 "smote": "SMOTE", "mcrage": "MCRAGE", "unguided": "unguided diffusion", "tardiff": "TarDiff"}

RESULTS_TABLE = "book/results_table.md"
RESULTS_FIGURE = "book/figures/results_overview.png"


@dataclass(frozen=True)
class NotebookRun:
    """One papermill run of the book: a source notebook, where its executed copy goes, its parameters.

    Parameters
    ----------
    name : str
        Short name, used by ``build_book(only=...)`` and as the page's file stem.
    title : str
        What the reader sees when the page cannot be executed.
    source : str
        The parameterised notebook, relative to the repository root.
    output : str
        The executed notebook, relative to the repository root (``book/...ipynb``).
    kind : {"experiment", "teaching"}
        Experiment runs get ``dataset``, ``data_dir`` and ``out_dir`` parameters and write
        ``<output folder>/<name>/summary.csv``.
    dataset : str, optional
        Registry name of the dataset the run needs (``tardiff.data.DATASETS``).
    data_subdirs : tuple of str
        Folders, under the data root, to look for the dataset in (first present wins).
    parameters : dict
        Fixed papermill parameters (plain Python values); ``build_book`` adds ``scale``.
    demo_subdirs : tuple of str
        Those of ``data_subdirs`` that hold a small open demo of the dataset; when the data
        is found there, the page and the results table carry ``demo_title`` instead of ``title``.
    """

    name: str
    title: str
    source: str
    output: str
    kind: Literal["experiment", "teaching"]
    dataset: str | None = None
    data_subdirs: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)
    demo_subdirs: tuple[str, ...] = ()
    demo_title: str | None = None

    def __post_init__(self):
        if self.kind not in ("experiment", "teaching"):
            raise ParameterError(f"NotebookRun kind must be 'experiment' or 'teaching', not {self.kind!r}")
        if not self.output.endswith(".ipynb"):
            raise ParameterError(f"NotebookRun output must end in .ipynb, not {self.output!r}")

    @property
    def page(self) -> str:
        """The toc entry (output path without suffix), e.g. ``book/experiments/simulated``."""
        return self.output[: -len(".ipynb")]

    @property
    def out_dir(self) -> str:
        """Folder for the run's artefacts (``summary.csv``), e.g. ``book/experiments/simulated``."""
        return self.page


NOTEBOOK_RUNS: tuple[NotebookRun, ...] = (
    NotebookRun(
        "simulated", "Simulated ICU cohort", EXPERIMENT_NOTEBOOK, "book/experiments/simulated.ipynb",
        "experiment", dataset="simulated", parameters={"dataset": "simulated", "task": "mortality"},
    ),
    NotebookRun(
        "physionet2012", "PhysioNet/CinC Challenge 2012", EXPERIMENT_NOTEBOOK,
        "book/experiments/physionet2012.ipynb", "experiment", dataset="physionet2012",
        data_subdirs=("physionet2012",), parameters={"dataset": "physionet2012", "task": "mortality"},
    ),
    NotebookRun(
        "mimic3", "MIMIC-III", EXPERIMENT_NOTEBOOK, "book/experiments/mimic3.ipynb", "experiment",
        dataset="mimic3", data_subdirs=("mimic3", "mimic3_demo"),
        parameters={"dataset": "mimic3", "task": "mortality"},
        demo_subdirs=("mimic3_demo",), demo_title="MIMIC-III demo (open, 100 patients)",
    ),
    NotebookRun(
        "eicu", "eICU-CRD", EXPERIMENT_NOTEBOOK, "book/experiments/eicu.ipynb", "experiment",
        dataset="eicu", data_subdirs=("eicu",), parameters={"dataset": "eicu", "task": "mortality"},
    ),
    NotebookRun(
        "eicu_demo", "eICU-CRD demo (YAIB mortality24 cohort)", EXPERIMENT_NOTEBOOK,
        "book/experiments/eicu_demo.ipynb", "experiment", dataset="yaib",
        data_subdirs=("yaib/mortality24/eicu_demo", "yaib_demo/mortality24/eicu_demo"),
        parameters={"dataset": "yaib", "task": "mortality24"},
    ),
    NotebookRun(
        "tutorial_01_diffusion", "Tutorial 1: diffusion models for ICU time series",
        "notebooks/tutorial_01_diffusion.ipynb", "book/teaching/tutorial_01_diffusion.ipynb", "teaching",
    ),
    NotebookRun(
        "tutorial_02_influence", "Tutorial 2: influence of a training sample",
        "notebooks/tutorial_02_influence.ipynb", "book/teaching/tutorial_02_influence.ipynb", "teaching",
    ),
    NotebookRun(
        "tutorial_03_guidance", "Tutorial 3: influence-guided sampling",
        "notebooks/tutorial_03_guidance.ipynb", "book/teaching/tutorial_03_guidance.ipynb", "teaching",
    ),
)


def get_run(name: str) -> NotebookRun:
    """The run called ``name``, or a one-line error listing the runs."""
    for run in NOTEBOOK_RUNS:
        if run.name == name:
            return run
    raise ParameterError(f"unknown book notebook {name!r}; choose from: {', '.join(r.name for r in NOTEBOOK_RUNS)}")


def run_title(run: NotebookRun, data_folder: str | os.PathLike | None = None) -> str:
    """The title of ``run``'s page: ``demo_title`` when its data was found in a demo folder.

    Examples
    --------
    >>> run_title(get_run("mimic3"), "/data/mimic3_demo")
    'MIMIC-III demo (open, 100 patients)'
    """
    if data_folder is not None and run.demo_title:
        folder = Path(data_folder).as_posix().rstrip("/")
        if any(folder == sub or folder.endswith("/" + sub) for sub in run.demo_subdirs):
            return run.demo_title
    return run.title


# --------------------------------------------------------------------------------------------
# Data lookup and generated pages


def _data_root(data_dir: str | os.PathLike | None, root: Path) -> Path:
    """The folder holding one sub-folder per dataset: ``data_dir``, ``$TARDIFF_DATA_DIR`` or ``<root>/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("TARDIFF_DATA_DIR")
    return Path(env).expanduser() if env else root / "data"


def locate_data(run: NotebookRun, data_dir: str | os.PathLike | None = None,
                root: str | os.PathLike = ".") -> tuple[bool, Path | None, list[str]]:
    """Find the data a run needs.

    Returns ``(present, folder, looked_in)``; ``folder`` is None for generated data
    (the simulated cohort) and when the data is absent.

    Examples
    --------
    >>> locate_data(get_run("simulated"))
    (True, None, [])
    """
    from tardiff.data import DATASETS, data_status

    if run.dataset is None or not DATASETS[run.dataset].needs_data:
        return True, None, []
    base = _data_root(data_dir, Path(root))
    looked = []
    for sub in run.data_subdirs or (run.dataset,):
        candidate = base / sub
        present, where = data_status(run.dataset, candidate)
        looked.append(where)
        if present:
            return True, candidate, looked
    return False, None, looked


def _display_path(path: Path, root: Path) -> str:
    """``path`` relative to the repository root when inside it (as the notebook's cwd sees it), else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _write_page(root: Path, run: NotebookRun, text: str) -> Path:
    """Write ``run``'s page as markdown, removing a stale executed notebook of the same name."""
    page = root / (run.page + ".md")
    with atomic_path(page) as tmp:
        tmp.write_text(text, encoding="utf-8")
    stale = [root / run.output]
    if run.kind == "experiment":  # results of an earlier build must not outlive the page that showed them
        stale.append(root / run.out_dir / "summary.csv")
    for path in stale:
        if path.exists():
            path.unlink()
    return page


def write_data_absent_page(run: NotebookRun, looked_in: Iterable[str], root: str | os.PathLike = ".") -> Path:
    """Write the page shown instead of an experiment whose data was not found.

    Examples
    --------
    >>> import tempfile
    >>> p = write_data_absent_page(get_run("mimic3"), ["data/mimic3"], root=tempfile.mkdtemp())
    >>> "data not found" in p.read_text()
    True
    """
    from tardiff.data import DATASETS

    root = Path(root)
    spec = DATASETS[run.dataset]
    places = "\n".join(f"- `{p}`" for p in looked_in) or "- (nowhere: no data folder was configured)"
    task = f" -p task {run.parameters['task']}" if run.parameters.get("task") else ""
    text = f"""# {run.title}: data not found

This chapter runs `{run.source}` on {spec.title}. The data was not available when this copy
of the book was built, so the chapter shows how to get it instead of results.

**Looked in**

{places}

**How to get it**: {spec.how_to_get}.

**Home**: <{spec.home}>. **License**: {spec.license}.

Once the files are in place, rebuild this chapter (the data folder holds one sub-folder per
dataset, named as above):

```bash
tardiff book --data-dir /path/to/data --only {run.name}
```

or run the notebook on its own with papermill:

```bash
papermill {run.source} {run.name}.ipynb -p dataset {run.dataset}{task} -p data_dir /path/to/data/{(run.data_subdirs or (run.dataset,))[0]} -p scale cpu
```

The [data chapter](../data.md) describes each dataset, its license and the loader's options.
"""
    return _write_page(root, run, text)


def write_not_executed_page(run: NotebookRun, reason: str, root: str | os.PathLike = ".") -> Path:
    """Write a placeholder page for a run that was not executed in this build (``reason`` says why)."""
    root = Path(root)
    text = f"""# {run.title}

This chapter is generated by executing `{run.source}`; {reason}

To produce it, run

```bash
tardiff book --only {run.name}
```
"""
    return _write_page(root, run, text)


# --------------------------------------------------------------------------------------------
# Executing notebooks


def _run_parameters(run: NotebookRun, scale: str, data_folder: Path | None, root: Path) -> dict:
    params = dict(run.parameters)
    params["scale"] = scale
    if run.kind == "experiment":
        params["data_dir"] = None if data_folder is None else _display_path(data_folder, root)
        params["out_dir"] = run.out_dir
    return params


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
        kept = f"; the partial output is {_display_path(failed, root)}" if failed.exists() else ""
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


def execute_runs(pending: list[tuple[NotebookRun, dict, str]], root: str | os.PathLike = ".", *,
                 jobs: int = 1, progress: bool = True) -> list[Path]:
    """Execute ``(run, parameters, title)`` triples, ``jobs`` at a time, each into place.

    With ``jobs > 1`` every notebook runs in its own worker process and kernel, and each
    kernel gets ``cores // jobs`` threads (``OMP_NUM_THREADS``, unless already set). A failing
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
                futures = {pool.submit(_execute_into_place, run, params, root, False, title): i
                           for i, (run, params, title) in enumerate(pending)}
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


# --------------------------------------------------------------------------------------------
# Results


def _read_reference(results_json: Path) -> dict:
    """Prevalence and Bayes AUPRC from an experiment's ``results.json`` (``reference`` entry), if any."""
    if not results_json.exists():
        return {}
    try:
        reference = json.loads(results_json.read_text()).get("reference", {})
    except (OSError, ValueError) as exc:
        raise DataError(f"{results_json} is not readable JSON ({exc}); re-run that experiment notebook") from exc
    out = {}
    if reference.get("prevalence") is not None:
        out["prevalence"] = float(reference["prevalence"])
    bayes = reference.get("bayes") or {}
    if bayes.get("auprc") is not None:
        out["bayes_auprc"] = float(bayes["auprc"])
    return out


def collect_results(experiments_dir: str | os.PathLike) -> pd.DataFrame:
    """Concatenate every ``<experiments_dir>/<run>/summary.csv`` into one table.

    Parameters
    ----------
    experiments_dir : path
        The folder holding one sub-folder per experiment run (``book/experiments``).

    Returns
    -------
    pandas.DataFrame
        ``run`` (the sub-folder's name), ``title`` (the page title the run was built with,
        from ``book_run.json``, else the run's title), the :data:`SUMMARY_COLUMNS`, and those of
        :data:`OPTIONAL_SUMMARY_COLUMNS` that any run provides, ordered by the book's run
        order and then by method. A summary's ``n`` column is read as ``n_seeds``; the
        prevalence and the Bayes AUPRC come from the summary's own columns or, failing
        that, from the ``reference`` entry of ``results.json`` beside it.

    Raises
    ------
    DataError
        If a summary lacks a required column.

    Examples
    --------
    >>> collect_results("no/such/folder").empty
    True
    """
    experiments_dir = Path(experiments_dir)
    frames = []
    for path in sorted(experiments_dir.glob("*/summary.csv")):
        frame = pd.read_csv(path)
        if "n_seeds" not in frame.columns and "n" in frame.columns:
            frame = frame.rename(columns={"n": "n_seeds"})
        missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; re-run that experiment notebook")
        for key, value in _read_reference(path.with_name("results.json")).items():
            if key not in frame.columns:
                frame[key] = value
        frame.insert(0, "title", _recorded_title(path.parent))
        frame.insert(0, "run", path.parent.name)
        frames.append(frame)
    columns = ["run", "title", *SUMMARY_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    run_rank = {r.name: i for i, r in enumerate(NOTEBOOK_RUNS)}
    df["_run"] = df["run"].map(run_rank).fillna(len(run_rank))
    df["_method"] = df["method"].map(_method_rank).fillna(len(METHOD_ORDER))
    df["_protocol"] = df["protocol"].map(_protocol_rank).fillna(len(PROTOCOL_ORDER))
    sort = ["_run", "run", "task", "evaluator", "_protocol", "protocol"] + (["alpha"] if "alpha" in df else [])
    df = df.sort_values(sort + ["_method", "method"], kind="stable")
    extra = [c for c in OPTIONAL_SUMMARY_COLUMNS if c in df.columns]
    return df[columns + extra].reset_index(drop=True)


PROTOCOL_ORDER = ("trtr", "tstr", "tsrtr", "rebalance")
PROTOCOL_LABELS = {"trtr": "TRTR", "tstr": "TSTR", "tsrtr": "TSRTR", "rebalance": "rebalance 1:1"}
_method_rank = {m: i for i, m in enumerate(METHOD_ORDER)}
_protocol_rank = {p: i for i, p in enumerate(PROTOCOL_ORDER)}


def _recorded_title(run_dir: Path) -> str:
    """The title ``build_book`` recorded for a run's folder, else the run's own title, else the folder name."""
    record = run_dir / "book_run.json"
    if record.exists():
        try:
            title = json.loads(record.read_text()).get("title")
        except (OSError, ValueError):
            title = None
        if title:
            return str(title)
    return next((r.title for r in NOTEBOOK_RUNS if r.name == run_dir.name), run_dir.name)


def _titles(df: pd.DataFrame) -> dict:
    """run -> the title to show (the ``title`` column when present)."""
    if "title" in df:
        return dict(zip(df["run"], df["title"]))
    return {run: next((r.title for r in NOTEBOOK_RUNS if r.name == run), run) for run in df["run"]}


def _protocol_label(protocol, alpha=None) -> str:
    label = PROTOCOL_LABELS.get(protocol, str(protocol))
    return label if alpha is None or pd.isna(alpha) else f"{label}, α = {float(alpha):g}"


def _fmt(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _pipe_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def _largest_alpha_only(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, for protocols with a synthetic-to-real ratio (TSRTR), only the rows of the largest one."""
    if "alpha" not in df or not df["alpha"].notna().any():
        return df
    largest = df.groupby(["run", "protocol"], dropna=False)["alpha"].transform("max")
    return df[df["alpha"].isna() | (df["alpha"] == largest)]


def _metric_table(df: pd.DataFrame, metric: str) -> list[str]:
    """One row per dataset, evaluator and protocol; one column per method; the real-only TRTR score as reference."""
    df = _largest_alpha_only(df.copy())
    if "alpha" not in df:
        df["alpha"] = np.nan
    titles = _titles(df)
    is_ref = (df["method"] == "real") & (df["protocol"] == "trtr")
    reference = {(r.run, r.task, r.evaluator): (r[f"{metric}_mean"], r[f"{metric}_std"]) for _, r in df[is_ref].iterrows()}
    body = df[~is_ref]
    methods = sorted(dict.fromkeys(body["method"]), key=lambda m: (_method_rank.get(m, len(METHOD_ORDER)), m))
    header = ["Dataset", "Evaluator", "Protocol", "Real only (TRTR)", *[METHOD_LABELS.get(m, m) for m in methods]]
    rows = []
    for (run, task, evaluator, protocol, alpha), part in body.groupby(
            ["run", "task", "evaluator", "protocol", "alpha"], sort=False, dropna=False):
        by_method = part.drop_duplicates("method").set_index("method")
        ref = reference.get((run, task, evaluator), (np.nan, np.nan))
        values = [ref] + [
            (by_method.at[m, f"{metric}_mean"], by_method.at[m, f"{metric}_std"]) if m in by_method.index
            else (np.nan, np.nan)
            for m in methods
        ]
        means = [v[0] for v in values if pd.notna(v[0])]
        best = max(means) if len(means) > 1 else None
        cells = [f"**{_fmt(*v)}**" if best is not None and v[0] == best else _fmt(*v) for v in values]
        rows.append([titles[run], str(evaluator), _protocol_label(protocol, alpha), *cells])
    if not rows:  # only real-only results: show them on their own
        rows = [[titles[run], str(ev), "TRTR", _fmt(*ref)] for (run, _task, ev), ref in reference.items()]
    return _pipe_table(header, rows)


#: The methods TarDiff is compared with in the verdicts (the controls are not generators).
BASELINES = ("unguided", "mcrage", "smote")


def verdicts(df: pd.DataFrame) -> list[str]:
    """One sentence per dataset and evaluator: TarDiff's best AUPRC against the best baseline's.

    "Best" is the highest mean AUPRC over each method's protocols and ratios (the same choice for
    both sides); a gap smaller than the larger of the two standard deviations over seeds is
    called what it is, not evidence either way.

    Examples
    --------
    >>> rows = [("real", "trtr", 0.40, 0.02), ("tardiff", "tstr", 0.45, 0.01), ("smote", "rebalance", 0.50, 0.02)]
    >>> df = pd.DataFrame([{"run": "r", "title": "R", "task": "t", "evaluator": "cnn", "method": m, "protocol": p,
    ...                     "alpha": np.nan, "auprc_mean": a, "auprc_std": s} for m, p, a, s in rows])
    >>> verdicts(df)[0].endswith("TarDiff **did not beat** it.")
    True
    """
    if df.empty:
        return []
    df = df.copy()
    if "alpha" not in df:
        df["alpha"] = np.nan
    titles = _titles(df)
    out = []
    for (run, evaluator), part in df.groupby(["run", "evaluator"], sort=False):
        def best(methods):
            rows = part[part["method"].isin(methods)]
            return None if rows.empty else rows.loc[rows["auprc_mean"].idxmax()]

        ours, theirs, real = best(["tardiff"]), best(BASELINES), best(["real"])
        if ours is None or theirs is None:
            continue
        gap = ours["auprc_mean"] - theirs["auprc_mean"]
        spread = np.nanmax([ours["auprc_std"], theirs["auprc_std"], 0.0])
        if abs(gap) < spread:
            call = "The gap is within one standard deviation over seeds: no evidence either way"
        else:
            call = "TarDiff **beat** it" if gap > 0 else "TarDiff **did not beat** it"
        real_text = "" if real is None else f"; real data alone {_fmt(real['auprc_mean'], real['auprc_std'])}"
        out.append(
            f"**{titles[run]}** ({evaluator} evaluator): TarDiff {_fmt(ours['auprc_mean'], ours['auprc_std'])} "
            f"({_protocol_label(ours['protocol'], ours['alpha'])}) against the best baseline, "
            f"{METHOD_LABELS.get(theirs['method'], theirs['method'])} {_fmt(theirs['auprc_mean'], theirs['auprc_std'])} "
            f"({_protocol_label(theirs['protocol'], theirs['alpha'])}){real_text}. {call}."
        )
    return out


def results_markdown(df: pd.DataFrame) -> str:
    """The MyST text of ``book/results_table.md``: the overview figure and the cross-dataset tables.

    Examples
    --------
    >>> "No experiment" in results_markdown(collect_results("no/such/folder"))
    True
    """
    if df.empty:
        return (
            ":::{note}\n"
            "No experiment has produced results in this build yet: no "
            "`book/experiments/<dataset>/summary.csv` was found. The table and figure appear here once "
            "the experiment notebooks have run (`tardiff book`, or `make book`).\n"
            ":::\n"
        )
    titles = _titles(df)
    lines = [
        "### At a glance",
        "",
        "Test AUPRC, each method at its best protocol (mean ± standard deviation over seeds):",
        "",
        *[f"- {line}" for line in verdicts(df)],
        "",
        "### Every method and protocol",
        "",
        f"```{{figure}} {Path(RESULTS_FIGURE).relative_to('book').as_posix()}",
        ":name: fig-results-overview",
        ":alt: Test AUPRC of each method on each dataset, with error bars, the prevalence and the Bayes optimum",
        ":width: 100%",
        "",
        "Test AUPRC of each method (mean ± standard deviation over seeds; one row of panels per dataset, one "
        "column per evaluator, one bar colour per protocol; TSRTR at its largest synthetic-to-real ratio α). "
        "The dashed line is the test-set prevalence, the AUPRC of a random ranking; the dotted red line, where "
        "shown, is the Bayes-optimal AUPRC of the simulated cohort.",
        "```",
        "",
        "### The datasets",
        "",
    ]
    per_run = df.groupby("run", sort=False)
    cohort_rows = []
    for run, part in per_run:
        first = part.iloc[0]
        prevalence = first["prevalence"] if "prevalence" in part else np.nan
        bayes = first["bayes_auprc"] if "bayes_auprc" in part else np.nan
        seeds = part["n_seeds"].dropna()
        cohort_rows.append([
            titles[run], str(first["task"]), "–" if pd.isna(prevalence) else f"{prevalence:.3f}",
            "–" if pd.isna(bayes) else f"{bayes:.3f}", str(int(seeds.max())) if len(seeds) else "–",
        ])
    lines += _pipe_table(["Dataset", "Task", "Test prevalence", "Bayes-optimal AUPRC", "Seeds"], cohort_rows)
    lines += [
        "",
        "The test prevalence is the AUPRC of a random ranking; the Bayes-optimal AUPRC (known only for the "
        "simulated cohort) is the best any model can reach on average.",
        "",
        "### AUPRC",
        "",
        "```{container} tardiff-results",
    ]
    lines += _metric_table(df, "auprc")
    lines += [
        "```",
        "",
        "Mean ± standard deviation over seeds on the real test split. *Real only (TRTR)* is the evaluator "
        "trained on the real training split alone. Bold marks the highest mean in a row; a difference "
        "smaller than the standard deviations is not evidence that one method is better. TSRTR is shown at "
        "its largest synthetic-to-real ratio; each experiment chapter shows every ratio.",
    ]
    for metric, title in (("auroc", "AUROC"), ("minority_f1", "Minority-class F1")):
        lines += ["", f"````{{dropdown}} {title}", "```{container} tardiff-results"]
        lines += _metric_table(df, metric)
        lines += ["```", "````"]
    return "\n".join(lines) + "\n"


def plot_results(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Draw the AUPRC overview (bars with error bars, prevalence and Bayes lines) to a PNG, atomically.

    One row of panels per dataset, one column per evaluator.

    Examples
    --------
    >>> import tempfile
    >>> df = pd.DataFrame({"run": ["simulated"] * 2, "dataset": "simulated", "task": "t", "method": ["real", "tardiff"],
    ...     "protocol": ["trtr", "tstr"], "evaluator": "gru", "auprc_mean": [0.3, 0.4], "auprc_std": [0.02, 0.03],
    ...     "auroc_mean": 0.7, "auroc_std": 0.01, "minority_f1_mean": 0.3, "minority_f1_std": 0.02, "n_seeds": 3})
    >>> plot_results(df, tempfile.mkdtemp() + "/f.png").stat().st_size > 0
    True
    """
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    df = _largest_alpha_only(df.copy())
    titles = _titles(df)
    runs = list(dict.fromkeys(df["run"]))
    evaluators = list(dict.fromkeys(df["evaluator"]))
    protocols = sorted(dict.fromkeys(df["protocol"]), key=lambda p: (_protocol_rank.get(p, len(PROTOCOL_ORDER)), p))
    all_methods = sorted(dict.fromkeys(df["method"]), key=lambda m: (_method_rank.get(m, len(METHOD_ORDER)), m))
    fig = Figure(figsize=(max(6.4, 4.6 * len(evaluators) + 0.6), 2.9 * len(runs) + 1.1), layout="constrained")
    axes = fig.subplots(len(runs), len(evaluators), squeeze=False, sharey=True)
    width = 0.8 / max(len(protocols), 1)
    labelled = set()

    def once(label):  # one legend entry per label across panels
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for r, run in enumerate(runs):
        for c, evaluator in enumerate(evaluators):
            ax = axes[r, c]
            sub = df[(df["run"] == run) & (df["evaluator"] == evaluator)]
            methods = [m for m in all_methods if m in set(sub["method"])]
            for k, protocol in enumerate(protocols):
                part = sub[sub["protocol"] == protocol].drop_duplicates("method").set_index("method")
                ms = [m for m in methods if m in part.index]
                if not ms:
                    continue
                xs = np.array([methods.index(m) for m in ms]) + (k - (len(protocols) - 1) / 2) * width
                ax.bar(xs, part.loc[ms, "auprc_mean"], width, yerr=part.loc[ms, "auprc_std"].fillna(0),
                       capsize=2, color=f"C{k}", label=once(PROTOCOL_LABELS.get(protocol, protocol)))
            if "prevalence" in sub and sub["prevalence"].notna().any():
                ax.axhline(sub["prevalence"].dropna().iloc[0], color="0.3", ls="--", lw=1, label=once("prevalence"))
            if "bayes_auprc" in sub and sub["bayes_auprc"].notna().any():
                ax.axhline(sub["bayes_auprc"].dropna().iloc[0], color="C3", ls=":", lw=1.5, label=once("Bayes optimum"))
            ax.set_xticks(range(len(methods)), [METHOD_LABELS.get(m, m) for m in methods], rotation=25, ha="right",
                          fontsize=8)
            ax.set_title(f"{titles[run]}, {evaluator} evaluator", fontsize=9)
            if c == 0:
                ax.set_ylabel("test AUPRC")
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
    # on top, where a reader meets the colours first; at most three entries per row and evaluator
    # column, so the legend never outgrows the figure
    fig.legend(loc="outside upper center", ncols=min(len(labelled), 3 * len(evaluators)), fontsize=8, frameon=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def write_results_page(root: str | os.PathLike = ".") -> pd.DataFrame:
    """Write ``book/results_table.md`` (and the overview figure when there are results); return the table."""
    root = Path(root)
    df = collect_results(root / "book" / "experiments")
    figure = root / RESULTS_FIGURE
    if df.empty:
        if figure.exists():
            figure.unlink()  # never show a figure from an earlier build next to "no results"
    else:
        plot_results(df, figure)
    with atomic_path(root / RESULTS_TABLE) as tmp:
        tmp.write_text(results_markdown(df), encoding="utf-8")
    return df


# --------------------------------------------------------------------------------------------
# The whole book


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
    if scale not in SCALES:
        raise ParameterError(f"scale must be one of {', '.join(SCALES)}, not {scale!r}")
    root = Path(root)
    if not (root / "_config.yml").exists():
        raise ParameterError(f"{root.resolve()} has no _config.yml; run from the repository root or pass root=")
    selected = None if only is None else {get_run(name).name for name in only}

    jobs = default_jobs(scale) if jobs is None else int(jobs)
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, got {jobs}")

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
        present, folder, looked = locate_data(run, data_dir, root)
        if not present:
            write_data_absent_page(run, [_display_path(Path(p), root) for p in looked], root)
            continue
        pending.append((run, _run_parameters(run, scale, folder, root), run_title(run, folder)))

    execute_runs(pending, root, jobs=jobs, progress=progress)
    write_results_page(root)
    return run_jupyter_book(root, warnings_as_errors=warnings_as_errors, progress=progress)


# --------------------------------------------------------------------------------------------
# Sphinx extension: launch buttons of executed pages open their source notebooks, and each
# page loads each script once


def _point_launch_buttons_at_sources(app, pagename, templatename, context, doctree):
    """The executed copies are generated (git-ignored): launch the source notebook instead."""
    run = next((r for r in NOTEBOOK_RUNS if r.page == pagename), None)
    if run is None:
        return
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(run.output, run.source)


def _drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    """Keep the first of identical ``<script>`` entries.

    With Sphinx 7.4, the inline scripts that sphinx-thebe and sphinx-togglebutton add while
    reading are listed twice on every page (once with filename None, once with ""); the
    second ``const THEBE_JS_URL`` then throws "Uncaught SyntaxError: Identifier 'THEBE_JS_URL'
    has already been declared" in the browser.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        key = (str(getattr(js, "filename", js) or ""), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


#: Where the bundled MathJax goes, under the HTML output's ``_static``.
MATHJAX_STATIC = "mathjax"


def bundled_mathjax() -> Path | None:
    """The MathJax 2.7 that the ``jupyter-server-mathjax`` package ships, if installed."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    return static if (static / "MathJax.js").is_file() else None


def _use_bundled_mathjax(app, config):
    """Load MathJax from the book itself, so equations render without internet (a local build
    opened offline showed raw LaTeX with Sphinx's default CDN copy). A ``mathjax_path`` set in
    ``_config.yml`` is left alone, and without the package the CDN default stays."""
    if bundled_mathjax() is None or "://" not in str(config.mathjax_path):
        return
    config.mathjax_path = f"{MATHJAX_STATIC}/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
    # MyST marks the page body "mathjax_ignore" and its math "math"; this is MathJax 2's form of
    # the MathJax 3 options MyST writes, so that the math, and only the math, is typeset. The
    # package ships the STIX-Web fonts only (as Jupyter's own MathJax set-up uses them).
    config.mathjax2_config = {
        "tex2jax": {
            "inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processRefs": False,
            "processClass": "tex2jax_process|mathjax_process|math|output_area",
            "ignoreClass": "tex2jax_ignore|mathjax_ignore|document",
        },
        "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None},
        "SVG": {"font": "STIX-Web"},
    }


def _copy_bundled_mathjax(app, exception):
    source = bundled_mathjax()
    if exception is not None or source is None or app.builder.format != "html":
        return
    if not str(app.config.mathjax_path).startswith(MATHJAX_STATIC + "/"):
        return
    target = Path(app.outdir) / "_static" / MATHJAX_STATIC
    if not (target / "MathJax.js").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)


def setup(app):
    """Register the page fixes (``_config.yml`` lists this module under ``sphinx: extra_extensions``)."""
    # after sphinx-book-theme's add_launch_buttons (priority 501), before the page is rendered
    app.connect("html-page-context", _point_launch_buttons_at_sources, priority=600)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.connect("config-inited", _use_bundled_mathjax)
    app.connect("build-finished", _copy_bundled_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
