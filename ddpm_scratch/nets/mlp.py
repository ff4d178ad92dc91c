"""MLP eps-network for low-dimensional toy data (2-D mixtures, spirals): eps_theta(x_t, t[, y]) on (B, D).

    h_0 = W_in x_t
    h_k = h_{k-1} + W_k2 SiLU(W_k1 SiLU(h_{k-1} + c))     k = 1..depth  (residual blocks)
    eps = W_out SiLU(h_depth)                             W_out starts at zero: the untrained net predicts 0

with c = MLP(time embedding of t) (+ label embedding of y) added at the input of every block.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_choice, check_int
from .embeddings import LabelEmbedding, as_time, make_time_embedding

__all__ = ["MLPEps"]


class MLPEps(nn.Module):
    """eps_theta(x_t, t, y=None): (B, dim) -> (B, dim).

    t: (B,) LongTensor steps 1..T or float time in [0, 1] (see `embeddings`), or a scalar for the whole batch.
    y: (B,) labels in 0..num_classes with num_classes = "no label"; only with num_classes set, None = null token.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, time_embedding: str = "sinusoidal",
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        check_int("hidden", hidden, low=2)
        check_int("depth", depth)
        check_choice("time_embedding", time_embedding, ("sinusoidal", "fourier"))
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes)
        emb_dim = 2 * ((hidden + 1) // 2)
        self.time_embed = nn.Sequential(make_time_embedding(time_embedding, emb_dim), nn.Linear(emb_dim, hidden),
                                        nn.SiLU(), nn.Linear(hidden, hidden))
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, hidden)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(depth)
        )
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: Tensor, t: int | float | Tensor, y: Tensor | None = None) -> Tensor:
        if not isinstance(x_t, Tensor) or not x_t.is_floating_point():
            raise TypeError(f"x_t must be a float tensor, got {getattr(x_t, 'dtype', type(x_t).__name__)}")
        if x_t.dim() != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"x_t must have shape (B, dim={self.dim}), got {tuple(x_t.shape)}")
        c = self.time_embed(as_time(t, batch=x_t.shape[0], device=x_t.device))
        if self.label_embed is not None:
            c = c + self.label_embed(y, x_t.shape[0])
        elif y is not None:
            raise ValueError("y was given but the network was built with num_classes=None (unconditional)")
        h = self.inp(x_t)
        for block in self.blocks:
            h = h + block(h + c)
        return self.out(F.silu(h))
