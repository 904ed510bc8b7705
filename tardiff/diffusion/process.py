"""The Gaussian diffusion process, kept apart from the denoising network.

:class:`GaussianDiffusion` holds the noise schedule and nothing learned. It takes the
network as an argument (``model(x_t, t, y) -> eps``) to compute the training loss and to
run the reverse process, as openai/guided-diffusion does. The reverse process is a Python
generator yielding every step (:meth:`GaussianDiffusion.sample_progressive`), so a
notebook can show a trajectory; :meth:`GaussianDiffusion.sample` runs it to the end.

Notation: ``abar_t = prod_{i<=t} (1 - beta_i)`` (``alphas_cumprod``), timesteps are
0-based (t = 0 is the least noisy level, t = T - 1 the noisiest), and the level "before"
t = 0 is the clean data, with ``abar = 1``.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Callable, Iterator, Literal, NamedTuple, Sequence, get_args

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tardiff.diffusion.capture import CaptureMode, GraphStep, capture_applies, check_capture_mode, eager_status
from tardiff.errors import ParameterError

LossType = Literal["l2", "l1"]
SamplingMethod = Literal["ddpm", "ddim"]
CondFn = Callable[..., torch.Tensor]
#: Captured sampling loops a process keeps (least recently used dropped first): each holds its
#: graph's memory, and a sampler needs about one per batch size and guidance setting.
MAX_CAPTURED_LOOPS = 4


class TrainingDraws(NamedTuple):
    """The random numbers of one training loss: timesteps (B,), noise like x0, label-dropout mask (B,) or None."""

    t: torch.Tensor
    noise: torch.Tensor
    drop: torch.Tensor | None


class SamplingStep(NamedTuple):
    """One reverse step: the new, less noisy sample, the model's clean estimate, the timestep.

    ``x`` is x_{t-1} (the sample after the step), ``x0_hat`` the estimate of x_0 made
    from x_t, and ``t`` the (original, not respaced) timestep the step started from.
    """

    x: torch.Tensor
    x0_hat: torch.Tensor
    t: int


class _Loop(NamedTuple):
    """One sampling loop's checked settings, shared by the eager and the captured paths."""

    model: Callable
    steps: np.ndarray
    shape: tuple
    device: torch.device
    y: torch.Tensor
    null: int | None
    method: str
    eta: float
    cfg_scale: float
    cond_fn: CondFn | None
    first_guided: int


def _randn(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device, then moved to ``device``.

    Drawing on the generator's device lets a CPU generator drive sampling on a GPU and
    makes results independent of the device the model runs on.
    """
    draw_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=draw_device).to(device)


def _extract(buffer: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``buffer[t]`` reshaped to broadcast against ``like`` (B, ...)."""
    out = buffer.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1)))


