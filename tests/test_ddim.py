"""Lecture 4: DDIM (Song, Meng & Ermon 2021): the eta family, timestep selection, sampling, inversion, slerp.

References are written here from the paper's equations, not taken from ddim.py: the family's marginals, DDPM's
posterior step (ddpm.p_mean, forward.q_posterior), the sampler's loop, the published grids. The exact eps of a
Gaussian mixture (score.mixture_eps_model) measures sampling and inversion with no network error. Seeds are fixed;
every statistical tolerance says where it comes from.
"""

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.ddim import ddim_invert, ddim_sample, ddim_sigma, ddim_step, slerp
from ddpm_scratch.ddpm import p_mean
from ddpm_scratch.forward import q_posterior, x0_from_eps
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import SPACINGS, NoiseSchedule, karras_timesteps, respaced, spaced_timesteps
from ddpm_scratch.score import GaussianMixture, mixture_eps_model

F64 = torch.float64
MIX2 = GaussianMixture([0.5, 0.3, 0.2], [[-1.5, 0.0], [1.5, 0.5], [0.0, -1.5]],
                       [[[0.10, 0.05], [0.05, 0.08]], [[0.05, -0.02], [-0.02, 0.12]], [[0.20, 0.0], [0.0, 0.03]]])


@st.composite
def schedules(draw):
    """A linear (rescaled) or cosine schedule of 21..200 steps, as it is or respaced to fewer by some spacing."""
    T = draw(st.integers(21, 200))
    schedule = NoiseSchedule.linear(T=T, rescale=True) if draw(st.booleans()) else NoiseSchedule.cosine(T=T)
    if draw(st.booleans()):
        schedule = respaced(schedule, draw(st.integers(2, T)), draw(st.sampled_from(SPACINGS)))
    return schedule


def draws(seed, *shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=F64) for shape in shapes]


