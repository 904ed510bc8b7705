"""Property-based fuzzing of the raw-data parsers (hypothesis).

Malformed PhysioNet 2012 records, outcomes files and YAIB tables are generated at random. Each
test asserts that the parser raises nothing but the package's own :class:`DataError`, and that
what it accepts matches an independent re-statement of the parsing rules, value for value: no
value lands in the wrong stay, hour or feature. The examples are bounded so these tests take
about 20 s together; ``benchmarks/fuzz_loaders.py`` runs the same properties with a larger budget.
"""

from __future__ import annotations

import io
import math
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tardiff.data import physionet2012, yaib  # noqa: E402
from tardiff.errors import DataError  # noqa: E402

#: Examples per property in the suite; the benchmark raises it through the environment.
EXAMPLES = int(os.environ.get("TARDIFF_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

F32 = float(np.finfo(np.float32).max)
PN = physionet2012
NAMES = list(PN.FEATURES) + ["Age", "Gender", "Height", "ICUType", "RecordID", "Foo", "hr", " HR", ""]

# ---------------------------------------------------------------- PhysioNet records

times = st.one_of(
    st.integers(0, 48 * 60).map(lambda m: f"{m // 60:02d}:{m % 60:02d}"),  # valid
    st.sampled_from(["48:01", "49:00", "-01:30", "7:05", "00:60", "00:75", "", "ab:cd", "0000"]),
)
value_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.integers(-5, 400).map(str),
    st.sampled_from(["1e39", "-1e39", "3.5e38", "nan", "inf", "", "x", "735", "1e20", "0x10"]),
)
lines = st.one_of(
    st.tuples(times, st.sampled_from(NAMES), value_texts).map(",".join),
    st.text(alphabet="0123456789:,.-eHRnai \ufeff", max_size=20),  # garbage
)


def record_text(rid_text: str, body: list[str], bom: bool = False) -> str:
    return ("\ufeff" if bom else "") + "Time,Parameter,Value\n" + f"00:00,RecordID,{rid_text}\n" + "\n".join(body) + "\n"


def expected_record(rid_text: str, body: list[str], bom: bool):
    """The parsing rules restated independently: (RecordID, {(hour, feature): mean}) or None if refused."""
    if bom:
        return None
    all_lines = [f"00:00,RecordID,{rid_text}"] + [b for b in body]
    while all_lines and not all_lines[-1].strip():
        all_lines.pop()
    grid: dict[tuple[int, int], list[float]] = {}
    rid = None
    weight_seen = False
    for line in all_lines:
        parts = line.split(",")
        if len(parts) != 3:
            return None
        t, name, v = parts
        if len(t) != 5 or t[2] != ":" or not (t[:2].isdigit() and t[3:].isdigit()):
            return None
        hh, mm = int(t[:2]), int(t[3:])
        if mm >= 60 or hh * 60 + mm > 48 * 60:
            return None
        try:
            value = float(v)
        except ValueError:
            return None
        if not math.isfinite(value) or abs(value) > F32:
            return None
        if name == "RecordID":
            if rid is not None:
                return None
            rid = value
            continue
        if name not in PN.FEATURES:
            continue  # descriptor or unknown name: not on the grid
        if name == "Weight" and hh * 60 + mm == 0 and not weight_seen:
            weight_seen = True  # the admission descriptor
            continue
        hour = min((hh * 60 + mm) // 60, 47)
        # the documented quirk rules
        if value <= 0 and name != "Urine":
            continue
        if name == "Temp" and value < 25:
            continue
        if name == "pH" and value > 14:
            value /= 100
            if not 6.5 <= value <= 8.0:
                continue
        if name == "Weight" and not 25 <= value <= 300:
            continue
        grid.setdefault((hour, PN.FEATURES.index(name)), []).append(value)
    if rid is None or rid != int(rid) or not 0 <= rid <= PN.MAX_RECORD_ID:
        return None
    return int(rid), {k: float(np.mean(v)) for k, v in grid.items()}


def write_archive(folder: Path, records: list[str]) -> Path:
    archive = folder / "set-a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i, text in enumerate(records):
            data = text.encode("utf-8", errors="surrogatepass")
            member = tarfile.TarInfo(f"set-a/{i}.txt")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return archive


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["1001", "1002", "1.5", "-3", "1e20", "9007199254740993", "x"]),
                          st.lists(lines, max_size=12), st.just(False)), min_size=1,
                max_size=3), st.booleans())
def test_physionet_records_match_the_rules(records, bom_first):
    records = [(rid, body, bom_first and i == 0) for i, (rid, body, _) in enumerate(records)]
    expected = [expected_record(rid, body, bom) for rid, body, bom in records]
    ids_expected = [e[0] for e in expected if e is not None]
    refused = any(e is None for e in expected) or len(set(ids_expected)) != len(ids_expected)
    with tempfile.TemporaryDirectory() as tmp:
        archive = write_archive(Path(tmp), [record_text(*r) for r in records])
        try:
            ids, X, _, _ = PN._parse_archive(archive, progress=False)
        except DataError as err:
            assert refused, f"refused a valid archive: {err}"
            assert "\n" not in str(err)
            return
    assert not refused, "accepted a record the rules refuse"
    order = np.argsort(ids_expected, kind="stable")
    assert ids.tolist() == [ids_expected[i] for i in order]
    for row, i in enumerate(order):
        grid = expected[i][1]
        got = {(int(h), int(f)): float(X[row, h, f]) for h, f in zip(*np.nonzero(~np.isnan(X[row])))}
        assert set(got) == set(grid), "a value in the wrong hour or feature (or lost)"
        for key, value in grid.items():
            assert got[key] == pytest.approx(np.float32(value), rel=1e-6, abs=1e-30)


