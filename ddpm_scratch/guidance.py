"""Lecture 5: guidance, as eps-model wrappers that every sampler takes unchanged.

Bayes' rule for scores: grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x). Guidance scales the second
term by gamma (lecture's convention, DESIGN.md: gamma = 0 unconditional, 1 conditional, > 1 guided):

    classifier guidance   score = grad log p_t(x) + gamma grad log p_t(y | x)           (a noise-aware classifier)
    classifier-free       eps   = (1 - gamma) eps(x_t, t, no label) + gamma eps(x_t, t, y)   (one network, two calls)

With eps = -sqrt(1 - alpha_bar_t) score (`forward.eps_from_score`) the two are the same formula: CFG's implicit
classifier is grad log p_t(y | x) = grad log p_t(x | y) - grad log p_t(x). At each noise level the guided score
is the score of p_t(x)^(1 - gamma) p_t(x | y)^gamma, the *tilted noised* densities, which for gamma > 1 are not the
noised tilted density: a guided sampler does not sample p(x)^(1 - gamma) p(x | y)^gamma
(benchmarks/guidance_exact.py measures how far it lands, and how Langevin correctors close most of the gap).

Thresholding (Imagen, Saharia et al. 2022) works on the model's x0: static clipping to [-1, 1], or dynamic, which
clips each sample at s = max(1, the `percentile` quantile of |x0|) and divides by s. As a wrapper it goes
eps -> x0, thresholds, and back to eps at the same x_t, so that every sampler uses the thresholded prediction.

Shapes: x_t (B, ...), t a (B,) LongTensor of training steps (the samplers' convention), y an int or a (B,)
LongTensor of labels, `num_classes` the "no label" token of a conditional network (nets/protocol.py).

Exact references: a `GaussianMixture` whose components are the classes gives the exact conditional network
(`mixture_conditional_eps_model`) and the exact noise-aware classifier log p_t(y | x_t) (`mixture_log_prob_y`), by
Bayes' rule; the tests and benchmarks measure the wrappers against them. A trained classifier is a
`nets.NoisyClassifier`, trained on noisy data with `classifier_loss` and read through `classifier_log_prob_y`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .checks import check_choice, check_int, check_number
from .forward import eps_from_x0, q_sample, x0_from_eps
from .losses import sample_timesteps
from .nets.protocol import EpsModel, OnDevice
from .schedules import NoiseSchedule, check_schedule, lookup
from .score import GaussianMixture, mixture_eps_model

__all__ = [
    "classifier_free_eps", "ClassifierFree",
    "classifier_guided_eps", "ClassifierGuided", "classifier_log_prob_y", "classifier_loss", "clip_loss",
    "THRESHOLDS", "static_threshold", "dynamic_threshold", "Thresholded",
    "mixture_conditional_eps_model", "mixture_log_prob_y",
]

ConditionalNetwork = Callable[[Tensor, Tensor, Tensor], Tensor]  # network(x_t, t, y) -> eps
LogProbY = Callable[[Tensor, Tensor, Tensor], Tensor]  # log_prob_y(x_t, t, y) -> (B,) log p_t(y | x_t)


def _labels(y: int | OnDevice, batch: int, device: torch.device) -> Tensor:
    """y as a (batch,) LongTensor on `device`."""
    if isinstance(y, OnDevice):
        if y.value.shape != (batch,):
            raise ValueError(f"the labels y have shape {tuple(y.value.shape)}, the batch x_t has {batch} rows")
        return y.on(device)
    return torch.full((batch,), y, dtype=torch.long, device=device)


def _check_label(y: object, num_classes: int | None) -> int | Tensor:
    """y must be an int or a (B,) integer tensor, of classes 0..num_classes-1 when num_classes is given."""
    if isinstance(y, bool) or not isinstance(y, (int, Tensor)):
        raise TypeError(f"y must be an int or a (B,) LongTensor of labels, got {type(y).__name__}")
    if isinstance(y, Tensor) and (y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
        raise ValueError(f"y must be an int or a (B,) LongTensor of labels, got {y.dtype} {tuple(y.shape)}")
    if num_classes is not None:  # read once, here, not at every call
        bad = [v for v in ([y] if isinstance(y, int) else y.tolist()) if not 0 <= v < num_classes]
        if bad:
            raise ValueError(f"y must hold classes in 0..{num_classes - 1} (num_classes = {num_classes} is the "
                             f"'no label' token), got {sorted(set(bad))[:5]}")
    return y


# ---------------------------------------------------------------------------------- classifier-free guidance

def classifier_free_eps(*, eps_uncond: Tensor, eps_cond: Tensor, gamma: float) -> Tensor:
    """eps = (1 - gamma) eps_uncond + gamma eps_cond (Ho & Salimans 2022, in the lecture's gamma), (B, ...) each."""
    if eps_uncond.shape != eps_cond.shape:
        raise ValueError(f"eps_uncond {tuple(eps_uncond.shape)} and eps_cond {tuple(eps_cond.shape)} must have the "
                         "same shape")
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, got {gamma!r}")
    return eps_uncond + gamma * (eps_cond - eps_uncond)


class ClassifierFree(nn.Module):
    """A conditional network, a label and gamma as one eps-model: forward(x_t, t) is classifier_free_eps of the
    network's conditional and unconditional eps, from one call on 2B rows (x_t twice; y, then the "no label" token
    num_classes).

    network(x_t, t, y) -> eps, trained with label dropout so that y == num_classes means "no label".
    y: an int or a (B,) LongTensor in 0..num_classes-1.  gamma: >= 0 (0 unconditional, 1 conditional).
    """

    def __init__(self, network: ConditionalNetwork, y: int | Tensor, *, gamma: float, num_classes: int) -> None:
        super().__init__()
        if not callable(network):
            raise TypeError(f"network must be callable as network(x_t, t, y), got {type(network).__name__}")
        self.num_classes = check_int("num_classes", num_classes)
        y = _check_label(y, self.num_classes)
        self.y = OnDevice(y) if isinstance(y, Tensor) else y
        self.gamma = check_number("gamma", gamma, low=0.0)
        self.network = network

    def forward(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        batch = x_t.shape[0]
        if not isinstance(t, Tensor) or t.dim() == 0:  # one step for the whole batch, as (B,)
            t = torch.as_tensor(t, device=x_t.device).expand(batch)
        y = _labels(self.y, batch, x_t.device)
        no_label = torch.full_like(y, self.num_classes)
        both = self.network(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, no_label]))
        eps_cond, eps_uncond = both[:batch], both[batch:]
        return classifier_free_eps(eps_uncond=eps_uncond, eps_cond=eps_cond, gamma=self.gamma)


