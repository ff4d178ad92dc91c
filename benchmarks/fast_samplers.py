"""Fast samplers against diffusers: sliced W2 to the truth at 5, 10, 20, 50 evaluations, with the exact score.

The model is the exact eps of a Gaussian mixture (score.mixture_eps_model) on DDPM's schedule (linear, T = 1000),
so what is left is the sampler's own error; the mixtures, the statistics (mean over chunks of n samples of sliced
W2 to fresh true samples, median over seeds) and the floor are benchmarks/sampler_nfe.py's, imported from it.

1. A check first, that this package and diffusers compute the same steps where their definitions coincide:
   DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2) against solvers'
   dpm_solver_pp_reverse and UniPCMultistepScheduler(solver_type="bh2", solver_order=2) against unipc_reverse,
   both with timestep_spacing="trailing" (diffusers' 0-based steps + 1 = our "uniform" steps, asserted), the same
   x_T and the same model, compared after every step. diffusers keeps its schedule in float32: its sigma differs
   from ours by up to delta (printed, ~1e-4 relative, at the smallest steps), and every coefficient of a step by
   about as much, so the states may differ by a few delta |x| per step; the check fails above
   10 delta max(1, |x|) and prints, for scale, how far 2M is from DDIM on the same steps.
2. The table, for each mixture: every registered sampler through sampling.sample on the default "uniform" steps
   with sampler_nfe's rule for its steps within the budget (DISCRETE_STEPS); the fast solvers also on "quadratic"
   steps and on EDM's Karras grid (solvers.karras_timesteps); diffusers' two schedulers on each timestep grid
   they offer (default "linspace", "trailing", Karras, exponential sigmas, and Lu's uniform-lambda for
   DPM-Solver), the model called at their (integer) timesteps + 1. NFE is counted. A second table gives, for the
   deterministic samplers, the mean distance from each sample to the end of the exact flow from the same x_T
   (UniPC on all 1,000 steps): the solver's error without the sampling noise that SW2 carries.
3. A verdict: the package's best at 10 evaluations against the best of diffusers', in both measures.

Run: python -m benchmarks.fast_samplers [--seeds 3] [--budgets 5 10 20 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import machine
from benchmarks.sampler_nfe import DISCRETE_STEPS, SETS, check_nfe_rules, counted, floor_of, mixtures
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import NoiseSchedule, spaced_timesteps
from ddpm_scratch.score import mixture_eps_model
from ddpm_scratch.solvers import dpm_solver_pp_reverse, karras_timesteps, unipc_reverse, unipc_sample

FAST = ("dpmpp_2m", "unipc", "edm")
DETERMINISTIC = tuple(name for name, s in SAMPLERS.items() if not s.stochastic or name == "ddim")  # ddim: eta = 0
DIFFUSERS = {"diffusers DPM-Solver++(2M)": ("DPMSolverMultistepScheduler",
                                             {"algorithm_type": "dpmsolver++", "solver_order": 2}),
             "diffusers UniPC (bh2)": ("UniPCMultistepScheduler", {"solver_type": "bh2", "solver_order": 2})}
DIFFUSERS_GRIDS = {"linspace": {}, "trailing": {"timestep_spacing": "trailing"},
                   "Karras": {"use_karras_sigmas": True}, "exponential": {"use_exponential_sigmas": True},
                   "Lu lambdas": {"use_lu_lambdas": True}}  # the last: DPMSolverMultistepScheduler only
T = 1000


def diffusers_scheduler(name: str, **config):
    """A diffusers scheduler on DDPM's linear schedule (T = 1000, beta 1e-4..0.02), eps-prediction."""
    import diffusers

    return getattr(diffusers, name)(num_train_timesteps=T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                                    prediction_type="epsilon", **config)


def diffusers_steps(scheduler, model, x_T: torch.Tensor, num_steps: int):
    """diffusers' sampling loop: set_timesteps, then one step per timestep, the model at its timestep + 1 (its
    steps count from 0, ours from 1). Yields the state after each step."""
    scheduler.set_timesteps(num_steps)
    x = x_T
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, (t + 1).expand(x.shape[0])), t, x).prev_sample
        yield x


