# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 4 — DDIM: the $\eta$ family in the noise-to-signal variables, step selection and inversion
#
# A network trained with $L_\text{simple}$ only ever sees the marginals $q(\mathbf{x}_t \mid \mathbf{x}_0) =
# \mathcal{N}\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,\ (1-\bar\alpha_t)\mathbf{I}\big)$. DDIM (Song, Meng & Ermon 2021)
# exploits this: it builds a whole family of generative processes, indexed by a noise level $\sigma$ for each jump,
# that share those marginals, so one trained $\boldsymbol\epsilon_\theta$ serves every member, and the members may
# jump over steps. One member is DDPM's ancestral sampler; another draws no noise at all after $\mathbf{x}_T$ and is
# a deterministic map that can be run backwards, from data to noise.
#
# Lesson 4 and the course package `ddpm_scratch` write DDIM as the paper does, in $\mathbf{x}_t$ and
# $\bar\alpha_t$, with one $\eta$ for a whole run, and invert it with $\eta = 0$. This problem set takes the steps
# the package does not: the family in the variables where the probability-flow ODE is simplest (EDM's and
# k-diffusion's "ancestral" form: a deterministic step down, then fresh noise up), a noise level chosen jump by jump,
# a grid of steps uniform in the log signal-to-noise ratio, and the inversion of a *stochastic* member given its
# noises. You write the pieces and prove numerically that they do what the lecture says:
#
# | part | what you show | points |
# |---|---|---|
# | A | a jump's noise level split into a deterministic part and fresh noise; $\eta = 1$ is DDPM's posterior | 3 |
# | B | the DDIM step in the noise-to-signal variables: an Euler step of the ODE, then noise | 4 |
# | C | step selection: $S$ steps uniform in the log signal-to-noise ratio, distinct and ending at $T$ | 3 |
# | D | sampling with a noise level per jump, and its inverse, data to noise, given the sampler's noises | 3 + 3 |
# | E | why the marginals do not depend on $\eta$, and why $\eta = 1$ is DDPM's step (by hand) | 4 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones check
# your answer on inputs where the usual slips give other numbers and say what they expected and what came; hidden
# ones run at grading time, over every type and shape a part allows, and compare your functions with independent
# computations (the posterior of a jump by Gaussian conditioning, the moments your step propagates, DDPM's
# posterior mean, DDIM as the paper writes it, a Monte Carlo check of the marginals with error bars derived from
# the sample size, the round trip data -> noise -> data with the exact noise predictor). Write your answers with
# `torch` and `math`; do not import `ddpm_scratch` (its functions answer other questions: the hidden tests tell them
# apart). You may add cells of your own to experiment: grading runs them too but scores only the answer cells, so
# keep them quick (and do not copy, delete or re-create the given cells).
#
# **Conventions.** As in problem sets 1 and 2: arrays over time have length $T+1$, index $t$ is the lecture's $t$,
# index 0 is the data ($\bar\alpha_0 = 1$). Steps are Python `int`s of the *full* schedule: a short sampler visits
# a few of them, $0 = \tau_0 < \tau_1 < \dots < \tau_S = T$, and jumps from one to the next; we write $t$ for the
# step a jump starts from and $t'$ for the one it lands on. An *eps-model* is any callable `eps_model(x_t, t)`
# taking `x_t` of shape `(B, ...)` and `t` of shape `(B,)` (dtype `torch.long`, the training step) and returning a
# tensor shaped like `x_t`. The notebook computes in float64.
#
# **Notation.** $\sigma$ keeps DDIM's meaning, the standard deviation of the noise a jump adds to $\mathbf{x}$.
# The noise-to-signal ratio $\varsigma_t = \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$ ("varsigma") is what EDM and
# k-diffusion call $\sigma$ and lesson 4 calls $\sigma_\text{EDM}$; $\lambda_t = -\log\varsigma_t = \frac12\log
# \text{SNR}_t$ is lesson 4's half log-SNR. In code: `varsigma`.
#
# **Calling convention** (the course package's): the state and the levels or steps come first, positionally;
# everything a model predicts or a caller draws is keyword-only, e.g. `ancestral_step(x_bar, 2.0, 1.0, eps=eps_hat,
# eta=0.5, noise=z)`. The predicted noise, the state and the noise $\mathbf{z}$ all have the same shape, so two of
# them swapped in a positional call would raise nothing; a keyword cannot be swapped silently. Whole runs take the
# model first, `ancestral_sample(eps_model, sched, x_T, timesteps=...)`.
#
# The setup cell gives you DDPM's linear schedule `SCHED` ($T = 1000$) and the data `MIXTURE`, four round Gaussians in
# the plane. Each component stays Gaussian under the forward process, so $q(\mathbf{x}_t)$ is again a mixture and the
# best possible noise predictor $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t] = -\sqrt{1-\bar\alpha_t}\,
# \nabla\log q(\mathbf{x}_t)$ has a closed form: `mixture_eps_model(MIXTURE, SCHED)` is that "perfect network", with
# no training error, to test your samplers against. `schedule_from_varsigmas` builds a schedule from the
# noise-to-signal ratios of its steps; the small schedules `TRIO` and `GAPS` built with it have round numbers, for
# checks by hand.

# %% id="setup"
import math
from typing import NamedTuple

import matplotlib.pyplot as plt
import torch
from torch import Tensor

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than two that wait for each other


class Schedule(NamedTuple):
    """A variance schedule in the course's convention: every field has shape (T+1,) and index t is the lecture's t."""

    betas: Tensor  # beta_t, betas[0] = 0
    alphas: Tensor  # alpha_t = 1 - beta_t
    alpha_bars: Tensor  # alpha_bar_t = prod_{s <= t} alpha_s, alpha_bars[0] = 1

    @property
    def T(self) -> int:
        return self.betas.numel() - 1


