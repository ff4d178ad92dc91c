"""Why a Gaussian reverse step fails with few steps, and a denoising diffusion GAN that does not: 2-D data, 2-4 steps.

Sliced W2 (machinery.metrics.sliced_wasserstein, 256 directions) between n samples and n fresh data points, beside
the floor (fresh data against the same references: what a perfect sampler scores); the cell is the mean over
chunks, median over seeds, as in benchmarks/sampler_nfe.py. Data: two_moons and eight_gaussians (machinery.data).

- DDPM (ancestral, `sampling.sample(sampler="ddpm")`) with 2, 4 and 1000 steps, and DDIM (eta = 0) with 2 and 4,
  on an eps-MLP trained by machinery.train (linear schedule, T = 1000, --ddpm-steps steps, EMA weights); the short
  samplers run on the schedule respaced to 2 or 4 steps ("uniform": alpha_bar 0.52, 0.079, 0.0034, 4e-5 for 4).
- The DDGAN (ddpm_scratch.ddgan, trained by machinery.gan_training.train_ddgan) for --gan-steps steps on the same
  respaced schedules, 2 and 4 steps.
- eight_gaussians is an exact Gaussian mixture, so two rows need no training: DDPM with the exact eps (a perfect
  network, still Gaussian steps) and the exact reverse kernel (reverse_kernel.py; the perfect DDGAN generator).
Picture: outputs/benchmarks/ddgan_reverse_kernel.png, the true q(x_0 | x_1) of the 4-step schedule for one x_1 on
eight_gaussians (contours) with the DDGAN's draws from it, beside DDPM's Gaussian step with the exact eps.

Run: python -m benchmarks.ddgan [--seeds 3] [--ddpm-steps 3000] [--gan-steps 3000] [--threads 1]
(395 s on one thread of a 2-core Xeon shared with other jobs, load 4-6: training 20-30 s per eps-MLP and 40-45 s per
DDGAN, sampling 75-100 s per data set, most of it the 1000-step DDPM row)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.common import machine
from ddpm_scratch.ddgan import DDGAN, ddgan_sample
from ddpm_scratch.machinery.data import get_dataset, toy_2d
from ddpm_scratch.machinery.gan_training import train_ddgan
from ddpm_scratch.machinery.metrics import sliced_wasserstein
from ddpm_scratch.machinery.train import TrainConfig, train
from ddpm_scratch.machinery.viz import save_figure
from ddpm_scratch.reverse_kernel import gaussian_reverse_step, reverse_kernel, reverse_kernel_sample
from ddpm_scratch.sampling import sample
from ddpm_scratch.schedules import NoiseSchedule, respaced
from ddpm_scratch.score import GaussianMixture, mixture_eps_model

DATASETS = ("two_moons", "eight_gaussians")
N, CHUNKS = 2000, 2
FIGURE = "outputs/benchmarks/ddgan_reverse_kernel.png"
LINEAR = NoiseSchedule.linear()
Sampler = Callable[[int, torch.Generator], torch.Tensor]  # (number of points, generator) -> (n, 2)


def eight_gaussians_mixture() -> GaussianMixture:
    """machinery.data's eight_gaussians exactly: 8 equal components, sd 0.1, centred on a circle of radius sqrt 2."""
    angle = torch.arange(8, dtype=torch.float64) * math.pi / 4
    return GaussianMixture(torch.ones(8), math.sqrt(2) * torch.stack([angle.cos(), angle.sin()], 1),
                           torch.full((8,), 0.01))


def exact_chain(mixture: GaussianMixture, steps: int) -> Sampler:
    """x_T ~ N(0, I), then the exact kernels q(x_{t-1} | x_t) of the respaced schedule (x_T ~ N(0, I) is q(x_T) up
    to alpha_bar_T = 4e-5)."""
    schedule = respaced(LINEAR, steps)

    def draw(n: int, g: torch.Generator) -> torch.Tensor:
        x = torch.randn(n, 2, generator=g, dtype=torch.float64)
        for t in range(steps, 0, -1):
            x = reverse_kernel_sample(mixture, schedule, x, t, generator=g)
        return x
    return draw


def measure(name: str, samplers: dict[str, Sampler], seeds: int) -> tuple[dict[str, float], float]:
    """{row: median over seeds of the mean over chunks of SW2 to fresh data}, and the floor measured the same way."""
    values: dict[str, list[float]] = {}
    for seed in range(seeds):
        # references far from the samplers' seeds (0, 1, ...), one fresh set per chunk
        references = [toy_2d(name, N, torch.Generator().manual_seed(1_000_000 + 10_000 * seed + i))
                      for i in range(CHUNKS)]
        fresh = toy_2d(name, CHUNKS * N, torch.Generator().manual_seed(900_000 + seed))
        rows = {"fresh data (the floor)": lambda n, g, fresh=fresh: fresh, **samplers}
        for row, draw in rows.items():
            x = draw(CHUNKS * N, torch.Generator().manual_seed(seed)).double()
            values.setdefault(row, []).append(statistics.mean(
                sliced_wasserstein(chunk, ref) for chunk, ref in zip(x.split(N), references, strict=True)))
    table = {row: statistics.median(v) for row, v in values.items()}
    return table, table.pop("fresh data (the floor)")


