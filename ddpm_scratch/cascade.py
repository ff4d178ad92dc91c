"""Lecture 5: cascaded generation with noise conditioning augmentation (Ho et al. 2021, "Cascaded diffusion models
for high fidelity image generation", CDM; Saharia et al. 2022, Imagen, Sec. 2.4).

A cascade samples a low-resolution image z with a base model, then the full image x with a super-resolution (SR)
model conditioned on z: p(x) = integral of p(x | z) p(z) dz. Both stages are ordinary diffusion models, each with
its own schedule; the SR model sees z upsampled to x's size and concatenated to x_t as channels (CDM Sec. 2, SR3).

    z = downsample(x0, size)          how the training pairs are made: area average (each z pixel the mean of a block)
    upsample(z, size)                 how the SR network sees z: bilinear, to x's height and width

The train/test mismatch: the SR model is trained on z made from real images, but in the cascade it gets the base
model's samples, with their artefacts. Noise conditioning augmentation removes the mismatch: in training z is
corrupted at a random level s (drawn uniformly in [0, max_aug_level], one per example) and s is given to the network
as a second input; in the cascade the base sample is corrupted at a chosen s, which is passed too. The corruption
hides the details where real and generated z differ, and the network, told s, learns to fill them in. The best s is
found after training by a sweep (CDM's post-training search; `benchmarks/cascade_digits.py` measures it).

    augment(z, aug_level, kind="noise")   sqrt(1 - s^2) z + s eps: variance-preserving Gaussian noise of std s (CDM
                                          Sec. 3.2's non-truncated augmentation, Imagen's aug_level)
    augment(z, aug_level, kind="blur")    a Gaussian blur of std s * BLUR_MAX_SIGMA pixels of z (CDM Sec. 3.1)
    augment(z, aug_level, kind="none")    z itself, whatever s: the cascade without augmentation

Shapes: x0 (B, C, H, W) in [-1, 1]; z (B, C, h, w) with h, w dividing H, W (the SR stage's samples are square,
H = W); aug_level a float or a (B,) tensor in [0, 1]. The SR network is called
network(cat([x_t, upsample(z_aug)], 1), t, y, aug_level) (`nets.UNet` with in_channels=2C, out_channels=C,
aug_level_conditioning=True; y None for an unconditional one). It predicts eps: `machinery.train` refuses a
super-resolution run with another prediction, since the x0 -> eps adapter would read the concatenated input as x_t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_choice, check_images, check_int, check_noise_source, check_number
from .forward import make_noise
from .losses import l_simple
from .nets.protocol import EpsModel, ImageConditioned
from .sampling import sample
from .schedules import NoiseSchedule

__all__ = ["AUGMENTATIONS", "BLUR_MAX_SIGMA", "downsample", "upsample", "augment", "super_resolution_loss",
           "SuperResolution", "super_resolve", "cascade_sample"]

AUGMENTATIONS = ("noise", "blur", "none")
BLUR_MAX_SIGMA = 1.0  # the blur's std, in pixels of z, at aug_level 1 (z is 4x4 for the digits' cascade)
_BLUR_RADIUS = 2  # taps -2..2: beyond 2 sigma = 2 pixels the Gaussian's weight is under 14% of the centre's



def downsample(x0: Tensor, size: int) -> Tensor:
    """The low-resolution image z of x0: each of its size x size pixels the mean of a block of x0's.

    x0: (B, C, H, W) with size dividing H and W. Returns (B, C, size, size)."""
    check_images("x0", x0)
    check_int("size", size)
    H, W = x0.shape[-2:]
    if H % size or W % size:
        raise ValueError(f"size must divide x0's height and width {H}x{W}, got {size}")
    return F.avg_pool2d(x0, kernel_size=(H // size, W // size))


def upsample(z: Tensor, size: int) -> Tensor:
    """z (B, C, h, w) resized to (B, C, size, size) by bilinear interpolation: the SR network's view of z."""
    check_images("z", z)
    check_int("size", size)
    return F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False)


