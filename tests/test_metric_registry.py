"""A new metric is computed from cached predictions (nothing retrains) and reaches every table;
a record-schema bump refits the evaluators only; each artifact kind has its own version."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import matthews_corrcoef

from tardiff.book.results import collect_results, metric_columns
from tardiff.evaluation.utility import RECORD_METRICS, RecordMetric, register_metric, unregister_metric
from tardiff.experiment import Experiment, ExperimentConfig, versions
from tardiff.report import utility_table


def config(tmp_path) -> ExperimentConfig:
    return ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "smote"), controls=False,
                            evaluators=("gbm",), seeds=(0,), progress=False, out_dir=str(tmp_path / "out"),
                            cache_dir=str(tmp_path / "cache"))


def forbid(monkeypatch, *names):
    """Make the named Experiment methods fail if called: what must not be recomputed."""
    for name in names:
        monkeypatch.setattr(Experiment, name, lambda *a, _name=name, **k: pytest.fail(f"{_name} was recomputed"))


@pytest.fixture
def mcc():
    metric = register_metric(RecordMetric("mcc", "MCC", lambda y, p, t: matthews_corrcoef(y, (p >= t).astype(int))))
    yield metric
    unregister_metric("mcc")


def test_a_metric_registered_later_is_computed_from_the_cached_predictions(tmp_path, monkeypatch, mcc):
    unregister_metric("mcc")  # the first run knows nothing of it
    Experiment(config(tmp_path)).run()
    register_metric(mcc)
    forbid(monkeypatch, "evaluate", "generator", "denoiser", "guidance_classifier")  # nothing is refitted
    experiment = Experiment(config(tmp_path))
    records = experiment.run()
    y_test = experiment.data(0).y_test
    for record in records:
        expected = matthews_corrcoef(y_test, (np.asarray(record["test_predictions"]) >= record["threshold"]).astype(int))
        assert record["mcc"] == pytest.approx(expected)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert {"mcc_mean", "mcc_std"} <= set(summary.columns)
    assert "MCC" in utility_table(summary, {"prevalence": 0.1}, evaluator="gbm").columns
    (tmp_path / "book" / "simulated").mkdir(parents=True)
    summary.to_csv(tmp_path / "book" / "simulated" / "summary.csv", index=False)
    assert "mcc_mean" in metric_columns() and "mcc_mean" in collect_results(tmp_path / "book").columns
    stored = json.loads((tmp_path / "out" / "results.json").read_text())["records"]
    assert all("mcc" in r for r in stored)


def test_a_record_schema_bump_refits_evaluators_and_retrains_no_generator(tmp_path, monkeypatch):
    Experiment(config(tmp_path)).run()
    monkeypatch.setattr(versions, "RECORD", versions.RECORD + 1)
    forbid(monkeypatch, "generator", "denoiser", "guidance_classifier")
    fits = []
    evaluate = Experiment.evaluate
    monkeypatch.setattr(Experiment, "evaluate", lambda self, *a, **k: fits.append(a) or evaluate(self, *a, **k))
    records = Experiment(config(tmp_path)).run()
    assert len(fits) == len(records) > 0


def test_every_kind_of_artifact_has_its_own_version():
    kinds = ("DATA", "DENOISER", "GUIDANCE_CLASSIFIER", "SYNTHETIC", "GATES", "RECORD")
    assert all(isinstance(getattr(versions, k), int) for k in kinds)
    assert list(RECORD_METRICS)[:4] == ["auprc", "auroc", "minority_f1", "brier"]
