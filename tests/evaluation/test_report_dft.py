"""The report's "DFT verification (GPAW)" section, from a fake ``dft/comparison.json`` (no GPAW run)."""
from __future__ import annotations

import base64
import json
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from topodiff.evaluation.evaluate import evaluate_path
from topodiff.evaluation.report import build_report, read_rows

warnings.filterwarnings("ignore")

FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
SECTION = "DFT verification (GPAW)"


def tiny_png() -> bytes:
    """A valid 1×1 PNG, written by hand (no plotting library)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def run_dir(tmp_path: Path) -> Path:
    """A real (small) evaluated run: Si and NaCl, no screen, like ``topodiff evaluate`` writes it."""
    src = tmp_path / "in"
    src.mkdir()
    Structure(Lattice.cubic(5.43), ["Si"] * 8, np.concatenate([FCC, FCC + 0.25])).to(filename=str(src / "a_si.cif"))
    Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4,
              np.concatenate([FCC, FCC + [0.5, 0, 0]]) % 1.0).to(filename=str(src / "b_nacl.cif"))
    out = tmp_path / "out"
    evaluate_path(src, out_dir=out, screen=False, progress=False)
    return out


COMPARISON = {"options": {"basis": "lcao", "k_density": 4.5, "soc": True},
              "candidates": [
                  {"index": 0, "formula": "Si", "verdict": "trivial_insulator", "z2": [0, 0, 0, 0],
                   "gap_direct": 2.5123, "gap_indirect": 0.6189, "route": "parity", "basis": "lcao", "reason": None,
                   "sk_class": "trivial_insulator", "sk_z2": [0, 0, 0, 0], "judge_class": "trivial",
                   "p_topological": 0.0731, "seconds": 17.26, "bands_png": "bands_0.png", "error": None},
                  {"index": 1, "formula": "NaCl", "verdict": None, "z2": None, "gap_direct": None,
                   "gap_indirect": None, "route": None, "basis": None, "reason": None, "sk_class": None,
                   "sk_z2": None, "judge_class": None, "p_topological": None, "seconds": None, "bands_png": None,
                   "error": "timed out after 900 s (--timeout)"}]}


def _dft_html(text: str) -> str:
    start = text.index(f"<h2>{SECTION}</h2>")
    return text[start:text.index("<h2>", start + 4)]


def _rows(section: str) -> list[list[str]]:
    return [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", section)[1:]]


def test_report_shows_dft_beside_the_cheap_judges_with_the_band_figure(tmp_path):
    out = run_dir(tmp_path)
    before = build_report(out, top_k=0)[0].read_text()
    assert SECTION not in before and "DFT bands" not in before           # no comparison.json: no section
    (out / "dft").mkdir()
    (out / "dft" / "comparison.json").write_text(json.dumps(COMPARISON))
    png = tiny_png()
    (out / "dft" / "bands_0.png").write_bytes(png)
    text = build_report(out, top_k=0)[0].read_text()
    sec = _dft_html(text)
    assert "PBE+SOC, k-density 4.5" in sec
    si, nacl = _rows(sec)
    # formula, source (from structures.csv by index), verdict, Z2, route, basis, gaps, SK class/Z2/gap,
    # learned class/p, seconds, bands; the SK gap is unknown because this run was not screened
    assert [si[0], *si[2:14]] == ["Si", "trivial_insulator", "(0;000)", "parity", "lcao", "2.512", "0.619",
                                  "trivial_insulator", "(0;000)", "unknown", "trivial", "0.0731", "17.3"]
    assert si[1].endswith("a_si.cif")
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in si[14]
    # the failed crystal: its error as verdict; the learned judge's values come from structures.csv
    # (same index), every other missing value is unknown, and there is no image
    csv_row = read_rows(out / "structures.csv")[1]
    assert nacl[0] == "NaCl" and nacl[1].endswith("b_nacl.cif")
    assert nacl[2] == "error: timed out after 900 s (--timeout)"
    assert nacl[3:11] == ["unknown"] * 8 and nacl[13:] == ["unknown", "unknown"]
    assert nacl[11:13] == [csv_row["catalogue_class"], f"{csv_row['p_topological']:.3g}"]
    # everything else of the report is as before, and every image is still embedded
    assert text.replace(sec, "").count("<h2>") == before.count("<h2>")
    assert all(u.startswith("data:image/png;base64,") for u in re.findall(r'src="([^"]+)"', text))


def test_malformed_comparison_gives_a_one_line_message_not_a_crash(tmp_path):
    out = run_dir(tmp_path)
    (out / "dft").mkdir()
    for bad in ('{"candidates": [1, 2', '["not", "an", "object"]', '{"candidates": "Si"}'):
        (out / "dft" / "comparison.json").write_text(bad)
        sec = _dft_html(build_report(out, top_k=0)[0].read_text())
        assert sec.count("<div class='warn'>") == 1 and "comparison.json" in sec and "<table>" not in sec


def test_pipeline_writes_the_report_after_the_dft_check(tmp_path, monkeypatch):
    from topodiff.crystal.io import write_structures
    from topodiff.evaluation.pipeline import run_pipeline

    def fake_generate(out_dir, *, num, **_):
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_structures([Structure(Lattice.cubic(5.43), ["Si"] * 8, np.concatenate([FCC, FCC + 0.25]))] * num,
                         out / "structures.extxyz")
        return {}

    def fake_verify(out_dir, k, **_):             # what verify_candidates leaves behind, without GPAW
        assert (Path(out_dir) / "structures.csv").is_file() and not (Path(out_dir) / "report.html").exists()
        (Path(out_dir) / "dft").mkdir()
        (Path(out_dir) / "dft" / "comparison.json").write_text(json.dumps({"candidates": COMPARISON["candidates"][:k]}))
        return COMPARISON["candidates"][:k]

    monkeypatch.setenv("TOPODIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("topodiff.dft.candidates.verify_candidates", fake_verify)
    res = run_pipeline(tmp_path / "run", num=1, relax=False, screen=False, top_k=0, generate_fn=fake_generate,
                       progress=False, verify_dft=1)
    assert res["dft"][0]["formula"] == "Si" and "dft_s" in res["timings"]
    assert _rows(_dft_html(Path(res["report"]).read_text()))[0][2] == "trivial_insulator"
