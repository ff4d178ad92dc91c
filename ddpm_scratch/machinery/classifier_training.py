"""Noise-aware classifiers for classifier guidance (lecture 5): `ddpm-scratch train-classifier --run RUN`.

Classifier guidance needs grad log p_t(y | x_t) at the steps its sampler visits, so the classifier p_phi(y | x_t, t)
(`nets.NoisyClassifier`) is trained on noisy data: the objective `guidance.classifier_loss` (cross-entropy at
t ~ U{1..T}, x_t ~ q(x_t | x0); Dhariwal & Nichol 2021), run by the course's one loop (`loop.run_loop`: AdamW,
warm-up, clipping, EMA, checkpoints, resume). It is trained on the dataset and the schedule of the diffusion run it
will guide, and its checkpoint records them (dataset, schedule, T, clock), so that `ddpm-scratch sample --classifier`
can refuse a classifier of another run. `load_classifier` gives back the EMA classifier; wrapped by
`guidance.classifier_log_prob_y` it is the log_prob_y that `guidance.ClassifierGuided` takes.

Files in `out/`: loss.csv and checkpoint.pt (a `loop.Checkpoint` whose config is `classifier_record`'s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..checks import check_int, check_number
from ..guidance import classifier_loss
from ..nets import NoisyClassifier
from .data import DATASETS, load_dataset
from .files import UnreadableFile
from .loop import CHECKPOINT, Batch, Checkpoint, LoopSettings, Update, run_loop
from .train import TrainConfig, build_schedule, flush_subnormals, option, select_device

__all__ = ["ClassifierConfig", "classifier_record", "train_classifier", "load_classifier", "check_classifier_fits",
           "classifier_path"]

RUN_KEYS = ("dataset", "schedule", "T", "time")  # what a classifier shares with the run it guides


@dataclass
class ClassifierConfig:
    """The settings of a classifier's training (`ddpm-scratch train-classifier`'s options are built from these)."""

    steps: int = option(2000, "training steps")
    batch_size: int = option(128, "examples per step")
    lr: float = option(1e-3, "peak learning rate of AdamW")
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up")
    ema_decay: float = option(0.999, "decay of the exponential moving average of the weights (the classifier kept)")
    hidden: int = option(32, "width of the classifier (channels of its first level for images; a multiple of 8)")
    depth: int = option(2, "residual blocks (vectors) or levels (images) of the classifier")
    seed: int = option(0, "random seed")
    log_every: int = option(25, "steps between rows of loss.csv")
    checkpoint_every: int = option(500, "steps between checkpoints")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "depth"):
            check_int(name, getattr(self, name))
        check_int("hidden", self.hidden, low=8)
        check_int("warmup_steps", self.warmup_steps, low=0)
        check_int("seed", self.seed, low=0)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("ema_decay", self.ema_decay, 0, 1, high_open=True)

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps,
                            max_grad_norm=1.0, ema_decay=self.ema_decay, log_every=self.log_every,
                            checkpoint_every=self.checkpoint_every)


def classifier_record(config: ClassifierConfig, run: TrainConfig) -> dict[str, Any]:
    """What a classifier's checkpoint keeps: its settings and the run's dataset, schedule, T and clock."""
    return {**asdict(config), **{key: getattr(run, key) for key in RUN_KEYS}}


def _build(record: dict[str, Any]) -> NoisyClassifier:
    dataset = DATASETS[record["dataset"]]
    return NoisyClassifier(dataset.shape, dataset.num_classes, hidden=record["hidden"], depth=record["depth"])


def train_classifier(run: TrainConfig, config: ClassifierConfig, out: str | Path | None = None, resume: bool = False,
                     progress: bool = True, device: str = "auto") -> NoisyClassifier:
    """Train a noise-aware classifier on the labels of `run`'s dataset, at the steps of its schedule
    (`build_schedule(run)`). out: folder for loss.csv and checkpoint.pt (None: nothing on disk). resume: continue
    from out/checkpoint.pt (config.steps may grow). Returns the EMA classifier, eval mode."""
    num_classes = DATASETS[run.dataset].num_classes
    if num_classes < 2:
        raise ValueError(f"a classifier needs a labelled dataset; {run.dataset} has no classes")
    device = select_device(device)
    record = classifier_record(config, run)
    torch.manual_seed(config.seed)
    classifier = _build(record).to(device)
    schedule = build_schedule(run).to(device)
    data, labels = load_dataset(run.dataset, "train")

    def objective(model: NoisyClassifier, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return classifier_loss(model, schedule, batch.x0, batch.y, generator=generator)

    with flush_subnormals():
        result = run_loop(classifier, [Update("loss", objective)], data.to(device), config.loop_settings(),
                          labels=labels.to(device), data_rng=torch.Generator().manual_seed(config.seed + 1),
                          noise_rng=torch.Generator(device=device).manual_seed(config.seed + 2), out=out,
                          record=record, resume=resume, progress=progress,
                          desc=f"training a noise-aware classifier on {run.dataset} ({device.type})")
    return result.ema_model.eval()


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[NoisyClassifier, dict[str, Any]]:
    """The EMA classifier of a checkpoint written by `train_classifier` (eval mode), and its record."""
    state = Checkpoint.load(path, map_location=device)
    record = state.config
    if not set(RUN_KEYS) <= set(record) or "hidden" not in record or state.ema is None:
        raise UnreadableFile(f"{path} is not a classifier's checkpoint (ddpm-scratch train-classifier writes them)")
    classifier = _build(record).to(device)
    classifier.load_state_dict(state.ema["model"])
    return classifier.eval().requires_grad_(False), record


def check_classifier_fits(record: dict[str, Any], run: TrainConfig) -> None:
    """Refuse a classifier trained for another dataset or schedule than the run it is asked to guide."""
    differ = [f"{key}: classifier {record[key]!r}, run {getattr(run, key)!r}" for key in RUN_KEYS
              if record[key] != getattr(run, key)]
    if differ:
        raise ValueError("the classifier was trained for another run's data or schedule (" + "; ".join(differ)
                         + "); train one for this run with `ddpm-scratch train-classifier --run RUN`")


def classifier_path(folder_or_file: str | Path) -> Path:
    """A classifier's checkpoint: the file itself, or checkpoint.pt inside a run folder."""
    path = Path(folder_or_file)
    return path / CHECKPOINT if path.is_dir() else path
