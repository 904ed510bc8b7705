"""The classifier factory: :func:`make_classifier` builds an unfitted classifier by name and scale."""

from __future__ import annotations

from dataclasses import fields
from typing import Literal, get_args

from tardiff.classifiers.config import Arch, ClassifierConfig
from tardiff.classifiers.gbm import SummaryGBMClassifier
from tardiff.classifiers.trainer import TimeSeriesClassifier
from tardiff.errors import ParameterError
from tardiff.presets import Scale, check_scale, sizes

__all__ = ["make_classifier"]


def make_classifier(name: Literal["gru", "cnn", "transformer", "gbm"], scale: Scale = "cpu", *,
                    random_state: int = 0, device="cpu", class_weight: bool = False, progress: bool = False,
                    **overrides):
    """Build an unfitted classifier by name at a data scale.

    Parameters
    ----------
    name : {"gru", "cnn", "transformer", "gbm"}
        Model family.
    scale : {"smoke", "cpu", "paper"}
        Size preset (:func:`tardiff.presets.sizes`; the GBM uses 30 / 300 / 500 boosting iterations).
    random_state : int
        Seed of initialisation, dropout, batch order (neural) or boosting (GBM).
    device : str
        Where a neural model trains (the GBM runs on the CPU).
    class_weight : bool
        Weight the positive class by ``n_neg / n_pos`` (neural) or ``"balanced"`` (GBM).
    progress : bool
        Neural models: a progress bar over epochs.
    **overrides
        Replace fields of the config (neural) or keyword arguments (GBM).

    Examples
    --------
    >>> make_classifier("gru", "smoke").config.hidden
    8
    >>> make_classifier("gbm", "smoke", class_weight=True).class_weight
    True
    """
    check_scale(scale)
    if name == "gbm":
        return SummaryGBMClassifier(random_state=random_state, class_weight=class_weight,
                                    **{**sizes("gbm", scale), **overrides})
    if name not in get_args(Arch):
        raise ParameterError(f"classifier name must be one of {get_args(Arch) + ('gbm',)}, got {name!r}")
    known = {f.name for f in fields(ClassifierConfig)}
    bad = set(overrides) - known
    if bad:
        raise ParameterError(f"unknown ClassifierConfig fields {sorted(bad)}; valid fields are {sorted(known)}")
    return TimeSeriesClassifier(ClassifierConfig.preset(scale, name, **overrides), class_weight=class_weight,
                                random_state=random_state, device=device, progress=progress)
