"""SDEdit (applications.sdedit) and ILVR (applications.ilvr): both steer a sampler through its extension points."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.applications.ilvr import ilvr, low_pass
from ddpm_scratch.applications.sdedit import sdedit, stroke_painting
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture, mixture_eps_model


def stand_in(x_t, t):
    return torch.tanh(x_t) * (t.float().view(-1, *[1] * (x_t.dim() - 1)) / 1000)


def test_sdedit_starts_from_q_of_x_t0_given_the_guide():
    """The first network call sees x_t0 at step t0: across n rows its mean is sqrt(alpha_bar_t0) guide and its
    variance 1 - alpha_bar_t0 (tolerances: 5 standard errors of a mean and of a variance of n normals)."""
    schedule = NoiseSchedule.cosine(200)
    t0, n = 77, 20000
    guide = torch.full((n, 3), 0.6)
    seen = []

    def recording(x_t, t):
        seen.append((x_t.clone(), t.clone()))
        return torch.zeros_like(x_t)

    sdedit(recording, schedule, guide, t0, sampler="ddim", num_steps=5, generator=torch.Generator().manual_seed(0))
    x_t0, t = seen[0]
    assert (t == t0).all()
    abar = schedule.alpha_bars[t0].item()
    mean, var = x_t0.mean(0), x_t0.var(0)
    assert (mean - abar**0.5 * 0.6).abs().max().item() < 5 * ((1 - abar) / n) ** 0.5
    assert (var - (1 - abar)).abs().max().item() < 5 * (1 - abar) * (2 / n) ** 0.5
    assert len(seen) == 5


def test_sdedit_trades_faithfulness_for_realism_in_t0():
    """Exact eps of N(0, I) data and a guide far from it (all 3): the output's distance to the guide grows with t0,
    and at t0 = T the output is a sample of the data (mean 0, variance 1, within 5 standard errors)."""
    schedule = NoiseSchedule.linear(1000, rescale=True)
    normal = GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), torch.eye(2)[None])
    eps_model = mixture_eps_model(normal, schedule)
    n = 4000
    guide = torch.full((n, 2), 3.0)
    distances = []
    for t0 in (50, 300, 1000):
        x0 = sdedit(eps_model, schedule, guide, t0, sampler="ddim", num_steps=50,
                    generator=torch.Generator().manual_seed(t0))
        distances.append((x0 - guide).norm(dim=1).mean().item())
    assert distances[0] < distances[1] < distances[2]
    assert abs(x0.mean().item()) < 5 / (2 * n) ** 0.5
    assert abs(x0.var().item() - 1) < 5 * (2 / (2 * n)) ** 0.5


def test_sdedit_checks_t0():
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="t0"):
        sdedit(stand_in, schedule, torch.zeros(2, 3), 0)
    with pytest.raises(ValueError):
        sdedit(stand_in, schedule, torch.zeros(2, 3), 11)


def test_stroke_painting_is_flat_blocks_of_few_levels():
    x0 = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    painted = stroke_painting(x0, block=2, levels=3)
    assert painted.shape == x0.shape
    assert set(painted.unique().tolist()) <= {-1.0, 0.0, 1.0}
    torch.testing.assert_close(low_pass(painted, 2), painted)  # constant on 2 x 2 blocks
    torch.testing.assert_close(stroke_painting(painted, block=2, levels=3), painted)  # painting a painting: itself


@given(factor=st.sampled_from([1, 2, 4]), batch=st.integers(1, 3), channels=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_low_pass_is_a_projection_keeping_block_means(factor, batch, channels, seed):
    x = torch.randn(batch, channels, 8, 8, generator=torch.Generator().manual_seed(seed))
    phi = low_pass(x, factor)
    torch.testing.assert_close(low_pass(phi, factor), phi)
    blocks = x.reshape(batch, channels, 8 // factor, factor, 8 // factor, factor).mean(dim=(3, 5))
    torch.testing.assert_close(phi[..., ::factor, ::factor], blocks)
    torch.testing.assert_close(low_pass(x - phi, factor), torch.zeros_like(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("sampler,num_steps", [("ddpm", None), ("ddim", 10), ("dpmpp_2m", 8)])
@pytest.mark.parametrize("factor", [2, 4])
def test_ilvr_sample_shares_the_reference_low_pass(sampler, num_steps, factor):
    schedule = NoiseSchedule.linear(100)
    reference = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    x0 = ilvr(stand_in, schedule, reference, factor, sampler=sampler, num_steps=num_steps,
              generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(low_pass(x0, factor), low_pass(reference, factor), atol=1e-5, rtol=0)
    assert (x0 - reference).abs().max().item() > 1e-2  # the details are the model's own


def test_ilvr_until_leaves_the_last_steps_free():
    schedule = NoiseSchedule.linear(100)
    reference = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    x0 = ilvr(stand_in, schedule, reference, 4, until=50, generator=torch.Generator().manual_seed(6))
    assert (low_pass(x0, 4) - low_pass(reference, 4)).abs().max().item() > 1e-3


def test_ilvr_checks_its_arguments():
    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="factor must divide"):
        ilvr(stand_in, schedule, torch.zeros(1, 1, 8, 8), 3)
    with pytest.raises(ValueError, match="until"):
        ilvr(stand_in, schedule, torch.zeros(1, 1, 8, 8), 2, until=11)
    assert math.isfinite(ilvr(stand_in, schedule, torch.zeros(1, 1, 8, 8), 8).sum().item())


def test_sdedit_takes_a_given_eps_and_a_generator_for_the_sampler():
    """noise= is q(x_t0 | guide)'s eps: the first network call sees exactly sqrt(abar) guide + sqrt(1 - abar) eps,
    while the generator still draws the sampler's own noise."""
    schedule = NoiseSchedule.linear(100)
    guide = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    seen = []

    def recording(x_t, t):
        seen.append(x_t.clone())
        return torch.zeros_like(x_t)

    t0 = 40
    sdedit(recording, schedule, guide, t0, noise=eps, generator=torch.Generator().manual_seed(2))
    abar = schedule.alpha_bars[t0].float()
    torch.testing.assert_close(seen[0], abar.sqrt() * guide + (1 - abar).sqrt() * eps)
