"""A toy CLIP for CLIP guidance (lecture 5): a noisy-data encoder f and a label encoder g, compared by a scaled
cosine similarity.

    s(x_t, t, c) = exp(log_scale) * <f(x_t, t) / |f|, g(c) / |g|>        f: NoisyEncoder, g: a label embedding

Trained with the contrastive loss (guidance.clip_loss), the similarity tends to the pointwise mutual information
log p_t(c | x_t) - log p(c) plus a function of x_t alone (the lecture's optimum of CLIP), so its gradient in x_t is
grad log p_t(c | x_t): CLIP guidance is classifier guidance with s in place of log p_t(y | x_t). The "text" is a
class label here; a real CLIP encodes free text the same way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int
from .classifier import NoisyEncoder

__all__ = ["ToyCLIP"]


class ToyCLIP(nn.Module):
    """f(x_t, t) and g(c) in a shared space of `embed_dim` dimensions; forward(x_t, t, c) -> (B,) similarities s.

    shape: one example's shape, (D,) or (C, H, W).  num_classes: the labels c in 0..num_classes-1.
    hidden, depth: the noisy-data encoder's (NoisyEncoder).  The scale starts at 1 / 0.07, as CLIP's.
    """

    def __init__(self, shape: tuple[int, ...], num_classes: int, embed_dim: int = 32, hidden: int = 64,
                 depth: int = 2) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.image_encoder = NoisyEncoder(shape, check_int("embed_dim", embed_dim), hidden, depth)
        self.label_encoder = nn.Embedding(num_classes, embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        """f(x_t, t) / |f|: (B, embed_dim)."""
        return F.normalize(self.image_encoder(x_t, t), dim=1)

    def embed_labels(self, c: Tensor) -> Tensor:
        """g(c) / |g|: (B, embed_dim) for c (B,) in 0..num_classes-1."""
        return F.normalize(self.label_encoder(c), dim=1)

    def similarities(self, x_t: Tensor, t: int | Tensor, c: Tensor) -> Tensor:
        """The (B, B) matrix s(x_i, c_j) of a batch against its own labels: the contrastive loss's logits."""
        return self.log_scale.exp() * self.embed(x_t, t) @ self.embed_labels(c).T

    def forward(self, x_t: Tensor, t: int | Tensor, c: Tensor) -> Tensor:
        return self.log_scale.exp() * (self.embed(x_t, t) * self.embed_labels(c)).sum(dim=1)
