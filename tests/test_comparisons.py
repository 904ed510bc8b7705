"""The stay bootstrap on one shared test split: the test-noise figure beside a replicated verdict."""

import math
import zlib

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tardiff import registry
from tardiff.errors import DataError, ParameterError
from tardiff.evaluation.comparisons import (
    _groups,
    _stratified_counts,
    _weighted_ranking_metric,
    paired_bootstrap_delta,
    within_split_noise_sd,
)
from tardiff.evaluation.utility import bootstrap_ci


def _labels(n=300, rate=0.2, seed=0):
    return (np.random.default_rng(seed).random(n) < rate).astype(int)


def test_identical_predictions_give_zero_and_p_one():
    y = _labels()
    rng = np.random.default_rng(1)
    arm = [rng.random(len(y)) for _ in range(3)]
    r = paired_bootstrap_delta(y, arm, [p.copy() for p in arm], n_boot=200)
    assert r["delta_auprc"] == 0.0 and r["ci_low"] == 0.0 and r["ci_high"] == 0.0
    assert r["p_value"] == 1.0 and r["n_seeds"] == 3 and r["seed_sd"] == 0.0


def test_a_method_better_on_every_seed_has_an_interval_above_zero():
    y = _labels()
    rng = np.random.default_rng(2)
    perfect = [np.where(y == 1, 0.9, 0.1) + 0.01 * rng.random(len(y)) for _ in range(3)]
    random = [rng.random(len(y)) for _ in range(3)]
    r = paired_bootstrap_delta(y, perfect, random, n_boot=300)
    assert r["ci_low"] > 0 and r["delta_auprc"] > 0.5
    assert r["p_value"] == pytest.approx(2 / 301)  # no replicate at or below 0: (0 + 1) / (B + 1), twice
    flipped = paired_bootstrap_delta(y, random, perfect, n_boot=300)
    assert flipped["ci_high"] < 0 and flipped["delta_auprc"] == pytest.approx(-r["delta_auprc"])


