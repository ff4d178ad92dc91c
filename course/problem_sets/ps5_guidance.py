# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 5 — Guidance: several conditions at once, a guided denoiser, thresholding a v-model
#
# Guidance changes the score a sampler follows. Bayes' rule splits the conditional score into the unconditional
# one and a classifier's gradient, $\nabla\log p_t(\mathbf{x} \mid y) = \nabla\log p_t(\mathbf{x}) + \nabla\log
# p_t(y \mid \mathbf{x})$, and guidance scales the second term by $\gamma$: classifier guidance takes the gradient
# from a noise-aware classifier, classifier-free guidance (CFG) gets the same term from one network asked twice,
# with and without the label. For $\gamma > 1$ the images match their label better and vary less, and their
# predicted $\hat{\mathbf{x}}_0$ drifts out of the data's range, which Imagen's dynamic thresholding pulls back.
#
# Lesson 5 and the course package `ddpm_scratch` do all of this for an $\boldsymbol\epsilon$-predicting network and
# one label. This problem set takes the steps the package does not: several conditions composed in one guided
# prediction, classifier guidance for a network that predicts $\mathbf{x}_0$ (a denoiser), with the gradient taken
# by autograd, and dynamic thresholding for a network that predicts $\mathbf{v}$. The hidden tests prove numerically,
# with exact scores of a labelled Gaussian mixture at every noise level, that what you write is the score of the
# density the lecture says:
#
# | part | what you show | points |
# |---|---|---|
# | A | guidance along several conditions at once is the score of a tilted noised density | 4 |
# | B | classifier guidance for a denoiser: the guided $\hat{\mathbf{x}}_0$, by autograd, in the right units | 5 |
# | C | dynamic thresholding for a $\mathbf{v}$-network: $\hat{\mathbf{x}}_0$ back in $[-1, 1]$, then $\mathbf{v}$ | 4 |
# | D | the limits $\gamma = 0, 1$; why $\gamma > 1$ does not sample the tilted data density (by hand) | 4 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones check
# your answer on inputs where the usual slips give other numbers and say what they expected and what came; hidden
# ones run at grading time, over every type and shape a part allows, and compare your functions with independent
# computations (the log-densities of the noised mixture built with `logsumexp` and differentiated by autograd, the
# Bayes classifier of the mixture, quantiles computed another way). Write your answers with `torch` and `math`; do
# not import `ddpm_scratch` (its functions answer other questions: the hidden tests tell them apart). You may add
# cells of your own to experiment: grading runs them too but scores only the answer cells, so keep them quick (and
# do not copy, delete or re-create the given cells).
#
# **Conventions.** As in problem sets 1 to 4: arrays over time have length $T+1$, index $t$ is the lecture's $t$,
# index 0 is the data ($\bar\alpha_0 = 1$), and the forward process is $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,
# \mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$. A step `t` is a Python `int` (one step for the whole
# batch) or a `(B,)` tensor of dtype `torch.long` (one step per example), in $1..T$. Batches have shape `(B, ...)`:
# `(B, D)` vectors or `(B, C, H, W)` images. The notebook computes in float64, and so do the schedules: take the
# coefficients you need (such as $1 - \bar\alpha_t$) in float64 and cast the result to the data's dtype, since in
# float32 $1 - \bar\alpha_1 = 10^{-4}$ keeps only three or four digits.
#
# **Notation.** $\gamma$ is the guidance scale in the lecture's convention: $\gamma = 0$ is the unconditional
# model, $\gamma = 1$ the conditional one, $\gamma > 1$ guided. Ho & Salimans write $w = \gamma - 1$ (their
# $(1+w)\boldsymbol\epsilon_c - w\boldsymbol\epsilon_u$, so $w = 0$ is the conditional model), Dhariwal & Nichol
# call $\gamma$ the gradient scale $s$, diffusers calls it `guidance_scale`. Here $s$ means one thing only: Imagen's
# threshold in Part C. The score is $\nabla\log p_t(\mathbf{x}_t)$ (gradient in $\mathbf{x}_t$), and an
# $\boldsymbol\epsilon$-prediction is the score in other units, $\boldsymbol\epsilon = -\sqrt{1-\bar\alpha_t}\,
# \nabla\log p_t$. The three predictions of a network at $(\mathbf{x}_t, t)$ are tied by
# $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\hat{\mathbf{x}}_0 + \sqrt{1-\bar\alpha_t}\,\hat{\boldsymbol\epsilon}$ and
# $\hat{\mathbf{v}} = \sqrt{\bar\alpha_t}\,\hat{\boldsymbol\epsilon} - \sqrt{1-\bar\alpha_t}\,\hat{\mathbf{x}}_0$.
# "Percentile" follows Imagen's name but is a quantile in $(0, 1]$: 0.995, not 99.5.
#
# **Calling convention** (the course package's): the state and the step come first, positionally; everything a
# model predicts is keyword-only, e.g. `threshold_v(SCHED, x_t, 400, v=v_hat)` or `composed_eps(eps_uncond=e_u,
# eps_conds=e_c, gammas=[3.0, 1.5])`. The predictions and the state all have the same shape, so two of them swapped
# in a positional call would raise nothing; a keyword cannot be swapped silently.
#
# The setup cell gives you DDPM's linear schedule `SCHED` ($T = 1000$) and the data `MIXTURE`, four round Gaussians
# in the plane, each one a class: 0 top left, 1 top right, 2 bottom left, 3 bottom right. A condition is a set of
# classes: `TOP = (0, 1)`, `BOTTOM = (2, 3)`, `LEFT = (0, 2)`, `RIGHT = (1, 3)`, or one class, `(2,)`. Each
# component stays Gaussian under the forward process, so everything is exact: `mixture_log_density(MIXTURE, SCHED,
# x_t, t, classes)` is $\log p_t(\mathbf{x}_t \mid c)$ (all classes: $\log p_t(\mathbf{x}_t)$), differentiable in
# `x_t`; `mixture_eps_model(MIXTURE, SCHED, classes)` is the perfect network $\mathbb{E}[\boldsymbol\epsilon \mid
# \mathbf{x}_t, c]$ of the data restricted to the condition (`classes=None`: the unconditional one); and
# `mixture_classifier(MIXTURE, SCHED, classes)` is the perfect noise-aware classifier, $\log p_t(c \mid
# \mathbf{x}_t)$ by Bayes' rule. Use them to check your answers.

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


class LabelledMixture(NamedTuple):
    """sum_k weights[k] N(means[k], stds[k]^2 I): round Gaussians in D dimensions, component k = class k."""

    weights: Tensor  # (K,), sums to 1
    means: Tensor  # (K, D)
    stds: Tensor  # (K,)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n independent draws and their classes: ((n, D), (n,) long)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.stds[k, None] * torch.randn(n, self.means.shape[1], generator=generator), k


def _rows(sched: Schedule, t, batch: int) -> Tensor:
    """alpha_bar_t per example, (batch, 1), for t an int or a (batch,) long tensor."""
    t = torch.as_tensor(t, dtype=torch.long)
    return sched.alpha_bars[t.expand(batch) if t.dim() == 0 else t][:, None]


def _class_log_joint(mixture: LabelledMixture, sched: Schedule, x_t: Tensor, t) -> Tensor:
    """log weights[k] + log N(x_t; sqrt(abar_t) mu_k, (abar_t s_k^2 + 1 - abar_t) I), (B, K), for x_t (B, D)."""
    abar = _rows(sched, t, x_t.shape[0]).to(x_t.dtype)
    var = abar * mixture.stds.to(x_t.dtype) ** 2 + (1 - abar)  # (B, K)
    diff = x_t[:, None, :] - abar.sqrt()[:, :, None] * mixture.means.to(x_t.dtype)  # (B, K, D)
    dim = x_t.shape[1]
    return (mixture.weights.to(x_t.dtype).log() - 0.5 * dim * torch.log(2 * math.pi * var)
            - diff.pow(2).sum(dim=-1) / (2 * var))


