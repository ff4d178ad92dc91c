"""Lecture 3's samplers: Euler-Maruyama and predictor-corrector on the reverse SDE, Euler, Heun and RK45 on the
probability-flow ODE, alone in continuous time and as the registered samplers "sde", "pc", "ode", "ode_euler" on a
discrete schedule (sde.ScheduleSDE).

References are written here from the equations: the exact flow of Gaussian data (affine), DDIM's update, the
schedule's marginals; the exact score of a Gaussian mixture (score.mixture_score_fn) measures the samplers with no
network error. Seeds are fixed; every statistical tolerance says where it comes from.
"""

import functools
import math
import statistics

import pytest
import torch
from drifts import pf_drift, rev_drift

from ddpm_scratch.forward import as_eps_model
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import NoiseSchedule, spaced_timesteps
from ddpm_scratch.score import GaussianMixture, mixture_eps_model, mixture_score_fn
from ddpm_scratch.score_solvers import (
    CountedScore,
    euler_maruyama,
    ode_euler,
    ode_heun,
    ode_rk45,
    predictor_corrector,
    time_grid,
)
from ddpm_scratch.sde import VESDE, VPSDE, ScheduleSDE

F64 = torch.float64


SOLVERS = {"euler_maruyama": euler_maruyama, "predictor_corrector": predictor_corrector, "ode_euler": ode_euler,
           "ode_heun": ode_heun, "ode_rk45": ode_rk45}
STOCHASTIC = ("euler_maruyama", "predictor_corrector")


def run(name, sde, score_fn, x_T, num_steps, generator=None, t_min=1e-3, **options):
    """One solver on time_grid(num_steps, t_min); RK45 picks its own steps over the same span."""
    times = time_grid(1 if name == "ode_rk45" else num_steps, t_min=t_min)
    if name in STOCHASTIC:
        options["generator"] = generator
    return SOLVERS[name](score_fn, sde, x_T, times, **options)


# ------------------------------------------------------------------------------------- Gaussian data, exact flow
MU = torch.tensor([1.0, -0.5], dtype=F64)
COV = torch.tensor([[0.6, 0.25], [0.25, 0.9]], dtype=F64)  # eigenvalues 0.47 and 1.03: correlated
LAM, Q = torch.linalg.eigh(COV)
B0, B1 = 0.1, 20.0  # VPSDE's defaults


def vp_mean_coef(t):
    """VP marginal's mean coefficient exp(-t^2 (b1 - b0) / 4 - t b0 / 2) (Song et al. 2021, eq. 33), written here."""
    t = torch.as_tensor(t, dtype=F64)
    return torch.exp(-t**2 * (B1 - B0) / 4 - t * B0 / 2)


def eigen_variances(t):
    """Variances of p_t along COV's eigenvectors: m^2 lambda + 1 - m^2 (x_t = m x0 + sqrt(1 - m^2) eps)."""
    m = vp_mean_coef(t)[..., None]
    return m**2 * LAM + 1 - m**2


def gaussian_score(x, t):
    """Exact score of p_t = N(m mu, S_t) with S_t = Q diag(eigen_variances) Q^T: -S_t^{-1} (x - m mu)."""
    y = (x - vp_mean_coef(t)[:, None] * MU) @ Q
    return -(y / eigen_variances(t)) @ Q.T


def exact_flow(x, t, s):
    """The probability-flow ODE carries x at time t to time s. Along an eigenvector y = q^T (x - m mu) obeys
    dy/dt = (f + g^2 / (2 v)) y and v obeys dv/dt = 2 f v + g^2, so y / sqrt(v) is constant:
    y_s = sqrt(v_s / v_t) y_t."""
    y = (x - vp_mean_coef(t) * MU) @ Q
    return vp_mean_coef(s) * MU + (y * (eigen_variances(s) / eigen_variances(t)).sqrt()) @ Q.T


def test_euler_is_first_order_and_heun_second_order_on_the_exact_flow():
    """Max error over 200 points at t_min = 1e-3 against the exact flow, N = 80, 160, 320 steps. An order-p method's
    error ratio e(N) / e(2N) is 2^p (1 + O(1/N)). Measured: Euler 6.1e-3, 3.1e-3, 1.6e-3 (ratios 1.93, 1.97), Heun
    5.3e-4, 1.3e-4, 3.4e-5 (ratios 3.96, 3.98); the ratios' distance to 2^p halves with each doubling of N, so 5%
    of 2^p holds at the last doubling and tells the orders apart (a first-order Heun would give 2, not 4)."""
    sde = VPSDE()
    x1 = 1.5 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    reference = exact_flow(x1, 1.0, 1e-3)
    for solver, order in ((ode_euler, 1), (ode_heun, 2)):
        errors = [(solver(gaussian_score, sde, x1, time_grid(n)) - reference).abs().max().item()
                  for n in (80, 160, 320)]
        assert abs(errors[1] / errors[2] / 2**order - 1) < 0.05, (solver.__name__, errors)
        assert abs(errors[0] / errors[1] / 2**order - 1) < 0.1, (solver.__name__, errors)
        assert errors[2] < (2e-3 if order == 1 else 5e-5), (solver.__name__, errors)


