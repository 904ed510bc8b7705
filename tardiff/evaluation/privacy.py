"""Privacy of synthetic records: do they copy or reveal the training records?

Three distance-based checks on flattened sequences (Euclidean distance in the shared,
standardised space): the distance to the closest record (DCR) of synthetic records to
the training set compared with that of held-out real records, the nearest-neighbour
adversarial accuracy of Yale et al. (2020), and a distance-based membership-inference
attack. Inputs have shape (N, T, F) or (N, D) and must not contain NaN. Large sets are
subsampled (``max_samples``) with an explicit ``random_state``.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from tardiff.errors import DataError, ParameterError

__all__ = ["distance_to_closest_record", "membership_inference_auroc", "nn_adversarial_accuracy"]


def _flat(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 2 or len(arr) == 0:
        raise DataError(f"{name} must have shape (N, T, F) or (N, D) with N >= 1, got {arr.shape}")
    arr = arr.reshape(len(arr), -1)
    if not np.isfinite(arr).all():
        raise DataError(f"{name} contains NaN or infinite values; impute them before the privacy checks")
    return arr


def _same_width(**arrays: np.ndarray) -> None:
    widths = {name: a.shape[1] for name, a in arrays.items()}
    if len(set(widths.values())) != 1:
        raise DataError(f"the record sets differ in size per record {widths}; pass arrays of one shape (T, F)")


def _cap(x: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or len(x) <= int(max_samples):
        return x
    return x[np.sort(rng.choice(len(x), size=int(max_samples), replace=False))]


def _check_cap(max_samples: int | None) -> None:
    if max_samples is not None and int(max_samples) < 2:
        raise ParameterError(f"max_samples must be at least 2 or None, got {max_samples}")


def _nearest(reference: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Distance from each query row to its nearest reference row."""
    nn = NearestNeighbors(n_neighbors=1).fit(reference)
    return nn.kneighbors(query, return_distance=True)[0][:, 0]


def _nearest_other(x: np.ndarray) -> np.ndarray:
    """Leave-one-out nearest-neighbour distance within one set (a duplicate counts, at 0)."""
    nn = NearestNeighbors(n_neighbors=2).fit(x)
    return nn.kneighbors(x, return_distance=True)[0][:, 1]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def distance_to_closest_record(
    synth, train, holdout, *, max_samples: int | None = 5000, random_state: int = 0
) -> dict[str, float]:
    """Distance to the closest training record, of synthetic versus held-out real records.

    Synthetic records much closer to the training set than genuinely new real records
    (the holdout) suggest copying. A ratio near 1 is the privacy-neutral value; near 0
    means memorisation.

    Parameters
    ----------
    synth : array of shape (M, T, F)
        Synthetic records.
    train : array of shape (N, T, F)
        The real records the generator was trained on (the reference set; never capped).
    holdout : array of shape (K, T, F)
        Real records the generator never saw (e.g. the test split).
    max_samples : int or None
        Cap on the synthetic and holdout query records.
    random_state : int
        Seed of the subsampling.

    Returns
    -------
    dict
        ``synth_median``, ``synth_p5`` (median and 5th percentile of the synthetic-to-train
        DCR), ``holdout_median``, ``holdout_p5`` (the same for holdout-to-train),
        ``ratio_median`` and ``ratio_p5`` (synthetic over holdout; NaN when the holdout
        value is 0), and ``share_closer_to_train``: the share of synthetic records nearer
        to the training set than to the holdout (about 0.5 for equal-sized train and
        holdout sets when nothing is copied; larger training sets raise it).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> train, holdout = rng.normal(size=(50, 4, 2)), rng.normal(size=(50, 4, 2))
    >>> distance_to_closest_record(train.copy(), train, holdout)["synth_median"]
    0.0
    """
    _check_cap(max_samples)
    synth, train, holdout = _flat(synth, "synth"), _flat(train, "train"), _flat(holdout, "holdout")
    _same_width(synth=synth, train=train, holdout=holdout)
    rng = np.random.default_rng(random_state)
    synth = _cap(synth, max_samples, rng)
    holdout_q = _cap(holdout, max_samples, rng)
    d_synth = _nearest(train, synth)
    d_holdout = _nearest(train, holdout_q)
    d_synth_to_holdout = _nearest(holdout, synth)
    out = {
        "synth_median": float(np.median(d_synth)),
        "synth_p5": float(np.percentile(d_synth, 5)),
        "holdout_median": float(np.median(d_holdout)),
        "holdout_p5": float(np.percentile(d_holdout, 5)),
    }
    out["ratio_median"] = _ratio(out["synth_median"], out["holdout_median"])
    out["ratio_p5"] = _ratio(out["synth_p5"], out["holdout_p5"])
    out["share_closer_to_train"] = float(np.mean(d_synth < d_synth_to_holdout))
    return out


