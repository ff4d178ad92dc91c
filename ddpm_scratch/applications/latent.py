"""Latent diffusion (Rombach et al. 2022, "High-resolution image synthesis with latent diffusion models", LDM).

A diffusion model on pixels spends most of its network evaluations on detail the eye hardly sees. LDM splits
generation into two stages, trained one after the other:

1. A KL-regularised autoencoder (`nets.Autoencoder`): q(z | x0) = N(mean(x0), diag(exp(log_var(x0)))) and a decoder
   D(z) ~ x0, trained on

       L_AE = E_x0 [ sum_i |x0_i - D(z)_i|  +  beta * KL(q(z | x0) || N(0, I)) ],     z ~ q(z | x0)

   with the KL in closed form per latent value, KL = 1/2 (mean^2 + sigma^2 - 1 - log sigma^2), summed. LDM's
   reconstruction term is L1 plus a perceptual loss (LPIPS) and a patch discriminator, and its KL weight is tiny
   (beta = 1e-6, `kl_weight` of configs/autoencoder/autoencoder_kl_*.yaml, both terms summed per example as in
   `LPIPSWithDiscriminator`): the KL only keeps the latent from drifting to huge values, it does not make the latent
   N(0, I). Here: L1 (`reconstruction="l1"`, LDM's pixel term) or squared error ("l2"), no perceptual loss or
   discriminator (8x8 digits have no texture to make sharp).
2. An ordinary diffusion model (L_simple, any eps-network) on the rescaled latents z' = scale * z, then decoded:

       z'_T ~ N(0, I)  ->  any sampler  ->  z'_0  ->  x0 = D(z'_0 / scale)

The scale factor (LDM Sec. 4.3.2 and App. D.1, `scale_by_std`): with a weak KL the latents' spread is whatever the
autoencoder made it, and the noise schedule's signal-to-noise ratio alpha_bar_t Var(z) / (1 - alpha_bar_t) would be
off by Var(z). scale = 1 / std(z) over the training latents (all values of a batch of draws z ~ q(z | x0)) puts the
latents at unit variance, where the schedule was designed (SD v1's fixed 0.18215 came from the same rule).
Multiply after encoding, divide before decoding.

Why faster: the latent has fewer values than the image (here (2, 4, 4) = 32 for 64 pixels), so the network of
stage 2 is smaller and every one of its calls is cheaper; the decoder runs once, after the last step.

    kl_standard_normal(mean, log_var)              KL(N(mean, sigma^2) || N(0, I)) per example, (B,)
    autoencoder_loss(autoencoder, x0, ...)         L_AE of a batch (scalar), the objective of stage 1
    latent_scale(autoencoder, x0, ...)             1 / std of the latents of x0 (LDM's rescaling)
    LatentSpace(autoencoder, scale)                .encode(x0) -> z' (scaled), .decode(z') -> x0
    latent_loss(eps_model, schedule, space, x0)    L_simple on z' ~ q(z | x0) rescaled, the objective of stage 2
    FlatEps(network)                               a vector eps-network (nets.MLPEps) on (B, c, h, w) latents
    sample_latent(eps_model, schedule, space, n)   z' with `sampling.sample` on the latent shape, decoded

Shapes: x0 (B, C, H, W) in [-1, 1]; z and z' (B, c, h, w) with h = H / f, w = W / f (f = autoencoder.factor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..checks import check_choice, check_data, check_int, check_number
from ..losses import l_simple
from ..nets.protocol import EpsModel
from ..sampling import sample
from ..schedules import NoiseSchedule

__all__ = ["RECONSTRUCTIONS", "LatentAutoencoder", "kl_standard_normal", "autoencoder_loss", "latent_scale",
           "LatentSpace", "latent_loss", "FlatEps", "sample_latent"]

RECONSTRUCTIONS = ("l1", "l2")


class LatentAutoencoder(Protocol):
    """What the helpers need of an autoencoder (`nets.Autoencoder` is one): encode(x0) -> (mean, log_var) of
    q(z | x0), decode(z) -> x0_hat, and latent_shape (c, h, w)."""

    latent_shape: tuple[int, int, int]

    def encode(self, x0: Tensor) -> tuple[Tensor, Tensor]: ...

    def decode(self, z: Tensor) -> Tensor: ...


def kl_standard_normal(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) of diagonal Gaussians, summed over all but the first dimension.

    mean, log_var: (B, ...) of the same shape. Returns (B,) in nats: sum 1/2 (mean^2 + sigma^2 - 1 - log sigma^2).
    """
    check_data("mean", mean)
    if log_var.shape != mean.shape:
        raise ValueError(f"log_var must have mean's shape {tuple(mean.shape)}, got {tuple(log_var.shape)}")
    return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).flatten(1).sum(dim=1)


