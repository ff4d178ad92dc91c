# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 3 — scores, Langevin dynamics, and diffusion in continuous time
#
# Lessons 1 and 2 worked with $T$ discrete steps. Here the steps shrink to zero: the forward chain becomes a
# stochastic differential equation (SDE) on a continuous time $t \in [0, 1]$, and running it backwards needs one
# unknown function, the **score** $\nabla_{\mathbf{x}} \log q_t(\mathbf{x})$ of the noisy data at time $t$. The
# same score gives a second, deterministic way to generate (an ordinary differential equation with the same
# marginals) and an exact likelihood.
#
# To be able to *check* every statement, the data are a two-dimensional Gaussian mixture. Its density, its score, and
# the density and score of every noisy version of it have closed forms (`ddpm_scratch.score.GaussianMixture`), so
# each sampler and each likelihood below is compared with the exact answer rather than with another approximation.
#
# 1. score functions, drawn as vector fields over the density, at several noise levels;
# 2. Langevin dynamics: sampling with the score alone, and why it needs noise levels;
# 3. the forward SDE (VP and VE), its marginals, and DDPM as its discretisation;
# 4. denoising score matching: why regressing the noise gives the score; a small network trained on it;
# 5. the reverse SDE and the probability-flow ODE, side by side;
# 6. how many steps: solvers against the number of score evaluations;
# 7. the likelihood through the ODE;
# 8. which weight to train with: sample quality against likelihood, measured on two trained models.
#
# Package modules used: `ddpm_scratch.score`, `ddpm_scratch.sde`, `ddpm_scratch.score_solvers`,
# `ddpm_scratch.likelihood` and `ddpm_scratch.sampling`. The drifts and the solver steps are the package's here, for
# the VP and VE SDEs; problem set 3 has you write the variants the package leaves out (the sub-VP SDE with a
# polynomial $\beta(t)$, a family of reverse-time SDEs, the flow driven by a denoiser, the likelihood-weighted loss
# of a noise predictor). With `DDPM_SCRATCH_FAST=1` every cell is shrunk (fewer chains, steps and
# points). Measured on two CPU cores with nothing else running (load average about 1): 19-21 s in fast mode and
# about 1.5 minutes in full mode. Other programs on the same cores stretch it, by how much depends on them: at a
# load average of 4-5 fast mode took 22 s in one measurement (two busy loops) and 53-73 s in another, and at 9-15
# it took 80-130 s (fast) and 7-10 minutes (full). Most of a full run goes
# to the solver comparisons of section 6 and to the two trainings of sections 4 and 8. Every cell that takes more
# than a few seconds shows a progress bar.

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
THREADS = 1  # torch threads: every tensor here is a cloud of 2-D points (see the setup cell)
LIM = 4.5  # the pictures show the square [-LIM, LIM]^2
T_MIN = 1e-3  # where sampling stops (and training starts): std(T_MIN) = 0.01 for the VP SDE

# 2. Langevin dynamics
N_CHAINS = 2000 if FAST else 4000  # Langevin chains, started uniformly in the square
LANGEVIN_STEPS = 600 if FAST else 2000  # steps of plain Langevin on the data's score
LANGEVIN_STEP = 0.005  # its step size delta (the smallest component variance is 0.04)
ANNEAL_LEVELS = 15  # noise levels of annealed Langevin, geometric from ANNEAL_SIGMAS[0] down to ANNEAL_SIGMAS[1]
ANNEAL_SIGMAS = (4.0, 0.05)
ANNEAL_STEPS = 20 if FAST else 60  # Langevin steps per level

# 4. denoising score matching: an MLP trained by a hand-written loop
DSM_STEPS = 300 if FAST else 3000  # training iterations
DSM_BATCH = 256
DSM_WEIGHTING = "sigma2"  # or "likelihood" (lambda(t) = g(t)^2 with uniform t); section 8 compares the weights
COMPARE_TIMES = (0.05, 0.3)  # where the learned score is compared with the exact one
N_EVAL = 20_000 if FAST else 100_000  # points for the errors and the loss table

# 5.-6. sampling with the exact score
N_PATHS, N_PLANE_PATHS = 20, 8  # trajectories drawn against t, and in the plane
PATH_STEPS = 200 if FAST else 500  # steps of the solvers that draw them
STEP_COUNTS = (5, 10, 20, 50) if FAST else (5, 10, 20, 50, 100, 500)
# sliced W2 (sections 1, 2, 5, 6): the mean over SW_SETS sets of SW_N points, each against its own set of SW_N fresh
# true samples, with SW_PROJECTIONS random directions (plenty in 2-D). One set alone is too noisy (see section 1).
SW_N, SW_SETS, SW_PROJECTIONS = 2000, (2 if FAST else 8), 64
FLOOR_SETS = 8  # pairs of true sets that measure the floor
DISCRETE_STEPS = (50,) if FAST else (50, 1000)  # num_steps of the samplers on DDPM's schedule (end of section 6)

# 7. likelihood
N_LIKELIHOOD = 32 if FAST else 256  # data points
TOLERANCES = (1e-2, 1e-3, 1e-5) if FAST else (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)  # RK45's rtol = atol

# 8. weighting: lambda = s^2 against lambda = beta (models trained for DSM_STEPS steps, as in section 4)
N_CHECK_BATCHES = 20 if FAST else 100  # batches on which the two estimators of one objective are compared
N_WEIGHT_LIKELIHOOD = 64 if FAST else 512  # points whose ODE likelihood each model computes
WEIGHT_TOLERANCE = 1e-3 if FAST else 1e-4  # RK45's rtol = atol for those (section 7 shows the error at each tolerance)
WEIGHT_STEPS = 40 if FAST else 100  # Euler-Maruyama steps for each model's samples (Heun: half as many, same NFE)
WEIGHT_SETS = 2 if FAST else 4  # sets of SW_N samples per model and sampler

# Figures go to outputs/ of the course folder (the one holding lessons/), wherever the notebook was started from;
# outside a course folder, to outputs/ of the working directory.
OUT = lesson_output_dir("03_score_sde")

# %% id="setup"
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ddpm_scratch.likelihood import ode_likelihood
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.machinery.notebook import explore, show
from ddpm_scratch.nets import MLPEps, count_parameters
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule, per_example
from ddpm_scratch.score import GaussianMixture, dsm_loss, mixture_eps_model, mixture_score_fn
from ddpm_scratch.score_solvers import (
    CountedScore,
    euler_maruyama,
    ode_euler,
    ode_heun,
    predictor_corrector,
    time_grid,
)
from ddpm_scratch.sde import VESDE, VPSDE, time_from_step

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # arithmetic on subnormal floats is very slow on CPUs; round them to 0
# Every tensor in this lesson is a cloud of 2-D points, too small for a second thread to pay off: lesson 2 measured
# its toy MLP as fast on one thread as on two on an idle machine and 3-5x faster when another program keeps a core
# busy. Set THREADS = None to keep torch's default (one thread per core).
if THREADS is not None:
    torch.set_num_threads(THREADS)
F64 = torch.float64
# show(fig, path) saves a figure and displays it, explore(plot, **controls) adds sliders in a live notebook frontend:
# the lessons' shared helpers, in ddpm_scratch/machinery/notebook.py.

# %% [markdown] id="score_intro"
# ## 1. Score functions
#
# The **score** of a density $p$ is the gradient of its logarithm, $\mathbf{s}(\mathbf{x}) = \nabla_{\mathbf{x}}
# \log p(\mathbf{x})$: a vector field that points towards higher density, long where the density changes fast (in
# relative terms), short near a mode. Two properties make it the natural object for generative modelling:
#
# - it ignores normalisation: if $p = \tilde p / Z$, then $\nabla \log p = \nabla \log \tilde p$, so a model of the
#   score never has to compute the (intractable) $Z$;
# - it is all a sampler needs (section 2): following the score uphill with the right amount of noise draws from $p$.
#
# For one Gaussian $\mathcal{N}(\boldsymbol\mu, \boldsymbol\Sigma)$ the score is linear,
# $-\boldsymbol\Sigma^{-1}(\mathbf{x} - \boldsymbol\mu)$. For a mixture $p = \sum_k \pi_k \mathcal{N}_k$ it is the
# average of the components' scores weighted by the **responsibilities** $r_k(\mathbf{x}) = \pi_k
# \mathcal{N}_k(\mathbf{x}) / p(\mathbf{x})$, the probability that $\mathbf{x}$ came from component $k$:
#
# $$\nabla \log p(\mathbf{x}) = \sum_k r_k(\mathbf{x})\,\big(-\boldsymbol\Sigma_k^{-1}(\mathbf{x} -
# \boldsymbol\mu_k)\big).$$
#
# Adding Gaussian noise keeps a mixture a mixture: if $\mathbf{x}_t = m\,\mathbf{x}_0 + s\,\boldsymbol\epsilon$, each
# component becomes $\mathcal{N}(m\boldsymbol\mu_k,\ m^2\boldsymbol\Sigma_k + s^2\mathbf{I})$ with the same weight.
# So the density $q_t$ of the noisy data and its score are exact at every noise level: `mixture.log_prob(x,
# mean_coef=m, std=s)` and `mixture.score(x, mean_coef=m, std=s)`.
#
# Our data: four anisotropic components with unequal weights, well apart. The cell checks the closed-form score
# against automatic differentiation of the log-density, and sets up two yardsticks for the samplers of this lesson:
#
# - the **sliced Wasserstein distance** (lesson 2) to fresh true samples, beside its floor, the same distance between
#   two sets of true samples. With modes this far apart it is dominated by how many points land in each mode, which
#   fluctuates from one set of points to the next, so one set gives a noisy number; we average over `SW_SETS` sets
#   of `SW_N` points (the cell prints how much one set varies);
# - the **log-density gap**: the average of the exact $\log p$ over the samples minus its average over true samples
#   (the negative entropy of $p$, estimated once from 200,000 points). A perfect sampler scores 0 up to noise;
#   samples squeezed towards the modes score above 0, samples smeared out below. It is blind to some errors (a
#   sampler that put every point at a mode would score high), but it is precise and sensitive to the shape of
#   each component, where the sliced distance is not. Only an exact density makes it possible.

# %% id="mixture"
mixture = GaussianMixture(
    weights=[0.5, 0.25, 0.15, 0.1],
    means=[[-2.3, -1.3], [2.3, -1.5], [-0.6, 2.1], [2.4, 2.1]],
    covs=[[[0.14, 0.09], [0.09, 0.11]],   # tilted
          [[0.04, 0.0], [0.0, 0.22]],     # tall and thin
          [[0.28, -0.06], [-0.06, 0.05]],  # wide and flat
          [[0.04, 0.0], [0.0, 0.04]]])    # small and round
print(mixture, "| weights", mixture.weights.tolist())
print("mean", mixture.mean().tolist(), "| covariance", mixture.covariance().tolist())

g = torch.Generator().manual_seed(SEED)
x = (8 * torch.rand(1000, 2, generator=g, dtype=F64) - 4).requires_grad_(True)
(autograd_score,) = torch.autograd.grad(mixture.log_prob(x).sum(), x)
print(f"closed-form score vs autograd of log p at 1000 points: largest difference "
      f"{(mixture.score(x.detach()) - autograd_score).abs().max():.1e}")

COMPONENTS = [GaussianMixture([1.0], mixture.means[k:k + 1], mixture.covs[k:k + 1]) for k in range(mixture.K)]


def component_of(x: torch.Tensor) -> torch.Tensor:
    """The most probable component of each point (the largest responsibility), a (N,) LongTensor."""
    log_joint = torch.stack([c.log_prob(x.to(F64)) for c in COMPONENTS], dim=1) + mixture.weights.log()
    return log_joint.argmax(dim=1)


true_sets = mixture.sample(SW_N * SW_SETS, torch.Generator().manual_seed(SEED + 1)).split(SW_N)


