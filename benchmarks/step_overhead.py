"""Per-step overhead of ancestral sampling (Algorithm 2) beside diffusers' DDPMScheduler.

    python -m benchmarks.step_overhead [--repeats 9] [--device cpu|cuda] [--threads 1] [--loop-steps 50]

Two tables, for a 20000x2 and a 16x2 batch of vectors and a 128x1x8x8 batch of images:

1. One step x_t -> x_{t-1} = mu_theta(x_t, t) + sigma_t z, given eps = eps_theta(x_t, t) (precomputed: the
   step is timed, not a network), at t = 500 of DDPM's linear schedule (T = 1000) with sigma_t^2 = beta_t:
   - ddpm_scratch: `p_sample_step(schedule, x_t, t_batch, eps=eps, generator=g)` with the schedule moved to the
     device once and t_batch a (B,) LongTensor on the device (rows at different steps, as in training);
   - ddpm_scratch, int t: the same function given the Python int t (every row of a sampling step has the same
     t; the coefficients are then one number each instead of a (B, 1) column gathered per row; `ddpm_sample`
     calls it so); the table says "fails" where it raises;
   - diffusers: `DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type="fixed_large",
     clip_sample=False).step(eps, t - 1, x_t, generator=g)`.
2. A whole ancestral loop of --loop-steps steps with the eps model `lambda x, t: 0.1 * x`, from drawing x_T to
   x_0: `ddpm_sample` on the schedule respaced to those steps (respaced once, as diffusers' `set_timesteps`),
   given x_T = torch.randn(shape, generator=g) drawn in the timed call; `sampling.sample(..., num_steps=N)`, the
   entry point, which also respaces the schedule in every call; against the loop of diffusers' DDPM pipeline
   (`set_timesteps` once, then `step` at every `scheduler.timesteps`, "trailing" spacing).

Each figure is the median over --repeats runs (with the runs' min-max) of the time per call, each run long enough
(>= 50 ms) to hide the timer; the contenders take turns within every round of runs (`common.per_call_seconds`).

Why the figures compare the same work (checked numerically before timing, see `check_equivalence`):
- Index: diffusers counts timesteps from 0 (its alphas_cumprod[k] is the lecture's alpha_bar_{k+1}), this
  package from 1 (index 0 is the data), so our t is diffusers' t + 1.
- Variance: diffusers' "fixed_large" is sigma_t^2 = beta_t (its `_get_variance` returns current_beta_t); its
  "fixed_small" is beta_tilde_t. The check compares fixed_large with our betas at every t, and shows that the
  other pairing of indices (t_ours = t_diffusers) would not pass.
- Noise: both draw z with torch.randn(shape, generator=g, device, dtype) of the data, so with generators of the
  same seed the two steps must return the same x_{t-1} up to float32 rounding (their coefficients are computed
  in float32 by diffusers, in float64 and rounded by us). At t = 1 (diffusers' 0) neither adds noise, which
  compares the means alone.
- Loop: both draw x_T and then one z per step from the same generator; the outputs agree except that diffusers,
  on a respaced chain, adds sigma z at its last step (its t = 19 > 0) where Algorithm 2 returns the mean; the
  check rebuilds that last z from the generator's stream and compares the rest (to float32 rounding).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks.common import machine, per_call_seconds
from ddpm_scratch.ddpm import ddpm_sample, p_sample_step
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule, spaced_timesteps

T = 1000
T_STEP = 500  # the lecture's t of the timed step (diffusers' 499)
SEED = 0
BATCHES = ((20000, 2), (16, 2), (128, 1, 8, 8))


def diffusers_scheduler(**extra):
    """DDPM's linear schedule in diffusers with sigma_t^2 = beta_t and no clipping of the predicted x0."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type="fixed_large",
                         clip_sample=False, **extra)


def eps_model(x: Tensor, t: Tensor) -> Tensor:
    """A trivial eps model, so that the loop times the sampler rather than a network."""
    return 0.1 * x


