"""``verify --dft``: first-principles topology of one crystal (GPAW PBE + spin-orbit → Z2, gaps, verdict).

Steps for one crystal (:func:`verify_structure`):

1. refuse what a spin-paired, semilocal calculation cannot judge — f-electron elements and the
   magnetic 3d ions — and cells above ``max_atoms`` (the CPU budget), with the limit stated;
2. find the inversion centre with spglib and translate the crystal so that it sits at the origin;
3. LCAO (dzp) PBE ground state on an even Γ-centred mesh ``n_i = max(4, 2⌈k_density/(2|a_i|)⌉)``, then the
   LCAO matrices with non-self-consistent spin-orbit coupling on the full mesh
   (:mod:`topodiff.dft.lcao`), turned into an orthogonal tight-binding model (:mod:`topodiff.dft.model`);
4. Z2 by Fu-Kane parity (inversion) or adaptive WCC flow (no inversion); with inversion and
   ``cross_check`` the WCC route runs too, and a disagreement makes the result ``inconclusive``;
5. the verdict (:func:`topodiff.dft.topology.verdict`): a direct gap below 0.15 eV, or routes that
   disagree, are ``inconclusive`` at the LCAO level and escalate to the plane-wave check
   (:mod:`topodiff.dft.pw`), whose verdict replaces the LCAO one (``z2_lcao`` keeps the latter).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from topodiff.errors import TopodiffInputError

MAX_ATOMS = 12
K_DENSITY = 18.0  # Å
#: f-electron elements (Ce-Lu, Th-Lr) and magnetic 3d ions: non-spin-polarised PBE cannot judge them.
F_ELEMENTS = set(range(58, 72)) | set(range(90, 104))
MAGNETIC_3D = {24, 25, 26, 27, 28}  # Cr, Mn, Fe, Co, Ni


def precheck(structure: Any, *, max_atoms: int = MAX_ATOMS, symprec: float = 1e-3, symmetrize: float | None = None
             ) -> tuple[Any, tuple[np.ndarray, np.ndarray] | None, int | None]:
    """:func:`check_supported` on the primitive cell, then :func:`centre_on_inversion` (cheap: no DFT).
    ``symmetrize`` (Å): first replace the crystal by its symmetrised standard primitive cell at that
    tolerance (:func:`topodiff.crystal.symmetry.symmetrized`), as ``screen --symmetrize`` does."""
    if symmetrize is not None:
        from topodiff.crystal.symmetry import symmetrized

        structure = symmetrized(structure, symmetrize)[0]
    atoms, inversion, sg = centre_on_inversion(structure, symprec)
    check_supported(structure, n_atoms=len(atoms), max_atoms=max_atoms)
    return atoms, inversion, sg


def check_supported(structure: Any, *, n_atoms: int | None = None, max_atoms: int = MAX_ATOMS) -> None:
    """Raise :class:`TopodiffInputError` for f-electron / magnetic elements or more than ``max_atoms``
    atoms (``n_atoms``: atoms of the primitive cell, default those of ``structure``)."""
    from pymatgen.core import Element

    z = set(int(x) for x in structure.atomic_numbers)
    bad_f = sorted(Element.from_Z(x).symbol for x in z & F_ELEMENTS)
    if bad_f:
        raise TopodiffInputError(f"{structure.composition.reduced_formula}: f-electron element(s) {', '.join(bad_f)}: "
                                 "spin-paired PBE cannot treat localised f shells; not verified")
    bad_m = sorted(Element.from_Z(x).symbol for x in z & MAGNETIC_3D)
    if bad_m:
        raise TopodiffInputError(f"{structure.composition.reduced_formula}: magnetic element(s) {', '.join(bad_m)}: "
                                 "Z2 needs time-reversal symmetry and a spin-paired calculation; not verified")
    n = len(structure) if n_atoms is None else n_atoms
    if n > max_atoms:
        raise TopodiffInputError(f"{structure.composition.reduced_formula}: {n} atoms per primitive cell exceeds "
                                 f"the DFT budget of {max_atoms} atoms (--max-atoms; cost grows ~ atoms^3)")


def centre_on_inversion(structure: Any, symprec: float = 1e-3
                        ) -> tuple[Any, tuple[np.ndarray, np.ndarray] | None, int | None]:
    """``(atoms, inversion, space_group)``: an ``ase.Atoms`` of the primitive cell (spglib, not idealised) with the inversion
    centre (if any) at the origin, the atom map ``(perm, shift)`` of ``x → −x``, and the space group."""
    import spglib

    from topodiff.crystal.io import structure_to_atoms
    from topodiff.physics.parity import find_inversion

    from ase import Atoms

    atoms = structure_to_atoms(structure)
    cell = (np.asarray(atoms.cell[:]), np.mod(atoms.get_scaled_positions(wrap=False), 1.0), atoms.numbers)
    prim = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True, symprec=symprec)
    if prim is not None and len(prim[2]) < len(atoms):  # primitive cell, geometry untouched
        atoms = Atoms(numbers=prim[2], cell=prim[0], scaled_positions=prim[1], pbc=True)
    frac = np.mod(atoms.get_scaled_positions(wrap=False), 1.0)
    cell = (np.asarray(atoms.cell[:]), frac, atoms.numbers)
    data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if data is None:
        return atoms, None, None
    inv = [k for k, rot in enumerate(data.rotations) if np.array_equal(rot, -np.eye(3, dtype=int))]
    if not inv:
        return atoms, None, int(data.number)
    frac = np.mod(frac - 0.5 * np.asarray(data.translations[inv[0]]), 1.0)  # x → −x + t: centre t/2 → 0
    atoms.set_scaled_positions(frac)
    found = find_inversion(frac, atoms.numbers, np.asarray(atoms.cell[:]), symprec=symprec)
    return atoms, found, int(data.number)


def valence_electrons(atoms: Any) -> int:
    """Valence electrons per cell of the PBE PAW setups GPAW uses (``gpaw-data``)."""
    from gpaw.setup import create_setup
    from gpaw.xc import XC

    xc = XC("PBE")
    nv = {z: create_setup(str(s), xc).Nv for z, s in zip(atoms.numbers, atoms.get_chemical_symbols())}
    return int(round(sum(nv[z] for z in atoms.numbers)))


def band_data(model: Any, filling: int, n: int = 160, window: int = 8) -> dict[str, Any]:
    """Bands of the DFT model along the high-symmetry path: ``window`` bands each side of the
    filling, energies (eV) relative to the valence-band maximum on the path; for plots."""
    from topodiff.physics.bands import band_structure

    bs = band_structure(model, n=n)
    lo, hi = max(0, filling - window), min(model.num_bands, filling + window)
    vbm = float(bs.energies[:, filling - 1].max())
    return {"x": np.round(bs.x, 5).tolist(), "energies": np.round(bs.energies[:, lo:hi] - vbm, 4).tolist(),
            "ticks": [float(t) for t in bs.ticks], "labels": list(bs.labels), "first_band": lo, "filling": filling}


def _z2_routes(model: Any, data: Any, inversion: Any, cross_check: bool) -> dict[str, Any]:
    from topodiff.dft.topology import parity_route, wcc_route

    out: dict[str, Any] = {}
    if inversion is not None:
        try:
            out.update(parity_route(model, data.atom_of_orbital, data.l_of_orbital, inversion))
            out["route"] = "parity"
        except ArithmeticError as exc:  # degeneracy at the filling on a TRIM
            out.update(z2=None, route="parity", note=f"parity route failed: {exc}")
    if inversion is None or cross_check:
        wcc = wcc_route(model)
        out["z2_wcc"] = wcc["z2"]
        out["wcc_lines"] = wcc["lines"]
        if wcc.get("warning"):
            out["wcc_warning"] = wcc["warning"]
        if inversion is None:
            out.update(z2=wcc["z2"], route="wcc")
    return out


def validate_options(opts: dict[str, Any]) -> None:
    """Raise :class:`TopodiffInputError` on a bad ``basis`` or ``k_density``."""
    if opts.get("basis", "lcao") not in ("lcao", "pw"):
        raise TopodiffInputError(f"--basis must be lcao or pw, got {opts['basis']!r}")
    if not float(opts.get("k_density", K_DENSITY)) > 0:
        raise TopodiffInputError(f"--kdensity must be > 0 Å, got {opts['k_density']}")
    tol = opts.get("symmetrize")
    if tol is not None and not (np.isfinite(float(tol)) and 0 < float(tol) <= 0.5):
        raise TopodiffInputError(f"--symmetrize must be a tolerance in (0, 0.5] Å, got {tol}")


def _needs_pw(row: dict[str, Any], basis: str, escalate: bool) -> bool:
    """Plane waves on request, or when the LCAO result is borderline (small gap, routes disagree)."""
    if row["verdict"] == "metal":
        return False
    return basis == "pw" or (escalate and row["verdict"] == "inconclusive" and row.get("z2") is not None)


def verify_structure(structure: Any, *, basis: str = "lcao", k_density: float = K_DENSITY, soc: bool = True,
                     cross_check: bool = True, max_atoms: int = MAX_ATOMS, escalate: bool = True, h: float = 0.2,
                     symprec: float = 1e-3, symmetrize: float | None = None) -> dict[str, Any]:
    """DFT topology of one crystal (see the module docstring). Energies in eV, times in s.

    Returns the contract row (without ``source``): ``formula``, ``z2`` ``[ν0, ν1, ν2, ν3]`` or None,
    ``gap_direct``, ``gap_indirect``, ``route``, ``basis``, ``verdict``, ``seconds``, plus
    ``space_group``, ``n_atoms``, ``k_mesh``, ``soc``, ``parities`` (per TRIM), ``z2_wcc``, ``reason``,
    ``timings`` (wall s per stage: ``scf``, ``matrices``, ``model``, ``z2``, ``pw``).
    ``symmetrize`` (Å): verify the symmetrised standard primitive cell at that tolerance (:func:`precheck`).
    """
    from topodiff.dft.lcao import mesh_for, require_gpaw, run_lcao
    from topodiff.dft.model import dft_model, lowdin_hamiltonians
    from topodiff.dft.topology import mesh_gaps, verdict

    t0, c0 = time.perf_counter(), time.process_time()
    validate_options({"basis": basis, "k_density": k_density, "symmetrize": symmetrize})
    require_gpaw()
    atoms, inversion, sg = precheck(structure, max_atoms=max_atoms, symprec=symprec, symmetrize=symmetrize)
    mesh = mesh_for(np.asarray(atoms.cell[:]), k_density)
    n_valence = valence_electrons(atoms)
    if n_valence % 2:  # Kramers pairs at the TRIM: band N_e meets band N_e + 1 there, no SCF needed
        row = {"formula": structure.composition.reduced_formula, "space_group": sg, "n_atoms": len(atoms),
               "k_mesh": None, "soc": soc, "basis": None, "gap_direct": None, "gap_indirect": None, "z2": None,
               "route": None, "n_valence": n_valence, "verdict": "metal",
               "reason": verdict(None, 0.0, n_valence)[1] + " (from the PAW valence counts; no SCF run)"}
        return {**row, "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - c0, 2)}
    clock = _Stages()
    data = run_lcao(atoms, mesh, soc=soc, h=h)
    clock.done("lcao")
    Hk = lowdin_hamiltonians(data, soc)
    gap_direct, gap_indirect, _ = mesh_gaps(Hk, data.n_valence)
    if data.n_valence != n_valence:
        raise RuntimeError(f"valence count {data.n_valence} of the LCAO run differs from the setups' {n_valence}")
    row: dict[str, Any] = {"formula": structure.composition.reduced_formula, "space_group": sg,
                           "n_atoms": len(atoms), "k_mesh": list(mesh), "soc": soc, "basis": "lcao",
                           "gap_direct": round(gap_direct, 4), "gap_indirect": round(gap_indirect, 4),
                           "z2": None, "route": "parity" if inversion is not None else "wcc",
                           "n_valence": data.n_valence, "energy": round(data.energy, 5)}
    agree = True
    model = dft_model(data, soc=soc, name=row["formula"], Hk=Hk)
    try:  # the bands along the path are for plots: a k-path failure must not lose the verdict
        row["bands"] = band_data(model, data.n_valence)
    except TopodiffInputError as exc:
        row["bands"], row["bands_error"] = None, str(exc)
    clock.done("model")
    if data.n_valence % 2 == 0 and gap_direct > 0:
        row.update(_z2_routes(model, data, inversion, cross_check))
        if row.get("z2") is not None and row.get("z2_wcc") is not None:
            agree = row["z2"] == row["z2_wcc"]
    clock.done("z2")
    row["verdict"], reason = verdict(row["z2"], gap_direct, data.n_valence, routes_agree=agree)
    if _needs_pw(row, basis, escalate):
        from topodiff.dft.pw import pw_check

        row.update(pw_check(atoms, inversion, mesh, soc=soc, lcao_row=row))
        reason = row.pop("reason", None)
        clock.done("pw")
    if reason:
        row["reason"] = reason
    if row["verdict"] in ("strong_ti", "weak_ti", "trivial_insulator") and row["gap_indirect"] < -0.01:
        overlap = (f"semimetal: bands overlap by {-row['gap_indirect']:.2f} eV (indirect gap < 0); the verdict "
                   "classifies the occupied bands, separated by a direct gap everywhere (catalogue convention)")
        row["note"] = f"{row['note']}; {overlap}" if row.get("note") else overlap
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["cpu_seconds"] = round(time.process_time() - c0, 2)  # this process: less sensitive to a busy machine
    row["timings"] = {**clock.stages, "scf_wall": round(data.scf_seconds, 2), "matrices_wall": round(data.nscf_seconds, 2)}
    return row


class _Stages:
    """Wall and CPU seconds per stage: ``stages[name] = [wall, cpu]``."""

    def __init__(self) -> None:
        self.stages: dict[str, list[float]] = {}
        self._t = (time.perf_counter(), time.process_time())

    def done(self, name: str) -> None:
        now = (time.perf_counter(), time.process_time())
        self.stages[name] = [round(now[0] - self._t[0], 2), round(now[1] - self._t[1], 2)]
        self._t = now
