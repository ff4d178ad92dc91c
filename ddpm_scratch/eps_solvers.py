"""Lecture 4: higher-order solvers of the probability-flow ODE on an eps-model, over a discrete schedule's steps.

(Their lecture-3 siblings in `score_solvers` work on a score function in an SDE's continuous time instead.)


DDIM at eta = 0 is Euler's method on the probability-flow ODE written in good variables (DDIM sec. 4.3). The
samplers here solve the same ODE with fewer network calls by using more than one eps per step. All of them step
through the indices T, ..., 1, 0 of the schedule they are given (respace it for fewer steps; index 0 is the data,
so the last step lands on it) and call the network at the training steps those indices stand for, through
`reverse_steps.eps_at`, with the caller's hook after every step. Notation, at index i:

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
   `schedules.karras_timesteps` takes, for each sigma_i, the training step whose sigma is nearest in log sigma, and
   the sampler runs on those steps (spacing "karras" of `schedules.respaced`): the solver and the network then agree on
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
modes separate), and worst for EDM's Heun, which has half the steps. Quadratic steps do best for 2M and UniPC at
5-20 evaluations in 2-D and tie in 64-D, so they are those two samplers' default (`sampling.FEW_STEP_SPACING`);
EDM's Heun keeps uniform steps (quadratic ones cost it 1.8-27x there).

The per-step formulas (`dpm_solver_pp_step`, `edm_step`, `unipc_step`) trust their inputs, like `ddim.ddim_step`;
the whole-run functions check theirs once. Every coefficient is computed from the schedule in float64 on the
host, once per run, so no step reads anything back from the device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .checks import check_choice, check_int
from .forward import x0_from_eps
from .integrators import heun_step
from .nets.protocol import EpsModel
from .reverse_steps import Hook, after_step, check_run, eps_at, reverse_indices, training_steps
from .schedules import NoiseSchedule

__all__ = ["dpm_solver_pp_step", "dpm_solver_pp_sample", "edm_step", "edm_sample",
           "unipc_step", "unipc_sample", "UNIPC_VARIANTS"]

UNIPC_VARIANTS = ("bh1", "bh2")  # B(h) = -h (Zhao et al.'s choice under 10 steps) or e^{-h} - 1 (diffusers' default)
PreviousOutputs = Sequence[tuple[int, Tensor]]  # earlier (index, x0) pairs of a multistep method, most recent first


class NoiseLevels:
    """alpha_i, sigma_i, lambda_i and sigma_EDM_i of every index of a schedule, as float64 Python numbers."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        alpha_bar = schedule.alpha_bars.detach().to("cpu", torch.float64)
        self.alpha = alpha_bar.sqrt().tolist()
        self.sigma = (1 - alpha_bar).sqrt().tolist()
        self.lam = [math.log(a / s) if s > 0 else math.inf for a, s in zip(self.alpha, self.sigma, strict=True)]
        self.sigma_edm = [s / a for a, s in zip(self.alpha, self.sigma, strict=True)]


# ------------------------------------------------------------------------------------------- per-step formulas
def _exp_neg_h(levels: NoiseLevels, t: int, s: int) -> float:
    """e^{-h} = e^{lambda_t - lambda_s} = (alpha_t sigma_s) / (sigma_t alpha_s): 0 at s = 0 (the data)."""
    return levels.alpha[t] * levels.sigma[s] / (levels.sigma[t] * levels.alpha[s])


def dpm_solver_pp_step(schedule: NoiseSchedule, x_t: Tensor, t: int, s: int, *, x0: Tensor,
                       previous: PreviousOutputs = (), levels: NoiseLevels | None = None) -> Tensor:
    """One DPM-Solver++ step x_t -> x_s (s < t, Python ints) given the data prediction x0 at t and `previous`:
    none for the first-order step (DDIM's), or [(u, x0_u)], the previous step's index and output, for 2M
    (Algorithm 2, diffusers' solver_type="midpoint"):

        x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) D,   h = lambda_s - lambda_t,
        D = x0 (first order)   or   D = (1 + 1/(2 r)) x0 - 1/(2 r) x0_u,  r = (lambda_t - lambda_u) / h.

    e^{-h} = (alpha_t sigma_s) / (sigma_t alpha_s) is 0 at s = 0, so the first-order step returns x0 there; 2M
    needs s >= 1 (r = 0 at s = 0). levels: the schedule's coefficients, precomputed by the caller (or here).
    """
    levels = levels or NoiseLevels(schedule)
    exp_neg_h = _exp_neg_h(levels, t, s)
    d = x0
    if previous:
        ((u, x0_u),) = previous
        r = (levels.lam[t] - levels.lam[u]) / (levels.lam[s] - levels.lam[t])
        d = x0 + (x0 - x0_u) / (2 * r)
    return levels.sigma[s] / levels.sigma[t] * x_t - levels.alpha[s] * (exp_neg_h - 1) * d


def edm_step(schedule: NoiseSchedule, x_t: Tensor, t: int, s: int, *, eps: Tensor,
             eps_at_end: Callable[[Tensor], Tensor] | None = None, levels: NoiseLevels | None = None) -> Tensor:
    """One step of EDM's Algorithm 1 from index t to s < t: Heun's method (`integrators.heun_step`) on
    d x_bar / d sigma_EDM = eps in x_bar = x / alpha, returned as x_s = alpha_s x_bar_s.

    eps: eps_theta(x_t, t).  eps_at_end(x) -> eps_theta(x, s), called at the Euler point x = alpha_s x_bar' for
    Heun's correction (line 7); None: Euler's step alone, x_bar_s = x_bar_t + (sigma_s - sigma_t) eps (DDIM's step;
    EDM's last step, to sigma = 0). The slope d = (x_bar - D(x_bar; sigma)) / sigma of EDM's ODE, with the denoiser
    D = x_bar - sigma eps that a VP eps-model gives (EDM's VPPrecond), is eps itself.
    """
    levels = levels or NoiseLevels(schedule)
    alpha_s = levels.alpha[s]
    end_slope = None if eps_at_end is None else (lambda x_bar: eps_at_end(alpha_s * x_bar))
    return alpha_s * heun_step(x_t / levels.alpha[t], levels.sigma_edm[s] - levels.sigma_edm[t], eps, end_slope)


def unipc_step(schedule: NoiseSchedule, x_t: Tensor, t: int, s: int, *, x0: Tensor, previous: PreviousOutputs = (),
               x0_s: Tensor | None = None, variant: str = "bh2", levels: NoiseLevels | None = None) -> Tensor:
    """UniPC's step x_t -> x_s in data prediction (Zhao et al. 2023 with B(h); diffusers' multistep_uni_p_bh_update
    and multistep_uni_c_bh_update): the predictor UniP, or, given x0_s (the network's x0 at the predicted x_s),
    the corrector UniC, which redoes the same step from x_t with that one more point.

        x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0 - alpha_s B(h) sum_k rho_k D_k,
        D_k = (x0_k - x0) / r_k,   r_k = (lambda_k - lambda_t) / h,   h = lambda_s - lambda_t,

    over the points k of `previous` (earlier (index, x0) pairs, most recent first: r_k < 0) and, for the
    corrector, the end point (x0_s, r = 1). With K points, rho solves the Vandermonde system
    sum_k rho_k r_k^(j-1) = j! z phi_{j+1}(z) / B(h), j = 1..K, at z = -h, where phi_1(z) = (e^z - 1) / z and
    phi_{j+1}(z) = (phi_j(z) - 1/j!) / z; for K = 1, rho = 1/2 (UniP-2 and UniC-1 in the paper's code and
    diffusers'). B(h) = e^{-h} - 1 ("bh2") or -h ("bh1"). The predictor's order is len(previous) + 1; the
    corrector's one more. s = 0 (e^{-h} = 0) takes no points: the step returns x0.
    """
    levels = levels or NoiseLevels(schedule)
    exp_neg_h = _exp_neg_h(levels, t, s)
    base = levels.sigma[s] / levels.sigma[t] * x_t - levels.alpha[s] * (exp_neg_h - 1) * x0
    points = [(levels.lam[k] - levels.lam[t], x0_k) for k, x0_k in previous]
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
def _data_prediction(eps_model: EpsModel, schedule: NoiseSchedule, x: Tensor, i: int) -> Tensor:
    """x0 at index i from the network's eps (called at training step timesteps[i])."""
    return x0_from_eps(schedule, x, i, eps=eps_at(eps_model, schedule, x, i))


