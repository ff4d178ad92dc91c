"""The runs of lecture 7's conditional image-to-image models on the digits: `ddpm-scratch apply palette | sr3`.

palette  one Palette model (`applications.palette`) for inpainting, uncropping and denoising, the task chosen by
         its input (source and mask channels), trained once in out/palette/model by `fit`; for each task on the test
         digits: a picture (source, samples, truth), the error on the pixels to fill (inpainting, uncropping) or on
         all (denoising, with PSNR), the FD ratio of the outputs, and how far the known pixels drift from the source
         (the model is only conditioned on them). `palette_model` and `applications.palette.conditional_inpaint` let
         the inpainting run compare the conditional model with replacement on the same masks.
sr3      the cascade's super-resolution stage (`machinery.train` with low_resolution = 4, noise conditioning
         augmentation) trained once in out/sr3, as SR3 on real 4x4 test digits at a few augmentation levels: a
         picture (input, samples per level, truth), PSNR to the truth beside bilinear upsampling's, the consistency of
         the output averaged down with the input (`applications.super_resolution`), and the FD ratio.

Both sample with DDIM (50 steps, eta = 0), as `benchmarks/cascade_digits.py` does. The errors (MSE, PSNR,
consistency, drift) are measured on the test digits; the FD ratio on the outputs for as many train digits, corrupted
the same way: FD compares with the test split, so outputs rebuilt from the test digits themselves would score below
the real-data floor (FD 0 for a perfect reconstruction), while outputs from train digits score 1 when they are as
good as the train digits are, the floor's own setting.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..applications.palette import DENOISE_SIGMA, TASKS, corrupt, palette_loss, translate
from ..applications.super_resolution import consistency, psnr
from ..cascade import downsample, super_resolve, upsample
from ..checks import check_int
from ..schedules import NoiseSchedule
from .applications import Application, Report, RunSettings, fit, register_application, trained_run
from .data import DATASETS, load_digits
from .demo import demo_config
from .loop import Batch
from .metrics import digits_fd
from .train import select_device, with_subnormals_flushed
from .viz import image_table, save_figure

__all__ = ["PALETTE_STEPS", "SR3_STEPS", "SR3_LEVELS", "SAMPLING", "palette_model", "sr3_model", "run_palette",
           "run_sr3"]

PALETTE_STEPS = 2000  # the pixel model's training (applications.PIXEL_STEPS), for three tasks at once
SR3_STEPS = 2000  # the cascade benchmark's SR stage
SR3_LEVELS = (0.0, 0.1, 0.2, 0.3)  # augmentation levels of the sweep (trained on s ~ U(0, 0.5))
SAMPLING = {"sampler": "ddim", "num_steps": 50}
QUICK_SAMPLING = {"sampler": "ddim", "num_steps": 5}
SHOWN = 10  # test digits per picture
EXTRA_DRAWS = 2  # more samples per shown source, for the picture: what the model leaves open


def _sampling(settings: RunSettings) -> dict[str, object]:
    return dict(QUICK_SAMPLING if settings.quick else SAMPLING)


def _plain(value: object) -> object:
    """Tuples as lists: the record as a checkpoint reads it back."""
    return json.loads(json.dumps(value))


def palette_model(out: Path, settings: RunSettings) -> tuple[nn.Module, NoiseSchedule]:
    """The Palette network of out/palette/model, trained there on first use (`fit`, the demo's optimisation with
    tasks drawn per example). Returns (network, schedule) on the settings' device: network(cat([x_t, source, mask]),
    t), for `applications.palette.translate` / `conditional_inpaint`; the schedule is the pixel model's."""
    check_int("seed", settings.seed, low=0)
    device = select_device(settings.device)
    demo = demo_config(steps=settings.steps(PALETTE_STEPS), seed=settings.seed, device=settings.device)
    loop = demo.loop_settings()
    schedule = NoiseSchedule.linear(demo.T, rescale=True).to(device)  # train.build_schedule(demo)
    args = {**DATASETS["digits"].network_args, "in_channels": 3, "out_channels": 1}  # x_t, source, mask -> eps
    record = _plain({"loop": dataclasses.asdict(loop), "network": args, "tasks": TASKS,
                     "denoise_sigma": DENOISE_SIGMA, "schedule": "linear", "T": demo.T, "seed": settings.seed})

    def objective(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return palette_loss(model, schedule, batch.x0, generator=generator)

    data = load_digits("train")[0].to(device)
    network = fit(lambda: DATASETS["digits"].build_network(args), objective, data, loop,
                  out=Path(out) / "palette" / "model", record=record, seed=settings.seed,
                  progress=settings.progress, desc="Palette (inpaint, uncrop, denoise)")
    return network, schedule


def sr3_model(out: Path, settings: RunSettings) -> tuple[nn.Module, NoiseSchedule]:
    """The super-resolution stage of out/sr3 (`machinery.train`, the demo's settings with low_resolution = 4: the
    cascade's noise conditioning augmentation, s ~ U(0, 0.5)), trained there on first use and resumed if
    interrupted. Returns (SR network adapted to eps, schedule) on the settings' device."""
    check_int("seed", settings.seed, low=0)
    config = dataclasses.replace(demo_config(steps=settings.steps(SR3_STEPS), seed=settings.seed,
                                             device=settings.device), low_resolution=4)
    return trained_run(config, Path(out) / "sr3", settings)


def _table(rows: list[tuple[str, Tensor]], title: str, path: Path) -> Path:
    """A picture of labelled rows of images (each (K, C, H, W), K columns)."""
    images = torch.stack([x.detach().cpu() for _, x in rows])
    fig = Figure(figsize=(0.55 * images.shape[1] + 1.6, 0.55 * len(rows) + 0.8))
    ax = fig.subplots()
    image_table(ax, images, [str(i + 1) for i in range(images.shape[1])], [label for label, _ in rows])
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def _fd_ratio(x: Tensor) -> float:
    return digits_fd(x.clamp(-1, 1).cpu()).ratio


def _test_and_train_digits(settings: RunSettings, device: torch.device) -> tuple[Tensor, Tensor]:
    """The first test digits (errors) and as many random train digits (FD), settings.count(360) of each."""
    n = settings.count(360)
    train = load_digits("train")[0]
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed + 30))[:n]
    return load_digits("test")[0][:n].to(device), train[pick].to(device)


