"""Real-data loaders: tiny hand-made fixtures in the official formats (exact values), bad input,
and the open copies in ../shared/data (PhysioNet 2012 A+B, MIMIC-III demo, YAIB demos)."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tardiff.data import eicu, load_cohort, mimic3, physionet2012, yaib
from tardiff.errors import DataError, ParameterError

nan = np.nan
PN_HR, PN_WEIGHT, PN_URINE = (physionet2012.FEATURES.index(f) for f in ("HR", "Weight", "Urine"))
PN_PH, PN_TEMP, PN_MAP = (physionet2012.FEATURES.index(f) for f in ("pH", "Temp", "MAP"))


# ---------------------------------------------------------------- PhysioNet 2012 fixtures

def _record(rid: int, age=60, gender=1, height=-1, icu=3, weight=-1, lines: str = "") -> str:
    head = (f"Time,Parameter,Value\n00:00,RecordID,{rid}\n00:00,Age,{age}\n00:00,Gender,{gender}\n"
            f"00:00,Height,{height}\n00:00,ICUType,{icu}\n00:00,Weight,{weight}\n")
    return head + lines


RECORDS_A = {
    1001: _record(1001, age=54, gender=0, icu=4, lines=(
        "00:07,HR,73\n00:37,HR,77\n00:10,Weight,80\n01:37,HR,60\n05:00,HR,0\n06:00,Urine,0\n"
        "07:00,pH,735\n07:30,pH,7.2\n08:00,Temp,-17.8\n48:00,HR,90\n")),
    1002: _record(1002, age=70, gender=1, height=180.3, icu=2, weight=85, lines="02:00,Temp,37.5\n02:59,Temp,38.5\n"),
    1003: _record(1003),  # descriptors only: dropped
    1004: _record(1004, gender=-1, height=13, lines="03:30,MAP,80\n"),
}
OUTCOMES_A = {1001: (5, 1), 1002: (2, 0), 1003: (10, 0), 1004: (-1, 0)}  # RecordID: (Length_of_stay, death)
RECORDS_B = {2001: _record(2001, lines="00:00,HR,100\n"), 2002: _record(2002, lines="10:00,HR,110\n")}
OUTCOMES_B = {2001: (4, 1), 2002: (9, 0)}


def write_set(folder: Path, letter: str, records: dict, outcomes: dict) -> None:
    """Write set-<letter>.tar.gz and Outcomes-<letter>.txt as PhysioNet publishes them."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / f"set-{letter}.tar.gz", "w:gz") as tar:
        directory = tarfile.TarInfo(f"set-{letter}")
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for rid, text in records.items():
            data = text.encode()
            member = tarfile.TarInfo(f"set-{letter}/{rid}.txt")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    rows = [f"{rid},10,5,{los},-1,{death}" for rid, (los, death) in outcomes.items()]
    (folder / f"Outcomes-{letter}.txt").write_text(
        "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n" + "\n".join(rows) + "\n")


@pytest.fixture
def pn_dir(tmp_path) -> Path:
    folder = tmp_path / "pn"
    write_set(folder, "a", RECORDS_A, OUTCOMES_A)
    write_set(folder, "b", RECORDS_B, OUTCOMES_B)
    return folder


