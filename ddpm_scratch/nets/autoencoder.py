"""A small KL-regularised convolutional autoencoder: the first stage of latent diffusion (Rombach et al. 2022, Sec. 3).

The encoder maps an image x0 to the mean and log-variance of a diagonal Gaussian q(z | x0) over a latent z with
fewer values than the image; the decoder maps a latent back to an image:

    x0 (B, C, H, W) -> conv -> [SiLU, conv stride 2] x levels -> SiLU, conv 1x1 -> mean, log_var (B, c, h, w)
    z  (B, c, h, w) -> conv -> [SiLU, nearest x2, conv] x levels -> SiLU, conv -> x0_hat (B, C, H, W)

with h = H / 2^levels (levels = len(channels) - 1: the encoder's widths are channels, the decoder's the same
reversed). z = mean + exp(log_var / 2) * eps is one draw of q(z | x0) (the reparameterisation trick), as in LDM's
`DiagonalGaussianDistribution.sample`. The decoder's last layer is linear: its output is meant to lie in [-1, 1] like
the data, and is clamped there only where an image is shown or measured. The loss (reconstruction + a small beta
times KL(q(z | x0) || N(0, I))) and the latent rescaling live in `applications.latent`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..checks import check_int, check_int_tuple

__all__ = ["Autoencoder"]

LOG_VAR_RANGE = (-30.0, 20.0)  # LDM clamps the log-variance the same way, so exp() cannot overflow


class Autoencoder(nn.Module):
    """A KL-regularised autoencoder for small images: encode(x0) -> (mean, log_var), decode(z) -> x0_hat.

    in_channels: C of the images.  latent_channels: c of the latent.  channels: the encoder's widths, one per
    resolution (the first at full size, each next one after a stride-2 convolution), so the latent is
    (c, H / 2^(len(channels) - 1), W / 2^(len(channels) - 1)).  image_size: H = W of the images it is built for
    (`latent_shape` reads it; other sizes divisible by 2^(len(channels) - 1) work too).
    """

    def __init__(self, in_channels: int = 1, latent_channels: int = 2, channels: Sequence[int] = (16, 32),
                 image_size: int = 8) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.latent_channels = check_int("latent_channels", latent_channels)
        widths = check_int_tuple("channels", channels)
        self.factor = 2 ** (len(widths) - 1)
        if check_int("image_size", image_size) % self.factor:
            raise ValueError(f"image_size={image_size} must be divisible by 2**(len(channels)-1)={self.factor}")
        self.image_size = image_size

        encoder: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            encoder += [nn.SiLU(), nn.Conv2d(cin, cout, 3, stride=2, padding=1)]
        encoder += [nn.SiLU(), nn.Conv2d(widths[-1], 2 * latent_channels, 1)]  # mean and log_var, stacked
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1)]
        for cin, cout in zip(widths[:0:-1], widths[-2::-1], strict=True):
            decoder += [nn.SiLU(), nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1)]
        decoder += [nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(c, h, w) of the latent of one image_size x image_size image."""
        size = self.image_size // self.factor
        return (self.latent_channels, size, size)

    def _check_input(self, name: str, x: object, channels: int) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"{name} must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
        return x

    def encode(self, x0: Tensor) -> tuple[Tensor, Tensor]:
        """x0: (B, C, H, W) in [-1, 1] -> (mean, log_var) of q(z | x0), each (B, c, H / f, W / f), f = self.factor."""
        x0 = self._check_input("x0", x0, self.in_channels)
        if x0.shape[2] % self.factor or x0.shape[3] % self.factor:
            raise ValueError(f"x0's height and width must be divisible by {self.factor}, got {tuple(x0.shape)}")
        mean, log_var = self.encoder(x0).chunk(2, dim=1)
        return mean, log_var.clamp(*LOG_VAR_RANGE)

    def decode(self, z: Tensor) -> Tensor:
        """z: (B, c, h, w) (unscaled latents) -> x0_hat (B, C, h * f, w * f), about [-1, 1] (not clamped)."""
        return self.decoder(self._check_input("z", z, self.latent_channels))

    def forward(self, x0: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One pass with a draw z ~ q(z | x0): returns (x0_hat, mean, log_var), x0_hat = decode(z)."""
        mean, log_var = self.encode(x0)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(mean + torch.exp(0.5 * log_var) * eps), mean, log_var
