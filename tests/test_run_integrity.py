"""No silent wrong results from `tardiff run`: content-keyed caches, verified reads, errors before any work."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tardiff.experiment.config as config_module
import tardiff.experiment.data as data_module
import tardiff.experiment.runner as runner_module
from tardiff.cli import main
from tardiff.data import load_cohort
from tardiff.data.cache import CacheWarning
from tardiff.errors import DataError, ParameterError
from tardiff.experiment import Experiment, ExperimentConfig


def quick_config(tmp_path: Path, **overrides) -> ExperimentConfig:
    """Real data only, judged by the GBM: a whole run in about a second."""
    settings = dict(dataset="simulated", scale="smoke", methods=("real",), controls=False, seeds=(0,),
                    evaluators=("gbm",), progress=False, out_dir=str(tmp_path / "out"),
                    cache_dir=str(tmp_path / "cache"))
    return ExperimentConfig(**{**settings, **overrides})


def records_on_disk(out: Path) -> list[Path]:
    return sorted((out / "records").glob("*.json"))


def test_changed_values_under_the_same_folder_are_recomputed(tmp_path, monkeypatch):
    first = Experiment(quick_config(tmp_path)).run()
    original = data_module.load_cohort

    def edited(*args, **kwargs):  # the same stays, one value changed: a proxy key would not notice
        cohort = original(*args, **kwargs)
        cell = np.argwhere(np.isfinite(cohort.X))[0]
        cohort.X[tuple(cell)] += 1.0
        return cohort

    monkeypatch.setattr(data_module, "load_cohort", edited)
    again = Experiment(quick_config(tmp_path))
    calls, evaluate = [], Experiment.evaluate
    monkeypatch.setattr(Experiment, "evaluate", lambda self, *a: calls.append(a) or evaluate(self, *a))
    again.run()
    assert calls, "a record computed from other data was reused"
    assert len(records_on_disk(tmp_path / "out")) == 2 * len(first)


def test_the_data_key_is_the_content(tmp_path):
    a, b = Experiment(quick_config(tmp_path)), Experiment(quick_config(tmp_path, out_dir=str(tmp_path / "other")))
    assert a.data_key(0) == b.data_key(0)  # same data, same key (wherever the output goes)
    assert a.data_key(1) != a.data_key(0)  # each replicate draws its own split
    c = Experiment(quick_config(tmp_path, split_seed=1))  # one fixed split for every seed
    assert c.data_key(0) == c.data_key(5) == a.data_key(1)


def test_an_edited_record_is_recomputed_not_summarised(tmp_path):
    first = Experiment(quick_config(tmp_path)).run()
    (path,) = records_on_disk(tmp_path / "out")
    doc = json.loads(path.read_text())
    doc["payload"]["auprc"] = 42
    path.write_text(json.dumps(doc))
    with pytest.warns(CacheWarning, match="checksum"):
        again = Experiment(quick_config(tmp_path)).run()
    assert again[0]["auprc"] == first[0]["auprc"] != 42
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert summary["auprc_mean"].max() <= 1


def test_a_truncated_record_is_recomputed(tmp_path):
    first = Experiment(quick_config(tmp_path)).run()
    (path,) = records_on_disk(tmp_path / "out")
    path.write_text(path.read_text()[:40])
    with pytest.warns(CacheWarning):
        again = Experiment(quick_config(tmp_path)).run()
    assert again[0]["auprc"] == first[0]["auprc"]
    json.loads(path.read_text())  # rewritten whole


def test_a_damaged_synthetic_set_is_regenerated(tmp_path):
    config = quick_config(tmp_path, methods=("smote",))
    first = Experiment(config).synthetic_sets("smote", 0)
    (path,) = (tmp_path / "cache").glob("synthetic-smote-*.npz")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(CacheWarning):
        again = Experiment(config).synthetic_sets("smote", 0)
    np.testing.assert_array_equal(again.balance_X, first.balance_X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file reads back cleanly
        Experiment(config).synthetic_sets("smote", 0)


@pytest.mark.parametrize("argv, message", [
    (["--seeds=-1"], "seeds must lie in 0..4294967295"),
    (["--seeds", "18446744073709551616"], "seeds must lie in"),
    (["--seeds", "0,0"], "given twice"),
    (["--out", ""], "output folder is empty"),
    (["--methods", "real,gan"], "method must be one of"),
    (["--sets", "a"], "sets applies to physionet2012 only"),
])
def test_bad_options_are_one_line_before_any_work(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(runner_module, "load_prepared", lambda c: pytest.fail("work started"))
    assert main(["run", "simulated", "--scale", "smoke", "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_output_that_is_a_file_fails_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner_module, "load_prepared", lambda c: pytest.fail("work started"))
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    assert main(["run", "simulated", "--scale", "smoke", "--quiet", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    cache_file = tmp_path / "cache-file"
    cache_file.write_text("")
    assert main(["run", "simulated", "--scale", "smoke", "--quiet", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(cache_file)]) == 2
    assert "cache folder" in capsys.readouterr().err


def test_a_read_only_output_folder_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(runner_module, "load_prepared", lambda c: pytest.fail("work started"))
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access = config_module.os.access
    # Tests run as root in CI, whom permission bits do not stop: the check asks os.access, so ask it to say no.
    monkeypatch.setattr(config_module.os, "access",
                        lambda p, mode: False if Path(p) == read_only else real_access(p, mode))
    with pytest.raises(ParameterError, match="not writable"):
        Experiment(quick_config(tmp_path, out_dir=str(read_only / "run")))


def test_a_cohort_with_one_positive_stay_is_refused_at_load(tmp_path, monkeypatch):
    def one_positive(*args, **kwargs):
        cohort = load_cohort("simulated", n=300, seed=0, cache=False)
        keep = np.concatenate([np.flatnonzero(cohort.y == 0), np.flatnonzero(cohort.y == 1)[:1]])
        return cohort.subset(np.sort(keep))

    monkeypatch.setattr(data_module, "load_cohort", one_positive)
    with pytest.raises(DataError, match="1 positive"):
        Experiment(quick_config(tmp_path))


def test_a_generated_dataset_is_drawn_as_its_registry_entry_says(tmp_path, monkeypatch):
    """Issue #22: the experiment layer tested the dataset's name and read simulated-only sizes from the
    presets; it now asks the dataset's registry entry (its FreshDraws) how to draw the stays."""
    from dataclasses import replace

    from tardiff.data.registry import DATASETS, FreshDraws

    def sizes():
        p = data_module.load_prepared(quick_config(tmp_path), 0)
        return {name: len(p.ids[name]) for name in p.split.parts()}, p

    spec = DATASETS["simulated"]
    got, _ = sizes()
    assert got["train"] + got["val"] == spec.draws.fit_stays["smoke"] == 270
    assert (got["test"], got["guide"], got["select"]) == (spec.draws.test_stays["smoke"], 100, 100)
    monkeypatch.setitem(DATASETS, "simulated", replace(spec, draws=FreshDraws(fit_stays={"smoke": 180},
                                                                              test_stays={"smoke": 400})))
    got, p = sizes()
    assert got["train"] + got["val"] == 180 and (got["test"], got["guide"], got["select"]) == (400, 100, 100)
    assert len(np.unique(p.cohort.stay_ids)) == 180 + 400 + 100 + 100  # ids unique across the draws
    monkeypatch.setitem(DATASETS, "simulated", replace(spec, draws=FreshDraws(fit_stays={"smoke": 300},
                                                                              test_stays={"smoke": None})))
    got, p = sizes()  # no fresh test draw: one draw split 80/10/10
    assert len(p.cohort.y) == 300 and got["train"] == 240 and got["test"] == 30


