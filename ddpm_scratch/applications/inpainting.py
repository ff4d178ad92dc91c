"""Inpainting with an unconditional model: replacement, and RePaint's resampling (Lugmayr et al. 2022, "RePaint:
inpainting using denoising diffusion probabilistic models"; replacement is Song et al. 2021's imputation).

The known pixels (mask m = True) of an image are given; the rest must be filled so that the whole is a sample of
p(x0 | known). Replacement runs the reverse process on the whole image and, after every step, puts back the known
pixels noised to the step the state is at:

    x_{t-1} <- m * x_{t-1}^known + (1 - m) * x_{t-1},     x_{t-1}^known ~ q(x_{t-1} | x0 = known)   (RePaint's eq. 8)

so the final step (t = 0) returns the known pixels exactly. The replacement is a hook (`sampling.sample(hook=)`).
It is biased: the unknown pixels are denoised from a state whose known part was drawn independently of them, so
the model's step cannot see how the two fit together, and the result leans towards the unconditional law (on a
correlated Gaussian, the unknown coordinate's mean falls short of E[x_unknown | known]; benchmarks/applications.py).

RePaint's resampling harmonises them: every `jump_length` steps, the state goes back up `jump_length` steps by the
forward kernel (x_{t+1} ~ q(x_{t+1} | x_t), `forward.q_step`) and comes down again, `jumps` times, so that each
descent starts from a state where known and unknown parts were already denoised together. It costs
(1 + jumps) times the network calls of the segments it repeats; this loop over the per-step functions is the one
place in lecture 7 that cannot be a hook, because it climbs back up the chain.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ..checks import check_data, check_int
from ..ddpm import p_sample_step
from ..forward import q_sample, q_step
from ..nets.protocol import EpsModel
from ..reverse_steps import Hook, check_run, eps_at, initial_noise
from ..sampling import sample
from ..schedules import NoiseSchedule, check_schedule, respaced
from .masks import check_mask

__all__ = ["replacement_hook", "repaint_indices", "inpaint"]


def replacement_hook(schedule: NoiseSchedule, known: Tensor, mask: Tensor, *,
                     generator: torch.Generator | None = None) -> Hook:
    """hook(x, t) -> x for `sampling.sample`: the known pixels (mask True) of x replaced by q_sample(known, t) drawn
    afresh (RePaint's eq. 8), and by `known` itself at t = 0. schedule: the training schedule (t is a training
    step)."""

    def hook(x: Tensor, t: int) -> Tensor:
        known_t = known if t == 0 else q_sample(schedule, known, t, generator=generator)
        return torch.where(mask, known_t, x)

    return hook


def repaint_indices(T: int, jumps: int, jump_length: int) -> list[int]:
    """The indices RePaint's state visits, from T down to 0: on the way down, at each index i that is a positive
    multiple of jump_length with i + jump_length <= T, it goes back up to i + jump_length and down again, `jumps`
    times (RePaint's jump schedule, with r = jumps + 1 descents of each segment). Consecutive entries differ by 1."""
    check_int("T", T)
    check_int("jumps", jumps, low=0)
    check_int("jump_length", jump_length)
    jump_from = set(range(jump_length, T - jump_length + 1, jump_length))
    path = [T]
    for i in range(T - 1, -1, -1):
        path.append(i)
        if i in jump_from:
            for _ in range(jumps):  # up to i + jump_length by the forward kernel, then down to i again
                path += list(range(i + 1, i + jump_length + 1)) + list(range(i + jump_length - 1, i - 1, -1))
    return path


@torch.no_grad()
def inpaint(eps_model: EpsModel, schedule: NoiseSchedule, known: Tensor, mask: Tensor, *, jumps: int = 0,
            jump_length: int = 10, num_steps: int | None = None, generator: torch.Generator | None = None,
            progress: bool = False) -> Tensor:
    """Fill the unknown pixels of `known` with an unconditional eps-model (Algorithm 2 with replacement).

    known: (B, ...) the images (their values where mask is False are ignored). mask: bool, True where known, of
    known's shape or broadcasting to it ((B, 1, H, W) for images). jumps: 0 for plain replacement (any registered
    sampler's hook would do; this runs Algorithm 2), > 0 for RePaint's resampling: every jump_length steps go back up
    jump_length steps and down again, `jumps` times. num_steps: run on the schedule respaced to this many steps
    (`schedules.respaced`, uniform), jump_length counting those steps. generator: draws x_T, every step's noise and
    the known pixels' noising. Returns x0, known's shape; its known pixels equal `known` exactly.
    """
    check_schedule(schedule)
    check_data("known", known)
    check_mask(mask, known)
    check_int("jumps", jumps, low=0)
    check_int("jump_length", jump_length)
    hook = replacement_hook(schedule, known, mask.to(known.device), generator=generator)
    steps = respaced(schedule, num_steps, "uniform")
    x_T = hook(initial_noise(known.shape, device=known.device, dtype=known.dtype, generator=generator), schedule.T)
    if jumps == 0:
        return sample(eps_model, schedule, known.shape, sampler="ddpm", num_steps=num_steps, spacing="uniform",
                      x_T=x_T, hook=hook, generator=generator, progress=progress)
    if jump_length >= steps.T:
        raise ValueError(f"jump_length must be smaller than the number of steps {steps.T}, got {jump_length}")
    check_run(eps_model, steps, x_T, hook)
    timesteps = steps.timesteps.tolist()  # the training step each index stands for
    steps = steps.to(known.device)
    path = repaint_indices(steps.T, jumps, jump_length)
    from tqdm.auto import tqdm

    x = x_T
    for i, j in tqdm(list(itertools.pairwise(path)), disable=not progress, desc="RePaint", leave=False):
        if j < i:  # down: Algorithm 2's step, then the known pixels put back at the step x is now at
            x = p_sample_step(steps, x, i, eps=eps_at(eps_model, steps, x, i), generator=generator)
            x = hook(x, timesteps[j])
        else:  # up: the forward kernel q(x_j | x_i), one (respaced) step
            x = q_step(steps, x, j, generator=generator)
    return x
