"""Cohorts, loaders, splits, imputation and scaling (see :mod:`tardiff.data.registry`)."""

from tardiff.data.cohort import Cohort
from tardiff.data.prepare import FeatureScaler, PreparedCohort, forward_fill, impute, prepare
from tardiff.data.registry import (
    DATASETS, DataAvailability, data_availability, data_status, expected_files, get_spec, load_cohort,
    resolve_data_dir,
)
from tardiff.data.splits import Split, stratified_split

__all__ = [
    "Cohort", "DATASETS", "DataAvailability", "FeatureScaler", "PreparedCohort", "Split", "data_availability",
    "data_status", "expected_files", "forward_fill", "get_spec", "impute", "load_cohort", "prepare",
    "resolve_data_dir", "stratified_split",
]