def check_against_diffusers(schedule: NoiseSchedule, model, x_T: torch.Tensor) -> list[str]:
    """Raise SystemExit unless our 2M and UniPC steps are diffusers' (module docstring); return the report."""
    sigma = ((1 - schedule.alpha_bars[1:]) / schedule.alpha_bars[1:]).sqrt()
    lines = []
    for label, ours, name, config in (
            ("DPM-Solver++(2M)", dpm_solver_pp_reverse, *DIFFUSERS["diffusers DPM-Solver++(2M)"]),
            ("UniPC bh2", unipc_reverse, *DIFFUSERS["diffusers UniPC (bh2)"])):
        theirs = diffusers_scheduler(name, timestep_spacing="trailing", **config)
        their_sigma = ((1 - theirs.alphas_cumprod.double()) / theirs.alphas_cumprod.double()).sqrt()
        delta = ((their_sigma - sigma) / sigma).abs().max().item()
        worst, contrast = 0.0, 0.0
        for n in (5, 10, 20, 50):
            respaced = schedule.respace(spaced_timesteps(T, n))
            theirs.set_timesteps(n)
            if (theirs.timesteps.flip(0) + 1).tolist() != respaced.timesteps[1:].tolist():
                raise SystemExit(f"{label}: diffusers' trailing timesteps + 1 are not our uniform steps at n = {n}")
            ddim = dict(unipc_reverse(model, respaced, x_T.double(), order=1))  # the first-order run, for scale
            for (i, x), y in zip(ours(model, respaced, x_T.double()), diffusers_steps(theirs, model, x_T, n),
                                 strict=True):
                gap = (x - y.double()).abs().max().item() / max(1.0, y.abs().max().item())
                worst = max(worst, gap)
                if i == 0:
                    contrast = max(contrast, (x - ddim[0]).abs().max().item())
        tolerance = 10 * delta
        lines.append(f"{label}: max |ours - diffusers| / max(1, |x|) over every step of 5, 10, 20, 50-step runs = "
                     f"{worst:.1e} (tolerance 10 delta = {tolerance:.1e}, delta = {delta:.1e} the float32 schedule's "
                     f"relative error in sigma; for scale, its final samples differ from DDIM's by up to "
                     f"{contrast:.2f})")
        if not worst <= tolerance:
            raise SystemExit(f"diffusers check failed: {lines[-1]}")
    return lines


def distances(mixture, x: torch.Tensor, n: int, chunks: int, seed: int) -> float:
    """Mean over chunks of sliced W2 between n samples and n fresh true samples: sampler_nfe's statistic and
    reference seeds (1,000,000 + 10,000 seed + chunk, far from the samplers' seeds)."""
    references = (mixture.sample(n, generator=torch.Generator().manual_seed(1_000_000 + 10_000 * seed + i))
                  for i in range(chunks))
    return statistics.mean(sliced_wasserstein(chunk.double(), reference)
                           for chunk, reference in zip(x.split(n), references, strict=True))


def runs(schedule: NoiseSchedule, model, x_T: torch.Tensor, budget: int, seed: int):
    """(row, samples, NFE) for every contender at one budget."""
    shape = tuple(x_T.shape)
    for name in SAMPLERS:
        steps = DISCRETE_STEPS[name](budget)
        grids = {"uniform": (schedule, {"num_steps": steps})}
        if name in FAST:
            grids["quadratic"] = (schedule, {"num_steps": steps, "spacing": "quadratic"})
            grids["Karras"] = (schedule.respace(karras_timesteps(schedule, steps)), {})
        for grid, (on, options) in grids.items():
            m = counted(model)
            x = sample(m, on, shape, sampler=name, x_T=x_T, generator=torch.Generator().manual_seed(seed), **options)
            yield f"`{name}`, {grid}", x, m.calls
    for label, (name, config) in DIFFUSERS.items():
        for grid, extra in DIFFUSERS_GRIDS.items():
            if grid == "Lu lambdas" and name != "DPMSolverMultistepScheduler":
                continue
            m = counted(model)
            *_, x = diffusers_steps(diffusers_scheduler(name, **config, **extra), m, x_T, budget)
            yield f"{label}, {grid}", x, m.calls


