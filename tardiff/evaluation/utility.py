"""Downstream utility metrics, bootstrap intervals and paired tests across seeds.

The field reports AUPRC (against the prevalence a random ranking reaches), AUROC and the
F1 score of the minority class, with a spread over seeds, bootstrap confidence intervals
over the test set and paired tests between methods. All functions take plain numpy
arrays: ``y_true`` of shape (N,) in {0, 1} and ``p_pos`` of shape (N,), the predicted
probability of class 1. The Bayes ceiling of the simulated cohort needs nothing special:
pass its known posterior as ``p_pos``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
)

from tardiff.errors import DataError, ParameterError

__all__ = [
    "METRICS",
    "RECORD_METRICS",
    "RecordMetric",
    "register_metric",
    "bootstrap_ci",
    "choose_threshold",
    "paired_test",
    "summarise_over_seeds",
    "utility_metrics",
]


def _check_binary(y_true, p_pos, *, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and probabilities; return them as 1-D int64 / float64 arrays."""
    y = np.asarray(y_true)
    p = np.asarray(p_pos, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1 or len(y) != len(p):
        raise DataError(
            f"y_true and p_pos must be 1-D arrays of equal length, got shapes {y.shape} and {p.shape}; "
            "pass predict_proba(X)[:, 1] as p_pos"
        )
    if len(y) == 0:
        raise DataError("y_true is empty; evaluate on a non-empty test set")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"y_true must hold only 0 and 1, found {np.unique(y)[:5].tolist()}; binarise the labels")
    if not np.isfinite(p).all():
        raise DataError("p_pos contains NaN or infinite values; check the classifier's predictions")
    if p.min() < 0.0 or p.max() > 1.0:
        raise DataError("p_pos must be probabilities in [0, 1]; pass predict_proba(X)[:, 1], not logits")
    y = y.astype(np.int64)
    if need_both and (y.min() == y.max()):
        raise DataError(
            f"y_true holds only class {int(y[0])}; AUROC and AUPRC need both classes in the evaluation set"
        )
    return y, p


def _auprc(y: np.ndarray, p: np.ndarray) -> float:
    return float(average_precision_score(y, p))


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


# The bootstrap evaluates a metric thousands of times per run; scikit-learn's input checks
# cost more than the metric itself there. These two give the same numbers (ties included;
# a test compares them with scikit-learn) on already-validated arrays.
def _fast_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """AUROC as the Mann-Whitney U statistic on mid-ranks (ties count one half)."""
    ranks = stats.rankdata(p)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _fast_auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision, sum over distinct thresholds of (R_k - R_{k-1}) P_k, as scikit-learn."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tps = np.cumsum(y_sorted)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


_BOOTSTRAP_FAST = {"auroc": _fast_auroc, "auprc": _fast_auprc}


def _brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(brier_score_loss(y, p))


def _f1_at(threshold: float) -> Callable[[np.ndarray, np.ndarray], float]:
    def f1(y: np.ndarray, p: np.ndarray) -> float:
        return float(f1_score(y, (p >= threshold).astype(np.int64), pos_label=1, zero_division=0.0))

    return f1


#: Metric functions by name, each ``fn(y_true, p_pos) -> float`` (minority F1 at 0.5): every record
#: metric at the default threshold, kept by :func:`register_metric` (what :func:`bootstrap_ci` resamples).
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {}


@dataclass(frozen=True)
class RecordMetric:
    """A metric every evaluation record holds: ``fn(y_true, p_pos, threshold) -> float`` on the test split.

    Records keep their test predictions, so a metric registered later is filled into cached
    records from them (no model is retrained), and summary.csv, the command line's summary and
    the book's tables list every registered metric: no list of columns to extend by hand."""

    name: str
    label: str
    fn: Callable[[np.ndarray, np.ndarray, float], float]
    higher_is_better: bool = True


#: The record metrics, in the order tables show them (:func:`register_metric` adds one).
RECORD_METRICS: dict[str, RecordMetric] = {}


