"""Evaluation of generated crystals: metrics, relaxation, topology screen and reports."""

from topodiff.threads import ensure_threads

ensure_threads()  # the CLI's threading default for script users too (topodiff.threads; overridable)
