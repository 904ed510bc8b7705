"""A run as a graph of tasks, each a pure function of its inputs, cached under its content key.

The graph is the only description of a run's work: the sequential run executes it in this
process (:func:`run_task`, collecting each task's result), a Dask cluster executes the same tasks
(:func:`execute_task`) and the driver then assembles the results sequentially from the cache.

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


def build_graph(config) -> list[Task]:
    """Every task of the run, in an order where each task comes after its dependencies.

    Per replicate (seed): the shared components, each method's synthetic sets (a tuned method's
    task also draws and judges its candidates), the sweep's pools, the calibrated variant after
    that replicate's candidate pools, then the evaluator fits and the gates."""
    from tardiff.evaluation.protocols import protocol_settings
    from tardiff.experiment.sweep import pool_source, sweep_points, wants_sweep

    tasks: list[Task] = []
    methods = config.all_methods()
    for seed in config.seeds:
        components = {c for m in methods for c in registry.method(m).components}
        tasks += [Task(component, (seed,)) for component in registry.COMPONENTS if component in components]
        for method in methods:
            entry = registry.method(method)
            if entry.factory is None or entry.guidance == "calibrated":
                continue  # real data needs no sets; the calibrated variant waits for the sweep (below)
            tasks.append(Task("sets", (method, seed), tuple((c, seed) for c in entry.components)))
        sweep_keys = []
        if wants_sweep(config):
            for options in sweep_points(config, seed):
                method, _, pool_only = pool_source(config, options)
                deps = [(component, seed) for component in registry.method(method).components]
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
            for protocol, alpha in protocol_settings(method, config.preset.alphas):
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
    """Run one task on a worker (``upstream`` are its dependencies' results, passed only to order the
    work); its artifact lands in the shared cache, and only its name is sent back."""
    from tardiff.allocator import keep_freed_memory
    from tardiff.presets import torch_threads

    keep_freed_memory()  # a worker process, started without the command line's setting
    experiment, task = experiment_for(config_dict), Task(kind, tuple(args))
    with torch_threads(experiment.config.threads):  # as in a sequential run: the same numbers
        run_task(experiment, task)
    return task.name()


def run_task(experiment, task: Task):
    """Run ``task`` for ``experiment`` and return its result: the records of an ``evaluate`` task, the
    gate row of a ``gates`` task, the sweep point of a ``sweep_point`` task (None for the others)."""
    if task.kind not in _RUNNERS:  # pragma: no cover - build_graph makes only the kinds below
        raise ValueError(f"unknown task kind {task.kind!r}")
    return _RUNNERS[task.kind](experiment, *task.args)


def _evaluate(experiment, method: str, seed: int, protocol: str, alpha: float | None, evaluator: str) -> list[dict]:
    """One evaluator trained on one protocol's training set (only that set is built)."""
    from tardiff.evaluation.protocols import training_set

    p = experiment.data(seed)
    synthetic = experiment.synthetic_sets(method, seed) if registry.method(method).factory is not None else None
    train_set = training_set(protocol, alpha, p.X_train, p.y_train, synthetic)
    return experiment.evaluated(method, seed, train_set, evaluators=(evaluator,))


def _sweep_point(experiment, seed: int, options: str) -> dict:
    from tardiff.experiment.sweep import sweep_point
    from tardiff.guidance import GuidanceOptions

    return sweep_point(experiment, seed, GuidanceOptions(**json.loads(options)))


#: What each kind of task runs (the component kinds are :data:`tardiff.registry.COMPONENTS`).
_RUNNERS = {
    "denoiser": lambda experiment, seed: experiment.denoiser(seed),
    "guidance_classifier": lambda experiment, seed: experiment.guidance_classifier(seed),
    "sets": lambda experiment, method, seed: experiment.synthetic_sets(method, seed),
    "sweep_point": _sweep_point,
    "evaluate": _evaluate,
    "gates": lambda experiment, method, seed: experiment.generator_gates(method, seed),
}
