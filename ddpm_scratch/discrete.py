"""Lecture 6: diffusion on categories (D3PM, Austin et al. 2021).

Pixels on a few grey levels and words are categories, not points of R^d: adding Gaussian noise to them leaves the
set they live in. D3PM corrupts a category x in {0..K-1} with a Markov chain on the categories themselves. With x a
one-hot ROW vector and [Q_t]_ij = q(x_t = j | x_{t-1} = i) (rows are distributions):

    q(x_t | x_{t-1}) = Cat(x_t; x_{t-1} Q_t)            q(x_t | x0) = Cat(x_t; x0 Qbar_t),  Qbar_t = Q_1 ... Q_t
    q(x_{t-1} | x_t, x0) = Cat(x_{t-1}; (x_t Q_t^T) * (x0 Qbar_{t-1}) / (x0 Qbar_t x_t^T))        (Bayes, D3PM eq. 3)

The kernels (`transition`, `KINDS`):
    uniform     Q_t = (1 - beta_t) I + beta_t 1 pi^T,  pi = 1/K           stationary law: uniform
    absorbing   Q_t = (1 - beta_t) I + beta_t 1 e_m^T, one more state m = K, the mask      stationary law: all mask
    gaussian    [Q_t]_ij ~ exp(-4 (i - j)^2 / ((K - 1)^2 beta_t)) off the diagonal, the rest of the row on it
                (ordinal: near grey levels are likelier; doubly stochastic, so its stationary law is uniform too)
The first two are "keep with probability 1 - beta, else redraw from pi", so their products stay in the family:
Qbar_t = alpha_bar_t I + (1 - alpha_bar_t) 1 pi^T with alpha_bar_t = prod (1 - beta_s) (the closed form; no matrix is
ever built for them here: rows and columns are written down directly, so K = 256 costs (B, D, K) numbers, never
(B, D, K, K)). The gaussian kernel has no closed form: its Q_t and Qbar_t are stored, float64 matrix products.

The reverse model predicts x0 (D3PM eq. 4): a network gives p~(x0 | x_t) over the K data categories, and
p(x_{t-1} | x_t) is the posterior with x0's one-hot row replaced by those probabilities (`q_posterior` takes either).
It is trained with the hybrid loss L_vb + lambda * CE (`hybrid_loss`), sampled ancestrally (`sample`, the same hook
as the Gaussian samplers: hook(x, t) -> x after every step) and, for the absorbing kernel, by confidence-ordered
unmasking (`maskgit_sample`). `bound_bits` is the whole variational bound in bits per dimension.

Conventions as in the rest of the course: arrays of length T+1, index t = the lecture's t, index 0 the data; data are
LongTensors (B, ...) of categories; probabilities carry the categories in a last axis (B, ..., K').
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm.auto import tqdm

from .checks import check_choice, check_int, check_number, check_timestep
from .reverse_steps import Hook, after_step, reverse_indices
from .schedules import lookup, spaced_timesteps

__all__ = ["KINDS", "num_states", "stationary", "transition", "cumulative", "CategoricalDiffusion", "q_probs",
           "q_sample", "q_posterior", "p_posterior", "categorical", "hybrid_loss", "vb_term", "prior_kl", "bound_bits",
           "sample", "maskgit_sample", "cosine_mask_schedule", "x0_probs", "X0Model"]

KINDS = ("uniform", "absorbing", "gaussian")
X0Model = Callable[[Tensor, Tensor], Tensor]  # model(x_t (B, ...) long, t (B,) long) -> logits of x0 (B, ..., K)


def num_states(kind: str, K: int) -> int:
    """K' = the states of x_t: K, or K + 1 for the absorbing kernel (the mask is the last state, index K)."""
    check_choice("kind", kind, KINDS)
    return check_int("K", K, low=2) + (kind == "absorbing")


def stationary(kind: str, K: int) -> Tensor:
    """pi (K',) float64: the law q(x_t) converges to; uniform over the K categories, or all mass on the mask."""
    pi = torch.zeros(num_states(kind, K), dtype=torch.float64)
    if kind == "absorbing":
        pi[K] = 1.0
    else:
        pi[:K] = 1.0 / K
    return pi


