"""score.py: the Gaussian mixture's exact log-density, score, samples and diffusion; the perfect eps- and
score-models built from it; denoising score matching. References are independent of the code under test:
torch.distributions for densities, autograd for scores, quadrature on a grid for posterior means, closed forms
for Gaussian data, Monte Carlo with standard errors for everything stochastic."""

import math
import statistics

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture, dsm_loss, mixture_eps_model, mixture_score_fn

F64 = torch.float64


def random_mixture(K, D, kind, seed, scale=1.0):
    """(weights, means, covs as given to the class, full covariances) with eigenvalues in scale * [0.2, 2]
    (condition number <= 10), means ~ N(0, 4 scale I)."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=g, dtype=F64) + 0.2
    means = 2 * math.sqrt(scale) * torch.randn(K, D, generator=g, dtype=F64)
    if kind == "full":
        Q = torch.linalg.qr(torch.randn(K, D, D, generator=g, dtype=F64)).Q
        lam = scale * (0.2 + 1.8 * torch.rand(K, D, generator=g, dtype=F64))
        covs = Q @ torch.diag_embed(lam) @ Q.mT
        full = covs
    elif kind == "diag":
        covs = scale * (0.2 + 1.8 * torch.rand(K, D, generator=g, dtype=F64))
        full = torch.diag_embed(covs)
    else:
        covs = scale * (0.2 + 1.8 * torch.rand(K, generator=g, dtype=F64))
        full = covs[:, None, None] * torch.eye(D, dtype=F64)
    return weights, means, covs, full


def reference(weights, means, covs, kind):
    """torch.distributions' mixture: MultivariateNormal components for full covariances, independent Normals for
    diagonal and isotropic ones (so the reference shares no code path with the class)."""
    if kind == "full":
        components = MultivariateNormal(means, covariance_matrix=covs)
    else:
        std = covs.sqrt() if kind == "diag" else covs.sqrt()[:, None].expand_as(means)
        components = Independent(Normal(means, std), 1)
    return MixtureSameFamily(Categorical(probs=weights / weights.sum()), components)


def grad_of(log_density, x):
    """grad_x sum_n log_density(x)_n by autograd: the score of each row."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_density(x).sum(), x)
    return grad


# A 2-D mixture with correlated, unequal components: the data of the sampler and DSM tests.
MIX2 = GaussianMixture([0.5, 0.3, 0.2], [[-1.5, 0.0], [1.5, 0.5], [0.0, -1.5]],
                       [[[0.10, 0.05], [0.05, 0.08]], [[0.05, -0.02], [-0.02, 0.12]], [[0.20, 0.0], [0.0, 0.03]]])


class VPStandIn:
    """The VP SDE's marginal and diffusion written out (Song et al. 2021, eq. 11 and 33; beta_0 = 0.1, beta_1 = 20)."""

    b0, b1 = 0.1, 20.0

    def marginal(self, t):
        m = torch.exp(-t**2 * (self.b1 - self.b0) / 4 - t * self.b0 / 2)
        return m, (1 - m**2).sqrt()

    def diffusion(self, t):
        return (self.b0 + t * (self.b1 - self.b0)).sqrt()


class VEStandIn:
    """The VE SDE's marginal: mean_coef 1, std sigma(t) = sigma_min (sigma_max / sigma_min)^t (eq. 9 and 31)."""

    smin, smax = 0.01, 50.0

    def marginal(self, t):
        return torch.ones_like(t), self.smin * (self.smax / self.smin) ** t

    def diffusion(self, t):
        return self.smin * (self.smax / self.smin) ** t * math.sqrt(2 * math.log(self.smax / self.smin))


class MarginalOnly:
    """An SDE stand-in without diffusion(t): enough for the sigma2 weighting, not for the likelihood one."""

    marginal = VPStandIn.marginal
    b0, b1 = VPStandIn.b0, VPStandIn.b1


# ---------------------------------------------------------------------------------- log_prob and score

@given(K=st.sampled_from([1, 3]), D=st.sampled_from([1, 2, 5]), kind=st.sampled_from(["full", "diag", "iso"]),
       seed=st.integers(0, 10_000), scale=st.sampled_from([1e-2, 1.0, 1e2]))
