# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 6 — discrete-state diffusion: noise on categories, generation by de-masking
#
# Every model so far added Gaussian noise to real numbers. Much of what one would like to generate is not made of real
# numbers: the characters of a text, the labels of a segmentation map, the tokens of a discrete image encoder, and even
# the pixels of our digits, which take 17 grey levels and nothing in between. This lesson builds diffusion on such
# *categories* the way Austin et al. (2021, "Structured denoising diffusion models in discrete state-spaces", D3PM) do:
# the forward process becomes a Markov chain on the categories, written with transition matrices, and everything of
# lessons 1-2 (the jump to step $t$, the posterior, the bound, the $\mathbf{x}_0$-predicting network) carries over.
#
# 1. why Gaussian noise does not fit categories;
# 2. transition matrices: the uniform, absorbing (mask) and discretised-Gaussian kernels, their products and their
#    stationary distributions;
# 3. the forward process on a digit, and the marginals $q(x_t)$ converging to the stationary law;
# 4. the reverse process: the posterior by Bayes' rule, a network that predicts $x_0$, what a factorised reverse step
#    can and cannot do (an exact model of a small data law), the bound and the hybrid loss;
# 5. categorical digits: networks trained with the absorbing and the uniform kernel, their samples and reverse
#    processes;
# 6. masking as generation by de-masking: the order in which pixels appear, and MaskGIT's confidence-ordered
#    unmasking against ancestral sampling;
# 7. text: a toy grammar, a small Transformer trained in chunks, its samples as training goes on;
# 8. likelihood across units: the discrete bound beside the Gaussian model's bound and ODE likelihood, in bits per
#    dimension on the same 17-level digits;
# 9. discrete encodings, the bridge to latent models.
#
# Sections 1-4 use no trained network: matrices, enumeration and a small data law whose exact reverse model is
# computed in closed form, so that nothing but the method can go wrong. Sections 5-8 train networks (two on the digits,
# one on text), through the course's one training loop.
#
# **Notation.** Each symbol keeps one meaning in this lesson; where a paper uses another, it says so.
#
# - $K$: the number of data categories (17 grey levels for the digits, 24 characters for the text); $K'$ the number
#   of states of $x_t$: $K$, or $K + 1$ for the absorbing kernel, whose extra state is the mask $m$ (the package puts it
#   last, index $K$; D3PM's image code uses the grey value 128 instead, its text code an extra last token).
# - $x_t \in \{0, \dots, K'-1\}$: the state of *one* pixel or character at step $t$; in matrix formulas the same
#   $x_t$ is its one-hot **row** vector. $\mathbf{x}_t$ (bold): a whole image or sentence, $D$ such states.
# - $\mathbf{Q}_t$: the one-step transition matrix, $[\mathbf{Q}_t]_{ij} = q(x_t = j \mid x_{t-1} = i)$; every row is a
#   distribution. $\bar{\mathbf{Q}}_t = \mathbf{Q}_1\mathbf{Q}_2\cdots\mathbf{Q}_t$, so $q(x_t \mid x_0) =
#   \mathrm{Cat}(x_t;\, x_0\bar{\mathbf{Q}}_t)$.
# - $\beta_t$: the probability that step $t$ redraws the state (uniform and absorbing kernels) or the width of the
#   discretised Gaussian; $\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)$, the probability that $x_0$ was never redrawn.
#   (In lessons 1-5 $\bar\alpha_t$ was the share of the signal's variance; D3PM and the lecture reuse the letter.)
# - $\boldsymbol\pi$: the stationary distribution, a row vector with $\boldsymbol\pi\mathbf{Q}_t = \boldsymbol\pi$.
# - $\tilde p_\theta(x_0 \mid \mathbf{x}_t)$: the network's prediction of the clean category of each position;
#   $p_\theta(x_{t-1} \mid \mathbf{x}_t)$ the reverse step built from it.
# - $L_{t-1}$, $L_T$, $L_\text{vb}$: the terms of the variational bound and their sum, as in lesson 2; $\lambda$: the
#   weight of the cross-entropy in D3PM's hybrid loss (lesson 3's $\lambda(t)$, a weight over times, does not appear).
# - $\gamma(r)$: MaskGIT's mask schedule, the share of tokens still masked after a fraction $r$ of the steps (not
#   lesson 5's guidance scale, which does not appear here). $H$: an entropy in bits; TV: total variation distance.
#
# Package modules used: `ddpm_scratch.discrete` (the kernels, the process, the posterior, the hybrid loss, the bound
# and both samplers), `ddpm_scratch.nets` (`CategoricalUNet`, `TokenTransformer`),
# `ddpm_scratch.machinery.discrete_training` (`train_discrete`, the digits as categories, pictures with the mask in
# red), `ddpm_scratch.machinery.text` (the toy grammar), `ddpm_scratch.machinery.metrics` (`digits_fd`), and in
# section 1 lesson 1's `schedules` and `forward`. Problem set 6 asks for variants the package leaves out; this lesson
# shows the package's own versions only. With `DDPM_SCRATCH_FAST=1` every cell is shrunk (fewer steps, smaller
# networks, fewer samples); the full run trains the three networks far longer. Measured on two CPU cores: 15-28 s in
# fast mode at a load of 1-2 (34 s at a load of about 5, with other work on the cores); about 16 minutes in full mode
# with one torch thread at a load of 1-3, most of it training (the two digits networks 8 minutes, the text network 4)
# and section 8's bounds (2.5 minutes); a load of 4-5 stretched the same cells to about twice that. Every cell that
# takes more than a few seconds shows a progress bar.

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
THREADS = 1  # torch threads for the small tensors of sections 1-4: a second thread does not pay off
UNET_THREADS = None  # torch threads for the networks (sections 5-8); None: torch's default, one per core. On cores
# that other programs keep busy, 1 can be many times faster than several threads that wait for each other.
T_PICTURES = 1000  # the forward processes of sections 2-3 (matrices only: cheap in both modes)
# 1. Gaussian noise on grey levels
N_ROUNDING = 50 if FAST else 400  # digits whose pixels are noised
# 4. the small data law with an exact reverse model
T_TOY = 40 if FAST else 100
N_TOY = 3000 if FAST else 20_000  # samples per sampler run
TOY_T_VALUES = (5, 20, 40) if FAST else (10, 30, 100, 300)  # T of the exact bounds
# 5-6, 8. categorical digits
T_DIGITS = 50 if FAST else 1000  # D3PM's T in full mode
DIGITS_STEPS = 30 if FAST else 2000  # training steps of each of the two digits networks
DIGITS_BATCH = 32 if FAST else 128
DIGITS_MODEL = (dict(embed_dim=4, base_channels=8, channel_mults=(1,), attention_resolutions=()) if FAST else
                dict(embed_dim=8, base_channels=16, channel_mults=(1, 2), attention_resolutions=()))
SAMPLER_STEPS = 10 if FAST else 100  # ancestral steps of the digits' samples (a respaced process)
N_DIGITS = 64 if FAST else 500  # samples per Frechet distance
MASKGIT_STEPS = (4, 8) if FAST else (4, 8, 16, 32)
MASKGIT_TEMPERATURES = (1.0, 4.5) if FAST else (1.0, 4.5, 20.0)
# 7. text
T_TEXT = 50 if FAST else 1000
TEXT_CHUNKS = (15, 30) if FAST else (500, 1500, 4000)  # training steps at which samples are drawn
TEXT_BATCH = 16 if FAST else 64
TEXT_MODEL = dict(dim=16, depth=1, heads=2) if FAST else dict(dim=64, depth=2, heads=4)
TEXT_SAMPLER_STEPS = 10 if FAST else 100
N_TEXT = 32 if FAST else 300  # samples per grammatical fraction
# 8. likelihood
N_BOUND = 24 if FAST else 360  # test digits (360: all of them, the digits the Gaussian figures were measured on)

# Figures and runs go to outputs/ of the course folder (the one holding lessons/), wherever the notebook was started.
OUT = lesson_output_dir("06_discrete")

# %% id="setup"
import dataclasses
import json
import math
import shutil
import time
from itertools import product

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from tqdm.auto import tqdm

from ddpm_scratch.discrete import (
    KINDS,
    CategoricalDiffusion,
    bound_bits,
    cumulative,
    maskgit_sample,
    prior_kl,
    q_posterior,
    q_probs,
    q_sample,
    sample,
    transition,
    vb_term,
)
from ddpm_scratch.forward import q_sample as gaussian_q_sample
from ddpm_scratch.machinery.data import DIGITS_LEVELS, load_digits
from ddpm_scratch.machinery.discrete_training import (
    DiscreteConfig,
    digits_as_categories,
    load_discrete,
    to_pictures,
    train_discrete,
)
from ddpm_scratch.machinery.metrics import digits_fd
from ddpm_scratch.machinery.notebook import explore, show
from ddpm_scratch.machinery.text import (
    GRAMMAR,
    LENGTH,
    PAD,
    VOCAB,
    all_sentences,
    decode,
    encode,
    is_grammatical,
    load_text,
)
from ddpm_scratch.machinery.viz import image_table
from ddpm_scratch.schedules import NoiseSchedule

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # arithmetic on subnormal floats is very slow on CPUs; round them to 0
UNET_THREADS = UNET_THREADS or torch.get_num_threads()  # read before THREADS is set: the default is one per core
torch.set_num_threads(THREADS)
F64 = torch.float64
K = DIGITS_LEVELS  # 17 grey levels: the digits' categories
KERNEL_COLOURS = {"uniform": "C0", "absorbing": "C3", "gaussian": "C2"}
# show(fig, path) saves a figure and displays it; explore(plot, **controls) adds sliders in a live notebook frontend.


def gen(offset: int = 0) -> torch.Generator:
    """A fresh generator seeded SEED + offset: each cell draws from its own."""
    return torch.Generator().manual_seed(SEED + offset)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """TV distance between two distributions over the last axis: half the L1 distance (0: equal, 1: disjoint)."""
    return 0.5 * (p - q).abs().sum(-1).max().item()


# %% [markdown] id="gaussian_intro"
# ## 1. Why Gaussian noise does not fit categories
#
# Lesson 1's forward process $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1 - \bar\alpha_t}\,
# \boldsymbol\epsilon$ adds real-valued noise. For data on a finite set this has two problems.
#
# - **It leaves the set.** A digit's pixel is one of 17 grey levels $v/8 - 1$; after any noise it is almost surely
#   none of them, and the network, the posterior and the bound all work with densities on $\mathbb{R}^D$. For text
#   it is worse: a character has no position on a line at all. Putting the alphabet in order and adding noise to the
#   index makes "c" a near neighbour of "b" and "d", a structure the language does not have.
# - **Rounding back breaks what made the process useful.** One could round $\mathbf{x}_t$ to the nearest level after
#   every step, giving a Markov chain on the levels. But it is not lesson 1's chain any more: a step moves a pixel
#   only when its noise beats half the distance between levels, so small $\beta_t$ do nothing at all while larger ones
#   hop whole levels, and what the chain reaches after $t$ steps is neither the rounded $q(\mathbf{x}_t \mid
#   \mathbf{x}_0)$ (so there is no jump to step $t$ in closed form) nor, at $t = T$, rounded $\mathcal{N}(0, 1)$ (so
#   there is no known prior to start sampling from).
#
# The cell measures both on `N_ROUNDING` training digits with lesson 1's linear schedule: the share of noisy pixels
# that lie on one of the 17 levels, and for the chain rounded after every step, against the one-step kernel rounded
# once, the share of pixels that differ from $\mathbf{x}_0$ and the TV distance between the two histograms over the
# levels. It then noises a sentence's character indices the same way.

