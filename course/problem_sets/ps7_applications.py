# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] id="intro"
# # Problem set 7 — Applications: SDEdit from a noisy guide, inpainting with DDIM, the Gaussian truth, ILVR, RePaint
#
# A trained unconditional model can do more than draw samples. Without any new training it edits a rough guide
# (SDEdit: noise the guide part of the way, then denoise), fills the unknown pixels of an image (inpainting: put the
# known pixels back after every step) and steers its samples towards a reference image (ILVR: impose the
# reference's low frequencies after every step). All three change the state between the steps of a sampler, or the
# step it starts from, and leave the network alone.
#
# Lesson 7 and the course package `ddpm_scratch` start SDEdit from a clean guide at a step you choose, inpaint with
# DDPM's ancestral sampler and fresh noise for the known pixels (with RePaint's resampling numbered the package's
# way), and filter ILVR's references with block means. This problem set takes the roads the package does not: SDEdit
# from a guide that is already noisy, at the step a target signal-to-noise ratio picks; inpainting with DDIM's
# deterministic sampler, the known pixels put back in the prediction $\hat{\mathbf{x}}_0$; the exact conditional law
# that inpainting should sample, for Gaussian data; ILVR with a Fourier low-pass filter; and RePaint's schedule in the
# convention of the authors' code, with what it costs. The hidden tests check what can be checked exactly: the
# noised guide has the law $q(\mathbf{x}_{t_0} \mid \mathbf{y})$, the inpainted known pixels equal the given ones to
# the last bit, the conditional is the one the joint density gives, the sample's low-pass component is the
# reference's, and the schedule is the code's:
#
# | part | what you show | points |
# |---|---|---|
# | A | SDEdit's start: the step a target SNR picks, and a noisy guide noised only by what it lacks | 4 |
# | B | inpainting with DDIM ($\eta = 0$), the known pixels put back in $\hat{\mathbf{x}}_0$ | 5 |
# | C | the Gaussian conditional of the unknown coordinates (Schur complement): the truth inpainting aims at | 4 |
# | D | ILVR with a Fourier low-pass filter, a projection; ILVR's step | 4 |
# | E | RePaint's jump schedule as the authors' code numbers it, and its cost in network calls | 3 |
#
# **How to work.** Fill in every cell that says `YOUR CODE HERE` (remove the `raise NotImplementedError()`) and keep
# the names and signatures: the grader calls them. The cell after each answer holds tests: the visible ones check
# your answer on inputs where the usual slips give other numbers and say what they expected and what came; hidden
# ones run at grading time, over every type and shape a part allows, and compare your functions with independent
# computations (moments of many draws against $q(\mathbf{x}_{t_0} \mid \mathbf{y})$ with error bars from the sample
# size, sampling loops written out step by step, the conditional density as a ratio of `torch.distributions`
# densities, the Fourier filter as a sum of cosines, the authors' schedule transcribed). Write your answers with
# `torch` and `math`; do not import `ddpm_scratch` (its functions answer other questions: the hidden tests tell them
# apart). You may use your answers to earlier parts in later ones. You may add cells of your own to experiment:
# grading runs them too but scores only the answer cells, so keep them quick (and do not copy, delete or re-create
# the given cells).
#
# **Conventions.** As in the earlier problem sets: `alpha_bars` is a float64 tensor of shape `(T+1,)`, index $t$ is
# the lecture's $t$ and index 0 is the data ($\bar\alpha_0 = 1$); $\bar\alpha_t$ decreases strictly and lies in
# $(0, 1)$ for $t = 1..T$, $T \ge 1$. The forward process is $\mathbf{x}_t = \sqrt{\bar\alpha_t}\,\mathbf{x}_0 +
# \sqrt{1-\bar\alpha_t}\,\boldsymbol\epsilon$ and $\mathrm{SNR}_t = \bar\alpha_t / (1 - \bar\alpha_t)$. Batches have
# shape `(B, ...)`: `(B, D)` vectors or `(B, C, H, W)` images, float32 or float64; an answer returns the data's dtype.
# An eps-model is called as `eps_model(x_t, t)` with `t` a `(B,)` tensor of dtype `torch.long` (training steps in
# $1..T$) and returns $\hat{\boldsymbol\epsilon}$ of `x_t`'s shape. A mask is a bool tensor, **True where the pixel
# is known**, of the data's shape or broadcasting to it with size-1 axes (`(B, 1, H, W)` for images). Whatever is
# drawn at random is drawn with the `generator` given (a `torch.Generator`, or `None` for torch's global one).
#
# **Notation.** $\mathbf{y}$ is a guide or a reference image, $\mathbf{m}$ a mask, $\odot$ the product entry by
# entry; $t_0$ is SDEdit's start step; $\hat{\boldsymbol\epsilon}$ and $\hat{\mathbf{x}}_0 = (\mathbf{x}_t -
# \sqrt{1-\bar\alpha_t}\,\hat{\boldsymbol\epsilon}) / \sqrt{\bar\alpha_t}$ are the model's predictions at
# $(\mathbf{x}_t, t)$. In Part C, $k$ indexes the known coordinates and $u$ the unknown ones; $\boldsymbol\Sigma_{uk}$
# is the block of rows $u$ and columns $k$.
#
# The setup cell gives you `linear_alpha_bars(T)` (DDPM's linear schedule, stretched to $T$ steps) and
# `gaussian_eps_model(mean, cov, alpha_bars)`, the exact $\hat{\boldsymbol\epsilon} = \mathbb{E}[\boldsymbol\epsilon
# \mid \mathbf{x}_t]$ of Gaussian data $\mathbf{x}_0 \sim \mathcal{N}(\boldsymbol\mu, \boldsymbol\Sigma)$: a perfect
# network, for vectors `(B, D)`.

# %% id="setup"
import itertools
import math

import torch
from torch import Tensor

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the tensors here are small: one thread is faster than two that wait for each other


def linear_alpha_bars(T: int) -> Tensor:
    """alpha_bar_0..alpha_bar_T (T+1,) float64 of DDPM's linear schedule (beta from 1e-4 to 0.02 for T = 1000),
    with the betas scaled by 1000 / T so that any T ends as noisy as T = 1000 does (and capped at 0.999)."""
    betas = (torch.linspace(1e-4, 0.02, T, dtype=torch.float64) * (1000 / T)).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def gaussian_eps_model(mean: Tensor, cov: Tensor, alpha_bars: Tensor):
    """The exact eps-prediction of data x0 ~ N(mean, cov), mean (D,), cov (D, D): eps_model(x_t, t) for x_t (B, D),
    t (B,) long. x_t ~ N(sqrt(a) mean, a cov + (1 - a) I) with a = alpha_bar_t, and
    E[eps | x_t] = sqrt(1 - a) (a cov + (1 - a) I)^-1 (x_t - sqrt(a) mean)."""

    def eps_model(x_t: Tensor, t: Tensor) -> Tensor:
        a = alpha_bars.to(torch.float64)[t][:, None, None]  # (B, 1, 1)
        eye = torch.eye(mean.numel(), dtype=torch.float64)
        cov_t = a * cov.to(torch.float64) + (1 - a) * eye  # (B, D, D)
        centred = x_t.to(torch.float64) - a[:, :, 0].sqrt() * mean.to(torch.float64)
        return ((1 - a[:, :, 0]).sqrt() * torch.linalg.solve(cov_t, centred)).to(x_t.dtype)

    return eps_model


# %% [markdown] id="part_a"
# ## Part A — SDEdit's start: a target SNR and a noisy guide (4 points)
#
# SDEdit turns a guide $\mathbf{y}$ (a stroke painting, a damaged photograph) into a sample of the model: it draws
# $\mathbf{x}_{t_0} \sim q(\mathbf{x}_{t_0} \mid \mathbf{x}_0 = \mathbf{y})$ and runs the reverse process from step
# $t_0$ to 0. The step $t_0$ is the knob: little noise keeps the guide (and its flaws), much noise forgets it. A step
# number means nothing across schedules, so here the knob is a target signal-to-noise ratio: $t_0$ is the **first**
# step whose $\mathrm{SNR}_t$ is at most the target, the least noise that brings the guide down to it.
#
# Guides are often noisy themselves: a photograph taken in the dark is $\mathbf{g} = \mathbf{y} + s\,\mathbf{n}$,
# with $\mathbf{n} \sim \mathcal{N}(\mathbf{0}, \mathbf{I})$ and a known noise level $s \ge 0$. Noising
# $\mathbf{g}$ as if it were clean adds too much noise: the state would be noisier than step $t_0$ says, and the
# model would leave noise in its output. Find the $c \ge 0$ for which
#
# $$\mathbf{x}_{t_0} = \sqrt{\bar\alpha_{t_0}}\,\mathbf{g} + c\,\boldsymbol\epsilon, \qquad \boldsymbol\epsilon
# \sim \mathcal{N}(\mathbf{0}, \mathbf{I}) \text{ independent of } \mathbf{n},$$
#
# has exactly the law $q(\mathbf{x}_{t_0} \mid \mathbf{x}_0 = \mathbf{y})$ given the clean $\mathbf{y}$. Such a $c$
# exists only where the schedule's noise at $t_0$ covers the guide's own: so $t_0$ is the first step $t$ in $1..T$
# with **both** $\mathrm{SNR}_t \le$ `snr` and $s^2\,\mathrm{SNR}_t \le 1$ (equality allowed: then no noise is
# added). Compare $\mathrm{SNR}_t = \bar\alpha_t / (1-\bar\alpha_t)$ in float64 as written. If no step qualifies,
# raise a `ValueError` whose message names `snr`. Draw $\boldsymbol\epsilon$ with one call, `torch.randn(guide.shape,
# generator=generator, dtype=guide.dtype)`, and nothing else at random.
#
# *Your function must accept:* `alpha_bars` as in the conventions ($T \ge 1$, up to a few thousand); `guide` a
# float32 or float64 tensor `(B, ...)` (vectors or images, $B \ge 1$); `snr` a positive float; `guide_std` the
# guide's $s$, a float $\ge 0$ (default 0: a clean guide, plain SDEdit); `generator` a `torch.Generator` or `None`.
# *It returns* `(x_t0, t0)`: a tensor of `guide`'s shape and dtype, and $t_0$ as a Python `int`.

