"""Seeded, stratified train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import train_test_split

from tardiff.errors import DataError, ParameterError

#: Stays a class needs at the least for :func:`stratified_split`'s default 80/10/10 split. Not
#: 3 (one per part): scikit-learn's stratified 80/20 cut gives the 20% part round(0.2 n) stays of
#: a class, and cutting that part in two again needs 2 of them, so n = 3..7 fail (measured for
#: cohorts of 20 to 12,000 stays; tests/test_data_integrity.py checks every count from 1 to 10).
MIN_STAYS_PER_CLASS = 8


#: The parts of a split, in the order they are drawn and reported. ``guide`` and ``select`` are
#: optional held-out parts that give the guidance set and model selection data of their own, so
#: that the validation split does one job (early stopping and the decision threshold).
PARTS = ("train", "val", "guide", "select", "test")


@dataclass(frozen=True)
class Split:
    """Positions of the stays in each split (disjoint).

    ``train``, ``val`` and ``test`` always hold stays; ``guide`` (TarDiff's guidance set) and
    ``select`` (model selection: the calibrated guidance scale, MCRAGE's guidance weight, the
    quality gate's held-out real stays) are empty unless the experiment design draws them.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    guide: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))
    select: np.ndarray = field(default_factory=lambda: np.array([], dtype=int))

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in PARTS if name in ("train", "val", "test")
                or len(getattr(self, name))}

    def parts(self) -> tuple[str, ...]:
        """The names of the parts that hold stays, in :data:`PARTS` order."""
        return tuple(self.sizes())


def stratified_split(
    y: np.ndarray, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), random_state: int = 0
) -> Split:
    """Split positions ``0..N-1`` into train/val/test, keeping the class ratio in each.

    Parameters
    ----------
    y : array of shape (N,)
        Binary labels.
    fractions : (train, val, test)
        Fractions summing to 1 (default 80/10/10 as in the TarDiff paper).
    random_state : int
        Seed; the same seed always gives the same split.

    Examples
    --------
    >>> s = stratified_split(np.array([0] * 90 + [1] * 10), random_state=0)
    >>> s.sizes()
    {'train': 80, 'val': 10, 'test': 10}
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ParameterError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    y = np.asarray(y)
    counts = np.bincount(y, minlength=2)
    if counts.min() < MIN_STAYS_PER_CLASS:
        raise DataError(f"each class needs at least {MIN_STAYS_PER_CLASS} stays to appear in train, val and test; "
                        f"class counts are {counts.tolist()}")
    positions = np.arange(len(y))
    try:
        train, rest = train_test_split(
            positions, train_size=fractions[0], stratify=y, random_state=random_state
        )
        val_share = fractions[1] / (fractions[1] + fractions[2])
        val, test = train_test_split(rest, train_size=val_share, stratify=y[rest], random_state=random_state)
    except ValueError as exc:  # other fractions can need more stays than the default's minimum
        raise DataError(f"cannot split class counts {counts.tolist()} into {fractions} with every class in every "
                        f"part ({exc}); use a larger cohort or larger validation and test fractions") from None
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test))


def fit_and_test_split(y: np.ndarray, *, fit_positions: np.ndarray, test_positions: np.ndarray,
                       fit_stays: int | None = None, val_share: float = 1 / 9, random_state: int = 0) -> Split:
    """Train/validation from ``fit_positions`` (optionally a stratified subsample), test = ``test_positions``.

    The design that gives a small-compute run its statistical power: generators and
    evaluators train on a subsample of ``fit_stays`` stays (training and validation, 8:1 as in
    the 80/10/10 split), while the test split keeps every stay that was not drawn (or an
    external set, such as PhysioNet's set C, or a fresh simulated draw), so that methods are
    compared on thousands of test stays instead of a hundred.

    Examples
    --------
    >>> y = np.array([0] * 900 + [1] * 100)
    >>> s = fit_and_test_split(y, fit_positions=np.arange(1000), test_positions=np.array([], int), fit_stays=270)
    >>> s.sizes()["train"], s.sizes()["val"]
    (240, 30)
    """
    fit_positions, test_positions = np.asarray(fit_positions), np.asarray(test_positions)
    if np.intersect1d(fit_positions, test_positions).size:
        raise ParameterError("fit_positions and test_positions overlap; a test stay would be trained on")
    y = np.asarray(y)
    pool = fit_positions
    if fit_stays is not None and fit_stays < len(pool):
        counts = np.bincount(y[pool], minlength=2)
        if counts.min() < MIN_STAYS_PER_CLASS:
            raise DataError(f"each class needs at least {MIN_STAYS_PER_CLASS} stays to draw a training subsample; "
                            f"counts are {counts.tolist()}")
        try:
            pool, rest = train_test_split(pool, train_size=fit_stays, stratify=y[pool], random_state=random_state)
        except ValueError as exc:  # fit_stays too small to hold both classes
            raise DataError(f"cannot draw {fit_stays} training stays with both classes from counts "
                            f"{counts.tolist()} ({exc}); use a larger training subsample") from None
        if not test_positions.size:  # every stay that was not drawn is a test stay
            test_positions = rest
    counts = np.bincount(y[pool], minlength=2)
    if counts.min() < 2:
        raise DataError(f"training and validation need both classes twice at least; class counts are {counts.tolist()}")
    try:
        train, val = train_test_split(pool, test_size=val_share, stratify=y[pool], random_state=random_state)
    except ValueError as exc:  # a validation share too small to hold both classes
        raise DataError(f"cannot cut a validation part with both classes from training counts {counts.tolist()} "
                        f"({exc}); use a larger cohort") from None
    if np.bincount(y[test_positions], minlength=2).min() < 1:
        raise DataError("the test split lacks a class; use a larger cohort")
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test_positions))
