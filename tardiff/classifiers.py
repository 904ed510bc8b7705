"""Downstream classifiers: the guidance GRU, a second architecture, and a GBM on summaries.

Three kinds of model map a multivariate series ``x`` of shape (T, F) to the probability of
the positive class:

* :class:`TimeSeriesClassifier` with ``arch="gru"``: the guidance classifier of the TarDiff
  public code (a 2-layer bidirectional GRU, hidden 256, dropout 0.2). Its recurrence is
  written from matrix products over the time steps (:class:`CellGRU`), so the network is
  twice differentiable on CPU *and* CUDA (cuDNN's fused RNN kernels have no double backward,
  which influence guidance needs). The fused kernel is used only where no second derivative
  is ever taken: training and prediction inside this module.
* ``arch="cnn"`` (dilated temporal convolutions, global mean+max pooling) and
  ``arch="transformer"`` (a small pre-norm encoder with explicit attention): different
  architectures, so that a method is never judged only by the model that guided it.
* :class:`SummaryGBMClassifier`: scikit-learn's HistGradientBoosting on per-feature
  summaries (mean, min, max, last, std, slope), the evaluator many clinical teams would use.

All are scikit-learn estimators (``random_state``, ``class_weight`` and, for the neural ones,
``device`` set in ``__init__``) with ``fit(X, y, X_val, y_val)`` and ``predict_proba(X) ->
(N, 2)``; they choose their checkpoint (or iteration count) by validation AUPRC, never accuracy.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from dataclasses import dataclass, fields
from typing import Iterator, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn
from tqdm import tqdm

from tardiff.errors import DataError, ParameterError
from tardiff.presets import Scale, check_scale, resolve_device, seeded_global_rng, sizes, torch_generator

__all__ = [
    "ClassifierConfig",
    "TimeSeriesClassifier",
    "SummaryGBMClassifier",
    "CellGRU",
    "GRUNet",
    "CNNNet",
    "TransformerNet",
    "build_network",
    "load_classifier",
    "make_classifier",
    "per_sample_loss",
    "save_classifier",
    "summary_features",
]

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


# --------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------


class CellGRU(nn.GRU):
    """A batch-first ``torch.nn.GRU`` whose forward pass is written from matrix products.

    The parameters, their names and their initialisation are those of :class:`torch.nn.GRU`
    (``weight_ih_l0``, ``weight_hh_l0_reverse``, ...), so ``load_state_dict`` moves weights
    both ways. The default forward loops over the time steps with plain matrix products
    (gates ordered r, z, n as in PyTorch), which is twice differentiable on every device,
    unlike cuDNN's fused RNN. Inside :meth:`fused` the parent's fused kernel runs instead
    (faster; use it only where no double backward is taken).

    Examples
    --------
    >>> gru = CellGRU(7, 16, num_layers=2, bidirectional=True)
    >>> out, h_n = gru(torch.zeros(4, 24, 7))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((4, 24, 32), (4, 4, 16))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=True, batch_first=True,
                         dropout=dropout, bidirectional=bidirectional)
        self.use_fused = False

    @contextlib.contextmanager
    def fused(self) -> Iterator[None]:
        """Temporarily use PyTorch's fused GRU kernel (not twice differentiable on CUDA)."""
        previous, self.use_fused = self.use_fused, True
        try:
            yield
        finally:
            self.use_fused = previous

    def forward(self, x: torch.Tensor, hx: torch.Tensor | None = None):  # noqa: D401
        """Run the GRU on ``x`` of shape (B, T, input_size).

        Returns ``(output, h_n)`` exactly as ``torch.nn.GRU(batch_first=True)``: output of shape
        (B, T, D*H) and h_n of shape (layers*D, B, H), with D = 2 if bidirectional.
        """
        if self.use_fused:
            return super().forward(x, hx)
        if x.dim() != 3:
            raise ValueError(f"CellGRU expects (B, T, F) input, got shape {tuple(x.shape)}")
        n_dir = 2 if self.bidirectional else 1
        batch, steps, _ = x.shape
        hidden = self.hidden_size
        finals = []
        layer_input = x
        for layer in range(self.num_layers):
            suffixes = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if n_dir == 2 else [])
            w_ih = torch.stack([getattr(self, "weight_ih" + s) for s in suffixes])  # (D, 3H, In)
            w_hh = torch.stack([getattr(self, "weight_hh" + s) for s in suffixes])  # (D, 3H, H)
            b_ih = torch.stack([getattr(self, "bias_ih" + s) for s in suffixes])  # (D, 3H)
            b_hh = torch.stack([getattr(self, "bias_hh" + s) for s in suffixes])
            # input projections for all steps at once: (D, B, T, 3H); the reverse direction
            # reads the series backwards, so flip its time axis once here
            gi = torch.einsum("bti,dgi->dbtg", layer_input, w_ih) + b_ih[:, None, None, :]
            if n_dir == 2:
                gi = torch.stack([gi[0], gi[1].flip(1)])
            if hx is None:
                h = layer_input.new_zeros((n_dir, batch, hidden))
            else:
                h = hx[layer * n_dir:(layer + 1) * n_dir]
            outs = []
            # unbind once: indexing gi per step would make autograd build a full-size zero
            # gradient for every step (quadratic in T)
            for gi_t in gi.unbind(2):  # gi_t: (D, B, 3H)
                gh = torch.baddbmm(b_hh[:, None, :], h, w_hh.transpose(1, 2))  # (D, B, 3H)
                i_r, i_z, i_n = gi_t.chunk(3, dim=-1)
                h_r, h_z, h_n = gh.chunk(3, dim=-1)
                r = torch.sigmoid(i_r + h_r)
                z = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - z) * n + z * h
                outs.append(h)
            seq = torch.stack(outs, dim=2)  # (D, B, T, H), reverse direction still backwards
            if n_dir == 2:
                out = torch.cat([seq[0], seq[1].flip(1)], dim=-1)
            else:
                out = seq[0]
            finals.append(h)
            layer_input = out
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, torch.cat(finals, dim=0)


