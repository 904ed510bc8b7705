"""Stored runs (tardiff.book.stored): storing a finished run, its provenance, and reading it back without data.

The end-to-end check (a smoke run stored by the notebook, the chapter rendered from it with an
empty cache, the same tables) is the slow test of tests/test_experiment_notebook.py.
"""

import json
import os
import shlex
from pathlib import Path

import pandas as pd
import pytest

from tardiff import book
from tardiff.book.stored import ExperimentChapter, resolve_data_dir, run_command, store_run, symbolic_data_dir
from tardiff.cli import build_parser, main
from tardiff.errors import DataError, ParameterError

CONFIG = {
    "dataset": "physionet2012", "task": "mortality", "data_dir": "/secret/builder/data/physionet2012", "scale": "paper",
    "methods": ["real", "smote", "tardiff"], "controls": True, "seeds": [0, 1, 2], "split_seed": None,
    "evaluators": ["cnn", "gru"], "guidance_scale": 100.0, "guidance_set": "val", "evaluate_at": "x_t",
    "similarity": "dot", "guidance_norm": "unit", "guide_last": 5, "device": "cuda", "out_dir": "/secret/runs/p",
    "cache_dir": "/secret/cache", "progress": True, "sets": "ab", "test_sets": None, "sweep_raw": [0.0, 100.0],
    "sweep_unit": [0.1, 1.0],
}


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "physionet2012"
    run.mkdir(parents=True)
    record = {"dataset": "physionet2012", "task": "mortality", "method": "real", "protocol": "trtr", "alpha": None,
              "seed": 0, "evaluator": "cnn", "auprc": 0.5, "auroc": 0.8, "minority_f1": 0.4, "brier": 0.1}
    (run / "results.json").write_text(json.dumps({
        "config": CONFIG, "version": "0.1.0", "device": "cuda", "records": [record],
        "reference": {"prevalence": 0.14, "n_test": 800}, "generators": [], "comparisons": []}))
    pd.DataFrame([{"dataset": "physionet2012", "method": "real"}]).to_csv(run / "summary.csv", index=False)
    return run


def test_data_folders_are_named_symbolically_and_resolved_in_the_kernel(monkeypatch):
    assert symbolic_data_dir("/d/physionet2012", "/d") == "$TARDIFF_DATA_DIR/physionet2012"
    assert symbolic_data_dir("/elsewhere/mimic3_demo", "/d") == "$TARDIFF_DATA_DIR/mimic3_demo"
    assert symbolic_data_dir(None) is None and symbolic_data_dir("$TARDIFF_DATA_DIR/x") == "$TARDIFF_DATA_DIR/x"
    monkeypatch.setenv("TARDIFF_DATA_DIR", "/mnt/icu")
    assert resolve_data_dir("$TARDIFF_DATA_DIR/physionet2012") == "/mnt/icu/physionet2012"
    assert resolve_data_dir(None) is None and resolve_data_dir("rel/dir") == "rel/dir"
    monkeypatch.delenv("TARDIFF_DATA_DIR")
    with pytest.raises(ParameterError, match=r"\$TARDIFF_DATA_DIR, which is not set"):
        resolve_data_dir("$TARDIFF_DATA_DIR/physionet2012")


def test_the_command_in_the_provenance_repeats_the_run():
    command = run_command({**CONFIG, "data_dir": "$TARDIFF_DATA_DIR/physionet2012"})
    argv = shlex.split(command)
    assert argv[:3] == ["tardiff", "run", "physionet2012"]
    args = build_parser().parse_args(argv[1:])  # the real parser accepts it
    assert (args.scale, tuple(args.methods), tuple(args.seeds), tuple(args.evaluators)) == (
        "paper", ("real", "smote", "tardiff"), (0, 1, 2), ("cnn", "gru"))
    assert args.data_dir == "$TARDIFF_DATA_DIR/physionet2012" and '"$TARDIFF_DATA_DIR/physionet2012"' in command
    assert (args.guidance_norm, args.guide_last, args.sweep_raw, args.sweep_unit, args.sets, args.device) == (
        "unit", 5, (0.0, 100.0), (0.1, 1.0), "ab", "cuda")
    assert "--guidance-scale" not in command and "--threads" not in command  # defaults that cannot drift stay out
    assert run_command({**CONFIG, "split_seed": 3}).endswith("# with split_seed=3")
    threaded = build_parser().parse_args(shlex.split(run_command({**CONFIG, "threads": 4}))[1:])
    assert threaded.threads == 4  # the thread count changes the numbers, so the command keeps it