def test_physionet_fixture_exact(pn_dir):
    c = physionet2012.load(pn_dir, "mortality", download=False, progress=False)
    assert c.shape == (5, 48, 37) and c.features[:3] == ["Albumin", "ALP", "ALT"] and c.units[PN_HR] == "bpm"
    assert c.stay_ids.tolist() == [1001, 1002, 1004, 2001, 2002] and c.y.tolist() == [1, 0, 0, 1, 0]
    assert c.info["dropped_no_timeseries"] == 1 and c.info["sets"] == ["a", "b"]
    x = c.X[0]
    assert x[0, PN_HR] == 75 and x[1, PN_HR] == 60 and x[47, PN_HR] == 90  # mean in bin; 48:00 -> bin 47
    assert np.isnan(x[5, PN_HR]) and x[6, PN_URINE] == 0  # HR 0 is a placeholder, Urine 0 is real
    assert x[0, PN_WEIGHT] == 80 and np.isnan(x[8, PN_TEMP])
    assert x[7, PN_PH] == pytest.approx((7.35 + 7.2) / 2)  # 735 read as 7.35
    assert c.X[1, 2, PN_TEMP] == 38.0 and c.X[2, 3, PN_MAP] == 80 and c.X[3, 0, PN_HR] == 100
    assert int(c.mask.sum()) == 10 and np.array_equal(c.mask, ~np.isnan(c.X))
    s = c.static
    assert s["age"].tolist() == [54, 70, 60, 60, 60] and s["sex"].tolist() == ["F", "M", None, "M", "M"]
    assert np.isnan(s["height"][0]) and s["height"][1] == pytest.approx(180.3) and np.isnan(s["height"][2])
    assert np.isnan(s["weight"][0]) and s["weight"][1] == 85 and s["icu_type"].tolist() == [4, 2, 3, 3, 3]
    assert s["set"].tolist() == ["a", "a", "a", "b", "b"]


def test_physionet_fixture_los3_and_sets(pn_dir):
    c = physionet2012.load(pn_dir, "los3", sets=("b", "a"), download=False, progress=False)
    assert c.stay_ids.tolist() == [2001, 2002, 1001, 1002] and c.y.tolist() == [1, 1, 1, 0]
    assert c.info["dropped_unknown_label"] == 1  # Length_of_stay -1
    assert physionet2012.load(pn_dir, sets="a", download=False, progress=False).shape[0] == 3
    with pytest.raises(DataError, match="set-c.tar.gz"):
        physionet2012.load(pn_dir, sets="ac", download=False, progress=False)
    with pytest.raises(ParameterError, match="sets"):
        physionet2012.load(pn_dir, sets=("a", "d"), download=False, progress=False)


def _assert_fails_without_cache(tmp_path, folder, match, name="physionet2012", **options):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=match) as err:
        load_cohort(name, folder, cache_dir=cache, **options)
    assert "\n" not in str(err.value)
    assert not cache.exists() or not any(cache.iterdir()), "a failed load must not write a cache file"


def test_physionet_cache_written_on_success(pn_dir, tmp_path):
    cache = tmp_path / "cache"
    first = load_cohort("physionet2012", pn_dir, cache_dir=cache, download=False, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1
    again = load_cohort("physionet2012", pn_dir, cache_dir=cache, download=False, progress=False)
    assert np.array_equal(first.X, again.X, equal_nan=True) and again.y.tolist() == first.y.tolist()


def test_physionet_missing_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_fails_without_cache(tmp_path, empty, r"no PhysioNet 2012 data in .*empty.*--data-dir", download=False)
    assert not any(empty.iterdir())  # the presence check downloads nothing


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_physionet_corrupt_archive(pn_dir, tmp_path, damage):
    archive = pn_dir / "set-a.tar.gz"
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"this is not a gzip file" * 10)
    _assert_fails_without_cache(tmp_path, pn_dir, r"set-a.tar.gz is truncated or corrupt", download=False,
                                progress=False)


@pytest.mark.parametrize("bad_line", ["00:07,HR\n", "0x:07,HR,70\n", "00:07,HR,seventy\n", "7,HR,70\n"])
def test_physionet_malformed_line(tmp_path, bad_line):
    records = dict(RECORDS_A)
    records[1002] = records[1002] + bad_line
    write_set(tmp_path / "pn", "a", records, OUTCOMES_A)
    _assert_fails_without_cache(tmp_path, tmp_path / "pn", r"set-a/1002.txt: malformed record \(line 10",
                                sets="a", download=False, progress=False)