def transition(kind: str, beta: float, K: int) -> Tensor:
    """Q_t (K', K') float64 with Q_t[i, j] = q(x_t = j | x_{t-1} = i); every row sums to 1.

    kind: "uniform" | "absorbing" (K' = K + 1; the mask, index K, stays masked) | "gaussian" (ordinal).
    beta: beta_t in [0, 1] (the gaussian kernel needs beta > 0: it is its width).
    """
    n = num_states(kind, K)
    check_number("beta", beta, 0, 1, low_open=kind == "gaussian")
    if kind != "gaussian":
        return (1 - beta) * torch.eye(n, dtype=torch.float64) + beta * stationary(kind, K)[None, :]
    # D3PM appendix A.2.2: a discretised Gaussian over the distance |i - j|, normalised over every distance -(K-1)..K-1
    # (so that every row is normalised the same way), its missing mass put on the diagonal.
    distances = torch.arange(-(K - 1), K, dtype=torch.float64)
    weights = torch.exp(-4 * distances**2 / ((K - 1) ** 2 * beta))
    i = torch.arange(K, dtype=torch.float64)
    Q = torch.exp(-4 * (i[:, None] - i[None, :]) ** 2 / ((K - 1) ** 2 * beta)) / weights.sum()
    Q.fill_diagonal_(0.0)
    return Q + torch.diag(1 - Q.sum(dim=1))


def _check_betas(betas: Tensor) -> Tensor:
    if not isinstance(betas, Tensor) or betas.dim() != 1 or betas.numel() < 2:
        raise ValueError(f"betas must be a 1-D tensor of length T+1 >= 2 (index 0 is the data), got "
                         f"{tuple(betas.shape) if isinstance(betas, Tensor) else type(betas).__name__}")
    betas = betas.detach().to("cpu", torch.float64)
    if betas[0] != 0:
        raise ValueError(f"betas[0] must be 0 (index 0 is the data), got {betas[0].item()}")
    inner = betas[1:]
    if not torch.isfinite(inner).all() or (inner <= 0).any() or (inner > 1).any():
        raise ValueError(f"betas[1..T] must lie in (0, 1], got values such as {inner[(inner <= 0) | (inner > 1)][:3]}")
    return betas


def cumulative(kind: str, betas: Tensor, K: int) -> Tensor:
    """Qbar (T+1, K', K') float64: Qbar[0] = I and Qbar[t] = Q_1 Q_2 ... Q_t, so Qbar[t][i, j] = q(x_t = j | x0 = i).

    betas: (T+1,) with betas[0] = 0. Uniform and absorbing: the closed form alpha_bar_t I + (1 - alpha_bar_t) 1 pi^T
    (alpha_bar_t = prod_{s<=t} (1 - beta_s), a product of numbers in (0, 1]: no matrix product, no cancellation).
    Gaussian: the running product of the Q_s in float64.
    """
    betas = _check_betas(betas)
    n = num_states(kind, K)
    if kind != "gaussian":
        alpha_bars = torch.cumprod(1 - betas, dim=0)[:, None, None]
        return alpha_bars * torch.eye(n, dtype=torch.float64) + (1 - alpha_bars) * stationary(kind, K)[None, None]
    Q_bar = torch.empty(len(betas), n, n, dtype=torch.float64)
    Q_bar[0] = torch.eye(n, dtype=torch.float64)
    for t in range(1, len(betas)):
        Q_bar[t] = Q_bar[t - 1] @ transition(kind, float(betas[t]), K)
    return Q_bar


