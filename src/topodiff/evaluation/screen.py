"""Topology screen of crystals: structure → Slater-Koster TB → gap and Z2 → topological class.

For each crystal (:func:`screen_structure`):

1. build the spinful Slater-Koster model (:func:`topodiff.physics.slater_koster.structure_to_tb`);
2. diagonalise ``H(κ)`` on a Γ-centred grid with an even number of points per direction (so the
   eight TRIM are on it), ``n_i = 2⌈k_density / (2|a_i|)⌉`` (``k_density`` in Å), plus, for cells
   with a hexagonal net (two equal vectors at 60°/120°), the 26 points of ``{0, 1/3, 2/3}³``
   (the K points, where graphene-like Dirac cones sit);
3. ``gap`` = lowest conduction energy − highest valence energy over the grid at the filling
   (indirect gap, eV, clipped at 0) and ``direct_gap`` = min over the grid of ``E_f − E_{f−1}``.
   The crystal is a **metal** when the gap selected by ``metal_rule`` is below ``gap_tol``
   (default 0.01 eV); odd electron counts are always metallic (Kramers degeneracy at a TRIM).
   ``metal_rule="direct"`` (default) is the convention of the topological-materials catalogues
   (T. Zhang et al., Nature 566, 475 (2019); M. G. Vergniory et al., Nature 566, 480 (2019)):
   the occupied bands are classified whenever they are separated from the empty ones at every k,
   even if they overlap in energy (a semimetal with inverted bands counts as a TI).
   ``metal_rule="indirect"`` also calls band overlap (``gap`` < tol) a metal. ``metal_rule="auto"``
   (the default) uses ``direct`` for sp-valent crystals and ``indirect`` when an element has an
   open d or f shell (``open_shell`` in the row): their d/f electrons sit outside the sp basis, and
   on the mp_40 test set the direct rule turned many such intermetallics into spurious insulators;
4. Z2 indices ``[ν0, ν1, ν2, ν3]`` of the occupied bands whenever the *direct* gap on the grid is
   at least ``gap_tol`` (weak indices in the basis of the screened cell, ``z2_basis``; also given in
   the standard conventional cell, ``z2_conventional``): Fu-Kane parity at the 8 TRIM when spglib
   finds inversion symmetry in the model (to ``PARITY_SYMPREC``), else
   the Wannier-centre route ``topodiff.physics.z2.z2_invariant`` (when available; skipped, with an
   ``error``, for models with more than ``wcc_max_bands`` = 96 bands because it takes seconds to
   minutes per crystal);
5. ``topo_class``: ``metal``; else ``strong_ti`` (ν0 = 1), ``weak_ti`` (ν0 = 0, some νi = 1) or
   ``trivial_insulator``. For metals ``z2`` still describes the lower bands when they are
   separated by a direct gap (e.g. a semimetal with inverted bands).

:func:`screen_path` runs the screen over every structure of a file or directory in a process pool;
one row per input in input order; a failing crystal gets ``topo_class: None`` and ``error``.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from topodiff.errors import TopodiffInputError

TOPO_CLASSES = ("trivial_insulator", "strong_ti", "weak_ti", "metal")
GAP_TOL = 0.01  # eV
K_DENSITY = 20.0  # Å
K_CHUNK = 64  # k-points per eigvalsh call (bounds memory for large cells)
PARITY_SYMPREC = 1e-3  # Å: inversion must hold in the model to this for the parity route (else WCC)
WCC_MAX_BANDS = 96  # the WCC route (no inversion) is skipped for larger models: seconds to minutes each
# The 26 points of {0, 1/3, 2/3}^3 other than Γ are added to the mesh of hexagonal cells: they hold
# the K points in either setting (γ = 60° or 120°), where graphene-like Dirac cones sit.
THIRDS = np.stack(np.meshgrid(*[np.array([0.0, 1 / 3, 2 / 3])] * 3, indexing="ij"), -1).reshape(-1, 3)[1:]


def k_mesh_shape(lattice: np.ndarray, k_density: float = K_DENSITY) -> tuple[int, int, int]:
    """Even Γ-centred mesh ``(n1, n2, n3)``, ``n_i = 2⌈k_density / (2|a_i|)⌉`` (≥ 2)."""
    lengths = np.linalg.norm(np.asarray(lattice, float), axis=1)
    return tuple(int(max(2, 2 * math.ceil(k_density / (2.0 * a)))) for a in lengths)  # type: ignore[return-value]


def has_hexagonal_pair(lattice: np.ndarray, tol_deg: float = 1.0) -> bool:
    """True when two lattice vectors of equal length meet at 60° or 120° (a hexagonal net)."""
    a = np.asarray(lattice, float)
    n = np.linalg.norm(a, axis=1)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        ang = np.degrees(np.arccos(np.clip(a[i] @ a[j] / (n[i] * n[j]), -1, 1)))
        if abs(n[i] - n[j]) < 1e-3 * n[i] and min(abs(ang - 60), abs(ang - 120)) < tol_deg:
            return True
    return False


def half_mesh(mesh: tuple[int, int, int]) -> np.ndarray:
    """``[n_k, 3]`` reduced points of the Γ-centred ``mesh``, one of each pair ``{κ, −κ}``.

    Time reversal gives ``E(κ) = E(−κ)``, so the band edges need only half the mesh.
    """
    n = np.asarray(mesh)
    idx = np.stack(np.meshgrid(*[np.arange(m) for m in mesh], indexing="ij"), -1).reshape(-1, 3)
    code = (idx[:, 0] * n[1] + idx[:, 1]) * n[2] + idx[:, 2]
    neg = (-idx) % n
    code_neg = (neg[:, 0] * n[1] + neg[:, 1]) * n[2] + neg[:, 2]
    return idx[code <= code_neg] / n


def band_edges(model: Any, k: np.ndarray, filling: int) -> tuple[float, float]:
    """``(indirect gap, direct gap)`` in eV between bands ``filling-1`` and ``filling`` on ``k [n_k, 3]``."""
    import torch

    vb_max, cb_min, direct = -np.inf, np.inf, np.inf
    for start in range(0, len(k), K_CHUNK):
        E = torch.linalg.eigvalsh(model.hamiltonian(k[start:start + K_CHUNK], convention=1)).numpy()
        ev, ec = E[:, filling - 1], E[:, filling]
        vb_max, cb_min = max(vb_max, float(ev.max())), min(cb_min, float(ec.min()))
        direct = min(direct, float((ec - ev).min()))
    return cb_min - vb_max, direct


def classify(z2: list[int] | None) -> str | None:
    """Class of a gapped crystal from ``[ν0, ν1, ν2, ν3]``: ``strong_ti`` (ν0 = 1), ``weak_ti`` (some
    νi = 1), else ``trivial_insulator``; None without Z2."""
    if z2 is None:
        return None
    if z2[0] == 1:
        return "strong_ti"
    return "weak_ti" if any(z2[1:]) else "trivial_insulator"


def _wcc_z2(model: Any) -> list[int] | None:
    """Z2 from the WCC route of :mod:`topodiff.physics.z2` (None if that module is unavailable)."""
    try:
        from topodiff.physics.z2 import z2_invariant
    except ImportError:
        return None
    nu = z2_invariant(model)
    return [int(x) for x in np.atleast_1d(nu)]


def screen_structure(structure: Any, *, basis: str = "sp3", soc: bool = True, cutoff: float | None = None,
                     params: dict[str, Any] | None = None, gap_tol: float = GAP_TOL,
                     k_density: float = K_DENSITY, metal_rule: str = "auto", wcc_max_bands: int = WCC_MAX_BANDS,
                     symmetrize: float | None = None) -> dict[str, Any]:
    """Screen one crystal.

    The crystal's symmetry is analysed once (:func:`topodiff.crystal.symmetry.analyze`, 0.1 Å and
    5° unless ``symmetrize`` gives another tolerance): that space group is reported. ``symmetrize``
    (Å, optional): screen the symmetrised standard primitive cell of that analysis instead of the
    input cell — for generated crystals a little off their symmetry, whose Z2 would otherwise need
    the slower, gap-sensitive WCC route. Off by default. The parity route itself needs inversion to
    hold in the model to :data:`PARITY_SYMPREC` (an exact symmetry of the Hamiltonian, not the
    crystallographer's tolerance).

    Returns
    -------
    dict with ``formula``, ``space_group`` / ``space_group_symbol`` (None when spglib finds no group),
    ``gap`` (eV, indirect, ≥ 0), ``direct_gap`` (eV), ``z2`` (``[ν0, ν1, ν2, ν3]`` or None) with
    ``z2_basis`` naming the cell of its weak indices (``"standard_primitive"`` when the screened cell is
    the analysis' symmetrised standard primitive cell — after ``symmetrize`` or relaxation — else
    ``"input_cell"``)
    and ``z2_conventional`` (the same indices in the standard conventional cell of the analysis; None
    when that cell is not a lattice cell of the screened one), ``topo_class``
    (one of :data:`TOPO_CLASSES`, or None with ``error`` when the topology could not be decided),
    ``method`` (``"parity"`` / ``"wcc"`` / None), ``n_atoms``, ``k_mesh``, ``time_s`` (wall) and
    ``cpu_s`` (CPU seconds of this process).
    Bad structures raise :class:`TopodiffInputError` (use :func:`screen_records` for rows).
    """
    from topodiff.crystal.symmetry import SYMPREC, analyze, weak_indices_in
    from topodiff.physics.sk_params import open_shell
    from topodiff.physics.slater_koster import structure_to_tb

    if metal_rule not in ("auto", "direct", "indirect"):
        raise TopodiffInputError(f"metal_rule must be 'auto', 'direct' or 'indirect', got {metal_rule!r}")
    t0, c0 = time.perf_counter(), time.process_time()
    sym = analyze(structure, symprec=SYMPREC if symmetrize is None else float(symmetrize))
    was_symmetrized = symmetrize is not None and sym is not None
    if was_symmetrized:
        structure = sym.primitive
    standard = sym is not None and bool(np.allclose(structure.lattice.matrix, sym.primitive.lattice.matrix, atol=1e-6))
    model = structure_to_tb(structure, basis=basis, soc=soc, cutoff=cutoff, params=params)
    mesh = k_mesh_shape(model.lattice, k_density)
    k = np.concatenate([half_mesh(mesh), THIRDS]) if has_hexagonal_pair(model.lattice) else half_mesh(mesh)
    filling = model.occupied
    gap, direct = band_edges(model, k, filling)
    row: dict[str, Any] = {"formula": structure.composition.reduced_formula,
                           "space_group": sym.number if sym else None, "space_group_symbol": sym.symbol if sym else None,
                           "gap": round(max(gap, 0.0), 6), "direct_gap": round(direct, 6), "z2": None,
                           "z2_basis": "standard_primitive" if standard else "input_cell", "z2_conventional": None,
                           "topo_class": None, "method": None, "n_atoms": len(structure), "k_mesh": list(mesh)}
    if symmetrize is not None:
        row["symmetrized"] = was_symmetrized
    row["open_shell"] = any(open_shell(el.symbol) for el in structure.composition.elements)
    if metal_rule == "auto":
        metal_rule = "indirect" if row["open_shell"] else "direct"
    metal = (direct if metal_rule == "direct" else gap) < gap_tol or filling % 2 == 1
    if filling % 2 == 0 and direct >= gap_tol:
        row.update(_z2_route(model, structure, basis, metal, wcc_max_bands))
    row["topo_class"] = "metal" if metal else classify(row["z2"])
    if row["z2"] is not None and sym is not None:
        weak = weak_indices_in(row["z2"][1:], sym.primitive_to_conventional if standard else sym.to_conventional)
        row["z2_conventional"] = None if weak is None else [row["z2"][0], *weak]
    row["time_s"] = round(time.perf_counter() - t0, 4)
    row["cpu_s"] = round(time.process_time() - c0, 4)
    return row


def _z2_route(model: Any, structure: Any, basis: str, metal: bool, wcc_max_bands: int) -> dict[str, Any]:
    """Z2 of a model with an even filling and a direct gap: by parities at the TRIMs when the model has
    inversion (to :data:`PARITY_SYMPREC`), else by Wannier-centre flow for an insulator of at most
    ``wcc_max_bands`` bands. ``{"z2", "method"}``, or ``{"error"}`` saying why there is none."""
    from topodiff.physics.parity import find_inversion, parity_z2
    from topodiff.physics.slater_koster import orbital_parity

    n_o = int(model.params["n_orb_per_atom"])
    n_at = len(structure)
    inv = find_inversion(model.orbitals[::n_o], np.asarray(structure.atomic_numbers), model.lattice,
                         symprec=PARITY_SYMPREC)
    if inv is not None:
        res = parity_z2(model, np.repeat(np.arange(n_at), n_o), np.tile(orbital_parity(basis), n_at), *inv)
        return {"z2": [int(x) for x in res["z2"]], "method": "parity"}
    if metal:
        return {}
    if model.num_bands > wcc_max_bands:
        return {"error": f"no inversion symmetry and {model.num_bands} bands > wcc_max_bands={wcc_max_bands}: "
                         "WCC Z2 skipped"}
    try:
        z2 = _wcc_z2(model)
    except (ArithmeticError, TopodiffInputError) as exc:  # ConvergenceError: gap too small for WCC
        return {"error": f"WCC Z2 failed: {exc}"}
    if z2 is None:
        return {"error": "no inversion symmetry and the WCC Z2 route (topodiff.physics.z2) is unavailable"}
    return {"z2": z2, "method": "wcc"}


def z2_text(row: dict[str, Any]) -> str:
    """``(ν0;ν1ν2ν3) <basis>`` of a screen row: in the standard conventional cell (``conv.``) when
    ``z2_conventional`` is known, else in the screened cell (``z2_basis``); "" without Z2."""
    conv, z2 = row.get("z2_conventional"), row.get("z2")
    nu, basis = (conv, "conv.") if conv is not None else (z2, (row.get("z2_basis") or "input_cell").replace("_", " "))
    if nu is None:
        return ""
    return f"({nu[0]};{''.join(str(x) for x in nu[1:])}) {basis}"


def gap_text(row: dict[str, Any]) -> str:
    """``indirect X / direct Y eV`` of a screen row (``?`` for an unknown value); "" without a gap."""
    if row.get("gap") is None and row.get("direct_gap") is None:
        return ""
    f = [("?" if row.get(k) is None else f"{row[k]:.3f}") for k in ("gap", "direct_gap")]
    return f"indirect {f[0]} / direct {f[1]} eV"


def _empty_row(source: str, error: str, formula: str | None = None) -> dict[str, Any]:
    return {"source": source, "formula": formula, "space_group": None, "gap": None, "z2": None,
            "topo_class": None, "error": error}


def _screen_task(task: tuple[int, str, Any, str | None, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """Worker: screen one record; never raises (the error goes into the row).

    ``opts["limits"]`` (a :class:`~topodiff.evaluation.guards.CrystalLimits`, default limits when
    absent) is checked before the model is built: a crystal over a limit gets an error row.
    """
    from topodiff.evaluation.guards import DEFAULT_LIMITS, check_screen_budget
    from topodiff.process_pool import fault_hook

    index, source, structure, read_error, opts = task
    if read_error is not None or structure is None:
        return index, _empty_row(source, read_error or "no structure")
    opts = dict(opts)
    limits = opts.pop("limits", None) or DEFAULT_LIMITS
    try:
        fault_hook(source)
        check_screen_budget(structure, opts.get("basis", "sp3"), limits)
        row = screen_structure(structure, **opts)
    except TopodiffInputError as exc:
        return index, _empty_row(source, str(exc), structure.composition.reduced_formula)
    except Exception as exc:  # a crash on one crystal must not stop the batch
        return index, _empty_row(source, f"{type(exc).__name__}: {exc}", structure.composition.reduced_formula)
    return index, {"source": source, **row}


def _crashed_row(task: tuple[int, str, Any, str | None, dict[str, Any]], message: str) -> tuple[int, dict[str, Any]]:
    """Row of a crystal whose worker process died (see :func:`topodiff.process_pool.resilient_map`)."""
    index, source, structure, _, _ = task
    formula = structure.composition.reduced_formula if structure is not None else None
    return index, _empty_row(source, message, formula)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"i/n"`` → ``(i, n)`` with ``0 ≤ i < n``; None passes through."""
    if shard is None:
        return None
    left, sep, right = str(shard).partition("/")
    try:
        i, n = int(left), int(right)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise TopodiffInputError(f"--shard expects i/n with 0 <= i < n, got {shard!r}")
    return i, n


def screen_tasks(tasks: list[tuple[int, str, Any, str | None, dict[str, Any]]], *,
                 workers: int | None = None,
                 log: Callable[[str], None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Screen ``tasks`` (index, source, structure, read error, options), yielding in task order.

    ``workers``: processes (None: ``min(2, cpu count)``, and no pool for fewer than 4 tasks). A worker
    that dies (e.g. killed for memory) costs only the crystal it was screening, which gets an error
    row; the pool is rebuilt and the batch goes on (:func:`topodiff.process_pool.resilient_map`).
    """
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    if workers < 1:
        raise TopodiffInputError(f"--workers must be at least 1, got {workers}")
    from topodiff.progress import progress

    with progress(total=len(tasks), desc="screen", unit="crystal") as bar:
        for item in _screen_results(tasks, workers, log):
            bar.update(1)
            yield item


def _screen_results(tasks: list[tuple[int, str, Any, str | None, dict[str, Any]]], workers: int,
                    log: Callable[[str], None] | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """The results of :func:`screen_tasks` in task order (in-process or a resilient pool)."""
    if workers == 1 or len(tasks) < 4:
        for task in tasks:
            yield _screen_task(task)
        return
    import multiprocessing as mp

    from topodiff.process_pool import resilient_map

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # import the heavy modules once in the fork server; workers fork from it ready to run
        ctx.set_forkserver_preload(["torch", "pymatgen.core", "spglib", "vesin", "topodiff.physics.slater_koster",
                                    "topodiff.physics.parity", "topodiff.evaluation.screen"])
    else:
        ctx = mp.get_context("spawn")
    for _, result in resilient_map(_screen_task, tasks, workers=workers, on_crash=_crashed_row, context=ctx,
                                   initializer=_init_worker, log=log):
        yield result


def records_to_tasks(records: Iterable[Any], opts: dict[str, Any],
                     indices: Iterable[int] | None = None) -> list[tuple[int, str, Any, str | None, dict[str, Any]]]:
    """Tasks for :func:`screen_tasks` from ``StructureRecord`` s (optionally only ``indices``)."""
    records = list(records)
    chosen = range(len(records)) if indices is None else indices
    return [(i, records[i].source, records[i].structure, records[i].error, opts) for i in chosen]


def screen_path(path: str | os.PathLike, *, workers: int | None = None, shard: str | None = None,
                log: Callable[[str], None] | None = None, **opts: Any) -> list[dict[str, Any]]:
    """Screen every crystal in ``path`` (CIF/POSCAR/extxyz/CSV file, directory, generate output).

    Parameters
    ----------
    workers : processes (None: up to 2).
    shard : ``"i/n"`` screens only the entries with ``index % n == i`` (for cluster job arrays).
    log : one-line notices (a dead worker, the pool rebuilt).
    opts : passed to :func:`screen_structure`; ``limits`` (:class:`~topodiff.evaluation.guards.CrystalLimits`)
        sets the per-crystal resource limits.

    Returns
    -------
    One row per (selected) input in input order with ``index``, ``source``, ``formula``,
    ``space_group``, ``gap``, ``z2``, ``topo_class`` and, for failures, ``error``; plus the learned
    judge's ``catalogue_class`` and ``p_topological`` (:func:`topodiff.judge.add_judgement`).
    """
    from topodiff.crystal.io import read_structures

    part = parse_shard(shard)
    records = read_structures(path)
    indices = [i for i in range(len(records)) if part is None or i % part[1] == part[0]]
    return screen_records(records, workers=workers, indices=indices, log=log, **opts)


def screen_records(records: list[Any], *, workers: int | None = None, indices: Iterable[int] | None = None,
                   log: Callable[[str], None] | None = None, **opts: Any) -> list[dict[str, Any]]:
    """Screen ``StructureRecord`` s (all, or those at ``indices``): the rows of :func:`screen_path`
    (also used by ``topodiff.screen`` for in-memory crystals)."""
    rows = []
    for index, row in screen_tasks(records_to_tasks(records, opts, indices), workers=workers, log=log):
        rows.append({"index": index, **row})
    from topodiff.judge import add_judgement  # the learned verdict beside the physics one

    return add_judgement(rows, [records[row["index"]].structure for row in rows])
