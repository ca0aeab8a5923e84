"""Space-group projection and CSP templates: symmetry is exact, the matcher respects counts and chemistry."""
from __future__ import annotations

import numpy as np
import pytest
import spglib
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.symmetry_projection import SymmetryProjector, template_from_structure
from topodiff.generative.templates import TemplateLibrary, element_assignment, volume_ratio

ROCKSALT_FRAC = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                          [.5, .5, .5], [.5, 0, 0], [0, .5, 0], [0, 0, .5]])
# wurtzite ZnO (P6_3mc): Zn at 2b (1/3, 2/3, 0), O at 2b with a free z (u = 0.382)
HEX = np.array([[3.25, 0, 0], [-1.625, 2.8146, 0], [0, 0, 5.21]])
WURTZITE_FRAC = np.array([[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, .5], [1 / 3, 2 / 3, .382], [2 / 3, 1 / 3, .882]])


def _space_group(lattice, frac, species, symprec=1e-4) -> int:
    data = spglib.get_symmetry_dataset((np.asarray(lattice, float), np.asarray(frac, float), np.asarray(species)),
                                       symprec=symprec)
    return 0 if data is None else int(data.number)


def _rocksalt():
    return template_from_structure(np.eye(3) * 5.64, ROCKSALT_FRAC, np.array([11] * 4 + [17] * 4), source="NaCl")


def _wurtzite():
    return template_from_structure(HEX, WURTZITE_FRAC, np.array([30, 30, 8, 8]), source="ZnO")


def test_template_finds_the_space_group():
    assert _rocksalt().space_group == 225 and len(_rocksalt().rotations) == 192   # 48 ops × 4 centring vectors
    assert _wurtzite().space_group == 186


@pytest.mark.parametrize("make", [_rocksalt, _wurtzite])
def test_projection_keeps_a_symmetric_crystal_and_is_idempotent(make):
    tpl = make()
    proj = SymmetryProjector([tpl], torch.tensor([tpl.num_atoms]))
    exact = torch.tensor(tpl.frac)
    wrapped = lambda d: (d + 0.5).remainder(1.0) - 0.5  # noqa: E731
    assert float(wrapped(proj.coords(exact) - exact).abs().max()) < 1e-12
    noisy = proj.coords(exact + 0.03 * torch.randn(exact.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert float(wrapped(proj.coords(noisy) - noisy).abs().max()) < 1e-12


@pytest.mark.parametrize("make", [_rocksalt, _wurtzite])
def test_projection_of_random_coordinates_and_lattice_has_the_template_group(make):
    """From uniform coordinates and a random cell, the projected crystal has (at least) every
    operation of the template: spglib at 1e-4 Å finds the template's group or a supergroup."""
    tpl = make()
    gen = torch.Generator().manual_seed(0)
    proj = SymmetryProjector([tpl], torch.tensor([tpl.num_atoms]))
    for _ in range(5):
        frac = proj.coords(torch.rand((tpl.num_atoms, 3), generator=gen, dtype=torch.float64))
        lat = proj.lattice(torch.tensor(tpl.lattice)[None] + torch.randn((1, 3, 3), generator=gen, dtype=torch.float64))[0]
        ops = spglib.get_symmetry((lat.numpy(), frac.numpy(), tpl.species), symprec=1e-4)
        assert len(ops["rotations"]) >= len(tpl.rotations)


def test_lattice_projection_gives_a_cube_and_keeps_orientation():
    tpl = _rocksalt()
    proj = SymmetryProjector([tpl], torch.tensor([8]))
    rot = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))[0]
    lat = (torch.eye(3, dtype=torch.float64) * 5 + 0.2 * torch.randn(3, 3, dtype=torch.float64)) @ rot
    out = proj.lattice(lat[None])[0]
    metric = out @ out.T
    assert torch.allclose(metric, metric[0, 0] * torch.eye(3, dtype=torch.float64), atol=1e-10)
    # the Cartesian frame is the old one's: a symmetric cell is left exactly as it is
    cube = torch.eye(3, dtype=torch.float64) * 5 @ rot
    assert torch.allclose(proj.lattice(cube[None])[0], cube, atol=1e-12)


