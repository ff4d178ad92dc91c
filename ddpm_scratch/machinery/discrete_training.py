"""Discrete-state diffusion runs (lecture 6): `ddpm-scratch train-discrete` and `sample-discrete`.

A run trains an x0-predicting network with D3PM's hybrid loss (`discrete.hybrid_loss`: the variational bound's term
at t ~ U{1..T} plus lambda times the cross-entropy of the predicted x0) through the course's one loop
(`loop.run_loop`: AdamW, warm-up, clipping, EMA, atomic checkpoints, exact resume), on data kept as categories:

    digits   the 8x8 digits on their 17 grey levels, categories 0..16      `nets.CategoricalUNet`
    text     the toy grammar's sentences as characters (`text`), length 40    `nets.TokenTransformer`

with a kernel of `discrete.KINDS` on D3PM's schedule for it (`CategoricalDiffusion.default`). `load_discrete` gives
back the EMA network and the process; `discrete.sample` (ancestral) and, for the absorbing kernel,
`discrete.maskgit_sample` draw from it. `to_pictures` turns categories into images (the mask in red).

Files in `out/`: config.json, loss.csv, checkpoint.pt (a `loop.Checkpoint` whose config is the DiscreteConfig).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_number
from ..discrete import KINDS, CategoricalDiffusion, hybrid_loss, num_states
from ..nets import CategoricalUNet, TokenTransformer
from .data import DIGITS_LEVELS, load_digits
from .files import UnreadableFile
from .loop import CHECKPOINT, PRECISIONS, Batch, Checkpoint, LoopSettings, Update, run_loop
from .text import LENGTH, VOCAB, load_text
from .train import flush_subnormals, option, select_device

__all__ = ["DiscreteData", "DISCRETE_DATASETS", "DiscreteConfig", "DiscreteResult", "digits_as_categories",
           "to_pictures", "build_process", "build_discrete_network", "train_discrete", "load_discrete",
           "is_discrete_config"]


def digits_as_categories(split: str = "train") -> Tensor:
    """The digits as categories: (N, 1, 8, 8) long in 0..16, the grey level v of the pixel (v / 8 - 1 in [-1, 1])."""
    images, _ = load_digits(split)
    return ((images + 1) * (DIGITS_LEVELS - 1) / 2).round().long()


def to_pictures(x: Tensor, K: int, mask: int | None = None) -> Tensor:
    """Categories (B, C, H, W) long in 0..K-1 (and the mask) -> RGB images (B, 3, H, W) in [-1, 1]: category k as the
    grey 2k / (K - 1) - 1, the mask as red. C must be 1."""
    if x.dim() != 4 or x.shape[1] != 1 or x.dtype != torch.long:
        raise ValueError(f"x must be (B, 1, H, W) long categories, got {x.dtype} {tuple(x.shape)}")
    grey = (x.clamp(max=K - 1).float() * 2 / (K - 1) - 1).expand(-1, 3, -1, -1).clone()
    if mask is not None:
        red = torch.tensor([1.0, -1.0, -1.0]).reshape(1, 3, 1, 1)
        grey = torch.where(x == mask, red, grey)
    return grey


@dataclass(frozen=True)
class DiscreteData:
    """A dataset of categories: K of them, examples of `shape`, load(split) -> (N, *shape) long in 0..K-1, and the
    default network build(num_states, K, args) with its default arguments."""

    name: str
    description: str
    K: int
    shape: tuple[int, ...]
    load: Callable[[str], Tensor]
    build: Callable[..., nn.Module]
    network_args: dict[str, Any]


DISCRETE_DATASETS = {
    "digits": DiscreteData("digits", "scikit-learn's 8x8 digits as 17 grey-level categories", DIGITS_LEVELS, (1, 8, 8),
                           digits_as_categories, CategoricalUNet,
                           dict(embed_dim=8, base_channels=32, channel_mults=(1, 2), attention_resolutions=(4,))),
    "text": DiscreteData("text", f"sentences of a toy grammar, {LENGTH} characters of {len(VOCAB)}", len(VOCAB),
                         (LENGTH,), load_text, lambda n, K, **a: TokenTransformer(n, K, LENGTH, **a),
                         dict(dim=64, depth=4, heads=4)),
}


@dataclass
class DiscreteConfig:
    """Everything that defines a discrete run; saved in config.json and in every checkpoint (`ddpm-scratch
    train-discrete`'s options are built from these fields)."""

    dataset: str = option("digits", "; ".join(f"{d.name}: {d.description}" for d in DISCRETE_DATASETS.values()),
                          tuple(DISCRETE_DATASETS))
    kernel: str = option("absorbing", "the forward kernel: uniform (redraw uniformly), absorbing (mask), gaussian "
                         "(ordinal: near categories likelier)", KINDS)
    T: int = option(1000, "number of diffusion steps")
    lam: float = option(0.01, "weight lambda of the cross-entropy of the predicted x0 in the hybrid loss")
    steps: int = option(3000, "total training steps")
    batch_size: int = option(128, "examples per step")
    lr: float = option(1e-3, "peak learning rate of AdamW")
    warmup_steps: int = option(200, "steps of linear learning-rate warm-up")
    max_grad_norm: float | None = option(1.0, "clip the gradient norm to this ('none': no clipping)")
    ema_decay: float = option(0.999, "decay of the exponential moving average of the weights")
    model: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "network arguments as JSON, e.g. '{\"base_channels\": 16}' ({}: the dataset's default)"})
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    precision: str = option("fp32", "fp32, bf16 autocast, or fp16 autocast with a GradScaler (CUDA only)",
                            PRECISIONS)
    log_every: int = option(25, "steps between rows of loss.csv")
    checkpoint_every: int = option(500, "steps between checkpoints")

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.metadata.get("choices"):
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
        for name in ("T", "steps", "batch_size", "log_every", "checkpoint_every"):
            check_int(name, getattr(self, name))
        check_number("lam", self.lam, low=0)
        if not isinstance(self.model, dict):
            raise ValueError(f"model must be a dict of network arguments, got {type(self.model).__name__}")
        if not self.model:
            self.model = dict(DISCRETE_DATASETS[self.dataset].network_args)
        self.loop_settings()  # checks lr, warmup_steps, max_grad_norm, ema_decay

    def loop_settings(self) -> LoopSettings:
        return LoopSettings(steps=self.steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=self.warmup_steps,
                            max_grad_norm=self.max_grad_norm, ema_decay=self.ema_decay, precision=self.precision,
                            log_every=self.log_every, checkpoint_every=self.checkpoint_every)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiscreteConfig:
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise ValueError(f"unknown config keys {sorted(set(d) - known)}; valid keys are {sorted(known)}")
        return cls(**d)


