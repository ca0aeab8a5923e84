"""PNG figures of the observables (matplotlib, Agg): σ_xy(E_F), Chern-marker maps, Bott vs disorder,
the Hofstadter butterfly, ARPES-like surface spectra and constant-energy contours.

Every function takes already-computed data, draws one figure and writes it atomically (returns the path).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from topodiff.physics.plots import _save, plt


def plot_hall_scan(fermi: np.ndarray, sigma: np.ndarray, out: str | os.PathLike, *, title: str = "",
                   unit: str = "e²/h", gap: tuple[float, float] | None = None) -> Path:
    """σ_xy against the Fermi level; the bulk gap (VBM, CBM) shaded when given."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    if gap is not None and gap[1] > gap[0]:
        ax.axvspan(gap[0], gap[1], color="0.9", label="bulk gap")
        ax.legend(loc="best", fontsize=8)
    ax.plot(fermi, sigma, "-", color="tab:blue", lw=1.5)
    for c in range(int(np.floor(np.nanmin(sigma))), int(np.ceil(np.nanmax(sigma))) + 1):
        ax.axhline(c, color="0.75", lw=0.5, ls=":")
    ax.set_xlabel("Fermi level (eV)")
    ax.set_ylabel(f"σ_xy ({unit})")
    ax.set_title(title)
    return _save(fig, out)


def plot_marker_map(marker: np.ndarray, out: str | os.PathLike, *, title: str = "") -> Path:
    """Local Chern marker per cell ``[L, L]`` of an open flake (diverging colours around 0, clipped at ±2)."""
    fig, ax = plt.subplots(figsize=(4.6, 4))
    lim = 2.0  # the bulk value is an integer of order 1; the edge cells compensate it with large values
    im = ax.imshow(marker.T, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax, label="local Chern marker (clipped at ±2)", extend="both")
    ax.set_xlabel("cell along a1")
    ax.set_ylabel("cell along a2")
    ax.set_title(title)
    return _save(fig, out)


def plot_bott_sweep(W: np.ndarray, mean: np.ndarray, std: np.ndarray, out: str | os.PathLike, *, title: str = "",
                    marker: np.ndarray | None = None) -> Path:
    """Seed-averaged Bott index (± std) against disorder strength W; optionally the bulk marker."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.errorbar(W, mean, yerr=std, fmt="o-", ms=3, capsize=2, label="Bott index")
    if marker is not None and np.all(np.isfinite(marker)):
        ax.plot(W, marker, "s--", ms=3, label="bulk Chern marker")
    ax.set_xlabel("disorder W (eV)")
    ax.set_ylabel("invariant (seed average)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, out)


def plot_butterfly(data: dict, out: str | os.PathLike, *, title: str = "Hofstadter butterfly") -> Path:
    """Band ranges (black) and gaps coloured by their Chern number against flux φ = p/q."""
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("coolwarm")
    tmax = max([abs(g["chern"]) for gs in data["gaps"] for g in gs] + [1])
    dx = 0.5 / max(1, len(data["flux"]))
    for phi, bands, gaps in zip(data["flux"], data["bands"], data["gaps"]):
        for lo, hi in bands:
            ax.plot([phi, phi], [lo, hi], color="k", lw=0.8)
        for g in gaps:
            ax.fill_between([phi - dx, phi + dx], g["lower_edge"], g["upper_edge"],
                            color=cmap(0.5 + 0.5 * g["chern"] / tmax), lw=0)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(-tmax, tmax))
    fig.colorbar(sm, ax=ax, label="Chern number of the gap")
    ax.set_xlabel("flux per plaquette φ = p/q")
    ax.set_ylabel("energy (t)")
    ax.set_title(title)
    return _save(fig, out)


def plot_surface_bands(x: np.ndarray, energies: np.ndarray, weight: np.ndarray, out: str | os.PathLike, *,
                       title: str = "", ticks: tuple[list[float], list[str]] | None = None) -> Path:
    """ARPES-like map of the surface spectral weight ``[n_E, n_k]`` (log colour scale)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    w = np.log10(np.clip(weight, 1e-3, None))
    im = ax.pcolormesh(x, energies, w, shading="auto", cmap="inferno")
    fig.colorbar(im, ax=ax, label="log₁₀ A_surface (states/eV)")
    if ticks is not None:
        ax.set_xticks(ticks[0], ticks[1])
    ax.set_xlabel("k∥ along the path (reduced)")
    ax.set_ylabel("energy (eV)")
    ax.set_title(title)
    return _save(fig, out)


def plot_contour(k1: np.ndarray, k2: np.ndarray, weight: np.ndarray, out: str | os.PathLike, *,
                 title: str = "") -> Path:
    """Constant-energy contour: surface spectral weight ``[n1, n2]`` over a surface-BZ window."""
    fig, ax = plt.subplots(figsize=(4.6, 4))
    w = np.log10(np.clip(weight, 1e-3, None))
    im = ax.pcolormesh(k1, k2, w.T, shading="auto", cmap="inferno")
    fig.colorbar(im, ax=ax, label="log₁₀ A_surface (states/eV)")
    ax.set_aspect("equal")
    ax.set_xlabel("k₁ (reduced)")
    ax.set_ylabel("k₂ (reduced)")
    ax.set_title(title)
    return _save(fig, out)
