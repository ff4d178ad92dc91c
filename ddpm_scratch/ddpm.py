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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .forward import make_noise
from .losses import EpsModel, l_simple
from .schedules import NoiseSchedule, broadcast, timesteps

__all__ = ["train_step", "p_mean", "p_sample_step", "ddpm_reverse", "ddpm_sample", "ddpm_trajectory"]


def train_step(eps_model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: NoiseSchedule, x0: Tensor,
               generator: torch.Generator | None = None, weights: Tensor | None = None,
               max_grad_norm: float | None = None, scaler: torch.amp.GradScaler | None = None,
               autocast_dtype: torch.dtype | None = None) -> Tensor:
    """One iteration of Algorithm 1 on the batch x0 (B, ...). Returns the loss (detached scalar).

    scaler / autocast_dtype switch on mixed precision (GPU); both default to plain float32.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x0.device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        loss = l_simple(eps_model, schedule, x0, generator=generator, weights=weights)  # lines 2-4
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(eps_model.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)  # line 5
        scaler.update()
    else:
        optimizer.step()
    return loss.detach()


def p_mean(schedule: NoiseSchedule, eps: Tensor, x_t: Tensor, t: int | Tensor) -> Tensor:
    """mu_theta(x_t, t) = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps)  (Algorithm 2, line 4).

    eps, x_t: (B, ...).  t: int or (B,) in 1..T.
    """
    t = timesteps(t, schedule.T, low=1, batch=x_t.shape[0])
    alpha = broadcast(schedule.alphas, t, x_t)
    beta = broadcast(schedule.betas, t, x_t)
    alpha_bar = broadcast(schedule.alpha_bars, t, x_t)
    return (x_t - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()


def p_sample_step(schedule: NoiseSchedule, eps: Tensor, x_t: Tensor, t: int | Tensor, variance: str | Tensor = "beta",
                  noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One ancestral step x_t -> x_{t-1} given the predicted noise eps = eps_theta(x_t, t).

    eps, x_t: (B, ...).  t: int or (B,) in 1..T.  variance: "beta" (sigma_t^2 = beta_t), "posterior"
    (beta_tilde_t) or a (T+1,) tensor of sigma_t^2.  noise: z (B, ...), drawn when None; rows with t = 1 get
    no noise (line 3, as in Ho et al.'s Algorithm 2: the last step returns the mean).
    """
    if eps.shape != x_t.shape:
        raise ValueError(f"eps and x_t must have the same shape, got {tuple(eps.shape)} and {tuple(x_t.shape)}")
    t = timesteps(t, schedule.T, low=1, batch=x_t.shape[0], device=x_t.device)
    sigma = broadcast(schedule.reverse_variances(variance), t, x_t).sqrt()
    z = make_noise(x_t, noise, generator)
    noise_on = broadcast((torch.arange(schedule.T + 1) > 1).double(), t, x_t)  # line 3: z = 0 at t = 1
    return p_mean(schedule, eps, x_t, t) + noise_on * sigma * z  # line 4


@torch.no_grad()
def ddpm_reverse(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, variance: str | Tensor = "beta",
                 generator: torch.Generator | None = None, progress: bool = False) -> Iterator[tuple[int, Tensor]]:
    """Run Algorithm 2 from x_T, yielding (t - 1, x_{t-1}) after every step, ending with (0, x0).

    x_T: (B, ...) on the model's device.
    """
    from tqdm.auto import tqdm

    x = x_T
    for t in tqdm(range(schedule.T, 0, -1), disable=not progress, desc="sampling", leave=False):  # line 2
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = eps_model(x, t_batch)
        x = p_sample_step(schedule, eps, x, t_batch, variance=variance, generator=generator)
        yield t - 1, x


def _start(shape: Sequence[int], x_T: Tensor | None, device: torch.device | str | None, dtype: torch.dtype,
           generator: torch.Generator | None) -> Tensor:
    """x_T ~ N(0, I) of the given shape (Algorithm 2, line 1), or the caller's x_T after checking its shape."""
    if len(shape) < 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f"shape must be (B, ...) with positive sizes, got {tuple(shape)}")
    if x_T is None:
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
    return x_T


def ddpm_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int],
                generator: torch.Generator | None = None, variance: str | Tensor = "beta",
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """Ancestral sampling (Algorithm 2). Returns x0 of the given shape (B, ...).

    x_T: start from this noise instead of drawing it (shape must equal `shape`).
    """
    x_T = _start(shape, x_T, device, dtype, generator)
    x_t = x_T
    for _, x_t in ddpm_reverse(eps_model, schedule, x_T, variance, generator, progress):  # noqa: B007
        pass
    return x_t  # the last step returns x_0


def ddpm_trajectory(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], save_at: Sequence[int],
                    generator: torch.Generator | None = None, variance: str | Tensor = "beta",
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                    x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """Ancestral sampling that keeps x_t at the requested steps.

    save_at: steps in 0..T (T keeps x_T).  Returns (len(save_at), B, ...) in the order of save_at.
    x_T: start from this noise instead of drawing it (shape must equal `shape`).
    """
    wanted = [int(s) for s in save_at]
    if not wanted or min(wanted) < 0 or max(wanted) > schedule.T:
        raise ValueError(f"save_at must be a non-empty list of steps in 0..T={schedule.T}, got {list(save_at)}")
    x_T = _start(shape, x_T, device, dtype, generator)
    kept = {schedule.T: x_T}
    for t, x_t in ddpm_reverse(eps_model, schedule, x_T, variance, generator, progress):
        if t in wanted:
            kept[t] = x_t
    return torch.stack([kept[s] for s in wanted])
