"""What a reader should know about a cohort before any model: size, balance, missingness, ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff.data.cohort import Cohort
from tardiff.data.splits import stratified_split


def data_summary(cohort: Cohort, seed: int = 0) -> dict:
    """The JSON summary `tardiff data --json` prints (a DESIGN.md contract)."""
    split = stratified_split(cohort.y, random_state=seed)
    return {
        "dataset": cohort.dataset, "task": cohort.task, "n": int(cohort.shape[0]), "shape": list(cohort.shape),
        "features": list(cohort.features), "positive_rate": round(cohort.positive_rate, 6),
        "splits": split.sizes(), "step_minutes": cohort.step_minutes, "info": cohort.info,
    }


def dataset_card(cohort: Cohort) -> pd.DataFrame:
    """Per-feature missingness and observed value ranges, in clinical units."""
    flat = cohort.X.reshape(-1, cohort.shape[2]).astype(np.float64)
    with np.errstate(all="ignore"):
        q = np.nanpercentile(flat, [0, 5, 50, 95, 100], axis=0)
    return pd.DataFrame({
        "unit": cohort.units, "missing": cohort.missing_rate().to_numpy(),
        "min": q[0], "p5": q[1], "median": q[2], "p95": q[3], "max": q[4],
    }, index=pd.Index(cohort.features, name="feature"))
