"""``topodiff screen PATH`` and ``topodiff dataset label SOURCE --out FILE.csv`` (Slater-Koster topology screen)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from topodiff.errors import TopodiffInputError

CONTRACT_KEYS = ("source", "formula", "space_group", "gap", "z2", "topo_class")
OPTIONAL_KEYS = ("direct_gap", "method", "n_atoms", "time_s", "symmetrized", "error")


def json_row(row: dict) -> dict:
    """One ``screen --json`` row (also ``topodiff.screen``'s): the contract keys, then the optional
    keys that are set."""
    item = {k: row.get(k) for k in CONTRACT_KEYS}
    item.update({k: row[k] for k in OPTIONAL_KEYS if row.get(k) is not None})
    return item


def _opts(basis: str, no_soc: bool, metal_rule: str, gap_tol: float, symmetrize: float | None = None) -> dict:
    opts = {"basis": basis, "soc": not no_soc, "metal_rule": metal_rule, "gap_tol": gap_tol}
    if symmetrize is not None:
        if not symmetrize > 0:
            raise TopodiffInputError(f"--symmetrize must be > 0 Å, got {symmetrize}")
        opts["symmetrize"] = symmetrize
    return opts


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Slater-Koster topology screen")
    for col in ("source", "formula", "SG", "gap (eV)", "Z2", "class"):
        table.add_column(col)
    for r in rows:
        z2 = "" if r.get("z2") is None else f"({r['z2'][0]};{''.join(str(x) for x in r['z2'][1:])})"
        gap = "" if r.get("gap") is None else f"{r['gap']:.3f}"
        cls = r.get("topo_class") or f"[red]error: {r.get('error', '')}[/red]"
        table.add_row(str(r["source"]), str(r.get("formula") or ""), str(r.get("space_group") or ""), gap, z2, cls)
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
    ) -> None:
        """Topology of each crystal from its Slater-Koster tight-binding model (fast, approximate)."""
        from topodiff.commands._common import print_json
        from topodiff.evaluation.screen import screen_path

        rows = screen_path(path, workers=workers, shard=shard,
                           **_opts(basis, no_soc, metal_rule, gap_tol, symmetrize))
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
        chunk: int = typer.Option(20, "--chunk", help="Rows per append to the progress file OUT.progress.jsonl."),
        basis: str = typer.Option("sp3", "--basis", help="Orbital basis: sp3 or sp3s*."),
        no_soc: bool = typer.Option(False, "--no-soc", help="Switch off on-site spin-orbit coupling."),
        metal_rule: str = typer.Option("auto", "--metal-rule", help="auto, direct or indirect (see `topodiff screen --help`)."),
        gap_tol: float = typer.Option(0.01, "--gap-tol", help="Gap (eV) below which a crystal is a metal."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON summary object on stdout."),
    ) -> None:
        """Add topo_class, gap and z2 labels to a dataset; resumable (rerun the same command after an interruption)."""
        from topodiff.commands._common import print_json
        from topodiff.crystal.labelling import label_dataset

        summary = label_dataset(source, out, workers=workers, chunk=chunk,
                                screen_opts=_opts(basis, no_soc, metal_rule, gap_tol))
        if json_out:
            print_json(summary)
        else:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary["counts"].items()))
            print(f"{summary['rows']} rows labelled -> {summary['out']} ({counts})")
