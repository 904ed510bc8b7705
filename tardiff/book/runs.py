"""The runs the book consists of: which notebook, with which parameters, on which data.

:data:`NOTEBOOK_RUNS` lists every papermill run of the book (one experiment notebook per
dataset, three teaching notebooks). This module also finds a run's data
(:func:`locate_data`) and gives a run its papermill parameters (:func:`run_parameters`) and
its page title (:func:`run_title`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tardiff.errors import ParameterError

EXPERIMENT_NOTEBOOK = "notebooks/experiment.ipynb"

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
    scale_parameters : dict
        Parameters for one scale only, by scale name, on top of ``parameters``.
    demo_subdirs : tuple of str
        Those of ``data_subdirs`` that hold a small open demo of the dataset; when the data
        is found there, the page and the results table carry ``demo_title`` instead of ``title``.
    cpu_minutes : float
        What the notebook took at cpu scale on one core, measured (the cpu book of the
        reproducibility chapter). Only its order matters: the book starts the longest
        notebooks first, so that the cores finish together instead of one idling while the
        other runs a long notebook started last.
    """

    name: str
    title: str
    source: str
    output: str
    kind: Literal["experiment", "teaching"]
    dataset: str | None = None
    data_subdirs: tuple[str, ...] = ()
    parameters: dict = field(default_factory=dict)
    scale_parameters: dict = field(default_factory=dict)
    demo_subdirs: tuple[str, ...] = ()
    demo_title: str | None = None
    cpu_minutes: float = 1.0

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
        cpu_minutes=14.2,
    ),
    NotebookRun(
        "physionet2012", "PhysioNet/CinC Challenge 2012", EXPERIMENT_NOTEBOOK,
        "book/experiments/physionet2012.ipynb", "experiment", dataset="physionet2012",
        data_subdirs=("physionet2012",), parameters={"dataset": "physionet2012", "task": "mortality"},
        # At cpu scale MCRAGE as published (a 1,776 -> 3,552 -> 1,776 MLP) does not train within the
        # budget (its epsilon loss stays above predicting zero; benchmarks/mcrage-gate.py), so the
        # chapter leaves it out rather than rank an untrained model, and calibrated TarDiff chooses
        # among 0, 0.003 and 0.03: each candidate is a guided pool, 3-4 core-minutes at 48 x 37.
        scale_parameters={"cpu": {"methods": "real,smote,unguided,tardiff,tardiff_cal", "sweep_unit": "0.003,0.03"}},
        cpu_minutes=20.9,
    ),
    NotebookRun(
        "mimic3", "MIMIC-III", EXPERIMENT_NOTEBOOK, "book/experiments/mimic3.ipynb", "experiment",
        dataset="mimic3", data_subdirs=("mimic3", "mimic3_demo"),
        parameters={"dataset": "mimic3", "task": "mortality"},
        demo_subdirs=("mimic3_demo",), demo_title="MIMIC-III demo (open, 100 patients)",
        cpu_minutes=4.2,
    ),
    NotebookRun(
        "eicu", "eICU-CRD", EXPERIMENT_NOTEBOOK, "book/experiments/eicu.ipynb", "experiment",
        dataset="eicu", data_subdirs=("eicu",), parameters={"dataset": "eicu", "task": "mortality"},
        cpu_minutes=21.0,  # not measured (credentialed data): like PhysioNet, its training draw has the same size
    ),
    NotebookRun(
        "eicu_demo", "eICU-CRD demo (YAIB mortality24 cohort)", EXPERIMENT_NOTEBOOK,
        "book/experiments/eicu_demo.ipynb", "experiment", dataset="yaib",
        data_subdirs=("yaib/mortality24/eicu_demo", "yaib_demo/mortality24/eicu_demo"),
        parameters={"dataset": "yaib", "task": "mortality24"},
        cpu_minutes=12.2,
    ),
    NotebookRun(
        "tutorial_01_diffusion", "Tutorial 1: diffusion models for ICU time series",
        "notebooks/tutorial_01_diffusion.ipynb", "book/teaching/tutorial_01_diffusion.ipynb", "teaching",
        cpu_minutes=2.1,
    ),
    NotebookRun(
        "tutorial_02_influence", "Tutorial 2: influence of a training sample",
        "notebooks/tutorial_02_influence.ipynb", "book/teaching/tutorial_02_influence.ipynb", "teaching",
        cpu_minutes=0.9,
    ),
    NotebookRun(
        "tutorial_03_guidance", "Tutorial 3: influence-guided sampling",
        "notebooks/tutorial_03_guidance.ipynb", "book/teaching/tutorial_03_guidance.ipynb", "teaching",
        cpu_minutes=1.6,
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
# Data lookup and parameters


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


def display_path(path: Path, root: Path) -> str:
    """``path`` relative to the repository root when inside it (as the notebook's cwd sees it), else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(root.resolve()))
    except ValueError:
        return str(path)


def data_root(data_dir: str | os.PathLike | None, root: str | os.PathLike = ".") -> Path:
    """The folder holding one sub-folder per dataset, absolute: ``data_dir``, ``$TARDIFF_DATA_DIR`` or ``<root>/data``."""
    return _data_root(data_dir, Path(root)).resolve()


def run_parameters(run: NotebookRun, scale: str, data_folder: Path | None, root: Path,
                   data_dir: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None) -> dict:
    """The papermill parameters of ``run``: its fixed ones, ``scale``, and where an experiment's data and results are.

    The data folder is passed symbolically, ``$TARDIFF_DATA_DIR/<sub-folder>`` (relative to
    :func:`data_root` of ``data_dir``), so no page shows the builder's folders; the build sets
    ``TARDIFF_DATA_DIR`` for the kernels and the notebook expands it. With ``results_dir`` (a
    stored run, see :mod:`tardiff.book.stored`) the chapter renders that run instead, and the
    path is given relative to ``root``.

    Examples
    --------
    >>> run_parameters(get_run("simulated"), "smoke", None, Path("."))["out_dir"]
    'book/experiments/simulated'
    >>> run_parameters(get_run("physionet2012"), "cpu", Path("/d/physionet2012"), Path("."), "/d")["data_dir"]
    '$TARDIFF_DATA_DIR/physionet2012'
    >>> "methods" in run_parameters(get_run("physionet2012"), "smoke", None, Path("."))
    False
    """
    from tardiff.book.paths import symbolic_data_dir

    params = {**run.parameters, **run.scale_parameters.get(scale, {})}
    params["scale"] = scale
    if run.kind == "experiment":
        params["data_dir"] = (None if data_folder is None
                              else symbolic_data_dir(data_folder, data_root(data_dir, root)))
        params["out_dir"] = run.out_dir
        if results_dir is not None:
            params["results_dir"] = Path(os.path.relpath(Path(results_dir).resolve(), Path(root).resolve())).as_posix()
    return params