def _chosen(mixture: LabelledMixture, classes) -> list[int]:
    return list(range(mixture.weights.numel())) if classes is None else list(classes)


def mixture_log_density(mixture: LabelledMixture, sched: Schedule, x_t: Tensor, t, classes=None) -> Tensor:
    """log p_t(x_t | class in classes), (B,), for x_t (B, D) and t an int or a (B,) long tensor; classes=None: all
    classes, log p_t(x_t). Differentiable in x_t."""
    joint = _class_log_joint(mixture, sched, x_t, t)[:, _chosen(mixture, classes)]
    return torch.logsumexp(joint, dim=1) - mixture.weights[_chosen(mixture, classes)].sum().log().to(x_t.dtype)


def mixture_classifier(mixture: LabelledMixture, sched: Schedule, classes):
    """The exact noise-aware classifier of the condition `classes`: log_prob_y(x_t, t) -> (B,) log p_t(c | x_t)
    = log sum_{k in c} p(k) p_t(x_t | k) - log p_t(x_t) (Bayes' rule). x_t (B, D); t an int or a (B,) long tensor.
    Differentiable in x_t."""
    def log_prob_y(x_t: Tensor, t) -> Tensor:
        joint = _class_log_joint(mixture, sched, x_t, t)
        return torch.logsumexp(joint[:, _chosen(mixture, classes)], dim=1) - torch.logsumexp(joint, dim=1)

    return log_prob_y


def mixture_eps_model(mixture: LabelledMixture, sched: Schedule, classes=None):
    """The exact noise predictor E[eps | x_t, class in classes] (classes=None: every class, the unconditional one),
    as an eps-model eps_model(x_t, t): x_t (B, D), t an int or a (B,) long tensor. With r_k(x_t) the probability that
    x_t came from component k among the chosen ones and v_k = abar_t s_k^2 + 1 - abar_t (Tweedie's formula, lesson 3):
    E[eps | x_t, c] = -sqrt(1 - abar_t) grad log p_t(x_t | c)
                    = sqrt(1 - abar_t) sum_k r_k (x_t - sqrt(abar_t) mu_k) / v_k.
    """
    chosen = _chosen(mixture, classes)

    def eps_model(x_t: Tensor, t) -> Tensor:
        abar = _rows(sched, t, x_t.shape[0]).to(x_t.dtype)
        var = (abar * mixture.stds.to(x_t.dtype) ** 2 + (1 - abar))[:, chosen]  # (B, K')
        diff = x_t[:, None, :] - abar.sqrt()[:, :, None] * mixture.means[chosen].to(x_t.dtype)  # (B, K', D)
        resp = torch.softmax(_class_log_joint(mixture, sched, x_t, t)[:, chosen], dim=1)
        return (1 - abar).sqrt() * (resp[:, :, None] * diff / var[:, :, None]).sum(dim=1)

    return eps_model


SCHED = linear_schedule(1000)
MIXTURE = LabelledMixture(weights=torch.tensor([0.15, 0.35, 0.3, 0.2]),
                          means=torch.tensor([[-1.2, 1.0], [1.1, 0.9], [-1.0, -1.1], [1.3, -0.8]]),
                          stds=torch.tensor([0.3, 0.25, 0.35, 0.2]))
TOP, BOTTOM, LEFT, RIGHT = (0, 1), (2, 3), (0, 2), (1, 3)

# %% [markdown] id="part_a"
# ## Part A — several conditions at once (4 points)
#
# Classifier-free guidance trains one network $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t, c)$ with the condition
# dropped now and then, so that it also predicts the unconditional $\boldsymbol\epsilon_u = \boldsymbol\epsilon_\theta
# (\mathbf{x}_t, t, \varnothing)$. Bayes' rule turns the difference of two of its predictions into a classifier: with
# $\boldsymbol\epsilon = -\sqrt{1-\bar\alpha_t}\,\nabla\log p_t$,
#
# $$\nabla\log p_t(c \mid \mathbf{x}_t) = \nabla\log p_t(\mathbf{x}_t \mid c) - \nabla\log p_t(\mathbf{x}_t) =
# -\frac{\boldsymbol\epsilon_c - \boldsymbol\epsilon_u}{\sqrt{1-\bar\alpha_t}},$$
#
# the *implicit classifier* of the condition. Nothing limits this to one condition. With conditions $c_1, \dots,
# c_N$ ("top" and "left", say; an image that should show a dog and a hat) and a scale for each, guidance along each
# implicit classifier at once (Liu et al. 2022, "Compositional visual generation") is
#
# $$\tilde{\boldsymbol\epsilon} = \boldsymbol\epsilon_u + \sum_{i=1}^N \gamma_i\,(\boldsymbol\epsilon_{c_i} -
# \boldsymbol\epsilon_u).$$
#
# For $N = 1$ it is the lecture's $(1-\gamma)\,\boldsymbol\epsilon_u + \gamma\,\boldsymbol\epsilon_c$. Write it.
# Raise a `ValueError` whose message names `gammas` when the number of scales is not the number of conditions.
# (Part D asks which density this is the score of; the hidden tests check your answer against that density.)
#
# *Your function must accept:* `eps_uncond` of shape `(B, ...)`, $B \ge 1$, any trailing shape, float32 or float64;
# `eps_conds` a tensor of shape `(N, B, ...)`, $N \ge 1$ (the conditions' predictions stacked along a new first
# dimension), of `eps_uncond`'s dtype; `gammas` a list or tuple of $N$ Python numbers (floats or ints, any sign), or a
# `(N,)` float tensor of any float dtype. *It returns* a tensor of `eps_uncond`'s shape and dtype.

# %% id="composed_eps" kind="solution"
def composed_eps(*, eps_uncond: Tensor, eps_conds: Tensor, gammas) -> Tensor:
    """eps_u + sum_i gamma_i (eps_{c_i} - eps_u): classifier-free guidance along N conditions at once.

    Keyword-only: eps_uncond (B, ...); eps_conds (N, B, ...); gammas N numbers or a (N,) tensor, one per condition.
    Returns (B, ...) in eps_uncond's dtype.
    """
    ### BEGIN SOLUTION
    scales = torch.as_tensor(gammas, dtype=eps_uncond.dtype).flatten()
    if scales.numel() != eps_conds.shape[0]:
        raise ValueError(f"gammas needs one scale per condition ({eps_conds.shape[0]}), got {len(scales)}")
    implicit = eps_conds - eps_uncond.unsqueeze(0)  # (N, B, ...): minus sqrt(1 - abar) times each implicit classifier
    return eps_uncond + torch.tensordot(scales, implicit, dims=([0], [0]))
    ### END SOLUTION


# %% id="composed_eps_tests" kind="tests" points=4
# Two conditions on a batch of B = 2 vectors of D = 3 (so that N = 2 differs from D): with gammas = [2, 0.5] the
# answer is eps_u + 2 (eps_1 - eps_u) + 0.5 (eps_2 - eps_u) = -1.5 eps_u + 2 eps_1 + 0.5 eps_2.
_e_u = torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.5, -0.4]])
_e_c = torch.tensor([[[0.3, 0.1, -0.2], [1.0, 0.4, 0.0]], [[-0.5, 0.2, 0.6], [0.2, -0.3, 0.1]]])
_got = composed_eps(eps_uncond=_e_u, eps_conds=_e_c, gammas=[2.0, 0.5])
_expected = -1.5 * _e_u + 2 * _e_c[0] + 0.5 * _e_c[1]
assert isinstance(_got, Tensor) and _got.shape == (2, 3), \
    f"the result must have eps_uncond's shape (2, 3), got {getattr(_got, 'shape', type(_got).__name__)}"
