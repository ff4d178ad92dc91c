# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 3 — score matching and stochastic differential equations
#
# Take DDPM's chain to infinitely many infinitely small steps and the forward process becomes a stochastic
# differential equation on $t \in [0, 1]$,
#
# $$d\mathbf{x} = \mathbf{f}(\mathbf{x}, t)\,dt + g(t)\,d\mathbf{w}, \qquad
# \mathbf{f}(\mathbf{x}, t) = -\tfrac12\beta(t)\,\mathbf{x}, \quad g(t) = \sqrt{\beta(t)}
# \qquad \text{(the variance-preserving, VP, SDE)}.$$
#
# Generation runs it backwards, and everything the backward run needs from the data is one vector field, the
# *score* $\nabla_{\mathbf{x}} \log q_t(\mathbf{x})$ of the diffused data $q_t$. In this problem set you write the
# pieces of that picture and prove numerically that they fit together:
#
# | part | what you show | points |
# |---|---|---|
# | A | the kernel $q(\mathbf{x}_t \mid \mathbf{x}_0)$ of a VP SDE with a polynomial $\beta(t)$ | 3 |
# | B | the drift of the reverse-time SDE, from a score | 2 |
# | C | the probability-flow ODE's drift: it moves $q_1$ to $q_0$ without noise and gives exact likelihoods | 3 |
# | D | one Euler-Maruyama step of the reverse SDE: a sampler | 3 |
# | E | denoising score matching: its regression target, whose average is the score, and its loss | 3 + 3 |
# | F | why denoising score matching learns the score, and what its smallest value is (by hand) | 3 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones catch
# wrong shapes and obvious slips, hidden ones run at grading time and compare your functions with independent
# computations (moment equations solved numerically, DDPM's discrete chain, automatic differentiation, Monte Carlo
# and least squares with error bars derived from the sample size, sliced Wasserstein distances to fresh data).
# Write your answers with `torch` and `math`; do not import `ddpm_scratch`.
#
# **Conventions.** Time is continuous, $t \in [0, 1]$: $t = 0$ is the data, $t = 1$ is (almost) pure noise. The
# kernel of the forward SDE is $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}\big(m(t)\,\mathbf{x}_0,\
# \sigma(t)^2\mathbf{I}\big)$; the *mean coefficient* $m(t)$ plays the role of DDPM's $\sqrt{\bar\alpha_t}$ and the
# *standard deviation* $\sigma(t)$ that of $\sqrt{1-\bar\alpha_t}$. The data are 2-D vectors, batches have shape
# `(B, 2)`, and the notebook computes in float64.
#
# **Calling convention** (the course package's): the process comes first, then the state and the time,
# positionally, `(sde, x, t)`; everything a model predicts or a caller draws is keyword-only, e.g.
# `reverse_drift(sde, x, t, score=s)` and `em_step(sde, x, t, dt, score=s, z=z)`. The state, the score and the noise
# all have the same shape, so two of them swapped in a positional call would raise nothing; a keyword cannot be
# swapped silently.
#
# The setup cell gives you the SDEs and the data. `VPSDE(coefs)` is the VP SDE with the polynomial noise rate
# $\beta(t) = \sum_k c_k t^k$, `coefs` $= (c_0, c_1, \dots)$; it evaluates $\beta(t)$, $\mathbf{f}(\mathbf{x}, t)$
# and $g(t)$ for you. `LINEAR` is the continuous limit of DDPM's schedule, $\beta(t) = 0.1 + 19.9\,t$, and
# `QUADRATIC` the SDE this problem set is about, $\beta(t) = 0.1 + 29.9\,t^2$: it adds noise more slowly at first
# and faster at the end, and reaches about the same $m(1)^2 \approx 4\cdot 10^{-5}$. The data are `MIXTURE`, four
# round Gaussians in the plane; because a Gaussian stays Gaussian under the forward process, the diffused data $q_t$
# are again a Gaussian mixture with a closed-form density and score (`Mixture.diffused`, `.log_prob`, `.score`): an
# exact score model, with no training error, to test your samplers against.

# %% id="setup"
import math
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than two that wait for each other


class VPSDE(NamedTuple):
    """dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw on t in [0, 1], with beta(t) = sum_k coefs[k] t^k."""

    coefs: tuple[float, ...]

    def beta(self, t):
        """beta(t) for a float t (a float back) or a float tensor t (a tensor of t's shape)."""
        return sum(c * t**k for k, c in enumerate(self.coefs))

    def drift(self, x: Tensor, t: float) -> Tensor:
        """f(x, t) = -1/2 beta(t) x.  x: (B, D).  t: float.  Returns (B, D)."""
        return -0.5 * self.beta(t) * x

    def diffusion(self, t: float) -> float:
        """g(t) = sqrt(beta(t)) for a float t."""
        return self.beta(t) ** 0.5


LINEAR = VPSDE((0.1, 19.9))  # beta(t) = 0.1 + 19.9 t: DDPM's linear schedule in continuous time
QUADRATIC = VPSDE((0.1, 0.0, 29.9))  # beta(t) = 0.1 + 29.9 t^2


