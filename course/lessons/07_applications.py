# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="title"
# # Lesson 7 — applications: editing, filling in, steering, conditioning, compressing, encoding
#
# A trained diffusion model is more than a sampler of new images. Because its reverse process passes through every
# noise level, one can *enter* it part-way, *overwrite* part of its state between steps, or *condition* its network on
# an image, and so edit, complete, steer or translate images the model never saw. This lesson puts the methods of the
# lecture's second applications part side by side on the course's 8x8 digits, each making the picture it exists to
# make, with a number that says whether it worked:
#
# 1. one model, many uses: the unconditional digits model that sections 2-4 steer without training anything new;
# 2. SDEdit: a stroke painting noised to a step $t_0$ and denoised from there, the realism/faithfulness trade-off
#    along $t_0$;
# 3. inpainting by replacement, and RePaint's resampling: first on a correlated 2-D Gaussian with the exact
#    $\boldsymbol\epsilon$, where the bias of plain replacement can be measured against the true conditional law,
#    then on the digits;
# 4. ILVR: samples that share a reference's coarse structure, across the down-sampling factor;
# 5. conditional models: Palette (one network for inpainting, uncropping and denoising, the task told by its input)
#    and SR3, the super-resolution stage of lesson 5's cascade given real low-resolution digits;
# 6. latent diffusion: an autoencoder, a diffusion model on its latents, against the pixel model;
# 7. diffusion autoencoders: a semantic code beside the DDIM-inverted $\mathbf{x}_T$, reconstructions and
#    interpolations.
#
# Sections 2-4 change how the *sampler* runs (a start step, or a hook between steps) and train nothing: they all use
# the model of section 1. Sections 5-7 train new models, each once, through the course's one training loop.
#
# **Notation.** Each symbol keeps one meaning in this lesson; where a paper uses another, it says so.
#
# - $\mathbf{x}_0$, $\mathbf{x}_t$, $\bar\alpha_t$, $T$ as in lessons 1-4: $q(\mathbf{x}_t \mid \mathbf{x}_0) =
#   \mathcal{N}(\sqrt{\bar\alpha_t}\,\mathbf{x}_0, (1 - \bar\alpha_t)\mathbf{I})$ on DDPM's linear schedule with
#   $T = 1000$; $\boldsymbol\epsilon_\theta(\mathbf{x}_t, t)$ the network's noise prediction.
# - $\mathbf{y}$: the image a method is given and its output must respect: SDEdit's *guide*, ILVR's *reference*,
#   Palette's *source*, SR3's *low-resolution input* (each section says which). $\mathbf{y}_t$ is $\mathbf{y}$ noised
#   to step $t$ by $q(\mathbf{y}_t \mid \mathbf{y})$, the forward process of lesson 1.
# - $t_0$: the step SDEdit starts its reverse process from (the paper writes it as a time in $[0, 1]$, our $t_0 / T$).
# - $\mathbf{m}$: a mask, 1 (True) where a pixel is *known*, 0 where it is to be generated; $\odot$ the product pixel
#   by pixel. (RePaint's prose uses the opposite convention; its equation 8 uses this one.)
# - $\phi_N$: ILVR's low-pass filter, the image averaged over $N\times N$ blocks and repeated back over each block;
#   $N$ the down-sampling factor.
# - $s$: the augmentation level of SR3's input, as in lesson 5's cascade.
# - $\mathbf{z}$: an autoencoder's latent (section 6), $\kappa$ the factor that scales it to unit variance;
#   $\mathbf{z}_\text{sem}$: a diffusion autoencoder's semantic code (section 7).
# - $j$: RePaint's jump length; $r$: how many times RePaint descends each segment of $j$ steps (RePaint's own $r$;
#   the package's `jumps` is $r - 1$, the climbs back up).
# - $\rho$, $a$: the correlation of section 3's 2-D Gaussian and the value of its known coordinate.
# - FD / floor: the Fréchet distance of a set of digits to the test digits in the course classifier's feature space,
#   divided by the distance real digits have (1 means as good as real digits; lessons 2 and 5). Every method below
#   runs on `N_TEST` test digits and as many train digits: errors are measured on the outputs for the test digits,
#   FD on those for the train digits, since outputs that rebuild the test digits themselves would score *below* the
#   floor (a perfect reconstruction of them has FD 0), while outputs made from train digits score 1 when they are as
#   good as real digits, the floor's own setting.
#
# Package modules used: `ddpm_scratch.applications` (`sdedit`, `inpainting`, `ilvr`, `masks`, `palette`,
# `super_resolution`, `latent`, `diffae`), lesson 4's `ddim` (inversion and `slerp`), lesson 5's `cascade`, and from
# the machinery the runs of `ddpm-scratch apply` (`machinery.applications`: the shared pixel model and the cached
# training `fit`; `pixel_runs`, `palette_runs`, `latent_runs`, `diffae_runs`) and `metrics.digits_fd`. Problem set 7
# asks for variants the package leaves out; this lesson shows the package's own versions only.
#
# With `DDPM_SCRATCH_FAST=1` every model is trained for a few steps only (`RunSettings(quick=True)`: the pictures then
# show noise, not digits, and the figures mean nothing) and every measurement uses a few test digits; the full run
# trains each model as `ddpm-scratch apply` does. Every trained model is kept in `outputs/07_applications/runs/`
# (`runs_fast/` in fast mode) and loaded, not trained again, when the lesson runs a second time; a folder that holds a
# model trained with other settings stops the cell with a message naming it (delete it to train afresh). Measured on
# two CPU cores shared with other work, fast mode with its five short trainings: 33-52 s at a load average of 2-4,
# 43-74 s at 8-9. The full run trains its models the first time (the pixel model, Palette, the SR stage, the two
# latent stages, the diffusion autoencoder; a model of the demo's size took 190-200 s on two quiet cores, about 15-20
# minutes in all), and afterwards only samples: 3.5 minutes (206 s at a load of 0.2-2, every model loaded). Every
# cell that takes more than a few seconds shows a progress bar.

# %% id="parameters" tags=["parameters"]
import os

from ddpm_scratch.machinery.notebook import lesson_output_dir

FAST = os.environ.get("DDPM_SCRATCH_FAST", "0") == "1"  # tests set DDPM_SCRATCH_FAST=1: a quick, smaller run
SEED = 0
THREADS = None  # torch threads; None: torch's default, one per core. On cores that other programs keep busy, 1 can
# be many times faster than several threads that wait for each other.
N_TEST = 16 if FAST else 360  # test digits per measured set (360: all of them)
SHOWN = 8  # test digits per picture
# 2. SDEdit: t0 = T * p / 100 for every p (all precomputed, for the slider)
SDEDIT_PERCENTS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
SDEDIT_STEPS = 5 if FAST else 40  # DDPM steps from t0 = T; a run from t0 < T takes its share (at least 2)
# 3. inpainting
RHO, A_KNOWN = 0.95, 1.5  # the 2-D Gaussian: correlation rho, the known coordinate's value a
GAUSSIAN_RUN = (dict(n=4000, num_steps=50, jumps=(0, 4), jump_length=5) if FAST else
                dict(n=20_000, num_steps=250, jumps=(0, 1, 4, 9), jump_length=10))  # RePaint: T = 250, j = 10
