"""Tables and verdicts that the experiment chapters and the Results page show.

The summary functions take a summary table (one row per method x protocol x ratio x
evaluator, with ``<metric>_mean`` and ``<metric>_std`` over seeds: the output of
:func:`tardiff.experiment.summarise`, or of :func:`tardiff.book.collect_results` across
datasets), so a chapter and the Results page reach their conclusions with the same code:

* :func:`verdicts` makes the call on TarDiff against the best baseline (``beat``, ``did not
  beat`` or ``no evidence``): from the paired comparisons of ``results.json`` when given them
  (the interval of the AUPRC difference), else from the summary's means and spreads (runs
  that predate the comparisons); :func:`verdict_sentences` words it, naming any generator that
  fails the quality gate.
* :func:`paired_table` tests each method against real data alone, seed by seed.

The results functions take a run's ``results.json`` (:func:`load_results`) or its parts:
:func:`gates_table` and :func:`gate_admonition` (the quality gate of every generator),
:func:`comparisons_table` (the paired comparisons) and :func:`sweep_frame` (the guidance sweep).
A field that an older ``results.json`` lacks gives an empty table and a short note, never an error.

The experiment functions take a finished :class:`tardiff.experiment.Experiment` (its
synthetic sets are cached, so nothing is retrained) and return a DataFrame. Methods are
named, ordered and labelled by :mod:`tardiff.registry`.

The report only formats: what trains a model or computes a metric lives in
:mod:`tardiff.evaluation` (:mod:`tardiff.evaluation.experiment_metrics` for the experiment
tables, re-exported here). One module per job: :mod:`~tardiff.report.formatting` (numbers,
labels, orders), :mod:`~tardiff.report.results` (reading ``results.json``),
:mod:`~tardiff.report.gates` (the quality gate), :mod:`~tardiff.report.tables` (the results
tables) and :mod:`~tardiff.report.verdicts` (the calls and their sentences).
"""

from tardiff.evaluation.experiment_metrics import fairness_table, fidelity_privacy_table, synthetic_sample
from tardiff.report.formatting import ci_text, largest_alpha, mean_std, p_text, protocol_text
from tardiff.report.gates import DEFAULT_GATE, gate_admonition, gate_failures, gate_text, gates_table
from tardiff.report.results import load_results, selection_text, sweep_frame
from tardiff.report.tables import comparisons_table, paired_table, utility_table
from tardiff.report.verdicts import CALLS, COMPARISON_CALLS, verdict_sentences, verdicts

__all__ = [
    "CALLS",
    "COMPARISON_CALLS",
    "DEFAULT_GATE",
    "ci_text",
    "comparisons_table",
    "fairness_table",
    "fidelity_privacy_table",
    "gate_admonition",
    "gate_failures",
    "gate_text",
    "gates_table",
    "largest_alpha",
    "load_results",
    "mean_std",
    "p_text",
    "paired_table",
    "protocol_text",
    "selection_text",
    "sweep_frame",
    "synthetic_sample",
    "utility_table",
    "verdict_sentences",
    "verdicts",
]
