"""TarDiff's guidance sweep, and the calibrated variant chosen from it on validation AUPRC.

The sweep draws a TSTR pool for each guidance setting (the paper's raw ``w`` and the calibrated
``unit`` scales, see :class:`tardiff.guidance.GuidanceOptions`), judges it with the run's main
evaluator and checks it against the quality gate, so utility and fidelity are seen together.
The calibrated variant ``tardiff_cal`` takes the unit scale whose pools give the best mean
**validation** AUPRC over the sweep's seeds, among the scales whose pools pass the gate (all
scales when none does); the test split plays no part in the choice.

Pools that are the same draws are not sampled twice: ``w = 0`` is the unguided pool (TarDiff
without guidance is the unguided sampler, draw for draw), and the run's own guidance setting
is the main TarDiff pool.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tardiff.evaluation.protocols import TrainingSet
from tardiff.guidance import GuidanceOptions


def sweep_points(config) -> list[GuidanceOptions]:
    """The sweep's guidance settings: raw ``w`` first, then the unit scales (the run's other options kept)."""
    base = config.guidance
    return ([replace(base, guidance_norm="raw", guidance_scale=float(w)) for w in config.sweep_raw]
            + [replace(base, guidance_norm="unit", guidance_scale=float(w)) for w in config.sweep_unit])


def sweep_seeds(config) -> tuple[int, ...]:
    """The run's first ``preset.sweep_seeds`` seeds."""
    return tuple(config.seeds[: max(1, config.preset.sweep_seeds)])


def wants_sweep(config) -> bool:
    """Whether the run sweeps TarDiff's guidance: a TarDiff variant is compared and the sweep is not empty."""
    return bool({"tardiff", "tardiff_cal"} & set(config.methods)) and bool(config.sweep_raw or config.sweep_unit)


def pool_source(config, options: GuidanceOptions) -> tuple[str, GuidanceOptions | None, bool]:
    """(method, guidance override, pool only) whose pool is TarDiff's pool under ``options``.

    ``w = 0`` is the unguided pool and the run's own setting the main TarDiff pool (the same draws);
    any other setting is a pool of its own."""
    if options.guidance_scale == 0.0:
        return "unguided", None, False
    if options == config.guidance and "tardiff" in config.methods:
        return "tardiff", None, False
    return "tardiff", options, True


def sweep_point(experiment, seed: int, options: GuidanceOptions, evaluator: str | None = None) -> dict:
    """TSTR utility (test and validation AUPRC) and quality gate of TarDiff's pool under ``options``."""
    evaluator = evaluator or experiment.config.evaluators[0]
    method, override, pool_only = pool_source(experiment.config, options)
    sets = experiment.synthetic_sets(method, seed, guidance=override, pool_only=pool_only)
    X, y = sets.pool_X, sets.pool_y
    train_set = TrainingSet("tstr", None, X, y, len(y))
    (record,) = experiment.evaluated(method, seed, train_set, evaluators=(evaluator,), guidance=override)
    used = experiment.guidance_for(method, override)
    gates = experiment.gates(method, seed, X, y, key=("gates", method, seed, None if used is None else used.key()))
    return {"guidance_norm": options.guidance_norm, "guidance_scale": options.guidance_scale, "seed": seed,
            "evaluator": evaluator, "auprc": record["auprc"], "auroc": record["auroc"],
            "val_auprc": record["val_auprc"], **{k: gates[k] for k in (
                "scale_ratio_neg", "scale_ratio_pos", "discriminative_score", "passes_quality_gate")}}


def run_sweep(experiment) -> list[dict]:
    """Every sweep point for the sweep's seeds (cached pools and records; resumable)."""
    cfg = experiment.config
    return [sweep_point(experiment, seed, options) for seed in sweep_seeds(cfg) for options in sweep_points(cfg)]


def calibrated_guidance(experiment) -> GuidanceOptions:
    """The unit-norm setting with the best mean validation AUPRC over the sweep's seeds (gate-passing first)."""
    key = ("calibrated_guidance",)
    if key in experiment._memo:
        return experiment._memo[key]
    cfg = experiment.config
    candidates = [o for o in sweep_points(cfg) if o.guidance_norm == "unit" and o.guidance_scale != 0.0]
    if not candidates:
        raise ValueError("no calibrated (unit, w != 0) sweep point to choose tardiff_cal from")
    rows = []
    for options in candidates:
        points = [sweep_point(experiment, seed, options) for seed in sweep_seeds(cfg)]
        rows.append({"guidance_norm": options.guidance_norm, "guidance_scale": options.guidance_scale,
                     "val_auprc": float(np.mean([p["val_auprc"] for p in points])),
                     "passes_quality_gate": all(p["passes_quality_gate"] for p in points)})
    passing = [i for i, r in enumerate(rows) if r["passes_quality_gate"]]
    eligible = passing or list(range(len(rows)))
    best = max(eligible, key=lambda i: rows[i]["val_auprc"])  # the first of equals: the smaller scale
    among = "those passing the quality gate" if passing else "all of them (none passed the quality gate)"
    experiment._memo[key] = candidates[best]
    experiment._memo[("calibrated_report",)] = {
        "method": "tardiff_cal", "guidance_norm": candidates[best].guidance_norm,
        "guidance_scale": candidates[best].guidance_scale,
        "criterion": ("the calibrated (unit) scale whose TSTR pools give the best mean validation AUPRC over the "
                      f"sweep's seeds {list(sweep_seeds(cfg))}, among {among}; the test split plays no part"),
        "candidates": rows,
    }
    return candidates[best]


def selection_report(experiment) -> dict | None:
    """What :func:`calibrated_guidance` chose and why (None when the run did not choose)."""
    return experiment._memo.get(("calibrated_report",))
