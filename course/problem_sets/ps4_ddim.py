# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 4 — DDIM: the $\eta$ family, timestep selection and inversion
#
# A network trained with $L_\text{simple}$ only ever sees the marginals $q(\mathbf{x}_t \mid \mathbf{x}_0) =
# \mathcal{N}\big(\sqrt{\bar\alpha_t}\,\mathbf{x}_0,\ (1-\bar\alpha_t)\mathbf{I}\big)$. DDIM (Song, Meng & Ermon 2021)
# exploits this: it builds a whole family of generative processes, indexed by a noise level $\sigma$, that share those
# marginals, so one trained $\boldsymbol\epsilon_\theta$ serves every member, and the members may jump over steps.
# One member is DDPM's ancestral sampler; another draws no noise at all after $\mathbf{x}_T$ and is a deterministic
# map that can be run backwards, from data to noise. In this problem set you write the pieces and prove numerically
# that they do what the lecture says:
#
# | part | what you show | points |
# |---|---|---|
# | A | the noise level $\sigma_t(\eta)$ of a jump between any two steps; $\eta = 1$ is DDPM's posterior | 3 |
# | B | the DDIM step: predicted $\mathbf{x}_0$, direction pointing to $\mathbf{x}_t$, noise | 4 |
# | C | timestep selection: a "power" grid of $S$ steps out of $T$, distinct and ending at $T$ | 3 |
# | D | deterministic sampling ($\eta = 0$) on a short grid, and its inverse, data to noise | 3 + 3 |
# | E | why the marginals do not depend on $\sigma$, and why $\eta = 1$ is DDPM's step (by hand) | 4 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones catch
# wrong shapes and obvious slips, hidden ones run at grading time and compare your functions with independent
# computations (the posterior of a jump by Gaussian conditioning, the moments your step propagates, DDPM's posterior
# mean, DDIM rewritten as Euler's method in the noise-to-signal ratio, the round trip data -> noise -> data with the
# exact noise predictor). Write your answers with `torch` and `math`; do not import `ddpm_scratch`.
#
# **Conventions.** As in problem sets 1 and 2: arrays over time have length $T+1$, index $t$ is the lecture's $t$,
# index 0 is the data ($\bar\alpha_0 = 1$). Steps are Python `int`s of the *full* schedule: a short sampler visits
# a few of them, $0 = \tau_0 < \tau_1 < \dots < \tau_S = T$, and jumps from one to the next; we write $t$ for the
# step a jump starts from and $t'$ (`t_prev`) for the one it lands on. An *eps-model* is any callable
# `eps_model(x_t, t)` taking `x_t` of shape `(B, D)` and `t` of shape `(B,)` (long, the training step) and returning
# a tensor shaped like `x_t`. The notebook computes in float64.
#
# **Calling convention** (the course package's): the schedule comes first, then the state and the steps,
# positionally, `(sched, x_t, t, t_prev)`; everything a model predicts or a caller draws is keyword-only, e.g.
# `ddim_step(sched, x_t, t, t_prev, eps=eps_hat, eta=0.5, noise=z)`. The predicted noise, $\mathbf{x}_t$ and the
# noise $\mathbf{z}$ all have the same shape, so two of them swapped in a positional call would raise nothing; a
# keyword cannot be swapped silently. Whole runs take the model first, `ddim_sample(eps_model, sched, x_T,
# timesteps=...)`.
#
# The setup cell gives you DDPM's linear schedule `SCHED` ($T = 1000$) and the data `MIXTURE`, four round Gaussians in
# the plane. Each component stays Gaussian under the forward process, so $q(\mathbf{x}_t)$ is again a mixture and the
# best possible noise predictor $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t] = -\sqrt{1-\bar\alpha_t}\,
# \nabla\log q(\mathbf{x}_t)$ has a closed form: `mixture_eps_model(MIXTURE, SCHED)` is that "perfect network", with
# no training error, to test your samplers against.

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
# A made-up three-step schedule with round numbers for the visible tests: betas 0.4, 0.25, 0.2 give
# alpha_bar = 1, 0.6, 0.45, 0.36 (1 - 0.36 = 0.64 = 0.8^2).
TINY = schedule_from_betas(torch.tensor([0.4, 0.25, 0.2]))

# %% [markdown] id="part_a"
# ## Part A — the noise level of a jump (3 points)
#
# DDIM replaces DDPM's forward chain by a family of processes, one for each choice of $\sigma \ge 0$, defined
# backwards from $q_\sigma(\mathbf{x}_T \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_T}\,\mathbf{x}_0,
# (1-\bar\alpha_T)\mathbf{I})$ by
#
# $$q_\sigma(\mathbf{x}_{t'} \mid \mathbf{x}_t, \mathbf{x}_0) = \mathcal{N}\Big(\sqrt{\bar\alpha_{t'}}\,\mathbf{x}_0
# + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\;\frac{\mathbf{x}_t - \sqrt{\bar\alpha_t}\,\mathbf{x}_0}{\sqrt{1-\bar\alpha_t}},
# \ \sigma^2\mathbf{I}\Big), \qquad t' < t,$$
#
# for the pairs of consecutive steps of the grid it runs on. Part E shows that every member has the same marginals
# $q(\mathbf{x}_t \mid \mathbf{x}_0)$ as DDPM whatever $\sigma$ is, and that one value of $\sigma$ makes
# $q_\sigma(\mathbf{x}_{t'} \mid \mathbf{x}_t, \mathbf{x}_0)$ exactly DDPM's posterior for the jump $t \to t'$. DDIM
# parametrises the noise level as a fraction $\eta \in [0, 1]$ of that posterior's standard deviation (DDIM eq. 16):
#
# $$\sigma_{t \to t'}(\eta) = \eta\,\sqrt{\tilde\beta_{t \to t'}}, \qquad \tilde\beta_{t \to t'} =
# \frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}\,\beta_{t \to t'}, \qquad \beta_{t \to t'} = 1 - \frac{\bar\alpha_t}
# {\bar\alpha_{t'}}.$$
#
# This is problem set 1's posterior variance $\tilde\beta_t$ with the one-step $\beta_t$ replaced by the noise
# variance $\beta_{t \to t'}$ that the forward process adds *over the whole jump* (from $t'$ to $t$ it scales by
# $\sqrt{\bar\alpha_t / \bar\alpha_{t'}}$). For consecutive steps, $t' = t - 1$, it is DDPM's $\tilde\beta_t$.
#
# Write $\sigma_{t \to t'}(\eta)$. Mind that $\eta$ scales the **standard deviation**, not the variance. Raise a
# `ValueError` whose message names the argument when `eta` is outside $[0, 1]$ or `t_prev` is not one of
# $0, \dots, t-1$.

