"""``topodiff predictor train`` and ``topodiff predict PATH``: the noise-aware property predictor."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

MAX_STEPS = 10_000_000   # optimiser steps of one predictor training run
MAX_BATCH = 4096         # crystals per step (memory of the periodic encoder)

predictor_app = typer.Typer(help="Property predictor (topo_class + band gap) for pre-screening and guidance.",
                            no_args_is_help=True)


@predictor_app.command("train")
def train(
    train_csv: Path = typer.Option(..., "--train", help="Labelled CSV (`topodiff dataset label` output: topo_class, gap)."),
    val_csv: Path = typer.Option(..., "--val", help="Labelled held-out CSV for the reported metrics."),
    out: Path = typer.Option(..., "--out", help="Output predictor checkpoint (.predictor.ckpt)."),
    steps: int = typer.Option(2000, "--steps", help="Optimiser steps."),
    batch_size: int = typer.Option(64, "--batch-size", help="Crystals per step."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout."),
) -> None:
    """Train the predictor on crystals noised by the generator's corruption; report held-out metrics at t = 0."""
    from topodiff.commands._common import check_int_range, check_seed, print_json
    from topodiff.generative.predictor import train_predictor

    steps = check_int_range("--steps", steps, 1, MAX_STEPS)
    batch_size = check_int_range("--batch-size", batch_size, 1, MAX_BATCH)
    seed = check_seed(seed)
    command = "topodiff " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _, metrics = train_predictor(train_csv, val_csv, out, steps=steps, batch_size=batch_size, seed=seed,
                                 recipe={"command": command})
    if json_out:
        print_json(metrics)
        return
    cls, base = metrics["topo_class"], metrics["baseline"]
    print(f"wrote {out}")
    print(f"topo_class accuracy {cls['accuracy']:.3f} (majority baseline {base['accuracy']:.3f}), "
          f"balanced accuracy {cls['balanced_accuracy']:.3f} (baseline {base['balanced_accuracy']:.3f})")
    print(f"gap MAE {metrics['gap_mae_eV']:.3f} eV (mean-gap baseline {base['gap_mae_eV']:.3f} eV)")


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from topodiff.generative.embeddings import TOPO_CLASSES

    table = Table(title="Property predictor (t = 0)")
    for col in ("source", "formula", "class", *(f"p({c})" for c in TOPO_CLASSES), "gap (eV)"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(str(r["source"]), "", f"[red]error: {r['error']}[/red]", *[""] * (len(TOPO_CLASSES) + 1))
            continue
        table.add_row(str(r["source"]), r["formula"], r["topo_class"],
                      *(f"{r['probabilities'][c]:.3f}" for c in TOPO_CLASSES), f"{r['gap']:.3f}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(predictor_app, name="predictor")

    @app.command("predict")
    def predict(
        path: Path = typer.Argument(..., help="Anything `topodiff screen` reads (CIF/POSCAR/extxyz/CSV, a directory, "
                                              "a `generate` output directory)."),
        predictor: Optional[str] = typer.Option(None, "--predictor", help="Predictor file or shipped name (default: default)."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    ) -> None:
        """Predicted topo_class, class probabilities and band gap of each crystal (fast pre-screen)."""
        from topodiff.commands._common import print_json
        from topodiff.commands.screen import nothing_processed
        from topodiff.generative.predictor import predict_path

        rows = predict_path(path, predictor)
        nothing_processed(rows, lambda r: "error" in r, "predicted")
        if json_out:
            print_json({"structures": rows})
        else:
            _print_table(rows)
        bad = sum("error" in r for r in rows)
        if bad:
            print(f"{bad} of {len(rows)} structures could not be read (see 'error')", file=sys.stderr)
