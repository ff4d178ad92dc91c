"""Lecture 1: noise schedules.

The forward process adds Gaussian noise in T small steps with variances beta_1..beta_T:

    q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
    alpha_t     = 1 - beta_t
    alpha_bar_t = prod_{s=1..t} alpha_s           (the diffusion kernel's signal coefficient)
    SNR(t)      = alpha_bar_t / (1 - alpha_bar_t)

Index convention (the whole course relies on it): every array has length T+1 and index t is the
lecture's t. Index 0 is the data itself: betas[0] = 0, alphas[0] = 1, alpha_bars[0] = 1.
Arrays are float64; `lookup` reads values[t] in the data's dtype and device where they are used.

A schedule can be respaced (`respace`): keep alpha_bar at a subset of the steps and derive the betas of the
bigger jumps between them (Nichol & Dhariwal 2021). A short sampler is then the same sampler on a shorter
schedule; `timesteps` remembers which training step each index stands for, and the network is always called
at those.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .checks import check_choice, check_int, check_number, check_timestep

__all__ = ["NoiseSchedule", "lookup", "per_example", "spaced_timesteps", "karras_sigmas", "karras_timesteps",
           "respaced", "REVERSE_VARIANCES", "SPACINGS", "SPACINGS_OF_T"]

REVERSE_VARIANCES = ("beta", "posterior")
SPACINGS_OF_T = ("uniform", "trailing", "leading", "quadratic")  # spaced_timesteps: the spacings T alone fixes
SPACINGS = (*SPACINGS_OF_T, "karras")  # respaced: karras_timesteps reads the schedule's noise levels


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A discrete variance schedule beta_1..beta_T and everything derived from it.

    Build one with `NoiseSchedule.linear`, `.cosine`, `.from_betas` or `.respace`; the constructor takes the
    full length-(T+1) array with betas[0] = 0.

    Fields (float64 unless said otherwise, shape (T+1,)):
        betas:  beta_t, betas[0] = 0
        alphas: alpha_t = 1 - beta_t
        alpha_bars: alpha_bar_t = prod_{s<=t} alpha_s, alpha_bars[0] = 1
        posterior_variances: beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t,
            the variance of q(x_{t-1} | x_t, x0) (DDPM eq. 7); 0 at t = 0 and t = 1.
        timesteps: long, the training step that index t stands for: 0, 1, ..., T, except after `respace`.
    """

    betas: Tensor
    name: str = "custom"
    timesteps: Tensor | None = None
    alphas: Tensor = field(init=False, repr=False)
    alpha_bars: Tensor = field(init=False, repr=False)
    posterior_variances: Tensor = field(init=False, repr=False)
    _reverse_variances: dict[str, Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = self.betas
        if not isinstance(betas, Tensor):
            raise TypeError(f"betas must be a torch.Tensor, got {type(betas).__name__}")
        if betas.dim() != 1 or betas.numel() < 2:
            raise ValueError(f"betas must be 1-D of length T+1 >= 2 (index 0 is the data), "
                             f"got shape {tuple(betas.shape)}")
        betas = betas.detach().to(device="cpu", dtype=torch.float64)
        if betas[0] != 0:
            raise ValueError(f"betas[0] must be 0 (index 0 is the data), got {betas[0].item()}")
        inner = betas[1:]
        if not torch.isfinite(inner).all() or (inner <= 0).any() or (inner >= 1).any():
            bad = inner[~((inner > 0) & (inner < 1))]
            raise ValueError(f"betas[1..T] must lie in the open interval (0, 1), got values such as {bad[:3].tolist()}")
        T = betas.numel() - 1
        steps = torch.arange(T + 1) if self.timesteps is None else torch.as_tensor(self.timesteps).long().cpu()
        if steps.shape != (T + 1,) or steps[0] != 0 or (steps[1:] <= steps[:-1]).any():
            raise ValueError(f"timesteps must be an increasing (T+1,) = ({T + 1},) sequence starting at 0, "
                             f"got {steps.tolist()[:8]}")
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        # beta_tilde_t for t >= 1 (DDPM eq. 7); alpha_bar_{t-1} is alpha_bars[t-1].
        posterior = torch.zeros_like(betas)
        posterior[1:] = (1.0 - alpha_bars[:-1]) / (1.0 - alpha_bars[1:]) * betas[1:]
        # sigma_t^2 = beta_tilde_t is 0 at t = 1; the decoder's likelihood needs sigma_1 > 0, so take beta_tilde_2.
        clipped = posterior.clone()
        clipped[1] = posterior[2] if T >= 2 else betas[1]
        for name, value in [("betas", betas), ("timesteps", steps), ("alphas", alphas), ("alpha_bars", alpha_bars),
                            ("posterior_variances", posterior),
                            ("_reverse_variances", {"beta": betas, "posterior": clipped})]:
            object.__setattr__(self, name, value)

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
               rescale: bool = False) -> NoiseSchedule:
        """DDPM's schedule: beta_t linear from beta_start (t=1) to beta_end (t=T).

        rescale: multiply beta_start and beta_end by 1000/T (Nichol & Dhariwal 2021), so that a chain of any
        length ends as close to noise as DDPM's at T = 1000: alpha_bar_T = 4e-5 there, 8e-6 at T = 50. Without it
        a short chain never reaches noise (T = 50: alpha_bar_T = 0.6).
        """
        check_int("T", T)
        scale = 1000 / T if rescale else 1.0
        check_number("beta_start", beta_start * scale, 0, 1, low_open=True, high_open=True)
        if not 0 < beta_end * scale < 1:
            raise ValueError(f"beta_end must lie in (0, 1), got {beta_end * scale:.4g}"
                             + (f" after rescaling by 1000/T; T={T} is too small for rescale=True (use T >= "
                                f"{math.floor(1000 * beta_end) + 1})" if rescale else ""))
        betas = torch.linspace(beta_start * scale, beta_end * scale, T, dtype=torch.float64)
        return cls(torch.cat([torch.zeros(1, dtype=torch.float64), betas]), name=f"linear(T={T})")

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """Nichol & Dhariwal (2021): alpha_bar_t = f(t)/f(0), f(t) = cos^2(pi/2 (t/T + s)/(1 + s)).

        beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, clipped at max_beta so the last steps stay finite;
        alpha_bars are then recomputed from the clipped betas, so the fields stay consistent.
        """
        check_int("T", T)
        check_number("s", s, low=0)
        check_number("max_beta", max_beta, 0, 1, low_open=True, high_open=True)
        steps = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]
        betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(min=0.0, max=max_beta)
        betas = betas.clamp(min=1e-12)  # keep beta_1 > 0 when s = 0
        return cls(torch.cat([torch.zeros(1, dtype=torch.float64), betas]), name=f"cosine(T={T})")

    @classmethod
    def from_betas(cls, betas_1_to_T: Tensor | list[float]) -> NoiseSchedule:
        """A schedule from beta_1..beta_T (length T); betas[0] = 0 is prepended."""
        betas = torch.as_tensor(betas_1_to_T, dtype=torch.float64)
        if betas.dim() != 1 or betas.numel() < 1:
            raise ValueError(f"betas_1_to_T must be 1-D with at least one entry, got shape {tuple(betas.shape)}")
        return cls(torch.cat([torch.zeros(1, dtype=torch.float64), betas]))

    def respace(self, timesteps: Tensor | list[int]) -> NoiseSchedule:
        """The schedule that jumps between the given steps s_1 < ... < s_K of this one (improved-diffusion's respacing).

        It keeps alpha_bar at those steps, alpha_bar'_k = alpha_bar_{s_k}, so q(x_k' | x0) is this schedule's
        q(x_{s_k} | x0); its betas are the jumps' variances, beta'_k = 1 - alpha_bar_{s_k} / alpha_bar_{s_{k-1}}.
        Index k of the result stands for training step `timesteps[k]` (composed through an earlier respacing).
        timesteps: K >= 1 increasing steps in 1..T; end at T for a sampler that starts from noise.
        """
        steps = torch.as_tensor(timesteps)
        if steps.dim() != 1 or steps.numel() < 1 or steps.is_floating_point() or steps.dtype == torch.bool:
            raise ValueError(f"timesteps must be a non-empty 1-D sequence of integer steps, got {timesteps!r}")
        steps = steps.long().cpu()
        if (steps[1:] <= steps[:-1]).any() or steps[0] < 1 or steps[-1] > self.T:
            raise ValueError(f"timesteps must increase strictly within 1..T={self.T}, got {steps.tolist()[:8]}...")
        alpha_bars = self.alpha_bars[torch.cat([torch.zeros(1, dtype=torch.long), steps])]
        betas = torch.zeros_like(alpha_bars)
        betas[1:] = 1 - alpha_bars[1:] / alpha_bars[:-1]
        return NoiseSchedule(betas, name=f"{self.name} respaced to {len(steps)} steps",
                             timesteps=self.timesteps[torch.cat([torch.zeros(1, dtype=torch.long), steps])])

    def to(self, device: torch.device | str) -> NoiseSchedule:
        """The same schedule with its arrays on `device` (float32 on MPS, which has no float64).

        Samplers call it once, so that the look-ups of every step index on the device instead of copying the
        arrays from the host (a copy to the GPU waits for the GPU).
        """
        device = torch.device(device)
        dtype = torch.float32 if device.type == "mps" else torch.float64
        moved = copy.copy(self)
        for name in ("betas", "alphas", "alpha_bars", "posterior_variances"):
            object.__setattr__(moved, name, getattr(self, name).to(device, dtype))
        object.__setattr__(moved, "timesteps", self.timesteps.to(device))
        object.__setattr__(moved, "_reverse_variances",
                           {k: v.to(device, dtype) for k, v in self._reverse_variances.items()})
        return moved

    # ---------------------------------------------------------------------------------- queries
    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.numel() - 1

    def snr(self, t: int | Tensor) -> Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t), float64, for t in 0..T (SNR(0) = inf)."""
        alpha_bar = self.alpha_bars[check_timestep(t, self.T, low=0, device=self.alpha_bars.device)]
        return alpha_bar / (1.0 - alpha_bar)

    def reverse_variances(self, kind: str | Tensor = "beta") -> Tensor:
        """sigma_t^2 of the reverse process p(x_{t-1} | x_t), shape (T+1,).

        kind="beta":      sigma_t^2 = beta_t
        kind="posterior": sigma_t^2 = beta_tilde_t; at t = 1, where beta_tilde_1 = 0, beta_tilde_2 is used so the
                          decoder's likelihood stays finite.
        For data whose every coordinate has variance <= 1 (as data scaled to [-1, 1]), these two bracket the true
        reverse variance Var(x_{t-1} | x_t): beta_tilde_t below, beta_t above (DDPM sec. 3.2; lesson 02 shows it
        for Gaussian data). Data with a larger variance can exceed beta_t.
        kind may also be a (T+1,) tensor of sigma_t^2 > 0 (t >= 1) chosen by the caller, e.g. the exact reverse
        variances of Gaussian data; it is checked and returned in float64 on the CPU.
        """
        if isinstance(kind, Tensor):
            if kind.shape != (self.T + 1,):
                raise ValueError(f"variance must have shape (T+1,) = ({self.T + 1},), got {tuple(kind.shape)}")
            sigma2 = kind.detach().to(device="cpu", dtype=torch.float64)
            if not torch.isfinite(sigma2).all() or (sigma2[1:] <= 0).any():
                raise ValueError("variance[1..T] must be finite and > 0")
            return sigma2
        if kind not in REVERSE_VARIANCES:
            raise ValueError(f"variance must be 'beta', 'posterior' or a (T+1,) tensor, got {kind!r}")
        return self._reverse_variances[kind]

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name}, alpha_bar_T={self.alpha_bars[-1].item():.3g})"


def spaced_timesteps(T: int, num_steps: int, spacing: str = "uniform") -> Tensor:
    """num_steps increasing steps of 1..T, the ones a short sampler visits (for `NoiseSchedule.respace`).

    A sampler over them starts at the last one and jumps from step to step down to t = 0 (the data); S = num_steps.

        "uniform"    round(k T / S), k = 1..S: evenly spaced, ending at T (jumps of about T / S each).
        "trailing"   round(T - j T / S), j = 0..S-1, the grid Lin et al. (2024, "Common diffusion noise schedules
                     and sample steps are flawed", sec. 3.3) recommend: it starts at T and is "uniform" itself in
                     the lecture's 1-based index (diffusers' 0-based code subtracts 1 from every step).
        "leading"    1 + j floor(T / S), j = 0..S-1: DDIM's code and diffusers' default, the flawed grid of Lin et
                     al.: it starts below T (981 for S = 50, T = 1000), where q(x_t) is not N(0, I), and spends
                     its last jump on t = 1 -> 0, where almost nothing is left to remove.
        "quadratic"  max(k, round(T (k / S)^2)), k = 1..S: small jumps near the data, big ones near noise (DDIM's
                     choice for CIFAR-10, sec. 5 and app. D.2; its code squares linspace(0, sqrt(0.8 T), S) and
                     stops at 0.8 T: here the same k^2 profile ends at T). The floor k keeps the steps distinct
                     when S^2 > T, where round(T (k / S)^2) repeats for small k.

    All four end at step T except "leading", and all four are 1..T itself when num_steps = T. (The fifth spacing of
    `respaced`, "karras", depends on the schedule's noise levels, not on T alone: `karras_timesteps`.)
    """
    check_int("T", T)
    check_int("num_steps", num_steps)
    check_choice("spacing", spacing, SPACINGS_OF_T)
    if num_steps > T:
        raise ValueError(f"num_steps must be <= T={T}, got {num_steps}")
    k = torch.arange(1, num_steps + 1, dtype=torch.float64)
    if spacing in ("uniform", "trailing"):  # the same steps: T - j T / S = k T / S with k = S - j
        return (k * T / num_steps).round().long()
    if spacing == "leading":
        return 1 + (k.long() - 1) * (T // num_steps)
    return torch.maximum(k, (T * (k / num_steps) ** 2).round()).long()


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> Tensor:
    """EDM's noise levels (Karras et al. 2022, eq. 5), decreasing from sigma_max to sigma_min, float64 (num_steps,):

        sigma_i = (sigma_max^(1/rho) + i / (N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i = 0..N-1.

    rho = 1 is uniform in sigma; larger rho crowds the levels near sigma_min (rho = 7 in the paper). N = 1 gives
    sigma_max alone.
    """
    check_number("sigma_min", sigma_min, 0.0, low_open=True)
    check_number("sigma_max", sigma_max, sigma_min)
    check_int("num_steps", num_steps)
    check_number("rho", rho, 0.0, low_open=True)
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)  # [0] for N = 1
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (top + ramp * (bottom - top)) ** rho


def karras_timesteps(schedule: NoiseSchedule, num_steps: int, rho: float = 7.0, t_max: int | None = None) -> Tensor:
    """The num_steps training steps of `schedule` nearest to EDM's levels, increasing in 1..t_max (for `respace`).

    sigma_EDM_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) of steps 1..t_max (t_max: T unless given) bounds the
    levels: sigma_min = sigma_EDM_1, sigma_max = sigma_EDM_{t_max}; each level of `karras_sigmas` goes to the step
    nearest in log sigma. Where several levels fall on one step (many steps, near the ends) the steps are pushed
    apart to stay distinct: the k-th smallest is kept within k..t_max - num_steps + k and above the one before.
    The steps come back increasing, from 1 to t_max (a sampler visits them from t_max down).
    """
    check_schedule(schedule)
    check_int("num_steps", num_steps)
    t_max = schedule.T if t_max is None else check_int("t_max", t_max)
    if t_max > schedule.T:
        raise ValueError(f"t_max must be <= T={schedule.T}, got {t_max}")
    if num_steps > t_max:
        raise ValueError(f"num_steps must be <= {'T' if t_max == schedule.T else 't_max'}={t_max}, got {num_steps}")
    alpha_bar = schedule.alpha_bars.detach().to("cpu", torch.float64)[1:t_max + 1]
    log_sigma = 0.5 * ((1 - alpha_bar) / alpha_bar).log()  # increasing in t
    levels = karras_sigmas(log_sigma[0].exp().item(), log_sigma[-1].exp().item(), num_steps, rho).flip(0)
    nearest = (levels.log()[:, None] - log_sigma[None, :]).abs().argmin(dim=1) + 1  # steps 1..t_max
    steps: list[int] = []
    for k, step in enumerate(nearest.tolist(), start=1):
        step = min(max(step, k), t_max - num_steps + k)
        steps.append(max(step, steps[-1] + 1) if steps else step)
    return torch.tensor(steps, dtype=torch.long)


def check_schedule(schedule: object) -> NoiseSchedule:
    """schedule must be a NoiseSchedule (the entry points' check of their `schedule` argument)."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


def respaced(schedule: NoiseSchedule, num_steps: int | None, spacing: str = "uniform",
             t_start: int | None = None) -> NoiseSchedule:
    """The schedule a sampler with num_steps steps runs on: the one place that picks a short sampler's steps.

    num_steps steps of 1..T (`spaced_timesteps`, or `karras_timesteps` for spacing "karras"), and the schedule that
    jumps between them (`NoiseSchedule.respace`). num_steps None: every step, the schedule itself.
    t_start: a start part-way (SDEdit, image-to-image): the steps are picked in 1..t_start instead, so the last index
    stands for t_start, where the sampler's x_T is; they must end there ("leading" starts below and is refused).
    `sampling.sample` and `ddim.ddim_invert` both call it, so an inversion and its decoding with the same num_steps
    and spacing visit the same steps.
    """
    check_schedule(schedule)
    check_choice("spacing", spacing, SPACINGS)
    top = schedule.T
    if t_start is not None:
        top = check_int("t_start", t_start)
        if t_start > schedule.T:
            raise ValueError(f"t_start must lie in 1..T={schedule.T}, got {t_start}")
        if num_steps is None:
            return schedule.respace(torch.arange(1, t_start + 1))
    elif num_steps is None:
        return schedule
    if t_start is not None and check_int("num_steps", num_steps) > t_start:
        raise ValueError(f"num_steps must be <= t_start={t_start}, got {num_steps}")
    if spacing == "karras":
        steps = karras_timesteps(schedule, num_steps, t_max=top)
    else:
        steps = spaced_timesteps(top, num_steps, spacing)
    if t_start is not None and steps[-1] != t_start:
        raise ValueError(f"spacing {spacing!r} picks steps that end at {int(steps[-1])}, below t_start={t_start} "
                         f"where x_T is; use a spacing that ends at t_start (uniform, trailing, quadratic, karras)")
    return schedule.respace(steps)


def per_example(value: Tensor | float, like: Tensor) -> Tensor | float:
    """A (B,) or () tensor shaped (B, 1, ..., 1) (or (1, ..., 1)) to multiply a batch like (B, ...), in like's dtype.

    A Python number (one value for the whole batch) is returned as it is: multiplying by it costs no tensor.
    """
    if not isinstance(value, Tensor):
        return value
    return value.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def lookup(values: Tensor, t: int | Tensor, like: Tensor) -> Tensor:
    """The per-step coefficient values[t] for a batch `like` (B, ...): shape (B, 1, ..., 1), like's dtype and device.

    values: a (T+1,) schedule array.  t: an int or a (B,) LongTensor of steps; a tensor is not checked here (the
    entry points check it: reading its values back would stall a GPU). Move the schedule to the data's device first
    (`NoiseSchedule.to`) and no step copies anything.
    """
    if isinstance(t, int) and not 0 <= t < len(values):  # free to check (no tensor); a negative t would wrap around
        raise ValueError(f"t must lie in 0..T={len(values) - 1}, got {t}")
    return per_example(values.to(like.device)[t], like)
