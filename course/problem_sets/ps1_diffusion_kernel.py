# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 1 — the diffusion kernel
#
# The forward process of a diffusion model corrupts a data point $\mathbf{x}_0$ in $T$ small Gaussian steps. DDPM's
# steps (lesson 1) are
#
# $$q(\mathbf{x}_t \mid \mathbf{x}_{t-1})
# = \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{1-\beta_t}\,\mathbf{x}_{t-1},\ \beta_t \mathbf{I}\big),
# \qquad t = 1, \dots, T ,$$
#
# one member of a family of **Gaussian chains**: $\mathbf{x}_t = a_t\,\mathbf{x}_{t-1} + b_t\,\boldsymbol\epsilon_t$
# with fresh noise $\boldsymbol\epsilon_t \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ at every step and numbers
# $a_t, b_t > 0$. DDPM's chain is *variance preserving* (VP): $a_t = \sqrt{1-\beta_t}$, $b_t = \sqrt{\beta_t}$. The
# score-based models of lesson 3 (SMLD/NCSN) use a *variance exploding* (VE) chain that only adds noise: $a_t = 1$,
# $b_t^2 = \sigma_t^2 - \sigma_{t-1}^2$ for noise levels $0 = \sigma_0 < \sigma_1 < \dots < \sigma_T$. Every chain
# has a diffusion kernel $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(m_t\,\mathbf{x}_0, v_t\mathbf{I})$: for
# DDPM's, $m_t = \sqrt{\bar\alpha_t}$ and $v_t = 1 - \bar\alpha_t$; for the VE chain, $m_t = 1$ and $v_t = \sigma_t^2$.
#
# In this problem set you turn the lecture's claims about the forward process into code and check every one of them
# numerically. Parts B to F are written for any Gaussian chain, so that each result is derived rather than copied
# from a formula: the tests check DDPM's chain against the lecture's formulas and other chains against their own.
#
# | part | what you show | points |
# |---|---|---|
# | A | a schedule designed by its $\bar\alpha_t$: the $\beta_t$ it implies, clipped, in the course's indexing | 2 |
# | B | sampling a jump of the chain, $q(\mathbf{x}_t \mid \mathbf{x}_s)$, by reparameterisation | 2 |
# | C | one-step kernels compose into the diffusion kernel: exactly, by simulation, on paper | 2 + 2 + 2 + 3 |
# | D | the posterior $q(\mathbf{x}_s \mid \mathbf{x}_t, \mathbf{x}_0)$ of a jump back, checked by Bayes' rule | 3 |
# | E | $q(\mathbf{x}_T)$ against the prior: the KL divergence of two Gaussians and $L_T$ in bits/dim | 2 + 2 |
# | F | the Fourier view: high frequencies drown first | 2 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`), and
# keep the function names and signatures: the grader calls them. The cell after each answer holds tests. The visible
# ones run on inputs where the usual slips give a different answer, and say what they expected and what came; more
# are hidden and run when your work is graded: they compare your functions with independent computations (closed
# forms, Bayes' rule on a grid, Monte Carlo with error bars), over every type, shape and default that the part says
# your function must accept. Passing the visible tests is necessary, not sufficient. Write your answers with `torch`
# (and `math`); do not import `ddpm_scratch`: the point is to write these yourself (the package implements DDPM's
# chain only, and none of the functions asked for here).
#
# **Conventions of the course.** Arrays indexed by time have length $T+1$ and index $t$ is the lecture's $t$; index
# $0$ is the data itself, so `betas[0] = 0`, `alpha_bar[0] = 1`, and a kernel has $m_0 = 1$, $v_0 = 0$. This notebook
# computes in float64 (set below): some of the quantities you will meet are of order $10^{-5}$ and float32 would
# round them away. Data may still arrive in float32 (networks run in float32); each part says what it must return.
#
# **Calling convention** (the same as the course package's): a function of the process takes the schedule first (here
# the arrays `betas` / `alpha_bar`, a `Chain` or a `Kernel`), then the state and the timestep(s), positionally;
# whatever a caller draws (noise, a random generator) or conditions on is passed by keyword:
# `q_jump(kernel, x_s, s, t, eps=eps)`, `q_posterior(kernel, x_t, t, x0=x0, s=s)`. Tensors such as
# $\mathbf{x}_0$, $\mathbf{x}_t$ and $\boldsymbol\epsilon$ have the same shape, so two of them swapped in a positional
# call would raise nothing; a keyword cannot be swapped silently.

# %% id="setup"
import math
from typing import NamedTuple

import torch
from torch import Tensor

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than two that wait for each other


class Chain(NamedTuple):
    """A Gaussian chain x_t = a[t] x_{t-1} + b[t] eps_t for t = 1..T, eps_t ~ N(0, I) independent of the past.

    a, b: (T+1,) float64, a[t] > 0 and b[t] > 0 for t >= 1; index 0 is the data (a[0] = 1, b[0] = 0).
    """

    a: Tensor
    b: Tensor

    @property
    def T(self) -> int:
        return self.a.numel() - 1


class Kernel(NamedTuple):
    """A chain's diffusion kernel q(x_t | x_0) = N(m[t] x_0, v[t] I) for t = 0..T.

    m, v: (T+1,) float64; m[0] = 1 and v[0] = 0 (index 0 is the data), v[t] > 0 for t >= 1.
    """

    m: Tensor
    v: Tensor

    @property
    def T(self) -> int:
        return self.m.numel() - 1


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's linear schedule in the course's convention: (T+1,), betas[0] = 0, betas[1..T] linear in t."""
    return torch.cat([torch.zeros(1), torch.linspace(beta_start, beta_end, T)])


def alpha_bar_from_betas(betas: Tensor) -> Tensor:
    """alpha_bar_t = prod_{s=1..t} (1 - beta_s) for t = 0..T: (T+1,), alpha_bar[0] = 1 (the empty product)."""
    return torch.cumprod(1 - betas, dim=0)


def geometric_sigmas(T: int = 1000, sigma_min: float = 0.01, sigma_max: float = 50.0) -> Tensor:
    """NCSN's noise levels: sigmas[0] = 0 (the data), sigmas[1..T] geometric from sigma_min to sigma_max."""
    return torch.cat([torch.zeros(1), torch.logspace(math.log10(sigma_min), math.log10(sigma_max), T)])


def vp_chain(betas: Tensor) -> Chain:
    """DDPM's chain: a_t = sqrt(1 - beta_t), b_t = sqrt(beta_t)."""
    return Chain((1 - betas).sqrt(), betas.sqrt())


def ve_chain(sigmas: Tensor) -> Chain:
    """The variance-exploding chain: a_t = 1, b_t = sqrt(sigma_t^2 - sigma_{t-1}^2), with sigmas[0] = 0."""
    b = torch.zeros_like(sigmas)
    b[1:] = (sigmas[1:] ** 2 - sigmas[:-1] ** 2).sqrt()
    return Chain(torch.ones_like(sigmas), b)


def vp_kernel(alpha_bar: Tensor) -> Kernel:
    """The kernel of DDPM's chain (lesson 1): m_t = sqrt(alpha_bar_t), v_t = 1 - alpha_bar_t."""
    return Kernel(alpha_bar.sqrt(), 1 - alpha_bar)


def ve_kernel(sigmas: Tensor) -> Kernel:
    """The kernel of the variance-exploding chain: m_t = 1, v_t = sigma_t^2 (sigmas[0] = 0)."""
    return Kernel(torch.ones_like(sigmas), sigmas**2)


