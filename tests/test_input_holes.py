"""Replays of the cases of issue 21 that once passed silently, crashed or misled.

Each test redoes one case as a user would meet it and sees the rebuild, the warning or the
one-line refusal that replaced the old behaviour.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tardiff import cli
from tardiff.classifiers import ClassifierConfig, TimeSeriesClassifier, load_classifier, save_classifier
from tardiff.data import load_cohort, physionet2012
from tardiff.data.cache import CacheWarning, read_json_verified, write_json, write_json_verified
from tardiff.data.splits import MIN_STAYS_PER_CLASS, fit_and_test_split, stratified_split
from tardiff.diffusion import GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule, train_diffusion
from tardiff.diffusion.training import load_denoiser
from tardiff.errors import DataError, DataWarning, ParameterError
from tardiff.experiment.config import ExperimentConfig

HEADER = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n"


def _record(rid, lines="01:00,HR,80\n") -> str:
    return f"Time,Parameter,Value\n00:00,RecordID,{rid}\n00:00,Age,60\n00:00,Gender,1\n{lines}"


def _write_set(folder: Path, records: dict[int, str], outcomes: str, letter="a") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / f"set-{letter}.tar.gz", "w:gz") as tar:
        for rid, text in records.items():
            data = text.encode()
            member = tarfile.TarInfo(f"set-{letter}/{rid}.txt")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    (folder / f"Outcomes-{letter}.txt").write_text(outcomes)
    return folder


def _pn(tmp_path, records=None, outcomes=None) -> Path:
    records = records or {1001: _record(1001), 1002: _record(1002)}
    outcomes = outcomes or HEADER + "1001,1,1,5,-1,1\n1002,1,1,2,-1,0\n"
    return _write_set(tmp_path / "pn", records, outcomes)


def _load(folder, **kw):
    return physionet2012.load(folder, sets="a", download=False, progress=False, **kw)


# ---------------------------------------------------------------- silent cases


def _small_train(path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((16, 4, 2)).astype(np.float32)
    y = (np.arange(16) % 2).astype(np.int64)
    net = UNet1D(UNetConfig.preset("smoke"), n_features=2, seed=0)
    return train_diffusion(net, GaussianDiffusion(beta_schedule("linear", 20)), X, y,
                           TrainConfig(iterations=3, batch_size=4, warmup=1, checkpoint_every=0),
                           seed=0, checkpoint_path=path, progress=False)


def _edit_weights(path, factor):
    ckpt = torch.load(path, weights_only=True)
    for key in ("model", "ema"):
        if key in ckpt:
            ckpt[key] = {k: v * factor if v.is_floating_point() else v for k, v in ckpt[key].items()}
    if "state_dict" in ckpt:
        ckpt["state_dict"] = {k: v * factor for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, path)  # as an editor would: no new checksum


def test_edited_denoiser_checkpoint_is_rebuilt_with_a_warning(tmp_path):
    path = tmp_path / "denoiser.pt"
    first = _small_train(path)
    _edit_weights(path, 1.3)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_denoiser(path)
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        again = _small_train(path)
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)  # retrained from scratch, bit-identical; never the edited weights
    load_denoiser(path)  # the rebuilt checkpoint verifies


def test_truncated_denoiser_checkpoint_is_rebuilt(tmp_path):
    path = tmp_path / "denoiser.pt"
    _small_train(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(CacheWarning):
        _small_train(path)
    load_denoiser(path)


def _classifier(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 5, 2)).astype("float32")
    y = np.arange(40) % 2
    clf = TimeSeriesClassifier(ClassifierConfig.preset("smoke", "gru")).fit(X, y, X, y)
    path = tmp_path / "guidance-classifier.pt"
    save_classifier(clf, path)
    return path


@pytest.mark.parametrize("how", ["negated", "truncated", "no checksum"])
def test_damaged_guidance_classifier_is_refused_or_rebuilt(tmp_path, how):
    path = _classifier(tmp_path)
    if how == "negated":
        _edit_weights(path, -1.0)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(DataError) as err:  # never an OSError, never the edited weights
        load_classifier(path)
    assert "\n" not in str(err.value)
    with pytest.warns(CacheWarning):
        assert load_classifier(path, if_damaged="none") is None
    assert not path.exists()  # deleted, so the cache writes a fresh one


@pytest.mark.parametrize("death, los", [("0.9", "5"), ("1.5", "5"), ("2", "5"), ("1", "3.5"), ("1", "-2")])
def test_labels_must_be_exact(tmp_path, death, los):
    folder = _pn(tmp_path, outcomes=HEADER + f"1001,1,1,{los},-1,{death}\n1002,1,1,2,-1,0\n")
    with pytest.raises(DataError, match=r"Outcomes-a.txt line 2 \(RecordID 1001\)") as err:
        _load(folder)
    assert "\n" not in str(err.value)


def test_cohort_cache_follows_content_not_mtime(tmp_path):
    folder = _pn(tmp_path)
    cache = tmp_path / "cache"
    first = load_cohort("physionet2012", folder, cache_dir=cache, download=False, progress=False, sets="a")
    outcomes = folder / "Outcomes-a.txt"
    st = outcomes.stat()
    outcomes.write_text(outcomes.read_text().replace("5,-1,1", "5,-1,0").replace("2,-1,0", "2,-1,1"))
    os.utime(outcomes, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p or rsync -a leave it
    assert outcomes.stat().st_size == st.st_size
    second = load_cohort("physionet2012", folder, cache_dir=cache, download=False, progress=False, sets="a")
    assert first.y.tolist() == [1, 0] and second.y.tolist() == [0, 1]


# ---------------------------------------------------------------- tracebacks that became one line


@pytest.mark.parametrize("n_pos", range(1, 11))
def test_every_small_class_count_splits_or_refuses_in_one_line(n_pos):
    for n in (40, 119, 1000):
        y = np.array([1] * n_pos + [0] * (n - n_pos))
        if n_pos >= MIN_STAYS_PER_CLASS:
            s = stratified_split(y, random_state=n_pos)
            assert all(y[getattr(s, p)].sum() >= 1 for p in ("train", "val", "test"))
        else:
            with pytest.raises(DataError, match=f"at least {MIN_STAYS_PER_CLASS}"):
                stratified_split(y)
        try:  # the subsample design: works, or one line
            fit_and_test_split(y, fit_positions=np.arange(n), test_positions=np.array([], int), fit_stays=n // 3)
        except DataError as err:
            assert "\n" not in str(err)


@pytest.mark.parametrize("rid", ["1e20", str(2 ** 63), "-5", "1.5"])
def test_huge_or_odd_record_id_is_refused(tmp_path, rid):
    folder = _pn(tmp_path, records={1: _record(rid)}, outcomes=HEADER + "1,1,1,5,-1,1\n")
    with pytest.raises(DataError, match="RecordID"):
        _load(folder)


def test_read_only_cohort_cache_warns_and_continues(tmp_path, monkeypatch):
    folder = _pn(tmp_path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tardiff.data.registry.save_cohort", refuse)
    with pytest.warns(CacheWarning, match="TARDIFF_CACHE_DIR"):
        cohort = load_cohort("physionet2012", folder, cache_dir=tmp_path / "ro", download=False, progress=False,
                             sets="a")
    assert cohort.y.tolist() == [1, 0]


@pytest.mark.parametrize("repeats", ["0", "-3"])
def test_bench_repeats_below_one(repeats, capsys):
    assert cli.main(["bench", "--repeats", repeats]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--repeats" in err


@pytest.mark.parametrize("seeds, ok", [(0, True), (3, True), (-1, False), ([-1], False)])
def test_single_int_seed(seeds, ok):
    if ok:
        assert ExperimentConfig.from_parameters(scale="smoke", seeds=seeds).seeds == (seeds,)
    else:
        with pytest.raises(ParameterError, match="0..4294967295"):
            ExperimentConfig.from_parameters(scale="smoke", seeds=seeds)


# ---------------------------------------------------------------- weak cases


def test_unknown_parameters_are_warned_with_examples(tmp_path):
    folder = _pn(tmp_path, records={1001: _record(1001, "01:00,HR,80\n02:00,Foo,1\n03:00,hr,2\n04:00, HR,3\n"),
                                    1002: _record(1002)})
    with pytest.warns(DataWarning, match=r"skipped 3 lines .*'Foo' \(set-a/1001.txt line 6\)") as rec:
        cohort = _load(folder)
    assert "' HR'" in str(rec[0].message) and cohort.info["unknown_parameters"] == 3


@pytest.mark.parametrize("where", ["record", "outcomes"])
def test_byte_order_mark_is_named(tmp_path, where):
    if where == "record":
        folder = _pn(tmp_path, records={1001: "\ufeff" + _record(1001), 1002: _record(1002)})
    else:
        folder = _pn(tmp_path, outcomes="\ufeff" + HEADER + "1001,1,1,5,-1,1\n1002,1,1,2,-1,0\n")
    with pytest.raises(DataError, match="byte-order mark"):
        _load(folder)


@pytest.mark.parametrize("value", ["1e39", "-1e39", "3.5e38"])
def test_values_beyond_float32_are_refused_naming_the_record(tmp_path, value):
    folder = _pn(tmp_path, records={1001: _record(1001, f"01:00,HR,{value}\n"), 1002: _record(1002)})
    with pytest.raises(DataError, match=r"1001.txt.*line 5.*float32.*RecordID 1001"):
        _load(folder)


def test_test_sets_without_set_c_says_so(tmp_path):
    folder = _pn(tmp_path)
    with pytest.raises(ParameterError, match="has no set-c.tar.gz and Outcomes-c.txt") as err:
        ExperimentConfig.from_parameters(dataset="physionet2012", scale="smoke", sets="a", test_sets="c",
                                         data_dir=str(folder))
    assert "--sets ab" not in str(err.value)


@pytest.mark.parametrize("params, match", [
    ({"dataset": "physionet2012", "sets": "aa"}, "distinct letters"),
    ({"sweep_unit": "nan"}, "sweep_unit"),
    ({"sweep_raw": "1,inf"}, "sweep_raw"),
])
def test_run_options_refused_naming_the_option(params, match):
    with pytest.raises(ParameterError, match=match) as err:
        ExperimentConfig.from_parameters(scale="smoke", **params)
    assert "guidance_scale" not in str(err.value)


def _no_constants(name):
    raise ValueError(f"not strict JSON: {name}")


def test_written_json_is_strict(tmp_path):
    doc = {"seed_sd": math.nan, "hi": math.inf, "rows": [{"lo": -math.inf, "n": np.int64(2)}], "x": np.float32(0.5)}
    write_json(tmp_path / "results.json", doc)
    back = json.loads((tmp_path / "results.json").read_text(), parse_constant=_no_constants)
    assert back == {"seed_sd": None, "hi": None, "rows": [{"lo": None, "n": 2}], "x": 0.5}
    write_json_verified(tmp_path / "record.json", doc)
    json.loads((tmp_path / "record.json").read_text(), parse_constant=_no_constants)
    restored = read_json_verified(tmp_path / "record.json")  # the cache gets its NaN back
    assert math.isnan(restored["seed_sd"]) and restored["hi"] == math.inf and restored["rows"][0]["lo"] == -math.inf


def test_offline_download_names_no_missing_part_file(tmp_path, monkeypatch):
    import urllib.error

    from tardiff.data import download

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        download.download_file("https://example.org/set-a.tar.gz", tmp_path / "set-a.tar.gz", progress=False)
    assert ".part" not in str(err.value) and "nothing was written" in str(err.value)
