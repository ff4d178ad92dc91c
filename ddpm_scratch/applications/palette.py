"""Palette: one conditional diffusion model for several image-to-image tasks, chosen by its input (Saharia et al.
2022, "Palette: Image-to-image diffusion models"), with GLIDE's inpainting fine-tune as its inpainting case (Nichol
et al. 2022, Sec. 4.1: the model sees the masked image and the mask as extra input channels).

Each task is a corruption of a clean image x0 into a source image and a mask m (1 where a pixel of the source is
x0's own pixel, known exactly; 0 elsewhere). The model learns p(x0 | source, m): its network reads them as channels
beside x_t, eps_theta(cat([x_t, source, m]), t), and is trained with L_simple on random (x0, task) pairs:

    L = E_{x0, task, t, eps} || eps - eps_theta(cat([x_t, source, m]), t) ||^2,   x_t = sqrt(alpha_bar_t) x0
                                                                                      + sqrt(1 - alpha_bar_t) eps
The tasks (no task label: the network tells them apart by the mask and the source):

    inpaint   m: one random box unknown (`masks.random_box_masks`); source = m * x0 (0 in the box)
    uncrop    m: one half known, the side drawn per image (`masks.half_mask`); source = m * x0
    denoise   m = 0 everywhere (no pixel is known exactly); source = x0 + sigma eps', sigma = DENOISE_SIGMA

The all-zero mask marks denoising: the inpainting masks always hold known pixels, so no other task has it, and
"0 = not known exactly" keeps one meaning of m for every task (a replacement method would keep m = 1 pixels as
they are, which for a noisy source would be wrong). Sampling is any sampler on the conditioned eps-model
`Palette(network, source, m)` (`translate`). The model is only conditioned: its samples match the source on the
known pixels approximately, not exactly (inpainting by replacement, `applications.inpainting`, keeps them exactly).

Shapes: x0, source (B, C, H, W) in [-1, 1] (the denoising source is not clipped); m (B, 1, H, W) float 0/1 (a bool
mask, True = known, is accepted where a mask is taken). The network: `nets.UNet(in_channels=2C + 1,
out_channels=C)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import check_choice, check_images
from ..losses import l_simple
from ..nets.protocol import ImageConditioned
from ..sampling import sample
from ..schedules import NoiseSchedule
from .masks import HALVES, check_mask, half_mask, random_box_masks

__all__ = ["TASKS", "DENOISE_SIGMA", "corrupt", "Palette", "palette_loss", "translate", "conditional_inpaint"]

TASKS = ("inpaint", "uncrop", "denoise")
DENOISE_SIGMA = 0.5  # std of the Gaussian noise of the denoising task, in units of the [-1, 1] range (PSNR 12 dB)



def _cpu_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """The masks are drawn on the CPU (`masks.random_box_masks`): a generator on another device seeds a CPU one."""
    if generator is None or generator.device.type == "cpu":
        return generator
    seed = torch.randint(2**62, (1,), generator=generator, device=generator.device)
    return torch.Generator().manual_seed(int(seed.item()))


def corrupt(x0: Tensor, task: str, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The source image and mask of one task for every image of x0 (module docstring).

    x0: (B, C, H, W) in [-1, 1]. task: "inpaint", "uncrop" or "denoise". generator: draws the masks (a CUDA one
    seeds a CPU generator for them) and the denoising noise (on x0's device, so it must live there).
    Returns (source (B, C, H, W), mask (B, 1, H, W) float, 1 = known), on x0's device and in its dtype."""
    check_images("x0", x0)
    check_choice("task", task, TASKS)
    B, _, H, W = x0.shape
    if task == "denoise":
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return x0 + DENOISE_SIGMA * noise, x0.new_zeros(B, 1, H, W)
    if task == "inpaint":
        known = random_box_masks(B, H, W, generator=_cpu_generator(generator))
    else:
        side = torch.randint(len(HALVES), (B,), generator=_cpu_generator(generator))
        known = torch.stack([half_mask(B, H, W, s) for s in HALVES])[side, torch.arange(B)]
    mask = known.to(x0.device, x0.dtype)
    return x0 * mask, mask


