"""The dataset registry: what each dataset is, where its data lives, and how to load it.

Each loader module (``tardiff.data.<name>``) exposes

- ``TASKS`` (tuple of task names) and ``DEFAULT_TASK``;
- ``find_source_files(data_dir: Path) -> list[Path]``: the raw files the cohort is parsed
  from, raising :class:`~tardiff.errors.DataError` with a how-to-fix message when absent;
- ``load(data_dir: Path | None, task: str, **options) -> Cohort``.

:func:`load_cohort` adds the data-directory lookup and the parsed-cohort cache on top.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from tardiff.data.cache import default_cache_dir, file_fingerprint, hash_key, load_cohort_file, save_cohort
from tardiff.data.cohort import Cohort
from tardiff.errors import DataError, ParameterError


@dataclass(frozen=True)
class DatasetSpec:
    """What the CLI and the book say about a dataset."""

    name: str
    title: str
    needs_data: bool
    home: str
    license: str
    how_to_get: str

    @property
    def module(self):
        return importlib.import_module(f"tardiff.data.{self.name}")

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.module.TASKS)

    @property
    def default_task(self) -> str:
        return self.module.DEFAULT_TASK


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "simulated", "Simulated ICU cohort (24 h x 7 vitals, known Bayes posterior)", False,
            "embedded in the package", "MIT (generated data)", "nothing to get: it is generated on the fly",
        ),
        DatasetSpec(
            "physionet2012", "PhysioNet/CinC Challenge 2012 (48 h, 4,000 stays per set)", True,
            "https://physionet.org/content/challenge-2012/1.0.0/", "ODC-By 1.0",
            "open access: `tardiff data physionet2012` downloads it into data/physionet2012, "
            "or pass --data-dir to a folder with set-a.tar.gz, set-b.tar.gz and Outcomes-a.txt, Outcomes-b.txt",
        ),
        DatasetSpec(
            "mimic3", "MIMIC-III v1.4 (first 24 h, 7 vitals, TarDiff preprocessing)", True,
            "https://physionet.org/content/mimiciii/1.4/", "PhysioNet Credentialed Health Data License 1.5.0",
            "credentialed access on PhysioNet; pass --data-dir to the folder with PATIENTS, ADMISSIONS, ICUSTAYS "
            "and CHARTEVENTS (.csv or .csv.gz); the open 100-patient demo is at "
            "https://physionet.org/content/mimiciii-demo/1.4/",
        ),
        DatasetSpec(
            "yaib", "A YAIB cohort (dyn/sta/outc parquet; MIMIC-III/IV, eICU, HiRID, AUMCdb)", True,
            "https://github.com/rvandewater/YAIB", "that of the source database (demo cohorts: ODbL 1.0)",
            "build a cohort with YAIB/ricu and pass --data-dir to the folder holding dyn.parquet, sta.parquet "
            "and outc.parquet",
        ),
        DatasetSpec(
            "eicu", "eICU-CRD (first 24 h, 5-minute HR, RR, SpO2)", True,
            "https://physionet.org/content/eicu-crd/2.0/", "PhysioNet Credentialed Health Data License 1.5.0",
            "credentialed access on PhysioNet; pass --data-dir to the folder with patient.csv(.gz) and "
            "vitalPeriodic.csv(.gz)",
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``, or a one-line error listing the known datasets."""
    if name not in DATASETS:
        raise ParameterError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_data_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$TARDIFF_DATA_DIR/<name>``, else ``data/<name>``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    root = os.environ.get("TARDIFF_DATA_DIR")
    return Path(root).expanduser() / name if root else Path("data") / name


def data_status(name: str, data_dir: str | os.PathLike | None = None) -> tuple[bool, str]:
    """Whether the dataset's files are present, and where they were looked for."""
    spec = get_spec(name)
    if not spec.needs_data:
        return True, "generated"
    where = resolve_data_dir(name, data_dir)
    try:
        spec.module.find_source_files(where)
    except DataError:
        return False, str(where)
    return True, str(where)


def load_cohort(
    name: str, data_dir: str | os.PathLike | None = None, task: str | None = None, *,
    cache: bool = True, cache_dir: str | os.PathLike | None = None, **options,
) -> Cohort:
    """Load dataset ``name`` for ``task``, from the parsed-cohort cache when it is current.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    data_dir : path, optional
        Folder with the raw files; defaults to ``$TARDIFF_DATA_DIR/<name>`` or ``data/<name>``.
    task : str, optional
        One of the dataset's tasks; its default task when omitted.
    cache : bool
        Reuse (and write) the parsed cohort, keyed by the source files and the options.
    **options
        Passed to the loader (e.g. ``n`` and ``seed`` for the simulated cohort).

    Examples
    --------
    >>> c = load_cohort("simulated", n=300, seed=1)
    >>> c.shape
    (300, 24, 7)
    """
    spec = get_spec(name)
    task = task or spec.default_task
    if task not in spec.tasks:
        raise ParameterError(f"dataset {name!r} has no task {task!r}; its tasks are: {', '.join(spec.tasks)}")
    module = spec.module
    where = resolve_data_dir(name, data_dir) if spec.needs_data else None
    if not cache:
        return module.load(where, task, **options)
    sources = _present_or_fetched(module, where, options) if spec.needs_data else []
    # Options that change how the data is fetched or shown, not what it is, stay out of the key.
    key_options = sorted((k, v) for k, v in options.items() if k not in ("progress", "download"))
    key = hash_key(name, task, key_options, file_fingerprint(sources))
    path = Path(cache_dir or default_cache_dir()) / f"{name}-{task}-{key}.npz"
    cohort = load_cohort_file(path)
    if cohort is None:
        cohort = module.load(where, task, **options)
        save_cohort(path, cohort)
    return cohort


def _present_or_fetched(module, where: Path, options: dict) -> list[Path]:
    """The source files, downloaded first where the dataset is open and downloading is allowed."""
    try:
        return module.find_source_files(where)
    except DataError:
        if not hasattr(module, "fetch") or not options.get("download", True):
            raise
    fetch_options = {k: options[k] for k in ("sets", "progress") if k in options}
    module.fetch(where, **fetch_options)
    return module.find_source_files(where)

