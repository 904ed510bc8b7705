"""Verdicts from replicated experiments: paired differences per replicate, t-intervals, Holm, power.

A *replicate* is one whole run of the pipeline: a fresh stratified draw of the train,
validation, guidance, selection and test stays, fresh seeds for every trained component, and
every selection (the guidance classifier, the checkpoints, the calibrated guidance scale,
MCRAGE's guidance weight) redone on that replicate's own data. Two methods compared within a
replicate share its split, so their difference there,

    d_r = AUPRC(method, replicate r) - AUPRC(baseline, replicate r),

is one draw of everything that varies between repetitions of the experiment. The verdict is
the mean of the K differences with a t-interval over replicates (Student, K - 1 degrees of
freedom): it covers split, seeds and selection alike, which a bootstrap over one split's test
stays cannot (that only sees which stays happened to be tested; see
:mod:`tardiff.evaluation.comparisons`, kept as the secondary "test noise" figure).

The comparisons are fixed in advance, before any result (:func:`tardiff.registry.comparison_family`),
and their p-values adjusted together with Holm's step-down method, so a verdict says which
comparisons survive the family. For each comparison the smallest difference that K replicates
detect with 80% power (two-sided paired t-test at the 5% level) is given from the observed
spread between replicates, so "no evidence" can be read against what the experiment could
have seen.

Examples
--------
>>> r = t_interval([0.02, 0.03, 0.01, 0.04, 0.02])
>>> round(r["mean"], 3), r["ci_low"] > 0, r["n"]
(0.024, True, 5)
>>> holm([0.01, 0.04, 0.03])["reject"]
[True, False, False]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import optimize, stats

from tardiff.errors import ParameterError
from tardiff.evaluation.comparisons import _alpha_key

__all__ = ["holm", "min_detectable_difference", "replicated_comparisons", "t_interval"]

#: The family-wise error rate of the verdicts (Holm), and the two-sided level of each interval.
FAMILY_ALPHA = 0.05
#: The power at which the smallest detectable difference is stated.
POWER = 0.8
#: How a verdict's interval is computed, as stored with every comparison.
INTERVAL_METHOD = ("t-interval over replicates: mean of the per-replicate paired differences "
                   "+/- t(0.975, K - 1) x sd / sqrt(K); each replicate redraws the split and every seed")


def _finite(values) -> np.ndarray:
    d = np.asarray(list(values), dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ParameterError("per-replicate differences must be a flat list of finite numbers")
    return d


def t_interval(deltas: Sequence[float], *, level: float = 1 - FAMILY_ALPHA) -> dict:
    """Mean of paired differences with a Student t-interval and the two-sided one-sample t-test p.

    Parameters
    ----------
    deltas : sequence of float
        One paired difference per replicate.
    level : float
        Coverage of the interval (default 0.95).

    Returns
    -------
    dict
        ``mean``, ``sd`` (ddof 1), ``n``, ``ci_low``, ``ci_high``, ``p_value``. With fewer than
        two replicates (or no spread at all) the interval and p are None: nothing can be said
        about what varies between replicates from one of them.

    Examples
    --------
    >>> r = t_interval([1.0, 2.0, 3.0])
    >>> r["mean"], round(r["ci_low"], 3), round(r["ci_high"], 3), round(r["p_value"], 4)
    (2.0, -0.484, 4.484, 0.0742)
    """
    d = _finite(deltas)
    n = len(d)
    out = {"mean": float(d.mean()) if n else None, "sd": float(d.std(ddof=1)) if n > 1 else None, "n": n,
           "ci_low": None, "ci_high": None, "p_value": None}
    if n < 2:
        return out
    se = d.std(ddof=1) / np.sqrt(n)
    if se == 0:  # identical differences: the interval is that point, and 0 is either it or excluded
        out["ci_low"] = out["ci_high"] = float(d.mean())
        out["p_value"] = 1.0 if d.mean() == 0 else 0.0
        return out
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    out["ci_low"], out["ci_high"] = float(d.mean() - half), float(d.mean() + half)
    out["p_value"] = float(2 * stats.t.sf(abs(d.mean()) / se, n - 1))
    return out


def holm(p_values: Sequence[float | None], *, alpha: float = FAMILY_ALPHA) -> dict:
    """Holm's step-down adjustment of a family of p-values (Holm 1979).

    Sort the m p-values; the k-th smallest (k = 1..m) is compared with alpha / (m - k + 1), and
    the procedure stops at the first that fails. The adjusted p-value is the running maximum of
    (m - k + 1) p_(k), capped at 1, so ``adjusted <= alpha`` is the decision. Missing p-values
    (a comparison with one replicate) stay missing and are not counted in m.

    Returns
    -------
    dict
        ``adjusted`` and ``reject`` in the order given (None where the p-value was None).

    Examples
    --------
    >>> holm([0.01, 0.02, 0.04, None])
    {'adjusted': [0.03, 0.04, 0.04, None], 'reject': [True, True, True, None]}
    """
    present = [i for i, p in enumerate(p_values) if p is not None and np.isfinite(p)]
    adjusted: list = [None] * len(p_values)
    m = len(present)
    running = 0.0
    for rank, i in enumerate(sorted(present, key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = round(running, 12)
    reject = [None if a is None else bool(a <= alpha) for a in adjusted]
    return {"adjusted": adjusted, "reject": reject}


def min_detectable_difference(sd: float | None, n: int, *, alpha: float = FAMILY_ALPHA,
                              power: float = POWER) -> float | None:
    """The smallest true mean difference a two-sided paired t-test on ``n`` replicates detects with ``power``.

    Solves ``P(|T| > t_{1 - alpha/2, n-1}) = power`` for the noncentral t distribution with
    ``n - 1`` degrees of freedom and noncentrality ``delta sqrt(n) / sd``, with ``sd`` the
    observed spread of the per-replicate differences. None for fewer than two replicates.

    Examples
    --------
    >>> round(min_detectable_difference(0.05, 10), 4)
    0.0498
    """
    if sd is None or n < 2 or not np.isfinite(sd):
        return None
    if sd == 0:
        return 0.0
    crit = stats.t.ppf(1 - alpha / 2, n - 1)

    def shortfall(ncp: float) -> float:
        # the lower tail is negligible for ncp > 0 and can come back NaN where it underflows
        lower = float(np.nan_to_num(stats.nct.cdf(-crit, n - 1, ncp), nan=0.0))
        return float(stats.nct.sf(crit, n - 1, ncp)) + lower - power

    # the usual approximation, t_(1 - alpha/2) + t_(power): exact enough for many replicates, and the
    # fallback where the noncentral t cannot be evaluated (very few replicates, a huge noncentrality)
    approx = crit + stats.t.ppf(power, n - 1)
    with np.errstate(all="ignore"):
        high = 2 * approx
        if np.isfinite(shortfall(high)) and shortfall(high) > 0:
            return float(optimize.brentq(shortfall, 0.0, high) * sd / np.sqrt(n))
    return float(approx * sd / np.sqrt(n))


def replicated_comparisons(records: Iterable[dict], family: Sequence[dict], *, metric: str = "auprc",
                           alpha: float = FAMILY_ALPHA) -> list[dict]:
    """Every comparison of the declared family from per-replicate records, Holm-adjusted together.

    Parameters
    ----------
    records : iterable of dict
        Evaluation records with ``method``, ``protocol``, ``alpha``, ``evaluator``, ``seed``
        (the replicate) and ``metric``.
    family : sequence of dict
        The comparisons fixed in advance (:func:`tardiff.registry.comparison_family`): ``method``,
        ``baseline``, ``protocol``, ``alpha``, ``baseline_protocol``, ``baseline_alpha``,
        ``evaluator``, ``kind``.
    metric : str
        The metric compared.
    alpha : float
        The family-wise error rate.

    Returns
    -------
    list of dict
        One row per family member that has at least one replicate with both arms: the family
        member's keys, ``replicates`` and ``deltas`` (per replicate), ``delta_<metric>`` (their
        mean), ``ci_low``, ``ci_high``, ``p_value`` (t-test), ``p_holm``, ``decision``
        (``"higher"``, ``"lower"`` or ``"no evidence"`` at the family-wise level),
        ``n_replicates``, ``replicate_sd``, ``mde_<metric>`` (smallest difference detected with
        80% power) and ``interval`` (how it was computed).

    Examples
    --------
    >>> recs = [{"method": m, "protocol": p, "alpha": None, "evaluator": "gbm", "seed": s, "auprc": v + 0.01 * s}
    ...         for s in range(5) for m, p, v in (("real", "trtr", 0.4), ("smote", "rebalance", 0.45))]
    >>> fam = [{"method": "smote", "baseline": "real", "protocol": "rebalance", "alpha": None,
    ...         "baseline_protocol": "trtr", "baseline_alpha": None, "evaluator": "gbm", "kind": "vs_real"}]
    >>> (row,) = replicated_comparisons(recs, fam)
    >>> round(row["delta_auprc"], 3), row["n_replicates"], row["decision"]
    (0.05, 5, 'higher')
    """
    values: dict[tuple, dict[int, float]] = {}
    for r in records:
        v = r.get(metric)
        if v is None or not np.isfinite(v):
            continue
        key = (r["method"], r["protocol"], _alpha_key(r.get("alpha")), r["evaluator"])
        values.setdefault(key, {})[int(r["seed"])] = float(v)
    rows = []
    for member in family:
        a = values.get((member["method"], member["protocol"], _alpha_key(member["alpha"]), member["evaluator"]), {})
        b = values.get((member["baseline"], member["baseline_protocol"], _alpha_key(member["baseline_alpha"]),
                        member["evaluator"]), {})
        shared = sorted(set(a) & set(b))
        if not shared:
            continue
        deltas = [a[s] - b[s] for s in shared]
        t = t_interval(deltas, level=1 - alpha)
        rows.append({**member, "replicates": shared, "deltas": deltas, f"delta_{metric}": t["mean"],
                     "ci_low": t["ci_low"], "ci_high": t["ci_high"], "p_value": t["p_value"],
                     "n_replicates": t["n"], "replicate_sd": t["sd"],
                     f"mde_{metric}": min_detectable_difference(t["sd"], t["n"], alpha=alpha),
                     "interval": INTERVAL_METHOD})
    adjusted = holm([r["p_value"] for r in rows], alpha=alpha)
    for row, p_holm, reject in zip(rows, adjusted["adjusted"], adjusted["reject"]):
        row["p_holm"] = p_holm
        row["decision"] = ("no evidence" if not reject else
                           "higher" if row[f"delta_{metric}"] > 0 else "lower")
    return rows
