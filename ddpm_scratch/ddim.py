"""Lecture 4: DDIM, denoising diffusion implicit models (Song, Meng & Ermon 2021).

L_simple only ever sees the marginals q(x_t | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I). DDIM builds a family of
non-Markovian forward processes, one for each choice of sigma, that all share them (DDIM eq. 7 and Lemma 1):

    q_sigma(x_{t-1} | x_t, x0) = N( sqrt(abar_{t-1}) x0 + sqrt(1 - abar_{t-1} - sigma_t^2) eps_t,  sigma_t^2 I ),
    eps_t = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t),

so a network trained once serves every member. Its reverse step puts the network's guess of x0 in place of x0:

    x0_hat  = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)                                    (eq. 9)
    x_{t-1} = sqrt(abar_{t-1}) x0_hat  +  sqrt(1 - abar_{t-1} - sigma_t^2) eps  +  sigma_t z  (eq. 12)
              "predicted x0"              "direction pointing to x_t"             noise
    sigma_t(eta) = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1})   (eq. 16)

eta = 1 is DDPM's posterior standard deviation sqrt(beta_tilde_t); eta = 0 draws no noise at all after x_T, so
x_T -> x0 is a deterministic map, the Euler discretisation of an ODE in sigma = sqrt((1 - abar) / abar) (sec. 4.3).

Nothing above needs t-1 to be the step just before t: the family only involves the marginals at the two steps,
so a sampler with S steps is the same step on the schedule respaced to S of its steps (sec. 4.2;
`schedules.spaced_timesteps`, `schedules.respaced`), run over consecutive indices down to index 0, the data
(abar_0 = 1: the last step returns x0_hat). The network is called at the training step each index stands for.

Run forwards with eta = 0, the step encodes data into noise (sec. 5.4): `ddim_invert` maps x0 to an x_T whose
decoding with the same steps returns x0, up to the error of reusing each step's eps at its start point (or
exactly, once each step's implicit equation is solved by fixed-point iterations).
`slerp` interpolates between two such x_T along the sphere where Gaussian noise lives (sec. 5.3).

`ddim_step` is the formula and trusts its inputs; `ddim_sample` and `ddim_invert` check theirs once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_data, check_int, check_noise_source, check_number
from .forward import make_noise, x0_from_eps
from .nets.protocol import EpsModel
from .reverse_steps import Hook, after_step, check_run, eps_at, reverse_indices, training_steps
from .schedules import NoiseSchedule, lookup, respaced

__all__ = ["ddim_sigma", "ddim_step", "ddim_sample", "ddim_invert", "slerp"]


def ddim_sigma(alpha_bar: Tensor, alpha_bar_prev: Tensor, eta: float) -> Tensor:
    """sigma_t(eta) = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1})  (DDIM eq. 16).

    alpha_bar, alpha_bar_prev: abar at the step and at the step it jumps to (any matching shapes).  At eta = 1,
    sigma^2 = (1 - abar_{t-1}) / (1 - abar_t) beta'_t with beta'_t = 1 - abar_t / abar_{t-1}: DDPM's posterior
    variance beta_tilde of the jump (DDPM eq. 7).
    """
    return eta * ((1 - alpha_bar_prev) / (1 - alpha_bar)).sqrt() * (1 - alpha_bar / alpha_bar_prev).sqrt()


def ddim_step(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, t_prev: int | Tensor, *, eps: Tensor,
              eta: float = 0.0, noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One DDIM step x_t -> x_{t_prev} given eps = eps_theta(x_t, t)  (DDIM eq. 12, sigma from eq. 16).

    x_t, eps: (B, ...).  t: int or (B,) in 1..T;  t_prev: int or (B,) in 0..t-1 (0: the step lands on the data,
    where abar = 1 and the step returns x0_hat).  eta: a Python float, 0 (deterministic) to 1 (DDPM's posterior
    variance).  noise: z (B, ...), drawn when None and eta > 0 (give noise or generator, not both).

    With eta = 0 the formula is a map between any two noise levels, t_prev > t included: `ddim_invert` runs it
    forwards that way. A per-step formula: it trusts its inputs, like `ddpm.p_mean`.
    """
    check_noise_source(noise, generator)
    alpha_bar_prev = lookup(schedule.alpha_bars, t_prev, x_t)
    x0_hat = x0_from_eps(schedule, x_t, t, eps=eps)  # eq. 9
    if eta == 0:  # a Python number: no tensor, no noise (and no square root of a negative for t_prev > t)
        return alpha_bar_prev.sqrt() * x0_hat + (1 - alpha_bar_prev).sqrt() * eps
    sigma = ddim_sigma(lookup(schedule.alpha_bars, t, x_t), alpha_bar_prev, eta)
    direction = (1 - alpha_bar_prev - sigma**2).clamp(min=0).sqrt() * eps  # >= 0 for eta <= 1; clamp: round-off
    return alpha_bar_prev.sqrt() * x0_hat + direction + sigma * make_noise(x_t, noise, generator)


