"""Lecture 4: higher-order solvers of the probability-flow ODE, on the eps-model interface.

DDIM at eta = 0 is Euler's method on the probability-flow ODE written in good variables (DDIM sec. 4.3). The
samplers here solve the same ODE with fewer network calls by using more than one eps per step. All of them step
through the indices T, ..., 1, 0 of the schedule they are given (respace it for fewer steps; index 0 is the data,
so the last step lands on it) and call the network at the training steps those indices stand for, through
`forward.predict_eps`. Notation, at index i:

    alpha_i = sqrt(alpha_bar_i),   sigma_i = sqrt(1 - alpha_bar_i),   x_i = alpha_i x0 + sigma_i eps
    lambda_i = log(alpha_i / sigma_i)                  half the log-SNR; lambda_0 = +inf at the data
    x0_i = x0_from_eps(schedule, x_i, i, eps=eps_theta(x_i, timesteps[i]))        the data prediction

1. DPM-Solver++ (Lu et al. 2022, "DPM-Solver++: fast solver for guided sampling of diffusion probabilistic
   models"). In lambda the ODE has an exact solution from index t to index s < t, with h = lambda_s - lambda_t > 0:

       x_s = (sigma_s / sigma_t) x_t + sigma_s int_{lambda_t}^{lambda_s} e^lambda x0(lambda) dlambda

   Holding x0 at x0_t gives x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0_t, which is DDIM's step
   (first order). The multistep method "2M" (Algorithm 2) replaces x0 by its line through the last two outputs:

       D = (1 + 1 / (2 r)) x0_t - 1 / (2 r) x0_u,    r = h_u / h,   h_u = lambda_t - lambda_u   (u: the step before)
       x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D

   One network call per step, global order 2. The first step has one output only, so it is first order. The last
   step, to sigma = 0 where lambda is infinite, is first order too and returns x0_1 itself (e^{-h} = 0): that
   is diffusers' "lower_order_final" (final_sigmas_type="zero"), which its author found necessary for 2M with
   10 steps or fewer; for 2M it touches the last step only. (The third-order "3M" was measured too: with its
   first-order first step it is second order on the Gaussian's exact flow, and no better than 2M at 10
   evaluations on the benchmark's mixtures, so it is not kept.)

2. EDM's sampler (Karras et al. 2022, "Elucidating the design space of diffusion-based generative models",
   Algorithm 1: deterministic, S_churn = 0). In the variance-exploding variables

       x_bar = x / alpha,    sigma_EDM = sigma / alpha = sqrt((1 - alpha_bar) / alpha_bar),
       d x_bar / d sigma_EDM = eps_theta(alpha x_bar, t)                        (the ODE DDIM discretises)

   a step from index t to s is Heun's method: Euler to x_bar' = x_bar + (sigma_EDM_s - sigma_EDM_t) eps, then
   x_bar_s = x_bar + (sigma_EDM_s - sigma_EDM_t) (eps + eps') / 2 with eps' = eps_theta at (x_bar', s). The
   Euler step is DDIM's; Heun's is DDIM's with the trapezoid's average eps. The last step, to sigma = 0, is
   Euler's alone (the algorithm corrects only where sigma_{i+1} != 0): 2 N - 1 calls for N steps.
   EDM's grid: sigma_i = (sigma_max^(1/rho) + i / (N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, rho = 7
   (eq. 5), dense near the data. A network trained on DDPM's steps knows only their noise levels, so
   `karras_timesteps` takes, for each sigma_i, the training step whose sigma is nearest in log sigma, and the
   sampler runs on `schedule.respace(karras_timesteps(schedule, N))`: the solver and the network then agree on
   every noise level exactly. (diffusers' "use_karras_sigmas" instead keeps sigma_i in the solver and calls
   the network at the step interpolated in log sigma, rounded: the two disagree by up to half a step.)

3. UniPC (Zhao et al. 2023, "UniPC: a unified predictor-corrector framework for fast sampling of diffusion
   models"; data prediction, B(h) = e^{-h} - 1, "bh2"; wl-zhao/UniPC uni_pc.py, diffusers'
   UniPCMultistepScheduler). The predictor UniP-p is a multistep method like DPM-Solver++ whose coefficients
   solve a small linear system; after it, the network is called at the predicted point anyway, for the next
   step, and the corrector UniC uses that output to redo the step with one more point: order p + 1 for no
   extra call. The output stored for the next predictor is the one at the uncorrected point, as in the paper's
   code and diffusers'. The last step (to sigma = 0) is first order and returns that uncorrected x0, so the last
   correction does not reach the output. UniPC with p = 2 is third order (measured: error ratio 8.06 per
   doubling of the steps on the Gaussian's exact flow), UniPC-1 (DDIM + corrector) second. p = 3 was no better
   than p = 2 at 10 evaluations on the benchmark's mixtures, and is not offered.

Which steps: all of them run on whatever steps the schedule holds (`sampling.sample(..., spacing=...)`). On the
exact mixtures of benchmarks/fast_samplers.py the Karras grid (rho = 7 from sigma_EDM 0.01 to 157) is poor below
20 evaluations for every solver (its 5 levels are 157, 37, 5.9, 0.49, 0.01: big jumps where the mixture's
modes separate), and worst for EDM's Heun, which has half the steps. Quadratic steps did best at 10 evaluations
in 2-D, uniform ones in 64-D.

The per-step formulas (`dpm_solver_pp_step`, `edm_step`, `unipc_step`) trust their inputs, like `ddim.ddim_step`;
the whole-run functions check theirs once. Every coefficient is computed from the schedule in float64 on the
host, once per run, so no step reads anything back from the device.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .checks import check_choice, check_int, check_number
from .ddpm import initial_noise
from .forward import PREDICTIONS, predict_eps, x0_from_eps
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, check_schedule

__all__ = ["karras_sigmas", "karras_timesteps", "dpm_solver_pp_step", "dpm_solver_pp_reverse",
           "dpm_solver_pp_sample", "edm_step", "edm_reverse", "edm_sample", "unipc_step", "unipc_reverse",
           "unipc_sample", "UNIPC_VARIANTS"]

UNIPC_VARIANTS = ("bh1", "bh2")  # B(h) = -h (Zhao et al.'s choice under 10 steps) or e^{-h} - 1 (diffusers' default)
F64 = torch.float64
History = Sequence[tuple[int, Tensor]]  # earlier (index, x0) pairs of a multistep method, most recent first


class _Levels:
    """alpha_i, sigma_i, lambda_i and sigma_EDM_i of every index of a schedule, as float64 Python numbers."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        alpha_bar = schedule.alpha_bars.detach().to("cpu", torch.float64)
        self.alpha = alpha_bar.sqrt().tolist()
        self.sigma = (1 - alpha_bar).sqrt().tolist()
        self.lam = [math.log(a / s) if s > 0 else math.inf for a, s in zip(self.alpha, self.sigma, strict=True)]
        self.sigma_edm = [s / a for a, s in zip(self.alpha, self.sigma, strict=True)]


