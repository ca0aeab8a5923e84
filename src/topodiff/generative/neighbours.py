"""Periodic neighbour pairs of a batch of crystals from vesin's neighbour list (all images, any cell).

``periodic_pairs`` finds, per crystal, every pair ``(i, j, S)`` with ``|(f_j − f_i + S) L| < cutoff``
(Å; ``S`` an integer image shift, self-images ``i = j, S ≠ 0`` included, both orders listed) with
vesin in float64, without gradients; :func:`pair_distances` then recomputes the distances in torch,
differentiable in the fractional coordinates and the lattice. Unlike a fixed ``{−1,0,1}³`` image
window of the given cell, this is right for strongly skewed cells.
"""
from __future__ import annotations

import numpy as np
import torch
import vesin


def periodic_pairs(frac: torch.Tensor, lattice: torch.Tensor, num_atoms: torch.Tensor,
                   cutoff: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(i [P], j [P], shift [P,3])``: global atom indices and image shifts of the pairs closer than
    ``cutoff`` (Å; a number, or ``[B]`` one per crystal) in a batch (``frac [N,3]`` fractional,
    ``lattice [B,3,3]`` Å with rows = vectors). Degenerate cells give no pairs."""
    f = np.mod(frac.detach().double().cpu().numpy(), 1.0)
    lat = lattice.detach().double().cpu().numpy()
    cuts = np.broadcast_to(np.asarray(cutoff.detach().cpu() if torch.is_tensor(cutoff) else cutoff, float), (len(lat),))
    starts = np.concatenate([[0], np.cumsum(num_atoms.tolist())]).astype(np.int64)
    out_i, out_j, out_s = [], [], []
    for b, L in enumerate(lat):  # one neighbour list per crystal (vesin is O(N) per crystal)
        if not (np.isfinite(L).all() and abs(np.linalg.det(L)) > 1e-12 and cuts[b] > 0):
            continue
        nl = vesin.NeighborList(cutoff=float(cuts[b]), full_list=True)
        i, j, s = nl.compute(f[starts[b]:starts[b + 1]] @ L, L, True, quantities="ijS")
        out_i.append(i.astype(np.int64) + starts[b])
        out_j.append(j.astype(np.int64) + starts[b])
        out_s.append(s)
    dev = frac.device
    if not out_i:
        return (torch.zeros(0, dtype=torch.long, device=dev),) * 2 + (torch.zeros(0, 3, dtype=frac.dtype, device=dev),)
    return (torch.as_tensor(np.concatenate(out_i), device=dev), torch.as_tensor(np.concatenate(out_j), device=dev),
            torch.as_tensor(np.concatenate(out_s), dtype=frac.dtype, device=dev))


def pair_distances(frac: torch.Tensor, lattice: torch.Tensor, num_atoms: torch.Tensor, i: torch.Tensor,
                   j: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``[P]`` distances ``|(f_j − f_i + S) L_b|`` (Å) of :func:`periodic_pairs`' pairs, differentiable
    (coordinates wrapped into [0, 1) as vesin saw them; the wrap has unit gradient)."""
    wrapped = frac - torch.floor(frac.detach())
    crystal = torch.repeat_interleave(torch.arange(num_atoms.shape[0], device=frac.device), num_atoms)[i]
    d = wrapped[j] - wrapped[i] + shift
    cart = torch.einsum("pk,pkl->pl", d, lattice.to(frac.dtype)[crystal])
    return torch.sqrt((cart * cart).sum(-1).clamp_min(1e-24))