class GaussianDiffusion(nn.Module):
    """A discrete-time Gaussian diffusion process (DDPM, Ho et al. 2020) with DDIM sampling.

    Parameters
    ----------
    betas : numpy.ndarray
        The noise schedule beta_1 .. beta_T (see :func:`tardiff.diffusion.beta_schedule`),
        each in (0, 1). Coefficients are computed in float64 and stored as float32 buffers.
    loss_type : {"l2", "l1"}
        The epsilon-prediction loss: mean squared error (the papers' form) or mean
        absolute error (TarDiff's public code).

    Examples
    --------
    >>> from tardiff.diffusion import beta_schedule
    >>> process = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    >>> process.n_steps
    200
    >>> zero_eps = lambda x, t, y: torch.zeros_like(x)
    >>> g = torch.Generator().manual_seed(0)
    >>> process.sample(zero_eps, (2, 24, 7), y=0, n_steps=20, generator=g).shape
    torch.Size([2, 24, 7])
    """

    def __init__(self, betas: np.ndarray, loss_type: LossType = "l2"):
        super().__init__()
        if loss_type not in get_args(LossType):
            raise ParameterError(f"unknown loss_type {loss_type!r}; choose 'l2' or 'l1'")
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size < 1 or not np.all((betas > 0) & (betas < 1)):
            raise ParameterError("betas must be a non-empty 1-D array with every value in (0, 1); "
                                 "build one with tardiff.diffusion.beta_schedule")
        self.loss_type = loss_type
        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        self._betas64 = betas
        self._abar64 = abar
        float64_buffers = {
            "betas": betas,
            "alphas_cumprod": abar,
            "sqrt_alphas_cumprod": np.sqrt(abar),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - abar),
        }
        for name, values in float64_buffers.items():
            # Derived from betas on construction, so not part of state_dict.
            self.register_buffer(name, torch.from_numpy(values).to(torch.float32), persistent=False)
        self._graphs: OrderedDict = OrderedDict()  # captured sampling loops (see sample)
        self.capture_status: str | None = None  # how the last sample() call ran

    @property
    def n_steps(self) -> int:
        """The number of diffusion steps T."""
        return int(self._betas64.size)

    def extra_repr(self) -> str:
        return f"n_steps={self.n_steps}, loss_type={self.loss_type!r}"

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise clean data to level t in one jump: a draw of q(x_t | x_0).

        ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise`` (eq. 4 of Ho et al. 2020).

        Parameters
        ----------
        x0 : torch.Tensor
            Clean data, shape (B, ...).
        t : torch.Tensor
            Long tensor of shape (B,) with timesteps in [0, T).
        noise : torch.Tensor
            Standard normal noise with the shape of ``x0``.

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> p = GaussianDiffusion(beta_schedule("linear", 10))
        >>> p.q_sample(torch.ones(1, 3), torch.tensor([0]), torch.zeros(1, 3)).shape
        torch.Size([1, 3])
        """
        t = torch.as_tensor(t, dtype=torch.long, device=x0.device).reshape(-1)
        return (_extract(self.sqrt_alphas_cumprod, t, x0) * x0
                + _extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def training_loss(self, model: Callable, x0: torch.Tensor, y: torch.Tensor, *,
                      generator: torch.Generator | None = None, label_dropout: float = 0.0,
                      null_label: int | None = None) -> torch.Tensor:
        """The epsilon-prediction loss of ``model`` on a batch, at uniformly drawn timesteps.

        Draws, in this order from ``generator``: t ~ U{0..T-1} per sample, noise ~ N(0, I),
        and (if ``label_dropout > 0``) which labels to drop (:meth:`training_draws`). The loss
        (:meth:`loss_from_draws`) is ``mean |eps - model(x_t, t, y)|^2`` (the simplified
        objective, eq. 14 of Ho et al. 2020) or its L1 counterpart.

        Parameters
        ----------
        model : callable
            ``model(x_t, t, y) -> eps`` with the shape of ``x_t``.
        x0 : torch.Tensor
            Clean batch (B, ...).
        y : torch.Tensor
            Long labels (B,).
        generator : torch.Generator, optional
            Source of all randomness here.
        label_dropout : float
            Probability of replacing a label by ``null_label`` (classifier-free guidance training).
        null_label : int, optional
            The "no label" index; defaults to ``model.null_label``.

        Returns
        -------
        torch.Tensor
            A scalar.

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> p = GaussianDiffusion(beta_schedule("linear", 10))
        >>> zero = lambda x, t, y: torch.zeros_like(x)
        >>> g = torch.Generator().manual_seed(0)
        >>> float(p.training_loss(zero, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), generator=g)) > 0
        True
        """
        if not 0.0 <= label_dropout <= 1.0:
            raise ParameterError(f"label_dropout must be in [0, 1], got {label_dropout}")
        null = self._null_label(model, null_label) if label_dropout > 0 else None
        draws = self.training_draws(x0, generator=generator, label_dropout=label_dropout)
        return self.loss_from_draws(model, x0, y, draws, null_label=null)

    def training_draws(self, x0: torch.Tensor, *, generator: torch.Generator | None = None,
                       label_dropout: float = 0.0) -> "TrainingDraws":
        """The random part of :meth:`training_loss`: t, noise and the label-dropout mask, in its order.

        Kept apart so a captured (CUDA-graph) training step can draw eagerly, outside the graph,
        and consume the generator exactly as the eager loop does.

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> p = GaussianDiffusion(beta_schedule("linear", 10))
        >>> d = p.training_draws(torch.zeros(4, 3), generator=torch.Generator().manual_seed(0), label_dropout=0.5)
        >>> d.t.shape, d.noise.shape, d.drop.dtype
        (torch.Size([4]), torch.Size([4, 3]), torch.bool)
        """
        batch = x0.shape[0]
        draw_device = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.n_steps, (batch,), generator=generator, device=draw_device).to(x0.device)
        noise = _randn(x0.shape, generator, x0.device)
        drop = None
        if label_dropout > 0:
            drop = (torch.rand(batch, generator=generator, device=draw_device) < label_dropout).to(x0.device)
        return TrainingDraws(t=t, noise=noise, drop=drop)

    def loss_from_draws(self, model: Callable, x0: torch.Tensor, y: torch.Tensor, draws: "TrainingDraws", *,
                        null_label: int | None = None) -> torch.Tensor:
        """The deterministic part of :meth:`training_loss`: the loss of ``model`` at given draws.

        ``null_label`` replaces the labels ``draws.drop`` marks (it is needed only then). No
        host reads: a CUDA graph can hold this, the backward pass and the optimizer step.

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> p = GaussianDiffusion(beta_schedule("linear", 10))
        >>> d = TrainingDraws(t=torch.tensor([0, 9]), noise=torch.ones(2, 3), drop=None)
        >>> float(p.loss_from_draws(lambda x, t, y: torch.zeros_like(x), torch.zeros(2, 3), torch.tensor([0, 0]), d))
        1.0
        """
        y = torch.as_tensor(y, dtype=torch.long, device=x0.device).reshape(-1)
        if draws.drop is not None:
            y = torch.where(draws.drop, torch.full_like(y, self._null_label(model, null_label)), y)
        x_t = self.q_sample(x0, draws.t, draws.noise)
        eps = model(x_t, draws.t, y)
        if eps.shape != x0.shape:
            raise ParameterError(f"the model returned shape {tuple(eps.shape)} for input {tuple(x0.shape)}; "
                                 "a denoiser must return a tensor shaped like its input")
        if self.loss_type == "l2":
            return torch.mean((draws.noise - eps) ** 2)  # eq. 14 of Ho et al. (2020)
        return torch.mean(torch.abs(draws.noise - eps))

    # ------------------------------------------------------------------ reverse process
    def timesteps(self, n_steps: int | None = None) -> np.ndarray:
        """The (original) timesteps visited by a sampler with ``n_steps`` steps, in decreasing order.

        ``None`` or ``T`` gives every step T-1 .. 0; fewer steps are spread evenly over
        [0, T-1], both ends included (``round(linspace(T-1, 0, n))``; one step is [T-1]).

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> GaussianDiffusion(beta_schedule("sqrt_linear", 200)).timesteps(5).tolist()
        [199, 149, 100, 50, 0]
        """
        T = self.n_steps
        if n_steps is None:
            n_steps = T
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or not 1 <= n_steps <= T:
            raise ParameterError(f"n_steps must be an integer in [1, {T}] (the process has T = {T}), "
                                 f"got {n_steps!r}")
        if n_steps == T:
            return np.arange(T - 1, -1, -1, dtype=np.int64)
        # Spaced from the noisiest level down, so a single step starts at T - 1.
        return np.round(np.linspace(T - 1, 0, int(n_steps))).astype(np.int64)

    @staticmethod
    def _null_label(model, null_label: int | None) -> int:
        if null_label is None:
            null_label = getattr(model, "null_label", None)
        if null_label is None:
            raise ParameterError("classifier-free guidance and label dropout need a null label; pass "
                                 "null_label= or use a model with a `null_label` attribute")
        return int(null_label)

    def _predict_eps(self, model, x, t_batch, y, cfg_scale, null):
        if cfg_scale == 0:
            return model(x, t_batch, y)
        # Classifier-free guidance: eps = (1 + w) eps(x, y) - w eps(x, null), one batched call.
        both = model(torch.cat([x, x]), torch.cat([t_batch, t_batch]),
                     torch.cat([y, torch.full_like(y, null)]))
        eps_cond, eps_null = both.chunk(2)
        return (1.0 + cfg_scale) * eps_cond - cfg_scale * eps_null

    def sample_progressive(self, model: Callable, shape: Sequence[int], y, *,
                           method: SamplingMethod = "ddim", n_steps: int | None = 20, eta: float = 1.0,
                           cond_fn: CondFn | None = None, guide_last_k: int | None = None,
                           cfg_scale: float = 0.0, null_label: int | None = None,
                           generator: torch.Generator | None = None, device="cpu", progress: bool = False,
                           x_T: torch.Tensor | None = None) -> Iterator[SamplingStep]:
        """Run the reverse process step by step, yielding a :class:`SamplingStep` after each step.

        Parameters
        ----------
        model : callable
            ``model(x_t, t, y) -> eps``; called under ``torch.no_grad``.
        shape : sequence of int
            (B, ...), the shape of a batch of samples.
        y : int, sequence or torch.Tensor
            The label of each sample (B,), or one label for all.
        method : {"ddim", "ddpm"}
            ``"ddim"``: eq. 12 of Song et al. (2021) with the given ``eta`` (eta = 1 equals
            ancestral DDPM sampling on the respaced schedule, eta = 0 is deterministic).
            ``"ddpm"``: ancestral sampling from the posterior q(x_s | x_t, x0_hat) (eq. 6-7
            of Ho et al. 2020) with the respaced betas ``1 - abar_t / abar_s``; ``eta`` is
            ignored.
        n_steps : int or None
            Number of reverse steps (respaced evenly, see :meth:`timesteps`); ``None`` = all T.
            TarDiff's default: DDIM with 20 steps of T = 200, eta = 1.
        eta : float
            DDIM stochasticity (>= 0).
        cond_fn : callable, optional
            ``cond_fn(x_t, t, y, x0_hat=x0_hat) -> g`` with ``g`` shaped like ``x_t``, the
            already-scaled guidance gradient ADDED to the reverse-step mean (TarDiff's
            ``mu~ = mu + w grad_x s``). Called with gradients enabled on a detached x_t;
            ``t`` is a long tensor (B,) of original timesteps.
        guide_last_k : int, optional
            Apply ``cond_fn`` on the last ``k`` reverse steps only (all steps when None).
        cfg_scale : float
            Classifier-free guidance weight w: eps = (1 + w) eps(x, y) - w eps(x, null).
        null_label : int, optional
            The "no label" index for classifier-free guidance; defaults to ``model.null_label``.
        generator : torch.Generator, optional
            Source of the initial noise and of every step's noise.
        device : str or torch.device
            Where the samples are computed (the model must already be there).
        progress : bool
            Show a tqdm progress bar.
        x_T : torch.Tensor, optional
            The starting noise (default: drawn from ``generator``).

        Yields
        ------
        SamplingStep
            ``(x, x0_hat, t)``: the sample after the step, the clean estimate, the timestep.

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
        >>> zero = lambda x, t, y: torch.zeros_like(x)
        >>> g = torch.Generator().manual_seed(0)
        >>> [s.t for s in p.sample_progressive(zero, (1, 4, 2), 0, n_steps=3, generator=g)]
        [199, 100, 0]
        """
        loop = self._prepare(model, shape, y, method=method, n_steps=n_steps, eta=eta, cond_fn=cond_fn,
                             guide_last_k=guide_last_k, cfg_scale=cfg_scale, null_label=null_label, device=device)
        x = self._initial_noise(loop, generator, x_T)
        for i in tqdm(range(len(loop.steps)), desc=f"{method} sampling", disable=not progress, leave=False):
            mean, x0_hat, sigma, t = self._reverse_mean(loop, i, x)
            if sigma > 0:
                x = mean + sigma * _randn(loop.shape, generator, loop.device)
            else:
                x = mean
            yield SamplingStep(x=x, x0_hat=x0_hat, t=t)

    def sample(self, model: Callable, shape: Sequence[int], y, *, capture: CaptureMode = "auto",
               **kwargs) -> torch.Tensor:
        """Run :meth:`sample_progressive` to the end and return the final samples (B, ...).

        Takes the same arguments as :meth:`sample_progressive`, plus ``capture``.

        Parameters
        ----------
        capture : {"auto", "on", "off"}
            CUDA-graph capture of the whole loop (:mod:`tardiff.diffusion.capture`): with "on"
            on a CUDA device, x_T and every step's noise are drawn from ``generator`` first (the
            eager order), the loop runs eagerly once, is captured on the next call with the
            same model, ``cond_fn``, shape and settings, and replayed after that (up to
            ``MAX_CAPTURED_LOOPS`` loops are kept; no progress bar). A replay reruns the recorded
            kernels on the recorded tensors: update the model's or ``cond_fn``'s weights in place
            (``load_state_dict``), never by replacing tensors. A host read in the model or
            ``cond_fn`` makes the capture fail: one warning, and eager from then on. Elsewhere,
            and with "auto" for now, eager. The status of the last call is in ``capture_status``.

        Examples
        --------
        >>> from tardiff.diffusion import beta_schedule
        >>> p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
        >>> zero = lambda x, t, y: torch.zeros_like(x)
        >>> p.sample(zero, (3, 5), y=[0, 1, 0], generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 5])
        >>> p.sample(zero, (3, 5), y=0, capture="on").shape, p.capture_status
        (torch.Size([3, 5]), 'eager (cpu)')
        """
        check_capture_mode(capture)
        # sample_progressive's arguments with its defaults (written once, there).
        args = inspect.signature(self.sample_progressive).bind(model, shape, y, **kwargs)
        args.apply_defaults()
        args = args.arguments
        if not capture_applies(capture, args["device"]):
            self.capture_status = eager_status(capture, args["device"])
            final = None
            for final in self.sample_progressive(model, shape, y, **kwargs):
                pass
            return final.x
        loop = self._prepare(**{k: v for k, v in args.items() if k not in ("generator", "progress", "x_T")})
        return self._sample_captured(loop, args["generator"], args["x_T"])

    # ------------------------------------------------------------------ the loop's parts
    def _prepare(self, model, shape, y, *, method, n_steps, eta, cond_fn, guide_last_k, cfg_scale, null_label,
                 device) -> _Loop:
        """The checked settings of one sampling loop."""
        if method not in get_args(SamplingMethod):
            raise ParameterError(f"unknown sampling method {method!r}; choose 'ddim' or 'ddpm'")
        if eta < 0:
            raise ParameterError(f"eta must be >= 0, got {eta}")
        if guide_last_k is not None and guide_last_k < 0:
            raise ParameterError(f"guide_last_k must be >= 0 or None, got {guide_last_k}")
        steps = self.timesteps(n_steps)
        device = torch.device(device)
        shape = tuple(int(s) for s in shape)
        batch = shape[0]
        y = torch.as_tensor(y, dtype=torch.long, device=device).reshape(-1)
        if y.numel() == 1:
            y = y.expand(batch).clone()
        if y.shape != (batch,):
            raise ParameterError(f"y must hold one label or {batch} labels, got {y.numel()}")
        null = self._null_label(model, null_label) if cfg_scale != 0 else None
        first_guided = 0 if guide_last_k is None else len(steps) - guide_last_k
        return _Loop(model=model, steps=steps, shape=shape, device=device, y=y, null=null, method=method,
                     eta=eta, cfg_scale=cfg_scale, cond_fn=cond_fn, first_guided=first_guided)

    @staticmethod
    def _initial_noise(loop: _Loop, generator, x_T) -> torch.Tensor:
        """x_T: the given one (checked), or the first draw from ``generator``."""
        if x_T is None:
            return _randn(loop.shape, generator, loop.device)
        if tuple(x_T.shape) != loop.shape:
            raise ParameterError(f"x_T has shape {tuple(x_T.shape)} but shape={loop.shape}")
        return x_T.detach().to(device=loop.device, dtype=torch.float32)

    def _coefficients(self, loop: _Loop, i: int) -> tuple[int, float, float, float, float]:
        """Step i's t, abar_t and Python-float update: mean = c0 x0_hat + c1 (eps for DDIM, x_t for DDPM), sigma."""
        n = len(loop.steps)
        t = int(loop.steps[i])
        s = int(loop.steps[i + 1]) if i + 1 < n else -1  # the level this step moves to; -1 = clean data
        abar_t = float(self._abar64[t])
        abar_s = float(self._abar64[s]) if s >= 0 else 1.0
        if loop.method == "ddim":
            # DDIM update, eq. 12 of Song et al. (2021), with sigma from their eq. 16:
            # x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps + sigma z.
            sigma = loop.eta * ((1.0 - abar_s) / (1.0 - abar_t) * (1.0 - abar_t / abar_s)) ** 0.5
            direction = max(1.0 - abar_s - sigma ** 2, 0.0) ** 0.5
            return t, abar_t, abar_s ** 0.5, direction, sigma
        # Ancestral step from the posterior q(x_s | x_t, x0_hat), eq. 6-7 of Ho et al. (2020),
        # with the respaced beta_t = 1 - abar_t / abar_s.
        beta = 1.0 - abar_t / abar_s
        coef_x0 = abar_s ** 0.5 * beta / (1.0 - abar_t)
        coef_xt = (1.0 - beta) ** 0.5 * (1.0 - abar_s) / (1.0 - abar_t)
        sigma = ((1.0 - abar_s) / (1.0 - abar_t) * beta) ** 0.5  # beta-tilde, eq. 7
        return t, abar_t, coef_x0, coef_xt, sigma

    def _reverse_mean(self, loop: _Loop, i: int, x: torch.Tensor):
        """Step i from x_t without its noise: (mean, x0_hat, sigma, t). Draws nothing, reads nothing back."""
        t, abar_t, c0, c1, sigma = self._coefficients(loop, i)
        t_batch = torch.full((loop.shape[0],), t, dtype=torch.long, device=loop.device)
        with torch.no_grad():
            eps = self._predict_eps(loop.model, x, t_batch, loop.y, loop.cfg_scale, loop.null)
            # x0_hat from x_t and eps: eq. 4 of Ho et al. (2020) solved for x_0 (eq. 9 of Song et al. 2021).
            x0_hat = (x - (1.0 - abar_t) ** 0.5 * eps) / abar_t ** 0.5
            mean = c0 * x0_hat + c1 * (eps if loop.method == "ddim" else x)
        if loop.cond_fn is not None and i >= loop.first_guided:
            # TarDiff's guided mean mu~ = mu + w * grad_x s; cond_fn returns w * grad_x s.
            with torch.enable_grad():
                grad = loop.cond_fn(x.detach(), t_batch, loop.y, x0_hat=x0_hat.detach())
            if grad.shape != x.shape:
                raise ParameterError(f"cond_fn returned shape {tuple(grad.shape)}, expected {tuple(x.shape)}")
            mean = mean + grad.detach().to(mean.dtype)
        return mean, x0_hat, sigma, t

    # ------------------------------------------------------------------ the captured loop
    def _sample_captured(self, loop: _Loop, generator, x_T) -> torch.Tensor:
        """:meth:`sample` as one CUDA graph, kept per model, ``cond_fn``, shape and settings.

        The random numbers are drawn first, eagerly, in the eager loop's order (x_T, then each
        noisy step's noise; the model and ``cond_fn`` draw nothing from ``generator``) and
        copied into the loop's static inputs; the graph holds every step, guidance included.
        """
        is_module = isinstance(loop.model, nn.Module)
        model_tensors = tuple(p.data_ptr() for p in loop.model.parameters()) if is_module else ()
        # The loop is cached beside the objects it was recorded from (a strong reference, so their ids
        # stay theirs) and the addresses of the model's weights (replaced weights need a new capture).
        key = (id(loop.model), id(loop.cond_fn), loop.shape, tuple(loop.steps.tolist()), loop.method, loop.eta,
               loop.first_guided, loop.cfg_scale, loop.null, str(loop.device), model_tensors)
        graphs = self._graphs
        entry = graphs.pop(key, None)
        if entry is None:
            entry = self._captured_loop(loop)
            while len(graphs) >= MAX_CAPTURED_LOOPS:
                graphs.popitem(last=False)  # the least recently used loop; its graph memory goes with it
        graphs[key] = entry
        x_static, y_static, noises, step = entry
        x_static.copy_(self._initial_noise(loop, generator, x_T))
        y_static.copy_(loop.y)
        for noise in noises:
            if noise is not None:
                noise.copy_(_randn(loop.shape, generator, loop.device))
        out = step()
        self.capture_status = step.status
        return out.clone()  # a replay overwrites the graph's output

    def _captured_loop(self, loop: _Loop):
        """The static inputs of ``loop`` and the :class:`GraphStep` running the whole loop on them."""
        x_static = torch.empty(loop.shape, device=loop.device)
        y_static = loop.y.clone()
        loop = loop._replace(y=y_static)
        sigmas = [self._coefficients(loop, i)[4] for i in range(len(loop.steps))]
        noises = [torch.empty(loop.shape, device=loop.device) if sigma > 0 else None for sigma in sigmas]

        def run() -> torch.Tensor:
            x = x_static
            for i, noise in enumerate(noises):
                mean, _, sigma, _ = self._reverse_mean(loop, i, x)
                x = mean + sigma * noise if noise is not None else mean
            return x

        # One eager warm-up: it is a whole loop, so every kernel of every step has run once.
        return x_static, y_static, noises, GraphStep(run, enabled=True, warmup=1, label="the sampling loop")

    def __getstate__(self):
        # Captured loops are bound to this process's device memory: a copy or pickle starts without them.
        state = self.__dict__.copy()
        state["_graphs"] = OrderedDict()
        return state
