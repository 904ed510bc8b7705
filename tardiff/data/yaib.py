"""Cohorts in the layout of YAIB, "Yet Another ICU Benchmark" (van de Water et al., ICLR 2024).

YAIB (https://github.com/rvandewater/YAIB) and its R companion ricu extract harmonised
cohorts from MIMIC-III, MIMIC-IV, eICU, HiRID and AUMCdb into three parquet files, which
``data_dir`` must hold:

- ``dyn.parquet``: ``stay_id``, ``time`` (a timedelta on an hourly grid, from 0) and one
  column per clinical concept (``hr``, ``sbp``, ``temp``, ... mostly missing);
- ``sta.parquet``: ``stay_id``, ``age``, ``sex`` ("Male"/"Female"), ``height``, ``weight``;
- ``outc.parquet``: ``stay_id`` and ``label``, one row per stay for once-per-stay tasks
  (``mortality24``) or one per hour (with ``time``) for hourly tasks (``aki``, ``sepsis``).

The cohort
----------
- Grid: ``T`` hourly steps. ``T`` is the ``hours`` option or, by default, the largest
  ``time`` in ``dyn`` in whole hours: 24 for mortality24, whose rows run from 0 h to 24 h.
  ricu stamps each row with the start of its hour, so the row at ``T`` h describes the
  hour after the window; rows at or after ``T`` h are left out (counted in
  ``info["rows_after_window"]``), and so are rows before 0 h (``info["rows_before_window"]``)
  and rows whose ``time`` is missing (NaT or NaN: ``info["rows_without_time"]``), which
  cannot be placed on the grid.
- Features: every numeric column of ``dyn`` in file order, with ricu's units where the
  concept is known (:data:`UNITS`) and "" otherwise.
- Static covariates: ``age``, ``sex`` ("F"/"M"/None), ``height``, ``weight`` as given.
- Tasks: ``mortality24`` uses the per-stay label as is. ``aki`` and ``sepsis`` have hourly
  labels; a stay is positive when any hour is positive. Note that the series then covers
  the hours around and after onset, so this is stay-level detection, not early prediction.
  Labels other than 0/1 (or booleans) raise :class:`DataError`, and so do a ``stay_id`` that
  is missing or not a whole number and a feature value that is infinite or beyond float32's
  range (NaN is missing, as usual).
- Stays without rows in ``dyn`` or without a label are dropped and counted in ``info``.
- A stay listed twice is refused with a one-line :class:`DataError` naming it: the same
  ``stay_id`` on two rows of ``sta`` (or of ``outc`` for a per-stay task), or the same
  (``stay_id``, ``time``) on two rows of ``dyn`` (or of an hourly ``outc``). ricu writes one
  row per stay and hour, so a repeat means two cohorts were concatenated.

The open demo cohorts
---------------------
YAIB's repository ships the cohorts it builds from the open MIMIC-III and eICU-CRD demos
(ODbL 1.0) under ``demo_data/<task>/<mimic_demo|eicu_demo>/``. :func:`fetch_demo` downloads
one of them (:data:`DEMO_COHORTS`; the book uses ``mortality24/eicu_demo``) from
:data:`DEMO_BASE_URL`, resumably, checking each file's size and SHA-256 (:data:`DEMO_FILES`).
``find_source_files`` and ``load`` never download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.data.cohort import Cohort
from tardiff.data.download import download_file
from tardiff.errors import DataError, ParameterError

TASKS = ("mortality24", "aki", "sepsis")
DEFAULT_TASK = "mortality24"
FILES = ("dyn.parquet", "sta.parquet", "outc.parquet")
HOURLY_TASKS = ("aki", "sepsis")

#: Where GitHub serves the demo cohorts of YAIB's repository (https://github.com/rvandewater/YAIB,
#: folder demo_data); the files are plain git blobs, not Git LFS pointers.
DEMO_BASE_URL = "https://raw.githubusercontent.com/rvandewater/YAIB/main/demo_data/"
#: Each demo cohort's files, relative to the demo folder: path -> (size in bytes, SHA-256).
#: Provenance: computed from the copies in the project's shared development data
#: (../shared/data/yaib_demo), which carry ricu's R metadata as written by YAIB (not re-saved);
#: they match the repository's file list (and its attrition.csv) but could not be compared
#: byte for byte with GitHub from the machine they were computed on. A cohort that changes
#: upstream stops the download with a one-line checksum error naming the file.
DEMO_FILES: dict[str, tuple[int, str]] = {
    "mortality24/eicu_demo/dyn.parquet": (448554, "6f5d2f7f98e80f9e7b104021a01628902f8b5affa590fe1f06e2e9e968c4c9d2"),
    "mortality24/eicu_demo/sta.parquet": (20161, "425a3c2e3893deded0050a8e69f3cabc2fddc5454be8d0bc682a08e644057fcd"),
    "mortality24/eicu_demo/outc.parquet": (9719, "d4c75c926dbfd11eb81a36077d60b498565515eca4f4a914903c2f4ecf3c848f"),
    "mortality24/mimic_demo/dyn.parquet": (82975, "a2d3e49e1d05838b7c1e89dc5113254eccc444e548f57880426a01e05f1eaf06"),
    "mortality24/mimic_demo/sta.parquet": (6589, "8db5dffe4e78f273b8b1368f2c4dcbf32d83090c5b44fc1af02842486126804d"),
    "mortality24/mimic_demo/outc.parquet": (2700, "8b2321c21ae64be8f07c4fa2b6a8665cba197daddf3564d06764ad9c72642ff7"),
    "aki/eicu_demo/dyn.parquet": (878065, "92463b98ea8a9a34e0969afc46bfcd192b865caac354c1d301487d6a5e48e0d5"),
    "aki/eicu_demo/sta.parquet": (25642, "3d16ff03db4d9c8f639622ecbba6a73b27928beddf93062101bedd47911b3864"),
    "aki/eicu_demo/outc.parquet": (31571, "cfe238085f74b59f116fe7d8936796360c459f3bbb51d703e9f908e732c58aec"),
    "aki/mimic_demo/dyn.parquet": (111502, "a1befdb0f96455c6f0eb15f9a63d657c20d782bce455108b9c4ce2244646fb87"),
    "aki/mimic_demo/sta.parquet": (6336, "4b949b315c0e59869389f08515375501fd8c5bd0fc11a2833cd223dfc5ebdd27"),
    "aki/mimic_demo/outc.parquet": (5282, "ae6d27dd6675b4a8a741bbf856b28c63dfe03c5a758126be6ab8cfa6c976254e"),
    "sepsis/eicu_demo/dyn.parquet": (491381, "1e3a4e4312377bea688181681dc8eb196dc4518336bf231b90c55bab74d6c075"),
    "sepsis/eicu_demo/sta.parquet": (14467, "4e11fe8576ff38ba5cd64a809012c08f5e275eb057ad263b13ac3a37b72b2ecc"),
    "sepsis/eicu_demo/outc.parquet": (15958, "9f3dbe94ad534df410f0ecdab8a874aba720c6fef6f4492b64b7879426d7c6f4"),
    "sepsis/mimic_demo/dyn.parquet": (145316, "5010560681f66687431723c515732eda5856e420bbca4eacd225d7193ff3784a"),
    "sepsis/mimic_demo/sta.parquet": (6343, "bd5492d940992363666c9f53db0345926370f76025a3cbdc31f80f90146285cc"),
    "sepsis/mimic_demo/outc.parquet": (5301, "4c3f2f6eeea26f47f8a9f9d29e761f1592abdb9c8fd925fbcc1e749f31ae6e01"),
}
#: The demo cohorts that can be downloaded, as ``<task>/<mimic_demo|eicu_demo>`` folders.
DEMO_COHORTS: tuple[str, ...] = tuple(dict.fromkeys(path.rsplit("/", 1)[0] for path in DEMO_FILES))

#: Units of ricu's concepts (used when the column is present).
UNITS: dict[str, str] = {
    "alb": "g/dL", "alp": "IU/L", "alt": "IU/L", "ast": "IU/L", "be": "mEq/L", "bicar": "mEq/L",
    "bili": "mg/dL", "bili_dir": "mg/dL", "bnd": "%", "bun": "mg/dL", "ca": "mg/dL", "cai": "mmol/L",
    "ck": "IU/L", "ckmb": "ng/mL", "cl": "mEq/L", "crea": "mg/dL", "crp": "mg/L", "dbp": "mmHg",
    "fgn": "mg/dL", "fio2": "%", "glu": "mg/dL", "hgb": "g/dL", "hr": "bpm", "inr_pt": "ratio",
    "k": "mEq/L", "lact": "mmol/L", "lymph": "%", "map": "mmHg", "mch": "pg", "mchc": "%", "mcv": "fL",
    "methb": "%", "mg": "mg/dL", "na": "mEq/L", "neut": "%", "o2sat": "%", "pco2": "mmHg", "ph": "pH units",
    "phos": "mg/dL", "plt": "G/L", "po2": "mmHg", "ptt": "s", "resp": "breaths/min", "sbp": "mmHg",
    "temp": "degC", "tnt": "ng/mL", "urine": "mL", "wbc": "G/L",
}


def find_source_files(data_dir: Path) -> list[Path]:
    """dyn, sta and outc parquet files in ``data_dir``, or a DataError naming the missing ones."""
    paths = [Path(data_dir) / name for name in FILES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            f"no YAIB cohort in {data_dir}: missing {', '.join(missing)}; pass --data-dir to the folder holding "
            "dyn.parquet, sta.parquet and outc.parquet (e.g. .../mortality24/eicu_demo)"
        )
    return paths


def fetch_demo(data_dir: Path, cohort: str = "mortality24/eicu_demo", *, progress: bool = True) -> list[Path]:
    """Download one YAIB demo cohort's dyn, sta and outc parquet files into ``data_dir``.

    Parameters
    ----------
    data_dir : path
        The cohort's folder (it ends up holding the three files, as ``load`` expects),
        e.g. ``data/yaib_demo/mortality24/eicu_demo``.
    cohort : str
        One of :data:`DEMO_COHORTS`: which task and which demo database.
    progress : bool
        Show download progress bars.

    Returns
    -------
    list of Path
        The three files, as :func:`find_source_files` returns them.

    Raises
    ------
    ParameterError
        For an unknown ``cohort``.
    DataError
        One line, when a download fails or a file does not match its checksum (it is removed).

    Examples
    --------
    >>> fetch_demo(Path("data/yaib_demo/mortality24/eicu_demo"))  # doctest: +SKIP
    [PosixPath('data/yaib_demo/mortality24/eicu_demo/dyn.parquet'), ...]
    """
    if cohort not in DEMO_COHORTS:
        raise ParameterError(f"no YAIB demo cohort {cohort!r}; choose one of: {', '.join(DEMO_COHORTS)}")
    data_dir = Path(data_dir)
    for name in FILES:
        if not (data_dir / name).is_file():
            size, sha256 = DEMO_FILES[f"{cohort}/{name}"]
            download_file(f"{DEMO_BASE_URL}{cohort}/{name}", data_dir / name, progress=progress,
                          sha256=sha256, size=size)
    return find_source_files(data_dir)


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors subclass these
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); rebuild or re-copy the file") from None
    if "stay_id" not in frame.columns:
        raise DataError(f"{path} has no stay_id column; is it a YAIB cohort file?")
    ids = pd.to_numeric(frame["stay_id"], errors="coerce").to_numpy(dtype=float)
    # stay_ids become int64: a missing, fractional or huge one would be truncated onto another stay
    bad = ~(np.isfinite(ids) & (ids == np.floor(ids)) & (np.abs(ids) < 2 ** 53))
    if bad.any():
        raise DataError(f"{path}: stay_id {frame['stay_id'][bad].iloc[0]!r} (row {int(np.argmax(bad))}) is not a whole "
                        "number; rebuild the cohort with YAIB/ricu")
    frame["stay_id"] = ids.astype(np.int64)
    return frame


def load(data_dir: Path | None, task: str = DEFAULT_TASK, *, hours: int | None = None,
         progress: bool = True) -> Cohort:
    """Read a YAIB cohort folder into a Cohort on an hourly grid.

    Parameters
    ----------
    data_dir : path
        Folder holding dyn.parquet, sta.parquet and outc.parquet.
    task : {"mortality24", "aki", "sepsis"}
        How to read the labels (see the module notes); it must match the cohort's task.
    hours : int, optional
        Window length T in hours; default: the largest ``time`` in dyn.
    progress : bool
        Accepted for the registry's uniform interface; reading three parquet files shows no bar.

    Examples
    --------
    >>> c = load(Path("../shared/data/yaib_demo/mortality24/eicu_demo")); c.shape, int(c.y.sum())  # doctest: +SKIP
    ((1367, 24, 48), 70)
    """
    if task not in TASKS:
        raise ParameterError(f"yaib has no task {task!r}; its tasks are: {', '.join(TASKS)}")
    if hours is not None and (int(hours) != hours or hours < 1):
        raise ParameterError(f"hours must be a positive whole number of hours, got {hours!r}")
    dyn_path, sta_path, outc_path = find_source_files(Path("data/yaib") if data_dir is None else Path(data_dir))
    dyn, sta, outc = _read(dyn_path), _read(sta_path), _read(outc_path)
    _refuse_repeats(sta, ["stay_id"], sta_path)
    _refuse_repeats(outc, ["stay_id", "time"] if "time" in outc.columns else ["stay_id"], outc_path)

    labels = _stay_labels(outc, task, outc_path)
    if "time" not in dyn.columns:
        raise DataError(f"{dyn_path} has no time column; is it a YAIB dyn file?")
    hour = _hours(dyn["time"], dyn_path)
    _refuse_repeats(dyn, ["stay_id", "time"], dyn_path)
    timed = hour[~np.isnan(hour)]  # every time missing: no window to infer (nanmax would give NaN)
    T = int(hours) if hours is not None else int(timed.max()) if timed.size else 0
    if T < 1:
        raise DataError(f"{dyn_path} covers no whole hour; pass hours=... or check the file")
    features = [c for c in dyn.columns if c not in ("stay_id", "time") and pd.api.types.is_numeric_dtype(dyn[c])]
    if not features:
        raise DataError(f"{dyn_path} has no numeric feature columns")

    stay_ids = np.array(sorted(set(dyn["stay_id"].tolist()) & set(labels.index.tolist())), dtype=np.int64)
    info: dict = {
        "source": dyn_path.parent.name, "n_hours": T, "step_minutes": 60,
        "dropped_no_timeseries": int(len(set(labels.index.tolist()) - set(dyn["stay_id"].tolist()))),
        "dropped_no_label": int(len(set(dyn["stay_id"].tolist()) - set(labels.index.tolist()))),
        "label_rule": "any positive hour" if task in HOURLY_TASKS else "per-stay label",
    }
    inside = (hour >= 0) & (hour < T)  # False for a missing time (NaN)
    info["rows_after_window"] = int((hour >= T).sum())
    info["rows_before_window"] = int((hour < 0).sum())
    info["rows_without_time"] = int(np.isnan(hour).sum())
    row = pd.Series(np.arange(len(stay_ids)), index=stay_ids).reindex(dyn["stay_id"].to_numpy()).to_numpy()
    inside &= ~np.isnan(row)
    cells = dyn.loc[inside, features].astype(np.float64)
    values = cells.to_numpy()
    huge = np.isinf(values) | (np.abs(np.nan_to_num(values)) > np.finfo(np.float32).max)
    if huge.any():  # inf, or inf once stored as float32: refused like any non-finite value
        r, c = np.argwhere(huge)[0]
        raise DataError(f"{dyn_path}: {features[c]} = {values[r, c]!r} for stay_id {dyn['stay_id'][inside].iloc[r]} "
                        "is not a finite float32 number; fix or remove the value")
    cells.columns = range(len(features))
    cells["_row"], cells["_hour"] = row[inside].astype(np.int64), hour[inside].astype(np.int64)
    # (stay, hour) is unique (checked above), so this only reshapes; mean() keeps it safe regardless.
    cells = cells.groupby(["_row", "_hour"], sort=False).mean()
    X = np.full((len(stay_ids), T, len(features)), np.nan, dtype=np.float32)
    X[cells.index.get_level_values(0), cells.index.get_level_values(1)] = cells.to_numpy(dtype=np.float32)

    sta = sta.set_index("stay_id").reindex(stay_ids)
    sex = sta["sex"] if "sex" in sta.columns else pd.Series(None, index=stay_ids, dtype=object)
    static = pd.DataFrame({
        "age": pd.to_numeric(sta.get("age", pd.Series(np.nan, index=stay_ids)), errors="coerce").to_numpy(float),
        "sex": pd.Series([{"female": "F", "f": "F", "male": "M", "m": "M"}.get(str(s).lower()) for s in sex], dtype=object),
        "height": pd.to_numeric(sta.get("height", pd.Series(np.nan, index=stay_ids)), errors="coerce").to_numpy(float),
        "weight": pd.to_numeric(sta.get("weight", pd.Series(np.nan, index=stay_ids)), errors="coerce").to_numpy(float),
    })
    return Cohort(
        X=X, mask=~np.isnan(X), y=labels.reindex(stay_ids).to_numpy(dtype=np.int64),
        features=list(features), units=[UNITS.get(f, "") for f in features], stay_ids=stay_ids, static=static,
        dataset="yaib", task=task, step_minutes=60, info=info,
    )


def _refuse_repeats(frame: pd.DataFrame, keys: list[str], path: Path) -> None:
    """Raise :class:`DataError` naming the first stay whose ``keys`` appear on two rows of ``frame``."""
    repeated = frame.duplicated(keys, keep=False) & frame[keys].notna().all(axis=1)
    if repeated.any():
        first = frame.loc[repeated, keys].iloc[0]
        at = f" at time {first['time']}" if "time" in keys else ""
        raise DataError(
            f"{path}: stay_id {first['stay_id']} is listed twice{at} ({int(repeated.sum())} repeated rows); "
            "a stay must appear once: rebuild the cohort with YAIB/ricu or remove the copies"
        )


def _hours(time: pd.Series, path: Path) -> np.ndarray:
    """Row times as whole hours (float; NaN where missing)."""
    if pd.api.types.is_timedelta64_dtype(time):
        hours = time.dt.total_seconds().to_numpy(dtype=float) / 3600.0
    elif pd.api.types.is_numeric_dtype(time):
        hours = time.to_numpy(dtype=float)  # already in hours
    else:
        raise DataError(f"{path}: time must be a timedelta (or hours as numbers), found {time.dtype}")
    finite = hours[~np.isnan(hours)]
    if np.any(finite != np.floor(finite)):
        raise DataError(f"{path}: times are not on an hourly grid; resample the cohort to 1 h in YAIB/ricu")
    return hours


def _stay_labels(outc: pd.DataFrame, task: str, path: Path) -> pd.Series:
    """One 0/1 label per stay (int), indexed by stay_id."""
    if "label" not in outc.columns:
        raise DataError(f"{path} has no label column; is it a YAIB outcome file?")
    label = outc["label"]
    if pd.api.types.is_bool_dtype(label):
        label = label.astype(np.int64)
    label = pd.to_numeric(label, errors="coerce")
    bad = label.notna() & ~label.isin((0, 1))
    if bad.any():
        raise DataError(
            f"{path}: labels must be binary (0/1), found e.g. {float(label[bad].iloc[0]):g}; task {task!r} needs a "
            "binary outcome (a regression task such as los or kidney_function is not supported)"
        )
    per_stay = pd.DataFrame({"stay_id": outc["stay_id"].to_numpy(), "label": label.to_numpy()}).dropna()
    grouped = per_stay.groupby("stay_id")["label"]
    if task in HOURLY_TASKS:
        return grouped.max().astype(np.int64)
    if (grouped.nunique() > 1).any() or ("time" in outc.columns and grouped.size().max() > 1):
        raise DataError(
            f"{path} has hourly labels; load it with task='aki' or 'sepsis' (any positive hour), not {task!r}"
        )
    return grouped.first().astype(np.int64)
