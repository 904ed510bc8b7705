"""Tables and verdicts that the experiment chapters and the Results page show.

The summary functions take a summary table (one row per method x protocol x ratio x
evaluator, with ``<metric>_mean`` and ``<metric>_std`` over seeds: the output of
:func:`tardiff.experiment.summarise`, or of :func:`tardiff.book.collect_results` across
datasets), so a chapter and the Results page reach their conclusions with the same code:

* :func:`verdicts` makes the call on TarDiff against the best baseline (``beat``, ``did not
  beat`` or ``no evidence``): from the paired comparisons of ``results.json`` when given them
  (the interval of the AUPRC difference), else from the summary's means and spreads (runs
  that predate the comparisons); :func:`verdict_sentences` words it, naming any generator that
  fails the quality gate.
* :func:`paired_table` tests each method against real data alone, seed by seed.

The results functions take a run's ``results.json`` (:func:`load_results`) or its parts:
:func:`gates_table` and :func:`gate_admonition` (the quality gate of every generator),
:func:`comparisons_table` (the paired comparisons) and :func:`sweep_frame` (the guidance sweep).
A field that an older ``results.json`` lacks gives an empty table and a short note, never an error.

The experiment functions take a finished :class:`tardiff.experiment.Experiment` (its
synthetic sets are cached, so nothing is retrained) and return a DataFrame. Methods are
named, ordered and labelled by :mod:`tardiff.registry`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.errors import DataError
from tardiff.evaluation.fairness import age_bands, subgroup_metrics, worst_group_gap
from tardiff.evaluation.fidelity import (
    autocorrelation_difference,
    discriminative_score,
    marginal_wasserstein,
    predictive_score,
)
from tardiff.evaluation.privacy import (
    distance_to_closest_record,
    membership_inference_auroc,
    nn_adversarial_accuracy,
)
from tardiff.evaluation.utility import paired_test

# --------------------------------------------------------------------------- formatting


def mean_std(mean: float, std: float) -> str:
    """``"0.412 ± 0.013"``; the mean alone when there is no spread (one seed), "–" when there is no mean.

    Examples
    --------
    >>> mean_std(0.4123, 0.0131), mean_std(0.4, float("nan")), mean_std(float("nan"), 0.1)
    ('0.412 ± 0.013', '0.400', '–')
    """
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def protocol_text(protocol: str, alpha: float | None = None) -> str:
    """The protocol's label with its synthetic-to-real ratio, as the tables write it.

    Examples
    --------
    >>> protocol_text("tsrtr", 0.5), protocol_text("rebalance", float("nan"))
    ('TSRTR, α = 0.5', 'rebalance 1:1')
    """
    text = registry.protocol_label(protocol)
    return text if alpha is None or pd.isna(alpha) else f"{text}, α = {float(alpha):g}"


def largest_alpha(summary: pd.DataFrame) -> pd.DataFrame:
    """Keep, for protocols with a synthetic-to-real ratio (TSRTR), only the rows of the largest one.

    The ratio is chosen per dataset (the ``run`` column, when present) and protocol.

    Examples
    --------
    >>> df = pd.DataFrame({"protocol": ["trtr", "tsrtr", "tsrtr"], "alpha": [np.nan, 0.2, 1.0]})
    >>> largest_alpha(df)["alpha"].tolist()
    [nan, 1.0]
    """
    if "alpha" not in summary or not summary["alpha"].notna().any():
        return summary
    keys = [c for c in ("run", "protocol") if c in summary]
    largest = summary.groupby(keys, dropna=False)["alpha"].transform("max")
    return summary[summary["alpha"].isna() | (summary["alpha"] == largest)]


def _in_registry_order(df: pd.DataFrame, *then: str) -> pd.DataFrame:
    """Rows sorted by method (registry order), then protocol (registry order), then the ``then`` columns."""
    keys = pd.DataFrame({"_method": df["method"].map(registry.order),
                         "_protocol": df["protocol"].map(registry.protocol_order)}, index=df.index)
    order = pd.concat([keys, df[list(then)]], axis=1).sort_values(["_method", "_protocol", *then], kind="stable")
    return df.loc[order.index]


# --------------------------------------------------------------------------- results.json


def load_results(path: str | os.PathLike) -> dict:
    """A run's ``results.json``, given the file or the run's folder (``out_dir``).

    Examples
    --------
    >>> load_results("no/such/run")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    tardiff.errors.DataError: no/such/run/results.json does not exist; run the experiment first
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / "results.json"
    if not path.is_file():
        raise DataError(f"{path} does not exist; run the experiment first (tardiff run, or the experiment notebook)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc}); run the experiment again") from exc


def _rows(source, field: str) -> pd.DataFrame:
    """``source[field]`` as a DataFrame when ``source`` is a results dict; a DataFrame or list of rows as is."""
    if source is None:
        return pd.DataFrame()
    if isinstance(source, dict):
        source = source.get(field) or []
    return source.copy() if isinstance(source, pd.DataFrame) else pd.DataFrame(list(source))


def sweep_frame(results: dict) -> pd.DataFrame:
    """The guidance sweep of ``results.json`` (one row per norm x scale x seed x evaluator); empty when absent."""
    return _rows(results, "sweep")


