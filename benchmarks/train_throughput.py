"""Training and sampling throughput of the demo's network on digits, and the networks' sizes.

    python -m benchmarks.train_throughput [--repeats 5] [--steps 20] [--device auto] [--threads N]

Prints one table: for each network configuration (the digits' default U-Net of the dataset registry and variants),
parameters, training steps/s and images/s (Algorithm 1 as the trainer runs it: `loop.optimisation_step` on
`train.training_objective`, batch 128, AdamW + clipping), and reverse steps/s when sampling a batch of 1000
(Algorithm 2). Each figure is the median of --repeats timed runs after one warm-up run.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import machine, median_seconds
from ddpm_scratch.ddpm import p_sample_step
from ddpm_scratch.machinery.data import DATASETS
from ddpm_scratch.machinery.loop import Batch, optimisation_step
from ddpm_scratch.machinery.train import TrainConfig, flush_subnormals, select_device, training_objective
from ddpm_scratch.nets import UNet, count_parameters
from ddpm_scratch.schedules import NoiseSchedule

DIGITS_UNET = DATASETS["digits"].network_args  # the demo's network (the dataset registry's default for digits)
CONFIGS = {
    "demo (default)": DIGITS_UNET,
    "no attention": DIGITS_UNET | {"attention_resolutions": ()},
    "adagn": DIGITS_UNET | {"time_injection": "adagn"},
    "wider (64)": DIGITS_UNET | {"base_channels": 64},
}


def measure(kwargs: dict, args: argparse.Namespace, device: torch.device) -> tuple[int, float, float]:
    """(parameters, training steps/s, reverse steps/s) of one U-Net configuration."""
    schedule = NoiseSchedule.linear().to(device)
    g = torch.Generator(device=device).manual_seed(0)
    x0 = torch.rand(args.batch_size, 1, 8, 8, device=device) * 2 - 1
    torch.manual_seed(0)
    model = UNet(in_channels=1, **kwargs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    objective, batch = training_objective(TrainConfig(dataset="digits"), schedule), Batch(x0)

    def train_run() -> None:
        for _ in range(args.steps):
            optimisation_step(model, opt, objective, batch, generator=g, max_grad_norm=1.0)  # Algorithm 1

    x_t = torch.randn(args.sample_batch, 1, 8, 8, device=device)
    t = torch.full((args.sample_batch,), 500, device=device)

    @torch.no_grad()
    def sample_run() -> None:
        for _ in range(10):
            p_sample_step(schedule, x_t, t, eps=model(x_t, t), generator=g)  # Algorithm 2, one step

    with flush_subnormals():  # as the trainer and the CLI run
        train_s, _, _ = median_seconds(train_run, args.repeats)
        model.eval()
        sample_s, _, _ = median_seconds(sample_run, args.repeats)
    return count_parameters(model), args.steps / train_s, 10 / sample_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sample-batch", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own; on a loaded 2-core machine 2 threads ran the "
                             "demo's U-Net 10-60x slower than 1)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    print(f"machine: {machine()}; device {device}")
    print(f"median of {args.repeats} runs ({args.steps} training steps or 10 reverse steps each) after a warm-up\n")
    print(f"| network | parameters | train steps/s | train images/s | reverse steps/s (batch {args.sample_batch}) |")
    print("|---|---:|---:|---:|---:|")
    for name, kwargs in CONFIGS.items():
        params, steps_per_s, reverse_per_s = measure(kwargs, args, device)
        print(f"| {name} | {params:,} | {steps_per_s:.1f} | {steps_per_s * args.batch_size:,.0f} "
              f"| {reverse_per_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
