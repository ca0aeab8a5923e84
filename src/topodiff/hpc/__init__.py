"""Cluster helpers: SLURM job scripts for multi-node training."""
from topodiff.hpc.slurm import SlurmJob, render_script

__all__ = ["SlurmJob", "render_script"]
