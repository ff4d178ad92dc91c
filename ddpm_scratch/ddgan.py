"""Lecture 4: denoising diffusion GANs (Xiao, Kreis & Vahdat 2022): a few big reverse steps, each a conditional GAN.

With T = 2-4 steps the true reverse kernel q(x_{t-1} | x_t) is multimodal (`reverse_kernel.py`), so DDPM's Gaussian
step cannot fit it however well its network is trained. A DDGAN keeps the forward process and replaces the
Gaussian by an implicit model that can have many modes (paper sec. 3.3):

    p_theta(x_{t-1} | x_t) = int q(x_{t-1} | x_t, x0) p_theta(x0 | x_t) dx0,    x0' = G(x_t, z, t),  z ~ N(0, I)

i.e. the generator G predicts a clean x0' from x_t and a latent z, and x_{t-1} is drawn from DDPM's Gaussian
posterior q(x_{t-1} | x_t, x0') (DDPM eq. 7, `forward.q_posterior`; at t = 1 its variance is 0 and x_0 = x0').
If G drew x0' from the exact q(x0 | x_t), p_theta would be the exact kernel (`reverse_kernel`, the case s = 0).

Training (sec. 3.2; NVlabs/denoising-diffusion-gan, train_ddgan.py): a discriminator D(x_{t-1}, x_t, t) tells real
pairs from fake ones, step by step,

    real   x0 ~ data, t ~ U{1..T}, x_{t-1} ~ q(x_{t-1} | x0), x_t ~ q(x_t | x_{t-1})      (lecture 1's kernels)
    fake   the same x_t, x_{t-1}' ~ p_theta(x_{t-1} | x_t)                                   (G + posterior)
    L_D = E softplus(-D(x_{t-1}, x_t, t)) + E softplus(D(x_{t-1}', x_t, t)) + gamma/2 E ||grad_{x_{t-1}} D(real)||^2
    L_G = E softplus(-D(x_{t-1}', x_t, t))                        (the non-saturating GAN loss, Goodfellow et al.)

The last term of L_D is the R1 penalty (Mescheder et al. 2018) on real pairs, which keeps D smooth where the data
is. Sampling runs the chain x_T ~ N(0, I) -> x_{T-1} -> ... -> x_0 with one G call per step.

Training is the course's one loop with two updates per step, D's then G's (`machinery.gan_training.train_ddgan`).

Names: the networks are `G` and `D`, the paper's letters; `generator` stays the random-number generator, as
everywhere in the package. The schedule is any T-step NoiseSchedule; `respaced(NoiseSchedule.linear(), T)` has
almost the paper's VP schedule (T = 4: alpha_bar = 0.52, 0.079, 0.0034, 4e-5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import check_int, check_timestep
from .forward import make_noise, q_posterior, q_sample, q_step
from .reverse_steps import initial_noise
from .schedules import NoiseSchedule, check_schedule

__all__ = ["StepMLP", "DDGAN", "posterior_sample", "real_pair", "fake_previous", "discriminator_loss",
           "generator_loss", "ddgan_sample"]

GeneratorFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # G(x_t, z, t) -> x0'


class StepMLP(nn.Module):
    """f(*inputs, t): the inputs (B, d_i) concatenated, a learned embedding of the step t in 1..T added to every
    residual block (h <- h + W2 SiLU(W1 SiLU(h + e_t))), a linear map to out_dim. G and D are both one of these."""

    def __init__(self, in_dim: int, out_dim: int, T: int, hidden: int = 64, depth: int = 3) -> None:
        super().__init__()
        self.in_dim, self.T = check_int("in_dim", in_dim), check_int("T", T)
        check_int("out_dim", out_dim)
        check_int("hidden", hidden, low=2)
        check_int("depth", depth)
        self.inp = nn.Linear(in_dim, hidden)
        self.step_embed = nn.Embedding(T + 1, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, *inputs: Tensor, t: Tensor) -> Tensor:
        x = torch.cat(inputs, dim=1)
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"the inputs must concatenate to (B, {self.in_dim}), got {tuple(x.shape)}")
        e = self.step_embed(check_timestep(t, self.T, batch=x.shape[0], device=x.device))
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h + e)
        return self.out(F.silu(h))


class DDGAN(nn.Module):
    """A denoising diffusion GAN on a T-step schedule for data of dimension dim: the generator G(x_t, z, t) -> x0'
    (B, dim) with z (B, z_dim), and the discriminator D(x_{t-1}, x_t, t) -> (B, 1) logits, as submodules (one
    module, so the course's one training loop trains both: `machinery.gan_training.train_ddgan`). history: the losses
    of that training, {"D": [...], "G": [...]}, one entry per step.
    """

    def __init__(self, G: StepMLP, D: StepMLP, schedule: NoiseSchedule, dim: int, z_dim: int) -> None:
        super().__init__()
        self.G, self.D, self.schedule, self.dim, self.z_dim = G, D, check_schedule(schedule), dim, z_dim
        self.history: dict[str, list[float]] = {"D": [], "G": []}

    @classmethod
    def build(cls, schedule: NoiseSchedule, dim: int = 2, z_dim: int = 8, hidden: int = 64, depth: int = 3
              ) -> DDGAN:
        """Fresh networks (weights from torch's global generator: seed it, or use `train_ddgan(seed=...)`)."""
        check_schedule(schedule)
        check_int("dim", dim)
        check_int("z_dim", z_dim)
        G = StepMLP(dim + z_dim, dim, schedule.T, hidden, depth)
        D = StepMLP(2 * dim, 1, schedule.T, hidden, depth)
        return cls(G, D, schedule, dim, z_dim)

    def generate_x0(self, x_t: Tensor, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """x0' = G(x_t, z, t) with a fresh z ~ N(0, I) per row."""
        z = torch.randn(x_t.shape[0], self.z_dim, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return self.G(x_t, z, t=t)


def posterior_sample(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, x0: Tensor,
                     noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """x_{t-1} ~ q(x_{t-1} | x_t, x0) = N(mu_tilde_t(x_t, x0), beta_tilde_t I) (DDPM eq. 7): mean + sqrt(var) noise.

    x_t, x0: (B, ...).  t: int or (B,) in 1..T.  At t = 1 the variance is 0 and the result is x0 itself.
    noise: the N(0, I) draw (B, ...), or a generator to draw it (not both).
    """
    mean, variance = q_posterior(schedule, x_t, t, x0=x0)
    return mean + variance.sqrt() * make_noise(x_t, noise, generator)


def real_pair(schedule: NoiseSchedule, x0: Tensor, t: Tensor, *, generator: torch.Generator | None = None
              ) -> tuple[Tensor, Tensor]:
    """A real pair (x_{t-1}, x_t): x_{t-1} ~ q(x_{t-1} | x0) (q_sample; x0 itself at t = 1), x_t ~ q(x_t | x_{t-1}).

    x0: (B, D) data.  t: (B,) steps in 1..T.
    """
    x_prev = q_sample(schedule, x0, t - 1, generator=generator)
    return x_prev, q_step(schedule, x_prev, t, generator=generator)


def fake_previous(model: DDGAN, x_t: Tensor, t: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """x_{t-1}' ~ p_theta(x_{t-1} | x_t): x0' = G(x_t, z, t), then the posterior step (paper sec. 3.3)."""
    x0 = model.generate_x0(x_t, t, generator=generator)
    return posterior_sample(model.schedule, x_t, t, x0=x0, generator=generator)


def _draw_steps(model: DDGAN, x0: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randint(1, model.schedule.T + 1, (x0.shape[0],), generator=generator, device=x0.device)


def discriminator_loss(model: DDGAN, x0: Tensor, *, r1_gamma: float = 0.05,
                       generator: torch.Generator | None = None) -> Tensor:
    """L_D on a batch of data x0 (B, D): softplus(-D(real)) + softplus(D(fake)) + gamma/2 ||grad D(real)||^2
    (the module's docstring), averaged over the batch; the fake pairs are built without gradients to G."""
    t = _draw_steps(model, x0, generator)
    x_prev, x_t = real_pair(model.schedule, x0, t, generator=generator)
    x_prev.requires_grad_(True)
    d_real = model.D(x_prev, x_t, t=t)
    # R1 (Mescheder et al. 2018): the squared gradient norm of D with respect to the real x_{t-1}
    (grad,) = torch.autograd.grad(d_real.sum(), x_prev, create_graph=True)
    r1 = grad.pow(2).flatten(1).sum(1).mean()
    with torch.no_grad():
        x_fake = fake_previous(model, x_t, t, generator=generator)
    d_fake = model.D(x_fake, x_t, t=t)
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean() + r1_gamma / 2 * r1


def generator_loss(model: DDGAN, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """L_G = E softplus(-D(x_{t-1}', x_t, t)) on fresh real x_t from the batch x0 (B, D) (non-saturating)."""
    t = _draw_steps(model, x0, generator)
    _, x_t = real_pair(model.schedule, x0, t, generator=generator)
    return F.softplus(-model.D(fake_previous(model, x_t, t, generator=generator), x_t, t=t)).mean()


@torch.no_grad()
def ddgan_sample(G: GeneratorFn, schedule: NoiseSchedule, shape: Sequence[int], *, z_dim: int | None = None,
                 generator: torch.Generator | None = None, x_T: Tensor | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Samples x0 (B, D): x_T ~ N(0, I), then for t = T..1: x0' = G(x_t, z, t), x_{t-1} ~ q(x_{t-1} | x_t, x0').

    G: a callable G(x_t (B, D), z (B, z_dim), t (B,) long) -> x0' (B, D): a DDGAN's `G` (a StepMLP, called with
    t=), or any exact or stub x0-sampler.  z_dim: the size of z (default: a StepMLP G's in_dim - D).
    x_T: start from this noise instead of drawing it.  generator: draws x_T, z and the posterior noise.
    """
    check_schedule(schedule)
    if len(shape) != 2 or any(int(n) <= 0 for n in shape):
        raise ValueError(f"shape must be (B, D) with positive sizes, got {tuple(shape)}")
    if z_dim is None:
        if not isinstance(G, StepMLP):
            raise ValueError("z_dim must be given when G is not a StepMLP")
        z_dim = G.in_dim - shape[1]
    check_int("z_dim", z_dim)
    x_T = initial_noise(shape, x_T=x_T, device=device, dtype=dtype, generator=generator)
    call = (lambda x, z, t: G(x, z, t=t)) if isinstance(G, nn.Module) else G
    x = x_T
    for step in range(schedule.T, 0, -1):
        t = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
        z = torch.randn(x.shape[0], z_dim, generator=generator, device=x.device, dtype=x.dtype)
        x = posterior_sample(schedule, x, t, x0=call(x, z, t), generator=generator)
    return x
