"""Helpers shared by the CLI sub-commands."""
from __future__ import annotations

import json
import sys
from typing import Any

from topodiff.errors import TopodiffInputError


def parse_params(items: list[str] | None) -> dict[str, float]:
    """Parse ``KEY=VALUE`` pairs into floats; a malformed pair is a :class:`TopodiffInputError`."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TopodiffInputError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise TopodiffInputError(f"--param {key}: {value!r} is not a number") from None
    return out


def print_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout (numpy scalars converted)."""
    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    sys.stdout.write(json.dumps(obj, default=default, allow_nan=False) + "\n")
