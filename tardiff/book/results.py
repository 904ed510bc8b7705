"""The Results page: every experiment's summary gathered, tabulated and drawn.

:func:`collect_results` reads each executed experiment's ``summary.csv`` into one table and
:func:`collect_field` one field of each ``results.json`` (the paired ``comparisons``, the
quality-gate ``generators``); :func:`write_results_page` writes ``book/results_table.md`` (the
verdicts of :func:`tardiff.report.verdict_sentences`, taken from the paired comparisons, a
warning for every generator that fails the quality gate, the cross-dataset tables), the
reader's summary figure (:func:`tardiff.plots.plot_comparisons`) and the overview figure
(:func:`tardiff.plots.plot_results`) that ``book/results.md`` includes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.book.runs import NOTEBOOK_RUNS
from tardiff.data.cache import atomic_path
from tardiff.errors import DataError
from tardiff.report import comparisons_table, gate_failures, largest_alpha, mean_std, protocol_text, verdict_sentences

#: Columns every experiment's ``summary.csv`` must have (the contract with the experiment notebook).
SUMMARY_COLUMNS = (
    "dataset", "task", "method", "protocol", "evaluator",
    "auprc_mean", "auprc_std", "auroc_mean", "auroc_std", "minority_f1_mean", "minority_f1_std", "n_seeds",
)
#: Optional columns used when present: TSRTR's synthetic-to-real ratio, the test-set positive
#: rate (the AUPRC of a random ranking), for the simulated cohort the Bayes-optimal AUPRC, and
#: whether a generator passed the quality gate on every seed (empty for real data and controls).
OPTIONAL_SUMMARY_COLUMNS = ("alpha", "prevalence", "bayes_auprc", "passes_quality_gate")


def metric_columns() -> tuple[str, ...]:
    """The mean and sd columns of every registered record metric beyond the required ones (e.g. the
    Brier score, or a metric registered since): kept whenever a summary has them, never dropped silently."""
    from tardiff.evaluation.utility import RECORD_METRICS

    return tuple(c for name in RECORD_METRICS for c in (f"{name}_mean", f"{name}_std") if c not in SUMMARY_COLUMNS)


RESULTS_TABLE = "book/results_table.md"
RESULTS_FIGURE = "book/figures/results_overview.png"
COMPARISONS_FIGURE = "book/figures/results_comparisons.png"


def _read_reference(results_json: Path) -> dict:
    """Prevalence and Bayes AUPRC from an experiment's ``results.json`` (``reference`` entry), if any."""
    if not results_json.exists():
        return {}
    try:
        reference = json.loads(results_json.read_text()).get("reference", {})
    except (OSError, ValueError) as exc:
        raise DataError(f"{results_json} is not readable JSON ({exc}); re-run that experiment notebook") from exc
    out = {}
    if reference.get("prevalence") is not None:
        out["prevalence"] = float(reference["prevalence"])
    bayes = reference.get("bayes") or {}
    if bayes.get("auprc") is not None:
        out["bayes_auprc"] = float(bayes["auprc"])
    return out


