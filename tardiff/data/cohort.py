"""The cohort container every loader returns.

A :class:`Cohort` holds one dataset for one prediction task, in clinical units, with
missing values left as NaN and an observation mask beside them. Imputation and scaling
depend on the training split, so they happen later (:mod:`tardiff.data.prepare`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tardiff.errors import DataError


@dataclass
class Cohort:
    """One dataset for one binary prediction task.

    Attributes
    ----------
    X : ndarray of shape (N, T, F), float32
        Time series on a regular grid in clinical units; NaN where nothing was measured.
    mask : ndarray of shape (N, T, F), bool
        True where ``X`` holds a measured (not imputed) value.
    y : ndarray of shape (N,), int64
        Binary outcome, 1 for the (rare) event.
    features, units : list of str
        Names and units of the F features.
    stay_ids : ndarray of shape (N,)
        Identifier of each stay in its source data (used to track splits).
    static : DataFrame with N rows
        Static covariates in the order of ``X`` (``age`` in years and ``sex`` as
        "F"/"M" where known; other columns allowed).
    dataset, task : str
        Registry name of the dataset and the name of the task.
    step_minutes : int
        Spacing of the time grid.
    bayes_posterior : ndarray of shape (N,) or None
        P(y = 1 | X) under the generating process, where it is known (simulated data).
    info : dict
        Loader notes for the dataset card, e.g. how many records were dropped and why.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> X = np.zeros((4, 3, 2), dtype=np.float32)
    >>> c = Cohort(X=X, mask=np.ones_like(X, bool), y=np.array([0, 1, 0, 1]),
    ...            features=["HR", "RR"], units=["bpm", "/min"], stay_ids=np.arange(4),
    ...            static=pd.DataFrame(index=range(4)), dataset="toy", task="mortality")
    >>> c.shape
    (4, 3, 2)
    """

    X: np.ndarray
    mask: np.ndarray
    y: np.ndarray
    features: list[str]
    units: list[str]
    stay_ids: np.ndarray
    static: pd.DataFrame
    dataset: str
    task: str
    step_minutes: int = 60
    bayes_posterior: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        self.y = np.asarray(self.y).astype(np.int64)
        self.stay_ids = np.asarray(self.stay_ids)
        self.static = self.static.reset_index(drop=True)
        if self.X.ndim != 3:
            raise DataError(f"{self.dataset}: X must be 3-D (N, T, F), got shape {self.X.shape}")
        n, _, f = self.X.shape
        if self.mask.shape != self.X.shape:
            raise DataError(f"{self.dataset}: mask shape {self.mask.shape} differs from X shape {self.X.shape}")
        for name, arr in (("y", self.y), ("stay_ids", self.stay_ids)):
            if len(arr) != n:
                raise DataError(f"{self.dataset}: {name} has {len(arr)} entries for {n} stays")
        if len(self.static) != n:
            raise DataError(f"{self.dataset}: static covariates have {len(self.static)} rows for {n} stays")
        if len(self.features) != f or len(self.units) != f:
            raise DataError(f"{self.dataset}: {f} features but {len(self.features)} names and {len(self.units)} units")
        if not np.isin(self.y, (0, 1)).all():
            raise DataError(f"{self.dataset}/{self.task}: labels must be 0 or 1, found {sorted(set(self.y.tolist()))[:5]}")
        if n and len(np.unique(self.y)) < 2:
            raise DataError(
                f"{self.dataset}/{self.task}: every stay has label {int(self.y[0])}; a binary task needs both classes "
                "(choose another task or a larger cohort)"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.X.shape)  # type: ignore[return-value]

    @property
    def positive_rate(self) -> float:
        return float(self.y.mean()) if len(self.y) else float("nan")

    def subset(self, index: np.ndarray) -> "Cohort":
        """Return the cohort restricted to the stays at ``index`` (positions)."""
        index = np.asarray(index)
        return Cohort(
            X=self.X[index], mask=self.mask[index], y=self.y[index], features=list(self.features),
            units=list(self.units), stay_ids=self.stay_ids[index],
            static=self.static.iloc[index].reset_index(drop=True), dataset=self.dataset, task=self.task,
            step_minutes=self.step_minutes,
            bayes_posterior=None if self.bayes_posterior is None else self.bayes_posterior[index],
            info=dict(self.info),
        )

    def missing_rate(self) -> pd.Series:
        """Fraction of grid cells with no measurement, per feature."""
        return pd.Series(1.0 - self.mask.mean(axis=(0, 1)), index=self.features, name="missing")


def concat_cohorts(first: Cohort, second: Cohort) -> Cohort:
    """The stays of ``first`` followed by those of ``second`` (same features, task and grid).

    Stay ids must not repeat: a stay present in both would be trained and tested on.

    Examples
    --------
    >>> from tardiff.data import load_cohort
    >>> a = load_cohort("simulated", n=100, seed=0, cache=False)
    >>> b = load_cohort("simulated", n=50, seed=1, cache=False)
    >>> b.stay_ids = b.stay_ids + 100
    >>> concat_cohorts(a, b).shape[0]
    150
    """
    if first.features != second.features or first.task != second.task or first.shape[1] != second.shape[1]:
        raise DataError(f"cannot join {first.dataset}/{first.task} and {second.dataset}/{second.task}: "
                        "features, task or number of time steps differ")
    shared = np.intersect1d(first.stay_ids, second.stay_ids)
    if shared.size:
        raise DataError(f"{shared.size} stay ids appear in both cohorts (e.g. {shared[0]}); give the second other ids")
    both = (first.bayes_posterior is not None) and (second.bayes_posterior is not None)
    return Cohort(
        X=np.concatenate([first.X, second.X]), mask=np.concatenate([first.mask, second.mask]),
        y=np.concatenate([first.y, second.y]), features=list(first.features), units=list(first.units),
        stay_ids=np.concatenate([first.stay_ids, second.stay_ids]),
        static=pd.concat([first.static, second.static], ignore_index=True), dataset=first.dataset, task=first.task,
        step_minutes=first.step_minutes,
        bayes_posterior=np.concatenate([first.bayes_posterior, second.bayes_posterior]) if both else None,
        info=dict(first.info),
    )
