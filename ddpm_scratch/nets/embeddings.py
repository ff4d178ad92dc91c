"""Time embeddings: turn the scalar t into a vector the network can condition on.

Both embeddings feed t to sines and cosines of many frequencies, so that nearby steps get similar vectors
and distant steps get nearly orthogonal ones.

    sinusoidal (Transformer, Vaswani et al. 2017; DDPM, Ho et al. 2020):
        f_k = max_period^(-k / half),  k = 0..half-1
        emb(tau) = [sin(tau f_0), ..., sin(tau f_{half-1}), cos(tau f_0), ..., cos(tau f_{half-1})]
    random Fourier features (Tancik et al. 2020; Song et al. 2021):
        w_k ~ N(0, scale^2) drawn once and frozen
        emb(tau) = [sin(2 pi w tau / 1000), cos(2 pi w tau / 1000)]

Time scale, shared by every network in `nets`:
    integer t (a step 1..T of a discrete schedule) is used as is:      tau = t
    float t   (continuous time in [0, 1], VP/VE SDEs)  is stretched:    tau = 1000 t
so t = 1000 steps and t = 1.0 land on the same tau, and a net trained on T = 1000 steps sees the same
range in both views. The sinusoidal frequencies are made for tau in 0..~1000; the random Fourier features
work on tau / 1000 in [0, 1], the range their scale refers to. Schedules with fewer steps simply use part of
that range (T = 100: tau in 1..100), which both embeddings still resolve step by step.

`LabelEmbedding` does the same for class labels, with one extra "no label" row for classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_time, check_timestep

__all__ = ["TIME_SCALE", "as_time", "time_to_tau", "SinusoidalEmbedding", "RandomFourierFeatures",
           "make_time_embedding", "LabelEmbedding"]

TIME_SCALE = 1000.0
"""tau = TIME_SCALE * t for continuous (float) t; integer steps are used as tau directly."""


def as_time(t: int | float | Tensor, batch: int | None = None, device: torch.device | str | None = None) -> Tensor:
    """Check a network's time argument: integer steps >= 0 or float times in [0, 1], as a () or (B,) tensor.

    batch: when given, a scalar t is expanded to (batch,) and a (B,) t must have B == batch.
    device: where t goes (the network's device; t is an index, not data). Values are checked where that costs no
    device synchronisation (Python numbers and CPU tensors), see `checks`.
    """
    if isinstance(t, float) or (isinstance(t, Tensor) and t.is_floating_point()):
        return check_time(t, batch=batch, device=device)
    return check_timestep(t, None, low=0, batch=batch, device=device)


def time_to_tau(t: int | float | Tensor) -> Tensor:
    """tau, the float time the embeddings read: integer steps as they are, float times times TIME_SCALE."""
    t = as_time(t)
    return t.float() * TIME_SCALE if t.is_floating_point() else t.float()


def _check_dim(dim: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int >= 2 (half sines, half cosines), got {dim!r}")


class SinusoidalEmbedding(nn.Module):
    """Transformer/DDPM sinusoidal embedding. t: (B,) steps (long) or continuous time (float) -> (B, dim)."""

    def __init__(self, dim: int, max_period: float = 10000.0) -> None:
        super().__init__()
        _check_dim(dim)
        if not isinstance(max_period, (int, float)) or isinstance(max_period, bool) or max_period <= 1:
            raise ValueError(f"max_period must be a number > 1, got {max_period!r}")
        self.dim, self.max_period = dim, float(max_period)
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(max_period) * torch.arange(half) / half), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        tau = time_to_tau(t).to(self.freqs.device)
        if tau.dim() != 1:
            raise ValueError(f"t must have shape (B,), got {tuple(tau.shape)}")
        angles = tau[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class RandomFourierFeatures(nn.Module):
    """Gaussian random Fourier features with fixed frequencies w ~ N(0, scale^2). t: (B,) -> (B, dim).

    The frequencies are a buffer (saved with the model, never trained) drawn from a private generator seeded
    with `seed`, so two models built with the same arguments embed time identically.
    """

    def __init__(self, dim: int, scale: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        _check_dim(dim)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
            raise ValueError(f"scale must be a number > 0, got {scale!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.dim, self.scale = dim, float(scale)
        w = torch.randn(dim // 2, generator=torch.Generator().manual_seed(seed)) * scale
        self.register_buffer("w", w)

    def forward(self, t: Tensor) -> Tensor:
        tau = time_to_tau(t).to(self.w.device)
        if tau.dim() != 1:
            raise ValueError(f"t must have shape (B,), got {tuple(tau.shape)}")
        angles = 2 * math.pi * (tau[:, None] / TIME_SCALE) * self.w[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)


def make_time_embedding(kind: str, dim: int) -> nn.Module:
    """The embedding named by a network's `time_embedding` argument: "sinusoidal" or "fourier"."""
    check_choice("time_embedding", kind, ("sinusoidal", "fourier"))
    return SinusoidalEmbedding(dim) if kind == "sinusoidal" else RandomFourierFeatures(dim)


class LabelEmbedding(nn.Module):
    """Class labels -> (B, dim), with one extra learned row for "no label" (classifier-free guidance).

    y: (B,) long in 0..num_classes, where y == num_classes is the null token; y = None means all null.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: Tensor | None, batch: int) -> Tensor:
        device = self.table.weight.device
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"y must be an integer tensor of labels, got {getattr(y, 'dtype', type(y).__name__)}")
        if y.shape != (batch,):
            raise ValueError(f"y must have shape ({batch},) to match the batch, got {tuple(y.shape)}")
        if batch and y.device.type == "cpu" and (int(y.min()) < 0 or int(y.max()) > self.num_classes):  # no GPU sync
            raise ValueError(f"y must lie in 0..num_classes={self.num_classes} (the last is the null token), "
                             f"got values in {int(y.min())}..{int(y.max())}")
        return self.table(y.to(device))
