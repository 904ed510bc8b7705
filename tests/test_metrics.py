"""Known-answer tests of the utility, fidelity, privacy and fairness metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from tardiff.errors import DataError, ParameterError
from tardiff.evaluation import (
    age_bands,
    autocorrelation_difference,
    bootstrap_ci,
    choose_threshold,
    discriminative_score,
    distance_to_closest_record,
    embed_2d,
    marginal_wasserstein,
    membership_inference_auroc,
    nn_adversarial_accuracy,
    paired_test,
    predictive_score,
    subgroup_metrics,
    summarise_over_seeds,
    utility_metrics,
    worst_group_gap,
)


def _gaussian(n: int, t: int = 8, f: int = 2, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, t, f)) + shift).astype(np.float32)


def _ar1(phi: float, n: int, t: int = 12, f: int = 2, seed: int = 0) -> np.ndarray:
    """Stationary AR(1) sequences x_t = phi x_{t-1} + e_t with e_t ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, t, f))
    x[:, 0] = rng.normal(size=(n, f)) / math.sqrt(1 - phi**2)
    for step in range(1, t):
        x[:, step] = phi * x[:, step - 1] + rng.normal(size=(n, f))
    return x.astype(np.float32)


def _scored_labels(n: int, prevalence: float = 0.2, signal: float = 1.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    p = 1 / (1 + np.exp(-(signal * y + rng.normal(size=n) - 1.5)))
    return y, p


# ----------------------------------------------------------------------------- utility
def test_utility_metrics_perfect_and_reversed_rankings():
    y = np.array([0, 0, 0, 1, 0, 1, 0, 0, 1, 0])
    perfect = utility_metrics(y, y.astype(float))
    assert perfect["auprc"] == 1.0 and perfect["auroc"] == 1.0
    assert perfect["brier"] == 0.0 and perfect["minority_f1"] == 1.0
    assert perfect["prevalence"] == pytest.approx(0.3)
    reversed_ = utility_metrics(y, 1.0 - y)
    assert reversed_["auroc"] == 0.0 and reversed_["minority_f1"] == 0.0


def test_utility_metrics_hand_computed_values():
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    m = utility_metrics(y, p, threshold=0.3)
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # precision 1 at recall .5, 2/3 at recall 1
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["minority_f1"] == pytest.approx(0.8)  # predicted positive: .4, .35, .8 -> P = 2/3, R = 1


def test_prevalence_is_the_expected_auprc_of_random_rankings():
    y, _ = _scored_labels(400, prevalence=0.15)
    rng = np.random.default_rng(1)
    random_auprc = np.mean([average_precision_score(y, rng.random(len(y))) for _ in range(200)])
    assert utility_metrics(y, rng.random(len(y)))["prevalence"] == pytest.approx(y.mean())
    assert random_auprc == pytest.approx(y.mean(), abs=0.02)


def test_utility_metrics_rejects_one_class_and_bad_input():
    with pytest.raises(DataError, match="both classes"):
        utility_metrics(np.zeros(5, dtype=int), np.linspace(0, 1, 5))
    with pytest.raises(DataError, match="NaN"):
        utility_metrics(np.array([0, 1]), np.array([0.2, np.nan]))
    with pytest.raises(ParameterError):
        utility_metrics(np.array([0, 1]), np.array([0.2, 0.7]), threshold=1.5)


def test_choose_threshold_maximises_validation_f1():
    y, p = _scored_labels(300, seed=3)
    threshold = choose_threshold(y, p)
    best = utility_metrics(y, p, threshold=threshold)["minority_f1"]
    grid = [f1_score(y, (p >= c).astype(int)) for c in np.unique(p)]
    assert best == pytest.approx(max(grid))
    assert best > utility_metrics(y, p, threshold=0.5)["minority_f1"] - 1e-12


def test_bootstrap_ci_contains_estimate_and_narrows_with_n():
    widths = []
    for n in (200, 3000):
        y, p = _scored_labels(n, seed=5)
        low, high = bootstrap_ci(y, p, "auroc", n_boot=300, random_state=0)
        assert low <= roc_auc_score(y, p) <= high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]
    # deterministic for a fixed random_state
    y, p = _scored_labels(200, seed=5)
    assert bootstrap_ci(y, p, "auprc", n_boot=50) == bootstrap_ci(y, p, "auprc", n_boot=50)


