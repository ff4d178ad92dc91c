"""A noise-aware classifier p_phi(y | x_t, t) for classifier guidance (lecture 5): logits (B, num_classes).

Guidance needs grad_x log p_t(y | x_t) at every noise level of the sampler, so the classifier reads the noisy x_t
and its step t, like an eps-network (a classifier of clean data is meaningless on x_t at large t):

    vectors (B, D):        h = W_in x_t;  h += W_k2 SiLU(W_k1 SiLU(h + c)), k = 1..depth;  logits = W_out SiLU(h)
    images (B, C, H, W):   conv3x3, then per level a ResBlock (c injected, as in the U-Net) and a 2x average pool;
                           the global average of the last level -> SiLU -> linear -> logits
with c = MLP(time embedding of t). guidance.classifier_log_prob_y turns it into log p_t(y | x_t), the callable that
guidance.ClassifierGuided takes; guidance.classifier_loss is its training objective.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int, check_int_tuple
from .embeddings import as_time, make_time_embedding
from .unet import ResBlock

__all__ = ["NoisyEncoder", "NoisyClassifier"]


class NoisyEncoder(nn.Module):
    """features = encoder(x_t, t): (B, *shape) -> (B, outputs), a network of the noisy data and its step.

    shape: one example's shape, (D,) for vectors or (C, H, W) for images.  t: (B,) LongTensor steps 1..T (or float
    times in [0, 1], or a scalar for the whole batch, as `embeddings.as_time` reads it).
    hidden: width (channels of the first image level).  depth: residual blocks (vectors) or levels (images).
    """

    def __init__(self, shape: tuple[int, ...], outputs: int, hidden: int = 64, depth: int = 2,
                 time_embedding: str = "sinusoidal") -> None:
        super().__init__()
        self.shape = check_int_tuple("shape", tuple(shape))
        if len(self.shape) not in (1, 3):
            raise ValueError(f"shape must be (D,) for vectors or (C, H, W) for images, got {self.shape}")
        self.outputs = check_int("outputs", outputs)
        check_int("hidden", hidden, low=8)
        check_int("depth", depth)
        emb_dim = 2 * ((hidden + 1) // 2)
        self.time_embed = nn.Sequential(make_time_embedding(time_embedding, emb_dim), nn.Linear(emb_dim, hidden),
                                        nn.SiLU(), nn.Linear(hidden, hidden))
        if len(self.shape) == 1:
            self.inp = nn.Linear(self.shape[0], hidden)
            self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                                      nn.Linear(hidden, hidden)) for _ in range(depth))
            width = hidden
        else:
            if hidden % 8:
                raise ValueError(f"hidden must be a multiple of 8 for images (GroupNorm's 8 groups), got {hidden}")
            self.inp = nn.Conv2d(self.shape[0], hidden, 3, padding=1)
            widths = [hidden * 2**k for k in range(depth)]
            self.blocks = nn.ModuleList(ResBlock(w_in, w_out, hidden, "add", 0.0, 8)
                                        for w_in, w_out in zip([hidden, *widths[:-1]], widths, strict=True))
            width = widths[-1]
        self.out = nn.Linear(width, self.outputs)

    def forward(self, x_t: Tensor, t: int | float | Tensor) -> Tensor:
        if not isinstance(x_t, Tensor) or not x_t.is_floating_point():
            raise TypeError(f"x_t must be a float tensor, got {getattr(x_t, 'dtype', type(x_t).__name__)}")
        if tuple(x_t.shape[1:]) != self.shape:
            raise ValueError(f"x_t must have shape (B, {', '.join(map(str, self.shape))}), got {tuple(x_t.shape)}")
        c = self.time_embed(as_time(t, batch=x_t.shape[0], device=x_t.device))
        h = self.inp(x_t)
        if len(self.shape) == 1:
            for block in self.blocks:
                h = h + block(h + c)
        else:
            for block in self.blocks:
                h = F.avg_pool2d(block(h, c), 2) if min(h.shape[-2:]) >= 2 else block(h, c)
            h = h.mean(dim=(-2, -1))
        return self.out(F.silu(h))


class NoisyClassifier(NoisyEncoder):
    """logits = classifier(x_t, t): (B, *shape) -> (B, num_classes), p_phi(y | x_t, t) = softmax(logits)[y].
    The arguments are NoisyEncoder's, with num_classes (>= 2) outputs."""

    def __init__(self, shape: tuple[int, ...], num_classes: int, hidden: int = 64, depth: int = 2,
                 time_embedding: str = "sinusoidal") -> None:
        super().__init__(shape, check_int("num_classes", num_classes, low=2), hidden, depth, time_embedding)
        self.num_classes = num_classes