def collect_results(experiments_dir: str | os.PathLike) -> pd.DataFrame:
    """Concatenate every ``<experiments_dir>/<run>/summary.csv`` into one table.

    Parameters
    ----------
    experiments_dir : path
        The folder holding one sub-folder per experiment run (``book/experiments``).

    Returns
    -------
    pandas.DataFrame
        ``run`` (the sub-folder's name), ``title`` (the page title the run was built with,
        from ``book_run.json``, else the run's title), the :data:`SUMMARY_COLUMNS`, and those of
        :data:`OPTIONAL_SUMMARY_COLUMNS` that any run provides, ordered by the book's run
        order and then by method. A summary's ``n`` column is read as ``n_seeds``; the
        prevalence and the Bayes AUPRC come from the summary's own columns or, failing
        that, from the ``reference`` entry of ``results.json`` beside it.

    Raises
    ------
    DataError
        If a summary lacks a required column.

    Examples
    --------
    >>> collect_results("no/such/folder").empty
    True
    """
    experiments_dir = Path(experiments_dir)
    frames = []
    for path in sorted(experiments_dir.glob("*/summary.csv")):
        frame = pd.read_csv(path)
        if "n_seeds" not in frame.columns and "n" in frame.columns:
            frame = frame.rename(columns={"n": "n_seeds"})
        missing = [c for c in SUMMARY_COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; re-run that experiment notebook")
        for key, value in _read_reference(path.with_name("results.json")).items():
            if key not in frame.columns:
                frame[key] = value
        frame.insert(0, "title", _recorded_title(path.parent))
        frame.insert(0, "run", path.parent.name)
        frames.append(frame)
    columns = ["run", "title", *SUMMARY_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    df = pd.concat(frames, ignore_index=True)
    run_rank = {r.name: i for i, r in enumerate(NOTEBOOK_RUNS)}
    df["_run"] = df["run"].map(run_rank).fillna(len(run_rank))
    df["_method"] = df["method"].map(registry.order)
    df["_protocol"] = df["protocol"].map(registry.protocol_order)
    sort = ["_run", "run", "task", "evaluator", "_protocol", "protocol"] + (["alpha"] if "alpha" in df else [])
    df = df.sort_values(sort + ["_method", "method"], kind="stable")
    extra = [c for c in (*metric_columns(), *OPTIONAL_SUMMARY_COLUMNS) if c in df.columns]
    return df[columns + extra].reset_index(drop=True)


def collect_field(experiments_dir: str | os.PathLike, field: str) -> pd.DataFrame:
    """One list field of every ``<experiments_dir>/<run>/results.json``, as one table.

    Parameters
    ----------
    experiments_dir : path
        The folder holding one sub-folder per experiment run (``book/experiments``).
    field : str
        A list of rows in ``results.json``: ``comparisons``, ``generators`` or ``sweep``.

    Returns
    -------
    pandas.DataFrame
        ``run`` and ``title`` (as :func:`collect_results` gives them), then the rows' own
        columns, in the book's run order. Runs whose ``results.json`` lacks the field (older
        runs) contribute nothing; empty when none has it.

    Examples
    --------
    >>> collect_field("no/such/folder", "comparisons").empty
    True
    """
    experiments_dir = Path(experiments_dir)
    run_rank = {r.name: i for i, r in enumerate(NOTEBOOK_RUNS)}
    frames = []
    paths = sorted(experiments_dir.glob("*/results.json"),
                   key=lambda p: (run_rank.get(p.parent.name, len(run_rank)), p.parent.name))
    for path in paths:
        try:
            rows = json.loads(path.read_text()).get(field) or []
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not readable JSON ({exc}); re-run that experiment notebook") from exc
        if rows:
            frame = pd.DataFrame(rows)
            frame.insert(0, "title", _recorded_title(path.parent))
            frame.insert(0, "run", path.parent.name)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "title"])


def run_origins(experiments_dir: str | os.PathLike) -> pd.DataFrame:
    """Where each experiment's numbers come from: its scale, its device, and whether it is a stored run.

    Read from ``<run>/results.json`` (``config.scale``, ``device``) and, for a run rendered from
    the repository's stored results, ``<run>/provenance.json`` (the device's name, the commit
    and the date of the run; see :mod:`tardiff.book.stored`).

    Returns
    -------
    pandas.DataFrame
        One row per run with a ``results.json``: ``run``, ``scale``, ``device``, ``stored``
        (bool), ``commit``, ``run_date``.

    Examples
    --------
    >>> run_origins("no/such/folder").empty
    True
    """
    rows = []
    for path in sorted(Path(experiments_dir).glob("*/results.json")):
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
            prov_path = path.with_name("provenance.json")
            prov = json.loads(prov_path.read_text(encoding="utf-8")) if prov_path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise DataError(f"{path.parent} holds unreadable JSON ({exc}); re-run that experiment notebook") from exc
        device = prov.get("device_name") or results.get("device") or "unknown"
        rows.append({"run": path.parent.name, "scale": prov.get("scale") or results.get("config", {}).get("scale"),
                     "device": device, "stored": bool(prov), "commit": (prov.get("git_commit") or "")[:10] or None,
                     "run_date": (prov.get("run_date") or "")[:10] or None})
    return pd.DataFrame(rows, columns=["run", "scale", "device", "stored", "commit", "run_date"])


