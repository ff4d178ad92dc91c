"""Masks of known pixels for inpainting and image-to-image tasks: True where the pixel is known.

A mask has shape (B, 1, H, W) and dtype bool and broadcasts over an image batch's channels (B, C, H, W). The lecture
writes m for it: an inpainted image is m * known + (1 - m) * generated.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_int

__all__ = ["centre_mask", "half_mask", "random_box_masks", "check_mask"]


def _check_size(B: int, H: int, W: int) -> None:
    for name, value in (("B", B), ("H", H), ("W", W)):
        check_int(name, value)


def centre_mask(B: int, H: int, W: int, size: int) -> Tensor:
    """Everything known but a centred size x size square. Returns (B, 1, H, W) bool."""
    _check_size(B, H, W)
    check_int("size", size)
    if size > min(H, W):
        raise ValueError(f"size must be at most the image's {min(H, W)}, got {size}")
    mask = torch.ones(B, 1, H, W, dtype=torch.bool)
    top, left = (H - size) // 2, (W - size) // 2
    mask[:, :, top:top + size, left:left + size] = False
    return mask


HALVES = ("left", "right", "top", "bottom")


def half_mask(B: int, H: int, W: int, known: str = "left") -> Tensor:
    """One half known (`known`: "left", "right", "top" or "bottom"), the other to generate: uncropping.
    Returns (B, 1, H, W) bool."""
    _check_size(B, H, W)
    if known not in HALVES:
        raise ValueError(f"known must be one of {', '.join(HALVES)}, got {known!r}")
    mask = torch.zeros(B, 1, H, W, dtype=torch.bool)
    if known == "left":
        mask[..., : W // 2] = True
    elif known == "right":
        mask[..., W // 2:] = True
    elif known == "top":
        mask[..., : H // 2, :] = True
    else:
        mask[..., H // 2:, :] = True
    return mask


def random_box_masks(B: int, H: int, W: int, *, min_size: int = 2, max_size: int | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
    """One unknown rectangle per image, its height and width uniform in min_size..max_size (default: half the
    image) and its position uniform where it fits; everything else known (GLIDE's and Palette's training masks).
    Returns (B, 1, H, W) bool, on the CPU (generator: a CPU generator or None)."""
    _check_size(B, H, W)
    max_size = max(min_size, min(H, W) // 2) if max_size is None else max_size
    check_int("min_size", min_size)
    check_int("max_size", max_size, low=min_size)
    if max_size > min(H, W):
        raise ValueError(f"max_size must be at most the image's {min(H, W)}, got {max_size}")
    u = torch.rand(B, 4, generator=generator, dtype=torch.float64)
    heights = min_size + (u[:, 0] * (max_size - min_size + 1)).long()
    widths = min_size + (u[:, 1] * (max_size - min_size + 1)).long()
    tops = (u[:, 2] * (H - heights + 1)).long()
    lefts = (u[:, 3] * (W - widths + 1)).long()
    rows, cols = torch.arange(H)[None, :, None], torch.arange(W)[None, None, :]
    inside = ((rows >= tops[:, None, None]) & (rows < (tops + heights)[:, None, None])
              & (cols >= lefts[:, None, None]) & (cols < (lefts + widths)[:, None, None]))
    return ~inside[:, None]


def check_mask(mask: object, like: Tensor) -> Tensor:
    """mask must be a bool tensor that broadcasts to like's shape without growing it ((B, 1, H, W) or like's
    own shape for an image batch). Returns it, unchanged."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = f"{mask.dtype} tensor" if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor, True where the pixel is known, got {got}")
    try:
        shape = torch.broadcast_shapes(mask.shape, like.shape)
    except RuntimeError:
        shape = None
    if shape != like.shape or mask.dim() != like.dim():
        raise ValueError(f"mask must have shape {tuple(like.shape)} or broadcast to it with size-1 dimensions (e.g. "
                         f"(B, 1, H, W) for images), got {tuple(mask.shape)}")
    return mask
