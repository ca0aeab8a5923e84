"""First-principles verification of topology (GPAW PBE + spin-orbit coupling), offline.

:mod:`~topodiff.dft.lcao` runs GPAW and reads the LCAO matrices, :mod:`~topodiff.dft.model` turns
them into an orthogonal tight-binding model, :mod:`~topodiff.dft.topology` computes Z2 (parity or
WCC), gaps and the verdict, :mod:`~topodiff.dft.pw` is the plane-wave check,
:mod:`~topodiff.dft.verify` does one crystal and :mod:`~topodiff.dft.batch` many (timeouts,
resume). GPAW is an optional dependency (``pip install 'topodiff[dft]'`` with ``CC=g++``).
"""
from topodiff.dft.lcao import gpaw_available, require_gpaw

__all__ = ["gpaw_available", "require_gpaw"]
