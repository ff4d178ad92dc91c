"""Shared bits of the benchmark scripts: a machine description and a median-of-runs timer."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} with {torch.get_num_threads()} "
            f"threads, {gpu}, Python {platform.python_version()}")


def median_seconds(fn: Callable[[], None], repeats: int, warmup: int = 1) -> tuple[float, float, float]:
    """Run fn warmup times, then time `repeats` runs: (median, min, max) seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def per_call_seconds(fns: dict[str, Callable[[], object]], repeats: int, min_run_seconds: float = 0.05,
                     warmup: int = 3) -> dict[str, tuple[float, float, float]]:
    """Seconds per call of each function: {name: (median, min, max)} over `repeats` timed runs.

    Each run makes n calls in a row, with n (one per function) the smallest power of two for which a run lasts
    at least min_run_seconds, so that the timer's resolution and the Python overhead of the loop do not show.
    The functions take turns within every round of runs, so a change of load on the machine falls on all of them
    alike and their ratios stay fair. The GPU is synchronised around every run, as in `median_seconds`.
    """

    def timed(fn: Callable[[], object], n: int) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    calls = {}
    for name, fn in fns.items():
        timed(fn, warmup)
        n = 1
        while timed(fn, n) < min_run_seconds:
            n *= 2
        calls[name] = n
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, calls[name]) / calls[name])
    return {name: (statistics.median(ts), min(ts), max(ts)) for name, ts in times.items()}
