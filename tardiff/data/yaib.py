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
  Labels other than 0/1 (or booleans) raise :class:`DataError`.
- Stays without rows in ``dyn`` or without a label are dropped and counted in ``info``.
- A stay listed twice is refused with a one-line :class:`DataError` naming it: the same
  ``stay_id`` on two rows of ``sta`` (or of ``outc`` for a per-stay task), or the same
  (``stay_id``, ``time``) on two rows of ``dyn`` (or of an hourly ``outc``). ricu writes one
  row per stay and hour, so a repeat means two cohorts were concatenated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.data.cohort import Cohort
from tardiff.errors import DataError, ParameterError

TASKS = ("mortality24", "aki", "sepsis")
DEFAULT_TASK = "mortality24"
FILES = ("dyn.parquet", "sta.parquet", "outc.parquet")
HOURLY_TASKS = ("aki", "sepsis")

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


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors subclass these
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); rebuild or re-copy the file") from None
    if "stay_id" not in frame.columns:
        raise DataError(f"{path} has no stay_id column; is it a YAIB cohort file?")
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
    T = int(hours) if hours is not None else int(np.nanmax(hour)) if len(hour) else 0
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
