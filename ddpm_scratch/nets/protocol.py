"""The eps-model protocol: what every sampler and loss in the package calls.

    eps_model(x_t, t) -> eps_hat          x_t: (B, ...) float, t: (B,) LongTensor of training steps 1..T
    eps_model(x_t, t, y) -> eps_hat       conditional networks; y: (B,) labels, y == num_classes is "no label"

Continuous-time networks take a float t in (0, 1] instead. "eps" names the calling convention: a network may
be trained to output x0 or the velocity v instead (`prediction=`), and `forward.predict_eps` turns its output
into eps. Any callable fits: a trained network, or an exact formula such as the Gaussian's E[eps | x_t].
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

__all__ = ["EpsModel"]


class EpsModel(Protocol):
    def __call__(self, x_t: Tensor, t: Tensor, /) -> Tensor: ...
