"""Downstream classifiers: the guidance GRU, a second architecture, and a GBM on summaries.

Three kinds of model map a multivariate series ``x`` of shape (T, F) to the probability of
the positive class:

* :class:`TimeSeriesClassifier` with ``arch="gru"``: the guidance classifier of the TarDiff
  public code (a 2-layer bidirectional GRU, hidden 256, dropout 0.2). Its recurrence is
  written from matrix products over the time steps (:class:`CellGRU`), so the network is
  twice differentiable on CPU *and* CUDA (cuDNN's fused RNN kernels have no double backward,
  which influence guidance needs). The fused kernel is used only where no second derivative
  is ever taken: training and prediction inside this package.
* ``arch="cnn"`` (dilated temporal convolutions, global mean+max pooling) and
  ``arch="transformer"`` (a small pre-norm encoder with explicit attention): different
  architectures, so that a method is never judged only by the model that guided it.
* :class:`SummaryGBMClassifier`: scikit-learn's HistGradientBoosting on per-feature
  summaries (mean, min, max, last, std, slope), the evaluator many clinical teams would use.

All are scikit-learn estimators (``random_state``, ``class_weight`` and, for the neural ones,
``device`` set in ``__init__``) with ``fit(X, y, X_val, y_val)`` and ``predict_proba(X) ->
(N, 2)``; they choose their checkpoint (or iteration count) by validation AUPRC, never accuracy.

The package has one module per job: :mod:`~tardiff.classifiers.config` (hyperparameters and
input checks), :mod:`~tardiff.classifiers.networks` (the networks and the loss),
:mod:`~tardiff.classifiers.influence` (the GRU's hand-derived influence gradient),
:mod:`~tardiff.classifiers.trainer` (training, save and load), :mod:`~tardiff.classifiers.gbm`
(the summary GBM) and :mod:`~tardiff.classifiers.factory` (:func:`make_classifier`). Every
public name is importable from ``tardiff.classifiers``.
"""

from tardiff.classifiers.config import ClassifierConfig
from tardiff.classifiers.factory import make_classifier
from tardiff.classifiers.gbm import SummaryGBMClassifier, summary_features
from tardiff.classifiers.influence import gru_influence_input_grad
from tardiff.classifiers.networks import CellGRU, CNNNet, GRUNet, TransformerNet, build_network, per_sample_loss
from tardiff.classifiers.trainer import TimeSeriesClassifier, load_classifier, save_classifier

__all__ = [
    "ClassifierConfig",
    "TimeSeriesClassifier",
    "SummaryGBMClassifier",
    "CellGRU",
    "GRUNet",
    "CNNNet",
    "TransformerNet",
    "build_network",
    "gru_influence_input_grad",
    "load_classifier",
    "make_classifier",
    "per_sample_loss",
    "save_classifier",
    "summary_features",
]
