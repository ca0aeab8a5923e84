"""Open a topodiff report in headless Chromium, check that every embedded image decodes, and save
a screenshot.

Two checks: (1) a copy of the report with a tiny script appended is loaded with ``--dump-dom``;
the script writes, for every ``<img>``, whether it decoded (``naturalWidth > 0``) into the DOM,
which is then parsed here; (2) the screenshot's pixel standard deviation must be well above that
of a blank page. Chromium runs fully offline (the report has no external resources).

Usage: ``python benchmarks/report_screenshot.py REPORT.html [--out docs/img/report_screenshot.png]
[--size W,H] [--from-heading "Top candidates"]`` (the last starts the picture at that section).
Needs the Debian package ``chromium`` (``apt-get install -y chromium``).
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars"]
PROBE = """<script>window.addEventListener('load',function(){var r=[],h={};
document.querySelectorAll('img').forEach(function(i){r.push([i.alt,i.complete&&i.naturalWidth>0,i.naturalWidth]);});
document.querySelectorAll('h2').forEach(function(e){h[e.textContent]=e.getBoundingClientRect().top+window.scrollY;});
var p=document.createElement('pre');p.id='img-probe';p.textContent=JSON.stringify({images:r,headings:h});
document.body.appendChild(p);});</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    raise SystemExit("error: chromium not found (apt-get install -y chromium)")


def check_images(html: Path, exe: str, width: int) -> dict:
    """``{"images": [[alt, decoded, naturalWidth], ...], "headings": {h2 text: top px}}`` at ``width``."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
        dom = subprocess.run([exe, *FLAGS, f"--window-size={width},2000", "--virtual-time-budget=10000", "--dump-dom",
                              probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<pre id="img-probe">(.*?)</pre>', dom, re.S)
    if not m:
        raise SystemExit("error: the probe did not run (page failed to load)")
    return json.loads(m.group(1).replace("&quot;", '"'))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report_screenshot.png")
    ap.add_argument("--size", default="1280,2200", help="WIDTH,HEIGHT of the screenshot (px)")
    ap.add_argument("--from-heading", default=None,
                    help="start the screenshot at this section heading (e.g. 'Top candidates') instead of the top")
    args = ap.parse_args()
    exe = chromium()
    width, height = (int(x) for x in args.size.split(","))
    probe = check_images(args.report.resolve(), exe, width)
    imgs = probe["images"]
    bad = [i for i in imgs if not i[1]]
    top = 0
    if args.from_heading is not None:
        if args.from_heading not in probe["headings"]:
            raise SystemExit(f"error: no heading {args.from_heading!r} (found: {', '.join(probe['headings'])})")
        top = max(0, int(probe["headings"][args.from_heading]) - 12)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, *FLAGS, f"--window-size={width},{top + height}", f"--screenshot={args.out.resolve()}",
                    args.report.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    import numpy as np
    from PIL import Image

    shot = Image.open(args.out)
    if top:
        shot.crop((0, top, width, top + height)).save(args.out)
    px = np.asarray(Image.open(args.out).convert("L"), dtype=float)
    result = {"images": len(imgs), "decoded": len(imgs) - len(bad), "failed": [i[0] for i in bad],
              "screenshot": str(args.out), "pixel_std": round(float(px.std()), 2),
              "screenshot_size": list(px.shape[::-1])}
    print(json.dumps(result))
    return 0 if not bad and imgs and px.std() > 5 else 1


if __name__ == "__main__":
    sys.exit(main())