# ---------------------------------------------------------------------------------- classifier guidance

def classifier_guided_eps(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, *, eps: Tensor,
                          grad_log_p_y: Tensor, gamma: float) -> Tensor:
    """score + gamma grad log p_t(y | x_t), in eps units: eps - gamma sqrt(1 - alpha_bar_t) grad log p_t(y | x_t)
    (Dhariwal & Nichol 2021, Algorithm 2's eps-form; eps = -sqrt(1 - alpha_bar_t) score)."""
    return eps - gamma * (1 - lookup(schedule.alpha_bars, t, x_t)).sqrt() * grad_log_p_y


class ClassifierGuided(nn.Module):
    """An eps-model guided by a noise-aware classifier: forward(x_t, t) = classifier_guided_eps with
    grad_x log p_t(y | x) taken by autograd at x_t (also inside torch.no_grad(), where the samplers run).

    log_prob_y(x_t, t, y) -> (B,) log p_t(y | x_t), differentiable in x_t (a classifier's log_softmax picked at y).
    y: an int or a (B,) LongTensor.  gamma: >= 0.  schedule: the one eps_model was trained with.
    """

    def __init__(self, eps_model: EpsModel, log_prob_y: LogProbY, y: int | Tensor, schedule: NoiseSchedule, *,
                 gamma: float) -> None:
        super().__init__()
        for name, value in (("eps_model", eps_model), ("log_prob_y", log_prob_y)):
            if not callable(value):
                raise TypeError(f"{name} must be callable, got {type(value).__name__}")
        check_schedule(schedule)
        self.eps_model, self.log_prob_y, self.schedule = eps_model, log_prob_y, OnDevice(schedule)
        y = _check_label(y, None)
        self.y = OnDevice(y) if isinstance(y, Tensor) else y
        self.gamma = check_number("gamma", gamma, low=0.0)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        eps = self.eps_model(x_t, t)
        with torch.enable_grad():
            x = x_t.detach().requires_grad_(True)
            log_p = self.log_prob_y(x, t, _labels(self.y, x.shape[0], x.device))
            grad_log_p_y, = torch.autograd.grad(log_p.sum(), x)  # rows are independent: the sum's gradient per row
        return classifier_guided_eps(self.schedule.on(x_t.device), x_t, t, eps=eps, grad_log_p_y=grad_log_p_y,
                                     gamma=self.gamma)


