"""Testing TarDiff's first-order claim: the actual change of the guidance loss after one SGD step.

The influence score predicts ``L_g(phi - lr * grad_phi l(x, y)) - L_g(phi) ~= -lr * s(x, y)``
(:mod:`tardiff.guidance`). :func:`loss_change_after_step` measures the left side exactly, one
candidate at a time, so the tutorials and tests can check the prediction against it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tardiff.classifiers import per_sample_loss
from tardiff.errors import ParameterError
from tardiff.guidance import (  # noqa: F401  (guidance_vector, influence_scores: the doctest)
    _as_batch, _eval_mode, _module_device_dtype, guidance_vector, influence_scores, trainable_parameters,
)


def loss_change_after_step(module: nn.Module, X_cand, y_cand, X_guid, y_guid, *, lr: float,
                           batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """The actual change of the mean guidance loss after one SGD step on each candidate alone.

    For every candidate ``(x_i, y_i)`` this takes one plain SGD step from the module's
    current weights, ``phi_i = phi - lr * grad_phi l(f_phi(x_i), y_i)``, evaluates the mean
    guidance loss ``L_g(phi_i)`` and restores ``phi``. It returns ``L_g(phi_i) - L_g(phi)``.
    The first-order (identity-Hessian, TracIn-style) theory behind TarDiff's score predicts
    ``L_g(phi_i) - L_g(phi) ~= -lr * s(x_i, y_i)`` with ``s = G . grad_phi l`` from
    :func:`influence_scores`; the error is of order ``lr ** 2`` (the curvature of ``L_g``
    along the step), so the two agree for small ``lr`` and part ways for large ones.

    Everything runs in eval mode (as the scores are computed) and the weights and the
    train/eval mode are restored afterwards, also when an error interrupts the loop. The
    losses are summed in float64, but a float32 module still rounds each per-sample loss
    to about 1e-7 relative; for very small ``lr`` compare on a float64 copy
    (``copy.deepcopy(module).double()``).

    Parameters
    ----------
    module : torch.nn.Module
        The classifier, (B, T, F) -> (B,) logits; its trainable parameters take the step.
    X_cand, y_cand : arrays or tensors of shape (N, T, F) and (N,)
        The candidates, each stepped on alone.
    X_guid, y_guid : arrays or tensors of shape (M, T, F) and (M,)
        The guidance set whose mean loss is measured (the set ``G`` averages over).
    lr : float
        The SGD learning rate (> 0).
    batch_size : int
        Guidance samples per forward pass.
    progress : bool
        Show a tqdm bar over the candidates.

    Returns
    -------
    numpy.ndarray
        float64 array of shape (N,): the change of the mean guidance loss per candidate
        (negative: the step on that candidate lowered the guidance loss).

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(6, 1), nn.Flatten(0)).double()
    >>> gen = torch.Generator().manual_seed(0)
    >>> X, y = torch.randn(4, 3, 2, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 0, 1])
    >>> G = guidance_vector(net, X, y)
    >>> actual = loss_change_after_step(net, X, y, X, y, lr=1e-4)
    >>> bool(np.allclose(actual, -1e-4 * influence_scores(net, G, X, y), rtol=1e-2, atol=1e-9))
    True
    """
    lr = float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ParameterError(f"lr must be a positive finite number, got {lr}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}")
    device, dtype = _module_device_dtype(module)
    Xc, yc = _as_batch(X_cand, y_cand, dtype)
    Xg, yg = _as_batch(X_guid, y_guid, dtype)
    params = trainable_parameters(module)
    saved = {name: p.detach().clone() for name, p in params.items()}

    def mean_guidance_loss() -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, len(Xg), batch_size):
            xb, yb = Xg[start:start + batch_size].to(device), yg[start:start + batch_size].to(device)
            total += per_sample_loss(module(xb), yb).double().sum()
        return total / len(Xg)

    def restore() -> None:
        for name, p in params.items():
            p.copy_(saved[name])

    changes = np.empty(len(Xc), dtype=np.float64)
    with _eval_mode(module):
        try:
            with torch.no_grad():
                before = mean_guidance_loss()
            for i in tqdm(range(len(Xc)), desc="one-step retraining", disable=not progress, leave=False):
                with torch.enable_grad():
                    loss_i = per_sample_loss(module(Xc[i:i + 1].to(device)), yc[i:i + 1].to(device)).sum()
                    grads = torch.autograd.grad(loss_i, list(params.values()), allow_unused=True)
                with torch.no_grad():
                    for p, g in zip(params.values(), grads):
                        if g is not None:
                            p.sub_(lr * g)  # plain SGD on the candidate alone: phi_i = phi - lr * grad l_i
                    changes[i] = float(mean_guidance_loss() - before)
                    restore()
        finally:
            with torch.no_grad():
                restore()
    return changes