def test_the_point_estimate_is_the_mean_of_the_per_seed_differences():
    y = _labels()
    rng = np.random.default_rng(3)
    a = [np.clip(0.3 * y + rng.random(len(y)), 0, 1) for _ in range(3)]
    b = [rng.random(len(y)) for _ in range(3)]
    per_seed = [average_precision_score(y, pa) - average_precision_score(y, pb) for pa, pb in zip(a, b)]
    r = paired_bootstrap_delta(y, a, b, n_boot=50)
    assert r["delta_auprc"] == pytest.approx(np.mean(per_seed))
    assert r["seed_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    one = paired_bootstrap_delta(y, a[:1], b[:1], n_boot=50)
    assert one["n_seeds"] == 1 and math.isnan(one["seed_sd"])


def test_results_are_deterministic_for_a_random_state():
    y = _labels()
    rng = np.random.default_rng(4)
    a = [np.clip(0.2 * y + rng.random(len(y)), 0, 1) for _ in range(2)]
    b = [rng.random(len(y)) for _ in range(2)]
    first = paired_bootstrap_delta(y, a, b, n_boot=100, random_state=7)
    assert paired_bootstrap_delta(y, a, b, n_boot=100, random_state=7) == first
    assert paired_bootstrap_delta(y, a, b, n_boot=100, random_state=8)["ci_low"] != first["ci_low"]


def test_pairing_separates_a_small_consistent_gain_that_unpaired_intervals_cannot():
    """Both arms rank the same stays almost alike; the method lifts a few positives a little.

    Each arm's own test-set interval is wide (which stays are in the test split moves both),
    so the two intervals overlap; the paired interval of the difference excludes 0."""
    y = _labels(n=400, rate=0.2, seed=5)
    rng = np.random.default_rng(5)
    base = np.clip(0.25 * y + rng.random(len(y)), 0, 1)
    better = np.clip(base + 0.06 * y, 0, 1)
    low_b, high_b = bootstrap_ci(y, base, "auprc", n_boot=300)
    low_m, high_m = bootstrap_ci(y, better, "auprc", n_boot=300)
    assert low_m < high_b  # the unpaired intervals overlap
    r = paired_bootstrap_delta(y, [better], [base], n_boot=300)
    assert r["ci_low"] > 0 and r["p_value"] < 0.05


def test_stratified_resamples_always_hold_both_classes_in_their_numbers():
    y = np.array([0] * 97 + [1] * 3)
    for counts in _stratified_counts(y, 300, np.random.default_rng(0)):
        assert (counts[:, y == 1].sum(axis=1) == 3).all()
        assert (counts[:, y == 0].sum(axis=1) == 97).all()


def test_the_weighted_metrics_equal_scikit_learn_on_the_resampled_stays():
    y = _labels(n=200, seed=6)
    p = np.round(np.clip(0.3 * y + np.random.default_rng(6).random(200), 0, 1), 1)  # many ties
    arm = _groups(y, p)
    (counts,) = list(_stratified_counts(y, 30, np.random.default_rng(1)))
    auprc, auroc = (_weighted_ranking_metric(m, arm, counts) for m in ("auprc", "auroc"))
    for i, row in enumerate(counts):
        idx = np.repeat(np.arange(len(y)), row)
        assert auprc[i] == pytest.approx(average_precision_score(y[idx], p[idx]), abs=1e-12)
        assert auroc[i] == pytest.approx(roc_auc_score(y[idx], p[idx]), abs=1e-12)


def test_other_metrics_and_bad_input():
    y = _labels()
    rng = np.random.default_rng(7)
    a, b = [rng.random(len(y))], [rng.random(len(y))]
    assert "delta_auroc" in paired_bootstrap_delta(y, a, b, metric="auroc", n_boot=20)
    assert "delta_brier" in paired_bootstrap_delta(y, a, b, metric="brier", n_boot=20)
    with pytest.raises(ParameterError):
        paired_bootstrap_delta(y, a, b, n_boot=5)
    with pytest.raises(DataError):
        paired_bootstrap_delta(y, a, b + b, n_boot=20)
    with pytest.raises(DataError):
        paired_bootstrap_delta(np.zeros(len(y), int), a, b, n_boot=20)


# ------------------------------------------------------------------ the test-noise figure of a replicated comparison


def _records(y, spec, seeds=(0, 1, 2), evaluators=("cnn",)):
    """Records with test predictions: ``spec`` maps (method, protocol, alpha) to a signal strength."""
    out = []
    for (method, protocol, alpha), strength in spec.items():
        for seed in seeds:
            noise = np.random.default_rng(zlib.crc32(f"{method}{protocol}{alpha}{seed}".encode())).random(len(y))
            for evaluator in evaluators:
                out.append({"method": method, "protocol": protocol, "alpha": alpha, "seed": seed,
                            "evaluator": evaluator, "auprc": 0.0,
                            "test_predictions": np.clip(strength * y + noise, 0, 1).tolist()})
    return out


def test_within_split_noise_is_the_stay_bootstrap_of_each_replicate():
    y = _labels(n=400, seed=8)
    records = _records(y, {("real", "trtr", None): 0.3, ("smote", "rebalance", None): 0.4})
    row = {"method": "smote", "baseline": "real", "protocol": "rebalance", "alpha": None,
           "baseline_protocol": "trtr", "baseline_alpha": None, "evaluator": "cnn", "replicates": [0, 1, 2]}
    sd = within_split_noise_sd(records, row, {s: y for s in (0, 1, 2)}, n_boot=200)
    by = {(r["method"], r["seed"]): np.asarray(r["test_predictions"]) for r in records}
    widths = [paired_bootstrap_delta(y, [by[("smote", s)]], [by[("real", s)]], n_boot=200) for s in (0, 1, 2)]
    expected = np.sqrt(np.mean([((w["ci_high"] - w["ci_low"]) / (2 * 1.959964)) ** 2 for w in widths]))
    assert sd == pytest.approx(expected) and 0 < sd < 0.1
    assert within_split_noise_sd(records, {**row, "method": "tardiff"}, {s: y for s in (0, 1, 2)}) is None


def test_a_registered_baseline_joins_the_family_of_comparisons():
    registry.register_method(registry.Method("toy", "toy", "baseline", ("rebalance",), factory=lambda ctx: None,
                                             synthetic=True))
    try:
        family = registry.comparison_family(["real", "toy", "tardiff"], "cnn")
        assert ("tardiff_vs_baseline", "tardiff", "toy", "rebalance") in {
            (c["kind"], c["method"], c["baseline"], c["protocol"]) for c in family}
        assert ("vs_real", "toy", "real", "rebalance") in {
            (c["kind"], c["method"], c["baseline"], c["protocol"]) for c in family}
    finally:
        registry.unregister_method("toy")
