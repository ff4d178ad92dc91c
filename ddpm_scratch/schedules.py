"""Lecture 1: noise schedules.

The forward process adds Gaussian noise in T small steps with variances beta_1..beta_T:

    q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
    alpha_t     = 1 - beta_t
    alpha_bar_t = prod_{s=1..t} alpha_s           (the diffusion kernel's signal coefficient)
    SNR(t)      = alpha_bar_t / (1 - alpha_bar_t)

Index convention (the whole course relies on it): every array has length T+1 and index t is the
lecture's t. Index 0 is the data itself: betas[0] = 0, alphas[0] = 1, alpha_bars[0] = 1.
Arrays are float64; `broadcast` casts them to the data's dtype and device where they are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["NoiseSchedule", "broadcast", "timesteps"]


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete variance schedule beta_1..beta_T and everything derived from it.

    Build one with `NoiseSchedule.linear`, `.cosine` or `.from_betas`; the constructor takes the
    full length-(T+1) array with betas[0] = 0.

    Fields (all float64, shape (T+1,)):
        betas:  beta_t, betas[0] = 0
        alphas: alpha_t = 1 - beta_t
        alpha_bars: alpha_bar_t = prod_{s<=t} alpha_s, alpha_bars[0] = 1
        posterior_variances: beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t,
            the variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7); 0 at t = 0 and t = 1.
    """

    betas: Tensor
    name: str = "custom"
    alphas: Tensor = field(init=False, repr=False)
    alpha_bars: Tensor = field(init=False, repr=False)
    posterior_variances: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = self.betas
        if not isinstance(betas, Tensor):
            raise TypeError(f"betas must be a torch.Tensor, got {type(betas).__name__}")
        if betas.dim() != 1 or betas.numel() < 2:
            raise ValueError(f"betas must be 1-D of length T+1 >= 2 (index 0 is the data), "
                             f"got shape {tuple(betas.shape)}")
        betas = betas.detach().to(device="cpu", dtype=torch.float64)
        if betas[0] != 0:
            raise ValueError(f"betas[0] must be 0 (index 0 is the data), got {betas[0].item()}")
        inner = betas[1:]
        if not torch.isfinite(inner).all() or (inner <= 0).any() or (inner >= 1).any():
            bad = inner[~((inner > 0) & (inner < 1))]
            raise ValueError(f"betas[1..T] must lie in the open interval (0, 1), got values such as {bad[:3].tolist()}")
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        # beta_tilde_t for t >= 1 (DDPM eq. 7); alpha_bar_{t-1} is alpha_bars[t-1].
        posterior = torch.zeros_like(betas)
        posterior[1:] = (1.0 - alpha_bars[:-1]) / (1.0 - alpha_bars[1:]) * betas[1:]
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "alpha_bars", alpha_bars)
        object.__setattr__(self, "posterior_variances", posterior)

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """DDPM's schedule: beta_t linear from beta_start (t=1) to beta_end (t=T)."""
        _check_T(T)
        if not (0 < beta_start < 1 and 0 < beta_end < 1):
            raise ValueError(f"beta_start and beta_end must lie in (0, 1), got {beta_start}, {beta_end}")
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        return cls(torch.cat([torch.zeros(1, dtype=torch.float64), betas]), name=f"linear(T={T})")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal (2021): alpha_bar_t = f(t)/f(0), f(t) = cos^2(pi/2 (t/T + s)/(1 + s)).

        beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, clipped at max_beta so the last steps stay finite;
        alpha_bars are then recomputed from the clipped betas, so the fields stay consistent.
        """
        _check_T(T)
        if s < 0:
            raise ValueError(f"s must be >= 0, got {s}")
        if not 0 < max_beta < 1:
            raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
        steps = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min=0.0, max=max_beta)
        betas = betas.clamp(min=1e-12)  # keep beta_1 > 0 when s = 0
        return cls(torch.cat([torch.zeros(1, dtype=torch.float64), betas]), name=f"cosine(T={T})")

    @classmethod
    def from_betas(cls, betas_1_to_T: Tensor | list[float]) -> NoiseSchedule:
        """A schedule from beta_1..beta_T (length T); betas[0] = 0 is prepended."""
        betas = torch.as_tensor(betas_1_to_T, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(f"betas_1_to_T must be 1-D with at least one entry, got shape {tuple(betas.shape)}")
        return cls(torch.cat([torch.zeros(1, dtype=torch.float64), betas]))

    # ---------------------------------------------------------------------------------- queries
    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.numel() - 1

    def snr(self, t: int | Tensor) -> Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t), float64, for t in 0..T (SNR(0) = inf)."""
        t = timesteps(t, self.T, low=0)
        alpha_bar = self.alpha_bars[t]
        return alpha_bar / (1.0 - alpha_bar)

    def reverse_variances(self, kind: str | Tensor = "beta") -> Tensor:
        """sigma_t^2 of the reverse process p(x_{t-1} | x_t), shape (T+1,), float64.

        kind may also be a (T+1,) tensor of sigma_t^2 > 0 (t >= 1) chosen by the caller, e.g. the exact
        reverse variances of Gaussian data; it is checked and returned in float64.

        kind="beta":      sigma_t^2 = beta_t (upper bound of the true reverse variance, DDPM sec. 3.2)
        kind="posterior": sigma_t^2 = beta_tilde_t (lower bound); at t = 1, where beta_tilde_1 = 0,
                          beta_tilde_2 is used so the decoder's likelihood stays finite.
        """
        if isinstance(kind, Tensor):
            if kind.shape != (self.T + 1,):
                raise ValueError(f"variance must have shape (T+1,) = ({self.T + 1},), got {tuple(kind.shape)}")
            sigma2 = kind.detach().to(device="cpu", dtype=torch.float64)
            if not torch.isfinite(sigma2).all() or (sigma2[1:] <= 0).any():
                raise ValueError("variance[1..T] must be finite and > 0")
            return sigma2
        if kind == "beta":
            return self.betas
        if kind == "posterior":
            sigma2 = self.posterior_variances.clone()
            if self.T >= 2:
                sigma2[1] = sigma2[2]
            else:
                sigma2[1] = self.betas[1]
            return sigma2
        raise ValueError(f"variance must be 'beta', 'posterior' or a (T+1,) tensor, got {kind!r}")

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name}, alpha_bar_T={self.alpha_bars[-1].item():.3g})"


