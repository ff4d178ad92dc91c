# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 5 — guidance: steering a diffusion model towards a condition, and what it really samples
#
# A diffusion model trained on images of every class draws images of every class. To ask for *one* class (or a
# caption) we need the score of the conditional density $p_t(\mathbf{x} \mid y)$ at every noise level. Bayes' rule
# splits that score into the unconditional score plus the gradient of a classifier, and *guidance* is what one gets
# by turning the classifier's term up with a scale $\gamma$. This lesson derives the three ways of doing it that the
# lecture presents, checks each against exact answers, and then asks a question most presentations skip: which
# distribution does a guided sampler actually return?
#
# 1. conditioning and Bayes' rule for scores, on a labelled 2-D Gaussian mixture whose scores are known exactly;
# 2. classifier guidance, and why its classifier must read the *noisy* $\mathbf{x}_t$ and $t$;
# 3. classifier-free guidance: the conditional and unconditional scores of one network define an implicit
#    classifier; the guided densities for $\gamma = 0, 1, 3, 10$;
# 4. what guidance really samples: the tilted density $p(\mathbf{x})^{1-\gamma}p(\mathbf{x} \mid y)^\gamma$ against
#    what the guided ODE, DDPM and a predictor-corrector sampler return;
# 5. CLIP guidance: the contrastive loss, its optimum (the pointwise mutual information), and guidance with it;
# 6. conditional digits: a network trained with label dropout, accuracy against diversity as $\gamma$ grows, and
#    Imagen's static and dynamic thresholding at large $\gamma$;
# 7. cascades and noise conditioning augmentation: a 4x4 base model, a 4x4 -> 8x8 super-resolution model, the
#    train/test mismatch and the sweep over the augmentation level.
#
# Sections 1-5 use exact networks, where nothing but the method can go wrong: the conditional and unconditional
# $\boldsymbol\epsilon$ of a Gaussian mixture (`guidance.mixture_conditional_eps_model`) and its exact noise-aware
# classifier (`guidance.mixture_log_prob_y`). Only the classifiers of section 2, the toy CLIP of section 5, the
# digits model of section 6 and the three runs of section 7's cascade are trained.
#
# **Notation.** Each symbol keeps one meaning in this lesson; where a paper uses another, it says so.
#
# - $\bar\alpha_t$ as in lessons 1-4, and $\sigma_t = \sqrt{1 - \bar\alpha_t}$, the standard deviation of the noise
#   in $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sigma_t\boldsymbol\epsilon$ (lesson 4 wrote it $s_t$;
#   here $\sigma_t$ is never the noise of a reverse step).
# - $p_t(\mathbf{x})$, $p_t(\mathbf{x} \mid y)$: the densities of $\mathbf{x}_t$, without and with the label $y$;
#   $p_t(y \mid \mathbf{x})$: the class probabilities given the noisy $\mathbf{x}_t$ (the *noise-aware* classifier).
#   $p = p_0$ is the data.
# - $\gamma$: the guidance scale, the lecture's. $\gamma = 0$ is unconditional, $\gamma = 1$ conditional, $\gamma > 1$
#   guided. Dhariwal & Nichol write it $s$; Ho & Salimans use $w = \gamma - 1$ (their $w = 0$ is our $\gamma = 1$);
#   Imagen's $w$ and the `guidance_scale` of the diffusers library are our $\gamma$.
# - $\tilde p_\gamma(\mathbf{x} \mid y) \propto p(\mathbf{x})^{1-\gamma}p(\mathbf{x} \mid y)^\gamma$: the *tilted
#   density* that guidance is usually said to sample.
# - $c$: a CLIP caption (here a class label), with encoders $f(\mathbf{x}_t, t)$ and $g(c)$.
# - $\kappa$: the per-sample level of dynamic thresholding (Imagen writes $s$).
# - Section 7: $D(\mathbf{x})$, the image averaged down to $4\times 4$; $\mathbf{z} = D(\mathbf{x})$, the
#   low-resolution image; $s \in [0, 1]$, the augmentation level of $\mathbf{z}$ (Imagen's `aug_level`; not Dhariwal &
#   Nichol's guidance scale).
#
# Package modules used: `ddpm_scratch.guidance` (every guidance method here is one of its eps-model wrappers, which
# every sampler takes unchanged), `ddpm_scratch.nets` (`NoisyClassifier`, `ToyCLIP`), `ddpm_scratch.sampling`,
# `ddpm_scratch.score`, `ddpm_scratch.cascade` (section 7), and for sections 6-7 `ddpm_scratch.machinery.train` and
# `ddpm_scratch.machinery.metrics`.
# Problem set 5 asks for variants the package leaves out; this lesson shows the package's own versions only.
# With `DDPM_SCRATCH_FAST=1` every cell is shrunk (fewer points, steps and training iterations); the full run trains the
# classifiers and the digits models far longer. Measured on two CPU cores shared with other work: 45-58 s in fast mode
# at a load average of 2-3; about 16 minutes in full mode with one torch thread at a load of about 2, most of it the
# digits models (section 6: training 3 minutes; section 7: three runs, 7.5 minutes) and the 1-D samplers of section 4
# (2 minutes). Busier cores stretch both. Every cell that takes more than a few seconds shows a progress bar.

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
THREADS = 1  # torch threads for the 2-D and 1-D cells: tiny tensors, a second thread does not pay off
UNET_THREADS = None  # torch threads for the digits U-Net (section 6); None: torch's default, one per core. On cores
# that other programs keep busy, 1 can be many times faster than several threads that wait for each other.
T = 1000  # DDPM's linear schedule for the exact mixtures
LIM = 3.0  # the 2-D pictures show the square [-LIM, LIM]^2
LIM_GUIDED = 4.5  # ... and [-LIM_GUIDED, LIM_GUIDED]^2 for the guided samples of section 3 (large gamma goes far)