def register_metric(metric: RecordMetric, *, replace: bool = False) -> RecordMetric:
    """Add ``metric`` to :data:`RECORD_METRICS` (``replace=True`` to redefine a name)."""
    if metric.name in RECORD_METRICS and not replace:
        raise ParameterError(f"a metric named {metric.name!r} is already registered; pass replace=True")
    if metric.name in ("prevalence", "threshold"):
        raise ParameterError(f"{metric.name!r} is a record field, not a metric name; choose another")
    RECORD_METRICS[metric.name] = metric
    METRICS[metric.name] = lambda y, p: metric.fn(y, p, 0.5)
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric registered with :func:`register_metric` (tests, notebooks)."""
    RECORD_METRICS.pop(name, None)
    METRICS.pop(name, None)


for _metric in (
    RecordMetric("auprc", "AUPRC", lambda y, p, threshold: _auprc(y, p)),
    RecordMetric("auroc", "AUROC", lambda y, p, threshold: _auroc(y, p)),
    RecordMetric("minority_f1", "minority F1", lambda y, p, threshold: _f1_at(float(threshold))(y, p)),
    RecordMetric("brier", "Brier score", lambda y, p, threshold: _brier(y, p), higher_is_better=False),
):
    register_metric(_metric)


def utility_metrics(y_true, p_pos, *, threshold: float = 0.5) -> dict[str, float]:
    """Utility of a probabilistic binary classifier on one evaluation set.

    Parameters
    ----------
    y_true : array of shape (N,)
        True labels in {0, 1}; both classes must be present.
    p_pos : array of shape (N,)
        Predicted probability of class 1 (the minority class).
    threshold : float
        A prediction counts as positive when ``p_pos >= threshold`` (for the minority F1);
        pick it on validation data with :func:`choose_threshold`.

    Returns
    -------
    dict
        Every metric of :data:`RECORD_METRICS`: ``auprc`` (average precision), ``auroc``,
        ``minority_f1`` (F1 of class 1 at the threshold), ``brier`` (mean squared error of
        ``p_pos``), and any registered since; ``prevalence`` (the
        positive rate, which is the AUPRC a random ranking reaches in expectation) and
        ``threshold``.

    Examples
    --------
    >>> m = utility_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    >>> m["auprc"], m["auroc"], m["prevalence"]
    (1.0, 1.0, 0.5)
    """
    if not (0.0 <= float(threshold) <= 1.0):
        raise ParameterError(f"threshold must lie in [0, 1], got {threshold}")
    y, p = _check_binary(y_true, p_pos)
    out = {name: float(metric.fn(y, p, float(threshold))) for name, metric in RECORD_METRICS.items()}
    return {**out, "prevalence": float(y.mean()), "threshold": float(threshold)}


def choose_threshold(y_val, p_val) -> float:
    """The decision threshold that maximises the minority-class F1 on validation data.

    Every distinct predicted probability is a candidate; a prediction is positive when
    ``p >= threshold``. Ties go to the highest threshold reaching the best F1.

    Parameters
    ----------
    y_val : array of shape (N,)
        Validation labels in {0, 1} with both classes present.
    p_val : array of shape (N,)
        Predicted probabilities of class 1 on the validation set.

    Returns
    -------
    float
        The threshold, to pass to :func:`utility_metrics` on the test set.

    Examples
    --------
    >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.35, 0.9]))
    0.35
    """
    y, p = _check_binary(y_val, p_val)
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(thresholds[best].max())


def _resolve_metric(metric_fn) -> Callable[[np.ndarray, np.ndarray], float]:
    if isinstance(metric_fn, str):
        if metric_fn not in METRICS:
            raise ParameterError(f"unknown metric {metric_fn!r}; choose one of {sorted(METRICS)} or pass a callable")
        return METRICS[metric_fn]
    if not callable(metric_fn):
        raise ParameterError("metric_fn must be a callable fn(y_true, p_pos) -> float or a metric name")
    return metric_fn


def bootstrap_ci(
    y_true,
    p_pos,
    metric_fn: Callable[[np.ndarray, np.ndarray], float] | str,
    n_boot: int = 1000,
    random_state: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a metric over the test set.

    Resampling is stratified: positives and negatives are each drawn with replacement in
    their original numbers, so every resample keeps the test prevalence (resamples that
    still hold one class, possible only for a one-class input, are skipped).

    Parameters
    ----------
    y_true, p_pos : arrays of shape (N,)
        Test labels in {0, 1} and predicted probabilities of class 1.
    metric_fn : callable or str
        ``fn(y_true, p_pos) -> float``, or a name in :data:`METRICS` ("auprc", "auroc",
        "brier", "minority_f1").
    n_boot : int
        Number of bootstrap resamples.
    random_state : int
        Seed of the resampling.
    alpha : float
        One minus the coverage (0.05 gives a 95% interval).

    Returns
    -------
    (low, high) : tuple of float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200); p = np.clip(0.5 * y + 0.5 * rng.random(200), 0, 1)
    >>> low, high = bootstrap_ci(y, p, "auroc", n_boot=200)
    >>> low <= utility_metrics(y, p)["auroc"] <= high
    True
    """
    if int(n_boot) < 10:
        raise ParameterError(f"n_boot must be at least 10, got {n_boot}")
    if not (0.0 < float(alpha) < 1.0):
        raise ParameterError(f"alpha must lie in (0, 1), got {alpha}")
    fn = _BOOTSTRAP_FAST.get(metric_fn) if isinstance(metric_fn, str) else None
    fn = fn or _resolve_metric(metric_fn)
    y, p = _check_binary(y_true, p_pos, need_both=False)
    rng = np.random.default_rng(random_state)
    strata = [np.flatnonzero(y == c) for c in (0, 1)]
    strata = [s for s in strata if len(s)]
    values = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in strata])
        yb = y[idx]
        if yb.min() == yb.max():
            continue  # one class only: ranking metrics are undefined
        values.append(float(fn(yb, p[idx])))
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise DataError("no bootstrap resample gave a finite metric; the test set needs both classes")
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def summarise_over_seeds(
    df: pd.DataFrame, group_cols: Sequence[str], metric_cols: Sequence[str]
) -> pd.DataFrame:
    """Mean, standard deviation (ddof=1) and count of metrics over seeds, per group.

    Parameters
    ----------
    df : DataFrame
        One row per run (e.g. method x protocol x seed) with the metric columns.
    group_cols : list of str
        Columns that identify a group (e.g. ``["method", "protocol"]``).
    metric_cols : list of str
        Metric columns to summarise.

    Returns
    -------
    DataFrame
        One row per group: the group columns, ``n`` (rows in the group), and for each
        metric ``<metric>_mean`` and ``<metric>_std`` (NaN when the group has one row;
        NaN metric values are ignored).

    Examples
    --------
    >>> runs = pd.DataFrame({"method": ["a", "a", "b"], "seed": [0, 1, 0], "auroc": [0.7, 0.8, 0.6]})
    >>> summarise_over_seeds(runs, ["method"], ["auroc"])[["method", "n", "auroc_mean"]].round(2).values.tolist()
    [['a', 2, 0.75], ['b', 1, 0.6]]
    """
    group_cols, metric_cols = list(group_cols), list(metric_cols)
    missing = [c for c in group_cols + metric_cols if c not in df.columns]
    if missing:
        raise DataError(f"columns {missing} are not in the results table; available: {list(df.columns)}")
    if not metric_cols:
        raise ParameterError("metric_cols is empty; name at least one metric column")
    grouped = df.groupby(group_cols, sort=True, dropna=False)
    out = grouped.size().rename("n").reset_index()
    for col in metric_cols:
        agg = grouped[col].agg(["mean", lambda s: s.std(ddof=1)]).reset_index()
        agg.columns = group_cols + [f"{col}_mean", f"{col}_std"]
        out = out.merge(agg, on=group_cols, how="left")
    return out


