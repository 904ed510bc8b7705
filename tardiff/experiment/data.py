"""The data side of a run: the cohort's split design, the guidance set, the content key, the ledger.

Which stays reach which component is written into a ledger (:class:`DataLedger`), and the
runner refuses to continue if a test stay ever reached a generator, the guidance set or a
checkpoint choice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn.model_selection import train_test_split

from tardiff.data import PreparedCohort, get_spec, load_cohort, prepare
from tardiff.data.cache import hash_key
from tardiff.data.splits import MIN_STAYS_PER_CLASS, Split, fit_and_test_split, stratified_split
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


def load_prepared(config: ExperimentConfig, split_seed: int | None = None) -> PreparedCohort:
    """Load the cohort, draw one replicate's split with the scale's design, prepare it.

    Parameters
    ----------
    config : ExperimentConfig
    split_seed : int, optional
        The replicate's split seed (default: ``config.split_seed``, else 0). Each replicate of
        a run draws its own split (see :meth:`ExperimentConfig.split_seed_of`).

    Notes
    -----
    Imputation and scaling are fitted on the training split only. The test split is every stay
    not drawn for training, validation, guidance and selection (smoke, cpu), a fresh draw for a
    generated dataset (its registry entry's :class:`~tardiff.data.registry.FreshDraws`: the
    simulated cohort at smoke and cpu), PhysioNet's external set C (``test_sets="c"``), or 10%
    of the cohort (paper). Beside training and validation (early stopping and the
    decision threshold) the design holds out a guidance set (``guide``: TarDiff's D_g) and
    model-selection data (``select``: the calibrated guidance scale, MCRAGE's guidance weight,
    the guidance classifier's settings, the quality gate), so that no held-out stay does two
    jobs (see :func:`held_out_parts`).
    """
    preset = config.preset
    seed = int(config.split_seed if split_seed is None else split_seed) if (
        split_seed is not None or config.split_seed is not None) else 0
    draws = get_spec(config.dataset).draws
    if draws is not None:  # a generated dataset: its registry entry draws the stays (fresh test, guide, select)
        cohort, parts = draws.draw(config.dataset, config.scale, seed, guide_stays=preset.guide_stays,
                                   select_stays=preset.select_stays, load=load_cohort,
                                   check=lambda fit: _check_classes(fit, config))
        if parts is None:
            return prepare(cohort, split=held_out_parts(cohort.y, stratified_split(cohort.y, random_state=seed),
                                                        preset, random_state=seed))
        split = fit_and_test_split(cohort.y, fit_positions=parts["fit"], test_positions=parts["test"],
                                   random_state=seed)
        return prepare(cohort, split=replace(split, guide=parts["guide"], select=parts["select"]))

    options = {}
    if config.sets is not None or config.test_sets is not None:
        options["sets"] = "".join(sorted(set((config.sets or "ab") + (config.test_sets or ""))))
    cohort = load_cohort(config.dataset, data_dir=config.data_dir, task=config.task,
                         progress=None if config.progress else False, **options)
    _check_classes(cohort, config)
    everyone = np.arange(len(cohort.y))
    if config.test_sets is not None:  # external validation: train and select on some sets, test on others
        held_out = cohort.static["set"].isin(list(config.test_sets)).to_numpy()
        fit_positions, test_positions = everyone[~held_out], everyone[held_out]
    elif preset.fit_stays is None or len(cohort.y) * 0.9 <= preset.fit_stays:
        # 80/10/10 (paper, or a cohort too small to cap); the guidance and selection parts come out of validation
        return prepare(cohort, split=held_out_parts(cohort.y, stratified_split(cohort.y, random_state=seed), preset,
                                                    random_state=seed))
    else:
        fit_positions, test_positions = everyone, np.array([], dtype=int)
    split = fit_and_test_split(cohort.y, fit_positions=fit_positions, test_positions=test_positions,
                               fit_stays=preset.fit_stays, random_state=seed)
    return prepare(cohort, split=held_out_parts(cohort.y, split, preset, random_state=seed,
                                                pool=np.setdiff1d(fit_positions, np.r_[split.train, split.val])))


#: Stays of each class each third of a validation split needs before it is cut in three.
_MIN_PER_PART = 3


def held_out_parts(y: np.ndarray, split: Split, preset, *, random_state: int, pool: np.ndarray | None = None) -> Split:
    """``split`` with a guidance set and model-selection data of their own, when the cohort allows.

    At smoke and cpu scale they are drawn (stratified, ``preset.guide_stays`` and
    ``preset.select_stays`` stays) from ``pool``, the stays left after training and validation
    were drawn, and the test split keeps the rest: they cost no training stay. Without such a
    pool (80/10/10: paper scale, a small cohort) the validation part is cut in three
    (validation, guidance, selection), each stratified. When a class is too rare for that,
    the split is returned unchanged and every job falls back to the validation split (the
    run's ``results.json`` says so under ``cohort.splits``).
    """
    rng = random_state
    try:
        if pool is not None and pool.size and preset.guide_stays and preset.select_stays and \
                pool.size > preset.guide_stays + preset.select_stays:
            if split.test.size and np.intersect1d(split.test, pool).size == 0:  # external test: pool is spare fit stays
                guide, rest = train_test_split(pool, train_size=preset.guide_stays, stratify=y[pool], random_state=rng)
                select, _ = train_test_split(rest, train_size=preset.select_stays, stratify=y[rest], random_state=rng)
                return replace(split, guide=np.sort(guide), select=np.sort(select))
            guide, rest = train_test_split(split.test, train_size=preset.guide_stays, stratify=y[split.test],
                                           random_state=rng)
            select, test = train_test_split(rest, train_size=preset.select_stays, stratify=y[rest], random_state=rng)
            return replace(split, guide=np.sort(guide), select=np.sort(select), test=np.sort(test))
        val = split.val
        counts = np.bincount(y[val], minlength=2)
        if counts.min() < 3 * _MIN_PER_PART:
            return split
        val, rest = train_test_split(val, train_size=1 / 3, stratify=y[val], random_state=rng)
        guide, select = train_test_split(rest, train_size=0.5, stratify=y[rest], random_state=rng)
        return replace(split, val=np.sort(val), guide=np.sort(guide), select=np.sort(select))
    except ValueError:  # scikit-learn: a class too small to stratify; every job falls back to validation
        return split


def _check_classes(cohort, config: ExperimentConfig) -> None:
    counts = np.bincount(cohort.y, minlength=2)
    if counts.min() < MIN_STAYS_PER_CLASS:
        raise DataError(f"{config.dataset}/{cohort.task} has {counts[1]} positive and {counts[0]} negative stays; a "
                        f"comparison needs at least {MIN_STAYS_PER_CLASS} of each class (train, validation and test "
                        "each need both); use a larger cohort or another task")


def guidance_data(prepared: PreparedCohort, which: GuidanceSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, stay ids) of the guidance set D_g.

    ``"val"`` is the paper's held-out set: the design's own guidance part (``guide``, never used
    for early stopping or selection) when it has one, else the validation split; ``"minority"``
    its minority class (paper Table 5); ``"train"`` the training split (the public code)."""
    if which == "train":
        return prepared.X_train, prepared.y_train, prepared.ids["train"]
    name = "guide" if "guide" in prepared.split.parts() else "val"
    X, y = prepared.part(name)
    sid = prepared.ids[name]
    if which == "minority":
        keep = y == 1
        return X[keep], y[keep], sid[keep]
    return X, y, sid


def selection_data(prepared: PreparedCohort) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(X, y, stay ids, part name) of the model-selection data: the ``select`` part, else validation."""
    name = "select" if "select" in prepared.split.parts() else "val"
    X, y = prepared.part(name)
    return X, y, prepared.ids[name], name


def content_hash(prepared: PreparedCohort) -> str:
    """SHA-256 of everything a run computes from: the raw cohort (values in clinical units, labels,
    stay ids) and every prepared split (standardised values, labels, stay ids).

    Artifacts and records are keyed by this, never by proxies (a path, a shape, the first ids):
    a dataset whose values changed under the same folder gets new keys and is recomputed.
    """
    digest = hashlib.sha256()
    cohort = prepared.cohort
    parts = [("raw", (cohort.X, cohort.y, cohort.stay_ids))]
    parts += [(name, (*prepared.part(name), prepared.ids[name])) for name in prepared.split.parts()]
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