# ------------------------------------------------------------------------------------------- EDM's grid
def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> Tensor:
    """EDM's noise levels (Karras et al. 2022, eq. 5), decreasing from sigma_max to sigma_min, float64 (num_steps,):

        sigma_i = (sigma_max^(1/rho) + i / (N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i = 0..N-1.

    rho = 1 is uniform in sigma; larger rho crowds the levels near sigma_min (rho = 7 in the paper). N = 1 gives
    sigma_max alone.
    """
    check_number("sigma_min", sigma_min, 0.0, low_open=True)
    check_number("sigma_max", sigma_max, sigma_min)
    check_int("num_steps", num_steps)
    check_number("rho", rho, 0.0, low_open=True)
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64) if num_steps > 1 else torch.zeros(1, dtype=F64)
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (top + ramp * (bottom - top)) ** rho


def karras_timesteps(schedule: NoiseSchedule, num_steps: int, rho: float = 7.0) -> Tensor:
    """The num_steps training steps of `schedule` nearest to EDM's levels, increasing in 1..T (for `respace`).

    sigma_EDM_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) of steps 1..T bounds the levels: sigma_min = sigma_EDM_1,
    sigma_max = sigma_EDM_T; each level of `karras_sigmas` goes to the step nearest in log sigma. Where several
    levels fall on one step (many steps, near the ends) the steps are pushed apart to stay distinct: the k-th
    smallest is kept within k..T - num_steps + k and above the one before. The first step is T, the last 1.
    """
    check_schedule(schedule)
    check_int("num_steps", num_steps)
    if num_steps > schedule.T:
        raise ValueError(f"num_steps must be <= T={schedule.T}, got {num_steps}")
    alpha_bar = schedule.alpha_bars.detach().to("cpu", torch.float64)[1:]
    log_sigma = 0.5 * ((1 - alpha_bar) / alpha_bar).log()  # increasing in t
    levels = karras_sigmas(log_sigma[0].exp().item(), log_sigma[-1].exp().item(), num_steps, rho).flip(0)
    nearest = (levels.log()[:, None] - log_sigma[None, :]).abs().argmin(dim=1) + 1  # steps 1..T
    steps, T = [], schedule.T
    for k, step in enumerate(nearest.tolist(), start=1):
        step = min(max(step, k), T - num_steps + k)
        steps.append(max(step, steps[-1] + 1) if steps else step)
    return torch.tensor(steps, dtype=torch.long)