def figure(mixture: GaussianMixture, ddgan: DDGAN, x_t: torch.Tensor) -> str:
    """The true q(x_0 | x_1) of the 4-step schedule at x_1 = x_t (contours) with the DDGAN's draws from its own
    p_theta(x_0 | x_1), beside DDPM's N(mu_theta, beta_1 I) with the exact eps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = ddgan.schedule
    axis = torch.linspace(-2.5, 2.5, 251, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    true = reverse_kernel(mixture, schedule, x_t, 1)
    gaussian = gaussian_reverse_step(mixture, schedule, x_t, 1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        x_rep = x_t.float().expand(400, 2)
        drawn = ddgan.generate_x0(x_rep, torch.ones(400, dtype=torch.long), generator=g)  # x_0 = x0' at t = 1
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, kernel, title in [(axes[0], true, "true q(x_0 | x_1): one mode per cluster"),
                              (axes[1], gaussian, "DDPM's Gaussian step N(mu_theta, beta_1 I), exact eps")]:
        density = kernel.log_prob(grid).exp().reshape(251, 251).T
        ax.contour(axis, axis, density, levels=8, cmap="viridis")
        ax.plot(*x_t.tolist(), "r*", markersize=14, label="x_1")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
    axes[0].scatter(*drawn.T, s=4, c="tab:orange", alpha=0.6, label="DDGAN draws x0' = G(x_1, z, 1)")
    axes[1].plot(*gaussian.means[0].tolist(), "kx", markersize=10, label="mu_theta (Algorithm 2's x_0 at t = 1)")
    for ax in axes:
        ax.legend(loc="lower right", fontsize=8)
    abar = schedule.alpha_bars[1].item()
    fig.suptitle(f"eight_gaussians, the last step of a 4-step sampler (alpha_bar_1 = {abar:.2f} -> 1)", fontsize=11)
    return str(save_figure(fig, FIGURE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ddpm-steps", type=int, default=3000, help="training steps of the eps-MLP")
    parser.add_argument("--gan-steps", type=int, default=3000, help="training steps of each DDGAN")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("## Few steps: Gaussian steps against a denoising diffusion GAN (benchmarks/ddgan.py)\n")
    print(f"Machine: {machine()}\n")
    start = time.perf_counter()
    mixture = eight_gaussians_mixture()
    timings, tables, ddgans = [], {}, {}
    for name in DATASETS:
        t0 = time.perf_counter()
        result = train(TrainConfig(dataset=name, steps=args.ddpm_steps, batch_size=256, seed=0, device="cpu",
                                   log_every=1000, checkpoint_every=10**9), progress=False)
        eps_model, schedule = result.ema_model.eval(), result.schedule
        timings.append(f"{name}: eps-MLP, {args.ddpm_steps} steps: {time.perf_counter() - t0:.0f} s")
        samplers: dict[str, Sampler] = {}
        for steps in (2, 4):
            t0 = time.perf_counter()
            ddgans[name, steps] = train_ddgan(get_dataset(name, "train"), respaced(LINEAR, steps),
                                              steps=args.gan_steps, seed=0, progress=False)
            timings.append(f"{name}: DDGAN T = {steps}, {args.gan_steps} steps: {time.perf_counter() - t0:.0f} s")

        def run(sampler: str, steps: int, model=eps_model, schedule=schedule) -> Sampler:
            return lambda n, g: sample(model, schedule, (n, 2), sampler=sampler, num_steps=steps, generator=g)

        for steps in (2, 4, 1000):
            samplers[f"DDPM, {steps} steps"] = run("ddpm", steps)
        for steps in (2, 4):
            samplers[f"DDIM (eta = 0), {steps} steps"] = run("ddim", steps)
        for steps in (2, 4):
            model = ddgans[name, steps]
            samplers[f"DDGAN, {steps} steps"] = (lambda n, g, m=model: ddgan_sample(m.G, m.schedule, (n, 2),
                                                                                    generator=g))
        if name == "eight_gaussians":
            exact_eps = mixture_eps_model(mixture, LINEAR)
            for steps in (2, 4):
                samplers[f"DDPM with the exact eps, {steps} steps"] = run("ddpm", steps, exact_eps, LINEAR)
            for steps in (2, 4):
                samplers[f"exact reverse kernel (the perfect DDGAN), {steps} steps"] = exact_chain(mixture, steps)
        t0 = time.perf_counter()
        with torch.no_grad():
            tables[name] = measure(name, samplers, args.seeds)
        timings.append(f"{name}: sampling and SW2, {args.seeds} seeds: {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    path = figure(mixture, ddgans["eight_gaussians", 4], torch.tensor([0.3, 0.1], dtype=torch.float64))
    timings.append(f"figure: {time.perf_counter() - t0:.0f} s")

    rows = list(dict.fromkeys(row for table, _ in tables.values() for row in table))
    print(f"Sliced W2 to fresh data: mean over {CHUNKS} chunks of {N} samples, each against its own {N} fresh data "
          f"points; median of {args.seeds} seeds. Each cell: SW2 (ratio to the floor).\n")
    print("| sampler | " + " | ".join(DATASETS) + " |")
    print("|---|" + "---|" * len(DATASETS))
    print("| fresh data (the floor) | " + " | ".join(f"{tables[d][1]:.3f}" for d in DATASETS) + " |")
    for row in rows:
        cells = [f"{tables[d][0][row]:.3f} ({tables[d][0][row] / tables[d][1]:.1f}x)" if row in tables[d][0] else "-"
                 for d in DATASETS]
        print(f"| {row} | " + " | ".join(cells) + " |")
    print("\nTimes (one thread): " + "; ".join(timings) + f". Total {time.perf_counter() - start:.0f} s.")
    print(f"\nPicture: {path}")


if __name__ == "__main__":
    main()
