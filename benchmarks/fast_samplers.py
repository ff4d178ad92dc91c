"""Fast samplers against diffusers: sliced W2 to the truth at 5, 10, 20, 50 evaluations, with the exact score.

The model is the exact eps of a Gaussian mixture (score.mixture_eps_model) on DDPM's schedule (linear, T = 1000),
so what is left is the sampler's own error; the mixtures, the statistics (mean over chunks of n samples of sliced
W2 to fresh true samples, median over seeds) and the floor are benchmarks/sampler_nfe.py's, imported from it.

1. A check first, that this package and diffusers compute the same steps where their definitions coincide:
   DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2) against eps_solvers'
   dpm_solver_pp_sample and UniPCMultistepScheduler(solver_type="bh2", solver_order=2) against unipc_sample,
   both with timestep_spacing="trailing" (diffusers' 0-based steps + 1 = our "uniform" steps, asserted), the same
   x_T and the same model, compared after every step (ours collected by the samplers' hook(x, t), which sees the
   state after every step as diffusers' prev_sample: for UniPC the predictor's, before its correction).
   diffusers keeps its schedule in float32: its sigma differs from ours by up to delta (printed, ~1e-4 relative,
   at the smallest steps), and every coefficient of a step by about as much, so the states may differ by a few
   delta |x| per step; the check fails above 10 delta max(1, |x|) and prints, for scale, how far 2M is from DDIM
   on the same steps.
2. The table, for each mixture: every registered sampler through sampling.sample on its default spacing
   (SAMPLERS[name].spacing, marked "default") and default options, with sampler_nfe's rule for its steps within the
   budget (DISCRETE_STEPS); the fast solvers also on "uniform" and "quadratic" steps and on EDM's Karras grid
   (spacing "karras", schedules.karras_timesteps), where these are not their default; diffusers' two schedulers on
   each timestep grid they offer (default "linspace", "trailing", Karras, exponential sigmas, and Lu's uniform-lambda
   for DPM-Solver), the model called at their (integer) timesteps + 1. NFE is counted. A second table gives, for the
   deterministic samplers, the mean distance from each sample to the end of the exact flow from the same x_T (UniPC
   on all 1,000 steps): the solver's error without the sampling noise that SW2 carries. With --all-spacings, every
   sampler on every spacing (uniform, leading, quadratic, karras), and UniPC also at order 1 and 2, variant bh1 and
   bh2: the evidence for the samplers' default spacings; two more tables give each row's ratio to the same sampler
   and options on "uniform" steps, per seed (same x_T, same references): median [min-max] over seeds.
3. A verdict: the package's best at 10 evaluations against the best of diffusers', in both measures, and the
   package's best out of the box (the samplers' default spacings and options, what sample(..., sampler=...,
   num_steps=10) gives) against the same.

Run: python -m benchmarks.fast_samplers [--seeds 3] [--budgets 5 10 20 50] [--threads 1] [--all-spacings]
     [--raw PATH.json] [--mixtures 2-D 64-D]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from benchmarks.common import machine
from benchmarks.sampler_nfe import DISCRETE_STEPS, SETS, check_nfe_rules, counted, floor_of, mixtures
from ddpm_scratch.eps_solvers import UNIPC_VARIANTS, dpm_solver_pp_sample, unipc_sample
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import NoiseSchedule, spaced_timesteps
from ddpm_scratch.score import mixture_eps_model

FAST = ("dpmpp_2m", "unipc", "edm")
DETERMINISTIC = tuple(name for name, s in SAMPLERS.items() if not s.stochastic or name == "ddim")  # ddim: eta = 0
DIFFUSERS = {"diffusers DPM-Solver++(2M)": ("DPMSolverMultistepScheduler",
                                             {"algorithm_type": "dpmsolver++", "solver_order": 2}),
             "diffusers UniPC (bh2)": ("UniPCMultistepScheduler", {"solver_type": "bh2", "solver_order": 2})}
DIFFUSERS_GRIDS = {"linspace": {}, "trailing": {"timestep_spacing": "trailing"},
                   "Karras": {"use_karras_sigmas": True}, "exponential": {"use_exponential_sigmas": True},
                   "Lu lambdas": {"use_lu_lambdas": True}}  # the last: DPMSolverMultistepScheduler only
SPACINGS = ("uniform", "leading", "quadratic", "karras")  # "trailing" is "uniform" (schedules.spaced_timesteps)
UNIPC_OPTIONS = tuple({"order": order, "variant": variant} for order in (1, 2) for variant in UNIPC_VARIANTS)
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


def states(run, model, schedule: NoiseSchedule, x_T: torch.Tensor, **options) -> list[tuple[int, torch.Tensor]]:
    """[(t, x)] after every step of a registered run function, t the training step x is at (0 last): its hook."""
    kept = []

    def keep(x: torch.Tensor, t: int) -> torch.Tensor:
        kept.append((t, x.clone()))
        return x

    run(model, schedule, x_T, hook=keep, **options)
    return kept


def check_against_diffusers(schedule: NoiseSchedule, model, x_T: torch.Tensor) -> list[str]:
    """Raise SystemExit unless our 2M and UniPC steps are diffusers' (module docstring); return the report."""
    sigma = ((1 - schedule.alpha_bars[1:]) / schedule.alpha_bars[1:]).sqrt()
    lines = []
    for label, ours, name, config in (
            ("DPM-Solver++(2M)", dpm_solver_pp_sample, *DIFFUSERS["diffusers DPM-Solver++(2M)"]),
            ("UniPC bh2", unipc_sample, *DIFFUSERS["diffusers UniPC (bh2)"])):
        theirs = diffusers_scheduler(name, timestep_spacing="trailing", **config)
        their_sigma = ((1 - theirs.alphas_cumprod.double()) / theirs.alphas_cumprod.double()).sqrt()
        delta = ((their_sigma - sigma) / sigma).abs().max().item()
        worst, contrast = 0.0, 0.0
        for n in (5, 10, 20, 50):
            respaced = schedule.respace(spaced_timesteps(T, n))
            theirs.set_timesteps(n)
            if (theirs.timesteps.flip(0) + 1).tolist() != respaced.timesteps[1:].tolist():
                raise SystemExit(f"{label}: diffusers' trailing timesteps + 1 are not our uniform steps at n = {n}")
            ddim = unipc_sample(model, respaced, x_T.double(), order=1)  # the first-order run, for scale
            for (t, x), y in zip(states(ours, model, respaced, x_T.double()), diffusers_steps(theirs, model, x_T, n),
                                 strict=True):
                gap = (x - y.double()).abs().max().item() / max(1.0, y.abs().max().item())
                worst = max(worst, gap)
                if t == 0:
                    contrast = max(contrast, (x - ddim).abs().max().item())
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