def _aug_levels(aug_level: float | Tensor, z: Tensor) -> Tensor:
    """aug_level as a (B,) tensor on z's device and dtype, checked to lie in [0, 1]."""
    if isinstance(aug_level, Tensor):
        if not aug_level.is_floating_point() or aug_level.dim() > 1 or (
                aug_level.dim() == 1 and aug_level.shape[0] != z.shape[0]):
            raise ValueError(f"aug_level must be a float or a ({z.shape[0]},) float tensor, got {aug_level.dtype} "
                             f"{tuple(aug_level.shape)}")
        if aug_level.device.type == "cpu" and not bool(((aug_level >= 0) & (aug_level <= 1)).all()):
            raise ValueError("aug_level must lie in [0, 1]")
        return aug_level.to(z.device, z.dtype).expand(z.shape[0])
    check_number("aug_level", aug_level, 0, 1)
    return torch.full((z.shape[0],), float(aug_level), device=z.device, dtype=z.dtype)


def _gaussian_blur(z: Tensor, sigma: Tensor) -> Tensor:
    """z (B, C, h, w) blurred by a separable Gaussian of std sigma (B,) pixels, one per image (reflected edges);
    sigma 0 leaves the image unchanged."""
    h, w = z.shape[-2:]
    if min(h, w) <= _BLUR_RADIUS:
        raise ValueError(f"blur needs images larger than {_BLUR_RADIUS}x{_BLUR_RADIUS}, got {h}x{w}")
    wide = torch.promote_types(z.dtype, torch.float32)  # the weights in float32 at least: 1e-6**2 underflows fp16
    taps = torch.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, device=z.device, dtype=wide)
    logits = -taps**2 / (2 * sigma.to(wide).clamp_min(1e-6)[:, None] ** 2)  # (B, 5); sigma -> 0: the centre only
    kernel = torch.softmax(logits, dim=1).to(z.dtype)[:, None, None, None, :]  # (B, 1, 1, 1, 5), rows sum to 1
    padded = F.pad(z, (_BLUR_RADIUS,) * 4, mode="reflect")
    rows = sum(kernel[..., k] * padded[:, :, :, k:k + w] for k in range(len(taps)))  # along the width
    return sum(kernel[..., k] * rows[:, :, k:k + h, :] for k in range(len(taps)))  # then along the height


def augment(z: Tensor, aug_level: float | Tensor, *, kind: str = "noise", noise: Tensor | None = None,
            generator: torch.Generator | None = None) -> Tensor:
    """Corrupt the low-resolution input z at level s = aug_level (module docstring).

    z: (B, C, h, w). aug_level: a float or (B,) in [0, 1]. kind: "noise", "blur" or "none". noise: the eps of
    kind="noise", (B, C, h, w), drawn with generator when None (give one or the other, not both).
    Returns a tensor shaped like z."""
    check_images("z", z)
    check_choice("kind", kind, AUGMENTATIONS)
    check_noise_source(noise, generator)
    s = _aug_levels(aug_level, z)[:, None, None, None]
    if kind == "none":
        return z
    if kind == "blur":
        return _gaussian_blur(z, s.flatten() * BLUR_MAX_SIGMA)
    eps = make_noise(z, noise, generator)
    return (1 - s**2).sqrt() * z + s * eps


def super_resolution_loss(network: Callable[..., Tensor], schedule: NoiseSchedule, x0: Tensor, *, low_size: int,
                          kind: str = "noise", max_aug_level: float = 0.5, y: Tensor | None = None,
                          prediction: str = "eps", generator: torch.Generator | None = None) -> Tensor:
    """L_simple of the SR stage with noise conditioning augmentation: z = downsample(x0, low_size), s ~ U(0,
    max_aug_level) per example (0 for kind="none"), and the network regresses on x0's noise (or `prediction`) given
    x_t and upsample(augment(z, s)) as channels, and s.

    network(x_in, t, y, aug_level): x_in (B, 2C, H, W). y: labels passed as they are (None: unconditional).
    generator: draws s, the augmentation's noise, t and eps. Returns a scalar that carries gradients."""
    check_images("x0", x0)
    if x0.shape[-1] != x0.shape[-2]:
        raise ValueError(f"x0 must hold square images, got {tuple(x0.shape[-2:])}")
    check_choice("kind", kind, AUGMENTATIONS)
    check_number("max_aug_level", max_aug_level, 0, 1)
    z = downsample(x0, low_size)
    s = torch.rand(x0.shape[0], device=x0.device, generator=generator, dtype=x0.dtype) * max_aug_level
    if kind == "none":
        s = torch.zeros_like(s)
    cond = upsample(augment(z, s, kind=kind, generator=generator), x0.shape[-1])
    return l_simple(lambda x_t, t: network(torch.cat([x_t, cond], dim=1), t, y, s), schedule, x0,
                    generator=generator, prediction=prediction)


