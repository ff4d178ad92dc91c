"""Lecture 3: score functions, a data law whose score is known exactly, and denoising score matching.

The score of a density is the gradient of its log, s(x) = grad_x log p(x). A Gaussian mixture

    p(x0) = sum_k pi_k N(x0; mu_k, Sigma_k)

is the one non-trivial data law for which everything the lecture needs has a closed form:

    score       grad log p(x) = sum_k r_k(x) (-Sigma_k^{-1} (x - mu_k)),   r_k(x) = pi_k N_k(x) / p(x)
    diffusion   x_t = m x0 + s eps, eps ~ N(0, I)  has the mixture law  sum_k pi_k N(m mu_k, m^2 Sigma_k + s^2 I)

(r_k are the responsibilities: the posterior probability of component k given x). So the score of every
diffused marginal q_t is known, and with it the "perfect network": the eps-model E[eps | x_t] = -s score(x_t)
for a discrete schedule (m = sqrt(alpha_bar_t), s = sigma_t = sqrt(1 - alpha_bar_t)), and the score-model
for any SDE with a Gaussian marginal (m, s) = sde.marginal(t). A sampler or a likelihood run with them has no
training error, so whatever error remains is the sampler's own.

Denoising score matching (Vincent 2011; Song et al. 2021, eq. 7) learns the score without knowing it: the
target is the score of the kernel, grad log q(x_t | x0) = -(x_t - m x0) / s^2 = -eps / s, and the regression
E || s_theta(x_t, t) - grad log q(x_t | x0) ||^2 is minimised by E[grad log q(x_t | x0) | x_t] = grad log q_t(x_t).

One code path for all covariances: each Sigma_k is stored with its eigendecomposition Q_k diag(lambda_k) Q_k^T,
because a^2 Sigma_k + s^2 I = Q_k diag(a^2 lambda_k + s^2) Q_k^T has the same eigenvectors for every (a, s).
The score of q_t at rows with different t (a (N,) mean_coef and std) then costs no more than the score of p.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .checks import check_choice, check_data, check_int, check_noise_source, check_number, check_time
from .forward import eps_from_score, make_noise
from .nets.protocol import EpsModel, ScoreFn
from .schedules import NoiseSchedule, check_schedule, per_example

__all__ = ["GaussianMixture", "mixture_eps_model", "mixture_score_fn", "dsm_loss", "DSM_WEIGHTINGS"]

DSM_WEIGHTINGS = ("sigma2", "likelihood")
LOG_2PI = math.log(2 * math.pi)


def _as_float_tensor(name: str, value: object, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A list, array or tensor as a finite floating tensor (for the constructor's arguments)."""
    try:
        tensor = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{name} must be a tensor or a nested list of numbers, got {type(value).__name__}") from error
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor


