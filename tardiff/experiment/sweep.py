"""TarDiff's guidance sweep, and the calibrated variant chosen from it inside every replicate.

Each sweep point draws a TSTR pool under one guidance setting, judges it with the run's main
evaluator (test AUPRC reported, selection AUPRC for choices) and checks it against the quality
gate, so utility and fidelity are seen together. Three kinds of point:

* **calibrated candidates** (``guidance_norm="unit"``, :attr:`ExperimentPreset.sweep_unit`), in
  every replicate: the calibrated variant ``tardiff_cal`` takes, per replicate, the candidate
  whose pool gives the best AUPRC on that replicate's **selection** stays, among those passing
  the gate (all when none does). ``w = 0`` (the unguided pool) is always a candidate: when
  guidance never helps on selection data, calibrated TarDiff is the unguided model.
* **the paper's raw guidance** (``guidance_norm="raw"``, :attr:`ExperimentPreset.sweep_raw`) and
  **the public code's form** (the score taken at ``x0_hat``, a cosine similarity, the training
  split as the guidance set; unit scales :attr:`ExperimentPreset.sweep_code`), in the first
  :attr:`ExperimentPreset.sweep_seeds` replicates: shown, never chosen from.

The test split plays no part in any choice. Pools that are the same draws are not sampled
twice: ``w = 0`` is the unguided pool (TarDiff without guidance is the unguided sampler, draw
for draw), and the run's own guidance setting is the main TarDiff pool.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tardiff import registry
from tardiff.evaluation.protocols import TrainingSet
from tardiff.guidance import GuidanceOptions

#: The public TarDiff code's form of the guidance (METHOD.md): score at x0_hat, cosine, D_g = training split.
CODE_FORM = {"evaluate_at": "x0_hat", "similarity": "cosine", "guidance_set": "train"}


def candidate_points(config) -> list[GuidanceOptions]:
    """The calibrated variant's candidates, drawn in every replicate: w = 0, then the unit scales."""
    base = replace(config.guidance, guidance_norm="unit")
    scales = (0.0,) + tuple(w for w in config.sweep_unit if w != 0.0)
    return [replace(base, guidance_scale=float(w)) for w in scales]


def descriptive_points(config) -> list[GuidanceOptions]:
    """The paper's raw ``w`` and the public code's form, drawn in the first ``sweep_seeds`` replicates."""
    base = config.guidance
    raw = [replace(base, guidance_norm="raw", guidance_scale=float(w)) for w in config.sweep_raw if w != 0.0]
    code = [replace(base, guidance_norm="unit", guidance_scale=float(w), **CODE_FORM)
            for w in config.preset.sweep_code if w != 0.0]
    return raw + code


def sweep_points(config, seed: int) -> list[GuidanceOptions]:
    """Every sweep point of replicate ``seed``: the candidates, plus the descriptive points in the sweep's replicates."""
    points = candidate_points(config) if config.sweep_unit else []
    if seed in sweep_seeds(config):
        points += descriptive_points(config)
    return points


def sweep_seeds(config) -> tuple[int, ...]:
    """The replicates the descriptive sweep covers: the run's first ``preset.sweep_seeds`` seeds."""
    return tuple(config.seeds[: max(1, config.preset.sweep_seeds)])


def wants_sweep(config) -> bool:
    """Whether the run sweeps TarDiff's guidance: a guided method is compared and the sweep is not empty."""
    guided = any(registry.guided_method(kind, among=config.methods) for kind in ("config", "calibrated"))
    return guided and bool(config.sweep_raw or config.sweep_unit)


def pool_source(config, options: GuidanceOptions) -> tuple[str, GuidanceOptions | None, bool]:
    """(method, guidance override, pool only) whose pool is TarDiff's pool under ``options``.

    ``w = 0`` is the unguided twin's pool and the run's own setting the main TarDiff pool (the same
    draws); any other setting is a pool of its own."""
    main = registry.guided_method("config")
    if options.guidance_scale == 0.0 and registry.method(main).unguided_twin is not None:
        return registry.method(main).unguided_twin, None, False
    if options == config.guidance and main in config.methods:
        return main, None, False
    return main, options, True


