"""``topodiff formula train`` and ``topodiff formula sample``: the formula model (cell formulas given N)."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

MAX_STEPS = 1_000_000    # optimiser steps of one formula-model training run
MAX_BATCH = 65_536       # formulas per step

formula_app = typer.Typer(help="Formula model: p(cell formula | atom count, conditions), drawn before the "
                               "generator places the atoms (generate --formulas).", no_args_is_help=True)


@formula_app.command("train")
def train(
    train_csv: Path = typer.Option(..., "--train", help="Training CSV (e.g. data/mp20/train.csv)."),
    val_csv: Path = typer.Option(..., "--val", help="Held-out CSV: early stopping on its negative log-likelihood."),
    out: Path = typer.Option(..., "--out", help="Output file (.formula.ckpt; beside a generator X.ckpt as "
                                                "X.formula.ckpt, generate uses it by default)."),
    steps: int = typer.Option(4000, "--steps", help="Most optimiser steps."),
    batch_size: int = typer.Option(128, "--batch-size", help="Formulas per step."),
    patience: int = typer.Option(8, "--patience", help="Stop after this many held-out checks without a better one."),
    conditions: str = typer.Option("catalogue_class,band_gap,space_group", "--conditions",
                                   help="Comma-separated conditions to learn (empty: none)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout."),
) -> None:
    """Train on the cells of a CSV; keep the weights with the lowest held-out NLL."""
    from topodiff.commands._common import check_int_range, check_seed, print_json
    from topodiff.generative.formula_model import FormulaConfig
    from topodiff.generative.formula_training import train_formula_model

    steps = check_int_range("--steps", steps, 1, MAX_STEPS)
    batch_size = check_int_range("--batch-size", batch_size, 1, MAX_BATCH)
    patience = check_int_range("--patience", patience, 1, MAX_STEPS)
    config = FormulaConfig.from_dict({"conditions": [c.strip() for c in conditions.split(",") if c.strip()]})
    command = "topodiff " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _, metrics = train_formula_model(train_csv, val_csv, out, steps=steps, batch_size=batch_size,
                                     patience=patience, seed=check_seed(seed), config=config,
                                     recipe={"command": command})
    if json_out:
        print_json(metrics)
        return
    print(f"wrote {out}")
    print(f"held-out NLL {metrics['val_nll_per_formula']:.3f} nats/formula at step {metrics['best_step']} "
          f"(unconditional {metrics['val_nll_unconditional']:.3f}); training {metrics['train_wall_s']:.0f} s")


@formula_app.command("sample")
def sample(
    out: Path = typer.Option(..., "--out", help="Text file of formulas, one cell per line (topodiff csp input)."),
    num: int = typer.Option(100, "--num", help="Number of formulas."),
    model: str = typer.Option("default", "--model", help="Formula-model file or shipped name."),
    condition: Optional[list[str]] = typer.Option(None, "--condition", help="KEY=VALUE (repeatable): the model's "
                                                  "conditions, chemical_system, num_atoms, num_elements."),
    guidance: float = typer.Option(1.0, "--guidance", help="Classifier-free guidance (0 unconditional, 1 conditional)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Draw cell formulas (atom counts from the model's training data, or with chemical_system from the
    model's posterior given the elements, unless num_atoms is given)."""
    import torch

    from topodiff.commands._common import check_count, check_finite, check_seed, parse_key_values
    from topodiff.generative.conditions import fewest_atoms, parse_conditions
    from topodiff.generative.formula_model import load_formula_model
    from topodiff.generative.formula_source import draw_formulas
    from topodiff.io_utils import atomic_write_text

    num, seed = check_count("--num", num), check_seed(seed)
    guidance = check_finite("--guidance", guidance, lo=0.0, hi=100.0)
    formula_model = load_formula_model(model)
    cond = parse_conditions(parse_key_values(condition, "--condition"), list(formula_model.cfg.conditions))
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.full((num,), int(cond.get("num_atoms", 0)), dtype=torch.long)   # 0: drawn
    cells = draw_formulas(formula_model, sizes, cond, guidance, gen,
                          size_range=(fewest_atoms(cond), formula_model.cfg.max_atoms))
    atomic_write_text(out, "".join(_formula(z) + "\n" for z in cells))
    print(f"wrote {num} formulas to {out}")


def _formula(species) -> str:
    """Cell formula in the drawn element order, e.g. ``Ba2Cu4O7``."""
    from itertools import groupby

    from pymatgen.core import Element

    runs = [(z, len(list(group))) for z, group in groupby(species.tolist())]   # elements come in runs
    return "".join(Element.from_Z(z).symbol + (str(c) if c > 1 else "") for z, c in runs)


def register(app: typer.Typer) -> None:
    app.add_typer(formula_app, name="formula")
