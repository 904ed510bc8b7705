"""The results tables of a chapter: the paired comparisons, each method against real data alone, and utility.

Each takes what the run computed (``results.json``'s parts, its records, or the summary) and
returns a DataFrame in registry order with registry labels and formatted numbers.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (the examples use it)
import pandas as pd

from tardiff import registry
from tardiff.evaluation.experiment_metrics import paired_against_reference
from tardiff.evaluation.utility import RECORD_METRICS
from tardiff.report.formatting import (
    _in_registry_order,
    _num,
    _sorted_comparisons,
    ci_text,
    mean_std,
    p_text,
    protocol_text,
)
from tardiff.report.results import _rows

__all__ = ["comparisons_table", "paired_table", "utility_table"]


def comparisons_table(results, evaluator: str | None = None) -> pd.DataFrame:
    """The family of comparisons as readers read them: the AUPRC difference over replicates, its interval,
    the Holm-adjusted decision and what the replicates could detect.

    Parameters
    ----------
    results : dict or DataFrame or list of dict
        ``results.json`` (its ``comparisons``) or those rows
        (:func:`tardiff.evaluation.replicates.replicated_comparisons`), optionally with ``title``
        (the dataset; across datasets on the Results page).
    evaluator : str, optional
        Keep one evaluator's comparisons (the column is then left out).

    Returns
    -------
    DataFrame
        ``dataset`` (when given), ``method``, ``against``, ``protocol``, ``evaluator``,
        ``ΔAUPRC [95% CI]`` (mean of the per-replicate paired differences, t-interval),
        ``p (Holm)``, ``decision``, ``replicates``, ``sd``, ``detectable`` (the smallest
        difference detected with 80% power) and ``test noise`` (one replicate's stay-bootstrap
        sd). Against real data alone first, then against the unguided model and each baseline.

    Examples
    --------
    >>> rows = [{"method": "tardiff", "baseline": "smote", "protocol": "tsrtr", "alpha": 1.0, "evaluator": "cnn",
    ...          "delta_auprc": 0.02, "ci_low": 0.005, "ci_high": 0.04, "p_value": 0.01, "p_holm": 0.03,
    ...          "decision": "higher", "n_replicates": 10, "replicate_sd": 0.02, "mde_auprc": 0.02,
    ...          "test_noise_sd": 0.01}]
    >>> comparisons_table({"comparisons": rows}, "cnn").iloc[0, :6].tolist()
    ['TarDiff', 'SMOTE', 'TSRTR, α = 1', '+0.020 [+0.005, +0.040]', '0.030', 'higher']
    """
    df = _rows(results, "comparisons")
    columns = ["method", "against", "protocol", "evaluator", "ΔAUPRC [95% CI]", "p (Holm)", "decision", "replicates",
               "sd", "detectable", "test noise"]
    if df.empty or "n_replicates" not in df:  # results from before replicated verdicts: nothing to show here
        return pd.DataFrame(columns=[c for c in columns if evaluator is None or c != "evaluator"])
    if evaluator is not None:
        df = df[df["evaluator"] == evaluator]
    df = _sorted_comparisons(df)
    out = pd.DataFrame({
        "method": df["method"].map(registry.label), "against": df["baseline"].map(registry.label),
        "protocol": [protocol_text(p, a) for p, a in zip(df["protocol"], df["alpha"])],
        "evaluator": df["evaluator"],
        "ΔAUPRC [95% CI]": [ci_text(d, lo, hi) if lo is not None and not pd.isna(lo) else f"{d:+.3f} (one replicate)"
                            for d, lo, hi in zip(df["delta_auprc"], df["ci_low"], df["ci_high"])],
        "p (Holm)": df["p_holm"].map(lambda p: "–" if p is None or pd.isna(p) else p_text(p)),
        "decision": df["decision"], "replicates": [int(n) for n in df["n_replicates"]],
        "sd": df["replicate_sd"].map(_num), "detectable": df["mde_auprc"].map(_num),
        "test noise": df.get("test_noise_sd", pd.Series([None] * len(df), index=df.index)).map(_num),
    })
    if "title" in df:
        out.insert(0, "dataset", df["title"])
    if evaluator is not None:
        out = out.drop(columns="evaluator")
    return out.reset_index(drop=True)


def paired_table(records, evaluator: str, *, metric: str = "auprc") -> pd.DataFrame:
    """:func:`~tardiff.evaluation.experiment_metrics.paired_against_reference` (same parameters), for
    reading: registry order and labels, the difference as ``<METRIC> minus real`` and its p-value as
    ``p (paired t)``.

    Examples
    --------
    >>> recs = [{"method": m, "protocol": p, "alpha": None, "evaluator": "cnn", "seed": s, "auprc": a + 0.01 * s}
    ...         for m, p, a in (("real", "trtr", 0.40), ("smote", "rebalance", 0.45)) for s in range(3)]
    >>> paired_table(recs, "cnn")[["method", "AUPRC minus real", "seeds"]].round(3).values.tolist()
    [['SMOTE', 0.05, 3]]
    """
    table = paired_against_reference(records, evaluator, metric=metric).rename(
        columns={"mean_diff": f"{metric.upper()} minus real", "p_value": "p (paired t)"})
    if table.empty:
        return table
    table = _in_registry_order(table, "alpha").reset_index(drop=True)
    table["method"] = table["method"].map(registry.label)
    table["protocol"] = table["protocol"].map(registry.protocol_label)
    return table


def utility_table(summary: pd.DataFrame, reference: dict, *, evaluator: str = "cnn") -> pd.DataFrame:
    """One evaluator's summary in reading order (registry labels, mean ± sd strings), plus reference rows.

    ``reference`` is :meth:`tardiff.experiment.Experiment.reference_metrics`: the test
    prevalence (the AUPRC of a random ranking) and, on simulated data, the Bayes ceiling.

    Examples
    --------
    >>> summary = pd.DataFrame({"method": ["tardiff", "real"], "protocol": ["tstr", "trtr"], "alpha": np.nan,
    ...     "evaluator": "cnn", "n": 3, "auprc_mean": [0.5, 0.4], "auprc_std": 0.01, "auroc_mean": 0.7,
    ...     "auroc_std": 0.02, "minority_f1_mean": 0.3, "minority_f1_std": np.nan})
    >>> utility_table(summary, {"prevalence": 0.1})["method"].tolist()
    ['real only', 'TarDiff', 'prevalence (random ranking)']
    """
    df = _in_registry_order(summary[summary["evaluator"] == evaluator], "alpha")
    seeds = df["n_seeds"] if "n_seeds" in df else df["n"]
    out = pd.DataFrame({
        "method": df["method"].map(registry.label), "protocol": df["protocol"].map(registry.protocol_label),
        "alpha": ["" if pd.isna(a) else f"{a:.1f}" for a in df["alpha"]],
        **{metric.label: [mean_std(m, s) for m, s in zip(df[f"{name}_mean"], df[f"{name}_std"])]
           for name, metric in RECORD_METRICS.items() if f"{name}_mean" in df},  # every registered metric
        "seeds": seeds,
    })
    extra = [{"method": "prevalence (random ranking)", "protocol": "", "alpha": "",
              "AUPRC": f"{reference['prevalence']:.3f}", "AUROC": "0.500", "seeds": ""}]
    if "bayes" in reference:
        b = reference["bayes"]
        extra.append({"method": "Bayes ceiling (true posterior)", "protocol": "", "alpha": "",
                      "AUPRC": f"{b['auprc']:.3f}", "AUROC": f"{b['auroc']:.3f}", "seeds": ""})
    return pd.concat([out, pd.DataFrame(extra)], ignore_index=True).fillna("")
