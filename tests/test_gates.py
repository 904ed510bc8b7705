"""The quality gate (tardiff.evaluation.gates) on known-bad generators, and its detectors.

Every known-bad set must fail and held-out real stays must pass, at smoke scale on the
simulated cohort (the cpu-scale numbers, simulator and PhysioNet, are in
benchmarks/results/gate-known-bad.json).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tardiff.data import load_cohort, prepare
from tardiff.errors import DataError
from tardiff.evaluation.detection import null_auroc_sd, summary_features
from tardiff.evaluation.gates import gate_description, quality_gate, range_shares, real_baseline


@pytest.fixture(scope="module")
def split():
    p = prepare(load_cohort("simulated", n=900, seed=3), random_state=0)
    X = np.concatenate([p.X_train, p.X_val, p.X_test]).astype(np.float32)
    y = np.concatenate([p.y_train, p.y_val, p.y_test]).astype(int)
    order = np.random.default_rng(0).permutation(len(y))
    train, held, pool = order[:300], order[300:600], order[600:900]
    data = {"train": (X[train], y[train]), "heldout": (X[held], y[held]), "pool": (X[pool], y[pool])}
    data["baseline"] = real_baseline(*data["train"], *data["heldout"], scale="smoke")
    return data


def _known_bad(train, pool, seed=0):
    (X_train, y_train), (X, y) = train, pool
    rng = np.random.default_rng(seed)
    gauss = np.empty_like(X)
    for label in (0, 1):
        rows = X_train[y_train == label]
        gauss[y == label] = rng.normal(rows.mean(axis=(0, 1)), rows.std(axis=(0, 1)), ((y == label).sum(),) + X.shape[1:])
    return {
        "white noise": (rng.normal(size=X.shape).astype(np.float32), y),
        "Gaussian marginals": (gauss.astype(np.float32), y),
        "time axis shuffled": (np.stack([row[rng.permutation(X.shape[1])] for row in X]), y),
        "labels swapped": (X, 1 - y),
        "scaled by 1.5": (1.5 * X, y),
    }


def _gate(split, X, y):
    return quality_gate(*split["train"], X, y, *split["heldout"], baseline=split["baseline"], scale="smoke")


def test_heldout_real_stays_pass(split):
    gate = _gate(split, *split["pool"])
    assert gate["passes_quality_gate"], gate["gate_failures"]
    assert gate["gate_failures"] == []
    json.dumps(gate, allow_nan=False)  # strict JSON: None, never NaN


@pytest.mark.parametrize("case", ["white noise", "Gaussian marginals", "time axis shuffled", "labels swapped",
                                  "scaled by 1.5"])
def test_known_bad_generators_fail(split, case):
    X, y = _known_bad(split["train"], split["pool"])[case]
    gate = _gate(split, X, y)
    assert not gate["passes_quality_gate"]
    assert gate["gate_failures"] and all(isinstance(r, str) and "\n" not in r for r in gate["gate_failures"])


def test_result_keys_and_one_class_sets(split):
    X, y = split["pool"]
    gate = _gate(split, X[y == 1], y[y == 1])  # a balance set: the minority only
    for key in ("gru_auroc", "gbm_auroc", "gru_baseline", "gbm_baseline", "gru_threshold", "gbm_threshold",
                "scale_ratio", "n_synth"):
        assert f"{key}_pos" in gate and f"{key}_neg" in gate
    assert gate["n_synth_neg"] == 0 and gate["gru_auroc_neg"] is None and gate["gru_auroc_pos"] is not None
    assert gate["label_auroc"] is None and gate["label_auroc_real"] > 0.6  # not judged with one class
    assert gate["passes_quality_gate"], gate["gate_failures"]
    for key in ("range_share_max", "range_worst_feature", "range_share_mean", "membership_auroc", "dcr_ratio"):
        assert key in gate
    json.dumps(gate, allow_nan=False)
    assert set(gate_description()) >= {"detection_margin", "label_fraction", "range_margin", "scale_ratio",
                                       "description"}


def test_baseline_is_json_and_checks_inputs(split):
    b = split["baseline"]
    json.dumps(b, allow_nan=False)
    assert {"gru_baseline_neg", "gbm_baseline_pos", "label_auroc_real", "range_share_max_real"} <= set(b)
    X, y = split["train"]
    with pytest.raises(DataError, match="differ in"):
        quality_gate(X, y, X[:, :3], y, *split["heldout"], baseline=b, scale="smoke")
    with pytest.raises(DataError, match="both classes"):
        real_baseline(X, np.zeros_like(y), *split["heldout"], scale="smoke")


def test_closed_forms():
    ref = np.zeros((2, 4, 2)); ref[1] = 1.0
    np.testing.assert_array_equal(range_shares(ref, ref), [0.0, 0.0])  # a set within its own range
    np.testing.assert_array_equal(range_shares(ref, np.full((1, 4, 2), [0.5, -1.0])), [0.0, 1.0])
    X = np.tile(np.arange(4, dtype=np.float32)[None, :, None], (1, 1, 1))  # 0, 1, 2, 3
    mean, sd, low, high, last, slope, missing = summary_features(X)[0]
    assert (mean, low, high, last, slope, missing) == (1.5, 0.0, 3.0, 3.0, 1.0, 0.0)
    assert sd == pytest.approx(np.std([0, 1, 2, 3]))
    X[0, 1, 0] = np.nan  # missing is counted and left out of the statistics
    assert summary_features(X)[0, 6] == 0.25 and summary_features(X)[0, 0] == pytest.approx(5 / 3)
    assert null_auroc_sd(100) == pytest.approx(np.sqrt(201 / 120000))


def test_a_tiny_held_out_class_is_judged_without_early_stopping(split):
    """A demo cohort's held-out split can hold 4 or 5 stays of a class: too few for a GBM to set aside
    a stratified fifth to stop early on, so it trains without (this crashed the MIMIC demo's chapter)."""
    X_train, y_train = split["train"]
    X_held, y_held = split["heldout"]
    keep = np.r_[np.flatnonzero(y_held == 0)[:5], np.flatnonzero(y_held == 1)[:5]]
    baseline = real_baseline(X_train, y_train, X_held[keep], y_held[keep], scale="smoke")
    X, y = split["pool"]
    gate = quality_gate(X_train, y_train, X, y, X_held[keep], y_held[keep], baseline=baseline, scale="smoke")
    assert 0.0 <= gate["gbm_auroc_pos"] <= 1.0 and isinstance(gate["passes_quality_gate"], bool)