def selection_text(results: dict) -> str:
    """What each replicate chose on its selection stays (calibrated TarDiff's scale, MCRAGE's weight), in words.

    Examples
    --------
    >>> sel = [{"method": "tardiff_cal", "seed": s, "parameter": "guidance_scale", "chosen": c, "candidates": [
    ...     {"value": 0.0, "test_auprc": 0.5}, {"value": 0.1, "test_auprc": 0.6}]} for s, c in ((0, 0.1), (1, 0.0))]
    >>> print(selection_text({"selections": sel}))  # doctest: +NORMALIZE_WHITESPACE
    TarDiff (calibrated): guidance_scale chosen in each of 2 replicates on its selection stays among 0, 0.1: 0 in
    1, 0.1 in 1 (no guidance in 1 of 2); the choice was also the test split's best candidate in 1 of 2.
    """
    selections = results.get("selections") or []
    if not selections:
        return ("No choice was made on selection stays in this run (calibrated TarDiff needs TarDiff and the sweep's "
                "unit scales; MCRAGE's weight needs MCRAGE).")
    from tardiff.experiment.sweep import selection_agreement

    lines = []
    for row in selection_agreement(selections):
        mine = [s for s in selections if s["method"] == row["method"]]
        values = [c["value"] for c in mine[0]["candidates"]]
        counts = ", ".join(f"{v:g} in {row['chosen'].count(v)}" for v in values if row["chosen"].count(v))
        n = row["replicates"]
        lines.append(f"{registry.label(row['method'])}: {mine[0]['parameter']} chosen in each of {n} replicates on its "
                     f"selection stays among {', '.join(f'{v:g}' for v in values)}: {counts} (no guidance in "
                     f"{row['chose_zero']} of {n}); the choice was also the test split's best candidate in "
                     f"{row['also_best_on_test']} of {n}.")
    return " ".join(lines)


# --------------------------------------------------------------------------- quality gates

#: The gate :func:`gate_admonition` states when ``results.json`` does not carry its own.
DEFAULT_GATE = {"scale_ratio": [0.8, 1.25], "discriminative_score_max": 0.45}


def gate_text(gate: dict | None = None) -> str:
    """The quality gate in words (the held-out, per-class gate, or the earlier one for older results).

    Examples
    --------
    >>> gate_text({"scale_ratio": [0.8, 1.25], "discriminative_score_max": 0.45})
    'scale ratio within [0.8, 1.25] for each class and discriminative score at most 0.45'
    >>> gate_text({"detection_margin": 0.1, "detection_null_sds": 3, "label_fraction": 0.5, "range_margin": 0.1,
    ...            "scale_ratio": [0.5, 2.0]})[:73]
    'per class, against held-out real stays: GRU and GBM detection AUROCs at m'
    """
    gate = gate or DEFAULT_GATE
    if "detection_margin" in gate:  # the gate of tardiff.evaluation.gates (held-out real stays, per class)
        low, high = gate.get("scale_ratio", [0.5, 2.0])
        return (f"per class, against held-out real stays: GRU and GBM detection AUROCs at most the real-vs-real "
                f"baseline (at least 0.5) + max({gate['detection_margin']:g}, {gate.get('detection_null_sds', 3):g} "
                f"null sd); label-consistency AUROC - 0.5 at least {gate.get('label_fraction', 0.5):g} x the "
                f"real one's; the worst feature's share outside the training range at most "
                f"{gate.get('range_margin', 0.1):g} above held-out real's; scale ratio within [{low:g}, {high:g}]")
    low, high = gate.get("scale_ratio", DEFAULT_GATE["scale_ratio"])
    disc = gate.get("discriminative_score_max", DEFAULT_GATE["discriminative_score_max"])
    return f"scale ratio within [{low:g}, {high:g}] for each class and discriminative score at most {disc:g}"


def gate_failures(generators) -> dict[str, list[str]]:
    """Method -> why its generators fail the quality gate, one text per failing seed; passing methods absent.

    ``generators`` is ``results.json`` (its ``generators``) or those rows; with a ``run`` column
    the keys are ``(run, method)``.

    Examples
    --------
    >>> gate_failures([{"method": "tardiff", "seed": 0, "passes_quality_gate": False,
    ...                 "gate_failures": ["scale ratio (positives) 3.1 outside [0.8, 1.25]"]},
    ...                {"method": "smote", "seed": 0, "passes_quality_gate": True, "gate_failures": []}])
    {'tardiff': ['seed 0: scale ratio (positives) 3.1 outside [0.8, 1.25]']}
    """
    df = _rows(generators, "generators")
    if df.empty or "passes_quality_gate" not in df:
        return {}
    out: dict = {}
    for _, row in df[~df["passes_quality_gate"].astype(bool)].iterrows():
        key = (row["run"], row["method"]) if "run" in df else row["method"]
        reasons = row.get("gate_failures")
        reasons = list(reasons) if isinstance(reasons, (list, tuple)) and len(reasons) else ["fails the quality gate"]
        out.setdefault(key, []).append(f"seed {row['seed']}: " + "; ".join(reasons))
    return out


def _mean(part: pd.DataFrame, column: str) -> float:
    return float(pd.to_numeric(part[column], errors="coerce").mean()) if column in part else np.nan


def _with_base(value: float, base: float) -> str:
    """``"0.62 (0.51)"``: a mean AUROC with its reference in brackets; "-" where the class had no rows."""
    if not np.isfinite(value):
        return "-"
    return f"{value:.2f} ({base:.2f})" if np.isfinite(base) else f"{value:.2f}"