# %% id="gaussian_noise"
schedule = NoiseSchedule.linear(1000)
digits_real = load_digits("train")[0][:N_ROUNDING].double()


def nearest_level(x: torch.Tensor) -> torch.Tensor:
    """Each value rounded to the nearest of the 17 levels v / 8 - 1 (clipped to [-1, 1] first)."""
    return ((x.clamp(-1, 1) + 1) * 8).round() / 8 - 1


def level_histogram(x: torch.Tensor) -> torch.Tensor:
    """The shares of the values at each of the 17 levels (x on the levels)."""
    return torch.bincount(((x + 1) * 8).round().long().flatten(), minlength=K).double() / x.numel()


g = gen(1)
chain = digits_real.clone()
rounding_rows = []
REPORT_AT = (1, 10, 100, 300, 1000)
for t in range(1, schedule.T + 1):
    beta = schedule.betas[t].item()
    chain = nearest_level((1 - beta) ** 0.5 * chain + beta**0.5 * torch.randn(chain.shape, generator=g, dtype=F64))
    if t in REPORT_AT:
        x_t = gaussian_q_sample(schedule, digits_real, torch.full((len(digits_real),), t), generator=g)
        on_levels = ((x_t + 1) * 8 - ((x_t + 1) * 8).round()).abs().lt(1e-9).double().mean().item()
        rounded_once = nearest_level(x_t)
        rounding_rows.append((t, schedule.betas[t].item(), on_levels, (chain != digits_real).double().mean().item(),
                              (rounded_once != digits_real).double().mean().item(),
                              total_variation(level_histogram(chain), level_histogram(rounded_once))))
pure_noise = nearest_level(torch.randn(digits_real.shape, generator=g, dtype=F64))
print(f"{N_ROUNDING} digits, linear schedule, T = {schedule.T}; half the distance between levels: 1/16 = 0.0625")
print(f"{'t':>5} {'sqrt(beta_t)':>12} {'x_t on a level':>15} {'changed: rounded chain':>23} "
      f"{'changed: kernel rounded once':>29} {'TV between the two':>19}")
for t, beta, on_levels, changed_chain, changed_once, tv in rounding_rows:
    print(f"{t:>5} {beta**0.5:12.4f} {on_levels:15.3f} {changed_chain:23.3f} {changed_once:29.3f} {tv:19.3f}")
print(f"at t = T, against rounded N(0, 1): TV of the rounded chain "
      f"{total_variation(level_histogram(chain), level_histogram(pure_noise)):.3f}, of the kernel rounded once "
      f"{total_variation(level_histogram(nearest_level(x_t)), level_histogram(pure_noise)):.3f}")

sentence = "the happy fox sees a cat."
indices = encode([sentence])[:, :len(sentence)].double()
print(f"the sentence {sentence!r}; its characters as indices into {VOCAB!r}")
for noise_std in (0.5, 1.0):
    noisy = (indices + noise_std * torch.randn(indices.shape, generator=g, dtype=F64)).round()
    print(f"indices + N(0, {noise_std:g}^2), rounded: {decode(noisy.clamp(0, len(VOCAB) - 1).long())[0]!r}")

# %% [markdown] id="gaussian_read"
# Not one noisy pixel lies on a level. The chain rounded after every step does almost nothing at first (at $t = 10$
# hardly a pixel has moved, while the kernel has already moved some), then, once $\sqrt{\beta_t}$ nears half a level,
# hops whole levels and changes more pixels than the kernel does; its histogram over the levels parts from the
# rounded kernel's (the last column), and at $t = T$ it is far from rounded $\mathcal{N}(0, 1)$, which the kernel
# rounded once comes close to. The
# sentence's characters turn into their alphabetical neighbours: noise in a made-up order. The way out is to define
# the noise on the categories themselves.

# %% [markdown] id="matrices_intro"
# ## 2. Transition matrices and their stationary distributions
#
# A forward step on $K'$ states is a $K' \times K'$ matrix: $[\mathbf{Q}_t]_{ij} = q(x_t = j \mid x_{t-1} = i)$, so
# with $x_{t-1}$ as a one-hot row, $q(x_t \mid x_{t-1}) = \mathrm{Cat}(x_t;\, x_{t-1}\mathbf{Q}_t)$, and every row of
# $\mathbf{Q}_t$ must be a distribution (nonnegative, summing to 1). A chain of such steps is a product: $q(x_t \mid
# x_0) = \mathrm{Cat}(x_t;\, x_0\bar{\mathbf{Q}}_t)$ with $\bar{\mathbf{Q}}_t = \mathbf{Q}_1\cdots\mathbf{Q}_t$, the
# discrete jump to step $t$. Each pixel (or character) is noised independently with the same matrices. Three
# kernels (`discrete.transition(kind, beta, K)`):
#
# - **uniform**: keep the state with probability $1 - \beta_t$, otherwise draw a new one uniformly from the $K$
#   (possibly the same one): $\mathbf{Q}_t = (1 - \beta_t)\mathbf{I} + \beta_t\mathbb{1}\boldsymbol\pi$, with
#   $\mathbb{1}$ a column of ones and $\boldsymbol\pi = (\frac1K, \dots, \frac1K)$ a row (the lecture's
#   $(1 - \beta_t)\mathbf{I} + \frac{\beta_t}{K}\mathbb{1}\mathbb{1}^\top$).
# - **absorbing**: keep the state with probability $1 - \beta_t$, otherwise replace it by the mask $m$, which never
#   changes again: the same form, with $\boldsymbol\pi$ all mass on the mask. Generation is then *de-masking*.
# - **discretised Gaussian** (ordinal data): move to a nearby level with probability decaying like
#   $\exp(-4(i - j)^2 / ((K-1)^2\beta_t))$, the rest of the row on the diagonal (D3PM appendix A.2.2). Near grey
#   levels are likelier than far ones: the one kernel of the three that knows the levels are ordered.
#
# Since "keep, or redraw from $\boldsymbol\pi$" composed with itself is again of that form, the first two have
# $\bar{\mathbf{Q}}_t = \bar\alpha_t\mathbf{I} + (1 - \bar\alpha_t)\mathbb{1}\boldsymbol\pi$: $x_0$ survives with
# probability $\bar\alpha_t$, otherwise $x_t$ is a draw of $\boldsymbol\pi$. The Gaussian kernel has no such form; its
# $\bar{\mathbf{Q}}_t$ is a stored matrix product. `discrete.cumulative` gives $\bar{\mathbf{Q}}_t$ for every $t$.
#
# **Stationary distributions.** A row vector $\boldsymbol\pi$ with $\boldsymbol\pi\mathbf{Q} = \boldsymbol\pi$ is
# left unchanged by a step. Uniform: the uniform law (every column of $\mathbf{Q}_t$ sums to 1 too). Absorbing: all
# mass on the mask. Gaussian: its matrix is symmetric, so also doubly stochastic, and the uniform law is stationary.
# Whatever $x_0$, $x_0\bar{\mathbf{Q}}_t \to \boldsymbol\pi$ when the kernels mix: $\boldsymbol\pi$ is the prior the
# reverse process starts from, as $\mathcal{N}(\mathbf{0}, \mathbf{I})$ was.
#
# The schedules are D3PM's (`CategoricalDiffusion.default(kind, K, T)`): absorbing $\beta_t = 1/(T - t + 1)$, which
# makes $\bar\alpha_t = 1 - t/T$ (a linearly growing share of masked pixels, all masked at $T$); uniform the cosine
# schedule $\bar\alpha_t = \cos\big(\frac{t/T + 0.008}{1.008}\frac{\pi}{2}\big)$ (not squared, as in D3PM's code);
# Gaussian DDPM's linear $\beta_t$ from $10^{-4}$ to $0.02$. The cell checks, for each kernel on the digits' $K = 17$
# levels and $T$ = `T_PICTURES`: that the rows of every $\mathbf{Q}_t$ are distributions; that `cumulative` equals
# the running product of the one-step matrices; that $\boldsymbol\pi\mathbf{Q}_t = \boldsymbol\pi$ at every $t$; and
# how far the rows of $\bar{\mathbf{Q}}_T$ are from $\boldsymbol\pi$.

# %% id="matrices"
processes = {kind: CategoricalDiffusion.default(kind, K, T_PICTURES) for kind in KINDS}
Q_bars = {kind: cumulative(kind, process.betas, K) for kind, process in processes.items()}  # (T+1, K', K')
print(f"K = {K} levels, T = {T_PICTURES}; every figure is the largest over t = 1..T (and over rows)")
print(f"{'kernel':>10} {'K_prime':>7} {'min entry':>10} {'|row sum - 1|':>14} {'|Qbar - product|':>17} "
      f"{'|pi Q_t - pi|':>14} {'TV(Qbar_T rows, pi)':>20}")
matrix_checks = {}
for kind, process in processes.items():
    running = torch.eye(process.num_states, dtype=F64)  # Q_1 ... Q_t
    worst = dict(min_entry=1.0, row_sum=0.0, product=0.0, stationary=0.0)
    for t in range(1, process.T + 1):
        Q = transition(kind, process.betas[t].item(), K)
        running = running @ Q
        worst["min_entry"] = min(worst["min_entry"], Q.min().item())
        worst["row_sum"] = max(worst["row_sum"], (Q.sum(1) - 1).abs().max().item())
        worst["product"] = max(worst["product"], (running - Q_bars[kind][t]).abs().max().item())
        worst["stationary"] = max(worst["stationary"], (process.pi @ Q - process.pi).abs().max().item())
    worst["tv_T"] = total_variation(Q_bars[kind][-1], process.pi)
    matrix_checks[kind] = worst
    print(f"{kind:>10} {process.num_states:>7} {worst['min_entry']:10.1e} {worst['row_sum']:14.1e} "
          f"{worst['product']:17.1e} {worst['stationary']:14.1e} {worst['tv_T']:20.2e}")

# %% [markdown] id="matrices_picture_intro"
# The matrices as pictures, on a logarithmic colour scale (probabilities below $10^{-4}$ in the darkest colour):
# each row of the figure is one kernel; the first column is one step $\mathbf{Q}_t$ at $t = T/2$, the others the
# cumulative $\bar{\mathbf{Q}}_t$ at growing $t$. Row $i$ of a matrix is where the state $i$ goes.

