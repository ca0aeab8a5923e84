"""Where the cell formulas of a ``generate`` run come from: the formula model it uses (if any), its
draws under the run's conditions, and, with a template library, the known structure type each
formula is placed on (:mod:`topodiff.generative.formula_model`, :mod:`topodiff.generative.templates`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from topodiff.errors import TopodiffInputError
from topodiff.generative.conditions import SAMPLER_CONDITIONS


def choose_formula_model(choice: str | None, checkpoint: str | None, cond: dict[str, Any], templates: Any,
                         max_atoms: int):
    """The formula model that draws this run's cell formulas, or None for the network's own species.

    ``choice``: ``network``; a formula-model file or shipped name (an error when it cannot honour the
    run); ``auto`` / None: the checkpoint's companion ``<checkpoint stem>.formula.ckpt`` beside it, where
    one exists and can honour the run: no templates (there they choose the compositions), only
    conditions it was trained with (or that its masks enforce: ``chemical_system``, ``num_elements``),
    cells (up to ``max_atoms``) no larger than it was trained for. An explicit formula model with
    templates places each formula on its matching template (:func:`match_templates`).
    """
    from topodiff.generative.formula_model import formula_model_path, load_formula_model

    choice = "auto" if choice is None else str(choice)
    path = formula_model_path(choice, checkpoint)
    if path is None:
        return None
    model = load_formula_model(path)
    unknown = [k for k in cond if k not in model.cfg.conditions and k not in SAMPLER_CONDITIONS]
    misfit = ("templates choose the compositions" if templates is not None and choice == "auto" else
              f"it was not trained with {', '.join(unknown)}" if unknown else
              f"cells of up to {int(max_atoms)} atoms exceed its {model.cfg.max_atoms}"
              if int(max_atoms) > model.cfg.max_atoms else None)
    if misfit is None:
        return model
    if choice == "auto":
        return None
    raise TopodiffInputError(f"formula model {choice}: {misfit}; use --formulas network")


def draw_formulas(model, sizes: torch.Tensor, cond: dict[str, Any], guidance: float,
                  generator: torch.Generator, elements: torch.Tensor | None = None,
                  size_range: tuple[int, int] | None = None) -> list[np.ndarray]:
    """One cell formula per entry of ``sizes`` (atoms per cell; 0: the formula model draws it, in
    ``size_range``), honouring the run's conditions exactly where they are element sets or counts; the
    others steer it with classifier-free ``guidance``; ``elements``: the usable elements (mask over Z;
    the generator's)."""
    from topodiff.generative.formula_sampling import sample_formulas

    batch = len(sizes)
    values = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)).expand(batch, *np.shape(v)).clone()
              for k, v in cond.items() if k in model.cfg.conditions}
    system = torch.as_tensor(cond["chemical_system"]) > 0 if "chemical_system" in cond else None
    count = torch.full_like(sizes, int(cond["num_elements"])) if "num_elements" in cond else None
    return sample_formulas(model, sizes, values, guidance=guidance, system=system, num_elements=count,
                           elements=elements, size_range=size_range, generator=generator)


def match_templates(templates: Any, cells: list[np.ndarray]) -> list:
    """For each formula (atomic numbers) the library's chemically closest crystal with the same atom
    counts per element, with the formula's elements on its sites (``TemplateLibrary.match``), or None."""
    from topodiff.generative.templates import TemplateLibrary, resolve_templates

    lib = templates if isinstance(templates, TemplateLibrary) else TemplateLibrary.load(resolve_templates(templates))
    return [lib.match(z) for z in cells]