# 1-3, 5: the labelled 2-D mixture
GUIDE_CLASS = 2  # the class sections 2, 3 and 5 guide towards (the lightest component)
N_GUIDED = 1000 if FAST else 4000  # points per guided run
GUIDED_STEPS = 50  # DDIM steps of a guided run (sections 2, 3, 5)
SW_PROJECTIONS = 64
CLASSIFIER_STEPS = 300 if FAST else 2000  # Adam steps of each trained classifier (section 2) and of the CLIP (5)
BATCH = 256
GAMMAS_2D = (0.0, 1.0, 3.0, 10.0)  # the columns of section 3's picture
# 4. what guidance samples: the 1-D two-component mixture, exact networks
GAMMA_1D = 3.0
N_1D = 2000 if FAST else 20_000
STEPS_1D = 200 if FAST else None  # None: every one of the T steps
# 5. CLIP
CLIP_CHECK_BATCHES = 50 if FAST else 400  # batches of the loss comparison with exact critics
# 6. conditional digits
DIGITS_STEPS = 150 if FAST else 2000  # training steps (full mode: the demo's run, about 3.5 minutes on one thread)
DIGITS_MODEL = dict(base_channels=16, attention_resolutions=()) if FAST else {}  # {}: the trainer's default U-Net
DIGITS_SAMPLER_STEPS = 20 if FAST else 50  # DDIM steps
PER_CLASS = 10 if FAST else 50  # samples per class for accuracy and diversity
DIGIT_GAMMAS = (0.0, 1.0, 3.0) if FAST else (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
GAMMA_HIGH = 10.0  # the large scale at which thresholding is compared
# 7. cascades: a 4x4 base model and two 4x4 -> 8x8 super-resolution models (without and with noise augmentation)
CASCADE_STEPS = 150 if FAST else 2000  # training steps of each of the three runs (full mode: the demo's settings)
N_CASCADE = 100 if FAST else 500  # cascade samples per FD
CASCADE_LEVELS = (0.0, 0.2) if FAST else (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # the sweep over the augmentation level s

# Figures and the digits run go to outputs/ of the course folder (the one holding lessons/), wherever the notebook
# was started from.
OUT = lesson_output_dir("05_guidance")

# %% id="setup"
import dataclasses
import json
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from ddpm_scratch.cascade import augment, downsample, super_resolve, upsample
from ddpm_scratch.forward import as_eps_model
from ddpm_scratch.guidance import (
    ClassifierFree,
    ClassifierGuided,
    Thresholded,
    classifier_free_eps,
    classifier_log_prob_y,
    classifier_loss,
    clip_loss,
    dynamic_threshold,
    mixture_conditional_eps_model,
    mixture_log_prob_y,
    static_threshold,
)
from ddpm_scratch.losses import drop_labels
from ddpm_scratch.machinery.data import load_digits
from ddpm_scratch.machinery.metrics import (
    class_accuracy,
    class_diversity,
    digits_classifier,
    digits_fd,
    sliced_wasserstein,
)
from ddpm_scratch.machinery.notebook import explore, show
from ddpm_scratch.machinery.train import TrainConfig, train
from ddpm_scratch.nets import NoisyClassifier, ToyCLIP
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # arithmetic on subnormal floats is very slow on CPUs; round them to 0
UNET_THREADS = UNET_THREADS or torch.get_num_threads()  # read before THREADS is set: the default is one per core
torch.set_num_threads(THREADS)
F64 = torch.float64
# show(fig, path) saves a figure and displays it; explore(plot, **controls) adds sliders in a live notebook frontend.

# %% [markdown] id="bayes_intro"
# ## 1. Conditioning and Bayes' rule for scores
#
# A conditional model needs $\nabla_{\mathbf{x}}\log p_t(\mathbf{x} \mid y)$ at every noise level. Bayes' rule,
# $p_t(\mathbf{x} \mid y) = p_t(y \mid \mathbf{x})\,p_t(\mathbf{x}) / p(y)$, holds at every $t$ (the label does not
# change as noise is added), and $p(y)$ does not depend on $\mathbf{x}$, so it drops out of the gradient:
#
# $$\nabla_{\mathbf{x}}\log p_t(\mathbf{x} \mid y) = \nabla_{\mathbf{x}}\log p_t(\mathbf{x})
# + \nabla_{\mathbf{x}}\log p_t(y \mid \mathbf{x}).$$
#
# The conditional score is the unconditional one plus the gradient of a classifier of noisy data. In the units a
# network predicts, $\boldsymbol\epsilon = -\sigma_t\,\nabla\log p_t$ (lesson 3), the same identity reads
# $\boldsymbol\epsilon(\mathbf{x}_t, t, y) = \boldsymbol\epsilon(\mathbf{x}_t, t) - \sigma_t\nabla\log p_t(y \mid
# \mathbf{x}_t)$.
#
# The data: a 2-D mixture of three Gaussians, each component a class $y \in \{0, 1, 2\}$ with the mixture weight as
# its prior $p(y)$. Every noisy version is again a mixture, so all three terms have closed forms:
# `mixture_conditional_eps_model(mixture, schedule)` is the exact network $\boldsymbol\epsilon^*(\mathbf{x}_t, t, y) =
# \mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t, y]$, with the "no label" token $y = K$ (here 3) giving the
# unconditional $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$, and `mixture_log_prob_y` is the exact
# $\log p_t(y \mid \mathbf{x}_t)$, differentiable in $\mathbf{x}_t$. The cell checks the identity at random points and
# steps, with the classifier's gradient taken by autograd.

# %% id="bayes"
mixture = GaussianMixture(weights=[0.45, 0.35, 0.2], means=[[-1.2, -0.5], [1.2, -0.5], [0.0, 1.3]],
                          covs=[[0.25, 0.12], [0.12, 0.25], [0.2, 0.2]])  # per-coordinate variances
K = mixture.K
schedule = NoiseSchedule.linear(T)
network = mixture_conditional_eps_model(mixture, schedule)  # network(x_t, t, y); y == K: no label
log_prob_y = mixture_log_prob_y(mixture, schedule)  # log p_t(y | x_t)
components = [GaussianMixture([1.0], mixture.means[k:k + 1], mixture.covs[k:k + 1]) for k in range(K)]  # p(x | y)
print(mixture, "| p(y) =", [round(w, 2) for w in mixture.weights.tolist()])


def sigma(t: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt(1 - alpha_bar_t), as a column for (B, 2) tensors."""
    return (1 - schedule.alpha_bars.to(F64)[t]).sqrt()[:, None]


def grad_log_prob_y(log_p_y, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad_x log p_t(y | x) at x_t, by autograd, for any log_p_y(x_t, t, y) -> (B,)."""
    x = x_t.detach().clone().requires_grad_(True)
    grad, = torch.autograd.grad(log_p_y(x, t, y).sum(), x)
    return grad


g = torch.Generator().manual_seed(SEED)
n = 600
x_t = 2.0 * torch.randn(n, 2, generator=g, dtype=F64)
t = torch.randint(1, T + 1, (n,), generator=g)
y = torch.randint(0, K, (n,), generator=g)
no_label = torch.full_like(y, K)
score_cond = -network(x_t, t, y) / sigma(t)
score_uncond = -network(x_t, t, no_label) / sigma(t)
bayes_gap = (score_cond - score_uncond - grad_log_prob_y(log_prob_y, x_t, t, y)).abs().max().item()
print(f"Bayes' rule for scores at {n} random (x_t, t, y): largest |grad log p_t(x|y) - grad log p_t(x) - "
      f"grad log p_t(y|x)| = {bayes_gap:.1e} (the scores themselves reach {score_cond.abs().max():.1f})")

# %% [markdown] id="bayes_picture_intro"
# The picture shows the three terms at one noise level, as arrows over the densities (each panel scaled so that its
# longest arrow spans one grid spacing; the titles give the lengths): the unconditional score
# points towards the nearest bulk of $p_t(\mathbf{x})$, the classifier's gradient points towards where class 2
# becomes more probable (it vanishes where class 2 is already certain, around its own component, and is largest where
# class 2 is least probable, since there $\log p_t(y \mid \mathbf{x})$ is steep), and their sum points into class
# 2's own density $p_t(\mathbf{x} \mid y = 2)$.

# %% id="bayes_picture"
T_PICTURE = 150  # the step of the picture
side = torch.linspace(-LIM, LIM, 17, dtype=F64)
arrows_at = torch.cartesian_prod(side, side)
dense = torch.linspace(-LIM_GUIDED, LIM_GUIDED, 121, dtype=F64)
grid = torch.cartesian_prod(dense, dense)  # (121^2, 2), x varies slowest
conditional_density = components[GUIDE_CLASS].log_prob(grid).exp().reshape(121, 121).T  # p(x | y), for contours
LEVELS = np.array([0.05, 0.25, 0.5, 0.75])  # contour levels, as fractions of a density's largest value
t_pic = torch.full((len(arrows_at),), T_PICTURE)
y_pic = torch.full((len(arrows_at),), GUIDE_CLASS)
fields = {"grad log p_t(x)": -network(arrows_at, t_pic, torch.full_like(y_pic, K)) / sigma(t_pic),
          f"grad log p_t(y={GUIDE_CLASS} | x)": grad_log_prob_y(log_prob_y, arrows_at, t_pic, y_pic),
          f"their sum = grad log p_t(x | y={GUIDE_CLASS})": -network(arrows_at, t_pic, y_pic) / sigma(t_pic)}
mean_coef = schedule.alpha_bars.to(F64)[T_PICTURE].sqrt()  # x_t = mean_coef x0 + sigma_t eps
sigma_t = (1 - schedule.alpha_bars.to(F64)[T_PICTURE]).sqrt()
densities = [mixture.log_prob(grid, mean_coef=mean_coef, std=sigma_t),
             mixture.log_prob(grid, mean_coef=mean_coef, std=sigma_t),
             components[GUIDE_CLASS].log_prob(grid, mean_coef=mean_coef, std=sigma_t)]
SPACING = (side[1] - side[0]).item()
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for ax, (title, field), log_density in zip(axes, fields.items(), densities, strict=True):
    ax.contourf(dense, dense, log_density.exp().reshape(121, 121).T, levels=12, cmap="Greys")
    longest = field.norm(dim=1).max().item()  # each panel: its longest arrow spans one grid spacing
    ax.quiver(arrows_at[:, 0], arrows_at[:, 1], field[:, 0], field[:, 1], color="C3", angles="xy",
              scale_units="xy", scale=longest / SPACING, width=0.004)
    title += f"\nlongest arrow {longest:.1f}"
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", xticks=[], yticks=[])
    ax.set_title(title, fontsize=10)
fig.suptitle(f"the three scores at t = {T_PICTURE} (alpha_bar_t = {mean_coef.item() ** 2:.2f}), each panel to its own "
             f"scale; grey: p_t(x), p_t(x), p_t(x | y={GUIDE_CLASS})", y=1.04)
show(fig, OUT / "bayes_scores.png")

# %% [markdown] id="classifier_intro"
# ## 2. Classifier guidance, and why the classifier must be noise-aware
#
# Dhariwal & Nichol (2021) take an unconditional diffusion model and a separately trained classifier, and sample
# with the score $\nabla\log p_t(\mathbf{x}) + \gamma\,\nabla\log p_t(y \mid \mathbf{x})$: for $\gamma = 1$ exactly
# the conditional score above, for $\gamma > 1$ an amplified one. Since $\gamma\nabla\log p_t(y \mid \mathbf{x}) =
# \nabla\log p_t(y \mid \mathbf{x})^\gamma$, the guided score is that of $p_t(\mathbf{x})\,p_t(y \mid
# \mathbf{x})^\gamma$: a sharper classifier, renormalised. In $\boldsymbol\epsilon$ units (their Algorithm 2; the
# ancestral form, their Algorithm 1, shifts the mean of each step by $\gamma\boldsymbol\Sigma\nabla\log p_t(y \mid
# \mathbf{x}_t)$ instead):
#
# $$\hat{\boldsymbol\epsilon}(\mathbf{x}_t, t) = \boldsymbol\epsilon_\theta(\mathbf{x}_t, t) - \gamma\,\sigma_t\,
# \nabla_{\mathbf{x}_t}\log p_\phi(y \mid \mathbf{x}_t, t).$$
#
# `ClassifierGuided(eps_model, log_prob_y, y, schedule, gamma=...)` is this formula as an eps-model (it takes the
# gradient by autograd, also inside the samplers' `torch.no_grad()`), so every sampler runs it unchanged.
#
# **Which classifier?** The gradient is needed at the noisy $\mathbf{x}_t$ of every step, and what it must be is
# $\nabla\log p_t(y \mid \mathbf{x}_t)$: the class given the *noisy* point. A classifier of clean data answers
# another question, $p(y \mid \mathbf{x}_0 = \mathbf{x}_t)$, as if $\mathbf{x}_t$ were clean. Early in the reverse
# process $\mathbf{x}_t$ is almost pure noise and says little about the class, so the true $p_t(y \mid
# \mathbf{x}_t)$ is nearly flat and its gradient tiny; a clean classifier keeps its sharp decision boundaries and
# pushes hard everywhere. The cure is to train the classifier on the noisy data the sampler will show it, with $t$
# as an input (`nets.NoisyClassifier`, trained with `guidance.classifier_loss`: cross-entropy on $\mathbf{x}_t \sim
# q(\mathbf{x}_t \mid \mathbf{x}_0)$ with $t \sim U\{1..T\}$).
#
# The cell trains two copies of the same small network for `CLASSIFIER_STEPS` Adam steps on labelled draws of the
# mixture: one noise-aware, one on clean data only (it is always called with $t = 1$, so it never learns to use
# $t$). It then compares each one's $\nabla\log p(y \mid \mathbf{x}_t)$ with the exact one on points $\mathbf{x}_t
# \sim p_t$, across $t$: the mean gradient length, and the mean cosine between learned and exact gradients.

# %% id="classifiers"
def labelled_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws of the labelled mixture: y ~ p(y), then x0 ~ p(x | y) (diagonal covariances)."""
    y = torch.multinomial(mixture.weights, n, replacement=True, generator=generator)
    std = torch.diagonal(mixture.covs, dim1=1, dim2=2)[y].sqrt()
    return mixture.means[y] + std * torch.randn(n, 2, generator=generator, dtype=F64), y


def clean_loss(model, schedule, x0, y, *, generator=None):
    """Cross-entropy on clean data: the classifier always reads x0 and t = 1."""
    return torch.nn.functional.cross_entropy(model(x0, torch.ones_like(y)), y)


def fit(model: torch.nn.Module, loss, steps: int, seed: int, desc: str) -> torch.nn.Module:
    """model trained `steps` Adam steps (lr 3e-3) on batches of the labelled mixture with
    loss(model, schedule, x0, y, *, generator); returned in eval mode."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), desc=desc):
        x0, y = labelled_batch(BATCH, g)
        value = loss(model, schedule, x0, y, generator=g)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
    return model.eval().requires_grad_(False)


start = time.perf_counter()
with torch.random.fork_rng():
    torch.manual_seed(SEED)  # the initial weights
    noise_aware = fit(NoisyClassifier((2,), K, hidden=64).double(), classifier_loss, CLASSIFIER_STEPS, SEED + 1,
                      "noise-aware classifier")
    clean = fit(NoisyClassifier((2,), K, hidden=64).double(), clean_loss, CLASSIFIER_STEPS, SEED + 2,
                "clean-data classifier")
print(f"two classifiers, {CLASSIFIER_STEPS} steps each, in {time.perf_counter() - start:.0f} s")
CLASSIFIERS = {"exact": log_prob_y,
               "noise-aware": classifier_log_prob_y(noise_aware),
               "clean-data": lambda x_t, t, y: classifier_log_prob_y(clean)(x_t, torch.ones_like(t), y)}

CHECK_STEPS = (10, 50, 200, 400, 700, 950)
g = torch.Generator().manual_seed(SEED + 3)
print(f"gradients of log p(y | x_t) on 2000 points x_t ~ p_t, y = {GUIDE_CLASS}: mean length, and for the learned "
      "ones the mean cosine with the exact gradient")
print(f"{'t':>4} {'alpha_bar_t':>11} {'exact':>8} {'noise-aware':>12} {'cos':>5} {'clean-data':>11} {'cos':>5}")
gradient_table = {}
for step in CHECK_STEPS:
    x0, _ = labelled_batch(2000, g)
    t = torch.full((2000,), step)
    x_t = schedule.alpha_bars.to(F64)[step].sqrt() * x0 + sigma(t) * torch.randn(x0.shape, generator=g, dtype=F64)
    y = torch.full((2000,), GUIDE_CLASS)
    grads = {name: grad_log_prob_y(f, x_t, t, y) for name, f in CLASSIFIERS.items()}
    lengths = {name: v.norm(dim=1).mean().item() for name, v in grads.items()}
    cosines = {name: torch.nn.functional.cosine_similarity(grads[name], grads["exact"], dim=1).mean().item()
               for name in ("noise-aware", "clean-data")}
    gradient_table[step] = lengths, cosines
    print(f"{step:>4} {schedule.alpha_bars[step]:11.3f} {lengths['exact']:8.2f} {lengths['noise-aware']:12.2f} "
          f"{cosines['noise-aware']:5.2f} {lengths['clean-data']:11.2f} {cosines['clean-data']:5.2f}")
ratio_late = gradient_table[CHECK_STEPS[-1]][0]["clean-data"] / gradient_table[CHECK_STEPS[-1]][0]["exact"]
print(f"at t = {CHECK_STEPS[-1]} the clean-data classifier's gradient is {ratio_late:.0f} times the exact one")

# %% [markdown] id="classifier_field_intro"
# **Explore.** Move $t$: the colours are $p_t(y = 2 \mid \mathbf{x})$ of each classifier, the arrows its gradient
# $\nabla\log p_t(y = 2 \mid \mathbf{x})$, drawn to one common scale in all three panels (the title gives the longest
# arrow). At small $t$ all three agree; as $t$ grows the exact classifier flattens and its arrows shrink, the
# noise-aware one follows it, and the clean-data one keeps its sharp boundaries.

# %% id="classifier_field"
coarse = torch.linspace(-LIM, LIM, 13, dtype=F64)
field_points = torch.cartesian_prod(coarse, coarse)
fine = torch.linspace(-LIM, LIM, 61, dtype=F64)
field_grid = torch.cartesian_prod(fine, fine)


def classifier_field(t: int) -> None:
    """p_t(y = GUIDE_CLASS | x) and its log's gradient for the three classifiers at step t."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    steps = torch.full((len(field_points),), int(t))
    y = torch.full((len(field_points),), GUIDE_CLASS)
    grads = {name: grad_log_prob_y(f, field_points, steps, y) for name, f in CLASSIFIERS.items()}
    spacing = (coarse[1] - coarse[0]).item()
    scale = max(v.norm(dim=1).max().item() for v in grads.values()) / spacing  # longest arrow: one grid spacing
    with torch.no_grad():
        for ax, (name, f) in zip(axes, CLASSIFIERS.items(), strict=True):
            steps_grid = torch.full((len(field_grid),), int(t))
            prob = f(field_grid, steps_grid, torch.full((len(field_grid),), GUIDE_CLASS)).exp()
            ax.contourf(fine, fine, prob.reshape(61, 61).T, levels=np.linspace(0, 1, 11), cmap="viridis")
            ax.quiver(field_points[:, 0], field_points[:, 1], grads[name][:, 0], grads[name][:, 1], color="w",
                      angles="xy", scale_units="xy", scale=scale, width=0.005)
            ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"{name}: longest arrow {grads[name].norm(dim=1).max():.2f}", fontsize=10)
    fig.suptitle(f"p_t(y={GUIDE_CLASS} | x) (colour, 0 to 1) and its log's gradient at t = {int(t)}", y=1.0)
    show(fig, OUT / "classifier_field.png")


explore(classifier_field, t=(400, 1, T, 1))

# %% [markdown] id="classifier_guided_intro"
# **Guiding with each classifier.** With $\gamma = 1$ and the exact classifier, classifier guidance of the exact
# unconditional model *is* conditional sampling, so its samples should be draws of $p(\mathbf{x} \mid y)$. The cell
# guides the exact unconditional $\boldsymbol\epsilon$ towards class 2 with each classifier (DDIM, `GUIDED_STEPS`
# steps), and measures the sliced Wasserstein distance (lesson 2) to fresh draws of $p(\mathbf{x} \mid y = 2)$; the
# floor is the same distance between two sets of true draws.

# %% id="classifier_guided"
unconditional = ClassifierFree(network, 0, gamma=0.0, num_classes=K)  # gamma = 0: the network with no label


def true_conditional(n: int, seed: int) -> torch.Tensor:
    """n draws of p(x | y = GUIDE_CLASS), from generators seeded apart from the samplers'."""
    return components[GUIDE_CLASS].sample(n, torch.Generator().manual_seed(10_000 + seed))


def sw_to_conditional(x: torch.Tensor, seed: int = SEED) -> float:
    return sliced_wasserstein(x, true_conditional(len(x), seed), num_projections=SW_PROJECTIONS,
                              generator=torch.Generator().manual_seed(seed))


def guided(model, seed: int = SEED, n: int = N_GUIDED, num_steps: int = GUIDED_STEPS) -> torch.Tensor:
    return sample(model, schedule, (n, 2), sampler="ddim", num_steps=num_steps, dtype=F64,
                  generator=torch.Generator().manual_seed(seed))


sw_floor = sliced_wasserstein(true_conditional(N_GUIDED, SEED + 1), true_conditional(N_GUIDED, SEED),
                              num_projections=SW_PROJECTIONS, generator=torch.Generator().manual_seed(SEED))
classifier_samples = {"unguided (gamma = 0)": guided(unconditional)}
for name, f in tqdm(CLASSIFIERS.items(), desc="classifier guidance, gamma = 1"):
    classifier_samples[name] = guided(ClassifierGuided(unconditional, f, GUIDE_CLASS, schedule, gamma=1.0))
print(f"SW2 to p(x | y={GUIDE_CLASS}), {N_GUIDED} points (floor, two sets of true draws: {sw_floor:.3f})")
classifier_sw = {name: sw_to_conditional(x) for name, x in classifier_samples.items()}
for name, sw in classifier_sw.items():
    print(f"{name:>22}: {sw:.3f}")

fig, axes = plt.subplots(1, len(classifier_samples), figsize=(3.3 * len(classifier_samples), 3.4))
for ax, (name, x) in zip(axes, classifier_samples.items(), strict=True):
    ax.contour(dense, dense, conditional_density, levels=LEVELS * conditional_density.max().item(),
               colors="0.5", linewidths=0.8)
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4)
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", xticks=[], yticks=[])
    ax.set_title(f"{name}\nSW2 {classifier_sw[name]:.3f}", fontsize=9)
fig.suptitle(f"classifier guidance towards y = {GUIDE_CLASS} with gamma = 1 (grey: p(x | y={GUIDE_CLASS}))", y=1.04)
show(fig, OUT / "classifier_guidance.png")

# %% [markdown] id="classifier_guided_read"
# With the exact classifier the samples come close to the floor: Bayes' rule made a conditional sampler out of an
# unconditional model and a classifier (the identity held to rounding in section 1; what is left is the sampler's, DDIM
# with `GUIDED_STEPS` steps: question 1 at the end). The trained noise-aware classifier lands in the right place with
# roughly the right spread. The clean-data one also brings the points to class 2 (its decision regions are right), but
# its gradient early in the reverse process is hundreds of times too large (the table above): while the points are still
# mostly noise they are driven hard across the clean classifier's sharp decision boundary, and they arrive distorted,
# piled along that boundary with tails reaching towards the other classes, instead of filling the component (the
# picture; its SW2 is the largest of the three). This is the lecture's first objection to classifier guidance: an
# off-the-shelf classifier will not do, one has to train a classifier on noisy data, alongside the diffusion model. The
# second objection is that a classifier's input gradient need not point towards better *data*: most of the input is
# irrelevant to the class, and the gradient can be adversarial. Here, in 2-D and with a smooth classifier, that does not
# show; on images it does.

# %% [markdown] id="cfg_intro"
# ## 3. Classifier-free guidance: the classifier inside a conditional model
#
# Bayes' rule can also be read the other way round: a conditional and an unconditional model *define* a classifier,
#
# $$\nabla\log p_t(y \mid \mathbf{x}) = \nabla\log p_t(\mathbf{x} \mid y) - \nabla\log p_t(\mathbf{x})
# = -\frac{\boldsymbol\epsilon(\mathbf{x}_t, t, y) - \boldsymbol\epsilon(\mathbf{x}_t, t)}{\sigma_t}.$$
#
# Putting this implicit classifier into classifier guidance gives Ho & Salimans' (2022) classifier-free guidance:
#
# $$\hat{\boldsymbol\epsilon} = \boldsymbol\epsilon(\mathbf{x}_t, t) + \gamma\,\big(\boldsymbol\epsilon(\mathbf{x}_t,
# t, y) - \boldsymbol\epsilon(\mathbf{x}_t, t)\big) = (1-\gamma)\,\boldsymbol\epsilon(\mathbf{x}_t, t) +
# \gamma\,\boldsymbol\epsilon(\mathbf{x}_t, t, y),$$
#
# the score of $p_t(\mathbf{x})^{1-\gamma}\,p_t(\mathbf{x} \mid y)^\gamma$ at every noise level. (Ho & Salimans write
# $(1+w)\,\boldsymbol\epsilon(\mathbf{x}_t, t, y) - w\,\boldsymbol\epsilon(\mathbf{x}_t, t)$, so $w = \gamma - 1$.)
# No classifier is trained and no input gradient is taken; the price is two network evaluations per step.
#
# **One network for both.** Training needs no second model: the conditional network is trained with *label
# dropout*: each label is replaced by a "no label" token with a small probability (Ho & Salimans found 0.1-0.2 alike;
# `losses.drop_labels`, and `TrainConfig(label_dropout=...)` in the trainer), so that the same network learns
# $\boldsymbol\epsilon(\mathbf{x}_t, t, y)$ and, with the token, $\boldsymbol\epsilon(\mathbf{x}_t, t)$. The package
# writes the token as $y = K$, the number of classes. `ClassifierFree(network, y, gamma=..., num_classes=K)` calls
# the network once on $2B$ rows ($\mathbf{x}_t$ with $y$, then with the token) and combines the two halves.
#
# The cell shows what label dropout does to a batch of labels, then checks the two identities above with the exact
# networks: CFG's difference of $\boldsymbol\epsilon$'s against $-\sigma_t$ times the exact classifier's gradient,
# and CFG against classifier guidance with the exact classifier, at $\gamma = 3$.

# %% id="cfg_check"
labels = torch.randint(0, K, (20,), generator=torch.Generator().manual_seed(SEED + 4))
print(f"labels of a batch:            {labels.tolist()}")
dropped = drop_labels(labels, rate=0.1, num_classes=K, generator=torch.Generator().manual_seed(SEED + 5))
print(f"after label dropout (0.1):    {dropped.tolist()}  ({K} = no label)")

g = torch.Generator().manual_seed(SEED + 6)
x_t = 2.0 * torch.randn(n, 2, generator=g, dtype=F64)
t = torch.randint(1, T + 1, (n,), generator=g)
y = torch.randint(0, K, (n,), generator=g)
implicit = network(x_t, t, y) - network(x_t, t, torch.full_like(y, K))
explicit = -sigma(t) * grad_log_prob_y(log_prob_y, x_t, t, y)
print(f"eps(x_t, t, y) - eps(x_t, t) against -sigma_t grad log p_t(y | x_t): largest difference "
      f"{(implicit - explicit).abs().max():.1e}")
cfg_3 = ClassifierFree(network, y, gamma=3.0, num_classes=K)(x_t, t)
cg_3 = ClassifierGuided(unconditional, log_prob_y, y, schedule, gamma=3.0)(x_t, t)
by_hand = classifier_free_eps(eps_uncond=network(x_t, t, torch.full_like(y, K)), eps_cond=network(x_t, t, y),
                              gamma=3.0)
print(f"gamma = 3: ClassifierFree against ClassifierGuided with the exact classifier: largest difference "
      f"{(cfg_3 - cg_3).abs().max():.1e}; against (1 - gamma) eps_uncond + gamma eps_cond by hand: "
      f"{(cfg_3 - by_hand).abs().max():.1e}")

# %% [markdown] id="cfg_gammas_intro"
# **The guided densities.** Each column below is one $\gamma$, each row one class; the points are samples of the
# exact guided model (DDIM, `GUIDED_STEPS` steps), the grey contours the tilted density $\tilde
# p_\gamma(\mathbf{x} \mid y) \propto p(\mathbf{x})^{1-\gamma}p(\mathbf{x} \mid y)^\gamma$ at $t = 0$. $\gamma = 0$
# ignores the label (every row is the whole mixture), $\gamma = 1$ gives each class, and larger $\gamma$ pushes the
# samples away from the other classes: $\tilde p_\gamma \propto p(\mathbf{x} \mid y)\,p(y \mid
# \mathbf{x})^{\gamma - 1}$ favours the points where the class is least in doubt. The cell prints, for each
# $\gamma$, where class 2's samples lie on average, and where the tilted density puts its mass.

# %% id="cfg_gammas"
def tilted_log_density(x: torch.Tensor, y: int, gamma: float) -> torch.Tensor:
    """log p(x)^(1 - gamma) p(x | y)^gamma, unnormalised."""
    return (1 - gamma) * mixture.log_prob(x) + gamma * components[y].log_prob(x)


def draw_guided(ax, gamma: float, y: int, seed: int = SEED) -> torch.Tensor:
    x = guided(ClassifierFree(network, y, gamma=gamma, num_classes=K), seed=seed)
    density = torch.softmax(tilted_log_density(grid, y, gamma), dim=0).reshape(121, 121).T
    ax.contour(dense, dense, density, levels=LEVELS * density.max().item(), colors="0.55", linewidths=0.7)
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.4, color=f"C{y}")
    ax.set(xlim=(-LIM_GUIDED, LIM_GUIDED), ylim=(-LIM_GUIDED, LIM_GUIDED), aspect="equal", xticks=[], yticks=[])
    return x


fig, axes = plt.subplots(K, len(GAMMAS_2D), figsize=(3 * len(GAMMAS_2D), 3 * K))
print(f"class {GUIDE_CLASS} (its mean {mixture.means[GUIDE_CLASS].tolist()}): the mean point and the mean distance to "
      "the class's mean, of the guided samples and of the tilted density (on the grid)")
for col, gamma in enumerate(tqdm(GAMMAS_2D, desc="guided samples")):
    for row in range(K):
        x = draw_guided(axes[row, col], gamma, row)
        if row == 0:
            axes[row, col].set_title(f"gamma = {gamma:g}", fontsize=10)
        if row == GUIDE_CLASS:
            w = torch.softmax(tilted_log_density(grid, GUIDE_CLASS, gamma), dim=0)[:, None]
            tilted_point = (w * grid).sum(0)
            tilted_distance = (w[:, 0] * (grid - mixture.means[GUIDE_CLASS]).norm(dim=1)).sum()
            distance = (x - mixture.means[GUIDE_CLASS]).norm(dim=1).mean()
            print(f"gamma = {gamma:>4g}: samples ({x[:, 0].mean():5.2f}, {x[:, 1].mean():5.2f}), distance "
                  f"{distance:.2f} | tilted density ({tilted_point[0]:5.2f}, {tilted_point[1]:5.2f}), distance "
                  f"{tilted_distance:.2f}")
    axes[0, col].set_ylabel("")
for row in range(K):
    axes[row, 0].set_ylabel(f"y = {row}")
show(fig, OUT / "cfg_gammas.png")

# %% [markdown] id="cfg_explore_intro"
# Up to $\gamma = 1$ the samples and the tilted density agree. Beyond it they part: the tilted density hardly moves
# (class 2's mass already sits where the other classes are improbable, so raising $p(y \mid \mathbf{x})$ to a power
# changes little), while the guided samples travel away from the other classes, further with every increase of
# $\gamma$, until at the largest $\gamma$ they lie outside the tilted density altogether (compare the two columns
# printed above). Whatever the guided sampler samples, for $\gamma > 1$ it is not the tilted density. Section 4 says
# why.
#
# **Explore.** Move $\gamma$ and watch the samples of each class leave the region the classes share, and the grey
# contours of the tilted density stay behind.

# %% id="cfg_explore"
def guided_density(gamma: float) -> None:
    fig, axes = plt.subplots(1, K, figsize=(11, 3.8))
    for y, ax in enumerate(axes):
        draw_guided(ax, gamma, y)
        ax.set_title(f"y = {y}", fontsize=10)
    fig.suptitle(f"classifier-free guidance with the exact networks, gamma = {gamma:g} (grey: the tilted density)",
                 y=1.02)
    show(fig, OUT / "cfg_explore.png")


explore(guided_density, gamma=(3.0, 0.0, 10.0, 0.5))

# %% [markdown] id="tilted_intro"
# ## 4. What guidance really samples
#
# The usual story: a guided sampler samples the tilted density $\tilde p_\gamma(\mathbf{x} \mid y) \propto
# p(\mathbf{x})^{1-\gamma}p(\mathbf{x} \mid y)^\gamma$. For $\gamma = 0$ and $\gamma = 1$ this is true. For $\gamma >
# 1$ it is not, and the reason is worth seeing. What guidance gives the sampler at step $t$ is the score of
# $p_t(\mathbf{x})^{1-\gamma}p_t(\mathbf{x} \mid y)^\gamma$, the tilt of the *noised* densities. A sampler returns
# $\tilde p_\gamma$ only if these scores are those of one family of marginals, $\tilde p_\gamma$ pushed through the
# forward process, $\tilde p_{\gamma,t}(\mathbf{x}_t) = \int q(\mathbf{x}_t \mid \mathbf{x}_0)\,\tilde
# p_\gamma(\mathbf{x}_0)\,d\mathbf{x}_0$. Noising is a convolution, and a convolution does not commute with taking
# powers and products of densities: for $\gamma > 1$,
#
# $$p_t(\mathbf{x})^{1-\gamma}\,p_t(\mathbf{x} \mid y)^\gamma \;\not\propto\; \tilde p_{\gamma,t}(\mathbf{x}).$$
#
# The guided score field is still well defined at each $t$, but it is not the score of any forward process, and
# different samplers that would agree on a true one (lesson 3: the reverse SDE, the probability-flow ODE, DDPM)
# now land in different places. Only at $t = 0$ do the two sides agree: there the tilted noised density *is*
# $\tilde p_\gamma$.
#
# The test case (the course repository's `benchmarks/guidance_exact.py` has the same): in 1-D, $p(x) =
# \frac12\mathcal{N}(-1, 0.35^2) + \frac12\mathcal{N}(1, 0.35^2)$, the class the right component, so $p(x \mid y) =
# \mathcal{N}(1, 0.35^2)$, and $\gamma$ = `GAMMA_1D`, with exact networks. The mean and standard deviation of $\tilde
# p_\gamma$ come from a fine grid. The samplers:
#
# - the guided probability-flow ODE, by DDIM with $\eta = 0$ (lesson 4: Euler's method on the ODE);
# - DDPM's ancestral sampler;
# - predictor-corrector (lesson 3) with one and with three Langevin corrector steps at each noise level, the
#   Langevin steps following the same guided score.
#
# Each runs `STEPS_1D` steps (None: all $T$) on `N_1D` points; the cell prints the standard error of a mean from
# that many independent draws, to read the differences against.

# %% id="tilted_table"
STD_1D = 0.35
mixture_1d = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [STD_1D**2, STD_1D**2])
right = GaussianMixture([1.0], [[1.0]], [STD_1D**2])  # p(x | y), y = 1
network_1d = mixture_conditional_eps_model(mixture_1d, schedule)
line = torch.linspace(-5.0, 6.0, 200_001, dtype=F64)[:, None]