@pytest.mark.parametrize("bad_line,problem", [
    ("-01:30,HR,999\n", "time '-01:30' is negative"),
    ("-00:30,HR,999\n", "time '-00:30' is negative"),  # int('-00') is 0: must not land in hour 0
    ("49:10,HR,999\n", "time '49:10' is after 48:00"),
    ("48:01,HR,999\n", "time '48:01' is after 48:00"),
    ("00:75,HR,999\n", "time '00:75' has minutes past 59"),
])
@pytest.mark.parametrize("rid", [1001, 1002])  # the first record crashed; the second wrote into the first's hour 47
def test_physionet_time_outside_window_is_refused(tmp_path, bad_line, problem, rid):
    records = dict(RECORDS_A)
    records[rid] = records[rid] + bad_line
    write_set(tmp_path / "pn", "a", records, OUTCOMES_A)
    lineno = records[rid].count("\n")
    _assert_fails_without_cache(
        tmp_path, tmp_path / "pn",
        rf"set-a.tar.gz:set-a/{rid}.txt: malformed record \(line {lineno}: {problem}.*RecordID {rid}\)",
        sets="a", download=False, progress=False)


@pytest.mark.parametrize("bad_line", ["03:00,HR,nan\n", "03:00,HR,inf\n", "03:00,HR,-Infinity\n", "00:00,Age,NaN\n"])
def test_physionet_non_finite_value_is_refused(tmp_path, bad_line):
    records = dict(RECORDS_A)
    records[1002] = records[1002] + bad_line
    write_set(tmp_path / "pn", "a", records, OUTCOMES_A)
    _assert_fails_without_cache(tmp_path, tmp_path / "pn",
                                r"set-a/1002.txt: malformed record \(line 10: value .* is not a finite number; "
                                r"RecordID 1002\)",
                                sets="a", download=False, progress=False)


def test_physionet_real_archive_needs_no_drop(physionet_ab):
    """The published sets A and B have no time past 48:00 and no non-finite value: nothing is dropped for it."""
    assert "values_after_48h" not in physionet_ab.info and physionet_ab.info["unknown_parameters"] == 0


def test_physionet_duplicate_record_in_one_archive(tmp_path):
    records = dict(RECORDS_A)
    records["1002-copy"] = RECORDS_A[1002]
    write_set(tmp_path / "pn", "a", records, OUTCOMES_A)
    _assert_fails_without_cache(tmp_path, tmp_path / "pn",
                                r"RecordID 1002 appears twice in set-a.tar.gz "
                                r"\(set-a/1002.txt and set-a/1002-copy.txt\)",
                                sets="a", download=False, progress=False)


def test_physionet_duplicate_record_across_sets(pn_dir, tmp_path):
    write_set(pn_dir, "b", {**RECORDS_B, 1001: RECORDS_A[1001]}, {**OUTCOMES_B, 1001: OUTCOMES_A[1001]})
    _assert_fails_without_cache(tmp_path, pn_dir, r"RecordID 1001 is in both set-a.tar.gz and set-b.tar.gz",
                                download=False, progress=False)


def test_physionet_second_record_id_line_is_refused(tmp_path):
    records = dict(RECORDS_A)
    records[1002] = records[1002] + "00:00,RecordID,1003\n"
    write_set(tmp_path / "pn", "a", records, OUTCOMES_A)
    _assert_fails_without_cache(tmp_path, tmp_path / "pn", r"line 10: a second RecordID line; RecordID 1002",
                                sets="a", download=False, progress=False)


def test_physionet_bad_header(tmp_path):
    write_set(tmp_path / "pn", "a", {1001: "Time;Parameter;Value\n00:00,RecordID,1001\n"}, OUTCOMES_A)
    _assert_fails_without_cache(tmp_path, tmp_path / "pn", "malformed record", sets="a", download=False,
                                progress=False)


def test_physionet_outcomes_missing_ids(tmp_path):
    outcomes = {k: v for k, v in OUTCOMES_A.items() if k != 1002}
    write_set(tmp_path / "pn", "a", RECORDS_A, outcomes)
    _assert_fails_without_cache(tmp_path, tmp_path / "pn", r"Outcomes-a.txt has no outcome for 1 .*RecordID 1002",
                                sets="a", download=False, progress=False)


