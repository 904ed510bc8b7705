"""Tests for tardiff.guidance: G, the influence score, and its exact per-sample x-gradient."""

import numpy as np
import pytest
import torch
from torch import nn

from tardiff.classifiers import ClassifierConfig, build_network, per_sample_loss
from tardiff.errors import ParameterError
from tardiff.guidance import InfluenceGuidance, guidance_vector, influence_scores, trainable_parameters


def tiny_gru(seed=0, dropout=0.0):
    torch.manual_seed(seed)  # test-only: nn init has no generator argument
    cfg = ClassifierConfig.preset("smoke", "gru", hidden=4, dropout=dropout)
    return build_network(cfg, n_features=2).double().eval()


def data(n=6, steps=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, steps, 2, generator=gen, dtype=torch.float64)
    y = torch.arange(n) % 2
    return X, y


def flat_grad(net, x, y):
    params = list(trainable_parameters(net).values())
    grads = torch.autograd.grad(per_sample_loss(net(x), y).sum(), params)
    return torch.cat([g.flatten() for g in grads])


def mean_loss(net, X, y):
    with torch.no_grad():
        return float(per_sample_loss(net(X), y).mean())


def test_guidance_vector_is_mean_of_per_sample_gradients():
    net = tiny_gru()
    X, y = data(n=7)
    G = guidance_vector(net, X, y, batch_size=3)  # uneven batches: 3 + 3 + 1
    expected = torch.stack([flat_grad(net, X[i:i + 1], y[i:i + 1]) for i in range(7)]).mean(0)
    assert G.shape == (sum(p.numel() for p in net.parameters()),) and G.dtype == torch.float64
    torch.testing.assert_close(G, expected, rtol=1e-10, atol=1e-13)


