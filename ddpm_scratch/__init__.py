"""ddpm_scratch: diffusion models from scratch, one lecture concept per module.

Start with `schedules` and `forward` (lecture 1), then `losses` and `ddpm` (lecture 2).
"""

__version__ = "0.1.0"
