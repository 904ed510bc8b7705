"""Control resamplers: what a generative method must beat.

Only random duplication lives here; "real data only, with or without class weights" is an
option of :mod:`tardiff.classifiers`, not a sampler.
"""

from __future__ import annotations

import numpy as np

from tardiff.samplers.base import BaseSampler, Strategy


class RandomOverSampler(BaseSampler):
    """Duplicate randomly chosen real rows of a class (sampling with replacement).

    The same idea as :class:`imblearn.over_sampling.RandomOverSampler`, behind the tardiff
    interface (3-D X, the ``balance``/``augment`` strategies, ``sample(n, label)``).

    Parameters
    ----------
    strategy : {"balance", "augment"}
        ``"replace"`` is refused: a set of duplicates is a bootstrap of the real data, not
        a synthetic set.
    ratio, alpha : float
        See :func:`tardiff.samplers.base.generation_counts`.
    random_state : int

    Examples
    --------
    >>> X = np.arange(12, dtype="float32").reshape(6, 2, 1); y = np.array([0, 0, 0, 0, 1, 1])
    >>> X_res, y_res = RandomOverSampler(random_state=0).fit_resample(X, y)
    >>> y_res.tolist()
    [0, 0, 0, 0, 1, 1, 1, 1]
    """

    _supported_strategies = ("balance", "augment")

    def __init__(
        self,
        strategy: Strategy = "balance",
        ratio: float = 1.0,
        alpha: float = 1.0,
        random_state: int = 0,
    ):
        self.strategy = strategy
        self.ratio = ratio
        self.alpha = alpha
        self.random_state = random_state

    def _unsupported_message(self, strategy: str) -> str:
        return (
            f"RandomOverSampler cannot make a synthetic-only set (strategy={strategy!r}): duplicates "
            "are a bootstrap of the real rows; use strategy='balance' or 'augment'"
        )

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X_ = X
        self.y_ = y

    def _generate(self, n: int, label: int) -> np.ndarray:
        pool = np.flatnonzero(self.y_ == label)
        picks = self._rng_.choice(pool, size=n, replace=True)
        return self.X_[picks].copy()
