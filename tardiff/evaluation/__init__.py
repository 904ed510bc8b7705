"""Evaluation: the protocols' training sets, and utility, fidelity, privacy and fairness metrics.

Every metric takes plain numpy arrays (labels and probabilities, or sequences of shape
(N, T, F)) and returns floats, dicts or pandas objects, so the protocols
(:mod:`tardiff.evaluation.protocols`) and the experiment runner call them without any adapter.
"""

from tardiff.evaluation.comparisons import paired_bootstrap_delta, within_split_noise_sd
from tardiff.evaluation.replicates import holm, min_detectable_difference, replicated_comparisons, t_interval
from tardiff.evaluation.fairness import age_bands, subgroup_metrics, worst_group_gap
from tardiff.evaluation.fidelity import (
    autocorrelation_difference,
    discriminative_score,
    embed_2d,
    marginal_wasserstein,
    predictive_score,
)
from tardiff.evaluation.privacy import (
    distance_to_closest_record,
    membership_inference_auroc,
    nn_adversarial_accuracy,
)
from tardiff.evaluation.utility import (
    METRICS,
    bootstrap_ci,
    choose_threshold,
    paired_test,
    summarise_over_seeds,
    utility_metrics,
)

__all__ = [
    "METRICS",
    "age_bands",
    "autocorrelation_difference",
    "bootstrap_ci",
    "choose_threshold",
    "discriminative_score",
    "distance_to_closest_record",
    "embed_2d",
    "marginal_wasserstein",
    "membership_inference_auroc",
    "nn_adversarial_accuracy",
    "paired_bootstrap_delta",
    "within_split_noise_sd",
    "holm",
    "min_detectable_difference",
    "replicated_comparisons",
    "t_interval",
    "paired_test",
    "predictive_score",
    "subgroup_metrics",
    "summarise_over_seeds",
    "utility_metrics",
    "worst_group_gap",
]