INPAINT_STEPS = 20 if FAST else 100  # DDPM steps of the digits' inpainting
INPAINT_JUMPS, INPAINT_JUMP_LENGTH = 4, (5 if FAST else 10)
HOLE = 4  # the unknown centre square, HOLE x HOLE pixels
# 4. ILVR
ILVR_FACTORS = (2, 4, 8)
ILVR_STEPS = 10 if FAST else 50
ILVR_DRAWS = 3  # samples per reference in the pictures
# 5. Palette and SR3 (DDIM, eta = 0, as the runs of `ddpm-scratch apply palette | sr3`)
CONDITIONAL_STEPS = 5 if FAST else 50
SR_LEVELS = (0.0, 0.2) if FAST else (0.0, 0.1, 0.2, 0.3)
# 6. latent diffusion (both models with the demo's sampler)
TIMING_BATCH = 32 if FAST else 256
# 7. diffusion autoencoders
CODING_STEPS = 10 if FAST else 100  # DDIM steps of the inversion and of the decoding

# Figures and trained models go to outputs/ of the course folder (the one holding lessons/), wherever the notebook
# was started from.
OUT = lesson_output_dir("07_applications")
RUNS = OUT / ("runs_fast" if FAST else "runs")

# %% id="setup"
import time

import matplotlib.pyplot as plt
import torch

from ddpm_scratch.applications.diffae import decode, encode, interpolate
from ddpm_scratch.applications.ilvr import ilvr, low_pass
from ddpm_scratch.applications.inpainting import inpaint, repaint_indices
from ddpm_scratch.applications.latent import sample_latent
from ddpm_scratch.applications.masks import centre_mask
from ddpm_scratch.applications.palette import DENOISE_SIGMA, TASKS, conditional_inpaint, corrupt, translate
from ddpm_scratch.applications.sdedit import sdedit, stroke_painting
from ddpm_scratch.applications.super_resolution import consistency, psnr
from ddpm_scratch.cascade import downsample, super_resolve, upsample
from ddpm_scratch.ddim import ddim_invert, slerp
from ddpm_scratch.forward import q_sample
from ddpm_scratch.machinery.applications import RunSettings, pixel_model
from ddpm_scratch.machinery.data import load_digits
from ddpm_scratch.machinery.demo import DEMO_SAMPLER, DEMO_SAMPLING_STEPS, DEMO_SPACING
from ddpm_scratch.machinery.diffae_runs import CODE_DIM, INTERPOLATION_ALPHAS, diffae_model
from ddpm_scratch.machinery.latent_runs import seconds_per_batch, train_latent
from ddpm_scratch.machinery.metrics import digits_classifier, digits_fd
from ddpm_scratch.machinery.notebook import explore, show
from ddpm_scratch.machinery.palette_runs import palette_model, sr3_model
from ddpm_scratch.machinery.pixel_runs import gaussian_inpainting_bias
from ddpm_scratch.machinery.viz import image_table
from ddpm_scratch.nets import count_parameters
from ddpm_scratch.sampling import sample

torch.manual_seed(SEED)  # only for code you add; every cell below passes its own seeded generator
torch.set_flush_denormal(True)  # arithmetic on subnormal floats is very slow on CPUs; round them to 0
if THREADS:
    torch.set_num_threads(THREADS)
SETTINGS = RunSettings(quick=FAST, seed=SEED)  # what every `ddpm-scratch apply` run takes (quick: 20 training steps)
x_test, y_test = (t[:N_TEST] for t in load_digits("test"))  # (N_TEST, 1, 8, 8) in [-1, 1], labels
train_images, train_labels = load_digits("train")
picked = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(SEED + 100))[:N_TEST]
x_both = torch.cat([x_test, train_images[picked]])  # every method runs on both halves (see FD / floor above)
classifier = digits_classifier()
# show(fig, path) saves a figure and displays it; explore(plot, **controls) adds sliders in a live notebook frontend.


def gen(offset: int = 0) -> torch.Generator:
    """A fresh generator seeded SEED + offset: each cell draws from its own."""
    return torch.Generator().manual_seed(SEED + offset)


def fd_ratio(x: torch.Tensor) -> float:
    """FD / floor of digits x (N, 1, 8, 8), clamped to [-1, 1] first."""
    return digits_fd(x.clamp(-1, 1), num_draws=2 if FAST else 5).ratio


def halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A method's outputs for x_both, split: (those for the test digits, those for the train digits)."""
    return x[:N_TEST], x[N_TEST:]


def millions(model: torch.nn.Module) -> float:
    """The model's parameters, in millions."""
    return count_parameters(model, trainable_only=False) / 1e6


