"""One dataset's whole comparison, from a config, with an artifact cache.

:func:`run_experiment` loads and prepares the cohort (split, train-only imputation and
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

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import tardiff
from tardiff.data import PreparedCohort, load_cohort, prepare
from tardiff.data.cache import atomic_path, hash_key, write_json
from tardiff.errors import ParameterError
from tardiff.evaluation.protocols import ALPHAS, METHOD_PROTOCOLS, SyntheticSets, TrainingSet, training_sets
from tardiff.evaluation.utility import bootstrap_ci, choose_threshold, summarise_over_seeds, utility_metrics

Scale = Literal["smoke", "cpu", "paper"]
GuidanceSet = Literal["val", "train", "minority"]
METHODS = ("real", "smote", "mcrage", "unguided", "tardiff")
CONTROLS = ("real_cw", "ros")
EVALUATORS = ("cnn", "gru", "gbm")


@dataclass(frozen=True)
class ScalePreset:
    """Sizes that make a run take seconds (smoke), minutes on a laptop (cpu) or a GPU (paper).

    The cpu preset is sized so that the whole book (four datasets, three seeds each, plus the
    tutorials) builds in well under half an hour on two CPU cores; its test splits are small
    (120 to 150 stays), so its numbers carry wide intervals. The paper preset is the papers' setup.
    """

    max_stays: int | None  # stratified subsample of the cohort before splitting (None: all)
    simulated_n: int  # cohort size of the simulated dataset
    alphas: tuple[float, ...]
    bootstrap: int  # bootstrap resamples for the test-set CIs
    seeds: tuple[int, ...]  # default seeds (spread over seeds is reported)
    evaluators: tuple[str, ...]  # default downstream classifiers (the first one is the main one)
    sweep_scales: tuple[float, ...]  # default guidance scales of the sweep (w = 0 and a negative w included)
    embedding_samples: int  # stays per set in the PCA / t-SNE pictures


PRESETS: dict[str, ScalePreset] = {
    "smoke": ScalePreset(max_stays=300, simulated_n=300, alphas=(0.5, 1.0), bootstrap=50, seeds=(0,),
                         evaluators=("cnn",), sweep_scales=(-100.0, 0.0, 100.0), embedding_samples=150),
    # The CNN judges every method at cpu scale: a different architecture from the guidance GRU,
    # so TarDiff is not scored by the model that steered it (the paper uses TimesNet).
    "cpu": ScalePreset(max_stays=1200, simulated_n=1500, alphas=(0.5, 1.0), bootstrap=200, seeds=(0, 1, 2),
                       evaluators=("cnn",), sweep_scales=(-100.0, 0.0, 100.0, 1000.0), embedding_samples=300),
    "paper": ScalePreset(max_stays=None, simulated_n=10000, alphas=ALPHAS, bootstrap=1000, seeds=(0, 1, 2, 3, 4),
                         evaluators=("cnn", "gru"), sweep_scales=(-100.0, 0.0, 10.0, 100.0, 1000.0),
                         embedding_samples=2000),
}


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
    guidance_scale: float = 100.0
    guidance_set: GuidanceSet = "val"
    evaluate_at: Literal["x_t", "x0_hat"] = "x_t"
    similarity: Literal["dot", "cosine"] = "dot"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out_dir: str = "runs/simulated"
    cache_dir: str = "data/cache/artifacts"
    progress: bool = True

    def __post_init__(self) -> None:
        self.methods = tuple(self.methods)
        _check_choice("scale", self.scale, get_args(Scale))
        self.seeds = tuple(int(s) for s in (PRESETS[self.scale].seeds if self.seeds is None else self.seeds))
        self.evaluators = tuple(PRESETS[self.scale].evaluators if self.evaluators is None else self.evaluators)
        _check_choice("guidance_set", self.guidance_set, get_args(GuidanceSet))
        _check_choice("evaluate_at", self.evaluate_at, ("x_t", "x0_hat"))
        _check_choice("similarity", self.similarity, ("dot", "cosine"))
        _check_choice("device", self.device, ("auto", "cpu", "cuda"))
        for m in self.methods:
            _check_choice("method", m, METHODS)
        for e in self.evaluators:
            _check_choice("evaluator", e, EVALUATORS)
        if not self.methods:
            raise ParameterError("methods is empty; pass at least one of " + ",".join(METHODS))
        if not self.evaluators:
            raise ParameterError("evaluators is empty; pass at least one of " + ",".join(EVALUATORS))
        if not self.seeds:
            raise ParameterError("seeds is empty; pass at least one seed, e.g. --seeds 0")
        if not np.isfinite(self.guidance_scale):
            raise ParameterError(f"guidance_scale must be a finite number, got {self.guidance_scale}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ParameterError("device='cuda' was asked for but torch sees no CUDA device; use --device cpu or auto")

    @property
    def preset(self) -> ScalePreset:
        return PRESETS[self.scale]

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def all_methods(self) -> tuple[str, ...]:
        extra = CONTROLS if (self.controls and "real" in self.methods) else ()
        return self.methods + extra


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


def load_prepared(config: ExperimentConfig) -> PreparedCohort:
    """Load the cohort, subsample it to the scale's size (stratified), split and prepare it."""
    options = {"n": config.preset.simulated_n, "seed": config.split_seed} if config.dataset == "simulated" else {}
    cohort = load_cohort(config.dataset, data_dir=config.data_dir, task=config.task, **options)
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
        self.config = config
        self.device = config.resolved_device()
        self.cache = Path(config.cache_dir)
        self.out = Path(config.out_dir)
        self.ledger = DataLedger()
        self.prepared = load_prepared(config)
        self.timings: dict[str, float] = {}
        self._memo: dict = {}  # trained components shared within this run
        ids = self.prepared.ids
        self.data_key = hash_key(
            config.dataset, config.task, config.data_dir and str(Path(config.data_dir).resolve()),
            config.scale, config.split_seed, self.prepared.cohort.shape, ids["train"][:50], int(self.prepared.y_train.sum()),
        )

    # ---- components (each cached by what determines it)
    def generator(self, method: str, seed: int, *, guidance_scale: float | None = None):
        """A fitted sampler of ``method`` for ``seed`` (trained on the training split only).

        ``guidance_scale`` overrides the config's w for TarDiff (the guidance sweep)."""
        from tardiff import samplers

        cfg, p = self.config, self.prepared
        common = dict(random_state=seed)
        if method == "ros":
            sampler = samplers.RandomOverSampler(**common)
        elif method == "smote":
            sampler = samplers.SMOTESampler(**common)
        elif method == "mcrage":
            sampler = samplers.MCRAGESampler(scale=cfg.scale, device=self.device, progress=cfg.progress, **common)
        elif method in ("unguided", "tardiff"):
            denoiser = self.denoiser(seed)
            kwargs = dict(scale=cfg.scale, device=self.device, progress=cfg.progress, denoiser=denoiser, **common)
            if method == "unguided":
                sampler = samplers.UnguidedDiffusionSampler(**kwargs)
            else:
                Xg, yg, gid = guidance_data(p, cfg.guidance_set)
                self.ledger.record("guidance set", gid)
                sampler = samplers.TarDiffSampler(
                    guidance_scale=cfg.guidance_scale if guidance_scale is None else guidance_scale,
                    guidance_set=(Xg, yg), classifier=self.guidance_classifier(seed),
                    evaluate_at=cfg.evaluate_at, similarity=cfg.similarity, **kwargs,
                )
        else:  # pragma: no cover - guarded by the config
            raise ParameterError(f"unknown method {method!r}")
        self.ledger.record(f"{method} generator", p.ids["train"])
        return sampler.fit(p.X_train, p.y_train)

    def denoiser(self, seed: int):
        """The label-conditional UNet for ``seed``, trained once and shared (checkpointed, resumable)."""
        from tardiff.diffusion import GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule, train_diffusion

        key = ("denoiser", seed)
        if key in self._memo:
            return self._memo[key]
        scale = self.config.scale
        unet_cfg, train_cfg = getattr(UNetConfig, scale)(), getattr(TrainConfig, scale)()
        path = self.cache / f"denoiser-{hash_key(self.data_key, asdict(unet_cfg), asdict(train_cfg), seed)}.pt"
        model = UNet1D(unet_cfg, n_features=self.prepared.X_train.shape[2], seed=seed)
        process = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
        start = time.perf_counter()
        result = train_diffusion(
            model, process, self.prepared.X_train, self.prepared.y_train, train_cfg, seed=seed,
            device=self.device, checkpoint_path=path, progress=self.config.progress,
        )
        self.timings[f"denoiser_train_s_seed{seed}"] = time.perf_counter() - start
        self.ledger.record("denoiser training", self.prepared.ids["train"])
        self._memo[key] = result.model
        return result.model

    def guidance_classifier(self, seed: int):
        """The GRU TarDiff differentiates: fit on the training split, checkpoint chosen on validation."""
        from tardiff.classifiers import make_classifier

        key = ("guidance_classifier", seed)
        if key not in self._memo:
            p = self.prepared
            clf = make_classifier("gru", self.config.scale)
            clf.fit(p.X_train, p.y_train, p.X_val, p.y_val, seed=seed, device=self.device)
            self.ledger.record("guidance classifier", np.concatenate([p.ids["train"], p.ids["val"]]))
            self._memo[key] = clf
        return self._memo[key]

    def synthetic_sets(self, method: str, seed: int) -> SyntheticSets:
        """The method's pool (training size, real ratio) and balance set, cached on disk."""
        p = self.prepared
        guidance = self._guidance_key(method)
        path = self.cache / f"synthetic-{method}-{hash_key(self.data_key, method, seed, guidance, tardiff.__version__)}.npz"
        if path.exists():
            with np.load(path) as z:
                return SyntheticSets(**{k: (z[k] if k in z.files else None) for k in
                                        ("pool_X", "pool_y", "balance_X", "balance_y")})
        start = time.perf_counter()
        sampler = self.generator(method, seed)
        counts = np.bincount(p.y_train, minlength=2)
        minority = int(np.argmin(counts))
        arrays = {}
        if any(proto in METHOD_PROTOCOLS[method] for proto in ("tstr", "tsrtr")):
            pool = [sampler.sample(int(counts[c]), c) for c in (0, 1)]
            arrays["pool_X"] = np.concatenate(pool)
            arrays["pool_y"] = np.repeat([0, 1], counts)
        n_bal = int(counts.max() - counts.min())
        arrays["balance_X"] = sampler.sample(n_bal, minority)
        arrays["balance_y"] = np.full(n_bal, minority)
        self.timings[f"{method}_generate_s_seed{seed}"] = time.perf_counter() - start
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return SyntheticSets(**{k: arrays.get(k) for k in ("pool_X", "pool_y", "balance_X", "balance_y")})

    def _guidance_key(self, method: str, guidance_scale: float | None = None):
        """What of the guidance options determines ``method``'s synthetic data (None: nothing)."""
        if method != "tardiff":
            return None
        cfg = self.config
        w = cfg.guidance_scale if guidance_scale is None else guidance_scale
        return (w, cfg.guidance_set, cfg.evaluate_at, cfg.similarity)

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
        if path.exists():
            with np.load(path) as z:
                return z["X"], z["y"]
        sampler = self.generator("tardiff", seed, guidance_scale=w)
        counts = np.bincount(p.y_train, minlength=2)
        X = np.concatenate([sampler.sample(int(counts[c]), c) for c in (0, 1)])
        y = np.repeat([0, 1], counts)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, X=X, y=y)
        return X, y

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
        """Fit ``evaluator`` on ``train_set`` (checkpoint on val AUPRC), score it on test."""
        from tardiff.classifiers import make_classifier

        p = self.prepared
        clf = make_classifier(evaluator, self.config.scale)
        if method == "real_cw" and hasattr(clf, "config"):
            clf.config = dataclasses.replace(clf.config, class_weight=True)
        start = time.perf_counter()
        clf.fit(train_set.X, train_set.y, p.X_val, p.y_val, seed=seed, **({} if evaluator == "gbm" else {"device": self.device}))
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
            synthetic = None if method in ("real", "real_cw") else self.synthetic_sets(method, seed)
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
            if path.exists():
                out.append(json.loads(path.read_text()))
                continue
            record = {
                "dataset": cfg.dataset, "task": self.prepared.cohort.task, "method": method,
                "protocol": train_set.protocol, "alpha": train_set.alpha, "seed": seed, "evaluator": evaluator,
                "scale": cfg.scale, "guidance_scale": w if method == "tardiff" else None,
                **self.evaluate(train_set, evaluator, seed, method),
            }
            write_json(path, record)
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


def run_experiment(config: ExperimentConfig) -> list[dict]:
    """Convenience: ``Experiment(config).run()``."""
    return Experiment(config).run()
