"""The run's summary table (``summary.csv``): each setting's metrics as mean and sd over replicates, with its gate.

:func:`summarise` turns the evaluation records (and the generators' quality-gate rows) of a
run into one row per dataset x method x protocol x ratio x evaluator; the runner writes it as
``summary.csv`` and the book's chapters read it back from ``results.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff.evaluation.utility import RECORD_METRICS, summarise_over_seeds

__all__ = ["GATE_SUMMARY_COLUMNS", "summarise"]

#: The quality gate's numbers summary.csv carries per generator (means over replicates), per class.
GATE_SUMMARY_COLUMNS = tuple(f"{name}_{side}" for name in ("gru_auroc", "gru_baseline", "gbm_auroc", "gbm_baseline",
                                                           "scale_ratio") for side in ("neg", "pos")) + (
    "label_auroc", "label_auroc_real", "range_share_max")


def summarise(records: list[dict], generators: list[dict] = ()) -> pd.DataFrame:
    """Mean and std over replicates per dataset x method x protocol x alpha x evaluator.

    With the ``generators`` gate rows, a ``passes_quality_gate`` column says whether the method
    passed the gate in every replicate (empty for methods that generate nothing), and the gate's
    per-class numbers follow as their mean over replicates (``gate_<number>``: the detectors'
    AUROCs against held-out real stays, their real-vs-real baselines, label consistency)."""
    df = pd.DataFrame(records)
    df["alpha"] = df["alpha"].fillna(-1.0)  # keep alpha-free protocols in the groupby
    groups = ["dataset", "task", "method", "protocol", "alpha", "evaluator"]
    out = summarise_over_seeds(df, groups, [m for m in RECORD_METRICS if m in df])  # every registered metric
    out["alpha"] = out["alpha"].replace(-1.0, np.nan)
    if generators:
        gate_rows = pd.DataFrame(list(generators))
        gates = gate_rows.groupby("method")["passes_quality_gate"].all()
        out["passes_quality_gate"] = out["method"].map(lambda m: gates.get(m, None)).astype(object)
        numbers = [c for c in GATE_SUMMARY_COLUMNS if c in gate_rows]
        if numbers:
            means = gate_rows.groupby("method")[numbers].agg(lambda v: pd.to_numeric(v, errors="coerce").mean())
            for column in numbers:
                out[f"gate_{column}"] = out["method"].map(means[column])
    return out