def rms(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float:
    """Root mean square of a - b, over the pixels where `where` is True (all when None)."""
    d2 = (a - b).pow(2) if where is None else (a - b).pow(2)[where.expand_as(a)]
    return d2.mean().sqrt().item()


def same_class(x: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of the digits x that the course's digits classifier reads as `labels`."""
    with torch.no_grad():
        return (classifier(x.clamp(-1, 1)).argmax(1) == labels).float().mean().item()


def table(rows: dict, title: str, path: str, width: float = 0.6) -> None:
    """Show {row label: images (K, 1, 8, 8)} as a table of K columns, saved under OUT / path."""
    images = torch.stack([x.detach().clamp(-1, 1) for x in rows.values()])
    fig, ax = plt.subplots(figsize=(width * images.shape[1] + 1.8, width * len(rows) + 0.7))
    image_table(ax, images, [""] * images.shape[1], list(rows))
    ax.set_title(title, fontsize=9)
    show(fig, OUT / path)


# %% [markdown] id="model_intro"
# ## 1. One model, many uses
#
# Sections 2-4 use one unconditional model of the digits, the demo's recipe (`ddpm-scratch demo`: the course's U-Net,
# DDPM's linear schedule, the demo's number of training steps in full mode). `pixel_model(RUNS, SETTINGS)` trains it
# once in `RUNS / "pixel"` and loads it afterwards; the `ddpm-scratch apply sdedit | inpaint | ilvr` runs share it the
# same way. It was trained on nothing but clean digits, with $L_\text{simple}$: no strokes, no masks, no references.
# Everything below steers it from the outside.

# %% id="model"
start = time.perf_counter()
eps_model, schedule = pixel_model(RUNS, SETTINGS)
print(f"the pixel model: {millions(eps_model):.2f}M parameters, T = {schedule.T}, "
      f"{time.perf_counter() - start:.0f} s (trained, or loaded from {RUNS.name}/pixel)")
with torch.no_grad():
    unconditional = sample(eps_model, schedule, (SHOWN, 1, 8, 8), sampler="ddpm", num_steps=SDEDIT_STEPS,
                           generator=gen(1))
table({"test digits": x_test[:SHOWN], "samples": unconditional}, "the test digits and unconditional samples",
      "model_samples.png")

# %% [markdown] id="sdedit_intro"
# ## 2. SDEdit: edit by noising, then denoising
#
# SDEdit (Meng et al. 2022) turns a rough *guide* $\mathbf{y}$, here a stroke painting, into a realistic image that
# keeps its layout. A painting is not a sample of the data, so the reverse process cannot start from it; but noise
# hides the difference. Both a painting and a real digit, noised to step $t$, are the image shrunk by
# $\sqrt{\bar\alpha_t}$ under noise of standard deviation $\sqrt{1 - \bar\alpha_t}$, so the gap between them shrinks
# relative to the noise as $t$ grows, and at some $t_0$ a noised painting is a plausible $\mathbf{x}_{t_0}$. SDEdit
# draws
#
# $$\mathbf{x}_{t_0} \sim q(\mathbf{x}_{t_0} \mid \mathbf{x}_0 = \mathbf{y}) = \mathcal{N}\big(\sqrt{\bar\alpha_{t_0}}
# \,\mathbf{y},\; (1 - \bar\alpha_{t_0})\mathbf{I}\big)$$
#
# and runs the reverse process from $t_0$ down to 0 (`sdedit(eps_model, schedule, guide, t0)`, which is
# `sampling.sample(..., x_T=x_t0, t_start=t0)`: any sampler, started part-way). The choice of $t_0$ is the trade-off:
# a small $t_0$ keeps the guide (faithful, but the painting's blocks survive), a large one makes a clean digit that
# may have forgotten the guide (realistic, not faithful), and $t_0 = T$ ignores the guide altogether.
#
# The guides are `stroke_painting`s of test digits: the mean of each $2\times 2$ block, rounded to three grey levels.
# For every $t_0$ in `SDEDIT_PERCENTS` (per cent of $T$) the cell edits `N_TEST` guides, with the same noise
# $\boldsymbol\epsilon$ at every $t_0$ (the same seed: `sdedit`'s generator draws $\boldsymbol\epsilon$ first), and
# measures three things: the *gap* between the noised guide and the noised test digit it was painted from,
# $\sqrt{\bar\alpha_{t_0}}\,\lVert\mathbf{y} - \mathbf{x}_0\rVert_\text{RMS} / \sqrt{1 - \bar\alpha_{t_0}}$ (how far
# apart they are in units of the noise: below 1 the noise hides the difference), the realism of the edits (FD /
# floor), and their faithfulness, the RMS distance to the guide (and, for reference, to the digit the guide was
# painted from).

# %% id="sdedit"
guides = stroke_painting(x_both, block=2, levels=3)
test_guides, train_guides = halves(guides)
sdedit_noise = torch.randn(guides.shape, generator=gen(3))  # what sdedit's generator gen(3) draws first: its eps
sdedit_rows, edits, noised = [], {}, {}
start = time.perf_counter()
for p in SDEDIT_PERCENTS:
    t0 = schedule.T * p // 100
    steps = max(2, round(SDEDIT_STEPS * p / 100))
    with torch.no_grad():
        edits[p] = sdedit(eps_model, schedule, guides, t0, sampler="ddpm", num_steps=steps,
                          generator=gen(3)).clamp(-1, 1)
    noised[p] = (q_sample(schedule, guides[:SHOWN], t0, noise=sdedit_noise[:SHOWN]),  # x_t0 of the guides ...
                 q_sample(schedule, x_test[:SHOWN], t0, noise=sdedit_noise[:SHOWN]))  # ... and of the digits
    abar = schedule.alpha_bars[t0].item()
    on_test, on_train = halves(edits[p])
    sdedit_rows.append(dict(p=p, t0=t0, steps=steps, gap=(abar / (1 - abar)) ** 0.5 * rms(test_guides, x_test),
                            fd=fd_ratio(on_train), to_guide=rms(on_test, test_guides), to_digit=rms(on_test, x_test)))
guides_fd = fd_ratio(train_guides)
print(f"{N_TEST} test and {N_TEST} train guides, {time.perf_counter() - start:.0f} s; the guides themselves: FD / "
      f"floor {guides_fd:.2f}, RMS distance to their digits {rms(test_guides, x_test):.3f}")
print(f"{'t0':>5} {'t0/T':>5} {'DDPM steps':>10} {'gap / noise std':>16} {'FD / floor':>11} {'RMS to guide':>13} "
      f"{'RMS to digit':>13}")
for r in sdedit_rows:
    print(f"{r['t0']:>5} {r['p'] / 100:>5.1f} {r['steps']:>10} {r['gap']:>16.3f} {r['fd']:>11.2f} "
          f"{r['to_guide']:>13.3f} {r['to_digit']:>13.3f}")

fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw=dict(width_ratios=[1.2, 1]))
columns = torch.stack([x_test[:SHOWN], guides[:SHOWN], *[edits[p][:SHOWN] for p in SDEDIT_PERCENTS]])
image_table(left, columns.transpose(0, 1), ["digit", "guide"] + [f"{p / 100:g}T" for p in SDEDIT_PERCENTS])
left.set_title("SDEdit: each column edits the guides from t0 (same noise in every column)", fontsize=9)
x_axis = [r["p"] / 100 for r in sdedit_rows]
right.plot(x_axis, [r["fd"] for r in sdedit_rows], "o-", label="FD / floor of the edits (realism)")
right.plot(x_axis, [r["to_guide"] for r in sdedit_rows], "s-", label="RMS distance to the guide (faithfulness)")
right.plot(x_axis, [r["gap"] for r in sdedit_rows], "^:", label="gap between noised guide and digit / noise std")
right.axhline(guides_fd, color="0.6", ls="--", lw=1, label="FD / floor of the guides themselves")
right.set(xlabel="t0 / T", yscale="log", title="the trade-off in t0 (lower is better for both measures)")
right.legend(fontsize=8)
show(fig, OUT / "sdedit.png")

# %% [markdown] id="sdedit_explore_intro"
# **Explore.** Move $t_0$ (per cent of $T$; every value was computed above): the noised guides $\mathbf{x}_{t_0}$
# beside the test digits noised with the same $\boldsymbol\epsilon$, and the edits. Where the two noised rows look
# alike, the model cannot tell a painting from a digit, and its edit is a digit.

# %% id="sdedit_explore"
def sdedit_at(t0_percent: int) -> None:
    p = min(SDEDIT_PERCENTS, key=lambda q: abs(q - t0_percent))
    row = sdedit_rows[SDEDIT_PERCENTS.index(p)]
    from_guide, from_digit = noised[p]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    image_table(ax, torch.stack([guides[:SHOWN], from_guide.clamp(-1, 1), from_digit.clamp(-1, 1),
                                 edits[p][:SHOWN], x_test[:SHOWN]]),
                [""] * SHOWN, ["guide y", "x_t0 from y", "x_t0 from the digit", "edit", "digit"])
    ax.set_title(f"t0 = {row['t0']} ({p / 100:g} T): gap / noise std {row['gap']:.2f}, edits' FD / floor "
                 f"{row['fd']:.2f}", fontsize=9)
    show(fig, OUT / "sdedit_explore.png")


explore(sdedit_at, t0_percent=(50, 10, 100, 10))

# %% [markdown] id="sdedit_read"
# Read the table from the top. The gap column is set by the schedule alone: at the smallest $t_0$ it is above 1, the
# noise is smaller than the difference between painting and digit, and the edit stays close to its guide; by
# $t_0 = T$ it is nearly 0. The two measures pull against each other. The distance to the guide grows with $t_0$, as
# more of the guide is drowned, up to the last row, an unconditional sample that knows nothing of its guide. The
# edits' FD is what the larger $t_0$ buys: from the guides' own (blocky paintings, far from digits) towards the FD of
# the model's samples. Useful edits lie in between, where the gap has fallen below 1 but the distance to the guide is
# still well below the last row's; the SDEdit paper found $t_0 / T$ between about 0.3 and 0.6 for stroke paintings
# (on far larger images). In fast mode the model has seen twenty batches and the FD column means nothing. The last
# column is a reminder of what SDEdit does not do: the edit is *a* digit that fits the painting, not the digit the
# painting was made from. (Problem set 7 picks $t_0$ by a target signal-to-noise ratio instead of a fraction of $T$.)

# %% [markdown] id="gaussian_intro"
# ## 3. Inpainting: replacement, and why it needs resampling
#
# Inpainting asks for the unknown pixels given the known ones, $\mathbf{x}_0 \sim p(\mathbf{x}_0 \mid
# \mathbf{m}\odot\mathbf{x}_0 = \mathbf{m}\odot\mathbf{y})$, from a model trained on whole images only. *Replacement*
# (Song et al. 2021's imputation; RePaint's equation 8) runs the reverse process on the whole image and, after every
# step, overwrites the known pixels with the known image noised to the step the state is at:
#
# $$\mathbf{x}_{t-1} \leftarrow \mathbf{m}\odot\mathbf{y}_{t-1} + (1 - \mathbf{m})\odot\mathbf{x}_{t-1},
# \qquad \mathbf{y}_{t-1} \sim q(\mathbf{y}_{t-1} \mid \mathbf{y}),$$
#
# with $\mathbf{y}_0 = \mathbf{y}$ at the last step, so the known pixels come out exactly (`inpaint(..., jumps=0)`; the
# overwrite is a hook, `replacement_hook`, which any sampler takes). It is not exact. Each step draws the known part
# afresh from the forward process, independently of the unknown part the model has been building, and one denoising
# step can only partly reconcile the two: the model sees a state whose halves do not quite belong together, and the
# unknown pixels lean towards what they would be without the known ones.
#
# **RePaint's resampling** (Lugmayr et al. 2022) gives them time: every $j$ steps on the way down, the state goes
# back up $j$ steps by the forward kernel $q(\mathbf{x}_{t+1} \mid \mathbf{x}_t)$ and comes down again, the known part
# replaced at every step; each descent starts from a state whose parts were denoised together. `inpaint(...,
# jumps=..., jump_length=j)` goes back up `jumps` times per segment of $j$ steps, so each segment is descended
# $r$ = `jumps` + 1 times, and `repaint_indices` lists the steps it visits.
#
# **A case with the answer known.** On a 2-D Gaussian $\mathbf{x} \sim \mathcal{N}\big(\mathbf{0},
# \big(\begin{smallmatrix}1 & \rho\\ \rho & 1\end{smallmatrix}\big)\big)$ the exact $\boldsymbol\epsilon$ is known in
# closed form (lesson 2), so the model makes no error and whatever the sampler gets wrong is the method's. Given the
# first coordinate $x_1 = a$, the second is $\mathcal{N}(\rho a, 1 - \rho^2)$. `gaussian_inpainting_bias` inpaints
# `n` copies of the pair with $x_1$ known, on the linear schedule respaced to `num_steps` steps, for each number of
# jumps, and returns the mean and spread of the inpainted $x_2$ with the number of network calls; the truth is in the
# last two columns.

# %% id="gaussian"
print("RePaint's path for 12 steps, jump_length 3, jumps 1:", repaint_indices(12, 1, 3))
start = time.perf_counter()
gaussian_rows = gaussian_inpainting_bias(rho=RHO, a=A_KNOWN, seed=SEED, **GAUSSIAN_RUN)
print(f"rho = {RHO}, a = {A_KNOWN}; {GAUSSIAN_RUN['n']} inpaintings per row, {GAUSSIAN_RUN['num_steps']} steps, "
      f"jump_length {GAUSSIAN_RUN['jump_length']}: {time.perf_counter() - start:.0f} s")
print(f"{'jumps':>5} {'network calls':>14} {'mean of x2':>17} {'bias':>8} {'bias / (truth - 0)':>19} "
      f"{'std of x2':>10} {'truth mean':>11} {'truth std':>10}")
for r in gaussian_rows:
    print(f"{r['jumps']:>5} {r['calls']:>14} {r['mean']:>9.4f} +- {r['se']:.4f} {r['bias']:>+8.4f} "
          f"{r['bias'] / r['truth mean']:>+19.3f} {r['std']:>10.4f} {r['truth mean']:>11.4f} {r['truth std']:>10.4f}")

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.errorbar([r["calls"] for r in gaussian_rows], [r["bias"] for r in gaussian_rows],
            yerr=[2 * r["se"] for r in gaussian_rows], fmt="o-", capsize=3)
for r in gaussian_rows:
    ax.annotate(f"jumps = {r['jumps']}", (r["calls"], r["bias"]), textcoords="offset points", xytext=(6, 4),
                fontsize=8)
ax.axhline(0, color="0.5", lw=1)
ax.set(xscale="log", xlabel="network calls", ylabel="mean of x2 minus rho a",
       title="replacement's bias with the exact eps, and RePaint's resampling (2 s.e. bars)")
ax.title.set_fontsize(9)
show(fig, OUT / "gaussian_bias.png")

# %% [markdown] id="gaussian_read"
# With the exact $\boldsymbol\epsilon$ and no resampling the inpainted $x_2$ falls short of the true conditional mean
# $\rho a$ by many standard errors (the first row; the relative column says what share of the way from the prior
# mean 0 is missing): replacement is biased towards the unconditional law, whatever the network. Resampling cuts the
# bias, at the price of proportionally more network calls (the rows below the first); compare the spread of $x_2$
# with the truth's too. This is RePaint's case made where nothing but the method can err; on images its authors found
# that resampling beats spending the same network calls on more steps. (Problem set 7 derives the true conditional for
# any set of known coordinates.)
#
# **On the digits.** The centre $4\times 4$ of every test digit is unknown (`centre_mask`): a quarter of the pixels,
# where the strokes usually cross. The cell inpaints it by replacement and by RePaint with `INPAINT_JUMPS` jumps of
# `INPAINT_JUMP_LENGTH` steps, on the same `INPAINT_STEPS`-step schedule, and measures the RMS error on the unknown
# pixels against the true digit, how far any known pixel moved (zero by construction), FD / floor, the share the
# digits classifier reads as the true class, and the seconds.

# %% id="inpaint"
mask = centre_mask(2 * N_TEST, 8, 8, HOLE)  # (2 N_TEST, 1, 8, 8), True = known
test_mask = mask[:N_TEST]
inpainted, inpaint_rows = {}, []
for name, options in {"replacement": dict(jumps=0),
                      f"RePaint, {INPAINT_JUMPS} jumps of {INPAINT_JUMP_LENGTH}": dict(
                          jumps=INPAINT_JUMPS, jump_length=INPAINT_JUMP_LENGTH)}.items():
    start = time.perf_counter()
    x = inpaint(eps_model, schedule, x_both, mask, num_steps=INPAINT_STEPS, generator=gen(4), progress=True,
                **options).clamp(-1, 1)
    seconds = time.perf_counter() - start
    (x, on_train), known_moved = halves(x), (x - x_both)[mask.expand_as(x)].abs().max().item()
    inpainted[name] = x
    inpaint_rows.append((name, rms(x, x_test, ~test_mask), known_moved, fd_ratio(on_train), same_class(x, y_test),
                         seconds))
mean_fill = torch.where(mask, x_both, train_images.mean(0, keepdim=True))  # a fill that knows no context
inpaint_rows.append(("the mean train digit (no model)", rms(halves(mean_fill)[0], x_test, ~test_mask), 0.0,
                     fd_ratio(halves(mean_fill)[1]), same_class(halves(mean_fill)[0], y_test), 0.0))
print(f"{N_TEST} test and {N_TEST} train digits, the centre {HOLE}x{HOLE} unknown, {INPAINT_STEPS} steps")
print(f"{'method':>32} {'RMS error, unknown':>19} {'largest change, known':>22} {'FD / floor':>11} "
      f"{'true class':>11} {'seconds':>8}")
for name, error, moved, fd, agree, seconds in inpaint_rows:
    print(f"{name:>32} {error:>19.3f} {moved:>22.1e} {fd:>11.2f} {agree:>11.2f} {seconds:>8.1f}")
table({"truth": x_test[:SHOWN], "known": torch.where(test_mask, x_test, -1)[:SHOWN],
       **{name: x[:SHOWN] for name, x in inpainted.items()}},
      f"inpainting the centre {HOLE}x{HOLE} (black in the second row)", "inpaint.png")

# %% [markdown] id="inpaint_read"
# Both methods keep every known pixel exactly (the printed largest change) and fill the hole with what the model
# makes of the border; the mean digit, which ignores the known pixels, is the fill without any context. Do not rank
# fills by their RMS error alone: the hole has several plausible contents, and a *sample* of them misses the truth by
# about twice the posterior variance, while the posterior *mean* (a blur) misses it by the variance once, so a blurry
# fill can score a lower error than a good sample. The FD column (do the results look like digits) and the class
# column (does the fill agree with the border) say more. RePaint pays for its resampling with several times the
# network calls (the seconds). Section 5 sets a *conditional* model beside them.

# %% [markdown] id="ilvr_intro"
# ## 4. ILVR: steering by a reference's low frequencies
#
# ILVR (Choi et al. 2021) steers the unconditional model towards a *reference* $\mathbf{y}$ without any training.
# After every reverse step it replaces the low frequencies of the state by those of the reference noised to the same
# step:
#
# $$\mathbf{x}_{t-1} \leftarrow \phi_N(\mathbf{y}_{t-1}) + \big(\mathbf{x}_{t-1} - \phi_N(\mathbf{x}_{t-1})\big),
# \qquad \mathbf{y}_{t-1} \sim q(\mathbf{y}_{t-1} \mid \mathbf{y}),$$
#
# where $\phi_N$ is a low-pass filter: down-sample by $N$, up-sample back. The package's `low_pass` takes the mean of
# each $N\times N$ block and repeats it over the block, a projection ($\phi_N(\phi_N(\mathbf{x})) = \phi_N(\mathbf{x})$;
# the paper resizes with bicubic filters, which are only nearly one), so at the end $\phi_N(\mathbf{x}_0) =
# \phi_N(\mathbf{y})$ exactly and the model has invented only what $\phi_N$ throws away. $N$ is the knob: on an 8x8
# digit, $N = 2$ fixes the means of its sixteen $2\times 2$ blocks (a $4\times 4$ image), $N = 8$ only the mean of
# the whole image. `ilvr(eps_model, schedule, reference, N)` is the sampler with a hook, like replacement.
#
# The cell runs ILVR for each $N$ in `ILVR_FACTORS` towards `N_TEST` test digits and measures the largest gap
# $|\phi_N(\mathbf{x}_0) - \phi_N(\mathbf{y})|$, FD / floor, the share of samples read as the reference's class, and
# the RMS distance to the reference; for the pictures, `ILVR_DRAWS` samples of each of the first `SHOWN` references.

# %% id="ilvr"
references = x_both
ilvr_rows, ilvr_draws = [], {}
start = time.perf_counter()
for N in ILVR_FACTORS:
    with torch.no_grad():
        x = ilvr(eps_model, schedule, references, N, num_steps=ILVR_STEPS, generator=gen(5))
        draws = ilvr(eps_model, schedule, x_test[:SHOWN].repeat(ILVR_DRAWS, 1, 1, 1), N, num_steps=ILVR_STEPS,
                     generator=gen(6))
    ilvr_draws[N] = draws.clamp(-1, 1).reshape(ILVR_DRAWS, SHOWN, 1, 8, 8)
    on_test, on_train = halves(x.clamp(-1, 1))
    ilvr_rows.append(dict(N=N, gap=(low_pass(x, N) - low_pass(references, N)).abs().max().item(),
                          fd=fd_ratio(on_train), agree=same_class(on_test, y_test), distance=rms(on_test, x_test)))
print(f"ILVR towards {N_TEST} test and {N_TEST} train digits, {ILVR_STEPS} DDPM steps, "
      f"{time.perf_counter() - start:.0f} s")
print(f"{'N':>3} {'low-pass size':>14} {'largest |phi_N(x0) - phi_N(y)|':>32} {'FD / floor':>11} "
      f"{'class of y':>11} {'RMS to y':>9}")
for r in ilvr_rows:
    size = f"{8 // r['N']}x{8 // r['N']}"
    print(f"{r['N']:>3} {size:>14} {r['gap']:>32.1e} {r['fd']:>11.2f} "
          f"{r['agree']:>11.2f} {r['distance']:>9.3f}")

rows = {"reference y": x_test[:SHOWN]}
for N in ILVR_FACTORS:
    rows[f"phi_{N}(y)"] = low_pass(x_test[:SHOWN], N)
    rows[f"N = {N}: sample"] = ilvr_draws[N][0]
table(rows, "ILVR across the factor N: samples share phi_N(y), the model invents the rest", "ilvr.png")

# %% [markdown] id="ilvr_explore_intro"
# **Explore.** Move $k$ to set $N = 2^k$ (the factors computed above): several samples for the same references, and
# their low-pass images, which agree with the reference's.

# %% id="ilvr_explore"
def ilvr_at(k: int) -> None:
    N = min(ILVR_FACTORS, key=lambda n: abs(n - 2 ** int(k)))
    draws = ilvr_draws[N]
    rows = {"reference y": x_test[:SHOWN], f"phi_{N}(y)": low_pass(x_test[:SHOWN], N)}
    rows.update({f"sample {i + 1}": draws[i] for i in range(ILVR_DRAWS)})
    rows[f"phi_{N}(sample 1)"] = low_pass(draws[0], N)
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 0.7))
    image_table(ax, torch.stack(list(rows.values())), [""] * SHOWN, list(rows))
    row = ilvr_rows[ILVR_FACTORS.index(N)]
    ax.set_title(f"N = {N}: samples read as the reference's class {row['agree']:.2f}, RMS to y {row['distance']:.3f}",
                 fontsize=9)
    show(fig, OUT / "ilvr_explore.png")


