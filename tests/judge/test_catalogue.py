"""Catalogue-label join: mapping of each catalogue, agreement rule, Tang et al. formula keys, CLI."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from topodiff.crystal.catalogue import (MATERIAE_CLASSES, TANG_CLASSES, TQC_CLASSES, combine, label_rows,
                                        load_catalogues, tang_formula)


@pytest.fixture
def catalogue_dir(tmp_path):
    """Hand-made catalogues: every case of the join once."""
    pd.DataFrame({"material_id": ["mp-1", "mp-2", "mp-3", "mp-4", "mp-5"],
                  "soc_class": ["Triv_Ins", "TI", "Unknown", "HSL_SM", "TCI"]}).to_csv(
        tmp_path / "materiae.csv.gz", index=False)
    pd.DataFrame({"material_id": ["mp-1", "mp-2", "mp-3", "mp-4", "mp-6"],
                  "topo_class": ["trivial", "TI", "TI", "trivial", "TI"]}).to_csv(tmp_path / "tqc.csv.gz", index=False)
    pd.DataFrame({"spacegroup": [166, 225], "reduced_formula": ["Bi2Se3", "Cl1Na1"],
                  "label": ["TI", "trivial_insulator_case1"]}).to_csv(tmp_path / "topogivity.csv.gz", index=False)
    return tmp_path


def test_every_catalogue_label_is_mapped():
    assert set(MATERIAE_CLASSES) == {"Triv_Ins", "TI", "TCI", "HSP_SM", "HSL_SM"}  # Unknown: no information
    assert TQC_CLASSES["TI"] == {"ti", "tci"} and TQC_CLASSES["SM"] == {"semimetal"}
    assert {next(iter(v)) for v in TANG_CLASSES.values()} == {"trivial", "ti", "tci", "semimetal"}


def test_combine_rules():
    tri, ti, tci, sm = ({c} for c in ("trivial", "ti", "tci", "semimetal"))
    assert combine([frozenset(tri), None, frozenset(tri)]) == ("trivial", False, "agree")
    assert combine([frozenset(ti), frozenset({"ti", "tci"})]) == ("ti", True, "agree")
    assert combine([frozenset(tri), frozenset(sm)]) == (None, None, "disagree")
    assert combine([frozenset(tci), frozenset(sm)]) == (None, True, "disagree")  # both non-trivial
    assert combine([frozenset({"ti", "tci"})]) == (None, True, "ambiguous")
    assert combine([None, None]) == (None, None, "none")


def test_tang_formula_spelling():
    assert tang_formula("NaCl") == "Cl1Na1" and tang_formula("Bi4Se6") == "Bi2Se3"


def test_label_rows_on_hand_made_catalogues(catalogue_dir):
    cats = load_catalogues(catalogue_dir)
    cols = label_rows(["mp-1", "mp-2", "mp-3", "mp-4", "mp-5", "mp-6", None, "mp-9"],
                      [225, 166, 1, 1, 1, 1, 166, 12],
                      ["Cl1Na1", "Bi2Se3", "X", "X", "X", "X", "Bi2Se3", "X"], cats)
    got = [c if isinstance(c, str) else None for c in cols["catalogue_class"]]
    #       3 agree       TI+TI+Tang TI  Unknown+TQC TI   SM vs trivial  TCI only  TQC TI only  Tang only  nothing
    assert got == ["trivial", "ti", None, None, "tci", None, "ti", None]
    assert cols["catalogue_status"] == ["agree", "agree", "ambiguous", "disagree", "agree", "ambiguous", "agree",
                                        "none"]
    topo = [t if isinstance(t, bool) else None for t in cols["catalogue_topological"]]
    assert topo == [False, True, True, None, True, True, True, None]
    assert all(math.isnan(c) for c in cols["catalogue_class"] if not isinstance(c, str))


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from topodiff.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dataset_labels_cli(tmp_path, catalogue_dir, capsys):
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    src = tmp_path / "in.csv.gz"
    pd.DataFrame({"material_id": ["mp-1", "mp-4"], "band_gap": [5.0, 0.0],
                  "cif": [nacl.to(fmt="cif")] * 2}).to_csv(src, index=False)
    code, out, err = run_cli(capsys, "dataset", "labels", str(src), "--out", str(tmp_path / "out.csv.gz"),
                             "--catalogues", str(catalogue_dir), "--json")
    assert code == 0, err
    counts = json.loads(out)
    assert counts["agree"] == 1 and counts["disagree"] == 1 and counts["classes"]["trivial"] == 1
    table = pd.read_csv(tmp_path / "out.csv.gz")
    assert table["catalogue_class"].tolist()[0] == "trivial" and pd.isna(table["catalogue_class"][1])
    assert table["band_gap"].tolist() == [5.0, 0.0] and "cif" in table.columns
    code, out, err = run_cli(capsys, "dataset", "labels", str(src), "--out", str(tmp_path / "x.json"),
                             "--catalogues", str(catalogue_dir))
    assert code == 2 and err.strip().startswith("error:") and "must end in .csv" in err
