"""A simulated ICU cohort whose generating process, and so its Bayes posterior, is known.

The cohort has the shape of the TarDiff paper's MIMIC-III setting: 24 hourly steps of
seven vital signs, in the order HR (bpm), SBP, DBP, MBP (mmHg), RR (/min), Temp (degC)
and SpO2 (%), plus the static ``age`` (years) and ``sex`` ("F"/"M"), and a rare binary
outcome ("mortality", 8% positive by default). Nothing is downloaded.

Generating process
------------------
Every stay belongs to one of four latent components ``k`` (``COMPONENTS``), drawn with
probabilities ``pi`` from :meth:`SimulationConfig.priors`:

==============  =========  ===========================================================
component       outcome    pattern over the 24 hours
==============  =========  ===========================================================
stable          y = 0      no trend
mild            y = 0      non-fatal haemodynamic instability: the shock pattern with a
                           little fever and a lower, more variable severity (so some
                           survivors look like the milder deaths)
shock           y = 1      the common fatal phenotype (``1 - rare_fraction`` of the
                           positives): rising HR, falling SBP/DBP/MBP
respiratory     y = 1      the rare fatal phenotype (``rare_fraction``): rising RR,
                           falling SpO2, fever
==============  =========  ===========================================================

A generator that only reproduces the common (shock) pattern of the positives therefore
leaves the respiratory phenotype out, which :func:`component_posterior` makes visible.

Each feature ``f`` has a fixed monotone transform to a latent scale, ``z = g_f(x)``
(:func:`to_latent`): the identity for HR, the blood pressures and Temp,
``z = log(RR)`` (keeps RR positive) and ``z = log(100 - SpO2)`` (keeps SpO2 below 100).
Given the component, the latent series of one stay, a vector of length ``T * F``
(index ``t * F + f``), is

    z(t, f) = m(f)                                   population mean
            + A(f) (alpha cos(w t) + beta sin(w t))   circadian rhythm, (alpha, beta)
                                                      ~ N(c, s_c^2 I) per stay (the clock
                                                      time of admission varies)
            + b(f)                                   per-stay baseline, b ~ N(0, B),
                                                      constant over time
            + u(t, f)                                slow fluctuation, AR(1) in time with
                                                      correlation rho, cov(u_t) = U
            + s * r_k(t) * d_k(f)                    deterioration: severity s ~
                                                      N(mu_k, sd_k^2), fixed direction d_k
                                                      and time profile r_k (0 for stable)
            + e(t, f)                                measurement noise, e ~ N(0, diag(E))

All terms are Gaussian and independent, so ``z | k ~ N(mu_k, Sigma_k)`` with
``mu_k = 1_T (x) m + A (x) (c_1 cos + c_2 sin) + mu_k v_k`` and

    Sigma_k = 1 1^T (x) B  +  R_rho (x) U  +  I (x) diag(E)
              + s_c^2 (a_cos a_cos^T + a_sin a_sin^T)  +  sd_k^2 v_k v_k^T,

where ``v_k = r_k (x) d_k``, ``R_rho[t, s] = rho^|t - s|`` and ``(x)`` is the Kronecker
product (:func:`component_moments`). The first four terms are common to all components
(``Sigma_0``); each component adds a rank-one term.

Static covariates depend on the outcome only: ``age | y`` is normal (positives older)
and ``sex | y`` Bernoulli, so ``x`` is independent of age and sex given ``k``. This is the
same as age and sex shifting the prior of the components.

The Bayes posterior
-------------------
Cells are missing completely at random: each cell independently with probability
``missing_rate``, and each whole hour with probability ``missing_hour_rate``, independently
of ``k``, ``x`` and the static covariates. Let ``o`` be the observed cells of a stay. The
density of the observed values given ``k`` is the Gaussian marginal of the observed latent
coordinates times the Jacobian of the transforms,

    p(x_o | k) = N(g(x_o); mu_k[o], Sigma_k[o, o]) * prod_{j in o} |g_j'(x_j)|,

and the missingness pattern has the same probability under every component. By Bayes'
rule the Jacobian and the pattern's probability cancel, and

    P(y = 1 | x_o) = sum_{k in {shock, respiratory}} pi_k N(g(x_o); mu_k[o], Sigma_k[o, o])
                     / sum_k pi_k N(g(x_o); mu_k[o], Sigma_k[o, o]),

with ``pi_k`` the marginal component probabilities (the posterior given ``x`` only, not
given age and sex). :func:`component_posterior` evaluates these Gaussians in float64,
in batches, without factorising a (T F) x (T F) matrix per stay. With ``P = Sigma_0^-1``
(computed once), ``m`` the missing and ``o`` the observed coordinates, the Schur
complement and determinant identities of a partitioned precision matrix give, for vectors
``a``, ``b`` set to 0 at the missing coordinates,

    a_o' (Sigma_0[o, o])^-1 b_o = a' P b - (P a)_m' (P[m, m])^-1 (P b)_m,

so each stay needs only a solve with its small ``P[m, m]`` (missing cells x missing cells),
padded to a common width within a batch with identity rows and columns (which leaves the
solve unchanged). The rank-one terms of the components then enter through the
Sherman-Morrison formula and the matrix determinant lemma (all restricted to ``o``),

    r' Sigma_k^-1 r = r' Sigma_0^-1 r - sd_k^2 (v' Sigma_0^-1 r)^2 / (1 + sd_k^2 v' Sigma_0^-1 v),
    log|Sigma_k| = log|Sigma_0| + log(1 + sd_k^2 v' Sigma_0^-1 v),

with ``r = z - mu_k`` and ``v = v_k``. ``log|Sigma_0[o, o]|`` is the same for every
component of a stay and cancels from the posterior, like the Jacobian.

The posterior is exact up to floating-point rounding, with one stated exception: labels
are drawn independently per stay, and a draw in which one class is empty is redrawn
(a :class:`~tardiff.data.cohort.Cohort` needs both classes). This conditions on an event of
probability ``(1 - p)^n + p^n`` (below 1e-140 at the defaults), which bounds the error.
The stored values are float32; the posterior is computed from the stored values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from tardiff.data.cohort import Cohort
from tardiff.errors import DataError, ParameterError

TASKS = ("mortality",)
DEFAULT_TASK = "mortality"

FEATURES = ("HR", "SBP", "DBP", "MBP", "RR", "Temp", "SpO2")
UNITS = ("bpm", "mmHg", "mmHg", "mmHg", "/min", "degC", "%")
COMPONENTS = ("stable", "mild", "shock", "respiratory")
POSITIVE_COMPONENTS = (2, 3)
_RR, _SPO2 = FEATURES.index("RR"), FEATURES.index("SpO2")

# ---- physiology, on the latent scale (identity; log RR; log(100 - SpO2)) -------------------
#                     HR     SBP    DBP   MBP   RR               Temp   SpO2
_MEAN = np.array([84.0, 121.0, 62.0, 81.0, math.log(18.0), 36.9, math.log(2.8)])
_BASELINE_SD = np.array([11.0, 14.0, 9.0, 10.0, 0.17, 0.30, 0.35])
_FLUCT_SD = np.array([6.0, 8.0, 5.0, 6.0, 0.10, 0.20, 0.22])
_NOISE_SD = np.array([2.5, 5.0, 4.0, 3.5, 0.06, 0.10, 0.15])
_CIRCADIAN_AMP = np.array([4.0, 5.0, 3.0, 3.5, 0.04, 0.30, 0.05])
_CIRCADIAN_MEAN = np.array([0.5, 0.5])  # mean of (alpha, beta)
_CIRCADIAN_SD = 0.5
_AR_RHO = 0.7  # hour-to-hour correlation of the slow fluctuation
# Correlation of the features, used for the baseline and the slow fluctuation.
_CORR = np.array([
    #  HR    SBP    DBP    MBP   RR    Temp  SpO2
    [1.00, -0.10, 0.00, -0.05, 0.30, 0.25, 0.10],  # HR
    [-0.10, 1.00, 0.65, 0.85, 0.00, 0.00, 0.00],  # SBP
    [0.00, 0.65, 1.00, 0.90, 0.00, 0.00, 0.00],  # DBP
    [-0.05, 0.85, 0.90, 1.00, 0.00, 0.00, 0.00],  # MBP
    [0.30, 0.00, 0.00, 0.00, 1.00, 0.15, 0.30],  # RR
    [0.25, 0.00, 0.00, 0.00, 0.15, 1.00, 0.05],  # Temp
    [0.10, 0.00, 0.00, 0.00, 0.30, 0.05, 1.00],  # SpO2
])
# Deterioration per unit severity at full profile, latent units, and severity mean/sd.
_DIRECTION = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.00, 0.0, 0.00],  # stable: none
    [22.0, -24.0, -11.0, -15.0, 0.12, 0.1, 0.25],  # mild: like shock, with a little fever
    [22.0, -24.0, -11.0, -15.0, 0.12, -0.1, 0.25],  # shock
    [12.0, -3.0, -1.5, -2.0, 0.35, 0.9, 0.85],  # respiratory failure
])
_SEVERITY_MEAN = np.array([0.0, 0.55, 0.9, 0.9])
_SEVERITY_SD = np.array([0.0, 0.5, 0.45, 0.45])
# Static covariates given the outcome (index 0: y = 0, 1: y = 1).
_AGE_MEAN, _AGE_SD, _AGE_RANGE = (62.0, 71.0), (17.0, 13.0), (18.0, 95.0)
_MALE_PROB = (0.56, 0.58)

_SPO2_MAX = float(np.nextafter(np.float32(100.0), np.float32(0.0)))  # largest float32 below 100


def _profile(component: int, n_steps: int) -> np.ndarray:
    """Time profile r_k(t) of a component's deterioration, 0 at no effect, 1 at full effect."""
    u = np.arange(n_steps) / max(n_steps - 1, 1)
    if component in (1, 2):  # mild instability and shock: accelerating decline
        return 0.25 + 0.75 * u**1.5
    if component == 3:  # respiratory failure: steady decline
        return 0.2 + 0.8 * u
    return np.zeros(n_steps)