class Mixture(NamedTuple):
    """sum_k weights[k] N(means[k], stds[k]^2 I): a mixture of round Gaussians in D dimensions."""

    weights: Tensor  # (K,), sums to 1
    means: Tensor  # (K, D)
    stds: Tensor  # (K,)

    def diffused(self, mean_coef: float, std: float) -> "Mixture":
        """The law of m x0 + std eps, x0 from this mixture: component k becomes N(m mu_k, (m^2 s_k^2 + std^2) I)."""
        return Mixture(self.weights, mean_coef * self.means, (mean_coef**2 * self.stds**2 + std**2) ** 0.5)

    def _log_joint(self, x: Tensor) -> Tensor:
        """(B, K): log weights[k] + log N(x; means[k], stds[k]^2 I)."""
        D = x.shape[1]
        sq_dist = (x[:, None, :] - self.means).pow(2).sum(dim=-1)
        return (self.weights.log() - D * self.stds.log() - 0.5 * D * math.log(2 * math.pi)
                - sq_dist / (2 * self.stds**2))

    def log_prob(self, x: Tensor) -> Tensor:
        """log density at x (B, D): (B,)."""
        return torch.logsumexp(self._log_joint(x), dim=1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """(B, K): the probability that x came from component k."""
        return torch.softmax(self._log_joint(x), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """grad_x log density at x (B, D): sum_k r_k(x) (mu_k - x) / s_k^2, (B, D)."""
        r = self.responsibilities(x) / self.stds**2
        return (r[:, :, None] * (self.means - x[:, None, :])).sum(dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n independent draws, (n, D)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.stds[k, None] * torch.randn(n, self.means.shape[1], generator=generator)

    def moments(self) -> tuple[Tensor, Tensor]:
        """(mean (D,), covariance (D, D)) of the mixture."""
        mean = self.weights @ self.means
        D = self.means.shape[1]
        second = (self.weights[:, None, None] * (self.means[:, :, None] * self.means[:, None, :]
                                                 + self.stds[:, None, None] ** 2 * torch.eye(D))).sum(dim=0)
        return mean, second - torch.outer(mean, mean)


MIXTURE = Mixture(weights=torch.tensor([0.2, 0.3, 0.35, 0.15]),
                  means=torch.tensor([[-1.5, 0.5], [1.0, 1.2], [0.8, -1.0], [-0.6, -1.4]]),
                  stds=torch.tensor([0.3, 0.2, 0.35, 0.25]))

# %% [markdown] id="part_a"
# ## Part A — the kernel of a VP SDE (3 points)
#
# Started from a fixed $\mathbf{x}_0$, the linear SDE keeps $\mathbf{x}_t$ Gaussian, so its law is fixed by two
# moment equations. The mean $m(t)\,\mathbf{x}_0$ follows the drift alone, and Itô's formula gives the variance
# $v(t)$ of each coordinate (the drift shrinks it at rate $\beta v$, the noise adds $g^2 = \beta$):
#
# $$\frac{dm}{dt} = -\tfrac12\beta(t)\,m, \quad m(0) = 1, \qquad\qquad
# \frac{dv}{dt} = \beta(t)\,\big(1 - v\big), \quad v(0) = 0 .$$
#
# Solve both in closed form for a polynomial $\beta(t) = \sum_k c_k t^k$ (integrate $\beta$ yourself; the
# coefficients are `sde.coefs`, of any length) and return $m(t)$ and $\sigma(t) = \sqrt{v(t)}$. You will find
# $m(t)^2 + \sigma(t)^2 = 1$: the process preserves the variance of unit-variance data, hence its name.

# %% id="vp_marginal" kind="solution"
def vp_marginal(sde: VPSDE, t: Tensor) -> tuple[Tensor, Tensor]:
    """(mean_coef, std) = (m(t), sigma(t)) of q(x_t | x0) = N(m(t) x0, sigma(t)^2 I) for the VP SDE `sde`.

    sde: a VPSDE, beta(t) = sum_k sde.coefs[k] t^k.  t: float tensor of any shape, values in [0, 1].
    Returns two tensors of t's shape.
    """
    ### BEGIN SOLUTION
    beta_integral = sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs))  # int_0^t beta(u) du
    signal_var = torch.exp(-beta_integral)  # m(t)^2, DDPM's alpha_bar
    return signal_var.sqrt(), (1 - signal_var).sqrt()
    ### END SOLUTION


# %% id="vp_marginal_tests" kind="tests" points=3
_t = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
_m, _s = vp_marginal(QUADRATIC, _t)
assert isinstance(_m, Tensor) and isinstance(_s, Tensor), "return two tensors (mean_coef, std)"
assert _m.shape == _t.shape and _s.shape == _t.shape, f"both must have t's shape {tuple(_t.shape)}"
assert abs(_m[0] - 1) < 1e-12 and abs(_s[0]) < 1e-12, "at t = 0 nothing has happened yet: m = 1, sigma = 0"
assert torch.allclose(_m**2 + _s**2, torch.ones(6), atol=1e-12), "variance preserving: m(t)^2 + sigma(t)^2 = 1"
assert ((_m[1:] > 0) & (_m[1:] < _m[:-1])).all(), "m(t) must decrease from 1 towards 0"
# The moment equation of the mean, checked by a central difference at t = 0.5, where m(0.5) is about 0.5 (neither
# close to 1 nor to 0): d log m / dt = -beta(t) / 2, with beta(0.5) = 0.1 + 29.9 / 4 = 7.575.
_h = 1e-5
_log_m = [vp_marginal(QUADRATIC, torch.tensor(0.5 + d))[0].log().item() for d in (-_h, _h)]
_rate = (_log_m[1] - _log_m[0]) / (2 * _h)
assert abs(_rate + 7.575 / 2) < 1e-6, f"d log m/dt at t = 0.5 must be -beta(0.5)/2 = -3.7875, got {_rate:.6f}"
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# 1) t of any shape, including a 0-d tensor
_m, _s = vp_marginal(QUADRATIC, torch.rand(3, 2, generator=torch.Generator().manual_seed(1)))
assert _m.shape == (3, 2) and _s.shape == (3, 2), "m and sigma must have t's shape"
_m, _s = vp_marginal(LINEAR, torch.tensor(0.25))
assert _m.shape == () and _s.shape == (), "a 0-d t gives 0-d m and sigma"


# 2) The moment equations solved numerically (classical Runge-Kutta, 4000 steps of h = 1/4000: global error of order
# h^4 max|beta|^5 ~ 1e-11 here) for a cubic beta the notebook never shows, compared at six times on the RK4 grid.
def _rk4_moments(beta, times, steps=4000):
    h, y, out, want = 1.0 / steps, (1.0, 0.0), {}, {round(t * steps): t for t in times}

    def rhs(t, y):
        b = beta(t)
        return (-0.5 * b * y[0], b * (1.0 - y[1]))

    for i in range(steps):
        t = i * h
        k1 = rhs(t, y)
        k2 = rhs(t + h / 2, tuple(a + h / 2 * b for a, b in zip(y, k1, strict=True)))
        k3 = rhs(t + h / 2, tuple(a + h / 2 * b for a, b in zip(y, k2, strict=True)))
        k4 = rhs(t + h, tuple(a + h * b for a, b in zip(y, k3, strict=True)))
        y = tuple(a + h / 6 * (p + 2 * q + 2 * r + s) for a, p, q, r, s in zip(y, k1, k2, k3, k4, strict=True))
        if i + 1 in want:
            out[want[i + 1]] = y
    return out


_cubic = VPSDE((0.3, 2.0, -1.5, 6.0))
_times = (0.05, 0.2, 0.375, 0.6, 0.85, 1.0)
_ref = _rk4_moments(_cubic.beta, _times)
_m, _s = vp_marginal(_cubic, torch.tensor(_times))
for _i, _t in enumerate(_times):
    assert abs(_m[_i].item() - _ref[_t][0]) < 1e-9, f"m({_t}) = {_m[_i].item():.10f}, the ODE gives {_ref[_t][0]:.10f}"
    assert abs(_s[_i].item() - math.sqrt(_ref[_t][1])) < 1e-9, \
        f"sigma({_t}) = {_s[_i].item():.10f}, the ODE gives {math.sqrt(_ref[_t][1]):.10f}"
# 3) DDPM's discrete kernel tends to the SDE's. The chain with beta_i = beta(tau_i) / T, tau_i = (i - 1) / (T - 1)
# (DDPM's linspace(1e-4, 0.02, 1000) for LINEAR and T = 1000) has alpha_bar_i = m(i / T)^2 + O(1/T): the largest
# error over i, times T, tends to a constant (0.81 for LINEAR, 0.67 for QUADRATIC) and must fall tenfold per tenfold T.
for _sde in (LINEAR, QUADRATIC):
    _errors = []
    for _T in (100, 1000, 10_000):
        _betas = _sde.beta(torch.arange(_T) / (_T - 1)) / _T
        _alpha_bar = torch.cat([torch.ones(1), torch.cumprod(1 - _betas, dim=0)])
        _m, _ = vp_marginal(_sde, torch.arange(_T + 1) / _T)
        _errors.append((_alpha_bar - _m**2).abs().max().item())
        assert _errors[-1] * _T < 1.0, f"{_sde}: T = {_T}, max |alpha_bar_i - m(i/T)^2| = {_errors[-1]:.3g}"
    for _coarse, _fine in zip(_errors[:-1], _errors[1:], strict=True):
        assert 9 < _coarse / _fine < 11, f"{_sde}: the error must shrink like 1/T, got {_errors}"
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — the reverse-time SDE (2 points)
#
# Anderson's theorem: the forward SDE, run backwards in time from $\mathbf{x}_1 \sim q_1$, is again an SDE,
#
# $$d\mathbf{x} = \big[\mathbf{f}(\mathbf{x}, t) - g(t)^2\,\nabla_{\mathbf{x}}\log q_t(\mathbf{x})\big]\,dt
# + g(t)\,d\bar{\mathbf{w}}, \qquad t \text{ running from } 1 \text{ down to } 0,$$
#
# with $\bar{\mathbf{w}}$ a Brownian motion in reverse time. Write its drift for a given value of the score
# (the keyword `score`: what a score model, or the exact score of known data, returns at $(\mathbf{x}, t)$). Use the
# notebook's `sde.drift(x, t)` and `sde.diffusion(t)`.

# %% id="reverse_drift" kind="solution"
def reverse_drift(sde: VPSDE, x: Tensor, t: float, *, score: Tensor) -> Tensor:
    """f(x, t) - g(t)^2 score.  x: (B, D).  t: float in [0, 1].  score (keyword-only): (B, D).  Returns (B, D)."""
    ### BEGIN SOLUTION
    g = sde.diffusion(t)
    return sde.drift(x, t) - g * g * score
    ### END SOLUTION


# %% id="reverse_drift_tests" kind="tests" points=2
# If the data at time t are N(0, v I), the score is -x / v and the reverse drift is linear, a x. A step back of
# length h maps x to x - a x h + g sqrt(h) z, so the variance changes by -(2 a v - g^2) h; to retrace the forward
# process, whose variance grows at the rate beta (1 - v) (Part A), a must be beta (2 - v) / (2 v).
# At t = 0.5 on QUADRATIC, beta = 7.575; with v = 0.3 that is a = 21.4625.
_x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2))
_d = reverse_drift(QUADRATIC, _x, 0.5, score=-_x / 0.3)
assert isinstance(_d, Tensor) and _d.shape == (5, 2), f"the drift has x's shape (5, 2), got {getattr(_d, 'shape', _d)}"
assert torch.allclose(_d, 21.4625 * _x, rtol=1e-10), \
    "for N(0, 0.3 I) data at t = 0.5 the reverse drift must be 21.4625 x (see the comment above)"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _kernel(sde, t):  # (m, sigma) at a float t, from int_0^t beta = sum_k c_k t^(k+1) / (k+1), written independently
    abar = math.exp(-sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs)))
    return math.sqrt(abar), math.sqrt(1 - abar)


