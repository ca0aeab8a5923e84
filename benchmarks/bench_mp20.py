"""MP-20 benchmark table: any generated set scored the same way, beside the published rows.

De novo (``--denovo NAME=PATH``, PATH a ``generate`` output, an extxyz or a CIF directory): scored
by ``topodiff.evaluation.evaluate_entries`` against ``mp_20/test`` (structural and compositional
validity, uniqueness, Wasserstein distances of density d_ρ and of the number of elements d_elem,
CDVAE coverage COV-R / COV-P), with novelty taken against ``mp_20/train`` (StructureMatcher
ltol 0.2, stol 0.3, angle_tol 5: the fraction of all generated crystals that match no training
crystal). CSP (``--csp NAME=PATH``, a ``topodiff csp`` output or any extxyz whose frames carry
``index``): ``topodiff.evaluation.csp_eval.csp_metrics`` against the first ``--csp-rows`` rows of
``mp_20/test`` (StructureMatcher stol 0.5, angle_tol 10, ltol 0.3; one sample); a composition the
generator was asked for but wrote nothing for counts as a miss (``metadata.json`` beside it).
The same NAME in ``--denovo`` and ``--csp`` makes one row. Prints one markdown table and writes
``--json``.

    python benchmarks/bench_mp20.py --denovo "topodiff=runs/mp20_default/gen1000" \\
        --csp "topodiff=runs/mp20_csp/csp200" --json runs/bench_mp20.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mp_20"

#: Published rows (full MP-20 training split, 1000+ samples; d_E omitted here: it needs their
#: property model). DiffCSP ab initio: arXiv:2309.04475 Table 4 (also quoted in the PaddleScience
#: Materials README); CSP one-sample rows and CDVAE: DiffCSP Table 1 / Table 4, CDVAE Table 3.
PUBLISHED: dict[str, dict[str, Any]] = {
    "CDVAE (published, full MP-20)": {
        "structural_validity": 1.0, "compositional_validity": 0.8670, "cov_recall": 0.9915,
        "cov_precision": 0.9949, "wdist_density": 0.6875, "wdist_num_elems": 1.432,
        "csp_match_rate": 0.3390, "csp_rmse": 0.1045,
        "source": "Xie et al. ICLR 2022 Table 3; CSP: Jiao et al. NeurIPS 2023 Table 1"},
    "DiffCSP (published, full MP-20)": {
        "structural_validity": 1.0, "compositional_validity": 0.8325, "cov_recall": 0.9971,
        "cov_precision": 0.9976, "wdist_density": 0.3502, "wdist_num_elems": 0.3398,
        "csp_match_rate": 0.5149, "csp_rmse": 0.0631,
        "source": "Jiao et al. NeurIPS 2023 (arXiv:2309.04475) Tables 1 and 4"},
}

COLUMNS = [("structural_validity", "struct. valid", "pct"), ("compositional_validity", "comp. valid", "pct"),
           ("uniqueness", "unique", "pct"), ("novelty_vs_train", "novel vs train", "pct"),
           ("symmetric_fraction", "SG > P1", "pct"),
           ("wdist_density", "d_ρ", "f3"), ("wdist_num_elems", "d_elem", "f3"),
           ("cov_recall", "COV-R", "pct"), ("cov_precision", "COV-P", "pct"), ("num_structures", "N gen", "int"),
           ("csp_match_rate", "CSP match", "pct"), ("csp_rmse", "CSP RMSE", "f4"),
           ("csp_num_compositions", "N CSP", "int")]


def read_reference(path: Path, rows: int | None = None) -> list[Any]:
    """Structures of a CDVAE CSV (its first ``rows`` rows) through topodiff's reader, as
    ``evaluate --reference`` reads them; every one of them must be readable."""
    import tempfile

    import pandas as pd

    from topodiff.crystal.io import read_structures
    from topodiff.errors import TopodiffInputError

    with tempfile.TemporaryDirectory() as tmp:
        if rows is not None:  # the reader parses whole files: hand it only the rows asked for
            part = Path(tmp) / "rows.csv"
            pd.read_csv(path, nrows=rows).to_csv(part, index=False)
            path = part
        recs = read_structures(path, num_workers=1)
    bad = [r for r in recs if r.structure is None]
    if bad:
        raise TopodiffInputError(f"{path}: {len(bad)} unreadable rows (first: {bad[0].source}: {bad[0].error})")
    return [r.structure for r in recs]


def _requested(path: Path) -> dict[str, Any]:
    """``metadata.json`` of a generator output (beside the extxyz or in the directory), or {}."""
    for meta in (path / "metadata.json", path.parent / "metadata.json"):
        if meta.is_file():
            try:
                return json.loads(meta.read_text())
            except ValueError:
                return {}
    return {}


def score_denovo(path: Path, test: Sequence[Any], train: Sequence[Any], *,
                 max_cov_reference: int = 300) -> dict[str, Any]:
    """De novo metrics of ``path`` (see the module docstring). Crystals the generator could not
    write (``metadata.json`` ``num_requested`` > frames) count as invalid and not unique."""
    from topodiff.evaluation import metrics as M
    from topodiff.evaluation.evaluate import evaluate_entries, load_entries

    entries = load_entries(path)
    n = len(entries)
    asked = int(_requested(path).get("num_requested", n))
    if not entries:  # the generator wrote nothing: every crystal asked for is invalid
        zero = dict.fromkeys(("structural_validity", "compositional_validity", "validity", "uniqueness",
                              "cov_recall", "cov_precision", "novelty_vs_test", "novelty_vs_train"), 0.0)
        return {**zero, "wdist_density": None, "wdist_num_elems": None, "num_not_written": asked,
                "num_structures": asked, "num_train": len(train), "num_test": len(test)}
    summary, _, _ = evaluate_entries(entries, reference=test, dataset="mp20", screen=False, judge=False,
                                     progress=False, max_cov_reference=max_cov_reference)
    readable = [e.structure for e in entries if e.structure is not None]
    novel = int(M.novel_mask(readable, train).sum()) if readable else 0
    missing = max(asked - n, 0)
    scale = n / (n + missing)
    out = {k: summary.get(k) for k in ("num_structures", "structural_validity", "compositional_validity",
                                       "validity", "uniqueness", "symmetric_fraction", "wdist_density", "wdist_num_elems",
                                       "cov_recall", "cov_precision", "novelty_vs_reference")}
    for k in ("structural_validity", "compositional_validity", "validity", "uniqueness"):
        out[k] = float(out[k]) * scale
    out.update(novelty_vs_test=out.pop("novelty_vs_reference"), novelty_vs_train=novel / (n + missing),
               num_not_written=missing, num_structures=n + missing, num_train=len(train), num_test=len(test))
    return out


def score_csp(path: Path, reference: Sequence[Any]) -> dict[str, Any]:
    """CSP match rate and RMSE of ``path`` against ``reference`` (the CSP input rows, in order)."""
    from topodiff.evaluation.csp_eval import csp_metrics
    from topodiff.evaluation.evaluate import load_entries

    entries = [e for e in load_entries(path) if e.labels.get("index") is not None
               and int(e.labels["index"]) < len(reference)]
    if not entries:  # nothing written: every composition asked for is a miss
        asked = min(int(_requested(path).get("num_compositions", 0)), len(reference))
        return {"csp_num_compositions": asked, "csp_matched": 0, "csp_match_rate": 0.0, "csp_rmse": None,
                "csp_samples_per_composition": 0.0}
    out = csp_metrics(entries, reference)
    asked = int(_requested(path).get("num_compositions", out["csp_num_compositions"]))
    asked = min(asked, len(reference))
    matched = round(out["csp_match_rate"] * out["csp_num_compositions"])
    out.update(csp_num_compositions=asked, csp_matched=matched, csp_match_rate=matched / asked)
    return out


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "—"
    return {"pct": f"{100 * v:.2f} %", "f3": f"{v:.3f}", "f4": f"{v:.4f}", "int": str(int(v))}[kind]


def table(rows: dict[str, dict[str, Any]]) -> str:
    """One markdown table, a row per generator, columns as :data:`COLUMNS` (— where not measured)."""
    head = "| model | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(r.get(k), kind) for k, _, kind in COLUMNS) + " |")
    return "\n".join(lines)


def _named(items: Sequence[str], flag: str) -> list[tuple[str, Path]]:
    from topodiff.errors import TopodiffInputError

    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not Path(path).exists():
            raise TopodiffInputError(f"{flag} {item!r}: expected NAME=PATH with an existing PATH")
        out.append((name.strip(), Path(path)))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from topodiff.io_utils import atomic_write_json, atomic_write_text

    denovo, csp = _named(args.denovo, "--denovo"), _named(args.csp, "--csp")
    rows: dict[str, dict[str, Any]] = {k: dict(v) for k, v in PUBLISHED.items()}
    if denovo:
        test, train = read_reference(args.test), read_reference(args.train)
        for name, path in denovo:
            print(f"scoring de novo {name}: {path}", file=sys.stderr, flush=True)
            rows.setdefault(name, {}).update(score_denovo(path, test, train, max_cov_reference=args.cov_reference))
    if csp:
        ref = read_reference(args.test, args.csp_rows)
        for name, path in csp:
            print(f"scoring CSP {name}: {path}", file=sys.stderr, flush=True)
            rows.setdefault(name, {}).update(score_csp(path, ref))
    md = table(rows)
    result = {"table_markdown": md, "rows": rows, "test": str(args.test), "train": str(args.train),
              "csp_rows": args.csp_rows, "inputs": {"denovo": args.denovo, "csp": args.csp}}
    if args.json:
        atomic_write_json(args.json, result)
    if args.markdown:
        atomic_write_text(args.markdown, md + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    from topodiff.errors import TopodiffInputError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--denovo", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--csp", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--test", type=Path, default=SHARED / "test.csv.gz")
    ap.add_argument("--train", type=Path, default=SHARED / "train.csv.gz", help="novelty reference")
    ap.add_argument("--csp-rows", type=int, default=200)
    ap.add_argument("--cov-reference", type=int, default=300, help="reference crystals fingerprinted for COV")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        for p in (args.test, args.train):
            if not p.is_file():
                raise TopodiffInputError(f"{p} not found (the MP-20 subset of ../shared/data)")
        if args.csp_rows <= 0:
            raise TopodiffInputError("--csp-rows must be positive")
        result = run(args)
    except TopodiffInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result["table_markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