def _as_float_mask(mask: object, source: Tensor) -> Tensor:
    """A (B, 1, H, W) mask of source's batch and size, bool or float 0/1, as source's dtype."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a (B, 1, H, W) tensor, bool or float 0/1, got {type(mask).__name__}")
    B, _, H, W = source.shape
    if tuple(mask.shape) != (B, 1, H, W):
        raise ValueError(f"mask must have shape {(B, 1, H, W)} (1 = known), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"mask must be bool or float 0/1, got {mask.dtype}")
    return mask.to(source.device, source.dtype)


class Palette(ImageConditioned):
    """The conditional network as an eps-model for every sampler, source and mask bound:
    forward(x_t, t) = network(cat([x_t, source, mask], dim=1), t).

    network: eps_theta with 2C + 1 input channels and C outputs. source: (B, C, H, W); mask: (B, 1, H, W), bool or
    float 0/1, 1 = known. The rows of the batches it is called with are the rows of source."""

    def __init__(self, network: Callable[..., Tensor], source: Tensor, mask: Tensor) -> None:
        check_images("source", source)
        super().__init__(network, torch.cat([source, _as_float_mask(mask, source)], dim=1))


def palette_loss(network: Callable[..., Tensor], schedule: NoiseSchedule, x0: Tensor, *,
                 tasks: Sequence[str] = TASKS, generator: torch.Generator | None = None) -> Tensor:
    """L_simple of the network conditioned on a corrupted x0 (module docstring), each example's task drawn uniformly
    from `tasks`.

    network(cat([x_t, source, mask]), t). x0: (B, C, H, W). generator (on x0's device) draws, in this order: the
    task of each example, each task's corruption of the whole batch (`corrupt`, in the order of `tasks`), then
    L_simple's t and eps. Returns a scalar that carries gradients to the network's parameters."""
    check_images("x0", x0)
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty sequence of names from {TASKS}, got {tasks!r}")
    for task in tasks:
        check_choice("tasks", task, TASKS)
    choice = torch.randint(len(tasks), (x0.shape[0],), generator=generator, device=x0.device)
    sources, masks = zip(*(corrupt(x0, task, generator=generator) for task in tasks), strict=True)
    rows = torch.arange(x0.shape[0], device=x0.device)
    source, mask = torch.stack(sources)[choice, rows], torch.stack(masks)[choice, rows]
    return l_simple(Palette(network, source, mask), schedule, x0, generator=generator)


def translate(network: Callable[..., Tensor], schedule: NoiseSchedule, source: Tensor, mask: Tensor, *,
              device: torch.device | str | None = None, **sample_options: Any) -> Tensor:
    """x0 ~ p(x0 | source, mask): `sampling.sample` on `Palette(network, source, mask)`.

    source: (B, C, H, W); mask: (B, 1, H, W), bool or float 0/1 (1 = known; all 0 for denoising). device: where
    x_T is drawn (default: source's). sample_options: `sample`'s (sampler, num_steps, generator, ...).
    Returns (B, C, H, W); the known pixels are close to the source's, not equal."""
    check_images("source", source)
    model = Palette(network, source, mask)
    return sample(model, schedule, tuple(source.shape), device=source.device if device is None else device,
                  **sample_options)


def conditional_inpaint(network: Callable[..., Tensor], schedule: NoiseSchedule, known: Tensor, mask: Tensor,
                        **sample_options: Any) -> Tensor:
    """Inpaint with the conditional model: `translate` with source = the known pixels of `known`, 0 elsewhere.

    known: (B, C, H, W), read where mask is True; mask: (B, 1, H, W) bool, True = known (`applications.inpainting`'s
    convention). sample_options: `sample`'s. Returns the samples as they come (the known region is not put back)."""
    check_images("known", known)
    check_mask(mask, known)
    if tuple(mask.shape) != (known.shape[0], 1, *known.shape[2:]):
        raise ValueError(f"mask must have shape {(known.shape[0], 1, *known.shape[2:])}, got {tuple(mask.shape)}")
    mask = mask.to(known.device)
    return translate(network, schedule, torch.where(mask, known, torch.zeros_like(known)), mask, **sample_options)