# 1) The formula, on three SDEs and four times, with an arbitrary score
_g = torch.Generator().manual_seed(21)
_x, _score = torch.randn(6, 2, generator=_g), torch.randn(6, 2, generator=_g)
for _sde in (LINEAR, QUADRATIC, VPSDE((2.5, -1.0, 3.0))):
    for _t in (0.02, 0.3, 0.77, 1.0):
        _b = sum(c * _t**k for k, c in enumerate(_sde.coefs))
        _expected = -0.5 * _b * _x - _b * _score
        assert torch.allclose(reverse_drift(_sde, _x, _t, score=_score), _expected, rtol=1e-12, atol=1e-12), \
            f"wrong reverse drift for beta coefficients {_sde.coefs} at t = {_t}"
# 2) Run backwards, the SDE retraces the forward marginals of Gaussian data N(mu, s0^2 I): q_t = N(a, v I) with
# a(t) = m mu, v(t) = m^2 s0^2 + sigma^2, score -(x - a) / v. The drift is affine, D(x) = A x + b; going back a step
# h, the mean changes by -h D(a) and the variance by -h (2 A v - g^2). Both rates must be the forward ones, da/dt and
# dv/dt (central differences of the closed form, step 1e-6: error ~1e-9 relative).
_mu, _s02 = torch.tensor([0.7, -1.2]), 0.2
for _t in (0.15, 0.5, 0.9):
    _moments = []
    for _u in (_t - 1e-6, _t + 1e-6):
        _mc, _sd = _kernel(QUADRATIC, _u)
        _moments.append((_mc * _mu, _mc**2 * _s02 + _sd**2))
    _da, _dv = (_moments[1][0] - _moments[0][0]) / 2e-6, (_moments[1][1] - _moments[0][1]) / 2e-6
    _mc, _sd = _kernel(QUADRATIC, _t)
    _a, _v = _mc * _mu, _mc**2 * _s02 + _sd**2
    _pts = torch.stack([_a, _a + torch.tensor([1.0, 0.0]), _a + torch.tensor([0.0, 1.0])])
    _D = reverse_drift(QUADRATIC, _pts, _t, score=-(_pts - _a) / _v)
    _A = torch.stack([_D[1] - _D[0], _D[2] - _D[0]])  # rows: d D / d x_1, d D / d x_2
    _beta = QUADRATIC.beta(_t)
    assert torch.allclose(_D[0], _da, rtol=1e-6, atol=1e-8), f"t = {_t}: the mean does not move back along m(t) mu"
    assert torch.allclose(_A, _A.diagonal().diag(), atol=1e-10), "the drift must not mix the coordinates"
    assert torch.allclose(2 * _A.diagonal() * _v - _beta, torch.tensor([_dv, _dv]), rtol=1e-6, atol=1e-8), \
        f"t = {_t}: the variance does not move back along the forward marginals"
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — the probability-flow ODE (3 points)
#
# The ordinary differential equation
#
# $$\frac{d\mathbf{x}}{dt} = \mathbf{f}(\mathbf{x}, t) - \tfrac12\,g(t)^2\,\nabla_{\mathbf{x}}\log q_t(\mathbf{x})$$
#
# has no noise at all, yet its solutions carry $q_1$ to $q_t$ for every $t$, exactly as the SDE does: started from
# $\mathbf{x}_1 \sim q_1 \approx \mathcal{N}(\mathbf{0}, \mathbf{I})$ and solved backwards, it ends at a sample of the
# data. Being an ODE, it is a smooth invertible map, so the change-of-variables formula gives the exact
# log-likelihood of a data point: solve forwards from $\mathbf{x}_0$ and accumulate the divergence of the drift,
# $\log q_0(\mathbf{x}_0) = \log q_1(\mathbf{x}_1) + \int_0^1 \nabla\cdot\big(\tfrac{d\mathbf{x}}{dt}\big)\,dt$.
#
# Write the drift for a given value of the score. The hidden tests prove both claims with the exact score of
# `MIXTURE`: they transport $\mathcal{N}(\mathbf{0}, \mathbf{I})$ with your drift and compare the result with fresh
# samples of the data, and they integrate your drift's divergence to recover `MIXTURE.log_prob`.

# %% id="pf_drift" kind="solution"
def probability_flow_drift(sde: VPSDE, x: Tensor, t: float, *, score: Tensor) -> Tensor:
    """dx/dt = f(x, t) - 1/2 g(t)^2 score.  x: (B, D).  t: float in [0, 1].  score (keyword-only): (B, D)."""
    ### BEGIN SOLUTION
    half_g2 = 0.5 * sde.diffusion(t) ** 2  # = beta(t) / 2
    return sde.drift(x, t) - half_g2 * score
    ### END SOLUTION