def tilted_weights(log_uncond: torch.Tensor, log_cond: torch.Tensor, gamma: float) -> torch.Tensor:
    """p^(1 - gamma) p(. | y)^gamma on the grid `line`, normalised to sum to 1."""
    return torch.softmax((1 - gamma) * log_uncond + gamma * log_cond, dim=0)


def moments(weights: torch.Tensor, points: torch.Tensor = line) -> tuple[float, float]:
    """Mean and sd of the weights (summing to 1) on the grid points (N, 1)."""
    mean = (weights * points[:, 0]).sum()
    return mean.item(), (weights * (points[:, 0] - mean) ** 2).sum().sqrt().item()


tilted = tilted_weights(mixture_1d.log_prob(line), right.log_prob(line), GAMMA_1D)
tilted_mean, tilted_sd = moments(tilted)
SAMPLERS_1D = {"guided ODE (DDIM, eta = 0)": dict(sampler="ddim"), "DDPM (ancestral)": dict(sampler="ddpm"),
               "PC, 1 Langevin step per level": dict(sampler="pc", corrector_steps=1),
               "PC, 3 Langevin steps per level": dict(sampler="pc", corrector_steps=3)}
model_1d = ClassifierFree(network_1d, 1, gamma=GAMMA_1D, num_classes=2)
samples_1d = {}
start = time.perf_counter()
for name, options in tqdm(SAMPLERS_1D.items(), desc=f"guided samplers, gamma = {GAMMA_1D:g}"):
    samples_1d[name] = sample(model_1d, schedule, (N_1D, 1), num_steps=STEPS_1D, dtype=F64,
                              generator=torch.Generator().manual_seed(SEED), **options)[:, 0]