def test_bootstrap_is_stratified():
    y, p = _scored_labels(150, seed=2)
    low, high = bootstrap_ci(y, p, lambda yb, pb: float(yb.mean()), n_boot=100)
    assert low == pytest.approx(y.mean()) and high == pytest.approx(y.mean())


def test_summarise_over_seeds_mean_std_count():
    df = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b", "b"],
            "protocol": ["tstr"] * 5,
            "seed": [0, 1, 2, 0, 1],
            "auroc": [0.6, 0.7, 0.8, 0.5, 0.5],
            "auprc": [0.2, 0.2, 0.2, 0.1, np.nan],
        }
    )
    out = summarise_over_seeds(df, ["method", "protocol"], ["auroc", "auprc"]).set_index("method")
    assert out.loc["a", "n"] == 3 and out.loc["b", "n"] == 2
    assert out.loc["a", "auroc_mean"] == pytest.approx(0.7)
    assert out.loc["a", "auroc_std"] == pytest.approx(0.1)  # ddof = 1
    assert out.loc["b", "auroc_std"] == 0.0
    assert out.loc["b", "auprc_mean"] == pytest.approx(0.1) and math.isnan(out.loc["b", "auprc_std"])
    with pytest.raises(DataError, match="not in the results table"):
        summarise_over_seeds(df, ["method"], ["f1"])


def test_paired_test_detects_consistent_difference_only():
    rng = np.random.default_rng(0)
    base = rng.normal(0.7, 0.03, size=8)
    better = base + 0.02 + rng.normal(0, 0.005, size=8)
    r = paired_test(better, base)
    assert r["mean_diff"] == pytest.approx(np.mean(better - base))
    assert r["p_value"] < 0.01 and r["wilcoxon_p"] < 0.05 and r["n"] == 8
    null = paired_test(base + rng.normal(0, 0.01, size=8), base + rng.normal(0, 0.01, size=8))
    assert null["p_value"] > 0.05 and null["wilcoxon_p"] > 0.05
    small = paired_test(better[:4], base[:4])
    assert math.isnan(small["wilcoxon_p"]) and small["p_value"] < 0.05


def test_paired_test_degenerate_cases():
    one = paired_test([0.7], [0.6])
    assert math.isnan(one["p_value"]) and "at least 2" in one["note"]
    same = paired_test([0.7, 0.8, 0.6], [0.7, 0.8, 0.6])
    assert same["p_value"] == 1.0 and same["mean_diff"] == 0.0
    with pytest.raises(DataError):
        paired_test([0.1, 0.2], [0.1])


# ----------------------------------------------------------------------------- fidelity
def test_marginal_wasserstein_identical_and_shifted():
    real = _gaussian(200, seed=0)
    assert (marginal_wasserstein(real, real) == 0).all()
    exact = marginal_wasserstein(real, real + 1.5, features=["hr", "rr"])
    assert list(exact.index) == ["hr", "rr"] and np.allclose(exact, 1.5, atol=1e-5)
    drawn = marginal_wasserstein(real, _gaussian(200, seed=1, shift=2.0))
    assert np.allclose(drawn, 2.0, atol=0.15)


def test_marginal_wasserstein_ignores_nan():
    real = _gaussian(50, seed=0)
    holed = real.copy()
    holed[:10, :, 0] = np.nan
    w = marginal_wasserstein(real[10:], holed)
    assert w.iloc[0] == pytest.approx(0.0, abs=1e-7) and w.iloc[1] > 0


def test_autocorrelation_difference():
    ar = _ar1(0.8, 300, seed=0)
    assert autocorrelation_difference(ar, ar) == 0.0
    # a second draw of the same process is close; white noise is far (lag-1 ACF ~0.8 vs ~0)
    assert autocorrelation_difference(ar, _ar1(0.8, 300, seed=1), max_lag=3) < 0.05
    assert autocorrelation_difference(ar, _gaussian(300, t=12, seed=2), max_lag=1) > 0.4
    with pytest.raises(ParameterError):
        autocorrelation_difference(ar, ar, max_lag=0)


