"""The run of lecture 7's latent diffusion: `ddpm-scratch apply latent --out runs/apps`.

Two stages, each trained once per run folder by `applications.fit` (`applications.latent` has the maths):

    out/latent/autoencoder    the KL-regularised autoencoder (nets.Autoencoder), L1 + beta * KL
    out/latent/diffusion      a U-Net eps-network on its rescaled latents, L_simple on fresh draws of q(z | x0)

then it draws samples with the demo's sampler (DPM-Solver++(2M), 20 uniform steps) in the latent space and decodes
them, and compares with the pixel-space model of the other applications (`applications.pixel_model`, out/pixel):

    out/latent/latent.png          rows: real test digits, their reconstructions, latent samples, pixel samples
    out/latent/latent_samples.png  100 latent-model samples

Figures: the autoencoder's reconstruction error on the test split; the FD ratio (`metrics.digits_fd`) of the
latent samples, of the pixel samples and of the autoencoder's reconstructions of the train split (the best a latent
model can do: a perfect prior over the train latents); the seconds to draw one batch with each model, same sampler,
steps and batch (median of 3 after a warm-up; the latent one includes decoding); each network's parameters; each
stage's seconds (training, or loading in a run folder that holds it).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..applications.latent import LatentSpace, autoencoder_loss, latent_loss, latent_scale, sample_latent
from ..nets import UNet, count_parameters
from ..nets.autoencoder import Autoencoder
from ..nets.protocol import EpsModel
from ..sampling import sample
from ..schedules import NoiseSchedule
from .applications import Application, Report, RunSettings, fit, pixel_model, register_application
from .data import load_digits
from .demo import DEMO_SAMPLER, DEMO_SAMPLING_STEPS, DEMO_SPACING
from .loop import Batch, LoopSettings
from .metrics import digits_fd
from .train import flush_subnormals, select_device
from .viz import image_table, save_figure, save_grid

__all__ = ["AUTOENCODER", "BETA", "RECONSTRUCTION", "LATENT_NETWORK", "AUTOENCODER_STEPS", "DIFFUSION_STEPS",
           "NUM_SAMPLES", "LatentStages", "train_latent", "seconds_per_batch", "run_latent"]

# Measured choices (2 CPU cores shared with other jobs, one training seed; FD/floor of 500 DPM-Solver++ samples,
# which moves by up to +-0.5 between sampling seeds, so each network was drawn with 3 seeds):
#   eps-network on the (2, 4, 4) latent: this UNet (0.49M) 2.00 / 1.47 / 1.50; nets.MLPEps 256 x 3 through FlatEps
#   (0.54M, 7x faster still) 2.50 / 2.29 / 2.46; MLPEps 128 x 4 2.46; UNet with one level (0.12M) 2.28; UNet of
#   base 16 2.47 (one seed each). MLP on a (1, 4, 4) latent: 2.17 / 3.01 / 2.89, with a 38k-parameter autoencoder
#   1.68 / 2.36 / 2.47. MLP 4000 steps 3.04; lr 1e-3 decaying linearly with EMA 0.999: 3.53 (worse, not better).
#   beta (MLP, one seed): 1e-6 2.50, 1e-4 2.42, 1e-3 2.36, 1e-2 2.46, 1e-1 2.72 (reconstruction FD 0.85-0.97),
#   1 collapses (reconstruction FD 22). The autoencoder's reconstruction FD is 0.86 at beta 1e-6: the latent
#   model, not the autoencoder, is what keeps the samples above the pixel model's FD.
# The full run with these choices (seed 0): FD/floor latent 1.91, pixel 1.06, reconstructions 0.98; 500 samples in
# 0.79-1.16 s against the pixel model's 3.7-4.5 s (3.2-5.8x, two runs at load 3 on 2 cores); stages 82 s, 255 s and
# 327 s (autoencoder, latent U-Net, pixel model) at load 11 falling to 3.
AUTOENCODER = dict(in_channels=1, latent_channels=2, channels=(16, 32), image_size=8)  # latent (2, 4, 4), 10k
BETA, RECONSTRUCTION = 1e-6, "l1"  # LDM's kl_weight and pixel term
LATENT_NETWORK = dict(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=())  # nets.UNet
AUTOENCODER_STEPS, DIFFUSION_STEPS = 1000, 2000
AUTOENCODER_LOOP = dict(batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.995, max_grad_norm=1.0)
DIFFUSION_LOOP = dict(batch_size=128, lr=2e-3, warmup_steps=200, ema_decay=0.995, max_grad_norm=1.0)
T = 1000  # the pixel model's linear schedule
NUM_SAMPLES, TIMING_BATCH, TIMING_REPEATS = 500, 500, 3


class LatentStages:
    """The two trained stages: space (the autoencoder with its scale factor), eps_model (on the rescaled latents),
    schedule, and the seconds each stage took (training, or loading)."""

    def __init__(self, space: LatentSpace, eps_model: nn.Module, schedule: NoiseSchedule, seconds: dict[str, float]):
        self.space, self.eps_model, self.schedule, self.seconds = space, eps_model, schedule, seconds


def _loop(steps: int, options: dict[str, Any]) -> LoopSettings:
    return LoopSettings(steps=steps, **options)


def train_latent(out: Path, settings: RunSettings) -> LatentStages:
    """Train (or load) the autoencoder in out/latent/autoencoder and the latent eps-model in out/latent/diffusion.
    Both on the digits' train split, on the settings' device."""
    device = select_device(settings.device)
    x0 = load_digits("train")[0].to(device)
    seconds = {}

    ae_loop = _loop(settings.steps(AUTOENCODER_STEPS), AUTOENCODER_LOOP)
    ae_record = {"stage": "autoencoder", "network": AUTOENCODER, "beta": BETA, "reconstruction": RECONSTRUCTION,
                 "loop": asdict(ae_loop), "seed": settings.seed}

    def ae_objective(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return autoencoder_loss(model, batch.x0, beta=BETA, reconstruction=RECONSTRUCTION, generator=generator)

    start = time.perf_counter()
    autoencoder = fit(lambda: Autoencoder(**AUTOENCODER), ae_objective, x0, ae_loop, out=out / "latent" / "autoencoder",
                      record=ae_record, seed=settings.seed, progress=settings.progress, desc="autoencoder")
    autoencoder.requires_grad_(False)
    seconds["autoencoder"] = time.perf_counter() - start
    scale = latent_scale(autoencoder, x0, generator=torch.Generator(device=device).manual_seed(settings.seed))
    space = LatentSpace(autoencoder, scale)

    schedule = NoiseSchedule.linear(T).to(device)
    c, h, _ = space.shape
    network = dict(in_channels=c, image_size=h, **LATENT_NETWORK)
    dm_loop = _loop(settings.steps(DIFFUSION_STEPS), DIFFUSION_LOOP)
    dm_record = {"stage": "latent diffusion", "network": network, "T": T, "autoencoder":
                 ae_record, "loop": asdict(dm_loop), "seed": settings.seed}

    def dm_objective(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return latent_loss(model, schedule, space, batch.x0, generator=generator)

    start = time.perf_counter()
    eps_model = fit(lambda: UNet(**network), dm_objective, x0, dm_loop,
                    out=out / "latent" / "diffusion", record=dm_record, seed=settings.seed + 1,
                    progress=settings.progress, desc="latent diffusion")
    seconds["diffusion"] = time.perf_counter() - start
    return LatentStages(space, eps_model, schedule, seconds)


def seconds_per_batch(draw: Callable[[], Tensor], repeats: int = TIMING_REPEATS) -> float:
    """Median wall-clock seconds of draw() over `repeats` calls, after one warm-up call (CUDA synchronised)."""
    def once() -> float:
        start = time.perf_counter()
        result = draw()
        if result.is_cuda:
            torch.cuda.synchronize(result.device)
        return time.perf_counter() - start

    once()
    return statistics.median(once() for _ in range(repeats))


def _picture(rows: list[tuple[str, Tensor]], path: Path) -> Path:
    images = torch.stack([x.detach().cpu().clamp(-1, 1) for _, x in rows])  # (R, C, 1, 8, 8)
    fig = Figure(figsize=(0.55 * images.shape[1] + 1.6, 0.55 * len(rows) + 0.6))
    ax = fig.subplots()
    image_table(ax, images, [""] * images.shape[1], [label for label, _ in rows])
    ax.set_title("latent diffusion (Rombach et al. 2022) on the digits", fontsize=9)
    return save_figure(fig, path)


def run_latent(out: Path, settings: RunSettings) -> Report:
    """Train both stages (cached), sample, write latent.png and latent_samples.png, measure (module docstring)."""
    out = Path(out)
    with flush_subnormals():
        return _run(out, settings)


def _run(out: Path, settings: RunSettings) -> Report:
    device = select_device(settings.device)
    stages = train_latent(out, settings)
    space, eps_model, schedule = stages.space, stages.eps_model, stages.schedule
    start = time.perf_counter()
    pixel_eps, pixel_schedule = pixel_model(out, settings)
    pixel_seconds = time.perf_counter() - start

    n, batch = settings.count(NUM_SAMPLES), settings.count(TIMING_BATCH)
    how = dict(sampler=DEMO_SAMPLER, num_steps=DEMO_SAMPLING_STEPS, spacing=DEMO_SPACING, device=device)

    def generator(offset: int = 0) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(settings.seed + offset)

    def draw_latent(count: int, g: torch.Generator | None = None) -> Tensor:
        return sample_latent(eps_model, schedule, space, count, generator=g, **how)

    def draw_pixel(count: int, g: torch.Generator | None = None) -> Tensor:
        return _sample_pixel(pixel_eps, pixel_schedule, count, g, how)

    latent_samples = draw_latent(n, generator()).cpu()
    pixel_samples = draw_pixel(n, generator()).cpu()
    latent_time = seconds_per_batch(lambda: draw_latent(batch, generator(1)))
    pixel_time = seconds_per_batch(lambda: draw_pixel(batch, generator(1)))

    train_x0, test_x0 = load_digits("train")[0].to(device), load_digits("test")[0].to(device)
    with torch.no_grad():
        test_rec = space.decode(space.encode(test_x0, sample=False)).clamp(-1, 1)
        train_rec = space.decode(space.encode(train_x0, sample=False)).clamp(-1, 1)
    fd_seed = settings.seed + 7

    def fd(x: Tensor) -> float:
        return digits_fd(x.cpu(), generator=torch.Generator().manual_seed(fd_seed)).ratio

    figures = {
        "latent_fd_ratio": fd(latent_samples),
        "pixel_fd_ratio": fd(pixel_samples),
        "reconstruction_fd_ratio": fd(train_rec),
        "reconstruction_mse_test": (test_rec - test_x0).pow(2).mean().item(),
        "reconstruction_mae_test": (test_rec - test_x0).abs().mean().item(),
        "latent_sample_seconds": latent_time,
        "pixel_sample_seconds": pixel_time,
        "speedup": pixel_time / latent_time,
        "scale_factor": space.scale,
        "autoencoder_parameters": count_parameters(space.autoencoder, trainable_only=False),  # type: ignore[arg-type]
        "latent_model_parameters": count_parameters(eps_model, trainable_only=False),
        "pixel_model_parameters": _parameters(pixel_eps),
        "autoencoder_seconds": stages.seconds["autoencoder"],
        "latent_diffusion_seconds": stages.seconds["diffusion"],
        "pixel_model_seconds": pixel_seconds,
        "load_average_1min": os.getloadavg()[0],  # the machine's load as the times were taken (shared CPUs)
    }
    k = min(12, n, len(test_x0))
    pictures = [
        _picture([("real (test)", test_x0[:k]), ("reconstructed", test_rec[:k])]
                 + [(f"latent {i + 1}", latent_samples[i * k:(i + 1) * k]) for i in range(min(3, n // k))]
                 + [(f"pixel {i + 1}", pixel_samples[i * k:(i + 1) * k]) for i in range(min(3, n // k))],
                 out / "latent" / "latent.png"),
        save_grid(latent_samples[:100], out / "latent" / "latent_samples.png", nrow=10, scale=6),
    ]
    c, h, w = space.shape
    lines = [
        f"latent (c, h, w) = ({c}, {h}, {w}): {c * h * w} values for 64 pixels; scale factor 1/std = {space.scale:.3g}",
        f"{DEMO_SAMPLER}, {DEMO_SAMPLING_STEPS} {DEMO_SPACING} steps, batch {batch}: latent "
        f"{latent_time:.3g} s (decoding included) vs pixel {pixel_time:.3g} s, {pixel_time / latent_time:.2g}x",
        f"FD / floor: latent {figures['latent_fd_ratio']:.2f}, pixel {figures['pixel_fd_ratio']:.2f}, the "
        f"autoencoder's reconstructions {figures['reconstruction_fd_ratio']:.2f} (what a perfect latent prior gives)",
    ]
    if settings.quick:
        lines.append("quick run: every stage trained a few steps, so the figures mean nothing")
    return Report("latent", figures, pictures, lines)


def _sample_pixel(eps_model: EpsModel, schedule: NoiseSchedule, count: int, g: torch.Generator | None,
                  how: dict[str, Any]) -> Tensor:
    with torch.no_grad():
        return sample(eps_model, schedule, (count, 1, 8, 8), generator=g, **how).clamp(-1, 1)


def _parameters(model: object) -> float:
    return float(count_parameters(model, trainable_only=False)) if isinstance(model, nn.Module) else float("nan")


register_application(Application("latent", run_latent, "latent diffusion (Rombach et al. 2022): a KL autoencoder "
                                  "on the digits and a diffusion model on its (2, 4, 4) latents; speed and FD beside "
                                  "the pixel-space model"))
