"""Outputs of the discovery benchmark (``bench_discovery.py``): the markdown table with the hit lists,
the figure (hits per 100 per arm, e_above_hull histograms) and the merged hit file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def markdown(doc: dict[str, Any]) -> str:
    """The table of the arms and the hit lists."""
    head = ("| arm | N | valid | formula-novel | E hull ≤ 0.1 | learned ti/tci | hits | hits / 100 | distinct hit "
            "formulas | CPU min | hits / CPU-min |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for a in doc["arms"].values():
        f = a["funnel"]
        lines.append(f"| {a['arm']} | {a['num_candidates']} | {f['valid']} | {f['formula_novel']} | {f['stable']} | "
                     f"{f['learned_ti_tci']} | {a['num_hits']} | {_num(a['hits_per_100'], 1)} | {a['distinct_hit_formulas']} | "
                     f"{a['cpu_minutes']:.1f} | {_num(a['hits_per_cpu_minute'], 3)} |")
    text = [f"Target `{doc['target']}`, checkpoint `{doc['checkpoint']}` (sha256 {doc.get('checkpoint_sha256')}), "
            f"seed {doc['seed']}, sampler {doc.get('sampler') or 'as the checkpoint'}, {_screen(doc)}{doc['date']}.\n",
            head + "\n".join(lines), ""]
    for a in doc["arms"].values():
        text.append(f"**{a['arm']}** hits ({a['num_hits']}):\n")
        if not a["hits"]:
            text.append("none\n")
            continue
        text.append("| formula | SG | E hull (eV/atom) | learned class | p_topological | SK class | SK z2 | SK gap (eV) |\n"
                    "|---|---|---|---|---|---|---|---|")
        for h in sorted(a["hits"], key=lambda h: h["e_above_hull"]):
            text.append(f"| {h['formula']} | {h['space_group']} | {h['e_above_hull']:.3f} | {h['catalogue_class']} | "
                        f"{_num(h['p_topological'])} | {h['topo_class']} | {h['z2']} | {_num(h['gap'])} |")
        text.append("")
    return "\n".join(text) + "\n"


def _num(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def plot(doc: dict[str, Any], path: Path) -> None:
    """Hits per 100 per arm and the e_above_hull histograms, one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from topodiff.io_utils import atomic_write

    arms = list(doc["arms"].values())
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.bar([a["arm"] for a in arms], [a["hits_per_100"] or 0.0 for a in arms], color="tab:blue")
    ax1.set_ylabel("hits per 100 candidates")
    ax1.set_title(f"hits ({doc['target']})", fontsize=9)
    bins = np.linspace(-0.3, 1.5, 37)
    for a in arms:
        ax2.hist(np.clip(a["e_above_hull"], bins[0], bins[-1]), bins=bins, histtype="step", label=a["arm"])
    ax2.axvline(0.1, color="k", ls=":", lw=1)
    ax2.set_xlabel("E above DFT hull (eV/atom, clipped)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110), mode="wb")
    plt.close(fig)


def merge_hits(path: Path, target: str, doc: dict[str, Any]) -> None:
    """Put this target's hits into ``path`` (``{"targets": {target: {arm: [hits]}}}``), atomically."""
    from topodiff.io_utils import atomic_write_json

    old = json.loads(path.read_text()) if path.is_file() else {}
    old.setdefault("targets", {})[target] = {"date": doc["date"], "checkpoint": doc["checkpoint"],
                                             "out": doc["out"], "arms": {a: s["hits"] for a, s in doc["arms"].items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, old)


def _screen(doc: dict) -> str:
    """The pre-screen of the model arms, when one was used."""
    k = int(doc.get("prescreen") or 1)
    novel = "new formulas first, then " if doc.get("prescreen_novel") else ""
    return (f"model arms pre-screened ({k}× sampled; kept: {novel}the {doc['num']} the learned judge finds most "
            f"likely `{doc['target']}`; unconditional arm at γ = 0), ") if k > 1 else ""

