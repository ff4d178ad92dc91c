"""Lecture 1: noise schedules. References are computed independently with numpy / plain Python."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.checks import check_timestep
from ddpm_scratch.schedules import (
    SPACINGS,
    NoiseSchedule,
    karras_sigmas,
    karras_timesteps,
    lookup,
    respaced,
    spaced_timesteps,
)

F64 = torch.float64

betas_lists = st.lists(st.floats(1e-5, 0.5), min_size=1, max_size=60)


def test_linear_schedule_matches_ddpm_paper():
    s = NoiseSchedule.linear()
    assert s.T == 1000 and s.betas.shape == (1001,) and s.betas.dtype == torch.float64
    assert s.betas[0] == 0 and s.alpha_bars[0] == 1
    assert s.betas[1].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    reference = np.prod(1 - np.linspace(1e-4, 0.02, 1000))
    assert s.alpha_bars[-1].item() == pytest.approx(reference, rel=1e-10)
    assert 3.5e-5 < s.alpha_bars[-1].item() < 4.5e-5  # "alpha_bar_T ~ 4e-5" (DDPM)


def test_cosine_schedule_follows_its_definition_until_clipping():
    T, s_off = 1000, 0.008
    s = NoiseSchedule.cosine(T=T, s=s_off)
    f = [math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected = np.array(f) / f[0]
    clipped = (s.betas >= 0.999 - 1e-12).nonzero()
    first_clipped = int(clipped[0]) if len(clipped) else T + 1
    np.testing.assert_allclose(s.alpha_bars[:first_clipped].numpy(), expected[:first_clipped], rtol=1e-9)
    assert (s.betas[1:] <= 0.999).all()
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()


@given(betas_lists)
def test_from_betas_fields_match_their_definitions(betas):
    s = NoiseSchedule.from_betas(betas)
    assert s.T == len(betas)
    alpha_bar, expected = 1.0, [1.0]
    for b in betas:
        alpha_bar *= 1 - b
        expected.append(alpha_bar)
    np.testing.assert_allclose(s.alpha_bars.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(s.alphas.numpy(), [1.0] + [1 - b for b in betas])
    # beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, and 0 <= beta_tilde_t <= beta_t
    for t in range(1, s.T + 1):
        bt = (1 - expected[t - 1]) / (1 - expected[t]) * betas[t - 1]
        assert s.posterior_variances[t].item() == pytest.approx(bt, rel=1e-9, abs=1e-300)
        assert 0 <= s.posterior_variances[t] <= s.betas[t] * (1 + 1e-12)
    assert s.posterior_variances[1] == 0


@given(betas_lists)
def test_snr_is_decreasing_and_infinite_at_the_data(betas):
    s = NoiseSchedule.from_betas(betas)
    snr = s.snr(torch.arange(s.T + 1))
    assert math.isinf(snr[0].item())
    assert (snr[1:] < snr[:-1]).all()
    assert s.snr(1).item() == pytest.approx((1 - betas[0]) / betas[0], rel=1e-9)


def test_reverse_variances_choices():
    s = NoiseSchedule.linear(T=50)
    assert torch.equal(s.reverse_variances("beta"), s.betas)
    post = s.reverse_variances("posterior")
    assert post[1] == s.posterior_variances[2] and torch.equal(post[2:], s.posterior_variances[2:])
    custom = torch.full((51,), 0.1, dtype=torch.float64)
    assert torch.equal(s.reverse_variances(custom), custom)
    with pytest.raises(ValueError, match="variance"):
        s.reverse_variances("small")
    with pytest.raises(ValueError, match="variance"):
        s.reverse_variances(torch.ones(10))


@pytest.mark.parametrize("betas", [[0.1, 1.0], [0.0, 0.1], [-0.1], [0.2, float("nan")], [1.5]])
def test_betas_outside_the_open_unit_interval_are_rejected(betas):
    with pytest.raises(ValueError, match=r"betas\[1..T\].*\(0, 1\)"):
        NoiseSchedule.from_betas(betas)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="betas\\[0\\]"):
        NoiseSchedule(torch.tensor([0.1, 0.2], dtype=torch.float64))
    with pytest.raises(ValueError, match="T must be"):
        NoiseSchedule.linear(T=0)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule.linear(beta_start=0.0)
    with pytest.raises(ValueError, match="max_beta"):
        NoiseSchedule.cosine(max_beta=1.0)
    with pytest.raises(TypeError, match="betas"):
        NoiseSchedule([0.0, 0.1])  # type: ignore[arg-type]


def test_check_timestep():
    assert check_timestep(3, 10, batch=4).tolist() == [3, 3, 3, 3]
    assert check_timestep(torch.tensor([1, 10]), 10).tolist() == [1, 10]
    assert check_timestep(0, 10, low=0).item() == 0
    with pytest.raises(ValueError, match=r"t must lie in 1..T=10"):
        check_timestep(0, 10)
    with pytest.raises(ValueError, match=r"t must lie in 1..T=10"):
        check_timestep(torch.tensor([5, 11]), 10)
    with pytest.raises(TypeError, match="integer"):
        check_timestep(torch.tensor([0.5]), 10)
    with pytest.raises(TypeError, match="t must be"):
        check_timestep(2.0, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch"):
        check_timestep(torch.tensor([1, 2, 3]), 10, batch=2)
    with pytest.raises(ValueError, match="shape"):
        check_timestep(torch.ones(2, 2, dtype=torch.long), 10)


@given(st.integers(1, 5), st.integers(1, 4))
def test_lookup_shape_dtype_and_values(batch, extra_dims):
    s = NoiseSchedule.linear(T=20)
    like = torch.zeros(batch, *([3] * extra_dims), dtype=torch.float32)
    t = torch.randint(1, 21, (batch,))
    coef = lookup(s.alpha_bars, t, like)
    assert coef.shape == (batch,) + (1,) * extra_dims and coef.dtype == torch.float32
    assert torch.allclose(coef.flatten(), s.alpha_bars[t].float())
    scalar = lookup(s.alpha_bars, 7, like)  # an int t gives one coefficient for the whole batch
    assert scalar.shape == (1,) * like.dim() and scalar.item() == pytest.approx(s.alpha_bars[7].item(), rel=1e-6)
    for bad in (-1, 21):
        with pytest.raises(ValueError, match="t must lie in 0..T=20"):
            lookup(s.alpha_bars, bad, like)


def test_rescaled_linear_schedule_reaches_noise_for_any_T():
    """rescale=True multiplies both ends by 1000/T (Nichol & Dhariwal): alpha_bar_T stays near DDPM's 4e-5."""
    for T in [50, 200, 1000]:
        s = NoiseSchedule.linear(T, rescale=True)
        assert s.betas[1].item() == pytest.approx(1e-4 * 1000 / T) and s.betas[-1].item() == pytest.approx(20 / T)
        assert 0 < s.alpha_bars[-1].item() < 1e-4
    assert torch.equal(NoiseSchedule.linear(1000, rescale=True).betas, NoiseSchedule.linear(1000).betas)
    assert NoiseSchedule.linear(50).alpha_bars[-1].item() > 0.5  # without it a short chain never reaches noise
    with pytest.raises(ValueError, match="too small"):
        NoiseSchedule.linear(20, rescale=True)