def nn_adversarial_accuracy(
    real, synth, *, max_samples: int | None = 2000, random_state: int = 0
) -> float:
    """Nearest-neighbour adversarial accuracy AA_TS (Yale et al. 2020).

    ``AA = 0.5 * (P(d_TS > d_TT) + P(d_ST > d_SS))`` where ``d_TS(i)`` is the distance of
    real record i to its nearest synthetic record, ``d_TT(i)`` to its nearest other real
    record (leave-one-out), and ``d_ST``, ``d_SS`` the same for synthetic records. Both
    sets are subsampled to one size (the smaller one, capped at ``max_samples``).
    0.5 is ideal (the nearest neighbour does not tell the sets apart); near 1 means the
    sets are far apart (poor fidelity); near 0 means synthetic records sit on top of real
    ones (copying).

    Parameters
    ----------
    real : array of shape (N, T, F)
    synth : array of shape (M, T, F)
    max_samples : int or None
        Cap on the records used from each set.
    random_state : int
        Seed of the subsampling.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(100, 3, 2))
    >>> nn_adversarial_accuracy(a, a + 100.0), nn_adversarial_accuracy(a, a.copy())
    (1.0, 0.0)
    """
    _check_cap(max_samples)
    real, synth = _flat(real, "real"), _flat(synth, "synth")
    _same_width(real=real, synth=synth)
    n = min(len(real), len(synth), int(max_samples) if max_samples is not None else len(real))
    if n < 2:
        raise DataError("nearest-neighbour adversarial accuracy needs at least 2 records in each set")
    rng = np.random.default_rng(random_state)
    real, synth = _cap(real, n, rng), _cap(synth, n, rng)
    d_ts, d_st = _nearest(synth, real), _nearest(real, synth)
    d_tt, d_ss = _nearest_other(real), _nearest_other(synth)
    return float(0.5 * (np.mean(d_ts > d_tt) + np.mean(d_st > d_ss)))


def membership_inference_auroc(
    synth, members, non_members, *, max_samples: int | None = 5000, random_state: int = 0
) -> float:
    """AUROC of a distance-based membership-inference attack on the generator's training set.

    The attacker scores each candidate record by minus its distance to the closest
    synthetic record and guesses that close records were in the training set. The AUROC
    separating ``members`` (training records) from ``non_members`` (real records never
    used) is 0.5 when the synthetic data reveal nothing and near 1 when they copy the
    members.

    Parameters
    ----------
    synth : array of shape (M, T, F)
        Synthetic records (the attacker's knowledge).
    members : array of shape (N, T, F)
        Records the generator was trained on.
    non_members : array of shape (K, T, F)
        Real records from the same population that it never saw.
    max_samples : int or None
        Cap on the members and non-members scored, each.
    random_state : int
        Seed of the subsampling.

    Returns
    -------
    float
        AUROC in [0, 1]; 0.5 is ideal.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> members, others = rng.normal(size=(60, 4, 2)), rng.normal(size=(60, 4, 2))
    >>> membership_inference_auroc(members.copy(), members, others)
    1.0
    """
    _check_cap(max_samples)
    synth = _flat(synth, "synth")
    members, non_members = _flat(members, "members"), _flat(non_members, "non_members")
    _same_width(synth=synth, members=members, non_members=non_members)
    rng = np.random.default_rng(random_state)
    members, non_members = _cap(members, max_samples, rng), _cap(non_members, max_samples, rng)
    score = -_nearest(synth, np.concatenate([members, non_members]))
    label = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    return float(roc_auc_score(label, score))
