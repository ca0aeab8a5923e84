"""Error types shared by the library and the CLI.

Anything a user can cause (bad file, bad parameter, impossible request) raises
:class:`TopodiffInputError`; the CLI turns it into one ``error: ...`` line and exit code 2.
"""
from __future__ import annotations


class TopodiffError(Exception):
    """Base class of topodiff's own errors."""


class TopodiffInputError(TopodiffError, ValueError):
    """Bad input: malformed file, invalid parameter, unknown name. CLI exit code 2."""


class ModelError(TopodiffInputError):
    """A tight-binding model that is malformed or unphysical (e.g. non-Hermitian)."""


class ConvergenceError(TopodiffError, ArithmeticError):
    """A quantity that should be an integer did not converge to one (gap too small on the grid)."""