def _check_T(T: int) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")


def timesteps(t: int | Tensor, T: int, *, low: int = 1, batch: int | None = None,
              device: torch.device | str | None = None) -> Tensor:
    """Check timesteps and return them as a LongTensor.

    t: an int or an integer tensor of shape () or (B,), with every entry in low..T.
    batch: when given, an int or 0-d t is expanded to (batch,) and a (B,) t must have B == batch.
    Returns shape (batch,) when batch is given, else t's own shape.
    """
    if isinstance(t, bool):
        raise TypeError("t must be an int or an integer tensor, got bool")
    if isinstance(t, int):
        t = torch.tensor(t, dtype=torch.long)
    elif isinstance(t, Tensor):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must be an integer tensor, got dtype {t.dtype}")
        if t.dim() > 1:
            raise ValueError(f"t must have shape () or (B,), got {tuple(t.shape)}")
        t = t.long()
    else:
        raise TypeError(f"t must be an int or an integer tensor, got {type(t).__name__}")
    if t.numel() > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < low or hi > T:
            raise ValueError(f"t must lie in {low}..T={T}, got values in {lo}..{hi}")
    if batch is not None:
        if t.dim() == 0:
            t = t.expand(batch)
        elif t.shape[0] != batch:
            raise ValueError(f"t has {t.shape[0]} entries but the batch has {batch}")
    if device is not None:
        t = t.to(device)
    return t


def broadcast(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """Per-timestep coefficients values[t], shaped to multiply a batch.

    values: (T+1,) schedule array (float64, CPU).  t: (B,) LongTensor.  like: (B, ...) data tensor.
    Returns (B, 1, ..., 1) with like.dim() dimensions, in like's dtype and on like's device.
    """
    coef = values[t.cpu()].to(device=like.device, dtype=like.dtype)
    return coef.reshape(-1, *([1] * (like.dim() - 1)))