def test_cache_dir_option_and_variable_move_the_artifacts(tmp_path, monkeypatch):
    config = quick_config(tmp_path, methods=("smote",), cache_dir=None)
    monkeypatch.setenv("TARDIFF_CACHE_DIR", str(tmp_path / "everything"))
    Experiment(config).synthetic_sets("smote", 0)
    assert list((tmp_path / "everything" / "artifacts").glob("synthetic-smote-*.npz"))
    assert main(["run", "simulated", "--scale", "smoke", "--quiet", "--methods", "smote", "--evaluators", "gbm",
                 "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "elsewhere")]) == 0
    assert list((tmp_path / "elsewhere").glob("synthetic-smote-*.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("parameters, message", [
    ({"methods": "real,gan"}, "method must be one of"),
    ({"seeds": "0,0"}, "given twice"),
])
def test_a_bad_notebook_parameter_fails_in_the_first_code_cell_with_one_line(tmp_path, parameters, message):
    """papermill: the package's one-line message is the failing cell's error, raised before any work."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(__file__).resolve().parents[1] / "notebooks" / "experiment.ipynb"
    out = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(source), str(out), parameters={"scale": "smoke", **parameters},
                                   progress_bar=False, kernel_name="python3", cwd=str(tmp_path))
    assert info.value.ename == "ParameterError" and message in info.value.evalue
    assert "\n" not in info.value.evalue
    executed = nbformat.read(out, as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", []))
    failing = next(i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    assert failing == injected + 1  # the first cell after the parameters: no work was done before it


def test_an_edited_guidance_classifier_or_synthetic_set_is_rebuilt_and_rejudged(tmp_path):
    """Issue 21's silent cases, replayed through the runner: a negated guidance-classifier checkpoint is
    retrained with a warning, and records and gates are keyed by the content of the sets they judge."""
    import torch

    config = quick_config(tmp_path, methods=("real", "smote", "tardiff"), sweep_raw=(), sweep_unit=())
    first = Experiment(config)
    first.run()
    (checkpoint,) = (tmp_path / "cache").glob("guidance-classifier-*.pt")
    state = torch.load(checkpoint, weights_only=False)
    weights = state["state_dict"] if "state_dict" in state else state
    for name, value in list(weights.items()):
        if torch.is_tensor(value) and value.is_floating_point():
            weights[name] = -value
    torch.save(state, checkpoint)
    again = Experiment(config)
    with pytest.warns(CacheWarning):
        clf = again.guidance_classifier(0)
    reference = first.guidance_classifier(0)
    for a, b in zip(clf.module_.state_dict().values(), reference.module_.state_dict().values()):
        assert torch.equal(a, b)  # retrained, the same weights as the untouched run: the edit was not trusted

    (sets,) = (tmp_path / "cache").glob("synthetic-smote-*.npz")
    sets.unlink()  # regenerated from scratch by another seed below: a record keyed by method alone would be reused
    records_before = set(records_on_disk(tmp_path / "out"))
    other = Experiment(config)
    other._draw = lambda sampler, method, seed, pool_only: {  # the same shapes, other rows
        k: (v + 0.5 if k.endswith("_X") else v) for k, v in Experiment._draw(other, sampler, method, seed,
                                                                              pool_only).items()}
    other.run()
    assert set(records_on_disk(tmp_path / "out")) - records_before, "records of the changed set were reused"
