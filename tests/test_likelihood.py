"""Lecture 3: log-likelihoods through the probability-flow ODE, measured against exact answers.

References are computed here: the exact log-density of Gaussian mixtures (`GaussianMixture.log_prob`, tested in
test_score.py), the affine PF-ODE flow of Gaussian data in closed form, and discrete probabilities from the normal
CDF. Where the ODE's answer differs from log p_0 for a known reason, the test computes that reason:

    ODE result = log q_{t_min}(x) + [log N(z; 0, prior_std^2 I) - log q_1(z)] + solver error

(the flow carries q_{t_min} to q_1 exactly; the prior only approximates q_1, and t_min > 0 blurs the data). The solver
error of adaptive RK45 is C * tol, with a problem-dependent C (measured and stated where it is used): the tests
that check the identity to high precision run at tol = 1e-9, where it is far below the terms they account for.
Statistical checks use fixed seeds and tolerances Z * (standard error from the sample), Z = 4.
"""

import math

import pytest
import torch
from drifts import pf_drift

from ddpm_scratch.likelihood import (
    bits_per_dim,
    dequantize,
    drift_and_divergence,
    heun_likelihood,
    ode_likelihood,
    ode_log_likelihood,
    rademacher,
)
from ddpm_scratch.score import GaussianMixture, mixture_score_fn
from ddpm_scratch.sde import VESDE, VPSDE

Z = 4.0  # two-sided normal quantile: a correct implementation fails one check with probability 6e-5
F64 = torch.float64

T_MIN = 1e-5


def random_mixture(D, K, seed, smallest_eigenvalue):
    """K components in D dimensions with random full covariances (eigenvalues in [smallest_eigenvalue, 1], random
    rotations: a Jacobian far from diagonal, where the Hutchinson estimate has variance) and means ~ N(0, I)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(K, D, generator=g, dtype=F64)
    rotations = torch.linalg.qr(torch.randn(K, D, D, generator=g, dtype=F64))[0]
    eigenvalues = smallest_eigenvalue + (1 - smallest_eigenvalue) * torch.rand(K, D, generator=g, dtype=F64)
    return GaussianMixture(torch.ones(K), means, rotations @ torch.diag_embed(eigenvalues) @ rotations.mT)


MIXTURE_2D = GaussianMixture([1, 2, 1], [[-2.0, 0.0], [1.5, 1.5], [0.5, -2.0]],
                             [[[0.3, 0.1], [0.1, 0.2]], [[0.5, 0.0], [0.0, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]])


def expected_ode_result(mixture, sde, x, result):
    """log q_{t_min}(x) + log N(z; 0, prior) - log q_1(z): what an exact solve of the ODE from t_min returns."""
    m0, s0 = sde.marginal(T_MIN)
    m1, s1 = sde.marginal(1.0)
    return (mixture.log_prob(x, mean_coef=m0, std=s0) + sde.prior_log_prob(result.z)
            - mixture.log_prob(result.z, mean_coef=m1, std=s1))


# ------------------------------------------------------------------------------------------ mixtures: the target
def test_2d_mixture_exact_divergence_is_within_one_percent_of_log_prob():
    sde = VPSDE()
    x = MIXTURE_2D.sample(64, torch.Generator().manual_seed(0))
    log_prob = MIXTURE_2D.log_prob(x)
    result = ode_likelihood(mixture_score_fn(MIXTURE_2D, sde), sde, x, exact_divergence=True)
    relative = ((result.log_likelihood - log_prob) / log_prob).abs()
    print(f"2-D, exact divergence, rtol = atol = 1e-5: NFE {result.nfe}, max relative error {relative.max():.2e}")
    assert relative.max() < 0.01  # the target


def test_2d_the_gap_to_log_prob_is_the_prior_and_t_min_and_the_solver():
    """The gap between the ODE's answer and log p_0 is the prior's mismatch with q_1 (~5e-3 nats here) plus the
    blur of t_min (~4e-6) plus the solver's error, which falls in proportion to the tolerance (RK45's global error
    is C * tol, C problem-dependent: measured up to ~600 for the tail point log p = -8.9 of this sample, ~5 for the
    others). At tol = 1e-9 the solver's share is below 1e-6, under either modelled term, so leaving one out fails."""
    sde = VPSDE()
    x = MIXTURE_2D.sample(16, torch.Generator().manual_seed(1))
    (m0, s0), (m1, s1) = sde.marginal(T_MIN), sde.marginal(1.0)
    rows = []
    for tol in (1e-3, 1e-5, 1e-7, 1e-9):
        result = ode_likelihood(mixture_score_fn(MIXTURE_2D, sde), sde, x, exact_divergence=True, rtol=tol, atol=tol)
        error = (result.log_likelihood - expected_ode_result(MIXTURE_2D, sde, x, result)).abs().max().item()
        rows.append((tol, result.nfe, error))
    print("2-D solver error vs NFE:", ", ".join(f"tol {t:g}: NFE {n}, error {e:.1e}" for t, n, e in rows))
    nfes, errors = [r[1] for r in rows], [r[2] for r in rows]
    assert nfes == sorted(nfes) and errors == sorted(errors, reverse=True)
    assert errors[-1] < 1e-6
    prior_gap = (result.prior_log_prob - MIXTURE_2D.log_prob(result.z, mean_coef=m1, std=s1)).abs().min().item()
    blur = (MIXTURE_2D.log_prob(x, mean_coef=m0, std=s0) - MIXTURE_2D.log_prob(x)).abs().max().item()
    assert prior_gap > 1e-4 and blur > 1e-6


