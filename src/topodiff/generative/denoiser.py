"""Periodic transformer with physics-aware attention (the denoiser of the crystal diffusion).

Inputs are invariant by construction:

* pair geometry uses fractional differences ``Δf_ij = f_j − f_i`` (translation invariant) through
  Fourier features ``sin/cos(2π k Δf)`` (as DiffCSP's CSPNet, Jiao et al. 2023) and a Gaussian radial
  basis of the periodic distances ``|(Δf_ij + n) L|`` summed over images ``n ∈ {−r..r}³`` and weighted
  by a smooth cutoff; distances come from the metric ``G = L Lᵀ`` (rotation invariant);
* the cell enters through the scale-free metric ``G / V^(2/3)`` and ``log(V / n)``.

Attention logits of every head get a learned bias from the pair embedding and values get a learned
pair term, so attention is "geometry aware". Atoms attend only within their crystal (dense padded
batches, no Python loops). Outputs: a per-atom coordinate score (fractional, translation and rotation
invariant), a lattice update ``S L`` with an invariant ``S`` (rotation equivariant, as DiffCSP), and
per-atom species logits.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from topodiff.generative.config import ModelConfig
from topodiff.generative.embeddings import SpeciesEmbedding


def to_dense(x: torch.Tensor, batch_index: torch.Tensor, pos: torch.Tensor, b: int, n: int) -> torch.Tensor:
    """Scatter per-atom rows ``x [N, ...]`` into a padded ``[B, n, ...]`` tensor."""
    out = x.new_zeros((b, n) + tuple(x.shape[1:]))
    out[batch_index, pos] = x
    return out


def atom_positions(num_atoms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(batch_index [N], position-in-crystal [N])``."""
    b = num_atoms.shape[0]
    bi = torch.repeat_interleave(torch.arange(b, device=num_atoms.device), num_atoms)
    offsets = torch.cumsum(num_atoms, 0) - num_atoms
    pos = torch.arange(bi.shape[0], device=num_atoms.device) - offsets[bi]
    return bi, pos


