"""Lecture 3: the forward SDE, its marginals, the reverse-time SDE and the probability-flow ODE (Song et al. 2021).

Many small DDPM steps become a stochastic differential equation on t in [0, 1] (Song et al. 2021, eq. 5):

    forward        dx = f(x, t) dt + g(t) dw              here f(x, t) = f(t) x is linear, as in the lecture
    marginal       x_t = mean_coef(t) x0 + std(t) eps      eps ~ N(0, I): the SDE's kernel q(x_t | x0)
    reverse SDE    dx = [f(x, t) - g(t)^2 score(x, t)] dt + g(t) dw_bar     run from t = 1 down to 0 (eq. 6)
    PF-ODE         dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t)                 same marginals, no noise (eq. 13)

with score(x, t) = grad_x log p_t(x). Two SDEs:

    VPSDE   variance preserving: f = -1/2 beta(t) x, g = sqrt(beta(t)), beta linear in t    (eq. 11)
            the continuous limit of DDPM: `VPSDE.discretize(T)` is DDPM's linear schedule (T = 1000 exactly)
    VESDE   variance exploding: f = 0, g = sigma(t) sqrt(2 log(sigma_max / sigma_min)), sigma geometric (eq. 9)

Time t is a Python float (coefficients come back as floats) or a (B,) / () float tensor (they come back as tensors
of t's shape; `schedules.per_example(value, x)` shapes one (B, 1, ..., 1) against a batch x, as `drift` does).
Discrete steps are ints; continuous time is a float, and an int t is refused (`checks.check_time`). Times are
checked where that costs no device synchronisation: always for floats, for tensors on the CPU only.

A score function is any callable score_fn(x, t) (x (B, ...), t (B,) float -> (B, ...)): a network, or the exact
score of known data (`score.mixture_score_fn`). As everywhere in the package, the per-step formulas take what a model
predicted as a keyword, `reverse_drift(sde, x, t, *, score)` and `probability_flow_drift(sde, x, t, *, score)`, and
the whole-run functions take the model first, `solver(score_fn, sde, x_T, times)`, as `ddpm_sample(eps_model,
schedule, x_T)` does; `evaluate_score(score_fn, x, t)` calls a score function with checked arguments.

The solvers that sample these processes are in `score_solvers`, the likelihood in `likelihood`.

A discrete DDPM schedule is a continuous process too: `ScheduleSDE(schedule)` is the VP SDE whose marginals at
t_i = i / T are the schedule's (mean_coef = sqrt(alpha_bar_i)), and `ScheduleSDE.score_fn(eps_model)` turns an
eps-model into a score at those grid times. The fixed-step solvers on `ScheduleSDE.times` are the samplers
"sde", "pc", "ode" and "ode_euler" of `sampling.SAMPLERS` (`score_solvers`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_data, check_int, check_int_tuple, check_number, check_time, check_timestep
from .forward import convert
from .nets.protocol import EpsModel, ScoreFn
from .reverse_steps import eps_at
from .schedules import NoiseSchedule, check_schedule, per_example

__all__ = ["SDE", "VPSDE", "VESDE", "reverse_drift", "probability_flow_drift", "time_from_step",
           "step_from_time", "ScheduleSDE", "evaluate_score",
           "eps_model_score"]

Time = float | Tensor


def _time(t: Time, batch: int | None = None, device: torch.device | None = None) -> Time:
    """A float stays a float (its range checked for free); a tensor goes through `checks.check_time`."""
    if isinstance(t, float):
        return check_number("t", t, 0.0, 1.0)
    return check_time(t, batch=batch, device=device)


def _lib(t: Time):
    """math for a float t, torch for a tensor t: the formulas below are written once for both."""
    return math if isinstance(t, float) else torch


class SDE(ABC):
    """dx = f(t) x dt + g(t) dw on t in [0, 1], with Gaussian marginals and a Gaussian prior N(0, prior_std^2 I)."""

    prior_std: float

    @abstractmethod
    def drift_coef(self, t: Time) -> Time:
        """f(t), the drift per unit of x: f(x, t) = f(t) x."""

    @abstractmethod
    def diffusion(self, t: Time) -> Time:
        """g(t), the noise scale."""

    @abstractmethod
    def marginal(self, t: Time) -> tuple[Time, Time]:
        """(mean_coef(t), std(t)) of the kernel q(x_t | x0) = N(mean_coef(t) x0, std(t)^2 I)."""

    def coefficient_time(self, s: float, t: float) -> float:
        """Where a solver's step between times s and t reads f and g for its end s: s itself here, where f and g
        are continuous in time. `ScheduleSDE` overrides it: its coefficients jump at the grid times, and a step
        must read those of the interval it crosses, not of the next one.  s, t: floats (the step's two ends)."""
        return s

    def drift(self, x: Tensor, t: Time) -> Tensor:
        """f(x, t) = f(t) x.  x: (B, ...).  t: float, or () / (B,) float tensor.  Returns (B, ...)."""
        check_data("x", x)
        return per_example(self.drift_coef(_time(t, x.shape[0], x.device)), x) * x

    def prior_sample(self, shape: Sequence[int], *, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """x_1 ~ N(0, prior_std^2 I) of the given shape (B, ...); the generator must live on `device`."""
        shape = check_int_tuple("shape", shape)
        return self.prior_std * torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """log N(x; 0, prior_std^2 I) in nats, one value per example: (B,).

        = -D/2 log(2 pi prior_std^2) - ||x||^2 / (2 prior_std^2), with D the number of coordinates of one example.
        """
        check_data("x", x)
        D = x[0].numel()
        squared_norm = x.reshape(x.shape[0], -1).pow(2).sum(dim=1)
        return -0.5 * D * math.log(2 * math.pi * self.prior_std ** 2) - squared_norm / (2 * self.prior_std ** 2)


@dataclass(frozen=True)
class VPSDE(SDE):
    """Variance-preserving SDE (Song et al. 2021, eq. 11): dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw.

    beta(t) = beta_min + t (beta_max - beta_min); the defaults 0.1 and 20 make it the limit of DDPM's schedule.
    Marginal (App. B; the solution of the moment equations dm/dt = -1/2 beta m, d(std^2)/dt = beta (1 - std^2)):
        mean_coef(t) = exp(-1/2 int_0^t beta) = exp(-1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min)
        std(t)^2 = 1 - mean_coef(t)^2
    In DDPM's terms mean_coef^2 is alpha_bar and std is sigma_t. Prior N(0, I); at t = 1 with the defaults
    mean_coef^2 = 4.3e-5 (DDPM's alpha_bar_T is 4.0e-5).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    prior_std = 1.0  # a class constant, not a field: the prior is N(0, I)

    def __post_init__(self) -> None:
        check_number("beta_min", self.beta_min, low=0, low_open=True)
        check_number("beta_max", self.beta_max, low=self.beta_min)

    def beta(self, t: Time) -> Time:
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        return self.beta_min + _time(t) * (self.beta_max - self.beta_min)

    def drift_coef(self, t: Time) -> Time:
        return -0.5 * self.beta(t)

    def diffusion(self, t: Time) -> Time:
        return _lib(t).sqrt(self.beta(t))

    def marginal(self, t: Time) -> tuple[Time, Time]:
        t = _time(t)
        lib = _lib(t)
        log_mean_coef = -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        # std^2 = 1 - mean_coef^2 = -expm1(2 log mean_coef): the subtraction 1 - m^2 loses every digit when m is
        # close to 1 (float32 at t = 1e-5: m^2 = 1 - 1e-6 is stored as 1 - 9.5e-7), expm1 keeps them.
        return lib.exp(log_mean_coef), lib.sqrt(-lib.expm1(2 * log_mean_coef))

    def discretize(self, T: int) -> NoiseSchedule:
        """The DDPM schedule whose chain tends to this SDE (Song et al. 2021, sec. 3.4 and App. B).

        beta_i = beta(tau_i) / T at tau_i = (i - 1) / (T - 1) for i = 1..T, i.e. linear from beta_min / T to
        beta_max / T: score_sde's choice, and DDPM's schedule 1e-4..0.02 exactly for T = 1000.
        Time map (`time_from_step`): step i stands for t = i / T, where alpha_bar_i = mean_coef(i / T)^2 + O(1/T)
        (the error times T tends to max_t mean_coef(t)^2 |c(t)| = 0.81 for the defaults, with
        c(t) = 1/2 t (1 - t)(beta_max - beta_min) - 1/2 int_0^t beta^2; tests/test_sde.py derives and measures it).
        T must exceed beta_max so that every beta_i < 1.
        """
        check_int("T", T)
        if T <= self.beta_max:
            raise ValueError(f"T must be > beta_max = {self.beta_max:g} so that beta_T = beta_max / T < 1, got {T}")
        return NoiseSchedule.linear(T, beta_start=self.beta_min / T, beta_end=self.beta_max / T)


@dataclass(frozen=True)
class VESDE(SDE):
    """Variance-exploding SDE (Song et al. 2021, eq. 9): dx = g(t) dw, no drift.

    sigma(t) = sigma_min (sigma_max / sigma_min)^t and g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min)), so that
    d(sigma^2)/dt = g^2. Marginal: mean_coef = 1, std = sigma(t); prior N(0, sigma_max^2 I).
    Like score_sde (sde_lib.VESDE), std is sigma(t), not the exact sqrt(sigma(t)^2 - sigma_min^2) of the SDE
    started at x0: the data at t = 0 count as already noised by N(0, sigma_min^2 I), so marginal(0) = (1, sigma_min)
    and the samplers return data blurred by sigma_min (0.01 by default: about one grey level, 2/255, of 8-bit
    images scaled to [-1, 1]).
    Choose sigma_max about the largest distance between data points (Song & Ermon 2020), so that the prior covers
    the data's marginal at t = 1.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self) -> None:
        check_number("sigma_min", self.sigma_min, low=0, low_open=True)
        check_number("sigma_max", self.sigma_max, low=self.sigma_min, low_open=True)

    @property
    def prior_std(self) -> float:
        return self.sigma_max

    def sigma(self, t: Time) -> Time:
        """sigma(t) = sigma_min (sigma_max / sigma_min)^t."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** _time(t)

    def drift_coef(self, t: Time) -> Time:
        t = _time(t)
        return 0.0 if isinstance(t, float) else torch.zeros_like(t)

    def diffusion(self, t: Time) -> Time:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def marginal(self, t: Time) -> tuple[Time, Time]:
        t = _time(t)
        return (1.0 if isinstance(t, float) else torch.ones_like(t)), self.sigma(t)


# ------------------------------------------------------------------------------------------------- reverse time
def evaluate_score(score_fn: ScoreFn, x: Tensor, t: Time) -> tuple[Tensor, Time]:
    """(score_fn(x, t), t), with score_fn given t as a (B,) tensor on x's device and its output's shape checked.

    The t returned is t checked: a float stays a float, a tensor becomes (B,) on x's device.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
    check_data("x", x)
    t = _time(t, x.shape[0], x.device)
    t_batch = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device) if isinstance(t, float) else t
    score = score_fn(x, t_batch)
    if not isinstance(score, Tensor) or score.shape != x.shape:
        raise ValueError(f"score_fn must return a tensor of x's shape {tuple(x.shape)}, "
                         f"got {tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__}")
    return score, t


