"""Latent diffusion (applications.latent, nets.autoencoder, machinery.latent_runs): the autoencoder's shapes, the KL
term against torch.distributions, the loss against its definition, LDM's scale factor, the encode/decode round
trip, latent sampling with a stand-in eps-model, fit's caching, and a quick end-to-end run."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from ddpm_scratch.applications import latent
from ddpm_scratch.applications.latent import FlatEps, LatentSpace, autoencoder_loss, kl_standard_normal
from ddpm_scratch.nets import MLPEps
from ddpm_scratch.nets.autoencoder import Autoencoder
from ddpm_scratch.schedules import NoiseSchedule


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


class Scaled(nn.Module):
    """A stand-in autoencoder with known posterior: mean = a * (the 2x2-block averages of x0), log_var fixed;
    decode(z) = the blocks upsampled, divided by a. Its latent spread is a times the images'."""

    latent_shape = (1, 4, 4)

    def __init__(self, a: float, log_var: float) -> None:
        super().__init__()
        self.a, self.log_var = a, log_var

    def encode(self, x0):
        mean = self.a * nn.functional.avg_pool2d(x0, 2)
        return mean, torch.full_like(mean, self.log_var)

    def decode(self, z):
        return nn.functional.interpolate(z / self.a, scale_factor=2, mode="nearest")


# ----------------------------------------------------------------------------------------------- the autoencoder

@pytest.mark.parametrize("channels, latent", [((16, 32), (2, 4, 4)), ((8, 16, 16), (3, 2, 2)), ((8,), (3, 8, 8))])
def test_autoencoder_shapes(channels, latent):
    c = latent[0]
    ae = Autoencoder(in_channels=1, latent_channels=c, channels=channels, image_size=8)
    assert ae.latent_shape == latent
    x0 = images(5)
    mean, log_var = ae.encode(x0)
    assert mean.shape == log_var.shape == (5, *latent)
    assert ae.decode(mean).shape == x0.shape
    x0_hat, mean2, _ = ae(x0, generator=torch.Generator().manual_seed(0))
    assert x0_hat.shape == x0.shape and torch.equal(mean, mean2)


def test_autoencoder_is_small_and_checks_its_inputs():
    ae = Autoencoder()
    assert 1_000 < sum(p.numel() for p in ae.parameters()) < 100_000
    with pytest.raises(ValueError, match="x0"):
        ae.encode(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="z"):
        ae.decode(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="image_size"):
        Autoencoder(channels=(8, 8, 8, 8), image_size=4)