class GaussianMixture:
    """p(x) = sum_k pi_k N(x; mu_k, Sigma_k) in D dimensions, with exact log-density, score and samples.

    weights: (K,) positive; divided by their sum, so [1, 1, 2] means pi = (1/4, 1/4, 1/2).
    means:   (K, D).
    covs:    (K, D, D) symmetric positive definite, (K, D) diagonals, or (K,) isotropic variances
             (Sigma_k = covs[k] I). All three are stored as full matrices with their eigendecomposition.
    dtype:   the precision of every computation (float64 by default); results come back in the input's dtype.

    Fields: weights (K,), means (K, D), covs (K, D, D), eigenvalues (K, D) and eigenvectors (K, D, D) with
    covs[k] = eigenvectors[k] diag(eigenvalues[k]) eigenvectors[k]^T, cholesky (K, D, D) lower factors.
    """

    def __init__(self, weights: Tensor | Sequence[float], means: Tensor | Sequence[Sequence[float]],
                 covs: Tensor | Sequence, *, dtype: torch.dtype = torch.float64) -> None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        device = means.device if isinstance(means, Tensor) else torch.device("cpu")
        weights = _as_float_tensor("weights", weights, dtype, device)
        means = _as_float_tensor("means", means, dtype, device)
        covs = _as_float_tensor("covs", covs, dtype, device)
        if weights.dim() != 1 or weights.numel() < 1 or (weights <= 0).any():
            raise ValueError(f"weights must be a (K,) tensor of positive numbers, got {weights.tolist()}")
        K = weights.numel()
        if means.dim() != 2 or means.shape[0] != K or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D) with K = {K} (the number of weights), "
                             f"got {tuple(means.shape)}")
        D = means.shape[1]
        if covs.shape == (K,) or covs.shape == (K, D):  # isotropic variances or diagonals
            if (covs <= 0).any():
                raise ValueError("covs must be positive (variances of isotropic or diagonal components)")
            covs = torch.diag_embed(covs[:, None].expand(K, D) if covs.dim() == 1 else covs)
        elif covs.shape == (K, D, D):
            if (covs - covs.mT).abs().max() > 1e-10 * covs.abs().max():
                raise ValueError("covs must be symmetric: covs[k] != covs[k].T")
            covs = (covs + covs.mT) / 2  # remove round-off asymmetry
        else:
            raise ValueError(f"covs must have shape (K, D, D) = {(K, D, D)}, (K, D) = {(K, D)} or (K,) = ({K},), "
                             f"got {tuple(covs.shape)}")
        cholesky, info = torch.linalg.cholesky_ex(covs)
        eigenvalues, eigenvectors = torch.linalg.eigh(covs)
        bad = (info > 0) | (eigenvalues[:, 0] <= 0)
        if bad.any():
            k = int(bad.nonzero()[0])
            raise ValueError(f"covs[{k}] must be positive definite, its smallest eigenvalue is "
                             f"{eigenvalues[k, 0].item():.3g}")
        self.weights = weights / weights.sum()
        self.means, self.covs = means, covs
        self.eigenvalues, self.eigenvectors, self.cholesky = eigenvalues, eigenvectors, cholesky

    # ------------------------------------------------------------------------------------ basics
    @property
    def K(self) -> int:
        """Number of components."""
        return self.weights.numel()

    @property
    def D(self) -> int:
        """Dimension of x."""
        return self.means.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, D={self.D}, dtype={self.dtype})"

    def to(self, device: torch.device | str) -> GaussianMixture:
        """The same mixture with its tensors on `device` (float32 on MPS, which has no float64)."""
        device = torch.device(device)
        dtype = torch.float32 if device.type == "mps" else self.dtype
        moved = copy.copy(self)
        for name in ("weights", "means", "covs", "eigenvalues", "eigenvectors", "cholesky"):
            setattr(moved, name, getattr(self, name).to(device, dtype))
        return moved

    def mean(self) -> Tensor:
        """E[x] = sum_k pi_k mu_k, shape (D,)."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """Cov[x] = sum_k pi_k (Sigma_k + mu_k mu_k^T) - E[x] E[x]^T (law of total variance), shape (D, D)."""
        m, outer = self.mean(), self.means[:, :, None] * self.means[:, None, :]  # outer[k] = mu_k mu_k^T
        second_moment = torch.einsum("k,kij->ij", self.weights, self.covs + outer)
        return second_moment - torch.outer(m, m)

    def diffuse(self, mean_coef: float, std: float) -> GaussianMixture:
        """The law of x_t = mean_coef x0 + std eps, x0 ~ this mixture, eps ~ N(0, I): again a mixture,
        sum_k pi_k N(mean_coef mu_k, mean_coef^2 Sigma_k + std^2 I).

        Discrete schedule: mean_coef = sqrt(alpha_bar_t), std = sqrt(1 - alpha_bar_t); an SDE: sde.marginal(t).
        diffuse(1, 0) is the mixture itself. For rows at different t use log_prob / score with mean_coef=, std=.
        """
        a = check_number("mean_coef", mean_coef)
        s = check_number("std", std, low=0)
        if a == 0 and s == 0:
            raise ValueError("mean_coef and std cannot both be 0 (x_t would be the constant 0)")
        eye = torch.eye(self.D, dtype=self.dtype, device=self.means.device)
        return GaussianMixture(self.weights, a * self.means, a**2 * self.covs + s**2 * eye, dtype=self.dtype)

    # ------------------------------------------------------------------------------------ the maths
    def _coefficient(self, name: str, value: float | Tensor, x: Tensor) -> Tensor:
        """mean_coef or std as a tensor shaped (1, 1, 1) (one value) or (N, 1, 1) (one per row of x)."""
        if not isinstance(value, Tensor):
            value = torch.tensor(check_number(name, value, low=0 if name == "std" else -math.inf), dtype=self.dtype)
        if value.dim() > 1 or (value.dim() == 1 and value.shape[0] not in (1, x.shape[0])):
            raise ValueError(f"{name} must be a number or a tensor of shape () or (N,) = ({x.shape[0]},), "
                             f"got {tuple(value.shape)}")
        value = value.to(device=x.device, dtype=self.dtype).reshape(-1, 1, 1)
        if value.device.type == "cpu" and not (torch.isfinite(value).all() and (name != "std" or (value >= 0).all())):
            raise ValueError(f"{name} must be finite{' and >= 0' if name == 'std' else ''}")
        return value

    def _components(self, x: Tensor, mean_coef: float | Tensor, std: float | Tensor) -> tuple[Tensor, Tensor]:
        """The terms of the mixture of x_t = a x0 + s eps (Sigma_tk = a^2 Sigma_k + s^2 I) at the points x (N, D):

        log_joint (N, K): log pi_k + log N(x; a mu_k, Sigma_tk);
        w (N, K, D):      Q_k^T Sigma_tk^{-1} (x - a mu_k), i.e. Sigma_tk^{-1} (x - a mu_k) = Q_k w_k.
        """
        if x.dim() != 2 or x.shape[1] != self.D:
            raise ValueError(f"x must have shape (N, D) with D = {self.D}, got {tuple(x.shape)}")
        a, s = self._coefficient("mean_coef", mean_coef, x), self._coefficient("std", std, x)
        Q, lam, mu = (getattr(self, n).to(x.device) for n in ("eigenvectors", "eigenvalues", "means"))
        x = x.to(self.dtype)
        # coordinates of x - a mu_k along the eigenvectors of Sigma_k: z_k = Q_k^T (x - a mu_k)
        z = torch.einsum("nd,kde->nke", x, Q) - a * torch.einsum("kd,kde->ke", mu, Q)
        v = a**2 * lam + s**2  # eigenvalues of Sigma_tk = Q_k diag(a^2 lambda_k + s^2) Q_k^T, (N or 1, K, D)
        if v.device.type == "cpu" and (v <= 0).any():
            raise ValueError("mean_coef and std cannot both be 0 in the same row (x_t would be the constant 0)")
        w = z / v
        # log N(x; a mu_k, Sigma_tk) = -1/2 ((x - a mu_k)^T Sigma_tk^{-1} (x - a mu_k) + log det Sigma_tk + D log 2 pi)
        #                            = -1/2 (sum_e z_ke^2 / v_ke + sum_e log v_ke + D log 2 pi)
        log_normal = -0.5 * (torch.einsum("nke,nke->nk", z, w) + v.log().sum(-1) + self.D * LOG_2PI)
        return self.weights.to(x.device).log() + log_normal, w

    def log_prob(self, x: Tensor, *, mean_coef: float | Tensor = 1.0, std: float | Tensor = 0.0) -> Tensor:
        """log p(x) = logsumexp_k (log pi_k + log N_k(x)), (N,) for x (N, D); stable far from the means.

        mean_coef, std: the density of x_t = mean_coef x0 + std eps instead (the diffused marginal q_t), one value
        or one per row ((N,) tensors, rows at different t). Defaults: the mixture itself.
        """
        check_data("x", x)
        log_joint, _ = self._components(x, mean_coef, std)
        return torch.logsumexp(log_joint, dim=1).to(x.dtype)

    def responsibilities(self, x: Tensor, *, mean_coef: float | Tensor = 1.0, std: float | Tensor = 0.0) -> Tensor:
        """r_k(x) = pi_k N_k(x) / p(x), the posterior probability of each component given x: (N, K) for x (N, D),
        rows summing to 1 (a softmax over k of log pi_k + log N_k(x)). mean_coef, std: as in log_prob, for x_t."""
        check_data("x", x)
        log_joint, _ = self._components(x, mean_coef, std)
        return torch.softmax(log_joint, dim=1).to(x.dtype)

    def score(self, x: Tensor, *, mean_coef: float | Tensor = 1.0, std: float | Tensor = 0.0) -> Tensor:
        """grad_x log p(x) = sum_k r_k(x) (-Sigma_k^{-1} (x - mu_k)), (N, D) for x (N, D).

        r_k = pi_k N_k(x) / p(x) (a softmax over k), the responsibilities. mean_coef, std: the score of the diffused
        marginal q_t of x_t = mean_coef x0 + std eps (one value, or (N,) for rows at different t), as in log_prob.
        """
        check_data("x", x)
        log_joint, w = self._components(x, mean_coef, std)
        # r_k = pi_k N_k(x) / p(x) = exp(log pi_k + log N_k(x) - log p(x))
        responsibilities = (log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)).exp()
        # -sum_k r_k Sigma_tk^{-1} (x - a mu_k) = -sum_k sum_e r_k w_ke Q_k[:, e]: one (N, K D) @ (K D, D) product
        Q = self.eigenvectors.to(x.device)
        return -((responsibilities[:, :, None] * w).flatten(1) @ Q.mT.flatten(0, 1)).to(x.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws (n, D): a component k ~ Categorical(pi), then x = mu_k + L_k eps with L_k L_k^T = Sigma_k.

        generator: on the mixture's device (torch.Generator(device=...)). Components first, then eps.
        """
        check_int("n", n)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.D, generator=generator, dtype=self.dtype, device=self.means.device)
        x = torch.empty_like(eps)
        for j in range(self.K):
            rows = k == j
            x[rows] = self.means[j] + eps[rows] @ self.cholesky[j].T
        return x


