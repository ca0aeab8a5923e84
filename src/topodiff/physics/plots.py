"""PNG figures (matplotlib, Agg backend): bands, edge spectra, Berry curvature, WCC flow, phase diagrams.

Every function takes already-computed data, draws one figure and writes it atomically to ``out``
(returning the path); nothing here computes physics.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
import numpy as np  # noqa: E402

from topodiff.io_utils import atomic_write  # noqa: E402
from topodiff.physics.bands import BandStructure, reciprocal_lattice  # noqa: E402
from topodiff.physics.finite import EdgeSpectrum  # noqa: E402
from topodiff.physics.phase_diagram import UNDETERMINED, PhaseDiagram  # noqa: E402


def _save(fig: "plt.Figure", out: str | os.PathLike, dpi: int = 120) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    return atomic_write(out, lambda fh: fh.write(data), mode="wb")


def draw_bands(ax: "plt.Axes", bs: BandStructure, energies: np.ndarray, *, fontsize: float | None = None,
               **line_kw: object) -> None:
    """Draw ``energies [n_k, nb]`` along ``bs``'s path on ``ax``: one line per continuous piece (no line
    across a jump such as "U|K"), grey verticals at the nodes and the node labels as ticks, a label
    left blank where it would overlap the previous one (:func:`spaced_labels`)."""
    x = bs.x
    breaks = np.flatnonzero(np.diff(x) <= 1e-12) + 1  # path jumps have repeated x
    for seg in np.split(np.arange(len(x)), breaks):
        ax.plot(x[seg], energies[seg], **line_kw)
    for t in bs.ticks:
        ax.axvline(t, color="0.8", lw=0.5)
    size = fontsize or FontProperties(size=plt.rcParams["xtick.labelsize"]).get_size_in_points()
    axis_inches = ax.get_position().width * ax.figure.get_figwidth()
    char = 0.6 * size / 72 / axis_inches * (x[-1] - x[0])  # one character's width in x units
    ax.set_xticks(bs.ticks, spaced_labels(bs.ticks, bs.labels, char),
                  **({} if fontsize is None else {"fontsize": fontsize}))
    ax.set_xlim(x[0], x[-1])


def spaced_labels(ticks: Sequence[float], labels: Sequence[str], char_width: float) -> list[str]:
    """``labels`` centred at ``ticks``, with each one that would come within one character of the
    previous shown label blanked (``char_width``: a character's width in tick units)."""
    shown, last_t, last_len = [], -np.inf, 0
    for t, lab in zip(ticks, labels):
        keep = t - last_t >= char_width * (0.5 * (last_len + len(lab)) + 1)
        shown.append(lab if keep else "")
        if keep:
            last_t, last_len = t, len(lab)
    return shown


def plot_bands(bs: BandStructure, out: str | os.PathLike, *, title: str = "", fermi: float | None = None,
               color: str = "k") -> Path:
    """Band structure ``bs`` (x in Å⁻¹, energies eV) with high-symmetry ticks; ``fermi`` dashed."""
    fig, ax = plt.subplots(figsize=(5, 4))
    draw_bands(ax, bs, bs.energies, color=color, lw=1.2)
    if fermi is not None:
        ax.axhline(fermi, color="tab:red", ls="--", lw=0.8)
    ax.set_ylabel("energy (eV)")
    ax.set_title(title)
    return _save(fig, out)


def plot_edge_spectrum(spec: EdgeSpectrum, out: str | os.PathLike, *, title: str = "",
                       ylim: tuple[float, float] | None = None, by: str = "side") -> Path:
    """Ribbon bands coloured by where each state lives.

    ``by="side"``: mean position across the ribbon (blue: cell 0 edge, red: far edge, grey: bulk);
    ``by="edge"``: edge weight (0 … 1).
    """
    if spec.k.shape[1] != 1:
        raise ValueError("plot_edge_spectrum draws ribbon (1D) spectra")
    fig, ax = plt.subplots(figsize=(5, 4))
    k = np.broadcast_to(spec.k[:, :1], spec.energies.shape)
    if by == "side":
        c, cmap, lim, label = spec.side, "coolwarm", (-1, 1), "position across (−1 … +1)"
    else:
        c, cmap, lim, label = spec.edge, "viridis", (0, 1), "edge weight"
    order = np.argsort(np.abs(c).ravel() if by == "side" else c.ravel())  # edge states on top
    sc = ax.scatter(k.ravel()[order], spec.energies.ravel()[order], c=c.ravel()[order], s=2, cmap=cmap,
                    vmin=lim[0], vmax=lim[1], linewidths=0)
    fig.colorbar(sc, ax=ax, label=label)
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1], ["0", "π", "2π"])
    ax.set_xlabel("k · a")
    ax.set_ylabel("energy (eV)")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    return _save(fig, out)