# ------------------------------------------------------------------------------------------- per-step formulas
def _exp_neg_h(levels: _Levels, t: int, s: int) -> float:
    """e^{-h} = e^{lambda_t - lambda_s} = (alpha_t sigma_s) / (sigma_t alpha_s): 0 at s = 0 (the data)."""
    return levels.alpha[t] * levels.sigma[s] / (levels.sigma[t] * levels.alpha[s])


def dpm_solver_pp_step(schedule: NoiseSchedule, x_t: Tensor, t: int, s: int, *, x0: Tensor,
                       history: History = (), levels: _Levels | None = None) -> Tensor:
    """One DPM-Solver++ step x_t -> x_s (s < t, Python ints) given the data prediction x0 at t and `history`:
    none for the first-order step (DDIM's), or [(u, x0_u)], the previous step's index and output, for 2M
    (Algorithm 2, diffusers' solver_type="midpoint"):

        x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D,   h = lambda_s - lambda_t,
        D = x0 (first order)   or   D = (1 + 1/(2 r)) x0 - 1/(2 r) x0_u,  r = (lambda_t - lambda_u) / h.

    e^{-h} = (alpha_t sigma_s) / (sigma_t alpha_s) is 0 at s = 0, so the first-order step returns x0 there; 2M
    needs s >= 1 (r = 0 at s = 0). levels: the schedule's coefficients, precomputed by the caller (or here).
    """
    levels = levels or _Levels(schedule)
    exp_neg_h = _exp_neg_h(levels, t, s)
    d = x0
    if history:
        ((u, x0_u),) = history
        r = (levels.lam[t] - levels.lam[u]) / (levels.lam[s] - levels.lam[t])
        d = x0 + (x0 - x0_u) / (2 * r)
    return levels.sigma[s] / levels.sigma[t] * x_t - levels.alpha[s] * (exp_neg_h - 1) * d


def edm_step(schedule: NoiseSchedule, x_t: Tensor, t: int, s: int, *, eps: Tensor, eps_euler: Tensor | None = None,
             levels: _Levels | None = None) -> Tensor:
    """One step of EDM's Algorithm 1 from index t to s < t, in x_bar = x / alpha and sigma_EDM, returned as x_s.

    eps: eps_theta(x_t, t).  eps_euler: None for Euler's step, x_bar_s = x_bar_t + (sigma_s - sigma_t) eps (DDIM's
    step), or eps_theta at that Euler point for Heun's correction: the same step with slope (eps + eps_euler) / 2.
    The slope d = (x_bar - D(x_bar; sigma)) / sigma of EDM's ODE, with the denoiser D = x_bar - sigma eps that a
    VP eps-model gives (EDM's VPPrecond), is eps itself.
    """
    levels = levels or _Levels(schedule)
    slope = eps if eps_euler is None else (eps + eps_euler) / 2
    x_bar = x_t / levels.alpha[t] + (levels.sigma_edm[s] - levels.sigma_edm[t]) * slope
    return levels.alpha[s] * x_bar


def unipc_step(schedule: NoiseSchedule, x_t: Tensor, t: int, s: int, *, x0: Tensor, history: History = (),
               x0_s: Tensor | None = None, variant: str = "bh2", levels: _Levels | None = None) -> Tensor:
    """UniPC's step x_t -> x_s in data prediction (Zhao et al. 2023 with B(h); diffusers' multistep_uni_p_bh_update
    and multistep_uni_c_bh_update): the predictor UniP, or, given x0_s (the network's x0 at the predicted x_s),
    the corrector UniC, which redoes the same step from x_t with that one more point.

        x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0 - alpha_s B(h) sum_k rho_k D_k,
        D_k = (x0_k - x0) / r_k,   r_k = (lambda_k - lambda_t) / h,   h = lambda_s - lambda_t,

    over the points k of `history` (earlier (index, x0) pairs, most recent first: r_k < 0) and, for the
    corrector, the end point (x0_s, r = 1). With K points, rho solves the Vandermonde system
    sum_k rho_k r_k^(j-1) = j! z phi_{j+1}(z) / B(h), j = 1..K, at z = -h, where phi_1(z) = (e^z - 1) / z and
    phi_{j+1}(z) = (phi_j(z) - 1/j!) / z; for K = 1, rho = 1/2 (UniP-2 and UniC-1 in the paper's code and
    diffusers'). B(h) = e^{-h} - 1 ("bh2") or -h ("bh1"). The predictor's order is len(history) + 1; the
    corrector's one more. s = 0 (e^{-h} = 0) takes no points: the step returns x0.
    """
    levels = levels or _Levels(schedule)
    exp_neg_h = _exp_neg_h(levels, t, s)
    base = levels.sigma[s] / levels.sigma[t] * x_t - levels.alpha[s] * (exp_neg_h - 1) * x0
    points = [(levels.lam[k] - levels.lam[t], x0_k) for k, x0_k in history]
    if x0_s is not None:
        points.append((levels.lam[s] - levels.lam[t], x0_s))
    if not points:
        return base
    h = levels.lam[s] - levels.lam[t]
    hh = -h  # data prediction integrates in -lambda
    b_h = math.expm1(hh) if variant == "bh2" else hh
    rks = [dl / h for dl, _ in points]
    if len(points) == 1:
        rhos = [0.5]
    else:  # rhs_j = j! z phi_{j+1}(z) / B(h) at z = hh; phi holds z phi_{j+1}(z), from z phi_2 = phi_1 - 1
        phi, factorial, rhs = math.expm1(hh) / hh - 1, 1, []
        for j in range(1, len(points) + 1):
            rhs.append(phi * factorial / b_h)
            factorial *= j + 1
            phi = phi / hh - 1 / factorial
        vandermonde = torch.tensor([[r ** (j - 1) for r in rks] for j in range(1, len(points) + 1)],
                                   dtype=torch.float64)
        rhos = torch.linalg.solve(vandermonde, torch.tensor(rhs, dtype=torch.float64)).tolist()
    correction = sum(rho * (x0_k - x0) / r for rho, r, (_, x0_k) in zip(rhos, rks, points, strict=True))
    return base - levels.alpha[s] * b_h * correction


# ------------------------------------------------------------------------------------------- whole runs
def _data_prediction(eps_model: EpsModel, schedule: NoiseSchedule, x: Tensor, i: int, prediction: str) -> Tensor:
    """x0 at index i from the network's output (called at training step timesteps[i])."""
    return x0_from_eps(schedule, x, i, eps=predict_eps(eps_model, schedule, x, i, prediction=prediction))


