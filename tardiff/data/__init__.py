"""Cohorts, loaders, splits, imputation and scaling (see :mod:`tardiff.data.registry`)."""

from tardiff.data.cohort import Cohort
from tardiff.data.prepare import FeatureScaler, PreparedCohort, forward_fill, impute, prepare
from tardiff.data.registry import DATASETS, data_status, get_spec, load_cohort, resolve_data_dir
from tardiff.data.splits import Split, stratified_split

__all__ = [
    "Cohort", "DATASETS", "FeatureScaler", "PreparedCohort", "Split", "data_status", "forward_fill",
    "get_spec", "impute", "load_cohort", "prepare", "resolve_data_dir", "stratified_split",
]
