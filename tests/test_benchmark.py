"""`tardiff bench` runs and writes a complete JSON record (its numbers are not asserted: they are machine facts)."""

import json

from tardiff.cli import main


def test_bench_writes_json(tmp_path, capsys):
    assert main(["bench", "--config", "smoke", "--repeats", "1", "--device", "cpu", "--json", "--out", str(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((tmp_path / "speed-smoke-cpu.json").read_text())
    assert printed == stored
    for key in ("train_step_ms", "unguided_s_per_sample", "guided_s_per_sample", "guidance_vector_s"):
        assert stored[key] > 0
    assert stored["guided_over_unguided"] == stored["guided_s_per_sample"] / stored["unguided_s_per_sample"]