@dataclass
class SimulationConfig:
    """Parameters of the simulated cohort's generating process (not the sample size or seed).

    Parameters
    ----------
    positive_rate : float
        P(y = 1), the probability of the two fatal components together.
    rare_fraction : float
        Share of the positives with the rare respiratory phenotype (the rest: shock).
    mild_fraction : float
        Share of the negatives with the mild, non-fatal episode (the rest: stable).
    severity_scale : float
        Multiplies every deterioration (mean and spread of the severity): 0 makes the
        classes indistinguishable from the vitals, larger values make the task easier.
    missing_rate : float
        Probability that a cell is missing, independently of everything else.
    missing_hour_rate : float
        Probability that a whole hour (all features) is missing.
    n_steps : int
        Number of hourly time steps T.

    Examples
    --------
    >>> cfg = SimulationConfig(positive_rate=0.1)
    >>> cfg.priors().round(3).tolist()
    [0.72, 0.18, 0.075, 0.025]
    """

    positive_rate: float = 0.08
    rare_fraction: float = 0.25
    mild_fraction: float = 0.2
    severity_scale: float = 1.0
    missing_rate: float = 0.1
    missing_hour_rate: float = 0.05
    n_steps: int = 24

    def __post_init__(self) -> None:
        if not 0.0 < self.positive_rate < 1.0:
            raise ParameterError(f"positive_rate must lie strictly between 0 and 1, got {self.positive_rate}")
        if not 0.0 <= self.rare_fraction <= 1.0:
            raise ParameterError(f"rare_fraction must lie in [0, 1], got {self.rare_fraction}")
        if not 0.0 <= self.mild_fraction <= 1.0:
            raise ParameterError(f"mild_fraction must lie in [0, 1], got {self.mild_fraction}")
        if not (math.isfinite(self.severity_scale) and self.severity_scale >= 0.0):
            raise ParameterError(f"severity_scale must be a finite number >= 0, got {self.severity_scale}")
        if not 0.0 <= self.missing_rate < 1.0:
            raise ParameterError(f"missing_rate must lie in [0, 1), got {self.missing_rate}")
        if not 0.0 <= self.missing_hour_rate < 1.0:
            raise ParameterError(f"missing_hour_rate must lie in [0, 1), got {self.missing_hour_rate}")
        if isinstance(self.n_steps, bool) or int(self.n_steps) != self.n_steps or self.n_steps < 2:
            raise ParameterError(f"n_steps must be an integer >= 2, got {self.n_steps}")
        self.n_steps = int(self.n_steps)

    def priors(self) -> np.ndarray:
        """Marginal probabilities ``pi`` of the components, in the order of ``COMPONENTS``."""
        p, rare, mild = self.positive_rate, self.rare_fraction, self.mild_fraction
        return np.array([(1 - p) * (1 - mild), (1 - p) * mild, p * (1 - rare), p * rare])