def test_projector_leaves_crystals_without_template_alone():
    tpl = _wurtzite()
    proj = SymmetryProjector([None, tpl], torch.tensor([3, 4]))
    frac = torch.rand((7, 3), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = proj.coords(frac)
    assert torch.equal(out[:3], frac[:3]) and not torch.allclose(out[3:], frac[3:])
    with pytest.raises(TopodiffInputError):
        SymmetryProjector([tpl], torch.tensor([5]))


def test_element_assignment_respects_counts_and_chemistry():
    # target K2S on an A2B template Na2O: K ↔ Na (both alkali), S ↔ O (both chalcogen)
    mapping, cost = element_assignment(np.array([19, 19, 16]), np.array([11, 8, 11]))
    assert mapping == {11: 19, 8: 16} and cost >= 0
    assert element_assignment(np.array([19, 19, 16]), np.array([11, 8, 8, 11])) is None
    assert element_assignment(np.array([19, 16, 16]), np.array([11, 11, 8])) is not None   # counts {1, 2} either way


def test_library_matches_by_anonymous_formula_and_round_trips(tmp_path):
    rock, wurtz = _rocksalt(), _wurtzite()
    lib = TemplateLibrary(np.stack([rock.lattice, np.eye(3) * 4]), np.concatenate([rock.frac, [[0, 0, 0], [.5, .5, .5]]]),
                          np.concatenate([rock.species, [55, 17]]), np.array([8, 2]), ["NaCl", "CsCl"])
    lib.save(tmp_path / "lib.npz")
    lib = TemplateLibrary.load(tmp_path / "lib.npz")
    # KBr with 8 atoms: only the rock-salt cell has 8 atoms of two elements 4 + 4
    tpl = lib.match(np.array([19] * 4 + [35] * 4))
    assert tpl.source == "NaCl" and tpl.space_group == 225 and sorted(set(tpl.species.tolist())) == [19, 35]
    assert np.isclose(abs(np.linalg.det(tpl.lattice)), 5.64 ** 3 * volume_ratio(tpl.species, rock.species), rtol=1e-5)
    assert lib.match(np.array([19, 35])).source == "CsCl"
    assert lib.match(np.array([30, 30, 8, 8])) is None and wurtz.space_group == 186


def test_library_refuses_a_file_that_is_not_one(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TopodiffInputError):
        TemplateLibrary.load(bad)
    np.savez(tmp_path / "y.npz", lattices=np.zeros((1, 3, 3)))
    with pytest.raises(TopodiffInputError):
        TemplateLibrary.load(tmp_path / "y.npz")


def test_sampler_with_templates_returns_symmetric_crystals(tiny_model):
    """An untrained network under the projection still returns crystals with the template's group,
    from the prior and from a template start."""
    tpl = _wurtzite()
    species = torch.as_tensor(np.concatenate([tpl.species, tpl.species]))
    gen = torch.Generator().manual_seed(0)
    for start in (1.0, 0.4):
        out = tiny_model.sample(torch.tensor([4, 4]), species=species, generator=gen, templates=[tpl, tpl],
                                start_time=start)
        for f, lat, z in out.split():
            ops = spglib.get_symmetry((lat.astype(float), f.astype(float), z), symprec=1e-3)
            assert len(ops["rotations"]) >= len(tpl.rotations)
    with pytest.raises(TopodiffInputError):
        tiny_model.sample(torch.tensor([4]), species=species[:4], templates=[None], start_time=0.5)


def test_csp_with_the_shipped_library_keeps_each_template_space_group(tmp_path):
    """`topodiff csp --templates mp20`: every composition with a template comes back in the template's
    space group; one without a template (Na19Cl: no known 20-atom cell with counts 19 + 1) is
    sampled from noise and marked ``none``."""
    from ase.io import read

    from topodiff.generative.csp import csp_to_dir

    (tmp_path / "f.txt").write_text("KBr\nBi2Se3\nMgAl2O4\nNa19Cl\n")
    meta = csp_to_dir(tmp_path / "f.txt", tmp_path / "out", checkpoint="mp20-csp", templates="mp20", steps=10)
    assert meta["templates"].endswith("mp20.templates.npz") and meta["template_start"] == 0.3
    frames = read(tmp_path / "out" / "structures.extxyz", index=":")
    assert [f.info["index"] for f in frames] == [0, 1, 2, 3]
    templated = [f for f in frames if f.info["template"] != "none"]
    assert meta["num_templated"] == len(templated) == 3 and frames[3].info["template"] == "none"
    for f in templated:
        cell = (f.cell.array, f.get_scaled_positions(), f.numbers)
        assert _space_group(*cell, symprec=1e-3) == f.info["template_space_group"]
    assert sorted(frames[1].get_chemical_symbols()) == ["Bi"] * 2 + ["Se"] * 3


def test_species_classes_follow_the_first_revealed_member_and_share_logits():
    """De novo on a template: atoms sharing a template element form a class; once any member is
    revealed the whole class takes that species, and every member draws from the class-mean logits."""
    from topodiff.generative.corruption.d3pm import MASK

    tpl = _wurtzite()                       # classes: Zn sites {0, 1}, O sites {2, 3}
    proj = SymmetryProjector([tpl], torch.tensor([4]))
    out = proj.species(torch.tensor([MASK, 26, MASK, MASK]), MASK)
    assert out.tolist() == [26, 26, MASK, MASK]
    assert proj.species(torch.tensor([MASK, 26, 16, 34]), MASK).tolist() == [26, 26, 16, 16]
    logits = torch.tensor([[0.0, 2.0], [2.0, 0.0], [1.0, 3.0], [3.0, 1.0]])
    assert torch.equal(proj.species_logits(logits), torch.tensor([[1.0, 1.0]] * 2 + [[2.0, 2.0]] * 2))


def test_library_draws_structure_types_and_carries_new_elements():
    rock = _rocksalt()
    lib = TemplateLibrary(np.stack([rock.lattice, np.eye(3) * 4]), np.concatenate([rock.frac, [[0, 0, 0], [.5, .5, .5]]]),
                          np.concatenate([rock.species, [55, 17]]), np.array([8, 2]), ["NaCl", "CsCl"])
    gen = torch.Generator().manual_seed(0)
    drawn = lib.draw(20, gen)
    assert {t.source for t in drawn} == {"NaCl", "CsCl"}
    assert all(t.source == "CsCl" for t in lib.draw(5, gen, num_atoms=2))
    with pytest.raises(TopodiffInputError):
        lib.draw(1, gen, num_atoms=3)
    from topodiff.generative.templates import with_species

    heavier = with_species(rock, np.array([37] * 4 + [53] * 4))   # RbI on the NaCl sites: a bigger cell
    assert np.linalg.det(heavier.lattice) > np.linalg.det(rock.lattice) and heavier.space_group == 225


@pytest.mark.parametrize("resample", [False, True])
def test_generate_on_known_structure_types_keeps_symmetry_and_classes(tiny_model, tmp_path, resample):
    """generate --templates: every crystal has its template's atom count and (untrained weights, so
    no chemistry is asserted) one element per template class, in the template's space group; also
    when the structure is re-sampled from the template for the drawn composition."""
    from ase.io import read

    from topodiff.generative.checkpoint import save_generator
    from topodiff.generative.generate import generate_to_dir
    from generative.helpers import make_batch

    b = make_batch((4, 4))
    b.species = torch.tensor([30, 30, 8, 8, 11, 11, 17, 17])
    tiny_model.fit_statistics(b.num_atoms.numpy(), b.lattice.numpy(), b.species.numpy())
    tiny_model.cfg.min_distance = 0.0
    tiny_model.cfg.resample_structure = resample
    tiny_model.cfg.p_csp = 0.5
    ckpt = save_generator(tiny_model, {}, tmp_path / "tiny.ckpt")
    lib = TemplateLibrary.from_structures([("ZnO", _structure(_wurtzite()))])
    meta = generate_to_dir(tmp_path / "g", num=3, checkpoint=str(ckpt), steps=4, seed=0, templates=lib)
    assert meta["templates"] == "1 crystals given in memory"
    for a in read(tmp_path / "g" / "structures.extxyz", index=":"):
        assert a.info["template"] == "ZnO" and len(a) == 4
        z = a.numbers
        assert z[0] == z[1] and z[2] == z[3]
        ops = spglib.get_symmetry((a.cell.array, a.get_scaled_positions(), z), symprec=1e-3)
        assert len(ops["rotations"]) >= len(_wurtzite().rotations)


def _structure(tpl):
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(tpl.lattice), tpl.species.tolist(), tpl.frac)


def test_build_library_keeps_the_rows_asked_for(tmp_path):
    """python -m topodiff.generative.templates CSV OUT --where catalogue_class=ti: only those rows."""
    import pandas as pd
    from pymatgen.io.cif import CifWriter

    from topodiff.generative.templates import build_library

    rows = [("a-1", _structure(_rocksalt()), "ti"), ("a-2", _structure(_wurtzite()), "trivial")]
    pd.DataFrame({"material_id": [r[0] for r in rows], "cif": [str(CifWriter(r[1])) for r in rows],
                  "catalogue_class": [r[2] for r in rows]}).to_csv(tmp_path / "t.csv", index=False)
    assert build_library(tmp_path / "t.csv", tmp_path / "all.npz") == 2
    assert build_library(tmp_path / "t.csv", tmp_path / "ti.npz", {"catalogue_class": "ti"}) == 1
    lib = TemplateLibrary.load(tmp_path / "ti.npz")
    assert lib.ids == ["a-1"] and lib.template(0).space_group == 225
    with pytest.raises(TopodiffInputError):
        build_library(tmp_path / "t.csv", tmp_path / "none.npz", {"catalogue_class": "tci"})
