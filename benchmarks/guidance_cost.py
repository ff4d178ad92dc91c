"""The cost of guidance: a classifier-free guided step against one network call on 2B rows, and a classifier-guided
step against an unguided one.

1. guidance.ClassifierFree makes one call of the conditional network on 2B rows (x_t twice; the label, then the
   "no label" token) and combines the two halves. Its overhead over that call (the concatenations and the
   combination) should stay small: target at most 1.1x.
2. guidance.ClassifierGuided adds a noise-aware classifier's forward and backward pass (autograd of
   log p_t(y | x_t) with respect to x_t) to the unguided network call: target at most 3x the unguided call.

The networks are the digits dataset's default U-Net (conditional on 10 classes for 1, unconditional for 2) and a
nets.NoisyClassifier of the default width, random weights (the cost does not depend on them), B images of 1 x 8 x 8,
in eval mode under torch.no_grad(), as the samplers call them. Each figure is the median of several timed runs
(benchmarks.common.per_call_seconds).

Run: python -m benchmarks.guidance_cost [--batch 64] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import machine, per_call_seconds
from ddpm_scratch.guidance import ClassifierFree, ClassifierGuided, classifier_log_prob_y
from ddpm_scratch.machinery.data import DATASETS
from ddpm_scratch.nets import NoisyClassifier
from ddpm_scratch.nets.protocol import LabelBound
from ddpm_scratch.schedules import NoiseSchedule


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
    unconditional = dataset.build_network(None, 0).eval()
    classifier = NoisyClassifier(dataset.shape, dataset.num_classes).eval()
    classifier_guided = ClassifierGuided(unconditional, classifier_log_prob_y(classifier), 3,
                                         NoiseSchedule.linear(1000), gamma=3.0)
    with torch.no_grad():
        seconds = per_call_seconds({"network on 2B rows": lambda: network(x2, t2, y2),
                                    "ClassifierFree (gamma 3), B rows": lambda: guided(x_t, t),
                                    "conditional only (LabelBound), B rows": lambda: conditional(x_t, t),
                                    "unguided network, B rows": lambda: unconditional(x_t, t),
                                    "ClassifierGuided (gamma 3), B rows": lambda: classifier_guided(x_t, t)},
                                   args.repeats)
    print(f"# guidance_cost: {machine()}; torch threads {args.threads}; B = {b}, digits U-Net "
          f"({sum(p.numel() for p in network.parameters()):,} parameters), median of {args.repeats} runs")
    print("| call | ms, median (min-max) | median / its baseline |\n|---|---|---|")
    for name, (median, low, high) in seconds.items():
        base = seconds["unguided network, B rows" if "Guided" in name or "unguided" in name
                       else "network on 2B rows"]
        print(f"| {name} | {1000 * median:.2f} ({1000 * low:.2f}-{1000 * high:.2f}) | {median / base[0]:.3f} |")
    print(f"(classifier: {sum(p.numel() for p in classifier.parameters()):,} parameters; baselines: the network on "
          "2B rows for the classifier-free rows, the unguided network on B rows for the classifier-guided ones)")


if __name__ == "__main__":
    main()
