"""``topodiff dataset labels INPUT --out OUT.csv.gz``: DFT-catalogue topology labels joined to crystals."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from topodiff.commands._common import print_json
from topodiff.errors import TopodiffInputError

#: Where the catalogues sit in this project's layout (``../shared/data/topology``).
DEFAULT_CATALOGUES = Path("..") / "shared" / "data" / "topology"


def register(app: typer.Typer) -> None:
    try:
        from topodiff.commands.dataset import dataset_app
    except ImportError:  # the dataset command group is not installed
        return

    @dataset_app.command("labels")
    def labels(
        source: Path = typer.Argument(..., help="CDVAE-style CSV/.csv.gz with `material_id` (columns kept), or any "
                                                "structure input of `screen`."),
        out: Path = typer.Option(..., "--out", help="Output .csv or .csv.gz: source columns + catalogue_class, "
                                                    "catalogue_topological, catalogue_status, materiae, tqc, tang."),
        catalogues: Optional[Path] = typer.Option(None, "--catalogues", help="Directory of materiae.csv.gz, "
                                                  "tqc.csv.gz, topogivity.csv.gz (default: $TOPODIFF_CATALOGUES, "
                                                  "else ../shared/data/topology)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="CIF parser processes (default: automatic)."),
        json_out: bool = typer.Option(False, "--json", help="Print the counts as one JSON object."),
    ) -> None:
        """Join Materiae / TQC (by MP id) and Tang et al. (by space group + formula) labels into
        `catalogue_class` (trivial | ti | tci | semimetal; empty where the catalogues disagree,
        say Unknown, or know nothing)."""
        from topodiff.crystal.catalogue import label_file

        cat_dir = catalogues or Path(os.environ.get("TOPODIFF_CATALOGUES", DEFAULT_CATALOGUES))
        if not cat_dir.is_dir():
            raise TopodiffInputError(f"catalogue directory not found: {cat_dir} (pass --catalogues DIR)")
        counts = label_file(source, out, cat_dir, num_workers=workers)
        counts["out"] = str(out)
        if json_out:
            print_json(counts)
            return
        print(f"{out}: {counts['rows']} rows, classes {counts['classes']}; catalogues agree {counts['agree']}, "
              f"disagree {counts['disagree']}, ambiguous (TQC TI only) {counts['ambiguous']}, unknown "
              f"{counts['none']}", file=sys.stdout)