def sw_to_truth(x: torch.Tensor) -> float:
    """Sliced W2 between x and fresh true samples: the mean over the first len(x) // SW_N sets of SW_N points of x,
    each against its own true set (at most SW_SETS sets)."""
    sets = x[: len(x) // SW_N * SW_N].split(SW_N)
    return float(np.mean([sliced_wasserstein(a, b, num_projections=SW_PROJECTIONS)
                          for a, b in zip(sets, true_sets, strict=False)]))


g = torch.Generator().manual_seed(SEED + 2)
one_set = [sliced_wasserstein(*mixture.sample(2 * SW_N, g).split(SW_N), num_projections=SW_PROJECTIONS)
           for _ in range(FLOOR_SETS)]
# fresh true samples, measured exactly as a sampler will be: one value per true set, and their mean
floor_sets = [sliced_wasserstein(a, b, num_projections=SW_PROJECTIONS)
              for a, b in zip(mixture.sample(SW_N * SW_SETS, g).split(SW_N), true_sets, strict=True)]
floor = float(np.mean(floor_sets))
floor_noise = np.std(one_set) / math.sqrt(SW_SETS)  # how much a mean over SW_SETS sets varies
print(f"the floor a perfect sampler reaches: {floor:.3f}, fresh true samples against the same true sets as every "
      f"sampler below; {FLOOR_SETS} independent pairs of true sets of {SW_N} points average {np.mean(one_set):.3f}, "
      f"one pair alone ranges over {min(one_set):.3f}..{max(one_set):.3f}, so a mean over {SW_SETS} sets varies by "
      f"about ±{floor_noise:.3f}")

true_mean_log_prob = mixture.log_prob(mixture.sample(200_000, g)).mean().item()  # E_p log p = -entropy of p


def log_prob_gap(x: torch.Tensor) -> float:
    """Mean exact log p over the points x minus its mean over true samples: 0 for a perfect sampler (up to noise)."""
    return mixture.log_prob(x.to(F64)).mean().item() - true_mean_log_prob


gap_noise = mixture.log_prob(true_sets[0]).std().item() / math.sqrt(SW_N * SW_SETS)
print(f"log-density gap of {SW_N * SW_SETS} fresh true samples: {log_prob_gap(torch.cat(true_sets)):+.3f} "
      f"(noise about ±{gap_noise:.3f}); E_p log p = {true_mean_log_prob:.3f} nats")

# %% [markdown] id="field_intro"
# **The score at several noise levels.** Below, the density $q_t$ (shading) and its score (arrows) for the
# variance-preserving SDE of section 3, at a few times $t$; all you need to know now is that $t = 0$ is the data and
# $t = 1$ is (almost) $\mathcal{N}(\mathbf{0}, \mathbf{I})$. The arrow lengths grow like the square root of the score's
# norm (scaled per panel), otherwise the arrows far from the data would hide everything else. At $t = 0$ the field
# has a sharp watershed between modes: a point just left of it is pulled firmly to one component, a point just right
# of it to another. As $t$ grows the components widen and merge, the watershed disappears, and the field becomes the
# smooth linear pull $-\mathbf{x}$ of a standard Gaussian.

# %% id="score_fields"
sde = VPSDE()  # beta_min = 0.1, beta_max = 20 (section 3)
axis = torch.linspace(-LIM, LIM, 160, dtype=F64)
grid = torch.cartesian_prod(axis, axis).flip(1)  # rows: (x, y) with y slowest, as imshow wants
arrow_axis = torch.linspace(-LIM + 0.25, LIM - 0.25, 19, dtype=F64)
arrows = torch.cartesian_prod(arrow_axis, arrow_axis)


def draw_density(ax, t: float, sde_=sde) -> None:
    """The density q_t of the diffused mixture as shading on ax."""
    mean_coef, std = sde_.marginal(t)
    density = mixture.log_prob(grid, mean_coef=mean_coef, std=std).exp().reshape(len(axis), len(axis))
    ax.imshow(density, origin="lower", extent=(-LIM, LIM, -LIM, LIM), cmap="Greys", interpolation="bilinear")
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", xticks=[], yticks=[])


def draw_score(ax, score: torch.Tensor, color: str = "C0") -> None:
    """Arrows of a score field given at the points `arrows`; length ~ sqrt(norm), scaled to the panel."""
    norm = score.norm(dim=1, keepdim=True)
    length = (norm / norm.max()).sqrt() * 0.45  # the longest arrow: 0.45 units
    direction = score / norm.clamp(min=1e-12) * length
    ax.quiver(arrows[:, 0], arrows[:, 1], direction[:, 0], direction[:, 1], color=color, angles="xy",
              scale_units="xy", scale=1, width=0.004)


field_times = (0.0, 0.05, 0.15, 0.3, 0.6)
fig, axes = plt.subplots(1, len(field_times), figsize=(3.1 * len(field_times), 3.3))
for ax, t in zip(axes, field_times, strict=True):
    mean_coef, std = sde.marginal(t)
    draw_density(ax, t)
    draw_score(ax, mixture.score(arrows, mean_coef=mean_coef, std=std))
    ax.set_title(f"$t = {t}$: $m = {mean_coef:.2f}$, $s = {std:.2f}$", fontsize=10)
fig.suptitle(r"density $q_t$ and score $\nabla \log q_t$ of the diffused mixture (VP SDE)", y=1.0)
show(fig, OUT / "score_fields.png")

# %% [markdown] id="field_explore_intro"
# **Explore.** In a notebook frontend the slider moves $t$; run headless, the cell draws $t = 0.1$. Watch where the
# field first stops pointing to the nearest component and starts pointing to the mass as a whole.

# %% id="field_explore"
def score_field_at(t: float) -> None:
    """The density q_t and its score field at time t, one larger panel."""
    mean_coef, std = sde.marginal(float(t))
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    draw_density(ax, float(t))
    draw_score(ax, mixture.score(arrows, mean_coef=mean_coef, std=std))
    ax.set_title(f"$t = {t:.2f}$: mean coefficient {mean_coef:.3f}, noise std {std:.3f}", fontsize=10)
    show(fig, OUT / "score_field_explorer.png")


explore(score_field_at, t=(0.1, 0.0, 1.0, 0.01))

# %% [markdown] id="langevin_intro"
# ## 2. Langevin dynamics: sampling with the score alone
#
# Start anywhere and repeat, with a small step size $\delta$ and fresh noise $\mathbf{z}_k \sim
# \mathcal{N}(\mathbf{0}, \mathbf{I})$ at every step,
#
# $$\mathbf{x}_{k+1} = \mathbf{x}_k + \delta\,\nabla \log p(\mathbf{x}_k) + \sqrt{2\delta}\,\mathbf{z}_k .$$
#
# The score term climbs towards high density, the noise term keeps the chain from collapsing onto a mode, and their
# balance (the factor 2 under the root) makes $p$ the stationary distribution: as $\delta \to 0$ and the number of
# steps grows, $\mathbf{x}_k$ is distributed as $p$. Nothing but the score enters, so a learned score would do.
# (Papers often call this step size $\epsilon$; here $\boldsymbol\epsilon$ is always the Gaussian noise of the
# forward process.)
#
# Below, chains start uniformly in the square and follow the exact score of the data ($t = 0$), hand-written in
# three lines. The cell prints the share of chains inside the 99% ellipse of some component at each snapshot,
# beside that of true samples: within a few dozen steps most chains sit in a component, a few hundred steps bring
# the share close to that of true samples, and the clouds take the components' shapes.

# %% id="langevin"
def langevin(x: torch.Tensor, score_fn, delta: float, steps: int, generator: torch.Generator, keep=(),
             desc: str | None = None) -> tuple:
    """`steps` Langevin steps x <- x + delta score(x) + sqrt(2 delta) z; returns x and {step: x} for the steps in
    keep.

    desc: the label of a progress bar (None: no bar)."""
    kept = {0: x} if 0 in keep else {}
    for k in tqdm(range(1, steps + 1), desc=desc, disable=desc is None, leave=False):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + delta * score_fn(x) + math.sqrt(2 * delta) * z
        if k in keep:
            kept[k] = x
    return x, kept


g = torch.Generator().manual_seed(SEED)
start = (2 * torch.rand(N_CHAINS, 2, generator=g, dtype=F64) - 1) * LIM  # uniform in the square
snapshots = (0, 10, 50, 200, LANGEVIN_STEPS // 2, LANGEVIN_STEPS)
t0 = time.perf_counter()
plain, kept = langevin(start, mixture.score, LANGEVIN_STEP, LANGEVIN_STEPS, g, keep=snapshots, desc="Langevin")
print(f"{N_CHAINS} chains, {LANGEVIN_STEPS} steps of size {LANGEVIN_STEP} in {time.perf_counter() - t0:.1f} s")


def inside_an_ellipse(x: torch.Tensor) -> float:
    """The fraction of points inside the 99% ellipse of some component: squared Mahalanobis distance below 9.21,
    the 99% quantile of the chi-square law with 2 degrees of freedom (-2 log 0.01)."""
    diff = x.to(F64)[:, None, :] - mixture.means  # (N, K, 2)
    distance2 = torch.einsum("nki,kij,nkj->nk", diff, torch.linalg.inv(mixture.covs), diff)
    return (distance2.min(dim=1).values <= -2 * math.log(0.01)).float().mean().item()


print(f"inside some component's 99% ellipse: true samples {100 * inside_an_ellipse(true_sets[0]):.1f}%; chains at "
      + ", ".join(f"step {k} {100 * inside_an_ellipse(kept[k]):.1f}%" for k in snapshots))

fig, axes = plt.subplots(1, len(snapshots), figsize=(2.8 * len(snapshots), 3.0), sharex=True, sharey=True)
for ax, k in zip(axes, snapshots, strict=True):
    ax.scatter(kept[k][:, 0], kept[k][:, 1], s=1, alpha=0.4, c=component_of(plain), cmap="tab10", vmin=0, vmax=9)
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", title=f"step {k}")
fig.suptitle("Langevin chains on the data's score (colour: the component each chain ends in)", y=1.02)
show(fig, OUT / "langevin.png")

# %% [markdown] id="langevin_failure"
# **Where it fails.** The colours above already show the problem: each chain ends in the component whose basin it
# started in, and stays there. Count the chains per component and compare with the weights $\pi_k$ (cell below):
# the counts follow the areas of the basins in the starting square, not the weights. Two reasons, one local and one
# global:
#
# - **The weights are invisible locally.** Near component $k$ its responsibility is almost 1, and the score is
#   almost exactly that component's own score $-\boldsymbol\Sigma_k^{-1}(\mathbf{x} - \boldsymbol\mu_k)$, whatever
#   $\pi_k$ is. The weights only enter where components overlap, and here they barely do.
# - **Crossing between modes takes forever.** To move its mass to the right proportions, a chain would have to walk
#   through the empty region between components, against the score, on the strength of the noise alone; the
#   probability of such a walk is exponentially small in the height of the barrier. The cell counts the chains that
#   changed component over the second half of the run.
#
# (With a learned score there is a third problem: between the modes there are no data, so the learned score is
# poor exactly where the chains have to travel.)
#
# **The fix is noise.** Perturb the data with Gaussian noise of a large standard deviation $\sigma$: the components
# merge, the score of the noisy density sees all of them at once (so it carries their weights), and chains move
# freely. Then lower $\sigma$ step by step, running a few Langevin steps at each level with a step size proportional
# to $\sigma^2$, each level starting from where the previous one ended. This is *annealed Langevin dynamics* (Song &
# Ermon, 2019), here with the exact score of the data plus noise of std $\sigma$, `mixture.score(x, std=sigma)`.

# %% id="annealed"
sigmas = torch.logspace(math.log10(ANNEAL_SIGMAS[0]), math.log10(ANNEAL_SIGMAS[1]), ANNEAL_LEVELS).tolist()
g = torch.Generator().manual_seed(SEED)
annealed = start
for sigma in tqdm(sigmas, desc="annealed Langevin", leave=False):
    annealed, _ = langevin(annealed, lambda x, sigma=sigma: mixture.score(x, std=sigma), 0.1 * sigma**2,
                           ANNEAL_STEPS, g)

half = kept[LANGEVIN_STEPS // 2]
print(f"plain Langevin: {(component_of(half) != component_of(plain)).sum().item()} of {N_CHAINS} chains changed "
      f"component between step {LANGEVIN_STEPS // 2} and step {LANGEVIN_STEPS}")
counts = {name: torch.bincount(component_of(x), minlength=mixture.K) / len(x)
          for name, x in [("plain Langevin", plain), ("annealed Langevin", annealed)]}
print("component              " + "".join(f"{k:>8d}" for k in range(mixture.K)))
print("weight pi_k            " + "".join(f"{w:8.3f}" for w in mixture.weights.tolist()))
for name, fraction in counts.items():
    print(f"{name:22s} " + "".join(f"{f:8.3f}" for f in fraction.tolist()))
print(f"sliced W2 to true samples: plain {sw_to_truth(plain):.3f}, annealed {sw_to_truth(annealed):.3f}, "
      f"floor {floor:.3f}; log-density gap: plain {log_prob_gap(plain):+.3f}, annealed {log_prob_gap(annealed):+.3f}")

fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1, 1.3]})
for ax, x_, title in [(axes[0], plain, "plain Langevin"), (axes[1], annealed, "annealed Langevin")]:
    ax.scatter(x_[:, 0], x_[:, 1], s=1, alpha=0.4, c=component_of(x_), cmap="tab10", vmin=0, vmax=9)
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal", title=title)
# the bars are grey (the colours C0-C3 belong to the components, as in the scatter plots); the tick labels carry them
width = 0.27
bar_styles = [dict(color="0.2"), dict(color="white", edgecolor="0.2", hatch="///"), dict(color="0.65")]
for i, (name, fraction) in enumerate([("weights $\\pi_k$", mixture.weights), *counts.items()]):
    axes[2].bar(np.arange(mixture.K) + (i - 1) * width, fraction, width, label=name, **bar_styles[i])
