"""ddgan.py: a denoising diffusion GAN. References from the equations: DDPM eq. 7 written out here for the posterior
step, the forward kernels' moments for the real pairs, the exact reverse kernel (reverse_kernel.py, tested on its
own) as the perfect generator, closed forms of the GAN losses for a constant and a linear discriminator. Training
(machinery/gan_training.py) is the one loop with two updates, D's then G's."""

import math

import pytest
import torch
from torch import nn

from ddpm_scratch.ddgan import (
    DDGAN,
    StepMLP,
    ddgan_sample,
    discriminator_loss,
    generator_loss,
    posterior_sample,
    real_pair,
)
from ddpm_scratch.machinery.gan_training import train_ddgan
from ddpm_scratch.machinery.loop import TrainingDiverged
from ddpm_scratch.reverse_kernel import reverse_kernel_sample
from ddpm_scratch.schedules import NoiseSchedule, respaced
from ddpm_scratch.score import GaussianMixture

F64 = torch.float64
SCHEDULE = respaced(NoiseSchedule.linear(), 4)   # alpha_bar = 0.52, 0.079, 0.0034, 4e-5: DDGAN's T = 4 schedule
TWO_POINTS = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])


def small_model(seed=0, schedule=SCHEDULE):
    torch.manual_seed(seed)
    return DDGAN.build(schedule, dim=2, z_dim=3, hidden=16, depth=1)


def test_shapes():
    model = small_model()
    x, t = torch.randn(5, 2), torch.tensor([1, 2, 3, 4, 4])
    assert model.G(x, torch.randn(5, 3), t=t).shape == (5, 2)
    assert model.D(x, x, t=t).shape == (5, 1)
    assert model.generate_x0(x, t).shape == (5, 2)
    assert ddgan_sample(model.G, SCHEDULE, (7, 2)).shape == (7, 2)
    with pytest.raises(ValueError, match=r"concatenate to \(B, 5\)"):
        model.G(x, torch.randn(5, 2), t=t)
    with pytest.raises(ValueError, match="t must lie in 1..T=4"):
        model.G(x, torch.randn(5, 3), t=torch.full((5,), 5))


# ---------------------------------------------------------------------------------- the posterior step

