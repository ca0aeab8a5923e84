"""Discovery benchmark (issue #14 item 4): how many new, stable topological crystals per sample and per CPU-minute.

Three arms, the same number ``N`` of candidates each, the same judging pipeline
(:func:`topodiff.evaluation.evaluate.evaluate_entries` with CHGNet relaxation): relax → energy above the
DFT-referenced hull → novelty against the shipped known-crystal index → Slater-Koster screen and the
learned topology judge.

* ``conditioned``   — ``N`` samples of the checkpoint under ``--condition`` (default ``catalogue_class=ti``);
* ``unconditional`` — ``N`` samples of the same checkpoint without conditions (``--prescreen K``: both model arms
  sample ``K·N`` and keep the ``N`` the learned judge finds most likely of the target class, γ = 0 here);
* ``substitution``  — ``N`` data-driven ion substitutions (Hautier et al. 2011, pymatgen;
  :mod:`topodiff.evaluation.substitution`) into the known topological crystals of the training set: rows of
  ``data/mp20/train.csv`` with ``catalogue_class`` = the target class and ``catalogue_source == catalogue``,
  or, without that file, ``../shared/data/mp_20/train.csv.gz`` joined with the DFT catalogues.

A **hit** (:func:`topodiff.evaluation.judging.discovery_hit`) is formula-novel (formula in no known
crystal; unknown is not novel) ∧ e_above_hull ≤ 0.1 eV/atom ∧ judged ``ti``/``tci`` by the learned judge.
Per arm: hits per 100 candidates, distinct hit formulas, hits per CPU-minute (process CPU time of the whole
arm, candidate generation included; training is not), and the hit list with the Slater-Koster verdict beside.

Resumable: ``OUT/<arm>/candidates.*`` and ``OUT/<arm>/chunks/NNNN.json`` are kept; a rerun with the same
options continues. Writes ``OUT/discovery.json``, ``OUT/discovery.md``, ``OUT/discovery.png`` and
``OUT/hits.json`` (``--hits-json`` merges the hits into one more file, keyed by target).

    nice -n 10 python benchmarks/bench_discovery.py --out runs/discovery/ti --num 100 \\
        --condition catalogue_class=ti --hits-json runs/discovery/hits.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from topodiff.errors import TopodiffInputError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from discovery_output import markdown, merge_hits, plot  # noqa: E402
from discovery_templates import TRAIN_CSV, load_templates, structure_types  # noqa: E402

ARMS = ("conditioned", "unconditional", "substitution")
HIT_KEYS = ("formula", "space_group", "e_above_hull", "catalogue_class", "p_topological", "topo_class", "z2",
            "gap", "known_match", "novelty_note", "index", "num_atoms", "candidate")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def plain(v: Any) -> Any:
    """JSON-safe copy (numpy scalars → Python, NaN → None, containers recursively)."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