steps_used = T if STEPS_1D is None else STEPS_1D
print(f"gamma = {GAMMA_1D:g}, {N_1D} points, {steps_used} steps, {time.perf_counter() - start:.0f} s; standard error "
      f"of a mean of {N_1D} draws of the tilted density: {tilted_sd / math.sqrt(N_1D):.4f}")
standard_error = tilted_sd / math.sqrt(N_1D)
print(f"{'':>32} {'mean':>6} {'sd':>6}   mean - the tilted density's, in standard errors")
print(f"{'tilted density p^(1-g) p(x|y)^g':>32} {tilted_mean:6.3f} {tilted_sd:6.3f}   (grid)")
print(f"{'conditional p(x | y)':>32} {1.0:6.3f} {STD_1D:6.3f}")
moments_1d = {}
for name, x in samples_1d.items():
    moments_1d[name] = (x.mean().item(), x.std().item())
    print(f"{name:>32} {moments_1d[name][0]:6.3f} {moments_1d[name][1]:6.3f}   "
          f"{(moments_1d[name][0] - tilted_mean) / standard_error:+6.1f}")

# %% [markdown] id="tilted_picture_intro"
# Left: the histograms against $\tilde p_\gamma$ (black) and $p(x \mid y)$ (dashed). Right: the mismatch itself at
# one noise level, the tilted noised density $p_t^{1-\gamma}p_t(\cdot \mid y)^\gamma$ (what the guided score belongs
# to) against the noised tilted density $\tilde p_{\gamma,t}$ (what it would have to be), both on the grid.