def sweep_point(experiment, seed: int, options: GuidanceOptions, evaluator: str | None = None) -> dict:
    """TSTR utility (test, validation and selection AUPRC) and quality gate of TarDiff's pool under ``options``."""
    evaluator = evaluator or experiment.config.evaluators[0]
    method, override, pool_only = pool_source(experiment.config, options)
    sets = experiment.synthetic_sets(method, seed, guidance=override, pool_only=pool_only)
    X, y = sets.pool_X, sets.pool_y
    train_set = TrainingSet("tstr", None, X, y, len(y))
    (record,) = experiment.evaluated(method, seed, train_set, evaluators=(evaluator,), guidance=override)
    gates = experiment.gates(seed, X, y)
    form = "code" if all(getattr(options, k) == v for k, v in CODE_FORM.items()) else "paper"
    return {"guidance_norm": options.guidance_norm, "guidance_scale": options.guidance_scale, "form": form,
            "seed": seed, "evaluator": evaluator, "auprc": record["auprc"], "auroc": record["auroc"],
            "val_auprc": record["val_auprc"], "select_auprc": record["select_auprc"],
            "passes_quality_gate": gates["passes_quality_gate"],
            **{k: gates.get(k) for k in ("scale_ratio_neg", "scale_ratio_pos")}}


def calibrated_guidance(experiment, seed: int) -> GuidanceOptions:
    """Replicate ``seed``'s calibrated setting: the candidate (w = 0 among them) whose TSTR pool gives the best
    AUPRC on the replicate's selection stays, gate-passing first; the first of equals (the smaller scale)."""
    key = ("calibrated_guidance", seed)
    if key in experiment._memo:
        return experiment._memo[key]
    candidates = candidate_points(experiment.config)
    if len(candidates) < 2:
        raise ValueError("no calibrated (unit, w != 0) sweep point to choose tardiff_cal from")
    rows = []
    for options in candidates:
        point = sweep_point(experiment, seed, options)
        rows.append({k: point[k] for k in ("guidance_norm", "guidance_scale", "select_auprc", "val_auprc", "auprc",
                                           "passes_quality_gate")})
    best = choose_passing(rows, "select_auprc")
    passing = any(r["passes_quality_gate"] for r in rows)
    among = "those passing the quality gate" if passing else "all of them (none passed the quality gate)"
    experiment._memo[key] = candidates[best]
    experiment._memo[("calibrated_report", seed)] = {
        "method": registry.guided_method("calibrated"), "seed": seed, "parameter": "guidance_scale", "chosen": candidates[best].guidance_scale,
        "guidance_norm": candidates[best].guidance_norm,
        "criterion": ("the calibrated (unit) scale, 0 included, whose TSTR pool gives the best AUPRC on the "
                      f"replicate's selection stays, among {among}; the test split plays no part"),
        "candidates": [{"value": r["guidance_scale"], "select_auprc": r["select_auprc"], "val_auprc": r["val_auprc"],
                        "test_auprc": r["auprc"], "passes_quality_gate": r["passes_quality_gate"]} for r in rows],
    }
    return candidates[best]


def choose_passing(rows: list[dict], criterion: str) -> int:
    """The index of the best ``criterion`` among the rows that pass the quality gate (all when none does);
    the first of equals.

    Examples
    --------
    >>> choose_passing([{"a": 0.9, "passes_quality_gate": False}, {"a": 0.5, "passes_quality_gate": True}], "a")
    1
    """
    passing = [i for i, r in enumerate(rows) if r["passes_quality_gate"]]
    return max(passing or range(len(rows)), key=lambda i: rows[i][criterion])


def selection_agreement(selections: list[dict]) -> list[dict]:
    """How often each replicate's choice on selection stays was also the test split's best candidate.

    For every tuned choice (the calibrated scale, MCRAGE's weight): the replicates, in how many
    the chosen value had the best test AUPRC among the candidates, and in how many the choice
    was 0 (no guidance). Reported, never used to choose.

    Examples
    --------
    >>> sel = [{"method": "tardiff_cal", "seed": s, "chosen": c, "candidates": [
    ...     {"value": 0.0, "test_auprc": 0.5}, {"value": 0.1, "test_auprc": t}]} for s, c, t in ((0, 0.1, 0.6), (1, 0.0, 0.7))]
    >>> selection_agreement(sel)[0]["also_best_on_test"], selection_agreement(sel)[0]["chose_zero"]
    (1, 1)
    """
    out = {}
    for s in selections:
        row = out.setdefault(s["method"], {"method": s["method"], "replicates": 0, "also_best_on_test": 0,
                                           "chose_zero": 0, "chosen": []})
        best = max(s["candidates"], key=lambda c: c["test_auprc"])["value"]
        row["replicates"] += 1
        row["also_best_on_test"] += int(np.isclose(best, s["chosen"]))
        row["chose_zero"] += int(s["chosen"] == 0.0)
        row["chosen"].append(s["chosen"])
    return list(out.values())

