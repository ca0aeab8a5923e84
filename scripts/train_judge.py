"""Train the shipped topology judge (``src/topodiff/judge/judge.lgbm.txt`` + ``judge.json``).

    .venv/bin/python scripts/train_judge.py [--data ../shared/data] [--pool runs/judge/pool.npz]
        [--out src/topodiff/judge]

Reads only the training pools (``mp_20/train``, ``mpts_52/val``) and the catalogues; the
featurised pool is cached in ``--pool`` (rebuilt when absent). Takes ~5 min on one core.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--pool", default=str(ROOT / "runs" / "judge" / "pool.npz"))
    ap.add_argument("--out", default=str(ROOT / "src" / "topodiff" / "judge"))
    args = ap.parse_args()
    from topodiff.judge.data import load_pool, read_pool, save_pool
    from topodiff.judge.train import train_judge

    if not os.path.isfile(args.pool):
        os.makedirs(os.path.dirname(args.pool), exist_ok=True)
        save_pool(load_pool(args.data), args.pool)
    recipe = train_judge(read_pool(args.pool), args.out, command="python scripts/train_judge.py")
    print(f"wrote {args.out}: CV {recipe['cv_scores']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