def test_log_prob_and_score_match_torch_distributions(K, D, kind, seed, scale):
    """At draws of the mixture and at points 30 standard deviations out in the tails. Both sides are float64 with
    covariances of condition number <= 10, so they differ by round-off: a relative 1e-14 or so of the terms
    (Mahalanobis distance up to ~1e4 in the tails, log det); 1e-9 leaves a margin of 1e4 and still catches any
    missing term (log 2 pi, a log det, a factor 1/2 of size >= 1e-2 relative)."""
    weights, means, covs, full = random_mixture(K, D, kind, seed, scale)
    mix, ref = GaussianMixture(weights, means, covs), reference(weights, means, covs, kind)
    g = torch.Generator().manual_seed(seed + 1)
    direction = torch.randn(4, D, generator=g, dtype=F64)
    tails = means[0] + 30 * math.sqrt(2 * scale) * direction / direction.norm(dim=1, keepdim=True)
    x = torch.cat([mix.sample(64, generator=g), tails])
    expected = ref.log_prob(x)
    assert torch.allclose(mix.log_prob(x), expected, rtol=1e-9, atol=1e-9)
    score, expected_score = mix.score(x), grad_of(ref.log_prob, x)
    size = expected_score.abs().max(dim=1, keepdim=True).values + 1 / math.sqrt(scale)
    assert ((score - expected_score).abs() <= 1e-9 * size).all()
    assert torch.allclose(mix.covs, full, rtol=0, atol=1e-12 * scale)


def test_score_is_the_gradient_of_log_prob_far_in_the_tails():
    """1e3 standard deviations from every mean p(x) underflows (log p ~ -1e6) but its log and gradient do not:
    logsumexp and softmax keep the dominant component. Autograd of the class's own log_prob is the reference;
    the values are ~1e3 and ~1e6, float64 round-off a relative 1e-16 times the ~1e6 terms that cancel: 1e-8."""
    weights, means, covs, _ = random_mixture(3, 5, "full", 0)
    mix = GaussianMixture(weights, means, covs)
    x = means[1] + 1e3 * torch.tensor([[1.0, 0, 0, 0, 0], [0, -1.0, 1.0, 0, 0]], dtype=F64)
    assert torch.isfinite(mix.log_prob(x)).all() and (mix.log_prob(x) < -1e4).all()
    assert torch.allclose(mix.score(x), grad_of(mix.log_prob, x), rtol=1e-8, atol=0)
    assert torch.allclose(mix.log_prob(x), reference(weights, means, covs, "full").log_prob(x), rtol=1e-10)


def test_float32_input_is_computed_in_float64_and_returned_in_float32():
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    for method in (MIX2.log_prob, MIX2.score):
        out = method(x)
        assert out.dtype == torch.float32
        assert torch.equal(out, method(x.double()).float())


# ---------------------------------------------------------------------------------- moments and sampling

def test_mean_and_covariance_match_torch_distributions():
    """torch's mixture gives the mean and the per-coordinate variance (law of total variance on the diagonal)."""
    weights, means, covs, _ = random_mixture(3, 4, "full", 7)
    mix, ref = GaussianMixture(weights, means, covs), reference(weights, means, covs, "full")
    assert torch.allclose(mix.mean(), ref.mean, atol=1e-12)
    assert torch.allclose(mix.covariance().diagonal(), ref.variance, atol=1e-12)
    assert torch.allclose(mix.covariance(), mix.covariance().T, atol=0)


def assert_moments(x, mean, cov):
    """Sample mean within 5 standard errors sqrt(cov_ii / n); the covariance estimate mean((x - mean)(x - mean)^T),
    around the known mean, within 5 standard errors std((x_i - m_i)(x_j - m_j)) / sqrt(n), estimated from x
    (no Gaussian formula: a mixture has its own fourth moments)."""
    n = len(x)
    assert ((x.mean(0) - mean).abs() < 5 * (cov.diagonal() / n).sqrt()).all(), (x.mean(0), mean)
    products = (x - mean)[:, :, None] * (x - mean)[:, None, :]
    se = products.std(dim=0) / math.sqrt(n)
    assert ((products.mean(0) - cov).abs() < 5 * se).all(), (products.mean(0), cov)


