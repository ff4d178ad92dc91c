"""Lecture 4: progressive distillation (Salimans & Ho, ICLR 2022, Algorithm 2).

A deterministic DDIM sampler (eta = 0) with N steps is a fixed map x_T -> x0. A student with N / 2 steps is trained
so that each of its steps lands where two of the teacher's land; the student then becomes the teacher and the
number of steps halves again, N -> N / 2 -> ... -> 4 (or 1).

Steps. A sampler with N steps runs on the base schedule respaced to N of its training steps
(`schedules.respaced(schedule, N, spacing)`). With "uniform"/"trailing" spacing, round(k T / (N / 2)) =
round(2k T / N): the student's index k is the teacher's index 2k, so the student step k -> k-1 spans exactly the
teacher's two steps 2k -> 2k-1 -> 2k-2. The student is an ordinary model of the base schedule's training steps
(it is called at `timesteps[k]`, as `reverse_steps.eps_at` calls every model), so
`sampling.sample(student, schedule, shape, sampler="ddim", num_steps=N // 2)` samples it, and so does every other
sampler (which is not what it was trained for).

Here are the stage's loss and its target; the stages themselves (lines 2, 10-11: a copy of the teacher trained by
the course's one loop, then the next halving) are `machinery.distillation.distill_stage` and
`progressive_distillation`.

Algorithm 2, numbered here as the code cites it (the paper's N is the student's number of steps):

     1  for each halving:
     2      student theta <- teacher eta
     3      x ~ data
     4      t = i / N, i ~ U{1..N}
     5      eps ~ N(0, I);  z_t = alpha_t x + sigma_t eps
     6      t' = t - 0.5 / N,  t'' = t - 1 / N
     7      z_t' and z_t'': two DDIM steps of the teacher
     8      x~ = the target below
     9      L = w(lambda_t) ||x~ - x_hat_theta(z_t)||^2
    10      theta <- theta - gamma grad L  (repeated: lines 3-10 are the stage's training loop)
    11      teacher eta <- theta;  N <- N / 2

The target (lines 5-9; alpha = sqrt(abar), sigma = sqrt(1 - abar) at each index). From z_t the teacher
takes two DDIM steps (DDIM eq. 12 at eta = 0, `ddim.ddim_step`):

    z_t'  = alpha_t'  x_hat(z_t, t)  + sigma_t'  eps_hat(z_t, t),                  t' = t - 1/(2N) in the paper
    z_t'' = alpha_t'' x_hat(z_t', t') + sigma_t'' eps_hat(z_t', t'),               t'' = t - 1/N.

One student DDIM step from z_t with prediction x~ (and eps~ = (z_t - alpha_t x~) / sigma_t, eq. 9) lands on

    z_t'' = alpha_t'' x~ + sigma_t'' (z_t - alpha_t x~) / sigma_t,

which solved for x~ gives the paper's target (Algorithm 2, line 8)

    x~ = (z_t'' - (sigma_t'' / sigma_t) z_t) / (alpha_t'' - (sigma_t'' / sigma_t) alpha_t).        (`x0_target`)

The denominator is sin(phi_t - phi_t'') / sigma_t with phi = arctan(sigma / alpha), positive for t'' < t. At the
last student step t'' is the data (abar = 1, sigma_t'' = 0) and x~ = z_t'': the teacher's own final x_hat. (The
paper's continuous schedule clips log-SNR there, which makes the formula singular; the respaced discrete schedule
has abar_0 = 1 exactly, so no special case is needed.)

The loss (Algorithm 2, line 9 and sec. 4): L = w(t) ||x~ - x_hat_student(z_t)||^2 in x-space, with
    "snr_trunc"  w = max(SNR, 1), the paper's truncated SNR weighting (= max(||x - x_hat||^2, ||eps - eps_hat||^2)),
    "snr+1"      w = SNR + 1, which is the MSE in v (v~ = alpha eps~ - sigma x~),
    "snr"        w = SNR, which is the MSE in eps (L_simple's weighting; it ignores x at SNR -> 0).
The student keeps its teacher's parameterisation (it is initialised from the teacher's weights): eps, x0 or v,
converted through `forward.convert`; the teacher is an eps-model (`forward.as_eps_model` adapts it once). The
paper prefers x or v (an eps-student turns small errors into large ones in x_hat = (z - sigma eps_hat) / alpha where
alpha -> 0); with DDPM's linear schedule alpha_T ~ 0.006, not 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .checks import check_choice, check_int
from .ddim import ddim_step
from .forward import PREDICTIONS, convert, q_sample
from .nets.protocol import EpsModel
from .reverse_steps import eps_at
from .schedules import NoiseSchedule, lookup, respaced

__all__ = ["WEIGHTINGS", "DISTILL_SPACINGS", "x0_target", "teacher_two_steps", "distillation_target",
           "distillation_loss"]

WEIGHTINGS = ("snr_trunc", "snr+1", "snr")
DISTILL_SPACINGS = ("uniform", "trailing")  # the grids whose N / 2 steps are every other one of their N steps


def x0_target(schedule: NoiseSchedule, x_t: Tensor, t: int | Tensor, t_end: int | Tensor, *, x_end: Tensor) -> Tensor:
    """x~ such that one DDIM step (eta = 0) from x_t at index t with x0-prediction x~ lands on x_end at t_end < t.

    x~ = (x_end - (sigma_end / sigma_t) x_t) / (alpha_end - (sigma_end / sigma_t) alpha_t)  (Salimans & Ho,
    Algorithm 2, line 8), alpha = sqrt(abar), sigma = sqrt(1 - abar). x_t, x_end: (B, ...); t, t_end: int or (B,).
    """
    alpha_bar, alpha_bar_end = lookup(schedule.alpha_bars, t, x_t), lookup(schedule.alpha_bars, t_end, x_t)
    ratio = ((1 - alpha_bar_end) / (1 - alpha_bar)).sqrt()  # sigma_end / sigma_t
    return (x_end - ratio * x_t) / (alpha_bar_end.sqrt() - ratio * alpha_bar.sqrt())


@torch.no_grad()
def teacher_two_steps(teacher: EpsModel, teacher_schedule: NoiseSchedule, x_t: Tensor, i: Tensor) -> Tensor:
    """The teacher's two DDIM steps (eta = 0) on its respaced schedule, index i -> i-1 -> i-2 (Alg. 2, lines 6-7).

    teacher: an eps-model of the base schedule's training steps.  x_t: (B, ...) at index i (a (B,) LongTensor of
    indices in 2..N). Returns x at index i - 2.
    """
    eps = eps_at(teacher, teacher_schedule, x_t, i)
    x_mid = ddim_step(teacher_schedule, x_t, i, i - 1, eps=eps)
    eps = eps_at(teacher, teacher_schedule, x_mid, i - 1)
    return ddim_step(teacher_schedule, x_mid, i - 1, i - 2, eps=eps)


def distillation_target(teacher: EpsModel, teacher_schedule: NoiseSchedule, x_t: Tensor, i: Tensor) -> Tensor:
    """x~ for a student step from teacher index i to i - 2, i.e. from student index i / 2 to i / 2 - 1 (Alg. 2,
    lines 6-8): the x0-prediction with which one DDIM step lands where the teacher's two steps land."""
    x_end = teacher_two_steps(teacher, teacher_schedule, x_t, i)
    return x0_target(teacher_schedule, x_t, i, i - 2, x_end=x_end)