# ------------------------------------------------------------------------------------------------ the process
def _default_betas(kind: str, T: int) -> Tensor:
    """D3PM's choices (appendix A.7): absorbing beta_t = 1/(T - t + 1), so alpha_bar_t = 1 - t/T and x_T is all mask;
    uniform the cosine schedule alpha_bar_t = cos((t/T + 0.008)/1.008 pi/2) (not squared, as in D3PM's code, whose
    betas stop at 0.999; here beta_T = 1, so x_T is exactly uniform);
    gaussian DDPM's linear 1e-4 .. 0.02, rescaled by 1000/T."""
    t = torch.arange(T + 1, dtype=torch.float64)
    if kind == "absorbing":
        betas = 1 / (T - t + 1)
    elif kind == "uniform":
        alpha_bars = torch.cos((t / T + 0.008) / 1.008 * math.pi / 2)
        betas = torch.ones_like(t)
        betas[1:] = (1 - alpha_bars[1:] / alpha_bars[:-1]).clamp(max=1.0)
    else:
        scale = 1000 / T
        betas = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(1e-4 * scale, 0.02 * scale, T,
                                                                                dtype=torch.float64)]).clamp(max=1.0)
    betas[0] = 0.0
    return betas


@dataclass(frozen=True, eq=False)
class CategoricalDiffusion:
    """A discrete-state forward process: the kernel, K data categories and beta_1..beta_T.

    Build one with `CategoricalDiffusion.default(kind, K, T)` (D3PM's schedule for the kernel) or with explicit
    betas (T+1,), betas[0] = 0. Fields (float64, on the CPU until `.to`):
        alpha_bars (T+1,): prod_{s<=t} (1 - beta_s), the probability that x0 was never redrawn (uniform, absorbing)
        Q, Q_bar (T+1, K', K'): the gaussian kernel's one-step and cumulative matrices (None for the others, whose
            rows and columns are written down from alpha_bars)
        timesteps (T+1,) long: the training step each index stands for (0..T, except after `respace`)
    """

    kind: str
    K: int
    betas: Tensor
    timesteps: Tensor | None = None
    alpha_bars: Tensor = field(init=False, repr=False)
    pi: Tensor = field(init=False, repr=False)
    Q: Tensor | None = field(init=False, repr=False)
    Q_bar: Tensor | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        num_states(self.kind, self.K)
        betas = _check_betas(self.betas)
        T = len(betas) - 1
        steps = torch.arange(T + 1) if self.timesteps is None else torch.as_tensor(self.timesteps).long().cpu()
        if steps.shape != (T + 1,) or steps[0] != 0 or (steps[1:] <= steps[:-1]).any():
            raise ValueError(f"timesteps must be an increasing (T+1,) = ({T + 1},) sequence from 0, got {steps[:8]}")
        Q = Q_bar = None
        if self.kind == "gaussian":
            Q = torch.stack([torch.eye(self.K, dtype=torch.float64)]
                            + [transition(self.kind, float(b), self.K) for b in betas[1:]])
            Q_bar = cumulative(self.kind, betas, self.K)
        for name, value in [("betas", betas), ("timesteps", steps), ("alpha_bars", torch.cumprod(1 - betas, 0)),
                            ("pi", stationary(self.kind, self.K)), ("Q", Q), ("Q_bar", Q_bar)]:
            object.__setattr__(self, name, value)

    @classmethod
    def default(cls, kind: str, K: int, T: int = 1000) -> CategoricalDiffusion:
        """The kernel with D3PM's schedule for it (`_default_betas`)."""
        check_choice("kind", kind, KINDS)
        return cls(kind, K, _default_betas(kind, check_int("T", T)))

    @property
    def T(self) -> int:
        return len(self.betas) - 1

    @property
    def num_states(self) -> int:
        """K' (K + 1 with the mask)."""
        return num_states(self.kind, self.K)

    @property
    def mask(self) -> int | None:
        """The mask's index K for the absorbing kernel, else None."""
        return self.K if self.kind == "absorbing" else None

    def respace(self, timesteps: Tensor | Sequence[int]) -> CategoricalDiffusion:
        """The process that jumps between the given steps s_1 < ... < s_n of this one (1..T), keeping q(x_t | x0) at
        them: its step k is the product Q_{s_{k-1}+1} ... Q_{s_k}, for uniform and absorbing again of their form with
        beta'_k = 1 - alpha_bar_{s_k} / alpha_bar_{s_{k-1}}. Index k stands for training step `timesteps[k]`."""
        steps = torch.as_tensor(timesteps).long().cpu()
        if steps.dim() != 1 or not len(steps) or (steps[1:] <= steps[:-1]).any() or steps[0] < 1 or steps[-1] > self.T:
            raise ValueError(f"timesteps must increase strictly within 1..T={self.T}, got {steps.tolist()[:8]}")
        kept = torch.cat([torch.zeros(1, dtype=torch.long), steps])
        if self.kind == "gaussian":
            if not torch.equal(steps, torch.arange(1, len(steps) + 1)):
                raise ValueError("respace: jumps of the gaussian kernel are not gaussian kernels again; it can only "
                                 "stop early (timesteps 1..n), so sample it with every step (num_steps=None)")
            return CategoricalDiffusion(self.kind, self.K, self.betas.cpu()[kept], self.timesteps.cpu()[kept]).to(
                self.betas.device)
        a = self.alpha_bars.cpu().double()[kept]
        betas = torch.zeros_like(a)
        betas[1:] = torch.where(a[:-1] > 0, 1 - a[1:] / a[:-1].clamp_min(1e-300), torch.ones_like(a[1:]))
        betas[1:] = betas[1:].clamp(min=1e-12, max=1.0)  # a jump that changes nothing still has beta > 0
        return CategoricalDiffusion(self.kind, self.K, betas, self.timesteps.cpu()[kept]).to(self.betas.device)

    def to(self, device: torch.device | str) -> CategoricalDiffusion:
        """The same process with its arrays on `device` (float32 on MPS), so no step copies them."""
        device = torch.device(device)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        moved = CategoricalDiffusion.__new__(CategoricalDiffusion)
        for name in ("kind", "K"):
            object.__setattr__(moved, name, getattr(self, name))
        for name in ("betas", "alpha_bars", "pi", "Q", "Q_bar"):
            value = getattr(self, name)
            object.__setattr__(moved, name, None if value is None else value.to(device, dtype))
        object.__setattr__(moved, "timesteps", self.timesteps.to(device))
        return moved

    def __repr__(self) -> str:
        return f"CategoricalDiffusion({self.kind}, K={self.K}, T={self.T})"