def test_discriminative_score_same_distribution_vs_shifted():
    real = _gaussian(500, seed=0)
    same = discriminative_score(real, _gaussian(500, seed=1), epochs=5, seed=0)
    copy = discriminative_score(real, real.copy(), epochs=5, seed=0)
    shifted = discriminative_score(real, _gaussian(500, seed=1, shift=1.0), epochs=5, seed=0)
    assert same < 0.1 and copy < 0.1
    assert shifted > 0.3
    assert 0.0 <= shifted <= 0.5
    assert discriminative_score(real, _gaussian(500, seed=1), epochs=5, seed=0) == same  # deterministic


def test_predictive_score_prefers_matching_dynamics():
    train, test = _ar1(0.8, 400, seed=0), _ar1(0.8, 200, seed=1)
    on_real = predictive_score(train, test, epochs=10, seed=0)
    on_wrong = predictive_score(_ar1(-0.8, 400, seed=2), test, epochs=10, seed=0)
    # the best possible next-step MAE is E|e| = sqrt(2/pi) ~ 0.80
    assert math.sqrt(2 / math.pi) - 0.05 < on_real < 1.0
    assert on_wrong > on_real + 0.3


def test_fidelity_input_checks():
    real = _gaussian(20)
    with pytest.raises(DataError, match=r"\(T, F\)"):
        discriminative_score(real, _gaussian(20, t=5))
    bad = real.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        predictive_score(bad, real)
    with pytest.raises(DataError, match=r"\(N, T, F\)"):
        marginal_wasserstein(real[:, :, 0], real[:, :, 0])


def test_embed_2d_pca_and_tsne():
    real, synth = _gaussian(60, seed=0), _gaussian(40, seed=1, shift=3.0)
    er, es = embed_2d(real, synth, "pca")
    assert er.shape == (60, 2) and es.shape == (40, 2)
    assert np.allclose(er.mean(axis=0), 0, atol=1e-6)  # PCA centred on the real data
    assert abs(es[:, 0].mean()) > 3  # the shift shows along the first component
    er, es = embed_2d(real, synth, "tsne", max_samples=30)
    assert er.shape == (30, 2) and es.shape == (30, 2) and np.isfinite(er).all()
    with pytest.raises(ParameterError):
        embed_2d(real, synth, "umap")


# ----------------------------------------------------------------------------- privacy
def test_distance_to_closest_record():
    train, holdout = _gaussian(300, t=3, seed=0), _gaussian(300, t=3, seed=1)
    copy = distance_to_closest_record(train.copy(), train, holdout)
    assert copy["synth_median"] == 0.0 and copy["synth_p5"] == 0.0 and copy["ratio_median"] == 0.0
    assert copy["holdout_median"] > 0 and copy["share_closer_to_train"] == 1.0
    fresh = distance_to_closest_record(_gaussian(300, t=3, seed=2), train, holdout)
    assert 0.85 < fresh["ratio_median"] < 1.15
    assert 0.35 < fresh["share_closer_to_train"] < 0.65


def test_membership_inference_auroc():
    members, others = _gaussian(200, t=3, seed=0), _gaussian(200, t=3, seed=1)
    assert membership_inference_auroc(members.copy(), members, others) > 0.95
    independent = membership_inference_auroc(_gaussian(400, t=3, seed=2), members, others)
    assert abs(independent - 0.5) < 0.08


def test_nn_adversarial_accuracy():
    real = _gaussian(400, t=3, seed=0)
    assert abs(nn_adversarial_accuracy(real, _gaussian(400, t=3, seed=1)) - 0.5) < 0.06
    assert nn_adversarial_accuracy(real, real + 50.0) == 1.0
    assert nn_adversarial_accuracy(real, real.copy()) == 0.0
    # unequal sizes are subsampled to one size, deterministically
    big = _gaussian(900, t=3, seed=3)
    a = nn_adversarial_accuracy(real, big, random_state=4)
    assert a == nn_adversarial_accuracy(real, big, random_state=4) and abs(a - 0.5) < 0.08


