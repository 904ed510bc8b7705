"""PhysioNet/Computing in Cardiology Challenge 2012, read from the files as published.

Source: https://physionet.org/content/challenge-2012/1.0.0/ (ODC-By 1.0; cite Silva et al.,
Comput Cardiol 2012;39:245-248). Each set (``set-a.tar.gz``, ``set-b.tar.gz``,
``set-c.tar.gz``) holds one ``RecordID.txt`` per ICU stay in long format
``Time,Parameter,Value`` with times ``HH:MM`` from 00:00 to 48:00; ``Outcomes-<set>.txt``
holds RecordID, SAPS-I, SOFA, Length_of_stay, Survival and In-hospital_death.

The cohort
----------
- Grid: 48 hourly steps. A value at minute ``m`` falls into bin ``floor(m / 60)``; the
  end point 48:00 goes into the last bin (47). Several values of one parameter in one bin
  are averaged (the mean; for ``Urine`` that is the mean of the outputs charted in the hour).
- Features (:data:`FEATURES`, with :data:`UNITS`): the 36 time-only parameters plus
  ``Weight``, in the order of the challenge's parameter list.
- Static covariates (``Cohort.static``): ``age`` (years), ``sex`` ("F"/"M"; Gender 0 is
  female, 1 male), ``height`` (cm), ``icu_type`` (1 coronary care, 2 cardiac surgery
  recovery, 3 medical, 4 surgical), ``weight`` (kg) from the time-00:00 descriptors, and
  ``set``. -1 in a descriptor means unknown and becomes NaN / None.
- The first ``Weight`` line at 00:00 is the admission descriptor (static ``weight``); every
  other ``Weight`` line is a measurement on the grid.
- Tasks: ``mortality`` (In-hospital_death) and ``los3`` (Length_of_stay > 3 days; this is
  the length of the hospital stay counted from ICU admission, so most stays are positive).
  Records whose Length_of_stay is -1 (unknown; 105 of the kept records of sets A and B)
  are dropped from ``los3`` and counted in ``info["dropped_unknown_label"]``; 94.6% of
  the rest stayed longer than 3 days.
- Records with no time-series value (only descriptors; 3 in set A, 7 in set B) are
  dropped and counted in ``info["dropped_no_timeseries"]``. Sets A+B give 7,990 stays with
  1,122 in-hospital deaths (14.0%).
- Sets: ``sets="ab"`` (the default) reads sets A and B; ``"a"`` reads set A alone (a
  folder holding only set A is usable that way); ``"abc"`` adds set C.

Refused, never guessed (a one-line :class:`DataError` naming the file, the line and the
RecordID): a time that is not ``HH:MM`` with minutes below 60, a negative time, a time after
48:00 (the published sets A and B have none, so such a line means an edited or different
file, and binning it would put values in the wrong hour), a value that is not a finite number
(``nan``, ``inf``) or lies beyond float32's range (``1e39`` would become inf in the cohort), a
RecordID that is not a whole number in 0..2^53 - 1 (larger ones cannot be told apart once read
as numbers) or is seen twice (in one archive or in two sets), a byte-order mark at the start of
a file (the published files have none; the message names it), and in ``Outcomes-<set>.txt``
an ``In-hospital_death`` other than exactly 0 or 1 (``0.9`` or ``2`` is an edited file, not a
label to round or drop) or a ``Length_of_stay`` that is not a whole number of days or -1.

Dropped with a :class:`~tardiff.errors.DataWarning` naming counts and examples: lines whose
parameter is none of the challenge's 41 names (``Foo``, ``hr``, `` HR``). The published sets A
and B have none; such lines are most likely a misspelt name, whose values the warning makes
visible, while refusing would make a file with one extra variable (a newer release) unusable.
Their count is ``info["unknown_parameters"]`` and the first few are in
``info["unknown_parameter_examples"]``.

Known quirks of the published values, handled as follows (values so removed are counted in ``info``):

- A value <= 0 is a placeholder, not a measurement, for every parameter except ``Urine``
  (0 mL output is real), so it is treated as missing (e.g. HR 0, DiasABP 0, Weight -1).
- ``Temp`` below 25 degC (e.g. -17.8, 2.3: mis-entries) is missing.
- ``pH`` above 14 was charted without its decimal point (735 for 7.35): it is divided by
  100 when that lands in 6.5-8.0 and is missing otherwise.
- ``Weight`` outside 25-300 kg and ``Height`` outside 100-250 cm (inches entered as cm,
  digits dropped) are missing.

Parsing streams the archives with :mod:`tarfile` and parses with plain Python and numpy
(about 5 s of CPU time for sets A and B).
"""

