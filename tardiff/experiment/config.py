"""What determines one experiment: :class:`ExperimentConfig`, and the checks made before any work."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence, get_args

import numpy as np

from tardiff import registry
from tardiff.data.cache import artifact_cache_dir
from tardiff.data.registry import DATASETS
from tardiff.errors import ParameterError
from tardiff.guidance import GuidanceNorm, GuidanceOptions, GuidanceSet
from tardiff.presets import (
    DEFAULT_GUIDANCE_SCALE,
    DEVICES,
    SCALES,
    ExperimentPreset,
    Scale,
    check_scale,
    experiment_preset,
    resolve_device,
)

#: A setting's parameter default when it is the field's own default.
SAME = "<the field's default>"

#: What a setting's values are on a command line or in a notebook (lists are comma-separated).
KINDS = ("str", "int", "float", "list")

#: How a setting that changes results reaches the cache keys, so no cached artifact outlives a change:
#:
#: - ``data``: its (resolved) value is hashed into the data key, which every artifact's key starts from;
#: - ``content``: it changes the prepared cohort, whose content is hashed into the data key;
#: - ``guidance``: it is a field of :class:`~tardiff.guidance.GuidanceOptions`, whose ``key()`` keys
#:   the synthetic sets built with it;
#: - ``tasks``: it chooses which artifacts exist (methods, replicates, evaluators, sweep points),
#:   each keyed by its own identity.
KEY_ROUTES = ("data", "content", "guidance", "tasks")


@dataclass(frozen=True)
class Setting:
    """How one run setting is offered and recorded (the metadata of its config field)."""

    help: str
    kind: str = "str"
    item: str = "str"  # a list's items: str, int or float
    flag: str | None = ""  # "": derived from the name (--guide-last); None: not on the command line
    positional: bool = False
    choices: tuple | None = None
    notebook: bool = True  # in the experiment notebook's parameters cell
    changes_results: bool = True  # False: which folders, progress bars; never part of a cache key
    key: str | None = None  # how a result-changing setting reaches the cache keys (one of KEY_ROUTES)
    resolved_by: str | None = None  # the config method giving the value a key holds (device: auto -> cpu)
    provenance: bool = True  # the command that repeats a run gives it (False: where outputs and caches go)
    spell_out: bool = False  # the provenance command gives it even at its default (scale- or version-dependent)
    per_scale: str | None = None  # the ExperimentPreset attribute holding its default when None
    parameter_default: Any = SAME  # what the CLI and the notebook default to, when not the field's default

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting kind must be one of {KINDS}; got {self.kind!r}")
        if self.changes_results != (self.key is not None) or (self.key is not None and self.key not in KEY_ROUTES):
            raise ValueError(f"a setting that changes results names how it reaches the cache keys, one of "
                             f"{KEY_ROUTES}, and no other setting does; got key={self.key!r}")


def setting(default, help: str, **options) -> dataclasses.Field:
    """A config field with its :class:`Setting` (``options`` are Setting's fields)."""
    return dataclasses.field(default=default, metadata={"setting": Setting(help=help, **options)})


def declared(config_class=None) -> Iterator[tuple[dataclasses.Field, Setting, str | None]]:
    """Every declared run setting of ``config_class`` (default :class:`ExperimentConfig`) in field order:
    (field, setting, command-line flag or None)."""
    for f in dataclasses.fields(ExperimentConfig if config_class is None else config_class):
        meta = f.metadata.get("setting")
        if meta is None:
            raise TypeError(f"config field {f.name!r} has no setting(...) declaration")
        flag = None if meta.flag is None or meta.positional else (meta.flag or "--" + f.name.replace("_", "-"))
        yield f, meta, flag


#: The methods a run compares by default: the reference, the baselines, TarDiff and its calibrated
#: variant (the controls join the reference automatically, see :meth:`ExperimentConfig.all_methods`).
METHODS = tuple(m.name for m in registry.methods() if m.role != "control")


@dataclass
class ExperimentConfig:
    """Everything that determines one experiment's results.

    Examples
    --------
    >>> cfg = ExperimentConfig(dataset="simulated", scale="smoke", methods=("real", "smote"))
    >>> cfg.resolved_device()
    'cpu'
    """

    dataset: str = setting("simulated", "dataset name (see `tardiff datasets`)", positional=True, key="content")
    task: str | None = setting(None, "prediction task (default: the dataset's first task)", key="content")
    data_dir: str | None = setting(None, "folder with the raw files (default $TARDIFF_DATA_DIR/<dataset> or "
                                         "data/<dataset>)", changes_results=False)  # its content is keyed
    sets: str | None = setting(None, "PhysioNet 2012 only: which challenge sets to read, a, ab (default) or abc",
                                 key="content")
    test_sets: str | None = setting(None, "PhysioNet 2012 only: challenge sets held out as the test split, e.g. c "
                                          "(train and select on the others: external validation)", key="content")
    scale: Scale = setting("cpu", "smoke: seconds (tests); cpu: minutes on a laptop (default); paper: the papers' "
                                  "sizes, GPU", choices=SCALES, spell_out=True, key="data")
    methods: tuple[str, ...] = setting(METHODS, f"comma-separated subset of {','.join(registry.method_names())} "
                                                f"(default {','.join(METHODS)}; the controls "
                                                f"{','.join(registry.method_names('control'))} join real automatically)",
                                       kind="list", spell_out=True, parameter_default=None, key="tasks")
    controls: bool = setting(True, "the controls join real data alone", flag=None, notebook=False, key="tasks")
    # One seed per replicate: seed s draws replicate s's split and seeds every component trained in it
    seeds: tuple[int, ...] | None = setting(None, "comma-separated replicates, each its own split and model seeds",
                                            kind="list", item="int", spell_out=True, per_scale="seeds", key="tasks")
    # None: each replicate its own split; an int: one split for all (no replication)
    split_seed: int | None = setting(None, "one split for every seed (no replication)", flag=None, notebook=False,
                                            key="content")
    evaluators: tuple[str, ...] | None = setting(
        None, f"downstream classifiers that judge each method, from {','.join(registry.evaluator_names())}",
        kind="list", spell_out=True, per_scale="evaluators", key="tasks")
    guidance_scale: float = setting(DEFAULT_GUIDANCE_SCALE, f"TarDiff's w (the paper uses {DEFAULT_GUIDANCE_SCALE:g})",
                                    kind="float", key="guidance")
    guidance_set: GuidanceSet = setting("val", "what G averages over: val (paper), train (public code), minority "
                                               "(paper Table 5)", choices=get_args(GuidanceSet), key="guidance")
    evaluate_at: Literal["x_t", "x0_hat"] = setting("x_t", "where the score is taken", flag=None, notebook=False,
                                                    key="guidance")
    similarity: Literal["dot", "cosine"] = setting("dot", "the influence score's similarity", flag=None,
                                                   notebook=False, key="guidance")
    guidance_norm: GuidanceNorm = setting("raw", "raw: the paper's shift w grad_x s; unit: w times the noise level "
                                                 "of x_t along grad_x s", choices=get_args(GuidanceNorm),
                                   key="guidance")
    guide_last: int = setting(0, "guide only the last K sampling steps (default 0: every step, as the paper)",
                              kind="int", key="guidance")
    sweep_raw: tuple[float, ...] | None = setting(None, "the guidance sweep's raw scales w ('' for none)",
                                                  kind="list", item="float", spell_out=True, per_scale="sweep_raw",
                                                  key="tasks")
    sweep_unit: tuple[float, ...] | None = setting(
        None, "its calibrated (unit) scales, from which tardiff_cal is chosen with 0 in every replicate on its "
              "selection stays", kind="list", item="float", spell_out=True, per_scale="sweep_unit",
        key="tasks")
    device: Literal["auto", "cpu", "cuda"] = setting("auto", "where to compute", choices=DEVICES, key="data",
                                                                resolved_by="resolved_device")
    # PyTorch's CPU threads inside every task, whichever executor runs it: the numbers depend on
    # it (sums taken in another order), so it is one setting rather than each process's default
    threads: int = setting(1, "PyTorch CPU threads per task under every executor (default 1; the numbers depend "
                              "on it, so a sequential run and --workers agree only at the same K; use --workers for "
                              "more cores)", kind="int", key="data")
    out_dir: str = setting("runs/simulated", "output folder (default runs/<dataset>)", flag="--out",
                           changes_results=False, provenance=False, parameter_default=None)
    cache_dir: str | None = setting(None, "artifact cache: trained models and synthetic sets (default "
                                          "$TARDIFF_CACHE_DIR/artifacts, else data/cache/artifacts); a shared folder "
                                          "lets runs reuse each other's work", notebook=False, changes_results=False,
                                    provenance=False)
    progress: bool = setting(True, "progress bars (the command line's --quiet turns them off)", flag=None,
                             notebook=False, changes_results=False, provenance=False)

    def __post_init__(self) -> None:
        check_scale(self.scale)
        preset = experiment_preset(self.scale)
        self.methods = tuple(self.methods)
        self.seeds = tuple(int(s) for s in (preset.seeds if self.seeds is None else self.seeds))
        self.evaluators = tuple(preset.evaluators if self.evaluators is None else self.evaluators)
        for m in self.methods:
            registry.method(m)  # a one-line error naming the registered methods
        for e in self.evaluators:
            registry.evaluator(e)
        self.guidance  # checks w, the guidance set, evaluate_at and similarity
        self.sweep_raw = tuple(float(w) for w in (preset.sweep_raw if self.sweep_raw is None else self.sweep_raw))
        self.sweep_unit = tuple(float(w) for w in (preset.sweep_unit if self.sweep_unit is None else self.sweep_unit))
        for name in ("sweep_raw", "sweep_unit"):  # name the option: GuidanceOptions would say guidance_scale
            bad = [w for w in getattr(self, name) if not np.isfinite(w)]
            if bad:
                raise ParameterError(f"{name} (--{name.replace('_', '-')}) must hold finite numbers; got {bad[0]!r}")
        if "tardiff_cal" in self.methods and not self.sweep_unit:
            raise ParameterError("tardiff_cal is chosen from the calibrated sweep, which is empty; pass sweep scales "
                                 "(--sweep-unit) or leave tardiff_cal out of --methods")
        _check_choice("device", self.device, DEVICES)
        if isinstance(self.threads, bool) or not isinstance(self.threads, (int, np.integer)) or self.threads < 1:
            raise ParameterError(f"threads must be a whole number >= 1 (PyTorch CPU threads per task); got {self.threads!r}")
        self.threads = int(self.threads)
        if not self.methods:
            raise ParameterError("methods is empty; pass at least one of " + ",".join(registry.method_names()))
        if not self.evaluators:
            raise ParameterError("evaluators is empty; pass at least one of " + ",".join(registry.evaluator_names()))
        if not self.seeds:
            raise ParameterError("seeds is empty; pass at least one seed, e.g. --seeds 0")
        _check_seeds(self.seeds)
        if self.split_seed is not None:
            _check_seeds((int(self.split_seed),), name="split seed")
            self.split_seed = int(self.split_seed)
        if not str(self.out_dir).strip():
            raise ParameterError("the output folder is empty; pass --out DIR (or leave it out for runs/<dataset>)")
        if self.cache_dir is not None and not str(self.cache_dir).strip():
            raise ParameterError("the cache folder is empty; pass --cache-dir DIR or leave it out")
        for name in ("sets", "test_sets"):
            value = getattr(self, name)
            if value is not None and not _has_sets(self.dataset):
                having = ", ".join(d for d in DATASETS if _has_sets(d))
                raise ParameterError(f"{name} applies to {having} only, not {self.dataset}; leave "
                                     f"--{name.replace('_', '-')} out")
            if value is not None and (not value or set(value) - set("abc") or len(set(value)) != len(value)):
                raise ParameterError(f"{name} must be distinct letters of the challenge sets a, b, c (e.g. 'ab'); "
                                     f"got {value!r}")  # 'aa' too, as `tardiff data --sets aa` refuses it
        if self.test_sets is not None and self.sets is not None and set(self.test_sets) & set(self.sets):
            raise ParameterError(f"set(s) {''.join(sorted(set(self.test_sets) & set(self.sets)))} would be trained "
                                 "and tested on; --sets and --test-sets must not share a set")
        if self.test_sets is not None and self.data_dir is not None:
            _check_test_sets_present(self.dataset, self.data_dir, self.test_sets)
        resolve_device(self.device)  # 'cuda' without a CUDA device fails here, before any work

    @classmethod
    def from_parameters(cls, *, out_dir: str | None = None, replicates: int | None = None,
                        **params) -> "ExperimentConfig":
        """A config from CLI options or notebook parameters, each read as its declaration's kind says:
        lists may be comma-separated strings, numbers may be text.

        ``None`` keeps the default (the scale's seeds and evaluators, every method, ``runs/<dataset>``).
        ``replicates=K`` is short for ``seeds=0,...,K-1`` (K replicates).

        Examples
        --------
        >>> ExperimentConfig.from_parameters(dataset="simulated", scale="smoke", methods="real, smote",
        ...                                  seeds="0,2").seeds
        (0, 2)
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ParameterError(f"unknown experiment parameters {unknown}; valid ones are {sorted(known)}")
        if replicates is not None:
            if params.get("seeds") is not None:
                raise ParameterError("pass replicates (K replicates, seeds 0..K-1) or seeds, not both")
            if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or replicates < 1:
                raise ParameterError(f"replicates must be a whole number >= 1; got {replicates!r}")
            params["seeds"] = tuple(range(int(replicates)))
        for f, meta, _ in declared(cls):
            if f.name in params and params[f.name] is None and f.default is not None:
                del params[f.name]  # None: the field's own default (every method, the scale's seeds)
            elif params.get(f.name) is not None:
                params[f.name] = _as_kind(f.name, params[f.name], meta)
        params["out_dir"] = f"runs/{params.get('dataset', cls.dataset)}" if out_dir is None else out_dir
        return cls(**params)

    def split_seed_of(self, seed: int) -> int:
        """The split seed of replicate ``seed``: its own, unless the run fixes one split for all."""
        return int(seed) if self.split_seed is None else self.split_seed

    @property
    def replicated(self) -> bool:
        """Whether every seed draws its own split (the intervals then cover split and seeds)."""
        return self.split_seed is None

    @property
    def preset(self) -> ExperimentPreset:
        return experiment_preset(self.scale)

    @property
    def guidance(self) -> GuidanceOptions:
        """TarDiff's guidance settings of this run: the settings declared ``key="guidance"``."""
        return GuidanceOptions(**self.key_values("guidance"))

    def key_values(self, route: str) -> dict[str, Any]:
        """The (resolved) values of the settings declared to reach the cache keys by ``route``.

        Examples
        --------
        >>> ExperimentConfig(scale="smoke", device="cpu").key_values("data")
        {'scale': 'smoke', 'device': 'cpu', 'threads': 1}
        """
        if route not in KEY_ROUTES:
            raise ParameterError(f"unknown key route {route!r}; choose one of {', '.join(KEY_ROUTES)}")
        return {f.name: getattr(self, meta.resolved_by)() if meta.resolved_by else getattr(self, f.name)
                for f, meta, _ in declared(type(self)) if meta.key == route}

    def resolved_device(self) -> str:
        return str(resolve_device(self.device))

    def resolved_cache_dir(self) -> Path:
        """The artifact cache: ``cache_dir``, else ``$TARDIFF_CACHE_DIR/artifacts``, else ``data/cache/artifacts``."""
        return Path(self.cache_dir) if self.cache_dir is not None else artifact_cache_dir()

    def check_writable(self) -> None:
        """Fail before any work when the output or cache folder cannot be written (one line)."""
        for what, folder in (("output folder (--out)", Path(self.out_dir)),
                             ("cache folder (--cache-dir or $TARDIFF_CACHE_DIR)", self.resolved_cache_dir())):
            check_writable_folder(folder, what)

    def all_methods(self) -> tuple[str, ...]:
        """The methods to run: the chosen ones, plus the controls when the reference is among them."""
        extra = registry.method_names("control") if (self.controls and "real" in self.methods) else ()
        return self.methods + tuple(m for m in extra if m not in self.methods)


def split_list(value: str | Sequence) -> tuple[str, ...]:
    """``"a, b"`` or ``["a", "b"]`` -> ``("a", "b")`` (empty items dropped).

    Examples
    --------
    >>> split_list("real, smote,")
    ('real', 'smote')
    """
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        value = [value]  # a single seed or scale, as papermill passes `-p seeds 0`
    items = str(value).split(",") if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items if str(v).strip())


