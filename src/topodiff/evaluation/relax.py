"""Relaxation and energies with the CHGNet universal potential (weights ship in the wheel).

CHGNet 0.4.2 (Deng et al., Nat. Mach. Intell. 2023) predicts the energy per atom (eV/atom, trained
on MPtrj, i.e. on MP2020-corrected GGA/GGA+U energies), forces (eV/Å) and stress (GPa). Positions
and cell are relaxed together with ASE's ``FrechetCellFilter`` and BFGS (or FIRE). Single-point
energies of many crystals go through CHGNet's batched ``predict_structure``.
"""
from __future__ import annotations

import contextlib
import io
import sys
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from pymatgen.core import Structure

from pymatgen.analysis.structure_matcher import StructureMatcher

from topodiff.evaluation.guards import DEFAULT_LIMITS, CrystalLimits, ResourceLimitError, check_relax_geometry
from topodiff.evaluation.metrics import structure_valid


@dataclass
class RelaxResult:
    """Outcome of relaxing one crystal.

    ``energy_initial`` / ``energy_final`` are CHGNet energies in eV/atom; ``rmsd`` (Å) is
    pymatgen's StructureMatcher RMS displacement generated → relaxed (DiffCSP tolerances, no
    primitive-cell reduction) converted
    from units of ``(V/N)^(1/3)`` to Å with the relaxed cell, None when the matcher finds no match;
    ``displacement_rmsd`` (Å) is the plain RMS of the atomic displacements (minimum image, rigid
    translation removed, in the relaxed cell): relaxation keeps atom order, so no matching is needed.
    ``symmetrized`` is the symmetrised standard primitive cell of the relaxed crystal
    (:func:`topodiff.crystal.symmetry.analyze`, 0.1 Å / 5°; None when spglib finds no group): the
    crystal that is screened, judged and shown after relaxation (:attr:`kept`), so a crystal that
    relaxes to within the tolerance of R-3m is R-3m everywhere; ``structure`` keeps the atom order.
    """

    structure: Structure | None
    energy_initial: float | None = None
    energy_final: float | None = None
    rmsd: float | None = None
    displacement_rmsd: float | None = None
    steps: int = 0
    converged: bool = False
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    symmetrized: Structure | None = None

    @property
    def kept(self) -> Structure | None:
        """The relaxed crystal as used downstream: ``symmetrized`` when found, else ``structure``."""
        return self.symmetrized if self.symmetrized is not None else self.structure

    def as_row(self) -> dict[str, Any]:
        return {"energy_initial": self.energy_initial, "energy_final": self.energy_final,
                "rmsd_to_relaxed": self.rmsd, "displacement_rmsd": self.displacement_rmsd,
                "relax_steps": self.steps, "relax_converged": self.converged, "relax_error": self.error}


