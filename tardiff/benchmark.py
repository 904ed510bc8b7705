"""The speed benchmark behind ``tardiff bench``: training step, sampling with and without guidance, G.

It measures, on this machine and at one configuration (``cpu`` by default, ``paper`` on a
GPU), at the shape and batch sizes the experiment runner uses (PhysioNet 2012's 48 x 37 stays;
the configuration's training batch; the samplers' generation batch), the median of repeated
timings of

- one denoiser training step (ms, and steps per second);
- unguided and TarDiff-guided DDIM sampling, same steps and batch (seconds per sample),
  and their ratio;
- computing the guidance vector G over a guidance set of ``n_guidance`` stays (s);

and the peak memory (GPU memory on CUDA, the process's resident memory on a CPU). Models are
untrained (timing does not depend on the weights). Results are written as JSON to
``benchmarks/results/speed-<config>-<device>.json``.
"""

from __future__ import annotations

import collections
import platform
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import tardiff
from tardiff.data.cache import write_json
from tardiff.presets import DEFAULT_GUIDANCE_SCALE, build_seeded, torch_generator


#: PhysioNet 2012's grid, the largest of the open datasets the runner meets.
RUNNER_SHAPE = (48, 37)


class _OpCounter(TorchDispatchMode):
    """Counts the aten operators dispatched inside it, views excluded (they launch no kernel)."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.counts[str(func.overloadpacket)] += 1
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten._to_copy, torch.ops.aten.copy_) and torch.is_tensor(out) \
                and args and torch.is_tensor(args[-1 if func.overloadpacket is torch.ops.aten.copy_ else 0]):
            source = args[1] if func.overloadpacket is torch.ops.aten.copy_ else args[0]
            if source.device != out.device:
                self.counts["device_copy"] += 1  # a copy between devices (host to device or back)
        return out


def count_ops(fn, *, by_name: bool = False):
    """The number of aten operators ``fn()`` dispatches (views excluded), or a Counter by name.

    The Counter also holds ``"device_copy"``: copies between devices (not added to the total).

    On the meta device nothing is computed, so paper-scale networks are counted in a second.
    Counts do not depend on the batch size.

    Examples
    --------
    >>> x = torch.zeros(4, 6, device="meta")
    >>> count_ops(lambda: (x.t() * 2).sum())
    2
    """
    with _OpCounter() as counter:
        fn()
    return counter.counts if by_name else sum(v for k, v in counter.counts.items() if k != "device_copy")


def _unet_inputs(config: str, batch: int, device, n_steps: int = RUNNER_SHAPE[0], n_features: int = RUNNER_SHAPE[1]):
    from tardiff.diffusion import UNet1D, UNetConfig

    with torch.device(device):
        model = UNet1D(UNetConfig.preset(config), n_features=n_features)
        x = torch.randn(batch, n_steps, n_features)
        t = torch.randint(0, 200, (batch,))
        y = torch.randint(0, 2, (batch,))
    return model, x, t, y


def unet_ops(config: str = "paper", *, batch: int = 256, device="meta") -> tuple[int, int]:
    """Operators of the ``config`` UNet's forward, and of its forward and backward, at the runner's shape.

    Examples
    --------
    >>> fwd, fwd_bwd = unet_ops("smoke", batch=2)
    >>> fwd < fwd_bwd
    True
    """
    model, x, t, y = _unet_inputs(config, batch, device)
    model(x, t, y)  # warm-up: builds the per-batch-size gather index once
    fwd = count_ops(lambda: model(x, t, y))
    fwd_bwd = count_ops(lambda: model(x, t, y).sum().backward())
    return fwd, fwd_bwd


def unet_flops(config: str = "paper", *, batch: int = 256, device="meta") -> int:
    """FLOPs of one forward and backward of the ``config`` UNet at the runner's shape (flop_counter's count)."""
    model, x, t, y = _unet_inputs(config, batch, device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, t, y).sum().backward()
    return int(counter.get_total_flops())


def _guided_setup(config: str, batch: int, device, n_steps: int = RUNNER_SHAPE[0], n_features: int = RUNNER_SHAPE[1]):
    from tardiff.classifiers import ClassifierConfig, build_network
    from tardiff.diffusion import GaussianDiffusion, beta_schedule
    from tardiff.guidance import InfluenceGuidance

    model, x, t, y = _unet_inputs(config, batch, device, n_steps, n_features)
    model.eval()
    with torch.device(device):
        classifier = build_network(ClassifierConfig.preset(config, "gru"), n_features).eval()
        G = torch.randn(sum(p.numel() for p in classifier.parameters()))
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 200)).to(device)
    return model, process, InfluenceGuidance(classifier, G, DEFAULT_GUIDANCE_SCALE), x, y


def sampling_step_ops(config: str = "paper", *, batch: int = 256, guided: bool = True, device="meta") -> int:
    """Operators of one DDIM step (the denoiser's forward, plus the influence gradient when ``guided``).

    Examples
    --------
    >>> sampling_step_ops("smoke", batch=2, guided=False) < sampling_step_ops("smoke", batch=2)
    True
    """
    model, process, cond_fn, x, y = _guided_setup(config, batch, device)

    def step():
        process.sample(model, tuple(x.shape), y, n_steps=1, cond_fn=cond_fn if guided else None, x_T=x,
                       device=device)

    step()  # warm-up (cached gather indices)
    return count_ops(step)


def sampling_step_flops(config: str = "paper", *, batch: int = 256, guided: bool = True, device="meta") -> int:
    """FLOPs of one DDIM step, guided or not (flop_counter's count: matrix products and convolutions)."""
    model, process, cond_fn, x, y = _guided_setup(config, batch, device)
    counter = FlopCounterMode(display=False)
    with counter:
        process.sample(model, tuple(x.shape), y, n_steps=1, cond_fn=cond_fn if guided else None, x_T=x,
                       device=device)
    return int(counter.get_total_flops())


def _median_time(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _paired_times(fn_a, fn_b, repeats: int, device: str) -> tuple[list[float], list[float]]:
    """Times of ``fn_a`` and ``fn_b`` run alternately ``repeats`` times: each pair sees the same
    machine load, so their ratio is steadier than a ratio of separate medians."""
    a, b = [], []
    for _ in range(repeats):
        a.append(_median_time(fn_a, 1, device))
        b.append(_median_time(fn_b, 1, device))
    return a, b


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2 ** 20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def run_speed_benchmark(config: str = "cpu", *, device: str = "cpu", n_steps: int = RUNNER_SHAPE[0],
                        n_features: int = RUNNER_SHAPE[1], batch_size: int | None = None,
                        sample_batch_size: int | None = None, ddim_steps: int = 20,
                        guidance_scale: float = DEFAULT_GUIDANCE_SCALE, n_guidance: int = 1000, repeats: int = 3,
                        seed: int = 0) -> dict:
    """Time training, unguided and guided sampling, and G at ``config`` ("smoke", "cpu" or "paper").

    Examples
    --------
    >>> result = run_speed_benchmark("smoke", repeats=1, batch_size=8, n_guidance=32)  # doctest: +SKIP
    >>> result["guided_over_unguided"] > 0                                                # doctest: +SKIP
    True
    """
    from tardiff.classifiers import ClassifierConfig, build_network
    from tardiff.diffusion import GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule
    from tardiff.guidance import InfluenceGuidance, guidance_vector
    from tardiff.samplers import UnguidedDiffusionSampler

    # The runner's batches: the configuration's training batch, the samplers' generation batch.
    batch_size = batch_size or TrainConfig.preset(config).batch_size
    sample_batch_size = sample_batch_size or UnguidedDiffusionSampler().batch_size
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    gen = torch_generator(seed)
    unet_cfg = UNetConfig.preset(config)
    model = UNet1D(unet_cfg, n_features=n_features, seed=seed).to(device)
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 200)).to(device)
    clf_cfg = ClassifierConfig.preset(config, "gru")
    classifier = build_seeded(lambda: build_network(clf_cfg, n_features), seed).to(device).eval()

    x0 = torch.randn(batch_size, n_steps, n_features, generator=gen).to(device)
    y = (torch.arange(batch_size) % 2).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        optimiser.zero_grad()
        loss = process.training_loss(model, x0, y, generator=gen)
        loss.backward()
        optimiser.step()

    train_step()  # warm-up
    ops_per_train_step = count_ops(train_step)  # one step under a counting dispatch mode
    train_ms = 1000 * _median_time(train_step, repeats, device)
    model.eval()

    Xg = np.random.default_rng(seed).normal(size=(n_guidance, n_steps, n_features)).astype(np.float32)
    yg = (np.arange(n_guidance) % 2).astype(np.int64)
    g_seconds = _median_time(lambda: guidance_vector(classifier, Xg, yg, device=device), repeats, device)
    G = guidance_vector(classifier, Xg, yg, device=device)
    y_sample = (torch.arange(sample_batch_size) % 2).to(device)
    cond_fn = InfluenceGuidance(classifier, G, guidance_scale)

    def sample(guided: bool):
        g = torch_generator(seed)
        process.sample(model, (sample_batch_size, n_steps, n_features), y_sample, method="ddim", n_steps=ddim_steps, eta=1.0,
                       cond_fn=cond_fn if guided else None, generator=g, device=device)

    sample(True)  # warm-up
    unguided_times, guided_times = _paired_times(lambda: sample(False), lambda: sample(True), repeats, device)
    unguided = statistics.median(unguided_times) / sample_batch_size
    guided = statistics.median(guided_times) / sample_batch_size
    return {
        "benchmark": "speed", "config": config, "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "tardiff": tardiff.__version__,
        "shape": [batch_size, n_steps, n_features], "sample_batch_size": sample_batch_size,
        "ddim_steps": ddim_steps, "repeats": repeats,
        "unet_parameters": sum(p.numel() for p in model.parameters()),
        "classifier_parameters": sum(p.numel() for p in classifier.parameters()),
        "unet_config": asdict(unet_cfg), "train_step_ms": train_ms, "train_steps_per_s": 1000.0 / train_ms,
        "unguided_s_per_sample": unguided, "guided_s_per_sample": guided,
        # the median of the ratios of guided and unguided runs made one after the other
        "guided_over_unguided": statistics.median(g / u for g, u in zip(guided_times, unguided_times)),
        "target_guided_over_unguided": 1.5,
        # issue 23: operators per step (aten, views excluded; the guided step counted on the meta
        # device) and the arithmetic a guided step adds, next to the time it adds
        "ops_per_train_step": ops_per_train_step,
        "ops_per_guided_step": sampling_step_ops(config, batch=sample_batch_size, guided=True),
        "ops_per_unguided_step": sampling_step_ops(config, batch=sample_batch_size, guided=False),
        "guided_over_unguided_flops": (sampling_step_flops(config, batch=sample_batch_size, guided=True)
                                       / sampling_step_flops(config, batch=sample_batch_size, guided=False)),
        "guidance_vector_s": g_seconds, "n_guidance": n_guidance, "peak_memory_mb": _peak_memory_mb(device),
        "paper_reference": {"guided_s_per_sample_A100": 0.0259, "guidance_vector_s_mimic": 27.5},
    }


def _timed(fn, device: str):
    """``fn()`` and its wall time in seconds (the device's queue drained before and after)."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def _max_abs_diff(a, b) -> float:
    return max((float((x.float() - y.float()).abs().max()) for x, y in zip(a, b)), default=0.0)


def capture_check(device: str = "cuda", *, config: str = "smoke", iterations: int = 30, n_stays: int = 64,
                  shape: tuple[int, int] = RUNNER_SHAPE, sample_batch_size: int = 64, ddim_steps: int = 20,
                  calls: int = 3, seed: int = 0) -> dict:
    """Captured against eager (issue 23): the same small training run and guided sampling, both ways.

    Trains a ``config`` denoiser for ``iterations`` steps from ``seed`` with ``capture="off"``
    (twice: the second run shows how far the device itself is from deterministic) and
    ``"on"``, and samples one guided batch ``calls`` times in a row both ways (a captured loop
    runs eagerly once, is captured on the next call and replayed after), with identically seeded
    generators. Reports the largest absolute differences of losses, EMA weights and samples, the
    capture statuses, and the time per step and per call. Where capture does not apply (any
    device but CUDA) it only reports the statuses.

    Examples
    --------
    >>> capture_check("cpu")
    {'compared': False, 'train': {'status_on': 'eager (cpu)'}, 'sample': {'status_on': 'eager (cpu)'}}
    """
    from tardiff.classifiers import ClassifierConfig, build_network
    from tardiff.diffusion import GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule, train_diffusion
    from tardiff.diffusion.capture import capture_applies, eager_status
    from tardiff.guidance import InfluenceGuidance

    if not capture_applies("on", device):
        status = eager_status("on", device)
        return {"compared": False, "train": {"status_on": status}, "sample": {"status_on": status}}
    n_steps, n_features = shape
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_stays, n_steps, n_features)).astype(np.float32)
    y = (np.arange(n_stays) % 2).astype(np.int64)
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 200))

    def train(capture: str):
        model = UNet1D(UNetConfig.preset(config), n_features=n_features, seed=seed)
        cfg = TrainConfig.preset(config, iterations=iterations, checkpoint_every=0, capture=capture)
        return _timed(lambda: train_diffusion(model, process, X, y, cfg, seed=seed, device=device, progress=False),
                      device)

    (off, off_s), (rerun, _), (on, on_s) = train("off"), train("off"), train("on")
    weights = [list(r.model.state_dict().values()) for r in (off, rerun, on)]
    report = {"compared": True, "train": {
        "config": config, "iterations": iterations, "status_off": off.capture, "status_on": on.capture,
        "max_abs_loss_diff": max(abs(a - b) for a, b in zip(off.losses, on.losses)),
        "max_abs_ema_weight_diff": _max_abs_diff(weights[0], weights[2]),
        "eager_rerun_max_abs_loss_diff": max(abs(a - b) for a, b in zip(off.losses, rerun.losses)),
        "eager_rerun_max_abs_ema_weight_diff": _max_abs_diff(weights[0], weights[1]),
        # whole runs: the captured one includes its warm-up steps and the capture
        "s_per_step_off": off_s / iterations, "s_per_step_on": on_s / iterations}}

    model = off.model.to(device)
    classifier = build_seeded(lambda: build_network(ClassifierConfig.preset(config, "gru"), n_features),
                              seed).to(device).eval()
    G = torch.randn(sum(p.numel() for p in classifier.parameters()), generator=torch_generator(seed)).to(device)
    cond_fn = InfluenceGuidance(classifier, G, DEFAULT_GUIDANCE_SCALE)
    labels = (torch.arange(sample_batch_size) % 2).to(device)
    process = process.to(device)

    def sample(capture: str):
        g = torch_generator(seed)
        runs = [_timed(lambda: process.sample(model, (sample_batch_size, n_steps, n_features), labels,
                                              n_steps=ddim_steps, eta=1.0, cond_fn=cond_fn, generator=g,
                                              device=device, capture=capture), device) for _ in range(calls)]
        return [x for x, _ in runs], [s for _, s in runs], process.capture_status

    (x_off, s_off, status_off), (x_rerun, _, _), (x_on, s_on, status_on) = sample("off"), sample("off"), sample("on")
    report["sample"] = {
        "batch": sample_batch_size, "ddim_steps": ddim_steps, "calls": calls, "status_off": status_off,
        "status_on": status_on, "max_abs_sample_diff": _max_abs_diff(x_off, x_on),
        "eager_rerun_max_abs_sample_diff": _max_abs_diff(x_off, x_rerun),
        # per call: the captured loop's first call is its eager warm-up, the second its capture
        "s_per_call_off": s_off, "s_per_call_on": s_on}
    report["agree"] = (report["train"]["status_on"] == report["sample"]["status_on"] == "captured"
                       and report["train"]["max_abs_loss_diff"] == report["train"]["max_abs_ema_weight_diff"]
                       == report["sample"]["max_abs_sample_diff"] == 0.0)
    return report


def write_result(result: dict, folder: str | Path = "benchmarks/results") -> Path:
    """Write ``result`` atomically as ``speed-<config>-<device>.json`` under ``folder``."""
    path = Path(folder) / f"speed-{result['config']}-{result['device']}.json"
    write_json(path, result)
    return path
