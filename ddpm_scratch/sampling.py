"""One entry point over every sampler: sample(eps_model, schedule, shape, sampler="ddpm", num_steps=...).

Every lecture's sampler is one function with one signature, registered as it is in `SAMPLERS`:

    run(eps_model, schedule, x_T, *, generator=None, hook=None, progress=False, **its options) -> x0

It runs its reverse process from x_T over every index of the schedule it is given, calls the model at the training
steps those indices stand for, and calls hook(x, t) after every step (`reverse_steps`). `sample` does the rest once:
it checks the options, draws x_T, and, given num_steps, respaces the schedule to num_steps of its steps
(`schedules.respaced`, with the sampler's own default spacing): a short sampler is the same sampler on a shorter
schedule. Given t_start, x_T is at training step t_start < T and the steps are picked in 1..t_start (SDEdit,
image-to-image). The command line, the lessons and the benchmarks sample through here; the test suite runs every
registered sampler on Gaussian data with the exact eps, so a new sampler is checked by being registered.

    name        function                             lecture  options (declared once, in the registry)
    ddpm        ddpm.ddpm_sample                     2        variance
    sde         score_solvers.sde_sample             3        (the reverse SDE by Euler-Maruyama)
    pc          score_solvers.pc_sample              3        snr, corrector_steps
    ode         score_solvers.ode_sample             3        (the probability-flow ODE by Heun's method)
    ode_euler   score_solvers.ode_euler_sample       3        (the probability-flow ODE by Euler's method)
    ddim        ddim.ddim_sample                     4        eta
    dpmpp_2m    eps_solvers.dpm_solver_pp_sample     4
    unipc       eps_solvers.unipc_sample             4        order, variant
    edm         eps_solvers.edm_sample               4

An option's default is the run function's own keyword default; its help and choices are declared beside it
(`Option`), and the command line builds `ddpm-scratch sample`'s options from them. `trajectory` keeps the states
of any sampler at chosen steps (through the hook).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .checks import check_choice, register_once
from .ddim import ddim_sample
from .ddpm import ddpm_sample
from .eps_solvers import UNIPC_VARIANTS, dpm_solver_pp_sample, edm_sample, unipc_sample
from .nets.protocol import EpsModel
from .reverse_steps import Hook, initial_noise
from .schedules import REVERSE_VARIANCES, SPACINGS, NoiseSchedule, respaced
from .score_solvers import ode_euler_sample, ode_sample, pc_sample, sde_sample

__all__ = ["Option", "Sampler", "SAMPLERS", "register", "sample", "trajectory"]

RUN_ARGUMENTS = ("generator", "hook", "progress")  # the keywords every run function takes besides its options


@dataclass(frozen=True)
class Option:
    """One option of a sampler: its help, where it has a fixed set of values its choices, and how the command line
    reads it (`parse`: the default's type when None, which suits ints, floats and strings). The default is the run
    function's keyword default (`Sampler.defaults`), so it is written once."""

    help: str
    choices: tuple[Any, ...] | None = None
    parse: Callable[[str], Any] | None = None


@dataclass(frozen=True)
class Sampler:
    """A registered sampler.

    run: run(eps_model, schedule, x_T, *, generator=None, hook=None, progress=False, **options) -> x0.
    options: {name: Option} for each keyword option of run (checked against run's signature when built).
    stochastic: whether it can draw noise after x_T (for some value of its options: DDIM draws none at its default
    eta = 0, some for eta > 0).  spacing: the spacing `sample` uses when num_steps is given and spacing is not, the
    best measured for few steps (benchmarks/fast_samplers.py); `why` says so in the help.
    """

    name: str
    run: Callable[..., Tensor]
    description: str
    options: Mapping[str, Option] = field(default_factory=dict)
    stochastic: bool = True
    spacing: str = "uniform"
    why: str = ""

    def __post_init__(self) -> None:
        check_choice(f"the default spacing of sampler {self.name!r}", self.spacing, SPACINGS)
        parameters = inspect.signature(self.run).parameters
        keywords = {k for k, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        missing = [k for k in RUN_ARGUMENTS if k not in keywords]
        undeclared = sorted(keywords - set(RUN_ARGUMENTS) - set(self.options))
        unknown = sorted(set(self.options) - keywords)
        no_default = [k for k in self.options if k in keywords and parameters[k].default is inspect.Parameter.empty]
        if missing or undeclared or unknown or no_default:
            raise ValueError(f"sampler {self.name!r}: run must take the keywords {', '.join(RUN_ARGUMENTS)} and one "
                             f"declared Option (with a default) per other keyword; missing {missing}, undeclared "
                             f"{undeclared}, not in run {unknown}, without a default {no_default}")
        unparsable = [k for k, o in self.options.items()
                      if o.parse is None and type(parameters[k].default) not in (int, float, str)]
        if unparsable:
            raise ValueError(f"sampler {self.name!r}: options {unparsable} need Option(parse=...) for the command "
                             f"line (only int, float and str defaults are read by their type)")

    def parser(self, name: str) -> Callable[[str], Any]:
        """How the command line reads option `name`."""
        return self.options[name].parse or type(self.defaults[name])

    @property
    def defaults(self) -> dict[str, Any]:
        """{option name: run's default for it}."""
        parameters = inspect.signature(self.run).parameters
        return {name: parameters[name].default for name in self.options}


SAMPLERS: dict[str, Sampler] = {}


def register(sampler: Sampler) -> Sampler:
    """Add a sampler to SAMPLERS under its name (names are unique). Returns it. An option name that another sampler
    declares too must be read and limited the same way (the command line has one --name for both)."""
    for other in SAMPLERS.values():
        for name in set(sampler.options) & set(other.options):
            if (sampler.options[name].choices, sampler.parser(name)) != (other.options[name].choices,
                                                                         other.parser(name)):
                raise ValueError(f"sampler {sampler.name!r}: option {name!r} is also an option of {other.name!r}, "
                                 "with other choices or another type; give it another name or the same ones")
    return register_once(SAMPLERS, sampler.name, sampler, "sampler")


register(Sampler("ddpm", ddpm_sample, "Algorithm 2 of Ho et al. (2020): ancestral sampling, one Gaussian step per t",
                 options={"variance": Option("sigma_t^2 = beta_t or the posterior variance beta_tilde_t (or, in "
                                             "Python, a (T+1,) tensor of the schedule's steps)", REVERSE_VARIANCES)}))
register(Sampler("sde", sde_sample, "lecture 3: the reverse SDE by Euler-Maruyama, noise-free last step"))
register(Sampler("pc", pc_sample, "lecture 3: predictor-corrector, Euler-Maruyama + Langevin corrector (snr step rule)",
                 options={"snr": Option("the Langevin corrector's signal-to-noise ratio r"),
                          "corrector_steps": Option("Langevin steps per noise level")}))
register(Sampler("ode", ode_sample, "lecture 3: the probability-flow ODE by Heun's method (2 evaluations per step)",
                 stochastic=False))
register(Sampler("ode_euler", ode_euler_sample, "lecture 3: the probability-flow ODE by Euler's method",
                 stochastic=False))
register(Sampler("ddim", ddim_sample, "lecture 4: DDIM (Song et al. 2021), deterministic at eta = 0, DDPM's "
                 "posterior variance at eta = 1",
                 options={"eta": Option("sigma_t = eta x DDPM's posterior std, in [0, 1]; 0 is deterministic")}))
# Few-step default spacings, measured (benchmarks/fast_samplers.py --all-spacings, exact eps, 3 seeds): quadratic
# steps give DPM-Solver++(2M) and UniPC 0.61-0.67x uniform's sliced W2 at 5 evaluations and 0.86-0.89x at 10-20 on
# the 2-D mixture, and tie on the 64-D one (0.92x at 5, 1.00x at 10-20; there the distance to the exact flow's end
# grows 1.3-2.3x, inside the sampling noise); every other sampler does as well or better on uniform steps in one of
# the two (DDIM and Euler lose 12-23% with quadratic steps in 64-D, the ODE samplers and EDM lose more).
FEW_STEP_SPACING = ("quadratic", "quadratic steps: 0.6-0.9x uniform's sliced W2 at 5-20 evaluations on a 2-D mixture, "
                    "a tie on a 64-D one (benchmarks/fast_samplers.py)")
register(Sampler("dpmpp_2m", dpm_solver_pp_sample, "lecture 4: DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), "
                 "second order, one evaluation per step", stochastic=False, spacing=FEW_STEP_SPACING[0],
                 why=FEW_STEP_SPACING[1]))
register(Sampler("unipc", unipc_sample, "lecture 4: UniPC (Zhao et al. 2023), multistep predictor UniP + corrector "
                 "UniC reusing the next evaluation: order + 1, one evaluation per step",
                 options={"order": Option("the predictor's order (the corrector adds one)", (1, 2)),
                          "variant": Option("B(h) = -h (bh1) or e^-h - 1 (bh2)", UNIPC_VARIANTS)},
                 stochastic=False, spacing=FEW_STEP_SPACING[0], why=FEW_STEP_SPACING[1]))
register(Sampler("edm", edm_sample, "lecture 4: EDM's Heun sampler (Karras et al. 2022, Algorithm 1, S_churn = 0), "
                 "second order, 2 evaluations per step, 1 on the last", stochastic=False))


def sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *, sampler: str = "ddpm",
           num_steps: int | None = None, spacing: str | None = None, x_T: Tensor | None = None,
           t_start: int | None = None, hook: Hook | None = None, generator: torch.Generator | None = None,
           device: torch.device | str | None = None, dtype: torch.dtype = torch.float32, progress: bool = False,
           **options: Any) -> Tensor:
    """Draw samples x0 of the given shape (B, ...) with a registered sampler.

    eps_model(x_t, t): an eps-model of the schedule's training steps (an x0- or v-network adapted once by
    `forward.as_eps_model`).  num_steps: reverse steps (None: every step of the schedule, or of 1..t_start).
    spacing: how the num_steps steps are picked, "uniform" (= "trailing"), "leading", "quadratic" or "karras"
    (`schedules.respaced`); None: the sampler's own default (`SAMPLERS[name].spacing`, the best measured).
    x_T: start from this tensor instead of drawing N(0, I) on `device` in `dtype`.  t_start: x_T is at training step
    t_start (in 1..T; x_T must then be given), and the reverse process runs from there.  hook(x, t) -> x: called
    after every step with the training step t that x is now at (the last call t = 0); its return replaces x.
    generator: draws x_T and the sampler's noise.  options: the sampler's own (SAMPLERS[name].options).
    """
    check_choice("sampler", sampler, tuple(SAMPLERS))
    chosen = SAMPLERS[sampler]
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        valid = ", ".join(chosen.options) or "none"
        raise ValueError(f"sampler {sampler!r} takes the options {valid}; got unknown {', '.join(unknown)}")
    if (num_steps is not None or t_start is not None) and any(isinstance(v, Tensor) for v in options.values()):
        raise ValueError("a per-step tensor option (such as a (T+1,) variance) belongs to the schedule's own "
                         "steps; it cannot be combined with num_steps or t_start, which respace them")
    if t_start is not None and x_T is None:
        raise ValueError("t_start needs x_T: the state at training step t_start (e.g. q_sample(schedule, x0, "
                         "t_start)) to run the reverse process from")
    schedule = respaced(schedule, num_steps, chosen.spacing if spacing is None else spacing, t_start=t_start)
    x_T = initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)
    return chosen.run(eps_model, schedule, x_T, generator=generator, hook=hook, progress=progress,
                      **{**chosen.defaults, **options})


