"""Cascades (ddpm_scratch.cascade): the low-resolution pairs, the augmentations against independent references and
their statistics, the SR stage's loss and wrapper, the cascade's sampling, and the super-resolution runs of the
trainer and of the UNet's aug_level input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ddpm_scratch.cascade import (
    AUGMENTATIONS,
    BLUR_MAX_SIGMA,
    SuperResolution,
    augment,
    cascade_sample,
    downsample,
    super_resolution_loss,
    upsample,
)
from ddpm_scratch.machinery.data import load_dataset, load_digits
from ddpm_scratch.machinery.train import TrainConfig, build_model, load_model, train
from ddpm_scratch.nets import UNet
from ddpm_scratch.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule.linear(50, rescale=True)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------- the low-resolution pairs

def test_downsample_gives_back_the_block_means():
    """x0 built as z's pixels repeated over 2x2 blocks plus a pattern of zero mean in every block: the average of
    each block is z's pixel."""
    z = torch.randn(3, 2, 4, 4, generator=gen())
    pattern = torch.tensor([[1.0, -2.0], [0.5, 0.5]]).repeat(4, 4)  # each 2x2 block sums to 0
    x0 = z.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) + pattern
    torch.testing.assert_close(downsample(x0, 4), z)
    assert downsample(x0, 2).shape == (3, 2, 2, 2)


def test_digits_4x4_is_the_digits_averaged_over_blocks_on_65_levels():
    x4, y4 = load_dataset("digits_4x4", "test")
    x8, y8 = load_digits("test")
    assert torch.equal(y4, y8)
    torch.testing.assert_close(x4, x8.reshape(-1, 1, 4, 2, 4, 2).mean(dim=(3, 5)))
    levels = (x4 + 1) * 32  # 65 levels k / 32 - 1, k = 0..64
    assert torch.equal(levels, levels.round()) and levels.min() >= 0 and levels.max() <= 64


def test_upsample_keeps_constant_images_and_reaches_the_size():
    z = torch.full((2, 1, 4, 4), 0.3)
    up = upsample(z, 8)
    assert up.shape == (2, 1, 8, 8)
    torch.testing.assert_close(up, torch.full_like(up, 0.3))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: downsample(torch.zeros(2, 1, 8, 8), 3), "size must divide"),
    (lambda: downsample(torch.zeros(2, 8, 8), 4), "x0 must be an image batch"),
    (lambda: upsample(torch.zeros(2, 1, 4, 4), 0), "size"),
    (lambda: augment(torch.zeros(2, 1, 4, 4), 1.5), "aug_level"),
    (lambda: augment(torch.zeros(2, 1, 4, 4), torch.tensor([0.1, 0.2, 0.3])), "aug_level"),
    (lambda: augment(torch.zeros(2, 1, 4, 4), 0.1, kind="jpeg"), "kind"),
    (lambda: augment(torch.zeros(2, 1, 2, 2), 0.1, kind="blur"), "larger than"),
    (lambda: augment(torch.zeros(2, 1, 4, 4), 0.1, noise=torch.zeros(2, 1, 4, 4), generator=gen()), "noise"),
])
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# ---------------------------------------------------------------------------------- the augmentations

@given(kind=st.sampled_from(AUGMENTATIONS), batch=st.integers(1, 3), channels=st.integers(1, 2),
       size=st.sampled_from([4, 6, 8]))
def test_level_zero_changes_nothing(kind, batch, channels, size):
    z = torch.randn(batch, channels, size, size, generator=gen(batch))
    torch.testing.assert_close(augment(z, 0.0, kind=kind, generator=gen()), z)


def test_no_augmentation_ignores_the_level():
    z = torch.randn(4, 1, 4, 4, generator=gen())
    assert torch.equal(augment(z, torch.tensor([0.0, 0.2, 0.7, 1.0]), kind="none"), z)


