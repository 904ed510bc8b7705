"""Imputation and scaling fitted on the training split only.

Missing values are imputed by carrying the last measurement forward in time and then
filling what is still missing (stays with no measurement of a feature before a time) with
the training split's median of that feature. Features are then standardised with the
training split's mean and standard deviation of measured values. Both steps are fitted on
the training split and applied unchanged to validation and test, and the scaling is
invertible so that synthetic data can be shown in clinical units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tardiff.data.cohort import Cohort
from tardiff.data.splits import Split, stratified_split
from tardiff.errors import DataError


def forward_fill(X: np.ndarray) -> np.ndarray:
    """Carry the last non-NaN value forward along the time axis (axis 1) of (N, T, F) data.

    Examples
    --------
    >>> forward_fill(np.array([[[np.nan], [1.0], [np.nan]]])).ravel().tolist()
    [nan, 1.0, 1.0]
    """
    X = np.asarray(X, dtype=np.float32)
    observed = ~np.isnan(X)
    t_index = np.where(observed, np.arange(X.shape[1])[None, :, None], 0)
    last_seen = np.maximum.accumulate(t_index, axis=1)
    filled = np.take_along_axis(X, last_seen, axis=1)
    # Before the first measurement, last_seen points at t=0, which may itself be NaN: keep NaN.
    ever_seen = np.maximum.accumulate(observed, axis=1)
    return np.where(ever_seen, filled, np.nan).astype(np.float32)


@dataclass
class FeatureScaler:
    """Per-feature standardisation, fitted on measured training values only.

    Examples
    --------
    >>> X = np.array([[[1.0], [3.0]]], dtype=np.float32)
    >>> s = FeatureScaler().fit(X)
    >>> s.transform(X).ravel().tolist(), s.inverse_transform(s.transform(X)).ravel().tolist()
    ([-1.0, 1.0], [1.0, 3.0])
    """

    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> "FeatureScaler":
        flat = np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])
        with np.errstate(all="ignore"):
            mean = np.nanmean(flat, axis=0)
            std = np.nanstd(flat, axis=0)
        # A feature never measured in training, or constant, is left unscaled rather than divided by 0.
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        self.mean_, self.scale_ = mean.astype(np.float32), std.astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X) * self.scale_ + self.mean_).astype(np.float32)


@dataclass
class PreparedCohort:
    """A cohort split, imputed and standardised, ready for generators and classifiers.

    ``X_train``, ``X_val`` and ``X_test`` are in the standardised space every model works
    in; ``scaler.inverse_transform`` maps them (and synthetic data) back to clinical units.
    """

    cohort: Cohort
    split: Split
    scaler: FeatureScaler
    medians: np.ndarray
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_guide: np.ndarray | None = None  # the optional held-out parts (see Split); None when empty
    y_guide: np.ndarray | None = None
    X_select: np.ndarray | None = None
    y_select: np.ndarray | None = None

    @property
    def ids(self) -> dict[str, np.ndarray]:
        """Stay ids per split part, to check that no test stay reaches a generator."""
        return {name: self.cohort.stay_ids[getattr(self.split, name)] for name in self.split.parts()}

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of the split part called ``name`` ("train", "val", "guide", "select" or "test")."""
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")


def impute(X: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """Forward fill along time, then fill what is left with per-feature ``medians``."""
    filled = forward_fill(X)
    return np.where(np.isnan(filled), medians[None, None, :], filled).astype(np.float32)


def prepare(
    cohort: Cohort, split: Split | None = None, random_state: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> PreparedCohort:
    """Split the cohort, fit imputation and scaling on its training part, apply them to all.

    Examples
    --------
    >>> from tardiff.data import load_cohort
    >>> p = prepare(load_cohort("simulated", n=200), random_state=0)
    >>> p.X_train.shape[1:] == p.cohort.shape[1:]
    True
    """
    split = split or stratified_split(cohort.y, fractions=fractions, random_state=random_state)
    train_X = cohort.X[split.train]
    with np.errstate(all="ignore"):
        medians = np.nanmedian(train_X.reshape(-1, train_X.shape[-1]).astype(np.float64), axis=0)
    never = [f for f, m in zip(cohort.features, medians) if not np.isfinite(m)]
    if len(never) == len(cohort.features):
        raise DataError(f"{cohort.dataset}: no feature has a single measurement in the training split")
    # A feature never measured in training carries no information: impute it as 0 (its scaled mean).
    medians = np.where(np.isfinite(medians), medians, 0.0).astype(np.float32)
    scaler = FeatureScaler().fit(train_X)
    parts = {}
    for name in split.parts():
        idx = getattr(split, name)
        parts[f"X_{name}"] = scaler.transform(impute(cohort.X[idx], medians))
        parts[f"y_{name}"] = cohort.y[idx]
    return PreparedCohort(cohort=cohort, split=split, scaler=scaler, medians=medians, **parts)
