"""Detection: how well a classifier tells one set of stays from another (AUROC, 0.5 = not at all).

The quality gate (:mod:`tardiff.evaluation.gates`) asks two detectors, per class, to tell
synthetic stays from held-out real ones (synthcity's DetectionEvaluator, per class):

* a **GRU** on the series (:func:`gru_detection_auroc`): one recurrent layer and a linear
  read-out of the last state, trained with Adam and early stopping on a validation part;
* a **GBM** on per-feature summaries (:func:`summary_features`: mean, sd, min, max, last value,
  least-squares slope over time and share missing), scikit-learn's HistGradientBoosting with
  its own early stopping (:func:`gbm_detection_auroc`).

Both are cross-fitted: the two sets are balanced (the larger one subsampled), split into
``folds`` stratified parts, each part scored by a detector trained on the others, and the
AUROC computed on all out-of-fold scores. Every row is then scored once by a detector that
never saw it, which gives a less noisy AUROC than one held-out split when a class has only a
few dozen stays. The number has a known null distribution: for two sets drawn from the same
distribution its mean is 0.5 and its standard deviation about ``sqrt((2n + 1) / (12 n^2))``
for ``n`` rows per side (Hanley & McNeil 1982), :func:`null_auroc_sd`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn

from tardiff.errors import DataError, ParameterError
from tardiff.evaluation.fidelity import _build
from tardiff.presets import resolve_device

__all__ = ["gbm_detection_auroc", "gru_detection_auroc", "null_auroc_sd", "summary_features"]

SUMMARY_STATISTICS = ("mean", "sd", "min", "max", "last", "slope", "missing")


def _sequences(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 3 or len(arr) == 0:
        raise DataError(f"{name} must be a non-empty array of shape (N, T, F), got {arr.shape}")
    return arr


def summary_features(X) -> np.ndarray:
    """Per-feature summaries of each stay: mean, sd, min, max, last, slope, share missing.

    NaN counts as missing and is left out of the other statistics (a feature never observed
    in a stay gets 0 for them). The slope is the least-squares slope over the time index.

    Parameters
    ----------
    X : array (N, T, F)

    Returns
    -------
    ndarray (N, 7 F)
        Statistic-major: the F means, then the F sds, ... (order :data:`SUMMARY_STATISTICS`).

    Examples
    --------
    >>> X = np.arange(6, dtype="float32").reshape(1, 3, 2)  # two features rising by 2 per step
    >>> [round(float(v), 3) for v in summary_features(X).reshape(7, 2)[:, 0]]  # mean, sd, min, max, last, slope, missing
    [2.0, 1.633, 0.0, 4.0, 4.0, 2.0, 0.0]
    """
    X = _sequences(X, "X").astype(np.float64)
    n, t, f = X.shape
    observed = np.isfinite(X)
    count = observed.sum(axis=1)
    safe = np.where(observed, X, 0.0)
    seen = np.maximum(count, 1)
    mean = safe.sum(axis=1) / seen
    sd = np.sqrt(np.where(observed, (X - mean[:, None, :]) ** 2, 0.0).sum(axis=1) / seen)
    low = np.where(observed, X, np.inf).min(axis=1)
    high = np.where(observed, X, -np.inf).max(axis=1)
    # last observed value: index of the last finite step per (stay, feature)
    last_index = t - 1 - np.argmax(observed[:, ::-1, :], axis=1)
    last = np.take_along_axis(safe, last_index[:, None, :], axis=1)[:, 0, :]
    steps = np.arange(t, dtype=np.float64)[None, :, None]
    step_mean = (np.where(observed, steps, 0.0)).sum(axis=1) / seen
    centred = np.where(observed, steps - step_mean[:, None, :], 0.0)
    denom = (centred ** 2).sum(axis=1)
    slope = np.where(denom > 0, (centred * (safe - mean[:, None, :])).sum(axis=1) / np.where(denom > 0, denom, 1), 0.0)
    none = count == 0
    low, high, last = (np.where(none, 0.0, v) for v in (low, high, last))
    missing = 1.0 - count / t
    return np.concatenate([mean, sd, low, high, last, slope, missing], axis=1).astype(np.float32)


def null_auroc_sd(n_a: int, n_b: int | None = None) -> float:
    """Standard deviation of the AUROC between two samples from one distribution (Hanley & McNeil).

    ``sqrt((n_a + n_b + 1) / (12 n_a n_b))``: the noise of a detection AUROC when the detector
    has nothing to find.

    Examples
    --------
    >>> round(null_auroc_sd(50), 3), round(null_auroc_sd(300), 3)
    (0.058, 0.024)
    """
    n_b = n_a if n_b is None else n_b
    if n_a < 1 or n_b < 1:
        raise ParameterError(f"null_auroc_sd needs at least one row per side, got {n_a} and {n_b}")
    return math.sqrt((n_a + n_b + 1) / (12.0 * n_a * n_b))


def _balanced(a: np.ndarray, b: np.ndarray, max_rows: int, rng: np.random.Generator):
    """Both sets cut to the same size ``min(len(a), len(b), max_rows)`` (random rows)."""
    n = min(len(a), len(b), int(max_rows))
    pick = lambda x: x[np.sort(rng.choice(len(x), size=n, replace=False))] if len(x) > n else x  # noqa: E731
    return pick(a), pick(b)


def _folds(n_rows: int, labels: np.ndarray, folds: int, seed: int):
    folds = max(2, min(int(folds), int(np.bincount(labels).min())))
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(n_rows), labels)


def _check_sets(a, b, name_a: str, name_b: str, min_rows: int = 4):
    a, b = _sequences(a, name_a), _sequences(b, name_b)
    if a.shape[1:] != b.shape[1:]:
        raise DataError(f"{name_a} and {name_b} differ in (T, F): {a.shape[1:]} vs {b.shape[1:]}")
    if min(len(a), len(b)) < min_rows:
        raise DataError(f"detection needs at least {min_rows} rows per set, got {len(a)} and {len(b)}")
    return a, b


def can_stop_early(labels: np.ndarray, fraction: float = 0.2, per_class: int = 2) -> bool:
    """Whether a stratified ``fraction`` of these rows holds ``per_class`` rows of every class, so that a
    GBM can stop early on it (a tiny class, as in a demo cohort's held-out positives, cannot).

    Examples
    --------
    >>> can_stop_early(np.r_[np.zeros(50), np.ones(50)]), can_stop_early(np.r_[np.zeros(4), np.ones(4)])
    (True, False)
    """
    counts = np.bincount(np.asarray(labels, dtype=int))
    return bool(len(counts) > 1 and (np.floor(fraction * counts[counts > 0]) >= per_class).all())


def gbm_detection_auroc(a, b, *, max_rows: int = 300, folds: int = 2, max_iter: int = 200,
                        learning_rate: float = 0.1, max_leaf_nodes: int = 15, seed: int = 0) -> float:
    """Cross-fitted AUROC of a GBM on :func:`summary_features` telling set ``b`` from set ``a``.

    Parameters
    ----------
    a, b : array (N, T, F)
        E.g. held-out real stays and synthetic stays of one class.
    max_rows : int
        Rows per set at most (both sets are cut to the same size).
    folds : int
        Cross-fitting folds.
    max_iter, learning_rate, max_leaf_nodes : of ``HistGradientBoostingClassifier``, which stops
        early on 20% of its training rows (10 rounds without improvement).
    seed : int
        Subsampling, folds and the GBM's random state.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(80, 6, 2)); b = rng.normal(size=(80, 6, 2))
    >>> gbm_detection_auroc(a, 3 * b) > 0.9, abs(gbm_detection_auroc(a, b) - 0.5) < 0.2
    (True, True)
    """
    a, b = _check_sets(a, b, "a", "b")
    rng = np.random.default_rng(seed)
    a, b = _balanced(a, b, max_rows, rng)
    features = summary_features(np.concatenate([a, b]))
    labels = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    scores = np.zeros(len(labels))
    for train, test in _folds(len(labels), labels, folds, seed):
        model = HistGradientBoostingClassifier(
            max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
            early_stopping=can_stop_early(labels[train]), validation_fraction=0.2, n_iter_no_change=10,
            random_state=seed,
        ).fit(features[train], labels[train])
        scores[test] = model.predict_proba(features[test])[:, 1]
    return float(roc_auc_score(labels, scores))


def _fit_gru(x: torch.Tensor, labels: torch.Tensor, *, hidden: int, epochs: int, patience: int,
             batch_size: int, lr: float, seed: int, device: torch.device) -> nn.Module:
    """A post-hoc GRU fitted with early stopping on the validation loss (20% of ``x``, stratified)."""
    model, generator = _build(x.shape[-1], hidden, 1, False, seed, device)
    rng = np.random.default_rng(seed)
    val = np.zeros(len(x), bool)
    for label in (0, 1):
        idx = np.flatnonzero(labels.numpy() == label)
        val[rng.choice(idx, size=max(1, len(idx) // 5), replace=False)] = True
    val = torch.as_tensor(val)
    x_fit, y_fit = x[~val].to(device), labels[~val].to(device)
    x_val, y_val = x[val].to(device), labels[val].to(device)
    loss_fn = nn.BCEWithLogitsLoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    best, best_state, waited = math.inf, copy.deepcopy(model.state_dict()), 0
    for _ in range(int(epochs)):
        model.train()
        order = torch.randperm(len(x_fit), generator=generator).to(device)
        for start in range(0, len(x_fit), batch_size):
            idx = order[start:start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss_fn(model(x_fit[idx]), y_fit[idx]).backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(model(x_val), y_val))
        if val_loss < best - 1e-4:
            best, best_state, waited = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model


def gru_detection_auroc(a, b, *, max_rows: int = 300, folds: int = 2, hidden: int = 16, epochs: int = 30,
                        patience: int = 4, batch_size: int = 64, lr: float = 5e-3, seed: int = 0,
                        device="cpu") -> float:
    """Cross-fitted AUROC of a post-hoc GRU telling set ``b`` from set ``a`` on the series.

    Parameters
    ----------
    a, b : array (N, T, F)
        E.g. held-out real stays and synthetic stays of one class (NaN is read as 0).
    max_rows, folds, seed : as :func:`gbm_detection_auroc`.
    hidden : int
        GRU width (one layer, a linear read-out of the last state).
    epochs, patience : int
        At most ``epochs`` passes; training stops after ``patience`` epochs without a lower
        validation loss (20% of the training rows) and keeps the best weights.
    batch_size, lr : of Adam.
    device : str or torch.device
        Where the GRU trains ("auto": cuda when available).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(80, 6, 2)); b = rng.normal(size=(80, 6, 2))
    >>> gru_detection_auroc(a, b + 2, hidden=8) > 0.9
    True
    """
    a, b = _check_sets(a, b, "a", "b")
    if int(hidden) < 1 or int(epochs) < 1 or int(patience) < 1 or int(batch_size) < 1 or not float(lr) > 0:
        raise ParameterError(f"hidden, epochs, patience, batch_size and lr must be positive, got "
                             f"{hidden}, {epochs}, {patience}, {batch_size}, {lr}")
    device = resolve_device(device)
    rng = np.random.default_rng(seed)
    a, b = _balanced(a, b, max_rows, rng)
    x = torch.as_tensor(np.nan_to_num(np.concatenate([a, b]), nan=0.0, posinf=0.0, neginf=0.0))
    labels_np = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    labels = torch.as_tensor(labels_np, dtype=torch.float32)
    scores = np.zeros(len(labels_np))
    for k, (train, test) in enumerate(_folds(len(labels_np), labels_np, folds, seed)):
        model = _fit_gru(x[train], labels[train], hidden=int(hidden), epochs=int(epochs), patience=int(patience),
                         batch_size=int(batch_size), lr=float(lr), seed=seed + 1000 * k, device=device)
        with torch.no_grad():
            scores[test] = model(x[test].to(device)).cpu().numpy()
    return float(roc_auc_score(labels_np, scores))
