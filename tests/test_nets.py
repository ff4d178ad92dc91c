"""Tests for the eps-networks in ddpm_scratch.nets: shapes, embeddings, conditioning, gradients, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ddpm_scratch.losses import l_simple
from ddpm_scratch.nets import (
    Attention,
    LabelEmbedding,
    MLPEps,
    RandomFourierFeatures,
    SinusoidalEmbedding,
    UNet,
    count_parameters,
)
from ddpm_scratch.schedules import NoiseSchedule

TINY = dict(base_channels=8, num_groups=4)  # a U-Net small enough to run dozens of times in a test


def tiny_unet(**kwargs) -> UNet:
    return UNet(**{**TINY, **kwargs})


def perturb_last_layer(model: nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised output layer random weights, so the output depends on everything below it."""
    last = model.out[-1] if isinstance(model, UNet) else model.out
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        last.weight.copy_(0.1 * torch.randn(last.weight.shape, generator=g))
        last.bias.copy_(0.1 * torch.randn(last.bias.shape, generator=g))


# ---------------------------------------------------------------- shapes


@given(size=st.sampled_from([8, 16, 32]), channels=st.sampled_from([1, 3]),
       time_embedding=st.sampled_from(["sinusoidal", "fourier"]), time_injection=st.sampled_from(["add", "adagn"]),
       mults=st.sampled_from([(1,), (1, 2), (1, 2, 2)]), attention=st.booleans(),
       num_classes=st.sampled_from([None, 3]), num_res_blocks=st.sampled_from([1, 2]), float_time=st.booleans(),
       batch=st.integers(1, 3))
def test_unet_shapes(size, channels, time_embedding, time_injection, mults, attention, num_classes, num_res_blocks,
                     float_time, batch):
    lowest = size // 2 ** (len(mults) - 1)
    model = tiny_unet(in_channels=channels, channel_mults=mults, attention_resolutions=(lowest,) if attention else (),
                      time_embedding=time_embedding, time_injection=time_injection, num_classes=num_classes,
                      num_res_blocks=num_res_blocks, image_size=size)
    perturb_last_layer(model)
    x_t = torch.randn(batch, channels, size, size)
    t = torch.rand(batch) if float_time else torch.randint(1, 1001, (batch,))
    y = torch.randint(0, num_classes + 1, (batch,)) if num_classes else None
    out = model(x_t, t, y)
    assert out.shape == x_t.shape
    assert torch.isfinite(out).all()
    assert any(isinstance(m, Attention) for m in model.modules()) == attention


@given(out_channels=st.sampled_from([1, 2, 6]))
def test_unet_out_channels(out_channels):
    model = tiny_unet(in_channels=3, out_channels=out_channels)
    assert model(torch.randn(2, 3, 8, 8), torch.tensor([1, 2])).shape == (2, out_channels, 8, 8)


def test_unet_accepts_other_sizes_divisible_by_the_downsampling():
    model = tiny_unet(channel_mults=(1, 2), image_size=8)
    assert model(torch.randn(2, 1, 16, 12), 5).shape == (2, 1, 16, 12)


@given(dim=st.integers(1, 5), hidden=st.sampled_from([2, 16, 33]), depth=st.integers(1, 3),
       time_embedding=st.sampled_from(["sinusoidal", "fourier"]), num_classes=st.sampled_from([None, 4]),
       batch=st.integers(1, 5))
def test_mlp_shapes(dim, hidden, depth, time_embedding, num_classes, batch):
    model = MLPEps(dim=dim, hidden=hidden, depth=depth, time_embedding=time_embedding, num_classes=num_classes)
    perturb_last_layer(model)
    y = torch.randint(0, num_classes + 1, (batch,)) if num_classes else None
    out = model(torch.randn(batch, dim), torch.randint(1, 1001, (batch,)), y)
    assert out.shape == (batch, dim)
    assert torch.isfinite(out).all()


def test_untrained_nets_predict_zero():
    """The zero-initialised last layer makes eps_theta = 0, whatever the input."""
    assert tiny_unet()(torch.randn(3, 1, 8, 8), torch.tensor([1, 50, 900])).abs().max() == 0
    assert MLPEps()(torch.randn(3, 2), torch.tensor([1, 50, 900])).abs().max() == 0


# ---------------------------------------------------------------- embeddings


@given(half=st.integers(1, 32), steps=st.lists(st.integers(0, 1000), min_size=1, max_size=6),
       max_period=st.sampled_from([100.0, 10000.0]))
