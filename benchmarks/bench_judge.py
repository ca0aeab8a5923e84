"""Topology verdicts vs DFT catalogues on a formula-disjoint held-out split of the training pools.

    # 1. Slater-Koster screen of a fixed sample of held-out crystals (resumable, ~1-2 s/crystal)
    nice -n 5 .venv/bin/python benchmarks/bench_judge.py sk --n 300 --tag new
    # (--train: a sample of training-split crystals instead, for the SK failure analysis)
    # 2. alternatives by 5-fold formula-grouped CV on the TRAINING split only (chooses the model)
    nice -n 5 .venv/bin/python benchmarks/bench_judge.py cv
    # 3. the held-out table (run once, at the end): (a) SK screen, (b) topogivity, (c) learned judge
    .venv/bin/python benchmarks/bench_judge.py table --sk-tags old,new [--plot docs/img/judge_reliability.png]

Data: ``mp_20/train.csv.gz`` + ``mpts_52/val.csv.gz`` (MP-20 subset, MPTS-52 val) joined with
Materiae / TQC / Tang et al. (``topodiff.crystal.catalogue``); held-out = formulas whose sha256
bucket is < 20 % (``topodiff.judge.data.formula_split``). No ``test`` file is read. Outputs go to
``runs/judge/``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "runs" / "judge"
SEED = 20261203


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pool() -> dict[str, np.ndarray]:
    from topodiff.judge.data import load_pool, read_pool, save_pool

    path = OUT / "pool.npz"
    if not path.is_file():
        OUT.mkdir(parents=True, exist_ok=True)
        save_pool(load_pool(DATA), path)
    return read_pool(path)


def heldout_sample(split: dict[str, np.ndarray], n: int, *, train: bool = False) -> np.ndarray:
    """Indices (into the labelled rows) of a fixed random sample of ``n`` held-out crystals
    (``train=True``: of training-split crystals, for the failure analysis of the SK screen)."""
    idx = np.flatnonzero(~split["heldout"] if train else split["heldout"])
    rng = np.random.default_rng(SEED + int(train))
    return np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False))


def structures_by_id(ids: set[str]) -> dict[str, object]:
    """Parse the CIFs of the given MP ids from the training pools (no test file)."""
    import pandas as pd

    from topodiff.crystal.io import structure_from_cif_text
    from topodiff.judge.data import POOL_FILES

    out: dict[str, object] = {}
    for rel in POOL_FILES:
        df = pd.read_csv(DATA / rel, usecols=["material_id", "cif"])
        for mid, cif in zip(df["material_id"], df["cif"]):
            if mid in ids and mid not in out:
                out[mid] = structure_from_cif_text(cif)
    return out


def run_sk(args: argparse.Namespace) -> None:
    """Screen the held-out sample with the Slater-Koster screen; rows appended to sk_<tag>.jsonl."""
    from topodiff.evaluation.screen import screen_tasks
    from topodiff.judge.train import train_split

    split = train_split(pool())
    sample = heldout_sample(split, args.n, train=args.train)
    path = OUT / f"sk_{'train_' if args.train else ''}{args.tag}.jsonl"
    done = {json.loads(line)["material_id"] for line in path.open()} if path.is_file() else set()
    todo = [i for i in sample if split["material_id"][i] not in done]
    log(f"SK screen: {len(sample)} {'training' if args.train else 'held-out'} crystals, {len(done)} done, {len(todo)} to go -> {path}")
    structures = structures_by_id({split["material_id"][i] for i in todo})
    tasks = [(int(i), split["material_id"][i], structures[split["material_id"][i]], None, {}) for i in todo]
    t0 = time.perf_counter()
    with path.open("a") as fh:
        for k, (i, row) in enumerate(screen_tasks(tasks, workers=args.workers, log=log)):
            keep = {key: row.get(key) for key in ("formula", "topo_class", "gap", "direct_gap", "z2", "error",
                                                  "open_shell", "time_s")}
            fh.write(json.dumps({"material_id": split["material_id"][i], **keep}) + "\n")
            fh.flush()
            if (k + 1) % 25 == 0:
                log(f"  {k + 1}/{len(tasks)} in {time.perf_counter() - t0:.0f} s")


def read_sk(tag: str) -> dict[str, dict]:
    path = OUT / f"sk_{tag}.jsonl"
    return {r["material_id"]: r for r in map(json.loads, path.open())} if path.is_file() else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    sk = sub.add_parser("sk")
    sk.add_argument("--n", type=int, default=300)
    sk.add_argument("--tag", default="new")
    sk.add_argument("--workers", type=int, default=1)
    sk.add_argument("--train", action="store_true", help="screen training-split crystals (failure analysis)")
    sub.add_parser("cv")
    table = sub.add_parser("table")
    table.add_argument("--sk-tags", default="old,new")
    table.add_argument("--plot", default=None)
    table.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        log(f"shared data not found at {DATA}")
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.stage == "sk":
        run_sk(args)
    elif args.stage == "cv":
        from bench_judge_cv import run_cv  # noqa: E402  (sibling module)

        run_cv(pool(), OUT, log)
    else:
        from bench_judge_table import run_table  # noqa: E402

        run_table(pool(), args, read_sk, heldout_sample, OUT, log)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
