"""Helpers for the training tests: a small synthetic CDVAE-style CSV and a CLI runner."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"

# A, B, X of ABX3 perovskites (cubic cell, slightly distorted): enough variety for a loss to learn
_A = ["Sr", "Ba", "Ca", "K"]
_B = ["Ti", "Zr", "Nb", "Sn"]
_X = ["O", "F"]


def _cif(rng: np.random.Generator) -> str:
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    a = rng.uniform(3.8, 4.3)
    lat = Lattice(np.diag([a, a, a]) + rng.normal(0.0, 0.05, (3, 3)))
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], float)
    frac = (frac + rng.normal(0.0, 0.01, frac.shape)) % 1.0
    species = [rng.choice(_A), rng.choice(_B)] + [rng.choice(_X)] * 3
    return str(CifWriter(Structure(lat, species, frac)))


def write_crystal_csv(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` synthetic perovskites as a CDVAE-style CSV (``material_id, cif, heat_all``)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "material_id", "cif", "heat_all"])
        for i in range(n):
            w.writerow([i, f"syn-{i}", _cif(rng), float(rng.normal())])
    return path


def topodiff_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "topodiff"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "topodiff.cli"]


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return env


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``topodiff ARGS`` and capture stdout/stderr as text."""
    return subprocess.run([*topodiff_cmd(), *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(), cwd=cwd or REPO)
