"""Kernel budgets of the GPU path, checked on the CPU and the meta device (issue 23).

Operator counts are aten operators seen by a dispatch mode, views excluded
(:func:`tardiff.benchmark.count_ops`); FLOPs come from ``torch.utils.flop_counter``. Both are
counted on the meta device, so the paper-scale network costs no arithmetic here. The exactness
tests compare against a frozen copy of the network's forward as it was before the kernels were
cut (2494b65): per-block embedding layers, attention through ``scaled_dot_product_attention``,
the input padded and transposed.
"""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch
import torch.nn.functional as F

from tardiff.benchmark import count_ops, unet_flops, unet_ops
from tardiff.diffusion import UNet1D, UNetConfig
from tardiff.diffusion.unet import AttentionBlock, ResBlock, timestep_embedding


# ------------------------------------------------------------------ the frozen reference (2494b65)
def _ref_resblock(block: ResBlock, x, emb):
    h = block.conv1(F.silu(block.norm1(x)))
    scale, shift = block.emb(F.silu(emb))[:, :, None].chunk(2, dim=1)
    h = block.norm2(h) * (1 + scale) + shift
    h = block.conv2(block.drop(F.silu(h)))
    return block.skip(x) + h


def _ref_attention(block: AttentionBlock, x):
    b, c, length = x.shape
    q, k, v = block.qkv(block.norm(x)).reshape(b, 3, block.heads, c // block.heads, length).transpose(-1, -2).unbind(1)
    h = F.scaled_dot_product_attention(q, k, v)
    return x + block.proj(h.transpose(-1, -2).reshape(b, c, length))


def _ref_run(layers, h, emb):
    for layer in layers:
        if isinstance(layer, ResBlock):
            h = _ref_resblock(layer, h, emb)
        elif isinstance(layer, AttentionBlock):
            h = _ref_attention(layer, h)
        else:
            h = layer(h)
    return h


def reference_forward(net: UNet1D, x, t, y):
    """UNet1D.forward as of 2494b65, reading the same parameters."""
    batch, length, _ = x.shape
    emb = net.time_embed(timestep_embedding(t, net.config.base_channels).to(x.dtype)) + net.label_embed(y)
    padded = -(-length // net._multiple) * net._multiple
    h = net.input_conv(F.pad(x.transpose(1, 2), (0, padded - length)))
    skips = [h]
    for layers in net.down:
        h = _ref_run(layers, h, emb)
        skips.append(h)
    h = _ref_run(net.middle, h, emb)
    for layers in net.up:
        h = _ref_run(layers, torch.cat([h, skips.pop()], dim=1), emb)
    eps = net.out(h)[:, :, :length].transpose(1, 2)
    if net.skip_gate is not None:
        a, b = net.skip_gate(F.silu(emb))[:, None, :].chunk(2, dim=-1)
        level = x.mean(dim=1, keepdim=True)
        eps = eps + a * (x - level) + b * level
    return eps


def _randomised(scale: str, n_features: int, spread: float | None = None) -> UNet1D:
    """A UNet whose zero-initialised layers are drawn small (N(0, 0.02)), so that every path counts;
    with ``spread``, every parameter is drawn from N(0, spread) instead (a harder case)."""
    net = UNet1D(UNetConfig.preset(scale), n_features, seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            if spread is not None:
                p.copy_(torch.randn(p.shape, generator=gen) * spread)
            elif not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return net


def _inputs(length, requires_grad=False):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, length, 7, generator=gen).requires_grad_(requires_grad)
    return x, torch.tensor([0, 57, 199]), torch.tensor([0, 1, 2])


@pytest.mark.parametrize("scale, length", [("smoke", 48), ("smoke", 13), ("cpu", 48), ("cpu", 21), ("paper", 48)])
def test_unet_matches_the_frozen_reference(scale, length):
    net = _randomised(scale, 7)
    x, t, y = _inputs(length, requires_grad=True)
    out = net(x, t, y)
    ref = reference_forward(net, x, t, y)
    assert (out - ref).abs().max().item() <= 1e-6
    # and the gradients, of the input and of every parameter
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    got = torch.autograd.grad(out, [x, *net.parameters()], cot)
    want = torch.autograd.grad(ref, [x, *net.parameters()], cot)
    for g, w in zip(got, want):
        assert (g - w).abs().max().item() <= 1e-5 * max(1.0, w.abs().max().item())


def test_unet_rounding_no_worse_than_the_reference_with_every_weight_random():
    """With every weight N(0, 0.2) both forwards sit ~2e-6 from the float64 result; the new one is no further off."""
    net = _randomised("paper", 7, spread=0.2)
    x, t, y = _inputs(48)
    with torch.no_grad():
        out, ref = net(x, t, y), reference_forward(net, x, t, y)
        truth = reference_forward(copy.deepcopy(net).double(), x.double(), t, y)
    assert (out.double() - truth).abs().max() <= 1.5 * (ref.double() - truth).abs().max() + 1e-7


@pytest.mark.parametrize("scale, n_keys, digest", [("paper", 337, "023c13e4511db692"), ("cpu", 169, "7767a679f14b756a"),
                                                   ("smoke", 131, "7e7728aaa5a83f7d")])
def test_state_dict_names_and_shapes_unchanged(scale, n_keys, digest):
    """Checkpoints written before the kernel cuts load unchanged (names and shapes as at 2494b65)."""
    sd = UNet1D(UNetConfig.preset(scale), 37).state_dict()
    got = hashlib.sha256(repr([(k, tuple(v.shape)) for k, v in sd.items()]).encode()).hexdigest()[:16]
    assert (len(sd), got) == (n_keys, digest)


def test_resblock_alone_matches_its_reference():
    block = ResBlock(8, 16, 12, 0.0, 4)
    with torch.no_grad():
        for p in block.parameters():
            p.normal_()
    x, emb = torch.randn(2, 8, 6), torch.randn(2, 12)
    assert torch.allclose(block(x, emb), _ref_resblock(block, x, emb), atol=1e-5)


# ------------------------------------------------------------------ budgets on the meta device
def test_paper_unet_forward_backward_operator_budget():
    """Issue 23: <= 700 aten operators per forward and backward (1,058 at 2494b65 by this count)."""
    fwd, fwd_bwd = unet_ops("paper", batch=256, device="meta")
    assert fwd_bwd <= 700, fwd_bwd
    assert fwd <= 330, fwd


def test_paper_unet_flops_unchanged():
    """The same arithmetic as before: 188.96 GFLOP per forward and backward at batch 256, 48 x 37."""
    assert unet_flops("paper", batch=256, device="meta") == 188_960_210_944


def test_count_ops_excludes_views():
    x = torch.zeros(4, 6, device="meta")
    assert count_ops(lambda: x.view(2, 12).t().sum(0) + 1) == 2


# ------------------------------------------------------------------ the guidance's hand-derived gradient
def _gru_guidance(dtype, **overrides):
    from tardiff.classifiers import ClassifierConfig, build_network
    from tardiff.guidance import InfluenceGuidance, guidance_vector

    torch.manual_seed(0)
    net = build_network(ClassifierConfig.preset("smoke", "gru", hidden=8, **overrides), 5).to(dtype).eval()
    gen = torch.Generator().manual_seed(4)
    X = torch.randn(6, 11, 5, generator=gen, dtype=dtype)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    return InfluenceGuidance(net, guidance_vector(net, X, y), 1.0), X, y


@pytest.mark.parametrize("overrides", [{}, {"pooling": "mean"}, {"bidirectional": False}, {"layers": 1}, {"layers": 3}])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_gru_guidance_gradient_matches_the_double_backward(overrides, dtype, tol):
    """The hand-derived influence gradient equals today's double backward (relative error <= 1e-5 in float32)."""
    cond_fn, X, y = _gru_guidance(dtype, **overrides)
    fast, reference = cond_fn.grad_score(X, y), cond_fn.grad_score_autograd(X, y)
    assert ((fast - reference).norm() / reference.norm()).item() <= tol


def test_gru_guidance_gradient_against_finite_differences():
    from tardiff.guidance import influence_scores

    cond_fn, X, y = _gru_guidance(torch.float64)
    grad = cond_fn.grad_score(X, y)
    gen = torch.Generator().manual_seed(5)
    direction = torch.randn(X.shape, generator=gen, dtype=torch.float64)
    h = 1e-5
    total = lambda Z: influence_scores(cond_fn.module, cond_fn.G, Z, y).sum()  # noqa: E731
    numeric = (total(X + h * direction) - total(X - h * direction)) / (2 * h)
    assert abs(numeric - (grad * direction).sum().item()) <= 1e-6 * max(1.0, abs(numeric))


def test_guided_step_operator_budget():
    """Issue 23: one guided DDIM step (the UNet's forward plus the influence gradient of the paper GRU,
    hidden 256, two bidirectional layers, 48 steps) at batch 256 takes <= 2,500 operators (9,932 before)."""
    from tardiff.benchmark import sampling_step_ops

    assert sampling_step_ops("paper", batch=256, guided=True, device="meta") <= 2500


# ------------------------------------------------------------------ no host syncs in the loops (meta device)
def test_training_step_has_no_host_sync_on_meta():
    """Loss, backward, clipping and the EMA of one step on the meta device: a host read would raise there,
    and none is dispatched (AdamW is left out: its CPU form reads its step count; CUDA runs it fused)."""
    from tardiff.diffusion import GaussianDiffusion, beta_schedule
    from tardiff.diffusion.training import _ema_decay, _ema_update, TrainConfig

    with torch.device("meta"):
        model = UNet1D(UNetConfig.preset("smoke"), 5)
        x0, y = torch.randn(8, 12, 5), torch.randint(0, 2, (8,))
    ema = copy.deepcopy(model)
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 50)).to("meta")
    step = torch.zeros((), device="meta")

    def train_step():
        loss = process.training_loss(model, x0, y, label_dropout=0.1, null_label=model.null_label)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        _ema_update(ema, model, _ema_decay(TrainConfig(), step))

    train_step()  # warm-up: the UNet caches its gather index per batch size (one copy to the device)
    counts = count_ops(lambda: [train_step() for _ in range(3)], by_name=True)
    assert counts["aten._local_scalar_dense"] == 0 and counts["device_copy"] == 0