def test_sinusoidal_matches_closed_form(half, steps, max_period):
    """emb(t)_k = sin(t f_k), emb(t)_{half+k} = cos(t f_k), f_k = max_period^(-k/half), computed here with math."""
    emb = SinusoidalEmbedding(2 * half, max_period=max_period)(torch.tensor(steps)).double()
    expected = torch.tensor([[math.sin(t * max_period ** (-k / half)) for k in range(half)]
                             + [math.cos(t * max_period ** (-k / half)) for k in range(half)] for t in steps],
                            dtype=torch.float64)
    torch.testing.assert_close(emb, expected, atol=2e-4, rtol=0)  # float32 angles up to ~1000 rad


@pytest.mark.parametrize("embedding", [SinusoidalEmbedding(32), RandomFourierFeatures(32)])
def test_float_time_is_steps_over_1000(embedding):
    """Continuous t and integer steps share one scale: t = 0.25 embeds like step 250."""
    steps = torch.tensor([1, 250, 999, 1000])
    torch.testing.assert_close(embedding(steps.double() / 1000), embedding(steps), atol=1e-4, rtol=0)


@pytest.mark.parametrize("embedding", [SinusoidalEmbedding(32), RandomFourierFeatures(32)])
def test_distinct_steps_get_distinct_embeddings(embedding):
    emb = embedding(torch.arange(1, 1001)).double()
    dist = torch.cdist(emb, emb) + torch.eye(1000, dtype=torch.float64) * 1e9
    assert dist.min() > 1e-3


def test_fourier_features_closed_form_and_fixed_frequencies():
    rff = RandomFourierFeatures(4000, scale=16.0, seed=3)
    assert count_parameters(rff) == 0 and "w" in rff.state_dict()  # a buffer: saved, never trained
    w = rff.w.double()
    # w ~ N(0, scale^2): the sample std lies within 5 standard errors (scale / sqrt(2 n)) of scale
    assert abs(w.std().item() - 16.0) < 5 * 16.0 / math.sqrt(2 * w.numel())
    t = torch.tensor([1, 333, 1000])
    angles = 2 * math.pi * (t.double()[:, None] / 1000) * w[None, :]
    torch.testing.assert_close(rff(t).double(), torch.cat([angles.sin(), angles.cos()], 1), atol=2e-4, rtol=0)
    torch.testing.assert_close(RandomFourierFeatures(4000, seed=3).w, rff.w)
    assert not torch.equal(RandomFourierFeatures(4000, seed=4).w, rff.w)


def test_attention_matches_a_loop_over_positions():
    """Each position n gets x_n + W_out sum_m softmax_m(q_n . k_m / sqrt(d)) v_m, head by head."""
    torch.manual_seed(0)
    attn, x = Attention(8, groups=2, heads=2), torch.randn(2, 8, 3, 3)
    qkv = attn.qkv(attn.norm(x)).reshape(2, 3, 8, 9).double()
    mixed = torch.zeros(2, 8, 9, dtype=torch.float64)
    for b in range(2):
        for head in (slice(0, 4), slice(4, 8)):
            q, k, v = qkv[b, 0, head], qkv[b, 1, head], qkv[b, 2, head]
            for n in range(9):
                w = torch.softmax(torch.stack([q[:, n] @ k[:, m] for m in range(9)]) / math.sqrt(4), dim=0)
                mixed[b, head, n] = sum(w[m] * v[:, m] for m in range(9))
    expected = x + attn.out(mixed.float().reshape(2, 8, 3, 3))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- conditioning


@pytest.mark.parametrize("time_injection", ["add", "adagn"])
@pytest.mark.parametrize("time_embedding", ["sinusoidal", "fourier"])
def test_time_conditions_the_unet(time_embedding, time_injection):
    torch.manual_seed(0)
    model = tiny_unet(time_embedding=time_embedding, time_injection=time_injection)
    perturb_last_layer(model)
    x_t = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1)
    out = model(x_t, torch.tensor([1, 500, 1000]))
    assert (out[0] - out[1]).abs().max() > 1e-4 and (out[1] - out[2]).abs().max() > 1e-4


@pytest.mark.parametrize("time_embedding", ["sinusoidal", "fourier"])
def test_time_conditions_the_mlp(time_embedding):
    torch.manual_seed(0)
    model = MLPEps(time_embedding=time_embedding)
    perturb_last_layer(model)
    out = model(torch.randn(1, 2).expand(3, -1), torch.tensor([1, 500, 1000]))
    assert (out[0] - out[1]).abs().max() > 1e-4 and (out[1] - out[2]).abs().max() > 1e-4


