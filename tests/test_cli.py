"""The `tardiff` command: the JSON contract, the dataset card, and one-line errors."""

import json
import subprocess
import sys

import pytest

from tardiff.cli import main


def test_data_json_contract(capsys):
    assert main(["data", "simulated", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"dataset", "task", "n", "shape", "features", "positive_rate", "splits"} <= set(summary)
    assert summary["shape"] == [4000, 24, 7] and summary["task"] == "mortality"
    assert sum(summary["splits"].values()) == summary["n"]
    assert 0.05 < summary["positive_rate"] < 0.11


def test_data_card_is_human_readable(capsys):
    assert main(["data", "simulated"]) == 0
    out = capsys.readouterr().out
    assert "class balance" in out and "missing" in out and "SpO2" in out


def test_yaib_eicu_demo_through_the_cli(shared_data, capsys):
    assert main(["data", "yaib", "--data-dir", str(shared_data / "yaib_demo/mortality24/eicu_demo"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 1367 and round(summary["positive_rate"] * summary["n"]) == 70


def test_datasets_lists_every_dataset(capsys):
    assert main(["datasets", "--json"]) == 0
    rows = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"simulated", "physionet2012", "mimic3", "yaib", "eicu"}
    assert rows["simulated"]["present"] is True


@pytest.mark.parametrize("argv, fragment", [
    (["data", "nope"], "unknown dataset 'nope'"),
    (["data", "simulated", "--task", "los99"], "has no task 'los99'"),
    (["data", "mimic3", "--data-dir", "/nonexistent/mimic"], "/nonexistent/mimic"),
])
def test_user_errors_are_one_line_without_traceback(argv, fragment):
    proc = subprocess.run([sys.executable, "-m", "tardiff.cli", *argv], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr
