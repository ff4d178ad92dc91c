"""The runs of lecture 7's applications: `ddpm-scratch apply NAME --out runs/apps`.

Each application (SDEdit, inpainting, super-resolution, Palette, ILVR, latent diffusion, diffusion autoencoders)
trains what it needs on the digits, once per run folder, and then makes the picture it exists to make and measures
its figure. A run is registered in `APPLICATIONS` as an `Application`: its `run(out, settings) -> Report` writes
its pictures under `out` and returns the figures; the command line and `benchmarks/applications.py` call it.

Training goes through the one loop (`loop.run_loop`) by `fit`: a stage is a folder under `out` holding its
checkpoint; a finished stage is loaded instead of trained again, an interrupted one resumes, and one trained with
other settings is refused (another --out, or delete the folder). `pixel_model` is the unconditional digits model
that SDEdit, inpainting and ILVR share (the demo's recipe, `demo.demo_config`); `trained_run` caches any run of
`machinery.train` the same way (the SR3 stage).
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_int, register_once
from ..nets.protocol import EpsModel
from ..schedules import NoiseSchedule
from .loop import CHECKPOINT, Checkpoint, LoopSettings, Objective, Update, run_loop
from .train import TrainConfig, load_model, select_device, train

__all__ = ["RunSettings", "Report", "Application", "APPLICATIONS", "register_application", "applications", "fit",
           "trained_run", "pixel_model", "QUICK_STEPS", "RUN_MODULES", "add_apply_command", "apply_command"]

QUICK_STEPS = 20  # training steps of every stage in a --quick run: the run's plumbing checked in seconds


@dataclass(frozen=True)
class RunSettings:
    """What every application run takes. quick: train each stage QUICK_STEPS steps and draw few samples (tests,
    a first look; the figures then mean nothing). seed: seeds the training and the sampling. device: "auto", "cpu",
    "cuda", "cuda:N". progress: tqdm bars."""

    quick: bool = False
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def steps(self, full: int) -> int:
        """A stage's training steps: `full`, or QUICK_STEPS in a quick run."""
        return QUICK_STEPS if self.quick else full

    def count(self, full: int, quick: int = 8) -> int:
        """How many samples (or images) to draw: `full`, or `quick` in a quick run."""
        return quick if self.quick else full


@dataclass
class Report:
    """What an application run measured and wrote. figures: {name: value} (FD, masked-region error, PSNR, seconds);
    pictures: the files it wrote; lines: a few sentences that read the figures."""

    name: str
    figures: dict[str, float] = field(default_factory=dict)
    pictures: list[Path] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def as_markdown(self, folder: Path) -> str:
        """The figures as a table and the pictures as links relative to `folder`, where the file will sit."""
        rows = [f"# {self.name}", "", "| figure | value |", "|---|---:|"]
        rows += [f"| {k} | {v:.4g} |" for k, v in self.figures.items()]
        pictures = [f"![{p.name}]({os.path.relpath(p, folder)})" for p in self.pictures]
        return "\n".join(rows + [""] + pictures + [""] + self.lines) + "\n"

    def __str__(self) -> str:
        rows = [f"{self.name}:"] + [f"  {k:<32} {v:.4g}" for k, v in self.figures.items()]
        rows += [f"  wrote {p}" for p in self.pictures] + [f"  {line}" for line in self.lines]
        return "\n".join(rows)


@dataclass(frozen=True)
class Application:
    """A registered application: run(out, settings) -> Report, with a one-line description for --help."""

    name: str
    run: Callable[[Path, RunSettings], Report]
    description: str


APPLICATIONS: dict[str, Application] = {}


def register_application(application: Application) -> Application:
    """Add an application to APPLICATIONS under its (unique) name. Returns it."""
    return register_once(APPLICATIONS, application.name, application, "application")


# the machinery modules whose import registers the built-in runs
RUN_MODULES = ("pixel_runs", "palette_runs", "latent_runs", "diffae_runs")


def applications() -> dict[str, Application]:
    """APPLICATIONS with every built-in run registered (RUN_MODULES imported; they import this module)."""
    for module in RUN_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return APPLICATIONS