def _check_eta(eta: float) -> float:
    return check_number("eta", eta, 0.0, 1.0)


@torch.no_grad()
def ddim_sample(eps_model: EpsModel, schedule: NoiseSchedule, x_T: Tensor, *, eta: float = 0.0,
                generator: torch.Generator | None = None, hook: Hook | None = None, progress: bool = False) -> Tensor:
    """DDIM sampling from x_T over every index of `schedule`: x_i -> x_{i-1} for i = T', ..., 1. Returns x0 (B, ...).

    The registered sampler "ddim": `sampling.sample(eps_model, schedule, shape, sampler="ddim", num_steps=...,
    spacing=..., eta=...)` draws x_T and respaces the schedule. eta: in [0, 1]; 0 draws no noise after x_T.
    generator: draws the noise of eta > 0.  hook(x, t) -> x after every step (`reverse_steps`).
    """
    check_run(eps_model, schedule, x_T, hook)
    eta = _check_eta(eta)
    steps = training_steps(schedule)
    schedule = schedule.to(x_T.device)  # once, so that no step copies the schedule to the device
    x = x_T
    for i in reverse_indices(schedule, progress, "DDIM"):
        eps = eps_at(eps_model, schedule, x, i)  # at training step timesteps[i]
        x = after_step(hook, ddim_step(schedule, x, i, i - 1, eps=eps, eta=eta, generator=generator), steps[i - 1])
    return x


@torch.no_grad()
def ddim_invert(eps_model: EpsModel, schedule: NoiseSchedule, x0: Tensor, *, num_steps: int | None = None,
                spacing: str = "uniform", fixed_point_iterations: int = 0, progress: bool = False) -> Tensor:
    """DDIM inversion (sec. 5.4): the eta = 0 step run forwards, x0 -> x_T. Returns x_T, shaped like x0 (B, ...).

    num_steps, spacing: the steps, picked as `sampling.sample` picks them (`schedules.respaced`; None: all T), so
    sample(eps_model, schedule, x0.shape, sampler="ddim", num_steps=..., spacing=..., x_T=ddim_invert(...))
    decodes x_T back to x0 (with the same spacing: `sample`'s default spacing is the sampler's own).

    The decoding step i -> i-1 uses eps at its start x_i; the inversion cannot (x_i is what it computes), so step
    i-1 -> i uses eps at x_{i-1} (DDIM's choice), and the round trip is exact only as the steps shrink: its error
    falls like 1 / num_steps. The first step starts at the data, index 0, where no network is defined: it asks
    eps at x0 with index 1's step.
    fixed_point_iterations: k > 0 then solves each step's own equation x_i = step(x_{i-1}, eps(x_i, i)), the one
    the decoding step inverts exactly, by k fixed-point iterations from DDIM's guess (Pan et al. 2023, "Effective
    real image editing with accelerated iterative diffusion inversion"): 1 + k network calls a step, and a round
    trip exact to the iteration's convergence, which is fast where eps varies slowly over one step's move.
    """
    from tqdm.auto import tqdm

    check_data("x0", x0)
    if x0.dim() < 2:  # as the samplers' x_T (`reverse_steps.check_run`): a (D,) point is not a batch of D scalars
        raise ValueError(f"x0 must have shape (B, ...) with at least 2 dimensions, got {tuple(x0.shape)}")
    check_int("fixed_point_iterations", fixed_point_iterations, low=0)
    schedule = respaced(schedule, num_steps, spacing).to(x0.device)
    x = x0
    for i in tqdm(range(1, schedule.T + 1), disable=not progress, desc="DDIM inversion", leave=False, miniters=1):
        eps = eps_at(eps_model, schedule, x, max(i - 1, 1))  # the start's eps
        x_next = ddim_step(schedule, x, i - 1, i, eps=eps)  # eq. 12 at eta = 0, from index i-1 up to index i
        for _ in range(fixed_point_iterations):
            eps = eps_at(eps_model, schedule, x_next, i)  # the end's eps, as decoding
            x_next = ddim_step(schedule, x, i - 1, i, eps=eps)
        x = x_next
    return x


