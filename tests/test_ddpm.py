"""Lecture 2: Algorithm 1 (L_simple, the trainer's objective) and Algorithm 2 (ddpm_sample)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.ddpm import ddpm_sample, p_mean, p_sample_step
from ddpm_scratch.forward import q_posterior, x0_from_eps
from ddpm_scratch.losses import l_simple
from ddpm_scratch.sampling import sample, trajectory
from ddpm_scratch.schedules import NoiseSchedule

S = NoiseSchedule.linear(T=200, beta_end=0.05)


def gaussian_eps(schedule, mu, s2):
    """Exact E[eps | x_t] for data N(mu, s2 I): x_t ~ N(sqrt(ab) mu, v_t I) with v_t = ab s2 + 1 - ab,
    and Cov(eps, x_t) = sqrt(1 - ab), so E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) mu) / v_t."""
    def eps_model(x_t, t):
        ab = schedule.alpha_bars[t].to(x_t.dtype).view(-1, *([1] * (x_t.dim() - 1)))
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / (ab * s2 + 1 - ab)
    return eps_model


@given(st.integers(1, 200))
def test_algorithm_2_mean_is_the_posterior_mean_at_the_predicted_x0(t):
    g = torch.Generator().manual_seed(t)
    x_t, eps = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    mean, _ = q_posterior(S, x_t, t, x0=x0_from_eps(S, x_t, t, eps=eps))
    assert torch.allclose(p_mean(S, x_t, t, eps=eps), mean, atol=1e-9 * (1 + mean.abs().max().item()))


def test_p_sample_step_formula_and_no_noise_at_the_last_step():
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([1, 2, 100, 200])
    for variance in ["beta", "posterior"]:
        out = p_sample_step(S, x_t, t, eps=eps, variance=variance, noise=z)
        sigma2 = S.reverse_variances(variance)
        for i, ti in enumerate(t.tolist()):
            a, b, ab = S.alphas[ti].item(), S.betas[ti].item(), S.alpha_bars[ti].item()
            mean = (x_t[i] - b / math.sqrt(1 - ab) * eps[i]) / math.sqrt(a)
            expected = mean + (math.sqrt(sigma2[ti].item()) * z[i] if ti > 1 else 0)
            assert torch.allclose(out[i], expected, atol=1e-10)
    with pytest.raises(ValueError, match="variance must be"):
        p_sample_step(S, x_t, 3, eps=eps, variance="fixed")
    with pytest.raises(ValueError, match="not both"):
        p_sample_step(S, x_t, 3, eps=eps, noise=z, generator=torch.Generator())
    with pytest.raises(TypeError):
        p_sample_step(S, x_t, 3, eps)  # eps is keyword-only: a swap with x_t cannot pass silently


def test_p_sample_step_with_an_int_t_equals_the_batched_step():
    g = torch.Generator().manual_seed(1)
    x_t, eps, z = (torch.randn(3, 2, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (1, 2, 150):
        batched = p_sample_step(S, x_t, torch.full((3,), t), eps=eps, noise=z)
        assert torch.equal(p_sample_step(S, x_t, t, eps=eps, noise=z), batched)


def exact_reverse_variances(schedule, s2):
    """Var(x_{t-1} | x_t) for Gaussian data N(mu, s2): v_{t-1} - alpha_t v_{t-1}^2 / v_t (Gaussian conditioning)."""
    v = schedule.alpha_bars * s2 + 1 - schedule.alpha_bars
    out = torch.zeros_like(v)
    out[1:] = v[:-1] - schedule.alphas[1:] * v[:-1] ** 2 / v[1:]
    return out


@pytest.mark.parametrize("s2", [1.0, 0.3])
def test_exact_eps_sampler_returns_the_gaussian(s2):
    """With the exact eps and the exact reverse variance every step is an exact draw from q(x_{t-1} | x_t),
    so x_t keeps the marginal N(sqrt(ab_t) mu, v_t I) all the way down (for s2 = 1, sigma_t^2 = beta_t is exact).
    This schedule's alpha_bar_T is not ~0, so x_T is drawn from the exact q(x_T)."""
    n, mu = 40_000, torch.tensor([0.5, -1.0], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    ab_T = S.alpha_bars[-1].item()
    x_T = math.sqrt(ab_T) * mu + math.sqrt(ab_T * s2 + 1 - ab_T) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    variance = "beta" if s2 == 1.0 else exact_reverse_variances(S, s2)
    if s2 == 1.0:
        assert torch.allclose(exact_reverse_variances(S, 1.0)[1:], S.betas[1:])
    save_at = [150, 20, 1]
    traj = trajectory(gaussian_eps(S, mu, s2), S, (n, 2), save_at, sampler="ddpm", variance=variance,
                      generator=g, x_T=x_T)
    for x, t in zip(traj, save_at, strict=True):
        ab = S.alpha_bars[t].item()
        v = ab * s2 + 1 - ab
        # CLT: sample mean has sd sqrt(v/n); a sample covariance entry has sd <= v sqrt(2/n); 5 sds
        assert ((x.mean(0) - math.sqrt(ab) * mu).abs() < 5 * math.sqrt(v / n)).all(), t
        cov = torch.cov(x.T)
        assert ((cov - v * torch.eye(2, dtype=torch.float64)).abs() < 5 * v * math.sqrt(2 / n)).all(), t


def test_sigma_choices_bracket_the_true_reverse_variance():
    """For data with variance s2 <= 1: beta_tilde_t <= Var(x_{t-1}|x_t) <= beta_t (DDPM sec. 3.2)."""
    for s2 in [0.0, 0.1, 0.5, 1.0]:
        true = exact_reverse_variances(S, s2)[2:]
        assert (S.posterior_variances[2:] <= true * (1 + 1e-9)).all()
        assert (true <= S.betas[2:] * (1 + 1e-9)).all()


def test_ddpm_sample_is_seeded_and_checks_its_inputs():
    """ddpm_sample runs from the caller's x_T (any (B, ...) shape, kept); the generator draws the steps' noise, so
    one seed gives one sample; sample() draws x_T and checks it against the shape."""
    s = NoiseSchedule.linear(T=20)
    model = gaussian_eps(s, 0.0, 1.0)
    x_T = torch.randn(5, 1, 2, 2)
    a = ddpm_sample(model, s, x_T, generator=torch.Generator().manual_seed(3))
    b = ddpm_sample(model, s, x_T, generator=torch.Generator().manual_seed(3))
    c = ddpm_sample(model, s, x_T, generator=torch.Generator().manual_seed(4))
    assert a.shape == x_T.shape and a.dtype == x_T.dtype and torch.equal(a, b) and torch.isfinite(a).all()
    assert not torch.equal(a, c)  # the noise of steps T..2 comes from the generator
    assert torch.equal(sample(model, s, (5, 1, 2, 2), x_T=x_T, generator=torch.Generator().manual_seed(3)), a)
    with pytest.raises(ValueError, match="x_T has shape"):
        sample(model, s, (4, 1, 2, 2), x_T=x_T)
    with pytest.raises(ValueError, match="shape must be"):
        sample(model, s, (0, 3))
    with pytest.raises(ValueError, match="x_T must have shape"):
        ddpm_sample(model, s, torch.zeros(4))
    with pytest.raises(ValueError, match="variance must be 'beta', 'posterior' or a"):
        ddpm_sample(model, s, x_T, variance="large")
    with pytest.raises(ValueError, match=r"variance must have shape \(T\+1,\) = \(21,\)"):
        ddpm_sample(model, s, x_T, variance=torch.full((20,), 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="save_at"):
        trajectory(model, s, (2, 2), save_at=[21])
    traj = trajectory(model, s, (2, 2), save_at=[20, 0], generator=torch.Generator().manual_seed(1))
    assert traj.shape == (2, 2, 2)


class TinyEps(torch.nn.Module):
    def __init__(self, T):
        super().__init__()
        self.T = T
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))

    def forward(self, x_t, t):
        return self.net(torch.cat([x_t, (t.float() / self.T)[:, None]], dim=1))


