"""Corruption processes of the crystal diffusion: lattice (VP), coordinates (wrapped normal VE), species (masked D3PM)."""
from topodiff.generative.corruption.d3pm import MaskedD3PM
from topodiff.generative.corruption.lattice import LatticeVP
from topodiff.generative.corruption.schedules import get_schedule
from topodiff.generative.corruption.wrapped_normal import WrappedNormalVE

__all__ = ["MaskedD3PM", "LatticeVP", "WrappedNormalVE", "get_schedule"]
