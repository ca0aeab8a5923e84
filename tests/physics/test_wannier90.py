"""Wannier90 ``_hr.dat`` reader: layout, degeneracies, Hermiticity, lattice/centres, speed, errors."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from topodiff.errors import ModelError
from topodiff.physics.model import TBModel
from topodiff.physics.wannier90 import read_hr, write_hr

DATA = Path(__file__).resolve().parents[1] / "data" / "w90"


def _random_model(rng: np.random.Generator, nw: int = 3, reach: int = 1) -> TBModel:
    Rs = np.array([(a, b, c) for a in range(-reach, reach + 1) for b in range(-reach, reach + 1)
                   for c in range(-reach, reach + 1)])
    Rs = Rs[[tuple(r) > (0, 0, 0) for r in Rs]]
    i, j = np.meshgrid(np.arange(nw), np.arange(nw), indexing="ij")
    hop_i = np.tile(i.ravel(), len(Rs))
    hop_j = np.tile(j.ravel(), len(Rs))
    hop_R = np.repeat(Rs, nw * nw, axis=0)
    t = rng.normal(size=len(hop_i)) + 1j * rng.normal(size=len(hop_i))
    onsite = rng.normal(size=nw)
    iu, ju = np.triu_indices(nw, 1)
    hop_i = np.concatenate([hop_i, iu]); hop_j = np.concatenate([hop_j, ju])
    hop_R = np.concatenate([hop_R, np.zeros((len(iu), 3), int)])
    t = np.concatenate([t, rng.normal(size=len(iu)) + 1j * rng.normal(size=len(iu))])
    return TBModel(np.eye(3), np.zeros((nw, 3)), onsite, hop_i, hop_j, hop_R, np.round(t, 6))


def _spectrum(model: TBModel, k: np.ndarray) -> np.ndarray:
    return torch.linalg.eigvalsh(model.hamiltonian(k, convention=1)).numpy()


def test_round_trip_with_degeneracies(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model = _random_model(rng)
    Rs, T = model.table
    deg = rng.integers(1, 5, size=len(Rs))
    deg = np.maximum(deg, deg[[np.flatnonzero((Rs == -r).all(1))[0] for r in Rs]])  # deg(R) = deg(-R)
    write_hr(tmp_path / "rand_hr.dat", Rs, T * deg[:, None, None], deg)
    back = read_hr(tmp_path / "rand_hr.dat")
    assert back.dim == 3 and back.num_bands == 3
    k = rng.random((50, 3))
    np.testing.assert_allclose(_spectrum(back, k), _spectrum(model, k), atol=1e-5)
    # one of each (R, m, n) / (-R, n, m) pair: no more hoppings than the model had
    assert len(back.hop_i) <= len(model.hop_i)


def test_hand_made_graphene_with_win_and_centres() -> None:
    model = read_hr(DATA / "graphene_hr.dat")
    assert model.dim == 2  # R3 = 0 everywhere
    np.testing.assert_allclose(np.linalg.norm(model.lattice, axis=1), [2.46, 2.46], atol=1e-8)  # bohr → Å
    np.testing.assert_allclose(model.orbitals, [[1 / 3, 1 / 3], [2 / 3, 2 / 3]], atol=1e-6)
    np.testing.assert_allclose(model.onsite[:, 0, 0].real, [0.5, -0.5])
    # degeneracy 2: the A-A hopping written as 0.2 is 0.1
    aa = (model.hop_i == 0) & (model.hop_j == 0)
    np.testing.assert_allclose(np.abs(model.hop_t[aa, 0, 0]), [0.1], atol=1e-12)
    # at K the Dirac cone is gapped by the Semenoff mass only: E = ±0.5 shifted by the A-A term
    K = np.array([1 / 3, 2 / 3])
    e = torch.linalg.eigvalsh(model.hamiltonian(K)).numpy()
    aa_K = 2 * 0.1 * np.cos(2 * np.pi * (K[0] - K[1]))
    np.testing.assert_allclose(sorted(e), sorted([-0.5, 0.5 + aa_K]), atol=1e-9)


def test_without_companions_identity_cell(tmp_path: Path) -> None:
    shutil.copy(DATA / "graphene_hr.dat", tmp_path / "g_hr.dat")
    model = read_hr(tmp_path / "g_hr.dat")
    np.testing.assert_allclose(model.lattice, np.eye(3)[:2])
    np.testing.assert_allclose(model.orbitals, 0.0)
    ref = read_hr(DATA / "graphene_hr.dat")
    k = np.random.default_rng(0).random((20, 2))
    np.testing.assert_allclose(_spectrum(model, k), _spectrum(ref, k), atol=1e-10)


def test_non_hermitian_rejected(tmp_path: Path) -> None:
    text = (DATA / "graphene_hr.dat").read_text().splitlines()
    # R = (1,0,0), m=2, n=1 is -2.7; break its partner (-1,0,0), m=1, n=2
    idx = next(i for i, ln in enumerate(text) if ln.split()[:5] == ["-1", "0", "0", "1", "2"])
    text[idx] = text[idx].replace("-2.700000", "-2.000000")
    (tmp_path / "bad_hr.dat").write_text("\n".join(text) + "\n")
    with pytest.raises(ModelError, match="not Hermitian"):
        read_hr(tmp_path / "bad_hr.dat")


@pytest.mark.parametrize("mutate, where", [
    (lambda t: t[:4] + [t[4].replace("0.500000", "abc")] + t[5:], ":5:"),
    (lambda t: t[:9] + t[10:], "hopping rows"),
    (lambda t: t[:1] + ["two"] + t[2:], ":2:"),
    (lambda t: t[:5] + ["    0    0    0    9    1    0.100000    0.000000"] + t[6:], ":6:"),
])
def test_malformed_files_name_the_line(tmp_path: Path, mutate, where: str) -> None:
    text = (DATA / "graphene_hr.dat").read_text().splitlines()
    (tmp_path / "x_hr.dat").write_text("\n".join(mutate(text)) + "\n")
    with pytest.raises(ModelError, match=where):
        read_hr(tmp_path / "x_hr.dat")


def test_big_file_loads_fast(tmp_path: Path) -> None:
    """~20 MB synthetic file (32 Wannier functions, 405 R-points) must load in a few seconds."""
    rng = np.random.default_rng(3)
    nw = 32
    Rs = np.array([(a, b, c) for a in range(-4, 5) for b in range(-4, 5) for c in range(-2, 3)])
    half = rng.normal(size=(len(Rs), nw, nw)) + 1j * rng.normal(size=(len(Rs), nw, nw))
    partner = np.array([np.flatnonzero((Rs == -r).all(1))[0] for r in Rs])
    H = np.round(0.5 * (half + np.conj(np.swapaxes(half[partner], 1, 2))), 6)
    path = write_hr(tmp_path / "big_hr.dat", Rs, H)
    assert path.stat().st_size > 15e6
    t0 = time.perf_counter()
    model = read_hr(path)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0, f"{elapsed:.1f} s"
    k = rng.random((3, 3))
    Hk = model.hamiltonian(k, convention=1).numpy()
    ref = np.einsum("kr,rmn->kmn", np.exp(2j * np.pi * k @ Rs.T), H)
    np.testing.assert_allclose(Hk, ref, atol=1e-8)
