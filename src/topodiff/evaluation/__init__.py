"""Evaluation of generated crystals: metrics, relaxation, topology screen and reports."""
