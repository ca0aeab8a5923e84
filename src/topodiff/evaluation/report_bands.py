"""The report's band-structure figure of one crystal: its Slater-Koster model along seekpath's path
for the crystal's space group (the one analysis of :mod:`topodiff.crystal.symmetry`)."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def band_png(structure: Any, title: str, space_group: int | None = None) -> tuple[str | None, str | None]:
    """Slater-Koster TB band structure figure of a crystal along the seekpath path of its space group
    (the one symmetry analysis, :mod:`topodiff.crystal.symmetry`); (data URI, error). An error names a
    path whose space group differs from ``space_group`` (the one shown in the row)."""
    try:
        from topodiff.physics.bands import band_structure
        from topodiff.physics.interop import crystal_path
        from topodiff.physics.slater_koster import structure_to_tb
    except ImportError as exc:
        return None, f"band structure unavailable ({exc})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = structure_to_tb(structure)
            path = crystal_path(structure)
            bs = band_structure(model, path=path, n=120)
    except Exception as exc:
        return None, f"band structure failed: {type(exc).__name__}: {exc}"
    mismatch = (None if space_group is None or path.space_group == space_group
                else f"band path is that of space group {path.space_group}, not {space_group}")
    e = np.asarray(bs.energies)
    occ = model.occupied
    ef = 0.5 * (e[:, occ - 1].max() + e[:, occ].min()) if 0 < occ < e.shape[1] else 0.0
    from topodiff.evaluation.report import _fig, _png
    from topodiff.physics.plots import draw_bands

    fig, ax = _fig(3.6, 3.0)
    draw_bands(ax, bs, e - ef, fontsize=7, color="k", lw=0.7)
    ax.axhline(0.0, color="#c44e52", lw=0.6, ls="--")
    ax.set_ylim(-4, 4)
    ax.set_ylabel("E − E_mid-gap (eV)")
    ax.set_title(f"{title} (path of SG {path.space_group})", fontsize=9)
    return _png(fig), mismatch
