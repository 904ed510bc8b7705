"""Build the compendium's Jupyter Book: run the notebooks, gather the results, render the HTML.

One module per job:

* :mod:`~tardiff.book.runs`: the runs the book consists of (:data:`NOTEBOOK_RUNS`), their
  data and parameters;
* :mod:`~tardiff.book.pages`: the pages that stand in for a run that was not executed;
* :mod:`~tardiff.book.execute`: papermill execution, several notebooks at once;
* :mod:`~tardiff.book.results`: the Results page (tables; verdicts from the paired comparisons
  through :mod:`tardiff.report`, the figures from :mod:`tardiff.plots`);
* :mod:`~tardiff.book.stored`: the stored-run format, so the book can render GPU results without
  re-running them; it re-exports :mod:`~tardiff.book.paths` (symbolic data folders),
  :mod:`~tardiff.book.provenance` (where a run's numbers come from, the command that repeats it),
  :mod:`~tardiff.book.chapter` (the chapter's data, live or stored: :class:`ExperimentChapter`)
  and :mod:`~tardiff.book.storing` (:func:`store_run`);
* :mod:`~tardiff.book.build`: :func:`build_book`, the whole build, and the jupyter-book run;
* :mod:`~tardiff.book.sphinx`: the Sphinx extension ``_config.yml`` loads (launch buttons,
  duplicate scripts, bundled MathJax). It is not imported here: Sphinx loads it by name.

Examples
--------
>>> from tardiff.book import build_book
>>> build_book(scale="smoke", only=["simulated"])  # doctest: +SKIP
PosixPath('_build/html')
"""

from tardiff.book.build import build_book, run_jupyter_book
from tardiff.book.execute import available_cpus, default_jobs, execute_run, execute_runs, retitle_notebook
from tardiff.book.pages import write_data_absent_page, write_not_executed_page
from tardiff.book.results import (
    COMPARISONS_FIGURE,
    OPTIONAL_SUMMARY_COLUMNS,
    RESULTS_FIGURE,
    RESULTS_TABLE,
    SUMMARY_COLUMNS,
    collect_field,
    collect_results,
    results_markdown,
    run_origins,
    write_comparisons_figure,
    write_results_figure,
    write_results_page,
)
from tardiff.book.runs import (
    EXPERIMENT_NOTEBOOK,
    NOTEBOOK_RUNS,
    NotebookRun,
    get_run,
    locate_data,
    data_root,
    run_parameters,
    run_title,
)
from tardiff.book.stored import (
    CHAPTER_FILES,
    ExperimentChapter,
    provenance,
    resolve_data_dir,
    run_command,
    store_run,
    symbolic_data_dir,
)

__all__ = [
    "CHAPTER_FILES", "ExperimentChapter", "data_root", "provenance", "resolve_data_dir", "run_command", "run_origins",
    "store_run", "symbolic_data_dir",
    "COMPARISONS_FIGURE", "EXPERIMENT_NOTEBOOK", "NOTEBOOK_RUNS", "NotebookRun", "OPTIONAL_SUMMARY_COLUMNS",
    "RESULTS_FIGURE", "RESULTS_TABLE", "SUMMARY_COLUMNS", "available_cpus", "build_book", "collect_field",
    "collect_results", "default_jobs", "execute_run", "execute_runs", "get_run", "locate_data", "results_markdown",
    "retitle_notebook", "run_jupyter_book", "run_parameters", "run_title", "write_comparisons_figure",
    "write_data_absent_page", "write_not_executed_page", "write_results_figure", "write_results_page",
]
