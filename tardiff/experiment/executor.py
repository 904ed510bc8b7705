"""Where a run's tasks execute: in this process, on a local Dask cluster, or on an existing one.

* no option: today's sequential path, :meth:`Experiment.run` in this process;
* ``workers=N``: a Dask ``LocalCluster`` of ``N`` single-threaded worker processes on this
  machine (with CUDA, the visible GPUs are shared out: worker ``i`` uses GPU ``i % count``);
* ``scheduler="tcp://HOST:PORT"``: an existing Dask cluster, started by hand (``dask
  scheduler`` and ``dask worker``), by dask-jobqueue on Slurm or PBS, or on Kubernetes. Its
  workers must see the same cache folder (``--cache-dir`` on a shared file system) and the
  same data folder.

Either way the task graph of :mod:`tardiff.experiment.tasks` is submitted with its
dependencies; a task whose worker dies is retried on another (:data:`RETRIES` times), and
since every task's output is written atomically under its content key, a retried or repeated
task changes nothing. When the graph is done the driver assembles ``results.json`` with the
sequential run, which then only reads the cache: the results are the same whichever executor
ran the tasks (timings aside).
"""

from __future__ import annotations

import sys
from dataclasses import asdict

from tqdm import tqdm

from tardiff.allocator import keep_freed_memory
from tardiff.data.cache import hash_key
from tardiff.errors import ParameterError
from tardiff.experiment.config import ExperimentConfig
from tardiff.experiment.runner import Experiment
from tardiff.experiment.tasks import build_graph, execute_task

#: How often a task is resubmitted after its worker died.
RETRIES = 2


def run(config: ExperimentConfig, *, workers: int | None = None, scheduler: str | None = None) -> list[dict]:
    """Run ``config`` with the chosen executor and return its records (``results.json`` is written)."""
    if workers is not None and scheduler is not None:
        raise ParameterError("pass either --workers (a local cluster) or --scheduler (an existing one), not both")
    keep_freed_memory()  # also for a notebook's run (see tardiff.allocator)
    if workers is None and scheduler is None:
        return Experiment(config).run()
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ParameterError(f"--workers must be a positive whole number; got {workers!r}")
    config.check_writable()
    client, cluster = _connect(workers, scheduler)
    try:
        if config.progress and client.dashboard_link:
            print(f"tardiff: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        run_graph(client, config)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return Experiment(config).run()  # every artifact is cached now: this only assembles the results


def _connect(workers: int | None, scheduler: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # a core dependency: only a broken installation lacks it
        raise ParameterError("dask[distributed] is not installed; run `pip install 'dask[distributed]'`") from err
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError) as err:
            raise ParameterError(f"no Dask scheduler answered at {scheduler}: {err}; start one with "
                                 "`dask scheduler` and `dask worker ADDRESS`") from None
    cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster), cluster


def run_graph(client, config: ExperimentConfig) -> None:
    """Submit every task of ``config`` with its dependencies and wait for all of them."""
    from distributed import as_completed

    config_dict = asdict(config)
    run_key = hash_key(config_dict)  # task keys unique per run: a shared scheduler may serve several
    futures = {}
    for task in build_graph(config):
        upstream = [futures[key] for key in task.deps if key in futures]
        futures[task.key] = client.submit(execute_task, config_dict, task.kind, task.args, *upstream,
                                          key=f"tardiff-{run_key}-{task.name()}", pure=False, retries=RETRIES)
    done = tqdm(total=len(futures), desc=f"{config.dataset}: tasks", disable=not config.progress)
    for future in as_completed(list(futures.values())):
        future.result()  # re-raises a task's error here, with its own message
        done.update(1)
    done.close()
