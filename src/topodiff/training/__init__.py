"""Training at scale: typed config, Lightning module and data, EMA, atomic checkpoints, resume, DDP."""
