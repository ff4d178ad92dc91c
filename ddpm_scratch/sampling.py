"""One entry point over every sampler: sample(eps_model, schedule, shape, sampler="ddpm", num_steps=...).

Each lecture's sampler is one entry of `SAMPLERS`: a function that runs its reverse process from x_T on a
schedule and returns x0, with the keyword options it takes. `sample` checks the arguments once, draws x_T,
and, given num_steps, respaces the schedule to num_steps of its steps (`schedules.respaced`: evenly spaced and
ending at T unless `spacing` says otherwise): a short sampler is the same sampler on a shorter schedule, and the
network is still called at its training steps. The command line, the lessons and the benchmarks sample through
here; the test suite runs every registered sampler on Gaussian data with the exact eps, so a new sampler is
checked by being registered.

    SAMPLERS["ddpm"]       Algorithm 2 (ancestral sampling); option variance = "beta" | "posterior" | (T+1,) tensor
    SAMPLERS["sde"]        the reverse SDE by Euler-Maruyama                     (lecture 3; sde.euler_maruyama)
    SAMPLERS["pc"]         predictor-corrector; options snr = 0.16, corrector_steps = 1   (sde.predictor_corrector)
    SAMPLERS["ode"]        the probability-flow ODE by Heun's method             (sde.ode_heun)
    SAMPLERS["ode_euler"]  the probability-flow ODE by Euler's method            (sde.ode_euler)
    SAMPLERS["ddim"]       DDIM (lecture 4); option eta = 0.0, sigma_t = eta x DDPM's posterior std (ddim.ddim_sample)
    SAMPLERS["dpmpp_2m"]   DPM-Solver++(2M), Lu et al. 2022, Algorithm 2; 1 call a step (solvers.dpm_solver_pp_sample)
    SAMPLERS["unipc"]      UniPC, Zhao et al. 2023; options order = 2, variant = "bh2"; 1 call a step, order + 1
                           (solvers.unipc_sample)
    SAMPLERS["edm"]        EDM's Heun sampler, Karras et al. 2022, Algorithm 1; 2 calls a step, 1 on the last
                           (solvers.edm_sample); EDM's grid: schedule.respace(solvers.karras_timesteps(schedule, N))

The lecture-3 samplers run on the schedule's own continuous-time VP process, `sde.ScheduleSDE(schedule)`: grid
times t_i = i / T (T the number of steps after respacing), mean_coef(t_i) = sqrt(alpha_bar_i), and the score
-eps_theta(x, timesteps[i]) / sigma_i at those times, so the network is called at its training steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .checks import check_choice
from .ddim import ddim_sample
from .ddpm import ddpm_sample, initial_noise
from .forward import PREDICTIONS
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, respaced
from .sde import ScheduleSDE
from .sde_solvers import euler_maruyama, ode_euler, ode_heun, predictor_corrector
from .solvers import dpm_solver_pp_sample, edm_sample, unipc_sample

__all__ = ["Sampler", "SAMPLERS", "register", "sample"]


@dataclass(frozen=True)
class Sampler:
    """A registered sampler.

    run(eps_model, schedule, x_T, *, prediction, generator, progress, **options) -> x0 (same shape as x_T);
    options: the keyword options run takes, with their defaults.  stochastic: whether it can draw noise after x_T
    (for some value of its options: DDIM draws none at its default eta = 0, some for eta > 0).
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


# Lecture 3: fixed-step solvers on the schedule's VP process, with the score at its grid times t_i = i / T.
def _sde(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
         generator: torch.Generator | None, progress: bool) -> Tensor:
    sde = ScheduleSDE(schedule)
    return euler_maruyama(sde.score_fn(eps_model, prediction=prediction), sde, x_T, sde.times, generator=generator,
                          progress=progress)


def _pc(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
        generator: torch.Generator | None, progress: bool, snr: float, corrector_steps: int) -> Tensor:
    sde = ScheduleSDE(schedule)
    return predictor_corrector(sde.score_fn(eps_model, prediction=prediction), sde, x_T, sde.times, snr=snr,
                               corrector_steps=corrector_steps, generator=generator, progress=progress)


