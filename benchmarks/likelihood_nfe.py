"""Log-likelihood through the probability-flow ODE: its error against the number of function evaluations (NFE), and
the digits model's ODE likelihood beside its discrete variational bound.

    python -m benchmarks.likelihood_nfe [--checkpoint PATH] [--train-steps 2000] [--digits 360] [--quick]
                                        [--mixtures-only]

1. Mixtures with the exact score (`score.mixture_score_fn` on the VP SDE: no training error): the relative error
   of `likelihood.ode_likelihood` against `GaussianMixture.log_prob` over a sweep of RK45 tolerances (rtol = atol),
   with the exact divergence and with Hutchinson probes (R per point: the error of one probe and of their mean),
   in 2-D and in 64-D.
2. Digits: the demo's network (trained here for --train-steps, or read from --checkpoint) on the test digits.
   It is an eps-model for the discrete steps 1..T, so its score exists at the grid times t_i = i / T only and
   RK45 cannot run on it. The ODE runs on the schedule's own VP process (`sde.ScheduleSDE`) with fixed Heun steps
   on grid times (`likelihood.heun_likelihood`, from t_1 = 1/T to t_T = 1): a uniform grid, quadratic grids of up to
   N steps and the full grid (all T steps), whose convergence is the check on the solver. Uniformly dequantised digits,
   one Hutchinson probe per image, bits/dim with the 3-bit offset of 17 levels (`likelihood.bits_per_dim`). Beside
   it, `losses.variational_bound` (bits/dim, 17-bin decoder) of the same network on the same digits.
   Rows give the mean over the digits +- its standard error, and the seconds they took.
Runtime on 2 shared CPU cores: mixtures ~1 minute; digits ~7 minutes of training (unless --checkpoint) and ~10 of
likelihoods for the 360 test digits (each row prints its seconds).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from benchmarks.common import machine
from ddpm_scratch.likelihood import bits_per_dim, dequantize, heun_likelihood, ode_likelihood
from ddpm_scratch.losses import variational_bound
from ddpm_scratch.score import GaussianMixture, mixture_score_fn
from ddpm_scratch.sde import VPSDE, ScheduleSDE

F64 = torch.float64


# ---------------------------------------------------------------------------------------------- mixtures
def mixture_2d() -> GaussianMixture:
    return GaussianMixture([1, 2, 1], [[-2.0, 0.0], [1.5, 1.5], [0.5, -2.0]],
                           [[[0.3, 0.1], [0.1, 0.2]], [[0.5, 0.0], [0.0, 0.2]], [[0.2, -0.05], [-0.05, 0.4]]])


def mixture_64d(K: int = 8, seed: int = 0) -> GaussianMixture:
    """K components, means ~ N(0, I), random full covariances with eigenvalues in [0.1, 1] (as in the tests)."""
    g = torch.Generator().manual_seed(seed)
    D = 64
    means = torch.randn(K, D, generator=g, dtype=F64)
    rotations = torch.linalg.qr(torch.randn(K, D, D, generator=g, dtype=F64))[0]
    eigenvalues = 0.1 + 0.9 * torch.rand(K, D, generator=g, dtype=F64)
    return GaussianMixture(torch.ones(K), means, rotations @ torch.diag_embed(eigenvalues) @ rotations.mT)


def mixture_table(name: str, mixture: GaussianMixture, points: int, probes: int, tolerances: list[float],
                  exact_tolerances: list[float]) -> None:
    sde = VPSDE()
    score_fn = mixture_score_fn(mixture, sde)
    x = mixture.sample(points, torch.Generator().manual_seed(1))
    log_prob = mixture.log_prob(x)
    print(f"\n### {name}: {points} points, log p from {log_prob.min():.1f} to {log_prob.max():.1f} nats "
          f"(mean {log_prob.mean():.1f})\n")
    print("| divergence | rtol = atol | NFE | mean abs. rel. error | max abs. rel. error | mean error (nats) "
          f"| rel. error of the mean of {probes} probes | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for exact, tols in ((True, exact_tolerances), (False, tolerances)):
        for tol in tols:
            R = 1 if exact else probes
            t0 = time.perf_counter()
            result = ode_likelihood(score_fn, sde, x.repeat_interleave(R, 0), exact_divergence=exact, rtol=tol,
                                    atol=tol, generator=torch.Generator().manual_seed(2))
            seconds = time.perf_counter() - t0
            estimates = result.log_likelihood.view(points, R)
            error = estimates - log_prob[:, None]
            relative = (error / log_prob.abs()[:, None]).abs()
            mean_of_probes = ((estimates.mean(1) - log_prob) / log_prob).abs().mean()
            print(f"| {'exact' if exact else 'Hutchinson'} | {tol:.0e} | {result.nfe} | {relative.mean():.2e} "
                  f"| {relative.max():.2e} | {error.mean():+.4f} | {'-' if exact else f'{mean_of_probes:.2e}'} "
                  f"| {seconds:.1f} |", flush=True)
            if exact:
                z = result.z  # the last one: the tightest tolerance
    # what an exact solve returns: log q_{t_min}(x) + log N(z; 0, I) - log q_1(z) (see tests/test_likelihood.py)
    (m0, s0), (m1, s1) = sde.marginal(1e-5), sde.marginal(1.0)
    floor = (mixture.log_prob(x, mean_coef=m0, std=s0) + sde.prior_log_prob(z)
             - mixture.log_prob(z, mean_coef=m1, std=s1) - log_prob) / log_prob.abs()
    print(f"\nFloor of an exact solve (the prior's mismatch with q_1 and the blur of t_min = 1e-5, no solver error): "
          f"mean abs. rel. error {floor.abs().mean():.2e}, max {floor.abs().max():.2e}")


# ---------------------------------------------------------------------------------------------- digits
def digits_model(checkpoint: str | None, steps: int):
    from ddpm_scratch.machinery.demo import demo_config
    from ddpm_scratch.machinery.train import load_model, train

    if checkpoint:
        model, schedule, _ = load_model(checkpoint)
        return model, schedule, f"read from {checkpoint}"
    t0 = time.perf_counter()
    result = train(demo_config(steps, seed=0, device="cpu"), out=None, progress=False)
    return result.ema_model, result.schedule.to("cpu"), (f"the demo's U-Net trained here for {steps} steps in "
                                                         f"{time.perf_counter() - t0:.0f} s (EMA weights)")


def mean_and_error(values: torch.Tensor) -> str:
    return f"{values.mean():.3f} +- {values.std() / math.sqrt(values.numel()):.3f}"


def digits_table(checkpoint: str | None, steps: int, n: int, grids: list[int]) -> None:
    from ddpm_scratch.machinery.data import DIGITS_LEVELS, load_digits
    from ddpm_scratch.machinery.train import flush_subnormals

    with flush_subnormals():
        model, schedule, origin = digits_model(checkpoint, steps)
        model = model.eval().requires_grad_(False)  # gradients with respect to x only
        x0 = load_digits("test")[0][:n]
        D = x0[0].numel()
        print(f"\n### Digits: {n} test images, {origin}; T = {schedule.T}\n")
        print("| quantity | steps | NFE | bits/dim | s |")
        print("|---|---:|---:|---:|---:|")
        t0 = time.perf_counter()
        bound = variational_bound(model, schedule, x0, num_bins=DIGITS_LEVELS,
                                  generator=torch.Generator().manual_seed(3))
        seconds = time.perf_counter() - t0
        print(f"| variational bound (losses.variational_bound, 17-bin decoder) | {schedule.T} | {schedule.T} "
              f"| {mean_and_error(bound.total)} | {seconds:.0f} |")
        print(f"| of which L_T + L_0 (prior and decoder terms) | | | {bound.prior.mean():.5f}, "
              f"{bound.decoder.mean():.5f} | |", flush=True)

        sde = ScheduleSDE(schedule)
        score_fn = sde.score_fn(model)
        x = dequantize(x0, levels=DIGITS_LEVELS, generator=torch.Generator().manual_seed(4))
        T = schedule.T

        def heun_row(label: str, steps: list[int], data: torch.Tensor) -> torch.Tensor:
            t0 = time.perf_counter()
            result = heun_likelihood(score_fn, sde, data, [i / T for i in steps],
                                     generator=torch.Generator().manual_seed(5))
            bpd = bits_per_dim(result.log_likelihood, D, levels=DIGITS_LEVELS)
            print(f"| {label} | {len(steps) - 1} | {result.nfe} | {mean_and_error(bpd)} "
                  f"| {time.perf_counter() - t0:.0f} |", flush=True)
            return bpd

        uniform = [1] + list(range(10, T + 1, 10))  # t_1, then every 10th grid time
        heun_row("ODE, Heun, uniform grid (every 10th grid time), dequantised", uniform, x)
        for N in grids:
            heun_row(f"ODE, Heun, quadratic grid of {N}, dequantised", quadratic_grid(T, N), x)
        bpd = heun_row("ODE, Heun, the full grid (every step 1..T), dequantised", list(range(1, T + 1)), x)
        difference = bpd.double() - bound.total
        print(f"| ODE (full grid) - variational bound, per image | | | {mean_and_error(difference)} | |")
        heun_row(f"(not dequantised, for scale only: not a bound) quadratic grid of {grids[0]}",
                 quadratic_grid(T, grids[0]), x0)


def quadratic_grid(T: int, N: int) -> list[int]:
    """Grid steps i_k = round(1 + (T - 1) (k / N)^2), k = 0..N, without repeats (so fewer than N steps for large N):
    1 to T, dense where the noise is small and the flow moves fastest (DDIM's "quad" selection, Song, Meng & Ermon
    2021)."""
    return sorted({round(1 + (T - 1) * (k / N) ** 2) for k in range(N + 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a digits checkpoint (default: train the demo's model)")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--digits", type=int, default=360, help="test digits to evaluate (at most 360)")
    parser.add_argument("--quick", action="store_true", help="fewer points, tolerances and grids")
    parser.add_argument("--mixtures-only", action="store_true", help="skip the digits")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    quick = args.quick
    tolerances = [1e-2, 1e-3, 1e-5] if quick else [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7]
    mixture_table("2-D mixture (3 components), VP SDE, exact score", mixture_2d(), 64 if quick else 256,
                  8 if quick else 32, tolerances, tolerances)
    mixture_table("64-D mixture (8 components, full covariances), VP SDE, exact score", mixture_64d(),
                  8 if quick else 16, 8 if quick else 32, tolerances, [1e-3, 1e-5] if quick else [1e-3, 1e-5, 1e-7])
    print(f"\nmixtures: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.mixtures_only:
        return
    t0 = time.perf_counter()
    grids = [20, 100] if quick else [20, 50, 100, 200, 500]
    digits_table(args.checkpoint, args.train_steps, min(args.digits, 360), grids)
    print(f"\ndigits: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
