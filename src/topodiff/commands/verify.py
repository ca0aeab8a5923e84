"""``topodiff verify --dft PATH``: first-principles (GPAW PBE + SOC) topology of crystals."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from topodiff.errors import TopodiffInputError

CONTRACT_KEYS = ("source", "formula", "z2", "gap_direct", "gap_indirect", "route", "basis", "verdict", "seconds")
EXTRA_KEYS = ("cpu_seconds", "timings", "space_group", "n_atoms", "k_mesh", "soc", "parities", "z2_wcc", "z2_lcao",
              "gap_direct_lcao", "reason", "wcc_warning", "note", "cached", "error")


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="DFT (GPAW PBE + SOC) topology")
    for col in ("source", "formula", "gap dir/ind (eV)", "Z2", "route", "basis", "verdict", "s"):
        table.add_column(col)
    for r in rows:
        z2 = "" if r.get("z2") is None else f"({r['z2'][0]};{''.join(str(x) for x in r['z2'][1:])})"
        gap = "" if r.get("gap_direct") is None else f"{r['gap_direct']:.3f} / {r['gap_indirect']:.3f}"
        verdict = r.get("verdict") or f"[red]error: {r.get('error', '')}[/red]"
        if r.get("reason"):
            verdict += f" ({r['reason']})"
        table.add_row(str(r["source"]), str(r.get("formula") or ""), gap, z2, str(r.get("route") or ""),
                      str(r.get("basis") or ""), verdict, str(r.get("seconds") or ""))
    Console(stderr=False).print(table)


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        path: Path = typer.Argument(..., help="CIF/POSCAR file, directory of them, extxyz file or `generate` output."),
        dft: bool = typer.Option(False, "--dft", help="Verify with density-functional theory (GPAW; required)."),
        basis: str = typer.Option("lcao", "--basis", help="lcao (dzp, fast; escalates to pw when the gap is "
                                  "< 0.15 eV or the routes disagree) or pw (plane waves throughout the check)."),
        k_density: float = typer.Option(18.0, "--kdensity", help="k-mesh density (Å): n_i = max(4, 2⌈kdensity/(2|a_i|)⌉)."),
        no_soc: bool = typer.Option(False, "--no-soc", help="Switch off spin-orbit coupling."),
        no_escalate: bool = typer.Option(False, "--no-escalate", help="Never run the plane-wave check."),
        cross_check: bool = typer.Option(True, "--cross-check/--no-cross-check",
                                         help="With inversion, also run the WCC route and compare."),
        max_atoms: int = typer.Option(12, "--max-atoms", help="Refuse cells with more atoms (CPU budget)."),
        symmetrize: Optional[float] = typer.Option(None, "--symmetrize", help="Verify the symmetrised standard "
                                                   "primitive cell at this tolerance (Å, e.g. 0.1: generated crystals "
                                                   "a little off their symmetry; faster, parity route with inversion)."),
        timeout: float = typer.Option(900.0, "--timeout", help="Seconds per crystal before it is abandoned."),
        out: Optional[Path] = typer.Option(None, "--out", help="Directory for results; rerunning resumes there."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Clear --out if it holds another run."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Z2, gaps and a verdict from PBE + spin-orbit DFT (GPAW; minutes per small crystal on a CPU)."""
        from topodiff.commands._common import check_int_range, print_json
        from topodiff.dft.batch import verify_path

        if not dft:
            raise TopodiffInputError("verify needs a method: pass --dft (first-principles check with GPAW)")
        check_int_range("--max-atoms", max_atoms, 1)
        opts = {"basis": basis, "k_density": k_density, "soc": not no_soc, "cross_check": cross_check,
                "max_atoms": max_atoms, "escalate": not no_escalate,
                **({"symmetrize": symmetrize} if symmetrize is not None else {})}
        from topodiff.dft.verify import validate_options

        validate_options(opts)
        rows = verify_path(path, opts, timeout=timeout, out=out, overwrite=overwrite,
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
        ok = [r for r in rows if r.get("verdict") is not None]
        if len(rows) == 1 and not ok and rows[0].get("error_kind") in ("input", None):
            raise TopodiffInputError(rows[0]["error"])
        if json_out:
            print_json({"structures": [{**{k: r.get(k) for k in CONTRACT_KEYS},
                                        **{k: r[k] for k in EXTRA_KEYS if r.get(k) is not None}} for r in rows]})
        else:
            _print_table(rows)
        if not ok:
            raise TopodiffInputError(f"none of the {len(rows)} structures could be verified (see 'error')")
        if len(ok) < len(rows):
            print(f"{len(rows) - len(ok)} of {len(rows)} structures could not be verified (see 'error')",
                  file=sys.stderr)