from __future__ import annotations

import csv
import io
import tarfile
import warnings
import zlib
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from tqdm import tqdm

from tardiff.data.cohort import Cohort
from tardiff.data.download import download_file
from tardiff.errors import DataError, DataWarning, ParameterError

TASKS = ("mortality", "los3")
DEFAULT_TASK = "mortality"
BASE_URL = "https://physionet.org/files/challenge-2012/1.0.0/"
ALL_SETS = ("a", "b", "c")
DEFAULT_SETS = ("a", "b")
#: Size and SHA-256 of the challenge's files as PhysioNet serves them, checked after download.
#: Taken from a copy of sets A and B; set C's files are not listed, so they are downloaded
#: unchecked (a truncated or damaged archive then fails when it is parsed).
FILES: dict[str, tuple[int, str]] = {
    "set-a.tar.gz": (6610184, "5e4b3896a796169d576292570866f39a9042ae4875b5c46148d330bd650294b0"),
    "Outcomes-a.txt": (79219, "2613ea60ccda29f87571a7d6b09ad130858a8ccd66325bd073365925026883c2"),
    "set-b.tar.gz": (6630329, "5fefa0389dfcd00f419e8013327321ca7214b67e6f0928026b859613048c2c33"),
    "Outcomes-b.txt": (79149, "1305f29734da374a809483229a99f33a9230aa8d4fa74b1a2d6ad788136423d5"),
}
#: Loader options that choose which source files are read (the registry checks those files).
SOURCE_OPTIONS = ("sets",)
N_HOURS = 48

#: Time-series parameters in the order of the challenge's list, with their units.
PARAMETERS: dict[str, str] = {
    "Albumin": "g/dL", "ALP": "IU/L", "ALT": "IU/L", "AST": "IU/L", "Bilirubin": "mg/dL",
    "BUN": "mg/dL", "Cholesterol": "mg/dL", "Creatinine": "mg/dL", "DiasABP": "mmHg",
    "FiO2": "fraction (0-1)", "GCS": "points (3-15)", "Glucose": "mg/dL", "HCO3": "mmol/L",
    "HCT": "%", "HR": "bpm", "K": "mEq/L", "Lactate": "mmol/L", "Mg": "mmol/L", "MAP": "mmHg",
    "MechVent": "0/1", "Na": "mEq/L", "NIDiasABP": "mmHg", "NIMAP": "mmHg", "NISysABP": "mmHg",
    "PaCO2": "mmHg", "PaO2": "mmHg", "pH": "pH units", "Platelets": "cells/nL",
    "RespRate": "breaths/min", "SaO2": "%", "SysABP": "mmHg", "Temp": "degC",
    "TroponinI": "ug/L", "TroponinT": "ug/L", "Urine": "mL", "WBC": "cells/nL", "Weight": "kg",
}
FEATURES: list[str] = list(PARAMETERS)
UNITS: list[str] = list(PARAMETERS.values())
DESCRIPTORS = ("RecordID", "Age", "Gender", "Height", "ICUType")  # plus the first Weight at 00:00

_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}
_HEADER = "Time,Parameter,Value"
_BOM = "\ufeff"
#: The largest magnitude a value may have: the cohort holds float32, where more is inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: RecordIDs are read as numbers (the ``Value`` column); above 2^53 two ids can share one float.
MAX_RECORD_ID = 2 ** 53 - 1
#: How many unknown parameter names the warning and ``info`` quote.
N_EXAMPLES = 3
# Every valid time stamp, 00:00 to 48:00, and its minute. Looking the text up is both the
# fastest parse and the strictest check: "-01:30", "00:75", "49:00" or "7:05" are not keys.
_MINUTE_OF: dict[str, int] = {
    f"{m // 60:02d}:{m % 60:02d}": m for m in range(N_HOURS * 60 + 1)
}


