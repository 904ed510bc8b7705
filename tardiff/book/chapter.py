"""The experiment chapter's data, live or stored: :class:`ExperimentChapter`, the one interface the notebook reads.

Over a live :class:`~tardiff.experiment.Experiment` it computes each piece (through the
artifact cache); over a stored run's folder (:mod:`tardiff.book.stored`) it reads the piece
that was stored, so both render through the same package functions.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields
from functools import cached_property
from pathlib import Path

import pandas as pd

from tardiff import registry
from tardiff.book.paths import resolve_results_dir
from tardiff.book.provenance import _now, provenance
from tardiff.data.cache import atomic_path
from tardiff.errors import ParameterError

__all__ = ["CHAPTER_FILES", "EMBEDDINGS", "ExperimentChapter"]

#: The files of a stored run's ``chapter/`` folder, by what the chapter calls them.
CHAPTER_FILES = {
    "cohort": "cohort.json",
    "dataset_card": "dataset_card.csv",
    "trajectories": "trajectories.csv",
    "embeddings": "embeddings.csv",
    "fidelity": "fidelity.csv",
    "fairness": "fairness.csv",
}
#: The embeddings the chapter draws.
EMBEDDINGS = ("pca", "tsne")


class ExperimentChapter:
    """What the experiment chapter shows, from a live experiment or from a stored run.

    Build it with :meth:`from_experiment` (the data is loaded and :meth:`run` trains and
    evaluates, through the artifact cache) or :meth:`load` (a stored folder: nothing is
    loaded or trained). Every accessor returns the same kind of object either way; a stored
    run that lacks a piece (stored without the experiment) gives an empty table, and
    :meth:`missing` says why.

    Examples
    --------
    >>> chapter = ExperimentChapter.load("results/paper/physionet2012")   # doctest: +SKIP
    >>> chapter.summary().columns[:3].tolist()                            # doctest: +SKIP
    ['dataset', 'task', 'method']
    """

    def __init__(self, *, experiment=None, folder: str | os.PathLike | None = None):
        if (experiment is None) == (folder is None):
            raise ParameterError("ExperimentChapter needs an experiment or a stored folder, not both or neither")
        self.experiment = experiment
        self.folder = None if folder is None else Path(folder)
        self._records: list[dict] | None = None

    # ---- construction
    @classmethod
    def from_experiment(cls, experiment, records: list[dict] | None = None) -> "ExperimentChapter":
        """A chapter over a live :class:`~tardiff.experiment.Experiment` (``records`` if it already ran)."""
        chapter = cls(experiment=experiment)
        chapter._records = records
        return chapter

    @classmethod
    def load(cls, folder: str | os.PathLike, *, dataset: str | None = None) -> "ExperimentChapter":
        """A chapter over a stored run's folder; ``dataset``, when given, must be the stored run's.

        Raises
        ------
        DataError
            If the folder holds no ``results.json``.
        ParameterError
            If the stored run is of another dataset.
        """
        from tardiff.report import load_results

        folder = resolve_results_dir(folder)
        results = load_results(folder)
        stored = results.get("config", {}).get("dataset")
        if dataset is not None and stored != dataset:
            raise ParameterError(f"results_dir {folder} holds a run of {stored!r}, not {dataset!r}; point results_dir "
                                 f"at the {dataset} run or leave dataset at {stored!r}")
        chapter = cls(folder=folder)
        chapter.__dict__["results"] = results
        return chapter

    @property
    def stored(self) -> bool:
        """Whether the chapter reads a stored run (nothing is trained or loaded)."""
        return self.folder is not None

    # ---- the run
    def config(self, out_dir: str | None = None):
        """The run's :class:`~tardiff.experiment.ExperimentConfig`.

        For a stored run it is rebuilt from ``results.json`` (on the CPU, writing to ``out_dir``):
        what the chapter reads from it (methods, seeds, evaluators, scale) is the stored run's.
        """
        if not self.stored:
            return self.experiment.config
        from tardiff.experiment import ExperimentConfig

        known = {f.name for f in fields(ExperimentConfig)}
        stored = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.results["config"].items() if k in known}
        stored.update(device="cpu", cache_dir=None, progress=False,
                      out_dir=str(out_dir) if out_dir is not None else str(self.folder))
        return ExperimentConfig(**stored)

    def run(self, out_dir: str | os.PathLike | None = None) -> list[dict]:
        """Run the experiment (live), or copy the stored results into ``out_dir`` (stored); return the records.

        Live records carry each model's test predictions; stored ones are those of
        ``results.json`` (without them). The stored ``results.json``, ``summary.csv`` and
        ``provenance.json`` land in ``out_dir`` where the book's Results page gathers them.
        """
        if not self.stored:
            self._records = self.experiment.run()
            self.__dict__.pop("results", None)
            return self._records
        if out_dir is not None and Path(out_dir).resolve() != self.folder.resolve():
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            for name in ("results.json", "summary.csv", "provenance.json"):
                if (self.folder / name).is_file():
                    with atomic_path(out / name) as tmp:
                        shutil.copyfile(self.folder / name, tmp)
        return list(self.results.get("records", []))

    @cached_property
    def results(self) -> dict:
        """The run's ``results.json``."""
        from tardiff.report import load_results

        return load_results(self.experiment.config.out_dir)

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over seeds (:func:`tardiff.experiment.summarise` of ``results.json``)."""
        from tardiff.experiment import summarise

        return summarise(self.results["records"], self.results.get("generators", []))

    @property
    def reference(self) -> dict:
        """Test prevalence and, on simulated data, the Bayes ceiling (``results.json``'s ``reference``)."""
        return self.results["reference"]

    @cached_property
    def provenance(self) -> dict:
        """``provenance.json`` of a stored run; for a live one, this machine's (:func:`provenance`)."""
        if self.stored:
            path = self.folder / "provenance.json"
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        return provenance(self.results, run_date=_now())

    def source_note(self) -> str:
        """A MyST note naming the stored run the chapter shows (empty for a live run)."""
        if not self.stored:
            return ""
        p = self.provenance
        config = self.results.get("config", {})
        scale = p.get("scale") or config.get("scale")
        device = p.get("device_name") or p.get("device") or self.results.get("device", "an unknown device")
        commit = (p.get("git_commit") or "")[:10]
        lines = [":::{note} Results from a stored run", "",
                 f"This chapter shows a run at `{scale}` scale on {device}"
                 + (f", made with commit `{commit}`" if commit else "")
                 + (f" on {p['run_date'][:10]}" if p.get("run_date") else "")
                 + f" and stored in the repository (`{self.folder.as_posix()}`). Nothing was trained or loaded when "
                 "this page was built: the tables and figures are drawn from the stored results."]
        if p.get("command"):
            lines += ["", "To repeat the run:", "", "```bash", p["command"], "```"]
        missing = [name for name in ("trajectories", "embeddings", "fidelity", "fairness", "cohort")
                   if not (self.folder / "chapter" / CHAPTER_FILES[name]).is_file()]
        if missing:
            lines += ["", f"Stored without: {', '.join(missing)} (those sections say so)."]
        return "\n".join(lines + [":::"]) + "\n"

    def missing(self, name: str) -> str:
        """Why a stored run has no ``name`` (one of :data:`CHAPTER_FILES`); empty when it has it, or the run is live."""
        if name not in CHAPTER_FILES:
            raise ParameterError(f"unknown chapter piece {name!r}; choose from {', '.join(CHAPTER_FILES)}")
        if not self.stored or self._stored_file(name) is not None:
            return ""
        return (f"not stored with this run ({CHAPTER_FILES[name]} is missing from {self.folder.as_posix()}/chapter): "
                "it was stored without its experiment; store it again where the data and the run's cache are "
                "(tardiff book --store RUN_DIR --as DEST)")

    @property
    def device(self) -> str:
        """The device the run used (for a stored run, its name as recorded)."""
        if not self.stored:
            return str(self.experiment.device)
        return str(self.provenance.get("device_name") or self.results.get("device", "unknown"))

    @property
    def task(self) -> str:
        """The cohort's task (the dataset's default resolved)."""
        if not self.stored:
            return str(self.experiment.prepared.cohort.task)
        records = self.results.get("records") or [{}]
        return str(records[0].get("task") or self.results.get("config", {}).get("task"))

    @property
    def results_dir(self) -> Path:
        """The folder holding ``results.json``: the stored folder, or the live run's ``out_dir``."""
        return self.folder if self.stored else Path(self.experiment.config.out_dir)

    def _stored_file(self, name: str) -> Path | None:
        path = self.folder / "chapter" / CHAPTER_FILES[name]
        return path if path.is_file() else None

    def _stored_frame(self, name: str, **read) -> pd.DataFrame:
        path = self._stored_file(name)
        if path is None:
            return pd.DataFrame()
        try:
            return pd.read_csv(path, **read)
        except pd.errors.EmptyDataError:  # an empty table was stored (e.g. no sex or age in the cohort)
            return pd.DataFrame()

    # ---- what the sections show
    def cohort_summary(self) -> dict:
        """:func:`tardiff.data.card.data_summary` of the cohort (``{}`` when not stored)."""
        if self.stored:
            path = self._stored_file("cohort")
            return json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
        from tardiff.data.card import data_summary

        config = self.experiment.config
        return data_summary(self.experiment.prepared.cohort, seed=config.split_seed_of(config.seeds[0]))

    def dataset_card(self) -> pd.DataFrame:
        """:func:`tardiff.data.card.dataset_card`: per-feature missingness and ranges in clinical units."""
        if self.stored:
            return self._stored_frame("dataset_card", index_col="feature")
        from tardiff.data.card import dataset_card

        return dataset_card(self.experiment.prepared.cohort)

    def generative_methods(self) -> list[str]:
        """The run's methods that create new stays."""
        methods = self.results.get("config", {}).get("methods") if self.stored else self.experiment.config.methods
        return [m for m in methods if registry.method(m).synthetic]

    def _synthetic(self, method: str):
        from tardiff.evaluation.experiment_metrics import synthetic_sample

        return synthetic_sample(self.experiment, method, self.experiment.config.seeds[0])

    def trajectory_bands(self) -> pd.DataFrame:
        """:func:`tardiff.plots.trajectory_bands` of the real training stays and each method's samples."""
        if self.stored:
            return self._stored_frame("trajectories")
        from tardiff.plots import trajectory_bands

        p = self.experiment.prepared
        synthetic = {}
        for method in self.generative_methods():
            X_s, y_s = self._synthetic(method)
            synthetic[method] = (p.scaler.inverse_transform(X_s), y_s)
        return trajectory_bands(p.scaler.inverse_transform(p.X_train), p.y_train, synthetic, p.cohort.features,
                                p.cohort.units)

    def embeddings(self, kind: str = "pca") -> tuple[dict, dict]:
        """``(real, synthetic)``: per generative method, the 2-D embedding of the real training stays
        and of its samples (:func:`tardiff.evaluation.fidelity.embed_2d`); empty dicts when not stored."""
        if kind not in EMBEDDINGS:
            raise ParameterError(f"kind must be one of {EMBEDDINGS}, not {kind!r}")
        if self.stored:
            frame = self._stored_frame("embeddings")
            real, synthetic = {}, {}
            if len(frame):
                frame = frame[frame["embedding"] == kind]
                for method, part in frame.groupby("method", sort=False):
                    for source, target in (("real", real), ("synthetic", synthetic)):
                        target[method] = part.loc[part["source"] == source, ["x", "y"]].to_numpy()
            return real, synthetic
        from tardiff.evaluation.fidelity import embed_2d

        p, config = self.experiment.prepared, self.experiment.config
        real, synthetic = {}, {}
        for method in self.generative_methods():
            X_s, _ = self._synthetic(method)
            real[method], synthetic[method] = embed_2d(p.X_train, X_s, method=kind, random_state=config.split_seed_of(config.seeds[0]),
                                                       max_samples=config.preset.embedding_samples)
        return real, synthetic

    def fidelity_table(self) -> pd.DataFrame:
        """:func:`tardiff.evaluation.experiment_metrics.fidelity_privacy_table` at the run's first seed."""
        if self.stored:
            return self._stored_frame("fidelity", index_col="method")
        from tardiff.evaluation.experiment_metrics import fidelity_privacy_table

        config = self.experiment.config
        return fidelity_privacy_table(self.experiment, seed=config.seeds[0], epochs=10 if config.scale != "smoke" else 2,
                                      max_samples=1000 if config.scale != "smoke" else 200)

    def fairness_table(self) -> pd.DataFrame:
        """:func:`tardiff.evaluation.experiment_metrics.fairness_table` of the first evaluator at the first seed.

        Needs :meth:`run` first."""
        if self.stored:
            return self._stored_frame("fairness")
        from tardiff.evaluation.experiment_metrics import fairness_table

        if self._records is None:
            raise ParameterError("the fairness table needs the run's records: call run() first")
        config = self.experiment.config
        return fairness_table(self.experiment, self._records, evaluator=config.evaluators[0], seed=config.seeds[0])

    # ---- storing
    def save(self, dest: str | os.PathLike, *, pieces: dict | None = None, command: str | None = None,
             run_date: str | None = None) -> Path:
        """Store this (live, finished) run as ``dest``: results, provenance and the chapter's data.

        ``pieces`` maps names of :data:`CHAPTER_FILES` to what the notebook already computed
        (so nothing is computed twice); the rest is computed here.
        """
        if self.stored:
            raise ParameterError("this chapter already reads a stored run; copy its folder instead")
        from tardiff.book.storing import store_run  # storing builds on this module

        out = self.experiment.config.out_dir
        return store_run(out, dest, chapter=self, pieces=pieces, command=command, run_date=run_date,
                         stored_with=f"notebooks/experiment.ipynb with store_dir={Path(dest).as_posix()!r}")