def test_autoencoder_draw_is_the_reparameterised_posterior():
    """forward decodes mean + sigma * eps with eps from the generator: a zero log-variance and a fixed eps give
    decode(mean + eps) exactly."""
    ae = Autoencoder()
    x0 = images(4)
    _, mean, log_var = ae(x0, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
    expected = ae.decode(mean + torch.exp(0.5 * log_var) * eps)
    assert torch.allclose(ae(x0, generator=torch.Generator().manual_seed(3))[0], expected)


# ----------------------------------------------------------------------------------------------- the loss

def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean, log_var = torch.randn(6, 2, 4, 4, generator=g), torch.randn(6, 2, 4, 4, generator=g)
    reference = kl_divergence(Normal(mean, torch.exp(0.5 * log_var)), Normal(0.0, 1.0)).flatten(1).sum(1)
    assert torch.allclose(kl_standard_normal(mean, log_var), reference, atol=1e-5)
    assert torch.all(kl_standard_normal(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def test_kl_matches_a_monte_carlo_estimate():
    """E_q[log q(z) - log p(z)] over 200k draws, within 5 standard errors of the estimate."""
    mean, log_var = torch.tensor([[0.7, -1.2]], dtype=torch.float64), torch.tensor([[-0.5, 0.8]], dtype=torch.float64)
    q, p = Normal(mean, torch.exp(0.5 * log_var)), Normal(0.0, 1.0)
    eps = torch.randn(200_000, 1, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = mean + torch.exp(0.5 * log_var) * eps
    terms = (q.log_prob(z) - p.log_prob(z)).sum(-1).flatten()
    se = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - kl_standard_normal(mean, log_var)[0]) < 5 * se


@pytest.mark.parametrize("reconstruction", ["l1", "l2"])
def test_autoencoder_loss_is_reconstruction_plus_beta_kl(reconstruction):
    ae = Scaled(a=2.0, log_var=-1.0)
    x0 = images(3)
    beta = 0.3
    g = torch.Generator().manual_seed(5)
    loss = autoencoder_loss(ae, x0, beta=beta, reconstruction=reconstruction, generator=g)
    mean, log_var = ae.encode(x0)
    z = mean + math.exp(-0.5) * torch.randn(mean.shape, generator=torch.Generator().manual_seed(5))
    error = ae.decode(z) - x0
    rec = error.abs() if reconstruction == "l1" else error.pow(2)
    kl = (0.5 * (mean**2 + math.exp(-1.0) - 1 + 1.0)).flatten(1).sum(1)
    assert torch.allclose(loss, (rec.flatten(1).sum(1) + beta * kl).mean())
    with pytest.raises(ValueError, match="reconstruction"):
        autoencoder_loss(ae, x0, reconstruction="l3")
    with pytest.raises(ValueError, match="beta"):
        autoencoder_loss(ae, x0, beta=-1.0)


# ----------------------------------------------------------------------------------------------- the latent space

def test_scale_factor_gives_unit_variance_and_round_trips():
    """scale = 1 / std of the draws: the rescaled latents have std 1 (to sampling error: with sigma tiny the draws
    are the means, exactly rescaled); decode(encode(x0)) with the mean is the autoencoder's own reconstruction."""
    ae = Scaled(a=5.0, log_var=-20.0)
    x0 = images(400)
    scale = latent.latent_scale(ae, x0, generator=torch.Generator().manual_seed(0))
    space = LatentSpace(ae, scale)
    z = space.encode(x0, generator=torch.Generator().manual_seed(1))
    assert abs(z.std().item() - 1) < 1e-3
    mean = ae.encode(x0)[0]
    assert abs(scale - 1 / mean.std().item()) < 1e-3 * scale
    assert torch.allclose(space.encode(x0, sample=False), scale * mean)
    assert torch.allclose(space.decode(space.encode(x0, sample=False)), ae.decode(mean), atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        LatentSpace(ae, 0.0)


def test_latent_loss_is_l_simple_on_the_rescaled_draws():
    """With a model predicting 0 the loss is E||eps||^2 over the latent, 1 up to its sampling error."""
    space = LatentSpace(Scaled(a=1.0, log_var=-2.0), 3.0)
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    n = 16 * 512
    g = torch.Generator().manual_seed(0)
    loss = latent.latent_loss(zero, NoiseSchedule.linear(100), space, images(512), generator=g)
    assert abs(loss.item() - 1) < 5 * math.sqrt(2 / n)


def test_sample_latent_shape_range_and_generator():
    """A stand-in eps-model (predicting 0) on the latent shape; the decoded images are (B, C, H, W) in [-1, 1], the
    same for the same seed, and not clamped when asked."""
    space = LatentSpace(Scaled(a=0.1, log_var=-5.0), 1.0)  # decode multiplies by 10: far outside [-1, 1]
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    schedule = NoiseSchedule.linear(100)
    x = latent.sample_latent(zero, schedule, space, 6, num_steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    again = latent.sample_latent(zero, schedule, space, 6, num_steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)
    raw = latent.sample_latent(zero, schedule, space, 6, sampler="ddim", num_steps=5, clamp=False,
                        generator=torch.Generator().manual_seed(0))
    assert raw.abs().max() > 1
    with pytest.raises(ValueError, match="sampler"):
        latent.sample_latent(zero, schedule, space, 2, sampler="nope")


def test_flat_eps_wraps_a_vector_network():
    net = MLPEps(dim=32, hidden=16, depth=1)
    nn.init.normal_(net.out.weight)
    z = torch.randn(3, 2, 4, 4)
    t = torch.tensor([1, 5, 9])
    assert torch.equal(FlatEps(net)(z, t), net(z.flatten(1), t).view(3, 2, 4, 4))


# ----------------------------------------------------------------------------------------------- the run

def test_fit_caches_the_autoencoder_stage(tmp_path, monkeypatch):
    """A second call with the same record loads the checkpoint: the loop is not run again, the weights are equal."""
    from ddpm_scratch.machinery import applications
    from ddpm_scratch.machinery.loop import LoopSettings

    x0 = images(64)
    settings = LoopSettings(steps=3, batch_size=16, lr=1e-3, ema_decay=0.9)

    def objective(model, batch, *, generator=None):
        return autoencoder_loss(model, batch.x0, generator=generator)

    first = applications.fit(Autoencoder, objective, x0, settings, out=tmp_path, record={"k": 1}, seed=0,
                             progress=False)
    monkeypatch.setattr(applications, "run_loop", lambda *a, **k: pytest.fail("trained again"))
    second = applications.fit(Autoencoder, objective, x0, settings, out=tmp_path, record={"k": 1}, seed=0,
                              progress=False)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_quick_run_writes_its_picture_and_finite_figures(tmp_path):
    from ddpm_scratch.machinery.applications import APPLICATIONS, RunSettings
    from ddpm_scratch.machinery.latent_runs import run_latent  # registers "latent"

    assert APPLICATIONS["latent"].run is run_latent
    report = APPLICATIONS["latent"].run(tmp_path, RunSettings(quick=True, progress=False, device="cpu"))
    assert (tmp_path / "latent" / "latent.png").exists() and (tmp_path / "latent" / "autoencoder").is_dir()
    assert all(p.exists() for p in report.pictures)
    assert report.figures and all(math.isfinite(v) for v in report.figures.values()), report.figures
    assert report.figures["latent_model_parameters"] > 0 and report.figures["scale_factor"] > 0
