"""SMOTE (Chawla et al. 2002) on flattened time series, through imbalanced-learn."""

from __future__ import annotations

import numpy as np
from imblearn.over_sampling import SMOTE

from tardiff.errors import DataError, ParameterError
from tardiff.samplers.base import BaseSampler, Strategy


class SMOTESampler(BaseSampler):
    """imbalanced-learn's SMOTE on ``(N, T*F)`` flattened data, reshaped back to ``(N, T, F)``.

    Each synthetic row is ``a + lambda (b - a)`` with ``a`` a real row of the class, ``b``
    one of its ``k_neighbors`` nearest same-class neighbours and ``lambda`` uniform in
    [0, 1]. Pass imputed, scaled data (distances are Euclidean on the flattened rows).

    Parameters
    ----------
    strategy : {"balance", "augment"}
        ``"replace"`` is refused: SMOTE interpolates real rows and cannot make a
        synthetic-only set independent of them.
    ratio, alpha : float
        See :func:`tardiff.samplers.base.generation_counts`.
    k_neighbors : int or None
        Neighbours per class; default ``min(5, n_class - 1)``.
    random_state : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 4, 2)).astype("float32"); y = np.array([0] * 16 + [1] * 4)
    >>> X_res, y_res = SMOTESampler(random_state=0).fit_resample(X, y)
    >>> X_res.shape, int(y_res.sum())
    ((32, 4, 2), 16)
    """

    _supported_strategies = ("balance", "augment")

    def __init__(
        self,
        strategy: Strategy = "balance",
        ratio: float = 1.0,
        alpha: float = 1.0,
        k_neighbors: int | None = None,
        random_state: int = 0,
    ):
        self.strategy = strategy
        self.ratio = ratio
        self.alpha = alpha
        self.k_neighbors = k_neighbors
        self.random_state = random_state

    def _unsupported_message(self, strategy: str) -> str:
        return (
            f"SMOTESampler cannot make a synthetic-only set (strategy={strategy!r}): it interpolates "
            "real rows; use strategy='balance' or 'augment', or a diffusion sampler for 'replace'"
        )

    def _check_params(self) -> None:
        super()._check_params()
        k = self.k_neighbors
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ParameterError(f"k_neighbors must be a positive int or None, got {k!r}")

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X_flat_ = X.reshape(len(X), -1)
        self.y_ = y

    def _k_for(self, label: int) -> int:
        n_class = int(self.class_counts_[label])
        if n_class < 2:
            raise DataError(
                f"class {label} has {n_class} stay; SMOTE needs at least 2 stays of a class to "
                "interpolate between them (use RandomOverSampler or gather more data)"
            )
        if self.k_neighbors is None:
            return min(5, n_class - 1)
        if self.k_neighbors > n_class - 1:
            raise ParameterError(
                f"k_neighbors={self.k_neighbors} must be below the {n_class} stays of class {label}; "
                f"use k_neighbors <= {n_class - 1} or None"
            )
        return int(self.k_neighbors)

    def _generate(self, n: int, label: int) -> np.ndarray:
        k = self._k_for(label)
        counts = {c: int(self.class_counts_[c]) for c in (0, 1)}
        counts[label] += n  # sampling_strategy dict: wanted size of each class after resampling
        smote = SMOTE(sampling_strategy=counts, k_neighbors=k, random_state=self._next_seed())
        X_res, y_res = smote.fit_resample(self.X_flat_, self.y_)
        new = X_res[len(self.X_flat_):]  # imbalanced-learn appends the synthetic rows
        if len(new) != n or not np.all(y_res[len(self.X_flat_):] == label):  # pragma: no cover
            raise RuntimeError(f"SMOTE returned {len(new)} rows of class {label}, expected {n}")
        return new.reshape(n, self.n_timesteps_, self.n_features_).astype(np.float32)
