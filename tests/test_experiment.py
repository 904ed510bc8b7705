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
    ids = experiment.data(0).ids
    components = experiment.ledger(0).uses
    assert {"denoiser training", "guidance set", "guidance classifier", "checkpoint selection",
            "quality gate"} <= set(components)
    for component, used in components.items():
        assert used.isdisjoint(ids["test"]), component
    # each job has its own held-out stays: the guidance set, early stopping, selection and the gate
    assert components["guidance set"] == set(ids["guide"].tolist())
    assert components["checkpoint selection"] == set(ids["val"].tolist())
    assert components["quality gate"] == set(ids["select"].tolist())
    assert not set(ids["guide"]) & set(ids["select"]) and not set(ids["val"]) & set(ids["select"])


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
    TarDiff draw at those settings gives the very same arrays, so reusing them changes nothing."""
    from tardiff.experiment.sweep import sweep_point

    experiment, records, _ = full_run
    options = experiment.config.guidance
    for opts, method in ((options, "tardiff"), (options.with_scale(0.0), "unguided")):
        main = experiment.synthetic_sets(method, 0)
        fresh = experiment.synthetic_sets("tardiff", 0, guidance=opts, pool_only=True)
        np.testing.assert_array_equal(fresh.pool_X, main.pool_X)
        np.testing.assert_array_equal(fresh.pool_y, main.pool_y)
    negative = experiment.synthetic_sets("tardiff", 0, guidance=options.with_scale(-options.guidance_scale),
                                         pool_only=True)
    assert not np.allclose(negative.pool_X, experiment.synthetic_sets("tardiff", 0).pool_X)

    row = sweep_point(experiment, 0, options)  # the main run's TSTR record, not a new fit
    main_tstr = next(r for r in records if r["method"] == "tardiff" and r["protocol"] == "tstr")
    assert row["auprc"] == main_tstr["auprc"] and row["guidance_scale"] == options.guidance_scale


def test_results_hold_gates_sweep_selection_and_comparisons(full_run):
    experiment, records, tmp = full_run
    results = json.loads((tmp / "out" / "results.json").read_text())
    generators = {(g["method"], g["seed"]) for g in results["generators"]}
    synthetic = {m for m in experiment.config.all_methods() if registry.method(m).synthetic}
    assert generators == {(m, 0) for m in synthetic}
    for g in results["generators"]:
        assert isinstance(g["passes_quality_gate"], bool) and g["scale_ratio_neg"] > 0
        assert (g["noise_error"] is None) == (g["method"] == "smote")  # diffusion models report their denoiser
    from tardiff.evaluation.gates import gate_description
    from tardiff.experiment.sweep import candidate_points, sweep_points

    assert results["quality_gate"] == json.loads(json.dumps(gate_description()))
    points = {(s["seed"], s["form"], s["guidance_norm"], s["guidance_scale"]) for s in results["sweep"]}
    expected = {(0, "paper" if o.evaluate_at == "x_t" else "code", o.guidance_norm, o.guidance_scale)
                for o in sweep_points(experiment.config, 0)}
    assert points == expected and ("unit", 0.0) in {(o.guidance_norm, o.guidance_scale)
                                                    for o in candidate_points(experiment.config)}
    (chosen,) = [s for s in results["selections"] if s["method"] == "tardiff_cal"]
    assert chosen["seed"] == 0 and chosen["chosen"] in {0.0, *experiment.config.sweep_unit}
    assert "selection stays" in chosen["criterion"]
    cal = [r for r in results["records"] if r["method"] == "tardiff_cal"]
    assert cal and {r["guidance_scale"] for r in cal} == {chosen["chosen"]}
    (weights,) = [s for s in results["selections"] if s["method"] == "mcrage"]
    assert [c["value"] for c in weights["candidates"]] == [0.0, 0.5, 4.0]
    assert {r["tuned"] for r in results["records"] if r["method"] == "mcrage"} == {weights["chosen"]}
    assert {a["method"] for a in results["selection_agreement"]} == {"tardiff_cal", "mcrage"}
    for c in results["comparisons"]:
        assert len(c["deltas"]) == c["n_replicates"] == 1 and c["interval"].startswith("t-interval")
        assert c["decision"] in ("higher", "lower", "no evidence")
    pairs = {(c["method"], c["baseline"]) for c in results["comparisons"]}
    assert ("tardiff", "real") in pairs and ("tardiff", "unguided") in pairs and ("tardiff_cal", "smote") in pairs
    summary = pd.read_csv(tmp / "out" / "summary.csv")
    assert summary.loc[summary["method"] == "real", "passes_quality_gate"].isna().all()
    assert summary.loc[summary["method"] == "smote", "passes_quality_gate"].notna().all()
    gate = pd.DataFrame(results["generators"]).set_index("method")
    assert summary.loc[summary["method"] == "smote", "gate_gbm_auroc_pos"].iloc[0] == pytest.approx(
        gate.loc["smote", "gbm_auroc_pos"])  # the gate's per-class numbers, one replicate: its own
    assert results["reference"]["n_test"] == 10000  # the simulated test split is a fresh 10,000-stay draw


def test_external_validation_tests_on_set_c_only(tmp_path):
    """--test-sets c: train and select on sets A and B, test on the challenge's set C."""
    from test_loaders_real import _record, write_set

    rng = np.random.default_rng(0)
    folder = tmp_path / "physionet2012"
    ids = {}
    for offset, letter in ((1000, "a"), (2000, "b"), (3000, "c")):
        records, outcomes = {}, {}
        for rid in range(offset, offset + 40):
            death = int(rid % 5 == 0)
            lines = "".join(f"{h:02d}:00,HR,{80 + 25 * death + rng.normal(0, 5):.0f}\n" for h in range(0, 48, 6))
            records[rid], outcomes[rid] = _record(rid, lines=lines), (5, death)
        write_set(folder, letter, records, outcomes)
        ids[letter] = set(records)
    config = ExperimentConfig(dataset="physionet2012", data_dir=str(folder), scale="smoke", test_sets="c",
                              methods=("real",), controls=False, evaluators=("gbm",), progress=False,
                              out_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    experiment = Experiment(config)
    split_ids = {k: set(v.tolist()) for k, v in experiment.prepared.ids.items()}
    assert split_ids["test"] == ids["c"]
    assert split_ids["train"] | split_ids["val"] == ids["a"] | ids["b"]
    records = experiment.run()
    assert len(records) == 1 and records[0]["protocol"] == "trtr"
    with pytest.raises(ParameterError, match="trained and tested on"):
        smoke_config(tmp_path, dataset="physionet2012", sets="abc", test_sets="c")
