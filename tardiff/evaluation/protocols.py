"""Evaluation protocols: which training set each (method, protocol) gives the evaluators.

Every generative method contributes two synthetic sets, generated once per seed from the
training split only:

- a *pool* of ``N_train`` rows with the real class ratio. TSTR trains on all of it (the
  TarDiff paper's "train on synthetic, test on real"); TSRTR with ratio ``alpha`` adds its
  first ``alpha * n_c`` rows of each class ``c`` to the real training set, so the alpha
  curve is nested and costs one generation;
- a *balance* set of minority rows that brings the minority class up to the majority
  count (MCRAGE's use, "rebalance").

The real-only reference (TRTR) and the controls (class-weighted loss, random oversampling)
need no generator. Every protocol is judged on the same untouched test split. Which
protocols exist, and which of them each method is judged under, is written in
:mod:`tardiff.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tardiff import registry
from tardiff.presets import PAPER_ALPHAS

@dataclass
class SyntheticSets:
    """The synthetic rows one method generated for one seed (standardised space)."""

    pool_X: np.ndarray | None
    pool_y: np.ndarray | None
    balance_X: np.ndarray
    balance_y: np.ndarray


@dataclass
class TrainingSet:
    """One training set handed to the evaluators."""

    protocol: str
    alpha: float | None
    X: np.ndarray
    y: np.ndarray
    n_synthetic: int


def nested_prefix(X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``round(alpha * n_c)`` rows of each class ``c`` (pool rows are i.i.d.).

    Examples
    --------
    >>> X = np.arange(10, dtype=np.float32)[:, None, None]
    >>> _, y = nested_prefix(X, np.array([0] * 8 + [1] * 2), 0.5)
    >>> y.tolist()
    [0, 0, 0, 0, 1]
    """
    keep = []
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        keep.append(rows[: int(round(alpha * len(rows)))])
    keep = np.concatenate(keep)
    return X[keep], y[keep]


def protocol_settings(method: str, alphas=PAPER_ALPHAS) -> list[tuple[str, float | None]]:
    """Every (protocol, ratio) ``method`` is judged under: TSRTR once per ratio, the others once.

    Examples
    --------
    >>> protocol_settings("smote", alphas=(0.5, 1.0))
    [('tsrtr', 0.5), ('tsrtr', 1.0), ('rebalance', None)]
    """
    out = []
    for protocol in registry.method(method).protocols:
        out += [(protocol, float(a)) for a in alphas] if protocol == "tsrtr" else [(protocol, None)]
    return out


def training_set(protocol: str, alpha: float | None, X_real: np.ndarray, y_real: np.ndarray,
                 synthetic: SyntheticSets | None) -> TrainingSet:
    """The :class:`TrainingSet` of one protocol (``alpha``: TSRTR's ratio of synthetic to real rows)."""
    if protocol == "trtr":
        return TrainingSet("trtr", None, X_real, y_real, 0)
    if protocol == "rebalance":
        return TrainingSet("rebalance", None, np.concatenate([X_real, synthetic.balance_X]),
                           np.concatenate([y_real, synthetic.balance_y]), len(synthetic.balance_y))
    if protocol == "tstr":
        return TrainingSet("tstr", None, synthetic.pool_X, synthetic.pool_y, len(synthetic.pool_y))
    if protocol == "tsrtr":
        X_s, y_s = nested_prefix(synthetic.pool_X, synthetic.pool_y, alpha)
        return TrainingSet("tsrtr", float(alpha), np.concatenate([X_real, X_s]), np.concatenate([y_real, y_s]),
                           len(y_s))
    raise ValueError(f"unknown protocol {protocol!r}")  # the registry checks every method's protocols


def training_sets(
    method: str, X_real: np.ndarray, y_real: np.ndarray, synthetic: SyntheticSets | None,
    alphas=PAPER_ALPHAS,
):
    """Yield the :class:`TrainingSet` of every protocol ``method`` is judged under (see the registry)."""
    for protocol, alpha in protocol_settings(method, alphas):
        yield training_set(protocol, alpha, X_real, y_real, synthetic)
