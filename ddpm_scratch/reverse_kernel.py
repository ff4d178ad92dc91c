"""Lecture 4: the true reverse kernel q(x_s | x_t), computed exactly, and why a Gaussian step needs small steps.

DDPM's reverse step is a Gaussian, p_theta(x_{t-1} | x_t) = N(mu_theta, sigma_t^2 I). That is a good model of the
true q(x_{t-1} | x_t) only when the step is small. For Gaussian-mixture data the true kernel has a closed form, so
we can look at it for any jump s < t: for a small jump it is one nearly Gaussian bump, for a big one it has a mode
per data cluster, which no Gaussian (and no number of training steps) can fit. Denoising diffusion GANs
(`ddgan.py`) replace the Gaussian by an implicit, multimodal model for exactly this reason.

Derivation. Data p(x0) = sum_k pi_k N(mu_k, Sigma_k), and a discrete schedule with alpha_bar_s > alpha_bar_t.

    marginal   q(x_s) = sum_k pi_k N(x_s; sqrt(abar_s) mu_k, P_k),      P_k = abar_s Sigma_k + (1 - abar_s) I
    jump       q(x_t | x_s) = N(x_t; sqrt(a) x_s, (1 - a) I),           a = abar_t / abar_s
               (the one-step kernels of lecture 1 composed from s to t; for s = t - 1, a = alpha_t).
    Bayes      q(x_s | x_t) = q(x_s) q(x_t | x_s) / q(x_t) = sum_k pi_k N(x_s; .., P_k) N(x_t; sqrt(a) x_s, ..) / q(x_t)

Given the component k, (x_s, x_t) is jointly Gaussian: Cov(x_t) = a P_k + (1 - a) I = abar_t Sigma_k +
(1 - abar_t) I =: V_k (the component's covariance in q(x_t)) and Cov(x_s, x_t) = sqrt(a) P_k. So each term of the
sum factorises into "x_t under component k" times "x_s given x_t and k" (Gaussian conditioning):

    pi_k N(x_s; ..) N(x_t; ..) = pi_k N(x_t; sqrt(abar_t) mu_k, V_k) N(x_s; m_k(x_t), C_k)
    m_k(x_t) = sqrt(abar_s) mu_k + sqrt(a) P_k V_k^{-1} (x_t - sqrt(abar_t) mu_k)
    C_k      = P_k - a P_k V_k^{-1} P_k = (1 - a) P_k V_k^{-1}                     (V_k - a P_k = (1 - a) I)

and dividing by q(x_t) = sum_k pi_k N(x_t; sqrt(abar_t) mu_k, V_k):

    q(x_s | x_t) = sum_k w_k(x_t) N(x_s; m_k(x_t), C_k),   w_k(x_t) = pi_k N(x_t; sqrt(abar_t) mu_k, V_k) / q(x_t),

a Gaussian mixture again: its weights are the responsibilities of the components for x_t under q(x_t), its
means are linear in x_t, its covariances do not depend on x_t. In the eigenbasis of Sigma_k (eigenvalues lambda)
all three matrices are diagonal: p = abar_s lambda + 1 - abar_s, v = abar_t lambda + 1 - abar_t, c = (1 - a) p / v.

Checks of the formula. Point masses (Sigma_k -> 0) and s = t - 1: C_k = (1 - abar_{t-1}) / (1 - abar_t) beta_t I =
beta_tilde_t I and m_k = mu_tilde_t(x_t, mu_k), so each component is DDPM's posterior q(x_{t-1} | x_t, x0 = mu_k)
(DDPM eq. 7): the true kernel is "draw x0 from q(x0 | x_t), then the posterior step", DDGAN's parameterisation.
s = 0 gives q(x0 | x_t) itself. The mean of the mixture, E[x_{t-1} | x_t], is DDPM's mu_theta with the exact eps
(mu_tilde is linear in x0), so a Gaussian step with the exact network has the right mean and the wrong shape.

Why big steps break the Gaussian: C_k has eigenvalues (1 - a) p / v <= p, about 1 - a for a -> 1, while the means
m_j - m_k of two components differ by O(1 - a) there (P_k V_k^{-1} -> I). For a small step the components sit
much closer than their width sqrt(1 - a): one bump. For a big step (a << 1) the means are sqrt(abar_s) (mu_j - mu_k)
apart with widths about sqrt(p): separate modes as soon as q(x_s) itself has them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_data, check_int
from .schedules import NoiseSchedule, check_schedule
from .score import LOG_2PI, GaussianMixture

__all__ = ["reverse_kernel", "reverse_kernel_sample", "gaussian_reverse_step", "moment_matched_gaussian",
           "kl_monte_carlo", "grid_modes"]



def _check_steps(schedule: NoiseSchedule, t: int, s: int | None) -> int:
    """t in 1..T and s in 0..t-1 (s None: t - 1) as ints; returns s."""
    check_schedule(schedule)
    check_int("t", t)
    if t > schedule.T:
        raise ValueError(f"t must lie in 1..T={schedule.T}, got {t}")
    s = t - 1 if s is None else s
    check_int("s", s, low=0)
    if s >= t:
        raise ValueError(f"s must lie in 0..t-1 = 0..{t - 1} (the kernel goes back in time), got {s}")
    return s


def _kernel_parts(mixture: GaussianMixture, schedule: NoiseSchedule, x_t: Tensor, t: int, s: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """The mixture q(x_s | x_t) = sum_k w_k N(m_k, C_k) for every row of x_t (B, D), in the mixture's dtype:
    (log w (B, K), m (B, K, D), C (K, D, D)); the derivation is the module's docstring."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if x_t.dim() != 2 or x_t.shape[1] != mixture.D:
        raise ValueError(f"x_t must have shape (B, D) with D = {mixture.D}, got {tuple(x_t.shape)}")
    dtype = mixture.dtype
    abar_s, abar_t = (schedule.alpha_bars[i].to(dtype).item() for i in (s, t))
    a = abar_t / abar_s
    Q, lam, mu = mixture.eigenvectors, mixture.eigenvalues, mixture.means   # Sigma_k = Q_k diag(lam_k) Q_k^T
    p = abar_s * lam + 1 - abar_s                                            # eigenvalues of P_k, (K, D)
    v = abar_t * lam + 1 - abar_t                                            # eigenvalues of V_k = a P_k + (1 - a) I
    c = (1 - a) * p / v                                                      # eigenvalues of C_k
    # z_k = Q_k^T (x_t - sqrt(abar_t) mu_k): the residual of x_t under component k, in its eigenbasis, (B, K, D)
    x = x_t.to(dtype)
    z = torch.einsum("bd,kde->bke", x, Q) - math.sqrt(abar_t) * torch.einsum("kd,kde->ke", mu, Q)
    # log w_k = log pi_k + log N(x_t; sqrt(abar_t) mu_k, V_k) - log q(x_t)
    log_normal = -0.5 * ((z**2 / v).sum(-1) + v.log().sum(-1) + mixture.D * LOG_2PI)
    log_joint = mixture.weights.log() + log_normal
    log_w = log_joint - torch.logsumexp(log_joint, dim=1, keepdim=True)
    # m_k = sqrt(abar_s) mu_k + sqrt(a) P_k V_k^{-1} (x_t - sqrt(abar_t) mu_k)
    #     = sqrt(abar_s) mu_k + Q_k (sqrt(a) p / v * z_k)       (P_k V_k^{-1} = Q_k diag(p / v) Q_k^T)
    means = math.sqrt(abar_s) * mu + torch.einsum("kde,bke->bkd", Q, math.sqrt(a) * p / v * z)
    covs = Q @ torch.diag_embed(c) @ Q.mT
    return log_w, means, (covs + covs.mT) / 2


