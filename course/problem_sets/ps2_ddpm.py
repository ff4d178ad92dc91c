# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 2 — learning to denoise: $L_\text{simple}$ and DDPM sampling
#
# DDPM trains a network $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ to predict the noise that the forward process
# mixed into $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$, and
# generates by running the learned reverse chain from $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ down to
# $\mathbf{x}_0$. In this problem set you write both algorithms of the DDPM paper and prove numerically that they do
# what the lecture says:
#
# | part | what you show | points |
# |---|---|---|
# | A | the loss $L_\text{simple}$ of Algorithm 1 | 2 |
# | B | one step of ancestral sampling (Algorithm 2, line 4) | 3 |
# | C | the exact noise predictor $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$ for Gaussian data | 3 |
# | D | the true reverse variance for Gaussian data lies between DDPM's two choices of $\sigma_t^2$ | 2 |
# | E | the sampler with the exact noise predictor returns the data distribution | 3 |
# | F | the bound's weight $\lambda_t$ depends on the schedule only through the signal-to-noise ratio | 2 |
# | G | one training step (Algorithm 1) and a tiny model; what predicting $\mathbf{x}_0$ instead changes | 2 + 2 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones catch
# wrong shapes and obvious slips, hidden ones run at grading time and compare your functions with independent
# computations (closed forms, automatic differentiation, Monte Carlo with error bars derived from the sample size).
# Write your answers with `torch` and `math`; do not import `ddpm_scratch`.
#
# **Conventions.** As in problem set 1: arrays over time have length $T+1$, index $t$ is the lecture's $t$, index 0
# is the data. The schedule below gives you $\beta_t$, $\alpha_t = 1-\beta_t$, $\bar\alpha_t$ and the posterior
# variance $\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ (you derived them in problem set 1).
# An *eps-model* is any callable `eps_model(x_t, t)` taking `x_t` of shape `(B, ...)` and `t` of shape `(B,)`
# (long, values in $1..T$) and returning a tensor shaped like `x_t`. The notebook computes in float64.
#
# **Calling convention** (the course package's): the schedule comes first, then the state and the timestep,
# positionally, `(sched, x_t, t)`; everything a model predicts or a caller draws is keyword-only, e.g.
# `p_sample_step(sched, x_t, t, eps=eps_hat, sigma2=..., z=z)`. The predicted noise, $\mathbf{x}_t$ and $\mathbf{z}$
# all have the same shape, so two of them swapped in a positional call would raise nothing; a keyword cannot be
# swapped silently.

# %% id="setup"
import math
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than two that wait for each other


