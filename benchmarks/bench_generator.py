"""Benchmark the crystal generator on Perov-5 (train: ``perov_5/val.csv``, test: ``perov_5/test.csv``).

CSP: one sample per test composition (the first ``--csp`` rows), match rate and RMSE with pymatgen's
StructureMatcher(stol=0.5, angle_tol=10, ltol=0.3) as DiffCSP (``topodiff.evaluation.metrics``).
De novo: ``--denovo`` samples; structural/compositional validity, uniqueness, Wasserstein distances
of density and number of elements to the test set, COV when the fingerprints are available.

    python benchmarks/bench_generator.py --checkpoint perov5-csp --csp 256 --denovo 0 [--guard]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "perov_5"


def to_structures(batch):
    from pymatgen.core import Lattice, Structure

    out = []
    for f, L, z in batch.split():
        try:
            out.append(Structure(Lattice(L.astype(float)), [int(x) for x in z], f.astype(float)))
        except Exception:
            out.append(None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="perov5")
    ap.add_argument("--test", default=str(DATA / "test.csv"))
    ap.add_argument("--csp", type=int, default=256, help="test compositions for CSP (0: skip, -1: all)")
    ap.add_argument("--denovo", type=int, default=0, help="de novo samples (0: skip)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--step-lr", type=float, default=None)
    ap.add_argument("--corrector", type=int, default=None)
    ap.add_argument("--predictor-noise", type=float, default=None, help="override predictor_noise_scale")
    ap.add_argument("--corrector-noise", type=float, default=None, help="override corrector_noise_scale")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--repulsion", type=float, default=0.0,
                    help="distance-floor guidance strength during sampling (as `generate --repulsion`)")
    ap.add_argument("--guard", action="store_true",
                    help="re-sample crystals with atoms closer than 0.5 Å, as `topodiff generate/csp` do")
    args = ap.parse_args()
    if not Path(args.test).exists():
        sys.exit(f"error: test data not found: {args.test}")
    torch.set_num_threads(args.threads)
    from topodiff.crystal.dataset import load_dataset
    from topodiff.evaluation import metrics as M
    from topodiff.generative.checkpoint import load_generator
    from topodiff.generative.generate import sample_guarded

    model, config = load_generator(args.checkpoint)
    if args.step_lr is not None:
        model.cfg.step_lr = args.step_lr
    if args.corrector is not None:
        model.cfg.corrector_steps = args.corrector
    if args.predictor_noise is not None:
        model.cfg.predictor_noise_scale = args.predictor_noise
    if args.corrector_noise is not None:
        model.cfg.corrector_noise_scale = args.corrector_noise
    test = load_dataset(args.test)
    res: dict = {"checkpoint": args.checkpoint, "steps": args.steps or model.cfg.sample_steps,
                 "step_lr": model.cfg.step_lr, "corrector_steps": model.cfg.corrector_steps, "guard": args.guard,
                 "predictor_noise_scale": model.cfg.predictor_noise_scale,
                 "corrector_noise_scale": model.cfg.corrector_noise_scale}

    guide = None
    if args.repulsion:
        from topodiff.generative.guidance import build_guide

        guide = build_guide(model, config, {}, repulsion=args.repulsion)
    res["repulsion"] = args.repulsion

    def sample(num, species=None):
        if args.guard:
            return sample_guarded(model, num, species=species, steps=args.steps, generator=g, guide=guide)[0]
        return model.sample(num, species=species, steps=args.steps, generator=g, guide=guide)
    g = torch.Generator().manual_seed(args.seed)
    if args.csp:
        k = len(test) if args.csp < 0 else min(args.csp, len(test))
        refs = [test.structure(i) for i in range(k)]
        preds, t0 = [], time.time()
        for s in range(0, k, args.batch):
            idx = np.arange(s, min(k, s + args.batch))
            num = torch.as_tensor(np.asarray(test.num_atoms)[idx])
            species = torch.as_tensor(np.concatenate([np.asarray(test.species)[test.atoms_of(int(i))] for i in idx]))
            preds += to_structures(sample(num, species))
        dt = time.time() - t0
        match, rmse = M.csp_match_rate(preds, refs)
        res.update(csp_n=k, csp_match_rate=match, csp_rmse=rmse, csp_seconds=dt, csp_per_s=k / dt)
        print(f"CSP n={k} match={match:.4f} rmse={rmse:.4f} ({k / dt:.1f} crystals/s)", file=sys.stderr)
    if args.denovo:
        n = args.denovo
        gen, t0 = [], time.time()
        for s in range(0, n, args.batch):
            m = min(args.batch, n - s)
            gen += to_structures(sample(model.sample_num_atoms(m, g)))
        dt = time.time() - t0
        ok = [x for x in gen if x is not None]
        ref = [test.structure(i) for i in range(len(test))]
        sv = float(np.mean([x is not None and M.structure_valid(x) for x in gen]))
        cv = float(np.mean([x is not None and M.composition_valid(x.composition) for x in gen]))
        valid = [x for x in ok if M.structure_valid(x) and M.composition_valid(x.composition)]
        res.update(denovo_n=n, denovo_seconds=dt, denovo_per_s=n / dt, structural_validity=sv, compositional_validity=cv,
                   uniqueness=M.uniqueness(ok), wdist_density=M.wdist_density(valid, ref),
                   wdist_num_elems=M.wdist_num_elems(valid, ref))
        print(json.dumps({k: v for k, v in res.items() if not k.startswith("csp")}), file=sys.stderr)
    print(json.dumps(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
