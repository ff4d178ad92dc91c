"""Training runs: Algorithm 1 on a dataset of the registry, through the one loop (`loop.run_loop`).

Two clocks (TrainConfig.time): "discrete" is DDPM's Algorithm 1, t ~ U{1..T} on the config's schedule, with
`losses.l_simple`; "continuous" is denoising score matching on the VP SDE (lecture 3), t ~ U(t_min, 1), with
`score.dsm_loss` at the weighting lambda(t) = std(t)^2, which is the same eps-regression in continuous time. A
continuous run's network reads float times t in [0, 1]; `load_model` wraps it to read the steps i of
`VPSDE.discretize(T)` as t = i / T, so every sampler of `sampling.SAMPLERS` runs on it, and `build_sde` +
`sde.eps_model_score(model, sde)` give its score at any t for the continuous-time solvers and the likelihood.

`training_objective` is the run's objective (what the network regresses on: `prediction`); `load_model` gives back
the eps-model every sampler takes (an x0- or v-network adapted once, `forward.as_eps_model`). Labelled datasets
train a conditional network when num_classes > 0 (each label dropped to the "no label" token num_classes with
probability label_dropout, so the same network is also unconditional); unconditional runs are unchanged. A cascade's
super-resolution stage (low_resolution > 0, lecture 5) trains on pairs made from each image and its downsampled
copy, corrupted by noise conditioning augmentation (`cascade.super_resolution_loss`); `cascade.SuperResolution` binds
a low-resolution input to its eps-model, and `cascade.cascade_sample` runs it after a base run (e.g. on digits_4x4).

Files in `out/`: config.json, loss.csv (step, loss, lr), checkpoint.pt (a `loop.Checkpoint`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..cascade import AUGMENTATIONS, super_resolution_loss
from ..checks import check_choice, check_int, check_number
from ..forward import PREDICTIONS, as_eps_model
from ..losses import drop_labels, l_simple
from ..nets.protocol import EpsModel
from ..schedules import NoiseSchedule
from ..score import dsm_loss
from ..sde import VPSDE, eps_model_score, time_from_step
from .data import DATASETS, load_dataset
from .files import UnreadableFile
from .loop import CHECKPOINT, LOSS_LOG, PRECISIONS, Batch, Checkpoint, LoopSettings, Objective, Update, run_loop

__all__ = [
    "TrainConfig", "TrainResult", "train", "build_model", "build_schedule", "build_sde", "ContinuousTimeOnSteps",
    "network_on_steps", "training_objective", "select_device", "load_checkpoint", "load_network", "load_model",
    "flush_subnormals", "CHECKPOINT", "LOSS_LOG",
]


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its command-line help (the CLI is built from these, see cli.py)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in config.json and in every checkpoint.

    Each field's help and choices are the command line's (`ddpm-scratch train --help`).
    """

    dataset: str = option("digits", "a dataset of the registry (machinery.data.DATASETS); built in: "
                          + "; ".join(f"{d.name}: {d.description}" for d in DATASETS.values()))
    steps: int = option(4000, "total training steps")
    batch_size: int = option(128, "examples per step")
    lr: float = option(2e-3, "peak learning rate of AdamW")
    warmup_steps: int = option(200, "steps of linear learning-rate warm-up")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float | None = option(1.0, "clip the gradient norm to this ('none': no clipping)")
    ema_decay: float = option(0.999, "decay of the exponential moving average of the weights")
    schedule: str = option("linear", "noise schedule (linear: DDPM's, rescaled by 1000/T)", ("linear", "cosine"))
    T: int = option(1000, "number of diffusion steps")
    prediction: str = option("eps", "what the network predicts: eps (Ho et al.), x0 or v", PREDICTIONS)
    time: str = option("discrete", "discrete: t ~ U{1..T} (Algorithm 1); continuous: t ~ U(t_min, 1) on the VP SDE "
                       "(beta 0.1..20), denoising score matching with lambda(t) = std(t)^2 (lecture 3)",
                       ("discrete", "continuous"))
    t_min: float = option(1e-5, "continuous time: the smallest t drawn (the score is undefined at t = 0)")
    num_classes: int = option(0, "train a conditional network on the dataset's labels 0..num_classes-1 (0: "
                              "unconditional; else the dataset's number of classes)")
    label_dropout: float = option(0.1, "conditional runs: the probability that a label is replaced by the 'no label' "
                                  "token, so that one network is conditional and unconditional (lecture 5)")
    low_resolution: int = option(0, "train a cascade's super-resolution stage (lecture 5): the network reads x_t and "
                                 "the image averaged down to low_resolution x low_resolution, upsampled back "
                                 "(bilinear), as channels, and its augmentation level (0: an ordinary model)")
    augmentation: str = option("noise", "super-resolution stage: how the low-resolution input is corrupted in "
                               "training, at a level s ~ U(0, max_aug_level) given to the network: noise (sqrt(1 - "
                               "s^2) z + s eps), blur (Gaussian, std s * cascade.BLUR_MAX_SIGMA = s pixels) or none",
                               AUGMENTATIONS)
    max_aug_level: float = option(0.5, "super-resolution stage: the largest augmentation level drawn in training")
    model: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "network arguments as JSON, e.g. '{\"base_channels\": 32}' ({}: the dataset's default)"})
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    precision: str = option("fp32", "fp32, bf16 autocast, or fp16 autocast with a GradScaler (CUDA only)",
                            PRECISIONS)
    log_every: int = option(25, "steps between rows of loss.csv")
    checkpoint_every: int = option(500, "steps between checkpoints")

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, tuple(DATASETS))  # read now: a dataset registered later is valid
        for f in fields(self):
            if f.metadata.get("choices"):
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        for name in ["steps", "batch_size", "T", "log_every", "checkpoint_every"]:
            check_int(name, getattr(self, name))
        check_number("t_min", self.t_min, 0, 1, low_open=True, high_open=True)
        check_int("num_classes", self.num_classes, low=0)
        check_number("label_dropout", self.label_dropout, 0, 1)
        check_int("low_resolution", self.low_resolution, low=0)
        check_number("max_aug_level", self.max_aug_level, 0, 1)
        if self.low_resolution:
            shape = DATASETS[self.dataset].shape
            if len(shape) != 3 or shape[1] % self.low_resolution or shape[2] % self.low_resolution or (
                    self.low_resolution >= shape[1]):
                raise ValueError(f"low_resolution must be 0, or smaller than an image dataset's height and width and "
                                 f"divide them; {self.dataset} has examples of shape {shape}, got "
                                 f"{self.low_resolution}")
            if self.time != "discrete" or self.prediction != "eps" or self.num_classes:
                raise ValueError("low_resolution (a cascade's super-resolution stage) trains an unconditional "
                                 "eps-network in discrete time: it needs time='discrete', prediction='eps' and "
                                 f"num_classes=0, got time={self.time!r}, prediction={self.prediction!r}, "
                                 f"num_classes={self.num_classes}")
        elif self.augmentation != "noise" or self.max_aug_level != 0.5:
            raise ValueError("augmentation and max_aug_level set a super-resolution stage's training; they need "
                             "low_resolution > 0")
        classes = DATASETS[self.dataset].num_classes
        if self.num_classes not in (0, classes):
            raise ValueError(f"num_classes must be 0 (unconditional) or {classes}, the number of classes of "
                             f"{self.dataset}, got {self.num_classes}" if classes else
                             f"num_classes must be 0: {self.dataset} has no labels, got {self.num_classes}")
        if self.time == "continuous" and (self.schedule != "linear" or self.prediction != "eps"):
            raise ValueError("time='continuous' trains an eps-network on the VP SDE, the continuous limit of the "
                             f"linear schedule: it needs schedule='linear' and prediction='eps', got schedule="
                             f"{self.schedule!r}, prediction={self.prediction!r}")
        if self.time == "continuous" and self.T <= VPSDE().beta_max:
            raise ValueError(f"time='continuous' samples on VPSDE().discretize(T), which needs T > "
                             f"{VPSDE().beta_max:g}, got T={self.T}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as error:
                raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from error
        if not isinstance(self.model, dict):
            raise ValueError(f"model must be a dict of network arguments, got {type(self.model).__name__}")
        if not self.model:
            self.model = dict(DATASETS[self.dataset].network_args)
        self.loop_settings()  # checks lr, warmup_steps, weight_decay, max_grad_norm, ema_decay

    def loop_settings(self) -> LoopSettings:
        """The one loop's settings for this run: AdamW, warm-up then constant lr, clipping, EMA, precision."""
        return LoopSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                            warmup_steps=self.warmup_steps, max_grad_norm=self.max_grad_norm,
                            ema_decay=self.ema_decay, precision=self.precision, log_every=self.log_every,
                            checkpoint_every=self.checkpoint_every)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; valid keys are {sorted(known)}")
        return cls(**d)


