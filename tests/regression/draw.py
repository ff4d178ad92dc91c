"""Draw the regression cases with today's API and compare them with `samplers_before.pt`, bit for bit.

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python -m tests.regression.draw

Prints one line per case that differs and exits non-zero if any does (`tests/test_sampler_regression.py` runs it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from tests.regression.cases import ENV, SHAPE, case_id, network_of, schedule_of

REFERENCE = Path(__file__).with_name("samplers_before.pt")


def draw(case: dict) -> torch.Tensor:
    from ddpm_scratch.sampling import sample

    schedule = schedule_of(case["schedule"])
    return sample(network_of(schedule, case["prediction"]), schedule, SHAPE, sampler=case["sampler"],
                  num_steps=case["num_steps"], spacing=case["spacing"], prediction=case["prediction"],
                  generator=torch.Generator().manual_seed(case["seed"]), dtype=torch.float64, **case["options"])


def main() -> int:
    if any(os.environ.get(k) != v for k, v in ENV.items()):
        sys.exit(f"run with {' '.join(f'{k}={v}' for k, v in ENV.items())}")
    torch.set_num_threads(1)
    reference = torch.load(REFERENCE, weights_only=False)
    bitwise = reference["torch"] == torch.__version__
    failures = 0
    for case in reference["cases"]:
        ours, theirs = draw(case), reference["samples"][case_id(case)]
        same = torch.equal(ours, theirs) if bitwise else torch.allclose(ours, theirs, rtol=1e-10, atol=1e-12)
        if not same:
            failures += 1
            print(f"{case_id(case)}: max |difference| {(ours - theirs).abs().max().item():.3g}")
    print(f"{len(reference['cases']) - failures}/{len(reference['cases'])} cases "
          f"{'bit-identical' if bitwise else 'within 1e-10 (recorded with torch ' + reference['torch'] + ')'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