explore(ilvr_at, k=(2, 1, 3, 1))

# %% [markdown] id="ilvr_read"
# The low-pass gap is at the level of float rounding for every $N$: the samples share $\phi_N(\mathbf{y})$ exactly, as
# the projection promises, and differ only in what $\phi_N$ removes (move the slider: the samples differ, their
# low-pass images do not). What is shared shrinks as $N$ grows: with $N = 2$ the $4\times 4$ image of block means
# leaves the model little freedom, with $N = 8$ only the image's mean brightness is fixed and a sample is nearly an
# unconditional one. The class and distance columns measure that progression (in fast mode the model is barely
# trained); the ILVR paper shows it with pictures of faces across factors. (Problem set 7 writes a Fourier low-pass
# and ILVR's step with it.)

# %% [markdown] id="palette_intro"
# ## 5. Conditional models: Palette and SR3
#
# Sections 2-4 used a model that never saw a mask or a reference. The other road trains a *conditional* model
# $p(\mathbf{x}_0 \mid \mathbf{y})$ on pairs: the network reads $\mathbf{y}$ as extra input channels beside
# $\mathbf{x}_t$ and is trained with the usual loss,
#
# $$\mathbb{E}_{\mathbf{x}_0, \mathbf{y}, t, \boldsymbol\epsilon}\,\big\lVert \boldsymbol\epsilon -
# \boldsymbol\epsilon_\theta(\mathbf{x}_t, t; \mathbf{y}) \big\rVert^2,$$
#
# the lecture's formulation of both SR3 ($\mathbf{y}$ a low-resolution image) and Palette ($\mathbf{y}$ any input
# image). **Palette** (Saharia et al. 2022) trains *one* model for several tasks; the package's (`applications.
# palette`) learns three on the digits, the task told by its input, the source $\mathbf{y}$ and the mask
# $\mathbf{m}$ as channels: inpainting (a random box unknown, `random_box_masks`), uncropping (one half known) and
# denoising (no pixel known, the source noised with standard deviation `DENOISE_SIGMA`). `palette_model(RUNS,
# SETTINGS)` trains it once (`ddpm-scratch apply palette`'s model), and `translate(network, schedule, source, mask)`
# samples any registered sampler on it. The cell corrupts the test digits for each task with `corrupt` and translates
# them back, with `CONDITIONAL_STEPS` DDIM steps.

