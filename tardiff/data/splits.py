"""Seeded, stratified train/validation/test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from tardiff.errors import DataError, ParameterError


@dataclass(frozen=True)
class Split:
    """Positions of the stays in each split (disjoint, together covering the cohort)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


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
    if counts.min() < 3:
        raise DataError(
            f"each class needs at least 3 stays to appear in train, val and test; class counts are {counts.tolist()}"
        )
    positions = np.arange(len(y))
    train, rest = train_test_split(
        positions, train_size=fractions[0], stratify=y, random_state=random_state
    )
    val_share = fractions[1] / (fractions[1] + fractions[2])
    val, test = train_test_split(rest, train_size=val_share, stratify=y[rest], random_state=random_state)
    return Split(train=np.sort(train), val=np.sort(val), test=np.sort(test))
