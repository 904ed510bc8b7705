"""One dataset's whole comparison, from a config, with an artifact cache.

:class:`Experiment` loads and prepares the cohort (split, train-only imputation and
scaling), trains each generator once per seed on the training split, generates its
synthetic sets, trains the evaluation classifiers on every protocol's training set
(checkpoints chosen on the real validation split) and scores them on the untouched test
split. Expensive artifacts are cached under ``cache_dir`` by the hash of what determines
them: the diffusion model is shared by the unguided and TarDiff samplers and by every
guidance scale, and finished evaluation records are kept, so an interrupted run resumes
where it stopped and a re-run with a new guidance scale retrains nothing but the
evaluators of the new synthetic sets.

Which stays reach which component is written into a ledger (:class:`DataLedger`), and the
runner refuses to continue if a test stay ever reached a generator, the guidance set or a
checkpoint choice.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

import tardiff
from tardiff import registry
from tardiff.data import PreparedCohort, load_cohort, prepare
from tardiff.data.cache import (
    artifact_cache_dir,
    atomic_path,
    file_lock,
    hash_key,
    load_arrays,
    read_json_verified,
    save_arrays,
    write_json,
    write_json_verified,
)
from tardiff.errors import DataError, ParameterError
from tardiff.evaluation.protocols import SyntheticSets, TrainingSet, training_sets
from tardiff.evaluation.utility import bootstrap_ci, choose_threshold, summarise_over_seeds, utility_metrics
from tardiff.guidance import GuidanceOptions, GuidanceSet
from tardiff.presets import (
    DEFAULT_GUIDANCE_SCALE,
    DEVICES,
    ExperimentPreset,
    Scale,
    check_scale,
    experiment_preset,
    resolve_device,
)

#: The methods a run compares by default: the reference, the baselines and TarDiff (the
#: controls join the reference automatically, see :meth:`ExperimentConfig.all_methods`).
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

    dataset: str = "simulated"
    task: str | None = None
    data_dir: str | None = None
    scale: Scale = "cpu"
    methods: tuple[str, ...] = METHODS
    controls: bool = True
    seeds: tuple[int, ...] | None = None  # None: the scale's default seeds
    split_seed: int = 0
    evaluators: tuple[str, ...] | None = None  # None: the scale's default evaluators
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    guidance_set: GuidanceSet = "val"
    evaluate_at: Literal["x_t", "x0_hat"] = "x_t"
    similarity: Literal["dot", "cosine"] = "dot"
    guidance_norm: Literal["raw", "unit"] = "raw"  # raw: the paper's w grad_x s; unit: w x the noise level
    guide_last: int = 0  # guide only the last k sampling steps (0: all, the paper)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out_dir: str = "runs/simulated"
    cache_dir: str | None = None  # None: $TARDIFF_CACHE_DIR/artifacts, else data/cache/artifacts
    progress: bool = True
    sets: str | None = None  # PhysioNet 2012: which challenge sets ("a", "ab", "abc"); None: the loader's default

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
        _check_choice("device", self.device, DEVICES)
        if not self.methods:
            raise ParameterError("methods is empty; pass at least one of " + ",".join(registry.method_names()))
        if not self.evaluators:
            raise ParameterError("evaluators is empty; pass at least one of " + ",".join(registry.evaluator_names()))
        if not self.seeds:
            raise ParameterError("seeds is empty; pass at least one seed, e.g. --seeds 0")
        _check_seeds(self.seeds)
        _check_seeds((self.split_seed,), name="split seed")
        if not str(self.out_dir).strip():
            raise ParameterError("the output folder is empty; pass --out DIR (or leave it out for runs/<dataset>)")
        if self.cache_dir is not None and not str(self.cache_dir).strip():
            raise ParameterError("the cache folder is empty; pass --cache-dir DIR or leave it out")
        if self.sets is not None and self.dataset != "physionet2012":
            raise ParameterError(f"sets applies to physionet2012 only, not {self.dataset}; leave --sets out")
        resolve_device(self.device)  # 'cuda' without a CUDA device fails here, before any work

    @classmethod
    def from_parameters(cls, *, methods: str | Sequence[str] | None = None, seeds: str | Sequence[int] | None = None,
                        evaluators: str | Sequence[str] | None = None, out_dir: str | None = None,
                        **params) -> "ExperimentConfig":
        """A config from CLI options or notebook parameters: lists may be comma-separated strings.

        ``None`` keeps the default (the scale's seeds and evaluators, every method, ``runs/<dataset>``).

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
        if methods is not None:
            params["methods"] = split_list(methods)
        if evaluators is not None:
            params["evaluators"] = split_list(evaluators)
        if seeds is not None:
            try:
                params["seeds"] = tuple(int(s) for s in split_list(seeds))
            except ValueError:
                raise ParameterError(f"seeds must be comma-separated integers, e.g. 0,1,2; got {seeds!r}") from None
        if "guidance_scale" in params:
            try:
                params["guidance_scale"] = float(params["guidance_scale"])
            except (TypeError, ValueError):
                raise ParameterError(f"guidance_scale must be a number; got {params['guidance_scale']!r}") from None
        params["out_dir"] = f"runs/{params.get('dataset', cls.dataset)}" if out_dir is None else out_dir
        return cls(**params)

    @property
    def preset(self) -> ExperimentPreset:
        return experiment_preset(self.scale)

    @property
    def guidance(self) -> GuidanceOptions:
        """TarDiff's guidance settings of this run."""
        return GuidanceOptions(guidance_scale=self.guidance_scale, guidance_set=self.guidance_set,
                               evaluate_at=self.evaluate_at, similarity=self.similarity,
                               guidance_norm=self.guidance_norm, guide_last=self.guide_last)

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
    items = str(value).split(",") if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items if str(v).strip())


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


