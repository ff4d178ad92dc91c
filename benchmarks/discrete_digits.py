"""Discrete-state diffusion (lecture 6, `ddpm_scratch.discrete`): exactness of the matrices at scale, the memory of
q(x_t | x0) and of the posterior at K = 256, D3PM on the digits' 17 grey levels (FD against the real-vs-real floor,
bits per dimension beside the Gaussian model's), and the toy-grammar text model.

1. Matrices: for T = 1000 and K = 256 (float64), the largest |row sum - 1| of Qbar_t over every t, and the largest
   difference between the closed form (uniform, absorbing) and the running product of the one-step matrices.
2. Memory: the peak resident memory that q_probs and q_posterior add for a batch of 128 8x8 images with K = 256
   (measured in a fresh process: the peak resident size, Linux's VmHWM, reset before the calls), beside the size of
   one (B, D, K') tensor and of a (B, D, K', K') one.
3. Digits: a D3PM per kernel (absorbing, uniform) trained with `train_discrete` for --steps steps (the CPU budget:
   under 10 minutes each), --n ancestral samples (all T steps), their FD in the package's digits feature space
   (`metrics.digits_fd`, test split, n = 360 per side) against the floor, and the variational bound on the 360 test
   digits in bits per dimension (`discrete.bound_bits`, one x_t draw per step, mean ± standard error over digits).
   The Gaussian rows are benchmarks/likelihood_nfe.py's, on the same 17-level test digits: the variational bound with
   its 17-bin discretised decoder and the probability-flow ODE's likelihood of the digits dequantised within the same
   bins (3 bits per dimension for a bin of width 1/8) — all three are -log2 of a probability of the 17-level image.
4. Text: a D3PM on the toy grammar's sentences (`machinery.text`), absorbing kernel, the fraction of --n samples the
   grammar accepts, ancestral (all T steps) and MaskGIT (12 steps).

Measured (2-core Xeon, torch 2.13.0+cpu, one torch thread, seed 0; the machine shared with other runs at load 4-6,
which makes every time here 2-3 times what it is on idle cores: a U-Net step takes 0.15 s at load 1.5, 0.35 s here):

    1. Matrices, T = 1000, K = 256:  max |row sum - 1|   max |closed form - product|
       uniform                       1.1e-15             2.0e-13
       absorbing                     0                   7.8e-16
       gaussian (the product)        4.9e-14             -
    2. Memory, batch 128 of 8x8, K = 256: one (B, D, K') float64 tensor is 16 MB, a (B, D, K', K') one would be
       4.0 GB; q_probs and both posteriors (one-hot and probabilities) add a peak of 113 MB (absorbing), 160 MB
       (uniform), 177 MB (gaussian, T = 100, whose stored matrices are another 100 MB).
    3. Digits, 2000 training steps (708 s absorbing, 599 s uniform at load 4-6; about 300 s at load 1.5):
       model                                       bits/dim         FD / floor (floor 3.27)
       D3PM absorbing, variational bound           1.894 ± 0.015    1.17
       D3PM uniform, variational bound             1.998 ± 0.015    1.16
       Gaussian DDPM, variational bound            3.04             (benchmarks/likelihood_nfe.py)
       Gaussian DDPM, probability-flow ODE         2.16             (benchmarks/likelihood_nfe.py)
    4. Text, absorbing, 3000 steps (730 s): grammatical 0.144 ± 0.019 ancestral (T steps, 227 s), 0.033 ± 0.009
       MaskGIT (12 steps, 5 s); the samples read as sentences with misspelt words ("the happy boy finds a big cat.",
       "a b girl find a small bird.").

Both kernels reach 1.2 times the real-vs-real floor, well within the target of 3 times. The categorical models give
the digits a higher likelihood than the Gaussian model does, by its bound (3.04) and by its ODE (2.16): they model
the 17 levels directly, where the Gaussian model spends probability between the levels.

Run: python -m benchmarks.discrete_digits [--steps 2000] [--text-steps 3000] [--n 360] [--threads 1] [--only ...]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch

from benchmarks.common import machine
from ddpm_scratch.discrete import CategoricalDiffusion, bound_bits, cumulative, maskgit_sample, sample, transition
from ddpm_scratch.machinery.discrete_training import DiscreteConfig, digits_as_categories, train_discrete
from ddpm_scratch.machinery.metrics import digits_fd
from ddpm_scratch.machinery.text import decode, is_grammatical
from ddpm_scratch.machinery.train import flush_subnormals

GAUSSIAN = {"variational bound (17-bin decoder)": 3.04, "probability-flow ODE (dequantised, same bins)": 2.16}


def matrices(T: int = 1000, K: int = 256) -> None:
    print(f"\n## 1. Matrices, T = {T}, K = {K}, float64")
    print(f"{'kernel':10s} {'max |row sum - 1|':>18s} {'max |closed - product|':>23s} {'seconds':>8s}")
    for kind in ("uniform", "absorbing", "gaussian"):
        t0 = time.perf_counter()
        process = CategoricalDiffusion.default(kind, K, T)
        Q_bar = cumulative(kind, process.betas, K)
        rows = (Q_bar.sum(-1) - 1).abs().max().item()
        gap = float("nan")
        if kind != "gaussian":  # the gaussian kernel's cumulative is the product itself
            product, gap = torch.eye(Q_bar.shape[1], dtype=torch.float64), 0.0
            for t in range(1, T + 1):
                product = product @ transition(kind, float(process.betas[t]), K)
                gap = max(gap, (product - Q_bar[t]).abs().max().item())
        print(f"{kind:10s} {rows:18.2e} {gap:23.2e} {time.perf_counter() - t0:8.1f}")
        del Q_bar


MEMORY_PROBE = """
import json, sys, torch
from ddpm_scratch.discrete import CategoricalDiffusion, q_posterior, q_probs, q_sample
kind, K, B = sys.argv[1], int(sys.argv[2]), 128
process = CategoricalDiffusion.default(kind, K, T=int(sys.argv[3]))
g = torch.Generator().manual_seed(0)
x0 = torch.randint(0, K, (B, 1, 8, 8), generator=g)
t = torch.randint(1, process.T + 1, (B,), generator=g)
x_t = q_sample(process, x0, t, generator=g)
p0 = torch.rand(B, 1, 8, 8, K, generator=g).softmax(-1)
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024
open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) restarts from the current resident size
before = status("VmRSS:")
q_probs(process, x0, t); q_posterior(process, x_t, t, x0=x0); q_posterior(process, x_t, t, x0=p0)
print(json.dumps({"before_mb": before, "added_mb": status("VmHWM:") - before}))
"""


def memory(K: int = 256) -> None:
    print(f"\n## 2. Memory of q(x_t | x0) and the posterior, batch 128 of 8x8, K = {K} (peak RSS added, fresh process)")
    row = 128 * 64 * (K + 1) * 8 / 2**20
    print(f"one (B, D, K') float64 tensor: {row:.1f} MB; a (B, D, K', K') one would be {row * (K + 1) / 1024:.1f} GB")
    for kind, T in (("uniform", 1000), ("absorbing", 1000), ("gaussian", 100)):
        done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, kind, str(K), str(T)], capture_output=True,
                              text=True, check=True)
        probe = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{kind:10s} T = {T:4d}: process and inputs {probe['before_mb']:7.0f} MB, the three calls add "
              f"{probe['added_mb']:6.1f} MB")


def digits(steps: int, n: int, seed: int) -> None:
    print(f"\n## 3. Digits on 17 grey levels: {steps} training steps, {n} samples (all T steps), seed {seed}")
    test = digits_as_categories("test")
    rows = []
    for kind in ("absorbing", "uniform"):
        config = DiscreteConfig(dataset="digits", kernel=kind, steps=steps, seed=seed, device="cpu")
        t0 = time.perf_counter()
        result = train_discrete(config, progress=False)
        trained = time.perf_counter() - t0
        g = torch.Generator().manual_seed(seed)
        with flush_subnormals():
            t0 = time.perf_counter()
            x = sample(result.ema_model, result.process, (n, 1, 8, 8), generator=g)
            sampled = time.perf_counter() - t0
            report = digits_fd(x.float() / 8 - 1)
            bits = bound_bits(result.ema_model, result.process, test, generator=g)
        rows.append((kind, trained, sampled, report, bits))
        print(f"{kind}: trained {trained:.0f} s, sampled {sampled:.0f} s, FD {report.fd:.2f} ± {report.fd_std:.2f} "
              f"(floor {report.floor:.2f}, ratio {report.fd / report.floor:.2f}), bound {bits.mean():.3f} bits/dim",
              flush=True)
    print(f"\n{'model':52s} {'bits/dim':>16s} {'FD / floor':>11s} {'train s':>8s}")
    for kind, trained, _, report, bits in rows:
        se = bits.std().item() / math.sqrt(len(bits))
        print(f"{'D3PM ' + kind + ', variational bound':52s} {bits.mean():9.3f} ± {se:.3f} "
              f"{report.fd / report.floor:11.2f} {trained:8.0f}")
    for name, value in GAUSSIAN.items():
        print(f"{'Gaussian DDPM, ' + name:52s} {value:9.2f}{'':8s} (benchmarks/likelihood_nfe.py)")


def text(steps: int, n: int, seed: int) -> None:
    print(f"\n## 4. Text: the toy grammar, absorbing kernel, {steps} training steps, {n} samples")
    config = DiscreteConfig(dataset="text", kernel="absorbing", steps=steps, seed=seed, device="cpu")
    t0 = time.perf_counter()
    result = train_discrete(config, progress=False)
    print(f"trained {time.perf_counter() - t0:.0f} s, final loss {result.final_loss:.4f}")
    for name, run in (("ancestral, T steps", lambda g: sample(result.ema_model, result.process, (n, 40), generator=g)),
                      ("MaskGIT, 12 steps", lambda g: maskgit_sample(result.ema_model, result.process, (n, 40),
                                                                     generator=g))):
        t0 = time.perf_counter()
        sentences = decode(run(torch.Generator().manual_seed(seed)))
        share = sum(map(is_grammatical, sentences)) / n
        print(f"{name:20s} grammatical {share:.3f} (± {math.sqrt(share * (1 - share) / n):.3f}), "
              f"{time.perf_counter() - t0:.0f} s; e.g. " + " | ".join(s.rstrip('_') for s in sentences[:3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per digits model")
    parser.add_argument("--text-steps", type=int, default=3000, help="training steps of the text model")
    parser.add_argument("--n", type=int, default=360, help="samples per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--only", nargs="*", default=["matrices", "memory", "digits", "text"],
                        choices=["matrices", "memory", "digits", "text"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# Discrete-state diffusion, {machine()}")
    if "matrices" in args.only:
        matrices()
    if "memory" in args.only:
        memory()
    if "digits" in args.only:
        digits(args.steps, args.n, args.seed)
    if "text" in args.only:
        text(args.text_steps, args.n, args.seed)
    print(f"\npeak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
