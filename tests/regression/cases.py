"""The sampler regression cases: every registered sampler at fixed seeds and explicit settings.

The samples in `samplers_before.pt` were recorded by `record.py` with the code as it stood before the frame for
units 5-7 (issue 14) changed the samplers' signatures, at commit 923d0d0; `tests/test_sampler_regression.py` draws
the same cases with the code of today and asks for bit-identical tensors.

Reproducible bits need the same arithmetic on every machine: the model is elementwise (the exact eps of a Gaussian
with a diagonal covariance, no matrix products), everything is float64, and both the recording and the test run in a
subprocess with one thread and `ATEN_CPU_CAPABILITY=default` (torch's scalar kernels, the same on every x86 CPU:
vectorised exp/log and the Box-Muller of randn otherwise differ in the last bit between AVX2 and AVX-512).
"""

from __future__ import annotations

import torch

ENV = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SHAPE = (64, 3)
MU = torch.tensor([0.7, -0.4, 0.1], dtype=torch.float64)
VAR = torch.tensor([0.3, 0.8, 1.4], dtype=torch.float64)  # below, near and above 1: the usual slips differ


def diagonal_gaussian_eps(alpha_bars: torch.Tensor):
    """E[eps | x_t] for data N(MU, diag(VAR)), elementwise: sqrt(1 - ab) (x_t - sqrt(ab) MU) / (ab VAR + 1 - ab).
    alpha_bars: the training schedule's (T+1,); the model is called at training steps t (B,)."""

    def eps_model(x_t, t):
        ab = alpha_bars[t].to(x_t.dtype)[:, None]
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * MU) / (ab * VAR + 1 - ab)

    return eps_model


# (sampler, schedule, num_steps, spacing, prediction, options, seed); schedule "linear" = NoiseSchedule.linear(),
# "cosine" = NoiseSchedule.cosine(), "linear50" = NoiseSchedule.linear(50, rescale=True)
SAMPLER_NAMES = ("ddpm", "sde", "pc", "ode", "ode_euler", "ddim", "dpmpp_2m", "unipc", "edm")


def cases() -> list[dict]:
    out = []
    for i, name in enumerate(SAMPLER_NAMES):
        out.append(dict(sampler=name, schedule="linear50", num_steps=None, spacing="uniform", prediction="eps",
                        options={}, seed=100 + i))
        for j, spacing in enumerate(("uniform", "leading", "quadratic")):
            out.append(dict(sampler=name, schedule="linear", num_steps=10, spacing=spacing, prediction="eps",
                            options={}, seed=200 + 10 * i + j))
        for j, prediction in enumerate(("x0", "v")):
            out.append(dict(sampler=name, schedule="cosine", num_steps=8, spacing="uniform", prediction=prediction,
                            options={}, seed=300 + 10 * i + j))
    for k, (name, options) in enumerate((("ddpm", {"variance": "posterior"}), ("ddim", {"eta": 0.5}),
                                         ("ddim", {"eta": 1.0}), ("pc", {"snr": 0.1, "corrector_steps": 2}),
                                         ("unipc", {"order": 1, "variant": "bh2"}),
                                         ("unipc", {"order": 2, "variant": "bh1"}))):
        out.append(dict(sampler=name, schedule="linear", num_steps=12, spacing="uniform", prediction="eps",
                        options=options, seed=400 + k))
    return out


def case_id(case: dict) -> str:
    options = ",".join(f"{k}={v}" for k, v in sorted(case["options"].items()))
    return (f"{case['sampler']}-{case['schedule']}-{case['num_steps']}-{case['spacing']}-{case['prediction']}"
            f"-{options}-{case['seed']}")


def schedule_of(name: str):
    from ddpm_scratch.schedules import NoiseSchedule

    return {"linear": NoiseSchedule.linear, "cosine": NoiseSchedule.cosine,
            "linear50": lambda: NoiseSchedule.linear(50, rescale=True)}[name]()


def network_of(schedule, prediction: str):
    """The exact model, as a network that outputs `prediction` (eps, x0 or v) at the training steps."""
    from ddpm_scratch.forward import convert

    eps_model = diagonal_gaussian_eps(schedule.alpha_bars)
    if prediction == "eps":
        return eps_model
    return lambda x_t, t: convert(schedule, x_t, t, eps=eps_model(x_t, t), to=prediction)
