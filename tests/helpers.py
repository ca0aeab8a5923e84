"""Reusable assertions for topodiff tests (import as ``from helpers import ...``; conftest registers it)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def random_unitary(n: int, batch: tuple[int, ...] = (), *, seed: int = 0) -> torch.Tensor:
    """Haar-random unitaries ``[*batch, n, n]`` (complex128), from the QR of a complex Gaussian."""
    g = torch.Generator().manual_seed(seed)
    z = torch.complex(torch.randn(*batch, n, n, generator=g, dtype=torch.float64),
                      torch.randn(*batch, n, n, generator=g, dtype=torch.float64))
    q, r = torch.linalg.qr(z)
    d = torch.diagonal(r, dim1=-2, dim2=-1)
    return q * (d / d.abs()).unsqueeze(-2)


def rotate_gauge(V: torch.Tensor, *, seed: int = 0, abelian: bool = False) -> torch.Tensor:
    """``V [..., nb, m]`` with an independent random U(m) (or U(1) phase if ``abelian``) at every k."""
    batch, m = V.shape[:-2], V.shape[-1]
    if abelian:
        g = torch.Generator().manual_seed(seed)
        ph = torch.exp(1j * 2 * np.pi * torch.rand(*batch, 1, m, generator=g, dtype=torch.float64))
        return V * ph
    return V @ random_unitary(m, tuple(batch), seed=seed)


def assert_gauge_invariant(fn: Callable[[torch.Tensor], object], V: torch.Tensor, *, trials: int = 3,
                           atol: float = 1e-8) -> None:
    """``fn(V)`` is unchanged (to ``atol``) under random U(1) and U(m) rotations of the states ``V``."""
    ref = np.asarray(torch.as_tensor(fn(V)).detach().cpu(), dtype=float)
    for t in range(trials):
        for abelian in (True, False):
            got = np.asarray(torch.as_tensor(fn(rotate_gauge(V, seed=100 + t, abelian=abelian))).cpu(), dtype=float)
            np.testing.assert_allclose(got, ref, atol=atol, err_msg=f"not gauge invariant (trial {t}, abelian={abelian})")


def assert_integer(x: float, *, tol: float = 1e-6) -> int:
    """Assert ``x`` is within ``tol`` of an integer and return that integer."""
    n = int(round(float(x)))
    assert abs(float(x) - n) < tol, f"{x} is not an integer (tol {tol})"
    return n


def load_sk_crystal(name: str):
    """The hand-written test crystal ``tests/data/sk/<name>.cif`` as a pymatgen Structure."""
    import warnings
    from pathlib import Path

    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(Path(__file__).resolve().parent / "data" / "sk" / f"{name}.cif")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``topodiff ARGV`` in-process through ``topodiff.cli.main``: (exit code, stdout, stderr)."""
    from topodiff.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, out: str, err: str) -> None:
    """Bad input: exit code 2, nothing on stdout, exactly one ``error: ...`` line on stderr."""
    assert code == 2, (code, err)
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def run_cli_json(capsys, *argv: str) -> dict:
    """Run ``topodiff ARGV`` (which must include ``--json``): exit code 0 and exactly one JSON object on stdout."""
    import json

    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, "--json must print exactly one JSON object"
    return json.loads(lines[0])


def flat_calculator():
    """An ASE calculator with zero energy, forces and stress: a stand-in for CHGNet under which a
    relaxation converges at once (tests of what happens after relaxation)."""
    from ase.calculators.calculator import Calculator, all_changes

    class Flat(Calculator):
        implemented_properties = ["energy", "free_energy", "forces", "stress"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            n = len(self.atoms)
            self.results = {"energy": 0.0, "free_energy": 0.0, "forces": np.zeros((n, 3)), "stress": np.zeros(6)}

    return Flat()


def distorted_bi2se3(sigma: float = 0.01, seed: int = 0):
    """Bi2Se3 (tests/data/sk, R-3m) with every atom moved by a random ``sigma`` Å per component:
    R-3m at the project tolerance (0.1 Å), lower symmetry at 1e-3 Å."""
    from pathlib import Path

    from pymatgen.core import Structure

    s = Structure.from_file(Path(__file__).resolve().parent / "data" / "sk" / "Bi2Se3.cif")
    rng = np.random.default_rng(seed)
    for i in range(len(s)):
        s.translate_sites([i], rng.normal(0, sigma, 3), frac_coords=False)
    return s


def load_benchmark(name: str):
    """Import ``benchmarks/<name>.py`` (scripts, not a package) as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod
