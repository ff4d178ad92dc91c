"""Lecture 2: L_simple and the variational bound, checked against independent references."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Normal, kl_divergence

from ddpm_scratch.forward import eps_from_x0, q_posterior, q_sample
from ddpm_scratch.losses import (
    discretized_gaussian_log_likelihood,
    drop_labels,
    gaussian_kl,
    l_simple,
    prior_bpd,
    sample_timesteps,
    variational_bound,
    vlb_weights,
)
from ddpm_scratch.schedules import NoiseSchedule


@given(st.floats(-3, 3), st.floats(0.01, 4), st.floats(-3, 3), st.floats(0.01, 4))
def test_gaussian_kl_matches_torch_distributions(m1, v1, m2, v2):
    ours = gaussian_kl(torch.tensor(m1), torch.tensor(v1), torch.tensor(m2), torch.tensor(v2))
    ref = kl_divergence(Normal(m1, math.sqrt(v1)), Normal(m2, math.sqrt(v2)))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)


@given(st.integers(2, 64), st.floats(-1.5, 1.5), st.floats(1e-4, 2.0))
def test_discretized_likelihood_sums_to_one_over_the_bins(num_bins, mean, variance):
    levels = torch.linspace(-1, 1, num_bins, dtype=torch.float64)
    logp = discretized_gaussian_log_likelihood(levels, torch.tensor(mean, dtype=torch.float64),
                                               torch.tensor(variance, dtype=torch.float64), num_bins)
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9 * num_bins + 1e-9)


def test_discretized_likelihood_is_density_times_bin_width_for_wide_gaussians():
    x = torch.tensor([0.0, 0.2], dtype=torch.float64)
    logp = discretized_gaussian_log_likelihood(x, torch.zeros(2, dtype=torch.float64),
                                               torch.ones(2, dtype=torch.float64), num_bins=256)
    width = 2 / 255
    expected = Normal(0.0, 1.0).log_prob(x) + math.log(width)
    assert torch.allclose(logp, expected, atol=1e-4)


def test_prior_term_is_about_1e_minus_5_bits_per_dim():
    """L_T for the DDPM schedule and data in [-1, 1] (DDPM reports ~1e-5 bits/dim)."""
    s = NoiseSchedule.linear()
    x0 = torch.linspace(-1, 1, 256, dtype=torch.float64).reshape(4, 64)
    ab = s.alpha_bars[-1].item()
    # KL(N(sqrt(ab) x, 1-ab) || N(0,1)) = 0.5 (1-ab + ab x^2 - 1 - log(1-ab)), averaged, in bits
    expected = (0.5 * ((1 - ab) + ab * x0**2 - 1 - math.log(1 - ab))).mean(dim=1) / math.log(2)
    got = prior_bpd(s, x0)
    assert torch.allclose(got, expected, rtol=1e-6)
    assert 1e-6 < got.mean().item() < 3e-5


def _oracle_model(schedule, x0):
    """The eps that actually produced x_t from the known x0 (a model that cannot be beaten)."""
    return lambda x_t, t: eps_from_x0(schedule, x_t, t, x0=x0)


def test_l_simple_is_zero_for_the_oracle_and_matches_the_formula():
    s = NoiseSchedule.linear(T=100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 1, 4, 4, generator=g)
    assert l_simple(_oracle_model(s, x0), s, x0, generator=g).item() < 1e-10

    t = torch.randint(1, 101, (16,), generator=g)
    eps = torch.randn(16, 1, 4, 4, generator=g)
    model = lambda x_t, t: 0.5 * x_t  # noqa: E731
    ab = s.alpha_bars[t].float().view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    expected = ((eps - 0.5 * x_t) ** 2).mean()
    assert l_simple(model, s, x0, t=t, noise=eps).item() == pytest.approx(expected.item(), rel=1e-5)
    weights = torch.linspace(0, 2, 101, dtype=torch.float64)
    per_example = ((eps - 0.5 * x_t) ** 2).flatten(1).mean(1)
    expected_w = (weights[t].float() * per_example).mean()
    assert l_simple(model, s, x0, t=t, noise=eps, weights=weights).item() == pytest.approx(expected_w.item(), rel=1e-5)


def test_l_simple_carries_gradients_and_checks_its_inputs():
    s = NoiseSchedule.linear(T=10)
    w = torch.zeros(1, requires_grad=True)
    loss = l_simple(lambda x_t, t: w * x_t, s, torch.randn(4, 3))
    loss.backward()
    assert w.grad is not None and w.grad.abs().item() > 0
    with pytest.raises(ValueError, match="eps_model returned shape"):
        l_simple(lambda x_t, t: x_t[:, :1], s, torch.randn(4, 3))
    with pytest.raises(ValueError, match="weights must have shape"):
        l_simple(lambda x_t, t: x_t, s, torch.randn(4, 3), weights=torch.ones(5))
    with pytest.raises(ValueError, match="t must lie in 1..T=10"):
        l_simple(lambda x_t, t: x_t, s, torch.randn(4, 3), t=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="not both"):
        l_simple(lambda x_t, t: x_t, s, torch.randn(4, 3), noise=torch.randn(4, 3), generator=torch.Generator())
    with pytest.raises(ValueError, match="prediction"):
        l_simple(lambda x_t, t: x_t, s, torch.randn(4, 3), prediction="score")


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_l_simple_regresses_x0_or_v_and_their_oracles_score_zero(prediction):
    """A network predicting x0 is regressed on x0, one predicting v on v = sqrt(ab) eps - sqrt(1 - ab) x0; the
    model that outputs the true target (computed here from x0 and x_t alone) has zero loss."""
    s = NoiseSchedule.linear(T=100)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(16, 3, generator=g, dtype=torch.float64)

    def oracle(x_t, t):
        ab = s.alpha_bars[t].view(-1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return x0 if prediction == "x0" else ab.sqrt() * eps - (1 - ab).sqrt() * x0

    assert l_simple(oracle, s, x0, generator=g, prediction=prediction).item() < 1e-20
    t, eps = torch.full((16,), 40), torch.randn(16, 3, generator=g, dtype=torch.float64)
    ab = s.alpha_bars[40].item()
    target = x0 if prediction == "x0" else math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0
    zero = l_simple(lambda x_t, t: torch.zeros_like(x_t), s, x0, t=t, noise=eps, prediction=prediction)
    assert zero.item() == pytest.approx(target.pow(2).mean().item(), rel=1e-12)


def test_sample_timesteps_is_uniform_on_1_to_T():
    T, n = 10, 100_000
    t = sample_timesteps(T, n, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=T + 1)
    assert counts[0] == 0 and t.max() == T
    p = 1 / T  # each count is Binomial(n, p): 5 standard deviations
    assert ((counts[1:] - n * p).abs() < 5 * math.sqrt(n * p * (1 - p))).all()


@pytest.mark.parametrize("variance", ["beta", "posterior"])
@given(t=st.integers(2, 100))
def test_kl_term_is_the_weighted_noise_error(variance, t):
    """DDPM eq. 12: KL(q(x_{t-1}|x_t,x0) || p_theta(x_{t-1}|x_t)) = lambda_t ||eps - eps_theta||^2 + C_t for one draw,
    with C_t the KL between the variances (0 only for sigma_t^2 = beta_tilde_t)."""
    s = NoiseSchedule.linear(T=100, beta_end=0.05)
    g = torch.Generator().manual_seed(t)
    x0, eps = torch.randn(1, 6, generator=g, dtype=torch.float64), torch.randn(1, 6, generator=g, dtype=torch.float64)
    eps_theta = eps + 0.3 * torch.randn(1, 6, generator=g, dtype=torch.float64)
    x_t = q_sample(s, x0, t, noise=eps)
    true_mean, true_var = q_posterior(s, x_t, t, x0=x0)
    a, b, ab = s.alphas[t].item(), s.betas[t].item(), s.alpha_bars[t].item()
    model_mean = (x_t - b / math.sqrt(1 - ab) * eps_theta) / math.sqrt(a)  # Algorithm 2, line 4
    sigma2 = s.reverse_variances(variance)[t].item()
    kl = kl_divergence(Normal(true_mean, true_var.sqrt()), Normal(model_mean, math.sqrt(sigma2))).sum()
    mean_part = vlb_weights(s, variance)[t] * ((eps - eps_theta) ** 2).sum()
    var_part = kl_divergence(Normal(0.0, true_var.sqrt().item()), Normal(0.0, math.sqrt(sigma2))) * 6
    assert kl.item() == pytest.approx((mean_part + var_part).item(), rel=1e-5)  # float64 cancellation


def test_bound_of_the_oracle_is_the_prior_term():
    """For a single data point the oracle eps gives p_theta's mean = the true posterior mean, so with
    sigma_t^2 = beta_tilde_t every KL term vanishes and the decoder puts ~all mass on x0's bin."""
    s = NoiseSchedule.linear(T=100, beta_end=0.1)
    x0 = torch.tensor([[-1.0, 0.0, 0.5, 1.0]], dtype=torch.float64)
    bound = variational_bound(_oracle_model(s, x0), s, x0, variance="posterior", num_bins=5,
                              generator=torch.Generator().manual_seed(0))
    assert bound.terms.shape == (1, 100)
    assert torch.allclose(bound.terms[:, 1:], torch.zeros(1, 99, dtype=torch.float64), atol=1e-9)
    assert bound.decoder.item() < 1e-6
    assert bound.total.item() == pytest.approx(bound.prior.item() + bound.terms.sum().item())
    assert bound.prior.item() == pytest.approx(prior_bpd(s, x0).item())


