"""Reading a run's ``results.json``: the file, its parts as DataFrames, the sweep and the selections in words.

A field that an older ``results.json`` lacks gives an empty frame, never an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from tardiff import registry
from tardiff.errors import DataError

__all__ = ["load_results", "selection_text", "sweep_frame"]


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