def test_rk45_meets_its_tolerance_and_spends_evaluations_on_it():
    """solve_ivp's local error control at rtol = atol = tol gives a global error of order tol here (measured: 6e-3
    with 26 evaluations at 1e-3, 5e-6 with 62 at 1e-5, 8e-9 with 86 at 1e-7); CountedScore counts the evaluations."""
    sde = VPSDE()
    x1 = 1.5 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    reference = exact_flow(x1, 1.0, 1e-3)
    errors, calls = [], []
    for tol in (1e-3, 1e-5, 1e-7):
        counted = CountedScore(gaussian_score)
        x = ode_rk45(counted, sde, x1, time_grid(1), rtol=tol, atol=tol)
        assert x.dtype == F64 and x.shape == x1.shape
        errors.append((x - reference).abs().max().item())
        calls.append(counted.calls)
    assert errors[1] < 2e-5 and errors[2] < 1e-7 and errors[0] > errors[1] > errors[2], errors
    assert 6 <= calls[0] < calls[1] < calls[2], calls  # at least one step of 6 stages; more for tighter tolerances


def test_rk45_on_a_discrete_schedule_solves_its_own_piecewise_constant_ode():
    """ScheduleSDE(T = 10): f and g are constant on each (t_{i-1}, t_i]. For zero-mean Gaussian data of variance c
    the marginal variance is v_t = m_t^2 c + s_t^2 (m, s from `marginal`, exact at every t), and the flow keeps
    x / sqrt(v_t), as in `exact_flow`. RK45 at tolerance 1e-10 must find it (measured 7e-8); reading f and g half
    a grid step off t, as the fixed-step solvers do at grid points, solves another ODE (error 0.1)."""
    sde = ScheduleSDE(NoiseSchedule.linear(T=10, rescale=False, beta_start=0.05, beta_end=0.5))
    c = 0.3

    def variance(t):
        m, s = sde.marginal(t)
        return m**2 * c + s**2

    def score(x, t):
        return -x / (variance(t).reshape(-1, 1) if isinstance(t, torch.Tensor) else variance(t))

    x1 = torch.randn(4, 1, dtype=F64, generator=torch.Generator().manual_seed(0))
    expected = x1 * math.sqrt(variance(1e-3) / variance(1.0))
    x = ode_rk45(score, sde, x1, [1.0, 1e-3], rtol=1e-10, atol=1e-10)
    assert (x - expected).abs().max().item() < 1e-6


# ---------------------------------------------------------------------- mixtures against the sliced-W2 floor
MIX2 = GaussianMixture([0.5, 0.3, 0.2], [[-1.5, 0.0], [1.5, 0.5], [0.0, -1.5]],
                       [[[0.10, 0.05], [0.05, 0.08]], [[0.05, -0.02], [-0.02, 0.12]], [[0.20, 0.0], [0.0, 0.03]]])


def mixture_64d(dtype=F64):
    """8 components in 64-D: weights U(0.2, 1.2) normalised, means N(0, 4 I), full covariances with eigenvalues in
    [0.2, 2] along random orthonormal bases."""
    g = torch.Generator().manual_seed(64)
    weights = torch.rand(8, generator=g, dtype=F64) + 0.2
    means = 2 * torch.randn(8, 64, generator=g, dtype=F64)
    basis = torch.linalg.qr(torch.randn(8, 64, 64, generator=g, dtype=F64)).Q
    eigenvalues = 0.2 + 1.8 * torch.rand(8, 64, generator=g, dtype=F64)
    return GaussianMixture(weights, means, basis @ torch.diag_embed(eigenvalues) @ basis.mT, dtype=dtype)