# %% id="tilted_picture"
T_MISMATCH = 300
abar = schedule.alpha_bars.to(F64)[T_MISMATCH]
mean_coef, sigma_t = abar.sqrt(), (1 - abar).sqrt()
x_grid = line[::100]  # a coarser grid (spacing 0.0055) for the noised densities
dx_grid = (x_grid[1, 0] - x_grid[0, 0]).item()
tilted_of_noised = tilted_weights(mixture_1d.log_prob(x_grid, mean_coef=mean_coef, std=sigma_t),
                                  right.log_prob(x_grid, mean_coef=mean_coef, std=sigma_t), GAMMA_1D)
# the tilted density pushed through q(x_t | x0) = N(mean_coef x0, sigma_t^2): a sum of Gaussians over the grid's x0
x0_weights = tilted_weights(mixture_1d.log_prob(x_grid), right.log_prob(x_grid), GAMMA_1D)
kernel = torch.distributions.Normal(mean_coef * x_grid[None, :, 0], sigma_t)
noised_of_tilted = (kernel.log_prob(x_grid) + x0_weights.log()[None, :]).logsumexp(dim=1).softmax(dim=0)
mismatch = {"tilted noised density": moments(tilted_of_noised, x_grid),
            "noised tilted density": moments(noised_of_tilted, x_grid)}
print(f"at t = {T_MISMATCH} (alpha_bar_t = {abar:.3f}): " + "; ".join(
    f"{name}: mean {mean:.3f}, sd {sd:.3f}" for name, (mean, sd) in mismatch.items()))

dx = (line[1, 0] - line[0, 0]).item()
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for i, (name, x) in enumerate(samples_1d.items()):
    axes[0].hist(x.numpy(), bins=80, range=(-0.5, 2.5), density=True, histtype="step", color=f"C{i}", label=name)
axes[0].plot(line[:, 0], tilted / dx, "k", lw=1.5, label="tilted density")
axes[0].plot(line[:, 0], right.log_prob(line).exp(), "k--", lw=1, label="p(x | y)")
axes[0].set(xlim=(-0.5, 2.5), title=f"gamma = {GAMMA_1D:g}: samples against the tilted density")
axes[0].legend(fontsize=7)
axes[1].plot(x_grid[:, 0], tilted_of_noised / dx_grid, "C3", label="tilt of the noised densities (the guided score's)")
axes[1].plot(x_grid[:, 0], noised_of_tilted / dx_grid, "k", label="the tilted density, noised")
axes[1].set(xlim=(-2.5, 2.5), title=f"t = {T_MISMATCH}: two densities that guidance confuses")
axes[1].legend(fontsize=7)
show(fig, OUT / "what_guidance_samples.png")

# %% [markdown] id="tilted_read"
# **Reading the table.** The tilted density sits barely to the right of $p(x \mid y)$ and is barely narrower (the
# other component is far away, so tilting changes little). The guided ODE lands far to the right of it and much
# too narrow, dozens of standard errors away or more; DDPM lands in between; predictor-corrector with Langevin steps
# comes close to $\tilde p_\gamma$, within a few standard errors (the last column), with one corrector step per
# level or three. A small bias remains even there (the course repository's benchmark measures it with more samples).
#
# Why this order? At large $t$ the two components of $p_t$ overlap, so $p_t(y \mid \mathbf{x})$ is a gentle slope
# everywhere, and the guided score drags every point to the right with $\gamma$ times that slope, much harder than the
# noised tilted density would (the right panel: at $t$ = `T_MISMATCH` the tilt of the noised densities is shifted right
# of the noised tilted density). The ODE is deterministic: a point pushed too far early keeps its place in the flow, and
# the later, weaker guidance adds to the early push rather than undoing it. A stochastic sampler forgets part of its
# past at every step, and Langevin steps do more: at each level they pull the points towards that level's target, the
# tilted noised density, and at the last levels that target *is* $\tilde p_\gamma$. That is why the order is the ODE
# furthest, DDPM (stochastic, without correctors) in between, and the samplers with Langevin correctors closest (here
# one corrector step per level already does most of it).
#
# This is the content of two recent analyses. Bradley & Nakkiran (2024, "Classifier-free guidance is a
# predictor-corrector") show that guidance acts differently with DDPM and with DDIM, that neither samples $\tilde
# p_\gamma$, and that guided DDPM, in the limit of small steps, *is* a predictor-corrector sampler: a DDIM step of the
# plain conditional model followed by Langevin steps towards a tilted noised density (with the exponent $2\gamma -
# 1$ in place of $\gamma$). Chidambaram et al. (2024, "What does guidance do?") analyse the guided probability-flow ODE
# on mixtures, the setting of this lesson, and prove what section 3's picture and the table show: it does not sample
# the tilted density, and as $\gamma$ grows the samples crowd towards the edge of the class's support, away from the
# other classes; with any error in the scores, a large enough $\gamma$ sends them outside it. The practical reading:
# $\gamma$ is a knob that trades diversity for class fidelity, not the exponent of a known distribution.

# %% [markdown] id="clip_intro"
# ## 5. CLIP guidance
#
# CLIP (Radford et al. 2021) trains an image encoder $f$ and a caption encoder $g$ so that matching pairs have a large
# dot product $f(\mathbf{x})\cdot g(c)$. On a batch of $B$ pairs $(\mathbf{x}_i, c_i)$ the loss is a cross-entropy in
# both directions: each image must pick out its own caption among the batch's captions, and each caption its image,
#
# $$L = -\frac{1}{2B}\sum_i\Big[\log\frac{e^{f(\mathbf{x}_i)\cdot g(c_i)}}{\sum_j e^{f(\mathbf{x}_i)\cdot g(c_j)}}
# + \log\frac{e^{f(\mathbf{x}_i)\cdot g(c_i)}}{\sum_j e^{f(\mathbf{x}_j)\cdot g(c_i)}}\Big].$$
#
# **Its optimum.** In the first cross-entropy an image must pick its caption, drawn from $p(c \mid \mathbf{x})$,
# out of others drawn from the marginal $p(c)$. The best score for that task is the log of the ratio of the two
# densities, $\log p(c \mid \mathbf{x})/p(c)$, plus anything that depends on $\mathbf{x}$ alone (it cancels in the
# softmax over captions): the contrastive predictive coding argument (van den Oord et al. 2018). In the second, a
# caption picks its image, and the best score is $\log p(\mathbf{x} \mid c)/p(\mathbf{x})$ plus anything in $c$
# alone. By Bayes' rule both ratios are the same number, so the two halves agree on
#
# $$f(\mathbf{x})\cdot g(c) = \log\frac{p(\mathbf{x}, c)}{p(\mathbf{x})\,p(c)} + \text{const}
# = \log p(c \mid \mathbf{x}) - \log p(c) + \text{const},$$
#
# the *pointwise mutual information* (PMI) of $\mathbf{x}$ and $c$; with a finite batch this holds only
# approximately. Its gradient in $\mathbf{x}$ is $\nabla\log p(c \mid \mathbf{x})$, since $p(c)$ does not depend on
# $\mathbf{x}$. So CLIP guidance, the guided mean of GLIDE (Nichol et al. 2022) shifted by $\gamma\boldsymbol\Sigma
# \nabla(f\cdot g)$, is classifier guidance with the dot product in place of $\log p(y \mid \mathbf{x})$; and like
# classifier guidance it needs a CLIP trained on noisy $\mathbf{x}_t$ with $t$ as input (GLIDE trained a "noised
# CLIP" for this reason).
#
# `nets.ToyCLIP` is a small such model: a noise-aware encoder $f(\mathbf{x}_t, t)$, a label embedding $g(c)$ (the
# "captions" are the three classes, $c = y$), and a scaled cosine similarity; `guidance.clip_loss` is the loss above
# on noisy data. The cell first checks the optimum with exact critics (no training): on the same batches, the
# loss of the PMI critic $\log p_t(c \mid \mathbf{x}) - \log p(c)$ is compared with that of the plain classifier
# $\log p_t(c \mid \mathbf{x})$, which misses the $-\log p(c)$ term. Then it trains the toy CLIP and compares its
# similarities with the exact PMI, after subtracting at each $\mathbf{x}$ the mean over the captions (which removes
# the constant, and any term in $\mathbf{x}$ alone that a finite batch leaves; neither changes which caption is
# favoured).

# %% id="clip_optimum"
log_prior = mixture.weights.log()


class ExactCritic:
    """similarities(x_t, t, c)[i, j]: the exact PMI log p_t(c_j | x_i) - log p(c_j), or without -log p(c)."""

    def __init__(self, pmi: bool):
        self.pmi = pmi

    def similarities(self, x_t, t, c):
        log_post = torch.stack([log_prob_y(x_t, t, torch.full_like(t, k)) for k in range(K)], dim=1)  # (B, K)
        return (log_post - log_prior if self.pmi else log_post)[:, c]


g = torch.Generator().manual_seed(SEED + 7)
losses = {"PMI": [], "classifier": []}
for _ in range(CLIP_CHECK_BATCHES):
    x0, c = labelled_batch(64, g)
    state = g.get_state()
    for name, critic in (("PMI", ExactCritic(True)), ("classifier", ExactCritic(False))):
        g.set_state(state)  # the same t and noise for both critics
        losses[name].append(clip_loss(critic, schedule, x0, c, generator=g).item())
gap = torch.tensor(losses["classifier"]) - torch.tensor(losses["PMI"])
print(f"contrastive loss over {CLIP_CHECK_BATCHES} batches of 64, exact critics: PMI {np.mean(losses['PMI']):.4f}, "
      f"log p_t(c | x) {np.mean(losses['classifier']):.4f}; the PMI critic is lower by {gap.mean():.4f} "
      f"(standard error {gap.std() / math.sqrt(len(gap)):.4f}, paired)")

start = time.perf_counter()
with torch.random.fork_rng():
    torch.manual_seed(SEED)
    clip = fit(ToyCLIP((2,), K, embed_dim=16, hidden=64).double(), clip_loss, CLASSIFIER_STEPS, SEED + 8, "toy CLIP")
print(f"toy CLIP: {CLASSIFIER_STEPS} steps in {time.perf_counter() - start:.0f} s; its similarities lie within "
      f"+-{clip.log_scale.exp():.1f} (the learned scale of the cosine)")


def centred(scores: torch.Tensor) -> torch.Tensor:
    """Scores (B, K) minus their mean over the captions: what the contrastive loss identifies."""
    return scores - scores.mean(dim=1, keepdim=True)