axes[2].set(xticks=range(mixture.K), xlabel="component $k$", ylabel="fraction of chains",
            title="where the chains end up")
for k, label in enumerate(axes[2].get_xticklabels()):
    label.set(color=plt.get_cmap("tab10")(k), fontweight="bold")
axes[2].legend(fontsize=8)
fig.tight_layout()
show(fig, OUT / "langevin_weights.png")

# %% [markdown] id="sde_intro"
# Annealed Langevin uses a ladder of noise levels. Diffusion models make the ladder continuous: a whole family of
# noisy densities $q_t$, $t \in [0, 1]$, produced by one process.
#
# ## 3. The forward SDE
#
# Take DDPM's chain $\mathbf{x}_i = \sqrt{1-\beta_i}\,\mathbf{x}_{i-1} + \sqrt{\beta_i}\,\mathbf{z}_i$ with many
# steps, $\beta_i = \beta(t)/T$ at time $t = i/T$. Then $\sqrt{1-\beta_i} \approx 1 - \tfrac12\beta(t)\,\Delta t$
# with $\Delta t = 1/T$, and the noise $\sqrt{\beta(t)\Delta t}\,\mathbf{z}_i$ is an increment of Brownian motion. As
# $T \to \infty$ the chain becomes the stochastic differential equation
#
# $$d\mathbf{x}_t = f(t)\,\mathbf{x}_t\,dt + g(t)\,d\boldsymbol\omega_t ,$$
#
# a deterministic drift $f(t)\mathbf{x}_t\,dt$ plus a Gaussian kick of variance $g(t)^2\,dt$ per unit of time. Two
# choices are standard (Song et al., 2021):
#
# - **VP** (variance preserving, DDPM's limit): $f(t) = -\tfrac12\beta(t)$, $g(t) = \sqrt{\beta(t)}$ with
#   $\beta(t) = \beta_\text{min} + t(\beta_\text{max} - \beta_\text{min})$, $\beta_\text{min} = 0.1$,
#   $\beta_\text{max} = 20$. The drift shrinks the data while the noise refills the variance; data with unit
#   variance keep it.
# - **VE** (variance exploding, the limit of annealed Langevin's noise ladder): $f = 0$, $g(t) = \sigma(t)\sqrt{2
#   \log(\sigma_\text{max}/\sigma_\text{min})}$ with $\sigma(t) = \sigma_\text{min}(\sigma_\text{max} /
#   \sigma_\text{min})^t$. No shrinking; the noise grows until it swamps the data ($\sigma_\text{max}$ is chosen
#   about as large as the largest distance between data points).
#
# Because the drift is linear, $\mathbf{x}_t$ given $\mathbf{x}_0$ stays Gaussian, $\mathbf{x}_t = m(t)\,\mathbf{x}_0
# + s(t)\,\boldsymbol\epsilon$: the mean obeys $\dot m = f m$, so $m(t) = \exp\int_0^t f$, and the variance obeys
# $\frac{d}{dt}s^2 = 2 f s^2 + g^2$ with $s(0) = 0$. For VP this gives $m(t) = \exp(-\tfrac12\int_0^t \beta(u)\,du)$
# and $s^2 = 1 - m^2$ (problem set 3 works out the integral). For VE, $m = 1$ and $s^2 = \int_0^t g^2$; the VE
# bullet's $g$ is the one with $\frac{d}{dt}\sigma^2 = g^2$, so
#
# $$s(t) = \sqrt{\sigma(t)^2 - \sigma_\text{min}^2}\qquad\text{(VE, started from the data)}.$$
#
# Song et al.'s code (score_sde) and this package's `VESDE` use $s(t) = \sigma(t)$ instead: they count the data at
# $t = 0$ as already noised by $\mathcal{N}(\mathbf{0}, \sigma_\text{min}^2\mathbf{I})$, so that $s(0) =
# \sigma_\text{min}$ and the samplers return data blurred by $\sigma_\text{min}$ (see `VESDE`'s docstring). The two
# differ only while $\sigma(t)$ is within a few $\sigma_\text{min}$ of $\sigma_\text{min}$; the cell below prints
# both. `sde.marginal(t)` returns $(m, s)$. The marginal $q_t$ is the data law shrunk by $m$ and blurred by $s$,
# which for our mixture is again a mixture: exact densities at every $t$.
#
# **Notation.** In this lesson $s(t)$ is the standard deviation of $\mathbf{x}_t$ given $\mathbf{x}_0$, for any
# SDE, and $m(t)$ its mean coefficient; $\sigma$ is kept for a noise level of the VE kind (annealed Langevin's
# $\sigma$, the VE SDE's $\sigma(t)$). The lecture writes $\sigma_t$ for our $s(t)$, and problem set 3 writes
# $\sigma(t)$ for it: the same quantity, $\sqrt{1 - \bar\alpha}$ of lessons 1-2 for the VP SDE. The score network
# is the bold vector field $\mathbf{s}_\theta(\mathbf{x}, t)$, as in the lecture: bold $\mathbf{s}$ is a score,
# italic $s$ a standard deviation.

# %% id="forward_marginals"
ve = VESDE(sigma_min=0.01, sigma_max=6.0)  # sigma_max: about the largest distance between the components
row_times = (0.0, 0.1, 0.2, 0.35, 0.6, 1.0)
fig, axes = plt.subplots(2, len(row_times), figsize=(2.6 * len(row_times), 5.6))
for row, (process, name) in enumerate([(sde, "VP"), (ve, "VE")]):
    for ax, t in zip(axes[row], row_times, strict=True):
        mean_coef, std = process.marginal(t)
        draw_density(ax, t, process)
        ax.set_title(f"{name}, $t = {t}$\n$m = {mean_coef:.2f}$, $s = {std:.2f}$", fontsize=9)
fig.suptitle("the marginal $q_t$ of the forward SDE (exact; shading scaled per panel)", y=1.0)
show(fig, OUT / "forward_marginals.png")
for process, name in [(sde, "VP"), (ve, "VE")]:
    print(f"{name}: f(1) = {process.drift_coef(1.0):.2f}, g(1) = {process.diffusion(1.0):.2f}, "
          f"(m, s) at t = 1: ({process.marginal(1.0)[0]:.4f}, {process.marginal(1.0)[1]:.3f}), "
          f"prior N(0, {process.prior_std:g}^2 I)")
# VE: the variance that the SDE adds from t = 0, int_0^t g^2 (trapezoid rule on a fine grid), against sigma(t)^2
print(f"VE, sigma_min = {ve.sigma_min}: t, int_0^t g^2, sigma(t)^2 - sigma_min^2, exact s(t), VESDE's s(t) = sigma(t)")
for t in (0.0, 0.05, 0.2, 1.0):
    u = torch.linspace(0, t, 20_001, dtype=F64)
    added = torch.trapezoid(ve.diffusion(u) ** 2, u).item()
    exact_std = math.sqrt(ve.sigma(t) ** 2 - ve.sigma_min**2)
    print(f"   {t:4.2f} {added:14.6f} {ve.sigma(t) ** 2 - ve.sigma_min**2:14.6f} {exact_std:9.4f} "
          f"{ve.marginal(t)[1]:9.4f}")

# %% [markdown] id="ddpm_link_intro"
# **DDPM is the VP SDE on a grid.** `VPSDE.discretize(T)` builds the discrete schedule whose chain tends to the SDE,
# $\beta_i = \beta(\tau_i)/T$ on an even grid $\tau_i$ of $[0, 1]$; for $T = 1000$ it is DDPM's linear schedule
# $10^{-4} \ldots 0.02$ exactly. Step $i$ stands for time $t = i/T$ (`time_from_step`), and there the SDE's mean
# coefficient $m(i/T)$ should match $\sqrt{\bar\alpha_i}$. It does, up to an error of order $1/T$: the right panel
# multiplies the difference of $m^2$ and $\bar\alpha$ by $T$, and the curves for $T = 100, 1000, 10000$ fall on top
# of each other.

# %% id="ddpm_link"
ddpm = NoiseSchedule.linear(1000)
print(f"VPSDE().discretize(1000) vs NoiseSchedule.linear(1000): largest difference of the betas "
      f"{(sde.discretize(1000).betas - ddpm.betas).abs().max():.1e}")
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
steps = torch.arange(ddpm.T + 1)
t_grid = time_from_step(steps, ddpm.T)  # i / T, float64
mean_coef = sde.marginal(t_grid)[0]
axes[0].plot(t_grid, ddpm.alpha_bars.sqrt(), lw=3, color="0.7", label=r"DDPM $\sqrt{\bar\alpha_i}$, $T = 1000$")
axes[0].plot(t_grid, mean_coef, "--", color="C0", label="VP SDE $m(i/T)$")
axes[0].set(xlabel="$t = i/T$", ylabel="mean coefficient", title="the same signal decay")
axes[0].legend(fontsize=8)
axes[1].plot(t_grid, mean_coef - ddpm.alpha_bars.sqrt(), color="C0")
axes[1].set(xlabel="$t = i/T$", title=r"$m(i/T) - \sqrt{\bar\alpha_i}$, $T = 1000$")
for T in (100, 1000, 10_000):
    schedule_T = sde.discretize(T)
    t_T = time_from_step(torch.arange(T + 1), T)
    axes[2].plot(t_T, T * (sde.marginal(t_T)[0] ** 2 - schedule_T.alpha_bars), label=f"$T = {T}$")
axes[2].set(xlabel="$t = i/T$", title=r"$T\,(m(i/T)^2 - \bar\alpha_i)$: the error is $O(1/T)$")
axes[2].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
show(fig, OUT / "ddpm_vs_vp.png")
difference = (mean_coef - ddpm.alpha_bars.sqrt()).abs()
print(f"T = 1000: largest |m(i/T) - sqrt(alpha_bar_i)| = {difference.max():.4f} at t = "
      f"{t_grid[difference.argmax()]:.3f} (sqrt(alpha_bar) there: {ddpm.alpha_bars.sqrt()[difference.argmax()]:.3f})")