def reverse_kernel(mixture: GaussianMixture, schedule: NoiseSchedule, x_t: Tensor, t: int, s: int | None = None
                   ) -> GaussianMixture:
    """The true reverse kernel q(x_s | x_t) of data ~ mixture, exactly, as a GaussianMixture (.log_prob, .sample).

    x_t: (D,) one point.  t: a step 1..T of `schedule` (a respaced schedule's index: its big jumps).  s: 0..t-1,
    default t - 1 (one reverse step); s = 0 gives q(x0 | x_t). Computed in the mixture's dtype.
    Weights, means and covariances as derived in the module's docstring.
    """
    s = _check_steps(schedule, t, s)
    check_data("x_t", x_t)
    if x_t.dim() != 1:
        raise ValueError(f"x_t must be one point of shape (D,) = ({mixture.D},), got {tuple(x_t.shape)}; "
                         "for a batch draw with reverse_kernel_sample")
    log_w, means, covs = _kernel_parts(mixture, schedule, x_t[None], t, s)
    weights = log_w[0].exp().clamp_min(torch.finfo(mixture.dtype).tiny)  # a far component underflows to 0
    return GaussianMixture(weights, means[0], covs, dtype=mixture.dtype)


def reverse_kernel_sample(mixture: GaussianMixture, schedule: NoiseSchedule, x_t: Tensor, t: int,
                          s: int | None = None, *, generator: torch.Generator | None = None) -> Tensor:
    """One draw x_s ~ q(x_s | x_t) for every row of x_t (B, D): a component k ~ Categorical(w(x_t)), then
    x_s = m_k(x_t) + L_k eps with L_k L_k^T = C_k. Returns (B, D) in x_t's dtype.

    t, s as in `reverse_kernel`. With s = 0 this is an exact sampler of q(x0 | x_t): the perfect DDGAN generator.
    generator: draws the components, then eps.
    """
    s = _check_steps(schedule, t, s)
    check_data("x_t", x_t)
    log_w, means, covs = _kernel_parts(mixture, schedule, x_t, t, s)
    k = torch.multinomial(log_w.exp(), 1, generator=generator)[:, 0]
    eps = torch.randn(x_t.shape, generator=generator, dtype=mixture.dtype, device=means.device)
    cholesky = torch.linalg.cholesky(covs)
    rows = torch.arange(x_t.shape[0], device=means.device)
    return (means[rows, k] + torch.einsum("bde,be->bd", cholesky[k], eps)).to(x_t.dtype)


