"""Lecture 1: the forward diffusion process.

    one step     q(x_t | x_{t-1})   = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
    kernel       q(x_t | x_0)       = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    posterior    q(x_{t-1} | x_t, x_0) = N(mu_tilde_t(x_t, x_0), beta_tilde_t I)      (DDPM eq. 6-7)

The kernel is also a change of variables, x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps. Solving it for
x0, eps, the velocity v or the score is the one place where the course converts between them, and `convert` is
the one switch over them: a network may predict eps, x0 or v, and `as_eps_model` turns it, once, into the eps-model
that the samplers use.

The Fourier view: the FFT is linear, so F(x_t) = sqrt(alpha_bar_t) F(x0) + sqrt(1 - alpha_bar_t) F(eps).
White noise has the same power at every frequency, images have most power at low frequencies, so the
high frequencies fall below the noise first.

Calling convention (DESIGN.md): `schedule, x_t, t` positional; whatever a model predicts or a caller draws is
keyword-only (eps=, x0=, v=, score=, noise=, generator=), because x_t and eps have the same shape and a swap
would pass silently. q_step and q_sample check their inputs; the per-step formulas below them trust theirs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .checks import check_choice, check_data, check_noise_source, check_timestep
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, check_schedule, lookup

__all__ = [
    "q_step", "q_sample", "q_posterior",
    "x0_from_eps", "eps_from_x0", "v_from_eps", "eps_from_v", "score_from_eps", "eps_from_score",
    "QUANTITIES", "PREDICTIONS", "convert", "regression_target", "as_eps_model",
    "radial_power_spectrum", "frequency_snr",
]

QUANTITIES = ("eps", "x0", "v", "score")
PREDICTIONS = ("eps", "x0", "v")  # what a network may be trained to output


def make_noise(like: Tensor, noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """eps ~ N(0, I) shaped like `like`, or the given `noise` after checking its shape (not both).

    The generator must live on like's device (torch.Generator(device=...)).
    """
    check_noise_source(noise, generator)
    if noise is not None:
        if noise.shape != like.shape:
            raise ValueError(f"noise must have the data's shape {tuple(like.shape)}, got {tuple(noise.shape)}")
        return noise.to(dtype=like.dtype)
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def q_step(schedule: NoiseSchedule, x_prev: Tensor, t: int | Tensor, *, noise: Tensor | None = None,
           generator: torch.Generator | None = None) -> Tensor:
    """One forward step: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps.

    x_prev: (B, ...) sample of x_{t-1}.  t: int or (B,) in 1..T.  Returns x_t, same shape as x_prev.
    """
    check_data("x_prev", x_prev)
    t = check_timestep(t, schedule.T, low=1, batch=x_prev.shape[0])
    eps = make_noise(x_prev, noise, generator)
    beta = lookup(schedule.betas, t, x_prev)
    return (1 - beta).sqrt() * x_prev + beta.sqrt() * eps


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: int | Tensor, *, noise: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
    """Sample the diffusion kernel: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

    x0: (B, ...) data.  t: int or (B,) in 0..T (t = 0 returns x0).  Returns x_t, same shape as x0.
    """
    check_data("x0", x0)
    t = check_timestep(t, schedule.T, low=0, batch=x0.shape[0])
    eps = make_noise(x0, noise, generator)
    alpha_bar = lookup(schedule.alpha_bars, t, x0)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps


def q_posterior(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, x0: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7), for t in 1..T.

    x_t, x0: (B, ...).  t: int or (B,) in 1..T (checked; a GPU t is not read back).  Returns (mean (B, ...),
    variance (B, 1, ..., 1)); the variance is beta_tilde_t, the same for every coordinate (it is 0 at t = 1, where
    x_{t-1} = x0 is known).
    """
    check_data("x_t", x_t)
    check_timestep(t, schedule.T, low=1, batch=x_t.shape[0])
    beta, alpha = lookup(schedule.betas, t, x_t), lookup(schedule.alphas, t, x_t)
    alpha_bar, alpha_bar_prev = lookup(schedule.alpha_bars, t, x_t), lookup(schedule.alpha_bars, t - 1, x_t)
    # DDPM eq. 7: mu_tilde = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0
    #                      + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    mean = (alpha_bar_prev.sqrt() * beta / (1 - alpha_bar)) * x0 \
        + (alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)) * x_t
    return mean, lookup(schedule.posterior_variances, t, x_t)


