"""The Python API: topodiff's jobs for scripts and notebooks, on pymatgen / ASE / PythTB objects.

Every function here is a thin layer over the library function the matching ``topodiff`` command
calls, so results carry the same keys as the command's ``--json`` output. Inputs:

* crystals — a pymatgen ``Structure``, an ASE ``Atoms`` (periodic), a path (CIF, POSCAR, extxyz,
  CDVAE CSV, a directory of them or a ``generate`` output directory), or a list of these;
* tight-binding models — a :class:`~topodiff.physics.model.TBModel`, a ``topodiff-tb/1`` JSON or
  Wannier90 ``_hr.dat`` path, a built-in model name, a PythTB ``tb_model``, a TBmodels ``Model``
  (duck-typed) or a crystal (its Slater-Koster model, as ``topodiff screen`` builds it).

The first heavy call applies topodiff's threading default (one thread unless
``TOPODIFF_NUM_THREADS`` or the user's ``OMP_NUM_THREADS``/... say otherwise; see
:mod:`topodiff.threads` and :func:`topodiff.set_threads`). Units: energies in eV, lengths in Å.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from topodiff.errors import TopodiffInputError
from topodiff.threads import ensure_threads

__all__ = ["generate", "screen", "evaluate", "load_model", "invariants", "chern_number", "z2_invariant",
           "weyl_nodes", "band_structure", "band_gaps", "ScreenResult", "Evaluation", "GeneratedStructures"]


# --------------------------------------------------------------------------------------------- inputs
def _is_crystal(obj: Any) -> bool:
    from topodiff.physics.interop import is_crystal_object

    return is_crystal_object(obj)


def _records(crystals: Any) -> list[Any]:
    """``StructureRecord`` s from a path, a Structure/Atoms, or a list mixing them (input order).

    In-memory crystals get the source ``"input[i]"`` (``i``: position in the list) and the same
    checks as files (overlapping atoms, degenerate cell).
    """
    from topodiff.crystal.io import StructureRecord, check_structure, read_structures
    from topodiff.physics.interop import as_structure

    items = [crystals] if isinstance(crystals, (str, os.PathLike)) or _is_crystal(crystals) else list(crystals)
    if not items:
        raise TopodiffInputError("no crystals given")
    records = []
    for i, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            if not Path(item).exists():
                raise TopodiffInputError(f"no such file or directory: {item}")
            records.extend(read_structures(item))
        elif _is_crystal(item):
            s = as_structure(item)
            error = check_structure(s)
            records.append(StructureRecord(f"input[{i}]", None if error else s, error, raw=s if error else None))
        else:
            raise TopodiffInputError(f"input[{i}]: expected a Structure, an ASE Atoms or a path, "
                                     f"got {type(item).__name__}")
    return records


# --------------------------------------------------------------------------------------------- screen
@dataclass(frozen=True)
class ScreenResult:
    """One crystal's Slater-Koster topology screen: the keys of a ``topodiff screen --json`` row.

    Attributes
    ----------
    source : where the crystal came from (``path``, ``path#frame`` or ``input[i]``).
    formula, space_group : reduced formula; space-group number of the crystal's one symmetry analysis
        (:func:`topodiff.crystal.symmetry.analyze`: 0.1 Å, 5°) or None.
    gap : indirect gap (eV, ≥ 0) on the screen's k-mesh; ``direct_gap`` the direct one (eV).
    z2 : ``[ν0, ν1, ν2, ν3]`` in the basis of the screened cell (``row['z2_basis']``), or None;
        ``row['z2_conventional']`` gives them in the standard conventional cell.
    topo_class : ``trivial_insulator`` / ``strong_ti`` / ``weak_ti`` / ``metal`` (the Slater-Koster
        verdict), None on failure.
    catalogue_class, p_topological : the judge trained on DFT catalogues (``trivial`` / ``ti`` /
        ``tci`` / ``semimetal``; probability of a non-trivial class), None when unavailable.
    error : why the crystal could not be screened (None when it was).
    row : the full row exactly as the CLI prints it (:meth:`to_dict`).
    """

    source: str
    formula: str | None
    space_group: int | None
    gap: float | None
    z2: list[int] | None
    topo_class: str | None
    catalogue_class: str | None = None
    p_topological: float | None = None
    direct_gap: float | None = None
    error: str | None = None
    row: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "ScreenResult":
        from topodiff.commands.screen import json_row

        item = json_row(dict(row))
        return cls(item["source"], item["formula"], item["space_group"], item["gap"], item["z2"], item["topo_class"],
                   item.get("catalogue_class"), item.get("p_topological"), item.get("direct_gap"), item.get("error"),
                   item)

    def to_dict(self) -> dict[str, Any]:
        """The ``topodiff screen --json`` row of this crystal (a copy)."""
        return dict(self.row)

    def __getitem__(self, key: str) -> Any:
        return self.row[key]


def screen(crystals: Any, *, workers: int | None = 1, basis: str = "sp3", soc: bool = True,
           metal_rule: str = "auto", gap_tol: float = 0.01, symmetrize: float | None = None) -> list[ScreenResult]:
    """Topology of each crystal from its Slater-Koster tight-binding model (``topodiff screen``).

    Parameters
    ----------
    crystals : Structure, ASE Atoms, path, or a list of them (see the module docstring).
    workers : processes (1: in this process; None: up to 2, as the CLI).
    basis, soc, metal_rule, gap_tol, symmetrize : the CLI options ``--basis``, ``--no-soc``,
        ``--metal-rule``, ``--gap-tol`` (eV) and ``--symmetrize`` (Å).

    Returns
    -------
    One :class:`ScreenResult` per crystal, in input order; failures carry ``error``.
    """
    from topodiff.evaluation.screen import screen_records

    ensure_threads()
    opts: dict[str, Any] = {"basis": basis, "soc": bool(soc), "metal_rule": metal_rule, "gap_tol": float(gap_tol)}
    if symmetrize is not None:
        opts["symmetrize"] = float(symmetrize)
    return [ScreenResult.from_row(r) for r in screen_records(_records(crystals), workers=workers, **opts)]


# --------------------------------------------------------------------------------------------- generate
class GeneratedStructures(list):
    """A list of pymatgen ``Structure`` s with the run's ``metadata`` (``generate``'s metadata.json)
    and ``out_dir`` (where the extxyz/CIF files are, or None when they went to a temporary directory)."""

    metadata: dict[str, Any]
    out_dir: Path | None


def generate(num: int = 8, *, conditions: Mapping[str, Any] | None = None, checkpoint: str | None = None,
             seed: int = 0, steps: int | None = None, guidance: float | None = None, batch_size: int = 128,
             out_dir: str | os.PathLike | None = None, overwrite: bool = False, **options: Any) -> GeneratedStructures:
    """Generate crystals with the diffusion model (``topodiff generate``) as pymatgen Structures.

    Parameters
    ----------
    num : number of crystals.
    conditions : e.g. ``{"topo_class": "strong_ti", "band_gap": 0.3, "chemical_system": "Bi-Se"}``
        (the ``--condition KEY=VALUE`` keys; band gap in eV).
    checkpoint : a checkpoint path or shipped name (None: the shipped default).
    seed, steps, guidance, batch_size : as the CLI options.
    out_dir : keep ``structures.extxyz``, ``cif/`` and ``metadata.json`` there (None: a temporary
        directory, removed afterwards). As with the CLI's ``--out``, a non-empty directory of another
        run is refused unless ``overwrite`` (:func:`topodiff.io_utils.claim_output_dir`).
    options : other keyword arguments of :func:`topodiff.generative.generate.generate_to_dir`
        (``guide_options``, ``prescreen``, ``prescreen_novel``, ``predictor``, ``sampler``, ``templates``: a
        template library path or shipped name, e.g. ``"mp20-ti"``, for known structure types; ``formulas``:
        ``"auto"`` (the checkpoint's formula model where it has one), ``"network"`` or a formula-model file).

    Returns
    -------
    :class:`GeneratedStructures` (a list of Structures, in sampling order; crystals with overlapping
    atoms are included as sampled — ``topodiff.evaluate`` reports their validity).
    """
    from topodiff.crystal.io import read_structures
    from topodiff.generative.generate import generate_to_dir

    ensure_threads()
    conds = {str(k): str(v) for k, v in (conditions or {}).items()}
    with tempfile.TemporaryDirectory(prefix="topodiff-generate-") as tmp:
        target = Path(tmp) if out_dir is None else _claim(out_dir, "generate", overwrite, options={
            "num": num, "conditions": conds, "checkpoint": checkpoint, "seed": seed, "steps": steps, **options})
        meta = generate_to_dir(target, num=num, checkpoint=checkpoint, conditions=conds, guidance=guidance,
                               steps=steps, seed=seed, batch_size=batch_size, **options)
        records = read_structures(target / "structures.extxyz")
    out = GeneratedStructures(r.structure if r.structure is not None else r.raw for r in records)
    out.metadata, out.out_dir = meta, None if out_dir is None else Path(out_dir)
    return out


# --------------------------------------------------------------------------------------------- evaluate
@dataclass
class Evaluation:
    """``topodiff evaluate`` results: ``summary`` (the ``--json`` object's metrics), ``structures``
    (its ``"structures"`` rows, one per crystal) and ``rows`` (every ``structures.csv`` column);
    :meth:`to_dict` is the whole ``--json`` object, ``outputs`` names the files written."""

    summary: dict[str, Any]
    structures: list[dict[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "structures": [dict(r) for r in self.structures]}

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.summary.get("outputs") or {})

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]


def evaluate(crystals: Any, *, reference: Iterable[str | os.PathLike] | None = None, relax: bool = False,
             screen: bool = True, dataset: str | None = None, out_dir: str | os.PathLike | None = None,
             progress: bool = True, overwrite: bool = False) -> Evaluation:
    """Validity, uniqueness, novelty, coverage, relaxation and topology (``topodiff evaluate``).

    Parameters
    ----------
    crystals : a path (as the CLI), or Structures / ASE Atoms (a list; they are written to
        ``out_dir/input.extxyz`` first, so rows name them ``input.extxyz#i``).
    reference : reference sets (CDVAE CSV / extxyz / CIF directory) for novelty and coverage.
    relax : relax with CHGNet (energies in eV/atom, RMSD in Å, energy above hull).
    screen : run the Slater-Koster topology screen (``--no-screen`` when False).
    out_dir : where metrics.json / structures.csv go (None: ``<PATH>_eval`` as the CLI for a path; a
        temporary directory, removed afterwards, for in-memory crystals); claimed as the CLI claims
        ``--out`` (``overwrite`` clears another run's directory).
    """
    from topodiff.crystal.io import write_structures
    from topodiff.evaluation.evaluate import default_out_dir, evaluate_path
    from topodiff.evaluation.outputs import json_rows

    ensure_threads()
    refs = [Path(r) for r in reference] if reference is not None else None
    with tempfile.TemporaryDirectory(prefix="topodiff-evaluate-") as tmp:
        options = {"relax": relax, "dataset": dataset, "screen": screen}
        if isinstance(crystals, (str, os.PathLike)):
            path = Path(crystals)
            if not path.exists():
                raise TopodiffInputError(f"no such file or directory: {path}")
            od = _claim(out_dir or default_out_dir(path), "evaluate", overwrite, [path, *(refs or [])], options)
        else:
            od = Path(tmp) if out_dir is None else _claim(out_dir, "evaluate", overwrite, refs or [], options)
            records = _records(crystals)
            bad = [r.source for r in records if r.structure is None and r.raw is None]
            if bad:
                raise TopodiffInputError(f"unreadable crystals: {', '.join(bad[:5])}")
            path = write_structures([r.structure if r.structure is not None else r.raw for r in records],
                                    od / "input.extxyz")
        summary, rows = evaluate_path(path, reference=refs, relax=relax, out_dir=od, screen=screen,
                                      dataset=dataset, progress=progress)
    summary = {k: v for k, v in summary.items() if k != "reference_distributions"}
    if out_dir is None and not isinstance(crystals, (str, os.PathLike)):
        summary.pop("outputs", None)  # written to a temporary directory, now removed
    return Evaluation(summary, json_rows(rows), rows)


def _claim(out_dir: str | os.PathLike, job: str, overwrite: bool, sources: Iterable[Any] = (),
           options: dict[str, Any] | None = None) -> Path:
    """Own ``out_dir`` for this run as the CLI owns ``--out`` (``claim_run_output``)."""
    from topodiff.commands._common import claim_run_output

    return Path(claim_run_output(Path(out_dir), job, sources=list(sources), options=options, overwrite=overwrite,
                                 resume=job == "evaluate"))


# --------------------------------------------------------------------------------------------- models
def load_model(source: Any, *, filling: int | None = None, params: Mapping[str, Any] | None = None,
               basis: str | None = None, soc: bool | None = None) -> Any:
    """A :class:`~topodiff.physics.model.TBModel` from any model source (see the module docstring).

    ``filling``: occupied bands (default: the source's, else half filling). ``params``: built-in model
    parameters. ``basis`` (``"sp3"`` or ``"sp3s*"``) and ``soc`` (on-site spin-orbit coupling): the
    Slater-Koster options of ``topodiff screen`` when ``source`` is a crystal (defaults ``"sp3"``,
    True); an error for other sources. The physics commands call this too.
    """
    from topodiff.physics import interop
    from topodiff.physics.io import load_model as load_file_or_name
    from topodiff.physics.model import TBModel

    ensure_threads()
    crystal = _is_crystal(source) or (isinstance(source, (str, os.PathLike)) and interop.is_crystal_file(source))
    if not crystal and (basis is not None or soc is not None):
        raise TopodiffInputError("--basis / --no-soc apply only to crystals (their Slater-Koster model)")
    if crystal or interop.is_pythtb_model(source) or interop.is_tbmodels_model(source):
        if params:
            raise TopodiffInputError("--param applies only to built-in models")
        if crystal:
            model = interop.crystal_model(source, basis=basis or "sp3", soc=True if soc is None else bool(soc))
        else:
            model = (interop.from_pythtb if interop.is_pythtb_model(source) else interop.from_tbmodels)(source)
        return load_file_or_name(model, filling=filling)
    if not isinstance(source, (str, os.PathLike, TBModel)):
        raise TopodiffInputError(f"cannot make a tight-binding model from {type(source).__name__}")
    return load_file_or_name(source, filling=filling, params=params)


def invariants(model: Any, *, nk: int | None = None, filling: int | None = None) -> dict[str, Any]:
    """All invariants of a model by dimension: the ``topodiff invariants --json`` object."""
    from topodiff.physics.summary import invariant_summary

    return invariant_summary(load_model(model, filling=filling), nk=nk)


def chern_number(model: Any, nk: int = 64, filling: int | None = None, **options: Any) -> int:
    """Chern number of the occupied bands of a 2D model (FHS, ``nk × nk`` grid; PythTB's sign)."""
    from topodiff.physics.berry import chern_number as chern

    return chern(load_model(model), nk, filling, **options)


def z2_invariant(model: Any, filling: int | None = None, **options: Any) -> Any:
    """Z2 invariant: an int in 2D, ``(ν0, ν1, ν2, ν3)`` in 3D (WCC flow, time-reversal-symmetric models)."""
    from topodiff.physics.z2 import z2_invariant as z2

    return z2(load_model(model), filling, **options)


def weyl_nodes(model: Any, *, nk: int = 20, filling: int | None = None) -> list[Any]:
    """Weyl nodes of a 3D model (``WeylNode`` s: ``k_reduced``, ``chirality`` ±1, ``gap`` in eV;
    ``node.to_dict()`` is a ``topodiff weyl --json`` node)."""
    from topodiff.physics.weyl import find_weyl_nodes

    return list(find_weyl_nodes(load_model(model, filling=filling), nk=nk))


def band_structure(model: Any, *, n: int = 300, filling: int | None = None) -> Any:
    """Bands (eV) along the high-symmetry path, about ``n`` k-points: a ``BandStructure`` (``x`` in Å⁻¹,
    ``energies [n_k, n_bands]``, ``ticks``, ``labels``). A crystal's path follows its space group
    (seekpath with the atoms, :func:`topodiff.physics.interop.crystal_path`); others use the lattice's."""
    from topodiff.physics.bands import band_structure as bands
    from topodiff.physics.interop import crystal_path

    return bands(load_model(model, filling=filling), path=crystal_path(model), n=n)


def band_gaps(model: Any, *, nk: int | None = None, filling: int | None = None) -> dict[str, Any]:
    """Direct and indirect gaps (eV) with where they are: the gap keys of ``topodiff bands --json``."""
    from topodiff.physics.bands import band_gaps as gaps

    return gaps(load_model(model, filling=filling), nk=nk).to_dict()