assert torch.allclose(_got, _expected, rtol=1e-12, atol=1e-12), \
    f"gammas = [2, 0.5]: expected -1.5 eps_u + 2 eps_1 + 0.5 eps_2 = {_expected.tolist()}, got {_got.tolist()}"
# One condition: gamma = 0 is the unconditional prediction, 1 the conditional one, 3 is 3 eps_c - 2 eps_u
for _gamma, _want, _what in ((0, _e_u, "eps_u"), (1, _e_c[0], "eps_c"),
                             (3.0, 3 * _e_c[0] - 2 * _e_u, "3 eps_c - 2 eps_u")):
    _got = composed_eps(eps_uncond=_e_u, eps_conds=_e_c[:1], gammas=[_gamma])
    assert torch.allclose(_got, _want, rtol=1e-12, atol=1e-12), \
        f"one condition, gamma = {_gamma}: expected {_what} = {_want.tolist()}, got {_got.tolist()}"
# The exact mixture, at two noise levels: composed along TOP (gamma 2.5) and LEFT (gamma 1.5), it is
# -sqrt(1 - abar_t) times the gradient of log p_t(x) + 2.5 log(p_t(x | top) / p_t(x)) + 1.5 log(p_t(x | left) / p_t(x))
_x = torch.tensor([[0.4, -0.3], [-1.5, 2.0], [2.0, 0.1]])
for _t in (120, 700):
    _eps = composed_eps(eps_uncond=mixture_eps_model(MIXTURE, SCHED)(_x, _t),
                        eps_conds=torch.stack([mixture_eps_model(MIXTURE, SCHED, c)(_x, _t) for c in (TOP, LEFT)]),
                        gammas=(2.5, 1.5))
    _xg = _x.clone().requires_grad_(True)
    _log_u = mixture_log_density(MIXTURE, SCHED, _xg, _t)
    _log = _log_u + sum(g * (mixture_log_density(MIXTURE, SCHED, _xg, _t, c) - _log_u)
                        for g, c in ((2.5, TOP), (1.5, LEFT)))
    _score, = torch.autograd.grad(_log.sum(), _xg)
    _want = -(1 - SCHED.alpha_bars[_t]).sqrt() * _score
    assert torch.allclose(_eps, _want, rtol=1e-9, atol=1e-12), \
        f"t = {_t}, TOP at 2.5 and LEFT at 1.5: expected -sqrt(1 - abar) times the tilted score, {_want.tolist()}, " \
        f"got {_eps.tolist()}"
try:
    composed_eps(eps_uncond=_e_u, eps_conds=_e_c, gammas=[2.0])
except ValueError as _error:
    assert "gammas" in str(_error), f"the message must name gammas, got: {_error}"
else:
    raise AssertionError("two conditions and one scale must raise a ValueError naming gammas; it returned")
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _log_noised(x, t, classes=None):
    # log p_t(x | class in classes) of MIXTURE, written again here (not the setup's): each component diffuses to
    # N(sqrt(abar) mu_k, (abar s_k^2 + 1 - abar) I); a logsumexp over the chosen ones, renormalised by their weight.
    K = MIXTURE.weights.numel()
    chosen = list(range(K)) if classes is None else list(classes)
    abar = SCHED.alpha_bars[t][:, None]
    var = abar * MIXTURE.stds[None, chosen] ** 2 + 1 - abar
    sq = ((x[:, None, :] - abar.sqrt()[:, :, None] * MIXTURE.means[None, chosen]) ** 2).sum(-1)
    logs = ((MIXTURE.weights[chosen] / MIXTURE.weights[chosen].sum()).log() - sq / (2 * var)
            - torch.log(2 * math.pi * var))
    return torch.logsumexp(logs, dim=1)


def _tilted_eps(x, t, conditions, gammas):
    # -sqrt(1 - abar_t) grad log [p_t(x) prod_i (p_t(x | c_i) / p_t(x))^gamma_i], by autograd
    xg = x.detach().clone().requires_grad_(True)
    log_u = _log_noised(xg, t)
    log = log_u + sum(g * (_log_noised(xg, t, c) - log_u) for g, c in zip(gammas, conditions, strict=True))
    score, = torch.autograd.grad(log.sum(), xg)
    return -(1 - SCHED.alpha_bars[t][:, None]).sqrt() * score


# 1) The theorem, at every noise level: with the perfect networks, composed CFG is -sqrt(1 - abar_t) times the score of
# the tilted noised density p_t(x) prod_i (p_t(x | c_i) / p_t(x))^gamma_i. For one condition this is the lecture's
# p_t(x)^(1 - gamma) p_t(x | c)^gamma; gamma = 0 gives p_t(x), gamma = 1 gives p_t(x | c).
_g = torch.Generator().manual_seed(50)
_x = 2.2 * torch.randn(240, 2, generator=_g)
_t = torch.tensor([1, 2, 7, 30, 100, 250, 480, 700, 900, 999, 1000, 555] * 20)
_models = {c: mixture_eps_model(MIXTURE, SCHED, c) for c in (None, TOP, BOTTOM, LEFT, RIGHT, (2,), (0, 1, 3))}
_preds = {c: m(_x, _t) for c, m in _models.items()}
for _conditions, _gammas in ((((2,),), [0.0]), (((2,),), [1.0]), (((2,),), [4.0]), ((TOP,), [2.5]), ((TOP,), [-0.7]),
                             ((TOP, LEFT), [1.0, 1.0]), ((TOP, LEFT), [3.0, 1.5]),
                             ((BOTTOM, RIGHT, (0, 1, 3)), [2, 0, 5]), ((LEFT, RIGHT), [0.5, 0.5])):
    _got = composed_eps(eps_uncond=_preds[None], eps_conds=torch.stack([_preds[c] for c in _conditions]),
                        gammas=_gammas)
    _want = _tilted_eps(_x, _t, _conditions, _gammas)
    _worst = ((_got - _want).abs() / (1e-9 + _want.abs())).max()
    assert torch.allclose(_got, _want, rtol=1e-8, atol=1e-10), \
        f"conditions {_conditions}, gammas {_gammas}: not -sqrt(1 - abar_t) times the score of the tilted noised " \
        f"density at every t (largest relative difference {_worst:.3g})"
# 2) The limits, exactly, on made-up predictions: all gammas 0 give eps_u; gamma_i = 1 and the others 0 give eps_{c_i}
_e_u, _e_c = torch.randn(5, 4, generator=_g), torch.randn(3, 5, 4, generator=_g)
assert torch.equal(composed_eps(eps_uncond=_e_u, eps_conds=_e_c, gammas=[0, 0, 0]), _e_u), "all gammas 0: not eps_u"
for _i in range(3):
    _gammas = [1.0 if j == _i else 0.0 for j in range(3)]
    assert torch.allclose(composed_eps(eps_uncond=_e_u, eps_conds=_e_c, gammas=_gammas), _e_c[_i], rtol=1e-12,
                          atol=1e-14), f"gammas {_gammas}: not eps_c{_i + 1}"
# 3) Types and shapes: list, tuple, tensor (float32 or float64) gammas; ints; N = 1, 2, 4; B = 1; images; float32
for _shape in ((1, 1), (3, 2), (2, 3, 4, 4), (1, 1, 2, 5)):
    for _N in (1, 2, 4):
        for _dtype, _tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
            _e_u = torch.randn(_shape, generator=_g, dtype=_dtype)
            _e_c = torch.randn(_N, *_shape, generator=_g, dtype=_dtype)
            _scales = [round(float(v), 3) for v in 4 * torch.rand(_N, generator=_g) - 1]
            for _gammas in (_scales, tuple(_scales), torch.tensor(_scales), torch.tensor(_scales, dtype=torch.float32),
                            [int(round(s)) for s in _scales]):
                _values = _gammas.tolist() if isinstance(_gammas, Tensor) else list(_gammas)  # as given (rounded)
                _want = _e_u.double() + sum(s * (_e_c[i].double() - _e_u.double()) for i, s in enumerate(_values))
                _got = composed_eps(eps_uncond=_e_u, eps_conds=_e_c, gammas=_gammas)
                assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
                    f"eps_uncond {_shape} {_dtype}, N = {_N}, gammas {type(_gammas).__name__}: expected a tensor of " \
                    f"that shape and dtype, got {getattr(_got, 'dtype', type(_got).__name__)} " \
                    f"{tuple(getattr(_got, 'shape', ()))}"
                assert torch.allclose(_got.double(), _want, rtol=_tol, atol=_tol), \
                    f"eps_uncond {_shape} {_dtype}, N = {_N}, gammas {_gammas}: wrong value"
