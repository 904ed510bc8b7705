"""Training a denoiser with a :class:`~tardiff.diffusion.GaussianDiffusion`, with resumable checkpoints.

:func:`train_diffusion` runs AdamW with a linear learning-rate warm-up, gradient clipping
and an exponential moving average (EMA) of the weights, and returns the EMA model (the
one to sample from). All randomness (mini-batches, timesteps, noise, label dropout and
dropout masks) comes from one ``torch.Generator`` seeded with ``seed``, whose state is
checkpointed with the weights, so a run interrupted and resumed from its checkpoint ends
bit-identical to an uninterrupted one.

A checkpoint is a ``torch.save`` file holding only tensors, dicts, lists, strings and
numbers (read with ``weights_only=True``): model and EMA weights, optimizer state, step,
generator state, the losses so far, ``asdict`` of the training and model configurations,
the process's betas and ``tardiff.__version__``. Beside it, ``<checkpoint>.sha256`` holds the
file's SHA-256: a checkpoint that does not match it (edited, truncated) is never trusted; a
resumed training run warns and starts afresh, :func:`load_denoiser` refuses it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import tardiff
from tardiff.data.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from tardiff.diffusion.capture import GraphStep, capture_applies, check_capture_mode, eager_status
from tardiff.diffusion.process import GaussianDiffusion, TrainingDraws
from tardiff.errors import DataError, ParameterError
from tardiff.presets import Scale, resolve_device, seeded_global_rng, sizes, torch_generator

CHECKPOINT_FORMAT = 1
# Fields that may change between an interrupted run and its resumption (capture: how the steps run,
# which older checkpoints, written before the field existed, do not record).
_RESUMABLE_CHANGES = {"iterations", "checkpoint_every", "capture"}
# Fields left out of cache keys (TrainConfig.key): they change how the steps run, not the weights,
# and leaving them out keeps the keys of caches written before they existed.
_NOT_IN_KEYS = {"capture"}


@dataclass
class TrainConfig:
    """Hyperparameters of :func:`train_diffusion`.

    Attributes
    ----------
    iterations : int
        Optimiser steps.
    batch_size : int
        Samples per step, drawn uniformly with replacement.
    lr : float
        Peak AdamW learning rate.
    weight_decay : float
        AdamW weight decay.
    warmup : int
        Steps of linear learning-rate warm-up from lr / warmup to lr.
    ema_decay : float
        EMA decay; the effective decay at step k is ``min(ema_decay, (1 + k) / (10 + k))``
        so the average is not dominated by the random initial weights in short runs.
    grad_clip : float
        Maximum global gradient norm (0 disables clipping).
    label_dropout : float
        Probability of replacing a label by the null label (classifier-free guidance).
    checkpoint_every : int
        Write a checkpoint every this many steps (0: only at the end).
    capture : {"auto", "on", "off"}
        CUDA-graph capture of the training step (:mod:`tardiff.diffusion.capture`): "on"
        captures on CUDA devices (a no-op elsewhere), "off" never, "auto" (default) is eager
        for now. It changes how the steps run, not their numbers, so it is neither in
        :meth:`key` nor checked when a checkpoint resumes.

    Examples
    --------
    >>> TrainConfig.preset("paper").iterations
    20000
    """

    iterations: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    label_dropout: float = 0.0
    checkpoint_every: int = 500
    capture: str = "auto"

    def __post_init__(self):
        for name in ("iterations", "batch_size"):
            if getattr(self, name) < 1:
                raise ParameterError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ParameterError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ParameterError(f"TrainConfig.lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ParameterError("TrainConfig.weight_decay and grad_clip must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ParameterError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ParameterError(f"TrainConfig.label_dropout must be in [0, 1), got {self.label_dropout}")
        check_capture_mode(self.capture)

    def key(self) -> dict:
        """What joins the cache key of a model trained with this configuration: every field but ``capture``.

        Examples
        --------
        >>> TrainConfig(capture="on").key() == TrainConfig(capture="off").key()
        True
        """
        return {k: v for k, v in asdict(self).items() if k not in _NOT_IN_KEYS}

    @classmethod
    def preset(cls, scale: Scale, **overrides) -> "TrainConfig":
        """Training of ``scale`` (:func:`tardiff.presets.sizes`): at paper scale TarDiff's settings
        (AdamW lr 1e-4, batch 256, 20,000 iterations, EMA 0.9999); at cpu scale (the defaults)
        1,000 steps of batch 32, about a minute on one core with the cpu UNet (58 to 64 s per
        PhysioNet denoiser, 48 x 37, in the cpu book); smoke checks that everything runs, not
        that it learns.

        Examples
        --------
        >>> TrainConfig.preset("paper").iterations
        20000
        """
        return cls(**{**sizes("diffusion_training", scale), **overrides})


@dataclass
class TrainResult:
    """What :func:`train_diffusion` returns: the EMA model (eval mode), the loss of every step, and how
    the steps ran (``capture``: "captured", or "eager (<why>)", see :mod:`tardiff.diffusion.capture`)."""

    model: nn.Module
    losses: list[float]
    capture: str = "eager (off)"


def _model_spec(model: nn.Module) -> dict | None:
    """How to rebuild ``model``: its class, its config dataclass and other constructor arguments."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    kwargs = getattr(model, "init_kwargs", None)
    if kwargs is None:
        kwargs = {"n_features": model.n_features} if hasattr(model, "n_features") else {}
    cls, config_cls = type(model), type(config)
    return {
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "config_class": f"{config_cls.__module__}:{config_cls.__qualname__}",
        "config": asdict(config),
        "kwargs": dict(kwargs),
    }


