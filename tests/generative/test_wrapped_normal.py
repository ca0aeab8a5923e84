"""Wrapped-normal coordinate diffusion on the torus."""
import math

import pytest
import torch

from topodiff.generative.corruption.wrapped_normal import (WrappedNormalVE, score_norm, wrapped_normal_log_density,
                                                           wrapped_normal_score)


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.3, 0.5, 1.0])
def test_wrapped_normal_score_matches_autograd(sigma):
    x = torch.linspace(-1.7, 1.7, 101, dtype=torch.float64, requires_grad=True)
    logp = wrapped_normal_log_density(x, torch.tensor(sigma, dtype=torch.float64), n_images=8)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    torch.testing.assert_close(wrapped_normal_score(x.detach(), torch.tensor(sigma, dtype=torch.float64), n_images=8),
                               grad, atol=1e-8, rtol=1e-8)


def test_density_normalised_and_periodic():
    sigma = torch.tensor(0.37, dtype=torch.float64)
    x = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000 - 0.5
    assert torch.exp(wrapped_normal_log_density(x, sigma)).mean().item() == pytest.approx(1.0, abs=1e-9)
    torch.testing.assert_close(wrapped_normal_score(x + 1.0, sigma), wrapped_normal_score(x, sigma))


def test_score_norm_limits_and_monte_carlo():
    # small σ: λ → 1/σ² (Gaussian); large σ: the density flattens and λ → 0
    assert score_norm(torch.tensor(0.02, dtype=torch.float64)).item() == pytest.approx(1 / 0.02 ** 2, rel=1e-3)
    assert score_norm(torch.tensor(1.0, dtype=torch.float64)).item() < 1e-6
    sigma = 0.3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400000, generator=g, dtype=torch.float64) * sigma
    mc = (wrapped_normal_score(x, torch.tensor(sigma, dtype=torch.float64)) ** 2).mean().item()
    assert score_norm(torch.tensor(sigma, dtype=torch.float64)).item() == pytest.approx(mc, rel=0.02)


def test_table_interpolation_accurate():
    wn = WrappedNormalVE(0.005, 0.5)
    s = torch.exp(torch.linspace(math.log(0.005), math.log(0.5), 333, dtype=torch.float64))
    rel = (wn.norm(s) - score_norm(s)) / score_norm(s)
    assert rel.abs().max().item() < 1e-4


def test_q_sample_target_is_normalised_score():
    wn = WrappedNormalVE(0.005, 0.5)
    g = torch.Generator().manual_seed(1)
    f0 = torch.rand(2000, 3, generator=g)
    t = torch.rand(2000, generator=g)
    ft, target = wn.q_sample(f0, t, g)
    assert bool(((ft >= 0) & (ft < 1)).all())
    # unit scale at every noise level by construction of λ(σ)
    assert (target ** 2).mean().item() == pytest.approx(1.0, rel=0.1)
    # at small noise the score points back to the clean coordinates
    small = t < 0.2
    d = ft[small] - f0[small]
    d = d - torch.round(d)
    assert (torch.sign(target[small]) == -torch.sign(d)).float().mean().item() > 0.99


def test_predictor_steps_denoise_a_point_mass():
    """Reverse diffusion with the exact score of a point mass at 0.3 concentrates the samples there."""
    wn = WrappedNormalVE(0.005, 0.5)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4000, 3, generator=g, dtype=torch.float64)
    ts = torch.linspace(1, 0, 101, dtype=torch.float64)
    for i in range(100):
        st, ss = wn.sigma(ts[i]).expand(4000), wn.sigma(ts[i + 1]).expand(4000)
        score = wrapped_normal_score(x - 0.3, st[:, None])
        x = wn.predictor_step(x, score, st, ss, g)
    d = x - 0.3
    d = d - torch.round(d)
    assert d.abs().max().item() < 0.05
    assert d.std().item() == pytest.approx(0.005, rel=0.2)


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_corrector_noise_scale_sets_the_temperature(scale):
    """Langevin steps with the score of a narrow wrapped normal (σ = 0.04 at 0.3) and the noise
    multiplied by ``scale`` settle at the spread ``scale · σ`` (the chain targets ``p^(1/scale²)``)."""
    wn = WrappedNormalVE(0.005, 0.5)
    g = torch.Generator().manual_seed(3)
    sigma = 0.04
    x = torch.remainder(0.3 + sigma * torch.randn(4000, 3, generator=g, dtype=torch.float64), 1.0)
    sig_t = torch.full((4000,), 0.005, dtype=torch.float64)   # step = step_lr (σ_t = σ_min)
    for _ in range(600):
        score = wrapped_normal_score(x - 0.3, torch.full((4000, 1), sigma, dtype=torch.float64))
        x = wn.corrector_step(x, score, sig_t, 2e-5, g, noise_scale=scale)
    d = x - 0.3
    d = d - torch.round(d)
    assert d.std().item() == pytest.approx(scale * sigma, rel=0.05)


def test_zero_noise_scales_make_the_steps_deterministic():
    wn = WrappedNormalVE(0.005, 0.5)
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    st, ss = torch.full((50,), 0.2, dtype=torch.float64), torch.full((50,), 0.1, dtype=torch.float64)
    outs = [wn.predictor_step(x, score, st, ss, torch.Generator().manual_seed(k), noise_scale=0.0) for k in (2, 3)]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], torch.remainder(x + (0.2 ** 2 - 0.1 ** 2) * score, 1.0))
    outs = [wn.corrector_step(x, score, st, 3e-5, torch.Generator().manual_seed(k), noise_scale=0.0) for k in (2, 3)]
    torch.testing.assert_close(outs[0], outs[1])
    noisy = [wn.corrector_step(x, score, st, 3e-5, torch.Generator().manual_seed(k)) for k in (2, 3)]
    assert not torch.allclose(noisy[0], noisy[1])
