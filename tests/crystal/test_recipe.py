"""Training-set recipes: real + random + prototype crystals, labelled, split, label report."""
import json
from pathlib import Path

import pandas as pd
import pytest

from topodiff.cli import main
from topodiff.crystal.recipe import build_from_recipe, label_distribution, load_recipe
from topodiff.errors import TopodiffInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "crystals" / "perov_small.csv"


def _recipe(tmp_path, **extra) -> Path:
    text = {"seed": 0, "max_atoms": 8, "val_fraction": 0.2, "workers": 1,
            "real": [{"name": "perov", "path": str(DATA), "holdout": 0.34}],
            "synth": {"num": 2, "elements": ["Bi", "Se", "Te"]}, "prototypes": {"num": 4, "names": ["a7", "rocksalt"]}}
    text.update(extra)
    path = tmp_path / "recipe.yaml"
    import yaml

    path.write_text(yaml.safe_dump(text))
    return path


def test_recipe_builds_labelled_splits_and_report(tmp_path):
    out = tmp_path / "out"
    report = build_from_recipe(_recipe(tmp_path), out, log=lambda m: None)
    held = pd.read_csv(out / "heldout_perov.csv")
    train, val = pd.read_csv(out / "train.csv"), pd.read_csv(out / "val.csv")
    assert len(held) == 2  # round(0.34 * 6)
    assert set(held["material_id"].astype(str)).isdisjoint({m.split("-", 1)[1] for m in train["material_id"]})
    assert len(train) + len(val) == report["usable"] and len(val) >= 1
    for col in ("topo_class", "gap", "space_group_number", "source"):
        assert col in train.columns
    dist = json.loads((out / "labels.json").read_text())["distributions"]
    assert dist["all"]["n"] == report["usable"]
    assert abs(sum(dist["all"]["topo_class"].values()) - 1.0) < 1e-3
    assert dist["prototypes:a7"]["topo_class"].get("strong_ti", 0) > 0  # A7 Bi/Sb/As: (1;000)-type under the screen
    assert (out / "labels.png").stat().st_size > 1000
    # a rerun reuses the progress file and gives the same files
    before = (out / "train.csv").read_text()
    build_from_recipe(_recipe(tmp_path), out, log=lambda m: None)
    assert (out / "train.csv").read_text() == before


def test_label_distribution_counts_and_bins():
    d = label_distribution(["metal", "strong_ti", "strong_ti", None], [0.0, 0.2, 0.05, float("nan")])
    assert d["topo_class_counts"] == {"metal": 1, "strong_ti": 2, "unlabelled": 1}
    assert d["gap_histogram_eV"]["0 (metal/semimetal)"] == 1 and d["gap_histogram_eV"]["0.1-0.3"] == 1