def test_bound_penalises_a_worse_model():
    s = NoiseSchedule.linear(T=50, beta_end=0.2)
    x0 = torch.tensor([[-1.0, 0.0, 0.5, 1.0]], dtype=torch.float64)
    oracle = _oracle_model(s, x0)
    g = torch.Generator().manual_seed(0)
    good = variational_bound(oracle, s, x0, num_bins=5, generator=g)
    bad = variational_bound(lambda x_t, t: oracle(x_t, t) + 0.5, s, x0, num_bins=5, generator=g)
    assert (bad.terms[:, 1:] >= 0).all()
    assert bad.total.item() > good.total.item() + 1.0


def test_prior_term_keeps_float64_precision_for_float32_data():
    s = NoiseSchedule.cosine()
    x0 = torch.linspace(-1, 1, 64).reshape(1, 64)
    got = prior_bpd(s, x0)
    assert got.dtype == torch.float64 and got.item() > 0
    assert got.item() == pytest.approx(prior_bpd(s, x0.double()).item(), rel=1e-9)


# ---------------------------------------------------------------------------------- label dropout

@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drop_labels_drops_each_label_with_the_given_rate(rate):
    """Each label becomes the "no label" token num_classes with probability rate, independently of its class: the
    count of dropped labels in each class is Binomial(n_class, rate), checked to 5 standard deviations."""
    n, num_classes = 60_000, 3
    y = torch.arange(n) % num_classes
    dropped = drop_labels(y, rate=rate, num_classes=num_classes, generator=torch.Generator().manual_seed(0))
    assert dropped.shape == y.shape and dropped.dtype == torch.long
    is_dropped = dropped == num_classes
    assert torch.equal(dropped[~is_dropped], y[~is_dropped])  # the others keep their label
    for k in range(num_classes):
        n_k = (y == k).sum().item()
        count = is_dropped[y == k].sum().item()
        assert abs(count - n_k * rate) < 5 * math.sqrt(n_k * rate * (1 - rate)), (k, count)
    assert torch.equal(y, torch.arange(n) % num_classes)  # y itself is not changed


def test_drop_labels_at_rate_0_and_1():
    y = torch.tensor([0, 1, 1, 0, 1])
    assert drop_labels(y, rate=0.0, num_classes=2) is y
    assert torch.equal(drop_labels(y, rate=1.0, num_classes=2), torch.full((5,), 2))


def test_drop_labels_is_reproducible_and_checks_the_rate():
    y = torch.randint(0, 10, (100,), generator=torch.Generator().manual_seed(1))
    a, b = (drop_labels(y, rate=0.3, num_classes=10, generator=torch.Generator().manual_seed(2)) for _ in range(2))
    assert torch.equal(a, b)
    for rate in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"rate must lie in \[0, 1\]"):
            drop_labels(y, rate=rate, num_classes=10)
