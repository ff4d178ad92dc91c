"""The applications that steer the unconditional pixel-space digits model without training anything new:
`ddpm-scratch apply sdedit`, `apply inpaint` and `apply ilvr` (lecture 7), plus the exact-Gaussian measurement of
replacement's bias (`gaussian_inpainting_bias`).

Each run loads (or trains once, in out/pixel) the demo's model (`applications.pixel_model`), edits 360 digits of
the train split and writes one picture and one table of figures. Train digits, not test digits: FD compares with the
test split, and outputs made from the very digits it compares with (an inpainted test digit is mostly that digit)
would score below the real-data floor.

    sdedit    guides = stroke paintings of the digits; t0 swept over the chain: FD / floor (realism) and the RMS
              distance to the guide (faithfulness) against t0, a table of edits and the trade-off curve
    inpaint   the centre 4x4 of each digit unknown: replacement and RePaint's resampling on the pixel model, and
              the conditional Palette model (`palette_runs`, trained once); the error on the unknown pixels, FD / floor,
              the known pixels' largest change (0 for replacement; the conditional model only approaches them)
    ilvr      the digits as references, the low-pass factor N swept: the largest low-pass gap |phi_N(x0) - phi_N(y)|,
              FD / floor, the share of samples the digits classifier reads as the reference's class, the RMS distance
              to the reference
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..applications.ilvr import ilvr, low_pass
from ..applications.inpainting import inpaint
from ..applications.masks import centre_mask
from ..applications.palette import conditional_inpaint
from ..applications.sdedit import sdedit, stroke_painting
from ..schedules import NoiseSchedule
from ..score import GaussianMixture, mixture_eps_model
from .applications import Application, Report, RunSettings, pixel_model, register_application
from .data import load_digits
from .metrics import digits_classifier, digits_fd
from .train import flush_subnormals
from .viz import image_table, save_figure

__all__ = ["run_sdedit", "run_inpaint", "run_ilvr", "gaussian_inpainting_bias", "SDEDIT_T0", "ILVR_FACTORS"]

SDEDIT_T0 = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)  # t0 / T
SDEDIT_STEPS = 40  # DDPM steps for t0 = T; a t0 < T run takes a proportional share (at least 5)
INPAINT_STEPS, INPAINT_JUMPS, INPAINT_JUMP_LENGTH = 100, 4, 10
ILVR_FACTORS = (2, 4, 8)
ILVR_STEPS = 50
SHOWN = 8  # columns of the pictures


def _inputs(settings: RunSettings, n: int = 360) -> tuple[Tensor, Tensor]:
    """The first n digits of the train split (4 in a quick run) and their labels (module docstring: why train)."""
    images, labels = load_digits("train")
    n = settings.count(min(n, len(images)), quick=4)
    return images[:n], labels[:n]


def _generator(settings: RunSettings, device: torch.device, offset: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(settings.seed + offset)


FD_DRAWS = 5  # draws of the floor's and the test split's subsets per FD (metrics.digits_fd): 5 keep the sweeps cheap


def _fd_ratio(x: Tensor, settings: RunSettings) -> float:
    """FD / real floor of digits x (n = 360 per side in a full run)."""
    return digits_fd(x.clamp(-1, 1).cpu(), num_draws=settings.count(FD_DRAWS, quick=1)).ratio


def _rms(a: Tensor, b: Tensor, where: Tensor | None = None) -> float:
    d2 = (a - b).pow(2) if where is None else (a - b).pow(2)[where.expand_as(a)]
    return d2.mean().sqrt().item()


# ---------------------------------------------------------------------------------- SDEdit

def run_sdedit(out: Path, settings: RunSettings) -> Report:
    """SDEdit on stroke paintings of digits, t0 swept over SDEDIT_T0 (module docstring)."""
    eps_model, schedule = pixel_model(out, settings)
    device = schedule.betas.device
    x0, _ = _inputs(settings)
    guide = stroke_painting(x0, block=2, levels=3).to(device)
    report = Report("sdedit")
    report.figures["guide FD/floor"] = _fd_ratio(guide, settings)
    edits, fds, distances = [], [], []
    start = time.perf_counter()
    with flush_subnormals():
        for fraction in SDEDIT_T0:
            t0 = max(1, round(fraction * schedule.T))
            num_steps = max(5, round(settings.count(SDEDIT_STEPS, quick=5) * fraction))
            x = sdedit(eps_model, schedule, guide, t0, sampler="ddpm", num_steps=num_steps,
                       generator=_generator(settings, device)).clamp(-1, 1)
            edits.append(x[:SHOWN].cpu())
            fds.append(_fd_ratio(x, settings))
            distances.append(_rms(x, guide))
            report.figures[f"t0={t0}: FD/floor"] = fds[-1]
            report.figures[f"t0={t0}: RMS to guide"] = distances[-1]
    report.figures["seconds (editing, all t0)"] = time.perf_counter() - start
    folder = Path(out) / "sdedit"
    fig = Figure(figsize=(11, 4.5))  # not pyplot: the runs draw off screen, without changing a notebook's backend
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    rows = torch.stack([x0[:SHOWN], guide[:SHOWN].cpu(), *edits])
    image_table(left, rows.transpose(0, 1), ["truth", "guide"] + [f"{f:g}T" for f in SDEDIT_T0])
    left.set_title("SDEdit: columns are t0 / T")
    right.plot(SDEDIT_T0, fds, "o-", label="FD / real floor (realism: lower is better)")
    right.plot(SDEDIT_T0, distances, "s-", label="RMS distance to the guide (faithfulness: lower is better)")
    right.axhline(report.figures["guide FD/floor"], ls=":", color="grey", label="the guides' own FD / floor")
    right.set_xlabel("t0 / T")
    right.set_yscale("log")
    right.legend(fontsize=8)
    right.set_title("the trade-off in t0")
    report.pictures.append(save_figure(fig, folder / "sdedit.png"))
    best = min(range(len(SDEDIT_T0)), key=lambda i: fds[i] * distances[i])
    report.lines.append(f"realism improves with t0 while faithfulness falls; the product of the two is lowest at "
                        f"t0 = {SDEDIT_T0[best]:g} T")
    return report


# ---------------------------------------------------------------------------------- inpainting

def run_inpaint(out: Path, settings: RunSettings) -> Report:
    """Inpaint the centre 4x4 of digits by replacement and by RePaint's resampling (module docstring)."""
    eps_model, schedule = pixel_model(out, settings)
    device = schedule.betas.device
    x0, _ = _inputs(settings)
    x0 = x0.to(device)
    mask = centre_mask(x0.shape[0], 8, 8, 4).to(device)
    steps = settings.count(INPAINT_STEPS, quick=20)
    methods = {"replacement": dict(jumps=0), f"RePaint (jumps {INPAINT_JUMPS}, length {INPAINT_JUMP_LENGTH})":
               dict(jumps=INPAINT_JUMPS, jump_length=INPAINT_JUMP_LENGTH if not settings.quick else 5)}
    report, shown = Report("inpaint"), {"truth": x0[:SHOWN].cpu(), "known": torch.where(mask, x0, -1)[:SHOWN].cpu()}
    from .palette_runs import palette_model  # the conditional model of `apply palette`, trained there once

    network, palette_schedule = palette_model(out, settings)
    methods["Palette (conditional, no replacement)"] = dict(network=network)

    with flush_subnormals():
        for name, options in methods.items():
            start = time.perf_counter()
            if "network" in options:
                x = conditional_inpaint(options["network"], palette_schedule, x0, mask, sampler="ddpm",
                                        num_steps=steps, generator=_generator(settings, device),
                                        progress=settings.progress)
            else:
                x = inpaint(eps_model, schedule, x0, mask, num_steps=steps, generator=_generator(settings, device),
                            progress=settings.progress, **options)
            report.figures[f"{name}: seconds"] = time.perf_counter() - start
            report.figures[f"{name}: RMS error, unknown pixels"] = _rms(x, x0, ~mask)
            report.figures[f"{name}: largest change of a known pixel"] = (x - x0)[mask.expand_as(x)].abs().max().item()
            report.figures[f"{name}: FD/floor"] = _fd_ratio(x, settings)
            shown[name] = x[:SHOWN].cpu()
    fig = Figure(figsize=(1.0 + 0.55 * SHOWN, 0.7 * len(shown) + 0.6))
    ax = fig.add_subplot()
    image_table(ax, torch.stack(list(shown.values())), [""] * len(x0[:SHOWN]), list(shown))
    ax.set_title(f"inpainting the centre 4x4 ({steps} steps)")
    report.pictures.append(save_figure(fig, Path(out) / "inpaint" / "inpaint.png"))
    return report


