"""The cost of classifier-free guidance: one guided step against one network call on 2B rows.

guidance.ClassifierFree makes one call of the conditional network on 2B rows (x_t twice; the label, then the "no
label" token) and combines the two halves. Its overhead over that call (the concatenations and the combination)
should stay small: target at most 1.1x. The network is the digits dataset's default conditional U-Net (10 classes,
random weights: the cost does not depend on them), B images of 1 x 8 x 8, in eval mode under torch.no_grad(), as the
samplers call it. Each figure is the median of several timed runs (benchmarks.common.per_call_seconds).

Run: python -m benchmarks.guidance_cost [--batch 64] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import machine, per_call_seconds
from ddpm_scratch.guidance import ClassifierFree
from ddpm_scratch.machinery.data import DATASETS
from ddpm_scratch.nets.protocol import LabelBound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = DATASETS["digits"]
    network = dataset.build_network(None, dataset.num_classes).eval()
    g = torch.Generator().manual_seed(0)
    b = args.batch
    x_t = torch.randn(b, *dataset.shape, generator=g)
    t = torch.randint(1, 1001, (b,), generator=g)
    x2, t2 = torch.cat([x_t, x_t]), torch.cat([t, t])
    y2 = torch.cat([torch.full((b,), 3), torch.full((b,), dataset.num_classes)])
    guided = ClassifierFree(network, 3, gamma=3.0, num_classes=dataset.num_classes)
    conditional = LabelBound(network, 3)
    with torch.no_grad():
        seconds = per_call_seconds({"network on 2B rows": lambda: network(x2, t2, y2),
                                    "ClassifierFree (gamma 3), B rows": lambda: guided(x_t, t),
                                    "conditional only (LabelBound), B rows": lambda: conditional(x_t, t)},
                                   args.repeats)
    print(f"# guidance_cost: {machine()}; torch threads {args.threads}; B = {b}, digits U-Net "
          f"({sum(p.numel() for p in network.parameters()):,} parameters), median of {args.repeats} runs")
    base = seconds["network on 2B rows"][0]
    print("| call | ms, median (min-max) | median / network on 2B rows |\n|---|---|---|")
    for name, (median, low, high) in seconds.items():
        print(f"| {name} | {1000 * median:.2f} ({1000 * low:.2f}-{1000 * high:.2f}) | {median / base:.3f} |")


if __name__ == "__main__":
    main()