# 4) A wrong number of scales, each way, named in the message
for _gammas in ([1.0], [1.0, 2.0, 3.0], torch.tensor([0.5, 0.5, 0.5])):
    try:
        composed_eps(eps_uncond=torch.zeros(2, 3), eps_conds=torch.zeros(2, 2, 3), gammas=_gammas)
    except ValueError as _error:
        assert "gammas" in str(_error), f"2 conditions, gammas {_gammas}: the message must name gammas: {_error}"
    else:
        raise AssertionError(f"2 conditions and gammas {_gammas} must raise a ValueError naming gammas")
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — classifier guidance for a denoiser (5 points)
#
# Classifier guidance (Dhariwal & Nichol 2021) follows the score of $p_t(\mathbf{x})\,p_t(y \mid \mathbf{x})^\gamma$:
#
# $$\nabla\log p_t(\mathbf{x}_t) + \gamma\,\nabla\log p_t(y \mid \mathbf{x}_t),$$
#
# with the gradient of a noise-aware classifier, one trained on $\mathbf{x}_t$ at every $t$. Lesson 5 and the package
# write it for an $\boldsymbol\epsilon$-predicting network. Many networks predict $\mathbf{x}_0$ instead (a
# *denoiser*: EDM, most cascades' super-resolution models). Tweedie's formula ties the denoiser to the score,
#
# $$\hat{\mathbf{x}}_0(\mathbf{x}_t) = \mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t] = \frac{\mathbf{x}_t +
# (1-\bar\alpha_t)\,\nabla\log p_t(\mathbf{x}_t)}{\sqrt{\bar\alpha_t}},$$
#
# so the guided score corresponds to a guided denoiser: put the guided score in Tweedie's formula and write the result
# with the network's $\hat{\mathbf{x}}_0$ (the keyword `x0`) and the classifier's gradient. Mind the units: a
# gradient of a log-density in $\mathbf{x}_t$ is neither an $\boldsymbol\epsilon$ nor an $\mathbf{x}_0$.
#
# The classifier is a callable `log_prob_y(x, t)` that returns the `(B,)` values $\log p_t(y \mid \mathbf{x})$ of the
# wanted labels (the label is bound inside it, as `mixture_classifier` does); take its gradient in $\mathbf{x}$ at
# $\mathbf{x}_t$ with autograd. Call it with `t` as a `(B,)` tensor of dtype `torch.long`, also when your `t` is an
# int. Samplers run under `torch.no_grad()`, so your function must work there too (`torch.enable_grad()` turns
# gradients back on inside it), and it must not change `x_t` or leave it requiring a gradient. The rows of a batch
# are independent: the gradient of row $b$'s $\log p_t(y \mid \mathbf{x})$ belongs to row $b$.
#
# *Your function must accept:* `sched` any `Schedule`; `x_t` of shape `(B, ...)`, $B \ge 1$, any trailing shape,
# float32 or float64, never requiring a gradient itself; `t` an int or a `(B,)` long tensor in $1..T$; `x0` of
# `x_t`'s shape and dtype; `log_prob_y` a callable as above, differentiable in `x`; `gamma` a Python float or int
# $\ge 0$. *It returns* the guided $\hat{\mathbf{x}}_0$, a tensor of `x_t`'s shape and dtype.

# %% id="guided_x0" kind="solution"
def guided_x0(sched: Schedule, x_t: Tensor, t, *, x0: Tensor, log_prob_y, gamma: float) -> Tensor:
    """The denoiser's x0 guided by a noise-aware classifier at scale gamma: Tweedie's formula with the score of
    p_t(x) p_t(y | x)^gamma.

    x_t: (B, ...); t: an int or a (B,) long tensor in 1..T.  Keyword-only: x0 (B, ...) the network's prediction;
    log_prob_y(x, t) -> (B,) log p_t(y | x), called with t a (B,) long tensor; gamma >= 0.
    Returns the guided x0: (B, ...), x_t's dtype.
    """
    ### BEGIN SOLUTION
    n_rows = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(n_rows) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps].reshape(n_rows, *[1] * (x_t.dim() - 1))  # float64
    with torch.set_grad_enabled(True):  # samplers run under no_grad
        probe = x_t.detach().clone().requires_grad_()
        classifier_grad = torch.autograd.grad(log_prob_y(probe, steps).sum(), [probe])[0]
    # Tweedie with score + gamma grad: the guided x0 moves by gamma (1 - abar) / sqrt(abar) times the gradient
    return x0 + (gamma * (1 - abar) / abar.sqrt()).to(x_t.dtype) * classifier_grad
    ### END SOLUTION


# %% id="guided_x0_tests" kind="tests" points=5
# A made-up classifier whose log p_t(y | x) = -|x - m|^2 / 2 (it ignores t), so its gradient is m - x: the guided
# x0 is x0 + gamma (1 - abar_t) / sqrt(abar_t) (m - x_t), here with a different step per row.
_calls = []


def _quadratic(x, t):
    _calls.append(t)
    return -0.5 * ((x - torch.tensor([0.5, -1.0])) ** 2).sum(dim=1)


_gen = torch.Generator().manual_seed(1)
_x_t, _x0 = torch.randn(2, 2, generator=_gen), torch.randn(2, 2, generator=_gen)
_steps = torch.tensor([150, 600])
_abar = SCHED.alpha_bars[_steps][:, None]
_expected = _x0 + 2.5 * (1 - _abar) / _abar.sqrt() * (torch.tensor([0.5, -1.0]) - _x_t)
_got = guided_x0(SCHED, _x_t, _steps, x0=_x0, log_prob_y=_quadratic, gamma=2.5)
assert isinstance(_got, Tensor) and _got.shape == (2, 2), \
    f"the result must have x_t's shape (2, 2), got {getattr(_got, 'shape', type(_got).__name__)}"
assert torch.allclose(_got, _expected, rtol=1e-10, atol=1e-12), \
    f"t = [150, 600], gamma = 2.5: expected x0 + gamma (1 - abar_t) / sqrt(abar_t) (m - x_t) = {_expected.tolist()}, " \
    f"got {_got.tolist()}"
assert all(isinstance(s, Tensor) and s.dtype == torch.long and s.tolist() == [150, 600] for s in _calls), \
    f"call log_prob_y with t a (B,) long tensor, here [150, 600]; it got {_calls}"
_calls.clear()
with torch.no_grad():  # as inside a sampler
    _got = guided_x0(SCHED, _x_t, 400, x0=_x0, log_prob_y=_quadratic, gamma=2.5)
_abar = SCHED.alpha_bars[400]
_expected = _x0 + 2.5 * (1 - _abar) / _abar.sqrt() * (torch.tensor([0.5, -1.0]) - _x_t)
assert torch.allclose(_got, _expected, rtol=1e-10, atol=1e-12), \
    f"t = 400 (an int), under torch.no_grad(): expected {_expected.tolist()}, got {_got.tolist()}"
assert [s.tolist() if isinstance(s, Tensor) else s for s in _calls] == [[400, 400]], \
    f"t = 400 (an int): call log_prob_y with t = tensor([400, 400]), it got {_calls}"
