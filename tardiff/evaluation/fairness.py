"""Subgroup performance (MCRAGE's concern): AUROC and AUPRC per sex, age band, ...

A model can gain on average while losing on a small subgroup. These helpers compute the
ranking metrics within each subgroup of one or more attributes and the gap between the
best and the worst subgroup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from tardiff.errors import DataError, ParameterError

__all__ = ["age_bands", "subgroup_metrics", "worst_group_gap"]

_COLUMNS = ["attribute", "group", "n", "positives", "prevalence", "auroc", "auprc"]


def _column(values):
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, pd.Categorical):
        return values
    return np.asarray(values, dtype=object).ravel()


def _as_attribute_frame(groups, n: int) -> pd.DataFrame:
    if isinstance(groups, pd.DataFrame):
        frame = groups.reset_index(drop=True)
    elif isinstance(groups, pd.Series):
        frame = groups.reset_index(drop=True).to_frame(name=groups.name if groups.name is not None else "group")
    elif isinstance(groups, Mapping):
        frame = pd.DataFrame({str(k): _column(v) for k, v in groups.items()})
    else:
        raise ParameterError("groups must be a DataFrame, a Series or a dict of attribute name -> labels")
    if len(frame) != n:
        raise DataError(f"groups has {len(frame)} rows but there are {n} predictions; pass one label per test record")
    if frame.shape[1] == 0:
        raise ParameterError("groups has no attribute columns; pass e.g. {'sex': sex, 'age band': age_bands(age)}")
    return frame


def subgroup_metrics(y_true, p_pos, groups, *, min_size: int = 20) -> pd.DataFrame:
    """AUROC and AUPRC within each subgroup of each attribute.

    Parameters
    ----------
    y_true : array of shape (N,)
        Test labels in {0, 1}.
    p_pos : array of shape (N,)
        Predicted probabilities of class 1.
    groups : DataFrame, Series or dict
        Subgroup labels aligned with ``y_true``: one column (or Series, or dict entry) per
        attribute, e.g. ``{"sex": sex, "age band": age_bands(age)}``. Records whose label
        is missing are left out of that attribute.
    min_size : int
        Subgroups with fewer records get NaN metrics (they are still listed with n).

    Returns
    -------
    DataFrame
        One row per (attribute, group) with ``n``, ``positives``, ``prevalence``,
        ``auroc`` and ``auprc`` (NaN when the subgroup holds one class only or fewer than
        ``min_size`` records). Groups appear in sorted (or categorical) order.

    Examples
    --------
    >>> y = np.array([0, 1, 0, 1, 0, 0]); p = np.array([.1, .9, .2, .4, .6, .3])
    >>> df = subgroup_metrics(y, p, {"sex": ["F", "F", "F", "M", "M", "M"]}, min_size=1)
    >>> df[["group", "n", "auroc"]].values.tolist()
    [['F', 3, 1.0], ['M', 3, 0.5]]
    """
    if int(min_size) < 1:
        raise ParameterError(f"min_size must be at least 1, got {min_size}")
    y = np.asarray(y_true)
    p = np.asarray(p_pos, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise DataError(f"y_true and p_pos must be 1-D of equal length, got {y.shape} and {p.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("y_true must hold only 0 and 1")
    if not np.isfinite(p).all():
        raise DataError("p_pos contains NaN or infinite values; check the classifier's predictions")
    frame = _as_attribute_frame(groups, len(y))
    rows = []
    for attribute in frame.columns:
        labels = frame[attribute]
        table = pd.DataFrame({"position": np.arange(len(y)), "group": labels})[labels.notna().to_numpy()]
        # sort=True keeps the category order of categorical labels (e.g. age bands).
        for group, part in table.groupby("group", sort=True, observed=True):
            idx = part["position"].to_numpy()
            yg, pg = y[idx], p[idx]
            positives = int(yg.sum())
            ok = len(idx) >= int(min_size) and 0 < positives < len(idx)
            rows.append(
                {
                    "attribute": str(attribute),
                    "group": group,
                    "n": int(len(idx)),
                    "positives": positives,
                    "prevalence": positives / len(idx),
                    "auroc": float(roc_auc_score(yg, pg)) if ok else math.nan,
                    "auprc": float(average_precision_score(yg, pg)) if ok else math.nan,
                }
            )
    return pd.DataFrame(rows, columns=_COLUMNS)


def worst_group_gap(df: pd.DataFrame, metric: str = "auroc", attribute: str | None = None) -> float:
    """Gap between the best and the worst subgroup on one metric.

    Parameters
    ----------
    df : DataFrame
        The output of :func:`subgroup_metrics`.
    metric : str
        A metric column, e.g. "auroc" or "auprc".
    attribute : str, optional
        Restrict to the subgroups of one attribute; by default all rows are compared.

    Returns
    -------
    float
        ``max - min`` of the metric over subgroups with a defined value (NaN when fewer
        than two subgroups have one).

    Examples
    --------
    >>> df = pd.DataFrame({"attribute": ["sex", "sex"], "group": ["F", "M"], "auroc": [0.8, 0.7]})
    >>> round(worst_group_gap(df, "auroc"), 3)
    0.1
    """
    if metric not in df.columns:
        raise ParameterError(f"metric {metric!r} is not a column of the subgroup table; use one of {list(df.columns)}")
    if attribute is not None:
        if "attribute" not in df.columns or attribute not in set(df["attribute"]):
            raise ParameterError(f"attribute {attribute!r} is not in the subgroup table")
        df = df[df["attribute"] == attribute]
    values = pd.to_numeric(df[metric], errors="coerce").dropna()
    if len(values) < 2:
        return math.nan
    return float(values.max() - values.min())


def age_bands(age, edges: Sequence[float] = (18, 45, 65, 80)) -> pd.Categorical:
    """Label ages with bands ``<18``, ``18-44``, ``45-64``, ``65-79``, ``80+`` (for the default edges).

    Band ``a-b`` holds ``edges[i] <= age < edges[i+1]`` (b = edges[i+1] - 1, written for whole
    years); ages below the first edge get ``<edges[0]`` and ages at or above the last edge
    ``edges[-1]+``. Missing ages stay missing.

    Parameters
    ----------
    age : array-like of shape (N,)
        Ages in years (NaN allowed).
    edges : increasing sequence of numbers
        Band boundaries.

    Returns
    -------
    pandas.Categorical
        Ordered labels, youngest band first.

    Examples
    --------
    >>> list(age_bands([17, 18, 44.9, 45, 70, 80, 95]))
    ['<18', '18-44', '18-44', '45-64', '65-79', '80+', '80+']
    """
    edges = [float(e) for e in edges]
    if len(edges) < 1 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ParameterError(f"edges must be a non-empty increasing sequence, got {edges}")
    values = pd.to_numeric(pd.Series(np.asarray(age, dtype=object).ravel()), errors="coerce").to_numpy(float)

    def fmt(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else f"{v:g}"

    names = [f"<{fmt(edges[0])}"]
    for lo, hi in zip(edges, edges[1:]):
        upper = fmt(hi - 1) if float(hi).is_integer() and float(lo).is_integer() else f"<{fmt(hi)}"
        names.append(f"{fmt(lo)}-{upper}")
    names.append(f"{fmt(edges[-1])}+")
    codes = np.searchsorted(np.asarray(edges), values, side="right")  # 0 below the first edge
    codes = np.where(np.isnan(values), -1, codes)
    return pd.Categorical.from_codes(codes, categories=names, ordered=True)