def trajectory(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], save_at: Sequence[int],
               **sample_options: Any) -> Tensor:
    """Run `sample` and keep x at the training steps save_at. Returns (len(save_at), B, ...) in save_at's order.

    save_at: steps the run visits: the top one (x_T itself: T, or t_start) and those its steps land on, down to 0
    (every step without num_steps). sample_options: `sample`'s keywords (sampler, num_steps, generator, ...;
    a hook of the caller's runs first, and its output is what is kept).
    """
    wanted = [int(s) for s in save_at]
    caller_hook = sample_options.pop("hook", None)
    kept: dict[int, Tensor] = {}

    def keep(x: Tensor, t: int) -> Tensor:
        x = x if caller_hook is None else caller_hook(x, t)
        if t in wanted:
            kept[t] = x
        return x

    top = sample_options.get("t_start") or schedule.T
    if not wanted or min(wanted) < 0 or max(wanted) > top:
        raise ValueError(f"save_at must be a non-empty list of steps in 0..{top}, got {list(save_at)}")
    x_T = initial_noise(shape, x_T=sample_options.pop("x_T", None), device=sample_options.pop("device", None),
                        dtype=sample_options.pop("dtype", torch.float32), generator=sample_options.get("generator"))
    if top in wanted:
        kept[top] = x_T
    sample(eps_model, schedule, shape, x_T=x_T, hook=keep, **sample_options)
    missed = [s for s in wanted if s not in kept]
    if missed:
        raise ValueError(f"save_at asks for steps {missed} that this run does not visit (num_steps and spacing pick "
                         "the steps; every step is visited without num_steps)")
    return torch.stack([kept[s] for s in wanted])
