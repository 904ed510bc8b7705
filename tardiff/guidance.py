"""TarDiff's influence guidance: the guidance vector, the influence score and its x-gradient.

With a downstream classifier ``f_phi`` and its per-sample loss ``l``, TarDiff defines

* the guidance vector ``G = (1/|D_g|) sum_{(x', y') in D_g} grad_phi l(f_phi(x'), y')``
  (the mean loss gradient over a guidance set, :func:`guidance_vector`);
* the influence score of a candidate, ``s(x, y) = G . grad_phi l(f_phi(x), y)`` (identity
  Hessian, first-order / TracIn-style; :func:`influence_scores`);
* the guided reverse step ``mu~ = mu_theta(x_t, y, t) + w * grad_x s(x, y)``
  (:class:`InfluenceGuidance`, passed to the sampler as ``cond_fn``).

Sign. One SGD step on the candidate, ``phi' = phi - eta * grad_phi l(x, y)``, changes the
guidance loss by ``L_g(phi') - L_g(phi) ~= -eta * G . grad_phi l(x, y) = -eta * s(x, y)``, so a
candidate with a large score lowers the guidance loss most: guidance with ``w > 0`` maximises
``s``. (Eq. 21 of the paper carries the opposite sign; the public code maximises.)

All derivatives are taken with the classifier in eval mode (no dropout, no batch
statistics), which is what makes the per-sample gradients exact.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass
from typing import Iterator, Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, jvp, vmap
from tqdm import tqdm

from tardiff.classifiers import per_sample_loss
from tardiff.errors import DataError, ParameterError
from tardiff.presets import DEFAULT_GUIDANCE_SCALE

__all__ = ["GuidanceOptions", "guidance_vector", "influence_scores", "InfluenceGuidance", "trainable_parameters"]

EvaluateAt = Literal["x_t", "x0_hat"]
Similarity = Literal["dot", "cosine"]
GuidanceSet = Literal["val", "train", "minority"]
GuidanceNorm = Literal["raw", "unit"]


@dataclass(frozen=True)
class GuidanceOptions:
    """TarDiff's guidance settings: everything about the guidance that changes the synthetic data.

    Parameters
    ----------
    guidance_scale : float
        ``w`` of the guided mean ``mu + w grad_x s`` (the paper: 100).
    guidance_set : {"val", "train", "minority"}
        What ``G`` averages over: the validation split (paper), the training split (public
        code) or the validation split's minority class (paper Table 5).
    evaluate_at : {"x_t", "x0_hat"}
        Score the noisy sample (paper) or the denoiser's clean estimate (public code).
    similarity : {"dot", "cosine"}
        Influence as a dot product (paper) or a cosine (public code option).
    guidance_norm : {"raw", "unit"}
        ``"raw"`` (the paper): the shift is ``w grad_x s``, so its size follows the norm of ``G``
        and of the classifier's gradients. ``"unit"``: the shift is ``w sigma_t sqrt(D)`` along
        the unit direction of ``grad_x s`` (``w`` is then a fraction of the step's own noise
        level, whatever ``G``'s norm and the schedule); see :class:`InfluenceGuidance`.
    guide_last : int
        Guide only the last ``guide_last`` reverse steps (0: every step, the paper).

    Examples
    --------
    >>> GuidanceOptions(guidance_scale=10).with_scale(0).guidance_scale
    0.0
    """

    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    guidance_set: GuidanceSet = "val"
    evaluate_at: EvaluateAt = "x_t"
    similarity: Similarity = "dot"
    guidance_norm: GuidanceNorm = "raw"
    guide_last: int = 0

    def __post_init__(self) -> None:
        w = self.guidance_scale
        if isinstance(w, bool) or not isinstance(w, (int, float, np.integer, np.floating)) or not np.isfinite(w):
            raise ParameterError(f"guidance_scale must be a finite number, got {w!r}")
        object.__setattr__(self, "guidance_scale", float(w))
        if isinstance(self.guide_last, bool) or not isinstance(self.guide_last, (int, np.integer)) \
                or self.guide_last < 0:
            raise ParameterError(f"guide_last must be a whole number >= 0 (0: guide every step); got {self.guide_last!r}")
        object.__setattr__(self, "guide_last", int(self.guide_last))
        for name, choices in (("guidance_set", GuidanceSet), ("evaluate_at", EvaluateAt), ("similarity", Similarity),
                              ("guidance_norm", GuidanceNorm)):
            if getattr(self, name) not in get_args(choices):
                raise ParameterError(f"{name} must be one of {', '.join(get_args(choices))}; "
                                     f"got {getattr(self, name)!r}")

    def with_scale(self, guidance_scale: float) -> "GuidanceOptions":
        """The same options at another ``w`` (the guidance sweep)."""
        return GuidanceOptions(**{**asdict(self), "guidance_scale": float(guidance_scale)})

    def sampler_params(self) -> dict:
        """Keyword arguments of :class:`tardiff.samplers.TarDiffSampler` (the guidance set is data)."""
        return {"guidance_scale": self.guidance_scale, "evaluate_at": self.evaluate_at,
                "similarity": self.similarity, "guidance_norm": self.guidance_norm,
                "guide_last_k": self.guide_last or None}

    def key(self) -> tuple:
        """What joins the cache key of data generated under these options."""
        return (self.guidance_scale, self.guidance_set, self.evaluate_at, self.similarity, self.guidance_norm,
                self.guide_last)

    def describe(self) -> str:
        """A short label, e.g. ``"raw w=100"`` or ``"unit w=0.1, last 5 steps"``.

        Examples
        --------
        >>> GuidanceOptions(guidance_scale=0.1, guidance_norm="unit", guide_last=5).describe()
        'unit w=0.1, last 5 steps'
        """
        text = f"{self.guidance_norm} w={self.guidance_scale:g}"
        return text + (f", last {self.guide_last} steps" if self.guide_last else "")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def trainable_parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that ``G`` ranges over (``requires_grad=True``), in registration order.

    Examples
    --------
    >>> list(trainable_parameters(nn.Linear(2, 1)))
    ['weight', 'bias']
    """
    params = {name: p for name, p in module.named_parameters() if p.requires_grad}
    if not params:
        raise ParameterError("the classifier has no trainable parameters; influence guidance needs some")
    return params


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _module_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(module.parameters())
    return p.device, p.dtype


def _as_batch(X, y, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors of the given dtype, left on their device (numpy arrays land on the CPU)."""
    X = torch.as_tensor(np.asarray(X) if not torch.is_tensor(X) else X)
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y, device=X.device)
    if X.dim() < 2 or y.shape != (X.shape[0],):
        raise DataError(f"X must be (N, ...) with labels of shape (N,), got X {tuple(X.shape)} and y {tuple(y.shape)}")
    if X.shape[0] == 0:
        raise DataError("the guidance set is empty; pass at least one sample")
    if not torch.isfinite(X).all():
        raise DataError("the guidance data contains NaN or infinite values; impute it first")
    return X.to(dtype=dtype), y.long()


def _split_flat(module: nn.Module, G: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cut the flat vector ``G`` into tensors shaped like the trainable parameters."""
    params = trainable_parameters(module)
    n = sum(p.numel() for p in params.values())
    if G.dim() != 1 or G.numel() != n:
        raise ParameterError(
            f"G has shape {tuple(G.shape)} but the classifier has {n} trainable parameters; "
            "compute G with guidance_vector on this same classifier"
        )
    out, start = {}, 0
    for name, p in params.items():
        out[name] = G[start:start + p.numel()].view_as(p).to(device=p.device, dtype=p.dtype)
        start += p.numel()
    return out


def _resolve(module: nn.Module, device) -> tuple[torch.device, torch.dtype]:
    """The module's device and dtype; ``device`` (if given) must name that same device."""
    mod_device, dtype = _module_device_dtype(module)
    if device is not None:
        wanted = torch.device(device)
        if wanted.type != mod_device.type or (wanted.index is not None and wanted.index != mod_device.index):
            raise ParameterError(
                f"the classifier lives on {mod_device} but device={str(wanted)!r} was requested; "
                f"move the classifier there with .to({str(wanted)!r}) or pass device={str(mod_device)!r}"
            )
    return mod_device, dtype


def _norm(tangents: dict[str, torch.Tensor]) -> torch.Tensor:
    norm = torch.sqrt(sum((t * t).sum() for t in tangents.values()))
    if not float(norm) > 0:
        raise ParameterError("G is zero (the classifier fits the guidance set perfectly); "
                             "the cosine similarity is undefined, use similarity='dot'")
    return norm


# --------------------------------------------------------------------------------------
# the guidance vector and the score
# --------------------------------------------------------------------------------------


def guidance_vector(module: nn.Module, X, y, *, batch_size: int = 256, device=None,
                    progress: bool = False) -> torch.Tensor:
    """Mean loss gradient over the guidance set, flattened over the trainable parameters.

    ``G = (1/|D_g|) sum_{(x', y') in D_g} grad_phi l(f_phi(x'), y')`` (the guidance vector of the
    TarDiff paper), computed with the module in eval mode as the sum of batch-summed gradients
    divided by the set size (exact for any batch size), accumulated in float64.

    Parameters
    ----------
    module : torch.nn.Module
        The trained classifier, mapping (B, T, F) to (B,) logits (or (B, C) logits).
    X, y : arrays or tensors of shape (N, T, F) and (N,)
        The guidance set (paper: the validation split; public code: the training split;
        the paper's Table 5: minority-class samples only).
    batch_size : int
        Samples per backward pass.
    device : str, torch.device or None
        Must match the module's device; None uses the module's device.
    progress : bool
        Show a tqdm bar over batches.

    Returns
    -------
    torch.Tensor
        Flat vector of length (number of trainable parameters), the module's dtype and device.

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(6, 1), nn.Flatten(0))
    >>> G = guidance_vector(net, np.zeros((4, 3, 2), "float32"), np.array([0, 1, 0, 1]))
    >>> G.shape
    torch.Size([7])
    """
    if batch_size < 1:
        raise ParameterError(f"batch_size must be a positive integer, got {batch_size}")
    device, dtype = _resolve(module, device)
    X, y = _as_batch(X, y, dtype)
    params = trainable_parameters(module)
    total = [torch.zeros(p.shape, dtype=torch.float64, device=device) for p in params.values()]
    with _eval_mode(module), torch.enable_grad():
        starts = range(0, len(X), batch_size)
        for start in tqdm(starts, desc="guidance vector", disable=not progress, leave=False):
            xb = X[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            batch_sum = per_sample_loss(module(xb), yb).sum()
            grads = torch.autograd.grad(batch_sum, list(params.values()), allow_unused=True)
            for acc, g in zip(total, grads):
                if g is not None:
                    acc += g.double()
    # eq. of G in the TarDiff paper: sum over the guidance set divided by |D_g|
    return (torch.cat([t.flatten() for t in total]) / len(X)).to(dtype)


def _loss_fn(module: nn.Module):
    """``loss(params, x, y) -> per-sample losses`` with the parameters swapped in functionally."""
    buffers = dict(module.named_buffers())

    def loss(params, x, y):
        return per_sample_loss(functional_call(module, (params, buffers), (x,)), y)

    return loss


def influence_scores(module: nn.Module, G: torch.Tensor, X, y, *, batch_size: int = 256,
                     similarity: Similarity = "dot") -> np.ndarray:
    """Per-sample influence scores ``s(x, y) = G . grad_phi l(f_phi(x), y)``.

    The dot products are directional derivatives of each sample's loss along ``G``, so one
    forward-mode pass (``torch.func.jvp``) gives the whole batch exactly, without forming
    per-sample gradients. ``similarity="cosine"`` divides by ``|G| |grad_phi l|`` (per-sample
    gradients via ``torch.func.vmap``). The module is evaluated in eval mode.

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(6, 1), nn.Flatten(0))
    >>> X, y = np.ones((4, 3, 2), "float32"), np.array([0, 1, 0, 1])
    >>> influence_scores(net, guidance_vector(net, X, y), X, y).shape
    (4,)
    """
    if similarity not in get_args(Similarity):
        raise ParameterError(f"similarity must be one of {get_args(Similarity)}, got {similarity!r}")
    device, dtype = _module_device_dtype(module)
    X, y = _as_batch(X, y, dtype)
    tangents = _split_flat(module, G)
    params = {k: v.detach() for k, v in trainable_parameters(module).items()}
    loss = _loss_fn(module)
    out = []
    with _eval_mode(module), torch.no_grad(), warnings.catch_warnings():
        # torch registers its forward-AD decompositions with torch.jit.script on first use,
        # which emits a DeprecationWarning from inside torch; it is not ours to act on
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
            if similarity == "dot":
                _, s = jvp(lambda p: loss(p, xb, yb), (params,), (tangents,))
            else:
                s = _cosine_scores(loss, params, tangents, xb, yb)
            out.append(s.double().cpu())
    return torch.cat(out).numpy()


def _cosine_one(loss, params, tangents, g_norm, x, y, eps=1e-12):
    """Cosine between ``G`` and one sample's loss gradient (x of shape (T, F), y scalar)."""
    g = grad(lambda p: loss(p, x.unsqueeze(0), y.unsqueeze(0)).sum())(params)
    dot = sum((tangents[k] * g[k]).sum() for k in g)
    sq = sum((g[k] * g[k]).sum() for k in g)
    return dot / (g_norm * torch.sqrt(sq + eps * eps))


def _cosine_scores(loss, params, tangents, x, y, chunk_size=None):
    g_norm = _norm(tangents)
    fn = lambda xi, yi: _cosine_one(loss, params, tangents, g_norm, xi, yi)  # noqa: E731
    return vmap(fn, chunk_size=chunk_size)(x, y)


# --------------------------------------------------------------------------------------
# the guidance callable
# --------------------------------------------------------------------------------------


class InfluenceGuidance:
    """The guidance term ``w * grad_x s(x, y)`` of TarDiff, as a sampler ``cond_fn``.

    ``cond_fn(x_t, t, y, x0_hat=None)`` returns ``guidance_scale * grad_x s`` for every sample of the
    batch, the term added to the posterior mean in the guided reverse step
    ``mu~ = mu_theta(x_t, y, t) + w * grad_x s(x, y)`` of the TarDiff paper.

    Sign: one SGD step with the candidate added, ``phi' = phi - eta * grad_phi l(x, y)``,
    changes the guidance loss by ``L_g(phi') - L_g(phi) ~= -eta * G . grad_phi l(x, y) =
    -eta * s(x, y)``; so ``guidance_scale > 0`` moves samples toward larger ``s``, i.e. toward
    samples whose addition LOWERS the guidance loss, and ``guidance_scale < 0`` toward samples that would raise
    it. (The paper's Eq. 21 has the opposite sign; its public code maximises ``s``.)

    Exactness: for ``similarity="dot"`` one double backward over the batch-summed loss gives
    every per-sample gradient exactly, because ``l_j`` does not depend on ``x_i``:
    ``grad_{x_i} [G . grad_phi sum_j l_j] = grad_{x_i} [G . grad_phi l_i]``. This needs the
    classifier in eval mode (no dropout, no batch statistics), which this class enforces for
    each call. ``similarity="cosine"`` (``s = G . g_i / (|G| |g_i|)``, the public code's option)
    needs per-sample gradient norms and uses ``torch.func`` (vmap over the x-gradient of each
    sample's cosine).

    On CUDA the guidance GRU of :mod:`tardiff.classifiers` runs its recurrence from matrix
    products (no cuDNN RNN kernel), so the double backward works there too.

    Parameters
    ----------
    module : torch.nn.Module
        The trained classifier, (B, T, F) -> (B,) logits.
    G : torch.Tensor
        The guidance vector from :func:`guidance_vector` on this module.
    guidance_scale : float
        The guidance scale ``w`` (any real number; 0 disables the guidance).
    evaluate_at : {"x_t", "x0_hat"}
        Evaluate ``s`` at the noisy ``x_t`` (paper, default) or at the denoiser's clean
        estimate ``x0_hat`` (public code; no gradient through the denoiser: the gradient with
        respect to ``x0_hat`` is the step direction).
    similarity : {"dot", "cosine"}
        Plain dot product (paper) or cosine similarity (public code option).
    chunk_size : int or None
        Cosine only: samples per ``vmap`` chunk, to bound memory for large classifiers.
    guidance_norm : {"raw", "unit"}
        ``"raw"`` returns ``w grad_x s`` (the paper). ``"unit"`` returns
        ``w sigma_t sqrt(D) grad_x s / ||grad_x s||`` per sample, with ``sigma_t = sqrt(1 - abar_t)``
        the noise level of ``x_t`` and ``D`` the number of cells of one sample: a shift whose
        length is ``w`` times the length of the noise in ``x_t``, so ``w`` keeps its meaning
        whatever the norm of ``G`` (which the minority guidance set inflates ~30-fold) and
        however few steps remain. Our calibration, not the paper's.
    alphas_cumprod : torch.Tensor, optional
        ``abar_t`` of the sampler's process, indexed by the original timestep; needed for "unit".

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(6, 1), nn.Flatten(0))
    >>> X, y = torch.randn(4, 3, 2), torch.tensor([0, 1, 0, 1])
    >>> cond_fn = InfluenceGuidance(net, guidance_vector(net, X, y), guidance_scale=100.0)
    >>> cond_fn(X, torch.zeros(4, dtype=torch.long), y).shape
    torch.Size([4, 3, 2])
    """

    def __init__(self, module: nn.Module, G: torch.Tensor, guidance_scale: float, evaluate_at: EvaluateAt = "x_t",
                 similarity: Similarity = "dot", chunk_size: int | None = None, guidance_norm: GuidanceNorm = "raw",
                 alphas_cumprod: torch.Tensor | None = None) -> None:
        if evaluate_at not in get_args(EvaluateAt):
            raise ParameterError(f"evaluate_at must be one of {get_args(EvaluateAt)}, got {evaluate_at!r}")
        if similarity not in get_args(Similarity):
            raise ParameterError(f"similarity must be one of {get_args(Similarity)}, got {similarity!r}")
        guidance_scale = float(guidance_scale)
        if not np.isfinite(guidance_scale):
            raise ParameterError(f"guidance_scale must be a finite number, got {guidance_scale}")
        if guidance_norm not in get_args(GuidanceNorm):
            raise ParameterError(f"guidance_norm must be one of {get_args(GuidanceNorm)}, got {guidance_norm!r}")
        if guidance_norm == "unit" and alphas_cumprod is None:
            raise ParameterError("guidance_norm='unit' needs the process's alphas_cumprod (the noise level of x_t)")
        self.module = module
        self.guidance_scale = guidance_scale
        self.guidance_norm = guidance_norm
        self.alphas_cumprod = None if alphas_cumprod is None else alphas_cumprod.detach().to(torch.float64).cpu()
        self.evaluate_at = evaluate_at
        self.similarity = similarity
        self.chunk_size = chunk_size
        self._tangents = _split_flat(module, G.detach())
        self.G = G.detach()
        if similarity == "cosine":
            _norm(self._tangents)

    def __repr__(self) -> str:
        return (f"InfluenceGuidance(guidance_scale={self.guidance_scale}, guidance_norm={self.guidance_norm!r}, evaluate_at={self.evaluate_at!r}, "
                f"similarity={self.similarity!r})")

    def grad_score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``grad_x s(x, y)`` per sample (unscaled), in the module's dtype and device."""
        device, dtype = _module_device_dtype(self.module)
        x = x.detach().to(device=device, dtype=dtype)
        y = torch.as_tensor(y, device=device).long()
        if y.dim() == 0:
            y = y.expand(x.shape[0])
        if self.similarity == "dot":
            by_hand = getattr(self.module, "influence_input_grad", None)
            if callable(by_hand):
                with _eval_mode(self.module):
                    grad_x = by_hand(self._tangents, x, y)
                if grad_x is not None:
                    return grad_x
        return self.grad_score_autograd(x, y)

    def grad_score_autograd(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:meth:`grad_score` by autograd (the double backward), for any classifier.

        :meth:`grad_score` takes this route unless the classifier derives the gradient itself
        (``influence_input_grad``, e.g. :class:`tardiff.classifiers.GRUNet`: the same numbers at a
        fraction of the operators); the tests compare the two.
        """
        device, dtype = _module_device_dtype(self.module)
        x = x.detach().to(device=device, dtype=dtype)
        y = torch.as_tensor(y, device=device).long()
        if y.dim() == 0:
            y = y.expand(x.shape[0])
        with _eval_mode(self.module), torch.enable_grad():
            if self.similarity == "dot":
                x = x.requires_grad_(True)
                params = trainable_parameters(self.module)
                total = per_sample_loss(self.module(x), y).sum()  # L = sum_j l_j
                g = torch.autograd.grad(total, list(params.values()), create_graph=True, allow_unused=True)
                dot = sum((self._tangents[name] * gp).sum()  # G . grad_phi L = sum_i s_i
                          for name, gp in zip(params, g) if gp is not None)
                (grad_x,) = torch.autograd.grad(dot, x)
                return grad_x
            params = {k: v.detach() for k, v in trainable_parameters(self.module).items()}
            loss = _loss_fn(self.module)
            g_norm = _norm(self._tangents)
            per_sample = grad(lambda xi, yi: _cosine_one(loss, params, self._tangents, g_norm, xi, yi))
            return vmap(per_sample, chunk_size=self.chunk_size)(x, y)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                 x0_hat: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``guidance_scale * grad_x s`` with the shape and dtype of ``x_t``.

        ``t`` is accepted for the sampler's ``cond_fn`` signature and unused (the classifier
        is not time-conditioned). With ``evaluate_at="x0_hat"``, ``x0_hat`` is required and
        the gradient is taken with respect to it (detached from the denoiser).
        """
        if self.evaluate_at == "x0_hat":
            if x0_hat is None:
                raise ParameterError("evaluate_at='x0_hat' needs the sampler to pass x0_hat to cond_fn")
            point = x0_hat
        else:
            point = x_t
        if point.shape != x_t.shape:
            raise DataError(f"x0_hat has shape {tuple(point.shape)} but x_t has {tuple(x_t.shape)}")
        if self.guidance_scale == 0.0:
            return torch.zeros_like(x_t)
        grad_x = self.grad_score(point, y)
        if self.guidance_norm == "unit":
            return self._unit_shift(grad_x, t).to(device=x_t.device, dtype=x_t.dtype)
        # the guided mean of the TarDiff paper: mu~ = mu + w * grad_x s(x, y)
        return (self.guidance_scale * grad_x).to(device=x_t.device, dtype=x_t.dtype)

    def _unit_shift(self, grad_x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``w sigma_t sqrt(D) grad_x s / ||grad_x s||`` per sample (zero where the gradient is zero)."""
        flat = grad_x.reshape(grad_x.shape[0], -1)
        norms = flat.norm(dim=1, keepdim=True)
        direction = torch.where(norms > 0, flat / norms.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
        t = torch.as_tensor(t).reshape(-1).long().cpu()
        if t.numel() == 1:
            t = t.expand(flat.shape[0])
        sigma = (1.0 - self.alphas_cumprod[t]).clamp_min(0.0).sqrt().to(device=flat.device, dtype=flat.dtype)
        length = self.guidance_scale * sigma * flat.shape[1] ** 0.5
        return (length[:, None] * direction).reshape(grad_x.shape)
