"""The trainer: Algorithm 1 in a loop, with what a real run needs around it.

Two clocks (TrainConfig.time): "discrete" is DDPM's Algorithm 1, t ~ U{1..T} on the config's schedule, with
`losses.l_simple`; "continuous" is denoising score matching on the VP SDE (lecture 3), t ~ U(t_min, 1), with
`score.dsm_loss` at the weighting lambda(t) = std(t)^2, which is the same eps-regression in continuous time. A
continuous run's network reads float times t in [0, 1]; `load_model` wraps it to read the steps i of
`VPSDE.discretize(T)` as t = i / T, so every sampler of `sampling.SAMPLERS` runs on it, and `build_sde` +
`sde.eps_model_score(model, sde)` give its score at any t for the continuous-time solvers and the likelihood.

AdamW with linear warm-up, gradient clipping, mixed precision (bf16 autocast, or fp16 with a GradScaler on CUDA),
an exponential moving average (EMA) of the weights, seeded generators, CUDA when present, a tqdm progress bar, a
CSV loss log, atomic checkpoints, `resume` continuing exactly where a run stopped, and a clear stop on a NaN/inf
loss that keeps the last good checkpoint.

Files in `out/`: config.json, loss.csv (step, loss, lr), checkpoint.pt (a `Checkpoint`).
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_number
from ..forward import PREDICTIONS
from ..losses import l_simple
from ..nets import MLPEps, UNet
from ..schedules import NoiseSchedule
from ..score import dsm_loss
from ..sde import VPSDE, eps_model_score, time_from_step
from .data import DATASETS, TOY_DATASETS, get_dataset
from .files import UnreadableFile, atomic_save, load_torch_file

__all__ = [
    "TrainConfig", "TrainResult", "TrainingDiverged", "EMA", "Checkpoint", "train", "build_model", "build_schedule",
    "build_sde", "ContinuousTimeOnSteps", "training_loss", "select_device", "load_checkpoint", "load_model",
    "flush_subnormals", "optimisation_step",
]

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.csv"

# Default networks: a small U-Net for 8x8 digits, an MLP for 2-D toy data.
DIGITS_UNET = dict(base_channels=24, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,))
TOY_MLP = dict(hidden=128, depth=3)


def option(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its command-line help (the CLI is built from these, see cli.py)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    """Everything that defines a run; saved in config.json and in every checkpoint.

    Each field's help and choices are the command line's (`ddpm-scratch train --help`).
    """

    dataset: str = option("digits", f"digits (8x8 images) or a 2-D toy set: {', '.join(TOY_DATASETS)}", DATASETS)
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
    model: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "network arguments as JSON, e.g. '{\"base_channels\": 32}' ({}: the dataset's default)"})
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    precision: str = option("fp32", "fp32, bf16 autocast, or fp16 autocast with a GradScaler (CUDA only)",
                            ("fp32", "bf16", "fp16"))
    log_every: int = option(25, "steps between rows of loss.csv")
    checkpoint_every: int = option(500, "steps between checkpoints")

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.metadata.get("choices"):
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        for name in ["steps", "batch_size", "T", "log_every", "checkpoint_every"]:
            check_int(name, getattr(self, name))
        check_int("warmup_steps", self.warmup_steps, low=0)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0)
        check_number("ema_decay", self.ema_decay, 0, 1, high_open=True)
        check_number("t_min", self.t_min, 0, 1, low_open=True, high_open=True)
        if self.time == "continuous" and (self.schedule != "linear" or self.prediction != "eps"):
            raise ValueError("time='continuous' trains an eps-network on the VP SDE, the continuous limit of the "
                             f"linear schedule: it needs schedule='linear' and prediction='eps', got schedule="
                             f"{self.schedule!r}, prediction={self.prediction!r}")
        if self.time == "continuous" and self.T <= VPSDE().beta_max:
            raise ValueError(f"time='continuous' samples on VPSDE().discretize(T), which needs T > "
                             f"{VPSDE().beta_max:g}, got T={self.T}")
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as error:
                raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}") from error
        if not isinstance(self.model, dict):
            raise ValueError(f"model must be a dict of network arguments, got {type(self.model).__name__}")
        if not self.model:
            self.model = dict(DIGITS_UNET if self.dataset == "digits" else TOY_MLP)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; valid keys are {sorted(known)}")
        return cls(**d)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left untouched."""


class EMA:
    """Exponential moving average of a model's weights: theta_ema <- d theta_ema + (1 - d) theta.

    The decay warms up as min(decay, (1 + n) / (10 + n)) so early averages are not dominated by the init.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = state["num_updates"]


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

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(x, time_from_step(t, self.T).to(x.dtype))


def build_model(config: TrainConfig) -> nn.Module:
    """The network for the config's dataset: a U-Net for digits, an MLP for 2-D toy data."""
    if config.dataset == "digits":
        return UNet(in_channels=1, **config.model)
    return MLPEps(dim=2, **config.model)