def _close(got, expected, what, rtol=1e-10):
    """For the tests below: `got` is a tensor of `expected`'s shape, equal to it within rtol."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert isinstance(got, Tensor) and got.shape == expected.shape, \
        f"{what}: expected a tensor of shape {tuple(expected.shape)}, got {got!r}"
    assert torch.allclose(got.double(), expected, rtol=rtol, atol=1e-12), \
        f"{what}: expected {[round(v, 6) for v in expected.tolist()]}, got {[round(v, 6) for v in got.tolist()]}"


# %% [markdown] id="part_a"
# ## Part A — a schedule designed by its $\bar\alpha_t$ (2 points)
#
# Write $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s=1}^{t} \alpha_s$; with the course's convention the array
# `alpha_bar` has length $T+1$, `alpha_bar[t]` is $\bar\alpha_t$ (it contains $\alpha_t$ itself, not only the
# factors before it), and `alpha_bar[0]` $= 1$ (the empty product). The setup cell computes it from the betas
# (`alpha_bar_from_betas`).
#
# Lesson 1's cosine schedule goes the other way: it chooses the curve $\bar\alpha_t$ first and derives the betas
# from it. Write that construction for any curve. Given a target `alpha_bar` (length $T+1$), return the betas that
# produce it, $\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}$ for $t = 1..T$ and $\beta_0 = 0$, each **clipped** at
# `max_beta` so that no step destroys everything at once (a target that reaches $\bar\alpha_T = 0$ asks for
# $\beta_T = 1$). Clipping changes the product, so return also the $\bar\alpha_t$ that the clipped betas actually
# produce, computed from them. Each $\beta_t$ is computed from the target's ratio $\bar\alpha_t / \bar\alpha_{t-1}$
# and then clipped, whatever happened at earlier steps (as in Nichol & Dhariwal 2021).
#
# **What your function must accept.** `alpha_bar`: a 1-D tensor of length $T+1 \ge 2$, float32 or float64, with
# `alpha_bar[0] = 1`, decreasing, positive except possibly `alpha_bar[T] = 0`. `max_beta`: a float in $(0, 1]$,
# keyword-only, default $0.999$ (Nichol & Dhariwal's value). Both returned tensors have shape $(T+1,)$ and
# `alpha_bar`'s dtype.

# %% id="alpha_bar" kind="solution"
def betas_from_alpha_bar(alpha_bar: Tensor, *, max_beta: float = 0.999) -> tuple[Tensor, Tensor]:
    """The betas of a target curve alpha_bar, clipped at max_beta, and the alpha_bar that they produce.

    alpha_bar: (T+1,) float32 or float64, alpha_bar[0] = 1, decreasing.  max_beta (keyword-only): the largest beta.
    Returns (betas, alpha_bar_clipped), each (T+1,) in alpha_bar's dtype: betas[0] = 0,
    betas[t] = min(1 - alpha_bar[t] / alpha_bar[t-1], max_beta); alpha_bar_clipped[t] = prod_{s<=t} (1 - betas[s]).
    """
    ### BEGIN SOLUTION
    ratios = alpha_bar[1:] / alpha_bar[:-1]  # the target's alpha_t, t = 1..T
    betas = torch.cat([torch.zeros_like(alpha_bar[:1]), (1 - ratios).clamp(max=max_beta)])
    return betas, torch.cumprod(1 - betas, dim=0)
    ### END SOLUTION


# %% id="alpha_bar_tests" kind="tests" points=2
# A target whose steps are not all alike: alpha_t = 0.9, 0.8, 0.5, 0.005, so the betas are 0.1, 0.2, 0.5, 0.995.
_target = torch.tensor([1.0, 0.9, 0.72, 0.36, 0.0018])
_betas, _ab = betas_from_alpha_bar(_target)
_close(_betas, [0.0, 0.1, 0.2, 0.5, 0.995], "betas of alpha_bar = 1, .9, .72, .36, .0018 (max_beta = 0.999 keeps them)")
_close(_ab, _target, "without clipping the betas give back the target alpha_bar")
# The same target with max_beta = 0.4: beta_3 = 0.5 and beta_4 = 0.995 are clipped to 0.4, and alpha_bar changes
# from t = 3 on: 0.72 * 0.6 = 0.432, then 0.432 * 0.6 = 0.2592.
_betas, _ab = betas_from_alpha_bar(_target, max_beta=0.4)
_close(_betas, [0.0, 0.1, 0.2, 0.4, 0.4], "betas clipped at max_beta = 0.4")
_close(_ab, [1.0, 0.9, 0.72, 0.432, 0.2592], "alpha_bar recomputed from the clipped betas (max_beta = 0.4)")
# alpha_bar_T = 0 asks for beta_T = 1: the default clip gives 0.999.
_betas, _ab = betas_from_alpha_bar(torch.tensor([1.0, 0.5, 0.0]))
_close(_betas, [0.0, 0.5, 0.999], "alpha_bar = 1, .5, 0 with the default max_beta = 0.999")
_close(_ab, [1.0, 0.5, 0.0005], "alpha_bar of the clipped betas 0, .5, .999")
_betas, _ab = betas_from_alpha_bar(torch.tensor([1.0, 0.9, 0.72], dtype=torch.float32))
assert _betas.dtype == torch.float32 and _ab.dtype == torch.float32, \
    f"a float32 alpha_bar must give float32 results, got {_betas.dtype} and {_ab.dtype}"
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _reference(target, max_beta):
    # independent reference: Python floats, one step at a time
    betas, ab = [0.0], [1.0]
    for t in range(1, len(target)):
        beta = min(1.0 - target[t] / target[t - 1], max_beta)
        betas.append(beta)
        ab.append(ab[-1] * (1.0 - beta))
    return torch.tensor(betas), torch.tensor(ab)


def _check(target, max_beta=None, rtol=1e-12):
    kwargs = {} if max_beta is None else {"max_beta": max_beta}
    betas, ab = betas_from_alpha_bar(target, **kwargs)
    ref_betas, ref_ab = _reference(target.double().tolist(), 0.999 if max_beta is None else max_beta)
    assert betas.shape == ab.shape == target.shape, (
        f"shapes {tuple(betas.shape)}, {tuple(ab.shape)} for T+1 = {len(target)}")
    assert betas.dtype == ab.dtype == target.dtype, f"dtype {betas.dtype}, {ab.dtype} for a {target.dtype} alpha_bar"
    assert torch.allclose(betas.double(), ref_betas, rtol=rtol, atol=1e-15), f"betas wrong (max_beta {max_beta})"
    assert torch.allclose(ab.double(), ref_ab, rtol=rtol, atol=1e-15), f"clipped alpha_bar wrong (max_beta {max_beta})"


# Nichol & Dhariwal's cosine curve, f(t) = cos^2(pi/2 (t/T + s)/(1 + s)), default clip: it bites at the last steps
# only for s = 0, where alpha_bar_T = 0 to rounding
for _s in (0.008, 0.0):
    _steps = torch.arange(1001) / 1000
    _f = torch.cos((_steps + _s) / (1 + _s) * math.pi / 2) ** 2
    _check(_f / _f[0])
# clipping in the middle of the chain: later betas are computed from the target's ratios, not from the clipped curve
_g = torch.Generator().manual_seed(1)
_target = torch.cat([torch.ones(1), torch.cumprod(1 - 0.6 * torch.rand(40, generator=_g), dim=0)])
_check(_target, max_beta=0.3)
_check(_target, max_beta=1.0)
# the smallest chain, T = 1, and alpha_bar_T = 0 exactly with the default clip
_check(torch.tensor([1.0, 0.25]))
_check(torch.tensor([1.0, 0.0]))
_check(torch.tensor([1.0, 0.6, 0.0]), max_beta=0.9)
# float32 in, float32 out, computed as accurately as float32 allows
_check(torch.tensor([1.0, 0.9, 0.72, 0.36, 0.0018], dtype=torch.float32), max_beta=0.4, rtol=1e-6)
# DDPM's linear schedule: alpha_bar_from_betas and betas_from_alpha_bar are inverse to each other
_betas = linear_betas(1000)
_back, _ab = betas_from_alpha_bar(alpha_bar_from_betas(_betas))
assert torch.allclose(_back, _betas, rtol=1e-9, atol=1e-15), "betas_from_alpha_bar(alpha_bar_from_betas(b)) = b"
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — sampling a jump of the chain (2 points)
#
# Every Gaussian chain has a diffusion kernel $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(m_t\,\mathbf{x}_0,
# v_t\mathbf{I})$, given here as a `Kernel` with arrays `m` and `v` (the setup builds DDPM's, `vp_kernel`, and the
# VE chain's, `ve_kernel`; part C computes it for any chain). A sampler that skips steps needs more: the jump
# $q(\mathbf{x}_t \mid \mathbf{x}_s)$ from an intermediate step $s \le t$.
#
# Derive it from the kernel alone. Given $\mathbf{x}_s$, the chain from $s$ to $t$ multiplies $\mathbf{x}_s$ by some
# number $c$ and adds independent Gaussian noise of some variance $w$ per coordinate (the argument of lesson 1's
# section 2, started at $\mathbf{x}_s$): $q(\mathbf{x}_t \mid \mathbf{x}_s) = \mathcal{N}(c\,\mathbf{x}_s,
# w\mathbf{I})$. Going from $\mathbf{x}_0$ to $\mathbf{x}_t$ through $\mathbf{x}_s$ must reproduce the kernel at
# $t$; compare the means and the variances to find $c$ and $w$ from $m_s, v_s, m_t, v_t$. (Check: for DDPM's chain
# $c = \sqrt{\bar\alpha_t/\bar\alpha_s}$.) Then sample by reparameterisation, $\mathbf{x}_t = c\,\mathbf{x}_s +
# \sqrt{w}\,\boldsymbol\epsilon$, with the noise passed in (by keyword, `eps=`), so the function itself is
# deterministic.
#
# **What your function must accept.** `x_s`: a batch `(B, ...)` of any shape, vectors `(B, D)` and images
# `(B, C, H, W)` alike, float32 or float64; `x_t` has `x_s`'s shape and dtype. `s` and `t`: each a Python int (the
# whole batch at one step) or a `(B,)` long tensor (one step per example), $0 \le s \le t \le T$; $s = t$ returns
# `x_s` and $s = 0$ is the kernel itself. `eps`: `x_s`'s shape.

# %% id="q_sample" kind="solution"
def q_jump(kernel: Kernel, x_s: Tensor, s: int | Tensor, t: int | Tensor, *, eps: Tensor) -> Tensor:
    """x_t = c x_s + sqrt(w) eps, a sample of q(x_t | x_s) of the chain whose kernel is `kernel`.

    kernel: m, v (T+1,).  x_s: (B, ...) float32 or float64.  s, t: ints or (B,) long tensors, 0 <= s <= t <= T.
    eps (keyword-only): (B, ...) standard normal noise, the shape of x_s.
    Returns x_t: (B, ...), x_s's shape and dtype.
    """
    ### BEGIN SOLUTION
    shape = (-1, *([1] * (x_s.dim() - 1)))  # per example, broadcast over the other dimensions
    c = kernel.m[t] / kernel.m[s]  # q(x_t | x_s) = N(c x_s, w I): m_t = c m_s and v_t = c^2 v_s + w
    w = (kernel.v[t] - c**2 * kernel.v[s]).clamp(min=0)  # clamp: round-off when s = t
    return (c.reshape(shape) * x_s + w.sqrt().reshape(shape) * eps).to(x_s.dtype)
    ### END SOLUTION


# %% id="q_sample_tests" kind="tests" points=2
# A made-up VP kernel with T = 3 and round square roots: alpha_bar = 1, 0.64, 0.36, 0.09, so m = 1, 0.8, 0.6, 0.3.
# From s = 1 to t = 3: c = 0.3 / 0.8 = 0.375 and w = (1 - 0.09) - 0.375^2 (1 - 0.64) = 0.859375.
_kernel = vp_kernel(torch.tensor([1.0, 0.64, 0.36, 0.09]))
_gen = torch.Generator().manual_seed(0)
_x, _eps = torch.randn(5, 3, generator=_gen), torch.randn(5, 3, generator=_gen)
_got = q_jump(_kernel, _x, 1, 3, eps=_eps)
assert isinstance(_got, Tensor) and _got.shape == (5, 3), f"x_t must have x_s's shape (5, 3), got {_got!r}"
_want = 0.375 * _x + math.sqrt(0.859375) * _eps
assert torch.allclose(_got, _want), f"s = 1, t = 3: expected x_t = 0.375 x_s + sqrt(0.859375) eps, i.e. " \
    f"{_want[0].tolist()} in the first row, got {_got[0].tolist()}"
assert torch.allclose(q_jump(_kernel, _x, 0, 2, eps=_eps), 0.6 * _x + 0.8 * _eps), \
    "s = 0 is the kernel itself: x_2 = m_2 x_0 + sqrt(v_2) eps = 0.6 x_0 + 0.8 eps"
assert torch.equal(q_jump(_kernel, _x, 2, 2, eps=_eps), _x), "s = t must give back x_s"
# One step per example: rows jump (s, t) = (0, 3), (1, 2), (2, 3), (1, 1), (0, 1).
_s, _t = torch.tensor([0, 1, 2, 1, 0]), torch.tensor([3, 2, 3, 1, 1])
_c = torch.tensor([0.3, 0.75, 0.5, 1.0, 0.8])
_w = torch.tensor([0.91, 0.64 - 0.75**2 * 0.36, 0.91 - 0.25 * 0.64, 0.0, 0.36])
_want = _c[:, None] * _x + _w.sqrt()[:, None] * _eps
_got = q_jump(_kernel, _x, _s, _t, eps=_eps)
assert torch.allclose(_got, _want), f"per-example (s, t): expected {_want[:, 0].tolist()} in the first column, " \
    f"got {_got[:, 0].tolist()}"
# A VE kernel (m = 1, v = sigma^2 = 0, 1, 4, 9) and images: from s = 1 to t = 3, c = 1 and w = 9 - 1 = 8.
_img, _img_eps = torch.randn(2, 1, 3, 3, generator=_gen), torch.randn(2, 1, 3, 3, generator=_gen)
_got = q_jump(ve_kernel(torch.tensor([0.0, 1.0, 2.0, 3.0])), _img, 1, torch.tensor([3, 3]), eps=_img_eps)
assert _got.shape == (2, 1, 3, 3), f"images (B, C, H, W): expected shape (2, 1, 3, 3), got {tuple(_got.shape)}"
assert torch.allclose(_got, _img + math.sqrt(8) * _img_eps), "VE kernel, s = 1, t = 3: x_t = x_s + sqrt(8) eps"
_got = q_jump(_kernel, _x.float(), 1, 3, eps=_eps.float())
assert _got.dtype == torch.float32, f"float32 x_s must give float32 x_t, got {_got.dtype}"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# Independent reference: the kernel of the chain from s to t, built one step at a time from the chain itself
# (c = a_{s+1} ... a_t, w by the variance recursion started at 0), one example at a time.
def _jump_of_chain(a, b, s, t):
    c, w = 1.0, 0.0
    for u in range(s + 1, t + 1):
        c, w = a[u] * c, a[u] ** 2 * w + b[u] ** 2
    return c, w


def _kernel_of_chain(a, b):
    m, v = [1.0], [0.0]
    for u in range(1, len(a)):
        m.append(a[u] * m[-1])
        v.append(a[u] ** 2 * v[-1] + b[u] ** 2)
    return Kernel(torch.tensor(m), torch.tensor(v))


_g = torch.Generator().manual_seed(2)
_chains = {"DDPM linear": vp_chain(linear_betas(1000)), "VE geometric": ve_chain(geometric_sigmas(1000)),
           "random": Chain(torch.cat([torch.ones(1), 0.5 + torch.rand(1000, generator=_g)]),
                           torch.cat([torch.zeros(1), 0.05 + 0.2 * torch.rand(1000, generator=_g)]))}
for _name, _chain in _chains.items():
    _a, _b = _chain.a.tolist(), _chain.b.tolist()
    _kernel = _kernel_of_chain(_a, _b)
    _s = torch.tensor([0, 0, 1, 10, 250, 600, 999, 400])
    _t = torch.tensor([0, 1000, 2, 250, 600, 1000, 1000, 400])
    for _shape in ((8, 3, 5, 5), (8, 1), (8, 7)):
        _x = torch.randn(_shape, generator=_g)
        _eps = torch.randn(_shape, generator=_g)
        _x_t = q_jump(_kernel, _x, _s, _t, eps=_eps)
        assert _x_t.shape == _x.shape and _x_t.dtype == torch.float64, f"{_name}: shape/dtype for {_shape}"
        for _i, (_si, _ti) in enumerate(zip(_s.tolist(), _t.tolist(), strict=True)):
            _c, _w = _jump_of_chain(_a, _b, _si, _ti)
            assert torch.allclose(_x_t[_i], _c * _x[_i] + math.sqrt(_w) * _eps[_i], rtol=1e-9, atol=1e-9), \
                f"{_name}: wrong x_t for s = {_si}, t = {_ti}"
    # ints for s and t, and every combination of int and tensor
    _x, _eps = torch.randn(4, 6, generator=_g), torch.randn(4, 6, generator=_g)
    _c, _w = _jump_of_chain(_a, _b, 30, 700)
    _want = _c * _x + math.sqrt(_w) * _eps
    for _si, _ti in ((30, 700), (torch.full((4,), 30), 700), (30, torch.full((4,), 700))):
        assert torch.allclose(q_jump(_kernel, _x, _si, _ti, eps=_eps), _want, rtol=1e-9, atol=1e-9), \
            f"{_name}: s = 30, t = 700 given as {type(_si).__name__}, {type(_ti).__name__}"
    # float32 data: float32 result, as accurate as float32 allows
    _got = q_jump(_kernel, _x.float(), 30, 700, eps=_eps.float())
    assert _got.dtype == torch.float32 and torch.allclose(_got.double(), _want, rtol=1e-4, atol=1e-4), \
        f"{_name}: float32 x_s"
# the smallest batch: one example with one coordinate
_kernel = vp_kernel(alpha_bar_from_betas(linear_betas(10)))
_got = q_jump(_kernel, torch.tensor([[2.0]]), 3, 7, eps=torch.tensor([[-1.0]]))
_c = math.sqrt(_kernel.m[7].item() ** 2 / _kernel.m[3].item() ** 2)
assert _got.shape == (1, 1) and abs(_got.item() - (2 * _c - math.sqrt(1 - _c**2))) < 1e-12, "one example, one value"
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — one-step kernels compose into the diffusion kernel (2 + 2 + 2 + 3 points)
#
# The lecture states that running $t$ one-step kernels from $\mathbf{x}_0$ lands exactly on
# $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0, (1-\bar\alpha_t)\mathbf{I})$.
# You check it three ways for one coordinate (the coordinates are independent): exactly, by propagating the mean and
# variance step by step; by simulation; and on paper (C4). C1 and C2 work for any Gaussian chain; the hidden tests
# compare DDPM's chain with the lecture's closed form, the VE chain with its own ($m_t = 1$, $v_t = \sigma_t^2$), and
# a chain with no closed form with an independent computation.
#
# **C1 (2 points).** If $x_{t-1}$ has mean $\mu_{t-1}$ and variance $V_{t-1}$, then
# $x_t = a_t\,x_{t-1} + b_t\,\epsilon$ with $\epsilon$ independent of $x_{t-1}$ has
#
# $$\mu_t = a_t\, \mu_{t-1}, \qquad V_t = a_t^2\, V_{t-1} + b_t^2 .$$
#
# Implement this recursion, a loop over $t$, for a starting point that may itself be random: $x_0$ with mean
# $\mu_0$ = `mean0` and variance $V_0$ = `var0`. With `var0 = 0` (the default: $x_0$ is known) the result is the
# chain's kernel, $\mu_t = m_t x_0$ and $V_t = v_t$; with data of variance $s^2$ it is the spread of the whole
# distribution $q(x_t)$.
#
# **What your function must accept.** `chain`: a `Chain` (float64 arrays of length $T+1 \ge 2$). `mean0`, `var0`:
# numbers (int or float), keyword-only; `var0 >= 0`, default 0. Returns two float64 tensors of shape $(T+1,)$.

# %% id="propagate" kind="solution"
def propagate_moments(chain: Chain, *, mean0: float, var0: float = 0.0) -> tuple[Tensor, Tensor]:
    """Mean and variance of x_t for every t, by composing one-step kernels from x_0 ~ (mean0, var0).

    chain: a, b (T+1,).  mean0, var0 (keyword-only): mean and variance of x_0; var0 = 0: x_0 = mean0 is known.
    Returns (mean, var), each (T+1,) float64: mean[0] = mean0, var[0] = var0.
    """
    ### BEGIN SOLUTION
    T = chain.a.numel() - 1
    mean, var = torch.empty(T + 1, dtype=torch.float64), torch.empty(T + 1, dtype=torch.float64)
    mean[0], var[0] = mean0, var0
    for t in range(1, T + 1):
        mean[t] = chain.a[t] * mean[t - 1]
        var[t] = chain.a[t] ** 2 * var[t - 1] + chain.b[t] ** 2
    return mean, var
    ### END SOLUTION


# %% id="propagate_tests" kind="tests" points=2
# A chain that is neither VP nor VE: a = 0.9, 1.1, 0.5 and b = 0.3, 0.2, 1.0, from x_0 with mean 2 and variance 0.25.
_chain = Chain(torch.tensor([1.0, 0.9, 1.1, 0.5]), torch.tensor([0.0, 0.3, 0.2, 1.0]))
_mean, _var = propagate_moments(_chain, mean0=2.0, var0=0.25)
assert isinstance(_mean, Tensor) and _mean.shape == (4,) and _var.shape == (4,), \
    f"mean and var must have shape (T+1,) = (4,), got {tuple(_mean.shape)} and {tuple(_var.shape)}"
_close(_mean, [2.0, 1.8, 1.98, 0.99], "means (each step multiplies the mean by a_t)")
_close(_var, [0.25, 0.2925, 0.393925, 1.09848125], "variances (V_t = a_t^2 V_{t-1} + b_t^2, from V_0 = 0.25)")
_mean, _var = propagate_moments(_chain, mean0=2)
_close(_var, [0.0, 0.09, 0.1489, 1.037225], "variances with the default var0 = 0 (x_0 known)")
_mean, _var = propagate_moments(vp_chain(torch.tensor([0.0, 0.1, 0.2, 0.3])), mean0=1.0)
_close(_var, [0.0, 0.1, 0.28, 0.496], "DDPM's chain, betas 0.1, 0.2, 0.3: v_t = 1 - alpha_bar_t")
print("Part C1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# 1) the closed forms: DDPM's chain (alpha_bar from an independent product) and the VE chain (sigma_t^2)
for _betas in (linear_betas(1000), torch.cat([torch.zeros(1), torch.linspace(0.05, 0.5, 30)])):
    _ab = torch.tensor([math.prod(1 - b for b in _betas[1:t + 1].tolist()) for t in range(_betas.numel())])
    _mean, _var = propagate_moments(vp_chain(_betas), mean0=-0.7)
    assert _mean.dtype == _var.dtype == torch.float64 and _mean.shape == _var.shape == _betas.shape
    assert torch.allclose(_mean, _ab.sqrt() * -0.7, rtol=1e-10, atol=1e-14), "DDPM: mean must be sqrt(alpha_bar_t) x0"
    assert torch.allclose(_var, 1 - _ab, rtol=1e-10, atol=1e-14), "DDPM: variance must be 1 - alpha_bar_t"
    # data of variance s2 = 0.36: q(x_t) has variance alpha_bar_t s2 + 1 - alpha_bar_t (lesson 1, section 3)
    _mean, _var = propagate_moments(vp_chain(_betas), mean0=0.5, var0=0.36)
    assert torch.allclose(_var, _ab * 0.36 + 1 - _ab, rtol=1e-10, atol=1e-14), "DDPM, var0 = 0.36"
_sigmas = geometric_sigmas(500, 0.02, 20.0)
_mean, _var = propagate_moments(ve_chain(_sigmas), mean0=3, var0=1)
assert torch.allclose(_mean, torch.full((501,), 3.0)) and torch.allclose(_var, 1 + _sigmas**2, rtol=1e-10), \
    "VE chain: mean x_0 and variance var0 + sigma_t^2"
# 2) a chain with no closed form, against the moments written as sums: mu_t = a_1 ... a_t mu_0 and
# V_t = (a_1 ... a_t)^2 V_0 + sum_s b_s^2 (a_{s+1} ... a_t)^2
_g = torch.Generator().manual_seed(3)
for _T in (1, 2, 57):
    _a = torch.cat([torch.ones(1), 0.6 + 0.8 * torch.rand(_T, generator=_g)])
    _b = torch.cat([torch.zeros(1), 0.1 + torch.rand(_T, generator=_g)])
    _mean, _var = propagate_moments(Chain(_a, _b), mean0=1.5, var0=0.2)
    for _t in range(_T + 1):
        _prod = math.prod(_a[1:_t + 1].tolist())
        _v = _prod**2 * 0.2 + sum(_b[s].item() ** 2 * math.prod(_a[s + 1:_t + 1].tolist()) ** 2
                                  for s in range(1, _t + 1))
        assert abs(_mean[_t].item() - 1.5 * _prod) < 1e-10 and abs(_var[_t].item() - _v) < 1e-10 * max(1, _v), \
            f"T = {_T}, t = {_t}: expected mean {1.5 * _prod:.6g} and variance {_v:.6g}"
### END HIDDEN TESTS

# %% [markdown] id="part_c2"
# **C2 (2 points).** Now simulate: start independent chains at $\mathbf{x}_0$ and apply the one-step kernel $t$ times,
# drawing fresh noise at every step. The starting points form a batch of any shape, `(n,)` for $n$ chains of one
# coordinate or `(B, ...)` for $B$ chains of vectors or images: every coordinate of every chain gets its own,
# independent noise, so the noise has the shape of $\mathbf{x}$. Draw it with `torch.randn(shape,
# generator=generator, dtype=...)` so that a seeded generator makes the result reproducible.
#
# **What your function must accept.** `x0`: `(n,)` or `(B, ...)`, float32 or float64; the result has its shape and
# dtype. `t`: a Python int in $0..T$ ($t = 0$ returns `x0`). `generator`: a `torch.Generator`, keyword-only, or
# `None` (the default), which means torch's global generator (so that `torch.manual_seed` makes the run
# reproducible).

# %% id="forward_chain" kind="solution"
def forward_chain(chain: Chain, x0: Tensor, t: int, *, generator: torch.Generator | None = None) -> Tensor:
    """Sample x_t by applying x_s = a_s x_{s-1} + b_s eps_s for s = 1..t, starting from x0.

    chain: a, b (T+1,).  x0: (n,) or (B, ...) starting points, float32 or float64.  t: int in 0..T.
    generator: source of the noise (torch.randn(..., generator=generator)), keyword-only; None: the global one.
    Returns x_t: x0's shape and dtype.
    """
    ### BEGIN SOLUTION
    x = x0
    for s in range(1, t + 1):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = chain.a[s].to(x.dtype) * x + chain.b[s].to(x.dtype) * noise
    return x
    ### END SOLUTION


# %% id="forward_chain_tests" kind="tests" points=2
_chain = ve_chain(geometric_sigmas(100, 0.1, 10.0))
_x0 = torch.full((7,), 0.5)
assert forward_chain(_chain, _x0, 30, generator=torch.Generator().manual_seed(0)).shape == (7,), \
    "x_t must have x0's shape"
_got = forward_chain(_chain, torch.zeros(5, 3), 30, generator=torch.Generator().manual_seed(0))
assert _got.shape == (5, 3), f"x0 may be a batch of vectors (B, D) = (5, 3): x_t must have its shape, got {_got.shape}"
_got = forward_chain(_chain, torch.zeros(2, 1, 3, 3, dtype=torch.float32), 5,
                     generator=torch.Generator().manual_seed(0))
assert _got.shape == (2, 1, 3, 3) and _got.dtype == torch.float32, \
    f"float32 images (2, 1, 3, 3): expected that shape and dtype, got {tuple(_got.shape)} {_got.dtype}"
assert torch.equal(forward_chain(_chain, _x0, 0, generator=torch.Generator().manual_seed(0)), _x0), \
    "t = 0 must return x0"
assert torch.equal(forward_chain(_chain, _x0, 30, generator=torch.Generator().manual_seed(3)),
                   forward_chain(_chain, _x0, 30, generator=torch.Generator().manual_seed(3))), \
    "draw the noise from `generator`: the same seed must give the same x_t"
# Two steps of a chain that is neither VP nor VE, a = 0.8, 1.25 and b = 0.6, 0.5, from x0 = 1: x_2 has mean
# 0.8 * 1.25 = 1 and variance 1.25^2 * 0.36 + 0.25 = 0.8125 in each coordinate, and the two coordinates of a chain are
# independent. n chains of 2 coordinates; tolerances 5 standard errors of Gaussian draws (C3 with kurtosis 3):
# sqrt(V / n) for a mean, V sqrt(2 / (n - 1)) for a variance, V sqrt(1 / (n - 1)) for a covariance.
_n, _v = 20_000, 0.8125
_x2 = forward_chain(Chain(torch.tensor([1.0, 0.8, 1.25]), torch.tensor([0.0, 0.6, 0.5])), torch.ones(_n, 2), 2,
                    generator=torch.Generator().manual_seed(1))
_cov = torch.cov(_x2.T)
assert (_x2.mean(dim=0) - 1.0).abs().max() < 5 * math.sqrt(_v / _n), f"mean of x_2 should be 1, got {_x2.mean(dim=0)}"
assert (_cov.diagonal() - _v).abs().max() < 5 * _v * math.sqrt(2 / (_n - 1)), \
    f"variance of x_2 should be 1.25^2 * 0.6^2 + 0.5^2 = {_v:.4f}, got {_cov.diagonal()}"
assert abs(_cov[0, 1]) < 5 * _v * math.sqrt(1 / (_n - 1)), \
    f"the two coordinates of a chain must get independent noise (covariance 0), got covariance {_cov[0, 1]:.4f}"
print("Part C2: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# Monte Carlo against the closed-form kernels, n chains. Tolerances: 5 standard errors. For n i.i.d. Gaussian draws of
# variance v the sample mean has standard error sqrt(v / n) and the unbiased sample variance has standard error
# v sqrt(2 / (n - 1)) (Var s^2 = 2 v^2 / (n - 1)).
_n = 20_000
_betas = linear_betas(1000)
_ab = torch.tensor([math.prod(1 - b for b in _betas[1:t + 1].tolist()) for t in range(1001)])
_sigmas = geometric_sigmas(200, 0.01, 20.0)
for _name, _chain, _m_v in (("DDPM", vp_chain(_betas), lambda t: (math.sqrt(_ab[t]), 1 - _ab[t].item())),
                            ("VE", ve_chain(_sigmas), lambda t: (1.0, _sigmas[t].item() ** 2))):
    for _x0_value in (0.8, -1.0):
        for _t in ((1, 30, 300, 1000) if _name == "DDPM" else (1, 60, 200)):
            _x_t = forward_chain(_chain, torch.full((_n,), _x0_value), _t, generator=torch.Generator().manual_seed(_t))
            _m, _v = _m_v(_t)
            assert abs(_x_t.mean().item() - _m * _x0_value) < 5 * math.sqrt(_v / _n), \
                f"{_name}: mean of x_{_t} off for x0 = {_x0_value}"
            assert abs(_x_t.var().item() - _v) < 5 * _v * math.sqrt(2 / (_n - 1)), f"{_name}: variance of x_{_t} off"
# A batch of (2, 3) "images" in float32: n chains started at x0 of shape (n, 2, 3), a different value in every
# coordinate. Every coordinate must follow its own kernel, and the coordinates must be independent (own noise per
# coordinate): the sample covariance of two independent coordinates has standard error v sqrt(1 / (n - 1)).
_t = 200
_x0 = torch.tensor([[0.5, -1.0, 0.0], [1.5, 0.2, -0.3]])
_x_t = forward_chain(vp_chain(_betas), _x0.expand(_n, 2, 3).float(), _t, generator=torch.Generator().manual_seed(21))
assert _x_t.shape == (_n, 2, 3) and _x_t.dtype == torch.float32, \
    f"x_t must have x0's shape ({_n}, 2, 3) and dtype float32, got {tuple(_x_t.shape)} {_x_t.dtype}"
_flat, _v = _x_t.double().reshape(_n, 6), 1 - _ab[_t].item()
assert ((_flat.mean(dim=0) - math.sqrt(_ab[_t]) * _x0.flatten()).abs() < 5 * math.sqrt(_v / _n)).all(), \
    "per-coordinate mean of x_t for a batch of (2, 3) inputs"
_cov = torch.cov(_flat.T)
assert ((_cov.diagonal() - _v).abs() < 5 * _v * math.sqrt(2 / (_n - 1))).all(), "per-coordinate variance of x_t"
assert ((_cov - torch.diag(_cov.diagonal())).abs() < 5 * _v * math.sqrt(1 / (_n - 1))).all(), \
    "the coordinates of one chain must get independent noise: draw noise of x's full shape"
# a chain with no closed form, against the moments of the recursion written out here (means and variances of C1)
_g = torch.Generator().manual_seed(22)
_chain = Chain(torch.cat([torch.ones(1), 0.7 + 0.6 * torch.rand(40, generator=_g)]),
               torch.cat([torch.zeros(1), 0.1 + 0.4 * torch.rand(40, generator=_g)]))
_m, _v = 1.0, 0.0
for _s in range(1, 41):
    _m, _v = _chain.a[_s].item() * _m, _chain.a[_s].item() ** 2 * _v + _chain.b[_s].item() ** 2
_x_t = forward_chain(_chain, torch.full((_n, 1), 0.7), 40, generator=torch.Generator().manual_seed(23))
assert abs(_x_t.mean().item() - 0.7 * _m) < 5 * math.sqrt(_v / _n), "random chain: mean of x_40"
assert abs(_x_t.var().item() - _v) < 5 * _v * math.sqrt(2 / (_n - 1)), "random chain: variance of x_40"
# generator=None: torch's global generator, so that torch.manual_seed makes the run reproducible
torch.manual_seed(24)
_first = forward_chain(_chain, torch.zeros(3, 2), 5)
torch.manual_seed(24)
assert torch.equal(_first, forward_chain(_chain, torch.zeros(3, 2), 5)), "generator=None must use the global generator"
assert not torch.equal(_first, forward_chain(_chain, torch.zeros(3, 2), 5)), "without a reseed the draws must differ"
# the smallest case: one chain of one coordinate, one step
_got = forward_chain(_chain, torch.tensor([2.0]), 1, generator=torch.Generator().manual_seed(25))
assert _got.shape == (1,) and _got.dtype == torch.float64 and torch.isfinite(_got).all(), "one chain, one step"
### END HIDDEN TESTS

# %% [markdown] id="part_c3"
# **C3 (2 points).** A Monte Carlo check needs an error bar derived from the sample size, not a tolerance tuned until
# the test passes. Lesson 1 estimates its error bars from the samples themselves, which is good enough for large $n$;
# here you derive them exactly, for every $n$ and for any distribution (the checks of this course also average numbers
# that are far from Gaussian: squared errors, products of two variables, pixels of real images). For $n$ i.i.d. draws
# with variance $V$ and kurtosis $\kappa = \mathbb{E}[(x-\mu)^4]/V^2$ ($\kappa = 3$ for a Gaussian, $1$ for a fair
# coin with values $\pm 1$), find the standard error (standard deviation) of the sample mean
# $\bar x = \frac1n\sum_i x_i$ and of the unbiased sample variance $s^2 = \frac{1}{n-1}\sum_i (x_i - \bar x)^2$, and
# return $k$ standard errors of each.
#
# Hint: $s^2 = \frac{1}{n(n-1)}\sum_{i<j}(x_i - x_j)^2$. Expand $\operatorname{Var}(s^2)$ as a double sum over pairs
# $\{i, j\}$ and $\{k, l\}$ and sort the terms by how many indices the two pairs share (none, one or two); only $V$
# and $\kappa$ remain. Give the exact expression, valid for every $n \ge 2$: the grader checks small $n$, where $n$
# and $n-1$ differ, with distributions of several kurtoses (by exact enumeration of discrete ones, and by Monte
# Carlo).
#
# **What your function must accept.** `var`: a number $V > 0$; `n`: an int $\ge 2$; `kurtosis`: a number
# $\kappa \ge 1$, keyword-only; `k`: a number $> 0$, keyword-only, default 5 (the course's five standard errors).
# Numbers may be ints or floats. Returns two Python floats.

# %% id="mc_tolerance" kind="solution"
def mc_tolerances(var: float, n: int, *, kurtosis: float, k: float = 5.0) -> tuple[float, float]:
    """k standard errors of the sample mean and of the unbiased sample variance of n i.i.d. draws.

    var: the variance V of one draw.  n: int >= 2.  kurtosis (keyword-only): E[(x - m)^4] / V^2 of one draw.
    k (keyword-only): how many standard errors.  Returns (tol_mean, tol_var) as Python floats.
    """
    ### BEGIN SOLUTION
    # Var(s^2) = V^2 (kappa / n - (n - 3) / (n (n - 1))); 2 V^2 / (n - 1) for Gaussian draws (kappa = 3)
    return k * math.sqrt(var / n), k * var * math.sqrt(kurtosis / n - (n - 3) / (n * (n - 1)))
    ### END SOLUTION


# %% id="mc_tolerance_tests" kind="tests" points=2
_tol_mean, _tol_var = mc_tolerances(0.3, 1000, kurtosis=3.0)
assert isinstance(_tol_mean, float) and isinstance(_tol_var, float), \
    f"return two Python floats, got {type(_tol_mean).__name__} and {type(_tol_var).__name__}"
assert _tol_mean > 0 and _tol_var > 0, f"tolerances must be positive, got {_tol_mean}, {_tol_var}"
_got = mc_tolerances(0.25, 100, kurtosis=3.0, k=2.0)[0]
assert abs(_got - 0.1) < 1e-12, f"2 standard errors of a mean: 2 sqrt(0.25 / 100) = 0.1, got {_got}"
assert abs(mc_tolerances(0.3, 1000, kurtosis=3.0, k=1.0)[0] * 5 - _tol_mean) < 1e-12, \
    "the default k = 5 must give 5 standard errors"
_got = mc_tolerances(4 * 0.3, 1000, kurtosis=3.0)[1]
assert abs(_got - 4 * _tol_var) < 1e-12, "the standard error of the sample variance is proportional to the variance " \
    f"itself (not to its square root): expected {4 * _tol_var:.6g} for 4 times the variance, got {_got:.6g}"
# By hand: n fair coin flips with values +-1 (V = 1, kurtosis 1). For n = 2, s^2 = (x_1 - x_2)^2 / 2 is 0 or 2, each
# with probability 1/2: standard deviation 1. For n = 3, s^2 is 0 (all equal, probability 1/4) or 4/3 (two against
# one, probability 3/4): mean 1, second moment 4/3, standard deviation sqrt(1/3).
for _n, _want in ((2, 1.0), (3, math.sqrt(1 / 3))):
    _got = mc_tolerances(1.0, _n, kurtosis=1.0, k=1.0)[1]
    assert abs(_got - _want) < 1e-12, \
        f"n = {_n} coin flips: the standard error of s^2 is {_want:.6f} (see the comment above), got {_got:.6f}"
print("Part C3: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# 1) Exact, by enumerating every outcome of n draws from a discrete distribution (3^n outcomes): the mean and the
# variance of s^2 computed from the probabilities, kurtosis from the distribution's moments.
import itertools

for _values, _probs in (([-1.0, 0.0, 2.0], [0.3, 0.5, 0.2]), ([0.0, 1.0, 10.0], [0.6, 0.35, 0.05]),
                        ([-1.0, 1.0, 3.0], [0.25, 0.5, 0.25])):
    _m = sum(p * x for p, x in zip(_probs, _values, strict=True))
    _v = sum(p * (x - _m) ** 2 for p, x in zip(_probs, _values, strict=True))
    _kappa = sum(p * (x - _m) ** 4 for p, x in zip(_probs, _values, strict=True)) / _v**2
    for _n in (2, 3, 4, 6):
        _e1 = _e2 = _es2 = 0.0
        for _outcome in itertools.product(range(3), repeat=_n):
            _p = math.prod(_probs[i] for i in _outcome)
            _x = [_values[i] for i in _outcome]
            _mean = sum(_x) / _n
            _s2 = sum((xi - _mean) ** 2 for xi in _x) / (_n - 1)
            _e1, _e2, _es2 = _e1 + _p * _s2, _e2 + _p * _s2**2, _es2 + _p * (_mean - _m) ** 2
        _tm, _tv = mc_tolerances(_v, _n, kurtosis=_kappa, k=1.0)
        assert abs(_tm - math.sqrt(_es2)) < 1e-9 * _tm, f"standard error of the mean, kurtosis {_kappa:.3f}, n = {_n}"
        assert abs(_tv - math.sqrt(_e2 - _e1**2)) < 1e-7 * _tv, \
            f"standard error of s^2 for draws of kurtosis {_kappa:.3f}, n = {_n}: {math.sqrt(_e2 - _e1**2):.6g}"
# 2) Gaussian draws: Var(s^2) = 2 V^2 / (n - 1) ((n - 1) s^2 / V is chi^2 with n - 1 degrees of freedom), with k
for _v, _n, _k in ((2.0, 10_000, 3.0), (0.5, 2, 1.0), (1.5, 5, 2.0)):
    _tm, _tv = mc_tolerances(_v, _n, kurtosis=3.0, k=_k)
    assert abs(_tm - _k * math.sqrt(_v / _n)) < 1e-12 * _tm, f"standard error of the sample mean, n = {_n}"
    assert abs(_tv - _k * _v * math.sqrt(2 / (_n - 1))) < 1e-12 * _tv, f"Gaussian draws, n = {_n}: 2 V^2 / (n - 1)"
# 3) Monte Carlo with continuous draws: R repetitions of an n-sample experiment. The variance of the R values of s^2
# estimates Var(s^2); its own standard error, sqrt((mu_4 - Var^2) / R), is estimated from the same R values.
_R = 200_000
_g = torch.Generator().manual_seed(6)
_laplace = torch.rand(_R, 5, generator=_g).log() - torch.rand(_R, 5, generator=_g).log()  # difference of Exp(1)s
for _name, _draws, _v, _kappa, _n in (("uniform(-1, 1)", 2 * torch.rand(_R, 3, generator=_g) - 1, 1 / 3, 1.8, 3),
                                      ("Laplace(0, 1)", _laplace, 2.0, 6.0, 5)):
    _s2 = _draws.var(dim=1)
    _var_s2 = _s2.var().item()
    _se = math.sqrt(((_s2 - _s2.mean()) ** 4).mean().item() - _var_s2**2) / math.sqrt(_R)
    _tv = mc_tolerances(_v, _n, kurtosis=_kappa, k=1.0)[1]
    assert abs(_var_s2 - _tv**2) < 5 * _se, \
        f"{_name}, n = {_n}: Var(s^2) = {_var_s2:.4f} +- {_se:.4f} by Monte Carlo, yours {_tv**2:.4f}"
# 4) numbers given as ints, and the default k = 5
_tm, _tv = mc_tolerances(2, 10, kurtosis=3)
assert isinstance(_tm, float) and isinstance(_tv, float), "ints in, floats out"
assert abs(_tm - 5 * math.sqrt(0.2)) < 1e-12 and abs(_tv - 5 * 2 * math.sqrt(2 / 9)) < 1e-12, "default k = 5"
### END HIDDEN TESTS

# %% [markdown] id="part_c_demo"
# Put C1, C2 and C3 together (nothing to write here): simulate $n$ chains of DDPM's chain and of the VE chain from the
# same $x_0$ and compare their moments with the ones your recursion propagates, within your error bars (the chains
# are Gaussian: kurtosis 3).

# %% id="c_demo"
_n, _x0_value = 10_000, 0.8
for _name, _chain in (("DDPM", vp_chain(linear_betas(1000))), ("VE", ve_chain(geometric_sigmas(1000)))):
    _mean, _var = propagate_moments(_chain, mean0=_x0_value)
    for _t in (1, 10, 100, 1000):
        _x_t = forward_chain(_chain, torch.full((_n,), _x0_value), _t, generator=torch.Generator().manual_seed(_t))
        _tol_m, _tol_v = mc_tolerances(_var[_t].item(), _n, kurtosis=3.0)
        print(f"{_name:4s} t={_t:4d}  mean {_x_t.mean():+.4f} vs {_mean[_t]:+.4f} (tol {_tol_m:.4f})   "
              f"var {_x_t.var():.5g} vs {_var[_t]:.5g} (tol {_tol_v:.2g})")

# %% [markdown] id="part_c4"
# **C4 (3 points, graded by hand).** Prove by induction on $t$ that composing the one-step kernels gives
#
# $$q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{\bar\alpha_t}\,\mathbf{x}_0,\
# (1-\bar\alpha_t)\mathbf{I}\big).$$
#
# State the base case, the induction hypothesis, and say where you use the Markov property and the independence of
# the noise draws. Write in the cell below (Markdown, LaTeX between dollar signs).

# %% [markdown] id="kernel_proof" kind="manual" points=3
# ### BEGIN SOLUTION
# **Claim.** For every $t \ge 0$, $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,
# (1-\bar\alpha_t)\mathbf{I})$, with $\bar\alpha_0 = 1$.
#
# **Base case.** $t = 0$: $\bar\alpha_0 = 1$ and the distribution is the point mass at $\mathbf{x}_0$ (zero
# variance). (Equivalently $t = 1$: $\bar\alpha_1 = 1-\beta_1$, and $\mathcal{N}(\sqrt{1-\beta_1}\,\mathbf{x}_0,
# \beta_1\mathbf{I})$ is the one-step kernel itself.)
#
# **Induction step.** Assume the claim for $t-1$. Then $\mathbf{x}_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\mathbf{x}_0 +
# \sqrt{1-\bar\alpha_{t-1}}\,\boldsymbol\epsilon'$ with $\boldsymbol\epsilon' \sim \mathcal{N}(\mathbf{0},\mathbf{I})$.
# The forward process is Markov, so given $\mathbf{x}_{t-1}$ the next state depends on nothing earlier:
# $\mathbf{x}_t = \sqrt{\alpha_t}\,\mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol\epsilon$ with
# $\boldsymbol\epsilon \sim \mathcal{N}(\mathbf{0},\mathbf{I})$ drawn independently of $\boldsymbol\epsilon'$.
# Substituting,
#
# $$\mathbf{x}_t = \sqrt{\alpha_t\bar\alpha_{t-1}}\,\mathbf{x}_0 + \sqrt{\alpha_t(1-\bar\alpha_{t-1})}\,
# \boldsymbol\epsilon' + \sqrt{\beta_t}\,\boldsymbol\epsilon .$$
#
# The first coefficient is $\sqrt{\bar\alpha_t}$ because $\alpha_t\bar\alpha_{t-1} = \bar\alpha_t$. The last two
# terms are independent zero-mean Gaussians, so their sum is a zero-mean Gaussian whose covariance is the sum of the
# covariances: $\big(\alpha_t - \alpha_t\bar\alpha_{t-1} + 1 - \alpha_t\big)\mathbf{I} = (1-\bar\alpha_t)\mathbf{I}$.
# Hence $\mathbf{x}_t \mid \mathbf{x}_0 \sim \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,
# (1-\bar\alpha_t)\mathbf{I})$, the claim for $t$. (Written as an integral,
# $q(\mathbf{x}_t\mid\mathbf{x}_0) = \int q(\mathbf{x}_t\mid\mathbf{x}_{t-1})\,q(\mathbf{x}_{t-1}\mid\mathbf{x}_0)\,
# d\mathbf{x}_{t-1}$, the same step is a convolution of two Gaussians and gives the same answer.)
#
# *Marking:* 1 base case; 1 induction step with the Markov property / independent noise made explicit;
# 1 mean and variance algebra ($\alpha_t\bar\alpha_{t-1} = \bar\alpha_t$, $\alpha_t(1-\bar\alpha_{t-1}) + \beta_t =
# 1-\bar\alpha_t$).
# ### END SOLUTION

# %% [markdown] id="part_d"
# ## Part D — the posterior of a jump back, $q(\mathbf{x}_s \mid \mathbf{x}_t, \mathbf{x}_0)$ (3 points)
#
# Lesson 1 derives the posterior of one step back of DDPM's chain, $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t,
# \mathbf{x}_0)$, by completing the square. A sampler that skips steps (one that runs fewer than $T$ steps, like the
# respaced and DDIM samplers of later lessons) jumps from $\mathbf{x}_t$ straight to $\mathbf{x}_s$ with $s < t - 1$,
# and needs the posterior of that jump; a score-based model needs it for its own (VE) chain. By Bayes' rule and the
# Markov property, for any Gaussian chain,
#
# $$q(\mathbf{x}_s \mid \mathbf{x}_t, \mathbf{x}_0) \ \propto\
# \underbrace{q(\mathbf{x}_t \mid \mathbf{x}_s)}_{\text{jump from } s \text{ to } t}\;
# \underbrace{q(\mathbf{x}_s \mid \mathbf{x}_0)}_{\text{kernel at } s}
# = \mathcal{N}\big(\mathbf{x}_s;\ \tilde{\boldsymbol\mu}_{s,t}(\mathbf{x}_t, \mathbf{x}_0),\
# \tilde v_{s,t}\mathbf{I}\big), \qquad 0 \le s < t .$$
#
# The jump is part B's $\mathcal{N}(c\,\mathbf{x}_s, w\mathbf{I})$. Complete the square in $\mathbf{x}_s$ (the
# precisions of the two factors add up; the mean is the precision-weighted combination), and write
# $\tilde{\boldsymbol\mu}_{s,t}$ and $\tilde v_{s,t}$ with $m_s, v_s, m_t, v_t$ only. Two checks on paper: for DDPM's
# chain and $s = t - 1$ your formulas must reduce to the lesson's $\tilde{\boldsymbol\mu}_t$ and $\tilde\beta_t$, and
# for $s = 0$ they must give back $\mathbf{x}_0$ with variance $0$. Your answer is checked against Bayes' rule
# evaluated numerically on a fine grid, and against the joint Gaussian law of $(\mathbf{x}_s, \mathbf{x}_t)$ built one
# forward step at a time, for DDPM's chain, the VE chain and chains with no closed form.
#
# **What your function must accept.** `kernel`: a `Kernel` of length $T+1 \ge 2$. `x_t` and `x0`: the same shape
# `(B, ...)`, any batch shape, float32 or float64; the mean has that shape and dtype. `t`: a Python int in $1..T$;
# `s`: a Python int in $0..t-1$, keyword-only (the whole batch jumps together). The variance is one number for all
# coordinates: return it as a 0-d tensor.

# %% id="posterior" kind="solution"
def q_posterior(kernel: Kernel, x_t: Tensor, t: int, *, x0: Tensor, s: int) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_s | x_t, x0) for 0 <= s < t <= T, for the chain whose kernel is `kernel`.

    kernel: m, v (T+1,).  x_t: (B, ...) float32 or float64.  t: int in 1..T.  Keyword-only: x0 (B, ...), the shape
    of x_t; s: int in 0..t-1, the step to jump back to.
    Returns (mean, var): mean (B, ...) with x_t's shape and dtype; var a 0-d tensor (the same for every coordinate).
    """
    ### BEGIN SOLUTION
    m_s, v_s, m_t, v_t = kernel.m[s], kernel.v[s], kernel.m[t], kernel.v[t]
    c = m_t / m_s  # the jump q(x_t | x_s) = N(c x_s, w I)
    w = v_t - c**2 * v_s
    var = v_s * w / v_t  # 1 / (1 / v_s + c^2 / w), with w + c^2 v_s = v_t
    mean = (w * m_s / v_t) * x0 + (c * v_s / v_t) * x_t
    return mean.to(x_t.dtype), var
    ### END SOLUTION


