"""The runner: every method, protocol, replicate and evaluator of one dataset, with an artifact cache.

:class:`Experiment` runs each of the config's seeds as a *replicate*: its own stratified draw
of the training, validation, guidance, selection and test stays (unless the run fixes one
split for all) and its own seed for every trained component. Within a replicate it trains each
generator on the training split, generates its synthetic sets, checks them against the quality
gate on held-out selection stays, trains the evaluators on every protocol's training set
(checkpoints chosen on the validation split) and scores them on that replicate's untouched
test split. Every choice is made inside the replicate on its selection stays: the guidance
classifier's settings, the calibrated guidance scale (0 among the candidates) and MCRAGE's
guidance weight. The fixed family of comparisons is then computed from the per-replicate
paired differences (:mod:`tardiff.evaluation.replicates`). Every artifact is cached by a hash
of what it is computed from (the data's content, the settings, the code version) and verified
when read, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
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
    arrays_checksum,
    write_json,
    write_json_verified,
)
from tardiff.errors import ParameterError
from tardiff.evaluation.gates import noise_prediction_error
from tardiff.evaluation.protocols import SyntheticSets, TrainingSet, protocol_settings, training_set
from tardiff.evaluation.utility import RECORD_METRICS, bootstrap_ci, choose_threshold, utility_metrics
from tardiff.experiment import versions
from tardiff.experiment.config import ExperimentConfig
from tardiff.experiment.data import (
    DataLedger,
    content_hash,
    guidance_data,
    load_prepared,
    selection_data,
)
from tardiff.experiment.summary import summarise
from tardiff.experiment.sweep import choose_passing
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
        self._replicates: dict[int, tuple] = {}  # split seed -> (prepared cohort, data key, ledger)
        self._memo: dict = {}  # trained components shared within this run
        self.timings: dict[str, float] = {"load_and_prepare_s": 0.0}
        self.data(config.seeds[0])  # the first replicate's data now: bad data fails before any work

    # ---- one replicate's data
    def data(self, seed: int):
        """The prepared cohort of replicate ``seed`` (its own split unless the run fixes one)."""
        return self._replicate(seed)[0]

    def data_key(self, seed: int) -> str:
        """What every artifact of replicate ``seed`` is keyed by: the content of its data and splits,
        the data version, and the settings declared ``key="data"`` (scale, device, CPU threads)."""
        return self._replicate(seed)[1]

    def ledger(self, seed: int) -> DataLedger:
        """Which stays of replicate ``seed`` reached which component."""
        return self._replicate(seed)[2]

    def _replicate(self, seed: int) -> tuple:
        split_seed = self.config.split_seed_of(seed)
        if split_seed not in self._replicates:
            start = time.perf_counter()
            prepared = load_prepared(self.config, split_seed)
            # the settings declared key="data" (scale, device, threads: each changes the numbers) and the
            # content that the key="content" settings chose
            key = hash_key(content_hash(prepared), versions.DATA, self.config.key_values("data"))
            self._replicates[split_seed] = (prepared, key, DataLedger())
            self._time("load_and_prepare_s", time.perf_counter() - start)
        return self._replicates[split_seed]

    @property
    def prepared(self):
        """The first replicate's prepared cohort (the one the chapter's cohort pictures show)."""
        return self.data(self.config.seeds[0])

    def _time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    # ---- guidance options of each method
    def guidance_for(self, method: str, override: GuidanceOptions | None = None, *,
                     seed: int | None = None) -> GuidanceOptions | None:
        """The guidance options that build ``method``'s samples in replicate ``seed`` (None: not guided).

        The calibrated variant's are chosen per replicate (``seed`` is then required)."""
        entry = registry.method(method)
        if entry.guidance is None:
            return None
        if override is not None:
            return override
        if entry.guidance == "calibrated":
            from tardiff.experiment.sweep import calibrated_guidance

            if seed is None:
                raise ValueError("the calibrated guidance is chosen per replicate: pass seed")
            return calibrated_guidance(self, seed)
        return self.config.guidance

    def _guidance_set(self, seed: int, options: GuidanceOptions | None) -> tuple[np.ndarray, np.ndarray]:
        Xg, yg, gid = guidance_data(self.data(seed), (options or self.config.guidance).guidance_set)
        self.ledger(seed).record("guidance set", gid)
        return Xg, yg

    # ---- components (each cached by what determines it)
    def generator(self, method: str, seed: int, *, guidance: GuidanceOptions | None = None,
                  tuned: float | None = None):
        """A fitted sampler of ``method`` for replicate ``seed`` (trained on its training split only).

        The registry's factory builds it; ``guidance`` overrides a guided method's options (the
        sweep) and ``tuned`` sets the method's tuned parameter (see :meth:`tuned_value`)."""
        entry = registry.method(method)
        if entry.factory is None:
            raise ParameterError(f"method {method!r} trains on real data only and has no generator")
        p = self.data(seed)
        options = self.guidance_for(method, guidance, seed=seed)
        context = registry.MethodContext(
            seed=seed, scale=self.config.scale, device=self.device, progress=self.config.progress,
            guidance=options, denoiser=lambda: self.denoiser(seed),
            guidance_classifier=lambda: self.guidance_classifier(seed),
            guidance_set=lambda: self._guidance_set(seed, options), tuned=tuned,
        )
        sampler = entry.factory(context)
        self.ledger(seed).record(f"{method} generator", p.ids["train"])
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
        stem = hash_key(self.data_key(seed), asdict(unet_cfg), train_cfg.key(), seed, versions.DENOISER)
        path = self.cache / f"denoiser-{stem}.pt"
        start = time.perf_counter()
        sampler = UnguidedDiffusionSampler(scale=scale, unet_config=unet_cfg, train_config=train_cfg,
                                           random_state=seed, device=self.device, progress=self.config.progress,
                                           checkpoint_path=path)
        p = self.data(seed)
        with file_lock(path):  # a second run sharing the cache waits, then resumes the finished checkpoint
            sampler.fit(p.X_train, p.y_train)
        self._time(f"denoiser_train_s_seed{seed}", time.perf_counter() - start)
        self.ledger(seed).record("denoiser training", p.ids["train"])
        self._memo[key] = sampler.denoiser_
        return sampler.denoiser_

    def guidance_classifier(self, seed: int):
        """The GRU TarDiff differentiates, for replicate ``seed``: fit on its training split (checkpoint
        chosen on validation); among the scale's candidate settings, the one with the best AUPRC on
        the replicate's selection stays. Cached on disk with the report of what was tried, so every
        process of a run shares it."""
        from tardiff.classifiers import load_classifier, make_classifier, save_classifier
        from tardiff.evaluation.utility import utility_metrics
        from tardiff.presets import sizes

        key = ("guidance_classifier", seed)
        if key in self._memo:
            return self._memo[key]
        p, scale = self.data(seed), self.config.scale
        X_sel, y_sel, sel_ids, sel_name = selection_data(p)
        candidates = self.config.preset.guidance_candidates
        stem = hash_key(self.data_key(seed), sizes("classifier", scale, "gru"), candidates, seed,
                        versions.GUIDANCE_CLASSIFIER)
        path = self.cache / f"guidance-classifier-{stem}.pt"
        report_path = path.with_suffix(".json")
        with file_lock(path):
            report = read_json_verified(report_path)
            # an edited or damaged checkpoint (its checksum fails) is retrained, never trusted
            clf = load_classifier(path, device=self.device, if_damaged="none") if report is not None else None
            if clf is None:
                start = time.perf_counter()
                tried = []
                for overrides in candidates:
                    model = make_classifier("gru", scale, random_state=seed, device=self.device, **overrides)
                    tried.append(model.fit(p.X_train, p.y_train, p.X_val, p.y_val))
                scores = [utility_metrics(y_sel, c.predict_proba(X_sel)[:, 1])["auprc"] for c in tried]
                best = int(np.argmax(scores))  # the first of equals
                clf = tried[best]
                report = {"seed": seed, "chosen": best, "criterion": f"AUPRC on the {sel_name} stays", "candidates": [
                    {"settings": dict(overrides), "hidden": c.config_.hidden, "val_auprc": float(c.best_val_auprc_),
                     "select_auprc": float(score), "best_epoch": int(c.best_epoch_)}
                    for overrides, c, score in zip(candidates, tried, scores)]}
                report["g_norm"] = self._guidance_norms(clf, seed)
                save_classifier(clf, path)
                write_json_verified(report_path, report)
                self._time("guidance_classifier_s", time.perf_counter() - start)
        self.ledger(seed).record("guidance classifier", np.concatenate([p.ids["train"], p.ids["val"], sel_ids]))
        self._memo[key] = clf
        self._memo[("guidance_classifier_report", seed)] = report
        return clf

    def _guidance_norms(self, clf, seed: int) -> dict:
        """||G|| over each possible guidance set: the minority set's is many times the whole
        guidance split's, so under raw guidance it silently multiplies the effective w."""
        from tardiff.guidance import guidance_vector

        norms = {}
        for which in ("val", "minority", "train"):
            X, y, _ = guidance_data(self.data(seed), which)
            norms[which] = float(guidance_vector(clf.module_, X, y, device=clf.device_).norm())
        return norms

    # ---- synthetic sets
    def _set_path(self, method: str, seed: int, guidance: GuidanceOptions | None, tuned: float | None) -> Path:
        key = hash_key(self.data_key(seed), method, seed, None if guidance is None else guidance.key(), tuned,
                       versions.SYNTHETIC)
        return self.cache / f"synthetic-{method}-{key}.npz"

    def synthetic_sets(self, method: str, seed: int, *, guidance: GuidanceOptions | None = None,
                       pool_only: bool = False, tuned: float | None = None) -> SyntheticSets:
        """The method's pool (training size, real ratio) and balance set in replicate ``seed``, cached on disk.

        ``guidance`` overrides a guided method's options (the sweep); ``pool_only`` skips the
        balance set (the sweep judges pools only); ``tuned`` sets a tuned method's parameter
        (None: the value chosen on the replicate's selection stays). A calibrated choice of
        guidance scale 0 is the unguided model's sets (the same draws). The noise-prediction
        error of a diffusion sampler's denoiser is stored beside them (see
        :mod:`tardiff.evaluation.gates`)."""
        entry = registry.method(method)
        options = self.guidance_for(method, guidance, seed=seed)
        twin = entry.unguided_twin
        if options is not None and options.guidance_scale == 0.0 and twin in registry.method_names():
            sets = self.synthetic_sets(twin, seed)  # TarDiff at w = 0 is the unguided sampler, draw for draw
            self._memo[("noise_error", method, seed)] = self._memo[("noise_error", twin, seed)]
            return sets
        if entry.tuned is not None and tuned is None:
            tuned = self.tuned_value(method, seed)
        path = self._set_path(method, seed, options, tuned)
        if pool_only:
            path = path.with_name(path.name.replace("synthetic-", "pool-"))
        with file_lock(path):  # two runs sharing the cache: the second waits and reads the first's sets
            arrays = load_arrays(path)  # verified; a damaged file warns and is regenerated
            if arrays is None:
                start = time.perf_counter()
                sampler = self._fitted(method, seed, guidance, tuned)
                arrays = self._draw(sampler, method, seed, pool_only)
                self._time(f"{method}_generate_s_seed{seed}", time.perf_counter() - start)
                arrays["noise_error"] = np.array(self._noise_error(sampler, seed))
                save_arrays(path, **arrays)
        self._memo[("noise_error", method, seed)] = float(arrays["noise_error"])
        return SyntheticSets(**{k: arrays.get(k) for k in SET_NAMES})

    def _fitted(self, method: str, seed: int, guidance: GuidanceOptions | None, tuned: float | None):
        """A fitted sampler; a tuned method is fitted once per replicate and copied for each value,
        so each candidate samples from the same generator state, whatever order they are drawn in."""
        import copy

        entry = registry.method(method)
        if entry.tuned is None:
            return self.generator(method, seed, guidance=guidance)
        key = ("fitted", method, seed)
        if key not in self._memo:
            self._memo[key] = self.generator(method, seed, guidance=guidance, tuned=tuned)
        sampler = copy.deepcopy(self._memo[key])
        return sampler.set_params(**{entry.tuned[0]: tuned})

    def _draw(self, sampler, method: str, seed: int, pool_only: bool) -> dict:
        p = self.data(seed)
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
        return arrays

    def tuned_value(self, method: str, seed: int) -> float:
        """The tuned parameter of ``method`` chosen in replicate ``seed`` (see :attr:`Method.tuned`).

        Each candidate's sets are drawn from one fitted sampler; the main evaluator is trained on
        the candidate's training set under the declared protocol (checkpoint on validation) and
        scored on the replicate's selection stays. The best AUPRC wins among the candidates whose
        sets pass the quality gate (among all when none does); the test split plays no part."""
        key = ("tuned", method, seed)
        if key in self._memo:
            return self._memo[key]
        name, candidates, protocol = registry.method(method).tuned
        rows = []
        for value in candidates:
            sets = self.synthetic_sets(method, seed, tuned=float(value))
            train_set = _protocol_set(method, self.data(seed), sets, protocol, self.config.preset.alphas)
            (record,) = self.evaluated(method, seed, train_set, evaluators=self.config.evaluators[:1],
                                       tuned=float(value))
            gate = self._set_gate(seed, sets)
            rows.append({"value": float(value), "select_auprc": record["select_auprc"],
                         "val_auprc": record["val_auprc"], "test_auprc": record["auprc"],
                         "passes_quality_gate": gate["passes_quality_gate"]})
        chosen = choose_passing(rows, "select_auprc")
        self._memo[key] = rows[chosen]["value"]
        self._memo[("tuned_report", method, seed)] = {
            "method": method, "seed": seed, "parameter": name, "protocol": protocol, "chosen": rows[chosen]["value"],
            "criterion": (f"AUPRC on the selection stays of the {self.config.evaluators[0]} evaluator trained under "
                          f"{protocol}, among the values whose sets pass the quality gate (all when none does)"),
            "candidates": rows}
        return self._memo[key]

    def _noise_error(self, sampler, seed: int) -> float:
        """Held-out noise-prediction MSE at the noisiest step, for samplers with a denoiser (else NaN)."""
        if not (hasattr(sampler, "denoiser_") and hasattr(sampler, "process_")):
            return float("nan")
        p = self.data(seed)
        X, y = p.X_val, p.y_val
        if hasattr(sampler, "mean_"):  # MCRAGE models flattened rows standardised by its own mean and sd
            X = (X.reshape(len(X), -1) - sampler.mean_) / sampler.std_
        device = next(sampler.denoiser_.parameters()).device
        return noise_prediction_error(sampler.denoiser_, sampler.process_, X, y, seed=seed, device=device)

    # ---- the quality gate
    def real_baseline(self, seed: int) -> dict:
        """The gate's real-vs-real baseline of replicate ``seed`` (held-out selection stays against
        training stays), computed once per replicate and cached."""
        from tardiff.evaluation.gates import real_baseline

        p = self.data(seed)
        X_sel, y_sel, sel_ids, _ = selection_data(p)
        path = self.cache / f"gate-baseline-{hash_key(self.data_key(seed), self.config.scale, versions.GATES)}.json"
        with file_lock(path):
            result = read_json_verified(path)
            if result is None:
                start = time.perf_counter()
                result = real_baseline(p.X_train, p.y_train, X_sel, y_sel, seed=seed, scale=self.config.scale,
                                       device=self.device)
                self._time("quality_gates_s", time.perf_counter() - start)
                write_json_verified(path, result)
        self.ledger(seed).record("quality gate", sel_ids)
        return result

    def gates(self, seed: int, X: np.ndarray, y: np.ndarray) -> dict:
        """The quality gate of one synthetic set of replicate ``seed`` against its held-out selection stays
        (cached by the set's content; see :func:`~tardiff.evaluation.gates.quality_gate`)."""
        from tardiff.evaluation.gates import quality_gate

        p = self.data(seed)
        X_sel, y_sel, _, _ = selection_data(p)
        content = arrays_checksum({"X": X, "y": y})
        path = self.cache / f"gates-{hash_key(self.data_key(seed), content, self.config.scale, versions.GATES)}.json"
        with file_lock(path):
            result = read_json_verified(path)
            if result is None:
                baseline = self.real_baseline(seed)
                start = time.perf_counter()
                result = quality_gate(p.X_train, p.y_train, X, y, X_sel, y_sel, baseline=baseline, seed=seed,
                                      scale=self.config.scale, device=self.device)
                self._time("quality_gates_s", time.perf_counter() - start)
                write_json_verified(path, result)
        return result

    def _set_gate(self, seed: int, sets: SyntheticSets) -> dict:
        """The gate of a method's sets: its pool, or its balance set when it has no pool."""
        X, y = (sets.pool_X, sets.pool_y) if sets.pool_X is not None else (sets.balance_X, sets.balance_y)
        return self.gates(seed, X, y)

    def generator_gates(self, method: str, seed: int) -> dict:
        """Gate row of ``method`` in replicate ``seed`` for ``results.json``."""
        gate = self._set_gate(seed, self.synthetic_sets(method, seed))
        noise = self._memo.get(("noise_error", method, seed), float("nan"))
        return {"method": method, "seed": seed, **gate, "noise_error": None if not np.isfinite(noise) else noise}

    # ---- evaluation
    def evaluate(self, train_set, evaluator: str, seed: int, method: str) -> dict:
        """Fit ``evaluator`` on ``train_set`` (checkpoint on the replicate's validation AUPRC), score it on
        its selection stays (what choices are made on) and on its test split (what is reported).

        Every evaluator is built alike, from the registry; the method decides the class weighting."""
        p = self.data(seed)
        X_sel, y_sel, _, sel_name = selection_data(p)
        clf = registry.evaluator(evaluator).factory(self.config.scale, random_state=seed, device=self.device,
                                                    class_weight=registry.method(method).class_weight)
        start = time.perf_counter()
        clf.fit(train_set.X, train_set.y, p.X_val, p.y_val)
        fit_s = time.perf_counter() - start
        self.ledger(seed).record("checkpoint selection", p.ids["val"])
        p_val = clf.predict_proba(p.X_val)[:, 1]
        threshold = choose_threshold(p.y_val, p_val)
        p_test = clf.predict_proba(p.X_test)[:, 1]
        metrics = utility_metrics(p.y_test, p_test, threshold=threshold)
        for name in ("auprc", "auroc"):
            low, high = bootstrap_ci(p.y_test, p_test, name, n_boot=self.config.preset.bootstrap, random_state=seed)
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = low, high
        # Validation and selection AUPRC: what choices between variants are made on (never the test split).
        val_auprc = utility_metrics(p.y_val, p_val)["auprc"]
        select_auprc = utility_metrics(y_sel, clf.predict_proba(X_sel)[:, 1])["auprc"]
        self._time(f"evaluate_{evaluator}_s", fit_s)
        return {**metrics, "val_auprc": val_auprc, "select_auprc": select_auprc, "selection_part": sel_name,
                "threshold": threshold, "fit_seconds": fit_s, "n_train": int(len(train_set.y)),
                "n_synthetic": int(train_set.n_synthetic), "test_predictions": p_test.tolist()}

    def evaluated(self, method: str, seed: int, train_set, *, evaluators: tuple[str, ...] | None = None,
                  guidance: GuidanceOptions | None = None, tuned: float | None = None) -> list[dict]:
        """Evaluation records of ``train_set``, each read from ``records/`` when already there (verified).

        A record is keyed by the content of the training set it judges, so a synthetic set that
        was regenerated (or edited) is judged anew. ``guidance`` overrides a guided method's
        options (the sweep); ``tuned`` names a tuned method's candidate value."""
        cfg = self.config
        options = self.guidance_for(method, guidance, seed=seed)
        if tuned is None and registry.method(method).tuned is not None:
            tuned = self.tuned_value(method, seed)
        content = arrays_checksum({"X": train_set.X, "y": train_set.y})
        out = []
        for evaluator in evaluators or cfg.evaluators:
            key = hash_key(self.data_key(seed), method, seed, train_set.protocol, train_set.alpha, evaluator,
                           None if options is None else options.key(), tuned, content, versions.RECORD)
            path = self.out / "records" / f"{key}.json"
            with file_lock(path):
                record = read_json_verified(path)  # an edited or truncated record warns and is recomputed
                if record is None:
                    record = {
                        "dataset": cfg.dataset, "task": self.data(seed).cohort.task, "method": method,
                        "protocol": train_set.protocol, "alpha": train_set.alpha, "seed": seed,
                        "split_seed": cfg.split_seed_of(seed), "evaluator": evaluator, "scale": cfg.scale,
                        "guidance_scale": None if options is None else options.guidance_scale,
                        "guidance_norm": None if options is None else options.guidance_norm,
                        "tuned": tuned,
                        **self.evaluate(train_set, evaluator, seed, method),
                    }
                    write_json_verified(path, record)
                elif set(RECORD_METRICS) - set(record):  # a metric registered since: from the stored predictions
                    y_test, p_test = self.data(seed).y_test, np.asarray(record["test_predictions"])
                    for name in set(RECORD_METRICS) - set(record):
                        record[name] = float(RECORD_METRICS[name].fn(y_test, p_test, record["threshold"]))
                    write_json_verified(path, record)
            out.append(record)
        return out

    # ---- the whole run
    def run(self) -> list[dict]:
        """Run (or resume) every method x protocol x replicate x evaluator, the gates, the sweep and the
        comparisons; write ``results.json`` and ``summary.csv``.

        PyTorch uses ``config.threads`` CPU threads meanwhile (as every executor's tasks do)."""
        with torch_threads(self.config.threads):
            return self._run()

    def _run(self) -> list[dict]:
        from tardiff.experiment.tasks import build_graph, run_task

        cfg = self.config
        graph = build_graph(cfg)  # the run's only enumeration of its work, whichever executor runs it
        results = {}
        bar = tqdm(graph, desc=f"{cfg.dataset}: tasks", disable=not cfg.progress)
        for task in bar:
            bar.set_postfix_str(task.name())
            results[task.key] = run_task(self, task)
        records = [r for task in graph if task.kind == "evaluate" for r in results[task.key]]
        generators = [results[task.key] for task in graph if task.kind == "gates"]
        sweep = [results[task.key] for task in graph if task.kind == "sweep_point"]
        comparisons = self.compare(records)
        for seed in cfg.seeds:
            self.ledger(seed).check_untouched(self.data(seed).ids["test"])
        self.write(records, generators=generators, sweep=sweep, comparisons=comparisons)
        return records

    def compare(self, records: list[dict]) -> list[dict]:
        """The family of comparisons fixed in advance, from per-replicate paired differences
        (:mod:`tardiff.evaluation.replicates`), each with the test-noise figure beside it."""
        from tardiff.evaluation.comparisons import within_split_noise_sd
        from tardiff.evaluation.replicates import replicated_comparisons

        start = time.perf_counter()
        methods = sorted({r["method"] for r in records}, key=registry.order)
        family = registry.comparison_family(methods, self.config.evaluators[0], self.config.preset.alphas)
        rows = replicated_comparisons(records, family)
        if not self.config.replicated:
            for row in rows:
                row["interval"] += (f"; CAUTION: one split (split seed {self.config.split_seed}) for every seed, so "
                                    "the interval covers the training seeds only")
        for row in rows:
            row["test_noise_sd"] = within_split_noise_sd(records, row, {s: self.data(s).y_test for s in row["replicates"]},
                                                 n_boot=self.config.preset.bootstrap)
        self._time("comparisons_s", time.perf_counter() - start)
        return rows

    def reference_metrics(self) -> dict:
        """Prevalence of the test splits and, on simulated data, the Bayes ceiling (means over replicates)."""
        refs = []
        for seed in self.config.seeds:
            p = self.data(seed)
            ref = {"prevalence": float(p.y_test.mean()), "n_test": int(len(p.y_test))}
            posterior = p.cohort.bayes_posterior
            if posterior is not None:
                ref["bayes"] = utility_metrics(p.y_test, posterior[p.split.test])
            refs.append(ref)
        out = {"prevalence": float(np.mean([r["prevalence"] for r in refs])), "n_test": refs[0]["n_test"]}
        if "bayes" in refs[0]:
            out["bayes"] = {k: float(np.mean([r["bayes"][k] for r in refs])) for k in refs[0]["bayes"]}
        return out

    def selections(self) -> list[dict]:
        """Every choice made inside a replicate on its selection stays, as stored in ``results.json``."""
        keys = ("calibrated_report", "tuned_report")
        return [v for k, v in self._memo.items() if isinstance(k, tuple) and k[0] in keys]

    def write(self, records: list[dict], *, generators: list[dict] = (), sweep: list[dict] = (),
              comparisons: list[dict] = ()) -> None:
        """``results.json`` (records, gates, sweep, selections, comparisons, config, references) and ``summary.csv``."""
        from tardiff.evaluation.gates import gate_description
        from tardiff.evaluation.replicates import FAMILY_ALPHA, INTERVAL_METHOD
        from tardiff.experiment.sweep import selection_agreement

        slim = [{k: v for k, v in r.items() if k != "test_predictions"} for r in records]
        classifiers = [v for k, v in self._memo.items() if isinstance(k, tuple) and k[0] == "guidance_classifier_report"]
        first = self.prepared
        write_json(self.out / "results.json", {
            "config": asdict(self.config), "version": tardiff.__version__, "device": self.device,
            "cohort": {"shape": list(first.cohort.shape), "splits": first.split.sizes(),
                       "positive_rate": first.cohort.positive_rate},
            "replicates": {"seeds": list(self.config.seeds), "replicated": self.config.replicated,
                           "split_seeds": [self.config.split_seed_of(s) for s in self.config.seeds],
                           "interval": INTERVAL_METHOD, "family_alpha": FAMILY_ALPHA,
                           "adjustment": "Holm step-down over the family of comparisons"},
            "reference": self.reference_metrics(), "timings": self.timings, "records": slim,
            "quality_gate": gate_description(), "generators": list(generators), "sweep": list(sweep),
            "selections": self.selections(), "selection_agreement": selection_agreement(self.selections()),
            "guidance_classifier": classifiers, "comparisons": list(comparisons),
        })
        summary = summarise(slim, generators)
        with atomic_path(self.out / "summary.csv") as tmp:
            summary.to_csv(tmp, index=False)


def _protocol_set(method: str, prepared, sets: SyntheticSets, protocol: str, alphas) -> TrainingSet:
    """The training set of ``method`` under ``protocol`` (TSRTR at the largest ratio)."""
    matching = [(p, a) for p, a in protocol_settings(method, alphas) if p == protocol]
    if not matching:
        raise ValueError(f"{method} is not judged under {protocol}")
    return training_set(*matching[-1], prepared.X_train, prepared.y_train, sets)
