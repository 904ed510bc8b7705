"""Tables and verdicts that the experiment chapters and the Results page show.

The summary functions take a summary table (one row per method x protocol x ratio x
evaluator, with ``<metric>_mean`` and ``<metric>_std`` over seeds: the output of
:func:`tardiff.experiment.summarise`, or of :func:`tardiff.book.collect_results` across
datasets), so a chapter and the Results page reach their conclusions with the same code:

* :func:`verdicts` compares TarDiff's best score with the best baseline's and makes the call
  (``beat``, ``did not beat`` or ``no evidence``); :func:`verdict_sentences` words it.
* :func:`paired_table` tests each method against real data alone, seed by seed.

The experiment functions take a finished :class:`tardiff.experiment.Experiment` (its
synthetic sets are cached, so nothing is retrained) and return a DataFrame. Methods are
named, ordered and labelled by :mod:`tardiff.registry`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.errors import ParameterError
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

# --------------------------------------------------------------------------- formatting


def mean_std(mean: float, std: float) -> str:
    """``"0.412 ± 0.013"``; the mean alone when there is no spread (one seed), "–" when there is no mean.

    Examples
    --------
    >>> mean_std(0.4123, 0.0131), mean_std(0.4, float("nan")), mean_std(float("nan"), 0.1)
    ('0.412 ± 0.013', '0.400', '–')
    """
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def protocol_text(protocol: str, alpha: float | None = None) -> str:
    """The protocol's label with its synthetic-to-real ratio, as the tables write it.

    Examples
    --------
    >>> protocol_text("tsrtr", 0.5), protocol_text("rebalance", float("nan"))
    ('TSRTR, α = 0.5', 'rebalance 1:1')
    """
    text = registry.protocol_label(protocol)
    return text if alpha is None or pd.isna(alpha) else f"{text}, α = {float(alpha):g}"


def largest_alpha(summary: pd.DataFrame) -> pd.DataFrame:
    """Keep, for protocols with a synthetic-to-real ratio (TSRTR), only the rows of the largest one.

    The ratio is chosen per dataset (the ``run`` column, when present) and protocol.

    Examples
    --------
    >>> df = pd.DataFrame({"protocol": ["trtr", "tsrtr", "tsrtr"], "alpha": [np.nan, 0.2, 1.0]})
    >>> largest_alpha(df)["alpha"].tolist()
    [nan, 1.0]
    """
    if "alpha" not in summary or not summary["alpha"].notna().any():
        return summary
    keys = [c for c in ("run", "protocol") if c in summary]
    largest = summary.groupby(keys, dropna=False)["alpha"].transform("max")
    return summary[summary["alpha"].isna() | (summary["alpha"] == largest)]


def _in_registry_order(df: pd.DataFrame, *then: str) -> pd.DataFrame:
    """Rows sorted by method (registry order), then protocol (registry order), then the ``then`` columns."""
    keys = pd.DataFrame({"_method": df["method"].map(registry.order),
                         "_protocol": df["protocol"].map(registry.protocol_order)}, index=df.index)
    order = pd.concat([keys, df[list(then)]], axis=1).sort_values(["_method", "_protocol", *then], kind="stable")
    return df.loc[order.index]


# --------------------------------------------------------------------------- verdicts

#: The call :func:`verdicts` makes, and what :func:`verdict_sentences` says for it.
CALLS = {
    "beat": "TarDiff **beat** it",
    "did not beat": "TarDiff **did not beat** it",
    "no evidence": "The gap is within one standard deviation over seeds: no evidence either way",
}


def verdicts(summary: pd.DataFrame, *, metric: str = "auprc") -> pd.DataFrame:
    """TarDiff's best score against the best baseline's, per dataset and evaluator, and the call.

    This is the one place that decides whether TarDiff beat its baselines: the experiment
    chapters and the Results page both read it.

    Parameters
    ----------
    summary : DataFrame
        One row per method x protocol (x ratio) x evaluator: ``method``, ``protocol``,
        ``evaluator``, ``<metric>_mean``, ``<metric>_std`` and optionally ``alpha``,
        ``title`` and the dataset keys ``run``, ``dataset``, ``task`` (rows are grouped by
        those present, then by evaluator).
    metric : str
        The metric compared (``auprc``, ``auroc``, ``minority_f1``).

    Returns
    -------
    DataFrame
        One row per dataset and evaluator that has both TarDiff and a baseline: the group
        keys, ``title`` (when given), then for ``tardiff``, ``baseline`` and ``reference``
        (real data alone) the method, ``_protocol``, ``_alpha``, ``_mean`` and ``_std`` of its
        best row; ``gap`` (TarDiff minus baseline), ``spread`` (the larger standard deviation of
        the two) and ``call``: ``"no evidence"`` when ``|gap| < spread``, else ``"beat"`` or
        ``"did not beat"``. "Best" is the highest mean over a method's protocols and ratios
        (the same choice for both sides); the baselines, TarDiff and the reference are the
        registry's methods of those roles (controls are not generators and are left out).

    Examples
    --------
    >>> rows = [("real", "trtr", 0.40, 0.02), ("tardiff", "tstr", 0.45, 0.01), ("smote", "rebalance", 0.50, 0.02)]
    >>> df = pd.DataFrame([{"evaluator": "cnn", "method": m, "protocol": p, "auprc_mean": a, "auprc_std": s}
    ...                    for m, p, a, s in rows])
    >>> verdicts(df)[["tardiff", "baseline", "gap", "call"]].round(2).values.tolist()
    [['tardiff', 'smote', -0.05, 'did not beat']]
    """
    keys = [c for c in ("run", "dataset", "task") if c in summary] + ["evaluator"]
    mean, std = f"{metric}_mean", f"{metric}_std"
    roles = {"tardiff": registry.method_names("tardiff"), "baseline": registry.method_names("baseline"),
             "reference": registry.method_names("reference")}
    rows = []
    for group, part in summary.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        if "title" in part:
            row["title"] = part["title"].iloc[0]
        for side, names in roles.items():
            candidates = part[part["method"].isin(names) & part[mean].notna()]
            best = None if candidates.empty else candidates.loc[candidates[mean].idxmax()]
            row[side] = None if best is None else best["method"]
            row[f"{side}_protocol"] = None if best is None else best["protocol"]
            row[f"{side}_alpha"] = np.nan if best is None else best.get("alpha", np.nan)
            row[f"{side}_mean"] = np.nan if best is None else float(best[mean])
            row[f"{side}_std"] = np.nan if best is None else float(best[std])
        if row["tardiff"] is None or row["baseline"] is None:
            continue
        row["gap"] = row["tardiff_mean"] - row["baseline_mean"]
        row["spread"] = float(np.nanmax([row["tardiff_std"], row["baseline_std"], 0.0]))
        if abs(row["gap"]) < row["spread"]:
            row["call"] = "no evidence"
        else:
            row["call"] = "beat" if row["gap"] > 0 else "did not beat"
        rows.append(row)
    columns = [*keys, *(["title"] if "title" in summary else []),
               *[f"{side}{suffix}" for side in roles for suffix in ("", "_protocol", "_alpha", "_mean", "_std")],
               "gap", "spread", "call"]
    return pd.DataFrame(rows, columns=columns)


def verdict_sentences(summary: pd.DataFrame, *, metric: str = "auprc") -> list[str]:
    """:func:`verdicts` in words, one markdown sentence per dataset and evaluator.

    A sentence starts with the dataset's title when ``summary`` has a ``title`` column (the
    Results page), else with the evaluator alone (a chapter, which is about one dataset).

    Examples
    --------
    >>> rows = [("real", "trtr", 0.40, 0.02), ("tardiff", "tstr", 0.45, 0.01), ("smote", "rebalance", 0.50, 0.02)]
    >>> df = pd.DataFrame([{"evaluator": "cnn", "method": m, "protocol": p, "auprc_mean": a, "auprc_std": s}
    ...                    for m, p, a, s in rows])
    >>> text = verdict_sentences(df)[0]
    >>> text.startswith("**cnn evaluator**: TarDiff 0.450 ± 0.010 (TSTR) against the best baseline, SMOTE 0.500")
    True
    >>> text.endswith("real data alone 0.400 ± 0.020. TarDiff **did not beat** it.")
    True
    """
    out = []
    for v in verdicts(summary, metric=metric).to_dict("records"):
        lead = f"**{v['title']}** ({v['evaluator']} evaluator)" if v.get("title") else f"**{v['evaluator']} evaluator**"
        reference = "" if v["reference"] is None else \
            f"; real data alone {mean_std(v['reference_mean'], v['reference_std'])}"
        out.append(
            f"{lead}: {registry.label(v['tardiff'])} {mean_std(v['tardiff_mean'], v['tardiff_std'])} "
            f"({protocol_text(v['tardiff_protocol'], v['tardiff_alpha'])}) against the best baseline, "
            f"{registry.label(v['baseline'])} {mean_std(v['baseline_mean'], v['baseline_std'])} "
            f"({protocol_text(v['baseline_protocol'], v['baseline_alpha'])}){reference}. {CALLS[v['call']]}."
        )
    return out


# --------------------------------------------------------------------------- paired tests


def paired_table(records, evaluator: str, *, metric: str = "auprc") -> pd.DataFrame:
    """Each method's per-seed ``metric`` against real data alone's, paired by seed (one evaluator).

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
        One row per method x protocol x ratio other than the reference, in registry order:
        ``method`` (its label), ``protocol``, ``alpha``, ``<METRIC> minus real`` (mean
        paired difference), ``p (paired t)`` (:func:`tardiff.evaluation.utility.paired_test`)
        and ``seeds`` (the seeds both have).

    Examples
    --------
    >>> recs = [{"method": m, "protocol": p, "alpha": None, "evaluator": "cnn", "seed": s, "auprc": a + 0.01 * s}
    ...         for m, p, a in (("real", "trtr", 0.40), ("smote", "rebalance", 0.45)) for s in range(3)]
    >>> paired_table(recs, "cnn")[["method", "AUPRC minus real", "seeds"]].round(3).values.tolist()
    [['SMOTE', 0.05, 3]]
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
        rows.append({"method": method, "protocol": protocol, "alpha": alpha,
                     f"{metric.upper()} minus real": test["mean_diff"], "p (paired t)": test["p_value"],
                     "seeds": len(common)})
    columns = ["method", "protocol", "alpha", f"{metric.upper()} minus real", "p (paired t)", "seeds"]
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        return table
    table = _in_registry_order(table, "alpha").reset_index(drop=True)
    table["method"] = table["method"].map(registry.label)
    table["protocol"] = table["protocol"].map(registry.protocol_label)
    return table