def test_guided_sampling_has_no_host_sync_on_meta():
    from tardiff.benchmark import _guided_setup

    model, process, cond_fn, x, y = _guided_setup("smoke", 4, "meta")
    model(x, torch.zeros(4, dtype=torch.long, device="meta"), y)  # warm-up (the cached gather index)
    counts = count_ops(lambda: process.sample(model, tuple(x.shape), y, n_steps=3, cond_fn=cond_fn, x_T=x,
                                              device="meta"), by_name=True)
    assert counts["aten._local_scalar_dense"] == 0 and counts["device_copy"] == 0


def test_training_losses_read_back_in_batches_match_every_step(monkeypatch):
    """Losses are read every LOSS_READ_EVERY steps; the list is the same as reading each step."""
    import numpy as np

    from tardiff.diffusion import GaussianDiffusion, TrainConfig, beta_schedule, train_diffusion
    from tardiff.diffusion import training

    X = np.random.default_rng(0).normal(size=(16, 8, 2)).astype(np.float32)
    y = np.arange(16) % 2
    runs = []
    for every in (1, 7):
        monkeypatch.setattr(training, "LOSS_READ_EVERY", every)
        net = UNet1D(UNetConfig.preset("smoke"), 2, seed=0)
        result = train_diffusion(net, GaussianDiffusion(beta_schedule("sqrt_linear", 20)), X, y,
                                 TrainConfig.preset("smoke", iterations=20), progress=False)
        runs.append(result.losses)
    assert len(runs[0]) == 20 and runs[0] == runs[1]