assert not _x_t.requires_grad, "x_t must not be left requiring a gradient"
# The exact mixture at t = 300: guiding the unconditional denoiser towards class 2 at gamma = 1 gives the denoiser of
# class 2 alone (Tweedie's formula with p_t(x | 2)'s score)
_x = torch.tensor([[0.4, -0.3], [-1.5, 2.0], [2.0, 0.1]])
_a = SCHED.alpha_bars[300]
_x0_u = (_x - (1 - _a).sqrt() * mixture_eps_model(MIXTURE, SCHED)(_x, 300)) / _a.sqrt()
_x0_2 = (_x - (1 - _a).sqrt() * mixture_eps_model(MIXTURE, SCHED, (2,))(_x, 300)) / _a.sqrt()
_got = guided_x0(SCHED, _x, 300, x0=_x0_u, log_prob_y=mixture_classifier(MIXTURE, SCHED, (2,)), gamma=1)
assert torch.allclose(_got, _x0_2, rtol=1e-9, atol=1e-12), \
    f"t = 300, class 2 at gamma = 1: expected class 2's denoiser {_x0_2.tolist()}, got {_got.tolist()}"
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _log_noised(x, t, classes=None):  # log p_t(x | class in classes) of MIXTURE, as in Part A's hidden tests
    K = MIXTURE.weights.numel()
    chosen = list(range(K)) if classes is None else list(classes)
    abar = SCHED.alpha_bars[t][:, None]
    var = abar * MIXTURE.stds[None, chosen] ** 2 + 1 - abar
    sq = ((x[:, None, :] - abar.sqrt()[:, :, None] * MIXTURE.means[None, chosen]) ** 2).sum(-1)
    logs = ((MIXTURE.weights[chosen] / MIXTURE.weights[chosen].sum()).log() - sq / (2 * var)
            - torch.log(2 * math.pi * var))
    return torch.logsumexp(logs, dim=1)


def _score(x, t, log_fn):
    xg = x.detach().clone().requires_grad_(True)
    grad, = torch.autograd.grad(log_fn(xg).sum(), xg)
    return grad


# 1) The theorem, at every noise level: the perfect unconditional denoiser guided by the Bayes classifier of a
# condition c at scale gamma is Tweedie's formula with the score of p_t(x) p_t(c | x)^gamma, the tilted noised
# density (log p_t(c | x) = log p(c) + log p_t(x | c) - log p_t(x), built here independently and differentiated by
# autograd). gamma = 0 is the unconditional denoiser, gamma = 1 the conditional one.
_g = torch.Generator().manual_seed(60)
_x = 2.2 * torch.randn(240, 2, generator=_g)
_t = torch.tensor([1, 2, 7, 30, 100, 250, 480, 700, 900, 999, 1000, 555] * 20)
_abar = SCHED.alpha_bars[_t][:, None]
_x0_u = (_x - (1 - _abar).sqrt() * mixture_eps_model(MIXTURE, SCHED)(_x, _t)) / _abar.sqrt()
for _c in (TOP, (2,), (0, 1, 3)):
    _log_c = float(MIXTURE.weights[list(_c)].sum().log())
    for _gamma in (0, 1, 0.5, 3.0, 10):
        def _tilted(x, c=_c, log_c=_log_c, gamma=_gamma):
            log_u = _log_noised(x, _t)
            return log_u + gamma * (log_c + _log_noised(x, _t, c) - log_u)

        _want = (_x + (1 - _abar) * _score(_x, _t, _tilted)) / _abar.sqrt()
        _got = guided_x0(SCHED, _x, _t, x0=_x0_u, log_prob_y=mixture_classifier(MIXTURE, SCHED, _c), gamma=_gamma)
        _worst = ((_got - _want).abs() / (1e-9 + _want.abs())).max()
        assert torch.allclose(_got, _want, rtol=1e-8, atol=1e-9), \
            f"condition {_c}, gamma {_gamma}: not Tweedie's x0 of p_t(x) p_t(c | x)^gamma at every t (largest " \
            f"relative difference {_worst:.3g})"
        if _gamma == 1:
            _x0_c = (_x - (1 - _abar).sqrt() * mixture_eps_model(MIXTURE, SCHED, _c)(_x, _t)) / _abar.sqrt()
            assert torch.allclose(_got, _x0_c, rtol=1e-8, atol=1e-9), f"condition {_c}, gamma 1: not its denoiser"
        if _gamma == 0:
            assert torch.allclose(_got, _x0_u, rtol=1e-12, atol=1e-12), "gamma 0: not the unconditional denoiser"
# 2) Rows are independent and the classifier sees the steps as a (B,) long tensor; a made-up classifier whose
# gradient depends on t and couples the coordinates of a row (not of different rows)
def _wavy_log_prob(x, t):
    assert isinstance(t, Tensor) and t.dtype == torch.long and t.shape == (x.shape[0],), \
        f"log_prob_y must get t as a ({x.shape[0]},) long tensor, got {t!r}"
    flat = x.reshape(x.shape[0], -1)
    s = t.to(x.dtype)[:, None] / 1000
    return (torch.sin(flat * (1 + s)) * flat.roll(1, dims=1)).sum(1) - 0.3 * (flat**2).sum(1) * s[:, 0]


def _wavy_grad(x, t):  # per row, by autograd one row at a time
    rows = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1].detach().double().clone().requires_grad_(True)
        grad, = torch.autograd.grad(_wavy_log_prob(xb, t[b:b + 1]).sum(), xb)
        rows.append(grad)
    return torch.cat(rows)


for _shape in ((1, 1), (1, 3), (5, 2), (3, 2, 4, 4), (2, 1, 3, 3)):
    for _dtype, _tol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        _x_t = torch.randn(_shape, generator=_g, dtype=_dtype)
        _x0 = torch.randn(_shape, generator=_g, dtype=_dtype)
        _B = _shape[0]
        for _t in (1, 1000, 437, torch.randint(1, 1001, (_B,), generator=_g)):
            _steps = torch.full((_B,), _t, dtype=torch.long) if isinstance(_t, int) else _t
            _a = SCHED.alpha_bars[_steps].reshape(_B, *[1] * (len(_shape) - 1))
            for _gamma in (0.0, 1, 7.5):
                _want = _x0.double() + _gamma * (1 - _a) / _a.sqrt() * _wavy_grad(_x_t, _steps)
                with torch.no_grad():
                    _got = guided_x0(SCHED, _x_t, _t, x0=_x0, log_prob_y=_wavy_log_prob, gamma=_gamma)
                _where = f"x_t {_shape} {_dtype}, t {_t if isinstance(_t, int) else _t.tolist()}, gamma {_gamma}"
                assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
                    f"{_where}: expected a tensor of that shape and dtype, got " \
                    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
                assert torch.allclose(_got.double(), _want, rtol=_tol, atol=_tol), f"{_where}: wrong value"
                assert not _x_t.requires_grad and not _got.requires_grad, \
                    f"{_where}: a gradient left on x_t or the result"
