"""SR3's measures (ddpm_scratch.applications.super_resolution): PSNR from its definition, the consistency of an
output averaged down with its input (zero for block-constant images, a value derived by hand for bilinear
upsampling), and a quick end-to-end run of `ddpm-scratch apply sr3`."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import ddpm_scratch.machinery.palette_runs  # noqa: F401  (registers "palette" and "sr3")
from ddpm_scratch.applications.super_resolution import PEAK, consistency, psnr
from ddpm_scratch.machinery.applications import APPLICATIONS, RunSettings
from ddpm_scratch.machinery.data import load_digits
from ddpm_scratch.machinery.palette_runs import SR3_LEVELS


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def nearest(z: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Each pixel of z repeated over a factor x factor block."""
    return z.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


# ---------------------------------------------------------------------------------- PSNR

def test_psnr_of_a_constant_error():
    """Peak-to-peak 2: an error of 0.2 everywhere is 10 log10(4 / 0.04) = 20 dB, of 0.02 is 40 dB."""
    reference = torch.rand(2, 1, 8, 8, generator=gen()) * 2 - 1
    x = reference + torch.tensor([0.2, -0.02])[:, None, None, None]
    torch.testing.assert_close(psnr(x, reference), torch.tensor([20.0, 40.0]))
    assert PEAK == 2.0


def test_psnr_per_image_matches_its_definition():
    x, reference = torch.randn(5, 3, 4, 4, generator=gen(1)), torch.randn(5, 3, 4, 4, generator=gen(2))
    expected = [10 * math.log10(4 / ((a - b) ** 2).mean().item()) for a, b in zip(x, reference, strict=True)]
    torch.testing.assert_close(psnr(x, reference), torch.tensor(expected))


def test_psnr_of_an_exact_copy_is_infinite_and_shapes_are_checked():
    x = torch.randn(3, 1, 8, 8, generator=gen(3))
    assert torch.isinf(psnr(x, x.clone())).all()
    with pytest.raises(ValueError, match="shape"):
        psnr(x, x[:, :, :4])
    with pytest.raises(ValueError, match="x"):
        psnr(x[0], x[0])


# ---------------------------------------------------------------------------------- consistency

def test_a_block_constant_image_is_consistent_with_its_low_resolution():
    z = torch.rand(4, 2, 4, 4, generator=gen(4)) * 2 - 1
    assert torch.equal(consistency(nearest(z), z), torch.zeros(4))
    detail = torch.tensor([[0.3, -0.3], [-0.1, 0.1]]).repeat(4, 4)  # each 2x2 block sums to 0: invisible at 4x4
    torch.testing.assert_close(consistency(nearest(z) + detail, z), torch.zeros(4))


def test_consistency_is_the_mean_squared_error_of_the_block_means():
    z = torch.rand(3, 1, 4, 4, generator=gen(5))
    shift = torch.tensor([0.1, -0.5, 0.0])[:, None, None, None]
    torch.testing.assert_close(consistency(nearest(z) + shift, z), shift.flatten() ** 2)


def test_bilinear_upsampling_of_a_ramp_is_inconsistent_only_at_the_edges():
    """1-D bilinear 4 -> 8 (half-pixel centres) gives pixels 1/4 z_{i-1} + 3/4 z_i and 3/4 z_i + 1/4 z_{i+1}, with
    z clamped at the ends; their mean is z_i + (z_{i-1} - 2 z_i + z_{i+1}) / 8. For a ramp z_i = a i along the width
    that is z_i inside and z_i +- a / 8 in the first and last columns: 8 of 16 pixels off by a / 8, so the
    consistency is (a / 8)^2 / 2 = a^2 / 128."""
    a = 0.4
    z = (a * torch.arange(4.0)).expand(2, 1, 4, 4)
    up = F.interpolate(z, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(consistency(up, z), torch.full((2,), a**2 / 128))


def test_consistency_checks_its_shapes():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="z"):
        consistency(x, torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="z"):
        consistency(x, torch.zeros(2, 1, 4, 2))
    with pytest.raises(ValueError, match="size"):
        consistency(x, torch.zeros(2, 1, 3, 3))


# ---------------------------------------------------------------------------------- the run

def test_a_quick_sr3_run_writes_its_picture_and_finite_figures(tmp_path):
    settings = RunSettings(quick=True, progress=False, device="cpu")
    report = APPLICATIONS["sr3"].run(tmp_path, settings)
    assert len(report.pictures) == 1 and report.pictures[0].exists() and report.pictures[0].stat().st_size > 0
    for level in SR3_LEVELS:
        assert {f"psnr_db_s{level:g}", f"consistency_s{level:g}", f"fd_ratio_s{level:g}"} <= set(report.figures)
    assert report.figures["best_aug_level"] in SR3_LEVELS
    assert all(math.isfinite(v) for v in report.figures.values()), report.figures
    # the baseline, from the definitions: the first test digits averaged over 2x2 blocks, upsampled bilinearly
    x0 = load_digits("test")[0][:settings.count(360)]
    up = F.interpolate(F.avg_pool2d(x0, 2), size=(8, 8), mode="bilinear", align_corners=False)
    mse = (up - x0).pow(2).mean(dim=(1, 2, 3))
    assert report.figures["bilinear_psnr_db"] == pytest.approx((10 * torch.log10(4 / mse)).mean().item(), rel=1e-5)