# %% id="sdedit" kind="solution"
def sdedit_start(alpha_bars: Tensor, guide: Tensor, snr: float, *, guide_std: float = 0.0,
                 generator: torch.Generator | None = None) -> tuple[Tensor, int]:
    """(x_t0, t0): t0 the first step with SNR_t <= snr and guide_std^2 SNR_t <= 1; x_t0 ~ q(x_t0 | y) for the clean y
    behind guide = y + guide_std * n."""
    ### BEGIN SOLUTION
    abar = alpha_bars.to(torch.float64)
    ratios = abar[1:] / (1 - abar[1:])  # SNR_1..SNR_T
    fits = (ratios <= snr) & (guide_std**2 * ratios <= 1)
    if not bool(fits.any()):
        raise ValueError(f"no step reaches snr = {snr} (SNR_T = {float(ratios[-1]):.4g}) with guide_std = {guide_std}")
    t0 = int(torch.nonzero(fits)[0, 0]) + 1  # the first qualifying step
    a = float(abar[t0])
    # the guide already carries variance a s^2 after the scaling: add only what lacks to reach 1 - a
    missing = math.sqrt(max(0.0, 1 - a * (1 + guide_std**2)))
    eps = torch.randn(guide.shape, generator=generator, dtype=guide.dtype)
    return math.sqrt(a) * guide + missing * eps, t0
    ### END SOLUTION


# %% id="sdedit_tests" kind="tests" points=4
# A schedule with exact SNRs: alpha_bar_1..6 = 15/16, 7/8, 3/4, 1/2, 1/4, 1/8, so SNR_t = 15, 7, 3, 1, 1/3, 1/7.
#   snr = 2:  the first step with SNR <= 2 is t0 = 4 (SNR 1), not 3 (the last step with SNR >= 2, or the nearest)
#   snr = 3:  t0 = 3 (equality counts)
#   snr = 100, guide_std = 1:   s^2 SNR_t <= 1 first at t0 = 4: alpha_bar = 1/2 and c = 0 (the guide's own noise
#                               is all the noise step 4 needs): x_t0 = sqrt(1/2) guide, exactly
#   snr = 100, guide_std = 0.5: s^2 SNR_t <= 1 means SNR_t <= 4: t0 = 3, alpha_bar = 3/4, and c^2 = 1 - 3/4 (1 + 1/4)
#                               = 1/16: x_t0 = sqrt(3/4) guide + eps / 4 (not eps / 16, nor sqrt(1/4) eps)
_abars = torch.tensor([1.0, 15 / 16, 7 / 8, 3 / 4, 1 / 2, 1 / 4, 1 / 8])
_guide = torch.tensor([[0.5, -1.0, 0.25], [1.0, 0.0, -0.75]])
for _snr, _std, _t0, _scale, _c in ((2.0, 0.0, 4, 0.5**0.5, 0.5**0.5), (3.0, 0.0, 3, 0.75**0.5, 0.5),
                                    (100.0, 1.0, 4, 0.5**0.5, 0.0), (100.0, 0.5, 3, 0.75**0.5, 0.25)):
    _got = sdedit_start(_abars, _guide, _snr, guide_std=_std, generator=torch.Generator().manual_seed(7))
    assert isinstance(_got, tuple) and len(_got) == 2, f"expected a pair (x_t0, t0), got {type(_got).__name__}"
    _x, _step = _got
    assert isinstance(_step, int) and not isinstance(_step, bool) and _step == _t0, \
        f"snr = {_snr}, guide_std = {_std}: expected t0 = {_t0} (a Python int), got {_step!r}"
    _eps = torch.randn(_guide.shape, generator=torch.Generator().manual_seed(7), dtype=_guide.dtype)
    _want = _scale * _guide + _c * _eps
    assert isinstance(_x, Tensor) and _x.shape == _guide.shape and _x.dtype == _guide.dtype, \
        f"expected x_t0 of the guide's shape {tuple(_guide.shape)} and dtype {_guide.dtype}, got " \
        f"{getattr(_x, 'dtype', type(_x).__name__)} {tuple(getattr(_x, 'shape', ()))}"
    assert torch.allclose(_x, _want, rtol=1e-12, atol=1e-12), \
        f"snr = {_snr}, guide_std = {_std}, t0 = {_t0}: expected sqrt(alpha_bar) guide + {_c} eps = {_want.tolist()} " \
        f"(eps = torch.randn(guide.shape, generator=...) seeded 7), got {_x.tolist()}"
# Images in float32: the dtype is kept, and the same generator seed gives the same draw
_image = torch.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4).float()
_x, _step = sdedit_start(_abars, _image, 0.5, generator=torch.Generator().manual_seed(3))
_again, _ = sdedit_start(_abars, _image, 0.5, generator=torch.Generator().manual_seed(3))
assert _step == 5 and _x.dtype == torch.float32 and _x.shape == (2, 3, 4, 4), \
    f"(2, 3, 4, 4) float32, snr = 0.5: expected t0 = 5 and float32 of that shape, got {_step}, {_x.dtype}, " \
    f"{tuple(_x.shape)}"
assert torch.equal(_x, _again), "the same generator seed must give the same x_t0 (draw with `generator`)"
try:
    sdedit_start(_abars, _guide, 0.1)
except ValueError as _error:
    assert "snr" in str(_error), f"the message must name snr, got: {_error}"
else:
    raise AssertionError("snr = 0.1 is below SNR_T = 1/7: expected a ValueError naming snr")
