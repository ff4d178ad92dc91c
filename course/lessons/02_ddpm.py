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
# 1. **What to train.** The variational bound on $-\log p_\theta(\mathbf{x}_0)$ splits into one KL term per step;
#    written in terms of the noise, each is a weighted squared error, and dropping the weights gives $L_\text{simple}$.
# 2. **How to train and sample.** Algorithms 1 and 2 of Ho et al. (2020), next to the package code that runs them,
#    and the choice of $\sigma_t^2$.
# 3. **Does it work?** We train a small MLP on a 2-D toy set and a small U-Net on the $8\times 8$ digits, watch the
#    reverse process, measure sample quality, and look at which $t$ the model finds hard (the content-detail
#    trade-off).
#
# Package modules used: `ddpm_scratch.losses`, `ddpm_scratch.ddpm`, `ddpm_scratch.nets`, `ddpm_scratch.train`.
# With `DDPM_SCRATCH_FAST=1` everything is shrunk to run in seconds (and the samples are then poor); the full run
# takes a few minutes on a laptop CPU, mostly training the digits model.

# %% id="parameters" tags=["parameters"]
import os
from pathlib import Path

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0

# 2-D toy problem: an MLP trained by a hand-written loop (section 5)
TOY = "two_moons"  # or "eight_gaussians", "swiss_roll", "checkerboard"
TOY_T = 100 if FAST else 1000  # diffusion steps (betas rescaled so that alpha_bar_T stays near 0)
TOY_STEPS = 300 if FAST else 3000  # training iterations
TOY_BATCH = 256
TOY_SAMPLES = 500 if FAST else 2000  # points generated

# digits: a U-Net trained with ddpm_scratch.train (section 6)
DIGITS_STEPS = 30 if FAST else 1500  # training iterations (~2-3 minutes on a laptop CPU in full mode)
DIGITS_BATCH = 32 if FAST else 128
DIGITS_T = 50 if FAST else 1000  # the linear schedule needs T ~ 1000; a short chain needs the cosine one
DIGITS_SCHEDULE = "cosine" if FAST else "linear"
DIGITS_MODEL = dict(base_channels=8, attention_resolutions=()) if FAST else {}  # {}: the trainer's default U-Net
N_SAMPLES = 16 if FAST else 360  # digits generated (the Frechet distance compares 360 with 360 test digits)
COMPUTE_FD = not FAST
N_EVAL = 64 if FAST else 360  # test digits used to measure the error per timestep (section 7)
N_EVAL_T = 6 if FAST else 25  # timesteps at which it is measured

OUT = Path("outputs/02_ddpm")  # figures, the training log and the checkpoint go here

# %% id="setup"
import inspect
import math
import time
from itertools import islice

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddpm_scratch.data import batches, get_dataset, load_digits
from ddpm_scratch.ddpm import ddpm_trajectory, p_mean, p_sample_step, train_step
from ddpm_scratch.forward import q_posterior, q_sample, x0_from_eps
from ddpm_scratch.losses import gaussian_kl, l_simple, vlb_weights
from ddpm_scratch.metrics import digits_fd, sliced_wasserstein
from ddpm_scratch.nets import MLPEps, SinusoidalEmbedding, count_parameters
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.train import TrainConfig, build_model, train
from ddpm_scratch.viz import image_grid, image_table, read_loss_log

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # CPU speed: arithmetic on denormal floats (< 1e-38) is very slow; round them to 0
torch.set_num_threads(1)  # small tensors: one thread is fastest, and far faster when other programs share the cores


