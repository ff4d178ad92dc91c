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
fewer, bigger steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .checks import check_choice, check_data
from .forward import PREDICTIONS, make_noise, predict_eps
from .losses import l_simple
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, check_schedule, lookup, per_example

__all__ = ["train_step", "p_mean", "p_sample_step", "ddpm_reverse", "ddpm_sample", "ddpm_trajectory",
           "initial_noise"]


def train_step(eps_model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: NoiseSchedule, x0: Tensor, *,
               generator: torch.Generator | None = None, weights: Tensor | None = None,
               prediction: str = "eps") -> Tensor:
    """One iteration of Algorithm 1 on the batch x0 (B, ...). Returns the loss (detached scalar).

    The trainer (`machinery.train`) adds mixed precision and gradient clipping around the same loss.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = l_simple(eps_model, schedule, x0, generator=generator, weights=weights, prediction=prediction)  # lines 2-4
    loss.backward()
    optimizer.step()  # line 5
    return loss.detach()


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
def ddpm_reverse(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, variance: str | Tensor = "beta",
                 prediction: str = "eps", generator: torch.Generator | None = None,
                 progress: bool = False) -> Iterator[tuple[int, Tensor]]:
    """Run Algorithm 2 from x_T, yielding (t - 1, x_{t-1}) after every step, ending with (0, x0).

    x_T: (B, ...) on the model's device. The arguments are trusted (ddpm_sample checks them).
    """
    from tqdm.auto import tqdm

    schedule = schedule.to(x_T.device)  # once, so that no step copies the schedule to the device
    if isinstance(variance, Tensor):  # a caller's sigma_t^2: moved to the device once, like the schedule
        variance = schedule.reverse_variances(variance).to(x_T.device, schedule.betas.dtype)
    x = x_T
    steps = tqdm(range(schedule.T, 0, -1), disable=not progress, desc="sampling", leave=False, miniters=1)
    for t in steps:  # line 2
        # t is a Python int: every row is at the same step, so each coefficient is one number, not a gather
        eps = predict_eps(eps_model, schedule, x, t, prediction=prediction)
        x = p_sample_step(schedule, x, t, eps=eps, variance=variance, generator=generator)
        yield t - 1, x


def initial_noise(shape: Sequence[int], *, x_T: Tensor | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
    """x_T ~ N(0, I) of the given shape (Algorithm 2, line 1), or the caller's x_T after checking its shape."""
    if len(shape) < 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f"shape must be (B, ...) with positive sizes, got {tuple(shape)}")
    if x_T is None:
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    check_data("x_T", x_T)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
    return x_T


def _check_options(schedule: NoiseSchedule, variance: str | Tensor, prediction: str) -> None:
    check_schedule(schedule)
    schedule.reverse_variances(variance)  # raises for an unknown name or a bad tensor
    check_choice("prediction", prediction, PREDICTIONS)


def ddpm_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *,
                generator: torch.Generator | None = None, variance: str | Tensor = "beta", prediction: str = "eps",
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """Ancestral sampling (Algorithm 2). Returns x0 of the given shape (B, ...).

    x_T: start from this noise instead of drawing it (shape must equal `shape`).
    prediction: what eps_model outputs ("eps", "x0" or "v"); it is turned into eps (`forward.predict_eps`).
    """
    _check_options(schedule, variance, prediction)
    x_T = initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)
    x_t = x_T
    for _, x_t in ddpm_reverse(eps_model, schedule, x_T, variance=variance, prediction=prediction,  # noqa: B007
                               generator=generator, progress=progress):
        pass
    return x_t  # the last step returns x_0


def ddpm_trajectory(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], save_at: Sequence[int], *,
                    generator: torch.Generator | None = None, variance: str | Tensor = "beta",
                    prediction: str = "eps", device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32, x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """Ancestral sampling that keeps x_t at the requested steps.

    save_at: steps in 0..T (T keeps x_T).  Returns (len(save_at), B, ...) in the order of save_at.
    x_T: start from this noise instead of drawing it (shape must equal `shape`).
    """
    wanted = [int(s) for s in save_at]
    if not wanted or min(wanted) < 0 or max(wanted) > schedule.T:
        raise ValueError(f"save_at must be a non-empty list of steps in 0..T={schedule.T}, got {list(save_at)}")
    _check_options(schedule, variance, prediction)
    x_T = initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)
    kept = {schedule.T: x_T}
    for t, x_t in ddpm_reverse(eps_model, schedule, x_T, variance=variance, prediction=prediction,
                               generator=generator, progress=progress):
        if t in wanted:
            kept[t] = x_t
    return torch.stack([kept[s] for s in wanted])