@dataclass
class TrainResult:
    model: nn.Module
    ema_model: nn.Module
    schedule: NoiseSchedule
    config: TrainConfig
    out: Path | None
    steps_per_second: float  # measured over this call's steps (after the first, which includes warm-up costs)
    final_loss: float


def select_device(name: str = "auto") -> torch.device:
    """"auto" picks CUDA when present, else the CPU; anything else is passed to torch.device (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return device


def build_schedule(config: TrainConfig) -> NoiseSchedule:
    """DDPM's linear schedule rescaled by 1000/T (`NoiseSchedule.linear(rescale=True)`), or the cosine schedule;
    for a continuous-time run, the VP SDE's discretisation `VPSDE().discretize(T)`, the schedule its samplers run on
    (the same betas up to rounding: beta_min / T .. beta_max / T)."""
    if config.time == "continuous":
        return build_sde(config).discretize(config.T)
    if config.schedule == "cosine":
        return NoiseSchedule.cosine(config.T)
    return NoiseSchedule.linear(config.T, rescale=True)


def build_sde(config: TrainConfig) -> VPSDE:
    """The SDE of a continuous-time run: the VP SDE with beta_min = 0.1, beta_max = 20 (Song et al. 2021)."""
    if config.time != "continuous":
        raise ValueError(f"build_sde: the run is in {config.time!r} time; only time='continuous' runs have an SDE")
    return VPSDE()


class ContinuousTimeOnSteps(nn.Module):
    """A network trained in continuous time, called with the discrete steps i of `VPSDE.discretize(T)`:
    forward(x, i) = net(x, i / T) (`sde.time_from_step`), so that the discrete samplers run on it.

    net: the network (float times in [0, 1]); `.net` gives it back for the continuous-time solvers.
    """

    def __init__(self, net: nn.Module, T: int) -> None:
        super().__init__()
        self.net, self.T = net, T

    def forward(self, x: Tensor, t: Tensor, *args: Tensor) -> Tensor:
        return self.net(x, time_from_step(t, self.T).to(x.dtype), *args)


def build_model(config: TrainConfig) -> nn.Module:
    """The network of the config's dataset (its registry entry's default, or config.model's arguments), conditional
    on the labels when config.num_classes > 0. A super-resolution stage (low_resolution > 0) reads C more channels,
    the upsampled low-resolution image, and its augmentation level (`nets.UNet`'s aug_level_conditioning)."""
    dataset = DATASETS[config.dataset]
    if not config.low_resolution:
        return dataset.build_network(config.model, config.num_classes)
    C = dataset.shape[0]
    return dataset.build_network({**config.model, "in_channels": 2 * C, "out_channels": C,
                                  "aug_level_conditioning": True}, config.num_classes)


def training_objective(config: TrainConfig, schedule: NoiseSchedule) -> Objective:
    """objective(model, batch, *, generator) of the config's clock: L_simple (Algorithm 1, lines 3-5) on the
    schedule, regressing on config.prediction, or in continuous time DSM on the VP SDE with lambda(t) = std(t)^2,
    i.e. mean ||eps - eps_theta(x_t, t)||^2 with t ~ U(t_min, 1) (`score.dsm_loss` through `sde.eps_model_score`).
    A conditional run (num_classes > 0) calls the network with the batch's labels, each dropped to the "no label"
    token with probability label_dropout (`losses.drop_labels`). A super-resolution stage (low_resolution > 0)
    regresses with `cascade.super_resolution_loss`, its low-resolution input augmented as config.augmentation says.
    generator draws t, eps, the dropped labels and the augmentation."""

    def labels(batch: Batch, generator: torch.Generator | None) -> Tensor | None:
        if not config.num_classes:
            return None
        return drop_labels(batch.y, rate=config.label_dropout, num_classes=config.num_classes, generator=generator)

    def conditioned(model: nn.Module, batch: Batch, generator: torch.Generator | None) -> Callable[..., Tensor]:
        y = labels(batch, generator)
        return model if y is None else lambda x_t, t: model(x_t, t, y)

    if config.low_resolution:
        def super_resolution(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
            return super_resolution_loss(model, schedule, batch.x0, generator=generator,
                                         low_size=config.low_resolution, kind=config.augmentation,
                                         max_aug_level=config.max_aug_level, y=labels(batch, generator),
                                         prediction=config.prediction)

        return super_resolution

    if config.time == "continuous":
        sde = build_sde(config)

        def dsm(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
            score = eps_model_score(conditioned(model, batch, generator), sde)
            return dsm_loss(score, sde, batch.x0, weighting="sigma2", t_min=config.t_min, generator=generator)

        return dsm

    def simple(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return l_simple(conditioned(model, batch, generator), schedule, batch.x0, generator=generator,
                        prediction=config.prediction)

    return simple


# ---------------------------------------------------------------------------------- checkpoints

def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """`loop.Checkpoint.load`, with the training config it records checked."""
    state = Checkpoint.load(path, map_location)
    try:
        TrainConfig.from_dict(state.config)
    except (TypeError, ValueError) as error:
        raise UnreadableFile(f"{path} holds an invalid training config: {error}") from error
    return state


def network_on_steps(config: TrainConfig) -> nn.Module:
    """The run's network as the samplers call it, weights not loaded: `build_model(config)`, wrapped in
    `ContinuousTimeOnSteps` for a continuous-time run (so that it reads the schedule's steps)."""
    network = build_model(config)
    return ContinuousTimeOnSteps(network, config.T) if config.time == "continuous" else network


def load_network(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, NoiseSchedule, TrainConfig]:
    """The (EMA by default) network of a checkpoint as it was trained, outputting config.prediction at the
    schedule's steps (`network_on_steps`), with its schedule and config; eval mode. Training and distillation start
    from it; samplers take `load_model`'s eps-model."""
    state = load_checkpoint(path, map_location=device)
    config = TrainConfig.from_dict(state.config)
    network = network_on_steps(config).to(device)
    weights = state.ema["model"] if ema else state.model
    (network.net if isinstance(network, ContinuousTimeOnSteps) else network).load_state_dict(weights)
    return network.eval(), build_schedule(config), config


def load_model(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
               ) -> tuple[EpsModel, NoiseSchedule, TrainConfig]:
    """Rebuild the (EMA by default) network of a checkpoint as the eps-model every sampler takes, with its schedule
    and config; eval mode.

    The network's output is adapted once here (`forward.as_eps_model`: an x0- or v-network becomes an eps-model of
    the schedule's steps); a continuous-time run's network is wrapped in `ContinuousTimeOnSteps` (its `.net` reads
    float times, for `sde.eps_model_score`). A conditional network still takes its label: eps_model(x_t, t, y)
    (`nets.protocol.LabelBound` binds one).
    """
    network, schedule, config = load_network(path, ema, device)
    return as_eps_model(network, schedule, prediction=config.prediction), schedule, config


# ---------------------------------------------------------------------------------- the loop

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def flush_subnormals() -> Iterator[None]:
    """Flush subnormal floats (below ~1e-38) to zero inside the block, and restore the previous mode after it.

    Adam's second moments and small activations reach subnormal values, which make CPU kernels up to ten times
    slower (1.8 -> 15.8 training steps/s on two cores); flushing them changes no figure we measure. The outermost
    entry (the command line, `train`, `run_demo`) applies it; inside it, a nested one changes nothing. torch has
    no getter for the mode, so it is probed.
    """
    was_on = torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_on)


def with_subnormals_flushed(function: F) -> F:
    """Run `function` inside `flush_subnormals()`."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with flush_subnormals():
            return function(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


@with_subnormals_flushed
def train(config: TrainConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          model: nn.Module | None = None) -> TrainResult:
    """Train a network with L_simple (Algorithm 1), or in continuous time with DSM, on the config's dataset.

    out: folder for config.json, loss.csv and checkpoint.pt (None: keep nothing on disk).
    resume: continue from out/checkpoint.pt — weights, EMA, optimiser, generators and step — so the
        result equals an uninterrupted run; config.steps may be raised to train longer.
    model: train this network instead of `build_model(config)` (its state must match on resume).
    """
    device = select_device(config.device)
    torch.manual_seed(config.seed)  # initial weights and dropout use the global generator: seeded per run
    model = (model if model is not None else build_model(config)).to(device)
    schedule = build_schedule(config).to(device)  # once, so that no step copies the schedule to the device
    data, labels = load_dataset(config.dataset, "train")

    def write_config() -> None:  # after a resume is checked: a refused one leaves config.json as it was
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    result = run_loop(model, [Update("loss", training_objective(config, schedule))], data.to(device),
                      config.loop_settings(), labels=labels.to(device) if config.num_classes else None,
                      data_rng=torch.Generator().manual_seed(config.seed + 1),  # Algorithm 1, line 2: which x0
                      noise_rng=torch.Generator(device=device).manual_seed(config.seed + 2),  # lines 3-4: t and eps
                      out=out, record=asdict(config), read_record=lambda saved: asdict(TrainConfig.from_dict(saved)),
                      resume=resume, on_start=write_config, progress=progress,
                      desc=f"training on {config.dataset} ({device.type})")
    return TrainResult(model=result.model, ema_model=result.ema_model, schedule=schedule, config=config,
                       out=Path(out) if out is not None else None, steps_per_second=result.steps_per_second,
                       final_loss=result.final_losses["loss"])
