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
# down, and *why* the obvious shortcut, running Algorithm 2 on every $k$-th step, falls apart. Four answers follow,
# each a different way of spending a small budget of network evaluations (NFE):
#
# 1. why naive step skipping fails: DDPM on 10-50 respaced steps against DDIM on the same steps;
# 2. DDIM's family of samplers: one trained network, a whole family of reverse processes indexed by $\eta$;
#    one $\mathbf{x}_T$ decoded with 5 to 1000 steps;
# 3. inversion ($\mathbf{x}_0 \to \mathbf{x}_T$) and interpolation in $\mathbf{x}_T$ (slerp against a straight line);
# 4. higher-order ODE solvers (DPM-Solver++, UniPC, EDM's Heun) as the deterministic limit: quality against NFE;
# 5. why a Gaussian reverse step fails with few steps: the exact $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ of a big
#    step is multimodal; a denoising diffusion GAN models it with 2-4 steps;
# 6. progressive distillation: a student that takes one step where its teacher takes two.
#
# As in lesson 3 the data are a two-dimensional Gaussian mixture, whose noisy versions are all known exactly:
# `mixture_eps_model(mixture, schedule)` is the *perfect network* $\mathbb{E}[\boldsymbol\epsilon \mid
# \mathbf{x}_t]$ for every step $t$, so every error measured in sections 1-5 is the sampler's own, never the
# network's. Only section 6 trains a network.
#
# Package modules used: `ddpm_scratch.ddim`, `ddpm_scratch.sampling` (and through it `ddpm_scratch.eps_solvers`),
# `ddpm_scratch.schedules`, `ddpm_scratch.reverse_steps`, `ddpm_scratch.score`, `ddpm_scratch.reverse_kernel`,
# `ddpm_scratch.ddgan` with its trainer `ddpm_scratch.machinery.gan_training`, and
# `ddpm_scratch.machinery.distillation`. Problem set 4 has you write the DDIM step, its $\sigma_t(\eta)$, a spacing of
# the steps and the sampling and inversion loops; here they are the package's. With `DDPM_SCRATCH_FAST=1` every cell
# is shrunk (fewer points, seeds and training steps) and the lesson runs in 21-25 s on two CPU cores (three runs,
# measured with another program keeping one core busy); the full run trains the DDGAN and the distillation 7-15 times
# longer and averages over more seeds: 5 minutes (one run, measured the same way), most of it in the distillation.

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
SOLVERS = ("ddim", "dpmpp_2m", "unipc", "edm", "edm, Karras grid")
# 5. the reverse kernel of a big step, and a tiny DDGAN
KERNEL_STEPS = 4  # the respaced schedule whose steps are "big"
DDGAN_STEPS = 4  # the DDGAN's number of steps (2-4 in the paper's toy experiments)
DDGAN_ITERATIONS = 200 if FAST else 3000
DDGAN_LR = 1e-3
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
# $\boldsymbol\epsilon^*(\mathbf{x}_t, t) = -\sqrt{1-\bar\alpha_t}\,\nabla\log q_t(\mathbf{x}_t)$ exactly.
#
# The yardstick is the sliced Wasserstein distance (lesson 2) between a sampler's points and reference points drawn
# from the mixture. Even two sets of *true* samples are not at distance 0, so each figure shows the **floor**: fresh
# true samples measured against the same reference sets as the samplers. The references are drawn from generators
# seeded apart from the samplers' own, and every number is the median over `SW_SEEDS` seeds.

# %% id="data"
angles = torch.arange(8, dtype=F64) * (2 * math.pi / 8)
mixture = GaussianMixture(weights=[3, 1, 2, 1, 3, 1, 2, 1],
                          means=2.5 * torch.stack([angles.cos(), angles.sin()], dim=1), covs=[0.03] * 8)
schedule = NoiseSchedule.linear(T)
eps_model = mixture_eps_model(mixture, schedule)  # the exact eps for every step t of this schedule
print(mixture, "| weights", [round(w, 3) for w in mixture.weights.tolist()])

REFERENCE_SEED = 10_000  # references: generators SEED + REFERENCE_SEED + i; samplers: SEED + i
references = [mixture.sample(SW_N, torch.Generator().manual_seed(SEED + REFERENCE_SEED + i)).float()
              for i in range(SW_SEEDS)]