def gaussian_reverse_step(mixture: GaussianMixture, schedule: NoiseSchedule, x_t: Tensor, t: int,
                          variance: str = "beta") -> GaussianMixture:
    """DDPM's Gaussian step from x_t (D,) with the exact network: N(mu_theta(x_t, t), sigma_t^2 I) (Algorithm 2).

    mu_theta = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps) with eps = E[eps | x_t] = -sqrt(1 - abar_t)
    grad log q(x_t), the perfect eps-model (`score.mixture_eps_model`); sigma_t^2 = beta_t ("beta") or
    beta_tilde_t ("posterior", as `NoiseSchedule.reverse_variances`). Its mean is the true kernel's mean, its
    shape one bump: the model the few-step sampler is stuck with. A GaussianMixture with one component.
    """
    _check_steps(schedule, t, None)
    check_data("x_t", x_t)
    if x_t.dim() != 1 or x_t.shape[0] != mixture.D:
        raise ValueError(f"x_t must be one point of shape (D,) = ({mixture.D},), got {tuple(x_t.shape)}")
    dtype = mixture.dtype
    alpha, beta, abar = (getattr(schedule, name)[t].to(dtype).item() for name in ("alphas", "betas", "alpha_bars"))
    x = x_t.to(dtype)[None]
    eps = -math.sqrt(1 - abar) * mixture.score(x, mean_coef=math.sqrt(abar), std=math.sqrt(1 - abar))
    mean = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(alpha)              # Algorithm 2, line 4
    sigma2 = schedule.reverse_variances(variance)[t].to(dtype)
    return GaussianMixture([1.0], mean, sigma2.reshape(1), dtype=dtype)


def moment_matched_gaussian(mixture: GaussianMixture) -> GaussianMixture:
    """N(E[x], Cov[x]) of a mixture: of all Gaussians the one closest to it in KL(mixture || N) (the best a
    Gaussian step with a learned full covariance could do). A GaussianMixture with one component."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    return GaussianMixture([1.0], mixture.mean()[None], mixture.covariance()[None], dtype=mixture.dtype)


def kl_monte_carlo(p: GaussianMixture, q: GaussianMixture, n: int = 100_000,
                   generator: torch.Generator | None = None) -> tuple[float, float]:
    """KL(p || q) = E_p[log p(x) - log q(x)] by Monte Carlo with n draws of p: (estimate, its standard error).

    Both densities are exact; only the average over x ~ p is estimated.
    """
    check_int("n", n, low=2)
    x = p.sample(n, generator=generator)
    log_ratio = p.log_prob(x) - q.log_prob(x.to(q.dtype)).to(x.dtype)
    return log_ratio.mean().item(), (log_ratio.std() / math.sqrt(n)).item()


def grid_modes(mixture: GaussianMixture, low: float, high: float, n: int = 201) -> Tensor:
    """The local maxima of a 1-D or 2-D mixture's density on the grid linspace(low, high, n) per axis: (M, D).

    A grid point is a mode when its log-density is the largest in its 3 (1-D) or 3 x 3 (2-D) neighbourhood and it
    is not on the border (a density rising out of the window is not a mode). Resolution: a mode closer to another
    than the grid spacing (high - low) / (n - 1) may be missed.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    if mixture.D not in (1, 2):
        raise ValueError(f"grid_modes needs a 1-D or 2-D mixture, got D = {mixture.D}")
    check_int("n", n, low=3)
    if not high > low:
        raise ValueError(f"high must be > low, got low={low}, high={high}")
    axis = torch.linspace(low, high, n, dtype=mixture.dtype)
    axes = torch.meshgrid(*([axis] * mixture.D), indexing="ij")
    points = torch.stack([g.flatten() for g in axes], dim=1)
    density = mixture.log_prob(points).reshape([n] * mixture.D)
    pool = F.max_pool1d if mixture.D == 1 else F.max_pool2d
    # -inf padding: the border compares with its inside neighbours only, and is then excluded
    padded = F.pad(density[None, None], [1, 1] * mixture.D, value=-math.inf)
    is_max = density == pool(padded, kernel_size=3, stride=1)[0, 0]
    interior = torch.zeros_like(is_max)
    interior[(slice(1, -1),) * mixture.D] = True
    return points[(is_max & interior).flatten()]
