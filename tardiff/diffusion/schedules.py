"""Noise (beta) schedules of the forward diffusion process.

Every schedule is computed in float64; :class:`tardiff.diffusion.GaussianDiffusion`
derives its coefficients from it in float64 and stores them as float32 buffers.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from tardiff.errors import ParameterError

ScheduleKind = Literal["linear", "sqrt_linear", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(ScheduleKind)

MAX_BETA = 0.999  # betas are capped below 1 so that every step keeps some signal


def beta_schedule(kind: ScheduleKind, n_steps: int) -> np.ndarray:
    """The betas ``beta_1 .. beta_T`` of a named schedule, as a float64 array of length ``n_steps``.

    Parameters
    ----------
    kind : {"linear", "sqrt_linear", "cosine"}
        ``"linear"``: DDPM's linear schedule 1e-4 .. 0.02 for T = 1000 (Ho et al. 2020),
        rescaled by 1000 / T as in Nichol & Dhariwal (2021) so that any T ends with an
        almost pure-noise x_T (T = 200 gives 5e-4 .. 0.1).
        ``"sqrt_linear"``: the TarDiff schedule, ``linspace(sqrt(5e-4), sqrt(0.1), T) ** 2``
        (the same endpoints for every T).
        ``"cosine"``: Nichol & Dhariwal (2021), eq. 17 of their paper, offset s = 0.008.
        Betas are capped at 0.999.
    n_steps : int
        The number of diffusion steps T (>= 1).

    Returns
    -------
    numpy.ndarray
        float64 array of shape (n_steps,), increasing, in (0, 1).

    Examples
    --------
    >>> b = beta_schedule("sqrt_linear", 200)
    >>> round(float(b[0]), 6), round(float(b[-1]), 6)
    (0.0005, 0.1)
    """
    if kind not in SCHEDULES:
        raise ParameterError(f"unknown beta schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ParameterError(f"n_steps must be a positive integer, got {n_steps!r}")
    n = int(n_steps)
    if kind == "linear":
        scale = 1000.0 / n
        betas = np.linspace(scale * 1e-4, scale * 0.02, n, dtype=np.float64)
    elif kind == "sqrt_linear":
        betas = np.linspace(math.sqrt(5e-4), math.sqrt(0.1), n, dtype=np.float64) ** 2
    else:  # cosine
        s = 0.008

        def alpha_bar(u: np.ndarray) -> np.ndarray:
            return np.cos((u + s) / (1 + s) * math.pi / 2) ** 2

        grid = np.arange(n + 1, dtype=np.float64) / n
        abar = alpha_bar(grid) / alpha_bar(np.zeros(1))
        betas = 1.0 - abar[1:] / abar[:-1]
    return np.minimum(betas, MAX_BETA)