# %% id="matrices_picture"
T_SHOWN = [T_PICTURES // 10, T_PICTURES // 2, 9 * T_PICTURES // 10, T_PICTURES]
fig, axes = plt.subplots(len(KINDS), 1 + len(T_SHOWN), figsize=(2.3 * (1 + len(T_SHOWN)), 2.4 * len(KINDS)))
norm = LogNorm(vmin=1e-4, vmax=1.0)
for row, (kind, process) in enumerate(processes.items()):
    t_half = T_PICTURES // 2
    panels = [(f"Q_t, t = {t_half}\n(beta_t = {process.betas[t_half].item():.2g})",
               transition(kind, process.betas[t_half].item(), K))]
    panels += [(f"Qbar_t, t = {t}" + ("" if kind == "gaussian" else  # its beta_t is a width: no alpha_bar_t
                                        f"\n(alpha_bar_t = {process.alpha_bars[t].item():.2f})"), Q_bars[kind][t])
               for t in T_SHOWN]
    for ax, (title, matrix) in zip(axes[row], panels, strict=True):
        image = ax.imshow(matrix.clamp_min(1e-4).numpy(), cmap="magma", norm=norm)
        ax.set(xticks=[], yticks=[])
        ax.set_title(title, fontsize=8)
    axes[row, 0].set_ylabel(f"{kind}\n(K' = {process.num_states})", fontsize=9)
fig.colorbar(image, ax=axes, shrink=0.6, label="probability")
fig.suptitle("transition matrices: row i = where state i goes (x_{t-1} = i or x_0 = i)", y=0.93)
show(fig, OUT / "transition_matrices.png")

# %% [markdown] id="matrices_read"
# All three kernels pass: rows are distributions (the absorbing and Gaussian matrices have exact zeros, where a step
# cannot go), `cumulative` agrees with the running product to rounding (for the Gaussian kernel it *is* that
# product, so its zero says nothing), and $\boldsymbol\pi$ is stationary for every $\mathbf{Q}_t$. The pictures show
# the three ways to forget: the uniform kernel fades its diagonal evenly into a flat matrix; the absorbing kernel moves
# mass from the diagonal into the mask's column; the Gaussian kernel widens a band, so a pixel forgets its exact level
# long before it forgets whether it was dark or light. At $t = T$ the first two sit exactly on $\boldsymbol\pi$
# (D3PM's schedules end at $\bar\alpha_T = 0$); the Gaussian kernel is within the printed distance of it, the
# analogue of lesson 1's $L_T$.

# %% [markdown] id="forward_intro"
# ## 3. The forward process on a digit, and the marginals
#
# `discrete.q_sample(process, x0, t)` draws $x_t \sim \mathrm{Cat}(x_0\bar{\mathbf{Q}}_t)$ for every pixel at once
# (`q_probs` gives the rows). The digits become categories with `digits_as_categories`: pixel value $v \in \{0,
# \dots, 16\}$, the grey level $v/8 - 1$ of the Gaussian lessons. `to_pictures` draws categories as grey levels and
# the mask in red. Each row below is one kernel, each column one $t$, with the same digit and the same random numbers
# in every row.

# %% id="forward_digit"
digits_train = digits_as_categories("train")  # (1437, 1, 8, 8) long in 0..16
digit = digits_train[:1]
T_COLUMNS = [0, T_PICTURES // 10, T_PICTURES // 4, T_PICTURES // 2, 3 * T_PICTURES // 4, 9 * T_PICTURES // 10,
             T_PICTURES]
pictures = []
for process in processes.values():
    g = gen(2)  # the same uniform numbers for every kernel
    pictures.append(torch.cat([to_pictures(q_sample(process, digit, t, generator=g), K, process.mask)
                               for t in T_COLUMNS]))
fig, ax = plt.subplots(figsize=(1.1 * len(T_COLUMNS), 1.3 * len(KINDS)))
image_table(ax, torch.stack(pictures), [f"t={t}" for t in T_COLUMNS], list(KINDS))
ax.set_title("x_t ~ q(x_t | x_0) for each kernel (red: the mask)", fontsize=10, pad=18)
show(fig, OUT / "forward_digit.png")

# %% [markdown] id="marginals_intro"
# **The marginals.** Pool all pixels of the training digits: their levels have a histogram $\mathbf{h}$ (most pixels
# are black background, level 0). The level of a random pixel after $t$ steps has the law $q(x_t) = \mathbf{h}\,
# \bar{\mathbf{Q}}_t$, a vector times a matrix. The plot on the left gives its total variation distance to
# $\boldsymbol\pi$ against $t$, for each kernel; on the right the laws themselves at a few steps. For the two "keep
# or redraw" kernels the distance has a closed form, $\mathrm{TV}(q(x_t), \boldsymbol\pi) = \bar\alpha_t\,
# \mathrm{TV}(\mathbf{h}, \boldsymbol\pi)$ (the law is $\bar\alpha_t\mathbf{h} + (1 - \bar\alpha_t)\boldsymbol\pi$),
# which the cell checks.

# %% id="marginals"
histogram = torch.bincount(digits_train.flatten(), minlength=K).double() / digits_train.numel()  # h, (K,)
marginals = {}
for kind, process in processes.items():
    h = torch.cat([histogram, torch.zeros(process.num_states - K, dtype=F64)])  # no pixel starts masked
    marginals[kind] = h @ Q_bars[kind]  # (T+1, K'): q(x_t) for every t
tv_curves = {kind: 0.5 * (m - processes[kind].pi).abs().sum(1) for kind, m in marginals.items()}
for kind in ("uniform", "absorbing"):
    predicted = processes[kind].alpha_bars * tv_curves[kind][0]
    print(f"{kind}: TV(q(x_t), pi) against alpha_bar_t TV(h, pi): largest difference over t "
          f"{(tv_curves[kind] - predicted).abs().max():.1e}")
print("TV(q(x_t), pi) at t = " + ", ".join(str(t) for t in T_SHOWN) + ":")
for kind, curve in tv_curves.items():
    print(f"  {kind:>10}: " + "  ".join(f"{curve[t].item():.2e}" for t in T_SHOWN))

fig, axes = plt.subplots(1, 1 + len(KINDS), figsize=(15, 3.4), gridspec_kw=dict(width_ratios=[1.4, 1, 1, 1]))
for kind, curve in tv_curves.items():
    axes[0].plot(torch.arange(1, T_PICTURES + 1), curve[1:], color=KERNEL_COLOURS[kind], label=kind)
axes[0].set(yscale="log", ylim=(1e-6, 1.5), xlabel="t", ylabel="TV(q(x_t), pi)",
            title="a pixel's law against the stationary law")
axes[0].legend(fontsize=8)
for ax, kind in zip(axes[1:], KINDS, strict=True):
    for i, t in enumerate([0, *T_SHOWN[:3]]):
        law = marginals[kind][t]
        ax.plot(torch.arange(len(law)), law, "o-", ms=3, lw=1, color=f"C{i + 4}", label=f"t = {t}")
    ax.set(yscale="log", ylim=(1e-4, 1.5), xlabel="state" + (" (17 = the mask)" if kind == "absorbing" else ""),
           title=f"{kind}: q(x_t)")
axes[1].legend(fontsize=7)
show(fig, OUT / "marginals.png")

# %% [markdown] id="marginals_read"
# For the uniform and absorbing kernels the distance falls exactly as $\bar\alpha_t$ (the printed check), so the
# schedule alone says how fast the data are forgotten: linearly in $t$ for the absorbing kernel, along the cosine for
# the uniform one. The Gaussian kernel forgets differently: the background's peak at level 0 spreads to the nearby
# dark levels first, and the law flattens from the middle out; its distance falls fastest early on and is not zero at
# $T$ (the printed value at $t = T$). In the absorbing panel, the data's levels keep their shape and shrink as a
# whole while the mask (state 17) takes over; it is the only kernel whose $x_t$ says for sure where the data are
# untouched.
#
# **Explore.** Move $t$: eight training digits noised with each kernel, with the same random numbers.

# %% id="forward_explore"
eight = digits_train[:8]


def forward_at(t: int) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.4))
    rows = [to_pictures(q_sample(process, eight, int(t), generator=gen(3)), K, process.mask)
            for process in processes.values()]
    image_table(ax, torch.stack(rows), [""] * len(eight), [f"{kind}" for kind in KINDS])
    ax.set_title(f"x_t at t = {int(t)} (red: the mask); " + ", ".join(
        f"{kind}: TV to pi {tv_curves[kind][int(t)].item():.3f}" for kind in KINDS), fontsize=9)
    show(fig, OUT / "forward_explore.png")