def test_algorithm_1_learns_the_noise():
    """Algorithm 1 on 2-D Gaussian data, written out: a gradient step of Adam on L_simple (losses.l_simple draws t
    and eps, lines 3-4) per batch. L_simple falls well below its value for eps_theta = 0 (which is 1)."""
    torch.manual_seed(0)
    s = NoiseSchedule.linear(T=100, beta_end=0.1)
    model = TinyEps(s.T)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4096, 2, generator=g) * 0.1 + torch.tensor([1.0, -1.0])
    losses = []
    for _ in range(300):
        x0 = data[torch.randint(0, 4096, (256,), generator=g)]  # line 2
        opt.zero_grad(set_to_none=True)
        loss = l_simple(model, s, x0, generator=g)  # lines 3-5
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-50:]) / 50 < 0.5 * sum(losses[:10]) / 10


def test_ddpm_sample_from_pure_noise_with_the_exact_eps_returns_unit_gaussian_data():
    """The DDPM schedule (alpha_bar_T ~ 4e-5): for data N(mu, I), sigma_t^2 = beta_t is the exact reverse
    variance, and the start mismatch N(0, I) vs q(x_T) shrinks by prod sqrt(alpha_t) = sqrt(alpha_bar_T)."""
    s, n = NoiseSchedule.linear(), 20_000
    mu = torch.tensor([1.0, -0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x0 = ddpm_sample(gaussian_eps(s, mu, 1.0), s, torch.randn(n, 2, generator=g, dtype=torch.float64), generator=g)
    assert ((x0.mean(0) - mu).abs() < 5 * math.sqrt(1 / n)).all()
    assert ((torch.cov(x0.T) - torch.eye(2, dtype=torch.float64)).abs() < 5 * math.sqrt(2 / n)).all()