def _steps(schedule: NoiseSchedule, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(range(schedule.T, 0, -1), disable=not progress, desc=desc, leave=False, miniters=1)


def dpm_solver_pp_reverse(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str = "eps",
                          progress: bool = False) -> Iterator[tuple[int, Tensor]]:
    """Run DPM-Solver++(2M) from x_T, yielding (i - 1, x_{i-1}) after each step, ending with (0, x0): first
    order on the first step (one output) and on the last (to sigma = 0), 2M between. One network call per step.
    Arguments trusted (dpm_solver_pp_sample checks them)."""
    levels, device_schedule = _Levels(schedule), schedule.to(x_T.device)
    x, history = x_T, []
    for i in _steps(schedule, progress, "DPM-Solver++(2M)"):
        x0 = _data_prediction(eps_model, device_schedule, x, i, prediction)
        x = dpm_solver_pp_step(device_schedule, x, i, i - 1, x0=x0, history=history if i > 1 else (), levels=levels)
        history = [(i, x0)]
        yield i - 1, x


def edm_reverse(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, prediction: str = "eps",
                progress: bool = False) -> Iterator[tuple[int, Tensor]]:
    """Run EDM's Heun sampler (Algorithm 1, S_churn = 0) over the schedule's indices from x_T, yielding
    (i - 1, x_{i-1}); the last step (to sigma = 0) is Euler's. 2 T - 1 network calls for T steps."""
    levels, device_schedule = _Levels(schedule), schedule.to(x_T.device)
    x = x_T
    for i in _steps(schedule, progress, "EDM Heun"):
        eps = predict_eps(eps_model, device_schedule, x, i, prediction=prediction)
        x_euler = edm_step(device_schedule, x, i, i - 1, eps=eps, levels=levels)
        if i > 1:  # Heun's correction needs eps at the Euler point, undefined at sigma = 0
            eps_euler = predict_eps(eps_model, device_schedule, x_euler, i - 1, prediction=prediction)
            x_euler = edm_step(device_schedule, x, i, i - 1, eps=eps, eps_euler=eps_euler, levels=levels)
        x = x_euler
        yield i - 1, x


def unipc_reverse(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, order: int = 2, variant: str = "bh2",
                  prediction: str = "eps", progress: bool = False) -> Iterator[tuple[int, Tensor]]:
    """Run UniPC (UniP-order predictor, UniC corrector after every call but the first) from x_T, yielding
    (i - 1, x_{i-1}) after each predictor step, ending with (0, x0). One network call per step.

    As diffusers' UniPCMultistepScheduler: the network's output at the predicted point both corrects that point
    and, unchanged, feeds the next predictor; the predictor's order is min(order, steps left, outputs so far)
    ("lower_order_final"), so the last step is first order; the corrector's order is its predictor's plus one.
    """
    levels, device_schedule = _Levels(schedule), schedule.to(x_T.device)
    x, history, start, used = x_T, [], None, 0
    for i in _steps(schedule, progress, f"UniPC-{order}"):
        x0 = _data_prediction(eps_model, device_schedule, x, i, prediction)
        if start is not None:  # UniC: redo the last step from its start with this output as one more point
            (t, x0_t), *older = history
            x = unipc_step(device_schedule, start, t, i, x0=x0_t, history=older[: used - 1], x0_s=x0,
                           variant=variant, levels=levels)
        history = [(i, x0), *history][:order]
        used = min(order, i, len(history))
        start = x
        x = unipc_step(device_schedule, x, i, i - 1, x0=x0, history=history[1:used], variant=variant, levels=levels)
        yield i - 1, x


def _run(steps: Iterator[tuple[int, Tensor]]) -> Tensor:
    """The last state of a reverse run, x0 (keeping no other)."""
    ((_, x0),) = deque(steps, maxlen=1)
    return x0


def _start(schedule: NoiseSchedule, shape: Sequence[int], prediction: str, x_T: Tensor | None, device, dtype,
           generator) -> Tensor:
    """The samplers' argument checks, then x_T."""
    check_schedule(schedule)
    check_choice("prediction", prediction, PREDICTIONS)
    return initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)


@torch.no_grad()
def dpm_solver_pp_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *,
                         generator: torch.Generator | None = None, prediction: str = "eps",
                         device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                         x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """DPM-Solver++(2M) over every step of `schedule` (respace it for fewer): x_T ~ N(0, I), then T steps, T
    network calls. Returns x0 (B, ...). generator draws x_T unless x_T is given; prediction: what eps_model
    outputs ("eps", "x0" or "v")."""
    x = _start(schedule, shape, prediction, x_T, device, dtype, generator)
    return _run(dpm_solver_pp_reverse(eps_model, schedule, x, prediction=prediction, progress=progress))


@torch.no_grad()
def edm_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *,
               generator: torch.Generator | None = None, prediction: str = "eps",
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
               x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """EDM's deterministic Heun sampler over every step of `schedule`: 2 T - 1 network calls. For EDM's own grid
    pass `schedule.respace(karras_timesteps(schedule, N))`. Returns x0 (B, ...)."""
    x = _start(schedule, shape, prediction, x_T, device, dtype, generator)
    return _run(edm_reverse(eps_model, schedule, x, prediction=prediction, progress=progress))


@torch.no_grad()
def unipc_sample(eps_model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], *, order: int = 2,
                 variant: str = "bh2", generator: torch.Generator | None = None, prediction: str = "eps",
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 x_T: Tensor | None = None, progress: bool = False) -> Tensor:
    """UniPC over every step of `schedule`: T network calls, UniP-order predictor with the UniC corrector
    (order + 1). variant: "bh2" (B(h) = e^{-h} - 1) or "bh1" (B(h) = -h). Returns x0 (B, ...)."""
    check_int("order", order)
    if order > 2:
        raise ValueError(f"order must be 1 or 2, got {order}")
    check_choice("variant", variant, UNIPC_VARIANTS)
    x = _start(schedule, shape, prediction, x_T, device, dtype, generator)
    return _run(unipc_reverse(eps_model, schedule, x, order=order, variant=variant, prediction=prediction,
                              progress=progress))
