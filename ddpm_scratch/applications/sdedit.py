"""SDEdit (Meng et al. 2022, "SDEdit: guided image synthesis and editing with stochastic differential equations").

A guide y (a stroke painting, a damaged image) is not a sample of the data, but once noised far enough it is
indistinguishable from a noised sample: q(x_t0 | y) and q(x_t0) overlap more as t0 grows. SDEdit draws
x_t0 ~ q(x_t0 | x0 = y) = N(sqrt(alpha_bar_t0) y, (1 - alpha_bar_t0) I) and runs the reverse process from step t0
to 0 (`sampling.sample` with t_start = t0). The output is realistic (a sample of the model) and keeps what the
noise at t0 did not drown: the guide's coarse layout survives a moderate t0, its details do not. Small t0: faithful
to the guide, unrealistic; large t0: realistic, unfaithful; t0 = T forgets the guide.

    x_t0 = sqrt(alpha_bar_t0) y + sqrt(1 - alpha_bar_t0) eps      (SDEdit's Algorithm 1 with the VP SDE)
    x0   = reverse process from x_t0 at step t0                    (any registered sampler, any number of steps)

`stroke_painting` makes a guide of the kind SDEdit edits: the image averaged over blocks and rounded to a few grey
levels, the flat patches of colour a person paints.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_data, check_int, check_timestep
from ..forward import q_sample
from ..nets.protocol import EpsModel
from ..sampling import sample
from ..schedules import NoiseSchedule, check_schedule

__all__ = ["sdedit", "stroke_painting"]


def sdedit(eps_model: EpsModel, schedule: NoiseSchedule, guide: Tensor, t0: int, *, sampler: str = "ddpm",
           num_steps: int | None = None, noise: Tensor | None = None, generator: torch.Generator | None = None,
           progress: bool = False, **options: Any) -> Tensor:
    """Edit `guide` into a sample of the model: noise it to step t0, then denoise from t0.

    guide: (B, ...) in the data's range, e.g. (B, C, H, W) in [-1, 1]. t0: the training step to noise to, an int in
    1..T (t0 = T forgets the guide). sampler, num_steps, options: `sampling.sample`'s (num_steps steps picked in
    1..t0). noise: the eps of q(x_t0 | guide), (B, ...), drawn with generator when None. generator: draws that eps,
    then the sampler's noise. Returns x0, guide's shape.
    """
    check_schedule(schedule)
    check_data("guide", guide)
    check_int("t0", t0)
    check_timestep(t0, schedule.T, low=1)
    # SDEdit, Algorithm 1, line 2 (a given eps draws nothing; the generator is then the sampler's alone)
    x_t0 = q_sample(schedule, guide, t0, noise=noise, generator=None if noise is not None else generator)
    return sample(eps_model, schedule, guide.shape, sampler=sampler, num_steps=num_steps, x_T=x_t0, t_start=t0,
                  generator=generator, progress=progress, **options)  # lines 3-6: the reverse process from t0


def stroke_painting(x0: Tensor, *, block: int = 2, levels: int = 3) -> Tensor:
    """A painted version of x0: the mean of each block x block patch, rounded to `levels` grey levels evenly spaced
    in [-1, 1].

    x0: (B, C, H, W) in [-1, 1], block dividing H and W. levels: >= 2. Returns a tensor of x0's shape."""
    check_data("x0", x0)
    if x0.dim() != 4:
        raise ValueError(f"x0 must be an image batch (B, C, H, W), got shape {tuple(x0.shape)}")
    check_int("block", block)
    check_int("levels", levels, low=2)
    H, W = x0.shape[-2:]
    if H % block or W % block:
        raise ValueError(f"block must divide the images' height and width {H}x{W}, got {block}")
    coarse = F.avg_pool2d(x0, block)
    steps = levels - 1
    painted = torch.round((coarse.clamp(-1, 1) + 1) / 2 * steps) / steps * 2 - 1
    return F.interpolate(painted, scale_factor=block, mode="nearest")
