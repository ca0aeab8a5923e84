"""The report's "DFT verification (GPAW)" section: DFT vs Slater-Koster vs the learned judge.

Reads ``DIR/dft/comparison.json`` (written by :func:`topodiff.dft.candidates.verify_candidates`,
i.e. ``topodiff pipeline --verify-dft K``) and renders one table row per verified crystal, with the
DFT band structure (``DIR/dft/bands_<index>.png``) embedded as a base64 data URI. Values the file
(or the run's ``structures.csv``, looked up by ``index`` for the source and the Slater-Koster gap)
does not give are shown as "unknown". No file → no section; a malformed file → a one-line message.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["DFT_COLS", "dft_section", "load_comparison"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
UNKNOWN = "unknown"
#: (key of the merged row, column header), in table order; the band image is the last column.
DFT_COLS = (("formula", "formula"), ("source", "source"), ("verdict", "DFT verdict"), ("z2", "DFT Z2"),
            ("route", "route"), ("basis", "basis"), ("gap_direct", "DFT gap direct (eV)"),
            ("gap_indirect", "DFT gap indirect (eV)"), ("sk_class", "SK topo_class"), ("sk_z2", "SK Z2"),
            ("sk_gap", "SK gap (eV)"), ("judge_class", "learned catalogue_class"), ("p_topological", "p_topological"),
            ("seconds", "seconds"))


def load_comparison(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    """``(candidates, options)`` of ``run_dir/dft/comparison.json``; None when there is no such file.

    Raises ValueError (one-line message) when the file is unreadable or not the expected shape.
    """
    path = run_dir / "dft" / "comparison.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not valid JSON ({type(exc).__name__}); "
                         "rerun `topodiff pipeline --verify-dft`") from None
    cands = data.get("candidates", data.get("structures")) if isinstance(data, dict) else None
    if not isinstance(cands, list) or not all(isinstance(c, dict) for c in cands):
        raise ValueError(f"{path}: expected {{\"candidates\": [{{...}}, ...]}}; rerun `topodiff pipeline --verify-dft`")
    opts = data.get("options") if isinstance(data.get("options"), dict) else {}
    return cands, opts


def _z2(z: Any) -> str:
    """``[ν0, ν1, ν2, ν3]`` → ``(ν0;ν1ν2ν3)``; a JSON text list is parsed; anything else → unknown/as is."""
    if isinstance(z, str) and z.strip().startswith("["):
        try:
            z = json.loads(z)
        except ValueError:
            return html.escape(z)
    if isinstance(z, list) and len(z) == 4 and all(isinstance(x, int) for x in z):
        return f"({z[0]};{''.join(str(x) for x in z[1:])})"
    return UNKNOWN if z is None or z == "" else html.escape(str(z))


def _cell(key: str, v: Any) -> str:
    if key in ("z2", "sk_z2"):
        return _z2(v)
    if v is None or v == "" or (isinstance(v, float) and not math.isfinite(v)):
        return UNKNOWN
    if isinstance(v, bool):
        return html.escape(str(v))
    if isinstance(v, (int, float)):
        return f"{v:.1f}" if key == "seconds" else f"{v:.3g}" if key == "p_topological" else f"{v:.3f}"
    return html.escape(str(v))


def _merged(c: dict[str, Any], by_index: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """A comparison row completed from the run's ``structures.csv`` row of the same index."""
    r = by_index.get(c.get("index"), {})
    m = dict(c)
    for key, csv_key in (("source", "source"), ("formula", "formula"), ("sk_class", "topo_class"),
                         ("sk_z2", "z2"), ("sk_gap", "gap"), ("judge_class", "catalogue_class"),
                         ("p_topological", "p_topological")):
        if m.get(key) is None:
            m[key] = r.get(csv_key)
    if m.get("verdict") is None and m.get("error"):
        m["verdict"] = f"error: {m['error']}"
    return m


def _bands_img(dft_dir: Path, c: dict[str, Any]) -> str | None:
    """The DFT band figure as a data URI (only a PNG file inside ``dft_dir``), or None."""
    names = [c.get("bands_png")] if isinstance(c.get("bands_png"), str) else []
    if c.get("index") is not None:
        names.append(f"bands_{c['index']}.png")
    for name in names:
        p = dft_dir / Path(name).name                   # never outside the run's dft/ directory
        try:
            data = p.read_bytes() if p.is_file() else b""
        except OSError:
            continue
        if data.startswith(PNG_MAGIC):
            return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return None


def dft_section(run_dir: str | Path, rows: list[dict[str, Any]] | None = None) -> str:
    """HTML of the "DFT verification (GPAW)" section; ``""`` when ``run_dir/dft/comparison.json`` is absent."""
    run_dir = Path(run_dir)
    head = "<h2>DFT verification (GPAW)</h2>"
    try:
        loaded = load_comparison(run_dir)
    except ValueError as exc:
        return head + f"<div class='warn'>{html.escape(str(exc))}</div>"
    if loaded is None:
        return ""
    cands, opts = loaded
    if not cands:
        return head + "<div class='warn'>dft/comparison.json lists no verified crystal</div>"
    by_index = {r.get("index"): r for r in rows or [] if r.get("index") is not None}
    soc = "" if opts.get("soc") is False else "+SOC"
    kd = f", k-density {opts['k_density']:g}" if isinstance(opts.get("k_density"), (int, float)) else ""
    intro = (f"<p>The top candidates checked with first-principles DFT (GPAW, PBE{soc}{kd}; Z2 by parity or "
             "Wilson loop), beside the two cheap judges: the Slater-Koster tight-binding screen (SK) and the learned "
             "judge. Table: <span class='mono'>dft/comparison.json</span>, <span class='mono'>comparison.md</span>.</p>")
    th = "".join(f"<th>{h}</th>" for _, h in DFT_COLS) + "<th>DFT bands</th>"
    body = []
    for i, c in enumerate(cands, 1):
        m = _merged(c, by_index)
        tds = "".join(f"<td class='mono'>{_cell(k, m.get(k))}</td>" if k == "source" else f"<td>{_cell(k, m.get(k))}</td>"
                      for k, _ in DFT_COLS)
        img = _bands_img(run_dir / "dft", c)
        pic = f'<img alt="DFT bands {i}" src="{img}" width="320">' if img else UNKNOWN
        body.append(f"<tr>{tds}<td>{pic}</td></tr>")
    return head + intro + "<table><tr>" + th + "</tr>" + "".join(body) + "</table>"