def test_store_run_keeps_results_and_provenance_without_machine_paths(tmp_path):
    run = _run_folder(tmp_path)
    dest = store_run(run, tmp_path / "results" / "paper" / "physionet2012", experiment=False,
                     stored_with="tardiff book --store physionet2012 --as results/paper/physionet2012")
    assert sorted(p.name for p in dest.iterdir()) == ["chapter", "provenance.json", "results.json", "summary.csv"]
    stored = json.loads((dest / "results.json").read_text())
    assert stored["config"]["data_dir"] == "$TARDIFF_DATA_DIR/physionet2012"
    assert stored["config"]["cache_dir"] is None and "/secret" not in (dest / "results.json").read_text()
    assert stored["records"] == json.loads((run / "results.json").read_text())["records"]
    prov = json.loads((dest / "provenance.json").read_text())
    for key in ("git_commit", "tardiff_version", "torch_version", "numpy_version", "device", "device_name",
                "run_date", "stored_date", "command", "scale"):
        assert key in prov, key
    assert prov["scale"] == "paper" and prov["device"] == "cuda" and prov["command"].startswith("tardiff run ")
    # stored again: replaced in place
    assert store_run(run, dest, experiment=False) == dest and not list(dest.parent.glob(".*"))


def test_a_stored_run_reads_back_without_data_and_says_what_it_lacks(tmp_path):
    dest = store_run(_run_folder(tmp_path), tmp_path / "stored", experiment=False)
    chapter = ExperimentChapter.load(dest, dataset="physionet2012")
    assert chapter.stored and chapter.task == "mortality"
    config = chapter.config(out_dir=str(tmp_path / "out"))
    assert config.device == "cpu" and config.scale == "paper" and config.seeds == (0, 1, 2)  # a GPU run, read here
    assert chapter.summary()["method"].tolist() == ["real"]
    assert chapter.reference["prevalence"] == 0.14
    assert chapter.generative_methods() == ["smote", "tardiff"]
    assert chapter.fidelity_table().empty and "not stored with this run" in chapter.missing("fidelity")
    assert chapter.embeddings("tsne") == ({}, {})
    assert chapter.cohort_summary() == {}
    note = chapter.source_note()
    assert note.startswith(":::{note} Results from a stored run") and "`paper` scale" in note and "tardiff run" in note
    records = chapter.run(tmp_path / "out")
    assert len(records) == 1 and {p.name for p in (tmp_path / "out").iterdir()} == {
        "results.json", "summary.csv", "provenance.json"}
    with pytest.raises(ParameterError, match="holds a run of 'physionet2012', not 'mimic3'"):
        ExperimentChapter.load(dest, dataset="mimic3")
    with pytest.raises(DataError, match="does not exist"):
        ExperimentChapter.load(tmp_path / "nothing")
    with pytest.raises(ParameterError, match="already reads a stored run"):
        chapter.save(tmp_path / "again")


def test_the_book_command_stores_a_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run_folder(tmp_path)
    assert main(["book", "--store", str(run), "--as", "results/paper/physionet2012", "--results-only"]) == 0
    assert "tardiff book --results results/paper" in capsys.readouterr().out
    prov = json.loads((tmp_path / "results/paper/physionet2012/provenance.json").read_text())
    assert prov["stored_with"] == "tardiff book --store physionet2012 --as results/paper/physionet2012 --results-only"
    assert main(["book", "--store", str(run)]) == 2
    assert "--store RUN_DIR and --as DEST go together" in capsys.readouterr().err
    assert main(["book", "--store", str(tmp_path / "none"), "--as", "x", "--results-only"]) == 2


def test_the_repository_stored_runs_are_complete():
    """Every folder under results/<scale>/<chapter>/ is a stored run of that chapter, small enough to keep."""
    root = Path(__file__).resolve().parents[1] / "results"
    names = {run.name: run for run in book.NOTEBOOK_RUNS if run.kind == "experiment"}
    for folder in sorted(root.glob("*/*")) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        assert folder.name in names, f"{folder}: not a chapter of the book ({', '.join(names)})"
        results = json.loads((folder / "results.json").read_text())
        prov = json.loads((folder / "provenance.json").read_text())
        assert results["config"]["dataset"] == names[folder.name].dataset
        assert results["config"]["scale"] == prov["scale"] == folder.parent.name
        assert (folder / "summary.csv").is_file()
        text = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
        assert os.path.expanduser("~") + "/" not in text
        assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5_000_000


@pytest.mark.slow
def test_a_finished_cli_run_is_stored_with_its_chapter_data(tmp_path, monkeypatch):
    """tardiff run, then tardiff book --store: the experiment is rebuilt from the cache, nothing retrained."""
    monkeypatch.setenv("TARDIFF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run = tmp_path / "run"
    assert main(["run", "simulated", "--scale", "smoke", "--methods", "real,smote", "--evaluators", "gbm",
                 "--out", str(run), "--quiet"]) == 0
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    dest = tmp_path / "results" / "smoke" / "simulated"
    assert main(["book", "--store", str(run), "--as", str(dest)]) == 0
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()) == cached  # nothing new trained
    chapter = ExperimentChapter.load(dest, dataset="simulated")
    assert all(chapter.missing(name) == "" for name in book.CHAPTER_FILES)
    assert set(chapter.fairness_table()["method"]) >= {"real", "smote"}  # test predictions were found
    assert list(chapter.fidelity_table().index) == ["real", "smote"]
    real, synthetic = chapter.embeddings("pca")
    assert set(synthetic) == {"smote"} and real["smote"].shape[1] == 2
    assert set(chapter.trajectory_bands()["method"]) == {"real", "smote"}
    assert chapter.cohort_summary()["dataset"] == "simulated" and len(chapter.dataset_card())