# 3) Another schedule (not linear: the units must come from the schedule given)
_cos = [math.cos((u / 300 + 0.008) / 1.008 * math.pi / 2) ** 2 for u in range(301)]
_sched = schedule_from_betas(torch.tensor([min(1 - _cos[u] / _cos[u - 1], 0.999) for u in range(1, 301)]))
_x_t, _x0 = torch.randn(6, 2, generator=_g), torch.randn(6, 2, generator=_g)
_steps = torch.tensor([1, 2, 50, 150, 299, 300])
_a = _sched.alpha_bars[_steps][:, None]
_want = _x0 + 2.0 * (1 - _a) / _a.sqrt() * _wavy_grad(_x_t, _steps)
_got = guided_x0(_sched, _x_t, _steps, x0=_x0, log_prob_y=_wavy_log_prob, gamma=2.0)
assert torch.allclose(_got, _want, rtol=1e-10, atol=1e-10), "a cosine schedule with T = 300: wrong value"
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — dynamic thresholding for a v-predicting network (4 points)
#
# With a large $\gamma$ the guided $\hat{\mathbf{x}}_0$ leaves the data's range $[-1, 1]$, and a sampler that steps
# towards it saturates (Imagen, Saharia et al. 2022, sec. 2.3). Imagen's *dynamic thresholding* pulls it back, each
# sample on its own: with $s$ the `percentile` quantile of the absolute values of that sample's entries,
#
# $$s \leftarrow \max(s, 1), \qquad \hat{\mathbf{x}}_0 \leftarrow \operatorname{clip}(\hat{\mathbf{x}}_0, -s, s) / s.$$
#
# A sample whose quantile is at most 1 gets $s = 1$: it is clipped to $[-1, 1]$ and left as it is if it lies there
# already. A sample that overshoots is clipped at its own quantile and scaled down into $[-1, 1]$, so that saturated
# entries do not pile up at $\pm 1$. Compute the quantile as `torch.quantile` does (linear interpolation between
# the sorted values), over all the entries of one sample (every dimension but the batch's).
#
# The package thresholds the $\hat{\mathbf{x}}_0$ of an $\boldsymbol\epsilon$-predicting network. Write it for a
# network that predicts $\mathbf{v} = \sqrt{\bar\alpha_t}\,\boldsymbol\epsilon - \sqrt{1-\bar\alpha_t}\,\mathbf{x}_0$
# (Salimans & Ho 2022; Imagen Video, Stable Diffusion 2): from its $\hat{\mathbf{v}}$ (the keyword `v`) at
# $(\mathbf{x}_t, t)$ get $\hat{\mathbf{x}}_0$, threshold it, and return the $\mathbf{v}$ that the same
# $\mathbf{x}_t$ and the thresholded $\hat{\mathbf{x}}_0$ give, so that any sampler built for the v-network takes
# the thresholded prediction unchanged. Raise a `ValueError` whose message names `percentile` when it is not in
# $(0, 1]$.
#
# *Your function must accept:* `sched` any `Schedule`; `x_t` of shape `(B, ...)`, $B \ge 1$, any trailing shape,
# float32 or float64; `t` an int or a `(B,)` long tensor in $1..T$; `v` of `x_t`'s shape and dtype; `percentile` a
# Python float in $(0, 1]$, by default 0.995. *It returns* the thresholded $\hat{\mathbf{v}}$, a tensor of `x_t`'s
# shape and dtype.

# %% id="threshold_v" kind="solution"
def threshold_v(sched: Schedule, x_t: Tensor, t, *, v: Tensor, percentile: float = 0.995) -> Tensor:
    """A v-network's prediction with its x0 dynamically thresholded (Imagen): x0 from (x_t, v), per sample
    s = max(1, quantile of |x0| at `percentile`), x0 -> clip(x0, -s, s) / s, and back to v at the same x_t.

    x_t: (B, ...); t: an int or a (B,) long tensor in 1..T.  Keyword-only: v (B, ...) the network's prediction;
    percentile in (0, 1], default 0.995.  Returns v: (B, ...), x_t's dtype.
    """
    ### BEGIN SOLUTION
    if not 0 < percentile <= 1:
        raise ValueError(f"percentile is a quantile in (0, 1] (0.995, not 99.5), got {percentile}")
    n_rows = x_t.shape[0]
    steps = torch.as_tensor(t, dtype=torch.long)
    steps = steps.expand(n_rows) if steps.dim() == 0 else steps
    abar = sched.alpha_bars[steps].reshape(n_rows, *[1] * (x_t.dim() - 1))  # float64, cast below
    signal, noise = abar.sqrt().to(x_t.dtype), (1 - abar).sqrt().to(x_t.dtype)
    x0_hat = signal * x_t - noise * v  # since x_t = signal x0 + noise eps and v = signal eps - noise x0
    level = torch.quantile(x0_hat.reshape(n_rows, -1).abs(), percentile, dim=1).clamp(min=1.0)
    level = level.reshape(signal.shape)
    kept = torch.where(x0_hat.abs() > level, level * x0_hat.sign(), x0_hat) / level
    return (signal * x_t - kept) / noise
    ### END SOLUTION


# %% id="threshold_v_tests" kind="tests" points=4
# Three samples of D = 6 entries, with x0 made up first and percentile 0.8: the quantile of 6 values at 0.8 is the
# 5th smallest (0.8 * 5 = 4, exactly a sorted position).
#   sample 0: x0 = [0.2, -0.5, 0.9, 0.1, -0.3, 0.7]  all within [-1, 1]: unchanged
#   sample 1: x0 = [3, -2, 0.5, 1, -0.5, 4]          |x0| sorted 0.5 0.5 1 2 3 4: s = 3,
#                                                    x0 -> [1, -2/3, 1/6, 1/3, -1/6, 1]
#   sample 2: x0 = [0.5, -1.5, 0.2, 0.9, -0.1, 0.3]  quantile 0.9, s = max(0.9, 1) = 1: only -1.5 is clipped, to -1
_x0 = torch.tensor([[0.2, -0.5, 0.9, 0.1, -0.3, 0.7], [3.0, -2.0, 0.5, 1.0, -0.5, 4.0],
                    [0.5, -1.5, 0.2, 0.9, -0.1, 0.3]])
_x0_kept = torch.tensor([[0.2, -0.5, 0.9, 0.1, -0.3, 0.7], [1.0, -2 / 3, 1 / 6, 1 / 3, -1 / 6, 1.0],
                         [0.5, -1.0, 0.2, 0.9, -0.1, 0.3]])
_eps = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
_steps = torch.tensor([30, 500, 900])
_a = SCHED.alpha_bars[_steps][:, None]
_x_t = _a.sqrt() * _x0 + (1 - _a).sqrt() * _eps
_v = _a.sqrt() * _eps - (1 - _a).sqrt() * _x0
_got = threshold_v(SCHED, _x_t, _steps, v=_v, percentile=0.8)
assert isinstance(_got, Tensor) and _got.shape == (3, 6), \
    f"the result must have x_t's shape (3, 6), got {getattr(_got, 'shape', type(_got).__name__)}"
_got_x0 = _a.sqrt() * _x_t - (1 - _a).sqrt() * _got
assert torch.allclose(_got_x0, _x0_kept, rtol=1e-9, atol=1e-9), \
    f"percentile 0.8: the x0 of your v should be {[[round(u, 4) for u in r] for r in _x0_kept.tolist()]}, " \
    f"it is {[[round(u, 4) for u in r] for r in _got_x0.tolist()]}"
_expected = (_a.sqrt() * _x_t - _x0_kept) / (1 - _a).sqrt()
assert torch.allclose(_got, _expected, rtol=1e-9, atol=1e-9), \
    f"percentile 0.8: expected v = {_expected[1].tolist()} for sample 1, got {_got[1].tolist()}"
# The default percentile 0.995, one step for the whole batch: x0 far out of range comes back into [-1, 1]; a sample
# within [-1, 1] is left as it is
_x0 = torch.cat([5 * torch.randn(2, 50, generator=torch.Generator().manual_seed(3)),
                 torch.linspace(-0.9, 0.9, 50)[None]])
_a = SCHED.alpha_bars[250]
_eps = torch.randn(3, 50, generator=torch.Generator().manual_seed(4))
_x_t, _v = _a.sqrt() * _x0 + (1 - _a).sqrt() * _eps, _a.sqrt() * _eps - (1 - _a).sqrt() * _x0
_got = threshold_v(SCHED, _x_t, 250, v=_v)
_got_x0 = _a.sqrt() * _x_t - (1 - _a).sqrt() * _got
assert _got_x0.abs().max() <= 1 + 1e-9, \
    f"default percentile: x0 must end in [-1, 1], its largest |x0| is {_got_x0.abs().max():.4f}"