def classifier_log_prob_y(classifier: Callable[[Tensor, Tensor], Tensor]) -> LogProbY:
    """A noise-aware classifier's logits(x_t, t) (B, K) (nets.NoisyClassifier) as log_prob_y(x_t, t, y) -> (B,)
    log p_t(y | x_t) = log_softmax(logits)[y], the callable ClassifierGuided takes."""
    if not callable(classifier):
        raise TypeError(f"classifier must be callable as classifier(x_t, t) -> logits, got {type(classifier).__name__}")

    def log_prob_y(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        return torch.log_softmax(classifier(x_t, t), dim=1).gather(1, y[:, None]).squeeze(1)

    return log_prob_y


def classifier_loss(classifier: Callable[[Tensor, Tensor], Tensor], schedule: NoiseSchedule, x0: Tensor, y: Tensor,
                    *, generator: torch.Generator | None = None) -> Tensor:
    """The noise-aware classifier's objective: cross-entropy of classifier(x_t, t) against y, with t ~ U{1..T} and
    x_t ~ q(x_t | x0) (Dhariwal & Nichol 2021: trained on the noisy data the sampler will show it).
    x0: (B, ...); y: (B,) LongTensor. generator draws t, then the noise."""
    t = sample_timesteps(schedule.T, x0.shape[0], device=x0.device, generator=generator)
    x_t = q_sample(schedule, x0, t, generator=generator)
    return torch.nn.functional.cross_entropy(classifier(x_t, t), y)


def clip_loss(clip: nn.Module, schedule: NoiseSchedule, x0: Tensor, c: Tensor, *,
              generator: torch.Generator | None = None) -> Tensor:
    """CLIP's contrastive loss on noisy data: with s_ij = clip.similarities(x_t, t, c)[i, j] for a batch of pairs
    (x0_i, c_i), t ~ U{1..T} and x_t ~ q(x_t | x0), the mean of the cross-entropies of each row (x_i against every
    c_j, target j = i) and of each column (c_j against every x_i). Its minimiser is s(x, c) = log p_t(c | x) -
    log p(c) + a constant: the pointwise mutual information, whose x-gradient is grad log p_t(c | x_t), so that a
    trained clip is a log_prob_y for ClassifierGuided (CLIP guidance). x0: (B, ...); c: (B,) LongTensor."""
    t = sample_timesteps(schedule.T, x0.shape[0], device=x0.device, generator=generator)
    x_t = q_sample(schedule, x0, t, generator=generator)
    logits = clip.similarities(x_t, t, c)
    target = torch.arange(x0.shape[0], device=x0.device)
    return (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2


# ---------------------------------------------------------------------------------- thresholding

def static_threshold(x0: Tensor) -> Tensor:
    """x0 clipped to [-1, 1], the data's range."""
    return x0.clamp(-1.0, 1.0)


def dynamic_threshold(x0: Tensor, *, percentile: float = 0.995) -> Tensor:
    """Imagen's dynamic thresholding: per sample, s = max(1, the `percentile` quantile of |x0|), then x0 clipped to
    [-s, s] and divided by s. A sample whose quantile is at most 1 gets s = 1: it is only clipped to [-1, 1], and
    is unchanged if it lies there already.  x0: (B, ...). Returns (B, ...) in [-1, 1], x0's dtype."""
    check_number("percentile", percentile, low=0.0, high=1.0, low_open=True)  # a quantile: 0.995, not 99.5
    magnitude = x0.detach().reshape(x0.shape[0], -1).abs()
    if magnitude.dtype not in (torch.float32, torch.float64):  # torch.quantile takes these two only
        magnitude = magnitude.float()
    s = torch.quantile(magnitude, percentile, dim=1)
    s = s.clamp(min=1.0).to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


THRESHOLDS = {"static": static_threshold, "dynamic": dynamic_threshold}


class Thresholded(nn.Module):
    """An eps-model whose x0 prediction is thresholded: eps -> x0 (forward.x0_from_eps), threshold, back to eps at
    the same x_t (forward.eps_from_x0). Any sampler then steps towards the thresholded x0.

    method: "static" or "dynamic" (percentile: the quantile of |x0| that sets s, dynamic only).
    """

    def __init__(self, eps_model: EpsModel, schedule: NoiseSchedule, *, method: str = "dynamic",
                 percentile: float = 0.995) -> None:
        super().__init__()
        if not callable(eps_model):
            raise TypeError(f"eps_model must be callable, got {type(eps_model).__name__}")
        check_schedule(schedule)
        self.method = check_choice("method", method, tuple(THRESHOLDS))
        self.percentile = check_number("percentile", percentile, low=0.0, high=1.0, low_open=True)
        self.eps_model, self.schedule = eps_model, OnDevice(schedule)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        schedule = self.schedule.on(x_t.device)
        x0 = x0_from_eps(schedule, x_t, t, eps=self.eps_model(x_t, t))
        x0 = dynamic_threshold(x0, percentile=self.percentile) if self.method == "dynamic" else static_threshold(x0)
        return eps_from_x0(schedule, x_t, t, x0=x0)


# ---------------------------------------------------------------------------------- exact references

def _classes(mixture: GaussianMixture) -> list[GaussianMixture]:
    """Each component of the mixture on its own: the law of x0 given its class."""
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    return [GaussianMixture([1.0], mixture.means[k:k + 1], mixture.covs[k:k + 1], dtype=mixture.dtype)
            for k in range(mixture.K)]


def mixture_conditional_eps_model(mixture: GaussianMixture, schedule: NoiseSchedule) -> ConditionalNetwork:
    """The exact conditional network of data ~ mixture whose component k is class k: network(x_t, t, y) =
    E[eps | x_t, y], the eps of component y alone (score.mixture_eps_model), and of the whole mixture where
    y == K (the "no label" token; num_classes = mixture.K). x_t: (B, ...) flattening to D; t, y: (B,) LongTensors."""
    models = [mixture_eps_model(c, schedule) for c in _classes(mixture)] + [mixture_eps_model(mixture, schedule)]

    def network(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        every = torch.stack([model(x_t, t) for model in models])  # (K + 1, B, ...)
        return every[y.to(x_t.device), torch.arange(x_t.shape[0], device=x_t.device)]

    return network


def mixture_log_prob_y(mixture: GaussianMixture, schedule: NoiseSchedule) -> LogProbY:
    """The exact noise-aware classifier of data ~ mixture whose component k is class k, by Bayes' rule:
    log p_t(y | x_t) = log pi_y + log q_t(x_t | y) - log q_t(x_t), differentiable in x_t.
    x_t: (B, ...) flattening to D; t, y: (B,) LongTensors (y in 0..K-1). Returns (B,) in x_t's dtype."""
    classes, log_weights = _classes(mixture), mixture.weights.log()
    check_schedule(schedule)

    def log_prob_y(x_t: Tensor, t: Tensor, y: Tensor) -> Tensor:
        x = x_t.reshape(x_t.shape[0], -1).to(mixture.dtype)
        alpha_bar = schedule.alpha_bars.to(x.device, mixture.dtype)[t]
        a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
        log_joint = torch.stack([c.log_prob(x, mean_coef=a, std=s) for c in classes], dim=1) + log_weights.to(x.device)
        picked = log_joint.gather(1, y.to(x.device)[:, None]).squeeze(1)
        return (picked - torch.logsumexp(log_joint, dim=1)).to(x_t.dtype)

    return log_prob_y
