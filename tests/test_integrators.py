"""integrators.py: Heun's step (the "ode" sampler, the Heun likelihood, EDM's sampler) and the solve_ivp wrapper
(RK45 sampling and the ODE likelihood). References are closed-form solutions of linear ODEs, written here."""

import math

import pytest
import torch

from ddpm_scratch.integrators import heun_step, solve_ivp_tensor

F64 = torch.float64


def test_heun_step_is_euler_without_an_end_slope_and_the_trapezoid_with_one():
    """No end slope: y + h slope, bit for bit. With one: end_slope is called once, at Euler's point y + h slope, and
    the step is y + h (slope + end_slope(y')) / 2. Any shape, either sign of h."""
    g = torch.Generator().manual_seed(0)
    y, slope, other = (torch.randn(2, 1, 3, 3, generator=g, dtype=F64) for _ in range(3))
    for h in (0.1, -0.25):
        assert torch.equal(heun_step(y, h, slope), y + h * slope)
        seen = []

        def end_slope(y_euler, seen=seen):
            seen.append(y_euler)
            return other * y_euler

        out = heun_step(y, h, slope, end_slope)
        assert len(seen) == 1 and torch.equal(seen[0], y + h * slope)
        torch.testing.assert_close(out, y + h * 0.5 * (slope + other * (y + h * slope)), rtol=1e-15, atol=1e-15)


def integrate(N, end=True, t1=1.0):
    """dy/dt = -y from t = 0 to t1 in N steps of h = t1 / N (y(0) = 1 in a (2, 3) tensor): the global error."""
    y, h = torch.ones(2, 3, dtype=F64), t1 / N
    for _ in range(N):
        y = heun_step(y, h, -y, (lambda z: -z) if end else None)
    return (y - math.exp(-t1)).abs().max().item()


def test_heun_is_second_order_and_euler_first_order_with_the_predicted_ratios():
    """dy/dt = lambda y, lambda = -1, to t = 1 in N steps of h = 1 / N: one step multiplies y by R(z), z = lambda h,
    and y(1) = R(z)^N against the exact e^lambda.
      Heun: R = 1 + z + z^2/2, log R = z - z^3/6 + z^4/8 + O(z^5), so y_N / e^lambda - 1 = -lambda^3 h^2/6
        + lambda^4 h^3/8 + O(h^4): error e(h) = e^-1 (h^2/6 + h^3/8 + ...), and e(h) / e(h/2) =
        4 (1 + 3h/4) / (1 + 3h/8) (1 + O(h^2)): 4.145, 4.074, 4.037 for N = 10, 20, 40.
      Euler: R = 1 + z, log R = z - z^2/2 + z^3/3 + ..., error e^-1 (h/2 + 5h^2/24 + ...), ratio
        2 (1 + 5h/12) / (1 + 5h/24) (1 + O(h^2)).
    The neglected factor 1 + O(h^2): allowed h^2 (1% at h = 0.1, falling 4-fold per halving); measured 0.27%,
    0.07%, 0.018% for Heun and 0.16%, 0.04%, 0.01% for Euler. A first-order Heun (a lost end slope, a wrong 1/2)
    would give ratios near 2, not 4."""
    for end, predicted in ((True, lambda h: 4 * (1 + 3 * h / 4) / (1 + 3 * h / 8)),
                           (False, lambda h: 2 * (1 + 5 * h / 12) / (1 + 5 * h / 24))):
        errors = [integrate(N, end) for N in (10, 20, 40, 80)]
        for N, a, b in zip((10, 20, 40), errors, errors[1:], strict=False):
            h = 1 / N
            assert abs((a / b) / predicted(h) - 1) < h**2, (end, N, errors)


def test_heun_integrates_backwards_in_time():
    """The samplers integrate towards t = 0 (h < 0): from y(1) = e^-1 back to t = 0 in 100 steps of h = -0.01
    returns y(0) = 1 within Heun's error h^2 / 6 |lambda|^3 e^{|lambda| t} ~ 5e-5 (here e^{+1}: running backwards
    the ODE grows)."""
    y = torch.full((4,), math.exp(-1), dtype=F64)
    for _ in range(100):
        y = heun_step(y, -0.01, -y, lambda z: -z)
    assert (y - 1).abs().max().item() < 1e-4
    assert (y - 1).abs().max().item() > 1e-7  # not exact: a second-order step, error ~ e h^2 / 6 = 4.5e-5