def reverse_drift(sde: SDE, x: Tensor, t: Time, *, score: Tensor) -> Tensor:
    """Drift of the reverse-time SDE: f(x, t) - g(t)^2 score (Anderson 1982; Song et al. 2021, eq. 6).

    The reverse SDE dx = [f - g^2 score] dt + g dw_bar runs from t = 1 to t = 0 (dt < 0).
    x: (B, ...).  t: float, or () / (B,) float tensor in [0, 1].  score: grad_x log p_t(x), x's shape (a model's
    output: `evaluate_score(score_fn, x, t)`).  Returns (B, ...).
    """
    return sde.drift(x, t) - per_example(sde.diffusion(t) ** 2, x) * score


def probability_flow_drift(sde: SDE, x: Tensor, t: Time, *, score: Tensor) -> Tensor:
    """dx/dt of the probability-flow ODE: f(x, t) - 1/2 g(t)^2 score (Song et al. 2021, eq. 13).

    Its solutions carry p_t to p_s for every s, t like the SDE does, deterministically.
    x: (B, ...).  t: float, or () / (B,) float tensor in [0, 1].  score: grad_x log p_t(x), x's shape.
    Returns (B, ...).
    """
    return sde.drift(x, t) - 0.5 * per_example(sde.diffusion(t) ** 2, x) * score