def test_physionet_outcomes_not_an_outcomes_file(pn_dir, tmp_path):
    (pn_dir / "Outcomes-a.txt").write_text("id,death\n1001,1\n")
    _assert_fails_without_cache(tmp_path, pn_dir, "not a PhysioNet 2012 outcomes file", download=False,
                                progress=False)


def test_unknown_task(pn_dir, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ParameterError, match="no task 'sepsis'"):
        load_cohort("physionet2012", pn_dir, task="sepsis", cache_dir=cache)
    assert not cache.exists()


def test_physionet_single_class(tmp_path):
    write_set(tmp_path / "pn", "a", RECORDS_A, {k: (los, 0) for k, (los, _) in OUTCOMES_A.items()})
    _assert_fails_without_cache(tmp_path, tmp_path / "pn", "every stay has label 0", sets="a", download=False,
                                progress=False)


def test_clean_values_rules():
    f = np.array([PN_HR, PN_URINE, PN_TEMP, PN_PH, PN_PH, PN_WEIGHT, PN_WEIGHT])
    values, removed = physionet2012.clean_values(f, np.array([-1, 0, 20, 7.3, 187, 10, 70.0]))
    assert np.allclose(values, [nan, 0, nan, 7.3, nan, nan, 70], equal_nan=True)
    assert removed["removed_placeholder_values"] == 1 and removed["removed_implausible_ph"] == 1


# ---------------------------------------------------------------- MIMIC-III fixture (upper-case columns)

def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            frame.to_csv(fh, index=False)
    else:
        frame.to_csv(path, index=False)


@pytest.fixture
def mimic_dir(tmp_path) -> Path:
    d = tmp_path / "mimic"
    d.mkdir()
    _write_csv(d / "PATIENTS.csv", pd.DataFrame({
        "ROW_ID": [1, 2], "SUBJECT_ID": [1, 2], "GENDER": ["M", "F"],
        "DOB": ["2100-01-01 00:00:00", "1850-06-01 00:00:00"], "EXPIRE_FLAG": [1, 0]}))
    _write_csv(d / "ADMISSIONS.csv", pd.DataFrame({
        "ROW_ID": [1, 2, 3], "SUBJECT_ID": [1, 2, 2], "HADM_ID": [11, 12, 13], "HOSPITAL_EXPIRE_FLAG": [1, 0, 0]}))
    _write_csv(d / "ICUSTAYS.csv", pd.DataFrame({
        "ROW_ID": [1, 2, 3], "SUBJECT_ID": [1, 2, 2], "HADM_ID": [11, 12, 13], "ICUSTAY_ID": [300001, 300002, 300003],
        "DBSOURCE": ["carevue", "metavision", "metavision"], "FIRST_CAREUNIT": ["MICU", "SICU", "SICU"],
        "INTIME": ["2150-01-01 10:00:00", "2150-06-01 00:00:00", "2150-07-01 00:00:00"],
        "OUTTIME": ["2150-01-06 00:00:00", "2150-06-02 00:00:00", "2150-07-03 00:00:00"], "LOS": [4.5, 1.0, 2.0]}))
    events = [  # ICUSTAY_ID, ITEMID, CHARTTIME, VALUENUM, ERROR
        (300001, 211, "2150-01-01 10:30:00", 80, None), (300001, 211, "2150-01-01 10:50:00", 90, None),
        (300001, 220045, "2150-01-01 11:10:00", 100, 0), (300001, 678, "2150-01-01 12:00:00", 98.6, None),
        (300001, 223762, "2150-01-01 12:30:00", 39, 0), (300001, 51, "2150-01-01 09:00:00", 120, None),
        (300001, 220050, "2150-01-02 09:59:00", 130, 0), (300001, 8368, "2150-01-02 10:00:00", 60, None),
        (300001, 211, "2150-01-01 13:00:00", 0, None), (300001, 646, "2150-01-01 13:00:00", 150, None),
        (300001, 220210, "2150-01-01 14:00:00", 22, 1), (None, 456, "2150-01-01 14:00:00", 70, None),
        (300001, 1, "2150-01-01 14:00:00", None, None), (300001, 225312, "2150-01-01 15:20:00", 75, 0),
        (300002, 615, "2150-06-01 00:00:00", 20, None), (300002, 220277, "2150-06-01 05:59:00", 97, 0),
        (999999, 211, "2150-06-01 00:00:00", 70, None),
    ]
    frame = pd.DataFrame(events, columns=["ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUENUM", "ERROR"])
    frame.insert(0, "ROW_ID", range(len(frame)))
    frame["ICUSTAY_ID"] = frame["ICUSTAY_ID"].astype("Int64")
    frame["VALUE"] = frame["VALUENUM"].astype(str)
    _write_csv(d / "CHARTEVENTS.csv.gz", frame)
    return d