# %% id="ddim_sigma" kind="solution"
def ddim_sigma(sched: Schedule, t: int, t_prev: int, eta: float) -> float:
    """sigma_{t -> t_prev}(eta) = eta sqrt(beta_tilde of the jump)  (DDIM eq. 16).

    sched: the schedule.  t: int in 1..T.  t_prev: int in 0..t-1.  eta: float in [0, 1].
    Returns a float (a 0-d tensor is accepted too).
    """
    ### BEGIN SOLUTION
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    if not 0 <= t_prev < t:
        raise ValueError(f"t_prev must be one of 0..t-1 = 0..{t - 1}, got {t_prev}")
    abar_from, abar_to = float(sched.alpha_bars[t]), float(sched.alpha_bars[t_prev])
    jump_beta = 1.0 - abar_from / abar_to  # the noise variance the forward process adds from t_prev to t
    posterior_var = (1.0 - abar_to) / (1.0 - abar_from) * jump_beta  # beta_tilde of the jump
    return eta * math.sqrt(posterior_var)
    ### END SOLUTION


# %% id="ddim_sigma_tests" kind="tests" points=3
# On TINY (alpha_bar_1 = 0.6, alpha_bar_3 = 0.36) the jump 3 -> 1 adds beta = 1 - 0.36 / 0.6 = 0.4, and its posterior
# variance is (1 - 0.6) / (1 - 0.36) * 0.4 = 0.25: sigma(eta = 1) = 0.5, sigma(eta = 0.4) = 0.2.
_s = ddim_sigma(TINY, 3, 1, 1.0)
assert abs(float(_s) - 0.5) < 1e-12, f"the jump 3 -> 1 on TINY at eta = 1 has sigma = 0.5, got {float(_s)}"
assert abs(float(ddim_sigma(TINY, 3, 1, 0.4)) - 0.2) < 1e-12, "eta scales the standard deviation: 0.4 * 0.5 = 0.2"
assert float(ddim_sigma(TINY, 2, 0, 1.0)) == 0.0, "a jump that lands on the data (t' = 0, alpha_bar = 1) adds no noise"
try:
    ddim_sigma(TINY, 3, 1, 1.5)
except ValueError as _error:
    assert "eta" in str(_error), f"the message must name eta: {_error}"
else:
    raise AssertionError("eta = 1.5 must raise a ValueError")
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _jump_posterior_var(abar_from, abar_to):
    # q(x_to | x_from, x0) by Gaussian conditioning of the pair (x_to, x_from) given x0: Var x_to = 1 - abar_to,
    # Var x_from = 1 - abar_from, Cov = sqrt(abar_from / abar_to) (1 - abar_to) (x_from = sqrt(abar_from / abar_to)
    # x_to + independent noise); the conditional variance is the Schur complement Var - Cov^2 / Var.
    cov = math.sqrt(abar_from / abar_to) * (1 - abar_to)
    return (1 - abar_to) - cov**2 / (1 - abar_from)


def _cosine_schedule(T, s=0.008):  # Nichol & Dhariwal's cosine alpha_bar, betas clipped at 0.999
    f = [math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2 for u in range(T + 1)]
    return schedule_from_betas(torch.tensor([min(1 - f[u] / f[u - 1], 0.999) for u in range(1, T + 1)]))


