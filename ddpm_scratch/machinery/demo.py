"""The demo: train a small DDPM on scikit-learn's digits and show what it learned.

Writes to `out/`: samples.png (a grid of EMA-model samples), reverse_process.png (x_t along the
reverse process as a strip), reverse_process.gif (the same as an animation), loss.png (the loss
curve), report.md (the quality figures next to the real-vs-real floor) and run/ (the training run:
config, loss log, checkpoint).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..forward import as_eps_model
from ..sampling import sample, trajectory
from .data import DATASETS
from .metrics import FDReport, digits_fd
from .train import TrainConfig, TrainResult, train, with_subnormals_flushed
from .viz import plot_loss, read_loss_log, save_gif, save_grid, save_strip

__all__ = ["demo_config", "run_demo", "DemoResult"]


DEMO_STEPS = 2000
DEMO_SAMPLES = 500
# The samples for the grid and the Frechet distance: DPM-Solver++(2M) with 20 steps (lecture 4). Measured on the
# demo's model, FD ratio over seeds 0 and 1: 1.09 and 1.15 against 1.03 and 1.18 for Algorithm 2 with all 1000
# steps, in 1.6 s instead of 80 s on two CPU cores, on uniform steps (the sampler's few-step default is now
# quadratic, measured on exact mixtures; these figures were measured on uniform ones). The reverse-process pictures
# stay Algorithm 2's.
DEMO_SAMPLER, DEMO_SAMPLING_STEPS, DEMO_SPACING = "dpmpp_2m", 20, "uniform"


def demo_config(steps: int = DEMO_STEPS, seed: int = 0, device: str = "auto") -> TrainConfig:
    """The demo's run: the default digits U-Net (0.3M parameters, ~17 steps/s on two idle CPU cores),
    sized so that training and sampling finish in under five minutes there."""
    return TrainConfig(dataset="digits", steps=steps, batch_size=128, lr=2e-3, warmup_steps=200,
                       ema_decay=0.995, seed=seed, device=device, checkpoint_every=500)


@dataclass
class DemoResult:
    fd: FDReport
    train_seconds: float
    sample_seconds: float
    steps_per_second: float
    out: Path


@with_subnormals_flushed  # sampling is ~10x slower on the CPU with subnormal floats
def run_demo(out: str | Path = "outputs/demo", steps: int = DEMO_STEPS, seed: int = 0, device: str = "auto",
             num_samples: int = DEMO_SAMPLES, config: TrainConfig | None = None, progress: bool = True) -> DemoResult:
    """Train on digits, sample with the EMA model, write the pictures and report.md. Returns the figures.

    num_samples: samples drawn for the grid and the Frechet distance (FD averages random subsets of them
    of the test split's size, see metrics.digits_fd).  config: replaces demo_config(steps, seed, device).
    """
    return _run_demo(Path(out), config or demo_config(steps, seed, device), num_samples, seed, progress)


def _run_demo(out: Path, config: TrainConfig, num_samples: int, seed: int, progress: bool) -> DemoResult:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: TrainResult = train(config, out=out / "run", progress=progress)
    train_seconds = time.perf_counter() - t0

    schedule = result.schedule
    model = as_eps_model(result.ema_model, schedule, prediction=config.prediction)
    model_device = next(result.ema_model.parameters()).device
    n = num_samples
    t0 = time.perf_counter()
    g = torch.Generator(device=model_device).manual_seed(seed)
    shape = DATASETS[config.dataset].shape
    samples = sample(model, schedule, (n, *shape), sampler=DEMO_SAMPLER, num_steps=DEMO_SAMPLING_STEPS,
                     spacing=DEMO_SPACING, generator=g, device=model_device, progress=progress).cpu()
    samples = samples.clamp(-1, 1)  # images live in [-1, 1]; a sampler's last step can overshoot a little
    sample_seconds = time.perf_counter() - t0
    save_grid(samples[:100], out / "samples.png", nrow=10, scale=6)

    T = schedule.T
    strip_steps = [T, int(0.8 * T), int(0.6 * T), int(0.4 * T), int(0.3 * T), int(0.2 * T), int(0.1 * T),
                   int(0.05 * T), int(0.02 * T), 0]
    traj = trajectory(model, schedule, (6, *shape), strip_steps, generator=g, device=model_device)
    save_strip(traj.cpu(), strip_steps, out / "reverse_process.png", title="Reverse process x_T -> x_0 (Algorithm 2)")
    gif_steps = list(range(T, -1, -max(T // 50, 1))) + ([0] if T % max(T // 50, 1) else [])
    frames = trajectory(model, schedule, (16, *shape), gif_steps, generator=g, device=model_device)
    save_gif(frames.cpu(), out / "reverse_process.gif", nrow=4, scale=8)
    plot_loss(*read_loss_log(out / "run" / "loss.csv"), out / "loss.png")

    fd = digits_fd(samples, generator=torch.Generator().manual_seed(seed))
    demo = DemoResult(fd=fd, train_seconds=train_seconds, sample_seconds=sample_seconds,
                      steps_per_second=result.steps_per_second, out=out)
    (out / "report.md").write_text(_report(demo, config, n))
    torch.save(samples, out / "samples.pt")
    return demo


def _report(demo: DemoResult, config: TrainConfig, n: int) -> str:
    fd = demo.fd
    verdict = "within" if fd.ratio <= 2 else "NOT within"
    return f"""# ddpm_scratch demo: DDPM on scikit-learn digits

![samples](samples.png)

## Quality

Frechet distance (FD) in the feature space of a small digits classifier, {fd.n} images on each side,
averaged over {fd.num_draws} random subsets ({n} samples drawn). The floor compares real train images with the
test split: a model as good as the data scores a ratio of about 1.

{fd.as_markdown()}

The samples are {verdict} 2x of the real-vs-real floor.

## Run

| | |
|---|---|
| training steps | {config.steps} (batch {config.batch_size}, lr {config.lr}, EMA {config.ema_decay}) |
| schedule | {config.schedule}, T = {config.T} |
| network | U-Net {config.model} |
| training time | {demo.train_seconds:.0f} s ({demo.steps_per_second:.1f} steps/s, \
{demo.steps_per_second * config.batch_size:.0f} images/s) |
| sampling time | {demo.sample_seconds:.1f} s for {n} samples: {DEMO_SAMPLER}, {DEMO_SAMPLING_STEPS} of the {config.T} \
steps (`sampling.SAMPLERS`) |
| device | {config.device} -> {'cuda' if torch.cuda.is_available() and config.device != 'cpu' else 'cpu'}, \
torch {torch.__version__}, {torch.get_num_threads()} threads |

![reverse process](reverse_process.png)

![loss](loss.png)
"""
