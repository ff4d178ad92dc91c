"""Lecture 4's higher-order solvers on an eps-model (eps_solvers.py): DPM-Solver++(2M), EDM's Heun sampler on its
Karras grid (the grid itself, schedules.karras_timesteps, is tested in test_schedules.py), UniPC.

References are written here from the equations: the exact probability-flow map of Gaussian data (affine along
the covariance's eigenvectors), DDIM's step (eq. 12 at eta = 0), EDM's eq. 5, the flow of point-mass data.
Orders of convergence are measured from error ratios as the number of steps doubles. Agreement with diffusers'
schedulers, step for step, is checked by benchmarks/fast_samplers.py (diffusers is a benchmark dependency only).
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.ddim import ddim_sample
from ddpm_scratch.eps_solvers import (
    NoiseLevels,
    dpm_solver_pp_sample,
    dpm_solver_pp_step,
    edm_sample,
    edm_step,
    unipc_sample,
    unipc_step,
)
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import SPACINGS, NoiseSchedule, karras_timesteps, respaced, spaced_timesteps

F64 = torch.float64
MU = torch.tensor([1.0, -0.5], dtype=F64)
COV = torch.tensor([[0.6, 0.25], [0.25, 0.9]], dtype=F64)  # eigenvalues 0.47 and 1.03: correlated
LAM, Q = torch.linalg.eigh(COV)


def gaussian_eps(schedule):
    """Exact E[eps | x_t] for data N(MU, COV): x_t ~ N(sqrt(ab) MU, S_t), S_t = ab COV + (1 - ab) I, Cov(eps, x_t) =
    sqrt(1 - ab) I, so E[eps | x_t] = sqrt(1 - ab) S_t^{-1} (x_t - sqrt(ab) MU). t: training steps of `schedule`."""
    def eps_model(x_t, t):
        ab = schedule.alpha_bars[t].to(x_t.dtype)[:, None]
        r = (x_t - ab.sqrt() * MU) @ Q
        return (1 - ab).sqrt() * (r / (ab * LAM + 1 - ab)) @ Q.T
    return eps_model


def exact_flow_to_data(schedule, x_T):
    """The probability-flow ODE from index T to the data, for data N(MU, COV). Along an eigenvector (eigenvalue l)
    y = q^T (x - sqrt(ab) MU) over the marginal's standard deviation sqrt(ab l + 1 - ab) is constant, so at
    ab = 1: y_0 = y_T sqrt(l / (ab_T l + 1 - ab_T))."""
    ab = schedule.alpha_bars[-1]
    y = (x_T - ab.sqrt() * MU) @ Q
    return MU + (y * (LAM / (ab * LAM + 1 - ab)).sqrt()) @ Q.T


def log_snr_schedule(num_steps, sigma_min=1e-4, sigma_max=80.0):
    """A schedule whose indices 1..N have EDM's sigma = sqrt((1 - ab) / ab) evenly spaced in log from sigma_min to
    sigma_max: steps of the same h in lambda = -log sigma, halved when N doubles; index 0 is the data."""
    sigma = torch.logspace(math.log10(sigma_min), math.log10(sigma_max), num_steps, dtype=F64)
    alpha_bars = torch.cat([torch.ones(1, dtype=F64), 1 / (1 + sigma**2)])
    betas = torch.zeros(num_steps + 1, dtype=F64)
    betas[1:] = 1 - alpha_bars[1:] / alpha_bars[:-1]
    return NoiseSchedule(betas, name=f"log-SNR {num_steps}")


def draws(seed, *shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=F64) for shape in shapes]


RUNS = {  # name: (run(eps_model, schedule, x_T), order); DDIM calibrates the measurement as a first-order method
    "ddim": (lambda m, s, x: ddim_sample(m, s, x), 1),
    "dpm_solver_pp_2m": (lambda m, s, x: dpm_solver_pp_sample(m, s, x), 2),
    "edm_heun": (lambda m, s, x: edm_sample(m, s, x), 2),
    "unipc_1": (lambda m, s, x: unipc_sample(m, s, x, order=1), 2),
    "unipc_2": (lambda m, s, x: unipc_sample(m, s, x), 3),
    "unipc_2_bh1": (lambda m, s, x: unipc_sample(m, s, x, variant="bh1"), 3),
}


# ------------------------------------------------------------------------------------------- orders
@pytest.mark.parametrize("name", RUNS)
def test_order_of_convergence_on_the_exact_gaussian_flow(name):
    """Max error over 200 points against the exact map x_T -> x_0, on `log_snr_schedule(N)` for N = 80, 160, 320:
    N - 1 steps of the same h in lambda from sigma = 80 to 1e-4, then the step to the data. That last step is first
    order in every solver (it returns x0): in x_bar = x / alpha its error is int_0^sigma_1 (eps(sigma_1) - eps(s))
    ds ~ sigma_1^2 / 2 |d eps / d sigma| ~ 1e-8 here, far below the errors measured (>= 2.7e-5), so the ratios
    show the order of the steps before it. An order-p method's error ratio e(N) / e(2N) is 2^p (1 + O(h)): its
    distance to 2^p about halves with each doubling. Measured (80 -> 160, 160 -> 320): DDIM 1.99, 2.00; 2M 4.02,
    4.02; EDM 4.14, 4.07; UniPC-1 (DDIM + corrector) 4.03, 4.02; UniPC-2 8.06, 8.06, with bh1 8.45, 8.24 (the
    slowest to settle: 5.7% and 3.0% off). 8% at the first doubling and 5% at the second hold them all and tell
    orders apart (the next order is 2x away). A wrong coefficient in a step (r for 2 r in 2M, eps alone for the
    trapezoid's average in EDM) drops the order by one."""
    run, order = RUNS[name]
    x_T = 1.5 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    errors = []
    for n in (80, 160, 320):
        schedule = log_snr_schedule(n)
        errors.append((run(gaussian_eps(schedule), schedule, x_T) - exact_flow_to_data(schedule, x_T)).abs().max())
    ratios = [(a / b).item() for a, b in zip(errors, errors[1:], strict=False)]
    assert abs(ratios[0] / 2**order - 1) < 0.08, (name, errors, ratios)
    assert abs(ratios[1] / 2**order - 1) < 0.05, (name, errors, ratios)


# ------------------------------------------------------------------------------------------- the steps
@st.composite
def schedule_pairs(draw):
    """(base, schedule): a linear (rescaled, 21..200 steps) or cosine (3..200) schedule, and the same or a
    respacing of it to fewer steps by some spacing (a network is built on the base, called at its steps)."""
    if draw(st.booleans()):
        base = NoiseSchedule.linear(T=draw(st.integers(21, 200)), rescale=True)
    else:
        base = NoiseSchedule.cosine(T=draw(st.integers(3, 200)))
    T = base.T
    if draw(st.booleans()):
        return base, respaced(base, draw(st.integers(2, T)), draw(st.sampled_from(SPACINGS)))
    return base, base


@given(schedule_pairs(), st.data())
def test_first_order_steps_are_ddims_step(schedules, data):
    """With one output, DPM-Solver++ and UniPC's predictor step, and EDM's Euler step, are DDIM's step (eq. 12 at
    eta = 0): x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s) eps, x0_hat = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t),
    between any two indices t > s; at s = 0 each returns x0_hat."""
    _, schedule = schedules
    t = data.draw(st.integers(1, schedule.T))
    s = data.draw(st.integers(0, t - 1))
    x_t, eps = draws(t, (5, 3), (5, 3))
    ab_t, ab_s = schedule.alpha_bars[t], schedule.alpha_bars[s]
    x0 = (x_t - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    expected = ab_s.sqrt() * x0 + (1 - ab_s).sqrt() * eps
    scale = 1 + x0.abs().max()
    for got in (dpm_solver_pp_step(schedule, x_t, t, s, x0=x0), unipc_step(schedule, x_t, t, s, x0=x0),
                edm_step(schedule, x_t, t, s, eps=eps)):
        assert torch.allclose(got, expected, rtol=0, atol=1e-9 * scale)


@given(schedule_pairs(), st.data())
def test_every_solver_is_exact_for_point_mass_data(schedules, data):
    """Data at one point x*: the exact eps is (x_t - sqrt(ab_t) x*) / sqrt(1 - ab_t), x0_hat = x* at every step, and
    the flow is x_s = sqrt(ab_s) x* + sqrt((1 - ab_s) / (1 - ab_t)) (x_t - sqrt(ab_t) x*). Every difference of
    outputs vanishes, so each solver's higher-order terms must too: all land on x* from any x_T, on any schedule.
    Tolerance: float64 round-off of a few operations per step, amplified by 1 / sqrt(ab) <= 1e3 near x_T."""
    base, schedule = schedules
    x_star = torch.tensor([[data.draw(st.floats(-3, 3)), data.draw(st.floats(-3, 3))]], dtype=F64)

    def eps_model(x_t, t):  # t: training steps of the base schedule
        ab = base.alpha_bars[t][:, None]
        return (x_t - ab.sqrt() * x_star) / (1 - ab).sqrt()

    (x_T,) = draws(schedule.T, (6, 2))
    for run, _ in RUNS.values():
        got = run(eps_model, schedule, x_T)
        assert torch.allclose(got, x_star.expand_as(got), rtol=0, atol=1e-8), (schedule, got)


def test_the_last_step_lands_on_the_networks_x0():
    """Index 0 is the data: 2M's last step is first order, EDM's is Euler's, UniPC's is first order with no
    correction after it, so each returns x0_hat(x_1) = (x_1 - sqrt(1 - ab_1) eps(x_1)) / sqrt(ab_1) of the point x_1
    where the network was last called, at index 1: the state the hook saw at step 1 for 2M and EDM; for UniPC the
    predicted point, which its corrector then moved (the hook sees the corrected state, where the last predictor
    starts: the last correction does not reach the output). The hook sees every step of the respaced schedule below
    its top, and its last call is the output."""
    schedule = NoiseSchedule.linear().respace(spaced_timesteps(1000, 7, "quadratic"))
    exact = gaussian_eps(NoiseSchedule.linear())
    (x_T,) = draws(0, (50, 2))
    ab_1, step_1 = schedule.alpha_bars[1], int(schedule.timesteps[1])
    for run in (dpm_solver_pp_sample, edm_sample, unipc_sample):
        states, calls = {}, {}

        def model(x, t, calls=calls):
            calls[int(t[0])] = x
            return exact(x, t)

        x0 = run(model, schedule, x_T, hook=lambda x, t, states=states: states.setdefault(t, x))
        assert sorted(states) == schedule.timesteps[:-1].tolist() and torch.equal(states[0], x0)
        x_1 = calls[step_1]
        assert torch.equal(x_1, states[step_1]) != (run is unipc_sample), run.__name__
        eps = exact(x_1, schedule.timesteps[1].expand(50))
        assert torch.allclose(x0, (x_1 - (1 - ab_1).sqrt() * eps) / ab_1.sqrt(), rtol=0, atol=1e-12), run.__name__


def test_edm_step_with_eps_at_end_is_heuns_step_in_x_over_alpha():
    """EDM's Algorithm 1, lines 5-8, written here in x_bar = x / alpha and sigma_EDM = sqrt((1 - ab) / ab):
    x_bar' = x_bar + (sigma_s - sigma_t) eps, x_bar_s = x_bar + (sigma_s - sigma_t) (eps + eps') / 2 with
    eps' = eps_theta at x = alpha_s x_bar' (asked once, through eps_at_end), returned as x_s = alpha_s x_bar_s."""
    schedule = NoiseSchedule.cosine(T=50)
    x_t, eps, other = draws(3, (5, 2), (5, 2), (5, 2))
    t, s = 30, 12
    ab_t, ab_s = schedule.alpha_bars[t], schedule.alpha_bars[s]
    sigma_t, sigma_s = ((1 - ab_t) / ab_t).sqrt(), ((1 - ab_s) / ab_s).sqrt()
    x_bar = x_t / ab_t.sqrt()
    euler = x_bar + (sigma_s - sigma_t) * eps
    seen = []

    def eps_at_end(x):
        seen.append(x)
        return other * x

    got = edm_step(schedule, x_t, t, s, eps=eps, eps_at_end=eps_at_end)
    assert len(seen) == 1 and torch.allclose(seen[0], ab_s.sqrt() * euler, rtol=0, atol=1e-12)
    expected = ab_s.sqrt() * (x_bar + (sigma_s - sigma_t) * 0.5 * (eps + other * ab_s.sqrt() * euler))
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    assert torch.allclose(edm_step(schedule, x_t, t, s, eps=eps), ab_s.sqrt() * euler, rtol=0, atol=1e-12)


def test_multistep_formulas_with_a_previous_output():
    """previous=[(u, x0_u)], written here from the papers with lambda = log(sqrt(ab) / sqrt(1 - ab)):
    2M (Lu et al. 2022, Algorithm 2): x_s = (sigma_s / sigma_t) x_t - alpha_s (e^-h - 1) D, h = lambda_s - lambda_t,
    D = (1 + 1/(2r)) x0 - 1/(2r) x0_u, r = (lambda_t - lambda_u) / h. UniP-2 (Zhao et al. 2023, rho = 1/2):
    the first-order step minus alpha_s B(h) (x0_u - x0) / (2 r_u), r_u = (lambda_u - lambda_t) / h, B(h) = e^-h - 1
    (bh2) or -h (bh1). NoiseLevels precomputed once give the same numbers as computed per call."""
    schedule = NoiseSchedule.linear(T=100, rescale=True)
    x_t, x0, x0_u = draws(4, (3, 2), (3, 2), (3, 2))
    u, t, s = 60, 45, 30
    ab = schedule.alpha_bars
    alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
    lam = (alpha / sigma).log()
    h = (lam[s] - lam[t]).item()
    first = sigma[s] / sigma[t] * x_t - alpha[s] * (math.exp(-h) - 1) * x0
    r = (lam[t] - lam[u]).item() / h
    d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_u
    expected_2m = sigma[s] / sigma[t] * x_t - alpha[s] * (math.exp(-h) - 1) * d
    levels = NoiseLevels(schedule)
    for kwargs in ({}, {"levels": levels}):
        got = dpm_solver_pp_step(schedule, x_t, t, s, x0=x0, previous=[(u, x0_u)], **kwargs)
        assert torch.allclose(got, expected_2m, rtol=0, atol=1e-12)
    r_u = (lam[u] - lam[t]).item() / h
    for variant, b_h in (("bh2", math.expm1(-h)), ("bh1", -h)):
        expected = first - alpha[s] * b_h * 0.5 * (x0_u - x0) / r_u
        got = unipc_step(schedule, x_t, t, s, x0=x0, previous=[(u, x0_u)], variant=variant, levels=levels)
        assert torch.allclose(got, expected, rtol=0, atol=1e-12), variant
    with pytest.raises(TypeError, match="unexpected keyword argument 'history'"):
        dpm_solver_pp_step(schedule, x_t, t, s, x0=x0, history=[(u, x0_u)])


def test_edm_on_the_karras_grid_calls_the_network_at_those_steps_only():
    """sample(..., sampler="edm") on schedule.respace(karras_timesteps(schedule, N)), or with spacing="karras": the
    network is called at the grid's training steps only, once at the first (T) and twice at every other (as Heun's
    end point of the step into it, then at the start of the step out of it; the last step, to the data, is
    Euler's): 2 N - 1 calls."""
    base = NoiseSchedule.linear()
    grid = karras_timesteps(base, 6)
    for schedule, options in ((base.respace(grid), {}), (base, {"num_steps": 6, "spacing": "karras"})):
        calls = []

        def model(x_t, t, calls=calls):
            calls.append(int(t[0]))
            return gaussian_eps(base)(x_t, t)

        x = sample(model, schedule, (10, 2), sampler="edm", dtype=F64, generator=torch.Generator().manual_seed(0),
                   **options)
        assert torch.isfinite(x).all() and len(calls) == 2 * 6 - 1
        assert sorted(set(calls)) == grid.tolist() and [calls.count(int(step)) for step in grid] == [2] * 5 + [1]


# ------------------------------------------------------------------------------------------- the registry
@pytest.mark.parametrize("name, calls_per_step", [("dpmpp_2m", 1), ("unipc", 1), ("edm", 2)])
def test_registered_solvers_count_their_calls_and_match_their_functions(name, calls_per_step):
    """Through sampling.sample with num_steps = 8: NFE 8 (2 x 8 - 1 for EDM), the same numbers as the function on
    the respaced schedule from the same x_T, and no randomness after x_T (stochastic=False)."""
    base = NoiseSchedule.linear()
    model, calls = gaussian_eps(base), []

    def counted(x_t, t):
        calls.append(t)
        return model(x_t, t)

    (x_T,) = draws(1, (100, 2))
    x = sample(counted, base, (100, 2), sampler=name, num_steps=8, x_T=x_T)
    assert len(calls) == 8 * calls_per_step - (calls_per_step - 1)
    direct = {"dpmpp_2m": dpm_solver_pp_sample, "unipc": unipc_sample, "edm": edm_sample}[name]
    assert torch.equal(x, direct(model, respaced(base, 8, SAMPLERS[name].spacing), x_T))
    assert SAMPLERS[name].stochastic is False and SAMPLERS[name].description
    assert SAMPLERS["unipc"].defaults == {"order": 2, "variant": "bh2"} and SAMPLERS["dpmpp_2m"].options == {}
    assert SAMPLERS["unipc"].options["order"].choices == (1, 2)
    assert SAMPLERS["unipc"].options["variant"].choices == ("bh1", "bh2")


def test_solvers_keep_the_datas_shape_dtype_and_device():
    """Images (B, C, H, W) in float32, the model a stand-in 0.1 x."""
    s = NoiseSchedule.linear(T=50, rescale=True)
    for name in ("dpmpp_2m", "unipc", "edm"):
        x = sample(lambda x_t, t: 0.1 * x_t, s, (3, 1, 8, 8), sampler=name, num_steps=6,
                   generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32 and torch.isfinite(x).all()


def test_bad_arguments_are_named():
    """(x0- and v-networks are adapted by forward.as_eps_model before they reach a solver: test_sampling.py checks
    every sampler with them.)"""
    s = NoiseSchedule.linear(T=30, rescale=True)
    model, x_T = gaussian_eps(s), torch.zeros(4, 2)
    with pytest.raises(ValueError, match="order must be 1 or 2"):
        unipc_sample(model, s, x_T, order=3)
    with pytest.raises(ValueError, match="order must be >= 1"):
        sample(model, s, (4, 2), sampler="unipc", order=0)
    with pytest.raises(TypeError, match="order must be an int"):
        unipc_sample(model, s, x_T, order=2.0)
    with pytest.raises(ValueError, match="variant must be one of 'bh1', 'bh2'"):
        sample(model, s, (4, 2), sampler="unipc", variant="bh3")
    with pytest.raises(ValueError, match="takes the options none; got unknown eta"):
        sample(model, s, (4, 2), sampler="dpmpp_2m", eta=0.0)
    for run in (edm_sample, dpm_solver_pp_sample, unipc_sample):
        with pytest.raises(TypeError, match="unexpected keyword argument 'prediction'"):
            run(model, s, x_T, prediction="x0")
        with pytest.raises(TypeError, match="x_T must be a torch.Tensor"):
            run(model, s, (4, 2))  # x_T, not a shape
    with pytest.raises(ValueError, match="x_T has shape"):
        sample(model, s, (4, 2), sampler="edm", x_T=torch.zeros(3, 2))
