"""`candidate_records`: DFT verifies the CHGNet-relaxed crystal the cheap judges saw, not the generated one."""
from __future__ import annotations

from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor

from topodiff.crystal.io import write_structures
from topodiff.dft.candidates import candidate_records


def test_relaxed_frame_by_index_else_the_source(tmp_path):
    gen = [AseAtomsAdaptor.get_structure(bulk(x, "diamond", a)) for x, a in (("Si", 5.6), ("Ge", 5.8))]
    write_structures(gen, tmp_path / "generated.extxyz")
    relaxed = AseAtomsAdaptor.get_structure(bulk("Ge", "diamond", 5.66))
    write_structures([relaxed], tmp_path / "relaxed.extxyz", info=[{"index": 1}])  # only crystal 1 relaxed
    cands = [{"index": i, "source": f"{tmp_path / 'generated.extxyz'}#{i}"} for i in (0, 1)]
    recs = candidate_records(tmp_path, cands)
    assert recs[0].structure.composition.reduced_formula == "Si"
    assert abs(recs[0].structure.lattice.a - gen[0].lattice.a) < 1e-6       # not relaxed: the source
    assert abs(recs[1].structure.lattice.a - relaxed.lattice.a) < 1e-6      # relaxed frame, matched by index
    assert abs(recs[1].structure.lattice.a - gen[1].lattice.a) > 0.05
