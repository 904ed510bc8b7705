"""Sizes, devices and seeds: the one home of every default the other modules share.

* **Scale.** ``smoke`` runs in seconds (tests, CI), ``cpu`` makes the whole book on a
  2-core laptop, ``paper`` uses the papers' sizes and expects a GPU. :data:`Scale` is the
  only declaration of the three names; :func:`sizes` gives each component's size table
  (the UNet, its training, the classifiers, MCRAGE, the GBM) and :data:`EXPERIMENTS` the
  experiment-level sizes (cohort size, seeds, evaluators, the guidance sweep).
* **Guidance.** :data:`DEFAULT_GUIDANCE_SCALE` is TarDiff's ``w`` (the paper's 100). ``scale``
  always means the size preset; ``w`` is always ``guidance_scale``.
* **Devices.** :func:`resolve_device` turns ``"auto"``/``"cpu"``/``"cuda"`` into a
  ``torch.device`` (checked), for every module.
* **Threads.** :func:`torch_threads` fixes PyTorch's CPU threads for a block (a run's tasks).
* **Seeds.** Randomness is explicit: :func:`torch_generator` for stochastic torch calls and
  :func:`build_seeded` for layer constructors, which draw from torch's global RNG and take
  no generator (the global state is restored afterwards).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Literal, TypeVar, get_args

import torch

from tardiff.errors import ParameterError

Scale = Literal["smoke", "cpu", "paper"]
SCALES: tuple[str, ...] = get_args(Scale)
DeviceName = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(DeviceName)

#: TarDiff's guidance scale ``w`` (the paper's default; its sweep runs from -1000 to 1000).
DEFAULT_GUIDANCE_SCALE = 100.0

#: The TarDiff paper's evaluation ratios of synthetic to real rows (TSRTR).
PAPER_ALPHAS = (0.2, 0.4, 0.6, 0.8, 1.0)


def check_scale(scale) -> str:
    """``scale`` if it names a preset, else a one-line :class:`ParameterError`.

    Examples
    --------
    >>> check_scale("cpu")
    'cpu'
    """
    if scale not in SCALES:
        raise ParameterError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    return scale


# --------------------------------------------------------------------------- component sizes
# One table per component; the config classes read them through `XConfig.preset(scale)`.
_SIZES: dict[str, dict[str, dict]] = {
    # TarDiff's backbone at paper scale (the UNetConfig defaults): 64 channels, multipliers
    # 1, 2, 4, 4, two residual blocks per level, attention at the two lowest resolutions.
    # The cpu and smoke UNets depart from TarDiff by `level_skip` (a gated linear path from
    # x_t to the predicted noise, see UNetConfig): without it the 32-channel cpu UNet, trained
    # 1,000 steps, misses the near-identity noise of the noisiest steps (held-out error 0.217
    # at t = T - 1 on PhysioNet) and its samples are 25x off-scale. Widening instead (48 or 64
    # channels, >= the 37 PhysioNet features) cost 1.4-2x the training time and still left
    # samples 4-7x off-scale, 2-2.5x with x0_hat clipped to the training range.
    "unet": {
        "paper": {},
        "cpu": dict(base_channels=32, channel_mults=(1, 2, 2), n_res_blocks=1, attention_levels=(2,),
                    attention_heads=4, norm_groups=8, level_skip=True),
        "smoke": dict(base_channels=8, channel_mults=(1, 2), n_res_blocks=1, attention_levels=(1,),
                      attention_heads=2, norm_groups=4, embed_mult=2, level_skip=True),
    },
    # TarDiff trains with AdamW lr 1e-4, batch 256, 20,000 iterations, EMA 0.9999. The cpu
    # size (the TrainConfig defaults) is 1,000 steps of batch 32: 60 to 80 s on one core.
    "diffusion_training": {
        "paper": dict(iterations=20000, batch_size=256, lr=1e-4, weight_decay=0.0, warmup=500,
                      ema_decay=0.9999, grad_clip=1.0, checkpoint_every=2000),
        "cpu": {},
        "smoke": dict(iterations=30, batch_size=16, lr=1e-3, warmup=5, ema_decay=0.9, checkpoint_every=0),
    },
    # Neural classifiers: a size per scale, then per architecture. At paper scale the GRU is
    # the public TarDiff code's guidance classifier (hidden 256, 2 layers, dropout 0.2). At
    # cpu scale the GRU is narrower (hidden 32) because, as the guidance classifier, its double
    # backward is the cost of every guided step: 41 ms per guided PhysioNet sample on one core
    # against 62 ms at hidden 64, for the same validation AUPRC.
    "classifier": {
        "paper": dict(hidden=256, layers=2, dropout=0.2, epochs=100, batch_size=128, lr=1e-3, patience=10),
        "cpu": dict(hidden=64, layers=2, dropout=0.2, epochs=20, batch_size=256, lr=2e-3, patience=4),
        "smoke": dict(hidden=8, layers=2, dropout=0.0, epochs=3, batch_size=64, lr=3e-3, patience=2, heads=2),
    },
    "classifier_arch": {
        "paper": {"transformer": dict(hidden=128, heads=8), "cnn": dict(hidden=128, layers=4)},
        "cpu": {"gru": dict(hidden=32), "cnn": dict(layers=3)},
        "smoke": {},
    },
    # MCRAGE's network width follows the record at every scale (hidden None: 2 x the flattened
    # width, the public code's ContextUnet), so for a PhysioNet stay (48 x 37 = 1,776) the MLP is
    # 1,776 -> 3,552 -> 1,776. Steps T: 200 (the paper) at paper scale, 75 (the public augmentation
    # notebook's) at cpu scale, 200 at smoke scale (tiny records, where steps cost nothing):
    # published values with the published betas 1e-4 .. 0.02. The rest are ours (MCRAGE reports no sizes for time
    # series); fewer iterations at cpu scale are a size choice, not a change of the method.
    # Measured on one (shared) core, PhysioNet shape: 0.9 s per training step of batch 64 with no
    # hidden layer after the conditioning (n_layers 0, METHOD.md's network), so 150 steps take
    # about 2 minutes; sampling 0.12 s per stay at w = 0 and 0.2 s at w > 0 (classifier-free
    # guidance runs the network twice) for T = 75; every extra 3,552-wide layer doubles both.
    # A step costs about width^2, so at cpu scale the iterations follow the width
    # (iterations None: width_budget / width^2 within [150, max_iterations]): 150 for PhysioNet,
    # 3,000 for the simulator's 24 x 7 = 168, each about 2 minutes.
    "mcrage": {
        "paper": dict(hidden=None, n_layers=2, n_steps=200, iterations=20000, batch_size=256, lr=1e-3),
        "cpu": dict(hidden=None, n_layers=0, n_steps=75, iterations=None, width_budget=4.8e8, max_iterations=3000,
                    batch_size=64, lr=2e-3),
        # smoke checks that the pipeline runs, in seconds: a fixed 64-wide MLP. At 2 x the width a
        # smoke PhysioNet run spent about 10 minutes in MCRAGE alone (200 steps of a 3,552-wide MLP
        # for each of its three weights); 200 steps of a 64-wide one cost little.
        "smoke": dict(hidden=64, n_layers=0, n_steps=200, iterations=150, batch_size=64, lr=2e-3),
    },
    "gbm": {
        "paper": dict(max_iter=500),
        "cpu": dict(max_iter=300),
        "smoke": dict(max_iter=30),
    },
}


def sizes(component: str, scale: str, arch: str | None = None) -> dict:
    """The size settings of ``component`` at ``scale`` (a fresh dict, safe to update).

    Parameters
    ----------
    component : {"unet", "diffusion_training", "classifier", "mcrage", "gbm"}
    scale : {"smoke", "cpu", "paper"}
    arch : str, optional
        For ``"classifier"``: the architecture whose overrides apply on top.

    Examples
    --------
    >>> sizes("classifier", "cpu", "gru")["hidden"]
    32
    >>> sizes("mcrage", "smoke")["iterations"]
    150
    """
    check_scale(scale)
    if component not in _SIZES or component == "classifier_arch":
        names = sorted(k for k in _SIZES if k != "classifier_arch")
        raise ParameterError(f"component must be one of {', '.join(names)}; got {component!r}")
    out = dict(_SIZES[component][scale])
    if component == "classifier" and arch is not None:
        out.update(_SIZES["classifier_arch"][scale].get(arch, {}))
    return out


# --------------------------------------------------------------------------- experiment sizes
@dataclass(frozen=True)
class ExperimentPreset:
    """Experiment-level sizes of one scale.

    Power comes from the test split, compute from the training split, so the small scales
    subsample only what is trained on: ``fit_stays`` stays are drawn (stratified) for training
    and validation (8:1), and every other stay of the cohort is a test stay (PhysioNet 2012 at
    cpu scale: about 7,100 test stays); a generated dataset (the simulated cohort) draws its
    own sizes and a fresh test split, with its known Bayes posterior, as its registry entry
    says (:class:`tardiff.data.registry.FreshDraws`). The paper preset keeps the papers'
    80/10/10 split of the whole cohort.

    Each of a run's seeds is a *replicate*: its own draw of every split and its own seeds for
    every trained component. Beside training and validation (early stopping, the decision
    threshold) a replicate holds out a guidance set (``guide_stays``) and model-selection data
    (``select_stays``), so that no stay does two jobs (:func:`tardiff.experiment.data.held_out_parts`).
    """

    fit_stays: int | None  # stays drawn for training + validation (None: 80/10/10 of the whole cohort)
    guide_stays: int | None  # held out as TarDiff's guidance set D_g (None: a third of validation)
    select_stays: int | None  # held out for model selection and the quality gate (None: a third of validation)
    alphas: tuple[float, ...]
    bootstrap: int  # bootstrap resamples for the test-set CIs and the paired comparisons
    seeds: tuple[int, ...]  # default replicates (each seed draws its own split and seeds every component)
    evaluators: tuple[str, ...]  # default downstream classifiers (the first one is the main one)
    sweep_raw: tuple[float, ...]  # the sweep's raw guidance scales w (the paper's guidance; shown, not chosen)
    sweep_unit: tuple[float, ...]  # the calibrated scales (guidance_norm "unit"): tardiff_cal's candidates with 0
    sweep_code: tuple[float, ...]  # the public code's form (x0_hat, cosine, training set as D_g), unit scales
    sweep_seeds: int  # how many of the run's replicates the descriptive sweep (raw, code) covers
    gate_epochs: int  # training epochs of the post-hoc discriminator of the quality gate
    guidance_candidates: tuple[dict, ...]  # guidance-classifier settings tried; the best validation AUPRC wins
    embedding_samples: int  # stays per set in the PCA / t-SNE pictures


_SWEEP_RAW = (0.0, 1.0, 3.0, 10.0, 100.0)
# The calibrated candidates reach below 0.01, which won on every dataset when it was the smallest
# (so that sweep did not bracket the optimum); w = 0 (the unguided pool) is always a candidate too.
_SWEEP_UNIT = (0.001, 0.003, 0.01, 0.03, 0.1)
_SWEEP_CODE = (0.003, 0.03)

EXPERIMENTS: dict[str, ExperimentPreset] = {
    "smoke": ExperimentPreset(fit_stays=270, guide_stays=100, select_stays=100,
                              alphas=(0.5, 1.0), bootstrap=50, seeds=(0,), evaluators=("cnn",),
                              sweep_raw=(0.0, 100.0), sweep_unit=(0.1,), sweep_code=(), sweep_seeds=1, gate_epochs=2,
                              guidance_candidates=({},), embedding_samples=150),
    # The GBM on per-feature summaries judges every method at cpu scale: a different model from the
    # guidance GRU, so TarDiff is not scored by the model that steered it (the paper uses TimesNet),
    # the model many clinical teams would use (DESIGN.md: AUROC 0.849 on PhysioNet A+B), and seconds
    # per fit where the CNN took 5-10 s: each replicate fits one evaluator per method, protocol and
    # calibrated candidate (about 25), and the book's headline datasets run 10 replicates. The
    # guidance GRU's preset early-stopped at epoch 3 (validation AUPRC 0.33 on the simulator where
    # ~0.56 is reachable): a slower, more patient candidate is tried beside it. TSRTR runs at one
    # ratio, as many synthetic rows as real ones: a second ratio (0.5) cost 15 evaluator fits per
    # dataset, about 3 minutes of the cpu book's 2-core budget (the paper scale keeps all five).
    # 900 stays (800 train, 100 validation; 1,125 simulated, set in tardiff.data.registry) keep the
    # book within 30 minutes on two cores: with 1,080 (1,350) and both ratios it took 35.4.
    # Guidance and selection stays are held out of the test pool, not of training: 300 guide and 500
    # select stays (PhysioNet 2012 at 14% mortality: ~70 positive selection stays; simulated: fresh
    # draws, ~35 positives), so the selection data has at least 30 positives.
    "cpu": ExperimentPreset(fit_stays=900, guide_stays=300, select_stays=500,
                            alphas=(1.0,), bootstrap=200, seeds=(0, 1, 2), evaluators=("gbm",),
                            sweep_raw=_SWEEP_RAW, sweep_unit=_SWEEP_UNIT, sweep_code=_SWEEP_CODE, sweep_seeds=1,
                            gate_epochs=5,
                            guidance_candidates=({}, {"lr": 1e-3, "patience": 8, "epochs": 40}),
                            embedding_samples=300),
    "paper": ExperimentPreset(fit_stays=None, guide_stays=None, select_stays=None,
                              alphas=PAPER_ALPHAS, bootstrap=1000, seeds=tuple(range(10)),
                              evaluators=("cnn", "gru"), sweep_raw=_SWEEP_RAW + (1000.0,), sweep_unit=_SWEEP_UNIT,
                              sweep_code=_SWEEP_CODE, sweep_seeds=5,
                              gate_epochs=20, guidance_candidates=({},), embedding_samples=2000),
}


def experiment_preset(scale: str) -> ExperimentPreset:
    """The :class:`ExperimentPreset` of ``scale``."""
    return EXPERIMENTS[check_scale(scale)]


# --------------------------------------------------------------------------- devices
def resolve_device(device=None) -> torch.device:
    """``"auto"`` (or None) -> cuda when available, else cpu; otherwise ``torch.device(device)``, checked.

    Examples
    --------
    >>> str(resolve_device("cpu"))
    'cpu'
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ParameterError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device='cuda' was requested but torch sees no CUDA device; use device='cpu' or 'auto'")
    return device