@pytest.fixture(scope="module")
def mixture_64d():
    mixture = random_mixture(D=64, K=4, seed=0, smallest_eigenvalue=0.1)
    x = mixture.sample(16, torch.Generator().manual_seed(2))
    sde = VPSDE()
    exact = ode_likelihood(mixture_score_fn(mixture, sde), sde, x, exact_divergence=True)
    return mixture, sde, x, exact


def test_64d_mixture_exact_divergence_is_within_one_percent_of_log_prob(mixture_64d):
    mixture, sde, x, exact = mixture_64d
    log_prob = mixture.log_prob(x)
    relative = ((exact.log_likelihood - log_prob) / log_prob).abs()
    print(f"64-D, exact divergence: NFE {exact.nfe}, max relative error {relative.max():.2e}")
    assert relative.max() < 0.01


def test_64d_mixture_hutchinson_is_unbiased_and_within_one_percent(mixture_64d):
    """R probes for each of 16 points: the Hutchinson solves scatter around the exact-divergence solve (one probe's
    spread is ~4 nats of ~70 here), and their mean lies within Z standard errors of it and within 1% of log_prob.
    The two solves take different steps, so their solver errors differ too: at most the exact solve's own distance
    to its exact answer (measured, ~0.01 nats), allowed once more."""
    mixture, sde, x, exact = mixture_64d
    R = 64
    result = ode_likelihood(mixture_score_fn(mixture, sde), sde, x.repeat_interleave(R, 0),
                            generator=torch.Generator().manual_seed(3))
    estimates = result.log_likelihood.view(-1, R)
    deviation = estimates - exact.log_likelihood[:, None]  # probe noise only: same points, same tolerances
    standard_error = deviation.std().item() / math.sqrt(deviation.numel())
    solver_error = (exact.log_likelihood - expected_ode_result(mixture, sde, x, exact)).abs().max().item()
    print(f"64-D, Hutchinson: NFE {result.nfe}, one probe's spread {deviation.std():.2f} nats, mean deviation from "
          f"the exact divergence {deviation.mean():.3f} +- {standard_error:.3f} (solver error {solver_error:.3f})")
    assert abs(deviation.mean().item()) < Z * standard_error + solver_error
    # the 1% target on the mean; the check is decisive because Z standard errors are below 1% of log_prob
    log_prob = mixture.log_prob(x)
    assert Z * standard_error < 0.01 * log_prob.abs().mean().item()
    relative = abs(estimates.mean().item() - log_prob.mean().item()) / log_prob.abs().mean().item()
    assert relative < 0.01