@torch.no_grad()
def dpm_solver_pp_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *,
                         generator: torch.Generator | None = None, hook: Hook | None = None,
                         progress: bool = False) -> Tensor:
    """DPM-Solver++(2M) from x_T over every index of `schedule` (respace it for fewer): one network call a step,
    first order on the first step (one output) and on the last (to sigma = 0), 2M between. Returns x0 (B, ...).
    Deterministic (generator is not used).  hook(x, t) -> x after every step (`reverse_steps`)."""
    check_run(eps_model, schedule, x_T, hook)
    levels, steps, schedule = NoiseLevels(schedule), training_steps(schedule), schedule.to(x_T.device)
    x, previous = x_T, []
    for i in reverse_indices(schedule, progress, "DPM-Solver++(2M)"):
        x0 = _data_prediction(eps_model, schedule, x, i)
        x = dpm_solver_pp_step(schedule, x, i, i - 1, x0=x0, previous=previous if i > 1 else (), levels=levels)
        x, previous = after_step(hook, x, steps[i - 1]), [(i, x0)]
    return x


@torch.no_grad()
def edm_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, generator: torch.Generator | None = None,
               hook: Hook | None = None, progress: bool = False) -> Tensor:
    """EDM's deterministic Heun sampler (Algorithm 1, S_churn = 0) from x_T over every index of `schedule`: 2 T' - 1
    network calls, the last step (to sigma = 0) Euler's. For EDM's own grid sample with spacing "karras"
    (`schedules.karras_timesteps`). Returns x0 (B, ...). hook(x, t) -> x after every step (`reverse_steps`)."""
    check_run(eps_model, schedule, x_T, hook)
    levels, steps, schedule = NoiseLevels(schedule), training_steps(schedule), schedule.to(x_T.device)
    x = x_T
    for i in reverse_indices(schedule, progress, "EDM Heun"):
        eps = eps_at(eps_model, schedule, x, i)
        # Heun's correction needs eps at the Euler point, undefined at sigma = 0 (line 6: only where sigma_{i+1} != 0)
        eps_at_end = (lambda x_euler, s=i - 1: eps_at(eps_model, schedule, x_euler, s)) if i > 1 else None
        x = after_step(hook, edm_step(schedule, x, i, i - 1, eps=eps, eps_at_end=eps_at_end, levels=levels),
                       steps[i - 1])
    return x


@torch.no_grad()
def unipc_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, order: int = 2, variant: str = "bh2",
                 generator: torch.Generator | None = None, hook: Hook | None = None, progress: bool = False) -> Tensor:
    """UniPC from x_T over every index of `schedule`: one network call a step, the UniP-order predictor, then the
    UniC corrector (order + 1) after every call but the first. variant: "bh2" (B(h) = e^{-h} - 1) or "bh1"
    (B(h) = -h). Returns x0 (B, ...).

    As diffusers' UniPCMultistepScheduler: the network's output at the predicted point both corrects that point
    and, unchanged, feeds the next predictor; the predictor's order is min(order, steps left, outputs so far)
    ("lower_order_final"), so the last step is first order; the corrector's order is its predictor's plus one.
    hook(x, t) -> x after every step, on the state the next step starts from: the corrected one (UniC needs the
    network's output at the predicted point, so it comes one call later), and at t = 0 the last predictor's, where
    no corrector follows. The network itself is called at the predicted points, as UniPC is designed.
    """
    check_run(eps_model, schedule, x_T, hook)
    check_int("order", order)
    if order > 2:
        raise ValueError(f"order must be 1 or 2, got {order}")
    check_choice("variant", variant, UNIPC_VARIANTS)
    levels, steps, schedule = NoiseLevels(schedule), training_steps(schedule), schedule.to(x_T.device)
    x, previous, start, used = x_T, [], None, 0
    for i in reverse_indices(schedule, progress, f"UniPC-{order}"):
        x0 = _data_prediction(eps_model, schedule, x, i)
        if start is not None:  # UniC: redo the last step from its start with this output as one more point
            (t, x0_t), *older = previous
            x = unipc_step(schedule, start, t, i, x0=x0_t, previous=older[: used - 1], x0_s=x0, variant=variant,
                           levels=levels)
            x = after_step(hook, x, steps[i])  # the corrected x_i: where the next predictor starts
        previous = [(i, x0), *previous][:order]
        used = min(order, i, len(previous))
        start = x
        x = unipc_step(schedule, x, i, i - 1, x0=x0, previous=previous[1:used], variant=variant, levels=levels)
    return after_step(hook, x, steps[0])  # the last step's x0: no corrector follows
