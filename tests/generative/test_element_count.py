"""Element count per crystal: the training table, the reveal rule, and exactness in sampling and the CLI."""
import numpy as np
import pytest
import torch

from generative.helpers import make_batch
from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.generative.checkpoint import load_generator, save_generator
from topodiff.generative.corruption.d3pm import MASK, MaskedD3PM
from topodiff.generative.element_count import (allowed_species, distinct_elements, draw_element_counts,
                                                element_count_table, reveal_with_element_count)
from topodiff.generative.generate import sample_guarded

WIDTH = 11  # species 0 (mask) .. 10


def _counts(species: torch.Tensor, num_atoms: torch.Tensor) -> list[int]:
    bi = torch.repeat_interleave(torch.arange(len(num_atoms)), num_atoms)
    return distinct_elements(species, bi, len(num_atoms), int(species.max()) + 1).sum(-1).tolist()


def test_table_counts_crystals_by_atoms_and_elements():
    species = np.array([8, 8, 8, 22, 8, 22, 8])             # O2 | OTi | O2Ti, concatenated
    table = element_count_table(np.array([2, 2, 3]), species, max_atoms=4)
    assert table.shape == (5, 5) and table[2, 1] == 1 and table[2, 2] == 1 and table[3, 2] == 1 and table.sum() == 3
    with pytest.raises(TopodiffInputError):
        element_count_table(np.array([5]), np.arange(1, 6), max_atoms=4)  # 5 atoms > max_atoms


def test_allowed_species_only_present_when_full_only_new_when_needed():
    species = torch.tensor([3, 5, MASK, MASK, 3, MASK])      # crystal 0: {3, 5} + 2 masked; crystal 1: {3} + 1 masked
    batch = torch.tensor([0, 0, 0, 0, 1, 1])
    free = allowed_species(species, batch, torch.tensor([2, 1]), WIDTH)
    assert free[2].nonzero().flatten().tolist() == [3, 5] and free[5].nonzero().flatten().tolist() == [3]
    need = allowed_species(species, batch, torch.tensor([4, 2]), WIDTH)  # 2 missing, 2 masked: both must be new
    assert not need[2, 3] and not need[2, 5] and need[2, 7] and not need[5, 3] and need[5, 1]
    some = allowed_species(species, batch, torch.tensor([3, 2]), WIDTH)  # 1 missing, 2 masked: anything
    assert bool(some[2, 1:].all())


@pytest.mark.parametrize("peaked", [False, True])
def test_reveal_ends_with_exactly_the_asked_element_count(peaked):
    """Whatever the logits favour (many species, or one), the full reveal gives exactly k elements."""
    g = torch.Generator().manual_seed(0)
    num_atoms = torch.tensor([1, 4, 6, 8, 12, 20, 20])
    target = torch.tensor([1, 1, 3, 2, 4, 3, 5])
    n, bi = int(num_atoms.sum()), torch.repeat_interleave(torch.arange(7), num_atoms)
    logits = torch.randn(n, WIDTH, generator=g)
    if peaked:
        logits[:, 4] += 20.0
    logits[:, MASK] = float("-inf")
    d3pm, species = MaskedD3PM("linear"), torch.full((n,), MASK)
    ts = torch.linspace(1, 0, 8)
    for t, s in zip(ts[:-1], ts[1:]):
        species = d3pm.reverse_step(species, logits, t.expand(n), s.expand(n), g, batch=bi, order="confident",
                                    num_elements=target)
    assert bool((species != MASK).all()) and _counts(species, num_atoms) == target.tolist()


def test_redraw_follows_the_restricted_probabilities():
    """One masked atom that must bring a new element: its species ∝ p over the absent ones."""
    p = torch.tensor([0.0, 0.4, 0.3, 0.2, 0.1])
    m = 20000
    species = torch.tensor([1, 2, MASK]).repeat(m)
    batch = torch.arange(m).repeat_interleave(3)
    logits = p.clamp_min(1e-30).log().expand(3 * m, -1)
    draw = torch.multinomial(p.expand(3 * m, -1), 1, generator=torch.Generator().manual_seed(1)).squeeze(-1)
    out = reveal_with_element_count(species, species == MASK, draw, logits, batch, torch.full((m,), 3),
                                    torch.Generator().manual_seed(2))
    freq = torch.bincount(out[2::3], minlength=5).double() / m
    assert freq[1] == 0 and freq[2] == 0
    assert freq[3].item() == pytest.approx(2 / 3, abs=0.02) and freq[4].item() == pytest.approx(1 / 3, abs=0.02)


def test_draws_follow_the_row_of_the_atom_count():
    table = torch.zeros(5, 5)
    table[2, 1], table[4, 3] = 1.0, 1.0
    k = draw_element_counts(table, torch.tensor([2, 4, 4]), torch.Generator().manual_seed(0))
    assert k.tolist() == [1, 3, 3]
    with pytest.raises(TopodiffInputError):
        draw_element_counts(table, torch.tensor([3]))


def test_statistics_record_the_element_counts(tiny_model):
    b = make_batch((4, 3))
    b.species = torch.tensor([8, 8, 22, 38, 11, 11, 11])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    table = tiny_model.num_elements_counts
    assert table[4, 3] == 1 and table[3, 1] == 1 and table.sum() == 2
    tiny_model.train()
    tiny_model.loss(b)  # training batches add to the table
    assert table[4, 3] == 2 and table[3, 1] == 2