def gates_table(results) -> pd.DataFrame:
    """The quality gate of every generator: one row per method, means over seeds, and whether it passes.

    Parameters
    ----------
    results : dict or DataFrame or list of dict
        ``results.json`` (its ``generators`` entry) or those rows: ``method``, ``seed`` and the keys
        of :func:`tardiff.evaluation.gates.quality_gate` (``gru_auroc_neg``, ``gru_baseline_neg``,
        ..., ``label_auroc``, ``label_auroc_real``, ``range_share_max``, ``scale_ratio_neg``,
        ``scale_ratio_pos``, ``membership_auroc``, ``dcr_ratio``, ``passes_quality_gate``,
        ``gate_failures``), plus ``noise_error`` (None for non-diffusion methods). Rows of the
        earlier gate (``discriminative_score``, no detection AUROCs) give the earlier table.

    Returns
    -------
    DataFrame
        In registry order, labelled by the registry: ``method``, ``seeds``; per class the GRU and GBM
        detection AUROCs against held-out real stays as text, ``"0.62 (0.51)"``, the real-vs-real
        baseline in brackets (0.5 = indistinguishable; "-" for a class the generator does not
        make); ``label AUROC`` (synthetic positives over negatives, the held-out real AUROC in
        brackets); ``range share (worst)`` (the worst feature's share of values outside the
        training range); ``scale ratio (negatives)``, ``scale ratio (positives)`` (mean row L2 norm
        over held-out real's, 1 is ideal); ``membership AUROC``, ``DCR ratio``, ``noise error``
        (means over seeds) and ``passes`` (``"yes"``, or ``"no: "`` and the failing seeds' reasons).
        Earlier rows give ``discriminative`` in place of the detection, label and range columns.
        Empty when ``results`` has no generators.

    Examples
    --------
    >>> rows = [{"method": "tardiff", "seed": s, "gru_auroc_neg": 0.55, "gru_baseline_neg": 0.52,
    ...          "gbm_auroc_neg": 0.6, "gbm_baseline_neg": 0.5, "gru_auroc_pos": a, "gru_baseline_pos": 0.5,
    ...          "gbm_auroc_pos": a, "gbm_baseline_pos": 0.54, "label_auroc": 0.7, "label_auroc_real": 0.8,
    ...          "range_share_max": 0.01, "scale_ratio_neg": 1.0, "scale_ratio_pos": 1.1, "membership_auroc": 0.5,
    ...          "dcr_ratio": 1.0, "noise_error": 0.02, "passes_quality_gate": a < 0.7,
    ...          "gate_failures": [] if a < 0.7 else ["positive rows: a GRU tells them apart with AUROC 0.95"]}
    ...         for s, a in ((0, 0.55), (1, 0.95))]
    >>> table = gates_table({"generators": rows})
    >>> table[["method", "GRU AUROC (positives)", "label AUROC"]].values.tolist()
    [['TarDiff', '0.75 (0.50)', '0.70 (0.80)']]
    >>> table["passes"].item()
    'no: seed 1: positive rows: a GRU tells them apart with AUROC 0.95'
    """
    df = _rows(results, "generators")
    new = df.empty or "gru_auroc_pos" in df or "gbm_auroc_pos" in df
    if new:
        columns = ["method", "seeds", "GRU AUROC (negatives)", "GBM AUROC (negatives)", "GRU AUROC (positives)",
                   "GBM AUROC (positives)", "label AUROC", "range share (worst)", "scale ratio (negatives)",
                   "scale ratio (positives)", "membership AUROC", "DCR ratio", "noise error", "passes"]
    else:  # results.json of the earlier gate (training rows, discriminative score)
        columns = ["method", "seeds", "scale ratio (negatives)", "scale ratio (positives)", "discriminative",
                   "membership AUROC", "DCR ratio", "noise error", "passes"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    failures = gate_failures(df)
    rows = []
    for method in sorted(df["method"].unique(), key=lambda m: (registry.order(m), m)):
        part = df[df["method"] == method]
        reasons = failures.get(method, [])
        head = [registry.label(method), int(part["seed"].nunique()) if "seed" in part else len(part)]
        tail = [_mean(part, "membership_auroc"), _mean(part, "dcr_ratio"), _mean(part, "noise_error"),
                "yes" if not reasons else "no: " + "; ".join(reasons)]
        if new:
            middle = [_with_base(_mean(part, f"{d}_auroc_{c}"), _mean(part, f"{d}_baseline_{c}"))
                      for c in ("neg", "pos") for d in ("gru", "gbm")]
            middle += [_with_base(_mean(part, "label_auroc"), _mean(part, "label_auroc_real")),
                       _mean(part, "range_share_max"), _mean(part, "scale_ratio_neg"), _mean(part, "scale_ratio_pos")]
        else:
            middle = [_mean(part, "scale_ratio_neg"), _mean(part, "scale_ratio_pos"), _mean(part, "discriminative_score")]
        rows.append(head + middle + tail)
    return pd.DataFrame(rows, columns=columns)


def gate_admonition(results: dict) -> str:
    """A MyST admonition for a chapter: a warning naming each generator that fails the gate, or a note.

    The experiment notebook displays it with ``IPython.display.Markdown`` (its cell renders
    markdown as MyST). A ``results.json`` without quality gates gets a note saying so.

    Examples
    --------
    >>> print(gate_admonition({"records": []}))
    :::{note}
    This run's `results.json` has no quality-gate entries (it predates them): re-run the experiment to see them.
    :::
    """
    if not results.get("generators"):
        return (":::{note}\nThis run's `results.json` has no quality-gate entries (it predates them): "
                "re-run the experiment to see them.\n:::")
    gate = results.get("quality_gate") or DEFAULT_GATE
    failures = gate_failures(results)
    if not failures:
        return f":::{{note}}\nEvery generator passes the quality gate ({gate_text(gate)}).\n:::"
    lines = [":::{warning} Generators that fail the quality gate", ""]
    lines += [f"- **{registry.label(m)}**: {'; '.join(reasons)}"
              for m, reasons in sorted(failures.items(), key=lambda kv: registry.order(kv[0]))]
    lines += ["", f"The gate asks for {gate_text(gate)}. The utility numbers of a failing generator are shown "
              "but are no evidence about its method: its samples are told apart from real stays easily, carry "
              "the wrong labels, or are not on the scale of real stays.", ":::"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- paired comparisons


def ci_text(delta: float, low: float, high: float) -> str:
    """``"+0.012 [-0.010, +0.034]"``: a difference and its 95% interval.

    Examples
    --------
    >>> ci_text(0.0123, -0.01, 0.034)
    '+0.012 [-0.010, +0.034]'
    """
    if pd.isna(delta):
        return "–"
    return f"{delta:+.3f} [{low:+.3f}, {high:+.3f}]"


def p_text(p: float) -> str:
    """``"0.031"``, ``"< 0.001"``, or "–".

    Examples
    --------
    >>> p_text(0.0312), p_text(0.0002)
    ('0.031', '< 0.001')
    """
    if pd.isna(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _sorted_comparisons(df: pd.DataFrame) -> pd.DataFrame:
    """Comparisons in reading order: dataset (as given), baseline, method, protocol (registry orders), ratio."""
    keys = pd.DataFrame({"_baseline": df["baseline"].map(registry.order), "_method": df["method"].map(registry.order),
                         "_protocol": df["protocol"].map(registry.protocol_order),
                         "_alpha": pd.to_numeric(df["alpha"], errors="coerce").fillna(-1.0)}, index=df.index)
    if "run" in df:
        keys.insert(0, "_run", df["run"].map({r: i for i, r in enumerate(dict.fromkeys(df["run"]))}))
    return df.loc[keys.sort_values(list(keys.columns), kind="stable").index]


def _num(value, fmt: str = "{:.3f}") -> str:
    return "–" if value is None or pd.isna(value) else fmt.format(value)


def comparisons_table(results, evaluator: str | None = None) -> pd.DataFrame:
    """The family of comparisons as readers read them: the AUPRC difference over replicates, its interval,
    the Holm-adjusted decision and what the replicates could detect.

    Parameters
    ----------
    results : dict or DataFrame or list of dict
        ``results.json`` (its ``comparisons``) or those rows
        (:func:`tardiff.evaluation.replicates.replicated_comparisons`), optionally with ``title``
        (the dataset; across datasets on the Results page).
    evaluator : str, optional
        Keep one evaluator's comparisons (the column is then left out).

    Returns
    -------
    DataFrame
        ``dataset`` (when given), ``method``, ``against``, ``protocol``, ``evaluator``,
        ``ΔAUPRC [95% CI]`` (mean of the per-replicate paired differences, t-interval),
        ``p (Holm)``, ``decision``, ``replicates``, ``sd``, ``detectable`` (the smallest
        difference detected with 80% power) and ``test noise`` (one replicate's stay-bootstrap
        sd). Against real data alone first, then against the unguided model and each baseline.

    Examples
    --------
    >>> rows = [{"method": "tardiff", "baseline": "smote", "protocol": "tsrtr", "alpha": 1.0, "evaluator": "cnn",
    ...          "delta_auprc": 0.02, "ci_low": 0.005, "ci_high": 0.04, "p_value": 0.01, "p_holm": 0.03,
    ...          "decision": "higher", "n_replicates": 10, "replicate_sd": 0.02, "mde_auprc": 0.02,
    ...          "test_noise_sd": 0.01}]
    >>> comparisons_table({"comparisons": rows}, "cnn").iloc[0, :6].tolist()
    ['TarDiff', 'SMOTE', 'TSRTR, α = 1', '+0.020 [+0.005, +0.040]', '0.030', 'higher']
    """
    df = _rows(results, "comparisons")
    columns = ["method", "against", "protocol", "evaluator", "ΔAUPRC [95% CI]", "p (Holm)", "decision", "replicates",
               "sd", "detectable", "test noise"]
    if df.empty or "n_replicates" not in df:  # results from before replicated verdicts: nothing to show here
        return pd.DataFrame(columns=[c for c in columns if evaluator is None or c != "evaluator"])
    if evaluator is not None:
        df = df[df["evaluator"] == evaluator]
    df = _sorted_comparisons(df)
    out = pd.DataFrame({
        "method": df["method"].map(registry.label), "against": df["baseline"].map(registry.label),
        "protocol": [protocol_text(p, a) for p, a in zip(df["protocol"], df["alpha"])],
        "evaluator": df["evaluator"],
        "ΔAUPRC [95% CI]": [ci_text(d, lo, hi) if lo is not None and not pd.isna(lo) else f"{d:+.3f} (one replicate)"
                            for d, lo, hi in zip(df["delta_auprc"], df["ci_low"], df["ci_high"])],
        "p (Holm)": df["p_holm"].map(lambda p: "–" if p is None or pd.isna(p) else p_text(p)),
        "decision": df["decision"], "replicates": [int(n) for n in df["n_replicates"]],
        "sd": df["replicate_sd"].map(_num), "detectable": df["mde_auprc"].map(_num),
        "test noise": df.get("test_noise_sd", pd.Series([None] * len(df), index=df.index)).map(_num),
    })
    if "title" in df:
        out.insert(0, "dataset", df["title"])
    if evaluator is not None:
        out = out.drop(columns="evaluator")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- verdicts

#: The call :func:`verdicts` makes from the summary (runs without comparisons), and its words.
CALLS = {
    "beat": "TarDiff **beat** it",
    "did not beat": "TarDiff **did not beat** it",
    "no evidence": "The gap is within one standard deviation over seeds: no evidence either way",
}

#: The call :func:`verdicts` makes from a paired comparison, and its words (``{method}``: the TarDiff variant).
COMPARISON_CALLS = {
    "beat": "{method} **beat** it",
    "did not beat": "{method} **did not beat** it",
    "no evidence": "The 95% interval includes 0: no evidence either way",
}


def _call(low: float, high: float) -> str:
    """``beat`` when the interval lies above 0, ``did not beat`` below it, else ``no evidence``."""
    if low > 0:
        return "beat"
    if high < 0:
        return "did not beat"
    return "no evidence"


def _gate_note(failures: dict, method: str, run=None) -> str:
    """Why ``method`` (of ``run`` on the Results page) fails the quality gate; "" when it passes."""
    return "; ".join(failures.get(method if run is None else (run, method), []))


def _passing_or_all(frame: pd.DataFrame, column: str, failures: dict, run=None) -> pd.DataFrame:
    """The rows whose generator (named in ``column``) passes the quality gate; all rows when none does.

    A baseline that fails the gate is no fair yardstick, so the best baseline is sought among
    those that pass, and among all only when none does."""
    passing = frame[[not _gate_note(failures, method, run) for method in frame[column]]]
    return passing if not passing.empty else frame


def _setting(row) -> tuple:
    """(protocol, ratio) of a comparison row, the ratio None when the protocol has none."""
    return row["protocol"], None if pd.isna(row["alpha"]) else round(float(row["alpha"]), 9)


#: A replicated comparison's Holm decision as the verdict's call.
_DECISION_CALL = {"higher": "beat", "lower": "did not beat", "no evidence": "no evidence"}


def _comparison_verdicts(comparisons: pd.DataFrame, failures: dict) -> list[dict]:
    """One verdict per dataset, evaluator, TarDiff variant, baseline and protocol of the declared family.

    Every baseline of the family is its own verdict: none is picked as "the best" on the test
    split. The call is the Holm-adjusted decision of the replicated comparison."""
    keys = [c for c in ("run", "dataset", "task") if c in comparisons] + ["evaluator"]
    rows = []
    if "kind" not in comparisons:  # comparisons from before replicated verdicts carry no decision
        return rows
    for group, part in comparisons.groupby(keys, sort=False, dropna=False):
        row_keys = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        run = row_keys.get("run")
        against_real = {(r["method"], *_setting(r)): r for _, r in part[part["kind"] == "vs_real"].iterrows()}
        mine = _sorted_comparisons(part[part["kind"].isin(["tardiff_vs_unguided", "tardiff_vs_baseline"])])
        for _, c in mine.iterrows():
            ref = against_real.get((c["method"], *_setting(c)))
            rows.append({
                **row_keys, **({"title": part["title"].iloc[0]} if "title" in part else {}),
                "source": "comparisons", "tardiff": c["method"], "baseline": c["baseline"],
                "protocol": c["protocol"], "alpha": c["alpha"], "gap": float(c["delta_auprc"]),
                "ci_low": c["ci_low"], "ci_high": c["ci_high"], "p_value": c["p_value"], "p_holm": c["p_holm"],
                "n_replicates": int(c["n_replicates"]), "replicate_sd": c["replicate_sd"], "mde": c["mde_auprc"],
                "family_size": int(len(part)),
                "reference_gap": np.nan if ref is None else float(ref["delta_auprc"]),
                "reference_decision": None if ref is None else ref["decision"],
                "call": _DECISION_CALL[c["decision"]],
                "tardiff_gate": _gate_note(failures, c["method"], run),
                "baseline_gate": _gate_note(failures, c["baseline"], run),
            })
    return rows


def _summary_verdicts(summary: pd.DataFrame, metric: str, failures: dict) -> list[dict]:
    """One verdict per dataset and evaluator from the summary's means and spreads (runs without comparisons)."""
    keys = [c for c in ("run", "dataset", "task") if c in summary] + ["evaluator"]
    mean, std = f"{metric}_mean", f"{metric}_std"
    roles = {"tardiff": registry.method_names("tardiff"), "baseline": registry.method_names("baseline"),
             "reference": registry.method_names("reference")}
    rows = []
    for group, part in summary.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        if "title" in part:
            row["title"] = part["title"].iloc[0]
        row["source"] = "summary"
        for side, names in roles.items():
            candidates = part[part["method"].isin(names) & part[mean].notna()]
            if side == "baseline":  # as with comparisons: a gate-passing baseline when there is one
                candidates = _passing_or_all(candidates, "method", failures, row.get("run"))
            best = None if candidates.empty else candidates.loc[candidates[mean].idxmax()]
            row[side] = None if best is None else best["method"]
            row[f"{side}_protocol"] = None if best is None else best["protocol"]
            row[f"{side}_alpha"] = np.nan if best is None else best.get("alpha", np.nan)
            row[f"{side}_mean"] = np.nan if best is None else float(best[mean])
            row[f"{side}_std"] = np.nan if best is None else float(best[std])
        if row["tardiff"] is None or row["baseline"] is None:
            continue
        row["gap"] = row["tardiff_mean"] - row["baseline_mean"]
        row["spread"] = float(np.nanmax([row["tardiff_std"], row["baseline_std"], 0.0]))
        if abs(row["gap"]) < row["spread"]:
            row["call"] = "no evidence"
        else:
            row["call"] = "beat" if row["gap"] > 0 else "did not beat"
        for side in ("tardiff", "baseline"):
            note = _gate_note(failures, row[side], row.get("run"))
            if not note and "passes_quality_gate" in part:  # summary.csv's own flag
                flags = part[(part["method"] == row[side])]["passes_quality_gate"]
                if (flags.astype(str).str.lower() == "false").any():
                    note = "fails the quality gate"
            row[f"{side}_gate"] = note
        rows.append(row)
    return rows


def verdicts(summary: pd.DataFrame | None = None, *, metric: str = "auprc", comparisons=None,
             generators=None) -> pd.DataFrame:
    """TarDiff against its baselines, per dataset and evaluator, and the call.

    This is the one place that decides whether TarDiff beat its baselines: the experiment
    chapters and the Results page both read it.

    Parameters
    ----------
    summary : DataFrame, optional
        One row per method x protocol (x ratio) x evaluator: ``method``, ``protocol``,
        ``evaluator``, ``<metric>_mean``, ``<metric>_std`` and optionally ``alpha``,
        ``title``, ``passes_quality_gate`` and the dataset keys ``run``, ``dataset``, ``task``.
        Used for the datasets and evaluators that ``comparisons`` does not cover.
    metric : str
        The metric of the summary-based call (``auprc``, ``auroc``, ``minority_f1``).
    comparisons : DataFrame or list of dict, optional
        Paired comparisons (``results.json``'s ``comparisons``; with ``run`` and ``title``
        across datasets). When present they make the call.
    generators : DataFrame or list of dict, optional
        ``results.json``'s ``generators`` (with ``run`` across datasets): a TarDiff variant or
        baseline that fails the quality gate is named in the verdict.

    Returns
    -------
    DataFrame
        From replicated comparisons (``source`` ``"comparisons"``), one row per dataset,
        evaluator, TarDiff variant, baseline (the unguided model among them) and protocol of
        the family fixed in advance (:func:`tardiff.registry.comparison_family`); no baseline
        or protocol is picked on the test split. ``gap`` is the mean per-replicate paired AUPRC
        difference with its t-interval ``ci_low``, ``ci_high``, ``p_value``, ``p_holm``,
        ``n_replicates``, ``replicate_sd``, ``mde`` (detectable with 80% power), TarDiff's own
        difference from real data alone (``reference_gap``) and ``call``: the Holm decision,
        ``"beat"`` (higher), ``"did not beat"`` (lower) or ``"no evidence"``.

        From the summary (``source`` ``"summary"``), one row per dataset and evaluator: the best
        TarDiff row against the best baseline row (highest mean over protocols and ratios), with
        ``<side>_protocol``, ``_alpha``, ``_mean``, ``_std`` for ``tardiff``, ``baseline`` and
        ``reference``, ``gap``, ``spread`` (the larger standard deviation) and ``call``:
        ``"no evidence"`` when ``|gap| < spread``.

        Both carry ``tardiff_gate`` and ``baseline_gate``: why that generator fails the quality
        gate ("" when it passes or nothing is known). The best baseline is sought among those
        that pass the gate, among all only when none passes. Controls are never baselines.

    Examples
    --------
    >>> rows = [("real", "trtr", 0.40, 0.02), ("tardiff", "tstr", 0.45, 0.01), ("smote", "rebalance", 0.50, 0.02)]
    >>> df = pd.DataFrame([{"evaluator": "cnn", "method": m, "protocol": p, "auprc_mean": a, "auprc_std": s}
    ...                    for m, p, a, s in rows])
    >>> verdicts(df)[["tardiff", "baseline", "gap", "call"]].round(2).values.tolist()
    [['tardiff', 'smote', -0.05, 'did not beat']]
    >>> comparisons = [{"kind": "tardiff_vs_baseline", "method": "tardiff", "baseline": "smote",
    ...                 "protocol": "rebalance", "alpha": None, "evaluator": "cnn", "delta_auprc": 0.03, "ci_low": 0.01,
    ...                 "ci_high": 0.05, "p_value": 0.002, "p_holm": 0.004, "decision": "higher", "n_replicates": 10,
    ...                 "replicate_sd": 0.02, "mde_auprc": 0.02}]
    >>> verdicts(df, comparisons=comparisons)[["tardiff", "baseline", "gap", "call"]].values.tolist()
    [['tardiff', 'smote', 0.03, 'beat']]
    """
    failures = gate_failures(generators)
    comparisons = _rows(comparisons, "comparisons")
    rows = _comparison_verdicts(comparisons, failures) if not comparisons.empty else []
    covered = {(r.get("run"), r["evaluator"]) for r in rows}
    if summary is not None and not summary.empty:
        rows += [r for r in _summary_verdicts(summary, metric, failures)
                 if (r.get("run"), r["evaluator"]) not in covered]
    if not rows:
        return pd.DataFrame(columns=["evaluator", "tardiff", "baseline", "gap", "call", "source"])
    out = pd.DataFrame(rows)
    if "run" in out:  # the Results page: datasets in the order the summary and comparisons give them
        order = list(dict.fromkeys([*(summary["run"] if summary is not None and "run" in summary else []),
                                    *(comparisons["run"] if "run" in comparisons else [])]))
        out = out.iloc[np.argsort([order.index(r) if r in order else len(order) for r in out["run"]],
                                  kind="stable")].reset_index(drop=True)
    return out


def _gate_sentence(v: dict) -> str:
    """`` Caution: ...`` naming the compared generators that fail the quality gate ("" when none does)."""
    parts = [f"{registry.label(v[side])} fails the quality gate ({v[f'{side}_gate']})"
             for side in ("tardiff", "baseline") if v.get(f"{side}_gate")]
    if not parts:
        return ""
    return " Caution: " + "; ".join(parts) + ", so this comparison says little about the method."


def verdict_sentences(summary: pd.DataFrame | None = None, *, metric: str = "auprc", comparisons=None,
                      generators=None) -> list[str]:
    """:func:`verdicts` in words, one markdown sentence per verdict.

    A sentence starts with the dataset's title when there is a ``title`` column (the Results
    page), else with the evaluator alone (a chapter, which is about one dataset). A compared
    generator that fails the quality gate is named in its sentence.

    Examples
    --------
    >>> rows = [("real", "trtr", 0.40, 0.02), ("tardiff", "tstr", 0.45, 0.01), ("smote", "rebalance", 0.50, 0.02)]
    >>> df = pd.DataFrame([{"evaluator": "cnn", "method": m, "protocol": p, "auprc_mean": a, "auprc_std": s}
    ...                    for m, p, a, s in rows])
    >>> text = verdict_sentences(df)[0]
    >>> text.startswith("**cnn evaluator**: TarDiff 0.450 ± 0.010 (TSTR) against the best baseline, SMOTE 0.500")
    True
    >>> text.endswith("real data alone 0.400 ± 0.020. TarDiff **did not beat** it.")
    True
    >>> comparisons = [{"kind": "tardiff_vs_baseline", "method": "tardiff", "baseline": "smote",
    ...                 "protocol": "rebalance", "alpha": None, "evaluator": "cnn", "delta_auprc": 0.03, "ci_low": 0.01,
    ...                 "ci_high": 0.05, "p_value": 0.002, "p_holm": 0.004, "decision": "higher", "n_replicates": 10,
    ...                 "replicate_sd": 0.02, "mde_auprc": 0.02}]
    >>> print(verdict_sentences(comparisons=comparisons)[0])  # doctest: +NORMALIZE_WHITESPACE
    **cnn evaluator**: TarDiff against SMOTE, paired AUPRC difference over 10 replicates (95% t-interval; Holm over
    the 1 comparisons fixed in advance): rebalance 1:1 +0.030 [+0.010, +0.050], p (Holm) 0.004: **higher**.
    """
    table = verdicts(summary, metric=metric, comparisons=comparisons, generators=generators)
    out = []
    done = set()
    for v in table.to_dict("records"):
        lead = f"**{v['title']}** ({v['evaluator']} evaluator)" if v.get("title") else f"**{v['evaluator']} evaluator**"
        if v["source"] == "comparisons":
            group = (v.get("run"), v["evaluator"], v["tardiff"], v["baseline"])
            if group in done:
                continue
            done.add(group)
            same = [w for w in table.to_dict("records") if w["source"] == "comparisons" and
                    (w.get("run"), w["evaluator"], w["tardiff"], w["baseline"]) == group]
            parts = [f"{protocol_text(w['protocol'], w['alpha'])} {_replicated_text(w)}" for w in same]
            n = int(v["n_replicates"])  # a float once the table also holds summary rows
            text = (f"{lead}: {registry.label(v['tardiff'])} against {registry.label(v['baseline'])}, paired AUPRC "
                    f"difference over {n} replicate{'s' if n != 1 else ''} (95% t-interval; Holm over the "
                    f"{int(v['family_size'])} comparisons fixed in advance): " + "; ".join(parts) + ".")
            gate_note = _gate_sentence(v)
        else:
            reference = "" if v["reference"] is None else \
                f"; real data alone {mean_std(v['reference_mean'], v['reference_std'])}"
            text = (f"{lead}: {registry.label(v['tardiff'])} {mean_std(v['tardiff_mean'], v['tardiff_std'])} "
                    f"({protocol_text(v['tardiff_protocol'], v['tardiff_alpha'])}) against the best baseline, "
                    f"{registry.label(v['baseline'])} {mean_std(v['baseline_mean'], v['baseline_std'])} "
                    f"({protocol_text(v['baseline_protocol'], v['baseline_alpha'])}){reference}. {CALLS[v['call']]}.")
            gate_note = _gate_sentence(v)
        out.append(text + gate_note)
    return out


def _replicated_text(v: dict) -> str:
    """One protocol's part of a replicated verdict: the difference, its interval, Holm's p and the call."""
    if v["ci_low"] is None or pd.isna(v["ci_low"]):
        return f"{v['gap']:+.3f} (one replicate: no interval)"
    call = {"beat": "**higher**", "did not beat": "**lower**"}.get(v["call"])
    if call is None:
        call = "no evidence either way" + ("" if v.get("mde") is None or pd.isna(v.get("mde")) else
                                           f" (80% power to detect ±{v['mde']:.3f})")
    return f"{ci_text(v['gap'], v['ci_low'], v['ci_high'])}, p (Holm) {p_text(v['p_holm'])}: {call}"


# --------------------------------------------------------------------------- paired tests


def paired_table(records, evaluator: str, *, metric: str = "auprc") -> pd.DataFrame:
    """Each method's per-seed ``metric`` against real data alone's, paired by seed (one evaluator).

    Parameters
    ----------
    records : list of dict or DataFrame
        The run's evaluation records (``Experiment.run()`` or ``results.json``'s ``records``):
        ``method``, ``protocol``, ``alpha``, ``evaluator``, ``seed`` and ``metric``.
    evaluator : str
        The evaluator whose scores are compared.
    metric : str
        The metric compared.

    Returns
    -------
    DataFrame
        One row per method x protocol x ratio other than the reference, in registry order:
        ``method`` (its label), ``protocol``, ``alpha``, ``<METRIC> minus real`` (mean
        paired difference), ``p (paired t)`` (:func:`tardiff.evaluation.utility.paired_test`)
        and ``seeds`` (the seeds both have).

    Examples
    --------
    >>> recs = [{"method": m, "protocol": p, "alpha": None, "evaluator": "cnn", "seed": s, "auprc": a + 0.01 * s}
    ...         for m, p, a in (("real", "trtr", 0.40), ("smote", "rebalance", 0.45)) for s in range(3)]
    >>> paired_table(recs, "cnn")[["method", "AUPRC minus real", "seeds"]].round(3).values.tolist()
    [['SMOTE', 0.05, 3]]
    """
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "test_predictions"} for r in records]) \
        if not isinstance(records, pd.DataFrame) else records.copy()
    runs = runs[runs["evaluator"] == evaluator]
    if "alpha" not in runs:
        runs["alpha"] = np.nan
    reference = registry.method_names("reference")
    real = runs[runs["method"].isin(reference)].drop_duplicates("seed").set_index("seed")[metric]
    rows = []
    for (method, protocol, alpha), part in runs[~runs["method"].isin(reference)].groupby(
            ["method", "protocol", "alpha"], dropna=False):
        part = part.set_index("seed")[metric]
        common = part.index.intersection(real.index)
        test = paired_test(part.loc[common].to_numpy(), real.loc[common].to_numpy())
        rows.append({"method": method, "protocol": protocol, "alpha": alpha,
                     f"{metric.upper()} minus real": test["mean_diff"], "p (paired t)": test["p_value"],
                     "seeds": len(common)})
    columns = ["method", "protocol", "alpha", f"{metric.upper()} minus real", "p (paired t)", "seeds"]
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        return table
    table = _in_registry_order(table, "alpha").reset_index(drop=True)
    table["method"] = table["method"].map(registry.label)
    table["protocol"] = table["protocol"].map(registry.protocol_label)
    return table


