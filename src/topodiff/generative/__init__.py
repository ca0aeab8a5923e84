"""Crystal diffusion generator: corruption processes, periodic denoiser, sampler, guidance."""
