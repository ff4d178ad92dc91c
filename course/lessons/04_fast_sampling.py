# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 4 — fast sampling: DDIM, ODE solvers, and why a Gaussian step needs small steps
#
# A DDPM trained on $T = 1000$ steps samples with 1000 network calls. This lesson asks how far that number can come
# down, and *why* the obvious shortcut, running Algorithm 2 on every $k$-th step, falls apart.
#
# **Why it matters: the generative learning trilemma.** Xiao, Kreis & Vahdat (2022) ask three things of a generative
# model: samples of high quality, coverage of every mode of the data (diversity), and fast sampling. GANs give quality
# and speed but tend to drop modes; VAEs and normalising flows sample fast and cover the modes, at lower quality;
# diffusion models give quality and coverage, and pay with hundreds of network calls. Making diffusion fast, without
# losing the other two, is how one would get all three.
#
# **Three routes** (the lecture's list; each section below says which one it takes):
#
# - *a better forward process*: DDIM replaces DDPM's Markov chain by a non-Markovian forward process with the same
#   marginals, whose reverse process can take big deterministic steps (sections 2-3); latent-space diffusion, which
#   diffuses in an autoencoder's smaller, smoother space, is not part of this lesson;
# - *a better reverse process*: higher-order ODE solvers that need fewer steps for the same accuracy (section 4), and
#   a reverse step that is not Gaussian, so that a big step can have many modes (section 5);
# - *hybrids and distillation*: a denoising diffusion GAN (section 5) and progressive distillation (section 6).
#
# Fewer steps can be had at sampling time (sections 1-4) or at training time, with a model trained for the few steps
# it will take. Section 1 explains why, with a perfect network, a DDPM trained on $S$ steps and a 1000-step DDPM
# sampled on $S$ of its steps are the same sampler, and so fail the same way; the DDGAN of section 5 and the students
# of section 6 are trained for their few steps. Six parts follow, each a different way of spending a small budget of
# network evaluations (NFE):
#
# 1. why naive step skipping fails: DDPM on 5-50 respaced steps against DDIM on the same steps;
# 2. DDIM: one trained network serves a family of forward processes with DDPM's marginals, and their reverse
#    processes, indexed by $\eta$; one $\mathbf{x}_T$ decoded with 5 to 1000 steps;
# 3. inversion ($\mathbf{x}_0 \to \mathbf{x}_T$) and interpolation in $\mathbf{x}_T$ (slerp against a straight line);
# 4. higher-order ODE solvers (DPM-Solver++, UniPC, EDM's Heun) as the deterministic limit: quality against NFE, and
#    why EDM's Heun steps fail on EDM's own grid here;
# 5. why a Gaussian reverse step fails with few steps: the exact $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ of a big
#    step is multimodal; a denoising diffusion GAN models it with 2-4 steps, and covers the modes better than a
#    one-shot GAN;
# 6. progressive distillation: a student that takes one step where its teacher takes two.
#
# As in lesson 3 the data are a two-dimensional Gaussian mixture, whose noisy versions are all known exactly:
# `mixture_eps_model(mixture, schedule)` is the *perfect network* $\mathbb{E}[\boldsymbol\epsilon \mid
# \mathbf{x}_t]$ for every step $t$, so every error measured in sections 1-4 (and section 5's Gaussian steps) is the
# sampler's own, never the network's. Only the GANs of section 5 and section 6 train networks.
#
# **Notation.** In this lesson each symbol has one meaning; where the papers or other lessons use another, it says so.
#
# - $\bar\alpha_t = \prod_{i=1}^{t}(1-\beta_i)$ as in lessons 1-2 (the DDIM paper calls it $\alpha_t$).
# - $m_t = \sqrt{\bar\alpha_t}$ and $s_t = \sqrt{1-\bar\alpha_t}$: the mean factor and the std of
#   $q(\mathbf{x}_t \mid \mathbf{x}_0)$, so $\mathbf{x}_t = m_t\mathbf{x}_0 + s_t\boldsymbol\epsilon$ (lesson 3's
#   $m(t)$ and $s(t)$). DPM-Solver, UniPC and Salimans & Ho write them $\alpha_t$ and $\sigma_t$; lessons 1-2's
#   $\alpha_t = 1 - \beta_t$ is not used here.
# - $\sigma_t$: the std of the noise that a reverse step adds, DDPM's $\sigma_t^2 = \beta_t$ or $\tilde\beta_t$
#   (lesson 2) and DDIM's $\sigma_t(\eta)$, as in the DDPM and DDIM papers.
# - $\sigma_\text{EDM} = s_t/m_t$: EDM's noise level, the std of the noise in $\bar{\mathbf{x}} = \mathbf{x}_t/m_t$
#   (EDM, and DDIM's section 4.3, write $\sigma$); section 4's stiffness analysis writes $\varsigma_t$ for its value
#   at step $t$ (problem set 4's name).
# - $\lambda_t = \log(m_t/s_t)$: half the log signal-to-noise ratio (DPM-Solver's $\lambda_t$). Lesson 3's
#   $\lambda(t)$ is the weight of the DSM loss, a different thing.
#
# Package modules used: `ddpm_scratch.ddim`, `ddpm_scratch.sampling` (and through it `ddpm_scratch.eps_solvers`),
# `ddpm_scratch.schedules`, `ddpm_scratch.reverse_steps`, `ddpm_scratch.score`, `ddpm_scratch.reverse_kernel`,
# `ddpm_scratch.ddgan` with its trainer `ddpm_scratch.machinery.gan_training`, and
# `ddpm_scratch.machinery.distillation`. Problem set 4 writes the DDIM family again in other variables: in
# $\bar{\mathbf{x}} = \mathbf{x}_t/m_t$ and $\sigma_\text{EDM}$, a jump's noise split into a deterministic part and
# fresh noise, a noise level per jump, steps uniform in $\lambda_t$, and the inversion of a noisy member given its
# noises; here the package's DDIM is used as the paper writes it. With `DDPM_SCRATCH_FAST=1` every cell
# is shrunk (fewer points, seeds and training steps); the full run trains the GANs and the distillation 5-15 times
# longer and averages over more seeds. Measured on two CPU cores with nothing else running (load average about 1):
# 21-25 s in fast mode and about 5 minutes in full mode, most of it the GAN trainings of section 5 and the
# distillation of section 6. Other programs on the same cores stretch it, by how much depends on them: at a load
# average of 4-5 fast mode took 26 s in one measurement (two busy loops) and 63-71 s in another; expect a full run
# to stretch the same way. Every cell that takes more than a few seconds shows a progress bar.

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
THREADS = 1  # torch threads: every tensor here is a cloud of 2-D points
LIM = 4.0  # the pictures show the square [-LIM, LIM]^2
T = 1000  # DDPM's linear schedule, the "training" schedule every sampler below is respaced from

# sliced W2 to the truth: SW_N points per sampler against SW_N reference points, SW_SEEDS seeds (median reported)
SW_N = 5000 if FAST else 20_000
SW_SEEDS = 2 if FAST else 5
SW_PROJECTIONS = 64
FLOOR_REPEATS = 10  # fresh true samples measured like a sampler this many times: the floor's noise band

# 1. step skipping
SKIP_STEPS = (5, 10, 20) if FAST else (5, 10, 20, 50)
# 2. the eta sweep and one x_T decoded with more and more steps
ETA_STEPS = 20  # steps of the eta sweep
DECODE_STEPS = (5, 10, 20, 50, 100, 1000)
N_DECODE = 300  # points decoded with every step count
# 3. inversion
INVERT_STEPS = (10, 20, 50, 100) if FAST else (10, 20, 50, 100, 200, 500)
N_INVERT = 500
# 4. quality against NFE
NFES = (5, 10, 20) if FAST else (5, 10, 20, 50)
SOLVERS = ("ddim", "dpmpp_2m", "unipc", "edm")  # on evenly spaced steps
N_STIFF = 2000  # points followed through one step of EDM's grid
# 5. the reverse kernel of a big step, and a tiny DDGAN
KERNEL_STEPS = 4  # the respaced schedule whose steps are "big"
DDGAN_STEPS = 4  # the DDGAN's number of steps (2-4 in the paper's toy experiments)
DDGAN_ITERATIONS = 200 if FAST else 3000
DDGAN_LR = 1e-3
GAN_SEEDS = (SEED,) if FAST else (SEED, SEED + 1, SEED + 2)  # training seeds of the one-shot GAN against the DDGAN
# 6. progressive distillation on two moons
TEACHER_ITERATIONS = 800 if FAST else 4000  # L_simple training of the teacher MLP
DISTILL_FROM = 8 if FAST else 16  # the teacher's DDIM steps; each stage halves them down to DISTILL_TO
DISTILL_TO = 2
DISTILL_ITERATIONS = 200 if FAST else 1500  # per stage
HIDDEN = 64 if FAST else 128
MOON_N = 4000 if FAST else 20_000  # points per seed for the sliced W2 on two moons

# Figures go to outputs/ of the course folder (the one holding lessons/), wherever the notebook was started from.
OUT = lesson_output_dir("04_fast_sampling")

# %% id="setup"
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from ddpm_scratch.ddgan import ddgan_sample
from ddpm_scratch.ddim import ddim_invert, ddim_sigma, ddim_step, slerp
from ddpm_scratch.ddpm import p_sample_step
from ddpm_scratch.eps_solvers import edm_step
from ddpm_scratch.losses import l_simple
from ddpm_scratch.machinery.data import toy_2d
from ddpm_scratch.machinery.distillation import progressive_distillation
from ddpm_scratch.machinery.gan_training import train_ddgan
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.machinery.notebook import explore, show
from ddpm_scratch.nets import MLPEps
from ddpm_scratch.reverse_kernel import (
    gaussian_reverse_step,
    grid_modes,
    kl_monte_carlo,
    moment_matched_gaussian,
    reverse_kernel,
    reverse_kernel_sample,
)
from ddpm_scratch.reverse_steps import eps_at
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import SPACINGS, NoiseSchedule, karras_timesteps, respaced
from ddpm_scratch.score import GaussianMixture, mixture_eps_model

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # arithmetic on subnormal floats is very slow on CPUs; round them to 0
if THREADS is not None:  # tiny 2-D tensors: a second thread does not pay off (lessons 2 and 3)
    torch.set_num_threads(THREADS)
F64 = torch.float64
# show(fig, path) saves a figure and displays it; explore(plot, **controls) adds sliders in a live notebook frontend.

# %% [markdown] id="data_intro"
# ## 0. The data, the perfect network, and the yardstick
#
# Eight round components on a circle of radius 2.5, with unequal weights. The schedule is DDPM's linear one with
# $T = 1000$; `mixture_eps_model(mixture, schedule)` returns
# $\boldsymbol\epsilon^*(\mathbf{x}_t, t) = -s_t\,\nabla\log q_t(\mathbf{x}_t)$ exactly ($s_t = \sqrt{1-\bar\alpha_t}$).
#
# The yardstick is the sliced Wasserstein distance (lesson 2) between a sampler's points and reference points drawn
# from the mixture. Even two sets of *true* samples are not at distance 0, so each figure shows the **floor**: fresh
# true samples measured against the same reference sets as the samplers. The references are drawn from generators
# seeded apart from the samplers' own. A sliced distance called "SW2" is the median over `SW_SEEDS` seeds
# (`measure`, `sw_to_truth`), and a spread (the blur measure of section 1) pools the points of those seeds; a number
# from one seed says so, and a picture shows one seed's points.
#
# The floor is itself noisy: measured again with other true samples it moves, and a sampler within that band of
# the floor cannot be told from the truth at this sample size (a deterministic sampler may even come out below the
# floor). The cell measures the floor `FLOOR_REPEATS` more times and prints the band these repeats span.

