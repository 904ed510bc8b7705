"""Paired comparisons of two methods on one shared test split: the test-noise figure of a verdict.

The verdicts themselves come from replicated experiments (:mod:`tardiff.evaluation.replicates`:
a t-interval over per-replicate paired differences, Holm-adjusted over a family fixed in
advance). This module measures the *test noise* within one split, the secondary figure shown
beside them (:func:`within_split_noise_sd`); its stay bootstrap alone is never a verdict: measured on the
simulator, an interval built this way excluded 0 in 5 to 9 of 10 same-method (A/A) checks.

Within one split both arms predict the same test stays, so a difference is paired by stay:

* :func:`paired_bootstrap_delta` compares two arms (one array of test predictions per seed
  each) with a paired, class-stratified bootstrap over test stays;
* :func:`within_split_noise_sd` turns it into the test-noise figure of a replicated comparison.

The bootstrap draws stratified resamples of the test stays (positives and negatives each with
replacement in their own numbers) and recomputes the difference on each, with the same
resample for both arms: stays that are hard for both move both scores together and cancel.
It captures which stays happened to be tested, and nothing of the split, the seeds or the
selections, which is why it is no verdict on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from tardiff.errors import DataError, ParameterError
from tardiff.evaluation.utility import _check_binary, _resolve_metric

__all__ = ["paired_bootstrap_delta", "within_split_noise_sd"]

_CHUNK = 128  # bootstrap replicates evaluated at once (a chunk x N weight matrix)


# --------------------------------------------------------------------------- weighted ranking metrics
# A bootstrap resample with replacement is a vector of counts on the original stays. Sorting each
# arm's predictions once and weighting by the counts gives the metric of the resample exactly
# (duplicated stays are tied scores, which fall into one threshold group) without a sort per
# replicate: the whole bootstrap costs O(B N) per arm instead of O(B N log N).


def _groups(y: np.ndarray, p: np.ndarray) -> dict:
    """What the weighted metrics need of one arm, computed once: the descending order of ``p``, the
    end (in that order) of each tied group that holds a positive stay, where the group before it
    ends, and how many positive stays lie at or above each of those ends."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]  # end of each tied group
    positions = np.flatnonzero(y_sorted)  # positive stays in sorted order
    groups = np.unique(np.searchsorted(last, positions))  # tied groups holding a positive stay
    ends = last[groups]
    before = np.where(groups > 0, last[np.maximum(groups - 1, 0)], -1)  # end of the preceding group
    return {"order": order, "positives": y_sorted.astype(bool), "ends": ends, "before": before,
            "k": np.searchsorted(positions, ends, side="right") - 1}


def _weighted_ranking_metric(metric: str, arm: dict, weights: np.ndarray) -> np.ndarray:
    """AUPRC or AUROC of each row of ``weights`` (counts per stay), exactly as scikit-learn computes them.

    Only the tied groups that hold a positive stay contribute: a group without one adds no
    recall (AUPRC) and no positive-negative pair with a positive above it (AUROC).
    """
    w = weights[:, arm["order"]]
    total = np.cumsum(w, axis=1)  # stays drawn at or above each position
    tps_pos = np.cumsum(w[:, arm["positives"]], axis=1)  # positives drawn, through each positive stay
    tps = tps_pos[:, arm["k"]].astype(np.float64)  # positives drawn through each group's end
    through = total[:, arm["ends"]].astype(np.float64)
    n_pos = tps_pos[:, -1:].astype(np.float64)
    tps_prev = np.concatenate([np.zeros_like(tps[:, :1]), tps[:, :-1]], axis=1)
    if metric == "auprc":  # average precision: sum over thresholds of (R_k - R_{k-1}) P_k
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(through > 0, tps / through, 0.0)
        return np.sum((tps - tps_prev) / n_pos * precision, axis=1)
    # AUROC (Mann-Whitney, ties one half): each positive in a group beats the negatives below it
    # and half of those tied with it
    n_neg = total[:, -1:].astype(np.float64) - n_pos
    before = np.where(arm["before"] >= 0, total[:, np.maximum(arm["before"], 0)], 0).astype(np.float64)
    neg_through = through - tps
    neg_in_group = neg_through - (before - tps_prev)
    pairs = (tps - tps_prev) * (n_neg - neg_through + 0.5 * neg_in_group)
    return np.sum(pairs, axis=1) / (n_pos[:, 0] * n_neg[:, 0])


