"""Tests for diffusion autoencoders: the U-Net's code conditioning, the code-bound eps-model, encode/decode round trips
against an exact stand-in model, interpolation, the joint loss, fit caching and the application run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import ddpm_scratch.machinery.applications as applications
from ddpm_scratch.applications.diffae import (
    CodeBound,
    DiffAE,
    SemanticEncoder,
    decode,
    diffae_loss,
    encode,
    interpolate,
)
from ddpm_scratch.ddim import slerp
from ddpm_scratch.losses import l_simple
from ddpm_scratch.machinery.applications import APPLICATIONS, RunSettings, fit
from ddpm_scratch.machinery.diffae_runs import diffae_network
from ddpm_scratch.machinery.loop import Batch, LoopSettings
from ddpm_scratch.nets import UNet
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule

TINY = dict(base_channels=8, num_groups=4)


def perturb(layer: nn.Linear | nn.Conv2d, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(0.1 * torch.randn(layer.weight.shape, generator=g))
        layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=g))


# ---------------------------------------------------------------- the U-Net's code


@pytest.mark.parametrize("injection", ["add", "adagn"])
def test_unet_code_shapes_and_effect(injection):
    net = UNet(**TINY, code_dim=5, time_injection=injection)
    perturb(net.out[-1])
    x_t, t = torch.randn(3, 1, 8, 8), torch.tensor([1, 500, 1000])
    code = torch.randn(3, 5)
    out = net(x_t, t, code=code)
    assert out.shape == x_t.shape and torch.isfinite(out).all()
    other = code.clone()
    other[1] += 1.0  # change row 1's code only
    moved = net(x_t, t, code=other)
    assert not torch.allclose(moved[1], out[1], atol=1e-6)
    torch.testing.assert_close(moved[[0, 2]], out[[0, 2]])  # rows do not mix


def test_unet_code_enters_only_through_c():
    """With the code's MLP output zeroed, the net is exactly the code-less net with the same other weights."""
    with_code, without = UNet(**TINY, code_dim=4), UNet(**TINY)
    perturb(with_code.out[-1])
    with torch.no_grad():
        with_code.code_embed[-1].weight.zero_()
        with_code.code_embed[-1].bias.zero_()
    missing, unexpected = without.load_state_dict(with_code.state_dict(), strict=False)
    assert missing == [] and all(k.startswith("code_embed.") for k in unexpected) and unexpected
    x_t, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    torch.testing.assert_close(with_code(x_t, t, code=torch.randn(2, 4)), without(x_t, t))


@pytest.mark.parametrize("kwargs", [{}, {"num_classes": 10}, {"aug_level_conditioning": True, "in_channels": 2,
                                                                "out_channels": 1}])
def test_unet_without_code_keeps_its_state_dict_keys(kwargs):
    """A code adds the code_embed.* keys and nothing else, in the same order; a net without one has the modules it
    had before codes existed."""
    plain = list(UNet(**TINY, **kwargs).state_dict())
    coded = list(UNet(**TINY, **kwargs, code_dim=3).state_dict())
    assert [k for k in coded if not k.startswith("code_embed.")] == plain
    before = {"time_embed", "label_embed", "aug_level_embed", "conv_in", "down_blocks", "down_attns", "downs",
              "mid_block1", "mid_attn", "mid_block2", "up_blocks", "up_attns", "ups", "out"}
    assert {k.split(".")[0] for k in plain} <= before


def test_unet_code_checks():
    net = UNet(**TINY, code_dim=4)
    x_t = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="code is required"):
        net(x_t, 5)
    with pytest.raises(ValueError, match="code must have shape"):
        net(x_t, 5, code=torch.randn(2, 3))
    with pytest.raises(TypeError, match="code must be"):
        net(x_t, 5, code=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="code_dim=None"):
        UNet(**TINY)(x_t, 5, code=torch.randn(2, 4))
    with pytest.raises(ValueError, match="code_dim"):
        UNet(**TINY, code_dim=0)


# ---------------------------------------------------------------- an exact stand-in