# %% id="data"
COMPONENT_VAR = 0.03  # each component's variance per coordinate
COMPONENT_STD = math.sqrt(COMPONENT_VAR)
angles = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
mixture = GaussianMixture(weights=[3, 1, 2, 1, 3, 1, 2, 1],
                          means=2.5 * torch.stack([angles.cos(), angles.sin()], dim=1), covs=[COMPONENT_VAR] * 8)
schedule = NoiseSchedule.linear(T)
eps_model = mixture_eps_model(mixture, schedule)  # the exact eps for every step t of this schedule
print(mixture, "| weights", [round(w, 3) for w in mixture.weights.tolist()])

REFERENCE_SEED = 10_000  # references: generators SEED + REFERENCE_SEED + i; samplers: SEED + i
references = [mixture.sample(SW_N, torch.Generator().manual_seed(SEED + REFERENCE_SEED + i)).float()
              for i in range(SW_SEEDS)]


def spread(x: torch.Tensor) -> float:
    """RMS distance of the points to their nearest component mean: about sqrt(2 x 0.03) = 0.245 for true samples."""
    return torch.cdist(x.to(F64), mixture.means).min(dim=1).values.pow(2).mean().sqrt().item()


def measure(draw, first_seed: int = SEED) -> tuple[float, float]:
    """(median over the seeds i < SW_SEEDS of SW2(draw(generator seeded first_seed + i), references[i]),
    spread of all those draws' points together)."""
    xs = [draw(torch.Generator().manual_seed(first_seed + i)) for i in range(SW_SEEDS)]
    sws = [sliced_wasserstein(x, ref, num_projections=SW_PROJECTIONS, generator=torch.Generator().manual_seed(i))
           for i, (x, ref) in enumerate(zip(xs, references, strict=True))]
    return float(np.median(sws)), spread(torch.cat(xs))


def sw_to_truth(draw, first_seed: int = SEED) -> float:
    """The median SW2 of `measure`."""
    return measure(draw, first_seed)[0]


def true_samples(g: torch.Generator) -> torch.Tensor:
    return mixture.sample(SW_N, g).float()


floor, TRUE_SPREAD = measure(true_samples)
# the same measurement with other true samples (seeds far from every other seed of the lesson): the floor's noise
floor_band = [sw_to_truth(true_samples, first_seed=SEED + 100_000 + 100 * k) for k in range(FLOOR_REPEATS)]
floor_band = (min(floor_band), max(floor_band))
print(f"floor (true samples against the references): SW2 = {floor:.3f}, median of {SW_SEEDS} seeds of {SW_N} points; "
      f"{FLOOR_REPEATS} repeats with other true samples span {floor_band[0]:.3f}-{floor_band[1]:.3f}")


def scatter(ax, x: torch.Tensor, title: str, color: str = "C0") -> None:
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.4, color=color)
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)


# %% [markdown] id="skip_intro"
# ## 1. Why naive step skipping fails
#
# The simplest way to take $S \ll T$ steps is to keep $S$ of the training steps, $\tau_1 < \dots < \tau_S = T$
# (`spaced_timesteps`), and respace the schedule so that $\bar\alpha$ is kept at exactly those steps
# (`respaced(schedule, S)`): the jump from $\tau_i$ to $\tau_{i-1}$ then has variance $\beta'_i = 1 -
# \bar\alpha_{\tau_i}/\bar\alpha_{\tau_{i-1}}$, and Algorithm 2 runs unchanged on the short schedule. The network
# is still called at the training steps $\tau_i$. Here the network is exact, so nothing but the step size can go
# wrong. The cell first prints the 10 steps that each spacing of `respaced` keeps (its `timesteps`; "uniform" is the
# default, "karras" EDM's grid of section 4).
#
# Algorithm 2 models each jump by a Gaussian $\mathcal{N}(\boldsymbol\mu_\theta, \sigma_t^2\mathbf{I})$ with
# $\sigma_t^2 = \beta'_t$, or with the posterior variance $\tilde\beta'_t = \beta'_t\,(1 -
# \bar\alpha_{\tau_{i-1}})/(1 - \bar\alpha_{\tau_i})$ of the jump. DDIM (section 2) jumps between the same steps with
# $\sigma_t = 0$.
#
# **Fewer steps in training is the same experiment.** The respaced schedule is itself a DDPM forward process with
# $S$ steps and variances $\beta'_i$, and $L_\text{simple}$ trained on it is minimised by the same exact
# $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_{\tau_i}]$ at its steps. So the DDPM rows below are also what a
# DDPM trained with only $S$ steps would give with a perfect network: cutting the steps at training time fails the
# same way (the lecture's "naive acceleration"). The models of sections 5 and 6 are trained for few steps and do
# better, because they change what one step can represent, not just how many there are.

# %% id="skip"
spacing_demo = {s: respaced(schedule, 10, s).timesteps[1:].tolist() for s in SPACINGS}  # the steps each visits
for name, steps in spacing_demo.items():
    print(f"{name:>9}: {steps}")

SKIP_SAMPLERS = {"DDPM": dict(sampler="ddpm"), "DDPM, posterior variance": dict(sampler="ddpm", variance="posterior"),
                 "DDIM": dict(sampler="ddim")}
skip = {}
for num_steps in tqdm(SKIP_STEPS, desc="DDPM and DDIM with few steps"):
    for name, options in SKIP_SAMPLERS.items():
        def draw(g, o=options, n=num_steps):
            return sample(eps_model, schedule, (SW_N, 2), num_steps=n, generator=g, **o)

        skip[name, num_steps] = measure(draw)
print(f"SW2 to the truth (floor {floor:.3f}, band {floor_band[0]:.3f}-{floor_band[1]:.3f}) | spread around the "
      f"nearest mean (true samples {TRUE_SPREAD:.3f}) and how far it is from the true spread")
print(f"{'steps':>6} " + " ".join(f"{name:>26}" for name in SKIP_SAMPLERS))
for num_steps in SKIP_STEPS:
    print(f"{num_steps:>6} " + " ".join(f"{skip[name, num_steps][0]:10.3f} | {skip[name, num_steps][1]:.3f} "
                                        f"({skip[name, num_steps][1] / TRUE_SPREAD - 1:+4.0%})"
                                        for name in SKIP_SAMPLERS))

fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
panels = [("ddpm", 5, "C3"), ("ddpm", 20, "C3"), ("ddim", 5, "C0"), ("ddim", 20, "C0")]
for ax, (sampler, num_steps, color) in zip(axes, panels, strict=False):
    x = sample(eps_model, schedule, (3000, 2), sampler=sampler, num_steps=num_steps,
               generator=torch.Generator().manual_seed(SEED))  # the same x_T in every panel
    scatter(ax, x, f"{sampler.upper()}, {num_steps} steps", color)
scatter(axes[4], references[0][:3000], "true samples", "k")
fig.suptitle("the exact network, few steps: Algorithm 2 on a respaced schedule against DDIM (one seed)", y=1.02)
show(fig, OUT / "step_skipping.png")

# %% [markdown] id="skip_read"
# Read the numbers of each entry: the sliced distance (dominated by how many points each component receives), the
# spread around the nearest mean, which measures blur, and how far that spread is from the true one. With 5 steps
# every sampler more than doubles the spread: a jump of 200 training steps is too big for a one-Gaussian step *and*
# for DDIM's straight-line step. From 10 steps on, Algorithm 2 with its own variance $\beta'_t$ stays too wide (its
# noise is the forward jump's variance, larger than the posterior's $\tilde\beta'_t$, and much larger for big
# jumps). With the posterior variance the samples come out too *narrow* (a fifth to a quarter at 20 steps, by the
# printed percentages), and they stay about that narrow at 50 steps (a row of the full run only), while DDIM's spread
# closes in on the true one. The variance that is "right" for a known $\mathbf{x}_0$ is too small for the true step,
# which is not sure of $\mathbf{x}_0$; section 2 says why, and section 5 measures the missing part.
#
# With the *exact* network in 2-D the gap between DDPM and DDIM is much smaller than on images with a trained
# network: DDIM's Table 1 (CIFAR-10, FID) has DDPM with $\beta_t$ noise at 367 with 10 steps and with the
# posterior variance ($\eta = 1$) at 41, against 13.4 for DDIM ($\eta = 0$). Noise added at every step must be
# removed again by later steps, and with few steps there are too few of them; here the perfect network removes it
# as well as it can be removed, a trained one does not. Section 5 shows the part of the failure that no network can
# fix: the true reverse step of a big jump is not Gaussian.

# %% [markdown] id="ddim_intro"
# ## 2. DDIM: the same marginals, a family of forward processes and their reverse processes
#
# $L_\text{simple}$ only sees the marginals $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}
# \mathbf{x}_0, (1-\bar\alpha_t)\mathbf{I})$. DDIM (Song, Meng & Ermon 2021) writes down a family of non-Markovian
# forward processes, one per choice of $\sigma_t$, that all have these marginals:
#
# $$q_\sigma(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) = \mathcal{N}\Big(\sqrt{\bar\alpha_{t-1}}
# \mathbf{x}_0 + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,\frac{\mathbf{x}_t - \sqrt{\bar\alpha_t}\mathbf{x}_0}
# {\sqrt{1-\bar\alpha_t}},\ \sigma_t^2\mathbf{I}\Big).$$
#
# For $\sigma_t^2 = \tilde\beta_t$ this is DDPM's posterior and the process is DDPM's Markov chain; for any other
# $\sigma_t$, $\mathbf{x}_t$ depends on $\mathbf{x}_0$ as well as on $\mathbf{x}_{t-1}$ (by Bayes' rule from the
# kernel above), so the forward process is no longer a Markov chain. Since $L_\text{simple}$ is the same for all of
# them, the network trained once serves all of them. The reverse step puts the network's guess $\hat{\mathbf{x}}_0 =
# (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon_\theta)/\sqrt{\bar\alpha_t}$ in place of
# $\mathbf{x}_0$:
#
# $$\mathbf{x}_{t-1} = \underbrace{\sqrt{\bar\alpha_{t-1}}\,\hat{\mathbf{x}}_0}_{\text{predicted } \mathbf{x}_0}
# + \underbrace{\sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,\boldsymbol\epsilon_\theta}_{\text{direction to }
# \mathbf{x}_t} + \underbrace{\sigma_t\mathbf{z}}_{\text{noise}},\qquad \sigma_t(\eta) = \eta\sqrt{\frac{1 -
# \bar\alpha_{t-1}}{1-\bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}}.$$
#
# $\eta = 1$ is DDPM's posterior standard deviation $\sqrt{\tilde\beta_t}$; $\eta = 0$ draws no noise after
# $\mathbf{x}_T$, which makes sampling a deterministic map $\mathbf{x}_T \mapsto \mathbf{x}_0$. Nothing requires
# $t-1$ to be the step just before $t$: the step only involves the marginals at its two ends, so "$t-1$" can be any
# earlier step of a respaced schedule. The cell prints $\sigma_t(\eta)$ on a 20-step schedule, then decodes the same
# $\mathbf{x}_T$ with $\eta = 0, 0.5, 1$.
#
# **What a step with the exact network still misses.** Given $\mathbf{x}_0$ the step's mean is $c_\eta\mathbf{x}_0 +
# (\dots)\,\mathbf{x}_t$, with $c_\eta = \sqrt{\bar\alpha_{t-1}} - \sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\,
# \sqrt{\bar\alpha_t}/\sqrt{1 - \bar\alpha_t}$. The true reverse step $q_\sigma(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$
# does not know $\mathbf{x}_0$: it averages the kernel above over $q(\mathbf{x}_0 \mid \mathbf{x}_t)$, and by the law of
# total variance its covariance is $\sigma_t^2\mathbf{I} + c_\eta^2\,\mathrm{Cov}[\mathbf{x}_0 \mid \mathbf{x}_t]$.
# The sampler gets the mean right (it puts in $\hat{\mathbf{x}}_0 = \mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t]$) but
# adds only $\sigma_t^2$: each step is short of $c_\eta^2\,\mathrm{Cov}[\mathbf{x}_0 \mid \mathbf{x}_t]$. The cell
# prints $c_\eta$ at one step; section 5 checks the covariance formula on the exact kernel.

