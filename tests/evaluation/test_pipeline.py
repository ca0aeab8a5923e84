"""The end-to-end job with an injected generator (the real one is tested by its own engineer)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from topodiff.errors import TopodiffInputError
from topodiff.evaluation.pipeline import parse_conditions, run_pipeline

warnings.filterwarnings("ignore")

FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])


def nacl(a: float = 5.64) -> Structure:
    return Structure(Lattice.cubic(a), ["Na"] * 4 + ["Cl"] * 4, np.concatenate([FCC, FCC + [0.5, 0, 0]]) % 1.0)


def fake_generate(out_dir, *, num, checkpoint=None, conditions=None, guidance=0.0, steps=None, seed=0, sampler=None):
    """Writes what ``generate_to_dir`` writes: structures.extxyz, cif/NNNN.cif, metadata.json."""
    from topodiff.crystal.io import write_cif, write_structures

    protos = [nacl(),
              Structure(Lattice.cubic(5.43), ["Si"] * 8, np.concatenate([FCC, FCC + 0.25]))]
    structs = [protos[i % len(protos)] for i in range(num)]
    out = Path(out_dir)
    (out / "cif").mkdir(parents=True, exist_ok=True)
    write_structures(structs, out / "structures.extxyz")
    for i, s in enumerate(structs):
        write_cif(s, out / "cif" / f"{i:04d}.cif")
    meta = {"checkpoint": checkpoint or "fake", "conditions": conditions or {}, "guidance": guidance,
            "steps": steps, "seed": seed, "wall_time_s": 0.0, "structures_per_s": 0.0}
    (out / "metadata.json").write_text(json.dumps(meta))
    return meta


def test_pipeline_end_to_end(tmp_path, monkeypatch):
    from topodiff.crystal.io import write_structures

    monkeypatch.setenv("TOPODIFF_CACHE", str(tmp_path / "cache"))
    ref = tmp_path / "ref.extxyz"                                   # the reference holds NaCl only
    write_structures([nacl(5.60)], ref)
    res = run_pipeline(tmp_path / "run", num=3, conditions={"topo_class": "trivial_insulator"},
                       relax=True, generate_fn=fake_generate, progress=False, reference=[ref])
    run = tmp_path / "run"
    for name in ("report.html", "metrics.json", "structures.csv", "relaxed.extxyz", "pipeline.json"):
        assert (run / name).exists(), name
    m = json.loads((run / "metrics.json").read_text())
    assert m["num_structures"] == 3
    assert m["uniqueness"] == pytest.approx(2 / 3)                  # NaCl twice
    assert m["structural_validity"] == 1.0
    assert m["novelty_vs_reference"] == pytest.approx(1 / 3)        # only Si is new to the reference
    assert m["novelty"] == 0.0                                      # NaCl and Si are known crystals
    assert m["cov_recall"] == 1.0 and m["cov_precision"] == pytest.approx(2 / 3)
    assert m["wdist_num_elems"] == pytest.approx(1 / 3)             # #elements (2, 1, 2) vs (2)
    assert m["sun"]["num_sun"] == 0 and m["sun"]["num_novel"] == 0
    assert m["hull"]["num_with_e_above_hull"] == 3                  # Na, Cl, Si: all have MP references
    assert m["rmsd_to_relaxed"] is not None and m["rmsd_to_relaxed"] < 0.1   # already near minima
    assert m["e_above_hull"]["count"] == 3
    import csv

    rows = list(csv.DictReader((run / "structures.csv").open()))
    nacl_eh = [float(r["e_above_hull"]) for r in rows if r["formula"] == "NaCl"]
    assert len(nacl_eh) == 2 and max(abs(x) for x in nacl_eh) < 0.05    # relaxed NaCl: on the DFT hull
    si_eh = [float(r["e_above_hull"]) for r in rows if r["formula"] == "Si"]
    assert si_eh[0] < 0.15      # CHGNet's diamond Si lies 0.11 eV/atom above MP's GGA Si (docs/evaluation.md)
    assert len(res["top_candidates"]) == 2 and not any(c["novel_stable_topological"] for c in res["top_candidates"])
    assert sum(m["topo_class_counts"].values()) == 3
    html = (run / "report.html").read_text()
    assert "trivial_insulator" in html                               # the target shows in the report
    assert res["timings"]["total_s"] > 0 and Path(res["report"]) == run / "report.html"


def test_parse_conditions():
    c = parse_conditions(["topo_class=strong_ti", "band_gap=0.3", "space_group=166", "chemical_system=Bi-Se"])
    assert c == {"topo_class": "strong_ti", "band_gap": 0.3, "space_group": 166, "chemical_system": "Bi-Se"}
    assert isinstance(c["space_group"], int)
    with pytest.raises(TopodiffInputError):
        parse_conditions(["band_gap"])
    with pytest.raises(TopodiffInputError):
        run_pipeline("/tmp/x", num=0, generate_fn=fake_generate)


def test_pipeline_passes_the_prescreen_and_templates_to_the_generator(tmp_path):
    seen = []

    def recording_generate(out_dir, **kw):
        seen.append((kw.get("prescreen"), kw.get("prescreen_novel"), kw.get("templates")))
        return fake_generate(out_dir, **{k: v for k, v in kw.items() if k not in ("prescreen", "prescreen_novel",
                                                                                  "templates")})

    for k in (1, 3):
        run_pipeline(tmp_path / f"run{k}", num=1, relax=False, screen=False, top_k=0, prescreen=k,
                     prescreen_novel=k > 1, generate_fn=recording_generate, progress=False,
                     templates="mp20-ti" if k > 1 else None)
    assert seen == [(None, None, None), (3, True, "mp20-ti")]   # off: generators without the options still work


def test_symmetric_fraction_counts_readable_crystals_above_p1():
    from topodiff.evaluation.entries import Entry
    from topodiff.evaluation.evaluate import evaluate_entries
    from topodiff.evaluation.summary import summary_lines

    rng = np.random.default_rng(0)
    base = nacl()
    shift = rng.uniform(0.2, 0.3, (8, 1)) * rng.choice([-1, 1], (8, 3)) / 5.64 / np.sqrt(3)
    rattled = Structure(base.lattice, base.species, base.frac_coords + shift)   # 0.2-0.3 Å: P1 at 0.1 Å
    triclinic = Structure(Lattice.from_parameters(4.1, 5.3, 6.2, 71, 83, 97), ["Na", "Cl", "Cl"], rng.random((3, 3)))
    entries = [Entry("a", nacl()), Entry("b", rattled), Entry("c", triclinic), Entry("d", None, "unreadable")]
    summary, rows, _ = evaluate_entries(entries, screen=False, judge=False, progress=False)
    assert [r.get("space_group") for r in rows[:3]] == [225, 1, 1]
    assert summary["symmetric_fraction"] == pytest.approx(1 / 3)     # of the three readable crystals
    assert "symmetric (SG > P1)   33.3 %" in summary_lines(summary)
