"""MIMIC-III v1.4 with the TarDiff paper's preprocessing: first 24 h, hourly, 7 vital signs.

Reads the raw tables PATIENTS, ADMISSIONS, ICUSTAYS and CHARTEVENTS (``.csv`` or
``.csv.gz``, file names in any case, column names upper case as in the full database or
lower case as in the open demo; they are normalised to lower case). Access to the full
database is credentialed (https://physionet.org/content/mimiciii/1.4/); the open demo
(https://physionet.org/content/mimiciii-demo/1.4/) has the same layout.

The cohort
----------
- One sample per ICU stay (``icustay_id``), 24 hourly steps from ``ICUSTAYS.intime``: a
  chart event at ``intime + m`` minutes falls in bin ``floor(m / 60)`` for 0 <= m < 1440;
  several values in one bin are averaged. CHARTEVENTS rows without an ``icustay_id``, without
  a numeric value, or flagged ``error = 1`` are ignored.
- Features (:data:`FEATURES`) from CareVue and MetaVision item ids (:data:`ITEMIDS`);
  temperatures charted in degF are converted to degC. Values outside these physiologic
  ranges (:data:`VALID_RANGES`, bounds inclusive, after conversion) are dropped:
  HR 1-300 bpm, SBP 1-400 mmHg, DBP 1-300 mmHg, MBP 1-300 mmHg, RR 1-100 /min,
  Temp 25-45 degC, SpO2 1-100 %.
- Static covariates: ``age`` from ``dob`` to ``intime`` in years. MIMIC shifts the date of
  birth of patients older than 89 so that they appear about 300 years old; ages are capped
  at 90, so every such patient reads 90. Also ``sex`` ("F"/"M"), ``first_careunit``.
- Tasks: ``mortality`` (``ADMISSIONS.hospital_expire_flag`` of the stay's admission) and
  ``los3`` (``ICUSTAYS.los`` > 3 days).
- Stays with no vital sign in the window are dropped (``info["dropped_no_vitals"]``), as are
  stays whose label is unknown (``info["dropped_unknown_label"]``). An ``icustay_id`` listed
  twice in ICUSTAYS (a subject_id or hadm_id twice in PATIENTS or ADMISSIONS) is refused
  with a one-line :class:`DataError` naming it. The open demo gives 132
  of its 136 stays, 44 of them ending in death in hospital.

CHARTEVENTS (about 33 GB uncompressed, 330 million rows) is read in chunks with only the
columns needed, filtered by item id before anything else is parsed.

The open demo
-------------
:func:`fetch_demo` downloads the four tables of the open MIMIC-III Clinical Database Demo
v1.4 (ODbL 1.0; 100 patients, about 80 MB, most of it CHARTEVENTS) from PhysioNet's file
tree (:data:`DEMO_BASE_URL`), resumably, and checks each file's size and SHA-256
(:data:`DEMO_FILES`). It is called for the default data folder only (see
:func:`tardiff.data.registry.ensure_open_data`); ``find_source_files`` and ``load`` never
download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from tardiff.data.cohort import Cohort
from tardiff.data.download import download_file
from tardiff.data.sources import find_table, table_finder
from tardiff.errors import DataError, ParameterError

TASKS = ("mortality", "los3")
DEFAULT_TASK = "mortality"
N_HOURS = 24
TABLES = ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "CHARTEVENTS")

FEATURES = ["HR", "SBP", "DBP", "MBP", "RR", "Temp", "SpO2"]
UNITS = ["bpm", "mmHg", "mmHg", "mmHg", "breaths/min", "degC", "%"]

#: CareVue and MetaVision item ids of each feature.
ITEMIDS: dict[str, tuple[int, ...]] = {
    "HR": (211, 220045),
    "SBP": (51, 442, 455, 6701, 220179, 220050),
    "DBP": (8368, 8440, 8441, 8555, 220180, 220051),
    "MBP": (456, 52, 6702, 443, 220052, 220181, 225312),
    "RR": (615, 618, 220210, 224690),
    "Temp": (223761, 678, 223762, 676),
    "SpO2": (646, 220277),
}
FAHRENHEIT_ITEMIDS = (223761, 678)
#: Inclusive physiologic ranges in the units of :data:`UNITS`; values outside are dropped.
VALID_RANGES: dict[str, tuple[float, float]] = {
    "HR": (1, 300), "SBP": (1, 400), "DBP": (1, 300), "MBP": (1, 300), "RR": (1, 100),
    "Temp": (25, 45), "SpO2": (1, 100),
}
AGE_CAP = 90.0
CHUNK_ROWS = 2_000_000

_ITEM_TO_FEATURE = {item: FEATURES.index(name) for name, items in ITEMIDS.items() for item in items}

#: Where PhysioNet serves the open demo's files (https://physionet.org/content/mimiciii-demo/1.4/).
DEMO_BASE_URL = "https://physionet.org/files/mimiciii-demo/1.4/"
#: The demo tables the loader reads: file name -> (size in bytes, SHA-256). PhysioNet serves
#: them as plain CSV with lower-case column names. Provenance of the numbers: computed from
#: the decompressed copies in the project's shared development data (../shared/data/mimic3_demo,
#: gzipped locally from the demo's CSV files). They could not be compared with PhysioNet's own
#: SHA256SUMS.txt from the machine they were computed on (no access to physionet.org); if
#: PhysioNet's files differ, the download stops with a one-line checksum error, and the
#: remedy is to compare against https://physionet.org/files/mimiciii-demo/1.4/SHA256SUMS.txt
#: and update these numbers.
DEMO_FILES: dict[str, tuple[int, str]] = {
    "PATIENTS.csv": (5482, "92be197e03501f3d294c925036027e82c94ff8d794dbc5a9b7de55c84722e021"),
    "ADMISSIONS.csv": (26821, "8dbd81f3ef6ed648518851aaf78f1e5308f09084923b2ed089dce8e505a29c6c"),
    "ICUSTAYS.csv": (13495, "455cd8fd014bd75d9d26ddf8cb116c77ecccee2fe35fea342801a631d94b387b"),
    "CHARTEVENTS.csv": (78283905, "e46f4b646ff19a1d02796d957a0623aebd710a4e936c773ecd0bafeb4e486264"),
}


#: PATIENTS, ADMISSIONS, ICUSTAYS and CHARTEVENTS in ``data_dir``, or a one-line DataError naming the missing ones.
find_source_files = table_finder(
    TABLES, database="MIMIC-III", module=__name__,
    folder="the folder of the MIMIC-III v1.4 CSV files (credentialed access on PhysioNet)",
)


def fetch_demo(data_dir: Path, *, progress: bool = True) -> list[Path]:
    """Download the open demo's PATIENTS, ADMISSIONS, ICUSTAYS and CHARTEVENTS into ``data_dir``.

    Only tables not already there (as ``.csv`` or ``.csv.gz``, in any case) are fetched, from
    :data:`DEMO_BASE_URL`; each download resumes a partial ``.part`` file, is checked against
    :data:`DEMO_FILES` and renamed into place only when complete and correct.

    Returns
    -------
    list of Path
        The four tables, as :func:`find_source_files` returns them.

    Raises
    ------
    DataError
        One line, when a download fails or a file does not match its checksum (it is removed).

    Examples
    --------
    >>> fetch_demo(Path("data/mimic3_demo"))  # doctest: +SKIP
    [PosixPath('data/mimic3_demo/PATIENTS.csv'), ...]
    """
    data_dir = Path(data_dir)
    for name, (size, sha256) in DEMO_FILES.items():
        if find_table(data_dir, name.split(".")[0]) is None:
            download_file(DEMO_BASE_URL + name, data_dir / name, progress=progress, sha256=sha256, size=size)
    return find_source_files(data_dir)


def read_table(path: Path, columns: list[str], required: list[str] | None = None, **kwargs) -> pd.DataFrame:
    """Read ``columns`` (lower-case names) of a CSV whose header may be upper or lower case.

    Raises :class:`DataError` when the file cannot be parsed or lacks one of ``required``
    (default: all of ``columns``); the names of the result are lower case.

    Examples
    --------
    >>> read_table(Path("../shared/data/mimic3_demo/PATIENTS.csv.gz"), ["subject_id", "gender"]).shape  # doctest: +SKIP
    (100, 2)
    """
    wanted = set(columns)
    try:
        frame = pd.read_csv(path, usecols=lambda c: c.strip().lower() in wanted, **kwargs)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); check or re-download the file") from None
    if isinstance(frame, pd.DataFrame):
        frame.columns = [c.strip().lower() for c in frame.columns]
        require_columns(frame.columns, columns if required is None else required, path)
    return frame


def require_columns(present, columns, path) -> None:
    """Raise :class:`DataError` naming ``path`` when a column of ``columns`` is not in ``present``."""
    missing = sorted(set(columns) - set(present))
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; check that it is the right table of the database")


def load(data_dir: Path | None, task: str = DEFAULT_TASK, *, progress: bool = True,
         chunk_rows: int = CHUNK_ROWS) -> Cohort:
    """Build the 24 h x 7 vital-sign cohort for ``task`` from raw MIMIC-III tables.

    Parameters
    ----------
    data_dir : path
        Folder with PATIENTS, ADMISSIONS, ICUSTAYS and CHARTEVENTS (.csv or .csv.gz).
    task : {"mortality", "los3"}
    progress : bool
        Show a progress bar while CHARTEVENTS is read.
    chunk_rows : int
        Rows of CHARTEVENTS per chunk (memory versus speed).

    Examples
    --------
    >>> load(Path("../shared/data/mimic3_demo"), "mortality", progress=False).shape  # doctest: +SKIP
    (132, 24, 7)
    """
    if task not in TASKS:
        raise ParameterError(f"mimic3 has no task {task!r}; its tasks are: {', '.join(TASKS)}")
    if data_dir is None:
        data_dir = Path("data/mimic3")
    patients_path, admissions_path, icustays_path, chart_path = find_source_files(Path(data_dir))

    stays = read_table(icustays_path, ["subject_id", "hadm_id", "icustay_id", "intime", "los", "first_careunit"])
    patients = read_table(patients_path, ["subject_id", "gender", "dob"])
    admissions = read_table(admissions_path, ["hadm_id", "hospital_expire_flag"])
    try:
        stays = (stays.merge(patients, on="subject_id", how="left", validate="many_to_one")
                 .merge(admissions, on="hadm_id", how="left", validate="many_to_one")
                 .sort_values("icustay_id", kind="stable").reset_index(drop=True))
    except pd.errors.MergeError:
        raise DataError(
            f"{patients_path.name} or {admissions_path.name} in {data_dir} lists a subject_id or hadm_id twice; "
            "use the unmodified MIMIC-III tables"
        ) from None
    stays["intime"] = pd.to_datetime(stays["intime"], errors="coerce")
    if stays["intime"].isna().any():
        raise DataError(f"{icustays_path}: {int(stays['intime'].isna().sum())} ICU stays have no valid intime")

    if stays["icustay_id"].isna().any():
        raise DataError(f"{icustays_path}: {int(stays['icustay_id'].isna().sum())} rows have no icustay_id; "
                        "use the unmodified ICUSTAYS table")
    repeated = stays["icustay_id"].duplicated()
    if repeated.any():
        raise DataError(
            f"{icustays_path}: icustay_id {int(stays['icustay_id'][repeated].iloc[0])} is listed twice "
            f"({int(repeated.sum())} repeated ids); a stay must appear once: use the unmodified ICUSTAYS table"
        )
    stay_ids = stays["icustay_id"].to_numpy(dtype=np.int64)
    X = _chart_grid(chart_path, stay_ids, stays["intime"], progress=progress, chunk_rows=chunk_rows)

    info: dict = {"n_icustays": len(stays), "step_minutes": 60, "n_hours": N_HOURS, "bin_aggregate": "mean",
                  "age_cap": AGE_CAP}
    has_vitals = ~np.isnan(X).all(axis=(1, 2))
    if task == "mortality":
        label = pd.to_numeric(stays["hospital_expire_flag"], errors="coerce").to_numpy(dtype=float)
    else:
        los = pd.to_numeric(stays["los"], errors="coerce").to_numpy(dtype=float)
        label = np.where(np.isnan(los), np.nan, (los > 3).astype(float))
    known = np.isin(label, (0.0, 1.0))
    info["dropped_no_vitals"] = int((~has_vitals).sum())
    info["dropped_unknown_label"] = int((has_vitals & ~known).sum())
    keep = has_vitals & known

    static = pd.DataFrame({
        "age": _age_years(stays["dob"], stays["intime"]),
        "sex": pd.Series([{"F": "F", "M": "M"}.get(str(g).strip().upper()) for g in stays["gender"]], dtype=object),
        "first_careunit": stays["first_careunit"].astype(object),
    })
    info["n_age_capped"] = int((static["age"][keep] >= AGE_CAP).sum())
    X = X[keep]
    return Cohort(
        X=X, mask=~np.isnan(X), y=label[keep].astype(np.int64), features=list(FEATURES), units=list(UNITS),
        stay_ids=stay_ids[keep], static=static[keep].reset_index(drop=True), dataset="mimic3", task=task,
        step_minutes=60, info=info,
    )


def _age_years(dob: pd.Series, intime: pd.Series) -> np.ndarray:
    """Age at ICU admission in years, capped at :data:`AGE_CAP` (MIMIC's shifted >89 ages).

    Differences are taken in whole days (datetime64[D]) because the shifted dates of birth
    lie about 300 years back, beyond what nanosecond timestamps can subtract.
    """
    birth = pd.to_datetime(dob, errors="coerce").to_numpy(dtype="datetime64[D]")
    admit = intime.to_numpy(dtype="datetime64[D]")
    days = (admit - birth).astype("float64")
    days[np.isnat(birth) | np.isnat(admit)] = np.nan
    return np.minimum(days / 365.25, AGE_CAP)


def _chart_grid(path: Path, stay_ids: np.ndarray, intime: pd.Series, *, progress: bool, chunk_rows: int) -> np.ndarray:
    """Mean of each vital per stay and hour over the first 24 h, NaN where nothing was charted."""
    n_feat = len(FEATURES)
    position = pd.Series(np.arange(len(stay_ids)), index=stay_ids)
    intime_ns = intime.to_numpy(dtype="datetime64[ns]")
    size = len(stay_ids) * N_HOURS * n_feat
    sums = np.zeros(size)
    counts = np.zeros(size)
    items = np.array(sorted(_ITEM_TO_FEATURE))
    item_feature = pd.Series([_ITEM_TO_FEATURE[i] for i in items], index=items)
    lo = np.array([VALID_RANGES[f][0] for f in FEATURES])
    hi = np.array([VALID_RANGES[f][1] for f in FEATURES])
    with tqdm(desc=path.name, unit=" rows", unit_scale=True, disable=not progress, leave=False) as bar:
        for chunk in _chart_chunks(path, chunk_rows):
            bar.update(len(chunk))
            sel = chunk["itemid"].isin(items) & chunk["icustay_id"].notna() & chunk["valuenum"].notna()
            if "error" in chunk:
                sel &= chunk["error"].fillna(0) != 1
            part = chunk.loc[sel]
            row = position.reindex(part["icustay_id"].to_numpy(dtype=np.int64)).to_numpy()
            known = ~np.isnan(row)
            if not known.any():
                continue
            part, row = part.loc[known], row[known].astype(np.int64)
            item = part["itemid"].to_numpy(dtype=np.int64)
            feature = item_feature.reindex(item).to_numpy()
            value = part["valuenum"].to_numpy(dtype=float, copy=True)
            fahrenheit = np.isin(item, FAHRENHEIT_ITEMIDS)
            value[fahrenheit] = (value[fahrenheit] - 32.0) * 5.0 / 9.0
            charttime = pd.to_datetime(part["charttime"], format="ISO8601", errors="coerce").to_numpy(dtype="datetime64[ns]")
            minutes = (charttime - intime_ns[row]) / np.timedelta64(1, "m")  # NaT gives NaN, dropped below
            valid = (minutes >= 0) & (minutes < N_HOURS * 60) & (value >= lo[feature]) & (value <= hi[feature])
            hour = (minutes[valid] // 60).astype(np.int64)
            flat = (row[valid] * N_HOURS + hour) * n_feat + feature[valid]
            sums += np.bincount(flat, weights=value[valid], minlength=size)
            counts += np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).reshape(len(stay_ids), N_HOURS, n_feat).astype(np.float32)


def _chart_chunks(path: Path, chunk_rows: int):
    """Yield CHARTEVENTS chunks: icustay_id, itemid, charttime, valuenum (and error when present)."""
    numeric = {"icustay_id": "float64", "itemid": "float64", "valuenum": "float64", "error": "float64"}
    try:
        header = pd.read_csv(path, nrows=0).columns
        names = {c: c.strip().lower() for c in header if c.strip().lower() in {*numeric, "charttime"}}
        require_columns(names.values(), ["icustay_id", "itemid", "charttime", "valuenum"], path)
        dtypes = {c: numeric[n] for c, n in names.items() if n in numeric}
        dtypes.update({c: str for c, n in names.items() if n == "charttime"})
        for chunk in pd.read_csv(path, usecols=list(names), dtype=dtypes, chunksize=chunk_rows):
            yield chunk.rename(columns=names)
    except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); check or re-download the file") from None