def _draw(mean: Tensor, log_var: Tensor, generator: torch.Generator | None) -> Tensor:
    """z = mean + sigma * eps, eps ~ N(0, I): one draw of q(z | x0) (the reparameterisation trick)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * log_var) * eps


def autoencoder_loss(autoencoder: LatentAutoencoder, x0: Tensor, *, beta: float = 1e-6,
                     reconstruction: str = "l1", generator: torch.Generator | None = None) -> Tensor:
    """L_AE of a batch: mean over examples of sum_i rec(x0_i, D(z)_i) + beta * KL(q(z | x0) || N(0, I)).

    x0: (B, C, H, W) in [-1, 1].  beta >= 0: the KL weight (LDM's kl_weight, 1e-6 for its image autoencoders).
    reconstruction: "l1" (|x0 - D(z)|, LDM's pixel term) or "l2" ((x0 - D(z))^2).  generator: draws z ~ q(z | x0).
    Returns a scalar that carries gradients to the autoencoder's parameters.
    """
    check_data("x0", x0)
    check_number("beta", beta, low=0)
    check_choice("reconstruction", reconstruction, RECONSTRUCTIONS)
    mean, log_var = autoencoder.encode(x0)
    error = autoencoder.decode(_draw(mean, log_var, generator)) - x0
    rec = (error.abs() if reconstruction == "l1" else error.pow(2)).flatten(1).sum(dim=1)
    return (rec + beta * kl_standard_normal(mean, log_var)).mean()


@torch.no_grad()
def latent_scale(autoencoder: LatentAutoencoder, x0: Tensor, *, generator: torch.Generator | None = None) -> float:
    """LDM's scale factor: 1 / std of every value of z ~ q(z | x0) over the batch x0 (B, C, H, W), B * c*h*w >= 2.
    A float; the rescaled latents scale * z have unit variance over x0."""
    check_data("x0", x0)
    z = _draw(*autoencoder.encode(x0), generator)
    if z.numel() < 2:
        raise ValueError("latent_scale needs at least two latent values to measure a spread; give more images")
    std = z.flatten().std().item()
    if not std > 0:
        raise ValueError(f"the latents of x0 have spread {std}: the autoencoder maps them all to one point")
    return 1.0 / std


@dataclass(frozen=True)
class LatentSpace:
    """An autoencoder with its scale factor: the space stage 2 diffuses in.

    encode(x0) -> z' = scale * z, z ~ q(z | x0) (or its mean, with sample=False);  decode(z') = D(z' / scale).
    shape: (c, h, w) of one latent.
    """

    autoencoder: LatentAutoencoder
    scale: float

    def __post_init__(self) -> None:
        check_number("scale", self.scale, low=0, low_open=True)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.autoencoder.latent_shape)  # type: ignore[return-value]

    def encode(self, x0: Tensor, *, sample: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """x0: (B, C, H, W) in [-1, 1] -> z' (B, c, h, w): scale * a draw of q(z | x0), or scale * its mean."""
        mean, log_var = self.autoencoder.encode(check_data("x0", x0))
        return self.scale * (_draw(mean, log_var, generator) if sample else mean)

    def decode(self, z: Tensor) -> Tensor:
        """z': (B, c, h, w) rescaled latents -> x0 (B, C, H, W), about [-1, 1] (not clamped)."""
        return self.autoencoder.decode(check_data("z", z) / self.scale)


def latent_loss(eps_model: EpsModel, schedule: NoiseSchedule, space: LatentSpace, x0: Tensor, *,
                generator: torch.Generator | None = None) -> Tensor:
    """Stage 2's objective: L_simple (`losses.l_simple`) on z' = space.encode(x0), a fresh draw of q(z | x0) rescaled
    (LDM trains on draws, `get_first_stage_encoding`). x0: (B, C, H, W). The autoencoder gets no gradient."""
    with torch.no_grad():
        z = space.encode(x0, generator=generator)
    return l_simple(eps_model, schedule, z, generator=generator)


class FlatEps(nn.Module):
    """A vector eps-network (`nets.MLPEps(dim=c*h*w)`) as an eps-model on latents: forward(z_t (B, c, h, w), t) =
    network(z_t flattened to (B, c*h*w), t) reshaped back. The alternative to a `nets.UNet(in_channels=c)` on a
    latent of a few dozen values: several times faster per call, but on the digits' (2, 4, 4) latent its samples
    were further from the data than the U-Net's (`machinery.latent_runs` has the figures)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.network(x_t.flatten(1), t).view_as(x_t)


@torch.no_grad()
def sample_latent(eps_model: EpsModel, schedule: NoiseSchedule, space: LatentSpace, num_samples: int, *,
                  sampler: str = "dpmpp_2m", num_steps: int | None = 20, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, clamp: bool = True, **options: Any) -> Tensor:
    """Draw num_samples images: z'_0 with `sampling.sample` on the latent shape (B, c, h, w), then space.decode.

    eps_model: trained on the rescaled latents of `space` with `schedule`.  sampler, num_steps, options: as in
    `sampling.sample` (any registered sampler).  generator: draws z'_T and the sampler's noise; on `device`.
    clamp: clamp the images to [-1, 1] (the decoder's output is not bounded). Returns (num_samples, C, H, W).
    """
    check_int("num_samples", num_samples)
    z = sample(eps_model, schedule, (num_samples, *space.shape), sampler=sampler, num_steps=num_steps,
               generator=generator, device=device, **options)
    x0 = space.decode(z)
    return x0.clamp(-1, 1) if clamp else x0
