"""The runner: every method, protocol, seed and evaluator of one dataset, with an artifact cache.

:class:`Experiment` trains each generator once per seed on the training split, generates its
synthetic sets, checks them against the quality gate, trains the evaluators on every
protocol's training set (checkpoints chosen on the real validation split) and scores them on
the untouched test split; then it sweeps TarDiff's guidance, picks the calibrated variant on
validation AUPRC, and compares methods pairwise on the same test stays. Every artifact is
cached by a hash of what it is computed from (the data's content, the settings, the code
version) and verified when read, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

import tardiff
from tardiff import registry
from tardiff.data.cache import (
    atomic_path,
    file_lock,
    hash_key,
    load_arrays,
    read_json_verified,
    save_arrays,
    write_json,
    write_json_verified,
)
from tardiff.errors import ParameterError
from tardiff.evaluation.gates import gate_description, noise_prediction_error, quality_gate
from tardiff.evaluation.protocols import SyntheticSets, TrainingSet, training_sets
from tardiff.evaluation.utility import bootstrap_ci, choose_threshold, summarise_over_seeds, utility_metrics
from tardiff.experiment.config import ExperimentConfig
from tardiff.experiment.data import CACHE_VERSION, DataLedger, content_hash, guidance_data, load_prepared
from tardiff.guidance import GuidanceOptions
from tardiff.presets import torch_threads

SET_NAMES = ("pool_X", "pool_y", "balance_X", "balance_y")


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
        start = time.perf_counter()
        self.prepared = load_prepared(config)
        self.timings: dict[str, float] = {"load_and_prepare_s": time.perf_counter() - start}
        self._memo: dict = {}  # trained components shared within this run
        # the thread count joins every key: on a CPU it changes the numbers an artifact holds
        self.data_key = hash_key(config.scale, content_hash(self.prepared), CACHE_VERSION, config.threads)

    def _time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    # ---- guidance options of each method
    def guidance_for(self, method: str, override: GuidanceOptions | None = None) -> GuidanceOptions | None:
        """The guidance options that build ``method``'s samples (None: it is not guided)."""
        entry = registry.method(method)
        if entry.guidance is None:
            return None
        if override is not None:
            return override
        if entry.guidance == "calibrated":
            from tardiff.experiment.sweep import calibrated_guidance

            return calibrated_guidance(self)
        return self.config.guidance

    def _guidance_set(self) -> tuple[np.ndarray, np.ndarray]:
        Xg, yg, gid = guidance_data(self.prepared, self.config.guidance_set)
        self.ledger.record("guidance set", gid)
        return Xg, yg

    # ---- components (each cached by what determines it)
    def generator(self, method: str, seed: int, *, guidance: GuidanceOptions | None = None):
        """A fitted sampler of ``method`` for ``seed`` (trained on the training split only).

        The registry's factory builds it; ``guidance`` overrides a guided method's options (the sweep)."""
        entry = registry.method(method)
        if entry.factory is None:
            raise ParameterError(f"method {method!r} trains on real data only and has no generator")
        p = self.prepared
        context = registry.MethodContext(
            seed=seed, scale=self.config.scale, device=self.device, progress=self.config.progress,
            guidance=self.guidance_for(method, guidance), denoiser=lambda: self.denoiser(seed),
            guidance_classifier=lambda: self.guidance_classifier(seed), guidance_set=self._guidance_set,
        )
        sampler = entry.factory(context)
        self.ledger.record(f"{method} generator", p.ids["train"])
        return sampler.fit(p.X_train, p.y_train)

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
        self._time(f"denoiser_train_s_seed{seed}", time.perf_counter() - start)
        self.ledger.record("denoiser training", self.prepared.ids["train"])
        self._memo[key] = sampler.denoiser_
        return sampler.denoiser_

    def guidance_classifier(self, seed: int):
        """The GRU TarDiff differentiates: fit on the training split; among the scale's candidate
        settings, the one with the best validation AUPRC (its checkpoint chosen on validation too).
        Cached on disk with the report of what was tried, so every process of a run shares it."""
        from tardiff.classifiers import load_classifier, make_classifier, save_classifier
        from tardiff.presets import sizes

        key = ("guidance_classifier", seed)
        if key in self._memo:
            return self._memo[key]
        p, scale = self.prepared, self.config.scale
        candidates = self.config.preset.guidance_candidates
        stem = hash_key(self.data_key, sizes("classifier", scale, "gru"), candidates, seed, tardiff.__version__)
        path = self.cache / f"guidance-classifier-{stem}.pt"
        report_path = path.with_suffix(".json")
        with file_lock(path):
            report = read_json_verified(report_path)
            if report is not None and path.exists():
                clf = load_classifier(path, device=self.device)
            else:
                start = time.perf_counter()
                tried = []
                for overrides in candidates:
                    model = make_classifier("gru", scale, random_state=seed, device=self.device, **overrides)
                    tried.append(model.fit(p.X_train, p.y_train, p.X_val, p.y_val))
                best = max(range(len(tried)), key=lambda i: tried[i].best_val_auprc_)  # the first of equals
                clf = tried[best]
                report = {"seed": seed, "chosen": best, "criterion": "validation AUPRC", "candidates": [
                    {"settings": dict(overrides), "hidden": c.config_.hidden, "val_auprc": float(c.best_val_auprc_),
                     "best_epoch": int(c.best_epoch_)} for overrides, c in zip(candidates, tried)]}
                report["g_norm"] = self._guidance_norms(clf)
                save_classifier(clf, path)
                write_json_verified(report_path, report)
                self._time("guidance_classifier_s", time.perf_counter() - start)
        self.ledger.record("guidance classifier", np.concatenate([p.ids["train"], p.ids["val"]]))
        self._memo[key] = clf
        self._memo[("guidance_classifier_report", seed)] = report
        return clf

    def _guidance_norms(self, clf) -> dict:
        """||G|| over each possible guidance set: the minority set's is many times the whole
        validation split's, so under raw guidance it silently multiplies the effective w."""
        from tardiff.guidance import guidance_vector

        norms = {}
        for which in ("val", "minority", "train"):
            X, y, _ = guidance_data(self.prepared, which)
            norms[which] = float(guidance_vector(clf.module_, X, y, device=clf.device_).norm())
        return norms

    def _set_path(self, method: str, seed: int, guidance: GuidanceOptions | None) -> Path:
        key = hash_key(self.data_key, method, seed, None if guidance is None else guidance.key(), tardiff.__version__)
        return self.cache / f"synthetic-{method}-{key}.npz"

    def synthetic_sets(self, method: str, seed: int, *, guidance: GuidanceOptions | None = None,
                       pool_only: bool = False) -> SyntheticSets:
        """The method's pool (training size, real ratio) and balance set, cached on disk.

        ``guidance`` overrides a guided method's options (the sweep); ``pool_only`` skips the
        balance set (the sweep judges pools only). The noise-prediction error of a diffusion
        sampler's denoiser is stored beside them (see :mod:`tardiff.evaluation.gates`)."""
        p = self.prepared
        options = self.guidance_for(method, guidance)
        path = self._set_path(method, seed, options)
        if pool_only:
            path = path.with_name(path.name.replace("synthetic-", "pool-"))
        with file_lock(path):  # two runs sharing the cache: the second waits and reads the first's sets
            arrays = load_arrays(path)  # verified; a damaged file warns and is regenerated
            if arrays is None:
                start = time.perf_counter()
                sampler = self.generator(method, seed, guidance=guidance)
                counts = np.bincount(p.y_train, minlength=2)
                minority = int(np.argmin(counts))
                arrays = {}
                if registry.method(method).needs_pool:
                    arrays["pool_X"] = np.concatenate([sampler.sample(int(counts[c]), c) for c in (0, 1)])
                    arrays["pool_y"] = np.repeat([0, 1], counts)
                if not pool_only:
                    n_bal = int(counts.max() - counts.min())
                    arrays["balance_X"] = sampler.sample(n_bal, minority)
                    arrays["balance_y"] = np.full(n_bal, minority)
                self._time(f"{method}_generate_s_seed{seed}", time.perf_counter() - start)
                arrays["noise_error"] = np.array(self._noise_error(sampler, seed))
                save_arrays(path, **arrays)
        self._memo[("noise_error", method, seed)] = float(arrays["noise_error"])
        return SyntheticSets(**{k: arrays.get(k) for k in SET_NAMES})

    def _noise_error(self, sampler, seed: int) -> float:
        """Held-out noise-prediction MSE at the noisiest step, for samplers with a denoiser (else NaN)."""
        if not (hasattr(sampler, "denoiser_") and hasattr(sampler, "process_")):
            return float("nan")
        X, y = self.prepared.X_val, self.prepared.y_val
        if hasattr(sampler, "mean_"):  # MCRAGE models flattened rows standardised by its own mean and sd
            X = (X.reshape(len(X), -1) - sampler.mean_) / sampler.std_
        device = next(sampler.denoiser_.parameters()).device
        return noise_prediction_error(sampler.denoiser_, sampler.process_, X, y, seed=seed, device=device)

    def gates(self, method: str, seed: int, X: np.ndarray, y: np.ndarray, *, key) -> dict:
        """The quality-gate metrics of one synthetic set (cached; see :func:`~tardiff.evaluation.gates.quality_gate`)."""
        p, preset = self.prepared, self.config.preset
        path = self.cache / f"gates-{hash_key(self.data_key, key, preset.gate_epochs, tardiff.__version__)}.json"
        with file_lock(path):
            result = read_json_verified(path)
            if result is None:
                start = time.perf_counter()
                result = quality_gate(p.X_train, p.y_train, X, y, p.X_val, seed=seed, epochs=preset.gate_epochs,
                                      device=self.device)
                self._time("quality_gates_s", time.perf_counter() - start)
                write_json_verified(path, result)
        return result

    def generator_gates(self, method: str, seed: int) -> dict:
        """Gate row of ``method`` x ``seed`` for ``results.json``: the pool, or the balance set if it has no pool."""
        sets = self.synthetic_sets(method, seed)
        X, y = (sets.pool_X, sets.pool_y) if sets.pool_X is not None else (sets.balance_X, sets.balance_y)
        options = self.guidance_for(method)
        key = ("gates", method, seed, None if options is None else options.key())
        noise = self._memo.get(("noise_error", method, seed), float("nan"))
        return {"method": method, "seed": seed, **self.gates(method, seed, X, y, key=key),
                "noise_error": None if not np.isfinite(noise) else noise}

    # ---- evaluation
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
        p_val = clf.predict_proba(p.X_val)[:, 1]
        threshold = choose_threshold(p.y_val, p_val)
        p_test = clf.predict_proba(p.X_test)[:, 1]
        metrics = utility_metrics(p.y_test, p_test, threshold=threshold)
        for name in ("auprc", "auroc"):
            low, high = bootstrap_ci(p.y_test, p_test, name, n_boot=self.config.preset.bootstrap, random_state=seed)
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
        # Validation AUPRC: what choices between variants are made on (the test split never is).
        val_auprc = utility_metrics(p.y_val, p_val)["auprc"]
        self._time(f"evaluate_{evaluator}_s", fit_s)
        return {**metrics, "val_auprc": val_auprc, "threshold": threshold, "fit_seconds": fit_s,
                "n_train": int(len(train_set.y)), "n_synthetic": int(train_set.n_synthetic),
                "test_predictions": p_test.tolist()}

    def evaluated(self, method: str, seed: int, train_set, *, evaluators: tuple[str, ...] | None = None,
                  guidance: GuidanceOptions | None = None) -> list[dict]:
        """Evaluation records of ``train_set``, each read from ``records/`` when already there (verified).

        ``guidance`` overrides a guided method's options (the sweep)."""
        cfg = self.config
        options = self.guidance_for(method, guidance)
        out = []
        for evaluator in evaluators or cfg.evaluators:
            key = hash_key(self.data_key, method, seed, train_set.protocol, train_set.alpha, evaluator,
                           None if options is None else options.key(), tardiff.__version__)
            path = self.out / "records" / f"{key}.json"
            with file_lock(path):
                record = read_json_verified(path)  # an edited or truncated record warns and is recomputed
                if record is None:
                    record = {
                        "dataset": cfg.dataset, "task": self.prepared.cohort.task, "method": method,
                        "protocol": train_set.protocol, "alpha": train_set.alpha, "seed": seed,
                        "evaluator": evaluator, "scale": cfg.scale,
                        "guidance_scale": None if options is None else options.guidance_scale,
                        "guidance_norm": None if options is None else options.guidance_norm,
                        **self.evaluate(train_set, evaluator, seed, method),
                    }
                    write_json_verified(path, record)
            out.append(record)
        return out

    # ---- the whole run
    def run(self) -> list[dict]:
        """Run (or resume) every method x protocol x seed x evaluator, the gates, the sweep and the
        paired comparisons; write ``results.json`` and ``summary.csv``.

        PyTorch uses ``config.threads`` CPU threads meanwhile (as every executor's tasks do)."""
        with torch_threads(self.config.threads):
            return self._run()

    def _run(self) -> list[dict]:
        from tardiff.experiment.sweep import run_sweep, wants_sweep

        cfg, p = self.config, self.prepared
        methods = cfg.all_methods()
        jobs = [(m, s) for s in cfg.seeds for m in methods]
        records, generators = [], []
        bar = tqdm(jobs, desc=f"{cfg.dataset}: methods x seeds", disable=not cfg.progress)
        for method, seed in bar:
            bar.set_postfix_str(f"{method} seed {seed}")
            entry = registry.method(method)
            synthetic = self.synthetic_sets(method, seed) if entry.factory is not None else None
            for train_set in training_sets(method, p.X_train, p.y_train, synthetic, cfg.preset.alphas):
                records += self.evaluated(method, seed, train_set)
            if entry.synthetic:
                generators.append(self.generator_gates(method, seed))
        sweep = run_sweep(self) if wants_sweep(cfg) else []
        if any("guidance_classifier" in registry.method(m).components for m in methods):
            for seed in cfg.seeds:  # its report (candidates, ||G||) joins results.json; read from the cache
                self.guidance_classifier(seed)
        comparisons = self.compare(records)
        self.ledger.check_untouched(p.ids["test"])
        self.write(records, generators=generators, sweep=sweep, comparisons=comparisons)
        return records

    def compare(self, records: list[dict]) -> list[dict]:
        """Paired differences on the same test stays (see :mod:`tardiff.evaluation.comparisons`)."""
        from tardiff.evaluation.comparisons import compare_methods, default_pairs

        start = time.perf_counter()
        methods = sorted({r["method"] for r in records}, key=registry.order)
        rows = compare_methods(records, self.prepared.y_test, pairs=default_pairs(methods),
                               n_boot=self.config.preset.bootstrap, random_state=self.config.split_seed)
        self._time("comparisons_s", time.perf_counter() - start)
        return rows

    def reference_metrics(self) -> dict:
        """Prevalence of the test split and, on simulated data, the Bayes ceiling."""
        p = self.prepared
        ref = {"prevalence": float(p.y_test.mean()), "n_test": int(len(p.y_test))}
        posterior = p.cohort.bayes_posterior
        if posterior is not None:
            ref["bayes"] = utility_metrics(p.y_test, posterior[p.split.test])
        return ref

    def write(self, records: list[dict], *, generators: list[dict] = (), sweep: list[dict] = (),
              comparisons: list[dict] = ()) -> None:
        """``results.json`` (records, gates, sweep, comparisons, config, references) and ``summary.csv``."""
        from tardiff.experiment.sweep import selection_report

        slim = [{k: v for k, v in r.items() if k != "test_predictions"} for r in records]
        classifiers = [v for k, v in self._memo.items() if isinstance(k, tuple) and k[0] == "guidance_classifier_report"]
        write_json(self.out / "results.json", {
            "config": asdict(self.config), "version": tardiff.__version__, "device": self.device,
            "cohort": {"shape": list(self.prepared.cohort.shape), "splits": self.prepared.split.sizes(),
                       "positive_rate": self.prepared.cohort.positive_rate},
            "reference": self.reference_metrics(), "timings": self.timings, "records": slim,
            "quality_gate": gate_description(), "generators": list(generators), "sweep": list(sweep),
            "guidance_selection": selection_report(self), "guidance_classifier": classifiers,
            "comparisons": list(comparisons),
        })
        summary = summarise(slim, generators)
        with atomic_path(self.out / "summary.csv") as tmp:
            summary.to_csv(tmp, index=False)


def summarise(records: list[dict], generators: list[dict] = ()) -> pd.DataFrame:
    """Mean and std over seeds per dataset x method x protocol x alpha x evaluator.

    With the ``generators`` gate rows, a ``passes_quality_gate`` column says whether the method
    passed the gate on every seed (empty for methods that generate nothing)."""
    df = pd.DataFrame(records)
    df["alpha"] = df["alpha"].fillna(-1.0)  # keep alpha-free protocols in the groupby
    groups = ["dataset", "task", "method", "protocol", "alpha", "evaluator"]
    out = summarise_over_seeds(df, groups, ["auprc", "auroc", "minority_f1", "brier"])
    out["alpha"] = out["alpha"].replace(-1.0, np.nan)
    if generators:
        gates = pd.DataFrame(list(generators)).groupby("method")["passes_quality_gate"].all()
        out["passes_quality_gate"] = out["method"].map(lambda m: gates.get(m, None)).astype(object)
    return out