def row_name(name: str, spacing: str, options: dict) -> str:
    """The table's row of a sampler on a spacing with non-default options, "default" marking what sample() gives
    when neither spacing nor options are passed."""
    sampler = SAMPLERS[name]
    label = f"`{name}`" + "".join(f" {k}={v}" for k, v in options.items() if sampler.defaults[k] != v)
    is_default = spacing == sampler.spacing and all(sampler.defaults[k] == v for k, v in options.items())
    return f"{label}, {spacing}{' (default)' if is_default else ''}"


def contenders(all_spacings: bool) -> list[tuple[str, str, dict]]:
    """(sampler, spacing, options) of every row of ours: the defaults, the fast solvers also on uniform, quadratic
    and karras steps; with all_spacings every spacing for every sampler, and UniPC at every order and variant."""
    rows = []
    for name, sampler in SAMPLERS.items():
        spacings = SPACINGS if all_spacings else tuple(dict.fromkeys(
            (sampler.spacing, *(("uniform", "quadratic", "karras") if name in FAST else ()))))
        option_sets = UNIPC_OPTIONS if all_spacings and name == "unipc" else ({},)
        for options in option_sets:
            rows += [(name, spacing, {**sampler.defaults, **options}) for spacing in spacings]
    return rows


def runs(schedule: NoiseSchedule, model, x_T: torch.Tensor, budget: int, seed: int, all_spacings: bool = False):
    """(row, samples, NFE) for every contender at one budget."""
    shape = tuple(x_T.shape)
    for name, spacing, options in contenders(all_spacings):
        m = counted(model)
        x = sample(m, schedule, shape, sampler=name, num_steps=DISCRETE_STEPS[name](budget), spacing=spacing,
                   x_T=x_T, generator=torch.Generator().manual_seed(seed), **options)
        yield row_name(name, spacing, options), x, m.calls
    for label, (name, config) in DIFFUSERS.items():
        for grid, extra in DIFFUSERS_GRIDS.items():
            if grid == "Lu lambdas" and name != "DPMSolverMultistepScheduler":
                continue
            m = counted(model)
            *_, x = diffusers_steps(diffusers_scheduler(name, **config, **extra), m, x_T, budget)
            yield f"{label}, {grid}", x, m.calls


