"""Tests of the diffusion core: schedules, the Gaussian process and its samplers, the UNet, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tardiff
from tardiff.diffusion import (GaussianDiffusion, TrainConfig, UNet1D, UNetConfig, beta_schedule, load_denoiser,
                               load_process, train_diffusion)
from tardiff.errors import DataError, ParameterError


def zero_eps(x, t, y):
    return torch.zeros_like(x)


def linear_eps(x, t, y):
    shape = (-1,) + (1,) * (x.dim() - 1)
    return 0.3 * x + 0.05 * y.float().view(shape) + 0.001 * t.float().view(shape)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- schedules
def test_sqrt_linear_endpoints_and_paper_values():
    b = beta_schedule("sqrt_linear", 200)
    assert b.dtype == np.float64 and b.shape == (200,)
    assert b[0] == pytest.approx(5e-4, rel=1e-12) and b[-1] == pytest.approx(0.1, rel=1e-12)
    assert np.sqrt(b[1]) - np.sqrt(b[0]) == pytest.approx((np.sqrt(0.1) - np.sqrt(5e-4)) / 199)


def test_linear_schedule_is_ddpm_rescaled():
    assert beta_schedule("linear", 1000)[[0, -1]] == pytest.approx([1e-4, 0.02])
    assert beta_schedule("linear", 200)[[0, -1]] == pytest.approx([5e-4, 0.1])


@pytest.mark.parametrize("kind", ["linear", "sqrt_linear", "cosine"])
def test_schedules_monotone_and_abar_in_unit_interval(kind):
    b = beta_schedule(kind, 200)
    assert np.all(np.diff(b) >= 0) and np.all((b > 0) & (b < 1))
    p = GaussianDiffusion(b)
    abar = p.alphas_cumprod.double().numpy()
    assert np.all((abar > 0) & (abar < 1)) and np.all(np.diff(abar) < 0)
    assert abar[-1] < 0.01  # x_T is almost pure noise
    # Buffers are float32 copies of float64 computations.
    assert p.alphas_cumprod.dtype == torch.float32
    np.testing.assert_allclose(abar, np.cumprod(1 - b), rtol=1e-6)


def test_cosine_schedule_follows_nichol_dhariwal():
    abar = np.cumprod(1 - beta_schedule("cosine", 100))
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert abar[49] == pytest.approx(f(0.5) / f(0.0), rel=1e-9)


def test_schedule_errors():
    with pytest.raises(ParameterError, match="unknown beta schedule"):
        beta_schedule("quadratic", 10)
    with pytest.raises(ParameterError):
        beta_schedule("linear", 0)
    with pytest.raises(ParameterError):
        GaussianDiffusion(np.array([0.1, 1.5]))
    with pytest.raises(ParameterError):
        GaussianDiffusion(beta_schedule("linear", 10), loss_type="huber")


# ----------------------------------------------------------------------------- forward process and loss
def test_q_sample_closed_form():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    noise = torch.tensor([[0.3, 0.1], [-1.0, 2.0]])
    t = torch.tensor([0, 37])
    abar = np.cumprod(1 - beta_schedule("sqrt_linear", 50))[[0, 37]]
    expected = np.sqrt(abar)[:, None] * x0.numpy() + np.sqrt(1 - abar)[:, None] * noise.numpy()
    np.testing.assert_allclose(p.q_sample(x0, t, noise).numpy(), expected, rtol=1e-6)


def test_training_loss_values():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    x0 = torch.full((16, 5, 2), 1.5)
    y = torch.zeros(16, dtype=torch.long)
    # Draw order: t, then noise.
    g = gen(3)
    torch.randint(0, 50, (16,), generator=g)
    noise = torch.randn(16, 5, 2, generator=g)
    assert p.training_loss(zero_eps, x0, y, generator=gen(3)).item() == pytest.approx((noise ** 2).mean().item())
    p1 = GaussianDiffusion(beta_schedule("sqrt_linear", 50), loss_type="l1")
    assert p1.training_loss(zero_eps, x0, y, generator=gen(3)).item() == pytest.approx(noise.abs().mean().item())

    def oracle(x_t, t, y):  # knows x0, so it can recover the noise exactly
        a = p.alphas_cumprod[t].view(-1, 1, 1)
        return (x_t - a.sqrt() * 1.5) / (1 - a).sqrt()

    assert p.training_loss(oracle, x0, y, generator=gen(3)).item() < 1e-8


def test_label_dropout_replaces_labels_by_null():
    p = GaussianDiffusion(beta_schedule("linear", 20))
    seen = []

    def recorder(x, t, y):
        seen.append(y.clone())
        return torch.zeros_like(x)

    x0, y = torch.zeros(2000, 3), torch.ones(2000, dtype=torch.long)
    p.training_loss(recorder, x0, y, generator=gen(), label_dropout=0.0, null_label=7)
    p.training_loss(recorder, x0, y, generator=gen(), label_dropout=1.0, null_label=7)
    p.training_loss(recorder, x0, y, generator=gen(), label_dropout=0.3, null_label=7)
    assert torch.all(seen[0] == 1) and torch.all(seen[1] == 7)
    assert set(seen[2].unique().tolist()) == {1, 7} and abs((seen[2] == 7).float().mean().item() - 0.3) < 0.04
    with pytest.raises(ParameterError, match="null label"):
        p.training_loss(zero_eps, x0, y, generator=gen(), label_dropout=0.1)


# ----------------------------------------------------------------------------- samplers
def test_timesteps_respacing():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    steps = p.timesteps(20)
    assert len(steps) == 20 and steps[0] == 199 and steps[-1] == 0 and np.all(np.diff(steps) < 0)
    assert p.timesteps(None).tolist() == list(range(199, -1, -1))
    with pytest.raises(ParameterError):
        p.timesteps(201)


def test_progressive_yields_each_step_with_decreasing_t():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    steps = list(p.sample_progressive(linear_eps, (3, 4, 2), [0, 1, 0], n_steps=20, generator=gen()))
    assert len(steps) == 20
    assert [s.t for s in steps] == p.timesteps(20).tolist()
    assert all(s.x.shape == (3, 4, 2) and s.x0_hat.shape == (3, 4, 2) for s in steps)
    final = p.sample(linear_eps, (3, 4, 2), [0, 1, 0], n_steps=20, generator=gen())
    assert torch.equal(final, steps[-1].x)


def test_fixed_expected_numbers():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    x = p.sample(linear_eps, (2, 3), [0, 1], method="ddim", n_steps=5, eta=1.0, generator=gen())
    np.testing.assert_allclose(x.numpy(), [[1.751258, 0.248184, -3.919114], [0.581966, -2.144468, -1.714198]],
                               atol=1e-5)
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 20))
    x = p.sample(linear_eps, (2, 3), [0, 1], method="ddpm", n_steps=None, generator=gen())
    np.testing.assert_allclose(x.numpy(), [[0.672576, -0.204704, -2.587435], [0.713263, -1.327860, -0.725175]],
                               atol=1e-5)
    x = p.sample(linear_eps, (2, 3), [0, 1], method="ddpm", n_steps=4, generator=gen())
    np.testing.assert_allclose(x.numpy(), [[1.512128, 0.171723, -2.662981], [0.383349, -1.481833, -1.333453]],
                               atol=1e-5)


def test_ddim_eta0_deterministic_and_closed_form():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    a = p.sample(linear_eps, (4, 6), 1, eta=0.0, generator=gen(5))
    b = p.sample(linear_eps, (4, 6), 1, eta=0.0, generator=gen(5))
    assert torch.equal(a, b)
    # Only the initial noise is random: given x_T, the result ignores the generator.
    x_T = torch.randn(4, 6, generator=gen(9))
    c = p.sample(linear_eps, (4, 6), 1, eta=0.0, x_T=x_T, generator=None)
    d = p.sample(linear_eps, (4, 6), 1, eta=0.0, x_T=x_T, generator=gen(123))
    assert torch.equal(c, d)
    # With eps = 0 each DDIM step scales by sqrt(abar_s / abar_t); the product telescopes
    # to x_T / sqrt(abar_{T-1}) (the last step goes to clean data, abar = 1).
    abar = np.cumprod(1 - beta_schedule("sqrt_linear", 200))
    out = p.sample(zero_eps, (4, 6), 0, eta=0.0, n_steps=7, x_T=x_T)
    np.testing.assert_allclose(out.numpy(), x_T.numpy() / np.sqrt(abar[-1]), rtol=1e-5)


def test_stochastic_sampling_reproducible_and_seed_dependent():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    for method in ("ddim", "ddpm"):
        a = p.sample(linear_eps, (3, 5), 0, method=method, generator=gen(1))
        b = p.sample(linear_eps, (3, 5), 0, method=method, generator=gen(1))
        c = p.sample(linear_eps, (3, 5), 0, method=method, generator=gen(2))
        assert torch.equal(a, b) and not torch.allclose(a, c)


def test_ddim_eta1_equals_respaced_ddpm():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    a = p.sample(linear_eps, (3, 5), [0, 1, 1], method="ddim", eta=1.0, n_steps=10, generator=gen(4))
    b = p.sample(linear_eps, (3, 5), [0, 1, 1], method="ddpm", n_steps=10, generator=gen(4))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_cond_fn_is_added_to_the_mean_and_guide_last_k():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    abar = np.cumprod(1 - beta_schedule("sqrt_linear", 50))
    steps = p.timesteps(4)  # [49, 33, 16, 0]
    x_T = torch.randn(2, 3, generator=gen(2))
    calls = []

    def constant(x_t, t, y, x0_hat=None):
        assert torch.is_grad_enabled() and not x_t.requires_grad and x0_hat is not None
        calls.append(int(t[0]))
        return torch.full_like(x_t, 0.25)

    base = x_T.double().numpy() / np.sqrt(abar[steps[0]])
    # A shift c added at the step that lands on level s is carried to the end scaled by 1/sqrt(abar_s).
    landing = [abar[s] for s in steps[1:]] + [1.0]
    out = p.sample(zero_eps, (2, 3), 0, eta=0.0, n_steps=4, x_T=x_T, cond_fn=constant)
    np.testing.assert_allclose(out.numpy(), base + 0.25 * sum(1 / np.sqrt(a) for a in landing), rtol=1e-5)
    assert calls == steps.tolist()

    calls.clear()
    out = p.sample(zero_eps, (2, 3), 0, eta=0.0, n_steps=4, x_T=x_T, cond_fn=constant, guide_last_k=2)
    assert calls == steps[-2:].tolist()
    np.testing.assert_allclose(out.numpy(), base + 0.25 * sum(1 / np.sqrt(a) for a in landing[-2:]), rtol=1e-5)
    # One step straight to clean data: the shift is exactly the guidance.
    one = p.sample(zero_eps, (2, 3), 0, method="ddpm", n_steps=1, x_T=x_T, cond_fn=constant)
    np.testing.assert_allclose(one.numpy(), base + 0.25, rtol=1e-5)


def test_classifier_free_guidance_mixing():
    p = GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    grad_modes = []

    def label_model(x, t, y):  # eps = 3 for a real label, 1 for the null label 2
        grad_modes.append(torch.is_grad_enabled())
        return torch.where(y == 2, 1.0, 3.0).view(-1, 1).expand_as(x).clone()

    x_T = torch.randn(4, 3, generator=gen(1))
    step = next(p.sample_progressive(label_model, (4, 3), 1, x_T=x_T, cfg_scale=2.0, null_label=2))
    abar_T = p.alphas_cumprod[-1].double()
    eps = (1 + 2.0) * 3.0 - 2.0 * 1.0  # (1 + w) eps(x, y) - w eps(x, null)
    expected = (x_T.double() - (1 - abar_T).sqrt() * eps) / abar_T.sqrt()
    np.testing.assert_allclose(step.x0_hat.numpy(), expected.numpy(), rtol=1e-5)
    assert grad_modes and not any(grad_modes)
    with pytest.raises(ParameterError, match="null label"):
        p.sample(label_model, (4, 3), 1, cfg_scale=1.0)


def test_sampler_errors():
    p = GaussianDiffusion(beta_schedule("linear", 20))
    with pytest.raises(ParameterError):
        p.sample(zero_eps, (2, 3), 0, method="euler")
    with pytest.raises(ParameterError):
        p.sample(zero_eps, (2, 3), [0, 1, 1])
    with pytest.raises(ParameterError):
        p.sample(zero_eps, (2, 3), 0, n_steps=50)


# ----------------------------------------------------------------------------- UNet
def _randomise(model, seed=0):
    # Zero-initialised output layers hide the conditioning at init; give every weight a value.
    g = gen(seed)
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(0.2 * torch.randn(prm.shape, generator=g))
    return model


@pytest.mark.parametrize("T,F", [(24, 7), (48, 37), (7, 3), (1, 2)])
def test_unet_shapes_any_length_and_features(T, F):
    net = _randomise(UNet1D(UNetConfig.preset("smoke"), n_features=F)).eval()
    x = torch.randn(3, T, F, generator=gen())
    t = torch.tensor([0, 5, 199])
    with torch.no_grad():
        out0 = net(x, t, torch.tensor([0, 0, 0]))
        out1 = net(x, t, torch.tensor([1, 1, 1]))
    assert out0.shape == (3, T, F) and torch.isfinite(out0).all()
    assert (out0 - out1).abs().max() > 1e-4  # the label matters


@pytest.mark.parametrize("config", [UNetConfig.preset("cpu"), UNetConfig.preset("paper"),
                                    UNetConfig(base_channels=12, channel_mults=(1, 3), attention_levels=(1,))])
def test_unet_configs_build_and_run(config):
    net = _randomise(UNet1D(config, n_features=7)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 24, 7, generator=gen()), torch.tensor([3, 100]), torch.tensor([0, 1]))
        null = net(torch.randn(2, 24, 7, generator=gen()), torch.tensor([3, 100]), None)
    assert out.shape == null.shape == (2, 24, 7) and not torch.allclose(out, null)
    assert net.null_label == config.num_classes == 2


def test_unet_config_validation():
    with pytest.raises(ParameterError, match="attention_levels"):
        UNetConfig(channel_mults=(1, 2), attention_levels=(2,))
    with pytest.raises(ParameterError, match="attention_heads"):
        UNetConfig(base_channels=6, channel_mults=(1,), attention_levels=(0,), attention_heads=4)
    with pytest.raises(DataError):
        UNet1D(UNetConfig.preset("smoke"), n_features=3)(torch.zeros(1, 8, 4), torch.tensor([0]), torch.tensor([0]))


def test_level_skip_presets_and_validation():
    assert UNetConfig.preset("cpu").level_skip and UNetConfig.preset("smoke").level_skip
    assert not UNetConfig.preset("paper").level_skip and not UNetConfig().level_skip  # TarDiff's UNet
    with pytest.raises(ParameterError, match="level_skip"):
        UNetConfig(level_skip="yes")
    assert UNet1D(UNetConfig.preset("paper", base_channels=8, norm_groups=4), 3).skip_gate is None


def test_level_skip_starts_as_the_plain_unet_and_adds_gated_level_and_deviations():
    config = UNetConfig.preset("smoke")
    plain = _randomise(UNet1D(UNetConfig.preset("smoke", level_skip=False), n_features=3, seed=1)).eval()
    skip = UNet1D(config, n_features=3, seed=1).eval()
    # Built last and zero-initialised: the other weights are those of the plain UNet of the same seed.
    fresh = UNet1D(UNetConfig.preset("smoke", level_skip=False), n_features=3, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 [v for k, v in skip.state_dict().items() if "skip_gate" not in k]))
    missing, unexpected = skip.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"skip_gate.weight", "skip_gate.bias"} and not unexpected
    x = torch.randn(2, 10, 3, generator=gen()) + torch.tensor([1.0, -2.0, 0.5])
    t, y = torch.tensor([199, 7]), torch.tensor([0, 1])
    with torch.no_grad():
        base = plain(x, t, y)
        assert torch.equal(skip(x, t, y), base)  # zero gates: the plain UNet
        level = x.mean(dim=1, keepdim=True)
        skip.skip_gate.bias[:3] = 1.0  # a = 1: the deviations from each stay's level pass through
        assert torch.allclose(skip(x, t, y) - base, x - level, atol=1e-5)
        skip.skip_gate.bias[:3], skip.skip_gate.bias[3:] = 0.0, 2.0  # b = 2: twice the level
        assert torch.allclose(skip(x, t, y) - base, 2 * level.expand_as(x), atol=1e-5)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def toy_two_modes():
    """Constant sequences at -2 (label 0) and +2 (label 1), trained with label dropout."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 128)
    X = (np.where(y == 0, -2.0, 2.0)[:, None, None] + 0.1 * rng.standard_normal((256, 8, 1))).astype(np.float32)
    process = GaussianDiffusion(beta_schedule("sqrt_linear", 200))
    config = TrainConfig(iterations=300, batch_size=64, lr=3e-3, warmup=20, ema_decay=0.99, label_dropout=0.2,
                         checkpoint_every=0)
    result = train_diffusion(UNet1D(UNetConfig.preset("smoke"), 1, seed=0), process, X, y, config, seed=0, progress=False)
    return process, result