def schedule_from_betas(betas: Tensor) -> Schedule:
    """The schedule with beta_1..beta_T = betas (a (T,) tensor); index 0 is the data."""
    betas = torch.cat([torch.zeros(1), betas.to(torch.float64)])
    return Schedule(betas, 1 - betas, torch.cumprod(1 - betas, dim=0))


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear schedule, beta_1 = beta_start ... beta_T = beta_end."""
    return schedule_from_betas(torch.linspace(beta_start, beta_end, T))


def schedule_from_varsigmas(varsigmas: list[float]) -> Schedule:
    """The schedule whose steps 1..T have the given noise-to-signal ratios (increasing, > 0): since
    varsigma_t^2 = (1 - abar_t) / abar_t, abar_t = 1 / (1 + varsigma_t^2) and beta_t = 1 - abar_t / abar_{t-1}."""
    abar = torch.cat([torch.ones(1), 1 / (1 + torch.tensor(varsigmas, dtype=torch.float64) ** 2)])
    return schedule_from_betas(1 - abar[1:] / abar[:-1])


class Mixture(NamedTuple):
    """sum_k weights[k] N(means[k], stds[k]^2 I): a mixture of round Gaussians in D dimensions."""

    weights: Tensor  # (K,), sums to 1
    means: Tensor  # (K, D)
    stds: Tensor  # (K,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n independent draws, (n, D)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.stds[k, None] * torch.randn(n, self.means.shape[1], generator=generator)


def mixture_eps_model(mixture: Mixture, sched: Schedule):
    """The exact noise predictor E[eps | x_t] for data drawn from `mixture`, as an eps-model (x_t (B, D), t (B,) long).

    Component k diffuses to N(sqrt(abar_t) mu_k, v_k I) with v_k = abar_t s_k^2 + 1 - abar_t, so with r_k(x_t) the
    probability that x_t came from component k (Tweedie's formula, lesson 3):
    E[eps | x_t] = -sqrt(1 - abar_t) grad log q(x_t) = sqrt(1 - abar_t) sum_k r_k(x_t) (x_t - sqrt(abar_t) mu_k) / v_k.
    Every example may have its own t; at t = 0 it returns 0.
    """
    def eps_model(x_t: Tensor, t: Tensor) -> Tensor:
        abar = sched.alpha_bars[t][:, None]  # (B, 1)
        var = abar * mixture.stds**2 + (1 - abar)  # (B, K)
        diff = x_t[:, None, :] - abar.sqrt()[:, :, None] * mixture.means  # (B, K, D)
        dim = x_t.shape[1]
        log_joint = mixture.weights.log() - 0.5 * dim * var.log() - diff.pow(2).sum(dim=-1) / (2 * var)
        resp = torch.softmax(log_joint, dim=1)
        return (1 - abar).sqrt() * (resp[:, :, None] * diff / var[:, :, None]).sum(dim=1)

    return eps_model


SCHED = linear_schedule(1000)
MIXTURE = Mixture(weights=torch.tensor([0.2, 0.3, 0.35, 0.15]),
                  means=torch.tensor([[-1.5, 0.5], [1.0, 1.2], [0.8, -1.0], [-0.6, -1.4]]),
                  stds=torch.tensor([0.3, 0.2, 0.35, 0.25]))
# Two made-up schedules with round noise-to-signal ratios, for the visible tests and for checks by hand:
# TRIO: varsigma_1, varsigma_2, varsigma_3 = 0.5, 1, 2, i.e. alpha_bar = 1, 0.8, 0.5, 0.2 at t = 0, 1, 2, 3;
# GAPS: varsigma_1..6 = 0.1, 0.15, 0.2, 1, 5, 10 (a big gap in log varsigma between steps 3 and 4).
TRIO = schedule_from_varsigmas([0.5, 1.0, 2.0])
GAPS = schedule_from_varsigmas([0.1, 0.15, 0.2, 1.0, 5.0, 10.0])

# %% [markdown] id="part_a"
# ## Part A — the noise level of a jump, split in two (3 points)
#
# DDIM replaces DDPM's forward chain by a family of processes, one for each choice of $\sigma \ge 0$ per jump,
# defined backwards from $q_\sigma(\mathbf{x}_T \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_T}\,\mathbf{x}_0,
# (1-\bar\alpha_T)\mathbf{I})$ by
#
# $$q_\sigma(\mathbf{x}_{t'} \mid \mathbf{x}_t, \mathbf{x}_0) = \mathcal{N}\Big(\sqrt{\bar\alpha_{t'}}\,\mathbf{x}_0
# + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\;\frac{\mathbf{x}_t - \sqrt{\bar\alpha_t}\,\mathbf{x}_0}{\sqrt{1-\bar\alpha_t}},
# \ \sigma^2\mathbf{I}\Big), \qquad t' < t,$$
#
# for the pairs of consecutive steps of the grid it runs on (lesson 4, section 2). Divide by $\sqrt{\bar\alpha}$:
# in $\bar{\mathbf{x}}_t = \mathbf{x}_t / \sqrt{\bar\alpha_t}$ the forward marginal is $\bar{\mathbf{x}}_t =
# \mathbf{x}_0 + \varsigma_t\,\boldsymbol\epsilon$, the data plus noise of standard deviation $\varsigma_t$ (it grows
# from 0 at the data to $\varsigma_T \approx 157$ for `SCHED`), and the family's kernel becomes
#
# $$q_\sigma(\bar{\mathbf{x}}_{t'} \mid \bar{\mathbf{x}}_t, \mathbf{x}_0) = \mathcal{N}\Big(\mathbf{x}_0 +
# \varsigma_\downarrow\,\frac{\bar{\mathbf{x}}_t - \mathbf{x}_0}{\varsigma_t},\ \varsigma_\uparrow^2\mathbf{I}\Big),
# \qquad \varsigma_\uparrow = \frac{\sigma}{\sqrt{\bar\alpha_{t'}}}, \quad \varsigma_\downarrow =
# \sqrt{\varsigma_{t'}^2 - \varsigma_\uparrow^2}.$$
#
# A member of the family splits the level $\varsigma_{t'}$ it must reach into a part $\varsigma_\downarrow$ carried
# over deterministically from $\bar{\mathbf{x}}_t$ and fresh noise $\varsigma_\uparrow$, with
# $\varsigma_\downarrow^2 + \varsigma_\uparrow^2 = \varsigma_{t'}^2$. (k-diffusion's "ancestral" samplers and
# diffusers' `EulerAncestralDiscreteScheduler` call them `sigma_down` and `sigma_up`.)
#
# DDIM chooses the noise as a fraction $\eta \in [0, 1]$ of the posterior's: $\eta = 1$ is the standard deviation of
# the forward process's own posterior $q(\bar{\mathbf{x}}_{t'} \mid \bar{\mathbf{x}}_t, \mathbf{x}_0)$ for the jump,
# and $\varsigma_\uparrow(\eta) = \eta \times$ that. In these variables the posterior is simple: over a jump from
# $t'$ up to $t$ the forward process adds independent noise, $\bar{\mathbf{x}}_t = \bar{\mathbf{x}}_{t'} +
# \sqrt{\varsigma_t^2 - \varsigma_{t'}^2}\;\mathbf{w}$ with $\mathbf{w} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$
# independent of $\bar{\mathbf{x}}_{t'}$ given $\mathbf{x}_0$ (check it from $\mathbf{x}_t =
# \sqrt{\bar\alpha_t/\bar\alpha_{t'}}\,\mathbf{x}_{t'} + \sqrt{1 - \bar\alpha_t/\bar\alpha_{t'}}\,\mathbf{w}$). Find
# the variance of $\bar{\mathbf{x}}_{t'}$ given $\bar{\mathbf{x}}_t$ and $\mathbf{x}_0$ by Gaussian conditioning of
# the pair, as in problem set 1, and write the split
#
# $$(\varsigma_t,\ \varsigma_{t'},\ \eta) \mapsto (\varsigma_\downarrow, \varsigma_\uparrow), \qquad
# \varsigma_\uparrow = \eta\,\sqrt{\operatorname{Var}[\bar{\mathbf{x}}_{t'} \mid \bar{\mathbf{x}}_t, \mathbf{x}_0]}.$$
#
# Mind that $\eta$ scales the **standard deviation**, not the variance. Raise a `ValueError` whose message names the
# argument when `eta` is outside $[0, 1]$, or when `varsigma_next` is not in $[0, \varsigma_t)$ (a jump goes down,
# possibly to the data, $\varsigma = 0$).
#
# *Your function must accept:* `varsigma` and `varsigma_next` both Python floats, or both float tensors of one shape
# (0-d, `(S,)` for a whole grid of jumps at once, ...), float32 or float64; `eta` a Python float (or int: 0 and 1
# are numbers too), or a tensor of the levels' shape. *It returns* the pair `(varsigma_down, varsigma_up)`: two
# floats for float inputs (0-d tensors are accepted), two tensors of the levels' shape otherwise.

# %% id="ancestral_split" kind="solution"
def ancestral_split(varsigma, varsigma_next, eta):
    """(varsigma_down, varsigma_up) of the jump varsigma -> varsigma_next at noise fraction eta:
    varsigma_up = eta sqrt(Var[x_bar' | x_bar, x0]), varsigma_down = sqrt(varsigma_next^2 - varsigma_up^2).

    varsigma, varsigma_next: floats, or float tensors of one shape, 0 <= varsigma_next < varsigma.
    eta: a number in [0, 1], or a tensor of the levels' shape.  Returns two floats or two tensors of that shape.
    """
    ### BEGIN SOLUTION
    eta_values = torch.as_tensor(eta, dtype=torch.float64)
    if not bool(((eta_values >= 0) & (eta_values <= 1)).all()):
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    upper, lower = torch.as_tensor(varsigma, dtype=torch.float64), torch.as_tensor(varsigma_next, dtype=torch.float64)
    if not bool(((lower >= 0) & (lower < upper)).all()):
        raise ValueError(f"varsigma_next must satisfy 0 <= varsigma_next < varsigma = {varsigma}, got {varsigma_next}")
    # x_bar_t = x_bar_t' + sqrt(vs^2 - vs'^2) w: Var x_bar_t' = vs'^2, Cov = vs'^2, Var x_bar_t = vs^2, so the
    # conditional variance is vs'^2 - vs'^4 / vs^2 = vs'^2 (vs^2 - vs'^2) / vs^2 (a Brownian bridge in vs^2).
    kept = (varsigma_next / varsigma) ** 2  # in [0, 1)
    up = eta * varsigma_next * (1 - kept) ** 0.5
    down = varsigma_next * (1 - eta**2 * (1 - kept)) ** 0.5  # = sqrt(vs'^2 - up^2), never the root of a negative
    return down, up
    ### END SOLUTION


# %% id="ancestral_split_tests" kind="tests" points=3
# The jump varsigma = 2 -> varsigma' = 1: x_bar_2 = x_bar_1 + sqrt(4 - 1) w, so Var[x_bar_1 | x_bar_2, x0] =
# 1 - 1^2 / 4 = 0.75 and at eta = 1 varsigma_up = sqrt(0.75) = 0.8660, varsigma_down = sqrt(1 - 0.75) = 0.5; at
# eta = 0.4, varsigma_up = 0.4 sqrt(0.75) = 0.3464 and varsigma_down = sqrt(1 - 0.12) = 0.9381.
for _eta, _expected in ((1.0, (0.5, math.sqrt(0.75))), (0.4, (math.sqrt(0.88), 0.4 * math.sqrt(0.75)))):
    _got = tuple(float(v) for v in ancestral_split(2.0, 1.0, _eta))
    assert all(abs(g - e) < 1e-12 for g, e in zip(_got, _expected, strict=True)), \
        f"2 -> 1 at eta = {_eta}: expected (down, up) = ({_expected[0]:.4f}, {_expected[1]:.4f}), got " \
        f"({_got[0]:.4f}, {_got[1]:.4f})"
# Three jumps at once, as tensors: 2 -> 1, 4 -> 0 (to the data: no noise can be added), 0.5 -> 0.3 (variance
# 0.09 (0.25 - 0.09) / 0.25 = 0.0576, up = 0.24, down = sqrt(0.09 - 0.0576) = 0.18).
_down, _up = ancestral_split(torch.tensor([2.0, 4.0, 0.5]), torch.tensor([1.0, 0.0, 0.3]), 1.0)
assert isinstance(_down, Tensor) and isinstance(_up, Tensor) and _down.shape == _up.shape == (3,), \
    f"tensor levels of shape (3,) must give two (3,) tensors, got {type(_down).__name__} {getattr(_down, 'shape', '')}"
assert torch.allclose(_up, torch.tensor([math.sqrt(0.75), 0.0, 0.24]), atol=1e-12) and \
    torch.allclose(_down, torch.tensor([0.5, 0.0, 0.18]), atol=1e-12), \
    f"expected up = [0.8660, 0, 0.24], down = [0.5, 0, 0.18], got up = {_up.tolist()}, down = {_down.tolist()}"
for _args, _name in (((2.0, 1.0, 1.5), "eta"), ((2.0, 2.0, 0.5), "varsigma_next"),
                     ((torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.5]), 0.5), "varsigma_next")):
    try:
        ancestral_split(*_args)
    except ValueError as _error:
        assert _name in str(_error), f"ancestral_split{_args}: the message must name {_name}, got: {_error}"
    else:
        raise AssertionError(f"ancestral_split{_args} must raise a ValueError naming {_name}; it returned")
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _jump_posterior_var(abar_from, abar_to):
    # q(x_to | x_from, x0) in the x variables, by Gaussian conditioning of the pair (x_to, x_from) given x0:
    # Var x_to = 1 - abar_to, Var x_from = 1 - abar_from, Cov = sqrt(abar_from / abar_to) (1 - abar_to); the
    # conditional variance is the Schur complement Var - Cov^2 / Var (DDPM's beta_tilde of the jump).
    cov = math.sqrt(abar_from / abar_to) * (1 - abar_to)
    return (1 - abar_to) - cov**2 / (1 - abar_from)


def _cosine_schedule(T, s=0.008):  # Nichol & Dhariwal's cosine alpha_bar, betas clipped at 0.999
    f = [math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2 for u in range(T + 1)]
    return schedule_from_betas(torch.tensor([min(1 - f[u] / f[u - 1], 0.999) for u in range(1, T + 1)]))


def _expected_split(abar_from, abar_to, eta):  # from DDIM's sigma in x: varsigma_up = sigma / sqrt(abar_to)
    up = eta * math.sqrt(max(_jump_posterior_var(abar_from, abar_to), 0.0) / abar_to)
    return math.sqrt(max((1 - abar_to) / abar_to - up**2, 0.0)), up


# 1) Floats: eta = 1 is the jump's posterior standard deviation (DDPM's beta_tilde of the jump, in x, divided by
# sqrt(abar_t')), and down^2 + up^2 = varsigma_t'^2, on two schedules and for jumps of every size
for _sched in (SCHED, _cosine_schedule(400)):
    _ab = _sched.alpha_bars.tolist()
    _T = _sched.T
    for _t, _tp in ((1, 0), (2, 1), (37, 36), (_T, _T - 1), (_T, 0), (_T, _T // 2), (_T // 2, 3), (_T - 5, 1)):
        _vs, _vs_next = math.sqrt((1 - _ab[_t]) / _ab[_t]), math.sqrt((1 - _ab[_tp]) / _ab[_tp])
        for _eta in (1.0, 0.55, 0.1, 0.0, 1, 0):
            _expected = _expected_split(_ab[_t], _ab[_tp], _eta)
            _got = tuple(float(v) for v in ancestral_split(_vs, _vs_next, _eta))
            _where = f"T = {_T}, jump {_t} -> {_tp} (varsigma {_vs:.5g} -> {_vs_next:.5g}), eta = {_eta}"
            for _g, _e, _what in zip(_got, _expected, ("down", "up"), strict=True):
                assert abs(_g - _e) <= 1e-9 * max(_vs_next, 1e-300) + 1e-15, \
                    f"{_where}: varsigma_{_what} = {_g:.10g}, expected {_e:.10g}"
            assert abs(_got[0] ** 2 + _got[1] ** 2 - _vs_next**2) <= 1e-9 * _vs_next**2 + 1e-15, \
                f"{_where}: down^2 + up^2 = {_got[0] ** 2 + _got[1] ** 2:.10g}, not varsigma_t'^2 = {_vs_next**2:.10g}"
# 2) Tensors: a whole grid of jumps at once (float64 and float32, eta a number or a tensor), and 0-d tensors
_ab = SCHED.alpha_bars.tolist()
_grid = [0, 1, 3, 20, 21, 150, 600, 1000]
_vs_all = torch.tensor([math.sqrt((1 - a) / a) for a in _ab])
_upper, _lower = _vs_all[_grid[1:]], _vs_all[_grid[:-1]]
_etas = torch.tensor([0.0, 1.0, 0.3, 0.9, 0.5, 0.05, 1.0])
for _eta in (1.0, 0.25, _etas):
    _eta_list = _eta.tolist() if isinstance(_eta, Tensor) else [_eta] * len(_grid[1:])
    _exp = [_expected_split(_ab[t], _ab[tp], e) for t, tp, e in zip(_grid[1:], _grid[:-1], _eta_list, strict=True)]
    for _dtype, _tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        _down, _up = ancestral_split(_upper.to(_dtype), _lower.to(_dtype), _eta)
        assert isinstance(_down, Tensor) and _down.shape == (7,) and isinstance(_up, Tensor) and _up.shape == (7,), \
            f"levels of shape (7,), {_dtype}, eta {type(_eta).__name__}: expected two (7,) tensors"
        assert torch.allclose(_down.double(), torch.tensor([e[0] for e in _exp]), rtol=_tol, atol=1e-12) and \
            torch.allclose(_up.double(), torch.tensor([e[1] for e in _exp]), rtol=_tol, atol=1e-12), \
            f"levels of shape (7,), {_dtype}, eta = {_eta}: got down {_down.tolist()}, up {_up.tolist()}, " \
            f"expected {[round(e[0], 6) for e in _exp]}, {[round(e[1], 6) for e in _exp]}"
_down, _up = ancestral_split(torch.tensor(3.0), torch.tensor(1.5), 0.5)
_expected = (1.5 * math.sqrt(1 - 0.25 * 0.75), 0.5 * 1.5 * math.sqrt(0.75))
assert abs(float(_down) - _expected[0]) < 1e-12 and abs(float(_up) - _expected[1]) < 1e-12, \
    f"0-d tensors 3 -> 1.5 at eta = 0.5: expected {_expected}, got ({float(_down)}, {float(_up)})"
# 3) The ends: eta = 0 keeps everything (down = varsigma', up = 0); a jump to the data adds no noise
for _eta in (0.0, 0.7, 1.0):
    _got = tuple(float(v) for v in ancestral_split(157.0, 0.0, _eta))
    assert _got == (0.0, 0.0), f"157 -> 0 at eta = {_eta}: a jump to the data is (0, 0), got {_got}"
_got = tuple(float(v) for v in ancestral_split(0.9, 0.2, 0.0))
assert abs(_got[0] - 0.2) < 1e-15 and _got[1] == 0.0, f"0.9 -> 0.2 at eta = 0: expected (0.2, 0), got {_got}"
# 4) bad arguments, each named in the message (floats, and a tensor with one bad entry)
for _args, _name in (((2.0, 1.0, -0.1), "eta"), ((2.0, 1.0, 1.0001), "eta"), ((1.0, 2.0, 0.5), "varsigma_next"),
                     ((1.0, -0.5, 0.5), "varsigma_next"), ((1.0, 1.0, 0.0), "varsigma_next"),
                     ((torch.tensor([2.0, 1.0]), torch.tensor([1.0, 1.5]), 0.5), "varsigma_next"),
                     ((torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.5, 2.0])), "eta")):
    try:
        ancestral_split(*_args)
    except ValueError as _error:
        assert _name in str(_error), f"ancestral_split{_args}: the message must name {_name}: {_error}"
    else:
        raise AssertionError(f"ancestral_split{_args} must raise a ValueError naming {_name}")
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — the DDIM step in the noise-to-signal variables (4 points)
#
# The generative process puts the network's guess of $\mathbf{x}_0$ where $q_\sigma$ has the true one. With
# $\boldsymbol\epsilon = \boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ (the keyword `eps`) the guess is
# $\hat{\mathbf{x}}_0 = \bar{\mathbf{x}}_t - \varsigma_t\,\boldsymbol\epsilon$ (DDIM eq. 9 divided by
# $\sqrt{\bar\alpha_t}$), the fraction $(\bar{\mathbf{x}}_t - \hat{\mathbf{x}}_0)/\varsigma_t$ is
# $\boldsymbol\epsilon$, and a draw from the kernel of Part A is
#
# $$\bar{\mathbf{x}}_{t'} = \hat{\mathbf{x}}_0 + \varsigma_\downarrow\,\boldsymbol\epsilon +
# \varsigma_\uparrow\,\mathbf{z} = \underbrace{\bar{\mathbf{x}}_t + (\varsigma_\downarrow - \varsigma_t)\,
# \boldsymbol\epsilon}_{\text{Euler, from } \varsigma_t \text{ down to } \varsigma_\downarrow} +
# \underbrace{\varsigma_\uparrow\,\mathbf{z}}_{\text{fresh noise, up to } \varsigma_{t'}}.$$
#
# The first part is one step of Euler's method for $d\bar{\mathbf{x}}/d\varsigma = \boldsymbol\epsilon$, lesson 3's
# probability-flow ODE in these variables (DDIM sec. 4.3); it overshoots, to the level $\varsigma_\downarrow \le
# \varsigma_{t'}$, and the fresh noise brings the level back up to $\varsigma_{t'}$. Write the step, with
# $(\varsigma_\downarrow, \varsigma_\uparrow)$ from Part A. The noise $\mathbf{z}$ is the keyword `noise`; when it is
# `None` and $\eta > 0$, draw it as `torch.randn(x_bar.shape, generator=generator, dtype=x_bar.dtype)` (with
# `generator=None` that is torch's global generator). Add it as $+\,\varsigma_\uparrow\mathbf{z}$: the tests check
# the step exactly, not only in distribution.
#
# **$\eta = 0$** is special: $\varsigma_\uparrow = 0$, and the step must then be deterministic. It uses no noise and
# **draws none** (neither from `generator` nor from torch's global generator: the state of both must not move), and
# it does not call `ancestral_split`: with $\varsigma_\downarrow = \varsigma_{t'}$ the Euler step is a map between
# any two levels, also upwards ($\varsigma_{t'} > \varsigma_t$) and from the data ($\varsigma_t = 0$, where
# $\hat{\mathbf{x}}_0 = \bar{\mathbf{x}}_0$). Part D runs it that way to turn data into noise.
#
# *Your function must accept:* `x_bar` of shape `(B, ...)` for any $B \ge 1$ and any trailing shape (`(B, D)`,
# `(B, C, H, W)`, ...), float32 or float64; `eps` and `noise` of `x_bar`'s shape and dtype; `varsigma` and
# `varsigma_next` Python floats $\ge 0$ (0-d tensors are accepted); `eta` a Python float or int in $[0, 1]$, by
# default 0 (the deterministic step); `generator` a `torch.Generator` or `None`. *It returns* a tensor of `x_bar`'s
# shape and dtype.

# %% id="ancestral_step" kind="solution"
def ancestral_step(x_bar: Tensor, varsigma, varsigma_next, *, eps: Tensor, eta: float = 0.0,
                   noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One DDIM step in x_bar = x / sqrt(abar): x_bar' = x_bar + (varsigma_down - varsigma) eps + varsigma_up z.

    x_bar: (B, ...).  varsigma, varsigma_next: floats >= 0 (varsigma_next < varsigma unless eta = 0).  Keyword-only:
    eps (B, ...) the predicted noise at (x_t, t); eta in [0, 1], default 0; noise (B, ...) standard normal, or None:
    drawn with `generator` (in x_bar's dtype) when eta > 0, never drawn when eta = 0.
    Returns x_bar at varsigma_next: (B, ...), x_bar's dtype.
    """
    ### BEGIN SOLUTION
    if eta == 0:  # deterministic: an Euler step between any two levels, no noise, no split
        return x_bar + (varsigma_next - varsigma) * eps
    down, up = ancestral_split(varsigma, varsigma_next, eta)
    if noise is None:
        noise = torch.randn(x_bar.shape, generator=generator, dtype=x_bar.dtype)
    return x_bar + (down - varsigma) * eps + up * noise
    ### END SOLUTION


# %% id="ancestral_step_tests" kind="tests" points=4
# The jump 2 -> 1 at eta = 0.4 (Part A's visible example): down = sqrt(0.88), up = 0.4 sqrt(0.75), so the step is
# x_bar + (sqrt(0.88) - 2) eps + 0.4 sqrt(0.75) z. At eta = 0 from the data (0) up to 1.5 it is x_bar + 1.5 eps.
_gen = torch.Generator().manual_seed(1)
_x_bar, _eps, _z = (torch.randn(3, 2, 2, generator=_gen) for _ in range(3))  # (B, C, W): not only (B, D)
_x = ancestral_step(_x_bar, 2.0, 1.0, eps=_eps, eta=0.4, noise=_z)
assert isinstance(_x, Tensor) and _x.shape == (3, 2, 2), \
    f"the result must have x_bar's shape (3, 2, 2), got {getattr(_x, 'shape', type(_x).__name__)}"
_expected = _x_bar + (math.sqrt(0.88) - 2) * _eps + 0.4 * math.sqrt(0.75) * _z
assert torch.allclose(_x, _expected, rtol=1e-10, atol=1e-12), \
    f"2 -> 1 at eta = 0.4: expected x_bar + (sqrt(0.88) - 2) eps + 0.4 sqrt(0.75) z, e.g. " \
    f"{_expected[0, 0].tolist()}, " \
    f"got {_x[0, 0].tolist()}"
_g = torch.Generator().manual_seed(2)
_state, _global_state = _g.get_state(), torch.get_rng_state()
_x = ancestral_step(_x_bar, 0.0, 1.5, eps=_eps, generator=_g)  # eta left at its default, 0
assert torch.allclose(_x, _x_bar + 1.5 * _eps, rtol=1e-12), \
    f"eta = 0 (the default), 0 -> 1.5: expected x_bar + 1.5 eps, e.g. {(_x_bar + 1.5 * _eps)[0, 0].tolist()}, " \
    f"got {_x[0, 0].tolist()}"
assert torch.equal(_g.get_state(), _state), "at eta = 0 the step must not draw from the generator; it did"
assert torch.equal(torch.get_rng_state(), _global_state), "at eta = 0 the step must not draw from torch's generator"
_x = ancestral_step(_x_bar.float(), 2.0, 1.0, eps=_eps.float(), eta=0.4, generator=_g)  # float32, z drawn
assert _x.dtype == torch.float32, f"a float32 x_bar must give a float32 result (draw z in its dtype), got {_x.dtype}"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _jump_posterior_var(abar_from, abar_to):  # Gaussian conditioning in x, as in Part A's hidden tests
    cov = math.sqrt(abar_from / abar_to) * (1 - abar_to)
    return (1 - abar_to) - cov**2 / (1 - abar_from)


_ab = SCHED.alpha_bars.tolist()
_vs = [math.sqrt((1 - a) / a) for a in _ab]


def _affine_coefficients(t, tp, eta):
    # The step is affine in (x_bar, eps, z) jointly: read the three weights off unit inputs, then check that random
    # inputs give a x_bar + b eps + c z (the step must be exactly this affine map, coordinate by coordinate).
    unit = torch.eye(3)[:, :, None]  # rows: (x_bar, eps, z) = e_1, e_2, e_3
    out = ancestral_step(unit[:, 0], _vs[t], _vs[tp], eps=unit[:, 1], eta=eta, noise=unit[:, 2])
    a, b, c = out[:, 0].tolist()
    g = torch.Generator().manual_seed(t + tp)
    x, e, z = (torch.randn(5, 2, generator=g) for _ in range(3))
    assert torch.allclose(ancestral_step(x, _vs[t], _vs[tp], eps=e, eta=eta, noise=z), a * x + b * e + c * z,
                          rtol=1e-10, atol=1e-12), f"the step {t} -> {tp} (eta = {eta}) is not a x_bar + b eps + c z"
    return a, b, c


_jumps = ((1000, 950), (1000, 1), (600, 599), (600, 200), (300, 40), (20, 5), (2, 1), (700, 0), (1, 0))
# 1) Exact moment propagation, the DDIM family's defining property (DDIM Lemma 1). If x_bar_t = x0 + varsigma_t eps
# with eps ~ N(0, I) and the step is given that same eps, then x_bar_t' = a x0 + (a varsigma_t + b) eps + c z has
# mean a x0 and variance (a varsigma_t + b)^2 + c^2 per coordinate: they must be q(x_bar_t' | x0)'s x0 and
# varsigma_t'^2 for EVERY eta, and the noise weight c must be eta times the posterior standard deviation of the jump
# (DDPM's beta_tilde of the jump in x, divided by sqrt(abar_t')). In closed form: tolerance 1e-10 relative.
for _t, _tp in _jumps:
    for _eta in (0.0, 0.3, 0.7, 1.0, 1):
        _a, _b, _c = _affine_coefficients(_t, _tp, _eta)
        _where = f"jump {_t} -> {_tp}, eta = {_eta}"
        assert abs(_a - 1) < 1e-10, f"{_where}: the mean of x_bar_t' given x0 is {_a:.8g} x0, not x0"
        _var = (_a * _vs[_t] + _b) ** 2 + _c**2
        assert abs(_var - _vs[_tp] ** 2) < 1e-10 * max(_vs[_tp] ** 2, 1e-6), \
            f"{_where}: x_bar_t' has variance {_var:.8g} per coordinate, q(x_bar_t' | x0) has {_vs[_tp] ** 2:.8g}"
        _c_expected = _eta * math.sqrt(max(_jump_posterior_var(_ab[_t], _ab[_tp]), 0.0) / _ab[_tp])
        assert abs(_c - _c_expected) < 1e-10 * max(_vs[_tp], 1e-6), \
            f"{_where}: the noise weight {_c:.8g} is not eta times the jump's posterior standard deviation " \
            f"{_c_expected:.8g}"
# 2) eta = 1 is DDPM's posterior step for the jump. Back in x = sqrt(abar_t') x_bar_t', with z = 0 the step must
# give the posterior mean mu_tilde(x_t, x0_hat) = sqrt(abar_t') beta_j / (1 - abar_t) x0_hat + sqrt(alpha_j)
# (1 - abar_t') / (1 - abar_t) x_t, alpha_j = abar_t / abar_t' = 1 - beta_j (problem set 1's posterior mean, one
# jump as one step); for t' = t - 1 also Algorithm 2's mean (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t).
_g = torch.Generator().manual_seed(21)
_x_t, _eps = torch.randn(6, 2, generator=_g), torch.randn(6, 2, generator=_g)
_zero = torch.zeros(6, 2)
for _t, _tp in _jumps:
    _alpha_j = _ab[_t] / _ab[_tp]
    _x0_hat = (_x_t - math.sqrt(1 - _ab[_t]) * _eps) / math.sqrt(_ab[_t])
    _mu = (math.sqrt(_ab[_tp]) * (1 - _alpha_j) / (1 - _ab[_t]) * _x0_hat
           + math.sqrt(_alpha_j) * (1 - _ab[_tp]) / (1 - _ab[_t]) * _x_t)
    _got = math.sqrt(_ab[_tp]) * ancestral_step(_x_t / math.sqrt(_ab[_t]), _vs[_t], _vs[_tp], eps=_eps, eta=1.0,
                                                noise=_zero)
    assert torch.allclose(_got, _mu, rtol=1e-9, atol=1e-10), f"eta = 1, jump {_t} -> {_tp}: not DDPM's posterior mean"
    if _tp == _t - 1:
        _beta = SCHED.betas[_t].item()
        _alg2 = (_x_t - _beta / math.sqrt(1 - _ab[_t]) * _eps) / math.sqrt(1 - _beta)
        assert torch.allclose(_got, _alg2, rtol=1e-9, atol=1e-10), f"eta = 1, t = {_t}: not Algorithm 2's mean"
# 3) eta = 0 (given, and by default) draws nothing and is deterministic: no generator or global state moves, noise
# (given or not) is ignored, and the step works upwards and from the data: x_bar + (varsigma_t' - varsigma_t) eps.
for _t, _tp in ((1000, 1), (0, 250), (40, 900), (250, 0)):
    _gen = torch.Generator().manual_seed(22)
    _state, _global_state = _gen.get_state(), torch.get_rng_state()
    _runs = [ancestral_step(_x_t, _vs[_t], _vs[_tp], eps=_eps, eta=0.0, generator=_gen),
             ancestral_step(_x_t, _vs[_t], _vs[_tp], eps=_eps, generator=_gen),
             ancestral_step(_x_t, _vs[_t], _vs[_tp], eps=_eps, eta=0),
             ancestral_step(_x_t, _vs[_t], _vs[_tp], eps=_eps, noise=torch.randn(6, 2, generator=_g))]
    assert torch.equal(_gen.get_state(), _state) and torch.equal(torch.get_rng_state(), _global_state), \
        f"eta = 0, {_t} -> {_tp}: the step drew random numbers"
    _expected = _x_t + (_vs[_tp] - _vs[_t]) * _eps
    for _run in _runs:
        assert torch.allclose(_run, _expected, rtol=1e-12, atol=1e-12), \
            f"eta = 0, {_t} -> {_tp}: expected x_bar + (varsigma_t' - varsigma_t) eps, got another value"
# 4) eta > 0 and no noise given: z = torch.randn(x_bar.shape, generator=generator, dtype=x_bar.dtype), from the
# given generator or from torch's global one
_got = ancestral_step(_x_t, _vs[500], _vs[480], eps=_eps, eta=0.8, generator=torch.Generator().manual_seed(23))
_z = torch.randn(6, 2, generator=torch.Generator().manual_seed(23))
assert torch.allclose(_got, ancestral_step(_x_t, _vs[500], _vs[480], eps=_eps, eta=0.8, noise=_z), rtol=1e-12), \
    "with noise=None and eta > 0, draw z = torch.randn(x_bar.shape, generator=generator, dtype=x_bar.dtype)"
torch.manual_seed(24)
_got = ancestral_step(_x_t, _vs[500], _vs[480], eps=_eps, eta=0.8)
torch.manual_seed(24)
_z = torch.randn(6, 2)
assert torch.allclose(_got, ancestral_step(_x_t, _vs[500], _vs[480], eps=_eps, eta=0.8, noise=_z), rtol=1e-12), \
    "with noise=None, generator=None and eta > 0, draw z from torch's global generator, torch.randn(x_bar.shape)"
# 5) Shapes and dtypes: the smallest batch, other trailing shapes, float32 (z drawn in float32), 0-d tensor levels
_g = torch.Generator().manual_seed(25)
for _shape in ((1, 1), (1, 2), (4, 3, 2, 2), (7,), (2, 5)):
    for _dtype, _tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        _x, _e, _z = (torch.randn(_shape, generator=_g, dtype=_dtype) for _ in range(3))
        _down, _up = (math.sqrt(0.88), 0.4 * math.sqrt(0.75))
        _expected = _x.double() + (_down - 2) * _e.double() + _up * _z.double()
        for _levels in ((2.0, 1.0), (torch.tensor(2.0), torch.tensor(1.0))):
            _got = ancestral_step(_x, *_levels, eps=_e, eta=0.4, noise=_z)
            assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
                f"x_bar {tuple(_shape)} {_dtype}: expected a tensor of that shape and dtype, got " \
                f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
            assert torch.allclose(_got.double(), _expected, rtol=_tol, atol=_tol), \
                f"x_bar {tuple(_shape)} {_dtype}, levels {type(_levels[0]).__name__}: wrong value"
        _got = ancestral_step(_x, 2.0, 1.0, eps=_e, eta=0.4, generator=torch.Generator().manual_seed(26))
        _z = torch.randn(_shape, generator=torch.Generator().manual_seed(26), dtype=_dtype)
        assert _got.dtype == _dtype and torch.allclose(_got, ancestral_step(_x, 2.0, 1.0, eps=_e, eta=0.4, noise=_z)), \
            f"x_bar {tuple(_shape)} {_dtype}: draw z as torch.randn(x_bar.shape, generator=generator, " \
            "dtype=x_bar.dtype)"
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — step selection: uniform in the log signal-to-noise ratio (3 points)
#
# A sampler with $S$ steps visits $S$ of the $T$ training steps, $\tau_1 < \dots < \tau_S$, and jumps from
# $\tau_S$ to $\tau_{S-1}$, ..., to $\tau_1$ and finally to $\tau_0 = 0$, the data. Which steps it visits matters
# (DDIM sec. 5 and app. D.2; lesson 4 prints the package's spacings): evenly spaced steps spend as many jumps near
# pure noise, where little happens, as near the data, where the details are made. In the noise-to-signal variables
# Part B's Euler step moves $\bar{\mathbf{x}}$ by $(\varsigma_{t'} - \varsigma_t)\,\boldsymbol\epsilon$, and
# $\varsigma$ runs from 0.01 at step 1 to 157 at step 1000 for `SCHED`: a scale-free choice divides $\varsigma$ by
# the same factor at every jump, i.e. takes steps evenly spaced in $\lambda = -\log\varsigma = \frac12\log
# \text{SNR}$, as DPM-Solver does (Lu et al. 2022, "time uniform in $\lambda$"). The levels are
#
# $$\lambda^*_k = \lambda_T + \frac{S-k}{S-1}\,(\lambda_1 - \lambda_T), \qquad k = 1, \dots, S \quad (S \ge 2;\
# \text{for } S = 1 \text{ the only level is } \lambda_T),$$
#
# from step 1's $\lambda_1$ (the smallest noise a network was trained on) up to step $T$'s. A network trained on
# DDPM's steps knows only their noise levels, so each level goes to the training step whose $\lambda_t$ is nearest
# ($\tau_k = \operatorname{argmin}_{t \in 1..T} |\lambda_t - \lambda^*_k|$; either one on an exact tie). Near the
# data the training steps are far apart in $\lambda$ and several levels can land on one step; keep the steps
# distinct by moving each one, from $k = 1$ up, into the range it has room in:
#
# $$\tau_k \leftarrow \min\big(\max(\tau_k,\ \tau_{k-1} + 1),\ T - S + k\big), \qquad \tau_0 = 0.$$
#
# The grid then starts at step 1, ends at $\tau_S = T$ exactly, where $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0},
# \mathbf{I})$ is a good start, and $S = T$ gives every step $1, \dots, T$. Write it. Raise a `ValueError` whose
# message names the argument when `num_steps` is not in $1..T$.
#
# *Your function must accept:* `sched` any `Schedule` whose $\bar\alpha_t$ decrease strictly (any $T \ge 1$: `SCHED`,
# a cosine schedule, `GAPS`, one of a single step); `num_steps` a Python int. *It returns* a `(num_steps,)` tensor of
# dtype `torch.long`.

# %% id="log_snr_timesteps" kind="solution"
def log_snr_timesteps(sched: Schedule, num_steps: int) -> Tensor:
    """The S = num_steps training steps nearest to levels evenly spaced in lambda = -log varsigma from step 1 to
    step T, made distinct: a (S,) long tensor, strictly increasing, from 1 to T."""
    ### BEGIN SOLUTION
    T = sched.T
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in 1..T = 1..{T}, got {num_steps}")
    abar = sched.alpha_bars[1:]
    lam = 0.5 * torch.log(abar / (1 - abar))  # lambda_1..lambda_T, decreasing
    if num_steps == 1:
        levels = lam[-1:]
    else:
        weights = torch.arange(num_steps - 1, -1, -1, dtype=torch.float64) / (num_steps - 1)  # (S - k) / (S - 1)
        levels = lam[-1] + weights * (lam[0] - lam[-1])
    nearest = ((lam[None, :] - levels[:, None]).abs().argmin(dim=1) + 1).tolist()  # steps 1..T
    grid, previous = [], 0
    for k, step in enumerate(nearest, start=1):
        previous = min(max(step, previous + 1), T - num_steps + k)
        grid.append(previous)
    return torch.tensor(grid, dtype=torch.long)
    ### END SOLUTION


# %% id="log_snr_timesteps_tests" kind="tests" points=3
# GAPS has varsigma = 0.1, 0.15, 0.2, 1, 5, 10 at steps 1..6, so lambda = -log varsigma runs from log 10 = 2.303 down
# to -2.303. S = 3: levels 2.303, 0, -2.303, i.e. varsigma 0.1, 1, 10: steps 1, 4, 6. S = 4: varsigma 0.1, 0.464,
# 2.154, 10; 0.464 is nearer 1 (|log 0.464| = 0.768) than 0.2 (log(0.464 / 0.2) = 0.842), and 2.154 is nearer 1
# (0.768) than 5 (0.842): steps 1, 4, 4, 6, and the third is moved past the second: 1, 4, 5, 6.
for _S, _expected in ((3, [1, 4, 6]), (4, [1, 4, 5, 6]), (6, [1, 2, 3, 4, 5, 6]), (1, [6])):
    _steps = log_snr_timesteps(GAPS, _S)
    assert isinstance(_steps, Tensor) and _steps.dtype == torch.long and _steps.shape == (_S,), \
        f"return a ({_S},) long tensor, got {getattr(_steps, 'dtype', type(_steps).__name__)} " \
        f"{tuple(getattr(_steps, 'shape', ()))}"
    assert _steps.tolist() == _expected, f"GAPS, S = {_S}: expected {_expected}, got {_steps.tolist()}"
# On SCHED, lambda runs from 4.61 (step 1) to -5.06 (step 1000): 8 levels 1.38 apart, 4.61, 3.23, 1.85, 0.47, -0.91,
# -2.30, -3.68, -5.06, whose nearest steps have lambda = 4.61, 3.21, 1.85, 0.47, -0.92, -2.30, -3.67, -5.06: dense near
# the data, and near the noise too, where lambda changes slowly. (For comparison: EDM's rho = 7 levels go to steps
# 1, 33, 206, 485, 682, 816, 918, 1000, DDIM's quadratic spacing to 16, 62, 141, 250, 391, 562, 766, 1000.)
_steps = log_snr_timesteps(SCHED, 8)
assert _steps.tolist() == [1, 9, 45, 178, 441, 674, 852, 1000], \
    f"SCHED, S = 8: expected [1, 9, 45, 178, 441, 674, 852, 1000], got {_steps.tolist()}"
try:
    log_snr_timesteps(GAPS, 7)
except ValueError as _error:
    assert "num_steps" in str(_error), f"the message must name num_steps, got: {_error}"
else:
    raise AssertionError("num_steps = 7 > T = 6 must raise a ValueError naming num_steps; it returned")
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
import bisect


def _cosine_schedule(T, s=0.008):  # Nichol & Dhariwal's cosine alpha_bar, betas clipped at 0.999
    f = [math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2 for u in range(T + 1)]
    return schedule_from_betas(torch.tensor([min(1 - f[u] / f[u - 1], 0.999) for u in range(1, T + 1)]))


def _check_rule(sched, S, steps):
    # The rule, step by step from the previous step the function returned: tau_k is a nearest step in lambda to
    # lambda*_k (any step within 1e-9 of the nearest distance is accepted: a tie), moved into
    # [tau_{k-1} + 1, T - S + k]. Written with Python floats, independently of torch.
    T, abar = sched.T, sched.alpha_bars.tolist()
    rising = [-0.5 * math.log(abar[t] / (1 - abar[t])) for t in range(1, T + 1)]  # -lambda_1 < ... < -lambda_T
    where = f"T = {T}, S = {S}: {steps[:12]}..."
    previous = 0
    for k, tau in enumerate(steps, start=1):
        level = rising[-1] if S == 1 else rising[-1] + (S - k) / (S - 1) * (rising[0] - rising[-1])  # -lambda*_k
        i = bisect.bisect_left(rising, level)
        near = [j for j in (i - 1, i) if 0 <= j < T]  # the steps on either side of the level (0-based)
        best = min(abs(rising[j] - level) for j in near)
        allowed = {min(max(j + 1, previous + 1), T - S + k) for j in near if abs(rising[j] - level) <= best + 1e-9}
        assert tau in allowed, \
            f"{where}: tau_{k} = {tau}, the rule gives {sorted(allowed)} (lambda*_{k} = {-level:.5f})"
        previous = tau


_schedules = {"SCHED": SCHED, "cosine 400": _cosine_schedule(400), "GAPS": GAPS, "TRIO": TRIO,
              "one step": schedule_from_betas(torch.tensor([0.3])), "linear 50": linear_schedule(50, 1e-3, 0.2)}
for _name, _sched in _schedules.items():
    _T = _sched.T
    for _S in sorted({1, 2, 3, 5, 8, 13, 20, 50, 100, 500, _T // 2, _T - 1, _T} & set(range(1, _T + 1))):
        _steps = log_snr_timesteps(_sched, _S)
        _where = f"{_name} (T = {_T}), S = {_S}"
        assert isinstance(_steps, Tensor) and _steps.dtype == torch.long and _steps.shape == (_S,), \
            f"{_where}: not a ({_S},) long tensor: {getattr(_steps, 'dtype', type(_steps).__name__)}"
        _list = _steps.tolist()
        _check_rule(_sched, _S, _list)
        assert all(a < b for a, b in zip(_list, _list[1:], strict=False)), \
            f"{_where}: the steps must increase strictly: {_list}"
        assert _list[-1] == _T and (_S == 1 or _list[0] == 1), f"{_where}: the grid runs from 1 to T: {_list}"
    assert log_snr_timesteps(_sched, _T).tolist() == list(range(1, _T + 1)), f"{_name}: S = T must give 1..T"
# The grid is geometric in varsigma where the steps are dense enough to follow it: on SCHED with S = 12 the ratios
# varsigma_{tau_{k+1}} / varsigma_{tau_k} above step 20 are all within 3% of the level ratio exp(delta lambda).
_steps = log_snr_timesteps(SCHED, 12).tolist()
_abar = SCHED.alpha_bars.tolist()
_vs = [math.sqrt((1 - _abar[t]) / _abar[t]) for t in _steps]
_ratio = math.exp((math.log(_vs[-1]) - math.log(_vs[0])) / 11)
for _a, _b, _ta in zip(_vs, _vs[1:], _steps, strict=False):
    if _ta >= 20:
        assert abs(_b / _a / _ratio - 1) < 0.03, f"SCHED, S = 12: {_steps}: the levels are not evenly spaced in log"
# bad arguments, each named in the message
for _args in ((GAPS, 0), (GAPS, 7), (SCHED, 1001), (SCHED, -3)):
    try:
        log_snr_timesteps(*_args)
    except ValueError as _error:
        assert "num_steps" in str(_error), f"log_snr_timesteps(T = {_args[0].T}, {_args[1]}): name num_steps: {_error}"
    else:
        raise AssertionError(f"log_snr_timesteps(T = {_args[0].T}, {_args[1]}) must raise a ValueError")
### END HIDDEN TESTS

# %% [markdown] id="part_d"
# ## Part D — sampling with a noise level per jump, and inversion given the noises (3 + 3 points)
#
# **D1.** DDIM's family is indexed by one $\sigma$ *per jump*; a single $\eta$ for the whole run is only the
# simplest way to choose them. Write the sampler with one $\eta_k$ per jump: on a grid $\tau_1 < \dots < \tau_S$
# (the tensor `timesteps`, for example from Part C), start at $\bar{\mathbf{x}}_{\tau_S} = \mathbf{x}_T /
# \sqrt{\bar\alpha_{\tau_S}}$ with `x_T` in the usual variables, and for $k = S, \dots, 1$:
#
# 1. call the model in the usual variables, at $\mathbf{x}_{\tau_k} = \sqrt{\bar\alpha_{\tau_k}}\,
#    \bar{\mathbf{x}}_{\tau_k}$ (the current state) and the *training step* $\tau_k$ (not the index $k$), as a
#    `(B,)` tensor of dtype `torch.long`;
# 2. take your Part B step from $\varsigma_{\tau_k}$ to $\varsigma_{\tau_{k-1}}$, with $\tau_0 = 0$ ($\varsigma_0 = 0$),
#    at $\eta_k$ and with noise $\mathbf{z}_k$.
#
# The last jump lands on the data, where $\bar{\mathbf{x}}_0 = \mathbf{x}_0$: return it. $S$ model calls in all.
# `eta` is one number for every jump, or a `(S,)` tensor whose entry `eta[k - 1]` is $\eta_k$, the jump
# $\tau_k \to \tau_{k-1}$ (so `eta[0]` belongs to the last jump, the one to the data, where $\varsigma_\uparrow = 0$
# whatever it is). `noises`, when given, is a tensor of shape `(S, *x_T.shape)` whose entry `noises[k - 1]` is
# $\mathbf{z}_k$; when it is `None`, each step draws its own as Part B says (only where $\eta_k > 0$), from
# `generator`, in the order the jumps are taken.
#
# *Your function must accept:* `eps_model` any eps-model; `x_T` of shape `(B, ...)`, $B \ge 1$, float32 or float64
# (the model is called with tensors of that shape and dtype); `timesteps` a `(S,)` long tensor, strictly
# increasing in $1..T$, $S \ge 1$; `eta` a Python float or int in $[0, 1]$, or a `(S,)` float tensor with entries in
# $[0, 1]$, by default 0 (deterministic: nothing is drawn); `noises` `None` (the default) or a tensor of shape
# `(S, *x_T.shape)` and `x_T`'s dtype; `generator` a `torch.Generator` or `None` (torch's global generator).
# *It returns* $\mathbf{x}_0$, a tensor of `x_T`'s shape and dtype.

# %% id="ancestral_sample" kind="solution"
def ancestral_sample(eps_model, sched: Schedule, x_T: Tensor, *, timesteps: Tensor, eta=0.0,
                     noises: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """DDIM with a noise fraction eta_k per jump, from x_T at step timesteps[-1] down to the data, in x_bar.

    eps_model: callable (x_t (B, ...), t (B,) long) -> (B, ...).  x_T: (B, ...).  Keyword-only: timesteps (S,) long,
    strictly increasing in 1..T; eta a number or a (S,) tensor (eta[k-1] for the jump tau_k -> tau_{k-1}), default 0;
    noises None or (S, *x_T.shape) (noises[k-1] for that jump); generator for the noises not given.
    Returns x_0: x_T's shape and dtype.
    """
    ### BEGIN SOLUTION
    grid = [0] + timesteps.tolist()  # tau_0 = 0, tau_1, ..., tau_S
    num_jumps = len(grid) - 1
    etas = eta.tolist() if isinstance(eta, Tensor) else [float(eta)] * num_jumps  # etas[k - 1]: jump tau_k -> tau_{k-1}
    abar = sched.alpha_bars.tolist()
    varsigma = [math.sqrt((1 - a) / a) for a in abar]
    x_bar = x_T / math.sqrt(abar[grid[-1]])
    for k in range(num_jumps, 0, -1):
        t, t_prev = grid[k], grid[k - 1]
        eps = eps_model(math.sqrt(abar[t]) * x_bar, torch.full((x_T.shape[0],), t, dtype=torch.long))
        noise = None if noises is None else noises[k - 1]
        x_bar = ancestral_step(x_bar, varsigma[t], varsigma[t_prev], eps=eps, eta=etas[k - 1], noise=noise,
                               generator=generator)
    return x_bar  # alpha_bar_0 = 1: x_bar_0 = x_0
    ### END SOLUTION


# %% id="ancestral_sample_tests" kind="tests" points=3
_calls = []


def _spy(x, t):  # records every call and predicts a constant noise c = 0.3
    _calls.append((t.clone(), x.clone()))
    return torch.full_like(x, 0.3)


# With eps = c and eta = 0 every step moves x_bar by (varsigma' - varsigma) c, and the moves add up: the model is
# called at x = sqrt(abar_k) (x_bar_T + (varsigma_k - varsigma_T) c), and x_0 = x_bar_T - varsigma_T c.
_ab = SCHED.alpha_bars.tolist()
_vs = [math.sqrt((1 - a) / a) for a in _ab]
_grid = [7, 40, 300, 1000]
_x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
_x_bar_T = _x_T / math.sqrt(_ab[1000])
_x0 = ancestral_sample(_spy, SCHED, _x_T, timesteps=torch.tensor(_grid))
assert isinstance(_x0, Tensor) and _x0.shape == (5, 2), \
    f"x_0 must have x_T's shape (5, 2), got {getattr(_x0, 'shape', type(_x0).__name__)}"
_got_t = [(c[0].dtype, tuple(c[0].shape), c[0].tolist()) for c in _calls]
_expected_t = [(torch.long, (5,), [s] * 5) for s in (1000, 300, 40, 7)]
assert _got_t == _expected_t, \
    f"call the model at 1000, 300, 40, 7 with t a (5,) long tensor; got (dtype, shape, values) = {_got_t}"
for (_, _x), _s in zip(_calls, (1000, 300, 40, 7), strict=True):
    _expected = math.sqrt(_ab[_s]) * (_x_bar_T + (_vs[_s] - _vs[1000]) * 0.3)
    assert torch.allclose(_x, _expected, rtol=1e-9, atol=1e-12), \
        f"the call at step {_s} must see the current state in the usual variables, sqrt(abar) x_bar, e.g. " \
        f"{_expected[0].tolist()}; it saw {_x[0].tolist()}"
assert torch.allclose(_x0, _x_bar_T - _vs[1000] * 0.3, rtol=1e-9), \
    f"with eps = c and eta = 0: expected x_bar_T - varsigma_T c, e.g. {(_x_bar_T - _vs[1000] * 0.3)[0].tolist()}, " \
    f"got {_x0[0].tolist()}"
# One noisy jump: eta = [0, 0, 1, 0] is eta_3 = 1 for the jump tau_3 = 300 -> tau_2 = 40 and 0 elsewhere, with its
# noise noises[2]. That jump ends at x_bar + (down - varsigma_300) c + up z_3 instead of x_bar + (varsigma_40 -
# varsigma_300) c, (down, up) = your ancestral_split(varsigma_300, varsigma_40, 1), and the other jumps are as above.
_noises = torch.randn(4, 5, 2, generator=torch.Generator().manual_seed(4))
_down, _up = (float(v) for v in ancestral_split(_vs[300], _vs[40], 1.0))
_x0 = ancestral_sample(_spy, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=torch.tensor([0.0, 0.0, 1.0, 0.0]),
                       noises=_noises)
_expected = _x_bar_T - _vs[1000] * 0.3 + (_down - _vs[40]) * 0.3 + _up * _noises[2]
assert torch.allclose(_x0, _expected, rtol=1e-9, atol=1e-12), \
    f"eta = [0, 0, 1, 0] with noises: only the jump 300 -> 40 is noisy, with z = noises[2]; expected e.g. " \
    f"{_expected[0].tolist()}, got {_x0[0].tolist()}"
# The same with one example of shape (3, 2) (a batch of B = 1 images, say), in float32
_x_T = torch.randn(1, 3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float32)
_noises = torch.randn(4, 1, 3, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float32)
_x0 = ancestral_sample(_spy, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=torch.tensor([0.0, 0.0, 1.0, 0.0]),
                       noises=_noises)
_expected = (_x_T.double() / math.sqrt(_ab[1000]) - _vs[1000] * 0.3 + (_down - _vs[40]) * 0.3 + _up * _noises[2])
assert isinstance(_x0, Tensor) and _x0.shape == (1, 3, 2) and _x0.dtype == torch.float32, \
    f"x_T of shape (1, 3, 2), float32: expected x_0 of that shape and dtype, got " \
    f"{getattr(_x0, 'dtype', type(_x0).__name__)} {tuple(getattr(_x0, 'shape', ()))}"
assert torch.allclose(_x0.double(), _expected.float().double(), rtol=1e-4, atol=1e-3), \
    f"x_T of shape (1, 3, 2): expected {_expected[0, 0].tolist()}..., got {_x0[0, 0].tolist()}..."
print("Part D1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_ab = SCHED.alpha_bars.tolist()


def _jump_posterior_var(abar_from, abar_to):  # Gaussian conditioning in x, as in Part A's hidden tests
    cov = math.sqrt(abar_from / abar_to) * (1 - abar_to)
    return (1 - abar_to) - cov**2 / (1 - abar_from)


def _reference_sample(model, x_T, grid, etas, noises, record=None):
    # DDIM as the paper writes it, in x (eqs. 9, 12), with sigma_k = eta_k times the jump's posterior standard
    # deviation and the same z_k: independent of your Parts A and B
    taus, x = [0] + grid, x_T
    for k in range(len(grid), 0, -1):
        a, a_prev = _ab[taus[k]], _ab[taus[k - 1]]
        t = torch.full((x.shape[0],), taus[k], dtype=torch.long)
        if record is not None:
            record.append((t, x))
        eps = model(x, t)
        x0_hat = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        sigma = etas[k - 1] * math.sqrt(max(_jump_posterior_var(a, a_prev), 0.0))
        x = math.sqrt(a_prev) * x0_hat + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * noises[k - 1]
    return x


def _wavy(x, t):  # a made-up eps-model that depends on x nonlinearly and on t, for any shape (B, ...)
    s = (t.to(x.dtype) / 1000).reshape(-1, *([1] * (x.dim() - 1)))
    return torch.tanh(x.flip(-1)) * (0.5 + s) + 0.2 * torch.sin(3 * x) - 0.1 * s


_exact = mixture_eps_model(MIXTURE, SCHED)
_g = torch.Generator().manual_seed(31)
# 1) Against DDIM in x, with two models, four grids (one of a single jump straight to the data), eta a number, an
# int or a (S,) tensor, and the noises given
for _grid in ([3, 10, 11, 200, 650, 1000], [17 * k for k in range(1, 59)] + [1000], [1000], [1, 2, 3, 4, 999]):
    _S = len(_grid)
    _x_T = torch.randn(64, 2, generator=_g)
    _noises = torch.randn(_S, 64, 2, generator=_g)
    _eta_vec = torch.rand(_S, generator=_g)
    for _eta in (0.0, 0.6, 1, _eta_vec):
        _etas = _eta.tolist() if isinstance(_eta, Tensor) else [float(_eta)] * _S
        for _model in (_wavy, _exact):
            _expected = _reference_sample(_model, _x_T, _grid, _etas, _noises)
            _got = ancestral_sample(_model, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=_eta, noises=_noises)
            assert torch.allclose(_got, _expected, rtol=1e-9, atol=1e-9), \
                f"grid {_grid[:6]}..., eta = {_eta}: largest difference to DDIM {(_got - _expected).abs().max():.3g}"
# 2) The calls: S of them, at the training steps from the top down, t a (B,) long tensor, x the current state in x
_grid = [5, 60, 61, 400, 1000]
_x_T = torch.randn(3, 2, generator=_g)
_noises = torch.randn(5, 3, 2, generator=_g)
_seen, _expected_calls = [], []


def _recording(x, t):
    _seen.append((t.clone(), x.clone()))
    return _wavy(x, t)


ancestral_sample(_recording, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=0.5, noises=_noises)
_reference_sample(_wavy, _x_T, _grid, [0.5] * 5, _noises, record=_expected_calls)
assert [(s[0].dtype, s[0].tolist()) for s in _seen] == [(torch.long, [k] * 3) for k in reversed(_grid)], \
    f"call the model at 1000, 400, 61, 60, 5 with t a (3,) long tensor: got " \
    f"{[(s[0].dtype, s[0].tolist()) for s in _seen]}"
for (_, _x), (_, _x_ref) in zip(_seen, _expected_calls, strict=True):
    assert torch.allclose(_x, _x_ref, rtol=1e-9, atol=1e-12), "the model must see the current state, in x (not x_bar)"
# 3) Defaults: eta = 0 draws nothing and ignores noises; noises = None with eta > 0 draws each z_k as
# torch.randn(x_T.shape, generator=generator, dtype=x_T.dtype) for the jumps with eta_k > 0, from the top down
_x_T = torch.randn(4, 2, generator=_g)
_gen = torch.Generator().manual_seed(32)
_state, _global_state = _gen.get_state(), torch.get_rng_state()
_runs = [ancestral_sample(_wavy, SCHED, _x_T, timesteps=torch.tensor(_grid)),
         ancestral_sample(_wavy, SCHED, _x_T, timesteps=torch.tensor(_grid), generator=_gen),
         ancestral_sample(_wavy, SCHED, _x_T, timesteps=torch.tensor(_grid), noises=torch.randn(5, 4, 2, generator=_g))]
assert torch.equal(_gen.get_state(), _state) and torch.equal(torch.get_rng_state(), _global_state), \
    "eta = 0 (the default): the sampler drew random numbers"
_expected = _reference_sample(_wavy, _x_T, _grid, [0.0] * 5, None)
assert all(torch.allclose(r, _expected, rtol=1e-9, atol=1e-9) for r in _runs), "eta = 0: not deterministic DDIM"
for _eta in (0.7, torch.tensor([0.3, 0.0, 1.0, 0.0, 0.5])):
    _etas = _eta.tolist() if isinstance(_eta, Tensor) else [_eta] * 5
    _draw = torch.Generator().manual_seed(33)
    _z = {k: torch.randn(4, 2, generator=_draw) for k in range(5, 0, -1) if _etas[k - 1] > 0}  # in the jumps' order
    _noises = torch.stack([_z.get(k, torch.zeros(4, 2)) for k in range(1, 6)])
    _expected = _reference_sample(_wavy, _x_T, _grid, _etas, _noises)
    _got = ancestral_sample(_wavy, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=_eta,
                            generator=torch.Generator().manual_seed(33))
    assert torch.allclose(_got, _expected, rtol=1e-9, atol=1e-9), \
        f"eta = {_eta}, noises = None: draw z_k = torch.randn(x_T.shape, generator=generator) for each jump with " \
        "eta_k > 0, from the top down"
torch.manual_seed(34)
_z = {k: torch.randn(4, 2) for k in range(5, 0, -1)}
_noises = torch.stack([_z[k] for k in range(1, 6)])
torch.manual_seed(34)
_got = ancestral_sample(_wavy, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=0.4)
assert torch.allclose(_got, _reference_sample(_wavy, _x_T, _grid, [0.4] * 5, _noises), rtol=1e-9, atol=1e-9), \
    "generator = None: draw from torch's global generator"
# 4) Shapes and dtypes: one example, image-like (B, C, H, W), float32 (model and result in float32)
for _shape in ((1, 2), (2, 3, 4, 4), (6, 1)):
    for _dtype, _tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        _x_T = torch.randn(_shape, generator=_g, dtype=_dtype)
        _noises = torch.randn(5, *_shape, generator=_g, dtype=_dtype)
        _dtypes = []

        def _typed(x, t, seen=_dtypes):
            seen.append((x.dtype, tuple(x.shape), t.dtype))
            return _wavy(x, t)

        _got = ancestral_sample(_typed, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=0.5, noises=_noises)
        _expected = _reference_sample(_wavy, _x_T.double(), _grid, [0.5] * 5, _noises.double())
        assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
            f"x_T {_shape} {_dtype}: expected a tensor of that shape and dtype, got " \
            f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
        assert set(_dtypes) == {(_dtype, _shape, torch.long)}, \
            f"x_T {_shape} {_dtype}: the model must get x of that shape and dtype and long t, got {set(_dtypes)}"
        assert torch.allclose(_got.double(), _expected, rtol=_tol, atol=_tol), f"x_T {_shape} {_dtype}: wrong value"
# 5) The family keeps q(x_t | x0) for every choice of the eta_k (DDIM Lemma 1, now along a whole run, by Monte
# Carlo). Data = one point x0: the exact eps-model is eps(x_t, t) = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), so
# x0_hat = x0 and every state the sampler visits from x_T ~ q(x_T | x0) must be distributed as q(x_t | x0): the
# standardised noise u = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) is N(0, I) at every call, for any eta_k, and
# the run ends on x0. N = 20000 points, D = 2: the mean of u over N D coordinates has standard error 1 / sqrt(N D)
# = 0.005 and its mean square (1 = the variance) sqrt(2 / (N D)) = 0.007; the bounds are 6 standard errors (a false
# alarm has probability 2e-9 per number, 16 numbers). A step whose two parts do not add up to varsigma_t'^2, e.g. one
# that keeps the direction at varsigma_t' and adds the noise on top, gives a mean square of 1.5 at the second call.
_point = torch.tensor([[0.7, -1.1]])
_seen = []


def _delta_model(x, t):
    a = SCHED.alpha_bars[t][:, None]
    _seen.append((int(t[0]), (x - a.sqrt() * _point) / (1 - a).sqrt()))
    return (x - a.sqrt() * _point) / (1 - a).sqrt()


_N, _grid = 20_000, [2, 9, 30, 31, 120, 400, 777, 1000]
_eta = torch.tensor([1.0, 0.9, 0.2, 1.0, 0.5, 1.0, 0.05, 0.7])
_x_T = math.sqrt(_ab[1000]) * _point + math.sqrt(1 - _ab[1000]) * torch.randn(_N, 2, generator=_g)
_x0 = ancestral_sample(_delta_model, SCHED, _x_T, timesteps=torch.tensor(_grid), eta=_eta,
                       generator=torch.Generator().manual_seed(35))
for _step, _u in _seen:
    _mean, _meansq = _u.mean().item(), _u.pow(2).mean().item()
    assert abs(_mean) < 6 / math.sqrt(2 * _N) and abs(_meansq - 1) < 6 * math.sqrt(2 / (2 * _N)), \
        f"step {_step}: the states are not distributed as q(x_t | x0): standardised noise of mean {_mean:.4f} and " \
        f"mean square {_meansq:.4f} (expected 0 and 1 within {6 / math.sqrt(2 * _N):.3f}, " \
        f"{6 * math.sqrt(2 / (2 * _N)):.3f})"
assert torch.allclose(_x0, _point.expand(_N, 2), atol=1e-8), "with x0_hat = x0 exact, the run must end on x0"
### END HIDDEN TESTS

# %% [markdown] id="part_d2"
# **D2.** Run backwards, the deterministic sampler encodes data into noise (DDIM sec. 5.4), and so does every member
# of the family once its noises are fixed: given $\mathbf{z}_1, \dots, \mathbf{z}_S$, the decoding step $\tau_k \to
# \tau_{k-1}$,
#
# $$\bar{\mathbf{x}}_{\tau_{k-1}} = \bar{\mathbf{x}}_{\tau_k} + (\varsigma_{\downarrow,k} - \varsigma_{\tau_k})\,
# \boldsymbol\epsilon_\theta(\mathbf{x}_{\tau_k}, \tau_k) + \varsigma_{\uparrow,k}\,\mathbf{z}_k,$$
#
# is a map from $\bar{\mathbf{x}}_{\tau_k}$ to $\bar{\mathbf{x}}_{\tau_{k-1}}$ that can be solved for
# $\bar{\mathbf{x}}_{\tau_k}$, except that the noise prediction is taken at $\mathbf{x}_{\tau_k}$, the point being
# computed. DDIM's approximation calls the model at the start of the encoding step instead, at
# $(\mathbf{x}_{\tau_{k-1}}, \tau_{k-1})$ with $\mathbf{x}_{\tau_{k-1}} = \sqrt{\bar\alpha_{\tau_{k-1}}}\,
# \bar{\mathbf{x}}_{\tau_{k-1}}$. At the very first step the start is the data, $\tau_0 = 0$, where no network is
# defined: call it at $(\mathbf{x}_0, \tau_1)$ there. So: start from $\bar{\mathbf{x}}_{\tau_0} = \mathbf{x}_0$, and
# for $k = 1, \dots, S$ solve the decoding step $\tau_k \to \tau_{k-1}$ (with its own $\eta_k$, its own
# $(\varsigma_{\downarrow,k}, \varsigma_{\uparrow,k})$ and its own $\mathbf{z}_k$) for $\bar{\mathbf{x}}_{\tau_k}$,
# with that noise prediction. $S$ model calls, at $\tau_1, \tau_1, \tau_2, \dots, \tau_{S-1}$. Return
# $\mathbf{x}_{\tau_S} = \sqrt{\bar\alpha_{\tau_S}}\,\bar{\mathbf{x}}_{\tau_S}$, in the usual variables. With
# $\eta = 0$ every step is Part B's deterministic step upwards.
#
# `eta` and `noises` mean what they mean in D1, entry $k - 1$ for the jump between $\tau_{k-1}$ and $\tau_k$, so
# that `ancestral_sample(..., eta=eta, noises=noises)` decodes what `ancestral_invert(..., eta=eta, noises=noises)`
# encodes, up to the error of the approximation, which shrinks as the jumps do. The noises must be given when some
# $\eta_k > 0$ (a `ValueError` naming `noises` otherwise): an inversion cannot draw them. The hidden tests measure the
# round trip with the exact noise predictor; the demo below shows what the noise does to it.
#
# *Your function must accept:* as D1, with `x0` in place of `x_T`; `noises` may be `None` only when every
# $\eta_k = 0$ (the default `eta=0` needs none). *It returns* $\mathbf{x}_{\tau_S}$, a tensor of `x0`'s shape and dtype.

# %% id="ancestral_invert" kind="solution"
def ancestral_invert(eps_model, sched: Schedule, x0: Tensor, *, timesteps: Tensor, eta=0.0,
                     noises: Tensor | None = None) -> Tensor:
    """Inversion of `ancestral_sample` with the same eta and noises: up the grid 0 -> tau_1 -> ... -> tau_S, each
    decoding step tau_k -> tau_{k-1} solved for x_bar at tau_k, with the noise predicted at tau_{k-1} (DDIM's choice).

    eps_model: callable (x_t (B, ...), t (B,) long) -> (B, ...).  x0: (B, ...).  Keyword-only: timesteps (S,) long,
    strictly increasing in 1..T; eta a number or a (S,) tensor, default 0; noises (S, *x0.shape), needed when some
    eta_k > 0.  Returns x_{tau_S}: x0's shape and dtype.
    """
    ### BEGIN SOLUTION
    grid = [0] + timesteps.tolist()
    num_jumps = len(grid) - 1
    etas = eta.tolist() if isinstance(eta, Tensor) else [float(eta)] * num_jumps
    if noises is None and any(e > 0 for e in etas):
        raise ValueError("noises must be given when some eta_k > 0: the inversion needs the decoder's noises")
    abar = sched.alpha_bars.tolist()
    varsigma = [math.sqrt((1 - a) / a) for a in abar]
    x_bar = x0
    for k in range(1, num_jumps + 1):
        start, end = grid[k - 1], grid[k]
        asked = start if start > 0 else grid[1]  # the start's step; tau_1 at the data, where no network is defined
        eps = eps_model(math.sqrt(abar[start]) * x_bar, torch.full((x0.shape[0],), asked, dtype=torch.long))
        if etas[k - 1] == 0:
            x_bar = ancestral_step(x_bar, varsigma[start], varsigma[end], eps=eps)  # eta = 0, upwards
        else:  # x_bar_start = x_bar_end + (down - varsigma_end) eps + up z, solved for x_bar_end
            down, up = ancestral_split(varsigma[end], varsigma[start], etas[k - 1])
            x_bar = x_bar - (down - varsigma[end]) * eps - up * noises[k - 1]
    return math.sqrt(abar[grid[-1]]) * x_bar
    ### END SOLUTION


# %% id="ancestral_invert_tests" kind="tests" points=3
_calls = []


def _spy(x, t):  # records every call and predicts a constant noise c = 0.3
    _calls.append((t.clone(), x.clone()))
    return torch.full_like(x, 0.3)


# With eps = c and eta = 0 the inversion adds (varsigma' - varsigma) c to x_bar at every step: from x_bar_0 = x0 it
# passes x_bar = x0 + varsigma_k c, where the model sees x = sqrt(abar_k) x_bar, and ends at x_T = sqrt(abar_T)
# (x0 + varsigma_T c), the forward kernel with eps = c.
_ab = SCHED.alpha_bars.tolist()
_vs = [math.sqrt((1 - a) / a) for a in _ab]
_grid = [7, 40, 300, 1000]
_x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
_x_T = ancestral_invert(_spy, SCHED, _x0, timesteps=torch.tensor(_grid))
assert isinstance(_x_T, Tensor) and _x_T.shape == (5, 2), \
    f"x_T must have x0's shape (5, 2), got {getattr(_x_T, 'shape', type(_x_T).__name__)}"
_got_t = [(c[0].dtype, tuple(c[0].shape), c[0].tolist()) for c in _calls]
_expected_t = [(torch.long, (5,), [s] * 5) for s in (7, 7, 40, 300)]
assert _got_t == _expected_t, \
    f"call the model at 7 (for the data), 7, 40, 300 with t a (5,) long tensor; got (dtype, shape, values) = {_got_t}"
for (_, _x), _s in zip(_calls, (0, 7, 40, 300), strict=True):
    _expected = math.sqrt(_ab[_s]) * (_x0 + _vs[_s] * 0.3)
    assert torch.allclose(_x, _expected, rtol=1e-9, atol=1e-12), \
        f"the call for the step from {_s} must see the current state in the usual variables, e.g. " \
        f"{_expected[0].tolist()}; it saw {_x[0].tolist()}"
_expected = math.sqrt(_ab[1000]) * (_x0 + _vs[1000] * 0.3)
assert torch.allclose(_x_T, _expected, rtol=1e-9), \
    f"with eps = c and eta = 0: expected sqrt(abar_T) (x0 + varsigma_T c), e.g. {_expected[0].tolist()}, " \
    f"got {_x_T[0].tolist()}"
# One noisy jump, as in D1: eta_3 = 1 for the jump between 40 and 300, with z_3 = noises[2]. Its encoding step
# solves x_bar_40 = x_bar_300 + (down - varsigma_300) c + up z_3 for x_bar_300: the result moves by
# (varsigma_40 - down) c - up z_3 from the deterministic one (times sqrt(abar_T)), (down, up) = your
# ancestral_split(varsigma_300, varsigma_40, 1).
_noises = torch.randn(4, 5, 2, generator=torch.Generator().manual_seed(5))
_down, _up = (float(v) for v in ancestral_split(_vs[300], _vs[40], 1.0))
_x_T = ancestral_invert(_spy, SCHED, _x0, timesteps=torch.tensor(_grid), eta=torch.tensor([0.0, 0.0, 1.0, 0.0]),
                        noises=_noises)
_expected = math.sqrt(_ab[1000]) * (_x0 + _vs[1000] * 0.3 + (_vs[40] - _down) * 0.3 - _up * _noises[2])
assert torch.allclose(_x_T, _expected, rtol=1e-9, atol=1e-12), \
    f"eta = [0, 0, 1, 0] with noises: expected e.g. {_expected[0].tolist()}, got {_x_T[0].tolist()}"
try:
    ancestral_invert(_spy, SCHED, _x0, timesteps=torch.tensor(_grid), eta=0.5)
except ValueError as _error:
    assert "noises" in str(_error), f"the message must name noises, got: {_error}"
else:
    raise AssertionError("eta = 0.5 without noises must raise a ValueError naming noises; it returned")
print("Part D2: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_ab = SCHED.alpha_bars.tolist()
_var_sig = [math.sqrt((1 - a) / a) for a in _ab]  # varsigma_t


def _jump_posterior_var(abar_from, abar_to):  # Gaussian conditioning in x, as in Part A's hidden tests
    cov = math.sqrt(abar_from / abar_to) * (1 - abar_to)
    return (1 - abar_to) - cov**2 / (1 - abar_from)


def _split(t, t_prev, eta):  # (down, up) of the decoding jump t -> t_prev, from DDIM's sigma in x
    up = eta * math.sqrt(max(_jump_posterior_var(_ab[t], _ab[t_prev]), 0.0) / _ab[t_prev]) if t_prev > 0 else 0.0
    return math.sqrt(max(_var_sig[t_prev] ** 2 - up**2, 0.0)), up


def _reference_invert(model, x0, grid, etas, noises, record=None):  # the decoding steps solved upwards, in x_bar
    x_bar, taus = x0, [0] + grid
    for k in range(1, len(taus)):
        asked = taus[k - 1] if k > 1 else taus[1]
        t = torch.full((x0.shape[0],), asked, dtype=torch.long)
        x = x_bar * math.sqrt(_ab[taus[k - 1]])
        if record is not None:
            record.append((t, x))
        eps = model(x, t)
        down, up = _split(taus[k], taus[k - 1], etas[k - 1])
        x_bar = x_bar - (down - _var_sig[taus[k]]) * eps
        if up > 0:
            x_bar = x_bar - up * noises[k - 1]
    return x_bar * math.sqrt(_ab[taus[-1]])


def _reference_decode(model, x_T, grid, etas, noises):  # D1 in x_bar: the round trip does not rely on your D1
    taus = [0] + grid
    x_bar = x_T / math.sqrt(_ab[taus[-1]])
    for k in range(len(taus) - 1, 0, -1):
        eps = model(x_bar * math.sqrt(_ab[taus[k]]), torch.full((x_T.shape[0],), taus[k], dtype=torch.long))
        down, up = _split(taus[k], taus[k - 1], etas[k - 1])
        x_bar = x_bar + (down - _var_sig[taus[k]]) * eps
        if up > 0:
            x_bar = x_bar + up * noises[k - 1]
    return x_bar


def _wavy(x, t):  # a made-up eps-model that depends on x nonlinearly and on t, for any shape (B, ...)
    s = (t.to(x.dtype) / 1000).reshape(-1, *([1] * (x.dim() - 1)))
    return torch.tanh(x.flip(-1)) * (0.5 + s) + 0.2 * torch.sin(3 * x) - 0.1 * s


_exact = mixture_eps_model(MIXTURE, SCHED)
_g = torch.Generator().manual_seed(40)
_x0 = MIXTURE.sample(200, torch.Generator().manual_seed(41))
# 1) Against the reference, with two models, four grids, eta a number, an int or a (S,) tensor, the noises given
for _grid in ([3, 10, 11, 200, 650, 1000], [17 * k for k in range(1, 59)] + [1000], [1000], [1, 2, 3, 4, 999]):
    _S = len(_grid)
    _noises = torch.randn(_S, 64, 2, generator=_g)
    for _eta in (0.0, 0.6, 1, torch.rand(_S, generator=_g)):
        _etas = _eta.tolist() if isinstance(_eta, Tensor) else [float(_eta)] * _S
        for _model in (_wavy, _exact):
            _expected = _reference_invert(_model, _x0[:64], _grid, _etas, _noises)
            _got = ancestral_invert(_model, SCHED, _x0[:64], timesteps=torch.tensor(_grid), eta=_eta, noises=_noises)
            assert torch.allclose(_got, _expected, rtol=1e-9, atol=1e-9), \
                f"grid {_grid[:6]}..., eta = {_eta}: largest difference to the reference " \
                f"{(_got - _expected).abs().max():.3g}"
# 2) The calls: at tau_1 (for the data), tau_1, ..., tau_{S-1}, t a (B,) long tensor, x the current state in x
_grid = [5, 60, 61, 400, 1000]
_noises = torch.randn(5, 3, 2, generator=_g)
_seen, _expected_calls = [], []


def _recording(x, t):
    _seen.append((t.clone(), x.clone()))
    return _wavy(x, t)


ancestral_invert(_recording, SCHED, _x0[:3], timesteps=torch.tensor(_grid), eta=0.5, noises=_noises)
_reference_invert(_wavy, _x0[:3], _grid, [0.5] * 5, _noises, record=_expected_calls)
assert [(s[0].dtype, s[0].tolist()) for s in _seen] == [(torch.long, [k] * 3) for k in (5, 5, 60, 61, 400)], \
    f"call the model at 5 (for the data), 5, 60, 61, 400: got {[(s[0].dtype, s[0].tolist()) for s in _seen]}"
for (_, _x), (_, _x_ref) in zip(_seen, _expected_calls, strict=True):
    assert torch.allclose(_x, _x_ref, rtol=1e-9, atol=1e-12), "the model must see the current state, in x (not x_bar)"
# 3) Defaults and errors: eta = 0 needs no noises and draws nothing; some eta_k > 0 without noises is an error
_gen_state = torch.get_rng_state()
_got = ancestral_invert(_wavy, SCHED, _x0[:4], timesteps=torch.tensor(_grid))
assert torch.equal(torch.get_rng_state(), _gen_state), "eta = 0 (the default): the inversion drew random numbers"
assert torch.allclose(_got, _reference_invert(_wavy, _x0[:4], _grid, [0.0] * 5, None), rtol=1e-9, atol=1e-9), \
    "eta = 0 (the default): not DDIM's inversion"
for _eta in (0.2, 1, torch.tensor([0.0, 0.0, 0.0, 0.0, 0.1]), torch.tensor([0.4, 0.0, 0.0, 0.0, 0.0])):
    try:
        ancestral_invert(_wavy, SCHED, _x0[:4], timesteps=torch.tensor(_grid), eta=_eta)
    except ValueError as _error:
        assert "noises" in str(_error), f"eta = {_eta} without noises: the message must name noises: {_error}"
    else:
        raise AssertionError(f"eta = {_eta} without noises must raise a ValueError naming noises")
_got = ancestral_invert(_wavy, SCHED, _x0[:4], timesteps=torch.tensor(_grid), eta=torch.zeros(5))
assert torch.allclose(_got, _reference_invert(_wavy, _x0[:4], _grid, [0.0] * 5, None), rtol=1e-9, atol=1e-9), \
    "eta = zeros(S) without noises: every eta_k = 0 needs no noises"
# 4) Shapes and dtypes: one example, image-like (B, C, H, W), float32
for _shape in ((1, 2), (2, 3, 4, 4), (6, 1)):
    for _dtype, _tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        _x = torch.randn(_shape, generator=_g, dtype=_dtype)
        _noises = torch.randn(5, *_shape, generator=_g, dtype=_dtype)
        _got = ancestral_invert(_wavy, SCHED, _x, timesteps=torch.tensor(_grid), eta=0.5, noises=_noises)
        _expected = _reference_invert(_wavy, _x.double(), _grid, [0.5] * 5, _noises.double())
        assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
            f"x0 {_shape} {_dtype}: expected a tensor of that shape and dtype, got " \
            f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
        assert torch.allclose(_got.double(), _expected, rtol=_tol, atol=_tol), f"x0 {_shape} {_dtype}: wrong value"
# 5) With a constant noise prediction the encoding step is the exact inverse of the decoding step (nothing to
# approximate), for every eta and noise: decode(invert(x0)) = x0 to round-off, on any grid.
def _constant(x, t):
    return torch.full_like(x, -0.45)


for _grid in ([1000], [3, 10, 11, 200, 650, 1000], [1, 2, 3, 4, 999]):
    _S = len(_grid)
    _noises = torch.randn(_S, 64, 2, generator=_g)
    _eta = torch.rand(_S, generator=_g)
    _x_T = ancestral_invert(_constant, SCHED, _x0[:64], timesteps=torch.tensor(_grid), eta=_eta, noises=_noises)
    _back = _reference_decode(_constant, _x_T, _grid, _eta.tolist(), _noises)
    assert torch.allclose(_back, _x0[:64], rtol=1e-8, atol=1e-8), \
        f"grid {_grid[:6]}..., a constant eps: decoding your x_T with the same eta and noises must return x0 exactly " \
        f"(largest difference {(_back - _x0[:64]).abs().max():.3g})"
# 6) The round trip x0 -> x_T -> x0 at eta = 0 with the exact noise predictor, decoded by the reference above, on
# grids uniform in lambda (written out here rather than taken from Part C). Statistic: the median over 200 points of
# MIXTURE of the relative error |x0_rec - x0| / |x0| of each point. (The median, because a few points between the
# modes, where the posterior switches from one component to another within one jump, converge late and erratically;
# the typical point converges cleanly.) Both directions are Euler's method, first order, so the error must behave
# like C / S. Measured for this seed: 0.1208, 0.0572, 0.0281, 0.0140 at S = 20, 40, 80, 160, i.e. S * error = 2.24
# to 2.42 and a factor 2.01 to 2.11 per doubling of S (seeds 42 and 43: S * error 2.18 to 2.39, factors 2.02 to
# 2.09). Bounds: error below 3.6 / S (1.5 times the largest C measured), and a fall by more than 1.6 per doubling
# (first order predicts 2; an inversion that stops converging or converges to the wrong point fails one or the other).
def _lambda_grid(S):  # T = 1000: levels evenly spaced in lambda, nearest steps, moved into [previous + 1, T - S + k]
    lam = [None] + [0.5 * math.log(a / (1 - a)) for a in _ab[1:]]
    grid, previous = [], 0
    for k in range(1, S + 1):
        level = lam[1000] + (S - k) / (S - 1) * (lam[1] - lam[1000])
        nearest = min(range(1, 1001), key=lambda t: abs(lam[t] - level))
        previous = min(max(nearest, previous + 1), 1000 - S + k)
        grid.append(previous)
    return grid


_errors = []
for _S in (20, 40, 80, 160):
    _grid = _lambda_grid(_S)
    _x_T = ancestral_invert(_exact, SCHED, _x0, timesteps=torch.tensor(_grid))
    _rec = _reference_decode(_exact, _x_T, _grid, [0.0] * _S, None)
    _errors.append(((_rec - _x0).norm(dim=1) / _x0.norm(dim=1)).median().item())
    assert _errors[-1] < 3.6 / _S, f"S = {_S}: median round-trip relative error {_errors[-1]:.4f} exceeds 3.6 / S"
for _coarse, _fine in zip(_errors[:-1], _errors[1:], strict=True):
    assert _coarse / _fine > 1.6, f"the round-trip error must fall like 1 / S, got {_errors} at S = 20, 40, 80, 160"
### END HIDDEN TESTS

# %% [markdown] id="part_d_demo"
# Nothing to write here: the cell draws `MIXTURE` with your `ancestral_sample` on 20 steps of your Part C grid at three
# values of $\eta$ (the same $\mathbf{x}_T$ and noises), and plots the round-trip error of your inversion, decoded
# with the same $\eta$ and noises, against the number of steps. With correct answers all three clouds look like the
# data (they are different members of one family with the same marginals, apart from the error of 20 large jumps).
# The deterministic round trip ($\eta = 0$) falls like $1/S$; with $\eta > 0$ every jump moves
# $\bar{\mathbf{x}}$ by the fresh noise as well, so the noise predicted at the start of an encoding step is a worse
# guess of the one at its end, and the round trip needs many more steps for the same error: why inversion, and the
# image editing built on it, uses $\eta = 0$.

# %% id="d_demo"
_g = torch.Generator().manual_seed(0)
_n, _exact = 2000, mixture_eps_model(MIXTURE, SCHED)
_grid = log_snr_timesteps(SCHED, 20)
_x_T = torch.randn(_n, 2, generator=_g)
_noises = torch.randn(20, _n, 2, generator=_g)
_fig, _axes = plt.subplots(1, 5, figsize=(20, 3.8))
_axes[0].scatter(*MIXTURE.sample(_n, _g).T, s=2, color="C0")
_axes[0].set(title="data", aspect="equal", xlim=(-2.6, 2.2), ylim=(-2.4, 2.2))
for _ax, _eta, _color in zip(_axes[1:4], (0.0, 0.5, 1.0), ("C1", "C2", "C3"), strict=True):
    _x = ancestral_sample(_exact, SCHED, _x_T, timesteps=_grid, eta=_eta, noises=_noises)
    _ax.scatter(*_x.T, s=2, color=_color)
    _ax.set(title=f"20 steps uniform in lambda, eta = {_eta}", aspect="equal", xlim=(-2.6, 2.2), ylim=(-2.4, 2.2))
_x0, _steps = MIXTURE.sample(200, _g), [10, 20, 40, 80, 160]
for _eta, _style in ((0.0, "o-"), (0.3, "s-"), (1.0, "^-")):
    _errors = []
    for _S in _steps:
        _grid = log_snr_timesteps(SCHED, _S)
        _noises = torch.randn(_S, 200, 2, generator=_g)
        _x_T = ancestral_invert(_exact, SCHED, _x0, timesteps=_grid, eta=_eta, noises=_noises)
        _rec = ancestral_sample(_exact, SCHED, _x_T, timesteps=_grid, eta=_eta, noises=_noises)
        _errors.append(((_rec - _x0).norm(dim=1) / _x0.norm(dim=1)).median().item())
    _axes[4].loglog(_steps, _errors, _style, label=f"eta = {_eta}")
    print(f"eta = {_eta}: median round-trip relative error at S = {_steps}: {[round(e, 4) for e in _errors]}")
_axes[4].loglog(_steps, [0.12 * 20 / s for s in _steps], "k--", label="1 / S")
_axes[4].set(title="inversion then decoding (median point)", xlabel="steps S", ylabel="relative error")
_axes[4].legend()
plt.show()

# %% [markdown] id="part_e"
# ## Part E — why the family works (4 points, graded by hand)
#
# 1. Fix $t' < t$ and a noise level $\varsigma_\uparrow \in [0, \varsigma_{t'}]$, with $\varsigma_\downarrow =
#    \sqrt{\varsigma_{t'}^2 - \varsigma_\uparrow^2}$. Show that if $\bar{\mathbf{x}}_t \mid \mathbf{x}_0 \sim
#    \mathcal{N}(\mathbf{x}_0, \varsigma_t^2\mathbf{I})$ and $\bar{\mathbf{x}}_{t'}$ is drawn from
#    $q_\sigma(\bar{\mathbf{x}}_{t'} \mid \bar{\mathbf{x}}_t, \mathbf{x}_0)$ of Part A, then $\bar{\mathbf{x}}_{t'}
#    \mid \mathbf{x}_0 \sim \mathcal{N}(\mathbf{x}_0, \varsigma_{t'}^2\mathbf{I})$, whatever $\varsigma_\uparrow$ is.
#    Conclude that every member of the family, with any noise level on each jump and on every grid $\tau$, has
#    DDPM's marginals $q(\mathbf{x}_t \mid \mathbf{x}_0)$ at the steps it visits, and explain why a network trained
#    once with $L_\text{simple}$ can be used with any $\eta_k$ and any grid.
# 2. Show that $\eta = 1$ makes $q_\sigma(\bar{\mathbf{x}}_{t'} \mid \bar{\mathbf{x}}_t, \mathbf{x}_0)$ equal to the
#    forward process's posterior $q(\bar{\mathbf{x}}_{t'} \mid \bar{\mathbf{x}}_t, \mathbf{x}_0)$ for the jump:
#    give its mean by Gaussian conditioning and show that the means agree, not only the variances. Then write
#    Part B's step back in $\mathbf{x} = \sqrt{\bar\alpha}\,\bar{\mathbf{x}}$ and show that it is DDIM's eq. 12,
#    $\mathbf{x}_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat{\mathbf{x}}_0 + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\,
#    \boldsymbol\epsilon + \sigma\mathbf{z}$ with $\sigma = \sqrt{\bar\alpha_{t'}}\,\varsigma_\uparrow$ and
#    $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon)/\sqrt{\bar\alpha_t}$. What
#    does the step with $\eta = 1$ and $t' = t - 1$ therefore compute?

# %% [markdown] id="family_derivation" kind="manual" points=4
# ### BEGIN SOLUTION
# **1.** Write $\bar{\mathbf{x}}_t = \mathbf{x}_0 + \varsigma_t\,\boldsymbol\epsilon$ with $\boldsymbol\epsilon \sim
# \mathcal{N}(\mathbf{0}, \mathbf{I})$ given $\mathbf{x}_0$; the fraction in $q_\sigma$'s mean is exactly
# $\boldsymbol\epsilon$. A draw from $q_\sigma$ is then
#
# $$\bar{\mathbf{x}}_{t'} = \mathbf{x}_0 + \varsigma_\downarrow\,\boldsymbol\epsilon + \varsigma_\uparrow\,\mathbf{z},
# \qquad \mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) \text{ independent of } \boldsymbol\epsilon,$$
#
# a linear combination of independent Gaussians, hence Gaussian given $\mathbf{x}_0$, with mean $\mathbf{x}_0$ and
# covariance $(\varsigma_\downarrow^2 + \varsigma_\uparrow^2)\mathbf{I} = \varsigma_{t'}^2\mathbf{I}$: the split
# cancels. In the usual variables this is $q(\mathbf{x}_{t'} \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_{t'}}
# \mathbf{x}_0, (1-\bar\alpha_{t'})\mathbf{I})$ (multiply by $\sqrt{\bar\alpha_{t'}}$: $\bar\alpha_{t'}
# \varsigma_{t'}^2 = 1 - \bar\alpha_{t'}$). The family is defined from $q_\sigma(\mathbf{x}_T \mid \mathbf{x}_0) =
# \mathcal{N}(\sqrt{\bar\alpha_T}\mathbf{x}_0, (1-\bar\alpha_T)\mathbf{I})$ downwards along the grid, so by induction
# over $\tau_S = T, \tau_{S-1}, \dots$ every visited step has the DDPM marginal, for every choice of the noise levels
# (one per jump) and of the grid. $L_\text{simple}$ depends on the forward process only through these marginals
# (it draws $\mathbf{x}_t$ from $q(\mathbf{x}_t \mid \mathbf{x}_0)$ directly), so the same objective, with the same
# minimiser $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$, belongs to every member (DDIM's Theorem 1 adds that
# the members' variational bounds are $L_\text{simple}$ up to weights and constants): a network trained once is
# already trained for every $\eta_k$ and every subset of steps; only the sampler changes.
#
# **2.** Given $\mathbf{x}_0$, $\bar{\mathbf{x}}_{t'} = \mathbf{x}_0 + \varsigma_{t'}\boldsymbol\epsilon'$ and
# $\bar{\mathbf{x}}_t = \bar{\mathbf{x}}_{t'} + \sqrt{\varsigma_t^2 - \varsigma_{t'}^2}\,\mathbf{w}$ with
# $\mathbf{w}$ independent: Gaussian conditioning of the pair (covariance $\varsigma_{t'}^2$, variances
# $\varsigma_{t'}^2$ and $\varsigma_t^2$) gives the posterior
# $\mathcal{N}\big(\mathbf{x}_0 + \frac{\varsigma_{t'}^2}{\varsigma_t^2}(\bar{\mathbf{x}}_t - \mathbf{x}_0),\
# \frac{\varsigma_{t'}^2(\varsigma_t^2 - \varsigma_{t'}^2)}{\varsigma_t^2}\mathbf{I}\big)$. With $\eta = 1$,
# $\varsigma_\uparrow^2$ is this variance by definition, and $\varsigma_\downarrow^2 = \varsigma_{t'}^2 -
# \varsigma_\uparrow^2 = \varsigma_{t'}^4/\varsigma_t^2$, so $\varsigma_\downarrow = \varsigma_{t'}^2/\varsigma_t$
# and $q_\sigma$'s mean $\mathbf{x}_0 + \varsigma_\downarrow(\bar{\mathbf{x}}_t - \mathbf{x}_0)/\varsigma_t$ is the
# posterior mean too. Two Gaussians with the same mean and covariance are equal. Back in $\mathbf{x}$: multiply
# Part B's step by $\sqrt{\bar\alpha_{t'}}$ and use $\bar{\mathbf{x}}_t - \varsigma_t\boldsymbol\epsilon =
# \hat{\mathbf{x}}_0$:
# $\mathbf{x}_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat{\mathbf{x}}_0 + \sqrt{\bar\alpha_{t'}}\,\varsigma_\downarrow\,
# \boldsymbol\epsilon + \sqrt{\bar\alpha_{t'}}\,\varsigma_\uparrow\,\mathbf{z}$, and $\bar\alpha_{t'}
# \varsigma_\downarrow^2 = \bar\alpha_{t'}\varsigma_{t'}^2 - \sigma^2 = 1 - \bar\alpha_{t'} - \sigma^2$: eq. 12 with
# $\sigma = \sqrt{\bar\alpha_{t'}}\,\varsigma_\uparrow$; at $\eta = 1$, $\sigma^2 = \bar\alpha_{t'}
# \frac{\varsigma_{t'}^2(\varsigma_t^2 - \varsigma_{t'}^2)}{\varsigma_t^2} = \frac{1-\bar\alpha_{t'}}
# {1-\bar\alpha_t}\big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t'}}\big) = \tilde\beta_{t\to t'}$ (use
# $\varsigma^2 = (1-\bar\alpha)/\bar\alpha$), DDPM's posterior variance of the jump. With $t' = t-1$ the jump is one
# step, and the step with $\eta = 1$ puts $\hat{\mathbf{x}}_0$ into DDPM's posterior: it is exactly DDPM's ancestral
# step (Algorithm 2) with $\sigma_t^2 = \tilde\beta_t$, mean $\frac{1}{\sqrt{\alpha_t}}\big(\mathbf{x}_t -
# \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\boldsymbol\epsilon\big)$. On a coarser grid, $\eta = 1$ is DDPM's sampler on
# the respaced schedule whose betas are the jumps' $\beta_{t\to t'} = 1 - \bar\alpha_t/\bar\alpha_{t'}$.
#
# *Marking:* 2 for part 1: 1 for the computation (the fraction is $\boldsymbol\epsilon$, independence of
# $\mathbf{z}$, $\varsigma_\downarrow^2 + \varsigma_\uparrow^2 = \varsigma_{t'}^2$), 1 for the consequence (induction
# from $T$ along the grid, and $L_\text{simple}$ sees only the marginals, so one network serves every $\eta_k$ and
# grid); asserting "the marginals match" without the variance sum earns nothing. 2 for part 2: 1 for the posterior
# and the means (the conditional mean and $\varsigma_\downarrow = \varsigma_{t'}^2/\varsigma_t$; matching variances
# alone earns nothing here), 1 for eq. 12 with $\sigma = \sqrt{\bar\alpha_{t'}}\varsigma_\uparrow$, $\sigma^2 =
# \tilde\beta_{t\to t'}$ at $\eta = 1$, and identifying $\eta = 1$, $t' = t-1$ as Algorithm 2 with $\sigma_t^2 =
# \tilde\beta_t$ (with $\hat{\mathbf{x}}_0$ in place of $\mathbf{x}_0$).
# ### END SOLUTION
