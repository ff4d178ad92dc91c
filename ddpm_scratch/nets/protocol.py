"""What the samplers, solvers and losses call: the eps-model and the score function.

    eps_model(x_t, t) -> eps_hat          x_t: (B, ...) float, t: (B,) LongTensor of training steps 1..T
    eps_model(x_t, t, y) -> eps_hat       conditional networks; y: (B,) labels, y == num_classes is "no label"
    score_fn(x, t) -> grad_x log p_t(x)   x: (B, ...), t: (B,) float times in [0, 1] (lecture 3's continuous time)

Continuous-time networks take a float t in (0, 1] instead. "eps" names the calling convention: a network may be
trained to output x0 or the velocity v instead, and `forward.as_eps_model` adapts it once, where it is built or
loaded; a conditional network becomes an eps-model by binding its label the same way. Any callable fits: a trained
network, or an exact formula such as the Gaussian's E[eps | x_t].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = ["EpsModel", "ScoreFn", "OnDevice", "LabelBound", "ImageConditioned"]

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # score_fn(x (B, ...), t (B,) float) -> grad_x log p_t(x), (B, ...)


class EpsModel(Protocol):
    def __call__(self, x_t: Tensor, t: Tensor, /) -> Tensor: ...


class OnDevice:
    """What a wrapper binds (labels, an image, a schedule: anything with .to) copied to each device, and dtype, it
    is asked for once, not at every step: on(device) or on(device, dtype)."""

    def __init__(self, value: Any) -> None:
        self.value, self._copies = value, {}

    def on(self, device: torch.device, dtype: torch.dtype | None = None) -> Any:
        key = (device, dtype)
        if key not in self._copies:
            self._copies[key] = self.value.to(device) if dtype is None else self.value.to(device, dtype)
        return self._copies[key]


class LabelBound(nn.Module):
    """A conditional network with its label bound, as an eps-model: forward(x_t, t) = network(x_t, t, y).

    y: an int (every row the same class; num_classes is the "no label" token) or a (B,) LongTensor, one per row of
    the batches it will be called with. The samplers call it like any eps-model, so conditioning needs no sampler
    change; unit 5's guidance wrappers combine a conditional and an unconditional call the same way.
    """

    def __init__(self, network: Callable[[Tensor, Tensor, Tensor], Tensor], y: int | Tensor) -> None:
        super().__init__()
        if isinstance(y, bool) or not isinstance(y, (int, Tensor)):
            raise TypeError(f"y must be an int or a (B,) LongTensor of labels, got {type(y).__name__}")
        if isinstance(y, Tensor) and (y.dim() != 1 or y.is_floating_point()):
            raise ValueError(f"y must be an int or a (B,) LongTensor of labels, got {y.dtype} {tuple(y.shape)}")
        self.network, self.y = network, y
        self._y = OnDevice(y) if isinstance(y, Tensor) else None

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        if self._y is not None:
            if self.y.shape[0] != x_t.shape[0]:  # a shape: free to check
                raise ValueError(f"the bound labels y have {self.y.shape[0]} rows but x_t has {x_t.shape[0]}")
            return self.network(x_t, t, self._y.on(x_t.device))
        return self.network(x_t, t, torch.full((x_t.shape[0],), self.y, dtype=torch.long, device=x_t.device))


class ImageConditioned(nn.Module):
    """A network conditioned on an image by channel concatenation, with the image bound, as an eps-model:
    forward(x_t, t) = network(cat([x_t, image], dim=1), t, *extra) (SR3's and the cascades' conditioning on a
    low-resolution input, upsampled to x_t's size; Palette's on a source image).

    image: (B, C', H, W), the rows of the batches it will be called with; x_t: (B, C, H, W). The network takes
    C + C' input channels and returns C (`UNet(in_channels=C + C', out_channels=C)`). extra: further conditioning
    passed after t as it is (a label, a noise-augmentation level).
    """

    def __init__(self, network: Callable[..., Tensor], image: Tensor, *extra: Tensor) -> None:
        super().__init__()
        if not callable(network):
            raise TypeError(f"network must be callable, got {type(network).__name__}")
        if not isinstance(image, Tensor):
            raise TypeError(f"image must be a float tensor (B, C', H, W), got {type(image).__name__}")
        if image.dim() != 4 or not image.is_floating_point():
            raise ValueError(f"image must be a float tensor (B, C', H, W), got {image.dtype} {tuple(image.shape)}")
        self.network, self.image, self.extra = network, image, extra
        self._image = OnDevice(image)
        self._extra = [OnDevice(e) if isinstance(e, Tensor) else e for e in extra]

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        if x_t.dim() != 4 or x_t.shape[0] != self.image.shape[0] or x_t.shape[2:] != self.image.shape[2:]:
            raise ValueError(f"x_t {tuple(x_t.shape)} and the bound image {tuple(self.image.shape)} must share the "
                             "batch size and the height and width")
        extra = [e.on(x_t.device) if isinstance(e, OnDevice) else e for e in self._extra]
        return self.network(torch.cat([x_t, self._image.on(x_t.device, x_t.dtype)], dim=1), t, *extra)