def _ode(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
         generator: torch.Generator | None, progress: bool) -> Tensor:
    sde = ScheduleSDE(schedule)
    return ode_heun(sde.score_fn(eps_model, prediction=prediction), sde, x_T, sde.times, progress=progress)


def _ode_euler(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
               generator: torch.Generator | None, progress: bool) -> Tensor:
    sde = ScheduleSDE(schedule)
    return ode_euler(sde.score_fn(eps_model, prediction=prediction), sde, x_T, sde.times, progress=progress)


register(Sampler("sde", _sde, "lecture 3: the reverse SDE by Euler-Maruyama, noise-free last step"))
register(Sampler("pc", _pc, "lecture 3: predictor-corrector, Euler-Maruyama + Langevin corrector (snr step rule)",
                 options={"snr": 0.16, "corrector_steps": 1}))
register(Sampler("ode", _ode, "lecture 3: the probability-flow ODE by Heun's method (2 evaluations per step)",
                 stochastic=False))
register(Sampler("ode_euler", _ode_euler, "lecture 3: the probability-flow ODE by Euler's method", stochastic=False))


# Lecture 4: DDIM on the (respaced) schedule's own steps.
def _ddim(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
          generator: torch.Generator | None, progress: bool, eta: float) -> Tensor:
    return ddim_sample(eps_model, schedule, x_T.shape, x_T=x_T, eta=eta, prediction=prediction, generator=generator,
                       progress=progress)


register(Sampler("ddim", _ddim, "lecture 4: DDIM (Song et al. 2021), deterministic at eta = 0, DDPM's posterior "
                 "variance at eta = 1", options={"eta": 0.0}))


# Lecture 4: higher-order solvers of the probability-flow ODE on the (respaced) schedule's own steps.
def _dpmpp_2m(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
              generator: torch.Generator | None, progress: bool) -> Tensor:
    return dpm_solver_pp_sample(eps_model, schedule, x_T.shape, x_T=x_T, prediction=prediction, progress=progress)


def _unipc(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
           generator: torch.Generator | None, progress: bool, order: int, variant: str) -> Tensor:
    return unipc_sample(eps_model, schedule, x_T.shape, x_T=x_T, order=order, variant=variant, prediction=prediction,
                        progress=progress)


def _edm(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str,
         generator: torch.Generator | None, progress: bool) -> Tensor:
    return edm_sample(eps_model, schedule, x_T.shape, x_T=x_T, prediction=prediction, progress=progress)


register(Sampler("dpmpp_2m", _dpmpp_2m, "lecture 4: DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), second order, "
                 "one evaluation per step", stochastic=False))
register(Sampler("unipc", _unipc, "lecture 4: UniPC (Zhao et al. 2023), multistep predictor UniP + corrector UniC "
                 "reusing the next evaluation: order + 1, one evaluation per step",
                 options={"order": 2, "variant": "bh2"}, stochastic=False))
register(Sampler("edm", _edm, "lecture 4: EDM's Heun sampler (Karras et al. 2022, Algorithm 1, S_churn = 0), second "
                 "order, 2 evaluations per step, 1 on the last", stochastic=False))


def sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *, sampler: str = "ddpm",
           num_steps: int | None = None, spacing: str = "uniform", generator: torch.Generator | None = None,
           prediction: str = "eps", device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
           x_T: Tensor | None = None, progress: bool = False, **options: Any) -> Tensor:
    """Draw samples x0 of the given shape (B, ...) with a registered sampler.

    num_steps: reverse steps, evenly spaced on 1..T and ending at T (None: all T steps of the schedule).
    spacing: how the num_steps steps are picked: "uniform" (the same as "trailing"), "leading" or "quadratic"
    (`schedules.spaced_timesteps`).
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
    if num_steps is not None and any(isinstance(value, Tensor) for value in options.values()):
        raise ValueError("a per-step tensor option (such as a (T+1,) variance) belongs to the schedule's own "
                         "steps; it cannot be combined with num_steps, which respaces them")
    schedule = respaced(schedule, num_steps, spacing)
    x_T = initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)
    return chosen.run(eps_model, schedule, x_T, prediction=prediction, generator=generator, progress=progress,
                      **{**chosen.options, **options})