# %% id="pf_drift_tests" kind="tests" points=3
# No noise: if the data at time t are N(0, v I), the flow must scale x so that its variance changes at the forward
# rate beta (1 - v) (Part A). A linear flow dx/dt = a x changes the variance at the rate 2 a v, so a = beta (1 - v)
# / (2 v): at t = 0.5 on QUADRATIC (beta = 7.575) and v = 0.3, a = 8.8375.
_x = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
_d = probability_flow_drift(QUADRATIC, _x, 0.5, score=-_x / 0.3)
assert isinstance(_d, Tensor) and _d.shape == (5, 2), f"the drift has x's shape (5, 2), got {getattr(_d, 'shape', _d)}"
assert torch.allclose(_d, 8.8375 * _x, rtol=1e-10), "for N(0, 0.3 I) data at t = 0.5 the flow must be 8.8375 x"
assert torch.allclose(probability_flow_drift(LINEAR, _x, 0.7, score=-_x), torch.zeros(5, 2), atol=1e-12), \
    "N(0, I) is preserved by the VP process: with score -x the flow must stand still"
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _kernel(sde, t):  # (m, sigma) at a float t, from int_0^t beta = sum_k c_k t^(k+1) / (k+1), written independently
    abar = math.exp(-sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs)))
    return math.sqrt(abar), math.sqrt(1 - abar)


def _exact_score(sde, x, t):
    return MIXTURE.diffused(*_kernel(sde, t)).score(x)


def _flow(x, t):
    return probability_flow_drift(QUADRATIC, x, t, score=_exact_score(QUADRATIC, x, t))


def _rk4(rhs, y, t0, t1, steps):  # classical Runge-Kutta on a uniform grid; y a tuple of tensors
    h = (t1 - t0) / steps
    for i in range(steps):
        t = t0 + i * h
        k1 = rhs(y, t)
        k2 = rhs(tuple(a + h / 2 * b for a, b in zip(y, k1, strict=True)), t + h / 2)
        k3 = rhs(tuple(a + h / 2 * b for a, b in zip(y, k2, strict=True)), t + h / 2)
        k4 = rhs(tuple(a + h * b for a, b in zip(y, k3, strict=True)), t + h)
        y = tuple(a + h / 6 * (p + 2 * q + 2 * r + s) for a, p, q, r, s in zip(y, k1, k2, k3, k4, strict=True))
    return y


# 1) The formula on three SDEs and four times, with an arbitrary score
_g = torch.Generator().manual_seed(31)
_x, _score = torch.randn(6, 2, generator=_g), torch.randn(6, 2, generator=_g)
for _sde in (LINEAR, QUADRATIC, VPSDE((2.5, -1.0, 3.0))):
    for _t in (0.02, 0.3, 0.77, 1.0):
        _b = sum(c * _t**k for k, c in enumerate(_sde.coefs))
        assert torch.allclose(probability_flow_drift(_sde, _x, _t, score=_score), -0.5 * _b * (_x + _score),
                              rtol=1e-12, atol=1e-12), f"wrong flow for beta coefficients {_sde.coefs} at t = {_t}"
# 2) The flow carries the marginals of Gaussian data N(mu, s0^2 I), q_t = N(a, v I): the mean moves at da/dt = D(a)
# and the variance at dv/dt = 2 A v (the drift D(x) = A x + b is affine), the forward rates (central differences).
_mu, _s02 = torch.tensor([0.7, -1.2]), 0.2
for _t in (0.15, 0.5, 0.9):
    _moments = []
    for _u in (_t - 1e-6, _t + 1e-6):
        _mc, _sd = _kernel(QUADRATIC, _u)
        _moments.append((_mc * _mu, _mc**2 * _s02 + _sd**2))
    _da, _dv = (_moments[1][0] - _moments[0][0]) / 2e-6, (_moments[1][1] - _moments[0][1]) / 2e-6
    _mc, _sd = _kernel(QUADRATIC, _t)
    _a, _v = _mc * _mu, _mc**2 * _s02 + _sd**2
    _pts = torch.stack([_a, _a + torch.tensor([1.0, 0.0]), _a + torch.tensor([0.0, 1.0])])
    _D = probability_flow_drift(QUADRATIC, _pts, _t, score=-(_pts - _a) / _v)
    assert torch.allclose(_D[0], _da, rtol=1e-6, atol=1e-8), f"t = {_t}: the mean does not follow m(t) mu"
    assert torch.allclose(2 * torch.stack([_D[1, 0] - _D[0, 0], _D[2, 1] - _D[0, 1]]) * _v, torch.tensor([_dv, _dv]),
                          rtol=1e-6, atol=1e-8), f"t = {_t}: the variance does not follow the forward marginals"
# 3) Transport: x_1 ~ N(0, I), solved back to t = 0 with RK4 (50 steps; halving the step moves the points by < 5e-4,
# a tenth of the floor's spread below), must be a sample of MIXTURE. Statistic: sliced 2-Wasserstein distance (32
# fixed directions) to n fresh samples. If the flow is right, the transported points are n independent draws of the
# data (q_1 differs from N(0, I) by m(1) = 0.0065 in the mean), so the statistic has the law of the "floor", the same
# distance between two fresh samples of size n: it must lie below the floor's mean + 4 standard deviations, estimated
# from 20 independent pairs (a wrong flow lands 10 to 100 times higher).
_n = 5000
_g = torch.Generator().manual_seed(32)
_dirs = torch.randn(32, 2, generator=_g)
_dirs = _dirs / _dirs.norm(dim=1, keepdim=True)


def _sliced_w2(a, b):
    pa, pb = (a @ _dirs.T).sort(dim=0).values, (b @ _dirs.T).sort(dim=0).values
    return (pa - pb).pow(2).mean().sqrt().item()


(_x0,) = _rk4(lambda y, t: (_flow(y[0], t),), (torch.randn(_n, 2, generator=_g),), 1.0, 0.0, 50)
assert torch.isfinite(_x0).all(), "the flow produced inf or NaN"
_floor = torch.tensor([_sliced_w2(MIXTURE.sample(_n, _g), MIXTURE.sample(_n, _g)) for _ in range(20)])
_stat, _limit = _sliced_w2(_x0, MIXTURE.sample(_n, _g)), (_floor.mean() + 4 * _floor.std()).item()
assert _stat < _limit, (f"the flow does not reach the data: sliced W2 {_stat:.4f} to fresh samples, floor "
                        f"{_floor.mean():.4f} (limit {_limit:.4f})")


# 4) Likelihood: solve forwards from x0 with the divergence of your drift (central differences in each coordinate,
# step 1e-5: error ~1e-9) and compare log q_1(x_1) + int div with MIXTURE.log_prob(x0). RK4 with 50 steps is within
# 3e-4 nats of the 100-step result here; the tolerance, 1% (or 0.01 nats near 0), is thirty times that.
def _flow_and_divergence(y, t):
    x = y[0]
    div = torch.zeros(x.shape[0])
    for i in range(x.shape[1]):
        e = torch.zeros(x.shape[1])
        e[i] = 1e-5
        div = div + (_flow(x + e, t)[:, i] - _flow(x - e, t)[:, i]) / 2e-5
    return _flow(x, t), div


_x0 = torch.cat([MIXTURE.sample(6, _g), torch.tensor([[0.0, 0.0], [-1.0, -0.5]])])  # and two points between modes
_x1, _delta = _rk4(_flow_and_divergence, (_x0, torch.zeros(8)), 0.0, 1.0, 50)
_log_lik = MIXTURE.diffused(*_kernel(QUADRATIC, 1.0)).log_prob(_x1) + _delta
_exact = MIXTURE.log_prob(_x0)
assert ((_log_lik - _exact).abs() < 0.01 * _exact.abs().clamp(min=1.0)).all(), \
    f"the ODE log-likelihood {_log_lik.tolist()} differs from log_prob {_exact.tolist()}"