# name: (mixture, mixture whose score the solvers use, chunk size n, number of chunks, floor pairs)
# 64-D: the score in float32 (4 times faster; it differs from float64's by 2e-4 at most), 2 chunks of 500 to keep the
# file's time down: a 64-D score evaluation costs 2 ms for 500 points on one core, and 1,000 steps of PC or Heun
# take 2,000 of them.
CASES = {"2-D": (MIX2, MIX2, 1000, 8, 48), "64-D": (mixture_64d(), mixture_64d(torch.float32), 500, 2, 48)}


def exact_score(mixture, sde):
    """score.mixture_score_fn for a batch whose rows share one time, as the solvers call it: the same numbers
    (asserted in the test; bit for bit in float64), twice as fast, because one (mean_coef, std) for the batch
    replaces the per-row (B, K, D) coefficients that mixture_score_fn builds for a (B,) t."""
    def score_fn(x, t):
        mean_coef, std = sde.marginal(t[0].item())
        return mixture.score(x, mean_coef=mean_coef, std=std).to(x.dtype)
    return score_fn


@functools.cache
def floor_of(case):
    """Sliced W2 between pairs of fresh true sets of n points: (mean, standard deviation of one pair)."""
    mixture, _, n, _, pairs = CASES[case]
    floors = [sliced_wasserstein(*(mixture.sample(n, generator=torch.Generator().manual_seed(1000 + 2 * i + j))
                                   for j in (0, 1))) for i in range(pairs)]
    return statistics.mean(floors), statistics.stdev(floors)


