"""Fidelity of synthetic time series: how closely they resemble the real ones.

Real and synthetic arrays have shape (N, T, F) and live in the same (standardised)
space. The metrics are the ones the field reports since TimeGAN (Yoon et al., NeurIPS
2019): the post-hoc discriminative score, the predictive score, per-feature marginal
Wasserstein distances, the autocorrelation difference, and 2-D PCA / t-SNE embeddings for
pictures. Lower is better for every number here (0 for indistinguishable sets).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import wasserstein_distance
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm import tqdm

from tardiff.errors import DataError, ParameterError
from tardiff.presets import resolve_device, torch_generator

__all__ = [
    "autocorrelation_difference",
    "discriminative_score",
    "embed_2d",
    "marginal_wasserstein",
    "predictive_score",
]


# ----------------------------------------------------------------------------- checks
def _as_sequences(x, name: str, *, finite: bool = True) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 3:
        raise DataError(
            f"{name} must have shape (N, T, F), got {arr.shape}; reshape (N, F) data to (N, 1, F)"
        )
    if len(arr) == 0:
        raise DataError(f"{name} is empty; pass at least one sequence")
    if finite and not np.isfinite(arr).all():
        raise DataError(f"{name} contains NaN or infinite values; impute or drop them before computing fidelity")
    return arr


def _check_pair(real: np.ndarray, synth: np.ndarray) -> None:
    if real.shape[1:] != synth.shape[1:]:
        raise DataError(
            f"real and synthetic sequences differ in (T, F): {real.shape[1:]} vs {synth.shape[1:]}; "
            "generate synthetic data with the real data's shape"
        )


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(rng.choice(len(x), size=n, replace=False))]


# ----------------------------------------------------------------------------- post-hoc GRUs
class _PostHocGRU(nn.Module):
    """A one-layer GRU with a linear read-out, either of the last state or of every step."""

    def __init__(self, n_features: int, hidden: int, n_out: int, per_step: bool, device=None):
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, batch_first=True, device=device)
        self.head = nn.Linear(hidden, n_out, device=device)
        self.per_step = per_step

    def reset_parameters(self, generator: torch.Generator) -> None:
        # PyTorch's default GRU initialisation, U(-1/sqrt(hidden), 1/sqrt(hidden)), drawn
        # from an explicit generator so the result does not depend on global RNG state.
        bound = 1.0 / math.sqrt(self.gru.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.gru(x)
        return self.head(out) if self.per_step else self.head(h[-1]).squeeze(-1)


def _build(n_features: int, hidden: int, n_out: int, per_step: bool, seed: int, device: torch.device):
    generator = torch_generator(seed)
    # skip_init avoids drawing the default initialisation from the global RNG.
    model = nn.utils.skip_init(_PostHocGRU, n_features, hidden, n_out, per_step)
    model.reset_parameters(generator)
    return model.to(device), generator


def _train(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    progress: bool,
    desc: str,
) -> None:
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(inputs)
    for _ in tqdm(range(int(epochs)), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator).to(inputs.device)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs[idx]), targets[idx])
            loss.backward()
            optimiser.step()
    model.eval()


def _check_training(epochs: int, batch_size: int, lr: float, hidden: int | None) -> None:
    if int(epochs) < 1:
        raise ParameterError(f"epochs must be at least 1, got {epochs}")
    if int(batch_size) < 1:
        raise ParameterError(f"batch_size must be at least 1, got {batch_size}")
    if not float(lr) > 0:
        raise ParameterError(f"lr must be positive, got {lr}")
    if hidden is not None and int(hidden) < 1:
        raise ParameterError(f"hidden must be a positive number of units, got {hidden}")


def discriminative_score(
    real,
    synth,
    *,
    seed: int = 0,
    epochs: int = 20,
    hidden: int | None = None,
    batch_size: int = 64,
    lr: float = 5e-3,
    max_samples: int | None = 2000,
    test_fraction: float = 0.2,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> float:
    """Post-hoc discriminative score, ``|test accuracy - 0.5|`` (Yoon et al. 2019).

    Equal numbers of real and synthetic sequences (the smaller set's size, capped at
    ``max_samples``) are labelled 1 (real) and 0 (synthetic) and split 80/20, stratified;
    a one-layer GRU trained on the 80% to tell them apart is scored on the 20%. A score
    near 0 means the sets cannot be told apart; 0.5 means they are perfectly separable.
    Synthetic records that copy real ones can push the test accuracy below 0.5 (the GRU
    memorises a record under one label and meets its twin under the other), so a small
    non-zero score does not rule out copying: check the privacy metrics as well.

    Parameters
    ----------
    real, synth : arrays of shape (N, T, F) and (M, T, F)
        Sequences in the same (standardised) space, without NaN.
    seed : int
        Seed of subsampling, split, initialisation and batch order.
    epochs, batch_size, lr : training length, mini-batch size and Adam learning rate.
    hidden : int, optional
        GRU width; default ``max(8, F // 2)`` (TimeGAN uses half the feature count).
    max_samples : int or None
        Cap on the sequences used from each set (None: no cap).
    test_fraction : float
        Share of the balanced set held out for the accuracy.
    device : str or torch.device
        Where the GRU trains.
    progress : bool
        Show a progress bar over epochs.

    Returns
    -------
    float
        In [0, 0.5]; lower is better.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(300, 8, 2)).astype("float32")
    >>> discriminative_score(a, a + 3.0, epochs=5) > 0.3
    True
    """
    _check_training(epochs, batch_size, lr, hidden)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ParameterError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    real = _as_sequences(real, "real")
    synth = _as_sequences(synth, "synth")
    _check_pair(real, synth)
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synth), int(max_samples) if max_samples else len(real))
    n_test = int(round(n * float(test_fraction)))
    if n_test < 1 or n - n_test < 1:
        raise DataError(f"need at least 2 sequences in each set for a train/test split, got {n}")
    real = _subsample(real, n, rng)
    synth = _subsample(synth, n, rng)
    # Stratified split: the same number of real and synthetic sequences in the test part,
    # so that a constant prediction scores exactly 0.5 accuracy.
    perm_r, perm_s = rng.permutation(n), rng.permutation(n)
    test_x = np.concatenate([real[perm_r[:n_test]], synth[perm_s[:n_test]]])
    train_x = np.concatenate([real[perm_r[n_test:]], synth[perm_s[n_test:]]])
    test_y = np.r_[np.ones(n_test), np.zeros(n_test)].astype(np.float32)
    train_y = np.r_[np.ones(n - n_test), np.zeros(n - n_test)].astype(np.float32)

    device = resolve_device(device)
    n_features = real.shape[2]
    width = int(hidden) if hidden is not None else max(8, n_features // 2)
    model, generator = _build(n_features, width, 1, False, seed, device)
    _train(
        model,
        torch.from_numpy(train_x).to(device),
        torch.from_numpy(train_y).to(device),
        nn.functional.binary_cross_entropy_with_logits,
        epochs=epochs,
        batch_size=int(batch_size),
        lr=float(lr),
        generator=generator,
        progress=progress,
        desc="discriminative GRU",
    )
    with torch.no_grad():
        logits = model(torch.from_numpy(test_x).to(device)).cpu().numpy()
    accuracy = float(((logits > 0).astype(np.float32) == test_y).mean())
    return abs(accuracy - 0.5)


def predictive_score(
    train_seq,
    test_seq,
    *,
    seed: int = 0,
    epochs: int = 20,
    hidden: int | None = None,
    batch_size: int = 64,
    lr: float = 5e-3,
    max_samples: int | None = 5000,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> float:
    """Predictive score: next-step mean absolute error on real data (Yoon et al. 2019).

    A one-layer GRU is trained on ``train_seq`` (synthetic data for train-on-synthetic,
    real training data for the train-on-real reference) to predict every feature at step
    ``t + 1`` from steps ``1..t``, with an L1 loss; the score is its MAE on the real
    ``test_seq`` over all predicted steps and features. Compare a synthetic set's score
    with the train-on-real reference; lower is better.

    Parameters
    ----------
    train_seq : array of shape (N, T, F)
        Sequences the predictor learns from.
    test_seq : array of shape (M, T, F)
        Real held-out sequences it is scored on.
    seed : int
        Seed of subsampling, initialisation and batch order.
    epochs, batch_size, lr : training length, mini-batch size and Adam learning rate.
    hidden : int, optional
        GRU width; default ``max(8, F // 2)``.
    max_samples : int or None
        Cap on the training sequences used (None: no cap).
    device : str or torch.device
        Where the GRU trains.
    progress : bool
        Show a progress bar over epochs.

    Returns
    -------
    float
        Mean absolute error of the next-step prediction on ``test_seq``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.cumsum(rng.normal(size=(200, 10, 2)), axis=1).astype("float32")
    >>> predictive_score(x[:150], x[150:], epochs=3) > 0
    True
    """
    _check_training(epochs, batch_size, lr, hidden)
    train_seq = _as_sequences(train_seq, "train_seq")
    test_seq = _as_sequences(test_seq, "test_seq")
    _check_pair(train_seq, test_seq)
    if train_seq.shape[1] < 2:
        raise DataError("predictive_score needs sequences of at least 2 time steps")
    rng = np.random.default_rng(seed)
    if max_samples:
        train_seq = _subsample(train_seq, int(max_samples), rng)
    device = resolve_device(device)
    n_features = train_seq.shape[2]
    width = int(hidden) if hidden is not None else max(8, n_features // 2)
    model, generator = _build(n_features, width, n_features, True, seed, device)
    train_t = torch.from_numpy(train_seq).to(device)
    _train(
        model,
        train_t[:, :-1],
        train_t[:, 1:],
        nn.functional.l1_loss,
        epochs=epochs,
        batch_size=int(batch_size),
        lr=float(lr),
        generator=generator,
        progress=progress,
        desc="predictive GRU",
    )
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(test_seq), 1024):
            batch = torch.from_numpy(test_seq[start : start + 1024]).to(device)
            err = (model(batch[:, :-1]) - batch[:, 1:]).abs()
            total += float(err.sum())
            count += err.numel()
    return total / count


# ----------------------------------------------------------------------------- statistics
def marginal_wasserstein(real, synth, features: Sequence[str] | None = None) -> pd.Series:
    """Per-feature 1-D Wasserstein distance between real and synthetic values.

    Each feature's values are pooled over all sequences and time steps; NaN values (for
    example masked, unimputed measurements) are dropped per feature.

    Parameters
    ----------
    real, synth : arrays of shape (N, T, F) and (M, T, F)
    features : list of str, optional
        Feature names for the index; default ``feature_0 .. feature_{F-1}``.

    Returns
    -------
    Series
        Indexed by feature, named ``wasserstein``; 0 for identical marginals, and ``|c|``
        when the synthetic values are the real ones shifted by ``c``.

    Examples
    --------
    >>> x = np.zeros((4, 3, 2), dtype="float32")
    >>> marginal_wasserstein(x, x + 1.5, features=["hr", "rr"]).tolist()
    [1.5, 1.5]
    """
    real = _as_sequences(real, "real", finite=False)
    synth = _as_sequences(synth, "synth", finite=False)
    _check_pair(real, synth)
    n_features = real.shape[2]
    names = list(features) if features is not None else [f"feature_{j}" for j in range(n_features)]
    if len(names) != n_features:
        raise ParameterError(f"features names {len(names)} columns but the data have {n_features}")
    values = []
    for j in range(n_features):
        a = real[:, :, j].ravel().astype(np.float64)
        b = synth[:, :, j].ravel().astype(np.float64)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        values.append(float(wasserstein_distance(a, b)) if len(a) and len(b) else math.nan)
    return pd.Series(values, index=pd.Index(names, name="feature"), name="wasserstein")


def _mean_acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation at lags 1..max_lag per feature, averaged over sequences: (max_lag, F)."""
    xc = x.astype(np.float64) - x.mean(axis=1, keepdims=True, dtype=np.float64)
    denom = (xc**2).sum(axis=1)  # (N, F)
    out = np.empty((max_lag, x.shape[2]))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-constant features give NaN
        for k in range(1, max_lag + 1):
            num = (xc[:, k:, :] * xc[:, :-k, :]).sum(axis=1)
            r = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)
            out[k - 1] = np.nanmean(r, axis=0)
    return out


