"""Diffusion samplers: the label-conditional 1-D UNet, unguided and with TarDiff's influence guidance.

:class:`UnguidedDiffusionSampler` trains (or is given) the label-conditional UNet of the
TarDiff paper and draws each class's rows with DDIM. :class:`TarDiffSampler` is the same
sampler with the influence guidance of the TarDiff paper added to every reverse step
(``mu~ = mu + w grad_x s(x, y)``); with ``guidance_scale=0`` it returns exactly the
unguided sampler's rows for the same seed and denoiser.

Both work in the space of the data passed to ``fit`` (standardised by
:func:`tardiff.data.prepare.prepare`); the guidance classifier is trained in that same
space (the TarDiff public code guides in [-1, 1] space a classifier trained on z-scores,
a defect this project does not repeat).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
from torch import nn

from tardiff.diffusion.process import GaussianDiffusion
from tardiff.diffusion.schedules import SCHEDULES, beta_schedule
from tardiff.diffusion.training import TrainConfig, train_diffusion
from tardiff.diffusion.unet import UNet1D, UNetConfig
from tardiff.errors import DataError, ParameterError
from tardiff.presets import DEFAULT_GUIDANCE_SCALE, Scale, build_seeded, check_scale, resolve_device, torch_generator
from tardiff.samplers.base import BaseSampler, Strategy, check_X_y, check_positive


def _check_int_or_none(name: str, value) -> None:
    if value is not None:
        check_positive(name, value, integer=True)


#: Samples per sampling batch on CUDA at least (the CPU uses ``batch_size`` as given).
CUDA_SAMPLE_BATCH = 2048


class UnguidedDiffusionSampler(BaseSampler):
    """Label-conditional diffusion (TarDiff's UNet backbone) without guidance.

    Parameters
    ----------
    strategy : {"replace", "balance", "augment"}
        Default ``"replace"``: a synthetic set of the training set's size and class ratio
        (TSTR); see :func:`tardiff.samplers.base.generation_counts`.
    ratio, alpha : float
        See :func:`tardiff.samplers.base.generation_counts`.
    scale : {"smoke", "cpu", "paper"}
        Size preset for ``unet_config`` and ``train_config`` when they are None
        (``UNetConfig.preset(scale)``, ``TrainConfig.preset(scale)``).
    unet_config : UNetConfig, optional
    train_config : TrainConfig, optional
    ddim_steps : int or None
        Reverse steps (TarDiff: 20 DDIM steps of T = 200); None = all T steps.
    eta : float
        DDIM stochasticity (TarDiff: 1.0).
    diffusion_steps : int
        T (TarDiff: 200).
    schedule : {"sqrt_linear", "linear", "cosine"}
        Beta schedule (TarDiff: sqrt_linear).
    loss_type : {"l2", "l1"}
        Epsilon loss (paper: L2; public code: L1).
    random_state : int
        Seeds the UNet's initial weights and training, and the sampling noise.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size : int
        Rows generated per reverse-process batch.
    progress : bool
        Progress bars for training and generation.
    denoiser : torch.nn.Module, optional
        An already trained denoiser ``(B, T, F), (B,), (B,) -> (B, T, F)`` to use instead of
        training one (so one trained model can serve the unguided and the TarDiff
        samplers); it is moved to ``device`` and put in eval mode. It must have been
        trained with the same ``schedule``/``diffusion_steps`` and on data of this space.
    checkpoint_path : str or Path, optional
        Training checkpoint (written, and resumed from when present); see
        :func:`tardiff.diffusion.training.train_diffusion`.

    Attributes
    ----------
    denoiser_ : torch.nn.Module
        The (EMA) denoiser used for sampling, in eval mode.
    process_ : GaussianDiffusion
    losses_ : list of float
        Training losses (empty when ``denoiser`` was given).

    Examples
    --------
    >>> from tardiff.diffusion import UNetConfig, TrainConfig
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(24, 8, 2)).astype("float32"); y = np.array([0] * 18 + [1] * 6)
    >>> s = UnguidedDiffusionSampler(scale="smoke", ddim_steps=5)
    >>> X_res, y_res = s.fit_resample(X, y)
    >>> X_res.shape, np.bincount(y_res[24:]).tolist()
    ((48, 8, 2), [18, 6])
    """

    def __init__(
        self,
        strategy: Strategy = "replace",
        ratio: float = 1.0,
        alpha: float = 1.0,
        scale: Scale = "cpu",
        unet_config: UNetConfig | None = None,
        train_config: TrainConfig | None = None,
        ddim_steps: int | None = 20,
        eta: float = 1.0,
        diffusion_steps: int = 200,
        schedule: str = "sqrt_linear",
        loss_type: str = "l2",
        random_state: int = 0,
        device: str = "cpu",
        batch_size: int = 256,
        progress: bool = False,
        denoiser: nn.Module | None = None,
        checkpoint_path=None,
    ):
        self.strategy = strategy
        self.ratio = ratio
        self.alpha = alpha
        self.scale = scale
        self.unet_config = unet_config
        self.train_config = train_config
        self.ddim_steps = ddim_steps
        self.eta = eta
        self.diffusion_steps = diffusion_steps
        self.schedule = schedule
        self.loss_type = loss_type
        self.random_state = random_state
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.denoiser = denoiser
        self.checkpoint_path = checkpoint_path

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        super()._check_params()
        check_scale(self.scale)
        if self.unet_config is not None and not isinstance(self.unet_config, UNetConfig):
            raise ParameterError(f"unet_config must be a UNetConfig or None, got {type(self.unet_config).__name__}")
        if self.train_config is not None and not isinstance(self.train_config, TrainConfig):
            raise ParameterError(f"train_config must be a TrainConfig or None, got {type(self.train_config).__name__}")
        if self.denoiser is not None and not isinstance(self.denoiser, nn.Module):
            raise ParameterError(f"denoiser must be a torch.nn.Module or None, got {type(self.denoiser).__name__}")
        steps = check_positive("diffusion_steps", self.diffusion_steps, integer=True)
        _check_int_or_none("ddim_steps", self.ddim_steps)
        if self.ddim_steps is not None and self.ddim_steps > steps:
            raise ParameterError(f"ddim_steps={self.ddim_steps} exceeds diffusion_steps={steps}; lower it or pass None")
        if isinstance(self.eta, bool) or not isinstance(self.eta, (int, float)) or not 0 <= self.eta < np.inf:
            raise ParameterError(f"eta must be a number >= 0, got {self.eta!r}")
        if self.schedule not in SCHEDULES:
            raise ParameterError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.loss_type not in ("l2", "l1"):
            raise ParameterError(f"loss_type must be 'l2' or 'l1', got {self.loss_type!r}")
        check_positive("batch_size", self.batch_size, integer=True)

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.device_ = resolve_device(self.device)
        self.process_ = GaussianDiffusion(beta_schedule(self.schedule, int(self.diffusion_steps)),
                                          loss_type=self.loss_type)
        if self.denoiser is not None:
            n_features = getattr(self.denoiser, "n_features", X.shape[2])
            if n_features != X.shape[2]:
                raise DataError(
                    f"the given denoiser models {n_features} features but X has {X.shape[2]}; "
                    "pass data with the features it was trained on"
                )
            self.denoiser_ = self.denoiser.to(self.device_).eval()
            self.losses_ = []
        else:
            config = self.unet_config if self.unet_config is not None else UNetConfig.preset(self.scale)
            train = self.train_config if self.train_config is not None else TrainConfig.preset(self.scale)
            model = build_seeded(lambda: UNet1D(config, n_features=X.shape[2]), int(self.random_state))
            result = train_diffusion(model, self.process_, X, y, train, seed=int(self.random_state),
                                     device=self.device_, checkpoint_path=self.checkpoint_path,
                                     progress=self.progress)
            self.denoiser_, self.losses_ = result.model, result.losses
        # The sampling noise comes from a CPU generator (device-independent results).
        self._generator_ = torch_generator(self._next_seed())

    # ------------------------------------------------------------------ sampling
    def _cond_fn(self):
        """The guidance callable added to each reverse-step mean (None: unguided)."""
        return None

    def _guide_last_k(self) -> int | None:
        return None

    def _generate(self, n: int, label: int) -> np.ndarray:
        cond_fn = self._cond_fn()
        shape = (self.n_timesteps_, self.n_features_)
        bs = int(self.batch_size)
        if self.device_.type == "cuda":
            # A GPU runs a step of 2,048 samples in about the time of 256 (per-kernel cost, not
            # arithmetic, bounds it); the CPU keeps its batch, so CPU numbers do not change.
            bs = max(bs, CUDA_SAMPLE_BATCH)
        chunks = []
        starts = range(0, n, bs)
        desc = f"{type(self).__name__} class {label}"
        for start in self._progress(starts, progress=self.progress, desc=desc, total=len(starts)):
            b = min(bs, n - start)
            x = self.process_.sample(
                self.denoiser_, (b, *shape), label, method="ddim", n_steps=self.ddim_steps, eta=float(self.eta),
                cond_fn=cond_fn, guide_last_k=self._guide_last_k(), generator=self._generator_,
                device=self.device_,
            )
            chunks.append(x.detach().cpu().numpy())
        return np.concatenate(chunks, axis=0).astype(np.float32)


class TarDiffSampler(UnguidedDiffusionSampler):
    """TarDiff: the unguided sampler plus influence guidance (Deng et al., KDD 2025).

    Every reverse step's mean is moved by ``w * grad_x s(x, y)`` where
    ``s(x, y) = G . grad_phi l(f_phi(x), y)`` is the influence score of a candidate on the
    downstream classifier ``f_phi`` and ``G`` is the mean loss gradient over a guidance
    set (:mod:`tardiff.guidance`). ``guidance_scale=0`` reproduces the unguided sampler.

    Parameters
    ----------
    (all of :class:`UnguidedDiffusionSampler`, plus)
    guidance_scale : float
        ``w`` (paper: 100; its sweep from -1000 to +1000 puts the best near +1000).
    guidance_set : tuple (X_g, y_g), optional
        The set ``G`` averages over (paper: the validation split). When None, the data
        passed to ``fit`` is used (as the public code does) and a warning says so.
    classifier : TimeSeriesClassifier, optional
        A fitted :class:`tardiff.classifiers.TimeSeriesClassifier` (anything with a
        ``module_`` mapping (B, T, F) to (B,) logits). When None, a GRU
        (``make_classifier("gru", scale)``) is fitted on the ``fit`` data, with the
        guidance set for early stopping when given (else a 10% holdout of the fit data).
    evaluate_at : {"x_t", "x0_hat"}
        Evaluate ``s`` on the noisy sample (paper) or on the clean estimate (public code).
    similarity : {"dot", "cosine"}
        Dot product (paper) or cosine (public code option).
    guide_last_k : int, optional
        Guide only the last ``k`` reverse steps (all when None).
    guidance_norm : {"raw", "unit"}
        ``"raw"``: the shift is ``w grad_x s`` (the paper); ``"unit"``: ``w`` times the noise
        level of ``x_t`` along the unit gradient direction (see :class:`tardiff.guidance.InfluenceGuidance`).

    Attributes
    ----------
    classifier_ : the guidance classifier
    G_ : torch.Tensor
        The guidance vector.
    guidance_ : tardiff.guidance.InfluenceGuidance
        The ``cond_fn`` passed to the sampler.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 8, 2)).astype("float32"); y = np.array([0] * 30 + [1] * 10)
    >>> s = TarDiffSampler(scale="smoke", ddim_steps=5, guidance_set=(X, y))
    >>> s.fit_resample(X, y)[0].shape
    (80, 8, 2)
    """

    def __init__(
        self,
        strategy: Strategy = "replace",
        ratio: float = 1.0,
        alpha: float = 1.0,
        scale: Scale = "cpu",
        unet_config: UNetConfig | None = None,
        train_config: TrainConfig | None = None,
        ddim_steps: int | None = 20,
        eta: float = 1.0,
        diffusion_steps: int = 200,
        schedule: str = "sqrt_linear",
        loss_type: str = "l2",
        random_state: int = 0,
        device: str = "cpu",
        batch_size: int = 256,
        progress: bool = False,
        denoiser: nn.Module | None = None,
        checkpoint_path=None,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        guidance_set: tuple | None = None,
        classifier=None,
        evaluate_at: Literal["x_t", "x0_hat"] = "x_t",
        similarity: Literal["dot", "cosine"] = "dot",
        guide_last_k: int | None = None,
        guidance_norm: str = "raw",
    ):
        super().__init__(
            strategy=strategy, ratio=ratio, alpha=alpha, scale=scale, unet_config=unet_config,
            train_config=train_config, ddim_steps=ddim_steps, eta=eta, diffusion_steps=diffusion_steps,
            schedule=schedule, loss_type=loss_type, random_state=random_state, device=device,
            batch_size=batch_size, progress=progress, denoiser=denoiser, checkpoint_path=checkpoint_path,
        )
        self.guidance_scale = guidance_scale
        self.guidance_set = guidance_set
        self.classifier = classifier
        self.evaluate_at = evaluate_at
        self.similarity = similarity
        self.guide_last_k = guide_last_k
        self.guidance_norm = guidance_norm

    def _check_params(self) -> None:
        from tardiff.guidance import GuidanceOptions

        super()._check_params()
        GuidanceOptions(guidance_scale=self.guidance_scale, evaluate_at=self.evaluate_at, similarity=self.similarity,
                        guidance_norm=self.guidance_norm)
        if self.guide_last_k is not None:
            if isinstance(self.guide_last_k, bool) or not isinstance(self.guide_last_k, (int, np.integer)) \
                    or self.guide_last_k < 0:
                raise ParameterError(f"guide_last_k must be a non-negative int or None, got {self.guide_last_k!r}")
        if self.guidance_set is not None and (not isinstance(self.guidance_set, (tuple, list))
                                              or len(self.guidance_set) != 2):
            raise ParameterError("guidance_set must be a tuple (X_g, y_g) or None")
        if self.classifier is not None and not hasattr(self.classifier, "module_"):
            raise ParameterError(
                "classifier must be a fitted tardiff.classifiers.TimeSeriesClassifier (with module_); "
                "fit it first or pass classifier=None"
            )

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        from tardiff.classifiers import make_classifier
        from tardiff.guidance import InfluenceGuidance, guidance_vector

        if self.guidance_set is None:
            warnings.warn(
                "TarDiffSampler: guidance_set is None, so G is computed on the data passed to fit "
                "(as the public code does); the TarDiff paper uses the validation split: pass "
                "guidance_set=(X_val, y_val)",
                UserWarning,
                stacklevel=4,
            )
            X_g, y_g = X, y
        else:
            X_g, y_g = self.guidance_set
            X_g, y_g = np.asarray(X_g), np.asarray(y_g)
            if X_g.ndim != 3 or X_g.shape[2] != X.shape[2]:
                raise DataError(
                    f"guidance_set X has shape {X_g.shape} but the fit data has {X.shape[2]} features; "
                    "pass (X_g, y_g) with shape (M, T, F)"
                )
            try:
                X_g, y_g = check_X_y(X_g, y_g)
            except DataError as err:
                raise DataError(f"guidance_set: {err}") from None

        super()._fit(X, y)

        if self.classifier is not None:
            self.classifier_ = self.classifier
        else:
            X_val, y_val = (X_g, y_g) if self.guidance_set is not None else (None, None)
            self.classifier_ = make_classifier("gru", self.scale, random_state=int(self.random_state),
                                               device=self.device_, progress=self.progress).fit(X, y, X_val, y_val)
        module = self.classifier_.module_
        module.eval()
        module_device = next(module.parameters()).device
        self.G_ = guidance_vector(module, X_g, y_g, batch_size=int(self.batch_size), device=module_device)
        if not torch.isfinite(self.G_).all():
            raise DataError("the guidance vector holds NaN or inf; check the classifier and the guidance set")
        self.guidance_ = InfluenceGuidance(module, self.G_, guidance_scale=float(self.guidance_scale),
                                           guidance_norm=self.guidance_norm, alphas_cumprod=self.process_.alphas_cumprod,
                                           evaluate_at=self.evaluate_at, similarity=self.similarity)

    def _cond_fn(self):
        return self.guidance_

    def _guide_last_k(self) -> int | None:
        return self.guide_last_k
