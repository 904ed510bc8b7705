"""Data splits shared by the gate benchmarks (``gate-known-bad``, ``mcrage-gate``).

Each dataset gives three disjoint sets of prepared (imputed, standardised on the training part)
stays, the sizes of the cpu scale: ``train`` (what a generator is fitted on, 800 stays),
``heldout`` (the gate's held-out real stays, 800) and ``pool`` (800 more real stays: the
"held-out real" case of the known-bad table and the material of the corrupted cases).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE = 800


def data_root() -> Path:
    for candidate in (os.environ.get("DATA_DIR"), os.environ.get("TARDIFF_DATA_DIR"), REPO.parent / "shared" / "data",
                      REPO / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return REPO / "data"


def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices of ``y`` keeping its class shares."""
    picks = []
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        picks.append(rng.choice(idx, size=int(round(n * len(idx) / len(y))), replace=False))
    return np.sort(np.concatenate(picks))


def splits(dataset: str, seed: int = 0) -> dict:
    """``{"train": (X, y), "heldout": (X, y), "pool": (X, y), "features": [...]}`` of ``dataset``."""
    from tardiff.data import load_cohort, prepare

    if dataset == "simulated":
        cohort = load_cohort("simulated", n=3 * SIZE + 600, seed=seed)
    else:
        folder = {"physionet2012": "physionet2012", "mimic3": "mimic3_demo"}.get(dataset, dataset)
        cohort = load_cohort(dataset, data_dir=data_root() / folder)
    p = prepare(cohort, random_state=seed)
    X = np.concatenate([p.X_train, p.X_val, p.X_test]).astype(np.float32)
    y = np.concatenate([p.y_train, p.y_val, p.y_test]).astype(int)
    rng = np.random.default_rng(seed)
    # the training stays come from the prepared training part (its scaling was fitted there)
    train = _stratified(p.y_train, min(SIZE, len(p.y_train)), rng)
    rest = np.setdiff1d(np.arange(len(y)), train)
    heldout = rest[_stratified(y[rest], min(SIZE, len(rest) // 2), rng)]
    rest = np.setdiff1d(rest, heldout)
    pool = rest[_stratified(y[rest], min(SIZE, len(rest)), rng)]
    return {"train": (X[train], y[train]), "heldout": (X[heldout], y[heldout]), "pool": (X[pool], y[pool]),
            "features": list(cohort.features)}
