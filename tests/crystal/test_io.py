"""Structure I/O: every supported format, per-record errors for bad input, writers, standardisation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from topodiff.crystal.io import (check_structure, read_structure, read_structures, space_group, standardize,
                                 wrap_frac, write_cif, write_csv, write_poscar, write_structures)
from topodiff.errors import TopodiffInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "crystals"
MATCHER = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)

BAD = {
    "bad_empty.cif": "empty file",
    "bad_unreadable.cif": "unreadable CIF",
    "bad_overlap.cif": "overlapping atoms",
    "bad_unknown_element.cif": "unknown element 'Xx'",
    "bad_partial_occupancy.cif": "partial occupancies",
}


def test_reads_cif_poscar_vasp():
    bs = read_structure(DATA / "Bi2Se3.cif")
    assert bs.composition.reduced_formula == "Bi2Se3" and len(bs) == 15
    nacl = read_structure(DATA / "POSCAR_NaCl")
    assert nacl.composition.formula.replace(" ", "") == "Na4Cl4"
    # rock salt: nearest Na-Cl distance is a/2 (a = 5.64 Å)
    na = [i for i, site in enumerate(nacl) if site.specie.symbol == "Na"]
    cl = [i for i, site in enumerate(nacl) if site.specie.symbol == "Cl"]
    assert nacl.distance_matrix[np.ix_(na, cl)].min() == pytest.approx(5.64 / 2, abs=1e-6)
    hgte = read_structure(DATA / "HgTe.vasp")
    assert hgte.composition.reduced_formula == "HgTe"


@pytest.mark.parametrize("name, message", sorted(BAD.items()))
def test_bad_file_gives_record_error_and_single_read_raises(name, message, capfd):
    records = read_structures(DATA / name)
    assert len(records) == 1
    rec = records[0]
    assert rec.structure is None and not rec.ok
    assert message in rec.error and "\n" not in rec.error
    with pytest.raises(TopodiffInputError, match=message.split("'")[0]):
        read_structure(DATA / name)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # parser warnings are silenced


def test_directory_reads_everything_sorted_and_goes_on_after_errors():
    records = read_structures(DATA)
    sources = [r.source for r in records]
    files = [s.split("#")[0] for s in sources]
    assert files == sorted(files)
    by_name = {Path(r.source).name: r for r in records}
    for name, message in BAD.items():
        assert message in by_name[name].error
    good = [r for r in records if r.ok]
    assert {r.structure.composition.reduced_formula for r in good} >= {"Bi2Se3", "NaCl", "HgTe", "Si", "CsCl"}


def test_extxyz_frames_sources_info_and_bad_frame():
    records = read_structures(DATA / "frames.extxyz")
    assert [r.source.split("#")[1] for r in records] == ["0", "1", "2"]
    assert records[0].ok and records[0].properties["energy_per_atom"] == pytest.approx(-5.4)
    assert records[0].labels["topo_class"] == "trivial_insulator"
    assert not records[1].ok and "overlapping" in records[1].error
    assert records[1].raw is not None and len(records[1].raw) == 2  # kept for validity metrics
    assert records[2].ok and records[2].structure.composition.reduced_formula == "CsCl"


def test_extxyz_unknown_element_and_missing_cell(tmp_path):
    text = ('2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            'Na 0 0 0\nCl 2 2 2\n'
            '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            'Qq 0 0 0\nCl 2 2 2\n')
    path = tmp_path / "x.extxyz"
    path.write_text(text)
    records = read_structures(path)
    assert len(records) == 2 and records[0].ok
    assert "unknown element" in records[1].error
    nocell = tmp_path / "mol.xyz"
    nocell.write_text("2\ncomment\nNa 0 0 0\nCl 2 2 2\n")
    with pytest.raises(TopodiffInputError, match="periodic"):
        read_structure(nocell)


def test_csv_rows_properties_labels_and_bad_row():
    records = read_structures(DATA / "perov_small.csv")
    assert len(records) == 6
    assert records[0].source.endswith("perov_small.csv#0")
    assert "unreadable CIF" in records[3].error and records[3].structure is None
    assert np.isnan(records[4].properties["dir_gap"]) and records[4].ok
    assert records[0].labels["formula"] == "CuCdN3" and records[0].labels["material_id"] == "18517"
    assert set(records[0].properties) == {"heat_all", "heat_ref", "dir_gap", "ind_gap"}


def test_gzip_csv_reads_like_the_plain_csv(tmp_path):
    import gzip
    import shutil

    gz = tmp_path / "perov_small.csv.gz"
    with open(DATA / "perov_small.csv", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain, packed = read_structures(DATA / "perov_small.csv"), read_structures(gz)
    assert [r.error is None for r in plain] == [r.error is None for r in packed]
    assert packed[0].source.endswith("perov_small.csv.gz#0") and packed[0].labels == plain[0].labels
    assert np.allclose(packed[0].structure.frac_coords, plain[0].structure.frac_coords)
    assert read_structures(tmp_path)[0].source == packed[0].source  # found in a directory too


def test_periodic_image_overlap_is_detected():
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0.0, 0, 0], [0.99, 0, 0]])  # 0.04 Å through the boundary
    assert "overlapping" in check_structure(s)
    tiny = Structure(Lattice.orthorhombic(0.4, 5, 5), ["Na"], [[0, 0, 0]])  # overlaps its own image
    assert "overlapping" in check_structure(tiny)


def test_huge_cell_is_a_per_crystal_error_not_a_memory_error(tmp_path):
    """An untrained generator's ~1e5 Å cell used to exhaust memory in the neighbour search."""
    huge = Structure(Lattice.orthorhombic(1.0e5, 5, 5), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert "implausible cell" in check_structure(huge)
    write_structures([huge, read_structure(DATA / "Bi2Se3.cif")], tmp_path / "mixed.extxyz")
    recs = read_structures(tmp_path / "mixed.extxyz")
    assert recs[0].structure is None and "implausible cell" in recs[0].error and recs[1].error is None


def test_missing_path_raises():
    with pytest.raises(TopodiffInputError, match="no such"):
        read_structures(DATA / "does_not_exist.cif")
    with pytest.raises(TopodiffInputError, match="no such"):
        read_structure(DATA / "does_not_exist.cif")


def test_writers_round_trip(tmp_path):
    structures = [read_structure(DATA / "Bi2Se3.cif"), read_structure(DATA / "POSCAR_NaCl")]
    write_structures(structures, tmp_path / "out.extxyz", info=[{"topo_class": "strong_ti", "gap": 0.3},
                                                                {"topo_class": "trivial_insulator", "gap": 5.0}])
    back = read_structures(tmp_path / "out.extxyz")
    assert [r.labels["topo_class"] for r in back] == ["strong_ti", "trivial_insulator"]
    assert [r.properties["gap"] for r in back] == [0.3, 5.0]
    for a, b in zip(structures, back):
        assert MATCHER.fit(a, b.structure)
        np.testing.assert_allclose(a.lattice.matrix, b.structure.lattice.matrix, atol=1e-8)
    write_cif(structures[0], tmp_path / "a.cif")
    assert MATCHER.fit(structures[0], read_structure(tmp_path / "a.cif"))
    write_poscar(structures[1], tmp_path / "POSCAR")
    assert MATCHER.fit(structures[1], read_structure(tmp_path / "POSCAR"))
    write_csv(structures, tmp_path / "s.csv", {"gap": [0.3, 5.0]})
    rows = read_structures(tmp_path / "s.csv")
    assert [r.properties["gap"] for r in rows] == [0.3, 5.0]
    assert all(MATCHER.fit(a, r.structure) for a, r in zip(structures, rows))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_standardize_primitive_niggli_wrapped():
    bs = read_structure(DATA / "Bi2Se3.cif")
    prim = standardize(bs)
    assert len(prim) == 5  # rhombohedral primitive cell of the 15-atom hexagonal cell
    assert prim.volume == pytest.approx(bs.volume / 3, rel=1e-6)
    assert np.all(prim.frac_coords >= 0) and np.all(prim.frac_coords < 1)
    assert MATCHER.fit(bs, prim)
    assert space_group(bs) == (166, "R-3m") and space_group(prim)[0] == 166
    # Niggli: reduced again it is unchanged (lengths sorted, a <= b <= c)
    abc = np.array(prim.lattice.abc)
    assert np.all(np.diff(abc) >= -1e-8)
    nacl = standardize(read_structure(DATA / "POSCAR_NaCl"))
    assert len(nacl) == 2 and space_group(nacl) == (225, "Fm-3m")
    # shifted copy still standardises to coordinates in [0, 1)
    shifted = Structure(nacl.lattice, nacl.species, nacl.frac_coords - 1e-17 - 3.0)
    f = standardize(shifted).frac_coords
    assert np.all(f >= 0) and np.all(f < 1)


def test_wrap_frac_edge_cases():
    f = wrap_frac(np.array([[-1e-17, 1.0, 2.5], [-0.25, 0.999999, -3.0]]))
    assert np.all(f >= 0) and np.all(f < 1)
    np.testing.assert_allclose(f, [[0, 0, 0.5], [0.75, 0.999999, 0]], atol=1e-12)


def test_poscar_without_symbols_or_truncated_is_an_error(tmp_path):
    cell = "1.0\n4 0 0\n0 4 0\n0 0 4\n"
    (tmp_path / "POSCAR_v4").write_text("no symbols here\n" + cell + "1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    with pytest.raises(TopodiffInputError, match="no element symbols"):
        read_structure(tmp_path / "POSCAR_v4")
    # VASP 4 with the symbols on the comment line is fine
    (tmp_path / "POSCAR_v4ok").write_text("Na Cl\n" + cell + "1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    assert read_structure(tmp_path / "POSCAR_v4ok").composition.reduced_formula == "NaCl"
    (tmp_path / "POSCAR_cut").write_text("cut\n1.0\n4 0 0\n0 4 0\n")
    with pytest.raises(TopodiffInputError, match="unreadable POSCAR"):
        read_structure(tmp_path / "POSCAR_cut")
    (tmp_path / "POSCAR_xx").write_text("x\n" + cell + "Xx Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    with pytest.raises(TopodiffInputError, match="unknown element 'Xx'"):
        read_structure(tmp_path / "POSCAR_xx")


def test_generate_output_directory_reads_structures_extxyz(tmp_path):
    out = tmp_path / "gen"
    structures = [read_structure(DATA / "POSCAR_NaCl"), read_structure(DATA / "HgTe.vasp")]
    write_structures(structures, out / "structures.extxyz", info=[{"sample": 0}, {"sample": 1}])
    for i, s in enumerate(structures):  # the per-structure CIFs must not be read twice
        write_cif(s, out / "cif" / f"{i:04d}.cif")
    (out / "metadata.json").write_text("{}")
    records = read_structures(out)
    assert [r.source for r in records] == [f"{out / 'structures.extxyz'}#{k}" for k in range(2)]
    assert [r.properties["sample"] for r in records] == [0.0, 1.0]
