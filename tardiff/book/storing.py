"""Writing a stored run: a finished run's folder kept as ``results/<scale>/<chapter>/`` for the book to render.

:func:`store_run` writes ``results.json`` (machine paths made symbolic), ``summary.csv``,
``provenance.json`` and the chapter's data (``chapter/``, computed once through
:class:`~tardiff.book.chapter.ExperimentChapter`), replacing ``dest`` atomically.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.book.chapter import CHAPTER_FILES, EMBEDDINGS, ExperimentChapter
from tardiff.book.paths import resolve_data_dir, symbolic_data_dir
from tardiff.book.provenance import _file_date, provenance
from tardiff.data.cache import atomic_path, read_json_verified, write_json
from tardiff.errors import DataError

__all__ = ["store_run"]


def _scrubbed(results: dict, dest: Path) -> dict:
    """``results`` with the machine's paths in ``config`` made symbolic (data) or dropped (cache)."""
    results = dict(results)
    config = dict(results.get("config", {}))
    if config.get("data_dir"):
        config["data_dir"] = symbolic_data_dir(config["data_dir"])
    config["cache_dir"] = None
    config["out_dir"] = dest.as_posix() if not dest.is_absolute() else dest.name
    results["config"] = config
    return results


def _match_records(run_dir: Path, results: dict) -> list[dict]:
    """The run's records with their test predictions, read (verified) from ``run_dir/records``."""
    wanted = {}
    for r in results.get("records", []):
        key = (r["method"], r["protocol"], r.get("alpha"), r["seed"], r["evaluator"], r.get("guidance_scale"),
               r.get("guidance_norm"), r.get("auprc"))
        wanted[key] = r
    found = {}
    for path in sorted((run_dir / "records").glob("*.json")):
        record = read_json_verified(path)
        if not record:
            continue
        key = (record["method"], record["protocol"], record.get("alpha"), record["seed"], record["evaluator"],
               record.get("guidance_scale"), record.get("guidance_norm"), record.get("auprc"))
        if key in wanted:
            found[key] = record
    return [found.get(k, v) for k, v in wanted.items()]


def _write_frame(frame: pd.DataFrame, path: Path, *, index: bool = False, float_format: str | None = None) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index, float_format=float_format)


def _experiment_for(run_dir: Path, results: dict):
    """Rebuild the run's :class:`~tardiff.experiment.Experiment` (its data and, through the cache, its models)."""
    from tardiff.experiment import Experiment, ExperimentConfig

    known = {f.name for f in fields(ExperimentConfig)}
    config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in results["config"].items() if k in known}
    if config.get("data_dir"):
        config["data_dir"] = resolve_data_dir(config["data_dir"])
    config.update(out_dir=str(run_dir), progress=False)
    return Experiment(ExperimentConfig(**config))


def store_run(run_dir: str | os.PathLike, dest: str | os.PathLike, *, chapter: ExperimentChapter | None = None,
              experiment: bool = True, pieces: dict | None = None, command: str | None = None,
              run_date: str | None = None, stored_with: str | None = None) -> Path:
    """Store a finished run's folder as ``dest`` (``results/<scale>/<chapter>``), for the book to render.

    Parameters
    ----------
    run_dir : path
        The run's output folder (``tardiff run --out``, or the notebook's ``out_dir``), with
        ``results.json``, ``summary.csv`` and ``records/``.
    dest : path
        The folder to write; replaced atomically when it exists.
    chapter : ExperimentChapter, optional
        The live chapter of the run (the notebook passes its own); else, with ``experiment``,
        the run's experiment is rebuilt from ``results.json``'s config, which needs its data
        and, so that nothing is retrained, the artifact cache it ran with.
    experiment : bool
        False: store ``results.json``, ``summary.csv`` and ``provenance.json`` only; the
        chapter then notes the sections (data card, samples, fidelity, fairness) it cannot show.
    pieces : dict, optional
        Parts of the chapter's data already computed (names of :data:`CHAPTER_FILES`).
    command : str, optional
        The command that made the run, if known; default the equivalent :func:`run_command`.
    run_date : str, optional
        When the run finished (default: the time ``results.json`` was written).
    stored_with : str, optional
        What stored it, for ``provenance.json`` (default: this process's command line).

    Returns
    -------
    pathlib.Path
        ``dest``.

    Examples
    --------
    >>> store_run("runs/physionet2012", "results/paper/physionet2012")   # doctest: +SKIP
    PosixPath('results/paper/physionet2012')
    """
    from tardiff.report import load_results

    run_dir, dest = Path(run_dir), Path(dest)
    results = load_results(run_dir)
    if not (run_dir / "summary.csv").is_file():
        raise DataError(f"{run_dir}/summary.csv is missing; the run did not finish (run it again, it resumes)")
    if chapter is None and experiment:
        exp = _experiment_for(run_dir, results)
        chapter = ExperimentChapter.from_experiment(exp, _match_records(run_dir, results))
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.storing")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "chapter").mkdir(parents=True)
    try:
        write_json(tmp / "results.json", _scrubbed(results, dest))
        shutil.copyfile(run_dir / "summary.csv", tmp / "summary.csv")
        record = provenance(results, run_date=run_date or _file_date(run_dir / "results.json"), stored_with=stored_with)
        if command:
            record["command"] = command
        write_json(tmp / "provenance.json", record)
        if chapter is not None:
            _store_chapter(chapter, tmp / "chapter", dict(pieces or {}))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def _store_chapter(chapter: ExperimentChapter, folder: Path, pieces: dict) -> None:
    get = lambda name, compute: pieces[name] if name in pieces else compute()  # noqa: E731
    write_json(folder / CHAPTER_FILES["cohort"], get("cohort", chapter.cohort_summary))
    _write_frame(get("dataset_card", chapter.dataset_card), folder / CHAPTER_FILES["dataset_card"], index=True)
    _write_frame(get("trajectories", chapter.trajectory_bands), folder / CHAPTER_FILES["trajectories"],
                 float_format="%.6g")
    frames = []
    for kind in EMBEDDINGS:
        real, synthetic = get(f"embeddings_{kind}", lambda: chapter.embeddings(kind))
        for method in synthetic:
            for source, points in (("real", real[method]), ("synthetic", synthetic[method])):
                points = np.asarray(points)
                frames.append(pd.DataFrame({"embedding": kind, "method": method, "source": source,
                                            "x": points[:, 0], "y": points[:, 1]}))
    embeddings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["embedding", "method", "source", "x", "y"])
    _write_frame(embeddings, folder / CHAPTER_FILES["embeddings"], float_format="%.5g")
    _write_frame(get("fidelity", chapter.fidelity_table), folder / CHAPTER_FILES["fidelity"], index=True)
    _write_frame(get("fairness", chapter.fairness_table), folder / CHAPTER_FILES["fairness"])