# %% id="palette"
start = time.perf_counter()
palette_network, palette_schedule = palette_model(RUNS, SETTINGS)
print(f"Palette: {millions(palette_network):.2f}M parameters, {time.perf_counter() - start:.0f} s "
      f"(trained, or loaded)")
palette_rows, palette_pictures = {}, {}
for i, task in enumerate(TASKS):
    source, task_mask = corrupt(x_both, task, generator=gen(10 + i))
    with torch.no_grad():
        x, on_train = halves(translate(palette_network, palette_schedule, source, task_mask, sampler="ddim",
                                       num_steps=CONDITIONAL_STEPS, generator=gen(20 + i)).clamp(-1, 1))
    source, task_mask = halves(source)[0], halves(task_mask)[0]
    unknown = task_mask == 0
    palette_rows[task] = (rms(x, x_test, unknown), rms(source.clamp(-1, 1), x_test, unknown), fd_ratio(on_train),
                          same_class(x, y_test), psnr(x, x_test).mean().item())
    palette_pictures[f"{task}: source"] = source[:SHOWN]
    palette_pictures[f"{task}: Palette"] = x[:SHOWN]
print(f"{'task':>8} {'RMS error where m = 0':>22} {'the source there':>17} {'FD / floor':>11} {'true class':>11} "
      f"{'PSNR (dB)':>10}")