def _origin_text(origin) -> str:
    """``paper, NVIDIA H200 (stored run, 2026-01-02, commit abc123)`` or ``cpu, cpu (this build)``."""
    where = f"{origin['device']}"
    if origin["stored"]:
        details = ", ".join(x for x in (origin["run_date"], f"commit `{origin['commit']}`" if origin["commit"] else None)
                            if x)
        return f"{where} (stored run{', ' + details if details else ''})"
    return f"{where} (this build)"


def _recorded_title(run_dir: Path) -> str:
    """The title ``build_book`` recorded for a run's folder, else the run's own title, else the folder name."""
    record = run_dir / "book_run.json"
    if record.exists():
        try:
            title = json.loads(record.read_text()).get("title")
        except (OSError, ValueError):
            title = None
        if title:
            return str(title)
    return next((r.title for r in NOTEBOOK_RUNS if r.name == run_dir.name), run_dir.name)


def _titles(df: pd.DataFrame) -> dict:
    """run -> the title to show (the ``title`` column when present)."""
    if "title" in df:
        return dict(zip(df["run"], df["title"]))
    return {run: next((r.title for r in NOTEBOOK_RUNS if r.name == run), run) for run in df["run"]}


def _pipe_table(header: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines



def _fails_gate(row) -> bool:
    """Whether a summary row's generator failed the quality gate (``passes_quality_gate`` False)."""
    return str(row.get("passes_quality_gate", "")).strip().lower() == "false"


def _metric_table(df: pd.DataFrame, metric: str, higher_is_better: bool = True) -> list[str]:
    """One row per dataset, evaluator and protocol; one column per method; the real-only TRTR score as reference
    (bold: the best mean of a row)."""
    df = largest_alpha(df.copy())
    if "alpha" not in df:
        df["alpha"] = np.nan
    titles = _titles(df)
    is_ref = df["method"].isin(registry.method_names("reference")) & (df["protocol"] == "trtr")
    reference = {(r.run, r.task, r.evaluator): (r[f"{metric}_mean"], r[f"{metric}_std"]) for _, r in df[is_ref].iterrows()}
    body = df[~is_ref]
    methods = sorted(dict.fromkeys(body["method"]), key=lambda m: (registry.order(m), m))
    header = ["Dataset", "Evaluator", "Protocol", "Real only (TRTR)", *[registry.label(m) for m in methods]]
    rows = []
    for (run, task, evaluator, protocol, alpha), part in body.groupby(
            ["run", "task", "evaluator", "protocol", "alpha"], sort=False, dropna=False):
        by_method = part.drop_duplicates("method").set_index("method")
        ref = reference.get((run, task, evaluator), (np.nan, np.nan))
        values = [ref] + [
            (by_method.at[m, f"{metric}_mean"], by_method.at[m, f"{metric}_std"]) if m in by_method.index
            else (np.nan, np.nan)
            for m in methods
        ]
        fails = [False] + [m in by_method.index and _fails_gate(by_method.loc[m]) for m in methods]
        means = [v[0] for v in values if pd.notna(v[0])]
        best = (max(means) if higher_is_better else min(means)) if len(means) > 1 else None
        cells = [(f"**{mean_std(*v)}**" if best is not None and v[0] == best else mean_std(*v)) + (" †" if f else "")
                 for v, f in zip(values, fails)]
        rows.append([titles[run], str(evaluator), protocol_text(protocol, alpha), *cells])
    if not rows:  # only real-only results: show them on their own
        rows = [[titles[run], str(ev), "TRTR", mean_std(*ref)] for (run, _task, ev), ref in reference.items()]
    return _pipe_table(header, rows)




def _gate_warning(generators: pd.DataFrame, titles: dict) -> list[str]:
    """A MyST warning naming, per dataset, each generator that fails the quality gate (nothing when all pass)."""
    failures = gate_failures(generators)
    if not failures:
        return []
    lines = [":::{warning} Generators that fail the quality gate", ""]
    for (run, method), reasons in sorted(failures.items(), key=lambda kv: (list(titles).index(kv[0][0])
                                                                           if kv[0][0] in titles else len(titles),
                                                                           registry.order(kv[0][1]))):
        lines.append(f"- **{titles.get(run, run)}**, {registry.label(method)}: {'; '.join(reasons)}")
    lines += ["", "Their scores stay in the tables (marked †) and in the comparisons, but they are no evidence about "
              "the method: the samples are off the scale of real stays or easily told apart from them. The "
              "chapter of each dataset shows the gate's measurements.", ":::", ""]
    return lines


def _comparisons_section(comparisons: pd.DataFrame) -> list[str]:
    """The reader's summary figure of the paired differences and, in a dropdown, their table."""
    if comparisons.empty:
        return [":::{note}", "No experiment in this build recorded replicated comparisons (their `results.json` "
                "predates them): the verdicts above compare means and standard deviations over seeds instead. "
                "Re-run the experiments to get them.", ":::", ""]
    evaluator = comparisons["evaluator"].iloc[0]
    table = comparisons_table(comparisons, evaluator=evaluator)
    header = list(table.columns)
    return [
        "### Replicated paired differences",
        "",
        f"```{{figure}} {Path(COMPARISONS_FIGURE).relative_to('book').as_posix()}",
        ":name: fig-results-comparisons",
        ":alt: Forest plot of AUPRC differences with 95% intervals: each method against real data alone, and "
        "TarDiff against each baseline, per dataset",
        ":width: 100%",
        "",
        f"Paired AUPRC difference ({evaluator} evaluator): the mean over replicates of the difference within each "
        "replicate (its own split, seeds and choices), with the 95% t-interval over replicates. Left: each "
        "generator against real data alone; right: each TarDiff variant against the unguided model and each "
        "baseline under the same protocol. The calls in the table are Holm-adjusted over each dataset's family of "
        "comparisons, fixed in advance. TSRTR at α = 1.",
        "```",
        "",
        "````{dropdown} Every paired comparison",
        "```{container} tardiff-results",
        *_pipe_table(header, table.astype(str).values.tolist()),
        "```",
        "````",
        "",
    ]


def results_markdown(df: pd.DataFrame, comparisons: pd.DataFrame | None = None,
                     generators: pd.DataFrame | None = None, origins: pd.DataFrame | None = None) -> str:
    """The MyST text of ``book/results_table.md``: verdicts, gate warnings, the figures and the cross-dataset tables.

    ``comparisons`` and ``generators`` are :func:`collect_field` of ``results.json``'s fields of
    those names; without comparisons the verdicts fall back on the summary's means and a note
    says so. ``origins`` (:func:`run_origins`) adds the scale and the device of each dataset's
    numbers to the table of datasets.

    Examples
    --------
    >>> "No experiment" in results_markdown(collect_results("no/such/folder"))
    True
    """
    if df.empty:
        return (
            ":::{note}\n"
            "No experiment has produced results in this build yet: no "
            "`book/experiments/<dataset>/summary.csv` was found. The table and figure appear here once "
            "the experiment notebooks have run (`tardiff book`, or `make book`).\n"
            ":::\n"
        )
    comparisons = pd.DataFrame() if comparisons is None else comparisons
    generators = pd.DataFrame() if generators is None else generators
    titles = _titles(df)
    from_comparisons = not comparisons.empty
    lines = [
        "### At a glance",
        "",
        ("Each TarDiff variant against the unguided model and each baseline, under each protocol of the family "
         "fixed in advance: the mean paired AUPRC difference over replicates with its 95% t-interval, and the call "
         "after Holm's adjustment over the family:"
         if from_comparisons else
         "Test AUPRC, each method at its best protocol (mean ± standard deviation over seeds):"),
        "",
        *[f"- {line}" for line in verdict_sentences(df.assign(title=df["run"].map(titles)), comparisons=comparisons,
                                                    generators=generators)],
        "",
        *_gate_warning(generators, titles),
        *_comparisons_section(comparisons),
        "### Every method and protocol",
        "",
        f"```{{figure}} {Path(RESULTS_FIGURE).relative_to('book').as_posix()}",
        ":name: fig-results-overview",
        ":alt: Test AUPRC of each method on each dataset, with error bars, the prevalence and the Bayes optimum",
        ":width: 100%",
        "",
        "Test AUPRC of each method (mean ± standard deviation over seeds; one row of panels per dataset, one "
        "column per evaluator, one bar colour per protocol; TSRTR at its largest synthetic-to-real ratio α). "
        "The dashed line is the test-set prevalence, the AUPRC of a random ranking; the dotted red line, where "
        "shown, is the Bayes-optimal AUPRC of the simulated cohort.",
        "```",
        "",
        "### The datasets",
        "",
    ]
    per_run = df.groupby("run", sort=False)
    origin = {} if origins is None or origins.empty else {r["run"]: r for _, r in origins.iterrows()}
    cohort_rows = []
    for run, part in per_run:
        first = part.iloc[0]
        prevalence = first["prevalence"] if "prevalence" in part else np.nan
        bayes = first["bayes_auprc"] if "bayes_auprc" in part else np.nan
        seeds = part["n_seeds"].dropna()
        row = [
            titles[run], str(first["task"]), "–" if pd.isna(prevalence) else f"{prevalence:.3f}",
            "–" if pd.isna(bayes) else f"{bayes:.3f}", str(int(seeds.max())) if len(seeds) else "–",
        ]
        if origin:
            o = origin.get(run)
            row += ["–", "–"] if o is None else [f"`{o['scale']}`", _origin_text(o)]
        cohort_rows.append(row)
    header = ["Dataset", "Task", "Test prevalence", "Bayes-optimal AUPRC", "Seeds"]
    lines += _pipe_table(header + (["Scale", "Computed on"] if origin else []), cohort_rows)
    lines += [
        "",
        "The test prevalence is the AUPRC of a random ranking; the Bayes-optimal AUPRC (known only for the "
        "simulated cohort) is the best any model can reach on average."
        + (" *Scale* and *Computed on* say where each dataset's numbers come from: executed when this copy of the "
           "book was built, or a stored run (kept in the repository under `results/`, with its provenance) that "
           "the build rendered without re-running it." if origin else ""),
        "",
        "### AUPRC",
        "",
        "```{container} tardiff-results",
    ]
    lines += _metric_table(df, "auprc")
    lines += [
        "```",
        "",
        "Mean ± standard deviation over seeds on the real test split. *Real only (TRTR)* is the evaluator "
        "trained on the real training split alone. Bold marks the highest mean in a row; a difference "
        "smaller than the standard deviations is not evidence that one method is better (the paired "
        "comparisons above are the test). TSRTR is shown at its largest synthetic-to-real ratio; each experiment "
        "chapter shows every ratio. † marks a generator that fails the quality gate.",
    ]
    from tardiff.evaluation.utility import RECORD_METRICS

    for metric in RECORD_METRICS.values():  # every registered metric, AUPRC (above) aside
        if metric.name == "auprc" or f"{metric.name}_mean" not in df:
            continue
        title = metric.label[0].upper() + metric.label[1:] + ("" if metric.higher_is_better else " (lower is better)")
        lines += ["", f"````{{dropdown}} {title}", "```{container} tardiff-results"]
        lines += _metric_table(df, metric.name, metric.higher_is_better)
        lines += ["```", "````"]
    return "\n".join(lines) + "\n"



def write_results_figure(results: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Draw :func:`tardiff.plots.plot_results` of ``results`` to a PNG at ``path``, atomically."""
    from tardiff.plots import plot_results

    path = Path(path)
    with atomic_path(path) as tmp:
        plot_results(results).savefig(tmp, format="png", dpi=110)
    return path


def write_comparisons_figure(comparisons: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Draw :func:`tardiff.plots.plot_comparisons` of ``comparisons`` to a PNG at ``path``, atomically."""
    from tardiff.plots import plot_comparisons

    path = Path(path)
    with atomic_path(path) as tmp:
        plot_comparisons(comparisons).savefig(tmp, format="png", dpi=110)
    return path


def write_results_page(root: str | os.PathLike = ".") -> pd.DataFrame:
    """Write ``book/results_table.md`` and its figures (when there are results); return the summary table."""
    root = Path(root)
    experiments = root / "book" / "experiments"
    df = collect_results(experiments)
    comparisons = collect_field(experiments, "comparisons") if not df.empty else pd.DataFrame()
    generators = collect_field(experiments, "generators") if not df.empty else pd.DataFrame()
    for figure, draw, data in ((root / RESULTS_FIGURE, write_results_figure, df),
                               (root / COMPARISONS_FIGURE, write_comparisons_figure, comparisons)):
        if data.empty:
            if figure.exists():
                figure.unlink()  # never show a figure from an earlier build next to "no results"
        else:
            draw(data, figure)
    origins = run_origins(experiments) if not df.empty else None
    with atomic_path(root / RESULTS_TABLE) as tmp:
        tmp.write_text(results_markdown(df, comparisons, generators, origins), encoding="utf-8")
    return df
