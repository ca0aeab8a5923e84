"""topodiff: tight-binding topology engine and diffusion generator for topological materials.

The Python API (details in ``docs/python-api.md``)::

    import topodiff
    crystals = topodiff.generate(num=8, conditions={"topo_class": "strong_ti"})  # pymatgen Structures
    rows = topodiff.screen(crystals)            # ScreenResult per crystal (screen --json keys)
    model = topodiff.load_model(pythtb_model)   # also: JSON, _hr.dat, built-in name, Structure, Atoms
    topodiff.chern_number(model), topodiff.z2_invariant(model), topodiff.invariants(model)

Names are imported on first use, so ``import topodiff`` stays fast. The first heavy call applies the
threading default (one thread; ``TOPODIFF_NUM_THREADS`` or :func:`set_threads` change it).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    **{name: "topodiff.api" for name in ("generate", "screen", "evaluate", "load_model", "invariants",
                                         "chern_number", "z2_invariant", "weyl_nodes", "band_structure", "band_gaps",
                                         "ScreenResult", "Evaluation", "GeneratedStructures")},
    **{name: "topodiff.physics.interop" for name in ("TBBuilder", "from_pythtb", "to_pythtb", "from_tbmodels",
                                                     "to_tbmodels", "crystal_model")},
    "TBModel": "topodiff.physics.model",
    "TopodiffInputError": "topodiff.errors",
    "set_threads": "topodiff.threads",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'topodiff' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