@pytest.mark.parametrize("make", [lambda: tiny_unet(num_classes=3), lambda: MLPEps(num_classes=3)])
def test_class_conditioning_and_null_token(make):
    torch.manual_seed(0)
    model = make()
    perturb_last_layer(model)
    shape = (1, 1, 8, 8) if isinstance(model, UNet) else (1, 2)
    x_t, t = torch.randn(shape).expand(4, *shape[1:]), torch.full((4,), 300)
    out = model(x_t, t, torch.tensor([0, 1, 2, 3]))
    for i in range(4):
        for j in range(i):
            assert (out[i] - out[j]).abs().max() > 1e-5  # every label, the null one included, changes eps
    torch.testing.assert_close(model(x_t, t), model(x_t, t, torch.full((4,), 3)))  # y=None is the null token


def test_scalar_t_broadcasts_and_float_t_matches_steps():
    torch.manual_seed(0)
    model = tiny_unet()
    perturb_last_layer(model)
    x_t = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(model(x_t, 7), model(x_t, torch.tensor([7, 7])))
    torch.testing.assert_close(model(x_t, 0.25), model(x_t, torch.tensor([250, 250])), atol=1e-5, rtol=1e-4)


def test_count_parameters_by_hand():
    assert count_parameters(nn.Linear(3, 4)) == 3 * 4 + 4
    frozen = nn.Linear(3, 4).requires_grad_(False)
    assert count_parameters(frozen) == 0 and count_parameters(frozen, trainable_only=False) == 16
    # fixed Fourier frequencies are buffers, so both embeddings give the same count
    assert count_parameters(tiny_unet(time_embedding="fourier")) == count_parameters(tiny_unet())


# ---------------------------------------------------------------- training signal


@pytest.mark.parametrize("time_injection", ["add", "adagn"])
def test_gradients_reach_every_unet_parameter(time_injection):
    torch.manual_seed(0)
    model = tiny_unet(time_injection=time_injection, num_classes=3, attention_resolutions=(4,), num_res_blocks=2)
    perturb_last_layer(model)
    out = model(torch.randn(4, 1, 8, 8), torch.tensor([1, 10, 100, 1000]), torch.tensor([0, 1, 2, 3]))
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


def test_gradients_reach_every_mlp_parameter():
    torch.manual_seed(0)
    model = MLPEps(num_classes=3)
    perturb_last_layer(model)
    model(torch.randn(4, 2), torch.tensor([1, 10, 100, 1000]), torch.tensor([0, 1, 2, 3])).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().max() > 0, name


@pytest.mark.parametrize("make, shape", [(lambda: tiny_unet(time_injection="adagn"), (16, 1, 8, 8)),
                                         (lambda: tiny_unet(time_injection="add"), (16, 1, 8, 8)),
                                         (lambda: MLPEps(), (64, 2))])
def test_overfits_one_batch(make, shape):
    """A few dozen Adam steps of L_simple on one fixed (x0, t, eps) batch must cut the loss well below its start."""
    torch.manual_seed(0)
    model, schedule = make(), NoiseSchedule.linear(T=100)
    x0, eps, t = torch.rand(shape) * 2 - 1, torch.randn(shape), torch.randint(1, 101, (shape[0],))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = l_simple(model, schedule, x0, t=t, noise=eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(in_channels=0), ValueError, "in_channels"),
    (dict(in_channels=1.0), TypeError, "in_channels"),
    (dict(out_channels=0), ValueError, "out_channels"),
    (dict(base_channels=0), ValueError, "base_channels"),
    (dict(base_channels=12, num_groups=8), ValueError, "num_groups"),
    (dict(num_groups=0), ValueError, "num_groups"),
    (dict(channel_mults=()), ValueError, "channel_mults"),
    (dict(channel_mults="12"), TypeError, "channel_mults"),
    (dict(channel_mults=(1, 0)), ValueError, "channel_mults"),
    (dict(num_res_blocks=0), ValueError, "num_res_blocks"),
    (dict(attention_resolutions=(3,)), ValueError, "attention_resolutions"),
    (dict(attention_resolutions=4), TypeError, "attention_resolutions"),
    (dict(time_embedding="learned"), ValueError, "time_embedding"),
    (dict(time_injection="film"), ValueError, "time_injection"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(dropout=-0.1), ValueError, "dropout"),
    (dict(num_classes=0), ValueError, "num_classes"),
    (dict(num_classes=True), TypeError, "num_classes"),
    (dict(image_size=12, channel_mults=(1, 2, 2, 2)), ValueError, "image_size"),
    (dict(attention_heads=3), ValueError, "attention_heads"),
])
def test_unet_rejects_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        UNet(**{**dict(num_groups=8), **kwargs})