def sw_to_truth(draw) -> float:
    """Median over the seeds i of SW2(draw(generator seeded SEED + i), references[i])."""
    return float(np.median([sliced_wasserstein(draw(torch.Generator().manual_seed(SEED + i)), references[i],
                                               num_projections=SW_PROJECTIONS,
                                               generator=torch.Generator().manual_seed(i))
                            for i in range(SW_SEEDS)]))


floor = sw_to_truth(lambda g: mixture.sample(SW_N, g).float())
print(f"floor (true samples against the references): SW2 = {floor:.3f}, median of {SW_SEEDS} seeds of {SW_N} points")


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
# $\sigma_t^2 = \beta'_t$. DDIM (section 2) jumps between the same steps with $\sigma_t = 0$.

# %% id="skip"
spacing_demo = {s: respaced(schedule, 10, s).timesteps[1:].tolist() for s in SPACINGS}  # the steps each visits
for name, steps in spacing_demo.items():
    print(f"{name:>9}: {steps}")

def spread(x: torch.Tensor) -> float:
    """RMS distance of the points to their nearest component mean: sqrt(2 x 0.03) = 0.245 for true samples."""
    return torch.cdist(x.to(F64), mixture.means).min(dim=1).values.pow(2).mean().sqrt().item()


SKIP_SAMPLERS = {"DDPM": dict(sampler="ddpm"), "DDPM, posterior variance": dict(sampler="ddpm", variance="posterior"),
                 "DDIM": dict(sampler="ddim")}
skip = {}
for num_steps in tqdm(SKIP_STEPS, desc="DDPM and DDIM with few steps"):
    for name, options in SKIP_SAMPLERS.items():
        def draw(g, o=options, n=num_steps):
            return sample(eps_model, schedule, (SW_N, 2), num_steps=n, generator=g, **o)

        skip[name, num_steps] = (sw_to_truth(draw), spread(draw(torch.Generator().manual_seed(SEED))[:3000]))
print(f"sliced W2 to the truth (floor {floor:.3f}) | spread around the nearest mean (true {spread(references[0]):.3f})")
print(f"{'steps':>6} " + " ".join(f"{name:>26}" for name in SKIP_SAMPLERS))
for num_steps in SKIP_STEPS:
    print(f"{num_steps:>6} " + " ".join(f"{skip[name, num_steps][0]:15.3f} | {skip[name, num_steps][1]:.3f}"
                                        for name in SKIP_SAMPLERS))

fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
panels = [("ddpm", 5, "C3"), ("ddpm", 20, "C3"), ("ddim", 5, "C0"), ("ddim", 20, "C0")]
for ax, (sampler, num_steps, color) in zip(axes, panels, strict=False):
    x = sample(eps_model, schedule, (3000, 2), sampler=sampler, num_steps=num_steps,
               generator=torch.Generator().manual_seed(SEED))  # the same x_T in every panel
    scatter(ax, x, f"{sampler.upper()}, {num_steps} steps", color)
scatter(axes[4], references[0][:3000], "true samples", "k")
fig.suptitle("the exact network, few steps: Algorithm 2 on a respaced schedule against DDIM", y=1.02)
show(fig, OUT / "step_skipping.png")

# %% [markdown] id="skip_read"
# Read the two numbers per cell: the sliced distance (dominated by how many points each component receives) and the
# spread around the nearest mean, which measures blur (about $\sqrt{2 \times 0.03} = 0.245$ for true samples). With 5
# steps every sampler blurs the components to about twice their width: a jump of 200 training steps is too big for a
# one-Gaussian step *and* for DDIM's straight-line step. From 10 steps on, Algorithm 2 with its own variance
# $\beta'_t$ stays too wide (its noise is the forward jump's variance, larger than the posterior's $\tilde\beta'_t$,
# and much larger for big jumps), while with the posterior variance and with DDIM the spread is about right at 10
# steps and slightly too tight at 20.
#
# With the *exact* network in 2-D the gap between DDPM and DDIM is much smaller than on images with a trained
# network: DDIM's Table 1 (CIFAR-10, FID) has DDPM with $\beta_t$ noise at 367 with 10 steps and with the
# posterior variance ($\eta = 1$) at 41, against 13.4 for DDIM ($\eta = 0$). Noise added at every step must be
# removed again by later steps, and with few steps there are too few of them; here the perfect network removes it
# as well as it can be removed, a trained one does not. Section 5 shows the part of the failure that no network can
# fix: the true reverse step of a big jump is not Gaussian.

