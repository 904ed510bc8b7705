#!/usr/bin/env python3
"""MCRAGE (published defaults, cpu scale) through the quality gate, per dataset, seed and guidance weight.

    OMP_NUM_THREADS=1 benchmarks/mcrage-gate.py [--datasets simulated,physionet2012] [--seeds 0,1,2]
                                                [--weights 0,0.5,4] [--rows 150]

Per dataset and seed: MCRAGE (``MCRAGESampler(scale="cpu")``: betas 1e-4 .. 0.02, hidden 2 x the
flattened width, no input gate, label dropout 0.1) is fitted once on the 800 training stays of
``benchmarks/gate_data.py``; at each classifier-free guidance weight w (set after fitting,
no retraining) it samples ``--rows`` stays of each class, which go through the gate against the
800 held-out real stays. Records the gate's numbers, fit and sampling seconds, and
the row-norm ratios of the samples in MCRAGE's own standardised space. Writes
``benchmarks/results/mcrage-gate.json`` (``--out``), updated after every set. ``--n-steps`` and
``--schedule linear`` run diagnostic variants (recorded under ``variant``) to find why a set fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from gate_data import splits  # noqa: E402

from tardiff.evaluation.gates import gate_description, quality_gate, real_baseline  # noqa: E402
from tardiff.samplers import MCRAGESampler  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="simulated,physionet2012")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--weights", default="0,0.5,4")
    parser.add_argument("--rows", type=int, default=150, help="synthetic stays per class and weight")
    parser.add_argument("--n-steps", type=int, default=None, help="diagnostic: T other than the preset's")
    parser.add_argument("--n-layers", type=int, default=None, help="diagnostic: hidden layers other than the preset's")
    parser.add_argument("--iterations", type=int, default=None, help="diagnostic: training steps other than the preset's")
    parser.add_argument("--schedule", default="literal", help="diagnostic: 'linear' is our rescaled schedule")
    parser.add_argument("--out", default=str(HERE / "results" / "mcrage-gate.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    report.setdefault("commands", [])
    report["commands"].append("OMP_NUM_THREADS=1 benchmarks/mcrage-gate.py " + " ".join(sys.argv[1:]))
    report.update({
                   "scale": "cpu", "torch_threads": 1, "quality_gate": gate_description()})
    report.setdefault("runs", [])
    for dataset in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            data = splits(dataset, seed=0)  # one split per dataset; the seed varies the generator
            (X_train, y_train), (X_held, y_held) = data["train"], data["heldout"]
            baseline = real_baseline(X_train, y_train, X_held, y_held, seed=0, scale="cpu")
            sampler = MCRAGESampler(scale="cpu", random_state=seed, n_steps=args.n_steps, schedule=args.schedule,
                                    n_layers=args.n_layers, iterations=args.iterations)
            changed = {k: v for k, v in (("T", args.n_steps), ("n_layers", args.n_layers),
                                         ("iterations", args.iterations)) if v is not None}
            if args.schedule != "literal":
                changed["schedule"] = args.schedule
            variant = ", ".join(f"{k}={v}" for k, v in changed.items()) or "published"
            start = time.perf_counter()
            sampler.fit(X_train, y_train)
            fit_s = time.perf_counter() - start
            settings = sampler._settings()
            for w in (float(v) for v in args.weights.split(",")):
                sampler.set_params(guidance_weight=w)
                start = time.perf_counter()
                X = np.concatenate([sampler.sample(args.rows, 0), sampler.sample(args.rows, 1)])
                sample_s = time.perf_counter() - start
                y = np.r_[np.zeros(args.rows, int), np.ones(args.rows, int)]
                z = lambda a: (a.reshape(len(a), -1) - sampler.mean_) / sampler.std_  # noqa: E731
                norms = {f"z_norm_ratio_{s}": float(np.linalg.norm(z(X[y == c]), axis=1).mean()
                                                    / np.linalg.norm(z(X_held[y_held == c]), axis=1).mean())
                         for c, s in ((0, "neg"), (1, "pos"))}
                start = time.perf_counter()
                gate = quality_gate(X_train, y_train, X, y, X_held, y_held, baseline=baseline, seed=0, scale="cpu",
                                    features=data["features"])
                row = {"dataset": dataset, "seed": seed, "w": w, "variant": variant, "settings": settings, "fit_s": round(fit_s, 1),
                       "sample_s": round(sample_s, 1), "gate_s": round(time.perf_counter() - start, 1),
                       "final_loss": float(np.mean(sampler.losses_[-20:])), **norms, **gate}
                key = (dataset, seed, w, variant)
                report["runs"] = [r for r in report["runs"]
                                  if (r["dataset"], r["seed"], r["w"], r.get("variant", "published")) != key]
                report["runs"].append(row)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
                print(f"{dataset} [{variant}] seed {seed} w {w:g}: pass={gate['passes_quality_gate']} "
                      f"gru {gate['gru_auroc_neg']:.2f}/{gate['gru_auroc_pos']:.2f} "
                      f"gbm {gate['gbm_auroc_neg']:.2f}/{gate['gbm_auroc_pos']:.2f} label {gate['label_auroc']:.2f} "
                      f"range {gate['range_share_max']:.3f} scale {gate['scale_ratio_neg']:.2f}/"
                      f"{gate['scale_ratio_pos']:.2f} fit {fit_s:.0f}s sample {sample_s:.0f}s | "
                      + "; ".join(gate["gate_failures"]), flush=True)


if __name__ == "__main__":
    main()