# ------------------------------------------------------------------------------------------ Gaussian data: exact
def gaussian_flow(mean, cov, sde, x, t_min):
    """The PF-ODE from t_min to 1 for data ~ N(mean, cov), in closed form, and the log-likelihood it gives.

    In the eigenbasis cov = Q diag(lambda) Q^T, q_t = N(m(t) mean, Q diag(v(t)) Q^T) with v = m^2 lambda + s^2 and
    the score is -(x - m mean) / v, so the drift is f x + g^2 / (2 v) (x - m mean). With dv/dt = 2 f v + g^2:
    d/dt (x - m mean) = (f + g^2 / (2 v)) (x - m mean) = 1/2 dlog v / dt (x - m mean), hence
        z = m(1) mean + Q diag(sqrt(v(1) / v(t_min))) Q^T (x - m(t_min) mean),
        int div = sum_e int (f + g^2 / (2 v_e)) dt = 1/2 sum_e log(v_e(1) / v_e(t_min)).
    """
    lam, Q = torch.linalg.eigh(cov)
    (m0, s0), (m1, s1) = sde.marginal(t_min), sde.marginal(1.0)
    v0, v1 = m0**2 * lam + s0**2, m1**2 * lam + s1**2
    z = m1 * mean + ((x - m0 * mean) @ Q * (v1 / v0).sqrt()) @ Q.T
    delta = 0.5 * (v1 / v0).log().sum()
    return z, sde.prior_log_prob(z) + delta


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(sigma_min=0.01, sigma_max=5.0)], ids=["VP", "VE"])
def test_gaussian_data_match_the_closed_form_flow(sde):
    mean = torch.tensor([0.5, -1.0, 0.2], dtype=F64)
    A = torch.tensor([[1.0, 0.3, 0.0], [0.2, 0.6, -0.4], [0.0, 0.1, 0.5]], dtype=F64)
    cov = A @ A.T
    mixture = GaussianMixture([1.0], mean[None], cov[None])
    x = mixture.sample(8, torch.Generator().manual_seed(4))
    result = ode_likelihood(mixture_score_fn(mixture, sde), sde, x, exact_divergence=True, rtol=1e-9, atol=1e-9)
    z, expected = gaussian_flow(mean, cov, sde, x, T_MIN)
    # RK45's global error is C * tol (C ~ 2 to 6 measured here for both SDEs); 1e-6 = 1000 tol leaves room, and is
    # far below the gap to log p_0 (prior mismatch: 5e-3 nats for VP, 0.19 for VE with sigma_max = 5)
    assert (result.log_likelihood - expected).abs().max().item() < 1e-6
    assert (result.z - z).abs().max().item() < 1e-6


def test_heun_on_a_grid_converges_at_second_order():
    """Fixed Heun steps (the solver for scores known on a grid): error ~ C / N^2, so doubling N divides it by ~4."""
    sde = VPSDE()
    mean, cov = torch.tensor([0.3, -0.2], dtype=F64), torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)
    mixture = GaussianMixture([1.0], mean[None], cov[None])
    x = mixture.sample(8, torch.Generator().manual_seed(5))
    _, expected = gaussian_flow(mean, cov, sde, x, T_MIN)
    errors = []
    for steps in (50, 100, 200):
        times = torch.linspace(T_MIN, 1.0, steps + 1, dtype=F64)
        result = heun_likelihood(mixture_score_fn(mixture, sde), sde, x, times, exact_divergence=True)
        assert result.nfe == 2 * steps
        errors.append((result.log_likelihood - expected).abs().max().item())
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    print(f"Heun errors at 50, 100, 200 steps: {errors}, ratios {ratios}")
    assert all(3.5 < r < 4.5 for r in ratios)  # 4 for second order; first order would give 2


def test_heun_on_a_discrete_schedule_with_the_exact_eps_model_is_within_one_percent():
    """The digits benchmark's path: an eps-model known at the steps of a discrete schedule only, its score at the
    grid times t_i = i / T of the schedule's own VP process (sde.ScheduleSDE), Heun steps on grid times from t_1.
    With the exact eps-model of a 2-D mixture the answer is within 1% of log_prob (the grid is coarse where it
    starts: sigma grows by 40% from t_1 to t_2, which no finer grid can resolve; measured max error 0.6%)."""
    from ddpm_scratch.schedules import NoiseSchedule
    from ddpm_scratch.score import mixture_eps_model
    from ddpm_scratch.sde import ScheduleSDE

    schedule = NoiseSchedule.linear(1000)
    sde = ScheduleSDE(schedule)
    score_fn = sde.score_fn(mixture_eps_model(MIXTURE_2D, schedule))
    x = MIXTURE_2D.sample(64, torch.Generator().manual_seed(16))
    steps = sorted({round(1 + 999 * (k / 100) ** 2) for k in range(101)})  # 1 to T, dense at small t
    result = heun_likelihood(score_fn, sde, x, [i / 1000 for i in steps], exact_divergence=True)
    log_prob = MIXTURE_2D.log_prob(x)
    assert ((result.log_likelihood - log_prob) / log_prob).abs().max() < 0.01


# ------------------------------------------------------------------------------------------ the divergence
def test_exact_divergence_is_the_trace_of_the_jacobian():
    sde = VPSDE()
    score_fn = mixture_score_fn(MIXTURE_2D, sde)
    x = MIXTURE_2D.sample(3, torch.Generator().manual_seed(6))
    drift, divergence = drift_and_divergence(score_fn, sde, x, 0.3)
    torch.testing.assert_close(drift, pf_drift(sde, score_fn, x, 0.3))
    for b in range(3):
        jacobian = torch.autograd.functional.jacobian(lambda y: pf_drift(sde, score_fn, y, 0.3),
                                                      x[b:b + 1]).reshape(2, 2)
        torch.testing.assert_close(divergence[b], jacobian.trace(), rtol=1e-12, atol=1e-12)