# 1) eta = 1 is the posterior standard deviation of the jump, on two schedules, for jumps of every size
for _sched in (SCHED, _cosine_schedule(400)):
    _ab = _sched.alpha_bars.tolist()
    _T = _sched.T
    for _t, _tp in ((1, 0), (2, 1), (37, 36), (_T, _T - 1), (_T, 0), (_T, _T // 2), (_T // 2, 3), (_T - 5, 1)):
        _expected = math.sqrt(_jump_posterior_var(_ab[_t], _ab[_tp]))
        for _eta in (1.0, 0.55, 0.1, 0.0):
            _got = float(ddim_sigma(_sched, _t, _tp, _eta))
            assert abs(_got - _eta * _expected) <= 1e-10 * _expected + 1e-15, \
                f"T = {_T}, jump {_t} -> {_tp}, eta = {_eta}: sigma = {_got:.8g}, expected {_eta * _expected:.8g}"
# 2) consecutive steps: DDPM's beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t
_betas, _ab = SCHED.betas.tolist(), SCHED.alpha_bars.tolist()
for _t in (2, 10, 500, 1000):
    _bt = (1 - _ab[_t - 1]) / (1 - _ab[_t]) * _betas[_t]
    assert abs(float(ddim_sigma(SCHED, _t, _t - 1, 1.0)) ** 2 - _bt) < 1e-10 * _bt, f"t = {_t}: not beta_tilde_t"
# 3) bad arguments, each named in the message
for _args, _name in (((TINY, 3, 1, -0.1), "eta"), ((TINY, 3, 3, 0.5), "t_prev"), ((TINY, 2, 3, 0.5), "t_prev"),
                     ((TINY, 3, -1, 0.5), "t_prev")):
    try:
        ddim_sigma(*_args)
    except ValueError as _error:
        assert _name in str(_error), f"ddim_sigma{_args[1:]}: the message must name {_name}: {_error}"
    else:
        raise AssertionError(f"ddim_sigma{_args[1:]} must raise a ValueError naming {_name}")
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — the DDIM step (4 points)
#
# The generative process puts the network's guess of $\mathbf{x}_0$ where $q_\sigma$ has the true one: with
# $\boldsymbol\epsilon = \boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ (the keyword `eps`),
#
# $$\hat{\mathbf{x}}_0 = \frac{\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon}{\sqrt{\bar\alpha_t}},
# \qquad
# \mathbf{x}_{t'} = \underbrace{\sqrt{\bar\alpha_{t'}}\,\hat{\mathbf{x}}_0}_{\text{predicted } \mathbf{x}_0}
# + \underbrace{\sqrt{1-\bar\alpha_{t'}-\sigma^2}\;\boldsymbol\epsilon}_{\text{direction pointing to }
# \mathbf{x}_t} + \underbrace{\sigma\,\mathbf{z}}_{\text{noise}} \qquad \text{(DDIM eqs. 9 and 12)},$$
#
# with $\sigma = \sigma_{t \to t'}(\eta)$ from Part A. Write the step. The noise $\mathbf{z}$ is the keyword `noise`;
# when it is `None` and $\eta > 0$, draw it as `torch.randn(x_t.shape, generator=generator)`. Add it as
# $+\,\sigma\mathbf{z}$: the tests check the step exactly, not only in distribution.
#
# **$\eta = 0$** is special: $\sigma = 0$, and the step must then be deterministic. It uses no noise and **draws
# none** (neither from `generator` nor from torch's global generator: the state of both must not move), and it does
# not call `ddim_sigma`: with $\sigma = 0$ the formula is a map between any two noise levels, also upwards ($t' > t$),
# and from the data ($t = 0$, where $\bar\alpha_0 = 1$ and $\hat{\mathbf{x}}_0 = \mathbf{x}_0$). Part D runs it
# that way to turn data into noise.

# %% id="ddim_step" kind="solution"
def ddim_step(sched: Schedule, x_t: Tensor, t: int, t_prev: int, *, eps: Tensor, eta: float = 0.0,
              noise: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One DDIM step x_t -> x_{t_prev} (DDIM eq. 12), sigma = ddim_sigma(sched, t, t_prev, eta).

    x_t: (B, ...).  t, t_prev: ints in 0..T, t_prev < t (any two steps when eta = 0).  Keyword-only: eps (B, ...)
    the predicted noise at (x_t, t); eta in [0, 1]; noise (B, ...) standard normal, or None: drawn with `generator`
    when eta > 0, never drawn when eta = 0.  Returns x_{t_prev}: (B, ...).
    """
    ### BEGIN SOLUTION
    alpha_bar_t, alpha_bar_prev = sched.alpha_bars[t], sched.alpha_bars[t_prev]
    x0_pred = (x_t - torch.sqrt(1 - alpha_bar_t) * eps) / torch.sqrt(alpha_bar_t)  # eq. 9
    if eta == 0.0:  # sigma = 0: no noise, and no sigma (the jump may go upwards)
        return torch.sqrt(alpha_bar_prev) * x0_pred + torch.sqrt(1 - alpha_bar_prev) * eps
    sigma = ddim_sigma(sched, t, t_prev, eta)
    if noise is None:
        noise = torch.randn(x_t.shape, generator=generator)
    pointing = torch.sqrt(1 - alpha_bar_prev - sigma**2) * eps  # the direction pointing to x_t
    return torch.sqrt(alpha_bar_prev) * x0_pred + pointing + sigma * noise
    ### END SOLUTION


# %% id="ddim_step_tests" kind="tests" points=4
# TINY, jump 3 -> 1 at eta = 0.4: sigma = 0.2 (Part A), x0_hat = (x_3 - 0.8 eps) / 0.6 and the direction has weight
# sqrt(1 - 0.6 - 0.2^2) = 0.6, so x_1 = sqrt(0.6) x0_hat + 0.6 eps + 0.2 z = (x_3 - 0.8 eps) / sqrt(0.6) + 0.6 eps
# + 0.2 z. At eta = 0 the direction has weight sqrt(1 - 0.6) and there is no noise.
_gen = torch.Generator().manual_seed(1)
_x_t, _eps, _z = (torch.randn(4, 3, generator=_gen) for _ in range(3))
_x = ddim_step(TINY, _x_t, 3, 1, eps=_eps, eta=0.4, noise=_z)
assert isinstance(_x, Tensor) and _x.shape == (4, 3), \
    f"x_(t') must have x_t's shape (4, 3), got {getattr(_x, 'shape', _x)}"
assert torch.allclose(_x, (_x_t - 0.8 * _eps) / math.sqrt(0.6) + 0.6 * _eps + 0.2 * _z, rtol=1e-10), \
    "on TINY, 3 -> 1 at eta = 0.4 the step must be (x_3 - 0.8 eps) / sqrt(0.6) + 0.6 eps + 0.2 z (see the comment)"
_g = torch.Generator().manual_seed(2)
_state, _global_state = _g.get_state(), torch.get_rng_state()
_x = ddim_step(TINY, _x_t, 3, 1, eps=_eps, eta=0.0, generator=_g)
assert torch.allclose(_x, (_x_t - 0.8 * _eps) / math.sqrt(0.6) + math.sqrt(0.4) * _eps, rtol=1e-10), \
    "at eta = 0 the step is (x_3 - 0.8 eps) / sqrt(0.6) + sqrt(0.4) eps, without noise"
assert torch.equal(_g.get_state(), _state), "at eta = 0 the step must not draw from the generator"
assert torch.equal(torch.get_rng_state(), _global_state), "at eta = 0 the step must not draw from torch's generator"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _jump_posterior_var(abar_from, abar_to):  # Gaussian conditioning, as in Part A's hidden tests
    cov = math.sqrt(abar_from / abar_to) * (1 - abar_to)
    return (1 - abar_to) - cov**2 / (1 - abar_from)


def _affine_coefficients(t, tp, eta):
    # The step is affine in (x_t, eps, z) jointly: read the three weights off unit inputs, then check that random
    # inputs give a x_t + b eps + c z (the step must be exactly this affine map, coordinate by coordinate).
    unit = torch.eye(3)[:, :, None]  # rows: (x_t, eps, z) = e_1, e_2, e_3
    out = ddim_step(SCHED, unit[:, 0], t, tp, eps=unit[:, 1], eta=eta, noise=unit[:, 2])
    a, b, c = out[:, 0].tolist()
    g = torch.Generator().manual_seed(t + tp)
    x, e, z = (torch.randn(5, 2, generator=g) for _ in range(3))
    assert torch.allclose(ddim_step(SCHED, x, t, tp, eps=e, eta=eta, noise=z), a * x + b * e + c * z,
                          rtol=1e-10, atol=1e-12), f"the step {t} -> {tp} (eta = {eta}) is not a x_t + b eps + c z"
    return a, b, c


_ab = SCHED.alpha_bars.tolist()
_jumps = ((1000, 950), (1000, 1), (600, 599), (600, 200), (300, 40), (20, 5), (2, 1), (700, 0), (1, 0))
# 1) Exact moment propagation, the DDIM family's defining property (DDIM Lemma 1). If x_t = sqrt(abar_t) x0 +
# sqrt(1 - abar_t) eps with eps ~ N(0, I) and the step is given that same eps, then x_t' = a sqrt(abar_t) x0 +
# (a sqrt(1 - abar_t) + b) eps + c z has mean a sqrt(abar_t) x0 and variance (a sqrt(1 - abar_t) + b)^2 + c^2 per
# coordinate: they must be q(x_t' | x0)'s sqrt(abar_t') and 1 - abar_t' for EVERY eta, and the noise weight c must be
# eta times the posterior standard deviation of the jump. All in closed form: tolerance 1e-10 (float64 round-off).
for _t, _tp in _jumps:
    for _eta in (0.0, 0.3, 0.7, 1.0):
        _a, _b, _c = _affine_coefficients(_t, _tp, _eta)
        _where = f"jump {_t} -> {_tp}, eta = {_eta}"
        assert abs(_a * math.sqrt(_ab[_t]) - math.sqrt(_ab[_tp])) < 1e-10, \
            f"{_where}: the mean of x_t' given x0 is {_a * math.sqrt(_ab[_t]):.8g} x0, not sqrt(abar_t') x0"
        _var = (_a * math.sqrt(1 - _ab[_t]) + _b) ** 2 + _c**2
        assert abs(_var - (1 - _ab[_tp])) < 1e-10, \
            f"{_where}: x_t' has variance {_var:.8g} per coordinate, q(x_t' | x0) has {1 - _ab[_tp]:.8g}"
        assert abs(_c - _eta * math.sqrt(_jump_posterior_var(_ab[_t], _ab[_tp]))) < 1e-10, \
            f"{_where}: the noise weight {_c:.8g} is not eta times the jump's posterior standard deviation"
# 2) eta = 1 is DDPM's posterior step for the jump: mean mu_tilde(x_t, x0_hat) = sqrt(abar_t') beta_j / (1 - abar_t)
# x0_hat + sqrt(alpha_j) (1 - abar_t') / (1 - abar_t) x_t with alpha_j = abar_t / abar_t' = 1 - beta_j (problem set
# 1's posterior mean, one jump as one step); for t' = t - 1 also Algorithm 2's mean (x_t - beta_t / sqrt(1 - abar_t)
# eps) / sqrt(alpha_t). Variance: the Gaussian-conditioning posterior variance (checked through c above).
_g = torch.Generator().manual_seed(21)
_x_t, _eps = torch.randn(6, 2, generator=_g), torch.randn(6, 2, generator=_g)
_zero = torch.zeros(6, 2)
for _t, _tp in _jumps:
    _alpha_j = _ab[_t] / _ab[_tp]
    _x0_hat = (_x_t - math.sqrt(1 - _ab[_t]) * _eps) / math.sqrt(_ab[_t])
    _mu = (math.sqrt(_ab[_tp]) * (1 - _alpha_j) / (1 - _ab[_t]) * _x0_hat
           + math.sqrt(_alpha_j) * (1 - _ab[_tp]) / (1 - _ab[_t]) * _x_t)
    _got = ddim_step(SCHED, _x_t, _t, _tp, eps=_eps, eta=1.0, noise=_zero)
    assert torch.allclose(_got, _mu, rtol=1e-9, atol=1e-10), f"eta = 1, jump {_t} -> {_tp}: not DDPM's posterior mean"
    if _tp == _t - 1:
        _beta = SCHED.betas[_t].item()
        _alg2 = (_x_t - _beta / math.sqrt(1 - _ab[_t]) * _eps) / math.sqrt(1 - _beta)
        assert torch.allclose(_got, _alg2, rtol=1e-9, atol=1e-10), f"eta = 1, t = {_t}: not Algorithm 2's mean"
# 3) eta = 0 draws nothing and is deterministic: no generator or global state moves, noise (given or not) is
# ignored, and the step works upwards and from the data, where it is sqrt(abar_t') x0 + sqrt(1 - abar_t') eps.
for _t, _tp in ((1000, 1), (0, 250), (40, 900), (250, 0)):
    _gen = torch.Generator().manual_seed(22)
    _state, _global_state = _gen.get_state(), torch.get_rng_state()
    _runs = [ddim_step(SCHED, _x_t, _t, _tp, eps=_eps, eta=0.0, generator=_gen) for _ in range(2)]
    _runs.append(ddim_step(SCHED, _x_t, _t, _tp, eps=_eps, eta=0.0, noise=torch.randn(6, 2, generator=_g)))
    assert torch.equal(_gen.get_state(), _state) and torch.equal(torch.get_rng_state(), _global_state), \
        f"eta = 0, {_t} -> {_tp}: the step drew random numbers"
    assert torch.equal(_runs[0], _runs[1]) and torch.allclose(_runs[0], _runs[2], rtol=1e-12, atol=1e-14), \
        f"eta = 0, {_t} -> {_tp}: the step is not deterministic"
    _x0_hat = (_x_t - math.sqrt(1 - _ab[_t]) * _eps) / math.sqrt(_ab[_t])
    _expected = math.sqrt(_ab[_tp]) * _x0_hat + math.sqrt(1 - _ab[_tp]) * _eps
    assert torch.allclose(_runs[0], _expected, rtol=1e-9, atol=1e-10), f"eta = 0, {_t} -> {_tp}: wrong value"
# 4) eta > 0 and no noise given: z comes from `generator`, as torch.randn(x_t.shape, generator=generator)
_got = ddim_step(SCHED, _x_t, 500, 480, eps=_eps, eta=0.8, generator=torch.Generator().manual_seed(23))
_z = torch.randn(6, 2, generator=torch.Generator().manual_seed(23))
assert torch.allclose(_got, ddim_step(SCHED, _x_t, 500, 480, eps=_eps, eta=0.8, noise=_z), rtol=1e-12), \
    "with noise=None and eta > 0, draw z = torch.randn(x_t.shape, generator=generator)"
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — timestep selection (3 points)
#
# A sampler with $S$ steps visits $S$ of the $T$ training steps, $\tau_1 < \dots < \tau_S$, and jumps from
# $\tau_S$ to $\tau_{S-1}$, ..., to $\tau_1$ and finally to $\tau_0 = 0$, the data. Which steps it visits matters
# (DDIM sec. 5 and app. D.2): equal jumps spend as many steps near pure noise, where little happens, as near the
# data, where the details are made. A *power* grid puts small jumps near the data and big ones near the noise:
#
# $$\tau_k = \max\big(\operatorname{round}\big(T\,(k/S)^p\big),\ \tau_{k-1} + 1\big), \qquad k = 1, \dots, S,
# \quad \tau_0 = 0,$$
#
# with $p \ge 1$ ($p = 1$: equal jumps; $p = 2$: DDIM's "quadratic" profile). For small $k$ and large $p$ the
# rounded profile repeats steps (for $T = 1000$, $S = 50$, $p = 2$: $0.4$, $1.6$, $3.6$, ... round to 0, 2, 4, ...,
# and $T(k/S)^p < 1/2$ rounds to the data itself); the $\max$ pushes every step at least one past the previous one,
# so the steps are distinct and each jump does some work. The grid ends at $\tau_S = T$ exactly, where $\mathbf{x}_T
# \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ is a good start, and $S = T$ gives every step $1, \dots, T$.
#
# Write it; round to the nearest integer (halves either way). Return a `(S,)` long tensor. Raise a `ValueError`
# whose message names the argument when `num_steps` is not in $1..T$ or `power` $< 1$.

# %% id="power_timesteps" kind="solution"
def power_timesteps(T: int, num_steps: int, power: float = 2.0) -> Tensor:
    """The S = num_steps steps tau_k = max(round(T (k / S)^power), tau_{k-1} + 1), k = 1..S: a (S,) long tensor,
    strictly increasing, ending at T."""
    ### BEGIN SOLUTION
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in 1..T = 1..{T}, got {num_steps}")
    if power < 1:
        raise ValueError(f"power must be >= 1 (at most one step per training step near the noise), got {power}")
    grid, last = [], 0
    for k in range(1, num_steps + 1):
        last = max(math.floor(T * (k / num_steps) ** power + 0.5), last + 1)  # round half up, pushed past the last
        grid.append(last)
    return torch.tensor(grid, dtype=torch.long)
    ### END SOLUTION


# %% id="power_timesteps_tests" kind="tests" points=3
# T = 60, S = 20, p = 2: T (k / S)^2 = 0.15 k^2 = 0.15, 0.6, 1.35, 2.4, 3.75, 5.4, 7.35, 9.6, 12.15, 15, ... rounds to
# 0, 1, 1, 2, 4, 5, 7, 10, 12, 15, ...; pushed past the previous step that is 1, 2, 3, 4, 5, 6, 7, 10, 12, 15, ...
# and then 18.15, 21.6, 25.35, 29.4, 33.75, 38.4, 43.35, 48.6, 54.15, 60 round as they are (no half anywhere).
_steps = power_timesteps(60, 20, 2.0)
assert isinstance(_steps, Tensor) and _steps.dtype == torch.long and _steps.shape == (20,), \
    f"return a (S,) long tensor, got {getattr(_steps, 'dtype', type(_steps))} {getattr(_steps, 'shape', '')}"
assert _steps.tolist() == [1, 2, 3, 4, 5, 6, 7, 10, 12, 15, 18, 22, 25, 29, 34, 38, 43, 49, 54, 60], \
    f"T = 60, S = 20, p = 2: got {_steps.tolist()} (see the comment)"
assert power_timesteps(7, 7, 3.0).tolist() == list(range(1, 8)), "S = T must give every step 1..T"
try:
    power_timesteps(10, 11, 2.0)
except ValueError as _error:
    assert "num_steps" in str(_error), f"the message must name num_steps: {_error}"
else:
    raise AssertionError("num_steps = 11 > T = 10 must raise a ValueError")
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
# 1) The rule, checked step by step from the previous step the function returned: tau_k is the nearest integer to
# x_k = T (k/S)^p (within 1e-9 of a half either neighbour is accepted), unless that is not past tau_{k-1}. Then the
# properties it implies: strictly increasing, in 1..T, ending at T, and 1..T itself when S = T.
for _T in (1, 7, 60, 100, 1000):
    for _S in sorted({1, 2, 3, _T // 7 + 1, _T // 3 + 1, _T // 2 + 1, _T - 1, _T} & set(range(1, _T + 1))):
        for _p in (1.0, 1.5, 2.0, 2.7, 4.0):
            _steps = power_timesteps(_T, _S, _p)
            _where = f"T = {_T}, S = {_S}, p = {_p}: {_steps.tolist()[:12]}..."
            assert _steps.dtype == torch.long and _steps.shape == (_S,), f"{_where} is not a (S,) long tensor"
            _prev = 0
            for _k, _tau in enumerate(_steps.tolist(), start=1):
                _x = _T * (_k / _S) ** _p
                _low, _high = math.ceil(_x - 0.5 - 1e-9), math.floor(_x + 0.5 + 1e-9)  # equal unless x is a half
                assert max(_low, _prev + 1) <= _tau <= max(_high, _prev + 1), \
                    f"{_where}: tau_{_k} = {_tau}, the rule gives {max(_low, _prev + 1)} (x_k = {_x:.4f})"
                _prev = _tau
            assert bool((_steps[1:] > _steps[:-1]).all()), f"{_where}: the steps must increase strictly"
            assert 1 <= _steps[0] and _steps[-1] == _T, f"{_where}: the steps must lie in 1..T and end at T"
    assert power_timesteps(_T, _T, 2.0).tolist() == list(range(1, _T + 1)), f"T = {_T}: S = T must give 1..T"
# 2) The profile's shape: p = 1 is the equal-jump grid round(k T / S) (here T / S = 20: exactly 20 k). For p = 2, S = 50
# of T = 1000, T (k/S)^2 = 0.4 k^2: 0.4, 1.6, 3.6, 6.4 -> 0 (pushed to 1), 2, 4, 6 near the data, and 960.4, 1000 at
# the end: jumps of 1 or 2 near the data, of 40 near the noise.
assert power_timesteps(1000, 50, 1.0).tolist() == [20 * k for k in range(1, 51)], "p = 1 must give equal jumps 20 k"
_steps = power_timesteps(1000, 50, 2.0)
assert _steps[:4].tolist() == [1, 2, 4, 6] and _steps[-2:].tolist() == [960, 1000], \
    f"T = 1000, S = 50, p = 2: 0.4 k^2 rounded and pushed gives 1, 2, 4, 6, ..., 960, 1000, got {_steps.tolist()}"
# 3) bad arguments, each named in the message
for _args, _name in (((10, 0, 2.0), "num_steps"), ((10, 11, 1.0), "num_steps"), ((10, 5, 0.5), "power")):
    try:
        power_timesteps(*_args)
    except ValueError as _error:
        assert _name in str(_error), f"power_timesteps{_args}: the message must name {_name}: {_error}"
    else:
        raise AssertionError(f"power_timesteps{_args} must raise a ValueError naming {_name}")
### END HIDDEN TESTS

# %% [markdown] id="part_d"
# ## Part D — deterministic sampling and inversion (3 + 3 points)
#
# **D1.** With $\eta = 0$ the only randomness is $\mathbf{x}_T$: sampling is a deterministic map from noise to data.
# Write it on a grid $\tau_1 < \dots < \tau_S$ (the tensor `timesteps`, for example from Part C): start at
# $\mathbf{x}_{\tau_S} =$ `x_T`, and for $k = S, \dots, 1$ call the model at $(\mathbf{x}_{\tau_k}, \tau_k)$, with
# the *training step* $\tau_k$ (not the index $k$) as a `(B,)` long tensor, and take your $\eta = 0$ step from
# $\tau_k$ to $\tau_{k-1}$, with $\tau_0 = 0$: the last jump lands on the data and returns $\hat{\mathbf{x}}_0$.
# $S$ model calls in all.
#
# Rewritten in $\bar{\mathbf{x}} = \mathbf{x}/\sqrt{\bar\alpha}$ and the noise-to-signal ratio $\varsigma =
# \sqrt{(1-\bar\alpha)/\bar\alpha}$, the step reads $\bar{\mathbf{x}}_{t'} = \bar{\mathbf{x}}_t +
# (\varsigma_{t'} - \varsigma_t)\,\boldsymbol\epsilon$ (DDIM sec. 4.3): one step of Euler's method for the ODE
# $d\bar{\mathbf{x}}/d\varsigma = \boldsymbol\epsilon$, the probability-flow ODE of lesson 3 in these variables. The
# hidden tests use that form to check your sampler.

# %% id="ddim_sample" kind="solution"
def ddim_sample(eps_model, sched: Schedule, x_T: Tensor, *, timesteps: Tensor) -> Tensor:
    """Deterministic DDIM (eta = 0) from x_T at step timesteps[-1] down to the data, through every step of the grid.

    eps_model: callable (x_t (B, D), t (B,) long) -> (B, D).  x_T: (B, D).  timesteps (keyword-only): (S,) long,
    strictly increasing, in 1..T.  Returns x_0: (B, D).
    """
    ### BEGIN SOLUTION
    grid = [0] + timesteps.tolist()  # tau_0 = 0, tau_1, ..., tau_S
    x = x_T
    for k in range(len(grid) - 1, 0, -1):
        t_model = torch.full((x.shape[0],), grid[k], dtype=torch.long)
        x = ddim_step(sched, x, grid[k], grid[k - 1], eps=eps_model(x, t_model))
    return x
    ### END SOLUTION


# %% id="ddim_sample_tests" kind="tests" points=3
_calls = []


def _spy(x, t):  # records the steps it is called at and predicts a constant noise
    _calls.append(t.clone())
    return torch.full_like(x, 0.3)


# With a constant eps = c every step moves x_bar = x / sqrt(abar) by (varsigma' - varsigma) c, and the moves add up:
# x_0 = x_T / sqrt(abar_T) - varsigma_T c, whatever the grid (varsigma_0 = 0 at the data).
_x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
_grid = torch.tensor([7, 40, 300, 1000])
_x0 = ddim_sample(_spy, SCHED, _x_T, timesteps=_grid)
assert isinstance(_x0, Tensor) and _x0.shape == (5, 2), "x_0 must have x_T's shape"
assert [c.tolist() for c in _calls] == [[s] * 5 for s in (1000, 300, 40, 7)], \
    f"call the model at 1000, 300, 40, 7 with t of shape (B,), got {[c.tolist() for c in _calls]}"
_abar_T = SCHED.alpha_bars[1000].item()
assert torch.allclose(_x0, _x_T / math.sqrt(_abar_T) - math.sqrt((1 - _abar_T) / _abar_T) * 0.3, rtol=1e-9), \
    "with eps = c the sampler must return x_T / sqrt(abar_T) - sqrt((1 - abar_T) / abar_T) c (see the comment)"
print("Part D1: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_ab = SCHED.alpha_bars.tolist()
_var_sig = [math.sqrt((1 - a) / a) for a in _ab]  # varsigma_t


def _reference_sample(model, x_T, grid):  # DDIM as Euler steps in x_bar = x / sqrt(abar) and varsigma (sec. 4.3)
    taus = [0] + grid
    x_bar = x_T / math.sqrt(_ab[taus[-1]])
    for k in range(len(taus) - 1, 0, -1):
        eps = model(x_bar * math.sqrt(_ab[taus[k]]), torch.full((x_T.shape[0],), taus[k], dtype=torch.long))
        x_bar = x_bar + (_var_sig[taus[k - 1]] - _var_sig[taus[k]]) * eps
    return x_bar  # abar_0 = 1


def _wavy(x, t):  # a made-up eps-model that depends on x nonlinearly and on t
    s = t[:, None] / 1000
    return torch.tanh(x.flip(1)) * (0.5 + s) + 0.2 * torch.sin(3 * x) - 0.1 * s


_g = torch.Generator().manual_seed(31)
_x_T = torch.randn(64, 2, generator=_g)
_exact = mixture_eps_model(MIXTURE, SCHED)
# 1) Against the Euler form, with two models and three grids (one of a single jump straight to the data)
for _grid in ([3, 10, 11, 200, 650, 1000], [17 * k for k in range(1, 59)] + [1000], [1000], [1, 2, 3, 4, 999]):
    for _model in (_wavy, _exact):
        _expected = _reference_sample(_model, _x_T, _grid)
        _got = ddim_sample(_model, SCHED, _x_T, timesteps=torch.tensor(_grid))
        assert torch.allclose(_got, _expected, rtol=1e-9, atol=1e-9), \
            f"grid {_grid[:6]}...: largest difference to DDIM's Euler form {(_got - _expected).abs().max():.3g}"
# 2) The calls: S of them, at the training steps from the top down, t of shape (B,), at the current x
_seen = []


def _recording(x, t):
    _seen.append((t.clone(), x.clone()))
    return _wavy(x, t)


_grid = [5, 60, 61, 400, 1000]
ddim_sample(_recording, SCHED, _x_T[:3], timesteps=torch.tensor(_grid))
assert [s[0].tolist() for s in _seen] == [[k] * 3 for k in reversed(_grid)], "call the model at tau_S, ..., tau_1"
assert torch.equal(_seen[0][1], _x_T[:3]), "the first call is at x_T itself"
### END HIDDEN TESTS

# %% [markdown] id="part_d2"
# **D2.** Run backwards, the deterministic map encodes data into noise (DDIM sec. 5.4): the $\eta = 0$ step from
# $\tau_{k-1}$ *up* to $\tau_k$ for $k = 1, \dots, S$, starting from $\mathbf{x}_{\tau_0} = \mathbf{x}_0$ and
# returning $\mathbf{x}_{\tau_S}$. Decoding step $\tau_k \to \tau_{k-1}$ uses the noise predicted at its start,
# $(\mathbf{x}_{\tau_k}, \tau_k)$; the encoding step that should undo it cannot, since $\mathbf{x}_{\tau_k}$ is what
# it computes. DDIM's approximation calls the model at the start of the encoding step instead, at
# $(\mathbf{x}_{\tau_{k-1}}, \tau_{k-1})$. At the very first step the start is the data, $\tau_0 = 0$, where no
# network is defined: call it at $(\mathbf{x}_0, \tau_1)$ there. $S$ model calls, at $\tau_1, \tau_1, \tau_2,
# \dots, \tau_{S-1}$.
#
# Decoding the result with `ddim_sample` on the same grid returns $\mathbf{x}_0$ up to the error of that
# approximation, which shrinks as the jumps do: the hidden tests measure the round trip with the exact noise
# predictor.

# %% id="ddim_invert" kind="solution"
def ddim_invert(eps_model, sched: Schedule, x0: Tensor, *, timesteps: Tensor) -> Tensor:
    """DDIM inversion: eta = 0 steps from the data up through the grid, 0 -> tau_1 -> ... -> tau_S.

    eps_model: callable (x_t (B, D), t (B,) long) -> (B, D).  x0: (B, D).  timesteps (keyword-only): (S,) long,
    strictly increasing, in 1..T.  Returns x_{tau_S}: (B, D).
    """
    ### BEGIN SOLUTION
    upwards = timesteps.tolist()
    x, start = x0, 0
    for end in upwards:
        asked = start if start > 0 else upwards[0]  # the step's start; tau_1 at the data, where no network is defined
        eps = eps_model(x, torch.full((x.shape[0],), asked, dtype=torch.long))
        x = ddim_step(sched, x, start, end, eps=eps)  # eta = 0, upwards
        start = end
    return x
    ### END SOLUTION


# %% id="ddim_invert_tests" kind="tests" points=3
_calls = []


def _spy(x, t):  # records the steps it is called at and predicts a constant noise
    _calls.append(t.clone())
    return torch.full_like(x, 0.3)


# With a constant eps = c, inversion adds (varsigma' - varsigma) c to x_bar at every step: from x_bar_0 = x0 it ends
# at x_T = sqrt(abar_T) (x0 + varsigma_T c) = sqrt(abar_T) x0 + sqrt(1 - abar_T) c, the forward kernel with eps = c.
_x0 = torch.randn(5, 2, generator=torch.Generator().manual_seed(4))
_abar_T = SCHED.alpha_bars[1000].item()
_x_T = ddim_invert(_spy, SCHED, _x0, timesteps=torch.tensor([7, 40, 300, 1000]))
assert isinstance(_x_T, Tensor) and _x_T.shape == (5, 2), "x_T must have x0's shape"
assert [c.tolist() for c in _calls] == [[s] * 5 for s in (7, 7, 40, 300)], \
    f"call the model at 7 (for the data), 7, 40, 300 with t of shape (B,), got {[c.tolist() for c in _calls]}"
assert torch.allclose(_x_T, math.sqrt(_abar_T) * _x0 + math.sqrt(1 - _abar_T) * 0.3, rtol=1e-9), \
    "with eps = c inversion must return sqrt(abar_T) x0 + sqrt(1 - abar_T) c (see the comment)"
print("Part D2: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
_ab = SCHED.alpha_bars.tolist()
_var_sig = [math.sqrt((1 - a) / a) for a in _ab]  # varsigma_t


def _reference_invert(model, x0, grid):  # Euler steps upwards in x_bar and varsigma, the model asked at each start
    x_bar, taus = x0, [0] + grid
    for k in range(1, len(taus)):
        asked = taus[k - 1] if k > 1 else taus[1]
        eps = model(x_bar * math.sqrt(_ab[taus[k - 1]]), torch.full((x0.shape[0],), asked, dtype=torch.long))
        x_bar = x_bar + (_var_sig[taus[k]] - _var_sig[taus[k - 1]]) * eps
    return x_bar * math.sqrt(_ab[taus[-1]])


def _reference_decode(model, x_T, grid):  # as in D1's hidden tests: the round trip does not rely on your D1
    taus = [0] + grid
    x_bar = x_T / math.sqrt(_ab[taus[-1]])
    for k in range(len(taus) - 1, 0, -1):
        eps = model(x_bar * math.sqrt(_ab[taus[k]]), torch.full((x_T.shape[0],), taus[k], dtype=torch.long))
        x_bar = x_bar + (_var_sig[taus[k - 1]] - _var_sig[taus[k]]) * eps
    return x_bar


def _wavy(x, t):  # a made-up eps-model that depends on x nonlinearly and on t
    s = t[:, None] / 1000
    return torch.tanh(x.flip(1)) * (0.5 + s) + 0.2 * torch.sin(3 * x) - 0.1 * s


_exact = mixture_eps_model(MIXTURE, SCHED)
_x0 = MIXTURE.sample(200, torch.Generator().manual_seed(41))
# 1) Against the Euler form, with two models and three grids
for _grid in ([3, 10, 11, 200, 650, 1000], [17 * k for k in range(1, 59)] + [1000], [1000], [1, 2, 3, 4, 999]):
    for _model in (_wavy, _exact):
        _expected = _reference_invert(_model, _x0[:64], _grid)
        _got = ddim_invert(_model, SCHED, _x0[:64], timesteps=torch.tensor(_grid))
        assert torch.allclose(_got, _expected, rtol=1e-9, atol=1e-9), \
            f"grid {_grid[:6]}...: largest difference to the Euler form {(_got - _expected).abs().max():.3g}"
# 2) The round trip x0 -> x_T -> x0 with the exact noise predictor, decoded by the Euler form above, on the quadratic
# grid (p = 2, written out here rather than taken from Part C). Statistic: the median over 200 points of MIXTURE of
# the relative error |x0_rec - x0| / |x0| of each point. (The median, because a few points between the modes, where
# the posterior switches from one component to another within one jump, converge late and erratically; the typical
# point converges cleanly.) Both directions are Euler's method, first order, so the error must behave like C / S.
# Measured for this seed: 0.0687, 0.0348, 0.0177, 0.0089 at S = 20, 40, 80, 160, i.e. S * error = 1.37 to 1.42 and a
# factor 1.97 to 1.99 per doubling of S (seeds 42 and 43: C up to 1.44, factors 1.93 to 2.00). Bounds: error below
# 2.2 / S (1.5 times the largest C measured), and a fall by more than 1.6 per doubling (first order predicts 2; an
# inversion that stops converging or converges to the wrong point fails one or the other).
_errors = []
for _S in (20, 40, 80, 160):
    _grid, _prev = [], 0
    for _k in range(1, _S + 1):
        _prev = max(math.floor(1000 * (_k / _S) ** 2 + 0.5), _prev + 1)
        _grid.append(_prev)
    _rec = _reference_decode(_exact, ddim_invert(_exact, SCHED, _x0, timesteps=torch.tensor(_grid)), _grid)
    _errors.append(((_rec - _x0).norm(dim=1) / _x0.norm(dim=1)).median().item())
    assert _errors[-1] < 2.2 / _S, f"S = {_S}: median round-trip relative error {_errors[-1]:.4f} exceeds 2.2 / S"
for _coarse, _fine in zip(_errors[:-1], _errors[1:], strict=True):
    assert _coarse / _fine > 1.6, f"the round-trip error must fall like 1 / S, got {_errors} at S = 20, 40, 80, 160"
### END HIDDEN TESTS

# %% [markdown] id="part_d_demo"
# Nothing to write here: the cell draws `MIXTURE` with 20 steps of your `ddim_step` at three values of $\eta$ (the
# same $\mathbf{x}_T$ and noise), and plots the round-trip error of your inversion against the number of steps. With
# correct answers all three clouds look like the data (they are different members of one family with the same
# marginals, apart from the error of 20 large jumps), and the error falls like $1/S$.

# %% id="d_demo"
_g = torch.Generator().manual_seed(0)
_n, _exact = 2000, mixture_eps_model(MIXTURE, SCHED)
_grid = [0] + power_timesteps(1000, 20, 2.0).tolist()
_x_T = torch.randn(_n, 2, generator=_g)
_noises = [torch.randn(_n, 2, generator=_g) for _ in _grid]
_fig, _axes = plt.subplots(1, 5, figsize=(20, 3.8))
_axes[0].scatter(*MIXTURE.sample(_n, _g).T, s=2, color="C0")
_axes[0].set(title="data", aspect="equal", xlim=(-2.6, 2.2), ylim=(-2.4, 2.2))
for _ax, _eta, _color in zip(_axes[1:4], (0.0, 0.5, 1.0), ("C1", "C2", "C3"), strict=True):
    _x = _x_T
    for _k in range(len(_grid) - 1, 0, -1):
        _eps = _exact(_x, torch.full((_n,), _grid[_k], dtype=torch.long))
        _x = ddim_step(SCHED, _x, _grid[_k], _grid[_k - 1], eps=_eps, eta=_eta, noise=_noises[_k])
    _ax.scatter(*_x.T, s=2, color=_color)
    _ax.set(title=f"20 steps, eta = {_eta}", aspect="equal", xlim=(-2.6, 2.2), ylim=(-2.4, 2.2))
_x0, _steps, _errors = MIXTURE.sample(200, _g), [10, 20, 40, 80, 160], []
for _S in _steps:
    _grid = power_timesteps(1000, _S, 2.0)
    _rec = ddim_sample(_exact, SCHED, ddim_invert(_exact, SCHED, _x0, timesteps=_grid), timesteps=_grid)
    _errors.append(((_rec - _x0).norm(dim=1) / _x0.norm(dim=1)).median().item())
_axes[4].loglog(_steps, _errors, "o-", label="round trip (median point)")
_axes[4].loglog(_steps, [_errors[0] * _steps[0] / s for s in _steps], "k--", label="1 / S")
_axes[4].set(title="inversion then decoding", xlabel="steps S", ylabel="relative error")
_axes[4].legend()
plt.show()

# %% [markdown] id="part_e"
# ## Part E — why the family works (4 points, graded by hand)
#
# 1. Fix $t' < t$ and $\sigma^2 \le 1-\bar\alpha_{t'}$. Show that if $\mathbf{x}_t \mid \mathbf{x}_0 \sim
#    \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0, (1-\bar\alpha_t)\mathbf{I})$ and $\mathbf{x}_{t'}$ is drawn from
#    $q_\sigma(\mathbf{x}_{t'} \mid \mathbf{x}_t, \mathbf{x}_0)$ of Part A, then $\mathbf{x}_{t'} \mid \mathbf{x}_0
#    \sim \mathcal{N}(\sqrt{\bar\alpha_{t'}}\,\mathbf{x}_0, (1-\bar\alpha_{t'})\mathbf{I})$, whatever $\sigma$ is.
#    Conclude that every member of the family, on every grid $\tau$, has DDPM's marginals at the steps it visits,
#    and explain why a network trained once with $L_\text{simple}$ can be used with any $\eta$ and any grid.
# 2. Show that $\sigma^2 = \tilde\beta_{t \to t'}$ (that is, $\eta = 1$) makes $q_\sigma(\mathbf{x}_{t'} \mid
#    \mathbf{x}_t, \mathbf{x}_0)$ equal to DDPM's posterior $q(\mathbf{x}_{t'} \mid \mathbf{x}_t, \mathbf{x}_0)$ for
#    the jump, whose mean is $\tilde{\boldsymbol\mu} = \frac{\sqrt{\bar\alpha_{t'}}\,\beta_{t \to t'}}{1-\bar\alpha_t}
#    \mathbf{x}_0 + \frac{\sqrt{\alpha_{t \to t'}}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\mathbf{x}_t$ with
#    $\alpha_{t \to t'} = \bar\alpha_t / \bar\alpha_{t'} = 1 - \beta_{t \to t'}$: show that the means agree, not only
#    the variances. What does the DDIM step with $\eta = 1$ and $t' = t - 1$ therefore compute?

# %% [markdown] id="family_derivation" kind="manual" points=4
# ### BEGIN SOLUTION
# **1.** Write $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$ with
# $\boldsymbol\epsilon \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ given $\mathbf{x}_0$; the fraction in $q_\sigma$'s
# mean is exactly $\boldsymbol\epsilon$. A draw from $q_\sigma$ is then
#
# $$\mathbf{x}_{t'} = \sqrt{\bar\alpha_{t'}}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_{t'}-\sigma^2}\,\boldsymbol\epsilon +
# \sigma\,\mathbf{z}, \qquad \mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) \text{ independent of }
# \boldsymbol\epsilon,$$
#
# a linear combination of independent Gaussians, hence Gaussian given $\mathbf{x}_0$, with mean
# $\sqrt{\bar\alpha_{t'}}\,\mathbf{x}_0$ and covariance $\big((1-\bar\alpha_{t'}-\sigma^2) + \sigma^2\big)\mathbf{I}
# = (1-\bar\alpha_{t'})\mathbf{I}$: $\sigma$ cancels. The family is defined from $q_\sigma(\mathbf{x}_T \mid
# \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_T}\mathbf{x}_0, (1-\bar\alpha_T)\mathbf{I})$ downwards along the grid,
# so by induction over $\tau_S = T, \tau_{S-1}, \dots$ every visited step has the DDPM marginal, for every choice of
# the $\sigma$'s and of the grid. $L_\text{simple}$ depends on the forward process only through these marginals
# (it draws $\mathbf{x}_t$ from $q(\mathbf{x}_t \mid \mathbf{x}_0)$ directly), so the same objective, with the same
# minimiser $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$, belongs to every member (DDIM's Theorem 1 adds that
# the members' variational bounds are $L_\text{simple}$ up to weights and constants): a network trained once is
# already trained for every $\eta$ and every subset of steps; only the sampler changes.
#
# **2.** Variance: by definition $\tilde\beta_{t\to t'}$ is DDPM's posterior variance of the jump (the jump is one
# step of a Markov chain with $q(\mathbf{x}_t \mid \mathbf{x}_{t'}) = \mathcal{N}(\sqrt{\alpha_{t\to t'}}\,
# \mathbf{x}_{t'}, \beta_{t\to t'}\mathbf{I})$). Mean: with $\sigma^2 = \tilde\beta_{t\to t'} =
# \frac{(1-\bar\alpha_{t'})(1-\alpha_{t\to t'})}{1-\bar\alpha_t}$ and $\bar\alpha_t = \alpha_{t\to t'}\bar\alpha_{t'}$,
#
# $$1-\bar\alpha_{t'}-\sigma^2 = (1-\bar\alpha_{t'})\,\frac{\alpha_{t\to t'} - \bar\alpha_t}{1-\bar\alpha_t}
# = \frac{\alpha_{t\to t'}(1-\bar\alpha_{t'})^2}{1-\bar\alpha_t}, \quad\text{so}\quad
# \sqrt{1-\bar\alpha_{t'}-\sigma^2} = \frac{\sqrt{\alpha_{t\to t'}}\,(1-\bar\alpha_{t'})}{\sqrt{1-\bar\alpha_t}} .$$
#
# $q_\sigma$'s mean is therefore $\sqrt{\bar\alpha_{t'}}\,\mathbf{x}_0 +
# \frac{\sqrt{\alpha_{t\to t'}}(1-\bar\alpha_{t'})}{1-\bar\alpha_t}(\mathbf{x}_t - \sqrt{\bar\alpha_t}\,
# \mathbf{x}_0)$: the coefficient of $\mathbf{x}_t$ is $\tilde{\boldsymbol\mu}$'s, and that of $\mathbf{x}_0$ is,
# using $\sqrt{\alpha_{t\to t'}}\sqrt{\bar\alpha_t} = \alpha_{t\to t'}\sqrt{\bar\alpha_{t'}}$,
# $\sqrt{\bar\alpha_{t'}}\big(1 - \frac{\alpha_{t\to t'}(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\big) =
# \sqrt{\bar\alpha_{t'}}\,\frac{1-\bar\alpha_t-\alpha_{t\to t'}+\bar\alpha_t}{1-\bar\alpha_t} =
# \frac{\sqrt{\bar\alpha_{t'}}\,\beta_{t\to t'}}{1-\bar\alpha_t}$, also $\tilde{\boldsymbol\mu}$'s. Two Gaussians with
# the same mean and covariance are equal. With $t' = t-1$ the jump is one step ($\beta_{t\to t-1} = \beta_t$), and
# the DDIM step with $\eta = 1$ puts $\hat{\mathbf{x}}_0$ into this posterior: it is exactly DDPM's ancestral step
# (Algorithm 2) with $\sigma_t^2 = \tilde\beta_t$, mean $\frac{1}{\sqrt{\alpha_t}}\big(\mathbf{x}_t -
# \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\boldsymbol\epsilon\big)$. On a coarser grid, $\eta = 1$ is DDPM's sampler
# on the respaced schedule whose betas are the jumps' $\beta_{t\to t'}$.
#
# *Marking:* 2 for part 1: 1 for the computation (the fraction is $\boldsymbol\epsilon$, independence of
# $\mathbf{z}$, the variances adding to $1-\bar\alpha_{t'}$), 1 for the consequence (induction from $T$ along the
# grid, and $L_\text{simple}$ sees only the marginals, so one network serves every $\eta$ and grid); asserting
# "the marginals match" without the variance sum earns nothing. 2 for part 2: 1 for the means (the square root of
# $1-\bar\alpha_{t'}-\tilde\beta_{t\to t'}$ and both coefficients; matching variances alone earns nothing here), 1 for
# identifying $\eta = 1$, $t' = t-1$ as Algorithm 2 with $\sigma_t^2 = \tilde\beta_t$ (with $\hat{\mathbf{x}}_0$ in
# place of $\mathbf{x}_0$).
# ### END SOLUTION
