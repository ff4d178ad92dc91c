"""Lecture 3: exact log-likelihoods through the probability-flow ODE, and bits per dimension.

The probability-flow ODE dx/dt = f~(x, t) = f(t) x - 1/2 g(t)^2 score(x, t) (Song et al. 2021, eq. 13) is a
deterministic, invertible map that carries the data law p_0 to p_1, which the prior N(0, prior_std^2 I)
approximates. Along one of its solutions x(t) the density changes by the instantaneous change of variables (Chen et
al. 2018, Thm. 1):

    d/dt log p_t(x(t)) = -div f~(x(t), t)                                   (div = trace of the Jacobian df~/dx)

so, solving forward from the data point x(0) = x to z = x(1),

    log p_0(x) = log p_1(z) + int_0^1 div f~(x(t), t) dt                      (Song et al. 2021, App. D.2)

with log p_1 replaced by the prior's log-density (`SDE.prior_log_prob`; close, not equal: for the VP SDE a fraction
mean_coef(1)^2 = 4e-5 of the data's variance survives at t = 1). The two pieces are solved together, as one ODE on the
state [x, delta] with d delta / dt = div f~. As in score_sde: integration starts at t_min = 1e-5 rather than 0, where
the score is undefined (the result is log p_{t_min}(x), the data blurred by a noise of std(t_min): 0.001 for the VP
SDE); the solver is adaptive RK45 (`scipy.integrate.solve_ivp`, rtol = atol = 1e-5) on the state flattened to
float64.

The divergence costs D backward passes if computed exactly (one per coordinate: fine in 2-D, not for images), or one
with the Hutchinson-Skilling estimator div f~ = E[eta^T (df~/dx) eta] for any eta with E[eta eta^T] = I. We draw eta
Rademacher (entries +-1: the estimate is exact for a diagonal Jacobian) once per data point and keep it for the whole
solve: the integral of an unbiased integrand is unbiased, and an integrand that changed at every call would be
noise that the adaptive step-size control cannot follow.

Data on discrete levels have no density; their likelihood is a probability. `dequantize` spreads each level over its
bin with uniform noise and `bits_per_dim` turns the continuous log-density of the dequantised data into a bound on the
discrete negative log-likelihood in bits per dimension (the units of `losses.variational_bound`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise

import torch
from torch import Tensor

from .checks import check_data, check_int, check_number
from .integrators import heun_step, solve_ivp_tensor
from .losses import LN2
from .nets.protocol import ScoreFn
from .sde import SDE, evaluate_score, probability_flow_drift

__all__ = ["ODELikelihood", "drift_and_divergence", "ode_likelihood", "ode_log_likelihood", "heun_likelihood",
           "rademacher", "dequantize", "bits_per_dim"]


@dataclass(frozen=True)
class ODELikelihood:
    """What one likelihood solve found, per example (float64, on x's device).

    log_likelihood (B,): log p_0(x) = prior_log_prob + delta_log_prob, in nats.
    prior_log_prob (B,): log p_1(z), the prior's log-density at the end of the flow.
    delta_log_prob (B,): int div f~ dt, the log-volume change along the flow.
    z (B, ...): x(1), the point the flow carries x to.
    nfe: evaluations of the drift and its divergence (each: one score call, plus one backward pass for the
         Hutchinson estimate or D of them for the exact divergence).
    """

    log_likelihood: Tensor
    prior_log_prob: Tensor
    delta_log_prob: Tensor
    z: Tensor
    nfe: int


def rademacher(like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """A tensor of like's shape, dtype and device with independent entries -1 or +1, each with probability 1/2."""
    check_data("like", like)
    bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def drift_and_divergence(score_fn: ScoreFn, sde: SDE, x: Tensor, t: float, *, probe: Tensor | None = None,
                         toward: float | None = None) -> tuple[Tensor, Tensor]:
    """The PF-ODE drift f~(x, t) (B, ...) and its divergence (B,): exact when probe is None, else eta^T (df~/dx) eta.

    The exact divergence sums d f~_i / d x_i over the D coordinates, one backward pass each; the Hutchinson estimate
    needs one vector-Jacobian product eta^T (df~/dx). Both assume that examples do not interact (no batch norm):
    then the gradient of the batch sum of f~_i gives every row its own derivative. probe: eta, of x's shape.
    Works under torch.no_grad() too; the returned tensors carry no graph. toward: the other end of the solver's
    step, where f and g are read from (`SDE.coefficient_time`; None: at t).
    """
    check_data("x", x)
    if probe is not None and probe.shape != x.shape:
        raise ValueError(f"probe must have x's shape {tuple(x.shape)}, got {tuple(probe.shape)}")
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        score, _ = evaluate_score(score_fn, x, t)
        t_coef = t if toward is None else sde.coefficient_time(t, toward)
        drift = probability_flow_drift(sde, x, t_coef, score=score)  # f(t) x - 1/2 g(t)^2 score(x, t), eq. 13
        if probe is None:
            flat = drift.flatten(1)
            divergence = torch.zeros(x.shape[0], dtype=drift.dtype, device=x.device)
            for i in range(flat.shape[1]):  # d f~_i / d x_i for every row at once
                (row_grad,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i + 1 < flat.shape[1])
                divergence += row_grad.flatten(1)[:, i]
        else:
            (vjp,) = torch.autograd.grad(drift, x, grad_outputs=probe)  # eta^T (df~/dx), row by row
            divergence = (vjp * probe).flatten(1).sum(dim=1)  # eta^T (df~/dx) eta
    return drift.detach(), divergence.detach()


def _check_arguments(score_fn: ScoreFn, sde: SDE, x: Tensor) -> None:
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an SDE (VPSDE, VESDE, ...), got {type(sde).__name__}")
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
    check_data("x", x)


def _augmented_drift(score_fn: ScoreFn, sde: SDE, like: Tensor, probe: Tensor | None, t: float, state: Tensor,
                     toward: float | None = None) -> Tensor:
    """d/dt [x, delta] = [f~(x, t), div f~(x, t)] on the float64 state (B, D + 1) of x flattened beside delta, with
    the score called on x in like's dtype and device (`drift_and_divergence`)."""
    x = state[:, :-1].reshape(like.shape).to(like.device, like.dtype)
    drift, divergence = drift_and_divergence(score_fn, sde, x, t, probe=probe, toward=toward)
    return torch.cat([drift.flatten(1), divergence[:, None]], dim=1).to(state.device, torch.float64)


def _start(x: Tensor) -> Tensor:
    """The state [x, delta = 0] at the data, float64 (B, D + 1) on x's device."""
    return torch.cat([x.detach().flatten(1).double(), x.new_zeros(x.shape[0], 1, dtype=torch.float64)], dim=1)


def _result(sde: SDE, like: Tensor, end: Tensor, nfe: int) -> ODELikelihood:
    z, delta = end[:, :-1].reshape(like.shape).to(like.device), end[:, -1].to(like.device)
    prior = sde.prior_log_prob(z)  # log p_1(z), the prior N(0, prior_std^2 I)
    return ODELikelihood(log_likelihood=prior + delta, prior_log_prob=prior, delta_log_prob=delta, z=z, nfe=nfe)


def ode_likelihood(score_fn: ScoreFn, sde: SDE, x: Tensor, *, exact_divergence: bool = False, rtol: float = 1e-5,
                   atol: float = 1e-5, t_min: float = 1e-5,
                   generator: torch.Generator | None = None) -> ODELikelihood:
    """log p_0(x) through the PF-ODE with adaptive RK45, with the details of the solve (see `ODELikelihood`).

    x: (B, ...) data points.  score_fn(x, t): the score model, called with x of x's dtype and t (B,); a network must
    be in eval mode.  exact_divergence: D backward passes per evaluation instead of one Hutchinson probe.
    rtol, atol: RK45's tolerances.  t_min: where the flow starts.  generator: draws the Rademacher probes (on x's
    device), one per data point, kept for the whole solve.
    All examples share one solve (one step size), as in score_sde; the state goes to the host at every evaluation
    (`integrators.solve_ivp_tensor`: solve_ivp is NumPy).
    """
    _check_arguments(score_fn, sde, x)
    rtol = check_number("rtol", rtol, low=0, low_open=True)
    atol = check_number("atol", atol, low=0, low_open=True)
    t_min = check_number("t_min", t_min, 0, 1, low_open=True, high_open=True)
    probe = None if exact_divergence else rademacher(x, generator=generator)

    def rhs(t: float, state: Tensor) -> Tensor:  # min(): RK45 may land a rounding error past t = 1
        return _augmented_drift(score_fn, sde, x, probe, min(t, 1.0), state)

    end, nfe = solve_ivp_tensor(rhs, _start(x).cpu(), t_min, 1.0, rtol=rtol, atol=atol)
    return _result(sde, x, end, nfe)


def ode_log_likelihood(score_fn: ScoreFn, sde: SDE, x: Tensor, *, exact_divergence: bool = False,
                       rtol: float = 1e-5, atol: float = 1e-5, t_min: float = 1e-5,
                       generator: torch.Generator | None = None) -> Tensor:
    """log p_0(x) in nats, (B,) float64: `ode_likelihood(...).log_likelihood` (that one also reports the NFE)."""
    return ode_likelihood(score_fn, sde, x, exact_divergence=exact_divergence, rtol=rtol, atol=atol, t_min=t_min,
                          generator=generator).log_likelihood


def heun_likelihood(score_fn: ScoreFn, sde: SDE, x: Tensor, times: Sequence[float] | Tensor, *,
                    exact_divergence: bool = False, generator: torch.Generator | None = None) -> ODELikelihood:
    """log p_{times[0]}(x) through the PF-ODE with fixed Heun steps on a given grid of times (2 NFE per step).

    For a score known only at some times (an eps-model trained on a discrete schedule, whose score exists at its
    grid times t_i = i / T): Heun evaluates the drift at the two ends of every step only (Karras et al. 2022,
    Alg. 1, run forward in time; `integrators.heun_step`), on the state [x, delta] as `ode_likelihood` does (float64),
    with the same kind of probe.
        d_1 = F(y_i, t_i),  y' = y_i + h d_1,  d_2 = F(y', t_{i+1}),  y_{i+1} = y_i + h (d_1 + d_2) / 2
    times: increasing, in (0, 1], ending at 1 (where the prior is).  Second order in the step for a smooth drift.
    """
    _check_arguments(score_fn, sde, x)
    times = [float(t) for t in (times.tolist() if isinstance(times, Tensor) else times)]
    if len(times) < 2 or times[0] <= 0 or times[-1] != 1.0 or any(b <= a for a, b in pairwise(times)):
        raise ValueError("times must increase from a time in (0, 1) to exactly 1.0 (at least two of them)")
    probe = None if exact_divergence else rademacher(x, generator=generator)
    state = _start(x)
    for t_i, t_next in pairwise(times):
        slope = _augmented_drift(score_fn, sde, x, probe, t_i, state, toward=t_next)
        state = heun_step(state, t_next - t_i, slope, partial(_augmented_drift, score_fn, sde, x, probe, t_next,
                                                              toward=t_i))
    return _result(sde, x, state, 2 * (len(times) - 1))


# ------------------------------------------------------------------------------------------- discrete data
def _bin_width(levels: int, data_range: float) -> float:
    check_int("levels", levels, low=2)
    return check_number("data_range", data_range, low=0, low_open=True) / (levels - 1)


def dequantize(x: Tensor, *, levels: int, data_range: float = 2.0, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation: x + (u - 1/2) h with u ~ U[0, 1) per coordinate, h = data_range / (levels - 1).

    x: (B, ...) on `levels` evenly spaced values spanning data_range and centred on 0 (the package's data in
    [-1, 1]: digits have 17 levels v / 8 - 1). Every level gets its own bin of width h centred on it, the bins of
    the discretized decoder (`losses.discretized_gaussian_log_likelihood`), so the model sees the data where it was
    trained. Returns a tensor of x's shape, dtype and device.
    """
    check_data("x", x)
    h = _bin_width(levels, data_range)
    k = (x + data_range / 2) / h  # level index, 0..levels-1
    if not bool(((k - k.round()).abs() <= 1e-3).all() and (k.round() >= 0).all() and (k.round() <= levels - 1).all()):
        raise ValueError(f"x must lie on {levels} levels evenly spaced in [{-data_range / 2:g}, {data_range / 2:g}]")
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + (u - 0.5) * h


def bits_per_dim(log_likelihood_nats: Tensor | float, num_dims: int, *, levels: int,
                 data_range: float = 2.0) -> Tensor:
    """Bits per dimension of discrete data from the log-density (nats) of their dequantised version.

        bpd = -log_likelihood_nats / (num_dims ln 2) + log2((levels - 1) / data_range)

    The offset is log2 of the Jacobian from the model's units to bins of width one: the discrete probability of a
    level is the density's mass over its bin of width h = data_range / (levels - 1), and by Jensen's inequality
    log P(level) >= E_u log p(x + (u - 1/2) h) + log h. So for uniformly dequantised data (`dequantize`) this is an
    upper bound on the discrete -log2 P per dimension, and on average over u it is the bound score_sde reports
    (Song et al. 2021, App. D.2). Data in [-1, 1] (data_range 2): 3 bits for the 17 levels of digits, log2(127.5) =
    6.994 for 8-bit images (score_sde's 7 bits come from bins of width 2/256 that tile [-1, 1), which do not sit
    centred on the 256 training values). For data that are not dequantised the number means nothing (it can be
    negative: a density can be large at the very points it was trained on).
    log_likelihood_nats: a number or a tensor (any shape).  num_dims: D, coordinates per example.
    """
    check_int("num_dims", num_dims)
    h = _bin_width(levels, data_range)
    if not isinstance(log_likelihood_nats, (Tensor, float, int)) or isinstance(log_likelihood_nats, bool):
        raise TypeError(f"log_likelihood_nats must be a tensor or a number, got {type(log_likelihood_nats).__name__}")
    nats = torch.as_tensor(log_likelihood_nats, dtype=torch.float64)
    return -nats / (num_dims * LN2) - math.log2(h)