# %% [markdown] id="dsm_intro"
# ## 4. Why denoising gives the score
#
# To sample with the noisy scores $\nabla \log q_t$ we must learn them, and the obvious loss, $\mathbb{E}\,\|
# \mathbf{s}_\theta(\mathbf{x}_t, t) - \nabla \log q_t(\mathbf{x}_t)\|^2$ (*explicit* score matching, ESM), needs
# the very score we do not know. But the score of the *kernel* is known: $q(\mathbf{x}_t \mid \mathbf{x}_0) =
# \mathcal{N}(m\mathbf{x}_0, s^2\mathbf{I})$, so
#
# $$\nabla_{\mathbf{x}_t} \log q(\mathbf{x}_t \mid \mathbf{x}_0) = -\frac{\mathbf{x}_t - m\,\mathbf{x}_0}{s^2} =
# -\frac{\boldsymbol\epsilon}{s} .$$
#
# The noisy density is an average of such kernels, $q_t(\mathbf{x}_t) = \int q(\mathbf{x}_t \mid \mathbf{x}_0)\,
# p(\mathbf{x}_0)\,d\mathbf{x}_0$, and its score turns out to be the corresponding average of the kernels' scores,
# weighted by how plausible each clean point is once $\mathbf{x}_t$ has been seen:
#
# $$\nabla \log q_t(\mathbf{x}_t) = \mathbb{E}\big[\nabla_{\mathbf{x}_t} \log q(\mathbf{x}_t \mid \mathbf{x}_0)
# \ \big|\ \mathbf{x}_t\big] = \mathbb{E}\Big[-\frac{\boldsymbol\epsilon}{s}\ \Big|\ \mathbf{x}_t\Big],$$
#
# the expectation being over the posterior $p(\mathbf{x}_0 \mid \mathbf{x}_t)$. (Problem set 3, Part F, asks you to
# prove it, and the consequence below.) Since $\boldsymbol\epsilon = (\mathbf{x}_t - m\,\mathbf{x}_0)/s$, the same
# identity gives the posterior mean of the clean data from the score, **Tweedie's formula**:
#
# $$\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t] = \frac{\mathbf{x}_t + s^2\,\nabla \log q_t(\mathbf{x}_t)}{m},\qquad
# \mathbb{E}[\boldsymbol\epsilon \mid \mathbf{x}_t] = -s\,\nabla \log q_t(\mathbf{x}_t):$$
#
# the best guess of the clean point is one step up the score, scaled back by $m$ (problem set 4 builds its exact noise
# predictor from it). The score is thus a posterior mean, and a posterior mean is what least squares finds. So
# **denoising score matching** (DSM) regresses the network onto $-\boldsymbol\epsilon/s$ for pairs we can simulate:
#
# $$\mathcal{L}_\text{DSM}(\theta) = \mathbb{E}_{t,\ \mathbf{x}_0,\ \boldsymbol\epsilon}\ \lambda(t)\,\Big\|
# \mathbf{s}_\theta(\mathbf{x}_t, t) + \frac{\boldsymbol\epsilon}{s(t)}\Big\|^2,\qquad t \sim \mathcal{U}(t_\text{min},
# 1).$$
#
# More is true: $\mathcal{L}_\text{DSM}$ equals $\mathcal{L}_\text{ESM}$ (with the same weights) plus a constant that
# does not depend on $\theta$, so the two losses have the same minimiser and the same gradients; the table further
# down checks it numerically. Written with a noise predictor $\mathbf{s}_\theta = -\boldsymbol\epsilon_\theta / s$,
# the loss is $\mathbb{E}\,\frac{\lambda(t)}{s(t)^2}\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2$, the
# lecture's form (its $\sigma_t$ is our $s(t)$), and two weights $\lambda$ matter:
#
# - $\lambda(t) = s(t)^2$ turns DSM into $\mathbb{E}\,\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2$, lesson
#   2's $L_\text{simple}$ in continuous time: the lecture's weighting for perceptual quality;
# - $\lambda(t) = g(t)^2$, which for the VP SDE is $\beta(t)$: the lecture's weighting for maximum likelihood. With it,
#   half the ESM loss integrated over $t$ (so DSM, up to its constant), plus the small mismatch $\mathrm{KL}(q_1 \|
#   \text{prior})$, bounds the KL divergence from the data to the model defined by the **reverse SDE** with the
#   learned score (Song, Durkan, Murray & Ermon 2021, Theorem 1), hence that model's negative log-likelihood. It
#   bounds the likelihood of the reverse SDE, not that of the probability-flow ODE of section 5, whose likelihood
#   section 7 computes; the two models agree only where the learned score is exact. Section 8 trains both ways and
#   measures.
#
# `dsm_loss(score_model, sde, x0, weighting=...)` computes it (its mean over coordinates; `"sigma2"` or
# `"likelihood"`). In this lesson $\lambda$ is always this weight; lesson 4 (after DPM-Solver) uses $\lambda$ for
# half the log signal-to-noise ratio, $\log(m/s)$, a different quantity.
#
# **Training.** Our score model is lesson 2's toy MLP used as a noise predictor and divided by $-s(t)$, with the
# continuous time $t$ as its time input. The loop is written out, as a function that section 8 calls again with
# another objective; each step draws a fresh batch of the mixture, and the learning rate falls linearly to zero over
# the run, so that the last updates are small and the model settles (section 8 compares two trained models, and
# needs each to be more than its last noisy steps). The cell prints how long it took.

# %% id="dsm_train"
class ScoreMLP(nn.Module):
    """s_theta(x, t) = -eps_theta(x, t) / s(t): an eps-predicting MLP read as a score of the SDE `sde`."""

    def __init__(self, sde, **mlp) -> None:
        super().__init__()
        self.sde, self.eps_net = sde, MLPEps(dim=2, **mlp)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        noise_std = per_example(self.sde.marginal(t)[1], x)
        return self.eps_net(x, t) / (-noise_std)


def train_score_model(objective, desc: str) -> tuple[ScoreMLP, list[float]]:
    """A fresh ScoreMLP (initial weights from SEED) trained for DSM_STEPS steps, each on a fresh batch of the
    mixture, with the learning rate falling linearly to 0; returns the model (in eval mode) and the losses.

    objective(model, x0, generator) -> the batch's loss (a 0-d tensor); batches, times and noise all come from one
    generator seeded with SEED, so two objectives see the same batches."""
    torch.manual_seed(SEED)  # the initial weights
    model = ScoreMLP(sde, hidden=128, depth=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / DSM_STEPS)
    g = torch.Generator().manual_seed(SEED)
    losses = []
    for _ in tqdm(range(DSM_STEPS), desc=desc):
        x0 = mixture.sample(DSM_BATCH, g).float()
        loss = objective(model, x0, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
        losses.append(loss.item())
    return model.eval(), losses


def score_fn_of(model: ScoreMLP):
    """The model as a score function score_fn(x, t) on float64 points (it computes in float32). It keeps autograd
    on, because the exact divergence of section 7 differentiates it; the solvers run it under torch.no_grad()."""
    def score_fn(x: torch.Tensor, t) -> torch.Tensor:
        t = torch.full((len(x),), t) if isinstance(t, float) else t.float()
        return model(x.float(), t).to(x.dtype)
    return score_fn


t0 = time.perf_counter()
score_model, dsm_losses = train_score_model(
    lambda model, x0, g: dsm_loss(model, sde, x0, weighting=DSM_WEIGHTING, t_min=T_MIN, generator=g),
    desc="training the score MLP")
learned_score = score_fn_of(score_model)
print(f"{count_parameters(score_model):,d} parameters, {DSM_STEPS} steps in {time.perf_counter() - t0:.1f} s; "
      f"mean loss over the last 100 steps {np.mean(dsm_losses[-100:]):.3f}")


# %% [markdown] id="dsm_compare_intro"
# **Learned against exact.** At each comparison time the cell draws points from $q_t$ (exactly:
# `mixture.diffuse(m, s).sample(n)`) and measures the mean squared error of the learned score per coordinate, beside
# that of the zero field, $\mathbb{E}\|\nabla \log q_t\|^2 / 2$, which sets the scale. Small $t$ is the hard case:
# the score is large and changes fast between components, and an error in $\boldsymbol\epsilon_\theta$ becomes that
# error divided by $s(t)$ in the score.

# %% id="dsm_compare"
exact_score = mixture_score_fn(mixture, sde)  # score_fn(x, t) = grad log q_t(x), exact
g = torch.Generator().manual_seed(SEED + 3)
fig, axes = plt.subplots(1, 1 + 2 * len(COMPARE_TIMES), figsize=(3.3 * (1 + 2 * len(COMPARE_TIMES)), 3.4))
axes[0].plot(dsm_losses, color="0.75", lw=0.6)
window = max(DSM_STEPS // 30, 1)
axes[0].plot(np.arange(window - 1, DSM_STEPS), np.convolve(dsm_losses, np.ones(window) / window, "valid"))
axes[0].set(xlabel="step", ylabel=f"DSM loss ({DSM_WEIGHTING})", title="training loss")
axes[0].grid(alpha=0.3)
for i, t in enumerate(tqdm(COMPARE_TIMES, desc="comparing", leave=False)):
    mean_coef, std = sde.marginal(t)
    x_t = mixture.diffuse(mean_coef, std).sample(N_EVAL, g)
    with torch.no_grad():
        exact, learned = exact_score(x_t, t), learned_score(x_t, t)
    mse, zero = (learned - exact).pow(2).mean().item(), exact.pow(2).mean().item()
    print(f"t = {t}: mean squared error of the learned score {mse:.4f} per coordinate; of the zero field {zero:.4f} "
          f"(ratio {mse / zero:.3f})")
    for ax, field, name in [(axes[1 + 2 * i], exact_score(arrows, t), "exact"),
                            (axes[2 + 2 * i], learned_score(arrows, t).detach(), "learned")]:
        draw_density(ax, t)
        draw_score(ax, field, color="C0" if name == "exact" else "C3")
        ax.set_title(f"{name} score, $t = {t}$" + (f"\nMSE {mse:.3f} (zero field {zero:.2f})" if name == "learned"
                                                    else ""), fontsize=10)
show(fig, OUT / "learned_score.png")

# %% [markdown] id="dsm_table_intro"
# **DSM is ESM plus a constant.** The claim can be checked directly: for several candidate score functions, compute
# the DSM loss (which needs only samples of the data and the noise) and the ESM loss (which needs the exact score),
# at a fixed $t$ and with $\lambda = s^2$, on the same noisy points $\mathbf{x}_t$. Their difference should be the
# same number for every candidate, namely the DSM loss of the exact score, up to Monte Carlo error (which grows with
# the candidate's distance from the score). Candidates:
# the exact score, the trained model, the exact score at $2t$ (too smooth), and the zero field. To get the points
# $\mathbf{x}_t$ that `dsm_loss` draws, the exact score is handed to it wrapped in a recorder, a score function that
# keeps a copy of every input it is called with (section 5 uses it again).

# %% id="dsm_table"
class RecordingScore:
    """A score function that keeps a copy of every x it is called with (only the first `keep` rows, if given)."""

    def __init__(self, score_fn, keep: int | None = None) -> None:
        self.score_fn, self.keep, self.points = score_fn, keep, []

    def __call__(self, x: torch.Tensor, t) -> torch.Tensor:
        self.points.append(x[: self.keep].clone())
        return self.score_fn(x, t)


candidates = {
    "exact score": exact_score,
    "trained MLP": learned_score,
    "exact score at 2t": lambda x, t: exact_score(x, 2 * t),
    "zero field": lambda x, t: torch.zeros_like(x),
}
g = torch.Generator().manual_seed(SEED + 4)
print(f"{'t':>5}   {'candidate':18s} {'DSM loss':>9} {'ESM loss':>9} {'DSM - ESM':>10}")
for t in tqdm(COMPARE_TIMES, desc="DSM and ESM losses", leave=False):
    x0 = mixture.sample(N_EVAL, g)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)  # the same draws for every candidate
    recorder = RecordingScore(exact_score)
    dsm_loss(recorder, sde, x0, t=t, noise=noise)
    x_t = recorder.points[0]  # the noisy points dsm_loss made from x0 and noise
    for name, candidate in candidates.items():
        dsm = dsm_loss(candidate, sde, x0, t=t, noise=noise).item()  # lambda = s^2 (weighting="sigma2"), t fixed
        esm = (sde.marginal(t)[1] ** 2 * (candidate(x_t, t) - exact_score(x_t, t)).pow(2)).mean().item()
        print(f"{t:5.2f}   {name:18s} {dsm:9.4f} {esm:9.4f} {dsm - esm:10.4f}")

# %% [markdown] id="reverse_intro"
# ## 5. Reverse SDE and probability-flow ODE
#
# The forward SDE turns data into noise. Anderson (1982) showed that it has a time reversal, again an SDE, which
# runs from $t = 1$ down to $0$:
#
# $$d\mathbf{x} = \big[f(t)\,\mathbf{x} - g(t)^2\,\nabla \log q_t(\mathbf{x})\big]\,dt + g(t)\,d\bar{\boldsymbol
# \omega}_t ,\qquad dt < 0 .$$
#
# Started from $q_1 \approx \mathcal{N}(\mathbf{0}, \mathbf{I})$, its solution at every $t$ is distributed as the
# forward process's $q_t$; at $t = 0$ it produces data. The score is the only unknown: this is where sections 1-4
# pay off. Euler-Maruyama (`euler_maruyama`) discretises it like Euler's method plus a Gaussian kick of variance
# $g^2 |\Delta t|$ per step; DDPM's Algorithm 2 is another discretisation of the same equation.
#
# **There is also an ODE.** The density of the forward SDE obeys the Fokker-Planck equation $\partial_t q_t =
# -\nabla\cdot(f\mathbf{x}\,q_t) + \tfrac12 g^2 \nabla^2 q_t$. Write the diffusion term as a flow: $\nabla^2 q_t =
# \nabla\cdot(q_t \nabla \log q_t)$, so
#
# $$\partial_t q_t = -\nabla \cdot \Big(\big[f(t)\,\mathbf{x} - \tfrac12 g(t)^2 \nabla \log q_t(\mathbf{x})\big]\,
# q_t\Big),$$
#
# the continuity equation of particles moving with the velocity in square brackets. Hence the **probability-flow
# ODE**
#
# $$\frac{d\mathbf{x}}{dt} = f(t)\,\mathbf{x} - \tfrac12 g(t)^2\,\nabla \log q_t(\mathbf{x})$$
#
# moves a cloud of points through exactly the same marginals $q_t$, with no noise at all (Song et al., 2021). Each
# starting point $\mathbf{x}_1$ has one endpoint $\mathbf{x}_0$: the ODE is a deterministic, invertible map from
# noise to data.
#
# **Solving it step by step.** Write $\mathbf{F}(\mathbf{x}, t) = f(t)\,\mathbf{x} - \tfrac12 g(t)^2\,
# \mathbf{s}(\mathbf{x}, t)$ for the ODE's velocity, with $\mathbf{s}$ the score (exact here, a network later). On a
# grid $1 = t_0 > t_1 > \dots > t_N = t_\text{min}$, **Euler's method** holds the velocity fixed over each step at its
# value at the step's start:
#
# $$\mathbf{x}_{k+1} = \mathbf{x}_k - h_k\,\mathbf{F}(\mathbf{x}_k, t_k) = \mathbf{x}_k - h_k\Big[f(t_k)\,\mathbf{x}_k -
# \tfrac12 g(t_k)^2\,\mathbf{s}(\mathbf{x}_k, t_k)\Big],\qquad h_k = t_k - t_{k+1} > 0 .$$
#
# This is the lecture's $\mathbf{x}(t + \Delta t) \approx \mathbf{x}(t) + \mathbf{f}(\mathbf{x}(t), t)\,\Delta t$
# with the step $\Delta t = -h_k$ negative, since time runs down; one score evaluation per step, and an error at the
# end that shrinks in proportion to the step size (first order). Euler-Maruyama on the reverse SDE makes the same
# move with the SDE's drift $f\mathbf{x} - g^2\mathbf{s}$ in place of $\mathbf{F}$, and adds a Gaussian kick.
#
# Both are run below from the **same** $\mathbf{x}_1$, with the exact score and the same grid of `PATH_STEPS` steps
# from $t = 1$ to $t_\text{min}$, by Euler-Maruyama (`euler_maruyama`) and by Euler's method (`ode_euler`). The
# solvers return only the end point; to draw the paths we hand them section 4's `RecordingScore`, which keeps every
# point the score is evaluated at: for these one-evaluation-per-step solvers, the path itself.

# %% id="trajectories"
times = time_grid(PATH_STEPS, t_min=T_MIN)  # 1 = t_0 > t_1 > ... > t_PATH_STEPS = T_MIN
n_points = SW_N * SW_SETS
x_1 = sde.prior_sample((n_points, 2), generator=torch.Generator().manual_seed(SEED), dtype=F64)
t0 = time.perf_counter()
sde_recorder, ode_recorder = RecordingScore(exact_score, keep=N_PATHS), RecordingScore(exact_score, keep=N_PATHS)
sde_end = euler_maruyama(sde_recorder, sde, x_1, times, generator=torch.Generator().manual_seed(SEED + 1),
                         progress=True)
ode_end = ode_euler(ode_recorder, sde, x_1, times, progress=True)
# (PATH_STEPS + 1, N_PATHS, 2): the points at every grid time, then the solver's result
sde_paths = torch.stack([*sde_recorder.points, sde_end[:N_PATHS]])
ode_paths = torch.stack([*ode_recorder.points, ode_end[:N_PATHS]])
print(f"{n_points} points, {PATH_STEPS} steps, reverse SDE and ODE, in {time.perf_counter() - t0:.1f} s")

fig, axes = plt.subplots(2, 2, figsize=(11, 9.5), gridspec_kw={"height_ratios": [1.6, 1]})
for col, (paths, title) in enumerate([(sde_paths, "reverse SDE (Euler-Maruyama)"),
                                      (ode_paths, "probability-flow ODE (Euler)")]):
    ax = axes[0, col]
    draw_density(ax, 0.0)
    for i in range(N_PLANE_PATHS):
        ax.plot(paths[:, i, 0], paths[:, i, 1], lw=0.8, color=f"C{i % 10}", alpha=0.9)
    ax.scatter(paths[0, :N_PLANE_PATHS, 0], paths[0, :N_PLANE_PATHS, 1], s=18, marker="o", facecolors="none",
               edgecolors="k", lw=0.8, label="start $x_1$")
    ax.scatter(paths[-1, :N_PLANE_PATHS, 0], paths[-1, :N_PLANE_PATHS, 1], s=18, color="k",
               label="end $x_{t_{min}}$")
    ax.set_title(f"{title}: {N_PLANE_PATHS} paths")
    ax.legend(fontsize=8, loc="lower right")
    for i in range(N_PATHS):
        axes[1, col].plot(times, paths[:, i, 0], lw=0.7, color=f"C{i % 10}")
    axes[1, col].set(xlabel="$t$", ylabel="first coordinate", xlim=(1, 0),
                     title=f"first coordinate against $t$, {N_PATHS} paths")
    axes[1, col].grid(alpha=0.3)
show(fig, OUT / "sde_vs_ode_paths.png")

# %% [markdown] id="endpoints_intro"
# The paths differ, but the laws of the end points should not: both are (up to the discretisation) samples of the
# data. Below, the end points of all `SW_N * SW_SETS` runs beside fresh true samples, with section 1's two
# yardsticks, and a test of determinism: from the same $\mathbf{x}_1$, run each sampler again (the SDE with other
# noise) and count the points that land in a different component.

# %% id="endpoints"
sde_again = euler_maruyama(exact_score, sde, x_1, times, generator=torch.Generator().manual_seed(SEED + 2),
                           progress=True)
ode_again = ode_euler(exact_score, sde, x_1, times, progress=True)
truth = mixture.sample(n_points, torch.Generator().manual_seed(SEED + 5))
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharex=True, sharey=True)
for ax, x_, title in [(axes[0], sde_end, "reverse SDE"), (axes[1], ode_end, "probability-flow ODE"),
                      (axes[2], truth, "fresh true samples")]:
    ax.scatter(x_[:, 0], x_[:, 1], s=1, alpha=0.4, color="0.3" if x_ is truth else None)
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal")
    ax.set_title(title + ("" if x_ is truth else f"\nsliced W2 {sw_to_truth(x_):.3f}, log-density gap "
                                                  f"{log_prob_gap(x_):+.3f}"), fontsize=10)
