"""One dataset's whole comparison, from a config, with an artifact cache.

========================= =============================================================
:mod:`.config`            :class:`ExperimentConfig`: what determines a run; checks before any work
:mod:`.data`              the split design, the guidance set, the content key, the ledger
:mod:`.runner`            :class:`Experiment`: generators, gates, evaluators, comparisons, results
:mod:`.summary`           :func:`summarise`: summary.csv, means and sds over replicates with the gate
:mod:`.sweep`             TarDiff's guidance sweep and the calibrated variant chosen from it
========================= =============================================================

Examples
--------
>>> cfg = ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "smote"))
>>> cfg.all_methods()
('real', 'smote', 'real_cw', 'ros')
"""

from tardiff.experiment.config import METHODS, ExperimentConfig, check_writable_folder, split_list
from tardiff.experiment.data import DataLedger, content_hash, guidance_data, load_prepared
from tardiff.experiment.runner import Experiment
from tardiff.experiment.summary import summarise

__all__ = [
    "METHODS",
    "DataLedger",
    "Experiment",
    "ExperimentConfig",
    "check_writable_folder",
    "content_hash",
    "guidance_data",
    "load_prepared",
    "split_list",
    "summarise",
]
