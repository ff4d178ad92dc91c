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

Measured (2-core Xeon, torch 2.13.0+cpu with 2 threads, seed 0, this script alone on the machine, load 2; the
pixel, Palette and autoencoder stages had been partly trained in that folder by an earlier run, so only SR3, the
latent diffusion model and the DiffAE trained from scratch here):

    Gaussian (n = 20000, 250 steps): truth 1.4250, sd 0.3122
        jumps  calls  mean of x2 ± se    bias     sd
        0      250    1.0792 ± 0.0031   -0.3458   0.4407     replacement
        1      490    1.2503 ± 0.0027   -0.1747   0.3869
        4      1210   1.3467 ± 0.0026   -0.0783   0.3615
        9      2410   1.3678 ± 0.0025   -0.0572   0.3590     RePaint's r = 10
    run       cold (s)  cached (s)  figures
    sdedit    59*       12          FD/floor 17.8 (guides) -> 10.5, 5.0, 2.0, 1.3 at t0 = 0.1-0.4 T, then 1.7-2.2;
                                    RMS to the guide 0.34 -> 0.72; product lowest at t0 = 0.4 T
    inpaint   196*      54          unknown-pixel RMS / FD: replacement 0.85 / 2.36, RePaint (4 jumps) 0.69 / 0.89,
                                    Palette 0.67 / 2.34; known pixels: 0 change (both replacements), 0.40 (Palette)
    ilvr      13        13          N = 2, 4, 8: low-pass gap <= 2.4e-7; same class as y 0.77, 0.22, 0.12
    palette   26*       25          masked MSE inpaint 0.317 (mean fill 0.399), uncrop 0.315 (0.294); denoise
                                    16.5 dB from 12.1; FD/floor 0.99, 1.00, 0.95
    sr3       226       28          s = 0: PSNR 16.8 dB (bilinear 12.8), consistency 0.012, FD/floor 1.01
    latent    105*      11          FD/floor 1.96 (pixel 1.06, reconstructions 0.98); 0.43 s vs 1.45 s per batch
                                    of 500 at 20 DPM-Solver++ steps (3.4x)
    diffae    223       29          reconstruction PSNR 43.2 dB (inferred x_T), 19.6 dB (random x_T); probe 0.956;
                                    7 -> 1 edit 0.81 at s = 1, 1.00 at s = 1.5
    (* a stage resumed or loaded; a stage of the demo's size trains in 190-200 s here, so a fresh folder's first
    run that trains two (inpaint after no other run: pixel and Palette) takes about 7 minutes, one that trains one
    about 3.5-4.5.)
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