def autocorrelation_difference(real, synth, max_lag: int | None = 10) -> float:
    """Mean absolute difference between real and synthetic autocorrelation functions.

    For each sequence and feature the sample autocorrelation
    ``r_k = sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2`` is computed at lags
    ``1..max_lag``, averaged over the sequences of each set, and the absolute difference
    is averaged over lags and features. Constant sequences are left out of the averages.

    Parameters
    ----------
    real, synth : arrays of shape (N, T, F) and (M, T, F)
    max_lag : int or None
        Largest lag, capped at ``T - 1`` (None: ``T - 1``).

    Returns
    -------
    float
        0 for identical sets; at most 2.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 12, 2))
    >>> autocorrelation_difference(x, x)
    0.0
    """
    real = _as_sequences(real, "real")
    synth = _as_sequences(synth, "synth")
    _check_pair(real, synth)
    n_steps = real.shape[1]
    if n_steps < 2:
        raise DataError("autocorrelation needs sequences of at least 2 time steps")
    if max_lag is not None and int(max_lag) < 1:
        raise ParameterError(f"max_lag must be at least 1, got {max_lag}")
    lag = n_steps - 1 if max_lag is None else min(int(max_lag), n_steps - 1)
    diff = np.abs(_mean_acf(real, lag) - _mean_acf(synth, lag))
    if not np.isfinite(diff).any():
        return math.nan
    return float(np.nanmean(diff))


