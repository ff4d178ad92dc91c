"""Draw the regression cases with today's API and compare them with `samplers_before.pt`, bit for bit.

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python -m tests.regression.draw

Prints one line per case that differs and exits non-zero if any does (`tests/test_sampler_regression.py` runs it).

Networks that output x0 or v: before the frame, each sampler turned their output into eps with the schedule it ran
on, respaced (whose alpha_bar is the cumulative product of the jumps' alphas: the training schedule's alpha_bar
up to a few ulps); now `forward.as_eps_model` adapts the network once, with the training schedule's own alpha_bar
at the training step. So for those cases the samplers are checked bit for bit with an adapter that reads the
respaced schedule as the old code did (`respaced_reading_adapter`: the only difference is where alpha_bar is read),
and the real adapter's samples must agree with the reference to 1e-6 (the few-ulp difference amplified by at most
the samplers' 1 / sqrt(alpha_bar_T) ~ 1e2 over 8 steps: measured 1e-8 for EDM, 1e-12 for the others).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from tests.regression.cases import ENV, SHAPE, case_id, network_of, schedule_of

REFERENCE = Path(__file__).with_name("samplers_before.pt")
ADAPTER_TOLERANCE = 1e-6


def respaced_reading_adapter(network, schedule, case: dict):
    """An x0- or v-network as an eps-model that converts with the respaced schedule's alpha_bar, as before."""
    from ddpm_scratch.forward import convert
    from ddpm_scratch.schedules import respaced

    short = respaced(schedule, case["num_steps"], case["spacing"])
    index = {step: i for i, step in enumerate(short.timesteps.tolist())}

    def eps_model(x_t, t):
        i = torch.tensor([index[step] for step in t.tolist()])
        return convert(short, x_t, i, to="eps", **{case["prediction"]: network(x_t, t)})

    return eps_model


def draw(case: dict, *, as_before: bool = False) -> torch.Tensor:
    """The case's samples with today's `sample`; as_before: an x0/v network through `respaced_reading_adapter`."""
    from ddpm_scratch.forward import as_eps_model
    from ddpm_scratch.sampling import sample

    schedule = schedule_of(case["schedule"])
    network = network_of(schedule, case["prediction"])
    if as_before and case["prediction"] != "eps":
        eps_model = respaced_reading_adapter(network, schedule, case)
    else:
        eps_model = as_eps_model(network, schedule, prediction=case["prediction"])
    return sample(eps_model, schedule, SHAPE, sampler=case["sampler"], num_steps=case["num_steps"],
                  spacing=case["spacing"], generator=torch.Generator().manual_seed(case["seed"]), dtype=torch.float64,
                  **case["options"])


def main() -> int:
    if any(os.environ.get(k) != v for k, v in ENV.items()):
        sys.exit(f"run with {' '.join(f'{k}={v}' for k, v in ENV.items())}")
    torch.set_num_threads(1)
    reference = torch.load(REFERENCE, weights_only=False)
    bitwise = reference["torch"] == torch.__version__
    failures = 0
    for case in reference["cases"]:
        theirs = reference["samples"][case_id(case)]
        ours = draw(case, as_before=True)
        same = torch.equal(ours, theirs) if bitwise else torch.allclose(ours, theirs, rtol=1e-10, atol=1e-12)
        adapted = draw(case) if case["prediction"] != "eps" else ours
        close = (adapted - theirs).abs().max().item() <= ADAPTER_TOLERANCE
        if not (same and close):
            failures += 1
            print(f"{case_id(case)}: max |difference| {(ours - theirs).abs().max().item():.3g} (as before), "
                  f"{(adapted - theirs).abs().max().item():.3g} (as_eps_model)")
    print(f"{len(reference['cases']) - failures}/{len(reference['cases'])} cases "
          f"{'bit-identical' if bitwise else 'within 1e-10 (recorded with torch ' + reference['torch'] + ')'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