# ---------------------------------------------------------------------------------- conversions
# The kernel x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps ties x0 and eps together for a given x_t; the velocity
# v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022) is the same pair rotated, and the score of
# q(x_t | x0) is grad log q = -(x_t - sqrt(abar_t) x0) / (1 - abar_t) = -eps / sqrt(1 - abar_t).
# Shapes (B, ...); t an int or (B,) in 1..T (conversions to x0 and v also hold at t = 0 where they do not divide).

def x0_from_eps(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    alpha_bar = lookup(schedule.alpha_bars, t, x_t)
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def eps_from_x0(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, x0: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
    alpha_bar = lookup(schedule.alpha_bars, t, x_t)
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def v_from_eps(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor) -> Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0, with x0 the one that eps and x_t imply."""
    alpha_bar = lookup(schedule.alpha_bars, t, x_t)
    x0 = x0_from_eps(schedule, x_t, t, eps=eps)
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


def eps_from_v(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, v: Tensor) -> Tensor:
    """eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t."""
    alpha_bar = lookup(schedule.alpha_bars, t, x_t)
    return alpha_bar.sqrt() * v + (1 - alpha_bar).sqrt() * x_t


def score_from_eps(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor) -> Tensor:
    """score = grad_{x_t} log q(x_t) = -eps / sqrt(1 - alpha_bar_t) (x_t enters only through eps)."""
    return -eps / (1 - lookup(schedule.alpha_bars, t, x_t)).sqrt()


def eps_from_score(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, score: Tensor) -> Tensor:
    """eps = -sqrt(1 - alpha_bar_t) score."""
    return -(1 - lookup(schedule.alpha_bars, t, x_t)).sqrt() * score


def convert(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, to: str, eps: Tensor | None = None,
            x0: Tensor | None = None, v: Tensor | None = None, score: Tensor | None = None) -> Tensor:
    """Any one of eps, x0, v, score (given by keyword) at (x_t, t) -> the quantity named by `to`, through eps.

    convert(schedule, x_t, t, x0=x0_hat, to="eps") is eps_from_x0(schedule, x_t, t, x0=x0_hat).
    """
    given = {k: value for k, value in (("eps", eps), ("x0", x0), ("v", v), ("score", score)) if value is not None}
    if len(given) != 1:
        raise ValueError(f"give exactly one of eps, x0, v, score; got {sorted(given) or 'none'}")
    check_choice("to", to, QUANTITIES)
    ((name, value),) = given.items()
    if name == to:
        return value
    if name == "x0":
        eps_hat = eps_from_x0(schedule, x_t, t, x0=value)
    elif name == "v":
        eps_hat = eps_from_v(schedule, x_t, t, v=value)
    elif name == "score":
        eps_hat = eps_from_score(schedule, x_t, t, score=value)
    else:
        eps_hat = value
    if to == "x0":
        return x0_from_eps(schedule, x_t, t, eps=eps_hat)
    if to == "v":
        return v_from_eps(schedule, x_t, t, eps=eps_hat)
    if to == "score":
        return score_from_eps(schedule, x_t, t, eps=eps_hat)
    return eps_hat


def regression_target(schedule: NoiseSchedule, x0: Tensor, t: int | Tensor, *, eps: Tensor,
                      prediction: str = "eps") -> Tensor:
    """What a network that predicts `prediction` regresses on for x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.

    eps and x0 are the draws themselves; v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 is formed from both (not
    through x_t, which would divide by sqrt(abar_t) ~ 0 near t = T). x0, eps: (B, ...).
    """
    if check_choice("prediction", prediction, PREDICTIONS) == "eps":
        return eps
    if prediction == "x0":
        return x0
    alpha_bar = lookup(schedule.alpha_bars, t, x0)
    return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0


class EpsFromPrediction(nn.Module):
    """A network trained to output x0 or v, as an eps-model: forward(x_t, t) = convert(..., to="eps") of its output.

    network(x_t, t) -> x0 or v, (B, ...), at the training steps t (B,) of `schedule`.  Build it with `as_eps_model`.
    The schedule's arrays move to each device the model is called on once, and are kept there.
    """

    def __init__(self, network: EpsModel, schedule: NoiseSchedule, prediction: str) -> None:
        super().__init__()
        self.network, self.schedule, self.prediction = network, schedule, prediction
        self._on_device: dict[torch.device, NoiseSchedule] = {}

    def forward(self, x_t: Tensor, t: Tensor, *conditioning: Tensor) -> Tensor:
        """eps at (x_t, t); conditioning (a conditional network's label y) is passed to the network as it is."""
        schedule = self._on_device.get(x_t.device) or self._on_device.setdefault(x_t.device,
                                                                                self.schedule.to(x_t.device))
        return convert(schedule, x_t, t, to="eps", **{self.prediction: self.network(x_t, t, *conditioning)})


def as_eps_model(network: EpsModel, schedule: NoiseSchedule, *, prediction: str = "eps") -> EpsModel:
    """The eps-model every sampler, solver and likelihood takes, from a network that predicts `prediction`.

    The adapter of EDM's preconditioning idea, at the boundary: what a network outputs is read once, where the model
    is built or loaded, so that nothing downstream needs to know. "eps": the network itself; "x0" or "v": an
    `EpsFromPrediction` (an nn.Module holding the network as `.network`). The schedule is the one the network was
    trained on: the model is called at its training steps, respaced samplers included.
    """
    check_choice("prediction", prediction, PREDICTIONS)
    if not callable(network):
        raise TypeError(f"network must be callable as network(x_t, t), got {type(network).__name__}")
    check_schedule(schedule)
    if not torch.equal(schedule.timesteps, torch.arange(schedule.T + 1, device=schedule.timesteps.device)):
        raise ValueError("schedule must be the one the network was trained on, not a respaced one: the model is "
                         "called at training steps, which index the training schedule (samplers respace it)")
    return network if prediction == "eps" else EpsFromPrediction(network, schedule, prediction)


# ---------------------------------------------------------------------------------- Fourier view
def radial_power_spectrum(x: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectrum, averaged over batch and channels.

    x: (B, C, H, W). Uses the orthonormal 2-D FFT, so unit white noise has power 1 at every frequency.
    Returns (k, power): k (K,) integer radial frequency 0..K-1, power (K,) mean |F(x)|^2 on that ring.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    H, W = x.shape[-2:]
    power = torch.fft.fft2(x.double(), norm="ortho").abs().pow(2).mean(dim=(0, 1))  # (H, W)
    fy = torch.fft.fftfreq(H, d=1.0 / H).abs()
    fx = torch.fft.fftfreq(W, d=1.0 / W).abs()
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).round().long()
    K = int(radius.max()) + 1
    total = torch.zeros(K, dtype=torch.float64).index_add_(0, radius.flatten(), power.flatten().cpu())
    count = torch.zeros(K, dtype=torch.float64).index_add_(0, radius.flatten(), torch.ones(H * W, dtype=torch.float64))
    keep = count > 0
    return torch.arange(K)[keep], total[keep] / count[keep]


def frequency_snr(schedule: NoiseSchedule, x0: Tensor, t: int | Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
    """Signal-to-noise ratio of x_t per radial frequency: alpha_bar_t P_x0(k) / (1 - alpha_bar_t).

    Exact in expectation: the noise's power is 1 at every frequency (orthonormal FFT).
    x0: (B, C, H, W).  t: int or (N,) in 1..T.  Returns (k (K,), snr (N, K)) in float64.
    """
    k, power = radial_power_spectrum(x0)
    if not isinstance(t, (int, Tensor)):
        t = torch.as_tensor(list(t), dtype=torch.long)
    t = check_timestep(t, schedule.T, low=1).reshape(-1)
    alpha_bar = schedule.alpha_bars[t][:, None]
    return k, alpha_bar * power[None, :] / (1 - alpha_bar)