# %% id="posterior_tests" kind="tests" points=3
# 1) By hand, the VE chain with sigma^2 = 0, 1, 4, 9: from t = 3 back to s = 1, c = 1 and w = 9 - 1 = 8, so the
# precisions are 1/1 (the kernel at s) and 1/8 (the jump): variance 8/9, mean (8 x0 + 1 x_t) / 9.
_ve = ve_kernel(torch.tensor([0.0, 1.0, 2.0, 3.0]))
_x0, _x_t = torch.tensor([[0.5, -1.0], [0.2, 0.1], [3.0, 0.0]]), torch.tensor([[0.3, 0.4], [-2.0, 1.0], [1.0, 1.0]])
_mean, _var = q_posterior(_ve, _x_t, 3, x0=_x0, s=1)
assert isinstance(_mean, Tensor) and _mean.shape == (3, 2), f"the mean must have x0's shape (3, 2), got {_mean!r}"
assert torch.as_tensor(_var).numel() == 1, f"the variance is one number (the same for every coordinate), got {_var!r}"
assert abs(float(_var) - 8 / 9) < 1e-12, (
    f"VE chain, s = 1, t = 3: expected variance 8/9 = {8 / 9:.6f}, got {float(_var):.6f}")
assert torch.allclose(_mean, (8 * _x0 + _x_t) / 9), \
    f"VE chain, s = 1, t = 3: expected mean (8 x0 + x_t) / 9 = {((8 * _x0 + _x_t) / 9)[0].tolist()} " \
    f"in the first row, " \
    f"got {_mean[0].tolist()}"
