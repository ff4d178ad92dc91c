"""How many steps? Sampler error against the number of function evaluations (NFE), with the exact score.

Every sampler of the package draws from a Gaussian mixture whose score is known exactly (score.GaussianMixture), so
the error left is the sampler's own: sliced W2 (machinery.metrics.sliced_wasserstein, 256 directions) between n
samples and n fresh true samples, beside the floor (the same distance between two fresh true sets of n points: what
a perfect sampler scores). One set's sliced W2 is noisy (about 40% from seed to seed in 2-D, 11% in 64-D: the
extreme points drive it), so each sampler draws several chunks of n in one run and the cell is the mean over
chunks, median over seeds; the floor is fresh true samples measured in the same way against the same
references. Chunks and n as in tests/test_sde_samplers.py.

- Every registered sampler, through sampling.sample on DDPM's schedule (linear, T = 1000, respaced to num_steps)
  with the exact eps-model score.mixture_eps_model: ddpm (Algorithm 2), ddim (eta = 0), sde (Euler-Maruyama), pc
  (predictor-corrector, snr 0.16, one corrector step), ode (Heun), ode_euler; the lecture-3 ones on the
  schedule's own VP process (sde.ScheduleSDE).
- Continuous solvers on VPSDE (beta 0.1..20) with score.mixture_score_fn, from t = 1 to t_min = 1e-3: the same four
  fixed-step solvers, and RK45 (scipy's solve_ivp) at several tolerances with its measured NFE.
NFE is counted (calls of the model); for a budget B each fixed-step sampler takes the most steps whose NFE is <= B:
B steps for ddpm, ddim, sde, Euler; B // 2 for pc (two evaluations per step) and for Heun in continuous time;
(B + 1) // 2 for Heun on the schedule (its last step, to t = 0 where the score is undefined, is an Euler step).

Data: a 2-D mixture of 3 correlated components and a 64-D mixture of 8 components with full covariances; the 64-D
scores are computed in float32 (a quarter of the time; 2e-4 from float64 at most), the true samples in float64.

Run: python -m benchmarks.sampler_nfe [--seeds 3] [--budgets 5 10 20 50 100 1000] [--threads 1]
(about 7 minutes on one core of a 2-core Xeon, two thirds of it the 64-D mixture)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import machine
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture, mixture_eps_model, mixture_score_fn
from ddpm_scratch.score_solvers import (
    CountedScore,
    euler_maruyama,
    ode_euler,
    ode_heun,
    ode_rk45,
    predictor_corrector,
    time_grid,
)
from ddpm_scratch.sde import VPSDE

F64 = torch.float64
# steps within a budget of b evaluations, for every registered sampler (a new one must be added here: main checks)
DISCRETE_STEPS = {"ddpm": lambda b: b, "ddim": lambda b: b, "sde": lambda b: b, "pc": lambda b: b // 2,
                  "ode": lambda b: (b + 1) // 2, "ode_euler": lambda b: b,
                  # lecture 4 (eps_solvers.py): one evaluation a step for the multistep methods, 2 N - 1 for EDM's Heun
                  "dpmpp_2m": lambda b: b, "unipc": lambda b: b, "edm": lambda b: (b + 1) // 2}
DISCRETE = tuple(DISCRETE_STEPS)
CONTINUOUS = {"Euler-Maruyama": (euler_maruyama, lambda b: b), "PC": (predictor_corrector, lambda b: b // 2),
              "ODE Euler": (ode_euler, lambda b: b), "ODE Heun": (ode_heun, lambda b: b // 2)}
RK45_TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
T_MIN = 1e-3
SETS = {"2-D, 3 components": (1000, 8), "64-D, 8 components": (500, 2)}  # (n, chunks), as tests/test_sde_samplers.py


def check_nfe_rules() -> None:
    """Stop when a registered sampler has no rule in DISCRETE_STEPS: every sampler of the package is measured."""
    missing = sorted(set(SAMPLERS) - set(DISCRETE_STEPS))
    if missing:
        raise SystemExit(f"benchmarks/sampler_nfe.py: no NFE rule for the registered sampler(s) {missing}")


def mixtures() -> dict[str, tuple[GaussianMixture, GaussianMixture]]:
    """{name: (mixture in float64 for the true samples, the same mixture in the dtype its scores are computed in)}."""
    mix2 = GaussianMixture([0.5, 0.3, 0.2], [[-1.5, 0.0], [1.5, 0.5], [0.0, -1.5]],
                           [[[0.10, 0.05], [0.05, 0.08]], [[0.05, -0.02], [-0.02, 0.12]],
                            [[0.20, 0.0], [0.0, 0.03]]])
    g = torch.Generator().manual_seed(64)
    weights = torch.rand(8, generator=g, dtype=F64) + 0.2
    means = 2 * torch.randn(8, 64, generator=g, dtype=F64)
    basis = torch.linalg.qr(torch.randn(8, 64, 64, generator=g, dtype=F64)).Q
    covs = basis @ torch.diag_embed(0.2 + 1.8 * torch.rand(8, 64, generator=g, dtype=F64)) @ basis.mT
    return {"2-D, 3 components": (mix2, mix2),
            "64-D, 8 components": (GaussianMixture(weights, means, covs),
                                   GaussianMixture(weights, means, covs, dtype=torch.float32))}


def counted(model):
    """model with a count of its calls in .calls (the eps-model's NFE)."""
    def wrapper(*args):
        wrapper.calls += 1
        return model(*args)
    wrapper.calls = 0
    return wrapper


def floor_of(mixture: GaussianMixture, n: int, pairs: int = 48) -> tuple[float, float]:
    """Sliced W2 between two fresh true sets of n points: (mean over pairs, relative sd of one pair)."""
    values = [sliced_wasserstein(*(mixture.sample(n, generator=torch.Generator().manual_seed(900_000 + 2 * i + j))
                                   for j in (0, 1))) for i in range(pairs)]
    return statistics.mean(values), statistics.stdev(values) / statistics.mean(values)


def measure(mixture: GaussianMixture, score_mixture: GaussianMixture, n: int, chunks: int, seeds: int,
            budgets: tuple[int, ...]) -> tuple[dict, dict]:
    """{row: {budget: (SW2, NFE)}} and {tol: (SW2, NFE)}: SW2 is the median over seeds of the mean over chunks of
    sliced W2 between n samples and n fresh true samples (each chunk its own fresh set); NFE the largest counted."""
    schedule, sde = NoiseSchedule.linear(), VPSDE()
    eps_model = mixture_eps_model(score_mixture, schedule)
    score_fn = mixture_score_fn(score_mixture, sde)
    runs: dict = {}

    def record(row: object, budget: int | None, x: torch.Tensor, nfe: int, seed: int) -> None:
        # reference seeds far from the samplers' (0, 1, ...): a reference drawn from the sampler's own seed would
        # share its normal draws with x_T, and the two sets would sit closer than independent ones
        references = (mixture.sample(n, generator=torch.Generator().manual_seed(1_000_000 + 10_000 * seed + i))
                      for i in range(chunks))
        value = statistics.mean(sliced_wasserstein(chunk.double(), reference)
                                for chunk, reference in zip(x.split(n), references, strict=True))
        runs.setdefault(row, {}).setdefault(budget, []).append((value, nfe))

    shape = (chunks * n, mixture.D)
    for seed in range(seeds):  # the floor row: fresh true samples, against the very references the samplers meet
        x = mixture.sample(chunks * n, generator=torch.Generator().manual_seed(900_000 + seed))
        record("fresh true samples (the floor)", None, x, 0, seed)
        for budget in budgets:
            for name in DISCRETE:
                model = counted(eps_model)
                x = sample(model, schedule, shape, sampler=name, num_steps=DISCRETE_STEPS[name](budget),
                           generator=torch.Generator().manual_seed(seed))
                record(f"`{name}` (DDPM schedule)", budget, x, model.calls, seed)
            for name, (solver, steps) in CONTINUOUS.items():
                g = torch.Generator().manual_seed(seed)
                x_T = sde.prior_sample(shape, generator=g)
                score = CountedScore(score_fn)
                options = {"generator": g} if solver in (euler_maruyama, predictor_corrector) else {}
                x = solver(score, sde, x_T, time_grid(steps(budget), t_min=T_MIN), **options)
                record(f"{name} (VPSDE)", budget, x, score.calls, seed)
        x_T = sde.prior_sample(shape, generator=torch.Generator().manual_seed(seed))
        for tol in RK45_TOLERANCES:
            score = CountedScore(score_fn)
            x = ode_rk45(score, sde, x_T, time_grid(1, t_min=T_MIN), rtol=tol, atol=tol)
            record(tol, None, x, score.calls, seed)
    summary = {row: {b: (statistics.median(v[0] for v in cell), max(v[1] for v in cell)) for b, cell in cells.items()}
               for row, cells in runs.items()}
    rk45_table = {tol: summary.pop(tol)[None] for tol in RK45_TOLERANCES}
    return summary, rk45_table, summary.pop("fresh true samples (the floor)")[None][0]


def print_tables(title: str, n: int, chunks: int, seeds: int, floor: tuple[float, float], paired: float,
                 table: dict, rk45_table: dict, budgets: tuple[int, ...]) -> None:
    pairs, spread = floor
    value = paired
    print(f"\n### {title}\n")
    print(f"Sliced W2 to fresh true samples: mean over {chunks} chunks of {n} samples, each against its own {n} fresh "
          f"true samples; median of {seeds} seeds. Floor: **{value:.3f}**, fresh true samples measured the same way "
          f"against the same reference sets (so the cells and the floor share the references' luck; 48 independent "
          f"pairs give {pairs:.3f}, and one pair varies by {100 * spread:.0f}%, a chunk mean by about "
          f"{100 * spread / chunks ** 0.5:.0f}%). Each cell: SW2 (ratio to the floor) [NFE].\n")
    print("| sampler | " + " | ".join(f"NFE <= {b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for row, cells in table.items():
        print(f"| {row} | " + " | ".join(f"{cells[b][0]:.3f} ({cells[b][0] / value:.1f}x) [{cells[b][1]}]"
                                         for b in budgets) + " |")
    print(f"\nRK45 (scipy solve_ivp, rtol = atol = tol) on VPSDE, t = 1 -> {T_MIN:g}:\n")
    print("| tol | NFE | SW2 | ratio to the floor |")
    print("|---|---|---|---|")
    for tol, (sw, nfe) in rk45_table.items():
        print(f"| {tol:g} | {nfe} | {sw:.3f} | {sw / value:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", default=(5, 10, 20, 50, 100, 1000))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a shared 2-core machine 2 threads ran 10-20x slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_nfe_rules()
    budgets = tuple(args.budgets)
    print("## Sampler error against NFE with the exact score (benchmarks/sampler_nfe.py)\n")
    print(f"Machine: {machine()}")
    start = time.perf_counter()
    for title, (mixture, score_mixture) in mixtures().items():
        t0 = time.perf_counter()
        n, chunks = SETS[title]
        floor = floor_of(mixture, n)
        table, rk45_table, paired = measure(mixture, score_mixture, n, chunks, args.seeds, budgets)
        print_tables(title, n, chunks, args.seeds, floor, paired, table, rk45_table, budgets)
        print(f"\n({title}: {time.perf_counter() - t0:.0f} s)")
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
