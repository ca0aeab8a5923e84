"""DiffCSP (Jiao et al., NeurIPS 2023) trained and sampled by its own code at a fixed CPU budget.

The peer of topodiff's MP-20 benchmark: DiffCSP's public code (github.com/jiaor17/DiffCSP, not part
of this repository) is imported from ``--diffcsp-root`` and run unchanged with its default
hyper-parameters (``conf/model/diffusion.yaml`` for CSP, ``conf/model/diffusion_w_type.yaml`` for
ab-initio generation, both with ``decoder/cspnet.yaml``; ``conf/optim/default.yaml``; batch size and
pre-processing of ``conf/data/mp_20.yaml``). This script replaces only DiffCSP's Lightning/Hydra
run loop, so that training stops at a CPU-time budget (``time.process_time()``, one thread) and
resumes from weights-only checkpoints:

* data: the ``cif`` column of a CDVAE-style CSV through DiffCSP's own ``build_crystal`` (Niggli
  reduced, as ``mp_20.yaml``) into lengths/angles/frac_coords/atom_types/num_atoms in memory. The
  CrystalNN graph of their pre-processing is not built: CSPNet (``edge_style: fc``) makes its own
  fully connected graph and never reads ``edge_index``.
* optimiser: their Adam (lr 1e-3) and ReduceLROnPlateau (factor 0.6, patience 30, min_lr 1e-4),
  stepped every ``val_check_interval`` (5) epochs on the validation loss (``--val``) or, without
  one, on the epoch-mean training loss; gradients clipped by value at 0.5 (``train/default.yaml``);
  a NaN loss skips the step (their ``training_step``).
* sampling: their ``CSPDiffusion.sample`` (1000 steps, predictor-corrector) with their recommended
  ``step_lr`` for MP-20 (CSP 1e-5, generation 5e-6). ``gen`` draws num_atoms from the training
  file's distribution; ``csp`` takes the compositions of the first ``--num`` rows of ``--csp-input``
  and keeps their order (frame info ``index``, ``sample``).

Outputs under ``--out``: ``ckpt.pt`` (state dicts only), ``samples/structures.extxyz`` and
``samples/metadata.json`` (read by ``topodiff evaluate`` and ``benchmarks/bench_mp20.py``), and
``run.json`` (steps, epochs, CPU s, wall s of training and sampling).

    PYTHONPATH=/work/peers/shim:/work/peers/site OMP_NUM_THREADS=1 \\
    python benchmarks/peers/diffcsp_peer.py --diffcsp-root /work/peers/DiffCSP --mode gen \\
        --train data/mp20/train.csv --out runs/peer_diffcsp_gen --cpu-seconds 3600 --num 1000
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

STEP_LR = {"csp": 1e-5, "gen": 5e-6}     # DiffCSP scripts/eval_utils.py recommand_step_lr, mp_20
MODEL_CONF = {"csp": "diffusion", "gen": "diffusion_w_type"}
VAL_EVERY_EPOCHS = 5                     # conf/logging/default.yaml val_check_interval
GRAD_CLIP_VALUE = 0.5                    # conf/train/default.yaml gradient_clip_val (value)
SEED = 42                                # conf/train/default.yaml random_seed
#: Longest lattice vector written (Å). topodiff's reader checks overlaps with pymatgen's cell-list
#: neighbour search, whose memory grows with (cell extent / 0.5 Å)^3: an untrained model's 1e5 Å
#: cells exhaust the machine. Longer cells are recorded as not written (bench_mp20: invalid).
MAX_CELL_LENGTH = 100.0


class PeerError(Exception):
    """Bad input: reported as one ``error:`` line, exit code 2."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# DiffCSP set-up
# ----------------------------------------------------------------------------------------------
def import_diffcsp(root: Path) -> None:
    """Put DiffCSP's source tree on ``sys.path`` (``PROJECT_ROOT`` as its ``.env`` would set it)."""
    if not (root / "diffcsp" / "pl_modules" / "diffusion.py").is_file() or not (root / "conf").is_dir():
        raise PeerError(f"--diffcsp-root {root}: not a DiffCSP checkout (diffcsp/pl_modules/diffusion.py, conf/)")
    os.environ.setdefault("PROJECT_ROOT", str(root))
    sys.path.insert(0, str(root))