@lru_cache(maxsize=1)
def load_chgnet():
    """The pretrained CHGNet model (loaded once per process, offline)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        from chgnet.model import CHGNet

        return CHGNet.load(verbose=False)


def single_point_energies(structures: Sequence[Structure], *, batch_size: int = 32) -> np.ndarray:
    """CHGNet energies per atom ``[n]`` (eV/atom) of many crystals, batched; NaN where it fails."""
    out = np.full(len(structures), np.nan)
    if not structures:
        return out
    model = load_chgnet()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            preds = model.predict_structure(list(structures), task="e", batch_size=batch_size)
            out[:] = [float(p["e"]) for p in preds]
        except Exception:  # one bad crystal spoils a batch: fall back to one by one
            for i, s in enumerate(structures):
                try:
                    out[i] = float(model.predict_structure(s, task="e")["e"])
                except Exception:
                    pass
    return out


def displacement_rmsd(initial: Structure, final: Structure) -> float:
    """RMS atomic displacement (Å) between two states of the same crystal (same atom order).

    Fractional displacements are wrapped to [-0.5, 0.5), their mean (a rigid translation) removed,
    and the result expressed in the final cell.
    """
    d = final.frac_coords - initial.frac_coords
    d -= np.round(d)
    d -= d.mean(axis=0, keepdims=True)
    cart = d @ final.lattice.matrix
    return float(np.sqrt((cart ** 2).sum(axis=1).mean()))


def matcher_rmsd(initial: Structure, final: Structure) -> float | None:
    """StructureMatcher RMS displacement (Å) initial → final, None without a match."""
    try:
        # primitive_cell=False: reducing a symmetric relaxed cell to its primitive cell while the
        # generated one has lower symmetry makes pymatgen under-report the displacement.
        res = StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3, primitive_cell=False).get_rms_dist(initial, final)
    except Exception:
        return None
    if res is None:
        return None
    return float(res[0]) * (final.volume / len(final)) ** (1.0 / 3.0)


OPTIMIZERS = ("BFGS", "FIRE")


def guarded_calculator(inner: Any, volume0: float, limits: CrystalLimits = DEFAULT_LIMITS) -> Any:
    """An ASE calculator that checks the geometry (:func:`~topodiff.evaluation.guards.check_relax_geometry`:
    volume change, neighbour count) *before* every call of ``inner``, so an exploding or collapsing cell
    stops with a :class:`~topodiff.evaluation.guards.ResourceLimitError` before the potential builds its
    graph for it."""
    from ase.calculators.calculator import Calculator, all_changes

    class GuardedCalculator(Calculator):
        implemented_properties = ["energy", "free_energy", "forces", "stress"]

        def calculate(self, atoms: Any = None, properties: Any = ("energy",),
                      system_changes: Any = all_changes) -> None:
            super().calculate(atoms, properties, system_changes)
            check_relax_geometry(self.atoms.cell.array, self.atoms.positions, volume0, limits)
            inner.calculate(self.atoms, properties, system_changes)
            self.results = dict(inner.results)

    return GuardedCalculator()


def relax_structure(structure: Structure, *, fmax: float = 0.1, steps: int = 300,
                    relax_cell: bool = True, optimizer: str = "BFGS", calculator: Any = None,
                    limits: CrystalLimits = DEFAULT_LIMITS) -> RelaxResult:
    """Relax one crystal (positions + cell) with CHGNet until max |F| < ``fmax`` eV/Å.

    ``optimizer``: ``"BFGS"`` (default) or ``"FIRE"`` (ASE). On rattled Perov-5 crystals BFGS
    needed half of FIRE's steps and converged where FIRE hit 300 steps (docs/evaluation.md).
    ``calculator``: another ASE calculator instead of CHGNet. ``limits``: every force call is
    guarded (:func:`guarded_calculator`); a crystal whose cell explodes or collapses stops with an
    ``error`` saying which limit it crossed.

    Structurally invalid input (atoms closer than 0.5 Å) is not relaxed: such overlaps make the
    potential blow up, and the result carries an ``error``.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS, FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    if optimizer not in OPTIMIZERS:
        from topodiff.errors import TopodiffInputError

        raise TopodiffInputError(f"unknown optimizer {optimizer!r} (expected {' or '.join(OPTIMIZERS)})")
    if not structure_valid(structure):
        return RelaxResult(structure=None, error="structurally invalid (atoms closer than 0.5 Å or tiny cell): not relaxed")
    opt = None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            if calculator is None:
                from chgnet.model.dynamics import CHGNetCalculator

                calculator = CHGNetCalculator(model=load_chgnet(), use_device="cpu")
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = guarded_calculator(calculator, float(structure.volume), limits)
            target = FrechetCellFilter(atoms) if relax_cell else atoms
            opt = {"BFGS": BFGS, "FIRE": FIRE}[optimizer](target, logfile=None)
            converged = bool(opt.run(fmax=fmax, steps=steps))
            n_steps = int(opt.nsteps)
            relaxed = AseAtomsAdaptor.get_structure(atoms)
        except ResourceLimitError as exc:
            return RelaxResult(structure=None, error=str(exc), steps=int(opt.nsteps) if opt is not None else 0)
        except Exception as exc:  # CHGNet/ASE failure on a pathological crystal (MemoryError included)
            return RelaxResult(structure=None, error=f"relaxation failed: {type(exc).__name__}: {exc}")
    if not np.all(np.isfinite(relaxed.lattice.matrix)) or relaxed.volume <= 0:
        return RelaxResult(structure=None, error="relaxation diverged (non-finite cell)")
    from topodiff.crystal.symmetry import analyze

    sym = analyze(relaxed)
    return RelaxResult(structure=relaxed, steps=n_steps, converged=converged,
                       rmsd=matcher_rmsd(structure, relaxed),
                       displacement_rmsd=displacement_rmsd(structure, relaxed),
                       symmetrized=sym.primitive if sym is not None else None)


def _calculator_energies(calculator: Any, structures: Sequence[Structure]) -> np.ndarray:
    """Energies per atom (eV/atom) of ``structures`` from an ASE ``calculator``; NaN where it fails."""
    from pymatgen.io.ase import AseAtomsAdaptor

    out = np.full(len(structures), np.nan)
    for i, s in enumerate(structures):
        try:
            atoms = AseAtomsAdaptor.get_atoms(s)
            atoms.calc = calculator
            out[i] = float(atoms.get_potential_energy()) / len(atoms)
        except Exception:  # noqa: BLE001 - a failing crystal gets NaN, as with CHGNet
            pass
    return out


def relax_structures(structures: Sequence[Structure | None], *, fmax: float = 0.1, steps: int = 300,
                     relax_cell: bool = True, optimizer: str = "BFGS", progress: bool = True,
                     calculator: Any = None, limits: CrystalLimits = DEFAULT_LIMITS) -> list[RelaxResult]:
    """Relax many crystals; energies before/after come from batched single points.

    Parameters
    ----------
    structures : crystals (``None`` entries give a result with an error).
    fmax : force threshold, eV/Å. steps : maximum optimiser steps per crystal.
    optimizer : ``"BFGS"`` or ``"FIRE"``. calculator, limits : see :func:`relax_structure`.

    Returns
    -------
    One :class:`RelaxResult` per input, in order.
    """
    from tqdm import tqdm

    results: list[RelaxResult] = []
    bar = tqdm(structures, desc="relax (CHGNet)", unit="crystal", file=sys.stderr, disable=not progress)
    for s in bar:
        results.append(RelaxResult(structure=None, error="no structure") if s is None
                       else relax_structure(s, fmax=fmax, steps=steps, relax_cell=relax_cell, optimizer=optimizer,
                                           calculator=calculator, limits=limits))
    ok_in = [i for i, s in enumerate(structures) if s is not None and results[i].error is None]
    energies = single_point_energies if calculator is None else (
        lambda structs: _calculator_energies(calculator, structs))
    e0 = energies([structures[i] for i in ok_in])
    e1 = energies([results[i].structure for i in ok_in])
    for k, i in enumerate(ok_in):
        results[i].energy_initial = None if np.isnan(e0[k]) else float(e0[k])
        results[i].energy_final = None if np.isnan(e1[k]) else float(e1[k])
    return results