# ------------------------------------------------------------------------------------------------ rows and columns
def _one_hot(x: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """(B, ...) long -> (B, ..., n) one-hot rows."""
    return torch.zeros(*x.shape, n, device=x.device, dtype=dtype).scatter_(-1, x.unsqueeze(-1), 1.0)


def _rows(matrices: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """Row x of matrices[t] for every entry of x (B, ...): (B, ..., K'), gathered (no (B, ..., K', K'))."""
    return matrices[t.reshape(-1, *([1] * (x.dim() - 1))), x]


def _times_Q_bar(process: CategoricalDiffusion, p0: Tensor, t: Tensor) -> Tensor:
    """p0 Qbar_t: (B, ..., K') for nonnegative weights p0 (B, ..., K') over x0 (a one-hot row, say)."""
    if process.Q_bar is None:  # alpha_bar p0 + (1 - alpha_bar) (sum p0) pi
        a = lookup(process.alpha_bars, t, p0)
        return a * p0 + (1 - a) * p0.sum(-1, keepdim=True) * process.pi
    return torch.einsum("b...i,bij->b...j", p0, process.Q_bar[t].to(p0.dtype))  # one (K, K) matrix per example


def _column(process: CategoricalDiffusion, x_t: Tensor, t: Tensor, *, cumulative: bool) -> Tensor:
    """Column x_t of Q_t (or of Qbar_t): (B, ..., K') with entry i = q(x_t | x_{t-1} = i) (or q(x_t | x0 = i)),
    the likelihood of the observed x_t."""
    if process.Q is None:  # keep [i = x_t] + (1 - keep) pi[x_t], keep = 1 - beta_t (or alpha_bar_t)
        one_hot = _one_hot(x_t, process.num_states, process.pi.dtype)
        keep = lookup(process.alpha_bars if cumulative else 1 - process.betas, t, one_hot)
        return keep * one_hot + (1 - keep) * process.pi[x_t].unsqueeze(-1)
    matrices = process.Q_bar if cumulative else process.Q
    return _rows(matrices.transpose(1, 2), t, x_t)  # row x_t of the transpose is column x_t


def _check_states(name: str, x: Tensor, process: CategoricalDiffusion, data: bool) -> None:
    if not isinstance(x, Tensor) or x.dtype != torch.long or x.dim() < 1:
        raise TypeError(f"{name} must be a LongTensor (B, ...) of categories, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    high = process.K if data else process.num_states
    if x.device.type == "cpu" and x.numel() and (x.min() < 0 or x.max() >= high):  # (on a GPU: no sync per step)
        raise ValueError(f"{name} must hold categories in 0..{high - 1}, got values in {x.min().item()}.."
                         f"{x.max().item()}")


def _steps(process: CategoricalDiffusion, t: int | Tensor, batch: int, low: int = 1) -> Tensor:
    return check_timestep(t, process.T, low=low, batch=batch, device=process.betas.device)


def q_probs(process: CategoricalDiffusion, x0: Tensor, t: int | Tensor) -> Tensor:
    """q(x_t | x0) = x0 Qbar_t: (B, ..., K') for x0 (B, ...) long in 0..K-1 and t in 0..T (int or (B,)).

    Probabilities here and below are in the process's dtype (float64, float32 on MPS: `.to`)."""
    _check_states("x0", x0, process, data=True)
    t = _steps(process, t, x0.shape[0], low=0)
    if process.Q_bar is None:
        return _times_Q_bar(process, _one_hot(x0, process.num_states, process.pi.dtype), t)
    return _rows(process.Q_bar, t, x0)


def categorical(probs: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row of probs (..., K') (rows summing to 1): a LongTensor (...), by the inverse CDF."""
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(-1)
    # side="right": the first state whose cumulative probability exceeds u, so a state of probability 0 is never drawn
    return torch.searchsorted(cdf, u * cdf[..., -1:], side="right").squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def q_sample(process: CategoricalDiffusion, x0: Tensor, t: int | Tensor, *,
             generator: torch.Generator | None = None) -> Tensor:
    """x_t ~ q(x_t | x0) (B, ...) long, for x0 (B, ...) long and t in 0..T."""
    return categorical(q_probs(process, x0, t), generator=generator)


def q_posterior(process: CategoricalDiffusion, x_t: Tensor, t: int | Tensor, *, x0: Tensor) -> Tensor:
    """q(x_{t-1} | x_t, x0) (B, ..., K') by Bayes (D3PM eq. 3): (x_t Q_t^T) * (x0 Qbar_{t-1}) / q(x_t | x0).

    x_t: (B, ...) long in 0..K'-1; t in 1..T.  x0: (B, ...) long categories, or (B, ..., K) probabilities p over
    them, and then the mixture sum_x0 p(x0) q(x_{t-1} | x_t, x0) (the reverse model's parameterisation; x0 that
    cannot lead to x_t, or whose q(x_t | x0) underflows to 0, are left out and p renormalised over the others; if p
    puts no mass on any of those, they count equally, so the step always goes somewhere the process allows).
    With the exact p(x0 | x_t) the mixture is the exact reverse step q(x_{t-1} | x_t). D3PM's eq. 4
    instead mixes the joints q(x_{t-1}, x_t | x0), which weights each x0 by q(x_t | x0) as well; for the absorbing
    kernel the two agree. A pair (x0, x_t) the process cannot produce has no posterior: its row is returned as zeros.
    """
    _check_states("x_t", x_t, process, data=False)
    t = _steps(process, t, x_t.shape[0])
    if x0.dtype == torch.long:
        _check_states("x0", x0, process, data=True)
        weights = _one_hot(x0, process.num_states, process.pi.dtype)
    else:
        if x0.shape != x_t.shape + (process.K,):
            raise ValueError(f"x0 must be long categories of x_t's shape {tuple(x_t.shape)} or probabilities of shape "
                             f"{tuple(x_t.shape) + (process.K,)}, got {x0.dtype} {tuple(x0.shape)}")
        likelihood = _column(process, x_t, t, cumulative=True)[..., :process.K]  # q(x_t | x0), (B, ..., K)
        possible = likelihood > 0  # (dividing only there keeps the gradient finite)
        p = x0.to(likelihood.dtype).clamp_min(torch.finfo(likelihood.dtype).tiny)  # no possible x0 weighs exactly 0
        weights = F.pad(torch.where(possible, p / torch.where(possible, likelihood, 1.0), 0.0),
                        (0, process.num_states - process.K))  # no mass on the mask
    joint = _column(process, x_t, t, cumulative=False) * _times_Q_bar(process, weights, t - 1)
    total = joint.sum(-1, keepdim=True)
    return joint / torch.where(total > 0, total, torch.ones_like(total))


def x0_probs(model: X0Model, process: CategoricalDiffusion, x_t: Tensor, t: Tensor) -> Tensor:
    """p~(x0 | x_t) (B, ..., K): the softmax of the network's logits, called at the training steps t stands for."""
    logits = model(x_t, process.timesteps[t])
    if logits.shape != x_t.shape + (process.K,):
        raise ValueError(f"the model must return x0 logits of shape {tuple(x_t.shape) + (process.K,)} (K = "
                         f"{process.K} categories last), got {tuple(logits.shape)}")
    return logits.float().softmax(-1)


def p_posterior(model: X0Model, process: CategoricalDiffusion, x_t: Tensor, t: int | Tensor) -> Tensor:
    """p_theta(x_{t-1} | x_t) (B, ..., K'): the posterior with the network's p~(x0 | x_t) for x0 (D3PM eq. 4)."""
    t = _steps(process, t, x_t.shape[0])
    return q_posterior(process, x_t, t, x0=x0_probs(model, process, x_t, t))


# ------------------------------------------------------------------------------------------------ the loss and bound
def _kl(q: Tensor, p: Tensor) -> Tensor:
    """sum_k q log(q / p) over the last axis (0 log 0 = 0)."""
    return (torch.xlogy(q, q) - torch.xlogy(q, p.clamp_min(1e-30))).sum(-1)


def _nll(p: Tensor, x: Tensor) -> Tensor:
    """-log p[x] for every entry of x (B, ...), p (B, ..., K')."""
    return -torch.log(p.gather(-1, x.unsqueeze(-1)).squeeze(-1).clamp_min(1e-30))


def _mean_over_dims(values: Tensor) -> Tensor:
    return values.reshape(values.shape[0], -1).mean(1)


def _terms(model: X0Model, process: CategoricalDiffusion, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(L_{t-1} per dimension (B, ...) in nats, the network's p~(x0 | x_t) (B, ..., K)): the KL of the true posterior
    from the model's for t >= 2, the decoder's -log p_theta(x0 | x_1) at t = 1 (D3PM eq. 2)."""
    p0 = x0_probs(model, process, x_t, t)
    p = q_posterior(process, x_t, t, x0=p0)
    first = (t == 1).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.where(first, _nll(p, x0), _kl(q_posterior(process, x_t, t, x0=x0), p)), p0


def vb_term(model: X0Model, process: CategoricalDiffusion, x0: Tensor, x_t: Tensor, t: int | Tensor) -> Tensor:
    """L_{t-1} per example (B,) in nats per dimension: KL(q(x_{t-1} | x_t, x0) || p_theta(x_{t-1} | x_t)) for t >= 2,
    the decoder's -log p_theta(x0 | x_1) at t = 1. x0, x_t: (B, ...) long."""
    _check_states("x0", x0, process, data=True)
    return _mean_over_dims(_terms(model, process, x0, x_t, _steps(process, t, x0.shape[0]))[0])


def prior_kl(process: CategoricalDiffusion, x0: Tensor) -> Tensor:
    """L_T per example (B,), nats per dimension: KL(q(x_T | x0) || pi), the prior the sampler starts from."""
    q = q_probs(process, x0, process.T)
    return _mean_over_dims(_kl(q, process.pi.expand_as(q)))


def hybrid_loss(model: X0Model, process: CategoricalDiffusion, x0: Tensor, *, lam: float = 0.01,
                generator: torch.Generator | None = None) -> Tensor:
    """D3PM's L_lambda (eq. 5) for one draw t ~ U{1..T}, x_t ~ q(x_t | x0) per example: the bound's term L_{t-1} plus
    lam * the cross-entropy -log p~(x0 | x_t) of the network's direct x0 prediction; nats per dimension, the batch's
    mean. x0: (B, ...) long in 0..K-1. generator draws t and x_t."""
    _check_states("x0", x0, process, data=True)
    check_number("lam", lam, low=0)
    t = torch.randint(1, process.T + 1, (x0.shape[0],), generator=generator, device=x0.device)
    vb, p0 = _terms(model, process, x0, q_sample(process, x0, t, generator=generator), t)
    return (vb + lam * _nll(p0, x0)).mean().float()


@torch.no_grad()
def bound_bits(model: X0Model, process: CategoricalDiffusion, x0: Tensor, *, generator: torch.Generator | None = None,
               progress: bool = False) -> Tensor:
    """The variational bound -log p(x0) <= L_T + sum_{t=1}^T L_{t-1}, per example in bits per dimension (B,).

    Every term at one draw x_t ~ q(x_t | x0) (an unbiased estimate of the bound; T network calls). On a respaced
    process it is the bound of the model that jumps between its steps."""
    _check_states("x0", x0, process, data=True)
    total = prior_kl(process, x0)
    for i in reverse_indices(process, progress, desc="bound"):
        t = torch.full((x0.shape[0],), i, dtype=torch.long, device=x0.device)
        total = total + vb_term(model, process, x0, q_sample(process, x0, t, generator=generator), t)
    return total / math.log(2)


# ------------------------------------------------------------------------------------------------ samplers
def _start(process: CategoricalDiffusion, shape: Sequence[int], x_T: Tensor | None, device: torch.device | str | None,
           generator: torch.Generator | None) -> Tensor:
    """x_T ~ pi on the process's device (or the caller's x_T, checked)."""
    if len(shape) < 2 or any(int(s) <= 0 for s in shape):
        raise ValueError(f"shape must be (B, ...) with positive sizes, got {tuple(shape)}")
    here = process.betas.device
    if device is not None and torch.empty(0, device=device).device != here:  # (resolves "cuda" to "cuda:0")
        raise ValueError(f"device {device} differs from the process's {here}: move the process with "
                         f"process.to(device) (it samples where its arrays are)")
    if x_T is not None:
        _check_states("x_T", x_T, process, data=False)
        if tuple(x_T.shape) != tuple(shape):
            raise ValueError(f"x_T has shape {tuple(x_T.shape)}, expected {tuple(shape)}")
        return x_T
    return categorical(process.pi.expand(*shape, -1), generator=generator)


@torch.no_grad()
def sample(model: X0Model, process: CategoricalDiffusion, shape: Sequence[int], *, num_steps: int | None = None,
           x_T: Tensor | None = None, t_start: int | None = None, hook: Hook | None = None,
           generator: torch.Generator | None = None, device: torch.device | str | None = None,
           progress: bool = False) -> Tensor:
    """Ancestral sampling (B, ...) long in 0..K-1: x_T ~ pi (uniform noise, or all mask), then x_{t-1} ~
    p_theta(x_{t-1} | x_t) down to t = 0 (the last step draws x0 from p_theta(x0 | x_1) too).

    model(x_t, t) -> x0 logits (B, ..., K).  num_steps: jump between that many evenly spaced steps (`respace`;
    uniform and absorbing kernels).  x_T, t_start: start from the caller's state at step t_start (x_T needed).
    hook(x, t) -> x: after every step, with the training step x is now at (t = 0 last), as in `sampling.sample`.
    generator draws x_T and every step; both happen on the process's device (`.to`; `device`, if given, must be it).
    """
    if t_start is not None and x_T is None:
        raise ValueError("t_start needs x_T: the state at step t_start (e.g. q_sample(process, x0, t_start))")
    top = process.T if t_start is None else check_int("t_start", t_start)
    if top > process.T:
        raise ValueError(f"t_start must lie in 1..T={process.T}, got {t_start}")
    if num_steps is not None or top < process.T:
        steps = torch.arange(1, top + 1) if num_steps is None else spaced_timesteps(top, num_steps)
        process = process.respace(steps)
    x = _start(process, shape, x_T, device, generator)
    training_steps = process.timesteps.tolist()
    for i in reverse_indices(process, progress, desc=f"sampling ({process.kind})"):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        x = categorical(p_posterior(model, process, x, t), generator=generator)
        x = after_step(hook, x, training_steps[i - 1])
    return x


def cosine_mask_schedule(r: float) -> float:
    """MaskGIT's gamma(r) = cos(pi r / 2): the fraction of tokens still masked after a fraction r of the steps."""
    return math.cos(math.pi * r / 2)


@torch.no_grad()
def maskgit_sample(model: X0Model, process: CategoricalDiffusion, shape: Sequence[int], *, num_steps: int = 12,
                   temperature: float = 1.0, hook: Hook | None = None, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None, progress: bool = False) -> Tensor:
    """Confidence-ordered unmasking (MaskGIT, Chang et al. 2022) with an absorbing-kernel model: (B, ...) long.

    From all mask, step k = 1..num_steps draws every masked token from p~(x0 | x_t), scores each by the log
    probability of the drawn token plus Gumbel noise times temperature * (1 - r) (r = k / num_steps, annealed to 0),
    and keeps the floor(N gamma(r)) least confident masked (gamma = `cosine_mask_schedule`; at least one token is
    unmasked per step, none is left masked after the last). The network is called at the step t whose masked
    fraction 1 - alpha_bar_t is the current one. hook(x, t) -> x after every step, with the step of x's masked
    fraction (0 at the end); generator draws the tokens and the Gumbel noise.
    """
    if process.kind != "absorbing":
        raise ValueError(f"maskgit_sample unmasks: it needs the absorbing kernel, got {process.kind!r}")
    check_int("num_steps", num_steps)
    check_number("temperature", temperature, low=0)
    x = _start(process, shape, None, device, generator)
    B, N = x.shape[0], x[0].numel()
    masked_fraction = (1 - process.alpha_bars).float().contiguous()
    for k in tqdm(range(1, num_steps + 1), disable=not progress, desc="unmasking", leave=False):
        masked = (x == process.mask).reshape(B, N)
        t = torch.searchsorted(masked_fraction, masked.float().mean(1)).clamp(1, process.T)
        p0 = x0_probs(model, process, x, t).reshape(B, N, process.K)
        drawn = categorical(p0, generator=generator)
        r = k / num_steps
        u = torch.rand(drawn.shape, generator=generator, device=x.device).clamp(1e-20, 1 - 1e-7)
        confidence = torch.log(p0.gather(-1, drawn.unsqueeze(-1)).squeeze(-1).clamp_min(1e-30))
        confidence = confidence - temperature * (1 - r) * torch.log(-torch.log(u))  # plus Gumbel(0, 1) noise
        confidence = torch.where(masked, confidence, torch.full_like(confidence, math.inf))
        still = (masked.sum(1) - 1).clamp(min=0).clamp(max=math.floor(N * cosine_mask_schedule(r)))
        keep_masked = torch.arange(N, device=x.device)[None, :] < still[:, None]  # the least confident `still`
        remask = torch.zeros_like(masked).scatter(1, confidence.argsort(1), keep_masked)
        x = torch.where(masked & ~remask, drawn, x.reshape(B, N)).reshape(x.shape)
        now = int(torch.searchsorted(masked_fraction, still[:1].float() / N).clamp(max=process.T))
        x = after_step(hook, x, now)
    return x
