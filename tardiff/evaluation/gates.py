"""Quality gates: checks a generator's output must pass before its utility is ranked.

A generator whose samples are off the data's scale can still move a downstream AUPRC (up or
down), and a comparison that ranks it says nothing about the method. Every synthetic set is
therefore checked against the real training rows before the book ranks it:

* **scale ratio** (per class): the mean row L2 norm of the synthetic rows over that of the
  real training rows of the same class, in the standardised space; 1 is ideal. The gate asks
  for :data:`SCALE_RATIO_RANGE` in both classes.
* **discriminative score** (Yoon et al. 2019): ``|accuracy - 0.5|`` of a post-hoc GRU telling
  real from synthetic rows; 0 is ideal, 0.5 perfectly separable. The gate asks for at most
  :data:`DISCRIMINATIVE_MAX` (a classifier right 95% of the time or more has found the fake).
* reported, not gated: the **membership-inference AUROC** and the **DCR ratio** (privacy; the
  validation split is the never-seen reference, the test split stays untouched), and for
  diffusion models the **noise-prediction error** at the noisiest step on the validation split
  (the regime where a denoiser's errors are amplified most when it estimates the clean sample).
"""

from __future__ import annotations

import numpy as np
import torch

from tardiff.evaluation.fidelity import discriminative_score
from tardiff.evaluation.privacy import distance_to_closest_record, membership_inference_auroc
from tardiff.presets import torch_generator

#: The scale ratio each class must reach, synthetic over real mean row norm.
SCALE_RATIO_RANGE = (0.8, 1.25)
#: The largest discriminative score ``|accuracy - 0.5|`` that passes.
DISCRIMINATIVE_MAX = 0.45


def gate_description() -> dict:
    """The thresholds, as stored in ``results.json`` under ``quality_gate``."""
    low, high = SCALE_RATIO_RANGE
    return {
        "scale_ratio": list(SCALE_RATIO_RANGE), "discriminative_score_max": DISCRIMINATIVE_MAX,
        "description": (f"a generator passes when, in both classes, the mean row L2 norm of its rows is "
                        f"{low:g} to {high:g} times that of the real training rows, and a post-hoc GRU tells its "
                        f"rows from real ones with accuracy at most {0.5 + DISCRIMINATIVE_MAX:.2f} "
                        f"(discriminative score <= {DISCRIMINATIVE_MAX:g})"),
    }


def scale_ratio(real: np.ndarray, synth: np.ndarray) -> float:
    """Mean row L2 norm of ``synth`` over that of ``real`` (rows of shape (T, F)).

    Examples
    --------
    >>> real = np.ones((4, 3, 2)); scale_ratio(real, 2 * real[:2])
    2.0
    """
    real_norm = np.linalg.norm(np.asarray(real, dtype=np.float64).reshape(len(real), -1), axis=1).mean()
    synth_norm = np.linalg.norm(np.asarray(synth, dtype=np.float64).reshape(len(synth), -1), axis=1).mean()
    return float(synth_norm / real_norm) if real_norm > 0 else float("nan")


def noise_prediction_error(model, process, X: np.ndarray, y: np.ndarray, *, t: int | None = None, seed: int = 0,
                           batch_size: int = 512, device="cpu") -> float:
    """Mean squared error of a denoiser's noise prediction at timestep ``t`` (default: the noisiest).

    ``model(x_t, t, y) -> eps`` is evaluated in eval mode on ``x_t = q_sample(X, t, noise)`` with
    noise from a generator seeded by ``seed``, so the number is repeatable.
    """
    t = process.n_steps - 1 if t is None else int(t)
    generator = torch_generator(seed)
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                x0 = torch.as_tensor(X[start:start + batch_size], dtype=torch.float32)
                labels = torch.as_tensor(y[start:start + batch_size], dtype=torch.long)
                noise = torch.randn(x0.shape, generator=generator)
                steps = torch.full((len(x0),), t, dtype=torch.long)
                x_t = process.q_sample(x0, steps, noise)
                eps = model(x_t.to(device), steps.to(device), labels.to(device)).cpu()
                total += float(((eps - noise) ** 2).sum())
                count += noise.numel()
    finally:
        model.train(was_training)
    return total / count


def quality_gate(X_train: np.ndarray, y_train: np.ndarray, X_synth: np.ndarray, y_synth: np.ndarray,
                 X_holdout: np.ndarray, *, seed: int = 0, epochs: int = 10, max_samples: int = 1000,
                 device="cpu") -> dict:
    """Gate metrics of one synthetic set against the real training rows.

    Parameters
    ----------
    X_train, y_train : the real rows the generator was fitted on (standardised).
    X_synth, y_synth : its synthetic rows.
    X_holdout : real rows it never saw (the validation split): the privacy metrics' reference.
    seed, epochs, max_samples, device : of the post-hoc discriminator and the subsampling.

    Returns
    -------
    dict
        ``scale_ratio_neg``, ``scale_ratio_pos`` (NaN for a class without synthetic rows),
        ``discriminative_score``, ``membership_auroc``, ``dcr_ratio``, ``passes_quality_gate``
        and ``gate_failures`` (readable reasons, empty when it passes).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 6, 2)).astype("float32"); y = np.arange(60) % 2
    >>> quality_gate(X, y, 10 * X, y, X[:20], epochs=1)["gate_failures"][0]
    'negative rows are 10.0 times the real scale'
    """
    out: dict = {}
    failures = []
    low, high = SCALE_RATIO_RANGE
    for label, name in ((0, "neg"), (1, "pos")):
        rows = X_synth[y_synth == label]
        ratio = scale_ratio(X_train[y_train == label], rows) if len(rows) else float("nan")
        out[f"scale_ratio_{name}"] = ratio
        if np.isfinite(ratio) and not low <= ratio <= high:
            failures.append(f"{'positive' if label else 'negative'} rows are {ratio:.1f} times the real scale")
    out["discriminative_score"] = float(discriminative_score(X_train, X_synth, seed=seed, epochs=epochs,
                                                             max_samples=max_samples, device=device))
    if out["discriminative_score"] > DISCRIMINATIVE_MAX:
        failures.append(f"a post-hoc classifier tells them from real rows with accuracy "
                        f"{0.5 + out['discriminative_score']:.2f}")
    out["membership_auroc"] = float(membership_inference_auroc(X_synth, X_train, X_holdout, max_samples=max_samples,
                                                               random_state=seed))
    out["dcr_ratio"] = float(distance_to_closest_record(X_synth, X_train, X_holdout, max_samples=max_samples,
                                                        random_state=seed)["ratio_median"])
    out["passes_quality_gate"] = not failures
    out["gate_failures"] = failures
    return out