# ----------------------------------------------------------------------------- pictures
def embed_2d(
    real,
    synth,
    method: Literal["pca", "tsne"] = "pca",
    random_state: int = 0,
    max_samples: int | None = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D embeddings of flattened real and synthetic sequences, for scatter plots.

    PCA is fitted on the real sequences (flattened to T*F) and applied to both; t-SNE is
    fitted on both sets jointly, on one thread (with torch loaded, competing OpenMP
    runtimes make multi-threaded t-SNE slower). Each set is first subsampled to
    ``max_samples`` rows.

    Parameters
    ----------
    real, synth : arrays of shape (N, T, F) and (M, T, F)
    method : {"pca", "tsne"}
    random_state : int
        Seed of subsampling and of the embedding.
    max_samples : int or None
        Cap on the rows used from each set (None: no cap; t-SNE is slow beyond a few thousand).

    Returns
    -------
    (emb_real, emb_synth) : arrays of shape (n_real, 2) and (n_synth, 2)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> er, es = embed_2d(rng.normal(size=(30, 4, 2)), rng.normal(size=(20, 4, 2)))
    >>> er.shape, es.shape
    ((30, 2), (20, 2))
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if method not in ("pca", "tsne"):
        raise ParameterError(f"method must be 'pca' or 'tsne', got {method!r}")
    real = _as_sequences(real, "real")
    synth = _as_sequences(synth, "synth")
    _check_pair(real, synth)
    rng = np.random.default_rng(random_state)
    if max_samples:
        real = _subsample(real, int(max_samples), rng)
        synth = _subsample(synth, int(max_samples), rng)
    flat_r = real.reshape(len(real), -1).astype(np.float64)
    flat_s = synth.reshape(len(synth), -1).astype(np.float64)
    if method == "pca":
        if len(flat_r) < 2 or flat_r.shape[1] < 2:
            raise DataError("PCA to 2 components needs at least 2 real sequences of at least 2 values each")
        pca = PCA(n_components=2, random_state=random_state).fit(flat_r)
        return pca.transform(flat_r), pca.transform(flat_s)
    joint = np.concatenate([flat_r, flat_s])
    if len(joint) < 5:
        raise DataError("t-SNE needs at least 5 sequences in all")
    perplexity = float(min(30.0, (len(joint) - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
    # One thread: with torch loaded, two OpenMP runtimes compete and make t-SNE ~10x slower.
    with threadpool_limits(limits=1):
        emb = tsne.fit_transform(joint)
    return emb[: len(flat_r)], emb[len(flat_r) :]