explore(forward_at, t=(T_PICTURES // 2, 0, T_PICTURES, 10))

# %% [markdown] id="posterior_intro"
# ## 4. The reverse process
#
# **The posterior.** As in lesson 1, the forward process run backwards is intractable, but given $x_0$ it is not: by
# Bayes' rule and the Markov property,
#
# $$q(x_{t-1} \mid x_t, x_0) = \frac{q(x_t \mid x_{t-1})\,q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)}
# = \mathrm{Cat}\Big(x_{t-1};\; \frac{x_t\mathbf{Q}_t^\top \odot x_0\bar{\mathbf{Q}}_{t-1}}
# {x_0\bar{\mathbf{Q}}_t x_t^\top}\Big)$$
#
# (D3PM eq. 3): the column of $\mathbf{Q}_t$ at $x_t$ (how likely each $x_{t-1}$ makes the observed $x_t$) times the
# row of $\bar{\mathbf{Q}}_{t-1}$ at $x_0$ (how likely each $x_{t-1}$ is after $t - 1$ steps from $x_0$), normalised.
# `discrete.q_posterior(process, x_t, t, x0=x0)` computes it from gathered rows and columns, without building any
# product of matrices. The cell checks it the long way, with nothing but the one-step matrices: on $K = 3$ categories
# and $T = 4$ steps (made-up $\beta_t$) it lists every path $x_1, \dots, x_t$ of the chain with its probability,
# sums the paths that pass through each $(x_{t-1}, x_t)$, and divides.

# %% id="posterior_check"
K_SMALL, BETAS_SMALL = 3, torch.tensor([0.0, 0.1, 0.25, 0.4, 0.3], dtype=F64)
posterior_gap = {}
for kind in KINDS:
    small = CategoricalDiffusion(kind, K_SMALL, BETAS_SMALL)
    Q_steps = [None] + [transition(kind, b.item(), K_SMALL) for b in BETAS_SMALL[1:]]
    n, worst = small.num_states, 0.0
    for t in range(1, small.T + 1):
        joint = torch.zeros(K_SMALL, n, n, dtype=F64)  # joint[x0, x_{t-1}, x_t] = sum of the paths' probabilities
        for x0 in range(K_SMALL):
            for path in product(range(n), repeat=t):  # x_1, ..., x_t
                states = (x0, *path)
                probability = math.prod(Q_steps[s][states[s - 1], states[s]].item() for s in range(1, t + 1))
                joint[x0, states[t - 1], states[t]] += probability
        for x0, x_t in product(range(K_SMALL), range(n)):
            if joint[x0, :, x_t].sum() > 0:  # x_t can follow x0
                by_paths = joint[x0, :, x_t] / joint[x0, :, x_t].sum()
                package = q_posterior(small, torch.tensor([[x_t]]), t, x0=torch.tensor([[x0]]))[0, 0]
                worst = max(worst, (by_paths - package).abs().max().item())
    posterior_gap[kind] = worst
print("q(x_{t-1} | x_t, x0): largest difference between q_posterior and the sums over paths, every t, x0, x_t: "
      + ", ".join(f"{kind} {gap:.1e}" for kind, gap in posterior_gap.items()))

# %% [markdown] id="x0_intro"
# **A network that predicts $x_0$.** The reverse step needs $q(x_{t-1} \mid \mathbf{x}_t)$, which depends on the
# unknown data law. D3PM's answer is the one of lesson 2 in categorical form: a network reads the whole noisy
# $\mathbf{x}_t$ and outputs, for each position, a distribution $\tilde p_\theta(x_0 \mid \mathbf{x}_t)$ over the $K$
# clean categories; the reverse step of that position is the posterior averaged over it,
#
# $$p_\theta(x_{t-1} \mid \mathbf{x}_t) = \sum_{x_0} q(x_{t-1} \mid x_t, x_0)\;\tilde p_\theta(x_0 \mid \mathbf{x}_t),$$
#
# which `q_posterior(process, x_t, t, x0=probabilities)` computes (`p_posterior(model, process, x_t, t)` calls the
# network first). D3PM's eq. 4 averages the joints $q(x_{t-1}, x_t \mid x_0)$ instead, which weighs each $x_0$ once
# more by $q(x_t \mid x_0)$; for the absorbing kernel the two coincide. Three things make this parameterisation the
# usual one: the reverse step can only go where the forward process could have come from (an unmasked pixel stays
# as it is; a masked one stays masked or becomes a category); the same prediction serves a jump of any length, since
# $q(x_s \mid x_t, x_0)$ is known for every $s < t$ (so a sampler may take fewer steps: `sample(..., num_steps=...)`);
# and the network gets a direct target, $x_0$ (the hybrid loss below).
#
# **What a factorised step can do.** With the *exact* $p(x_0 \mid \mathbf{x}_t)$ of one position, the formula is the
# exact reverse step of that position, and ancestral sampling returns the data law. But a network outputs one
# distribution per position, and the step draws the positions independently, while the true $q(\mathbf{x}_{t-1} \mid
# \mathbf{x}_t)$ of an image couples them. The cell shows both on a small data law whose exact model is computed by
# enumeration: pairs $(a, b)$ of $K = 4$ categories, strongly correlated ($a = b = 0$, $(1, 3)$, $(3, 1)$ and $(2, 2)$
# carry most of the mass, every other pair a little). `ExactX0` gives, for each position $d$, the exact
# $p(x_0^d \mid \mathbf{x}_t)$: the perfect network. Sampling the first position alone ($D = 1$), then both ($D = 2$)
# with `sample(..., num_steps=n)` for a few $n$, and the TV distance of the samples' histogram to the law, beside the
# TV that `N_TOY` draws of the law itself have (the sampling noise).

# %% id="exact_model"
K_TOY = 4
pair_law = torch.full((K_TOY, K_TOY), 0.01, dtype=F64)
for (a, b), extra in {(0, 0): 0.3, (1, 3): 0.25, (3, 1): 0.2, (2, 2): 0.09}.items():
    pair_law[a, b] += extra
pair_law /= pair_law.sum()
pairs = torch.cartesian_prod(torch.arange(K_TOY), torch.arange(K_TOY))  # (16, 2): every pair (a, b), row-major


class ExactX0:
    """The perfect network of data drawn from `weights` over the rows of `support` (S, D): for each position d, the
    exact p(x0^d | x_t) by enumeration over the support, as logits (B, D, K). t: the process's (training) steps."""

    def __init__(self, process: CategoricalDiffusion, support: torch.Tensor, weights: torch.Tensor):
        self.process, self.support, self.weights = process, support, weights
        self.one_hot = torch.nn.functional.one_hot(support, process.K).to(F64)  # (S, D, K)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = torch.empty(*x_t.shape, self.process.K, dtype=F64)
        positions = torch.arange(x_t.shape[1])
        for step in t.unique().tolist():
            rows = t == step
            # q(x_t^d | x0^d) for every support point s, example b and position d: (S, B, D)
            likelihood = q_probs(self.process, self.support, step)[:, positions, x_t[rows]]
            posterior = self.weights[:, None] * likelihood.prod(-1)  # p(x0 = s | x_t), unnormalised: (S, B)
            posterior = posterior / posterior.sum(0)
            logits[rows] = torch.einsum("sb,sdk->bdk", posterior, self.one_hot).clamp_min(1e-30).log()
        return logits


def pair_histogram(x: torch.Tensor) -> torch.Tensor:
    """The share of each pair (a, b) among the samples x (N, 2), as a (K_TOY, K_TOY) table."""
    return torch.bincount(x[:, 0] * K_TOY + x[:, 1], minlength=K_TOY**2).double().reshape(K_TOY, K_TOY) / len(x)


first_law = pair_law.sum(1)  # p(a)
noise_tv = total_variation(pair_histogram(pairs[torch.multinomial(pair_law.flatten(), N_TOY, replacement=True,
                                                                     generator=gen(4))]).flatten(), pair_law.flatten())
TOY_STEP_COUNTS = (1, 2, 5, 10, T_TOY)
toy_samples, toy_tv = {}, {}
for kind in ("absorbing", "uniform"):
    toy_process = CategoricalDiffusion.default(kind, K_TOY, T_TOY)
    x = sample(ExactX0(toy_process, torch.arange(K_TOY)[:, None], first_law), toy_process, (N_TOY, 1),
               generator=gen(5))
    one_dimension = total_variation(torch.bincount(x[:, 0], minlength=K_TOY).double() / N_TOY, first_law)
    exact_pairs = ExactX0(toy_process, pairs, pair_law.flatten())
    for n in TOY_STEP_COUNTS:
        toy_samples[kind, n] = sample(exact_pairs, toy_process, (N_TOY, 2), num_steps=n, generator=gen(6))
        toy_tv[kind, n] = total_variation(pair_histogram(toy_samples[kind, n]).flatten(), pair_law.flatten())
    print(f"{kind:>9}, T = {T_TOY}: D = 1, all T steps: TV {one_dimension:.4f};  D = 2: " +
          ", ".join(f"{n} steps TV {toy_tv[kind, n]:.4f}" for n in TOY_STEP_COUNTS))
print(f"sampling noise: TV of {N_TOY} draws of the law itself {noise_tv:.4f}")

fig, axes = plt.subplots(1, 1 + len(TOY_STEP_COUNTS), figsize=(2.3 * (1 + len(TOY_STEP_COUNTS)), 2.6))
tables = [("the data law p(a, b)", pair_law)]
tables += [(f"absorbing, {n} step{'s' if n > 1 else ''}\nTV {toy_tv['absorbing', n]:.3f}",
            pair_histogram(toy_samples["absorbing", n])) for n in TOY_STEP_COUNTS]
for ax, (title, table) in zip(axes, tables, strict=True):
    ax.imshow(table, cmap="viridis", vmin=0, vmax=pair_law.max().item())
    ax.set(xticks=range(K_TOY), yticks=range(K_TOY), xlabel="b")
    ax.set_title(title, fontsize=8)
axes[0].set_ylabel("a")
fig.suptitle("samples of the exact factorised model against the law, by number of steps", y=1.05)
show(fig, OUT / "factorised_steps.png")

# %% [markdown] id="exact_model_read"
# With one position the perfect network makes a perfect sampler: the TV is at the level of the sampling noise
# (printed). With two, one step draws $a$ and $b$ independently from their exact marginals, and the correlation of
# the law is lost (the first table after the law is nearly the product of its margins). More steps cure it: in a
# small step few positions change, and a position that changes is drawn given the others as they are at that point,
# so the samples approach the law as the number of steps grows. This is the price of a factorised reverse step, and
# the reason discrete diffusion models are sampled with many steps, or with an order that reveals a few positions at a
# time (section 6).
#
# **The bound and the hybrid loss.** The variational bound of lesson 2 carries over term by term, each now a
# categorical one per position, in nats, averaged over positions (bits per dimension after dividing by $\ln 2$):
#
# $$L_\text{vb} = \underbrace{\mathrm{KL}\big(q(x_T \mid x_0)\,\|\,\boldsymbol\pi\big)}_{L_T}
# + \sum_{t=2}^{T}\underbrace{\mathbb{E}_{q(\mathbf{x}_t \mid \mathbf{x}_0)}\,\mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)
# \,\|\,p_\theta(x_{t-1} \mid \mathbf{x}_t)\big)}_{L_{t-1}}
# \;\underbrace{-\;\mathbb{E}_{q(\mathbf{x}_1 \mid \mathbf{x}_0)}\log p_\theta(x_0 \mid \mathbf{x}_1)}_{L_0}
# \;\ge\; -\log p_\theta(x_0).$$
#
# `vb_term` is one $L_{t-1}$, `prior_kl` is $L_T$ (zero for D3PM's schedules, which end at $\boldsymbol\pi$), and
# `bound_bits` sums all of them with one draw of $\mathbf{x}_t$ per $t$ ($T$ network calls). D3PM trains on the
# *hybrid loss* (their eq. 5),
#
# $$L_\lambda = L_\text{vb} + \lambda\,\mathbb{E}_{t,\;q(\mathbf{x}_t \mid \mathbf{x}_0)}\big[-\log\tilde p_\theta(
# x_0 \mid \mathbf{x}_t)\big],$$
#
# one term $L_{t-1}$ at a random $t$ plus $\lambda$ times the cross-entropy of the network's direct guess of $x_0$
# (`hybrid_loss`, with $\lambda = 0.01$ here; D3PM used 0.001 on images and 0.01 on text). The cross-entropy gives the
# network a target at every position and every $t$, also where the KL barely depends on the prediction (a masked
# pixel at a large $t$, which the next step almost surely leaves masked), and D3PM found it trained better than
# $L_\text{vb}$ alone.
#
# **The bound of the exact model.** For an exact reverse process (and a prior equal to $q(x_T)$, as here) the bound
# is tight: averaged over the data it equals the entropy $H$ of the data law, the smallest value any model can reach.
# With the pairs, the factorised steps cost something, and the bound exceeds $H/2$ per dimension by that cost. On the
# small law nothing needs to be sampled: the cell enumerates every $\mathbf{x}_t$ with its probability $q(\mathbf{x}_t
# \mid \mathbf{x}_0)$ and sums the package's `vb_term` and `prior_kl` exactly, for a few $T$ (the same schedules with
# fewer or more steps), in bits per dimension.

# %% id="exact_bound"
def expected_bound(model, process: CategoricalDiffusion, support: torch.Tensor, weights: torch.Tensor) -> float:
    """E over the data law of L_vb, in bits per dimension, with every x_t enumerated: sum_x0 p(x0) [L_T +
    sum_t sum_{x_t} q(x_t | x0) L_{t-1}(x0, x_t)]."""
    D = support.shape[1]
    states = torch.cartesian_prod(*[torch.arange(process.num_states)] * D).reshape(-1, D)  # every x_t
    x0 = support.repeat_interleave(len(states), 0)
    x_t = states.repeat(len(support), 1)
    nats = prior_kl(process, support).double()  # L_T per x0
    for t in range(1, process.T + 1):
        probability = q_probs(process, x0, t).gather(-1, x_t[..., None])[..., 0].prod(-1)  # q(x_t | x0), (S * S',)
        possible = probability > 0
        terms = torch.zeros_like(probability)
        terms[possible] = vb_term(model, process, x0[possible], x_t[possible], t).double()
        nats = nats + (probability * terms).reshape(len(support), len(states)).sum(1)
    return (weights * nats).sum().item() / math.log(2)


entropy_pairs = -(pair_law * pair_law.log2()).sum().item()
entropy_first = -(first_law * first_law.log2()).sum().item()
print(f"the law's entropy: H(a) = {entropy_first:.4f} bits, H(a, b) / 2 = {entropy_pairs / 2:.4f} bits per dimension")
print(f"{'':>10} {'T':>4} {'bound, D = 1':>13} {'- H(a)':>9} {'bound, D = 2':>13} {'- H / 2':>9}")
exact_bounds = {}
for kind in ("absorbing", "uniform"):
    for T_bound in TOY_T_VALUES:
        toy_process = CategoricalDiffusion.default(kind, K_TOY, T_bound)
        one = expected_bound(ExactX0(toy_process, torch.arange(K_TOY)[:, None], first_law), toy_process,
                             torch.arange(K_TOY)[:, None], first_law)
        two = expected_bound(ExactX0(toy_process, pairs, pair_law.flatten()), toy_process, pairs, pair_law.flatten())
        exact_bounds[kind, T_bound] = (one, two)
        print(f"{kind:>10} {T_bound:>4} {one:13.4f} {one - entropy_first:+9.1e} {two:13.4f} "
              f"{two - entropy_pairs / 2:+9.4f}")

# %% [markdown] id="exact_bound_read"
# With one position the bound equals $H(a)$ to rounding at every $T$: a perfect network makes the discrete bound
# tight, as for any model whose reverse process is the true one. With two positions it stays above $H/2$, by an
# amount that falls roughly in proportion to $1/T$ (compare the rows): the cost of drawing the positions of one step
# independently, which more, smaller steps shrink. A trained network adds its own error on top; section 8 measures
# its bound on the digits.

# %% [markdown] id="digits_intro"
# ## 5. Categorical digits
#
# Now a network. `nets.CategoricalUNet` embeds each state of a pixel (17 levels, and the mask for the absorbing
# kernel) as a vector of `embed_dim` numbers, runs the course's U-Net on those, and outputs 17 logits per pixel:
# $\tilde p_\theta(x_0 \mid \mathbf{x}_t)$. It is trained with the hybrid loss by `train_discrete`
# (`DiscreteConfig(dataset="digits", kernel=..., T=..., lam=0.01)`), through the course's one training loop (AdamW,
# warm-up, EMA, checkpoints). Two runs, the absorbing and the uniform kernel, with the same network, settings and
# seeds; each is saved in `outputs/06_discrete/`, and run again with the same settings the cell loads it instead of
# training (`cached_run`, as in lesson 5).

# %% id="digits_train"
def cached_run(config: DiscreteConfig, name: str):
    """The discrete run of config in OUT / name (name_fast in fast mode): trained there, or loaded when the folder
    holds a run of the same config (resumed if it stopped early, or trained on if config only asks for more steps).
    A cached run this version of the package cannot read is trained afresh."""
    folder = OUT / (f"{name}_fast" if FAST else name)
    saved = folder / "config.json"
    wanted = json.loads(json.dumps(dataclasses.asdict(config)))
    cached, previous = False, {}
    if (folder / "checkpoint.pt").is_file() and saved.is_file():
        previous = json.loads(saved.read_text())
        cached = {**previous, "steps": None} == {**wanted, "steps": None} and previous["steps"] <= config.steps
    start = time.perf_counter()
    try:
        result = train_discrete(config, out=folder, resume=cached, progress=True)
    except (ValueError, RuntimeError) as error:  # UnreadableFile is a ValueError
        print(f"the cached run could not be resumed ({type(error).__name__}: {error}); training afresh")
        cached = False
        shutil.rmtree(folder, ignore_errors=True)
        result = train_discrete(config, out=folder, resume=False, progress=True)
    done = ("loaded the cached run" if cached and previous["steps"] == config.steps else
            f"trained on from the cached run to step {config.steps}" if cached else f"trained {config.steps} steps")
    print(done +
          f" in {time.perf_counter() - start:.0f} s ({folder.name}); "
          f"{sum(p.numel() for p in result.ema_model.parameters()) / 1e6:.2f}M parameters")
    return result


torch.set_num_threads(UNET_THREADS)  # U-Nets: more threads help on idle cores
DIGIT_KINDS = ("absorbing", "uniform")
digits_settings = dict(dataset="digits", T=T_DIGITS, steps=DIGITS_STEPS, batch_size=DIGITS_BATCH, lr=2e-3,
                       warmup_steps=min(200, DIGITS_STEPS // 5), ema_decay=0.99 if FAST else 0.995, seed=SEED,
                       checkpoint_every=500)
digit_runs = {kind: cached_run(DiscreteConfig(kernel=kind, model=dict(DIGITS_MODEL), **digits_settings),
                               f"digits_{kind}") for kind in DIGIT_KINDS}
digit_models = {kind: run.ema_model.eval() for kind, run in digit_runs.items()}


def digit_samples(kind: str, n: int, seed: int, num_steps: int | None = SAMPLER_STEPS, hook=None,
                  x_T: torch.Tensor | None = None) -> torch.Tensor:
    """n ancestral samples (n, 1, 8, 8) long of the kind's network, with num_steps steps (None: all T)."""
    with torch.no_grad():
        return sample(digit_models[kind], digit_runs[kind].process, (n, 1, 8, 8), num_steps=num_steps, hook=hook,
                      x_T=x_T, generator=gen(seed))


def as_images(x: torch.Tensor) -> torch.Tensor:
    """Categories 0..16 -> the grey levels v / 8 - 1 in [-1, 1] of the Gaussian lessons."""
    return x.float() / 8 - 1


# %% [markdown] id="digits_samples_intro"
# **Samples.** `N_DIGITS` samples of each network (ancestral, `SAMPLER_STEPS` evenly spaced steps of the $T$ it was
# trained with, a jump the $x_0$-parameterisation allows), measured by the Fréchet distance to the test digits in the
# feature space of the course's digits classifier (as in lessons 2 and 5), beside the real-vs-real floor.

# %% id="digits_samples"
start = time.perf_counter()
digit_fd, digit_sample_sets = {}, {}
for kind in tqdm(DIGIT_KINDS, desc="samples"):
    digit_sample_sets[kind] = digit_samples(kind, N_DIGITS, seed=10)
    digit_fd[kind] = digits_fd(as_images(digit_sample_sets[kind]))
print(f"{N_DIGITS} samples per network, {SAMPLER_STEPS} steps, {time.perf_counter() - start:.0f} s")
for kind, report in digit_fd.items():
    print(f"{kind:>9}: FD {report.fd:.2f} (floor {report.floor:.2f}, the spread over draws of the test subset "
          f"{report.fd_std:.2f})")
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
panels = {"real test digits": digits_as_categories("test")[:48]}
panels.update({f"{kind}: FD {digit_fd[kind].fd:.2f}": digit_sample_sets[kind][:48] for kind in DIGIT_KINDS})
for ax, (title, x) in zip(axes, panels.items(), strict=True):
    grid = to_pictures(x, K).reshape(6, 8, 3, 8, 8)
    image_table(ax, grid, [""] * 8)
    ax.set_title(title, fontsize=10)
show(fig, OUT / "digits_samples.png")

# %% [markdown] id="digits_reverse_intro"
# **The reverse process.** Three samples of each network from $t = T$ to $0$ (a `hook(x, t)`, as the Gaussian samplers
# take, keeps a copy after every step). The absorbing network starts from an all-mask image and fills pixels in; the
# uniform one starts from uniform noise over the levels and changes pixels until a digit is left.

# %% id="digits_reverse"
STRIP_AT = [round(f * T_DIGITS) for f in (1.0, 0.9, 0.75, 0.6, 0.45, 0.3, 0.15, 0.05, 0.0)]
strips = []


def keeper(kept: dict):
    """A hook that stores a copy of x under its step t in `kept`, and changes nothing."""
    def keep(x: torch.Tensor, t: int) -> torch.Tensor:
        kept[t] = x.clone()
        return x
    return keep


for kind in DIGIT_KINDS:
    process = digit_runs[kind].process
    x_T = (torch.full((3, 1, 8, 8), process.mask) if kind == "absorbing" else
           torch.randint(0, K, (3, 1, 8, 8), generator=gen(11)))
    kept = {T_DIGITS: x_T}
    digit_samples(kind, 3, seed=12, hook=keeper(kept), x_T=x_T)
    nearest = sorted({min(kept, key=lambda s, t=t: abs(s - t)) for t in STRIP_AT}, reverse=True)  # recorded steps
    strips.append(torch.stack([to_pictures(kept[s], K, process.mask) for s in nearest], dim=1))  # (3, columns, ...)
fig, ax = plt.subplots(figsize=(1.0 * len(STRIP_AT), 4.4))
image_table(ax, torch.cat(strips), [f"t={t}" for t in nearest], [f"{kind} {i + 1}" for kind in DIGIT_KINDS
                                                                  for i in range(3)])
ax.set_title("the reverse process of the two networks (red: the mask)", fontsize=10, pad=18)
show(fig, OUT / "digits_reverse.png")

# %% [markdown] id="digits_read"
# Both networks draw digits, from very different starting points (in fast mode they are barely trained, and the
# distance is far above the floor). The two kernels ask different things of the network: the absorbing one commits to
# a pixel once and never revisits it, so an early mistake stays, but every unmasked pixel is known to be clean; the
# uniform one can change any pixel at any step, but it must first tell which pixels of its input are noise and which
# are signal. On CIFAR-10 D3PM found the uniform kernel clearly worse (FID 51.3 against 31.0 for absorbing, their
# Table 3); on these small digits, compare the printed distances. Section 8 compares the two as likelihoods.

# %% [markdown] id="maskgit_intro"
# ## 6. Masking as generation by de-masking
#
# With the absorbing kernel, generation is filling in: every pixel starts as the mask and, at some step, becomes a
# level it keeps. *When* is it unmasked in ancestral sampling? For a masked $x_t = m$ the posterior keeps it masked
# with probability
#
# $$q(x_{t-1} = m \mid x_t = m, x_0) = \frac{q(x_t = m \mid x_{t-1} = m)\,q(x_{t-1} = m \mid x_0)}{q(x_t = m \mid
# x_0)} = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t},$$
#
# the same for every $x_0$. So the network has no say in *when* a pixel appears, only in *what* it becomes: ancestral
# sampling reveals the pixels in a uniformly random order.
#
# MaskGIT (Chang et al. 2022) keeps the filling-in but chooses the order. At step $k$ of $n$ it draws every masked
# pixel from $\tilde p_\theta(x_0 \mid \mathbf{x}_t)$, scores each draw by its log-probability plus Gumbel noise times
# a *temperature* that falls to 0 over the steps, keeps the most confident draws and masks the others again, so that a
# share $\gamma(k/n) = \cos(\frac{\pi}{2}\frac{k}{n})$ of the pixels stays masked: few are revealed at first, many at
# the end (`discrete.maskgit_sample`; MaskGIT's code decodes in 12 steps by default, with a temperature of 4.5 in its
# class-conditional ImageNet setting, $16\times 16$ tokens).
# It needs nothing but a network that predicts $x_0$ from partly masked input, which is what the absorbing network
# is: D3PM showed that its loss is a reweighted masked-token (BERT-style) objective, of the kind MaskGIT trains with
# (MaskGIT draws the masked share from its schedule and weighs every masked token alike).
#
# The cell records, for `N_DIGITS` samples of ancestral sampling (`SAMPLER_STEPS` steps) and of MaskGIT (8 steps, at
# temperatures 1 and 4.5), when each pixel was revealed (as a fraction of the sampler's steps), and shows four samples
# of each with their reveal maps (dark: early, light: late) and the mean reveal time of each pixel position. It also
# prints the share of the pixels revealed in the first quarter of the steps, how many of those are background (level
# 0), and the background's share of the finished samples.

# %% id="maskgit_order"
absorbing_process = digit_runs["absorbing"].process
REVEAL_STEPS = MASKGIT_STEPS[1]  # 8: a short MaskGIT run


def with_reveal_times(draw, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(samples (n, 1, 8, 8), the fraction of the sampler's steps done when each pixel stopped being the mask):
    draw(hook) runs a sampler with that hook."""
    revealed = torch.full((n, 1, 8, 8), float("nan"))
    calls = [0]

    def hook(x: torch.Tensor, t: int) -> torch.Tensor:
        calls[0] += 1
        revealed[(x != absorbing_process.mask) & revealed.isnan()] = calls[0]
        return x

    x = draw(hook)
    return x, revealed / calls[0]


def maskgit_digits(n: int, seed: int, num_steps: int, temperature: float, hook=None) -> torch.Tensor:
    with torch.no_grad():
        return maskgit_sample(digit_models["absorbing"], absorbing_process, (n, 1, 8, 8), num_steps=num_steps,
                              temperature=temperature, hook=hook, generator=gen(seed))


orders = {"ancestral": with_reveal_times(lambda hook: digit_samples("absorbing", N_DIGITS, seed=13, hook=hook),
                                         N_DIGITS)}
for temperature in MASKGIT_TEMPERATURES[:2]:
    orders[f"MaskGIT, {REVEAL_STEPS} steps, temperature {temperature:g}"] = with_reveal_times(
        lambda hook, temperature=temperature: maskgit_digits(N_DIGITS, 13, REVEAL_STEPS, temperature, hook=hook),
        N_DIGITS)
print(f"{'':>38} {'revealed in the first quarter':>30} {'of which background':>20} {'background overall':>19}")
for name, (x, revealed) in orders.items():
    first = revealed <= 0.25
    print(f"{name:>38} {first.double().mean():30.2f} {(x[first] == 0).double().mean():20.2f} "
          f"{(x == 0).double().mean():19.2f}")

fig, axes = plt.subplots(len(orders), 9, figsize=(13, 1.8 * len(orders)),
                         gridspec_kw=dict(width_ratios=[1] * 8 + [1.3]))
for row, (name, (x, revealed)) in enumerate(orders.items()):
    for i in range(4):
        axes[row, 2 * i].imshow(as_images(x[i, 0]), cmap="gray", vmin=-1, vmax=1)
        axes[row, 2 * i + 1].imshow(revealed[i, 0], cmap="viridis", vmin=0, vmax=1)
    image = axes[row, 8].imshow(revealed.mean(0)[0], cmap="viridis", vmin=0, vmax=1)
    axes[row, 8].set_title("mean over samples", fontsize=8)
    axes[row, 0].set_title(name, fontsize=9, loc="left")
    for ax in axes[row]:
        ax.set(xticks=[], yticks=[])
fig.colorbar(image, ax=axes, shrink=0.7, label="when revealed (fraction of the steps)")
show(fig, OUT / "reveal_order.png")

# %% [markdown] id="maskgit_quality_intro"
# **Steps, temperature and quality.** The same network sampled both ways with few steps: the Fréchet distance of
# `N_DIGITS` samples for ancestral sampling and for MaskGIT at each number of steps in `MASKGIT_STEPS` (one network
# call per step for both) and each temperature in `MASKGIT_TEMPERATURES`.

# %% id="maskgit_quality"
start = time.perf_counter()
quality = {("ancestral", None, n): digits_fd(as_images(digit_samples("absorbing", N_DIGITS, seed=14, num_steps=n)))
           for n in tqdm(MASKGIT_STEPS, desc="ancestral")}
for temperature in tqdm(MASKGIT_TEMPERATURES, desc="MaskGIT"):
    for n in MASKGIT_STEPS:
        quality["MaskGIT", temperature, n] = digits_fd(as_images(maskgit_digits(N_DIGITS, 14, n, temperature)))
floor = quality["ancestral", None, MASKGIT_STEPS[0]].floor
print(f"FD of {N_DIGITS} samples (floor {floor:.2f}), {time.perf_counter() - start:.0f} s")
print(f"{'steps (= network calls)':>30} " + " ".join(f"{n:>7}" for n in MASKGIT_STEPS))
print(f"{'ancestral':>30} " + " ".join(f"{quality['ancestral', None, n].fd:7.2f}" for n in MASKGIT_STEPS))
for temperature in MASKGIT_TEMPERATURES:
    print(f"{f'MaskGIT, temperature {temperature:g}':>30} " +
          " ".join(f"{quality['MaskGIT', temperature, n].fd:7.2f}" for n in MASKGIT_STEPS))

fig, axes = plt.subplots(1, 1 + len(MASKGIT_TEMPERATURES), figsize=(3.4 * (1 + len(MASKGIT_TEMPERATURES)), 3.6))
grids = {f"ancestral, {REVEAL_STEPS} steps": digit_samples("absorbing", 32, seed=15, num_steps=REVEAL_STEPS)}
grids.update({f"MaskGIT, {REVEAL_STEPS} steps, temp. {temperature:g}": maskgit_digits(32, 15, REVEAL_STEPS, temperature)
              for temperature in MASKGIT_TEMPERATURES})
for ax, (title, x) in zip(axes, grids.items(), strict=True):
    image_table(ax, to_pictures(x, K).reshape(4, 8, 3, 8, 8), [""] * 8)
    ax.set_title(title, fontsize=9)
show(fig, OUT / "maskgit_samples.png")

# %% [markdown] id="maskgit_toy_intro"
# **Even with the perfect network.** Section 4's pairs, with their exact model (absorbing kernel): MaskGIT with two
# steps reveals one position, then the other given the first, which is how the chain rule samples; only the choice of
# *which* position goes first depends on the draws. Against the law, and against ancestral sampling with two steps:

# %% id="maskgit_toy"
toy_process = CategoricalDiffusion.default("absorbing", K_TOY, T_TOY)
exact_pairs = ExactX0(toy_process, pairs, pair_law.flatten())
print(f"TV to the law of {N_TOY} samples, 2 steps (sampling noise about {noise_tv:.3f}):")
print(f"  ancestral: {total_variation(pair_histogram(toy_samples['absorbing', 2]).flatten(), pair_law.flatten()):.3f}")
for temperature in (*MASKGIT_TEMPERATURES, 1000.0):
    x = maskgit_sample(exact_pairs, toy_process, (N_TOY, 2), num_steps=2, temperature=temperature, generator=gen(16))
    print(f"  MaskGIT, temperature {temperature:g}: "
          f"{total_variation(pair_histogram(x).flatten(), pair_law.flatten()):.3f}")

# %% [markdown] id="maskgit_read"
# **Reading section 6.** The reveal maps confirm the formula: ancestral sampling reveals pixels in no particular
# order (its mean map is flat, and what it reveals in the first quarter of the steps is background as often as the
# finished samples are), while MaskGIT reveals the background first, where the network is surest (the borders), and
# the strokes last, the more so the lower its temperature.
#
# On the pairs with the exact network, two MaskGIT steps come far closer to the law than two ancestral steps:
# revealing one position per step *is* the chain rule, and only the choice of which position goes first is biased
# towards confident draws. That bias shrinks as the temperature grows; with a very large one the order is random and
# the sampler exact, up to the sampling noise.
#
# On the digits, in the full run: with the fewest steps, MaskGIT at the larger temperatures beats ancestral sampling,
# whose distance falls steadily as it gets more steps. At temperature 1 the confident choices feed on each other and
# the samples collapse towards a few thin strokes (the grids), far from the data, and more steps make it worse, not
# better: each step's confident choices condition the next. The temperature is a setting to tune, like lesson 5's
# guidance scale, and the point of confidence ordering is the small number of network calls (every entry of the
# table costs as many calls as steps, against the $T$ = `T_DIGITS` steps the network was trained on).

# %% [markdown] id="text_intro"
# ## 7. Text: a toy grammar
#
# Characters are categories with no order at all, the case that motivated this lesson. The course's corpus
# (`machinery.text`) is written by a toy grammar: a sentence is a noun phrase, a space and a verb phrase with a full
# stop; a noun phrase is a determiner, an optional adjective and a noun; a verb phrase is a transitive verb with another
# noun phrase, or an intransitive verb. It makes 20,952 sentences of up to 37 characters, few enough that
# `is_grammatical` can check a generated string exactly. Each sentence is a row of `LENGTH` = 40 characters from an
# alphabet of $K = 24$ (the padding `_`, space, full stop and 21 letters); 4,000 sentences are the training set.
# The forward process on one of them, absorbing and uniform kernels (`#` is the mask):

# %% id="text_data"
train_text = load_text("train")
train_sentences = set(decode(train_text))
print(f"{len(train_text)} training sentences of {len(all_sentences())}; alphabet {VOCAB!r} (K = {len(VOCAB)})")
for s in decode(train_text[:3]):
    print("  ", s)
print()
for kind in ("absorbing", "uniform"):
    text_process = CategoricalDiffusion.default(kind, len(VOCAB), T_PICTURES)
    for t in (0, T_PICTURES // 4, T_PICTURES // 2, 3 * T_PICTURES // 4, T_PICTURES):
        x_t = q_sample(text_process, train_text[:1], t, generator=gen(21))
        print(f"{kind:>9}, t = {t:4d}: {decode(x_t)[0]}")

# %% [markdown] id="text_train_intro"
# **Training, and samples along the way.** A `nets.TokenTransformer` (a small bidirectional Transformer encoder:
# every character sees all others, with the step $t$ added to each token's embedding) is trained with the absorbing
# kernel and the hybrid loss, in chunks. After each chunk the cell draws `N_TEXT` samples with each of section 6's
# samplers, ancestral (`TEXT_SAMPLER_STEPS` steps) and MaskGIT (`LENGTH` steps, one character per step, temperature
# 1), prints a few, and counts three things: the share of samples whose words are all words of the grammar, the share
# that are grammatical sentences, and among those the share that are *not* in the training set (4,000 of the 20,952
# sentences, so a model that had learnt the grammar and nothing else would put about 81% of its sentences outside the
# training set, the dotted line; one that had memorised the training set, none). Each chunk continues the same run
# exactly (`train_discrete(..., resume=True)` with a larger `steps`), and its checkpoint is kept, so that a second run
# of the cell loads the snapshots instead of training.

# %% id="text_train"
WORDS = {word for words in GRAMMAR.values() for word in words}
text_config = DiscreteConfig(dataset="text", kernel="absorbing", T=T_TEXT, steps=TEXT_CHUNKS[-1], batch_size=TEXT_BATCH,
                             lr=3e-3, warmup_steps=min(200, TEXT_CHUNKS[0]), ema_decay=0.99 if FAST else 0.995,
                             model=dict(TEXT_MODEL), seed=SEED, checkpoint_every=TEXT_CHUNKS[0])
text_folder = OUT / ("text_fast" if FAST else "text")


def as_json(config: DiscreteConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def text_run_at(steps: int):
    """(the EMA network, the process) of the text run after `steps` training steps: its snapshot when the folder
    holds one of this config; else trained on from the latest earlier snapshot (or from scratch) and snapshotted."""
    config = dataclasses.replace(text_config, steps=steps)
    snapshot = text_folder / f"checkpoint_{steps}.pt"
    if snapshot.is_file():
        try:
            network, process, saved = load_discrete(snapshot)
            if as_json(saved) == as_json(config):
                print(f"loaded the snapshot after {steps} steps")
                return network, process
        except (ValueError, RuntimeError) as error:  # UnreadableFile is a ValueError
            print(f"the snapshot {snapshot.name} could not be read ({error}); training")
    earlier = [s for s in TEXT_CHUNKS if s < steps and (text_folder / f"checkpoint_{s}.pt").is_file()]
    if earlier:  # continue from it: cached_run resumes a folder whose config asks for fewer steps
        shutil.copyfile(text_folder / f"checkpoint_{max(earlier)}.pt", text_folder / "checkpoint.pt")
        (text_folder / "config.json").write_text(json.dumps(as_json(dataclasses.replace(config, steps=max(earlier)))))
    run = cached_run(config, "text")
    shutil.copyfile(text_folder / "checkpoint.pt", snapshot)
    return run.ema_model.eval(), run.process


def words_ok(sentence: str) -> bool:
    """Whether every word of a generated string (padding and full stop removed) is a word of the grammar."""
    return all(word in WORDS for word in sentence.rstrip(PAD).removesuffix(".").split(" "))


def text_measures(texts: list[str]) -> dict:
    grammatical = [s for s in texts if is_grammatical(s)]
    return dict(words=np.mean([words_ok(s) for s in texts]), grammatical=len(grammatical) / len(texts),
                new=np.mean([s not in train_sentences for s in grammatical]) if grammatical else float("nan"))


TEXT_SAMPLERS = {
    "ancestral": lambda network, process: sample(network, process, (N_TEXT, LENGTH), num_steps=TEXT_SAMPLER_STEPS,
                                                 generator=gen(22)),
    "MaskGIT": lambda network, process: maskgit_sample(network, process, (N_TEXT, LENGTH), num_steps=LENGTH,
                                                       temperature=1.0, generator=gen(22)),
}
torch.set_num_threads(UNET_THREADS)
text_progress = {name: {} for name in TEXT_SAMPLERS}
for steps in TEXT_CHUNKS:
    network, text_process = text_run_at(steps)
    print(f"after {steps} steps:")
    for name, draw in TEXT_SAMPLERS.items():
        with torch.no_grad():
            texts = decode(draw(network, text_process))
        row = text_progress[name][steps] = text_measures(texts)
        print(f"  {name:>9}: words of the grammar {row['words']:.2f}, grammatical {row['grammatical']:.2f}, "
              f"of which not in the training set {row['new']:.2f}")
        for s in texts[:3]:
            print(f"      {'+' if is_grammatical(s) else ' '} {s.rstrip(PAD)}")
text_network = network  # the last chunk's

fig, axes = plt.subplots(1, len(TEXT_SAMPLERS), figsize=(11, 3.4), sharey=True)
for ax, (name, progress) in zip(axes, text_progress.items(), strict=True):
    for key, label in (("words", "all words of the grammar"), ("grammatical", "grammatical sentences"),
                       ("new", "of the grammatical ones: not in the training set")):
        ax.plot(list(progress), [row[key] for row in progress.values()], "o-", label=label)
    ax.axhline(1 - len(train_text) / len(all_sentences()), color="0.6", ls=":", lw=1)  # 81%: new, if drawn at random
    ax.set(xticks=list(TEXT_CHUNKS), xlabel="training steps", ylim=(-0.02, 1.02),
           title=f"{name} samples during training")
axes[0].set_ylabel("share")
axes[0].legend(fontsize=8)
show(fig, OUT / "text_progress.png")

# %% [markdown] id="text_reverse_intro"
# The reverse process of the last network on three sentences, printed at a few steps (`#`: still masked):

# %% id="text_reverse"
text_kept = {}
with torch.no_grad():
    sample(text_network, text_process, (3, LENGTH), num_steps=TEXT_SAMPLER_STEPS, hook=keeper(text_kept),
           generator=gen(23))
shown_at = sorted({min(text_kept, key=lambda s, f=f: abs(s - f * T_TEXT)) for f in (0.9, 0.7, 0.5, 0.3, 0.1, 0.0)},
                  reverse=True)
for i in range(3):
    for t in shown_at:
        print(f"t = {t:4d}:  {decode(text_kept[t][i:i + 1])[0]}")
    print()

# %% [markdown] id="text_read"
# Early in training the samples are letter soup; then words appear, and in the full run nearly every string whose
# words are all words of the grammar is also a grammatical sentence (the first two curves of each panel almost
# coincide): once the words are right, the grammar's rules come almost for free. The samplers differ far more than
# the later chunks do: with the same network, MaskGIT's samples are grammatical several times as often as the
# ancestral ones. Most errors of the ancestral samples are local, letters doubled or dropped within a word or where
# two words meet (the samples printed above): neighbouring positions filled in a random order, or in the same step,
# that do not agree. MaskGIT fills in the characters it is surest of first and the others in their context. Of the
# grammatical sentences, most are not in the training set, close to the 81% of a model that knows the grammar rather
# than the list (with few grammatical samples this share is noisy).

# %% [markdown] id="likelihood_intro"
# ## 8. Likelihood across units
#
# How good is a discrete model as a density, compared with the Gaussian models of lessons 2-3? The number that can be
# compared across model families is the probability a model gives to the test data, in bits per dimension: $-\log_2
# p(\mathbf{x}_0) / D$. Each model below gives (a bound on) exactly that for the same 360 test digits, as 17-level
# images, so the numbers measure the same thing:
#
# - **D3PM** (this lesson) is a distribution over the $17^{64}$ images itself; `bound_bits` is its variational bound
#   $L_\text{vb}$ ($\ge -\log_2 p_\theta(\mathbf{x}_0)$), one draw of $\mathbf{x}_t$ per step.
# - **DDPM's variational bound** (lesson 2) ends with a *discretised* decoder, $p_\theta(\mathbf{x}_0 \mid
#   \mathbf{x}_1)$ integrated over the bin of each grey level (`losses.discretized_gaussian_log_likelihood` with 17
#   bins of width $2/16 = 1/8$ centred on the levels, the two end bins reaching to $\pm\infty$), so its probabilities
#   of the 17 levels sum to one, and $L_\text{vb}$ bounds $-\log_2$ of a probability of the 17-level image.
# - **The probability-flow ODE's likelihood** (lesson 3) is a density on $\mathbb{R}^{64}$. The digits are
#   dequantised, $\mathbf{x} + \mathbf{u}/8$ with $\mathbf{u}$ uniform in $[-\frac12, \frac12]^{64}$, each level
#   spread over its own bin of width 1/8 (`likelihood.dequantize`), and `likelihood.bits_per_dim` adds $\log_2 8 = 3$
#   bits per dimension to $-\log_2 p / 64$, the log of the bins' volume. By Jensen's inequality the result bounds
#   $-\log_2$ of the density's mass over the image's bins: again a probability of the 17-level image (the mass beyond
#   the end bins is lost, so these probabilities sum to at most one, which only makes the number larger).
#
# The Gaussian rows are not recomputed here (training the demo's network and running its likelihoods takes longer
# than this lesson): they are the course repository's `benchmarks/likelihood_nfe.py`, digits section, measured on the
# demo's U-Net (`ddpm-scratch demo`'s network and settings, 2,000 training steps) and these 360 test digits: 3.04
# bits per dimension for the variational bound (all 1000 steps) and 2.16 for the ODE likelihood. Two reference rows
# are exact: a uniform distribution over the 17 levels, $\log_2 17$ bits, and a model of independent pixels (each of
# the 64 positions with its own histogram of levels over the training digits, plus a tenth of a count per level so
# that no level has probability 0). The D3PM rows are computed here, with the networks of section 5 and $T$ =
# `T_DIGITS` (`N_BOUND` test digits; all 360 in full mode). Mean $\pm$ standard error over the digits.

# %% id="likelihood"
test_digits = digits_as_categories("test")[:N_BOUND]
counts = torch.zeros(64, K, dtype=F64).scatter_add_(1, digits_train.reshape(-1, 64).T.contiguous(),
                                                    torch.ones(64, len(digits_train), dtype=F64))
pixel_laws = (counts + 0.1) / (counts + 0.1).sum(1, keepdim=True)  # (64, K): each position's law of levels
independent = -pixel_laws.log2().gather(1, test_digits.reshape(-1, 64).T.contiguous()).mean(0)  # (N_BOUND,)
start = time.perf_counter()
bounds = {kind: bound_bits(digit_models[kind], digit_runs[kind].process, test_digits, generator=gen(30),
                           progress=True) for kind in DIGIT_KINDS}
print(f"the bounds of {N_BOUND} test digits with T = {T_DIGITS}: {time.perf_counter() - start:.0f} s")


def mean_error(values: torch.Tensor) -> str:
    return f"{values.mean():.3f} +- {values.std() / len(values) ** 0.5:.3f}"


GAUSSIAN_FIGURES = {"DDPM, demo U-Net: variational bound, 17-bin decoder": 3.04,  # benchmarks/likelihood_nfe.py
                    "DDPM, demo U-Net: probability-flow ODE, dequantised (+3 bits)": 2.16}
likelihood_table = [("uniform over the 17 levels (exact)", f"{math.log2(K):.3f}"),
                    ("independent pixels, train histograms (exact)", mean_error(independent))]
likelihood_table += [(f"D3PM, {kind} (this lesson): variational bound", mean_error(bounds[kind]))
                     for kind in DIGIT_KINDS]
likelihood_table += [(f"{name} [benchmark]", f"{value:.2f}") for name, value in GAUSSIAN_FIGURES.items()]
print(f"\n{'model: quantity':<74} {'bits/dim':>15}")
for name, value in likelihood_table:
    print(f"{name:<74} {value:>15}")

# %% [markdown] id="likelihood_read"
# **Reading the table** (full mode; in fast mode the networks are barely trained and $T$ is small). All rows are
# bits per pixel of one probability model of the 17-level images, so lower is better; the uniform model's $\log_2 17$
# is what knowing nothing costs, and the independent-pixels row what a model gets that ignores every correlation
# between pixels. In the full run the absorbing D3PM's bound is the lowest row, and the uniform D3PM's bound is a
# little higher (D3PM found the same order on images). The Gaussian model's variational bound is the highest of the
# learned rows, above even independent pixels, while its ODE likelihood, a different model built from the same
# network, comes out much lower, between the D3PM rows and independent pixels. The comparison is fair in what it
# measures (the same images, the same 17 bins, probabilities that sum to at most one), not in effort: the networks,
# their sizes and training times differ, and the D3PM rows are bounds estimated with one draw per step.

# %% [markdown] id="encodings_intro"
# ## 9. Discrete encodings: the bridge to latent models
#
# Categorical diffusion matters most where the categories are not the raw data but a *code* for it. MaskGIT (the
# lecture's example) and VQ-Diffusion do not diffuse pixels: an autoencoder with a vector-quantised bottleneck
# (VQ-VAE, VQGAN) first maps an image to a small grid of tokens, each the index of the nearest vector in a learnt
# codebook, and the diffusion model (absorbing kernel, or MaskGIT's unmasking) generates token grids, which the
# decoder turns into images. The tokens are far fewer than the pixels, and each stands for a patch, so the generative
# model works on content while the decoder handles detail.
#
# The smallest version of the idea on our digits: a codebook of 16 patches of $2\times 2$ pixels, found by k-means on
# the training digits' patches (an autoencoder whose encoder is "nearest codebook patch" and whose decoder is "paste
# the patch"). Each digit becomes a $4\times 4$ grid of tokens, $K = 16$ categories: exactly the data section 5's code
# trains on, with 16 positions instead of 64.

# %% id="encodings"
CODES = 16
train_images = load_digits("train")[0]  # (N, 1, 8, 8) in [-1, 1]


def to_patches(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 8, 8) -> (B, 16, 4): the 2x2 patches of each image, row by row."""
    return torch.nn.functional.unfold(x, 2, stride=2).transpose(1, 2)


def from_patches(p: torch.Tensor) -> torch.Tensor:
    """(B, 16, 4) -> (B, 1, 8, 8): the inverse of to_patches."""
    return torch.nn.functional.fold(p.transpose(1, 2), (8, 8), 2, stride=2)


patches = to_patches(train_images).reshape(-1, 4)
distinct = patches.unique(dim=0)
codebook = distinct[torch.randperm(len(distinct), generator=gen(40))[:CODES]].clone()
for _ in range(25):  # Lloyd's k-means
    nearest_code = torch.cdist(patches, codebook).argmin(1)
    for c in range(CODES):
        if (nearest_code == c).any():
            codebook[c] = patches[nearest_code == c].mean(0)


def tokenize(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 8, 8) images -> (B, 4, 4) long tokens: the nearest codebook patch of each 2x2 patch."""
    return torch.cdist(to_patches(x), codebook[None]).argmin(-1).reshape(-1, 4, 4)


def detokenize(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) tokens -> (B, 1, 8, 8) images made of the codebook's patches."""
    return from_patches(codebook[tokens.reshape(-1, 16)])


test_images = load_digits("test")[0]
tokens = tokenize(test_images)
reconstructed = detokenize(tokens)
print(f"{CODES} codes of 2x2 patches: each test digit is {tokens[0].numel()} tokens, "
      f"{tokens[0].numel() * math.log2(CODES):.0f} bits, against 64 pixels of 17 levels "
      f"({64 * math.log2(K):.0f} bits); mean squared error of the reconstruction "
      f"{(reconstructed - test_images).pow(2).mean():.4f} (pixel values in [-1, 1], levels 0.125 apart); "
      f"codes used per test digit: {np.mean([len(t.unique()) for t in tokens]):.1f} on average")

fig, axes = plt.subplots(3, 8, figsize=(9, 3.6))
for i in range(8):
    axes[0, i].imshow(test_images[i, 0], cmap="gray", vmin=-1, vmax=1)
    axes[1, i].imshow(tokens[i], cmap="tab20", vmin=0, vmax=19)
    for (r, c), token in np.ndenumerate(tokens[i].numpy()):
        axes[1, i].text(c, r, str(token), ha="center", va="center", fontsize=6)
    axes[2, i].imshow(reconstructed[i, 0], cmap="gray", vmin=-1, vmax=1)
for ax in axes.flat:
    ax.set(xticks=[], yticks=[])
for row, label in enumerate(("test digit", "tokens (4x4)", "decoded")):
    axes[row, 0].set_ylabel(label, fontsize=8)
show(fig, OUT / "tokens.png")

# %% [markdown] id="encodings_read"
# Sixteen tokens of four bits each keep the digits legible (a quarter of the raw information at most, and the
# codebook's patches are averages, so strokes come out blockier). A D3PM or MaskGIT over these $4\times 4$ grids would
# generate digits as token grids, sixteen positions instead of sixty-four, and the decoder would paste the patches
# (What to try, item 5). Real systems learn the encoder, the codebook and the decoder together (VQ-VAE, VQGAN), with
# a few thousand codes for patches of $8\times 8$ or $16\times 16$ pixels. Lecture 7's latent diffusion takes the
# other road from the same starting point: an autoencoder with a *continuous* latent space, and Gaussian diffusion of
# lessons 1-5 in it. Either way, the generative model works on a compressed code, and the choice between categorical
# and Gaussian diffusion is a choice of what the code is.

# %% [markdown] id="summary"
# ## What to remember
#
# - Gaussian noise does not fit categories: it leaves the set, and rounding back gives a chain without a closed-form
#   $q(\mathbf{x}_t \mid \mathbf{x}_0)$ or a known prior. Discrete diffusion puts the noise on the categories: a
#   Markov chain with $[\mathbf{Q}_t]_{ij} = q(x_t = j \mid x_{t-1} = i)$, rows that are distributions, and the jump
#   $q(x_t \mid x_0) = \mathrm{Cat}(x_0\bar{\mathbf{Q}}_t)$ with $\bar{\mathbf{Q}}_t = \mathbf{Q}_1\cdots\mathbf{Q}_t$.
# - The uniform and absorbing kernels keep the state or redraw it from $\boldsymbol\pi$ (uniform, or the mask), so
#   $\bar{\mathbf{Q}}_t = \bar\alpha_t\mathbf{I} + (1 - \bar\alpha_t)\mathbb{1}\boldsymbol\pi$ and the marginals
#   approach $\boldsymbol\pi$ exactly as $\bar\alpha_t$; the discretised Gaussian kernel is for ordered levels and has
#   the uniform law as its stationary distribution. $\boldsymbol\pi$ is the prior.
# - The posterior $q(x_{t-1} \mid x_t, x_0)$ is a column of $\mathbf{Q}_t$ times a row of $\bar{\mathbf{Q}}_{t-1}$,
#   normalised. The network predicts $\tilde p_\theta(x_0 \mid \mathbf{x}_t)$ per position; the reverse step averages
#   the posterior over it, stays within what the forward process allows, and can jump several steps.
# - A reverse step draws the positions independently. With the exact network it is exact for one position, and for
#   several it costs a little, less the more steps (the bound above the entropy, roughly as $1/T$ on the pairs).
# - D3PM trains on the hybrid loss $L_\text{vb} + \lambda\,\mathrm{CE}(x_0)$; `bound_bits` is the bound in bits per
#   dimension, tight for a perfect network.
# - With the absorbing kernel, generation is de-masking; ancestral sampling reveals positions in a uniformly random
#   order, MaskGIT by confidence. With very few steps MaskGIT does better; its order biases the samples towards
#   confident choices unless its temperature keeps the order random enough.
# - Likelihoods compare across units when they are probabilities of the same discrete data: D3PM's bound, DDPM's bound
#   with a discretised decoder, and the ODE likelihood of dequantised data with the bins' $\log_2 8 = 3$ bits added.
# - Categorical diffusion on the tokens of a discrete encoder is how MaskGIT and VQ-Diffusion generate images;
#   latent diffusion (lecture 7) uses a continuous code and Gaussian diffusion instead.
#
# **Problem set 6** (`assignments/ps6_discrete`) has you write what the package leaves out: the one-step matrices of
# the uniform and absorbing kernels for a whole schedule with the mask as the *first* state, the matrix of several
# steps $\mathbf{Q}_{s+1}\cdots\mathbf{Q}_t$ in closed form, the posterior in D3PM's joint form given probabilities of
# $x_0$, and the bound's KL term. Its tests check them against brute-force products and enumeration, like section 4.
#
# ## What to try
#
# 1. In section 2, give the Gaussian kernel more steps or larger $\beta_t$ (build `CategoricalDiffusion("gaussian",
#    K, betas)` with your own `betas`, `betas[0] = 0`). How close does $\bar{\mathbf{Q}}_T$ get to $\boldsymbol\pi$,
#    and how does the TV curve of section 3 change?
# 2. In section 4, make the toy law a law of triples (`pairs` of three positions, a $4\times 4\times 4$ table). Does
#    the factorisation cost of one step grow, and does it still fall like $1/T$?
# 3. In section 5, train the Gaussian kernel on the digits (`kernel="gaussian"`; it cannot jump, so sample it with
#    `num_steps=None`, all $T$ steps, and mind the time). Where do its FD and its bound land beside the other two?
# 4. In section 6, sweep MaskGIT's temperature more finely at 8 steps. Where is the best FD, and how do the samples
#    change on either side of it?
# 5. Train a D3PM on section 9's token grids: a `CategoricalUNet(num_states=CODES + 1, K=CODES, image_size=4,
#    base_channels=16, channel_mults=(1,), attention_resolutions=())` with the absorbing kernel, a plain Adam loop on
#    `discrete.hybrid_loss(network, process, tokens[:, None])` (a channel axis: (B, 1, 4, 4)), and `detokenize` on its
#    samples. How do the digits compare with section 5's?
# 6. In section 7, train the text model with the uniform kernel. D3PM found uniform noise much worse than masking on
#    text; is it here?
#
# **Where the code lives:** `ddpm_scratch/discrete.py` (kernels, `CategoricalDiffusion`, `q_probs`, `q_sample`,
# `q_posterior`, `p_posterior`, `hybrid_loss`, `bound_bits`, `sample`, `maskgit_sample`),
# `ddpm_scratch/nets/categorical.py` (`CategoricalUNet`, `TokenTransformer`), `ddpm_scratch/machinery/
# discrete_training.py` (`train_discrete`, `load_discrete`, `digits_as_categories`, `to_pictures`; `ddpm-scratch
# train-discrete` and `sample-discrete` on the command line), `ddpm_scratch/machinery/text.py` (the grammar). In the
# course repository (not in the student edition): `benchmarks/discrete_digits.py`, `benchmarks/likelihood_nfe.py`.