def test_trained_model_produces_both_modes(toy_two_modes):
    process, result = toy_two_modes
    assert np.mean(result.losses[-30:]) < 0.5 * np.mean(result.losses[:30])
    g = gen(1)
    means = {label: process.sample(result.model, (64, 8, 1), label, generator=g).mean(dim=(1, 2))
             for label in (0, 1, 2)}
    assert (means[0] < 0).float().mean() > 0.9 and (means[1] > 0).float().mean() > 0.9
    assert abs(means[0].median().item() + 2) < 0.5 and abs(means[1].median().item() - 2) < 0.5
    unconditional = (means[2] > 0).float().mean().item()  # the null label gives both modes
    assert 0.2 < unconditional < 0.8
    assert (means[2].abs() - 2).abs().median() < 0.5


def test_train_returns_ema_model_in_eval_mode(toy_two_modes):
    _, result = toy_two_modes
    assert not result.model.training and len(result.losses) == 300
    assert all(not prm.requires_grad for prm in result.model.parameters())


def _small_run(config, path=None, process=None):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 6, 2)).astype(np.float32)
    y = (rng.random(40) < 0.5).astype(np.int64)
    net = UNet1D(UNetConfig(base_channels=8, channel_mults=(1, 2), n_res_blocks=1, attention_levels=(1,),
                            attention_heads=2, norm_groups=4, embed_mult=2, dropout=0.1), n_features=2, seed=0)
    process = process or GaussianDiffusion(beta_schedule("sqrt_linear", 50))
    return train_diffusion(net, process, X, y, config, seed=3, checkpoint_path=path, progress=False)