class GaussianPerCode(nn.Module):
    """Data x0 ~ N(mu(code), s^2 I), mu(code) = tanh(code @ A) as an image: the exact E[eps | x_t] of that data,
    sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar), a smooth deterministic eps-model of the code."""

    def __init__(self, schedule: NoiseSchedule, code_dim: int, s: float = 0.5) -> None:
        super().__init__()
        self.alpha_bars, self.s = schedule.alpha_bars, s
        self.A = torch.randn(code_dim, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        self.code_dim = code_dim

    def forward(self, x_t: Tensor, t: Tensor, *, code: Tensor) -> Tensor:
        abar = self.alpha_bars.to(x_t)[t].reshape(-1, 1, 1, 1)
        mu = torch.tanh(code.to(self.A) @ self.A).reshape(-1, 1, 8, 8).to(x_t)
        return (1 - abar).sqrt() * (x_t - abar.sqrt() * mu) / (abar * self.s**2 + 1 - abar)


class MeanCode(nn.Module):
    """An encoder: the means of the four 4x4 quadrants."""

    def forward(self, x0: Tensor) -> Tensor:
        return nn.functional.avg_pool2d(x0, 4).flatten(1)


@pytest.fixture
def stand_in():
    schedule = NoiseSchedule.linear(1000, rescale=True)
    model = DiffAE(1, 4, encoder=MeanCode(), denoiser=GaussianPerCode(schedule, 4))
    x0 = (torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1)
    return model, schedule, x0


def test_code_bound_is_an_eps_model(stand_in):
    model, schedule, x0 = stand_in
    z = model.semantic(x0)
    bound = CodeBound(model, z)
    x_t, t = torch.randn_like(x0), torch.randint(1, 1001, (6,))
    torch.testing.assert_close(bound(x_t, t), model(x_t, t, code=z))
    out = sample(bound, schedule, x0.shape, sampler="ddim", num_steps=5, x_T=x_t)  # any sampler takes it
    assert out.shape == x0.shape
    with pytest.raises(ValueError, match="rows"):
        bound(x_t[:2], t[:2])
    with pytest.raises(ValueError, match="z_sem"):
        CodeBound(model, torch.randn(6))
    with pytest.raises(TypeError, match="callable"):
        CodeBound(3, z)


def test_encode_decode_round_trip_with_fixed_point_iterations(stand_in):
    """Each inversion step solved by fixed-point iterations is the exact inverse of the decoding step: the round
    trip returns x0 to the iteration's convergence (float64)."""
    model, schedule, x0 = stand_in
    z, x_T = encode(model, schedule, x0, num_steps=50, fixed_point_iterations=8)
    torch.testing.assert_close(z, MeanCode()(x0))
    assert x_T.shape == x0.shape
    assert (x_T - x0).abs().max() > 0.5  # x_T is far from x0: the round trip is not trivial
    torch.testing.assert_close(decode(model, schedule, z, x_T, num_steps=50), x0, atol=1e-8, rtol=0)


def test_plain_inversion_error_falls_like_one_over_steps(stand_in):
    """DDIM's inversion reuses eps at the start of each step: its round trip error is first order in the step, so
    4x the steps divide it by about 4; the bracket 4^(1/2)..4^(3/2) tells first order from zeroth (1) and second
    (16)."""
    model, schedule, x0 = stand_in
    errors = []
    for steps in (50, 200):
        z, x_T = encode(model, schedule, x0, num_steps=steps)
        errors.append((decode(model, schedule, z, x_T, num_steps=steps) - x0).abs().max().item())
    assert 2 < errors[0] / errors[1] < 8


def test_decode_with_another_code_differs(stand_in):
    model, schedule, x0 = stand_in
    z, x_T = encode(model, schedule, x0, num_steps=20)
    assert (decode(model, schedule, z.flip(0), x_T, num_steps=20) - x0).abs().max() > 0.1


def test_interpolation_ends_and_middle(stand_in):
    model, schedule, x0 = stand_in
    z, x_T = encode(model, schedule, x0, num_steps=20)
    a, b = (z[:3], x_T[:3]), (z[3:], x_T[3:])
    path = interpolate(model, schedule, a, b, [0.0, 0.5, 1.0], num_steps=20)
    assert path.shape == (3, 3, 1, 8, 8)
    torch.testing.assert_close(path[:, 0], decode(model, schedule, *a, num_steps=20))
    torch.testing.assert_close(path[:, 2], decode(model, schedule, *b, num_steps=20))
    middle = decode(model, schedule, (z[:3] + z[3:]) / 2, slerp(x_T[:3], x_T[3:], 0.5), num_steps=20)
    torch.testing.assert_close(path[:, 1], middle)
    torch.testing.assert_close(slerp(x_T[:3], x_T[3:], 0.0), x_T[:3])
    torch.testing.assert_close(slerp(x_T[:3], x_T[3:], 1.0), x_T[3:])
    with pytest.raises(ValueError, match="alphas"):
        interpolate(model, schedule, a, b, [1.5])
    with pytest.raises(ValueError, match="same shapes"):
        interpolate(model, schedule, a, (z[3:5], x_T[3:5]), [0.5])


def test_encode_decode_checks(stand_in):
    model, schedule, x0 = stand_in
    with pytest.raises(ValueError, match="x0"):
        encode(model, schedule, x0[0])
    with pytest.raises(ValueError, match="rows"):
        decode(model, schedule, torch.randn(2, 4, dtype=torch.float64), x0)
    with pytest.raises(ValueError, match="spacing"):
        decode(model, schedule, model.semantic(x0), x0, spacing="nope")


# ---------------------------------------------------------------- the networks and the loss


def test_semantic_encoder_shapes_and_checks():
    enc = SemanticEncoder(1, 7, channels=8, num_groups=4)
    assert enc(torch.randn(5, 1, 8, 8)).shape == (5, 7)
    assert enc(torch.randn(2, 1, 16, 12)).shape == (2, 7)
    with pytest.raises(ValueError, match="divisible by 4"):
        enc(torch.randn(2, 1, 6, 6))
    with pytest.raises(ValueError, match="num_groups"):
        SemanticEncoder(1, 4, channels=6, num_groups=4)
    with pytest.raises(ValueError, match="code_dim"):
        DiffAE(1, 4, denoiser=UNet(**TINY, code_dim=3))


def test_diffae_loss_is_l_simple_with_the_code_of_the_same_x0_and_trains_the_encoder():
    torch.manual_seed(0)
    model = DiffAE(1, 4, encoder_channels=8, **TINY)
    perturb(model.denoiser.out[-1])  # the zero output layer would block every gradient below it
    schedule = NoiseSchedule.linear(1000, rescale=True)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    loss = diffae_loss(model, schedule, x0, generator=torch.Generator().manual_seed(3))
    z = model.encoder(x0)
    reference = l_simple(lambda x_t, t: model.denoiser(x_t, t, code=z), schedule, x0,
                         generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss, reference)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_fit_trains_once_then_loads(tmp_path, monkeypatch):
    schedule = NoiseSchedule.linear(100, rescale=True)
    data = torch.rand(32, 1, 8, 8) * 2 - 1
    settings = LoopSettings(steps=3, batch_size=8, lr=1e-3, ema_decay=0.9, log_every=1)

    def objective(model: DiffAE, batch: Batch, *, generator=None) -> Tensor:
        return diffae_loss(model, schedule, batch.x0, generator=generator)

    def build() -> DiffAE:
        return DiffAE(1, 4, encoder_channels=8, **TINY)

    first = fit(build, objective, data, settings, out=tmp_path / "m", record={"k": 1}, seed=0, progress=False)
    monkeypatch.setattr(applications, "run_loop", lambda *a, **k: pytest.fail("a finished stage was trained again"))
    second = fit(build, objective, data, settings, out=tmp_path / "m", record={"k": 1}, seed=0, progress=False)
    for (name, p), (_, q) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    with pytest.raises(ValueError, match="other settings"):
        fit(build, objective, data, settings, out=tmp_path / "m", record={"k": 2}, seed=0, progress=False)


def test_digits_network_has_the_code():
    model = diffae_network()
    assert model.denoiser.code_dim == model.encoder.code_dim == model.code_dim


# ---------------------------------------------------------------- the application run


def test_quick_run_writes_pictures_and_finite_figures(tmp_path: Path):
    report = APPLICATIONS["diffae"].run(tmp_path, RunSettings(quick=True, progress=False, device="cpu"))
    assert {p.name for p in report.pictures} == {"reconstruction.png", "interpolation.png", "edit.png"}
    assert all(p.exists() and p.stat().st_size > 0 for p in report.pictures)
    assert report.figures and all(math.isfinite(v) for v in report.figures.values())
    for name in ("probe_accuracy_test", "random_xT_class_kept", "edit_7_to_1_success_s1"):
        assert 0 <= report.figures[name] <= 1