# --------------------------------------------------------------------------- experiment tables


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


def guidance_sweep(experiment, scales=None, *, seed: int = 0, evaluator: str = "cnn") -> pd.DataFrame:
    """TSTR utility and mean influence score of TarDiff's pool for each guidance scale ``w``.

    The denoiser and the guidance classifier are trained once (cached) and shared; only
    the synthetic pool is regenerated per scale (the run's own ``w`` and ``w = 0``, the
    unguided model, reuse the main run's pools and records). Negative ``w`` pushes towards
    stays that would *raise* the guidance-set loss.

    ``scales`` is a sequence of numbers, a comma-separated string (a notebook parameter such
    as ``"-100,0,100"``) or None for the scale preset's ``sweep_scales``.
    """
    from tardiff.experiment import guidance_data, split_list
    from tardiff.guidance import guidance_vector, influence_scores

    if scales is None:
        scales = experiment.config.preset.sweep_scales
    try:
        scales = [float(w) for w in split_list(scales)]
    except ValueError:
        raise ParameterError(f"guidance scales must be comma-separated numbers, e.g. -100,0,100; got {scales!r}") \
            from None
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
        **{title: [mean_std(m, s) for m, s in zip(df[f"{metric}_mean"], df[f"{metric}_std"])]
           for metric, title in (("auprc", "AUPRC"), ("auroc", "AUROC"), ("minority_f1", "minority F1"))},
        "seeds": seeds,
    })
    extra = [{"method": "prevalence (random ranking)", "protocol": "", "alpha": "",
              "AUPRC": f"{reference['prevalence']:.3f}", "AUROC": "0.500", "minority F1": "", "seeds": ""}]
    if "bayes" in reference:
        b = reference["bayes"]
        extra.append({"method": "Bayes ceiling (true posterior)", "protocol": "", "alpha": "",
                      "AUPRC": f"{b['auprc']:.3f}", "AUROC": f"{b['auroc']:.3f}",
                      "minority F1": "", "seeds": ""})
    return pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