def load_config(root: Path, mode: str) -> Any:
    """DiffCSP's Hydra config (``conf/default.yaml``) with ``data=mp_20`` and the mode's model."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(root / "conf"), version_base=None):
        return compose(config_name="default", overrides=["data=mp_20", f"model={MODEL_CONF[mode]}"])


def build_model(cfg: Any) -> Any:
    """Their LightningModule, instantiated as ``diffcsp/run.py`` does."""
    import hydra

    return hydra.utils.instantiate(cfg.model, optim=cfg.optim, data=cfg.data, logging=cfg.logging,
                                   _recursive_=False)


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def read_crystals(csv: Path, cfg: Any, limit: int | None = None, *, strict: bool = False
                  ) -> tuple[list[dict[str, np.ndarray]], int]:
    """Crystal arrays of the ``cif`` column via DiffCSP's ``build_crystal`` (their pre-processing).

    Returns the arrays and the number of unreadable rows (skipped; with ``strict`` an error, so
    that a CSP input keeps its row order)."""
    import pandas as pd
    from diffcsp.common.data_utils import build_crystal, build_crystal_graph

    try:
        df = pd.read_csv(csv, nrows=limit)
    except (OSError, ValueError) as exc:
        raise PeerError(f"{csv}: cannot read as CSV ({exc})") from None
    if "cif" not in df.columns:
        raise PeerError(f"{csv}: no 'cif' column (a CDVAE-style CSV is expected)")
    out, bad = [], 0
    for k, cif in enumerate(df["cif"]):
        try:
            with warnings.catch_warnings():   # pymatgen's CIF rounding notes, one per row
                warnings.simplefilter("ignore")
                crystal = build_crystal(cif, niggli=cfg.data.niggli, primitive=cfg.data.primitive)
                f, z, lengths, angles, _, _, _ = build_crystal_graph(crystal, "none")
        except Exception as exc:  # their parser raises anything on a bad CIF
            if strict:
                raise PeerError(f"{csv}: row {k} cannot be read ({type(exc).__name__}: {exc})") from None
            bad += 1
            continue
        out.append({"frac_coords": np.asarray(f, float), "atom_types": np.asarray(z, np.int64),
                    "lengths": np.asarray(lengths, float), "angles": np.asarray(angles, float)})
    if not out:
        raise PeerError(f"{csv}: no readable crystals")
    return out, bad


def cached_crystals(csv: Path, cfg: Any, cache: Path) -> list[dict[str, np.ndarray]]:
    """:func:`read_crystals` of the training file, kept as flat arrays (``.npz``, no pickle)."""
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()[:16]
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["digest"]) == digest:
                return _split(z)
    crystals, bad = read_crystals(csv, cfg)
    log(f"read {len(crystals)} crystals from {csv} ({bad} unreadable rows skipped)")
    n = np.array([len(c["atom_types"]) for c in crystals])
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, digest=np.array(digest), num_atoms=n,
             frac_coords=np.concatenate([c["frac_coords"] for c in crystals]),
             atom_types=np.concatenate([c["atom_types"] for c in crystals]),
             lengths=np.stack([c["lengths"] for c in crystals]), angles=np.stack([c["angles"] for c in crystals]))
    os.replace(tmp, cache)
    return crystals


def _split(z: Any) -> list[dict[str, np.ndarray]]:
    """Per-crystal views of the flat arrays; each ``.npz`` member is read once (``z[key]`` re-reads it)."""
    num, frac, types, lengths, angles = (z[k] for k in ("num_atoms", "frac_coords", "atom_types", "lengths", "angles"))
    ends = np.cumsum(num)
    starts = ends - num
    return [{"frac_coords": frac[a:b], "atom_types": types[a:b], "lengths": lengths[i], "angles": angles[i]}
            for i, (a, b) in enumerate(zip(starts, ends))]


def to_data(c: dict[str, np.ndarray]) -> Any:
    """One ``torch_geometric`` ``Data`` with the fields of DiffCSP's ``CrystDataset.__getitem__``."""
    import torch
    from torch_geometric.data import Data

    n = len(c["atom_types"])
    return Data(frac_coords=torch.Tensor(c["frac_coords"]), atom_types=torch.LongTensor(c["atom_types"]),
                lengths=torch.Tensor(c["lengths"]).view(1, -1), angles=torch.Tensor(c["angles"]).view(1, -1),
                num_atoms=n, num_nodes=n)


