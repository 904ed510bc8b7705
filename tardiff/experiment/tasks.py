"""A run as a graph of tasks, each a pure function of its inputs, cached under its content key.

:func:`build_graph` lists the tasks of one :class:`~tardiff.experiment.ExperimentConfig` with their
dependencies: per seed the shared components (the denoiser, the guidance classifier), then
each method's synthetic sets, the guidance sweep's pools, the calibrated variant (after the
calibrated sweep points it is chosen from), and one evaluator fit per method x protocol x
ratio x evaluator, and the quality gates. :func:`execute_task` runs one task in whatever
process it lands in: it writes its artifact into the shared cache (atomically, under a file
lock, keyed by content) and returns nothing worth sending back. Any executor may therefore run
the tasks in any order that respects the dependencies, on any number of processes or machines
that share the cache folder, and an interrupted run resumes. The driver then assembles the
results with the ordinary sequential run, which finds every artifact in the cache.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from tardiff import registry

Key = tuple


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` and its arguments, and the keys of the tasks it waits for."""

    kind: str
    args: tuple
    deps: tuple[Key, ...] = field(default=())

    @property
    def key(self) -> Key:
        return (self.kind, *self.args)

    def name(self) -> str:
        """A readable, unique name (for progress bars and a scheduler's task keys)."""
        return "-".join(str(a) for a in self.key)


def _protocol_settings(method: str, alphas) -> list[tuple[str, float | None]]:
    out = []
    for protocol in registry.method(method).protocols:
        out += [(protocol, float(a)) for a in alphas] if protocol == "tsrtr" else [(protocol, None)]
    return out


def build_graph(config) -> list[Task]:
    """Every task of the run, in an order where each task comes after its dependencies.

    Per replicate (seed): the shared components, each method's synthetic sets (a tuned method's
    task also draws and judges its candidates), the sweep's pools, the calibrated variant after
    that replicate's candidate pools, then the evaluator fits and the gates."""
    from tardiff.experiment.sweep import pool_source, sweep_points, wants_sweep

    tasks: list[Task] = []
    methods = config.all_methods()
    for seed in config.seeds:
        components = {c for m in methods for c in registry.method(m).components}
        tasks += [Task(component, (seed,)) for component in ("denoiser", "guidance_classifier") if component in components]
        for method in methods:
            entry = registry.method(method)
            if entry.factory is None or entry.guidance == "calibrated":
                continue  # real data needs no sets; the calibrated variant waits for the sweep (below)
            tasks.append(Task("sets", (method, seed), tuple((c, seed) for c in entry.components)))
        sweep_keys = []
        if wants_sweep(config):
            for options in sweep_points(config, seed):
                deps = [("denoiser", seed), ("guidance_classifier", seed)]
                method, _, pool_only = pool_source(config, options)
                if not pool_only:  # the sweep reuses a main pool: wait for it
                    deps.append(("sets", method, seed))
                task = Task("sweep_point", (seed, json.dumps(asdict(options), sort_keys=True)), tuple(deps))
                tasks.append(task)
                sweep_keys.append(task.key)
        for method in methods:
            entry = registry.method(method)
            if entry.guidance == "calibrated":
                deps = tuple((c, seed) for c in entry.components) + tuple(sweep_keys)
                tasks.append(Task("sets", (method, seed), deps))
            sets = (("sets", method, seed),) if entry.factory is not None else ()
            for protocol, alpha in _protocol_settings(method, config.preset.alphas):
                for evaluator in config.evaluators:
                    tasks.append(Task("evaluate", (method, seed, protocol, alpha, evaluator), sets))
            if entry.synthetic:
                tasks.append(Task("gates", (method, seed), sets))
    return tasks


# --------------------------------------------------------------------------- running one task
_EXPERIMENTS: dict[str, object] = {}  # one prepared Experiment per config and process


def experiment_for(config_dict: dict):
    """The process's :class:`~tardiff.experiment.Experiment` for this config (loaded once per process)."""
    from tardiff.experiment import Experiment, ExperimentConfig

    key = json.dumps(config_dict, sort_keys=True, default=str)
    if key not in _EXPERIMENTS:
        _select_gpu()
        _EXPERIMENTS[key] = Experiment(ExperimentConfig(**{**config_dict, "progress": False}))
    return _EXPERIMENTS[key]


def _select_gpu() -> None:
    """On a Dask worker of a machine with several GPUs, use GPU ``worker index % count``."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2 or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return
    index = name if isinstance(name, int) else sum(map(ord, str(name)))
    torch.cuda.set_device(index % torch.cuda.device_count())


def execute_task(config_dict: dict, kind: str, args: tuple, *upstream) -> str:
    """Run one task (``upstream`` are its dependencies' results, passed only to order the work)."""
    from tardiff.presets import torch_threads

    experiment = experiment_for(config_dict)
    with torch_threads(experiment.config.threads):  # as in a sequential run: the same numbers
        _execute(experiment, kind, args)
    return "-".join(str(a) for a in (kind, *args))


def _execute(experiment, kind: str, args: tuple) -> None:
    from tardiff.evaluation.protocols import training_sets
    from tardiff.experiment.sweep import sweep_point
    from tardiff.guidance import GuidanceOptions

    if kind == "denoiser":
        experiment.denoiser(*args)
    elif kind == "guidance_classifier":
        experiment.guidance_classifier(*args)
    elif kind == "sets":
        experiment.synthetic_sets(*args)
    elif kind == "sweep_point":
        seed, options = args
        sweep_point(experiment, seed, GuidanceOptions(**json.loads(options)))
    elif kind == "gates":
        experiment.generator_gates(*args)
    elif kind == "evaluate":
        method, seed, protocol, alpha, evaluator = args
        p = experiment.data(seed)
        synthetic = experiment.synthetic_sets(method, seed) if registry.method(method).factory is not None else None
        for train_set in training_sets(method, p.X_train, p.y_train, synthetic, experiment.config.preset.alphas):
            if train_set.protocol == protocol and train_set.alpha == alpha:
                experiment.evaluated(method, seed, train_set, evaluators=(evaluator,))
    else:  # pragma: no cover - build_graph makes only the kinds above
        raise ValueError(f"unknown task kind {kind!r}")