def fit(build: Callable[[], nn.Module], objective: Objective, data: Tensor, settings: LoopSettings, *, out: Path,
        record: dict[str, Any], seed: int, labels: Tensor | None = None, progress: bool = True,
        desc: str = "training") -> nn.Module:
    """The EMA network of one stage, trained on `data` through the one loop, or loaded where `out` holds it.

    build(): the network, untrained (built after seeding the global generator with `seed`, so its weights are
    reproducible). objective(model, batch, *, generator) -> scalar. data: (N, ...) on the device to train on;
    labels: (N,) long or None. record: what defines the stage (its settings as plain values): a finished checkpoint
    in `out` with the same record is loaded, an unfinished one resumed; another record raises naming the folder.
    Returns the network (EMA weights when settings keep an EMA) in eval mode on data's device.
    """
    out = Path(out)
    resume = False
    if (out / CHECKPOINT).exists():
        state = Checkpoint.load(out / CHECKPOINT, map_location=data.device)
        if state.config != record:
            raise ValueError(f"{out} holds a stage trained with other settings ({state.config}), not {record}; "
                             "give another --out or delete that folder")
        if state.step >= settings.steps:
            torch.manual_seed(seed)
            network = build().to(data.device)
            network.load_state_dict(state.ema["model"] if state.ema is not None else state.model)
            return network.eval()
        resume = True
    torch.manual_seed(seed)
    result = run_loop(build().to(data.device), [Update("loss", objective)], data, settings, labels=labels,
                      data_rng=torch.Generator().manual_seed(seed + 1),
                      noise_rng=torch.Generator(device=data.device).manual_seed(seed + 2), out=out, record=record,
                      resume=resume, progress=progress, desc=desc)
    return result.ema_model.eval()


PIXEL_STEPS = 2000  # the demo's training (demo.DEMO_STEPS): FD/floor about 1.1 with 20 DPM-Solver++ steps


def trained_run(config: TrainConfig, run: Path, settings: RunSettings) -> tuple[EpsModel, NoiseSchedule]:
    """The eps-model of the `machinery.train` run `config` in folder `run`: trained there on first use, resumed if
    interrupted, loaded if finished; a folder holding another config is refused. Returns (eps_model, schedule) on the
    settings' device."""
    run = Path(run)
    if (run / CHECKPOINT).exists():
        state = Checkpoint.load(run / CHECKPOINT)
        if state.config != asdict(config):
            raise ValueError(f"{run} holds a model trained with other settings; give another --out or delete it")
        if state.step < config.steps:
            train(config, run, resume=True, progress=settings.progress)
    else:
        train(config, run, progress=settings.progress)
    device = select_device(settings.device)
    eps_model, schedule, _ = load_model(run / CHECKPOINT, device=device)
    return eps_model, schedule.to(device)


def pixel_model(out: Path, settings: RunSettings) -> tuple[EpsModel, NoiseSchedule]:
    """The unconditional digits eps-model of out/pixel (the demo's recipe), trained there on first use.
    Returns (eps_model, schedule) on the settings' device."""
    from .demo import demo_config

    check_int("seed", settings.seed, low=0)
    config = demo_config(steps=settings.steps(PIXEL_STEPS), seed=settings.seed, device=settings.device)
    return trained_run(config, Path(out) / "pixel", settings)


# ---------------------------------------------------------------------------------- the command line

def add_apply_command(sub: argparse._SubParsersAction) -> None:
    """Add `apply` to the command line's subparsers."""
    a = sub.add_parser("apply", help="run lecture 7's applications on the digits (SDEdit, inpainting, SR3, ...)",
                       description="Run applications of a trained diffusion model on the digits. Each trains what it "
                                   "needs once, in a folder under --out (a finished stage is reused, an interrupted "
                                   "one resumed), writes its pictures and report.md under --out/NAME and prints its "
                                   "figures. --list names them.")
    a.add_argument("names", nargs="*", metavar="NAME", help="applications to run (see --list)")
    a.add_argument("--list", action="store_true", help="list the applications and stop")
    a.add_argument("--out", type=Path, default=Path("runs/apps"), help="run folder (default: %(default)s)")
    a.add_argument("--quick", action="store_true",
                   help=f"train each stage {QUICK_STEPS} steps and draw few samples: checks the plumbing in seconds, "
                        "its figures mean nothing (use another --out than a full run's)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    a.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N (default: auto)")


def apply_command(args: argparse.Namespace) -> int:
    """`ddpm-scratch apply`: run the named applications one after the other."""
    registered = applications()
    if args.list or not args.names:
        for application in registered.values():
            print(f"  {application.name:<10} {application.description}")
        return 0
    unknown = [n for n in args.names if n not in registered]
    if unknown:
        raise ValueError(f"unknown application(s) {', '.join(unknown)}; valid: {', '.join(registered)}")
    settings = RunSettings(quick=args.quick, seed=args.seed, device=args.device)
    for name in args.names:
        report = registered[name].run(args.out, settings)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.md").write_text(report.as_markdown(folder))
        print(report)
    return 0