def test_sample_has_the_mixture_moments():
    weights, means, covs, _ = random_mixture(3, 3, "full", 3)
    mix = GaussianMixture(weights, means, covs)
    x = mix.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 3) and x.dtype == F64
    assert_moments(x, mix.mean(), mix.covariance())
    a, b = (mix.sample(5, generator=torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(a, b)


def test_sample_draws_components_by_their_weights_and_covariances():
    """Components 20 apart with standard deviations <= sqrt(2): the nearest mean names the component (a point is
    misclassified with probability < 1e-11, beyond 7 standard deviations). Each count is Binomial(n, pi_k): within 5
    standard deviations sqrt(n pi_k (1 - pi_k)); the points of each component have its mean and full covariance
    (a sampler that multiplied eps by L^T instead of L would have covariance L^T L != Sigma_k)."""
    weights = torch.tensor([0.1, 0.6, 0.3], dtype=F64)
    means = torch.tensor([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 0.0]], dtype=F64)
    _, _, covs, _ = random_mixture(3, 3, "full", 8)
    mix, n = GaussianMixture(weights, means, covs), 20_000
    x = mix.sample(n, generator=torch.Generator().manual_seed(2))
    component = torch.cdist(x, means).argmin(dim=1)
    counts = torch.bincount(component, minlength=3).to(F64)
    assert ((counts - n * weights).abs() < 5 * (n * weights * (1 - weights)).sqrt()).all(), counts
    for k in range(3):
        assert_moments(x[component == k], means[k], covs[k])


def test_weights_are_normalised():
    mix = GaussianMixture([1.0, 1.0, 2.0], [[0.0], [1.0], [2.0]], [1.0, 1.0, 1.0])
    assert torch.allclose(mix.weights, torch.tensor([0.25, 0.25, 0.5], dtype=F64))


# ---------------------------------------------------------------------------------- diffuse

def test_diffuse_by_one_and_zero_is_the_same_mixture():
    weights, means, covs, _ = random_mixture(3, 4, "full", 5)
    mix = GaussianMixture(weights, means, covs)
    same = mix.diffuse(1.0, 0.0)
    x = mix.sample(50, generator=torch.Generator().manual_seed(0))
    for name in ("weights", "means", "covs"):
        assert torch.equal(getattr(same, name), getattr(mix, name)), name
    assert torch.allclose(same.log_prob(x), mix.log_prob(x), rtol=1e-13, atol=1e-13)


def test_diffuse_is_the_law_of_x_t_in_3d():
    """Monte Carlo x_t = a x0 + s eps from the mixture's own samples has the diffused mixture's moments."""
    weights, means, covs, _ = random_mixture(3, 3, "full", 11)
    mix, a, s, n = GaussianMixture(weights, means, covs), 0.6, 0.8, 20_000
    g = torch.Generator().manual_seed(0)
    x_t = a * mix.sample(n, generator=g) + s * torch.randn(n, 3, generator=g, dtype=F64)
    diffused = mix.diffuse(a, s)
    assert_moments(x_t, diffused.mean(), diffused.covariance())


def test_diffuse_is_the_law_of_x_t_by_its_density_in_1d():
    """The moments the diffused log_prob implies (quadrature of x^k exp(log_prob) on a grid 1e-3 wide over
    +-12, where the tails beyond weigh < 1e-30 and the rule's error on these smooth densities is below float64
    round-off) match Monte Carlo within 5 standard errors, and the density integrates to 1."""
    mix = GaussianMixture([0.3, 0.7], [[-1.0], [1.5]], [0.2, 0.5])
    a, s, n = 0.8, 0.6, 40_000
    g = torch.Generator().manual_seed(4)
    x_t = a * mix.sample(n, generator=g) + s * torch.randn(n, 1, generator=g, dtype=F64)
    grid = torch.arange(-12, 12, 1e-3, dtype=F64)[:, None]
    density = mix.diffuse(a, s).log_prob(grid).exp() * 1e-3
    assert density.sum().item() == pytest.approx(1.0, abs=1e-10)
    mean, second = (density * grid[:, 0]).sum(), (density * grid[:, 0] ** 2).sum()
    var = second - mean**2
    assert abs(x_t.mean() - mean) < 5 * math.sqrt(var / n)
    fourth = (density * (grid[:, 0] - mean) ** 4).sum()
    assert abs(((x_t - mean) ** 2).mean() - var) < 5 * math.sqrt((fourth - var**2) / n)


@given(a=st.just(0.0) | st.floats(0.05, 2.0), s=st.just(0.0) | st.floats(0.05, 3.0), seed=st.integers(0, 1000))
def test_diffused_score_is_the_gradient_of_the_diffused_log_prob(a, s, seed):
    """For a fixed (a, s) and per row: score(x, mean_coef=, std=) equals autograd of the same log_prob, and equals
    diffuse(a, s).score row by row (the per-row path builds no mixture). Round-off as above: 1e-9 relative."""
    if a == 0 and s == 0:
        s = 1.0
    weights, means, covs, _ = random_mixture(3, 3, "full", seed)
    mix = GaussianMixture(weights, means, covs)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(6, 3, generator=g, dtype=F64)
    score = mix.score(x, mean_coef=a, std=s)
    size = score.abs().max() + 1
    assert torch.allclose(score, grad_of(lambda y: mix.log_prob(y, mean_coef=a, std=s), x), rtol=0, atol=1e-9 * size)
    if a > 0 or s > 0.3:  # diffuse builds a mixture, whose covariances must be well away from singular
        assert torch.allclose(score, mix.diffuse(a, s).score(x), rtol=0, atol=1e-9 * size)
    rows_a = torch.rand(6, generator=g, dtype=F64) * 2
    rows_s = 0.1 + torch.rand(6, generator=g, dtype=F64) * 3
    per_row = mix.score(x, mean_coef=rows_a, std=rows_s)
    log_prob_rows = mix.log_prob(x, mean_coef=rows_a, std=rows_s)
    for i in range(6):
        one = mix.diffuse(rows_a[i].item(), rows_s[i].item())
        assert torch.allclose(per_row[i], one.score(x[i:i + 1])[0], rtol=0, atol=1e-9 * (per_row[i].abs().max() + 1))
        assert log_prob_rows[i].item() == pytest.approx(one.log_prob(x[i:i + 1]).item(), rel=1e-10)


def test_pure_noise_has_the_gaussian_score():
    """mean_coef = 0: x_t = s eps, whose score is -x / s^2 whatever the data."""
    x = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.allclose(MIX2.score(x, mean_coef=0.0, std=1.5), -x / 1.5**2, rtol=1e-12, atol=0)


def test_64_dimensions_with_8_components():
    """The brief's size: 20,000 points in 64-D with K = 8 full covariances (timed in the report, not here: a
    timing assertion fails on a loaded machine). Checked against torch.distributions on a subset."""
    weights, means, covs, _ = random_mixture(8, 64, "full", 1)
    mix = GaussianMixture(weights, means, covs)
    x = mix.sample(20_000, generator=torch.Generator().manual_seed(0))
    log_prob, score = mix.log_prob(x), mix.score(x)
    assert log_prob.shape == (20_000,) and score.shape == (20_000, 64)
    ref = reference(weights, means, covs, "full")
    assert torch.allclose(log_prob[:500], ref.log_prob(x[:500]), rtol=1e-9, atol=1e-9)
    expected = grad_of(ref.log_prob, x[:500])
    assert torch.allclose(score[:500], expected, rtol=0, atol=1e-9 * (expected.abs().max() + 1))


# ---------------------------------------------------------------------------------- the perfect eps-model

def test_mixture_eps_model_is_the_posterior_mean_of_eps():
    """E[eps | x_t] = integral of eps(x_t, x0) p(x0 | x_t) dx0 with eps(x_t, x0) = (x_t - sqrt(ab) x0) / sqrt(1 - ab)
    and p(x0 | x_t) proportional to p(x0) N(x_t; sqrt(ab) x0, 1 - ab), summed on a grid of x0 1e-3 wide over
    [-10, 10] (no score formula involved). At t = 1 the posterior's width is 0.01, ten grid steps: the sum's
    error is then far below float64 round-off (1e-14 measured, up to 100 times that after dividing by sqrt(1 - ab)
    at t = 1); 1e-10 leaves room and still sees a float32 rounding anywhere (1e-7)."""
    weights, means, variances = [0.3, 0.7], [-1.0, 1.5], [0.2, 0.5]
    mix, s = GaussianMixture(weights, [[m] for m in means], variances), NoiseSchedule.linear()
    model = mixture_eps_model(mix, s)
    x0 = torch.arange(-10, 10, 1e-3, dtype=F64)
    prior = Normal(torch.tensor(means, dtype=F64), torch.tensor(variances, dtype=F64).sqrt())  # float64 parameters
    log_prior = torch.logsumexp(torch.tensor(weights, dtype=F64).log() + prior.log_prob(x0[:, None]), dim=1)
    x_t = torch.linspace(-3, 3, 31, dtype=F64)
    for step in (1, 2, 50, 300, 1000):
        ab = s.alpha_bars[step]
        log_post = log_prior[None, :] + Normal(ab.sqrt() * x0[None, :], (1 - ab).sqrt()).log_prob(x_t[:, None])
        post = torch.softmax(log_post, dim=1)
        expected = (post * (x_t[:, None] - ab.sqrt() * x0[None, :]) / (1 - ab).sqrt()).sum(dim=1)
        got = model(x_t[:, None], torch.full((31,), step))[:, 0]
        assert torch.allclose(got, expected, rtol=0, atol=1e-10), (step, (got - expected).abs().max())


def test_mixture_eps_model_rows_at_different_steps_and_shapes():
    """A batch with a different t per row equals the rows done one step at a time; image-shaped x_t (B, 1, 2, 2)
    flattens to D = 4 and keeps its shape and dtype (float32: the float64 result rounded)."""
    weights, means, covs, _ = random_mixture(3, 4, "full", 2)
    mix, s = GaussianMixture(weights, means, covs), NoiseSchedule.linear()
    model = mixture_eps_model(mix, s)
    g = torch.Generator().manual_seed(0)
    x_t, t = torch.randn(12, 4, generator=g, dtype=F64), torch.randint(1, 1001, (12,), generator=g)
    rows = torch.cat([model(x_t[i:i + 1], t[i:i + 1]) for i in range(12)])
    assert torch.allclose(model(x_t, t), rows, rtol=0, atol=1e-12)
    image = model(x_t.float().reshape(12, 1, 2, 2), t)
    assert image.shape == (12, 1, 2, 2) and image.dtype == torch.float32
    assert torch.allclose(image.reshape(12, 4).double(), model(x_t.float().double(), t), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="x_t must flatten to D = 4"):
        model(torch.randn(3, 5), torch.ones(3, dtype=torch.long))


def test_ddpm_with_the_exact_eps_returns_the_mixture():
    """All T = 1000 steps of DDPM's schedule through sampling.sample, float32 as a user runs it. The statistic is
    the mean of sliced W2 over 16 chunks of 1,000 samples, each against 1,000 fresh true samples; the floor is the
    same mean for 48 pairs of fresh true sets. Sliced W2 of Gaussian-tailed clouds is noisy (one pair: a relative
    standard deviation of ~40%, driven by the extreme points), hence the averages: measured over 40 seeds, the
    16-chunk mean has a relative standard deviation of 10%, so the 48-pair floor has sqrt(16/48) of that, 6%; for
    a perfect sampler the ratio is 1 +- 0.12 and 1.5 lies more than 3 standard deviations above it. The test
    checks that margin with the floor's own spread, and that a mixture with means shifted by 0.3 is rejected.
    Measured: floor 0.108, the sampler 0.104 (ratio 0.97), the shifted mixture 0.33 (ratio 3.1)."""
    s, chunks, n = NoiseSchedule.linear(), 16, 1000
    x = sample(mixture_eps_model(MIX2, s), s, (chunks * n, 2), generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32

    def fresh(seed, mixture=MIX2):
        return mixture.sample(n, generator=torch.Generator().manual_seed(seed))

    floors = [sliced_wasserstein(fresh(1000 + 2 * i), fresh(1001 + 2 * i)) for i in range(48)]
    floor = statistics.mean(floors)
    se_difference = statistics.stdev(floors) * math.sqrt(1 / chunks + 1 / 48)
    assert 0.5 * floor > 3 * se_difference  # the 1.5x margin is > 3 standard errors of (statistic - floor)
    statistic = statistics.mean(sliced_wasserstein(chunk.double(), fresh(5000 + i))
                                for i, chunk in enumerate(x.split(n)))
    assert statistic <= 1.5 * floor, (statistic, floor)
    shifted = GaussianMixture(MIX2.weights, MIX2.means + 0.3, MIX2.covs)
    wrong = statistics.mean(sliced_wasserstein(fresh(7000 + i, shifted), fresh(5000 + i)) for i in range(chunks))
    assert wrong > 1.5 * floor, (wrong, floor)


# ---------------------------------------------------------------------------------- the perfect score-model

@pytest.mark.parametrize("sde", [VPStandIn(), VEStandIn()], ids=["VP", "VE"])
def test_mixture_score_fn_is_the_score_of_the_sde_marginal(sde):
    """score_fn(x, t) = score of the mixture diffused by sde.marginal(t); a float t, a (B,) t with a different time
    per row, and image-shaped x all agree with diffuse(m(t), s(t)).score row by row."""
    score_fn = mixture_score_fn(MIX2, sde)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g, dtype=F64)
    t = torch.rand(8, generator=g, dtype=F64)
    m, s = sde.marginal(torch.tensor(0.3, dtype=F64))
    assert torch.allclose(score_fn(x, 0.3), MIX2.diffuse(m.item(), s.item()).score(x), rtol=1e-10, atol=1e-12)
    per_row = score_fn(x, t)
    for i in range(8):
        m, s = sde.marginal(t[i])
        expected = MIX2.diffuse(m.item(), s.item()).score(x[i:i + 1])[0]
        assert torch.allclose(per_row[i], expected, rtol=1e-10, atol=1e-12)
    image = score_fn(x.float().reshape(8, 1, 2, 1), t.float())
    assert image.shape == (8, 1, 2, 1) and image.dtype == torch.float32
    assert torch.allclose(image.reshape(8, 2).double(), per_row, rtol=1e-5, atol=1e-5)


def test_exact_score_and_eps_are_related_by_the_noise_std():
    """Lecture: eps = -sigma_t score. The discrete model at step i and the score of the mixture diffused with
    (sqrt(ab_i), sqrt(1 - ab_i)) obey it exactly."""
    s, step = NoiseSchedule.cosine(T=100), torch.tensor([37, 37, 37])
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    ab = s.alpha_bars[37].item()
    eps = mixture_eps_model(MIX2, s)(x, step)
    score = MIX2.diffuse(math.sqrt(ab), math.sqrt(1 - ab)).score(x)
    assert torch.allclose(eps, -math.sqrt(1 - ab) * score, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------- denoising score matching

@pytest.mark.parametrize("sde", [VPStandIn(), VEStandIn()], ids=["VP", "VE"])
def test_dsm_loss_of_the_true_score_is_the_irreducible_constant(sde):
    """Data N(mu, I): q_t = N(m mu, (m^2 + s^2) I) and the exact score is -(x_t - m mu) / (m^2 + s^2). With
    x_t = m x0 + s eps, z = x0 - mu: s score + eps = (m^2 eps - m s z) / (m^2 + s^2) ~ N(0, m^2 / (m^2 + s^2) I).
    So per example ||s score + eps||^2 / D = c chi^2_D / D with c = m^2 / (m^2 + s^2): the sigma2 loss has mean c
    and standard error c sqrt(2 / (D n)); the likelihood loss is g^2 / s^2 times it. This constant is the floor
    that no score model goes below (the variance of the DSM target given x_t)."""
    D, n = 3, 20_000
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    gaussian = GaussianMixture([1.0], mu[None], [1.0])
    score_fn = mixture_score_fn(gaussian, sde)
    for t in (0.05, 0.5, 0.9):
        g = torch.Generator().manual_seed(int(100 * t))
        x0 = mu + torch.randn(n, D, generator=g, dtype=F64)
        m, s = (c.item() for c in sde.marginal(torch.tensor(t, dtype=F64)))
        c = m**2 / (m**2 + s**2)
        se = c * math.sqrt(2 / (D * n))
        loss = dsm_loss(score_fn, sde, x0, t=t, generator=g).item()
        assert abs(loss - c) < 5 * se, (t, loss, c)
        g2 = sde.diffusion(torch.tensor(t, dtype=F64)).item() ** 2
        loss = dsm_loss(score_fn, sde, x0, t=t, generator=g, weighting="likelihood").item()
        assert abs(loss - g2 / s**2 * c) < 5 * g2 / s**2 * se, (t, loss, g2 / s**2 * c)


@pytest.mark.parametrize("weighting", ["sigma2", "likelihood"])
def test_dsm_loss_is_minimised_by_the_true_score(weighting):
    """With the same draws (t, eps), for any perturbation delta(x_t, t):
        loss(score + delta) - loss(score) = mean lambda ||delta||^2 / D + 2 mean lambda delta . (score - target) / D
    with target = -eps / s. The last term has expectation 0 exactly when score = E[target | x_t], the true score;
    it is a mean of n independent terms, so it must lie within 5 of its standard errors (estimated from the same
    terms) of 0. The perturbations: a constant, 10% of the score, and the undiffused data's score (the mistake of
    ignoring t). The likelihood weighting uses t_min = 0.01: its per-example variance grows like 1/s^2 as t -> 0."""
    sde, n, D = VPStandIn(), 40_000, 2
    g = torch.Generator().manual_seed(3)
    x0 = MIX2.sample(n, generator=g)
    t_min = 1e-5 if weighting == "sigma2" else 0.01
    t = t_min + (1 - t_min) * torch.rand(n, generator=g, dtype=F64)
    eps = torch.randn(n, D, generator=g, dtype=F64)
    true_score = mixture_score_fn(MIX2, sde)
    m, s = sde.marginal(t)
    x_t = m[:, None] * x0 + s[:, None] * eps
    lam = s**2 if weighting == "sigma2" else sde.diffusion(t) ** 2
    base = dsm_loss(true_score, sde, x0, t=t, noise=eps, weighting=weighting, t_min=t_min).item()
    perturbations = {
        "constant": lambda x, t: torch.tensor([0.3, -0.2], dtype=F64).expand_as(x),
        "relative": lambda x, t: 0.1 * true_score(x, t),
        "undiffused": lambda x, t: MIX2.score(x) - true_score(x, t),
    }
    for name, delta in perturbations.items():
        d = delta(x_t, t)
        perturbed = dsm_loss(lambda x, t, d=delta: true_score(x, t) + d(x, t), sde, x0, t=t, noise=eps,
                             weighting=weighting, t_min=t_min).item()
        cross = 2 * lam * (d * (true_score(x_t, t) + eps / s[:, None])).sum(1) / D
        excess = (lam * d.pow(2).sum(1) / D).mean().item()
        assert abs(perturbed - base - excess) < 5 * cross.std().item() / math.sqrt(n), name
        assert perturbed - base > 5 * cross.std().item() / math.sqrt(n), name  # the true score is strictly better


def test_dsm_loss_draws_t_uniformly_and_matches_its_formula():
    """t ~ U(t_min, 1) from the generator, then eps: the loss equals the formula on the same draws."""
    sde, x0 = VPStandIn(), MIX2.sample(64, generator=torch.Generator().manual_seed(0))
    model = lambda x, t: -x * (1 + t[:, None])  # noqa: E731
    g = torch.Generator().manual_seed(1)
    t = 0.2 + 0.8 * torch.rand(64, generator=g, dtype=F64)
    eps = torch.randn(64, 2, generator=g, dtype=F64)
    m, s = sde.marginal(t)
    x_t = m[:, None] * x0 + s[:, None] * eps
    expected = (s[:, None] * model(x_t, t) + eps).pow(2).mean()
    got = dsm_loss(model, sde, x0, t_min=0.2, generator=torch.Generator().manual_seed(1))
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)
    expected_likelihood = (sde.diffusion(t)[:, None] ** 2 * (model(x_t, t) + eps / s[:, None]).pow(2)).mean()
    got = dsm_loss(model, sde, x0, t_min=0.2, generator=torch.Generator().manual_seed(1), weighting="likelihood")
    assert got.item() == pytest.approx(expected_likelihood.item(), rel=1e-12)
    w = torch.zeros(1, requires_grad=True)
    dsm_loss(lambda x, t: w * x, sde, x0.float(), generator=g).backward()
    assert w.grad is not None and w.grad.abs().item() > 0


def test_dsm_trains_a_small_network_towards_the_true_score():
    """An MLP eps-network (score = -eps_theta / s, as score_sde's VP models) trained with dsm_loss on a 1-D mixture
    must learn the part of the score that no affine function has. The benchmark: by Stein's identity
    (E_q[score] = 0, E_q[score x^T] = -I) the best affine fit to the score in L2(q_t) is -Sigma_t^{-1} (x - mu_t),
    the Gaussian with q_t's mean and variance; at t = 0.3 the mixture is still bimodal and that fit is poor. The
    network's error s^2 E (s_theta - score)^2 must be below a quarter of the affine one; measured over 6 seeds
    (500 Adam steps of 1,024 examples, learning rate decayed to 0) it is 0.006-0.06 of it."""
    from ddpm_scratch.nets.mlp import MLPEps

    mix, sde, steps = GaussianMixture([0.3, 0.7], [[-1.0], [1.5]], [0.05, 0.1]), VPStandIn(), 500
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = MLPEps(dim=1, hidden=64, depth=2)

    def score_model(x, t):
        return -net(x, t) / sde.marginal(t)[1][:, None]

    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = dsm_loss(score_model, sde, mix.sample(1024, generator=g).float(), t_min=1e-3, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    m, s = (c.item() for c in sde.marginal(torch.tensor(0.3, dtype=F64)))
    q_t = mix.diffuse(m, s)
    x = q_t.sample(4000, generator=g)
    true = q_t.score(x)
    affine = -(x - q_t.mean()) / q_t.covariance()[0, 0]
    with torch.no_grad():
        learned = score_model(x.float(), torch.full((4000,), 0.3)).double()
    error, affine_error = (s**2 * (learned - true).pow(2)).mean(), (s**2 * (affine - true).pow(2)).mean()
    assert error < 0.25 * affine_error, (error, affine_error)


# ---------------------------------------------------------------------------------- bad inputs

def test_bad_inputs_name_the_argument():
    good_w, good_m, good_c = [0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0]
    with pytest.raises(ValueError, match="weights must be a"):
        GaussianMixture([0.5, -0.5], good_m, good_c)
    with pytest.raises(ValueError, match="weights contains NaN"):
        GaussianMixture([0.5, math.nan], good_m, good_c)
    with pytest.raises(TypeError, match="weights must be a tensor"):
        GaussianMixture("ab", good_m, good_c)
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture(good_w, [[0.0, 0.0]], good_c)
    with pytest.raises(ValueError, match="covs must have shape"):
        GaussianMixture(good_w, good_m, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="covs must be positive"):
        GaussianMixture(good_w, good_m, [1.0, 0.0])
    with pytest.raises(ValueError, match="covs must be symmetric"):
        GaussianMixture(good_w, good_m, [[[1.0, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"covs\[1\] must be positive definite"):
        GaussianMixture(good_w, good_m, [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(TypeError, match="dtype"):
        GaussianMixture(good_w, good_m, good_c, dtype=torch.long)
    mix = GaussianMixture(good_w, good_m, good_c)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\) with D = 2"):
        mix.log_prob(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="x must be a floating tensor"):
        mix.score(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="n must be >= 1"):
        mix.sample(0)
    with pytest.raises(ValueError, match="std must lie"):
        mix.diffuse(1.0, -0.1)
    with pytest.raises(ValueError, match="cannot both be 0"):
        mix.diffuse(0.0, 0.0)
    with pytest.raises(ValueError, match="std must be a number or a tensor of shape"):
        mix.score(torch.zeros(3, 2), std=torch.ones(4))
    with pytest.raises(ValueError, match="std must be finite and >= 0"):
        mix.score(torch.zeros(3, 2), std=torch.tensor([0.5, -1.0, 0.5]))
    with pytest.raises(ValueError, match="cannot both be 0 in the same row"):
        mix.score(torch.zeros(2, 2), mean_coef=torch.tensor([1.0, 0.0]), std=torch.tensor([0.5, 0.0]))
    with pytest.raises(TypeError, match="mixture must be a GaussianMixture"):
        mixture_eps_model("mixture", NoiseSchedule.linear(T=10))
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        mixture_eps_model(mix, "linear")
    with pytest.raises(TypeError, match="sde must have a method marginal"):
        mixture_score_fn(mix, object())
    score_fn = mixture_score_fn(mix, VPStandIn())
    with pytest.raises(TypeError, match="t is continuous time"):
        score_fn(torch.zeros(3, 2), 1)
    with pytest.raises(ValueError, match="t is continuous time and must lie in"):
        score_fn(torch.zeros(3, 2), 1.5)
    x0, sde = torch.zeros(4, 2), VPStandIn()
    model = lambda x, t: -x  # noqa: E731
    with pytest.raises(ValueError, match="weighting must be one of"):
        dsm_loss(model, sde, x0, weighting="uniform")
    with pytest.raises(ValueError, match="not both"):
        dsm_loss(model, sde, x0, noise=torch.zeros(4, 2), generator=torch.Generator())
    with pytest.raises(ValueError, match="t_min must lie"):
        dsm_loss(model, sde, x0, t_min=0.0)
    with pytest.raises(ValueError, match="t is continuous time and must lie in"):
        dsm_loss(model, sde, x0, t=1e-6)
    with pytest.raises(ValueError, match="noise must have the data's shape"):
        dsm_loss(model, sde, x0, noise=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="score_model returned shape"):
        dsm_loss(lambda x, t: x[:, :1], sde, x0)
    with pytest.raises(TypeError, match="needs sde.diffusion"):
        dsm_loss(model, MarginalOnly(), x0, weighting="likelihood")
    with pytest.raises(TypeError, match="sde must have a method marginal"):
        dsm_loss(model, object(), x0)


def test_responsibilities_are_bayes_rule_over_the_components():
    """r_k(x) = pi_k N_k(x) / sum_j pi_j N_j(x), written here from one-component mixtures' log_prob, also for the
    diffused mixture; rows sum to 1."""
    x = MIX2.sample(50, torch.Generator().manual_seed(3))
    for mean_coef, std in ((1.0, 0.0), (0.6, 0.8)):
        parts = torch.stack([math.log(MIX2.weights[k]) + GaussianMixture([1.0], MIX2.means[k:k + 1],
                                                                         MIX2.covs[k:k + 1]).log_prob(
            x, mean_coef=mean_coef, std=std) for k in range(MIX2.K)], dim=1)
        expected = parts.exp() / parts.exp().sum(dim=1, keepdim=True)
        got = MIX2.responsibilities(x, mean_coef=mean_coef, std=std)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got.sum(dim=1), torch.ones(50, dtype=got.dtype))
