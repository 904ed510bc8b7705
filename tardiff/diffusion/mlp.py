"""MCRAGE's MLP denoiser for flat (standardised, flattened) vectors.

The conditional DDPM of MCRAGE (Behal et al., arXiv 2310.18430) predicts the noise of a
flat record with a small MLP: the input is projected to a hidden width; the timestep
``t / T`` and the one-hot class each pass through a 2-layer MLP; the class embedding
multiplies and the time embedding adds to the hidden features; a skip connection carries
the input projection to the output; the output layer is linear. The public code ends with
a GELU on the noise prediction, which cannot go below about -0.17 although Gaussian noise
must; this module leaves that defect out. The hidden width follows the record, as in the
public code (its ContextUnet takes the record width ``n_feat`` and its hidden layers are
``2 * n_feat``): ``hidden=None`` (the default) means ``2 * n_dim``.

The time and class embeddings depend on the batch only through the few distinct values of
``t`` and ``y`` in it (one ``t`` per reverse step, three labels), so they are computed once per
distinct value and gathered: the same numbers, and at a record width of 1,776 (hidden 3,552)
two of the network's ``hidden x hidden`` products saved per row.

One option of ours, ``input_gate`` (off by default): a time-dependent, per-coordinate gate
from the noisy input straight to the predicted noise, ``eps_hat = out(h) + g(t) * x_t``. MCRAGE
models tabular records of a few dozen columns, narrower than its hidden width. A flattened
ICU stay is wider (48 h x 37 PhysioNet variables = 1,776 coordinates against 256 or 512
hidden units of a fixed width), so without the gate the prediction has rank at most the hidden
width: at the
noisiest steps, where the noise is nearly all of ``x_t``, the coordinates outside that rank are
predicted as zero, and every ancestral step then multiplies them by ``1 / sqrt(1 - beta_t)``
instead of shrinking them, ``1 / sqrt(abar_T)`` (about 180) over the chain. Measured at cpu
scale: MCRAGE's PhysioNet rows came out 264 times the real scale (eICU demo: 232). The gate
removes that limit, not the overshoot of classifier-free guidance at w = 4 on the minority
class, which still throws those rows off the scale at cpu scale (see the methods chapter). The
gate starts at zero, so an untrained network is MCRAGE's; ``input_gate=False`` (the default)
is MCRAGE's architecture exactly. With the published width (``2 * n_dim``) the rank limit is
gone and the gate is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from tardiff.diffusion.unet import zeroed
from tardiff.errors import ParameterError

Activation = Literal["silu", "gelu"]
_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU}


@dataclass
class MLPConfig:
    """Hyperparameters of :class:`MLPDenoiser`.

    Parameters
    ----------
    hidden : int or None
        Hidden width; None (the default) ties it to the record, ``2 * n_dim`` as in MCRAGE's
        public code.
    n_layers : int
        Hidden layers after the conditioning (each Linear + activation).
    num_classes : int
        Number of real classes; the label index ``num_classes`` is the null
        (unconditional) class used for classifier-free guidance.
    n_steps : int
        Diffusion steps T; the network sees the timestep as ``t / T``.
    activation : {"silu", "gelu"}
        Hidden activation. SiLU (the default) and GELU are near-identical smooth ReLUs;
        PyTorch's exact-GELU CPU kernel is very slow on small batches under multithreading
        (about 10 ms per 64 x 32 call measured on 2 busy cores, 0.005 ms for SiLU).
    input_gate : bool
        Add ``g(t) * x_t`` to the predicted noise, ``g`` a per-coordinate gate computed from the
        time embedding and zero at initialisation (ours, see the module docstring); False (the
        default) is MCRAGE's network exactly.
    """

    hidden: int | None = None
    n_layers: int = 2
    num_classes: int = 2
    n_steps: int = 200
    activation: Activation = "silu"
    input_gate: bool = False

    def __post_init__(self):
        for name in ("hidden", "n_layers", "num_classes", "n_steps"):
            value = getattr(self, name)
            if name == "hidden" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "n_layers" else 1):
                raise ParameterError(f"MLPConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.input_gate, bool):
            raise ParameterError(f"MLPConfig.input_gate must be True or False, got {self.input_gate!r}")
        if self.activation not in _ACTIVATIONS:
            raise ParameterError(f"MLPConfig.activation must be one of {list(_ACTIVATIONS)}, got {self.activation!r}")


def _two_layer(d_in: int, hidden: int, activation: str) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), _ACTIVATIONS[activation](), nn.Linear(hidden, hidden))


class MLPDenoiser(nn.Module):
    """Epsilon-prediction MLP ``forward(x (B, D), t (B,) long, y (B,) long) -> (B, D)``.

    Parameters
    ----------
    config : MLPConfig
    n_dim : int
        Length D of the flat input vectors (T * F for a flattened time series).

    Examples
    --------
    >>> net = MLPDenoiser(MLPConfig(hidden=16), n_dim=6)
    >>> net(torch.zeros(3, 6), torch.tensor([0, 5, 199]), torch.tensor([0, 1, 2])).shape
    torch.Size([3, 6])
    >>> MLPDenoiser(MLPConfig(), n_dim=6).hidden  # the published width, 2 x the record
    12
    """

    def __init__(self, config: MLPConfig, n_dim: int):
        super().__init__()
        if isinstance(n_dim, bool) or not isinstance(n_dim, int) or n_dim < 1:
            raise ParameterError(f"n_dim must be a positive int, got {n_dim!r}")
        self.config = config
        self.n_dim = n_dim
        h = 2 * n_dim if config.hidden is None else config.hidden
        self.hidden = h
        self.null_label = config.num_classes
        self.in_proj = nn.Linear(n_dim, h)
        self.time_mlp = _two_layer(1, h, config.activation)
        self.class_mlp = _two_layer(config.num_classes + 1, h, config.activation)
        self.layers = nn.ModuleList(nn.Linear(h, h) for _ in range(config.n_layers))
        self.act = _ACTIVATIONS[config.activation]()
        self.out = nn.Linear(h, n_dim)  # linear: the noise prediction must reach any real value
        # per-coordinate gate of x_t from the time embedding; zero at first: the network starts as MCRAGE's
        self.input_gate = zeroed(nn.Linear(h, n_dim)) if config.input_gate else None

    @property
    def init_kwargs(self) -> dict:
        """Constructor arguments besides ``config`` (to rebuild the model from a checkpoint)."""
        return {"n_dim": self.n_dim}

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predict the noise in ``x`` at steps ``t`` for labels ``y`` (``num_classes`` = null)."""
        if x.ndim != 2 or x.shape[1] != self.n_dim:
            raise ValueError(f"MLPDenoiser expects x of shape (B, {self.n_dim}), got {tuple(x.shape)}")
        # embeddings of the distinct t and y only, then gathered (row-wise, so the same numbers)
        t_values, t_index = torch.unique(t, return_inverse=True)
        y_values, y_index = torch.unique(y.long(), return_inverse=True)
        time = self.time_mlp((t_values.to(x.dtype) / self.config.n_steps).reshape(-1, 1))[t_index.reshape(-1)]
        onehot = nn.functional.one_hot(y_values, self.config.num_classes + 1).to(x.dtype)
        label = self.class_mlp(onehot)[y_index.reshape(-1)]
        skip = self.in_proj(x)
        h = self.act(skip * label + time)
        for layer in self.layers:
            h = self.act(layer(h))
        eps = self.out(h + skip)
        if self.input_gate is not None:  # full-rank path: at large t the noise is nearly x_t itself
            eps = eps + self.input_gate(time) * x
        return eps