# ------------------------------------------------------------------------------------------ candidates
def make_candidates(arm: str, arm_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Write ``arm_dir/candidates.extxyz`` (once); returns ``candidates.json`` (CPU s, wall s, details)."""
    from topodiff.crystal.io import write_structures
    from topodiff.io_utils import atomic_write_json

    done = arm_dir / "candidates.json"
    if done.is_file():
        return json.loads(done.read_text())
    t0, c0 = time.time(), time.process_time()
    if arm == "substitution":
        from topodiff.evaluation.substitution import propose

        templates, source = load_templates(args.template_class, args.templates)
        cands, info = propose(templates, args.num, seed=args.seed)
        info["template_source"] = source
        write_structures([c.structure for c in cands], arm_dir / "candidates.extxyz", info=[c.as_info() for c in cands])
    else:
        from topodiff.generative.generate import generate_to_dir

        gen = arm_dir / "generated"
        shutil.rmtree(gen, ignore_errors=True)     # a generation cut short is redone
        # with --prescreen the unconditional arm is screened toward the same target (γ = 0: condition unused)
        conds = args.conditions if arm == "conditioned" or args.prescreen > 1 else None
        guidance = args.guidance if arm == "conditioned" else (0.0 if conds else None)
        meta = generate_to_dir(gen, num=args.num, checkpoint=args.checkpoint_info["checkpoint_file"], conditions=conds,
                               guidance=guidance, steps=args.steps, seed=args.seed, sampler=args.sampler,
                               prescreen=args.prescreen, prescreen_novel=args.prescreen_novel,
                               templates=structure_types(arm, args), formulas=args.formulas)
        shutil.copyfile(gen / "structures.extxyz", arm_dir / "candidates.extxyz")
        info = {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool, dict)) or v is None}
        info.update(args.checkpoint_info)
    doc = plain({"arm": arm, "cpu_s": time.process_time() - c0, "wall_s": time.time() - t0, "info": info})
    atomic_write_json(done, doc)
    log(f"[{arm}] candidates: {doc['cpu_s']:.0f} CPU s")
    return doc


# ------------------------------------------------------------------------------------------ judging
def judge_chunk(task: tuple[str, list[int], int, str]) -> dict[str, Any]:
    """Evaluate (relax, hull, novelty, SK screen, learned judge) candidates ``idx`` of one file; a chunk
    another invocation has written to ``done`` meanwhile is read back instead (``"reused"``)."""
    from topodiff.crystal.io import cif_text
    from topodiff.evaluation.entries import load_entries
    from topodiff.evaluation.evaluate import evaluate_entries
    from topodiff.evaluation.known import space_group
    from topodiff.evaluation.outputs import CSV_COLUMNS
    from topodiff.threads import ensure_threads

    path, idx, relax_steps, done = task
    if Path(done).is_file():
        return {**json.loads(Path(done).read_text()), "reused": True}
    ensure_threads()
    t0, c0 = time.time(), time.process_time()
    entries = load_entries(path)
    _, rows, relaxed = evaluate_entries([entries[i] for i in idx], relax=True, relax_steps=relax_steps,
                                        progress=False)
    out = []
    for i, r, s in zip(idx, rows, relaxed):
        row = {k: r.get(k) for k in CSV_COLUMNS}
        row.update(index=i, space_group_input=r.get("space_group"),
                   space_group=space_group(s) if s is not None else r.get("space_group"),
                   relaxed_cif=cif_text(s) if s is not None else None)
        out.append(row)
    return plain({"rows": out, "cpu_s": time.process_time() - c0, "wall_s": time.time() - t0})


def judge_all(arm_dirs: dict[str, Path], nums: dict[str, int], args: argparse.Namespace) -> dict[str, dict[int, dict]]:
    """Judge every arm's chunks, interleaved arm by arm (chunk 0 of each arm, then chunk 1, ...), so that
    the arms advance together; chunks done before are read back. With ``--max-minutes`` no new chunk
    starts after that wall time. Returns ``{arm: {chunk number: chunk result}}``."""
    from topodiff.io_utils import atomic_write_json
    from topodiff.process_pool import resilient_map

    results: dict[str, dict[int, dict]] = {a: {} for a in arm_dirs}
    tasks: list[tuple[str, int, tuple]] = []
    for arm, d in arm_dirs.items():
        (d / "chunks").mkdir(exist_ok=True)
        for k, a in enumerate(range(0, nums[arm], args.chunk)):
            f = d / "chunks" / f"{k:04d}.json"
            if f.is_file():
                results[arm][k] = json.loads(f.read_text())
            else:
                idx = list(range(a, min(a + args.chunk, nums[arm])))
                tasks.append((arm, k, (str(d / "candidates.extxyz"), idx, args.relax_steps, str(f))))
    tasks.sort(key=lambda t: (t[1], list(arm_dirs).index(t[0])))
    if args.summarize_only:
        tasks = []
    log(f"judging {len(tasks)} chunks of {args.chunk} ({sum(map(len, results.values()))} done before)")
    t_end = time.time() + 60.0 * args.max_minutes if args.max_minutes else float("inf")

    def keep(task: tuple[str, int, tuple], res: dict) -> None:
        arm, k, _ = task
        if "error" in res:
            log(f"[{arm}] chunk {k} failed: {res['error']}")
            return
        if not res.pop("reused", False):
            atomic_write_json(arm_dirs[arm] / "chunks" / f"{k:04d}.json", res)
        results[arm][k] = res
        log(f"[{arm}] chunk {k + 1}: {res['cpu_s']:.0f} CPU s, {sum(_hit(r) for r in res['rows'])} hit(s)")

    if args.workers <= 1:
        for t in tasks:
            if time.time() > t_end:
                log(f"--max-minutes {args.max_minutes} reached: judging stops")
                break
            keep(t, judge_chunk(t[2]))
    else:
        crash = lambda task, msg: {"error": msg}   # noqa: E731
        for j, res in resilient_map(judge_chunk, [t[2] for t in tasks], workers=args.workers, on_crash=crash, log=log):
            keep(tasks[j], res)
            if time.time() > t_end:
                log(f"--max-minutes {args.max_minutes} reached: judging stops")
                break
    return results


def judged_prefix(chunks: dict[int, dict], num: int) -> int:
    """Number of candidates judged without a gap from the first one (whole chunks)."""
    k = 0
    while k in chunks:
        k += 1
    return min(num, sum(len(chunks[i]["rows"]) for i in range(k)))


def _hit(row: dict[str, Any]) -> bool:
    from topodiff.evaluation.judging import discovery_hit

    return discovery_hit(row)


# ------------------------------------------------------------------------------------------ summary
def arm_summary(arm: str, rows: list[dict], cand: dict, judge_cpu_s: float, num: int, num_made: int) -> dict[str, Any]:
    """Hits per 100 candidates, distinct hit formulas, hits per CPU-minute and the funnel behind them.

    ``num``: candidates judged and counted (the common prefix of all arms); ``num_made``: candidates
    made (their whole CPU time counts, also when only ``num`` of them were judged)."""
    from topodiff.evaluation.hull import STABLE_THRESHOLD

    hits = [r for r in rows if _hit(r)]
    cpu_min = (cand["cpu_s"] + judge_cpu_s) / 60.0
    eh = [r["e_above_hull"] for r in rows if r.get("e_above_hull") is not None]
    count = lambda pred: int(sum(1 for r in rows if pred(r)))   # noqa: E731
    return plain({
        "arm": arm, "num_candidates": num, "num_judged": len(rows), "num_made": num_made,
        "num_hits": len(hits), "hits_per_100": 100.0 * len(hits) / num if num else None,
        "distinct_hit_formulas": len({r["formula"] for r in hits}),
        "cpu_minutes": cpu_min, "cpu_minutes_candidates": cand["cpu_s"] / 60.0,
        "hits_per_cpu_minute": len(hits) / cpu_min if cpu_min > 0 else None,
        "funnel": {"valid": count(lambda r: r.get("valid")), "formula_novel": count(lambda r: r.get("formula_novel")),
                   "formula_novelty_unknown": count(lambda r: r.get("formula_novel") is None),
                   "e_above_hull_known": len(eh),
                   "stable": count(lambda r: r.get("e_above_hull") is not None and r["e_above_hull"] <= STABLE_THRESHOLD),
                   "learned_ti_tci": count(lambda r: r.get("catalogue_class") in ("ti", "tci")),
                   "sk_strong_or_weak_ti": count(lambda r: r.get("topo_class") in ("strong_ti", "weak_ti"))},
        "e_above_hull": eh,
        "hits": [{**{k: r.get(k) for k in HIT_KEYS}, "relaxed_cif": r.get("relaxed_cif")} for r in hits],
        "candidates": cand})


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from topodiff.evaluation.pipeline import parse_conditions
    from topodiff.generative.checkpoint import parse_sampler_settings
    from topodiff.generative.prescreen import check_prescreen_novel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output directory (resumable)")
    ap.add_argument("--condition", action="append", default=None, metavar="KEY=VALUE",
                    help="target of the conditioned arm (repeatable; default catalogue_class=ti)")
    ap.add_argument("--num", type=int, default=100, help="candidates per arm")
    ap.add_argument("--checkpoint", default=None, help="checkpoint path or shipped name (default: the default)")
    ap.add_argument("--guidance", type=float, default=None, help="default: the checkpoint's")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the checkpoint's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", action="append", default=None, metavar="KEY=VALUE",
                    help="sampler setting of both model arms instead of the checkpoint's (repeatable)")
    ap.add_argument("--prescreen", type=int, default=1, metavar="K", help="model arms: sample K×N, keep the N that "
                    "the learned judge puts closest to the target (generate --prescreen; 1 = off)")
    ap.add_argument("--prescreen-novel", action="store_true", help="with --prescreen: new formulas first")
    ap.add_argument("--template-class", default=None, choices=("ti", "tci", "semimetal", "trivial"),
                    help="catalogue class of the substitution templates (default: the target's catalogue_class, else ti)")
    ap.add_argument("--templates", type=Path, default=TRAIN_CSV,
                    help="training CSV with catalogue_class and catalogue_source columns (default: %(default)s; "
                         "absent: ../shared/data/mp_20/train.csv.gz joined with the DFT catalogues)")
    ap.add_argument("--structure-types", default="free", choices=("free", "known"),
                    help="model arms: free (from noise) or known (space group + Wyckoff orbits of a known crystal: "
                         "the target class's for the conditioned arm, any training crystal's for the unconditional)")
    ap.add_argument("--formulas", default="auto",
                    help="model arms: what draws the cell formulas (generate --formulas): auto, network, or a formula "
                         "model (with --structure-types known: each formula on the closest mp20 crystal of its atom counts)")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    ap.add_argument("--chunk", type=int, default=4, help="candidates per resumable evaluation chunk")
    ap.add_argument("--relax-steps", type=int, default=300, help="CHGNet optimiser steps per crystal")
    ap.add_argument("--workers", type=int, default=1, help="worker processes for the judging")
    ap.add_argument("--max-minutes", type=float, default=0.0,
                    help="start no judging chunk after this wall time (0: no limit); every arm is then counted over "
                         "the candidates judged in all arms (rerun to continue)")
    ap.add_argument("--summarize-only", action="store_true",
                    help="judge nothing more: write the outputs from the chunks judged so far")
    ap.add_argument("--hits-json", type=Path, default=None, help="also merge the hits into this file, keyed by target")
    ap.add_argument("--overwrite", action="store_true", help="clear OUT when it holds another run")
    args = ap.parse_args(argv)
    args.conditions = parse_conditions(args.condition or ["catalogue_class=ti"])
    args.sampler = parse_sampler_settings(args.sampler)
    args.target = " ".join(f"{k}={v}" for k, v in sorted(args.conditions.items()))
    args.template_class = args.template_class or (str(args.conditions.get("catalogue_class", "ti")))
    args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arm_list if a not in ARMS]
    if bad or min(args.num, args.chunk, args.workers, args.prescreen) < 1:
        raise TopodiffInputError(f"unknown arm(s) {bad}" if bad else "--num, --chunk, --workers and --prescreen must be ≥ 1")
    check_prescreen_novel(args.prescreen, args.prescreen_novel)
    return args


def prepare_arms(out: Path, opts: dict[str, Any], ckpt: Path, args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """Claim each arm's folder and make its candidates: ``(arm dirs, candidates.json docs, entries)``."""
    from topodiff.generative.formula_model import formula_model_path
    from topodiff.io_utils import claim_output_dir, fingerprint

    arm_dirs, cands, frames = {}, {}, {}
    for arm in args.arm_list:
        # each arm owns its folder: a new checkpoint (model arms) or template file (substitution) is a new run
        if arm == "substitution":
            src = [args.templates] if args.templates.is_file() else []
            arm_opts = {"templates": "file" if src else "mp_20 join"}
        else:
            src, arm_opts = [ckpt], {k: getattr(args, k) for k in ("checkpoint", "guidance", "steps", "sampler")}
            arm_opts.update({k: getattr(args, k) for k in ("prescreen", "prescreen_novel") if getattr(args, k) not in (1, False)})
            arm_opts.update({"structure_types": args.structure_types} if args.structure_types != "free" else {})
            arm_opts.update({"formulas": args.formulas} if args.formulas != "auto" else {})
            src += [p for p in [formula_model_path(args.formulas, ckpt)] if p is not None]
        arm_dirs[arm] = claim_output_dir(out / arm, job=f"bench-discovery-{arm}", overwrite=args.overwrite,
                                         resume=True, fingerprint=fingerprint(sources=src, options={**opts, **arm_opts}))
        cands[arm] = make_candidates(arm, arm_dirs[arm], args)
        frames[arm] = _frames(arm_dirs[arm] / "candidates.extxyz")
    return arm_dirs, cands, frames


def summarize(chunks: dict[str, dict[int, dict]], cands: dict[str, dict], frames: dict[str, list]) -> dict[str, Any]:
    """Per-arm summaries over the same number of candidates: the longest prefix judged in every arm."""
    common = min(judged_prefix(chunks[a], len(frames[a])) for a in chunks)
    arms = {}
    for arm in chunks:
        used = [c for _, c in sorted(chunks[arm].items()) if c["rows"][0]["index"] < common]
        rows = [r for c in used for r in c["rows"] if r["index"] < common]
        for r in rows:      # what the candidate is (substitution: template, element map, probability)
            r["candidate"] = {k: v for k, v in frames[arm][r["index"]].labels.items() if k != "index"}
        arms[arm] = arm_summary(arm, rows, cands[arm], sum(c["cpu_s"] for c in used), common, len(frames[arm]))
        log(f"[{arm}] {arms[arm]['num_hits']} hits of {common}; {arms[arm]['cpu_minutes']:.1f} CPU min")
    return arms


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every arm (resuming what is done), then the JSON, markdown, plot and hit files."""
    from topodiff.generative.checkpoint import resolve_checkpoint
    from topodiff.io_utils import atomic_write_json, atomic_write_text, claim_output_dir, fingerprint
    from topodiff.threads import ensure_threads

    ensure_threads()
    opts = {k: getattr(args, k) for k in ("conditions", "template_class", "num", "seed", "chunk", "relax_steps")}
    out = claim_output_dir(args.out, job="bench-discovery", fingerprint=fingerprint(options=opts),
                           overwrite=args.overwrite, resume=True)
    ckpt = resolve_checkpoint(args.checkpoint)
    recipe = ckpt.with_suffix(".json")
    args.checkpoint_info = {"checkpoint_file": str(ckpt), "checkpoint_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16],
                            "checkpoint_description": json.loads(recipe.read_text()).get("description")
                            if recipe.is_file() else None}
    arm_dirs, cands, frames = prepare_arms(out, opts, ckpt, args)
    chunks = judge_all(arm_dirs, {a: len(f) for a, f in frames.items()}, args)
    arms = summarize(chunks, cands, frames)
    doc = plain({"target": args.target, "checkpoint": args.checkpoint or "default", "seed": args.seed,
                 "sampler": args.sampler, "prescreen": args.prescreen, "prescreen_novel": args.prescreen_novel,
                 **args.checkpoint_info,
                 "num": args.num, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "out": str(out),
                 "options": opts, "hit_rule": "formula-novel ∧ e_above_hull ≤ 0.1 eV/atom (DFT hull) ∧ learned judge ti/tci",
                 "arms": arms})
    atomic_write_json(out / "discovery.json", doc)
    atomic_write_text(out / "discovery.md", markdown(doc))
    plot(doc, out / "discovery.png")
    atomic_write_json(out / "hits.json", {"target": doc["target"], "arms": {a: s["hits"] for a, s in arms.items()}})
    if args.hits_json is not None:
        merge_hits(args.hits_json, doc["target"], doc)
    return doc


def _frames(path: Path) -> list:
    from topodiff.evaluation.entries import load_entries

    return load_entries(path) if path.stat().st_size else []


def main(argv: Sequence[str] | None = None) -> int:
    try:
        doc = run(parse_args(argv))
    except TopodiffInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