@given(st.integers(2, 300), st.data())
def test_respace_keeps_alpha_bar_at_the_kept_steps(T, data):
    s = NoiseSchedule.cosine(T)
    steps = sorted(data.draw(st.sets(st.integers(1, T), min_size=1, max_size=T)))
    r = s.respace(steps)
    assert r.T == len(steps) and r.timesteps.tolist() == [0, *steps]
    np.testing.assert_allclose(r.alpha_bars[1:].numpy(), s.alpha_bars[steps].numpy(), rtol=1e-9)
    # beta'_k is the variance of the jump s_{k-1} -> s_k: 1 - prod of the alphas in between
    bounds = [0, *steps]
    for k in range(1, len(bounds)):
        jump = 1 - np.prod(s.alphas[bounds[k - 1] + 1: bounds[k] + 1].numpy())
        assert r.betas[k].item() == pytest.approx(jump, rel=1e-9)


def test_respacing_twice_composes_the_timesteps_and_checks_its_argument():
    s = NoiseSchedule.linear(100)
    twice = s.respace(spaced_timesteps(100, 20)).respace([2, 10, 20])
    assert twice.timesteps.tolist() == [0, 10, 50, 100]
    np.testing.assert_allclose(twice.alpha_bars.numpy(), s.alpha_bars[[0, 10, 50, 100]].numpy(), rtol=1e-9)
    for bad in ([3, 3], [0, 5], [5, 101], [], [[1, 2]], [1.0, 2.0]):
        with pytest.raises(ValueError, match="timesteps"):
            s.respace(bad)


