"""The dataset registry: what each dataset is, where its data lives, and how to load it.

Each loader module (``tardiff.data.<name>``) exposes

- ``TASKS`` (tuple of task names) and ``DEFAULT_TASK``;
- ``find_source_files(data_dir: Path, **source_options) -> list[Path]``: the raw files the
  cohort is parsed from, raising :class:`~tardiff.errors.DataError` with a how-to-fix message
  when absent; never downloads;
- ``load(data_dir: Path | None, task: str, *, progress: bool, **options) -> Cohort``;
- optionally ``SOURCE_OPTIONS`` (the load options that choose the source files, e.g.
  PhysioNet's ``sets``; they are passed to ``find_source_files`` and ``fetch`` too),
  ``fetch(data_dir, **source_options, progress=...)`` for open data that can be downloaded
  (such a ``load`` also takes ``download``), and ``sets_found(data_dir)``.

:func:`load_cohort` adds the data-directory lookup, downloads and the parsed-cohort cache on
top. Where data comes from:

- ``data_dir`` given (``--data-dir``): that folder is read and never written. It must exist
  and hold the dataset's files, else a one-line :class:`~tardiff.errors.DataError` says
  what was expected; nothing is downloaded into it unless ``download=True``.
- ``data_dir`` omitted: the default folder ``$TARDIFF_DATA_DIR/<name>`` or ``data/<name>``;
  missing open data (PhysioNet 2012) is downloaded into it unless ``download=False``.

Open data (:data:`OPEN_DATA`) is what the package can download by itself: PhysioNet 2012, the
MIMIC-III demo (read by ``mimic3``) and YAIB's demo cohorts (read by ``yaib``). Each lives in
its own folder under the data root (``physionet2012``, ``mimic3_demo``,
``yaib_demo/<task>/<database>``); :func:`ensure_open_data` returns that folder, downloading
what is missing when it is the default folder, and :func:`fetch_open_data` does so for the
first open folder among a book chapter's candidate folders.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tardiff.data.cache import CacheWarning, default_cache_dir, file_fingerprint, hash_key, load_cohort_file, save_cohort
from tardiff.data.cohort import Cohort, concat_cohorts
from tardiff.data.yaib import DEMO_COHORTS
from tardiff.errors import DataError, ParameterError


@dataclass(frozen=True)
class FreshDraws:
    """How an experiment draws a generated dataset's stays, instead of splitting one fixed cohort.

    Parameters
    ----------
    fit_stays : dict
        ``{scale: n}``: the stays drawn (with the replicate's split seed) for training and
        validation, or for the whole 80/10/10 split where ``test_stays`` is None.
    test_stays : dict
        ``{scale: n or None}``: a fresh draw of ``n`` stays as the test split (power at no cost
        in training stays), or None for 80/10/10 of the ``fit_stays`` draw.
    seed_offsets : (int, int, int)
        Added to the split seed for the fresh test, guidance and selection draws (never the
        training draw's seed, so no stay is drawn twice).

    Examples
    --------
    >>> DATASETS["simulated"].draws.test_stays["paper"] is None
    True
    """

    fit_stays: dict[str, int]
    test_stays: dict[str, int | None]
    seed_offsets: tuple[int, int, int] = (1_000_003, 2_000_003, 3_000_003)

    def draw(self, dataset: str, scale: str, seed: int, *, guide_stays: int | None, select_stays: int | None,
             load=None, check=None) -> tuple[Cohort, dict[str, np.ndarray] | None]:
        """The cohort of one replicate and where its parts lie in it.

        ``load`` is the cohort loader, called as ``load(dataset, n=..., seed=..., progress=False)``
        (default :func:`load_cohort`); ``check(cohort)``, if given, is called on the fit draw
        before any fresh draw, so a cohort the caller cannot use fails fast.

        Returns ``(cohort, parts)``: ``parts`` maps ``fit``, ``test``, ``guide`` and ``select``
        to row positions (the fresh draws follow the fit draw, stay ids renumbered to stay
        unique), or is None when the scale draws no test split (the caller splits 80/10/10).
        """
        load = load_cohort if load is None else load
        cohort = load(dataset, n=self.fit_stays[scale], seed=seed, progress=False)
        if check is not None:
            check(cohort)
        if self.test_stays[scale] is None:
            return cohort, None
        parts = [cohort]
        for offset, n in zip(self.seed_offsets, (self.test_stays[scale], guide_stays, select_stays)):
            fresh = load(dataset, n=n, seed=offset + seed, progress=False)
            fresh.stay_ids = fresh.stay_ids + sum(len(c.y) for c in parts)  # ids unique across the draws
            parts.append(fresh)
        both = parts[0]
        for part in parts[1:]:
            both = concat_cohorts(both, part)
        bounds = np.cumsum([0] + [len(c.y) for c in parts])
        return both, {name: np.arange(bounds[i], bounds[i + 1])
                      for i, name in enumerate(("fit", "test", "guide", "select"))}


@dataclass(frozen=True)
class DatasetSpec:
    """What the CLI and the book say about a dataset, and what an experiment needs to know of it.

    ``draws``: a generated dataset's :class:`FreshDraws` (None: a fixed cohort, split by the
    experiment); ``source_options``: the load options that choose its source files.
    """

    name: str
    title: str
    needs_data: bool
    home: str
    license: str
    how_to_get: str
    draws: FreshDraws | None = None

    @property
    def module(self):
        return importlib.import_module(f"tardiff.data.{self.name}")

    @property
    def source_options(self) -> tuple[str, ...]:
        """The load options that choose the source files (the loader's ``SOURCE_OPTIONS``, e.g. ``sets``)."""
        return tuple(getattr(self.module, "SOURCE_OPTIONS", ()))

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
            # Stays for training and validation (8:1; see the cpu preset's note in tardiff.presets), then
            # fresh draws: 10,000 test stays with their Bayes posterior, and the preset's guidance and
            # selection stays; the paper scale splits one draw of 10,000 80/10/10.
            draws=FreshDraws(fit_stays={"smoke": 270, "cpu": 1125, "paper": 10000},
                             test_stays={"smoke": 10000, "cpu": 10000, "paper": None}),
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
            "and CHARTEVENTS (.csv or .csv.gz); the open 100-patient demo "
            "(https://physionet.org/content/mimiciii-demo/1.4/) is downloaded into data/mimic3_demo by "
            "`tardiff book` or tardiff.data.registry.ensure_open_data('mimic3_demo')",
        ),
        DatasetSpec(
            "yaib", "A YAIB cohort (dyn/sta/outc parquet; MIMIC-III/IV, eICU, HiRID, AUMCdb)", True,
            "https://github.com/rvandewater/YAIB", "that of the source database (demo cohorts: ODbL 1.0)",
            "build a cohort with YAIB/ricu and pass --data-dir to the folder holding dyn.parquet, sta.parquet "
            "and outc.parquet; YAIB's open demo cohorts are downloaded into data/yaib_demo/<task>/<database> by "
            "`tardiff book` or tardiff.data.registry.ensure_open_data('yaib_demo/mortality24/eicu_demo')",
        ),
        DatasetSpec(
            "eicu", "eICU-CRD (first 24 h, 5-minute HR, RR, SpO2)", True,
            "https://physionet.org/content/eicu-crd/2.0/", "PhysioNet Credentialed Health Data License 1.5.0",
            "credentialed access on PhysioNet; pass --data-dir to the folder with patient.csv(.gz) and "
            "vitalPeriodic.csv(.gz)",
        ),
    )
}