@pytest.mark.parametrize("s", [0.1, 0.45, 0.9])
def test_noise_augmentation_preserves_the_variance_and_keeps_sqrt_1_minus_s2_of_z(s):
    """z ~ N(0, 1): augment(z) has variance 1 and covariance sqrt(1 - s^2) with z, within 5 standard errors of n =
    200,000 independent values (the sample variance's se is sqrt(2 / n); the mean of out * z has variance
    (2 - s^2) / n, so sqrt(2 / n) bounds its se too)."""
    n = 200_000
    z = torch.randn(n // 16, 1, 4, 4, generator=gen(1), dtype=torch.float64)
    out = augment(z, s, generator=gen(2))
    assert abs(out.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs((out * z).mean().item() - math.sqrt(1 - s**2)) < 5 * math.sqrt(2 / n)


def test_the_same_generator_gives_the_same_augmentation_and_another_seed_another():
    z = torch.randn(3, 1, 4, 4, generator=gen())
    assert torch.equal(augment(z, 0.3, generator=gen(5)), augment(z, 0.3, generator=gen(5)))
    assert not torch.equal(augment(z, 0.3, generator=gen(5)), augment(z, 0.3, generator=gen(6)))


def _blur_reference(z: torch.Tensor, sigma: float) -> torch.Tensor:
    """One image batch blurred by conv2d with the 2-D kernel outer(w, w), w the normal pdf at -2..2 normalised."""
    taps = torch.arange(-2, 3, dtype=z.dtype)
    w = torch.distributions.Normal(0.0, sigma).log_prob(taps).exp()
    w = w / w.sum()
    kernel = torch.outer(w, w).expand(z.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(z, (2, 2, 2, 2), mode="reflect"), kernel, groups=z.shape[1])


def test_blur_matches_a_convolution_with_the_gaussian_kernel_one_level_per_image():
    z = torch.randn(3, 2, 6, 5, generator=gen(), dtype=torch.float64)
    levels = torch.tensor([0.25, 0.6, 1.0], dtype=torch.float64)
    got = augment(z, levels, kind="blur")
    for i, s in enumerate(levels.tolist()):
        torch.testing.assert_close(got[i:i + 1], _blur_reference(z[i:i + 1], s * BLUR_MAX_SIGMA))


def test_blur_keeps_constant_images_and_smooths_more_as_the_level_grows():
    torch.testing.assert_close(augment(torch.full((1, 1, 4, 4), -0.4), 0.8, kind="blur"),
                               torch.full((1, 1, 4, 4), -0.4))
    z = torch.randn(8, 1, 8, 8, generator=gen())

    def roughness(x):  # total variation
        return (x.diff(dim=2).abs().sum() + x.diff(dim=3).abs().sum()).item()

    values = [roughness(augment(z, s, kind="blur")) for s in (0.0, 0.3, 0.6, 1.0)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.7 * values[0], values


@given(kind=st.sampled_from(AUGMENTATIONS), levels=st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_a_level_per_image_is_each_image_augmented_at_its_own_level(kind, levels):
    z = torch.randn(len(levels), 1, 4, 4, generator=gen(), dtype=torch.float64)
    noise = torch.randn(z.shape, generator=gen(1), dtype=torch.float64)
    together = augment(z, torch.tensor(levels, dtype=torch.float64), kind=kind, noise=noise)
    for i, s in enumerate(levels):
        torch.testing.assert_close(together[i:i + 1], augment(z[i:i + 1], s, kind=kind, noise=noise[i:i + 1]))


# ---------------------------------------------------------------------------------- the SR stage

class Recorder(torch.nn.Module):
    """A network that remembers what it was called with and returns a learnable scale of x_t's channels."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.scale, self.channels, self.calls = torch.nn.Parameter(torch.tensor(0.5)), channels, []

    def forward(self, x_in, t, y, aug_level):
        self.calls.append((x_in.detach().clone(), t, y, aug_level.detach().clone()))
        return self.scale * x_in[:, :self.channels]


def test_the_sr_loss_without_augmentation_sees_the_clean_upsampled_input_at_level_zero():
    x0 = load_digits("test")[0][:6]
    net = Recorder()
    loss = super_resolution_loss(net, SCHEDULE, x0, low_size=4, kind="none", max_aug_level=0.5, generator=gen())
    x_in, t, y, s = net.calls[-1]
    assert y is None and torch.equal(s, torch.zeros(6))
    torch.testing.assert_close(x_in[:, 1:], upsample(downsample(x0, 4), 8))
    loss.backward()
    assert net.scale.grad is not None and net.scale.grad != 0


@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_the_sr_loss_draws_a_level_per_example_below_max_aug_level(kind):
    x0 = load_digits("test")[0][:64]
    net = Recorder()
    super_resolution_loss(net, SCHEDULE, x0, low_size=4, kind=kind, max_aug_level=0.3, generator=gen())
    x_in, _, _, s = net.calls[-1]
    assert s.shape == (64,) and s.min() >= 0 and s.max() <= 0.3 and s.unique().numel() == 64
    clean = upsample(downsample(x0, 4), 8)
    moved = (x_in[:, 1:] - clean).flatten(1).norm(dim=1)
    assert torch.corrcoef(torch.stack([moved, s]))[0, 1] > 0.5  # the higher the level, the further from clean


def test_super_resolution_binds_the_upsampled_image_and_the_level():
    net = Recorder()
    z = torch.randn(3, 1, 4, 4, generator=gen())
    model = SuperResolution(net, z, size=8, aug_level=0.25)
    x_t = torch.randn(3, 1, 8, 8, generator=gen(1))
    out = model(x_t, torch.tensor([5, 5, 5]))
    x_in, _, y, s = net.calls[-1]
    torch.testing.assert_close(x_in, torch.cat([x_t, upsample(z, 8)], 1))
    assert y is None and torch.equal(s, torch.full((3,), 0.25))
    torch.testing.assert_close(out, 0.5 * x_t)


def tiny_unet(**extra) -> UNet:
    return UNet(base_channels=8, channel_mults=(1,), attention_resolutions=(), **extra)


def test_the_unet_reads_aug_level_only_when_built_for_it():
    net = tiny_unet(in_channels=2, out_channels=1, aug_level_conditioning=True)
    torch.nn.init.normal_(net.out[-1].weight, generator=gen())  # the last layer starts at zero
    x, t = torch.randn(2, 2, 8, 8, generator=gen()), torch.tensor([3, 3])
    assert not torch.allclose(net(x, t, None, 0.0), net(x, t, None, torch.tensor([0.7, 0.7])))
    torch.testing.assert_close(net(x, t, None, 0.4), net(x, t, None, torch.tensor([0.4, 0.4])))
    with pytest.raises(ValueError, match="aug_level is required"):
        net(x, t)
    with pytest.raises(TypeError, match="aug_level must be a float"):
        net(x, t, None, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="aug_level was given"):
        tiny_unet()(torch.randn(2, 1, 8, 8), t, None, 0.2)


def test_cascade_sample_runs_both_stages_and_repeats_with_the_generator():
    base = tiny_unet()
    sr = tiny_unet(in_channels=2, out_channels=1, aug_level_conditioning=True)
    for net in (base, sr):
        torch.nn.init.normal_(net.out[-1].weight, std=0.1, generator=gen())

    def run(seed):
        return cascade_sample(base, SCHEDULE, sr, SCHEDULE, (5, 1, 8, 8), low_size=4, aug_level=0.2,
                              sampler="ddim", num_steps=4, generator=gen(seed))

    z, x = run(0)
    assert z.shape == (5, 1, 4, 4) and x.shape == (5, 1, 8, 8)
    assert all(torch.equal(a, b) for a, b in zip(run(0), (z, x), strict=True))
    assert not torch.equal(run(1)[1], x)
    for changes, message in ((dict(low_size=3), "divisible by low_size"), (dict(aug_level=1.5), "aug_level"),
                             (dict(kind="jpeg"), "kind")):
        with pytest.raises(ValueError, match=message):
            cascade_sample(base, SCHEDULE, sr, SCHEDULE, (5, 1, 8, 8), **{"low_size": 4, "aug_level": 0.2, **changes})


@pytest.mark.parametrize("kind", ["blur", "none"])
def test_the_sr_stage_reads_the_base_samples_corrupted_at_the_level_it_is_told(kind):
    """With a deterministic augmentation, every call of the SR network gets upsample(augment(z, s)) as its second
    channel and s as its level, where z is the base stage's output, returned as it came."""
    base = tiny_unet()
    torch.nn.init.normal_(base.out[-1].weight, std=0.1, generator=gen())
    net = Recorder()
    z, _ = cascade_sample(base, SCHEDULE, net, SCHEDULE, (3, 1, 8, 8), low_size=4, aug_level=0.6, kind=kind,
                          sampler="ddim", num_steps=3, generator=gen())
    want = upsample(augment(z, 0.6, kind=kind), 8)
    assert len(net.calls) == 3
    for x_in, _, y, s in net.calls:
        torch.testing.assert_close(x_in[:, 1:], want)
        assert y is None and torch.equal(s, torch.full((3,), 0.6))
    if kind == "blur":
        assert not torch.allclose(want, upsample(z, 8))  # the blur did something: z was not passed on as it came


def test_the_blur_is_finite_in_half_precision():
    z = torch.randn(2, 1, 4, 4, generator=gen()).half()
    out = augment(z, torch.tensor([0.0, 0.5]).half(), kind="blur")
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out[0], z[0])


# ---------------------------------------------------------------------------------- runs of the trainer

@pytest.mark.parametrize(("changes", "message"), [
    (dict(dataset="two_moons", low_resolution=4), "low_resolution must be 0"),
    (dict(dataset="digits", low_resolution=3), "low_resolution must be 0"),
    (dict(dataset="digits", low_resolution=8), "low_resolution must be 0"),
    (dict(dataset="digits", low_resolution=4, time="continuous"), "time='discrete'"),
    (dict(dataset="digits", low_resolution=4, prediction="v"), "prediction='eps'"),
    (dict(dataset="digits", low_resolution=4, num_classes=10), "num_classes=0"),
    (dict(dataset="digits", augmentation="blur"), "need low_resolution > 0"),
    (dict(dataset="digits", low_resolution=4, augmentation="jpeg"), "augmentation"),
    (dict(dataset="digits", low_resolution=4, max_aug_level=1.5), "max_aug_level"),
])
def test_super_resolution_configs_are_checked(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


def test_a_super_resolution_run_trains_loads_and_samples(tmp_path):
    config = TrainConfig(dataset="digits", low_resolution=4, augmentation="blur", steps=3, batch_size=8, T=40,
                         model=dict(base_channels=8, channel_mults=[1], attention_resolutions=[]), device="cpu")
    net = build_model(config)
    assert net.in_channels == 2 and net.out_channels == 1 and net.aug_level_embed is not None
    result = train(config, out=tmp_path, progress=False)
    assert math.isfinite(result.final_loss)
    model, schedule, loaded = load_model(tmp_path / "checkpoint.pt")
    assert loaded.low_resolution == 4 and loaded.augmentation == "blur"
    x = cascade_sample(lambda x_t, t: torch.zeros_like(x_t), schedule, model, schedule, (4, 1, 8, 8), low_size=4,
                       aug_level=0.1, sampler="ddim", num_steps=3, generator=gen())[1]
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
