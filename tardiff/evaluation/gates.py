"""Quality gates: checks a generator's output must pass before its utility is ranked.

A generator whose samples are unlike real stays can still move a downstream AUPRC (up or down),
and a comparison that ranks it says nothing about the method. Every synthetic set is therefore
checked, **per class, against held-out real stays** (stays no generator was fitted on), next to
a **real-vs-real baseline**: the same checks on held-out real stays against the training stays
(:func:`real_baseline`, computed once per data split). The checks (thresholds in
:func:`gate_description`):

* **detection** (synthcity's DetectionEvaluator, per class): two detectors, a GRU on the series
  and a GBM on per-feature summaries (mean, sd, min, max, last, slope, missingness), each
  cross-fitted with early stopping (:mod:`tardiff.evaluation.detection`), tell the class's
  synthetic stays from its held-out real ones. A class passes when each AUROC is at most
  ``max(baseline, 0.5) + margin``, the margin :data:`DETECTION_MARGIN` (0.1) or three times the
  AUROC's null standard deviation at the rows compared, whichever is larger: a held-out class of
  50 stays alone gives AUROCs with sd 0.058, so a fixed 0.1 would fail a perfect generator about
  one time in ten; ``3 sd`` keeps that near one in a thousand, and with 300 stays per class
  (sd 0.024) the 0.1 floor applies.
* **label consistency**: a GBM on the same summaries, trained on the real training stays, ranks
  the synthetic positives above the synthetic negatives with AUROC ``a_synth``; its AUROC on the
  held-out real stays is ``a_real``. The gate asks for ``a_synth - 0.5 >=``
  :data:`LABEL_FRACTION` ``x (a_real - 0.5)``: the synthetic classes must keep at least half of
  the real classes' separation above chance (a generator with swapped labels scores below 0.5).
  Sets with one class only (balance sets hold only the minority) are not judged on it (None).
* **feature ranges**: the share of synthetic values outside the training stays' range, per
  feature; the worst feature's share may exceed the held-out real stays' worst share by at most
  :data:`RANGE_MARGIN` (0.1: a feature one value in ten of which lies beyond everything seen in
  training is broken, whatever else holds).
* **scale ratio** (per class), a sanity check: mean row L2 norm of the synthetic rows over that
  of the held-out real rows of the class, within :data:`SCALE_RATIO_RANGE` (a factor of 2 either
  way). The detectors judge finer distortions.
* reported, not gated: the **membership-inference AUROC** and the **DCR ratio** (privacy: the
  held-out stays are the never-seen reference).

Sizes (rows per class, detector widths, epochs) are per scale in :data:`GATE_SIZES`; at cpu scale
one PhysioNet-shaped set takes about 10-20 s on one core (see ``benchmarks/gate-known-bad.py``).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from tardiff.errors import DataError, ParameterError
from tardiff.evaluation.detection import (
    can_stop_early,
    gbm_detection_auroc,
    gru_detection_auroc,
    null_auroc_sd,
    summary_features,
)
from tardiff.evaluation.privacy import distance_to_closest_record, membership_inference_auroc
from tardiff.presets import check_scale, torch_generator

#: Detection AUROC allowed above ``max(baseline, 0.5)`` (at least; see DETECTION_NULL_SDS).
DETECTION_MARGIN = 0.1
#: ... or this many null standard deviations of the AUROC at the rows compared, when larger.
DETECTION_NULL_SDS = 3.0
#: Share of the real classes' separation above chance the synthetic classes must keep.
LABEL_FRACTION = 0.5
#: Worst feature's share of values outside the training range allowed above held-out real's.
RANGE_MARGIN = 0.1
#: The scale ratio each class must reach, synthetic over held-out real mean row norm (sanity).
SCALE_RATIO_RANGE = (0.5, 2.0)
#: Rows per class compared by the privacy metrics at most.
PRIVACY_MAX_ROWS = 1000

#: Sizes per scale: rows per class and side (``max_rows``), cross-fitting folds, the GRU detector
#: (width, epochs at most, patience) and the GBMs (boosting rounds at most; both stop early).
#: The cpu sizes keep one PhysioNet-shaped set (48 x 37, 300 rows per class) near 10-20 s on one
#: core and the smoke sizes near 1 s.
GATE_SIZES: dict[str, dict] = {
    "smoke": dict(max_rows=60, folds=2, gru_hidden=8, gru_epochs=6, gru_patience=2, gbm_max_iter=30,
                  label_max_iter=30),
    "cpu": dict(max_rows=300, folds=2, gru_hidden=16, gru_epochs=30, gru_patience=4, gbm_max_iter=200,
                label_max_iter=200),
    "paper": dict(max_rows=2000, folds=5, gru_hidden=64, gru_epochs=100, gru_patience=8, gbm_max_iter=500,
                  label_max_iter=500),
}

_CLASSES = ((0, "neg", "negative"), (1, "pos", "positive"))


def gate_description() -> dict:
    """The thresholds and what they mean, as stored in ``results.json`` under ``quality_gate``.

    Examples
    --------
    >>> gate_description()["detection_margin"]
    0.1
    """
    low, high = SCALE_RATIO_RANGE
    return {
        "reference": "held-out real stays, per class",
        "detection_margin": DETECTION_MARGIN, "detection_null_sds": DETECTION_NULL_SDS,
        "label_fraction": LABEL_FRACTION, "range_margin": RANGE_MARGIN, "scale_ratio": list(SCALE_RATIO_RANGE),
        "description": (
            "a generator passes when, in every class it generates, neither a GRU on the series nor a GBM on "
            "per-feature summaries (mean, sd, min, max, last, slope, missingness), cross-fitted with early "
            "stopping, tells its stays from held-out real stays with AUROC above max(real-vs-real baseline, 0.5) + "
            f"max({DETECTION_MARGIN:g}, {DETECTION_NULL_SDS:g} null sd of the AUROC); a GBM trained on real "
            "training stays ranks its positives above its negatives with AUROC - 0.5 at least "
            f"{LABEL_FRACTION:g} x (its AUROC on held-out real stays - 0.5); the worst feature's share of values "
            f"outside the training range is at most {RANGE_MARGIN:g} above held-out real's; and its mean row norm "
            f"is {low:g} to {high:g} times held-out real's (a sanity check)"
        ),
    }


def gate_sizes(scale: str) -> dict:
    """The gate's sizes at ``scale`` (a fresh dict; see :data:`GATE_SIZES`).

    Examples
    --------
    >>> gate_sizes("smoke")["max_rows"]
    60
    """
    return dict(GATE_SIZES[check_scale(scale)])


def scale_ratio(real: np.ndarray, synth: np.ndarray) -> float:
    """Mean row L2 norm of ``synth`` over that of ``real`` (rows of shape (T, F)).

    Examples
    --------
    >>> real = np.ones((4, 3, 2)); scale_ratio(real, 2 * real[:2])
    2.0
    """
    real_norm = np.linalg.norm(np.asarray(real, dtype=np.float64).reshape(len(real), -1), axis=1).mean()
    synth_norm = np.linalg.norm(np.asarray(synth, dtype=np.float64).reshape(len(synth), -1), axis=1).mean()
    return float(synth_norm / real_norm) if real_norm > 0 else float("nan")


def noise_prediction_error(model, process, X: np.ndarray, y: np.ndarray, *, t: int | None = None, seed: int = 0,
                           batch_size: int = 512, device="cpu") -> float:
    """Mean squared error of a denoiser's noise prediction at timestep ``t`` (default: the noisiest).

    ``model(x_t, t, y) -> eps`` is evaluated in eval mode on ``x_t = q_sample(X, t, noise)`` with
    noise from a generator seeded by ``seed``, so the number is repeatable.
    """
    t = process.n_steps - 1 if t is None else int(t)
    generator = torch_generator(seed)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                x0 = torch.as_tensor(X[start:start + batch_size], dtype=torch.float32)
                labels = torch.as_tensor(y[start:start + batch_size], dtype=torch.long)
                noise = torch.randn(x0.shape, generator=generator)
                steps = torch.full((len(x0),), t, dtype=torch.long)
                x_t = process.q_sample(x0, steps, noise)
                eps = model(x_t.to(device), steps.to(device), labels.to(device)).cpu()
                total += float(((eps - noise) ** 2).sum())
                count += noise.numel()
    finally:
        model.train(was_training)
    return total / count


def _check_inputs(X, y, name: str, allow_one_class: bool = False) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).astype(int).reshape(-1)
    if X.ndim != 3 or len(X) == 0:
        raise DataError(f"X_{name} must be a non-empty array of shape (N, T, F), got {X.shape}")
    if len(y) != len(X):
        raise DataError(f"y_{name} has {len(y)} labels for {len(X)} rows of X_{name}")
    if not set(np.unique(y)) <= {0, 1}:
        raise DataError(f"y_{name} must hold labels 0 and 1, got {sorted(set(np.unique(y)))[:5]}")
    if not allow_one_class and len(np.unique(y)) < 2:
        raise DataError(f"y_{name} must hold both classes for the gate's real reference")
    return X, y


def _check_min_rows(X: np.ndarray, y: np.ndarray, name: str, minimum: int = 4) -> None:
    for label, _, word in _CLASSES:
        if (y == label).sum() < minimum:
            raise DataError(f"the gate needs at least {minimum} {word} rows in X_{name}, got {(y == label).sum()}")


def _detectors(a: np.ndarray, b: np.ndarray, sizes: dict, seed: int, device) -> tuple[float, float, int]:
    """(GRU AUROC, GBM AUROC, rows per side) of the detectors telling ``b`` from ``a``."""
    n = min(len(a), len(b), sizes["max_rows"])
    gru = gru_detection_auroc(a, b, max_rows=sizes["max_rows"], folds=sizes["folds"], hidden=sizes["gru_hidden"],
                              epochs=sizes["gru_epochs"], patience=sizes["gru_patience"], seed=seed, device=device)
    gbm = gbm_detection_auroc(a, b, max_rows=sizes["max_rows"], folds=sizes["folds"],
                              max_iter=sizes["gbm_max_iter"], seed=seed)
    return gru, gbm, n


def range_shares(X_reference, X, *, tolerance: float = 1e-6) -> np.ndarray:
    """Per feature, the share of ``X``'s values outside ``X_reference``'s range (NaN ignored).

    Examples
    --------
    >>> ref = np.zeros((2, 3, 2)); ref[1] = 1.0
    >>> range_shares(ref, np.full((1, 3, 2), [0.5, 2.0])).tolist()
    [0.0, 1.0]
    """
    ref = np.asarray(X_reference, dtype=np.float64)
    x = np.asarray(X, dtype=np.float64)
    low, high = np.nanmin(ref, axis=(0, 1)), np.nanmax(ref, axis=(0, 1))
    slack = tolerance * np.maximum(high - low, 1.0)  # float32 round-trips of the bounds are not "outside"
    outside = (x < low - slack) | (x > high + slack)
    counted = np.isfinite(x).sum(axis=(0, 1))
    return outside.sum(axis=(0, 1)) / np.maximum(counted, 1)


# in-process cache of the label-consistency GBMs: the gate runs for many synthetic sets of one split
_LABEL_MODELS: OrderedDict = OrderedDict()


def _label_model(X_train: np.ndarray, y_train: np.ndarray, max_iter: int, seed: int):
    """A GBM on :func:`summary_features` fitted on the real training stays (cached per data and settings)."""
    digest = hashlib.blake2b(X_train.tobytes(), digest_size=16)
    digest.update(y_train.astype(np.int64).tobytes())
    digest.update(repr((X_train.shape, max_iter, seed)).encode())
    key = digest.hexdigest()
    if key not in _LABEL_MODELS:
        model = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=0.1, max_leaf_nodes=15,
                                               early_stopping=can_stop_early(y_train), validation_fraction=0.2,
                                               n_iter_no_change=10, random_state=seed).fit(summary_features(X_train),
                                                                                           y_train)
        _LABEL_MODELS[key] = model
        while len(_LABEL_MODELS) > 4:
            _LABEL_MODELS.popitem(last=False)
    return _LABEL_MODELS[key]


def _label_auroc(model, X: np.ndarray, y: np.ndarray) -> float | None:
    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, model.predict_proba(summary_features(X))[:, 1]))


def _finite(value) -> float | None:
    """A float for JSON, None for NaN or infinity (strict JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def real_baseline(X_train, y_train, X_heldout, y_heldout, *, seed: int = 0, scale: str = "cpu",
                  device="cpu") -> dict:
    """The gate's real-vs-real reference: its checks on held-out real stays against training stays.

    Computed once per data split and cached by the caller (a flat, strict-JSON dict).

    Parameters
    ----------
    X_train, y_train : array (N, T, F), (N,)
        The real stays the generators are fitted on (standardised, both classes).
    X_heldout, y_heldout : array (M, T, F), (M,)
        Real stays no generator saw (both classes).
    seed : int
        Subsampling, folds and the detectors' initial weights.
    scale : {"smoke", "cpu", "paper"}
        Size preset (:data:`GATE_SIZES`).
    device : str or torch.device
        Where the GRU detector trains.

    Returns
    -------
    dict
        ``gru_baseline_neg``, ``gru_baseline_pos``, ``gbm_baseline_neg``, ``gbm_baseline_pos``
        (detection AUROCs, held-out against training stays), ``baseline_rows_neg``,
        ``baseline_rows_pos`` (rows per side), ``label_auroc_real`` (the label-consistency GBM's
        AUROC on the held-out stays), ``range_share_max_real`` and ``range_share_mean_real`` (held-out
        values outside the training range), ``scale``, ``seed``, ``n_train``, ``n_heldout``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(160, 6, 2)).astype("float32"); y = np.arange(160) % 2
    >>> X[y == 1] += 0.5
    >>> b = real_baseline(X[:80], y[:80], X[80:], y[80:], scale="smoke")
    >>> abs(b["gbm_baseline_pos"] - 0.5) < 0.25, b["label_auroc_real"] > 0.7
    (True, True)
    """
    sizes = gate_sizes(scale)
    X_train, y_train = _check_inputs(X_train, y_train, "train")
    X_heldout, y_heldout = _check_inputs(X_heldout, y_heldout, "heldout")
    _check_min_rows(X_train, y_train, "train")
    _check_min_rows(X_heldout, y_heldout, "heldout")
    if X_train.shape[1:] != X_heldout.shape[1:]:
        raise DataError(f"X_train and X_heldout differ in (T, F): {X_train.shape[1:]} vs {X_heldout.shape[1:]}")
    out: dict = {"scale": scale, "seed": int(seed), "n_train": int(len(X_train)), "n_heldout": int(len(X_heldout))}
    for label, suffix, _ in _CLASSES:
        gru, gbm, n = _detectors(X_heldout[y_heldout == label], X_train[y_train == label], sizes, seed + label, device)
        out[f"gru_baseline_{suffix}"], out[f"gbm_baseline_{suffix}"] = gru, gbm
        out[f"baseline_rows_{suffix}"] = int(n)
    model = _label_model(X_train, y_train, sizes["label_max_iter"], seed)
    out["label_auroc_real"] = _label_auroc(model, X_heldout, y_heldout)
    shares = range_shares(X_train, X_heldout)
    out["range_share_max_real"] = float(shares.max())
    out["range_share_mean_real"] = float(shares.mean())
    return out


def quality_gate(X_train, y_train, X_synth, y_synth, X_heldout, y_heldout, *, baseline: dict | None = None,
                 seed: int = 0, scale: str = "cpu", device="cpu", features: Sequence[str] | None = None) -> dict:
    """The quality gate of one synthetic set, per class, against held-out real stays.

    Parameters
    ----------
    X_train, y_train : array (N, T, F), (N,)
        The real stays the generator was fitted on (standardised, both classes).
    X_synth, y_synth : array (S, T, F), (S,)
        Its synthetic stays; one class only is allowed (a balance set): the classes present are judged.
    X_heldout, y_heldout : array (M, T, F), (M,)
        Real stays the generator never saw (both classes).
    baseline : dict, optional
        :func:`real_baseline` of the same split, seed and scale (computed here when None).
    seed, scale, device : as :func:`real_baseline`.
    features : sequence of str, optional
        Feature names, for the worst feature of the range check (default ``"feature <i>"``).

    Returns
    -------
    dict
        Flat and strict-JSON (None where a number does not apply). Per class (suffix ``_neg``,
        ``_pos``; None for a class without synthetic rows): ``n_synth``, ``gru_auroc``, ``gbm_auroc``,
        their baselines ``gru_baseline``, ``gbm_baseline``, the thresholds ``gru_threshold``,
        ``gbm_threshold``, ``detection_rows`` (rows per side), ``scale_ratio``. Then ``label_auroc``
        (None with one class), ``label_auroc_real``, ``label_auroc_min``, ``range_share_max``,
        ``range_worst_feature``, ``range_share_mean``, ``range_share_max_real``,
        ``range_share_limit``, ``membership_auroc``, ``dcr_ratio`` (privacy, not gated),
        ``passes_quality_gate`` and ``gate_failures`` (one-line reasons, empty when it passes).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(240, 6, 2)).astype("float32"); y = np.arange(240) % 2
    >>> X[y == 1] += 0.5
    >>> g = quality_gate(X[:80], y[:80], 3 * X[80:160], y[80:160], X[160:], y[160:], scale="smoke")
    >>> g["passes_quality_gate"], g["gate_failures"][-1]
    (False, "38% of feature 0's values lie outside the training range (limit 10%)")
    """
    sizes = gate_sizes(scale)
    X_train, y_train = _check_inputs(X_train, y_train, "train")
    X_synth, y_synth = _check_inputs(X_synth, y_synth, "synth", allow_one_class=True)
    X_heldout, y_heldout = _check_inputs(X_heldout, y_heldout, "heldout")
    if not (X_train.shape[1:] == X_synth.shape[1:] == X_heldout.shape[1:]):
        raise DataError(f"X_train, X_synth and X_heldout differ in (T, F): {X_train.shape[1:]}, "
                        f"{X_synth.shape[1:]}, {X_heldout.shape[1:]}")
    if not np.isfinite(X_synth).all():
        raise DataError("X_synth contains NaN or infinite values: the generator produced non-finite rows")
    if baseline is None:
        baseline = real_baseline(X_train, y_train, X_heldout, y_heldout, seed=seed, scale=scale, device=device)
    elif baseline.get("scale", scale) != scale:
        raise ParameterError(f"the baseline was computed at scale {baseline.get('scale')!r}, the gate runs at {scale!r}")
    names = list(features) if features is not None else [f"feature {i}" for i in range(X_train.shape[2])]
    if len(names) != X_train.shape[2]:
        raise ParameterError(f"features names {len(names)} features, the data have {X_train.shape[2]}")

    out: dict = {}
    failures: list[str] = []
    low, high = SCALE_RATIO_RANGE
    for label, suffix, word in _CLASSES:
        rows, real = X_synth[y_synth == label], X_heldout[y_heldout == label]
        out[f"n_synth_{suffix}"] = int(len(rows))
        keys = ("gru_auroc", "gbm_auroc", "gru_baseline", "gbm_baseline", "gru_threshold", "gbm_threshold",
                "detection_rows", "scale_ratio")
        if len(rows) < 4:  # nothing (or too little) to judge in this class
            out.update({f"{k}_{suffix}": None for k in keys})
            if len(rows):
                failures.append(f"{word} rows: only {len(rows)}, too few to judge")
            continue
        gru, gbm, n = _detectors(real, rows, sizes, seed + label, device)
        margin = max(DETECTION_MARGIN, DETECTION_NULL_SDS * null_auroc_sd(n))
        out[f"gru_auroc_{suffix}"], out[f"gbm_auroc_{suffix}"], out[f"detection_rows_{suffix}"] = gru, gbm, int(n)
        for detector, name, auroc in (("gru", "a GRU", gru), ("gbm", "a GBM on summaries", gbm)):
            base = baseline[f"{detector}_baseline_{suffix}"]
            limit = max(base, 0.5) + margin
            out[f"{detector}_baseline_{suffix}"], out[f"{detector}_threshold_{suffix}"] = base, limit
            if auroc > limit:
                failures.append(f"{word} rows: {name} tells them from held-out real stays with AUROC "
                                f"{auroc:.2f} (limit {limit:.2f})")
        ratio = scale_ratio(real, rows)
        out[f"scale_ratio_{suffix}"] = _finite(ratio)
        if not (np.isfinite(ratio) and low <= ratio <= high):
            failures.append(f"{word} rows are {ratio:.2f} times the held-out real scale (allowed {low:g}-{high:g})")

    model = _label_model(X_train, y_train, sizes["label_max_iter"], seed)
    real_auroc = baseline["label_auroc_real"]
    out["label_auroc"] = _label_auroc(model, X_synth, y_synth)
    out["label_auroc_real"] = real_auroc
    out["label_auroc_min"] = None if real_auroc is None else 0.5 + LABEL_FRACTION * (real_auroc - 0.5)
    if out["label_auroc"] is not None and out["label_auroc_min"] is not None \
            and out["label_auroc"] < out["label_auroc_min"]:
        failures.append(f"labels: a classifier trained on real stays ranks its positives above its negatives with "
                        f"AUROC {out['label_auroc']:.2f} (at least {out['label_auroc_min']:.2f}; "
                        f"{real_auroc:.2f} on held-out real)")

    shares = range_shares(X_train, X_synth)
    worst = int(np.argmax(shares))
    out["range_share_max"], out["range_worst_feature"] = float(shares[worst]), names[worst]
    out["range_share_mean"] = float(shares.mean())
    out["range_share_max_real"] = baseline["range_share_max_real"]
    out["range_share_limit"] = baseline["range_share_max_real"] + RANGE_MARGIN
    if shares[worst] > out["range_share_limit"]:
        failures.append(f"{shares[worst]:.0%} of {names[worst]}'s values lie outside the training range "
                        f"(limit {out['range_share_limit']:.0%})")

    rng_seed = int(seed)
    out["membership_auroc"] = _finite(membership_inference_auroc(X_synth, X_train, X_heldout,
                                                                 max_samples=PRIVACY_MAX_ROWS, random_state=rng_seed))
    out["dcr_ratio"] = _finite(distance_to_closest_record(X_synth, X_train, X_heldout, max_samples=PRIVACY_MAX_ROWS,
                                                          random_state=rng_seed)["ratio_median"])
    out["passes_quality_gate"] = not failures
    out["gate_failures"] = failures
    return out
