"""Lecture 1: the forward diffusion process.

    one step     q(x_t | x_{t-1})   = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
    kernel       q(x_t | x_0)       = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    posterior    q(x_{t-1} | x_t, x_0) = N(mu_tilde_t(x_t, x_0), beta_tilde_t I)      (DDPM eq. 6-7)

The kernel is also a change of variables, x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.
Solving it for x0, eps or the score is the one place where the course converts between them.

The Fourier view: the FFT is linear, so F(x_t) = sqrt(alpha_bar_t) F(x0) + sqrt(1 - alpha_bar_t) F(eps).
White noise has the same power at every frequency, images have most power at low frequencies, so the
high frequencies fall below the noise first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .schedules import NoiseSchedule, broadcast, timesteps

__all__ = [
    "q_step", "q_sample", "q_posterior", "make_noise",
    "x0_from_eps", "eps_from_x0", "score_from_eps", "eps_from_score",
    "radial_power_spectrum", "frequency_snr",
]


def make_noise(like: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """eps ~ N(0, I) shaped like `like`, or the given `noise` after checking its shape.

    The generator must live on like's device (torch.Generator(device=...)).
    """
    if noise is not None:
        if noise.shape != like.shape:
            raise ValueError(f"noise must have the data's shape {tuple(like.shape)}, got {tuple(noise.shape)}")
        return noise.to(dtype=like.dtype)
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _check_data(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor of shape (B, ...), got {x.dtype} {tuple(x.shape)}")


def q_step(schedule: NoiseSchedule, x_prev: Tensor, t: int | Tensor, noise: Tensor | None = None,
           generator: torch.Generator | None = None) -> Tensor:
    """One forward step: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps.

    x_prev: (B, ...) sample of x_{t-1}.  t: int or (B,) in 1..T.  Returns x_t, same shape as x_prev.
    """
    _check_data("x_prev", x_prev)
    t = timesteps(t, schedule.T, low=1, batch=x_prev.shape[0])
    eps = make_noise(x_prev, noise, generator)
    beta = broadcast(schedule.betas, t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * eps


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: int | Tensor, noise: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
    """Sample the diffusion kernel: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

    x0: (B, ...) data.  t: int or (B,) in 0..T (t = 0 returns x0).  Returns x_t, same shape as x0.
    """
    _check_data("x0", x0)
    t = timesteps(t, schedule.T, low=0, batch=x0.shape[0])
    eps = make_noise(x0, noise, generator)
    alpha_bar = broadcast(schedule.alpha_bars, t, x0)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps


def q_posterior(schedule: NoiseSchedule, x0: Tensor, x_t: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7), for t in 1..T.

    x0, x_t: (B, ...).  Returns (mean (B, ...), variance (B, 1, ..., 1)); the variance is beta_tilde_t,
    the same for every coordinate (it is 0 at t = 1, where x_{t-1} = x0 is known).
    """
    _check_data("x0", x0)
    _check_data("x_t", x_t)
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 and x_t must have the same shape, got {tuple(x0.shape)} and {tuple(x_t.shape)}")
    t = timesteps(t, schedule.T, low=1, batch=x0.shape[0])
    beta = broadcast(schedule.betas, t, x0)
    alpha = broadcast(schedule.alphas, t, x0)
    alpha_bar = broadcast(schedule.alpha_bars, t, x0)
    alpha_bar_prev = broadcast(schedule.alpha_bars, t - 1, x0)
    # DDPM eq. 7: mu_tilde = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0
    #                      + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    mean = (alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)) * x0 \
        + (alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)) * x_t
    variance = broadcast(schedule.posterior_variances, t, x0)
    return mean, variance


# ---------------------------------------------------------------------------------- conversions
# x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, and the score of q(x_t | x0) is
# grad log q = -(x_t - sqrt(alpha_bar_t) x0) / (1 - alpha_bar_t) = -eps / sqrt(1 - alpha_bar_t).

def x0_from_eps(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), for t in 1..T. Shapes (B, ...)."""
    t = timesteps(t, schedule.T, low=1, batch=x_t.shape[0])
    alpha_bar = broadcast(schedule.alpha_bars, t, x_t)
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, x0: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t), for t in 1..T. Shapes (B, ...)."""
    t = timesteps(t, schedule.T, low=1, batch=x_t.shape[0])
    alpha_bar = broadcast(schedule.alpha_bars, t, x_t)
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def score_from_eps(schedule: NoiseSchedule, t: int | Tensor, eps: Tensor) -> Tensor:
    """score = -eps / sqrt(1 - alpha_bar_t), for t in 1..T. eps: (B, ...)."""
    t = timesteps(t, schedule.T, low=1, batch=eps.shape[0])
    return -eps / (1 - broadcast(schedule.alpha_bars, t, eps)).sqrt()


def eps_from_score(schedule: NoiseSchedule, t: int | Tensor, score: Tensor) -> Tensor:
    """eps = -sqrt(1 - alpha_bar_t) score, for t in 1..T. score: (B, ...)."""
    t = timesteps(t, schedule.T, low=1, batch=score.shape[0])
    return -(1 - broadcast(schedule.alpha_bars, t, score)).sqrt() * score


# ---------------------------------------------------------------------------------- Fourier view
def radial_power_spectrum(x: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectrum, averaged over batch and channels.

    x: (B, C, H, W). Uses the orthonormal 2-D FFT, so unit white noise has power 1 at every frequency.
    Returns (k, power): k (K,) integer radial frequency 0..K-1, power (K,) mean |F(x)|^2 on that ring.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    H, W = x.shape[-2:]
    power = torch.fft.fft2(x.double(), norm="ortho").abs().pow(2).mean(dim=(0, 1))  # (H, W)
    fy = torch.fft.fftfreq(H, d=1.0 / H).abs()
    fx = torch.fft.fftfreq(W, d=1.0 / W).abs()
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).round().long()
    K = int(radius.max()) + 1
    total = torch.zeros(K, dtype=torch.float64).index_add_(0, radius.flatten(), power.flatten().cpu())
    count = torch.zeros(K, dtype=torch.float64).index_add_(0, radius.flatten(), torch.ones(H * W, dtype=torch.float64))
    keep = count > 0
    return torch.arange(K)[keep], total[keep] / count[keep]


def frequency_snr(schedule: NoiseSchedule, x0: Tensor, t: int | Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
    """Signal-to-noise ratio of x_t per radial frequency: alpha_bar_t P_x0(k) / (1 - alpha_bar_t).

    Exact in expectation: the noise's power is 1 at every frequency (orthonormal FFT).
    x0: (B, C, H, W).  t: int or (N,) in 1..T.  Returns (k (K,), snr (N, K)) in float64.
    """
    k, power = radial_power_spectrum(x0)
    if not isinstance(t, (int, Tensor)):
        t = torch.as_tensor(list(t), dtype=torch.long)
    t = timesteps(t, schedule.T, low=1).reshape(-1)
    alpha_bar = schedule.alpha_bars[t][:, None]
    return k, alpha_bar * power[None, :] / (1 - alpha_bar)
