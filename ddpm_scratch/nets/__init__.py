"""eps-networks: U-Net for images, MLP for 2-D toy data, the time/label embeddings they share, and the noise-aware
classifier of classifier guidance (logits = classifier(x_t, t)) and the toy CLIP of CLIP guidance; for discrete-state
diffusion (lecture 6) the categorical U-Net and the token Transformer, which read states and return x0 logits; for
latent diffusion (lecture 7) the KL-regularised autoencoder whose latents a diffusion model learns.

Every network is called as eps_model(x_t, t) or eps_model(x_t, t, y): t is a (B,) LongTensor of steps 1..T
or a float tensor of continuous times in [0, 1] (mapped to the same range, see `embeddings`), and y a (B,)
LongTensor of labels where y == num_classes is the "no label" token.
"""

from __future__ import annotations

from torch import nn

from .autoencoder import Autoencoder
from .categorical import CategoricalUNet, TokenTransformer
from .classifier import NoisyClassifier, NoisyEncoder
from .clip import ToyCLIP
from .embeddings import TIME_SCALE, LabelEmbedding, RandomFourierFeatures, SinusoidalEmbedding, as_time, time_to_tau
from .mlp import MLPEps
from .protocol import EpsModel
from .unet import Attention, Downsample, ResBlock, UNet, Upsample

__all__ = [
    "EpsModel",
    "TIME_SCALE", "as_time", "time_to_tau", "SinusoidalEmbedding", "RandomFourierFeatures", "LabelEmbedding",
    "ResBlock", "Attention", "Downsample", "Upsample", "UNet", "MLPEps", "NoisyEncoder", "NoisyClassifier", "ToyCLIP",
    "CategoricalUNet", "TokenTransformer", "Autoencoder", "count_parameters",
]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of model (only those with requires_grad unless trainable_only=False)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
