"""How the report writes numbers, protocols and orders: the formatting every table and verdict shares.

Means with their spreads (:func:`mean_std`), differences with their intervals (:func:`ci_text`),
p-values (:func:`p_text`), a protocol with its ratio (:func:`protocol_text`), and the reading
orders of :mod:`tardiff.registry` that rows are sorted by.
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (the examples use it)
import pandas as pd

from tardiff import registry

__all__ = ["ci_text", "largest_alpha", "mean_std", "p_text", "protocol_text"]


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


def ci_text(delta: float, low: float, high: float) -> str:
    """``"+0.012 [-0.010, +0.034]"``: a difference and its 95% interval.

    Examples
    --------
    >>> ci_text(0.0123, -0.01, 0.034)
    '+0.012 [-0.010, +0.034]'
    """
    if pd.isna(delta):
        return "–"
    return f"{delta:+.3f} [{low:+.3f}, {high:+.3f}]"


def p_text(p: float) -> str:
    """``"0.031"``, ``"< 0.001"``, or "–".

    Examples
    --------
    >>> p_text(0.0312), p_text(0.0002)
    ('0.031', '< 0.001')
    """
    if pd.isna(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _sorted_comparisons(df: pd.DataFrame) -> pd.DataFrame:
    """Comparisons in reading order: dataset (as given), baseline, method, protocol (registry orders), ratio."""
    keys = pd.DataFrame({"_baseline": df["baseline"].map(registry.order), "_method": df["method"].map(registry.order),
                         "_protocol": df["protocol"].map(registry.protocol_order),
                         "_alpha": pd.to_numeric(df["alpha"], errors="coerce").fillna(-1.0)}, index=df.index)
    if "run" in df:
        keys.insert(0, "_run", df["run"].map({r: i for i, r in enumerate(dict.fromkeys(df["run"]))}))
    return df.loc[keys.sort_values(list(keys.columns), kind="stable").index]


def _num(value, fmt: str = "{:.3f}") -> str:
    return "–" if value is None or pd.isna(value) else fmt.format(value)