def _data_fingerprint(X: np.ndarray, y: np.ndarray, seed: int) -> str:
    digest = hashlib.sha256()
    digest.update(repr((X.shape, seed)).encode())
    digest.update(np.ascontiguousarray(X).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()[:16]


def _comparable(obj):
    """JSON-like normal form (tuples as lists) for comparing configurations."""
    if isinstance(obj, dict):
        return {k: _comparable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_comparable(v) for v in obj]
    return obj


def _check_data(X, y, model) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim < 2 or X.shape[0] < 1:
        raise DataError(f"X must have shape (N, ...) with N >= 1, got {X.shape}")
    if y.shape != (X.shape[0],):
        raise DataError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise DataError("X contains NaN or infinite values; impute and scale it first (tardiff.data.prepare)")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError("y must hold integer class labels")
    y = y.astype(np.int64)
    n_labels = getattr(model, "null_label", None)
    if n_labels is not None and (y.min() < 0 or y.max() >= n_labels):
        raise DataError(f"labels must lie in [0, {n_labels - 1}] for this model, got {y.min()}..{y.max()}")
    return X, y


def _read_checkpoint(path: Path, device, *, rebuild: bool = False) -> dict | None:
    """The verified checkpoint (SHA-256 sidecar, see :func:`~tardiff.data.checkpoints.save_checkpoint`).

    ``rebuild=False`` (a checkpoint the user loads): a damaged, edited or foreign file is a
    one-line error. ``rebuild=True`` (training resumes from it): such a file gives a
    :class:`~tardiff.data.cache.CacheWarning`, is deleted, and None is returned, so training
    starts afresh instead of trusting it.
    """
    if rebuild:
        ckpt = load_checkpoint(path, map_location=device)
        if ckpt is None:
            return None
    else:
        ckpt = read_checkpoint(path, map_location=device)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ParameterError(f"{path} is not a tardiff diffusion checkpoint (format {CHECKPOINT_FORMAT}); "
                             "delete it or choose another checkpoint_path")
    return ckpt


#: Training losses are read back to the host every this many steps (and at checkpoints and the
#: end), not every step: reading a loss waits for the device, which a GPU loop must not do.
LOSS_READ_EVERY = 50


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float | torch.Tensor) -> None:
    """``ema <- lerp(ema, model, 1 - decay)`` for every parameter in one foreach call; buffers copied.

    ``decay`` is a Python float on the CPU (the same numbers as one ``lerp_`` per parameter) or a
    0-dim tensor on the model's device (no host value per step, as a captured CUDA loop needs).
    """
    _ema_lerp(ema, model, 1 - decay if torch.is_tensor(decay) else 1.0 - decay)


@torch.no_grad()
def _ema_lerp(ema: nn.Module, model: nn.Module, weight: float | torch.Tensor) -> None:
    """``ema <- lerp(ema, model, weight)``; a 0-dim tensor ``weight`` is read on the device, not baked in."""
    ema_params = [p for p in ema.parameters()]
    params = [p.detach() for p in model.parameters()]
    if torch.is_tensor(weight):
        torch._foreach_lerp_(ema_params, params, [weight] * len(params))
    else:
        torch._foreach_lerp_(ema_params, params, weight)
    ema_buffers, buffers = list(ema.buffers()), list(model.buffers())
    if buffers:
        torch._foreach_copy_(ema_buffers, buffers)