@dataclass(frozen=True)
class OpenDataSpec:
    """An open dataset the package downloads by itself: its folder under the data root and its source.

    Parameters
    ----------
    name : str
        The folder under the data root, e.g. ``mimic3_demo`` or ``yaib_demo/mortality24/eicu_demo``.
    dataset : str
        The key of :data:`DATASETS` whose loader reads the folder.
    title, home, license, citation : str
        What the data chapter and messages say about it.
    fetcher : str
        The loader module's function that downloads the missing files into a folder.
    fetch_options : dict
        Keyword arguments for ``fetcher`` besides the folder and ``progress``.
    """

    name: str
    dataset: str
    title: str
    home: str
    license: str
    citation: str
    fetcher: str = "fetch"
    fetch_options: dict = field(default_factory=dict)

    def fetch(self, folder: Path, *, progress: bool = True) -> list[Path]:
        """Download the files missing in ``folder`` (resumable, atomic, checksummed where known)."""
        module = get_spec(self.dataset).module
        return getattr(module, self.fetcher)(Path(folder), **self.fetch_options, progress=progress)

    def present(self, folder: Path) -> bool:
        """Whether ``folder`` holds every file the loader reads (never downloads)."""
        try:
            get_spec(self.dataset).module.find_source_files(Path(folder))
        except DataError:
            return False
        return True