#: The Python type of a setting's kind (a list's items: its ``item``), for the CLI and :func:`_as_kind`.
PYTHON_TYPES = {"str": str, "int": int, "float": float}
_EXAMPLES = {"str": "a,b", "int": "0,1,2", "float": "0,1,10"}
_WORDS = {"str": "names", "int": "integers", "float": "numbers"}


def _as_kind(name: str, value, meta: Setting):
    """``value`` as the setting's declared kind: a list from ``"a, b"`` or a sequence, a number from text.

    Only lists and numbers are converted; the config's checks then judge the value itself.
    """
    if meta.kind == "list":
        try:
            return tuple(PYTHON_TYPES[meta.item](v) for v in split_list(value))
        except (TypeError, ValueError):
            raise ParameterError(f"{name} must be comma-separated {_WORDS[meta.item]}, e.g. {_EXAMPLES[meta.item]}; "
                                 f"got {value!r}") from None
    if meta.kind == "float" and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name} must be a number; got {value!r}") from None
    return value  # ints are checked by the config, which names the range (a bool or 2.5 is refused there)


def _has_sets(dataset: str) -> bool:
    """Whether ``dataset``'s loader chooses its source files by ``sets`` (PhysioNet 2012's challenge sets)."""
    return dataset in DATASETS and "sets" in DATASETS[dataset].source_options