# %% id="eta_sweep"
short = respaced(schedule, ETA_STEPS)
abar, abar_prev = short.alpha_bars[1:], short.alpha_bars[:-1]
for eta in (0.0, 0.5, 1.0):
    sig = ddim_sigma(abar, abar_prev, eta)
    print(f"eta = {eta}: sigma_t at the steps {short.timesteps[-1].item()}, {short.timesteps[ETA_STEPS // 2].item()},"
          f" {short.timesteps[1].item()}: {sig[-1]:.3f}, {sig[ETA_STEPS // 2 - 1]:.3f}, {sig[0]:.3f}")
print("eta = 1 against the posterior std sqrt(beta_tilde) of the respaced schedule: largest difference "
      f"{(ddim_sigma(abar, abar_prev, 1.0) ** 2 - short.reverse_variances('posterior')[1:])[1:].abs().max():.1e} "
      "(from index 2 on: at index 1 reverse_variances replaces beta_tilde_1 = 0 by beta_tilde_2)")
mid = ETA_STEPS // 2 - 1  # the jump from index ETA_STEPS // 2 to the one before


def x0_weight(eta: float) -> float:
    """c_eta: the weight of x0 in the mean of DDIM's step at the jump `mid`."""
    a, a_prev = abar[mid].double(), abar_prev[mid].double()
    return (a_prev.sqrt() - (1 - a_prev - ddim_sigma(a, a_prev, eta) ** 2).sqrt() * (a / (1 - a)).sqrt()).item()


print(f"weight c_eta of x0 in the step's mean at step {short.timesteps[mid + 1].item()} -> "
      f"{short.timesteps[mid].item()}: " + ", ".join(f"eta = {eta}: {x0_weight(eta):.3f}" for eta in (0.0, 0.5, 1.0))
      + f"; missing variance c_eta^2 Cov[x0 | x_t], eta = 1 against 0: {(x0_weight(1.0) / x0_weight(0.0)) ** 2:.1f}x")
# One step by hand at index 10 of the 20: DDIM with eta = 1 and DDPM's ancestral step with the posterior variance,
# given the same x_t, the same eps and the same noise z, land on the same point.
g = torch.Generator().manual_seed(SEED + 7)
x_t, z = torch.randn(5, 2, generator=g, dtype=F64), torch.randn(5, 2, generator=g, dtype=F64)
eps = eps_at(eps_model, short, x_t, 10)  # the exact network, called at training step short.timesteps[10]
step_ddim = ddim_step(short, x_t, 10, 9, eps=eps, eta=1.0, noise=z)
step_ddpm = p_sample_step(short, x_t, 10, eps=eps, noise=z, variance="posterior")
print(f"ddim_step(eta = 1) against p_sample_step(variance = 'posterior'): largest difference "
      f"{(step_ddim - step_ddpm).abs().max():.1e}")

etas = (0.0, 0.5, 1.0)
fig, axes = plt.subplots(1, len(etas), figsize=(10, 3.4))
print(f"DDIM with {ETA_STEPS} steps (floor {floor:.3f}, band {floor_band[0]:.3f}-{floor_band[1]:.3f}; true spread "
      f"{TRUE_SPREAD:.3f})")
for ax, eta in zip(axes, etas, strict=True):
    def draw(g, eta=eta):  # a seed's generator draws x_T first, so every eta starts from the same x_T
        return sample(eps_model, schedule, (SW_N, 2), sampler="ddim", num_steps=ETA_STEPS, eta=eta, generator=g)

    sw, eta_spread = measure(draw)
    print(f"eta = {eta}: SW2 {sw:.3f}, spread {eta_spread:.3f} ({eta_spread / TRUE_SPREAD - 1:+.0%})")
    scatter(ax, draw(torch.Generator().manual_seed(SEED)), f"$\\eta = {eta}$: SW2 {sw:.3f}, spread {eta_spread:.3f}",
            f"C{int(2 * eta)}")
fig.suptitle(f"the same x_T (seed {SEED} shown), DDIM with {ETA_STEPS} steps (floor {floor:.3f})", y=1.02)
show(fig, OUT / "eta_sweep.png")

# %% [markdown] id="eta_read"
# The three panels start from the same $\mathbf{x}_T$ and call the same network at the same 20 steps; only the noise
# differs. $\sigma_t(\eta)$ vanishes at the last step for every $\eta$ (there $\bar\alpha_{t-1} = 1$), and $\eta = 1$
# reproduces the posterior variance of the respaced schedule, and DDPM's ancestral step, to rounding.
#
# More noise does not mean more blur: all three spreads are *below* the true one, and the more so the larger $\eta$
# (the printed percentages). This is the missing variance of the box above: the weight $c_\eta$ of $\mathbf{x}_0$
# grows with $\eta$, so a noisier step misses more of $\mathrm{Cov}[\mathbf{x}_0 \mid \mathbf{x}_t]$ (the printed
# ratio at one step), and DDPM's posterior step ($\eta = 1$) misses the most: this is why section 1 found it too narrow
# even at 50 steps. The deficit shrinks with the step ($c_\eta$ falls with it), so with enough steps every $\eta$
# reaches the true spread. Improved variances after training (Analytic-DPM, Bao et al. 2022, in the lecture) add an
# estimate of exactly this term. The sliced distances of the three lie within about the floor's noise band of each
# other: at this sample size they do not rank the three samplers, the spread does.

# %% [markdown] id="decode_intro"
# **One $\mathbf{x}_T$, many step counts.** At $\eta = 0$ the sampler is a map, so we can ask what happens to the
# *same* starting points as the number of steps grows. Each grey line below joins the endpoints of one
# $\mathbf{x}_T$ decoded with 5, 10, ..., 1000 steps; the dot is the 1000-step endpoint. The cell prints, for each
# number of steps, the mean distance to the 1000-step endpoints, the fraction of endpoints nearest to the same
# component as their 1000-step endpoint, and the fraction *inside* a component: within two component standard
# deviations ($2\sqrt{0.03} = 0.35$) of a mean, where $1 - e^{-2} = 86\%$ of true samples lie.

# %% id="decode"
x_T_few = torch.randn(N_DECODE, 2, generator=torch.Generator().manual_seed(SEED + 2), dtype=F64)
decoded = {n: sample(eps_model, schedule, x_T_few.shape, sampler="ddim", num_steps=n, x_T=x_T_few, dtype=F64)
           for n in tqdm(DECODE_STEPS, desc="decoding one x_T")}
final = decoded[DECODE_STEPS[-1]]
for n in DECODE_STEPS[:-1]:
    distance = (decoded[n] - final).norm(dim=1).mean().item()
    print(f"{n:>5} steps: mean distance to the {DECODE_STEPS[-1]}-step endpoint {distance:.4f} "
          f"({distance / COMPONENT_STD:.2f} component std)")
same = {n: (torch.cdist(decoded[n], mixture.means).argmin(1) == torch.cdist(final, mixture.means).argmin(1))
        .double().mean().item() for n in DECODE_STEPS[:-1]}
inside = {n: (torch.cdist(x, mixture.means).min(1).values < 2 * COMPONENT_STD).double().mean().item()
          for n, x in decoded.items()}
print("nearest to the same component as with 1000 steps: " + ", ".join(f"{n} steps {f:.0%}" for n, f in same.items()))
true_inside = (torch.cdist(mixture.sample(20_000, torch.Generator().manual_seed(SEED + 7)), mixture.means)
               .min(1).values < 2 * COMPONENT_STD).double().mean().item()
print(f"inside a component (within 2 std of a mean; true samples {true_inside:.0%}): "
      + ", ".join(f"{n} steps {f:.0%}" for n, f in inside.items()))
path = torch.stack([decoded[n] for n in DECODE_STEPS])  # (steps, N, 2)