def source_files(data_dir: Path, sets: Iterable[str] | str = DEFAULT_SETS) -> list[Path]:
    """The archive and outcome file of each set, present or not (no checks of the files)."""
    data_dir = Path(data_dir)
    out = []
    for s in _check_sets(sets):
        out += [data_dir / f"set-{s}.tar.gz", data_dir / f"Outcomes-{s}.txt"]
    return out


def sets_found(data_dir: Path) -> tuple[str, ...]:
    """The sets whose archive and outcomes file are both in ``data_dir`` (possibly none).

    Examples
    --------
    >>> sets_found(Path("../shared/data/physionet2012"))  # doctest: +SKIP
    ('a', 'b')
    """
    return tuple(s for s in ALL_SETS if all(p.is_file() for p in source_files(data_dir, [s])))


def find_source_files(data_dir: Path, sets: Iterable[str] | str = DEFAULT_SETS) -> list[Path]:
    """The archive and outcomes file of each of ``sets`` in ``data_dir``.

    Never downloads. Raises :class:`DataError` when a file of a requested set is absent,
    saying which sets the folder does hold.

    Examples
    --------
    >>> find_source_files(Path("data/physionet2012"), sets="a")  # doctest: +SKIP
    [PosixPath('data/physionet2012/set-a.tar.gz'), PosixPath('data/physionet2012/Outcomes-a.txt')]
    """
    sets = _check_sets(sets)
    data_dir = Path(data_dir)
    paths = source_files(data_dir, sets)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        have = sets_found(data_dir)
        letters = "".join(have)
        found = (f"it holds only set{'s' if len(have) > 1 else ''} {', '.join(have)}: pass sets={letters!r} "
                 f"(--sets {letters}) or add " if have else "expected ")
        raise DataError(
            f"no PhysioNet 2012 data in {data_dir} for sets {', '.join(sets)}: {found}{', '.join(missing)}; run "
            "`tardiff data physionet2012` to download them into the default folder or pass --data-dir to the "
            "folder holding them"
        )
    return paths


def fetch(data_dir: Path, sets: Iterable[str] = DEFAULT_SETS, *, progress: bool = True) -> list[Path]:
    """Download the missing files of ``sets`` from PhysioNet into ``data_dir``.

    Examples
    --------
    >>> fetch(Path("data/physionet2012"), sets=("a",))  # doctest: +SKIP
    [PosixPath('data/physionet2012/set-a.tar.gz'), PosixPath('data/physionet2012/Outcomes-a.txt')]
    """
    paths = source_files(data_dir, _check_sets(sets))
    for path in paths:
        if not path.is_file():
            size, sha256 = FILES.get(path.name, (None, None))
            download_file(BASE_URL + path.name, path, progress=progress, sha256=sha256, size=size)
    return paths