print("Part A: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _first_step(abars, snr, std):
    # the definition, one step at a time, with plain floats
    for t in range(1, len(abars)):
        ratio = abars[t] / (1 - abars[t])
        if ratio <= snr and std**2 * ratio <= 1:
            return t
    return None


def _cosine_abars(T):
    f = [math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(T + 1)]
    return torch.tensor([v / f[0] for v in f[:-1]] + [max(f[-1] / f[0], 1e-12)])


_g = torch.Generator().manual_seed(70)
_random_abars = torch.cat([torch.ones(1), torch.sort(torch.rand(9, generator=_g) * 0.98 + 0.01, descending=True)[0]])
# 1) The step: against the definition, on DDPM's linear and the cosine schedule (T = 1000), a random one, T = 1, the
# exact one above (ties included), and a range of targets and guide noise levels
for _abars_here in (linear_alpha_bars(1000), _cosine_abars(1000), _random_abars, torch.tensor([1.0, 0.3]),
                    torch.tensor([1.0, 15 / 16, 7 / 8, 3 / 4, 1 / 2, 1 / 4, 1 / 8]), linear_alpha_bars(7)):
    _floats = _abars_here.tolist()
    for _snr in (1e4, 15.0, 7.0, 3.0, 2.0, 1.0, 0.5, 1 / 3, 0.2, 1e-3, 1e-5):
        for _std in (0.0, 0.1, 0.5, 1.0, 3.0):
            _want = _first_step(_floats, _snr, _std)
            _where = f"T = {len(_floats) - 1}, snr = {_snr}, guide_std = {_std}"
            if _want is None:
                try:
                    sdedit_start(_abars_here, torch.zeros(2, 3), _snr, guide_std=_std)
                except ValueError as _error:
                    assert "snr" in str(_error), f"{_where}: the message must name snr: {_error}"
                else:
                    raise AssertionError(f"{_where}: no step qualifies, expected a ValueError naming snr")
                continue
            _x, _step = sdedit_start(_abars_here, torch.zeros(2, 3), _snr, guide_std=_std,
                                     generator=torch.Generator().manual_seed(1))
            assert isinstance(_step, int) and not isinstance(_step, bool) and _step == _want, \
                f"{_where}: expected t0 = {_want}, got {_step!r}"
# 2) The draw itself, for every shape and dtype: sqrt(alpha_bar) guide + c eps with eps the generator's one draw
for _shape, _dtype in (((1, 1), torch.float64), ((5, 3), torch.float32), ((2, 3, 4, 4), torch.float64),
                       ((1, 1, 2, 2), torch.float32), ((4, 7), torch.float64)):
    _guide = torch.randn(_shape, generator=_g).to(_dtype)
    for _abars_here, _snr, _std in ((linear_alpha_bars(1000), 0.3, 0.0), (linear_alpha_bars(1000), 5.0, 0.7),
                                    (_random_abars, 1.0, 0.2), (torch.tensor([1.0, 0.3]), 1.0, 0.5)):
        _t0 = _first_step(_abars_here.tolist(), _snr, _std)
        _a = float(_abars_here[_t0])
        _c = math.sqrt(max(0.0, 1 - _a - _a * _std**2))
        _x, _step = sdedit_start(_abars_here, _guide, _snr, guide_std=_std, generator=torch.Generator().manual_seed(5))
        _eps = torch.randn(_shape, generator=torch.Generator().manual_seed(5), dtype=_dtype)
        _want = math.sqrt(_a) * _guide.double() + _c * _eps.double()
        _tol = 1e-12 if _dtype == torch.float64 else 1e-5
        assert isinstance(_x, Tensor) and _x.shape == _shape and _x.dtype == _dtype, \
            f"guide {_shape} {_dtype}: got {getattr(_x, 'dtype', type(_x).__name__)} {tuple(getattr(_x, 'shape', ()))}"
        assert torch.allclose(_x.double(), _want, rtol=_tol, atol=_tol), \
            f"guide {_shape} {_dtype}, snr = {_snr}, guide_std = {_std}: x_t0 is not sqrt(alpha_bar) guide + c eps"
# 3) The law: y fixed, guide = y + s n with the test's n, many draws. Given y, x_t0 must be N(sqrt(a) y, (1 - a) I):
# the mean of each coordinate within 5 standard errors sqrt((1 - a) / n), the variance within 5 sqrt(2 / (n - 1))
# relative standard errors (the per-coordinate variance of n Gaussian draws), and no correlation across coordinates
_n = 20000
_y = torch.tensor([0.8, -0.4, 0.0, 1.5])
for _abars_here, _snr, _std in ((linear_alpha_bars(1000), 1.0, 0.0), (linear_alpha_bars(1000), 10.0, 0.3),
                                (linear_alpha_bars(1000), 100.0, 0.6), (_random_abars, 0.5, 1.2)):
    _noisy = _y + _std * torch.randn(_n, 4, generator=_g)
    _x, _t0 = sdedit_start(_abars_here, _noisy, _snr, guide_std=_std, generator=torch.Generator().manual_seed(11))
    _a = float(_abars_here[_t0])
    _where = f"snr = {_snr}, guide_std = {_std}, t0 = {_t0}"
    _mean_error = (_x.mean(0) - math.sqrt(_a) * _y).abs().max()
    assert _mean_error < 5 * math.sqrt((1 - _a) / _n), \
        f"{_where}: the mean of x_t0 given y is off by {float(_mean_error):.4g} (expected sqrt(alpha_bar) y)"
    _var = _x.var(0)
    assert ((_var / (1 - _a) - 1).abs() < 5 * math.sqrt(2 / (_n - 1))).all(), \
        f"{_where}: the variance of x_t0 given y is {_var.tolist()}, expected 1 - alpha_bar = {1 - _a:.6g}"
    _corr = torch.corrcoef(_x.T)[0, 1:]
    assert (_corr.abs() < 5 / math.sqrt(_n)).all(), f"{_where}: the coordinates of x_t0 are correlated: {_corr}"
# 4) The generator: its draws, not the global generator's (which must stay untouched), and a generator used twice
# gives two different draws
torch.manual_seed(123)
_expected_global = torch.rand(3)
torch.manual_seed(123)
_shared = torch.Generator().manual_seed(9)
_first, _ = sdedit_start(linear_alpha_bars(100), torch.zeros(3, 2), 1.0, generator=_shared)
_second, _ = sdedit_start(linear_alpha_bars(100), torch.zeros(3, 2), 1.0, generator=_shared)
assert torch.equal(torch.rand(3), _expected_global), "the global random generator was used: draw with `generator`"
assert not torch.equal(_first, _second), "the generator's state must advance: two calls gave the same draw"
### END HIDDEN TESTS

# %% [markdown] id="part_b"
# ## Part B — inpainting with DDIM: the known pixels put back in $\hat{\mathbf{x}}_0$ (5 points)
#
# Replacement inpainting runs the reverse process on the whole image and, after every step, makes the known pixels
# agree with the given ones at the step's noise level. The package does it with DDPM's ancestral steps and fresh
# noise for the known pixels. With DDIM's deterministic step ($\eta = 0$) there is a variant that draws nothing at
# all: put the known pixels back in the **prediction** and re-noise with the model's own noise. From $t$ to the next
# step $t'$ of a decreasing list (and $t' = 0$ after the last),
#
# $$\hat{\boldsymbol\epsilon} = \boldsymbol\epsilon_\theta(\mathbf{x}_t, t), \qquad \hat{\mathbf{x}}_0 =
# \frac{\mathbf{x}_t - \sqrt{1-\bar\alpha_t}\,\hat{\boldsymbol\epsilon}}{\sqrt{\bar\alpha_t}}, \qquad
# \tilde{\mathbf{x}}_0 = \mathbf{m} \odot \mathbf{y} + (1 - \mathbf{m}) \odot \hat{\mathbf{x}}_0, \qquad
# \mathbf{x}_{t'} = \sqrt{\bar\alpha_{t'}}\,\tilde{\mathbf{x}}_0 + \sqrt{1-\bar\alpha_{t'}}\,
# \hat{\boldsymbol\epsilon},$$
#
# with $\mathbf{y}$ = `known`. The known pixels of $\mathbf{x}_{t'}$ are then $\mathbf{y}$ noised to step $t'$ with
# the noise the model sees in the state, and the last step ($\bar\alpha_0 = 1$) returns $\tilde{\mathbf{x}}_0$, whose
# known pixels must equal `known` **exactly** (bit for bit: make sure of it). The run starts from the given `x_T`, as
# it is, at step `timesteps[0]`, and the whole run is a function of `x_T`: nothing is drawn.
#
# Write `inpaint_ddim(eps_model, alpha_bars, known, mask, timesteps, *, x_T)`, calling `eps_model` once per entry of
# `timesteps`, in order. Raise a `ValueError` whose message names `timesteps` unless it is a non-empty, strictly
# decreasing sequence of steps in $1..T$.
#
# *Your function must accept:* `eps_model` as in the conventions; `alpha_bars` as in the conventions; `known` a
# float32 or float64 tensor `(B, ...)` ($B \ge 1$; its values where the mask is False are arbitrary); `mask` a bool
# mask (conventions); `timesteps` a list of Python ints or a 1-D `torch.long` tensor (a single step allowed, any
# subsequence of $T..1$, not necessarily starting at $T$); `x_T` a tensor of `known`'s shape and dtype. *It returns*
# $\mathbf{x}_0$, a tensor of `known`'s shape and dtype.

# %% id="inpaint" kind="solution"
def inpaint_ddim(eps_model, alpha_bars: Tensor, known: Tensor, mask: Tensor, timesteps, *, x_T: Tensor) -> Tensor:
    """Deterministic DDIM inpainting: after each step's prediction x0_hat, the known pixels (mask True) put back
    before re-noising with the predicted eps. Returns x0, whose known pixels equal `known` exactly."""
    ### BEGIN SOLUTION
    steps = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
    T = alpha_bars.numel() - 1
    if not steps or not all(1 <= t <= T for t in steps) or any(s <= t for s, t in itertools.pairwise(steps)):
        raise ValueError(f"timesteps must be a non-empty, strictly decreasing list of steps in 1..{T}, got {steps}")
    abar = alpha_bars.to(torch.float64).tolist()
    x = x_T
    for t, t_next in itertools.pairwise([*steps, 0]):
        eps = eps_model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x0_hat = (x - math.sqrt(1 - abar[t]) * eps) / math.sqrt(abar[t])
        x0_hat = torch.where(mask, known, x0_hat)
        x = math.sqrt(abar[t_next]) * x0_hat + math.sqrt(1 - abar[t_next]) * eps
    return torch.where(mask, known, x)  # x is x0_hat already; `where` makes the known pixels exact whatever eps holds
    ### END SOLUTION


# %% id="inpaint_tests" kind="tests" points=5
# T = 2, alpha_bar = (1, 0.64, 0.36): sqrt(alpha_bar) = 1, 0.8, 0.6 and sqrt(1 - alpha_bar) = 0, 0.6, 0.8.
# D = 2, coordinate 0 known (value 0.5), coordinate 1 unknown; a model that mixes them: eps = the coordinates' mean.
#   from x_2 = (0.9, 1.5) at t = 2: eps = 1.2, x0_hat = ((0.9 - 0.96) / 0.6, (1.5 - 0.96) / 0.6) = (-0.1, 0.9),
#     put back: (0.5, 0.9); x_1 = 0.8 (0.5, 0.9) + 0.6 * 1.2 = (1.12, 1.44)
#   t = 1: eps = 1.28, x0_hat = ((1.12 - 0.768) / 0.8, (1.44 - 0.768) / 0.8) = (0.44, 0.84); x_0 = (0.5, 0.84)
# (replacing the state's known pixel by the clean value 0.5, or noising it to the current step's level instead of the
# next one's, gives another unknown pixel)
_abars = torch.tensor([1.0, 0.64, 0.36])
_calls = []


def _mixing_model(x_t, t):
    _calls.append(t)
    return x_t.mean(1, keepdim=True).expand_as(x_t)


_got = inpaint_ddim(_mixing_model, _abars, torch.tensor([[0.5, -7.0]]), torch.tensor([[True, False]]), [2, 1],
                    x_T=torch.tensor([[0.9, 1.5]]))
assert isinstance(_got, Tensor) and _got.shape == (1, 2) and _got.dtype == torch.float64, \
    f"expected a float64 tensor of shape (1, 2), got {getattr(_got, 'dtype', type(_got).__name__)} " \
    f"{tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, torch.tensor([[0.5, 0.84]]), rtol=1e-12, atol=1e-12), \
    f"timesteps [2, 1] from x_2 = (0.9, 1.5), known (0.5, ?): expected x_0 = (0.5, 0.84), got {_got.tolist()}"
assert len(_calls) == 2 and all(isinstance(_t, Tensor) and _t.dtype == torch.long and _t.shape == (1,)
                                for _t in _calls) and [int(_t) for _t in _calls] == [2, 1], \
    f"expected two calls eps_model(x, t) with t a (B,) long tensor, [2] then [1], got {_calls}"
# Images (2, 3, 4, 4) in float32 with a (2, 1, 4, 4) mask, timesteps a tensor starting below T. With eps = 0 each
# step scales the state by sqrt(alpha_bar_t' / alpha_bar_t), so the unknown pixels end at x_T / sqrt(alpha_bar_t1)
# and the known ones at `known`, exactly
_abars = linear_alpha_bars(50)
_known = torch.linspace(-1, 1, 96).reshape(2, 3, 4, 4).float()
_mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
_mask[0, :, :2] = True
_mask[1, :, :, 1:] = True
_x_T = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)).float()
_got = inpaint_ddim(lambda x, t: torch.zeros_like(x), _abars, _known, _mask, torch.tensor([40, 31, 17, 4]), x_T=_x_T)
_want = torch.where(_mask, _known, _x_T / math.sqrt(float(_abars[40])))
assert isinstance(_got, Tensor) and _got.shape == (2, 3, 4, 4) and _got.dtype == torch.float32, \
    f"images (2, 3, 4, 4) float32: got {getattr(_got, 'dtype', type(_got).__name__)} " \
    f"{tuple(getattr(_got, 'shape', ()))}"