def statistic(case, x):
    """Mean sliced W2 of the chunks of x (n points each) to fresh true sets of n points."""
    mixture, _, n, _, _ = CASES[case]
    return statistics.mean(sliced_wasserstein(chunk.double(), mixture.sample(n, generator=torch.Generator()
                                                                              .manual_seed(5000 + i)))
                           for i, chunk in enumerate(x.split(n)))


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("case", ["2-D", pytest.param("64-D", marks=pytest.mark.slow)])
def test_samples_with_the_exact_mixture_score_are_within_1_5x_of_the_sliced_w2_floor(case, name):
    """The issue's target: 1,000 steps on VPSDE from t = 1 to t_min = 1e-3 (RK45 at rtol = atol = 1e-5), float32
    samples as a user draws them; statistic = mean sliced W2 of chunks of n samples to fresh true sets of n points,
    floor = the same mean for pairs of fresh true sets.

    Why it cannot pass or fail by luck: the statistic of a perfect sampler minus the floor has a standard error
    sd(one pair) sqrt(1 / chunks + 1 / pairs); the test asserts that 0.5 floor (the room the target leaves) is more
    than 3 of them (2-D: 0.137 floor, 64-D: 0.079 floor). Measured over 60 seeds, with true samples in place of the
    sampler's and fresh reference sets: the ratio is 0.98 +- 0.12 in 2-D (8 chunks of 1,000; floor 0.108, one
    pair's relative sd 0.36; largest of the 60: 1.26) and 1.00 +- 0.09 in 64-D (2 chunks of 500; floor 0.208,
    relative sd 0.11; largest 1.23). And a sampler that misses is caught: true samples of the mixture with every
    mean shifted by 0.3 score 3.1x (2-D) and 1.7x (64-D) the floor (asserted in each case). The target is loose
    all the same: every covariance scaled by 1.5 scores only 1.1x (2-D) and 1.4x (64-D); the sharp checks are the
    Gaussian tests in this file and in test_sampling.py.
    Measured ratios, 2-D / 64-D: Euler-Maruyama 1.17 / 1.31, PC 1.07 / 1.05, Euler, Heun and RK45 (the same ODE
    from the same x_T, hence the same samples to 1e-3) 1.02 / 1.25; 64-D's two reference sets sit 10% above the
    average (true samples score 1.10 against them, over 60 seeds).
    """
    mixture, score_mixture, n, chunks, pairs = CASES[case]
    floor, sd_pair = floor_of(case)
    assert 0.5 * floor > 3 * sd_pair * math.sqrt(1 / chunks + 1 / pairs), (floor, sd_pair)
    sde = VPSDE()
    g = torch.Generator().manual_seed(0)
    x_T = sde.prior_sample((chunks * n, mixture.D), generator=g)
    score_fn = exact_score(score_mixture, sde)
    probe_t = torch.full((x_T.shape[0],), 0.37)
    expected = mixture_score_fn(score_mixture, sde)(x_T, probe_t)  # equal up to the round-off of the mixture's dtype
    torch.testing.assert_close(score_fn(x_T, probe_t), expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    # Near t = 0 the responsibilities of far components underflow into float32 denormals, which the CPU handles
    # about 100 times slower: flushing them to zero halves the 64-D run's time and changes nothing above 1e-38.
    flushed = torch.set_flush_denormal(True)
    try:
        x = run(name, sde, score_fn, x_T, 1000, generator=g)
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    ratio = statistic(case, x) / floor
    assert ratio <= 1.5, (case, name, ratio)
    shifted = GaussianMixture(mixture.weights, mixture.means + 0.3, mixture.covs)
    wrong = statistic(case, shifted.sample(chunks * n, generator=torch.Generator().manual_seed(7)))
    assert wrong > 1.5 * floor, (wrong, floor)


# ------------------------------------------------------------------------------------- the solvers' own rules
def test_euler_maruyama_takes_its_last_step_without_noise():
    """A one-step grid is the last step: x - [f - g^2 score] h exactly, whatever the generator; on a two-step grid
    the first step draws noise, so two generators differ."""
    sde, x = VPSDE(), torch.randn(6, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t, s = 0.5, 0.4
    one = [euler_maruyama(gaussian_score, sde, x, [t, s], generator=torch.Generator().manual_seed(k)) for k in (1, 2)]
    beta = B0 + t * (B1 - B0)  # f = -beta / 2, g^2 = beta (eq. 11)
    expected = x - (-0.5 * beta * x - beta * gaussian_score(x, torch.full((6,), t, dtype=F64))) * (t - s)
    torch.testing.assert_close(one[0], expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(one[0], one[1])
    two = [euler_maruyama(gaussian_score, sde, x, [t, 0.45, s], generator=torch.Generator().manual_seed(k))
           for k in (1, 2)]
    assert not torch.allclose(two[0], two[1])


def test_predictor_corrector_step_rule_and_order():
    """One grid step with one corrector step: Langevin at t with eps = 2 alpha (r mean_b ||z_b|| / mean_b ||s_b||)^2
    (the per-example norms averaged over the batch, as score_sde), z the generator's first draw, alpha =
    (m(t) / m(s))^2; then the noise-free predictor. With no corrector steps PC is Euler-Maruyama, draw for draw."""
    sde, x = VPSDE(), torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    t, s, r = 0.5, 0.3, 0.2
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    score = gaussian_score(x, torch.full((50,), t, dtype=F64))
    alpha = (vp_mean_coef(t) / vp_mean_coef(s)).item() ** 2
    eps = 2 * alpha * (r * z.norm(dim=1).mean() / score.norm(dim=1).mean()) ** 2
    corrected = x + eps * score + (2 * eps).sqrt() * z
    expected = corrected - rev_drift(sde, gaussian_score, corrected, t) * (t - s)
    got = predictor_corrector(gaussian_score, sde, x, [t, s], snr=r, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    grid = time_grid(5, t_min=0.1)
    pc0 = predictor_corrector(gaussian_score, sde, x, grid, corrector_steps=0,
                              generator=torch.Generator().manual_seed(4))
    em = euler_maruyama(gaussian_score, sde, x, grid, generator=torch.Generator().manual_seed(4))
    assert torch.equal(pc0, em)


def test_heun_skips_its_correction_where_the_score_is_undefined():
    """A grid that ends at t = 0 (std = 0) takes an Euler last step: the score is never asked at t = 0 there; a grid
    that ends at t > 0 evaluates it at its end. NFE: 2 per step, one less with the Euler last step."""
    sde, x = VPSDE(), torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for end, calls in ((0.0, 2 * 4 - 1), (0.05, 2 * 4)):
        seen = []

        def score(x_t, t, seen=seen):
            seen.append(t[0].item())
            return gaussian_score(x_t, t)

        grid = torch.linspace(0.8, end, 5, dtype=F64)
        x_end = ode_heun(score, sde, x, grid)
        assert len(seen) == calls and min(seen) == pytest.approx(grid[-1].item() if end else grid[-2].item())
        if end == 0.0:  # the last step is Euler's from the grid's second-to-last time
            before = ode_heun(gaussian_score, sde, x, grid[:-1])
            euler = before + (0.0 - grid[-2].item()) * pf_drift(sde, gaussian_score, before,
                                                                               grid[-2].item())
            torch.testing.assert_close(x_end, euler, rtol=1e-12, atol=1e-12)


def test_solvers_accept_any_sde_and_keep_shape_dtype():
    """VE SDE, image-shaped float32 x: every solver returns x's shape and dtype; NFE as documented."""
    sde = VESDE(sigma_max=5.0)
    score_fn = mixture_score_fn(GaussianMixture([1.0], [[0.0] * 4], [1.0]), sde)
    x_T = sde.prior_sample((3, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    expected_calls = {"euler_maruyama": 10, "predictor_corrector": 20, "ode_euler": 10, "ode_heun": 20}
    for name in SOLVERS:
        counted = CountedScore(score_fn)
        x = run(name, sde, counted, x_T, 10, generator=torch.Generator().manual_seed(1), t_min=1e-5)
        assert x.shape == x_T.shape and x.dtype == torch.float32 and torch.isfinite(x).all(), name
        assert counted.calls == expected_calls.get(name, counted.calls) and counted.calls > 0, name


def test_solvers_check_their_arguments():
    sde, x = VPSDE(), torch.zeros(2, 2)
    with pytest.raises(TypeError, match="sde must be an SDE"):
        ode_euler(gaussian_score, "vp", x, time_grid(3))
    with pytest.raises(TypeError, match="score_fn must be callable"):
        ode_euler(None, sde, x, time_grid(3))
    with pytest.raises(TypeError, match="x_T must be a torch.Tensor"):
        ode_heun(gaussian_score, sde, [[0.0, 0.0]], time_grid(3))
    for bad in ([0.5, 0.7], [1.0], [1.0, 0.5, 0.5], [1.5, 0.5], [[1.0, 0.5]]):
        with pytest.raises(ValueError, match="times must"):
            euler_maruyama(gaussian_score, sde, x, bad)
    with pytest.raises(ValueError, match="snr must lie in"):
        predictor_corrector(gaussian_score, sde, x, time_grid(3), snr=0.0)
    with pytest.raises(ValueError, match="corrector_steps must be >= 0"):
        predictor_corrector(gaussian_score, sde, x, time_grid(3), corrector_steps=-1)
    with pytest.raises(ValueError, match="rtol must lie in"):
        ode_rk45(gaussian_score, sde, x, time_grid(1), rtol=0.0)
    with pytest.raises(TypeError, match="num_steps must be an int"):
        time_grid(10.0)
    with pytest.raises(ValueError, match="t_min must lie in"):
        time_grid(10, t_min=1.0)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        CountedScore("score")


def test_time_grid_is_uniform_and_decreasing():
    grid = time_grid(4, t_min=0.2)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2], dtype=F64), rtol=0, atol=1e-15)
    assert grid[0].item() == 1.0 and grid[-1].item() == 0.2 and grid.dtype == F64
    assert time_grid(1000)[-1].item() == 1e-3


def test_progress_bars_run():
    sde, x = VPSDE(), torch.zeros(2, 2, dtype=F64)
    for name in SOLVERS:
        run(name, sde, gaussian_score, x, 3, generator=torch.Generator().manual_seed(0), progress=True)


@pytest.mark.parametrize("name", sorted(set(SOLVERS) - {"ode_rk45"}))
def test_fixed_step_solvers_call_the_hook_after_every_step_with_its_time(name):
    """hook(x, t): called once per step with the grid time s that x is now at (a float), the last at times[-1];
    an identity hook changes nothing (bit for bit); its return replaces x (the score is next asked at it), so a hook
    that pins coordinate 0 to 0.25 holds it at the end. RK45 picks its own steps and takes no hook."""
    sde, grid = VPSDE(), time_grid(6, t_min=0.05)
    x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    seen = []

    def identity(x, t):
        assert isinstance(t, float) and x.shape == (5, 2)
        seen.append(t)
        return x

    plain = run(name, sde, gaussian_score, x_T, 6, generator=torch.Generator().manual_seed(1), t_min=0.05)
    hooked = run(name, sde, gaussian_score, x_T, 6, generator=torch.Generator().manual_seed(1), t_min=0.05,
                 hook=identity)
    assert torch.equal(plain, hooked) and seen == grid[1:].tolist()
    asked = []

    def score(x, t):
        asked.append(x)
        return gaussian_score(x, t)

    def pin(x, t):
        x = x.clone()
        x[:, 0] = 0.25
        return x

    x = run(name, sde, score, x_T, 6, generator=torch.Generator().manual_seed(1), t_min=0.05, hook=pin)
    assert (x[:, 0] == 0.25).all() and not (plain[:, 0] == 0.25).any()
    first_of_last_step = -2 if name in ("ode_heun", "predictor_corrector") else -1  # 2 evaluations a step, or 1
    assert (asked[first_of_last_step][:, 0] == 0.25).all()  # the last step starts at the hooked x
    with pytest.raises(TypeError, match="hook must be None or callable"):
        run(name, sde, gaussian_score, x_T, 6, generator=torch.Generator().manual_seed(1), hook="pin")
    with pytest.raises(ValueError, match=r"hook\(x, t\) must return a tensor of x's shape \(5, 2\)"):
        run(name, sde, gaussian_score, x_T, 6, generator=torch.Generator().manual_seed(1), hook=lambda x, t: x[:1])
    with pytest.raises(TypeError, match="unexpected keyword argument 'hook'"):
        ode_rk45(gaussian_score, sde, x_T, grid, hook=identity)


# --------------------------------------------------------------------------------- a discrete schedule as an SDE
def test_schedule_sde_has_the_schedule_marginals_at_grid_times_and_log_linear_ones_between():
    """Respaced cosine schedule, T' = 20: mean_coef(i / T') = sqrt(alpha_bar_i), std = sqrt(1 - alpha_bar_i), for
    float and tensor times; at the middle of step i, log mean_coef is the mean of its ends'; f is constant on the
    step and equals d log mean_coef / dt = T'/2 log alpha_i (finite difference inside the step), g^2 = -2 f."""
    schedule = NoiseSchedule.cosine(T=200).respace(spaced_timesteps(200, 20))
    sde, T = ScheduleSDE(schedule), 20
    t = torch.arange(T + 1, dtype=F64) / T
    mean_coef, std = sde.marginal(t)
    torch.testing.assert_close(mean_coef, schedule.alpha_bars.sqrt(), rtol=1e-12, atol=0)
    torch.testing.assert_close(std, (1 - schedule.alpha_bars).sqrt(), rtol=1e-10, atol=0)
    for i in (1, 7, 20):
        assert sde.marginal(i / T) == pytest.approx((schedule.alpha_bars[i].sqrt().item(),
                                                     (1 - schedule.alpha_bars[i]).sqrt().item()), rel=1e-10)
        middle = (i - 0.5) / T
        log_m = math.log(sde.marginal(middle)[0])
        assert log_m == pytest.approx(0.25 * (schedule.alpha_bars[i - 1] * schedule.alpha_bars[i]).log().item(),
                                      rel=1e-10)
        f = 0.5 * T * math.log(schedule.alphas[i].item())
        for u in (i - 0.9, i - 0.5, i - 0.1, i):  # anywhere in (t_{i-1}, t_i], the grid point itself included
            assert sde.drift_coef(u / T) == pytest.approx(f, rel=1e-12)
            assert sde.diffusion(u / T) ** 2 == pytest.approx(-2 * f, rel=1e-12)
        h = 1e-6
        slope = (math.log(sde.marginal(middle + h)[0]) - math.log(sde.marginal(middle - h)[0])) / (2 * h)
        assert slope == pytest.approx(f, rel=1e-6)
    # tensor times give the same values as floats, in the tensor's dtype
    times = torch.tensor([0.0, 0.013, 0.5, 0.77, 1.0], dtype=F64)
    for k, u in enumerate(times.tolist()):
        assert sde.drift_coef(times)[k].item() == pytest.approx(sde.drift_coef(u), rel=1e-12)
        assert sde.marginal(times)[1][k].item() == pytest.approx(sde.marginal(u)[1], rel=1e-12, abs=1e-300)
    assert sde.marginal(times.float())[0].dtype == torch.float32
    assert sde.marginal(0.0) == (1.0, 0.0)


def test_schedule_sde_of_the_discretised_vp_sde_is_close_to_it():
    """VPSDE().discretize(1000) is DDPM's schedule; its ScheduleSDE has beta(t) = -T log(1 - beta_i) with beta_i =
    beta(tau_i) / T, tau_i = (i - 1) / (T - 1): |beta(t) - VP beta(t)| <= (b1 - b0) |tau_i - t| + beta_max^2 / T
    (the second-order term of -log(1 - beta_i)) with |tau_i - t| <= 1 / T. The marginals agree to O(1/T) as in
    test_sde (the constant 0.81 there, in alpha_bar)."""
    vp, T = VPSDE(), 1000
    sde = ScheduleSDE(vp.discretize(T))
    t = torch.linspace(0.0005, 1, 997, dtype=F64)
    beta = sde.diffusion(t) ** 2
    assert (beta - vp.beta(t)).abs().max().item() <= ((B1 - B0) + B1**2) / T
    assert (sde.marginal(t)[0] ** 2 - vp.marginal(t)[0] ** 2).abs().max().item() <= 1.0 / T


def test_schedule_score_is_minus_eps_over_sigma_at_the_training_steps():
    """score(x, i / T') = -eps_theta(x, timesteps[i]) / sqrt(1 - alpha_bar_i) on a respaced schedule, the model
    called at the training step; an x0- or v-model adapted by as_eps_model (on the training schedule) gives the same
    score; off-grid times and t = 0 are refused (an eps-model knows the score at its steps only)."""
    base = NoiseSchedule.linear(T=100)
    schedule = base.respace(spaced_timesteps(100, 10))
    eps_model = mixture_eps_model(MIX2, base)
    seen = []

    def recording(x_t, t):
        seen.append(t.clone())
        return eps_model(x_t, t)

    sde = ScheduleSDE(schedule)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    score = sde.score_fn(recording)(x, 0.3)
    assert torch.equal(seen[-1], torch.full((5,), 30))
    expected = -eps_model(x, torch.full((5,), 30)) / (1 - base.alpha_bars[30]).sqrt()
    torch.testing.assert_close(score, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(score, MIX2.diffuse(base.alpha_bars[30].sqrt().item(),
                                                   (1 - base.alpha_bars[30]).sqrt().item()).score(x),
                               rtol=1e-10, atol=1e-10)

    def x0_model(x_t, t):  # x0 = (x_t - sqrt(1 - ab) eps) / sqrt(ab), the same network predicting x0
        ab = base.alpha_bars[t][:, None]
        return (x_t - (1 - ab).sqrt() * eps_model(x_t, t)) / ab.sqrt()

    def v_model(x_t, t):  # v = sqrt(ab) eps - sqrt(1 - ab) x0
        ab = base.alpha_bars[t][:, None]
        return ab.sqrt() * eps_model(x_t, t) - (1 - ab).sqrt() * x0_model(x_t, t)

    for prediction, model in (("x0", x0_model), ("v", v_model)):
        adapted = as_eps_model(model, base, prediction=prediction)
        torch.testing.assert_close(sde.score_fn(adapted)(x, 0.3), score, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(sde.score_fn(x0_model)(x, 0.3), score, atol=1e-2)  # an x0-model read as eps
    with pytest.raises(ValueError, match="grid times"):
        sde.score_fn(eps_model)(x, 0.35)
    with pytest.raises(ValueError, match="grid times"):
        sde.score_fn(eps_model)(x, 0.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'prediction'"):
        sde.score_fn(x0_model, prediction="x0")
    with pytest.raises(TypeError, match="eps_model must be callable"):
        sde.score_fn("unet")
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        ScheduleSDE(VPSDE())


def test_registered_samplers_call_the_model_at_the_training_steps():
    """num_steps = 10 on T = 1000: the respaced steps are s_k = round(1000 k / 10) = 100 k. Euler-Maruyama and Euler
    call the model once at each s_k, from s_10 down to s_1; PC twice (corrector, predictor); Heun at s_k and at the
    end of the step s_{k-1}, except on its last step to t = 0 (Euler, no correction)."""
    base = NoiseSchedule.linear()
    eps_model = mixture_eps_model(MIX2, base)
    steps = [round(1000 * k / 10) for k in range(10, 0, -1)]
    expected = {"sde": steps, "ode_euler": steps, "pc": [s for s in steps for _ in range(2)],
                "ode": [u for a, b in zip(steps, steps[1:] + [None], strict=True)
                        for u in ([a] if b is None else [a, b])]}
    for name, calls in expected.items():
        seen = []

        def recording(x_t, t, seen=seen):
            assert t.shape == (x_t.shape[0],) and t.dtype == torch.long and (t == t[0]).all()
            seen.append(int(t[0]))
            return eps_model(x_t, t)

        x = sample(recording, base, (4, 2), sampler=name, num_steps=10, generator=torch.Generator().manual_seed(0))
        assert seen == calls, name
        assert x.shape == (4, 2) and torch.isfinite(x).all()


def test_registered_samplers_describe_themselves():
    assert {"sde", "pc", "ode", "ode_euler"} <= set(SAMPLERS)
    assert SAMPLERS["pc"].defaults == {"snr": 0.16, "corrector_steps": 1}
    assert SAMPLERS["ode"].stochastic is False and SAMPLERS["ode_euler"].stochastic is False
    assert SAMPLERS["sde"].stochastic and SAMPLERS["pc"].stochastic
    schedule = NoiseSchedule.linear(T=50, rescale=True)
    x = sample(mixture_eps_model(MIX2, schedule), schedule, (3, 2), sampler="pc", snr=0.1, corrector_steps=2,
               generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2)
    with pytest.raises(ValueError, match="snr must lie in"):
        sample(lambda x, t: x, NoiseSchedule.linear(T=50, rescale=True), (3, 2), sampler="pc", snr=-1.0)


def ddim_eta0(eps_model, schedule, x):
    """DDIM with eta = 0 (Song, Meng & Ermon 2021, eq. 12) on a respaced schedule, written here:
    x_{i-1} = sqrt(ab_{i-1}) x0_hat + sqrt(1 - ab_{i-1}) eps, x0_hat = (x_i - sqrt(1 - ab_i) eps) / sqrt(ab_i)."""
    ab = schedule.alpha_bars
    for i in range(schedule.T, 0, -1):
        eps = eps_model(x, schedule.timesteps[i].expand(x.shape[0]))
        x0 = (x - (1 - ab[i]).sqrt() * eps) / ab[i].sqrt()
        x = ab[i - 1].sqrt() * x0 + (1 - ab[i - 1]).sqrt() * eps
    return x


def test_ode_euler_is_not_ddim_but_converges_to_it():
    """Euler in t on the schedule's process is not DDIM (eta = 0), which is Euler in sigma = sqrt((1 - ab) / ab) on
    x / sqrt(ab) (DDIM sec. 4.3). One step's coefficient of x_i: Euler 1 - 1/2 log alpha_i = 1 + beta/2 + beta^2/4
    + ..., DDIM alpha_i^(-1/2) = 1 + beta/2 + 3 beta^2/8 + ...: they differ at O(beta^2) per step, so by O(1/N) over N
    steps, both being first-order solvers of the same ODE. Measured, the median over 256 samples of the 2-D mixture
    of |Euler - DDIM|: 0.27, 0.029, 0.0030 at N = 10, 100, 1,000 (ratio 9.9 from 100 to 1,000; the maximum is
    ragged, a few samples near the boundary between components land in different ones)."""
    base = NoiseSchedule.linear()
    eps_model = mixture_eps_model(MIX2, base)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    gaps = []
    for n in (10, 100, 1000):
        euler = sample(eps_model, base, (256, 2), sampler="ode_euler", num_steps=n, x_T=x_T)
        ddim = ddim_eta0(eps_model, base.respace(spaced_timesteps(1000, n)), x_T)
        gaps.append((euler - ddim).norm(dim=1).median().item())
    assert gaps[0] > 0.1 and gaps[2] > 1e-3, gaps  # not the same sampler: 1e-3 is 1e12 times float64 round-off
    assert 8 < gaps[1] / gaps[2] < 12, gaps  # first order in 1/N


def test_heun_on_a_schedule_is_second_order_across_its_piecewise_constant_coefficients():
    """ScheduleSDE's f and g are constant on each grid interval and jump at the grid times, so Heun's end-point
    slope from t_i down to t_{i-1} must use step i's coefficients (`SDE.coefficient_time`). The exact flow of
    Gaussian data (y / sqrt(v) constant along each eigenvector, with the schedule's own marginals) from t = 1 to the
    first grid time, DDPM's schedule respaced to N = 25 ... 200 steps: Heun's error ratio per doubling must be 4
    within 5% (measured 4.09, 4.04, 4.02) and Euler's 2 (2.00). With step i-1's coefficients at t_{i-1} Heun was
    first order (ratios 1.89, 1.95, 1.97; max error 2.3e-2 at N = 200 instead of 1.5e-4)."""
    base = NoiseSchedule.linear(1000)
    x1 = 1.5 * torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for solver, order in ((ode_euler, 1), (ode_heun, 2)):
        errors = []
        for N in (25, 50, 100, 200):
            sde = ScheduleSDE(base.respace(spaced_timesteps(1000, N)))

            def moments(t, sde=sde):
                m = torch.as_tensor(sde.marginal(t)[0], dtype=F64)
                return m, m[..., None] ** 2 * LAM + 1 - m[..., None] ** 2  # eigen-variances of p_t

            def score(x, t, moments=moments):
                m, v = moments(t)
                return -(((x - m[:, None] * MU) @ Q) / v) @ Q.T

            times = sde.times[:-1]  # down to t_1: the score of p_0 is not defined
            (m1, v1), (ms, vs) = moments(1.0), moments(times[-1].item())
            reference = ms * MU + (((x1 - m1 * MU) @ Q) * (vs / v1).sqrt()) @ Q.T
            errors.append((solver(score, sde, x1, times) - reference).abs().max().item())
        ratios = [a / b for a, b in zip(errors, errors[1:], strict=False)]
        assert all(abs(r / 2**order - 1) < 0.05 for r in ratios), (solver.__name__, errors, ratios)
