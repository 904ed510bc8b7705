#!/usr/bin/env python3
"""The quality gate on known-bad generators, at cpu scale (simulator and PhysioNet 2012).

    OMP_NUM_THREADS=1 benchmarks/gate-known-bad.py [--datasets simulated,physionet2012] [--scale cpu]

For each dataset (splits of ``benchmarks/gate_data.py``: 800 training, 800 held-out and 800
more real stays), it feeds the gate (``tardiff.evaluation.gates.quality_gate``) six synthetic
sets and records each one's per-class detector AUROCs, label consistency, range share, scale
ratio, the verdict and the seconds it took:

* ``heldout_real``: 800 real stays neither fitted on nor held out (must pass);
* ``white_noise``: N(0, 1) in the standardised space;
* ``gaussian_marginals``: per class, independent Gaussians with each feature's real mean and sd;
* ``time_shuffled``: real stays with their time axis permuted (one permutation per stay);
* ``labels_swapped``: real stays with labels 0 and 1 exchanged;
* ``scaled_1.5``: real stays times 1.5 (in the standardised space).

Writes ``benchmarks/results/gate-known-bad.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from gate_data import splits  # noqa: E402

from tardiff.evaluation.gates import gate_description, quality_gate, real_baseline  # noqa: E402


def known_bad_sets(train, pool, seed: int = 0) -> dict:
    """The six synthetic sets (X, y) built from the training stays' statistics and the pool stays."""
    (X_train, y_train), (X, y) = train, pool
    rng = np.random.default_rng(seed)
    gauss = np.empty_like(X)
    for label in (0, 1):
        rows = X_train[y_train == label]
        mean, sd = rows.mean(axis=(0, 1)), rows.std(axis=(0, 1))
        gauss[y == label] = rng.normal(mean, sd, size=((y == label).sum(),) + X.shape[1:])
    shuffled = np.stack([row[rng.permutation(X.shape[1])] for row in X])
    return {
        "heldout_real": (X, y),
        "white_noise": (rng.normal(size=X.shape).astype(np.float32), y),
        "gaussian_marginals": (gauss.astype(np.float32), y),
        "time_shuffled": (shuffled, y),
        "labels_swapped": (X, 1 - y),
        "scaled_1.5": (1.5 * X, y),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="simulated,physionet2012")
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "gate-known-bad.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    report = {"command": "OMP_NUM_THREADS=1 " + " ".join(["benchmarks/gate-known-bad.py"] + sys.argv[1:]),
              "scale": args.scale, "seed": args.seed, "torch_threads": 1, "machine": platform.processor() or platform.machine(),
              "quality_gate": gate_description(), "datasets": {}}
    for dataset in args.datasets.split(","):
        data = splits(dataset, seed=args.seed)
        (X_train, y_train), (X_held, y_held) = data["train"], data["heldout"]
        start = time.perf_counter()
        baseline = real_baseline(X_train, y_train, X_held, y_held, seed=args.seed, scale=args.scale)
        entry = {"shape": list(X_train.shape[1:]), "n_train": len(y_train), "n_heldout": len(y_held),
                 "heldout_positives": int(y_held.sum()), "baseline": baseline,
                 "baseline_s": round(time.perf_counter() - start, 2), "cases": {}}
        for case, (X, y) in known_bad_sets(data["train"], data["pool"], seed=args.seed).items():
            start = time.perf_counter()
            gate = quality_gate(X_train, y_train, X, y, X_held, y_held, baseline=baseline, seed=args.seed,
                                scale=args.scale, features=data["features"])
            gate["seconds"] = round(time.perf_counter() - start, 2)
            entry["cases"][case] = gate
            print(f"{dataset:14s} {case:20s} pass={gate['passes_quality_gate']!s:5s} "
                  f"gru {gate['gru_auroc_neg']:.2f}/{gate['gru_auroc_pos']:.2f} "
                  f"gbm {gate['gbm_auroc_neg']:.2f}/{gate['gbm_auroc_pos']:.2f} "
                  f"label {gate['label_auroc']:.2f} range {gate['range_share_max']:.3f} "
                  f"scale {gate['scale_ratio_neg']:.2f}/{gate['scale_ratio_pos']:.2f} {gate['seconds']:.1f}s",
                  flush=True)
        report["datasets"][dataset] = entry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
