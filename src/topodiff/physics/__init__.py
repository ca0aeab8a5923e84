"""Tight-binding physics engine: models, spectra and topological invariants (float64/complex128)."""
from topodiff.physics.model import TBModel

__all__ = ["TBModel"]
