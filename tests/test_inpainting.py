"""Inpainting by replacement and RePaint's resampling (applications.inpainting, applications.masks)."""

from itertools import pairwise

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.applications.inpainting import inpaint, repaint_indices
from ddpm_scratch.applications.masks import centre_mask, check_mask, half_mask, random_box_masks
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture, mixture_eps_model


def stand_in(x_t, t):
    """Any deterministic eps-model: the known pixels must come back whatever it predicts."""
    return torch.tanh(x_t) * (t.float()[:, None, None, None] / 1000)


@pytest.mark.parametrize("jumps,num_steps", [(0, None), (0, 20), (2, 30)])
def test_known_pixels_come_back_exactly(jumps, num_steps):
    schedule = NoiseSchedule.linear(100)
    known = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mask = centre_mask(3, 8, 8, 4)
    x = inpaint(stand_in, schedule, known, mask, jumps=jumps, jump_length=5, num_steps=num_steps,
                generator=torch.Generator().manual_seed(0))
    assert x.shape == known.shape
    assert (x - known)[mask.expand_as(known)].abs().max().item() == 0.0  # the "max abs difference 0"
    assert (x - known)[~mask.expand_as(known)].abs().max().item() > 0.1  # and the unknown pixels were generated


def test_resampling_loop_without_jump_points_is_algorithm_2_with_replacement():
    """jump_length > T/2 leaves RePaint's loop no index to jump from: it must then be, draw for draw, the registered
    DDPM sampler with the replacement hook (the jumps = 0 path)."""
    schedule = NoiseSchedule.linear(40)
    known = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    mask = half_mask(4, 4, 4, "top")
    plain = inpaint(stand_in, schedule, known, mask, jumps=0, generator=torch.Generator().manual_seed(3))
    looped = inpaint(stand_in, schedule, known, mask, jumps=3, jump_length=25,
                     generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(looped, plain, rtol=0, atol=1e-6)


@given(T=st.integers(2, 60), jumps=st.integers(0, 4), jump_length=st.integers(1, 12))
def test_repaint_indices_walk_down_with_jumps(T, jumps, jump_length):
    path = repaint_indices(T, jumps, jump_length)
    assert path[0] == T and path[-1] == 0
    assert all(abs(a - b) == 1 for a, b in pairwise(path))
    jump_points = [i for i in range(jump_length, T - jump_length + 1, jump_length)]
    downs = sum(b < a for a, b in pairwise(path))
    ups = sum(b > a for a, b in pairwise(path))
    assert ups == jumps * jump_length * len(jump_points)  # each jump point: `jumps` climbs of jump_length
    assert downs == T + ups
    assert max(path) == T


def correlated_gaussian(rho):
    return GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), torch.tensor([[[1.0, rho], [rho, 1.0]]]))


def test_replacement_is_biased_and_resampling_cuts_the_bias():
    """x ~ N(0, [[1, rho], [rho, 1]]) with the exact eps, x1 = a known: the truth is x2 | x1 = a ~ N(rho a, 1 -
    rho^2). Plain replacement's mean of x2 misses rho a by many standard errors; RePaint's resampling brings it
    measurably closer (the difference of the two biases is many standard errors of a difference)."""
    rho, a, n = 0.95, 1.5, 4000
    schedule = NoiseSchedule.linear(1000, rescale=True)
    eps_model = mixture_eps_model(correlated_gaussian(rho), schedule)
    known = torch.tensor([a, 0.0]).expand(n, 2).clone()
    mask = torch.tensor([True, False]).expand(n, 2)
    truth = rho * a
    biases, errors = [], []
    for jumps in (0, 4):
        x2 = inpaint(eps_model, schedule, known, mask, jumps=jumps, jump_length=10, num_steps=250,
                     generator=torch.Generator().manual_seed(jumps))[:, 1]
        biases.append(x2.mean().item() - truth)
        errors.append(x2.std().item() / n**0.5)
    plain, resampled = biases
    assert plain < -6 * errors[0], f"replacement should fall short of E[x2 | x1] = {truth}: bias {plain:.4f}"
    gap = (errors[0] ** 2 + errors[1] ** 2) ** 0.5
    assert abs(resampled) < abs(plain) - 6 * gap, f"RePaint's bias {resampled:.4f} vs replacement's {plain:.4f}"


def test_masks():
    assert centre_mask(2, 8, 8, 4).sum().item() == 2 * (64 - 16)
    for side in ("left", "right", "top", "bottom"):
        assert half_mask(1, 8, 6, side).sum().item() == 24
    masks = random_box_masks(500, 8, 8, min_size=2, max_size=4, generator=torch.Generator().manual_seed(0))
    unknown = (~masks).sum(dim=(1, 2, 3))
    assert masks.shape == (500, 1, 8, 8) and masks.dtype == torch.bool
    assert unknown.min().item() >= 4 and unknown.max().item() <= 16
    # each side length uniform on {2, 3, 4}: the unknown area's mean is E[h] E[w] = 9 (sd of the area <= 4.2)
    assert abs(unknown.float().mean().item() - 9) < 4 * 4.2 / 500**0.5


def test_bad_input_is_named():
    schedule = NoiseSchedule.linear(10)
    known = torch.zeros(2, 1, 4, 4)
    with pytest.raises(TypeError, match="mask must be a bool"):
        inpaint(stand_in, schedule, known, torch.ones(2, 1, 4, 4))
    with pytest.raises(ValueError, match="mask must have shape"):
        check_mask(torch.ones(2, 1, 4, 5, dtype=torch.bool), known)
    with pytest.raises(ValueError, match="jump_length must be smaller"):
        inpaint(stand_in, schedule, known, centre_mask(2, 4, 4, 2), jumps=1, jump_length=10)
    with pytest.raises(ValueError, match="jumps"):
        inpaint(stand_in, schedule, known, centre_mask(2, 4, 4, 2), jumps=-1)
    with pytest.raises(ValueError, match="size must be at most"):
        centre_mask(1, 4, 4, 5)