# ----------------------------------------------------------------------------------------------
# training at a CPU budget
# ----------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: Any, opt: Any, sched: Any, progress: dict[str, Any]) -> None:
    """State dicts and progress only (loadable with ``torch.load(weights_only=True)``), atomically."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": torch.get_rng_state(), "progress": progress}, tmp)
    os.replace(tmp, path)


def epoch_order(n: int, epoch: int, seed: int) -> Any:
    """The shuffled order of epoch ``epoch`` (a function of seed and epoch, so a resume replays it)."""
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))


def mean_loss(model: Any, data: list[Any], batch_size: int) -> float:
    """Mean DiffCSP loss over ``data`` (their ``validation_step``: the same noisy objective, no grad)."""
    import torch
    from torch_geometric.data import Batch

    model.eval()
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for a in range(0, len(data), batch_size):
            chunk = data[a:a + batch_size]
            tot += float(model(Batch.from_data_list(chunk))["loss"]) * len(chunk)
            cnt += len(chunk)
    model.train()
    return tot / max(cnt, 1)


def train(model: Any, data: list[Any], val: list[Any] | None, args: argparse.Namespace, ckpt: Path) -> dict[str, Any]:
    """Train until ``args.cpu_seconds`` of process CPU time (summed over resumes) are spent."""
    import torch
    from torch_geometric.data import Batch

    cfg_opt = model.configure_optimizers()
    opt, sched = cfg_opt["optimizer"], cfg_opt["lr_scheduler"]
    progress = {"step": 0, "epoch": 0, "step_in_epoch": 0, "cpu_s": 0.0, "wall_s": 0.0, "skipped_nan": 0,
                "epoch_loss_sum": 0.0, "epoch_loss_n": 0, "last_loss": None, "val_loss": None}
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        progress.update(state["progress"])
        log(f"resumed at step {progress['step']} (epoch {progress['epoch']}, {progress['cpu_s']:.0f} CPU s)")
    bs = args.batch_size
    per_epoch = math.ceil(len(data) / bs)
    cpu0, wall0 = time.process_time() - progress["cpu_s"], time.time() - progress["wall_s"]
    last_ckpt, last_log = progress["cpu_s"], (progress["cpu_s"], progress["step"])
    model.train()
    while time.process_time() - cpu0 < args.cpu_seconds:
        order = epoch_order(len(data), progress["epoch"], args.seed)
        a = progress["step_in_epoch"] * bs
        out = model(Batch.from_data_list([data[i] for i in order[a:a + bs].tolist()]))
        loss = out["loss"]
        if torch.isnan(loss):
            progress["skipped_nan"] += 1
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), GRAD_CLIP_VALUE)
            opt.step()
            progress["epoch_loss_sum"] += float(loss.detach())
            progress["epoch_loss_n"] += 1
            progress["last_loss"] = {k: round(float(v.detach()), 5) for k, v in out.items()}
        progress["step"] += 1
        progress["step_in_epoch"] += 1
        if progress["step_in_epoch"] == per_epoch:
            end_epoch(model, val, progress, sched, bs)
        progress["cpu_s"], progress["wall_s"] = time.process_time() - cpu0, time.time() - wall0
        if progress["cpu_s"] - last_log[0] >= args.log_every:
            rate = (progress["step"] - last_log[1]) / (progress["cpu_s"] - last_log[0])
            log(f"step {progress['step']} epoch {progress['epoch']} loss {progress['last_loss']} "
                f"lr {opt.param_groups[0]['lr']:.2e} {rate:.3f} steps/CPU-s cpu {progress['cpu_s']:.0f}s")
            last_log = (progress["cpu_s"], progress["step"])
        if progress["cpu_s"] - last_ckpt >= args.checkpoint_every:
            save_checkpoint(ckpt, model, opt, sched, progress)
            last_ckpt = progress["cpu_s"]
    save_checkpoint(ckpt, model, opt, sched, progress)
    progress["epochs_float"] = progress["epoch"] + progress["step_in_epoch"] / per_epoch
    return progress


def end_epoch(model: Any, val: list[Any] | None, progress: dict[str, Any], sched: Any, bs: int) -> None:
    """Epoch end: every ``VAL_EVERY_EPOCHS`` epochs step ReduceLROnPlateau on the monitored loss."""
    progress["epoch"] += 1
    progress["step_in_epoch"] = 0
    if progress["epoch"] % VAL_EVERY_EPOCHS == 0:
        if val:
            progress["val_loss"] = mean_loss(model, val, bs)
            monitored = progress["val_loss"]
        else:
            monitored = progress["epoch_loss_sum"] / max(progress["epoch_loss_n"], 1)
        sched.step(monitored)
    progress["epoch_loss_sum"], progress["epoch_loss_n"] = 0.0, 0


# ----------------------------------------------------------------------------------------------
# sampling
# ----------------------------------------------------------------------------------------------
def sample_jobs(args: argparse.Namespace, cfg: Any, train_crystals: list[dict[str, np.ndarray]]
                ) -> tuple[list[Any], list[dict[str, int]]]:
    """The ``Data`` to sample and the frame info of each: ``gen`` num_atoms drawn from the training
    distribution; ``csp`` the compositions of the first ``--num`` rows of ``--csp-input``."""
    import torch
    from torch_geometric.data import Data

    if args.mode == "csp":
        rows, _ = read_crystals(args.csp_input, cfg, limit=args.num, strict=True)
        return [to_data(c) for c in rows], [{"index": i, "sample": 0} for i in range(len(rows))]
    counts = np.bincount([len(c["atom_types"]) for c in train_crystals])
    rng = np.random.default_rng(args.seed)
    sizes = rng.choice(len(counts), size=args.num, p=counts / counts.sum())
    data = [Data(num_atoms=torch.LongTensor([int(n)]), num_nodes=int(n)) for n in sizes]
    return data, [{"index": i} for i in range(args.num)]


def to_structure(frac: np.ndarray, lattice: np.ndarray, types: np.ndarray) -> tuple[Any, str]:
    """A pymatgen ``Structure`` as DiffCSP's ``compute_metrics.Crystal`` builds it (cell from its
    lengths/angles) and ``""``; or None and why: the output is not finite, the cell degenerate
    (volume < 0.1 Å³, as theirs) or longer than :data:`MAX_CELL_LENGTH`."""
    from pymatgen.core import Lattice, Structure

    if not (np.all(np.isfinite(frac)) and np.all(np.isfinite(lattice))):
        return None, "non-finite coordinates or lattice"
    try:
        s = Structure(Lattice.from_parameters(*Lattice(lattice).parameters), types.tolist(), frac % 1.0)
    except Exception as exc:  # their Crystal marks such a cell "construction_raises_exception"
        return None, f"construction raised {type(exc).__name__}: {str(exc)[:80]}"
    if s.volume < 0.1:
        return None, f"cell volume {s.volume:.3g} A^3"
    if max(s.lattice.abc) > MAX_CELL_LENGTH:
        return None, f"cell length {max(s.lattice.abc):.3g} A"
    return s, ""


def sample(model: Any, data: list[Any], info: list[dict[str, int]], args: argparse.Namespace,
           out_dir: Path) -> dict[str, Any]:
    """Run their sampler over batches, write ``structures.extxyz`` + ``metadata.json``."""
    import torch
    from torch_geometric.data import Batch

    from topodiff.crystal.writers import write_structures
    from topodiff.io_utils import atomic_write_json

    torch.manual_seed(args.seed)
    model.eval()
    structs, kept, failed = [], [], []
    cpu0, wall0 = time.process_time(), time.time()
    for a in range(0, len(data), args.sample_batch):
        batch = Batch.from_data_list(data[a:a + args.sample_batch])
        with torch.no_grad():
            res, _ = model.sample(batch, step_lr=STEP_LR[args.mode])
        types = res["atom_types"]
        types = (types.argmax(dim=-1) + 1) if types.dim() > 1 else types   # their compute_metrics
        ends = torch.cumsum(batch.num_atoms, 0).tolist()
        for k, end in enumerate(ends):
            start = end - int(batch.num_atoms[k])
            s, why = to_structure(res["frac_coords"][start:end].numpy(), res["lattices"][k].numpy(),
                                  types[start:end].numpy())
            if s is None:
                failed.append({**info[a + k], "reason": why})
            else:
                structs.append(s)
                kept.append(info[a + k])
        log(f"sampled {a + len(batch.num_atoms)}/{len(data)} ({time.process_time() - cpu0:.0f} CPU s)")
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    out_dir.mkdir(parents=True, exist_ok=True)
    write_structures(structs, out_dir / "structures.extxyz", info=kept)
    meta = {"generator": "DiffCSP (github.com/jiaor17/DiffCSP)", "mode": args.mode, "samples": 1,
            "num_requested": len(data), "num_structures": len(structs), "not_constructible": failed,
            "step_lr": STEP_LR[args.mode], "steps": int(model.beta_scheduler.timesteps),
            "sample_batch": args.sample_batch, "seed": args.seed, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "structures_per_cpu_s": len(data) / cpu if cpu > 0 else None}
    if args.mode == "csp":
        meta.update(input=str(args.csp_input), num_compositions=len(data))
    atomic_write_json(out_dir / "metadata.json", meta)
    return meta


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--diffcsp-root", type=Path, required=True, help="DiffCSP checkout (github.com/jiaor17/DiffCSP)")
    ap.add_argument("--mode", choices=["csp", "gen"], required=True)
    ap.add_argument("--train", type=Path, required=True, help="CDVAE-style training CSV (cif column)")
    ap.add_argument("--val", type=Path, default=None, help="optional validation CSV for the LR plateau schedule")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cpu-seconds", type=float, required=True, help="training budget in process CPU seconds")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
    ap.add_argument("--batch-size", type=int, default=None, help="default: conf/data/mp_20.yaml (256)")
    ap.add_argument("--num", type=int, default=1000, help="gen: crystals to sample; csp: rows of --csp-input")
    ap.add_argument("--csp-input", type=Path, default=None, help="csp: CDVAE-style CSV of the target compositions")
    ap.add_argument("--sample-batch", type=int, default=250)
    ap.add_argument("--no-sample", action="store_true", help="train only")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log-every", type=float, default=60.0, help="CPU seconds between log lines")
    ap.add_argument("--checkpoint-every", type=float, default=300.0, help="CPU seconds between checkpoints")
    args = ap.parse_args(argv)
    for name in ("diffcsp_root", "train", "val", "out", "csp_input"):   # DiffCSP's import does os.chdir
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    if not args.cpu_seconds >= 0:
        raise PeerError("--cpu-seconds must be >= 0")
    for name in ("num", "sample_batch", "threads", "log_every", "checkpoint_every"):
        if not getattr(args, name) > 0:
            raise PeerError(f"--{name.replace('_', '-')} must be positive")
    for p in (args.train, args.val, args.csp_input):
        if p is not None and not p.is_file():
            raise PeerError(f"file not found: {p}")
    if args.mode == "csp" and not args.no_sample and args.csp_input is None:
        raise PeerError("--mode csp needs --csp-input (the CSV whose first --num compositions are sampled)")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    import_diffcsp(args.diffcsp_root)
    cfg = load_config(args.diffcsp_root, args.mode)
    args.batch_size = args.batch_size or int(cfg.data.datamodule.batch_size.train)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = args.out / "ckpt.pt"
    if ckpt.is_file() and not args.resume:
        raise PeerError(f"{ckpt} exists: pass --resume to continue it, or choose another --out")
    crystals = cached_crystals(args.train, cfg, args.out / "train_arrays.npz")
    data = [to_data(c) for c in crystals]
    val = [to_data(c) for c in read_crystals(args.val, cfg)[0]] if args.val else None
    model = build_model(cfg)
    log(f"DiffCSP {cfg.model._target_}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
        f"{len(data)} training crystals, batch {args.batch_size}, budget {args.cpu_seconds:.0f} CPU s")
    prog = train(model, data, val, args, ckpt)
    summary = {"mode": args.mode, "model": cfg.model._target_, "diffcsp_root": str(args.diffcsp_root),
               "train": str(args.train), "num_train": len(data), "batch_size": args.batch_size,
               "cpu_budget_s": args.cpu_seconds, "threads": args.threads,
               "train_progress": {k: prog[k] for k in ("step", "epochs_float", "cpu_s", "wall_s", "skipped_nan",
                                                       "last_loss", "val_loss")},
               "steps_per_cpu_s": prog["step"] / prog["cpu_s"] if prog["cpu_s"] > 0 else None}
    if not args.no_sample:
        jobs, info = sample_jobs(args, cfg, crystals)
        summary["sampling"] = sample(model, jobs, info, args, args.out / "samples")
    from topodiff.io_utils import atomic_write_json

    atomic_write_json(args.out / "run.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    try:
        summary = run(parse_args(argv))
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
