"""reverse_kernel.py: the exact q(x_s | x_t) of Gaussian-mixture data. References come from the equations, never from
the code under test: Bayes' rule with the marginals of score.GaussianMixture and the Gaussian jump written here,
self-normalised importance sampling for the moments, DDPM's posterior (forward.q_posterior) for point masses,
Tweedie's formula for E[x0 | x_t], and DDPM's mu_theta through ddpm.p_mean and the exact eps-model."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Normal

from ddpm_scratch.ddpm import p_mean
from ddpm_scratch.forward import q_posterior
from ddpm_scratch.reverse_kernel import (
    gaussian_reverse_step,
    grid_modes,
    kl_monte_carlo,
    moment_matched_gaussian,
    reverse_kernel,
    reverse_kernel_sample,
)
from ddpm_scratch.schedules import NoiseSchedule, respaced
from ddpm_scratch.score import GaussianMixture, mixture_eps_model

F64 = torch.float64
LINEAR = NoiseSchedule.linear()


def eight_gaussians() -> GaussianMixture:
    """machinery.data's eight_gaussians as an exact mixture: 8 equal components, sd 0.1, on a circle of radius 1.41."""
    angle = torch.arange(8, dtype=F64) * math.pi / 4
    return GaussianMixture(torch.ones(8), math.sqrt(2) * torch.stack([angle.cos(), angle.sin()], 1),
                           torch.full((8,), 0.01))


def random_mixture(seed: int, D: int = 2, K: int = 3) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(K, D, D, generator=g, dtype=F64)).Q
    covs = Q @ torch.diag_embed(0.05 + 0.5 * torch.rand(K, D, generator=g, dtype=F64)) @ Q.mT
    return GaussianMixture(torch.rand(K, generator=g, dtype=F64) + 0.2, 1.5 * torch.randn(K, D, generator=g, dtype=F64),
                           covs)


def log_jump(schedule, x_s, x_t, t, s):
    """log q(x_t | x_s) = log N(x_t; sqrt(a) x_s, (1 - a) I), a = abar_t / abar_s (the composed forward steps)."""
    a = (schedule.alpha_bars[t] / schedule.alpha_bars[s]).item()
    return Normal(math.sqrt(a) * x_s, math.sqrt(1 - a)).log_prob(x_t).sum(-1)


def marginal_log_prob(mixture, schedule, x, t):
    abar = schedule.alpha_bars[t].item()
    return mixture.log_prob(x, mean_coef=math.sqrt(abar), std=math.sqrt(1 - abar))


# ---------------------------------------------------------------------------------- Bayes

