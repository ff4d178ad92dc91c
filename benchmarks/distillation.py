"""Progressive distillation (distill.py, Salimans & Ho 2022): quality per stage against the DDIM teacher.

A teacher trained with machinery.train (L_simple, eps-prediction, DDPM's linear schedule, T = 1000) samples with N
deterministic DDIM steps; machinery.distillation.progressive_distillation halves N stage by stage (64 -> 32 -> 16 ->
8 -> 4). A --checkpoint of another prediction (x0, v) is distilled in its own parameterisation and sampled through
forward.as_eps_model. For every N
the table puts the student (its EMA weights) at N DDIM steps beside the original teacher at the same N, both from the
same x_T, with the seconds the stage took.

- 2-D (two_moons, the default MLP): sliced W2 (256 directions) between the samples and the test split, and its
  floor: the train split against the test split (the score of a perfect sampler with the same number of points).
- digits (the demo's U-Net, machinery.demo.demo_config, trained here or read from --checkpoint): digits_fd's ratio
  FD / floor (1 = as close to the test split as real training images).

Measured (2 logical cores of a Xeon, 1 thread, shared with other jobs: load average 4-5 on 2 cores; weighting
snr_trunc; seed 0; the 64 row is the teacher itself):

    N   two_moons sliced W2 (floor 0.020)     digits FD ratio (floor 1)
        teacher DDIM   student   stage s      teacher DDIM   student   stage s
    64  0.065                                 1.23
    32  0.075          0.066     33           1.28           1.28      208
    16  0.107          0.067     38           1.53           1.38       99
     8  0.191          0.069     40           2.63           1.74       88
     4  0.353          0.074     38           8.65           3.63       83

two_moons: teacher 4000 steps (63 s), 1500 iterations a stage, 4000 samples; 226 s in all. digits: the demo's
teacher, 2000 steps (511 s on the loaded machine), 600 iterations a stage, 720 samples; 1064 s in all. The same
digits run with --weighting snr+1 (v-MSE; the same teacher): students 1.26, 1.36, 1.70, 3.23 at 32, 16, 8, 4 steps
(one seed each: the two weightings are not told apart here).

Run: python -m benchmarks.distillation [--data two_moons digits] [--quick] [--checkpoint run/checkpoint.pt]
     [--out outputs/distillation] [--start 64] [--end 4] [--weighting snr_trunc]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import machine
from ddpm_scratch.distill import WEIGHTINGS
from ddpm_scratch.forward import as_eps_model
from ddpm_scratch.machinery.data import get_dataset
from ddpm_scratch.machinery.demo import demo_config
from ddpm_scratch.machinery.distillation import StageResult, progressive_distillation
from ddpm_scratch.machinery.metrics import digits_fd, sliced_wasserstein
from ddpm_scratch.machinery.train import TrainConfig, flush_subnormals, load_network, train
from ddpm_scratch.sampling import sample

SIZES = {  # (teacher training steps, distillation iterations per stage, samples measured)
    "two_moons": {"full": (4000, 1500, 4000), "quick": (1500, 300, 2000)},
    "digits": {"full": (2000, 600, 720), "quick": (600, 150, 360)},
}


def quality(name: str, network: torch.nn.Module, prediction: str, schedule, num_steps: int,
            x_T: torch.Tensor) -> float:
    """Sliced W2 to the test split (2-D) or the FD ratio (digits) of the network's DDIM samples from x_T (the
    network outputs `prediction`, adapted to an eps-model for the sampler)."""
    with torch.no_grad():
        x = sample(as_eps_model(network, schedule, prediction=prediction), schedule, x_T.shape, sampler="ddim",
                   num_steps=num_steps, x_T=x_T)
    if name == "digits":
        return digits_fd(x.clamp(-1, 1)).ratio
    return float(sliced_wasserstein(x, get_dataset(name, "test"), generator=torch.Generator().manual_seed(0)))


def teacher_for(name: str, size: str, checkpoint: str | None, out: str | None
                ) -> tuple[torch.nn.Module, str, object, float]:
    """The EMA teacher network, what it predicts, its schedule and the seconds its training took (0 when read from a
    checkpoint); out: keep the training run in out/<name> (its checkpoint.pt serves --checkpoint later)."""
    if checkpoint:
        network, schedule, config = load_network(checkpoint)
        if config.time != "discrete" or config.num_classes:
            raise ValueError("--checkpoint: the benchmark distils unconditional discrete-time runs")
        return network, config.prediction, schedule, 0.0
    steps = SIZES[name][size][0]
    config = demo_config(steps=steps, device="cpu") if name == "digits" else \
        TrainConfig(dataset=name, steps=steps, batch_size=256, lr=2e-3, warmup_steps=100, ema_decay=0.995,
                    device="cpu", checkpoint_every=10**9)
    t0 = time.perf_counter()
    result = train(config, out=f"{out}/{name}" if out else None, progress=False)
    return result.ema_model, config.prediction, result.schedule, time.perf_counter() - t0


def run(name: str, size: str, start: int, end: int, checkpoint: str | None, seed: int, weighting: str,
        out: str | None) -> list[str]:
    teacher, prediction, schedule, train_seconds = teacher_for(name, size, checkpoint, out)
    _, iterations, n = SIZES[name][size]
    data = get_dataset(name, "train")
    x_T = torch.randn((n, *data.shape[1:]), generator=torch.Generator().manual_seed(seed + 100))
    metric = "FD ratio" if name == "digits" else "sliced W2"
    floor = 1.0 if name == "digits" else float(sliced_wasserstein(
        get_dataset(name, "train", n=n), get_dataset(name, "test"), generator=torch.Generator().manual_seed(0)))
    rows = [f"### {name}: {metric} (floor {floor:.4f}); teacher trained {train_seconds:.0f} s, {iterations} "
            f"iterations per stage, {n} samples",
            "", "| N steps | DDIM teacher at N | student at N | stage seconds |", "|---|---|---|---|",
            f"| {start} | {quality(name, teacher, prediction, schedule, start, x_T):.4f} | (teacher) | |"]
    print(rows[0], flush=True)

    def report(stage: StageResult) -> None:
        N = stage.num_steps
        rows.append(f"| {N} | {quality(name, teacher, prediction, schedule, N, x_T):.4f} | "
                    f"{quality(name, stage.student, prediction, schedule, N, x_T):.4f} | {stage.seconds:.0f} |")
        print(rows[-1], f"(final loss {stage.final_loss:.4g})", flush=True)

    batch = 128 if name == "digits" else 256
    progressive_distillation(teacher, schedule, data, start, min_steps=end, callback=report, seed=seed,
                             iterations=iterations, batch_size=batch, lr=2e-4 if name == "digits" else 5e-4,
                             ema_decay=0.99, weighting=weighting, prediction=prediction)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["two_moons", "digits"], choices=list(SIZES))
    parser.add_argument("--quick", action="store_true", help="a small run (minutes on two CPU cores)")
    parser.add_argument("--start", type=int, default=64, help="the teacher's DDIM steps")
    parser.add_argument("--end", type=int, default=4, help="the last student's steps")
    parser.add_argument("--checkpoint", help="digits: a training checkpoint to distil instead of training one")
    parser.add_argument("--out", help="keep the teachers' training runs in OUT/<data> (for --checkpoint)")
    parser.add_argument("--weighting", default="snr_trunc", choices=WEIGHTINGS, help="the loss weighting (distill.py)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine(), flush=True)
    size = "quick" if args.quick else "full"
    with flush_subnormals():
        for name in args.data:
            t0 = time.perf_counter()
            rows = run(name, size, args.start, args.end, args.checkpoint if name == "digits" else None, args.seed,
                       args.weighting, args.out)
            print("\n".join(rows), f"\n({time.perf_counter() - t0:.0f} s in all, weighting {args.weighting})\n",
                  flush=True)


if __name__ == "__main__":
    main()