for task, (error, source_error, fd, agree, db) in palette_rows.items():
    print(f"{task:>8} {error:>22.3f} {source_error:>17.3f} {fd:>11.2f} {agree:>11.2f} {db:>10.1f}")
table({**palette_pictures, "truth": x_test[:SHOWN]},
      f"one Palette model, three tasks told by its input (unknown pixels 0 in the source; denoising sigma = "
      f"{DENOISE_SIGMA})", "palette.png")

# %% [markdown] id="palette_inpaint_intro"
# **Conditional against replacement.** The same centre holes as section 3, filled by the Palette model
# (`conditional_inpaint`): it saw such boxes in training, but it is only *conditioned* on the known pixels, so it
# does not keep them exactly, while replacement puts them back by construction.

# %% id="palette_inpaint"
with torch.no_grad():
    conditional, conditional_train = halves(conditional_inpaint(
        palette_network, palette_schedule, x_both, mask, sampler="ddim", num_steps=CONDITIONAL_STEPS,
        generator=gen(30)).clamp(-1, 1))
print(f"{'centre ' + str(HOLE) + 'x' + str(HOLE):>32} {'RMS error, unknown':>19} {'largest change, known':>22} "
      f"{'FD / floor':>11} {'true class':>11}")
for name, error, moved, fd, agree, _ in inpaint_rows[:2]:
    print(f"{name:>32} {error:>19.3f} {moved:>22.1e} {fd:>11.2f} {agree:>11.2f}")
print(f"{'Palette (conditional)':>32} {rms(conditional, x_test, ~test_mask):>19.3f} "
      f"{(conditional - x_test)[test_mask.expand_as(conditional)].abs().max().item():>22.1e} "
      f"{fd_ratio(conditional_train):>11.2f} {same_class(conditional, y_test):>11.2f}")
table({"known": torch.where(test_mask, x_test, -1)[:SHOWN], **{name: x[:SHOWN] for name, x in inpainted.items()},
       "Palette": conditional[:SHOWN], "truth": x_test[:SHOWN]},
      "the centre holes: unconditional model with replacement or RePaint, and the conditional model", "inpaint_all.png")

# %% [markdown] id="sr3_intro"
# **SR3** (Saharia et al. 2021) is the same idea for super-resolution: $\mathbf{y}$ is a low-resolution image,
# up-sampled to the output's size and read as a channel. Lesson 5 built exactly this network as the second stage of a
# cascade (`cascade.super_resolve`), trained with noise conditioning augmentation: $\mathbf{y}$ corrupted at a level
# $s$ the network is told. There its input came from a base model; given *real* $4\times 4$ digits it is SR3.
# `sr3_model(RUNS, SETTINGS)` trains that stage once (`ddpm-scratch apply sr3`'s model, $s \sim U(0, 0.5)$ in
# training). The cell averages the test digits down to $4\times 4$ and super-resolves them at each level in
# `SR_LEVELS`, beside bilinear up-sampling, with three measures: PSNR to the true digit (it rewards the blurry mean),
# *consistency* (the output averaged back down against $\mathbf{y}$: zero means it explains its input), and FD /
# floor (does it look like a digit).

# %% id="sr3"
start = time.perf_counter()
sr_network, sr_schedule = sr3_model(RUNS, SETTINGS)
print(f"the SR stage: {millions(sr_network):.2f}M parameters, {time.perf_counter() - start:.0f} s")
low = downsample(x_both, 4)  # y: (2 N_TEST, 1, 4, 4)
low_test = halves(low)[0]


def sr_measures(x: torch.Tensor) -> tuple[float, float, float, float]:
    """PSNR, consistency, true class on the test half of x (outputs for x_both); FD / floor on the train half."""
    on_test, on_train = halves(x)
    return (psnr(on_test, x_test).mean().item(), consistency(on_test, low_test).mean().item(), fd_ratio(on_train),
            same_class(on_test, y_test))


bilinear = upsample(low, 8)
sr_rows = {"bilinear": sr_measures(bilinear)}
sr_pictures = {"input y (4x4)": torch.nn.functional.interpolate(low[:SHOWN], size=8), "bilinear": bilinear[:SHOWN]}
for s in SR_LEVELS:
    with torch.no_grad():
        x = super_resolve(sr_network, sr_schedule, low, size=8, aug_level=s, sampler="ddim",
                          num_steps=CONDITIONAL_STEPS, generator=gen(40)).clamp(-1, 1)
    sr_rows[f"SR3, s = {s:g}"] = sr_measures(x)
    sr_pictures[f"SR3, s = {s:g}"] = x[:SHOWN]
print(f"{'4x4 -> 8x8':>14} {'PSNR (dB)':>10} {'consistency':>12} {'FD / floor':>11} {'true class':>11}")
for name, (db, cons, fd, agree) in sr_rows.items():
    print(f"{name:>14} {db:>10.2f} {cons:>12.4f} {fd:>11.2f} {agree:>11.2f}")
table({**sr_pictures, "truth": x_test[:SHOWN]}, "SR3 on real 4x4 test digits, by augmentation level s", "sr3.png")

# %% [markdown] id="conditional_read"
# **Reading section 5** (in fast mode the models have seen twenty batches; read the full run). One Palette network
# does all three tasks, told apart by nothing but its input. Unlike replacement it is only *conditioned* on the known
# pixels: the printed largest change of a known pixel is not zero (a conditional model would need a replacement step
# to keep them exactly). The same caution about RMS errors as in section 3 applies: a sharp sample of a hole misses
# the truth by more than a blurry guess would. The SR3 table makes that point for PSNR, which rewards the blurry mean:
# bilinear up-sampling is smooth and can score well on PSNR while it looks nothing like a digit (its FD), whereas the
# diffusion model's sharper outputs are judged by FD and by *consistency*, whether they average back down to their
# input. Across $s$, more augmentation tells the network to trust $\mathbf{y}$ less, so its outputs may drift from
# their input; which level is best on *real* inputs is measured here, and need not be the one that did best in lesson
# 5's cascade, where the input came from a base model.