def test_posterior_sample_has_ddpm_eq7_moments():
    """x_{t-1} ~ N(mu_tilde, beta_tilde I), mu_tilde = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0
    + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t, beta_tilde = (1 - abar_{t-1}) / (1 - abar_t) beta_t."""
    n, g = 100_000, torch.Generator().manual_seed(0)
    x0, x_t = torch.tensor([[0.7, -1.2]], dtype=F64), torch.tensor([[0.3, 0.5]], dtype=F64)
    for t in (2, 3, 4):
        abar, abar_prev = SCHEDULE.alpha_bars[t].item(), SCHEDULE.alpha_bars[t - 1].item()
        beta = 1 - abar / abar_prev
        mean = (math.sqrt(abar_prev) * beta * x0 + math.sqrt(1 - beta) * (1 - abar_prev) * x_t) / (1 - abar)
        var = (1 - abar_prev) / (1 - abar) * beta
        x = posterior_sample(SCHEDULE, x_t.expand(n, 2), t, x0=x0.expand(n, 2), generator=g)
        assert ((x.mean(0) - mean[0]).abs() < 5 * math.sqrt(var / n)).all()
        assert ((x.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all()


def test_the_last_posterior_step_returns_x0():
    x0, x_t = torch.randn(6, 2), torch.randn(6, 2)
    x = posterior_sample(SCHEDULE, x_t, 1, x0=x0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-6)  # beta_tilde_1 = 0; mu_tilde = 1 x0 + 0 x_t up to round-off


def test_real_pairs_have_the_forward_kernels_moments():
    """x0 = c: x_{t-1} ~ N(sqrt(abar_{t-1}) c, 1 - abar_{t-1}), x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) eps, so
    Cov(x_{t-1}, x_t) = sqrt(alpha_t) (1 - abar_{t-1}) per coordinate."""
    n, g, t = 100_000, torch.Generator().manual_seed(1), 3
    c = torch.tensor([1.5, -0.5], dtype=F64)
    x_prev, x_t = real_pair(SCHEDULE, c.expand(n, 2), torch.full((n,), t), generator=g)
    abar_prev, abar, alpha = (SCHEDULE.alpha_bars[t - 1].item(), SCHEDULE.alpha_bars[t].item(),
                              SCHEDULE.alphas[t].item())
    for x, m, v in [(x_prev, math.sqrt(abar_prev) * c, 1 - abar_prev), (x_t, math.sqrt(abar) * c, 1 - abar)]:
        assert ((x.mean(0) - m).abs() < 5 * math.sqrt(v / n)).all()
        assert ((x.var(0) - v).abs() < 5 * v * math.sqrt(2 / n)).all()
    cov = ((x_prev - x_prev.mean(0)) * (x_t - x_t.mean(0))).mean(0)
    expected = math.sqrt(alpha) * (1 - abar_prev)
    assert ((cov - expected).abs() < 5 * math.sqrt((1 - abar_prev) * (1 - abar) / n) * 1.5).all()


# ---------------------------------------------------------------------------------- sampling

def test_sampling_with_the_exact_x0_sampler_returns_the_data_law_in_two_steps():
    """G*(x_t, z, t) ~ q(x0 | x_t) makes every DDGAN step the exact kernel q(x_{t-1} | x_t): 2 steps give the data.
    Checked on 8 Gaussians: the mean and the mean radius of 100k samples within 5 standard errors."""
    angle = torch.arange(8, dtype=F64) * math.pi / 4
    mixture = GaussianMixture(torch.ones(8), math.sqrt(2) * torch.stack([angle.cos(), angle.sin()], 1),
                              torch.full((8,), 0.01))
    schedule = respaced(NoiseSchedule.linear(), 2)
    g = torch.Generator().manual_seed(3)
    steps = []

    def exact_G(x_t, z, t):
        steps.append(int(t[0]))
        return reverse_kernel_sample(mixture, schedule, x_t, int(t[0]), 0, generator=g)

    n = 100_000
    x = ddgan_sample(exact_G, schedule, (n, 2), z_dim=1, generator=g, dtype=F64)
    assert steps == [2, 1]
    assert (x.mean(0).abs() < 5 * math.sqrt(1.01 / n)).all()  # per-axis variance of the data: 1 + 0.01
    radius_sd = 0.1  # the radius of a draw is sqrt(2) + N(0, 0.1^2) radially, up to O(0.01) curvature
    assert abs(x.norm(dim=1).mean().item() - math.sqrt(2)) < 5 * radius_sd / math.sqrt(n) + 0.01


def test_sampling_with_a_constant_generator_ends_at_that_constant():
    c = torch.tensor([0.25, -2.0])
    x = ddgan_sample(lambda x_t, z, t: c.expand_as(x_t), SCHEDULE, (5, 2), z_dim=2,
                     generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, c.expand(5, 2), rtol=0, atol=1e-6)  # the last step (t = 1) returns x0' itself


# ---------------------------------------------------------------------------------- the losses

class Linear(nn.Module):
    """D(x_{t-1}, x_t, t) = w . x_{t-1}: its gradient in x_{t-1} is w, so R1 = ||w||^2."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.as_tensor(w))

    def forward(self, x_prev, x_t, *, t):
        return (x_prev @ self.w)[:, None]


def test_losses_of_a_constant_and_a_linear_discriminator():
    model = small_model()
    x0 = TWO_POINTS.repeat(16, 1)
    model.D = Linear([0.0, 0.0])  # D = 0: L_D = 2 log 2, L_G = log 2, R1 = 0
    torch.testing.assert_close(discriminator_loss(model, x0, r1_gamma=3.0).item(), 2 * math.log(2))
    torch.testing.assert_close(generator_loss(model, x0).item(), math.log(2))
    model.D = Linear([0.6, -0.8])  # ||w||^2 = 1: raising gamma by 2 adds gamma/2 ||w||^2 = 1 on the same draws
    losses = [discriminator_loss(model, x0, r1_gamma=gamma, generator=torch.Generator().manual_seed(0)).item()
              for gamma in (0.0, 2.0)]
    assert losses[1] - losses[0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("which", ["D", "G"])
def test_a_small_gradient_step_lowers_each_loss_on_the_same_draws(which):
    model, x0 = small_model(), TWO_POINTS.repeat(32, 1)
    loss_fn = discriminator_loss if which == "D" else generator_loss
    net = getattr(model, which)

    def loss():
        return loss_fn(model, x0, generator=torch.Generator().manual_seed(5))

    before = loss()
    net.zero_grad()
    before.backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= 1e-3 * p.grad
    assert loss().item() < before.item() - 1e-6


def test_training_learns_two_points():
    """300 steps on two points: many samples land on one of them, untrained almost none (seeds 0-3 gave 46-77%)."""
    schedule = respaced(NoiseSchedule.linear(), 2)

    def near_fraction(G):
        x = ddgan_sample(G, schedule, (1000, 2), generator=torch.Generator().manual_seed(0))
        return (torch.cdist(x, TWO_POINTS).min(dim=1).values < 0.25).float().mean().item()

    model = train_ddgan(TWO_POINTS, schedule, steps=300, batch_size=64, lr=3e-3, hidden=32, depth=2, progress=False)
    untrained = DDGAN.build(schedule, hidden=32, depth=2)
    assert near_fraction(untrained.G) < 0.1
    assert near_fraction(model.G) > 0.4
    assert len(model.history["D"]) == len(model.history["G"]) == 300


def test_training_is_reproducible_and_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    runs = [train_ddgan(TWO_POINTS, SCHEDULE, steps=5, batch_size=8, hidden=8, depth=1, seed=seed, progress=False)
            for seed in (0, 0, 1)]
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(runs[0].G.state_dict().values(), runs[1].G.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert runs[0].history == runs[1].history
    assert runs[0].history != runs[2].history


def test_training_is_two_updates_each_on_its_own_network(monkeypatch):
    """Each step: D's update sees the G and D of the previous step, moves D only; G's sees the new D, moves G only.
    The loss functions are wrapped to record the state they see; the run is the same as without the wrapping."""
    import ddpm_scratch.machinery.gan_training as gan_training

    seen = []

    def recording(loss_fn, name):
        def loss(model, x0, **kwargs):
            seen.append((name, {k: v.detach().clone() for k, v in model.state_dict().items()}))
            return loss_fn(model, x0, **kwargs)
        return loss

    monkeypatch.setattr(gan_training, "discriminator_loss", recording(discriminator_loss, "D"))
    monkeypatch.setattr(gan_training, "generator_loss", recording(generator_loss, "G"))
    model = train_ddgan(TWO_POINTS, SCHEDULE, steps=3, batch_size=8, hidden=8, depth=1, progress=False)
    monkeypatch.undo()
    plain = train_ddgan(TWO_POINTS, SCHEDULE, steps=3, batch_size=8, hidden=8, depth=1, progress=False)
    assert [name for name, _ in seen] == ["D", "G"] * 3
    states = [state for _, state in seen] + [model.state_dict()]
    for before, after, moved in zip(states[:-1], states[1:], ["D.", "G."] * 3, strict=True):
        for key in before:
            assert torch.equal(before[key], after[key]) != key.startswith(moved), (moved, key)
    for a, b in zip(model.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_non_finite_loss_stops_training_naming_the_step(monkeypatch):
    import ddpm_scratch.machinery.gan_training as gan_training

    calls = []

    def exploding(model, x0, **kwargs):
        calls.append(1)
        loss = generator_loss(model, x0, **kwargs)
        return loss * math.nan if len(calls) == 3 else loss

    monkeypatch.setattr(gan_training, "generator_loss", exploding)
    with pytest.raises(TrainingDiverged, match=r"'G': nan\} at step 3"):
        train_ddgan(TWO_POINTS, SCHEDULE, steps=10, batch_size=8, hidden=8, depth=1, progress=False)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="data must have shape"):
        train_ddgan(torch.zeros(5), SCHEDULE, steps=1, progress=False)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        train_ddgan(TWO_POINTS, "linear", steps=1, progress=False)
    with pytest.raises(ValueError, match="r1_gamma must lie in"):
        train_ddgan(TWO_POINTS, SCHEDULE, steps=1, r1_gamma=-1.0, progress=False)
    with pytest.raises(ValueError, match="shape must be"):
        ddgan_sample(small_model().G, SCHEDULE, (4,))
    with pytest.raises(ValueError, match="z_dim must be given"):
        ddgan_sample(lambda x, z, t: x, SCHEDULE, (4, 2))
    with pytest.raises(ValueError, match="x_T has shape"):
        ddgan_sample(small_model().G, SCHEDULE, (4, 2), x_T=torch.zeros(3, 2))
    assert isinstance(small_model().G, StepMLP)
