"""Training and persistence of the neural classifiers: :class:`TimeSeriesClassifier`, save and load.

A scikit-learn estimator that trains a network of :mod:`tardiff.classifiers.networks` with
AdamW and keeps the epoch of best validation AUPRC; :func:`save_classifier` and
:func:`load_classifier` store it as a verified checkpoint.
"""

from __future__ import annotations

import copy
import warnings
from typing import Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn
from tqdm import tqdm

from tardiff.classifiers.config import ClassifierConfig, _check_two_classes, _check_xy
from tardiff.classifiers.networks import _fast_kernels, build_network, per_sample_loss
from tardiff.errors import DataError, ParameterError
from tardiff.presets import resolve_device, seeded_global_rng, torch_generator

__all__ = ["TimeSeriesClassifier", "load_classifier", "save_classifier"]


def _predict_logits(module: nn.Module, X: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    dtype = next(module.parameters()).dtype
    out = []
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), _fast_kernels(module):
            for start in range(0, len(X), batch_size):
                xb = torch.as_tensor(X[start:start + batch_size], dtype=dtype, device=device)
                out.append(module(xb).double().cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class TimeSeriesClassifier(ClassifierMixin, BaseEstimator):
    """A neural classifier of (T, F) series with early stopping on validation AUPRC.

    A scikit-learn estimator: every parameter is set in ``__init__`` and only stored there;
    ``fit(X, y, X_val, y_val)`` learns the attributes ending in ``_``.

    Parameters
    ----------
    config : ClassifierConfig, optional
        Architecture and training hyperparameters (default ``ClassifierConfig.preset("cpu")``).
    class_weight : bool
        Weight positives by ``n_neg / n_pos`` in the training loss.
    random_state : int
        Seeds initialisation, dropout (in a forked RNG: the global state is restored) and the
        batch order (a ``torch.Generator``); the same seed gives the same model.
    device : str or torch.device
        "cpu", "cuda" or "auto".
    progress : bool
        Show a tqdm bar over epochs.

    Attributes
    ----------
    module_ : torch.nn.Module
        The network with the best-validation weights, in eval mode, on the fit device; maps
        (B, T, F) to (B,) logits and is twice differentiable (used by the influence guidance).
    history_ : dict of list of float
        Per epoch: ``train_loss`` (mean training loss), ``val_auprc``, ``val_auroc``.
    best_epoch_ : int
        Index into ``history_`` lists of the chosen epoch (the first best validation AUPRC).
    pos_weight_ : float
        The positive-class weight used in training (1.0 unless ``class_weight``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 12, 3)).astype("float32"); y = (X[:, :, 0].mean(1) > 0).astype(int)
    >>> clf = TimeSeriesClassifier(ClassifierConfig.preset("smoke", "cnn")).fit(X[:150], y[:150], X[150:], y[150:])
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, config: ClassifierConfig | None = None, *, class_weight: bool = False,
                 random_state: int = 0, device="cpu", progress: bool = False) -> None:
        self.config = config
        self.class_weight = class_weight
        self.random_state = random_state
        self.device = device
        self.progress = progress

    def fit(self, X, y, X_val=None, y_val=None) -> "TimeSeriesClassifier":
        """Train with AdamW; keep the epoch with the best validation AUPRC.

        Parameters
        ----------
        X : float array (N, T, F); y : int array (N,) in {0, 1}
            Training data (already imputed and standardised).
        X_val, y_val : arrays, optional
            Validation data for early stopping and checkpoint choice. When omitted, a
            stratified 10% of the training data (seeded by ``random_state``) is held out.

        Returns
        -------
        self
        """
        cfg = self.config if self.config is not None else ClassifierConfig.preset("cpu")
        if not isinstance(cfg, ClassifierConfig):
            raise ParameterError(f"config must be a ClassifierConfig or None, got {type(cfg).__name__}")
        seed = int(self.random_state)
        X, y = _check_xy(X, y, "X")
        if X_val is None:
            if y_val is not None:
                raise ParameterError("y_val was given without X_val; pass both or neither")
            X, y, X_val, y_val = _holdout(X, y, seed)
        X_val, y_val = _check_xy(X_val, y_val, "X_val")
        if X_val.shape[2] != X.shape[2]:
            raise DataError(f"X_val has {X_val.shape[2]} features but X has {X.shape[2]}; use the same features")
        _check_two_classes(y, "the training labels")
        _check_two_classes(y_val, "the validation labels")
        device = resolve_device(self.device)
        n_pos = int(y.sum())
        self.pos_weight_ = (len(y) - n_pos) / n_pos if self.class_weight else 1.0
        pos_weight = torch.tensor(self.pos_weight_, dtype=torch.float32, device=device)

        with seeded_global_rng(seed, device):  # seeds init and dropout; the global state is restored afterwards
            module = build_network(cfg, X.shape[2]).to(device)
            optimiser = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            generator = torch_generator(seed)
            Xt = torch.from_numpy(X)
            yt = torch.from_numpy(y)
            history = {"train_loss": [], "val_auprc": [], "val_auroc": []}
            best_auprc, best_epoch, best_state, stale = -np.inf, -1, None, 0
            bar = tqdm(range(cfg.epochs), desc=f"fit {cfg.arch}", disable=not self.progress, leave=False)
            for epoch in bar:
                module.train()
                order = torch.randperm(len(Xt), generator=generator)
                total, count = 0.0, 0
                with _fast_kernels(module):
                    for start in range(0, len(order), cfg.batch_size):
                        idx = order[start:start + cfg.batch_size]
                        xb, yb = Xt[idx].to(device), yt[idx].to(device)
                        loss = per_sample_loss(module(xb), yb, pos_weight=pos_weight).mean()
                        optimiser.zero_grad(set_to_none=True)
                        loss.backward()
                        if cfg.grad_clip > 0:
                            nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                        optimiser.step()
                        total += float(loss.detach()) * len(idx)
                        count += len(idx)
                scores = _predict_logits(module, X_val, max(cfg.batch_size, 256), device)
                auprc = float(average_precision_score(y_val, scores))
                history["train_loss"].append(total / count)
                history["val_auprc"].append(auprc)
                history["val_auroc"].append(float(roc_auc_score(y_val, scores)))
                bar.set_postfix(loss=f"{total / count:.4f}", val_auprc=f"{auprc:.4f}")
                if auprc > best_auprc:
                    best_auprc, best_epoch, stale = auprc, epoch, 0
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        break
        module.load_state_dict(best_state)
        module.eval()
        for p in module.parameters():
            p.grad = None
        self.module_ = module
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.best_val_auprc_ = best_auprc
        self.n_features_ = X.shape[2]
        self.device_ = device
        self.config_ = cfg
        self.classes_ = np.array([0, 1])
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise ParameterError("this classifier is not fitted yet; call fit(X, y, X_val, y_val) first")

    def decision_function(self, X) -> np.ndarray:
        """Logits (float64, shape (N,)) of the fitted network in eval mode."""
        self._check_fitted()
        X, _ = _check_xy(X, np.zeros(len(X), dtype=np.int64), "X")
        if X.shape[2] != self.n_features_:
            raise DataError(f"X has {X.shape[2]} features but the classifier was fitted on {self.n_features_}")
        return _predict_logits(self.module_, X, max(self.config_.batch_size, 256), self.device_)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (N, 2), columns (P(y=0), P(y=1)); rows sum to 1."""
        p = _sigmoid(self.decision_function(X))
        return np.stack([1.0 - p, p], axis=1)

    def predict(self, X, threshold: float = 0.5) -> np.ndarray:
        """Hard labels at ``threshold`` on P(y=1)."""
        return (self.predict_proba(X)[:, 1] >= threshold).astype(np.int64)


def save_classifier(clf: TimeSeriesClassifier, path) -> None:
    """Store a fitted :class:`TimeSeriesClassifier` (weights, config, what ``fit`` learned), atomically.

    The file gets a SHA-256 sidecar (``path + ".sha256"``, see
    :func:`~tardiff.data.checkpoints.save_checkpoint`) that :func:`load_classifier` checks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5, 2)).astype("float32"); y = np.arange(60) % 2
    >>> clf = TimeSeriesClassifier(ClassifierConfig.preset("smoke", "cnn")).fit(X, y, X, y)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clf.pt"
    >>> save_classifier(clf, path)
    >>> np.allclose(load_classifier(path).predict_proba(X), clf.predict_proba(X))
    True
    """
    from dataclasses import asdict

    from tardiff.data.checkpoints import save_checkpoint

    if not hasattr(clf, "module_"):
        raise ParameterError("only a fitted classifier can be saved; call fit first")
    state = {
        "params": {k: v for k, v in clf.get_params().items() if k not in ("config", "device")},
        "config": asdict(clf.config_), "state_dict": {k: v.cpu() for k, v in clf.module_.state_dict().items()},
        "fitted": {"history_": clf.history_, "best_epoch_": clf.best_epoch_, "best_val_auprc_": clf.best_val_auprc_,
                   "n_features_": clf.n_features_, "pos_weight_": clf.pos_weight_},
    }
    save_checkpoint(path, state)


def load_classifier(path, device="cpu", *, if_damaged: Literal["raise", "none"] = "raise") -> TimeSeriesClassifier | None:
    """The classifier written by :func:`save_classifier`, on ``device``, in eval mode, verified.

    Parameters
    ----------
    path : path
        The ``.pt`` file; its ``.sha256`` sidecar must match it.
    device : str or torch.device
    if_damaged : {"raise", "none"}
        A file that is missing, truncated, edited or lacks its sidecar: "raise" (default) gives a
        one-line :class:`~tardiff.errors.DataError`; "none" (for a cache, which rebuilds it)
        returns None with a :class:`~tardiff.data.cache.CacheWarning` and deletes the file.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     print(load_classifier("no/such/clf.pt", if_damaged="none"))
    None
    """
    from tardiff.data.checkpoints import CHECKPOINT_ERRORS, load_checkpoint, read_checkpoint

    if if_damaged not in ("raise", "none"):
        raise ParameterError(f"if_damaged must be 'raise' or 'none'; got {if_damaged!r}")
    if if_damaged == "none":
        state = load_checkpoint(path, map_location="cpu")
        if state is None:
            return None
    else:
        state = read_checkpoint(path, map_location="cpu")
    try:
        config = ClassifierConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
        device = resolve_device(device)
        clf = TimeSeriesClassifier(config, device=device, **state["params"])
        module = build_network(config, state["fitted"]["n_features_"])
        module.load_state_dict(state["state_dict"])
    except (*CHECKPOINT_ERRORS, AttributeError) as exc:  # verified, but not a classifier of this version
        if if_damaged == "none":
            from tardiff.data.cache import CacheWarning

            warnings.warn(f"ignoring cached classifier {path} ({type(exc).__name__}: {exc}); it is rebuilt",
                          CacheWarning, stacklevel=2)
            return None
        raise DataError(f"{path} is not a classifier written by save_classifier ({type(exc).__name__}: {exc}); "
                        "train it again") from None
    clf.module_ = module.to(device).eval()
    for name, value in state["fitted"].items():
        setattr(clf, name, value)
    clf.config_, clf.device_, clf.classes_ = config, device, np.array([0, 1])
    return clf


def _holdout(X: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.model_selection import train_test_split

    _check_two_classes(y, "the training labels")
    if np.bincount(y, minlength=2).min() < 4:
        raise DataError("too few samples of a class to hold out a validation split; pass X_val and y_val")
    tr, va = train_test_split(np.arange(len(y)), test_size=0.1, stratify=y, random_state=seed)
    return X[tr], y[tr], X[va], y[va]