def test_mimic3_fixture_exact(mimic_dir):
    c = mimic3.load(mimic_dir, "mortality", progress=False, chunk_rows=4)  # several chunks
    assert c.shape == (2, 24, 7) and c.features == ["HR", "SBP", "DBP", "MBP", "RR", "Temp", "SpO2"]
    assert c.stay_ids.tolist() == [300001, 300002] and c.y.tolist() == [1, 0]
    assert c.info["dropped_no_vitals"] == 1 and c.info["n_icustays"] == 3
    expected = np.full((2, 24, 7), nan)
    expected[0, 0, 0], expected[0, 1, 0] = 85, 100  # HR: mean of 80 and 90; MetaVision item in hour 1
    expected[0, 2, 5] = (37.0 + 39.0) / 2  # 98.6 degF -> 37 degC, averaged with 39 degC
    expected[0, 23, 1] = 130  # 23:59 after intime is in the window; 24:00 (DBP) and before intime are not
    expected[0, 5, 3] = 75
    expected[1, 0, 4], expected[1, 5, 6] = 20, 97
    assert np.allclose(c.X, expected, equal_nan=True, atol=1e-4)
    assert c.static["age"][0] == pytest.approx(50, abs=0.01) and c.static["age"][1] == 90  # >89 capped
    assert c.static["sex"].tolist() == ["M", "F"] and c.static["first_careunit"].tolist() == ["MICU", "SICU"]
    assert mimic3.load(mimic_dir, "los3", progress=False).y.tolist() == [1, 0]


def test_mimic3_duplicate_stay(mimic_dir, tmp_path):
    stays = pd.read_csv(mimic_dir / "ICUSTAYS.csv")
    stays.loc[2, "ICUSTAY_ID"] = 300002
    stays.to_csv(mimic_dir / "ICUSTAYS.csv", index=False)
    _assert_fails_without_cache(tmp_path, mimic_dir, r"ICUSTAYS.csv: icustay_id 300002 is listed twice", name="mimic3",
                                progress=False)


def test_mimic3_missing_table(mimic_dir, tmp_path):
    (mimic_dir / "CHARTEVENTS.csv.gz").unlink()
    _assert_fails_without_cache(tmp_path, mimic_dir, r"MIMIC-III tables missing in .*CHARTEVENTS", name="mimic3")


def test_mimic3_missing_column(mimic_dir, tmp_path):
    pd.read_csv(mimic_dir / "ADMISSIONS.csv").drop(columns="HOSPITAL_EXPIRE_FLAG").to_csv(
        mimic_dir / "ADMISSIONS.csv", index=False)
    _assert_fails_without_cache(tmp_path, mimic_dir, r"ADMISSIONS.csv lacks the column\(s\) hospital_expire_flag",
                                name="mimic3", progress=False)


def test_mimic3_corrupt_gzip(mimic_dir, tmp_path):
    path = mimic_dir / "CHARTEVENTS.csv.gz"
    path.write_bytes(path.read_bytes()[:40])
    _assert_fails_without_cache(tmp_path, mimic_dir, r"cannot read .*CHARTEVENTS.csv.gz", name="mimic3",
                                progress=False)