print("RMS distance of the toy CLIP's centred similarities to the exact centred PMI, and to the centred "
      "log p_t(c | x) (2000 points x_t ~ p_t)")
print(f"{'t':>4} {'to PMI':>7} {'to log p_t(c|x)':>16} {'spread of the PMI':>18}")
for step in (10, 200, 400, 700):
    x0, _ = labelled_batch(2000, g)
    t = torch.full((2000,), step)
    x_t = schedule.alpha_bars.to(F64)[step].sqrt() * x0 + sigma(t) * torch.randn(x0.shape, generator=g, dtype=F64)
    with torch.no_grad():
        learned = centred(torch.stack([clip(x_t, t, torch.full_like(t, k)) for k in range(K)], dim=1))
        log_post = torch.stack([log_prob_y(x_t, t, torch.full_like(t, k)) for k in range(K)], dim=1)
    pmi, post = centred(log_post - log_prior), centred(log_post)
    rms = {name: (learned - ref).pow(2).mean().sqrt().item() for name, ref in (("pmi", pmi), ("post", post))}
    print(f"{step:>4} {rms['pmi']:7.3f} {rms['post']:16.3f} {pmi.pow(2).mean().sqrt():18.3f}")

# %% [markdown] id="clip_guided_intro"
# **Guiding with the toy CLIP.** `ToyCLIP.forward(x_t, t, c)` returns the similarities of a batch with its
# captions, which is exactly the callable `ClassifierGuided` takes in place of $\log p_\phi(y \mid \mathbf{x}_t)$.
# The cell guides the exact unconditional model towards caption 2 with $\gamma = 1$, where a perfect CLIP would give
# $p(\mathbf{x})\,e^{\text{PMI}} = p(\mathbf{x} \mid c)$, and measures the samples as in section 2.

# %% id="clip_guided"
clip_samples = guided(ClassifierGuided(unconditional, clip, GUIDE_CLASS, schedule, gamma=1.0))
clip_sw = sw_to_conditional(clip_samples)
print(f"CLIP guidance, gamma = 1: SW2 to p(x | c={GUIDE_CLASS}) {clip_sw:.3f} (floor {sw_floor:.3f}; noise-aware "
      f"classifier {classifier_sw['noise-aware']:.3f}, unguided {classifier_sw['unguided (gamma = 0)']:.3f})")
fig, ax = plt.subplots(figsize=(3.6, 3.6))
ax.contour(dense, dense, conditional_density, levels=LEVELS * conditional_density.max().item(), colors="0.5",
           linewidths=0.8)
ax.scatter(clip_samples[:, 0], clip_samples[:, 1], s=2, alpha=0.4, color="C4")
ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", xticks=[], yticks=[])
ax.set_title(f"toy CLIP guidance, gamma = 1\nSW2 {clip_sw:.3f}", fontsize=9)
show(fig, OUT / "clip_guidance.png")

# %% [markdown] id="clip_read"
# The exact PMI critic beats the plain classifier on the contrastive loss by many standard errors: the optimum really
# carries the $-\log p(c)$ term. The trained toy CLIP agrees: from the middle of the noise range on (the rows from $t =
# 400$), its centred similarities are much closer to the centred PMI than to the centred $\log p_t(c \mid \mathbf{x})$,
# and at $t = 200$ still somewhat closer (compare the two columns; where the PMI itself is small, at large $t$, the
# difference between the two references is mostly the $\log p(c)$ term). At the smallest $t$ neither column is small:
# deep inside one class the PMI of the other captions falls towards $-\infty$, and a cosine similarity times a scale
# cannot go beyond $\pm$ that scale (printed above). That matters little for guidance, where the gradient that counts is
# the one between the classes. Guided with it, the samples land in class 2; compare their SW2 with the trained
# noise-aware classifier's. GLIDE's comparison on real captions went the other way for quality: people preferred
# classifier-free guidance to CLIP guidance, which, like any classifier guidance, follows an input gradient that can be
# adversarial.

# %% [markdown] id="digits_intro"
# ## 6. Conditional digits: one network, guided
#
# Now a trained network: a U-Net on the $8\times 8$ digits, conditional on the class, trained with label dropout 0.1
# (`TrainConfig(num_classes=10, label_dropout=0.1)`, the trainer of lesson 2; in full mode the demo's run), so the same
# network is also the unconditional model. The run is saved in `outputs/05_guidance/`; run again with the same
# settings, the cell loads it instead of training.

# %% id="digits_train"
digits_config = TrainConfig(dataset="digits", num_classes=10, label_dropout=0.1, steps=DIGITS_STEPS,
                            batch_size=64 if FAST else 128, lr=2e-3, warmup_steps=min(200, DIGITS_STEPS // 5),
                            ema_decay=0.99 if FAST else 0.995, model=dict(DIGITS_MODEL), seed=SEED,
                            checkpoint_every=500)


def cached_run(config: TrainConfig, name: str):
    """The run of config in OUT / name (name_fast in fast mode): trained there, or loaded when the folder holds a run
    of the same config (resumed if it stopped early). A cached run this version of the package cannot read is
    trained afresh."""
    folder = OUT / (f"{name}_fast" if FAST else name)
    saved = folder / "config.json"
    cached = (folder / "checkpoint.pt").is_file() and saved.is_file() and (
        json.loads(saved.read_text()) == json.loads(json.dumps(dataclasses.asdict(config))))
    start = time.perf_counter()
    try:
        result = train(config, out=folder, resume=cached, progress=True)
    except (ValueError, RuntimeError) as error:
        print(f"the cached run could not be resumed ({type(error).__name__}: {error}); training afresh")
        cached = False
        result = train(config, out=folder, resume=False, progress=True)
    print(("loaded the cached run" if cached else f"trained {config.steps} steps") +
          f" in {time.perf_counter() - start:.0f} s ({folder.name}); "
          f"{sum(p.numel() for p in result.ema_model.parameters()) / 1e6:.2f}M parameters")
    return result


torch.set_num_threads(UNET_THREADS)  # a U-Net: more threads help on idle cores
result = cached_run(digits_config, "conditional_digits")
digits_network = as_eps_model(result.ema_model.eval(), result.schedule)  # network(x_t, t, y), y == 10: no label
digits_schedule = result.schedule
digit_classifier = digits_classifier()  # the course's digits classifier (machinery.metrics), cached after one training
print(f"digits classifier's accuracy on real test digits: {digit_classifier.test_accuracy:.3f}")


def digits_samples(gamma: float, y: torch.Tensor, seed: int = SEED, threshold: str | None = None) -> torch.Tensor:
    """DDIM samples of class y with classifier-free guidance gamma; optionally thresholded (static or dynamic)."""
    model = ClassifierFree(digits_network, y, gamma=gamma, num_classes=10)
    if threshold is not None:
        model = Thresholded(model, digits_schedule, method=threshold)
    with torch.no_grad():
        return sample(model, digits_schedule, (len(y), 1, 8, 8), sampler="ddim", num_steps=DIGITS_SAMPLER_STEPS,
                      generator=torch.Generator().manual_seed(seed))


def digit_grid(ax, x: torch.Tensor, rows: int, title: str) -> None:
    """x (rows * cols, 1, 8, 8) as a picture, one row per block of cols images, clipped to [-1, 1], with a grey
    border around each image."""
    cols = len(x) // rows
    padded = torch.nn.functional.pad(x.clamp(-1, 1), (1, 1, 1, 1), value=0.0)  # (N, 1, 10, 10)
    tiles = padded.reshape(rows, cols, 10, 10).permute(0, 2, 1, 3).reshape(rows * 10, cols * 10)
    ax.imshow(tiles, cmap="gray", vmin=-1, vmax=1)
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)


# %% [markdown] id="digits_grid_intro"
# **Digits per class and $\gamma$.** Each panel is one $\gamma$; its rows are the classes 0-9, each row the same
# starting noises (DDIM, `DIGITS_SAMPLER_STEPS` steps).

# %% id="digits_grid"
GRID_GAMMAS = (0.0, 1.0, 3.0)
per_row = 6
y_grid = torch.arange(10).repeat_interleave(per_row)
fig, axes = plt.subplots(1, len(GRID_GAMMAS), figsize=(3.2 * len(GRID_GAMMAS), 5.4))
for ax, gamma in zip(axes, tqdm(GRID_GAMMAS, desc="digit grids"), strict=True):
    digit_grid(ax, digits_samples(gamma, y_grid), 10, f"gamma = {gamma:g}")
fig.suptitle("classifier-free guidance on the digits: rows are the classes 0-9", y=1.0)
show(fig, OUT / "digits_by_gamma.png")

# %% [markdown] id="digits_curve_intro"
# **Accuracy against diversity.** For each $\gamma$, `PER_CLASS` samples of every class, measured with the course's
# digits classifier (`machinery.metrics`): the *accuracy* is the share of samples the classifier assigns to the class
# they were drawn for (real test digits score the classifier's test accuracy, printed above), the *diversity* is,
# per class, the total variance of the samples' classifier features over that of the real test digits of the class,
# averaged over the classes (1: as varied as real digits). Samples are clipped to $[-1, 1]$ before measuring.

# %% id="digits_curve"
y_curve = torch.arange(10).repeat_interleave(PER_CLASS)
curve = {}
start = time.perf_counter()
for gamma in tqdm(DIGIT_GAMMAS, desc="accuracy and diversity"):
    x = digits_samples(gamma, y_curve).clamp(-1, 1)
    curve[gamma] = (class_accuracy(x, y_curve, digit_classifier), class_diversity(x, y_curve, digit_classifier))