# --------------------------------------------------------------------------- the family keeps q(x_t | x0)
@given(schedules(), st.data(), st.floats(0.0, 1.0))
def test_every_eta_keeps_the_marginal_in_closed_form(schedule, data, eta):
    """Fix x0 and let x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) e ~ q(x_t | x0). With the true e in place of eps the step
    is q_sigma(x_prev | x_t, x0) (eq. 7), affine in (e, z): x_prev = m + a e + b z. Read m, a, b off the step
    itself (unit and zero inputs) and check the moments of q(x_prev | x0): m = sqrt(ab_prev) x0 and
    a^2 + b^2 = 1 - ab_prev (the paper's Lemma 1), whatever eta, and a = sqrt(1 - ab_prev - sigma^2) (eq. 12)."""
    t = data.draw(st.integers(1, schedule.T))
    t_prev = data.draw(st.integers(0, t - 1))
    ab, ab_prev = schedule.alpha_bars[t], schedule.alpha_bars[t_prev]
    (x0,) = draws(t, (4, 3))

    def step(e, z):
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * e
        return ddim_step(schedule, x_t, t, t_prev, eps=e, eta=eta, noise=z)

    zero, one = torch.zeros_like(x0), torch.ones_like(x0)
    m = step(zero, zero)
    a, b = step(one, zero) - m, step(zero, one) - m
    torch.testing.assert_close(m, ab_prev.sqrt() * x0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a**2 + b**2, (1 - ab_prev) * one, rtol=1e-9, atol=1e-12)
    sigma2 = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)  # eq. 16, written here
    torch.testing.assert_close(a, (1 - ab_prev - sigma2).clamp(min=0).sqrt() * one, rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_a_chain_of_steps_keeps_the_marginals_by_monte_carlo(eta):
    """20,000 draws of x_T ~ q(x_T | x0) for one fixed x0 in 2-D, then the family's steps down a 10-step respaced
    linear schedule with the true e_t = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t) at every step (and fresh z): at each
    index i the sample mean is within 5 standard errors sqrt((1 - ab_i) / n) of sqrt(ab_i) x0 and the sample
    covariance's entries within 5 standard errors (1 - ab_i) sqrt((1 + delta_ij) / n) of (1 - ab_i) I (Gaussian
    sample covariances), so 10 indices x 5 entries fail by chance with probability about 3e-5."""
    schedule = respaced(NoiseSchedule.linear(), 10)
    n = 20_000
    x0 = torch.tensor([[0.7, -1.2]], dtype=F64)
    g = torch.Generator().manual_seed(int(10 * eta))
    ab = schedule.alpha_bars
    x = ab[10].sqrt() * x0 + (1 - ab[10]).sqrt() * torch.randn(n, 2, generator=g, dtype=F64)
    for i in range(10, 0, -1):
        e = (x - ab[i].sqrt() * x0) / (1 - ab[i]).sqrt()
        x = ddim_step(schedule, x, i, i - 1, eps=e, eta=eta, generator=g)
        var = (1 - ab[i - 1]).item()
        assert ((x.mean(0) - ab[i - 1].sqrt() * x0[0]).abs() <= 5 * math.sqrt(var / n) + 1e-12).all(), i
        if i > 1:
            cov_se = var * torch.sqrt((1 + torch.eye(2, dtype=F64)) / n)
            assert ((torch.cov(x.T) - var * torch.eye(2, dtype=F64)).abs() < 5 * cov_se).all(), (i, torch.cov(x.T))
    torch.testing.assert_close(x, x0.expand(n, 2), rtol=0, atol=1e-12)  # ab_0 = 1: the last step lands on x0


# ---------------------------------------------------------------------------------- eta = 1 is DDPM's step
@given(schedules(), st.data())
def test_eta_one_is_the_ddpm_posterior_step(schedule, data):
    """With t_prev = t - 1, eta = 1 gives DDPM's posterior step: mean p_mean(x_t, t; eps) (Algorithm 2), which is
    the mean of q(x_{t-1} | x_t, x0_hat) (DDPM eq. 7), and variance beta_tilde_t = posterior_variances[t], read
    off the step as ((step(z) - step(0)) / z)^2. On a respaced schedule this is the jump's posterior."""
    t = data.draw(st.integers(2, schedule.T))
    x_t, eps, z = draws(t, (5, 3), (5, 3), (5, 3))
    mean = ddim_step(schedule, x_t, t, t - 1, eps=eps, eta=1.0, noise=torch.zeros_like(z))
    scale = 1 + mean.abs().max().item()
    torch.testing.assert_close(mean, p_mean(schedule, x_t, t, eps=eps), rtol=1e-9, atol=1e-9 * scale)
    posterior_mean, posterior_var = q_posterior(schedule, x_t, t, x0=x0_from_eps(schedule, x_t, t, eps=eps))
    torch.testing.assert_close(mean, posterior_mean, rtol=1e-9, atol=1e-9 * scale)
    variance = ((ddim_step(schedule, x_t, t, t - 1, eps=eps, eta=1.0, noise=z) - mean) / z) ** 2
    torch.testing.assert_close(variance, posterior_var.expand_as(variance), rtol=1e-7, atol=1e-14)
    sigma = ddim_sigma(schedule.alpha_bars[t], schedule.alpha_bars[t - 1], 1.0)
    assert sigma.item() ** 2 == pytest.approx(schedule.posterior_variances[t].item(), rel=1e-10)
    assert ddim_sigma(schedule.alpha_bars[t], schedule.alpha_bars[t - 1], 0.5).item() == pytest.approx(
        0.5 * sigma.item(), rel=1e-12)


# --------------------------------------------------------------------------------- eta = 0 is deterministic
def test_eta_zero_is_deterministic_and_draws_nothing():
    """eta = 0: sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps (eq. 12 with sigma = 0, written here), whatever the
    generator, whose state it leaves alone; a sampler from one x_T gives one x0 for any generator. eta > 0 draws."""
    s = NoiseSchedule.linear(T=100, rescale=True)
    x_t, eps = draws(0, (6, 2), (6, 2))
    ab, ab_prev = s.alpha_bars[70], s.alpha_bars[40]
    expected = ab_prev.sqrt() * (x_t - (1 - ab).sqrt() * eps) / ab.sqrt() + (1 - ab_prev).sqrt() * eps
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    torch.testing.assert_close(ddim_step(s, x_t, 70, 40, eps=eps, generator=g), expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(g.get_state(), state)
    model, x_T = mixture_eps_model(MIX2, s), torch.randn(64, 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    runs = {eta: [sample(model, s, (64, 2), sampler="ddim", num_steps=10, eta=eta, x_T=x_T,
                         generator=torch.Generator().manual_seed(k)) for k in (3, 4)] for eta in (0.0, 0.5)}
    assert torch.equal(*runs[0.0])
    assert not torch.allclose(*runs[0.5])


def test_the_last_step_lands_on_the_data_for_every_eta():
    """t_prev = 0 has ab = 1: sigma = 0 and no direction term, so the step returns x0_hat (eq. 9) exactly."""
    s = NoiseSchedule.cosine(T=50)
    x_t, eps = draws(5, (4, 3), (4, 3))
    x0_hat = (x_t - (1 - s.alpha_bars[7]).sqrt() * eps) / s.alpha_bars[7].sqrt()
    for eta in (0.0, 0.3, 1.0):
        out = ddim_step(s, x_t, 7, 0, eps=eps, eta=eta, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, x0_hat, rtol=1e-12, atol=1e-12)


def test_int_and_per_example_steps_agree():
    """A (B,) tensor of steps (and of t_prev) gives, row by row, what the Python ints give (the samplers' path)."""
    s = NoiseSchedule.linear(T=100, rescale=True)
    x_t, eps, z = draws(6, (4, 3), (4, 3), (4, 3))
    t, t_prev = torch.tensor([100, 60, 2, 35]), torch.tensor([80, 0, 1, 34])
    batched = ddim_step(s, x_t, t, t_prev, eps=eps, eta=0.7, noise=z)
    for row in range(4):
        one = ddim_step(s, x_t[row:row + 1], int(t[row]), int(t_prev[row]), eps=eps[row:row + 1], eta=0.7,
                        noise=z[row:row + 1])
        torch.testing.assert_close(batched[row:row + 1], one, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ timesteps
GRIDS = SPACINGS[:4]  # the spacings of T alone (spaced_timesteps); "karras" depends on the schedule's noise levels


def test_the_fifth_spacing_is_karras_and_belongs_to_respaced_only():
    assert SPACINGS == ("uniform", "trailing", "leading", "quadratic", "karras")
    with pytest.raises(ValueError, match="spacing must be one of 'uniform', 'trailing', 'leading', 'quadratic', got"):
        spaced_timesteps(100, 5, "karras")


@given(st.integers(1, 1000), st.data(), st.sampled_from(GRIDS))
def test_every_spacing_gives_num_steps_increasing_steps_of_1_to_T(T, data, spacing):
    num_steps = data.draw(st.integers(1, T))
    steps = spaced_timesteps(T, num_steps, spacing)
    assert steps.dtype == torch.long and steps.shape == (num_steps,)
    assert steps[0] >= 1 and steps[-1] <= T and (steps[1:] > steps[:-1]).all()
    if spacing != "leading":
        assert steps[-1] == T
    assert spaced_timesteps(T, T, spacing).tolist() == list(range(1, T + 1))


@given(st.integers(1, 1000), st.data())
def test_the_grids_are_the_published_ones(T, data):
    """In the lecture's 1-based steps (the codes' 0-based step + 1): trailing = Lin et al. (2024) / diffusers'
    round(arange(T, 0, -T / S)) - 1, here in exact arithmetic (a float arange can land a tie such as 19.5 on
    19.4999...); leading = DDIM's range(0, T, T // S) (its first S); uniform = trailing."""
    S = data.draw(st.integers(1, T))
    diffusers = [round(Fraction(T) - Fraction(j * T, S)) - 1 for j in range(S)]  # 0-based; round: half to even
    trailing = sorted(step + 1 for step in diffusers)
    assert spaced_timesteps(T, S, "trailing").tolist() == trailing
    assert spaced_timesteps(T, S, "uniform").tolist() == trailing
    assert spaced_timesteps(T, S, "leading").tolist() == [s + 1 for s in range(0, T, T // S)][:S]


def test_quadratic_steps():
    """round(T (k / S)^2), k = 1..S, floored at k where S^2 > T would repeat steps."""
    assert spaced_timesteps(1000, 10, "quadratic").tolist() == [10, 40, 90, 160, 250, 360, 490, 640, 810, 1000]
    assert spaced_timesteps(1000, 4, "uniform").tolist() == [250, 500, 750, 1000]
    steps = spaced_timesteps(1000, 100, "quadratic")
    assert steps[:10].tolist() == list(range(1, 11)) and steps[-1] == 1000  # 1000 (k/100)^2 < k for k < 10
    assert steps[-2] == round(1000 * 0.99**2)


def test_the_sampler_visits_the_spacings_steps_and_calls_the_model_at_training_steps():
    """sample(..., sampler="ddim", num_steps=S, spacing=...) calls the model at the chosen training steps from the
    top down, once each, and equals DDIM's loop written here on the respaced schedule (eq. 12, eta = 0)."""
    base = NoiseSchedule.linear()
    exact = mixture_eps_model(MIX2, base)
    x_T = torch.randn(32, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    for spacing in SPACINGS:
        calls = []

        def model(x, t, calls=calls):
            calls.append(int(t[0]))
            assert (t == t[0]).all() and t.dtype == torch.long
            return exact(x, t)

        x = sample(model, base, (32, 2), sampler="ddim", num_steps=8, spacing=spacing, x_T=x_T)
        steps = karras_timesteps(base, 8) if spacing == "karras" else spaced_timesteps(1000, 8, spacing)
        assert calls == steps.flip(0).tolist(), spacing
        ab = base.alpha_bars[torch.cat([torch.zeros(1, dtype=torch.long), steps])]
        y = x_T
        for i in range(8, 0, -1):
            eps = exact(y, steps[i - 1].expand(32))
            y = ab[i - 1].sqrt() * (y - (1 - ab[i]).sqrt() * eps) / ab[i].sqrt() + (1 - ab[i - 1]).sqrt() * eps
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)


def test_eta_one_at_full_length_is_ddpm_with_the_posterior_variance():
    """At every step of the schedule eta = 1 is DDPM's posterior step, so from one x_T and one generator the two
    samplers draw the same noise and return the same x0; DDPM's sampler takes beta_tilde_2 at t = 1 where
    beta_tilde_1 = 0, and adds no noise there, so the two agree to round-off."""
    s = NoiseSchedule.linear(T=60, rescale=True)
    model = mixture_eps_model(MIX2, s)
    x_T = torch.randn(16, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    ddim = sample(model, s, (16, 2), sampler="ddim", eta=1.0, x_T=x_T, generator=torch.Generator().manual_seed(1))
    ddpm = sample(model, s, (16, 2), sampler="ddpm", variance="posterior", x_T=x_T,
                  generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ddim, ddpm, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------------- inversion
def round_trip_error(num_steps, fixed_point_iterations=0, spacing="uniform"):
    """||decode(invert(x0)) - x0|| / ||x0|| over 1,000 samples of the 2-D mixture, DDPM's schedule, exact eps."""
    s = NoiseSchedule.linear()
    model = mixture_eps_model(MIX2, s)
    x0 = MIX2.sample(1000, generator=torch.Generator().manual_seed(0))
    x_T = ddim_invert(model, s, x0, num_steps=num_steps, spacing=spacing,
                      fixed_point_iterations=fixed_point_iterations)
    back = sample(model, s, x0.shape, sampler="ddim", num_steps=num_steps, spacing=spacing, x_T=x_T, dtype=F64)
    return ((back - x0).norm() / x0.norm()).item()


def test_inversion_reconstructs_x0_with_the_exact_eps():
    """The issue's target: relative error below 1e-3 at 100 steps. DDIM's own inversion reuses each step's eps at
    its start, which the decoding does not, so its round trip is first order in the step: measured 2.8e-1, 2.0e-1,
    8.7e-2, 5.4e-2, 2.3e-3 at 10, 20, 50, 100, 1000 steps (points near the boundary between two components flow
    into the other one at few steps). Solving each step's implicit equation by 2 fixed-point iterations reaches
    the target at 100 steps: measured 7.2e-4 (3 iterations: 2.3e-4; 1000 steps, 2 iterations: 4.8e-7). Float64 and
    the exact eps: deterministic numbers, so the bounds are the measurements with a margin of 1.4 to 2."""
    plain = [round_trip_error(n) for n in (10, 100, 1000)]
    assert plain[0] > plain[1] > plain[2] and plain[2] < 5e-3 and plain[1] < 0.1, plain
    assert round_trip_error(100, fixed_point_iterations=2) < 1e-3
    assert round_trip_error(100, fixed_point_iterations=3) < 5e-4
    quadratic = [round_trip_error(30, fixed_point_iterations=k, spacing="quadratic") for k in (0, 3)]
    assert quadratic[1] < quadratic[0], quadratic


def test_inversion_calls_the_model_at_the_start_of_each_step():
    """Step i-1 -> i asks eps at x_{i-1} and training step timesteps[i-1] (timesteps[1] for the first, from the
    data); each fixed-point iteration asks it at the step's end, timesteps[i]."""
    s = NoiseSchedule.linear()
    exact = mixture_eps_model(MIX2, s)
    for k, expected in ((0, [250, 250, 500, 750]), (1, [250, 250, 250, 500, 500, 750, 750, 1000])):
        calls = []

        def model(x, t, calls=calls):
            calls.append(int(t[0]))
            return exact(x, t)

        ddim_invert(model, s, MIX2.sample(8, generator=torch.Generator().manual_seed(0)), num_steps=4,
                    fixed_point_iterations=k)
        assert calls == expected


# ----------------------------------------------------------------------------------------------- slerp
def test_slerp_endpoints_norms_and_angles():
    """alpha = 0, 1 give x_a, x_b; between two rows of equal norm slerp keeps that norm, and its angle to x_a is
    alpha theta (constant angular speed), theta the angle between x_a and x_b; rows of (B, C, H, W) separately."""
    x_a, x_b = draws(0, (5, 1, 4, 4), (5, 1, 4, 4))
    x_b = x_b * (x_a.flatten(1).norm(dim=1) / x_b.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)  # equal norms
    torch.testing.assert_close(slerp(x_a, x_b, 0.0), x_a, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(slerp(x_a, x_b, 1.0), x_b, rtol=1e-12, atol=1e-12)

    def angle(u, v):
        u, v = u.flatten(1), v.flatten(1)
        return torch.arccos((u * v).sum(1) / (u.norm(dim=1) * v.norm(dim=1)))

    theta = angle(x_a, x_b)
    for alpha in (0.1, 0.5, 0.8):
        x = slerp(x_a, x_b, alpha)
        torch.testing.assert_close(x.flatten(1).norm(dim=1), x_a.flatten(1).norm(dim=1), rtol=1e-12, atol=0)
        torch.testing.assert_close(angle(x_a, x), alpha * theta, rtol=1e-9, atol=1e-9)
    per_row = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=F64)
    rows = slerp(x_a, x_b, per_row)
    for row, alpha in enumerate(per_row.tolist()):
        torch.testing.assert_close(rows[row], slerp(x_a, x_b, alpha)[row], rtol=1e-12, atol=1e-12)
    parallel = slerp(x_a, 2 * x_a, 0.25)  # theta = 0: the linear interpolation, 1.25 x_a
    torch.testing.assert_close(parallel, 1.25 * x_a, rtol=1e-12, atol=1e-12)


def test_slerp_keeps_gaussian_noise_typical_where_lerp_does_not():
    """Two independent x_T in D = 4096: norms about sqrt(D) = 64; the linear midpoint's is about sqrt(D / 2) = 45
    (standard deviation about 0.7 for both), slerp's stays near 64."""
    x_a, x_b = draws(1, (4, 4096), (4, 4096))
    mid = slerp(x_a, x_b, 0.5).norm(dim=1)
    assert ((mid - 64).abs() < 4).all() and (((x_a + x_b) / 2).norm(dim=1) < 50).all()


# ------------------------------------------------------------------------------- registry and arguments
def test_ddim_is_registered():
    """The registry's Gaussian test (test_sampling.py) runs "ddim" at its default eta = 0; `stochastic` says it can
    draw noise (eta > 0)."""
    assert SAMPLERS["ddim"].defaults == {"eta": 0.0} and SAMPLERS["ddim"].stochastic
    assert set(SAMPLERS["ddim"].options) == {"eta"} and SAMPLERS["ddim"].options["eta"].help


def test_arguments_are_checked_and_named():
    s = NoiseSchedule.linear(T=30, rescale=True)
    model = mixture_eps_model(MIX2, s)
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        sample(model, s, (4, 2), sampler="ddim", eta=1.5)
    with pytest.raises(TypeError, match="eta must be a number"):
        ddim_sample(model, s, torch.zeros(4, 2), eta="0")
    with pytest.raises(ValueError, match=r"eta must lie in \[0, 1\]"):
        ddim_sample(model, s, torch.zeros(4, 2), eta=-0.1)
    with pytest.raises(TypeError, match="got an unexpected keyword argument 'prediction'"):
        ddim_sample(model, s, torch.zeros(4, 2), prediction="x0")  # an x0-network goes through as_eps_model
    with pytest.raises(ValueError, match="spacing must be one of"):
        sample(model, s, (4, 2), sampler="ddim", num_steps=5, spacing="linspace")
    with pytest.raises(ValueError, match="spacing must be one of"):
        spaced_timesteps(30, 5, "quad")
    with pytest.raises(ValueError, match="num_steps must be <= T=30"):
        ddim_invert(model, s, torch.zeros(4, 2), num_steps=31)
    with pytest.raises(ValueError, match="fixed_point_iterations must be >= 0"):
        ddim_invert(model, s, torch.zeros(4, 2), fixed_point_iterations=-1)
    with pytest.raises(ValueError, match="x0 must have shape"):
        ddim_invert(model, s, torch.zeros(2), num_steps=5)
    with pytest.raises(ValueError, match="x0 must be a floating tensor"):
        ddim_invert(model, s, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="x_T has shape"):
        sample(model, s, (4, 2), sampler="ddim", x_T=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="x_T must be a torch.Tensor"):
        ddim_sample(model, s, (4, 2))  # x_T, not a shape
    with pytest.raises(ValueError, match="either noise .* or generator"):
        ddim_step(s, torch.zeros(4, 2), 5, 4, eps=torch.zeros(4, 2), eta=0.5, noise=torch.zeros(4, 2),
                  generator=torch.Generator())
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="alpha must lie in"):
        slerp(x, x, 1.5)
    with pytest.raises(ValueError, match="alpha must lie in"):
        slerp(x, x, torch.tensor([0.0, 0.5, 2.0]))
    with pytest.raises(ValueError, match="alpha must be a float or a floating"):
        slerp(x, x, torch.zeros(2))
    with pytest.raises(ValueError, match="x_a and x_b must have the same shape"):
        slerp(x, torch.randn(3, 3), 0.5)
    with pytest.raises(ValueError, match="no zero rows"):
        slerp(x, torch.zeros(3, 2), 0.5)
    with pytest.raises(TypeError, match="x_b must be a torch.Tensor"):
        slerp(x, [1.0, 2.0], 0.5)
