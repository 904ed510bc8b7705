"""Optional CUDA-graph capture (issue 23): the modes, the eager fallback, and that nothing changes on a CPU.

No GPU runs here: capture itself is checked by benchmarks/gpu-check on a CUDA machine. These tests
pin what a CPU can: every mode gives the eager numbers, the helper's state machine and its fallback
(with a fake capture), and the split of the training loss into draws and a draw-free part.
"""

import warnings

import numpy as np
import pytest
import torch

from tardiff.diffusion import GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule, train_diffusion
from tardiff.diffusion.process import _randn
from tardiff.errors import ParameterError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the split training loss
def _old_training_loss(process, model, x0, y, *, generator=None, label_dropout=0.0, null_label=None):
    """GaussianDiffusion.training_loss as it was before the split (copied verbatim, less the checks)."""
    batch = x0.shape[0]
    draw_device = generator.device if generator is not None else x0.device
    t = torch.randint(0, process.n_steps, (batch,), generator=generator, device=draw_device).to(x0.device)
    noise = _randn(x0.shape, generator, x0.device)
    y = torch.as_tensor(y, dtype=torch.long, device=x0.device).reshape(-1)
    if label_dropout > 0:
        null = process._null_label(model, null_label)
        drop = (torch.rand(batch, generator=generator, device=draw_device) < label_dropout).to(x0.device)
        y = torch.where(drop, torch.full_like(y, null), y)
    x_t = process.q_sample(x0, t, noise)
    eps = model(x_t, t, y)
    if process.loss_type == "l2":
        return torch.mean((noise - eps) ** 2)
    return torch.mean(torch.abs(noise - eps))


@pytest.mark.parametrize("loss_type", ["l2", "l1"])
@pytest.mark.parametrize("label_dropout", [0.0, 0.3])
def test_split_training_loss_equals_the_old_one_exactly(loss_type, label_dropout):
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 50), loss_type=loss_type)
    net = UNet1D(UNetConfig.preset("smoke"), n_features=3, seed=0)
    x0 = torch.randn(12, 8, 3, generator=gen(1))
    y = torch.arange(12) % 2
    g_new, g_old = gen(5), gen(5)
    for _ in range(3):  # consecutive batches: the generator is consumed identically
        new = process.training_loss(net, x0, y, generator=g_new, label_dropout=label_dropout)
        old = _old_training_loss(process, net, x0, y, generator=g_old, label_dropout=label_dropout)
        assert torch.equal(new, old)
    assert torch.equal(g_new.get_state(), g_old.get_state())


def test_draws_then_loss_from_draws_is_training_loss():
    process = GaussianDiffusion(beta_schedule("linear", 20))
    net = UNet1D(UNetConfig.preset("smoke"), n_features=2, seed=0)
    x0, y = torch.randn(6, 8, 2, generator=gen(2)), torch.zeros(6, dtype=torch.long)
    draws = process.training_draws(x0, generator=gen(7), label_dropout=0.5)
    assert draws.drop is not None and draws.drop.dtype == torch.bool
    split = process.loss_from_draws(net, x0, y, draws, null_label=net.null_label)
    assert torch.equal(split, process.training_loss(net, x0, y, generator=gen(7), label_dropout=0.5))
    assert process.training_draws(x0, generator=gen(7)).drop is None