assert torch.allclose(_got, _want, rtol=1e-5, atol=1e-5), \
    f"eps = 0, timesteps [40, 31, 17, 4]: expected the unknown pixels at x_T / sqrt(alpha_bar_40), largest " \
    f"difference {(_got - _want).abs().max():.3g}"
_diff = (_got - _known)[_mask.expand_as(_known)].abs().max()
assert _diff == 0, f"the known pixels must equal `known` exactly, the largest difference is {float(_diff):.3g}"
try:
    inpaint_ddim(_mixing_model, torch.tensor([1.0, 0.64, 0.36]), torch.zeros(1, 2), torch.tensor([[True, False]]),
                 [1, 2], x_T=torch.zeros(1, 2))
except ValueError as _error:
    assert "timesteps" in str(_error), f"the message must name timesteps, got: {_error}"
else:
    raise AssertionError("timesteps [1, 2] (increasing) must raise a ValueError naming timesteps")
print("Part B: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _reference_run(eps_model, abars, known, mask, steps, x_T):
    # the recurrence of the statement written out in float64 with plain-float coefficients, the known pixels put
    # back with arithmetic on a 0/1 mask; the final known pixels are `known`, copied in
    m = mask.to(torch.float64).expand(known.shape)
    x, y = x_T.to(torch.float64), known.to(torch.float64)
    for i, t in enumerate(steps):
        t_next = steps[i + 1] if i + 1 < len(steps) else 0
        a, a_next = float(abars[t]), float(abars[t_next])
        e = eps_model(x.to(x_T.dtype), torch.tensor([t] * x.shape[0])).to(torch.float64)
        pred = (x - (1 - a) ** 0.5 * e) / a**0.5
        pred = m * y + (1 - m) * pred
        x = a_next**0.5 * pred + (1 - a_next) ** 0.5 * e
    x[m == 1] = y[m == 1]
    return x


def _stand_in(x_t, t):
    # a deterministic nonlinear model that mixes the pixels and depends on t
    flat = x_t.reshape(x_t.shape[0], -1)
    mixed = torch.tanh(flat + flat.roll(1, 1) * 0.5) * (t.to(x_t.dtype)[:, None] / 60 + 0.3)
    return mixed.reshape(x_t.shape)


_g = torch.Generator().manual_seed(71)
_abars50 = linear_alpha_bars(50)
_abars_rand = torch.cat([torch.ones(1), torch.sort(torch.rand(12, generator=_g) * 0.97 + 0.02, descending=True)[0]])
_cov = torch.tensor([[1.0, 0.9, 0.3], [0.9, 1.0, 0.5], [0.3, 0.5, 1.0]])
_exact = gaussian_eps_model(torch.tensor([0.5, -0.2, 0.1]), _cov, _abars50)
# 1) Against the loop above, for every kind of input the statement allows: vectors and images, full-shape and
# broadcast masks (all known, none known), timesteps as a list or a tensor, one step or all, float32 and float64
_cases = [((1, 1), (1, 1), _stand_in, _abars50, [50]),
          ((4, 3), (4, 3), _exact, _abars50, list(range(50, 0, -1))),
          ((4, 3), (1, 3), _exact, _abars50, torch.tensor([45, 30, 12, 2])),
          ((3, 5), (3, 5), _stand_in, _abars_rand, [12, 11, 7, 1]),
          ((2, 3, 4, 4), (2, 1, 4, 4), _stand_in, _abars50, torch.tensor([50, 25, 10, 5, 1])),
          ((2, 3, 4, 4), (2, 3, 4, 4), _stand_in, _abars_rand, [9, 3]),
          ((1, 2, 3, 5), (1, 1, 3, 5), _stand_in, _abars50, [1]),
          ((3, 4), (3, 4), _stand_in, _abars50, [20, 19, 18]),
          ((3, 4), (3, 4), _stand_in, _abars50, [33, 8])]
for _shape, _mask_shape, _model, _abars_here, _steps in _cases:
    for _dtype in (torch.float64, torch.float32):
        for _fill in ("random", "all", "none"):
            _mask = torch.rand(_mask_shape, generator=_g) < 0.5
            if _fill != "random":
                _mask = torch.full(_mask_shape, _fill == "all")
            _known = torch.randn(_shape, generator=_g).to(_dtype)
            _x_T = torch.randn(_shape, generator=_g).to(_dtype)
            _list = _steps.tolist() if isinstance(_steps, Tensor) else _steps
            _where = (f"known {_shape} {_dtype}, mask {_mask_shape} ({_fill} known), timesteps {_list[:6]}"
                      f"{'...' if len(_list) > 6 else ''}")
            _got = inpaint_ddim(_model, _abars_here, _known, _mask, _steps, x_T=_x_T)
            assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
                f"{_where}: got {getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
            _want = _reference_run(_model, _abars_here, _known, _mask, _list, _x_T)
            _tol = 1e-9 if _dtype == torch.float64 else 2e-3  # float32: x0_hat divides by sqrt(alpha_bar_50) ~ 0.007
            assert torch.allclose(_got.double(), _want, rtol=_tol, atol=_tol), \
                f"{_where}: not the statement's recurrence (largest difference " \
                f"{(_got.double() - _want).abs().max():.3g})"
            # 2) the known region is `known`, exactly: max abs difference 0
            _known_region = _mask.expand(_shape)
            if _known_region.any():
                assert (_got - _known)[_known_region].abs().max() == 0, f"{_where}: the known pixels are not exact"
# 3) The calls: one per step, in order, with t a (B,) long tensor; x_T at the first call as given
_seen = []


def _recording(x_t, t):
    assert isinstance(t, Tensor) and t.dtype == torch.long and t.shape == (x_t.shape[0],), \
        f"eps_model must get t as a (B,) long tensor, got {t!r}"
    _seen.append((t.tolist(), x_t.clone()))
    return _stand_in(x_t, t)


_x_T = torch.randn(3, 2, generator=_g)
inpaint_ddim(_recording, _abars50, torch.zeros(3, 2), torch.tensor([True, False]).expand(3, 2), [48, 20, 3], x_T=_x_T)
assert [s for s, _ in _seen] == [[48] * 3, [20] * 3, [3] * 3], f"expected calls at 48, 20, 3, got {_seen}"
assert torch.equal(_seen[0][1], _x_T), "the first call must see x_T as given (nothing replaced before it)"
# 4) The timesteps are checked: empty, not strictly decreasing, out of 1..T
for _bad in ([], [3, 3], [5, 7], [0], [51, 2], [10, 0], torch.tensor([4, 6])):
    try:
        inpaint_ddim(_stand_in, _abars50, torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), _bad,
                     x_T=torch.zeros(1, 2))
    except ValueError as _error:
        assert "timesteps" in str(_error), f"timesteps {_bad}: the message must name timesteps: {_error}"
    else:
        raise AssertionError(f"timesteps {_bad} with T = 50 must raise a ValueError naming timesteps")
