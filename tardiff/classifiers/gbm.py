"""The summary evaluator: per-feature summaries of a series and a gradient-boosting classifier on them.

:func:`summary_features` (mean, min, max, last, std, slope, count; NaN-aware) and
:class:`SummaryGBMClassifier`, scikit-learn's HistGradientBoosting on those summaries, the
evaluator many clinical teams would use.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score

from tardiff.classifiers.config import _check_two_classes, _check_xy
from tardiff.errors import DataError, ParameterError

__all__ = ["SUMMARIES", "SummaryGBMClassifier", "summary_features"]

SUMMARIES = ("mean", "min", "max", "last", "std", "slope", "count")


def summary_features(X, summaries: tuple[str, ...] = ("mean", "min", "max", "last", "std", "slope")) -> np.ndarray:
    """Per-feature summaries of (N, T, F) series, NaN-aware, shape (N, F * len(summaries)).

    ``last`` is the last observed value, ``slope`` the least-squares slope against the time
    index over the observed values, ``count`` the number of observed values. A feature never
    observed in a stay gives NaN summaries (gradient boosting handles NaN natively).

    Examples
    --------
    >>> X = np.arange(6, dtype="float32").reshape(1, 3, 2)
    >>> summary_features(X, ("last", "slope")).tolist()
    [[4.0, 5.0, 2.0, 2.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise DataError(f"X must have shape (N, T, F), got {X.shape}")
    unknown = set(summaries) - set(SUMMARIES)
    if unknown:
        raise ParameterError(f"unknown summaries {sorted(unknown)}; choose from {SUMMARIES}")
    n, steps, _ = X.shape
    observed = np.isfinite(X)
    count = observed.sum(axis=1).astype(np.float64)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        safe = np.where(observed, X, np.nan)
        mean = np.nanmean(safe, axis=1)
        for name in summaries:
            if name == "mean":
                out.append(mean)
            elif name == "min":
                out.append(np.nanmin(safe, axis=1))
            elif name == "max":
                out.append(np.nanmax(safe, axis=1))
            elif name == "std":
                out.append(np.nanstd(safe, axis=1))
            elif name == "count":
                out.append(count)
            elif name == "last":
                last_idx = steps - 1 - np.argmax(observed[:, ::-1, :], axis=1)
                last = np.take_along_axis(safe, last_idx[:, None, :], axis=1)[:, 0, :]
                out.append(np.where(count > 0, last, np.nan))
            elif name == "slope":
                t = np.arange(steps, dtype=np.float64)[None, :, None]
                t_mean = np.sum(np.where(observed, t, 0.0), axis=1) / np.maximum(count, 1)
                dt = np.where(observed, t - t_mean[:, None, :], 0.0)
                dx = np.where(observed, safe - mean[:, None, :], 0.0)
                denom = np.sum(dt * dt, axis=1)
                slope = np.sum(dt * dx, axis=1) / np.where(denom > 0, denom, 1.0)
                out.append(np.where(denom > 0, slope, np.where(count > 0, 0.0, np.nan)))
    return np.concatenate(out, axis=1).astype(np.float64)


class SummaryGBMClassifier(ClassifierMixin, BaseEstimator):
    """HistGradientBoosting on per-feature summaries of the series.

    The number of boosting iterations is chosen by validation AUPRC when validation data is
    given (the model is refitted with that many iterations); otherwise ``max_iter`` are used.

    Parameters
    ----------
    random_state : int
        Seed of the boosting model.
    max_iter, learning_rate, max_leaf_nodes, l2_regularization :
        Passed to :class:`sklearn.ensemble.HistGradientBoostingClassifier`.
    class_weight : bool
        Use ``class_weight="balanced"``.
    summaries : tuple of str
        Summaries per feature (see :func:`summary_features`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 12, 3)).astype("float32"); y = (X[:, :, 0].mean(1) > 0).astype(int)
    >>> SummaryGBMClassifier(max_iter=20).fit(X, y).predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, random_state: int = 0, *, max_iter: int = 300, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, l2_regularization: float = 1.0, class_weight: bool = False,
                 summaries: tuple[str, ...] = ("mean", "min", "max", "last", "std", "slope")) -> None:
        self.random_state = random_state
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight
        self.summaries = tuple(summaries)

    def _model(self, max_iter: int, seed: int) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(
            max_iter=max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization, early_stopping=False,
            class_weight="balanced" if self.class_weight else None, random_state=seed,
        )

    def fit(self, X, y, X_val=None, y_val=None) -> "SummaryGBMClassifier":
        """Fit on summaries of ``X``; with validation data, choose the iteration count by its AUPRC."""
        if self.max_iter < 1:
            raise ParameterError(f"max_iter must be a positive integer, got {self.max_iter}")
        X, y = _check_xy(X, y, "X", allow_nan=True)
        _check_two_classes(y, "the training labels")
        seed = int(self.random_state)
        feats = summary_features(X, self.summaries)
        model = self._model(self.max_iter, seed).fit(feats, y)
        self.history_ = {"val_auprc": []}
        self.best_iter_ = self.max_iter
        if X_val is not None:
            X_val, y_val = _check_xy(X_val, y_val, "X_val", allow_nan=True)
            _check_two_classes(y_val, "the validation labels")
            val_feats = summary_features(X_val, self.summaries)
            curve = [float(average_precision_score(y_val, p[:, 1])) for p in model.staged_predict_proba(val_feats)]
            self.history_["val_auprc"] = curve
            self.best_iter_ = int(np.argmax(curve)) + 1
            if self.best_iter_ < model.n_iter_:
                model = self._model(self.best_iter_, seed).fit(feats, y)
        self.model_ = model
        self.classes_ = np.array([0, 1])
        self.n_features_ = X.shape[2]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (N, 2); rows sum to 1."""
        if not hasattr(self, "model_"):
            raise ParameterError("this classifier is not fitted yet; call fit(X, y) first")
        X, _ = _check_xy(X, np.zeros(len(X), dtype=np.int64), "X", allow_nan=True)
        if X.shape[2] != self.n_features_:
            raise DataError(f"X has {X.shape[2]} features but the classifier was fitted on {self.n_features_}")
        p = self.model_.predict_proba(summary_features(X, self.summaries))[:, 1].astype(np.float64)
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, X, threshold: float = 0.5) -> np.ndarray:
        """Hard labels at ``threshold`` on P(y=1)."""
        return (self.predict_proba(X)[:, 1] >= threshold).astype(np.int64)