# %% [markdown] id="ddim_intro"
# ## 2. DDIM's family of reverse processes
#
# $L_\text{simple}$ only sees the marginals $q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_t}
# \mathbf{x}_0, (1-\bar\alpha_t)\mathbf{I})$. DDIM (Song, Meng & Ermon 2021) writes down a family of non-Markovian
# forward processes, one per choice of $\sigma_t$, that all have these marginals:
#
# $$q_\sigma(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) = \mathcal{N}\Big(\sqrt{\bar\alpha_{t-1}}
# \mathbf{x}_0 + \sqrt{1-\bar\alpha_{t-1}-\sigma_t^2}\,\frac{\mathbf{x}_t - \sqrt{\bar\alpha_t}\mathbf{x}_0}
# {\sqrt{1-\bar\alpha_t}},\ \sigma_t^2\mathbf{I}\Big).$$
#
# So the network trained once serves all of them. The reverse step puts the network's guess $\hat{\mathbf{x}}_0 =
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
# One step by hand at index 10 of the 20: DDIM with eta = 1 and DDPM's ancestral step with the posterior variance,
# given the same x_t, the same eps and the same noise z, land on the same point.
g = torch.Generator().manual_seed(SEED + 7)
x_t, z = torch.randn(5, 2, generator=g, dtype=F64), torch.randn(5, 2, generator=g, dtype=F64)
eps = eps_at(eps_model, short, x_t, 10)  # the exact network, called at training step short.timesteps[10]
step_ddim = ddim_step(short, x_t, 10, 9, eps=eps, eta=1.0, noise=z)
step_ddpm = p_sample_step(short, x_t, 10, eps=eps, noise=z, variance="posterior")
print(f"ddim_step(eta = 1) against p_sample_step(variance = 'posterior'): largest difference "
      f"{(step_ddim - step_ddpm).abs().max():.1e}")

x_T = torch.randn(SW_N, 2, generator=torch.Generator().manual_seed(SEED))
etas = (0.0, 0.5, 1.0)
fig, axes = plt.subplots(1, len(etas), figsize=(10, 3.4))
for ax, eta in zip(axes, etas, strict=True):
    x0 = sample(eps_model, schedule, x_T.shape, sampler="ddim", num_steps=ETA_STEPS, eta=eta, x_T=x_T,
                generator=torch.Generator().manual_seed(SEED + 1))
    sw = sliced_wasserstein(x0, references[0], num_projections=SW_PROJECTIONS,
                            generator=torch.Generator().manual_seed(0))
    print(f"eta = {eta}: SW2 to the references {sw:.3f}, spread {spread(x0):.3f}")
    scatter(ax, x0, f"$\\eta = {eta}$: SW2 {sw:.3f}", f"C{int(2 * eta)}")
fig.suptitle(f"one x_T, DDIM with {ETA_STEPS} steps (floor {floor:.3f})", y=1.02)
show(fig, OUT / "eta_sweep.png")

# %% [markdown] id="eta_read"
# The three panels start from the same $\mathbf{x}_T$ and call the same network at the same 20 steps; only the noise
# differs. $\sigma_t(\eta)$ vanishes at the last step for every $\eta$ (there $\bar\alpha_{t-1} = 1$), and $\eta = 1$
# reproduces the posterior variance of the respaced schedule, and DDPM's ancestral step, to rounding. More noise does
# not mean more blur: the printed spreads do not grow with $\eta$ (all a little below the true 0.245 at 20 steps),
# while the sliced distance rises slightly.

# %% [markdown] id="decode_intro"
# **One $\mathbf{x}_T$, many step counts.** At $\eta = 0$ the sampler is a map, so we can ask what happens to the
# *same* starting points as the number of steps grows. Each grey line below joins the endpoints of one
# $\mathbf{x}_T$ decoded with 5, 10, ..., 1000 steps; the dot is the 1000-step endpoint. The printed distance is the
# mean distance to the 1000-step endpoints.

