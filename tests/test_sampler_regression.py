"""Nothing moves backwards: every registered sampler, at fixed seeds and explicit settings, draws bit-identical
samples to the code before the frame for units 5-7 (issue 14). The cases, the reference and why the run needs a
subprocess with torch's scalar kernels are in tests/regression/."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from regression.cases import ENV, SAMPLER_NAMES, cases

ROOT = Path(__file__).resolve().parents[1]


def test_every_registered_sampler_has_regression_cases():
    from ddpm_scratch.sampling import SAMPLERS

    assert set(SAMPLER_NAMES) <= set(SAMPLERS), "a sampler that existed before the frame was renamed or removed"
    assert {c["sampler"] for c in cases()} == set(SAMPLER_NAMES)
    recorded = torch.load(ROOT / "tests/regression/samplers_before.pt", weights_only=False)
    assert recorded["cases"] == cases()


def test_samples_are_bit_identical_to_the_code_before_the_frame():
    result = subprocess.run([sys.executable, "-m", "tests.regression.draw"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, **ENV}, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(cases())}/{len(cases())} cases" in result.stdout, result.stdout