def test_influence_scores_match_one_by_one_gradients():
    net = tiny_gru()
    X, y = data()
    G = guidance_vector(net, *data(n=5, seed=1))
    grads = [flat_grad(net, X[i:i + 1], y[i:i + 1]) for i in range(len(X))]
    dots = np.array([float(G @ g) for g in grads])
    cosines = np.array([float(G @ g / (G.norm() * g.norm())) for g in grads])
    np.testing.assert_allclose(influence_scores(net, G, X, y, batch_size=4), dots, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(influence_scores(net, G, X, y, similarity="cosine"), cosines, rtol=1e-10)


def test_influence_score_of_logistic_regression_closed_form():
    # f(x) = w.x + b: grad_phi l = (sigmoid(f) - y) [x, 1], so s = (sigmoid(f) - y)(G_w . x + G_b)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0)).double()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[0.5, -1.0, 2.0, 0.0]]))
        net[1].bias.fill_(0.25)
    X = torch.tensor([[[1.0, 2.0], [0.0, -1.0]], [[0.5, 0.5], [1.0, 1.0]]], dtype=torch.float64)
    y = torch.tensor([1, 0])
    G = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    f = X.flatten(1) @ net[1].weight[0] + 0.25
    expected = (torch.sigmoid(f) - y) * (X.flatten(1) @ G[:4] + G[4])
    np.testing.assert_allclose(influence_scores(net, G, X, y), expected.detach().numpy(), rtol=1e-12)
    # and its x-gradient: d/dx [(sigmoid(f) - y) (G_w.x + G_b)] = sig'(f) w (G_w.x + G_b) + (sig(f) - y) G_w
    sig = torch.sigmoid(f)
    grad = (sig * (1 - sig) * (X.flatten(1) @ G[:4] + G[4]))[:, None] * net[1].weight + (sig - y)[:, None] * G[:4]
    out = InfluenceGuidance(net, G, guidance_scale=1.0)(X, None, y)
    torch.testing.assert_close(out.flatten(1), grad.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_guidance_gradient_matches_central_differences(similarity):
    net = tiny_gru()
    X, y = data()
    G = guidance_vector(net, *data(n=5, seed=1))
    guide = InfluenceGuidance(net, G, guidance_scale=1.0, similarity=similarity)
    grad_x = guide(X, torch.zeros(len(X), dtype=torch.long), y)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(6):
        i, t, f = int(rng.integers(6)), int(rng.integers(5)), int(rng.integers(2))
        Xp, Xm = X.clone(), X.clone()
        Xp[i, t, f] += eps
        Xm[i, t, f] -= eps
        fd = (influence_scores(net, G, Xp, y, similarity=similarity)[i]
              - influence_scores(net, G, Xm, y, similarity=similarity)[i]) / (2 * eps)
        assert abs(fd - float(grad_x[i, t, f])) <= 1e-4 * max(abs(fd), 1e-3)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_per_sample_gradients_do_not_couple_across_the_batch(similarity):
    net = tiny_gru()
    X, y = data()
    G = guidance_vector(net, X, y)
    guide = InfluenceGuidance(net, G, guidance_scale=3.0, similarity=similarity)
    base = guide(X, None, y)
    X2 = X.clone()
    X2[4] += 2.0
    changed = guide(X2, None, y)
    torch.testing.assert_close(changed[:4], base[:4], rtol=0, atol=1e-6)
    assert (changed[4] - base[4]).abs().max() > 1e-3
    alone = guide(X[1:2], None, y[1:2])  # batch of one gives the same row
    torch.testing.assert_close(alone[0], base[1], rtol=0, atol=1e-10)


def test_sgd_step_on_a_positive_score_candidate_lowers_the_guidance_loss():
    net = tiny_gru()
    Xg, yg = data(n=8, seed=2)
    G = guidance_vector(net, Xg, yg)
    Xc, yc = data(n=6, seed=3)
    scores = influence_scores(net, G, Xc, yc)
    assert scores.max() > 0 and scores.min() < 0
    eta = 1e-4
    for i in (int(np.argmax(scores)), int(np.argmin(scores))):
        before = mean_loss(net, Xg, yg)
        step = tiny_gru()
        grads = torch.autograd.grad(per_sample_loss(step(Xc[i:i + 1]), yc[i:i + 1]).sum(), list(step.parameters()))
        with torch.no_grad():
            for p, g in zip(step.parameters(), grads):
                p -= eta * g  # phi' = phi - eta * grad_phi l(x, y)
        change = mean_loss(step, Xg, yg) - before
        assert np.sign(change) == -np.sign(scores[i])  # s > 0 lowers, s < 0 raises the guidance loss
        assert change == pytest.approx(-eta * scores[i], rel=1e-2)  # first order: -eta * s


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_ascent_along_the_guidance_raises_the_score(similarity):
    net = tiny_gru()
    X, y = data()
    G = guidance_vector(net, *data(n=5, seed=1))
    before = influence_scores(net, G, X, y, similarity=similarity)
    step = InfluenceGuidance(net, G, guidance_scale=1e-2 / float(G.norm()), similarity=similarity)(X, None, y)
    after = influence_scores(net, G, X + step, y, similarity=similarity)
    assert (after > before).all()
    lower = InfluenceGuidance(net, G, guidance_scale=-1e-2 / float(G.norm()), similarity=similarity)(X, None, y)
    assert (influence_scores(net, G, X + lower, y, similarity=similarity) < before).all()


def test_scale_dtype_device_and_evaluation_point():
    net = tiny_gru()
    X, y = data()
    G = guidance_vector(net, X, y)
    unit = InfluenceGuidance(net, G, 1.0)(X, None, y)
    torch.testing.assert_close(InfluenceGuidance(net, G, -2.5)(X, None, y), -2.5 * unit)
    assert torch.equal(InfluenceGuidance(net, G, 0.0)(X, None, y), torch.zeros_like(X))
    out32 = InfluenceGuidance(net, G, 1.0)(X.float(), None, y)
    assert out32.dtype == torch.float32 and out32.shape == X.shape
    x0_hat = X * 0.5
    at_x0 = InfluenceGuidance(net, G, 1.0, evaluate_at="x0_hat")(X, None, y, x0_hat=x0_hat)
    torch.testing.assert_close(at_x0, InfluenceGuidance(net, G, 1.0)(x0_hat, None, y))
    with pytest.raises(ParameterError):
        InfluenceGuidance(net, G, 1.0, evaluate_at="x0_hat")(X, None, y)
    with pytest.raises(ParameterError):
        InfluenceGuidance(net, G[:-1], 1.0)
    with pytest.raises(ParameterError):
        InfluenceGuidance(net, G, 1.0, similarity="angle")
    with pytest.raises(ParameterError):
        InfluenceGuidance(net, torch.zeros_like(G), 1.0, similarity="cosine")
    with pytest.raises(ParameterError):
        guidance_vector(net, X, y, device="cuda")  # the classifier lives on the CPU


def test_guidance_runs_in_eval_mode_and_restores_the_mode():
    net = tiny_gru(dropout=0.5)
    X, y = data()
    G = guidance_vector(net, X, y)
    expected = InfluenceGuidance(net, G, 1.0)(X, None, y)
    net.train()
    G_train = guidance_vector(net, X, y)
    again = InfluenceGuidance(net, G_train, 1.0)(X, None, y)
    assert net.training  # mode restored
    torch.testing.assert_close(G_train, G, rtol=0, atol=0)
    torch.testing.assert_close(again, expected, rtol=0, atol=0)
    assert all(p.grad is None for p in net.parameters())  # no gradients left on the classifier


def test_unit_norm_shift_has_the_stated_length_and_direction():
    """guidance_norm="unit": ||shift|| = w sqrt(1 - abar_t) sqrt(D) per sample, along grad_x s."""
    from tardiff.diffusion import GaussianDiffusion, beta_schedule

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 1), nn.Flatten(0))
    X, y = torch.randn(4, 3, 2), torch.tensor([0, 1, 0, 1])
    G = guidance_vector(net, X, y)
    abar = GaussianDiffusion(beta_schedule("sqrt_linear", 50)).alphas_cumprod
    t = torch.tensor([49, 30, 10, 0])
    raw = InfluenceGuidance(net, G, guidance_scale=1.0)(X, t, y)
    unit = InfluenceGuidance(net, G, guidance_scale=0.3, guidance_norm="unit", alphas_cumprod=abar)(X, t, y)
    expected = 0.3 * torch.sqrt(1 - abar[t].double()) * 6 ** 0.5
    torch.testing.assert_close(unit.flatten(1).norm(dim=1).double(), expected, rtol=1e-5, atol=1e-7)
    cosine = torch.nn.functional.cosine_similarity(unit.flatten(1), raw.flatten(1), dim=1)
    torch.testing.assert_close(cosine, torch.ones(4), rtol=0, atol=1e-5)
    # invariant to G's norm (the minority guidance set inflates it): the raw shift is not
    scaled = InfluenceGuidance(net, 30 * G, guidance_scale=0.3, guidance_norm="unit", alphas_cumprod=abar)(X, t, y)
    torch.testing.assert_close(scaled, unit)
    with pytest.raises(ParameterError, match="alphas_cumprod"):
        InfluenceGuidance(net, G, guidance_scale=1.0, guidance_norm="unit")