# ---------------------------------------------------------------------------------- checkpoints

@dataclass
class Checkpoint:
    """What checkpoint.pt holds. Its fields are the file's keys: `save` writes them and `load` reads them back,
    so the two cannot drift apart."""

    config: dict[str, Any]
    step: int
    model: dict[str, Tensor]
    ema: dict[str, Any]
    optimizer: dict[str, Any]
    lr_schedule: dict[str, Any]
    scaler: dict[str, Any] | None
    data_rng: Tensor
    noise_rng: Tensor
    torch_rng: Tensor

    def save(self, path: str | Path) -> None:
        atomic_save({f.name: getattr(self, f.name) for f in fields(self)}, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
        """Read a checkpoint written by `save`; a missing, truncated, corrupt or foreign file raises naming it."""
        state = load_torch_file(path, "checkpoint", map_location)
        keys = [f.name for f in fields(cls)]
        missing = [k for k in keys if not isinstance(state, dict) or k not in state]
        if missing:
            raise UnreadableFile(f"{path} is not a ddpm-scratch training checkpoint: it lacks {', '.join(missing)}")
        try:
            TrainConfig.from_dict(state["config"])
        except (TypeError, ValueError) as error:
            raise UnreadableFile(f"{path} holds an invalid training config: {error}") from error
        return cls(**{k: state[k] for k in keys})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """`Checkpoint.load`: the checked contents of a checkpoint file."""
    return Checkpoint.load(path, map_location)


def load_model(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, NoiseSchedule, TrainConfig]:
    """Rebuild the (EMA by default) network, its schedule and config from a checkpoint; eval mode.

    The model is an eps-model of the schedule's steps (`sampling.sample` runs on it): for a continuous-time run the
    network wrapped in `ContinuousTimeOnSteps` (its `.net` reads float times, for `sde.eps_model_score`).
    """
    state = load_checkpoint(path, map_location=device)
    config = TrainConfig.from_dict(state.config)
    model = build_model(config).to(device)
    model.load_state_dict(state.ema["model"] if ema else state.model)
    if config.time == "continuous":
        model = ContinuousTimeOnSteps(model, config.T)
    return model.eval(), build_schedule(config), config


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


def _lr_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from lr/warmup_steps to lr, then constant."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device (it uses a GradScaler); use 'bf16' or 'fp32' on the CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def training_loss(config: TrainConfig, schedule: NoiseSchedule, generator: torch.Generator | None = None
                  ) -> Callable[[nn.Module, Tensor], Tensor]:
    """loss(model, x0) of the config's clock: L_simple (Algorithm 1, lines 2-5) on the schedule, or in continuous
    time DSM on the VP SDE with lambda(t) = std(t)^2, i.e. mean ||eps - eps_theta(x_t, t)||^2 with t ~ U(t_min, 1)
    (`score.dsm_loss` through `sde.eps_model_score`). generator draws t and eps."""
    if config.time == "continuous":
        sde = build_sde(config)
        return lambda model, x0: dsm_loss(eps_model_score(model, sde), sde, x0, weighting="sigma2",
                                          t_min=config.t_min, generator=generator)
    return lambda model, x0: l_simple(model, schedule, x0, generator=generator, prediction=config.prediction)


