"""The demo's quality and cost: runs `ddpm-scratch demo` end to end and prints its figures.

    python -m benchmarks.demo_quality [--runs 1] [--steps N] [--out outputs/bench_demo]

Prints: wall time (training, sampling, total), training throughput, and the Frechet distance of the samples
to the test digits next to the real-vs-real floor (the issue's bar: ratio <= 2, total <= 5 minutes on 2 cores).
With --runs > 1 each run uses another seed and the table ends with the median.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import machine
from ddpm_scratch.machinery.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    parser.add_argument("--out", default="outputs/bench_demo")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    print("| seed | train s | steps/s | images/s | sampling s | total s | FD samples | FD floor | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, totals = [], []
    for seed in range(args.runs):
        t0 = time.perf_counter()
        kwargs = {"steps": args.steps} if args.steps else {}
        r = run_demo(f"{args.out}/seed{seed}", seed=seed, device=args.device, progress=False, **kwargs)
        total = time.perf_counter() - t0
        ratios.append(r.fd.ratio)
        totals.append(total)
        print(f"| {seed} | {r.train_seconds:.0f} | {r.steps_per_second:.1f} | {r.steps_per_second * 128:.0f} "
              f"| {r.sample_seconds:.0f} | {total:.0f} | {r.fd.fd:.2f} ± {r.fd.fd_std:.2f} "
              f"| {r.fd.floor:.2f} ± {r.fd.floor_std:.2f} | {r.fd.ratio:.2f} |", flush=True)
    if args.runs > 1:
        print(f"| median | | | | | {statistics.median(totals):.0f} | | | {statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