def show(fig, name: str) -> None:
    """Save a figure as OUT/name.png and display it below the cell."""
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / f"{name}.png", dpi=100, bbox_inches="tight")
    plt.show()


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
# Each $L_{t-1}$ compares two Gaussians: the posterior $\mathcal{N}(\tilde{\boldsymbol\mu}_t, \tilde\beta_t
# \mathbf{I})$ from lesson 1 and the model $\mathcal{N}(\boldsymbol\mu_\theta, \sigma_t^2\mathbf{I})$. With fixed
# variances only the means matter:
#
# $$L_{t-1} = \frac{1}{2\sigma_t^2}\,\mathbb{E}_q\big\|\tilde{\boldsymbol\mu}_t(\mathbf{x}_t, \mathbf{x}_0) -
# \boldsymbol\mu_\theta(\mathbf{x}_t, t)\big\|^2 + C_t, \qquad C_t \text{ independent of } \theta .$$
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
# then proportional to the difference of noises, and
#
# $$L_{t-1} - C_t = \lambda_t\,\mathbb{E}_{\mathbf{x}_0, \boldsymbol\epsilon}\big\|\boldsymbol\epsilon -
# \boldsymbol\epsilon_\theta(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ t)
# \big\|^2, \qquad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)} .$$
#
# A sum over $t$ is $T$ times an average over $t \sim \mathcal{U}\{1, \dots, T\}$, so the bound (up to constants) is
# a *weighted* noise-regression loss. Ho et al. simply drop the weights:
#
# $$L_\text{simple} = \mathbb{E}_{t \sim \mathcal{U}\{1..T\},\ \mathbf{x}_0,\ \boldsymbol\epsilon}
# \big\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta(\sqrt{\bar\alpha_t}\,\mathbf{x}_0 +
# \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ t)\big\|^2 .$$
#
# Why is that allowed? Every term is minimised by the same function, the posterior mean of the noise
# $\mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t]$, so a network flexible enough to be exact at every $t$ has the
# same optimum under any positive weights. A real network is not exact, and the weights decide *where* its errors
# go. Dropping $\lambda_t$ is a reweighting of the bound, not a different model.
#
# **Check the identity numerically.** Take any "prediction" $\boldsymbol\epsilon_\theta$ (here: the true noise plus
# junk), compute the Gaussian KL directly from the two means and variances, and compare it with
# $\lambda_t(\epsilon - \epsilon_\theta)^2 + C_t$ coordinate by coordinate:

# %% id="kl_identity"
schedule = NoiseSchedule.linear(1000)
x0 = load_digits("test")[0][:8].double()
g = torch.Generator().manual_seed(SEED)
for variance in ("beta", "posterior"):
    lam, sigma2 = vlb_weights(schedule, variance), schedule.reverse_variances(variance)
    worst = 0.0
    for t in (2, 10, 100, 500, 1000):
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        eps_theta = eps + 0.3 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        x_t = q_sample(schedule, x0, t, noise=eps)
        true_mean, true_var = q_posterior(schedule, x0, x_t, t)
        kl = gaussian_kl(true_mean, true_var, p_mean(schedule, eps_theta, x_t, t), sigma2[t])
        c_t = gaussian_kl(0.0, true_var, 0.0, sigma2[t])  # the theta-free part
        worst = max(worst, (kl - (lam[t] * (eps - eps_theta) ** 2 + c_t)).abs().max().item())
    print(f"sigma_t^2 = {variance:9s}: largest |KL - (lambda_t (eps - eps_theta)^2 + C_t)| = {worst:.1e}")

# %% [markdown] id="weights_intro"
# What does the reweighting do? Plot $\lambda_t$ for both standard choices of $\sigma_t^2$ (section 3 explains them),
# each divided by its average over $t$ so that it can be compared with $L_\text{simple}$'s uniform weight 1 (an
# overall constant factor changes nothing in the optimisation). Relative to the bound, $L_\text{simple}$
# *down-weights* the first steps, where $\lambda_t$ is largest, and up-weights the rest.

# %% id="weights_plot"
ts = torch.arange(1, schedule.T + 1)
fig, ax = plt.subplots(figsize=(6, 3.4))
for variance, label in [("beta", r"$\sigma_t^2 = \beta_t$"), ("posterior", r"$\sigma_t^2 = \tilde\beta_t$")]:
    lam = vlb_weights(schedule, variance)[1:]
    ax.plot(ts, lam / lam.mean(), label=rf"bound: $\lambda_t$ / average, {label}")