def slerp(x_a: Tensor, x_b: Tensor, alpha: float | Tensor) -> Tensor:
    """Spherical interpolation between x_a and x_b, row by row (DDIM sec. 5.3, after White 2016):

        slerp = sin((1 - alpha) theta) / sin(theta) x_a + sin(alpha theta) / sin(theta) x_b,
        theta = arccos(<x_a, x_b> / (|x_a| |x_b|)),

    over the flattened trailing dimensions of each example. High-dimensional Gaussian noise lies near the sphere of
    radius sqrt(D); linear interpolation cuts through the inside of it, where x_T is atypical (its midpoint between
    two independent draws has norm about sqrt(D / 2)), while slerp between points of equal norm keeps that norm.

    x_a, x_b: (B, ...) of the same shape, no zero rows.  alpha: a float or a (B,) tensor in [0, 1] (0 gives x_a,
    1 gives x_b).  Where the rows are (anti)parallel, sin(theta) < 1e-6, it returns the linear interpolation: the
    limit theta -> 0 for parallel rows; antiparallel rows have no single great circle between them, and the
    straight line is a choice.
    """
    check_data("x_a", x_a)
    check_data("x_b", x_b)
    if x_a.shape != x_b.shape:
        raise ValueError(f"x_a and x_b must have the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}")
    if x_a.dim() < 2:
        raise ValueError(f"x_a and x_b must have shape (B, ...), got {tuple(x_a.shape)}")
    if isinstance(alpha, Tensor):
        if alpha.shape not in ((), (x_a.shape[0],)) or not alpha.is_floating_point():
            raise ValueError(f"alpha must be a float or a floating (B,) = ({x_a.shape[0]},) tensor, got "
                             f"{alpha.dtype} {tuple(alpha.shape)}")
        if alpha.device.type == "cpu" and not bool(((alpha >= 0) & (alpha <= 1)).all()):
            raise ValueError(f"alpha must lie in [0, 1], got values in {alpha.min().item()}..{alpha.max().item()}")
        alpha = alpha.to(x_a.device, x_a.dtype).reshape(-1, 1)
    else:
        alpha = check_number("alpha", alpha, 0.0, 1.0)
    a, b = x_a.flatten(1), x_b.flatten(1)
    norm_a, norm_b = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    if x_a.device.type == "cpu" and not bool(((norm_a > 0) & (norm_b > 0)).all()):
        raise ValueError("x_a and x_b must have no zero rows: the angle between a zero row and another is undefined")
    theta = ((a * b).sum(dim=1, keepdim=True) / (norm_a * norm_b)).clamp(-1, 1).arccos()
    sin = theta.sin()
    small = sin < 1e-6
    safe = torch.where(small, torch.ones_like(sin), sin)
    weight_a = torch.where(small, 1 - alpha, ((1 - alpha) * theta).sin() / safe)
    weight_b = torch.where(small, alpha, (alpha * theta).sin() / safe)
    return (weight_a * a + weight_b * b).reshape(x_a.shape)