fig.suptitle(f"end points from the same $x_1$ ({PATH_STEPS} steps; floor {floor:.3f})", y=1.02)
show(fig, OUT / "sde_vs_ode_endpoints.png")
for name, first, second in [("reverse SDE", sde_end, sde_again), ("ODE", ode_end, ode_again)]:
    moved = (component_of(first) != component_of(second)).float().mean().item()
    print(f"{name:11s}: run twice from the same x_1, {100 * moved:.1f}% of the points end in another component; "
          f"largest distance between the two ends {(first - second).norm(dim=1).max():.2f}")

# %% [markdown] id="steps_intro"
# The ODE's determinism is what makes it useful beyond sampling: it maps each data point to a unique noise vector
# and back (an encoder, used for interpolation and editing), and it gives exact likelihoods (section 7). The SDE's
# noise, on the other hand, keeps correcting errors made earlier in the path, which helps when the score is
# imperfect.
#
# ## 6. How many steps?
#
# Every solver trades steps for accuracy. The cost of a step is the number of **function evaluations** (NFE), calls
# of the score (of the network, for a trained model), and that differs between solvers:
#
# - **Euler-Maruyama** (reverse SDE): one evaluation per step, first order (weakly) in the step size;
# - **predictor-corrector** (PC, Song et al. 2021): an Euler-Maruyama step preceded by a Langevin step at the same
#   $t$ (section 2's update, with a step size set by a signal-to-noise ratio `snr`): two evaluations per step;
# - **ODE, Euler**: one evaluation per step, first order;
# - **ODE, Heun**: an Euler step, then a correction with the slope at its end point (the trapezoid rule): two
#   evaluations per step, second order (Karras et al., 2022).
#
# All four have the signature `solver(score_fn, sde, x_1, times)`. The cell runs each for every number of steps in
# `STEP_COUNTS`, with the exact score, from the same $\mathbf{x}_1$, counts the evaluations with `CountedScore`, and
# measures the samples with section 1's two yardsticks: the sliced W2 distance to true samples (floor: what fresh
# true samples score) and the log-density gap (0 for true samples).

# %% id="steps_table"
solvers = {"Euler-Maruyama": euler_maruyama, "PC": predictor_corrector, "ODE Euler": ode_euler, "ODE Heun": ode_heun}
stochastic = {"Euler-Maruyama", "PC"}
x_1 = sde.prior_sample((SW_N * SW_SETS, 2), generator=torch.Generator().manual_seed(SEED + 6), dtype=F64)
results, clouds = {}, {}
t0 = time.perf_counter()
with tqdm(total=len(solvers) * len(STEP_COUNTS), desc="solvers x step counts") as bar:
    for name, solver in solvers.items():
        for n in STEP_COUNTS:
            counted = CountedScore(exact_score)
            options = {"generator": torch.Generator().manual_seed(SEED + 7)} if name in stochastic else {}
            out = solver(counted, sde, x_1, time_grid(n, t_min=T_MIN), **options)
            results[name, n] = (sw_to_truth(out), log_prob_gap(out), counted.calls)
            clouds[name, n] = out[:SW_N]
            bar.update()
print(f"{len(results)} runs in {time.perf_counter() - t0:.1f} s")
print(f"sliced W2 to true samples / log-density gap (NFE); fresh true samples: {floor:.3f} / 0 ± {gap_noise:.3f}")
print(f"{'steps':>5} " + "".join(f"{name:>26s}" for name in solvers))
for n in STEP_COUNTS:
    print(f"{n:5d} " + "".join(f"{results[name, n][0]:11.3f} / {results[name, n][1]:+7.3f} ({results[name, n][2]:4d})"
                               for name in solvers))
# what the table says, read by the code (the prose below leans on these lines)
sw_band, gap_band = 2 * floor_noise, 2 * gap_noise
print(f"sliced W2 within the floor's band {floor:.3f} ± {sw_band:.3f} (twice its noise), |gap| within "
      f"{gap_band:.3f} (twice its noise):")
for n in STEP_COUNTS:
    sw_in = [name for name in solvers if abs(results[name, n][0] - floor) <= sw_band]
    gap_in = [name for name in solvers if abs(results[name, n][1]) <= gap_band]
    gaps = [results[name, n][1] for name in solvers]
    print(f"  {n:4d} steps: sliced W2 of {len(sw_in)} of {len(solvers)} solvers in the band, |gap| of {len(gap_in)}; "
          f"gaps from {min(gaps):+.3f} to {max(gaps):+.3f}")
print("at equal NFE, |gap| of the ODE solver / |gap| of the SDE solver (* where both are within the noise band):")
for ode_name, sde_name in [("ODE Euler", "Euler-Maruyama"), ("ODE Heun", "PC")]:
    ratios = []
    for n in STEP_COUNTS:
        ode_gap, sde_gap = abs(results[ode_name, n][1]), abs(results[sde_name, n][1])
        ratios.append(f"{ode_gap / sde_gap:.2f}" + ("*" if max(ode_gap, sde_gap) <= gap_band else ""))
    print(f"  {ode_name} / {sde_name} ({results[ode_name, STEP_COUNTS[0]][2] // STEP_COUNTS[0]} NFE a step), at "
          + ", ".join(f"{n} steps {r}" for n, r in zip(STEP_COUNTS, ratios, strict=True)))
euler_gaps = [results["ODE Euler", n][1] for n in STEP_COUNTS]
flips = [(a, b) for a, b, x, y in zip(STEP_COUNTS[:-1], STEP_COUNTS[1:], euler_gaps[:-1], euler_gaps[1:], strict=True)
         if x * y < 0]
print("ODE Euler's gap changes sign between " + ", ".join(f"{a} and {b} steps" for a, b in flips) if flips
      else "ODE Euler's gap keeps its sign")

# %% id="steps_grid"
fig, axes = plt.subplots(len(solvers), len(STEP_COUNTS) + 1, figsize=(2.1 * (len(STEP_COUNTS) + 1),
                                                                         2.2 * len(solvers)),
                         sharex=True, sharey=True)
