"""The task graph gives the same results whichever executor runs it: in process, a local Dask
cluster, or an external scheduler on loopback, even when a worker dies in the middle of a task."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tardiff import registry
from tardiff.errors import ParameterError
from tardiff.experiment import ExperimentConfig, executor
from tardiff.experiment.tasks import build_graph

pytestmark = pytest.mark.slow

DASK = Path(sys.executable).with_name("dask")


def config(tmp_path: Path, name: str) -> ExperimentConfig:
    return ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "smote", "unguided", "tardiff",
                                                                          "tardiff_cal"),
                            evaluators=("gbm",), seeds=(0,), progress=False, out_dir=str(tmp_path / name / "out"),
                            cache_dir=str(tmp_path / name / "cache"))


def comparable(out: Path) -> dict:
    """results.json without what legitimately differs between executors (timings)."""
    results = json.loads((out / "results.json").read_text())
    for record in results["records"]:
        record.pop("fit_seconds")
    results.pop("timings")
    results["config"].pop("out_dir"), results["config"].pop("cache_dir")
    return results


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sequential")
    executor.run(config(tmp, "seq"))
    return comparable(tmp / "seq" / "out")


def test_the_graph_orders_every_task_after_its_dependencies(tmp_path):
    tasks = build_graph(config(tmp_path, "g"))
    seen = set()
    for task in tasks:
        assert set(task.deps) <= seen, task
        seen.add(task.key)
    kinds = {t.kind for t in tasks}
    assert kinds == {"denoiser", "guidance_classifier", "sets", "sweep_point", "evaluate", "gates"}
    calibrated = next(t for t in tasks if t.key == ("sets", "tardiff_cal", 0))
    assert any(d[0] == "sweep_point" for d in calibrated.deps)  # chosen from the calibrated sweep first
    evaluations = [t for t in tasks if t.kind == "evaluate"]
    cfg = config(tmp_path, "g")
    extra_ratios = len(cfg.preset.alphas) - 1  # TSRTR is one fit per ratio
    expected = sum(len(registry.method(m).protocols) + (extra_ratios if "tsrtr" in registry.method(m).protocols else 0)
                   for m in cfg.all_methods())
    assert len(evaluations) == expected  # one evaluator fit per method x protocol x ratio (smoke: 2 ratios)


def test_the_sequential_run_executes_the_graph_and_nothing_else(tmp_path, monkeypatch):
    """One enumeration of the work: the in-process run is the graph's tasks, in the graph's order,
    and every kind of task the graph can hold (every shared component among them) has a runner."""
    from tardiff.experiment import Experiment, tasks

    cfg = config(tmp_path, "one")
    ran = []
    monkeypatch.setattr(tasks, "run_task", lambda experiment, task: ran.append(task.key) or [])
    monkeypatch.setattr(Experiment, "compare", lambda self, records: [])
    monkeypatch.setattr(Experiment, "write", lambda self, *a, **k: None)
    monkeypatch.setattr(Experiment, "ledger", lambda self, seed: type("L", (), {"check_untouched": lambda s, ids: None})())
    monkeypatch.setattr(Experiment, "data", lambda self, seed: type("P", (), {"ids": {"test": []}})())
    Experiment(cfg).run()
    assert ran == [task.key for task in build_graph(cfg)]
    assert set(registry.COMPONENTS) | {t.kind for t in build_graph(cfg)} <= set(tasks._RUNNERS)


def test_a_local_cluster_gives_the_sequential_results(sequential, tmp_path):
    executor.run(config(tmp_path, "local"), workers=2)
    assert comparable(tmp_path / "local" / "out") == sequential


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([str(DASK), *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _worker(address: str, log: Path) -> subprocess.Popen:
    return _start(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"], log)


def test_an_external_scheduler_survives_a_worker_killed_mid_task(sequential, tmp_path):
    """Two workers on loopback; one is killed while it computes; its task is retried; same results."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [_start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                        tmp_path / "scheduler.log")]
    try:
        time.sleep(2)
        victim = _worker(address, tmp_path / "victim.log")
        processes += [victim, _worker(address, tmp_path / "survivor.log")]
        cfg = config(tmp_path, "external")
        cache = Path(cfg.cache_dir)

        import threading

        errors = []
        runner = threading.Thread(target=lambda: _run_catching(cfg, address, errors))
        runner.start()
        deadline = time.monotonic() + 120
        while not list(cache.glob("*.lock")) and time.monotonic() < deadline:  # a task holds an artifact's lock
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        runner.join(timeout=600)
        assert not runner.is_alive() and not errors, errors
        assert comparable(tmp_path / "external" / "out") == sequential
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)


def _run_catching(cfg, address, errors):
    try:
        executor.run(cfg, scheduler=address)
    except Exception as exc:  # reported by the test thread
        errors.append(repr(exc))


def test_executor_options_are_checked(tmp_path):
    with pytest.raises(ParameterError, match="either --workers"):
        executor.run(config(tmp_path, "x"), workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ParameterError, match="positive"):
        executor.run(config(tmp_path, "x"), workers=0)
    with pytest.raises(ParameterError, match="no Dask scheduler answered"):
        executor.run(config(tmp_path, "x"), scheduler=f"tcp://127.0.0.1:{_free_port()}")


def test_every_task_and_a_sequential_run_use_the_runs_thread_count(tmp_path, monkeypatch):
    """On a CPU the numbers depend on PyTorch's thread count (measured on PhysioNet at cpu scale:
    a sequential run on two threads and two single-threaded workers differed by 0.004 AUPRC on
    average), so every executor runs each task with ``config.threads``, and it joins the cache keys."""
    import dataclasses

    import torch

    from tardiff.experiment import Experiment, tasks

    seen = []
    monkeypatch.setattr(tasks, "run_task", lambda experiment, task: seen.append(torch.get_num_threads()))
    monkeypatch.setattr(Experiment, "_run", lambda self: seen.append(torch.get_num_threads()) or [])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        two = dataclasses.replace(config(tmp_path, "t"), threads=2)
        tasks.execute_task(dataclasses.asdict(two), "denoiser", (0,))  # what a Dask worker runs
        Experiment(two).run()  # the sequential path
        assert seen == [2, 2] and torch.get_num_threads() == 1  # set for the task, restored after
    finally:
        torch.set_num_threads(before)
    assert Experiment(two).data_key(0) != Experiment(config(tmp_path, "t")).data_key(0)  # caches never mix them
    with pytest.raises(ParameterError, match="threads must be a whole number"):
        dataclasses.replace(two, threads=0)