# ---------------------------------------------------------------- eICU fixture (official format)

@pytest.fixture
def eicu_dir(tmp_path) -> Path:
    d = tmp_path / "eicu"
    d.mkdir()
    patient = pd.DataFrame({
        "patientunitstayid": [13, 10, 11, 12], "patienthealthsystemstayid": [1, 2, 3, 4],
        "gender": ["Male", "Female", "Male", "Unknown"], "age": ["60", "> 89", "45", ""],
        "ethnicity": ["", "Caucasian", "", ""], "hospitalid": [73, 73, 264, 264],
        "unittype": ["MICU", "Med-Surg ICU", "CCU-CTICU", "MICU"],
        "hospitaldischargestatus": ["Alive", "Expired", "Alive", ""],
        "unitdischargeoffset": [200, 5000, 1000, 4400], "unitdischargestatus": ["Alive", "Expired", "Alive", "Alive"],
        "uniquepid": ["002-1", "002-2", "002-3", "002-4"],
    })
    _write_csv(d / "patient.csv.gz", patient)
    rows = [  # patientunitstayid, observationoffset, sao2, heartrate, respiration
        (10, 3, 97, 80, 20), (10, 4, 99, 90, None), (10, 1439, None, 70, None), (10, 1440, 95, 60, 15),
        (10, -5, 95, 60, 15), (10, 10, 96, 0, 0), (11, 60, 150, 100, 18), (12, 7, None, 110, None),
        (99, 0, 90, 50, 10),
    ]
    vital = pd.DataFrame(rows, columns=["patientunitstayid", "observationoffset", "sao2", "heartrate", "respiration"])
    vital.insert(0, "vitalperiodicid", range(len(vital)))
    vital.insert(3, "temperature", nan)
    vital["cvp"] = nan
    _write_csv(d / "vitalPeriodic.csv.gz", vital)
    return d


def test_eicu_fixture_exact(eicu_dir):
    c = eicu.load(eicu_dir, "mortality", progress=False, chunk_rows=3)
    assert c.shape == (2, 288, 3) and c.step_minutes == 5 and c.features == ["HR", "RR", "SpO2"]
    assert c.stay_ids.tolist() == [10, 11] and c.y.tolist() == [1, 0]
    assert c.info["dropped_no_vitals"] == 1 and c.info["dropped_unknown_label"] == 1
    expected = np.full((2, 288, 3), nan)
    expected[0, 0] = [85, 20, 98]  # offsets 3 and 4 share the first 5-minute bin
    expected[0, 2, 2] = 96  # offset 10: HR and RR 0 are dropped, SpO2 kept
    expected[0, 287, 0] = 70  # 1439 min is the last bin; 1440 and -5 are outside
    expected[1, 12, :2] = [100, 18]  # SpO2 150 dropped
    assert np.array_equal(c.X, expected, equal_nan=True)
    assert c.static["age"].tolist() == [90, 45] and c.static["sex"].tolist() == ["F", "M"]
    assert c.static["hospitalid"].tolist() == ["73", "264"]
    los = eicu.load(eicu_dir, "los3", progress=False)
    assert los.stay_ids.tolist() == [10, 11, 12] and los.y.tolist() == [1, 0, 1]
    assert los.static["sex"].tolist() == ["F", "M", None] and np.isnan(los.static["age"][2])


def test_eicu_duplicate_stay(eicu_dir, tmp_path):
    path = eicu_dir / "patient.csv.gz"
    frame = pd.read_csv(path)
    frame.loc[3, "patientunitstayid"] = 10
    _write_csv(path, frame)
    _assert_fails_without_cache(tmp_path, eicu_dir, r"patient.csv.gz: patientunitstayid 10 is listed twice",
                                name="eicu", progress=False)


def test_eicu_missing_table(eicu_dir, tmp_path):
    (eicu_dir / "vitalPeriodic.csv.gz").unlink()
    _assert_fails_without_cache(tmp_path, eicu_dir, r"eICU tables missing in .*vitalPeriodic", name="eicu")


