"""`tardiff bench` runs and writes a complete JSON record (its numbers are not asserted: they are machine facts)."""

import json

import pytest

from tardiff.cli import main


def test_bench_writes_json(tmp_path, capsys):
    assert main(["bench", "--config", "smoke", "--repeats", "1", "--device", "cpu", "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "speed-smoke-cpu.json").read_text())
    assert printed == stored
    for key in ("train_step_ms", "train_steps_per_s", "unguided_s_per_sample", "guided_s_per_sample",
                "guidance_vector_s", "peak_memory_mb"):
        assert stored[key] > 0
    # measured at the runner's shape and batches: PhysioNet's grid, the smoke training batch, the samplers' batch
    assert stored["shape"] == [16, 48, 37] and stored["sample_batch_size"] == 256
    # the median of paired ratios; with one repeat, the one pair's
    assert stored["guided_over_unguided"] == pytest.approx(stored["guided_s_per_sample"] / stored["unguided_s_per_sample"],
                                                           rel=1e-12)


@pytest.mark.slow
def test_gpu_check_runs_at_smoke_sizes_on_the_cpu(shared_data, tmp_path):
    """`SMOKE=1 benchmarks/gpu-check`: the GPU machine's script, end to end at smoke sizes."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "DATA_DIR": str(shared_data)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu-check")], env=env, capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report == json.loads((tmp_path / "gpu-check-cpu.json").read_text())
    stages = report["run_stages_s"]
    assert {"load_and_prepare_s", "denoiser_train_s_seed0", "tardiff_generate_s_seed0", "comparisons_s"} <= set(stages)
    assert any(k.startswith("evaluate_") for k in stages) and report["n_test"] > 5000
    capture = report["kernels"]["capture"]  # on the CPU: the statuses, no comparison run
    assert capture == {"compared": False, "train": {"status_on": "eager (cpu)"}, "sample": {"status_on": "eager (cpu)"}}