def _stratified_counts(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    """Chunks of bootstrap count vectors: each class drawn with replacement in its own number."""
    strata = [np.flatnonzero(y == c) for c in (0, 1)]
    n = len(y)
    done = 0
    while done < n_boot:
        size = min(_CHUNK, n_boot - done)
        idx = np.concatenate([rng.choice(s, size=(size, len(s)), replace=True) for s in strata], axis=1)
        offsets = (np.arange(size) * n)[:, None]
        yield np.bincount((idx + offsets).ravel(), minlength=size * n).reshape(size, n).astype(np.int32)
        done += size


# --------------------------------------------------------------------------- one comparison


def paired_bootstrap_delta(y_true, p_method_by_seed, p_baseline_by_seed, *, metric: str = "auprc",
                           n_boot: int = 1000, random_state: int = 0) -> dict:
    """Mean over seeds of a metric's difference, method minus baseline, with a paired bootstrap over test stays.

    Parameters
    ----------
    y_true : array of shape (N,)
        The labels of the test split that every seed and both arms were scored on.
    p_method_by_seed, p_baseline_by_seed : sequences of arrays of shape (N,)
        The predicted probabilities of class 1 on that split, one array per seed; position
        ``s`` of both sequences is the same seed.
    metric : {"auprc", "auroc"} or str
        The metric compared. AUPRC and AUROC use an exact weighted computation; any other
        name of :data:`tardiff.evaluation.utility.METRICS` is recomputed on each resample.
    n_boot : int
        Bootstrap replicates (at least 10).
    random_state : int
        Seed of the resampling; the same ``random_state`` and test labels give the same
        resamples, whatever the predictions.

    Returns
    -------
    dict
        ``delta_<metric>`` (the mean over seeds of ``metric(y, p_method_s) - metric(y,
        p_baseline_s)`` on the whole test split), ``ci_low``, ``ci_high`` (2.5 and 97.5
        percentiles of the replicates), ``p_value`` (two-sided: ``2 min(P(d* <= 0), P(d* >= 0))``
        with the add-one correction ``(count + 1) / (B + 1)``, capped at 1), ``n_seeds`` and
        ``seed_sd`` (the standard deviation, ddof 1, of the per-seed differences; NaN for one
        seed).

    Notes
    -----
    Each replicate draws one class-stratified resample of the test stays and uses it for
    every seed and both arms, so the interval reflects test-set sampling with the pairing by
    stay kept. Training randomness enters only through the average over seeds: the interval
    is conditional on the seeds run, and ``seed_sd`` shows how much the difference moved
    between them (see the module docstring and the Methods chapter).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random(300) < 0.2).astype(int)
    >>> good = [np.clip(0.6 * y + 0.5 * rng.random(300), 0, 1) for _ in range(3)]
    >>> noise = [rng.random(300) for _ in range(3)]
    >>> r = paired_bootstrap_delta(y, good, noise, n_boot=200)
    >>> r["ci_low"] > 0, r["p_value"] < 0.01, r["n_seeds"]
    (True, True, 3)
    """
    if int(n_boot) < 10:
        raise ParameterError(f"n_boot must be at least 10, got {n_boot}")
    y = _check_binary(y_true, np.zeros(len(np.asarray(y_true))))[0]
    return _paired(y, p_method_by_seed, p_baseline_by_seed, metric,
                   list(_stratified_counts(y, int(n_boot), np.random.default_rng(random_state))))


def _paired(y: np.ndarray, p_method_by_seed, p_baseline_by_seed, metric: str, resamples: list[np.ndarray]) -> dict:
    """:func:`paired_bootstrap_delta` on given resamples (chunks of count vectors, shared by every comparison)."""
    method_arm, baseline_arm = list(p_method_by_seed), list(p_baseline_by_seed)
    if not method_arm or len(method_arm) != len(baseline_arm):
        raise DataError(f"both arms need the same, non-zero number of seeds; got {len(method_arm)} and "
                        f"{len(baseline_arm)}")
    arms = [_check_binary(y, p)[1] for p in method_arm + baseline_arm]
    n_seeds = len(method_arm)
    fn = _resolve_metric(metric)
    per_seed = np.array([fn(y, arms[s]) - fn(y, arms[n_seeds + s]) for s in range(n_seeds)])
    replicates = []
    if metric in ("auprc", "auroc"):
        grouped = [_groups(y, p) for p in arms]
        for counts in resamples:
            values = [_weighted_ranking_metric(metric, arm, counts) for arm in grouped]
            replicates.append(np.mean([values[s] - values[n_seeds + s] for s in range(n_seeds)], axis=0))
    else:
        stays = np.arange(len(y))
        for counts in resamples:
            for row in counts:
                idx = np.repeat(stays, row)
                replicates.append(np.atleast_1d(np.mean(
                    [fn(y[idx], arms[s][idx]) - fn(y[idx], arms[n_seeds + s][idx]) for s in range(n_seeds)])))
    d = np.concatenate(replicates)
    b = len(d)
    low, high = np.percentile(d, [2.5, 97.5])
    share_below = (np.sum(d <= 0) + 1) / (b + 1)
    share_above = (np.sum(d >= 0) + 1) / (b + 1)
    return {
        f"delta_{metric}": float(per_seed.mean()), "ci_low": float(low), "ci_high": float(high),
        "p_value": float(min(1.0, 2.0 * min(share_below, share_above))), "n_seeds": n_seeds,
        "seed_sd": float(per_seed.std(ddof=1)) if n_seeds > 1 else float("nan"),
    }


def _alpha_key(alpha) -> float | None:
    """A ratio as a dictionary key: None for protocols without one, else rounded."""
    if alpha is None:
        return None
    alpha = float(alpha)
    return None if np.isnan(alpha) else round(alpha, 9)


def within_split_noise_sd(records: Iterable[dict], comparison: dict, y_test_by_replicate: dict, *,
                          n_boot: int = 200, random_state: int = 0) -> float | None:
    """The test-noise figure beside a replicated verdict: how much one replicate's difference moves with
    which stays happened to be tested.

    For each replicate of ``comparison`` (a row of
    :func:`tardiff.evaluation.replicates.replicated_comparisons`), the paired stay bootstrap of
    :func:`paired_bootstrap_delta` on that replicate's test split gives an interval; its width
    over 2 x 1.96 is that replicate's test-noise standard deviation. The root mean square over
    replicates is returned (None without stored test predictions). It is a secondary figure: the
    verdict's interval comes from the spread between replicates, which holds this noise and the
    split, seeds and selection besides.
    """
    predictions = {}
    for r in records:
        if r.get("test_predictions") is None:
            continue
        predictions[(r["method"], r["protocol"], _alpha_key(r.get("alpha")), r["evaluator"], int(r["seed"]))] = \
            r["test_predictions"]
    sds = []
    for seed in comparison["replicates"]:
        a = predictions.get((comparison["method"], comparison["protocol"], _alpha_key(comparison["alpha"]),
                             comparison["evaluator"], int(seed)))
        b = predictions.get((comparison["baseline"], comparison["baseline_protocol"],
                             _alpha_key(comparison["baseline_alpha"]), comparison["evaluator"], int(seed)))
        if a is None or b is None:
            continue
        result = paired_bootstrap_delta(y_test_by_replicate[seed], [np.asarray(a)], [np.asarray(b)], n_boot=n_boot,
                                        random_state=random_state)
        sds.append((result["ci_high"] - result["ci_low"]) / (2 * 1.959964))
    return float(np.sqrt(np.mean(np.square(sds)))) if sds else None
