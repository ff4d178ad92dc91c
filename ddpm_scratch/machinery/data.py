"""Built-in datasets: toy 2-D distributions and scikit-learn's 8x8 digits, their registry, a mini-batch iterator.

`DATASETS` maps each name to a `Dataset`: one example's shape, its grey levels, its number of classes and its
default network, so the trainer, the command line and the pictures ask the registry instead of the name; a new
dataset (MNIST, a labelled mixture) is one entry (`register_dataset`).

Toy sets are drawn with torch from a `generator`, so a seeded generator gives the same points every time.
Each is shifted and scaled by fixed constants (measured once on 2e6 points) so that its coordinates have
mean about 0 and standard deviation about 1: the same network and schedule work for all of them.

Digits are 1797 grey-scale 8x8 images with integer pixels v in 0..16. We map v -> v / 8 - 1, so the images
live in [-1, 1] on DIGITS_LEVELS = 17 evenly spaced levels (the `num_bins` of the discretized decoder in
`losses`). The train/test split is fixed (stratified by label, seed 0): 1437 train, 360 test images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..cascade import downsample
from ..checks import check_int, register_once
from ..nets import MLPEps, UNet

__all__ = [
    "Dataset", "DATASETS", "register_dataset", "TOY_DATASETS", "DIGITS_LEVELS", "DIGITS_SPLITS", "toy_2d",
    "toy_2d_labelled", "load_digits", "digits_split_indices", "load_dataset", "get_dataset", "batches",
    "batches_per_epoch",
]

DIGITS_LEVELS = 17
DIGITS_SPLITS = ("train", "test", "all")
TOY_SIZES = {"train": 10_000, "test": 2_000}   # default number of toy points per split
TOY_SEEDS = {"train": 0, "test": 1}            # default seeds: the two splits are independent draws


# ---------------------------------------------------------------------------------- toy 2-D sets

def _eight_gaussians(n: int, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Mixture of 8 equal Gaussians (std 0.1) centred on a circle of radius sqrt(2): per-axis variance ~1.
    Label: the Gaussian, 0..7 counter-clockwise from angle 0."""
    k = torch.randint(0, 8, (n,), generator=g)
    angle = k.double() * (math.pi / 4)
    centres = math.sqrt(2.0) * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64), k


def _swiss_roll(n: int, g: torch.Generator | None) -> tuple[Tensor, None]:
    """2-D Swiss roll: the spiral (s cos s, s sin s), s ~ U(1.5 pi, 4.5 pi), plus noise, centred and scaled."""
    s = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))
    x = torch.stack([s * s.cos(), s * s.sin()], dim=1) + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (x - torch.tensor([2.0, 0.2], dtype=torch.float64)) / 6.8, None


