"""Palette (ddpm_scratch.applications.palette): the tasks' corruptions and what tells them apart, the objective
against L_simple computed by hand from the same draws, the conditioned eps-model's input, sampling through
`sampling.sample`, and a quick end-to-end run of `ddpm-scratch apply palette`."""

from __future__ import annotations

import math

import pytest
import torch

import ddpm_scratch.machinery.palette_runs  # noqa: F401  (registers "palette" and "sr3")
from ddpm_scratch.applications.masks import HALVES, half_mask
from ddpm_scratch.applications.palette import (
    DENOISE_SIGMA,
    TASKS,
    Palette,
    conditional_inpaint,
    corrupt,
    palette_loss,
    translate,
)
from ddpm_scratch.machinery.applications import APPLICATIONS, RunSettings
from ddpm_scratch.machinery.data import load_digits
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(50, rescale=True)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def digits(n: int = 64) -> torch.Tensor:
    return load_digits("train")[0][:n]


def toy_network(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed eps-network of (x_t, source, mask) channels: every channel and t matter."""
    return 0.5 * x[:, :1] - 0.3 * x[:, 1:2] + 0.2 * x[:, 2:3] + t.float()[:, None, None, None] / 100


# ---------------------------------------------------------------------------------- the corruptions

@pytest.mark.parametrize("task", TASKS)
def test_each_task_gives_a_source_and_a_float_mask_of_the_batch(task):
    x0 = digits(16)
    source, mask = corrupt(x0, task, generator=gen())
    assert source.shape == x0.shape and mask.shape == (16, 1, 8, 8)
    assert mask.dtype == x0.dtype and set(mask.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("task", ["inpaint", "uncrop"])
def test_the_source_is_x0_on_known_pixels_and_0_elsewhere(task):
    x0 = digits(32) * 0.9 + 0.05  # no pixel of x0 is 0, so a 0 of the source is a hidden pixel
    source, mask = corrupt(x0, task, generator=gen(1))
    known = mask.bool().expand_as(x0)
    assert torch.equal(source[known], x0[known])
    assert torch.equal(source[~known], torch.zeros_like(source[~known]))


def test_inpainting_hides_one_box_of_2_to_4_pixels_a_side_per_image():
    _, mask = corrupt(digits(200), "inpaint", generator=gen(2))
    for m in mask[:, 0]:
        rows, cols = (m == 0).nonzero(as_tuple=True)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == height * width  # one filled rectangle
        assert 2 <= height <= 4 and 2 <= width <= 4


def test_uncropping_keeps_one_half_every_side_drawn():
    _, mask = corrupt(digits(200), "uncrop", generator=gen(3))
    halves = torch.stack([half_mask(1, 8, 8, side)[0] for side in HALVES]).float()  # (4, 1, 8, 8)
    which = [[torch.equal(m, h) for h in halves].index(True) for m in mask]  # each mask is one of the halves
    counts = torch.bincount(torch.tensor(which), minlength=4)
    # 200 draws of 4 equally likely sides: each count 50 +- 5 sd (sd = sqrt(200 * 1/4 * 3/4) = 6.1)
    assert (counts - 50).abs().max() < 5 * math.sqrt(200 * 0.25 * 0.75), counts


def test_denoising_adds_gaussian_noise_of_std_sigma_and_knows_no_pixel():
    x0 = digits(256)
    source, mask = corrupt(x0, "denoise", generator=gen(4))
    assert torch.equal(mask, torch.zeros_like(mask))
    noise = (source - x0) / DENOISE_SIGMA
    n = noise.numel()  # 16384 draws of N(0, 1): mean's sd 1/sqrt(n), std's sd about 1/sqrt(2n)
    assert abs(noise.mean().item()) < 5 / math.sqrt(n)
    assert abs(noise.std().item() - 1) < 5 / math.sqrt(2 * n)


def test_the_mask_alone_tells_the_tasks_apart():
    """No task label: the number of unknown pixels is 64 for denoising, 32 for uncropping, 4..16 for inpainting."""
    x0 = digits(100)
    unknown = {task: (1 - corrupt(x0, task, generator=gen(5))[1]).sum(dim=(1, 2, 3)) for task in TASKS}
    assert (unknown["denoise"] == 64).all() and (unknown["uncrop"] == 32).all()
    assert ((unknown["inpaint"] >= 4) & (unknown["inpaint"] <= 16)).all()


def test_corrupt_is_reproducible_and_checks_its_task():
    x0 = digits(8)
    for task in TASKS:
        a, b = corrupt(x0, task, generator=gen(6)), corrupt(x0, task, generator=gen(6))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="task"):
        corrupt(x0, "colorize", generator=gen())
    with pytest.raises(ValueError, match="x0"):
        corrupt(x0[0], "inpaint", generator=gen())


# ---------------------------------------------------------------------------------- the conditioned model

def test_the_wrapper_passes_x_t_source_and_mask_as_channels():
    seen = []

    def network(x, t):
        seen.append(x)
        return x[:, :1]

    x0 = digits(4)
    source, mask = corrupt(x0, "inpaint", generator=gen(7))
    x_t = torch.randn(4, 1, 8, 8, generator=gen(8))
    Palette(network, source, mask)(x_t, torch.full((4,), 3))
    torch.testing.assert_close(seen[0], torch.cat([x_t, source, mask], dim=1), rtol=0, atol=0)
    Palette(network, source, mask.bool())(x_t, torch.full((4,), 3))  # a bool mask is read as 0/1
    torch.testing.assert_close(seen[1], seen[0], rtol=0, atol=0)


def test_the_wrapper_checks_the_mask():
    source = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="mask"):
        Palette(toy_network, source, torch.ones(2, 8, 8))
    with pytest.raises(TypeError, match="mask"):
        Palette(toy_network, source, torch.ones(2, 1, 8, 8, dtype=torch.long))


# ---------------------------------------------------------------------------------- the objective

def test_the_objective_is_l_simple_of_the_network_conditioned_on_a_random_task():
    """Recomputed by hand from the same generator: task per example, each task's corruption, then t and eps, and
    the mean over examples and pixels of (eps - eps_theta(cat([x_t, source, mask]), t))^2."""
    x0 = digits(48)
    loss = palette_loss(toy_network, SCHEDULE, x0, generator=gen(9))
    g = gen(9)
    choice = torch.randint(3, (48,), generator=g)
    corrupted = [corrupt(x0, task, generator=g) for task in TASKS]
    source = torch.stack([corrupted[c][0][i] for i, c in enumerate(choice.tolist())])
    mask = torch.stack([corrupted[c][1][i] for i, c in enumerate(choice.tolist())])
    t = torch.randint(1, SCHEDULE.T + 1, (48,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    alpha_bar = SCHEDULE.alpha_bars.float()[t][:, None, None, None]
    x_t = alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps
    expected = (eps - toy_network(torch.cat([x_t, source, mask], dim=1), t)).pow(2).mean()
    torch.testing.assert_close(loss, expected)
    assert len(set(choice.tolist())) == 3  # the batch mixes the tasks


def test_the_objective_draws_tasks_uniformly_and_only_the_tasks_given():
    x0 = digits(300)
    masks = []

    def network(x, t):
        masks.append(x[:, 2:3])
        return x[:, :1]

    palette_loss(network, SCHEDULE, x0, generator=gen(10))
    unknown = (1 - masks[0]).sum(dim=(1, 2, 3))
    counts = torch.tensor([(unknown == 64).sum(), (unknown == 32).sum(), (unknown <= 16).sum()])
    assert counts.sum() == 300
    assert (counts - 100).abs().max() < 5 * math.sqrt(300 * (1 / 3) * (2 / 3)), counts  # 100 +- 5 sd each
    palette_loss(network, SCHEDULE, x0, tasks=("denoise",), generator=gen(11))
    assert torch.equal(masks[1], torch.zeros_like(masks[1]))
    with pytest.raises(ValueError, match="tasks"):
        palette_loss(network, SCHEDULE, x0, tasks=(), generator=gen())
    with pytest.raises(ValueError, match="tasks"):
        palette_loss(network, SCHEDULE, x0, tasks=("inpaint", "colorize"), generator=gen())


def test_the_objective_carries_gradients_to_the_network():
    from ddpm_scratch.nets import UNet

    net = UNet(in_channels=3, out_channels=1, base_channels=8, channel_mults=(1,), attention_resolutions=())
    palette_loss(net, SCHEDULE, digits(8), generator=gen(12)).backward()
    assert all(p.grad is not None for p in net.parameters())


# ---------------------------------------------------------------------------------- sampling

def test_translate_samples_the_conditioned_model_through_sample():
    x0 = digits(6)
    source, mask = corrupt(x0, "uncrop", generator=gen(13))
    got = translate(toy_network, SCHEDULE, source, mask, sampler="ddim", num_steps=5, generator=gen(14))
    expected = sample(Palette(toy_network, source, mask), SCHEDULE, x0.shape, sampler="ddim", num_steps=5,
                      generator=gen(14))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_conditional_inpaint_is_translate_of_the_known_pixels():
    x0 = digits(6)
    mask = half_mask(6, 8, 8, "top")
    garbage = torch.where(mask, x0, torch.full_like(x0, 7.0))  # what lies outside the mask is never read
    got = conditional_inpaint(toy_network, SCHEDULE, garbage, mask, sampler="ddim", num_steps=5, generator=gen(15))
    expected = translate(toy_network, SCHEDULE, x0 * mask, mask.float(), sampler="ddim", num_steps=5,
                         generator=gen(15))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match="mask"):
        conditional_inpaint(toy_network, SCHEDULE, x0, mask.float())


# ---------------------------------------------------------------------------------- the run

def test_a_quick_palette_run_writes_its_pictures_and_finite_figures(tmp_path):
    report = APPLICATIONS["palette"].run(tmp_path, RunSettings(quick=True, progress=False, device="cpu"))
    assert [p.name for p in report.pictures] == [f"{task}.png" for task in TASKS]
    assert all(p.exists() and p.stat().st_size > 0 for p in report.pictures)
    for task in ("inpaint", "uncrop"):
        assert {f"{task}_masked_mse", f"{task}_known_max_abs_diff", f"{task}_fd_ratio"} <= set(report.figures)
    assert {"denoise_mse", "denoise_psnr_db", "denoise_fd_ratio"} <= set(report.figures)
    assert all(math.isfinite(v) for v in report.figures.values()), report.figures