# 2) Averaging the posterior over x_t ~ q(x_t | x0) must give back the kernel q(x_s | x0) = N(m_s x0, v_s). The mean
# is linear in x_t, mean = A x0 + C x_t (C read off from two values of x_t), so E[mean] = (A + C m_t) x0 and, by the
# law of total variance, C^2 v_t + var = v_s. DDPM's chain with betas 0.1, 0.2, 0.3 and the VE chain above, every s.
for _name, _kernel in (("DDPM", vp_kernel(torch.tensor([1.0, 0.9, 0.72, 0.504]))), ("VE", _ve)):
    for _s in (0, 1, 2):
        _m0, _v = q_posterior(_kernel, torch.tensor([0.0]), 3, x0=torch.tensor([0.5]), s=_s)
        _m1, _ = q_posterior(_kernel, torch.tensor([1.0]), 3, x0=torch.tensor([0.5]), s=_s)
        _c = _m1 - _m0
        _got, _want = (_m0 + _c * _kernel.m[3] * 0.5).item(), (_kernel.m[_s] * 0.5).item()
        assert abs(_got - _want) < 1e-12, f"{_name}, s = {_s}, t = 3: averaged over x_t, the posterior mean must be " \
            f"the mean of q(x_s | x0), m_s x0 = {_want:.6f}; yours averages to {_got:.6f}"
        _got, _want = (_c**2 * _kernel.v[3] + _v).item(), _kernel.v[_s].item()
        assert abs(_got - _want) < 1e-12, f"{_name}, s = {_s}, t = 3: averaged over x_t, the posterior must have " \
            f"the variance of q(x_s | x0), v_s = {_want:.6f}; yours gives {_got:.6f}"
