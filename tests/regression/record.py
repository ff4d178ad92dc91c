"""Record the sampler regression reference (`samplers_before.pt`) with the code before issue 14, commit 923d0d0.

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python -m tests.regression.record

It uses that commit's API (`sample(..., prediction=...)`), so it runs only there: kept as the record of how the
reference was made. The test (`tests/test_sampler_regression.py`) draws the same cases with today's API.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from tests.regression.cases import ENV, SHAPE, case_id, cases, network_of, schedule_of

OUT = Path(__file__).with_name("samplers_before.pt")


def main() -> None:
    from ddpm_scratch.sampling import sample

    if any(os.environ.get(k) != v for k, v in ENV.items()):
        sys.exit(f"run with {' '.join(f'{k}={v}' for k, v in ENV.items())}")
    torch.set_num_threads(1)
    samples = {}
    for case in cases():
        schedule = schedule_of(case["schedule"])
        x0 = sample(network_of(schedule, case["prediction"]), schedule, SHAPE, sampler=case["sampler"],
                    num_steps=case["num_steps"], spacing=case["spacing"], prediction=case["prediction"],
                    generator=torch.Generator().manual_seed(case["seed"]), dtype=torch.float64, **case["options"])
        samples[case_id(case)] = x0
    torch.save({"torch": torch.__version__, "cases": cases(), "samples": samples}, OUT)
    print(f"wrote {len(samples)} cases to {OUT}")


if __name__ == "__main__":
    main()