print(f"{PER_CLASS} samples per class, {time.perf_counter() - start:.0f} s")
print(f"{'gamma':>6} {'accuracy':>9} {'diversity':>10}")
for gamma, (accuracy, diversity) in curve.items():
    print(f"{gamma:>6g} {accuracy:9.3f} {diversity:10.3f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
gammas = list(curve)
axes[0].plot(gammas, [curve[gm][0] for gm in gammas], "o-", label="accuracy")
axes[0].plot(gammas, [curve[gm][1] for gm in gammas], "s-", label="diversity")
axes[0].axhline(1.0, color="0.6", lw=0.8, ls="--")
axes[0].set(xlabel="gamma", title="class accuracy and diversity against gamma")
axes[0].legend(fontsize=8)
axes[1].plot([curve[gm][1] for gm in gammas], [curve[gm][0] for gm in gammas], "o-")
for gm in gammas:
    axes[1].annotate(f"{gm:g}", (curve[gm][1], curve[gm][0]), textcoords="offset points", xytext=(4, 4), fontsize=8)
axes[1].set(xlabel="diversity", ylabel="accuracy", title="the trade-off (labels: gamma)")
show(fig, OUT / "digits_accuracy_diversity.png")

# %% [markdown] id="digits_curve_read"
# At $\gamma = 0$ the label is ignored: accuracy near chance (one in ten) and diversity far above 1, since each
# "class" holds every digit. As $\gamma$ grows, accuracy rises and diversity falls: the trade-off of guidance, the
# lecture's "better individual samples, less variety". In the full run $\gamma = 1$, the plain conditional model,
# already reaches nearly the classifier's accuracy on real digits with about real diversity; every larger $\gamma$
# buys the last few percent of accuracy with a large loss of variety (the digits of one class start to look alike:
# compare the columns of the grids). In fast mode the network has seen only `DIGITS_STEPS` batches, its digits are
# barely legible, and guidance has more to do: accuracy keeps rising with $\gamma$ well past 1.

# %% [markdown] id="threshold_intro"
# **Saturation and thresholding.** A guided $\hat{\boldsymbol\epsilon}$ extrapolates beyond anything the network
# was trained to output, and the implied prediction $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sigma_t
# \hat{\boldsymbol\epsilon})/\sqrt{\bar\alpha_t}$ leaves the data's range $[-1, 1]$. Each step moves towards that
# $\hat{\mathbf{x}}_0$, so the samples come out with pixels far outside the range, which clipping at the end turns
# into flat, saturated black and white. Imagen (Saharia et al. 2022) fixes $\hat{\mathbf{x}}_0$ at every step:
#
# - *static thresholding*: clip $\hat{\mathbf{x}}_0$ to $[-1, 1]$;
# - *dynamic thresholding*: per sample, let $\kappa$ be the 99.5th percentile of $|\hat{\mathbf{x}}_0|$, raised to at
#   least 1; clip $\hat{\mathbf{x}}_0$ to $[-\kappa, \kappa]$ and divide by $\kappa$. A sample with a few extreme
#   pixels is clipped, one that overshoots everywhere is scaled back into range, and one inside the range is left
#   alone.
#
# `Thresholded(eps_model, schedule, method="static" | "dynamic")` does this as a wrapper: $\boldsymbol\epsilon \to
# \hat{\mathbf{x}}_0$, threshold, back to the $\boldsymbol\epsilon$ that gives the thresholded $\hat{\mathbf{x}}_0$
# at the same $\mathbf{x}_t$, so any sampler steps towards it. The cell first shows the two functions on a made-up
# $\hat{\mathbf{x}}_0$, then samples at $\gamma$ = `GAMMA_HIGH` without and with each, and prints the share of
# pixels of the raw samples outside $[-1, 1]$ and, after clipping, the share of pixels at $-1$ or $1$, the total
# variation distance between the samples' histogram over the digits' 17 grey levels and the real digits' (0: the
# same mix of black, grey and white; 1: nothing in common), accuracy and diversity.

# %% id="threshold"
example = torch.tensor([[[[-3.0, -1.2, -0.5, 0.0, 0.4, 0.9, 1.5, 2.5]]]])  # one (1, 1, 1, 8) "x0 prediction"
print("x0_hat:                           ", [round(v, 3) for v in example.flatten().tolist()])
print("static_threshold:                 ", [round(v, 3) for v in static_threshold(example).flatten().tolist()])
print("dynamic_threshold (quantile 0.995):", [round(v, 3) for v in dynamic_threshold(example).flatten().tolist()])

def level_histogram(x: torch.Tensor) -> torch.Tensor:
    """The shares of the pixels at each of the digits' 17 grey levels v / 8 - 1 (samples rounded to the nearest)."""
    levels = ((x.clamp(-1, 1) + 1) * 8).round().long().flatten()
    return torch.bincount(levels, minlength=17).double() / len(levels)


real_levels = level_histogram(load_digits("test")[0])
threshold_rows = {}
for name, method in tqdm([("no thresholding", None), ("static", "static"), ("dynamic", "dynamic")],
                         desc=f"gamma = {GAMMA_HIGH:g}"):
    raw = digits_samples(GAMMA_HIGH, y_curve, threshold=method)
    x = raw.clamp(-1, 1)
    threshold_rows[name] = dict(outside=(raw.abs() > 1 + 1e-4).double().mean().item(),  # beyond rounding
                                saturated=(x.abs() >= 0.99).double().mean().item(),
                                tv=0.5 * (level_histogram(x) - real_levels).abs().sum().item(),
                                accuracy=class_accuracy(x, y_curve, digit_classifier),
                                diversity=class_diversity(x, y_curve, digit_classifier), x=x)
real_saturated = real_levels[[0, 16]].sum().item()
print(f"gamma = {GAMMA_HIGH:g}, {PER_CLASS} samples per class; real test digits: {real_saturated:.3f} of the pixels "
      "at -1 or 1 (mostly the black background)")
print(f"{'':>16} {'outside [-1,1]':>15} {'at -1 or 1':>11} {'TV to real levels':>18} {'accuracy':>9} "
      f"{'diversity':>10}")
for name, row in threshold_rows.items():
    print(f"{name:>16} {row['outside']:15.3f} {row['saturated']:11.3f} {row['tv']:18.3f} {row['accuracy']:9.3f} "
          f"{row['diversity']:10.3f}")

fig, axes = plt.subplots(1, 3, figsize=(9.6, 5.4))
show_rows = torch.cat([torch.arange(k * PER_CLASS, k * PER_CLASS + per_row) for k in range(10)])
for ax, (name, row) in zip(axes, threshold_rows.items(), strict=True):
    digit_grid(ax, row["x"][show_rows], 10, f"{name}\nTV to real grey levels {row['tv']:.2f}")
fig.suptitle(f"gamma = {GAMMA_HIGH:g}: without and with thresholding", y=1.0)
show(fig, OUT / "thresholding.png")
torch.set_num_threads(THREADS)

# %% [markdown] id="threshold_read"
# Without thresholding, at this $\gamma$ a large share of the raw pixels lies outside $[-1, 1]$: the guided
# $\hat{\mathbf{x}}_0$ overshoots at every step, and only the final clipping brings the picture back into range.
# Static thresholding keeps every $\hat{\mathbf{x}}_0$, and so every sample, inside the range (nothing is left
# outside). Dynamic thresholding does too, but look at what it does to *these* data: an $8\times 8$ digit is mostly
# background at exactly $-1$ with strokes near $1$, so when the prediction overshoots, the 99.5th percentile
# $\kappa$ is large, and dividing by it turns the black background grey ($-1 \to -1/\kappa$): almost no pixel is
# left at $-1$ or $1$, and the grey-level histogram moves far from the real digits' (compare the TV column, and the
# real digits' share at $-1$ or $1$). On photographs, which rarely sit at the range limits, the same rescaling keeps
# overshooting colours from flattening into saturated patches, which is why Imagen found it essential at large
# guidance weights. Which thresholding helps depends on the data; and thresholding only makes sense where the data
# have a known range (pixels, not the latents of latent diffusion).

# %% [markdown] id="cascades"
# ## 7. Cascades and noise conditioning augmentation
#
# A *cascade* splits generation by resolution (Ho et al. 2021, "Cascaded diffusion models", CDM; Imagen and SR3
# use the same idea). Write $\mathbf{z} = D(\mathbf{x})$ for the image averaged down to a low resolution, here
# $4\times 4$ pixels, each the mean of a $2\times 2$ block of the $8\times 8$ digit (`cascade.downsample`). Then
#
# $$p(\mathbf{x}) = \int p(\mathbf{x} \mid \mathbf{z})\, p(\mathbf{z})\, d\mathbf{z},$$
#
# and each factor is learnt by an ordinary diffusion model: a *base* model samples $\mathbf{z}$, and a
# *super-resolution* (SR) model samples $\mathbf{x}$ given $\mathbf{z}$. The SR network sees $\mathbf{z}$ upsampled
# to $8\times 8$ (`cascade.upsample`, bilinear) and concatenated to $\mathbf{x}_t$ as a second channel; otherwise it
# is the U-Net of lesson 2, trained with $L_\text{simple}$ on pairs $(\mathbf{x}_0, D(\mathbf{x}_0))$ made from the
# training digits. At larger sizes the split pays: the base model spends its capacity on the layout, the SR model
# on local detail, and each can be sized and sampled on its own.
#
# This section uses the package (`ddpm_scratch.cascade`, and `TrainConfig(low_resolution=4)` to train an SR stage;
# `ddpm-scratch cascade` runs the same from the command line).

# %% id="cascade_pairs"
test_digits = load_digits("test")[0][:8]
z_real = downsample(test_digits, 4)  # (8, 1, 4, 4)
fig, axes = plt.subplots(3, 1, figsize=(6, 2.6))
shown = {"x: test digits (8x8)": test_digits,
         "z = D(x): 4x4 block means (shown as blocks)": torch.nn.functional.interpolate(z_real, size=8),
         "upsample(z): what the SR network reads": upsample(z_real, 8)}
for ax, (title, images) in zip(axes, shown.items(), strict=True):
    digit_grid(ax, images, 1, title)
fig.tight_layout()
show(fig, OUT / "cascade_pairs.png")

# %% [markdown] id="cascade_mismatch"
# **The train/test mismatch.** The SR model is trained on $\mathbf{z}$ made from *real* digits, but in the cascade it
# receives the base model's *samples*, with their own small errors. A network that has only ever seen real
# $\mathbf{z}$ trusts every detail of its input, and copies the base model's errors into the full image.
#
# *Noise conditioning augmentation* (CDM Sec. 3) removes the mismatch. In training, $\mathbf{z}$ is corrupted at a
# level $s$ drawn uniformly in $[0, s_\text{max}]$, one per example, and $s$ is given to the network as a second
# scalar input, embedded like $t$ (`nets.UNet(aug_level_conditioning=True)`). In the cascade, the base sample is
# corrupted at a chosen $s$ and the same $s$ is passed. The corruption hides the fine details where real and
# generated $\mathbf{z}$ differ, so the two look alike to the SR model, and the network, told how much was hidden,
# fills the details in from what it learnt. Two corruptions (`cascade.augment`):
#
# - Gaussian noise, variance preserving: $\mathbf{z}_s = \sqrt{1 - s^2}\,\mathbf{z} + s\,\boldsymbol\epsilon$, the
#   forward process of lesson 1 at noise level $s$ (CDM's non-truncated augmentation, Imagen's `aug_level`);
# - a Gaussian blur of standard deviation $s$ pixels of $\mathbf{z}$ (CDM used blur at its larger resolutions).
#
# The best $s$ is not known in advance: too little leaves the mismatch, too much throws away what the base model got
# right. CDM picks it after training, by a sweep, as the next cells do.

# %% id="cascade_augment"
levels_shown = (0.0, 0.1, 0.2, 0.4)
fig, axes = plt.subplots(2, len(levels_shown), figsize=(2.2 * len(levels_shown), 2.4))
for j, s in enumerate(levels_shown):
    for i, kind in enumerate(("noise", "blur")):
        z_aug = augment(z_real[:4], s, kind=kind, generator=torch.Generator().manual_seed(SEED))
        digit_grid(axes[i, j], torch.nn.functional.interpolate(z_aug, size=8), 1, f"{kind}, s = {s:g}")
fig.tight_layout()
show(fig, OUT / "cascade_augmentations.png")

# %% [markdown] id="cascade_train_intro"
# Three runs of the trainer, cached in `outputs/05_guidance/` by section 6's `cached_run`: the base model on
# `digits_4x4`, and two SR models on `digits` with `low_resolution=4`, one trained without augmentation and one with
# Gaussian noise augmentation at $s \sim U(0, 0.5)$. Everything else is the same, seeds included.

# %% id="cascade_train"
torch.set_num_threads(UNET_THREADS)  # U-Nets again
cascade_settings = dict(steps=CASCADE_STEPS, batch_size=64 if FAST else 128, lr=2e-3,
                        warmup_steps=min(200, CASCADE_STEPS // 5), ema_decay=0.99 if FAST else 0.995, seed=SEED)
base_args = {**DIGITS_MODEL, "image_size": 4} if DIGITS_MODEL else {}  # {}: digits_4x4's default U-Net
base_run = cached_run(TrainConfig(dataset="digits_4x4", model=base_args, **cascade_settings), "cascade_base")
sr_runs = {kind: cached_run(TrainConfig(dataset="digits", low_resolution=4, augmentation=kind,
                                        model=dict(DIGITS_MODEL), **cascade_settings), f"cascade_sr_{kind}")
           for kind in ("none", "noise")}


def cascade_stage_two(kind: str, z: torch.Tensor, s: float, seed: int = SEED) -> torch.Tensor:
    """x ~ the SR model trained with augmentation `kind`, given z corrupted at level s and told s
    (`cascade.super_resolve`); the same seed gives the same noises at every s."""
    run = sr_runs[kind]
    with torch.no_grad():
        return super_resolve(as_eps_model(run.ema_model.eval(), run.schedule), run.schedule, z, size=8,
                             aug_level=s, kind=kind, sampler="ddim", num_steps=DIGITS_SAMPLER_STEPS,
                             generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


with torch.no_grad():
    z_base = sample(base_run.ema_model.eval(), base_run.schedule, (N_CASCADE, 1, 4, 4), sampler="ddim",
                    num_steps=DIGITS_SAMPLER_STEPS, generator=torch.Generator().manual_seed(SEED + 1))

# %% [markdown] id="cascade_sweep_intro"
# **The sweep.** For each level $s$, the noise-augmented SR model super-resolves the same base samples with the same
# seeds, and the Fréchet distance of the results to the test digits (in the feature space of the course's digits
# classifier, as in lesson 2) measures the cascade. The SR model trained without augmentation has one entry: it never
# saw a level other than 0. Two more rows separate the two sources of error: the same SR models given $\mathbf{z}$
# made from *real* digits (of the train split, so that they are not the test digits the distance compares with: the
# SR stage alone, when its input is right), and the real-vs-real floor.

# %% id="cascade_sweep"
train_digits = load_digits("train")[0]
z_real_train = downsample(train_digits[torch.randperm(len(train_digits), generator=torch.Generator().manual_seed(
    SEED))[:N_CASCADE]], 4)
fd = {(z_name, s): digits_fd(cascade_stage_two("noise", z, s))
      for z_name, z in (("base", z_base), ("real", z_real_train)) for s in CASCADE_LEVELS}
without = {z_name: digits_fd(cascade_stage_two("none", z, 0.0)) for z_name, z in (("base", z_base),
                                                                                  ("real", z_real_train))}
best = min(CASCADE_LEVELS, key=lambda s: fd[("base", s)].fd)
print(f"FD of {N_CASCADE} cascade samples (real-vs-real floor {without['base'].floor:.2f}; the spread over draws of "
      f"the test subset is about {without['base'].fd_std:.2f}, shared by every entry: the same draws)")
print("  s                                 " + "  ".join(f"{s:6g}" for s in CASCADE_LEVELS))
for z_name, label in (("base", "base z, noise-augmented SR"), ("real", "real z, noise-augmented SR")):
    print(f"  {label:32s}  " + "  ".join(f"{fd[(z_name, s)].fd:6.2f}" for s in CASCADE_LEVELS))
print(f"  SR trained without augmentation:  base z {without['base'].fd:.2f}, real z {without['real'].fd:.2f}")
print(f"the gap base z - real z: without augmentation {without['base'].fd - without['real'].fd:+.2f}, with it at "
      f"s = 0 {fd[('base', 0.0)].fd - fd[('real', 0.0)].fd:+.2f}")
print(f"best level s = {best:g}: FD {fd[('base', best)].fd:.2f}, against {without['base'].fd:.2f} without augmentation")

fig, ax = plt.subplots(figsize=(5.5, 3.4))
ax.plot(CASCADE_LEVELS, [fd[("base", s)].fd for s in CASCADE_LEVELS], "o-", label="cascade (base z), noise aug.")
ax.plot(CASCADE_LEVELS, [fd[("real", s)].fd for s in CASCADE_LEVELS], "s--", label="real z, noise aug.")
ax.axhline(without["base"].fd, color="C3", label="cascade, SR without augmentation")
ax.axhline(without["real"].fd, color="C3", ls="--", label="real z, SR without augmentation")
ax.axhline(without["base"].floor, color="gray", ls=":", label="real-vs-real floor")
ax.set(xlabel="augmentation level s at sampling", ylabel="Fréchet distance", title="the sweep over s")
ax.legend(fontsize=7)
show(fig, OUT / "cascade_sweep.png")

# %% id="cascade_stages"
rows = {"base samples z (4x4)": torch.nn.functional.interpolate(z_base[:12], size=8),
        "SR trained without augmentation": cascade_stage_two("none", z_base[:12], 0.0),
        f"SR with noise augmentation, best s = {best:g}": cascade_stage_two("noise", z_base[:12], best)}
fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.5 * len(rows)))
for ax, (title, images) in zip(axes, rows.items(), strict=True):
    digit_grid(ax, images, 1, title)
fig.tight_layout()
show(fig, OUT / "cascade_stages.png")

# %% [markdown] id="cascade_reading"
# How to read the sweep (the numbers are printed above; `benchmarks/cascade_digits.py` measures the same with 1000
# samples per entry, three sampling seeds with standard errors, and blur as well):
#
# - Without augmentation, compare the entries "base z" and "real z": the same SR stage given the base model's samples
#   and given right inputs. Their difference, printed as "the gap", is the price of the train/test mismatch. On these
#   digits it changes from run to run: a $4\times 4$ image has 16 pixels, and the base model gets most of them right
#   (the benchmark, with other seeds and more samples, found the gap within its noise). At the resolutions of CDM and
#   Imagen, base samples are visibly worse than real low-resolution images, and the gap is what their ablations
#   remove.
# - The comparison that held in every run we made, fast and full mode and the benchmark: the cascade with the
#   noise-augmented SR model at its best level has a smaller distance than the cascade without augmentation.
# - Much of that gain is already there at $s = 0$: trained on inputs corrupted at many levels, the SR model leans
#   less on the details of $\mathbf{z}$ and more on what it learnt of digits, even when told that nothing was
#   corrupted. Corrupting at sampling time trades the mismatch against information (it hides what the base model got
#   wrong and what it got right alike), and past a small level the distance grows. The level is a setting chosen after
#   training, like the number of sampling steps; the entry to compare is the one at the best level, as CDM does.
# - In fast mode the models are barely trained and 100 samples give a noisy distance; the full run and the benchmark
#   are the ones to read.


# %% [markdown] id="summary"
# ## What to remember
#
# - Bayes' rule for scores: $\nabla\log p_t(\mathbf{x} \mid y) = \nabla\log p_t(\mathbf{x}) + \nabla\log p_t(y \mid
#   \mathbf{x})$, at every noise level; in network units $\boldsymbol\epsilon(\mathbf{x}_t, t, y) =
#   \boldsymbol\epsilon(\mathbf{x}_t, t) - \sigma_t\nabla\log p_t(y \mid \mathbf{x}_t)$.
# - Guidance scales the classifier term by $\gamma$. Classifier guidance needs a classifier of *noisy* data with $t$
#   as input: a clean-data classifier pushes far too hard early in the reverse process.
# - Classifier-free guidance, $(1-\gamma)\,\boldsymbol\epsilon(\mathbf{x}_t, t) + \gamma\,\boldsymbol\epsilon(
#   \mathbf{x}_t, t, y)$, is classifier guidance with the classifier implied by one network trained with label
#   dropout; two evaluations per step, no input gradients. Papers write $w = \gamma - 1$ (Ho & Salimans) or $s =
#   \gamma$ (Dhariwal & Nichol, diffusers' `guidance_scale`).
# - For $\gamma > 1$ the guided score at each $t$ is that of $p_t^{1-\gamma}p_t(\cdot \mid y)^\gamma$, which is not
#   the noised tilted density: guided samplers do *not* sample $p^{1-\gamma}p(\cdot \mid y)^\gamma$, and different
#   samplers land in different places (the ODE furthest, Langevin correctors closest). $\gamma$ is a fidelity and
#   diversity knob.
# - CLIP's contrastive loss is optimised by the pointwise mutual information (up to terms without $c$); its
#   $\mathbf{x}$-gradient carries $\nabla\log p(c \mid \mathbf{x})$, so CLIP guidance is classifier guidance with the
#   similarity, and needs a noise-aware CLIP.
# - Large $\gamma$ pushes $\hat{\mathbf{x}}_0$ out of the data's range; static thresholding clips it at each step,
#   dynamic thresholding rescales it per sample.
#
# **Problem set 5** (`assignments/ps5_guidance`) has you write the variants the package leaves out: guidance towards
# several conditions at once, classifier guidance for a network that predicts $\mathbf{x}_0$ instead of
# $\boldsymbol\epsilon$, dynamic thresholding for a network that predicts $\mathbf{v}$, and, on paper, what the
# guidance scale targets. Its tests check them against exact mixtures like this lesson's.
#
# ## What to try
#
# 1. In section 2, raise `GUIDED_STEPS` to 200. How much of the exact classifier's distance to the floor goes? Then
#    train the noise-aware classifier for fewer steps (`CLASSIFIER_STEPS = 50`): which $t$ of the gradient table
#    suffers first, and how much does the guided SW2 lose?
# 2. In section 3, guide class 0 with $\gamma = 10$ and compare the samples with the tilted density's contours.
#    Which way are they pushed, and why (think of $p(y \mid \mathbf{x})^{\gamma - 1}$)?
# 3. In section 4, set `GAMMA_1D = 1.0`. Do all four samplers now agree with the conditional $\mathcal{N}(1,
#    0.35^2)$? Then try `GAMMA_1D = 6.0`: how do the gaps grow?
# 4. In section 4, run the PC sampler with fewer steps but more corrector steps (say `STEPS_1D = 100` and
#    `corrector_steps=5`). Is the number of Langevin steps at the last levels what matters?
# 5. In section 6, lower `GAMMA_HIGH` until thresholding stops making a difference. Where does $\hat{\mathbf{x}}_0$
#    start to leave the range?
#
# **Where the code lives:** `ddpm_scratch/guidance.py` (every guidance wrapper, the thresholds, the exact mixture
# references), `ddpm_scratch/nets/classifier.py` (`NoisyClassifier`), `ddpm_scratch/nets/clip.py` (`ToyCLIP`),
# `ddpm_scratch/losses.py` (`drop_labels`), `ddpm_scratch/machinery/train.py` (conditional training with label
# dropout), `ddpm_scratch/machinery/metrics.py` (`class_accuracy`, `class_diversity`). In the course repository (not
# in the student edition): `benchmarks/guidance_exact.py`, `benchmarks/guidance_digits.py`,
# `benchmarks/guidance_cost.py`.