def _check_test_sets_present(dataset: str, data_dir: str, test_sets: str) -> None:
    """Refuse held-out sets the named folder lacks, saying so (not suggesting ``--sets``, which cannot help)."""
    folder = Path(data_dir)
    if not folder.is_dir():
        return  # the loader's own message says the folder is missing
    have = DATASETS[dataset].module.sets_found(folder)
    missing = [s for s in test_sets if s not in have]
    if missing:
        files = ", ".join(f"set-{s}.tar.gz and Outcomes-{s}.txt" for s in missing)
        raise ParameterError(f"--test-sets {test_sets} holds set(s) {', '.join(missing)} out as the test split, but "
                             f"{folder} has no {files} (it holds set(s) {', '.join(have) or 'none'}): add them from "
                             "https://physionet.org/content/challenge-2012/1.0.0/ or leave --test-sets out")


MAX_SEED = 2 ** 32 - 1  # numpy's and scikit-learn's random_state range


def _check_seeds(seeds: Sequence[int], name: str = "seeds") -> None:
    bad = [s for s in seeds if not 0 <= int(s) <= MAX_SEED]
    if bad:
        raise ParameterError(f"{name} must lie in 0..{MAX_SEED}; got {bad[0]}")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise ParameterError(f"{name} {','.join(map(str, repeated))} given twice: a repeated seed would be counted as "
                             "another run with spread 0; pass each seed once")


def check_writable_folder(folder: Path, what: str) -> None:
    """A one-line :class:`ParameterError` unless ``folder`` is (or can be created as) a writable folder."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"the {what} {folder} is a file; pass a folder")
    existing = folder
    while not existing.exists():  # the deepest existing ancestor decides whether it can be created
        existing = existing.parent
    if not existing.is_dir():
        raise ParameterError(f"the {what} {folder} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ParameterError(f"the {what} {folder} is not writable ({existing} is read-only); choose another folder")
    try:  # a read-only file system refuses even root, whom os.access always answers yes
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ParameterError(f"the {what} {folder} is not writable ({err.strerror}); choose another folder") from None


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
