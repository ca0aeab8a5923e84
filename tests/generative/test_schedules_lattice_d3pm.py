"""Noise schedules, lattice VP diffusion and masked species diffusion."""
import pytest
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.corruption import LatticeVP, MaskedD3PM, get_schedule
from topodiff.generative.corruption.schedules import GeometricSigma

T = torch.linspace(0, 1, 101)


@pytest.mark.parametrize("kind,name", [("alpha_bar", "cosine"), ("alpha_bar", "linear"), ("mask", "linear"), ("mask", "cosine")])
def test_schedules_monotone_with_endpoints(kind, name):
    f = get_schedule(kind, name)(T)
    if kind == "alpha_bar":
        assert bool((f[1:] <= f[:-1]).all()) and f[0] > 0.999 and f[-1] < 0.01
    else:
        assert bool((f[1:] >= f[:-1]).all()) and f[0] == 0 and f[-1] == pytest.approx(1.0)


def test_geometric_sigma_and_unknown_schedule():
    s = GeometricSigma(0.01, 1.0)
    assert s(torch.tensor(0.5)).item() == pytest.approx(0.1)
    with pytest.raises(TopodiffInputError):
        get_schedule("mask", "nope")


def test_lattice_latent_roundtrip_and_prior_volume():
    vp = LatticeVP("cosine", 0.3)
    n = torch.tensor([5, 10, 20])
    s = vp.scale(n, 12.0)
    torch.testing.assert_close(s ** 3, n.float() * 12.0)
    lat = torch.randn(3, 3, 3) + 4 * torch.eye(3)
    torch.testing.assert_close(vp.from_latent(vp.to_latent(lat, s), s), lat)
    # the prior mean (latent 0) is a cube of volume n·v
    cube = vp.from_latent(torch.zeros(3, 3, 3), s)
    torch.testing.assert_close(torch.linalg.det(cube), n.float() * 12.0)


def test_lattice_forward_marginals():
    vp = LatticeVP("cosine", 0.3)
    g = torch.Generator().manual_seed(0)
    y0 = torch.full((20000, 3, 3), 2.0)
    yt, _ = vp.q_sample(y0, torch.ones(20000), g)
    assert yt.mean().item() == pytest.approx(0.0, abs=0.05) and yt.std().item() == pytest.approx(1.0, abs=0.02)
    y_small, _ = vp.q_sample(y0, torch.full((20000,), 1e-3), g)
    assert (y_small - y0).abs().max().item() < 0.05


def test_lattice_posterior_is_exact_ddpm():
    """Posterior to s = 0 returns ŷ0; its mean/variance for s > 0 match the Gaussian conditional."""
    vp = LatticeVP("cosine", 0.3)
    g = torch.Generator().manual_seed(1)
    y0 = torch.randn(4000, 3, 3, generator=g)
    t, s = torch.full((4000,), 0.7), torch.full((4000,), 0.4)
    yt, _ = vp.q_sample(y0, t, g)
    torch.testing.assert_close(vp.posterior_step(yt, y0, t, torch.zeros(4000), g), y0)
    ys = vp.posterior_step(yt, y0, t, s, g)
    # marginally over y_t, y_s | y0 must be q(y_s | y0)
    ab_s = vp.alpha_bar(s[0]).item()
    resid = ys - ab_s ** 0.5 * y0
    assert resid.mean().item() == pytest.approx(0.0, abs=0.02)
    assert resid.var().item() == pytest.approx(1 - ab_s, rel=0.05)


def test_masked_d3pm_forward_and_reverse():
    d3 = MaskedD3PM("linear")
    g = torch.Generator().manual_seed(0)
    z = torch.randint(1, 90, (20000,), generator=g)
    zt, masked = d3.q_sample(z, torch.full((20000,), 0.3), g)
    assert masked.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert bool((zt[~masked] == z[~masked]).all()) and bool((zt[masked] == 0).all())
    logits = torch.full((20000, 101), float("-inf"))
    logits[:, 26] = 0.0  # only iron allowed
    half = d3.reverse_step(zt, logits, torch.full((20000,), 0.3), torch.full((20000,), 0.15), g)
    newly = (zt == 0) & (half != 0)
    assert newly.float().sum().item() / masked.float().sum().item() == pytest.approx(0.5, abs=0.03)
    assert bool((half[newly] == 26).all())
    done = d3.reverse_step(half, logits, torch.full((20000,), 0.15), torch.zeros(20000), g)
    assert bool((done != 0).all()) and bool((done[~masked] == z[~masked]).all())


def test_lattice_ddim_step_eta():
    """eta = 1 is the DDPM posterior (same noise draw); eta = 0 is deterministic and lands on ŷ0 at s = 0."""

def test_confident_reveal_keeps_counts_and_picks_sure_atoms():
    """``order="confident"``: per crystal, as many atoms revealed as the random order would reveal
    (same draws), chosen among the masked atoms whose species is most probable; all at s = 0."""
    d3 = MaskedD3PM("linear")
    n_cryst, per = 50, 8
    batch = torch.arange(n_cryst).repeat_interleave(per)
    species = torch.zeros(n_cryst * per, dtype=torch.long)
    species[::4] = 8                                                     # a quarter already revealed
    sure = (torch.arange(n_cryst * per) % per) >= 6                        # two atoms per crystal are certain
    logits = torch.zeros(n_cryst * per, 30)
    logits[:, 0] = float("-inf")
    logits[sure, 14] = 50.0
    t, s = torch.full((n_cryst * per,), 0.01), torch.full((n_cryst * per,), 0.0075)
    rand = d3.reverse_step(species, logits, t, s, torch.Generator().manual_seed(3), batch=batch)
    conf = d3.reverse_step(species, logits, t, s, torch.Generator().manual_seed(3), batch=batch, order="confident")
    counts = [torch.bincount(batch[(x != species)], minlength=n_cryst) for x in (rand, conf)]
    assert torch.equal(counts[0], counts[1]) and int(counts[0].sum()) > 10
    newly = (conf != species)
    picked_sure = (newly & sure).long().sum()
    assert picked_sure == torch.minimum(counts[1], torch.tensor(2)).sum()    # the sure atoms go first
    assert bool((conf[species != 0] == species[species != 0]).all())       # revealed atoms stay
    done = d3.reverse_step(conf, logits, s, torch.zeros_like(s), batch=batch, order="confident")
    assert bool((done != 0).all())
    with pytest.raises(TopodiffInputError):
        d3.reverse_step(species, logits, t, s, order="confident")           # needs the batch index
    with pytest.raises(TopodiffInputError):
        d3.reverse_step(species, logits, t, s, batch=batch, order="sorted")

    from topodiff.generative.corruption import LatticeVP

    vp = LatticeVP("cosine", 0.3)
    y_t, y0 = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(0)), torch.randn(4, 3, 3)
    t, s = torch.full((4,), 0.6), torch.full((4,), 0.5)
    a = vp.posterior_step(y_t, y0, t, s, torch.Generator().manual_seed(1))
    b = vp.posterior_step(y_t, y0, t, s, torch.Generator().manual_seed(1), eta=1.0 - 1e-9)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    d1 = vp.posterior_step(y_t, y0, t, s, torch.Generator().manual_seed(1), eta=0.0)
    d2 = vp.posterior_step(y_t, y0, t, s, torch.Generator().manual_seed(2), eta=0.0)
    torch.testing.assert_close(d1, d2)
    torch.testing.assert_close(vp.posterior_step(y_t, y0, t, torch.zeros(4), eta=0.0), y0)