def test_spaced_timesteps_are_even_and_end_at_T():
    assert spaced_timesteps(1000, 4).tolist() == [250, 500, 750, 1000]
    assert spaced_timesteps(10, 10).tolist() == list(range(1, 11))
    assert spaced_timesteps(10, 3).tolist() == [3, 7, 10]
    with pytest.raises(ValueError, match="num_steps"):
        spaced_timesteps(10, 11)


def test_to_moves_every_array_and_keeps_the_values():
    s = NoiseSchedule.cosine(30).respace([5, 10, 30])
    moved = s.to("cpu")
    for name in ("betas", "alphas", "alpha_bars", "posterior_variances", "timesteps"):
        assert torch.equal(getattr(moved, name), getattr(s, name))
    assert torch.equal(moved.reverse_variances("posterior"), s.reverse_variances("posterior"))


# ------------------------------------------------------------------------------------------- EDM's grid
def test_karras_sigmas_follow_eq_5():
    """sigma_i^(1/rho) runs evenly from sigma_max^(1/rho) to sigma_min^(1/rho); rho = 1 is linspace."""
    sigmas = karras_sigmas(0.002, 80.0, 18)
    assert sigmas.shape == (18,) and sigmas.dtype == F64
    assert math.isclose(sigmas[0].item(), 80.0, rel_tol=1e-12) and math.isclose(sigmas[-1].item(), 0.002,
                                                                                  rel_tol=1e-12)
    roots = sigmas ** (1 / 7)
    assert torch.allclose(roots.diff(), torch.full((17,), (0.002 ** (1 / 7) - 80 ** (1 / 7)) / 17, dtype=F64))
    assert torch.allclose(karras_sigmas(1.0, 3.0, 5, rho=1.0), torch.tensor([3.0, 2.5, 2.0, 1.5, 1.0], dtype=F64))
    assert karras_sigmas(1.0, 3.0, 1).shape == (1,) and math.isclose(karras_sigmas(1.0, 3.0, 1).item(), 3.0)


@pytest.mark.parametrize("t_max", [None, 1000, 437])
@pytest.mark.parametrize("num_steps", [1, 2, 5, 10, 18, 50])
def test_karras_timesteps_are_the_nearest_training_steps(num_steps, t_max):
    """Each level of eq. 5 between sigma_EDM at steps 1 and t_max (T by default) goes to the training step nearest in
    log sigma, found here by scanning all steps 1..t_max."""
    schedule = NoiseSchedule.linear()
    top = t_max or 1000
    ab = schedule.alpha_bars[1:top + 1]
    log_sigma = (((1 - ab) / ab).sqrt()).log().tolist()
    steps = karras_timesteps(schedule, num_steps, t_max=t_max).tolist()
    targets = karras_sigmas(math.exp(log_sigma[0]), math.exp(log_sigma[-1]), num_steps).log().tolist()[::-1]
    nearest = [min(range(top), key=lambda j, v=v: abs(log_sigma[j] - v)) + 1 for v in targets]
    crowded = len(set(nearest)) < num_steps  # 50 levels below step 437: several on one step (next test)
    assert crowded == (num_steps == 50 and t_max == 437)
    if crowded:  # the nearest steps start 1, 1, 2, 2, 3, ..., 9, 11: pushed apart into 1..10, the rest kept
        assert steps == list(range(1, 11)) + nearest[10:] and nearest[9:11] == [9, 11]
    else:
        assert steps == nearest
    assert steps[-1] == top and (num_steps == 1 or steps[0] == 1)


def test_karras_timesteps_stay_distinct_when_levels_crowd():
    """With many levels several fall on one step (near sigma_min the levels are closer than the steps); they are
    pushed apart, staying increasing within 1..T (1..t_max), and N = T gives every step."""
    schedule = NoiseSchedule.linear()
    for n in (300, 700, 1000):
        steps = karras_timesteps(schedule, n)
        assert len(steps) == n and steps[0] == 1 and steps[-1] == 1000 and (steps.diff() > 0).all()
    assert karras_timesteps(schedule, 1000).tolist() == list(range(1, 1001))
    assert karras_timesteps(schedule, 200, t_max=200).tolist() == list(range(1, 201))
    steps = karras_timesteps(schedule, 150, t_max=200)
    assert len(steps) == 150 and steps[0] == 1 and steps[-1] == 200 and (steps.diff() > 0).all()


