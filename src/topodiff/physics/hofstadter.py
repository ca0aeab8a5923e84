"""Hofstadter model: the square lattice in a perpendicular field, flux ``φ = p/q`` per plaquette.

``H = t Σ_⟨ij⟩ e^{iθ_ij} c†_i c_j`` on the square lattice (a = 1 Å), Landau gauge ``A ∝ x ŷ``:
the hop from column m to column m along +y carries ``θ = 2π φ m``, hops along x carry none. The
magnetic cell is ``q × 1`` sites (lattice (q, 0), (0, 1), site m at reduced x = m/q), so the
magnetic Bloch Hamiltonian is ``q × q`` and has q bands (Hofstadter, PRB 14, 2239 (1976)).

Gap Chern numbers come from the magnetic-Bloch bands — the FHS link method of
:mod:`topodiff.physics.berry` on the magnetic Brillouin zone, per isolated group of bands, summed
over the groups below the gap — not from a formula. TKNN (PRL 49, 405 (1982)): in the ``r``-th gap ``r = q s + p t`` with ``|t| ≤ q/2``;
with this gauge and t > 0 the computed ``t`` (CONTRACTS §2 sign) satisfies it as written.
A gap is listed when its indirect width on the grid exceeds ``gap_tol`` (for even q the central
gap closes at Dirac points and is skipped).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.physics.berry import plaquette_flux
from topodiff.physics.model import TBModel

__all__ = ["hofstadter_model", "hofstadter_gaps", "HofstadterGap", "butterfly", "check_flux", "peierls_supercell"]

MAX_Q = 200


def check_flux(p: int, q: int) -> None:
    """Raise :class:`TopodiffInputError` unless ``q ≥ 1``, ``q ≤ MAX_Q`` and ``gcd(p, q) = 1``."""
    for name, v in (("p", p), ("q", q)):
        if isinstance(v, bool) or int(v) != v:
            raise TopodiffInputError(f"{name} must be an integer, got {v!r}")
    if q <= 0:
        raise TopodiffInputError(f"q must be positive, got {q}")
    if q > MAX_Q:
        raise TopodiffInputError(f"q must be at most {MAX_Q}, got {q}")
    if math.gcd(int(p), int(q)) != 1:
        raise TopodiffInputError(f"p/q = {p}/{q} is not in lowest terms (gcd {math.gcd(int(p), int(q))})")


def hofstadter_model(p: int, q: int, t: float = 1.0) -> TBModel:
    """The ``q``-site magnetic cell of the square-lattice Hofstadter model at flux ``p/q`` (hopping t, eV)."""
    check_flux(p, q)
    if not math.isfinite(t) or t == 0:
        raise TopodiffInputError(f"hopping t must be a finite non-zero number, got {t}")
    m = np.arange(q)
    phase = np.exp(2j * math.pi * p / q * m)
    hop_i = np.concatenate([m, m])
    hop_j = np.concatenate([(m + 1) % q, m])
    R_x = np.stack([(m + 1) // q, np.zeros(q, int)], -1)  # x hop: m → m+1, last one into the next cell
    R_y = np.tile([[0, 1]], (q, 1))
    hop_t = np.concatenate([np.full(q, t, complex), t * phase])
    if q == 1:  # a single column: the x hop is to the next cell, the y hop carries no phase
        hop_t = np.array([t, t], complex)
    orbitals = np.stack([m / q, np.zeros(q)], -1)
    return TBModel(np.diag([float(q), 1.0]), orbitals, np.zeros(q), hop_i, hop_j,
                   np.concatenate([R_x, R_y]), hop_t, name=f"hofstadter_{p}_{q}", params={"p": p, "q": q, "t": t})


def peierls_supercell(model: TBModel, p: int, q: int) -> TBModel:
    """Any 2D model in a field of ``φ = p/q`` flux quanta per unit cell: the ``q × 1`` magnetic supercell.

    Peierls phases in the Landau gauge of reduced coordinates (x along a1, y along a2, cell units):
    ``θ = 2πφ (x_i + x_j)/2 (y_j − y_i)`` for the straight hop i → j, plus the gauge term
    ``−2πp τ_y,j S`` for a hop into the S-th supercell along a1, which makes the magnetic translation
    by q a1 a plain lattice translation also for orbitals off the cell corners (τ_y ∉ ℤ).
    For the square lattice this is exactly :func:`hofstadter_model`.
    """
    check_flux(p, q)
    if model.dim != 2:
        raise TopodiffInputError(f"a Peierls substitution needs a 2D model, got {model.dim}D")
    n_orb, tau = model.n_orb, model.orbitals
    m = np.arange(q)[None, :]  # [1, q] source cell along a1
    i, j, R = model.hop_i[:, None], model.hop_j[:, None], model.hop_R[:, None, :]
    x_i, x_j = m + tau[i, 0], m + R[..., 0] + tau[j, 0]
    dy = R[..., 1] + tau[j, 1] - tau[i, 1]
    dest = m + R[..., 0]
    S = np.floor_divide(dest, q)
    theta = 2 * math.pi * (p / q) * 0.5 * (x_i + x_j) * dy - 2 * math.pi * p * tau[j, 1] * S
    hop_t = model.hop_t[:, None] * np.exp(1j * theta)[..., None, None]  # [n_hop, q, ns, ns]
    orbitals = np.concatenate([np.stack([(c + tau[:, 0]) / q, tau[:, 1]], -1) for c in range(q)])
    hop_R = np.stack([S, np.broadcast_to(R[..., 1], S.shape)], -1).reshape(-1, 2)
    return TBModel(np.stack([q * model.lattice[0], model.lattice[1]]), orbitals, np.tile(model.onsite, (q, 1, 1)),
                   (m * n_orb + i).reshape(-1), ((dest - S * q) * n_orb + j).reshape(-1), hop_R,
                   hop_t.reshape(-1, *model.hop_t.shape[1:]), spinful=model.spinful,
                   name=f"{model.name}_flux_{p}_{q}", params=dict(model.params))


@dataclass
class HofstadterGap:
    """The gap above the ``bands_below`` lowest bands: filling fraction r/q, Chern number, width (eV)."""

    bands_below: int
    q: int
    chern: int
    chern_raw: float
    gap: float
    lower: float
    upper: float

    def to_dict(self) -> dict[str, object]:
        return {"filling_fraction": self.bands_below / self.q, "filling": f"{self.bands_below}/{self.q}",
                "bands_below": self.bands_below, "chern": self.chern, "chern_raw": self.chern_raw,
                "gap": self.gap, "lower_edge": self.lower, "upper_edge": self.upper}


def _spectrum(model: TBModel, nk: int) -> tuple[torch.Tensor, torch.Tensor]:
    k = (np.arange(nk) + 0.0) / nk
    kk = np.stack(np.meshgrid(k, k, indexing="ij"), -1)
    return torch.linalg.eigh(model.hamiltonian(kk, convention=1))


def _group_fluxes(v: torch.Tensor, edges: list[int]) -> tuple[list[float], float]:
    """FHS Chern number of each isolated band group ``[edges[i], edges[i+1])`` and the largest plaquette flux."""
    chern, worst = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        F = plaquette_flux(v[..., lo:hi])
        chern.append(float(F.sum()) / (2 * math.pi))
        worst = max(worst, float(F.abs().max()))
    return chern, worst


def hofstadter_gaps(p: int, q: int, t: float = 1.0, *, model: TBModel | None = None, nk: int | None = None,
                    gap_tol: float | None = None, flux_tol: float = 1.0, max_nk: int = 256) -> list[HofstadterGap]:
    """Open gaps of the Hofstadter spectrum at flux p/q with their FHS Chern numbers.

    The bands between consecutive open gaps form isolated groups; each group's Chern number is the
    FHS sum over its own states (link determinants over the group), and the Chern number of the gap
    above ``r`` bands is the sum over the groups below it. ``nk`` (default ``max(12, 2q)``) is doubled
    up to ``max_nk`` while a plaquette flux exceeds ``flux_tol`` rad (curvature not resolved).
    ``model``: any 2D model instead of the square lattice (:func:`peierls_supercell`; ``t`` unused);
    ``r`` then counts the magnetic bands below the gap and the filling fraction is ``r / (q · nb)``.
    ``gap_tol`` (eV): narrower gaps count as closed (default 1e-6 for the square lattice, 1e-3 × the
    bandwidth for other models, whose many hairline gaps away from the Landau levels FHS cannot resolve).
    """
    model = hofstadter_model(p, q, t) if model is None else peierls_supercell(model, p, q)
    q_bands = model.num_bands
    nk = nk or max(12, 2 * q)
    while True:
        e, v = _spectrum(model, nk)
        top, bottom = e.amax(dim=(0, 1)), e.amin(dim=(0, 1))
        if gap_tol is None:
            gap_tol = 1e-6 if model.name.startswith("hofstadter") else 1e-3 * float(top[-1] - bottom[0])
        open_gaps = [r for r in range(1, q_bands) if float(bottom[r] - top[r - 1]) > gap_tol]
        group_c, worst = _group_fluxes(v, [0] + open_gaps + [q_bands])
        if worst <= flux_tol or 2 * nk > max_nk:
            break
        nk *= 2
    gaps = []
    for n, r in enumerate(open_gaps):
        raw = sum(group_c[:n + 1])
        c = int(round(raw))
        if abs(raw - c) > 1e-6 or worst > flux_tol:
            raise TopodiffInputError(f"Chern number of gap {r}/{q} not converged on {nk}x{nk} (raw {raw:.4f}, "
                                     f"largest plaquette flux {worst:.2f} rad); raise nk")
        gaps.append(HofstadterGap(r, q_bands, c, raw, float(bottom[r] - top[r - 1]), float(top[r - 1]), float(bottom[r])))
    return gaps


def butterfly(q_max: int, t: float = 1.0, *, nk: int = 8) -> dict[str, list]:
    """Spectrum and coloured gaps for every reduced flux p/q with 0 < p < q ≤ ``q_max`` (and 0, 1).

    Returns ``{"flux": [...], "bands": [[E_min, E_max] per band], "gaps": [[{gap dict}, ...]]}``,
    one entry per flux; band edges from an ``nk × nk`` magnetic-BZ grid, gaps with Chern numbers
    from :func:`hofstadter_gaps`.
    """
    if q_max < 1 or q_max > 64:
        raise TopodiffInputError(f"butterfly q_max must be 1..64, got {q_max}")
    fluxes = sorted({(p // math.gcd(p, q), q // math.gcd(p, q)) for q in range(1, q_max + 1) for p in range(0, q + 1)},
                    key=lambda f: f[0] / f[1])
    out: dict[str, list] = {"flux": [], "bands": [], "gaps": []}
    for p, q in fluxes:
        e, _ = _spectrum(hofstadter_model(p, q, t), nk)
        out["flux"].append(p / q)
        out["bands"].append(torch.stack([e.amin(dim=(0, 1)), e.amax(dim=(0, 1))], -1).tolist())
        out["gaps"].append([g.to_dict() for g in hofstadter_gaps(p, q, t)] if q > 1 else [])
    return out