### END HIDDEN TESTS

# %% [markdown] id="part_c"
# ## Part C — the Gaussian conditional: what inpainting should sample (4 points)
#
# Inpainting wants samples of $p(\mathbf{x}_u \mid \mathbf{x}_k = \mathbf{v})$: the unknown coordinates given the
# known ones. For Gaussian data $\mathbf{x} \sim \mathcal{N}(\boldsymbol\mu, \boldsymbol\Sigma)$ this law is
# Gaussian and known in closed form, the Schur complement:
#
# $$\mathbf{x}_u \mid \mathbf{x}_k = \mathbf{v} \;\sim\; \mathcal{N}\Big(\boldsymbol\mu_u + \boldsymbol\Sigma_{uk}
# \boldsymbol\Sigma_{kk}^{-1}(\mathbf{v} - \boldsymbol\mu_k),\;\; \boldsymbol\Sigma_{uu} - \boldsymbol\Sigma_{uk}
# \boldsymbol\Sigma_{kk}^{-1}\boldsymbol\Sigma_{ku}\Big).$$
#
# Write `gaussian_conditional(mean, cov, known_index, values)`, returning the mean and the covariance of the unknown
# coordinates, **in increasing order of coordinate**. The known coordinates come in the order the caller lists them,
# and `values[..., i]` is the value of coordinate `known_index[i]`. Solve linear systems (`torch.linalg.solve`)
# rather than inverting $\boldsymbol\Sigma_{kk}$.
#
# *Your function must accept:* `mean` a `(D,)` and `cov` a `(D, D)` symmetric positive-definite tensor, float64,
# $D \ge 1$; `known_index` a list of Python ints or a 1-D `torch.long` tensor of distinct coordinates in $0..D-1$, in
# any order, possibly empty, possibly all $D$ of them; `values` a float64 tensor of shape `(k,)` or `(B, k)` with $k$
# = `len(known_index)`. *It returns* `(mean_u, cov_u)`: float64 tensors of shapes `(D - k,)` or `(B, D - k)` (the
# leading shape of `values`) and `(D - k, D - k)`.

# %% id="conditional" kind="solution"
def gaussian_conditional(mean: Tensor, cov: Tensor, known_index, values: Tensor) -> tuple[Tensor, Tensor]:
    """(mean_u, cov_u) of x_u | x_k = values for x ~ N(mean, cov); u = the other coordinates, increasing."""
    ### BEGIN SOLUTION
    k = torch.as_tensor(known_index, dtype=torch.long).reshape(-1)
    unknown = torch.ones(mean.numel(), dtype=torch.bool)
    unknown[k] = False
    u = torch.nonzero(unknown).reshape(-1)  # increasing
    cov_uk, cov_uu = cov[u][:, k], cov[u][:, u]
    if k.numel() == 0:  # nothing known: the marginal, for each row of values
        return mean.expand(*values.shape[:-1], mean.numel()).clone(), cov_uu.clone()
    gain = torch.linalg.solve(cov[k][:, k], cov_uk.T).T  # Sigma_uk Sigma_kk^-1, (u, k): Sigma_kk is symmetric
    mean_u = mean[u] + (values - mean[k]) @ gain.T
    return mean_u, cov_uu - gain @ cov_uk.T
    ### END SOLUTION


# %% id="conditional_tests" kind="tests" points=4
# D = 3, mean (1, -1, 0.5), cov [[2, 1, 0.5], [1, 2, 1], [0.5, 1, 2]], coordinate 1 known with value 3:
#   Sigma_kk = 2, Sigma_uk = (1, 1): mean_u = (1, 0.5) + (1, 1) / 2 * (3 - (-1)) = (3, 2.5)   (not (2.5, 2), which
#   forgets mu_k, nor the marginal (1, 0.5)); cov_u = [[2, 0.5], [0.5, 2]] - (1, 1)^T (1, 1) / 2 = [[1.5, 0], [0, 1.5]]
_mean = torch.tensor([1.0, -1.0, 0.5])
_cov = torch.tensor([[2.0, 1.0, 0.5], [1.0, 2.0, 1.0], [0.5, 1.0, 2.0]])
_got = gaussian_conditional(_mean, _cov, [1], torch.tensor([3.0]))
assert isinstance(_got, tuple) and len(_got) == 2, f"expected a pair (mean_u, cov_u), got {type(_got).__name__}"
assert _got[0].shape == (2,) and torch.allclose(_got[0], torch.tensor([3.0, 2.5]), rtol=1e-12, atol=1e-12), \
    f"coordinate 1 known = 3: expected mean_u = (3, 2.5), got {_got[0].tolist()}"
assert _got[1].shape == (2, 2) and torch.allclose(_got[1], 1.5 * torch.eye(2), rtol=1e-12, atol=1e-12), \
    f"coordinate 1 known = 3: expected cov_u = [[1.5, 0], [0, 1.5]], got {_got[1].tolist()}"
# known_index in the caller's order, [2, 0], values (7, 2): coordinate 2 has value 7 and coordinate 0 value 2. Here
# coordinate 1 depends on coordinate 0 only (Sigma_10 = 0.5, Sigma_12 = 0): mean_u = 0.5 * 2 = 1 (not 0.5 * 7 =
# 3.5, which pairs the values with the sorted coordinates), cov_u = 1 - 0.5^2 = 0.75. A batch of two rows of values
# gives two means.
_cov = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 4.0]])
_got = gaussian_conditional(torch.zeros(3), _cov, torch.tensor([2, 0]), torch.tensor([[7.0, 2.0], [-1.0, -4.0]]))
assert _got[0].shape == (2, 1) and torch.allclose(_got[0], torch.tensor([[1.0], [-2.0]]), rtol=1e-12, atol=1e-12), \
    f"known_index [2, 0], values [[7, 2], [-1, -4]]: expected mean_u [[1], [-2]] of shape (2, 1), got " \
    f"{_got[0].tolist()} of shape {tuple(_got[0].shape)}"
assert _got[1].shape == (1, 1) and torch.allclose(_got[1], torch.tensor([[0.75]]), rtol=1e-12, atol=1e-12), \
    f"known_index [2, 0]: expected cov_u = [[0.75]], got {_got[1].tolist()}"