assert torch.allclose(_got[2], _v[2], rtol=1e-9, atol=1e-9), "a sample with every |x0| <= 1 must keep its v"
try:
    threshold_v(SCHED, _x_t, 250, v=_v, percentile=99.5)
except ValueError as _error:
    assert "percentile" in str(_error), f"the message must name percentile, got: {_error}"
else:
    raise AssertionError("percentile = 99.5 must raise a ValueError naming percentile (it is a quantile in (0, 1])")
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
import numpy


def _reference_v(sched, x_t, steps, v, q):
    # numpy, row by row: x0 from v, numpy.quantile (linear interpolation) of |x0|, clip, divide, back to v
    out = numpy.empty(x_t.shape)
    xs, vs = x_t.double().numpy(), v.double().numpy()
    for b in range(x_t.shape[0]):
        a = float(sched.alpha_bars[int(steps[b])])
        x0 = math.sqrt(a) * xs[b] - math.sqrt(1 - a) * vs[b]
        s = max(float(numpy.quantile(numpy.abs(x0).ravel(), q)), 1.0)
        out[b] = (math.sqrt(a) * xs[b] - numpy.clip(x0, -s, s) / s) / math.sqrt(1 - a)
    return torch.from_numpy(out)


def _x0_of(sched, x_t, steps, v):
    a = sched.alpha_bars[steps].reshape(-1, *[1] * (x_t.dim() - 1))
    return a.sqrt() * x_t.double() - (1 - a).sqrt() * v.double()


_g = torch.Generator().manual_seed(70)
# 1) Against the reference, on shapes and dtypes, t an int or per example, several percentiles, samples of every
# kind in one batch (far out, just out, within, a few outliers), the result's x0 in [-1, 1]
for _shape in ((1, 1), (1, 7), (4, 30), (4, 3, 8, 8), (2, 1, 5, 5)):
    _B = _shape[0]
    for _dtype, _tol in ((torch.float64, 1e-9), (torch.float32, 2e-4)):
        for _t in (1, 777, torch.randint(1, 1001, (_B,), generator=_g)):
            _steps = torch.full((_B,), _t, dtype=torch.long) if isinstance(_t, int) else _t
            _scale = torch.tensor([6.0, 1.2, 0.3, 0.9][:_B]).reshape(_B, *[1] * (len(_shape) - 1))
            _x0 = _scale * torch.randn(_shape, generator=_g)
            _x0.view(_B, -1)[:, 0] += 3.0  # one outlier per sample
            _eps = torch.randn(_shape, generator=_g)
            _a = SCHED.alpha_bars[_steps].reshape(_B, *[1] * (len(_shape) - 1))
            _x_t = (_a.sqrt() * _x0 + (1 - _a).sqrt() * _eps).to(_dtype)
            _v = (_a.sqrt() * _eps - (1 - _a).sqrt() * _x0).to(_dtype)
            for _q in (None, 0.5, 0.9, 1.0, 1):
                _options = {} if _q is None else {"percentile": _q}
                _got = threshold_v(SCHED, _x_t, _t, v=_v, **_options)
                _where = f"x_t {_shape} {_dtype}, t {_t if isinstance(_t, int) else _t.tolist()}, " \
                         f"percentile {_q or 0.995}"
                assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
                    f"{_where}: expected a tensor of that shape and dtype, got " \
                    f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
                _want = _reference_v(SCHED, _x_t, _steps, _v, _q or 0.995)
                _x0_got, _x0_want = _x0_of(SCHED, _x_t, _steps, _got), _x0_of(SCHED, _x_t, _steps, _want)
                assert torch.allclose(_x0_got, _x0_want, rtol=_tol, atol=_tol), f"{_where}: wrong thresholded x0"
                assert _x0_got.abs().max() <= 1 + 10 * _tol, f"{_where}: x0 not in [-1, 1]"
                if _dtype == torch.float64:
                    assert torch.allclose(_got.double(), _want, rtol=1e-8, atol=1e-8), f"{_where}: wrong v"
# 2) The identity: a batch whose x0 lies within [-1, 1] keeps its v (to round-off), for every percentile and t
_x0 = 2 * torch.rand(6, 40, generator=_g) - 1
_eps = torch.randn(6, 40, generator=_g)
for _t in (1, 20, 500, 1000):
    _a = SCHED.alpha_bars[_t]
    _x_t, _v = _a.sqrt() * _x0 + (1 - _a).sqrt() * _eps, _a.sqrt() * _eps - (1 - _a).sqrt() * _x0
    for _q in (0.1, 0.995, 1.0):
        _got = threshold_v(SCHED, _x_t, _t, v=_v, percentile=_q)
        assert torch.allclose(_got, _v, rtol=1e-8, atol=1e-8 / math.sqrt(1 - _a)), \
            f"t {_t}, percentile {_q}: x0 within [-1, 1] must leave v unchanged"
# 3) Per sample: one wild sample in the batch changes nothing for the others
_x0 = 0.5 * torch.randn(5, 64, generator=_g)
_x0[0, :32] *= 1.4
_eps = torch.randn(5, 64, generator=_g)
_a = SCHED.alpha_bars[600]
_x_t, _v = _a.sqrt() * _x0 + (1 - _a).sqrt() * _eps, _a.sqrt() * _eps - (1 - _a).sqrt() * _x0
_alone = threshold_v(SCHED, _x_t[1:], 600, v=_v[1:], percentile=0.9)
_x0_wild = _x0.clone()
_x0_wild[0] *= 40
_x_t_wild = _a.sqrt() * _x0_wild + (1 - _a).sqrt() * _eps
_v_wild = _a.sqrt() * _eps - (1 - _a).sqrt() * _x0_wild
_together = threshold_v(SCHED, _x_t_wild, 600, v=_v_wild, percentile=0.9)
assert torch.allclose(_together[1:], _alone, rtol=1e-10, atol=1e-10), "the threshold s must be computed per sample"
# 4) Bad percentiles, named in the message
for _q in (0, 0.0, -0.5, 1.0001, 99.5, 50):
    try:
        threshold_v(SCHED, _x_t, 600, v=_v, percentile=_q)
    except ValueError as _error:
        assert "percentile" in str(_error), f"percentile {_q}: the message must name percentile: {_error}"
    else:
        raise AssertionError(f"percentile = {_q} must raise a ValueError naming percentile")
### END HIDDEN TESTS

# %% [markdown] id="part_c_demo"
# Nothing to write here: the cell runs DDPM's ancestral sampler (200 steps of a respaced `SCHED`, in $\mathbf{x}_t$)
# with the perfect networks of `MIXTURE`, guided towards `TOP` and `LEFT` at once with your `composed_eps`, at
# $\gamma_1 = \gamma_2 = 0$, 1 and 4, and prints the mean and spread of each cloud. At 0 the samples are the data; at
# 1 each condition's implicit classifier is followed once and almost every sample lands in the top-left class, whose
# mean is $(-1.2, 1)$ and standard deviation 0.3; at 4 the cloud is tighter and pushed away from the other classes,
# past the class's mean: guidance sharpens, and for $\gamma > 1$ it does not sample the tilted data density
# (Part D).

