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
# generates by running the learned reverse chain from $\mathbf{x}_T$ down to $\mathbf{x}_0$. In this problem set you
# write both algorithms of the DDPM paper and prove numerically that they do what the lecture says.
#
# As in problem set 1, you write them for any **Gaussian chain** $\mathbf{x}_t = a_t\,\mathbf{x}_{t-1} +
# b_t\,\boldsymbol\epsilon_t$, whose diffusion kernel is $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(m_t\,
# \mathbf{x}_0, v_t\mathbf{I})$: DDPM's chain ($a_t = \sqrt{\alpha_t}$, $b_t^2 = \beta_t$, $m_t = \sqrt{\bar\alpha_t}$,
# $v_t = 1-\bar\alpha_t$) and the variance-exploding chain of score-based models ($a_t = 1$, $b_t^2 = \sigma_t^2 -
# \sigma_{t-1}^2$, $m_t = 1$, $v_t = \sigma_t^2$). Lesson 2's derivations go through unchanged with these symbols; the
# tests check DDPM's chain against the lecture's formulas (Algorithms 1 and 2 as printed) and the other chains against
# their own.
#
# | part | what you show | points |
# |---|---|---|
# | A | the loss $L_\text{simple}$ of Algorithm 1 | 2 |
# | B | one step of ancestral sampling (Algorithm 2, line 4), derived for any Gaussian chain | 3 |
# | C | the exact noise predictor $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$ for Gaussian data | 3 |
# | D | the true reverse variance for Gaussian data, and where it lies between the two choices of $\sigma_t^2$ | 2 |
# | E | the sampler with the exact noise predictor returns the data distribution | 3 |
# | F | the bound's weight $\lambda_t$ depends on the schedule only through the signal-to-noise ratio | 2 |
# | G | a training step (Algorithm 1) in micro-batches, a tiny model; what predicting $\mathbf{x}_0$ changes | 2 + 2 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones run on
# inputs where the usual slips give a different answer, and say what they expected and what came; hidden ones run at
# grading time and compare your functions with independent computations (closed forms, automatic differentiation,
# Monte Carlo with error bars derived from the sample size), over every type, shape and default that the part says
# your function must accept. Write your answers with `torch` and `math`; do not import `ddpm_scratch` (it implements
# DDPM's chain only, and none of the functions asked for here).
#
# **Conventions.** As in problem set 1: arrays over time have length $T+1$, index $t$ is the lecture's $t$, index 0
# is the data. A `Schedule` below holds a chain's $a_t$, $b_t^2$, its kernel $m_t$, $v_t$ and the posterior variance
# $\tilde v_t = b_t^2 v_{t-1} / v_t$ of one step back (problem set 1, part D, with $s = t - 1$; for DDPM's chain it is
# $\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$). An *eps-model* is any callable
# `eps_model(x_t, t)` taking `x_t` of shape `(B, ...)` and `t` a `(B,)` long tensor with values in $1..T$, and
# returning a tensor shaped like `x_t`; a network in float32 refuses float64 input, so whatever you feed a model
# must keep the data's dtype. The notebook computes in float64.
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
    """A Gaussian chain x_t = a_t x_{t-1} + b_t eps_t and its kernel; every field (T+1,) float64, index t = lecture's t.

    a: a_t (a[0] = 1).  b2: b_t^2, the variance one step adds (b2[0] = 0).
    m, v: the kernel q(x_t | x0) = N(m_t x0, v_t I) (m[0] = 1, v[0] = 0).
    posterior_var: b_t^2 v_{t-1} / v_t, the variance of q(x_{t-1} | x_t, x0); 0 at t = 0 and t = 1.
    DDPM's chain: a_t = sqrt(alpha_t), b2 = beta_t, m_t = sqrt(alpha_bar_t), v_t = 1 - alpha_bar_t, posterior_var =
    beta_tilde_t.
    """

    a: Tensor
    b2: Tensor
    m: Tensor
    v: Tensor
    posterior_var: Tensor

    @property
    def T(self) -> int:
        return self.a.numel() - 1


def _posterior_var(b2: Tensor, v: Tensor) -> Tensor:
    out = torch.zeros_like(v)
    out[1:] = b2[1:] * v[:-1] / v[1:]
    return out


def vp_schedule(betas: Tensor) -> Schedule:
    """DDPM's chain for betas (T+1,), betas[0] = 0."""
    alpha_bars = torch.cumprod(1 - betas, dim=0)
    return Schedule((1 - betas).sqrt(), betas, alpha_bars.sqrt(), 1 - alpha_bars, _posterior_var(betas, 1 - alpha_bars))


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear schedule, beta_1 = beta_start ... beta_T = beta_end."""
    return vp_schedule(torch.cat([torch.zeros(1), torch.linspace(beta_start, beta_end, T)]))


def ve_schedule(sigmas: Tensor) -> Schedule:
    """The variance-exploding chain for noise levels sigmas (T+1,), sigmas[0] = 0: x_t = x_{t-1} + N(0, b_t^2 I)."""
    b2 = torch.zeros_like(sigmas)
    b2[1:] = sigmas[1:] ** 2 - sigmas[:-1] ** 2
    return Schedule(torch.ones_like(sigmas), b2, torch.ones_like(sigmas), sigmas**2, _posterior_var(b2, sigmas**2))


def geometric_sigmas(T: int = 1000, sigma_min: float = 0.01, sigma_max: float = 50.0) -> Tensor:
    """NCSN's noise levels: sigmas[0] = 0 (the data), sigmas[1..T] geometric from sigma_min to sigma_max."""
    return torch.cat([torch.zeros(1), torch.logspace(math.log10(sigma_min), math.log10(sigma_max), T)])


