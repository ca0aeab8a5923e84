"""Flat-array dataset cache: round trip, rebuild-on-change only, memory mapping, splits."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from topodiff.crystal.dataset import (CrystalArrays, cache_manifest, default_cache_dir, load_arrays, load_dataset,
                                      save_arrays)
from topodiff.crystal.io import read_structure, read_structures, write_cif
from topodiff.crystal.splits import split_indices
from topodiff.errors import TopodiffInputError

DATA = Path(__file__).resolve().parents[1] / "data" / "crystals"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PEROV_VAL = SHARED / "perov_5" / "val.csv"
MATCHER = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5)


@pytest.fixture()
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "perov_small.csv"
    shutil.copy(DATA / "perov_small.csv", path)
    return path


@pytest.fixture()
def cif_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cifs"
    d.mkdir()
    for name in ("Bi2Se3.cif", "POSCAR_NaCl", "HgTe.vasp", "bad_overlap.cif"):
        shutil.copy(DATA / name, d / name)
    return d


def test_round_trip_cif_arrays_cif(cif_dir, tmp_path):
    originals = {Path(r.source).name: r.structure for r in read_structures(cif_dir) if r.ok}
    data = load_dataset(cif_dir)
    assert len(data) == 3 and set(data.ids) == {str(cif_dir / n) for n in originals}
    out = tmp_path / "back"
    for i in range(len(data)):
        write_cif(data.structure(i), out / f"{i}.cif")
        back = read_structure(out / f"{i}.cif")
        assert MATCHER.fit(originals[Path(data.ids[i]).name], back)
    # arrays obey the documented layout
    assert data.frac.dtype == np.float64 and data.species.dtype == np.int64 and data.lattices.shape == (3, 3, 3)
    assert np.all((data.frac >= 0) & (data.frac < 1))
    np.testing.assert_array_equal(data.offsets, np.cumsum(data.num_atoms) - data.num_atoms)
    assert int(data.num_atoms.sum()) == data.frac.shape[0] == data.species.shape[0]


def test_csv_properties_nan_and_skipped(small_csv):
    data = load_dataset(small_csv)
    manifest = cache_manifest(small_csv)
    assert len(data) == 5 and manifest["skipped"] == 1 and manifest["num_structures"] == 5
    assert "#3" in manifest["skipped_examples"][0]["source"]
    assert data.ids == ["18517", "15400", "3409", "6195", "11339"]
    assert np.isnan(data.properties["dir_gap"][3]) and data.properties["heat_all"][0] == pytest.approx(2.76)
    assert list(data.labels["formula"][:2]) == ["CuCdN3", "VIrO3"]
    assert isinstance(data.frac, np.memmap)


def test_cache_rebuilt_only_when_source_changes(small_csv):
    before = sorted(p.name for p in small_csv.parent.iterdir())
    load_dataset(small_csv)
    m1 = cache_manifest(small_csv)
    cache = default_cache_dir(small_csv, m1["source_sha256"])
    assert cache.parent == Path(os.environ["TOPODIFF_CACHE"]) / "datasets" and (cache / "manifest.json").is_file()
    mtime1 = (cache / "manifest.json").stat().st_mtime_ns

    # unchanged source (even with a new mtime): no rebuild
    os.utime(small_csv, None)
    load_dataset(small_csv)
    assert (cache / "manifest.json").stat().st_mtime_ns == mtime1
    assert cache_manifest(small_csv)["built_at"] == m1["built_at"]

    # changed contents: a cache under the new hash with the new data; the old one is untouched
    time.sleep(0.01)
    text = small_csv.read_text().replace("2.76,", "9.99,", 1)
    small_csv.write_text(text)
    data = load_dataset(small_csv)
    m2 = cache_manifest(small_csv)
    assert m2["source_sha256"] != m1["source_sha256"]
    assert default_cache_dir(small_csv, m2["source_sha256"]) != cache
    assert data.properties["heat_all"][0] == pytest.approx(9.99)
    assert sorted(p.name for p in small_csv.parent.iterdir()) == before  # nothing written beside the input


def test_load_from_cache_dir_and_explicit_cache_dir(small_csv, tmp_path):
    out = tmp_path / "mycache"
    a = load_dataset(small_csv, cache_dir=out)
    b = load_dataset(out)
    np.testing.assert_array_equal(a.frac, b.frac)
    assert a.ids == b.ids
    assert not small_csv.with_name(small_csv.name + ".cache").exists()


def test_standardized_cache_is_separate(cif_dir):
    raw = load_dataset(cif_dir)
    std = load_dataset(cif_dir, standardize=True)
    assert raw.num_atoms.tolist() == [15, 8, 8] and std.num_atoms.tolist() == [5, 2, 2]
    assert np.all((std.frac >= 0) & (std.frac < 1))
    for i in range(3):
        assert MATCHER.fit(raw.structure(i), std.structure(i))
    assert cache_manifest(cif_dir)["standardize"] is False
    assert cache_manifest(cif_dir, standardize=True)["standardize"] is True


def test_no_usable_rows_and_missing_source(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    shutil.copy(DATA / "bad_empty.cif", d / "a.cif")
    shutil.copy(DATA / "bad_overlap.cif", d / "b.cif")
    with pytest.raises(TopodiffInputError, match="no usable structures"):
        load_dataset(d)
    with pytest.raises(TopodiffInputError, match="no such"):
        load_dataset(tmp_path / "nothing.csv")
    (tmp_path / "nocif.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TopodiffInputError, match="cif"):
        load_dataset(tmp_path / "nocif.csv")


def test_readonly_source_dir_caches_in_home(small_csv, tmp_path, monkeypatch):
    monkeypatch.delenv("TOPODIFF_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(small_csv, ro / "v.csv")
    os.chmod(ro, 0o555)
    try:
        data = load_dataset(ro / "v.csv")
        assert len(data) == 5
        assert list(ro.iterdir()) == [ro / "v.csv"]
        assert len(list((tmp_path / "xdg" / "topodiff" / "datasets").iterdir())) == 1
    finally:
        os.chmod(ro, 0o755)


def test_unwritable_cache_location_reads_without_a_cache(small_csv, tmp_path, monkeypatch):
    """A read-only cache location (e.g. a read-only home in a container) is not an error: the data
    is read directly and nothing is written anywhere."""
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    monkeypatch.setenv("TOPODIFF_CACHE", str(locked / "cache"))
    try:
        data = load_dataset(small_csv)
        assert len(data) == 5 and not isinstance(data.frac, np.memmap)
        assert list(locked.iterdir()) == []
    finally:
        os.chmod(locked, 0o755)


def test_subset_and_concat(small_csv, cif_dir):
    a = load_dataset(small_csv)
    b = load_dataset(cif_dir)
    sub = a.subset([4, 0, 2])
    assert len(sub) == 3 and sub.ids == [a.ids[4], a.ids[0], a.ids[2]]
    for j, i in enumerate([4, 0, 2]):
        assert sub.structure(j) == a.structure(i)
        assert sub.properties["heat_ref"][j] == a.properties["heat_ref"][i]
    both = CrystalArrays.concat([a, b])
    assert len(both) == len(a) + len(b) and both.frac.shape[0] == a.frac.shape[0] + b.frac.shape[0]
    assert both.structure(len(a)) == b.structure(0)
    assert np.isnan(both.properties["heat_all"][len(a):]).all()  # b has no such column
    assert len(CrystalArrays.concat([])) == 0
    with pytest.raises(IndexError):
        a.subset([99])


def test_save_load_arrays_round_trip(cif_dir, tmp_path):
    data = load_dataset(cif_dir).subset([2, 1])
    data.properties["gap"] = np.array([0.1, np.nan])
    data.labels["topo_class"] = np.array(["strong_ti", None], dtype=object)
    save_arrays(data, tmp_path / "arr")
    back = load_arrays(tmp_path / "arr")
    np.testing.assert_array_equal(back.species, data.species)
    np.testing.assert_array_equal(back.properties["gap"], data.properties["gap"])
    assert back.labels["topo_class"].tolist() == ["strong_ti", None]
    with pytest.raises(TopodiffInputError, match="not a topodiff dataset cache"):
        load_arrays(tmp_path)


def test_split_indices_partition_and_reproducible():
    s = split_indices(1000, seed=3)
    allidx = np.concatenate(list(s.values()))
    assert sorted(allidx.tolist()) == list(range(1000))
    assert [len(s[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    again = split_indices(1000, seed=3)
    assert all(np.array_equal(s[k], again[k]) for k in s)
    other = split_indices(1000, seed=4)
    assert not np.array_equal(s["val"], other["val"])
    # a fresh interpreter gives the same split (no hidden global state)
    code = ("from topodiff.crystal.splits import split_indices;"
            "print(split_indices(1000, seed=3)['val'].tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == s["val"].tolist()
    # numpy's PCG64 stream is platform independent: pin a small case
    assert split_indices(10, seed=0, fractions=(0.6, 0.2, 0.2))["test"].tolist() == \
        sorted(np.random.default_rng(0).permutation(10)[8:].tolist())


def test_split_groups_never_straddle():
    groups = np.repeat(np.arange(50), 7)[np.random.default_rng(1).permutation(350)]
    s = split_indices(350, seed=0, groups=groups)
    seen = {}
    for name, idx in s.items():
        for g in set(groups[idx].tolist()):
            assert seen.setdefault(g, name) == name
    assert sum(len(v) for v in s.values()) == 350
    assert 0.7 < len(s["train"]) / 350 < 0.9


@pytest.mark.parametrize("bad", [(0.5, 0.2), (0.8, 0.3, -0.1), (1.0,)])
def test_split_bad_fractions(bad):
    with pytest.raises(TopodiffInputError):
        split_indices(10, fractions=bad)


def test_perov5_subset_builds_and_round_trips(tmp_path):
    if not PEROV_VAL.exists():
        pytest.skip(f"shared data not available at {PEROV_VAL} (a user's clone has no ../shared)")
    import pandas as pd

    df = pd.read_csv(PEROV_VAL).iloc[:300]
    path = tmp_path / "perov300.csv"
    df.to_csv(path, index=False)
    data = load_dataset(path, num_workers=1)
    assert len(data) == 300 and set(data.num_atoms.tolist()) == {5}
    records = read_structures(path)
    for i in (0, 17, 299):
        assert MATCHER.fit(records[i].structure, data.structure(i))


@pytest.mark.slow
def test_perov5_val_full_build_under_a_minute(tmp_path):
    if not PEROV_VAL.exists():
        pytest.skip(f"shared data not available at {PEROV_VAL}")
    t0 = time.perf_counter()
    data = load_dataset(PEROV_VAL, cache_dir=tmp_path / "c")
    assert time.perf_counter() - t0 < 60
    assert len(data) == 3787


def test_refuses_to_overwrite_a_foreign_directory(small_csv, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(TopodiffInputError, match="refusing to overwrite"):
        load_dataset(small_csv, cache_dir=foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