class _Interrupt(Exception):
    pass


class _InterruptingDiffusion(GaussianDiffusion):
    """Raises on the ``stop_at``-th training step, like a killed job."""

    def __init__(self, betas, stop_at):
        super().__init__(betas)
        self.calls, self.stop_at = 0, stop_at

    def training_loss(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.stop_at:
            raise _Interrupt
        return super().training_loss(*args, **kwargs)


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    config = TrainConfig(iterations=12, batch_size=8, lr=1e-2, warmup=3, ema_decay=0.9, label_dropout=0.2,
                         checkpoint_every=4)
    full = _small_run(config)
    path = tmp_path / "run.pt"
    with pytest.raises(_Interrupt):
        _small_run(config, path, _InterruptingDiffusion(beta_schedule("sqrt_linear", 50), stop_at=11))
    assert torch.load(path, weights_only=True)["step"] == 8
    resumed = _small_run(config, path)
    assert resumed.losses == full.losses
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_contents_and_round_trip(tmp_path):
    path = tmp_path / "unet.pt"
    config = TrainConfig(iterations=5, batch_size=4, warmup=1, checkpoint_every=0)
    result = _small_run(config, path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["version"] == tardiff.__version__ and ckpt["step"] == 5
    assert ckpt["train_config"]["iterations"] == 5 and ckpt["model_spec"]["config"]["base_channels"] == 8
    assert {"model", "ema", "optimizer", "generator_state", "losses"} <= set(ckpt)
    model = load_denoiser(path)
    x, t, y = torch.randn(3, 6, 2, generator=gen()), torch.tensor([0, 10, 49]), torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(model(x, t, y), result.model(x, t, y))
    assert not model.training
    assert torch.equal(load_process(path).betas, GaussianDiffusion(beta_schedule("sqrt_linear", 50)).betas)
    # A checkpoint from another configuration is refused, not silently resumed.
    with pytest.raises(ParameterError, match="another model or training configuration"):
        _small_run(TrainConfig(iterations=5, batch_size=4, warmup=2, checkpoint_every=0), path)


def test_training_input_errors():
    net = UNet1D(UNetConfig.preset("smoke"), n_features=1)
    process = GaussianDiffusion(beta_schedule("linear", 10))
    X = np.zeros((4, 8, 1), dtype=np.float32)
    with pytest.raises(DataError, match="NaN"):
        train_diffusion(net, process, np.full_like(X, np.nan), np.zeros(4), TrainConfig.preset("smoke"), progress=False)
    with pytest.raises(DataError, match="labels"):
        train_diffusion(net, process, X, np.array([0, 1, 2, 5]), TrainConfig.preset("smoke"), progress=False)
    with pytest.raises(DataError):
        train_diffusion(net, process, X, np.zeros(3), TrainConfig.preset("smoke"), progress=False)
    with pytest.raises(ParameterError):
        TrainConfig(label_dropout=1.0)


def test_unet_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b = UNet1D(UNetConfig.preset("smoke"), 3, seed=4), UNet1D(UNetConfig.preset("smoke"), 3, seed=4)
    c = UNet1D(UNetConfig.preset("smoke"), 3, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
