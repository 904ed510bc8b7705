"""The ``tardiff`` command: datasets, data cards, experiment runs, the book and benchmarks.

User errors (unknown dataset, missing or malformed data, bad parameter) end with a one-line
message on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from tardiff.errors import ParameterError, TardiffError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    from tardiff.experiment.settings import add_run_options

    add_run_options(p, only=("dataset", "data_dir", "task", "sets"))  # as `tardiff run` declares them


def _loader_options(args: argparse.Namespace) -> dict:
    return {} if args.sets is None else {"sets": args.sets}


def cmd_datasets(args: argparse.Namespace) -> int:
    from tardiff.data import DATASETS
    from tardiff.data.registry import data_availability

    rows = []
    for name, spec in DATASETS.items():
        status = data_availability(name)
        rows.append({
            "dataset": name, "tasks": ",".join(spec.tasks), "present": status.present, "where": status.where,
            "detail": status.detail, "title": spec.title, "license": spec.license, "how_to_get": spec.how_to_get,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "present" if r["present"] else "absent"
        print(f"{r['dataset']:<14} {state:<8} tasks: {r['tasks']:<22} {r['title']}")
        print(f"{'':<14} {'':<8} data: {r['where']} | license: {r['license']}")
        if not r["present"]:
            if r["detail"]:
                print(f"{'':<14} {'':<8} found: {r['detail']}")
            print(f"{'':<14} {'':<8} get it: {r['how_to_get']}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from tardiff.data import load_cohort
    from tardiff.data.card import data_summary, dataset_card

    cohort = load_cohort(args.dataset, data_dir=args.data_dir, task=args.task,
                         progress=False if args.quiet else None, **_loader_options(args))
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


def cmd_run(args: argparse.Namespace) -> int:
    from tardiff.experiment import ExperimentConfig, executor

    from tardiff.experiment.settings import values_from_args

    config = ExperimentConfig.from_parameters(**values_from_args(args), replicates=args.replicates,
                                              progress=not args.quiet)
    executor.run(config, workers=args.workers, scheduler=args.scheduler)
    out = Path(config.out_dir)
    results = json.loads((out / "results.json").read_text())
    summary = pd.read_csv(out / "summary.csv")
    from tardiff.evaluation.utility import RECORD_METRICS

    columns = ["method", "protocol", "alpha", "evaluator", "n", "auprc_mean", "auprc_std",
               *(f"{m}_mean" for m in RECORD_METRICS if m != "auprc" and f"{m}_mean" in summary)]
    if "passes_quality_gate" in summary:  # a generator that fails its gate is flagged, never silently ranked
        summary["gate"] = summary["passes_quality_gate"].map({True: "pass", False: "FAIL"}).fillna("")
        columns.append("gate")
    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(summary[columns].to_string(index=False))
    for g in results.get("generators", []):  # per replicate and class: detection AUROC (baseline), label AUROC
        detect = "; ".join(f"{side} GRU {_num(g.get(f'gru_auroc_{side}'), '.2f')} ({_num(g.get(f'gru_baseline_{side}'), '.2f')}) "
                           f"GBM {_num(g.get(f'gbm_auroc_{side}'), '.2f')} ({_num(g.get(f'gbm_baseline_{side}'), '.2f')})"
                           for side in ("neg", "pos") if g.get(f"gbm_auroc_{side}") is not None)
        verdict = "pass" if g["passes_quality_gate"] else "FAILED: " + "; ".join(g["gate_failures"])
        print(f"quality gate {g['method']} replicate {g['seed']}: {detect}; label AUROC "
              f"{_num(g.get('label_auroc'), '.2f')} (real {_num(g.get('label_auroc_real'), '.2f')}): {verdict}")
    if results.get("selections"):
        from tardiff.report import selection_text

        print(selection_text(results))
    for c in results.get("comparisons", []):  # the family fixed in advance, Holm-adjusted
        if c.get("kind") in ("tardiff_vs_unguided", "tardiff_vs_baseline"):
            print(f"{c['method']} - {c['baseline']} ({c['protocol']}, {c['evaluator']}): delta AUPRC "
                  f"{_num(c['delta_auprc'], '+.3f')} [{_num(c['ci_low'], '+.3f')}, {_num(c['ci_high'], '+.3f')}] over "
                  f"{c['n_replicates']} replicate(s), Holm p = {_num(c['p_holm'], '.3f')}: {c['decision']}")
    ref = results["reference"]
    line = f"test split: {ref['n_test']} stays, prevalence (AUPRC of a random ranking) {ref['prevalence']:.3f}"
    if "bayes" in ref:
        line += f"; Bayes ceiling AUPRC {ref['bayes']['auprc']:.3f}, AUROC {ref['bayes']['auroc']:.3f}"
    print(line)
    print(f"wrote {config.out_dir}/results.json and {config.out_dir}/summary.csv")
    return 0


def _num(value, spec: str) -> str:
    """``value`` formatted with ``spec``; "n/a" for null (results.json writes NaN as null: strict JSON)."""
    return "n/a" if value is None else format(value, spec)


def cmd_book(args: argparse.Namespace) -> int:
    from tardiff.book import build_book

    if args.cache_dir is not None:  # the notebooks' kernels inherit it: every cache moves there
        if not args.cache_dir.strip():
            raise ParameterError("--cache-dir is empty; pass a folder or leave it out")
        os.environ["TARDIFF_CACHE_DIR"] = str(Path(args.cache_dir).resolve())
    if args.store is not None or args.store_as is not None:
        from tardiff.book import store_run

        if not args.store or not args.store_as:
            raise ParameterError("--store RUN_DIR and --as DEST go together, e.g. "
                                 "--store runs/physionet2012 --as results/paper/physionet2012")
        if args.data_dir is not None:  # the run's config names its data symbolically; this says where it is
            os.environ["TARDIFF_DATA_DIR"] = str(Path(args.data_dir).resolve())
        dest = store_run(args.store, args.store_as, experiment=not args.results_only,
                         stored_with=f"tardiff book --store {Path(args.store).name} --as {args.store_as}"
                                     + (" --results-only" if args.results_only else ""))
        print(f"stored {args.store} as {dest}; build the book from it with `tardiff book --results {dest.parent}`")
        return 0
    html = build_book(scale=args.scale, data_dir=args.data_dir, only=args.only, strict=args.strict,
                      progress=not args.quiet, warnings_as_errors=args.warnings_as_errors, jobs=args.jobs,
                      results=args.results, download=args.download)
    print(f"book built: open {html / 'book' / 'intro.html'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from tardiff.benchmark import run_speed_benchmark, write_result

    from tardiff.presets import resolve_device

    if args.repeats < 1:  # checked before any work; statistics of zero timings are undefined
        raise ParameterError(f"--repeats must be a whole number >= 1 (timed repetitions); got {args.repeats}")
    device = resolve_device(args.device).type
    config = args.config or ("paper" if device == "cuda" else "cpu")
    result = run_speed_benchmark(config, device=device, repeats=args.repeats)
    path = write_result(result, args.out)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{config} config on {device}: train step {result['train_step_ms']:.1f} ms; sampling "
              f"{result['unguided_s_per_sample'] * 1e3:.2f} ms/sample unguided, "
              f"{result['guided_s_per_sample'] * 1e3:.2f} ms/sample guided "
              f"(x{result['guided_over_unguided']:.2f}); G over {result['n_guidance']} stays "
              f"{result['guidance_vector_s']:.2f} s")
    print(f"wrote {path}", file=sys.stderr)
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
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_data)

    from tardiff.experiment.settings import add_run_options, comma_list
    from tardiff.presets import DEVICES, SCALES

    p = sub.add_parser("run", help="run one dataset's comparison and write results.json and summary.csv")
    add_run_options(p)  # every run setting, as ExperimentConfig declares it
    p.add_argument("--replicates", type=int, default=None, metavar="K",
                   help="K replicates, seeds 0..K-1 (instead of --seeds); the book's headline runs use 10")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run the task graph on a local Dask cluster of N worker processes (default: in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="submit the task graph to an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (its workers "
                        "must share --cache-dir and the data folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("book", help="execute the notebooks with papermill and build the book into _build/html")
    p.add_argument("--scale", choices=SCALES, default="cpu")
    p.add_argument("--data-dir", default=None,
                   help="folder with one sub-folder per dataset (default $TARDIFF_DATA_DIR, else data/)")
    p.add_argument("--only", type=comma_list(str), default=None, help="comma-separated runs to (re-)execute; others are kept")
    p.add_argument("--strict", action="store_true", help="fail when a source notebook is missing")
    p.add_argument("-W", "--warnings-as-errors", action="store_true", help="fail on any Sphinx warning")
    p.add_argument("--cache-dir", default=None,
                   help="every cache (parsed cohorts, trained models, synthetic sets) goes here; sets $TARDIFF_CACHE_DIR")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="notebooks executed at once (default: one per CPU core, at most 4; 1 at paper scale)")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="render each experiment chapter that has a stored run in DIR/<chapter> (e.g. results/paper) "
                        "from it, without data or training; the other chapters are executed")
    p.add_argument("--store", default=None, metavar="RUN_DIR",
                   help="instead of building: store the finished run in RUN_DIR (tardiff run --out) as --as DEST, "
                        "e.g. results/paper/physionet2012, for --results to render")
    p.add_argument("--as", dest="store_as", default=None, metavar="DEST", help="where --store writes the stored run")
    p.add_argument("--results-only", action="store_true",
                   help="with --store: keep results.json, summary.csv and provenance only (no data or cache needed; "
                        "the chapter then skips the data card, samples, fidelity and fairness with a note)")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="do not fetch missing open data (PhysioNet 2012, the MIMIC-III demo, the YAIB demo cohorts) "
                        "into the default data folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("bench", help="time training, unguided vs guided sampling and G; write JSON")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--config", choices=SCALES, default=None,
                   help="model sizes (default: paper on a GPU, cpu otherwise)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results", help="folder for the JSON result")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tardiff.allocator import keep_freed_memory

    keep_freed_memory()  # large CPU tensors without a page fault each (see tardiff.allocator)
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
