"""Metric tables of a finished experiment: what the report shows, computed from its sets, models and records.

The report (:mod:`tardiff.report`) only formats; what needs models trained or metrics
computed on an experiment's outputs lives here: :func:`fidelity_privacy_table` (post-hoc
fidelity and privacy of each generator's rows), :func:`fairness_table` (subgroup metrics of
each method's model) and :func:`paired_against_reference` (each method against real data
alone, paired by seed). The functions take a finished :class:`tardiff.experiment.Experiment`
(its synthetic sets are cached, so nothing is retrained) or the run's records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.evaluation.fairness import age_bands, subgroup_metrics, worst_group_gap
from tardiff.evaluation.fidelity import (
    autocorrelation_difference,
    discriminative_score,
    marginal_wasserstein,
    predictive_score,
)
from tardiff.evaluation.privacy import (
    distance_to_closest_record,
    membership_inference_auroc,
    nn_adversarial_accuracy,
)
from tardiff.evaluation.utility import paired_test

__all__ = ["fairness_table", "fidelity_privacy_table", "paired_against_reference", "synthetic_sample"]


def synthetic_sample(experiment, method: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The method's synthetic rows for ``seed``: its pool, or its balance set when it has no pool."""
    sets = experiment.synthetic_sets(method, seed)
    if sets.pool_X is not None:
        return sets.pool_X, sets.pool_y
    return sets.balance_X, sets.balance_y


def fidelity_privacy_table(experiment, seed: int = 0, *, epochs: int = 10, max_samples: int = 1000) -> pd.DataFrame:
    """Fidelity and privacy of each generative method's synthetic rows against the real ones.

    Fidelity (Yoon et al. 2019): discriminative score |acc - 0.5| of a post-hoc GRU (0 is
    best), predictive score (next-step MAE on real test stays of a GRU trained on the
    synthetic rows; the first row, "real", trains on the real training rows), mean
    per-feature Wasserstein distance of marginals and autocorrelation difference. Privacy:
    DCR ratio (synthetic-to-train over test-to-train, below 1 means closer to training
    stays than unseen ones are), nearest-neighbour adversarial accuracy (0.5 ideal) and a
    distance-based membership-inference AUROC (0.5 ideal).
    """
    p = experiment.data(seed)
    device = experiment.device
    rows = [{"method": "real", "predictive_mae": predictive_score(
        p.X_train, p.X_test, seed=seed, epochs=epochs, max_samples=max_samples, device=device)}]
    for method in experiment.config.methods:
        if not registry.method(method).synthetic:  # controls and the reference create no rows to assess
            continue
        X_s, _ = synthetic_sample(experiment, method, seed)
        rows.append({
            "method": method,
            "discriminative": discriminative_score(p.X_train, X_s, seed=seed, epochs=epochs, max_samples=max_samples,
                                                   device=device),
            "predictive_mae": predictive_score(X_s, p.X_test, seed=seed, epochs=epochs, max_samples=max_samples,
                                               device=device),
            "wasserstein": float(marginal_wasserstein(p.X_train, X_s).mean()),
            "autocorr_diff": autocorrelation_difference(p.X_train, X_s),
            "dcr_ratio": distance_to_closest_record(X_s, p.X_train, p.X_test, max_samples=max_samples,
                                                    random_state=seed)["ratio_median"],
            "nn_adversarial_acc": nn_adversarial_accuracy(p.X_train, X_s, max_samples=max_samples, random_state=seed),
            "membership_auroc": membership_inference_auroc(X_s, p.X_train, p.X_test, max_samples=max_samples,
                                                           random_state=seed),
        })
    return pd.DataFrame(rows).set_index("method")


def fairness_table(experiment, records: list[dict], *, evaluator: str = "cnn", seed: int = 0,
                   min_size: int = 20) -> pd.DataFrame:
    """AUROC/AUPRC per sex and age band of each method's rebalanced (or real-only) model.

    Uses the test predictions kept in the run's records; returns one row per method x
    subgroup and a ``worst_gap`` column (largest AUROC difference between subgroups of the
    same attribute).
    """
    p = experiment.data(seed)
    static = p.cohort.static.iloc[p.split.test].reset_index(drop=True)
    groups = {}
    if "sex" in static and static["sex"].notna().any():
        groups["sex"] = static["sex"].to_numpy()
    if "age" in static and static["age"].notna().any():
        groups["age band"] = age_bands(static["age"].to_numpy())
    if not groups:
        return pd.DataFrame()
    tables = []
    for r in records:
        # a generator's model is the one trained on the rebalanced set; real-data methods have only TRTR
        protocols = registry.method(r["method"]).protocols
        wanted = "rebalance" if "rebalance" in protocols else "trtr"
        if r["evaluator"] != evaluator or r["seed"] != seed or r["protocol"] != wanted or "test_predictions" not in r:
            continue
        table = subgroup_metrics(p.y_test, np.asarray(r["test_predictions"]), groups, min_size=min_size)
        table.insert(0, "method", r["method"])
        table["worst_gap_auroc"] = worst_group_gap(table, "auroc")
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def paired_against_reference(records, evaluator: str, *, metric: str = "auprc") -> pd.DataFrame:
    """Each method's per-seed ``metric`` against real data alone's, paired by seed (one evaluator).

    The computation behind :func:`tardiff.report.paired_table`, which orders and labels it.

    Parameters
    ----------
    records : list of dict or DataFrame
        The run's evaluation records (``Experiment.run()`` or ``results.json``'s ``records``):
        ``method``, ``protocol``, ``alpha``, ``evaluator``, ``seed`` and ``metric``.
    evaluator : str
        The evaluator whose scores are compared.
    metric : str
        The metric compared.

    Returns
    -------
    DataFrame
        One row per method x protocol x ratio other than the reference, in groupby order:
        ``method``, ``protocol``, ``alpha``, ``mean_diff`` (mean paired difference), ``p_value``
        (:func:`tardiff.evaluation.utility.paired_test`) and ``seeds`` (the seeds both have).

    Examples
    --------
    >>> recs = [{"method": m, "protocol": p, "alpha": None, "evaluator": "cnn", "seed": s, "auprc": a + 0.01 * s}
    ...         for m, p, a in (("real", "trtr", 0.40), ("smote", "rebalance", 0.45)) for s in range(3)]
    >>> paired_against_reference(recs, "cnn")[["method", "mean_diff", "seeds"]].round(3).values.tolist()
    [['smote', 0.05, 3]]
    """
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "test_predictions"} for r in records]) \
        if not isinstance(records, pd.DataFrame) else records.copy()
    runs = runs[runs["evaluator"] == evaluator]
    if "alpha" not in runs:
        runs["alpha"] = np.nan
    reference = registry.method_names("reference")
    real = runs[runs["method"].isin(reference)].drop_duplicates("seed").set_index("seed")[metric]
    rows = []
    for (method, protocol, alpha), part in runs[~runs["method"].isin(reference)].groupby(
            ["method", "protocol", "alpha"], dropna=False):
        part = part.set_index("seed")[metric]
        common = part.index.intersection(real.index)
        test = paired_test(part.loc[common].to_numpy(), real.loc[common].to_numpy())
        rows.append({"method": method, "protocol": protocol, "alpha": alpha, "mean_diff": test["mean_diff"],
                     "p_value": test["p_value"], "seeds": len(common)})
    return pd.DataFrame(rows, columns=["method", "protocol", "alpha", "mean_diff", "p_value", "seeds"])
