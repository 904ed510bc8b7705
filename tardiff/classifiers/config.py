"""Classifier configuration and input checks: :class:`ClassifierConfig` and the (N, T, F) / label checks.

The one place that says which hyperparameters a neural classifier has, their defaults per
scale (:func:`tardiff.presets.sizes`) and which values are allowed; every other module of
:mod:`tardiff.classifiers` reads them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from tardiff.errors import DataError, ParameterError
from tardiff.presets import Scale, sizes

__all__ = ["Arch", "ClassifierConfig", "Pooling"]

Arch = Literal["gru", "cnn", "transformer"]
Pooling = Literal["last", "mean"]


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _check_xy(X, y, name: str = "X", allow_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    if X.ndim != 3:
        raise DataError(f"{name} must have shape (N, T, F), got shape {X.shape}; reshape your series to (batch, time, features)")
    X = X.astype(np.float32, copy=False)
    if not allow_nan and not np.isfinite(X).all():
        raise DataError(f"{name} contains NaN or infinite values; impute first (tardiff.data.prepare.prepare does)")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise DataError(f"labels for {name} must have shape ({X.shape[0]},), got {y.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise DataError(f"labels for {name} must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
    return X, y.astype(np.int64)


def _check_two_classes(y: np.ndarray, name: str) -> None:
    counts = np.bincount(y, minlength=2)
    if counts.min() == 0:
        raise DataError(f"{name} holds only one class (counts {counts.tolist()}); it needs both labels")


# --------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------


@dataclass
class ClassifierConfig:
    """Hyperparameters of a neural time-series classifier.

    Parameters
    ----------
    arch : {"gru", "cnn", "transformer"}
        Network family.
    hidden : int
        GRU hidden size per direction, CNN channels, or transformer width.
    layers : int
        GRU layers, convolution blocks, or encoder blocks.
    dropout : float
        Dropout probability (between GRU layers and before the head).
    epochs : int
        Maximum number of passes over the training set.
    batch_size : int
        Mini-batch size.
    lr, weight_decay : float
        AdamW learning rate and decoupled weight decay.
    patience : int
        Stop after this many epochs without a better validation AUPRC.
    grad_clip : float
        Clip the global gradient norm to this value (0 disables).
    bidirectional : bool
        GRU only: run the recurrence both ways.
    pooling : {"last", "mean"}
        GRU only: final hidden states of both directions, or the mean over time.
    kernel_size : int
        CNN only: odd temporal kernel size (dilation doubles per block).
    heads : int
        Transformer only: attention heads (must divide ``hidden``).

    Examples
    --------
    >>> ClassifierConfig.preset("cpu", "cnn").layers
    3
    """

    arch: Arch = "gru"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    grad_clip: float = 1.0
    bidirectional: bool = True
    pooling: Pooling = "last"
    kernel_size: int = 5
    heads: int = 4

    def __post_init__(self) -> None:
        if self.arch not in get_args(Arch):
            raise ParameterError(f"arch must be one of {get_args(Arch)}, got {self.arch!r}")
        if self.pooling not in get_args(Pooling):
            raise ParameterError(f"pooling must be one of {get_args(Pooling)}, got {self.pooling!r}")
        for name in ("hidden", "layers", "epochs", "batch_size", "heads"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value!r}")
        if self.patience < 1:
            raise ParameterError(f"patience must be a positive integer, got {self.patience!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ParameterError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ParameterError("lr must be > 0 and weight_decay, grad_clip >= 0; fix the ClassifierConfig")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ParameterError(f"kernel_size must be a positive odd integer, got {self.kernel_size!r}")
        if self.arch == "transformer" and self.hidden % self.heads:
            raise ParameterError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads}) for the transformer")

    @classmethod
    def preset(cls, scale: Scale, arch: Arch = "gru", **overrides) -> "ClassifierConfig":
        """The sizes of ``arch`` at ``scale`` (:func:`tardiff.presets.sizes`), with ``overrides``.

        At paper scale the GRU is the public TarDiff code's guidance classifier (hidden 256,
        2 layers, dropout 0.2); cpu sizes train in seconds to a minute on one core.
        """
        return cls(arch=arch, **{**sizes("classifier", scale, arch), **overrides})
