# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 2 — learning to denoise: $L_\text{simple}$, training and sampling
#
# Lesson 1 built the forward process: a fixed chain that turns data into noise, with a closed-form kernel
# $q(\mathbf{x}_t \mid \mathbf{x}_0)$ and a closed-form posterior $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t,
# \mathbf{x}_0)$. Generation runs the chain backwards, from $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$
# down to $\mathbf{x}_0$, with learned Gaussian steps
#
# $$p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t) = \mathcal{N}\big(\mathbf{x}_{t-1};\
# \boldsymbol\mu_\theta(\mathbf{x}_t, t),\ \sigma_t^2\mathbf{I}\big).$$
#
# (The Gaussian form is justified when every $\beta_t$ is small: then a reverse step moves $\mathbf{x}$ only a
# little and is close to Gaussian itself.) This lesson answers three questions:
#
# 1. **What to train.** The variational bound on $-\log p_\theta(\mathbf{x}_0)$ splits into one term per step;
#    written in terms of the noise, each term for $t \ge 2$ is a weighted squared error plus a constant, and
#    dropping the weights gives $L_\text{simple}$.
# 2. **How to train and sample.** Algorithms 1 and 2 of Ho et al. (2020), the package functions that run them,
#    and the choice of $\sigma_t^2$.
# 3. **Does it work?** We train a small MLP on a 2-D toy set and a small U-Net on the $8\times 8$ digits, watch the
#    reverse process, measure sample quality, and look at which $t$ the model finds hard (the content-detail
#    trade-off).
#
# Package modules used: `ddpm_scratch.losses`, `ddpm_scratch.ddpm`, `ddpm_scratch.sampling`, `ddpm_scratch.nets`,
# the training step of `ddpm_scratch.machinery.loop` and, for the digits, the trainer `ddpm_scratch.machinery.train`.
# With `DDPM_SCRATCH_FAST=1` everything is shrunk to run in well under a minute (and the samples are then poor). The
# full run took 3.5 minutes on two idle CPU cores and 9 minutes while other programs kept both cores busy (measured),
# most of it training and sampling the digits model; every cell that runs longer than a few seconds shows a progress
# bar.

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
UNET_THREADS = None  # torch threads for the U-Net cells; None: torch's default, one per core (see the setup cell)

# 2-D toy problem: an MLP trained by a hand-written loop (section 5)
TOY = "two_moons"  # or "eight_gaussians", "swiss_roll", "checkerboard"
TOY_T = 100 if FAST else 1000  # diffusion steps (linear schedule rescaled by 1000/T: alpha_bar_T stays near 0)
TOY_STEPS = 300 if FAST else 3000  # training iterations
TOY_BATCH = 256
TOY_SAMPLES = 500 if FAST else 2000  # points generated
TOY_EXPLORE = 300 if FAST else 1000  # points per panel of the sigma_t^2 explorer

# digits: a U-Net trained with ddpm_scratch.machinery.train (section 6)
DIGITS_STEPS = 30 if FAST else 1500  # training iterations (full mode, two CPU cores: 2-6 min, measured)
DIGITS_BATCH = 32 if FAST else 128
DIGITS_T = 50 if FAST else 1000  # diffusion steps; the trainer rescales the linear schedule by 1000/T (any T works)
DIGITS_SCHEDULE = "linear"  # or "cosine"
DIGITS_MODEL = dict(base_channels=8, attention_resolutions=()) if FAST else {}  # {}: the trainer's default U-Net
N_SAMPLES = 16 if FAST else 360  # digits generated (the Frechet distance compares 360 with the 360 test digits)
COMPUTE_FD = not FAST
N_EVAL = 64 if FAST else 360  # test digits used to measure the error per timestep (section 7)
N_EVAL_T = 6 if FAST else 25  # timesteps at which it is measured

# Figures, the training log and the checkpoint go to outputs/ of the course folder (the one holding lessons/),
# wherever the notebook was started from; outside a course folder, to outputs/ of the working directory.
OUT = lesson_output_dir("02_ddpm")

# %% id="setup"
import math
import time
from itertools import islice

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from ddpm_scratch.ddpm import p_mean, p_sample_step
from ddpm_scratch.forward import q_posterior, q_sample, x0_from_eps
from ddpm_scratch.losses import gaussian_kl, l_simple, vlb_weights
from ddpm_scratch.machinery.data import batches, get_dataset, load_digits
from ddpm_scratch.machinery.loop import Batch, optimisation_step
from ddpm_scratch.machinery.metrics import digits_fd, sliced_wasserstein
from ddpm_scratch.machinery.notebook import explore, show, torch_threads
from ddpm_scratch.machinery.train import TrainConfig, build_model, train
from ddpm_scratch.machinery.viz import image_grid, image_table, read_loss_log
from ddpm_scratch.nets import MLPEps, SinusoidalEmbedding, count_parameters
from ddpm_scratch.sampling import sample, trajectory
from ddpm_scratch.schedules import NoiseSchedule

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # CPU speed: arithmetic on subnormal floats (< 1e-38) is very slow; round them to 0
# Threads, measured on two CPU cores (median ms per call, 1 thread vs 2, two runs each):
#   idle machine:                    U-Net training step (batch 128) 94-98 vs 65-70, U-Net sampling step (360 images)
#                                    77-91 vs 50-56, toy training step (batch 256) 3.8-4.0 vs 4.1-4.2, toy sampling
#                                    step (2000 points) 8-10 vs 5-8;
#   another process busy on one core: U-Net training 100-214 vs 244-835, U-Net sampling 76-97 vs 52-160, toy
#                                    training 3.9-4.0 vs 11-13, toy sampling 10-18 vs 24-96.
# So the toy cells run on one thread (`torch_threads(1)`: as fast on an idle machine, or at most 3 s slower per
# sampling run, and 3-5x faster on a busy one), and the U-Net cells use UNET_THREADS: None keeps torch's default (one
# thread per core), 1.4-1.5x faster on idle cores. Set UNET_THREADS = 1 if other programs keep your cores busy.
if UNET_THREADS is not None:
    torch.set_num_threads(UNET_THREADS)
# show(fig, path) saves a figure and displays it, explore(plot, **controls) adds sliders in a live notebook frontend,
# torch_threads(n) runs a block on n threads: the lessons' shared helpers, in ddpm_scratch/machinery/notebook.py.


def show_images(ax, x: torch.Tensor, nrow: int) -> None:
    """Draw images (B, 1, H, W) in [-1, 1] as one grid on ax."""
    ax.imshow(image_grid(x, nrow=nrow)[..., 0], cmap="gray", vmin=0, vmax=255)
    ax.axis("off")


