"""ILVR (Choi et al. 2021, "ILVR: conditioning method for denoising diffusion probabilistic models").

An unconditional model is steered towards a reference image y without training: after every reverse step the low
frequencies of the state are replaced by those of the reference noised to the same step,

    x_{t-1} <- x_{t-1} - phi_N(x_{t-1}) + phi_N(y_{t-1}),      y_{t-1} ~ q(y_{t-1} | y)     (ILVR's eq. 8)

where phi_N is a low-pass filter: down-sampling by a factor N and up-sampling back. The sample then shares the
reference's coarse structure (phi_N(x0) = phi_N(y) at the end) and the model invents the rest. N is the knob: a
small N keeps much of the reference (little freedom), a large N keeps only its overall layout.

Here phi_N is the mean over N x N blocks, repeated over each block: a projection (phi_N(phi_N(x)) = phi_N(x)), so
the final equality is exact up to rounding. ILVR's paper resizes with bicubic filters, which are only nearly
idempotent. `until` limits the conditioning to steps t >= until (the paper's conditioning range, for more freedom
in the details); then the final equality no longer holds.

The replacement is a hook (`sampling.sample(..., hook=)`), so ILVR runs on any registered sampler.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_data, check_int
from ..forward import q_sample
from ..nets.protocol import EpsModel
from ..reverse_steps import Hook
from ..sampling import sample
from ..schedules import NoiseSchedule, check_schedule

__all__ = ["low_pass", "ilvr_hook", "ilvr"]


def low_pass(x: Tensor, factor: int) -> Tensor:
    """phi_N(x): each factor x factor block of x replaced by its mean. x: (B, C, H, W), factor dividing H and W.
    Returns x's shape."""
    check_int("factor", factor)
    H, W = x.shape[-2:]
    if x.dim() != 4 or H % factor or W % factor:
        raise ValueError(f"factor must divide the images' height and width, got factor {factor} for x of shape "
                         f"{tuple(x.shape)} (an image batch (B, C, H, W))")
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")


def ilvr_hook(schedule: NoiseSchedule, reference: Tensor, factor: int, *, until: int = 0,
              generator: torch.Generator | None = None) -> Hook:
    """The hook(x, t) -> x of ILVR's eq. 8 for `sampling.sample`: at every step t >= until, x's low-pass component
    becomes that of q_sample(reference, t) (the reference itself at t = 0)."""

    def hook(x: Tensor, t: int) -> Tensor:
        if t < until:
            return x
        reference_t = reference if t == 0 else q_sample(schedule, reference, t, generator=generator)
        return x - low_pass(x, factor) + low_pass(reference_t, factor)

    return hook


def ilvr(eps_model: EpsModel, schedule: NoiseSchedule, reference: Tensor, factor: int, *, until: int = 0,
         sampler: str = "ddpm", num_steps: int | None = None, generator: torch.Generator | None = None,
         progress: bool = False, **options: Any) -> Tensor:
    """Sample an unconditional model with ILVR's low-pass guidance towards `reference`.

    reference: (B, C, H, W) in [-1, 1], one per sample. factor: N, dividing H and W. until: condition at the steps
    t >= until (0: every step, and then low_pass(x0, N) equals low_pass(reference, N)). sampler, num_steps,
    options: `sampling.sample`'s. generator: draws x_T, the sampler's noise and the reference's noising.
    Returns x0, reference's shape.
    """
    check_schedule(schedule)
    check_data("reference", reference)
    low_pass(reference, factor)  # checks factor against the images
    check_int("until", until, low=0)
    if until > schedule.T:
        raise ValueError(f"until must be in 0..T = 0..{schedule.T}, got {until}")
    hook = ilvr_hook(schedule, reference, factor, until=until, generator=generator)
    return sample(eps_model, schedule, reference.shape, sampler=sampler, num_steps=num_steps, hook=hook,
                  generator=generator, device=reference.device, dtype=reference.dtype, progress=progress, **options)
