"""Argument checks for the public entry points: bad input raises naming the argument and what is valid.

One home for every check the package and the networks share. The entry points (q_sample, l_simple, ddpm_sample,
sampling.sample, the networks' constructors, the trainer) call these once; the per-step maths they drive
(p_mean, p_sample_step, the conversions) trusts its callers and never checks values, because reading a value back
from a GPU (`.item()`, `int(t.max())`) stalls the device at every step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

__all__ = ["check_int", "check_number", "check_choice", "check_int_tuple", "check_data", "check_images",
           "check_timestep", "check_time", "check_noise_source", "register_once"]


def check_int(name: str, value: object, low: int = 1) -> int:
    """value must be an int >= low (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def check_number(name: str, value: object, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> float:
    """value must be a finite real number in the interval low..high (ends included unless *_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, options: Sequence[str]) -> str:
    """value must be one of the option strings."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return value


def check_int_tuple(name: str, value: object, low: int = 1, allow_empty: bool = False) -> tuple[int, ...]:
    """value must be a sequence of ints >= low (non-empty unless allow_empty)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a tuple of ints, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    return tuple(check_int(f"{name}[{i}]", v, low) for i, v in enumerate(value))


def check_data(name: str, x: object) -> Tensor:
    """x must be a floating tensor of shape (B, ...) with B >= 1."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor of shape (B, ...), got {x.dtype} {tuple(x.shape)}")
    return x


def check_images(name: str, x: object) -> Tensor:
    """x must be a floating image batch (B, C, H, W)."""
    check_data(name, x)
    if x.dim() != 4:  # type: ignore[union-attr]
        raise ValueError(f"{name} must be an image batch (B, C, H, W), got shape {tuple(x.shape)}")  # type: ignore
    return x  # type: ignore[return-value]


def _as_batch(name: str, t: object, batch: int | None) -> Tensor:
    """A number or a () / (B,) tensor as a tensor, expanded to (batch,) when batch is given."""
    if isinstance(t, bool) or (isinstance(t, Tensor) and (t.dtype == torch.bool or t.is_complex())):
        raise TypeError(f"{name} must be an integer step or a float time, got a bool or complex value")
    if isinstance(t, (int, float)):
        t = torch.tensor(t, dtype=torch.float64 if isinstance(t, float) else torch.long)  # a float keeps its digits
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be an int, a float or a tensor, got {type(t).__name__}")
    if t.dim() > 1:
        raise ValueError(f"{name} must have shape () or (B,), got {tuple(t.shape)}")
    if batch is not None:
        if t.dim() == 0:
            t = t.expand(batch)
        elif t.shape[0] != batch:
            raise ValueError(f"{name} has {t.shape[0]} entries but the batch has {batch}")
    return t


def _checkable(t: Tensor) -> bool:
    """Values are read back only where that costs no device synchronisation."""
    return t.numel() > 0 and t.device.type == "cpu"


def check_timestep(t: int | Tensor, T: int | None, *, low: int = 1, batch: int | None = None,
                   device: torch.device | str | None = None, name: str = "t") -> Tensor:
    """Discrete steps: an int or an integer tensor of shape () or (B,), every entry in low..T (T None: no top).

    batch: when given, an int or 0-d t is expanded to (batch,) and a (B,) t must have B == batch.
    Returns a LongTensor (on `device` when given). Values are checked on CPU tensors and Python ints; a GPU
    tensor's values are not read back (that would stall the device).
    """
    if isinstance(t, float) or (isinstance(t, Tensor) and t.is_floating_point()):
        raise TypeError(f"{name} must be an int or an integer tensor of steps, got {getattr(t, 'dtype', 'float')}")
    t = _as_batch(name, t, batch).long()
    if _checkable(t):
        lo, hi = int(t.min()), int(t.max())
        if lo < low or (T is not None and hi > T):
            where = f"{low}..T={T}" if T is not None else f">= {low}"
            raise ValueError(f"{name} must lie in {where}, got values in {lo}..{hi}")
    return t if device is None else t.to(device)


def check_time(t: float | Tensor, *, low: float = 0.0, high: float = 1.0, batch: int | None = None,
               device: torch.device | str | None = None, name: str = "t") -> Tensor:
    """Continuous time: a float or a floating tensor of shape () or (B,), every entry in [low, high].

    Returns a floating tensor (on `device` when given); values are checked as in `check_timestep`.
    """
    integer_number = isinstance(t, int) and not isinstance(t, bool)
    integer_tensor = isinstance(t, Tensor) and not t.is_floating_point() and t.dtype != torch.bool
    if integer_number or integer_tensor:
        raise TypeError(f"{name} is continuous time and must be a float or a floating tensor in [{low:g}, {high:g}] "
                        "(pass discrete steps 1..T as a LongTensor)")
    t = _as_batch(name, t, batch)
    if _checkable(t) and not bool(((t >= low) & (t <= high)).all()):
        raise ValueError(f"{name} is continuous time and must lie in [{low:g}, {high:g}] (pass discrete steps "
                         f"1..T as a LongTensor), got values in {float(t.min())}..{float(t.max())}")
    return t if device is None else t.to(device)


def check_noise_source(noise: Tensor | None, generator: torch.Generator | None) -> None:
    """A caller gives the noise itself or a generator to draw it from, never both."""
    if noise is not None and generator is not None:
        raise ValueError("give either noise (the draw itself) or generator (to draw it), not both")


def register_once(registry: dict[str, T], name: str, entry: T, kind: str) -> T:
    """registry[name] = entry, refusing a name already taken (the registries of samplers and datasets)."""
    if name in registry:
        raise ValueError(f"a {kind} named {name!r} is already registered")
    registry[name] = entry
    return entry
