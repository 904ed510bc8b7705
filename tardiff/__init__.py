"""tardiff: target-oriented diffusion guidance for synthetic EHR time series.

The package implements TarDiff (Deng et al., KDD 2025) and its baselines (MCRAGE, SMOTE,
unguided diffusion) behind one imbalanced-learn style interface, the evaluation protocols
and metrics the field uses, and the experiment runner behind the compendium's book.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tardiff")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from tardiff.errors import TardiffError

__all__ = ["TardiffError", "__version__"]
