"""Pre-screening of generated crystals (``generate --prescreen K``): the learned judge for
``catalogue_class``, new formulas first for discovery, and the errors around them."""
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from generative.helpers import conditioned_model
from topodiff.cli import main
from topodiff.errors import TopodiffInputError
from topodiff.evaluation.known import load_index
from topodiff.generative.checkpoint import save_generator
from topodiff.generative.generate import generate_to_dir
from topodiff.generative.prescreen import prescreen_keep


def _frame(structure: Structure) -> tuple:
    return structure.frac_coords, structure.lattice.matrix, np.array(structure.atomic_numbers)


ROCKSALT = [[0, 0, 0], [0.5, 0.5, 0.5]]
KNOWN = Structure(Lattice.cubic(3.99), ["Na", "Cl"], ROCKSALT)              # NaCl
NEW = Structure(Lattice.cubic(4.5), ["Bi", "Bi", "Ca", "Au"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]])


def test_the_index_knows_formulas_and_not_made_up_ones():
    index = load_index()
    assert index.formula_known("NaCl") and index.formula_known("Bi2Se3")
    assert not index.formula_known(NEW.composition.reduced_formula)
    assert index.query(NEW).formula_novel and not index.query(KNOWN).formula_novel


def test_new_formulas_are_kept_first_and_known_ones_only_to_fill_up():
    frames = [_frame(KNOWN), _frame(NEW), _frame(KNOWN)]
    assert prescreen_keep(frames, {}, None, 1, new_formulas=True) == [1]
    assert prescreen_keep(frames, {}, None, 2, new_formulas=True) == [0, 1]        # sampling order, stable
    assert prescreen_keep(frames, {}, None, 1, new_formulas=False) == [0]         # no score: the first


def test_prescreen_novel_needs_a_prescreen(tmp_path, capsys):
    for argv in (["generate", "--out", str(tmp_path / "g"), "--prescreen-novel"],
                 ["pipeline", "--out", str(tmp_path / "p"), "--prescreen-novel", "--prescreen", "1"]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--prescreen-novel needs --prescreen" in err[0]
    assert not (tmp_path / "g").exists() and not (tmp_path / "p").exists()


def test_prescreen_by_the_learned_judge_keeps_the_most_probable_class(tiny_cfg, tmp_path):
    """``catalogue_class`` pre-screen: of the same 8 crystals, the 4 kept are those the judge (run here
    independently on the unscreened files) gives the highest p(ti), whether or not the model was
    trained with that condition."""
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    from topodiff.judge import judge_structures

    model = conditioned_model(tiny_cfg, min_distance=0.0)
    ckpt = save_generator(model, {}, tmp_path / "c.ckpt")
    cond = {"catalogue_class": "ti"}
    generate_to_dir(tmp_path / "all", num=8, checkpoint=str(ckpt), steps=2, conditions=cond, guidance=0.0)
    meta = generate_to_dir(tmp_path / "best", num=4, checkpoint=str(ckpt), steps=2, conditions=cond, guidance=0.0,
                           prescreen=2)
    assert meta["prescreen_by"] == ["learned topology judge"] and meta["predictor"] is None
    every = read(tmp_path / "all" / "structures.extxyz", index=":")
    best = read(tmp_path / "best" / "structures.extxyz", index=":")
    rows = judge_structures([AseAtomsAdaptor.get_structure(a) for a in every])
    p_ti = np.array([r["probabilities"]["ti"] if r.get("probabilities") else -1.0 for r in rows])
    keep = np.sort(np.argsort(-p_ti, kind="stable")[:4])
    assert len(best) == 4
    for i, a in zip(keep, best):
        np.testing.assert_allclose(a.get_scaled_positions(), every[i].get_scaled_positions(), atol=1e-5)
    assert np.mean(p_ti[keep]) >= np.mean(p_ti)


def test_csp_prescreen_keeps_the_lowest_energy_draws_lowest_first(tmp_path):
    """Of the same 6 draws per composition, ``--prescreen 3 --samples 2`` keeps the 2 that CHGNet
    (called here directly) puts lowest in energy per atom, lowest first, and records their energies."""
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    from topodiff.evaluation.relax import load_chgnet
    from topodiff.generative.csp import csp_to_dir

    comps = tmp_path / "comps.txt"
    comps.write_text("NaCl\nBi2Se3\n")
    csp_to_dir(comps, tmp_path / "all", checkpoint="mp20-csp", samples=6, steps=3)
    meta = csp_to_dir(comps, tmp_path / "best", checkpoint="mp20-csp", samples=2, steps=3, prescreen=3)
    assert meta["num_structures"] == 4 and meta["prescreen"] == 3
    every = read(tmp_path / "all" / "structures.extxyz", index=":")
    best = read(tmp_path / "best" / "structures.extxyz", index=":")
    energy = [float(load_chgnet().predict_structure(AseAtomsAdaptor.get_structure(a), task="e")["e"]) for a in every]
    for comp in (0, 1):
        draws = [i for i, a in enumerate(every) if a.info["index"] == comp]
        lowest = sorted(draws, key=lambda i: energy[i])[:2]
        kept = [a for a in best if a.info["index"] == comp]
        assert [a.info["sample"] for a in kept] == [0, 1]
        assert [a.info["draw"] for a in kept] == [every[i].info["sample"] for i in lowest]
        np.testing.assert_allclose([a.info["energy_per_atom"] for a in kept], [energy[i] for i in lowest], atol=1e-3)
        np.testing.assert_allclose(kept[0].get_scaled_positions(), every[lowest[0]].get_scaled_positions(), atol=1e-5)


def test_csp_prescreen_is_checked_before_anything_runs(tmp_path, capsys):
    comps = tmp_path / "comps.txt"
    comps.write_text("NaCl\n")
    capsys.readouterr()
    assert main(["csp", str(comps), "--out", str(tmp_path / "c"), "--prescreen", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--prescreen" in err[0]
    assert not (tmp_path / "c").exists()
