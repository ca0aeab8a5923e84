"""Crystal diffusion generator: corruption processes, periodic denoiser, sampler, checkpoints.

Entry points: :class:`~topodiff.generative.model.CrystalDiffusion` (``loss``, ``sample``),
:class:`~topodiff.generative.config.ModelConfig`, :func:`~topodiff.generative.checkpoint.load_generator`,
:func:`~topodiff.generative.generate.generate_to_dir`, :func:`~topodiff.generative.csp.csp_to_dir`.
"""

from topodiff.threads import ensure_threads

ensure_threads()  # the CLI's threading default for script users too (topodiff.threads; overridable)
