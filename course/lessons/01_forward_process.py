# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 1 — the forward diffusion process
#
# A diffusion model has two halves. The **forward process** takes a data point $\mathbf{x}_0$ and destroys it, a
# little at a time, by adding Gaussian noise in $T$ steps until nothing of the data is left. The **reverse process**
# is a neural network that learns to undo one such step; chaining it $T$ times turns pure noise into data. This
# lesson is about the first half only. It has no parameters to learn, which is exactly why everything about it can be
# written down in closed form: that is what makes the second half trainable (lesson 2).
#
# What you will see:
#
# 1. the one-step kernel $q(\mathbf{x}_t \mid \mathbf{x}_{t-1})$ and how to sample it;
# 2. the closed-form kernel $q(\mathbf{x}_t \mid \mathbf{x}_0)$, checked against a simulated chain;
# 3. the marginal $q(\mathbf{x}_t)$: the data distribution, shrunk and blurred by a Gaussian;
# 4. noise schedules (linear vs cosine), $\bar\alpha_t$ and the signal-to-noise ratio;
# 5. a Fourier view: why fine detail disappears before coarse shape;
# 6. the posterior $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$ by completing the square;
# 7. the prior term $L_T$: how close $q(\mathbf{x}_T)$ gets to $\mathcal{N}(\mathbf{0}, \mathbf{I})$.
#
# The code uses the course package `ddpm_scratch`; open `ddpm_scratch/schedules.py` and `ddpm_scratch/forward.py`
# beside this notebook, they are short. In full mode the lesson ran in 28-33 s on two idle CPU cores (2.5 minutes
# while other programs kept both cores busy; measured); with `DDPM_SCRATCH_FAST=1` it is smaller and quicker.
#
# **Index convention:** every schedule array has length $T+1$ and index $t$ is the lecture's $t$; index $0$ is the
# data itself ($\beta_0 = 0$, $\bar\alpha_0 = 1$).

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
T = 1000  # number of diffusion steps (DDPM's value)
N_DIGITS = 4 if FAST else 6  # rows of the digits picture
N_TOY = 1000 if FAST else 4000  # points of the 2-D toy cloud
N_CHAINS = 2000 if FAST else 40_000  # independent forward chains in the Monte Carlo checks
THREADS = None  # torch threads; None: torch's default, one per core (see the setup cell)
# Figures are also saved in outputs/ of the course folder (the one holding lessons/), wherever the notebook was
# started from; outside a course folder (e.g. a scratch copy of the notebook), in outputs/ of the working directory.
OUT = lesson_output_dir("01_forward_process")

# %% id="setup"
import math

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from ddpm_scratch.forward import frequency_snr, q_posterior, q_sample, q_step, radial_power_spectrum
from ddpm_scratch.losses import prior_bpd
from ddpm_scratch.machinery.data import get_dataset, load_digits
from ddpm_scratch.machinery.notebook import explore, show
from ddpm_scratch.machinery.viz import image_table
from ddpm_scratch.schedules import NoiseSchedule

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
# Threads, measured on two CPU cores for the one heavy cell (a q_step on 40,000 chains, ms per step, 1 thread vs 2):
# idle machine 15-31 vs 12-26 (2 threads 1.2x faster); with another process keeping one core busy 17-19 vs 16-39
# (2 threads up to 2.3x slower). The other cells take milliseconds either way. So THREADS = None keeps torch's
# default (one thread per core); set THREADS = 1 if other programs keep your cores busy.
if THREADS is not None:
    torch.set_num_threads(THREADS)
# show(fig, path) saves a figure and displays it; explore(plot, **controls) adds sliders in a live notebook frontend.
# Both live in ddpm_scratch/machinery/notebook.py, shared by the lessons.

# %% [markdown] id="one_step"
# ## 1. One step of noise
#
# Pick variances $\beta_1, \dots, \beta_T \in (0, 1)$, small and increasing. Step $t$ of the forward process is
#
# $$q(\mathbf{x}_t \mid \mathbf{x}_{t-1}) = \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{1-\beta_t}\,\mathbf{x}_{t-1},\
# \beta_t \mathbf{I}\big),$$
#
# and the whole chain is Markov: $q(\mathbf{x}_{1:T} \mid \mathbf{x}_0) = \prod_{t=1}^T q(\mathbf{x}_t \mid
# \mathbf{x}_{t-1})$. To *sample* a step we write the Gaussian as a deterministic function of standard noise (the
# reparameterisation we will lean on all course long):
#
# $$\mathbf{x}_t = \sqrt{1-\beta_t}\,\mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol\epsilon_{t-1}, \qquad
# \boldsymbol\epsilon_{t-1} \sim \mathcal{N}(\mathbf{0}, \mathbf{I}).$$
#
# Why shrink the mean by $\sqrt{1-\beta_t}$ instead of just adding noise? Because then a coordinate with unit
# variance keeps unit variance: $(1-\beta_t)\cdot 1 + \beta_t = 1$. Adding noise alone would make the variance grow
# without bound; with the shrinkage the chain drifts towards one fixed distribution, $\mathcal{N}(\mathbf{0},
# \mathbf{I})$, whatever it started from. (This is why the process is called *variance preserving*.)
#
# Two shorthands make every formula shorter: $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s=1}^t \alpha_s$.
# DDPM's schedule is linear, from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$ with $T = 1000$:

