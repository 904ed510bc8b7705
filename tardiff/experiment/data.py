"""The data side of a run: the cohort's split design, the guidance set, the content key, the ledger.

Which stays reach which component is written into a ledger (:class:`DataLedger`), and the
runner refuses to continue if a test stay ever reached a generator, the guidance set or a
checkpoint choice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from tardiff.data import PreparedCohort, load_cohort, prepare
from tardiff.data.cache import hash_key
from tardiff.data.cohort import concat_cohorts
from tardiff.data.splits import MIN_STAYS_PER_CLASS, fit_and_test_split
from tardiff.errors import DataError
from tardiff.experiment.config import ExperimentConfig
from tardiff.guidance import GuidanceSet

@dataclass
class DataLedger:
    """Which stay ids reached which component, to prove the test split stayed untouched."""

    uses: dict[str, set] = field(default_factory=dict)

    def record(self, component: str, ids) -> None:
        self.uses.setdefault(component, set()).update(np.asarray(ids).tolist())

    def check_untouched(self, test_ids) -> None:
        test = set(np.asarray(test_ids).tolist())
        for component, ids in self.uses.items():
            leaked = test & ids
            if leaked:
                raise RuntimeError(f"{len(leaked)} test stays reached {component}: the evaluation would be biased")


#: Seed offset of the simulated cohort's fresh test draw (never the training draw's seed).
SIMULATED_TEST_SEED = 1_000_003


def load_prepared(config: ExperimentConfig) -> PreparedCohort:
    """Load the cohort, split it with the scale's design (see :class:`~tardiff.presets.ExperimentPreset`), prepare it.

    Imputation and scaling are fitted on the training split only. The test split is every stay
    not drawn for training and validation (smoke, cpu), a fresh simulated draw (the simulated
    cohort at smoke and cpu), PhysioNet's external set C (``test_sets="c"``), or 10% of the
    cohort (paper).
    """
    preset = config.preset
    if config.dataset == "simulated":
        cohort = load_cohort("simulated", n=preset.simulated_n, seed=config.split_seed, progress=False)
        _check_classes(cohort, config)
        if preset.simulated_test_n is None:
            return prepare(cohort, random_state=config.split_seed)
        fresh = load_cohort("simulated", n=preset.simulated_test_n, seed=SIMULATED_TEST_SEED + config.split_seed,
                            progress=False)
        fresh.stay_ids = fresh.stay_ids + len(cohort.y)  # ids unique across the two draws
        both = concat_cohorts(cohort, fresh)
        n_fit = len(cohort.y)
        split = fit_and_test_split(both.y, fit_positions=np.arange(n_fit),
                                   test_positions=np.arange(n_fit, len(both.y)), random_state=config.split_seed)
        return prepare(both, split=split)

    options = {}
    if config.sets is not None or config.test_sets is not None:
        options["sets"] = "".join(sorted(set((config.sets or "ab") + (config.test_sets or ""))))
    cohort = load_cohort(config.dataset, data_dir=config.data_dir, task=config.task,
                         progress=None if config.progress else False, **options)
    _check_classes(cohort, config)
    everyone = np.arange(len(cohort.y))
    if config.test_sets is not None:  # external validation: train and select on some sets, test on others
        held_out = cohort.static["set"].isin(list(config.test_sets)).to_numpy()
        split = fit_and_test_split(cohort.y, fit_positions=everyone[~held_out], test_positions=everyone[held_out],
                                   fit_stays=preset.fit_stays, random_state=config.split_seed)
        return prepare(cohort, split=split)
    if preset.fit_stays is None or len(cohort.y) * 0.9 <= preset.fit_stays:
        return prepare(cohort, random_state=config.split_seed)  # 80/10/10 (paper, or a cohort too small to cap)
    split = fit_and_test_split(cohort.y, fit_positions=everyone, test_positions=np.array([], dtype=int),
                               fit_stays=preset.fit_stays, random_state=config.split_seed)
    return prepare(cohort, split=split)


def _check_classes(cohort, config: ExperimentConfig) -> None:
    counts = np.bincount(cohort.y, minlength=2)
    if counts.min() < MIN_STAYS_PER_CLASS:
        raise DataError(f"{config.dataset}/{cohort.task} has {counts[1]} positive and {counts[0]} negative stays; a "
                        f"comparison needs at least {MIN_STAYS_PER_CLASS} of each class (train, validation and test "
                        "each need both); use a larger cohort or another task")


def guidance_data(prepared: PreparedCohort, which: GuidanceSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, stay ids) of the guidance set: the validation split (paper), the training split
    (public code) or the validation split's minority class (paper Table 5)."""
    ids = prepared.ids
    if which == "train":
        return prepared.X_train, prepared.y_train, ids["train"]
    X, y, sid = prepared.X_val, prepared.y_val, ids["val"]
    if which == "minority":
        keep = y == 1
        return X[keep], y[keep], sid[keep]
    return X, y, sid


#: Bump when what the runner stores changes meaning, so older artifacts are not reused.
#: 4: MCRAGE's MLP gained its input gate (its synthetic sets are keyed by method, not by network).
CACHE_VERSION = 4


def content_hash(prepared: PreparedCohort) -> str:
    """SHA-256 of everything a run computes from: the raw cohort (values in clinical units, labels,
    stay ids) and every prepared split (standardised values, labels, stay ids).

    Artifacts and records are keyed by this, never by proxies (a path, a shape, the first ids):
    a dataset whose values changed under the same folder gets new keys and is recomputed.
    """
    digest = hashlib.sha256()
    cohort = prepared.cohort
    parts = [("raw", (cohort.X, cohort.y, cohort.stay_ids))]
    parts += [(name, (*prepared.part(name), prepared.ids[name])) for name in ("train", "val", "test")]
    for name, arrays in parts:
        for array in arrays:
            array = np.asarray(array)
            if array.dtype == object:  # object arrays' bytes are pointers: hash their text instead
                array = array.astype(str)
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
    digest.update(hash_key(prepared.cohort.dataset, prepared.cohort.task, prepared.cohort.features).encode())
    return digest.hexdigest()