# %% id="c_demo"
_g = torch.Generator().manual_seed(0)
_n, _steps = 1500, torch.linspace(1, 1000, 200).round().long()
_models = [mixture_eps_model(MIXTURE, SCHED, c) for c in (None, TOP, LEFT)]
_abars = torch.cat([torch.ones(1), SCHED.alpha_bars[_steps]])
_fig, _axes = plt.subplots(1, 4, figsize=(16, 4))
_axes[0].scatter(*MIXTURE.sample(_n, _g)[0].T, s=2, color="C0")
_axes[0].set(title="data", aspect="equal", xlim=(-3, 3), ylim=(-3, 3))
for _ax, _gamma, _color in zip(_axes[1:], (0.0, 1.0, 4.0), ("C1", "C2", "C3"), strict=True):
    _x = torch.randn(_n, 2, generator=_g)
    for _k in range(len(_steps), 0, -1):
        _eps = composed_eps(eps_uncond=_models[0](_x, int(_steps[_k - 1])),
                            eps_conds=torch.stack([m(_x, int(_steps[_k - 1])) for m in _models[1:]]),
                            gammas=[_gamma, _gamma])
        _a, _a_prev = _abars[_k], _abars[_k - 1]
        _beta = 1 - _a / _a_prev
        _x = (_x - _beta / (1 - _a).sqrt() * _eps) / (1 - _beta).sqrt()
        if _k > 1:
            _x = _x + ((1 - _a_prev) / (1 - _a) * _beta).sqrt() * torch.randn(_n, 2, generator=_g)
    print(f"gamma = {_gamma}: mean {[round(m, 3) for m in _x.mean(0).tolist()]}, "
          f"standard deviation {[round(d, 3) for d in _x.std(0).tolist()]}")
    _ax.scatter(*_x.T, s=2, color=_color)
    _ax.set(title=f"TOP and LEFT, gamma = {_gamma}", aspect="equal", xlim=(-3, 3), ylim=(-3, 3))
plt.show()

# %% [markdown] id="part_d"
# ## Part D — what the guidance scale targets (4 points, graded by hand)
#
# 1. Show that Part A's $\tilde{\boldsymbol\epsilon}$, with the exact $\boldsymbol\epsilon_u$ and
#    $\boldsymbol\epsilon_{c_i}$, is $-\sqrt{1-\bar\alpha_t}$ times the score of $\tilde p_t(\mathbf{x}) \propto
#    p_t(\mathbf{x}) \prod_i \big(p_t(\mathbf{x} \mid c_i)/p_t(\mathbf{x})\big)^{\gamma_i}$, and that for one
#    condition this is $p_t(\mathbf{x})^{1-\gamma} p_t(\mathbf{x} \mid c)^\gamma \propto p_t(\mathbf{x})\,
#    p_t(c \mid \mathbf{x})^\gamma$, the density Part B's classifier guidance follows. What are the targets at
#    $\gamma = 0$ and $\gamma = 1$, and which sampler do they give?
# 2. Take one dimension, $p_0(x) = \mathcal{N}(0, 1)$ and $p_0(x \mid c) = \mathcal{N}(\mu, \sigma^2)$ with
#    $0 < \sigma < 1$ (no joint distribution needs to exist for this computation). Give $p_t(x)$ and $p_t(x \mid c)$
#    under the forward process, the tilted noised density $p_t(x)^{1-\gamma} p_t(x \mid c)^\gamma$ (mean and
#    variance), and the noised tilted density, the forward process applied to $p_0(x)^{1-\gamma} p_0(x \mid
#    c)^\gamma$. Show that they are the same family for $\gamma \in \{0, 1\}$ and not for $\gamma = 2$ (compare the
#    variances at one $t$ with $0 < \bar\alpha_t < 1$), and say what this means for a sampler guided at $\gamma > 1$:
#    which distribution does it sample? (Check your numbers in a cell of your own if you like.)

# %% [markdown] id="guidance_targets" kind="manual" points=4
# ### BEGIN SOLUTION
# **1.** With $\boldsymbol\epsilon = -\sqrt{1-\bar\alpha_t}\,\nabla\log p$ for each exact prediction,
# $\tilde{\boldsymbol\epsilon} = -\sqrt{1-\bar\alpha_t}\,\big[\nabla\log p_t(\mathbf{x}) + \sum_i \gamma_i
# (\nabla\log p_t(\mathbf{x} \mid c_i) - \nabla\log p_t(\mathbf{x}))\big]$, and the bracket is the gradient of
# $\log p_t(\mathbf{x}) + \sum_i \gamma_i \log\big(p_t(\mathbf{x} \mid c_i)/p_t(\mathbf{x})\big) = \log\tilde p_t
# + \text{const}$; the normalising constant of $\tilde p_t$ does not depend on $\mathbf{x}$ and has no gradient. For
# one condition the log is $(1-\gamma)\log p_t(\mathbf{x}) + \gamma\log p_t(\mathbf{x} \mid c)$, and by Bayes
# $p_t(\mathbf{x} \mid c)/p_t(\mathbf{x}) = p_t(c \mid \mathbf{x})/p(c)$, so $\tilde p_t \propto p_t(\mathbf{x})
# \,p_t(c \mid \mathbf{x})^\gamma$ (the constant $p(c)^{-\gamma}$ drops out): the target of classifier guidance at
# the same $\gamma$. At $\gamma = 0$ the target is $p_t(\mathbf{x})$ at every $t$, the unconditional model's; at
# $\gamma = 1$ it is $p_t(\mathbf{x} \mid c)$, the conditional one's. Both are a family of noised densities of one
# data law (the forward process applied to $p_0(\mathbf{x})$, resp. $p_0(\mathbf{x} \mid c)$), so the guided sampler
# is the ordinary sampler of the unconditional model, resp. the conditional one, and samples $p_0(\mathbf{x})$,
# resp. $p_0(\mathbf{x} \mid c)$ (up to discretisation).
#
# **2.** $p_t(x) = \mathcal{N}(0,\ \bar\alpha_t + 1 - \bar\alpha_t) = \mathcal{N}(0, 1)$ and $p_t(x \mid c) =
# \mathcal{N}(\sqrt{\bar\alpha_t}\mu,\ v_t)$, $v_t = \bar\alpha_t\sigma^2 + 1 - \bar\alpha_t$. A product of Gaussian
# powers is Gaussian with the precisions weighted: the tilted noised density has precision $\lambda_t = (1-\gamma) +
# \gamma/v_t$ and mean $m_t = \gamma\sqrt{\bar\alpha_t}\mu / (v_t\lambda_t)$ (a density when $\lambda_t > 0$). The
# tilted data density has precision $\lambda_0 = (1-\gamma) + \gamma/\sigma^2$ and mean $m_0 = \gamma\mu/(\sigma^2
# \lambda_0)$; noised, it is $\mathcal{N}(\sqrt{\bar\alpha_t} m_0,\ \bar\alpha_t/\lambda_0 + 1 - \bar\alpha_t)$.
# At $\gamma = 0$ both are $\mathcal{N}(0, 1)$; at $\gamma = 1$ both are $\mathcal{N}(\sqrt{\bar\alpha_t}\mu, v_t)$.
# At $\gamma = 2$, $\sigma = 1/2$, $\bar\alpha_t = 1/2$: $v_t = 5/8$, $\lambda_t = -1 + 16/5 = 11/5$, variance
# $5/11 \approx 0.455$; $\lambda_0 = -1 + 8 = 7$, noised variance $1/14 + 1/2 = 8/14 \approx 0.571$. Different: the
# guided scores are not the scores of the noised versions of any one data density (the tilted noised densities are
# not a forward-process family), so the sampler does not sample $p_0(x)^{1-\gamma} p_0(x \mid c)^\gamma$. The two
# families agree at $t = 0$ (and both tend to $\mathcal{N}(0, 1)$ as $\bar\alpha_t \to 0$), but in between the
# sampler follows scores of no single forward process: what it returns depends on the sampler and its steps, not
# only on $\gamma$. Guidance at $\gamma > 1$ trades diversity for fidelity without a closed-form density that it
# samples.
#
# *Marking:* 2 for part 1: 1 for the score computation (the constants have no gradient, the ratio becomes the
# implicit classifier by Bayes), 1 for the limits with the sampler they give. 2 for part 2: 1 for the two Gaussians
# (the tilted one by adding weighted precisions, the noised tilted one by the forward kernel), 1 for the comparison at
# $\gamma = 2$ with numbers and the conclusion that a guided sampler does not sample the tilted data density.
# ### END SOLUTION