ax.axhline(1.0, color="0.4", ls="--", lw=0.8, label=r"$L_\mathrm{simple}$: weight 1")
ax.set(xscale="log", yscale="log", xlabel="$t$", title="relative weight of each step's noise error")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
show(fig, "vlb_weights")

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
# lecture writes $1-\alpha_t$: the same number.) In the package, lines 2-5 of Algorithm 1 are `l_simple` plus an
# optimiser step (`train_step`), and line 4 of Algorithm 2 is `p_mean` plus noise (`p_sample_step`):

# %% id="source_l_simple"
print(inspect.getsource(l_simple))

# %% id="source_sampling"
print(inspect.getsource(p_mean))
print(inspect.getsource(p_sample_step))

# %% [markdown] id="by_hand_intro"
# One step of Algorithm 2 written out by hand, with the same $\mathbf{z}$, must agree with `p_sample_step`:

# %% id="by_hand"
t = 400
g = torch.Generator().manual_seed(SEED)
x_t, eps_theta, z = (torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
a, b, ab = schedule.alphas[t], schedule.betas[t], schedule.alpha_bars[t]
by_hand = (x_t - b / (1 - ab).sqrt() * eps_theta) / a.sqrt() + b.sqrt() * z  # sigma_t^2 = beta_t
package = p_sample_step(schedule, eps_theta, x_t, t, variance="beta", noise=z)
print("largest difference:", (by_hand - package).abs().max().item())

# %% [markdown] id="variance"
# ## 3. Choosing $\sigma_t^2$
#
# The reverse variances are not learned here; two values are natural, and they are the two ends of a range:
#
# - $\sigma_t^2 = \beta_t$, the forward step's own variance. It is the exact reverse variance if the data were
#   themselves $\mathcal{N}(\mathbf{0}, \mathbf{I})$.
# - $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$, the posterior variance of
#   lesson 1. It is exact if the data set were a single point $\mathbf{x}_0$ (then knowing $\mathbf{x}_0$ costs
#   nothing).
#
# Real data lie in between, and Ho et al. found similar sample quality with either. The two differ only in the first
# few steps, where $\tilde\beta_t$ is well below $\beta_t$ ($\tilde\beta_1 = 0$); beyond $t \approx 50$ they agree to
# within a few per cent.

# %% id="variance_plot"
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(ts, schedule.betas[1:], label=r"$\beta_t$")
axes[0].plot(ts[1:], schedule.posterior_variances[2:], label=r"$\tilde\beta_t$")
axes[0].set(xscale="log", yscale="log", xlabel="$t$", title="the two choices of $\\sigma_t^2$")
axes[1].plot(ts[1:], schedule.posterior_variances[2:] / schedule.betas[2:])
axes[1].set(xscale="log", xlabel="$t$", title=r"$\tilde\beta_t / \beta_t = (1-\bar\alpha_{t-1})/(1-\bar\alpha_t)$")
axes[0].legend()
for ax in axes:
    ax.grid(alpha=0.3)
show(fig, "sigma_choices")

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

# %% id="time_embedding"
embedding = SinusoidalEmbedding(64)(torch.arange(1, 1001))  # (T, 64)
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.imshow(embedding.T, aspect="auto", cmap="RdBu", interpolation="nearest")
ax.set(xlabel="$t$", ylabel="dimension", title="sinusoidal time embedding: sin (top half) and cos (bottom half)")
show(fig, "time_embedding")

# %% [markdown] id="toy"
# ## 5. A first model: two moons in two dimensions
#
# Algorithm 1 is a short loop. We write it out with the package's `train_step` (one gradient step on $L_\text{simple}$
# for a batch). The data are scaled to unit variance per axis, like images scaled to $[-1, 1]$. With $T = 1000$ we use
# DDPM's $\beta$ range; for a shorter chain we stretch it by $1000/T$ so that $\bar\alpha_T$ still ends near $0$.

# %% id="toy_setup"
toy_schedule = NoiseSchedule.linear(TOY_T, beta_start=1e-4 * 1000 / TOY_T, beta_end=0.02 * 1000 / TOY_T)
toy_data = get_dataset(TOY, "train")  # (10000, 2)
torch.manual_seed(SEED)  # the initial weights
toy_model = MLPEps(dim=2, hidden=128, depth=3)
print(toy_schedule, f"| {len(toy_data)} training points | {count_parameters(toy_model):,d} parameters")

# %% id="toy_train"
optimizer = torch.optim.AdamW(toy_model.parameters(), lr=2e-3)
g = torch.Generator().manual_seed(SEED)
toy_losses = []
start = time.perf_counter()
for x0 in islice(batches(toy_data, TOY_BATCH, generator=g), TOY_STEPS):  # line 2: x0 ~ q(x0)
    loss = train_step(toy_model, optimizer, toy_schedule, x0, generator=g)  # lines 3-5
    toy_losses.append(loss.item())
toy_model.eval()
print(f"{TOY_STEPS} steps in {time.perf_counter() - start:.1f} s, "
      f"mean loss over the last 100 steps {np.mean(toy_losses[-100:]):.3f}")

# %% [markdown] id="toy_sample_intro"
# Now Algorithm 2: start from $\mathcal{N}(\mathbf{0}, \mathbf{I})$ and apply the learned reverse step $T$ times.
# `ddpm_trajectory` keeps the point cloud at a few $t$ so we can watch it form. The sliced Wasserstein distance
# (`sliced_wasserstein`: the average 1-D optimal-transport distance over random projections) compares the samples
# with held-out test points; the same distance between two independent real samples of the same size is the floor a
# perfect model would reach.

# %% id="toy_sample"
toy_steps = [TOY_T, int(0.6 * TOY_T), int(0.4 * TOY_T), int(0.2 * TOY_T), int(0.1 * TOY_T), 0]
g = torch.Generator().manual_seed(SEED)
toy_traj = ddpm_trajectory(toy_model, toy_schedule, (TOY_SAMPLES, 2), save_at=toy_steps, generator=g)
toy_samples = toy_traj[-1]
test = get_dataset(TOY, "test")
real = toy_data[torch.randperm(len(toy_data), generator=g)[:TOY_SAMPLES]]
print(f"sliced W2(samples, test) = {sliced_wasserstein(toy_samples, test):.3f}   "
      f"floor: sliced W2(train subset, test) = {sliced_wasserstein(real, test):.3f}")

# %% id="toy_plots"
fig, axes = plt.subplots(1, len(toy_steps) + 1, figsize=(2.7 * (len(toy_steps) + 1), 2.9), sharex=True, sharey=True)
for ax, t, cloud in zip(axes[:-1], toy_steps, toy_traj, strict=True):
    ax.scatter(cloud[:, 0], cloud[:, 1], s=1, alpha=0.5)
    ax.set_title(f"$x_{{{t}}}$" if t else "$x_0$ (samples)", fontsize=10)
axes[-1].scatter(test[:TOY_SAMPLES, 0], test[:TOY_SAMPLES, 1], s=1, alpha=0.5, color="0.4")
axes[-1].set_title("real data", fontsize=10)
for ax in axes:
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
fig.suptitle("reverse process on the toy set (Algorithm 2), from noise to data")
show(fig, "toy_reverse")

# %% id="toy_loss"
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(toy_losses, color="0.75", lw=0.6)
window = max(TOY_STEPS // 30, 1)
ax.plot(np.arange(window - 1, TOY_STEPS), np.convolve(toy_losses, np.ones(window) / window, "valid"), color="C0")
ax.set(xlabel="step", ylabel=r"$L_\mathrm{simple}$", title="toy training loss (grey: per batch; blue: average)")
ax.grid(alpha=0.3)
show(fig, "toy_loss")

# %% [markdown] id="digits"
# ## 6. Digits with a U-Net
#
# For images we use the package's trainer, `ddpm_scratch.train.train`: the same loop with what a real run adds
# around it (AdamW with a warm-up of the learning rate, gradient clipping, an exponential moving average (EMA) of the
# weights that is used for sampling, a CSV loss log and a checkpoint in `out`). The data are the 1437 training
# digits of scikit-learn, $8\times 8$ pixels in $[-1, 1]$. In full mode this is the slow cell of the lesson.

# %% id="digits_train"
config = TrainConfig(dataset="digits", steps=DIGITS_STEPS, batch_size=DIGITS_BATCH, T=DIGITS_T,
                     schedule=DIGITS_SCHEDULE, model=dict(DIGITS_MODEL), lr=2e-3, ema_decay=0.995, seed=SEED,
                     warmup_steps=min(200, DIGITS_STEPS // 5), log_every=max(1, DIGITS_STEPS // 150))
start = time.perf_counter()
result = train(config, out=OUT / "digits_run", progress=not FAST)
model, digits_schedule = result.ema_model, result.schedule
device = next(model.parameters()).device
print(f"trained {DIGITS_STEPS} steps in {time.perf_counter() - start:.0f} s on {device}; "
      f"last logged loss {result.final_loss:.4f}")

# %% id="digits_loss"
steps, losses = read_loss_log(OUT / "digits_run" / "loss.csv")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, losses, color="0.7", lw=0.8, label="logged batches")
window = min(10, len(losses))
ax.plot(steps[window - 1:], np.convolve(losses, np.ones(window) / window, "valid"), label=f"average of {window}")
ax.set(yscale="log", xlabel="step", ylabel=r"$L_\mathrm{simple}$", title="digits training loss")
ax.legend()
ax.grid(alpha=0.3)
show(fig, "digits_loss")

# %% [markdown] id="digits_sample_intro"
# Sample with the EMA weights. One call of `ddpm_trajectory` runs Algorithm 2 for all `N_SAMPLES` images and keeps
# $\mathbf{x}_t$ at a few steps; its last frame ($t = 0$) is the set of samples. The strip shows the first few images
# along the way: the coarse shape of the digit settles long before its strokes become sharp.

# %% id="digits_sample"
T_d = digits_schedule.T
strip_steps = sorted({T_d, int(0.8 * T_d), int(0.6 * T_d), int(0.4 * T_d), int(0.3 * T_d), int(0.2 * T_d),
                      int(0.1 * T_d), int(0.05 * T_d), 0}, reverse=True)
g = torch.Generator(device=device).manual_seed(SEED)
start = time.perf_counter()
traj = ddpm_trajectory(model, digits_schedule, (N_SAMPLES, 1, 8, 8), save_at=strip_steps, generator=g,
                       device=device).cpu()
samples = traj[-1].clamp(-1, 1)  # the last step can overshoot [-1, 1] a little
print(f"sampled {N_SAMPLES} digits with {T_d} steps in {time.perf_counter() - start:.0f} s")

# %% id="digits_strip"
n_show = min(6, N_SAMPLES)
fig, ax = plt.subplots(figsize=(0.75 * len(strip_steps), 0.8 * n_show))
image_table(ax, traj[:, :n_show].transpose(0, 1), [f"t={t}" for t in strip_steps])
ax.set_title("reverse process of the trained model (Algorithm 2): rows are samples", fontsize=10)
show(fig, "digits_reverse")

# %% id="digits_grid"
real_digits = load_digits("test")[0][:N_SAMPLES]
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
show_images(axes[0], samples[:100], nrow=10)
axes[0].set_title("samples")
show_images(axes[1], real_digits[:100], nrow=10)
axes[1].set_title("real test digits")
show(fig, "digits_samples")

# %% [markdown] id="fd_intro"
# **How good are they?** The Fréchet distance (FD) fits a Gaussian to features of each image set (here the features
# of a small digits classifier, trained once and cached) and measures the distance between the two Gaussians; it is
# the recipe of the FID used for natural images. FD from a finite sample is biased upwards, so a number alone means
# little: `digits_fd` reports it next to the floor, the FD between real training and real test digits with the same
# number of images. A ratio near 1 means the samples are statistically as good as real digits in that feature space.
# (Skipped in fast mode.)

# %% id="digits_fd"
if COMPUTE_FD:
    report = digits_fd(samples, generator=torch.Generator().manual_seed(SEED))
    print(report)
else:
    print("fast mode: FD skipped (set DDPM_SCRATCH_FAST=0 to compute it)")

# %% [markdown] id="tradeoff"
# ## 7. Where is the model's error? The content-detail trade-off
#
# Measure $L_\text{simple}$ of the trained model separately at each $t$, on test digits it has never seen. Two views
# of the same error are useful. The **noise error** $\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2$ is what
# we trained on. The **data error** $\|\mathbf{x}_0 - \hat{\mathbf{x}}_0\|^2$, where $\hat{\mathbf{x}}_0 =
# (\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon_\theta)/\sqrt{\bar\alpha_t}$ is the model's guess of the
# clean image (`x0_from_eps`), measures how far that guess is from the truth. Unclipped it would be exactly the noise
# error divided by $\mathrm{SNR}(t)$, which explodes as $t \to T$; we clip $\hat{\mathbf{x}}_0$ to the data range
# $[-1, 1]$, as a sensible guess would be. Both errors are per pixel.

# %% id="error_per_t"
x0_eval = load_digits("test")[0][:N_EVAL].to(device)
eval_ts = torch.unique(torch.logspace(0, math.log10(T_d), N_EVAL_T).round().long())  # 1..T, denser at small t
g = torch.Generator(device=device).manual_seed(SEED)


@torch.no_grad()
def data_error(t: int) -> float:
    """Mean squared error per pixel of the model's guess x0_hat (clipped to [-1, 1]) from x_t ~ q(x_t | x0)."""
    t_batch = torch.full((len(x0_eval),), t, device=device)
    x_t = q_sample(digits_schedule, x0_eval, t_batch, generator=g)
    x0_hat = x0_from_eps(digits_schedule, x_t, t_batch, model(x_t, t_batch)).clamp(-1, 1)
    return (x0_eval - x0_hat).pow(2).mean().item()


with torch.no_grad():
    eps_error = torch.tensor([l_simple(model, digits_schedule, x0_eval, t=int(t), generator=g).item()
                              for t in eval_ts], dtype=torch.float64)  # L_simple with t held fixed
x0_error = torch.tensor([data_error(int(t)) for t in eval_ts], dtype=torch.float64)
lam_d = vlb_weights(digits_schedule, "beta")[eval_ts]
print("   t   noise error   data error")
for t, e, d in zip(eval_ts.tolist(), eps_error.tolist(), x0_error.tolist(), strict=True):
    print(f"{t:4d}   {e:10.4f}   {d:10.4f}")

# %% id="error_plot"
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
axes[0].plot(eval_ts, eps_error, "o-", label=r"noise error $\|\epsilon - \epsilon_\theta\|^2$ ($L_\mathrm{simple}$)")
axes[0].plot(eval_ts, x0_error, "s-", label=r"data error $\|x_0 - \hat{x}_0\|^2$ ($\hat{x}_0$ clipped)")
axes[0].axhline(x0_eval.var(dim=0).mean().item(), color="C1", ls=":", lw=1, label="guessing the average digit")
axes[0].set(xscale="log", yscale="log", xlabel="$t$", title="error of the trained model per pixel, by timestep")
axes[1].plot(eval_ts, lam_d * eps_error * 64, "o-", color="C2")
axes[1].set(xscale="log", yscale="log", xlabel="$t$",
            title=r"the bound's term $\lambda_t\,\|\epsilon - \epsilon_\theta\|^2$ (nats per image)")
axes[0].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
show(fig, "error_per_t")

# %% [markdown] id="tradeoff_read"
# How to read these curves (they are measured in full mode; in fast mode the model is barely trained):
#
# - The **noise error** is largest at small $t$: there the image is almost clean and the network must find a faint
#   noise pattern in it. Towards $t = T$, $\mathbf{x}_t$ is nearly pure noise and predicting
#   $\boldsymbol\epsilon \approx \mathbf{x}_t$ is easy.
# - The **data error** is the opposite: at large $t$ the model has to invent the digit, its content, and its error
#   approaches that of guessing the average digit (dotted line); at small $t$ only fine detail is missing. Very close
#   to $t = T$ it even gets worse than that guess: $\hat{\mathbf{x}}_0$ divides by $\sqrt{\bar\alpha_t} \approx
#   0$, which magnifies the tiny noise error. (Predicting $\boldsymbol\epsilon$ is well-conditioned exactly where
#   predicting $\mathbf{x}_0$ is not, and vice versa: one reason why some models predict $\mathbf{x}_0$, or a mix
#   of the two, instead.)
# - The **bound** multiplies the noise error by $\lambda_t$, which is largest at small $t$: most of the bound is
#   spent on the first steps, i.e. on imperceptible high-frequency detail (lesson 1: high frequencies drown first,
#   so they are what the last denoising steps generate). $L_\text{simple}$ weights all steps equally and so moves the
#   network's effort towards the larger $t$, where the coarse content is decided. That is why it gives better-looking
#   samples while giving up a little likelihood: the weighting of the timesteps is a design choice, not a detail.
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
        x0_hat = x0_from_eps(digits_schedule, x_t, t_batch, model(x_t, t_batch)).clamp(-1, 1)
        rows += [torch.cat([x_t, torch.ones_like(x0_i)[None]]), torch.cat([x0_hat, x0_i[None]])]
fig, ax = plt.subplots(figsize=(0.8 * (len(pred_ts) + 1), 0.8 * len(rows)))
image_table(ax, torch.stack(rows).cpu(), [f"t={t}" for t in pred_ts] + ["true $x_0$"],
            ["$x_t$", r"$\hat{x}_0$"] * len(x0_show))
show(fig, "x0_predictions")

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
# - The bound on $-\log p_\theta(\mathbf{x}_0)$ is $L_T + \sum_t L_{t-1} + L_0$; with the mean parameterised
#   through a noise predictor, $L_{t-1}$ is $\lambda_t\,\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2$
#   plus a constant.
# - $L_\text{simple}$ sets $\lambda_t = 1$: same optimum for a perfect network, more emphasis on large $t$ (content)
#   for a real one.
# - Training (Algorithm 1) is regression of the added noise; sampling (Algorithm 2) subtracts the predicted noise,
#   rescales and adds fresh noise of variance $\sigma_t^2 \in \{\beta_t, \tilde\beta_t\}$, $T$ times.
#
# ## Questions to think about (not graded)
#
# 1. Sample the digits model with `variance="posterior"` (pass it to `ddpm_trajectory`). Can you see a difference?
#    Where in the chain do the two samplers differ, and why is that where it matters least?
# 2. Train the toy model with the bound's weights instead of $L_\text{simple}$ (`train_step(..., weights=
#    vlb_weights(toy_schedule) / vlb_weights(toy_schedule)[1:].mean())`). Compare the samples and the error per $t$.
# 3. Halve `TOY_T` (the betas are rescaled automatically). What happens to sample quality, and to the time sampling
#    takes?
# 4. Make the sampler (almost) deterministic: pass `variance=torch.full((T_d + 1,), 1e-12)` to `ddpm_trajectory`.
#    What do the samples look like, and why does Algorithm 2 need its noise?
# 5. The noise error at $t = T$ is small but not zero. What is the best possible prediction of
#    $\boldsymbol\epsilon$ from $\mathbf{x}_T$, and what error does it leave? (Hint: $\bar\alpha_T \neq 0$.)
# 6. Why is the U-Net's last layer initialised to zero? What would the first loss values be otherwise?
