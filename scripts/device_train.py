"""Train several generator configs side by side on one lent GPU within a fixed wall-clock budget.

    python scripts/device_train.py --budget-s 480 --out OUT --descriptors descriptors.npy \\
        default=configs/mp20.yaml:data.batch_size=256 csp=configs/mp20-csp.yaml ...

Each ``NAME=CONFIG[:KEY=VALUE,...]`` run is first probed for ``--probe-steps`` steps (all runs at once,
so the measured step rates include their contention for the GPU), then trained with
``trainer.max_steps`` set so that the cosine learning-rate schedule ends inside the remaining budget
(``trainer.max_minutes`` stays as a safety stop), and its ``last.ckpt`` is exported to ``OUT/NAME.ckpt``
(EMA weights, as ``python -m topodiff.generative.checkpoint`` does). Its recipe ``NAME.json``, the
run's ``NAME.metrics.csv``, the logs and a summary of every phase (``device_train.json``) go into
``OUT/logs.tar.gz`` (a lent machine returns few files).

The lent machine's image has torch and Lightning but not pymatgen: ``--descriptors`` passes the element
descriptor table (:func:`topodiff.generative.embeddings.element_descriptors`, written beforehand where
pymatgen is installed with ``--write-descriptors FILE``), which the workers use instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path


def parse_run(text: str) -> tuple[str, tuple[str, list[str]]]:
    """``NAME=CONFIG[:K=V,K=V]`` → ``(NAME, (CONFIG, [K=V, ...]))``."""
    name, sep, rest = text.partition("=")
    config, _, over = rest.partition(":")
    if not sep or not name or not config:
        raise SystemExit(f"error: expected NAME=CONFIG[:KEY=VALUE,...], got {text!r}")
    return name, (config, [o for o in over.split(",") if o])


def plan_steps(runs: dict[str, tuple[str, list[str]]], probe: dict[str, dict], left_s: float,
               probe_steps: int) -> dict[str, list[str]]:
    """Overrides that fit each run into ``left_s`` seconds at its probed rate (90 % of it, never
    fewer than ``probe_steps`` steps); ``crystals_per_s`` over the run's ``data.batch_size`` is its step rate."""
    plan = {}
    for name, (_, overrides) in runs.items():
        rate = float(probe.get(name, {}).get("crystals_per_s") or 0.0)
        batch = int(next((o.split("=", 1)[1] for o in overrides if o.startswith("data.batch_size=")), 64))
        steps = max(int(probe_steps), int(0.9 * left_s * rate / batch))
        plan[name] = [f"trainer.max_steps={steps}", f"trainer.max_minutes={max(left_s, 6.0) / 60:.2f}"]
    return plan


def _worker(name: str, config: str, overrides: list[str], descriptors: str, out: str) -> None:
    """One ``topodiff train --json`` run in this process (its summary on stdout); then the EMA weights to ``out``."""
    import numpy as np
    import torch

    import topodiff.generative.embeddings as emb

    if descriptors:
        table = torch.as_tensor(np.load(descriptors), dtype=torch.float32)
        emb.element_descriptors = lambda max_z=100: table[: max_z + 1].clone()
    from topodiff.cli import main
    from topodiff.generative.checkpoint import export_generator
    from topodiff.training.config import load_config

    code = main(["train", "--config", config, "--overwrite", "--json", *overrides])  # prints its JSON summary
    if code:
        raise SystemExit(code)
    if out:
        run_dir = Path(load_config(config, overrides).output_dir)
        recipe = {"description": f"{name}: {config} on a lent GPU (scripts/device_train.py)",
                  "training_command": " ".join(["topodiff train --config", config, *overrides])}
        export_generator(run_dir / "last.ckpt", Path(out) / f"{name}.ckpt", recipe)
        metrics = sorted(run_dir.glob("logs/version_*/metrics.csv"))
        if metrics:
            shutil.copy(metrics[-1], Path(out) / f"{name}.metrics.csv")


def _launch(runs: dict[str, tuple[str, list[str]]], extra: dict[str, list[str]], args: argparse.Namespace,
            export: bool, tag: str) -> dict[str, dict]:
    """Start one worker per run, wait for all; returns each one's JSON summary (or why it failed)."""
    procs = {}
    for name, (config, overrides) in runs.items():
        cmd = [sys.executable, __file__, "--worker", name, "--descriptors", args.descriptors,
               "--out", args.out if export else "", config, *overrides, *extra[name],
               f"output_dir={Path(args.runs_dir) / f'{tag}_{name}'}"]
        log = open(Path(args.out) / f"{tag}_{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True), log)
    results = {}
    for name, (proc, log) in procs.items():
        stdout, _ = proc.communicate()
        log.close()
        try:
            results[name] = json.loads(stdout[stdout.index("{"):].splitlines()[0])
        except ValueError:
            results[name] = {"failed": proc.returncode, "stdout": stdout[-500:]}
        print(f"[{tag}] {name}: {json.dumps(results[name])[:300]}", flush=True)
    return results


def _bundle_small_files(out: Path) -> None:
    """Everything in ``out`` but the checkpoints into ``out/logs.tar.gz``."""
    small = [p for p in sorted(out.iterdir()) if p.suffix != ".ckpt"]
    with tarfile.open(out / "logs.tar.gz", "w:gz") as tar:
        for p in small:
            tar.add(p, arcname=p.name)
    for p in small:
        p.unlink()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", help="NAME=CONFIG[:KEY=VALUE,...] (a worker: CONFIG then overrides)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall seconds for probe + training + export")
    ap.add_argument("--probe-steps", type=int, default=300)
    ap.add_argument("--export-s", type=float, default=40.0, help="seconds kept back for start-up and export")
    ap.add_argument("--out", default="device_out")
    ap.add_argument("--runs-dir", default="runs/device", help="where the runs' output_dirs go")
    ap.add_argument("--descriptors", default="", help="element descriptor table (.npy) for machines without pymatgen")
    ap.add_argument("--write-descriptors", default="", help="write the descriptor table (needs pymatgen) and exit")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.write_descriptors:
        import numpy as np

        from topodiff.generative.embeddings import element_descriptors

        np.save(args.write_descriptors, element_descriptors(100).numpy())
        return
    if args.worker:
        return _worker(args.worker, args.runs[0], args.runs[1:], args.descriptors, args.out)
    t0 = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = dict(parse_run(r) for r in args.runs)
    probe = _launch(runs, {n: [f"trainer.max_steps={args.probe_steps}", "trainer.val_every=100000",
                               "trainer.checkpoint_every=100000"] for n in runs}, args, False, "probe")
    plan = plan_steps(runs, probe, args.budget_s - (time.perf_counter() - t0) - args.export_s, args.probe_steps)
    final = _launch(runs, plan, args, True, "train")
    import torch

    summary = {"probe": probe, "train": final, "plan": plan, "wall_s": time.perf_counter() - t0,
               "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    Path(args.out, "device_train.json").write_text(json.dumps(summary, indent=1))
    _bundle_small_files(Path(args.out))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