@pytest.mark.parametrize("call, error, name", [
    (lambda m: m(torch.randn(2, 3, 8, 8), torch.tensor([1, 2])), ValueError, "x_t"),
    (lambda m: m(torch.randn(2, 8, 8), torch.tensor([1, 2])), ValueError, "x_t"),
    (lambda m: m(torch.randn(2, 1, 8, 7), torch.tensor([1, 2])), ValueError, "x_t"),
    (lambda m: m(torch.zeros(2, 1, 8, 8, dtype=torch.long), torch.tensor([1, 2])), TypeError, "x_t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([1, 2, 3])), ValueError, "t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.ones(2, 1, dtype=torch.long)), ValueError, "t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([1.5, 0.5])), ValueError, "t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([-1, 2])), ValueError, "t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([True, False])), TypeError, "t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), "5"), TypeError, "t"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 4])), ValueError, "y"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([-1, 0])), ValueError, "y"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0])), ValueError, "y"),
    (lambda m: m(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0.0, 1.0])), TypeError, "y"),
])
def test_unet_forward_rejects_bad_input(call, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        call(tiny_unet(num_classes=3))


def test_unconditional_net_rejects_labels():
    with pytest.raises(ValueError, match="y"):
        tiny_unet()(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="y"):
        MLPEps()(torch.randn(2, 2), torch.tensor([1, 2]), torch.tensor([0, 1]))


@pytest.mark.parametrize("make, error, name", [
    (lambda: MLPEps(dim=0), ValueError, "dim"),
    (lambda: MLPEps(hidden=1), ValueError, "hidden"),
    (lambda: MLPEps(depth=0), ValueError, "depth"),
    (lambda: MLPEps(depth=2.0), TypeError, "depth"),
    (lambda: MLPEps(time_embedding="none"), ValueError, "time_embedding"),
    (lambda: MLPEps(num_classes=-1), ValueError, "num_classes"),
    (lambda: MLPEps()(torch.randn(4, 3), torch.ones(4, dtype=torch.long)), ValueError, "x_t"),
    (lambda: MLPEps()(torch.randn(4, 2), torch.ones(3, dtype=torch.long)), ValueError, "t"),
    (lambda: SinusoidalEmbedding(7), ValueError, "dim"),
    (lambda: SinusoidalEmbedding(0), ValueError, "dim"),
    (lambda: SinusoidalEmbedding(8, max_period=1.0), ValueError, "max_period"),
    (lambda: SinusoidalEmbedding(8)(torch.ones(2, 2, dtype=torch.long)), ValueError, "t"),
    (lambda: RandomFourierFeatures(8, scale=0.0), ValueError, "scale"),
    (lambda: RandomFourierFeatures(8, seed=0.5), TypeError, "seed"),
    (lambda: RandomFourierFeatures(8)(torch.tensor([2.0])), ValueError, "t"),
    (lambda: LabelEmbedding(3, 8)(torch.tensor([0, 1]), batch=3), ValueError, "y"),
    (lambda: count_parameters("model"), TypeError, "model"),
])
def test_mlp_and_embeddings_reject_bad_arguments(make, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        make()


# ---------------------------------------------------------------------------------- conditioning on an image

def test_image_conditioned_concatenates_the_bound_image_and_samples():
    """ImageConditioned calls the network on cat([x_t, image], dim=1) (and any extra conditioning after t), and the
    wrapped network is an eps-model every sampler takes: here a U-Net with 1 + 1 input channels."""
    from ddpm_scratch.nets import UNet
    from ddpm_scratch.nets.protocol import ImageConditioned
    from ddpm_scratch.sampling import sample
    from ddpm_scratch.schedules import NoiseSchedule

    image = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []

    def network(x, t, level):
        seen.append((x.clone(), t, level))
        return x[:, :1] * 0.5

    x_t, t, level = torch.randn(3, 1, 8, 8), torch.tensor([4, 5, 6]), torch.tensor([0.1, 0.2, 0.3])
    out = ImageConditioned(network, image, level)(x_t, t)
    torch.testing.assert_close(seen[0][0], torch.cat([x_t, image], dim=1))
    assert seen[0][1] is t and seen[0][2] is level
    torch.testing.assert_close(out, 0.5 * x_t)
    with pytest.raises(ValueError, match="must share the batch size"):
        ImageConditioned(network, image)(torch.randn(2, 1, 8, 8), t[:2])
    with pytest.raises(ValueError, match="image must be a float tensor"):
        ImageConditioned(network, torch.zeros(3, 8, 8))

    unet = UNet(in_channels=2, out_channels=1, base_channels=8, channel_mults=(1,), attention_resolutions=())
    x0 = sample(ImageConditioned(unet, image), NoiseSchedule.linear(20), (3, 1, 8, 8), sampler="ddim", num_steps=4,
                generator=torch.Generator().manual_seed(1))
    assert x0.shape == (3, 1, 8, 8) and torch.isfinite(x0).all()
