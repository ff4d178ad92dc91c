"""What classifier-free guidance samples, with the exact networks of a 1-D two-class mixture.

Data: p(x) = 0.5 N(-1, 0.35^2) + 0.5 N(1, 0.35^2), the class y the right component, so p(x | y) = N(1, 0.35^2).
The networks are exact (guidance.mixture_conditional_eps_model: E[eps | x_t, y] and E[eps | x_t]), on DDPM's linear
schedule (T = 1000), guided by guidance.ClassifierFree, sampled through sampling.sample with every step.

1. gamma = 1 is plain conditional sampling: every registered sampler should return p(x | y). The cell is the W2
   distance (1-D: exact, from sorted samples) between n samples and n fresh draws of p(x | y), divided by the floor
   (the same distance between two fresh sets), median over seeds. The target: within 1.5x of the floor.
2. gamma = 3: at every noise level the guided score is the score of p_t(x)^(1 - gamma) p_t(x | y)^gamma, but the
   samplers do not return the tilted density p(x)^(1 - gamma) p(x | y)^gamma (its mean and sd are computed on a
   grid): the tilted noised densities are not the noised tilted density (Bradley & Nakkiran 2024; Chidambaram et
   al. 2024). The probability-flow ODE (ddim, ode) overshoots and narrows, ancestral sampling (ddpm) less so;
   Langevin corrector steps at every level (the pc sampler) close most of the gap (a small bias remains: about
   0.005 in the mean and sd with n = 20,000, several standard errors).
   Each row: mean and sd of n samples, the mean over seeds, with the standard error of one seed's mean.

Run: python -m benchmarks.guidance_exact [--n 20000] [--seeds 3] [--threads 1]  (about 10 minutes on one core)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from benchmarks.common import machine
from ddpm_scratch.guidance import ClassifierFree, mixture_conditional_eps_model
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.sampling import SAMPLERS, sample
from ddpm_scratch.schedules import NoiseSchedule
from ddpm_scratch.score import GaussianMixture

F64 = torch.float64
STD = 0.35
MIXTURE = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [STD**2, STD**2])
CLASS = 1  # the right component
SCHEDULE = NoiseSchedule.linear(1000)


def tilted_moments(gamma: float) -> tuple[float, float]:
    """Mean and sd of p(x)^(1 - gamma) p(x | y)^gamma, normalised on a fine grid."""
    x = torch.linspace(-5.0, 6.0, 400_001, dtype=F64)[:, None]
    conditional = GaussianMixture([1.0], MIXTURE.means[CLASS:CLASS + 1], MIXTURE.covs[CLASS:CLASS + 1])
    weights = torch.softmax((1 - gamma) * MIXTURE.log_prob(x) + gamma * conditional.log_prob(x), dim=0)
    mean = (weights * x[:, 0]).sum()
    return mean.item(), (weights * (x[:, 0] - mean) ** 2).sum().sqrt().item()


def guided_samples(gamma: float, sampler: str, n: int, seed: int, **options) -> torch.Tensor:
    network = mixture_conditional_eps_model(MIXTURE, SCHEDULE)
    model = ClassifierFree(network, CLASS, gamma=gamma, num_classes=MIXTURE.K)
    return sample(model, SCHEDULE, (n, 1), sampler=sampler, dtype=F64, generator=torch.Generator().manual_seed(seed),
                  **options)[:, 0]


def true_conditional(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(10_000 + seed)
    return MIXTURE.means[CLASS, 0] + STD * torch.randn(n, generator=g, dtype=F64)


def w2(a: torch.Tensor, b: torch.Tensor) -> float:
    return sliced_wasserstein(a[:, None], b[:, None])  # in 1-D every direction is +-1: the exact W2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# guidance_exact: {machine()}; torch threads {args.threads}; n = {args.n}, {args.seeds} seeds")

    print("\n## gamma = 1 (conditional sampling): W2 to p(x | y) / the floor, median over seeds (target <= 1.5)")
    floors = [w2(true_conditional(args.n, s), true_conditional(args.n, 100 + s)) for s in range(args.seeds)]
    print(f"floor (two fresh sets): W2 = {statistics.median(floors):.4f}")
    print("| sampler | W2 / floor | seconds per run |\n|---|---|---|")
    for name in sorted(SAMPLERS):
        start, ratios = time.perf_counter(), []
        for s in range(args.seeds):
            ratios.append(w2(guided_samples(1.0, name, args.n, s), true_conditional(args.n, s)) / floors[s])
        print(f"| {name} | {statistics.median(ratios):.2f} | {(time.perf_counter() - start) / args.seeds:.1f} |")

    gamma = 3.0
    mean, sd = tilted_moments(gamma)
    print(f"\n## gamma = {gamma:g}: what the guided samplers return, against the tilted density p^(1-g) p(x|y)^g")
    print(f"tilted density (grid): mean {mean:.3f}, sd {sd:.3f}")
    se = sd / math.sqrt(args.n)
    print(f"standard error of one seed's mean: about {se:.4f}, of its sd about {sd / math.sqrt(2 * args.n):.4f}")
    print("| sampler | mean | sd | seconds per run |\n|---|---|---|---|")
    rows = [("ddpm (ancestral)", "ddpm", {}), ("ddim (eta = 0, the ODE by Euler)", "ddim", {}),
            ("ode (Heun)", "ode", {}), ("sde (Euler-Maruyama)", "sde", {}),
            ("pc, 1 Langevin step per level", "pc", {"corrector_steps": 1}),
            ("pc, 3 Langevin steps per level", "pc", {"corrector_steps": 3})]
    for label, name, options in rows:
        start, means, sds = time.perf_counter(), [], []
        for s in range(args.seeds):
            x = guided_samples(gamma, name, args.n, s, **options)
            means.append(x.mean().item())
            sds.append(x.std().item())
        print(f"| {label} | {statistics.mean(means):.3f} | {statistics.mean(sds):.3f} | "
              f"{(time.perf_counter() - start) / args.seeds:.1f} |")


if __name__ == "__main__":
    main()