@given(seed=st.integers(0, 10_000), steps=st.sampled_from([2, 4, 10, 1000]), data=st.data())
def test_the_kernel_is_bayes_rule_pointwise(seed, steps, data):
    """log q(x_s | x_t) = log q(x_s) + log q(x_t | x_s) - log q(x_t) at every point of a grid, for any s < t."""
    schedule = respaced(LINEAR, steps)
    t = data.draw(st.integers(1, steps), label="t")
    s = data.draw(st.integers(0, t - 1), label="s")
    mixture = random_mixture(seed)
    x_t = torch.randn(2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    axis = torch.linspace(-4, 4, 41, dtype=F64)
    grid = torch.cartesian_prod(axis, axis)
    expected = (marginal_log_prob(mixture, schedule, grid, s) + log_jump(schedule, grid, x_t, t, s)
                - marginal_log_prob(mixture, schedule, x_t[None], t))
    kernel = reverse_kernel(mixture, schedule, x_t, t, s)
    torch.testing.assert_close(kernel.log_prob(grid), expected, rtol=0, atol=1e-9)


def test_the_grid_normalised_product_of_prior_and_likelihood_is_the_closed_form():
    """Normalise q(x_s) q(x_t | x_s) on a fine grid (no evidence needed): the same density as the closed form."""
    mixture, schedule = eight_gaussians(), respaced(LINEAR, 4)
    x_t = torch.tensor([0.3, 0.1], dtype=F64)
    axis = torch.linspace(-5, 5, 401, dtype=F64)
    cell = (axis[1] - axis[0]) ** 2
    grid = torch.cartesian_prod(axis, axis)
    for t, s in [(1, 0), (2, 1), (4, 1)]:
        product = (marginal_log_prob(mixture, schedule, grid, s) + log_jump(schedule, grid, x_t, t, s)).exp()
        product = product / (product.sum() * cell)
        closed = reverse_kernel(mixture, schedule, x_t, t, s).log_prob(grid).exp()
        # the Riemann sum of a smooth density whose mass lies inside the grid converges faster than any power of
        # the spacing (here 0.025, a quarter of the narrowest component's sd); the tails beyond +-5 hold < 1e-8
        assert (product - closed).abs().max() < 1e-7 * closed.max(), (t, s)


def test_moments_match_importance_sampling_from_the_prior():
    """E[x_s | x_t] and Cov[x_s | x_t] by self-normalised importance sampling: x_s ~ q(x_s), weights q(x_t | x_s).
    Tolerance: 5 standard errors, sd / sqrt(effective sample size)."""
    mixture, schedule = eight_gaussians(), respaced(LINEAR, 4)
    x_t = torch.tensor([0.4, -0.2], dtype=F64)
    for t, s in [(2, 1), (1, 0), (4, 0)]:
        abar_s = schedule.alpha_bars[s].item()
        prior = mixture.diffuse(math.sqrt(abar_s), math.sqrt(1 - abar_s))
        x_s = prior.sample(400_000, generator=torch.Generator().manual_seed(t * 10 + s))
        w = torch.softmax(log_jump(schedule, x_s, x_t, t, s), dim=0)
        ess = 1 / (w**2).sum()
        mean = w @ x_s
        centred = x_s - mean
        cov = torch.einsum("n,ni,nj->ij", w, centred, centred)
        kernel = reverse_kernel(mixture, schedule, x_t, t, s)
        sd = kernel.covariance().diagonal().sqrt()
        assert ((mean - kernel.mean()).abs() < 5 * sd / ess.sqrt()).all(), (t, s, mean, kernel.mean(), ess)
        # the variance of a sample variance is about 2 var^2 (a little more for a mixture): allow 5 sd of that
        assert ((cov - kernel.covariance()).abs() < 5 * math.sqrt(3) * sd[:, None] * sd[None, :] / ess.sqrt()).all()


# ---------------------------------------------------------------------------------- the known special cases

def test_point_masses_give_ddpm_posteriors_as_components():
    """Sigma_k -> 0, s = t - 1: component k is q(x_{t-1} | x_t, x0 = mu_k) = N(mu_tilde_t, beta_tilde_t I)."""
    means = torch.tensor([[-1.0, 0.5], [1.0, 0.0], [0.0, -1.2]], dtype=F64)
    mixture = GaussianMixture([1, 2, 3], means, torch.full((3,), 1e-12))
    schedule = respaced(LINEAR, 5)
    x_t = torch.tensor([0.2, 0.3], dtype=F64)
    for t in range(2, 6):
        kernel = reverse_kernel(mixture, schedule, x_t, t)
        mean, variance = q_posterior(schedule, x_t.expand(3, 2), t, x0=means)
        torch.testing.assert_close(kernel.means, mean, rtol=0, atol=1e-9)
        torch.testing.assert_close(kernel.covs, variance.item() * torch.eye(2, dtype=F64).expand(3, 2, 2),
                                   rtol=0, atol=1e-9)


def test_the_kernel_to_x0_has_tweedies_mean():
    """s = 0: E[x0 | x_t] = (x_t + (1 - abar_t) grad log q_t(x_t)) / sqrt(abar_t) (Tweedie's formula)."""
    mixture, schedule = random_mixture(3), respaced(LINEAR, 10)
    x_t = torch.tensor([0.5, -0.7], dtype=F64)
    for t in (1, 3, 10):
        abar = schedule.alpha_bars[t].item()
        score = mixture.score(x_t[None], mean_coef=math.sqrt(abar), std=math.sqrt(1 - abar))[0]
        tweedie = (x_t + (1 - abar) * score) / math.sqrt(abar)
        torch.testing.assert_close(reverse_kernel(mixture, schedule, x_t, t, 0).mean(), tweedie, rtol=0, atol=1e-9)


@pytest.mark.parametrize("steps", [4, 1000])
def test_the_gaussian_step_is_ddpms_with_the_exact_eps_and_has_the_true_mean(steps):
    """N(mu_theta, beta_t I) with mu_theta = ddpm.p_mean at the exact eps; its mean is E[x_{t-1} | x_t] (mu_tilde is
    linear in x0), so a Gaussian step with a perfect network only gets the shape wrong."""
    mixture, schedule = eight_gaussians(), respaced(LINEAR, steps)
    eps_model = mixture_eps_model(mixture, schedule)
    x_t = torch.tensor([0.3, 0.1], dtype=F64)
    for t in sorted({1, steps // 2, steps}):
        step = gaussian_reverse_step(mixture, schedule, x_t, t)
        mu = p_mean(schedule, x_t[None], t, eps=eps_model(x_t[None], torch.tensor([t])))
        torch.testing.assert_close(step.means, mu, rtol=0, atol=1e-10)
        torch.testing.assert_close(step.means[0], reverse_kernel(mixture, schedule, x_t, t).mean(), rtol=0, atol=1e-9)
        torch.testing.assert_close(step.covs[0], schedule.betas[t] * torch.eye(2, dtype=F64))
        posterior = gaussian_reverse_step(mixture, schedule, x_t, t, variance="posterior")
        beta_tilde = schedule.reverse_variances("posterior")[t]
        torch.testing.assert_close(posterior.covs[0], beta_tilde * torch.eye(2, dtype=F64))


# ---------------------------------------------------------------------------------- small steps vs big steps

def test_one_small_step_is_one_nearly_gaussian_bump_and_a_big_step_has_a_mode_per_cluster():
    """x_t between the clusters: T = 1000, one step: one mode and KL(q || DDPM's Gaussian step) ~ 0; the last jump of
    a 4-step sampler (alpha_bar 0.52 -> 1): the 8 clusters as 8 modes, more than 2 nats from any Gaussian."""
    mixture = eight_gaussians()
    x_t = torch.tensor([0.3, 0.1], dtype=F64)
    g = torch.Generator().manual_seed(0)
    for t in (100, 500):
        small = reverse_kernel(mixture, LINEAR, x_t, t)
        assert len(grid_modes(small, -3, 3, 151)) == 1
        kl, se = kl_monte_carlo(small, gaussian_reverse_step(mixture, LINEAR, x_t, t), 20_000, g)
        assert abs(kl) < 1e-3 + 5 * se, (t, kl, se)
    big = reverse_kernel(mixture, respaced(LINEAR, 4), x_t, 1)
    modes = grid_modes(big, -3, 3, 151)
    assert len(modes) == 8
    assert torch.allclose(modes.norm(dim=1), torch.full((8,), math.sqrt(2), dtype=F64), atol=0.1)  # on the clusters
    kl, se = kl_monte_carlo(big, moment_matched_gaussian(big), 20_000, g)
    assert kl - 5 * se > 2.0


def test_the_distance_to_the_best_gaussian_grows_with_the_jump():
    """KL(q(x0 | x_t) || its moment-matched Gaussian) for jumps of 1, 10, 50, 250 training steps: increasing."""
    mixture, x_t = eight_gaussians(), torch.tensor([0.3, 0.1], dtype=F64)
    estimates = [kl_monte_carlo((k := reverse_kernel(mixture, LINEAR, x_t, t, 0)), moment_matched_gaussian(k), 20_000,
                                torch.Generator().manual_seed(t)) for t in (1, 10, 50, 250)]
    for (kl_a, se_a), (kl_b, se_b) in zip(estimates, estimates[1:], strict=False):
        assert kl_b - kl_a > 5 * math.hypot(se_a, se_b), estimates


# ---------------------------------------------------------------------------------- sampling

def test_samples_have_the_kernels_moments_row_by_row():
    mixture, schedule = eight_gaussians(), respaced(LINEAR, 4)
    rows = torch.tensor([[0.3, 0.1], [-1.0, 0.5]], dtype=F64)
    n = 40_000
    x_t = rows.repeat_interleave(n, dim=0)
    x = reverse_kernel_sample(mixture, schedule, x_t, 2, generator=torch.Generator().manual_seed(1))
    for i, row in enumerate(rows):
        kernel = reverse_kernel(mixture, schedule, row, 2)
        chunk = x[i * n:(i + 1) * n]
        sd = kernel.covariance().diagonal().sqrt()
        assert ((chunk.mean(0) - kernel.mean()).abs() < 5 * sd / math.sqrt(n)).all()
        tolerance = 5 * math.sqrt(3) * sd[:, None] * sd[None] / math.sqrt(n)  # sd of a sample covariance <~ sqrt 3
        assert ((chunk.T.cov() - kernel.covariance()).abs() < tolerance).all()


def test_two_exact_reverse_steps_return_the_data_law():
    """x_4 ~ q(x_4) (the data pushed forward exactly), then the exact kernels 4 -> 2 -> 0: x_0 ~ p(x0). Mean and
    covariance of 200k draws within 5 standard errors of the mixture's."""
    mixture, schedule = eight_gaussians(), respaced(LINEAR, 4)
    g = torch.Generator().manual_seed(2)
    n = 200_000
    abar_T = schedule.alpha_bars[4].item()
    x = math.sqrt(abar_T) * mixture.sample(n, generator=g) + math.sqrt(1 - abar_T) * torch.randn(n, 2, generator=g,
                                                                                                  dtype=F64)
    x = reverse_kernel_sample(mixture, schedule, x, 4, 2, generator=g)
    x = reverse_kernel_sample(mixture, schedule, x, 2, 0, generator=g)
    sd = mixture.covariance().diagonal().sqrt()
    assert ((x.mean(0) - mixture.mean()).abs() < 5 * sd / math.sqrt(n)).all()
    # the radius of the data is sqrt(2) +- 0.1: a wrong kernel (e.g. one Gaussian) would blur it
    radius, true_radius = x.norm(dim=1).mean().item(), mixture.sample(n, generator=g).norm(dim=1).mean().item()
    assert abs(radius - true_radius) < 5 * 0.1 * math.sqrt(2 / n)


# ---------------------------------------------------------------------------------- the helpers

def test_kl_monte_carlo_matches_the_gaussian_closed_form():
    """KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2 per coordinate."""
    p = GaussianMixture([1.0], [[0.0, 1.0]], [[0.5, 2.0]])
    q = GaussianMixture([1.0], [[1.0, 0.0]], [[1.0, 1.0]])
    exact = sum(math.log(math.sqrt(s2 / s1)) + (s1 + (m1 - m2) ** 2) / (2 * s2) - 0.5
                for m1, m2, s1, s2 in [(0.0, 1.0, 0.5, 1.0), (1.0, 0.0, 2.0, 1.0)])
    kl, se = kl_monte_carlo(p, q, 50_000, torch.Generator().manual_seed(0))
    assert abs(kl - exact) < 5 * se


def test_grid_modes_finds_separated_modes_and_ignores_the_border():
    two = GaussianMixture([1, 1], [[-2.0], [2.0]], [0.1, 0.1])
    torch.testing.assert_close(grid_modes(two, -4, 4, 161), torch.tensor([[-2.0], [2.0]], dtype=F64))
    merged = GaussianMixture([1, 1], [[-0.5], [0.5]], [1.0, 1.0])  # separation < 2 sd: one bump
    assert len(grid_modes(merged, -4, 4, 161)) == 1
    assert len(grid_modes(GaussianMixture([1], [[5.0, 0.0]], [1.0]), -3, 3, 61)) == 0  # the peak is outside


def test_bad_arguments_are_named():
    mixture, schedule, x_t = eight_gaussians(), respaced(LINEAR, 4), torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match="t must lie in 1..T=4"):
        reverse_kernel(mixture, schedule, x_t, 5)
    with pytest.raises(ValueError, match="s must lie in 0..t-1"):
        reverse_kernel(mixture, schedule, x_t, 2, 2)
    with pytest.raises(ValueError, match="x_t must be one point"):
        reverse_kernel(mixture, schedule, torch.zeros(3, 2), 2)
    with pytest.raises(ValueError, match="x_t must have shape"):
        reverse_kernel_sample(mixture, schedule, torch.zeros(3, 3), 2)
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture"):
        reverse_kernel(object(), schedule, x_t, 2)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        reverse_kernel(mixture, object(), x_t, 2)
    with pytest.raises(ValueError, match="grid_modes needs a 1-D or 2-D mixture"):
        grid_modes(GaussianMixture([1], [[0.0, 0.0, 0.0]], [1.0]), -1, 1)