def load(
    data_dir: Path | None, task: str = DEFAULT_TASK, *, sets: Iterable[str] | str = DEFAULT_SETS,
    download: bool | None = None, progress: bool = True,
) -> Cohort:
    """Parse the requested sets into a 48-hour cohort for ``task``.

    Parameters
    ----------
    data_dir : path or None
        Folder with ``set-<s>.tar.gz`` and ``Outcomes-<s>.txt``; None means the default
        folder (``$TARDIFF_DATA_DIR/physionet2012`` or ``data/physionet2012``).
    task : {"mortality", "los3"}
    sets : iterable of "a", "b", "c" (or a string such as "ab")
        The sets to use, in this order.
    download : bool or None
        Fetch missing files from PhysioNet first (resumable). None (the default) downloads
        only into the default folder; a folder the caller names is read, never filled,
        unless ``download=True``. False never downloads.
    progress : bool
        Show progress bars (downloads and archive reading).

    Examples
    --------
    >>> load(Path("../shared/data/physionet2012"), "mortality", sets="a", download=False).shape  # doctest: +SKIP
    (3997, 48, 37)
    """
    if task not in TASKS:
        raise ParameterError(f"physionet2012 has no task {task!r}; its tasks are: {', '.join(TASKS)}")
    sets = _check_sets(sets)
    if download is None:
        download = data_dir is None
    if data_dir is None:
        from tardiff.data.registry import resolve_data_dir  # the registry imports loaders lazily: no cycle

        data_dir = resolve_data_dir("physionet2012")
    data_dir = Path(data_dir)
    if download:
        fetch(data_dir, sets, progress=progress)  # only what is missing
    find_source_files(data_dir, sets)  # a one-line error naming what is absent

    info: dict = {"sets": list(sets), "step_minutes": 60, "n_hours": N_HOURS, "bin_aggregate": "mean"}
    parts = []
    for s in sets:
        parts.append(_load_set(data_dir, s, progress=progress, info=info))
    ids = np.concatenate([p[0] for p in parts])
    _refuse_shared_ids(sets, [p[0] for p in parts])
    X = np.concatenate([p[1] for p in parts])
    static = pd.concat([p[2] for p in parts], ignore_index=True)
    outcomes = pd.concat([p[3] for p in parts], ignore_index=True)

    has_series = ~np.isnan(X).all(axis=(1, 2))
    info["dropped_no_timeseries"] = int((~has_series).sum())
    if task == "mortality":
        y = outcomes["In-hospital_death"].to_numpy()
        known = np.isin(y, (0, 1))  # always, since _read_outcomes refuses any other value
    else:
        los = outcomes["Length_of_stay"].to_numpy()
        known = los >= 0
        y = (los > 3).astype(np.int64)
    info["dropped_unknown_label"] = int((has_series & ~known).sum())
    if info.get("unknown_parameters"):
        warnings.warn(
            f"skipped {info['unknown_parameters']} lines whose parameter is not one of the challenge's 41 names, e.g. "
            f"{', '.join(info['unknown_parameter_examples'])}; fix the names (they are case- and space-sensitive) or "
            "download the data again", DataWarning, stacklevel=2)
    keep = has_series & known
    X, ids, y = X[keep], ids[keep], y[keep].astype(np.int64)
    static = static[keep].reset_index(drop=True)
    return Cohort(
        X=X, mask=~np.isnan(X), y=y, features=list(FEATURES), units=list(UNITS), stay_ids=ids, static=static,
        dataset="physionet2012", task=task, step_minutes=60, info=info,
    )