def test_hutchinson_mean_is_the_exact_divergence():
    """eta^T A eta with Rademacher eta: mean tr A, variance sum_{i<j} (A_ij + A_ji)^2 (the products eta_i eta_j of
    distinct pairs are uncorrelated with variance 1)."""
    mixture = random_mixture(D=5, K=3, seed=7, smallest_eigenvalue=0.2)
    sde = VPSDE()
    score_fn = mixture_score_fn(mixture, sde)
    point = mixture.sample(1, torch.Generator().manual_seed(8))
    M = 20000
    x = point.expand(M, 5).clone()
    probes = rademacher(x, generator=torch.Generator().manual_seed(9))
    _, estimates = drift_and_divergence(score_fn, sde, x, 0.05, probe=probes)
    _, exact = drift_and_divergence(score_fn, sde, point, 0.05)
    A = torch.autograd.functional.jacobian(lambda y: pf_drift(sde, score_fn, y, 0.05), point)
    A = A.reshape(5, 5)
    variance = sum((A[i, j] + A[j, i]) ** 2 for i in range(5) for j in range(i + 1, 5)).item()
    assert variance > 0.1 * exact.item() ** 2  # a Jacobian far from diagonal: the estimate really is noisy
    assert abs(estimates.mean().item() - exact.item()) < Z * math.sqrt(variance / M)
    assert abs(estimates.var().item() / variance - 1) < 0.05  # sample variance of 2e4 draws: ~1% relative error