# ---------------------------------------------------------------------------------- the perfect networks

def _flat(mixture: GaussianMixture, name: str, x: Tensor) -> Tensor:
    """x (B, ...) as (B, D): a network's input whose trailing dimensions hold the mixture's D coordinates."""
    if x.dim() < 2 or x[0].numel() != mixture.D:
        raise ValueError(f"{name} must flatten to D = {mixture.D} coordinates per row, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1)


def mixture_eps_model(mixture: GaussianMixture, schedule: NoiseSchedule) -> EpsModel:
    """The exact eps-model of data ~ mixture under a discrete schedule: eps_model(x_t, t) = E[eps | x_t].

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, so eps = -sqrt(1 - abar_t) grad log q(x_t | x0) and, averaging
    over x0 given x_t, E[eps | x_t] = -sqrt(1 - abar_t) grad log q_t(x_t) (`forward.eps_from_score`), with q_t the
    diffused mixture. x_t: (B, ...) whose trailing dimensions flatten to D; t: (B,) LongTensor (or an int) of
    training steps of `schedule`, the one the model was built with (samplers over a respaced schedule call it at
    the original steps). Returns (B, ...) in x_t's dtype; computed in the mixture's dtype.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    check_schedule(schedule)

    def eps_model(x_t: Tensor, t: Tensor) -> Tensor:
        x = _flat(mixture, "x_t", x_t).to(mixture.dtype)
        alpha_bar = schedule.alpha_bars.to(x.device, mixture.dtype)[t]
        score = mixture.score(x, mean_coef=alpha_bar.sqrt(), std=(1 - alpha_bar).sqrt())
        return eps_from_score(schedule, x, t, score=score).reshape(x_t.shape).to(x_t.dtype)

    return eps_model


def _marginal(sde: object, t: Tensor) -> tuple[Tensor, Tensor]:
    """(mean_coef, std) = sde.marginal(t), each as a tensor of t's shape (B,)."""
    if not callable(getattr(sde, "marginal", None)):
        raise TypeError(f"sde must have a method marginal(t) -> (mean_coef, std), got {type(sde).__name__}")
    mean_coef, std = (torch.as_tensor(c, dtype=t.dtype, device=t.device).expand(t.shape) for c in sde.marginal(t))
    return mean_coef, std


def mixture_score_fn(mixture: GaussianMixture, sde: object) -> ScoreFn:
    """The exact score-model of data ~ mixture under an SDE: score_fn(x, t) = grad log q_t(x).

    sde: any object with marginal(t) -> (mean_coef, std), the Gaussian kernel x_t = mean_coef x0 + std eps
    (VP: mean_coef = exp(-t^2 (beta_1 - beta_0)/4 - t beta_0/2), std = sqrt(1 - mean_coef^2); VE: 1, sigma(t)).
    x: (B, ...) flattening to D; t: a float or a (B,) float tensor in [0, 1]. Returns (B, ...) in x's dtype.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if not callable(getattr(sde, "marginal", None)):
        raise TypeError(f"sde must have a method marginal(t) -> (mean_coef, std), got {type(sde).__name__}")

    def score_fn(x: Tensor, t: float | Tensor) -> Tensor:
        check_data("x", x)
        if isinstance(t, float):  # as a tensor of the mixture's dtype (torch.tensor(t) would round it to float32)
            t = torch.tensor(t, dtype=mixture.dtype)
        t = check_time(t, batch=x.shape[0], device=x.device).to(mixture.dtype)
        mean_coef, std = _marginal(sde, t)
        score = mixture.score(_flat(mixture, "x", x), mean_coef=mean_coef, std=std)
        return score.reshape(x.shape).to(x.dtype)

    return score_fn


# ---------------------------------------------------------------------------------- denoising score matching

def dsm_loss(score_model: ScoreFn, sde: object, x0: Tensor, *, weighting: str = "sigma2", t_min: float = 1e-5,
             t: float | Tensor | None = None, noise: Tensor | None = None,
             generator: torch.Generator | None = None) -> Tensor:
    """Denoising score matching in continuous time (Song et al. 2021, eq. 7), a scalar:

        mean_b lambda(t_b) mean_i (s_theta(x_t, t)_i - grad log q(x_t | x0)_i)^2,   grad log q(x_t | x0) = -eps / s

    with t ~ U(t_min, 1), eps ~ N(0, I), x_t = m x0 + s eps and (m, s) = sde.marginal(t).
    weighting: "sigma2": lambda(t) = s^2, so the loss is mean ||s s_theta + eps||^2, DDPM's L_simple in continuous
                   time (an eps-network eps_theta = -s s_theta regresses eps);
               "likelihood": lambda(t) = g(t)^2 (needs sde.diffusion(t) = g(t); the lecture's lambda(t) = beta(t)
                   for the VP SDE); then (1 - t_min) D/2 times the loss is the theta-dependent part of an upper bound
                   on -E log p_theta(x0) (Song, Durkan, Murray & Ermon 2021, Thm. 1), its integral over t in
                   (t_min, 1) estimated with one uniform t per example.
    In the lecture's eps form, lambda(t) ||s_theta + eps / s||^2 = lambda(t) / s^2 ||eps - eps_theta||^2 with
    eps_theta = -s s_theta.
    Units: a mean over coordinates and batch (score_sde's reduce_mean=True); its reduce_mean=False sums over the
    D coordinates and halves, i.e. D/2 times this.
    x0: (B, ...).  score_model(x_t, t): x_t (B, ...), t (B,) float -> (B, ...).  t: times in [t_min, 1] (a float or
    (B,)), drawn when None.  noise: eps (B, ...), drawn when None; give noise or generator, not both (the generator
    draws t first, then eps).
    """
    check_data("x0", x0)
    check_choice("weighting", weighting, DSM_WEIGHTINGS)
    t_min = check_number("t_min", t_min, 0, 1, low_open=True, high_open=True)
    check_noise_source(noise, generator)
    if weighting == "likelihood" and not callable(getattr(sde, "diffusion", None)):
        raise TypeError(f"weighting='likelihood' needs sde.diffusion(t) (g(t)); {type(sde).__name__} has none")
    batch = x0.shape[0]
    if t is None:
        t = t_min + (1 - t_min) * torch.rand(batch, generator=generator, device=x0.device, dtype=x0.dtype)
    else:
        t = torch.tensor(t, dtype=x0.dtype) if isinstance(t, float) else t  # not rounded to float32 on the way
        t = check_time(t, low=t_min, batch=batch, device=x0.device).to(x0.dtype)
    eps = make_noise(x0, noise, generator)
    mean_coef, std = _marginal(sde, t)
    x_t = per_example(mean_coef, x0) * x0 + per_example(std, x0) * eps
    score = score_model(x_t, t)
    if not isinstance(score, Tensor) or score.shape != x0.shape:
        raise ValueError(f"score_model returned shape {tuple(getattr(score, 'shape', ()))}, expected {tuple(x0.shape)}")
    s = per_example(std, x0)
    if weighting == "sigma2":
        # s^2 ||s_theta + eps / s||^2 = ||s s_theta + eps||^2: no division, finite as s -> 0
        per_example_loss = (s * score + eps).pow(2).flatten(1).mean(dim=1)
    else:
        g = torch.as_tensor(sde.diffusion(t), dtype=x0.dtype, device=x0.device).expand(t.shape)
        per_example_loss = g**2 * (score + eps / s).pow(2).flatten(1).mean(dim=1)
    return per_example_loss.mean()