def _check_sets(sets: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(sets, str):
        sets = sets.replace(",", " ").split() if ("," in sets or " " in sets) else list(sets)
    sets = tuple(str(s).strip().lower() for s in sets)
    bad = [s for s in sets if s not in ALL_SETS]
    if not sets or bad or len(set(sets)) != len(sets):
        raise ParameterError(f"sets must be distinct letters among a, b, c (e.g. sets=('a', 'b')), got {sets!r}")
    return sets


def _refuse_shared_ids(sets: tuple[str, ...], ids: list[np.ndarray]) -> None:
    """Raise when one RecordID is in two sets: the same stay twice would leak across splits."""
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            shared = np.intersect1d(ids[i], ids[j])
            if len(shared):
                raise DataError(
                    f"RecordID {int(shared[0])} is in both set-{sets[i]}.tar.gz and set-{sets[j]}.tar.gz "
                    f"({len(shared)} shared RecordIDs); a stay must be in one set only: use the archives as published"
                )


def _load_set(data_dir: Path, s: str, *, progress: bool, info: dict):
    """Parse one set: (record ids, X, static frame, outcomes frame), in RecordID order."""
    archive = data_dir / f"set-{s}.tar.gz"
    ids, X, static, counts = _parse_archive(archive, progress=progress)
    for key, value in counts.items():
        if isinstance(value, list):  # the examples of unknown parameters: the first few over all sets
            info[key] = (info.get(key, []) + value)[:N_EXAMPLES]
        else:
            info[key] = info.get(key, 0) + value
    outcomes = _read_outcomes(data_dir / f"Outcomes-{s}.txt")
    missing = ~np.isin(ids, outcomes.index.to_numpy())
    if missing.any():
        raise DataError(
            f"Outcomes-{s}.txt has no outcome for {int(missing.sum())} of the {len(ids)} records in {archive.name} "
            f"(e.g. RecordID {int(ids[missing][0])}); use the Outcomes file published with set {s}"
        )
    static["set"] = s
    return ids, X, static, outcomes.loc[ids].reset_index()


def _read_outcomes(path: Path) -> pd.DataFrame:
    """Outcomes-<s>.txt as a frame indexed by RecordID; a one-line :class:`DataError` for any bad row.

    Every row is checked, and the message names the file, the line and the RecordID: labels
    exactly 0 or 1, Length_of_stay a whole number of days or -1 (unknown).
    """
    needed = ("RecordID", "Length_of_stay", "In-hospital_death")
    fix = "use the file as published (download it again)"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path} is not a PhysioNet 2012 outcomes file ({type(exc).__name__}: {exc}); {fix}") from None
    if rows and rows[0] and rows[0][0].startswith(_BOM):
        raise DataError(f"{path} starts with a UTF-8 byte-order mark (BOM), which the published file does not have; "
                        "save it without a BOM or download it again")
    header = [h.strip() for h in rows[0]] if rows else []
    absent = [c for c in needed if c not in header]
    if absent:
        raise DataError(f"{path} is not a PhysioNet 2012 outcomes file: its header lacks {', '.join(absent)} "
                        f"(expected RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death); {fix}")
    cols = [header.index(c) for c in needed]
    table = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        rid = row[cols[0]].strip() if len(row) > cols[0] else "?"
        where = f"{path.name} line {lineno} (RecordID {rid})"
        if len(row) < len(header):
            raise DataError(f"{where} has {len(row)} fields, the header {len(header)}; {fix}")
        values = []
        for name, c in zip(needed, cols):
            try:
                value = float(row[c])
            except ValueError:
                raise DataError(f"{where}: {name} {row[c]!r} is not a number; {fix}") from None
            if not np.isfinite(value):
                raise DataError(f"{where}: {name} {row[c]!r} is not a finite number; {fix}")
            values.append(value)
        record_id, los, death = values
        if record_id != int(record_id) or not 0 <= record_id <= MAX_RECORD_ID:
            raise DataError(f"{where}: RecordID {row[cols[0]]!r} is not a whole number in 0..{MAX_RECORD_ID}; {fix}")
        if death not in (0.0, 1.0):
            raise DataError(f"{where}: In-hospital_death {row[cols[2]]!r} is not 0 or 1; {fix}")
        if los != int(los) or los < -1:
            raise DataError(f"{where}: Length_of_stay {row[cols[1]]!r} is not a whole number of days or -1 "
                            f"(unknown); {fix}")
        table.append((int(record_id), int(los), int(death)))
    frame = pd.DataFrame(np.array(table, dtype=np.int64).reshape(-1, len(needed)), columns=list(needed))
    frame = frame.set_index("RecordID")
    if frame.index.duplicated().any():
        raise DataError(f"{path} lists RecordID {frame.index[frame.index.duplicated()][0]} twice; download it again")
    return frame


