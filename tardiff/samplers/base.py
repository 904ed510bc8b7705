"""The one resampler interface: input checks, per-class counts, and the base class.

Every sampler in :mod:`tardiff.samplers` follows imbalanced-learn: ``Sampler(**params)``
only stores its parameters, ``fit_resample(X, y)`` learns what it needs (attributes ending
in ``_``) and returns the real rows first, unchanged, with the synthetic rows appended, and
``sample(n, label)`` generates more rows on demand after ``fit``.

How many rows of each class to generate is decided in one place,
:func:`generation_counts`, for the three strategies:

``"balance"``
    minority class up to ``ratio`` x the majority count (MCRAGE's rebalancing);
``"augment"``
    ``alpha`` x the real training size, with the real class ratio (TSRTR of the TarDiff paper);
``"replace"``
    a synthetic set of the training set's size and class ratio (TSTR of the TarDiff paper);
    ``fit_resample`` still returns real rows first, the caller slices the synthetic part.
"""

from __future__ import annotations

import numbers
from typing import Literal, get_args

import numpy as np
from sklearn.base import BaseEstimator
from tqdm import tqdm

from tardiff.errors import DataError, ParameterError

Strategy = Literal["balance", "augment", "replace"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


# --------------------------------------------------------------------------- checks
def check_X_y(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate a time-series data set and return it as ``(float32 X, int64 y)``.

    Parameters
    ----------
    X : array-like of shape (N, T, F)
        Finite values (impute and scale first, e.g. with :func:`tardiff.data.prepare.prepare`).
    y : array-like of shape (N,)
        Binary labels in {0, 1}; both classes must be present.

    Returns
    -------
    X : ndarray (N, T, F) float32
    y : ndarray (N,) int64

    Raises
    ------
    DataError
        X is not 3-D, is empty, holds NaN or inf; y has the wrong length, labels outside
        {0, 1}, or a single class.

    Examples
    --------
    >>> X, y = check_X_y(np.zeros((4, 3, 2)), [0, 1, 0, 1])
    >>> X.dtype, y.dtype, X.shape
    (dtype('float32'), dtype('int64'), (4, 3, 2))
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise DataError(
            f"X must have shape (N, T, F) (stays, time steps, features), got shape {X.shape}; "
            "reshape 2-D data to (N, T, 1) or (N, 1, F)"
        )
    if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
        raise DataError(f"X is empty (shape {X.shape}); pass at least one stay with T >= 1 and F >= 1")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"X must hold real numbers, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    n_bad = int(np.size(X) - np.count_nonzero(np.isfinite(X)))
    if n_bad:
        raise DataError(
            f"X contains {n_bad} NaN or inf values; impute and scale first "
            "(tardiff.data.prepare.prepare does both)"
        )
    y = check_labels(y, n=X.shape[0])
    return X, y


def check_labels(y, n: int | None = None) -> np.ndarray:
    """Validate binary labels with both classes present and return them as int64.

    Examples
    --------
    >>> check_labels([1, 0, 1]).tolist()
    [1, 0, 1]
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"y must be 1-D of shape (N,), got shape {y.shape}")
    if n is not None and len(y) != n:
        raise DataError(f"X has {n} rows but y has {len(y)} labels; pass one label per stay")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"y must hold the integer labels 0 and 1, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        values = sorted({float(v) if not float(v).is_integer() else int(v) for v in y[bad][:5]})
        raise DataError(f"y must hold labels in {{0, 1}}, found {values}; recode the labels to 0/1")
    y = y.astype(np.int64)
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0:
        missing = int(np.argmin(counts))
        raise DataError(
            f"y holds a single class (no stays of class {missing}); resampling needs both classes"
        )
    return y


def check_strategy(strategy) -> str:
    """Return ``strategy`` if it is one of ``"balance"``, ``"augment"``, ``"replace"``."""
    if strategy not in STRATEGIES:
        raise ParameterError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
    return strategy


def check_positive(name: str, value, *, integer: bool = False) -> float | int:
    """Return ``value`` if it is a finite number > 0 (an int when ``integer``), else raise.

    Examples
    --------
    >>> check_positive("alpha", 0.5)
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a positive number, got {value!r}")
    if integer and not float(value).is_integer():
        raise ParameterError(f"{name} must be a positive integer, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ParameterError(f"{name} must be > 0, got {value!r}")
    return int(value) if integer else float(value)


def check_random_state(random_state) -> int:
    """Return ``random_state`` as an int seed (>= 0); ``None`` is refused to keep runs reproducible."""
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or random_state < 0:
        raise ParameterError(f"random_state must be a non-negative int seed, got {random_state!r}")
    return int(random_state)


def check_label(label) -> int:
    """Return ``label`` as an int if it is 0 or 1."""
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or int(label) not in (0, 1):
        raise ParameterError(f"label must be 0 or 1, got {label!r}")
    return int(label)


def check_finite_output(X: np.ndarray, who: str) -> np.ndarray:
    """Raise if generated rows hold NaN or inf (a diverged model), else return them."""
    n_bad = int(np.size(X) - np.count_nonzero(np.isfinite(X)))
    if n_bad:
        raise DataError(
            f"{who} generated {n_bad} NaN or inf values: the model diverged; "
            "lower the learning rate or guidance scale, or train longer"
        )
    return X


# --------------------------------------------------------------------------- counts
def generation_counts(
    y, strategy: Strategy = "balance", ratio: float = 1.0, alpha: float = 1.0
) -> dict[int, int]:
    """Number of synthetic rows to generate per class.

    Parameters
    ----------
    y : array-like of shape (N,)
        Real training labels in {0, 1}, both classes present.
    strategy : {"balance", "augment", "replace"}
        ``"balance"``: minority up to ``round(ratio * n_majority)`` (majority gets 0);
        ``"augment"``: ``round(alpha * N)`` rows split with the real class ratio (largest
        remainder, so the counts sum exactly); ``"replace"``: the real class counts.
    ratio : float > 0
        Target minority/majority ratio for ``"balance"``.
    alpha : float > 0
        Synthetic size as a multiple of the real size for ``"augment"``.

    Returns
    -------
    dict
        ``{0: n0, 1: n1}``, non-negative, summing to at least 1.

    Raises
    ------
    ParameterError
        Bad strategy, ``ratio <= 0``, ``alpha <= 0``, or nothing to generate.

    Examples
    --------
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> generation_counts(y, "balance")
    {0: 0, 1: 80}
    >>> generation_counts(y, "augment", alpha=0.5)
    {0: 45, 1: 5}
    >>> generation_counts(y, "replace")
    {0: 90, 1: 10}
    """
    check_strategy(strategy)
    ratio = check_positive("ratio", ratio)
    alpha = check_positive("alpha", alpha)
    y = check_labels(y)
    real = np.bincount(y, minlength=2)
    if strategy == "balance":
        minority = int(np.argmin(real)) if real[0] != real[1] else 1
        majority = 1 - minority
        target = int(round(ratio * real[majority]))
        counts = {majority: 0, minority: target - int(real[minority])}
        if counts[minority] <= 0:
            raise ParameterError(
                f"strategy='balance' with ratio={ratio} asks for {counts[minority]} new rows of class "
                f"{minority} (class counts {real.tolist()}); raise ratio or use strategy='augment'"
            )
    elif strategy == "augment":
        total = int(round(alpha * len(y)))
        if total <= 0:
            raise ParameterError(
                f"alpha={alpha} asks for {total} synthetic rows from {len(y)} real rows; raise alpha"
            )
        exact = total * real / real.sum()
        base = np.floor(exact).astype(int)
        order = np.argsort(-(exact - base), kind="stable")
        base[order[: total - base.sum()]] += 1
        counts = {0: int(base[0]), 1: int(base[1])}
    else:
        counts = {0: int(real[0]), 1: int(real[1])}
    return {0: counts[0], 1: counts[1]}


# --------------------------------------------------------------------------- base class
class BaseSampler(BaseEstimator):
    """Base of all tardiff resamplers (imbalanced-learn style).

    Subclasses define ``__init__`` (storing parameters only, which must include
    ``strategy``, ``ratio``, ``alpha``, ``random_state``), ``_fit(X, y)`` and
    ``_generate(n, label) -> (n, T, F) float32``; optionally ``_supported_strategies``.
    """

    _supported_strategies: tuple[str, ...] = STRATEGIES

    # ---- public API
    def fit(self, X, y) -> "BaseSampler":
        """Validate ``(X, y)``, learn the sampler's state and return ``self``."""
        X, y = check_X_y(X, y)
        self._check_params()
        self._fit_checked(X, y)
        return self

    def _fit_checked(self, X: np.ndarray, y: np.ndarray) -> None:
        self.n_timesteps_, self.n_features_ = int(X.shape[1]), int(X.shape[2])
        self.class_counts_ = np.bincount(y, minlength=2)
        self._rng_ = np.random.default_rng(check_random_state(self.random_state))
        self._fit(X, y)

    def fit_resample(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Fit on ``(X, y)`` and return the real rows followed by the synthetic rows.

        Parameters
        ----------
        X : array-like (N, T, F)
            Finite (imputed, scaled) training data.
        y : array-like (N,)
            Labels in {0, 1}.

        Returns
        -------
        X_res : ndarray (N + M, T, F) float32
            ``X_res[:N]`` equals ``X``; the ``M`` synthetic rows follow, class 0 first.
        y_res : ndarray (N + M,) int64
        """
        X, y = check_X_y(X, y)
        self._check_params()
        counts = generation_counts(y, self.strategy, self.ratio, self.alpha)
        self._fit_checked(X, y)
        self.generation_counts_ = counts
        parts_X, parts_y = [X], [y]
        for label in (0, 1):
            if counts[label] > 0:
                parts_X.append(self.sample(counts[label], label))
                parts_y.append(np.full(counts[label], label, dtype=np.int64))
        return np.concatenate(parts_X, axis=0), np.concatenate(parts_y, axis=0)

    def sample(self, n: int, label: int) -> np.ndarray:
        """Generate ``n`` synthetic rows of class ``label`` (after ``fit``).

        Successive calls continue the sampler's random stream, so a fit followed by the
        same calls always returns the same rows.

        Returns
        -------
        ndarray (n, T, F) float32, finite
        """
        if not hasattr(self, "_rng_"):
            raise ParameterError(f"{type(self).__name__} is not fitted; call fit(X, y) or fit_resample(X, y) first")
        n = check_positive("n", n, integer=True)
        label = check_label(label)
        X_new = np.asarray(self._generate(n, label), dtype=np.float32)
        expected = (n, self.n_timesteps_, self.n_features_)
        if X_new.shape != expected:  # a programming error, not a user one
            raise RuntimeError(f"{type(self).__name__}._generate returned shape {X_new.shape}, expected {expected}")
        return check_finite_output(X_new, type(self).__name__)

    # ---- helpers for subclasses
    def _check_params(self) -> None:
        strategy = check_strategy(self.strategy)
        if strategy not in self._supported_strategies:
            raise ParameterError(self._unsupported_message(strategy))
        check_positive("ratio", self.ratio)
        check_positive("alpha", self.alpha)
        check_random_state(self.random_state)

    def _unsupported_message(self, strategy: str) -> str:
        return (
            f"{type(self).__name__} does not support strategy={strategy!r}; "
            f"use one of {list(self._supported_strategies)}"
        )

    def _next_seed(self) -> int:
        """A fresh seed drawn from the sampler's random stream (for sklearn/torch calls)."""
        return int(self._rng_.integers(0, 2**31 - 1))

    @staticmethod
    def _progress(iterable, *, progress: bool, desc: str, total: int | None = None):
        return tqdm(iterable, desc=desc, total=total, disable=not progress, leave=False)

    # ---- to implement
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _generate(self, n: int, label: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
