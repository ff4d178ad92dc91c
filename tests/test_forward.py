"""Lecture 1: the forward process, checked against independent derivations."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.forward import (
    QUANTITIES,
    EpsFromPrediction,
    as_eps_model,
    convert,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
    frequency_snr,
    q_posterior,
    q_sample,
    q_step,
    radial_power_spectrum,
    regression_target,
    score_from_eps,
    v_from_eps,
    x0_from_eps,
)
from ddpm_scratch.reverse_steps import eps_at
from ddpm_scratch.schedules import NoiseSchedule

SCHEDULES = [NoiseSchedule.linear(T=200, beta_end=0.05), NoiseSchedule.cosine(T=200)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
@pytest.mark.parametrize("t", [1, 7, 120, 200])
def test_composed_steps_give_the_kernel_exactly(schedule, t):
    """x_t after t steps is linear in x0 and in the t noises: x_t = m x0 + sum_s c_s eps_s.

    With zero noise q_step gives m; with a unit impulse in step s it gives c_s. The kernel says
    m = sqrt(alpha_bar_t) and sum_s c_s^2 = 1 - alpha_bar_t (the variances of independent noises add).
    """
    x0 = torch.tensor([[1.0]], dtype=torch.float64)
    zero = torch.zeros_like(x0)

    def run(x, impulse_at=None):
        for s in range(1, t + 1):
            x = q_step(schedule, x, s, noise=torch.ones_like(x) if s == impulse_at else zero)
        return x.item()

    mean_coef = run(x0)
    var = sum(run(zero, impulse_at=s) ** 2 for s in range(1, t + 1))
    assert mean_coef == pytest.approx(math.sqrt(schedule.alpha_bars[t].item()), rel=1e-10)
    assert var == pytest.approx(1 - schedule.alpha_bars[t].item(), rel=1e-10)


def test_composed_steps_match_the_kernel_by_monte_carlo():
    schedule, t, n = SCHEDULES[0], 60, 200_000
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((n, 1), 0.7, dtype=torch.float64)
    x = x0
    for s in range(1, t + 1):
        x = q_step(schedule, x, s, generator=g)
    mean, var = math.sqrt(schedule.alpha_bars[t]) * 0.7, 1 - schedule.alpha_bars[t].item()
    # standard errors of the sample mean and variance of n Gaussian draws; 5 of them as tolerance
    assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / (n - 1))
    direct = q_sample(schedule, x0, t, generator=g)
    assert abs(direct.mean().item() - mean) < 5 * math.sqrt(var / n)
    assert abs(direct.var().item() - var) < 5 * var * math.sqrt(2 / (n - 1))


def test_q_sample_formula_and_t_zero():
    s = SCHEDULES[1]
    x0, eps = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    t = torch.tensor([0, 1, 50, 200])
    x_t = q_sample(s, x0, t, noise=eps)
    for i, ti in enumerate(t.tolist()):
        ab = s.alpha_bars[ti].item()
        assert torch.allclose(x_t[i], math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * eps[i], atol=1e-6)
    assert torch.equal(q_sample(s, x0, 0), x0)


@given(st.integers(1, 200), st.floats(-2, 2), st.floats(-3, 3))
def test_posterior_is_the_product_of_gaussians(t, x0_val, x_t_val):
    """Bayes: q(x_{t-1}|x_t,x0) ∝ N(x_{t-1}; sqrt(abar_{t-1}) x0, 1-abar_{t-1}) N(x_t; sqrt(alpha_t) x_{t-1}, beta_t).

    As a function of x_{t-1} the second factor is N(x_t / sqrt(alpha_t), beta_t / alpha_t); precisions add.
    """
    s = SCHEDULES[0]
    ab_prev, a, b = s.alpha_bars[t - 1].item(), s.alphas[t].item(), s.betas[t].item()
    mean, var = q_posterior(s, torch.tensor([[x_t_val]], dtype=torch.float64), t,
                            x0=torch.tensor([[x0_val]], dtype=torch.float64))
    if t == 1:  # x_0 is given: the posterior is a point mass at x0
        assert var.item() == 0 and mean.item() == pytest.approx(x0_val, abs=1e-12)
        return
    prec_prior, prec_lik = 1 / (1 - ab_prev), a / b
    expected_var = 1 / (prec_prior + prec_lik)
    expected_mean = expected_var * (prec_prior * math.sqrt(ab_prev) * x0_val + prec_lik * x_t_val / math.sqrt(a))
    assert var.item() == pytest.approx(expected_var, rel=1e-9)
    assert mean.item() == pytest.approx(expected_mean, rel=1e-9, abs=1e-9)


def test_posterior_matches_bayes_rule_on_a_grid():
    s = SCHEDULES[1]
    t, x0_val, x_t_val = 40, 0.8, -0.3
    ab_prev, a, b = s.alpha_bars[t - 1].item(), s.alphas[t].item(), s.betas[t].item()
    grid = torch.linspace(-6, 6, 200_001, dtype=torch.float64)
    log_prior = -0.5 * (grid - math.sqrt(ab_prev) * x0_val) ** 2 / (1 - ab_prev)
    log_lik = -0.5 * (x_t_val - math.sqrt(a) * grid) ** 2 / b
    w = torch.softmax(log_prior + log_lik, dim=0)
    grid_mean = (w * grid).sum().item()
    grid_var = (w * (grid - grid_mean) ** 2).sum().item()
    mean, var = q_posterior(s, torch.tensor([[x_t_val]], dtype=torch.float64), t,
                            x0=torch.tensor([[x0_val]], dtype=torch.float64))
    assert mean.item() == pytest.approx(grid_mean, abs=1e-7)
    assert var.item() == pytest.approx(grid_var, rel=1e-5)


def test_posterior_output_shapes():
    s = SCHEDULES[0]
    mean, var = q_posterior(s, torch.zeros(3, 1, 4, 4), torch.tensor([1, 2, 3]), x0=torch.zeros(3, 1, 4, 4))
    assert mean.shape == (3, 1, 4, 4) and var.shape == (3, 1, 1, 1)


@given(st.integers(1, 200))
def test_conversions_invert_the_kernel_and_match_autograd(t):
    s = SCHEDULES[1]
    g = torch.Generator().manual_seed(t)
    x0 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 5, generator=g, dtype=torch.float64)
    x_t = q_sample(s, x0, t, noise=eps).requires_grad_(True)
    ab = s.alpha_bars[t].item()
    assert torch.allclose(x0_from_eps(s, x_t, t, eps=eps), x0, atol=1e-6 / math.sqrt(ab))
    assert torch.allclose(eps_from_x0(s, x_t, t, x0=x0), eps, atol=1e-6)
    # v by its definition (Salimans & Ho 2022), not through the package's formulas
    v = math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0
    assert torch.allclose(v_from_eps(s, x_t, t, eps=eps), v, atol=1e-6 / math.sqrt(ab))
    assert torch.allclose(eps_from_v(s, x_t, t, v=v), eps, atol=1e-9)
    assert torch.allclose(regression_target(s, x0, t, eps=eps, prediction="v"), v, atol=1e-12)
    # score of q(x_t | x0) by autograd of its log-density
    log_q = (-0.5 * (x_t - math.sqrt(ab) * x0) ** 2 / (1 - ab)).sum()
    (score,) = torch.autograd.grad(log_q, x_t)
    assert torch.allclose(score_from_eps(s, x_t, t, eps=eps), score, rtol=1e-6, atol=1e-9)
    assert torch.allclose(eps_from_score(s, x_t, t, score=score), eps, rtol=1e-6, atol=1e-9)


@given(st.integers(1, 150), st.sampled_from(QUANTITIES), st.sampled_from(QUANTITIES))
def test_convert_goes_between_any_two_quantities(t, source, target):
    """Every quantity is a function of (x_t, eps); convert(source -> target) must agree with the definitions."""
    s = SCHEDULES[0]
    g = torch.Generator().manual_seed(t)
    x0, eps = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(2))
    x_t = q_sample(s, x0, t, noise=eps)
    ab = s.alpha_bars[t].item()
    truth = {"eps": eps, "x0": x0, "v": math.sqrt(ab) * eps - math.sqrt(1 - ab) * x0,
             "score": -eps / math.sqrt(1 - ab)}
    out = convert(s, x_t, t, to=target, **{source: truth[source]})
    assert torch.allclose(out, truth[target], rtol=1e-6, atol=1e-7 / (ab * (1 - ab)))


def test_convert_checks_its_arguments_and_an_adapted_x0_network_is_called_at_the_training_step():
    """as_eps_model(x0-network, training schedule) is an eps-model of the training steps; eps_at on a respaced
    schedule calls it at the training steps its indices stand for, and the x0 it outputs is converted to eps at
    that step: the same as eps_from_x0 on the respaced schedule at its indices (alpha_bar is kept by respacing)."""
    base = SCHEDULES[0]
    s = base.respace([10, 100, 200])
    x_t, t = torch.randn(2, 3), torch.tensor([1, 3])
    with pytest.raises(ValueError, match="exactly one"):
        convert(s, x_t, t, to="eps")
    with pytest.raises(ValueError, match="exactly one"):
        convert(s, x_t, t, to="eps", x0=x_t, v=x_t)
    with pytest.raises(ValueError, match="to must be"):
        convert(s, x_t, t, to="noise", eps=x_t)
    seen = []

    def x0_network(x, model_t):
        seen.append(model_t)
        return torch.full_like(x, 0.5)

    eps_model = as_eps_model(x0_network, base, prediction="x0")
    assert isinstance(eps_model, EpsFromPrediction) and eps_model.network is x0_network
    eps = eps_at(eps_model, s, x_t, t)
    assert seen[0].tolist() == [10, 200]  # the network is called at the training steps of the respaced indices
    torch.testing.assert_close(eps, eps_from_x0(s, x_t, t, x0=torch.full_like(x_t, 0.5)))
    with pytest.raises(ValueError, match="prediction"):
        as_eps_model(x0_network, base, prediction="score")


def test_an_adapted_network_passes_a_label_through_and_gives_eps():
    """EpsFromPrediction(x_t, t, y) calls network(x_t, t, y) (a conditional x0- or v-network) and converts its
    output to eps; v -> eps is sqrt(ab) v + sqrt(1 - ab) x_t, written here."""
    base = SCHEDULES[1]
    g = torch.Generator().manual_seed(0)
    x_t, v = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    t, y = torch.tensor([1, 50, 120, 200]), torch.tensor([0, 1, 1, 0])
    labels = []

    def v_network(x, model_t, label):
        labels.append(label)
        return v

    eps = as_eps_model(v_network, base, prediction="v")(x_t, t, y)
    assert torch.equal(labels[0], y)
    ab = base.alpha_bars[t][:, None]
    torch.testing.assert_close(eps, ab.sqrt() * v + (1 - ab).sqrt() * x_t, rtol=1e-12, atol=1e-12)


def test_white_noise_has_flat_unit_spectrum():
    n = 4000
    eps = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    k, power = radial_power_spectrum(eps)
    assert k[0] == 0 and (k[1:] > k[:-1]).all()
    # each ring averages >= 1 frequency over n images: |F|^2 ~ Exp-like with sd <= 1 -> tolerance 5 / sqrt(n)
    assert torch.allclose(power, torch.ones_like(power), atol=5 / math.sqrt(n))


def test_high_frequencies_drown_first():
    """On smooth images (power falling with frequency) the per-frequency SNR of x_t drops below 1 earlier
    for higher frequencies; and the predicted spectrum of x_t matches x_t's measured spectrum."""
    g = torch.Generator().manual_seed(1)
    white = torch.randn(512, 1, 16, 16, generator=g, dtype=torch.float64)
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
    kernel = (kernel[:, None] * kernel[None, :] / 256.0)[None, None]
    x0 = torch.nn.functional.conv2d(white, kernel, padding=2) * 3.0  # low-pass: power falls with k
    s = NoiseSchedule.linear()
    ts = torch.arange(1, s.T + 1)
    k, snr = frequency_snr(s, x0, ts)
    drown_time = (snr < 1).double().argmax(dim=0)  # first t with SNR < 1, per frequency
    assert (drown_time[1:] <= drown_time[:-1]).all() and drown_time[-1] < drown_time[0]
    t = 150
    x_t = q_sample(s, x0, t, generator=g)
    _, measured = radial_power_spectrum(x_t)
    ab = s.alpha_bars[t].item()
    predicted = ab * radial_power_spectrum(x0)[1] + (1 - ab)
    assert torch.allclose(measured, predicted, rtol=0.15)


def test_bad_inputs_raise_clear_errors():
    s = SCHEDULES[0]
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="t must lie in 1..T=200"):
        q_step(s, x, 0)
    with pytest.raises(ValueError, match="t must lie in 0..T=200"):
        q_sample(s, x, 201)
    with pytest.raises(ValueError, match="noise must have the data's shape"):
        q_sample(s, x, 3, noise=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="not both"):
        q_sample(s, x, 3, noise=torch.zeros(2, 3), generator=torch.Generator())
    with pytest.raises(ValueError, match="batch"):
        q_sample(s, x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        q_sample(s, [[0.0]], 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="floating"):
        q_sample(s, torch.zeros(2, 3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        radial_power_spectrum(x)


def test_q_posterior_checks_t_and_x_t():
    s = SCHEDULES[0]
    x = torch.zeros(2, 3)
    for bad in (0, torch.tensor([0, 0]), 201, torch.tensor([1, 201])):
        with pytest.raises(ValueError, match="t must lie in 1..T=200"):
            q_posterior(s, x, bad, x0=x)
    with pytest.raises(TypeError, match="x_t must be a torch.Tensor"):
        q_posterior(s, [[0.0]], 1, x0=x)  # type: ignore[arg-type]
