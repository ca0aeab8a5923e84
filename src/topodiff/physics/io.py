"""One entry point for every model source: a TBModel, a JSON file, a Wannier90 file, a built-in name."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from topodiff.errors import ModelError, TopodiffInputError
from topodiff.physics.interop import is_crystal_file
from topodiff.physics.model import TBModel, checked_filling

__all__ = ["load_model", "read_json_model", "with_lattice"]


def read_json_model(path: str | os.PathLike) -> TBModel:
    """Read a ``topodiff-tb/1`` JSON file; any problem is a one-line :class:`TopodiffInputError`."""
    path = Path(path)
    if not path.exists():
        raise TopodiffInputError(f"model file not found: {path}")
    if path.is_dir():
        raise TopodiffInputError(f"model path is a directory: {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        # the content decides the format (a JSON model may be called x_hr.dat), but a name that promises a
        # Wannier90 file gets told what that format would need
        hr = ("; nor is it a Wannier90 _hr.dat (a header line, then num_wann and nrpts)"
              if "_hr.dat" in path.name else "")
        raise TopodiffInputError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}){hr}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopodiffInputError(f"{path}: cannot read ({exc})") from None
    try:
        return TBModel.from_dict(doc)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def _looks_like_path(source: str) -> bool:
    return any(sep in source for sep in ("/", os.sep)) or source.lower().endswith((".json", ".dat"))


def _is_hr(path: Path, text: str) -> bool:
    """Wannier90 ``_hr.dat`` by content when the file exists (any name), else by its name."""
    from topodiff.physics.wannier90 import looks_like_hr  # lazy: optional heavy reader

    if path.is_file():
        return looks_like_hr(path)
    return "_hr.dat" in text


def load_model(source: TBModel | str | os.PathLike, *, filling: int | None = None,
               params: Mapping[str, Any] | None = None) -> TBModel:
    """Load a tight-binding model.

    Parameters
    ----------
    source : a :class:`TBModel` (returned as is), a path to a ``topodiff-tb/1`` JSON file, a path to a
        Wannier90 ``*_hr.dat`` (read by :func:`topodiff.physics.wannier90.read_hr`, which also picks up
        ``seedname.win`` / ``seedname_centres.xyz`` beside it), or a built-in model name
        (:func:`topodiff.physics.library.list_models`).
    filling : number of occupied bands (overrides the file's / the default half filling).
    params : parameters of a built-in model (``KEY=VALUE`` overrides); an error for other sources.

    Raises
    ------
    TopodiffInputError : missing file, invalid JSON/model, unknown model name or parameter, bad filling.
    """
    params = dict(params or {})
    if isinstance(source, TBModel):
        if params:
            raise TopodiffInputError("parameters apply only to built-in models")
        model = source
    else:
        text = os.fspath(source)
        path = Path(text)
        if _is_hr(path, text):
            if params:
                raise TopodiffInputError("parameters apply only to built-in models, not to Wannier90 files")
            if not path.exists():
                raise TopodiffInputError(f"model file not found: {path}")
            from topodiff.physics.wannier90 import read_hr  # lazy: optional heavy reader

            model = read_hr(path, filling=filling if isinstance(filling, int) and 0 < filling else None)
        elif is_crystal_file(path):  # its Slater-Koster model, as `topodiff screen` builds it (default options)
            if params:
                raise TopodiffInputError("parameters apply only to built-in models, not to crystal files")
            from topodiff.physics.interop import crystal_model

            model = crystal_model(path)
        elif path.is_file() or _looks_like_path(text):
            if params:
                raise TopodiffInputError("parameters apply only to built-in models, not to model files")
            model = read_json_model(path)
        else:
            from topodiff.physics.library import build_model

            model = build_model(text, **params)
    if filling is not None:
        model = model.replace(filling=checked_filling(filling, model.num_bands))
    return model


def with_lattice(model: TBModel, spec: str) -> TBModel:
    """``model`` on the cell given by ``--lattice`` (see :func:`topodiff.physics.wannier90_files.read_lattice`).

    Only for a model read on the identity cell (a Wannier90 file without a cell beside it): its
    reduced orbital positions and hoppings stay as they are, the lattice rows of its periodic
    directions are replaced, and the identity-cell note becomes a note naming the source.
    """
    import numpy as np

    from topodiff.physics.wannier90_files import read_lattice

    rows = model.lattice
    if rows.shape[1] != 3 or not np.allclose(np.abs(rows), np.eye(3)[np.argmax(np.abs(rows), axis=1)]):
        raise TopodiffInputError("--lattice applies to models read on the identity cell (a Wannier90 file "
                                 "without unit_cell_cart); this model has its own lattice")
    lattice = read_lattice(spec)
    if abs(np.linalg.det(lattice)) < 1e-10:
        raise TopodiffInputError(f"--lattice {spec!r}: the vectors are linearly dependent")
    notes = tuple(n for n in model.notes if not n.startswith("lattice:")) + (f"lattice from --lattice {spec}",)
    return model.replace(lattice=lattice[np.argmax(np.abs(rows), axis=1)], notes=notes)

