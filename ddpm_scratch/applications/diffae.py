"""Diffusion autoencoders: a semantic code that conditions the denoiser, and the DDIM-inverted x_T that holds the
rest (Preechakul et al. 2022, "Diffusion autoencoders: toward a meaningful and decodable representation", DiffAE).

An unconditional model's x_T (DDIM inversion, lecture 4) decodes back to x0 but is a poor representation: it is
shaped like x0, looks like noise, and a straight line between two x_T's means nothing semantic. DiffAE splits the
code of an image in two:

    z_sem = Enc_phi(x0)                      (B, d), a small d: what the image is (class, slant, thickness)
    eps_theta(x_t, t, z_sem)                 the denoiser, conditioned on z_sem (DiffAE Sec. 3.1)
    x_T = DDIM-invert(x0 | z_sem)            (B, C, H, W): the stochastic subcode, what z_sem leaves out (Sec. 3.2)

Encoder and denoiser are trained together on L_simple alone, with z_sem computed from the same x0 that is noised
(DiffAE eq. 6's loss, ||eps_theta(x_t, t, Enc(x0)) - eps||^2): the code is useful to the denoiser only where it
carries what the noisy x_t has lost, which at large t is the image's overall content. x_T plays no part in
training; it is inferred afterwards by running the eta = 0 DDIM step forwards with z_sem bound (`ddim.ddim_invert`):

    x_{i} = sqrt(abar_i) x0_hat(x_{i-1}) + sqrt(1 - abar_i) eps_theta(x_{i-1}, t_{i-1}, z_sem)     (DiffAE eq. 8)

Decoding is DDIM sampling from x_T with the same z_sem bound (`decode`): with the inferred x_T it reconstructs
x0 (up to the inversion's discretisation error, `ddim.ddim_invert`); with a fresh x_T ~ N(0, I) it draws another
image that keeps what z_sem encodes. Two images interpolate by moving z_sem on a straight line and x_T along the
sphere Gaussian noise lives on (`ddim.slerp`, Sec. 5.1). An attribute is edited by moving z_sem along a direction,
e.g. the normal of a linear classifier fitted on the codes, and decoding with the image's own x_T (Sec. 5.2).

The conditioning: `nets.UNet(code_dim=d)` maps z_sem by an MLP into its conditioning vector c (added to the time
embedding; DiffAE scales the normalised features by it instead, see `nets.unet`). A bound code makes an eps-model
(`CodeBound`), so inversion and every sampler run unchanged.

Shapes: x0, x_t, x_T (B, C, H, W), x0 in [-1, 1]; z_sem (B, code_dim); t (B,) training steps 1..T.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_choice, check_images, check_int, check_number
from ..ddim import ddim_invert, slerp
from ..losses import l_simple
from ..nets.protocol import OnDevice
from ..nets.unet import UNet
from ..sampling import sample
from ..schedules import SPACINGS, NoiseSchedule

__all__ = ["SemanticEncoder", "DiffAE", "diffae_loss", "CodeBound", "encode", "decode", "interpolate"]



def _check_code(z_sem: object, rows: int | None = None) -> Tensor:
    if not isinstance(z_sem, Tensor) or not z_sem.is_floating_point() or z_sem.dim() != 2:
        got = f"{z_sem.dtype} {tuple(z_sem.shape)}" if isinstance(z_sem, Tensor) else type(z_sem).__name__
        raise ValueError(f"z_sem must be a float tensor (B, code_dim), got {got}")
    if rows is not None and z_sem.shape[0] != rows:
        raise ValueError(f"z_sem has {z_sem.shape[0]} rows but the images have {rows}")
    return z_sem


class SemanticEncoder(nn.Module):
    """Enc_phi: x0 (B, in_channels, H, W) -> z_sem (B, code_dim), H and W divisible by 4.

    conv3x3(in -> ch) -> [GroupNorm-SiLU-conv3x3 stride 2] (ch -> 2ch, H/2) -> [same] (2ch -> 4ch, H/4)
    -> GroupNorm-SiLU -> average-pool to 2 x 2 -> flatten (16 ch) -> linear -> z_sem.
    DiffAE's encoder is the first half of a U-Net with a global average pool; on 8x8 digits a 2 x 2 pool keeps
    where the strokes are, which a global pool would average away.
    """

    def __init__(self, in_channels: int = 1, code_dim: int = 16, channels: int = 32, num_groups: int = 8) -> None:
        super().__init__()
        self.in_channels, self.code_dim = check_int("in_channels", in_channels), check_int("code_dim", code_dim)
        check_int("channels", channels)
        if channels % check_int("num_groups", num_groups):
            raise ValueError(f"num_groups={num_groups} must divide channels={channels}")
        ch = channels
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList([nn.Sequential(nn.GroupNorm(num_groups, c_in), nn.SiLU(),
                                                 nn.Conv2d(c_in, 2 * c_in, 3, stride=2, padding=1))
                                   for c_in in (ch, 2 * ch)])
        self.norm = nn.GroupNorm(num_groups, 4 * ch)
        self.out = nn.Linear(4 * ch * 4, code_dim)

    def forward(self, x0: Tensor) -> Tensor:
        if x0.dim() != 4 or x0.shape[1] != self.in_channels or x0.shape[2] % 4 or x0.shape[3] % 4:
            raise ValueError(f"x0 must have shape (B, {self.in_channels}, H, W) with H and W divisible by 4, got "
                             f"{tuple(x0.shape)}")
        h = self.conv_in(x0)
        for down in self.down:
            h = down(h)
        h = F.adaptive_avg_pool2d(F.silu(self.norm(h)), 2)
        return self.out(h.flatten(1))


class DiffAE(nn.Module):
    """The diffusion autoencoder as one network: encoder Enc_phi and the code-conditioned denoiser eps_theta.

    forward(x_t, t, *, code) = denoiser(x_t, t, code=code): eps (B, C, H, W), with code = z_sem (B, code_dim).
    semantic(x0) = encoder(x0): z_sem. Default parts: `SemanticEncoder(in_channels, code_dim)` and
    `UNet(in_channels, code_dim=code_dim, **unet_args)`; any modules with those calls fit (tests use exact ones).
    """

    def __init__(self, in_channels: int = 1, code_dim: int = 16, *, encoder: nn.Module | None = None,
                 denoiser: nn.Module | None = None, encoder_channels: int = 32, **unet_args) -> None:
        super().__init__()
        self.code_dim = check_int("code_dim", code_dim)
        self.encoder = encoder if encoder is not None else SemanticEncoder(in_channels, code_dim, encoder_channels)
        self.denoiser = denoiser if denoiser is not None else UNet(in_channels, code_dim=code_dim, **unet_args)
        for name, part in (("encoder", self.encoder), ("denoiser", self.denoiser)):
            if not isinstance(part, nn.Module):
                raise TypeError(f"{name} must be an nn.Module, got {type(part).__name__}")
        if getattr(self.denoiser, "code_dim", code_dim) != code_dim:
            raise ValueError(f"the denoiser reads codes of {self.denoiser.code_dim} dimensions, not code_dim="
                             f"{code_dim}")

    def semantic(self, x0: Tensor) -> Tensor:
        """z_sem = Enc_phi(x0): (B, C, H, W) -> (B, code_dim)."""
        return self.encoder(x0)

    def forward(self, x_t: Tensor, t: Tensor, *, code: Tensor) -> Tensor:
        return self.denoiser(x_t, t, code=code)


def diffae_loss(model: DiffAE, schedule: NoiseSchedule, x0: Tensor, *, generator: torch.Generator | None = None
                ) -> Tensor:
    """L_simple of the autoencoder: mean ||eps - eps_theta(x_t, t, Enc_phi(x0))||^2 with t ~ U{1..T}, eps ~ N(0, I),
    x_t = q_sample(x0, t, eps) (DiffAE eq. 6). The gradient reaches the encoder through the code, so both parts are
    trained by the one loss. x0: (B, C, H, W). Returns a scalar that carries gradients."""
    check_images("x0", x0)
    z_sem = model.semantic(x0)
    return l_simple(lambda x_t, t: model(x_t, t, code=z_sem), schedule, x0, generator=generator)


class CodeBound(nn.Module):
    """A code-conditioned network with its codes bound, as an eps-model: forward(x_t, t) = network(x_t, t,
    code=z_sem) (as `nets.protocol.LabelBound` binds a label). z_sem: (B, code_dim), one row per row of the batches
    it will be called with; copied to each device and dtype once (`OnDevice`)."""

    def __init__(self, network: Callable[..., Tensor], z_sem: Tensor) -> None:
        super().__init__()
        if not callable(network):
            raise TypeError(f"network must be callable, got {type(network).__name__}")
        self.network, self.z_sem = network, _check_code(z_sem)
        self._z_sem = OnDevice(z_sem)

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        if x_t.shape[0] != self.z_sem.shape[0]:  # a shape: free to check
            raise ValueError(f"the bound codes have {self.z_sem.shape[0]} rows but x_t has {x_t.shape[0]}")
        return self.network(x_t, t, code=self._z_sem.on(x_t.device, x_t.dtype))


def _check_steps(num_steps: int | None, spacing: str) -> None:
    if num_steps is not None:
        check_int("num_steps", num_steps)
    check_choice("spacing", spacing, SPACINGS)


@torch.no_grad()
def encode(model: DiffAE, schedule: NoiseSchedule, x0: Tensor, *, num_steps: int | None = None,
           spacing: str = "uniform", fixed_point_iterations: int = 0, progress: bool = False) -> tuple[Tensor, Tensor]:
    """x0 -> (z_sem, x_T): the semantic code Enc_phi(x0) (B, code_dim), and x_T (B, C, H, W) by DDIM inversion of
    the denoiser with z_sem bound (`ddim.ddim_invert`, its num_steps, spacing and fixed_point_iterations: decode
    with the same num_steps and spacing). x0: (B, C, H, W) on the model's device."""
    check_images("x0", x0)
    _check_steps(num_steps, spacing)
    z_sem = model.semantic(x0)
    x_T = ddim_invert(CodeBound(model, z_sem), schedule, x0, num_steps=num_steps, spacing=spacing,
                      fixed_point_iterations=fixed_point_iterations, progress=progress)
    return z_sem, x_T