def plot_berry_curvature(k: np.ndarray, omega: np.ndarray, out: str | os.PathLike, *,
                         lattice: np.ndarray | None = None, title: str = "") -> Path:
    """Berry curvature ``omega [n1, n2]`` at reduced plaquette centres ``k [n1, n2, 2]``.

    With ``lattice`` (``[2, n_cart]``) the map is drawn in Cartesian k (Å⁻¹), else in reduced units.
    """
    fig, ax = plt.subplots(figsize=(5, 4))
    if lattice is not None:
        B = reciprocal_lattice(np.asarray(lattice)[:2])[:, :2]
        kc = (k - 0.5) @ B  # centre the zone at Γ-ish
        X, Y = kc[..., 0], kc[..., 1]
        ax.set_xlabel("kx (Å⁻¹)")
        ax.set_ylabel("ky (Å⁻¹)")
        ax.set_aspect("equal")
    else:
        X, Y = k[..., 0], k[..., 1]
        ax.set_xlabel("κ1")
        ax.set_ylabel("κ2")
    vmax = float(np.abs(omega).max()) or 1.0
    pc = ax.pcolormesh(X, Y, omega, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="nearest")
    fig.colorbar(pc, ax=ax, label="Berry curvature Ω")
    ax.set_title(title)
    return _save(fig, out)


def plot_wcc_flow(k: np.ndarray, wcc: np.ndarray, out: str | os.PathLike, *, title: str = "",
                  xlabel: str = "κ (pumping parameter)") -> Path:
    """Hybrid Wannier charge centres ``wcc [n_k, n_wcc]`` (reduced, in [0, 1)) against ``k [n_k]``."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    w = np.mod(np.asarray(wcc, dtype=float), 1.0)
    kk = np.broadcast_to(np.asarray(k, dtype=float).reshape(-1, 1), w.shape)
    ax.scatter(kk.ravel(), w.ravel(), s=4, color="tab:blue")
    ax.set_xlim(float(np.min(k)), float(np.max(k)))
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("WCC (reduced)")
    ax.set_title(title)
    return _save(fig, out)


def plot_phase_diagram(pd: PhaseDiagram, out: str | os.PathLike, *, title: str = "",
                       boundary: Callable[[np.ndarray], np.ndarray] | None = None,
                       boundary_label: str = "analytic boundary") -> Path:
    """Chern number over the (x, y) grid; undetermined points white; ``boundary(x) -> y`` overlaid
    as ``±boundary(x)`` (e.g. Haldane's ``M = ±3√3 t2 sin φ``)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    c = np.ma.masked_equal(pd.chern, UNDETERMINED).astype(float)
    vals = sorted({int(v) for v in pd.chern[pd.determined].ravel()}) or [0]
    lo, hi = min(vals + [-1]), max(vals + [1])
    cmap = plt.get_cmap("RdBu_r", hi - lo + 1).with_extremes(bad="white")
    x, y = pd.x.values, pd.y.values
    im = ax.pcolormesh(x, y, c.T, cmap=cmap, vmin=lo - 0.5, vmax=hi + 0.5, shading="nearest")
    cb = fig.colorbar(im, ax=ax, ticks=range(lo, hi + 1))
    cb.set_label("Chern number")
    if boundary is not None:
        xs = np.linspace(x[0], x[-1], 400)
        b = boundary(xs)
        ax.plot(xs, b, "k--", lw=1.2, label=boundary_label)
        ax.plot(xs, -b, "k--", lw=1.2)
        ax.set_ylim(y[0], y[-1])
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(pd.x.name)
    ax.set_ylabel(pd.y.name)
    ax.set_title(title or f"{pd.model}: Chern number (nk = {pd.nk})")
    return _save(fig, out)


def plot_curves(x: np.ndarray, ys: Sequence[np.ndarray], labels: Sequence[str], out: str | os.PathLike, *,
                xlabel: str = "", ylabel: str = "", title: str = "", vlines: Sequence[float] = ()) -> Path:
    """Simple line plot (field sweeps: gap and invariant against the field), with vertical markers."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for y, lab in zip(ys, labels):
        ax.plot(x, y, marker=".", label=lab)
    for v in vlines:
        ax.axvline(v, color="tab:red", ls="--", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if labels:
        ax.legend(fontsize=8)
    return _save(fig, out)