def measure(mixture, score_mixture, n: int, chunks: int, seeds: int, budgets: tuple[int, ...]):
    """{row: {budget: (median SW2, max NFE, median mean distance to the exact flow or None)}} and the floor."""
    schedule = NoiseSchedule.linear(T)
    model = mixture_eps_model(score_mixture, schedule)
    cells: dict = {}
    floors = []
    for seed in range(seeds):
        x_T = torch.randn(chunks * n, mixture.D, generator=torch.Generator().manual_seed(seed))
        exact = unipc_sample(model, schedule, x_T.shape, x_T=x_T)  # 1,000 third-order steps: the flow's end
        floors.append(distances(mixture, mixture.sample(chunks * n, generator=torch.Generator().manual_seed(
            900_000 + seed)), n, chunks, seed))
        for budget in budgets:
            for row, x, nfe in runs(schedule, model, x_T, budget, seed):
                flow = (x - exact).norm(dim=1).mean().item() if row.startswith(("diffusers", *(
                    f"`{name}`" for name in DETERMINISTIC))) else None
                cells.setdefault(row, {}).setdefault(budget, []).append((distances(mixture, x, n, chunks, seed),
                                                                          nfe, flow))
    summary = {row: {b: (statistics.median(c[0] for c in cell), max(c[1] for c in cell),
                         None if cell[0][2] is None else statistics.median(c[2] for c in cell))
                     for b, cell in by_budget.items()} for row, by_budget in cells.items()}
    return summary, statistics.median(floors)


def best(table: dict, budget: int, diffusers: bool, column: int) -> tuple[str, float]:
    rows = {row: cells[budget][column] for row, cells in table.items()
            if row.startswith("diffusers") == diffusers and cells[budget][column] is not None}
    row = min(rows, key=rows.get)
    return row, rows[row]


def print_tables(title: str, n: int, chunks: int, seeds: int, floor: float, pairs: tuple[float, float],
                 table: dict, budgets: tuple[int, ...]) -> None:
    print(f"\n### {title}\n")
    print(f"Sliced W2 to fresh true samples: mean over {chunks} chunks of {n} samples, median of {seeds} seeds, as "
          f"benchmarks/sampler_nfe.py. Floor (fresh true samples against the same references): **{floor:.3f}**; 48 "
          f"independent pairs give {pairs[0]:.3f}, one pair varying by {100 * pairs[1]:.0f}%. Every row starts "
          f"from the same x_T. Cell: SW2 (ratio to the floor) [NFE].\n")
    print("| sampler, steps | " + " | ".join(f"NFE <= {b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for row, cells in table.items():
        print(f"| {row} | " + " | ".join(f"{cells[b][0]:.3f} ({cells[b][0] / floor:.2f}x) [{cells[b][1]}]"
                                         for b in budgets) + " |")
    print("\nDeterministic samplers: mean distance |x - x_flow| from each sample to the end of the exact flow from "
          "its x_T (UniPC on all 1,000 steps; median of seeds):\n")
    print("| sampler, steps | " + " | ".join(f"NFE <= {b}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for row, cells in table.items():
        if cells[budgets[0]][2] is not None:
            print(f"| {row} | " + " | ".join(f"{cells[b][2]:.2e}" for b in budgets) + " |")
    if 10 in budgets:
        for column, measure_name in ((0, "sliced W2"), (2, "distance to the exact flow")):
            (ours, a), (theirs, b) = best(table, 10, False, column), best(table, 10, True, column)
            verdict = ("ties (within 0.1%)" if abs(a - b) <= 1e-3 * b else "beats") if a <= b * (1 + 1e-3) \
                else "does NOT beat"
            print(f"\n**At 10 evaluations, by {measure_name}: the package's best ({ours}: {a:.4g}) {verdict} "
                  f"diffusers' best ({theirs}: {b:.4g}).**")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", default=(5, 10, 20, 50))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_nfe_rules()
    budgets = tuple(args.budgets)
    print("## Fast samplers against diffusers, exact score (benchmarks/fast_samplers.py)\n")
    print(f"Machine: {machine()}\n")
    start = time.perf_counter()
    all_mixtures = mixtures()
    mixture, score_mixture = all_mixtures["2-D, 3 components"]
    schedule = NoiseSchedule.linear(T)
    x_T = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    for line in check_against_diffusers(schedule, mixture_eps_model(score_mixture, schedule), x_T):
        print(f"check: {line}")
    for title, (mixture, score_mixture) in all_mixtures.items():
        t0 = time.perf_counter()
        n, chunks = SETS[title]
        table, floor = measure(mixture, score_mixture, n, chunks, args.seeds, budgets)
        print_tables(title, n, chunks, args.seeds, floor, floor_of(mixture, n), table, budgets)
        print(f"\n({title}: {time.perf_counter() - t0:.0f} s)")
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