# %% [markdown] id="bound"
# ## 1. From the variational bound to $L_\text{simple}$
#
# The model is the Markov chain $p_\theta(\mathbf{x}_{0:T}) = p(\mathbf{x}_T)\prod_{t=1}^T
# p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ with $p(\mathbf{x}_T) = \mathcal{N}(\mathbf{0}, \mathbf{I})$. Its
# likelihood $p_\theta(\mathbf{x}_0)$ integrates over every path and is out of reach, but the forward process is a
# ready-made "encoder" for a variational bound (Jensen's inequality, exactly as for a VAE):
#
# $$-\log p_\theta(\mathbf{x}_0) \le \mathbb{E}_{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\Big[-\log
# \frac{p_\theta(\mathbf{x}_{0:T})}{q(\mathbf{x}_{1:T} \mid \mathbf{x}_0)}\Big].$$
#
# Rewrite each forward factor with Bayes' rule, $q(\mathbf{x}_t \mid \mathbf{x}_{t-1}) = q(\mathbf{x}_{t-1} \mid
# \mathbf{x}_t, \mathbf{x}_0)\, q(\mathbf{x}_t \mid \mathbf{x}_0) / q(\mathbf{x}_{t-1} \mid \mathbf{x}_0)$ (valid
# for $t \ge 2$ thanks to the Markov property). The ratios of kernels telescope and the bound regroups into one term
# per step:
#
# $$\underbrace{D_\mathrm{KL}\big(q(\mathbf{x}_T \mid \mathbf{x}_0)\,\|\,p(\mathbf{x}_T)\big)}_{L_T \text{ (lesson 1:
# no parameters)}}
# + \sum_{t=2}^{T} \underbrace{\mathbb{E}_q\, D_\mathrm{KL}\big(q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)
# \,\|\, p_\theta(\mathbf{x}_{t-1} \mid \mathbf{x}_t)\big)}_{L_{t-1}}
# \ \underbrace{-\ \mathbb{E}_q \log p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)}_{L_0}.$$
#
# Each $L_{t-1}$ ($t \ge 2$) compares two Gaussians: the posterior $\mathcal{N}(\tilde{\boldsymbol\mu}_t,
# \tilde\beta_t \mathbf{I})$ (lesson 1; problem set 1 derives its formulas) and the model
# $\mathcal{N}(\boldsymbol\mu_\theta, \sigma_t^2\mathbf{I})$. With fixed variances only the means depend on $\theta$:
#
# $$L_{t-1} = \frac{1}{2\sigma_t^2}\,\mathbb{E}_q\big\|\tilde{\boldsymbol\mu}_t(\mathbf{x}_t, \mathbf{x}_0) -
# \boldsymbol\mu_\theta(\mathbf{x}_t, t)\big\|^2 + C_t, \qquad
# C_t = D_\mathrm{KL}\big(\mathcal{N}(\mathbf{0}, \tilde\beta_t\mathbf{I})\,\|\,\mathcal{N}(\mathbf{0},
# \sigma_t^2\mathbf{I})\big) .$$
#
# $C_t$ does not depend on $\theta$, and it is zero only when $\sigma_t^2 = \tilde\beta_t$.
#
# **Predict the noise.** Substitute $\mathbf{x}_0 = (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon) /
# \sqrt{\bar\alpha_t}$ into $\tilde{\boldsymbol\mu}_t$; the coefficient of $\mathbf{x}_t$ collapses to
# $1/\sqrt{\alpha_t}$ (use $\alpha_t(1-\bar\alpha_{t-1}) + \beta_t = 1-\bar\alpha_t$ again) and
#
# $$\tilde{\boldsymbol\mu}_t = \frac{1}{\sqrt{\alpha_t}}\Big(\mathbf{x}_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
# \boldsymbol\epsilon\Big).$$
#
# The model knows $\mathbf{x}_t$ and $t$ but not $\boldsymbol\epsilon$, so we give its mean the same form with a
# network $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ in place of $\boldsymbol\epsilon$. The difference of means is
# then proportional to the difference of noises. For one draw of $(\mathbf{x}_0, \boldsymbol\epsilon)$, that is for
# one $\mathbf{x}_t$, the KL divergence inside $L_{t-1}$ is exactly
#
# $$D_\mathrm{KL} = \lambda_t\,\big\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta(\mathbf{x}_t, t)\big\|^2 + C_t,
# \qquad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}, \qquad t \ge 2,$$
#
# and $L_{t-1}$ is its expectation over $\mathbf{x}_0$ and $\boldsymbol\epsilon$. So the terms $t = 2, \dots, T$ of
# the bound are, up to the constants $C_t$, a *weighted* noise regression: a sum over $t$ is $T-1$ times an average
# over $t \sim \mathcal{U}\{2, \dots, T\}$.
#
# **The $t = 1$ term is different.** $L_0 = -\mathbb{E}_q \log p_\theta(\mathbf{x}_0 \mid \mathbf{x}_1)$ is the
# *decoder*: the likelihood that the last reverse step gives to the data, which are discrete (256 grey levels). DDPM
# makes it a Gaussian with mean $\boldsymbol\mu_\theta(\mathbf{x}_1, 1)$ integrated over each pixel's bin (DDPM eq.
# 13). It depends on $\boldsymbol\epsilon_\theta(\mathbf{x}_1, 1)$ through that mean, but it is a log-likelihood of
# discrete values, not a weighted squared error.
#
# Ho et al. drop the weights and average the noise regression uniformly over *all* steps, $t = 1$ included, where it
# stands in for the decoder:
#
# $$L_\text{simple} = \mathbb{E}_{t \sim \mathcal{U}\{1..T\},\ \mathbf{x}_0,\ \boldsymbol\epsilon}
# \big\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 +
# \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ t)\big\|^2 .$$
#
# Why is that allowed? Every squared-error term is minimised by the same function, the posterior mean of the noise
# $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$, so a network flexible enough to be exact at every $t$ has the
# same optimum under any positive weights. A real network is not exact, and the weights decide *where* its errors
# go. Dropping $\lambda_t$ is a reweighting of the bound, not a different model.
#
# **Check the identity numerically.** Take any "prediction" $\boldsymbol\epsilon_\theta$ (here: the true noise plus
# junk), compute the Gaussian KL directly from the two means and variances, and compare it with
# $\lambda_t(\epsilon - \epsilon_\theta)^2 + C_t$ coordinate by coordinate, for both usual choices of $\sigma_t^2$
# (section 3). The cell also prints $C_t$ per coordinate: zero for $\sigma_t^2 = \tilde\beta_t$, positive for
# $\sigma_t^2 = \beta_t$.

# %% id="kl_identity"
schedule = NoiseSchedule.linear(1000)
x0 = load_digits("test")[0][:8].double()
g = torch.Generator().manual_seed(SEED)
for variance in ("beta", "posterior"):
    lam, sigma2 = vlb_weights(schedule, variance), schedule.reverse_variances(variance)
    worst, constants = 0.0, []
    for t in (2, 10, 100, 500, 1000):
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        eps_theta = eps + 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        x_t = q_sample(schedule, x0, t, noise=eps)
        true_mean, true_var = q_posterior(schedule, x_t, t, x0=x0)
        kl = gaussian_kl(true_mean, true_var, p_mean(schedule, x_t, t, eps=eps_theta), sigma2[t])
        c_t = gaussian_kl(0.0, true_var, 0.0, sigma2[t])  # C_t per coordinate: the theta-free part
        worst = max(worst, (kl - (lam[t] * (eps - eps_theta) ** 2 + c_t)).abs().max().item())
        constants.append(f"{c_t.max().item():.1e}")
    print(f"sigma_t^2 = {variance:9s}: largest |KL - (lambda_t (eps - eps_theta)^2 + C_t)| = {worst:.1e};  "
          f"C_t at t = 2, 10, 100, 500, 1000: {', '.join(constants)}")

# %% [markdown] id="weights_intro"
# What does the reweighting do? Plot $\lambda_t$ for both standard choices of $\sigma_t^2$ (section 3 explains them),
# each divided by its average over $t = 2, \dots, T$ so that it can be compared with $L_\text{simple}$'s uniform
# weight 1 (an overall constant factor changes nothing in the optimisation). Relative to the bound, $L_\text{simple}$
# *down-weights* the first steps, where $\lambda_t$ is largest, and up-weights the rest.
#
# The lines are the bound's weights, $t \ge 2$. The dots at $t = 1$ are the same formula evaluated at $t = 1$, which
# is not a term of the bound (there the bound has the decoder $L_0$); it is what $L_\text{simple}$'s first step would
# weigh if it were reweighted like the others. They explain the **kink at $t = 2$** of the $\sigma_t^2 =
# \tilde\beta_t$ curve: with $\sigma_t^2 = \tilde\beta_t$ the weight simplifies to $\lambda_t = \beta_t /
# (2\alpha_t(1-\bar\alpha_{t-1}))$, about $1/(2(t-1))$ early in the chain, which would be infinite at $t = 1$
# ($\tilde\beta_1 = 0$). The package, like DDPM, uses $\sigma_1^2 = \tilde\beta_2$ in place of $\tilde\beta_1 = 0$, so
# that the reverse step at $t = 1$ keeps a positive variance; the value at $t = 1$ becomes a finite
# $\beta_1/(2\alpha_1\tilde\beta_2) \approx 0.92$ instead of following the curve.