def _two_moons(n: int, g: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Two interleaved half circles of radius 1 (scikit-learn's make_moons geometry), noise 0.07, scaled by 1/0.7.
    Label: 0 for the upper moon, 1 for the lower."""
    theta = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    lower = torch.randint(0, 2, (n, 1), generator=g).bool()
    upper_moon = torch.stack([theta.cos(), theta.sin()], dim=1)
    lower_moon = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
    x = torch.where(lower, lower_moon, upper_moon) + 0.07 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (x - torch.tensor([0.5, 0.25], dtype=torch.float64)) / 0.7, lower[:, 0].long()


def _checkerboard(n: int, g: torch.Generator | None) -> tuple[Tensor, None]:
    """Uniform on the 8 black squares of a 4x4 board on [-2, 2]^2, scaled by sqrt(3)/2 (uniform std 1)."""
    x1 = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
    x2 = torch.rand(n, generator=g, dtype=torch.float64) - 2 * torch.randint(0, 2, (n,), generator=g)
    x2 = x2 + torch.remainder(torch.floor(x1), 2)   # shift the column's squares by one on odd columns
    return torch.stack([x1, x2], dim=1) * (math.sqrt(3.0) / 2), None


_TOYS: dict[str, Callable[[int, torch.Generator | None], tuple[Tensor, Tensor | None]]] = {
    "eight_gaussians": _eight_gaussians,
    "swiss_roll": _swiss_roll,
    "two_moons": _two_moons,
    "checkerboard": _checkerboard,
}
TOY_DATASETS = tuple(_TOYS)


def toy_2d(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n points of the toy distribution `name` (one of TOY_DATASETS). Returns (n, 2) float32 on the CPU.

    Drawn in float64 from `generator` (a CPU generator; None uses torch's global one) and cast to float32.
    """
    return toy_2d_labelled(name, n, generator)[0]


def toy_2d_labelled(name: str, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """`toy_2d`'s points and their labels (n,) long (the component each was drawn from), None for the sets whose
    points have no classes (swiss_roll, checkerboard)."""
    if name not in _TOYS:
        raise ValueError(f"unknown toy dataset {name!r}; valid names: {', '.join(TOY_DATASETS)}")
    check_int("n", n)
    points, labels = _TOYS[name](n, generator)
    return points.float(), labels


# ---------------------------------------------------------------------------------- digits

@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pixels (1797, 8, 8) uint8 in 0..16, labels (1797,), train indices, test indices), read once."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    pixels = bunch.images.astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0, stratify=labels)
    for a in (pixels, labels, train, test):
        a.flags.writeable = False
    return pixels, labels, np.sort(train), np.sort(test)


def _check_split(split: str) -> None:
    if split not in DIGITS_SPLITS:
        raise ValueError(f"split must be one of {DIGITS_SPLITS}, got {split!r}")


def digits_split_indices(split: str = "train") -> Tensor:
    """Indices (sorted, long) into scikit-learn's 1797 digits that make up `split` ("train" | "test" | "all")."""
    _check_split(split)
    pixels, _, train, test = _digits_arrays()
    index = {"train": train, "test": test, "all": np.arange(len(pixels))}[split]
    return torch.from_numpy(index.copy()).long()


def load_digits(split: str = "train") -> tuple[Tensor, Tensor]:
    """The 8x8 digits: images (N, 1, 8, 8) float32 in [-1, 1] on 17 levels v / 8 - 1, and labels (N,) long in 0..9.

    split: "train" (1437 images), "test" (360) or "all" (1797); the split is stratified by label and fixed.
    Every call returns fresh tensors (safe to modify).
    """
    index = digits_split_indices(split).numpy()
    pixels, labels, _, _ = _digits_arrays()
    images = torch.from_numpy(pixels[index].astype(np.float32)).unsqueeze(1) / 8 - 1
    return images, torch.from_numpy(labels[index].copy()).long()


# ---------------------------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Dataset:
    """One entry of DATASETS.

    shape: one example's, (C, H, W) for images or (D,) for vectors.  levels: the number of evenly spaced grey levels
    the data sit on in [-1, 1] (None: continuous values).  num_classes: labels 0..num_classes-1 (0: unlabelled).
    network: the default network's class and arguments (the trainer's `--model` JSON replaces the arguments).
    load(split, n, generator) -> (x (N, *shape) float32, labels (N,) long or None): the examples of a split, all of
    them or n drawn with `generator`.  splits: the split names load accepts.
    """

    name: str
    description: str
    shape: tuple[int, ...]
    levels: int | None
    num_classes: int
    network: type[nn.Module]
    network_args: dict[str, Any]
    load: Callable[[str, int | None, torch.Generator | None], tuple[Tensor, Tensor | None]]
    splits: tuple[str, ...] = ("train", "test")

    @property
    def is_image(self) -> bool:
        """(C, H, W) examples, shown as a grid; vectors are shown as a scatter plot."""
        return len(self.shape) == 3

    def build_network(self, args: dict[str, Any] | None = None, num_classes: int = 0) -> nn.Module:
        """The default network (args None or {}: `network_args`), conditional on num_classes labels when > 0."""
        kwargs = dict(args or self.network_args)
        if num_classes:
            kwargs["num_classes"] = num_classes
        if self.is_image:  # args may set in_channels (a cascade's SR stage reads x_t and the low-resolution image)
            return self.network(**{"in_channels": self.shape[0], **kwargs})
        return self.network(dim=self.shape[0], **kwargs)


DATASETS: dict[str, Dataset] = {}


def register_dataset(dataset: Dataset) -> Dataset:
    """Add a dataset to DATASETS under its name (names are unique). Returns it."""
    return register_once(DATASETS, dataset.name, dataset, "dataset")


def _load_digits(split: str, n: int | None, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    images, labels = load_digits(split)
    if n is None:
        return images, labels
    if n > len(images):
        raise ValueError(f"n must be <= {len(images)} (the size of the digits {split} split), got {n}")
    keep = torch.randperm(len(images), generator=generator)[:n]
    return images[keep], labels[keep]


def _toy_loader(name: str) -> Callable[[str, int | None, torch.Generator | None], tuple[Tensor, Tensor | None]]:
    def load(split: str, n: int | None, generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
        if split not in TOY_SIZES:
            raise ValueError(f"split for a toy dataset must be one of {tuple(TOY_SIZES)}, got {split!r}")
        if generator is None:
            generator = torch.Generator().manual_seed(TOY_SEEDS[split])
        return toy_2d_labelled(name, TOY_SIZES[split] if n is None else n, generator)

    return load


register_dataset(Dataset("digits", "scikit-learn's 8x8 digits, 17 grey levels, 10 classes", (1, 8, 8), DIGITS_LEVELS,
                         10, UNet, dict(base_channels=24, channel_mults=(1, 2), num_res_blocks=1,
                                        attention_resolutions=(4,)), _load_digits, DIGITS_SPLITS))


def _load_digits_4x4(split: str, n: int | None, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    images, labels = _load_digits(split, n, generator)
    return downsample(images, 4), labels


# The base stage of the digits' cascade (lecture 5): each pixel the mean of a 2x2 block of 17-level pixels, so on
# 4 * 16 + 1 = 65 levels.
register_dataset(Dataset("digits_4x4", "the digits averaged down to 4x4 (a cascade's base stage), 10 classes",
                         (1, 4, 4), 4 * (DIGITS_LEVELS - 1) + 1, 10, UNet,
                         dict(base_channels=24, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(2,),
                              image_size=4), _load_digits_4x4, DIGITS_SPLITS))
_TOY_CLASSES = {"eight_gaussians": 8, "two_moons": 2}
for _name in TOY_DATASETS:
    register_dataset(Dataset(_name, f"2-D toy set ({_TOY_CLASSES.get(_name, 'no')} classes)", (2,), None,
                             _TOY_CLASSES.get(_name, 0), MLPEps, dict(hidden=128, depth=3), _toy_loader(_name)))


def _entry(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, split: str = "train", n: int | None = None,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
    """Examples and labels by name (one of DATASETS): (x (N, *shape) float32 in [-1, 1] or standardised 2-D points,
    labels (N,) long or None for an unlabelled set).

    digits: split "train" | "test" | "all"; n (optional) draws a random subset of n images with `generator`.
    toy sets: split "train" | "test"; n defaults to TOY_SIZES[split]; generator defaults to a fresh one
    seeded with TOY_SEEDS[split], so the two splits are different, reproducible draws.
    """
    dataset = _entry(name)
    if n is not None:
        check_int("n", n)
    if split not in dataset.splits:
        raise ValueError(f"split must be one of {dataset.splits} for {name}, got {split!r}")
    return dataset.load(split, n, generator)


def get_dataset(name: str, split: str = "train", n: int | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """The examples of `load_dataset`, without labels: digits (N, 1, 8, 8) or a toy set (n, 2)."""
    return load_dataset(name, split, n, generator)[0]


# ---------------------------------------------------------------------------------- mini-batches

def batches_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches `batches` yields per epoch: num_examples // batch_size, or 1 when the data fit in one batch."""
    return max(num_examples // batch_size, 1)


def batches(data: Tensor, batch_size: int, generator: torch.Generator | None = None,
            start: int = 0) -> Iterator[Tensor]:
    """Endless shuffled mini-batches of `data` (N, ...): yields (batch_size, ...) tensors, or all N if N < batch_size.

    Each epoch begins with one call torch.randperm(N, generator=generator) -- the iterator's only source
    of randomness -- and yields the full batches of that permutation in order, dropping the incomplete last
    one. The permutation is drawn lazily, when the epoch's first batch is requested. Hence, for exact resumption:

    * at an epoch boundary (steps done % batches_per_epoch == 0): save generator.get_state(); later restore it
      into a generator and call batches(data, batch_size, generator) again;
    * at any step s: restore the generator's state from when the iterator was created and pass start=s; the
      skipped epochs' permutations are redrawn (cheap, no data is touched) so the stream continues exactly.

    Use a generator that nothing else draws from, on data's device (torch.randperm's rule).
    """
    if not isinstance(data, Tensor) or data.dim() < 1 or len(data) < 1:
        raise ValueError(f"data must be a tensor of shape (N, ...) with N >= 1, got {getattr(data, 'shape', data)!r}")
    check_int("batch_size", batch_size)
    check_int("start", start, low=0)
    return _batch_stream(data, batch_size, generator, start)


def _batch_stream(data: Tensor, batch_size: int, generator: torch.Generator | None, start: int) -> Iterator[Tensor]:
    n = len(data)
    size = min(batch_size, n)
    per_epoch = batches_per_epoch(n, batch_size)
    for _ in range(start // per_epoch):        # replay the permutations of fully skipped epochs
        torch.randperm(n, generator=generator, device=data.device)
    offset = start % per_epoch
    while True:
        perm = torch.randperm(n, generator=generator, device=data.device)
        for b in range(offset, per_epoch):
            yield data[perm[b * size:(b + 1) * size]]
        offset = 0