def test_eicu_malformed_values(eicu_dir, tmp_path):
    path = eicu_dir / "vitalPeriodic.csv.gz"
    frame = pd.read_csv(path).astype(object)
    frame.loc[2, "heartrate"] = "fast"
    _write_csv(path, frame)
    _assert_fails_without_cache(tmp_path, eicu_dir, r"cannot read .*vitalPeriodic.csv.gz", name="eicu",
                                progress=False)


# ---------------------------------------------------------------- YAIB fixture

def _write_yaib(d: Path, labels, hourly=False):
    d.mkdir(parents=True, exist_ok=True)
    hours = pd.to_timedelta([0, 1, 2, 0, 2], unit="h")
    pd.DataFrame({"stay_id": [1, 1, 1, 2, 2], "time": hours, "hr": [80.0, nan, 90, 70, 75],
                  "sbp": [120.0, 110, nan, nan, 100]}).to_parquet(d / "dyn.parquet")
    pd.DataFrame({"stay_id": [1, 2], "age": [70.0, 50], "sex": ["Male", "Female"], "height": [nan, 160],
                  "weight": [80.0, nan]}).to_parquet(d / "sta.parquet")
    if hourly:
        outc = pd.DataFrame({"stay_id": [1, 1, 1, 2, 2], "time": hours, "label": labels})
    else:
        outc = pd.DataFrame({"stay_id": [1, 2], "label": labels})
    outc.to_parquet(d / "outc.parquet")


def test_yaib_fixture_exact(tmp_path):
    _write_yaib(tmp_path / "y", [0, 1])
    c = yaib.load(tmp_path / "y")
    assert c.shape == (2, 2, 2) and c.features == ["hr", "sbp"] and c.units == ["bpm", "mmHg"]
    assert np.array_equal(c.X, [[[80, 120], [nan, 110]], [[70, nan], [nan, nan]]], equal_nan=True)
    assert c.info["rows_after_window"] == 2 and c.static["sex"].tolist() == ["M", "F"]
    assert yaib.load(tmp_path / "y", hours=3).X[1, 2].tolist() == [75, 100]
    _write_yaib(tmp_path / "h", [False, False, True, False, False], hourly=True)
    assert yaib.load(tmp_path / "h", "aki").y.tolist() == [1, 0]


@pytest.mark.parametrize("labels,hourly,task,match", [
    ([0, 2.5], False, "mortality24", "labels must be binary"),
    ([0, 0, 1, 0, 1], True, "mortality24", "hourly labels"),
    ([0, 0], False, "mortality24", "every stay has label 0"),
])
def test_yaib_bad_labels(tmp_path, labels, hourly, task, match):
    _write_yaib(tmp_path / "y", labels, hourly=hourly)
    _assert_fails_without_cache(tmp_path, tmp_path / "y", match, name="yaib", task=task)


def test_yaib_rows_without_time_are_counted(tmp_path):
    d = tmp_path / "y"
    _write_yaib(d, [0, 1])
    dyn = pd.read_parquet(d / "dyn.parquet")
    extra = pd.DataFrame({"stay_id": [1, 2, 2], "time": pd.to_timedelta([None, -1, None], unit="h"),
                          "hr": [999.0, 999, 999], "sbp": [999.0, 999, 999]})
    pd.concat([dyn, extra], ignore_index=True).to_parquet(d / "dyn.parquet")
    c = yaib.load(d, progress=False)
    assert c.info["rows_without_time"] == 2 and c.info["rows_before_window"] == 1
    assert c.info["rows_after_window"] == 2 and not (c.X == 999).any()  # none of them reached the grid
    assert np.array_equal(c.X, [[[80, 120], [nan, 110]], [[70, nan], [nan, nan]]], equal_nan=True)