### END HIDDEN TESTS

# %% [markdown] id="part_d"
# ## Part D — one Euler-Maruyama step of the reverse SDE (3 points)
#
# Euler-Maruyama solves an SDE $d\mathbf{x} = \mathbf{a}(\mathbf{x}, t)\,dt + b(t)\,d\mathbf{w}$ *forwards* in time with
# $\mathbf{x}_{t+\Delta} = \mathbf{x}_t + \mathbf{a}(\mathbf{x}_t, t)\,\Delta + b(t)\sqrt{\Delta}\,\mathbf{z}$,
# $\mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$: the Brownian increment over a time $\Delta$ has standard
# deviation $\sqrt{\Delta}$. Sampling runs the reverse SDE of Part B from $t = 1$ down to $0$. Write one step, from
# time $t$ to time $t - \Delta t$, where the step length `dt` $= \Delta t > 0$ is positive and time decreases; the
# drift and $g$ are evaluated at the start of the step, and the score (keyword) is its value at $(\mathbf{x}, t)$.
# Add the noise as $+\,g(t)\sqrt{\Delta t}\,\mathbf{z}$ with the given $\mathbf{z}$: the tests check the step
# exactly, not only in distribution.

# %% id="em_step" kind="solution"
def em_step(sde: VPSDE, x: Tensor, t: float, dt: float, *, score: Tensor, z: Tensor) -> Tensor:
    """x at time t - dt from x at time t, by one Euler-Maruyama step of the reverse-time SDE.

    x: (B, D) at time t.  t: float in (0, 1].  dt: float > 0, the step length.  Keyword-only: score (B, D), the score
    at (x, t); z (B, D), standard normal.  Returns (B, D).
    """
    ### BEGIN SOLUTION
    # time runs backwards: the increment of t is -dt, so the drift enters with -dt; the noise's sign is immaterial in
    # law (z is symmetric) and fixed as + by the problem
    return x - dt * reverse_drift(sde, x, t, score=score) + math.sqrt(dt) * sde.diffusion(t) * z
    ### END SOLUTION


# %% id="em_step_tests" kind="tests" points=3
# Constant beta = 4 (g = 2), t = 0.5, dt = 0.01: the reverse drift is -2 x - 4 score, so
# x_new = x - (-2 x - 4 score) * 0.01 + 2 * sqrt(0.01) z = 1.02 x + 0.04 score + 0.2 z.
_gen = torch.Generator().manual_seed(4)
_x, _score, _z = (torch.randn(6, 2, generator=_gen) for _ in range(3))
_new = em_step(VPSDE((4.0,)), _x, 0.5, 0.01, score=_score, z=_z)
assert isinstance(_new, Tensor) and _new.shape == (6, 2), "the step returns a tensor of x's shape"
assert torch.allclose(_new, 1.02 * _x + 0.04 * _score + 0.2 * _z, rtol=1e-10), \
    "with beta = 4, t = 0.5, dt = 0.01 the step must be 1.02 x + 0.04 score + 0.2 z (see the comment)"
print("Part D: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _kernel(sde, t):  # (m, sigma) at a float t, from int_0^t beta = sum_k c_k t^(k+1) / (k+1), written independently
    abar = math.exp(-sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs)))
    return math.sqrt(abar), math.sqrt(1 - abar)


# 1) One step against the formula with a fixed z, on QUADRATIC at several t and step lengths
for _t, _dt in ((1.0, 0.004), (0.62, 0.05), (0.2, 0.001), (0.05, 0.02)):
    _b = QUADRATIC.beta(_t)
    _expected = _x - (-0.5 * _b * _x - _b * _score) * _dt + math.sqrt(_b * _dt) * _z
    assert torch.allclose(em_step(QUADRATIC, _x, _t, _dt, score=_score, z=_z), _expected, rtol=1e-11, atol=1e-12), \
        f"wrong step at t = {_t}, dt = {_dt}"
# 2) Iterated with the exact score of MIXTURE from x_1 ~ N(0, I), 250 steps of 1/250 down to t = 0, the step must
# sample the data: n = 10,000 samples, mean and covariance within 5 standard errors (from the samples' own spread)
# plus 0.01 for the discretisation bias (Euler-Maruyama's bias at 250 steps, measured with 10^6 samples, is below
# 0.004 in every one of these moments).
_n, _steps = 10_000, 250
_g = torch.Generator().manual_seed(41)
_xs = torch.randn(_n, 2, generator=_g)
for _k in range(_steps):
    _t = 1 - _k / _steps
    _xs = em_step(QUADRATIC, _xs, _t, 1 / _steps, score=MIXTURE.diffused(*_kernel(QUADRATIC, _t)).score(_xs),
                  z=torch.randn(_n, 2, generator=_g))
assert torch.isfinite(_xs).all(), "the sampler produced inf or NaN"
_mean, _cov = MIXTURE.moments()
_centred = _xs - _xs.mean(dim=0)
_se_mean = _xs.std(dim=0) / math.sqrt(_n)
assert ((_xs.mean(dim=0) - _mean).abs() < 5 * _se_mean + 0.01).all(), \
    f"sample mean {_xs.mean(dim=0).tolist()}, data mean {_mean.tolist()}"
for _i, _j in ((0, 0), (0, 1), (1, 1)):
    _prod = _centred[:, _i] * _centred[:, _j]
    assert abs(_prod.mean() - _cov[_i, _j]) < 5 * _prod.std() / math.sqrt(_n) + 0.01, \
        f"sample covariance [{_i}, {_j}] = {_prod.mean():.4f}, data {_cov[_i, _j]:.4f}"
### END HIDDEN TESTS

# %% [markdown] id="part_d_demo"
# Nothing to write here: the cell samples `MIXTURE` from $\mathcal{N}(\mathbf{0}, \mathbf{I})$ with the exact score,
# once with your `em_step` (the reverse SDE) and once with Euler steps of your probability-flow drift (the ODE), 200
# steps each. With correct answers both clouds look like the data; the ODE maps each starting point to one end point
# deterministically, the SDE does not.

# %% id="d_demo"
def _demo_score(x, t):
    mean_coef, std = (v.item() for v in vp_marginal(QUADRATIC, torch.tensor(t)))
    return MIXTURE.diffused(mean_coef, std).score(x)


_g = torch.Generator().manual_seed(0)
_n, _steps = 2000, 200
_sde_x = _ode_x = torch.randn(_n, 2, generator=_g)
for _k in range(_steps):
    _t, _dt = 1 - _k / _steps, 1 / _steps
    _sde_x = em_step(QUADRATIC, _sde_x, _t, _dt, score=_demo_score(_sde_x, _t), z=torch.randn(_n, 2, generator=_g))
    _ode_x = _ode_x - _dt * probability_flow_drift(QUADRATIC, _ode_x, _t, score=_demo_score(_ode_x, _t))
_fig, _axes = plt.subplots(1, 3, figsize=(12, 3.8))
for _ax, _pts, _title, _color in ((_axes[0], MIXTURE.sample(_n, _g), "data", "C0"),
                                  (_axes[1], _sde_x, "reverse SDE (your em_step)", "C1"),
                                  (_axes[2], _ode_x, "probability-flow ODE (Euler)", "C2")):
    _ax.scatter(_pts[:, 0], _pts[:, 1], s=2, color=_color)
    _ax.set(title=_title, aspect="equal", xlim=(-2.6, 2.2), ylim=(-2.4, 2.2))