# %% id="linear_schedule"
schedule = NoiseSchedule.linear(T)
print(schedule)
for t in (0, 1, 2, T // 2, T):
    print(f"t = {t:4d}   beta_t = {schedule.betas[t]:.5f}   alpha_bar_t = {schedule.alpha_bars[t]:.3e}")

# %% [markdown] id="kernel"
# ## 2. Jumping straight to step $t$: the diffusion kernel
#
# Running $t$ steps one after the other is wasteful when all we want is $\mathbf{x}_t$. Because every step is linear
# in the previous state plus fresh Gaussian noise, the composition is Gaussian too, with a mean and variance we can
# compute. One fact does all the work:
#
# > **Sum of independent Gaussians.** If $\mathbf{a} \sim \mathcal{N}(\mathbf{0}, s_a^2\mathbf{I})$ and
# > $\mathbf{b} \sim \mathcal{N}(\mathbf{0}, s_b^2\mathbf{I})$ are independent, then $\mathbf{a} + \mathbf{b} \sim
# > \mathcal{N}(\mathbf{0}, (s_a^2 + s_b^2)\mathbf{I})$. (Multiply the characteristic functions:
# > $e^{-s_a^2\|\mathbf{u}\|^2/2}\,e^{-s_b^2\|\mathbf{u}\|^2/2}$.)
#
# Take two steps from $\mathbf{x}_0$, with independent noises $\boldsymbol\epsilon_0, \boldsymbol\epsilon_1$, and
# substitute the first step into the second: $\mathbf{x}_2$ is $\sqrt{\alpha_2\alpha_1}\,\mathbf{x}_0$ plus a scaled
# copy of $\boldsymbol\epsilon_0$ plus a scaled copy of $\boldsymbol\epsilon_1$. The two noise terms are independent
# zero-mean Gaussians, so by the fact above they merge into a single Gaussian noise term. Working out its variance,
# and repeating the merge once per step (an induction on $t$), is question C4 of problem set 1; the result is the
# **diffusion kernel**
#
# $$q(\mathbf{x}_t \mid \mathbf{x}_0) = \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{\bar\alpha_t}\,\mathbf{x}_0,\
# (1-\bar\alpha_t)\mathbf{I}\big)
# \quad\Longleftrightarrow\quad
# \mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon,\ \
# \boldsymbol\epsilon \sim \mathcal{N}(\mathbf{0}, \mathbf{I}).$$
#
# Read it as a blend: a fraction $\sqrt{\bar\alpha_t}$ of the signal, and noise whose variance makes up the rest.
# The schedule is designed so that $\bar\alpha_T \approx 0$: at the end only noise is left. In the package the two
# samplers are `q_step` (one step) and `q_sample` (the kernel).
#
# **Check.** Run many independent chains of `q_step` from the same digit and compare, pixel by pixel, the empirical
# mean and variance at a few $t$ with the kernel's $\sqrt{\bar\alpha_t}\,\mathbf{x}_0$ and $1-\bar\alpha_t$. We
# report the largest deviation over the 64 pixels in units of its standard error, estimated from the chains
# themselves: both estimates are averages over the $N$ chains (of $x$, and of the squared deviation $(x-\bar x)^2$),
# and an average of $N$ independent terms has standard error (standard deviation of one term)$/\sqrt{N}$. Problem
# set 1 (C3) derives the exact error bars. Values of up to about 3-4 are what chance alone
# produces. (In full mode this cell runs 40,000 chains for 1,000 steps, with a progress bar: 18-22 s on two idle CPU
# cores, 134 s when other programs kept both cores busy; see THREADS in the setup cell.)

# %% id="chain_vs_kernel"
digits, labels = load_digits("train")
x0 = digits[:1].expand(N_CHAINS, -1, -1, -1)  # one digit, N_CHAINS copies: (N, 1, 8, 8)
check_at = [1, T // 100, T // 10, T // 2, T]
g = torch.Generator().manual_seed(SEED)
x = x0.clone()
for t in tqdm(range(1, T + 1), desc="forward chains"):
    x = q_step(schedule, x, t, generator=g)  # x_t from x_{t-1}: one step of the chain
    if t in check_at:
        ab = schedule.alpha_bars[t]
        squared_dev = (x - x.mean(0)) ** 2  # the sample variance is (nearly) the average of these
        mean_err = (x.mean(0) - ab.sqrt() * x0[0]) / (x.std(0) / math.sqrt(N_CHAINS))
        var_err = (x.var(0) - (1 - ab)) / (squared_dev.std(0) / math.sqrt(N_CHAINS))
        print(f"t = {t:4d}: max |z| of the mean {mean_err.abs().max():.2f}, of the variance {var_err.abs().max():.2f}")

# %% [markdown] id="digits_intro"
# ### What it looks like on images
#
# The scikit-learn digits are $8\times 8$ grey-scale images scaled to $[-1, 1]$. Each row below is one digit followed
# along a single forward chain (`q_step` applied $t$ times); each column is one $t$. Pixels outside $[-1, 1]$ are
# clipped for display. Notice how long the digit stays readable under the linear schedule, and how abruptly it goes
# once $\bar\alpha_t$ gets small.

# %% id="digits_forward"
show_at = [round(f * T) for f in (0, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1)]
g = torch.Generator().manual_seed(SEED)
x = digits[:N_DIGITS]
frames = {0: x}
for t in range(1, T + 1):
    x = q_step(schedule, x, t, generator=g)
    if t in show_at:
        frames[t] = x

fig, ax = plt.subplots(figsize=(0.8 * len(show_at), 0.85 * N_DIGITS))
image_table(ax, torch.stack([frames[t] for t in show_at], dim=1), [f"t={t}" for t in show_at])
ax.set_title(f"forward process on digits: rows are images, columns are t (linear schedule, T={T})", fontsize=10)
show(fig, OUT / "digits_forward.png")

# %% [markdown] id="marginal"
# ## 3. What happens to the whole distribution
#
# The kernel describes one data point. The distribution of $\mathbf{x}_t$ over the whole data set is
#
# $$q(\mathbf{x}_t) = \int q(\mathbf{x}_0)\, q(\mathbf{x}_t \mid \mathbf{x}_0)\, d\mathbf{x}_0
# = \int q(\mathbf{x}_0)\, \mathcal{N}\big(\mathbf{x}_t;\ \sqrt{\bar\alpha_t}\,\mathbf{x}_0,\
# (1-\bar\alpha_t)\mathbf{I}\big)\, d\mathbf{x}_0 .$$
#
# Substitute $\mathbf{y} = \sqrt{\bar\alpha_t}\,\mathbf{x}_0$: $q(\mathbf{x}_t)$ is the density of $\mathbf{y}$
# (the data, shrunk towards the origin by $\sqrt{\bar\alpha_t}$) **convolved with a Gaussian** of variance
# $1-\bar\alpha_t$. Two things happen at once as $t$ grows: the data contract to a point and the blur widens to unit
# variance. We never need this integral in closed form, because it is easy to *sample*: draw $\mathbf{x}_0$ from the
# data, then $\mathbf{x}_t$ from the kernel (ancestral sampling). That is how training will use it.
#
# For a mixture of Gaussians the convolution *does* have a closed form — each component
# $\mathcal{N}(m, s^2)$ becomes $\mathcal{N}(\sqrt{\bar\alpha_t}\,m,\ \bar\alpha_t s^2 + 1 - \bar\alpha_t)$ — so in
# one dimension we can compare histograms of ancestral samples with the exact density:

# %% id="mixture_1d"
weights = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
means = torch.tensor([-1.0, 0.3, 1.0], dtype=torch.float64)
stds = torch.tensor([0.05, 0.05, 0.05], dtype=torch.float64)


def mixture_density_t(x: torch.Tensor, t: int) -> torch.Tensor:
    """Exact density of q(x_t) when q(x_0) is the 1-D Gaussian mixture above: x (M,) -> (M,)."""
    ab = schedule.alpha_bars[t]
    m, var = ab.sqrt() * means, ab * stds**2 + 1 - ab
    comp = torch.exp(-(x[:, None] - m) ** 2 / (2 * var)) / torch.sqrt(2 * math.pi * var)
    return comp @ weights


g = torch.Generator().manual_seed(SEED)
k = torch.multinomial(weights, N_CHAINS, replacement=True, generator=g)
x0_1d = (means[k] + stds[k] * torch.randn(N_CHAINS, generator=g, dtype=torch.float64))[:, None]  # (N, 1)
grid = torch.linspace(-3.5, 3.5, 701, dtype=torch.float64)
fig, axes = plt.subplots(1, 5, figsize=(15, 2.8), sharex=True)
for ax, t in zip(axes, [1, T // 20, T // 10, T // 5, T], strict=True):
    xt = q_sample(schedule, x0_1d, t, generator=g)[:, 0]
    ax.hist(xt.numpy(), bins=120, range=(-3.5, 3.5), density=True, color="0.75", label="ancestral samples")
    ax.plot(grid, mixture_density_t(grid, t), color="C3", lw=1.2, label="exact $q(x_t)$")
    ax.set_title(rf"$t={t}$, $\bar\alpha_t={schedule.alpha_bars[t]:.3f}$", fontsize=10)
    ax.set_xlabel("$x_t$")
axes[0].set_ylabel("density")
axes[0].legend(fontsize=8, loc="upper left")
show(fig, OUT / "mixture_1d.png")

# %% [markdown] id="toy_intro"
# The same in two dimensions, with the "two moons" toy set (scaled to unit variance per axis). The moons shrink and
# blur into one round blob; by $t = T$ the cloud is indistinguishable from $\mathcal{N}(\mathbf{0}, \mathbf{I})$
# (grey circles: one and two standard deviations of it).

# %% id="toy_forward"
toy = get_dataset("two_moons", "train", n=N_TOY, generator=torch.Generator().manual_seed(SEED))
g = torch.Generator().manual_seed(SEED)
toy_at = [0, T // 20, T // 10, T // 5, 2 * T // 5, T]
fig, axes = plt.subplots(1, len(toy_at), figsize=(2.6 * len(toy_at), 2.8), sharex=True, sharey=True)
circle = torch.linspace(0, 2 * math.pi, 200)
for ax, t in zip(axes, toy_at, strict=True):
    xt = q_sample(schedule, toy, t, generator=g)
    ax.scatter(xt[:, 0], xt[:, 1], s=1, alpha=0.4)
    for r in (1, 2):
        ax.plot(r * circle.cos(), r * circle.sin(), color="0.5", lw=0.7)
    ax.set_title(f"t={t}", fontsize=10)
    ax.set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal", xlabel="first coordinate of $x_t$")
axes[0].set_ylabel("second coordinate of $x_t$")
show(fig, OUT / "toy_forward.png")

# %% [markdown] id="forward_explorer_intro"
# **Explore.** Move $t$ along the forward process. The digits, the 1-D mixture and the toy cloud are those above,
# each diffused with one fixed draw of noise $\boldsymbol\epsilon$, so that from one $t$ to the next only
# $\bar\alpha_t$ changes in $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,
# \boldsymbol\epsilon$. In a notebook frontend the cell shows a slider for $t$; run headless (tests, or
# `jupyter nbconvert --execute`) it draws $t = T/10$.

# %% id="forward_explorer"
g = torch.Generator().manual_seed(SEED)
explore_x0 = {"digits": digits[:8], "mixture": x0_1d, "toy": toy}
explore_eps = {name: torch.randn(x.shape, generator=g, dtype=x.dtype) for name, x in explore_x0.items()}


def forward_at(t: int) -> None:
    """x_t of the digits, the 1-D mixture and the toy cloud, each with its noise held fixed."""
    x_t = {name: q_sample(schedule, x, t, noise=explore_eps[name]) for name, x in explore_x0.items()}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.3), gridspec_kw={"width_ratios": [1.5, 1.2, 1]})
    image_table(axes[0], x_t["digits"].reshape(2, 4, 1, 8, 8), [""] * 4)
    axes[0].set_title("digits", fontsize=10)
    axes[1].hist(x_t["mixture"][:, 0].numpy(), bins=120, range=(-3.5, 3.5), density=True, color="0.75")
    axes[1].plot(grid, mixture_density_t(grid, t), color="C3", lw=1.2, label="exact $q(x_t)$")
    axes[1].set(xlabel="$x_t$", ylabel="density", title="1-D mixture")
    axes[2].scatter(x_t["toy"][:, 0], x_t["toy"][:, 1], s=1, alpha=0.4)
    for r in (1, 2):
        axes[2].plot(r * circle.cos(), r * circle.sin(), color="0.5", lw=0.7)
    axes[2].set(xlim=(-3.2, 3.2), ylim=(-3.2, 3.2), aspect="equal", title="two moons",
                xlabel="first coordinate", ylabel="second coordinate")
    ab = schedule.alpha_bars[t].item()
    fig.suptitle(rf"$t = {t}$: $\bar\alpha_t = {ab:.3g}$, $\sqrt{{\bar\alpha_t}} = {ab ** 0.5:.3f}$, "
                 rf"$\sqrt{{1-\bar\alpha_t}} = {(1 - ab) ** 0.5:.3f}$", y=1.02)
    show(fig, OUT / "forward_explorer.png")


explore(forward_at, t=(T // 10, 0, T, 1))

# %% [markdown] id="schedules"
# ## 4. Noise schedules and the signal-to-noise ratio
#
# Everything about the forward process is summarised by one curve, $\bar\alpha_t$: the kernel's signal has variance
# proportional to $\bar\alpha_t$ and its noise has variance $1-\bar\alpha_t$. Their ratio is the **signal-to-noise
# ratio**
#
# $$\mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t},$$
#
# which falls from $+\infty$ at $t = 0$ to nearly $0$ at $t = T$. It is best looked at on a log scale: the model has
# to work at every order of magnitude in between.
#
# Two common schedules:
#
# - **linear** (DDPM): $\beta_t$ linear in $t$. Then $\log\bar\alpha_t = \sum_{s \le t}\log(1-\beta_s) \approx
#   -\sum_{s \le t}\beta_s$ is roughly quadratic in $t$, so $\bar\alpha_t$ decays like a half Gaussian bell: slowly
#   at first, then fast; the last few hundred steps are spent on almost pure noise.
# - **cosine** (Nichol & Dhariwal, 2021): $\bar\alpha_t$ is chosen directly,
#   $\bar\alpha_t = f(t)/f(0)$ with $f(t) = \cos^2\!\big(\tfrac{\pi}{2}\,\tfrac{t/T + s}{1 + s}\big)$ and a small
#   offset $s = 0.008$. It destroys information more evenly over $t$ ($\log\mathrm{SNR}$ is nearly linear in $t$ in
#   the middle), which helps small images where the linear schedule wipes out the signal too early.

# %% id="schedule_plot"
schedules = {"linear": NoiseSchedule.linear(T), "cosine": NoiseSchedule.cosine(T)}
ts = torch.arange(1, T + 1)
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
for name, s in schedules.items():
    axes[0].plot(ts, s.betas[1:], label=name)
    axes[1].plot(ts, s.alpha_bars[1:], label=name)
    axes[2].plot(ts, s.snr(ts), label=name)
axes[0].set(yscale="log", title=r"$\beta_t$", xlabel="$t$")
axes[1].set(title=r"$\bar\alpha_t$", xlabel="$t$")
axes[2].set(yscale="log", title=r"$\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$", xlabel="$t$")
axes[2].axhline(1.0, color="0.5", lw=0.7, ls="--")
for ax in axes:
    ax.legend()
    ax.grid(alpha=0.3)
show(fig, OUT / "schedules.png")
for name, s in schedules.items():
    at = [T // 4, T // 2, 3 * T // 4]
    print(f"{name:6s}: alpha_bar_T = {s.alpha_bars[T]:.2e};  SNR(t) at t = {', '.join(map(str, at))}: "
          f"{', '.join(f'{v:.3g}' for v in s.snr(torch.tensor(at)).tolist())}")

# %% [markdown] id="schedule_explorer_intro"
# **Explore.** Change the number of steps $T$, the linear schedule's last variance $\beta_T$ (its first stays
# $\beta_1 = 10^{-4}$) and the cosine schedule's offset $s$. The horizontal axis is $t/T$, so that chains of different
# lengths can be compared; the dashed grey curve is DDPM's schedule ($T = 1000$, $\beta_T = 0.02$). Things to try:
# a short chain with DDPM's $\beta$ range (where does $\bar\alpha_T$ end?), and $s = 0$ (what happens to the SNR at
# the first step?). Run headless, the cell draws the default values.

# %% id="schedule_explorer"
def schedules_for(T: int, beta_end: float, s: float) -> None:
    """alpha_bar and SNR against t/T for a linear schedule (beta 1e-4 .. beta_end) and a cosine one (offset s)."""
    ddpm = NoiseSchedule.linear(1000)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for label, sched, style in [("DDPM (linear, T=1000)", ddpm, dict(color="0.5", ls="--", zorder=3)),
                                (rf"linear, $\beta_T = {beta_end:g}$", NoiseSchedule.linear(T, beta_end=beta_end),
                                 dict(color="C0")),
                                (f"cosine, s = {s:g}", NoiseSchedule.cosine(T, s=s), dict(color="C1"))]:
        steps = torch.arange(1, sched.T + 1)
        label = rf"{label}: $\bar\alpha_T$ = {sched.alpha_bars[-1]:.1e}"
        axes[0].plot(steps / sched.T, sched.alpha_bars[1:], label=label, **style)
        axes[1].plot(steps / sched.T, sched.snr(steps), **style)
    axes[0].set(xlabel="$t/T$", ylabel=r"$\bar\alpha_t$", title=rf"$\bar\alpha_t$ with $T = {T}$")
    axes[1].set(xlabel="$t/T$", ylabel="SNR", yscale="log", ylim=(1e-10, 1e6),
                title=r"$\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$")
    axes[1].axhline(1.0, color="0.5", lw=0.7, ls=":")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    show(fig, OUT / "schedule_explorer.png")


explore(schedules_for, T=(T, 10, 2000, 10), beta_end=(0.02, 0.005, 0.05, 0.001), s=(0.008, 0.0, 0.2, 0.002))

# %% [markdown] id="fourier"
# ## 5. The Fourier view: detail drowns first
#
# The discrete Fourier transform $\mathcal{F}$ is linear, so the kernel holds frequency by frequency:
#
# $$\mathcal{F}(\mathbf{x}_t) = \sqrt{\bar\alpha_t}\,\mathcal{F}(\mathbf{x}_0) + \sqrt{1-\bar\alpha_t}\,
# \mathcal{F}(\boldsymbol\epsilon).$$
#
# With the orthonormal transform, white noise stays white: $\mathbb{E}|\mathcal{F}(\boldsymbol\epsilon)_k|^2 = 1$ at
# every frequency $k$. Images are anything but white: their power $P_0(k) = \mathbb{E}|\mathcal{F}(\mathbf{x}_0)_k|^2$
# is concentrated at low frequencies (broad shapes) and falls off towards high ones (edges, strokes, fine detail).
# The cross term has mean zero, so the power of $\mathbf{x}_t$ at frequency $k$ is
# $\bar\alpha_t P_0(k) + (1-\bar\alpha_t)$ and the signal-to-noise ratio *per frequency* is
#
# $$\mathrm{SNR}_k(t) = \frac{\bar\alpha_t\,P_0(k)}{1-\bar\alpha_t} = \mathrm{SNR}(t)\,P_0(k).$$
#
# On a log scale every frequency follows the same curve $\log\mathrm{SNR}(t)$, shifted up by $\log P_0(k)$. Frequencies
# with little power cross $\mathrm{SNR}_k = 1$ first: **the forward process erases fine detail early and coarse
# content late.** Below, $k$ is the radius $\sqrt{k_x^2 + k_y^2}$ (rounded) and powers are averaged over each ring and
# over the data set (`radial_power_spectrum`).

# %% id="spectra"
k, power_x0 = radial_power_spectrum(digits)
g = torch.Generator().manual_seed(SEED)
_, power_noise = radial_power_spectrum(torch.randn(digits.shape, generator=g))
fig, ax = plt.subplots(figsize=(5, 3.4))
ax.plot(k, power_x0, "o-", label=r"digits $P_0(k)$")
ax.plot(k, power_noise, "s-", label=r"white noise $\mathcal{N}(0, I)$")
ax.set(yscale="log", xlabel="radial frequency $k$", ylabel="mean power", title="radially averaged power spectrum")
ax.legend()
ax.grid(alpha=0.3)
show(fig, OUT / "power_spectrum.png")

# %% [markdown] id="fourier_check"
# **Check.** Diffuse the digits with `q_sample` and measure the power spectrum of $\mathbf{x}_t$: it should match
# $\bar\alpha_t P_0(k) + 1 - \bar\alpha_t$ (dots: measured; lines: predicted).

# %% id="spectra_xt"
fig, ax = plt.subplots(figsize=(5, 3.4))
for i, t in enumerate([T // 20, 3 * T // 20, 3 * T // 10, 3 * T // 5]):
    ab = schedule.alpha_bars[t]
    _, measured = radial_power_spectrum(q_sample(schedule, digits, t, generator=g))
    ax.plot(k, ab * power_x0 + 1 - ab, color=f"C{i}", label=f"t={t}")
    ax.plot(k, measured, "o", color=f"C{i}", ms=4)
ax.set(yscale="log", xlabel="radial frequency $k$", ylabel="mean power", title=r"power of $x_t$")
ax.legend()
ax.grid(alpha=0.3)
show(fig, OUT / "power_spectrum_xt.png")

# %% [markdown] id="fsnr_intro"
# Now the per-frequency SNR (`frequency_snr`) along $t$: one curve per radial frequency, with the line
# $\mathrm{SNR}_k = 1$ dashed. Above the line a frequency's content is stronger than the noise at that frequency;
# below it, the noise dominates: that frequency has *drowned*. The right panel shows the same numbers the other way
# round, $\mathrm{SNR}_k(t)$ against $k$ at a few fixed $t$: at each step, the frequencies still above the line are
# what is left of the data.
#
# Read the figure before going on. Which curves cross the line first, and which last? Does every frequency cross it
# within the $T$ steps, and what would the answer depend on? Problem set 1 (part F) turns these crossings into one
# number per frequency.

# %% id="frequency_snr"
k, snr_k = frequency_snr(schedule, digits, ts)  # (T, K): row t-1 holds SNR_k(t)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
colors = plt.cm.viridis(torch.linspace(0, 1, len(k)).numpy())
for j in range(len(k)):
    axes[0].plot(ts, snr_k[:, j], color=colors[j], label=f"k={int(k[j])}")
axes[0].set(yscale="log", ylim=(1e-4, 1e6), xlabel="$t$", ylabel=r"$\mathrm{SNR}_k(t)$",
            title="per radial frequency $k$, along the chain")
axes[0].legend(fontsize=7, ncol=2)
snapshots = [T // 20, T // 10, T // 5, 3 * T // 10, 2 * T // 5, T // 2]
for i, t in enumerate(snapshots):
    axes[1].plot(k, snr_k[t - 1], "o-", ms=3, color=f"C{i}", label=f"t={t}")
axes[1].set(yscale="log", xlabel="radial frequency $k$", ylabel=r"$\mathrm{SNR}_k(t)$",
            title="at a few steps $t$, across frequencies")
axes[1].legend(fontsize=7, ncol=2)
for ax in axes:
    ax.axhline(1.0, color="0.3", lw=0.8, ls="--")
    ax.grid(alpha=0.3)
show(fig, OUT / "frequency_snr.png")

# %% [markdown] id="split_intro"
# The same statement on images. Split $\mathbf{x}_t$ into a coarse part (radial frequencies $k \le 2$) and a fine
# part (everything else). Left: one digit, with one fixed noise image for every $t$ so that only $\bar\alpha_t$
# changes from column to column (the fine part is shown with doubled contrast). Right: over all training digits, the
# cosine similarity between each part of $\mathbf{x}_t$ and the same part of $\mathbf{x}_0$, i.e. how much of the
# original coarse and fine content is still there at step $t$.

# %% id="split_frequencies"
def split_frequencies(x: torch.Tensor, k_max: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Split images (B, C, H, W) into a low-pass part (radial frequency <= k_max) and the rest."""
    H, W = x.shape[-2:]
    fy, fx = torch.fft.fftfreq(H, d=1 / H).abs(), torch.fft.fftfreq(W, d=1 / W).abs()
    keep = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt().round() <= k_max  # the rings of radial_power_spectrum
    low = torch.fft.ifft2(torch.fft.fft2(x) * keep).real
    return low, x - low


def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two image batches, over all pixels."""
    return (a * b).sum().item() / (a.norm() * b.norm()).item()


split_at = [round(f * T) for f in (0, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5)]
digit = digits[3:4]
noise = torch.randn(digit.shape, generator=torch.Generator().manual_seed(SEED))
x_split = torch.cat([q_sample(schedule, digit, t, noise=noise) for t in split_at])  # (len(split_at), 1, 8, 8)
low, high = split_frequencies(x_split)

low0, high0 = split_frequencies(digits)
g = torch.Generator().manual_seed(SEED)
sim_ts = list(range(0, T + 1, max(T // 50, 1)))
sims = [[similarity(part, part0) for part, part0 in zip(split_frequencies(q_sample(schedule, digits, t, generator=g)),
                                                        (low0, high0), strict=True)] for t in sim_ts]

fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.3, 1]})
image_table(axes[0], torch.stack([x_split, low, 2 * high]), [f"t={t}" for t in split_at],
            ["$x_t$", "coarse ($k \\leq 2$)", "fine ($k > 2$), x2"])
axes[1].plot(sim_ts, [s[0] for s in sims], label="coarse part ($k \\leq 2$)")
axes[1].plot(sim_ts, [s[1] for s in sims], label="fine part ($k > 2$)")
axes[1].set(xlabel="$t$", ylabel="similarity to $x_0$'s part", title="what is left of the data, by frequency band")
axes[1].legend()
axes[1].grid(alpha=0.3)
show(fig, OUT / "frequency_split.png")

# %% [markdown] id="posterior"
# ## 6. Going back one step: the posterior $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)$
#
# To generate we will need to go *backwards*, from $\mathbf{x}_t$ to $\mathbf{x}_{t-1}$. The true reverse step
# $q(\mathbf{x}_{t-1} \mid \mathbf{x}_t)$ depends on the whole data distribution and is intractable. But if we are
# also told which $\mathbf{x}_0$ the chain started from, it is a Gaussian we can write down. By Bayes' rule and the
# Markov property,
#
# $$q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) \propto q(\mathbf{x}_t \mid \mathbf{x}_{t-1})\,
# q(\mathbf{x}_{t-1} \mid \mathbf{x}_0).$$
#
# Both factors are Gaussian in $\mathbf{x}_{t-1}$ and isotropic, so we can work one coordinate at a time. Read as
# functions of $x_{t-1}$, both have a log that is a quadratic in $x_{t-1}$ with a negative leading coefficient (the
# first factor through its mean $\sqrt{\alpha_t}\,x_{t-1}$), and so does the log of their product. A density whose
# log is $-\tfrac{1}{2}a x^2 + b x + \text{const}$ with $a > 0$ is $\mathcal{N}(b/a,\ 1/a)$: that is what
# *completing the square* means. Hence the posterior is Gaussian,
#
# $$q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0) = \mathcal{N}\big(\mathbf{x}_{t-1};\
# \tilde{\boldsymbol\mu}_t(\mathbf{x}_t, \mathbf{x}_0),\ \tilde\beta_t\mathbf{I}\big),$$
#
# with a precision $1/\tilde\beta_t$ that is the sum of the two factors' precisions in $x_{t-1}$ (so it depends
# on neither $\mathbf{x}_t$ nor $\mathbf{x}_0$), and a mean that is linear in $\mathbf{x}_t$ and $\mathbf{x}_0$: a
# weighted average of "where $\mathbf{x}_t$ points" and "where $\mathbf{x}_0$ points". Carrying out the algebra is
# part D of problem set 1. In the package, `q_posterior` returns $\tilde{\boldsymbol\mu}_t$ and $\tilde\beta_t$;
# here we use it as a black box.
#
# Knowing $\mathbf{x}_0$ always helps: $\tilde\beta_t$ is below the forward step's $\beta_t$, but by how much
# depends on $t$. Early in the chain it helps a lot: for DDPM's schedule $\tilde\beta_t$ is only $0.45\,\beta_t$ at
# $t = 2$ and $0.85\,\beta_t$ at $t = 10$; it reaches $0.96\,\beta_t$ at $t = 50$ and stays within 1 % of $\beta_t$
# from $t \approx 170$ on (printed below the check). At $t = 1$ it is $0$, because then $\mathbf{x}_{t-1} =
# \mathbf{x}_0$ is known.
#
# **Check against simulation.** Given $\mathbf{x}_0$, the pair $(x_{t-1}, x_t)$ is jointly Gaussian, so the
# conditional mean of $x_{t-1}$ given $x_t$ is a straight line in $x_t$ and the scatter around it has constant
# variance. Simulate many pairs (`q_sample` to $t-1$, then one `q_step`), fit the line by least squares, and compare
# its slope, its intercept and the residual variance with what `q_posterior` returns:

# %% id="posterior_check"
x0_value, t = 0.8, T // 20
g = torch.Generator().manual_seed(SEED)
x0_pairs = torch.full((N_CHAINS, 1), x0_value, dtype=torch.float64)
x_prev = q_sample(schedule, x0_pairs, t - 1, generator=g)  # x_{t-1} ~ q(x_{t-1} | x0)
x_t = q_step(schedule, x_prev, t, generator=g)  # x_t ~ q(x_t | x_{t-1})
design = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
slope, intercept = torch.linalg.lstsq(design, x_prev).solution[:, 0]
residual_var = (x_prev - design @ torch.stack([slope, intercept])[:, None]).var()
slope_se = (residual_var / (N_CHAINS * x_t.var())).sqrt()  # least-squares standard errors
intercept_se = (residual_var * (1 + x_t.mean() ** 2 / x_t.var()) / N_CHAINS).sqrt()

mean_at_0, var_t = q_posterior(schedule, torch.zeros(1, 1, dtype=torch.float64), t, x0=x0_pairs[:1])  # at x_t = 0
mean_at_1, _ = q_posterior(schedule, torch.ones(1, 1, dtype=torch.float64), t, x0=x0_pairs[:1])  # at x_t = 1
print(f"slope:     fitted {slope:.4f} ± {slope_se:.4f}   q_posterior {(mean_at_1 - mean_at_0).item():.4f}")
print(f"intercept: fitted {intercept:.4f} ± {intercept_se:.4f}   q_posterior {mean_at_0.item():.4f}")
print(f"variance:  fitted {residual_var:.3e}   q_posterior beta_tilde_t = {var_t.item():.3e}   (beta_t = "
      f"{schedule.betas[t]:.3e})")
ratio = schedule.posterior_variances[1:] / schedule.betas[1:]  # beta_tilde_t / beta_t for t = 1..T
shown = [u for u in (1, 2, 3, 5, 10, 20, 50, 100, 170, T) if u <= T]
print("beta_tilde_t / beta_t:", ", ".join(f"{ratio[u - 1]:.3f} at t = {u}" for u in shown))

# %% [markdown] id="prior"
# ## 7. How close does $q(\mathbf{x}_T)$ get to $\mathcal{N}(\mathbf{0}, \mathbf{I})$? The prior term $L_T$
#
# Generation will start from $\mathbf{x}_T \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$, while the forward process
# actually ends at $q(\mathbf{x}_T \mid \mathbf{x}_0) = \mathcal{N}(\sqrt{\bar\alpha_T}\,\mathbf{x}_0,
# (1-\bar\alpha_T)\mathbf{I})$. The mismatch is one term of the variational bound of lesson 2,
#
# $$L_T = D_\mathrm{KL}\big(q(\mathbf{x}_T \mid \mathbf{x}_0)\,\|\,\mathcal{N}(\mathbf{0}, \mathbf{I})\big).$$
#
# Both distributions are Gaussian, so $L_T$ has a closed form: part E of problem set 1 derives the KL divergence of
# two Gaussians and applies it here; in this lesson the package's `prior_bpd` computes it. What matters now is its
# size. $q(\mathbf{x}_T \mid \mathbf{x}_0)$ differs from $\mathcal{N}(\mathbf{0}, \mathbf{I})$ in two ways: its
# mean is off by $\sqrt{\bar\alpha_T}\,\mathbf{x}_0$, and its variance falls short of 1 by $\bar\alpha_T$. A KL
# divergence is zero, and minimal, where the two distributions agree, so it grows quadratically in small deviations:
# the mean's offset (squared: $\bar\alpha_T\|\mathbf{x}_0\|^2$) counts at first order in $\bar\alpha_T$, the
# variance's deficit (squared: $\bar\alpha_T^2$ per coordinate) only at second order. To first order
#
# $$L_T \approx \frac{\bar\alpha_T}{2}\,\|\mathbf{x}_0\|^2 \quad (\bar\alpha_T \to 0).$$
#
# It has no learnable parameters: the schedule alone decides it, and a good schedule makes it negligible. We report it
# in **bits per dimension** (divide by $\ln 2$ and by the number of pixels), the unit likelihoods of images are quoted
# in. Below, `prior_bpd` from the package (averaged over the training digits) beside the approximation
# $\bar\alpha_T\|\mathbf{x}_0\|^2/2$ in the same units, for both schedules and for fewer steps when $\beta_t$ keeps
# DDPM's range $10^{-4} \dots 0.02$. The approximation is the first term of an expansion in small $\bar\alpha_T$,
# so it should agree while $\bar\alpha_T$ is tiny and fail when it is not.
#
# The package computes in float64, and so should you: in float32, $1-\bar\alpha_T$ rounds to exactly $1$ once
# $\bar\alpha_T < 2^{-25} \approx 3\cdot 10^{-8}$ (half the spacing of float32 numbers just below 1). The variance's
# deficit is then lost, and a closed form of $L_T$ evaluated in float32 drops its contribution or, depending on how
# the formula is written, gets it wrong by more than its own size: $L_T$ can even come out negative, which no KL
# divergence can be. The cosine schedule's $\bar\alpha_T \approx 2.4\cdot 10^{-9}$ is below the threshold. The
# last lines of the cell show the rounding.

# %% id="prior_term"
for name, s in [*schedules.items(), *[(f"linear T={n}", NoiseSchedule.linear(n)) for n in (50, 100, 200, 500)]]:
    ab = s.alpha_bars[s.T]
    leading = ab * digits.double().pow(2).mean() / (2 * math.log(2))  # alpha_bar_T ||x0||^2 / 2, per pixel, in bits
    print(f"{name:15s} alpha_bar_T = {ab:.2e}   L_T = {prior_bpd(s, digits).mean():.3e} bits/dim"
          f"   (alpha_bar_T ||x0||^2 / 2: {leading:.3e})")
for value in (2.9e-8, 3.1e-8, schedules["cosine"].alpha_bars[T].item()):
    print(f"float32: 1 - {value:.2e} = {(1 - torch.tensor(value, dtype=torch.float32)).item():.10f}")

# %% [markdown] id="summary"
# ## Summary
#
# - The forward process is a fixed Markov chain of small Gaussian steps
#   $\mathbf{x}_t = \sqrt{1-\beta_t}\,\mathbf{x}_{t-1} + \sqrt{\beta_t}\,\boldsymbol\epsilon$.
# - Because independent Gaussians add, any step can be sampled in one go:
#   $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$.
# - The marginal $q(\mathbf{x}_t)$ is the shrunk data distribution blurred by a Gaussian; it ends at
#   $\mathcal{N}(\mathbf{0}, \mathbf{I})$ when $\bar\alpha_T \approx 0$, and $L_T$ measures how well that holds.
# - $\bar\alpha_t$ (equivalently $\mathrm{SNR}(t)$) is the whole schedule; linear and cosine schedules spend the
#   steps differently.
# - Per frequency the SNR is $\mathrm{SNR}(t)\,P_0(k)$: fine detail is gone early, coarse content survives longest.
# - Conditioned on $\mathbf{x}_0$, the reverse step is a known Gaussian $\mathcal{N}(\tilde{\boldsymbol\mu}_t,
#   \tilde\beta_t\mathbf{I})$. Lesson 2 trains a network to imitate it without knowing $\mathbf{x}_0$.
#
# ## Questions to think about (not graded)
#
# 1. Set `T = 100` in the parameters cell but keep the linear schedule's $\beta$ range (or try it first with the
#    schedule explorer of section 4). What happens to $\bar\alpha_T$, to the last column of the digits picture and
#    to $L_T$? How would you rescale $\beta_1$ and $\beta_T$ so that 100 steps end at noise again?
# 2. Suppose the data are Gaussian, $q(\mathbf{x}_0) = \mathcal{N}(\boldsymbol\mu, s^2\mathbf{I})$. Write down
#    $q(\mathbf{x}_t)$. For which $s$ does the forward process leave the *variance* unchanged at every step, and what
#    happens to the mean?
# 3. For the cosine schedule write $\theta_t = \tfrac{\pi}{2}\tfrac{t/T+s}{1+s}$. Show that (before the clipping of
#    $\beta_t$) $\mathrm{SNR}(t) = \cos^2\theta_t / (\cos^2\theta_0 - \cos^2\theta_t)$, which simplifies to
#    $\cot^2\theta_t$ only for $s = 0$. With $s = 0.008$, how far is $\cot^2\theta_t$ from the true SNR at $t = 1$
#    and at $t = T/2$ (compare with `NoiseSchedule.cosine(T).snr`)? Explain why $\log \mathrm{SNR}$ is nearly linear
#    in $t$ in the middle.
# 4. Replace the digits in section 5 by white-noise images. What do the curves of $\mathrm{SNR}_k(t)$ look like, and
#    in which order do the frequencies cross $\mathrm{SNR}_k = 1$? Why? What would change for images made only of
#    sharp edges?
# 5. Why is $\tilde\beta_1 = 0$? What does the posterior mean reduce to at $t = 1$?
# 6. How do the slope and the intercept of the fitted line in section 6 change between $t = 2$ and $t = T$? Predict
#    them from your formula for $\tilde{\boldsymbol\mu}_t$ (problem set 1, part D) first, then change `t` and check.
# 7. $L_T$ grows like $\bar\alpha_T\|\mathbf{x}_0\|^2/2$. Which digits have the largest $L_T$, and why does the
#    background colour of the images matter?
