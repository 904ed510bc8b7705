"""Tests of the simulated ICU cohort and its exact Bayes posterior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from tardiff.data import load_cohort, prepare
from tardiff.data.simulated import (
    COMPONENTS, FEATURES, POSITIVE_COMPONENTS, SimulationConfig, bayes_posterior, component_moments,
    component_posterior, find_source_files, from_latent, load, simulate, to_latent,
)
from tardiff.errors import ParameterError


@pytest.fixture(scope="module")
def default_cohort():
    """The default cohort (n = 4000, seed 0) and its components, shared by the slower checks."""
    return simulate(4000, SimulationConfig(), seed=0)


def test_shape_dtypes_and_plausible_ranges():
    cohort, component = simulate(300, seed=2)
    assert cohort.shape == (300, 24, 7) and cohort.X.dtype == np.float32 and cohort.mask.dtype == bool
    assert cohort.features == list(FEATURES) and cohort.units[0] == "bpm" and cohort.units[-1] == "%"
    assert cohort.dataset == "simulated" and cohort.task == "mortality" and cohort.step_minutes == 60
    np.testing.assert_array_equal(np.isnan(cohort.X), ~cohort.mask)
    assert np.isfinite(cohort.X[cohort.mask]).all()
    np.testing.assert_array_equal(cohort.stay_ids, np.arange(300))
    lo = np.nanmin(cohort.X, axis=(0, 1))
    hi = np.nanmax(cohort.X, axis=(0, 1))
    med = np.nanmedian(cohort.X.reshape(-1, 7), axis=0)
    assert (lo >= [20, 30, 10, 20, 3, 33, 50]).all() and (hi <= [220, 250, 160, 180, 80, 42, 100]).all()
    assert hi[FEATURES.index("SpO2")] < 100.0
    assert np.allclose(med, [85, 120, 61, 80, 18, 36.9, 97], rtol=0.05)
    assert 0.11 < 1 - cohort.mask.mean() < 0.18  # 1 - 0.9 * 0.95 = 0.145
    assert set(cohort.static.columns) == {"age", "sex"} and set(cohort.static["sex"]) == {"F", "M"}
    assert cohort.static["age"].between(18, 95).all()
    assert component.shape == (300,) and set(np.unique(component)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(cohort.y, np.isin(component, POSITIVE_COMPONENTS))
    assert cohort.bayes_posterior.shape == (300,)
    assert ((cohort.bayes_posterior >= 0) & (cohort.bayes_posterior <= 1)).all()
    assert cohort.info["config"] == {**SimulationConfig().__dict__}


def test_rates_of_outcome_and_phenotypes(default_cohort):
    cohort, component = default_cohort
    n = len(component)
    assert abs(cohort.y.mean() - 0.08) < 4 * np.sqrt(0.08 * 0.92 / n)
    positives = component[cohort.y == 1]
    rare = np.mean(positives == COMPONENTS.index("respiratory"))
    assert abs(rare - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(positives))
    mild = np.mean(component[cohort.y == 0] == COMPONENTS.index("mild"))
    assert abs(mild - 0.2) < 4 * np.sqrt(0.2 * 0.8 / (n - len(positives)))
    # Age shifts the odds: the positives are older.
    assert cohort.static["age"][cohort.y == 1].mean() > cohort.static["age"][cohort.y == 0].mean() + 4


def test_rare_phenotype_is_identifiable(default_cohort):
    cohort, component = default_cohort
    post = component_posterior(cohort.X, cohort.mask, SimulationConfig())
    resp, shock = COMPONENTS.index("respiratory"), COMPONENTS.index("shock")
    # Among positives, the posterior tells the two fatal phenotypes apart far better than chance.
    assert post[component == resp, resp].mean() > 0.6
    assert post[component == shock, resp].mean() < 0.15


def test_deterministic_under_seed_and_different_across_seeds():
    a, ca = simulate(60, seed=5)
    b, cb = simulate(60, seed=5)
    c, _ = simulate(60, seed=6)
    np.testing.assert_array_equal(a.X, b.X)  # NaNs in the same places compare equal
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(ca, cb)
    np.testing.assert_array_equal(a.bayes_posterior, b.bayes_posterior)
    assert a.static.equals(b.static)
    assert not np.allclose(np.nan_to_num(a.X), np.nan_to_num(c.X))


def test_latent_transform_round_trip_and_support():
    x = np.array([[70.0, 110, 55, 75, 12, 36.5, 94.0]])
    np.testing.assert_allclose(from_latent(to_latent(x)), x, rtol=1e-12)
    z = to_latent(np.array([[70.0, 110, 55, 75, -1.0, 36.5, 100.0]]))  # outside the support: clipped
    assert np.isfinite(z).all()


def test_latent_moments_match_a_large_sample():
    # Closed-form moments versus the term-by-term sampler (no missing values, balanced components).
    config = SimulationConfig(positive_rate=0.5, rare_fraction=0.5, mild_fraction=0.5, missing_rate=0.0,
                              missing_hour_rate=0.0)
    cohort, component = simulate(4000, config, seed=11)
    z = to_latent(cohort.X).reshape(len(cohort.X), -1)
    means, covs = component_moments(config)
    d = z.shape[1]
    maha = np.empty(len(z))
    for k in range(len(COMPONENTS)):
        resid = z[component == k] - means[k]
        maha[component == k] = np.einsum("nd,nd->n", resid @ np.linalg.inv(covs[k]), resid)
        # Under the right moments E = D and the mean's sd is sqrt(2 D / m) (about 0.6 here).
        assert abs(maha[component == k].mean() - d) < 5 * np.sqrt(2 * d / np.sum(component == k)), COMPONENTS[k]
        emp = np.cov(z[component == k], rowvar=False)
        assert np.linalg.norm(emp - covs[k]) / np.linalg.norm(covs[k]) < 0.12
    # Pooled over all stays the check is sharp enough to see the small circadian term.
    assert abs(maha.mean() - d) < 3 * np.sqrt(2 * d / len(z))
    assert abs(maha.var() / (2 * d) - 1) < 0.15  # chi-square with D degrees of freedom


def test_posterior_matches_brute_force_on_observed_subvector():
    config = SimulationConfig(missing_rate=0.3, missing_hour_rate=0.1, positive_rate=0.3)
    cohort, component = simulate(40, config, seed=3)
    post = component_posterior(cohort.X, cohort.mask, config, chunk_size=7)
    means, covs = component_moments(config)
    log_prior = np.log(config.priors())
    picks = np.r_[np.flatnonzero(cohort.y == 1)[:3], np.flatnonzero(cohort.y == 0)[:3]]
    for i in picks:
        z = to_latent(cohort.X[i]).ravel()
        obs = cohort.mask[i].ravel()
        assert 0 < obs.sum() < obs.size  # a genuine missingness pattern
        loglik = np.array([
            multivariate_normal(means[k][obs], covs[k][np.ix_(obs, obs)]).logpdf(z[obs])
            for k in range(len(COMPONENTS))
        ])
        logits = log_prior + loglik
        expected = np.exp(logits - logits.max())
        expected /= expected.sum()
        np.testing.assert_allclose(post[i], expected, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    np.testing.assert_allclose(cohort.bayes_posterior, post[:, list(POSITIVE_COMPONENTS)].sum(axis=1))
    # Chunking does not change the answer; a stay with nothing observed gets the prior.
    np.testing.assert_allclose(component_posterior(cohort.X, cohort.mask, config, chunk_size=1000), post)
    empty = np.full((1, 24, 7), np.nan, dtype=np.float32)
    assert bayes_posterior(empty, None, config)[0] == pytest.approx(0.3)


def test_without_deterioration_the_posterior_is_the_prior():
    config = SimulationConfig(severity_scale=0.0)
    cohort, _ = simulate(50, config, seed=0)
    np.testing.assert_allclose(cohort.bayes_posterior, 0.08, rtol=1e-9)


def test_posterior_is_calibrated(default_cohort):
    cohort, _ = default_cohort
    p, y = cohort.bayes_posterior, cohort.y
    assert abs(p.sum() - y.sum()) < 4 * np.sqrt((p * (1 - p)).sum())
    edges = [0.0, 0.03, 0.1, 0.3, 0.6, 1.0]
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (p >= lo) & (p < hi)
        assert inside.sum() >= 30
        se = np.sqrt((p[inside] * (1 - p[inside])).sum()) / inside.sum()
        assert abs(y[inside].mean() - p[inside].mean()) < 4 * se + 0.01, (lo, hi)
    # Logistic recalibration of the posterior's logit finds slope ~ 1 and intercept ~ 0.
    logit = np.log(p / (1 - p))[:, None]
    fit = LogisticRegression(C=1e6).fit(logit, y)
    assert 0.8 < fit.coef_[0, 0] < 1.25 and abs(fit.intercept_[0]) < 0.35


def test_default_difficulty_and_the_ceiling_beats_logistic_regression(default_cohort):
    cohort, _ = default_cohort
    auroc = roc_auc_score(cohort.y, cohort.bayes_posterior)
    auprc = average_precision_score(cohort.y, cohort.bayes_posterior)
    assert auroc == pytest.approx(0.877, abs=0.005) and auprc == pytest.approx(0.562, abs=0.01)
    prepared = prepare(cohort, random_state=0, fractions=(0.5, 0.25, 0.25))
    X_train = prepared.X_train.reshape(len(prepared.X_train), -1)
    held_out = np.r_[prepared.split.val, prepared.split.test]
    X_held = np.concatenate([prepared.X_val, prepared.X_test]).reshape(len(held_out), -1)
    model = LogisticRegression(C=0.05, max_iter=2000).fit(X_train, prepared.y_train)
    lr_auroc = roc_auc_score(cohort.y[held_out], model.predict_proba(X_held)[:, 1])
    bayes_auroc = roc_auc_score(cohort.y[held_out], cohort.bayes_posterior[held_out])
    assert 0.6 < lr_auroc < bayes_auroc


@pytest.mark.parametrize("options", [
    {"n": 10}, {"n": 100.5}, {"positive_rate": 0.0}, {"positive_rate": 1.2}, {"missing_rate": 1.0},
    {"missing_hour_rate": -0.1}, {"rare_fraction": 1.5}, {"severity_scale": -1.0}, {"n_steps": 1},
])
def test_bad_parameters_raise_one_line_errors(options):
    with pytest.raises(ParameterError) as info:
        load(None, "mortality", **options)
    assert "\n" not in str(info.value)


def test_unknown_task_and_no_source_files(tmp_path):
    with pytest.raises(ParameterError, match="no task"):
        load(None, "length_of_stay", n=50)
    assert find_source_files(tmp_path) == []


def test_registry_and_cache_round_trip(tmp_path):
    first = load_cohort("simulated", n=500, seed=1, cache_dir=tmp_path)
    files = list(tmp_path.glob("simulated-mortality-*.npz"))
    assert len(files) == 1
    second = load_cohort("simulated", n=500, seed=1, cache_dir=tmp_path)
    assert second.shape == (500, 24, 7) and second.dataset == "simulated"
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)
    np.testing.assert_array_equal(first.bayes_posterior, second.bayes_posterior)
    assert second.static["sex"].tolist() == first.static["sex"].tolist()
    # The stored config is enough to recompute the posterior of a cached cohort.
    config = SimulationConfig(**second.info["config"])
    np.testing.assert_allclose(bayes_posterior(second.X, second.mask, config), second.bayes_posterior)
    other = load_cohort("simulated", n=500, seed=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2 and not np.array_equal(other.y, first.y)
