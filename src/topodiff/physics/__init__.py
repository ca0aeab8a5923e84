"""Tight-binding physics engine: models, spectra and topological invariants (float64/complex128).

Stable entry points (CONTRACTS §4): :func:`load_model`, :func:`chern_number`, :func:`z2_invariant`.
"""
from topodiff.physics.berry import berry_curvature, chern_from_hamiltonians, chern_number, chern_result
from topodiff.physics.io import load_model
from topodiff.physics.library import build_model, build_tables, list_models, model_parameters
from topodiff.physics.model import TBModel
from topodiff.physics.oned import berry_phase, winding
from topodiff.physics.spectra import direct_gap, eigh_grid
from topodiff.physics.weyl import find_weyl_nodes
from topodiff.physics.wilson import wcc_flow
from topodiff.physics.z2 import z2_invariant, z2_parity, z2_result
from topodiff.threads import ensure_threads

ensure_threads()  # the threading default of the CLI for API users too (topodiff.threads; overridable)

__all__ = ["TBModel", "load_model", "chern_number", "chern_result", "chern_from_hamiltonians", "berry_curvature",
           "z2_invariant", "z2_result", "z2_parity", "wcc_flow", "berry_phase", "winding", "find_weyl_nodes",
           "build_model", "build_tables", "list_models", "model_parameters", "eigh_grid", "direct_gap"]