def generator(device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(SEED)


def inputs(shape: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """x_t and eps of the given shape, float32 on the device, the same for every contender."""
    g = torch.Generator().manual_seed(SEED + 1)
    return torch.randn(shape, generator=g).to(device), torch.randn(shape, generator=g).to(device)


def ours_loop(schedule: NoiseSchedule, shape: tuple[int, ...], device: torch.device, g: torch.Generator,
              hook=None) -> Tensor:
    """Algorithm 2 as the old `ddpm_sample(eps_model, schedule, shape)` ran it: x_T ~ N(0, I) drawn from g, then
    one z per step from g (the same stream as diffusers' loop)."""
    return ddpm_sample(eps_model, schedule, torch.randn(shape, generator=g, device=device), generator=g, hook=hook)


def diffusers_loop(scheduler, shape: tuple[int, ...], device: torch.device, g: torch.Generator) -> Tensor:
    """The sampling loop of diffusers' DDPMPipeline: x_T ~ N(0, I), then one `step` per scheduler timestep."""
    x = torch.randn(shape, generator=g, device=device)
    for t in scheduler.timesteps:
        x = scheduler.step(eps_model(x, t), t, x, generator=g).prev_sample
    return x


def check_equivalence(device: torch.device, loop_steps: int) -> list[str]:
    """Raise AssertionError unless both libraries compute the same steps; return what was compared."""
    lines = []
    ours = NoiseSchedule.linear(T=T)
    theirs = diffusers_scheduler()

    # sigma_t^2: diffusers' fixed_large at its t - 1 against our beta_t, at every t. diffusers forms it in float32 as
    # 1 - alpha_bar_t / alpha_bar_{t-1}: a few float32 roundings of numbers <= 1 (2^-24 each), far below the gap
    # between neighbouring betas (0.0199 / 999 = 2e-5), which the wrong pairing of indices shows.
    fixed_large = torch.stack([theirs._get_variance(k) for k in range(T)]).double()
    beta = ours.reverse_variances("beta")
    err = (fixed_large - beta[1:]).abs().max().item()
    shifted = (fixed_large[1:] - beta[1:-1]).abs().max().item()
    assert err < 8 * 2.0**-24 < shifted, (err, shifted)
    lines.append(f"sigma_t^2: diffusers fixed_large(t-1) = our beta_t at every t to {err:.1e} "
                 f"(pairing t with t instead: {shifted:.1e})")

    # One step with the same x_t, eps, t and seed: same x_{t-1}. At t = 1 (no noise) this is the mean alone.
    # Tolerance: float32 rounding, dominated by diffusers' float32 beta_1 = 1 - fl(1 - 1e-4) (6e-4 relative), which
    # enters through sqrt(1 - alpha_bar_1) eps; 1e-5 of the data's scale covers it.
    schedule = ours.to(device)
    for shape in BATCHES:
        x_t, eps = inputs(shape, device)
        for t in (T_STEP, 1):
            t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
            a = p_sample_step(schedule, x_t, t_batch, eps=eps, generator=generator(device))
            b = theirs.step(eps, t - 1, x_t, generator=generator(device)).prev_sample
            diff = (a - b).abs().max().item()
            scale = max(1.0, x_t.abs().max().item())
            assert diff < 1e-5 * scale, (shape, t, diff)
            if shape == BATCHES[0]:
                lines.append(f"one step at t = {t} (diffusers {t - 1}), same x_t, eps and seed, "
                             f"{'x_{t-1} = mean + sigma_t z' if t > 1 else 'mean only (no noise at t = 1)'}: "
                             f"max |ours - diffusers| = {diff:.1e} (|x_t| <= {scale:.1f})")

    # The loop: same x_T and z's; diffusers adds sqrt(1 - alpha_bar_{s_1}) z at its last step, Algorithm 2 not.
    # The model 0.1 x inflates x (x0 = 0.9 x / sqrt(alpha_bar) at first), so the tolerance is relative to |x_0|.
    shape = BATCHES[1]
    respaced = ours.respace(spaced_timesteps(T, loop_steps))
    theirs = diffusers_scheduler(timestep_spacing="trailing")
    theirs.set_timesteps(loop_steps)
    assert (theirs.timesteps.flip(0) + 1).tolist() == respaced.timesteps[1:].tolist()
    a = ours_loop(respaced, shape, device, generator(device))
    b = diffusers_loop(theirs, shape, device, generator(device))
    through_sample = sample(eps_model, ours, shape, num_steps=loop_steps, generator=generator(device), device=device)
    assert torch.equal(a, through_sample), "sampling.sample(num_steps=N) is not ddpm_sample on the respaced schedule"
    g = generator(device)
    for _ in range(loop_steps + 1):  # x_T, then one z per step, drawn one after the other as the loops do
        z_last = torch.randn(shape, generator=g, device=device)
    sigma_last = respaced.betas[1].sqrt().item()  # beta'_1 = 1 - alpha_bar_{s_1}: diffusers' fixed_large there
    diff = (a + sigma_last * z_last - b).abs().max().item()
    assert diff < 1e-5 * max(1.0, b.abs().max().item()), diff
    lines.append(f"{loop_steps}-step loop, same seed: ddpm_sample + sigma_1 z_last = diffusers' loop to {diff:.1e} "
                 f"(|x_0| <= {b.abs().max().item():.3g}; diffusers adds noise with sigma_1 = {sigma_last:.3f} at "
                 f"its last step, Algorithm 2 does not); sampling.sample(num_steps={loop_steps}) = ddpm_sample on "
                 f"the respaced schedule, bit for bit")

    if device.type == "cuda":  # the point of keeping checks out of the step: no host synchronisation per step
        x_t, eps = inputs(BATCHES[0], device)
        t_batch = torch.full((BATCHES[0][0],), T_STEP, dtype=torch.long, device=device)
        theirs = diffusers_scheduler()
        for name, fn in [("p_sample_step, t (B,)", lambda: p_sample_step(schedule, x_t, t_batch, eps=eps,
                                                                          generator=generator(device))),
                         ("p_sample_step, int t", lambda: p_sample_step(schedule, x_t, T_STEP, eps=eps,
                                                                         generator=generator(device))),
                         ("diffusers step", lambda: theirs.step(eps, T_STEP - 1, x_t, generator=generator(device)))]:
            lines.append(f"host synchronisations in {name}: {host_syncs(fn)}")
        # the loop's set-up (the schedule moved to the GPU, its steps read once) may wait for the GPU; its steps
        # must not: the hook turns the check on after the first step
        syncs = host_syncs(lambda: ours_loop(respaced, BATCHES[0], device, generator(device), after_first),
                           from_start=False)
        lines.append(f"host synchronisations in ddpm_sample, steps 2..{loop_steps}: {syncs}")
    return lines


def after_first(x: Tensor, t: int) -> Tensor:
    """A sampler's hook that makes CUDA's synchronising calls errors from its first call on (for `host_syncs`)."""
    torch.cuda.set_sync_debug_mode("error")
    return x


def host_syncs(fn: Callable[[], object], *, from_start: bool = True) -> str:
    """'none' if fn runs with CUDA's synchronising calls made errors (torch.cuda.set_sync_debug_mode), else why.
    from_start False: fn turns the check on itself (a sampler with the hook `after_first`)."""
    torch.cuda.synchronize()
    if from_start:
        torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        return "none"
    except RuntimeError as error:
        return f"raised {str(error).splitlines()[0][:160]!r}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def fails(fn: Callable[[], object]) -> str | None:
    """None if fn runs on this device, else the first line of its error."""
    try:
        fn()
        return None
    except RuntimeError as error:
        return str(error).splitlines()[0][:100]


def step_contenders(shape: tuple[int, ...], device: torch.device) -> dict[str, Callable[[], object]]:
    schedule = NoiseSchedule.linear(T=T).to(device)  # once, as ddpm_sample does
    theirs = diffusers_scheduler()
    x_t, eps = inputs(shape, device)
    t_batch = torch.full((shape[0],), T_STEP, dtype=torch.long, device=device)
    g_ours, g_int, g_theirs = generator(device), generator(device), generator(device)
    contenders = {
        "ours": lambda: p_sample_step(schedule, x_t, t_batch, eps=eps, generator=g_ours),
        "ours, int t": lambda: p_sample_step(schedule, x_t, T_STEP, eps=eps, generator=g_int),
        "diffusers": lambda: theirs.step(eps, T_STEP - 1, x_t, generator=g_theirs),
    }
    return {name: fn for name, fn in contenders.items() if not fails(fn)}


def loop_contenders(shape: tuple[int, ...], device: torch.device, steps: int) -> dict[str, Callable[[], object]]:
    linear = NoiseSchedule.linear(T=T)
    respaced = linear.respace(spaced_timesteps(T, steps))
    theirs = diffusers_scheduler(timestep_spacing="trailing")
    theirs.set_timesteps(steps)
    g_ours, g_sample, g_theirs = generator(device), generator(device), generator(device)
    return {
        "ours": lambda: ours_loop(respaced, shape, device, g_ours),
        "sample": lambda: sample(eps_model, linear, shape, num_steps=steps, generator=g_sample, device=device),
        "diffusers": lambda: diffusers_loop(theirs, shape, device, g_theirs),
    }


def cell(seconds: tuple[float, float, float], unit: float) -> str:
    median, low, high = (s / unit for s in seconds)
    return f"{median:.1f} ({low:.1f}-{high:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per figure (median, min-max shown)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--loop-steps", type=int, default=50, help="steps of the whole sampling loop")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1 or not 1 <= args.loop_steps <= T:
        parser.error(f"--repeats and --threads must be >= 1 and --loop-steps in 1..{T}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print(f"machine: {machine()}; device {device}")
    for line in check_equivalence(device, args.loop_steps):
        print(f"check: {line}")
    print(f"\nmedian (min-max) of {args.repeats} runs of >= 50 ms each, per call; ratio = ours / diffusers\n")

    print(f"One ancestral step at t = {T_STEP} of linear(T={T}), sigma_t^2 = beta_t, eps given (microseconds):\n")
    print("| batch | ddpm_scratch p_sample_step, t (B,) | ratio | p_sample_step, int t | ratio "
          "| diffusers DDPMScheduler.step |")
    print("|---|---:|---:|---:|---:|---:|")
    for shape in BATCHES:
        s = per_call_seconds(step_contenders(shape, device), args.repeats)
        cells = [f"{cell(s[name], 1e-6)} | {s[name][0] / s['diffusers'][0]:.2f}" if name in s else "fails | -"
                 for name in ("ours", "ours, int t")]
        print(f"| {'x'.join(map(str, shape))} | {' | '.join(cells)} | {cell(s['diffusers'], 1e-6)} |", flush=True)

    print(f"\nWhole loop of {args.loop_steps} steps, eps model 0.1 x, x_T drawn (milliseconds):\n")
    print("| batch | ddpm_scratch ddpm_sample (respaced once) | ratio | sampling.sample(num_steps) | ratio "
          "| diffusers step loop (set_timesteps once) |")
    print("|---|---:|---:|---:|---:|---:|")
    for shape in BATCHES:
        s = per_call_seconds(loop_contenders(shape, device, args.loop_steps), args.repeats)
        print(f"| {'x'.join(map(str, shape))} | {cell(s['ours'], 1e-3)} | {s['ours'][0] / s['diffusers'][0]:.2f} "
              f"| {cell(s['sample'], 1e-3)} | {s['sample'][0] / s['diffusers'][0]:.2f} "
              f"| {cell(s['diffusers'], 1e-3)} |", flush=True)


if __name__ == "__main__":
    main()
