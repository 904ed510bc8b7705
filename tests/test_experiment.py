"""The experiment runner: every method and protocol, an untouched test split, caching and resume."""

import json

import numpy as np
import pandas as pd
import pytest

from tardiff.errors import ParameterError
from tardiff import registry
from tardiff.evaluation.protocols import nested_prefix
from tardiff.experiment import DataLedger, Experiment, ExperimentConfig


def smoke_config(tmp_path, **overrides) -> ExperimentConfig:
    settings = dict(dataset="simulated", scale="smoke", seeds=(0,), evaluators=("cnn",), progress=False,
                    out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    return ExperimentConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("experiment")
    experiment = Experiment(smoke_config(tmp))
    return experiment, experiment.run(), tmp


def test_every_method_and_protocol_is_evaluated(full_run):
    experiment, records, tmp = full_run
    seen = {(r["method"], r["protocol"]) for r in records}
    for method in experiment.config.all_methods():
        for protocol in registry.method(method).protocols:
            assert (method, protocol) in seen
    alphas = {r["alpha"] for r in records if r["protocol"] == "tsrtr"}
    assert alphas == set(experiment.config.preset.alphas)
    results = json.loads((tmp / "out" / "results.json").read_text())
    assert len(results["records"]) == len(records) and "bayes" in results["reference"]
    summary = pd.read_csv(tmp / "out" / "summary.csv")
    assert {"auprc_mean", "auprc_std", "auroc_mean", "minority_f1_mean", "n"} <= set(summary.columns)
    for r in records:
        assert 0 <= r["auprc"] <= 1 and r["auprc_ci_low"] <= r["auprc"] <= r["auprc_ci_high"]


def test_test_split_never_reaches_training_guidance_or_selection(full_run):
    experiment, _, _ = full_run
    ids = experiment.prepared.ids
    components = experiment.ledger.uses
    assert {"denoiser training", "guidance set", "guidance classifier", "checkpoint selection"} <= set(components)
    for component, used in components.items():
        assert used.isdisjoint(ids["test"]), component
    assert components["guidance set"] == set(ids["val"].tolist())  # the paper's guidance set


def test_ledger_catches_a_leak():
    ledger = DataLedger()
    ledger.record("generator", [1, 2, 3])
    with pytest.raises(RuntimeError, match="test stays reached generator"):
        ledger.check_untouched([3, 4])


def test_rerun_resumes_from_cached_records(full_run, monkeypatch):
    experiment, records, tmp = full_run
    again = Experiment(smoke_config(tmp))
    monkeypatch.setattr(Experiment, "evaluate", lambda *a, **k: pytest.fail("a finished record was recomputed"))
    monkeypatch.setattr(Experiment, "generator", lambda *a, **k: pytest.fail("a cached generator was refitted"))
    resumed = again.run()
    assert [r["auprc"] for r in resumed] == [r["auprc"] for r in records]


def test_same_seed_gives_identical_results_on_cpu(full_run, tmp_path):
    _, records, _ = full_run
    fresh = Experiment(smoke_config(tmp_path, methods=("real", "smote"), controls=False)).run()
    first = {(r["method"], r["protocol"], r["alpha"]): r["auprc"] for r in records if r["method"] in ("real", "smote")}
    assert {(r["method"], r["protocol"], r["alpha"]): r["auprc"] for r in fresh} == first


def test_nested_prefix_keeps_the_class_ratio():
    X = np.arange(100, dtype=np.float32)[:, None, None]
    y = np.array([0] * 80 + [1] * 20)
    X_s, y_s = nested_prefix(X, y, 0.25)
    assert (y_s == 0).sum() == 20 and (y_s == 1).sum() == 5
    assert set(X_s.ravel()) <= set(nested_prefix(X, y, 0.5)[0].ravel())  # the alpha curve is nested


@pytest.mark.parametrize("field, value", [("scale", "huge"), ("methods", ("real", "gan")),
                                          ("evaluators", ("svm",)), ("guidance_set", "test")])
def test_bad_config_is_one_line(tmp_path, field, value):
    with pytest.raises(ParameterError, match=field.rstrip("s")):
        smoke_config(tmp_path, **{field: value})


def test_sweep_reuses_the_main_pools_only_where_they_are_the_same_draws(full_run):
    """At the run's own w the sweep's pool is the TSTR pool, at w = 0 the unguided one; a fresh
    TarDiff draw at those scales gives the very same arrays, so reusing them changes nothing."""
    experiment, records, _ = full_run
    w = experiment.config.guidance_scale
    for scale, method in ((w, "tardiff"), (0.0, "unguided")):
        X, y = experiment.tardiff_pool(0, guidance_scale=scale)
        main = experiment.synthetic_sets(method, 0)
        assert X is main.pool_X or np.array_equal(X, main.pool_X)
        X_fresh, y_fresh = experiment._sample_tardiff_pool(0, scale)
        np.testing.assert_array_equal(X_fresh, X)
        np.testing.assert_array_equal(y_fresh, y)
    X_neg, _ = experiment.tardiff_pool(0, guidance_scale=-w)
    assert not np.allclose(X_neg, experiment.synthetic_sets("tardiff", 0).pool_X)

    _, _, record = experiment.sweep_point(0, w, "cnn")  # the main run's TSTR record, not a new fit
    main_tstr = next(r for r in records if r["method"] == "tardiff" and r["protocol"] == "tstr")
    assert record["auprc"] == main_tstr["auprc"] and record["guidance_scale"] == w
