"""Lecture 3: solvers of the reverse SDE and the probability-flow ODE on a score function, in an SDE's continuous time.

(Their lecture-4 siblings in `eps_solvers` work on an eps-model over a discrete schedule's steps instead.)

Solvers (Song et al. 2021, sec. 4), one signature for all: solver(score_fn, sde, x_T, times, *, options) -> x at
times[-1], with `times` a decreasing grid such as `time_grid(num_steps, t_min=1e-3)`, and hook(x, t) -> x called
after every step with the time t that x is now at (what it returns replaces x):

    euler_maruyama       the reverse SDE, Euler-Maruyama (sec. 4.1); last step without noise
    predictor_corrector  Euler-Maruyama predictor + Langevin corrector with the snr step rule (sec. 4.2, App. G)
    ode_euler, ode_heun  the probability-flow ODE, Euler (1st order) and Heun (2nd order; Karras et al. 2022)
    ode_rk45             the probability-flow ODE, adaptive Runge-Kutta 4(5) (scipy's solve_ivp; sec. 4.3, App. D)

None returns its number of score evaluations (NFE); wrap the score in `CountedScore` to count them.

Each solver is the loop of its equation; the drifts they step with are `sde.reverse_drift` and
`sde.probability_flow_drift`, so a solver never restates f or g; Heun's step and RK45 are `integrators`'.

On a discrete schedule: the registered samplers "sde", "pc", "ode" and "ode_euler" of `sampling.SAMPLERS` are these
solvers on the schedule's own VP process, `sde.ScheduleSDE(schedule)`: grid times t_i = i / T' (T' the steps after
respacing), the score -eps_theta(x, timesteps[i]) / sigma_i there (the network at its training steps), and the
hook given the training step t_i stands for (`sde_sample`, `pc_sample`, `ode_sample`, `ode_euler_sample`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from .checks import check_data, check_int, check_number
from .forward import make_noise
from .integrators import heun_step, solve_ivp_tensor
from .nets.protocol import EpsModel
from .reverse_steps import Hook, check_run, training_steps
from .reverse_steps import after_step as _after_step
from .schedules import NoiseSchedule
from .sde import SDE, ScheduleSDE, ScoreFn, evaluate_score, probability_flow_drift, reverse_drift

__all__ = ["time_grid", "CountedScore", "euler_maruyama", "predictor_corrector", "ode_euler", "ode_heun", "ode_rk45",
           "sde_sample", "pc_sample", "ode_sample", "ode_euler_sample"]

TimeHook = Callable[[Tensor, float], Tensor]  # hook(x, t) -> x, t the (float) time x is now at


def time_grid(num_steps: int, t_min: float = 1e-3, t_max: float = 1.0) -> Tensor:
    """The solvers' time grid: num_steps + 1 times from t_max down to t_min, uniform in t (float64, on the CPU).

    t_k = t_max - k (t_max - t_min) / num_steps, k = 0..num_steps. t_min is the cut-off where sampling stops:
    score_sde uses 1e-3 for the VP SDE (std(1e-3) = 0.01, about DDPM's smallest noise sqrt(beta_1)) and 1e-5 for
    the VE SDE, whose std never falls below sigma_min anyway; the score of noiseless data (std = 0) is undefined
    for a network, so a VP grid should not end at 0.
    """
    check_int("num_steps", num_steps)
    t_max = check_number("t_max", t_max, 0.0, 1.0, low_open=True)
    t_min = check_number("t_min", t_min, 0.0, t_max, high_open=True)
    return torch.linspace(t_max, t_min, num_steps + 1, dtype=torch.float64)


class CountedScore:
    """score_fn with a count of its calls: a solver's number of function evaluations (NFE) is `.calls` after it."""

    def __init__(self, score_fn: ScoreFn) -> None:
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
        self.score_fn, self.calls = score_fn, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.score_fn(x, t)


def _check_solver(score_fn: ScoreFn, sde: SDE, x_T: Tensor, times: Tensor | Sequence[float],
                  hook: TimeHook | None = None) -> list[float]:
    """The solvers' entry checks; returns the grid as Python floats (so that no step reads a device tensor)."""
    if hook is not None and not callable(hook):
        raise TypeError(f"hook must be None or callable as hook(x, t) -> x, got {type(hook).__name__}")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an SDE (VPSDE, VESDE, ScheduleSDE, ...), got {type(sde).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
    check_data("x_T", x_T)
    grid = times.detach().cpu().double() if isinstance(times, Tensor) else torch.as_tensor(times, dtype=torch.float64)
    if grid.dim() != 1 or grid.numel() < 2:
        raise ValueError(f"times must be a 1-D grid of at least 2 times, got shape {tuple(grid.shape)}")
    if not (torch.isfinite(grid).all() and (grid >= 0).all() and (grid <= 1).all() and (grid[1:] < grid[:-1]).all()):
        raise ValueError(f"times must decrease strictly within [0, 1] (e.g. time_grid(num_steps)), got "
                         f"{grid.tolist()[:6]}")
    return grid.tolist()


def _steps(grid: list[float], progress: bool, desc: str):
    """The (t, s) pairs of consecutive grid times, t > s, behind a progress bar when asked."""
    from tqdm.auto import tqdm

    return tqdm(list(zip(grid[:-1], grid[1:], strict=True)), disable=not progress, desc=desc, leave=False, miniters=1)


def _pf_drift(score_fn: ScoreFn, sde: SDE, x: Tensor, t: float, toward: float) -> Tensor:
    """The probability-flow drift (eq. 13) at (x, t) for a step between t and `toward`: one function evaluation.
    The score is read at t, f and g where the step's interval has them (`SDE.coefficient_time`)."""
    score, _ = evaluate_score(score_fn, x, t)
    return probability_flow_drift(sde, x, sde.coefficient_time(t, toward), score=score)


def _euler_maruyama_step(score_fn: ScoreFn, sde: SDE, x: Tensor, t: float, s: float, *, noise: bool,
                         generator: torch.Generator | None) -> Tensor:
    """One Euler-Maruyama step of the reverse SDE (eq. 6) from t down to s = t - h:
    x_s = x_t - [f(x_t, t) - g(t)^2 score(x_t, t)] h + g(t) sqrt(h) z, z ~ N(0, I) (no z when noise is False)."""
    h = t - s
    score, _ = evaluate_score(score_fn, x, t)
    t_coef = sde.coefficient_time(t, s)
    x_mean = x - reverse_drift(sde, x, t_coef, score=score) * h
    if not noise:
        return x_mean
    return x_mean + sde.diffusion(t_coef) * math.sqrt(h) * make_noise(x, None, generator)


@torch.no_grad()
def euler_maruyama(score_fn: ScoreFn, sde: SDE, x_T: Tensor, times: Tensor | Sequence[float], *,
                   generator: torch.Generator | None = None, hook: TimeHook | None = None,
                   progress: bool = False) -> Tensor:
    """Sample the reverse SDE (Song et al. 2021, eq. 6) with Euler-Maruyama (sec. 4.1) along a decreasing grid.

        x_{t-h} = x_t - [f(x_t, t) - g(t)^2 score(x_t, t)] h + g(t) sqrt(h) z,   z ~ N(0, I)

    The last step adds no z: its noise, of size g sqrt(h), would be left in the samples with no later step to
    remove it, while its mean is the best guess of x at the final time (score_sde's noise_removal; DDPM's
    Algorithm 2 takes z = 0 at t = 1 for the same reason). On DDPM's schedule that noise would have std 0.01.
    x_T: (B, ...) draws of the prior (`sde.prior_sample`).  times: decreasing, e.g. `time_grid(1000)`.
    generator: draws z (on x_T's device).  NFE: len(times) - 1.  Returns x at times[-1], x_T's shape and dtype.
    """
    grid = _check_solver(score_fn, sde, x_T, times, hook)
    x = x_T
    last = len(grid) - 2
    for k, (t, s) in enumerate(_steps(grid, progress, "reverse SDE")):
        x = _after_step(hook, _euler_maruyama_step(score_fn, sde, x, t, s, noise=k < last, generator=generator), s)
    return x


def _mean_norm(v: Tensor) -> Tensor:
    """The batch mean of the per-example L2 norms ||v_b||, a 0-d tensor (no host synchronisation)."""
    return v.flatten(1).norm(dim=1).mean()


@torch.no_grad()
def predictor_corrector(score_fn: ScoreFn, sde: SDE, x_T: Tensor, times: Tensor | Sequence[float], *,
                        snr: float = 0.16, corrector_steps: int = 1, generator: torch.Generator | None = None,
                        hook: TimeHook | None = None, progress: bool = False) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021, sec. 4.2; App. G, Algorithms 4 (VE) and 5 (VP)).

    At every grid time t, before the predictor's step to the next time s, `corrector_steps` Langevin steps that
    leave p_t invariant (up to their step size) pull x back towards it:

        x <- x + eps score(x, t) + sqrt(2 eps) z,   eps = 2 alpha_i (r ||z|| / ||score(x, t)||)^2,   z ~ N(0, I)

    with r = snr and alpha_i = (mean_coef(t) / mean_coef(s))^2: DDPM's alpha_i = 1 - beta_i on a discrete
    schedule, about 1 - beta(t) h for the VP SDE, 1 for the VE SDE. The predictor is `euler_maruyama`'s step,
    noise-free at the end. Order as in score_sde's code (corrector, then predictor), so the score is never needed
    at the final time (undefined at t = 0 on a DDPM schedule).
    The norms: per-example L2 norms averaged over the batch, then the ratio, one eps per batch, as score_sde does
    (LangevinCorrector). Per example, eps would depend on the very z it scales: the injected noise sqrt(2 eps) z
    would have covariance 4 alpha r^2 (D + 2) / ||score||^2 instead of the 4 alpha r^2 D / ||score||^2 that
    balances the mean step eps (twice too much noise in 2-D); the batch mean makes eps almost independent of each z.
    The price: a sample depends, through eps, on the batch it is drawn with.
    snr: r > 0 (score_sde's CIFAR-10 default 0.16; its README suggests 0.05 to 0.2). corrector_steps: >= 0 (0 is
    `euler_maruyama`). NFE: (len(times) - 1) (corrector_steps + 1). Returns x at times[-1].
    """
    grid = _check_solver(score_fn, sde, x_T, times, hook)
    snr = check_number("snr", snr, low=0, low_open=True)
    check_int("corrector_steps", corrector_steps, low=0)
    x = x_T
    last = len(grid) - 2
    for k, (t, s) in enumerate(_steps(grid, progress, "PC sampling")):
        alpha = (sde.marginal(t)[0] / sde.marginal(s)[0]) ** 2
        for _ in range(corrector_steps):  # Langevin corrector (App. G)
            score, _ = evaluate_score(score_fn, x, t)
            z = make_noise(x, None, generator)
            eps = 2 * alpha * (snr * _mean_norm(z) / _mean_norm(score)) ** 2
            x = x + eps * score + (2 * eps).sqrt() * z
        x = _euler_maruyama_step(score_fn, sde, x, t, s, noise=k < last, generator=generator)  # predictor
        x = _after_step(hook, x, s)
    return x


@torch.no_grad()
def ode_euler(score_fn: ScoreFn, sde: SDE, x_T: Tensor, times: Tensor | Sequence[float], *,
              hook: TimeHook | None = None, progress: bool = False) -> Tensor:
    """Euler's method on the probability-flow ODE (Song et al. 2021, eq. 13), first order in the step:

        x_s = x_t + (s - t) F(x_t, t),   F(x, t) = f(x, t) - 1/2 g(t)^2 score(x, t)

    Deterministic: nothing is drawn after x_T. NFE: len(times) - 1. Returns x at times[-1].
    """
    grid = _check_solver(score_fn, sde, x_T, times, hook)
    x = x_T
    for t, s in _steps(grid, progress, "ODE (Euler)"):
        x = _after_step(hook, heun_step(x, s - t, _pf_drift(score_fn, sde, x, t, s)), s)
    return x


@torch.no_grad()
def ode_heun(score_fn: ScoreFn, sde: SDE, x_T: Tensor, times: Tensor | Sequence[float], *,
             hook: TimeHook | None = None, progress: bool = False) -> Tensor:
    """Heun's method (the explicit trapezoid rule) on the probability-flow ODE (eq. 13), second order in the step:

        x'  = x_t + (s - t) F(x_t, t)                        an Euler step
        x_s = x_t + (s - t) (F(x_t, t) + F(x', s)) / 2       corrected by the slope at its end

    as in Karras et al. 2022, Algorithm 1. A step to a time s where the score is undefined (std(s) = 0: t = 0 of
    the VP SDE or of a DDPM schedule) keeps the Euler step x', as EDM does for sigma = 0 (its line 9).
    NFE: 2 (len(times) - 1), one less when the grid ends where std = 0. Returns x at times[-1].
    """
    grid = _check_solver(score_fn, sde, x_T, times, hook)
    x = x_T
    for t, s in _steps(grid, progress, "ODE (Heun)"):
        # a float comparison, free: where std(s) = 0 the score is undefined and Euler's point is kept (EDM's line 9)
        end_slope = None if sde.marginal(s)[1] == 0 else partial(_pf_drift, score_fn, sde, t=s, toward=t)
        x = _after_step(hook, heun_step(x, s - t, _pf_drift(score_fn, sde, x, t, s), end_slope), s)
    return x


@torch.no_grad()
def ode_rk45(score_fn: ScoreFn, sde: SDE, x_T: Tensor, times: Tensor | Sequence[float], *, rtol: float = 1e-5,
             atol: float = 1e-5, progress: bool = False) -> Tensor:
    """The probability-flow ODE (eq. 13) by adaptive Runge-Kutta 4(5) (Dormand-Prince), as score_sde samples
    (sec. 4.3, App. D): scipy.integrate.solve_ivp(method="RK45") from times[0] to times[-1], rtol = atol = 1e-5.

    The solver picks its own steps (local error estimate <= atol + rtol |x| per coordinate), so only the ends of
    `times` matter: `time_grid(1, t_min)` is enough. The state is x flattened to one float64 numpy vector (the
    whole batch is one ODE, the error control is over all of it); each evaluation builds x in x_T's dtype on its
    device and calls score_fn on it. On a GPU every evaluation therefore copies x to the device and the slope
    back to the host (a synchronisation per evaluation: solve_ivp runs on the host, there is no way around it).
    NFE: the number of score_fn calls (solve_ivp's nfev), about 6 per accepted step; count them with
    `CountedScore`. progress: a bar that counts evaluations. Returns x at times[-1], x_T's shape, dtype, device.
    """
    grid = _check_solver(score_fn, sde, x_T, times)
    rtol = check_number("rtol", rtol, low=0, low_open=True)
    atol = check_number("atol", atol, low=0, low_open=True)
    from tqdm.auto import tqdm

    with tqdm(disable=not progress, desc="ODE (RK45)", unit=" NFE", leave=False, miniters=1) as bar:
        def slope(t: float, y: Tensor) -> Tensor:  # dx/dt = F(x, t) of eq. 13
            bar.update(1)
            x = y.to(x_T.device, x_T.dtype)
            # f and g at t itself, not `coefficient_time`'s: RK45 evaluates anywhere in an interval, not at grid
            # points, and where a schedule's coefficients jump its step-size control finds the jump
            score, _ = evaluate_score(score_fn, x, t)
            return probability_flow_drift(sde, x, t, score=score)

        x, _ = solve_ivp_tensor(slope, x_T, grid[0], grid[-1], rtol=rtol, atol=atol)
    return x.to(x_T.device, x_T.dtype)


# ------------------------------------------------------------------------ on a discrete schedule: the registry's
def _on_schedule(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor,
                 hook: Hook | None) -> tuple[ScheduleSDE, ScoreFn, Tensor, TimeHook | None]:
    """The schedule's VP process, the score of the eps-model at its grid times, the grid, and the hook in time."""
    check_run(eps_model, schedule, x_T, hook)
    sde, steps = ScheduleSDE(schedule), training_steps(schedule)
    time_hook = None if hook is None else (lambda x, t: hook(x, steps[round(t * sde.T)]))
    return sde, sde.score_fn(eps_model), sde.times, time_hook


def sde_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, generator: torch.Generator | None = None,
               hook: Hook | None = None, progress: bool = False) -> Tensor:
    """The sampler "sde": `euler_maruyama` on the schedule's VP process. Returns x0 (B, ...)."""
    sde, score_fn, times, time_hook = _on_schedule(eps_model, schedule, x_T, hook)
    return euler_maruyama(score_fn, sde, x_T, times, generator=generator, hook=time_hook, progress=progress)


def pc_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, snr: float = 0.16,
              corrector_steps: int = 1, generator: torch.Generator | None = None, hook: Hook | None = None,
              progress: bool = False) -> Tensor:
    """The sampler "pc": `predictor_corrector` on the schedule's VP process. Returns x0 (B, ...)."""
    sde, score_fn, times, time_hook = _on_schedule(eps_model, schedule, x_T, hook)
    return predictor_corrector(score_fn, sde, x_T, times, snr=snr, corrector_steps=corrector_steps,
                               generator=generator, hook=time_hook, progress=progress)


def ode_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, generator: torch.Generator | None = None,
               hook: Hook | None = None, progress: bool = False) -> Tensor:
    """The sampler "ode": `ode_heun` on the schedule's VP process (deterministic). Returns x0 (B, ...)."""
    sde, score_fn, times, time_hook = _on_schedule(eps_model, schedule, x_T, hook)
    return ode_heun(score_fn, sde, x_T, times, hook=time_hook, progress=progress)


def ode_euler_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *,
                     generator: torch.Generator | None = None, hook: Hook | None = None,
                     progress: bool = False) -> Tensor:
    """The sampler "ode_euler": `ode_euler` on the schedule's VP process (deterministic). Returns x0 (B, ...)."""
    sde, score_fn, times, time_hook = _on_schedule(eps_model, schedule, x_T, hook)
    return ode_euler(score_fn, sde, x_T, times, hook=time_hook, progress=progress)
