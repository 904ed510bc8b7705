"""eICU-CRD v2.0 in the TarDiff paper's setting: first 24 h, 5-minute HR, RR and SpO2.

Reads the raw ``patient`` and ``vitalPeriodic`` tables (``.csv`` or ``.csv.gz``, any case
of file name, the official lower-case column names). Access is credentialed:
https://physionet.org/content/eicu-crd/2.0/.

The cohort
----------
- One sample per unit stay (``patientunitstayid``), 288 five-minute steps over the first
  24 h: a row of vitalPeriodic at ``observationoffset`` = m minutes from unit admission
  falls in bin ``floor(m / 5)`` for 0 <= m < 1440 (rows before admission or later are
  ignored); several values in one bin are averaged.
- Features ``HR`` (``heartrate``), ``RR`` (``respiration``), ``SpO2`` (``sao2``). Values
  outside these inclusive ranges are dropped: HR 1-300 bpm, RR 1-100 /min, SpO2 1-100 %
  (0 is the monitors' placeholder).
- Static covariates: ``age`` (years; eICU writes ages above 89 as "> 89", read as 90),
  ``sex`` ("F"/"M"; "Unknown", "Other" and blanks are None), and ``unittype`` and
  ``hospitalid`` when present.
- Tasks: ``mortality`` (``hospitaldischargestatus == "Expired"``; stays with a blank status
  are dropped and counted in ``info["dropped_unknown_label"]``) and ``los3``
  (``unitdischargeoffset`` > 3 x 24 x 60 minutes).
- Stays with no vital sign in the window are dropped (``info["dropped_no_vitals"]``).
- A ``patientunitstayid`` listed twice in ``patient`` is refused with a one-line
  :class:`DataError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from tardiff.data.cohort import Cohort
from tardiff.data.mimic3 import read_table, require_columns
from tardiff.data.sources import table_finder
from tardiff.errors import DataError, ParameterError

TASKS = ("mortality", "los3")
DEFAULT_TASK = "mortality"
TABLES = ("patient", "vitalPeriodic")
STEP_MINUTES = 5
WINDOW_MINUTES = 24 * 60
N_STEPS = WINDOW_MINUTES // STEP_MINUTES  # 288
FEATURES = ["HR", "RR", "SpO2"]
UNITS = ["bpm", "breaths/min", "%"]
COLUMNS = {"HR": "heartrate", "RR": "respiration", "SpO2": "sao2"}
#: Inclusive valid ranges; values outside are dropped.
VALID_RANGES: dict[str, tuple[float, float]] = {"HR": (1, 300), "RR": (1, 100), "SpO2": (1, 100)}
CHUNK_ROWS = 5_000_000
PATIENT_COLUMNS = ["patientunitstayid", "gender", "age", "unitdischargeoffset", "hospitaldischargestatus"]


#: The patient and vitalPeriodic tables in ``data_dir``, or a one-line DataError naming the missing ones.
find_source_files = table_finder(
    TABLES, database="eICU", module=__name__,
    folder="the folder of the eICU-CRD v2.0 CSV files (credentialed access on PhysioNet)",
)


def parse_age(values: pd.Series) -> np.ndarray:
    """eICU ages (strings, "> 89" for the oldest, blank when unknown) in years.

    Examples
    --------
    >>> parse_age(pd.Series(["45", "> 89", "", None])).tolist()
    [45.0, 90.0, nan, nan]
    """
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    age = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, copy=True)
    age[text.str.startswith(">").to_numpy()] = 90.0
    return age


def load(data_dir: Path | None, task: str = DEFAULT_TASK, *, progress: bool = True,
         chunk_rows: int = CHUNK_ROWS) -> Cohort:
    """Build the 288 x 3 (5-minute HR, RR, SpO2) cohort for ``task`` from raw eICU tables.

    Parameters
    ----------
    data_dir : path
        Folder with patient.csv(.gz) and vitalPeriodic.csv(.gz).
    task : {"mortality", "los3"}
    progress : bool
        Show a progress bar while vitalPeriodic is read.
    chunk_rows : int
        Rows of vitalPeriodic per chunk.

    Examples
    --------
    >>> load(Path("data/eicu"), "mortality", progress=False).shape[1:]  # doctest: +SKIP
    (288, 3)
    """
    if task not in TASKS:
        raise ParameterError(f"eicu has no task {task!r}; its tasks are: {', '.join(TASKS)}")
    patient_path, vital_path = find_source_files(Path("data/eicu") if data_dir is None else Path(data_dir))
    optional = ["unittype", "hospitalid"]
    patients = read_table(patient_path, PATIENT_COLUMNS + optional, PATIENT_COLUMNS, dtype=str, keep_default_na=False)
    stay_ids = pd.to_numeric(patients["patientunitstayid"], errors="coerce")
    if stay_ids.isna().any() or (stay_ids != stay_ids.round()).any():
        raise DataError(f"{patient_path}: patientunitstayid must be whole numbers; check the file")
    repeated = stay_ids.duplicated()
    if repeated.any():
        raise DataError(
            f"{patient_path}: patientunitstayid {int(stay_ids[repeated].iloc[0])} is listed twice "
            f"({int(repeated.sum())} repeated ids); a stay must appear once: use the unmodified patient table"
        )
    patients = patients.assign(patientunitstayid=stay_ids.astype(np.int64)).sort_values(
        "patientunitstayid", kind="stable").reset_index(drop=True)
    ids = patients["patientunitstayid"].to_numpy(dtype=np.int64)

    X = _vital_grid(vital_path, ids, progress=progress, chunk_rows=chunk_rows)

    if task == "mortality":
        status = patients["hospitaldischargestatus"].str.strip().str.lower()
        label = np.select([status == "expired", status == "alive"], [1.0, 0.0], default=np.nan)
    else:
        offset = pd.to_numeric(patients["unitdischargeoffset"], errors="coerce").to_numpy(dtype=float)
        label = np.where(np.isnan(offset), np.nan, (offset > 3 * WINDOW_MINUTES).astype(float))
    has_vitals = ~np.isnan(X).all(axis=(1, 2))
    known = ~np.isnan(label)
    keep = has_vitals & known
    info = {"n_stays": len(ids), "step_minutes": STEP_MINUTES, "n_steps": N_STEPS, "bin_aggregate": "mean",
            "dropped_no_vitals": int((~has_vitals).sum()), "dropped_unknown_label": int((has_vitals & ~known).sum())}

    gender = patients["gender"].str.strip().str.lower()
    static = pd.DataFrame({
        "age": parse_age(patients["age"]),
        "sex": pd.Series([{"female": "F", "male": "M"}.get(g) for g in gender], dtype=object),
    })
    for col in optional:
        if col in patients.columns:
            static[col] = patients[col].astype(object).to_numpy()
    X = X[keep]
    return Cohort(
        X=X, mask=~np.isnan(X), y=label[keep].astype(np.int64), features=list(FEATURES), units=list(UNITS),
        stay_ids=ids[keep], static=static[keep].reset_index(drop=True), dataset="eicu", task=task,
        step_minutes=STEP_MINUTES, info=info,
    )


def _vital_grid(path: Path, stay_ids: np.ndarray, *, progress: bool, chunk_rows: int) -> np.ndarray:
    """Mean of each vital per stay and 5-minute bin over the first 24 h, NaN where none."""
    n_feat = len(FEATURES)
    position = pd.Series(np.arange(len(stay_ids)), index=stay_ids)
    size = len(stay_ids) * N_STEPS * n_feat
    sums = np.zeros(size)
    counts = np.zeros(size)
    columns = ["patientunitstayid", "observationoffset", *COLUMNS.values()]
    reader = read_table(path, columns, dtype={c: "float64" for c in columns}, chunksize=chunk_rows)
    with tqdm(desc=path.name, unit=" rows", unit_scale=True, disable=not progress, leave=False) as bar:
        try:
            for chunk in reader:
                bar.update(len(chunk))
                chunk.columns = [c.strip().lower() for c in chunk.columns]
                require_columns(chunk.columns, columns, path)
                offset = chunk["observationoffset"].to_numpy(dtype=float)
                row = position.reindex(chunk["patientunitstayid"].to_numpy()).to_numpy()
                ok = (offset >= 0) & (offset < WINDOW_MINUTES) & ~np.isnan(row)
                if not ok.any():
                    continue
                base = (row[ok].astype(np.int64) * N_STEPS + (offset[ok] // STEP_MINUTES).astype(np.int64)) * n_feat
                for f, name in enumerate(FEATURES):
                    value = chunk[COLUMNS[name]].to_numpy(dtype=float)[ok]
                    lo, hi = VALID_RANGES[name]
                    valid = (value >= lo) & (value <= hi)  # False for NaN
                    sums += np.bincount(base[valid] + f, weights=value[valid], minlength=size)
                    counts += np.bincount(base[valid] + f, minlength=size)
        except (OSError, EOFError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); check or re-download the file") from None
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).reshape(len(stay_ids), N_STEPS, n_feat).astype(np.float32)