print("Part C: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
from torch.distributions import MultivariateNormal

_g = torch.Generator().manual_seed(72)


def _random_spd(D):
    A = torch.randn(D, D, generator=_g)
    return A @ A.T / D + 0.3 * torch.eye(D)


# 1) The conditional density is the joint's over the known coordinates' marginal: for random points x,
# log N(x; mu, Sigma) - log N(x_k; mu_k, Sigma_kk) = log N(x_u; mean_u(x_k), cov_u), with torch.distributions, for
# D = 1..6, known sets of every size in shuffled order, lists and tensors, values (k,) and (B, k)
for _D in (1, 2, 3, 4, 6):
    _mean, _cov = torch.randn(_D, generator=_g), _random_spd(_D)
    _joint = MultivariateNormal(_mean, _cov)
    for _size in sorted({0, 1, _D // 2, _D - 1, _D}):
        _k = torch.randperm(_D, generator=_g)[:_size]
        _u = [i for i in range(_D) if i not in _k.tolist()]
        for _index in (_k.tolist(), _k):
            for _batch in ((), (5,)):
                _x = _mean + torch.randn(*_batch, _D, generator=_g) @ torch.linalg.cholesky(_cov).T
                _values = _x[..., _k]
                _where = f"D = {_D}, known_index {_k.tolist()} ({type(_index).__name__}), values {tuple(_values.shape)}"
                _got = gaussian_conditional(_mean, _cov, _index, _values)
                assert isinstance(_got, tuple) and len(_got) == 2, f"{_where}: expected a pair"
                _mean_u, _cov_u = _got
                assert _mean_u.shape == (*_batch, _D - _size) and _cov_u.shape == (_D - _size, _D - _size), \
                    f"{_where}: expected shapes {(*_batch, _D - _size)} and {(_D - _size, _D - _size)}, got " \
                    f"{tuple(_mean_u.shape)} and {tuple(_cov_u.shape)}"
                assert _mean_u.dtype == torch.float64 and _cov_u.dtype == torch.float64, f"{_where}: not float64"
                if _size == _D:
                    continue
                _log_joint = _joint.log_prob(_x)
                _log_known = (MultivariateNormal(_mean[_k], _cov[_k][:, _k]).log_prob(_values) if _size
                              else torch.zeros(_batch))
                _cov_sym = (_cov_u + _cov_u.T) / 2
                _log_conditional = MultivariateNormal(_mean_u, _cov_sym).log_prob(_x[..., _u])
                assert torch.allclose(_log_conditional, _log_joint - _log_known, rtol=1e-8, atol=1e-8), \
                    f"{_where}: log p(x_u | x_k) is not log p(x) - log p(x_k)"
                # 2) and the precision matrix gives the same: cov_u = inverse of the uu block of Sigma^-1
                _precision = torch.linalg.inv(_cov)
                assert torch.allclose(_cov_u, torch.linalg.inv(_precision[_u][:, _u]), rtol=1e-8, atol=1e-10), \
                    f"{_where}: cov_u is not the inverse of the precision's uu block"
# 3) A correlated 2-D Gaussian, x1 known: the conditional of x2 is N(mu_2 + rho s2 / s1 (v - mu_1), s2^2 (1 - rho^2))
for _rho, _s1, _s2, _v in ((0.95, 1.0, 1.0, 1.5), (-0.3, 2.0, 0.5, -1.0), (0.0, 1.0, 3.0, 4.0)):
    _cov = torch.tensor([[_s1**2, _rho * _s1 * _s2], [_rho * _s1 * _s2, _s2**2]])
    _mean_u, _cov_u = gaussian_conditional(torch.tensor([0.2, -0.1]), _cov, [0], torch.tensor([_v]))
    assert abs(float(_mean_u[0]) - (-0.1 + _rho * _s2 / _s1 * (_v - 0.2))) < 1e-12 and \
        abs(float(_cov_u[0, 0]) - _s2**2 * (1 - _rho**2)) < 1e-12, f"rho = {_rho}: wrong 2-D conditional"
# 4) Nothing known: the marginal (for each row of values); everything known: empty results
_mean, _cov = torch.randn(4, generator=_g), _random_spd(4)
_mean_u, _cov_u = gaussian_conditional(_mean, _cov, [], torch.zeros(3, 0))
assert _mean_u.shape == (3, 4) and torch.allclose(_mean_u, _mean.expand(3, 4)) and torch.allclose(_cov_u, _cov), \
    "no known coordinate: expected the marginal"
_mean_u, _cov_u = gaussian_conditional(_mean, _cov, [3, 1, 0, 2], torch.randn(4, generator=_g))
assert _mean_u.shape == (0,) and _cov_u.shape == (0, 0), "every coordinate known: expected shapes (0,) and (0, 0)"
### END HIDDEN TESTS

# %% [markdown] id="part_c_demo"
# Nothing to write here: the cell inpaints the correlated Gaussian $\mathcal{N}(\mathbf{0}, [[1, 0.95], [0.95, 1]])$
# with $x_1 = 1.5$ known, using the exact $\hat{\boldsymbol\epsilon}$ of the setup cell, three ways: your
# `inpaint_ddim` from random $\mathbf{x}_T$, the package's replacement inpainting `inpaint` (DDPM steps, fresh
# noise for the known pixel), and the package's `inpaint` with RePaint's resampling (`jumps = 4`). It prints the mean
# and standard deviation of $x_2$ for each, beside the truth your `gaussian_conditional` gives. Replacement with
# fresh noise falls short of the conditional mean: the model's step never sees how the known and unknown parts fit
# together. Resampling, which lets them settle together before moving on, cuts the bias. Where does Part B's
# variant land, and why might re-noising the known pixel with the model's own $\hat{\boldsymbol\epsilon}$ help?
# (This cell alone imports the package: it only reads its results.)

# %% id="c_demo"
from ddpm_scratch.applications.inpainting import inpaint  # the package's replacement inpainting, for comparison
from ddpm_scratch.schedules import NoiseSchedule

_n, _rho, _a = 2000, 0.95, 1.5
_cov = torch.tensor([[1.0, _rho], [_rho, 1.0]])
_schedule = NoiseSchedule.from_betas(1 - linear_alpha_bars(1000)[1:] / linear_alpha_bars(1000)[:-1])
_model = gaussian_eps_model(torch.zeros(2), _cov, _schedule.alpha_bars)
_known = torch.tensor([_a, 0.0]).expand(_n, 2).clone()
_mask = torch.tensor([True, False]).expand(_n, 2)
_truth_mean, _truth_cov = gaussian_conditional(torch.zeros(2), _cov, [0], torch.tensor([_a]))
print(f"truth (Schur complement): x2 | x1 = {_a} has mean {float(_truth_mean[0]):.3f} and standard deviation "
      f"{float(_truth_cov[0, 0]) ** 0.5:.3f}")
_runs = {"inpaint_ddim (Part B), 100 steps": inpaint_ddim(
    _model, _schedule.alpha_bars, _known, _mask, torch.linspace(1000, 10, 100).round().long(),
    x_T=torch.randn(_n, 2, generator=torch.Generator().manual_seed(0)))}
for _jumps in (0, 4):
    _runs[f"package inpaint, jumps = {_jumps}, 100 steps"] = inpaint(
        _model, _schedule, _known, _mask, jumps=_jumps, jump_length=10, num_steps=100,
        generator=torch.Generator().manual_seed(1))
for _name, _x in _runs.items():
    _x2 = _x[:, 1]
    print(f"{_name}: mean {float(_x2.mean()):.3f} (+- {float(_x2.std()) / _n**0.5:.3f}), standard deviation "
          f"{float(_x2.std()):.3f}")

# %% [markdown] id="part_d"
# ## Part D — ILVR with a Fourier low-pass filter (4 points)
#
# ILVR steers an unconditional model towards a reference image $\mathbf{y}$: after every reverse step the low
# frequencies of the state are replaced by those of the reference, noised to the same step,
#
# $$\mathbf{x}_{t-1} \leftarrow \mathbf{x}_{t-1} - \phi(\mathbf{x}_{t-1}) + \phi(\mathbf{y}_{t-1}), \qquad
# \mathbf{y}_{t-1} \sim q(\mathbf{y}_{t-1} \mid \mathbf{y}).$$
#
# The package's $\phi$ averages blocks of pixels. Here $\phi$ keeps the lowest spatial frequencies of the discrete
# Fourier transform. For an image of $H \times W$ pixels, with $X[u, v]$ its 2-D DFT (over the last two axes,
# `torch.fft.fft2`), `fourier_low_pass(x, k)` keeps the frequencies $(u, v)$ with
#
# $$\min(u, H - u) < k \quad\text{and}\quad \min(v, W - v) < k$$
#
# (both signs of each frequency: $u$ and $H - u$ are the same frequency, with opposite signs) and sets the others to
# zero, then transforms back and returns the real image. $k = 1$ keeps each image's mean per channel; a large $k$
# keeps everything. Because the kept set is symmetric, the result is real (up to rounding: return the real part) and
# $\phi$ is an orthogonal projection: linear, and $\phi(\phi(\mathbf{x})) = \phi(\mathbf{x})$. Write it and
# `ilvr_step(x, reference_t, phi)`, the update above for any low-pass `phi` (a function of one tensor). Why the
# projection matters: one step with $\mathbf{y}_0 = \mathbf{y}$ at the end leaves $\phi(\mathbf{x}_0) =
# \phi(\mathbf{y})$ exactly, which the hidden tests check on whole sampling runs with your two functions.
#
# *Your functions must accept:* `x` and `reference_t` float32 or float64 tensors `(B, C, H, W)` ($B, C \ge 1$, any
# $H, W \ge 1$, even or odd, not necessarily equal); `k` a Python int $\ge 1$; `phi` any function of one such tensor
# returning a tensor of its shape. *They return* tensors of `x`'s shape and dtype (real, not complex).

# %% id="ilvr" kind="solution"
def fourier_low_pass(x: Tensor, k: int) -> Tensor:
    """phi(x): the DFT of each (H, W) image with the frequencies min(u, H-u) >= k or min(v, W-v) >= k zeroed."""
    ### BEGIN SOLUTION
    height, width = x.shape[-2:]
    rows, cols = torch.arange(height), torch.arange(width)
    keep = (torch.minimum(rows, height - rows) < k)[:, None] & (torch.minimum(cols, width - cols) < k)[None, :]
    return torch.fft.ifft2(torch.fft.fft2(x) * keep).real.to(x.dtype)
    ### END SOLUTION


def ilvr_step(x: Tensor, reference_t: Tensor, phi) -> Tensor:
    """ILVR's update: x with its phi-component replaced by reference_t's."""
    ### BEGIN SOLUTION
    return x + (phi(reference_t) - phi(x))
    ### END SOLUTION


# %% id="ilvr_tests" kind="tests" points=4
# A 4 x 4 image f[a, b] = cos(2 pi a / 4) + cos(pi b) + 0.5: its DFT has the frequencies (u, v) = (1, 0) and (3, 0)
# (the first term), (0, 2) (the second) and (0, 0) (the constant). With k = 2, min(u, 4 - u) < 2 keeps u = 0, 1, 3
# and min(v, 4 - v) < 2 keeps v = 0, 1, 3: phi(f) = cos(2 pi a / 4) + 0.5 (not half of the first term, which keeps
# u = 1 without u = 3, nor f itself, which keeps v = 2). k = 1: the mean 0.5. k = 3: everything.
_a = torch.arange(4.0)[:, None].expand(4, 4)
_b = torch.arange(4.0)[None, :].expand(4, 4)
_image = (torch.cos(2 * math.pi * _a / 4) + torch.cos(math.pi * _b) + 0.5)[None, None]
for _k, _want in ((2, torch.cos(2 * math.pi * _a / 4) + 0.5), (1, torch.full((4, 4), 0.5)), (3, _image[0, 0])):
    _got = fourier_low_pass(_image, _k)
    assert isinstance(_got, Tensor) and _got.shape == (1, 1, 4, 4) and _got.dtype == torch.float64, \
        f"k = {_k}: expected a real float64 tensor of shape (1, 1, 4, 4), got " \
        f"{getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
    assert torch.allclose(_got[0, 0], _want, rtol=0, atol=1e-12), \
        f"k = {_k}: expected {[[round(v, 6) for v in row] for row in _want.tolist()]}, got " \
        f"{[[round(v, 6) for v in row] for row in _got[0, 0].tolist()]}"
# Each image and channel on its own, odd and unequal sizes, float32; a projection: phi(phi(x)) = phi(x)
_x = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(0)).float()
_got = fourier_low_pass(_x, 1)
assert _got.dtype == torch.float32 and torch.allclose(_got, _x.mean((2, 3), keepdim=True).expand_as(_x), atol=1e-6), \
    f"k = 1 on (2, 3, 5, 6) float32: expected each image's per-channel mean in float32, got {_got.dtype}"
_once = fourier_low_pass(_x.double(), 2)
_twice = fourier_low_pass(_once, 2)
assert torch.allclose(_twice, _once, rtol=0, atol=1e-12), \
    f"phi(phi(x)) must equal phi(x): largest difference {(_twice - _once).abs().max():.3g}"
# ILVR's step: the low-pass part becomes the reference's, the rest stays x's
_reference = torch.randn(2, 3, 5, 6, generator=torch.Generator().manual_seed(1))
_x = _x.double()
_got = ilvr_step(_x, _reference, lambda z: fourier_low_pass(z, 2))
assert torch.allclose(fourier_low_pass(_got, 2), fourier_low_pass(_reference, 2), rtol=0, atol=1e-12) and \
    torch.allclose(_got - fourier_low_pass(_got, 2), _x - fourier_low_pass(_x, 2), rtol=0, atol=1e-12), \
    "ilvr_step: phi(result) must be phi(reference_t) and result - phi(result) must be x - phi(x)"
print("Part D: visible tests passed (hidden tests decide the grade)")
### BEGIN HIDDEN TESTS
def _projection(n, k):
    # the real n x n matrix of the 1-D filter: (1/n) sum over kept u of cos(2 pi u (a - b) / n), by plain loops
    kept = [u for u in range(n) if min(u, n - u) < k]
    return torch.tensor([[sum(math.cos(2 * math.pi * u * (a - b) / n) for u in kept) / n for b in range(n)]
                         for a in range(n)])


_g = torch.Generator().manual_seed(73)
# 1) Against the filter written as sums of cosines (separable: rows then columns), for even, odd and unequal sizes,
# 1 x 1 images, k from 1 to past the size, float64 and float32
for _shape in ((1, 1, 1, 1), (2, 3, 4, 4), (1, 2, 5, 7), (3, 1, 8, 6), (1, 1, 9, 2), (2, 2, 16, 16)):
    _H, _W = _shape[-2:]
    for _k in sorted({1, 2, 3, (max(_H, _W) + 1) // 2, max(_H, _W)}):
        _P_H, _P_W = _projection(_H, _k), _projection(_W, _k)
        for _dtype, _tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
            _x = torch.randn(_shape, generator=_g).to(_dtype)
            _got = fourier_low_pass(_x, _k)
            _where = f"x {_shape} {_dtype}, k = {_k}"
            assert isinstance(_got, Tensor) and _got.shape == _shape and _got.dtype == _dtype, \
                f"{_where}: got {getattr(_got, 'dtype', type(_got).__name__)} {tuple(getattr(_got, 'shape', ()))}"
            _want = _P_H @ _x.double() @ _P_W.T
            assert torch.allclose(_got.double(), _want, rtol=_tol, atol=_tol), \
                f"{_where}: not the low-pass of the statement (largest difference " \
                f"{(_got.double() - _want).abs().max():.3g})"
            # 2) a projection: idempotent, linear, self-adjoint
            _y = torch.randn(_shape, generator=_g).to(_dtype)
            assert torch.allclose(fourier_low_pass(_got, _k).double(), _got.double(), rtol=_tol, atol=_tol), \
                f"{_where}: phi(phi(x)) != phi(x)"
            assert torch.allclose(fourier_low_pass(2 * _x - 3 * _y, _k).double(),
                                  (2 * _got - 3 * fourier_low_pass(_y, _k)).double(), rtol=_tol, atol=10 * _tol), \
                f"{_where}: phi is not linear"
            _left = float((_got.double() * _y.double()).sum())
            _right = float((_x.double() * fourier_low_pass(_y, _k).double()).sum())
            assert abs(_left - _right) < 100 * _tol, f"{_where}: <phi x, y> != <x, phi y>"


# 3) Whole ILVR runs: a DDIM (eta = 0) loop written here with a stand-in model, the reference noised with this
# test's generator, your ilvr_step after every step with your filter (and with block means, another projection):
# the sample's low-pass component is the reference's, up to float64 rounding, while the rest is the model's own
def _block_mean(z, f=2):
    B, C, H, W = z.shape
    means = z.reshape(B, C, H // f, f, W // f, f).mean((3, 5), keepdim=True)
    return means.expand(B, C, H // f, f, W // f, f).reshape(B, C, H, W)


_abars = linear_alpha_bars(40)
_steps = [40, 32, 24, 16, 8, 1]
for _phi, _label in ((lambda z: fourier_low_pass(z, 2), "Fourier k = 2"), (lambda z: fourier_low_pass(z, 1), "k = 1"),
                     (_block_mean, "block means")):
    _reference = torch.rand(2, 3, 8, 8, generator=_g) * 2 - 1
    _x = torch.randn(2, 3, 8, 8, generator=_g)
    for _i, _t in enumerate(_steps):
        _t_next = _steps[_i + 1] if _i + 1 < len(_steps) else 0
        _a, _a_next = float(_abars[_t]), float(_abars[_t_next])
        _e = torch.tanh(_x) * 0.7
        _x = _a_next**0.5 * (_x - (1 - _a) ** 0.5 * _e) / _a**0.5 + (1 - _a_next) ** 0.5 * _e
        _reference_t = (_reference if _t_next == 0 else
                        _a_next**0.5 * _reference + (1 - _a_next) ** 0.5 * torch.randn(2, 3, 8, 8, generator=_g))
        _x = ilvr_step(_x, _reference_t, _phi)
        assert isinstance(_x, Tensor) and _x.shape == (2, 3, 8, 8) and _x.dtype == torch.float64, \
            f"ilvr_step ({_label}): expected (2, 3, 8, 8) float64"
    _gap = (_phi(_x) - _phi(_reference)).abs().max()
    assert _gap < 1e-10, f"ILVR with {_label}: phi(x_0) differs from phi(reference) by {float(_gap):.3g}"
    assert (_x - _reference).abs().max() > 1e-2, f"ILVR with {_label}: the sample is the reference itself"
# 4) ilvr_step in float32, with a phi that is not a projection (the step is the formula, whatever phi is)
_x, _r = torch.randn(2, 1, 3, 3, generator=_g).float(), torch.randn(2, 1, 3, 3, generator=_g).float()
_got = ilvr_step(_x, _r, lambda z: 0.5 * z.roll(1, -1))
assert _got.dtype == torch.float32 and torch.allclose(_got, _x - 0.5 * _x.roll(1, -1) + 0.5 * _r.roll(1, -1),
                                                      atol=1e-6), "ilvr_step must be x - phi(x) + phi(reference_t)"
### END HIDDEN TESTS

# %% [markdown] id="part_e"
# ## Part E — RePaint's schedule as the authors' code numbers it (3 points)
#
# RePaint harmonises the known and unknown pixels by resampling: at some steps of the way down, the state goes back
# up $j$ steps by the forward kernel ($\mathbf{x}_{t+1} \sim q(\mathbf{x}_{t+1} \mid \mathbf{x}_t)$, one step at a
# time) and comes down again. The paper counts $r$, the number of times each resampled segment is **descended**
# ($r = 1$: no resampling), and $j$, the jump length. Its code (`get_schedule_jump` of the RePaint repository)
# numbers the network's steps from 0, $\tau = t - 1$, and jumps from the states whose $\tau$ is a multiple of $j$
# below $T - j$. In the lecture's numbering: on the way down, each time the state reaches a step $t$ with
#
# $$t - 1 \in \{0, j, 2j, \dots\}, \qquad t - 1 < T - j,$$
#
# it climbs from $t$ to $t + j$ and descends back to $t$, as long as that step's own count of climbs has not reached
# $r - 1$; then it goes on down. (Lesson 7's package counts resamplings, `jumps` $= r - 1$, and jumps from the
# multiples of $j$ themselves: another schedule.)
#
# Write `repaint_schedule(T, r, j)`, the list of the steps the state visits, from $T$ down to 0 in the lecture's
# numbering (consecutive entries differ by 1), and `repaint_cost(T, r, j)`, the pair (network calls, forward
# steps): each step down costs one call of the network, each step up one draw of the forward kernel. Raise a
# `ValueError` whose message names the argument when `T`, `r` or `j` is below 1.
#
# *Your functions must accept:* `T`, `r`, `j` Python ints $\ge 1$ ($j \ge T$ allowed: no jump then; $T$ up to a few
# thousand). *They return* a list of Python ints, and a tuple of two Python ints.

# %% id="repaint" kind="solution"
def repaint_schedule(T: int, r: int, j: int) -> list[int]:
    """The steps visited, T down to 0, with (r - 1) climbs of j steps from each t with t - 1 a multiple of j below
    T - j (RePaint's code, in the lecture's numbering)."""
    ### BEGIN SOLUTION
    for name, value in {"T": T, "r": r, "j": j}.items():
        if not value >= 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    climbs_left = dict.fromkeys(range(1, T - j + 1, j), r - 1)  # t = 1, 1 + j, ... with t - 1 < T - j
    visited, t = [T], T
    while t > 0:
        t -= 1
        visited.append(t)
        if climbs_left.get(t, 0) > 0:
            climbs_left[t] -= 1
            visited.extend(range(t + 1, t + j + 1))  # up by the forward kernel; the loop brings it down again
            t += j
    return visited
    ### END SOLUTION


def repaint_cost(T: int, r: int, j: int) -> tuple[int, int]:
    """(network calls, forward steps) of repaint_schedule(T, r, j): its steps down and its steps up."""
    ### BEGIN SOLUTION
    for name, value in {"T": T, "r": r, "j": j}.items():
        if not value >= 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    climbs = (r - 1) * j * len(range(1, T - j + 1, j))
    return T + climbs, climbs
    ### END SOLUTION


# %% id="repaint_tests" kind="tests" points=3
# T = 5, r = 2, j = 2: jumps from t = 1 and t = 3 (t - 1 = 0, 2 < T - j = 3), once each (r - 1 = 1):
#   5, 4, 3, [4, 5, 4, 3], 2, 1, [2, 3, 2, 1], 0: 9 steps down (network calls) and 4 up.
# (Lesson 7's numbering jumps from t = 2 instead, and r climbs instead of r - 1 is one descent too many.)
_want = [5, 4, 3, 4, 5, 4, 3, 2, 1, 2, 3, 2, 1, 0]
_got = repaint_schedule(5, 2, 2)
assert isinstance(_got, list) and [int(_t) for _t in _got] == _want, \
    f"T = 5, r = 2, j = 2: expected {_want}, got {_got}"
_got = repaint_cost(5, 2, 2)
assert tuple(_got) == (9, 4), f"T = 5, r = 2, j = 2: expected (9 network calls, 4 forward steps), got {_got}"
# r = 1: no resampling, straight down
assert repaint_schedule(6, 1, 2) == [6, 5, 4, 3, 2, 1, 0] and tuple(repaint_cost(6, 1, 2)) == (6, 0), \
    f"r = 1: expected 6..0 and (6, 0), got {repaint_schedule(6, 1, 2)} and {repaint_cost(6, 1, 2)}"
# T = 7, r = 3, j = 3: jumps from t = 1 and t = 4 (t - 1 = 0, 3 < 4), twice each: 7 + 2 * 2 * 3 = 19 calls, 12 up
assert tuple(repaint_cost(7, 3, 3)) == (19, 12), f"T = 7, r = 3, j = 3: expected (19, 12), got {repaint_cost(7, 3, 3)}"
# T = 6, r = 2, j = 2: t - 1 < T - j = 4 allows t = 1 and 3, not t = 5 (whose climb would pass T): (6 + 2 * 2, 4)
assert tuple(repaint_cost(6, 2, 2)) == (10, 4), f"T = 6, r = 2, j = 2: expected (10, 4), got {repaint_cost(6, 2, 2)}"
try:
    repaint_schedule(10, 0, 2)
except ValueError as _error:
    assert "r" in str(_error), f"the message must name r, got: {_error}"
else:
    raise AssertionError("r = 0 must raise a ValueError naming r (r = 1 is plain sampling)")
print(f"Part E: visible tests passed (hidden tests decide the grade). The paper's setting T = 250, r = 10, j = 10 "
      f"costs (network calls, forward steps) = {repaint_cost(250, 10, 10)}")
### BEGIN HIDDEN TESTS
import re


def _official(t_T, jump_length, jump_n_sample):
    # RePaint's get_schedule_jump (guided_diffusion/scheduler.py) with n_sample = 1 and no second or third jump
    # level, transcribed in its own 0-based numbering: the list of times, ending with -1 (the data)
    jumps = {}
    for j in range(0, t_T - jump_length, jump_length):
        jumps[j] = jump_n_sample - 1
    t = t_T
    ts = []
    while t >= 1:
        t = t - 1
        ts.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] = jumps[t] - 1
            for _ in range(jump_length):
                t = t + 1
                ts.append(t)
    ts.append(-1)
    return ts


# 1) The schedule: the code's times shifted by one (tau = t - 1), for many T, r, j, small and large, j >= T included
for _T, _r, _j in ((1, 1, 1), (1, 5, 1), (2, 2, 1), (5, 2, 2), (7, 3, 3), (10, 1, 3), (10, 4, 10), (10, 3, 11),
                   (25, 10, 10), (30, 2, 1), (100, 5, 7), (250, 10, 10), (1000, 3, 10), (64, 2, 63)):
    _want = [tau + 1 for tau in _official(_T, _j, _r)]
    _got = repaint_schedule(_T, _r, _j)
    _where = f"T = {_T}, r = {_r}, j = {_j}"
    assert isinstance(_got, list) and all(isinstance(_t, int) for _t in _got), f"{_where}: expected a list of ints"
    _first = next((i for i, (a, b) in enumerate(zip(_got, _want, strict=False)) if a != b),
                  min(len(_got), len(_want)))
    assert _got == _want, f"{_where}: not the code's schedule (first difference at entry {_first})"
    # 2) the cost: the steps down and up of the code's schedule
    _down = sum(b < a for a, b in itertools.pairwise(_want))
    _up = sum(b > a for a, b in itertools.pairwise(_want))
    _cost = repaint_cost(_T, _r, _j)
    assert isinstance(_cost, tuple) and len(_cost) == 2 and all(isinstance(c, int) for c in _cost), \
        f"{_where}: expected a pair of ints, got {_cost!r}"
    assert _cost == (_down, _up), f"{_where}: expected ({_down}, {_up}), got {_cost}"
# 3) Arguments below 1, named
for _args, _name in (((0, 2, 2), "T"), ((10, 0, 2), "r"), ((10, 2, 0), "j"), ((10, -1, 2), "r"), ((10, 2, -3), "j")):
    for _call in (repaint_schedule, repaint_cost):
        try:
            _call(*_args)
        except ValueError as _error:
            assert re.search(rf"\b{_name}\b", str(_error)), f"{_call.__name__}{_args}: the message must name {_name}"
        else:
            raise AssertionError(f"{_call.__name__}{_args} must raise a ValueError naming {_name}")
### END HIDDEN TESTS