# %% [markdown] id="latent_intro"
# ## 6. Latent diffusion
#
# Latent diffusion (Rombach et al. 2022) splits generation in two. An autoencoder maps an image to a smaller latent
# $\mathbf{z}$ and back, trained first, with a very weak KL term towards $\mathcal{N}(\mathbf{0}, \mathbf{I})$ that
# only keeps $\mathbf{z}$ from drifting. A diffusion model then learns the latents, scaled by $\kappa = 1 /
# \operatorname{std}(\mathbf{z})$ so that the noise schedule sees unit-variance data as it was designed for (without
# it the signal-to-noise ratio at every $t$ is off by $\operatorname{Var}(\mathbf{z})$), and a sample is decoded once,
# at the end. The network never spends a call on detail the decoder handles. `train_latent(RUNS, SETTINGS)` trains
# both stages (`ddpm-scratch apply latent`'s): an autoencoder from the $1\times 8\times 8$ digits to a latent of half
# the height and width (its shape is printed) and a U-Net $\boldsymbol\epsilon$-network on the latents. The cell
# compares it with the pixel model of section 1 under the same sampler (the demo's, printed): samples, FD / floor, the
# seconds to draw a batch of `TIMING_BATCH` (decoding included), the parameters, and the autoencoder's own
# reconstruction error and FD (a latent model can do no better than its decoder).

# %% id="latent"
start = time.perf_counter()
stages = train_latent(RUNS, SETTINGS)
space, latent_eps = stages.space, stages.eps_model
print(f"two stages, {time.perf_counter() - start:.0f} s (trained, or loaded); latent shape {space.shape}, "
      f"kappa = 1 / std(z) = {space.scale:.3f}")
how = dict(sampler=DEMO_SAMPLER, num_steps=DEMO_SAMPLING_STEPS, spacing=DEMO_SPACING)  # the demo's sampler
print(f"sampler: {DEMO_SAMPLER}, {DEMO_SAMPLING_STEPS} {DEMO_SPACING} steps, for both models")
with torch.no_grad():
    latent_samples = sample_latent(latent_eps, stages.schedule, space, N_TEST, generator=gen(50), **how)
    pixel_samples = sample(eps_model, schedule, (N_TEST, 1, 8, 8), generator=gen(50), **how).clamp(-1, 1)
    reconstructed, reconstructed_train = halves(space.decode(space.encode(x_both, sample=False)).clamp(-1, 1))
    latent_seconds = seconds_per_batch(lambda: sample_latent(latent_eps, stages.schedule, space, TIMING_BATCH,
                                                             generator=gen(51), **how), repeats=1 if FAST else 3)
    pixel_seconds = seconds_per_batch(lambda: sample(eps_model, schedule, (TIMING_BATCH, 1, 8, 8), generator=gen(51),
                                                     **how), repeats=1 if FAST else 3)
print(f"{'':>30} {'FD / floor':>11} {'seconds per batch':>18} {'parameters':>11}")
print(f"{'latent model (+ decoder)':>30} {fd_ratio(latent_samples):>11.2f} {latent_seconds:>18.3f} "
      f"{millions(latent_eps) + millions(space.autoencoder.decoder):>10.3f}M")
print(f"{'pixel model':>30} {fd_ratio(pixel_samples):>11.2f} {pixel_seconds:>18.3f} "
      f"{millions(eps_model):>10.3f}M")
print(f"{'autoencoder reconstructions':>30} {fd_ratio(reconstructed_train):>11.2f}   (RMS error on the test digits "
      f"{rms(reconstructed, x_test):.3f})")
print(f"sampling speed-up of the latent model: {pixel_seconds / latent_seconds:.1f}x")
table({"test digits": x_test[:SHOWN], "reconstructed": reconstructed[:SHOWN], "latent model": latent_samples[:SHOWN],
       "latent model ": latent_samples[SHOWN:2 * SHOWN], "pixel model": pixel_samples[:SHOWN],
       "pixel model ": pixel_samples[SHOWN:2 * SHOWN]}, "latent against pixel diffusion, same sampler",
      "latent.png")

# %% [markdown] id="latent_read"
# The latent model draws a batch faster than the pixel model (the printed speed-up, which holds in fast mode too: the
# cost of a call does not depend on training). Its network is not smaller (the parameters column), but its
# convolutions run over a latent of half the height and width, a quarter of the pixel model's positions, and the
# decoder runs once, after the last step. What the latent model can reach is set by the autoencoder: its
# reconstructions' FD is what a perfect model of the latents would score, and how far the samples' FD lies above it
# is the latent diffusion model's own error. On $512\times 512$ images with a latent eight times smaller per side
# (Stable Diffusion's autoencoder) the same split is what makes training and sampling affordable, and the
# autoencoder, trained once, serves every diffusion model built on it.

# %% [markdown] id="diffae_intro"
# ## 7. Diffusion autoencoders
#
# Lesson 4's DDIM inversion already encodes an image: $\mathbf{x}_T$ decodes back to $\mathbf{x}_0$. But that code is
# shaped like the image, looks like noise, and a straight line between two codes means nothing. A *diffusion
# autoencoder* (Preechakul et al. 2022, DiffAE) splits the code in two: a small semantic code $\mathbf{z}_\text{sem} =
# \mathrm{Enc}(\mathbf{x}_0)$ (`CODE_DIM` numbers) that conditions the denoiser, $\boldsymbol\epsilon_\theta(
# \mathbf{x}_t, t, \mathbf{z}_\text{sem})$, and the DDIM-inverted $\mathbf{x}_T$ of the conditioned denoiser, which
# keeps whatever $\mathbf{z}_\text{sem}$ leaves out. Encoder and denoiser are trained together on
# $L_\text{simple}$ alone (`diffae_loss`); the code is worth something to the denoiser only where it carries what the
# noisy $\mathbf{x}_t$ has lost, which at large $t$ is what the image *is*. The lesson trains the digits' DiffAE of
# `ddpm-scratch apply diffae` (`diffae_model(RUNS, SETTINGS)`: `diffae_network`, the course's U-Net reading the
# code, trained once by the package's cached loop `fit`), then encodes one test digit of each class (`encode`:
# $\mathbf{z}_\text{sem}$ and $\mathbf{x}_T$), decodes with the inferred $\mathbf{x}_T$ and with fresh noise in its
# place, and interpolates between pairs of digits (`interpolate`: $\mathbf{z}_\text{sem}$ on a straight line,
# $\mathbf{x}_T$ along `slerp`). Beside them, the pixel model's own DDIM codes: $\mathbf{x}_T$ alone, inverted with
# `ddim_invert` and interpolated by `slerp`.

# %% id="diffae"
start = time.perf_counter()
diffae, diffae_schedule = diffae_model(RUNS, SETTINGS)
print(f"DiffAE: {millions(diffae):.2f}M parameters (code of {CODE_DIM} numbers), "
      f"{time.perf_counter() - start:.0f} s (trained, or loaded)")

all_test, all_labels = load_digits("test")  # all of them: one of each class
one_each = torch.stack([(all_labels == c).nonzero()[0, 0] for c in range(10)])  # one test digit per class
digits10 = all_test[one_each]
z_sem, x_T = encode(diffae, diffae_schedule, digits10, num_steps=CODING_STEPS)
recon = decode(diffae, diffae_schedule, z_sem, x_T, num_steps=CODING_STEPS).clamp(-1, 1)
fresh = [decode(diffae, diffae_schedule, z_sem, torch.randn(x_T.shape, generator=gen(60 + k)),
                num_steps=CODING_STEPS).clamp(-1, 1) for k in range(2)]
