"""SR3: super-resolution by repeated refinement (Saharia et al. 2021, "Image super-resolution via iterative
refinement"): a diffusion model of p(x | z), z a low-resolution image, whose network reads z upsampled to x's size
as channels beside x_t (SR3 Sec. 2.4), trained with L_simple:

    E_{x0, t, eps} || eps - eps_theta(cat([x_t, upsample(z)]), t) ||^2,     z = downsample(x0)

This is the super-resolution stage of lecture 5's cascade, which the course already has and this module does not
repeat: `cascade.downsample` and `upsample` make z and the network's view of it, `super_resolution_loss` trains the
stage, `SuperResolution` binds z to the network and `super_resolve` samples x ~ p(x | z). On its own, given real
low-resolution images, it is SR3. Noise conditioning augmentation carries over: the stage is trained with z
corrupted at a level s it is told, and s = 0 asks for the plain SR3 model's output (the best s on real inputs is
measured, not assumed).

What SR3 measures, added here (Sec. 4.2, Table 2):

    psnr(x, reference)    10 log10(peak^2 / mean (x - reference)^2) per image, in dB; peak = 2, the range of
                          [-1, 1] images; it rewards the blurry mean over sharp samples, so SR3 reports it beside
                          sample quality (FD here)
    consistency(x, z)     mean (downsample(x, z's size) - z)^2 per image: does the output, averaged down as the
                          training pairs were made, give back its input?

Shapes: x, reference (B, C, H, W) in [-1, 1]; z (B, C, h, w) with h, w dividing H, W.
"""

from __future__ import annotations

from torch import Tensor

from ..cascade import downsample
from ..checks import check_images

__all__ = ["PEAK", "psnr", "consistency"]

PEAK = 2.0  # peak-to-peak range of [-1, 1] images: PSNR's signal



def psnr(x: Tensor, reference: Tensor) -> Tensor:
    """Peak signal-to-noise ratio of each image of x against its reference, in dB: 10 log10(PEAK^2 / MSE).

    x, reference: (B, C, H, W) in [-1, 1]. Returns (B,); inf for an image equal to its reference."""
    check_images("x", x)
    check_images("reference", reference)
    if x.shape != reference.shape:
        raise ValueError(f"x {tuple(x.shape)} and reference {tuple(reference.shape)} must have the same shape")
    mse = (x - reference).pow(2).flatten(1).mean(dim=1)
    return 10 * (PEAK**2 / mse).log10()  # mse = 0: inf dB


def consistency(x: Tensor, z: Tensor) -> Tensor:
    """The mean squared error between x averaged down to z's size (`cascade.downsample`) and z, per image.

    x: (B, C, H, W); z: (B, C, h, w), h = w dividing H and W. Returns (B,); 0 when every h x w block mean of x is
    z's pixel (x = z repeated over each block, or that plus any detail of zero block mean)."""
    check_images("x", x)
    check_images("z", z)
    if x.shape[:2] != z.shape[:2] or z.shape[-1] != z.shape[-2]:
        raise ValueError(f"z must be square and share x's batch and channels: x {tuple(x.shape)}, z {tuple(z.shape)}")
    return (downsample(x, z.shape[-1]) - z).pow(2).flatten(1).mean(dim=1)