_mean, _var = q_posterior(_ve, _x_t, 3, x0=_x0, s=0)
assert torch.allclose(_mean, _x0) and abs(float(_var)) < 1e-12, "at s = 0, x_s = x0 is known exactly"
_mean, _ = q_posterior(_ve, _x_t.float(), 3, x0=_x0.float(), s=1)
assert _mean.dtype == torch.float32, f"float32 x_t and x0 must give a float32 mean, got {_mean.dtype}"
print("Part D: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _log_normal(x, mean, var):
    return -0.5 * math.log(2 * math.pi * var) - (x - mean) ** 2 / (2 * var)


def _kernel_of_chain(a, b):
    m, v = [1.0], [0.0]
    for u in range(1, len(a)):
        m.append(a[u] * m[-1])
        v.append(a[u] ** 2 * v[-1] + b[u] ** 2)
    return m, v


def _bayes_on_grid(x0, x_t, t, a, b, m, v):
    # one step back: posterior ∝ q(x_t | x_{t-1}) q(x_{t-1} | x0), normalised on a grid. The posterior mean lies
    # between the two factors' centres, m_{t-1} x0 and x_t / a_t, and the posterior standard deviation is at least
    # sd / sqrt(2), sd the smaller of the two factors' widths: a grid over both centres +- 12 sd with spacing sd / 100
    # makes the Riemann sums exact to rounding.
    sd = math.sqrt(min(v[t - 1], b[t] ** 2 / a[t] ** 2))
    lo, hi = sorted((m[t - 1] * x0, x_t / a[t]))
    grid = torch.linspace(lo - 12 * sd, hi + 12 * sd, int((hi - lo + 24 * sd) / (sd / 100)) + 2)
    log_w = _log_normal(grid, m[t - 1] * x0, v[t - 1]) + _log_normal(x_t, a[t] * grid, b[t] ** 2)
    w = torch.softmax(log_w, dim=0)
    mean = (w * grid).sum().item()
    return mean, (w * (grid - mean) ** 2).sum().item()


def _joint_gaussian_posterior(x0, x_t, s, t, a, b):
    # Given x0, (x_s, x_t) is jointly Gaussian. Build its moments one forward step at a time:
    # mu_u = a_u mu_{u-1}, V_u = a_u^2 V_{u-1} + b_u^2, Cov(x_s, x_u) = a_u Cov(x_s, x_{u-1});
    # then condition: mean mu_s + C / V_t (x_t - mu_t), variance V_s - C^2 / V_t.
    mu, var = x0, 0.0
    for u in range(1, s + 1):
        mu, var = a[u] * mu, a[u] ** 2 * var + b[u] ** 2
    mu_s, v_s, mu_t, v_t, cov = mu, var, mu, var, var
    for u in range(s + 1, t + 1):
        mu_t, v_t, cov = a[u] * mu_t, a[u] ** 2 * v_t + b[u] ** 2, a[u] * cov
    return mu_s + cov / v_t * (x_t - mu_t), v_s - cov**2 / v_t


_g = torch.Generator().manual_seed(4)
_chains = [vp_chain(linear_betas(1000)), vp_chain(torch.cat([torch.zeros(1), torch.linspace(0.05, 0.3, 10)])),
           ve_chain(geometric_sigmas(200, 0.01, 50.0)),
           Chain(torch.cat([torch.ones(1), 0.6 + 0.8 * torch.rand(12, generator=_g)]),
                 torch.cat([torch.zeros(1), 0.05 + 0.5 * torch.rand(12, generator=_g)]))]
_pairs = torch.tensor([[0.7, -0.2], [-1.0, 1.5], [0.3, 0.25]])  # rows (x0, x_t)
for _chain in _chains:
    _a, _b = _chain.a.tolist(), _chain.b.tolist()
    _T = len(_a) - 1
    _m, _v = _kernel_of_chain(_a, _b)
    _kernel = Kernel(torch.tensor(_m), torch.tensor(_v))
    # 1) one step back (s = t - 1), against Bayes' rule on a grid
    for _t in sorted({2, 3, 10, _T // 2, _T}):
        _mean, _var = q_posterior(_kernel, _pairs[:, 1], _t, x0=_pairs[:, 0], s=_t - 1)
        for _i in range(len(_pairs)):
            _m_ref, _v_ref = _bayes_on_grid(_pairs[_i, 0].item(), _pairs[_i, 1].item(), _t, _a, _b, _m, _v)
            assert abs(float(_var) - _v_ref) < 1e-6 * _v_ref, f"posterior variance wrong at t = {_t} (T = {_T})"
            assert abs(_mean[_i].item() - _m_ref) < 1e-6 * (1 + abs(_m_ref)), \
                f"posterior mean wrong at t = {_t} (T = {_T})"
    # 2) jumps back over several steps, against the joint Gaussian built step by step
    for _s, _t in sorted({(0, 1), (0, 5), (1, 3), (3, 10), (_T // 4, _T // 2), (_T // 2, _T), (_T - 1, _T), (0, _T)}):
        _mean, _var = q_posterior(_kernel, _pairs[:, 1], _t, x0=_pairs[:, 0], s=_s)
        for _i in range(len(_pairs)):
            _m_ref, _v_ref = _joint_gaussian_posterior(_pairs[_i, 0].item(), _pairs[_i, 1].item(), _s, _t, _a, _b)
            assert abs(float(_var) - _v_ref) < 1e-9 * max(_v_ref, 1e-12), \
                f"posterior variance wrong for s = {_s}, t = {_t} (T = {_T}): {_v_ref:.6g}, got {float(_var):.6g}"
            assert abs(_mean[_i].item() - _m_ref) < 1e-9 * (1 + abs(_m_ref)), \
                f"posterior mean wrong for s = {_s}, t = {_t} (T = {_T})"
# shapes: images, vectors and one number; float32 in, float32 out
_kernel = vp_kernel(alpha_bar_from_betas(linear_betas(1000)))
for _shape in ((2, 3, 4, 4), (5, 7), (1, 1)):
    _x0, _x_t = torch.randn(_shape, generator=_g), torch.randn(_shape, generator=_g)
    _mean, _var = q_posterior(_kernel, _x_t, 600, x0=_x0, s=250)
    _m_ref, _v_ref = _joint_gaussian_posterior(1.0, 0.0, 250, 600, *(c.tolist() for c in vp_chain(linear_betas(1000))))
    _m_ref_t = _joint_gaussian_posterior(0.0, 1.0, 250, 600, *(c.tolist() for c in vp_chain(linear_betas(1000))))[0]
    assert _mean.shape == _shape and torch.as_tensor(_var).numel() == 1, f"shapes for x_t of shape {_shape}"
    assert torch.allclose(_mean, _m_ref * _x0 + _m_ref_t * _x_t, rtol=1e-9, atol=1e-12), f"mean for shape {_shape}"
    _mean32, _ = q_posterior(_kernel, _x_t.float(), 600, x0=_x0.float(), s=250)
    assert _mean32.dtype == torch.float32 and torch.allclose(_mean32.double(), _mean, rtol=1e-4, atol=1e-5), \
        f"float32 for shape {_shape}"
### END HIDDEN TESTS

# %% [markdown] id="part_e"
# ## Part E — $q(\mathbf{x}_T)$ against the prior (2 + 2 points)
#
# The schedule is chosen so that the last step forgets the data and the generator can start from a fixed prior: for
# DDPM, $\bar\alpha_T \to 0$ and $p(\mathbf{x}_T) = \mathcal{N}(\mathbf{0}, \mathbf{I})$; for the VE chain, the prior
# is $\mathcal{N}(\mathbf{0}, \sigma_T^2\mathbf{I})$. How close is close? The variational bound measures it with the
# prior term
#
# $$L_T = D_{\mathrm{KL}}\big(q(\mathbf{x}_T \mid \mathbf{x}_0)\ \big\|\ p(\mathbf{x}_T)\big).$$
#
# **E1 (2 points).** Implement the KL divergence between two multivariate Gaussians in $D$ dimensions,
# $D_{\mathrm{KL}}\big(\mathcal{N}(\boldsymbol\mu_1, \boldsymbol\Sigma_1)\,\|\,\mathcal{N}(\boldsymbol\mu_2,
# \boldsymbol\Sigma_2)\big)$, in nats, with full covariance matrices. Derive it from
# $\mathbb{E}_{\mathbf{x}\sim\mathcal{N}(\boldsymbol\mu_1, \boldsymbol\Sigma_1)}[\log
# \mathcal{N}(\mathbf{x};\boldsymbol\mu_1,\boldsymbol\Sigma_1) - \log\mathcal{N}(\mathbf{x};\boldsymbol\mu_2,
# \boldsymbol\Sigma_2)]$; the one identity you need is
# $\mathbb{E}[\mathbf{y}^\top \mathbf{A}\,\mathbf{y}] = \operatorname{tr}(\mathbf{A}\,\mathrm{Cov}\,\mathbf{y}) +
# \mathbb{E}[\mathbf{y}]^\top\mathbf{A}\,\mathbb{E}[\mathbf{y}]$.
# Note the order: the first Gaussian is the one the expectation is taken under. (The isotropic case, where every
# coordinate is a separate one-dimensional KL, is what DDPM's bound uses; correlated covariances appear as soon as
# the data have them, for example the Gaussian data of problem set 2 with a full covariance.) `torch.linalg`
# (`solve`, `cholesky`, `slogdet`) has what you need; avoid forming inverses explicitly.
#
# **What your function must accept.** Means of shape `(..., D)` and covariances of shape `(..., D, D)` (symmetric
# positive definite), $D \ge 1$, whose leading (batch) dimensions broadcast against each other, for example one
# covariance `(D, D)` shared by a batch of means `(B, D)`. Returns the KL with the broadcast batch shape (a 0-d
# tensor when there is none), in the inputs' dtype (float32 or float64).

# %% id="gaussian_kl" kind="solution"
def gaussian_kl(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> Tensor:
    """KL(N(mean1, cov1) || N(mean2, cov2)) in nats; means (..., D), covariances (..., D, D), batch dims broadcast."""
    ### BEGIN SOLUTION
    D = mean1.shape[-1]
    batch = torch.broadcast_shapes(mean1.shape[:-1], mean2.shape[:-1], cov1.shape[:-2], cov2.shape[:-2])
    cov1, cov2 = cov1.expand(*batch, D, D), cov2.expand(*batch, D, D)
    diff = (mean2 - mean1).expand(*batch, D).unsqueeze(-1)  # (..., D, 1)
    trace = torch.linalg.solve(cov2, cov1).diagonal(dim1=-2, dim2=-1).sum(dim=-1)  # tr(cov2^{-1} cov1)
    mahalanobis = (diff * torch.linalg.solve(cov2, diff)).sum(dim=(-2, -1))
    log_det_ratio = torch.linalg.slogdet(cov2)[1] - torch.linalg.slogdet(cov1)[1]
    return 0.5 * (trace + mahalanobis - D + log_det_ratio)
    ### END SOLUTION


# %% id="gaussian_kl_tests" kind="tests" points=2
def _check_kl(args, expected, what, rtol=1e-9):
    got = gaussian_kl(*(torch.as_tensor(a, dtype=torch.float64) for a in args))
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert isinstance(got, Tensor) and got.shape == expected.shape, \
        f"{what}: expected shape {tuple(expected.shape)}, got {got!r}"
    assert torch.allclose(got, expected, rtol=rtol, atol=1e-12), (
        f"{what}: expected {expected.tolist()}, got {got.tolist()}")


_m, _S = torch.tensor([0.5, -1.0]), torch.tensor([[1.0, 0.3], [0.3, 0.5]])
_check_kl((_m, _S, _m, _S), 0.0, "the KL of a Gaussian to itself")
# By hand in two dimensions, correlated: N(0, [[1, 0.5], [0.5, 1]]) against N(0, I). The trace is 2, the determinant
# 0.75: KL = (2 - 2 - ln 0.75) / 2. Coordinate by coordinate (ignoring the correlation) it would be 0.
_check_kl((torch.zeros(2), [[1.0, 0.5], [0.5, 1.0]], torch.zeros(2), torch.eye(2)), -0.5 * math.log(0.75),
          "KL(N(0, [[1, .5], [.5, 1]]) || N(0, I))")
# By hand with different means and covariances: N((1, 0), diag(0.5, 2)) against N(0, diag(2, 0.5)):
# tr(cov2^{-1} cov1) = 0.25 + 4, the mean term (1, 0) cov2^{-1} (1, 0)^T = 0.5, both determinants 1: KL = 1.375.
_check_kl(([1.0, 0.0], torch.diag(torch.tensor([0.5, 2.0])), torch.zeros(2), torch.diag(torch.tensor([2.0, 0.5]))),
          1.375, "KL(N((1, 0), diag(.5, 2)) || N(0, diag(2, .5)))")
# D = 1 is the familiar one-dimensional KL: check it by quadrature of the definition,
# E_{x ~ N(0.5, 0.25)}[log N(x; 0.5, 0.25) - log N(x; -0.5, 2)] (trapezoidal rule over the mean +- 10 std)
_x = torch.linspace(0.5 - 10 * 0.5, 0.5 + 10 * 0.5, 20_001)
_log_p1 = -0.5 * torch.log(2 * math.pi * torch.tensor(0.25)) - (_x - 0.5) ** 2 / 0.5
_log_p2 = -0.5 * torch.log(2 * math.pi * torch.tensor(2.0)) - (_x + 0.5) ** 2 / 4
_check_kl(([0.5], [[0.25]], [-0.5], [[2.0]]), torch.trapezoid(_log_p1.exp() * (_log_p1 - _log_p2), _x).item(),
          "D = 1: KL(N(0.5, 0.25) || N(-0.5, 2)) by quadrature", rtol=1e-8)
# batch dimensions broadcast: 4 means against 5 means (as (4, 1, D) and (5, D)), one covariance each side
_got = gaussian_kl(torch.zeros(4, 1, 2), torch.eye(2), torch.ones(5, 2), 2 * torch.eye(2))
assert _got.shape == (4, 5), f"means (4, 1, 2) and (5, 2), covariances (2, 2): expected shape (4, 5), got {_got.shape}"
_got = gaussian_kl(torch.zeros(3, 2).float(), torch.eye(2).float(), torch.ones(2).float(), torch.eye(2).float())
assert _got.dtype == torch.float32 and torch.allclose(_got.double(), torch.ones(3)), \
    f"float32 inputs: expected float32 [1, 1, 1], got {_got}"
print("Part E1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _log_normal(x, mean, var):
    return -0.5 * math.log(2 * math.pi * var) - (x - mean) ** 2 / (2 * var)


def _kl_by_quadrature(m1, v1, m2, v2):
    # E_{x ~ N(m1, v1)} [log N(x; m1, v1) - log N(x; m2, v2)] by the trapezoidal rule over m1 +- 15 std;
    # for a smooth integrand that decays like a Gaussian the rule is exact to rounding at this spacing
    s1 = math.sqrt(v1)
    x = torch.linspace(m1 - 15 * s1, m1 + 15 * s1, 100_001)
    log_p1, log_p2 = _log_normal(x, m1, v1), _log_normal(x, m2, v2)
    return torch.trapezoid(log_p1.exp() * (log_p1 - log_p2), x).item()


# 1) D = 1, a batch of six cases (shapes (6, 1) and (6, 1, 1)), against quadrature
_cases = [(1.0, 2.0, 0.0, 1.0), (0.0, 0.5, 1.0, 3.0), (2.0, 0.1, -1.0, 0.7), (-0.3, 4.0, 0.2, 0.25),
          (0.0, 1.0, 0.0, 1.0), (0.5, 1 - 4e-5, 0.0, 1.0)]
_kl = gaussian_kl(torch.tensor([[c[0]] for c in _cases]), torch.tensor([[[c[1]]] for c in _cases]),
                  torch.tensor([[c[2]] for c in _cases]), torch.tensor([[[c[3]]] for c in _cases]))
assert _kl.shape == (6,), f"six one-dimensional cases: expected shape (6,), got {tuple(_kl.shape)}"
for _c, _k in zip(_cases, _kl.tolist(), strict=True):
    _ref = _kl_by_quadrature(*_c)
    assert abs(_k - _ref) < 1e-9 * max(1.0, abs(_ref)) + 1e-13, f"KL{_c} = {_ref:.6g}, got {_k:.6g}"
# 2) diagonal covariances: the sum of the coordinates' one-dimensional KLs
_diag = gaussian_kl(torch.tensor([1.0, 0.0, 2.0]), torch.diag(torch.tensor([2.0, 0.5, 0.1])),
                    torch.tensor([0.0, 1.0, -1.0]), torch.diag(torch.tensor([1.0, 3.0, 0.7])))
_ref = sum(_kl_by_quadrature(*c) for c in _cases[:3])
assert _diag.shape == () and abs(_diag.item() - _ref) < 1e-9 * _ref, f"diagonal covariances: {_ref:.8g}, got {_diag}"


# 3) correlated two-dimensional Gaussians, against a two-dimensional trapezoidal rule in the coordinates of the first
# Gaussian, x = mu1 + L1 u with L1 its Cholesky factor written out by hand (u on +-9 in each direction, where the
# standard normal weight of u is below 1e-17); log N(x; mu2, S2) with the 2 x 2 inverse and determinant by hand.
def _kl_2d(mu1, S1, mu2, S2):
    l11 = math.sqrt(S1[0][0])
    l21 = S1[1][0] / l11
    l22 = math.sqrt(S1[1][1] - l21**2)
    u = torch.linspace(-9, 9, 1201)
    u1, u2 = torch.meshgrid(u, u, indexing="ij")
    x1, x2 = mu1[0] + l11 * u1, mu1[1] + l21 * u1 + l22 * u2
    det2 = S2[0][0] * S2[1][1] - S2[0][1] ** 2
    d1, d2 = x1 - mu2[0], x2 - mu2[1]
    quad2 = (S2[1][1] * d1**2 - 2 * S2[0][1] * d1 * d2 + S2[0][0] * d2**2) / det2
    log_p1 = -math.log(2 * math.pi) - math.log(l11 * l22) - 0.5 * (u1**2 + u2**2)
    log_p2 = -math.log(2 * math.pi) - 0.5 * math.log(det2) - 0.5 * quad2
    weight = torch.exp(-0.5 * (u1**2 + u2**2)) / (2 * math.pi)
    return torch.trapezoid(torch.trapezoid(weight * (log_p1 - log_p2), u, dim=1), u).item()


_pairs = [((0.3, -0.2), ((1.0, 0.6), (0.6, 0.8)), (0.0, 0.5), ((2.0, -0.4), (-0.4, 0.5))),
          ((1.0, 1.0), ((0.2, 0.15), (0.15, 0.3)), (-1.0, 0.0), ((1.0, 0.9), (0.9, 1.0))),
          ((0.0, 0.0), ((3.0, -1.0), (-1.0, 1.0)), (0.5, -0.5), ((0.5, 0.0), (0.0, 4.0)))]
_kl = gaussian_kl(*(torch.tensor([p[j] for p in _pairs]) for j in range(4)))
assert _kl.shape == (3,), f"three correlated cases: expected shape (3,), got {tuple(_kl.shape)}"
for _p, _k in zip(_pairs, _kl.tolist(), strict=True):
    _ref = _kl_2d(*_p)
    assert abs(_k - _ref) < 1e-8 * max(1.0, _ref), f"KL of correlated Gaussians {_p}: {_ref:.8g}, got {_k:.8g}"
# 4) KL is invariant under an invertible affine map of both Gaussians, x -> A x + c
_g = torch.Generator().manual_seed(5)
_A, _c = torch.randn(3, 3, generator=_g) + 2 * torch.eye(3), torch.randn(3, generator=_g)
_R1, _R2 = torch.randn(3, 3, generator=_g), torch.randn(3, 3, generator=_g)
_S1, _S2 = _R1 @ _R1.T + 0.5 * torch.eye(3), _R2 @ _R2.T + 0.5 * torch.eye(3)
_m1, _m2 = torch.randn(3, generator=_g), torch.randn(3, generator=_g)
_before = gaussian_kl(_m1, _S1, _m2, _S2)
_after = gaussian_kl(_A @ _m1 + _c, _A @ _S1 @ _A.T, _A @ _m2 + _c, _A @ _S2 @ _A.T)
assert _before.shape == () and abs(_before.item() - _after.item()) < 1e-9 * _before.item(), "affine invariance"
assert _before > 0, "a KL divergence between different Gaussians is positive"
# 5) broadcasting: a (D, D) covariance shared by a batch of means, batched covariances against one mean, and odd shapes
_means = torch.randn(2, 5, 3, generator=_g)
_got = gaussian_kl(_means, _S1, _m2, _S2)
_ref = torch.stack([torch.stack([gaussian_kl(_means[i, j], _S1, _m2, _S2) for j in range(5)]) for i in range(2)])
assert _got.shape == (2, 5) and torch.allclose(_got, _ref, rtol=1e-10), "means (2, 5, 3) with shared covariances"
_covs = torch.stack([_S1, _S2, _S1 + _S2])
_got = gaussian_kl(_m1, _covs, _m2, _S2[None])
assert _got.shape == (3,) and torch.allclose(_got, torch.stack([gaussian_kl(_m1, c, _m2, _S2) for c in _covs])), \
    "covariances (3, 3, 3) against one mean"
# 6) float32 in, float32 out, as accurate as float32 allows
_got = gaussian_kl(_m1.float(), _S1.float(), _m2.float(), _S2.float())
assert _got.dtype == torch.float32 and abs(_got.item() - _before.item()) < 1e-4 * _before.item(), "float32"
### END HIDDEN TESTS

# %% [markdown] id="part_e2"
# **E2 (2 points).** Compute $L_T$ for a batch of data points in **bits per dimension**: the KL summed over the
# coordinates of $\mathbf{x}_0$, divided by the number of coordinates $D$ and by $\ln 2$ (so that it is in bits).
# $q(\mathbf{x}_T \mid \mathbf{x}_0) = \mathcal{N}(m_T\,\mathbf{x}_0, v_T\mathbf{I})$ comes from the chain's kernel;
# the prior is $\mathcal{N}(\mathbf{0}, \texttt{prior\_var}\,\mathbf{I})$. For DDPM's linear schedule and data in
# $[-1, 1]$ the DDPM paper reports $L_T \approx 10^{-5}$ bits/dim: the prior matches to within a rounding error, and
# $L_T$ can be dropped from training. (With E1 the covariances are isotropic, so one coordinate at a time is enough:
# you may use E1 with $D = 1$ or the formula it gives.)
#
# Lesson 1 shows why this must be computed in float64: with DDPM's cosine schedule, $1 - \bar\alpha_T$ rounds to 1 in
# float32 and $L_T$ comes out 0, or negative. Data often arrive in float32; compute in float64 whatever their dtype.
#
# **What your function must accept.** `kernel`: a `Kernel` (float64; its last entries are $m_T$ and $v_T$). `x0`: a
# batch `(B, ...)`, vectors `(B, D)` or images `(B, C, H, W)`, float32 or float64. `prior_var`: a number $> 0$,
# keyword-only, default 1 (DDPM's $\mathcal{N}(\mathbf{0}, \mathbf{I})$). Returns `(B,)` in float64.

# %% id="prior_bpd" kind="solution"
def prior_bits_per_dim(kernel: Kernel, x0: Tensor, *, prior_var: float = 1.0) -> Tensor:
    """L_T = KL(N(m_T x0, v_T I) || N(0, prior_var I)) in bits per dimension, one value per example.

    kernel: m, v (T+1,), of which m[T], v[T] are used.  x0: (B, ...) float32 or float64.  prior_var (keyword-only).
    Returns (B,) float64.
    """
    ### BEGIN SOLUTION
    x = x0.double().flatten(1)  # (B, D)
    m_T, v_T = kernel.m[-1].double(), kernel.v[-1].double()
    # the one-dimensional KL of E1, coordinate by coordinate, in nats
    kl = 0.5 * (math.log(prior_var) - torch.log(v_T) + (v_T + (m_T * x) ** 2) / prior_var - 1)
    return kl.mean(dim=1) / math.log(2)
    ### END SOLUTION


# %% id="prior_bpd_tests" kind="tests" points=2
_x0 = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
_bpd = prior_bits_per_dim(vp_kernel(torch.tensor([1.0, 0.3, 0.01])), _x0)
assert isinstance(_bpd, Tensor) and _bpd.shape == (3,), f"one value per example: expected shape (3,), got {_bpd!r}"
assert _bpd.dtype == torch.float64, f"L_T is returned in float64, got {_bpd.dtype}"
assert (_bpd > 0).all(), f"L_T is a KL divergence: positive unless x_T is exactly the prior, got {_bpd.tolist()}"
_got = prior_bits_per_dim(vp_kernel(torch.tensor([1.0, 0.5, 0.0])), _x0)
assert _got.abs().max() < 1e-12, f"alpha_bar_T = 0 makes q(x_T | x0) = N(0, I): L_T = 0, got {_got.tolist()}"
# By hand, DDPM with alpha_bar_T = 0.75: each coordinate is N(sqrt(0.75) x0, 0.25) and its KL to N(0, 1) is
# (ln 4 - 0.75 + 0.75 x0^2) / 2 nats: ln 2 nats = 1 bit for x0 = +-1, ln 2 - 0.375 nats for x0 = 0.
_x0 = torch.stack([torch.tensor([[1.0, -1.0], [-1.0, 1.0]]), torch.zeros(2, 2)])[:, None]  # (2, 1, 2, 2)
_bpd = prior_bits_per_dim(vp_kernel(torch.tensor([1.0, 0.75])), _x0)
_want = torch.tensor([1.0, 1 - 0.375 / math.log(2)])
assert torch.allclose(_bpd, _want), f"alpha_bar_T = 0.75: expected {_want.tolist()} bits/dim, got {_bpd.tolist()}"
# By hand, the VE chain with sigma_T = 2 and its own prior N(0, 4 I): the variances agree, the KL per coordinate is
# x0^2 / (2 * 4) nats. Against N(0, I) instead (the default prior_var = 1) it is (4 - 1 - ln 4 + x0^2) / 2 nats.
_x0 = torch.tensor([[2.0, 0.0], [1.0, -1.0], [0.0, 0.0]], dtype=torch.float32)
_ve = ve_kernel(torch.tensor([0.0, 1.0, 2.0]))
_want = torch.tensor([0.25, 0.125, 0.0]) / math.log(2)
_bpd = prior_bits_per_dim(_ve, _x0, prior_var=4.0)
assert _bpd.dtype == torch.float64, (
    f"float32 data: L_T must still be computed and returned in float64, got {_bpd.dtype}")
assert torch.allclose(_bpd, _want), f"VE, sigma_T = 2, prior N(0, 4 I): expected {_want.tolist()}, got {_bpd.tolist()}"
_want = (torch.tensor([1.0, 0.5, 0.0]) + (3 - math.log(4)) / 2) / math.log(2)
_bpd = prior_bits_per_dim(_ve, _x0)
assert torch.allclose(_bpd, _want), (
    f"VE, sigma_T = 2, default prior N(0, I): expected {_want.tolist()}, got {_bpd.tolist()}")
# float32 data and DDPM's alpha_bar_T = 1e-9, below float32's resolution next to 1 (lesson 1): per coordinate
# KL = a x0^2 / 2 + a^2 / 4 + ... = 5e-10 nats for x0 = 1, which float32 arithmetic rounds to 0
_bpd = prior_bits_per_dim(vp_kernel(torch.tensor([1.0, 1e-9])), torch.ones(1, 4, dtype=torch.float32))
_want = (1e-9 / 2 + 1e-18 / 4) / math.log(2)
assert abs(_bpd.item() - _want) < 1e-6 * _want, \
    f"alpha_bar_T = 1e-9, float32 x0 = 1: expected {_want:.6g} bits/dim (compute in float64), got {_bpd.item():.6g}"
print("Part E2: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# DDPM's setting: linear schedule (alpha_bar_T from an independent product), 8-bit images scaled to [-1, 1].
_betas = linear_betas(1000).tolist()
_ab_T = math.exp(math.fsum(math.log1p(-b) for b in _betas[1:]))
_kernel = Kernel(torch.tensor([1.0, math.sqrt(_ab_T)]), torch.tensor([0.0, 1 - _ab_T]))
_x0 = torch.randint(0, 256, (8, 3, 8, 8), generator=torch.Generator().manual_seed(5)) / 127.5 - 1
_bpd = prior_bits_per_dim(_kernel, _x0)
assert _bpd.shape == (8,) and _bpd.dtype == torch.float64
# series in a = alpha_bar_T: KL per coordinate = a x0^2 / 2 + a^2 / 4 + a^3 / 6 + O(a^4) (a^4 ~ 3e-18 is negligible)
_series = (_ab_T * _x0**2 / 2 + _ab_T**2 / 4 + _ab_T**3 / 6).flatten(1).mean(dim=1) / math.log(2)
assert torch.allclose(_bpd, _series, rtol=1e-6, atol=0), "L_T in bits/dim for the linear schedule"
assert ((5e-6 < _bpd) & (_bpd < 2e-5)).all(), "DDPM's order of magnitude, ~1e-5 bits/dim"
# the same in float32: computed in float64 all the same
assert torch.allclose(prior_bits_per_dim(_kernel, _x0.float()), _series, rtol=1e-6, atol=0), "float32 x0, linear"
# the cosine schedule's alpha_bar_T ~ 2.4e-9 (betas clipped at 0.999; below float32's resolution next to 1) with
# float32 data: L_T is still a * x0^2 / 2 + a^2 / 4 per coordinate to relative 1e-6
_steps = torch.arange(1001) / 1000
_f = torch.cos((_steps + 0.008) / 1.008 * math.pi / 2) ** 2
_a = math.prod(1 - min(1 - _f[t].item() / _f[t - 1].item(), 0.999) for t in range(1, 1001))
assert 2e-9 < _a < 3e-9
_kernel = Kernel(torch.tensor([1.0, math.sqrt(_a)]), torch.tensor([0.0, 1 - _a]))
_x0 = torch.rand(4, 10, generator=torch.Generator().manual_seed(6)) + 0.5
_series = (_a * _x0**2 / 2 + _a**2 / 4).mean(dim=1) / math.log(2)
assert torch.allclose(prior_bits_per_dim(_kernel, _x0.float()), _series, rtol=1e-6, atol=0), \
    "cosine schedule, float32 x0: compute in float64"


# general kernels and priors, against quadrature of the KL integral (coordinates averaged, nats -> bits)
def _log_normal(x, mean, var):
    return -0.5 * math.log(2 * math.pi * var) - (x - mean) ** 2 / (2 * var)


def _kl_by_quadrature(m1, v1, m2, v2):
    s1 = math.sqrt(v1)
    x = torch.linspace(m1 - 15 * s1, m1 + 15 * s1, 100_001)
    log_p1, log_p2 = _log_normal(x, m1, v1), _log_normal(x, m2, v2)
    return torch.trapezoid(log_p1.exp() * (log_p1 - log_p2), x).item()


_x0 = torch.tensor([[0.9, -0.4, 0.0], [-1.0, 1.0, 0.25]])
for _m_T, _v_T, _prior in ((math.sqrt(0.3), 0.7, None), (1.0, 2500.0, 2500.0), (1.0, 2500.0, None), (0.8, 1.3, 2.0)):
    _kernel = Kernel(torch.tensor([1.0, 0.9, _m_T]), torch.tensor([0.0, 0.1, _v_T]))
    _bpd = prior_bits_per_dim(_kernel, _x0) if _prior is None else prior_bits_per_dim(_kernel, _x0, prior_var=_prior)
    _pv = 1.0 if _prior is None else _prior
    assert _bpd.shape == (2,), f"two examples: shape (2,), got {tuple(_bpd.shape)}"
    for _i in range(2):
        _ref = sum(_kl_by_quadrature(_m_T * v, _v_T, 0.0, _pv) for v in _x0[_i].tolist()) / 3 / math.log(2)
        assert abs(_bpd[_i].item() - _ref) < 1e-9 * max(1.0, _ref), \
            f"L_T for x0 = {_x0[_i].tolist()}, m_T = {_m_T:.4g}, v_T = {_v_T}, prior variance {_pv}"
# the smallest input, one example with one coordinate
_got = prior_bits_per_dim(ve_kernel(torch.tensor([0.0, 3.0])), torch.tensor([[1.5]]), prior_var=9)
assert _got.shape == (1,) and abs(_got.item() - 1.5**2 / 18 / math.log(2)) < 1e-12, "one example, one coordinate"
### END HIDDEN TESTS

# %% [markdown] id="part_f"
# ## Part F — the Fourier view: high frequencies drown first (2 points)
#
# The Fourier transform is linear, so $\mathcal{F}(\mathbf{x}_t) = m_t\,\mathcal{F}(\mathbf{x}_0) +
# \sqrt{v_t}\,\mathcal{F}(\boldsymbol\epsilon)$ for any Gaussian chain. With the orthonormal transform, white noise
# $\boldsymbol\epsilon$ has expected power $1$ at every frequency, while images put most of their power $P_k$ at low
# frequencies (roughly $P_k \propto k^{-2}$). The signal-to-noise ratio of frequency $k$ at step $t$ is therefore
#
# $$\mathrm{SNR}_k(t) = \frac{m_t^2\, P_k}{v_t} \qquad \Big(\text{for DDPM's chain } \frac{\bar\alpha_t\, P_k}
# {1-\bar\alpha_t},\ \text{as in lesson 1}\Big).$$
#
# Say that frequency $k$ *drowns* at the first step $t \in \{1, \dots, T\}$ with $\mathrm{SNR}_k(t) < 1$, strictly
# below 1 (a ratio of exactly 1 has not drowned yet). A frequency that never drowns gets the step $T + 1$ (never
# within $1..T$): the value one past the last step, so that "drowns later" stays "a larger number". Compute the
# drowning step of every frequency, given its power. For every Gaussian chain $m_t^2 / v_t$ decreases in $t$ (each
# step adds noise), so a frequency with less power drowns earlier: with a power spectrum that falls with $k$, the
# forward process erases fine detail first and coarse structure last.
#
# **What your function must accept.** `power`: a 1-D tensor of $K \ge 1$ powers $P_k \ge 0$ (float64). `kernel`: a
# `Kernel` of length $T+1 \ge 2$, any Gaussian chain's. Returns `(K,)` long.

# %% id="drowning" kind="solution"
def drowning_step(power: Tensor, kernel: Kernel) -> Tensor:
    """The first t in 1..T with m_t^2 P_k / v_t < 1, for every frequency k.

    T + 1 (never within 1..T) for a frequency whose SNR never falls below 1.

    power: (K,) signal power P_k >= 0 per frequency.  kernel: m, v (T+1,).  Returns (K,) long.
    """
    ### BEGIN SOLUTION
    T = kernel.m.numel() - 1
    snr = kernel.m[1:, None] ** 2 / kernel.v[1:, None]  # (T, 1): t = 1..T
    below = snr * power[None, :] < 1  # (T, K)
    first = below.to(torch.uint8).argmax(dim=0) + 1  # argmax returns the first maximal index
    return torch.where(below.any(dim=0), first, torch.full_like(first, T + 1))
    ### END SOLUTION


# %% id="drowning_tests" kind="tests" points=2
# The VE chain with sigma_t^2 = 0.25, 1, 4 (m_t = 1): SNR_k(t) = P_k / sigma_t^2 = 4 P_k, P_k, P_k / 4. Every number
# is a power of two, so the products below are exact in floating point, in any order of the operations.
_ve = ve_kernel(torch.tensor([0.0, 0.5, 1.0, 2.0]))
_power = torch.tensor([0.0, 2.0, 0.5, 1e9, 1.0])  # SNR_k(t) = 0; 8, 2, 0.5; 2, 0.5; > 1; 4, 1 (not below 1), 0.25
_steps = drowning_step(_power, _ve)
assert isinstance(_steps, Tensor) and _steps.shape == (5,) and _steps.dtype == torch.long, \
    f"one integer step per frequency: expected a (5,) long tensor, got {_steps!r}"
assert _steps.tolist() == [1, 3, 2, 4, 3], \
    f"expected drowning steps [1, 3, 2, 4, 3] (no power: t = 1; never: T + 1 = 4; SNR = 1 exactly at t = 2 is not " \
    f"below 1), got {_steps.tolist()}"
# DDPM's chain with alpha_bar_t = 0.8, 0.5, 0.2: SNR(t) = 4, 1, 1/4.
_steps = drowning_step(torch.tensor([0.2, 0.9, 3.0, 8.0]), vp_kernel(torch.tensor([1.0, 0.8, 0.5, 0.2])))
assert _steps.tolist() == [1, 2, 3, 4], (
    f"DDPM's chain, SNR(t) = 4, 1, 1/4: expected [1, 2, 3, 4], got {_steps.tolist()}")
print("Part F: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _brute_force(power, m, v):
    T = len(m) - 1
    ratios = [m[t] ** 2 / v[t] for t in range(1, T + 1)]
    # no product within rounding of 1 (else the order of the operations could decide it)
    assert all(abs(r * p - 1) > 1e-9 for r in ratios for p in power)
    return [next((t for t in range(1, T + 1) if ratios[t - 1] * p < 1), T + 1) for p in power]


# brute force over t for a power-law spectrum P_k = 1e4 / k^2 on DDPM's linear schedule and on a VE chain
_betas = linear_betas(1000).tolist()
_ab = [1.0]
for _b in _betas[1:]:
    _ab.append(_ab[-1] * (1 - _b))
_power = 1e4 / torch.arange(1, 65, dtype=torch.float64) ** 2
for _m, _v in (([math.sqrt(a) for a in _ab], [1 - a for a in _ab]),
               ([1.0] * 1001, (geometric_sigmas(1000, 0.01, 70.0) ** 2).tolist())):
    _steps = drowning_step(_power, Kernel(torch.tensor(_m), torch.tensor(_v)))
    _ref = _brute_force(_power.tolist(), _m, _v)
    assert _steps.dtype == torch.long and _steps.tolist() == _ref, "drowning steps for P_k = 1e4 / k^2"
    assert all(_ref[i] >= _ref[i + 1] for i in range(63)) and _ref[0] > _ref[-1]  # high frequencies drown first
# Ties: an SNR of exactly 1 is not below 1 (powers of two: exact in any order). Kernel m = 1, 1, 0.5, 0.5 and
# v = 0.125, 0.25, 0.25, 1 give SNR(t) = 8, 4, 1, 1/4: P = 1 drowns at t = 4, not at the tie t = 3; P = 0.5 at t = 3.
_tie = Kernel(torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5]), torch.tensor([0.0, 0.125, 0.25, 0.25, 1.0]))
_steps = drowning_step(torch.tensor([1.0, 0.5]), _tie)
assert _steps.tolist() == [4, 3], f"SNR = 1 exactly at t = 3 is not below 1: expected [4, 3], got {_steps.tolist()}"
# the same tie at the last step: never below 1 within 1..T, hence T + 1
_steps = drowning_step(torch.tensor([1.0]), Kernel(_tie.m[:4], _tie.v[:4]))
assert _steps.tolist() == [4], f"SNR = 1 exactly at t = T is not below 1: expected T + 1 = 4, got {_steps.tolist()}"
# the smallest case, T = 1 and one frequency, both ways
assert drowning_step(torch.tensor([0.5]), Kernel(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]))).tolist() == [1]
assert drowning_step(torch.tensor([2.0]), Kernel(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]))).tolist() == [2]
### END HIDDEN TESTS
