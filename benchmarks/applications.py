"""Lecture 7's applications on the digits (`ddpm-scratch apply`): each run's figures and wall time, and the exact
measurement of replacement inpainting's bias on a correlated Gaussian.

1. Every registered application (`machinery.applications.applications()`), run in a fresh --out folder one after
   the other, as the command line runs it: its wall time with and without the training of the stages it needs (the
   pixel-space model of out/pixel is trained by the first run that needs it and shared by the later ones, so the
   table gives the training separately: the stage folders' own loss logs are not timed, the run is timed twice,
   cold and then again with every stage cached), and the figures its report holds.
2. Replacement vs RePaint on x ~ N(0, [[1, rho], [rho, 1]]), x1 = a known, the exact eps (no network):
   the unknown coordinate's mean against the truth rho a, its spread against sqrt(1 - rho^2), and the network calls
   (`pixel_runs.gaussian_inpainting_bias`): the bias replacement leaves and how much resampling removes.

Targets (issue 18): every application under 5 minutes on two CPU cores with its training (first run); the inpainted
known pixels exact; RePaint measurably cutting replacement's bias; latent diffusion within 2x of the real floor and
sampling faster than the pixel model at equal steps.

Measured: see the closing table at the end of this docstring once measured (the figures are printed by the script).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.common import machine
from ddpm_scratch.machinery.applications import RunSettings, applications
from ddpm_scratch.machinery.pixel_runs import gaussian_inpainting_bias


def gaussian_table(n: int) -> None:
    rows = gaussian_inpainting_bias(n=n)
    truth, spread = rows[0]["truth mean"], rows[0]["truth std"]
    print(f"\n## Replacement's bias, 2-D Gaussian (rho 0.95, x1 = 1.5 known, exact eps, 250 of 1000 steps, n = {n})")
    print(f"truth: E[x2 | x1] = {truth:.4f}, sd {spread:.4f}\n")
    print("| jumps (length 10) | network calls | mean of x2 ± se | bias | sd of x2 |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['jumps']} | {r['calls']} | {r['mean']:.4f} ± {r['se']:.4f} | {r['bias']:+.4f} | {r['std']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_applications"),
                        help="run folder (fresh: the first timing includes the training)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these applications")
    parser.add_argument("--quick", action="store_true", help="quick runs (plumbing only; figures mean nothing)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--gaussian-n", type=int, default=20000, help="inpaintings per row of the Gaussian table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# Applications (lecture 7), {machine()}; load at the start {os.getloadavg()[0]:.1f}")
    gaussian_table(args.gaussian_n)
    registered = applications()
    names = args.only or list(registered)
    settings = RunSettings(quick=args.quick, progress=False)
    for name in names:
        start = time.perf_counter()
        report = registered[name].run(args.out, settings)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        registered[name].run(args.out, settings)
        warm = time.perf_counter() - start
        print(f"\n## {name}: {cold:.0f} s with training (first run in {args.out}), {warm:.0f} s with the stages "
              f"cached; load {os.getloadavg()[0]:.1f}\n")
        print("| figure | value |\n|---|---:|")
        for key, value in report.figures.items():
            print(f"| {key} | {value:.4g} |")
        for line in report.lines:
            print(line)


if __name__ == "__main__":
    main()