# ---------------------------------------------------------------- PhysioNet outcomes

cells = st.one_of(st.integers(-3, 3).map(str), st.sampled_from(["0.9", "1.5", "3.5", "-1", "2", "nan", "inf", "", "x",
                                                                "1e20", "1.0", "-2", "10"]))


def expected_outcomes(rows):
    table = {}
    for rid, los, death in rows:
        try:
            r, l, d = float(rid), float(los), float(death)
        except ValueError:
            return None
        if not all(map(math.isfinite, (r, l, d))):
            return None
        if r != int(r) or not 0 <= r <= PN.MAX_RECORD_ID or d not in (0, 1) or l != int(l) or l < -1:
            return None
        if int(r) in table:
            return None
        table[int(r)] = (int(l), int(d))
    return table


@FUZZ
@given(st.lists(st.tuples(st.one_of(st.integers(1, 6).map(str), cells), cells, cells), max_size=6), st.booleans())
def test_physionet_outcomes_match_the_rules(rows, bom):
    text = ("\ufeff" if bom else "") + "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"
    text += "".join(f"{r},1,1,{los},-1,{d}\n" for r, los, d in rows)
    expected = None if bom else expected_outcomes(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Outcomes-a.txt"
        path.write_text(text, encoding="utf-8")
        try:
            frame = PN._read_outcomes(path)
        except DataError as err:
            assert expected is None, f"refused a valid file: {err}"
            assert "\n" not in str(err) and ("byte-order mark" in str(err)) == bom
            return
    assert expected is not None, "accepted an outcomes file the rules refuse"
    got = {int(r): (int(row["Length_of_stay"]), int(row["In-hospital_death"])) for r, row in frame.iterrows()}
    assert got == expected


# ---------------------------------------------------------------- YAIB tables

yaib_values = st.one_of(st.floats(-1e3, 1e3), st.just(float("nan")), st.just(float("inf")), st.just(1e39))
yaib_rows = st.lists(st.tuples(st.sampled_from([1, 2, 3, 2.5]), st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.0, 1.5,
                                                                                    float("nan")]),
                               yaib_values, yaib_values), min_size=1, max_size=10)


@FUZZ
@given(yaib_rows, st.lists(st.sampled_from([0, 1, 2, 0.5]), min_size=3, max_size=3))
def test_yaib_tables_match_the_rules(rows, labels):
    dyn = pd.DataFrame(rows, columns=["stay_id", "time", "hr", "temp"])
    sta = pd.DataFrame({"stay_id": [1, 2, 3], "age": [50.0, 60.0, 70.0], "sex": ["Male", "Female", None]})
    outc = pd.DataFrame({"stay_id": [1, 2, 3], "label": labels})
    # the rules restated
    refused = (dyn["stay_id"] != dyn["stay_id"].round()).any()
    refused |= any(lab not in (0, 1) for lab in labels)
    finite_time = dyn["time"].dropna()
    refused |= (finite_time != finite_time.round()).any()
    refused |= dyn.dropna(subset=["time"]).duplicated(["stay_id", "time"]).any()
    T = int(np.nanmax(dyn["time"])) if dyn["time"].notna().any() else 0
    refused |= T < 1
    if not refused:  # a binary task needs both classes among the stays with rows
        refused |= len({labels[int(s) - 1] for s in dyn["stay_id"]}) < 2
    inside = dyn["time"].between(0, T - 1) & dyn["stay_id"].isin([1, 2, 3])
    vals = dyn.loc[inside, ["hr", "temp"]].to_numpy()
    refused |= bool((np.isinf(vals) | (np.abs(np.nan_to_num(vals)) > F32)).any())
    with tempfile.TemporaryDirectory() as tmp:
        for name, frame in (("dyn", dyn), ("sta", sta), ("outc", outc)):
            frame.to_parquet(Path(tmp) / f"{name}.parquet")
        try:
            cohort = yaib.load(Path(tmp), "mortality24", progress=False)
        except DataError as err:
            assert refused, f"refused valid tables: {err}"
            assert "\n" not in str(err)
            return
    assert not refused, "accepted tables the rules refuse"
    assert cohort.features == ["hr", "temp"]
    expected = {}
    for _, r in dyn[inside].iterrows():
        for f, name in enumerate(("hr", "temp")):
            if not np.isnan(r[name]):
                expected[(int(r["stay_id"]), int(r["time"]), f)] = r[name]
    got = {}
    for i, sid in enumerate(cohort.stay_ids):
        for h, f in zip(*np.nonzero(~np.isnan(cohort.X[i]))):
            got[(int(sid), int(h), int(f))] = float(cohort.X[i, h, f])
    assert set(got) == set(expected), "a value in the wrong stay, hour or feature (or lost)"
    for key, value in expected.items():
        assert got[key] == pytest.approx(np.float32(value))
    assert cohort.y.tolist() == [labels[int(s) - 1] for s in cohort.stay_ids]