@with_subnormals_flushed  # subnormal floats make CPU training and sampling up to ten times slower
def run_palette(out: Path, settings: RunSettings) -> Report:
    """Train (or load) the Palette model and translate the test digits for each task (module docstring)."""
    report = Report("palette")
    start = time.perf_counter()
    network, schedule = palette_model(out, settings)
    report.figures["train_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    device = select_device(settings.device)
    x0, train_x0 = _test_and_train_digits(settings, device)
    fill = load_digits("train")[0].mean(dim=0).to(device)  # the mean train digit: a fill that knows no context
    shown = min(SHOWN, len(x0))
    corruption = torch.Generator(device=device).manual_seed(settings.seed + 10)
    for task in TASKS:
        source, mask = corrupt(x0, task, generator=corruption)
        draws = torch.Generator(device=device).manual_seed(settings.seed + 20)
        x = translate(network, schedule, source, mask, generator=draws, **_sampling(settings))
        train_source, train_mask = corrupt(train_x0, task, generator=corruption)
        train_x = translate(network, schedule, train_source, train_mask, generator=draws, **_sampling(settings))
        extra = translate(network, schedule, source[:shown].repeat(EXTRA_DRAWS, 1, 1, 1),
                          mask[:shown].repeat(EXTRA_DRAWS, 1, 1, 1), generator=draws, **_sampling(settings))
        f = report.figures
        if task == "denoise":
            f["denoise_mse"] = (x - x0).pow(2).mean().item()
            f["denoise_psnr_db"] = psnr(x, x0).mean().item()
            f["denoise_source_psnr_db"] = psnr(source, x0).mean().item()
        else:
            unknown = 1 - mask
            per_pixel = unknown.sum() * x0.shape[1]
            f[f"{task}_masked_mse"] = ((x - x0).pow(2) * unknown).sum().item() / per_pixel.item()
            f[f"{task}_masked_mse_mean_fill"] = ((fill - x0).pow(2) * unknown).sum().item() / per_pixel.item()
            f[f"{task}_known_mean_abs_diff"] = ((x - source).abs() * mask).sum().item() / (
                mask.sum().item() * x0.shape[1])
            f[f"{task}_known_max_abs_diff"] = ((x - source).abs() * mask).max().item()
        f[f"{task}_fd_ratio"] = _fd_ratio(train_x)
        f[f"{task}_source_fd_ratio"] = _fd_ratio(train_source)
        rows = [("source", source[:shown]), ("sample 1", x[:shown])]
        rows += [(f"sample {k + 2}", extra[k * shown:(k + 1) * shown]) for k in range(EXTRA_DRAWS)]
        what = "unknown pixels grey (0)" if task != "denoise" else f"noise sigma = {DENOISE_SIGMA}"
        report.pictures.append(_table(rows + [("truth", x0[:shown])],
                                      f"Palette, {task}: test digits ({what})", Path(out) / "palette" / f"{task}.png"))
    report.figures["sample_seconds"] = time.perf_counter() - start
    f = report.figures
    report.lines.append(f"one model, {len(TASKS)} tasks chosen by the mask channel; {len(x0)} test digits per task, "
                        f"{_sampling(settings)['num_steps']} DDIM steps")
    report.lines.append(f"masked-region MSE: inpaint {f['inpaint_masked_mse']:.3f} (mean-digit fill "
                        f"{f['inpaint_masked_mse_mean_fill']:.3f}), uncrop {f['uncrop_masked_mse']:.3f} (mean-digit "
                        f"fill {f['uncrop_masked_mse_mean_fill']:.3f}); denoise PSNR {f['denoise_psnr_db']:.1f} dB "
                        f"from the source's {f['denoise_source_psnr_db']:.1f} dB")
    report.lines.append("a sample's error is about twice the posterior variance, the posterior mean's once: where "
                        "much is unknown (uncrop) a sharp sample can miss by more than the blurry mean digit")
    report.lines.append(f"known pixels move by {f['inpaint_known_mean_abs_diff']:.3f} on average, up to "
                        f"{f['inpaint_known_max_abs_diff']:.2f} (inpaint), {f['uncrop_known_mean_abs_diff']:.3f} and "
                        f"{f['uncrop_known_max_abs_diff']:.2f} (uncrop): conditioning does not keep them exactly "
                        "(replacement does)")
    report.lines.append(f"FD ratio of the outputs for {len(x0)} train digits: inpaint {f['inpaint_fd_ratio']:.2f}, "
                        f"uncrop {f['uncrop_fd_ratio']:.2f}, denoise {f['denoise_fd_ratio']:.2f} (their sources "
                        f"{f['inpaint_source_fd_ratio']:.2f}, {f['uncrop_source_fd_ratio']:.2f}, "
                        f"{f['denoise_source_fd_ratio']:.2f}; 1 = as good as real digits)")
    return report


@with_subnormals_flushed
def run_sr3(out: Path, settings: RunSettings) -> Report:
    """Train (or load) the SR stage and super-resolve real 4x4 test digits at each level of SR3_LEVELS."""
    report = Report("sr3")
    start = time.perf_counter()
    network, schedule = sr3_model(out, settings)
    report.figures["train_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    device = select_device(settings.device)
    x0, train_x0 = _test_and_train_digits(settings, device)
    z, train_z = downsample(x0, 4), downsample(train_x0, 4)
    bilinear = upsample(z, 8)
    f = report.figures
    f["bilinear_psnr_db"] = psnr(bilinear, x0).mean().item()
    f["bilinear_consistency"] = consistency(bilinear, z).mean().item()
    f["bilinear_fd_ratio"] = _fd_ratio(upsample(train_z, 8))
    shown = min(SHOWN, len(x0))
    rows = [("input (bilinear)", bilinear[:shown])]
    for level in SR3_LEVELS:
        draws = torch.Generator(device=device).manual_seed(settings.seed + 20)  # the same draws at every level
        x = super_resolve(network, schedule, z, size=8, aug_level=level, generator=draws, **_sampling(settings))
        f[f"psnr_db_s{level:g}"] = psnr(x, x0).mean().item()
        f[f"consistency_s{level:g}"] = consistency(x, z).mean().item()
        f[f"fd_ratio_s{level:g}"] = _fd_ratio(super_resolve(network, schedule, train_z, size=8, aug_level=level,
                                                            generator=draws, **_sampling(settings)))
        rows.append((f"SR s={level:g}", x[:shown]))
    best = min(SR3_LEVELS, key=lambda s: f[f"fd_ratio_s{s:g}"])
    f["best_aug_level"] = best
    f["sample_seconds"] = time.perf_counter() - start
    report.pictures.append(_table(rows + [("truth", x0[:shown])], "SR3 on 4x4 test digits -> 8x8, by augmentation "
                                  "level s", Path(out) / "sr3" / "super_resolution.png"))
    report.lines.append(f"{len(x0)} test digits (FD: as many train digits), {_sampling(settings)['num_steps']} DDIM "
                        f"steps; best level by FD "
                        f"s = {best:g}: PSNR {f[f'psnr_db_s{best:g}']:.1f} dB (bilinear {f['bilinear_psnr_db']:.1f}), "
                        f"consistency {f[f'consistency_s{best:g}']:.4f}, FD ratio {f[f'fd_ratio_s{best:g}']:.2f} "
                        f"(bilinear {f['bilinear_fd_ratio']:.2f})")
    return report


register_application(Application("palette", run_palette, "Palette: one conditional model inpaints, uncrops and "
                                 "denoises digits, the task chosen by its input (mask channel)"))
register_application(Application("sr3", run_sr3, "SR3: the cascade's SR stage super-resolves real 4x4 test digits; "
                                 "PSNR and consistency by augmentation level"))