# --------------------------------------------------------------------------- seeds
def torch_generator(seed: int, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (for every stochastic torch call).

    Examples
    --------
    >>> a = torch.randn(2, generator=torch_generator(0)); b = torch.randn(2, generator=torch_generator(0))
    >>> bool(torch.equal(a, b))
    True
    """
    return torch.Generator(device=device).manual_seed(int(seed))


@contextlib.contextmanager
def seeded_global_rng(seed: int, device=None) -> Iterator[None]:
    """Seed torch's global RNG for the block and restore it afterwards.

    For what takes no generator: layer constructors (initial weights) and dropout. The CUDA
    RNG of ``device`` is forked too when it is a CUDA device.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with PyTorch's CPU (intra-op) threads set to ``threads``, then restore them.

    Results on a CPU depend on the thread count (a sum split over threads is added in another
    order), so a run fixes it for every task instead of taking each process's default: a
    sequential run and Dask workers then compute the same numbers. Measured on PhysioNet at
    cpu scale, two threads against one changed test AUPRC by 0.004 on average (at most 0.035).

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


T = TypeVar("T")


def build_seeded(factory: Callable[[], T], seed: int) -> T:
    """Call ``factory()`` (e.g. a network constructor) with torch's global RNG seeded by ``seed``.

    The weights then depend only on ``seed``, and the caller's RNG state is left as it was.

    Examples
    --------
    >>> a = build_seeded(lambda: torch.nn.Linear(2, 2), 0); b = build_seeded(lambda: torch.nn.Linear(2, 2), 0)
    >>> bool(torch.equal(a.weight, b.weight))
    True
    """
    with seeded_global_rng(seed):
        return factory()