# --------------------------------------------------------------------------------------------- solve_ivp_tensor
A = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=F64)  # eigenvalues -1 +- 2i: a decaying rotation
Y0 = torch.tensor([[1.0, 0.0], [0.5, -2.0], [3.0, 1.0]], dtype=F64)  # three rows, one state of 6 numbers


def test_solve_ivp_tensor_matches_the_exact_solution_of_a_linear_ode_to_its_tolerance():
    """dy/dt = A y (row by row) from 0 to 2: y(2) = y0 exp(2 A)^T (torch.linalg.matrix_exp). RK45's local error
    control keeps each step's error below atol + rtol |y|; on a contracting ODE the global error stays of that size
    (measured: 1.15 tol at 1e-6, 1e-8 and 1e-10), so 5 tol must hold, and tighter tolerances cost more evaluations.
    rhs gets y as a float64 CPU tensor of y0's shape; the result is float64 on the CPU, y0's shape, whatever y0's
    dtype; nfe is the number of rhs calls. Backwards (t1 < t0) it returns y0 from y(2)."""
    exact = Y0 @ torch.linalg.matrix_exp(2.0 * A).T
    nfes = []
    for tol in (1e-6, 1e-9):
        calls = []

        def rhs(t, y, calls=calls, tol=tol):
            assert isinstance(t, float) and y.dtype == F64 and y.device.type == "cpu" and y.shape == (3, 2)
            calls.append(t)
            return (y @ A.T).float() if tol > 1e-7 else y @ A.T  # any dtype comes back as float64

        y, nfe = solve_ivp_tensor(rhs, Y0.float(), 0.0, 2.0, rtol=tol, atol=tol)
        assert y.shape == (3, 2) and y.dtype == F64 and y.device.type == "cpu"
        assert isinstance(nfe, int) and nfe == len(calls) > 0
        assert (y - exact).abs().max().item() < 5 * tol + (1e-6 if tol > 1e-7 else 0), tol  # + float32 slopes
        nfes.append(nfe)
    assert nfes[0] < nfes[1]
    back, _ = solve_ivp_tensor(lambda t, y: y @ A.T, exact, 2.0, 0.0, rtol=1e-10, atol=1e-10)
    assert (back - Y0).abs().max().item() < 1e-8


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy's, on inf - inf
@pytest.mark.parametrize("bad", ["nan", "inf", "nan-from-the-start"])
def test_solve_ivp_tensor_raises_on_a_slope_that_is_not_finite(bad):
    """A slope that turns NaN or infinite part-way (at t >= 0.5), or is NaN from the first evaluation (a network
    that outputs NaN: scipy alone would then loop for ever with t = nan), raises RuntimeError naming the time."""
    def rhs(t, y):
        if bad == "nan-from-the-start" or t >= 0.5:
            return torch.full_like(y, float(bad.split("-")[0]))
        return -y

    with pytest.raises(RuntimeError, match="solve_ivp failed: the slope is not finite at t = "):
        solve_ivp_tensor(rhs, torch.ones(3, 2, dtype=F64), 0.0, 2.0, rtol=1e-6, atol=1e-6)


def test_solve_ivp_tensor_raises_when_the_solution_blows_up():
    """dy/dt = y^2, y(0) = 1: y = 1 / (1 - t), infinite at t = 1 < t1 = 2: scipy shrinks its step below the spacing
    of floats and gives up (success False); the wrapper raises RuntimeError with scipy's message, not a NaN."""
    with pytest.raises(RuntimeError, match="solve_ivp failed: Required step size is less than spacing"):
        solve_ivp_tensor(lambda t, y: y**2, torch.ones(3, 2, dtype=F64), 0.0, 2.0, rtol=1e-6, atol=1e-6)