# %% id="decode"
x_T_few = torch.randn(N_DECODE, 2, generator=torch.Generator().manual_seed(SEED + 2), dtype=F64)
decoded = {n: sample(eps_model, schedule, x_T_few.shape, sampler="ddim", num_steps=n, x_T=x_T_few, dtype=F64)
           for n in tqdm(DECODE_STEPS, desc="decoding one x_T")}
final = decoded[DECODE_STEPS[-1]]
for n in DECODE_STEPS[:-1]:
    print(f"{n:>5} steps: mean distance to the {DECODE_STEPS[-1]}-step endpoint "
          f"{(decoded[n] - final).norm(dim=1).mean():.4f}")
same = {n: (torch.cdist(decoded[n], mixture.means).argmin(1) == torch.cdist(final, mixture.means).argmin(1))
        .double().mean().item() for n in DECODE_STEPS[:-1]}
print("fraction landing in the same component as with 1000 steps: "
      + ", ".join(f"{n} steps {f:.0%}" for n, f in same.items()))
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
# Most endpoints land in the same component with any number of steps (the printed fractions); what the steps change is
# where inside it, by about one component width at 5 steps and less than a tenth of one at 100. The map $\mathbf{x}_T
# \mapsto \mathbf{x}_0$ converges as the steps shrink, because DDIM at $\eta = 0$ is Euler's method for an ODE
# (section 4): the probability-flow ODE of lesson 3, written in the variables $\bar{\mathbf{x}} =
# \mathbf{x}/\sqrt{\bar\alpha}$ and $\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}$, where it reads $d\bar{\mathbf{x}} =
# \boldsymbol\epsilon_\theta\,d\sigma$. That the same $\mathbf{x}_T$ lands in the same place with any number of steps
# is what makes the next section possible.

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
# straight line $(1-\alpha)\mathbf{x}_T^a + \alpha\mathbf{x}_T^b$ is the wrong path in high dimension: Gaussian
# noise in $D$ dimensions has norm close to $\sqrt D$, and two independent draws are nearly orthogonal, so the
# midpoint has norm close to $\sqrt{D/2}$: a point the network never saw as $\mathbf{x}_T$. Spherical interpolation
# (`slerp`) moves along the great circle, keeping the norm. The cell prints the norms for a 2-D and a 784-D
# (digit-sized) pair, then decodes both paths in our 2-D mixture.

# %% id="interp"
alphas_path = torch.linspace(0, 1, 41, dtype=F64)
g = torch.Generator().manual_seed(SEED + 4)
for dim in (2, 784):
    a, b = torch.randn(2, dim, generator=g, dtype=F64)
    lin_mid = (0.5 * a + 0.5 * b).norm().item()
    slerp_mid = slerp(a[None], b[None], 0.5).norm().item()
    print(f"D = {dim:>3}: |x_a| = {a.norm():.2f}, |x_b| = {b.norm():.2f}, sqrt(D) = {math.sqrt(dim):.2f}; "
          f"midpoint norm: linear {lin_mid:.2f}, slerp {slerp_mid:.2f}")

a = torch.tensor([1.2, 0.3], dtype=F64)  # two noises whose decodings lie in different components
b = torch.tensor([-0.4, -1.3], dtype=F64)
paths = {"linear": torch.stack([(1 - al) * a + al * b for al in alphas_path]),
         "slerp": slerp(a.expand(len(alphas_path), 2), b.expand(len(alphas_path), 2), alphas_path)}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
for i, (name, x_T_path) in enumerate(paths.items()):
    x0_path = sample(eps_model, schedule, x_T_path.shape, sampler="ddim", num_steps=50, x_T=x_T_path, dtype=F64)
    axes[0].plot(x_T_path[:, 0], x_T_path[:, 1], ".-", color=f"C{i}", label=name, ms=3)
    axes[1].scatter(x0_path[:, 0], x0_path[:, 1], c=alphas_path, cmap="viridis", s=14, marker="os"[i], label=name)
