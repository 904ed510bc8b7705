"""The quality gate as the chapters show it: the gate in words, each generator's failures, the table, the admonition.

Reads the ``generators`` entry of ``results.json`` (computed by :mod:`tardiff.evaluation.gates`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff import registry
from tardiff.report.results import _rows

__all__ = ["DEFAULT_GATE", "gate_admonition", "gate_failures", "gate_text", "gates_table"]

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