def periodic_distances(frac: torch.Tensor, lattice: torch.Tensor, num_atoms: torch.Tensor, image_range: int = 1
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances of every atom pair over periodic images of a padded batch, differentiable.

    Returns ``(r [B, n, n, M], valid [B, n, n, M])``: ``r[b, i, j, m] = |(f_j − f_i + s_m) L_b|`` (Å,
    ``Δf`` wrapped into [−½, ½), shifts ``s_m ∈ {−r..r}³``), ``valid`` False for padding and for the atom
    itself at the zero shift.
    """
    b, n = num_atoms.shape[0], int(num_atoms.max())
    bi, pos = atom_positions(num_atoms)
    f = to_dense(frac, bi, pos, b, n)
    mask = to_dense(torch.ones_like(bi, dtype=torch.bool), bi, pos, b, n)
    d = f[:, None] - f[:, :, None]                                   # [B, i, j, 3] = f_j − f_i
    d = d - torch.round(d)
    g = torch.arange(-image_range, image_range + 1, dtype=frac.dtype, device=frac.device)
    shifts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    dn = d[..., None, :] + shifts                                    # [B, i, j, M, 3]
    lat = lattice.to(frac.dtype)[:, None, None, None]
    cart = dn[..., 0:1] * lat[..., 0, :] + dn[..., 1:2] * lat[..., 1, :] + dn[..., 2:3] * lat[..., 2, :]
    r = torch.sqrt((cart * cart).sum(-1).clamp_min(1e-12))
    self_pair = torch.eye(n, dtype=torch.bool, device=frac.device)[None, :, :, None] & (shifts.abs().sum(-1) == 0)
    valid = (mask[:, :, None] & mask[:, None, :])[..., None] & ~self_pair
    return r, valid


class PairGeometry(nn.Module):
    """Invariant pair features ``[B, n, n, 6K + R]`` of a padded batch."""

    def __init__(self, num_freqs: int, num_rbf: int, cutoff: float, image_range: int) -> None:
        super().__init__()
        r = image_range
        g = torch.arange(-r, r + 1, dtype=torch.float32)
        shifts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        self.register_buffer("shifts", shifts, persistent=False)
        self.register_buffer("freqs", torch.arange(1, num_freqs + 1, dtype=torch.float32), persistent=False)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num_rbf), persistent=False)
        self.width = cutoff / num_rbf
        self.cutoff = cutoff
        self.out_dim = 6 * num_freqs + num_rbf

    def forward(self, frac: torch.Tensor, lattice: torch.Tensor) -> torch.Tensor:
        d = frac[:, None, :, :] - frac[:, :, None, :]            # [B, i, j, 3] = f_j − f_i
        d = d - torch.round(d)
        arg = 2 * math.pi * d[..., None] * self.freqs             # [B, i, j, 3, K]
        fourier = torch.cat([torch.sin(arg), torch.cos(arg)], -1).flatten(-2)
        # periodic images: Cartesian (Δf + n) L via broadcasting (a batched matmul of 3x3 blocks is slow on CPU)
        dn = d[..., None, :] + self.shifts                        # [B, i, j, M, 3]
        lat = lattice[:, None, None, None]                        # [B, 1, 1, 1, 3, 3]
        cart = (dn[..., 0:1] * lat[..., 0, :] + dn[..., 1:2] * lat[..., 1, :] + dn[..., 2:3] * lat[..., 2, :])
        r = torch.sqrt((cart * cart).sum(-1).clamp_min(1e-10))   # |(Δf+n) L| — depends on L only via G = L Lᵀ
        env = 0.5 * (torch.cos(math.pi * (r / self.cutoff).clamp(max=1.0)) + 1.0) * (r > 1e-3)
        rbf = torch.exp(-((r[..., None] - self.centers) / self.width) ** 2) * env[..., None]
        return torch.cat([fourier, rbf.sum(-2)], -1)


class PairMessage(nn.Module):
    """``[B, i, j, hidden]`` message ``W_o silu(W_i x_i + W_j x_j + W_p p_ij)`` added to the attention values of
    a block, so that the pair geometry and both atoms' states interact nonlinearly in every block (the
    static pair values alone are linear in the geometry). ``W_o`` starts at zero: a model with messages
    computes what the same weights without them do, so it can continue from such a checkpoint."""

    def __init__(self, hidden: int, pair_dim: int) -> None:
        super().__init__()
        width = max(hidden // 2, 1)
        self.query = nn.Linear(hidden, width)
        self.key = nn.Linear(hidden, width, bias=False)
        self.pair = nn.Linear(pair_dim, width, bias=False)
        self.out = nn.Linear(width, hidden)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        return self.out(torch.nn.functional.silu(self.query(x)[:, :, None] + self.key(x)[:, None, :] + self.pair(pair)))


class GeometryBlock(nn.Module):
    """Pre-norm transformer block with adaLN time conditioning and pair-biased attention (optionally with
    :class:`PairMessage` values)."""

    def __init__(self, hidden: int, heads: int, pair_dim: int, dropout: float = 0.0, ffn_mult: int = 2,
                 pair_messages: bool = False) -> None:
        super().__init__()
        self.heads, self.dh = heads, hidden // heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.pair_bias = nn.Linear(pair_dim, heads)
        self.pair_value = nn.Linear(pair_dim, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, ffn_mult * hidden), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_mult * hidden, hidden))
        self.message = PairMessage(hidden, pair_dim) if pair_messages else None
        self.ada = nn.Linear(hidden, 6 * hidden)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, h: torch.Tensor, pair: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        b, n, hd = h.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(ctx)[:, None, :].chunk(6, -1)
        x = self.norm1(h) * (1 + sc1) + sh1
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.dh).unbind(2)      # [B, n, h, d]
        # crystals are small: elementwise products in a [B, i, j, h] layout beat many tiny bmm calls on CPU
        logits = (q[:, :, None] * k[:, None, :]).sum(-1) / math.sqrt(self.dh)   # [B, i, j, h]
        logits = logits + self.pair_bias(pair)
        logits = logits.masked_fill(~key_mask[:, None, :, None], float("-inf"))
        attn = torch.softmax(logits, 2)[..., None]                               # over j
        pv = self.pair_value(pair)
        if self.message is not None:
            pv = pv + self.message(x, pair)
        pv = pv.view(b, n, n, self.heads, self.dh)
        o = (attn * (v[:, None] + pv)).sum(2)                                    # [B, i, h, d]
        h = h + (1 + g1) * self.out(o.reshape(b, n, hd))
        x = self.norm2(h) * (1 + sc2) + sh2
        return h + (1 + g2) * self.ffn(x)


class PeriodicTransformer(nn.Module):
    """Denoiser: ``(frac [N,3], lattice [B,3,3], species [N], num_atoms [B], ctx [B,H])`` →
    ``(coord [N,3], lattice_update [B,3,3], species_logits [N, max_z+1])``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.hidden
        self.geometry = PairGeometry(cfg.num_freqs, cfg.num_rbf, cfg.rbf_cutoff, cfg.image_range)
        self.pair_mlp = nn.Sequential(nn.Linear(self.geometry.out_dim, cfg.pair_dim), nn.SiLU(),
                                      nn.Linear(cfg.pair_dim, cfg.pair_dim))
        self.species = SpeciesEmbedding(h, cfg.max_z, cfg.use_descriptors)
        self.cell = nn.Sequential(nn.Linear(7, h), nn.SiLU(), nn.Linear(h, h))
        self.blocks = nn.ModuleList(GeometryBlock(h, cfg.heads, cfg.pair_dim, cfg.dropout, cfg.ffn_mult, cfg.pair_messages)
                                    for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(h)
        self.coord_head = nn.Sequential(nn.Linear(h, h), nn.SiLU(), nn.Linear(h, 3))
        self.lattice_head = nn.Sequential(nn.Linear(2 * h, h), nn.SiLU(), nn.Linear(h, 9))
        nn.init.zeros_(self.lattice_head[-1].weight)
        nn.init.zeros_(self.lattice_head[-1].bias)
        self.species_head = nn.Linear(h, cfg.max_z + 1)
        # copy path: logit_i(e) += a_i·[e revealed in the crystal] + b_i·(fraction of its atoms that are e)
        self.species_copy = nn.Linear(h, 2) if cfg.species_copy else None
        if self.species_copy is not None:
            nn.init.zeros_(self.species_copy.weight)
            nn.init.zeros_(self.species_copy.bias)
        # pairwise periodic "force" head: score_i[a] = Σ_j Σ_k c_ijak sin(2π k Δf_ij[a])
        self.num_freqs = cfg.num_freqs
        self.force_i = nn.Linear(h, cfg.pair_dim)
        self.force_j = nn.Linear(h, cfg.pair_dim, bias=False)
        self.force_e = nn.Linear(cfg.pair_dim, cfg.pair_dim, bias=False)
        self.force_out = nn.Linear(cfg.pair_dim, 3 * cfg.num_freqs)
        nn.init.zeros_(self.force_out.weight)
        nn.init.zeros_(self.force_out.bias)

    @staticmethod
    def cell_features(lattice: torch.Tensor, num_atoms: torch.Tensor) -> torch.Tensor:
        """``[B, 7]``: upper triangle of ``G / V^(2/3)`` and ``log(V / n)``."""
        metric = lattice @ lattice.transpose(1, 2)
        vol = torch.linalg.det(lattice).abs().clamp_min(1e-3)
        g = metric / vol[:, None, None] ** (2.0 / 3.0)
        iu = torch.triu_indices(3, 3, device=lattice.device)
        return torch.cat([g[:, iu[0], iu[1]], torch.log(vol / num_atoms.to(vol.dtype))[:, None]], -1)

    def forward(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
                ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = num_atoms.shape[0]
        n = int(num_atoms.max())
        bi, pos = atom_positions(num_atoms)
        mask = to_dense(torch.ones_like(species, dtype=torch.bool), bi, pos, b, n)
        fd = to_dense(frac, bi, pos, b, n)
        pair = self.pair_mlp(self.geometry(fd, lattice))
        ctx = ctx + self.cell(self.cell_features(lattice, num_atoms))
        h = to_dense(self.species(species), bi, pos, b, n) + ctx[:, None, :]
        for block in self.blocks:
            h = block(h, pair, ctx, mask)
        h = self.final_norm(h)
        ha = h[bi, pos]                                             # back to [N, H]
        m = torch.nn.functional.silu(self.force_i(h)[:, :, None] + self.force_j(h)[:, None, :] + self.force_e(pair))
        coef = self.force_out(m).view(b, n, n, 3, self.num_freqs)
        coef = coef * (mask[:, :, None] & mask[:, None, :])[..., None, None]
        d = fd[:, None, :, :] - fd[:, :, None, :]
        basis = torch.sin(2 * math.pi * d[..., None] * self.geometry.freqs)   # [B, i, j, 3, K]
        force = (coef * basis).sum((2, 4))                                     # [B, i, 3]
        pooled = (h * mask[..., None]).sum(1) / num_atoms[:, None].to(h.dtype)
        s = self.lattice_head(torch.cat([pooled, ctx], -1)).view(b, 3, 3)
        logits = self.species_head(ha)
        if self.species_copy is not None:
            logits = logits + self.copy_logits(ha, species, bi, num_atoms, logits.shape[-1])
        return self.coord_head(ha) + force[bi, pos], s @ lattice, logits

    def copy_logits(self, ha: torch.Tensor, species: torch.Tensor, bi: torch.Tensor, num_atoms: torch.Tensor,
                    num_species: int) -> torch.Tensor:
        """``[N, num_species]`` logit offsets from the revealed composition of each atom's crystal
        (species 0 = masked is not counted): ``a_i`` on each element present, ``b_i`` × its atom fraction."""
        revealed = species > 0
        counts = ha.new_zeros(num_atoms.shape[0], num_species)
        counts.index_put_((bi[revealed], species[revealed]), torch.ones_like(species[revealed], dtype=ha.dtype),
                          accumulate=True)
        present = (counts > 0).to(ha.dtype)
        fraction = counts / num_atoms[:, None].to(ha.dtype)
        gate = self.species_copy(ha)
        return gate[:, 0:1] * present[bi] + gate[:, 1:2] * fraction[bi]