# %% id="weights_plot"
ts = torch.arange(1, schedule.T + 1)
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for i, (variance, label) in enumerate([("beta", r"$\sigma_t^2 = \beta_t$"),
                                       ("posterior", r"$\sigma_t^2 = \tilde\beta_t$ ($\sigma_1^2 = \tilde\beta_2$)")]):
    lam = vlb_weights(schedule, variance)
    lam = lam / lam[2:].mean()  # average over the bound's terms t = 2..T is 1
    ax.plot(ts[1:], lam[2:], color=f"C{i}", label=rf"bound: $\lambda_t$ / average, {label}")
    ax.plot([1], [lam[1]], "o", mfc="none", color=f"C{i}")
ax.plot([], [], "o", mfc="none", color="0.3", label=r"$t = 1$: formula only (the bound has $L_0$ there)")
ax.axhline(1.0, color="0.4", ls="--", lw=0.8, label=r"$L_\mathrm{simple}$: weight 1")
ax.set(xscale="log", yscale="log", xlabel="$t$", ylabel="relative weight",
       title="relative weight of each step's noise error")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
show(fig, OUT / "vlb_weights.png")

# %% [markdown] id="optimum"
# ### What the optimum predicts is not unit Gaussian noise
#
# The noise $\boldsymbol\epsilon$ is $\mathcal{N}(\mathbf{0}, \mathbf{I})$, and it is tempting to picture the trained
# $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ as unit Gaussian noise too. It is not. The optimum of the squared
# error is the conditional mean $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$, an average over all the noises
# that could have produced this $\mathbf{x}_t$, and averaging shrinks. Per coordinate, the law of total variance
# splits the noise's unit variance into two parts,
#
# $$1 = \operatorname{Var}(\epsilon) = \operatorname{Var}\big(\mathbb{E}[\epsilon \mid \mathbf{x}_t]\big) +
# \mathbb{E}\big[\operatorname{Var}(\epsilon \mid \mathbf{x}_t)\big],$$
#
# and the second part is the error that even the best predictor keeps: whenever $\mathbf{x}_t$ does not determine
# $\boldsymbol\epsilon$, it is positive. So the optimal output has variance below 1, and
# $\text{(variance of the optimal output)} = 1 - \text{(its noise error)}$.
#
# **An example we can compute.** Take data made of two points: every coordinate of $\mathbf{x}_0$ is $+1$ or $-1$
# with probability $\tfrac12$ each, independently (the coordinates then never interact, so one is enough). Given
# $x_t$, Bayes' rule weighs the two candidates by their kernel densities $\mathcal{N}(x_t;\ \pm\sqrt{\bar\alpha_t},\
# 1-\bar\alpha_t)$. In their ratio the normalisers and the terms in $x_t^2$ cancel:
#
# $$\frac{q(x_0 = +1 \mid x_t)}{q(x_0 = -1 \mid x_t)} = \exp\Big(\frac{(x_t + \sqrt{\bar\alpha_t})^2 -
# (x_t - \sqrt{\bar\alpha_t})^2}{2(1-\bar\alpha_t)}\Big) = e^{2a}, \qquad a = \frac{\sqrt{\bar\alpha_t}\,x_t}
# {1-\bar\alpha_t},$$
#
# and a variable that is $\pm 1$ with odds $e^{2a}$ has mean $(e^{2a} - 1)/(e^{2a} + 1) = \tanh a$. So
# $\mathbb{E}[x_0 \mid x_t] = \tanh a$ and, since $x_0^2 = 1$, $\operatorname{Var}(x_0 \mid x_t) = 1 - \tanh^2 a$.
# The kernel makes the noise a function of $x_t$ and $x_0$, $\epsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0) /
# \sqrt{1-\bar\alpha_t}$; given $x_t$ it is linear in $x_0$, so
#
# $$\mathbb{E}[\epsilon \mid x_t] = \frac{x_t - \sqrt{\bar\alpha_t}\,\tanh a}{\sqrt{1-\bar\alpha_t}}, \qquad
# \operatorname{Var}(\epsilon \mid x_t) = \frac{\bar\alpha_t}{1-\bar\alpha_t}\,\big(1 - \tanh^2 a\big) > 0,$$
#
# and the law of total variance gives $\operatorname{Var}(\mathbb{E}[\epsilon \mid x_t]) = 1 -
# \frac{\bar\alpha_t}{1-\bar\alpha_t}\,\mathbb{E}[1 - \tanh^2 a] < 1$ at every $t \ge 1$. How far below 1 depends on
# $t$. At small $t$ the two noisy copies of the data do not overlap: $x_t$ reveals $x_0$, hence $\epsilon$, and the
# variance is close to 1. Near $t = T$, $x_t$ is almost all noise, $\mathbb{E}[\epsilon \mid x_t] \approx x_t$, and
# the variance is close to 1 again. In between, where the two copies overlap, the optimal output is strongly shrunk.
# Its distribution is not Gaussian either: it is a nonlinear function of a two-component mixture.
#
# **Check** (cell below): the $\tanh$ against Bayes' rule evaluated directly on a grid of $x_t$; then, on many
# simulated pairs $(x_0, \epsilon)$, the variance of $\mathbb{E}[\epsilon \mid x_t]$ beside $1 -
# \mathbb{E}[\operatorname{Var}(\epsilon \mid x_t)]$, and beside an estimate that uses no formula at all: average
# $\epsilon$ over narrow bins of $x_t$ (equal counts per bin) and take the variance of those averages, minus the small
# part that comes from averaging a finite number of draws per bin. Binning needs $\mathbb{E}[\epsilon \mid x_t]$ to
# change little within a bin; at small $t$ it jumps between the two points, so that column starts at $t = 100$.
# Section 7 measures the same spread on the trained digits model.

# %% id="optimum_check"
n, n_bins = (50_000, 100) if FAST else (1_000_000, 500)


def posterior_x0(x_t: torch.Tensor, t: int) -> torch.Tensor:
    """E[x0 | x_t] for two-point data x0 = +-1 (equal weights): tanh(sqrt(alpha_bar_t) x_t / (1 - alpha_bar_t))."""
    ab = schedule.alpha_bars[t]
    return torch.tanh(ab.sqrt() * x_t / (1 - ab))


grid, worst = torch.linspace(-4, 4, 801, dtype=torch.float64), 0.0
for t in (1, 10, 100, 300, 1000):  # Bayes' rule on the grid: weights N(x_t; +-sqrt(alpha_bar_t), 1 - alpha_bar_t)
    ab = schedule.alpha_bars[t]
    kernel = torch.distributions.Normal(ab.sqrt() * torch.tensor([1.0, -1.0], dtype=torch.float64), (1 - ab).sqrt())
    weights = torch.softmax(kernel.log_prob(grid[:, None]), dim=1)  # q(x0 = +1 | x_t), q(x0 = -1 | x_t)
    worst = max(worst, (weights[:, 0] - weights[:, 1] - posterior_x0(grid, t)).abs().max().item())
print(f"tanh vs Bayes' rule on a grid of x_t, t = 1..1000: largest difference {worst:.1e}")

g = torch.Generator().manual_seed(SEED)
x0_pm = torch.randint(0, 2, (n, 1), generator=g, dtype=torch.float64) * 2 - 1  # two-point data: +1 or -1
eps_pm = torch.randn(n, 1, generator=g, dtype=torch.float64)


