"""One entry point over every sampler: sample(eps_model, schedule, shape, sampler="ddpm", num_steps=...).

Each lecture's sampler is one entry of `SAMPLERS`: a function that runs its reverse process from x_T on a
schedule and returns x0, with the keyword options it takes. `sample` checks the arguments once, draws x_T,
and, when num_steps < T, respaces the schedule to num_steps evenly spaced steps ending at T
(`NoiseSchedule.respace`): a short sampler is the same sampler on a shorter schedule, and the network is still
called at its training steps. The command line, the lessons and the benchmarks sample through here; the test
suite runs every registered sampler on Gaussian data with the exact eps, so a new sampler is checked by
being registered.

    SAMPLERS["ddpm"]   Algorithm 2 (ancestral sampling); option variance = "beta" | "posterior" | (T+1,) tensor
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .checks import check_choice
from .ddpm import ddpm_sample, initial_noise
from .forward import PREDICTIONS
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, spaced_timesteps

__all__ = ["Sampler", "SAMPLERS", "register", "sample"]


@dataclass(frozen=True)
class Sampler:
    """A registered sampler.

    run(eps_model, schedule, x_T, *, prediction, generator, progress, **options) -> x0 (same shape as x_T);
    options: the keyword options run takes, with their defaults.  stochastic: whether it draws noise after x_T.
    """

    name: str
    run: Callable[..., Tensor]
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    stochastic: bool = True


def _ddpm(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
          generator: torch.Generator | None, progress: bool, variance: str | Tensor) -> Tensor:
    return ddpm_sample(eps_model, schedule, x_T.shape, x_T=x_T, variance=variance, prediction=prediction,
                       generator=generator, progress=progress)


SAMPLERS: dict[str, Sampler] = {}


def register(sampler: Sampler) -> Sampler:
    """Add a sampler to SAMPLERS under its name (names are unique). Returns it."""
    if sampler.name in SAMPLERS:
        raise ValueError(f"a sampler named {sampler.name!r} is already registered")
    SAMPLERS[sampler.name] = sampler
    return sampler


register(Sampler("ddpm", _ddpm, "Algorithm 2 of Ho et al. (2020): ancestral sampling, one Gaussian step per t",
                 options={"variance": "beta"}))


def sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *, sampler: str = "ddpm",
           num_steps: int | None = None, generator: torch.Generator | None = None, prediction: str = "eps",
           device: torch.device | str | None = None, dtype: torch.dtype = torch.float32, x_T: Tensor | None = None,
           progress: bool = False, **options: Any) -> Tensor:
    """Draw samples x0 of the given shape (B, ...) with a registered sampler.

    num_steps: reverse steps, evenly spaced on 1..T and ending at T (None: all T steps of the schedule).
    generator: draws x_T and the sampler's noise (on `device`).  x_T: start from this noise instead.
    prediction: what eps_model outputs ("eps", "x0" or "v").  options: the sampler's own (SAMPLERS[name].options).
    """
    check_choice("sampler", sampler, tuple(SAMPLERS))
    chosen = SAMPLERS[sampler]
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        valid = ", ".join(chosen.options) or "none"
        raise ValueError(f"sampler {sampler!r} takes the options {valid}; got unknown {', '.join(unknown)}")
    check_choice("prediction", prediction, PREDICTIONS)
    if num_steps is not None:
        if any(isinstance(value, Tensor) for value in options.values()):
            raise ValueError("a per-step tensor option (such as a (T+1,) variance) belongs to the schedule's own "
                             "steps; it cannot be combined with num_steps, which respaces them")
        schedule = schedule.respace(spaced_timesteps(schedule.T, num_steps))
    x_T = initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)
    return chosen.run(eps_model, schedule, x_T, prediction=prediction, generator=generator, progress=progress,
                      **{**chosen.options, **options})
