"""Lecture 1: noise schedules. References are computed independently with numpy / plain Python."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.checks import check_timestep
from ddpm_scratch.schedules import NoiseSchedule, lookup, spaced_timesteps

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