def test_karras_arguments_are_checked():
    s = NoiseSchedule.linear(T=30, rescale=True)
    with pytest.raises(ValueError, match="num_steps must be <= T=30"):
        karras_timesteps(s, 31)
    with pytest.raises(ValueError, match="num_steps must be <= t_max=10, got 11"):
        karras_timesteps(s, 11, t_max=10)
    with pytest.raises(ValueError, match="t_max must be <= T=30"):
        karras_timesteps(s, 5, t_max=31)
    with pytest.raises(ValueError, match="num_steps must be >= 1"):
        karras_timesteps(s, 0)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        karras_timesteps("linear", 5)
    with pytest.raises(ValueError, match="rho must lie in"):
        karras_sigmas(0.1, 1.0, 5, rho=0.0)
    with pytest.raises(ValueError, match="sigma_min must lie in"):
        karras_sigmas(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="sigma_max must lie in"):
        karras_sigmas(2.0, 1.0, 5)


# ------------------------------------------------------------------------------------------- respaced
def test_respaced_picks_the_spacings_steps():
    """num_steps None: the schedule itself; else the respacing to spaced_timesteps' steps, or karras_timesteps'
    for "karras" (the five SPACINGS)."""
    s = NoiseSchedule.linear()
    assert respaced(s, None) is s and respaced(s, None, "karras") is s
    for spacing in SPACINGS:
        expected = karras_timesteps(s, 10) if spacing == "karras" else spaced_timesteps(1000, 10, spacing)
        r = respaced(s, 10, spacing)
        assert r.timesteps.tolist() == [0, *expected.tolist()], spacing
        np.testing.assert_allclose(r.alpha_bars.numpy(), s.alpha_bars[r.timesteps].numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="spacing must be one of 'uniform', 'trailing', 'leading', 'quadratic', "
                                         "'karras', got 'linspace'"):
        respaced(s, 10, "linspace")


@pytest.mark.parametrize("spacing", ["uniform", "trailing", "quadratic", "karras"])
def test_respaced_from_t_start_picks_steps_in_1_to_t_start_ending_there(spacing):
    """A start part-way (SDEdit): the steps are the spacing's over 1..t_start, the last index stands for t_start
    (where x_T is); without num_steps, every step 1..t_start."""
    s = NoiseSchedule.linear()
    r = respaced(s, 10, spacing, t_start=437)
    expected = karras_timesteps(s, 10, t_max=437) if spacing == "karras" else spaced_timesteps(437, 10, spacing)
    assert r.timesteps.tolist() == [0, *expected.tolist()] and r.timesteps[-1] == 437
    np.testing.assert_allclose(r.alpha_bars.numpy(), s.alpha_bars[r.timesteps].numpy(), rtol=1e-12)
    every = respaced(s, None, spacing, t_start=437)
    assert every.timesteps.tolist() == list(range(438)) and every.T == 437
    np.testing.assert_allclose(every.betas.numpy(), s.betas[:438].numpy(), rtol=1e-9)


def test_respaced_from_t_start_checks_its_arguments():
    s = NoiseSchedule.linear(T=30, rescale=True)
    with pytest.raises(ValueError, match="spacing 'leading' picks steps that end at 16, below t_start=20"):
        respaced(s, 4, "leading", t_start=20)
    assert respaced(s, 20, "leading", t_start=20).timesteps.tolist() == list(range(21))  # every step: it ends there
    with pytest.raises(ValueError, match="t_start must lie in 1..T=30, got 31"):
        respaced(s, None, t_start=31)
    with pytest.raises(ValueError, match="t_start must be >= 1, got 0"):
        respaced(s, 5, t_start=0)
    with pytest.raises(TypeError, match="t_start must be an int"):
        respaced(s, 5, t_start=10.0)
    with pytest.raises(ValueError, match="num_steps must be <= t_start=20, got 21"):
        respaced(s, 21, t_start=20)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        respaced("linear", 5)