def test_hutchinson_is_exact_for_a_diagonal_jacobian():
    """Isotropic Gaussian data: df~/dx is a multiple of I, and every Rademacher probe gives the trace exactly."""
    mixture = GaussianMixture([1.0], [[0.0, 1.0, -1.0, 2.0]], [0.7])
    sde = VPSDE()
    x = mixture.sample(32, torch.Generator().manual_seed(10))
    exact = ode_log_likelihood(mixture_score_fn(mixture, sde), sde, x, exact_divergence=True)
    estimate = ode_log_likelihood(mixture_score_fn(mixture, sde), sde, x, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(estimate, exact, rtol=1e-9, atol=1e-9)


def test_one_probe_per_point_kept_for_the_whole_solve():
    """Gaussian data: df~/dx = Q diag(a(t)) Q^T with int a_e dt = 1/2 log(v_e(1) / v_e(t_min)) (see gaussian_flow).
    With one probe eta kept for the whole solve the estimate is exactly eta^T Q diag(int a dt) Q^T eta; a probe
    drawn anew at every evaluation would give a different number. The probe is the generator's first draw."""
    sde = VPSDE()
    mean = torch.tensor([0.5, -1.0, 0.2], dtype=F64)
    A = torch.tensor([[1.0, 0.3, 0.0], [0.2, 0.6, -0.4], [0.0, 0.1, 0.5]], dtype=F64)
    cov = A @ A.T
    mixture = GaussianMixture([1.0], mean[None], cov[None])
    x = mixture.sample(8, torch.Generator().manual_seed(12))
    result = ode_likelihood(mixture_score_fn(mixture, sde), sde, x, rtol=1e-9, atol=1e-9,
                            generator=torch.Generator().manual_seed(13))
    probe = rademacher(x, generator=torch.Generator().manual_seed(13))
    lam, Q = torch.linalg.eigh(cov)
    (m0, s0), (m1, s1) = sde.marginal(T_MIN), sde.marginal(1.0)
    integral = 0.5 * ((m1**2 * lam + s1**2) / (m0**2 * lam + s0**2)).log()  # int a_e dt, (3,)
    expected = ((probe @ Q) ** 2 * integral).sum(dim=1)
    torch.testing.assert_close(result.delta_log_prob, expected, rtol=0, atol=1e-6)
    z, exact = gaussian_flow(mean, cov, sde, x, T_MIN)
    assert (result.delta_log_prob - (exact - sde.prior_log_prob(z))).abs().max() > 1e-2  # the probe matters here


# ------------------------------------------------------------------------------------------ bits per dimension
def test_bits_per_dim_by_hand():
    # -(-100) / (64 ln 2) + log2((17 - 1) / 2) = 2.2542... + 3
    assert bits_per_dim(-100.0, 64, levels=17).item() == pytest.approx(100 / (64 * 0.6931471805599453) + 3.0)
    # 8-bit images in [-1, 1]: the offset is log2(255 / 2); in [0, 1]: log2(255)
    zero = torch.zeros(2)
    torch.testing.assert_close(bits_per_dim(zero, 3072, levels=256), torch.full((2,), math.log2(127.5), dtype=F64))
    assert bits_per_dim(0.0, 1, levels=256, data_range=1.0).item() == pytest.approx(math.log2(255))


@pytest.mark.parametrize("kwargs, name", [
    (dict(log_likelihood_nats=-1.0, num_dims=0, levels=17), "num_dims"),
    (dict(log_likelihood_nats=-1.0, num_dims=2.5, levels=17), "num_dims"),
    (dict(log_likelihood_nats=-1.0, num_dims=4, levels=1), "levels"),
    (dict(log_likelihood_nats=-1.0, num_dims=4, levels=17, data_range=0.0), "data_range"),
    (dict(log_likelihood_nats="-1", num_dims=4, levels=17), "log_likelihood_nats"),
])
def test_bits_per_dim_names_the_bad_argument(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        bits_per_dim(**kwargs)


def test_dequantized_levels_stay_in_their_bins_uniformly():
    levels, h = 17, 2 / 16
    x = (torch.randint(0, levels, (4000, 3), generator=torch.Generator().manual_seed(13)) * h - 1).double()
    y = dequantize(x, levels=levels, generator=torch.Generator().manual_seed(14))
    offset = (y - x) / h  # u - 1/2, u ~ U[0, 1): mean 0, variance 1/12
    assert offset.min() >= -0.5 and offset.max() < 0.5
    assert abs(offset.mean().item()) < Z * math.sqrt(1 / 12 / offset.numel())
    assert ((y + 1) / h).round().eq((x + 1) / h).all()  # rounds back to its level


def test_dequantize_names_data_off_the_levels():
    with pytest.raises(ValueError, match="x must lie on 17 levels"):
        dequantize(torch.tensor([[0.0, 0.05]]), levels=17)
    with pytest.raises(ValueError, match="x must lie on 17 levels"):
        dequantize(torch.tensor([[1.125]]), levels=17)  # a level past the end
    with pytest.raises(ValueError, match="levels"):
        dequantize(torch.tensor([[0.0]]), levels=1)


def test_dequantized_bits_per_dim_bound_the_discrete_nll():
    """Quantise N(0, 0.5^2) to 17 levels in [-1, 1]; P(level) is the normal mass over its bin (CDF, computed here).
    The expected bits/dim of the dequantised data under the continuous density bound -log2 P from above (Jensen),
    and closely: the density varies little over one bin of width 1/8."""
    levels, h, std = 17, 1 / 8, 0.5
    grid = torch.arange(levels, dtype=F64) * h - 1
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=F64), torch.tensor(std, dtype=F64))
    probability = normal.cdf(grid + h / 2) - normal.cdf(grid - h / 2)
    exact_bits = -probability.log2()  # -log2 P(level), one dimension
    x = grid.repeat_interleave(2000)[:, None]
    y = dequantize(x, levels=levels, generator=torch.Generator().manual_seed(15))
    bits = bits_per_dim(normal.log_prob(y[:, 0]), 1, levels=levels).view(levels, -1)
    mean, standard_error = bits.mean(1), bits.std(1) / math.sqrt(bits.shape[1])
    assert (mean > exact_bits - Z * standard_error).all()  # an upper bound ...
    assert (mean - exact_bits).abs().max() < 0.01 + Z * standard_error.max()  # ... a close one: 1/24 (h/std)^2 / ln 2


# ------------------------------------------------------------------------------------------ arguments
def test_bad_arguments_are_named():
    sde = VPSDE()
    score_fn = mixture_score_fn(MIXTURE_2D, sde)
    x = torch.zeros(2, 2, dtype=F64)
    with pytest.raises(TypeError, match="sde"):
        ode_log_likelihood(score_fn, "vp", x)
    with pytest.raises(TypeError, match="score_fn"):
        ode_log_likelihood(None, sde, x)
    with pytest.raises(ValueError, match="rtol"):
        ode_log_likelihood(score_fn, sde, x, rtol=0.0)
    with pytest.raises(ValueError, match="t_min"):
        ode_log_likelihood(score_fn, sde, x, t_min=0.0)
    with pytest.raises(TypeError, match="x"):
        ode_log_likelihood(score_fn, sde, [[0.0, 0.0]])
    with pytest.raises(ValueError, match="times"):
        heun_likelihood(score_fn, sde, x, [0.5, 0.9])  # does not end at 1
    with pytest.raises(ValueError, match="probe"):
        drift_and_divergence(score_fn, sde, x, 0.5, probe=torch.ones(3, 2, dtype=F64))