def _ema_decay(config: "TrainConfig", step: int | torch.Tensor):
    """``min(ema_decay, (1 + k) / (10 + k))``: a float for an int step, a tensor for a tensor step."""
    if torch.is_tensor(step):
        return torch.clamp((1.0 + step) / (10.0 + step), max=config.ema_decay)
    return min(config.ema_decay, (1.0 + step) / (10.0 + step))


def _graph_train_step(model: nn.Module, ema: nn.Module, optimizer, process: GaussianDiffusion,
                      config: TrainConfig, generator: torch.Generator, null_label: int | None):
    """The training step as ``step(x0, y, k) -> loss``, run through a :class:`GraphStep` that captures it.

    Outside the graph, eagerly: the draws of :meth:`GaussianDiffusion.training_draws` (t, noise,
    dropout mask) from ``generator``, in the eager loop's order, copied with the batch into static
    tensors, and the EMA weight ``1 - decay`` of step ``k`` filled into a static tensor (the float32
    value the eager loop passes as a scalar, so both give the same EMA weights). Inside: the loss,
    the backward pass, clipping, the optimizer step (fused AdamW, whose tensor lr the loop refills)
    and the EMA update. The returned loss is a copy (a replay overwrites the static one).
    """
    device = next(model.parameters()).device
    static: dict = {}
    ema_weight = torch.zeros((), device=device)

    def body() -> torch.Tensor:
        loss = process.loss_from_draws(model, static["x0"], static["y"], static["draws"], null_label=null_label)
        optimizer.zero_grad(set_to_none=True)  # inside the capture: the graph's backward writes fresh gradients
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        _ema_lerp(ema, model, ema_weight)
        return loss.detach()

    def capturable(flag: bool) -> None:
        # AdamW refuses to be captured unless capturable (a CUDA flag; the fused kernel's numbers are
        # the same either way). Set only for the capture, so warm-up steps do not warn about it.
        for group in optimizer.param_groups:
            group["capturable"] = flag and device.type == "cuda"

    def clean_up() -> None:
        capturable(False)
        optimizer.zero_grad(set_to_none=True)  # gradients a failed capture allocated are not real ones

    graph = GraphStep(body, enabled=True, label="the training step", before_capture=lambda: capturable(True),
                      on_failure=clean_up)

    def step(x0: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        draws = process.training_draws(x0, generator=generator, label_dropout=config.label_dropout)
        if not static:
            static.update(x0=x0.clone(), y=y.clone(), draws=TrainingDraws(
                *(None if d is None else d.clone() for d in draws)))
        else:
            for target, value in zip((static["x0"], static["y"], *static["draws"]), (x0, y, *draws)):
                if target is not None:
                    target.copy_(value)
        ema_weight.fill_(1.0 - _ema_decay(config, k))  # a kernel argument, no wait for the device
        return graph().clone()

    step.graph = graph
    return step


def train_diffusion(model: nn.Module, process: GaussianDiffusion, X: np.ndarray, y: np.ndarray,
                    config: TrainConfig, *, seed: int = 0, device="cpu",
                    checkpoint_path: str | Path | None = None, progress: bool = True) -> TrainResult:
    """Train ``model`` to predict the noise of ``process`` on (X, y); resume from a checkpoint if present.

    Parameters
    ----------
    model : torch.nn.Module
        A denoiser ``model(x_t, t, y) -> eps`` (e.g. :class:`tardiff.diffusion.UNet1D`);
        trained in place (its final raw weights stay in it).
    process : GaussianDiffusion
        The diffusion process (schedule and loss type).
    X : numpy.ndarray
        Training data (N, ...) float32, e.g. (N, T, F) standardised time series.
    y : numpy.ndarray
        Integer labels (N,).
    config : TrainConfig
        Optimisation hyperparameters.
    seed : int
        Seeds the one ``torch.Generator`` behind every random draw.
    device : str or torch.device
        Where to train.
    checkpoint_path : str or Path, optional
        Checkpoint file, written atomically every ``config.checkpoint_every`` steps and at
        the end; if it exists, training resumes from it (it must come from the same model
        configuration, data, seed and training configuration, except ``iterations`` and
        ``checkpoint_every``).
    progress : bool
        Show a tqdm progress bar with the running loss.

    Returns
    -------
    TrainResult
        ``model``: a copy of the network holding the EMA weights, in eval mode;
        ``losses``: the training loss of every step (including steps before a resume);
        ``capture``: how the steps ran ("captured" or "eager (<why>)", see ``config.capture``).

    Examples
    --------
    >>> from tardiff.diffusion import GaussianDiffusion, UNet1D, UNetConfig, beta_schedule
    >>> X = np.zeros((32, 8, 2), dtype=np.float32); y = np.zeros(32, dtype=np.int64)
    >>> net = UNet1D(UNetConfig.preset("smoke"), n_features=2)
    >>> process = GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    >>> result = train_diffusion(net, process, X, y, TrainConfig.preset("smoke"), progress=False)
    >>> len(result.losses), result.model.training
    (30, False)
    """
    X, y = _check_data(X, y, model)
    device = resolve_device(device)
    model.to(device)
    process.to(device)
    if config.label_dropout > 0 and getattr(model, "null_label", None) is None:
        raise ParameterError("label_dropout > 0 needs a model with a `null_label` attribute")

    on_cuda = torch.device(device).type == "cuda"
    if on_cuda:
        # Indices, timesteps and noise drawn on the GPU (no host draws and copies per step), and
        # AdamW fused with a tensor learning rate (no host value per step). The CPU keeps its CPU
        # generator and the default AdamW, so CPU numbers are those of earlier versions.
        generator = torch.Generator(device=device).manual_seed(int(seed))
        optimizer = torch.optim.AdamW(model.parameters(), lr=torch.tensor(float(config.lr), device=device),
                                      weight_decay=config.weight_decay, fused=True)
    else:
        generator = torch_generator(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    spec = _model_spec(model)
    fingerprint = _data_fingerprint(X, y, int(seed))
    losses: list[float] = []
    start = 0

    path = Path(checkpoint_path) if checkpoint_path is not None else None
    ckpt = _read_checkpoint(path, device, rebuild=True) if path is not None and path.exists() else None
    if ckpt is not None:
        stored = {k: v for k, v in ckpt["train_config"].items() if k not in _RESUMABLE_CHANGES}
        current = {k: v for k, v in asdict(config).items() if k not in _RESUMABLE_CHANGES}
        if _comparable(ckpt["model_spec"]) != _comparable(spec) or _comparable(stored) != _comparable(current):
            raise ParameterError(f"checkpoint {path} was written with another model or training configuration; "
                                 "delete it or choose another checkpoint_path")
        if ckpt["data_fingerprint"] != fingerprint:
            raise ParameterError(f"checkpoint {path} was written for other data or another seed; "
                                 "delete it or choose another checkpoint_path")
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        for group in optimizer.param_groups:
            group["capturable"] = False  # this run's choice, not the writer's: a captured step sets it itself
        generator.set_state(ckpt["generator_state"].cpu())
        losses = [float(v) for v in ckpt["losses"]]
        start = int(ckpt["step"])

    def save(step: int) -> None:
        if path is None:
            return
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": tardiff.__version__,
            "step": step,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator_state": generator.get_state(),
            "losses": list(losses),
            "train_config": asdict(config),
            "model_spec": spec,
            "process": {"betas": torch.from_numpy(process._betas64.copy()), "loss_type": process.loss_type},
            "data_fingerprint": fingerprint,
            "seed": int(seed),
        }
        save_checkpoint(path, payload)  # atomic, with the SHA-256 sidecar a resume or load checks

    X_t = torch.from_numpy(X).to(device)
    y_t = torch.from_numpy(y).to(device)
    has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    null_label = getattr(model, "null_label", None)
    captured = None
    if not capture_applies(config.capture, device):
        status = eager_status(config.capture, device)
    elif has_dropout:
        # Never captured: a step with dropout reads a seed for the global RNG on the host (below),
        # which a CUDA graph cannot hold, and the graph would replay the same masks.
        status = "eager (dropout layers: each step reads a seed on the host)"
    else:
        captured = _graph_train_step(model, ema, optimizer, process, config, generator, null_label)
    model.train()
    bar = tqdm(total=config.iterations, initial=min(start, config.iterations), desc="diffusion training",
               disable=not progress, leave=False)
    pending: list[torch.Tensor] = []  # losses on the device, not yet read back

    def read_losses() -> None:
        if pending:
            losses.extend(torch.stack(pending).tolist())  # the same floats as float(loss), one wait
            pending.clear()

    def eager_step(idx: torch.Tensor, step: int) -> torch.Tensor:
        if has_dropout:
            # nn.Dropout draws from the global RNG: seed it from our generator inside a fork,
            # so dropout masks are reproducible and resumable and the caller's RNG is untouched.
            # (a host read of the generator's draw: the one wait per step left, only with dropout > 0,
            # which the paper UNet does not use)
            dropout_seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator, device=generator.device))
            rng_scope = seeded_global_rng(dropout_seed, device)
        else:
            rng_scope = contextlib.nullcontext()
        with rng_scope:
            loss = process.training_loss(model, X_t[idx], y_t[idx], generator=generator,
                                         label_dropout=config.label_dropout, null_label=null_label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        _ema_update(ema, model, _ema_decay(config, step))
        return loss.detach()

    for step in range(start, config.iterations):
        lr = config.lr * min(1.0, (step + 1) / max(1, config.warmup))  # linear warm-up
        for group in optimizer.param_groups:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)  # a kernel argument, no wait for the device
            else:
                group["lr"] = lr
        idx = torch.randint(0, X_t.shape[0], (config.batch_size,), generator=generator,
                            device=generator.device).to(device)
        if captured is not None:
            pending.append(captured(X_t[idx], y_t[idx], step))  # a copy of the graph's static loss
        else:
            pending.append(eager_step(idx, step))
        bar.update(1)
        if (step + 1) % LOSS_READ_EVERY == 0 or step + 1 == config.iterations:
            read_losses()
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            read_losses()
            save(step + 1)
    read_losses()
    bar.close()
    if start < config.iterations or (path is not None and not path.exists()):
        save(max(start, config.iterations))
    model.eval()
    if captured is not None:
        status = captured.graph.status
    return TrainResult(model=ema.eval(), losses=losses, capture=status)


