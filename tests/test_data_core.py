"""The cohort container, splits, imputation, scaling and the atomic cache."""

import numpy as np
import pandas as pd
import pytest

from tardiff.data import Cohort, FeatureScaler, forward_fill, impute, prepare, stratified_split
from tardiff.data.cache import CacheWarning, atomic_path, hash_key, load_cohort_file, save_cohort
from tardiff.errors import DataError, ParameterError


def toy_cohort(n=60, t=5, f=3, seed=0) -> Cohort:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, t, f)).astype(np.float32) * np.array([1, 10, 100]) + np.array([0, 50, 1000])
    X[rng.random(X.shape) < 0.2] = np.nan
    y = (np.arange(n) % 4 == 0).astype(int)
    static = pd.DataFrame({"age": rng.uniform(20, 90, n), "sex": np.where(np.arange(n) % 2, "F", "M")})
    return Cohort(X=X, mask=~np.isnan(X), y=y, features=["a", "b", "c"], units=["u", "v", "w"],
                  stay_ids=np.arange(100, 100 + n), static=static, dataset="toy", task="mortality")


def test_cohort_rejects_one_class_with_actionable_message():
    c = toy_cohort()
    with pytest.raises(DataError, match="needs both classes"):
        Cohort(X=c.X, mask=c.mask, y=np.zeros(len(c.y)), features=c.features, units=c.units,
               stay_ids=c.stay_ids, static=c.static, dataset="toy", task="mortality")


def test_cohort_rejects_mismatched_shapes():
    c = toy_cohort()
    with pytest.raises(DataError, match="mask shape"):
        Cohort(X=c.X, mask=c.mask[:, :2], y=c.y, features=c.features, units=c.units,
               stay_ids=c.stay_ids, static=c.static, dataset="toy", task="mortality")


def test_split_is_stratified_disjoint_and_seeded():
    y = np.array([0] * 180 + [1] * 20)
    s = stratified_split(y, random_state=3)
    assert s.sizes() == {"train": 160, "val": 20, "test": 20}
    assert y[s.train].sum() == 16 and y[s.val].sum() == 2 and y[s.test].sum() == 2
    together = np.concatenate([s.train, s.val, s.test])
    assert len(np.unique(together)) == 200
    again = stratified_split(y, random_state=3)
    assert np.array_equal(s.test, again.test)
    assert not np.array_equal(s.test, stratified_split(y, random_state=4).test)


def test_split_errors_are_one_line():
    with pytest.raises(DataError, match="at least 8"):
        stratified_split(np.array([0] * 50 + [1] * 2))
    with pytest.raises(ParameterError, match="summing to 1"):
        stratified_split(np.array([0, 1] * 10), fractions=(0.5, 0.5, 0.5))


def test_forward_fill_keeps_leading_gaps():
    X = np.array([[[np.nan, 1], [2, np.nan], [np.nan, np.nan], [5, 3]]], dtype=np.float32)
    out = forward_fill(X)
    expected = np.array([[[np.nan, 1], [2, 1], [2, 1], [5, 3]]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)


def test_impute_fills_leading_gaps_with_medians():
    X = np.array([[[np.nan], [4.0]]], dtype=np.float32)
    assert impute(X, np.array([7.0], np.float32)).ravel().tolist() == [7.0, 4.0]


def test_scaler_round_trip_and_constant_feature():
    X = np.stack([np.linspace(0, 1, 10), np.full(10, 3.0)], axis=-1)[None].astype(np.float32)
    s = FeatureScaler().fit(X)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X)), X, atol=1e-6)
    assert s.scale_[1] == 1.0  # a constant feature is not divided by zero


def test_prepare_fits_on_training_split_only():
    c = toy_cohort(n=80)
    p = prepare(c, random_state=0)
    train_values = c.X[p.split.train]
    np.testing.assert_allclose(p.scaler.mean_, np.nanmean(train_values.reshape(-1, 3), axis=0), rtol=1e-5)
    np.testing.assert_allclose(p.medians, np.nanmedian(train_values.reshape(-1, 3), axis=0), rtol=1e-5)
    # Changing only the test stays changes neither the scaler nor the medians.
    c2 = toy_cohort(n=80)
    c2.X[p.split.test] += 1e3
    p2 = prepare(c2, split=p.split)
    np.testing.assert_array_equal(p.scaler.mean_, p2.scaler.mean_)
    np.testing.assert_array_equal(p.medians, p2.medians)
    assert not np.isnan(p.X_test).any() and p.X_train.dtype == np.float32
    assert set(p.ids["test"]).isdisjoint(p.ids["train"]) and set(p.ids["test"]).isdisjoint(p.ids["val"])


def test_cohort_cache_round_trip(tmp_path):
    c = toy_cohort()
    c.bayes_posterior = np.linspace(0, 1, len(c.y))
    save_cohort(tmp_path / "c.npz", c)
    back = load_cohort_file(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.X, c.X)
    np.testing.assert_array_equal(back.bayes_posterior, c.bayes_posterior)
    assert back.static["sex"].tolist() == c.static["sex"].tolist()
    c.static.loc[0, "sex"] = None
    save_cohort(tmp_path / "c2.npz", c)
    sex = load_cohort_file(tmp_path / "c2.npz").static["sex"]
    assert pd.isna(sex[0]) and sex[1] == "F"  # a missing value stays missing, not the string "None"
    assert back.features == c.features and back.task == "mortality"


def test_cohort_without_static_columns_round_trips_through_the_cache(tmp_path):
    """Issue #22: the static table was rebuilt from its columns alone, so a cohort without any came
    back with 0 rows, failed the cohort's checks and every load warned that the cache was damaged."""
    import warnings

    c = toy_cohort()
    c.static = pd.DataFrame(index=range(len(c.y)))
    save_cohort(tmp_path / "c.npz", c)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a CacheWarning would fail the test
        back = load_cohort_file(tmp_path / "c.npz")
    assert back is not None and (tmp_path / "c.npz").exists()
    assert back.static.shape == (len(c.y), 0) and len(back.y) == len(c.y)
    for name in ("X", "mask", "y", "stay_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(c, name))


def test_damaged_cache_is_ignored(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.warns(CacheWarning, match="damaged cache file"):
        assert load_cohort_file(tmp_path / "c.npz") is None


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_hash_key_is_stable_and_sensitive():
    assert hash_key("a", {"x": 1}) == hash_key("a", {"x": 1})
    assert hash_key("a", {"x": 1}) != hash_key("a", {"x": 2})