def optimum_at(t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_t, E[eps | x_t] and Var(eps | x_t) for the simulated pairs at step t, each (n,)."""
    ab = schedule.alpha_bars[t]
    x_t = q_sample(schedule, x0_pm, t, noise=eps_pm)[:, 0]
    post = posterior_x0(x_t, t)
    return x_t, (x_t - ab.sqrt() * post) / (1 - ab).sqrt(), ab / (1 - ab) * (1 - post**2)


print("    t   alpha_bar_t   Var E[eps | x_t]   1 - E Var(eps | x_t)   binned, no formula")
table_ts = [10, 50, 100, 200, 300, 400, 500, 700, 1000]
binned_var = {}
for t in table_ts:
    x_t, eps_hat, eps_var = optimum_at(t)
    spread = eps_hat.var()
    spread_se = ((eps_hat - eps_hat.mean()) ** 2).std() / math.sqrt(n)  # a variance is an average of squares
    line = f"{t:5d}   {schedule.alpha_bars[t]:11.4f}   {spread:9.4f} ± {spread_se:.4f}   {1 - eps_var.mean():20.4f}"
    if t >= 100:
        binned = eps_pm[x_t.argsort(), 0].reshape(n_bins, -1)  # n_bins bins of equal count along x_t
        binned_var[t] = (binned.mean(dim=1).var() - binned.var(dim=1).mean() / binned.size(1)).item()
        line += f"   {binned_var[t]:18.4f}"
    print(line)

curve_ts = list(range(1, schedule.T + 1, schedule.T // 50))
curve = [optimum_at(t)[1].var().item() for t in curve_ts]
t_mid = curve_ts[int(torch.tensor(curve).argmin())]  # where the two noisy copies of the data overlap most
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(curve_ts, curve, color="C0", label=r"$\mathrm{Var}\,\mathbb{E}[\epsilon \mid x_t]$ (exact predictor)")
axes[0].plot(list(binned_var), list(binned_var.values()), "o", color="C1", mfc="none", label="binned, no formula")
axes[0].axhline(1.0, color="0.4", ls="--", lw=0.8, label=r"$\mathrm{Var}\,\epsilon = 1$")
axes[0].set(xlabel="$t$", ylabel="variance", ylim=(0, 1.1), title="spread of the optimal prediction")
axes[0].legend(fontsize=8)
_, eps_hat, _ = optimum_at(t_mid)
axes[1].hist(eps_hat.numpy(), bins=100, range=(-4, 4), density=True, color="0.75",
             label=r"$\mathbb{E}[\epsilon \mid x_t]$" + f" (variance {eps_hat.var():.2f})")
axes[1].plot(grid, torch.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), color="C3", label=r"$\mathcal{N}(0, 1)$")
axes[1].set(xlabel="value", ylabel="density", title=f"the optimal prediction at $t = {t_mid}$")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
fig.suptitle(r"two-point data $x_0 = \pm 1$: the exact noise predictor is neither unit-variance nor Gaussian",
             fontsize=10, y=1.02)
show(fig, OUT / "optimal_eps.png")

# %% [markdown] id="algorithms"
# ## 2. Algorithm 1 (training) and Algorithm 2 (sampling)
#
# $$
# \begin{array}{r|l|l}
#  & \textbf{Algorithm 1: training} & \textbf{Algorithm 2: sampling} \\ \hline
# 1 & \text{repeat} & \mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) \\
# 2 & \quad \mathbf{x}_0 \sim q(\mathbf{x}_0) & \text{for } t = T, \dots, 1\text{:} \\
# 3 & \quad t \sim \mathcal{U}\{1, \dots, T\} & \quad \mathbf{z} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})
#   \text{ if } t > 1\text{, else } \mathbf{z} = \mathbf{0} \\
# 4 & \quad \boldsymbol\epsilon \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) & \quad \mathbf{x}_{t-1} =
#   \tfrac{1}{\sqrt{\alpha_t}}\big(\mathbf{x}_t - \tfrac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
#   \boldsymbol\epsilon_\theta(\mathbf{x}_t, t)\big) + \sigma_t \mathbf{z} \\
# 5 & \quad \text{gradient step on } \nabla_\theta \big\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta
#   (\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ t)\big\|^2 & \text{end for} \\
# 6 & \text{until converged} & \text{return } \mathbf{x}_0
# \end{array}
# $$
#
# Training is denoising-regression on randomly corrupted data; sampling applies the learned mean
# $\boldsymbol\mu_\theta$ of section 1 (line 4) and adds fresh noise, $T$ times. (Line 4 writes $\beta_t$ where the
# lecture writes $1-\alpha_t$: the same number.) In the package, lines 3-5 of Algorithm 1, for a batch drawn by line 2,
# are `l_simple` (lines 3-4 and the loss of line 5) plus one optimiser step (`optimisation_step`), and line 4 of
# Algorithm 2 is `p_mean` plus noise (`p_sample_step`). Writing these yourself is problem set 2, so here they are black
# boxes, and we check properties that follow from the maths:
#
# 1. **The mean of line 4 is lesson 1's posterior mean at the predicted clean image.** Inverting the kernel gives the
#    model's guess $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon_\theta) /
#    \sqrt{\bar\alpha_t}$ (`x0_from_eps`), and substituting it into $\tilde{\boldsymbol\mu}_t(\mathbf{x}_t,
#    \mathbf{x}_0)$ gives $\boldsymbol\mu_\theta$, for any $\boldsymbol\epsilon_\theta$: the reverse step moves
#    towards where the network thinks the data are.
# 2. **A step with $t > 1$ draws from $\mathcal{N}(\boldsymbol\mu_\theta, \sigma_t^2\mathbf{I})$**: over many draws
#    of $\mathbf{z}$, the mean of `p_sample_step` is `p_mean` and its variance is $\sigma_t^2$ (as in lesson 1, we
#    report the largest deviation over the 64 pixels in standard errors).
# 3. **The step at $t = 1$ adds no noise** (line 3): it returns the mean, whatever noise it is given.
#
# **Why no noise at $t = 1$?** The last step produces the sample. In the model, $\mathbf{x}_0$ given $\mathbf{x}_1$
# is the decoder of section 1, a Gaussian around $\boldsymbol\mu_\theta(\mathbf{x}_1, 1)$ spread over the pixel
# levels; Ho et al. display its mean instead of a draw. With $\sigma_1^2 = \beta_1 = 10^{-4}$ a draw would only add
# noise of standard deviation $0.01$, about one grey level (the 256 levels of $[-1, 1]$ are $2/255 \approx 0.008$
# apart): pixel noise, no content. The cost: the returned $\mathbf{x}_0$ is not exactly a sample of the model
# $p_\theta(\mathbf{x}_0)$; it lacks that last step's variance, $\sigma_1^2$ per coordinate. For DDPM's schedule that
# is negligible; for a short chain with a rescaled schedule it is not ($T = 50$: $\beta_1 = 2\cdot 10^{-3}$, a missing
# standard deviation of $0.045$, about 6 grey levels). The variational bound does not take this shortcut: its $t = 1$
# term is the decoder's likelihood.

# %% id="algorithm_checks"
g = torch.Generator().manual_seed(SEED)
x_t, eps_theta = (torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
worst = 0.0
for t in (1, 2, 10, 100, 500, 1000):
    posterior_mean, _ = q_posterior(schedule, x_t, t, x0=x0_from_eps(schedule, x_t, t, eps=eps_theta))
    worst = max(worst, (p_mean(schedule, x_t, t, eps=eps_theta) - posterior_mean).abs().max().item())
print(f"1. p_mean vs the posterior mean at x0_hat, t = 1..1000: largest difference {worst:.1e}")

n, t = (2000 if FAST else 50_000), 500
x_rep, eps_rep = x_t[:1].expand(n, -1, -1, -1), eps_theta[:1].expand(n, -1, -1, -1)  # one x_t, n draws of z
mean = p_mean(schedule, x_rep[:1], t, eps=eps_rep[:1])[0]
for variance in ("beta", "posterior"):
    sigma2 = schedule.reverse_variances(variance)[t]
    draws = p_sample_step(schedule, x_rep, t, eps=eps_rep, variance=variance, generator=g)
    squared_dev = (draws - draws.mean(0)) ** 2  # standard errors from the draws themselves, as in lesson 1
    z_mean = (draws.mean(0) - mean) / (draws.std(0) / math.sqrt(n))
    z_var = (draws.var(0) - sigma2) / (squared_dev.std(0) / math.sqrt(n))
    print(f"2. t = {t}, sigma_t^2 = {variance:9s} ({sigma2:.2e}): {n} draws, max |z| of the mean "
          f"{z_mean.abs().max():.2f}, of the variance {z_var.abs().max():.2f}")

z1, z2 = (torch.randn(x_t.shape, generator=g, dtype=torch.float64) for _ in range(2))
last = [p_sample_step(schedule, x_t, 1, eps=eps_theta, noise=z) for z in (z1, z2)]
print("3. t = 1 with two different noises: identical", torch.equal(*last),
      "| equal to p_mean", torch.equal(last[0], p_mean(schedule, x_t, 1, eps=eps_theta)))

# %% [markdown] id="variance"
# ## 3. Choosing $\sigma_t^2$
#
# The reverse variances are not learned here. Two values are natural:
#
# - $\sigma_t^2 = \beta_t$, the forward step's own variance. It is the exact reverse variance if the data were
#   themselves $\mathcal{N}(\mathbf{0}, \mathbf{I})$.
# - $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$, the posterior variance of
#   lesson 1 and problem set 1. It is exact if the data set were a single point $\mathbf{x}_0$ (then knowing
#   $\mathbf{x}_0$ costs nothing).
#
# They are the two ends of a range, but only for data whose every coordinate has variance at most 1: for Gaussian data
# $\mathcal{N}(\boldsymbol\mu, s^2\mathbf{I})$ with $s^2 \le 1$ the true reverse variance $\operatorname{Var}(x_{t-1}
# \mid \mathbf{x}_t)$ lies between $\tilde\beta_t$ and $\beta_t$ (problem set 2 proves it), while data with $s^2 > 1$
# have a reverse variance above $\beta_t$. Data scaled to $[-1, 1]$, like our digits, have variance at most 1 per
# coordinate. Ho et al. found similar sample quality with either choice. The two differ only in the first steps:
# $\tilde\beta_t / \beta_t$ is $0.45$ at $t = 2$, $0.85$ at $t = 10$ and $0.96$ at $t = 50$, and within 1 % of 1
# from $t \approx 170$ on (right panel). The toy model of section 5 lets you try both, and scaled versions of them.

# %% id="variance_plot"
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(ts, schedule.betas[1:], label=r"$\beta_t$")
axes[0].plot(ts[1:], schedule.posterior_variances[2:], label=r"$\tilde\beta_t$")
axes[0].set(xscale="log", yscale="log", xlabel="$t$", ylabel="variance", title="the two choices of $\\sigma_t^2$")
axes[1].plot(ts[1:], schedule.posterior_variances[2:] / schedule.betas[2:])
axes[1].set(xscale="log", xlabel="$t$", ylabel="ratio",
            title=r"$\tilde\beta_t / \beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$")
axes[0].legend()
for ax in axes:
    ax.grid(alpha=0.3)
show(fig, OUT / "sigma_choices.png")

# %% [markdown] id="network"
# ## 4. The network $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$
#
# The network has to map a noisy input to a noise estimate of the same shape, for every noise level, so it needs
# two things: an image-to-image architecture, and a way to know $t$.
#
# - **U-Net** (`ddpm_scratch.nets.UNet`). A stack of residual blocks that halves the resolution on the way down and
#   doubles it on the way up, with skip connections carrying each resolution's features across. Coarse levels see
#   the whole image (what digit is this?), fine levels keep pixel detail (where exactly is the stroke?). At $4\times
#   4$ a self-attention layer lets every position look at every other one. Group normalisation and SiLU
#   activations throughout; the last convolution starts at zero, so the untrained net predicts
#   $\boldsymbol\epsilon_\theta = \mathbf{0}$ and the loss starts at $\mathbb{E}\|\boldsymbol\epsilon\|^2 = 1$ per
#   coordinate.
# - **Time embedding.** The integer $t$ becomes a vector of sines and cosines at geometrically spaced frequencies
#   (the Transformer's positional encoding), then passes through a small MLP. Every residual block adds a learned
#   projection of it to its feature maps, one bias per channel (`time_injection="adagn"` scales them as well, as in
#   Dhariwal & Nichol 2021). One network, shared by all $T$ steps, is told which step it is at.
# - **MLP** (`MLPEps`) for 2-D toy data: residual blocks of linear layers with the same time conditioning.
#
# The sizes used below:

# %% id="param_count"
digits_config = TrainConfig(dataset="digits", model=dict(DIGITS_MODEL))  # {} becomes the trainer's default U-Net
print(f"digits U-Net of this run: {count_parameters(build_model(digits_config)):>8,d} parameters {digits_config.model}")
print(f"toy MLP:                  {count_parameters(MLPEps(dim=2)):>8,d} parameters (hidden 128, depth 3)")

# %% [markdown] id="time_embedding_intro"
# The embedding of every $t$ (each column is one $t$, each row one dimension). Its fastest dimensions change sign
# every few steps, faster than a picture of 1000 steps can show: drawn naively, they alias into arcs that look like
# structure. So the left panel averages each dimension over a few neighbouring steps (a Gaussian window with a
# standard deviation of 3 steps): the fastest dimensions, at the top of each half, average out to white. The curves
# that remain are real: they join the steps where neighbouring dimensions pass through the same phase. The right
# panel shows the first 64 steps, one column per step, fast dimensions included.

# %% id="time_embedding"
embedding = SinusoidalEmbedding(64)(torch.arange(1, 1001)).T  # (64 dimensions, 1000 steps)
window = torch.exp(-0.5 * (torch.arange(-9, 10) / 3.0) ** 2)
smoothed = torch.nn.functional.conv1d(torch.nn.functional.pad(embedding[:, None], (9, 9), mode="replicate"),
                                      (window / window.sum())[None, None])[:, 0]  # averaged over ~3 steps
fig, axes = plt.subplots(1, 2, figsize=(11, 2.8), gridspec_kw={"width_ratios": [2, 1]})
axes[0].imshow(smoothed, aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="antialiased",
               interpolation_stage="data", extent=(0.5, 1000.5, 63.5, -0.5))
axes[0].set(xlabel="$t$", ylabel="dimension", title="$t = 1..1000$, averaged over ~3 steps")
axes[1].imshow(embedding[:, :64], aspect="auto", cmap="RdBu", vmin=-1, vmax=1, interpolation="nearest",
               extent=(0.5, 64.5, 63.5, -0.5))
axes[1].set(xlabel="$t$", title="$t = 1..64$, one column per step")
fig.suptitle("sinusoidal time embedding: sin (dimensions 0-31) and cos (32-63) at geometrically spaced frequencies",
             fontsize=10, y=1.03)
show(fig, OUT / "time_embedding.png")

# %% [markdown] id="toy"
# ## 5. A first model: two moons in two dimensions
#
# Algorithm 1 is a short loop. We write it out with two package pieces: `l_simple` as the objective (it draws $t$ and
# $\boldsymbol\epsilon$ and returns the loss of line 5) and `optimisation_step` (`ddpm_scratch.machinery.loop`: one
# gradient step on an objective for a batch, the step every training run of the package takes). The data are scaled to
# unit variance per axis, like images scaled to $[-1, 1]$. With $T = 1000$ we use DDPM's $\beta$ range; for a shorter
# chain `NoiseSchedule.linear(T, rescale=True)` stretches both ends of the range by $1000/T$, so that $\bar\alpha_T$
# still ends near $0$. The toy cells run on one thread (see the setup cell); in full mode, on two CPU cores, training
# took 16 s and sampling 9 s on an idle machine, and 45 s and 29 s on a busy one (measured), with progress bars.

# %% id="toy_setup"
toy_schedule = NoiseSchedule.linear(TOY_T, rescale=True)  # beta_1 .. beta_T = (1e-4 .. 0.02) * 1000 / TOY_T
toy_data = get_dataset(TOY, "train")  # (10000, 2)
toy_test = get_dataset(TOY, "test")
torch.manual_seed(SEED)  # the initial weights
toy_model = MLPEps(dim=2, hidden=128, depth=3)
print(toy_schedule, f"| {len(toy_data)} training points | {count_parameters(toy_model):,d} parameters")

# %% id="toy_train"
def objective(model, batch: Batch, *, generator: torch.Generator) -> torch.Tensor:
    """L_simple of the batch: Algorithm 1's lines 3-4 (t ~ U{1..T}, eps ~ N(0, I)) and the loss of line 5."""
    return l_simple(model, toy_schedule, batch.x0, generator=generator)


optimizer = torch.optim.AdamW(toy_model.parameters(), lr=2e-3)
g = torch.Generator().manual_seed(SEED)
toy_losses = []
start = time.perf_counter()
with torch_threads(1):
    for x0 in tqdm(islice(batches(toy_data, TOY_BATCH, generator=g), TOY_STEPS), total=TOY_STEPS,
                   desc="training the toy MLP"):  # line 2: x0 ~ q(x0)
        loss = optimisation_step(toy_model, optimizer, objective, Batch(x0), generator=g)  # lines 3-5
        toy_losses.append(loss.item())
toy_model.eval()
print(f"{TOY_STEPS} steps in {time.perf_counter() - start:.1f} s, "
      f"mean loss over the last 100 steps {np.mean(toy_losses[-100:]):.3f}")

# %% [markdown] id="toy_sample_intro"
# Now Algorithm 2: start from $\mathcal{N}(\mathbf{0}, \mathbf{I})$ and apply the learned reverse step $T$ times.
# `trajectory` (`ddpm_scratch.sampling`; it runs any sampler, here DDPM's) keeps the point cloud at a few $t$ so we can
# watch it form. The sliced Wasserstein distance (`sliced_wasserstein`: the average 1-D optimal-transport distance over
# random projections) compares the samples with held-out test points; the same distance between two independent real
# samples of the same size is the floor a perfect model would reach.

# %% id="toy_sample"
toy_steps = [TOY_T, int(0.6 * TOY_T), int(0.4 * TOY_T), int(0.2 * TOY_T), int(0.1 * TOY_T), 0]
g = torch.Generator().manual_seed(SEED)
start = time.perf_counter()
with torch_threads(1):
    toy_traj = trajectory(toy_model, toy_schedule, (TOY_SAMPLES, 2), toy_steps, generator=g, progress=True)
toy_samples = toy_traj[-1]
real = toy_data[torch.randperm(len(toy_data), generator=g)[:TOY_SAMPLES]]
print(f"sampled {TOY_SAMPLES} points with {TOY_T} steps in {time.perf_counter() - start:.1f} s")
print(f"sliced W2(samples, test) = {sliced_wasserstein(toy_samples, toy_test):.3f}   "
      f"floor: sliced W2(train subset, test) = {sliced_wasserstein(real, toy_test):.3f}")

# %% id="toy_plots"
fig, axes = plt.subplots(1, len(toy_steps) + 1, figsize=(2.7 * (len(toy_steps) + 1), 2.9), sharex=True, sharey=True)
for ax, t, cloud in zip(axes[:-1], toy_steps, toy_traj, strict=True):
    ax.scatter(cloud[:, 0], cloud[:, 1], s=1, alpha=0.5)
    ax.set_title(f"$x_{{{t}}}$" if t else "$x_0$ (samples)", fontsize=10)
axes[-1].scatter(toy_test[:TOY_SAMPLES, 0], toy_test[:TOY_SAMPLES, 1], s=1, alpha=0.5, color="0.4")
axes[-1].set_title("real data", fontsize=10)
for ax in axes:
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
fig.suptitle("reverse process on the toy set (Algorithm 2), from noise to data")
show(fig, OUT / "toy_reverse.png")

# %% id="toy_loss"
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(toy_losses, color="0.75", lw=0.6)
window = max(TOY_STEPS // 30, 1)
ax.plot(np.arange(window - 1, TOY_STEPS), np.convolve(toy_losses, np.ones(window) / window, "valid"), color="C0")
ax.set(xlabel="step", ylabel=r"$L_\mathrm{simple}$", title="toy training loss (grey: per batch; blue: average)")
ax.grid(alpha=0.3)
show(fig, OUT / "toy_loss.png")

# %% [markdown] id="sigma_explorer_intro"
# **Explore $\sigma_t^2$.** Sample the toy model again with $\sigma_t^2 = c\,\beta_t$ and with $\sigma_t^2 =
# c\,\tilde\beta_t$ for a factor $c$ you choose: $c = 1$ gives DDPM's two choices (section 3), $c = 0$ removes the
# noise of every step (here: $\sigma_t^2 = 10^{-12}$), $c > 1$ adds more than the model asks for. Both panels start
# from the same $\mathbf{x}_T$ and draw the same noises, so only $\sigma_t$ differs. In a notebook frontend the cell
# shows a slider for $c$ (each redraw samples twice: 9-30 s on two CPU cores, while the figure for the
# previous $c$ stays); run headless it draws $c = 1$.

# %% id="sigma_explorer"
def toy_samples_with(c: float) -> None:
    """Samples of the toy model with sigma_t^2 = c beta_t and c beta_tilde_t, same x_T and noise, beside real data."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), sharex=True, sharey=True)
    for ax, variance, label in [(axes[0], "beta", r"\beta_t"), (axes[1], "posterior", r"\tilde\beta_t")]:
        sigma2 = (c * toy_schedule.reverse_variances(variance)).clamp(min=1e-12)  # (T+1,): sigma_t^2 > 0 for t >= 1
        with torch_threads(1):
            cloud = sample(toy_model, toy_schedule, (TOY_EXPLORE, 2), variance=sigma2,  # no progress bar: a
                           generator=torch.Generator().manual_seed(SEED))  # slider's redraw shows none (explore)
        ax.scatter(cloud[:, 0], cloud[:, 1], s=1, alpha=0.5)
        factor = "" if c == 1 else f"{c:g}\\,"
        ax.set_title(rf"$\sigma_t^2 = {factor}{label}$: sliced W2 {sliced_wasserstein(cloud, toy_test):.3f}",
                     fontsize=10)
    axes[2].scatter(toy_test[:TOY_EXPLORE, 0], toy_test[:TOY_EXPLORE, 1], s=1, alpha=0.5, color="0.4")
    axes[2].set_title("real data", fontsize=10)
    for ax in axes:
        ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
    show(fig, OUT / "toy_sigma.png")


explore(toy_samples_with, c=(1.0, 0.0, 2.0, 0.1))

# %% [markdown] id="digits"
# ## 6. Digits with a U-Net
#
# For images we use the package's trainer, `ddpm_scratch.machinery.train.train`: the same loop (its steps are the
# `optimisation_step` above, run by `machinery.loop.run_loop`) with what a real run adds around it (AdamW with a
# warm-up of the learning rate, gradient clipping, an exponential moving average (EMA) of the weights that is used for
# sampling, a CSV loss log and a checkpoint in `out`). The data are the 1437 training digits of scikit-learn,
# $8\times 8$ pixels in $[-1, 1]$. In full mode this is the slowest cell of the lesson, with a progress bar: 110 s on
# two idle CPU cores, 6 minutes when other programs kept both cores busy (measured).

# %% id="digits_train"
config = TrainConfig(dataset="digits", steps=DIGITS_STEPS, batch_size=DIGITS_BATCH, T=DIGITS_T,
                     schedule=DIGITS_SCHEDULE, model=dict(DIGITS_MODEL), lr=2e-3, ema_decay=0.995, seed=SEED,
                     warmup_steps=min(200, DIGITS_STEPS // 5), log_every=1)  # a loss.csv row per batch: plotted below
start = time.perf_counter()
result = train(config, out=OUT / "digits_run", progress=True)
model, digits_schedule = result.ema_model, result.schedule
device = next(model.parameters()).device
print(f"trained {DIGITS_STEPS} steps in {time.perf_counter() - start:.0f} s on {device}; "
      f"last logged loss {result.final_loss:.4f}")

# %% id="digits_loss"
steps, losses = read_loss_log(OUT / "digits_run" / "loss.csv")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, losses, color="0.75", lw=0.5, label="every batch")
window = max(1, min(50, len(losses) // 10))
ax.plot(steps[window - 1:], np.convolve(losses, np.ones(window) / window, "valid"), label=f"average of {window}")
ax.set(yscale="log", xlabel="step", ylabel=r"$L_\mathrm{simple}$", title="digits training loss")
ax.legend()
ax.grid(alpha=0.3)
show(fig, OUT / "digits_loss.png")

# %% [markdown] id="digits_sample_intro"
# Sample with the EMA weights. One call of `trajectory` runs Algorithm 2 for all `N_SAMPLES` images and keeps
# $\mathbf{x}_t$ at a few steps; its last frame ($t = 0$) is the set of samples. The strip shows the first few images
# along the way: the coarse shape of the digit settles long before its strokes become sharp. In full mode, 360
# images with 1000 steps took 50-56 s on two CPU cores (measured), with a progress bar.

# %% id="digits_sample"
T_d = digits_schedule.T
strip_steps = sorted({T_d, int(0.8 * T_d), int(0.6 * T_d), int(0.4 * T_d), int(0.3 * T_d), int(0.2 * T_d),
                      int(0.1 * T_d), int(0.05 * T_d), 0}, reverse=True)
g = torch.Generator(device=device).manual_seed(SEED)
start = time.perf_counter()
traj = trajectory(model, digits_schedule, (N_SAMPLES, 1, 8, 8), strip_steps, generator=g, device=device,
                  progress=True).cpu()
samples = traj[-1].clamp(-1, 1)  # the last step can overshoot [-1, 1] a little
print(f"sampled {N_SAMPLES} digits with {T_d} steps in {time.perf_counter() - start:.0f} s")

# %% id="digits_strip"
n_show = min(6, N_SAMPLES)
fig, ax = plt.subplots(figsize=(0.75 * len(strip_steps), 0.8 * n_show))
image_table(ax, traj[:, :n_show].transpose(0, 1), [f"t={t}" for t in strip_steps])
ax.set_title("reverse process of the trained model (Algorithm 2): rows are samples", fontsize=10)
show(fig, OUT / "digits_reverse.png")

# %% id="digits_grid"
real_digits = load_digits("test")[0][:N_SAMPLES]
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
show_images(axes[0], samples[:100], nrow=10)
axes[0].set_title("samples")
show_images(axes[1], real_digits[:100], nrow=10)
axes[1].set_title("real test digits")
show(fig, OUT / "digits_samples.png")

# %% [markdown] id="fd_intro"
# **How good are they?** The Fréchet distance (FD) fits a Gaussian to features of each image set (here the features
# of a small digits classifier, trained once and cached) and measures the distance between the two Gaussians; it is
# the recipe of the FID used for natural images. FD from a finite sample is biased upwards, so a number alone means
# little: `digits_fd` reports it next to the floor, the FD between real training and real test digits with the same
# number of images. A ratio near 1 means the samples are statistically as good as real digits in that feature space.
# (Skipped in fast mode.)
#
# **How to read the spread.** Each of the 20 draws compares 360 images with the 360 test digits (the whole test
# split). With `N_SAMPLES = 360` every draw uses the same samples and the same test digits, so the samples' FD comes
# out identical in every draw and its "sd" is 0.000. That is not precision: the FD of *another* 360 samples from the
# same model would differ by about as much as the floor does from one draw of 360 training digits to the next (the
# floor's sd). So read the ratio with the error bar $\pm$ floor sd / floor, printed below. Generating more than 360
# samples (raise `N_SAMPLES`; sampling time grows in proportion) makes `digits_fd` draw a different subset of
# samples each time, and then the samples' sd is measured instead of 0.

# %% id="digits_fd"
if COMPUTE_FD:
    report = digits_fd(samples, generator=torch.Generator().manual_seed(SEED))
    print(report)
    print(f"ratio {report.ratio:.2f} ± {report.ratio * report.floor_std / report.floor:.2f} "
          f"(the floor's relative spread across draws)")
else:
    print("fast mode: FD skipped (set DDPM_SCRATCH_FAST=0 to compute it)")

# %% [markdown] id="tradeoff"
# ## 7. Where is the model's error? The content-detail trade-off
#
# Measure the trained model separately at each $t$, on test digits it has never seen. Two views of the same error
# are useful. The **noise error** $\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2$ is what we trained on
# ($L_\text{simple}$ with $t$ held fixed). The **data error** $\|\mathbf{x}_0 - \hat{\mathbf{x}}_0\|^2$, where
# $\hat{\mathbf{x}}_0 = (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon_\theta)/\sqrt{\bar\alpha_t}$ is
# the model's guess of the clean image (`x0_from_eps`), measures how far that guess is from the truth. Unclipped it
# explodes as $t \to T$, where $\hat{\mathbf{x}}_0$ divides by $\sqrt{\bar\alpha_t} \approx 0$; we clip
# $\hat{\mathbf{x}}_0$ to the data range $[-1, 1]$, as a sensible guess would be. Both errors are per pixel.
#
# We also measure the **spread of the prediction**: the variance of $\boldsymbol\epsilon_\theta$ across the test
# digits, per pixel, beside that of the true noise (1). Section 1 predicts it stays below 1, and for a model close to
# the optimum it should be about $1 -$ (noise error).
#
# `error_per_t` works for any eps-model and data set: question 2 uses it on the toy model.

# %% id="error_per_t"
@torch.no_grad()
def error_per_t(eps_model, schedule: NoiseSchedule, x0: torch.Tensor, ts, *, clip: tuple[float, float] | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The model's errors at each step t in ts, on the data x0 (B, ...), with one draw of noise per example and t.

    Returns (len(ts),) float64 tensors, each a mean over examples and coordinates:
      "noise": L_simple at t, the squared error of eps_theta;
      "data": the squared error of x0_hat = x0_from_eps(...), clipped to clip = (low, high) when given;
      "spread": the variance of eps_theta across the examples, and "spread_of_eps" that of the true noise eps.
    """
    rows = []
    for t in tqdm(ts, desc="error per t", leave=False):
        t_batch = torch.full((len(x0),), int(t), device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = q_sample(schedule, x0, t_batch, noise=eps)
        eps_theta = eps_model(x_t, t_batch)
        x0_hat = x0_from_eps(schedule, x_t, t_batch, eps=eps_theta)
        if clip is not None:
            x0_hat = x0_hat.clamp(*clip)
        rows.append([l_simple(eps_model, schedule, x0, t=t_batch, noise=eps).item(),  # L_simple at this t
                     (x0 - x0_hat).pow(2).mean().item(),
                     eps_theta.var(dim=0).mean().item(), eps.var(dim=0).mean().item()])
    columns = torch.tensor(rows, dtype=torch.float64).T
    return dict(zip(["noise", "data", "spread", "spread_of_eps"], columns, strict=True))


x0_eval = load_digits("test")[0][:N_EVAL].to(device)
eval_ts = torch.unique(torch.logspace(0, math.log10(T_d), N_EVAL_T).round().long())  # 1..T, denser at small t
errors = error_per_t(model, digits_schedule, x0_eval, eval_ts, clip=(-1, 1),
                     generator=torch.Generator(device=device).manual_seed(SEED))
average_digit = x0_eval.var(dim=0).mean().item()  # data error of always guessing the mean test digit
lam_d = vlb_weights(digits_schedule, "beta")[eval_ts]
print("   t   noise error   data error   spread of eps_theta   1 - noise error   spread of eps")
for i, t in enumerate(eval_ts.tolist()):
    print(f"{t:4d}   {errors['noise'][i]:11.4f}   {errors['data'][i]:10.4f}   {errors['spread'][i]:19.4f}   "
          f"{1 - errors['noise'][i]:15.4f}   {errors['spread_of_eps'][i]:13.4f}")
worse = eval_ts[errors["data"] > average_digit]
if len(worse):
    t_worse = int(worse.min())
    print(f"the data error exceeds the average-digit guess ({average_digit:.3f}) from t = {t_worse} "
          f"(SNR = {digits_schedule.snr(t_worse).item():.3f}) on the grid above")

# %% id="error_plot"
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
axes[0].plot(eval_ts, errors["noise"], "o-", label=r"noise error $\|\epsilon - \epsilon_\theta\|^2$ "
             r"($L_\mathrm{simple}$)")
axes[0].plot(eval_ts, errors["data"], "s-", label=r"data error $\|x_0 - \hat{x}_0\|^2$ ($\hat{x}_0$ clipped)")
axes[0].axhline(average_digit, color="C1", ls=":", lw=1, label="guessing the average digit")
axes[0].set(xscale="log", yscale="log", xlabel="$t$", ylabel="mean squared error per pixel",
            title="error of the trained model, by timestep")
axes[1].plot(eval_ts, lam_d * errors["noise"] * x0_eval[0].numel(), "o-", color="C2")
axes[1].set(xscale="log", yscale="log", xlabel="$t$", ylabel="nats per image",
            title=r"the bound's term $\lambda_t\,\|\epsilon - \epsilon_\theta\|^2$")
axes[2].plot(eval_ts, errors["spread"], "o-", color="C4", label=r"spread of $\epsilon_\theta$ (variance per pixel)")
axes[2].plot(eval_ts, 1 - errors["noise"], "--", color="0.3", label="1 - noise error (the optimum's spread)")
axes[2].plot(eval_ts, errors["spread_of_eps"], ":", color="C0", label=r"spread of the true noise $\epsilon$")
axes[2].set(xscale="log", xlabel="$t$", ylabel="variance", title=r"$\epsilon_\theta$ is not unit Gaussian")
for ax in (axes[0], axes[2]):
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)  # below the axes: hides no point
for ax in axes:
    ax.grid(alpha=0.3)
fig.subplots_adjust(wspace=0.3)
show(fig, OUT / "error_per_t.png")

# %% [markdown] id="tradeoff_read"
# How to read these curves (they are measured in full mode; in fast mode the model is barely trained):
#
# - The **noise error** is largest at small $t$: there the image is almost clean and the network must find a faint
#   noise pattern in it. Towards $t = T$, $\mathbf{x}_t$ is nearly pure noise and predicting
#   $\boldsymbol\epsilon \approx \mathbf{x}_t$ is easy.
# - The **data error** is the opposite: at large $t$ the model has to invent the digit, its content, and its error
#   climbs towards that of guessing the average digit (dotted line); at small $t$ only fine detail is missing. From
#   $t \approx 560$ on it is no better than that guess, and beyond, worse: in our full-mode run it was within 2 % of
#   the guess at $t = 562$ ($\mathrm{SNR} = 0.04$), 1.3 times the guess at $t = 750$ and 3.3 times at $t = T$ (the
#   cell above prints where your run crosses). There $\hat{\mathbf{x}}_0$ divides by $\sqrt{\bar\alpha_t}$, which
#   magnifies the small noise error by $1/\mathrm{SNR}(t)$; the optimal guess $\mathbb{E}[\mathbf{x}_0 \mid
#   \mathbf{x}_t]$ could never be worse than the average digit. (Predicting $\boldsymbol\epsilon$ is
#   well-conditioned exactly where predicting $\mathbf{x}_0$ is not, and vice versa: one reason why some models
#   predict $\mathbf{x}_0$, or a mix of the two, instead.)
# - The **bound** multiplies the noise error by $\lambda_t$, which is largest at small $t$: most of the bound is
#   spent on the first steps, i.e. on imperceptible high-frequency detail (lesson 1: high frequencies drown first,
#   so they are what the last denoising steps generate). $L_\text{simple}$ weights all steps equally and so moves the
#   network's effort towards the larger $t$, where the coarse content is decided. That is why it gives better-looking
#   samples while giving up a little likelihood: the weighting of the timesteps is a design choice, not a detail.
# - The **spread** of $\boldsymbol\epsilon_\theta$ is far below the true noise's 1 at small $t$ (0.1 at $t = 1$,
#   0.75 at $t = 100$ in our run) and approaches 1 only near $t = T$. From $t \approx 10$ on it follows
#   $1 -$ (noise error) closely, as section 1 predicts for the optimum: the network outputs a shrunk average of the
#   possible noises, not a draw of unit Gaussian noise. In the first few steps it falls below that line: there the
#   network is furthest from the optimum, and its outputs are shrunk even more than $\mathbb{E}[\boldsymbol\epsilon
#   \mid \mathbf{x}_t]$ would be.
#
# The model's guess $\hat{\mathbf{x}}_0$ makes the same point visually: from very noisy inputs it produces a smooth,
# generic digit; only at small $t$ does it commit to the details of this particular one.

# %% id="x0_predictions"
pred_ts = [max(1, round(f * T_d)) for f in (0.7, 0.5, 0.35, 0.25, 0.15, 0.08, 0.02)]
x0_show = x0_eval[:4]
g = torch.Generator(device=device).manual_seed(SEED)
rows = []
with torch.no_grad():
    for x0_i in x0_show:  # two rows per test digit: x_t, then the model's guess x0_hat
        t_batch = torch.tensor(pred_ts, device=device)
        x_t = q_sample(digits_schedule, x0_i.expand(len(pred_ts), -1, -1, -1), t_batch, generator=g)
        x0_hat = x0_from_eps(digits_schedule, x_t, t_batch, eps=model(x_t, t_batch)).clamp(-1, 1)
        rows += [torch.cat([x_t, torch.ones_like(x0_i)[None]]), torch.cat([x0_hat, x0_i[None]])]
fig, ax = plt.subplots(figsize=(0.8 * (len(pred_ts) + 1), 0.8 * len(rows)))
image_table(ax, torch.stack(rows).cpu(), [f"t={t}" for t in pred_ts] + ["true $x_0$"],
            ["$x_t$", r"$\hat{x}_0$"] * len(x0_show))
show(fig, OUT / "x0_predictions.png")

# %% [markdown] id="vae"
# ## 8. A diffusion model is a (very particular) hierarchical VAE
#
# The bound of section 1 is a VAE's evidence lower bound with latents $\mathbf{x}_1, \dots, \mathbf{x}_T$. What sets
# diffusion models apart:
#
# - the **encoder is fixed** — the forward process, nothing to learn, and its posterior is known in closed form;
# - every **latent has the data's dimension**, there is no bottleneck;
# - **one decoder network is shared** by all $T$ steps, told which step it is at through the time embedding;
# - training optimises a **reweighted bound** ($L_\text{simple}$) rather than the bound itself.
#
# ## Summary
#
# - The bound on $-\log p_\theta(\mathbf{x}_0)$ is $L_T + \sum_{t=2}^T L_{t-1} + L_0$. With the mean parameterised
#   through a noise predictor, the KL of one draw in $L_{t-1}$ ($t \ge 2$) is
#   $\lambda_t\,\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2 + C_t$, where $C_t$ is free of $\theta$ and
#   zero only for $\sigma_t^2 = \tilde\beta_t$. The $t = 1$ term $L_0$ is the decoder, not a weighted squared error.
# - $L_\text{simple}$ sets $\lambda_t = 1$ for every $t = 1, \dots, T$: same optimum for a perfect network, more
#   emphasis on large $t$ (content) for a real one.
# - The optimum $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$ is not unit Gaussian: its variance is
#   $1 -$ (its noise error), below 1 whenever $\mathbf{x}_t$ does not determine $\boldsymbol\epsilon$ (for two-point
#   data: strongly shrunk where the two noisy copies overlap), and its distribution need not be Gaussian.
# - Training (Algorithm 1) is regression of the added noise; sampling (Algorithm 2) subtracts the predicted noise,
#   rescales and adds fresh noise of variance $\sigma_t^2 \in \{\beta_t, \tilde\beta_t\}$, $T$ times, except at the
#   last step, which returns the mean (the sample then lacks that step's variance $\sigma_1^2$).
#
# ## Questions to think about (not graded)
#
# 1. Sample the digits model with `variance="posterior"` (pass it to `trajectory`). Can you see a difference?
#    Where in the chain do the two samplers differ, and why is that where it matters least?
# 2. Train the toy model with the bound's weights instead of $L_\text{simple}$ (an objective that passes
#    `weights=vlb_weights(toy_schedule) / vlb_weights(toy_schedule)[2:].mean()` to `l_simple`). Compare the samples,
#    and the error per $t$: `error_per_t(toy_model, toy_schedule, toy_test, ts)` of section 7 works for the toy model
#    too (with `ts` a few steps in 1..TOY_T, and no clipping).
# 3. Halve `TOY_T` (the betas are rescaled automatically). What happens to sample quality, and to the time sampling
#    takes?
# 4. The $\sigma_t^2$ explorer of section 5 shows the toy samples with (almost) no noise ($c = 0$). Do the same for
#    the digits: pass `variance=torch.full((T_d + 1,), 1e-12)` to `trajectory`. What do the samples look like,
#    and why does Algorithm 2 need its noise?
# 5. The noise error at $t = T$ is small but not zero. What is the best possible prediction of
#    $\boldsymbol\epsilon$ from $\mathbf{x}_T$, and what error does it leave? (Hint: $\bar\alpha_T \neq 0$.)
# 6. Why is the U-Net's last layer initialised to zero? What would the first loss values be otherwise?