def eps_model_score(eps_model: EpsModel, sde: SDE) -> ScoreFn:
    """An eps-network trained in continuous time, as a score function: score(x, t) = -eps_theta(x, t) / std(t).

    The continuous twin of `forward.score_from_eps` (there std = sqrt(1 - alpha_bar_t) at a discrete step): for
    x_t = mean_coef(t) x0 + std(t) eps, grad log q(x_t | x0) = -eps / std(t), so the eps-regression of DSM with
    lambda(t) = std(t)^2 (`score.dsm_loss`, weighting "sigma2") is minimised by E[eps | x_t] = -std(t) score.
    eps_model(x, t): t a (B,) float tensor of times in [0, 1] (the package's networks read float times, see
    `nets.embeddings`).  Undefined where std(t) = 0 (t = 0 of the VP SDE): solvers stop at t_min > 0.
    """
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x, t), got {type(eps_model).__name__}")
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an SDE (VPSDE, VESDE, ...), got {type(sde).__name__}")

    def score(x: Tensor, t: Tensor) -> Tensor:
        return -eps_model(x, t) / per_example(sde.marginal(t)[1], x)

    return score


# ------------------------------------------------------------------------------------ discrete steps <-> time
def time_from_step(step: int | Tensor, T: int) -> Time:
    """Continuous time t = i / T of discrete step i in 0..T (the map under `VPSDE.discretize`).

    An int gives a float, a LongTensor a float64 tensor.  score_sde feeds its networks 999 t instead, which only
    mimics DDPM's integer embedding; any map works if training and sampling use the same one.
    """
    check_int("T", T)
    if isinstance(step, int):
        check_int("step", step, low=0)
        if step > T:
            raise ValueError(f"step must lie in 0..T={T}, got {step}")
        return step / T
    return check_timestep(step, T, low=0, name="step").double() / T