def decode_plot(num_steps: int) -> None:
    """The endpoints with num_steps DDIM steps (coloured) beside the 1000-step ones (black)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for i in range(N_DECODE):
        axes[0].plot(path[:, i, 0], path[:, i, 1], color="0.6", lw=0.6)
    axes[0].scatter(final[:, 0], final[:, 1], s=6, color="k", zorder=3)
    axes[0].set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", title="endpoints from 5 to 1000 steps")
    x = sample(eps_model, schedule, x_T_few.shape, sampler="ddim", num_steps=int(num_steps), x_T=x_T_few, dtype=F64)
    axes[1].scatter(x[:, 0], x[:, 1], s=6, color="C1", label=f"{int(num_steps)} steps")
    axes[1].scatter(final[:, 0], final[:, 1], s=6, color="k", label=f"{DECODE_STEPS[-1]} steps")
    axes[1].set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal")
    axes[1].legend(fontsize=8, loc="center")
    show(fig, OUT / "decode_steps.png")


explore(decode_plot, num_steps=(5, 2, 100, 1))

# %% [markdown] id="decode_read"
# At 5 steps the endpoints do not sit inside the components: about half of them lie *between* two (the fraction
# inside, against 86% of true samples), two component standard deviations from where 1000 steps put them. Yet almost
# all are still nearest to the component their 1000-step endpoint is in: the long steps stop short, pulled towards
# the average of the components that are still plausible (each DDIM step aims at $\hat{\mathbf{x}}_0 =
# \mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t]$, early on a weighted average of several means), rather than sending
# points to another component. From 10 steps on the endpoints are inside a component about as often as true samples,
# and by 100 steps they move less than a tenth of a component std. The map $\mathbf{x}_T \mapsto \mathbf{x}_0$
# converges as the steps shrink, because DDIM at $\eta = 0$ is Euler's method for an ODE (section 4): the
# probability-flow ODE of lesson 3, written in the variables $\bar{\mathbf{x}} = \mathbf{x}_t/m_t$ and
# $\sigma_\text{EDM} = s_t/m_t$, where it reads $d\bar{\mathbf{x}} = \boldsymbol\epsilon_\theta\,d\sigma_\text{EDM}$.
# That the same $\mathbf{x}_T$ lands in the same place with any number of steps is what makes the next section
# possible.

# %% [markdown] id="invert_intro"
# ## 3. Inversion and interpolation
#
# Since $\eta = 0$ is a deterministic map, it can be run backwards: the same step from $\mathbf{x}_{t-1}$ up to
# $\mathbf{x}_t$ encodes data into noise (`ddim_invert`). The decoding step at $t$ uses $\boldsymbol\epsilon$ at
# $\mathbf{x}_t$, which the encoder cannot know yet (it is computing $\mathbf{x}_t$); it uses $\boldsymbol\epsilon$
# at $\mathbf{x}_{t-1}$ instead, so the round trip is exact only as the steps shrink. The cell encodes true samples,
# decodes them with the same steps, and prints the relative error $\|\hat{\mathbf{x}}_0 - \mathbf{x}_0\| /
# \|\mathbf{x}_0\|$; `fixed_point_iterations=k` solves each encoding step's own equation with $k$ more calls.

# %% id="invert"
x0_data = mixture.sample(N_INVERT, torch.Generator().manual_seed(SEED + 3))  # float64
print(f"{'steps':>6} {'relative error':>15} {'with 2 fixed-point iterations':>31}   (mean of |x0_hat - x0| / |x0|)")
for n in tqdm(INVERT_STEPS, desc="round trips"):
    errors = []
    for k in (0, 2):
        x_T_inv = ddim_invert(eps_model, schedule, x0_data, num_steps=n, fixed_point_iterations=k)
        back = sample(eps_model, schedule, x0_data.shape, sampler="ddim", num_steps=n, x_T=x_T_inv, dtype=F64)
        errors.append(((back - x0_data).norm(dim=1) / x0_data.norm(dim=1)).mean().item())
    print(f"{n:>6} {errors[0]:15.2e} {errors[1]:31.2e}")

# %% [markdown] id="invert_read"
# The plain round trip improves only slowly with the steps (a first-order mismatch between the two directions);
# two fixed-point iterations per step buy more than an order of magnitude at 100 steps. This is what image editing
# by inversion relies on: encode an image, change the conditioning, decode.

# %% [markdown] id="interp_intro"
# **Interpolation.** Two noises $\mathbf{x}_T^a, \mathbf{x}_T^b$ decode to two samples; what lies between them? A
# straight line $(1-\gamma)\mathbf{x}_T^a + \gamma\mathbf{x}_T^b$, $\gamma \in [0, 1]$, is the wrong path in high
# dimension: Gaussian noise in $D$ dimensions has norm close to $\sqrt D$, and two independent draws are nearly
# orthogonal, so the midpoint has norm close to $\sqrt{D/2}$: a point the network never saw as $\mathbf{x}_T$.
# Spherical interpolation (`slerp`) moves along the great circle, keeping the norm. The cell prints the norms for a
# 2-D and a 784-D (digit-sized) pair, then decodes both paths in our 2-D mixture.

# %% id="interp"
gammas = torch.linspace(0, 1, 41, dtype=F64)  # the position along the path (slerp's `alpha`)
g = torch.Generator().manual_seed(SEED + 4)
for dim in (2, 784):
    a, b = torch.randn(2, dim, generator=g, dtype=F64)
    lin_mid = (0.5 * a + 0.5 * b).norm().item()
    slerp_mid = slerp(a[None], b[None], 0.5).norm().item()
    print(f"D = {dim:>3}: |x_a| = {a.norm():.2f}, |x_b| = {b.norm():.2f}, sqrt(D) = {math.sqrt(dim):.2f}; "
          f"midpoint norm: linear {lin_mid:.2f}, slerp {slerp_mid:.2f}")

a = torch.tensor([1.2, 0.3], dtype=F64)  # two noises whose decodings lie in different components
b = torch.tensor([-0.4, -1.3], dtype=F64)
paths = {"linear": torch.stack([(1 - gamma) * a + gamma * b for gamma in gammas]),
         "slerp": slerp(a.expand(len(gammas), 2), b.expand(len(gammas), 2), gammas)}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
for i, (name, x_T_path) in enumerate(paths.items()):
    x0_path = sample(eps_model, schedule, x_T_path.shape, sampler="ddim", num_steps=50, x_T=x_T_path, dtype=F64)
    axes[0].plot(x_T_path[:, 0], x_T_path[:, 1], ".-", color=f"C{i}", label=name, ms=3)
    axes[1].scatter(x0_path[:, 0], x0_path[:, 1], c=gammas, cmap="viridis", s=14, marker="os"[i], label=name)
axes[0].add_patch(plt.Circle((0, 0), math.sqrt(2), fill=False, ls="--", color="0.5"))
axes[0].set(aspect="equal", xlim=(-2, 2), ylim=(-2, 2), title="paths in $x_T$ (dashed: radius $\\sqrt{2}$)")
axes[0].legend(fontsize=8)
scatter(axes[1], references[0][:500], "their DDIM decodings (colour: $\\gamma$ from 0 to 1)", "0.8")
axes[1].legend(fontsize=8)
show(fig, OUT / "interpolation.png")

# %% [markdown] id="interp_read"
# In 2-D the norm of a Gaussian draw is itself spread out ($|\mathbf{x}_a| = 1.6$, $|\mathbf{x}_b| = 2.4$), so
# "the sphere of radius $\sqrt D$" means little, and both paths decode to points that hop from component to
# component: the deterministic map sends almost all of $\mathbf{x}_T$-space into the components. In 784 dimensions
# the norms concentrate at $\sqrt{784} = 28$, and the linear midpoint has norm about $\sqrt{392} \approx 20$, a
# shell the prior essentially never visits; slerp stays at 28. This is why image interpolations use slerp.

# %% [markdown] id="solvers_intro"
# ## 4. ODE solvers: the deterministic limit
#
# DDIM at $\eta = 0$ is Euler's method for the probability-flow ODE, and Euler's method is first order: its error
# falls like one over the number of steps. In the variable $\lambda = \log(m/s)$, half the log-SNR (notation at the
# top), the ODE has an exact solution up to one integral of the data prediction $\hat{\mathbf{x}}_0$: from step $t$
# to an earlier step $u$,
#
# $$\mathbf{x}_u = \frac{s_u}{s_t}\mathbf{x}_t + s_u\int_{\lambda_t}^{\lambda_u} e^{\lambda}
# \hat{\mathbf{x}}_0(\lambda)\,d\lambda.$$
#
# Holding $\hat{\mathbf{x}}_0$ constant over the step gives DDIM again. **DPM-Solver++(2M)** (Lu et al. 2022, who
# write $\alpha, \sigma$ for $m, s$) extrapolates it linearly through the last two network outputs, one call a step;
# **UniPC** (Zhao et al. 2023) adds a corrector that reuses the next call; **EDM** (Karras et al. 2022) takes Heun
# steps in $\sigma_\text{EDM}$, two calls a step (the last step, to $\sigma_\text{EDM} = 0$, is a plain Euler step, so
# $N$ steps cost $2N - 1$ calls), on a grid crowded near the data (`spacing="karras"`:
# `schedules.karras_timesteps`, $\rho = 7$). The cell compares them at equal NFE, with the exact network, in two
# panels: every solver on the same evenly spaced steps (left), and EDM on its own grid beside DDIM on exactly the same
# steps (right). The grey band is the floor's noise band (section 0).

# %% id="solvers"
def solver_draw(sampler: str, num_steps: int, spacing: str):
    """A draw(generator): `sampler` with num_steps steps of the given spacing, from the generator's x_T."""
    return lambda g: sample(eps_model, schedule, (SW_N, 2), sampler=sampler, num_steps=num_steps, spacing=spacing,
                            generator=g)


def nfe(sampler: str, num_steps: int) -> int:
    return 2 * num_steps - 1 if sampler == "edm" else num_steps