for row, name in enumerate(solvers):
    for col, n in enumerate(STEP_COUNTS):
        ax = axes[row, col]
        cloud = clouds[name, n]
        ax.scatter(cloud[:, 0], cloud[:, 1], s=0.5, alpha=0.4)
        sw, gap, nfe = results[name, n]
        ax.set_title(f"{n} steps, NFE {nfe}\nSW {sw:.3f}, gap {gap:+.2f}", fontsize=8)
        if col == 0:
            ax.set_ylabel(name)
    axes[row, -1].scatter(true_sets[0][:, 0], true_sets[0][:, 1], s=0.5, alpha=0.4, color="0.3")
    axes[row, -1].set_title(f"true samples\nSW {floor:.3f}, gap 0", fontsize=8)
for ax in axes.flat:
    ax.set(xlim=(-LIM, LIM), ylim=(-LIM, LIM), xticks=[], yticks=[], aspect="equal")
show(fig, OUT / "samples_vs_steps.png")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name in solvers:
    nfe = [results[name, n][2] for n in STEP_COUNTS]
    axes[0].plot(nfe, [results[name, n][0] for n in STEP_COUNTS], "o-", label=name)
    axes[1].plot(nfe, [abs(results[name, n][1]) for n in STEP_COUNTS], "o-", label=name)
axes[0].axhline(floor, color="0.4", ls="--", label="fresh true samples")
axes[0].axhspan(floor - sw_band, floor + sw_band, color="0.4", alpha=0.15, lw=0,
                label="their band (± twice the noise)")
axes[1].axhline(gap_noise, color="0.4", ls="--", label="noise level of true samples")
smallest_gap = min(abs(result[1]) for result in results.values())
axes[1].axhspan(min(smallest_gap, gap_noise) / 3, gap_band, color="0.4", alpha=0.15, lw=0,
                label="within twice the noise")
