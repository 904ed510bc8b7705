"""Stored runs: an experiment's results kept in the repository, and the chapter rendered from them.

A finished run (``tardiff run`` or the experiment notebook, on any machine: typically a GPU at
``paper`` scale) is stored as a small folder, ``results/<scale>/<chapter>/``, where ``<chapter>``
is the book's name for the dataset's chapter (``simulated``, ``physionet2012``, ``mimic3``,
``eicu``, ``eicu_demo``: the names ``tardiff book --only`` takes):

``results.json``, ``summary.csv``
    what the run wrote (machine paths in its ``config`` made symbolic);
``provenance.json``
    where the numbers come from: git commit, package, torch and numpy versions, device and its
    name, dates, the equivalent ``tardiff run`` command (:func:`provenance`);
``chapter/``
    what the chapter shows beyond ``results.json``, computed once where the data and the
    models were: the cohort summary and data card, the trajectory bands
    (:func:`tardiff.plots.trajectory_bands`), the PCA and t-SNE embeddings, the fidelity and
    privacy table and the fairness table. A few hundred kB; no stay of the cohort is stored.

:func:`store_run` writes such a folder from a run's output folder (``tardiff book --store
RUN_DIR --as results/paper/physionet2012``), and the experiment notebook writes one when given
``store_dir``. With ``results_dir`` the notebook renders the chapter from a stored folder
(:meth:`ExperimentChapter.load`) without loading data or training anything, and
``tardiff book --results results/paper`` builds the whole book that way, so a CPU build
publishes GPU results.

:class:`ExperimentChapter` is the one interface the notebook reads, over a live
:class:`~tardiff.experiment.Experiment` or over a stored folder, so both render through the
same package functions.

This module names the stored-run format and re-exports its parts, one module per job:
:mod:`~tardiff.book.paths` (symbolic data folders and their resolution),
:mod:`~tardiff.book.provenance` (:func:`provenance`, :func:`run_command`),
:mod:`~tardiff.book.chapter` (:class:`ExperimentChapter`) and :mod:`~tardiff.book.storing`
(:func:`store_run`).

Examples
--------
>>> from tardiff.book.stored import store_run, ExperimentChapter
>>> store_run("runs/physionet2012", "results/paper/physionet2012")   # doctest: +SKIP
PosixPath('results/paper/physionet2012')
>>> ExperimentChapter.load("results/paper/physionet2012").provenance["device_name"]  # doctest: +SKIP
'NVIDIA H200'
"""

from tardiff.book.chapter import CHAPTER_FILES, EMBEDDINGS, ExperimentChapter
from tardiff.book.paths import DATA_VARIABLE, resolve_data_dir, resolve_results_dir, symbolic_data_dir
from tardiff.book.provenance import provenance, run_command
from tardiff.book.storing import store_run

__all__ = [
    "CHAPTER_FILES",
    "DATA_VARIABLE",
    "EMBEDDINGS",
    "ExperimentChapter",
    "provenance",
    "resolve_data_dir",
    "resolve_results_dir",
    "run_command",
    "store_run",
    "symbolic_data_dir",
]