def check_steps(schedule: NoiseSchedule, num_steps: int, spacing: str) -> None:
    """num_steps (the teacher's) must be even, at most T, and its halving must keep every other step (spacing)."""
    check_int("num_steps", num_steps, low=2)
    if num_steps % 2:
        raise ValueError(f"num_steps (the teacher's steps) must be even so that the student takes half of them, "
                         f"got {num_steps}")
    if num_steps > schedule.T:
        raise ValueError(f"num_steps must be <= T={schedule.T}, got {num_steps}")
    check_choice("spacing", spacing, DISTILL_SPACINGS)
    teacher_steps = respaced(schedule, num_steps, spacing).timesteps
    student_steps = respaced(schedule, num_steps // 2, spacing).timesteps
    if not torch.equal(teacher_steps[::2], student_steps):  # student index k = teacher index 2k (module docstring)
        raise ValueError(f"the student's {num_steps // 2} steps are not every other one of the teacher's {num_steps} "
                         f"on T={schedule.T} with spacing={spacing!r}")


def distillation_loss(student: nn.Module, teacher: EpsModel, schedule: NoiseSchedule, x0: Tensor, num_steps: int,
                      *, prediction: str = "eps", weighting: str = "snr_trunc", spacing: str = "uniform",
                      generator: torch.Generator | None = None) -> Tensor:
    """The loss of one stage on a batch of data x0 (Algorithm 2, lines 3-9), teacher with num_steps DDIM steps.

    schedule: the base schedule both networks were trained on (T steps); the teacher samples it respaced to
    num_steps, the student respaced to num_steps // 2. teacher: an eps-model (`forward.as_eps_model`); student: the
    network being trained, which outputs `prediction` (its teacher's parameterisation: it starts as a copy).
    generator draws the student index k and eps.
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    check_choice("prediction", prediction, PREDICTIONS)
    check_steps(schedule, num_steps, spacing)
    teacher_schedule = respaced(schedule, num_steps, spacing).to(x0.device)
    student_schedule = respaced(schedule, num_steps // 2, spacing).to(x0.device)
    k = torch.randint(1, num_steps // 2 + 1, (x0.shape[0],), generator=generator, device=x0.device)  # line 4
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = q_sample(schedule, x0, student_schedule.timesteps[k], noise=eps)  # line 5: z_t at training step t
    x_target = distillation_target(teacher, teacher_schedule, x_t, 2 * k)  # lines 6-8
    output = student(x_t, student_schedule.timesteps[k])
    x_hat = convert(student_schedule, x_t, k, to="x0", **{prediction: output})
    snr = student_schedule.snr(k).to(x0.dtype).reshape(-1, *[1] * (x0.dim() - 1))
    weight = {"snr_trunc": snr.clamp(min=1), "snr+1": snr + 1, "snr": snr}[weighting]
    return (weight * (x_hat - x_target) ** 2).flatten(1).sum(1).mean()  # line 9, summed over coordinates
