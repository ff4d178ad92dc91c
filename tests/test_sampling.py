"""sampling.sample and the SAMPLERS registry: every registered sampler, given the exact eps of Gaussian data,
returns that Gaussian. A new sampler joins these tests by being registered."""

import math

import pytest
import torch

from ddpm_scratch.sampling import SAMPLERS, Sampler, register, sample
from ddpm_scratch.schedules import NoiseSchedule

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[0.6, 0.25], [0.25, 0.9]], dtype=torch.float64)  # eigenvalues 0.47 and 1.03, correlated


def gaussian_eps(schedule, mu, cov):
    """Exact E[eps | x_t] for data N(mu, cov): x_t ~ N(sqrt(ab) mu, S_t) with S_t = ab cov + (1 - ab) I and
    Cov(eps, x_t) = sqrt(1 - ab) I, so E[eps | x_t] = sqrt(1 - ab) S_t^{-1} (x_t - sqrt(ab) mu).
    S_t^{-1} = Q diag(1 / (ab l + 1 - ab)) Q^T with cov = Q diag(l) Q^T. t: the training steps of `schedule`."""
    lam, Q = torch.linalg.eigh(cov)

    def eps_model(x_t, t):
        ab = schedule.alpha_bars[t].to(x_t.dtype)[:, None]
        r = (x_t - ab.sqrt() * mu.to(x_t.dtype)) @ Q.to(x_t.dtype)
        return (1 - ab).sqrt() * (r / (ab * lam.to(x_t.dtype) + 1 - ab)) @ Q.T.to(x_t.dtype)
    return eps_model


def assert_gaussian(x, mu, cov):
    """Sample mean within 5 standard errors sqrt(cov_ii / n); sample covariance entries within 5 standard errors
    sqrt((cov_ii cov_jj + cov_ij^2) / n) (the variance of a sample covariance of Gaussian data)."""
    n = len(x)
    mean_se = (cov.diagonal() / n).sqrt()
    assert ((x.mean(0) - mu).abs() < 5 * mean_se).all(), (x.mean(0), mu)
    cov_se = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    assert ((torch.cov(x.T) - cov).abs() < 5 * cov_se).all(), (torch.cov(x.T), cov)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_returns_gaussian_data_with_the_exact_eps(name):
    """All T = 1000 steps of DDPM's schedule; the sampler's default options."""
    s, n = NoiseSchedule.linear(), 20_000
    x = sample(gaussian_eps(s, MU, COV), s, (n, 2), sampler=name, generator=torch.Generator().manual_seed(0),
               dtype=torch.float64)
    assert x.shape == (n, 2) and x.dtype == torch.float64
    assert_gaussian(x, MU, COV)


def test_fewer_ddpm_steps_are_exact_for_unit_variance_data():
    """On a respaced schedule each DDPM step with sigma^2 = beta' is an exact draw of q(x_{t'} | x_t) for data
    N(mu, I) (lecture 2), whatever the jump, except the last: it returns the mean of x0 | x_{s_1} with no noise
    (Algorithm 2, line 3), which lacks the step's variance beta'_1 = 1 - alpha_bar_{s_1}. So 10 steps (s_1 = 100)
    return N(mu, alpha_bar_100 I). The eps-model reads the original schedule at the step it is called with: were
    it called at the respaced indices, the mean would move."""
    s, n = NoiseSchedule.linear(), 20_000
    eye = torch.eye(2, dtype=torch.float64)
    x = sample(gaussian_eps(s, MU, eye), s, (n, 2), num_steps=10, generator=torch.Generator().manual_seed(1),
               dtype=torch.float64)
    assert_gaussian(x, MU, s.alpha_bars[100].item() * eye)


def test_sample_is_seeded_and_checks_its_arguments():
    s = NoiseSchedule.linear(T=30, rescale=True)
    model = gaussian_eps(s, MU, COV)
    a, b = (sample(model, s, (5, 2), generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b) and torch.isfinite(a).all()
    x_T = torch.randn(5, 2)
    with pytest.raises(ValueError, match="sampler must be one of"):
        sample(model, s, (5, 2), sampler="euler")
    with pytest.raises(ValueError, match="takes the options variance; got unknown eta"):
        sample(model, s, (5, 2), eta=0.5)
    with pytest.raises(ValueError, match="variance must be"):
        sample(model, s, (5, 2), variance="large")
    with pytest.raises(ValueError, match="num_steps must be <= T=30"):
        sample(model, s, (5, 2), num_steps=31)
    with pytest.raises(ValueError, match="prediction"):
        sample(model, s, (5, 2), prediction="score")
    with pytest.raises(ValueError, match="x_T has shape"):
        sample(model, s, (4, 2), x_T=x_T)
    with pytest.raises(ValueError, match="x_T must be a floating tensor"):
        sample(model, s, (5, 2), x_T=torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="cannot be combined with num_steps"):
        sample(model, s, (5, 2), num_steps=10, variance=torch.full((31,), 0.01, dtype=torch.float64))
    assert sample(model, s, (5, 2), x_T=x_T).shape == (5, 2)


def test_register_adds_a_sampler_once():
    def run(eps_model, schedule, x_T, *, prediction, generator, progress, scale):
        return scale * x_T

    name = "test-identity"
    try:
        register(Sampler(name, run, "returns x_T scaled", options={"scale": 1.0}, stochastic=False))
        x_T = torch.randn(3, 2)
        s = NoiseSchedule.linear(T=10)
        assert torch.equal(sample(lambda x, t: x, s, (3, 2), sampler=name, x_T=x_T, scale=2.0), 2 * x_T)
        with pytest.raises(ValueError, match="already registered"):
            register(Sampler(name, run, "again"))
    finally:
        SAMPLERS.pop(name, None)


def test_every_sampler_is_described():
    for name, sampler in SAMPLERS.items():
        assert sampler.name == name and sampler.description and math.isfinite(len(sampler.options))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_names_a_schedule_that_is_not_one(name):
    """Through `sample` and through the registered function: a TypeError naming `schedule`, not an AttributeError
    from deep inside."""
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule, got str"):
        sample(model, "linear", (2, 2), sampler=name, num_steps=4)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule, got str"):
        SAMPLERS[name].run(model, "linear", torch.zeros(2, 2), prediction="eps", generator=None, progress=False,
                           **SAMPLERS[name].options)
