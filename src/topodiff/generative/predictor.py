"""Noise-aware multi-task property predictor: topo_class logits and band gap (eV) of a crystal at time ``t``.

The encoder is the denoiser's periodic transformer (:class:`~topodiff.generative.denoiser.PairGeometry`,
:class:`~topodiff.generative.denoiser.GeometryBlock`, species/time embeddings, cell features ``G/V^(2/3)``
and ``log(V/n)``), mean-pooled over atoms: outputs are invariant to lattice rotation, common
translation and atom permutation. It is trained on crystals corrupted by the generator's own
processes at random ``t`` (coordinates: wrapped normal ``σ(t)``; lattice: VP latent with the volume
scale ``s(n) = (n v)^(1/3)``; species: clean, or masked with ``m(t)`` for a fraction
``p_species_masked``), so its gradients can guide sampling at every ``t``
(:class:`topodiff.generative.guidance.PredictorGuide`); at ``t = 0`` it is a fast pre-screen.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from topodiff.errors import TopodiffInputError
from topodiff.generative.batch import CrystalBatch
from topodiff.generative.corruption import LatticeVP, MaskedD3PM, WrappedNormalVE
from topodiff.generative.data import CSV_ALIASES, CrystalTorchDataset, batch_from_dataset
from topodiff.generative.denoiser import GeometryBlock, PairGeometry, PeriodicTransformer, atom_positions, to_dense
from topodiff.generative.embeddings import TOPO_CLASSES, SpeciesEmbedding, TimeEmbedding
from topodiff.io_utils import atomic_write

FORMAT = "topodiff-predictor/1"
SUFFIX = ".predictor.ckpt"
DEFAULT_PREDICTOR = "default"
NUM_CLASSES = len(TOPO_CLASSES)


@dataclass
class PredictorConfig:
    """Hyper-parameters of :class:`PropertyPredictor` (lengths in Å, ``t`` in [0, 1]).

    The corruption settings must match the generator the predictor guides (defaults: ``ModelConfig``'s).
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    ffn_mult: int = 2
    pair_dim: int = 32
    num_freqs: int = 4
    num_rbf: int = 16
    rbf_cutoff: float = 7.0
    image_range: int = 1
    max_z: int = 100
    use_descriptors: bool = True
    dropout: float = 0.0
    # corruption the predictor is trained under (copy of the generator's)
    coord_sigma_min: float = 0.005
    coord_sigma_max: float = 0.5
    lattice_schedule: str = "cosine"
    lattice_prior_std: float = 0.3
    species_schedule: str = "linear"
    p_species_masked: float = 0.5   # training fraction with species masked at m(t) (0: species always clean)
    p_clean: float = 0.2            # training fraction at t = 0 (the pre-screen regime)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "PredictorConfig":
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise TopodiffInputError(f"unknown predictor config key(s): {', '.join(unknown)}")
        return cls(**data)


class PropertyPredictor(nn.Module):
    """``(frac [N,3], lattice [B,3,3] Å, species [N] (0 = masked), num_atoms [B], t [B])`` →
    ``{"logits": [B, 4] over TOPO_CLASSES, "gap": [B] eV ≥ 0}``."""

    def __init__(self, cfg: PredictorConfig | dict[str, Any] | None = None) -> None:
        super().__init__()
        cfg = cfg if isinstance(cfg, PredictorConfig) else PredictorConfig.from_dict(cfg)
        self.cfg = cfg
        h = cfg.hidden
        self.coord_diffusion = WrappedNormalVE(cfg.coord_sigma_min, cfg.coord_sigma_max)
        self.lattice_diffusion = LatticeVP(cfg.lattice_schedule, cfg.lattice_prior_std)
        self.species_diffusion = MaskedD3PM(cfg.species_schedule)
        self.geometry = PairGeometry(cfg.num_freqs, cfg.num_rbf, cfg.rbf_cutoff, cfg.image_range)
        self.pair_mlp = nn.Sequential(nn.Linear(self.geometry.out_dim, cfg.pair_dim), nn.SiLU(),
                                      nn.Linear(cfg.pair_dim, cfg.pair_dim))
        self.species = SpeciesEmbedding(h, cfg.max_z, cfg.use_descriptors)
        self.time = TimeEmbedding(h)
        self.cell = nn.Sequential(nn.Linear(7, h), nn.SiLU(), nn.Linear(h, h))
        self.blocks = nn.ModuleList(GeometryBlock(h, cfg.heads, cfg.pair_dim, cfg.dropout, cfg.ffn_mult)
                                    for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(h)
        self.head = nn.Sequential(nn.Linear(2 * h, h), nn.SiLU(), nn.Linear(h, NUM_CLASSES + 1))
        # training-data statistics saved with the weights
        self.register_buffer("volume_per_atom", torch.tensor(15.0))   # Å³, volume scale of the lattice corruption
        self.register_buffer("class_counts", torch.zeros(NUM_CLASSES))
        self.register_buffer("gap_mean", torch.tensor(0.0))            # eV
        self.register_buffer("gap_median", torch.tensor(0.0))          # eV

    def encode(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
               t: torch.Tensor, t_species: torch.Tensor | None = None) -> torch.Tensor:
        """Invariant crystal embedding ``[B, 2H]`` (mean-pooled atoms ‖ time + cell context)."""
        b, n = num_atoms.shape[0], int(num_atoms.max())
        bi, pos = atom_positions(num_atoms)
        mask = to_dense(torch.ones_like(species, dtype=torch.bool), bi, pos, b, n)
        pair = self.pair_mlp(self.geometry(to_dense(frac, bi, pos, b, n), lattice))
        t_species = torch.zeros_like(t) if t_species is None else t_species
        ctx = self.time(t, t_species) + self.cell(PeriodicTransformer.cell_features(lattice, num_atoms))
        h = to_dense(self.species(species), bi, pos, b, n) + ctx[:, None, :]
        for block in self.blocks:
            h = block(h, pair, ctx, mask)
        h = self.final_norm(h)
        pooled = (h * mask[..., None]).sum(1) / num_atoms[:, None].to(h.dtype)
        return torch.cat([pooled, ctx], -1)

    def forward(self, frac: torch.Tensor, lattice: torch.Tensor, species: torch.Tensor, num_atoms: torch.Tensor,
                t: torch.Tensor, t_species: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.head(self.encode(frac, lattice, species, num_atoms, t, t_species))
        return {"logits": out[:, :NUM_CLASSES], "gap": F.softplus(out[:, NUM_CLASSES])}

    def corrupt(self, batch: CrystalBatch, t: torch.Tensor, mask_species: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise a clean batch at times ``t [B]`` with the generator's processes:
        ``(frac_t [N,3], lattice_t [B,3,3] Å, species_t [N], t_species [B])``."""
        bi = batch.batch_index
        frac_t, _ = self.coord_diffusion.q_sample(batch.frac, t[bi], generator)
        s = LatticeVP.scale(batch.num_atoms, self.volume_per_atom)
        y_t, _ = self.lattice_diffusion.q_sample(self.lattice_diffusion.to_latent(batch.lattice, s), t, generator)
        t_species = torch.where(mask_species, t, torch.zeros_like(t))
        species_t, _ = self.species_diffusion.q_sample(batch.species, t_species[bi], generator)
        return frac_t, self.lattice_diffusion.from_latent(y_t, s), species_t, t_species


# ---------------------------------------------------------------------------------------------- save / load
def save_predictor(model: PropertyPredictor, path: str | os.PathLike, recipe: dict[str, Any] | None = None) -> Path:
    """Write weights + config (+ recipe, e.g. measured metrics) atomically; returns the path."""
    obj = {"format": FORMAT, "config": model.cfg.to_dict(), "recipe": recipe or {},
           "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    return atomic_write(path, lambda fh: torch.save(obj, fh), mode="wb")


def resolve_predictor(path_or_name: str | os.PathLike | None) -> Path:
    """A file path or a shipped name (``CHECKPOINT_DIR/<name>.predictor.ckpt``; None: ``default``)."""
    from topodiff.generative.checkpoint import resolve_shipped_file

    return resolve_shipped_file(DEFAULT_PREDICTOR if path_or_name is None else str(path_or_name), SUFFIX, "predictor")


def load_predictor(path_or_name: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                   ) -> PropertyPredictor:
    """Load a predictor (eval mode); missing, unreadable or mismatching files raise TopodiffInputError."""
    from topodiff.generative.checkpoint import load_model_file

    model = load_model_file(resolve_predictor(path_or_name), FORMAT, "predictor",
                            lambda config: PropertyPredictor(PredictorConfig.from_dict(config)))
    return model.to(device)


# ---------------------------------------------------------------------------------------------- prediction
@torch.no_grad()
def predict_batch(model: PropertyPredictor, batch: CrystalBatch, chunk: int = 256, t: float = 0.0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Prediction at time ``t`` (default 0: clean crystals): ``(probabilities [B, 4], gap [B] eV)``, in chunks."""
    probs, gaps = [], []
    off = batch.offsets.tolist()
    for s in range(0, batch.num_crystals, chunk):
        e = min(s + chunk, batch.num_crystals)
        a0, a1 = off[s], off[e - 1] + int(batch.num_atoms[e - 1])
        n = batch.num_atoms[s:e]
        out = model(batch.frac[a0:a1], batch.lattice[s:e], batch.species[a0:a1], n, torch.full((e - s,), float(t)))
        probs.append(torch.softmax(out["logits"], -1))
        gaps.append(out["gap"])
    return torch.cat(probs), torch.cat(gaps)


def predict_path(path: str | os.PathLike, predictor: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Predict every structure :func:`topodiff.crystal.io.read_structures` finds in ``path``:
    ``[{"source", "formula", "topo_class", "probabilities": {class: p}, "gap"} | {"source", "error"}]``."""
    from topodiff.crystal.io import read_structures

    model = load_predictor(predictor)
    records = read_structures(path)
    rows: list[dict[str, Any]] = [{"source": r.source, "error": r.error or "unreadable"} for r in records]
    good = []
    for i, r in enumerate(records):
        if r.ok and max(r.structure.atomic_numbers) > model.cfg.max_z:
            rows[i]["error"] = f"element beyond Z = {model.cfg.max_z}"
        elif r.ok:
            good.append(i)
    if not good:
        return rows
    structs = [records[i].structure for i in good]
    batch = CrystalBatch.from_arrays(np.concatenate([s.frac_coords for s in structs]),
                                     np.stack([s.lattice.matrix for s in structs]),
                                     np.concatenate([s.atomic_numbers for s in structs]),
                                     np.array([len(s) for s in structs]))
    probs, gaps = predict_batch(model, batch)
    for k, i in enumerate(good):
        p = probs[k].tolist()
        rows[i] = {"source": records[i].source, "formula": structs[k].composition.reduced_formula,
                   "topo_class": TOPO_CLASSES[int(np.argmax(p))],
                   "probabilities": dict(zip(TOPO_CLASSES, p)), "gap": float(gaps[k])}
    return rows


# ---------------------------------------------------------------------------------------------- metrics
def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> dict[str, Any]:
    """Accuracy, per-class recall (None for classes absent from ``y_true``), balanced accuracy (mean
    recall over present classes) and the confusion matrix ``C[true, pred]``."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    conf = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(conf, (y_true, y_pred), 1)
    support = conf.sum(1)
    recall = [float(conf[c, c] / support[c]) if support[c] else None for c in range(num_classes)]
    present = [r for r in recall if r is not None]
    return {"n": int(len(y_true)), "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else None,
            "balanced_accuracy": float(np.mean(present)) if present else None,
            "recall": dict(zip(TOPO_CLASSES, recall)), "support": dict(zip(TOPO_CLASSES, support.tolist())),
            "confusion_matrix": conf.tolist()}


def evaluate_predictor(model: PropertyPredictor, batch: CrystalBatch, train_counts: np.ndarray | None = None,
                       train_gap_mean: float | None = None) -> dict[str, Any]:
    """Held-out metrics at ``t = 0`` next to trivial baselines (majority training class; mean training gap)."""
    probs, gap = predict_batch(model, batch)
    return _metrics(probs, gap, batch, train_counts if train_counts is not None else model.class_counts.numpy(),
                    float(model.gap_mean) if train_gap_mean is None else float(train_gap_mean), float(model.gap_median))


@torch.no_grad()
def noisy_metrics(model: PropertyPredictor, batch: CrystalBatch, times: tuple[float, ...] = (0.25, 0.5, 0.75),
                  seed: int = 0) -> dict[str, dict[str, Any]]:
    """Accuracy, balanced accuracy and gap MAE (eV) on crystals corrupted at each ``t`` (species clean):
    how much signal the guide's gradients can carry along the reverse process."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for t in times:
        tb = torch.full((batch.num_crystals,), float(t))
        frac, lat, species, _ = model.corrupt(batch, tb, torch.zeros_like(tb, dtype=torch.bool), gen)
        probs, gap = predict_batch(model, batch.replace(frac=frac, lattice=lat, species=species), t=float(t))
        m = _metrics(probs, gap, batch, model.class_counts.numpy(), float(model.gap_mean), float(model.gap_median))
        out[f"t={t:g}"] = {"accuracy": m["topo_class"]["accuracy"],
                           "balanced_accuracy": m["topo_class"]["balanced_accuracy"], "gap_mae_eV": m["gap_mae_eV"]}
    return out


def _metrics(probs: torch.Tensor, gap: torch.Tensor, batch: CrystalBatch, counts: np.ndarray, gap_mean: float,
             gap_median: float = 0.0) -> dict[str, Any]:
    pred = probs.argmax(-1).numpy()
    tc = batch.conditions["topo_class"].numpy()
    g = batch.conditions["band_gap"].numpy()
    ok_c, ok_g = np.isfinite(tc), np.isfinite(g)
    majority = int(np.argmax(counts))
    cls = classification_metrics(tc[ok_c], pred[ok_c])
    base = classification_metrics(tc[ok_c], np.full(int(ok_c.sum()), majority))
    mae = float(np.mean(np.abs(gap.numpy()[ok_g] - g[ok_g]))) if ok_g.any() else None
    return {"topo_class": cls, "gap_mae_eV": mae, "n_gap": int(ok_g.sum()),
            "baseline": {"majority_class": TOPO_CLASSES[majority], "accuracy": base["accuracy"],
                         "balanced_accuracy": base["balanced_accuracy"],
                         "gap_mean_eV": gap_mean,
                         "gap_mae_eV": float(np.mean(np.abs(gap_mean - g[ok_g]))) if ok_g.any() else None,
                         "gap_median_eV": gap_median,
                         "gap_mae_median_eV": float(np.mean(np.abs(gap_median - g[ok_g]))) if ok_g.any() else None}}


# ---------------------------------------------------------------------------------------------- training
def class_weights(counts: np.ndarray, max_weight: float = 25.0, power: float = 1.0) -> torch.Tensor:
    """Cross-entropy weights ``w_c = (N / (K n_c))^power`` (1: balanced, 0.5: square-root balanced), clipped to
    ``max_weight`` (0 for absent classes)."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    w = np.where(present, counts.sum() / (max(present.sum(), 1) * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(np.minimum(w ** power, max_weight), dtype=torch.float32)


def predictor_loss(model: PropertyPredictor, batch: CrystalBatch, weights: torch.Tensor,
                   generator: torch.Generator | None = None, w_gap: float = 1.0, huber_delta: float = 0.1
                   ) -> dict[str, torch.Tensor]:
    """Weighted cross-entropy on finite ``topo_class`` labels + Huber/δ (eV) on finite ``band_gap`` labels,
    on crystals corrupted at ``t ∼ U(0, 1)`` (``t = 0`` for a fraction ``p_clean``)."""
    b = batch.num_crystals
    cfg = model.cfg
    t = torch.rand(b, generator=generator)
    t = torch.where(torch.rand(b, generator=generator) < cfg.p_clean, torch.zeros_like(t), t)
    mask_species = torch.rand(b, generator=generator) < cfg.p_species_masked
    frac_t, lat_t, species_t, t_sp = model.corrupt(batch, t, mask_species, generator)
    out = model(frac_t, lat_t, species_t, batch.num_atoms, t, t_sp)
    tc, g = batch.conditions["topo_class"], batch.conditions["band_gap"]
    ok_c, ok_g = torch.isfinite(tc), torch.isfinite(g)
    zero = out["gap"].sum() * 0.0
    ce = F.cross_entropy(out["logits"][ok_c], tc[ok_c].long(), weight=weights) if bool(ok_c.any()) else zero
    # Huber / δ: quadratic below δ, ≈ |error| (eV) above, so the gap term keeps the CE's scale
    hub = F.huber_loss(out["gap"][ok_g], g[ok_g], delta=huber_delta) / huber_delta if bool(ok_g.any()) else zero
    return {"loss": ce + w_gap * hub, "ce": ce.detach(), "gap": hub.detach()}


def _labelled(csv: str | os.PathLike) -> CrystalTorchDataset:
    from topodiff.crystal.dataset import load_dataset

    ds = CrystalTorchDataset(load_dataset(csv))
    for key in ("topo_class", "band_gap"):
        if key not in ds.conditions:
            raise TopodiffInputError(f"{csv} has no {key} labels (expected a `topodiff dataset label` CSV "
                                     f"with topo_class and gap columns)")
    props = getattr(ds.arrays, "properties", None) or {}
    ds.gap_column = next((a for a in CSV_ALIASES["band_gap"] if a in props), None)
    return ds


def train_predictor(train_csv: str | os.PathLike, val_csv: str | os.PathLike, out: str | os.PathLike | None,
                    steps: int = 2000, batch_size: int = 64, seed: int = 0, *, lr: float = 2e-3,
                    config: PredictorConfig | dict[str, Any] | None = None, w_gap: float = 1.0,
                    max_class_weight: float = 25.0, class_weight_power: float = 0.5, huber_delta: float = 0.1,
                    progress: bool = True, recipe: dict[str, Any] | None = None
                    ) -> tuple[PropertyPredictor, dict[str, Any]]:
    """Train on a labelled CSV, evaluate on ``val_csv`` at ``t = 0``; write ``out`` (if given).

    Returns ``(model, metrics)``; the metrics (with baselines, data sizes and wall time) are also
    stored in the checkpoint's recipe.
    """
    if int(steps) < 1 or int(batch_size) < 1:
        raise TopodiffInputError(f"steps and batch size must be ≥ 1, got {steps}, {batch_size}")
    torch.manual_seed(int(seed))
    gen = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    train, val = _labelled(train_csv), _labelled(val_csv)
    keep = np.nonzero(np.isfinite(train.conditions["topo_class"]) | np.isfinite(train.conditions["band_gap"]))[0]
    if keep.size == 0:
        raise TopodiffInputError(f"{train_csv}: no row has a topo_class or gap label")
    model = PropertyPredictor(config)
    if int(train.species.max()) > model.cfg.max_z:
        raise TopodiffInputError(f"{train_csv}: elements beyond Z = {model.cfg.max_z}")
    tc = train.conditions["topo_class"][keep]
    counts = np.bincount(tc[np.isfinite(tc)].astype(int), minlength=NUM_CLASSES).astype(np.float64)
    gaps = train.conditions["band_gap"][keep]
    model.class_counts.copy_(torch.as_tensor(counts))
    model.gap_mean.fill_(float(np.nanmean(gaps)) if np.isfinite(gaps).any() else 0.0)
    model.gap_median.fill_(float(np.nanmedian(gaps)) if np.isfinite(gaps).any() else 0.0)
    model.volume_per_atom.fill_(float(np.mean(np.abs(np.linalg.det(train.lattices.astype(np.float64)))
                                              / train.num_atoms)))
    weights = class_weights(counts, max_class_weight, class_weight_power)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=int(steps), pct_start=0.05)
    from topodiff.progress import progress as progress_bar

    t0 = time.time()
    model.train()
    bar = progress_bar(range(int(steps)), desc="predictor", enabled=None if progress else False)
    for _ in bar:
        batch = batch_from_dataset(train, rng.choice(keep, size=min(int(batch_size), keep.size), replace=False))
        loss = predictor_loss(model, batch, weights, gen, w_gap, huber_delta)
        opt.zero_grad()
        loss["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(ce=f"{float(loss['ce']):.3f}", gap=f"{float(loss['gap']):.3f}")
    model.eval()
    val_batch = batch_from_dataset(val, np.arange(len(val)))
    metrics = evaluate_predictor(model, val_batch, counts, float(model.gap_mean))
    metrics["noisy"] = noisy_metrics(model, val_batch, seed=int(seed))
    metrics.update({"train_rows": int(keep.size), "val_rows": len(val), "gap_column": train.gap_column,
                    "train_class_counts": dict(zip(TOPO_CLASSES, counts.tolist())),
                    "steps": int(steps), "batch_size": int(batch_size), "seed": int(seed), "lr": lr,
                    "class_weight_power": class_weight_power, "huber_delta_eV": huber_delta,
                    "class_weights": weights.tolist(), "train_wall_s": round(time.time() - t0, 1)})
    if out is not None:
        save_predictor(model, out, {**(recipe or {}), "train_csv": str(train_csv), "val_csv": str(val_csv),
                                    "metrics": metrics})
    return model, metrics