class SuperResolution(ImageConditioned):
    """The SR stage as an eps-model for every sampler: forward(x_t, t) = network(cat([x_t, upsample(z)]), t, y,
    aug_level), with z already corrupted at aug_level (`augment`) and bound with it.

    network: the SR network adapted to eps (`forward.as_eps_model`, as `machinery.train.load_model` gives it).
    z: (B, C, h, w), one per row of the batches it will be called with; size: x's height and width.
    y: the labels of a class-conditional SR network (None: unconditional)."""

    def __init__(self, network: Callable[..., Tensor], z: Tensor, *, size: int, aug_level: float | Tensor,
                 y: Tensor | None = None) -> None:
        check_images("z", z)
        super().__init__(network, upsample(z, size), y, _aug_levels(aug_level, z))


def super_resolve(sr_network: Callable[..., Tensor], sr_schedule: NoiseSchedule, z: Tensor, *, size: int,
                  aug_level: float | Tensor, kind: str = "noise", generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, **sample_options: Any) -> Tensor:
    """The SR stage: x ~ p(x | z), with z corrupted at aug_level as the SR model was trained to expect (`augment`,
    kind) and the level passed to the network (`SuperResolution`).

    sr_network: the SR network adapted to eps. z: (B, C, h, w); size: x's height and width (square images).
    sample_options: `sampling.sample`'s (sampler, num_steps, ...). generator: draws the augmentation, then the
    sampler's noise. Returns (B, C, size, size)."""
    z_aug = augment(z, aug_level, kind=kind, generator=generator)
    return sample(SuperResolution(sr_network, z_aug, size=size, aug_level=aug_level), sr_schedule,
                  (z.shape[0], z.shape[1], size, size), generator=generator, device=device, **sample_options)


def cascade_sample(base_model: EpsModel, base_schedule: NoiseSchedule, sr_network: Callable[..., Tensor],
                   sr_schedule: NoiseSchedule, shape: tuple[int, ...], *, low_size: int, aug_level: float,
                   kind: str = "noise", generator: torch.Generator | None = None,
                   device: torch.device | str | None = None, **sample_options: Any) -> tuple[Tensor, Tensor]:
    """Run the cascade: z ~ base model, then x ~ SR model given augment(z, aug_level) and aug_level
    (`super_resolve`).

    base_model: eps-model of (B, C, low_size, low_size) images. sr_network: the SR network adapted to eps.
    shape: x's (B, C, H, W), square. sample_options: `sampling.sample`'s (sampler, num_steps, ...), used by both
    stages. generator: draws the base stage's noise, then the augmentation's and the SR stage's. Returns (z, x0): the
    base samples (B, C, low_size, low_size) as they came (before the augmentation) and the final samples."""
    if len(shape) != 4:
        raise ValueError(f"shape must be (B, C, H, W), got {tuple(shape)}")
    check_int("low_size", low_size)
    check_choice("kind", kind, AUGMENTATIONS)
    check_number("aug_level", aug_level, 0, 1)
    B, C, H, W = shape
    if H != W or H % low_size:
        raise ValueError(f"shape's height and width must be equal and divisible by low_size={low_size}, got {H}x{W}")
    z = sample(base_model, base_schedule, (B, C, low_size, low_size), generator=generator, device=device,
               **sample_options)
    return z, super_resolve(sr_network, sr_schedule, z, size=H, aug_level=aug_level, kind=kind, generator=generator,
                            device=device, **sample_options)