def to_latent(X: np.ndarray) -> np.ndarray:
    """Map vitals in clinical units (..., F) to the latent scale, in float64.

    RR becomes ``log(RR)`` and SpO2 ``log(100 - SpO2)``; the other features are unchanged.
    Values outside the support (RR <= 0, SpO2 >= 100), which this generator never
    produces but a synthetic generator might, are clipped to just inside it. NaN stays NaN.

    Examples
    --------
    >>> z = to_latent(np.array([[80.0, 120, 60, 80, 18, 37, 97]]))
    >>> np.round(z[0, [4, 6]], 4).tolist()
    [2.8904, 1.0986]
    """
    z = np.array(X, dtype=np.float64, copy=True)
    with np.errstate(invalid="ignore"):
        z[..., _RR] = np.log(np.maximum(z[..., _RR], 1e-3))
        z[..., _SPO2] = np.log(np.maximum(100.0 - z[..., _SPO2], 1e-4))
    return z


def from_latent(Z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_latent`: latent values (..., F) back to clinical units (float64).

    Examples
    --------
    >>> x = np.array([[80.0, 120, 60, 80, 18, 37, 97]])
    >>> bool(np.allclose(from_latent(to_latent(x)), x))
    True
    """
    x = np.array(Z, dtype=np.float64, copy=True)
    x[..., _RR] = np.exp(x[..., _RR])
    x[..., _SPO2] = 100.0 - np.exp(x[..., _SPO2])
    return x


def _common_factors(config: SimulationConfig):
    """Pieces of the latent model: times, circadian loadings, profiles (flattened t * F + f)."""
    T = config.n_steps
    hours = np.arange(T, dtype=np.float64)  # 60-minute steps
    omega = 2.0 * np.pi / 24.0
    a_cos = np.kron(np.cos(omega * hours), _CIRCADIAN_AMP)
    a_sin = np.kron(np.sin(omega * hours), _CIRCADIAN_AMP)
    v = np.stack([
        config.severity_scale * np.kron(_profile(k, T), _DIRECTION[k]) for k in range(len(COMPONENTS))
    ])
    return a_cos, a_sin, v


def component_moments(config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the latent series of each component, in closed form.

    Parameters
    ----------
    config : SimulationConfig

    Returns
    -------
    means : ndarray of shape (K, T * F)
        ``mu_k``, flattened with index ``t * F + f`` on the scale of :func:`to_latent`.
    covs : ndarray of shape (K, T * F, T * F)
        ``Sigma_k`` (see the module docstring).

    Examples
    --------
    >>> means, covs = component_moments(SimulationConfig())
    >>> means.shape, covs.shape
    ((4, 168), (4, 168, 168))
    """
    mean0, sigma0, v, severity_sd = _moments_parts(config)
    means = mean0[None, :] + _SEVERITY_MEAN[:, None] * v
    covs = sigma0[None] + (severity_sd**2)[:, None, None] * v[:, :, None] * v[:, None, :]
    return means, covs


def _moments_parts(config: SimulationConfig):
    """Common mean and covariance, the deterioration vectors v_k and the severity sds."""
    T = config.n_steps
    a_cos, a_sin, v = _common_factors(config)
    baseline_cov = _CORR * np.outer(_BASELINE_SD, _BASELINE_SD)
    fluct_cov = _CORR * np.outer(_FLUCT_SD, _FLUCT_SD)
    lags = np.abs(np.subtract.outer(np.arange(T), np.arange(T)))
    sigma0 = (
        np.kron(np.ones((T, T)), baseline_cov)
        + np.kron(_AR_RHO**lags, fluct_cov)
        + np.kron(np.eye(T), np.diag(_NOISE_SD**2))
        + _CIRCADIAN_SD**2 * (np.outer(a_cos, a_cos) + np.outer(a_sin, a_sin))
    )
    mean0 = np.tile(_MEAN, T) + _CIRCADIAN_MEAN[0] * a_cos + _CIRCADIAN_MEAN[1] * a_sin
    return mean0, sigma0, v, _SEVERITY_SD.copy()


def _sample_latent(config: SimulationConfig, component: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw the latent series (n, T, F) term by term, as the module docstring describes."""
    n, T, F = len(component), config.n_steps, len(FEATURES)
    hours = np.arange(T, dtype=np.float64)
    omega = 2.0 * np.pi / 24.0
    phase = _CIRCADIAN_MEAN + _CIRCADIAN_SD * rng.standard_normal((n, 2))
    circadian = (phase[:, :1] * np.cos(omega * hours) + phase[:, 1:] * np.sin(omega * hours))
    z = _MEAN + circadian[:, :, None] * _CIRCADIAN_AMP
    chol = np.linalg.cholesky(_CORR)
    z = z + (rng.standard_normal((n, F)) @ chol.T * _BASELINE_SD)[:, None, :]
    fluct = np.empty((n, T, F))
    fluct[:, 0] = rng.standard_normal((n, F)) @ chol.T * _FLUCT_SD
    innovation_scale = math.sqrt(1.0 - _AR_RHO**2)
    for t in range(1, T):
        eps = rng.standard_normal((n, F)) @ chol.T * _FLUCT_SD
        fluct[:, t] = _AR_RHO * fluct[:, t - 1] + innovation_scale * eps
    z = z + fluct
    severity = _SEVERITY_MEAN[component] + _SEVERITY_SD[component] * rng.standard_normal(n)
    profiles = np.stack([_profile(k, T) for k in range(len(COMPONENTS))])  # (K, T)
    trend = profiles[component][:, :, None] * _DIRECTION[component][:, None, :]  # (n, T, F)
    z = z + config.severity_scale * severity[:, None, None] * trend
    return z + rng.standard_normal((n, T, F)) * _NOISE_SD


def component_posterior(
    X: np.ndarray, mask: np.ndarray | None, config: SimulationConfig, *,
    chunk_size: int = 512, progress: bool = False,
) -> np.ndarray:
    """P(component k | observed vitals) under the generating process, for every stay.

    Parameters
    ----------
    X : array of shape (N, T, F)
        Vitals in clinical units (the order of ``FEATURES``); NaN where missing.
    mask : bool array of shape (N, T, F), optional
        True where a cell is observed; cells that are NaN count as missing either way.
    config : SimulationConfig
        The generating parameters (``cohort.info["config"]`` of a simulated cohort).
    chunk_size : int
        Stays per batch (memory grows with ``chunk_size * (missing cells per stay)^2``).
    progress : bool
        Show a progress bar over the chunks.

    Returns
    -------
    ndarray of shape (N, K), float64
        Rows sum to 1; columns in the order of ``COMPONENTS``. Useful to see which
        phenotypes a synthetic generator reproduces.

    Examples
    --------
    >>> cohort, component = simulate(200, seed=0)
    >>> post = component_posterior(cohort.X, cohort.mask, SimulationConfig())
    >>> post.shape, bool(np.allclose(post.sum(axis=1), 1.0))
    ((200, 4), True)
    """
    X = np.asarray(X)
    T, F = config.n_steps, len(FEATURES)
    if X.ndim != 3 or X.shape[1:] != (T, F):
        raise DataError(f"X must have shape (N, {T}, {F}) for this simulation config, got {X.shape}")
    observed = np.isfinite(X)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != X.shape:
            raise DataError(f"mask shape {mask.shape} differs from X shape {X.shape}")
        observed &= mask
    if int(chunk_size) < 1:
        raise ParameterError(f"chunk_size must be a positive integer, got {chunk_size}")
    mean0, sigma0, v, severity_sd = _moments_parts(config)
    K, D = len(COMPONENTS), T * F
    means = mean0[None, :] + _SEVERITY_MEAN[:, None] * v  # (K, D)
    # Standardise each coordinate (a constant Jacobian, which cancels) for conditioning.
    scale = np.sqrt(np.diag(sigma0))
    sigma0 = sigma0 / np.outer(scale, scale)
    v = v / scale
    chol0 = np.linalg.cholesky(sigma0)
    eye_inv = np.linalg.solve(chol0, np.eye(D))
    precision = eye_inv.T @ eye_inv  # Sigma_0^-1
    z = to_latent(X).reshape(len(X), D)
    obs = observed.reshape(len(X), D)
    severity_var = severity_sd**2
    priors = config.priors()
    with np.errstate(divide="ignore"):
        log_prior = np.log(priors)  # -inf for a component switched off

    out = np.empty((len(X), K))
    starts = range(0, len(X), int(chunk_size))
    for start in tqdm(starts, desc="Bayes posterior", disable=not progress):
        o = obs[start:start + chunk_size]  # (b, D)
        zc = np.nan_to_num(z[start:start + chunk_size])
        # Residuals r_k and deterioration vectors v_k, zero at the missing coordinates.
        vecs = np.concatenate([(zc[:, None, :] - means[None]) / scale, np.broadcast_to(v, (len(o), K, D))], axis=1)
        vecs = vecs * o[:, None, :]  # (b, 2K, D)
        applied = vecs @ precision  # (b, 2K, D)
        gram = np.einsum("bid,bjd->bij", vecs, applied)  # a' P b for all pairs
        n_missing = D - o.sum(axis=1)
        width = int(n_missing.max())
        if width:
            # Missing coordinates first, padded to a common width with identity rows/cols.
            order = np.argsort(o, axis=1, kind="stable")[:, :width]
            valid = np.arange(width)[None, :] < n_missing[:, None]
            p_mm = precision[order[:, :, None], order[:, None, :]]
            p_mm = np.where(valid[:, :, None] & valid[:, None, :], p_mm, 0.0)
            p_mm[:, np.arange(width), np.arange(width)] += ~valid
            u_m = np.take_along_axis(applied, order[:, None, :], axis=2) * valid[:, None, :]  # (b, 2K, M)
            # Schur complement: (Sigma_oo)^-1 = P_oo - P_om P_mm^-1 P_mo.
            gram -= u_m @ np.linalg.solve(p_mm, u_m.transpose(0, 2, 1))
        idx = np.arange(K)
        quad0 = gram[:, idx, idx]  # r' Sigma_oo^-1 r
        wsw = gram[:, K + idx, K + idx]  # v' Sigma_oo^-1 v
        wsr = gram[:, idx, K + idx]  # v' Sigma_oo^-1 r
        denom = 1.0 + severity_var[None] * wsw
        quad = quad0 - severity_var[None] * wsr**2 / denom  # Sherman-Morrison
        # log N(z_o; mu_k, Sigma_k) up to terms common to all k (log|Sigma_0[o, o]|, 2 pi, Jacobian).
        out[start:start + chunk_size] = -0.5 * (quad + np.log(denom))  # determinant lemma
    logits = out + log_prior[None]
    logits -= logits.max(axis=1, keepdims=True)
    post = np.exp(logits)
    return post / post.sum(axis=1, keepdims=True)


def bayes_posterior(
    X: np.ndarray, mask: np.ndarray | None, config: SimulationConfig, *,
    chunk_size: int = 512, progress: bool = False,
) -> np.ndarray:
    """The Bayes posterior P(y = 1 | observed vitals), the best any classifier on X can do.

    The sum of :func:`component_posterior` over the fatal components; see the module
    docstring for the derivation.

    Parameters
    ----------
    X : array of shape (N, T, F)
        Vitals in clinical units; NaN where missing.
    mask : bool array of shape (N, T, F), optional
        True where observed.
    config : SimulationConfig
        The generating parameters.

    Returns
    -------
    ndarray of shape (N,), float64, in [0, 1].

    Examples
    --------
    >>> cohort, _ = simulate(200, seed=0)
    >>> p = bayes_posterior(cohort.X, cohort.mask, SimulationConfig())
    >>> bool(np.allclose(p, cohort.bayes_posterior))
    True
    """
    post = component_posterior(X, mask, config, chunk_size=chunk_size, progress=progress)
    return post[:, list(POSITIVE_COMPONENTS)].sum(axis=1)


def simulate(
    n: int, config: SimulationConfig | None = None, seed: int = 0, *, progress: bool = False,
) -> tuple[Cohort, np.ndarray]:
    """Draw a simulated cohort of ``n`` stays, and the latent component of each.

    Parameters
    ----------
    n : int
        Number of stays (at least 20).
    config : SimulationConfig, optional
        Generating parameters; the defaults when omitted.
    seed : int
        Seed of the ``numpy.random.default_rng`` used for every draw.
    progress : bool
        Show a progress bar while the posterior is computed.

    Returns
    -------
    cohort : Cohort
        ``dataset="simulated"``, ``task="mortality"``, with ``bayes_posterior`` set and
        ``info["config"]`` holding ``asdict(config)``.
    component : ndarray of shape (n,), int64
        Index into ``COMPONENTS`` (kept out of ``cohort.static`` so that no model sees it).

    Examples
    --------
    >>> cohort, component = simulate(100, seed=3)
    >>> cohort.shape, sorted(set(component.tolist())) <= [0, 1, 2, 3]
    ((100, 24, 7), True)
    """
    config = config or SimulationConfig()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 20:
        raise ParameterError(f"n must be an integer >= 20 (the number of simulated stays), got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParameterError(f"seed must be an integer, got {seed!r}")
    n = int(n)
    rng = np.random.default_rng(int(seed))
    priors = config.priors()
    positive = np.isin(np.arange(len(COMPONENTS)), POSITIVE_COMPONENTS)
    while True:  # redraw the (improbable) draws with a single class; see the module docstring
        component = rng.choice(len(COMPONENTS), size=n, p=priors)
        y = positive[component].astype(np.int64)
        if 0 < y.sum() < n:
            break

    z = _sample_latent(config, component, rng)
    X = from_latent(z).astype(np.float32)
    X[..., _SPO2] = np.minimum(X[..., _SPO2], _SPO2_MAX)  # float32 rounding must not reach 100
    mask = rng.random(X.shape) >= config.missing_rate
    mask &= (rng.random((n, config.n_steps)) >= config.missing_hour_rate)[:, :, None]
    X[~mask] = np.nan

    age = rng.normal(np.take(_AGE_MEAN, y), np.take(_AGE_SD, y))
    age = np.round(np.clip(age, *_AGE_RANGE))
    sex = np.where(rng.random(n) < np.take(_MALE_PROB, y), "M", "F").astype(object)
    static = pd.DataFrame({"age": age, "sex": sex})

    posterior = bayes_posterior(X, mask, config, progress=progress)
    counts = np.bincount(component, minlength=len(COMPONENTS))
    info = {
        "config": asdict(config),
        "n": n,
        "seed": int(seed),
        "components": list(COMPONENTS),
        "component_counts": {name: int(c) for name, c in zip(COMPONENTS, counts)},
        "note": "simulated; bayes_posterior is P(y=1 | observed vitals) under the generating process",
    }
    cohort = Cohort(
        X=X, mask=mask, y=y, features=list(FEATURES), units=list(UNITS), stay_ids=np.arange(n),
        static=static, dataset="simulated", task="mortality", step_minutes=60,
        bayes_posterior=posterior, info=info,
    )
    return cohort, component


def find_source_files(data_dir: Path | None = None) -> list[Path]:
    """The simulated cohort is generated, so it has no source files (always ``[]``)."""
    return []


def load(
    data_dir: Path | None = None, task: str = DEFAULT_TASK, *, n: int = 4000, positive_rate: float = 0.08,
    seed: int = 0, missing_rate: float = 0.1, missing_hour_rate: float = 0.05, rare_fraction: float = 0.25,
    mild_fraction: float = 0.2, severity_scale: float = 1.0, n_steps: int = 24, progress: bool = False,
) -> Cohort:
    """Generate the simulated cohort (the registry's loader entry point; ``data_dir`` is ignored).

    Parameters
    ----------
    data_dir : ignored
    task : str
        Only "mortality".
    n, seed : int
        Number of stays and the seed (see :func:`simulate`).
    positive_rate, missing_rate, missing_hour_rate, rare_fraction, mild_fraction, severity_scale, n_steps
        See :class:`SimulationConfig`.

    Examples
    --------
    >>> c = load(None, "mortality", n=300, seed=1)
    >>> c.dataset, c.shape, c.bayes_posterior.shape
    ('simulated', (300, 24, 7), (300,))
    """
    if task not in TASKS:
        raise ParameterError(f"the simulated cohort has no task {task!r}; its tasks are: {', '.join(TASKS)}")
    config = SimulationConfig(
        positive_rate=positive_rate, rare_fraction=rare_fraction, mild_fraction=mild_fraction,
        severity_scale=severity_scale, missing_rate=missing_rate, missing_hour_rate=missing_hour_rate,
        n_steps=n_steps,
    )
    cohort, _ = simulate(n, config, seed, progress=progress)
    return cohort