# --------------------------------------------------------------------------- data
@dataclass
class DataLedger:
    """Which stay ids reached which component, to prove the test split stayed untouched."""

    uses: dict[str, set] = field(default_factory=dict)

    def record(self, component: str, ids) -> None:
        self.uses.setdefault(component, set()).update(np.asarray(ids).tolist())

    def check_untouched(self, test_ids) -> None:
        test = set(np.asarray(test_ids).tolist())
        for component, ids in self.uses.items():
            leaked = test & ids
            if leaked:
                raise RuntimeError(f"{len(leaked)} test stays reached {component}: the evaluation would be biased")


#: Fewest stays of a class that still give every split (train, validation, test) both classes.
MIN_STAYS_PER_CLASS = 3


def load_prepared(config: ExperimentConfig) -> PreparedCohort:
    """Load the cohort, subsample it to the scale's size (stratified), split and prepare it."""
    options = {"n": config.preset.simulated_n, "seed": config.split_seed} if config.dataset == "simulated" else {}
    if config.sets is not None:
        options["sets"] = config.sets
    cohort = load_cohort(config.dataset, data_dir=config.data_dir, task=config.task,
                         progress=None if config.progress else False, **options)
    counts = np.bincount(cohort.y, minlength=2)
    if counts.min() < MIN_STAYS_PER_CLASS:
        raise DataError(f"{config.dataset}/{cohort.task} has {counts[1]} positive and {counts[0]} negative stays; a "
                        f"comparison needs at least {MIN_STAYS_PER_CLASS} of each class (train, validation and test "
                        "each need both); use a larger cohort or another task")
    cap = config.preset.max_stays
    if cap is not None and cohort.shape[0] > cap:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            np.arange(cohort.shape[0]), train_size=cap, stratify=cohort.y, random_state=config.split_seed
        )
        cohort = cohort.subset(np.sort(keep))
    return prepare(cohort, random_state=config.split_seed)


def guidance_data(prepared: PreparedCohort, which: GuidanceSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, stay ids) of the guidance set: the validation split (paper), the training split
    (public code) or the validation split's minority class (paper Table 5)."""
    ids = prepared.ids
    if which == "train":
        return prepared.X_train, prepared.y_train, ids["train"]
    X, y, sid = prepared.X_val, prepared.y_val, ids["val"]
    if which == "minority":
        keep = y == 1
        return X[keep], y[keep], sid[keep]
    return X, y, sid


#: Bump when what the runner stores changes meaning, so older artifacts are not reused.
CACHE_VERSION = 2


