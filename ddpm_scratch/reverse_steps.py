"""What every sampler shares: the walk down a schedule's indices, the network called at its steps, the hook.

A sampler runs on a schedule, all T of its steps or respaced to fewer (`schedules.respaced`), from x_T at its last
index (`initial_noise`: x_T ~ N(0, I), Algorithm 2's line 1, or the caller's) down to index 0, the data:

    for i = T', ..., 1:                      `reverse_indices` (with a progress bar when asked)
        eps = eps_theta(x_i, timesteps[i])    `eps_at`: the network at the training step index i stands for
        x_{i-1} = the sampler's step          (p_sample_step, ddim_step, a solver's step)
        x_{i-1} = hook(x_{i-1}, timesteps[i-1])   `after_step`: t = 0 the last time

The hook is how units 5-7 change a run without copying its loop: inpainting puts the known region back, ILVR its low
frequencies, a progress picture keeps a copy; whatever it returns replaces the state. The model is an eps-model of
the training steps (`nets.protocol.EpsModel`): a network that outputs x0 or v is adapted once where it is built
or loaded (`forward.as_eps_model`), and a conditional one binds its label there too, so no sampler reads
`prediction` or labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from .checks import check_data
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, check_schedule

__all__ = ["Hook", "initial_noise", "training_steps", "reverse_indices", "eps_at", "after_step"]

Hook = Callable[[Tensor, int], Tensor]  # hook(x (B, ...), t: the training step x is now at) -> x, same shape


def initial_noise(shape: Sequence[int], *, x_T: Tensor | None = None, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
    """x_T ~ N(0, I) of the given shape (Algorithm 2, line 1), or the caller's x_T after checking its shape."""
    if len(shape) < 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f"shape must be (B, ...) with positive sizes, got {tuple(shape)}")
    if x_T is None:
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    check_data("x_T", x_T)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
    return x_T


def check_run(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, hook: Hook | None) -> None:
    """The entry checks of a registered sampler: a callable model, a schedule, x_T (B, ...) floating, hook or None."""
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t), got {type(eps_model).__name__}")
    check_schedule(schedule)
    check_data("x_T", x_T)
    if x_T.dim() < 2:  # a (D,) point is not a batch of D scalars
        raise ValueError(f"x_T must have shape (B, ...) with at least 2 dimensions, got {tuple(x_T.shape)}")
    if hook is not None and not callable(hook):
        raise TypeError(f"hook must be None or callable as hook(x, t) -> x, got {type(hook).__name__}")


def training_steps(schedule: NoiseSchedule) -> list[int]:
    """The training step each index stands for, as Python ints (read once, so the hook costs no device read)."""
    return schedule.timesteps.tolist()


def reverse_indices(schedule: NoiseSchedule, progress: bool = False, desc: str = "sampling") -> Iterable[int]:
    """T', ..., 1: the indices a sampler steps from, behind a tqdm bar when `progress`."""
    from tqdm.auto import tqdm

    return tqdm(range(schedule.T, 0, -1), disable=not progress, desc=desc, leave=False, miniters=1)


def eps_at(eps_model: EpsModel, schedule: NoiseSchedule, x_t: Tensor, i: int | Tensor) -> Tensor:
    """eps_theta(x_t, timesteps[i]): the model called at the training step that index i of `schedule` stands for
    (i itself unless the schedule was respaced), always with a (B,) LongTensor.

    x_t: (B, ...).  i: an int (every row at the same index) or a (B,) LongTensor on the schedule's device.
    """
    t = schedule.timesteps[i]
    return eps_model(x_t, t.expand(x_t.shape[0]) if t.dim() == 0 else t)


def after_step(hook: Hook | None, x: Tensor, t: int) -> Tensor:
    """hook(x, t) when there is a hook, else x. Its return must be a tensor of x's shape (checked: free)."""
    if hook is None:
        return x
    out = hook(x, t)
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"hook(x, t) must return a tensor of x's shape {tuple(x.shape)}, got {got} at t = {t}")
    return out
