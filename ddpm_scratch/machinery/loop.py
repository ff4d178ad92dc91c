"""The one training loop: every model of the course is trained by `run_loop`, whatever its objective.

An objective is a callable

    objective(model, batch, *, generator) -> scalar loss          batch: a `Batch` (x0 and, for labelled data, y)

and one iteration of the loop draws a batch and takes one `optimisation_step` per `Update` (most runs have one;
a GAN has two, the discriminator's and the generator's, each on its own parameters), with what a real run needs
around it: AdamW with linear warm-up and a constant or linearly decaying learning rate, gradient clipping, mixed
precision (bf16 autocast, or fp16 with a GradScaler on CUDA), an exponential moving average (EMA) of the weights,
a tqdm bar, a CSV loss log, atomic checkpoints, `resume` continuing exactly where a run stopped, and a clear stop
on a NaN/inf loss that keeps the last good checkpoint.

The objectives of the course: L_simple and continuous-time DSM (`train.training_objective`), the distillation
stage (`distillation.distill_stage`), the DDGAN's two losses (`gan_training.train_ddgan`), the digits classifier's
cross-entropy (`metrics.train_digits_classifier`), the noise-aware classifier's for guidance
(`classifier_training.train_classifier`), a cascade's super-resolution stage (`cascade.super_resolution_loss`),
D3PM's hybrid loss on categories (`discrete_training.train_discrete`).

Randomness: the caller passes two generators, `data_rng` (which examples: Algorithm 1, line 2) and `noise_rng`
(the objective's t, eps and whatever else it draws), and seeds the model's initial weights itself. Batches are drawn
"independent"ly (each one's indices with replacement, as Algorithm 1's x0 ~ q(x0)) or in shuffled "epochs" (the
incomplete last batch dropped, `data.batches`).
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_number
from .data import batches
from .files import UnreadableFile, atomic_save, load_torch_file

__all__ = ["Batch", "Objective", "Update", "LoopSettings", "LoopResult", "TrainingDiverged", "EMA", "Checkpoint",
           "optimisation_step", "run_loop", "PRECISIONS", "BATCH_ORDERS", "LR_DECAYS"]

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.csv"
PRECISIONS = ("fp32", "bf16", "fp16")
BATCH_ORDERS = ("independent", "epochs")
LR_DECAYS = ("constant", "linear")


@dataclass(frozen=True)
class Batch:
    """One mini-batch: x0 (B, ...) and, for labelled data, y (B,) long."""

    x0: Tensor
    y: Tensor | None = None


Objective = Callable[..., Tensor]  # objective(model, batch: Batch, *, generator) -> scalar loss


@dataclass(frozen=True)
class Update:
    """One optimisation step of every iteration: the objective it descends and the parameters it moves (all of the
    model's by default; a GAN's discriminator step moves the discriminator's)."""

    name: str
    objective: Objective
    parameters: Callable[[nn.Module], Iterable[nn.Parameter]] = nn.Module.parameters


@dataclass(frozen=True)
class LoopSettings:
    """How the loop optimises: its steps, batches, AdamW and learning rate, clipping, EMA, precision and files.

    lr_decay: "constant" after the warm-up, or "linear" from lr at the first step down to 0 at the last (progressive
    distillation's). ema_decay: None keeps no EMA. batch_order: "independent" or "epochs" (module docstring).
    max_grad_norm: None does not clip.
    """

    steps: int
    batch_size: int
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_decay: str = "constant"
    max_grad_norm: float | None = None
    ema_decay: float | None = None
    precision: str = "fp32"
    batch_order: str = "independent"
    log_every: int = 25
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            check_int(name, getattr(self, name))
        check_int("warmup_steps", self.warmup_steps, low=0)
        check_number("lr", self.lr, low=0, low_open=True)
        for i, beta in enumerate(self.betas):
            check_number(f"betas[{i}]", beta, 0, 1, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0)
        check_choice("lr_decay", self.lr_decay, LR_DECAYS)
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, low=0, low_open=True)
        if self.ema_decay is not None:
            check_number("ema_decay", self.ema_decay, 0, 1, high_open=True)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("batch_order", self.batch_order, BATCH_ORDERS)

    def lr_factor(self, step: int) -> float:
        """The learning rate of 0-based step `step` over lr: linear warm-up from lr / warmup_steps, then constant or
        decaying linearly to 0."""
        warmup = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps > 0 else 1.0
        return warmup * (1 - step / self.steps if self.lr_decay == "linear" else 1.0)


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
class Checkpoint:
    """What checkpoint.pt holds. Its fields are the file's keys: `save` writes them and `load` reads them back,
    so the two cannot drift apart. config: the run's record (a TrainConfig as a dict for `ddpm-scratch train`);
    optimizers, lr_schedules: one state per `Update`, by name; data_rng_start: the data generator's state before the
    first batch (an "epochs" run replays its permutations from it)."""

    config: dict[str, Any]
    step: int
    model: dict[str, Tensor]
    ema: dict[str, Any] | None
    optimizers: dict[str, Any]
    lr_schedules: dict[str, Any]
    scaler: dict[str, Any] | None
    data_rng: Tensor
    data_rng_start: Tensor
    noise_rng: Tensor
    torch_rng: Tensor

    def save(self, path: str | Path) -> None:
        atomic_save({f.name: getattr(self, f.name) for f in fields(self)}, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
        """Read a checkpoint written by `save` (or by the package before the one loop: one optimizer, read as the
        update "loss"); a missing, truncated, corrupt or foreign file raises naming it."""
        state = load_torch_file(path, "checkpoint", map_location)
        if isinstance(state, dict) and "optimizer" in state and "optimizers" not in state:
            state = {**state, "optimizers": {"loss": state["optimizer"]},
                     "lr_schedules": {"loss": state["lr_schedule"]}, "data_rng_start": state["data_rng"]}
        keys = [f.name for f in fields(cls)]
        missing = [k for k in keys if not isinstance(state, dict) or k not in state]
        if missing:
            raise UnreadableFile(f"{path} is not a ddpm-scratch training checkpoint: it lacks {', '.join(missing)}")
        return cls(**{k: state[k] for k in keys})


@dataclass
class LoopResult:
    """model: the trained weights; ema_model: their EMA (the model itself when the run keeps none); history: {update
    name: losses}, one per logged step; final_losses: the last step's, by update; steps_per_second: over this call's
    steps after the first (which includes warm-up costs); step: the steps done in all."""

    model: nn.Module
    ema_model: nn.Module
    history: dict[str, list[float]] = field(default_factory=dict)
    final_losses: dict[str, float] = field(default_factory=dict)
    steps_per_second: float = float("nan")
    step: int = 0


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device (it uses a GradScaler); use 'bf16' or 'fp32' on the CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def optimisation_step(model: nn.Module, optimizer: torch.optim.Optimizer, objective: Objective, batch: Batch, *,
                      generator: torch.Generator | None = None, max_grad_norm: float | None = None,
                      scaler: torch.amp.GradScaler | None = None, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """One step of gradient descent on objective(model, batch, generator=generator) (for L_simple: Algorithm 1,
    lines 2-5), with mixed precision and gradient clipping of the optimizer's parameters. Returns the loss, detached.

    autocast_dtype: run the forward pass in bf16/fp16 (None: float32). scaler: scale the fp16 loss so its small
    gradients do not underflow, and unscale them before clipping.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=batch.x0.device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        loss = objective(model, batch, generator=generator)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss.detach()


def _index_stream(n: int, settings: LoopSettings, data_rng: torch.Generator, start: int) -> Iterator[Tensor]:
    """The (batch_size,) indices of every step from `start` on (CPU long tensors)."""
    if settings.batch_order == "epochs":
        yield from batches(torch.arange(n), settings.batch_size, data_rng, start=start)
    else:
        while True:
            yield torch.randint(0, n, (settings.batch_size,), generator=data_rng)  # Algorithm 1, line 2


def run_loop(model: nn.Module, updates: Sequence[Update], data: Tensor, settings: LoopSettings, *,
             labels: Tensor | None = None, data_rng: torch.Generator, noise_rng: torch.Generator,
             out: str | Path | None = None, record: dict[str, Any] | None = None,
             read_record: Callable[[dict[str, Any]], dict[str, Any]] | None = None, resume: bool = False,
             on_start: Callable[[], None] | None = None, progress: bool = True, desc: str = "training",
             leave: bool = True) -> LoopResult:
    """Train `model` (on data's device) for settings.steps iterations of `updates` on batches of data (N, ...) and,
    when given, labels (N,). Returns a `LoopResult`; the model is left in eval mode.

    out: folder for loss.csv and checkpoint.pt (None: keep nothing on disk).  record: what checkpoint.pt keeps
    as the run's config (a resumed run must give the same, `steps` aside); read_record(saved) checks and completes
    the record read back before the comparison (a TrainConfig's fields added since the file was written get their
    defaults; ValueError/TypeError for an invalid one).  on_start(): called once the run is set up and a resume
    checked, before the first step (`train` writes config.json then, so a refused resume leaves the folder as it
    was).  progress, desc, leave: tqdm's bar, its label, and whether it stays on screen when done.  resume: continue
    from out/checkpoint.pt (weights, EMA, optimizers, generators and step), so the result equals an uninterrupted
    run; settings.steps may be raised to train longer.
    """
    from tqdm.auto import tqdm

    if not updates or len({u.name for u in updates}) != len(updates):
        raise ValueError(f"updates must be a non-empty sequence with distinct names, got {[u.name for u in updates]}")
    if labels is not None and (labels.shape != data.shape[:1] or labels.is_floating_point()
                               or labels.device != data.device):
        raise ValueError(f"labels must be an integer tensor of shape (N,) = ({data.shape[0]},) on data's device "
                         f"{data.device}, one per example of data, got {labels.dtype} {tuple(labels.shape)} on "
                         f"{labels.device}")
    device = data.device
    autocast_dtype = _autocast_dtype(settings.precision, device)
    out = Path(out) if out is not None else None
    optimizers = {u.name: torch.optim.AdamW(u.parameters(model), lr=settings.lr, betas=settings.betas,
                                            weight_decay=settings.weight_decay) for u in updates}
    lr_schedules = {name: torch.optim.lr_scheduler.LambdaLR(opt, settings.lr_factor)
                    for name, opt in optimizers.items()}
    scaler = torch.amp.GradScaler("cuda") if settings.precision == "fp16" else None
    ema = EMA(model, settings.ema_decay) if settings.ema_decay is not None else None
    data_rng_start, start, record = data_rng.get_state(), 0, record or {}
    if resume:
        start, data_rng_start = _resume(out, record, read_record, settings, model, ema, optimizers, lr_schedules,
                                        scaler, data_rng, noise_rng)

    def checkpoint(step: int) -> None:
        if out is not None:
            Checkpoint(config=record, step=step, model=model.state_dict(), ema=ema.state_dict() if ema else None,
                       optimizers={k: o.state_dict() for k, o in optimizers.items()},
                       lr_schedules={k: s.state_dict() for k, s in lr_schedules.items()},
                       scaler=scaler.state_dict() if scaler is not None else None, data_rng=data_rng.get_state(),
                       data_rng_start=data_rng_start, noise_rng=noise_rng.get_state(),
                       torch_rng=torch.get_rng_state()).save(out / CHECKPOINT)

    if on_start is not None:
        on_start()
    log = _LossLog(out / LOSS_LOG if out is not None else None, [u.name for u in updates], keep_until=start)
    indices = _index_stream(data.shape[0], settings, data_rng, start)
    history: dict[str, list[float]] = {u.name: [] for u in updates}
    losses = {u.name: float("nan") for u in updates}  # a resumed run with no step left reports NaN
    model.train()
    t0, timed_steps = None, 0
    bar = tqdm(range(start, settings.steps), initial=start, total=settings.steps, disable=not progress, miniters=1,
               desc=desc, leave=leave)  # miniters=1: no adaptive step count between redraws (tqdm's default
    # learns one from fast steps and then stays silent when steps slow down)
    for step in bar:
        index = next(indices).to(device)
        batch = Batch(data[index], None if labels is None else labels[index])
        for u in updates:
            loss = optimisation_step(model, optimizers[u.name], u.objective, batch, generator=noise_rng,
                                     max_grad_norm=settings.max_grad_norm, scaler=scaler,
                                     autocast_dtype=autocast_dtype)
            losses[u.name] = loss.item()
        if not all(math.isfinite(v) for v in losses.values()):
            last = f"{out / CHECKPOINT}" if out is not None and (out / CHECKPOINT).exists() else "none written yet"
            raise TrainingDiverged(
                f"the loss became {losses} at step {step + 1}; training stopped. The last good checkpoint ({last}) "
                "is kept. Lower the learning rate, keep gradient clipping on, or use precision 'fp32'.")
        for schedule in lr_schedules.values():
            schedule.step()
        if ema is not None:
            ema.update(model)
        done = step + 1
        if t0 is None:
            t0 = time.perf_counter()
        else:
            timed_steps += 1
        if done % settings.log_every == 0 or done == settings.steps:
            lr = optimizers[updates[0].name].param_groups[0]["lr"]
            log.write(done, [losses[u.name] for u in updates], lr)
            for name, value in losses.items():
                history[name].append(value)
            bar.set_postfix({name: f"{value:.4f}" for name, value in losses.items()})
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            checkpoint(done)
    log.close()
    elapsed = time.perf_counter() - t0 if t0 is not None else 0.0
    model.eval()
    return LoopResult(model=model, ema_model=ema.model if ema is not None else model, history=history,
                      final_losses=losses, steps_per_second=timed_steps / elapsed if elapsed > 0 else float("nan"),
                      step=settings.steps)


def _resume(out: Path | None, record: dict[str, Any], read_record: Callable[[dict[str, Any]], dict[str, Any]] | None,
            settings: LoopSettings, model: nn.Module, ema: EMA | None,
            optimizers: dict[str, torch.optim.Optimizer], lr_schedules: dict[str, Any],
            scaler: torch.amp.GradScaler | None, data_rng: torch.Generator,
            noise_rng: torch.Generator) -> tuple[int, Tensor]:
    """Load out/checkpoint.pt into the run's state; returns its step and the data generator's state at the start."""
    if out is None:
        raise ValueError("resume needs an output folder holding a checkpoint")
    state = Checkpoint.load(out / CHECKPOINT, map_location=next(model.parameters()).device)
    saved = state.config
    if read_record is not None:
        try:
            saved = read_record(saved)
        except (TypeError, ValueError) as error:
            raise UnreadableFile(f"{out / CHECKPOINT} holds an invalid training config: {error}") from error
    if {**saved, "steps": None} != {**record, "steps": None}:
        raise ValueError(f"resume: the config differs from the checkpoint's in more than `steps`; checkpoint config: "
                         f"{saved}")
    model.load_state_dict(state.model)
    if ema is not None and state.ema is not None:
        ema.load_state_dict(state.ema)
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state.optimizers[name])
        lr_schedules[name].load_state_dict(state.lr_schedules[name])
        for group, base_lr in zip(optimizer.param_groups, lr_schedules[name].base_lrs, strict=True):
            group["lr"] = base_lr * settings.lr_factor(state.step)  # steps may have grown: a decay is stretched
    if scaler is not None and state.scaler:
        scaler.load_state_dict(state.scaler)
    # generator states are CPU byte tensors on every device
    data_rng.set_state((state.data_rng if settings.batch_order == "independent" else state.data_rng_start).cpu())
    try:
        noise_rng.set_state(state.noise_rng.cpu())
    except RuntimeError as error:  # a CPU generator's state does not fit a CUDA generator, and the reverse
        raise ValueError(f"resume: {out / CHECKPOINT} was written on another kind of device than {noise_rng.device}; "
                         "an exact resume needs the same one (set device to the run's)") from error
    torch.set_rng_state(state.torch_rng.cpu())
    if state.step > settings.steps:
        raise ValueError(f"the checkpoint is at step {state.step}, beyond steps={settings.steps}")
    return state.step, state.data_rng_start.cpu()


class _LossLog:
    """Appends (step, one loss per update, lr) rows to a CSV; on resume, the rows after the checkpoint are dropped."""

    def __init__(self, path: Path | None, names: list[str], keep_until: int) -> None:
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
        header = ["step", *names, "lr"]
        self.writer.writerow(header)
        for r in rows:
            self.writer.writerow([r.get(k, "") for k in header])

    def write(self, step: int, losses: list[float], lr: float) -> None:
        if self.file is not None:
            self.writer.writerow([step, *(f"{v:.6g}" for v in losses), f"{lr:.6g}"])
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
