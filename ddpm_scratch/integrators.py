"""The two ODE integrators the course uses, once each: Heun's step and adaptive Runge-Kutta 4(5).

Lectures 3 and 4 integrate the probability-flow ODE in three places: the "ode" sampler (in t, on an SDE), the
likelihood (forwards in t, with the divergence beside x) and EDM's sampler (in sigma_EDM, on x / alpha). Each
writes its own slope; the step is this one:

    heun_step       y' = y + h d,  then  y + h (d + slope(y')) / 2       the explicit trapezoid rule (Karras et al.
                    2022, Algorithm 1, lines 5-8); without an end slope (where it is undefined, e.g. at sigma = 0)
                    it returns Euler's y'
    solve_ivp_tensor  scipy.integrate.solve_ivp(method="RK45") on a tensor state, for the solvers that pick their
                    own steps (score_sde's sampler and likelihood, App. D)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["heun_step", "solve_ivp_tensor"]


def heun_step(y: Tensor, h: float, slope: Tensor, end_slope: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """One step of Heun's method for dy/dt = F(y, t) from t to t + h, given slope = F(y, t):

        y' = y + h slope                         Euler's step
        y_next = y + h (slope + F(y', t + h)) / 2    corrected by the slope at its end, end_slope(y') = F(y', t + h)

    end_slope None: Euler's step alone (first order). y, slope: any matching shapes.  h: a Python float, of either
    sign (the samplers integrate towards t = 0).
    """
    y_euler = y + h * slope
    if end_slope is None:
        return y_euler
    return y + h * 0.5 * (slope + end_slope(y_euler))


def solve_ivp_tensor(rhs: Callable[[float, Tensor], Tensor], y0: Tensor, t0: float, t1: float, *, rtol: float,
                     atol: float) -> tuple[Tensor, int]:
    """Solve dy/dt = rhs(t, y) from t0 to t1 with scipy's adaptive RK45 (Dormand-Prince): (y(t1), evaluations).

    The state travels as one float64 numpy vector (solve_ivp is NumPy; its error control runs over the whole vector):
    rhs gets y as a float64 CPU tensor of y0's shape and returns a tensor of that shape (any dtype and device: it is
    copied back to the host, which on a GPU synchronises once per evaluation). Returns y(t1) as float64 on the CPU,
    y0's shape. Raises RuntimeError when the solver fails or the slope is not finite (NaN from a model, say).
    """
    from scipy.integrate import solve_ivp

    shape = y0.shape

    def f(t: float, y: np.ndarray) -> np.ndarray:
        slope = rhs(float(t), torch.from_numpy(y).reshape(shape)).detach().double().cpu().numpy().ravel()
        if not np.isfinite(slope).all():  # scipy's step-size control never gives up on a NaN slope: it would loop
            raise RuntimeError(f"solve_ivp failed: the slope is not finite at t = {t}")
        return slope

    solution = solve_ivp(f, (t0, t1), y0.detach().double().cpu().numpy().ravel(), method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"solve_ivp failed: {solution.message}")
    return torch.from_numpy(solution.y[:, -1].copy()).reshape(shape), int(solution.nfev)
