"""Tables the experiment notebook shows beside the utility results.

Each function takes a finished :class:`tardiff.experiment.Experiment` (its synthetic sets
are cached, so nothing is retrained) and returns a DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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

GENERATIVE = ("smote", "mcrage", "unguided", "tardiff")


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
    p = experiment.prepared
    device = experiment.device
    rows = [{"method": "real", "predictive_mae": predictive_score(
        p.X_train, p.X_test, seed=seed, epochs=epochs, max_samples=max_samples, device=device)}]
    for method in experiment.config.methods:
        if method not in GENERATIVE:
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
    p = experiment.prepared
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
        wanted = "trtr" if r["method"] in ("real", "real_cw") else "rebalance"
        if r["evaluator"] != evaluator or r["seed"] != seed or r["protocol"] != wanted or "test_predictions" not in r:
            continue
        table = subgroup_metrics(p.y_test, np.asarray(r["test_predictions"]), groups, min_size=min_size)
        table.insert(0, "method", r["method"])
        table["worst_gap_auroc"] = worst_group_gap(table, "auroc")
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def guidance_sweep(experiment, scales, *, seed: int = 0, evaluator: str = "cnn") -> pd.DataFrame:
    """TSTR utility and mean influence score of TarDiff's pool for each guidance scale ``w``.

    The denoiser and the guidance classifier are trained once (cached) and shared; only
    the synthetic pool is regenerated per scale (the run's own ``w`` and ``w = 0``, the
    unguided model, reuse the main run's pools and records). Negative ``w`` pushes towards
    stays that would *raise* the guidance-set loss.
    """
    from tardiff.experiment import guidance_data
    from tardiff.guidance import guidance_vector, influence_scores

    p = experiment.prepared
    classifier = experiment.guidance_classifier(seed)
    Xg, yg, _ = guidance_data(p, experiment.config.guidance_set)
    G = guidance_vector(classifier.module_, Xg, yg, device=experiment.device)
    rows = []
    for w in scales:
        pool_X, pool_y, record = experiment.sweep_point(seed, float(w), evaluator)
        scores = influence_scores(classifier.module_, G, pool_X, pool_y)
        rows.append({"guidance_scale": float(w), "mean_influence": float(np.mean(scores)),
                     **{k: record[k] for k in ("auprc", "auroc", "minority_f1")}})
    return pd.DataFrame(rows)


def utility_table(summary: pd.DataFrame, reference: dict, *, evaluator: str = "cnn") -> pd.DataFrame:
    """The summary in reading order with mean +/- sd strings, plus reference rows."""
    df = summary[summary["evaluator"] == evaluator].copy()
    fmt = lambda m, s: f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}"  # noqa: E731
    out = pd.DataFrame({
        "method": df["method"], "protocol": df["protocol"].str.upper(),
        "alpha": df["alpha"].map(lambda a: "" if pd.isna(a) else f"{a:.1f}"),
        "AUPRC": [fmt(m, s) for m, s in zip(df["auprc_mean"], df["auprc_std"])],
        "AUROC": [fmt(m, s) for m, s in zip(df["auroc_mean"], df["auroc_std"])],
        "minority F1": [fmt(m, s) for m, s in zip(df["minority_f1_mean"], df["minority_f1_std"])],
        "seeds": df["n"],
    })
    extra = [{"method": "prevalence (random ranking)", "protocol": "", "alpha": "",
              "AUPRC": f"{reference['prevalence']:.3f}", "AUROC": "0.500", "minority F1": "", "seeds": ""}]
    if "bayes" in reference:
        b = reference["bayes"]
        extra.append({"method": "Bayes ceiling (true posterior)", "protocol": "", "alpha": "",
                      "AUPRC": f"{b['auprc']:.3f}", "AUROC": f"{b['auroc']:.3f}",
                      "minority F1": "", "seeds": ""})
    return pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
