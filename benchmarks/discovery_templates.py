"""Where the discovery benchmark's known crystals come from: the substitution baseline's templates
(known crystals of a catalogue class) and the model arms' structure types (``--structure-types known``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TRAIN_CSV = ROOT / "data" / "mp20" / "train.csv"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load_templates(cls: str, train_csv: Path = TRAIN_CSV, data_dir: Path = DATA) -> tuple[list, str]:
    """Known ``cls`` crystals of the training set as ``[(material_id, Structure)]`` and where they came from."""
    import pandas as pd

    from topodiff.crystal.io import structure_from_cif_text

    if train_csv.is_file():
        df = pd.read_csv(train_csv, dtype={"material_id": str})
        if {"catalogue_class", "catalogue_source"} <= set(df.columns):
            df = df[(df["catalogue_class"] == cls) & (df["catalogue_source"] == "catalogue")]
            source = f"{train_csv} (catalogue_class == {cls}, catalogue_source == catalogue)"
        else:
            log(f"{train_csv} lacks catalogue_class/catalogue_source: using the shared MP-20 join")
            train_csv = Path("/nonexistent")
    if not train_csv.is_file():
        df, source = _catalogue_join(cls, data_dir)
    ids = df["material_id"] if "material_id" in df.columns else [f"row{i}" for i in df.index]
    out = [(str(m), structure_from_cif_text(c)) for m, c in zip(ids, df["cif"])]
    if not out:
        raise TopodiffInputError(f"no {cls} templates found in {source}")
    return out, source


def _catalogue_join(cls: str, data_dir: Path) -> tuple[Any, str]:
    import pandas as pd
    from pymatgen.core import Composition

    from topodiff.crystal.catalogue import label_rows, load_catalogues, tang_formula

    path = data_dir / "mp_20" / "train.csv.gz"
    if not path.is_file():
        raise TopodiffInputError(f"training data not found: {path} (and no {TRAIN_CSV})")
    df = pd.read_csv(path, dtype={"material_id": str})
    labels = label_rows(df["material_id"], df["spacegroup.number"],
                        [tang_formula(Composition(f)) for f in df["pretty_formula"]], load_catalogues(data_dir / "topology"))
    df = df[np.asarray([c == cls for c in labels["catalogue_class"]])]
    return df, f"{path} joined with the DFT catalogues (catalogue_class == {cls})"


def structure_types(arm: str, args: argparse.Namespace) -> Any:
    """Template library of a model arm with ``--structure-types known`` (None: free): the conditioned arm
    takes the known crystals of the target class (the substitution baseline's), the unconditional arm
    the whole shipped training library. With an explicit formula model (``--formulas``) each formula picks
    its own structure type, so both arms match against the whole library."""
    if args.structure_types == "free":
        return None
    if getattr(args, "formulas", "auto") not in ("auto", "network"):
        return "mp20"
    from topodiff.generative.templates import TemplateLibrary

    if arm == "conditioned":
        return TemplateLibrary.from_structures(load_templates(args.template_class, args.templates)[0])
    return "mp20"