def test_privacy_input_checks():
    with pytest.raises(DataError, match="size per record"):
        nn_adversarial_accuracy(_gaussian(10, t=3), _gaussian(10, t=4))
    with pytest.raises(ParameterError):
        membership_inference_auroc(_gaussian(10), _gaussian(10), _gaussian(10), max_samples=1)


# ----------------------------------------------------------------------------- fairness
def test_subgroup_metrics_match_sklearn_per_group():
    y, p = _scored_labels(600, prevalence=0.25, seed=7)
    rng = np.random.default_rng(8)
    sex = rng.choice(["F", "M"], size=600)
    age = rng.uniform(20, 95, size=600)
    bands = age_bands(age)
    df = subgroup_metrics(y, p, {"sex": sex, "age band": bands}, min_size=10)
    assert list(df.columns) == ["attribute", "group", "n", "positives", "prevalence", "auroc", "auprc"]
    assert df.loc[df.attribute == "age band", "group"].tolist() == ["18-44", "45-64", "65-79", "80+"]
    for row in df.itertuples():
        labels = sex if row.attribute == "sex" else np.asarray(bands)
        idx = labels == row.group
        assert row.n == idx.sum() and row.positives == y[idx].sum()
        assert row.auroc == pytest.approx(roc_auc_score(y[idx], p[idx]))
        assert row.auprc == pytest.approx(average_precision_score(y[idx], p[idx]))
    sex_rows = df[df.attribute == "sex"]
    assert worst_group_gap(df, "auroc", attribute="sex") == pytest.approx(
        sex_rows.auroc.max() - sex_rows.auroc.min()
    )
    assert worst_group_gap(df, "auprc") == pytest.approx(df.auprc.max() - df.auprc.min())


def test_subgroup_metrics_single_class_small_and_missing_groups():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    p = np.linspace(0.1, 0.9, 8)
    groups = pd.DataFrame({"site": ["a", "a", "a", "b", "b", "b", "b", None]})
    df = subgroup_metrics(y, p, groups, min_size=1)
    assert df.n.tolist() == [3, 4]  # the missing label is left out
    assert math.isnan(df.auroc.iloc[0]) and math.isnan(df.auprc.iloc[0])  # group a: negatives only
    assert df.auroc.iloc[1] == pytest.approx(roc_auc_score(y[3:7], p[3:7]))
    assert subgroup_metrics(y, p, groups, min_size=5).auroc.isna().all()
    assert math.isnan(worst_group_gap(df, "auroc"))  # one defined group only
    with pytest.raises(DataError, match="one label per test record"):
        subgroup_metrics(y, p, {"site": ["a"] * 7})


def test_age_bands():
    bands = age_bands([17, 18, 44.9, 45, 64, 65, 79.5, 80, 101, np.nan])
    assert list(bands.categories) == ["<18", "18-44", "45-64", "65-79", "80+"]
    assert list(bands[:9]) == ["<18", "18-44", "18-44", "45-64", "45-64", "65-79", "65-79", "80+", "80+"]
    assert pd.isna(bands[9]) and bands.ordered
    assert list(age_bands([30, 70], edges=(50,))) == ["<50", "50+"]
    with pytest.raises(ParameterError):
        age_bands([30], edges=(60, 40))


def test_fast_bootstrap_metrics_equal_scikit_learn():
    from tardiff.evaluation.utility import _fast_auprc, _fast_auroc

    rng = np.random.default_rng(7)
    for trial in range(20):
        y = (rng.random(60) < 0.2).astype(int)
        y[:2] = [0, 1]
        p = np.round(rng.random(60), 1 if trial % 2 else 6)  # with and without ties
        assert abs(_fast_auroc(y, p) - roc_auc_score(y, p)) < 1e-12
        assert abs(_fast_auprc(y, p) - average_precision_score(y, p)) < 1e-12
