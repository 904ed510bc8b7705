"""The ``tardiff`` command: datasets, data cards, experiment runs, the book and benchmarks.

User errors (unknown dataset, missing or malformed data, bad parameter) end with a one-line
message on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pandas as pd

from tardiff.errors import TardiffError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="dataset name (see `tardiff datasets`)")
    p.add_argument("--data-dir", default=None, help="folder with the raw files (default $TARDIFF_DATA_DIR/<dataset> or data/<dataset>)")
    p.add_argument("--task", default=None, help="prediction task (default: the dataset's first task)")


def cmd_datasets(args: argparse.Namespace) -> int:
    from tardiff.data import DATASETS, data_status

    rows = []
    for name, spec in DATASETS.items():
        present, where = data_status(name)
        rows.append({
            "dataset": name, "tasks": ",".join(spec.tasks), "present": present, "where": where,
            "title": spec.title, "license": spec.license, "how_to_get": spec.how_to_get,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "present" if r["present"] else "absent"
        print(f"{r['dataset']:<14} {state:<8} tasks: {r['tasks']:<22} {r['title']}")
        print(f"{'':<14} {'':<8} data: {r['where']} | license: {r['license']}")
        if not r["present"]:
            print(f"{'':<14} {'':<8} get it: {r['how_to_get']}")
    return 0


def data_summary(cohort, seed: int = 0) -> dict:
    """The JSON summary `tardiff data --json` prints (a DESIGN.md contract)."""
    from tardiff.data import stratified_split

    split = stratified_split(cohort.y, random_state=seed)
    return {
        "dataset": cohort.dataset, "task": cohort.task, "n": int(cohort.shape[0]), "shape": list(cohort.shape),
        "features": list(cohort.features), "positive_rate": round(cohort.positive_rate, 6),
        "splits": split.sizes(), "step_minutes": cohort.step_minutes, "info": cohort.info,
    }


def dataset_card(cohort) -> pd.DataFrame:
    """Per-feature missingness and observed value ranges, in clinical units."""
    flat = cohort.X.reshape(-1, cohort.shape[2]).astype(np.float64)
    with np.errstate(all="ignore"):
        q = np.nanpercentile(flat, [0, 5, 50, 95, 100], axis=0)
    return pd.DataFrame({
        "unit": cohort.units, "missing": cohort.missing_rate().to_numpy(),
        "min": q[0], "p5": q[1], "median": q[2], "p95": q[3], "max": q[4],
    }, index=pd.Index(cohort.features, name="feature"))


def cmd_data(args: argparse.Namespace) -> int:
    from tardiff.data import load_cohort

    cohort = load_cohort(args.dataset, data_dir=args.data_dir, task=args.task)
    summary = data_summary(cohort)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    n, t, f = cohort.shape
    pos = int(cohort.y.sum())
    print(f"{cohort.dataset} / {cohort.task}: {n} stays, {t} steps of {cohort.step_minutes} min, {f} features")
    print(f"class balance: {pos} positive ({100 * pos / n:.1f}%), {n - pos} negative")
    print("splits (stratified, seed 0): " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    for key, value in cohort.info.items():
        print(f"{key}: {value}")
    with pd.option_context("display.width", 120, "display.max_rows", 200, "display.float_format", "{:.2f}".format):
        print(dataset_card(cohort).to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tardiff", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list datasets, whether their data is present, and how to get it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("data", help="summarise one dataset (a dataset card, or --json)")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print the machine-readable summary")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TardiffError as exc:
        print(f"tardiff: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tardiff: interrupted; cached work is kept and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
