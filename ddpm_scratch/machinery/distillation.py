"""Progressive distillation of a trained run (`ddpm-scratch distill`): the stages, student files, resuming by stage.

A stage (`distill_stage`, Salimans & Ho 2022, Algorithm 2, lines 2-10) copies the teacher network into a student and
trains it with the course's one loop (`loop.run_loop`) on the objective `distill.distillation_loss`: AdamW, lr
decayed linearly to 0, gradient clipping, an EMA of the weights (the student kept). `progressive_distillation` runs
the halvings (line 11). The teacher is given as its network and `prediction` (what it outputs): the student starts
as a copy of that network and regresses in its parameterisation, and the teacher's two DDIM steps use it adapted to
an eps-model (`forward.as_eps_model`).

`distill_run` reads a training checkpoint (its EMA weights are the first teacher), distils its deterministic DDIM
sampler from `from_steps` down to `to_steps` steps with `distill.progressive_distillation`, and writes one file per
stage, `student_<N>.pt`, the moment the stage ends (atomically): the student that samples with N DDIM steps. A run
that stops is resumed by stage: `resume=True` reads the students already written, checks that they were made with
the same teacher and settings, and goes on from the last one; stage s is seeded with seed + s either way, so a
resumed run writes the same students as an uninterrupted one.

A student is trained for its own N steps and spacing only; `load_student` gives back the network, the run's
schedule and those steps, and `ddpm-scratch sample --checkpoint student_<N>.pt` samples with them.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_choice, check_data, check_int, check_number
from ..distill import DISTILL_SPACINGS, WEIGHTINGS, check_steps, distillation_loss
from ..forward import PREDICTIONS, as_eps_model
from ..nets.protocol import EpsModel
from ..schedules import NoiseSchedule
from .data import get_dataset
from .files import UnreadableFile, atomic_save, load_torch_file
from .loop import Batch, LoopSettings, Update, run_loop
from .train import TrainConfig, build_schedule, flush_subnormals, load_network, network_on_steps, option

__all__ = ["StageResult", "distill_stage", "progressive_distillation", "DistillConfig", "StudentFile", "distill_run",
           "is_student_file", "load_student", "student_path", "weights_fingerprint"]


@dataclass
class StageResult:
    """One halving: the student network (its EMA weights, eval mode, outputs the teacher's `prediction`) samples
    with num_steps DDIM steps."""

    student: nn.Module
    num_steps: int
    teacher_steps: int
    final_loss: float
    seconds: float


def distill_stage(teacher: nn.Module, schedule: NoiseSchedule, data: Tensor, num_steps: int, *,
                  prediction: str = "eps", iterations: int = 1000, batch_size: int = 128, lr: float = 2e-4,
                  weight_decay: float = 0.0, ema_decay: float = 0.999, max_grad_norm: float | None = 1.0,
                  weighting: str = "snr_trunc", spacing: str = "uniform", seed: int = 0,
                  progress: bool = False) -> StageResult:
    """Distil a teacher sampling with num_steps DDIM steps into a student with num_steps // 2 (Algorithm 2).

    teacher: the teacher network, which outputs `prediction` ("eps", "x0" or "v") at the base schedule's training
    steps. The student starts as a copy of it (line 2) and trains for `iterations` AdamW steps at lr decayed linearly
    to 0 (the paper's schedule), gradient clipping at max_grad_norm and an EMA of its weights (the returned student).
    data: (n, ...) training examples on the device the teacher lives on. seed: the generators of the batches (seed)
    and of k and the noise (seed + 1).
    """
    check_data("data", data)
    check_steps(schedule, num_steps, spacing)
    check_int("iterations", iterations)
    check_choice("prediction", prediction, PREDICTIONS)
    check_choice("weighting", weighting, WEIGHTINGS)
    teacher = teacher.eval()  # its two steps run under no_grad (`distill.teacher_two_steps`)
    teacher_eps = as_eps_model(teacher, schedule, prediction=prediction)
    student = copy.deepcopy(teacher).train().requires_grad_(True)  # line 2: student <- teacher
    schedule = schedule.to(data.device)

    def objective(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return distillation_loss(model, teacher_eps, schedule, batch.x0, num_steps, prediction=prediction,
                                 weighting=weighting, spacing=spacing, generator=generator)  # lines 3-9

    settings = LoopSettings(steps=iterations, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                            lr_decay="linear", max_grad_norm=max_grad_norm, ema_decay=ema_decay,
                            log_every=iterations, checkpoint_every=iterations)
    t0 = time.perf_counter()
    result = run_loop(student, [Update("loss", objective)], data, settings,
                      data_rng=torch.Generator().manual_seed(seed),
                      noise_rng=torch.Generator(device=data.device).manual_seed(seed + 1), progress=progress,
                      desc=f"distilling {num_steps} -> {num_steps // 2} steps", leave=False)  # line 10
    return StageResult(student=result.ema_model.eval().requires_grad_(False), num_steps=num_steps // 2,
                       teacher_steps=num_steps, final_loss=result.final_losses["loss"],
                       seconds=time.perf_counter() - t0)


def progressive_distillation(teacher: nn.Module, schedule: NoiseSchedule, data: Tensor, num_steps: int,
                             min_steps: int = 4, *, callback: Callable[[StageResult], None] | None = None,
                             seed: int = 0, **stage_options: Any) -> list[StageResult]:
    """Algorithm 2's outer loop: distil num_steps -> num_steps / 2 -> ... -> min_steps; each student is the next
    stage's teacher (line 11). num_steps / min_steps must be a power of 2. callback(stage) runs after each stage
    (e.g. to measure the student); stage_options go to `distill_stage` (prediction, iterations, lr, weighting, ...);
    stage s is seeded with seed + s. Returns the stages in order."""
    check_int("min_steps", min_steps)
    check_int("num_steps", num_steps, low=2)
    ratio = num_steps // min_steps
    if num_steps % min_steps or ratio < 2 or ratio & (ratio - 1):
        raise ValueError(f"num_steps / min_steps must be a power of 2 (>= 2), got num_steps={num_steps}, "
                         f"min_steps={min_steps}")
    stages: list[StageResult] = []
    steps = num_steps
    while steps > min_steps:
        stage = distill_stage(teacher, schedule, data, steps, seed=seed + len(stages), **stage_options)
        stages.append(stage)
        if callback is not None:
            callback(stage)
        teacher, steps = stage.student, stage.num_steps
    return stages


@dataclass
class DistillConfig:
    """The settings of a distillation run: `distill_stage`'s options, and `ddpm-scratch distill`'s (built from these
    fields, as `train`'s are from TrainConfig's)."""

    from_steps: int = option(64, "the teacher's DDIM steps (the first stage distils them into half as many)")
    to_steps: int = option(4, "the last student's steps; from-steps / to-steps must be a power of 2")
    spacing: str = option("uniform", "how the N steps are picked (schedules.respaced): the spacings whose N / 2 steps "
                          "are every other one of their N", DISTILL_SPACINGS)
    iterations: int = option(1000, "AdamW steps per stage")
    batch_size: int = option(128, "examples per step")
    lr: float = option(2e-4, "learning rate of AdamW, decayed linearly to 0 over each stage")
    ema_decay: float = option(0.99, "decay of the EMA of the student's weights (the student kept)")
    weighting: str = option("snr_trunc", "loss weighting: snr_trunc = max(SNR, 1) (the paper's), snr+1 (MSE in v), "
                             "snr (MSE in eps)", WEIGHTINGS)
    seed: int = option(0, "random seed; stage s is seeded with seed + s")

    def __post_init__(self) -> None:
        check_int("from_steps", self.from_steps, low=2)
        check_int("to_steps", self.to_steps)
        ratio = self.from_steps // self.to_steps
        if self.from_steps % self.to_steps or ratio < 2 or ratio & (ratio - 1):
            raise ValueError(f"from_steps / to_steps must be a power of 2 (>= 2), got from_steps={self.from_steps}, "
                             f"to_steps={self.to_steps}")
        check_choice("spacing", self.spacing, DISTILL_SPACINGS)
        check_int("iterations", self.iterations)
        check_int("batch_size", self.batch_size)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("ema_decay", self.ema_decay, 0, 1, high_open=True)
        check_choice("weighting", self.weighting, WEIGHTINGS)
        check_int("seed", self.seed, low=0)

    def stage_options(self) -> dict[str, Any]:
        """What every stage shares (`distill_stage`'s keyword arguments)."""
        return dict(spacing=self.spacing, iterations=self.iterations, batch_size=self.batch_size, lr=self.lr,
                    ema_decay=self.ema_decay, weighting=self.weighting)


@dataclass
class StudentFile:
    """What student_<N>.pt holds; its fields are the file's keys (`save` writes them, `load` reads them back)."""

    kind: str  # always "ddpm-scratch student": tells a student file from a training checkpoint
    teacher_config: dict[str, Any]  # the TrainConfig of the run distilled (network, schedule, prediction)
    teacher_weights: str  # sha256 of the first teacher's weights: which checkpoint the students come from
    distill_config: dict[str, Any]  # the DistillConfig of the distillation run
    num_steps: int  # the DDIM steps this student samples with
    model: dict[str, Tensor]  # the student's (EMA) weights
    final_loss: float
    seconds: float

    KIND = "ddpm-scratch student"

    def save(self, path: str | Path) -> None:
        atomic_save({f.name: getattr(self, f.name) for f in fields(self)}, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> StudentFile:
        """Read a file written by `save`; a missing, truncated, corrupt or foreign file raises naming it."""
        state = load_torch_file(path, "student file", map_location)
        keys = [f.name for f in fields(cls)]
        if not isinstance(state, dict) or state.get("kind") != cls.KIND or any(k not in state for k in keys):
            raise UnreadableFile(f"{path} is not a ddpm-scratch student file (written by `ddpm-scratch distill`)")
        return cls(**{k: state[k] for k in keys})


def student_path(out: str | Path, num_steps: int) -> Path:
    return Path(out) / f"student_{num_steps}.pt"


def is_student_file(path: str | Path) -> bool:
    """Whether `path` holds a student file (False for a training checkpoint; raises for an unreadable file)."""
    state = load_torch_file(path, "checkpoint or student file")
    return isinstance(state, dict) and state.get("kind") == StudentFile.KIND


def _student_network(path: str | Path, device: str | torch.device) -> tuple[nn.Module, StudentFile]:
    """The student network of a file as it was trained (outputs the run's prediction), eval mode, with the file."""
    file = StudentFile.load(path, map_location=device)
    network = network_on_steps(TrainConfig.from_dict(file.teacher_config)).to(device)
    network.load_state_dict(file.model)
    return network.eval().requires_grad_(False), file


def load_student(path: str | Path, device: str | torch.device = "cpu"
                 ) -> tuple[EpsModel, NoiseSchedule, TrainConfig, StudentFile]:
    """The student as an eps-model (eval mode; an x0- or v-student adapted by `forward.as_eps_model`), the run's
    schedule and config, and the file's contents (num_steps, the distillation settings). Sample it with
    `sampling.sample(model, schedule, shape, sampler="ddim", num_steps=file.num_steps,
    spacing=file.distill_config["spacing"])`."""
    network, file = _student_network(path, device)
    config = TrainConfig.from_dict(file.teacher_config)
    schedule = build_schedule(config)
    return as_eps_model(network, schedule, prediction=config.prediction), schedule, config, file


def distill_run(checkpoint: str | Path, out: str | Path, config: DistillConfig, *, resume: bool = False,
                device: str | torch.device = "cpu", progress: bool = True) -> list[Path]:
    """Distil the run in `checkpoint` from config.from_steps to config.to_steps DDIM steps, writing
    out/student_<N>.pt after each stage. Returns the paths of every student of the run, fewest steps last.

    resume: go on from the students already in `out` (they must come from the same checkpoint's config and the
    same DistillConfig, to_steps aside); without it, a folder that already holds students is an error, so nothing
    is overwritten by mistake.
    """
    teacher, schedule, train_config = load_network(checkpoint, device=device)
    fingerprint = weights_fingerprint(teacher)
    data = get_dataset(train_config.dataset, "train").to(device)
    steps, halvings = config.from_steps, []  # the students' steps: from_steps / 2, from_steps / 4, ..., to_steps
    while steps > config.to_steps:
        steps //= 2
        halvings.append(steps)
    paths = [student_path(out, n) for n in halvings]
    if resume:
        done = _students_done(paths, fingerprint, train_config, config)
    else:
        _refuse_existing(out)
        done = []
    if done:
        teacher = _student_network(paths[len(done) - 1], device)[0]
    if len(done) == len(halvings):
        return paths

    def save(stage: StageResult) -> None:
        StudentFile(kind=StudentFile.KIND, teacher_config=asdict(train_config), teacher_weights=fingerprint,
                    distill_config=asdict(config),
                    num_steps=stage.num_steps, model=stage.student.state_dict(), final_loss=stage.final_loss,
                    seconds=stage.seconds).save(student_path(out, stage.num_steps))
        if progress:
            print(f"student with {stage.num_steps} steps: final loss {stage.final_loss:.4g}, {stage.seconds:.0f} s "
                  f"-> {student_path(out, stage.num_steps)}", flush=True)

    with flush_subnormals():  # subnormal floats slow CPU kernels ~10x
        progressive_distillation(teacher, schedule, data, halvings[len(done)] * 2, config.to_steps, callback=save,
                                 seed=config.seed + len(done), prediction=train_config.prediction, progress=progress,
                                 **config.stage_options())
    return paths


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over a model's state dict (names, dtypes, shapes and values, in order): equal weights, equal strings."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _refuse_existing(out: str | Path) -> None:
    existing = sorted(Path(out).glob("student_*.pt")) if Path(out).is_dir() else []
    if existing:
        raise ValueError(f"out: {out} already holds {', '.join(p.name for p in existing)}; pass --resume (resume=True) "
                         f"to go on from them, or choose another folder")


def _students_done(paths: list[Path], fingerprint: str, train_config: TrainConfig,
                   config: DistillConfig) -> list[Path]:
    """The leading `paths` that exist, after checking that each was distilled from this teacher with these
    settings (to_steps aside: a resumed run may go further than the first)."""
    done = []
    ours = {k: v for k, v in asdict(config).items() if k != "to_steps"}
    for path in paths:
        if not path.exists():
            break
        file = StudentFile.load(path)
        theirs = {k: v for k, v in file.distill_config.items() if k != "to_steps"}
        changed = sorted(k for k in ours if theirs.get(k) != ours[k])
        if file.teacher_weights != fingerprint or asdict(TrainConfig.from_dict(file.teacher_config)) != asdict(
                train_config):  # read through TrainConfig: a file written before a field existed gets its default
            changed.insert(0, "the teacher checkpoint")
        if changed:
            raise ValueError(f"resume: {path} was distilled with other settings ({', '.join(changed)} differ); "
                             f"resume with the same ones, or write to another folder")
        done.append(path)
    return done