print(f"one test digit per class: reconstruction RMS error {rms(recon, digits10):.3f} with the inferred x_T; with "
      f"fresh x_T ~ N(0, I), RMS {rms(fresh[0], digits10):.3f} and read as the digit's class "
      f"{same_class(torch.cat(fresh), all_labels[one_each].repeat(2)):.2f}")
table({"test digit": digits10, "inferred x_T": recon, "fresh x_T (1)": fresh[0], "fresh x_T (2)": fresh[1]},
      "DiffAE: decoding z_sem with the inferred x_T, or with fresh noise", "diffae_reconstruction.png")

# %% id="interpolation"
PAIRS = ((0, 6), (1, 7), (3, 8))
ends_a, ends_b = torch.tensor([a for a, _ in PAIRS]), torch.tensor([b for _, b in PAIRS])
path = interpolate(diffae, diffae_schedule, (z_sem[ends_a], x_T[ends_a]), (z_sem[ends_b], x_T[ends_b]),
                   INTERPOLATION_ALPHAS, num_steps=CODING_STEPS).clamp(-1, 1)  # (pairs, alphas, 1, 8, 8)
pixel_T = ddim_invert(eps_model, schedule, digits10, num_steps=CODING_STEPS)
with torch.no_grad():
    pixel_path = torch.stack([sample(eps_model, schedule, (len(PAIRS), 1, 8, 8), sampler="ddim",
                                     num_steps=CODING_STEPS, x_T=slerp(pixel_T[ends_a], pixel_T[ends_b], alpha))
                              for alpha in INTERPOLATION_ALPHAS], dim=1).clamp(-1, 1)
rows = {}
for i, (a, b) in enumerate(PAIRS):
    rows[f"{a} -> {b}: DiffAE"] = path[i]
    rows[f"{a} -> {b}: pixel x_T"] = pixel_path[i]
fig, ax = plt.subplots(figsize=(0.6 * len(INTERPOLATION_ALPHAS) + 2.2, 0.6 * len(rows) + 0.8))
image_table(ax, torch.stack(list(rows.values())), [f"{alpha:g}" for alpha in INTERPOLATION_ALPHAS], list(rows))
ax.set_title("interpolation (alpha on top): DiffAE (z_sem lerp, x_T slerp) and the pixel model's DDIM x_T (slerp)",
             fontsize=9)
show(fig, OUT / "interpolation.png")
with torch.no_grad():
    labels_along = torch.stack([classifier(p).argmax(1) for p in path])  # (pairs, alphas)
    pixel_labels_along = torch.stack([classifier(p).argmax(1) for p in pixel_path])
print("the digits classifier along each path (DiffAE | pixel x_T):")
for i, (a, b) in enumerate(PAIRS):
    print(f"  {a} -> {b}: {' '.join(map(str, labels_along[i].tolist()))} | "
          f"{' '.join(map(str, pixel_labels_along[i].tolist()))}")

# %% [markdown] id="diffae_read"
# **Reading section 7.** With the inferred $\mathbf{x}_T$ the decoder is a DDIM run back from the inversion, so the
# digit comes back up to the inversion's discretisation error (the first error printed). With fresh noise in place of
# $\mathbf{x}_T$, only $\mathbf{z}_\text{sem}$ is left: the share read as the digit's class says how much of what
# the digit *is* the `CODE_DIM` numbers carry (in fast mode, nothing yet). Along an interpolation, DiffAE moves
# $\mathbf{z}_\text{sem}$ on a straight line, and the classifier's readings show where the class flips; the pixel
# model's path has only $\mathbf{x}_T$ to move, a code shaped like the image with no meaning of its own. DiffAE's paper
# found its paths smooth and meaningful where DDIM's are not; compare the two rows of each pair. The paper also edits
# attributes by moving $\mathbf{z}_\text{sem}$ along the normal of a linear classifier fitted on the codes and decoding
# with the image's own $\mathbf{x}_T$ (`ddpm-scratch apply diffae` makes that picture for 7s turned into 1s).

# %% [markdown] id="summary"
# ## What to remember
#
# - A trained model is entered or steered between steps without retraining: SDEdit starts the reverse process at
#   $t_0$ from a noised guide (`t_start`); replacement and ILVR overwrite part of the state after every step (a hook).
# - SDEdit's $t_0$ trades faithfulness for realism: noise hides the gap between guide and data once it is larger than
#   the gap; too much noise forgets the guide.
# - Replacement keeps the known pixels exactly but is biased towards the unconditional law, even with the exact
#   $\boldsymbol\epsilon$; RePaint's resampling (each segment of $j$ steps descended $r$ times, climbing back up by
#   the forward kernel in between) cuts the bias at a proportional price in network calls.
# - ILVR imposes $\phi_N$ of the reference; with a projection as $\phi_N$ the samples share it exactly, and $N$ sets how
#   much is shared.
# - Conditional models (Palette, SR3) read $\mathbf{y}$ as input channels and are trained on pairs with the usual
#   loss: one model can serve several tasks, told apart by its input; conditioning does not keep known pixels exactly.
#   PSNR rewards blur; judge super-resolution by consistency and sample quality too.
# - Latent diffusion moves the model to a smaller, rescaled latent ($\kappa = 1/\operatorname{std}(\mathbf{z})$):
#   cheaper calls, bounded by the autoencoder's reconstructions.
# - A diffusion autoencoder's semantic code carries what an image is; the DDIM-inverted $\mathbf{x}_T$ the rest:
#   together they reconstruct, and the code interpolates and edits meaningfully.
#
# **Problem set 7** (`assignments/ps7_applications`) has you write what the package leaves out: SDEdit's start chosen
# by a target signal-to-noise ratio, a DDIM inpainting loop with replacement on a plain $\bar\alpha$ tensor, the
# Gaussian conditional for any set of known coordinates, a Fourier low-pass and ILVR's step with it, and RePaint's
# schedule in the paper's $r$ convention.
#
# ## What to try
#
# 1. In section 2, paint coarser guides (`stroke_painting(x, block=4, levels=2)`). Does the best $t_0$ move up?
# 2. In section 3, set `rho` to 0.5 or 0.99 in `gaussian_inpainting_bias`. How does the bias of replacement scale with
#    the correlation, and how many jumps does each need?
# 3. In section 3, give replacement as many network calls as RePaint by running more steps (`num_steps`). Which is
#    better at equal cost, on the Gaussian and on the digits?
# 4. In section 4, pass `until=` to `ilvr` so that only the noisier steps are conditioned. What happens to the
#    low-pass gap and to the class agreement?
# 5. In section 5, inpaint with `translate` and a half mask (`masks.half_mask`) and compare with replacement on the
#    same halves.
# 6. Run `ddpm-scratch apply --list` in a terminal, then `ddpm-scratch apply diffae --out runs/apps` for the DiffAE
#    attribute edit.
#
# **Where the code lives:** `ddpm_scratch/applications/` (`sdedit.py`, `inpainting.py`, `ilvr.py`, `masks.py`,
# `palette.py`, `super_resolution.py`, `latent.py`, `diffae.py`), `ddpm_scratch/cascade.py` (SR3's stage),
# `ddpm_scratch/ddim.py` (`ddim_invert`, `slerp`), `ddpm_scratch/nets/autoencoder.py`, and the runs of `ddpm-scratch
# apply` in `ddpm_scratch/machinery/` (`applications.py`, `pixel_runs.py`, `palette_runs.py`, `latent_runs.py`,
# `diffae_runs.py`).
