"""Lecture 2: the training objective.

L_simple (Ho et al. 2020, eq. 14) regresses the noise:

    L_simple = E_{x0, eps, t ~ U{1..T}} || eps - eps_theta(sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

It is a reweighting of the variational bound

    -log p(x0) <= L_T + sum_{t=2..T} L_{t-1} + L_0
    L_T     = KL(q(x_T | x0) || N(0, I))                      prior term, no parameters
    L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p_theta(x_{t-1} | x_t))   Gaussian KL between two Gaussians
    L_0     = -log p_theta(x0 | x1)                            discretized Gaussian decoder

With p_theta's mean written through eps (Algorithm 2, line 4), the KL of one draw (x0, eps), and so of one x_t,
is exactly

    KL = lambda_t ||eps - eps_theta(x_t, t)||^2 + C_t,   lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t))

(DDPM eq. 12), where C_t = KL(N(0, beta_tilde_t) || N(0, sigma_t^2)) per coordinate does not depend on theta and
vanishes only for sigma_t^2 = beta_tilde_t; the bound's term L_{t-1} (t >= 2) is its expectation over x0 and eps.
L_simple sets lambda_t = 1; `vlb_weights` returns lambda_t so the two can be compared. The t = 1 term is
different: L_0 is the decoder's likelihood of the discrete data, not a weighted squared error.

Units: `l_simple` averages over coordinates (a per-pixel MSE); the bound is reported in bits per dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import check_choice, check_data, check_noise_source, check_number, check_timestep
from .forward import PREDICTIONS, make_noise, q_posterior, q_sample, regression_target, x0_from_eps
from .nets.protocol import EpsModel
from .schedules import NoiseSchedule, lookup

__all__ = [
    "l_simple", "sample_timesteps", "vlb_weights", "gaussian_kl",
    "discretized_gaussian_log_likelihood", "prior_bpd", "VariationalBound", "variational_bound", "drop_labels",
]

LN2 = math.log(2.0)


def sample_timesteps(T: int, batch: int, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> Tensor:
    """t ~ Uniform({1, ..., T}) (Algorithm 1, line 3). Returns (batch,) long."""
    return torch.randint(1, T + 1, (batch,), device=device, generator=generator)


def l_simple(eps_model: EpsModel, schedule: NoiseSchedule, x0: Tensor, *, t: Tensor | int | None = None,
             noise: Tensor | None = None, generator: torch.Generator | None = None, weights: Tensor | None = None,
             prediction: str = "eps") -> Tensor:
    """L_simple for a batch, optionally reweighted: mean_b lambda(t_b) * mean_i (target - output)_i^2.

    x0: (B, ...) data.  t: an int or (B,) in 1..T, drawn uniformly when None (Algorithm 1, line 3).
    noise: eps (B, ...), drawn when None (line 4); give noise or generator, not both.
    weights: lambda(t) as a (T+1,) tensor, 1 when None.
    prediction: what eps_model outputs and is regressed on: "eps" (Ho et al.), "x0" or "v" (`regression_target`).
    Returns a scalar tensor that carries gradients to eps_model's parameters (line 5).
    """
    check_data("x0", x0)
    check_choice("prediction", prediction, PREDICTIONS)
    check_noise_source(noise, generator)
    if weights is not None and weights.shape != (schedule.T + 1,):
        raise ValueError(f"weights must have shape (T+1,) = ({schedule.T + 1},), got {tuple(weights.shape)}")
    if t is None:
        t = sample_timesteps(schedule.T, x0.shape[0], device=x0.device, generator=generator)
    else:
        t = check_timestep(t, schedule.T, low=1, batch=x0.shape[0], device=x0.device)
    eps = make_noise(x0, noise, generator)
    x_t = q_sample(schedule, x0, t, noise=eps)
    output = eps_model(x_t, t)
    if output.shape != eps.shape:
        raise ValueError(f"eps_model returned shape {tuple(output.shape)}, expected {tuple(eps.shape)}")
    target = regression_target(schedule, x0, t, eps=eps, prediction=prediction)
    per_example = (target - output).pow(2).flatten(1).mean(dim=1)
    if weights is not None:
        per_example = per_example * lookup(weights, t, per_example)
    return per_example.mean()


def drop_labels(y: Tensor, *, rate: float, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """Each label replaced by the "no label" token num_classes with probability `rate`, independently: the label
    dropout that trains one network to be conditional and unconditional (Ho & Salimans 2022, classifier-free
    guidance). y: (B,) long in 0..num_classes-1. Returns a new (B,) tensor; rate 0 returns y itself."""
    check_number("rate", rate, 0, 1)
    if rate == 0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < rate
    return torch.where(drop, torch.full_like(y, num_classes), y)


def vlb_weights(schedule: NoiseSchedule, variance: str | Tensor = "beta") -> Tensor:
    """lambda_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)), shape (T+1,), lambda_0 = 0 (DDPM eq. 12).

    For t >= 2 the KL of one draw is lambda_t ||eps - eps_theta||^2 + C_t (squared error summed over coordinates;
    C_t is free of theta and 0 only for sigma_t^2 = beta_tilde_t), and L_{t-1} is its expectation. lambda_1 is the
    same formula at t = 1, for comparing weightings; the bound's t = 1 term is the decoder L_0, not a weighted
    squared error.
    """
    sigma2 = schedule.reverse_variances(variance)
    lam = torch.zeros_like(schedule.betas)
    b, a, ab = schedule.betas[1:], schedule.alphas[1:], schedule.alpha_bars[1:]
    lam[1:] = b**2 / (2 * sigma2[1:] * a * (1 - ab))
    return lam


def gaussian_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) per coordinate, in nats. Arguments broadcast."""
    var1, var2 = torch.as_tensor(var1), torch.as_tensor(var2)
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def _std_normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x0: Tensor, mean: Tensor, variance: Tensor, num_bins: int = 256) -> Tensor:
    """log p(x0) per coordinate (nats) under N(mean, variance) integrated over x0's bin (DDPM eq. 13).

    x0 lies on num_bins evenly spaced levels in [-1, 1] (bin width 2/(num_bins-1)); the two edge
    bins extend to -inf and +inf so the probabilities sum to one.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    half = 1.0 / (num_bins - 1)
    std = torch.as_tensor(variance).sqrt()
    upper = _std_normal_cdf((x0 + half - mean) / std)
    lower = _std_normal_cdf((x0 - half - mean) / std)
    upper = torch.where(x0 > 1 - half, torch.ones_like(upper), upper)
    lower = torch.where(x0 < -1 + half, torch.zeros_like(lower), lower)
    return torch.log((upper - lower).clamp(min=1e-12))


def prior_bpd(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    """L_T = KL(q(x_T | x0) || N(0, I)) in bits per dimension, one value per example: (B,) float64.

    Computed in float64 whatever x0's dtype: 1 - alpha_bar_T rounds to 1 in float32 for the cosine schedule.
    """
    x0 = check_data("x0", x0).double()
    alpha_bar_T = lookup(schedule.alpha_bars, schedule.T, x0)
    kl = gaussian_kl(alpha_bar_T.sqrt() * x0, 1 - alpha_bar_T, torch.zeros_like(x0), torch.ones_like(x0))
    return kl.flatten(1).mean(dim=1) / LN2


@dataclass
class VariationalBound:
    """The terms of -log p(x0) <= L_T + sum L_{t-1} + L_0, in bits per dimension, per example.

    total: (B,)   prior: (B,) L_T   decoder: (B,) L_0   terms: (B, T) column t-1 holds L_{t-1} (column 0 is L_0).
    """

    total: Tensor
    prior: Tensor
    decoder: Tensor
    terms: Tensor


@torch.no_grad()
def variational_bound(eps_model: EpsModel, schedule: NoiseSchedule, x0: Tensor, *, variance: str | Tensor = "beta",
                      num_bins: int = 256, generator: torch.Generator | None = None,
                      progress: bool = False) -> VariationalBound:
    """The full bound for a batch, with one Monte Carlo draw x_t ~ q(x_t | x0) per t (T model calls).

    x0: (B, ...) on num_bins levels in [-1, 1].  variance: sigma_t^2 choice ("beta" | "posterior" | (T+1,) tensor).
    eps_model: an eps-model of the schedule's steps (`forward.as_eps_model` adapts an x0- or v-network).
    """
    from tqdm.auto import tqdm

    check_data("x0", x0)
    B = x0.shape[0]
    schedule = schedule.to(x0.device)  # once, so that no step copies the schedule to the device
    sigma2_all = schedule.reverse_variances(variance).to(x0.device, schedule.betas.dtype)
    terms = torch.zeros(B, schedule.T, dtype=torch.float64)
    for t_int in tqdm(range(1, schedule.T + 1), disable=not progress, desc="bound", miniters=1):
        t = torch.full((B,), t_int, dtype=torch.long, device=x0.device)
        x_t = q_sample(schedule, x0, t, generator=generator)
        eps = eps_model(x_t, t)
        x0_hat = x0_from_eps(schedule, x_t, t, eps=eps)
        model_mean, _ = q_posterior(schedule, x_t, t, x0=x0_hat)  # = Algorithm 2, line 4
        sigma2 = lookup(sigma2_all, t, x0)
        if t_int == 1:
            nats = -discretized_gaussian_log_likelihood(x0, model_mean, sigma2, num_bins)
        else:
            true_mean, true_var = q_posterior(schedule, x_t, t, x0=x0)
            nats = gaussian_kl(true_mean, true_var, model_mean, sigma2)
        terms[:, t_int - 1] = nats.flatten(1).mean(dim=1).double().cpu() / LN2
    prior = prior_bpd(schedule, x0).double().cpu()
    decoder = terms[:, 0]
    return VariationalBound(total=prior + terms.sum(dim=1), prior=prior, decoder=decoder, terms=terms)