plt.show()

# %% [markdown] id="part_e"
# ## Part E — denoising score matching (3 + 3 points)
#
# The score $\nabla\log q_t$ of the diffused data is unknown, but the score of the kernel $q(\mathbf{x}_t \mid
# \mathbf{x}_0)$ is known in closed form, and a regression onto it learns the right thing (Vincent 2011): the
# minimiser over all functions $\mathbf{s}$ of
#
# $$\mathbb{E}_{\mathbf{x}_0 \sim q_0,\ \mathbf{x}_t \sim q(\mathbf{x}_t \mid \mathbf{x}_0)}
# \big\lVert \mathbf{s}(\mathbf{x}_t) - \nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0)\big\rVert^2$$
#
# is $\nabla\log q_t$ (Part F asks why).
#
# **E1.** Write the regression target $\nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0)$ for the VP kernel
# of Part A, one time per example. For $\mathbf{x}_t = m(t)\,\mathbf{x}_0 + \sigma(t)\,\boldsymbol\epsilon$ it equals
# $-\boldsymbol\epsilon/\sigma(t)$: the hidden tests check that its average given $\mathbf{x}_t$ is the exact score
# of the diffused `MIXTURE`, and that least squares on simulated pairs recovers that score.

# %% id="dsm_target" kind="solution"
def dsm_target(sde: VPSDE, x_t: Tensor, t: Tensor, *, x0: Tensor) -> Tensor:
    """grad_{x_t} log q(x_t | x0) for the VP kernel q(x_t | x0) = N(m(t) x0, sigma(t)^2 I).

    x_t: (B, D).  t: (B,) float tensor in (0, 1], one time per example.  x0 (keyword-only): (B, D).  Returns (B, D).
    """
    ### BEGIN SOLUTION
    mean_coef, std = vp_marginal(sde, t)
    return (mean_coef[:, None] * x0 - x_t) / std[:, None] ** 2
    ### END SOLUTION


# %% id="dsm_target_tests" kind="tests" points=3
_gen = torch.Generator().manual_seed(5)
_t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])
_x0, _eps = MIXTURE.sample(5, _gen), torch.randn(5, 2, generator=_gen)
_m, _s = vp_marginal(QUADRATIC, _t)
_x_t = _m[:, None] * _x0 + _s[:, None] * _eps
_target = dsm_target(QUADRATIC, _x_t, _t, x0=_x0)
assert isinstance(_target, Tensor) and _target.shape == (5, 2), "the target has x_t's shape (B, D)"
assert torch.allclose(_target, -_eps / _s[:, None], rtol=1e-9), \
    "for x_t = m x0 + sigma eps the target must be -eps / sigma, each example at its own t"
print("Part E1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _kernel(sde, t):  # (m, sigma) at a float t, from int_0^t beta = sum_k c_k t^(k+1) / (k+1), written independently
    abar = math.exp(-sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs)))
    return math.sqrt(abar), math.sqrt(1 - abar)


# 1) The gradient of log N(x_t; m x0, sigma^2 I) by automatic differentiation, at x_t not built from x0
_g = torch.Generator().manual_seed(51)
_x0, _xt = torch.randn(4, 2, generator=_g), (2 * torch.randn(4, 2, generator=_g)).requires_grad_(True)
_times = [0.05, 0.3, 0.6, 0.95]
_ms, _ss = (torch.tensor(v)[:, None] for v in zip(*(_kernel(LINEAR, t) for t in _times), strict=True))
_log_q = (-(_xt - _ms * _x0).pow(2) / (2 * _ss**2)).sum()
(_grad,) = torch.autograd.grad(_log_q, _xt)
assert torch.allclose(dsm_target(LINEAR, _xt.detach(), torch.tensor(_times), x0=_x0), _grad, rtol=1e-9, atol=1e-12), \
    "the target is not grad_{x_t} log q(x_t | x0)"
# 2) score = E[-eps / sigma | x_t]: at five points x_t, draw x0 from the exact posterior q(x0 | x_t) (pick a component
# with its responsibility for x_t under q_t, then the Gaussian posterior of that component: precision 1/s_k^2 +
# m^2/sigma^2), average your target over M draws and compare with MIXTURE.diffused(m, sigma).score within 5 standard
# errors of the mean (from the draws' spread). t = 0.3 on QUADRATIC: m = 0.861, sigma = 0.508, far apart.
_tt, _M = 0.3, 20_000
_m, _s = _kernel(QUADRATIC, _tt)
_q_t = MIXTURE.diffused(_m, _s)
_points = torch.tensor([[0.3, 0.2], [-1.0, 0.1], [0.9, -0.9], [-0.4, -1.2], [1.5, 1.5]])
_resp = _q_t.responsibilities(_points)
for _i in range(_points.shape[0]):
    _k = torch.multinomial(_resp[_i], _M, replacement=True, generator=_g)
    _prec = 1 / MIXTURE.stds[_k] ** 2 + _m**2 / _s**2
    _post_mean = (MIXTURE.means[_k] / MIXTURE.stds[_k, None] ** 2 + _m * _points[_i] / _s**2) / _prec[:, None]
    _draws = _post_mean + torch.randn(_M, 2, generator=_g) / _prec[:, None].sqrt()
    _tg = dsm_target(QUADRATIC, _points[_i].expand(_M, 2), torch.full((_M,), _tt), x0=_draws)
    _err = _tg.mean(dim=0) - _q_t.score(_points[_i:_i + 1])[0]
    assert (_err.abs() < 5 * _tg.std(dim=0) / math.sqrt(_M)).all(), \
        f"E[target | x_t] misses the score at x_t = {_points[_i].tolist()} by {_err.tolist()}"
# 3) The DSM minimiser is the score: regress your target on features of x_t (constant, x, 25 Gaussian bumps) by least
# squares over n simulated pairs, and regress the exact score on the same features of the same x_t. Since
# E[target | x_t] = score, both fits estimate the same projection; their difference at held-out points is
# Phi_h (Phi' Phi)^-1 Phi' r with r = target - score, whose standard error is the sandwich formula. 5 standard errors.
_n = 20_000
_x0, _eps = MIXTURE.sample(_n, _g), torch.randn(_n, 2, generator=_g)
_xt = _m * _x0 + _s * _eps
_tg = dsm_target(QUADRATIC, _xt, torch.full((_n,), _tt), x0=_x0)
_centres = torch.cartesian_prod(torch.linspace(-2, 2, 5), torch.linspace(-2, 2, 5))


def _features(x):
    bumps = torch.exp(-(x[:, None, :] - _centres).pow(2).sum(dim=-1) / (2 * 0.7**2))
    return torch.cat([torch.ones(x.shape[0], 1), x, bumps], dim=1)


_phi, _true = _features(_xt), _q_t.score(_xt)
_gram_inv = torch.linalg.inv(_phi.T @ _phi)
_w_dsm, _w_true = _gram_inv @ (_phi.T @ _tg), _gram_inv @ (_phi.T @ _true)
_phi_h = _features(_q_t.sample(50, _g))
for _j in range(2):
    _r = _tg[:, _j] - _true[:, _j]
    _cov_w = _gram_inv @ ((_phi * _r[:, None] ** 2).T @ _phi) @ _gram_inv
    _se = ((_phi_h @ _cov_w) * _phi_h).sum(dim=1).sqrt()
    _gap = _phi_h @ (_w_dsm[:, _j] - _w_true[:, _j])
    assert (_gap.abs() < 5 * _se).all(), \
        f"coordinate {_j}: the least-squares fit of your target is not the score (largest gap {_gap.abs().max():.3f})"
