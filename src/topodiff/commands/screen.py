"""``topodiff screen PATH`` and ``topodiff dataset label SOURCE --out FILE.csv`` (Slater-Koster topology screen)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from topodiff.errors import TopodiffInputError

CONTRACT_KEYS = ("source", "formula", "space_group", "gap", "z2", "topo_class", "catalogue_class", "p_topological")
OPTIONAL_KEYS = ("space_group_symbol", "direct_gap", "z2_basis", "z2_conventional", "method", "n_atoms", "time_s",
                 "symmetrized", "error", "judge_note")
MAX_GAP_TOL = 10.0      # eV: a wider "metal" window calls everything a metal
MAX_SYMMETRIZE = 2.0    # Å: spglib tolerances beyond this merge distinct atoms
MAX_ATOMS_CAP = 2000    # --max-atoms upper bound (a 2000-atom SK model needs ~260 GiB)


def json_row(row: dict) -> dict:
    """One ``screen --json`` row (also ``topodiff.screen``'s): the contract keys, then the optional
    keys that are set."""
    item = {k: row.get(k) for k in CONTRACT_KEYS}
    item.update({k: row[k] for k in OPTIONAL_KEYS if row.get(k) is not None})
    return item


def _opts(basis: str, no_soc: bool, metal_rule: str, gap_tol: float, symmetrize: float | None = None,
          max_atoms: int | None = None, max_memory: float | None = None) -> dict:
    """Screen options from the CLI, every number checked (finite, in range) before anything runs."""
    from topodiff.commands._common import check_finite, check_int_range
    from topodiff.evaluation.guards import DEFAULT_LIMITS, CrystalLimits
    from topodiff.physics.slater_koster import orbital_layout

    orbital_layout(basis)  # unknown basis: one error now, not one per crystal
    if metal_rule not in ("auto", "direct", "indirect"):
        raise TopodiffInputError(f"--metal-rule must be auto, direct or indirect, got {metal_rule!r}")
    opts = {"basis": basis, "soc": not no_soc, "metal_rule": metal_rule,
            "gap_tol": check_finite("--gap-tol", gap_tol, lo=0.0, hi=MAX_GAP_TOL)}
    if symmetrize is not None:
        opts["symmetrize"] = check_finite("--symmetrize", symmetrize, lo=0.0, hi=MAX_SYMMETRIZE, lo_open=True)
    limits = CrystalLimits(
        max_atoms=DEFAULT_LIMITS.max_atoms if max_atoms is None else check_int_range("--max-atoms", max_atoms, 1, MAX_ATOMS_CAP),
        max_memory_gb=(DEFAULT_LIMITS.max_memory_gb if max_memory is None
                       else check_finite("--max-memory", max_memory, lo=0.0, hi=1024.0, lo_open=True)))
    if limits != DEFAULT_LIMITS:
        opts["limits"] = limits
    return opts


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def nothing_processed(rows: list[dict], failed: Callable[[dict], bool], what: str) -> None:
    """Exit 2 (a :class:`TopodiffInputError`) when there were inputs and every one failed (CONTRACTS §3)."""
    if rows and all(failed(r) for r in rows):
        first = rows[0]
        raise TopodiffInputError(f"no input crystal could be {what} ({len(rows)} tried; first: "
                                 f"{first.get('source')}: {first.get('error')})")


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from topodiff.evaluation.screen import gap_text, z2_text

    table = Table(title="Slater-Koster topology screen")
    for col in ("source", "formula", "SG", "SK gap", "Z2 (basis)", "class", "judge (P topo)"):
        table.add_column(col)
    for r in rows:
        cls = r.get("topo_class") or f"[red]error: {r.get('error', '')}[/red]"
        judge = "" if r.get("p_topological") is None else f"{r['catalogue_class']} ({r['p_topological']:.2f})"
        sg = " ".join(str(x) for x in (r.get("space_group"), r.get("space_group_symbol")) if x)
        table.add_row(str(r["source"]), str(r.get("formula") or ""), sg, gap_text(r), z2_text(r), cls, judge)
    Console().print(table)


def register(app: typer.Typer) -> None:
    @app.command("screen")
    def screen(
        path: Path = typer.Argument(..., help="CIF/POSCAR file, directory of them, extxyz file, CDVAE CSV or `generate` output directory."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default: up to 2)."),
        shard: Optional[str] = typer.Option(None, "--shard", help="Screen only entries with index %% n == i, given as i/n (cluster job arrays)."),
        basis: str = typer.Option("sp3", "--basis", help="Orbital basis: sp3 or sp3s* (s* only with published fits)."),
        no_soc: bool = typer.Option(False, "--no-soc", help="Switch off on-site spin-orbit coupling."),
        metal_rule: str = typer.Option("auto", "--metal-rule", help="auto (direct for sp-valent crystals, indirect with open d/f shells), direct (catalogue convention: bands may overlap) or indirect (band overlap = metal)."),
        gap_tol: float = typer.Option(0.01, "--gap-tol", help="Gap (eV) below which a crystal is a metal."),
        symmetrize: Optional[float] = typer.Option(None, "--symmetrize", help="Screen each crystal's idealised "
                                                   "symmetric cell found at this tolerance (Å, e.g. 0.1) — for "
                                                   "generated crystals slightly off their symmetry."),
        max_atoms: Optional[int] = typer.Option(None, "--max-atoms", help="Largest cell screened (atoms; default "
                                                "250); larger crystals get an error row."),
        max_memory: Optional[float] = typer.Option(None, "--max-memory", help="Estimated memory one crystal may "
                                                   "take per worker (GiB, default 4); larger ones get an error row."),
    ) -> None:
        """Topology of each crystal from its Slater-Koster tight-binding model (fast, approximate)."""
        from topodiff.commands._common import check_workers, print_json
        from topodiff.evaluation.screen import parse_shard, screen_path

        opts = _opts(basis, no_soc, metal_rule, gap_tol, symmetrize, max_atoms, max_memory)
        parse_shard(shard)
        rows = screen_path(path, workers=check_workers(workers), shard=shard, log=_log, **opts)
        nothing_processed(rows, lambda r: r.get("topo_class") is None, "screened")
        if json_out:
            print_json({"structures": [json_row(r) for r in rows]})
        else:
            _print_table(rows)
        bad = sum(r.get("topo_class") is None for r in rows)
        if bad:
            print(f"{bad} of {len(rows)} structures could not be screened (see 'error')", file=sys.stderr)

    try:
        from topodiff.commands.dataset import dataset_app
    except ImportError:  # the dataset command group is not installed: no `dataset label`
        return

    @dataset_app.command("label")
    def label(
        source: Path = typer.Argument(..., help="CDVAE-style CSV (columns kept) or any structure input of `screen`."),
        out: Path = typer.Option(..., "--out", help="Output CSV: source columns + topo_class, gap, z2, label_error."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default: up to 2)."),
        chunk: int = typer.Option(20, "--chunk", help="Rows per append to the progress file OUT.progress/rows.jsonl."),
        basis: str = typer.Option("sp3", "--basis", help="Orbital basis: sp3 or sp3s*."),
        no_soc: bool = typer.Option(False, "--no-soc", help="Switch off on-site spin-orbit coupling."),
        metal_rule: str = typer.Option("auto", "--metal-rule", help="auto, direct or indirect (see `topodiff screen --help`)."),
        gap_tol: float = typer.Option(0.01, "--gap-tol", help="Gap (eV) below which a crystal is a metal."),
        max_atoms: Optional[int] = typer.Option(None, "--max-atoms", help="Largest cell labelled (atoms; default 250)."),
        max_memory: Optional[float] = typer.Option(None, "--max-memory", help="Estimated memory one crystal may "
                                                   "take per worker (GiB, default 4)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Discard the progress of a run with another source "
                                       "or options (or a CSV not written by `dataset label`) and start afresh."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object on stdout."),
    ) -> None:
        """Add topo_class, gap and z2 labels to a dataset; resumable: rerun the same command after an
        interruption. A rerun with another source content or other options is refused (see --overwrite)."""
        from topodiff.commands._common import check_int_range, check_workers, print_json
        from topodiff.crystal.labelling import label_dataset

        opts = _opts(basis, no_soc, metal_rule, gap_tol, None, max_atoms, max_memory)
        summary = label_dataset(source, out, workers=check_workers(workers),
                                chunk=check_int_range("--chunk", chunk, 1, 100_000), screen_opts=opts,
                                overwrite=overwrite)
        if summary["rows"] and set(summary["counts"]) == {"error"}:
            raise TopodiffInputError(f"no input crystal could be labelled ({summary['rows']} tried; the reasons are "
                                     f"in the label_error column of {summary['out']})")
        if json_out:
            print_json(summary)
        else:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary["counts"].items()))
            print(f"{summary['rows']} rows labelled -> {summary['out']} ({counts})")
