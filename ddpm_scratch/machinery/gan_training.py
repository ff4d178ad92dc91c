"""Training a denoising diffusion GAN (lecture 4, `ddgan`) with the course's one loop: two updates per step.

Each step draws one batch of data and takes the discriminator's step on L_D (its own parameters), then the
generator's on L_G (`ddgan.discriminator_loss`, `ddgan.generator_loss`), with Adam's betas (0.5, 0.9) as the paper's
code (NVlabs/denoising-diffusion-gan, train_ddgan.py) and no EMA.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_data, check_number
from ..ddgan import DDGAN, discriminator_loss, generator_loss
from ..schedules import NoiseSchedule, check_schedule
from .loop import Batch, LoopSettings, Update, run_loop

__all__ = ["train_ddgan"]


def train_ddgan(data: Tensor, schedule: NoiseSchedule, *, steps: int = 3000, batch_size: int = 256,
                lr: float = 3e-4, r1_gamma: float = 0.05, z_dim: int = 8, hidden: int = 64, depth: int = 3,
                seed: int = 0, progress: bool = True) -> DDGAN:
    """Train a DDGAN on data (N, D): one D step, then one G step, per iteration (`loop.run_loop` with two updates).

    Reproducible: seed sets the initial weights (torch's global generator is left as it was), the generator of the
    batches (seed) and the one of t, the forward noise, z and the posterior noise (seed + 1). Returns the DDGAN in
    eval mode with its history of losses, one per step; a non-finite loss stops with `loop.TrainingDiverged`.
    """
    check_data("data", data)
    if data.dim() != 2 or data.shape[0] < 2:
        raise ValueError(f"data must have shape (N, D) with N >= 2, got {tuple(data.shape)}")
    check_schedule(schedule)
    check_number("r1_gamma", r1_gamma, low=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DDGAN.build(schedule, data.shape[1], z_dim, hidden, depth).to(data.device)

    def d_objective(model: DDGAN, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return discriminator_loss(model, batch.x0, r1_gamma=r1_gamma, generator=generator)

    def g_objective(model: DDGAN, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return generator_loss(model, batch.x0, generator=generator)

    # (L_G's backward also reaches D's gradients; the D step's zero_grad clears them before they are used)
    updates = [Update("D", d_objective, parameters=lambda m: m.D.parameters()),
               Update("G", g_objective, parameters=lambda m: m.G.parameters())]
    settings = LoopSettings(steps=steps, batch_size=batch_size, lr=lr, betas=(0.5, 0.9), log_every=1,
                            checkpoint_every=steps)
    result = run_loop(model, updates, data, settings, data_rng=torch.Generator().manual_seed(seed),
                      noise_rng=torch.Generator(device=data.device).manual_seed(seed + 1), progress=progress,
                      desc=f"DDGAN, T = {schedule.T}", leave=False)
    model.history = result.history
    return model