start = time.perf_counter()
# left: every solver on the same evenly spaced steps, a like-for-like comparison (without `spacing`, 2M and UniPC take
# quadratic ones: question 2); EDM gets (NFE + 1) // 2 steps, which cost NFE - 1 or NFE calls
curves = {solver: [sw_to_truth(solver_draw(solver, (n + 1) // 2 if solver == "edm" else n, "uniform")) for n in NFES]
          for solver in tqdm(SOLVERS, desc="solvers, even steps")}
# right: EDM's own grid ("karras": its noise levels mapped to the nearest training steps), EDM and DDIM on it
KARRAS_STEPS = [(n + 1) // 2 for n in NFES]
karras = {sampler: [sw_to_truth(solver_draw(sampler, k, "karras")) for k in KARRAS_STEPS]
          for sampler in tqdm(("edm", "ddim"), desc="EDM's grid")}
print(f"evenly spaced steps: SW2 to the truth (floor {floor:.3f}, band {floor_band[0]:.3f}-{floor_band[1]:.3f}; "
      f"{time.perf_counter() - start:.0f} s for both tables)")
print(f"{'NFE':>5} " + " ".join(f"{s:>9}" for s in SOLVERS))
for j, n in enumerate(NFES):
    print(f"{n:>5} " + " ".join(f"{curves[s][j]:9.3f}" for s in SOLVERS))
for j, n in enumerate(NFES):
    within = [s for s in SOLVERS if curves[s][j] <= floor_band[1]]
    print(f"NFE {n}: inside the floor's band, so not told from the truth: {', '.join(within) or 'none'}")
sigma_edm_range = ((1 - schedule.alpha_bars[[1, T]]) / schedule.alpha_bars[[1, T]]).sqrt().tolist()
print(f"sigma_EDM = s_t / m_t on this schedule: {sigma_edm_range[0]:.3f} at t = 1 to {sigma_edm_range[1]:.0f} "
      f"at t = {T}")
print("EDM's grid (spacing='karras'), EDM's Heun steps and DDIM's Euler steps on the same steps:")
print(f"{'steps':>6} {'EDM: NFE, SW2':>14} {'DDIM: NFE, SW2':>15}   steps visited")
for j, k in enumerate(KARRAS_STEPS):
    print(f"{k:>6} {nfe('edm', k):>7} {karras['edm'][j]:6.3f} {nfe('ddim', k):>8} {karras['ddim'][j]:6.3f}   "
          f"{karras_timesteps(schedule, k).flip(0).tolist() + [0]}")

fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
for ax in axes:
    ax.axhspan(*floor_band, color="0.85", label="floor's noise band")
    ax.axhline(floor, color="k", ls="--", lw=1, label="floor (true samples)")
for solver in SOLVERS:
    axes[0].plot(NFES, curves[solver], "o-", label=solver)
for sampler, color in (("edm", "C3"), ("ddim", "C0")):
    counts = [nfe(sampler, k) for k in KARRAS_STEPS]
    axes[1].plot(counts, karras[sampler], "o-", color=color, label=f"{sampler} on EDM's grid")
    for k, x, y in zip(KARRAS_STEPS, counts, karras[sampler], strict=True):
        axes[1].annotate(f"{k} steps", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=color)
axes[0].set(title="evenly spaced steps")
axes[1].set(title="EDM's grid ($\\rho = 7$): Heun against Euler on the same steps")
karras_nfes = sorted({nfe(sampler, k) for sampler in ("edm", "ddim") for k in KARRAS_STEPS})
for ax, ticks in zip(axes, (NFES, karras_nfes), strict=True):
    ax.set(xscale="log", yscale="log", xlabel="network evaluations (NFE)", ylabel="sliced W2 to the truth")
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlim(min(ticks) / 1.15, max(ticks) * 1.4)
    ax.legend(fontsize=7)
fig.suptitle("quality against NFE, exact network", y=1.02)
show(fig, OUT / "quality_vs_nfe.png")

# %% [markdown] id="solvers_read"
# **Left.** At 5 calls the higher-order solvers (DPM-Solver++, UniPC, EDM's Heun on evenly spaced steps) are clearly
# closer to the truth than DDIM. From 10 calls on the curves come down towards the floor, and a point inside the grey
# band cannot be told from the truth at this sample size: a deterministic sampler can even come out below the floor
# line. The lines under the table name the solvers inside the band at each NFE. With fast mode's 5000 points and 2
# seeds the band is wide, and from 10 calls on every solver is inside it: they cannot be told from the truth, nor
# from one another. The full run (20,000 points, 5 seeds) has a narrower band, and at 10 calls all four are still
# above it, DPM-Solver++ and UniPC closer to it than DDIM and EDM. With a trained network its own error adds a second
# floor. (The course repository's `benchmarks/sampler_nfe.py`, which the student edition does not ship, measures
# these curves beside diffusers' schedulers.)
#
# **Right: EDM's grid is a warning about transplanting a recipe.** On this schedule $\sigma_\text{EDM}$ runs from 0.01
# to 157, not EDM's 0.002 to 80, and $\rho = 7$ crowds the levels near the data. With 3 or 5 steps EDM is far worse
# than with evenly spaced steps, and far worse than DDIM on *exactly the same steps* with half the calls. So the grid
# alone is not the culprit, nor a single jump to step 1: the 5-step grid (the printed steps) has a step at 143, and
# still fails. With 10 steps EDM no longer fails on this grid (it is about level with DDIM on the same steps, though
# behind its own evenly spaced steps), and with 25 steps (full run) it reaches the floor's band, as the evenly spaced
# solvers do at 50 calls. The next cell shows what goes wrong with few steps: Heun's correction.

# %% [markdown] id="edm_intro"
# **Why Heun fails where Euler does not.** In $\bar{\mathbf{x}} = \mathbf{x}_t/m_t$ the ODE reads
# $d\bar{\mathbf{x}}/d\sigma_\text{EDM} = \boldsymbol\epsilon(\bar{\mathbf{x}}, \sigma_\text{EDM})$ (section 2). Take
# data from one component, $\mathcal{N}(\boldsymbol\mu, v\mathbf{I})$ with $v = 0.03$. Then $\bar{\mathbf{x}} =
# \mathbf{x}_0 + \sigma_\text{EDM}\boldsymbol\epsilon$ is $\mathcal{N}(\boldsymbol\mu, (v + \sigma_\text{EDM}^2)
# \mathbf{I})$, and Gaussian conditioning ($\mathrm{Cov}[\boldsymbol\epsilon, \bar{\mathbf{x}}] = \sigma_\text{EDM}
# \mathbf{I}$) gives the exact slope
#
# $$\boldsymbol\epsilon^*(\bar{\mathbf{x}}, \sigma_\text{EDM}) = \kappa(\sigma_\text{EDM})\,(\bar{\mathbf{x}} -
# \boldsymbol\mu), \qquad \kappa(\sigma_\text{EDM}) = \frac{\sigma_\text{EDM}}{v + \sigma_\text{EDM}^2},$$
#
# linear, with a rate $\kappa$ that peaks at $1/(2\sqrt v) = 2.9$ where $\sigma_\text{EDM} = \sqrt v$. (Numerical
# analysts write this rate $\lambda$; here $\lambda$ is the half log-SNR.) Write $\varsigma_t$ for
# $\sigma_\text{EDM}$ at step $t$ (problem set 4's name for it). A Heun step from $\varsigma_t$ to $\varsigma_u <
# \varsigma_t$, $h = \varsigma_u - \varsigma_t < 0$, first takes Euler's step, DDIM's, to
# $\bar{\mathbf{x}}' = \bar{\mathbf{x}}_t + h\,\boldsymbol\epsilon(\bar{\mathbf{x}}_t, \varsigma_t)$, then corrects it
# with the slope found there:
#
# $$\bar{\mathbf{x}}_u = \bar{\mathbf{x}}_t + \tfrac{h}{2}\big[\boldsymbol\epsilon(\bar{\mathbf{x}}_t, \varsigma_t) +
# \boldsymbol\epsilon(\bar{\mathbf{x}}', \varsigma_u)\big] = \boldsymbol\mu +
# \Big(1 + \frac{h\,\kappa(\varsigma_u)}{2}\Big) (\bar{\mathbf{x}}' - \boldsymbol\mu) - \tfrac{h}{2}\,\boldsymbol\epsilon(\bar{\mathbf{x}}_t, \varsigma_t).$$
#
# The last term is fixed by the start, so the corrected point moves with the Euler point by the factor $1 +
# h\kappa(\varsigma_u)/2$. For a lone Gaussian the Euler point is close to right and the terms nearly cancel. With
# several components, though, a long Euler step lands between them, towards the average of the components still
# plausible (as section 2's 5-step endpoints did), and the correction multiplies that displacement by the factor.
# Once $h\kappa(\varsigma_u) < -4$ the factor is below $-1$: the point is thrown to the far side of the component,
# farther off than the Euler point was. This is *stiffness*: an explicit method is only stable while $|h\kappa|$ is
# small (for $\kappa$ held fixed, Euler's and Heun's both need $-2 \le h\kappa \le 0$). Euler's step reads the slope
# only at its start, where $\sigma_\text{EDM}$ is large and $\kappa$ small, so its own factor $1 + h\kappa(\varsigma_t)$
# stays inside $[-1, 1]$; Heun's correction also reads it at the end, and a long step that ends where the components
# separate ($\sigma_\text{EDM}$ near $\sqrt v$, where $\kappa$ peaks) puts $h\kappa(\varsigma_u)$ far outside.
#
# The cell follows `N_STIFF` points along the exact ODE solution (DDIM one training step at a time). For each step
# of EDM's 3-, 5- and 10-step grids it prints Euler's factor, $h\kappa(\varsigma_u)$ and the correction's factor, and
# it takes one Euler step and one Heun step from the exact state at the step's start and measures how far each lands
# from the exact state at its end. For the step with the lowest correction factor it draws the Euler points, Heun's
# points and the exact ones, and measures the correction's actual gain for the mixture: the eigenvalues of
# $\partial\bar{\mathbf{x}}_u / \partial\bar{\mathbf{x}}'$ at the Euler points, by finite differences of the exact
# $\boldsymbol\epsilon$.

# %% id="edm_stiff"
sigma_edm = ((1 - schedule.alpha_bars) / schedule.alpha_bars).sqrt().double()  # at every training step
m = schedule.alpha_bars.double().sqrt()
STIFF_GRIDS = (3, 5, 10)


def kappa(sig: float) -> float:
    """The rate of the exact slope eps* = kappa (x_bar - mu) for one component of variance COMPONENT_VAR."""
    return sig / (COMPONENT_VAR + sig ** 2)


def grid_steps(num_steps: int) -> list[tuple[int, int, float, float]]:
    """(t, u, h kappa(varsigma_t), h kappa(varsigma_u)) for every Heun step t -> u of EDM's grid with num_steps steps
    (the last, to 0, is Euler's)."""
    grid = karras_timesteps(schedule, num_steps).flip(0).tolist()
    steps = []
    for t, u in zip(grid[:-1], grid[1:], strict=True):
        h = (sigma_edm[u] - sigma_edm[t]).item()
        steps.append((t, u, h * kappa(sigma_edm[t].item()), h * kappa(sigma_edm[u].item())))
    return steps


# the exact ODE solution of N_STIFF points: DDIM one training step at a time, kept at every step of the grids
x_T_stiff = torch.randn(N_STIFF, 2, generator=torch.Generator().manual_seed(SEED), dtype=F64)
visited = {t for n in STIFF_GRIDS for step in grid_steps(n) for t in step[:2]}
exact, x = {}, x_T_stiff
for t in range(T, 0, -1):
    if t in visited:
        exact[t] = x
    x = ddim_step(schedule, x, t, t - 1, eps=eps_at(eps_model, schedule, x, t))


def one_step(t: int, u: int) -> dict[str, torch.Tensor]:
    """Euler's and Heun's step t -> u from the exact state at t, and the exact state at u, all in x_bar = x / m_u."""
    eps_t = eps_at(eps_model, schedule, exact[t], t)
    euler = edm_step(schedule, exact[t], t, u, eps=eps_t)  # no correction: Euler's step, which is DDIM's
    heun = edm_step(schedule, exact[t], t, u, eps=eps_t, eps_at_end=lambda x: eps_at(eps_model, schedule, x, u))
    return {"exact": exact[u] / m[u], "Euler": euler / m[u], "Heun": heun / m[u]}


def error(step: dict[str, torch.Tensor], name: str) -> float:
    return (step[name] - step["exact"]).norm(dim=1).mean().item()


for num_steps in STIFF_GRIDS:
    print(f"EDM's grid with {num_steps} steps (NFE {nfe('edm', num_steps)}). Factors for one component: Euler's "
          "1 + h kappa(varsigma_t), the correction's 1 + h kappa(varsigma_u) / 2; error of one step from the exact "
          "state (mean distance to the exact state, in x_bar)")
    print(f"  {'step':>11} {'sigma_EDM':>17} {'Euler':>6} {'h kappa(varsigma_u)':>20} {'correction':>11}"
          f" {'error: Euler':>13} {'Heun':>5}")
    for t, u, h_kappa_t, h_kappa_u in grid_steps(num_steps):
        step = one_step(t, u)
        print(f"  {t:>4} -> {u:>3} {sigma_edm[t]:7.3f} -> {sigma_edm[u]:6.3f} {1 + h_kappa_t:6.2f} {h_kappa_u:20.2f} "
              f"{1 + h_kappa_u / 2:11.2f} {error(step, 'Euler'):13.2f} {error(step, 'Heun'):5.2f}")
    print(f"  {grid_steps(num_steps)[-1][1]:>4} ->   0: Euler's step alone (EDM's last)")

STIFF_GRID = 5
t_from, t_to, _, h_kappa = min(grid_steps(STIFF_GRID), key=lambda step: step[3])
bar = one_step(t_from, t_to)
print(f"\nthe step {t_from} -> {t_to} of the {STIFF_GRID}-step grid, {N_STIFF} points from the exact state:")
print(f"  one component: h kappa(varsigma_u) = {h_kappa:.2f}, the correction's factor 1 + h kappa / 2 = "
      f"{1 + h_kappa / 2:.2f}")
delta = 1e-5


def eps_bar(x_bar: torch.Tensor) -> torch.Tensor:
    return eps_at(eps_model, schedule, m[t_to] * x_bar, t_to)  # the exact eps at step t_to, as a function of x_bar


jacobian = torch.stack([(eps_bar(bar["Euler"] + delta * e) - eps_bar(bar["Euler"] - delta * e)) / (2 * delta)
                        for e in torch.eye(2, dtype=F64)], dim=2)  # (N, 2, 2): d eps / d x_bar at the Euler points
h = (sigma_edm[t_to] - sigma_edm[t_from]).item()
gain = torch.eye(2, dtype=F64) + h / 2 * jacobian
eigenvalues = torch.linalg.eigvalsh((gain + gain.transpose(1, 2)) / 2).flatten()
quantiles = eigenvalues.quantile(torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=F64))
print("  the mixture: the gain's eigenvalues at the Euler points, quantiles 10/25/50/75/90%: "
      + ", ".join(f"{q:.2f}" for q in quantiles.tolist())
      + f"; |gain| > 1 for {(eigenvalues.abs() > 1).double().mean():.0%} of them")
for name in ("Euler", "Heun"):
    print(f"  {name:>5}: spread {spread(bar[name]):.2f} (exact: {spread(bar['exact']):.2f}), largest |x_bar| "
          f"{bar[name].norm(dim=1).max():.1f}")
edm_end = sample(eps_model, schedule, (N_STIFF, 2), sampler="edm", num_steps=STIFF_GRID, spacing="karras",
                 x_T=x_T_stiff, dtype=F64)
ddim_end = sample(eps_model, schedule, (N_STIFF, 2), sampler="ddim", num_steps=STIFF_GRID, spacing="karras",
                  x_T=x_T_stiff, dtype=F64)  # the same x_T and the same steps
print(f"at the end ({STIFF_GRID} steps): spread EDM {spread(edm_end):.2f}, DDIM {spread(ddim_end):.2f}, true "
      f"{TRUE_SPREAD:.3f}")

fig, axes = plt.subplots(1, 5, figsize=(16, 3.5))
panels = [(bar["Euler"], f"Euler's point at step {t_to}\n(DDIM's step)", "C0"),
          (bar["Heun"], f"Heun's correction at step {t_to}\n(EDM's step; note the scale)", "C3"),
          (bar["exact"], f"exact ODE solution at step {t_to}", "k"),
          (edm_end, f"EDM at the end\n({STIFF_GRID} steps, NFE {nfe('edm', STIFF_GRID)}; note the scale)", "C3"),
          (ddim_end, f"DDIM at the end\n(same {STIFF_GRID} steps, NFE {STIFF_GRID})", "C0")]
for ax, (x, title, color) in zip(axes, panels, strict=True):
    lim = max(LIM, 1.05 * x.abs().max().item())  # the wide views show every point
    ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.4, color=color)
    ax.scatter(mixture.means[:, 0], mixture.means[:, 1], marker="+", color="0.4", s=30)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
fig.suptitle(f"left: one step {t_from} -> {t_to} of EDM's {STIFF_GRID}-step grid ($\\sigma_\\mathrm{{EDM}}$ "
             f"{sigma_edm[t_from]:.2f} -> {sigma_edm[t_to]:.2f}) from the exact state, in $\\bar x = x_t / m_t$; "
             "right: whole runs from the same $x_T$ (+: component means)", y=1.04)
show(fig, OUT / "edm_stiffness.png")

# %% [markdown] id="edm_read"
# Read the error columns against the correction's factor. On the 3-step grid it is the *first* step, from 1000 to
# 594 (factor about $-12$), that ruins Heun's result, with an error many times Euler's; the long jump from 594 to step
# 1 has a factor near 0 and costs Heun only about twice Euler's error. On the 5-step grid two steps have a factor
# below $-1$, and on both Heun lands several times farther off than Euler: the step into $\sigma_\text{EDM} = 5.9$,
# and worst, at $-3.9$, the step into $0.49$, where the components have just separated. With 10 steps every factor is
# above $-1$ and no step amplifies; Heun's one-step errors are then about Euler's, so its second order only starts to
# pay with shorter steps still (the 25-step point of the right panel, full run).
#
# The measured gain agrees with the formula where it should: at the Euler points that sit near one component the
# eigenvalues are the formula's (the low quantiles); between two components they are larger still and positive,
# because there $\boldsymbol\epsilon$ switches from one component to the other. Either way almost all of them lie
# far outside $[-1, 1]$. Heun's points spread far beyond the components, and the remaining steps (factor near 1, then
# the last Euler step) cannot bring them back (the spreads at the end, printed last). DDIM on the same grid keeps its
# Euler points: inaccurate, but not amplified. EDM's recipe (18 steps over $\sigma_\text{EDM}$ from 0.002 to 80) was
# tuned on images; on another schedule, or other data, a grid needs this check before a higher-order method pays off.

# %% [markdown] id="kernel_intro"
# ## 5. Why a Gaussian step fails with few steps
#
# For mixture data the true reverse kernel $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ is itself a Gaussian mixture
# with one component per data component, weighted by how likely each is to have produced $\mathbf{x}_t$
# (`reverse_kernel`, derived in its module). For a small step the weights and means collapse into one nearly
# Gaussian bump, so Algorithm 2's Gaussian is right. On a 4-step schedule the jumps are huge, and the kernel keeps
# several modes. The cell draws both for one $\mathbf{x}_t$, counts the kernel's modes on a grid (`grid_modes`) and
# measures $\mathrm{KL}(q \,\|\, p)$ for DDPM's Gaussian step and for the best Gaussian (the moment-matched one).

# %% id="kernel"
big = respaced(schedule, KERNEL_STEPS)
t_big = KERNEL_STEPS // 2  # index 2 of 4: the jump from training step 500 to 250
x_t_point = torch.tensor([0.6, 0.3], dtype=F64)
small = respaced(schedule, None)  # the full schedule: one training step
t_small = int(big.timesteps[t_big])
kernels = {"big step": (reverse_kernel(mixture, big, x_t_point, t_big),
                        gaussian_reverse_step(mixture, big, x_t_point, t_big, variance="posterior")),
           "one training step": (reverse_kernel(mixture, small, x_t_point, t_small),
                                 gaussian_reverse_step(mixture, small, x_t_point, t_small, variance="posterior"))}
steps_of = {"big step": (int(big.timesteps[t_big]), int(big.timesteps[t_big - 1])),
            "one training step": (t_small, t_small - 1)}
indices = {"big step": (big, t_big), "one training step": (small, t_small)}  # (schedule, index) of each step

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (name, (true_kernel, gauss)) in zip(axes, kernels.items(), strict=True):
    modes = grid_modes(true_kernel, -LIM, LIM, n=161)
    kl_gauss, _ = kl_monte_carlo(true_kernel, gauss, n=20_000, generator=torch.Generator().manual_seed(SEED))
    kl_best, _ = kl_monte_carlo(true_kernel, moment_matched_gaussian(true_kernel), n=20_000,
                                generator=torch.Generator().manual_seed(SEED))
    step_from, step_to = steps_of[name]
    print(f"{name} (t = {step_from} -> {step_to}): {len(modes)} modes; KL(q || DDPM's Gaussian) = {kl_gauss:.2f} "
          f"nats, KL(q || best Gaussian) = {kl_best:.2f} nats")
    # section 2's missing variance: Cov[q] = beta_tilde I + c^2 Cov[x0 | x_t] (the law of total variance)
    sched, index = indices[name]
    a, a_prev = sched.alpha_bars[index].double(), sched.alpha_bars[index - 1].double()
    c = (a_prev.sqrt() * (1 - a / a_prev) / (1 - a)).item()  # the weight of x0 in the posterior mean (c_eta at 1)
    missing = c ** 2 * reverse_kernel(mixture, sched, x_t_point, index, 0).covariance()  # c^2 Cov[x0 | x_t]
    gap = (true_kernel.covariance() - (gauss.covariance() + missing)).abs().max()
    print(f"  Cov[q] = beta_tilde I + c^2 Cov[x0 | x_t] to {gap:.0e}; per coordinate: beta_tilde "
          f"{gauss.covariance()[0, 0]:.4f}, missing c^2 Cov[x0 | x_t] {missing.diagonal().mean():.4f}")
    centre = true_kernel.mean()
    half = 3.5 * max(true_kernel.covariance().diagonal().max().sqrt().item(), 0.05)
    axis = torch.linspace(-half, half, 201, dtype=F64)
    gx, gy = torch.meshgrid(axis + centre[0], axis + centre[1], indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    ax.contour(gx, gy, true_kernel.log_prob(grid).exp().reshape(gx.shape), levels=8, cmap="Blues")
    ax.contour(gx, gy, gauss.log_prob(grid).exp().reshape(gx.shape), levels=5, colors="C3", linewidths=0.8)
    ax.scatter(modes[:, 0], modes[:, 1], marker="x", color="k", zorder=3, label="modes of q")
    ax.set(aspect="equal", title=f"{name}: $t = {step_from} \\to {step_to}$")
    ax.legend(fontsize=8, loc="lower right")
fig.suptitle(f"exact $q(x_{{t-1}} | x_t)$ (blue) and DDPM's Gaussian step (red), $x_t = {x_t_point.tolist()}$", y=1.0)
show(fig, OUT / "reverse_kernel.png")

# %% [markdown] id="kernel_read"
# For one training step the true kernel is a single bump and DDPM's Gaussian matches it (KL 0 to the printed
# precision). For the big jump the kernel has several separated modes, one per data component still plausible from
# $\mathbf{x}_t$; DDPM's Gaussian sits between them, and even the best Gaussian (the one with the kernel's own mean
# and covariance) loses a measurable KL. More training cannot fix this: it is the form of the step that is wrong.
#
# The second line under each step checks section 2's claim on the exact kernel: its covariance is DDPM's
# $\tilde\beta\mathbf{I}$ plus $c^2\,\mathrm{Cov}[\mathbf{x}_0 \mid \mathbf{x}_t]$, to rounding. For one training step
# the missing part is negligible beside $\tilde\beta$; for the big step it is the larger of the two. A Gaussian step
# with the exact mean and $\tilde\beta$ is short of that much variance, which is why DDPM's posterior variance gave
# too narrow samples in section 1.

# %% [markdown] id="ddgan_intro"
# **Denoising diffusion GANs** (Xiao, Kreis & Vahdat 2022) keep the few big steps and replace the Gaussian with an
# implicit model that can have many modes: a generator $G_\theta(\mathbf{x}_t, \mathbf{z}, t)$, $\mathbf{z} \sim
# \mathcal{N}(\mathbf{0}, \mathbf{I})$, proposes a clean $\mathbf{x}_0'$, and $\mathbf{x}_{t-1}$ is drawn from the
# posterior $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0')$:
#
# $$p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \int q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)\,
# p_\theta(\mathbf{x}_0 \mid \mathbf{x}_t)\,d\mathbf{x}_0 .$$
#
# It is trained to match the true step at every $t$ in an adversarial divergence,
# $\min_\theta \sum_{t \ge 1}\mathbb{E}_{q(\mathbf{x}_t)}\big[D_\text{adv}\big(q(\mathbf{x}_{t-1} \mid
# \mathbf{x}_t)\,\|\,p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)\big)\big]$, realised as a GAN game with a
# discriminator $D_\phi(\mathbf{x}_{t-1}, \mathbf{x}_t, t)$ (a logit) that sees *pairs*. Real pairs come from the
# forward process ($\mathbf{x}_0$ from the data, $\mathbf{x}_{t-1} \sim q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)$,
# $\mathbf{x}_t \sim q(\mathbf{x}_t \mid \mathbf{x}_{t-1})$), fake ones replace $\mathbf{x}_{t-1}$ by a draw of
# $p_\theta(\cdot \mid \mathbf{x}_t)$. With $\mathrm{sp}(a) = \log(1 + e^a)$ (so $\mathrm{sp}(-D) = -\log
# \mathrm{sigmoid}(D)$), the package's losses (`ddgan.discriminator_loss`, `ddgan.generator_loss`) are
#
# $$L_D = \mathbb{E}\big[\mathrm{sp}(-D_\phi(\mathbf{x}_{t-1}, \mathbf{x}_t, t))\big] +
# \mathbb{E}\big[\mathrm{sp}(D_\phi(\mathbf{x}_{t-1}', \mathbf{x}_t, t))\big] + \frac{\gamma_{R1}}{2}\,
# \mathbb{E}\big\|\nabla_{\mathbf{x}_{t-1}} D_\phi(\mathbf{x}_{t-1}, \mathbf{x}_t, t)\big\|^2, \qquad
# L_G = \mathbb{E}\big[\mathrm{sp}(-D_\phi(\mathbf{x}_{t-1}', \mathbf{x}_t, t))\big],$$
#
# with $t$ uniform over the steps, real $\mathbf{x}_{t-1}$ in the first and last terms of $L_D$, the generator's
# $\mathbf{x}_{t-1}'$ elsewhere, and an R1 penalty (weight $\gamma_{R1}$) that keeps $D_\phi$ smooth on real
# pairs ($\gamma_{R1} = 0.05$ here). $L_G$ is the non-saturating generator loss; $D$ and $G$ take turns, one update
# each.
#
# If $G$ drew $\mathbf{x}_0'$ from the exact $q(\mathbf{x}_0 \mid \mathbf{x}_t)$, the sampler would be exact with
# any number of steps: the cell runs that *perfect generator* (`reverse_kernel_sample` down to step 0) beside a small
# trained DDGAN and DDPM, all with `DDGAN_STEPS` steps. The trained one is tiny and short-trained in fast mode.

# %% id="ddgan"
ddgan_schedule = respaced(schedule, DDGAN_STEPS)
train_data = mixture.sample(20_000, torch.Generator().manual_seed(SEED + 5)).float()
start = time.perf_counter()
ddgan = train_ddgan(train_data, ddgan_schedule, steps=DDGAN_ITERATIONS, lr=DDGAN_LR, hidden=64, depth=2,
                    seed=SEED)
print(f"DDGAN: {DDGAN_ITERATIONS} iterations in {time.perf_counter() - start:.0f} s")
print(f"what x_T keeps of x0: alpha_bar_T = {schedule.alpha_bars[T].item():.1e}, "
      f"m_T = sqrt(alpha_bar_T) = {schedule.alpha_bars[T].sqrt().item():.4f}")
ddgan.G.eval()


def perfect_G(x_t, z, t):
    """x0' ~ q(x0 | x_t): the exact reverse kernel down to the data, the best any DDGAN generator can do."""
    return reverse_kernel_sample(mixture, ddgan_schedule, x_t.to(F64), int(t[0]), 0,
                                 generator=torch.Generator().manual_seed(int(t[0]))).float()


with torch.no_grad():
    results = {
        f"DDPM, {DDGAN_STEPS} steps": lambda g: sample(eps_model, schedule, (SW_N, 2), sampler="ddpm",
                                                       num_steps=DDGAN_STEPS, generator=g, variance="posterior"),
        f"DDIM, {DDGAN_STEPS} steps": lambda g: sample(eps_model, schedule, (SW_N, 2), sampler="ddim",
                                                       num_steps=DDGAN_STEPS, generator=g),
        f"trained DDGAN, {DDGAN_STEPS} steps": lambda g: ddgan_sample(ddgan.G, ddgan_schedule, (SW_N, 2), generator=g),
        f"perfect DDGAN, {DDGAN_STEPS} steps": lambda g: ddgan_sample(perfect_G, ddgan_schedule, (SW_N, 2), z_dim=1,
                                                                      generator=g)}
    fig, axes = plt.subplots(1, len(results), figsize=(3.3 * len(results), 3.4))
    sws = {}
    for ax, (name, draw) in zip(axes, results.items(), strict=True):
        sws[name] = sw = sw_to_truth(draw)
        print(f"{name:>28}: SW2 {sw:.3f} (floor {floor:.3f})")
        scatter(ax, draw(torch.Generator().manual_seed(SEED))[:3000], f"{name}\nSW2 {sw:.3f}")
show(fig, OUT / "ddgan.png")
trained = sws[f"trained DDGAN, {DDGAN_STEPS} steps"]
gaussian = [sws[f"{name}, {DDGAN_STEPS} steps"] for name in ("DDPM", "DDIM")]
where = "ahead of" if trained < min(gaussian) else "behind" if trained > max(gaussian) else "between"
print(f"the trained DDGAN ({DDGAN_ITERATIONS} iterations, seed {SEED}) is {where} DDPM and DDIM, at "
      f"{trained / floor:.1f} times the floor")

# %% [markdown] id="ddgan_read"
# With 4 steps DDPM (posterior variance) and DDIM both blur the components; the perfect generator is at the floor
# (within its band), because each of its steps samples the true multimodal kernel: the *form* of its step is right at
# any step size, which a Gaussian's is not. The small trained DDGAN shows the other side of the method: it is a GAN,
# far from that bound after a short training, and how far depends on the run. The last line printed places this
# run's DDGAN against the two Gaussian samplers; the next cell trains it with other seeds too (full run), and the
# paper's networks are far larger and train for hundreds of thousands of iterations.
#
# **Against a one-shot GAN: mode coverage.** The lecture's claim for DDGANs, beside quality in few steps, is the
# trilemma's second corner: better mode coverage and more stable training than a GAN that generates in one shot. A
# DDGAN with *one* step is such a GAN: its generator maps $(\mathbf{x}_T, \mathbf{z})$ to $\mathbf{x}_0$, and
# $\mathbf{x}_T$ carries almost nothing of $\mathbf{x}_0$ ($\bar\alpha_T = 4 \cdot 10^{-5}$, printed above). Why should
# more steps cover the modes better?
#
# - *Each step's problem is simpler.* The one-shot generator must tear one Gaussian into eight separated pieces with
#   the right masses. A DDGAN step only has to produce $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$, a few overlapping
#   modes near $\mathbf{x}_t$ (the big step above has 4); the eight components are spread out by the chain, step by
#   step.
# - *The forward process supplies the coverage.* The discriminator judges $\mathbf{x}_{t-1}$ given an
#   $\mathbf{x}_t$ drawn from the true $q(\mathbf{x}_t)$, which covers every component. A generator that ignored
#   some component would produce pairs that contradict their $\mathbf{x}_t$ for every $\mathbf{x}_t$ near it, and
#   $D$ sees that directly; in a one-shot GAN a missing mode only shows as missing mass, which $D$ can pick up only
#   where $G$ puts points, so nothing pulls $G$ back to a mode it has left.
# - *Noisy inputs on both sides.* Real and fake $\mathbf{x}_{t-1}$ both carry the posterior's Gaussian noise, so their
#   distributions overlap and $D$'s gradients stay informative (the "instance noise" trick for stable GANs).
#
# The cell trains the same networks with one step and with `DDGAN_STEPS` steps, for each seed of `GAN_SEEDS`, and
# counts the components each covers: a component counts when at least a tenth of its share of the points lands
# within three standard deviations of its mean ($1 - e^{-9/2} = 99\%$ of a true component's points do). It also
# prints the total variation between the shares of points nearest each component and the true weights.

# %% id="one_shot"
def coverage(x: torch.Tensor) -> tuple[int, float]:
    """(components covered, TV distance between the shares of points nearest each component and the weights)."""
    distance, nearest = torch.cdist(x.to(F64), mixture.means).min(dim=1)
    inside = torch.bincount(nearest[distance < 3 * COMPONENT_STD], minlength=8).double() / len(x)
    shares = torch.bincount(nearest, minlength=8).double() / len(x)
    return int((inside >= 0.1 * mixture.weights).sum()), 0.5 * (shares - mixture.weights).abs().sum().item()


print(f"true samples: {coverage(references[0])[0]} of 8 components covered, TV {coverage(references[0])[1]:.3f}")
gans = {}
start = time.perf_counter()
for steps in (1, DDGAN_STEPS):
    gan_schedule = respaced(schedule, steps)
    for seed in tqdm(GAN_SEEDS, desc=f"GANs with {steps} step(s)"):
        if steps == DDGAN_STEPS and seed == SEED:
            model = ddgan  # trained above
        else:
            model = train_ddgan(train_data, gan_schedule, steps=DDGAN_ITERATIONS, lr=DDGAN_LR, hidden=64, depth=2,
                                seed=seed, progress=False)
        model.G.eval()
        with torch.no_grad():
            def draw(g, G=model.G, sched=gan_schedule):
                return ddgan_sample(G, sched, (SW_N, 2), generator=g)

            x = draw(torch.Generator().manual_seed(SEED))
            gans[steps, seed] = (*coverage(x), sw_to_truth(draw), x[:3000])
print(f"{len(GAN_SEEDS) * 2 - 1} GAN(s) trained in {time.perf_counter() - start:.0f} s, {DDGAN_ITERATIONS} iterations "
      f"each; coverage and TV from {SW_N} points of one sampling seed, SW2 the median over {SW_SEEDS} sampling seeds")
print(f"{'steps':>5} {'training seed':>14} {'covered':>8} {'TV':>6} {'SW2':>6}")
for (steps, seed), (covered, tv, sw, _) in gans.items():
    print(f"{steps:>5} {seed:>14} {covered:>6}/8 {tv:6.3f} {sw:6.3f}")
for steps in (1, DDGAN_STEPS):
    print(f"{steps} step(s), the worst training seed: {min(gans[steps, s][0] for s in GAN_SEEDS)} of 8 components "
          f"covered, TV {max(gans[steps, s][1] for s in GAN_SEEDS):.3f}")

fig, axes = plt.subplots(2, len(GAN_SEEDS), figsize=(3.3 * len(GAN_SEEDS), 6.6), squeeze=False)
for row, steps in enumerate((1, DDGAN_STEPS)):
    for col, seed in enumerate(GAN_SEEDS):
        covered, tv, sw, x = gans[steps, seed]
        name = "one-shot GAN" if steps == 1 else f"DDGAN, {steps} steps"
        scatter(axes[row, col], x, f"{name}, seed {seed}\n{covered}/8 covered, TV {tv:.2f}",
                "C3" if steps == 1 else "C0")
show(fig, OUT / "gan_coverage.png")

# %% [markdown] id="one_shot_read"
# Compare the worst seed of each (the last two lines). In fast mode (200 iterations, one seed) both GANs are barely
# trained, and the one-shot GAN has collapsed onto a few components while the DDGAN, with the same networks, data and
# iterations, already reaches most of them. In the full run (3000 iterations, three seeds) every GAN reaches all eight
# components, and the difference is in the masses: the one-shot GAN's total variation changes a lot from seed to
# seed, and its worst seed misplaces more than twice as much mass as the DDGAN's worst. Mode coverage is what the
# chain buys; quality is still the GANs' weak side at this size (compare the SW2 column with the perfect generator's),
# and the DDGAN's own SW2 lands ahead of or behind DDPM's and DDIM's of the previous cell depending on the seed: GAN
# training is that sensitive.

# %% [markdown] id="distill_intro"
# ## 6. Progressive distillation
#
# DDIM with $N$ steps at $\eta = 0$ is a fixed map $\mathbf{x}_T \mapsto \mathbf{x}_0$. Progressive distillation
# (Salimans & Ho 2022) trains a student, started as a copy of the teacher, so that *one* of its DDIM steps lands
# where *two* of the teacher's land: from $\mathbf{z}_t$ the teacher takes two steps to $\mathbf{z}_{t''}$, and the
# student's target is the $\tilde{\mathbf{x}}$ for which one DDIM step from $\mathbf{z}_t$ gives exactly
# $\mathbf{z}_{t''}$:
#
# $$\tilde{\mathbf{x}} = \frac{\mathbf{z}_{t''} - (s_{t''}/s_t)\,\mathbf{z}_t}{m_{t''} - (s_{t''}/s_t)\,m_t}$$
#
# ($m, s$ as at the top; Salimans & Ho write $\alpha_t, \sigma_t$, and $\mathbf{z}_t$ for the noisy state). The
# student then becomes the teacher, and $N$ halves again. Seen from training, each student is a model *trained for
# fewer steps*: its loss asks for good jumps of exactly its own size, which $L_\text{simple}$ never does. Here a small
# MLP is trained on two moons with $L_\text{simple}$ (the teacher), then distilled from `DISTILL_FROM` steps down to
# `DISTILL_TO`.

# %% id="teacher"
moons = toy_2d("two_moons", 20_000, torch.Generator().manual_seed(SEED + 6))
moon_refs = [toy_2d("two_moons", MOON_N, torch.Generator().manual_seed(SEED + REFERENCE_SEED + 100 + i))
             for i in range(SW_SEEDS)]


def sw_to_moons(model, num_steps: int) -> float:
    """Median over seeds of SW2(DDIM with num_steps of `model`, fresh two-moons references)."""
    with torch.no_grad():
        return float(np.median([sliced_wasserstein(
            sample(model, schedule, (MOON_N, 2), sampler="ddim", num_steps=num_steps,
                   generator=torch.Generator().manual_seed(SEED + i)),
            moon_refs[i], num_projections=SW_PROJECTIONS, generator=torch.Generator().manual_seed(i))
            for i in range(SW_SEEDS)]))


with torch.random.fork_rng():
    torch.manual_seed(SEED)
    teacher = MLPEps(dim=2, hidden=HIDDEN, depth=3)
optimizer = torch.optim.Adam(teacher.parameters(), lr=2e-3)
g = torch.Generator().manual_seed(SEED)
start = time.perf_counter()
for _ in tqdm(range(TEACHER_ITERATIONS), desc="training the teacher (L_simple)"):
    batch = moons[torch.randint(0, len(moons), (256,), generator=g)]
    loss = l_simple(teacher, schedule, batch, generator=g)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
teacher.eval().requires_grad_(False)
moons_floor = float(np.median([sliced_wasserstein(toy_2d("two_moons", MOON_N, torch.Generator().manual_seed(SEED + i)),
                                                  moon_refs[i], num_projections=SW_PROJECTIONS,
                                                  generator=torch.Generator().manual_seed(i))
                               for i in range(SW_SEEDS)]))
print(f"teacher: {TEACHER_ITERATIONS} iterations in {time.perf_counter() - start:.0f} s, final loss {loss:.3f}; "
      f"two-moons floor {moons_floor:.3f}")

# %% id="distill"
start = time.perf_counter()
# the teacher is the network itself; prediction says what it outputs (its students output the same)
stages = progressive_distillation(teacher, schedule, moons, DISTILL_FROM, DISTILL_TO, prediction="eps",
                                  iterations=DISTILL_ITERATIONS, batch_size=256, lr=1e-3, progress=True)
print(f"{len(stages)} stage(s) in {time.perf_counter() - start:.0f} s; the teacher with {DISTILL_FROM} DDIM steps: "
      f"{sw_to_moons(teacher, DISTILL_FROM):.3f}, with 100: {sw_to_moons(teacher, 100):.3f}")
print(f"{'steps':>6} {'teacher (DDIM)':>15} {'student':>9}   (sliced W2 to two moons; floor {moons_floor:.3f})")
for stage in stages:
    print(f"{stage.num_steps:>6} {sw_to_moons(teacher, stage.num_steps):15.3f} "
          f"{sw_to_moons(stage.student, stage.num_steps):9.3f}")

final_steps = stages[-1].num_steps
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
with torch.no_grad():
    for ax, (name, model, n) in zip(axes, [("teacher", teacher, DISTILL_FROM), ("teacher", teacher, final_steps),
                                           ("student", stages[-1].student, final_steps)], strict=True):
        x = sample(model, schedule, (3000, 2), sampler="ddim", num_steps=n, generator=torch.Generator().manual_seed(0))
        ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.4)
        ax.set(aspect="equal", xlim=(-2.5, 3.0), ylim=(-2.0, 2.5), xticks=[], yticks=[],
               title=f"{name}, DDIM {n} steps")
show(fig, OUT / "distillation.png")

# %% [markdown] id="distill_read"
# At the same number of steps each student is closer to the data than its teacher run with those steps: it was trained
# for exactly those jumps, where the teacher's Euler steps are too coarse. In fast mode the teacher is itself far from
# the data (compare its 100-step number with the floor), and the students inherit that: a student learns the teacher's
# map, errors included. Salimans & Ho halved a CIFAR-10 sampler from 8192 steps down to 4, with about 50,000 updates
# per halving, and report FID 3.0 at 4 steps.
#
# ## Summary
#
# - Fast sampling is the missing corner of the generative learning trilemma for diffusion models. The lecture's three
#   routes: a better forward process (DDIM), a better reverse process (higher-order solvers, a multimodal step), and
#   hybrids and distillation (DDGAN, progressive distillation). Fewer steps can be had at sampling time or at
#   training time.
# - Skipping steps of Algorithm 2 fails three ways: the forward jump's variance $\beta'_t$ is far too much noise; the
#   posterior variance $\tilde\beta'_t$ is too little, because the true step also carries
#   $c^2\,\mathrm{Cov}[\mathbf{x}_0 \mid \mathbf{x}_t]$; and a big reverse jump is multimodal, which no Gaussian can
#   fit. A DDPM trained on the same few steps, even perfectly, is the same sampler and fails the same way.
# - DDIM changes the *forward* process: a family of non-Markovian forward processes with DDPM's marginals, hence
#   DDPM's $L_\text{simple}$ and its trained network, and with them a family of reverse processes indexed by $\eta$.
#   At $\eta = 0$ sampling is a deterministic map that can be inverted and interpolated in.
# - DDIM at $\eta = 0$ is Euler's method on the probability-flow ODE; solvers that use more than one network output
#   per step (DPM-Solver++, UniPC, EDM's Heun) reach the same quality with fewer calls, as long as their steps are
#   short where the ODE is stiff: the correction of a Heun step that ends where the components separate multiplies
#   the Euler point's offset by $1 + h\kappa/2$, and on EDM's grid with few steps that factor is far below $-1$.
# - Few steps with noise need a multimodal step: a denoising diffusion GAN, trained adversarially on pairs
#   $(\mathbf{x}_{t-1}, \mathbf{x}_t)$, which also covers the modes better than a one-shot GAN. Few steps without
#   noise can be learned too: progressive distillation halves the steps of a deterministic sampler, stage by stage.
#
# ## What to try
#
# 1. Add DDIM with $\eta = 0.5$ to section 1 (`"DDIM, eta 0.5": dict(sampler="ddim", eta=0.5)` in
#    `SKIP_SAMPLERS`). Where does its spread fall between DDIM's and DDPM's posterior variance, and does the order
#    match the weights $c_\eta$ of section 2?
# 2. Change `spacing` to `"quadratic"` or `"leading"` in sections 1 and 4. Which samplers care, and why does
#    `"leading"` (which never visits $t = T$) hurt with few steps? (`sampling.SAMPLERS[name].spacing` is the spacing
#    each sampler takes when none is given: quadratic for DPM-Solver++ and UniPC, measured best at few steps.)
# 3. In section 2, sweep $\eta$ between 0 and 1 at 10 steps. Where is the best value, and does it move with the
#    number of steps?
# 4. Raise `fixed_point_iterations` in section 3. How many extra calls make a 10-step round trip as accurate as a
#    100-step one?
# 5. Compute the factor $1 + h\kappa(\varsigma_u)/2$ of section 4 for the steps of another grid, e.g.
#    `respaced(schedule, 5, "quadratic").timesteps`, predict whether EDM's Heun steps survive it, then run
#    `sample(..., sampler="edm", num_steps=5, spacing="quadratic")` to check.
# 6. Move `x_t_point` in section 5 towards one component, or pick an earlier index `t_big`. When does the kernel
#    become one bump, and when does the missing variance $c^2\,\mathrm{Cov}[\mathbf{x}_0 \mid \mathbf{x}_t]$ become
#    negligible beside $\tilde\beta$?
# 7. Give the DDGAN 2 steps, or train both GANs of section 5 ten times longer. Does the one-shot GAN catch up on
#    coverage? Does the DDGAN reach the perfect generator's number?
# 8. Distil down to one step (`DISTILL_TO = 1`). Does the one-step student still beat its teacher? Salimans & Ho
#    (section 4) explain why an $\boldsymbol\epsilon$-predicting student struggles there: from $\mathbf{x}_T$,
#    $\hat{\mathbf{x}}_0 = (\mathbf{x}_T - s_T\boldsymbol\epsilon_\theta)/m_T$ divides the network's error by $m_T
#    \approx 0.006$ (printed by the DDGAN cell).
#
# **Where the code lives:** `ddpm_scratch/ddim.py` (the DDIM step, $\sigma_t(\eta)$, sampling, inversion, slerp),
# `ddpm_scratch/schedules.py` (`spaced_timesteps`, `karras_timesteps`, `respaced`), `ddpm_scratch/eps_solvers.py`
# (DPM-Solver++, UniPC, EDM), `ddpm_scratch/sampling.py` (every sampler by name), `ddpm_scratch/reverse_kernel.py`
# (the exact $q(\mathbf{x}_u \mid \mathbf{x}_t)$, $u < t$, of a mixture), `ddpm_scratch/ddgan.py` (denoising
# diffusion GANs) and `ddpm_scratch/machinery/gan_training.py` (their training), `ddpm_scratch/distill.py` (the
# distillation target and loss) and `ddpm_scratch/machinery/distillation.py` (the stages of progressive distillation).
# In the course repository (not in the student edition): `benchmarks/sampler_nfe.py`.