def _check_close(got, expected, what, rtol=1e-10, atol=1e-12):
    """For the tests below: `got` is a tensor of `expected`'s shape, equal to it within the tolerances."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert isinstance(got, Tensor) and got.shape == expected.shape, \
        f"{what}: expected a tensor of shape {tuple(expected.shape)}, got {got!r}"
    assert torch.allclose(got.double(), expected, rtol=rtol, atol=atol), \
        f"{what}: expected {expected.flatten()[:6].tolist()} (first values), got {got.flatten()[:6].tolist()}"


# %% [markdown] id="part_a"
# ## Part A — the loss $L_\text{simple}$ (2 points)
#
# Ho et al. train with
#
# $$L_\text{simple} = \mathbb{E}_{\mathbf{x}_0,\ \boldsymbol\epsilon \sim \mathcal{N}(\mathbf{0}, \mathbf{I}),\
# t \sim \mathcal{U}\{1..T\}} \Big[\big\lVert \boldsymbol\epsilon - \boldsymbol\epsilon_\theta\big(m_t\,\mathbf{x}_0 +
# \sqrt{v_t}\,\boldsymbol\epsilon,\ t\big) \big\rVert^2\Big] \qquad (m_t = \sqrt{\bar\alpha_t},\ v_t = 1 - \bar\alpha_t
# \text{ for DDPM}).$$
#
# Write its estimate on one batch: the caller has already drawn $t$ and $\boldsymbol\epsilon$ ($\boldsymbol\epsilon$
# is passed by keyword). Average the squared error over the examples **and** the coordinates (a per-coordinate mean
# squared error), and keep the computation differentiable so that `loss.backward()` reaches the model's parameters.
#
# **What your function must accept.** `x0`: a batch `(B, ...)`, vectors `(B, D)` or images `(B, C, H, W)`, float32
# or float64; $\mathbf{x}_t$ must have `x0`'s dtype (a float32 network refuses float64 input). `t`: a `(B,)` long
# tensor (one step per example) or a Python int (the whole batch at one step); either way the model is called with a
# `(B,)` long tensor. `eps`: `x0`'s shape. Returns a 0-d tensor.

# %% id="l_simple" kind="solution"
def l_simple(eps_model, sched: Schedule, x0: Tensor, t: Tensor | int, *, eps: Tensor) -> Tensor:
    """Mean over examples and coordinates of (eps - eps_model(x_t, t))^2, x_t = m_t x0 + sqrt(v_t) eps.

    eps_model: callable (x_t (B, ...), t (B,) long) -> (B, ...).  sched: the schedule.  x0: (B, ...) data.
    t: (B,) long or an int, in 1..T.  eps: (B, ...) the noise that makes x_t (keyword-only).
    Returns a 0-d tensor.
    """
    ### BEGIN SOLUTION
    if isinstance(t, int):  # the whole batch at one step
        t = torch.full((x0.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x0.dim() - 1)))  # per example, broadcast over the other dimensions
    m_t, s_t = sched.m[t].reshape(shape).to(x0.dtype), sched.v[t].sqrt().reshape(shape).to(x0.dtype)
    x_t = m_t * x0 + s_t * eps
    return (eps - eps_model(x_t, t)).pow(2).mean()
    ### END SOLUTION


# %% id="l_simple_tests" kind="tests" points=2
_sched = linear_schedule(1000)
_gen = torch.Generator().manual_seed(0)
_x0, _eps = torch.rand(8, 2, generator=_gen) * 2 - 1, torch.randn(8, 2, generator=_gen)
_t = torch.tensor([1, 7, 90, 250, 480, 733, 900, 1000])
_loss = l_simple(lambda x, t: torch.zeros_like(x), _sched, _x0, _t, eps=_eps)
assert isinstance(_loss, Tensor) and _loss.dim() == 0, (
    f"L_simple of a batch is a single number (0-d tensor), got {_loss!r}")
assert torch.allclose(_loss, _eps.pow(2).mean()), \
    f"with eps_theta = 0 the loss is the mean of eps^2 = {_eps.pow(2).mean():.6f}, got {_loss.item():.6f}"


def _knows_x0_off_by_half(sched, x0, seen):
    # a "model" that knows x0: it recovers the noise by inverting x_t = m_t x0 + sqrt(v_t) eps, then adds 0.5. Its
    # error is 0.5 in every coordinate -- if it is called with x_t (not x0) and the examples' own t.
    def model(x_t, t):
        seen.append((t.shape, t.dtype, x_t.dtype))
        shape = (-1, *([1] * (x_t.dim() - 1)))
        m, v = sched.m[t].reshape(shape), sched.v[t].reshape(shape)
        return ((x_t - m * x0) / v.sqrt() + 0.5).to(x_t.dtype)
    return model


for _name, _s, _x, _tt in (("DDPM's chain, vectors", _sched, _x0, _t),
                           ("the VE chain, images", ve_schedule(geometric_sigmas(50)),
                            torch.rand(3, 1, 4, 4, generator=_gen), torch.tensor([1, 20, 50]))):
    _seen = []
    _loss = l_simple(_knows_x0_off_by_half(_s, _x, _seen), _s, _x, _tt, eps=torch.randn(_x.shape, generator=_gen))
    assert abs(_loss.item() - 0.25) < 1e-10, \
        f"{_name}: a prediction off by 0.5 in every coordinate must give 0.5^2 = 0.25, got {_loss.item():.6f}"
_seen = []
_loss = l_simple(_knows_x0_off_by_half(_sched, _x0, _seen), _sched, _x0, 300, eps=_eps)
assert _seen == [((8,), torch.long, torch.float64)] and abs(_loss.item() - 0.25) < 1e-10, \
    f"t = 300 given as an int: the model must be called once with a (B,) = (8,) long tensor, got calls {_seen} " \
    f"and loss {_loss.item():.6f} (expected 0.25)"
_lin = nn.Linear(2, 2).float()
try:
    _loss = l_simple(lambda x, t: _lin(x), _sched, _x0.float(), _t, eps=_eps.float())
except RuntimeError as _error:
    raise AssertionError(f"float32 x0 with a float32 network: x_t must stay float32, the network says: {_error}") \
        from None
_loss.backward()
assert _lin.weight.grad is not None and _lin.weight.grad.abs().sum() > 0, "the loss must carry gradients to the model"
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _schedule_of_chain(a, b2):
    # independent of the setup: the kernel and the posterior variance built one step at a time
    m, v, post = [1.0], [0.0], [0.0]
    for t in range(1, len(a)):
        m.append(a[t] * m[-1])
        v.append(a[t] ** 2 * v[-1] + b2[t])
        post.append(b2[t] * v[-2] / v[-1])
    return Schedule(*(torch.tensor(x) for x in (a, b2, m, v, post)))


_g = torch.Generator().manual_seed(21)
_random = _schedule_of_chain([1.0] + (0.8 + 0.3 * torch.rand(30, generator=_g)).tolist(),
                             [0.0] + (0.01 + 0.2 * torch.rand(30, generator=_g)).tolist())
_ab = [1.0]
for _b in _sched.b2[1:].tolist():
    _ab.append(_ab[-1] * (1 - _b))
for _name, _s, _m, _v in (("DDPM", _sched, [math.sqrt(a) for a in _ab], [1 - a for a in _ab]),
                          ("random chain", _random, _random.m.tolist(), _random.v.tolist())):
    _T = _s.T
    for _shape in ((5, 3, 4, 4), (5, 7), (5, 1)):
        _x0 = torch.rand(_shape, generator=_g) * 2 - 1
        _eps = torch.randn(_shape, generator=_g)
        _t = torch.tensor([1, 2, _T // 10, _T // 2, _T])

        def _oracle(x_t, t, _x0=_x0, _m=_m, _v=_v):
            # knows x0, so it recovers the noise exactly by inverting the kernel: L_simple must vanish
            out = torch.empty_like(x_t)
            for i, ti in enumerate(t.tolist()):
                out[i] = (x_t[i] - _m[ti] * _x0[i]) / math.sqrt(_v[ti])
            return out

        assert l_simple(_oracle, _s, _x0, _t, eps=_eps).item() < 1e-20, f"{_name}: the exact noise must give zero loss"

        def _model(x_t, t, _T=_T):
            return torch.tanh(x_t) * (t / _T).reshape(-1, *([1] * (x_t.dim() - 1)))

        _ref = sum(((_eps[i] - _model((_m[ti] * _x0[i] + math.sqrt(_v[ti]) * _eps[i])[None], _t[i:i + 1])[0]) ** 2)
                   .sum().item() for i, ti in enumerate(_t.tolist())) / _x0.numel()
        _got = l_simple(_model, _s, _x0, _t, eps=_eps)
        assert _got.dim() == 0 and abs(_got.item() - _ref) < 1e-10 * _ref, f"{_name}, x0 of shape {_shape}"
        # t as an int, float32 data
        _ref = sum(((_eps[i] - _model((_m[7] * _x0[i] + math.sqrt(_v[7]) * _eps[i])[None], _t[:1] * 0 + 7)[0]) ** 2)
                   .sum().item() for i in range(5)) / _x0.numel()
        assert abs(l_simple(_model, _s, _x0, 7, eps=_eps).item() - _ref) < 1e-10 * _ref, f"{_name}: t = 7 as an int"
        _calls = []
        _got = l_simple(lambda x, t, _calls=_calls: (_calls.append(x.dtype), _model(x, t))[1], _s, _x0.float(), 7,
                        eps=_eps.float())
        assert _calls == [torch.float32] and abs(_got.item() - _ref) < 1e-5 * _ref, f"{_name}: float32 x0"
# the smallest batch: one example, one coordinate
_got = l_simple(lambda x, t: torch.zeros_like(x), _sched, torch.tensor([[0.3]]), torch.tensor([5]),
                eps=torch.tensor([[2.0]]))
assert _got.dim() == 0 and abs(_got.item() - 4.0) < 1e-12, "one example, one coordinate"
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — one step of ancestral sampling (3 points)
#
# Algorithm 2 generates with the reverse chain $p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) =
# \mathcal{N}(\boldsymbol\mu_\theta(\mathbf{x}_t, t), \sigma_t^2\mathbf{I})$, one step at a time, $\mathbf{x}_{t-1} =
# \boldsymbol\mu_\theta + \sigma_t\,\mathbf{z}$ with $\mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ for
# $t > 1$ and $\mathbf{z} = \mathbf{0}$ for $t = 1$. Lesson 2 finds DDPM's mean by writing the posterior mean of one
# step back, $\tilde{\boldsymbol\mu}_t(\mathbf{x}_t, \mathbf{x}_0)$, at the clean image that the predicted noise
# implies, $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon_\theta) /
# \sqrt{\bar\alpha_t}$, and simplifying. Do the same for any Gaussian chain. Problem set 1 (part D, $s = t - 1$, where
# the jump is one step: $c = a_t$, $w = b_t^2$) gives
#
# $$\tilde{\boldsymbol\mu}_t(\mathbf{x}_t, \mathbf{x}_0) = \frac{b_t^2\, m_{t-1}\,\mathbf{x}_0 + a_t\, v_{t-1}\,
# \mathbf{x}_t}{v_t}, \qquad \hat{\mathbf{x}}_0 = \frac{\mathbf{x}_t - \sqrt{v_t}\,\boldsymbol\epsilon_\theta}{m_t}.$$
#
# Substitute, simplify until $\boldsymbol\mu_\theta$ is written with $a_t$, $b_t^2$ and $v_t$ alone (use
# $m_t = a_t m_{t-1}$ and $v_t = a_t^2 v_{t-1} + b_t^2$), check that DDPM's chain gives Algorithm 2's line 4,
# $\frac{1}{\sqrt{\alpha_t}}\big(\mathbf{x}_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\boldsymbol\epsilon_\theta\big)$,
# and implement the step with the predicted noise and the noise $\mathbf{z}$ given (both by keyword). The caller
# chooses the variances $\sigma_t^2$, one per step (DDPM uses $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$); mind that
# the function receives *variances* while the step needs the standard deviation $\sigma_t$. Add the noise as
# written, **plus** $\sigma_t\mathbf{z}$: the mean minus $\sigma_t\mathbf{z}$ would have the same distribution, but
# $\mathbf{z}$ is given, so the tests check your $\mathbf{x}_{t-1}$ exactly, not only in distribution. The last step
# ($t = 1$) returns the mean without noise.
#
# **What your function must accept.** `x_t`: a batch `(B, ...)`, float32 or float64; $\mathbf{x}_{t-1}$ has its shape
# and dtype. `t`: a Python int (the whole batch at one step, as the sampler uses it) or a `(B,)` long tensor (one
# step per example; rows with $t = 1$ get no noise). `eps`, `z`: `x_t`'s shape. `sigma2`: a `(T+1,)` tensor,
# `sigma2[t]` $= \sigma_t^2$.

# %% id="p_sample_step" kind="solution"
def p_sample_step(sched: Schedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor, sigma2: Tensor, z: Tensor) -> Tensor:
    """x_{t-1} = mu_theta(x_t, t) + sigma_t z from x_t (Algorithm 2, lines 3-4), for any Gaussian chain.

    sched: the schedule.  x_t: (B, ...).  t: an int or (B,) long, in 1..T.  Keyword-only: eps (B, ...), the predicted
    noise eps_theta(x_t, t); sigma2 (T+1,), the variances sigma_t^2; z (B, ...) standard normal, unused where t = 1.
    Returns x_{t-1}: (B, ...), x_t's dtype.
    """
    ### BEGIN SOLUTION
    if isinstance(t, int):  # the whole batch at one step
        t = torch.full((x_t.shape[0],), t, dtype=torch.long)
    shape = (-1, *([1] * (x_t.dim() - 1)))

    def per_row(values: Tensor) -> Tensor:
        return values[t].reshape(shape).to(x_t.dtype)

    a, b2, v = per_row(sched.a), per_row(sched.b2), per_row(sched.v)
    mean = (x_t - b2 / v.sqrt() * eps) / a
    sigma = per_row(sigma2).sqrt() * (t > 1).reshape(shape).to(x_t.dtype)  # line 3: no noise at t = 1
    return mean + sigma * z
    ### END SOLUTION


# %% id="p_sample_step_tests" kind="tests" points=3
# DDPM's chain on a made-up two-step schedule whose square roots are round: betas 0.703125, 0.36, so alpha_2 = 0.64 =
# 0.8^2, alpha_bar_2 = 0.296875 * 0.64 = 0.19 and 1 - alpha_bar_2 = 0.81 = 0.9^2. With sigma_2^2 = 0.09 (sigma_2 = 0.3):
# x_1 = (x_2 - 0.36 / 0.9 * eps) / 0.8 + 0.3 z = 1.25 x_2 - 0.5 eps + 0.3 z.
_tiny = linear_schedule(2, 0.703125, 0.36)
_gen = torch.Generator().manual_seed(1)
_x_t, _eps, _z = (torch.randn(4, 3, generator=_gen) for _ in range(3))
_x = p_sample_step(_tiny, _x_t, 2, eps=_eps, sigma2=torch.tensor([0.0, 0.5, 0.09]), z=_z)
assert isinstance(_x, Tensor) and _x.shape == (4, 3), f"x_(t-1) must have the shape of x_t, (4, 3), got {_x!r}"
_check_close(_x, 1.25 * _x_t - 0.5 * _eps + 0.3 * _z,
             "DDPM's chain, t = 2: x_1 = 1.25 x_2 - 0.5 eps + 0.3 z (Algorithm 2's mean, plus sigma_t z)")
_check_close(p_sample_step(_tiny, _x_t, 1, eps=_eps, sigma2=torch.tensor([0.0, 0.5, 0.09]), z=_z),
             (_x_t - 0.703125 / math.sqrt(0.703125) * _eps) / math.sqrt(0.296875),
             "the last step (t = 1) returns the mean, with no noise")
# The VE chain with sigma^2 = 0, 1, 4: at t = 2, a = 1, b^2 = 3, v = 4, so the mean is x_2 - (3 / 2) eps; with
# sigma_2^2 = 0.25, x_1 = x_2 - 1.5 eps + 0.5 z. At t = 1: b^2 = 1, v = 1, x_0 = x_1 - eps (no noise). One step per
# row: t = 2, 1, 2, 1.
_ve = ve_schedule(torch.tensor([0.0, 1.0, 2.0]))
_sigma2 = torch.tensor([0.0, 0.7, 0.25])
_check_close(p_sample_step(_ve, _x_t, 2, eps=_eps, sigma2=_sigma2, z=_z), _x_t - 1.5 * _eps + 0.5 * _z,
             "VE chain, t = 2: x_1 = x_2 - 1.5 eps + 0.5 z")
_rows = torch.tensor([2, 1, 2, 1])
_want = torch.where((_rows == 2)[:, None], _x_t - 1.5 * _eps + 0.5 * _z, _x_t - _eps)
_check_close(p_sample_step(_ve, _x_t, _rows, eps=_eps, sigma2=_sigma2, z=_z), _want,
             "VE chain, one step per row, t = (2, 1, 2, 1): rows at t = 1 get x_t - eps, no noise")
_x = p_sample_step(_ve, _x_t.float(), _rows, eps=_eps.float(), sigma2=_sigma2, z=_z.float())
assert _x.dtype == torch.float32, f"float32 x_t must give a float32 x_(t-1) (per-row t included), got {_x.dtype}"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# The mean by another route, as lesson 2 checks it: predict x0 by inverting the kernel, x0_hat = (x_t - sqrt(v_t) eps)
# / m_t, then take the posterior mean of problem set 1, (b_t^2 m_{t-1} x0_hat + a_t v_{t-1} x_t) / v_t. The noise
# enters as + sqrt(sigma_t^2) z for t > 1 (the sign as stated: z is given, so the step is checked exactly).
def _schedule_of_chain(a, b2):
    # independent of the setup: the kernel and the posterior variance built one step at a time
    m, v, post = [1.0], [0.0], [0.0]
    for t in range(1, len(a)):
        m.append(a[t] * m[-1])
        v.append(a[t] ** 2 * v[-1] + b2[t])
        post.append(b2[t] * v[-2] / v[-1])
    return Schedule(*(torch.tensor(x) for x in (a, b2, m, v, post)))


_g = torch.Generator().manual_seed(22)
_chains = {"DDPM linear": linear_schedule(1000), "VE geometric": ve_schedule(geometric_sigmas(1000)),
           "random": _schedule_of_chain([1.0] + (0.8 + 0.3 * torch.rand(1000, generator=_g)).tolist(),
                                        [0.0] + (0.01 + 0.2 * torch.rand(1000, generator=_g)).tolist())}


def _expected_step(s, x_t, t, eps, sigma2, z):
    a, b2, m, v = s.a.tolist(), s.b2.tolist(), s.m.tolist(), s.v.tolist()
    x0_hat = (x_t - math.sqrt(v[t]) * eps) / m[t]
    mean = (b2[t] * m[t - 1] * x0_hat + a[t] * v[t - 1] * x_t) / v[t]
    return mean + (math.sqrt(sigma2[t]) * z if t > 1 else 0.0)


for _name, _s in _chains.items():
    _sigma2s = (_s.b2, _s.posterior_var, torch.full((1001,), 0.7))
    for _shape in ((4, 3), (2, 3, 5, 5), (1, 1)):
        _x_t, _eps, _z = (torch.randn(_shape, generator=_g) for _ in range(3))
        for _t in (1, 2, 50, 500, 1000):
            for _sigma2 in _sigma2s:
                _want = _expected_step(_s, _x_t, _t, _eps, _sigma2.tolist(), _z)
                _x = p_sample_step(_s, _x_t, _t, eps=_eps, sigma2=_sigma2, z=_z)
                assert _x.shape == _shape and torch.allclose(_x, _want, rtol=1e-9, atol=1e-9), \
                    f"{_name}: wrong x_(t-1) at t = {_t}, shape {_shape}"
        # one step per example, and float32 (compared within float32's precision)
        _rows = torch.tensor([1, 2, 500, 1000][:_shape[0]])
        _x = p_sample_step(_s, _x_t, _rows, eps=_eps, sigma2=_s.b2, z=_z)
        for _i, _ti in enumerate(_rows.tolist()):
            _want = _expected_step(_s, _x_t[_i], _ti, _eps[_i], _s.b2.tolist(), _z[_i])
            assert torch.allclose(_x[_i], _want, rtol=1e-9, atol=1e-9), f"{_name}: row {_i} at t = {_ti}"
        _x32 = p_sample_step(_s, _x_t.float(), _rows, eps=_eps.float(), sigma2=_s.b2, z=_z.float())
        assert _x32.dtype == torch.float32 and torch.allclose(_x32.double(), _x, rtol=1e-4, atol=1e-4), \
            f"{_name}: float32 x_t"
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
# Work out the three moments from $\mathbf{x}_t = m_t\,\mathbf{x}_0 + \sqrt{v_t}\,\boldsymbol\epsilon$ and implement
# the predictor. (Lecture 3 will show that the exact predictor is the score in disguise,
# $\mathbb{E}[\boldsymbol\epsilon\mid\mathbf{x}_t] = -\sqrt{v_t}\,\nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t)$; the
# hidden tests use that identity with automatic differentiation, and also fit the conditional mean by least squares
# on simulated pairs.)
#
# **What your function must accept.** `x_t`: `(B, D)`, float32 or float64; the result has its shape and dtype.
# `t`: a `(B,)` long tensor or a Python int, in $1..T$. `mu`: a `(D,)` tensor, keyword-only. `s2`: a number
# $\ge 0$, keyword-only ($s^2 = 0$: every data point is $\boldsymbol\mu$).

# %% id="gaussian_eps" kind="solution"
def gaussian_eps(sched: Schedule, x_t: Tensor, t: Tensor | int, *, mu: Tensor, s2: float) -> Tensor:
    """E[eps | x_t] for data q(x0) = N(mu, s2 I).

    sched: the schedule.  x_t: (B, D).  t: (B,) long or an int, in 1..T.  Keyword-only: mu (D,) the data mean;
    s2: float >= 0, the data variance per coordinate.  Returns (B, D) in x_t's dtype.
    """
    ### BEGIN SOLUTION
    if isinstance(t, int):  # the whole batch at one step
        t = torch.full((x_t.shape[0],), t, dtype=torch.long)
    m, v = sched.m[t].unsqueeze(-1), sched.v[t].unsqueeze(-1)  # (B, 1)
    var_t = m**2 * s2 + v  # Var(x_t) per coordinate; Cov(eps, x_t) = sqrt(v_t)
    return (v.sqrt() * (x_t - m * mu) / var_t).to(x_t.dtype)
    ### END SOLUTION


# %% id="gaussian_eps_tests" kind="tests" points=3
_sched, _ve = linear_schedule(1000), ve_schedule(geometric_sigmas(1000))
_x_t = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
_t = torch.tensor([1, 10, 100, 500, 1000])
_e = gaussian_eps(_sched, _x_t, _t, mu=torch.zeros(2), s2=1.0)
assert isinstance(_e, Tensor) and _e.shape == (5, 2), f"expected shape (B, D) = (5, 2), got {_e!r}"
_check_close(_e, _sched.v[_t].sqrt()[:, None] * _x_t,
             "DDPM's chain, N(0, I) data: x_t ~ N(0, I) and E[eps | x_t] = sqrt(1 - alpha_bar_t) x_t")
_sigma = _ve.v[_t].sqrt()[:, None]
_check_close(gaussian_eps(_ve, _x_t, _t, mu=torch.zeros(2), s2=1.0), _sigma * _x_t / (1 + _sigma**2),
             "VE chain, N(0, I) data: Var(x_t) = 1 + sigma_t^2 and E[eps | x_t] = sigma_t x_t / (1 + sigma_t^2)")
_check_close(gaussian_eps(_ve, _x_t, 300, mu=torch.tensor([1.0, -2.0]), s2=0),
             (_x_t - torch.tensor([1.0, -2.0])) / _ve.v[300].sqrt(),
             "s2 = 0 (every data point is mu), t = 300 as an int: x0 is known, E[eps | x_t] = (x_t - mu) / sigma_t")
# The error of the best predictor is uncorrelated with what it sees: for pairs (x0, eps) simulated from the model, the
# residual r = eps - E[eps | x_t] has mean 0 and E[r x_t] = 0 (the normal equations of least squares). n pairs of
# N(1, 0.36) data under the VE chain at t = 400; tolerance 5 standard errors, std / sqrt(n), estimated from the samples.
_n, _tt, _mu, _s2 = 20_000, 400, torch.tensor([1.0]), 0.36
_g = torch.Generator().manual_seed(12)
_x0, _e = _mu + math.sqrt(_s2) * torch.randn(_n, 1, generator=_g), torch.randn(_n, 1, generator=_g)
_xt = _ve.m[_tt] * _x0 + _ve.v[_tt].sqrt() * _e
_r = _e - gaussian_eps(_ve, _xt, torch.full((_n,), _tt), mu=_mu, s2=_s2)
assert abs(_r.mean()) < 5 * _r.std() / math.sqrt(_n), f"the residual eps - E[eps | x_t] has mean {_r.mean():.4f}, not 0"
assert abs((_r * _xt).mean()) < 5 * (_r * _xt).std() / math.sqrt(_n), \
    f"the residual is correlated with x_t (E[r x_t] = {(_r * _xt).mean():.4f}): a better predictor exists"
_e = gaussian_eps(_ve, _x_t.float(), _t, mu=torch.zeros(2), s2=1.0)
assert _e.dtype == torch.float32, f"float32 x_t must give a float32 prediction, got {_e.dtype}"
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _schedule_of_chain(a, b2):
    # independent of the setup: the kernel and the posterior variance built one step at a time
    m, v, post = [1.0], [0.0], [0.0]
    for t in range(1, len(a)):
        m.append(a[t] * m[-1])
        v.append(a[t] ** 2 * v[-1] + b2[t])
        post.append(b2[t] * v[-2] / v[-1])
    return Schedule(*(torch.tensor(x) for x in (a, b2, m, v, post)))


_g = torch.Generator().manual_seed(22)
_chains = {"DDPM linear": linear_schedule(1000), "VE geometric": ve_schedule(geometric_sigmas(1000)),
           "random": _schedule_of_chain([1.0] + (0.8 + 0.3 * torch.rand(1000, generator=_g)).tolist(),
                                        [0.0] + (0.01 + 0.2 * torch.rand(1000, generator=_g)).tolist())}
_mu, _s2 = torch.tensor([0.5, -1.0]), 0.25
for _name, _s in _chains.items():
    # 1) Tweedie: E[eps | x_t] = -sqrt(v_t) grad log q(x_t), q(x_t) = N(m_t mu, m_t^2 s2 + v_t) (and s2 = 0, 2)
    for _s2_case in (_s2, 0.0, 2):
        _x = (2 * torch.randn(5, 2, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
        _m, _vt = _s.m[_t][:, None], _s.v[_t][:, None]
        _var = _m**2 * _s2_case + _vt
        _log_q = (-0.5 * torch.log(2 * math.pi * _var) - (_x - _m * _mu) ** 2 / (2 * _var)).sum()
        (_score,) = torch.autograd.grad(_log_q, _x)
        assert torch.allclose(gaussian_eps(_s, _x.detach(), _t, mu=_mu, s2=_s2_case), -_vt.sqrt() * _score,
                              rtol=1e-10, atol=1e-12), f"{_name}, s2 = {_s2_case}: E[eps | x_t] != -sqrt(v_t) * score"
    # t as an int, float32
    _x = torch.randn(3, 2, generator=_g)
    _ref = gaussian_eps(_s, _x, torch.full((3,), 77), mu=_mu, s2=_s2)
    assert torch.allclose(gaussian_eps(_s, _x, 77, mu=_mu, s2=_s2), _ref, rtol=1e-12), f"{_name}: t = 77 as an int"
    _got = gaussian_eps(_s, _x.float(), 77, mu=_mu, s2=_s2)
    assert _got.dtype == torch.float32 and torch.allclose(_got.double(), _ref, rtol=1e-4, atol=1e-4), \
        f"{_name}: float32"
# 2) least squares on n simulated pairs (1-D) of DDPM's chain: the regression of eps on x_t is the conditional mean, a
# line. Tolerance: 5 standard errors of the fitted intercept and slope, from the usual formulas
# se(slope)^2 = s_r^2 / (n var(x)), se(intercept)^2 = s_r^2 (1/n + mean(x)^2 / (n var(x))), s_r^2 = residual variance.
_n, _tt, _m1 = 200_000, 300, 0.5
_ab = _sched.m[_tt].item() ** 2
_g = torch.Generator().manual_seed(4)
_x0 = _m1 + math.sqrt(_s2) * torch.randn(_n, generator=_g)
_e = torch.randn(_n, generator=_g)
_xt = math.sqrt(_ab) * _x0 + math.sqrt(1 - _ab) * _e
_xm, _em = _xt.mean(), _e.mean()
_slope = ((_xt - _xm) * (_e - _em)).mean() / (_xt - _xm).pow(2).mean()
_icpt = _em - _slope * _xm
_sr2 = (_e - _icpt - _slope * _xt).pow(2).mean()
_se_slope = math.sqrt(_sr2 / (_n * (_xt - _xm).pow(2).mean()))
_se_icpt = math.sqrt(_sr2 * (1 / _n + _xm**2 / (_n * (_xt - _xm).pow(2).mean())))
_pred = gaussian_eps(_sched, torch.tensor([[0.0], [1.0]]), torch.tensor([_tt, _tt]), mu=torch.tensor([_m1]), s2=_s2)
assert abs(_pred[0, 0] - _icpt) < 5 * _se_icpt, "E[eps | x_t = 0] disagrees with the regression on simulated data"
assert abs(_pred[1, 0] - _pred[0, 0] - _slope) < 5 * _se_slope, "the slope of E[eps | x_t] disagrees with the data"
# the smallest case: one example, one coordinate
_got = gaussian_eps(_ve, torch.tensor([[3.0]]), 1, mu=torch.tensor([1.0]), s2=0.5)
_v1 = _ve.v[1].item()
assert _got.shape == (1, 1) and abs(_got.item() - math.sqrt(_v1) * 2.0 / (0.5 + _v1)) < 1e-12, "one example"
### END HIDDEN TESTS

# %% [markdown] id="part_d"
# ## Part D — the true reverse variance for Gaussian data (2 points)
#
# For Gaussian data the true denoising distribution $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ is Gaussian too (the pair
# $(\mathbf{x}_{t-1}, \mathbf{x}_t)$ is jointly Gaussian), with a variance that depends on the data. Write
# $V_t = \operatorname{Var}(x_t) = m_t^2 s^2 + v_t$ for one coordinate and compute the conditional variance
# $\operatorname{Var}(x_{t-1} \mid x_t)$ from $V_{t-1}$, $V_t$ and the covariance of $x_{t-1}$ and
# $x_t = a_t\,x_{t-1} + b_t\,\epsilon$.
#
# DDPM's two choices of $\sigma_t^2$ are the extreme cases: the posterior variance $\tilde v_t$ ($\tilde\beta_t$) is
# exact when the data are a single point ($s^2 = 0$), and $b_t^2$ ($\beta_t$) is the limit of very spread-out data.
# For DDPM's chain, data with $s^2 = 1$ already reach it ($\mathbf{x}_t$ then stays standard normal), so for every
# $0 \le s^2 \le 1$ the true variance lies between $\tilde\beta_t$ and $\beta_t$, and above $\beta_t$ for $s^2 > 1$;
# for the VE chain it lies between $\tilde v_t$ and $b_t^2$ for every $s^2$. The tests check both.
#
# **What your function must accept.** `t`: a Python int in $1..T$. `s2`: a number $\ge 0$ (int or float),
# keyword-only. Returns a Python float.

# %% id="reverse_variance" kind="solution"
def gaussian_reverse_variance(sched: Schedule, t: int, *, s2: float) -> float:
    """Var(x_{t-1} | x_t), per coordinate, for data q(x0) = N(mu, s2 I); t in 1..T, s2 keyword-only. Returns a float."""
    ### BEGIN SOLUTION
    V_prev = sched.m[t - 1].item() ** 2 * s2 + sched.v[t - 1].item()
    V_t = sched.m[t].item() ** 2 * s2 + sched.v[t].item()
    return sched.b2[t].item() * V_prev / V_t  # V_prev - a_t^2 V_prev^2 / V_t, with V_t = a_t^2 V_prev + b_t^2
    ### END SOLUTION


# %% id="reverse_variance_tests" kind="tests" points=2
_sched = linear_schedule(1000)
_got = gaussian_reverse_variance(_sched, 10, s2=0.5)
assert isinstance(_got, float), f"return a Python float, got {type(_got).__name__}"
_got = gaussian_reverse_variance(_sched, 10, s2=1.0)
assert abs(_got - _sched.b2[10].item()) < 1e-15, (
    f"DDPM's chain, N(0, I) data: beta_t = {_sched.b2[10]:.6g}, got {_got:.6g}")
_got = gaussian_reverse_variance(_sched, 10, s2=0)
assert abs(_got - _sched.posterior_var[10].item()) < 1e-15, \
    f"a single data point (s2 = 0): beta_tilde_t = {_sched.posterior_var[10]:.6g}, got {_got:.6g}"
# In between, at t = 1 on a short DDPM schedule with beta_1 = 0.2: x_0 ~ N(mu, 0.5) is the data and x_1 = sqrt(0.8) x_0
# + sqrt(0.2) eps is one Gaussian observation of it, so the precisions add:
# 1 / Var(x_0 | x_1) = 1 / 0.5 + 0.8 / 0.2 = 6.
_got = gaussian_reverse_variance(linear_schedule(5, 0.2, 0.5), 1, s2=0.5)
assert abs(_got - 1 / 6) < 1e-12, f"DDPM's chain, data N(mu, 0.5), beta_1 = 0.2: Var(x_0 | x_1) = 1/6, got {_got:.6f}"
# The VE chain with sigma^2 = 0, 1, 4 and data N(mu, 0.5): V_1 = 1.5, V_2 = 4.5, b_2^2 = 3, so the precisions
# 1 / V_1 and 1 / b_2^2 add up to 1 / Var(x_1 | x_2) = 2/3 + 1/3 = 1.
_got = gaussian_reverse_variance(ve_schedule(torch.tensor([0.0, 1.0, 2.0])), 2, s2=0.5)
assert abs(_got - 1.0) < 1e-12, (
    f"VE chain, sigma^2 = 0, 1, 4, data N(mu, 0.5), t = 2: Var(x_1 | x_2) = 1, got {_got:.6f}")
print("Part D: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _schedule_of_chain(a, b2):
    # independent of the setup: the kernel and the posterior variance built one step at a time
    m, v, post = [1.0], [0.0], [0.0]
    for t in range(1, len(a)):
        m.append(a[t] * m[-1])
        v.append(a[t] ** 2 * v[-1] + b2[t])
        post.append(b2[t] * v[-2] / v[-1])
    return Schedule(*(torch.tensor(x) for x in (a, b2, m, v, post)))


_g = torch.Generator().manual_seed(22)
_chains = {"DDPM linear": linear_schedule(1000), "VE geometric": ve_schedule(geometric_sigmas(1000)),
           "random": _schedule_of_chain([1.0] + (0.8 + 0.3 * torch.rand(1000, generator=_g)).tolist(),
                                        [0.0] + (0.01 + 0.2 * torch.rand(1000, generator=_g)).tolist())}


# Conditional variance from the joint covariance of (x_{t-1}, x_t) (a Schur complement), moments built by composing
# the forward steps one at a time from Var(x_0) = s2.
for _name, _s in _chains.items():
    _a, _b2 = _s.a.tolist(), _s.b2.tolist()
    for _s2 in (0, 0.1, 0.25, 0.6, 1.0, 1, 3.0):
        _var_prev = _s2
        for _t in range(1, 1001):
            _var_t = _a[_t] ** 2 * _var_prev + _b2[_t]
            if _t in (1, 2, 3, 10, 100, 500, 1000):
                _cov = _a[_t] * _var_prev
                _ref = _var_prev - _cov**2 / _var_t
                _got = gaussian_reverse_variance(_s, _t, s2=_s2)
                assert isinstance(_got, float), f"{_name}: return a float"
                assert abs(_got - _ref) < 1e-9 * _b2[_t], f"{_name}: wrong variance at t = {_t}, s2 = {_s2}"
                _lo, _hi = _s.posterior_var[_t].item(), _b2[_t]
                if _name != "random" and (_s2 <= 1 or _name == "VE geometric"):
                    assert _lo * (1 - 1e-12) <= _got <= _hi * (1 + 1e-12), \
                        f"{_name}: outside [posterior variance, b_t^2] at t = {_t}, s2 = {_s2}"
                if _name == "DDPM linear" and _s2 > 1 and _t > 1:
                    assert _got > _hi, f"DDPM: data with s2 > 1 have a reverse variance above beta_t (t = {_t})"
            _var_prev = _var_t
# the smallest chain, T = 1
_got = gaussian_reverse_variance(_schedule_of_chain([1.0, 0.5], [0.0, 2.0]), 1, s2=4.0)
assert abs(_got - 1 / (1 / 4 + 0.25 / 2)) < 1e-12, "T = 1: Var(x_0 | x_1) = 1 / (1 / s2 + a^2 / b^2)"
### END HIDDEN TESTS

# %% [markdown] id="part_e"
# ## Part E — the exact-eps sampler returns the data distribution (3 points)
#
# Write Algorithm 2 in full with your `p_sample_step`: start from the given $\mathbf{x}_T$, and for
# $t = T, \dots, 1$ call the eps-model on the current state of the whole batch (with `t` as a `(B,)` long tensor),
# draw $\mathbf{z}$ with `torch.randn(shape, generator=generator, dtype=...)`, and step with the variances `sigma2`.
# All the randomness comes from `generator`: the same seeded generator must give the same samples, another seed other
# ones.
#
# The hidden tests run your sampler with the exact noise predictor of Gaussian data. If the reverse variances are the
# true ones (Part D; for DDPM's chain and $s^2 = 1$ that is $\sigma_t^2 = \beta_t$) every step samples the true
# $q(\mathbf{x}_{t-1}\mid\mathbf{x}_t)$, so $\mathbf{x}_0$ must follow $\mathcal{N}(\boldsymbol\mu, s^2\mathbf{I})$:
# the tests compare the sample mean and covariance of $n$ samples with $\boldsymbol\mu$ and $s^2\mathbf{I}$ within five
# standard errors, for DDPM's chain and for the VE chain. (Two small biases remain, both far below the error bars: for
# DDPM, $\mathbf{x}_T$ is drawn from $\mathcal{N}(\mathbf{0}, \mathbf{I})$ instead of $q(\mathbf{x}_T)$, and the step
# $t = 1$ adds no noise.)
#
# **What your function must accept.** `x_T`: a batch `(B, ...)`, vectors or images, float32 or float64; $\mathbf{x}_0$
# has its shape and dtype, and so has every state the model sees. `sigma2`: a `(T+1,)` tensor, keyword-only.
# `generator`: a `torch.Generator`, keyword-only, or `None` (the default), which means torch's global generator.

# %% id="sampler" kind="solution"
def ddpm_sample(eps_model, sched: Schedule, x_T: Tensor, *, sigma2: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
    """Algorithm 2 from x_T down to x_0.

    eps_model: callable (x_t (B, ...), t (B,) long) -> (B, ...).  x_T: (B, ...) the starting point.
    Keyword-only: sigma2 (T+1,) the reverse variances sigma_t^2; generator, the source of z (None: the global one).
    Returns x_0: (B, ...), x_T's dtype.
    """
    ### BEGIN SOLUTION
    x = x_T
    for t in range(sched.T, 0, -1):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        z = torch.randn(x.shape, dtype=x.dtype, generator=generator)  # unused at t = 1
        x = p_sample_step(sched, x, t, eps=eps_model(x, t_batch), sigma2=sigma2, z=z)
    return x
    ### END SOLUTION


# %% id="sampler_tests" kind="tests" points=3
# A spy model on the VE chain with sigma = 0, 1, 2, 3 and no noise (sigma2 = 0): eps_theta(x, t) = 0.1 x, so every step
# multiplies x by (1 - 0.1 b_t^2 / sqrt(v_t)) / a_t = 1 - 0.5 / 3, 1 - 0.3 / 2, 1 - 0.1 at t = 3, 2, 1, if the model
# sees the current x.
_ve3 = ve_schedule(torch.tensor([0.0, 1.0, 2.0, 3.0]))
_calls = []


def _spy(x, t):
    _calls.append((t.clone(), x.clone()))
    return 0.1 * x


_x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
_x0 = ddpm_sample(_spy, _ve3, _x_T, sigma2=torch.zeros(4), generator=torch.Generator().manual_seed(0))
assert isinstance(_x0, Tensor) and _x0.shape == (4, 2), f"x_0 must have the shape of x_T, (4, 2), got {_x0!r}"
_ts = [(c[0].dtype, c[0].tolist()) for c in _calls]
assert _ts == [(torch.long, [3] * 4), (torch.long, [2] * 4), (torch.long, [1] * 4)], \
    f"call the model once per step at t = T..1 with a (B,) long tensor: expected t = [3] * 4, [2] * 4, [1] * 4 " \
    f"(long), got {_ts}"
_factors = [1 - 0.5 / 3, 1 - 0.3 / 2, 1 - 0.1]
for _i, (_t, _x) in enumerate(_calls):
    _want = _x_T * math.prod(_factors[:_i])
    assert torch.allclose(_x, _want), \
        f"at t = {3 - _i} the model must see the current state, x_T times {math.prod(_factors[:_i]):.4f}: expected " \
        f"{_want[0].tolist()} in the first row, got {_x[0].tolist()}"
_check_close(_x0, _x_T * math.prod(_factors), "x_0 of the spy run (eps = 0.1 x, no noise)")


def _zero_eps(x, t):
    return torch.zeros_like(x)


# With noise: DDPM's chain, T = 3, betas 0.2, 0.3, 0.4 and eps_theta = 0, every step is x_{t-1} = x_t / sqrt(alpha_t) +
# sigma_t z_t (no noise at t = 1), so x_0 - x_T / sqrt(alpha_bar_3) = sigma_3 z_3 / sqrt(alpha_1 alpha_2) + sigma_2 z_2
# / sqrt(alpha_1) has mean 0 and variance v = sigma_3^2 / (0.8 * 0.7) + sigma_2^2 / 0.8 per coordinate. n samples,
# 5 standard errors.
_n, _short, _sigma2 = 10_000, linear_schedule(3, 0.2, 0.4), torch.tensor([0.0, 0.0, 0.25, 1.0])
_x_T = torch.randn(_n, 2, generator=torch.Generator().manual_seed(6))
_diff = ddpm_sample(_zero_eps, _short, _x_T, sigma2=_sigma2, generator=torch.Generator().manual_seed(7)) \
    - _x_T / math.sqrt(0.8 * 0.7 * 0.6)
_v = 1.0 / (0.8 * 0.7) + 0.25 / 0.8
assert _diff.mean(dim=0).abs().max() < 5 * math.sqrt(_v / _n), f"the noise must have mean zero, got {_diff.mean(dim=0)}"
assert (_diff.var(dim=0) - _v).abs().max() < 5 * _v * math.sqrt(2 / (_n - 1)), \
    f"step t must add noise of variance sigma2[t]: expected variance {_v:.4f}, got {_diff.var(dim=0)}"
_same = [ddpm_sample(_zero_eps, _short, _x_T[:8], sigma2=_sigma2, generator=torch.Generator().manual_seed(3))
         for _ in range(2)]
assert torch.equal(*_same), "draw z from `generator`: the same seed must give the same samples"
_other = ddpm_sample(_zero_eps, _short, _x_T[:8], sigma2=_sigma2, generator=torch.Generator().manual_seed(4))
assert not torch.equal(_same[0], _other), "draw z from `generator`: another seed must give other samples"
_seen = []
_x0 = ddpm_sample(lambda x, t: (_seen.append(x.dtype), torch.zeros_like(x))[1], _short, _x_T[:8].float(),
                  sigma2=_sigma2, generator=torch.Generator().manual_seed(3))
assert _x0.dtype == torch.float32 and set(_seen) == {torch.float32}, \
    f"float32 x_T: the model must see float32 states and x_0 must be float32, got {set(_seen)} and {_x0.dtype}"
print("Part E: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# Mechanics first. With eps_theta = 0 every step is x_{t-1} = x_t / a_t + sigma_t z_t, so for T = 3
# x_0 - x_T / (a_1 a_2 a_3) = sigma_3 z_3 / (a_1 a_2) + sigma_2 z_2 / a_1 (no noise at t = 1): each coordinate has
# variance v = sigma_3^2 / (a_1 a_2)^2 + sigma_2^2 / a_1^2, independently of the other, if the sampler uses the
# variances it is given and fresh noise at every step. Tolerances: 5 standard errors (below).
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
# draws from the global generator), a different seed different ones; generator=None uses the global generator.
_x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(13))
_runs = {}
for _seed in (21, 21, 22):
    torch.randn(5)  # moves the global generator: a sampler that uses it instead of `generator` is not reproducible
    _runs.setdefault(_seed, []).append(ddpm_sample(lambda x, t: torch.zeros_like(x), linear_schedule(3, 0.1, 0.3),
                                                   _x_T, sigma2=torch.tensor([0.0, 0.0, 0.5, 2.0]),
                                                   generator=torch.Generator().manual_seed(_seed)))
assert torch.equal(*_runs[21]), "the same seeded generator must give the same samples: draw z from `generator`"
assert not torch.equal(_runs[21][0], _runs[22][0]), "another seed must give other samples: draw z from `generator`"
_global = []
for _ in range(2):
    torch.manual_seed(31)
    _global.append(ddpm_sample(lambda x, t: torch.zeros_like(x), linear_schedule(3, 0.1, 0.3), _x_T,
                               sigma2=torch.tensor([0.0, 0.0, 0.5, 2.0])))
assert torch.equal(*_global), "generator=None: torch's global generator, reproducible with torch.manual_seed"

# Images (B, C, H, W) and the smallest case (one example, one coordinate, T = 1: the step returns the mean)
_calls = []
_img = ddpm_sample(lambda x, t: (_calls.append(tuple(x.shape)), 0.1 * x)[1], ve_schedule(geometric_sigmas(5)),
                   torch.randn(2, 1, 3, 3, generator=_g), sigma2=torch.full((6,), 0.01), generator=_g)
assert _img.shape == (2, 1, 3, 3) and _calls == [(2, 1, 3, 3)] * 5, "images: x_0 and every model input (2, 1, 3, 3)"
_one = ddpm_sample(lambda x, t: torch.ones_like(x), linear_schedule(1, 0.36, 0.36), torch.tensor([[2.0]]),
                   sigma2=torch.tensor([0.0, 5.0]), generator=_g)
assert _one.shape == (1, 1) and abs(_one.item() - (2.0 - 0.36 / 0.6) / 0.8) < 1e-12, "T = 1: one step, the mean"


def _check_returns_gaussian(sched, mu, s2, sigma2, x_T, seed, what):
    # exact eps of N(mu, s2 I) data, written independently of Part C
    n = x_T.shape[0]

    def eps_model(x, t):
        m, v = sched.m[t][:, None], sched.v[t][:, None]
        return v.sqrt() * (x - m * mu) / (m**2 * s2 + v)

    x0 = ddpm_sample(eps_model, sched, x_T, sigma2=sigma2, generator=torch.Generator().manual_seed(seed))
    assert x0.shape == (n, 2)
    # 5 standard errors: sample mean sqrt(s2 / n); sample covariance of Gaussian data,
    # Var(S_ij) = (S_ii S_jj + S_ij^2) / (n - 1): diagonal s2 sqrt(2 / (n - 1)), off-diagonal s2 sqrt(1 / (n - 1))
    mean, cov = x0.mean(dim=0), torch.cov(x0.T)
    assert (mean - mu).abs().max() < 5 * math.sqrt(s2 / n), f"{what}: sample mean {mean.tolist()} vs {mu.tolist()}"
    assert (cov.diagonal() - s2).abs().max() < 5 * s2 * math.sqrt(2 / (n - 1)), f"{what}: variances {cov.diagonal()}"
    assert abs(cov[0, 1]) < 5 * s2 * math.sqrt(1 / (n - 1)), f"{what}: sample covariance {cov[0, 1]:.4f} vs 0"


def _true_reverse_variances(sched, s2):
    # from the joint covariance of (x_{t-1}, x_t), the variances composed one step at a time
    a, b2 = sched.a.tolist(), sched.b2.tolist()
    var, sigma2 = [s2], [0.0]
    for t in range(1, sched.T + 1):
        var.append(a[t] ** 2 * var[-1] + b2[t])
        sigma2.append(var[-2] - a[t] ** 2 * var[-2] ** 2 / var[-1])
    return torch.tensor(sigma2)


_sched = linear_schedule(1000)
_g = torch.Generator().manual_seed(14)
# DDPM, unit-variance data: sigma_t^2 = beta_t is the true reverse variance; x_T ~ N(0, I)
_check_returns_gaussian(_sched, torch.tensor([1.5, -0.5]), 1.0, _sched.b2, torch.randn(10_000, 2, generator=_g), 6,
                        "DDPM, s2 = 1")
# DDPM, s2 = 0.25, the true reverse variances
_check_returns_gaussian(_sched, torch.tensor([0.5, -1.0]), 0.25, _true_reverse_variances(_sched, 0.25),
                        torch.randn(10_000, 2, generator=_g), 7, "DDPM, s2 = 0.25")
# VE, s2 = 0.25: x_T drawn from q(x_T) = N(mu, s2 + sigma_T^2) itself, the true reverse variances
_ve = ve_schedule(geometric_sigmas(1000, 0.01, 50.0))
_mu = torch.tensor([2.0, -1.0])
_x_T = _mu + math.sqrt(0.25 + _ve.v[-1].item()) * torch.randn(10_000, 2, generator=_g)
_check_returns_gaussian(_ve, _mu, 0.25, _true_reverse_variances(_ve, 0.25), _x_T, 8, "VE, s2 = 0.25")
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
#
# The result holds for every Gaussian chain, with $\mathrm{SNR}(t) = m_t^2 / v_t$ and $r = \sigma_t^2 / \tilde v_t$
# (the same derivation with the symbols of part B); the visible tests check it on a VE chain as well.
#
# **What your function must accept.** `snr_prev`, `snr`: numbers (int or float) with `snr_prev >= snr > 0`;
# `sigma2_ratio`: a number $> 0$, keyword-only. Returns a Python float.

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
# A made-up four-step DDPM schedule with large betas (0.1 ... 0.4): lambda_t by the formula above, from its betas, for
# sigma_t^2 = r beta_tilde_t; your function sees only the schedule's SNRs.
_short = linear_schedule(4, 0.1, 0.4)
_snr = (_short.m**2 / _short.v).tolist()  # SNR(0) = inf is never used (t >= 2)
_lam = vlb_weight(_snr[2], _snr[3], sigma2_ratio=1.0)
assert isinstance(_lam, float) and _lam > 0, f"lambda_t is a positive float, got {_lam!r}"
for _t in (2, 3, 4):
    _beta, _alpha, _ab = _short.b2[_t].item(), _short.a[_t].item() ** 2, _short.m[_t].item() ** 2
    for _r in (1.0, 0.5, 3.0):
        _ref = _beta**2 / (2 * _r * _short.posterior_var[_t].item() * _alpha * (1 - _ab))
        _got = vlb_weight(_snr[_t - 1], _snr[_t], sigma2_ratio=_r)
        assert abs(_got - _ref) < 1e-10 * _ref, \
            f"t = {_t}, sigma_t^2 = {_r} beta_tilde_t: lambda_t = {_ref:.6g} (DDPM eq. 12), got {_got:.6g}"
# The VE chain with sigma^2 = 0, 1, 4: at t = 2 the KL of the means is b_t^4 / (a_t^2 v_t) / (2 sigma_t^2) times
# ||eps - eps_theta||^2 (part B's mean), with b_2^2 = 3, v_2 = 4 and sigma_2^2 = r * 3 / 4: lambda_2 = 3 / (2 r),
# from SNR(1) = 1 and SNR(2) = 1/4.
for _r in (1.0, 2.0):
    _got = vlb_weight(1.0, 0.25, sigma2_ratio=_r)
    assert abs(_got - 3 / (2 * _r)) < 1e-12, f"VE chain, SNR 1 -> 1/4, r = {_r}: lambda_2 = {3 / (2 * _r)}, got {_got}"
# A step that adds no noise leaves the SNR unchanged and costs nothing: lambda_t = 0 (not 0 / 0)
_got = vlb_weight(0.25, 0.25, sigma2_ratio=1.0)
assert _got == _got and abs(_got) < 1e-12, f"equal SNRs (beta_t = 0): lambda_t = 0, got {_got}"
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
# 3) Limits: a step that adds no noise (equal SNRs) costs nothing; only the ratio of the SNRs matters; ints accepted
assert abs(vlb_weight(0.25, 0.25, sigma2_ratio=1.0)) < 1e-12, "equal SNRs (beta_t = 0): lambda_t = 0"
assert abs(vlb_weight(5e3, 5e2, sigma2_ratio=2.0) / vlb_weight(5.0, 0.5, sigma2_ratio=2.0) - 1) < 1e-9, \
    "lambda_t depends on SNR(t-1) / SNR(t) only"
_got = vlb_weight(3, 1, sigma2_ratio=2)
assert isinstance(_got, float) and abs(_got - 0.5) < 1e-12, f"ints: SNR 3 -> 1, r = 2: lambda_t = 0.5, got {_got!r}"
### END HIDDEN TESTS


# %% [markdown] id="part_g"
# ## Part G — training (2 points) and what predicting $\mathbf{x}_0$ changes (2 points)
#
# **G1.** Write one iteration of Algorithm 1 for a batch whose $t$ and $\boldsymbol\epsilon$ the caller has drawn:
# clear the old gradients, back-propagate your `l_simple` of the batch, and let the optimizer take **one** step.
# Return the loss of the whole batch (before the step) as a Python float.
#
# A batch that does not fit in memory at once is processed in micro-batches (gradient accumulation): with
# `micro_batch = k`, split the batch into consecutive slices of at most $k$ rows (the last one may be shorter), so that
# the model never sees more than $k$ rows at a time, and back-propagate each slice's loss so that the accumulated
# gradient is the gradient of the whole batch's loss, exactly. Think about what "the whole batch's loss" is when the
# slices have different sizes: the loss is a mean over all examples.
#
# **What your function must accept.** `x0`, `t`, `eps`: as in `l_simple`, with `t` a `(B,)` long tensor. `micro_batch`:
# a positive int, keyword-only, or `None` (the default: the whole batch at once); $k \ge B$ is one slice. Returns a
# Python float.

# %% id="train_step" kind="solution"
def train_step(eps_model: nn.Module, optimizer: torch.optim.Optimizer, sched: Schedule, x0: Tensor, t: Tensor, *,
               eps: Tensor, micro_batch: int | None = None) -> float:
    """One gradient step on L_simple of the batch (Algorithm 1, line 5), accumulated over slices of micro_batch rows.

    Arguments as in l_simple; micro_batch (keyword-only): at most this many rows per model call (None: all at once).
    Returns the loss of the whole batch, before the step, as a float.
    """
    ### BEGIN SOLUTION
    B = len(x0)
    k = B if micro_batch is None else micro_batch
    optimizer.zero_grad()
    total = 0.0
    for start in range(0, B, k):
        rows = slice(start, start + k)
        n = x0[rows].shape[0]
        loss = l_simple(eps_model, sched, x0[rows], t[rows], eps=eps[rows]) * (n / B)  # its share of the batch mean
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total
    ### END SOLUTION


# %% id="train_step_tests" kind="tests" points=2
class _TinyEps(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.rows_seen = []

    def forward(self, x, t):
        self.rows_seen.append(x.shape[0])
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
assert isinstance(_loss, float), f"return the loss as a Python float (loss.item()), got {type(_loss).__name__}"
assert any(not torch.equal(p, q) for p, q in zip(_net.parameters(), _before, strict=True)), "the parameters must move"


def _check_one_sgd_step(step, batch=16, micro_batch=None):
    # the call must be exactly one SGD step on the gradient of this batch's loss alone (p <- p - lr * grad), with the
    # model never called on more than micro_batch rows
    x0, eps = torch.randn(batch, 2, generator=_g), torch.randn(batch, 2, generator=_g)
    t = torch.randint(1, 1001, (batch,), generator=_g)
    before = [p.detach().clone() for p in _net.parameters()]
    ref_loss = l_simple(_net, _sched, x0, t, eps=eps)
    grads = torch.autograd.grad(ref_loss, list(_net.parameters()))
    _net.rows_seen = []
    kwargs = {} if micro_batch is None else {"micro_batch": micro_batch}
    loss = train_step(_net, _opt, _sched, x0, t, eps=eps, **kwargs)
    where = f"step {step}, batch {batch}, micro_batch {micro_batch}"
    assert max(_net.rows_seen) <= (micro_batch or batch), \
        f"{where}: the model must see at most {micro_batch or batch} rows per call, got calls of {_net.rows_seen} rows"
    assert abs(loss - ref_loss.item()) < 1e-12 * max(1.0, ref_loss.item()), \
        f"{where}: return the whole batch's loss before the step, {ref_loss.item():.8f}, got {loss:.8f}"
    for p, p0, gr in zip(_net.parameters(), before, grads, strict=True):
        assert torch.allclose(p.detach(), p0 - 0.05 * gr, rtol=1e-10, atol=1e-12), \
            f"{where}: the update is not one SGD step on this batch's gradient (old gradients cleared? slices " \
            "weighted by their size? one optimizer step?)"


_check_one_sgd_step(1)  # after the step above: the gradient of that batch must not leak into this one
_check_one_sgd_step(2, batch=8, micro_batch=3)  # slices of 3, 3 and 2 rows
print("Part G1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_check_one_sgd_step(3)
_check_one_sgd_step(4, batch=10, micro_batch=4)
_check_one_sgd_step(5, batch=7, micro_batch=1)
_check_one_sgd_step(6, batch=5, micro_batch=5)
_check_one_sgd_step(7, batch=5, micro_batch=64)
_check_one_sgd_step(8, batch=1)
_check_one_sgd_step(9, batch=9, micro_batch=2)
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
    _samples = ddpm_sample(_model, _demo, torch.randn(2000, 2, generator=_g), sigma2=_demo.b2, generator=_g)
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
# **1.** Write $m = \sqrt{\bar\alpha_t}$ and $v = 1-\bar\alpha_t$ (the kernel's $m_t$ and $v_t$), so
# $\mathbf{x}_t = m\,\mathbf{x}_0 + \sqrt{v}\,\boldsymbol\epsilon$, and let the predictions obey the same relation,
# $\mathbf{x}_t = m\,\hat{\mathbf{x}}_0 + \sqrt{v}\,\hat{\boldsymbol\epsilon}$. Subtracting, $m(\mathbf{x}_0 -
# \hat{\mathbf{x}}_0) = -\sqrt{v}(\boldsymbol\epsilon - \hat{\boldsymbol\epsilon})$, hence
#
# $$\lVert\mathbf{x}_0 - \hat{\mathbf{x}}_0\rVert^2 = \frac{1-\bar\alpha_t}{\bar\alpha_t}\,\lVert\boldsymbol\epsilon
# - \hat{\boldsymbol\epsilon}\rVert^2, \qquad w(t) = \frac{1}{\mathrm{SNR}(t)} .$$
#
# For $\mathbf{v}$: $\mathbf{v} - \hat{\mathbf{v}} = m(\boldsymbol\epsilon - \hat{\boldsymbol\epsilon}) -
# \sqrt{v}(\mathbf{x}_0 - \hat{\mathbf{x}}_0) = (m + v/m)(\boldsymbol\epsilon - \hat{\boldsymbol\epsilon}) =
# (\boldsymbol\epsilon - \hat{\boldsymbol\epsilon})/m$, so $w_v(t) = 1/\bar\alpha_t = 1 + 1/\mathrm{SNR}(t)$: close
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
