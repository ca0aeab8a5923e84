"""``topodiff bands``: band structure along the high-symmetry path (or a ribbon's edge spectrum)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from topodiff.commands._common import (MAX_PATH_POINTS, check_dense_spectrum, check_int_range, check_nk,
                                       model_command, print_json)
from topodiff.errors import TopodiffInputError


def register(app: typer.Typer) -> None:
    @model_command(app, "bands")
    def bands_cmd(
        m: Any, source: str,
        num: int = typer.Option(300, "--num", help="k-points along the path"),
        nk: Optional[int] = typer.Option(None, "--nk", help="k-grid per direction for the gaps (the path and special points are added)"),
        ribbon: Optional[int] = typer.Option(None, "--ribbon", help="cut a ribbon N cells wide (2D models; "
                                                                      "3D slabs are not drawn) and show its edge spectrum"),
        efield: float = typer.Option(0.0, "--efield", help="with --ribbon: electric field across it (V/Å), "
                                                             "onsite −e E·r"),
        out: Optional[Path] = typer.Option(None, "--out", help="write a PNG plot here"),
        as_json: bool = False,
    ) -> None:
        """Band structure along the standard high-symmetry path, with direct/indirect gaps."""
        from topodiff.physics.bands import band_gaps, band_structure
        from topodiff.physics.interop import crystal_path
        num = check_int_range("--num", num, 2, MAX_PATH_POINTS)
        if nk is not None:
            nk = check_nk(nk, m.dim, num_bands=m.num_bands, eigenvectors=False, lo=1, why_lo="")  # energies only
        if ribbon is not None:
            ribbon = check_int_range("--ribbon", ribbon, 1)
            check_dense_spectrum(num, ribbon * m.num_bands, "--num and --ribbon")
        gaps = band_gaps(m, nk=nk)
        result: dict = {"model": m.name, "dim": m.dim, "num_bands": m.num_bands, "filling": m.occupied,
                        **gaps.to_dict(), **({"notes": list(m.notes)} if m.notes else {})}
        if ribbon is not None:
            from topodiff.physics.finite import cut, edge_spectrum

            if m.dim != 2:
                raise TopodiffInputError("--ribbon edge spectra are drawn for 2D models (ribbons)")
            geom = cut(m, ribbon)
            if efield:
                from topodiff.physics.fields import electric_field

                geom = electric_field(geom, efield)
            spec = edge_spectrum(geom, nk=num)
            result.update({"ribbon_cells": ribbon, "efield": efield, "k": spec.k[:, 0].tolist(),
                           "energies": spec.energies.tolist(), "side": spec.side.tolist()})
            if out is not None:
                from topodiff.physics.plots import plot_edge_spectrum

                pad = max(0.5, abs(gaps.indirect))
                plot_edge_spectrum(spec, out, title=f"{m.name}: ribbon of {ribbon} cells"
                                   + (f", E = {efield:g} V/Å" if efield else ""),
                                   ylim=(gaps.vbm - 2 * pad, gaps.cbm + 2 * pad))
        else:
            if efield:
                raise TopodiffInputError("--efield needs --ribbon (a uniform field is not periodic)")
            bs = band_structure(m, path=crystal_path(source), n=num)  # crystal file: seekpath with its atoms
            result.update({"labels": bs.labels, "ticks": bs.ticks.tolist(), "x": bs.x.tolist(),
                           "energies": bs.energies.tolist()})
            if out is not None:
                from topodiff.physics.plots import plot_bands

                plot_bands(bs, out, title=m.name, fermi=0.5 * (gaps.vbm + gaps.cbm) if gaps.indirect > 0 else None)
        if out is not None:
            result["plot"] = str(out)
            print(f"wrote {out}", file=sys.stderr)
        if as_json:
            print_json(result)
        else:
            print(f"{m.name}: {m.dim}D, {m.num_bands} bands, filling {m.occupied}")
            def at(k: object, label: str) -> str:
                return f"{label} {[round(float(x), 4) for x in k]}"  # type: ignore[union-attr]

            print(f"direct gap {gaps.direct:.6g} eV at {at(gaps.k_direct, gaps.direct_at)}; "
                  f"{gaps.kind} gap {gaps.indirect:.6g} eV (VBM {gaps.vbm:.6g} at {at(gaps.k_vbm, gaps.vbm_at)}, "
                  f"CBM {gaps.cbm:.6g} at {at(gaps.k_cbm, gaps.cbm_at)}); {gaps.num_k} k-points (grid, path, "
                  "special points)")
        for line in m.notes:
            print(f"note: {line}", file=sys.stderr)
