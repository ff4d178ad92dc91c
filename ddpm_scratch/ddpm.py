"""Lecture 2: DDPM training (Algorithm 1) and ancestral sampling (Algorithm 2), Ho et al. 2020.

Algorithm 1 (training)                          Algorithm 2 (sampling)
  1: repeat                                       1: x_T ~ N(0, I)
  2:   x0 ~ q(x0)                                 2: for t = T, ..., 1 do
  3:   t ~ Uniform({1, ..., T})                   3:   z ~ N(0, I) if t > 1, else z = 0
  4:   eps ~ N(0, I)                              4:   x_{t-1} = mu_theta(x_t, t) + sigma_t z
  5:   gradient step on ||eps - eps_theta(x_t, t)||^2   5: end for
  6: until converged                              6: return x0

with mu_theta(x_t, t) = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_theta(x_t, t)).
sigma_t^2 is beta_t or beta_tilde_t (`NoiseSchedule.reverse_variances`).

`p_mean` and `p_sample_step` are the formulas and trust their inputs; `ddpm_sample` checks them once and runs the
loop with no host synchronisation per step. On a respaced schedule (`NoiseSchedule.respace`) the same loop takes
fewer, bigger steps. Algorithm 1 is the trainer's loop (`machinery.train`) on the objective `losses.l_simple`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .forward import make_noise
from .nets.protocol import EpsModel
from .reverse_steps import Hook, after_step, check_run, eps_at, reverse_indices, training_steps
from .schedules import NoiseSchedule, lookup, per_example

__all__ = ["p_mean", "p_sample_step", "ddpm_sample"]


def p_mean(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor) -> Tensor:
    """mu_theta(x_t, t) = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps)  (Algorithm 2, line 4).

    x_t, eps: (B, ...).  t: int or (B,) in 1..T.
    """
    alpha, beta = lookup(schedule.alphas, t, x_t), lookup(schedule.betas, t, x_t)
    alpha_bar = lookup(schedule.alpha_bars, t, x_t)
    return (x_t - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()


def p_sample_step(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor,
                  variance: str | Tensor = "beta", noise: Tensor | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """One ancestral step x_t -> x_{t-1} = mu_theta(x_t, t) + sigma_t z, given eps = eps_theta(x_t, t).

    x_t, eps: (B, ...).  t: int or (B,) in 1..T.  variance: sigma_t^2 = "beta" (beta_t), "posterior"
    (beta_tilde_t) or a (T+1,) tensor of sigma_t^2 (used as given).  noise: z (B, ...), drawn when None (give
    noise or generator, not both); rows with t = 1 get no noise (line 3: the last step returns the mean).
    """
    sigma2 = variance if isinstance(variance, Tensor) else schedule.reverse_variances(variance)
    z = make_noise(x_t, noise, generator) * per_example(t > 1, x_t)  # line 3
    return p_mean(schedule, x_t, t, eps=eps) + lookup(sigma2, t, x_t).sqrt() * z  # line 4


@torch.no_grad()
def ddpm_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, variance: str | Tensor = "beta",
                generator: torch.Generator | None = None, hook: Hook | None = None, progress: bool = False) -> Tensor:
    """Ancestral sampling (Algorithm 2) from x_T over every index of `schedule`. Returns x0, x_T's shape (B, ...).

    The registered sampler "ddpm": `sampling.sample(eps_model, schedule, shape, sampler="ddpm", num_steps=...)`
    draws x_T and respaces the schedule; on a respaced schedule the same loop takes fewer, bigger steps.
    variance: sigma_t^2, "beta" | "posterior" | a (T+1,) tensor of this schedule's steps (`NoiseSchedule.
    reverse_variances`).  generator: draws z (on x_T's device).  hook(x, t) -> x after every step
    (`reverse_steps`).
    """
    check_run(eps_model, schedule, x_T, hook)
    sigma2 = schedule.reverse_variances(variance)  # raises for an unknown name or a bad tensor
    steps = training_steps(schedule)
    schedule = schedule.to(x_T.device)  # once, so that no step copies the schedule to the device
    if isinstance(variance, Tensor):  # a caller's sigma_t^2: moved to the device once, like the schedule
        variance = sigma2.to(x_T.device, schedule.betas.dtype)
    x = x_T  # line 1
    for t in reverse_indices(schedule, progress, "DDPM"):  # line 2
        # t is a Python int: every row is at the same step, so each coefficient is one number, not a gather
        eps = eps_at(eps_model, schedule, x, t)
        x = after_step(hook, p_sample_step(schedule, x, t, eps=eps, variance=variance, generator=generator),
                       steps[t - 1])  # lines 3-4
    return x  # line 6: the last step returned the mean, x0