def paired_test(a, b) -> dict:
    """Paired comparison of two methods evaluated on the same seeds.

    Parameters
    ----------
    a, b : arrays of shape (n,)
        Per-seed values of one metric for methods A and B, seed i in position i.

    Returns
    -------
    dict
        ``mean_diff`` (mean of a - b), ``n``, ``test`` ("paired t-test"), ``p_value``
        (two-sided, :func:`scipy.stats.ttest_rel`), ``wilcoxon_p`` (two-sided Wilcoxon
        signed-rank p, computed when n >= 6, else NaN) and ``note`` (why a p-value is NaN,
        or an empty string).

    Examples
    --------
    >>> r = paired_test([0.71, 0.74, 0.70, 0.73], [0.65, 0.69, 0.66, 0.66])
    >>> round(r["mean_diff"], 3), r["p_value"] < 0.01
    (0.055, True)
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if len(a) != len(b):
        raise DataError(f"a and b must hold one value per seed for the same seeds; lengths {len(a)} and {len(b)}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    diff = a - b
    result = {
        "mean_diff": float(diff.mean()) if n else math.nan,
        "n": int(n),
        "test": "paired t-test",
        "p_value": math.nan,
        "wilcoxon_p": math.nan,
        "note": "",
    }
    if n < 2:
        result["note"] = f"p-value undefined: {n} paired value(s); a paired test needs at least 2 seeds"
        return result
    if np.all(diff == diff[0]):
        if diff[0] == 0:
            result["p_value"] = 1.0
            result["note"] = "a and b are identical on every seed"
        else:
            result["note"] = "p-value undefined: the difference is the same on every seed (zero variance)"
        return result
    result["p_value"] = float(stats.ttest_rel(a, b).pvalue)
    if n >= 6:
        result["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    else:
        result["note"] = f"Wilcoxon signed-rank skipped: n = {n} < 6"
    return result