axes[0].set(yscale="log", ylabel="sliced W2 to true samples", title="sliced W2 against cost")
axes[1].set(yscale="log", ylabel="|log-density gap| (nats)", title="|log-density gap| against cost")
for ax in axes:
    ax.set(xscale="log", xlabel="function evaluations (NFE)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
show(fig, OUT / "error_vs_nfe.png")

# %% [markdown] id="steps_read"
# How to read it (the lines under the table read it for the run you just made; fast mode has fewer step counts, fewer
# points and wider bands):
#
# - **Five steps are far too few** for every solver (the first row): the SDE solvers fling points far outside the
#   data, the most negative gaps of the table; Euler on the ODE leaves a haze between the components; Heun, at twice
#   the cost, does better but is still far off.
# - **The sliced distance stops seeing the errors early.** From about 20 steps on, most solvers' sliced W2 lies
#   within the floor's band, while their gaps still spread from clearly negative to clearly positive: at 10 steps the
#   SDE samples are too wide (negative gap), at 20 they are squeezed into thin streaks (positive gap; compare the
#   pictures). The sliced distance is dominated by how many points fall in each mode; the gap measures the shape of
#   each component.
# - **At equal NFE the ODE is the more accurate** on this smooth problem: as long as the SDE solver's gap is outside
#   the noise band, the printed ratios of the ODE solver's |gap| to the SDE solver's are below 1, often far below.
#   Once both are within the band (marked *), the ratio is noise and the comparison is over.
# - **Read the whole curve.** Euler's gap changes sign (printed), so near that step count it looks better than it is.
# - **Compare at equal NFE, not at equal steps:** per step, Heun and PC pay twice.
#
# `sampling.sample` runs every sampler of the course by name, so you can extend the table yourself, for instance to
# lesson 2's ancestral sampler at equal NFE (What to try, item 5).
#
# The same solvers run on a trained DDPM model through `sampling.sample` (`sampler="sde" | "pc" | "ode" |
# "ode_euler"`): the discrete schedule is read as a VP process whose score exists at its grid times only,
# $-\boldsymbol\epsilon_\theta / s(t_i)$ with $s(t_i) = \sqrt{1 - \bar\alpha_i}$, and the grid ends at $t = 0$ rather
# than at $t_\text{min}$. With the exact eps-model of our mixture on DDPM's schedule (`mixture_eps_model`), beside
# lesson 2's ancestral sampler (`"ddpm"`), at `DISCRETE_STEPS` steps:

# %% id="discrete_samplers"
eps_model = mixture_eps_model(mixture, ddpm)  # E[eps | x_t] on DDPM's linear schedule, T = 1000
discrete = {}
for num_steps in DISCRETE_STEPS:
    for name in tqdm(("ddpm", "sde", "pc", "ode", "ode_euler"), desc=f"samplers, {num_steps} steps", leave=False):
        counted = CountedScore(eps_model)  # counts calls of any model
        x = sample(counted, ddpm, (2 * SW_N, 2), sampler=name, num_steps=num_steps, dtype=F64,
                   generator=torch.Generator().manual_seed(SEED + 8))
        discrete[name, num_steps] = log_prob_gap(x)
        print(f"sample(..., sampler={name!r:11s}, num_steps={num_steps:4d}): NFE {counted.calls:4d}, sliced W2 "
              f"{sw_to_truth(x):.3f}, log-density gap {discrete[name, num_steps]:+.3f}")
print(f"(2 sets of {SW_N} points each: the sliced W2 of true samples varies by about "
      f"±{np.std(one_set) / math.sqrt(2):.3f} around {floor:.3f}, their gap by "
      f"±{gap_noise * math.sqrt(SW_SETS / 2):.3f})")
if 50 in STEP_COUNTS and 50 in DISCRETE_STEPS:
    print(f"at 50 steps, Euler's gap: {discrete['ode_euler', 50]:+.3f} on DDPM's grid (\"ode_euler\"), "
          f"{results['ODE Euler', 50][1]:+.3f} on VPSDE (table above); Heun's on DDPM's grid (\"ode\"): "
          f"{discrete['ode', 50]:+.3f}")
if max(DISCRETE_STEPS) > 50:
    worst = max(abs(discrete[name, max(DISCRETE_STEPS)]) for name in ("ddpm", "sde", "pc", "ode", "ode_euler"))
    print(f"at {max(DISCRETE_STEPS)} steps, the largest |gap| of the five samplers: {worst:.3f}")

# %% [markdown] id="discrete_read"
# At 50 steps the first-order ODE sampler on the discrete grid, `"ode_euler"`, leaves the samples too spread (a
# clearly negative gap), further from the data than Euler on `VPSDE` at the same number of steps (the line printed
# under the runs compares the two), while Heun's method, `"ode"` (second order, two evaluations a step), is within the
# noise of zero. In full mode, with 1000 steps, every sampler comes close to zero (the last line). What to try,
# item 8, asks where Euler's difference at 50 steps comes from.

# %% [markdown] id="likelihood_intro"
# ## 7. Likelihood through the ODE
#
# The probability-flow ODE is an invertible map, so the change-of-variables formula applies, in its instantaneous
# form (Chen et al., 2018): along a solution $\mathbf{x}(t)$ of $d\mathbf{x}/dt = \mathbf{F}(\mathbf{x}, t)$,
#
# $$\frac{d}{dt}\log q_t(\mathbf{x}(t)) = -\nabla\cdot\mathbf{F}(\mathbf{x}(t), t),$$
#
# because a flow that spreads out (positive divergence) dilutes the density. Solve the ODE *forwards* from a data
# point $\mathbf{x}(0) = \mathbf{x}$ to $\mathbf{x}(1)$, integrating the divergence along the way:
#
# $$\log q_0(\mathbf{x}) = \log q_1(\mathbf{x}(1)) + \int_0^1 \nabla\cdot\mathbf{F}(\mathbf{x}(t), t)\,dt ,$$
#
# with $\log q_1$ replaced by the prior $\mathcal{N}(\mathbf{0}, \mathbf{I})$. `ode_likelihood` does this with an
# adaptive Runge-Kutta solver (RK45) on the pair $(\mathbf{x}, \int \nabla\cdot\mathbf{F})$, from $t = 10^{-5}$. In
# two dimensions the divergence is computed exactly, two backward passes per evaluation. The cell compares it with
# the exact `log_prob` of the mixture, for several tolerances of the solver (the NFE grows as the tolerance shrinks).

# %% id="likelihood"
x_data = mixture.sample(N_LIKELIHOOD, torch.Generator().manual_seed(SEED + 9))
exact_log_prob = mixture.log_prob(x_data)
end_mean_coef, end_std = sde.marginal(1.0)
rows = []
for tol in tqdm(TOLERANCES, desc="ODE likelihoods"):
    t0 = time.perf_counter()
    result = ode_likelihood(exact_score, sde, x_data, exact_divergence=True, rtol=tol, atol=tol)
    error = result.log_likelihood - exact_log_prob
    # the same solve ended on the true q_1 (known for the mixture) instead of the prior N(0, I)
    exact_end = mixture.log_prob(result.z, mean_coef=end_mean_coef, std=end_std)
    error_exact_end = result.delta_log_prob + exact_end - exact_log_prob
    rows.append(dict(tol=tol, result=result, error=error, error_exact_end=error_exact_end,
                     seconds=time.perf_counter() - t0))
print(f"{N_LIKELIHOOD} points, exact divergence; errors of the ODE log-likelihood against mixture.log_prob, in nats")
print(f"{'rtol = atol':>11} {'NFE':>5} {'mean |error|':>13} {'max |error|':>12} {'rel. error of mean':>19} "
      f"{'mean |error|, exact q_1':>24} {'seconds':>8}")
for row in rows:
    mean_error = row["error"].mean().abs() / exact_log_prob.mean().abs()
    print(f"{row['tol']:11.0e} {row['result'].nfe:5d} {row['error'].abs().mean():13.2e} "
          f"{row['error'].abs().max():12.2e} {mean_error:19.2e} {row['error_exact_end'].abs().mean():24.2e} "
          f"{row['seconds']:8.2f}")

best = rows[-1]["result"]
# the two approximations besides the solver's: the prior N(0, I) in place of the true q_1, and the start at t = 1e-5
prior_cost = (best.prior_log_prob - mixture.log_prob(best.z, mean_coef=end_mean_coef, std=end_std)).abs()
start_mean_coef, start_std = sde.marginal(1e-5)
start_cost = (mixture.log_prob(x_data, mean_coef=start_mean_coef, std=start_std) - exact_log_prob).abs()
print(f"ending on the prior N(0, I) instead of the exact q_1 changes log q_1 by {prior_cost.mean():.1e} nats on "
      f"average (at most {prior_cost.max():.1e}); the data shrunk by m(1) = {end_mean_coef:.4f}")
print(f"starting at t = 1e-5 (noise std s = {start_std:.1e}) instead of 0 changes the exact log-density by "
      f"{start_cost.mean():.1e} nats on average (at most {start_cost.max():.1e})")
hutchinson = ode_likelihood(exact_score, sde, x_data, rtol=TOLERANCES[-1], atol=TOLERANCES[-1],
                            generator=torch.Generator().manual_seed(SEED))
print(f"Hutchinson (one Rademacher probe per point): mean over the points {hutchinson.log_likelihood.mean():.3f} "
      f"vs exact divergence {best.log_likelihood.mean():.3f}; per point, error up to "
      f"{(hutchinson.log_likelihood - best.log_likelihood).abs().max():.2f} nats")

fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
axes[0].scatter(exact_log_prob, best.log_likelihood, s=10)
low, high = exact_log_prob.min().item(), exact_log_prob.max().item()
axes[0].plot([low, high], [low, high], color="0.5", lw=0.8, ls="--")
axes[0].set(xlabel="exact log p(x)  (mixture.log_prob)", ylabel="ODE log-likelihood",
            title=f"rtol = atol = {TOLERANCES[-1]:.0e}: NFE {best.nfe}")
nfe = [row["result"].nfe for row in rows]
axes[1].plot(nfe, [row["error"].abs().mean() for row in rows], "o-", label="ending on the prior N(0, I)")
axes[1].plot(nfe, [row["error_exact_end"].abs().mean() for row in rows], "s--", label="ending on the exact $q_1$")
for row in rows:  # the labels sit above their points, inside the axes (the margins below leave room)
    axes[1].annotate(f"tol {row['tol']:.0e}", (row["result"].nfe, row["error"].abs().mean()), fontsize=7,
                     textcoords="offset points", xytext=(0, 6), ha="center")
axes[1].set(xscale="log", yscale="log", xlabel="NFE (RK45)", ylabel="mean |error| (nats)",
            title="ODE log-likelihood: error against cost")
axes[1].margins(x=0.12, y=0.15)
axes[1].legend(fontsize=8)
for ax in axes:
    ax.grid(alpha=0.3)
show(fig, OUT / "likelihood.png")

# %% [markdown] id="likelihood_read"
# The error stops falling (the prior column, solid curve), and the reason is not the solver. The flow ends on the
# prior $\mathcal{N}(\mathbf{0}, \mathbf{I})$, while the true $q_1$ is the data shrunk by $m(1)$ plus noise: its
# components sit at $m(1)\boldsymbol\mu_k$, slightly off the origin, and the cell prints what that shift is worth at
# the end points, about the level where the error stops. For our mixture $q_1$ is known, and ending the same solves
# on it instead (last column, dashed curve) leaves the solver's own error, which keeps falling with the tolerance.
# The other approximation, starting the integration at $t = 10^{-5}$ rather than 0, blurs the data by a little noise
# (its std is printed); the next line prints what it changes, far less than the prior's share.
#
# **For images** the exact divergence would need one backward pass per pixel. The Hutchinson estimator replaces it
# with $\boldsymbol\eta^\top (\partial\mathbf{F}/\partial\mathbf{x})\,\boldsymbol\eta$ for a random $\boldsymbol\eta$
# with $\mathbb{E}[\boldsymbol\eta\boldsymbol\eta^\top] = \mathbf{I}$ (one backward pass): unbiased, so the average
# over a test set is right while each point's value is noisy, as the last line printed above shows. **Bits per
# dimension**: images are discrete, so their likelihood is a probability, not a density; one adds uniform noise
# within each pixel's bin (`dequantize`), computes the density, and converts nats to bits per dimension with an
# offset for the width of the bins (`bits_per_dim`: $\log_2 127.5 \approx 7$ bits for 8-bit images scaled to $[-1,
# 1]$), which makes the number a bound on the discrete negative log-likelihood.

# %% [markdown] id="weighting_intro"
# ## 8. Which weight? Sample quality against likelihood
#
# Section 4 left a choice open: $\lambda(t) = s(t)^2$, which makes DSM $L_\text{simple}$ and is the lecture's weight
# for perceptual quality, or $\lambda(t) = g(t)^2 = \beta(t)$, the lecture's weight for maximum likelihood. Here the
# same MLP is trained both ways, with the same initial weights, the same batches and the same number of steps, and
# each model is measured three ways:
#
# 1. **The bound**, the quantity the likelihood weighting is built to make small. Theorem 1 of Song, Durkan, Murray &
#    Ermon (2021), applied from $t_\text{min}$ (where both models stop), reads
#
#    $$\mathrm{KL}\big(q_{t_\text{min}} \,\big\|\, p_\theta^\text{SDE}\big) \le \frac12\int_{t_\text{min}}^1 g(t)^2\,
#    \mathbb{E}_{q_t}\big\|\mathbf{s}_\theta(\mathbf{x}, t) - \nabla\log q_t(\mathbf{x})\big\|^2\,dt +
#    \mathrm{KL}(q_1 \,\|\, \text{prior}),$$
#
#    with $p_\theta^\text{SDE}$ the law of the reverse SDE's samples under the learned score. On real data the
#    integral is known only up to DSM's constant; with our exact score the cell computes it in nats.
# 2. **The ODE likelihood** $\log p_\theta^\text{ODE}$ of fresh points of $q_{t_\text{min}}$ (the data blurred by
#    $s(t_\text{min})$, what both models produce), by section 7's `ode_likelihood` started at $t_\text{min}$: its mean,
#    in bits per dimension, and its shortfall from the exact $\log q_{t_\text{min}}$, an estimate of
#    $\mathrm{KL}(q_{t_\text{min}} \,\|\, p_\theta^\text{ODE}) \ge 0$ with its standard error.
# 3. **Sample quality**: section 1's two yardsticks for samples of the reverse SDE (Euler-Maruyama) and of the ODE
#    (Heun, half the steps: the same NFE), from the same $\mathbf{x}_1$.
#
# **Importance sampling.** In the noise-prediction form the likelihood weighting puts the weight $\beta(t)/s(t)^2$ on
# $\|\boldsymbol\epsilon - \boldsymbol\epsilon_\theta\|^2$, and near $t = 0$, where $s(t)^2 \approx
# \beta_\text{min}t$, that weight grows like $1/t$: with $t$ drawn uniformly, a few small times dominate each batch
# and the gradient is noisy. Song, Durkan, Murray & Ermon (2021, section 5.1) draw $t$ from a density proportional
# to that weight instead, $\rho(t) = \beta(t) / (Z\,s(t)^2)$ on $[t_\text{min}, 1]$ (a density over times; $p$
# stays the data's). Writing $\ell(t) = \mathbb{E}\|\mathbf{s}_\theta + \boldsymbol\epsilon/s\|^2$,
#
# $$\int_{t_\text{min}}^1 \beta(t)\,\ell(t)\,dt = \mathbb{E}_{t\sim \rho}\Big[\frac{\beta(t)\,\ell(t)}{\rho(t)}\Big]
# = Z\,\mathbb{E}_{t \sim \rho}\big[s(t)^2\,\ell(t)\big]:$$
#
# the same objective as $\lambda = \beta$ with uniform times, computed as the $\lambda = s^2$ loss at times drawn from
# $\rho$. So the two weightings differ only in **which times** the network is trained on. For the VP SDE, with $B(t) =
# \int_0^t \beta = \beta_\text{min}t + \tfrac12(\beta_\text{max} - \beta_\text{min})t^2$ and $s^2 = 1 - e^{-B}$,
# $\int \beta / s^2\,dt = \int dB / (1 - e^{-B}) = \log(e^B - 1)$, so a uniform $u$ gives $B = \log\big(1 + \exp(L_0
# + u\,(L_1 - L_0))\big)$ with $L = \log(e^B - 1)$ at $t_\text{min}$ and at 1, $Z = L_1 - L_0$, and $t$ solves a
# quadratic. The cell first checks on the $\lambda = s^2$ model that both estimators give the same objective, and
# how much one batch's value spreads with each.
#
# The model of section 4 is reused when it was trained with $\lambda = s^2$ (`DSM_WEIGHTING = "sigma2"`); with
# `DSM_WEIGHTING = "likelihood"` it joins the comparison as a third model, $\lambda = \beta$ with uniform times.

# %% id="weighting"
beta_min, beta_max = sde.beta_min, sde.beta_max


def integrated_beta(t: float) -> float:
    """B(t) = int_0^t beta(u) du for the VP SDE."""
    return beta_min * t + 0.5 * (beta_max - beta_min) * t**2


L_START, L_END = (math.log(math.expm1(integrated_beta(t))) for t in (T_MIN, 1.0))
Z = L_END - L_START  # int_{T_MIN}^1 beta(t) / s(t)^2 dt


def likelihood_times(n: int, generator: torch.Generator) -> torch.Tensor:
    """n times in [T_MIN, 1], float64, drawn from rho(t) = beta(t) / (Z s(t)^2) by inverting its distribution
    function."""
    u = torch.rand(n, generator=generator, dtype=F64)
    b = torch.nn.functional.softplus(L_START + (L_END - L_START) * u)  # B(t) = log(1 + e^(L_START + u Z))
    t = ((beta_min**2 + 2 * (beta_max - beta_min) * b).sqrt() - beta_min) / (beta_max - beta_min)
    return t.clamp(T_MIN, 1.0)


def likelihood_objective(model, x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """lambda = beta with importance-sampled times: Z / (1 - T_MIN) times the s^2-weighted loss at t ~ rho(t), an
    estimate of the same number as dsm_loss(..., weighting="likelihood") (uniform t)."""
    t = likelihood_times(len(x0), g).to(x0.dtype).clamp(min=T_MIN)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    return Z / (1 - T_MIN) * dsm_loss(model, sde, x0, t=t, t_min=T_MIN, noise=noise)


def sigma2_objective(model, x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return dsm_loss(model, sde, x0, weighting="sigma2", t_min=T_MIN, generator=g)


# the two estimators of the likelihood-weighted objective, on one model, over many batches
check_model = score_model if DSM_WEIGHTING == "sigma2" else None
if check_model is None:
    check_model, _ = train_score_model(sigma2_objective, desc="training with lambda = s^2")
g = torch.Generator().manual_seed(SEED + 10)
with torch.no_grad():
    batches = [mixture.sample(DSM_BATCH, g).float() for _ in range(N_CHECK_BATCHES)]
    uniform = [dsm_loss(check_model, sde, x0, weighting="likelihood", t_min=T_MIN, generator=g).item()
               for x0 in batches]
    sampled = [likelihood_objective(check_model, x0, g).item() for x0 in batches]
print(f"lambda = beta on the lambda = s^2 model, {N_CHECK_BATCHES} batches of {DSM_BATCH}: uniform t "
      f"{np.mean(uniform):.3f} ± {np.std(uniform) / math.sqrt(N_CHECK_BATCHES):.3f} (one batch's std "
      f"{np.std(uniform):.3f}); t ~ rho(t) {np.mean(sampled):.3f} ± {np.std(sampled) / math.sqrt(N_CHECK_BATCHES):.3f} "
      f"(one batch's std {np.std(sampled):.3f})")

# the models: lambda = s^2 and lambda = beta (t ~ rho(t)), same initial weights and batches
t0 = time.perf_counter()
models = {"lambda = s^2": check_model}
models["lambda = beta, t ~ rho(t)"], _ = train_score_model(likelihood_objective, desc="training with lambda = beta")
if DSM_WEIGHTING == "likelihood":
    models["lambda = beta, t uniform"] = score_model
print(f"training: {time.perf_counter() - t0:.1f} s")

# 1. the bound: 1/2 Z E_{t ~ p}[s^2 ||s_theta - grad log q_t||^2] + KL(q_1 || N(0, I))
g = torch.Generator().manual_seed(SEED + 11)
t_bound = likelihood_times(N_EVAL, g)
mean_coef, std = sde.marginal(t_bound)
x_t = mean_coef[:, None] * mixture.sample(N_EVAL, g) + std[:, None] * torch.randn(N_EVAL, 2, generator=g, dtype=F64)
exact_at_t = exact_score(x_t, t_bound)
# KL(q_1 || N(0, I)) <= sum_k pi_k KL(N_k || N(0, I)) (KL is jointly convex), N_k = N(m mu_k, m^2 Sigma_k + s^2 I)
end_mean_coef, end_std = sde.marginal(1.0)
prior_kl = 0.0
for weight, mean, cov in zip(mixture.weights, mixture.means, mixture.covs, strict=True):
    cov_1 = end_mean_coef**2 * cov + end_std**2 * torch.eye(2, dtype=F64)
    kl_k = 0.5 * (cov_1.trace() + (end_mean_coef * mean).pow(2).sum() - 2 - torch.logdet(cov_1))
    prior_kl += (weight * kl_k).item()
# 2. the ODE likelihood of fresh points of q_{T_MIN}
start_mean_coef, start_std = sde.marginal(T_MIN)
x_eval = mixture.diffuse(start_mean_coef, start_std).sample(N_WEIGHT_LIKELIHOOD, g)
exact_eval = mixture.log_prob(x_eval, mean_coef=start_mean_coef, std=start_std)
# 3. samples, from one x_1
x_1 = sde.prior_sample((SW_N * WEIGHT_SETS, 2), generator=torch.Generator().manual_seed(SEED + 12), dtype=F64)
weight_floor = float(np.mean(floor_sets[:WEIGHT_SETS]))  # the floor and the bands for WEIGHT_SETS sets
weight_sw_band = 2 * np.std(one_set) / math.sqrt(WEIGHT_SETS)
weight_gap_band = 2 * gap_noise * math.sqrt(SW_SETS / WEIGHT_SETS)
t0 = time.perf_counter()

report, sq_errors, ode_log_likelihoods = {}, {}, {}
for name, model in tqdm(models.items(), desc="measuring the models", leave=False):
    score_fn = score_fn_of(model)
    with torch.no_grad():
        sq_errors[name] = (score_fn(x_t, t_bound) - exact_at_t).pow(2).sum(dim=1)  # ||s_theta - grad log q_t||^2
    per_point = 0.5 * Z * std**2 * sq_errors[name]  # one draw of the integral's estimate per (t, x_t)
    bound = (per_point.mean().item() + prior_kl, per_point.std().item() / math.sqrt(N_EVAL))
    result = ode_likelihood(score_fn, sde, x_eval, exact_divergence=True, t_min=T_MIN, rtol=WEIGHT_TOLERANCE,
                            atol=WEIGHT_TOLERANCE)
    ode_log_likelihoods[name] = result.log_likelihood
    shortfall = exact_eval - result.log_likelihood
    sde_samples = euler_maruyama(score_fn, sde, x_1, time_grid(WEIGHT_STEPS, t_min=T_MIN),
                                 generator=torch.Generator().manual_seed(SEED + 13))
    ode_samples = ode_heun(score_fn, sde, x_1, time_grid(WEIGHT_STEPS // 2, t_min=T_MIN))
    report[name] = dict(bound=bound, nfe=result.nfe, mean_ll=result.log_likelihood.mean().item(),
                        kl=(shortfall.mean().item(), shortfall.std().item() / math.sqrt(N_WEIGHT_LIKELIHOOD)),
                        sde=(sw_to_truth(sde_samples), log_prob_gap(sde_samples)),
                        ode=(sw_to_truth(ode_samples), log_prob_gap(ode_samples)))
print(f"measuring the models: {time.perf_counter() - t0:.1f} s")


def bits_per_dim_of(nats: float) -> float:
    return -nats / (2 * math.log(2))  # two coordinates


print(f"{'':26s} {'bound on KL, SDE':>17s} {'ODE: E log p':>13s} {'bits/dim':>9s} {'KL, ODE':>16s} "
      f"{'reverse SDE: SW / gap':>22s} {'ODE: SW / gap':>16s}")
print(f"{'exact (q at t_min)':26s} {0:17.3f} {exact_eval.mean():13.3f} {bits_per_dim_of(exact_eval.mean()):9.3f} "
      f"{0:16.3f} {weight_floor:13.3f} / {0:+.3f} {weight_floor:9.3f} / {0:+.3f}")
for name, r in report.items():
    print(f"{name:26s} {r['bound'][0]:9.3f} ± {r['bound'][1]:.3f} {r['mean_ll']:13.3f} "
          f"{bits_per_dim_of(r['mean_ll']):9.3f} {r['kl'][0]:8.3f} ± {r['kl'][1]:.3f} "
          f"{r['sde'][0]:13.3f} / {r['sde'][1]:+.3f} {r['ode'][0]:9.3f} / {r['ode'][1]:+.3f}")
print(f"(nats; KL(q_1 || prior) <= {prior_kl:.1e} is in the bound; ODE likelihoods of {N_WEIGHT_LIKELIHOOD} points, "
      f"NFE {', '.join(str(r['nfe']) for r in report.values())}; samples: {WEIGHT_STEPS} Euler-Maruyama steps, "
      f"{WEIGHT_STEPS // 2} Heun steps, {WEIGHT_SETS} sets of {SW_N}; bands: sliced W2 {weight_floor:.3f} ± "
      f"{weight_sw_band:.3f}, gap 0 ± {weight_gap_band:.3f})")

# the comparison, read by the code
base, other = "lambda = s^2", "lambda = beta, t ~ rho(t)"
bound_difference = report[other]["bound"][0] - report[base]["bound"][0]
bound_se = math.hypot(report[other]["bound"][1], report[base]["bound"][1])
paired = ode_log_likelihoods[other] - ode_log_likelihoods[base]  # the same points: a paired difference
paired_se = paired.std().item() / math.sqrt(N_WEIGHT_LIKELIHOOD)
bound_ratio = report[other]["bound"][0] / report[base]["bound"][0]
print(f"lambda = beta against lambda = s^2: the bound {bound_difference:+.3f} ± {bound_se:.3f} nats "
      f"({abs(bound_difference) / bound_se:.1f} standard errors; {bound_ratio:.2f} times the lambda = s^2 model's), "
      f"the ODE log-likelihood {paired.mean():+.3f} ± {paired_se:.3f} nats ({abs(paired.mean()) / paired_se:.1f} "
      f"standard errors)")
for sampler in ("sde", "ode"):
    sw_change = report[other][sampler][0] - report[base][sampler][0]
    gap_change = report[other][sampler][1] - report[base][sampler][1]
    within = abs(sw_change) <= weight_sw_band and abs(gap_change) <= weight_gap_band
    print(f"  {'reverse SDE' if sampler == 'sde' else 'ODE'} samples: sliced W2 {sw_change:+.3f} "
          f"(band ±{weight_sw_band:.3f}), gap {gap_change:+.3f} (band ±{weight_gap_band:.3f}): "
          + ("both changes within their bands" if within else "a change outside its band"))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
bins = np.geomspace(T_MIN, 1.0, 25)
which = torch.as_tensor(np.digitize(t_bound.numpy(), bins) - 1)
filled = [k for k in range(len(bins) - 1) if (which == k).any()]
centres = [math.sqrt(bins[k] * bins[k + 1]) for k in filled]
for name, sq_error in sq_errors.items():
    bound_integrand = 0.5 * sde.beta(t_bound) * sq_error  # what lambda = beta weighs, at each t
    eps_error = std**2 * sq_error  # ||eps_theta - E[eps | x_t]||^2: what lambda = s^2 weighs
    label = (name.replace("lambda", r"$\lambda$").replace("s^2", "$s^2$").replace("beta", r"$\beta$")
             .replace("t ~ rho(t)", r"$t \sim \rho(t)$").replace("t uniform", "$t$ uniform"))
    axes[0].plot(centres, [bound_integrand[which == k].mean() for k in filled], "o-", ms=3, label=label)
    axes[1].plot(centres, [eps_error[which == k].mean() for k in filled], "o-", ms=3, label=label)
axes[0].set(ylabel=r"$\frac{1}{2} g^2\,\mathbb{E}\|\mathbf{s}_\theta - \nabla\log q_t\|^2$",
            title=r"the bound's integrand (what $\lambda = \beta$ weighs)")
axes[1].set(ylabel=r"$s^2\,\mathbb{E}\|\mathbf{s}_\theta - \nabla\log q_t\|^2$",
            title=r"the noise predictor's error (what $\lambda = s^2$ weighs)")
for ax in axes:
    ax.set(xscale="log", yscale="log", xlabel="$t$")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
show(fig, OUT / "weighting.png")

# %% [markdown] id="weighting_read"
# How to read it. The last lines compare the two models for the run you just made. A full run (`DSM_STEPS` = 3000,
# the learning rate decayed to zero) trains both long enough to settle; fast mode's few hundred steps leave both far
# from it, so its numbers say mostly which weight learns faster, not which one ends better.
#
# - **The check** (first line): the two estimators of the $\lambda = \beta$ objective agree within their standard
#   errors, and one batch's value spreads several times less with importance-sampled times. That spread is noise in
#   every gradient step (What to try, item 2, trains with it).
# - **The bound** is what $\lambda = \beta$ is built to lower, and it falls, by many standard errors. The left figure
#   shows where the gain comes from: the $\lambda = \beta$ model is far more accurate at small $t$, where $s(t)$ is
#   small and the bound's integrand large, and gives a little back at large $t$. The right figure shows the same
#   errors as the $\lambda = s^2$ loss sees them, with the same weight at every $t$: that model spreads its effort
#   over all times instead.
# - **The ODE likelihood** belongs to another model. Theorem 1 bounds the reverse SDE's likelihood; the ODE driven by
#   the same learned score is a different map, and nothing forces its likelihood to follow the bound. In our full
#   run its paired difference between the two weights was within its standard error while the bound fell. (The bits
#   per dimension carry the same information: they exceed the exact value by the ODE's KL divided by $2\ln 2$.)
# - **The samples** moved by less than their bands in our full run: on this mixture, at this size, neither weight
#   gives visibly better samples. The lecture's trade-off, $\lambda = s^2$ for perceptual quality and $\lambda =
#   \beta$ for likelihood, is a statement about image models, whose samples are judged by FID and whose likelihood is
#   counted in bits per dimension. What the mixture shows, with every density known, is the mechanism: the two
#   weights train the network at different times.

# %% [markdown] id="summary"
# ## Summary
#
# - The score $\nabla \log p$ needs no normalising constant, and it is all that Langevin dynamics needs to sample.
#   On the clean data alone Langevin finds the modes but not their weights, and does not move between them: noise
#   levels fix both.
# - The forward SDE $d\mathbf{x} = f(t)\mathbf{x}\,dt + g(t)\,d\boldsymbol\omega$ is the continuous limit of DDPM's
#   chain (VP) or of a ladder of noise levels (VE), with Gaussian kernels $\mathbf{x}_t = m(t)\mathbf{x}_0 +
#   s(t)\boldsymbol\epsilon$ (VE: $s^2 = \sigma(t)^2 - \sigma_\text{min}^2$, or $\sigma(t)^2$ in score_sde's
#   convention). DDPM's schedule is the VP SDE on a grid, to $O(1/T)$.
# - The score of the noisy data is the posterior mean $\mathbb{E}[-\boldsymbol\epsilon/s \mid \mathbf{x}_t]$
#   (Tweedie's formula turns it into $\mathbb{E}[\mathbf{x}_0 \mid \mathbf{x}_t]$), so regressing the noise learns
#   it: DSM equals explicit score matching plus a constant. With $\lambda = s^2$ it is $L_\text{simple}$; with
#   $\lambda = g^2 = \beta$ it bounds the negative log-likelihood of the reverse SDE (not of the ODE).
# - The reverse SDE and the probability-flow ODE share the marginals $q_t$; one is stochastic, the other a
#   deterministic map with an exact likelihood. Euler's method steps the ODE by $-h_k\,\mathbf{F}(\mathbf{x}_k, t_k)$;
#   compare solvers at equal NFE.
# - The likelihood weighting needs its times drawn from $\rho(t) \propto \beta(t)/s(t)^2$ to train well; then it lowers
#   the bound it is built for. The ODE's likelihood and the samples are other measurements, and section 8 prints
#   whether they moved beyond their noise.
#
# ## What to try
#
# 1. Make the mixture harder: move two components close together, or give one a weight of 0.02. How do plain and
#    annealed Langevin (section 2) cope? Raise `LANGEVIN_STEPS` tenfold: do the fractions move?
# 2. Set `DSM_WEIGHTING = "likelihood"`: section 4 then trains with $\lambda = \beta$ and uniform times, and section 8
#    adds that model to its table. Where does its bound land between the other two? Relate it to the spread of one
#    batch's loss that section 8's first line prints.
# 3. Sample with the *trained* model instead of the exact score (pass `learned_score` to a solver of section 6).
#    Which solver suffers most from the errors at small $t$, and does stopping at a larger `T_MIN` help?
# 4. Run section 6 on the VE SDE (`ve`, with `mixture_score_fn(mixture, ve)` and `ve.prior_sample`). Which solvers
#    need more steps, and why does the last part of the path matter so much there?
# 5. Extend section 6's comparison to lesson 2's ancestral sampler: `sample(eps_model, ddpm, shape, sampler="ddpm",
#    num_steps=n)` with the exact eps-model of the last cell of section 6, at the NFE of the table. Where does it sit
#    between Euler-Maruyama and the ODE?
# 6. Change `snr` of `predictor_corrector` (0.05 to 0.5), or its `corrector_steps`. When does the corrector help at
#    equal NFE?
# 7. In section 7, use Hutchinson's estimator with several probes per point (call `ode_likelihood` several times
#    with different generators and average). How fast does the per-point error fall?
# 8. The discrete samplers of section 6 at 50 steps: run `ode_euler` and `ode_heun` yourself on the `ScheduleSDE` of
#    DDPM's schedule respaced to 50 steps, as the samplers `"ode_euler"` and `"ode"` do
#    (`score_solvers.ode_euler_sample` and `ode_sample`, with the `ScheduleSDE`'s `score_fn(eps_model)` and `times`),
#    stopping at the first grid time, and the same solvers on `VPSDE()` with the same grid of times. Compare the
#    log-density gaps with that of the exact $q_t$ at that time (`mixture.diffuse(m, s)`). Where does the discrete
#    grid lose its accuracy? (Hint: on `ScheduleSDE` the coefficients $f$ and $g$ are constant on each step and
#    jump between steps; `VPSDE`'s change smoothly. Which values does each Euler step use?)
# 9. Run section 8 with other values of `SEED` (the initial weights, the batches and the times all change). Which of
#    the printed differences keep their sign from seed to seed, and which were noise?
#
# **Where the code lives:** `ddpm_scratch/score.py` (the mixture, its exact eps- and score-models, `dsm_loss`),
# `ddpm_scratch/sde.py` (VP and VE SDEs, the reverse and probability-flow drifts, DDPM's schedule as a VP process),
# `ddpm_scratch/score_solvers.py` (Euler-Maruyama, predictor-corrector, Euler, Heun, RK45, and the samplers "sde",
# "pc", "ode", "ode_euler" on a discrete schedule), `ddpm_scratch/integrators.py` (the Heun step and the RK45
# wrapper), `ddpm_scratch/likelihood.py` (ODE likelihood, Hutchinson, bits per dimension), `ddpm_scratch/sampling.py`
# (the samplers by name).
