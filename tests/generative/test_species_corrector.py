"""The species corrector: Gibbs sweeps re-drawing each crystal's least self-consistent atom."""
import torch

from topodiff.generative.corruption.d3pm import MASK
from topodiff.generative.species_corrector import gibbs_sweeps, least_consistent_atom


def _majority_logits(max_z: int = 10):
    """A stand-in network: each atom's logits favour (by 8 nats) the most common revealed element of
    its crystal; records what it was called with."""
    calls = []

    def logits_of(species, t_species):
        calls.append((species.clone(), t_species.clone()))
        lg = torch.zeros(species.shape[0], max_z + 1)
        lg[:, 0] = -float("inf")
        for start, n in ((0, 4), (4, 3)):
            z = species[start:start + n]
            z = z[z != MASK]
            lg[start:start + n, torch.bincount(z, minlength=max_z + 1).argmax()] += 8.0
        return lg
    return logits_of, calls


def test_least_consistent_atom_is_the_odd_one_out():
    species = torch.tensor([3, 3, 7, 3, 5, 5, 5])
    batch = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    logits = torch.full((7, 11), -40.0)
    logits[torch.arange(7), species] = 0.0
    logits[2, 3], logits[2, 7] = 0.0, -40.0      # atom 2 (element 7) is what the network finds unlikely
    logits[5, 5], logits[5, 9] = -40.0, 0.0      # in crystal 1, atom 5
    gen = torch.Generator().manual_seed(0)
    assert least_consistent_atom(logits, species, batch, 2, gen).tolist() == [2, 5]


def test_sweeps_redraw_the_odd_atom_from_its_conditional():
    logits_of, calls = _majority_logits()
    species = torch.tensor([3, 3, 7, 3, 5, 5, 9])
    out = gibbs_sweeps(species, torch.tensor([4, 3]), logits_of, 3, generator=torch.Generator().manual_seed(0))
    assert out.tolist() == [3, 3, 3, 3, 5, 5, 5]
    assert species.tolist() == [3, 3, 7, 3, 5, 5, 9]            # the input is not modified
    # per sweep: one call with nothing masked at species time 0, one with one atom per crystal masked at 1/N
    assert len(calls) == 6 and all((s != MASK).all() for s, _ in calls[0::2])
    assert [int((s == MASK).sum()) for s, _ in calls[1::2]] == [2, 2, 2]
    torch.testing.assert_close(calls[1][1], torch.tensor([1 / 4, 1 / 3]))
    torch.testing.assert_close(calls[0][1], torch.zeros(2))


def test_sweeps_never_draw_a_disallowed_species():
    def logits_of(species, t_species):                      # uniform over 1..4 only (e.g. a chemical system)
        lg = torch.full((species.shape[0], 11), -float("inf"))
        lg[:, 1:5] = 0.0
        return lg
    out = gibbs_sweeps(torch.tensor([1, 2, 3, 4, 1]), torch.tensor([5]), logits_of, 50,
                       generator=torch.Generator().manual_seed(1))
    assert set(out.tolist()) <= {1, 2, 3, 4}


def test_sampler_runs_the_sweeps_and_keeps_the_chemical_system(tiny_model):
    from topodiff.generative.sampler import pc_sample

    tiny_model.cfg.species_corrector_sweeps = 4
    mask = torch.zeros(2, tiny_model.cfg.max_z + 1, dtype=torch.bool)
    mask[:, [8, 26]] = True
    out = pc_sample(tiny_model, torch.tensor([3, 4]), generator=torch.Generator().manual_seed(0), species_mask=mask)
    assert set(out.species.tolist()) <= {8, 26}
    again = pc_sample(tiny_model, torch.tensor([3, 4]), generator=torch.Generator().manual_seed(0), species_mask=mask)
    assert torch.equal(out.species, again.species)
    calls = []
    denoise = tiny_model.guided_denoise
    tiny_model.guided_denoise = lambda *a, **k: calls.append(a[5]) or denoise(*a, **k)  # records t_species
    pc_sample(tiny_model, torch.tensor([3, 4]), steps=5, generator=torch.Generator().manual_seed(0), species_mask=mask)
    with_sweeps = len(calls)
    tiny_model.cfg.species_corrector_sweeps = 0
    calls.clear()
    pc_sample(tiny_model, torch.tensor([3, 4]), steps=5, generator=torch.Generator().manual_seed(0), species_mask=mask)
    assert with_sweeps - len(calls) == 2 * 4                  # two network calls per sweep