def _import(qualified: str):
    module_name, _, name = qualified.partition(":")
    if not module_name.startswith("tardiff."):
        raise ParameterError(f"checkpoint names class {qualified!r} outside the tardiff package; refusing to load it")
    obj = importlib.import_module(module_name)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def load_denoiser(path: str | Path, device="cpu", *, ema: bool = True) -> nn.Module:
    """Rebuild a trained denoiser from a checkpoint written by :func:`train_diffusion`.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    device : str or torch.device
        Where to put the model.
    ema : bool
        Load the EMA weights (default, the ones to sample from) or the raw weights.

    Returns
    -------
    torch.nn.Module
        The model in eval mode. It must be a ``tardiff`` class with a dataclass ``config``,
        built as ``cls(config, **init_kwargs)``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tardiff.diffusion import GaussianDiffusion, UNet1D, UNetConfig, beta_schedule
    >>> X = np.zeros((8, 4, 1), dtype=np.float32); y = np.zeros(8, dtype=np.int64)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
    >>> _ = train_diffusion(UNet1D(UNetConfig.preset("smoke"), 1), GaussianDiffusion(beta_schedule("linear", 20)),
    ...                     X, y, TrainConfig.preset("smoke"), checkpoint_path=path, progress=False)
    >>> type(load_denoiser(path)).__name__
    'UNet1D'
    """
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"checkpoint {path} does not exist; train a model first (train_diffusion)")
    ckpt = _read_checkpoint(path, device)
    spec = ckpt.get("model_spec")
    if spec is None:
        raise ParameterError(f"checkpoint {path} holds a model without a dataclass `config`; rebuild it yourself "
                             "and load_state_dict(torch.load(path, weights_only=True)['ema'])")
    config = _import(spec["config_class"])(**spec["config"])
    model = _import(spec["class"])(config, **spec["kwargs"])
    model.load_state_dict(ckpt["ema" if ema else "model"])
    return model.to(device).eval()


def load_process(path: str | Path) -> GaussianDiffusion:
    """Rebuild the :class:`GaussianDiffusion` a checkpoint was trained with.

    Examples
    --------
    >>> # process = load_process("runs/unet.pt")
    """
    ckpt = _read_checkpoint(Path(path), "cpu")
    info = ckpt["process"]
    return GaussianDiffusion(info["betas"].numpy(), loss_type=info["loss_type"])