def _parse_archive(archive: Path, *, progress: bool):
    """Stream ``archive`` and bin every record onto the hourly grid."""
    n_feat = len(FEATURES)
    ids: list[int] = []
    statics: list[tuple] = []
    flat_index: list[int] = []  # (record * 48 + bin) * F + feature
    values: list[float] = []
    counts = {"unknown_parameters": 0}
    unknown: list[tuple[str, int]] = []  # (parameter, line) of the first unknown names, for the warning
    member_of: dict[int, str] = {}  # RecordID -> archive member, to name both files of a duplicate
    try:
        with tarfile.open(archive, "r:gz") as tar, tqdm(
            desc=archive.name, unit=" records", disable=not progress, leave=False
        ) as bar:
            for member in tar:
                if not (member.isfile() and member.name.endswith(".txt")):
                    continue
                text = tar.extractfile(member).read().decode("utf-8", errors="replace")
                record = len(ids)
                try:
                    n_known = len(unknown)
                    rid, desc = _parse_record(text, record * N_HOURS * n_feat, flat_index, values, counts, unknown)
                    if len(unknown) > n_known:
                        examples = counts.setdefault("unknown_parameter_examples", [])
                        examples += [f"{name!r} ({member.name} line {line})" for name, line in unknown[n_known:]]
                        del unknown[N_EXAMPLES:]
                        del examples[N_EXAMPLES:]
                except (ValueError, IndexError, KeyError) as exc:
                    raise DataError(
                        f"{archive.name}:{member.name}: malformed record ({exc}); expected lines "
                        "'HH:MM,Parameter,Value' with times 00:00 to 48:00 and finite float32 numbers: download the "
                        "archive again"
                    ) from None
                if rid in member_of:
                    raise DataError(
                        f"RecordID {rid} appears twice in {archive.name} ({member_of[rid]} and {member.name}); "
                        "a stay must be listed once: use the archive as published"
                    )
                member_of[rid] = member.name
                ids.append(rid)
                statics.append(desc)
                bar.update()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DataError(
            f"{archive} is truncated or corrupt ({type(exc).__name__}: {exc}); delete it and download it again"
        ) from None
    if not ids:
        raise DataError(f"{archive} holds no record files (RecordID.txt); download it again")

    flat = np.asarray(flat_index, dtype=np.int64)
    vals = np.asarray(values, dtype=np.float64)
    vals, removed = clean_values(flat % n_feat, vals)
    counts.update(removed)
    ok = ~np.isnan(vals)
    size = len(ids) * N_HOURS * n_feat
    sums = np.bincount(flat[ok], weights=vals[ok], minlength=size)
    nobs = np.bincount(flat[ok], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        X = (sums / nobs).reshape(len(ids), N_HOURS, n_feat)

    static = pd.DataFrame(statics, columns=["age", "sex", "height", "icu_type", "weight"])
    static["sex"] = pd.Series([row[1] for row in statics], dtype=object)  # keep None (pandas would make it NaN)
    static["height"] = static["height"].where(static["height"].between(100, 250))
    static["weight"] = static["weight"].where(static["weight"].between(25, 300))
    order = np.argsort(np.asarray(ids), kind="stable")
    return (np.asarray(ids, dtype=np.int64)[order], X[order].astype(np.float32),
            static.iloc[order].reset_index(drop=True), counts)


def _parse_record(text: str, base: int, flat_index: list, values: list, counts: dict,
                  unknown: list | None = None):
    """Parse one record file; append its grid values; return (RecordID, descriptors).

    The loop is the hot path of the loader (3.5 million lines for sets A and B), so it checks
    only what it must; on any error :func:`_first_bad_line` re-reads the record to say where.
    Unknown parameter names are counted in ``counts`` and the first :data:`N_EXAMPLES` of
    them appended to ``unknown`` as (name, line number).
    """
    lines = text.split("\n")
    if lines[0].startswith(_BOM):
        raise ValueError("line 1 starts with a UTF-8 byte-order mark (BOM), which the published files do not have")
    if lines[0].strip() != _HEADER:
        raise ValueError(f"line 1 is not {_HEADER!r}")
    while lines and not lines[-1].strip():
        lines.pop()
    n_feat = len(FEATURES)
    feature_index = _FEATURE_INDEX
    minute_of = _MINUTE_OF
    weight = feature_index["Weight"]
    end = N_HOURS * 60
    desc = {"RecordID": None, "Age": -1.0, "Gender": -1.0, "Height": -1.0, "ICUType": -1.0}
    desc_weight = None
    add_index, add_value = flat_index.append, values.append
    start = len(values)
    top = FLOAT32_MAX
    n_unknown = 0
    try:
        for line in lines[1:]:
            t, name, v = line.split(",")
            # A KeyError here is any time outside 00:00-48:00 or not HH:MM: never binned, so a
            # negative time cannot index into the previous record's row.
            minute = minute_of[t]
            value = float(v)
            if not -top <= value <= top:  # NaN (every comparison is False), +-inf, or inf once float32
                raise ValueError
            f = feature_index.get(name)
            if f is None:
                if name in desc:
                    if name == "RecordID" and desc[name] is not None:
                        raise ValueError
                    desc[name] = value
                else:
                    n_unknown += 1
            elif f == weight and minute == 0 and desc_weight is None:
                desc_weight = value  # the admission descriptor, not a measurement
            elif minute < end:
                add_index(base + (minute // 60) * n_feat + f)
                add_value(value)
            else:  # 48:00 closes the last hour
                add_index(base + (N_HOURS - 1) * n_feat + f)
                add_value(value)
    except (ValueError, IndexError, KeyError):
        del flat_index[start:], values[start:]
        raise ValueError(_first_bad_line(lines)) from None
    if n_unknown:
        counts["unknown_parameters"] += n_unknown
        if unknown is not None and len(unknown) < N_EXAMPLES:
            for lineno, line in enumerate(lines[1:], start=2):  # rare: only records with unknown names
                name = line.split(",")[1]
                if name not in feature_index and name not in desc and len(unknown) < N_EXAMPLES:
                    unknown.append((name, lineno))
    rid = desc["RecordID"]
    if rid is None:
        raise ValueError("no RecordID line")
    if rid != int(rid) or not 0 <= rid <= MAX_RECORD_ID:
        raise ValueError(f"RecordID {rid:g} is not a whole number in 0..{MAX_RECORD_ID}")
    desc["Weight"] = desc_weight
    gender = desc["Gender"]
    static = (
        desc["Age"] if desc["Age"] >= 0 else np.nan,
        "F" if gender == 0 else "M" if gender == 1 else None,
        desc["Height"] if desc["Height"] > 0 else np.nan,
        desc["ICUType"] if desc["ICUType"] > 0 else np.nan,
        desc["Weight"] if desc["Weight"] is not None and desc["Weight"] > 0 else np.nan,
    )
    return int(desc["RecordID"]), static


def _first_bad_line(lines: list[str]) -> str:
    """Describe the first line of a record that is not ``HH:MM,Parameter,number`` in the window.

    Names the RecordID too when the record has a readable one (RecordID lines come first).
    """
    rid, seen_rid = "", False
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split(",")
        problem = None
        if len(parts) != 3:
            problem = f"{line[:40]!r} does not have 3 fields"
        else:
            t, name, v = parts
            hh, sep, mm = t.partition(":")
            if t.startswith("-"):
                problem = f"time {t!r} is negative (before ICU admission)"
            elif not (sep and len(hh) == 2 and hh.isdigit() and mm.isdigit() and len(mm) == 2):
                problem = f"time {t!r} is not HH:MM"
            elif int(mm) >= 60:
                problem = f"time {t!r} has minutes past 59"
            elif int(hh) * 60 + int(mm) > N_HOURS * 60:
                problem = f"time {t!r} is after 48:00, the end of the stay window"
            else:
                try:
                    value = float(v)
                except ValueError:
                    problem = f"value {v!r} is not a number"
                else:
                    if not np.isfinite(value):
                        problem = f"value {v!r} of {name} is not a finite number"
                    elif abs(value) > FLOAT32_MAX:
                        problem = f"value {v!r} of {name} is beyond float32's range (+-{FLOAT32_MAX:.4g})"
                    elif name == "RecordID":
                        if seen_rid:
                            problem = "a second RecordID line"
                        seen_rid, rid = True, rid or f"; RecordID {v.strip()}"
        if problem:
            return f"line {lineno}: {problem}{rid}"
    return "unreadable line"


def clean_values(feature: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, dict]:
    """Apply the documented quirk rules; return cleaned values (NaN = removed) and counts.

    Examples
    --------
    >>> f = np.array([FEATURES.index("HR"), FEATURES.index("pH"), FEATURES.index("Urine")])
    >>> clean_values(f, np.array([0.0, 735.0, 0.0]))[0].tolist()
    [nan, 7.35, 0.0]
    """
    values = values.astype(np.float64, copy=True)
    idx = _FEATURE_INDEX
    is_ = {name: feature == idx[name] for name in ("Urine", "Temp", "pH", "Weight")}
    placeholder = (values <= 0) & ~is_["Urine"]
    values[placeholder] = np.nan
    cold = is_["Temp"] & (values < 25)
    values[cold] = np.nan
    ph_big = is_["pH"] & (values > 14)
    rescaled = values[ph_big] / 100.0
    values[ph_big] = np.where((rescaled >= 6.5) & (rescaled <= 8.0), rescaled, np.nan)
    heavy = is_["Weight"] & ((values < 25) | (values > 300))
    values[heavy] = np.nan
    removed = {
        "removed_placeholder_values": int(placeholder.sum()),
        "removed_implausible_temp": int(cold.sum()),
        "rescaled_ph": int(np.isfinite(values[ph_big]).sum()),
        "removed_implausible_ph": int(np.isnan(values[ph_big]).sum()),
        "removed_implausible_weight": int(heavy.sum()),
    }
    return values, removed