def test_sampling_keeps_the_training_element_counts(tiny_model):
    b = make_batch((4, 4, 5))
    b.species = torch.tensor([8, 8, 8, 22, 11, 11, 11, 11, 8, 22, 38, 38, 56])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.eval()
    tiny_model.cfg.min_distance = 0.0
    tiny_model.cfg.element_count = "data"   # 4 atoms: 1 or 2 elements (1:1); 5 atoms: 4 elements
    num_atoms = torch.tensor([4] * 6 + [5] * 3)
    out, _ = sample_guarded(tiny_model, num_atoms, steps=4, generator=torch.Generator().manual_seed(0), retries=0)
    counts = _counts(out.species, num_atoms)
    assert set(counts[:6]) <= {1, 2} and counts[6:] == [4, 4, 4]
    asked = tiny_model.sample(num_atoms, steps=4, num_elements=torch.full((9,), 3))
    assert _counts(asked.species, num_atoms) == [3] * 9
    with pytest.raises(TopodiffInputError):
        tiny_model.sample(torch.tensor([2]), steps=2, num_elements=torch.tensor([3]))


def test_off_count_crystals_are_resampled_before_the_count_is_enforced(tiny_model, monkeypatch):
    """Re-sampling first (the network's own compositions), the reveal rule only for the rest."""
    b = make_batch((4, 4))
    b.species = torch.tensor([8, 8, 22, 22, 11, 11, 17, 17])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.eval()
    tiny_model.cfg.min_distance = 0.0
    calls = []
    real = tiny_model.sample

    def spy(num_atoms, **kw):
        calls.append(kw.get("num_elements") is not None)
        return real(num_atoms, **kw)

    monkeypatch.setattr(tiny_model, "sample", spy)
    out, failing = sample_guarded(tiny_model, torch.tensor([4] * 8), conditions={"num_elements": 3.0}, steps=3,
                                  generator=torch.Generator().manual_seed(0), retries=2)
    assert failing == 0 and _counts(out.species, torch.tensor([4] * 8)) == [3] * 8
    assert calls in ([False], [False] * 2, [False] * 3, [False] * 3 + [True])


def test_old_checkpoints_load_and_say_what_is_missing(tiny_model, tmp_path):
    state = {k: v for k, v in tiny_model.state_dict().items() if k != "num_elements_counts"}
    tiny_model.cfg.element_count = "data"
    path = save_generator(tiny_model, {}, tmp_path / "old.ckpt")
    raw = torch.load(path, weights_only=True)
    raw["state_dict"] = state
    torch.save(raw, path)
    model, _ = load_generator(path)
    assert float(model.num_elements_counts.sum()) == 0
    with pytest.raises(TopodiffInputError, match="element-count statistics"):
        sample_guarded(model, torch.tensor([3]), steps=2)


def test_cli_num_elements_condition(tiny_model, tmp_path, capsys):
    b = make_batch((5, 5, 4))
    b.species = torch.tensor([38, 22, 8, 8, 8, 56, 22, 8, 8, 8, 11, 17, 8, 8])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.cfg.min_distance = 0.0
    ckpt = str(save_generator(tiny_model, {}, tmp_path / "tiny.ckpt"))
    assert main(["generate", "--out", str(tmp_path / "g"), "--num", "6", "--steps", "3", "--checkpoint", ckpt,
                 "--condition", "num_elements=2"]) == 0
    from ase.io import read

    assert [len(set(a.numbers)) for a in read(tmp_path / "g" / "structures.extxyz", index=":")] == [2] * 6
    capsys.readouterr()
    for bad in (["--condition", "num_elements=3", "--condition", "chemical_system=Sr-O"],
                ["--condition", "num_elements=4", "--condition", "num_atoms=3"],
                ["--condition", "num_elements=1.5"]):
        assert main(["generate", "--out", str(tmp_path / "x"), "--num", "1", "--checkpoint", ckpt, *bad]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err


def test_element_counts_recorded_into_an_exported_checkpoint(tiny_model, tmp_path, capsys):
    from topodiff.generative.checkpoint import main as checkpoint_main
    from training.helpers import write_crystal_csv

    data = write_crystal_csv(tmp_path / "syn.csv", 12)
    path = save_generator(tiny_model, {}, tmp_path / "tiny.ckpt")
    checkpoint_main([str(path), "--element-counts-from", str(data)])
    model, _ = load_generator(path)
    table = model.num_elements_counts
    assert table.sum() == 12 and table[5].sum() == 12 and table[:5].sum() == 0
    assert "element-count table" in torch.load(path, weights_only=True)["recipe"]["element_counts"]
    with pytest.raises(SystemExit):
        checkpoint_main([str(path), str(tmp_path / "out.ckpt"), "--element-counts-from", str(data)])


def test_chemical_system_is_exact_even_without_retries(tiny_model):
    """An untrained network rarely uses all four requested elements; the last round's rule makes it so."""
    b = make_batch((4, 4))
    b.species = torch.tensor([8, 8, 22, 38, 11, 17, 56, 8])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.eval()
    tiny_model.cfg.min_distance = 0.0
    system = torch.zeros(tiny_model.cfg.max_z + 1)
    system[[8, 11, 22, 56]] = 1.0
    num_atoms = torch.tensor([4, 5, 6, 8] * 3)
    out, failing = sample_guarded(tiny_model, num_atoms, conditions={"chemical_system": system.tolist()}, steps=3,
                                  generator=torch.Generator().manual_seed(0), retries=0)
    bi = torch.repeat_interleave(torch.arange(len(num_atoms)), num_atoms)
    present = distinct_elements(out.species, bi, len(num_atoms), tiny_model.cfg.max_z + 1)
    assert failing == 0 and bool((present == system.bool()).all())