axes[0].add_patch(plt.Circle((0, 0), math.sqrt(2), fill=False, ls="--", color="0.5"))
axes[0].set(aspect="equal", xlim=(-2, 2), ylim=(-2, 2), title="paths in $x_T$ (dashed: radius $\\sqrt{2}$)")
axes[0].legend(fontsize=8)
scatter(axes[1], references[0][:500], "their DDIM decodings (colour: alpha)", "0.8")
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
# falls like one over the number of steps. In the variable $\lambda = \log(\alpha/\sigma)$ (half the log-SNR, with
# $\alpha = \sqrt{\bar\alpha}$, $\sigma = \sqrt{1-\bar\alpha}$) the ODE has an exact solution up to one integral of
# the data prediction $\hat{\mathbf{x}}_0$:
#
# $$\mathbf{x}_s = \frac{\sigma_s}{\sigma_t}\mathbf{x}_t + \sigma_s\int_{\lambda_t}^{\lambda_s} e^{\lambda}
# \hat{\mathbf{x}}_0(\lambda)\,d\lambda.$$
#
# Holding $\hat{\mathbf{x}}_0$ constant over the step gives DDIM again. **DPM-Solver++(2M)** (Lu et al. 2022)
# extrapolates it linearly through the last two network outputs, one call a step; **UniPC** (Zhao et al. 2023) adds
# a corrector that reuses the next call; **EDM** (Karras et al. 2022) takes Heun steps on a grid crowded near the
# data (`spacing="karras"`: `schedules.karras_timesteps`), two calls a step. Compared at equal NFE, with the exact
# network:

# %% id="solvers"
def nfe_sampler(solver: str, nfe: int):
    """A draw(generator) running `solver` with at most nfe network calls (EDM: N steps cost 2 N - 1)."""
    # "karras": EDM's own noise levels (rho = 7), mapped to the nearest training steps; the others on the same evenly
    # spaced steps, for a like-for-like comparison (without `spacing`, 2M and UniPC take quadratic ones: question 2)
    sampler, spacing = ("edm", "karras") if solver == "edm, Karras grid" else (solver, "uniform")
    steps = (nfe + 1) // 2 if sampler == "edm" else nfe
    return lambda g: sample(eps_model, schedule, (SW_N, 2), sampler=sampler, num_steps=steps, spacing=spacing,
                            generator=g)


start = time.perf_counter()
curves = {solver: [sw_to_truth(nfe_sampler(solver, n)) for n in NFES] for solver in tqdm(SOLVERS, desc="solvers")}
print(f"{'NFE':>5} " + " ".join(f"{s:>16}" for s in SOLVERS) + f"   (sliced W2; floor {floor:.3f}; "
      f"{time.perf_counter() - start:.0f} s)")
for j, n in enumerate(NFES):
    print(f"{n:>5} " + " ".join(f"{curves[s][j]:16.3f}" for s in SOLVERS))
print(f"EDM's 3 steps on this schedule: karras_timesteps(schedule, 3) = {karras_timesteps(schedule, 3).tolist()}")

fig, ax = plt.subplots(figsize=(5.5, 3.8))
for solver in SOLVERS:
    ax.plot(NFES, curves[solver], "o-", label=solver)
ax.axhline(floor, color="k", ls="--", lw=1, label="floor (true samples)")
ax.set(xscale="log", yscale="log", xlabel="network evaluations (NFE)", ylabel="sliced W2 to the truth",
       title="quality against NFE, exact network")
ax.set_xticks(NFES, [str(n) for n in NFES])
ax.legend(fontsize=8)
show(fig, OUT / "quality_vs_nfe.png")

# %% [markdown] id="solvers_read"
# At 5 calls the higher-order solvers (DPM-Solver++, UniPC, EDM's Heun on evenly spaced steps) are clearly closer to
# the truth than DDIM. In fast mode, from 10 calls on, all of them are within the noise of the floor and can no longer
# be told apart; the full run (20,000 points, 5 seeds, floor 0.048) still separates them at 10 calls: 0.076 for
# DPM-Solver++ and UniPC against 0.099 for DDIM and 0.096 for EDM. EDM's own grid is a warning about transplanting a
# recipe: its 3 steps on this schedule, printed under the table, are step 1000, one far from both ends and step 1,
# because $\rho = 7$ crowds the levels near $\sigma_\text{min}$, and on this schedule ($\sigma$ from 0.01 to 157 rather
# than EDM's 0.002 to 80) that leaves one enormous jump from the middle step down to step 1; with 50 calls the same
# grid is the best of all (0.050 in the full run). With a trained network its own error adds a second floor.
# `python -m benchmarks.sampler_nfe` measures these curves beside diffusers' schedulers.

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

fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (name, (true_kernel, gauss)) in zip(axes, kernels.items(), strict=True):
    modes = grid_modes(true_kernel, -LIM, LIM, n=161)
    kl_gauss, _ = kl_monte_carlo(true_kernel, gauss, n=20_000, generator=torch.Generator().manual_seed(SEED))
    kl_best, _ = kl_monte_carlo(true_kernel, moment_matched_gaussian(true_kernel), n=20_000,
                                generator=torch.Generator().manual_seed(SEED))
    t_from, t_to = steps_of[name]
    print(f"{name} (t = {t_from} -> {t_to}): {len(modes)} modes; KL(q || DDPM's Gaussian) = {kl_gauss:.2f} nats, "
          f"KL(q || best Gaussian) = {kl_best:.2f} nats")
    centre = true_kernel.mean()
    half = 3.5 * max(true_kernel.covariance().diagonal().max().sqrt().item(), 0.05)
    axis = torch.linspace(-half, half, 201, dtype=F64)
    gx, gy = torch.meshgrid(axis + centre[0], axis + centre[1], indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    ax.contour(gx, gy, true_kernel.log_prob(grid).exp().reshape(gx.shape), levels=8, cmap="Blues")
    ax.contour(gx, gy, gauss.log_prob(grid).exp().reshape(gx.shape), levels=5, colors="C3", linewidths=0.8)
    ax.scatter(modes[:, 0], modes[:, 1], marker="x", color="k", zorder=3, label="modes of q")
    ax.set(aspect="equal", title=f"{name}: $t = {t_from} \\to {t_to}$")
    ax.legend(fontsize=8, loc="lower right")
fig.suptitle(f"exact $q(x_{{t-1}} | x_t)$ (blue) and DDPM's Gaussian step (red), $x_t = {x_t_point.tolist()}$", y=1.0)
show(fig, OUT / "reverse_kernel.png")

# %% [markdown] id="kernel_read"
# For one training step the true kernel is a single bump and DDPM's Gaussian matches it (KL 0 to the printed
# precision). For the big jump the kernel has several separated modes, one per data component still plausible from
# $\mathbf{x}_t$; DDPM's Gaussian sits between them, and even the best Gaussian (the one with the kernel's own mean
# and covariance) loses a measurable KL. More training cannot fix this: it is the form of the step that is wrong.

# %% [markdown] id="ddgan_intro"
# **Denoising diffusion GANs** (Xiao, Kreis & Vahdat 2022) keep the few big steps and replace the Gaussian with an
# implicit model that can have many modes: a generator $G(\mathbf{x}_t, \mathbf{z}, t)$ proposes a clean
# $\mathbf{x}_0'$, and $\mathbf{x}_{t-1}$ is drawn from the posterior $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t,
# \mathbf{x}_0')$. A discriminator that sees pairs $(\mathbf{x}_{t-1}, \mathbf{x}_t)$ trains it to match
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ in an adversarial divergence. If $G$ drew $\mathbf{x}_0'$ from the exact
# $q(\mathbf{x}_0 \mid \mathbf{x}_t)$, the sampler would be exact with any number of steps: the cell runs that
# *perfect generator* (`reverse_kernel_sample` with $s = 0$) beside a small trained DDGAN and DDPM, all with
# `DDGAN_STEPS` steps. The trained one is tiny and short-trained in fast mode.

# %% id="ddgan"
ddgan_schedule = respaced(schedule, DDGAN_STEPS)
train_data = mixture.sample(20_000, torch.Generator().manual_seed(SEED + 5)).float()
start = time.perf_counter()
ddgan = train_ddgan(train_data, ddgan_schedule, steps=DDGAN_ITERATIONS, lr=DDGAN_LR, hidden=64, depth=2,
                    seed=SEED)
print(f"DDGAN: {DDGAN_ITERATIONS} iterations in {time.perf_counter() - start:.0f} s")
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
# (within its noise), because each of its steps samples the true multimodal kernel: the *form* of its step is right at
# any step size, which a Gaussian's is not. The small trained DDGAN shows the other side of the method: it is a GAN,
# far from that bound after a short training, and how far depends on the run. The last line printed places this run's
# DDGAN against the two Gaussian samplers: a few hundred iterations (fast mode) leave it behind them; the 3000 of the
# full run bring it to about their level, ahead of them or behind depending on the seed (`train_ddgan(...,
# seed=...)`): GAN training is that sensitive. The paper's networks are far larger and train for hundreds of
# thousands of iterations.

# %% [markdown] id="distill_intro"
# ## 6. Progressive distillation
#
# DDIM with $N$ steps at $\eta = 0$ is a fixed map $\mathbf{x}_T \mapsto \mathbf{x}_0$. Progressive distillation
# (Salimans & Ho 2022) trains a student, started as a copy of the teacher, so that *one* of its DDIM steps lands
# where *two* of the teacher's land: from $\mathbf{z}_t$ the teacher takes two steps to $\mathbf{z}_{t''}$, and the
# student's target is the $\tilde{\mathbf{x}}$ for which one DDIM step from $\mathbf{z}_t$ gives exactly
# $\mathbf{z}_{t''}$:
#
# $$\tilde{\mathbf{x}} = \frac{\mathbf{z}_{t''} - (\sigma_{t''}/\sigma_t)\,\mathbf{z}_t}{\alpha_{t''} -
# (\sigma_{t''}/\sigma_t)\,\alpha_t}.$$
#
# The student then becomes the teacher, and $N$ halves again. Here a small MLP is trained on two moons with
# $L_\text{simple}$ (the teacher), then distilled from `DISTILL_FROM` steps down to `DISTILL_TO`.

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
# - Skipping steps of Algorithm 2 fails twice over: the forward jump's variance is far too much noise, and a big
#   reverse jump is multimodal, which no Gaussian can fit.
# - DDIM keeps the training marginals and changes only the reverse process: one network, a family indexed by
#   $\eta$; at $\eta = 0$ a deterministic map that can be inverted and interpolated in.
# - DDIM at $\eta = 0$ is Euler's method on the probability-flow ODE; solvers that use more than one network output
#   per step (DPM-Solver++, UniPC, EDM's Heun) reach the same quality with fewer calls.
# - Few steps with noise need a multimodal step: a denoising diffusion GAN. Few steps without noise can also be
#   learned: progressive distillation halves the steps of a deterministic sampler, stage by stage.
#
# ## What to try
#
# 1. Section 1 with `variance="posterior"` for DDPM: how much of its failure was the variance alone?
# 2. Change `spacing` to `"quadratic"` or `"leading"` in sections 1 and 4. Which samplers care, and why does
#    `"leading"` (which never visits $t = T$) hurt with few steps? (`sampling.SAMPLERS[name].spacing` is the spacing
#    each sampler takes when none is given: quadratic for DPM-Solver++ and UniPC, measured best at few steps.)
# 3. In section 2, sweep $\eta$ between 0 and 1 at 10 steps. Where is the best value, and does it move with the
#    number of steps?
# 4. Raise `fixed_point_iterations` in section 3. How many extra calls make a 10-step round trip as accurate as a
#    100-step one?
# 5. Move `x_t_point` in section 5 towards one component, or pick an earlier index `t_big`. When does the kernel
#    become one bump?
# 6. Give the DDGAN 2 steps, another seed, or train it ten times longer. Does it reach the perfect generator's number?
# 7. Distil further (`DISTILL_TO = 2` or 1). At what point does the student stop beating its teacher?
#
# **Where the code lives:** `ddpm_scratch/ddim.py` (the DDIM step, $\sigma_t(\eta)$, sampling, inversion, slerp),
# `ddpm_scratch/schedules.py` (`spaced_timesteps`, `karras_timesteps`, `respaced`), `ddpm_scratch/eps_solvers.py`
# (DPM-Solver++, UniPC, EDM), `ddpm_scratch/sampling.py` (every sampler by name), `ddpm_scratch/reverse_kernel.py`
# (the exact $q(\mathbf{x}_s \mid \mathbf{x}_t)$ of a mixture), `ddpm_scratch/ddgan.py` (denoising diffusion GANs)
# and `ddpm_scratch/machinery/gan_training.py` (their training), `ddpm_scratch/distill.py` (the distillation target
# and loss) and `ddpm_scratch/machinery/distillation.py` (the stages of progressive distillation). Benchmarks:
# `python -m benchmarks.sampler_nfe`.
