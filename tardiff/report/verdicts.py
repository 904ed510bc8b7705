"""The verdicts: whether TarDiff beat each baseline, per dataset and evaluator, and the sentences that say so.

:func:`verdicts` is the one place that makes the call (from the replicated paired comparisons
of ``results.json`` when there are any, else from the summary's means and spreads);
:func:`verdict_sentences` words it, naming any compared generator that fails the quality gate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.report.formatting import _sorted_comparisons, ci_text, mean_std, p_text, protocol_text
from tardiff.report.gates import gate_failures
from tardiff.report.results import _rows

__all__ = ["CALLS", "COMPARISON_CALLS", "verdict_sentences", "verdicts"]

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
    """Why ``method`` (of ``run`` on the Results page) fails the quality gate; "" when it passes.

    A generator failing in several replicates is counted and its first failing replicate's
    reasons shown: ten replicates' reasons in full made one verdict a page long, and the
    chapter's gate table has every replicate.

    Examples
    --------
    >>> _gate_note({"smote": ["seed 0: scale 3.1", "seed 1: scale 2.9"]}, "smote")
    'in 2 replicates, e.g. seed 0: scale 3.1'
    """
    notes = failures.get(method if run is None else (run, method), [])
    if len(notes) <= 1:
        return "".join(notes)
    return f"in {len(notes)} replicates, e.g. {notes[0]}"


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
