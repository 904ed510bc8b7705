"""imbalanced-learn style resamplers for (N, T, F) time series.

Every sampler: ``Sampler(**params).fit_resample(X, y) -> (X_res, y_res)`` with the real
rows first, unchanged, and the synthetic rows appended (class 0 first), and
``sample(n, label)`` after ``fit``. The number of rows per class follows ``strategy``
(``"balance"``, ``"augment"``, ``"replace"``; see :func:`generation_counts`).

========================== ==========================================================
:class:`SMOTESampler`      SMOTE on flattened rows (imbalanced-learn)
:class:`RandomOverSampler` duplication of real rows (control)
:class:`MCRAGESampler`     MCRAGE's conditional DDPM with an MLP denoiser
:class:`UnguidedDiffusionSampler` label-conditional 1-D UNet diffusion, no guidance
:class:`TarDiffSampler`    the same UNet with TarDiff's influence guidance
========================== ==========================================================
"""

from tardiff.samplers.base import STRATEGIES, BaseSampler, check_X_y, generation_counts
from tardiff.samplers.controls import RandomOverSampler
from tardiff.samplers.diffusion import TarDiffSampler, UnguidedDiffusionSampler
from tardiff.samplers.mcrage import MCRAGESampler
from tardiff.samplers.smote import SMOTESampler

__all__ = [
    "STRATEGIES",
    "BaseSampler",
    "check_X_y",
    "generation_counts",
    "RandomOverSampler",
    "SMOTESampler",
    "MCRAGESampler",
    "UnguidedDiffusionSampler",
    "TarDiffSampler",
]