### END HIDDEN TESTS

# %% [markdown] id="part_e2"
# **E2.** The loss on one batch, the caller having drawn a time $t$ and a noise $\boldsymbol\epsilon$ per example:
# form $\mathbf{x}_t = m(t)\,\mathbf{x}_0 + \sigma(t)\,\boldsymbol\epsilon$, evaluate the model
# `score_model(x_t, t)` (with `t` of shape `(B,)`), and average
# $\lambda(t)\,\big(\mathbf{s}_\theta(\mathbf{x}_t, t) - \text{target}\big)^2$ over the examples **and** the coordinates
# with the weighting $\lambda(t) = \sigma(t)^2$. With this weighting every time contributes on the same scale (the
# target's size is $1/\sigma(t)$), and with a score model written as $\mathbf{s}_\theta = -\boldsymbol\epsilon_\theta /
# \sigma(t)$ the loss becomes DDPM's $L_\text{simple}$ in continuous time. Keep it differentiable.

# %% id="dsm_loss" kind="solution"
def dsm_loss(score_model, sde: VPSDE, x0: Tensor, t: Tensor, *, eps: Tensor) -> Tensor:
    """Mean over examples and coordinates of sigma(t)^2 (score_model(x_t, t) - dsm target)^2.

    score_model: callable (x_t (B, D), t (B,) float) -> (B, D).  x0: (B, D) data.  t: (B,) float in (0, 1].
    eps (keyword-only): (B, D), the noise that makes x_t = m(t) x0 + sigma(t) eps.  Returns a 0-d tensor.
    """
    ### BEGIN SOLUTION
    mean_coef, std = vp_marginal(sde, t)
    x_t = mean_coef[:, None] * x0 + std[:, None] * eps
    residual = score_model(x_t, t) - dsm_target(sde, x_t, t, x0=x0)
    return (std[:, None] ** 2 * residual**2).mean()
    ### END SOLUTION


# %% id="dsm_loss_tests" kind="tests" points=3
_gen = torch.Generator().manual_seed(6)
_t = torch.tensor([0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95, 0.2])
_x0, _eps = MIXTURE.sample(8, _gen), torch.randn(8, 2, generator=_gen)
_loss = dsm_loss(lambda x, t: torch.zeros_like(x), QUADRATIC, _x0, _t, eps=_eps)
assert isinstance(_loss, Tensor) and _loss.dim() == 0, "the loss of a batch is a single number (0-d tensor)"
assert torch.allclose(_loss, _eps.pow(2).mean()), "with s_theta = 0 the weighted loss is the mean of eps^2"


def _knows_x0_off_by_half(x_t, t):
    # a "model" that knows x0: it returns the target (x0's score of the kernel) plus 0.5, so its weighted squared
    # error is sigma(t)^2 / 4 in every coordinate -- if it is called with x_t (not x0) and the examples' own t
    m, s = vp_marginal(QUADRATIC, t)
    return -(x_t - m[:, None] * _x0) / s[:, None] ** 2 + 0.5


_m, _s = vp_marginal(QUADRATIC, _t)
_loss = dsm_loss(_knows_x0_off_by_half, QUADRATIC, _x0, _t, eps=_eps)
assert abs(_loss.item() - 0.25 * _s.pow(2).mean().item()) < 1e-10, \
    f"an error of 0.5 in every coordinate must cost the mean of sigma(t)^2 / 4 = {0.25 * _s.pow(2).mean():.6f}"