def measure(mixture, score_mixture, n: int, chunks: int, seeds: int, budgets: tuple[int, ...],
            all_spacings: bool = False):
    """{row: {budget: (median SW2, max NFE, median mean distance to the exact flow or None)}}, the floor, and the
    per-seed cells {row: {budget: [(SW2, NFE, distance or None) per seed]}}."""
    schedule = NoiseSchedule.linear(T)
    model = mixture_eps_model(score_mixture, schedule)
    cells: dict = {}
    floors = []
    for seed in range(seeds):
        x_T = torch.randn(chunks * n, mixture.D, generator=torch.Generator().manual_seed(seed))
        exact = unipc_sample(model, schedule, x_T)  # 1,000 third-order steps: the flow's end
        floors.append(distances(mixture, mixture.sample(chunks * n, generator=torch.Generator().manual_seed(
            900_000 + seed)), n, chunks, seed))
        for budget in budgets:
            for row, x, nfe in runs(schedule, model, x_T, budget, seed, all_spacings):
                flow = (x - exact).norm(dim=1).mean().item() if row.startswith(("diffusers", *(
                    f"`{name}`" for name in DETERMINISTIC))) else None
                cells.setdefault(row, {}).setdefault(budget, []).append((distances(mixture, x, n, chunks, seed),
                                                                          nfe, flow))
    summary = {row: {b: (statistics.median(c[0] for c in cell), max(c[1] for c in cell),
                         None if cell[0][2] is None else statistics.median(c[2] for c in cell))
                     for b, cell in by_budget.items()} for row, by_budget in cells.items()}
    return summary, statistics.median(floors), cells


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
            defaults = {row: cells for row, cells in table.items() if row.endswith("(default)")}
            if defaults and any(cells[10][column] is not None for cells in defaults.values()):
                ours, a = best(defaults, 10, False, column)
                print(f"Out of the box (the samplers' default spacings and options): {ours}: {a:.4g}, "
                      f"{a / b:.3f}x diffusers' best.")


def print_ratios(cells: dict, budgets: tuple[int, ...]) -> None:
    """Each row's ratio to the same sampler and options on uniform steps, per seed (same x_T and references):
    median [min-max] over seeds, in SW2 and, for the deterministic samplers, in the distance to the exact flow."""
    for column, name in ((0, "sliced W2"), (2, "distance to the exact flow (deterministic samplers)")):
        print(f"\nRatio to the same sampler and options on uniform steps, {name}, per seed (same x_T, same "
              f"references): median [min-max] over seeds; < 1 is better than uniform.\n")
        print("| sampler, steps | " + " | ".join(f"NFE <= {b}" for b in budgets) + " |")
        print("|---|" + "---|" * len(budgets))
        uniform = {row_name(name, spacing, options): row_name(name, "uniform", options)
                   for name, spacing, options in contenders(True)}
        for row, by_budget in cells.items():
            base = cells.get(uniform.get(row))
            if base is None or by_budget[budgets[0]][0][column] is None:
                continue
            line = []
            for b in budgets:
                ratios = [c[column] / u[column] for c, u in zip(by_budget[b], base[b], strict=True)]
                line.append(f"{statistics.median(ratios):.3f} [{min(ratios):.2f}-{max(ratios):.2f}]")
            print(f"| {row} | " + " | ".join(line) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", type=int, nargs="+", default=(5, 10, 20, 50))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--all-spacings", action="store_true",
                        help="every sampler on every spacing (uniform, leading, quadratic, karras), UniPC also at "
                             "order 1 and 2, variant bh1 and bh2, with a table of ratios to uniform steps per seed")
    parser.add_argument("--raw", metavar="PATH", help="write every per-seed cell (SW2, NFE, distance) as JSON")
    parser.add_argument("--mixtures", nargs="+", choices=("2-D", "64-D"), default=("2-D", "64-D"),
                        help="which mixtures to run (default both)")
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
    raw = {}
    for title, (mixture, score_mixture) in all_mixtures.items():
        if not title.startswith(tuple(args.mixtures)):
            continue
        t0 = time.perf_counter()
        n, chunks = SETS[title]
        table, floor, cells = measure(mixture, score_mixture, n, chunks, args.seeds, budgets, args.all_spacings)
        print_tables(title, n, chunks, args.seeds, floor, floor_of(mixture, n), table, budgets)
        if args.all_spacings:
            print_ratios(cells, budgets)
        raw[title] = {"floor": floor, "cells": cells}
        print(f"\n({title}: {time.perf_counter() - t0:.0f} s)", flush=True)
        if args.raw:
            with open(args.raw, "w") as f:
                json.dump(raw, f, indent=1)
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
