"""Replicated verdicts: the interval code against known answers, Holm, power, the family, the split design."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tardiff import registry
from tardiff.errors import ParameterError
from tardiff.evaluation.replicates import holm, min_detectable_difference, replicated_comparisons, t_interval


def test_t_interval_matches_the_textbook_formula():
    d = np.array([0.03, -0.01, 0.02, 0.05, 0.00, 0.04, 0.01, 0.02, -0.02, 0.03])
    r = t_interval(d)
    se = d.std(ddof=1) / np.sqrt(len(d))
    half = stats.t.ppf(0.975, len(d) - 1) * se
    assert r["mean"] == pytest.approx(d.mean())
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert r["p_value"] == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue)


def test_t_interval_covers_the_true_mean_at_its_nominal_rate():
    # 2,000 experiments of 10 replicates each, true mean difference 0.02 and sd 0.05
    rng = np.random.default_rng(0)
    draws = rng.normal(0.02, 0.05, size=(2000, 10))
    covered = [t_interval(row)["ci_low"] <= 0.02 <= t_interval(row)["ci_high"] for row in draws]
    assert 0.93 <= np.mean(covered) <= 0.97


def test_t_interval_with_one_replicate_gives_no_interval():
    r = t_interval([0.1])
    assert r["mean"] == 0.1 and r["ci_low"] is None and r["p_value"] is None


def test_t_interval_refuses_non_finite_differences():
    with pytest.raises(ParameterError, match="finite"):
        t_interval([0.1, float("nan")])


def test_holm_matches_the_step_down_definition():
    p = [0.001, 0.04, 0.03, 0.2, None]
    out = holm(p)
    # sorted 0.001, 0.03, 0.04, 0.2 against 0.05/4, 0.05/3, 0.05/2, 0.05/1: only the first passes
    assert out["reject"] == [True, False, False, False, None]
    assert out["adjusted"][:4] == pytest.approx([0.004, 0.09, 0.09, 0.2])


def test_holm_controls_the_family_wise_error_under_the_null():
    rng = np.random.default_rng(1)
    any_rejected = [any(holm(list(rng.uniform(size=20)))["reject"]) for _ in range(2000)]
    assert np.mean(any_rejected) <= 0.06


def test_min_detectable_difference_has_80_percent_power():
    sd, n = 0.04, 10
    mde = min_detectable_difference(sd, n)
    rng = np.random.default_rng(2)
    rejected = [t_interval(rng.normal(mde, sd, size=n))["p_value"] < 0.05 for _ in range(3000)]
    assert 0.77 <= np.mean(rejected) <= 0.83
    assert min_detectable_difference(sd, 1) is None
    assert min_detectable_difference(sd, 40) < mde  # more replicates detect less


def _records(deltas, method="tardiff", baseline="unguided", protocol="tstr"):
    out = []
    for seed, d in enumerate(deltas):
        out.append({"method": baseline, "protocol": protocol, "alpha": None, "evaluator": "gbm", "seed": seed,
                    "auprc": 0.4 + 0.01 * seed})
        out.append({"method": method, "protocol": protocol, "alpha": None, "evaluator": "gbm", "seed": seed,
                    "auprc": 0.4 + 0.01 * seed + d})
    return out


def test_replicated_comparisons_pairs_by_replicate():
    deltas = [0.05, 0.04, 0.06, 0.05, 0.03, 0.07, 0.05, 0.04, 0.06, 0.05]
    family = registry.comparison_family(["unguided", "tardiff"], "gbm")
    (row,) = [r for r in replicated_comparisons(_records(deltas), family) if r["protocol"] == "tstr"]
    assert row["deltas"] == pytest.approx(deltas)
    assert row["delta_auprc"] == pytest.approx(np.mean(deltas))
    assert row["decision"] == "higher" and row["n_replicates"] == 10
    assert row["mde_auprc"] == pytest.approx(min_detectable_difference(np.std(deltas, ddof=1), 10))


def test_a_noisy_difference_around_zero_is_no_evidence():
    rng = np.random.default_rng(3)
    family = registry.comparison_family(["unguided", "tardiff"], "gbm")
    (row,) = [r for r in replicated_comparisons(_records(rng.normal(0, 0.05, 10)), family)
              if r["protocol"] == "tstr"]
    assert row["decision"] == "no evidence"


def test_the_family_is_fixed_by_the_registry_not_by_results():
    family = registry.comparison_family(["real", "smote", "mcrage", "unguided", "tardiff", "tardiff_cal", "ros"], "cnn")
    kinds = {(c["kind"], c["method"], c["baseline"], c["protocol"]) for c in family}
    assert ("tardiff_vs_unguided", "tardiff_cal", "unguided", "tstr") in kinds
    assert ("vs_real", "smote", "real", "rebalance") in kinds
    assert ("tardiff_vs_baseline", "tardiff", "mcrage", "tsrtr") in kinds
    assert not any(c["method"] == "ros" for c in family)  # a control generates nothing new
    assert all(c["alpha"] == 1.0 for c in family if c["protocol"] == "tsrtr")
    assert len(family) == 30


def test_each_replicate_draws_its_own_split_and_the_verdict_pairs_them(tmp_path):
    from tardiff.experiment import Experiment, ExperimentConfig

    config = ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "smote"), controls=False,
                              seeds=(0, 1, 2), evaluators=("gbm",), progress=False, out_dir=str(tmp_path / "out"),
                              cache_dir=str(tmp_path / "cache"))
    experiment = Experiment(config)
    records = experiment.run()
    train = [set(experiment.data(s).ids["train"].tolist()) for s in config.seeds]
    assert train[0] != train[1] != train[2]  # a fresh draw per replicate
    for seed in config.seeds:
        ids = experiment.data(seed).ids
        assert set(ids) == {"train", "val", "guide", "select", "test"}
        parts = [set(v.tolist()) for v in ids.values()]
        assert sum(map(len, parts)) == len(set().union(*parts))  # disjoint
    results = __import__("json").loads((tmp_path / "out" / "results.json").read_text())
    assert results["replicates"]["replicated"] and results["replicates"]["split_seeds"] == [0, 1, 2]
    (row,) = [c for c in results["comparisons"] if c["protocol"] == "rebalance"]
    by = {(r["method"], r["seed"]): r["auprc"] for r in records if r["protocol"] in ("trtr", "rebalance")}
    assert row["deltas"] == pytest.approx([by[("smote", s)] - by[("real", s)] for s in (0, 1, 2)])
    assert row["n_replicates"] == 3 and row["ci_low"] < row["delta_auprc"] < row["ci_high"]
    assert row["p_holm"] >= row["p_value"] and row["mde_auprc"] > 0 and row["test_noise_sd"] > 0


def test_replicates_option_is_short_for_seeds_and_checked():
    from tardiff.cli import build_parser
    from tardiff.experiment import ExperimentConfig

    args = build_parser().parse_args(["run", "simulated", "--replicates", "3"])
    assert args.replicates == 3
    config = ExperimentConfig.from_parameters(dataset="simulated", scale="smoke", replicates=3)
    assert config.seeds == (0, 1, 2) and config.replicated and config.split_seed_of(2) == 2
    fixed = ExperimentConfig.from_parameters(dataset="simulated", scale="smoke", seeds="4,5", split_seed=7)
    assert not fixed.replicated and fixed.split_seed_of(4) == fixed.split_seed_of(5) == 7
    with pytest.raises(ParameterError, match="not both"):
        ExperimentConfig.from_parameters(dataset="simulated", scale="smoke", replicates=3, seeds="0")
    with pytest.raises(ParameterError, match="whole number >= 1"):
        ExperimentConfig.from_parameters(dataset="simulated", scale="smoke", replicates=0)