_lin = nn.Linear(2, 2)
dsm_loss(lambda x, t: _lin(x), QUADRATIC, _x0, _t, eps=_eps).backward()
assert _lin.weight.grad is not None and _lin.weight.grad.abs().sum() > 0, "the loss must carry gradients to the model"
print("Part E2: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _kernel(sde, t):  # (m, sigma) at a float t, from int_0^t beta = sum_k c_k t^(k+1) / (k+1), written independently
    abar = math.exp(-sum(c * t ** (k + 1) / (k + 1) for k, c in enumerate(sde.coefs)))
    return math.sqrt(abar), math.sqrt(1 - abar)


# 1) The value, computed independently example by example, for a model that depends on x_t and t
def _model(x, t):
    return torch.tanh(x) * (1 + t[:, None]) - 0.3 * x.flip(1)


_g = torch.Generator().manual_seed(61)
_x0, _eps = MIXTURE.sample(7, _g), torch.randn(7, 2, generator=_g)
_t = torch.tensor([0.05, 0.15, 0.33, 0.5, 0.61, 0.8, 1.0])
_total = 0.0
for _i, _ti in enumerate(_t.tolist()):
    _m, _s = _kernel(LINEAR, _ti)
    _xi = _m * _x0[_i] + _s * _eps[_i]
    _total += (_s**2 * (_model(_xi[None], _t[_i:_i + 1])[0] + _eps[_i] / _s) ** 2).sum().item()
_expected = _total / _x0.numel()
assert abs(dsm_loss(_model, LINEAR, _x0, _t, eps=_eps).item() - _expected) < 1e-10 * _expected, "wrong loss value"
# 2) sigma^2-weighted DSM is L_simple: with s_theta = -eps_theta / sigma the loss is the mean of (eps - eps_theta)^2
_eps_model = lambda x, t: 0.4 * x * t[:, None] - 0.1  # noqa: E731
_sig = torch.tensor([_kernel(LINEAR, ti)[1] for ti in _t.tolist()])[:, None]
_ms = torch.tensor([_kernel(LINEAR, ti)[0] for ti in _t.tolist()])[:, None]
_l_simple = (_eps - _eps_model(_ms * _x0 + _sig * _eps, _t)).pow(2).mean()
_got = dsm_loss(lambda x, t: -_eps_model(x, t) / _sig, LINEAR, _x0, _t, eps=_eps)
assert abs(_got.item() - _l_simple.item()) < 1e-10, "with s = -eps_theta / sigma the loss must equal L_simple"
# 3) On a large batch the exact score has the smallest loss: scaling it by 0.8 or 1.25 costs sigma^2 (c - 1)^2
# E|score|^2 / D on average (0.03 and 0.04 here), while the batch's noise on that difference is about 0.002
_n = 20_000
_x0, _eps = MIXTURE.sample(_n, _g), torch.randn(_n, 2, generator=_g)
_t = 0.05 + 0.9 * torch.rand(_n, generator=_g)


def _scaled_exact(c):
    def scaled(x, t):
        out = torch.empty_like(x)
        for ti in torch.unique(t).tolist():
            rows = t == ti
            out[rows] = c * MIXTURE.diffused(*_kernel(QUADRATIC, ti)).score(x[rows])
        return out
    return scaled


_t = (torch.round(_t * 20) / 20).clamp(0.05, 0.95)  # 19 distinct times, so the exact score is cheap to evaluate
_losses = {c: dsm_loss(_scaled_exact(c), QUADRATIC, _x0, _t, eps=_eps).item() for c in (0.8, 1.0, 1.25)}
assert _losses[1.0] < _losses[0.8] and _losses[1.0] < _losses[1.25], f"the exact score must win: {_losses}"
### END HIDDEN TESTS

# %% [markdown] id="part_f"
# ## Part F — why denoising learns the score (3 points, graded by hand)
#
# Fix $t$ and write $q_t(\mathbf{x}_t) = \int q(\mathbf{x}_t \mid \mathbf{x}_0)\,q_0(\mathbf{x}_0)\,d\mathbf{x}_0$.
#
# 1. Show that $\nabla\log q_t(\mathbf{x}_t) = \mathbb{E}\big[\nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid
#    \mathbf{x}_0) \,\big|\, \mathbf{x}_t\big]$, the average of the target of E1 over the posterior
#    $q(\mathbf{x}_0 \mid \mathbf{x}_t)$.
# 2. Deduce that the denoising objective of Part E equals $\mathbb{E}\lVert\mathbf{s}(\mathbf{x}_t) -
#    \nabla\log q_t(\mathbf{x}_t)\rVert^2 + C$ with $C$ independent of $\mathbf{s}$, so that its minimiser over all
#    functions is the score of the marginal, and explain why a positive weighting $\lambda(t)$ of the times does not
#    change that minimiser.
# 3. Show that the smallest value of your `dsm_loss` at a fixed $t$ (the $\sigma^2$-weighted loss per coordinate, in
#    $D$ dimensions) is $1 - \sigma(t)^2\,\mathbb{E}\lVert\nabla\log q_t(\mathbf{x}_t)\rVert^2 / D$. What does it tend
#    to as $t \to 0$ for data with a smooth density such as `MIXTURE`, and what is it at $t = 1$, where $q_1 \approx
#    \mathcal{N}(\mathbf{0}, \mathbf{I})$? What does that tell you about reading a training curve of this loss?
#    (A scratch cell evaluating `dsm_loss` with the exact score is a good check.)

# %% [markdown] id="dsm_minimiser" kind="manual" points=3
# ### BEGIN SOLUTION
# **1.** Differentiate under the integral (the Gaussian kernel is smooth and decays fast):
#
# $$\nabla q_t(\mathbf{x}_t) = \int \nabla_{\mathbf{x}_t} q(\mathbf{x}_t \mid \mathbf{x}_0)\,q_0(\mathbf{x}_0)\,
# d\mathbf{x}_0 = \int \nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0)\;q(\mathbf{x}_t \mid
# \mathbf{x}_0)\,q_0(\mathbf{x}_0)\,d\mathbf{x}_0 .$$
#
# Dividing by $q_t(\mathbf{x}_t)$ and using Bayes, $q(\mathbf{x}_t \mid \mathbf{x}_0)\,q_0(\mathbf{x}_0) /
# q_t(\mathbf{x}_t) = q(\mathbf{x}_0 \mid \mathbf{x}_t)$, gives $\nabla\log q_t(\mathbf{x}_t) =
# \mathbb{E}[\nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0) \mid \mathbf{x}_t] =
# -\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]/\sigma(t)$.
#
# **2.** Write $\mathbf{u} = \nabla_{\mathbf{x}_t}\log q(\mathbf{x}_t \mid \mathbf{x}_0)$ and $\mathbf{s}^* =
# \nabla\log q_t$. Then $\lVert\mathbf{s} - \mathbf{u}\rVert^2 = \lVert\mathbf{s} - \mathbf{s}^*\rVert^2 +
# 2(\mathbf{s} - \mathbf{s}^*)\cdot(\mathbf{s}^* - \mathbf{u}) + \lVert\mathbf{s}^* - \mathbf{u}\rVert^2$. Taking
# the expectation given $\mathbf{x}_t$ first, the cross term vanishes because $\mathbb{E}[\mathbf{u} \mid
# \mathbf{x}_t] = \mathbf{s}^*(\mathbf{x}_t)$ by 1, and $\mathbf{s} - \mathbf{s}^*$ is a function of
# $\mathbf{x}_t$ alone. So the objective is $\mathbb{E}\lVert\mathbf{s} - \mathbf{s}^*\rVert^2 + C$ with $C =
# \mathbb{E}\lVert\mathbf{s}^* - \mathbf{u}\rVert^2$ (the posterior variance of $\mathbf{u}$), which does not
# involve $\mathbf{s}$: the minimum is reached exactly at $\mathbf{s} = \mathbf{s}^*$ ($q_t$-almost everywhere).
# With a time-dependent model the objective summed or integrated over $t$ with weights $\lambda(t) > 0$ is
# minimised by minimising each $t$'s term separately (the model's value at one $t$ does not enter another's term),
# and each term's minimiser does not depend on its positive factor; the weighting only matters when the model
# cannot reach the minimiser everywhere, where it decides which times' errors are traded for which.
#
# **3.** With $\mathbf{u} = -\boldsymbol\epsilon/\sigma$ the weighted loss per coordinate is $\frac1D
# \mathbb{E}\lVert\sigma\mathbf{s} + \boldsymbol\epsilon\rVert^2$. At $\mathbf{s} = \mathbf{s}^*$:
# $\mathbb{E}\lVert\boldsymbol\epsilon\rVert^2 = D$, and $\mathbb{E}[\boldsymbol\epsilon\cdot\mathbf{s}^*] =
# \mathbb{E}[\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]\cdot\mathbf{s}^*] = -\sigma\,\mathbb{E}
# \lVert\mathbf{s}^*\rVert^2$ by 1, so
#
# $$\frac1D\Big(\sigma^2\mathbb{E}\lVert\mathbf{s}^*\rVert^2 - 2\sigma^2\mathbb{E}\lVert\mathbf{s}^*\rVert^2 +
# D\Big) = 1 - \sigma(t)^2\,\mathbb{E}\lVert\nabla\log q_t\rVert^2 / D .$$
#
# As $t \to 0$, $\sigma \to 0$ while $\mathbb{E}\lVert\nabla\log q_t\rVert^2$ tends to the finite Fisher information
# of the smooth data density, so the minimum tends to **1**: with so little noise, $\mathbf{x}_t$ says almost nothing
# about which $\boldsymbol\epsilon$ was added. At $t = 1$, $q_1 \approx \mathcal{N}(\mathbf{0}, \mathbf{I})$ has
# score $-\mathbf{x}$ with $\mathbb{E}\lVert\mathbf{x}\rVert^2 = D$ and $\sigma^2 = 1 - m(1)^2$, so the minimum is
# about $m(1)^2 \approx 0$: $\mathbf{x}_1 \approx \boldsymbol\epsilon$ reveals the noise. A perfect model's loss
# therefore falls from 1 to 0 across $t$ (for `MIXTURE` and QUADRATIC, about 0.92 at $t = 0.05$, 0.5 at $t = 0.2$
# and 0.12 at $t = 0.6$); a training curve of this loss never reaches zero, its floor depends on the mix of $t$ in the
# batch, and only the gap above $1 - \sigma^2 \mathbb{E}\lVert\nabla\log q_t\rVert^2 / D$ at each $t$ measures the
# model's error.
#
# *Marking:* 1 for part 1 (differentiation under the integral and Bayes; stating the identity without the
# derivation earns nothing); 1 for part 2 (the decomposition with the vanishing cross term, the minimiser, and the
# weighting argument: per-$t$ minimisation with a positive factor); 1 for part 3, which needs the formula derived
# with $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t] = -\sigma\mathbf{s}^*$ and both limits (1 as $t \to 0$,
# about 0 at $t = 1$) with the consequence (the loss has a $t$-dependent floor above zero).
# ### END SOLUTION