def is_discrete_config(record: dict[str, Any]) -> bool:
    """Whether a checkpoint's config is a discrete run's (it names a kernel)."""
    return isinstance(record, dict) and "kernel" in record


@dataclass
class DiscreteResult:
    model: nn.Module
    ema_model: nn.Module
    process: CategoricalDiffusion
    config: DiscreteConfig
    out: Path | None
    steps_per_second: float
    final_loss: float


def build_process(config: DiscreteConfig) -> CategoricalDiffusion:
    """The run's forward process: its kernel on the dataset's K categories, D3PM's schedule for it, T steps."""
    return CategoricalDiffusion.default(config.kernel, DISCRETE_DATASETS[config.dataset].K, config.T)


def build_discrete_network(config: DiscreteConfig) -> nn.Module:
    """The dataset's network, reading the kernel's K' states and returning x0 logits over K categories."""
    data = DISCRETE_DATASETS[config.dataset]
    return data.build(num_states(config.kernel, data.K), data.K, **config.model)


def train_discrete(config: DiscreteConfig, out: str | Path | None = None, resume: bool = False,
                   progress: bool = True) -> DiscreteResult:
    """Train an x0-network with the hybrid loss on the config's dataset and kernel.

    out: folder for config.json, loss.csv and checkpoint.pt (None: nothing on disk).  resume: continue from
    out/checkpoint.pt exactly (config.steps may grow)."""
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    model = build_discrete_network(config).to(device)
    process = build_process(config).to(device)
    data = DISCRETE_DATASETS[config.dataset].load("train").to(device)

    def objective(model: nn.Module, batch: Batch, *, generator: torch.Generator | None = None) -> Tensor:
        return hybrid_loss(model, process, batch.x0, lam=config.lam, generator=generator)

    def write_config() -> None:
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    with flush_subnormals():
        result = run_loop(model, [Update("loss", objective)], data, config.loop_settings(),
                          data_rng=torch.Generator().manual_seed(config.seed + 1),
                          noise_rng=torch.Generator(device=device).manual_seed(config.seed + 2), out=out,
                          record=asdict(config), read_record=lambda saved: asdict(DiscreteConfig.from_dict(saved)),
                          resume=resume, on_start=write_config, progress=progress,
                          desc=f"training {config.kernel} D3PM on {config.dataset} ({device.type})")
    return DiscreteResult(model=result.model, ema_model=result.ema_model, process=process, config=config,
                          out=Path(out) if out is not None else None, steps_per_second=result.steps_per_second,
                          final_loss=result.final_losses["loss"])


def load_discrete(path: str | Path, ema: bool = True, device: str | torch.device = "cpu"
                  ) -> tuple[nn.Module, CategoricalDiffusion, DiscreteConfig]:
    """The (EMA by default) network of a discrete run's checkpoint (eval mode), its process (on `device`) and config.
    path: the checkpoint, or the run's folder."""
    path = Path(path)
    path = path / CHECKPOINT if path.is_dir() else path
    state = Checkpoint.load(path, map_location=device)
    if not is_discrete_config(state.config):
        raise UnreadableFile(f"{path} is not a discrete run's checkpoint (train one with `ddpm-scratch "
                             "train-discrete`; Gaussian runs sample with `ddpm-scratch sample`)")
    try:
        config = DiscreteConfig.from_dict(state.config)
    except (TypeError, ValueError) as error:
        raise UnreadableFile(f"{path} holds an invalid discrete config: {error}") from error
    network = build_discrete_network(config).to(device)
    network.load_state_dict(state.ema["model"] if ema and state.ema is not None else state.model)
    return network.eval(), build_process(config).to(device), config