def gaussian_inpainting_bias(*, rho: float = 0.95, a: float = 1.5, n: int = 20000, num_steps: int = 250,
                             jumps: tuple[int, ...] = (0, 1, 4, 9), jump_length: int = 10, seed: int = 0
                             ) -> list[dict[str, float]]:
    """Replacement's bias on x ~ N(0, [[1, rho], [rho, 1]]) with the exact eps, x1 = a known: the truth is
    x2 | x1 = a ~ N(rho a, 1 - rho^2). For each number of jumps, n inpaintings on the linear schedule (T = 1000)
    respaced to num_steps. Returns rows {jumps, mean, se, std, bias, network calls}."""
    mixture = GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 2), torch.tensor([[[1.0, rho], [rho, 1.0]]]))
    schedule = NoiseSchedule.linear(1000, rescale=True)
    calls = 0

    def eps_model(x_t: Tensor, t: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return exact(x_t, t)

    exact = mixture_eps_model(mixture, schedule)
    known = torch.tensor([a, 0.0]).expand(n, 2).clone()
    mask = torch.tensor([True, False]).expand(n, 2)
    rows = []
    for j in jumps:
        calls = 0
        x2 = inpaint(eps_model, schedule, known, mask, jumps=j, jump_length=jump_length, num_steps=num_steps,
                     generator=torch.Generator().manual_seed(seed + j))[:, 1]
        rows.append({"jumps": j, "mean": x2.mean().item(), "se": x2.std().item() / n**0.5, "std": x2.std().item(),
                     "bias": x2.mean().item() - rho * a, "calls": calls, "truth mean": rho * a,
                     "truth std": (1 - rho**2) ** 0.5})
    return rows


# ---------------------------------------------------------------------------------- ILVR

def run_ilvr(out: Path, settings: RunSettings) -> Report:
    """ILVR towards digits for each factor N in ILVR_FACTORS (module docstring)."""
    eps_model, schedule = pixel_model(out, settings)
    device = schedule.betas.device
    x0, labels = _inputs(settings)
    reference = x0.to(device)
    classifier = digits_classifier()
    report, shown = Report("ilvr"), {"reference": x0[:SHOWN]}
    steps = settings.count(ILVR_STEPS, quick=10)
    with flush_subnormals():
        for factor in ILVR_FACTORS:
            x = ilvr(eps_model, schedule, reference, factor, num_steps=steps,
                     generator=_generator(settings, device, factor)).cpu()
            gap = (low_pass(x, factor) - low_pass(x0, factor)).abs().max().item()
            with torch.no_grad():
                agree = (classifier(x.clamp(-1, 1)).argmax(1) == labels).float().mean().item()
            report.figures[f"N={factor}: largest low-pass gap to y"] = gap
            report.figures[f"N={factor}: FD/floor"] = _fd_ratio(x, settings)
            report.figures[f"N={factor}: same class as y"] = agree
            report.figures[f"N={factor}: RMS to y"] = _rms(x, x0)
            shown[f"N = {factor}"] = x[:SHOWN].clamp(-1, 1)
            shown[f"phi_{factor}(y)"] = low_pass(x0[:SHOWN], factor)
    fig = Figure(figsize=(1.0 + 0.55 * SHOWN, 0.7 * len(shown) + 0.6))
    ax = fig.add_subplot()
    image_table(ax, torch.stack(list(shown.values())), [""] * len(x0[:SHOWN]), list(shown))
    ax.set_title(f"ILVR: samples sharing the reference's N x N block means ({steps} DDPM steps)")
    report.pictures.append(save_figure(fig, Path(out) / "ilvr" / "ilvr.png"))
    return report


register_application(Application("sdedit", run_sdedit, "SDEdit: stroke paintings of digits edited from t0, the "
                                  "realism / faithfulness trade-off in t0"))
register_application(Application("inpaint", run_inpaint, "inpainting the centre of digits: replacement vs RePaint's "
                                  "resampling (error on the unknown pixels, FD)"))
register_application(Application("ilvr", run_ilvr, "ILVR: digits sharing a reference's low frequencies, the "
                                 "down-sampling factor N as the knob"))
