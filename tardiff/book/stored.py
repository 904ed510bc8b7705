"""Stored runs: an experiment's results kept in the repository, and the chapter rendered from them.

A finished run (``tardiff run`` or the experiment notebook, on any machine: typically a GPU at
``paper`` scale) is stored as a small folder, ``results/<scale>/<chapter>/``, where ``<chapter>``
is the book's name for the dataset's chapter (``simulated``, ``physionet2012``, ``mimic3``,
``eicu``, ``eicu_demo``: the names ``tardiff book --only`` takes):

``results.json``, ``summary.csv``
    what the run wrote (machine paths in its ``config`` made symbolic);
``provenance.json``
    where the numbers come from: git commit, package, torch and numpy versions, device and its
    name, dates, the equivalent ``tardiff run`` command (:func:`provenance`);
``chapter/``
    what the chapter shows beyond ``results.json``, computed once where the data and the
    models were: the cohort summary and data card, the trajectory bands
    (:func:`tardiff.plots.trajectory_bands`), the PCA and t-SNE embeddings, the fidelity and
    privacy table and the fairness table. A few hundred kB; no stay of the cohort is stored.

:func:`store_run` writes such a folder from a run's output folder (``tardiff book --store
RUN_DIR --as results/paper/physionet2012``), and the experiment notebook writes one when given
``store_dir``. With ``results_dir`` the notebook renders the chapter from a stored folder
(:meth:`ExperimentChapter.load`) without loading data or training anything, and
``tardiff book --results results/paper`` builds the whole book that way, so a CPU build
publishes GPU results.

:class:`ExperimentChapter` is the one interface the notebook reads, over a live
:class:`~tardiff.experiment.Experiment` or over a stored folder, so both render through the
same package functions.

Examples
--------
>>> from tardiff.book.stored import store_run, ExperimentChapter
>>> store_run("runs/physionet2012", "results/paper/physionet2012")   # doctest: +SKIP
PosixPath('results/paper/physionet2012')
>>> ExperimentChapter.load("results/paper/physionet2012").provenance["device_name"]  # doctest: +SKIP
'NVIDIA H200'
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import fields
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.data.cache import atomic_path, read_json_verified, write_json
from tardiff.errors import DataError, ParameterError

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
DATA_VARIABLE = "TARDIFF_DATA_DIR"


# --------------------------------------------------------------------------------------------
# Paths shown in pages and stored files


def symbolic_data_dir(path: str | os.PathLike | None, data_root: str | os.PathLike | None = None) -> str | None:
    """``path`` as ``$TARDIFF_DATA_DIR/<sub>``: no machine's folder names in a page or a stored file.

    ``data_root`` (default ``$TARDIFF_DATA_DIR``) is the folder holding one sub-folder per
    dataset; a path outside it keeps only its last folder name (``/secure/mimic3`` becomes
    ``$TARDIFF_DATA_DIR/mimic3``). Already symbolic paths and None are returned as they are.

    Examples
    --------
    >>> symbolic_data_dir("/data/yaib_demo/mortality24/eicu_demo", "/data")
    '$TARDIFF_DATA_DIR/yaib_demo/mortality24/eicu_demo'
    >>> symbolic_data_dir("/secure/mimic3", "/data")
    '$TARDIFF_DATA_DIR/mimic3'
    """
    if path is None or str(path).startswith("$"):
        return None if path is None else str(path)
    path = Path(path).expanduser()
    root = data_root if data_root is not None else os.environ.get(DATA_VARIABLE)
    if root:
        try:
            return f"${DATA_VARIABLE}/{path.resolve().relative_to(Path(root).expanduser().resolve()).as_posix()}"
        except ValueError:
            pass
    return f"${DATA_VARIABLE}/{path.name}"


def resolve_data_dir(data_dir: str | None) -> str | None:
    """A notebook's ``data_dir`` parameter with ``$VARIABLES`` and ``~`` expanded (None stays None).

    The book passes ``$TARDIFF_DATA_DIR/<dataset>`` so that no page shows the folder names of
    the machine that built it; this resolves it in the kernel.

    Raises
    ------
    ParameterError
        If the path names an environment variable that is not set.

    Examples
    --------
    >>> resolve_data_dir("$HOME/x") == os.path.join(os.environ["HOME"], "x")
    True
    """
    if data_dir is None:
        return None
    expanded = os.path.expanduser(os.path.expandvars(str(data_dir)))
    if "$" in expanded:
        variable = expanded[expanded.index("$"):].split("/", 1)[0].strip("${}")
        raise ParameterError(f"data_dir {data_dir!r} refers to ${variable}, which is not set; set it to the folder "
                             "holding one sub-folder per dataset, or pass the data folder itself")
    return expanded


# --------------------------------------------------------------------------------------------
# Provenance


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _device_name(device: str) -> str:
    """A readable name of the device a run used, asked of this machine (where the run normally is)."""
    import torch

    if str(device).startswith("cuda"):
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
        return "a CUDA GPU (stored on a machine without one: name unknown)"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores)" if cpu else "CPU"


def run_command(config: dict) -> str:
    """The ``tardiff run`` command line that repeats a run, from its ``results.json`` config.

    Every option is spelled out (methods, seeds, evaluators and the sweep as resolved), so the
    command does not depend on the defaults of a later version. Settings the command line
    cannot set (``controls``, ``split_seed``, ``evaluate_at``, ``similarity``) are appended as
    a comment when they differ from the defaults.

    Examples
    --------
    >>> run_command({"dataset": "simulated", "scale": "smoke", "methods": ["real", "smote"], "seeds": [0]})
    'tardiff run simulated --scale smoke --methods real,smote --seeds 0'
    """
    from tardiff.experiment import ExperimentConfig

    defaults = {f.name: f.default for f in fields(ExperimentConfig)}
    join = lambda values: ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)  # noqa: E731
    parts = ["tardiff", "run", str(config["dataset"])]
    flags = (("task", "--task"), ("data_dir", "--data-dir"), ("sets", "--sets"), ("test_sets", "--test-sets"),
             ("scale", "--scale"), ("methods", "--methods"), ("seeds", "--seeds"), ("evaluators", "--evaluators"),
             ("guidance_scale", "--guidance-scale"), ("guidance_set", "--guidance-set"),
             ("guidance_norm", "--guidance-norm"), ("guide_last", "--guide-last"), ("sweep_raw", "--sweep-raw"),
             ("sweep_unit", "--sweep-unit"), ("device", "--device"), ("threads", "--threads"))
    for name, flag in flags:
        value = config.get(name)
        if value is None or (name not in ("methods", "seeds", "evaluators", "sweep_raw", "sweep_unit", "scale")
                             and value == defaults.get(name)):
            continue
        if isinstance(value, (list, tuple)):
            value = join(value)
        elif isinstance(value, float):
            value = f"{value:g}"
        value = str(value)  # a symbolic data folder is double-quoted, so that the shell still expands it
        parts += [flag, f'"{value}"' if value.startswith("$") else shlex.quote(value) if value else "''"]
    extra = [f"{name}={config[name]!r}" for name in ("controls", "split_seed", "evaluate_at", "similarity")
             if name in config and config[name] != defaults.get(name)]
    return " ".join(parts) + (f"  # with {', '.join(extra)}" if extra else "")


def provenance(results: dict, *, run_date: str | None = None, stored_with: str | None = None) -> dict:
    """Where a run's numbers come from: versions, commit, device, dates and the command.

    Versions and the commit are those of the environment storing the run, which is the one
    that ran it when the notebook stores it (``store_dir``) or ``tardiff book --store`` runs
    on the same machine; ``tardiff_version_run`` is the version the run itself recorded.
    """
    import torch

    config = results.get("config", {})
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "dataset": config.get("dataset"), "task": (results.get("records") or [{}])[0].get("task", config.get("task")),
        "scale": config.get("scale"), "device": results.get("device"),
        "device_name": _device_name(str(results.get("device", "cpu"))),
        "git_commit": commit, "git_dirty": None if dirty is None else bool(dirty),
        "tardiff_version": _package_version(), "tardiff_version_run": results.get("version"),
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python_version": platform.python_version(), "platform": platform.platform(terse=True),
        "run_date": run_date, "stored_date": _now(),
        "command": run_command(config) if config else None,
        "stored_with": stored_with or " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def _package_version() -> str:
    import tardiff

    return tardiff.__version__


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _file_date(path: Path) -> str | None:
    try:
        return _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc).replace(microsecond=0).isoformat()
    except OSError:
        return None


# --------------------------------------------------------------------------------------------
# The chapter's data, live or stored


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
        out = self.experiment.config.out_dir
        return store_run(out, dest, chapter=self, pieces=pieces, command=command, run_date=run_date,
                         stored_with=f"notebooks/experiment.ipynb with store_dir={Path(dest).as_posix()!r}")


def resolve_results_dir(path: str | os.PathLike) -> Path:
    """A stored run's folder as given, or relative to the repository root when it is not found from here.

    The book passes paths relative to the repository root; a notebook run elsewhere (papermill
    with another working directory) still finds them.
    """
    path = Path(os.path.expanduser(os.path.expandvars(str(path))))
    if not path.is_absolute() and not path.exists():
        candidate = Path(__file__).resolve().parents[2] / path
        if candidate.exists():
            return candidate
    return path


# --------------------------------------------------------------------------------------------
# Writing a stored run


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