# --------------------------------------------------------------------------- experiment tables


def synthetic_sample(experiment, method: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The method's synthetic rows for ``seed``: its pool, or its balance set when it has no pool."""
    sets = experiment.synthetic_sets(method, seed)
    if sets.pool_X is not None:
        return sets.pool_X, sets.pool_y
    return sets.balance_X, sets.balance_y


def fidelity_privacy_table(experiment, seed: int = 0, *, epochs: int = 10, max_samples: int = 1000) -> pd.DataFrame:
    """Fidelity and privacy of each generative method's synthetic rows against the real ones.

    Fidelity (Yoon et al. 2019): discriminative score |acc - 0.5| of a post-hoc GRU (0 is
    best), predictive score (next-step MAE on real test stays of a GRU trained on the
    synthetic rows; the first row, "real", trains on the real training rows), mean
    per-feature Wasserstein distance of marginals and autocorrelation difference. Privacy:
    DCR ratio (synthetic-to-train over test-to-train, below 1 means closer to training
    stays than unseen ones are), nearest-neighbour adversarial accuracy (0.5 ideal) and a
    distance-based membership-inference AUROC (0.5 ideal).
    """
    p = experiment.data(seed)
    device = experiment.device
    rows = [{"method": "real", "predictive_mae": predictive_score(
        p.X_train, p.X_test, seed=seed, epochs=epochs, max_samples=max_samples, device=device)}]
    for method in experiment.config.methods:
        if not registry.method(method).synthetic:  # controls and the reference create no rows to assess
            continue
        X_s, _ = synthetic_sample(experiment, method, seed)
        rows.append({
            "method": method,
            "discriminative": discriminative_score(p.X_train, X_s, seed=seed, epochs=epochs, max_samples=max_samples,
                                                   device=device),
            "predictive_mae": predictive_score(X_s, p.X_test, seed=seed, epochs=epochs, max_samples=max_samples,
                                               device=device),
            "wasserstein": float(marginal_wasserstein(p.X_train, X_s).mean()),
            "autocorr_diff": autocorrelation_difference(p.X_train, X_s),
            "dcr_ratio": distance_to_closest_record(X_s, p.X_train, p.X_test, max_samples=max_samples,
                                                    random_state=seed)["ratio_median"],
            "nn_adversarial_acc": nn_adversarial_accuracy(p.X_train, X_s, max_samples=max_samples, random_state=seed),
            "membership_auroc": membership_inference_auroc(X_s, p.X_train, p.X_test, max_samples=max_samples,
                                                           random_state=seed),
        })
    return pd.DataFrame(rows).set_index("method")


def fairness_table(experiment, records: list[dict], *, evaluator: str = "cnn", seed: int = 0,
                   min_size: int = 20) -> pd.DataFrame:
    """AUROC/AUPRC per sex and age band of each method's rebalanced (or real-only) model.

    Uses the test predictions kept in the run's records; returns one row per method x
    subgroup and a ``worst_gap`` column (largest AUROC difference between subgroups of the
    same attribute).
    """
    p = experiment.data(seed)
    static = p.cohort.static.iloc[p.split.test].reset_index(drop=True)
    groups = {}
    if "sex" in static and static["sex"].notna().any():
        groups["sex"] = static["sex"].to_numpy()
    if "age" in static and static["age"].notna().any():
        groups["age band"] = age_bands(static["age"].to_numpy())
    if not groups:
        return pd.DataFrame()
    tables = []
    for r in records:
        # a generator's model is the one trained on the rebalanced set; real-data methods have only TRTR
        protocols = registry.method(r["method"]).protocols
        wanted = "rebalance" if "rebalance" in protocols else "trtr"
        if r["evaluator"] != evaluator or r["seed"] != seed or r["protocol"] != wanted or "test_predictions" not in r:
            continue
        table = subgroup_metrics(p.y_test, np.asarray(r["test_predictions"]), groups, min_size=min_size)
        table.insert(0, "method", r["method"])
        table["worst_gap_auroc"] = worst_group_gap(table, "auroc")
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def utility_table(summary: pd.DataFrame, reference: dict, *, evaluator: str = "cnn") -> pd.DataFrame:
    """One evaluator's summary in reading order (registry labels, mean ± sd strings), plus reference rows.

    ``reference`` is :meth:`tardiff.experiment.Experiment.reference_metrics`: the test
    prevalence (the AUPRC of a random ranking) and, on simulated data, the Bayes ceiling.

    Examples
    --------
    >>> summary = pd.DataFrame({"method": ["tardiff", "real"], "protocol": ["tstr", "trtr"], "alpha": np.nan,
    ...     "evaluator": "cnn", "n": 3, "auprc_mean": [0.5, 0.4], "auprc_std": 0.01, "auroc_mean": 0.7,
    ...     "auroc_std": 0.02, "minority_f1_mean": 0.3, "minority_f1_std": np.nan})
    >>> utility_table(summary, {"prevalence": 0.1})["method"].tolist()
    ['real only', 'TarDiff', 'prevalence (random ranking)']
    """
    df = _in_registry_order(summary[summary["evaluator"] == evaluator], "alpha")
    seeds = df["n_seeds"] if "n_seeds" in df else df["n"]
    out = pd.DataFrame({
        "method": df["method"].map(registry.label), "protocol": df["protocol"].map(registry.protocol_label),
        "alpha": ["" if pd.isna(a) else f"{a:.1f}" for a in df["alpha"]],
        **{title: [mean_std(m, s) for m, s in zip(df[f"{metric}_mean"], df[f"{metric}_std"])]
           for metric, title in (("auprc", "AUPRC"), ("auroc", "AUROC"), ("minority_f1", "minority F1"))},
        "seeds": seeds,
    })
    extra = [{"method": "prevalence (random ranking)", "protocol": "", "alpha": "",
              "AUPRC": f"{reference['prevalence']:.3f}", "AUROC": "0.500", "minority F1": "", "seeds": ""}]
    if "bayes" in reference:
        b = reference["bayes"]
        extra.append({"method": "Bayes ceiling (true posterior)", "protocol": "", "alpha": "",
                      "AUPRC": f"{b['auprc']:.3f}", "AUROC": f"{b['auroc']:.3f}",
                      "minority F1": "", "seeds": ""})
    return pd.concat([out, pd.DataFrame(extra)], ignore_index=True)