class Schedule(NamedTuple):
    """A variance schedule in the course's convention: every field has shape (T+1,) and index t is the lecture's t."""

    betas: Tensor  # beta_t, betas[0] = 0
    alphas: Tensor  # alpha_t = 1 - beta_t
    alpha_bars: Tensor  # alpha_bar_t = prod_{s <= t} alpha_s, alpha_bars[0] = 1
    beta_tildes: Tensor  # beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t, 0 at t = 0 and t = 1

    @property
    def T(self) -> int:
        return self.betas.numel() - 1


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear schedule, beta_1 = beta_start ... beta_T = beta_end."""
    betas = torch.cat([torch.zeros(1), torch.linspace(beta_start, beta_end, T)])
    alpha_bars = torch.cumprod(1 - betas, dim=0)
    beta_tildes = torch.zeros(T + 1)
    beta_tildes[1:] = (1 - alpha_bars[:-1]) / (1 - alpha_bars[1:]) * betas[1:]
    return Schedule(betas, 1 - betas, alpha_bars, beta_tildes)


# %% [markdown] id="part_a"
# ## Part A — the loss $L_\text{simple}$ (2 points)
#
# Ho et al. train with
#
# $$L_\text{simple} = \mathbb{E}_{\mathbf{x}_0,\ \boldsymbol\epsilon \sim \mathcal{N}(\mathbf{0}, \mathbf{I}),\
# t \sim \mathcal{U}\{1..T\}} \Big[\big\lVert \boldsymbol\epsilon - \boldsymbol\epsilon_\theta\big(\sqrt{\bar\alpha_t}
# \,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ t\big) \big\rVert^2\Big].$$
#
# Write its estimate on one batch: the caller has already drawn $t$ and $\boldsymbol\epsilon$ (one per example;
# $\boldsymbol\epsilon$ is passed by keyword).
# Average the squared error over the examples **and** the coordinates (a per-coordinate mean squared error), and
# keep the computation differentiable so that `loss.backward()` reaches the model's parameters.

# %% id="l_simple" kind="solution"
def l_simple(eps_model, sched: Schedule, x0: Tensor, t: Tensor, *, eps: Tensor) -> Tensor:
    """Mean over examples and coordinates of (eps - eps_model(x_t, t))^2, x_t = sqrt(alpha_bar_t) x0 + ... eps.

    eps_model: callable (x_t (B, ...), t (B,) long) -> (B, ...).  sched: the schedule.  x0: (B, ...) data.
    t: (B,) long in 1..T.  eps: (B, ...) the noise that makes x_t (keyword-only).
    Returns a 0-d tensor.
    """
    ### BEGIN SOLUTION
    coef = sched.alpha_bars[t].reshape(-1, *([1] * (x0.dim() - 1)))  # (B, 1, ..., 1)
    x_t = coef.sqrt() * x0 + (1 - coef).sqrt() * eps
    return (eps - eps_model(x_t, t)).pow(2).mean()
    ### END SOLUTION


# %% id="l_simple_tests" kind="tests" points=2
_sched = linear_schedule(1000)
_gen = torch.Generator().manual_seed(0)
_x0, _eps = torch.rand(8, 2, generator=_gen) * 2 - 1, torch.randn(8, 2, generator=_gen)
_t = torch.randint(1, 1001, (8,), generator=_gen)
_loss = l_simple(lambda x, t: torch.zeros_like(x), _sched, _x0, _t, eps=_eps)
assert isinstance(_loss, Tensor) and _loss.dim() == 0, "L_simple of a batch is a single number (0-d tensor)"
assert torch.allclose(_loss, _eps.pow(2).mean()), "with eps_theta = 0 the loss is the mean of eps^2"


def _knows_x0_off_by_half(x_t, t):
    # a "model" that knows x0: it recovers the noise by inverting x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, then
    # adds 0.5. Its error is 0.5 in every coordinate -- if it is called with x_t (not x0) and the examples' own t.
    a = _sched.alpha_bars[t][:, None]
    return (x_t - a.sqrt() * _x0) / (1 - a).sqrt() + 0.5


_loss = l_simple(_knows_x0_off_by_half, _sched, _x0, _t, eps=_eps)
assert abs(_loss.item() - 0.25) < 1e-10, \
    f"a prediction off by 0.5 in every coordinate must give 0.5^2 = 0.25, got {_loss}"
_lin = nn.Linear(2, 2)
l_simple(lambda x, t: _lin(x), _sched, _x0, _t, eps=_eps).backward()
assert _lin.weight.grad is not None and _lin.weight.grad.abs().sum() > 0, "the loss must carry gradients to the model"
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_ab = [1.0]
for _b in _sched.betas[1:].tolist():
    _ab.append(_ab[-1] * (1 - _b))
_x0 = torch.rand(5, 3, 4, 4, generator=_gen) * 2 - 1
_eps = torch.randn(5, 3, 4, 4, generator=_gen)
_t = torch.tensor([1, 2, 100, 700, 1000])


def _oracle(x_t, t):
    # knows x0, so it recovers the noise exactly by inverting the kernel: L_simple must vanish
    out = torch.empty_like(x_t)
    for i, ti in enumerate(t.tolist()):
        out[i] = (x_t[i] - math.sqrt(_ab[ti]) * _x0[i]) / math.sqrt(1 - _ab[ti])
    return out


assert l_simple(_oracle, _sched, _x0, _t, eps=_eps).item() < 1e-20, "the exact noise must give zero loss"


def _model(x_t, t):
    return torch.tanh(x_t) * (t / 1000).reshape(-1, 1, 1, 1)


_ref = sum(((_eps[i] - _model((math.sqrt(_ab[ti]) * _x0[i] + math.sqrt(1 - _ab[ti]) * _eps[i])[None],
                              _t[i:i + 1])[0]) ** 2).sum().item() for i, ti in enumerate(_t.tolist())) / _x0.numel()
assert abs(l_simple(_model, _sched, _x0, _t, eps=_eps).item() - _ref) < 1e-10 * _ref
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — one step of ancestral sampling (3 points)
#
# Algorithm 2 generates with the reverse chain $p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) =
# \mathcal{N}(\boldsymbol\mu_\theta(\mathbf{x}_t, t), \sigma_t^2\mathbf{I})$, one step at a time:
#
# $$\mathbf{x}_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(\mathbf{x}_t - \frac{1-\alpha_t}{\sqrt{1-\bar\alpha_t}}\,
# \boldsymbol\epsilon_\theta(\mathbf{x}_t, t)\Big) + \sigma_t\,\mathbf{z}, \qquad
# \mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) \text{ for } t > 1,\quad \mathbf{z} = \mathbf{0} \text{ for }
# t = 1.$$
#
# Implement the step with the predicted noise and the noise $\mathbf{z}$ given (both by keyword). The caller chooses
# the variance $\sigma_t^2$ (DDPM uses $\sigma_t^2 = \beta_t$ or $\sigma_t^2 = \tilde\beta_t$); mind that the function
# receives the *variance* $\sigma_t^2$ while the formula needs the standard deviation $\sigma_t$. Add the noise as
# written, **plus** $\sigma_t\mathbf{z}$: the mean minus $\sigma_t\mathbf{z}$ would have the same distribution (the
# law of $\mathbf{z}$ is symmetric), but $\mathbf{z}$ is given, so the tests check your $\mathbf{x}_{t-1}$ exactly, not
# only in distribution, and a minus sign loses the points. The last step ($t = 1$) returns the mean without noise.

# %% id="p_sample_step" kind="solution"
def p_sample_step(sched: Schedule, x_t: Tensor, t: int, *, eps: Tensor, sigma2: float, z: Tensor) -> Tensor:
    """x_{t-1} = mean + sigma_t z from x_t (Algorithm 2, lines 3-4).

    sched: the schedule.  x_t: (B, ...).  t: int in 1..T.  Keyword-only: eps (B, ...), the predicted noise
    eps_theta(x_t, t); sigma2: float, the variance sigma_t^2 of the step; z: (B, ...) standard normal, unused at t = 1.
    Returns x_{t-1}: (B, ...).
    """
    ### BEGIN SOLUTION
    alpha_t, beta_t, alpha_bar_t = sched.alphas[t], sched.betas[t], sched.alpha_bars[t]
    mean = (x_t - beta_t / (1 - alpha_bar_t).sqrt() * eps) / alpha_t.sqrt()
    if t == 1:
        return mean
    return mean + math.sqrt(sigma2) * z
    ### END SOLUTION


# %% id="p_sample_step_tests" kind="tests" points=3
# A made-up two-step schedule whose square roots are round: betas 0.703125, 0.36, so alpha_2 = 0.64 = 0.8^2,
# alpha_bar_2 = 0.296875 * 0.64 = 0.19 and 1 - alpha_bar_2 = 0.81 = 0.9^2. With sigma_2^2 = 0.09 (sigma_2 = 0.3):
# x_1 = (x_2 - 0.36 / 0.9 * eps) / 0.8 + 0.3 z = 1.25 x_2 - 0.5 eps + 0.3 z.
_tiny = linear_schedule(2, 0.703125, 0.36)
_gen = torch.Generator().manual_seed(1)
_x_t, _eps, _z = (torch.randn(4, 3, generator=_gen) for _ in range(3))
_x = p_sample_step(_tiny, _x_t, 2, eps=_eps, sigma2=0.09, z=_z)
assert _x.shape == (4, 3), f"x_{{t-1}} must have the shape of x_t, got {_x.shape}"
assert torch.allclose(_x, 1.25 * _x_t - 0.5 * _eps + 0.3 * _z), \
    "on this schedule x_1 must be 1.25 x_2 - 0.5 eps + 0.3 z (the mean of Algorithm 2, plus sigma_t z)"
assert torch.equal(p_sample_step(_tiny, _x_t, 1, eps=_eps, sigma2=0.3, z=_z),
                   p_sample_step(_tiny, _x_t, 1, eps=_eps, sigma2=0.3, z=2 * _z)), "the last step (t = 1) adds no noise"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# The mean by another route: predict x0 by inverting the kernel, x0_hat = (x_t - sqrt(1 - abar_t) eps) /
# sqrt(abar_t), then take the mean of the posterior q(x_{t-1} | x_t, x0_hat) (problem set 1). The noise enters as
# + sigma_t z = + sqrt(sigma_t^2) z for t > 1 (the sign as stated: z is given, so the step is checked exactly).
_sched = linear_schedule(1000)
_betas = _sched.betas.tolist()
_ab = [1.0]
for _b in _betas[1:]:
    _ab.append(_ab[-1] * (1 - _b))
for _t in (1, 2, 50, 500, 1000):
    _a, _abt, _abp = 1 - _betas[_t], _ab[_t], _ab[_t - 1]
    _x0_hat = (_x_t - math.sqrt(1 - _abt) * _eps) / math.sqrt(_abt)
    _mu = math.sqrt(_abp) * _betas[_t] / (1 - _abt) * _x0_hat + math.sqrt(_a) * (1 - _abp) / (1 - _abt) * _x_t
    for _s2 in (_betas[_t], (1 - _abp) / (1 - _abt) * _betas[_t], 0.7):
        _expected = _mu + (math.sqrt(_s2) * _z if _t > 1 else 0.0)
        _x = p_sample_step(_sched, _x_t, _t, eps=_eps, sigma2=_s2, z=_z)
        assert torch.allclose(_x, _expected, rtol=1e-9, atol=1e-10), f"wrong x_(t-1) at t = {_t}, sigma_t^2 = {_s2:.3g}"
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — the exact noise predictor for Gaussian data (3 points)
#
# Among all functions of $\mathbf{x}_t$, the squared error $\mathbb{E}\lVert\boldsymbol\epsilon -
# f(\mathbf{x}_t)\rVert^2$ is smallest for the conditional mean $f(\mathbf{x}_t) = \mathbb{E}[\boldsymbol\epsilon
# \mid \mathbf{x}_t]$: this is what a perfectly trained $\boldsymbol\epsilon_\theta$ would output. For most data it
# has no closed form, but for Gaussian data $q(\mathbf{x}_0) = \mathcal{N}(\boldsymbol\mu, s^2\mathbf{I})$ the pair
# $(\boldsymbol\epsilon, \mathbf{x}_t)$ is jointly Gaussian, and the conditional mean of one jointly Gaussian variable
# given another is linear:
#
# $$\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t] = \mathbb{E}[\boldsymbol\epsilon] +
# \frac{\operatorname{Cov}(\boldsymbol\epsilon, \mathbf{x}_t)}{\operatorname{Var}(\mathbf{x}_t)}
# \big(\mathbf{x}_t - \mathbb{E}[\mathbf{x}_t]\big)
# \quad\text{(coordinate by coordinate).}$$
#
# Work out the three moments from $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 +
# \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$ and implement the predictor. (Lecture 3 will show that the exact
# predictor is the score in disguise, $\mathbb{E}[\boldsymbol\epsilon\mid\mathbf{x}_t] = -\sqrt{1-\bar\alpha_t}\,
# \nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t)$; the hidden tests use that identity with automatic differentiation, and
# also fit the conditional mean by least squares on simulated pairs.)

# %% id="gaussian_eps" kind="solution"
def gaussian_eps(sched: Schedule, x_t: Tensor, t: Tensor, *, mu: Tensor, s2: float) -> Tensor:
    """E[eps | x_t] for data q(x0) = N(mu, s2 I).

    sched: the schedule.  x_t: (B, D).  t: (B,) long in 1..T.  Keyword-only: mu (D,) the data mean; s2: float >= 0,
    the data variance per coordinate.  Returns (B, D).
    """
    ### BEGIN SOLUTION
    a = sched.alpha_bars[t].unsqueeze(-1)  # (B, 1)
    var_t = a * s2 + 1 - a  # Var(x_t) per coordinate
    return (1 - a).sqrt() * (x_t - a.sqrt() * mu) / var_t  # Cov(eps, x_t) = sqrt(1 - alpha_bar_t)
    ### END SOLUTION


# %% id="gaussian_eps_tests" kind="tests" points=3
_sched = linear_schedule(1000)
_x_t = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
_t = torch.tensor([1, 10, 100, 500, 1000])
_e = gaussian_eps(_sched, _x_t, _t, mu=torch.zeros(2), s2=1.0)
assert _e.shape == (5, 2), f"expected shape (B, D) = (5, 2), got {_e.shape}"
assert torch.allclose(_e, (1 - _sched.alpha_bars[_t]).sqrt()[:, None] * _x_t), \
    "for N(0, I) data, x_t ~ N(0, I) and E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t"
# The error of the best predictor is uncorrelated with what it sees: for pairs (x0, eps) simulated from the model, the
# residual r = eps - E[eps | x_t] has mean 0 and E[r x_t] = 0 (the normal equations of least squares). n pairs of
# N(1, 0.36) data at t = 200; tolerance 5 standard errors, std / sqrt(n), estimated from the samples.
_n, _tt, _mu, _s2 = 20_000, 200, torch.tensor([1.0]), 0.36
_g = torch.Generator().manual_seed(12)
_x0, _e = _mu + math.sqrt(_s2) * torch.randn(_n, 1, generator=_g), torch.randn(_n, 1, generator=_g)
_a = _sched.alpha_bars[_tt]
_xt = _a.sqrt() * _x0 + (1 - _a).sqrt() * _e
_r = _e - gaussian_eps(_sched, _xt, torch.full((_n,), _tt), mu=_mu, s2=_s2)
assert abs(_r.mean()) < 5 * _r.std() / math.sqrt(_n), f"the residual eps - E[eps | x_t] has mean {_r.mean():.4f}, not 0"
assert abs((_r * _xt).mean()) < 5 * (_r * _xt).std() / math.sqrt(_n), \
    f"the residual is correlated with x_t (E[r x_t] = {(_r * _xt).mean():.4f}): a better predictor exists"
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_ab = [1.0]
for _b in _sched.betas[1:].tolist():
    _ab.append(_ab[-1] * (1 - _b))
_mu, _s2 = torch.tensor([0.5, -1.0]), 0.25
# 1) Tweedie: E[eps | x_t] = -sqrt(1 - abar_t) grad log q(x_t), q(x_t) = N(sqrt(abar_t) mu, abar_t s2 + 1 - abar_t)
_x = (2 * torch.randn(5, 2, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
_a = torch.tensor([_ab[t] for t in _t.tolist()])[:, None]
_v = _a * _s2 + 1 - _a
_log_q = (-0.5 * torch.log(2 * math.pi * _v) - (_x - _a.sqrt() * _mu) ** 2 / (2 * _v)).sum()
(_score,) = torch.autograd.grad(_log_q, _x)
assert torch.allclose(gaussian_eps(_sched, _x.detach(), _t, mu=_mu, s2=_s2), -(1 - _a).sqrt() * _score,
                      rtol=1e-10, atol=1e-12), "E[eps | x_t] disagrees with -sqrt(1 - alpha_bar_t) * score"
# 2) least squares on n simulated pairs (1-D): the regression of eps on x_t is the conditional mean, a line.
# Tolerance: 5 standard errors of the fitted intercept and slope, from the usual formulas
# se(slope)^2 = s_r^2 / (n var(x)), se(intercept)^2 = s_r^2 (1/n + mean(x)^2 / (n var(x))), s_r^2 = residual variance.
_n, _tt, _m1 = 200_000, 300, 0.5
_g = torch.Generator().manual_seed(4)
_x0 = _m1 + math.sqrt(_s2) * torch.randn(_n, generator=_g)
_e = torch.randn(_n, generator=_g)
_xt = math.sqrt(_ab[_tt]) * _x0 + math.sqrt(1 - _ab[_tt]) * _e
_xm, _em = _xt.mean(), _e.mean()
_slope = ((_xt - _xm) * (_e - _em)).mean() / (_xt - _xm).pow(2).mean()
_icpt = _em - _slope * _xm
_sr2 = (_e - _icpt - _slope * _xt).pow(2).mean()
_se_slope = math.sqrt(_sr2 / (_n * (_xt - _xm).pow(2).mean()))
_se_icpt = math.sqrt(_sr2 * (1 / _n + _xm**2 / (_n * (_xt - _xm).pow(2).mean())))
_pred = gaussian_eps(_sched, torch.tensor([[0.0], [1.0]]), torch.tensor([_tt, _tt]), mu=torch.tensor([_m1]), s2=_s2)
assert abs(_pred[0, 0] - _icpt) < 5 * _se_icpt, "E[eps | x_t = 0] disagrees with the regression on simulated data"
assert abs(_pred[1, 0] - _pred[0, 0] - _slope) < 5 * _se_slope, "the slope of E[eps | x_t] disagrees with the data"
### END HIDDEN TESTS

# %% [markdown] id="part_d"
# ## Part D — the true reverse variance brackets DDPM's choices (2 points)
#
# For Gaussian data the true denoising distribution $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ is Gaussian too (the pair
# $(\mathbf{x}_{t-1}, \mathbf{x}_t)$ is jointly Gaussian), with a variance that depends on the data. Write
# $v_t = \operatorname{Var}(x_t) = \bar\alpha_t s^2 + 1 - \bar\alpha_t$ for one coordinate and compute the
# conditional variance $\operatorname{Var}(x_{t-1} \mid x_t)$ from $v_{t-1}$, $v_t$ and the covariance of
# $x_{t-1}$ and $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon$.
#
# DDPM's two choices of $\sigma_t^2$ are the extreme cases: $\tilde\beta_t$ is exact when the data are a single point
# ($s^2 = 0$) and $\beta_t$ when they are standard normal ($s^2 = 1$). The tests check that for every
# $0 \le s^2 \le 1$ your variance lies in between.

# %% id="reverse_variance" kind="solution"
def gaussian_reverse_variance(sched: Schedule, t: int, *, s2: float) -> float:
    """Var(x_{t-1} | x_t), per coordinate, for data q(x0) = N(mu, s2 I); t in 1..T, s2 keyword-only. Returns a float."""
    ### BEGIN SOLUTION
    a_prev, a_t = sched.alpha_bars[t - 1].item(), sched.alpha_bars[t].item()
    v_prev, v_t = a_prev * s2 + 1 - a_prev, a_t * s2 + 1 - a_t
    return sched.betas[t].item() * v_prev / v_t  # v_prev - alpha_t v_prev^2 / v_t, with v_t = alpha_t v_prev + beta_t
    ### END SOLUTION


# %% id="reverse_variance_tests" kind="tests" points=2
_sched = linear_schedule(1000)
assert isinstance(gaussian_reverse_variance(_sched, 10, s2=0.5), float), "return a float"
assert abs(gaussian_reverse_variance(_sched, 10, s2=1.0) - _sched.betas[10].item()) < 1e-15, "N(0, I) data: beta_t"
assert abs(gaussian_reverse_variance(_sched, 10, s2=0.0) - _sched.beta_tildes[10].item()) < 1e-15, \
    "a single data point: beta_tilde_t"
# In between, at t = 1 on a short schedule with beta_1 = 0.2: x_0 ~ N(mu, 0.5) is the data and x_1 = sqrt(0.8) x_0 +
# sqrt(0.2) eps is one Gaussian observation of it, so the precisions add: 1 / Var(x_0 | x_1) = 1 / 0.5 + 0.8 / 0.2 = 6.
_short = linear_schedule(5, 0.2, 0.5)
assert abs(gaussian_reverse_variance(_short, 1, s2=0.5) - 1 / 6) < 1e-12, \
    f"data N(mu, 0.5), beta_1 = 0.2: Var(x_0 | x_1) = 1/6, got {gaussian_reverse_variance(_short, 1, s2=0.5):.6f}"
print("Part D: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# Conditional variance from the joint covariance of (x_{t-1}, x_t) (a Schur complement), moments built by composing
# the forward steps one at a time from Var(x_0) = s2.
_betas = _sched.betas.tolist()
for _s2 in (0.0, 0.1, 0.25, 0.6, 1.0):
    _var_prev = _s2
    for _t in range(1, 1001):
        _var_t = (1 - _betas[_t]) * _var_prev + _betas[_t]
        if _t in (1, 2, 3, 10, 100, 500, 1000):
            _cov = math.sqrt(1 - _betas[_t]) * _var_prev
            _ref = _var_prev - _cov**2 / _var_t
            _got = gaussian_reverse_variance(_sched, _t, s2=_s2)
            assert abs(_got - _ref) < 1e-9 * _betas[_t], f"wrong variance at t = {_t}, s2 = {_s2}"
            _lo, _hi = _sched.beta_tildes[_t].item(), _betas[_t]
            assert _lo * (1 - 1e-12) <= _got <= _hi * (1 + 1e-12), f"outside [beta_tilde_t, beta_t] at t = {_t}"
        _var_prev = _var_t
### END HIDDEN TESTS

# %% [markdown] id="part_e"
# ## Part E — the exact-eps sampler returns the data distribution (3 points)
#
# Write Algorithm 2 in full with your `p_sample_step`: start from the given $\mathbf{x}_T$, and for
# $t = T, \dots, 1$ call the eps-model on the whole batch (with `t` as a `(B,)` long tensor), draw $\mathbf{z}$ with
# `torch.randn(shape, generator=generator)`, and step with $\sigma_t^2$ taken from the array `sigma2`. All the
# randomness comes from `generator`: the same seeded generator must give the same samples, another seed other ones.
#
# The hidden tests run your sampler with the exact noise predictor of Gaussian data. If the reverse variances are the
# true ones (Part D; for $s^2 = 1$ that is $\sigma_t^2 = \beta_t$) every step samples the true
# $q(\mathbf{x}_{t-1}\mid\mathbf{x}_t)$, so $\mathbf{x}_0$ must follow $\mathcal{N}(\boldsymbol\mu, s^2\mathbf{I})$:
# the tests compare the sample mean and covariance of $n$ samples with $\boldsymbol\mu$ and $s^2\mathbf{I}$ within five
# standard errors. (Two small biases remain, both far below the error bars: $\mathbf{x}_T$ is drawn from
# $\mathcal{N}(\mathbf{0}, \mathbf{I})$ instead of $q(\mathbf{x}_T)$, and the step $t = 1$ adds no noise.)

# %% id="sampler" kind="solution"
def ddpm_sample(eps_model, sched: Schedule, x_T: Tensor, *, sigma2: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
    """Algorithm 2 from x_T down to x_0.

    eps_model: callable (x_t (B, D), t (B,) long) -> (B, D).  x_T: (B, D) the starting noise.
    Keyword-only: sigma2 (T+1,) the reverse variances sigma_t^2; generator, the source of z.
    Returns x_0: (B, D).
    """
    ### BEGIN SOLUTION
    x = x_T
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, generator=generator)
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=float(sigma2[t]), z=z)
    return x
    ### END SOLUTION


# %% id="sampler_tests" kind="tests" points=3
_sched = linear_schedule(3)
_calls = []


def _spy(x, t):
    _calls.append(t.clone())
    return torch.zeros_like(x)


_x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
_x0 = ddpm_sample(_spy, _sched, _x_T, sigma2=torch.zeros(4), generator=torch.Generator().manual_seed(0))
assert _x0.shape == (4, 2), f"x_0 must have the shape of x_T, got {_x0.shape}"
assert [c.tolist() for c in _calls] == [[3] * 4, [2] * 4, [1] * 4], "call the model at t = T..1, t of shape (B,)"
assert torch.allclose(_x0, _x_T / _sched.alpha_bars[3].sqrt()), "eps = 0, sigma = 0: x_0 = x_T / sqrt(alpha_bar_T)"


def _zero_eps(x, t):
    return torch.zeros_like(x)


# With noise: T = 3, betas 0.2, 0.3, 0.4 and eps_theta = 0, every step is x_{t-1} = x_t / sqrt(alpha_t) + sigma_t z_t
# (no noise at t = 1), so x_0 - x_T / sqrt(alpha_bar_3) = sigma_3 z_3 / sqrt(alpha_1 alpha_2) + sigma_2 z_2 /
# sqrt(alpha_1) has mean 0 and variance v = sigma_3^2 / (0.8 * 0.7) + sigma_2^2 / 0.8 per coordinate. n samples,
# 5 standard errors.
_n, _short, _sigma2 = 10_000, linear_schedule(3, 0.2, 0.4), torch.tensor([0.0, 0.0, 0.25, 1.0])
_x_T = torch.randn(_n, 2, generator=torch.Generator().manual_seed(6))
_diff = ddpm_sample(_zero_eps, _short, _x_T, sigma2=_sigma2, generator=torch.Generator().manual_seed(7)) \
    - _x_T / math.sqrt(0.8 * 0.7 * 0.6)
_v = 1.0 / (0.8 * 0.7) + 0.25 / 0.8
assert _diff.mean(dim=0).abs().max() < 5 * math.sqrt(_v / _n), "the noise must have mean zero"
assert (_diff.var(dim=0) - _v).abs().max() < 5 * _v * math.sqrt(2 / (_n - 1)), \
    f"step t must add noise of variance sigma2[t]: expected variance {_v:.4f}, got {_diff.var(dim=0)}"
_same = [ddpm_sample(_zero_eps, _short, _x_T[:8], sigma2=_sigma2, generator=torch.Generator().manual_seed(3))
         for _ in range(2)]
assert torch.equal(*_same), "draw z from `generator`: the same seed must give the same samples"
print("Part E: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# Mechanics first. With eps_theta = 0 every step is x_{t-1} = x_t / sqrt(alpha_t) + sigma_t z_t, so for T = 3
# x_0 - x_T / sqrt(abar_3) = sigma_3 z_3 / sqrt(alpha_1 alpha_2) + sigma_2 z_2 / sqrt(alpha_1) (no noise at t = 1):
# each coordinate has variance v = sigma_3^2 / (alpha_1 alpha_2) + sigma_2^2 / alpha_1, independently of the other,
# if the sampler uses the variances it is given and fresh noise at every step. Tolerances: 5 standard errors (below).
_n = 20_000
_g = torch.Generator().manual_seed(11)
_x_T = torch.randn(_n, 2, generator=_g)
_diff = ddpm_sample(lambda x, t: torch.zeros_like(x), linear_schedule(3, 0.1, 0.3), _x_T,
                    sigma2=torch.tensor([0.0, 0.0, 0.5, 2.0]), generator=_g) - _x_T / math.sqrt(0.9 * 0.8 * 0.7)
_v = 2.0 / (0.9 * 0.8) + 0.5 / 0.9
_cov = torch.cov(_diff.T)
assert _diff.mean(dim=0).abs().max() < 5 * math.sqrt(_v / _n), "the noise must have mean zero"
assert (_cov.diagonal() - _v).abs().max() < 5 * _v * math.sqrt(2 / (_n - 1)), \
    "step t must add noise of variance sigma2[t], drawn afresh at every step"
assert abs(_cov[0, 1]) < 5 * _v * math.sqrt(1 / (_n - 1)), "the noise must be independent across coordinates"

# Reproducibility: all the randomness comes from `generator`. The same seed gives the same samples (also after other
# draws from the global generator), a different seed different ones.
_x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(13))
_runs = {}
for _seed in (21, 21, 22):
    torch.randn(5)  # moves the global generator: a sampler that uses it instead of `generator` is not reproducible
    _runs.setdefault(_seed, []).append(ddpm_sample(lambda x, t: torch.zeros_like(x), linear_schedule(3, 0.1, 0.3),
                                                   _x_T, sigma2=torch.tensor([0.0, 0.0, 0.5, 2.0]),
                                                   generator=torch.Generator().manual_seed(_seed)))
assert torch.equal(*_runs[21]), "the same seeded generator must give the same samples: draw z from `generator`"
assert not torch.equal(_runs[21][0], _runs[22][0]), "another seed must give other samples: draw z from `generator`"

_sched = linear_schedule(1000)
_betas = _sched.betas.tolist()


def _check_returns_gaussian(mu, s2, sigma2, seed, n=10_000):
    # exact eps of N(mu, s2 I) data, written independently of Part C
    ab = torch.cumprod(1 - torch.tensor(_betas), dim=0)

    def eps_model(x, t):
        a = ab[t][:, None]
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s2 + 1 - a)

    g = torch.Generator().manual_seed(seed)
    x0 = ddpm_sample(eps_model, _sched, torch.randn(n, 2, generator=g), sigma2=sigma2, generator=g)
    assert x0.shape == (n, 2)
    # 5 standard errors: sample mean sqrt(s2 / n); sample covariance of Gaussian data,
    # Var(S_ij) = (S_ii S_jj + S_ij^2) / (n - 1): diagonal s2 sqrt(2 / (n - 1)), off-diagonal s2 sqrt(1 / (n - 1))
    mean, cov = x0.mean(dim=0), torch.cov(x0.T)
    assert (mean - mu).abs().max() < 5 * math.sqrt(s2 / n), f"sample mean {mean.tolist()} vs {mu.tolist()}"
    assert (cov.diagonal() - s2).abs().max() < 5 * s2 * math.sqrt(2 / (n - 1)), f"sample variances {cov.diagonal()}"
    assert abs(cov[0, 1]) < 5 * s2 * math.sqrt(1 / (n - 1)), f"sample covariance {cov[0, 1]:.4f} vs 0"


# unit-variance data: sigma_t^2 = beta_t is the true reverse variance
_check_returns_gaussian(torch.tensor([1.5, -0.5]), 1.0, _sched.betas, seed=6)
# s2 = 0.25: the true reverse variances, from the joint covariance of (x_{t-1}, x_t)
_s2, _var, _sigma2 = 0.25, [0.25], [0.0]
for _t in range(1, 1001):
    _var.append((1 - _betas[_t]) * _var[-1] + _betas[_t])
    _sigma2.append(_var[-2] - (1 - _betas[_t]) * _var[-2] ** 2 / _var[-1])
_check_returns_gaussian(torch.tensor([0.5, -1.0]), _s2, torch.tensor(_sigma2), seed=7)
### END HIDDEN TESTS

# %% [markdown] id="part_f"
# ## Part F — the bound's weights $\lambda_t$ through the signal-to-noise ratio (2 points)
#
# Lesson 2 turns the KL terms of the variational bound into a weighted noise regression: for $t \ge 2$,
# $L_{t-1} = \lambda_t\,\lVert\boldsymbol\epsilon - \boldsymbol\epsilon_\theta(\mathbf{x}_t, t)\rVert^2 + C_t$
# with
#
# $$\lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)} \qquad \text{(DDPM eq. 12)}.$$
#
# Written like this, $\lambda_t$ seems to depend on every detail of the schedule. It does not: it depends only on
# the signal-to-noise ratios at the two ends of the step, $\mathrm{SNR}(t-1)$ and $\mathrm{SNR}(t)$, with
# $\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$ (lesson 1), and on how the model's variance compares with the
# posterior's, $r = \sigma_t^2 / \tilde\beta_t$ ($r = 1$ is DDPM's choice $\sigma_t^2 = \tilde\beta_t$).
#
# Derive $\lambda_t$ as a function of $\mathrm{SNR}(t-1)$, $\mathrm{SNR}(t)$ and $r$ alone, and implement it. Your
# function receives only these three numbers, no schedule: express $\bar\alpha_{t-1}$, $\bar\alpha_t$, $\alpha_t$,
# $\beta_t$ and $\tilde\beta_t$ through the two SNRs ($\bar\alpha = \mathrm{SNR} / (1 + \mathrm{SNR})$ inverts the
# definition) and simplify until nothing else is left. The inputs satisfy $\mathrm{SNR}(t-1) \ge \mathrm{SNR}(t) > 0$
# (the SNR falls along the chain; equal SNRs are a step with $\beta_t = 0$). The tests compare your function with
# the KL divergence computed directly, also for pairs of SNRs that no schedule with small $\beta_t$ produces (one step
# that divides the SNR by a thousand, say): the identity is exact for every step size, so an approximation that
# assumes $\beta_t \ll 1$ loses the points.

# %% id="vlb_weight" kind="solution"
def vlb_weight(snr_prev: float, snr: float, *, sigma2_ratio: float) -> float:
    """lambda_t with L_{t-1} = lambda_t ||eps - eps_theta||^2 + C_t, from the SNRs alone.

    snr_prev: SNR(t-1) = alpha_bar_{t-1} / (1 - alpha_bar_{t-1}).  snr: SNR(t), 0 < snr <= snr_prev.
    sigma2_ratio (keyword-only): r = sigma_t^2 / beta_tilde_t > 0, the model's variance over the posterior's.
    Returns lambda_t as a float.
    """
    ### BEGIN SOLUTION
    # With sigma_t^2 = r beta_tilde_t, DDPM eq. 12 becomes beta_t / (2 r alpha_t (1 - alpha_bar_{t-1})), and
    # SNR(t-1) / SNR(t) - 1 = (1 - alpha_bar_t) / (alpha_t (1 - alpha_bar_{t-1})) - 1 = beta_t / (alpha_t (1 -
    # alpha_bar_{t-1})) (Kingma et al. 2021, "Variational diffusion models").
    return (snr_prev / snr - 1) / (2 * sigma2_ratio)
    ### END SOLUTION


# %% id="vlb_weight_tests" kind="tests" points=2
# A made-up four-step schedule with large betas (0.1 ... 0.4): lambda_t by the formula above, from its betas, for
# sigma_t^2 = r beta_tilde_t; your function sees only the schedule's SNRs.
_short = linear_schedule(4, 0.1, 0.4)
_snr = (_short.alpha_bars / (1 - _short.alpha_bars)).tolist()  # SNR(0) = inf is never used (t >= 2)
_lam = vlb_weight(_snr[2], _snr[3], sigma2_ratio=1.0)
assert isinstance(_lam, float) and _lam > 0, f"lambda_t is a positive float, got {_lam!r}"
for _t in (2, 3, 4):
    _beta, _alpha, _ab = _short.betas[_t].item(), _short.alphas[_t].item(), _short.alpha_bars[_t].item()
    for _r in (1.0, 0.5, 3.0):
        _ref = _beta**2 / (2 * _r * _short.beta_tildes[_t].item() * _alpha * (1 - _ab))
        _got = vlb_weight(_snr[_t - 1], _snr[_t], sigma2_ratio=_r)
        assert abs(_got - _ref) < 1e-10 * _ref, \
            f"t = {_t}, sigma_t^2 = {_r} beta_tilde_t: lambda_t = {_ref:.6g} (DDPM eq. 12), got {_got:.6g}"
print("Part F: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# 1) The KL computed directly for pairs of SNRs that no schedule with small betas produces: from the two SNRs build the
# one step they define (alpha_bar = SNR / (1 + SNR), alpha_t = alpha_bar_t / alpha_bar_{t-1}), take the posterior
# mean from x0 (DDPM eq. 7) and the model's mean from eps_theta through x0_hat, and subtract the same KL with
# eps_theta = eps (that is C_t): what is left must be lambda_t ||eps - eps_theta||^2.
def _kl(m1, v1, m2, v2):
    return 0.5 * (math.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1)


_g = torch.Generator().manual_seed(8)
_x0, _eps, _eps_theta = (torch.randn(3, generator=_g) for _ in range(3))
_log10_snr = -3 + 6 * torch.rand(40, generator=_g)  # SNR(t) from 1e-3 to 1e3
_log10_jump = torch.cat([torch.tensor([1e-3, 0.01, 0.1, 3.0, 4.0]), 3 * torch.rand(35, generator=_g)])  # up to 1e4
for _i, (_ls, _lj) in enumerate(zip(_log10_snr.tolist(), _log10_jump.tolist(), strict=True)):
    _snr_t, _snr_p, _r = 10.0**_ls, 10.0 ** (_ls + _lj), (1.0, 0.3, 2.5)[_i % 3]
    _abt, _abp = _snr_t / (1 + _snr_t), _snr_p / (1 + _snr_p)
    _a = _abt / _abp
    _beta = 1 - _a
    _beta_tilde = (1 - _abp) / (1 - _abt) * _beta
    _x_t = math.sqrt(_abt) * _x0 + math.sqrt(1 - _abt) * _eps
    _c0, _ct = math.sqrt(_abp) * _beta / (1 - _abt), math.sqrt(_a) * (1 - _abp) / (1 - _abt)  # DDPM eq. 7
    _mu_true = _c0 * _x0 + _ct * _x_t
    _kls = []
    for _e in (_eps_theta, _eps):
        _mu_model = _c0 * (_x_t - math.sqrt(1 - _abt) * _e) / math.sqrt(_abt) + _ct * _x_t
        _kls.append(sum(_kl(m1, _beta_tilde, m2, _r * _beta_tilde)
                        for m1, m2 in zip(_mu_true.tolist(), _mu_model.tolist(), strict=True)))
    _ref = (_kls[0] - _kls[1]) / (_eps - _eps_theta).pow(2).sum().item()
    _got = vlb_weight(_snr_p, _snr_t, sigma2_ratio=_r)
    assert abs(_got - _ref) < 1e-7 * _ref, \
        f"SNR(t-1) = {_snr_p:.4g}, SNR(t) = {_snr_t:.4g}, r = {_r}: lambda_t = {_ref:.6g} from the KL, got {_got:.6g}"
# 2) The closed form, written independently as (SNR(t-1) - SNR(t)) / (2 r SNR(t)), over twelve orders of magnitude
for _snr_p, _snr_t in ((1e6, 1e5), (1e4, 1.0), (2.0, 1e-6), (1e-2, 1e-5), (1.0 + 1e-6, 1.0), (37.0, 36.0)):
    for _r in (1.0, 0.7, 4.0):
        _ref = (_snr_p - _snr_t) / (2 * _r * _snr_t)
        _got = vlb_weight(_snr_p, _snr_t, sigma2_ratio=_r)
        assert abs(_got - _ref) < 1e-6 * _ref, f"SNR(t-1) = {_snr_p:g}, SNR(t) = {_snr_t:g}, r = {_r}: {_got:.6g}"
# 3) Limits: a step that adds no noise (equal SNRs) costs nothing; only the ratio of the SNRs matters
assert abs(vlb_weight(0.25, 0.25, sigma2_ratio=1.0)) < 1e-12, "equal SNRs (beta_t = 0): lambda_t = 0"
assert abs(vlb_weight(5e3, 5e2, sigma2_ratio=2.0) / vlb_weight(5.0, 0.5, sigma2_ratio=2.0) - 1) < 1e-9, \
    "lambda_t depends on SNR(t-1) / SNR(t) only"
### END HIDDEN TESTS

# %% [markdown] id="part_g"
# ## Part G — training (2 points) and what predicting $\mathbf{x}_0$ changes (2 points)
#
# **G1.** Write one iteration of Algorithm 1 for a batch whose $t$ and $\boldsymbol\epsilon$ the caller has drawn:
# clear the old gradients, evaluate your `l_simple`, back-propagate, and let the optimizer take its step. Return the
# loss (before the step) as a Python float.

# %% id="train_step" kind="solution"
def train_step(eps_model: nn.Module, optimizer: torch.optim.Optimizer, sched: Schedule, x0: Tensor, t: Tensor, *,
               eps: Tensor) -> float:
    """One gradient step on L_simple (Algorithm 1, line 5). Arguments as in l_simple. Returns the loss as a float."""
    ### BEGIN SOLUTION
    optimizer.zero_grad()
    loss = l_simple(eps_model, sched, x0, t, eps=eps)
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% id="train_step_tests" kind="tests" points=2
class _TinyEps(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def forward(self, x, t):
        return self.lin(x) * (1 + t[:, None] / 1000)


_sched = linear_schedule(1000)
torch.manual_seed(9)
_net = _TinyEps()
_opt = torch.optim.SGD(_net.parameters(), lr=0.05)
_g = torch.Generator().manual_seed(10)
_x0, _eps, _t = torch.randn(16, 2, generator=_g), torch.randn(16, 2, generator=_g), torch.randint(1, 1001, (16,),
                                                                                                    generator=_g)
_before = [p.detach().clone() for p in _net.parameters()]
_loss = train_step(_net, _opt, _sched, _x0, _t, eps=_eps)
assert isinstance(_loss, float), "return the loss as a Python float (loss.item())"
assert any(not torch.equal(p, q) for p, q in zip(_net.parameters(), _before, strict=True)), "the parameters must move"


def _check_one_sgd_step(step):
    # the call must be exactly one SGD step on the gradient of this batch's loss alone (p <- p - lr * grad)
    x0, eps = torch.randn(16, 2, generator=_g), torch.randn(16, 2, generator=_g)
    t = torch.randint(1, 1001, (16,), generator=_g)
    before = [p.detach().clone() for p in _net.parameters()]
    ref_loss = l_simple(_net, _sched, x0, t, eps=eps)
    grads = torch.autograd.grad(ref_loss, list(_net.parameters()))
    loss = train_step(_net, _opt, _sched, x0, t, eps=eps)
    assert abs(loss - ref_loss.item()) < 1e-12 * max(1.0, ref_loss.item()), \
        f"step {step}: return the loss before the step"
    for p, p0, gr in zip(_net.parameters(), before, grads, strict=True):
        assert torch.allclose(p.detach(), p0 - 0.05 * gr, rtol=1e-10, atol=1e-12), \
            f"step {step}: the update is not one SGD step on this batch's gradient (old gradients cleared?)"


_check_one_sgd_step(1)  # after the step above: the gradient of that batch must not leak into this one
print("Part G1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
for _k in range(2, 5):
    _check_one_sgd_step(_k)
### END HIDDEN TESTS

# %% [markdown] id="part_g_demo"
# Nothing to write here: the cell trains a small network on 2-D data (four Gaussians on the unit circle) with your
# `train_step`, then samples with your `ddpm_sample`, in a few seconds. It uses a short schedule, $T = 100$, so that
# sampling is fast; with a correct implementation most samples land on the four modes.

# %% id="g_demo"
class _MLP(nn.Module):
    """eps_theta(x_t, t) for 2-D data; the time enters through a few sinusoidal features."""

    def __init__(self, T: int, width: int = 64):
        super().__init__()
        self.T = T
        self.net = nn.Sequential(nn.Linear(2 + 8, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, 2))

    def forward(self, x, t):
        angles = 2.0 ** torch.arange(4) * (math.pi / 2) * (t[:, None] / self.T)  # (B, 4)
        return self.net(torch.cat([x, angles.sin(), angles.cos()], dim=1))


def _four_modes(n, generator):
    angle = (math.pi / 2) * torch.randint(0, 4, (n,), generator=generator)
    return torch.stack([angle.cos(), angle.sin()], dim=1) + 0.1 * torch.randn(n, 2, generator=generator)


_demo = linear_schedule(100, 1e-3, 0.2)
_steps, _batch = 1500, 256
torch.manual_seed(0)
_g = torch.Generator().manual_seed(0)
_model = _MLP(_demo.T)
_opt = torch.optim.Adam(_model.parameters(), lr=1e-2)
_lr = torch.optim.lr_scheduler.LambdaLR(_opt, lambda i: 1 - i / _steps)  # linear decay to 0
_losses = []
for _ in range(_steps):
    _t = torch.randint(1, _demo.T + 1, (_batch,), generator=_g)
    _eps = torch.randn(_batch, 2, generator=_g)
    _losses.append(train_step(_model, _opt, _demo, _four_modes(_batch, _g), _t, eps=_eps))
    _lr.step()
with torch.no_grad():
    _samples = ddpm_sample(_model, _demo, torch.randn(2000, 2, generator=_g), sigma2=_demo.betas, generator=_g)
_data = _four_modes(2000, _g)
_fig, _axes = plt.subplots(1, 3, figsize=(12, 3.6))
_axes[0].plot(torch.tensor(_losses).reshape(-1, 50).mean(dim=1))
_axes[0].set(title="L_simple, mean of 50 steps", xlabel="step / 50")
for _ax, _x, _title, _color in ((_axes[1], _data, "data", "C0"), (_axes[2], _samples, "DDPM samples", "C1")):
    _ax.scatter(_x[:, 0], _x[:, 1], s=2, color=_color)
    _ax.set(title=_title, aspect="equal", xlim=(-1.8, 1.8), ylim=(-1.8, 1.8))
plt.show()

# %% [markdown] id="part_g2"
# **G2 (2 points, graded by hand).** Instead of the noise, a network can predict the clean data: it outputs
# $\hat{\mathbf{x}}_0(\mathbf{x}_t, t)$ and is trained with the squared error on the data,
# $\mathbb{E}_{t \sim \mathcal{U}\{1..T\},\,\mathbf{x}_0,\,\boldsymbol\epsilon}\lVert\mathbf{x}_0 -
# \hat{\mathbf{x}}_0\rVert^2$. Its prediction defines a noise prediction $\hat{\boldsymbol\epsilon}$ through the same
# $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$, so the two losses
# can be compared on the same footing.
#
# 1. Show that, at each $t$, $\lVert\mathbf{x}_0 - \hat{\mathbf{x}}_0\rVert^2 = w(t)\,\lVert\boldsymbol\epsilon -
#    \hat{\boldsymbol\epsilon}\rVert^2$, and give $w(t)$ in terms of $\mathrm{SNR}(t)$: training on $\mathbf{x}_0$ is
#    $L_\text{simple}$ with the weight $w(t)$ in place of 1. Do the same for the "velocity"
#    $\mathbf{v} = \sqrt{\bar\alpha_t}\,\boldsymbol\epsilon - \sqrt{1-\bar\alpha_t}\,\mathbf{x}_0$, a third target
#    some models predict.
# 2. Evaluate $w(t)$ at a few $t$ on `linear_schedule(1000)` (a scratch cell is fine), beside your `vlb_weight` for
#    $\sigma_t^2 = \tilde\beta_t$. Which timesteps does training on $\mathbf{x}_0$ emphasise, relative to
#    $L_\text{simple}$ and relative to the bound? What do you predict for the quality of its samples and for its
#    likelihood (the bound), compared with $L_\text{simple}$, and why?

# %% [markdown] id="x0_loss_weighting" kind="manual" points=2
# ### BEGIN SOLUTION
# **1.** Write $a = \sqrt{\bar\alpha_t}$, $s = \sqrt{1-\bar\alpha_t}$, so $\mathbf{x}_t = a\,\mathbf{x}_0 +
# s\,\boldsymbol\epsilon$, and let the predictions obey the same relation, $\mathbf{x}_t = a\,\hat{\mathbf{x}}_0 +
# s\,\hat{\boldsymbol\epsilon}$. Subtracting, $a(\mathbf{x}_0 - \hat{\mathbf{x}}_0) = -s(\boldsymbol\epsilon -
# \hat{\boldsymbol\epsilon})$, hence
#
# $$\lVert\mathbf{x}_0 - \hat{\mathbf{x}}_0\rVert^2 = \frac{1-\bar\alpha_t}{\bar\alpha_t}\,\lVert\boldsymbol\epsilon
# - \hat{\boldsymbol\epsilon}\rVert^2, \qquad w(t) = \frac{1}{\mathrm{SNR}(t)} .$$
#
# For $\mathbf{v}$: $\mathbf{v} - \hat{\mathbf{v}} = a(\boldsymbol\epsilon - \hat{\boldsymbol\epsilon}) -
# s(\mathbf{x}_0 - \hat{\mathbf{x}}_0) = (a + s^2/a)(\boldsymbol\epsilon - \hat{\boldsymbol\epsilon}) =
# (\boldsymbol\epsilon - \hat{\boldsymbol\epsilon})/a$, so $w_v(t) = 1/\bar\alpha_t = 1 + 1/\mathrm{SNR}(t)$: close
# to $L_\text{simple}$'s 1 while the SNR is large, close to $1/\mathrm{SNR}(t)$ once it is small.
#
# **2.** On the linear schedule $w(t) = 1/\mathrm{SNR}(t)$ rises monotonically from $10^{-4}$ at $t = 1$ through
# $0.1$ at $t = 100$ and $12$ at $t = 500$ to $2.5\cdot 10^4$ at $t = T$: eight orders of magnitude, with 99.9 % of
# the total weight on $t > 500$ and $3\cdot 10^{-6}$ of it on $t \le 100$. Relative to $L_\text{simple}$ it
# therefore emphasises the large, noisy $t$ (coarse content) even more, and all but ignores the small $t$. The bound
# does the opposite: its $\lambda_t = (\mathrm{SNR}(t-1)/\mathrm{SNR}(t) - 1)/2$ is largest at the first steps
# ($0.6$ at $t = 2$, $0.005$ to $0.01$ from $t = 100$ on), so relative to the bound the $\mathbf{x}_0$ loss shifts
# weight by a factor $w(t)/\lambda_t$ from $4\cdot 10^{-4}$ at $t = 2$ to $2.4\cdot 10^{6}$ at $t = T$.
#
# Predictions. *Likelihood:* worse than with $L_\text{simple}$. The bound is dominated by the small-$t$ terms, and a
# noise error there costs almost nothing in the $\mathbf{x}_0$ loss, so the network spends little capacity on it and
# those terms stay large. *Samples:* the coarse layout is learned well, but the last denoising steps, which remove
# the remaining noise and produce the fine detail, are poorly trained: expect residual noise or smeared detail and a
# worse FID than $L_\text{simple}$ (Ho et al. report that predicting $\mathbf{x}_0$ gave worse samples in their early
# experiments). Training is also noisier: the loss is dominated by a few large-$t$ terms, where the error in
# $\mathbf{x}_0$ stays large even for the best predictor ($\mathbf{x}_t$ says little about $\mathbf{x}_0$ there), so
# the gradient's variance is high.
#
# *Marking:* 1 for the derivation, $w(t) = 1/\mathrm{SNR}(t) = (1-\bar\alpha_t)/\bar\alpha_t$ from the two linear
# relations (the $\mathbf{v}$ weight $1/\bar\alpha_t = 1 + 1/\mathrm{SNR}(t)$ is required for the full point; a
# weight stated without the relation between the two errors earns nothing); 1 for the consequences, which needs
# both: the emphasis (large $t$, more than $L_\text{simple}$, the opposite of the bound) and the prediction with a
# reason (worse likelihood because the bound's dominant small-$t$ terms are neglected; samples with good coarse
# structure but poor fine detail / worse sample quality).
# ### END SOLUTION