@torch.no_grad()
def decode(model: DiffAE, schedule: NoiseSchedule, z_sem: Tensor, x_T: Tensor, *, num_steps: int | None = None,
           spacing: str = "uniform", progress: bool = False) -> Tensor:
    """(z_sem, x_T) -> x0: DDIM (eta = 0) from x_T with z_sem bound, `sampling.sample(..., sampler="ddim", x_T=x_T)`.
    z_sem: (B, code_dim); x_T: (B, C, H, W) on the model's device. Returns (B, C, H, W)."""
    check_images("x_T", x_T)
    _check_code(z_sem, x_T.shape[0])
    _check_steps(num_steps, spacing)
    return sample(CodeBound(model, z_sem), schedule, x_T.shape, sampler="ddim", num_steps=num_steps,
                  spacing=spacing, x_T=x_T, device=x_T.device, dtype=x_T.dtype, progress=progress)


@torch.no_grad()
def interpolate(model: DiffAE, schedule: NoiseSchedule, a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor],
                alphas: Sequence[float], *, num_steps: int | None = None, spacing: str = "uniform") -> Tensor:
    """Decode the path between the codes a = (z_sem_a, x_T_a) and b = (z_sem_b, x_T_b) of B pairs of images:
    z_sem = (1 - alpha) z_sem_a + alpha z_sem_b, x_T = slerp(x_T_a, x_T_b, alpha) (DiffAE Sec. 5.1), for each alpha
    in [0, 1], decoded in one batch. Returns (B, len(alphas), C, H, W): row b walks from pair b's first image to
    its second."""
    (z_a, x_a), (z_b, x_b) = a, b
    for name, x in (("x_T_a", x_a), ("x_T_b", x_b)):
        check_images(name, x)
    _check_code(z_a, x_a.shape[0])
    _check_code(z_b, x_b.shape[0])
    if z_a.shape != z_b.shape or x_a.shape != x_b.shape:
        raise ValueError(f"a and b must have the same shapes, got z_sem {tuple(z_a.shape)}, {tuple(z_b.shape)} and "
                         f"x_T {tuple(x_a.shape)}, {tuple(x_b.shape)}")
    alphas = [check_number(f"alphas[{k}]", alpha, 0.0, 1.0) for k, alpha in enumerate(alphas)]
    if not alphas:
        raise ValueError("alphas must hold at least one value in [0, 1]")
    z_sem = torch.cat([torch.lerp(z_a, z_b, alpha) for alpha in alphas])  # (K B, code_dim), alpha-major
    x_T = torch.cat([slerp(x_a, x_b, alpha) for alpha in alphas])
    x0 = decode(model, schedule, z_sem, x_T, num_steps=num_steps, spacing=spacing)
    return x0.reshape(len(alphas), *x_a.shape).transpose(0, 1)