@pytest.mark.parametrize("table,match", [
    ("sta", r"sta.parquet: stay_id 2 is listed twice"),
    ("dyn", r"dyn.parquet: stay_id 2 is listed twice at time 0 days"),
    ("outc", r"outc.parquet: stay_id 2 is listed twice"),
])
def test_yaib_duplicate_stay(tmp_path, table, match):
    d = tmp_path / "y"
    _write_yaib(d, [0, 1])
    frame = pd.read_parquet(d / f"{table}.parquet")
    pd.concat([frame, frame[frame["stay_id"] == 2].head(1)], ignore_index=True).to_parquet(d / f"{table}.parquet")
    _assert_fails_without_cache(tmp_path, d, match, name="yaib")


def test_yaib_missing_files(tmp_path):
    _write_yaib(tmp_path / "y", [0, 1])
    (tmp_path / "y" / "sta.parquet").unlink()
    _assert_fails_without_cache(tmp_path, tmp_path / "y", r"no YAIB cohort in .*missing sta.parquet", name="yaib")


# ---------------------------------------------------------------- the open copies in ../shared/data

PARSE_SECONDS: dict[str, float] = {}


def _timed(name, fn):
    start = time.perf_counter()
    out = fn()
    PARSE_SECONDS[name] = time.perf_counter() - start
    print(f"{name}: parsed in {PARSE_SECONDS[name]:.1f} s")
    return out


@pytest.fixture(scope="module")
def physionet_ab(shared_data):
    folder = shared_data / "physionet2012"
    if not (folder / "set-b.tar.gz").is_file():
        pytest.skip(f"PhysioNet 2012 sets A and B not found in {folder}")
    return _timed("physionet2012 a+b", lambda: load_cohort(
        "physionet2012", folder, "mortality", cache=False, download=False, progress=False))


def test_physionet_real_sets_ab(physionet_ab):
    c = physionet_ab
    assert c.shape == (7990, 48, 37) and c.info["dropped_no_timeseries"] == 10
    assert 0.135 <= c.positive_rate <= 0.145 and int(c.y.sum()) == 554 + 568
    assert len(np.unique(c.stay_ids)) == 7990 and c.static["sex"].isin(["F", "M"]).sum() == 7982
    hr = c.X[..., PN_HR]
    assert 60 < np.nanmean(hr) < 110 and np.nanmin(hr) > 0
    assert 0.05 < c.mask[..., PN_HR].mean() and c.mask.any(axis=(1, 2)).all()
    assert PARSE_SECONDS["physionet2012 a+b"] < 60


@pytest.fixture(scope="module")
def mimic_demo(shared_data):
    folder = shared_data / "mimic3_demo"
    if not folder.is_dir():
        pytest.skip(f"MIMIC-III demo not found in {folder}")
    return _timed("mimic3 demo", lambda: load_cohort("mimic3", folder, "mortality", cache=False, progress=False))


def test_mimic3_demo(mimic_demo):
    c = mimic_demo
    assert c.shape == (132, 24, 7) and c.info["dropped_no_vitals"] == 4 and c.info["n_icustays"] == 136
    assert int(c.y.sum()) == 44 and c.positive_rate == pytest.approx(1 / 3)
    means = np.nanmean(c.X, axis=(0, 1))
    assert 70 < means[0] < 100 and 35.5 < means[5] < 38 and 90 < means[6] <= 100  # HR, Temp degC, SpO2
    assert c.static["age"].max() == 90 and c.static["sex"].isin(["F", "M"]).all()


@pytest.mark.parametrize("source,n,positives", [("eicu_demo", 1367, 70), ("mimic_demo", 99, 21)])
def test_yaib_demo_mortality24(shared_data, source, n, positives):
    folder = shared_data / "yaib_demo" / "mortality24" / source
    if not folder.is_dir():
        pytest.skip(f"YAIB demo not found in {folder}")
    c = _timed(f"yaib {source}", lambda: load_cohort("yaib", folder, cache=False))
    assert c.shape == (n, 24, 48) and int(c.y.sum()) == positives and c.task == "mortality24"
    assert c.static["sex"].isin(["F", "M"]).all() and c.units[c.features.index("hr")] == "bpm"