def optimisation_step(model: nn.Module, optimizer: torch.optim.Optimizer,
                      loss_fn: Callable[[nn.Module, Tensor], Tensor], x0: Tensor, *,
                      max_grad_norm: float | None = None, scaler: torch.amp.GradScaler | None = None,
                      autocast_dtype: torch.dtype | None = None) -> Tensor:
    """One step of gradient descent on loss_fn(model, x0) (`training_loss`: Algorithm 1, lines 2-5, as in
    `ddpm.train_step`), with mixed precision and gradient clipping. Returns the loss.

    autocast_dtype: run the forward pass in bf16/fp16 (None: float32). scaler: scale the fp16 loss so its small
    gradients do not underflow, and unscale them before clipping.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x0.device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        loss = loss_fn(model, x0)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach()


@with_subnormals_flushed
def train(config: TrainConfig, out: str | Path | None = None, resume: bool = False, progress: bool = True,
          model: nn.Module | None = None) -> TrainResult:
    """Train a network with L_simple (Algorithm 1), or in continuous time with DSM, on the config's dataset.

    out: folder for config.json, loss.csv and checkpoint.pt (None: keep nothing on disk).
    resume: continue from out/checkpoint.pt — weights, EMA, optimiser, generators and step — so the
        result equals an uninterrupted run; config.steps may be raised to train longer.
    model: train this network instead of `build_model(config)` (its state must match on resume).
    """
    from tqdm.auto import tqdm

    device = select_device(config.device)
    autocast_dtype = _autocast_dtype(config.precision, device)
    out = Path(out) if out is not None else None
    torch.manual_seed(config.seed)  # initial weights and dropout use the global generator: seeded per run
    model = (model if model is not None else build_model(config)).to(device)
    schedule = build_schedule(config).to(device)  # once, so that no step copies the schedule to the device
    data = get_dataset(config.dataset, "train").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config.warmup_steps))
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    ema = EMA(model, config.ema_decay)
    data_rng = torch.Generator().manual_seed(config.seed + 1)  # Algorithm 1, line 2: which x0
    noise_rng = torch.Generator(device=device).manual_seed(config.seed + 2)  # lines 3-4: t and eps
    loss_fn = training_loss(config, schedule, noise_rng)
    start = 0

    if resume:
        if out is None:
            raise ValueError("resume needs an output folder holding a checkpoint")
        state = load_checkpoint(out / CHECKPOINT, map_location=device)
        saved = TrainConfig.from_dict(state.config)
        if asdict(saved) | {"steps": config.steps} != asdict(config):
            raise ValueError("resume: the config differs from the checkpoint's in more than `steps`; "
                             f"checkpoint config: {asdict(saved)}")
        model.load_state_dict(state.model)
        ema.load_state_dict(state.ema)
        optimizer.load_state_dict(state.optimizer)
        lr_schedule.load_state_dict(state.lr_schedule)
        if scaler is not None and state.scaler:
            scaler.load_state_dict(state.scaler)
        data_rng.set_state(state.data_rng.cpu())  # generator states are CPU byte tensors on every device
        try:
            noise_rng.set_state(state.noise_rng.cpu())
        except RuntimeError as error:  # a CPU generator's state does not fit a CUDA generator, and the reverse
            raise ValueError(f"resume: {out / CHECKPOINT} was written on another kind of device than {device}; an "
                             "exact resume needs the same one (set device to the run's)") from error
        torch.set_rng_state(state.torch_rng.cpu())
        start = state.step
        if start > config.steps:
            raise ValueError(f"the checkpoint is at step {start}, beyond steps={config.steps}")

    def checkpoint(step: int) -> None:
        if out is not None:
            Checkpoint(config=asdict(config), step=step, model=model.state_dict(), ema=ema.state_dict(),
                       optimizer=optimizer.state_dict(), lr_schedule=lr_schedule.state_dict(),
                       scaler=scaler.state_dict() if scaler is not None else None, data_rng=data_rng.get_state(),
                       noise_rng=noise_rng.get_state(), torch_rng=torch.get_rng_state()).save(out / CHECKPOINT)

    log = _LossLog(out / LOSS_LOG if out is not None else None, keep_until=start)
    if out is not None:
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    model.train()
    loss_value, t0, timed_steps = float("nan"), None, 0
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress, miniters=1,
               desc=f"training on {config.dataset} ({device.type})")  # miniters=1: no adaptive step count
    # between redraws (tqdm's default learns one from fast steps and then stays silent when steps slow down)
    for step in bar:
        x0 = data[torch.randint(0, data.shape[0], (config.batch_size,), generator=data_rng).to(device)]  # line 2
        loss = optimisation_step(model, optimizer, loss_fn, x0, max_grad_norm=config.max_grad_norm, scaler=scaler,
                                 autocast_dtype=autocast_dtype)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            last = f"{out / CHECKPOINT}" if out is not None and (out / CHECKPOINT).exists() else "none written yet"
            raise TrainingDiverged(
                f"the loss became {loss_value} at step {step + 1}; training stopped. The last good checkpoint "
                f"({last}) is kept. Lower --lr, keep gradient clipping on, or use precision 'fp32'.")
        lr_schedule.step()
        ema.update(model)
        done = step + 1
        if t0 is None:
            t0 = time.perf_counter()
        else:
            timed_steps += 1
        if done % config.log_every == 0 or done == config.steps:
            log.write(done, loss_value, optimizer.param_groups[0]["lr"])
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if done % config.checkpoint_every == 0 or done == config.steps:
            checkpoint(done)
    log.close()
    elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
    model.eval()
    return TrainResult(model=model, ema_model=ema.model, schedule=schedule, config=config, out=out,
                       steps_per_second=timed_steps / elapsed if elapsed > 0 else float("nan"),
                       final_loss=loss_value)


class _LossLog:
    """Appends (step, loss, lr) rows to a CSV; on resume, rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path | None, keep_until: int) -> None:
        self.file = None
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if keep_until > 0 and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(["step", "loss", "lr"])
        for r in rows:
            self.writer.writerow([r["step"], r["loss"], r["lr"]])

    def write(self, step: int, loss: float, lr: float) -> None:
        if self.file is not None:
            self.writer.writerow([step, f"{loss:.6g}", f"{lr:.6g}"])
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