_PHYSIONET_CITATION = (
    "Goldberger et al., PhysioBank, PhysioToolkit, and PhysioNet, Circulation 101(23):e215-e220 (2000)"
)

#: Open data the package can download, by folder under the data root.
OPEN_DATA: dict[str, OpenDataSpec] = {
    spec.name: spec
    for spec in (
        OpenDataSpec(
            "physionet2012", "physionet2012", "PhysioNet/CinC Challenge 2012, sets A and B",
            "https://physionet.org/content/challenge-2012/1.0.0/", "ODC-By 1.0",
            "Silva et al., Comput Cardiol 2012;39:245-248; " + _PHYSIONET_CITATION,
        ),
        OpenDataSpec(
            "mimic3_demo", "mimic3", "MIMIC-III Clinical Database Demo v1.4 (100 patients)",
            "https://physionet.org/content/mimiciii-demo/1.4/", "ODbL 1.0",
            "Johnson et al., MIMIC-III, a freely accessible critical care database, Sci Data 3:160035 (2016); "
            + _PHYSIONET_CITATION,
            fetcher="fetch_demo",
        ),
        *(
            OpenDataSpec(
                f"yaib_demo/{cohort}", "yaib",
                f"YAIB {cohort.split('/')[0]} cohort from the {'eICU-CRD' if 'eicu' in cohort else 'MIMIC-III'} demo",
                "https://github.com/rvandewater/YAIB/tree/main/demo_data", "ODbL 1.0",
                "van de Water et al., Yet Another ICU Benchmark, ICLR 2024; " + _PHYSIONET_CITATION,
                fetcher="fetch_demo", fetch_options={"cohort": cohort},
            )
            for cohort in DEMO_COHORTS
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``, or a one-line error listing the known datasets."""
    if name not in DATASETS:
        raise ParameterError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def resolve_data_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$TARDIFF_DATA_DIR/<name>``, else ``data/<name>``.

    Raises :class:`DataError` when that path is an existing file rather than a folder.

    Examples
    --------
    >>> resolve_data_dir("mimic3", "/srv/mimic-iii")
    PosixPath('/srv/mimic-iii')
    """
    where = _data_path(name, data_dir)
    if where.exists() and not where.is_dir():
        raise DataError(
            f"the {name} data folder {where} is a file, not a folder; pass --data-dir to the folder holding "
            f"{expected_files(name)}"
        )
    return where


def _data_path(name: str, data_dir: str | os.PathLike | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    root = os.environ.get("TARDIFF_DATA_DIR")
    return Path(root).expanduser() / name if root else Path("data") / name


def ensure_open_data(name: str, data_dir: str | os.PathLike | None = None, *, download: bool | None = None,
                     progress: bool = True) -> Path:
    """The folder holding open dataset ``name``, downloading what is missing into the default folder.

    Parameters
    ----------
    name : str
        A key of :data:`OPEN_DATA`: ``physionet2012``, ``mimic3_demo`` or
        ``yaib_demo/<task>/<database>`` (e.g. ``yaib_demo/mortality24/eicu_demo``).
    data_dir : path, optional
        The folder that holds (or is to hold) the files. Omitted: the default folder
        ``$TARDIFF_DATA_DIR/<name>`` or ``data/<name>``. A folder named here is only read,
        never written, unless ``download=True``.
    download : bool or None
        None (default): download only into the default folder; True: into ``data_dir`` too;
        False: never.
    progress : bool
        Show download progress bars.

    Returns
    -------
    Path
        The folder, holding every file the dataset's loader reads; pass it as ``data_dir``
        to :func:`load_cohort` with the dataset ``OPEN_DATA[name].dataset``.

    Raises
    ------
    ParameterError
        For a name that is not open data.
    DataError
        One line: files missing where downloading is not allowed, a failed download, or a
        file whose checksum does not match (the file is removed).

    Examples
    --------
    >>> folder = ensure_open_data("mimic3_demo")  # doctest: +SKIP
    >>> load_cohort(OPEN_DATA["mimic3_demo"].dataset, folder).shape  # doctest: +SKIP
    (132, 24, 7)
    """
    if name not in OPEN_DATA:
        raise ParameterError(
            f"{name!r} is not open data the package can download; choose one of: {', '.join(OPEN_DATA)}"
        )
    spec = OPEN_DATA[name]
    folder = _data_path(name, data_dir)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"the {name} data folder {folder} is a file, not a folder; move it away or pass another folder")
    if spec.present(folder):
        return folder
    if download is None:
        download = data_dir is None
    if not download:
        missing = "does not exist" if not folder.is_dir() else "lacks some of its files"
        raise DataError(
            f"the {name} folder {folder} {missing}; expected {expected_files(spec.dataset)}: leave the data folder "
            f"unset to download {spec.title} from {spec.home}, or pass a folder that holds the files"
        )
    spec.fetch(folder, progress=progress)
    get_spec(spec.dataset).module.find_source_files(folder)  # a one-line error should a file still be absent
    return folder


def fetch_open_data(subdirs: Iterable[str], root: str | os.PathLike | None = None, *,
                    progress: bool = True) -> Path | None:
    """The first of ``subdirs`` that is open data, present or downloaded under ``root``; None if none is open.

    Meant for the book, whose chapters name candidate folders under the data root (e.g.
    ``("mimic3", "mimic3_demo")``): credentialed folders are skipped, the first open one is
    filled. Call it only for the default data root, never for a folder the user named.

    Parameters
    ----------
    subdirs : iterable of str
        Folder names relative to ``root``.
    root : path, optional
        The data root; ``$TARDIFF_DATA_DIR`` or ``data`` when omitted.
    progress : bool
        Show download progress bars.

    Examples
    --------
    >>> fetch_open_data(["eicu"]) is None  # credentialed: nothing to download
    True
    >>> fetch_open_data(["mimic3", "mimic3_demo"])  # doctest: +SKIP
    PosixPath('data/mimic3_demo')
    """
    for sub in subdirs:
        if sub in OPEN_DATA:
            where = None if root is None else Path(root).expanduser() / sub
            return ensure_open_data(sub, where, download=True, progress=progress)
    return None


def expected_files(name: str, **options) -> str:
    """The raw files dataset ``name`` is read from, in words (for messages).

    Examples
    --------
    >>> expected_files("physionet2012", sets="a")
    'set-a.tar.gz, Outcomes-a.txt'
    """
    module = get_spec(name).module
    if hasattr(module, "source_files"):  # PhysioNet: the files depend on the sets
        return ", ".join(p.name for p in module.source_files(Path("."), **_source_options(module, options)))
    if hasattr(module, "FILES"):
        return ", ".join(module.FILES)
    return ", ".join(f"{table}.csv(.gz)" for table in getattr(module, "TABLES", ()))


@dataclass(frozen=True)
class DataAvailability:
    """Whether a dataset can be loaded as asked, where it was looked for, and what was found.

    ``present`` is True only when every file the requested options need is there (a
    PhysioNet folder with set A alone is not present for the default sets A and B).
    ``detail`` is one line: what was found (e.g. "sets found: a") or what is missing.
    """

    present: bool
    where: str
    detail: str


def data_availability(name: str, data_dir: str | os.PathLike | None = None, **options) -> DataAvailability:
    """Whether dataset ``name`` is usable from ``data_dir`` with the loader ``options``; never downloads.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    data_dir : path, optional
        The folder to check; the default folder when omitted.
    **options
        Loader options that choose the source files (PhysioNet's ``sets``); others are ignored.

    Examples
    --------
    >>> data_availability("simulated")
    DataAvailability(present=True, where='generated', detail='generated on the fly')
    >>> data_availability("physionet2012", "/nowhere", sets="a").detail  # doctest: +ELLIPSIS
    'the folder does not exist; expected set-a.tar.gz, Outcomes-a.txt'
    """
    spec = get_spec(name)
    if not spec.needs_data:
        return DataAvailability(True, "generated", "generated on the fly")
    module = spec.module
    source_options = _source_options(module, options)
    where = _data_path(name, data_dir)
    if where.exists() and not where.is_dir():
        return DataAvailability(False, str(where), "a file, not a folder")
    if not where.is_dir():
        expected = expected_files(name, **options)
        return DataAvailability(False, str(where), f"the folder does not exist; expected {expected}")
    found = ""
    if hasattr(module, "sets_found"):
        have = module.sets_found(where)
        found = f"sets found: {', '.join(have) if have else 'none'}"
    try:
        module.find_source_files(where, **source_options)
    except DataError as exc:
        if hasattr(module, "source_files"):  # PhysioNet: name exactly the files the sets still need
            names = [p.name for p in module.source_files(where, **source_options) if not p.is_file()]
            missing = f"missing {', '.join(names)}"
        else:
            missing = str(exc)  # the loader's one-line message names the missing tables
        return DataAvailability(False, str(where), f"{found}; {missing}" if found else missing)
    return DataAvailability(True, str(where), found or "all files found")


def data_status(name: str, data_dir: str | os.PathLike | None = None, **options) -> tuple[bool, str]:
    """Whether the dataset is usable as asked (see :func:`data_availability`), and where it was looked for.

    Examples
    --------
    >>> data_status("simulated")
    (True, 'generated')
    """
    status = data_availability(name, data_dir, **options)
    return status.present, status.where


def load_cohort(
    name: str, data_dir: str | os.PathLike | None = None, task: str | None = None, *,
    cache: bool = True, cache_dir: str | os.PathLike | None = None, download: bool | None = None,
    progress: bool | None = None, **options,
) -> Cohort:
    """Load dataset ``name`` for ``task``, from the parsed-cohort cache when it is current.

    Parameters
    ----------
    name : str
        A key of :data:`DATASETS`.
    data_dir : path, optional
        Folder with the raw files; defaults to ``$TARDIFF_DATA_DIR/<name>`` or ``data/<name>``.
        A folder given here must exist and hold the files; it is never a download target
        unless ``download=True``.
    task : str, optional
        One of the dataset's tasks; its default task when omitted.
    cache : bool
        Reuse (and write) the parsed cohort, keyed by the content (SHA-256) of the source
        files and the options. A cache folder that cannot be written gives a
        :class:`~tardiff.data.cache.CacheWarning` and the freshly parsed cohort.
    cache_dir : path, optional
        Where parsed cohorts are kept; :func:`~tardiff.data.cache.default_cache_dir` when omitted.
    download : bool or None
        For open data (PhysioNet 2012): None (default) downloads missing files only into the
        default folder; True downloads into ``data_dir`` too (creating it); False never downloads.
    progress : bool or None
        Show the loader's progress bars (downloads, archive and table reading); None keeps
        each loader's default (bars for raw files, none for the generated cohort). Pass
        False for quiet runs.
    **options
        Passed to the loader (e.g. ``n`` and ``seed`` for the simulated cohort, ``sets`` for
        PhysioNet 2012: "a", "ab" (default) or "abc").

    Raises
    ------
    DataError
        One line when the folder is a file, does not exist, or lacks the files the options need.

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
    where, sources = None, []
    # How the data is fetched or shown is not what it is: these stay out of the cache key.
    loader_options = dict(options)
    if progress is not None:
        loader_options["progress"] = progress
    if spec.needs_data:
        where = resolve_data_dir(name, data_dir)
        if download is None:
            download = data_dir is None  # only the default folder is a download target
        sources = _present_or_fetched(name, module, where, options, explicit=data_dir is not None,
                                      download=download, progress=progress)
        if hasattr(module, "fetch"):
            loader_options["download"] = False  # the files were checked (and fetched) just now
    if not cache:
        return module.load(where, task, **loader_options)
    key = hash_key(name, task, sorted(options.items()), file_fingerprint(sources))
    path = Path(cache_dir or default_cache_dir()) / f"{name}-{task}-{key}.npz"
    cohort = load_cohort_file(path)
    if cohort is None:
        cohort = module.load(where, task, **loader_options)
        try:
            save_cohort(path, cohort)
        except OSError as exc:  # a read-only cache costs the next run a parse, not this run its result
            warnings.warn(f"cannot write the parsed-cohort cache {path.parent} ({exc.strerror or exc}); continuing "
                          "without it: set $TARDIFF_CACHE_DIR to a writable folder", CacheWarning, stacklevel=2)
    return cohort


def _source_options(module, options: dict) -> dict:
    """The options that choose the source files (the module's ``SOURCE_OPTIONS``)."""
    return {k: options[k] for k in getattr(module, "SOURCE_OPTIONS", ()) if k in options}


def _present_or_fetched(name: str, module, where: Path, options: dict, *, explicit: bool, download: bool,
                        progress: bool | None) -> list[Path]:
    """The source files, downloaded first where the dataset is open and ``download`` allows."""
    source_options = _source_options(module, options)
    can_fetch = download and hasattr(module, "fetch")
    if explicit and not where.is_dir() and not can_fetch:
        raise DataError(
            f"the {name} data folder {where} does not exist; pass --data-dir to the folder holding "
            f"{expected_files(name, **options)}"
        )
    try:
        return module.find_source_files(where, **source_options)
    except DataError:
        if not can_fetch:
            raise
    module.fetch(where, **source_options, **({} if progress is None else {"progress": progress}))
    return module.find_source_files(where, **source_options)