def content_hash(prepared: PreparedCohort) -> str:
    """SHA-256 of everything a run computes from: the raw cohort (values in clinical units, labels,
    stay ids) and every prepared split (standardised values, labels, stay ids).

    Artifacts and records are keyed by this, never by proxies (a path, a shape, the first ids):
    a dataset whose values changed under the same folder gets new keys and is recomputed.
    """
    digest = hashlib.sha256()
    cohort = prepared.cohort
    parts = [("raw", (cohort.X, cohort.y, cohort.stay_ids))]
    parts += [(name, (*prepared.part(name), prepared.ids[name])) for name in ("train", "val", "test")]
    for name, arrays in parts:
        for array in arrays:
            array = np.asarray(array)
            if array.dtype == object:  # object arrays' bytes are pointers: hash their text instead
                array = array.astype(str)
            array = np.ascontiguousarray(array)
            digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
            digest.update(array.tobytes())
    digest.update(hash_key(prepared.cohort.dataset, prepared.cohort.task, prepared.cohort.features).encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- runner
class Experiment:
    """Runs one :class:`ExperimentConfig`; artifacts are cached, records resume.

    Examples
    --------
    >>> exp = Experiment(ExperimentConfig(scale="smoke", methods=("real",), seeds=(0,),
    ...                                   evaluators=("gbm",), progress=False, out_dir="/tmp/tardiff-doc"))
    >>> records = exp.run()                                    # doctest: +SKIP
    """

    def __init__(self, config: ExperimentConfig):
        config.check_writable()  # before any work: a bad --out must not cost a training run
        self.config = config
        self.device = config.resolved_device()
        self.cache = config.resolved_cache_dir()
        self.out = Path(config.out_dir)
        self.ledger = DataLedger()
        self.prepared = load_prepared(config)
        self.timings: dict[str, float] = {}
        self._memo: dict = {}  # trained components shared within this run
        self.data_key = hash_key(config.scale, content_hash(self.prepared), CACHE_VERSION)

    # ---- components (each cached by what determines it)
    def generator(self, method: str, seed: int, *, guidance_scale: float | None = None):
        """A fitted sampler of ``method`` for ``seed`` (trained on the training split only).

        The registry's factory builds it; ``guidance_scale`` overrides the config's w (the sweep)."""
        entry = registry.method(method)
        if entry.factory is None:
            raise ParameterError(f"method {method!r} trains on real data only and has no generator")
        p = self.prepared
        context = registry.MethodContext(
            seed=seed, scale=self.config.scale, device=self.device, progress=self.config.progress,
            guidance=self._guidance(guidance_scale), denoiser=lambda: self.denoiser(seed),
            guidance_classifier=lambda: self.guidance_classifier(seed), guidance_set=self._guidance_set,
        )
        sampler = entry.factory(context)
        self.ledger.record(f"{method} generator", p.ids["train"])
        return sampler.fit(p.X_train, p.y_train)

    def _guidance(self, guidance_scale: float | None = None) -> GuidanceOptions:
        options = self.config.guidance
        return options if guidance_scale is None else options.with_scale(guidance_scale)

    def _guidance_set(self) -> tuple[np.ndarray, np.ndarray]:
        Xg, yg, gid = guidance_data(self.prepared, self.config.guidance_set)
        self.ledger.record("guidance set", gid)
        return Xg, yg

    def denoiser(self, seed: int):
        """The label-conditional UNet for ``seed``: the unguided sampler's, trained once and shared
        by the unguided and every TarDiff sampler (checkpointed, resumable)."""
        from tardiff.diffusion import TrainConfig, UNetConfig
        from tardiff.samplers import UnguidedDiffusionSampler

        key = ("denoiser", seed)
        if key in self._memo:
            return self._memo[key]
        scale = self.config.scale
        unet_cfg, train_cfg = UNetConfig.preset(scale), TrainConfig.preset(scale)
        path = self.cache / f"denoiser-{hash_key(self.data_key, asdict(unet_cfg), asdict(train_cfg), seed)}.pt"
        start = time.perf_counter()
        sampler = UnguidedDiffusionSampler(scale=scale, unet_config=unet_cfg, train_config=train_cfg,
                                           random_state=seed, device=self.device, progress=self.config.progress,
                                           checkpoint_path=path)
        with file_lock(path):  # a second run sharing the cache waits, then resumes the finished checkpoint
            sampler.fit(self.prepared.X_train, self.prepared.y_train)
        self.timings[f"denoiser_train_s_seed{seed}"] = time.perf_counter() - start
        self.ledger.record("denoiser training", self.prepared.ids["train"])
        self._memo[key] = sampler.denoiser_
        return sampler.denoiser_

    def guidance_classifier(self, seed: int):
        """The GRU TarDiff differentiates: fit on the training split, checkpoint chosen on validation."""
        from tardiff.classifiers import make_classifier

        key = ("guidance_classifier", seed)
        if key not in self._memo:
            p = self.prepared
            clf = make_classifier("gru", self.config.scale, random_state=seed, device=self.device)
            clf.fit(p.X_train, p.y_train, p.X_val, p.y_val)
            self.ledger.record("guidance classifier", np.concatenate([p.ids["train"], p.ids["val"]]))
            self._memo[key] = clf
        return self._memo[key]

    def synthetic_sets(self, method: str, seed: int) -> SyntheticSets:
        """The method's pool (training size, real ratio) and balance set, cached on disk."""
        p = self.prepared
        guidance = self._guidance_key(method)
        path = self.cache / f"synthetic-{method}-{hash_key(self.data_key, method, seed, guidance, tardiff.__version__)}.npz"
        names = ("pool_X", "pool_y", "balance_X", "balance_y")
        with file_lock(path):  # two runs sharing the cache: the second waits and reads the first's sets
            arrays = load_arrays(path)  # verified; a damaged file warns and is regenerated
            if arrays is None:
                start = time.perf_counter()
                sampler = self.generator(method, seed)
                counts = np.bincount(p.y_train, minlength=2)
                minority = int(np.argmin(counts))
                arrays = {}
                if registry.method(method).needs_pool:
                    pool = [sampler.sample(int(counts[c]), c) for c in (0, 1)]
                    arrays["pool_X"] = np.concatenate(pool)
                    arrays["pool_y"] = np.repeat([0, 1], counts)
                n_bal = int(counts.max() - counts.min())
                arrays["balance_X"] = sampler.sample(n_bal, minority)
                arrays["balance_y"] = np.full(n_bal, minority)
                self.timings[f"{method}_generate_s_seed{seed}"] = time.perf_counter() - start
                save_arrays(path, **arrays)
        return SyntheticSets(**{k: arrays.get(k) for k in names})

    def _guidance_key(self, method: str, guidance_scale: float | None = None):
        """What of the guidance options determines ``method``'s synthetic data (None: nothing)."""
        if not registry.method(method).uses_guidance:
            return None
        return self._guidance(guidance_scale).key()

    def tardiff_pool(self, seed: int, *, guidance_scale: float) -> tuple[np.ndarray, np.ndarray]:
        """A TarDiff pool (training size, real class ratio) at guidance scale ``w``, cached.

        Two scales need no sampling: the run's own ``w`` is the TSTR pool of the main run, and
        ``w = 0`` is exactly the unguided pool (TarDiff without guidance is the unguided sampler,
        draw for draw), so the sweep reuses those instead of generating them again.
        """
        w = float(guidance_scale)
        method = self._main_run_method(w)
        if method is not None:
            sets = self.synthetic_sets(method, seed)
            return sets.pool_X, sets.pool_y
        return self._sample_tardiff_pool(seed, w)

    def _main_run_method(self, w: float) -> str | None:
        """The main run's method whose pool is TarDiff's pool at ``w`` (None: it must be sampled)."""
        if w == 0.0:
            return "unguided"
        return "tardiff" if w == float(self.config.guidance_scale) else None

    def _sample_tardiff_pool(self, seed: int, w: float) -> tuple[np.ndarray, np.ndarray]:
        p = self.prepared
        guidance = self._guidance_key("tardiff", w)
        path = self.cache / f"pool-tardiff-{hash_key(self.data_key, seed, guidance, tardiff.__version__)}.npz"
        with file_lock(path):
            arrays = load_arrays(path)
            if arrays is None:
                sampler = self.generator("tardiff", seed, guidance_scale=w)
                counts = np.bincount(p.y_train, minlength=2)
                arrays = {"X": np.concatenate([sampler.sample(int(counts[c]), c) for c in (0, 1)]),
                          "y": np.repeat([0, 1], counts)}
                save_arrays(path, **arrays)
        return arrays["X"], arrays["y"]

    def sweep_point(self, seed: int, guidance_scale: float, evaluator: str) -> tuple[np.ndarray, np.ndarray, dict]:
        """TarDiff's TSTR pool at ``guidance_scale`` and its evaluation record (both cached).

        At the run's own ``w`` the record is the main run's TSTR record, at ``w = 0`` the
        unguided one: the same data judged by the same seeded evaluator.
        """
        w = float(guidance_scale)
        X, y = self.tardiff_pool(seed, guidance_scale=w)
        train_set = TrainingSet("tstr", None, X, y, len(y))
        method = "unguided" if self._main_run_method(w) == "unguided" else "tardiff"
        (record,) = self._evaluated(method, seed, train_set, evaluators=(evaluator,), guidance_scale=w)
        return X, y, record

    def evaluate(self, train_set, evaluator: str, seed: int, method: str) -> dict:
        """Fit ``evaluator`` on ``train_set`` (checkpoint on val AUPRC), score it on test.

        Every evaluator is built alike, from the registry; the method decides the class weighting."""
        p = self.prepared
        clf = registry.evaluator(evaluator).factory(self.config.scale, random_state=seed, device=self.device,
                                                    class_weight=registry.method(method).class_weight)
        start = time.perf_counter()
        clf.fit(train_set.X, train_set.y, p.X_val, p.y_val)
        fit_s = time.perf_counter() - start
        self.ledger.record("checkpoint selection", p.ids["val"])
        threshold = choose_threshold(p.y_val, clf.predict_proba(p.X_val)[:, 1])
        p_test = clf.predict_proba(p.X_test)[:, 1]
        metrics = utility_metrics(p.y_test, p_test, threshold=threshold)
        for name in ("auprc", "auroc"):
            low, high = bootstrap_ci(p.y_test, p_test, name, n_boot=self.config.preset.bootstrap, random_state=seed)
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
        return {**metrics, "threshold": threshold, "fit_seconds": fit_s, "n_train": int(len(train_set.y)),
                "n_synthetic": int(train_set.n_synthetic), "test_predictions": p_test.tolist()}

    # ---- the whole run
    def run(self) -> list[dict]:
        """Run (or resume) every method x protocol x seed x evaluator; write results."""
        cfg, p = self.config, self.prepared
        jobs = [(m, s) for s in cfg.seeds for m in cfg.all_methods()]
        records = []
        bar = tqdm(jobs, desc=f"{cfg.dataset}: methods x seeds", disable=not cfg.progress)
        for method, seed in bar:
            bar.set_postfix_str(f"{method} seed {seed}")
            needs_generator = registry.method(method).factory is not None
            synthetic = self.synthetic_sets(method, seed) if needs_generator else None
            for train_set in training_sets(method, p.X_train, p.y_train, synthetic, cfg.preset.alphas):
                records += self._evaluated(method, seed, train_set)
        self.ledger.check_untouched(p.ids["test"])
        self.write(records)
        return records

    def _evaluated(self, method: str, seed: int, train_set, *, evaluators: tuple[str, ...] | None = None,
                   guidance_scale: float | None = None) -> list[dict]:
        """Evaluation records of ``train_set``, each read from ``records/`` when already there.

        ``guidance_scale`` overrides the config's w for TarDiff (the guidance sweep)."""
        cfg = self.config
        out = []
        w = cfg.guidance_scale if guidance_scale is None else float(guidance_scale)
        for evaluator in evaluators or cfg.evaluators:
            guidance = self._guidance_key(method, guidance_scale)
            key = hash_key(self.data_key, method, seed, train_set.protocol, train_set.alpha, evaluator, guidance,
                           tardiff.__version__)
            path = self.out / "records" / f"{key}.json"
            with file_lock(path):
                record = read_json_verified(path)  # an edited or truncated record warns and is recomputed
                if record is None:
                    record = {
                        "dataset": cfg.dataset, "task": self.prepared.cohort.task, "method": method,
                        "protocol": train_set.protocol, "alpha": train_set.alpha, "seed": seed,
                        "evaluator": evaluator, "scale": cfg.scale,
                        "guidance_scale": w if registry.method(method).uses_guidance else None,
                        **self.evaluate(train_set, evaluator, seed, method),
                    }
                    write_json_verified(path, record)
            out.append(record)
        return out

    def reference_metrics(self) -> dict:
        """Prevalence of the test split and, on simulated data, the Bayes ceiling."""
        p = self.prepared
        ref = {"prevalence": float(p.y_test.mean())}
        posterior = p.cohort.bayes_posterior
        if posterior is not None:
            ref["bayes"] = utility_metrics(p.y_test, posterior[p.split.test])
        return ref

    def write(self, records: list[dict]) -> None:
        """``results.json`` (records + config + references) and ``summary.csv`` (mean, std over seeds)."""
        slim = [{k: v for k, v in r.items() if k != "test_predictions"} for r in records]
        write_json(self.out / "results.json", {
            "config": asdict(self.config), "version": tardiff.__version__, "device": self.device,
            "cohort": {"shape": list(self.prepared.cohort.shape), "splits": self.prepared.split.sizes(),
                       "positive_rate": self.prepared.cohort.positive_rate},
            "reference": self.reference_metrics(), "timings": self.timings, "records": slim,
        })
        summary = summarise(slim)
        with atomic_path(self.out / "summary.csv") as tmp:
            summary.to_csv(tmp, index=False)


def summarise(records: list[dict]) -> pd.DataFrame:
    """Mean and std over seeds per dataset x method x protocol x alpha x evaluator."""
    df = pd.DataFrame(records)
    df["alpha"] = df["alpha"].fillna(-1.0)  # keep alpha-free protocols in the groupby
    groups = ["dataset", "task", "method", "protocol", "alpha", "evaluator"]
    out = summarise_over_seeds(df, groups, ["auprc", "auroc", "minority_f1", "brier"])
    out["alpha"] = out["alpha"].replace(-1.0, np.nan)
    return out