def step_from_time(t: Time, T: int) -> int | Tensor:
    """The discrete step nearest to time t: round(t T) in 0..T (an int for a float t, else a LongTensor)."""
    check_int("T", T)
    t = _time(t)
    return round(t * T) if isinstance(t, float) else torch.round(t * T).long()


# ------------------------------------------------------------------------------- a discrete schedule as an SDE
class ScheduleSDE(SDE):
    """The VP process of a discrete NoiseSchedule in continuous time: what the fixed-step solvers run on for
    `sampling.sample(..., sampler="sde" | "pc" | "ode" | "ode_euler")`.

    The schedule's T steps (T' after respacing: then index i stands for training step schedule.timesteps[i]) sit
    at t_i = i / T, with the schedule's own marginals there, mean_coef(t_i) = sqrt(alpha_bar_i), std = sigma_i;
    between grid points log mean_coef is linear in t. Then on (t_{i-1}, t_i]:

        f(t) = d log mean_coef / dt = T/2 log alpha_i           (constant on the step; alpha_i = 1 - beta_i)
        g(t)^2 = beta(t) = -2 f(t) = -T log alpha_i            (so that std^2 = 1 - mean_coef^2: variance preserving)
        mean_coef(t) = sqrt(alpha_bar_{i-1}) alpha_i^((t T - i + 1) / 2)

    -T log alpha_i = T beta_i + O(beta_i^2): DDPM's beta_i per unit of time, as in `VPSDE.discretize`. The score of
    the data diffused to t_i is -E[eps | x_t] / sigma_i, which an eps-model gives at grid times only:
    `score_fn(eps_model)` is defined there and nowhere else, so only solvers that evaluate the score at grid times
    run on it (Euler-Maruyama, predictor-corrector, Euler and Heun on `times`; not RK45). Prior N(0, I) (the
    schedule's alpha_bar_T is not exactly 0: the same mismatch as DDPM's x_T ~ N(0, I)).
    """

    prior_std = 1.0

    def __init__(self, schedule: NoiseSchedule) -> None:
        check_schedule(schedule)
        self.schedule, self.T = schedule, schedule.T
        log_alphas = torch.log1p(-schedule.betas.detach().to("cpu", torch.float64))  # log alpha_i, 0 at i = 0
        self._f = self.T / 2 * log_alphas                    # f on step i, (T+1,) (index 0 unused)
        self._log_mean_coef = 0.5 * torch.cumsum(log_alphas, 0)  # log mean_coef(t_i) = 1/2 log alpha_bar_i
        self._f_list, self._log_mean_coef_list = self._f.tolist(), self._log_mean_coef.tolist()

    def __repr__(self) -> str:
        return f"ScheduleSDE({self.schedule!r})"

    @property
    def times(self) -> Tensor:
        """The grid t_i = i / T from t_T = 1 down to t_0 = 0, float64 on the CPU: the fixed-step solvers' `times`."""
        return torch.arange(self.T, -1, -1, dtype=torch.float64) / self.T

    def coefficient_time(self, s: float, t: float) -> float:
        """A time inside the grid interval next to s on t's side, where f and g are those of the step from s towards
        t: Heun's end-point slope from t_i down to t_{i-1} must use step i's coefficients (read at t_{i-1} itself it
        would get step i-1's), and a likelihood step from t_i up to t_{i+1} step i+1's at both ends."""
        return s + math.copysign(min(abs(t - s), 1 / self.T), t - s) / 2

    def _step(self, t: Time) -> tuple[int | Tensor, Time]:
        """(i, u): the step i in 1..T whose interval (t_{i-1}, t_i] holds t, and u = t T. A t within round-off of a
        grid point t_i belongs to step i (the left limit: a solver stepping down from t_i uses step i's f)."""
        t = _time(t)
        if isinstance(t, float):
            u = t * self.T
            return min(max(math.ceil(u - 1e-9 * self.T), 1), self.T), u
        work = torch.float32 if t.device.type == "mps" else torch.float64  # MPS has no float64
        u = t.to(work) * self.T
        slack = 8 * torch.finfo(t.dtype).eps * self.T + 1e-9 * self.T  # t itself was rounded to t.dtype
        return torch.ceil(u - slack).clamp(1, self.T).long(), u

    def drift_coef(self, t: Time) -> Time:
        i, _ = self._step(t)
        if isinstance(i, int):
            return self._f_list[i]
        return self._f.to(i.device)[i].to(t.dtype)

    def diffusion(self, t: Time) -> Time:
        f = self.drift_coef(t)
        return math.sqrt(-2 * f) if isinstance(f, float) else (-2 * f).sqrt()

    def marginal(self, t: Time) -> tuple[Time, Time]:
        i, u = self._step(t)
        if isinstance(i, int):
            log_m = self._log_mean_coef_list[i - 1] + (u - i + 1) * self._f_list[i] / self.T
            return math.exp(log_m), math.sqrt(-math.expm1(2 * log_m))
        log_m_prev, f = self._log_mean_coef.to(u.device, u.dtype)[i - 1], self._f.to(u.device, u.dtype)[i]
        log_m = log_m_prev + (u - i + 1) * f / self.T
        # std^2 = 1 - mean_coef^2 through expm1, as in VPSDE.marginal
        return log_m.exp().to(t.dtype), (-torch.expm1(2 * log_m)).sqrt().to(t.dtype)

    def score_fn(self, eps_model: EpsModel) -> ScoreFn:
        """The score at the grid times from an eps-model: score(x, t_i) = -eps_theta(x, timesteps[i]) / sigma_i.

        i = round(t T) in 1..T; the model is called at the training step schedule.timesteps[i] (respaced schedules
        included: `reverse_steps.eps_at`) and `forward.convert` turns eps into the score. t: a float or a (B,)
        tensor of grid times (checked on the CPU: within 1% of a step of a grid time, never t_0 = 0 where
        sigma_0 = 0; a GPU t is not read back). The schedule moves to x's device once.
        """
        if not callable(eps_model):
            raise TypeError(f"eps_model must be callable as eps_model(x_t, t), got {type(eps_model).__name__}")
        on_device: dict[torch.device, NoiseSchedule] = {}

        def score(x: Tensor, t: float | Tensor) -> Tensor:
            check_data("x", x)
            t = _time(t if isinstance(t, Tensor) else float(t), x.shape[0], x.device)
            if isinstance(t, float):
                t = torch.full((x.shape[0],), t, dtype=torch.float64, device=x.device)
            u = t.to(torch.float32 if x.device.type == "mps" else torch.float64) * self.T
            i = torch.round(u).long()
            if i.device.type == "cpu" and ((u - i).abs().max() > 1e-2 or i.min() < 1):
                raise ValueError(f"the score of an eps-model is known at the grid times t_i = i / T, i = 1..T = "
                                 f"{self.T} only (not at t = 0, nor between: use a fixed-step solver on "
                                 f"ScheduleSDE.times); got t in {float(t.min())}..{float(t.max())}")
            schedule = on_device.get(x.device) or on_device.setdefault(x.device, self.schedule.to(x.device))
            return convert(schedule, x, i, eps=eps_at(eps_model, schedule, x, i), to="score")

        return score