def test_bad_recipes_are_input_errors(tmp_path, capsys):
    with pytest.raises(TopodiffInputError, match="not found"):
        load_recipe(tmp_path / "none.yaml")
    with pytest.raises(TopodiffInputError, match="unknown recipe key"):
        load_recipe(_recipe(tmp_path, colour="red"))
    with pytest.raises(TopodiffInputError, match="real data file not found"):
        load_recipe(_recipe(tmp_path, real=[{"path": "missing.csv"}]))
    (tmp_path / "bad.yaml").write_text("seed: [1,\n")
    assert main(["dataset", "recipe", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().startswith("error:")


def test_changed_recipe_never_reuses_old_crystals(tmp_path):
    """Issue #17: `dataset recipe` reused the old crystals after the recipe changed. Now the output
    directory belongs to one recipe fingerprint: a changed recipe is refused, naming what changed;
    --overwrite rebuilds from scratch; `workers` alone does not change the fingerprint."""
    out = tmp_path / "out"
    quiet = dict(log=lambda m: None)
    build_from_recipe(_recipe(tmp_path, prototypes={"num": 0}), out, **quiet)
    rows_before = len(pd.read_csv(out / "unlabelled.csv"))
    build_from_recipe(_recipe(tmp_path, prototypes={"num": 0}, workers=2), out, **quiet)  # resumes
    changed = _recipe(tmp_path, prototypes={"num": 3, "names": ["rocksalt"]})
    with pytest.raises(TopodiffInputError, match="prototypes"):
        build_from_recipe(changed, out, **quiet)
    assert len(pd.read_csv(out / "unlabelled.csv")) == rows_before  # refused: nothing touched
    build_from_recipe(changed, out, overwrite=True, **quiet)
    table = pd.read_csv(out / "unlabelled.csv")
    assert len(table) == rows_before + 3 and table["source"].str.startswith("prototypes:rocksalt").sum() == 3
    # changed real data: refused as well
    data = tmp_path / "perov.csv"
    pd.read_csv(DATA).iloc[:4].to_csv(data, index=False)
    r1 = _recipe(tmp_path, real=[{"name": "perov", "path": str(data)}], prototypes={"num": 0})
    build_from_recipe(r1, tmp_path / "o2", **quiet)
    pd.read_csv(DATA).iloc[:5].to_csv(data, index=False)
    with pytest.raises(TopodiffInputError, match="input contents changed"):
        build_from_recipe(r1, tmp_path / "o2", **quiet)


@pytest.mark.parametrize("extra, message", [
    ({"val_fraction": float("nan")}, "val_fraction must be a finite number"),
    ({"seed": -1}, "seed must be"),
    ({"synth": {"num": 10**9}}, "synth.num must be"),
    ({"max_atoms": 0}, "max_atoms must be"),
])
def test_recipe_numbers_are_checked_up_front(tmp_path, extra, message):
    with pytest.raises(TopodiffInputError, match=message):
        load_recipe(_recipe(tmp_path, **extra))


def test_recipe_labels_from_catalogues_then_judge_and_screens_only_chosen_sources(tmp_path):
    """Issue #14: catalogue_class from the DFT catalogues by MP id, the learned judge elsewhere
    (catalogue_source says which); the Slater-Koster screen runs only on the sources named."""
    src = pd.read_csv(DATA).head(4)
    src["material_id"] = ["mp-1", "mp-2", "mp-3", "mp-4"]
    src["band_gap"] = [0.5, 0.0, 1.5, float("nan")]
    real = tmp_path / "real.csv"
    src.to_csv(real, index=False)
    cat = tmp_path / "topology"
    cat.mkdir()
    pd.DataFrame({"material_id": ["mp-1", "mp-2"], "soc_class": ["TI", "Unknown"]}).to_csv(cat / "materiae.csv", index=False)
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, real=[{"name": "mp", "path": str(real)}], synth={"num": 0},
                     prototypes={"num": 2, "names": ["a7"]},
                     labels={"screen": ["prototypes"], "catalogue": str(cat), "judge": True})
    build_from_recipe(recipe, out, log=lambda m: None)
    table = pd.read_csv(out / "labelled.csv", dtype={"mp_id": str})
    mp = table[table["source"] == "mp"].set_index("mp_id")
    assert mp.loc["mp-1", "catalogue_class"] == "ti" and mp.loc["mp-1", "catalogue_source"] == "catalogue"
    assert mp.loc["mp-2", "catalogue_source"] == "judge"  # Materiae "Unknown" carries no class
    assert mp.loc["mp-2", "catalogue_class"] in ("trivial", "ti", "tci", "semimetal")
    assert mp.loc["mp-1", "band_gap"] == 0.5 and mp["topo_class"].isna().all()  # real rows not screened
    protos = table[table["source"].str.startswith("prototypes")]
    assert len(protos) == 2 and protos["topo_class"].notna().all() and protos["band_gap"].isna().all()
    train = pd.concat([pd.read_csv(out / "train.csv"), pd.read_csv(out / "val.csv")])
    assert len(train) == len(table) and "screened" not in train.columns  # every labelled row is usable
    with pytest.raises(TopodiffInputError, match="labels.judge"):
        load_recipe(_recipe(tmp_path, labels={"judge": "yes"}))
