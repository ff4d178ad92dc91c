"""Networks for discrete-state diffusion (lecture 6): categories in, logits of x0 out.

A D3PM network reads x_t, a LongTensor of states 0..K'-1 (the absorbing kernel's mask is state K), and the step t,
and returns logits of p~(x0 | x_t) over the K data categories, categories in a last axis:

    CategoricalUNet    images (B, C, H, W) -> (B, C, H, W, K): each state embedded as a vector, the course's U-Net
                       on the embeddings, K logits per pixel and channel out (digits: 17 grey levels)
    TokenTransformer   sequences (B, L) -> (B, L, K): token + position embeddings, the step added to every token,
                       a bidirectional Transformer encoder (every token sees all others), K logits per token

Both start with their output layer at zero (uniform p~ at the first step), as the eps-networks do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..checks import check_int
from .embeddings import SinusoidalEmbedding, as_time
from .unet import UNet

__all__ = ["CategoricalUNet", "TokenTransformer"]


def _check_states(x_t: Tensor, num_states: int, dims: int) -> None:
    if not isinstance(x_t, Tensor) or x_t.dtype != torch.long or x_t.dim() != dims:
        raise TypeError(f"x_t must be a LongTensor of states with {dims} dimensions, got "
                        f"{getattr(x_t, 'dtype', type(x_t).__name__)} {tuple(getattr(x_t, 'shape', ()))}")
    if x_t.device.type == "cpu" and x_t.numel() and (x_t.min() < 0 or x_t.max() >= num_states):
        raise ValueError(f"x_t must hold states in 0..{num_states - 1}, got {x_t.min().item()}..{x_t.max().item()}")


class CategoricalUNet(nn.Module):
    """logits(x_t, t): (B, C, H, W) long states -> (B, C, H, W, K) logits of x0.

    num_states: K' (the states x_t takes), K: the data categories, embed_dim: the length of each state's vector.
    unet_args: the U-Net's (base_channels, channel_mults, image_size, ...), whose in/out channels are set here.
    """

    def __init__(self, num_states: int, K: int, channels: int = 1, embed_dim: int = 8, **unet_args: Any) -> None:
        super().__init__()
        self.num_states, self.K = check_int("num_states", num_states, low=2), check_int("K", K, low=2)
        self.channels, self.embed_dim = check_int("channels", channels), check_int("embed_dim", embed_dim)
        self.embed = nn.Embedding(num_states, embed_dim)
        self.unet = UNet(in_channels=channels * embed_dim, out_channels=channels * K, **unet_args)

    def forward(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        _check_states(x_t, self.num_states, 4)
        B, C, H, W = x_t.shape
        if C != self.channels:
            raise ValueError(f"x_t must have {self.channels} channels, got shape {tuple(x_t.shape)}")
        h = self.embed(x_t).permute(0, 1, 4, 2, 3).reshape(B, C * self.embed_dim, H, W)  # (B, C E, H, W)
        logits = self.unet(h, t).reshape(B, C, self.K, H, W)
        return logits.permute(0, 1, 3, 4, 2)  # categories last


class TokenTransformer(nn.Module):
    """logits(x_t, t): (B, L) long states -> (B, L, K) logits of x0, L <= length.

    A pre-norm Transformer encoder (torch's nn.TransformerEncoder) of `depth` layers, width `dim`, `heads` heads;
    the step t enters through a sinusoidal embedding and an MLP, added to every token's embedding.
    """

    def __init__(self, num_states: int, K: int, length: int, dim: int = 128, depth: int = 4, heads: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.num_states, self.K = check_int("num_states", num_states, low=2), check_int("K", K, low=2)
        self.length, self.dim = check_int("length", length), check_int("dim", dim, low=2)
        if dim % check_int("heads", heads) or dim % 2:
            raise ValueError(f"dim must be even and divisible by heads, got dim={dim}, heads={heads}")
        self.tokens = nn.Embedding(num_states, dim)
        self.positions = nn.Parameter(torch.randn(length, dim) * 0.02)
        self.time = nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, check_int("depth", depth), enable_nested_tensor=False)
        self.norm, self.out = nn.LayerNorm(dim), nn.Linear(dim, K)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: Tensor, t: int | Tensor) -> Tensor:
        _check_states(x_t, self.num_states, 2)
        if x_t.shape[1] > self.length:
            raise ValueError(f"x_t must have at most length={self.length} tokens, got {x_t.shape[1]}")
        time = self.time(as_time(t, batch=x_t.shape[0], device=x_t.device))  # (B, dim)
        h = self.tokens(x_t) + self.positions[: x_t.shape[1]] + time[:, None, :]
        return self.out(self.norm(self.encoder(h)))