class GRUNet(nn.Module):
    """Bidirectional multi-layer GRU -> pooling -> dropout -> linear -> one logit."""

    def __init__(self, n_features: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.gru = CellGRU(n_features, config.hidden, config.layers, bidirectional=config.bidirectional,
                           dropout=config.dropout if config.layers > 1 else 0.0)
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.dropout)
        n_dir = 2 if config.bidirectional else 1
        self.head = nn.Linear(n_dir * config.hidden, 1)

    @contextlib.contextmanager
    def fused(self) -> Iterator[None]:
        """Use the fused GRU kernel inside the block (training and prediction only)."""
        with self.gru.fused():
            yield

    def influence_input_grad(self, tangents: dict[str, torch.Tensor], x: torch.Tensor,
                             y: torch.Tensor) -> torch.Tensor | None:
        """``grad_x [G . grad_phi sum_i l(f(x_i), y_i)]`` by :func:`gru_influence_input_grad`.

        The cheap exact path of :class:`tardiff.guidance.InfluenceGuidance` (``similarity="dot"``);
        the network must be in eval mode. Returns None where it does not apply (a GRU given a
        non-floating input), so the caller falls back to the double backward.
        """
        if self.training or not x.is_floating_point():
            return None
        with torch.no_grad():
            return gru_influence_input_grad(self, tangents, x, y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h_n = self.gru(x)
        if self.pooling == "last":
            n_dir = 2 if self.gru.bidirectional else 1
            pooled = torch.cat(list(h_n[-n_dir:]), dim=-1)  # last layer, every direction
        else:
            pooled = out.mean(dim=1)
        return self.head(self.dropout(pooled)).squeeze(-1)


# --------------------------------------------------------------------------------------
# the exact influence gradient of the GRU, by hand (guidance's cheap path)
# --------------------------------------------------------------------------------------


def _interleave(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """(D, 3H, H) recurrent weights plus an identity block, rows ordered (unit j, part k): (D, 4H, H).

    Multiplying a state by it gives, for every hidden unit, its three gate inputs and its own
    value side by side, so a linear step ``sum_k c_k (W_k h) + z h`` is one tiny batched product.
    """
    n_dir = w.shape[0]
    eye = torch.eye(hidden, dtype=w.dtype, device=w.device).expand(n_dir, hidden, hidden)
    return torch.cat([w.view(n_dir, 3, hidden, hidden), eye[:, None]], dim=1).transpose(1, 2).reshape(
        n_dir, 4 * hidden, hidden)


def _linear_sweep(forcing: torch.Tensor, coef: torch.Tensor, w4: torch.Tensor, *, transpose: bool) -> torch.Tensor:
    """Solve the linearised GRU recurrence over the steps (dim 2) of ``forcing`` (D, B, T, H).

    ``coef`` (D, B, T, H, 4) holds ``c_r, c_z, c_n, z`` of every step, so that the Jacobian of
    step s is ``J_s = sum_k diag(c_k,s) W_k + diag(z_s)``. Forward (``transpose=False``):
    ``v_s = J_s v_{s-1} + forcing_s`` from ``v_{-1} = 0``; backward (``transpose=True``):
    ``v_s = J_{s+1}^T v_{s+1} + forcing_s`` from ``v_T = 0``. Two operators per step.
    """
    n_dir, batch, steps, hidden = forcing.shape
    forcing = forcing.permute(2, 0, 1, 3).contiguous()  # step-major, so each step's slice is contiguous
    coef = coef.permute(2, 0, 1, 3, 4).contiguous()
    out = [None] * steps
    if not transpose:
        w4t = w4.transpose(1, 2)  # (D, H, 4H)
        v = forcing[0]
        out[0] = v
        for s in range(1, steps):
            m = torch.bmm(v, w4t).view(n_dir * batch * hidden, 4, 1)  # (W_r v, W_z v, W_n v, v) per unit
            v = torch.baddbmm(forcing[s].view(-1, 1, 1), coef[s].view(-1, 1, 4), m).view(n_dir, batch, hidden)
            out[s] = v
    else:
        v = forcing[steps - 1]
        out[steps - 1] = v
        for s in range(steps - 2, -1, -1):
            u = (coef[s + 1] * v[..., None]).view(n_dir, batch, 4 * hidden)  # (c_r v, c_z v, c_n v, z v)
            v = torch.baddbmm(forcing[s], u, w4)
            out[s] = v
    return torch.stack(out, dim=2)


def _to_steps(seq: torch.Tensor, n_dir: int) -> torch.Tensor:
    """(B, T, D*H) in time order -> (D, B, T, H) in each direction's step order (reverse flipped)."""
    b, t, dh = seq.shape
    per_dir = seq.view(b, t, n_dir, dh // n_dir).permute(2, 0, 1, 3)
    return torch.stack([per_dir[0], per_dir[1].flip(1)]) if n_dir == 2 else per_dir


def _to_time(steps: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_to_steps`: (D, B, T, H) -> (B, T, D*H)."""
    if steps.shape[0] == 2:
        steps = torch.stack([steps[0], steps[1].flip(1)])
    return steps.permute(1, 2, 0, 3).reshape(steps.shape[1], steps.shape[2], -1)


def gru_influence_input_grad(net: "GRUNet", tangents: dict[str, torch.Tensor], x: torch.Tensor,
                             y: torch.Tensor) -> torch.Tensor:
    """``grad_x [G . grad_phi sum_i l_i]`` of a :class:`GRUNet` in eval mode, derived by hand.

    The same numbers as the double backward through :class:`CellGRU` (tested to a relative
    1e-5 in float32 and 1e-10 in float64), at a fraction of the operators: forward-over-reverse
    written out. Since ``grad_x (G . grad_phi L) = D_phi[grad_x L](G)``, it runs the GRU once
    (five operators per step), the tangent of its states along ``G``, the adjoint of the
    states, and the tangent of the adjoint. The last three are linear recurrences whose
    coefficients come from the first pass, computed for all steps at once; each costs two
    operators per step (:func:`_linear_sweep`). No autograd, so no cuDNN RNN kernel: it runs
    on every device. ``tangents`` are ``G`` cut per parameter (missing names count as zero);
    the loss is the binary cross-entropy of the single logit.
    """
    gru = net.gru
    n_dir, hidden, layers = (2 if gru.bidirectional else 1), gru.hidden_size, gru.num_layers
    batch, steps, _ = x.shape
    params = dict(net.named_parameters())

    def tan(name):
        t = tangents.get(name)
        return torch.zeros_like(params[name]) if t is None else t

    def stacked(kind, layer, tangent=False):
        sfx = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if n_dir == 2 else [])
        get = (lambda n: tan(n)) if tangent else (lambda n: params[n])
        return torch.stack([get(f"gru.{kind}{s}") for s in sfx])

    def flip_steps(t):  # time order -> step order for the reverse direction (dim 2 of (D, B, T, .))
        return torch.stack([t[0], t[1].flip(1)]) if n_dir == 2 else t

    layer_in, layer_in_dot = x, None
    saved = []
    # ---- the GRU and the tangent of its states, layer by layer
    for layer in range(layers):
        w_ih, w_hh = stacked("weight_ih", layer), stacked("weight_hh", layer)
        b_ih, b_hh = stacked("bias_ih", layer), stacked("bias_hh", layer)
        gi = flip_steps(torch.einsum("bti,dgi->dbtg", layer_in, w_ih) + b_ih[:, None, None, :])  # (D, B, T, 3H)
        # pre-activations of r, z with their biases, and b_hn: one baddbmm per step gives a_r, a_z, gh_n
        pre = torch.cat([gi[..., :2 * hidden] + b_hh[:, None, None, :2 * hidden],
                         b_hh[:, None, None, 2 * hidden:].expand(n_dir, batch, steps, hidden)], dim=-1)
        w_hh_t = w_hh.transpose(1, 2)
        h = x.new_zeros((n_dir, batch, hidden))
        rz_l, n_l, ghn_l, h_l = [], [], [], []
        for s in range(steps):
            a = torch.baddbmm(pre[:, :, s], h, w_hh_t)  # a_r, a_z, gh_n
            rz = torch.sigmoid(a[..., :2 * hidden])
            n = torch.tanh(torch.addcmul(gi[:, :, s, 2 * hidden:], rz[..., :hidden], a[..., 2 * hidden:]))
            h = torch.lerp(n, h, rz[..., hidden:])  # (1 - z) n + z h
            rz_l.append(rz), n_l.append(n), ghn_l.append(a[..., 2 * hidden:]), h_l.append(h)
        RZ, N, GHn, Hs = (torch.stack(v, dim=2) for v in (rz_l, n_l, ghn_l, h_l))
        R, Z = RZ[..., :hidden], RZ[..., hidden:]
        Hprev = torch.cat([x.new_zeros((n_dir, batch, 1, hidden)), Hs[:, :, :-1]], dim=2)
        # coefficients of the step Jacobian dh_s = sum_k c_k d(gh_k) + z dh_{s-1} (and c_in for gi_n)
        A, Bn, Rr, Zz = 1 - Z, 1 - N * N, R * (1 - R), Z * (1 - Z)
        c_in = A * Bn
        c_n = c_in * R
        c_r = c_in * GHn * Rr
        c_z = (Hprev - N) * Zz
        coef = torch.stack([c_r, c_z, c_n, Z], dim=-1)  # (D, B, T, H, 4)
        w4 = _interleave(w_hh, hidden)
        # tangents along G of the gate inputs: gi (weights, biases and the layer input) and gh (weights, bias)
        w_ih_d, w_hh_d = stacked("weight_ih", layer, True), stacked("weight_hh", layer, True)
        b_ih_d, b_hh_d = stacked("bias_ih", layer, True), stacked("bias_hh", layer, True)
        gi_dot = torch.einsum("bti,dgi->dbtg", layer_in, w_ih_d) + b_ih_d[:, None, None, :]
        if layer_in_dot is not None:
            gi_dot = gi_dot + torch.einsum("bti,dgi->dbtg", layer_in_dot, w_ih)
        gi_dot = flip_steps(gi_dot)
        gh_phi = (torch.bmm(Hprev.reshape(n_dir, -1, hidden), w_hh_d.transpose(1, 2)).view(n_dir, batch, steps, -1)
                  + b_hh_d[:, None, None, :])
        e = (c_r * (gi_dot[..., :hidden] + gh_phi[..., :hidden])
             + c_z * (gi_dot[..., hidden:2 * hidden] + gh_phi[..., hidden:2 * hidden])
             + c_in * gi_dot[..., 2 * hidden:] + c_n * gh_phi[..., 2 * hidden:])
        Hdot = _linear_sweep(e, coef, w4, transpose=False)
        Hprev_dot = torch.cat([x.new_zeros((n_dir, batch, 1, hidden)), Hdot[:, :, :-1]], dim=2)
        gh_dot = torch.bmm(Hprev_dot.reshape(n_dir, -1, hidden), w_hh_t).view(n_dir, batch, steps, -1) + gh_phi
        r_dot = Rr * (gi_dot[..., :hidden] + gh_dot[..., :hidden])
        z_dot = Zz * (gi_dot[..., hidden:2 * hidden] + gh_dot[..., hidden:2 * hidden])
        n_dot = Bn * (gi_dot[..., 2 * hidden:] + r_dot * GHn + R * gh_dot[..., 2 * hidden:])
        bn_dot = -2 * N * n_dot
        c_in_dot = -z_dot * Bn + A * bn_dot
        c_dot = torch.stack([
            c_in_dot * GHn * Rr + c_in * gh_dot[..., 2 * hidden:] * Rr + c_in * GHn * r_dot * (1 - 2 * R),  # c_r
            (Hprev_dot - n_dot) * Zz + (Hprev - N) * z_dot * (1 - 2 * Z),  # c_z
            c_in_dot * R + c_in * r_dot,  # c_n
            z_dot,  # z
        ], dim=-1)
        c_in_all = torch.stack([c_r, c_z, c_in], dim=-2)  # dh/dgi per part, (D, B, T, 3, H)
        c_in_all_dot = torch.stack([c_dot[..., 0], c_dot[..., 1], c_in_dot], dim=-2)
        saved.append(dict(coef=coef, c_dot=c_dot, w4=w4, w_hh=w_hh, w_ih=w_ih, w_ih_d=w_ih_d, w_hh_d=w_hh_d,
                          gin=c_in_all, gin_dot=c_in_all_dot))
        layer_in, layer_in_dot = _to_time(Hs), _to_time(Hdot)

    # ---- the head and the loss: L = sum_i BCE(logit_i, y_i)
    out, out_dot = layer_in, layer_in_dot
    w, b = params["head.weight"][0], params["head.bias"][0]
    w_d, b_d = tan("head.weight")[0], tan("head.bias")[0]
    if net.pooling == "last":
        last, last_dot = Hs[:, :, -1], Hdot[:, :, -1]  # (D, B, H) final state of each direction
        pooled = last.permute(1, 0, 2).reshape(batch, -1)
        pooled_dot = last_dot.permute(1, 0, 2).reshape(batch, -1)
    else:
        pooled, pooled_dot = out.mean(dim=1), out_dot.mean(dim=1)
    logit = pooled @ w + b
    logit_dot = pooled @ w_d + pooled_dot @ w + b_d
    p = torch.sigmoid(logit)
    dl = p - y.to(p.dtype)  # dL/dlogit
    dl_dot = p * (1 - p) * logit_dot
    g_pooled = dl[:, None] * w  # dL/dpooled (B, D*H) and its tangent
    g_pooled_dot = dl_dot[:, None] * w + dl[:, None] * w_d
    if net.pooling == "last":
        o = x.new_zeros((n_dir, batch, steps, hidden))
        o_dot = torch.zeros_like(o)
        o[:, :, -1] = g_pooled.view(batch, n_dir, hidden).transpose(0, 1)
        o_dot[:, :, -1] = g_pooled_dot.view(batch, n_dir, hidden).transpose(0, 1)
    else:
        o = _to_steps((g_pooled / steps)[:, None, :].expand(batch, steps, -1), n_dir)
        o_dot = _to_steps((g_pooled_dot / steps)[:, None, :].expand(batch, steps, -1), n_dir)

    # ---- the adjoint of the states and its tangent, layer by layer from the top
    for layer in reversed(range(layers)):
        sv = saved[layer]
        lam = _linear_sweep(o, sv["coef"], sv["w4"], transpose=True)  # dL/dh_s
        # tangent: lam_dot_s = o_dot_s + J_{s+1}^T lam_dot_{s+1} + Jdot_{s+1}^T lam_{s+1}
        u = (sv["coef"][..., :3] * lam[..., None]).transpose(-1, -2)  # (D, B, T, 3, H): c_k lam
        u_dot = (sv["c_dot"][..., :3] * lam[..., None]).transpose(-1, -2)
        jdot = (sv["c_dot"][..., 3] * lam
                + torch.bmm(u.reshape(n_dir, -1, 3 * hidden), sv["w_hh_d"]).view(n_dir, batch, steps, hidden)
                + torch.bmm(u_dot.reshape(n_dir, -1, 3 * hidden), sv["w_hh"]).view(n_dir, batch, steps, hidden))
        forcing = o_dot + torch.cat([jdot[:, :, 1:], torch.zeros_like(jdot[:, :, :1])], dim=2)
        lam_dot = _linear_sweep(forcing, sv["coef"], sv["w4"], transpose=True)
        # gradient and its tangent w.r.t. the layer input: W_ih^T (dh/dgi * lam)
        d_gi = (sv["gin"] * lam[..., None, :]).flatten(-2)  # (D, B, T, 3H)
        d_gi_dot = (sv["gin_dot"] * lam[..., None, :] + sv["gin"] * lam_dot[..., None, :]).flatten(-2)
        d_gi, d_gi_dot = flip_steps(d_gi), flip_steps(d_gi_dot)  # back to time order
        d_in = torch.einsum("dbtg,dgi->bti", d_gi, sv["w_ih"])
        d_in_dot = torch.einsum("dbtg,dgi->bti", d_gi, sv["w_ih_d"]) + torch.einsum("dbtg,dgi->bti", d_gi_dot,
                                                                                      sv["w_ih"])
        if layer == 0:
            return d_in_dot
        o, o_dot = _to_steps(d_in, n_dir), _to_steps(d_in_dot, n_dir)
    raise AssertionError("unreachable")


class CNNNet(nn.Module):
    """Residual dilated temporal convolutions -> global mean and max pooling -> one logit."""

    def __init__(self, n_features: int, config: ClassifierConfig) -> None:
        super().__init__()
        k, c = config.kernel_size, config.hidden
        self.inp = nn.Conv1d(n_features, c, k, padding=k // 2)
        self.blocks = nn.ModuleList(
            nn.Conv1d(c, c, k, padding=(k // 2) * 2 ** i, dilation=2 ** i) for i in range(config.layers)
        )
        self.norms = nn.ModuleList(nn.GroupNorm(1, c) for _ in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.transpose(1, 2))  # (B, C, T)
        for conv, norm in zip(self.blocks, self.norms):
            h = h + conv(self.dropout(F.gelu(norm(h))))
        h = F.gelu(h)
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=-1)
        return self.head(self.dropout(pooled)).squeeze(-1)


class _EncoderBlock(nn.Module):
    """Pre-norm transformer block with explicit (twice differentiable) attention."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, w = h.shape
        q, k, v = self.qkv(self.norm1(h)).reshape(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(w // self.heads), dim=-1)
        mixed = (self.dropout(attn) @ v).transpose(1, 2).reshape(b, t, w)
        h = h + self.dropout(self.proj(mixed))
        return h + self.dropout(self.mlp(self.norm2(h)))


class TransformerNet(nn.Module):
    """Linear embedding + sinusoidal positions -> pre-norm encoder blocks -> mean pool -> one logit."""

    def __init__(self, n_features: int, config: ClassifierConfig) -> None:
        super().__init__()
        self.width = config.hidden
        self.embed = nn.Linear(n_features, config.hidden)
        self.blocks = nn.ModuleList(_EncoderBlock(config.hidden, config.heads, config.dropout)
                                    for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden)
        self.head = nn.Linear(config.hidden, 1)

    def _positions(self, steps: int, like: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(steps, device=like.device, dtype=like.dtype)[:, None]
        half = self.width // 2
        freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=like.device, dtype=like.dtype) / max(half, 1))
        enc = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], dim=-1)
        return F.pad(enc, (0, self.width - 2 * half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self._positions(x.shape[1], x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(dim=1)).squeeze(-1)


def build_network(config: ClassifierConfig, n_features: int) -> nn.Module:
    """Build the (untrained) network for ``config``: a module mapping (B, T, F) to (B,) logits.

    Examples
    --------
    >>> net = build_network(ClassifierConfig.preset("smoke", "cnn"), n_features=3)
    >>> tuple(net(torch.zeros(2, 10, 3)).shape)
    (2,)
    """
    networks = {"gru": GRUNet, "cnn": CNNNet, "transformer": TransformerNet}
    return networks[config.arch](n_features, config)


@contextlib.contextmanager
def _fast_kernels(module: nn.Module) -> Iterator[None]:
    """Use fused kernels where the network offers them (never while guidance differentiates)."""
    fused = getattr(module, "fused", None)
    with fused() if callable(fused) else contextlib.nullcontext():
        yield


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample binary cross-entropy with logits, the loss ``l`` of the TarDiff paper.

    Logits of shape (B,) or (B, 1) use the binary form; logits of shape (B, C) with C >= 2 use
    the multi-class cross entropy, so the guidance also accepts two-logit networks.

    Examples
    --------
    >>> per_sample_loss(torch.zeros(2), torch.tensor([0, 1]))
    tensor([0.6931, 0.6931])
    """
    if logits.dim() == 2 and logits.shape[-1] == 1:
        logits = logits.squeeze(-1)
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), pos_weight=pos_weight, reduction="none")
    if pos_weight is not None:
        raise ParameterError("pos_weight is only defined for one-logit (binary) networks")
    return F.cross_entropy(logits, y.long(), reduction="none")


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
    :func:`~tardiff.data.cache.save_checkpoint`) that :func:`load_classifier` checks.

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

    from tardiff.data.cache import save_checkpoint

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
    from tardiff.data.cache import CHECKPOINT_ERRORS, load_checkpoint, read_checkpoint

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


# --------------------------------------------------------------------------------------
# gradient boosting on summaries
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------


def make_classifier(name: Literal["gru", "cnn", "transformer", "gbm"], scale: Scale = "cpu", *,
                    random_state: int = 0, device="cpu", class_weight: bool = False, progress: bool = False,
                    **overrides):
    """Build an unfitted classifier by name at a data scale.

    Parameters
    ----------
    name : {"gru", "cnn", "transformer", "gbm"}
        Model family.
    scale : {"smoke", "cpu", "paper"}
        Size preset (:func:`tardiff.presets.sizes`; the GBM uses 30 / 300 / 500 boosting iterations).
    random_state : int
        Seed of initialisation, dropout, batch order (neural) or boosting (GBM).
    device : str
        Where a neural model trains (the GBM runs on the CPU).
    class_weight : bool
        Weight the positive class by ``n_neg / n_pos`` (neural) or ``"balanced"`` (GBM).
    progress : bool
        Neural models: a progress bar over epochs.
    **overrides
        Replace fields of the config (neural) or keyword arguments (GBM).

    Examples
    --------
    >>> make_classifier("gru", "smoke").config.hidden
    8
    >>> make_classifier("gbm", "smoke", class_weight=True).class_weight
    True
    """
    check_scale(scale)
    if name == "gbm":
        return SummaryGBMClassifier(random_state=random_state, class_weight=class_weight,
                                    **{**sizes("gbm", scale), **overrides})
    if name not in get_args(Arch):
        raise ParameterError(f"classifier name must be one of {get_args(Arch) + ('gbm',)}, got {name!r}")
    known = {f.name for f in fields(ClassifierConfig)}
    bad = set(overrides) - known
    if bad:
        raise ParameterError(f"unknown ClassifierConfig fields {sorted(bad)}; valid fields are {sorted(known)}")
    return TimeSeriesClassifier(ClassifierConfig.preset(scale, name, **overrides), class_weight=class_weight,
                                random_state=random_state, device=device, progress=progress)
