"""Pictures: sample grids, reverse-process strips and animations, loss curves.

Images are (B, C, H, W) tensors in [-1, 1]; every function returns or writes a picture and nothing else.
Figures are built with matplotlib's object API (no pyplot), so importing this module changes no global state.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

__all__ = ["to_uint8", "image_grid", "image_table", "save_grid", "save_gif", "save_strip", "save_scatter", "plot_loss",
           "read_loss_log", "save_figure"]


def to_uint8(x: Tensor) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (B, H, W, C) uint8 in 0..255 (values outside [-1, 1] are clipped)."""
    if x.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(x.shape)}")
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def image_grid(x: Tensor, nrow: int | None = None, pad: int = 1, scale: int = 1) -> np.ndarray:
    """Tile images into one picture: (B, C, H, W) in [-1, 1] -> (rows*(H+pad)+pad, ..., C) uint8.

    nrow: images per row (default: a square-ish grid).  scale: nearest-neighbour upscaling factor.
    """
    images = to_uint8(x)
    B, H, W, C = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(B)))
    rows = int(np.ceil(B / nrow))
    grid = np.full((rows * (H + pad) + pad, nrow * (W + pad) + pad, C), 255, dtype=np.uint8)
    for i in range(B):
        r, c = divmod(i, nrow)
        grid[pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = images[i]
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def image_table(ax, images: Tensor, col_labels: Sequence[str], row_labels: Sequence[str] | None = None) -> None:
    """Draw images (R, C, channels, H, W) in [-1, 1] as an R x C table on a matplotlib Axes, columns labelled
    on top (e.g. t) and rows on the left. One imshow for the whole table, so it draws fast in notebooks."""
    if images.dim() != 5:
        raise ValueError(f"images must have shape (R, C, channels, H, W), got {tuple(images.shape)}")
    R, C, _, H, W = images.shape
    if len(col_labels) != C or (row_labels is not None and len(row_labels) != R):
        raise ValueError(f"col_labels needs {C} entries and row_labels {R} (or None)")
    grid = image_grid(images.reshape(R * C, *images.shape[2:]), nrow=C)
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([1 + (W + 1) * j + (W - 1) / 2 for j in range(C)], list(col_labels), fontsize=8)
    ax.set_yticks([1 + (H + 1) * i + (H - 1) / 2 for i in range(R)], list(row_labels or [""] * R), fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)


def _pil(grid: np.ndarray) -> Image.Image:
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)


def save_grid(x: Tensor, path: str | Path, nrow: int | None = None, scale: int = 4) -> Path:
    """Write a grid of images (B, C, H, W) in [-1, 1] as a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pil(image_grid(x, nrow=nrow, scale=scale)).save(path)
    return path


def save_gif(frames: Tensor, path: str | Path, nrow: int | None = None, scale: int = 4,
             duration_ms: int = 80, hold_last_ms: int = 1500) -> Path:
    """Animate a trajectory: frames (K, B, C, H, W), one grid per frame, the last frame held longer."""
    if frames.dim() != 5:
        raise ValueError(f"frames must have shape (K, B, C, H, W), got {tuple(frames.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures = [_pil(image_grid(f, nrow=nrow, scale=scale)).convert("P") for f in frames]
    durations = [duration_ms] * (len(pictures) - 1) + [hold_last_ms]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return path


def save_strip(frames: Tensor, steps: Sequence[int], path: str | Path, title: str | None = None) -> Path:
    """The reverse process as a strip: frames (K, B, C, H, W) at the given steps; one row per sample."""
    K, B = frames.shape[:2]
    if len(steps) != K:
        raise ValueError(f"steps must have one entry per frame ({K}), got {len(steps)}")
    fig = Figure(figsize=(1.1 * K, 1.1 * B + 0.4))
    axes = fig.subplots(B, K, squeeze=False)
    images = [to_uint8(f) for f in frames]
    for k in range(K):
        for b in range(B):
            ax = axes[b, k]
            img = images[k][b]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, k].set_title(f"t={steps[k]}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG (creating its folder), cropped to what is drawn. Returns the path.

    Works for pyplot figures too (lessons save with it, then show the same figure).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def read_loss_log(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the trainer's CSV loss log (columns step, loss, ...) -> (steps, losses)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["step"]) for r in rows]), np.array([float(r["loss"]) for r in rows])


def plot_loss(steps: np.ndarray, losses: np.ndarray, path: str | Path, smooth: int = 20) -> Path:
    """Loss curve (log scale) with a moving average over `smooth` logged points."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(steps, losses, color="0.75", lw=0.8, label="logged")
    if len(losses) >= smooth > 1:
        avg = np.convolve(losses, np.ones(smooth) / smooth, mode="valid")
        ax.plot(steps[smooth - 1:], avg, color="C0", lw=1.5, label=f"moving average ({smooth})")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(r"$L_{simple}$")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_scatter(points: Tensor, path: str | Path, reference: Tensor | None = None, title: str | None = None) -> Path:
    """Scatter plot of 2-D points (N, 2), optionally over reference points (M, 2) in grey."""
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {tuple(points.shape)}")
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    if reference is not None:
        ax.scatter(*reference.detach().cpu().T, s=2, color="0.7", alpha=0.5, label="data")
    ax.scatter(*points.detach().cpu().T, s=2, color="C0", alpha=0.6, label="samples")
    ax.set_aspect("equal")
    if reference is not None:
        ax.legend(markerscale=4)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
