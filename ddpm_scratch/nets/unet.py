"""U-Net eps-network eps_theta(x_t, t[, y]) for images (Ho et al. 2020; AdaGN from Dhariwal & Nichol 2021).

    x_t (B, C, H, W) -> conv -> level 0 -> Down -> level 1 -> ... -> middle -> ... -> Up -> level 0 -> out -> eps
                               |  skips, concatenated on the way up  ^
    t -> time embedding -> MLP -> c (+ label embedding of y) (+ embedding of aug_level) (+ MLP of code)
                                  c  ->  every ResBlock

The optional `code` (B, code_dim) is a vector computed from an image, a diffusion autoencoder's semantic code
z_sem (Preechakul et al. 2022, `applications.diffae`): a two-layer MLP maps it into c's space and it is added to c,
as the label and aug_level embeddings are. DiffAE itself scales the normalised features by an affine map of z_sem,
h <- (1 + A z_sem) * AdaGN(h, t), a gain separate from the time's; adding it to c instead keeps one conditioning
path and every ResBlock as it is (a net without a code has the same parameters as before), and with
time_injection="adagn" the code still sets per-channel gains, through W c.

A level is num_res_blocks ResBlocks at one resolution (channels base_channels * mult), each followed by
self-attention when that level's feature maps are s x s with s in attention_resolutions. Resolutions are
counted for image_size x image_size inputs: level l has maps of size image_size / 2^l. Other input sizes
divisible by 2^(levels-1) also work (the convolutions do not care); attention then stays at the same levels.

Inside a ResBlock the conditioning c reaches the feature maps in one of two ways (`time_injection`):
    "add"   (DDPM):  h <- GroupNorm(h) + W c                    a per-channel bias
    "adagn" (AdaGN): h <- GroupNorm(h) * (1 + scale) + shift    with (scale, shift) = W c, a per-channel gain too
Ho et al. add W c just before the GroupNorm; here it comes after, so the norm cannot subtract it again (with
one channel per group it would remove it exactly).
The last convolution starts at zero (as in Ho et al.'s code): the untrained net predicts eps = 0, so the loss
starts at E||eps||^2 = 1 whatever the depth. Until that layer has moved, the layers below it get zero gradient;
the first optimiser step moves it and from then on every parameter learns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_choice, check_int, check_int_tuple
from .embeddings import LabelEmbedding, as_time, make_time_embedding

__all__ = ["ResBlock", "Attention", "Downsample", "Upsample", "UNet"]


class ResBlock(nn.Module):
    """Two GroupNorm-SiLU-conv3x3 layers with c injected between them, plus a skip. (B, in_ch, H, W) -> out_ch."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, injection: str, dropout: float, groups: int) -> None:
        super().__init__()
        self.injection = injection
        self.norm1, self.conv1 = nn.GroupNorm(groups, in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.cond = nn.Linear(cond_dim, out_ch * (2 if injection == "adagn" else 1))
        self.norm2, self.conv2 = nn.GroupNorm(groups, out_ch), nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        c = self.cond(F.silu(c))[:, :, None, None]
        if self.injection == "add":
            h = self.norm2(h) + c
        else:
            scale, shift = c.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.dropout(F.silu(h)))


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection. (B, ch, H, W) -> same."""

    def __init__(self, ch: int, groups: int, heads: int = 1) -> None:
        super().__init__()
        if ch % heads:
            raise ValueError(f"attention_heads={heads} must divide the channel count {ch}")
        self.heads = heads
        self.norm, self.qkv, self.out = nn.GroupNorm(groups, ch), nn.Conv2d(ch, 3 * ch, 1), nn.Conv2d(ch, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        d = C // self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, d, H * W).unbind(1)  # each (B, heads, d, N)
        weights = torch.softmax(q.transpose(-1, -2) @ k / math.sqrt(d), dim=-1)  # (B, heads, N, N), rows sum to 1
        h = v @ weights.transpose(-1, -2)  # position n gets sum_m weights[n, m] v[:, m]
        return x + self.out(h.reshape(B, C, H, W))


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: a 3x3 convolution, then nearest-neighbour upsampling.

    DDPM convolves after the doubling; convolving before costs 4x less (it is the widest conv at the higher
    resolution) and the next ResBlock's convolutions mix the doubled map anyway.
    """

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.conv(x), scale_factor=2.0, mode="nearest")


class UNet(nn.Module):
    """eps_theta(x_t, t, y=None, aug_level=None, *, code=None): (B, in_channels, H, W) -> (B, out_channels, H, W).

    t: (B,) LongTensor steps 1..T or float continuous time in [0, 1] (see `embeddings` for the time scale);
    an int or 0-d tensor is broadcast over the batch.  y: (B,) labels in 0..num_classes (num_classes = "no
    label"); only with num_classes set, and None means the null token for every row.
    aug_level: (B,) float in [0, 1], or a float for every row; only with aug_level_conditioning=True, and then
    required: a second scalar input embedded like a continuous time (its own embedding and MLP) and added to c. A
    cascade's super-resolution stage reads the augmentation level of its low-resolution input here (`cascade`).
    code: (B, code_dim) float; only with code_dim set, and then required: a semantic code, mapped by an MLP
    (Linear-SiLU-Linear) into c and added to it (a diffusion autoencoder's z_sem, `applications.diffae`).
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 32, channel_mults: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, attention_resolutions: Sequence[int] = (4,),
                 time_embedding: str = "sinusoidal", time_injection: str = "add", dropout: float = 0.0,
                 num_groups: int = 8, num_classes: int | None = None, out_channels: int | None = None,
                 image_size: int = 8, attention_heads: int = 1, aug_level_conditioning: bool = False,
                 code_dim: int | None = None) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = in_channels if out_channels is None else check_int("out_channels", out_channels)
        mults = check_int_tuple("channel_mults", channel_mults)
        check_int("base_channels", base_channels)
        check_int("num_res_blocks", num_res_blocks)
        attn_res = set(check_int_tuple("attention_resolutions", attention_resolutions, allow_empty=True))
        check_choice("time_embedding", time_embedding, ("sinusoidal", "fourier"))
        check_choice("time_injection", time_injection, ("add", "adagn"))
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        check_int("num_groups", num_groups)
        for m in mults:
            if (base_channels * m) % num_groups:
                raise ValueError(f"num_groups={num_groups} must divide every level's channels base_channels * mult, "
                                 f"got base_channels={base_channels}, channel_mults={mults}")
        self.factor = 2 ** (len(mults) - 1)
        if check_int("image_size", image_size) % self.factor:
            raise ValueError(f"image_size={image_size} must be divisible by 2**(len(channel_mults)-1)={self.factor}")
        sizes = [image_size // 2**level for level in range(len(mults))]
        if attn_res - set(sizes):
            raise ValueError(f"attention_resolutions={tuple(attention_resolutions)} must be feature-map sizes of this "
                             f"net, {tuple(sizes)} for image_size={image_size} (or () for no attention)")
        check_int("attention_heads", attention_heads)
        self.num_classes = None if num_classes is None else check_int("num_classes", num_classes)

        # time (and label) conditioning c, shared by every ResBlock
        cond_dim, emb_dim = 4 * base_channels, 2 * ((base_channels + 1) // 2)
        self.time_embed = nn.Sequential(make_time_embedding(time_embedding, emb_dim), nn.Linear(emb_dim, cond_dim),
                                        nn.SiLU(), nn.Linear(cond_dim, cond_dim))
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, cond_dim)
        if not isinstance(aug_level_conditioning, bool):
            raise TypeError(f"aug_level_conditioning must be a bool, got {type(aug_level_conditioning).__name__}")
        self.aug_level_embed = None if not aug_level_conditioning else nn.Sequential(
            make_time_embedding(time_embedding, emb_dim), nn.Linear(emb_dim, cond_dim), nn.SiLU(),
            nn.Linear(cond_dim, cond_dim))
        self.code_dim = None if code_dim is None else check_int("code_dim", code_dim)
        self.code_embed = None if code_dim is None else nn.Sequential(
            nn.Linear(code_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

        def block(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, cond_dim, time_injection, dropout, num_groups)

        def attention(ch: int, size: int) -> nn.Module:
            return Attention(ch, num_groups, attention_heads) if size in attn_res else nn.Identity()

        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        ch, skip_chs = base_channels, []
        self.down_blocks, self.down_attns, self.downs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level, mult in enumerate(mults):
            for _ in range(num_res_blocks):
                self.down_blocks.append(block(ch, base_channels * mult))
                ch = base_channels * mult
                self.down_attns.append(attention(ch, sizes[level]))
                skip_chs.append(ch)
            if level < len(mults) - 1:
                self.downs.append(Downsample(ch))
        self.mid_block1, self.mid_attn, self.mid_block2 = block(ch, ch), attention(ch, sizes[-1]), block(ch, ch)
        self.up_blocks, self.up_attns, self.ups = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(mults))):
            for _ in range(num_res_blocks):
                self.up_blocks.append(block(ch + skip_chs.pop(), base_channels * mults[level]))
                ch = base_channels * mults[level]
                self.up_attns.append(attention(ch, sizes[level]))
            if level > 0:
                self.ups.append(Upsample(ch))
        self.out = nn.Sequential(nn.GroupNorm(num_groups, ch), nn.SiLU(),
                                 nn.Conv2d(ch, self.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.num_res_blocks, self.num_levels = num_res_blocks, len(mults)

    def forward(self, x_t: Tensor, t: int | float | Tensor, y: Tensor | None = None,
                aug_level: float | Tensor | None = None, *, code: Tensor | None = None) -> Tensor:
        if not isinstance(x_t, Tensor) or not x_t.is_floating_point():
            raise TypeError(f"x_t must be a float tensor, got {getattr(x_t, 'dtype', type(x_t).__name__)}")
        if x_t.dim() != 4 or x_t.shape[1] != self.in_channels:
            raise ValueError(f"x_t must have shape (B, in_channels={self.in_channels}, H, W), got {tuple(x_t.shape)}")
        if x_t.shape[2] % self.factor or x_t.shape[3] % self.factor:
            raise ValueError(f"x_t's height and width must be divisible by 2**(len(channel_mults)-1)={self.factor}, "
                             f"got {tuple(x_t.shape[2:])}")
        c = self.time_embed(as_time(t, batch=x_t.shape[0], device=x_t.device))
        if self.label_embed is not None:
            c = c + self.label_embed(y, x_t.shape[0])
        elif y is not None:
            raise ValueError("y was given but the network was built with num_classes=None (unconditional)")
        if self.aug_level_embed is not None:
            if aug_level is None:
                raise ValueError("aug_level is required: the network was built with aug_level_conditioning=True")
            if not isinstance(aug_level, (float, Tensor)) or (isinstance(aug_level, Tensor)
                                                               and not aug_level.is_floating_point()):
                raise TypeError(f"aug_level must be a float or a (B,) float tensor in [0, 1], got "
                                f"{getattr(aug_level, 'dtype', type(aug_level).__name__)}")
            c = c + self.aug_level_embed(as_time(aug_level, batch=x_t.shape[0], device=x_t.device))
        elif aug_level is not None:
            raise ValueError("aug_level was given but the network was built with aug_level_conditioning=False")
        if self.code_embed is not None:
            if code is None:
                raise ValueError(f"code is required: the network was built with code_dim={self.code_dim}")
            if not isinstance(code, Tensor) or not code.is_floating_point():
                raise TypeError(f"code must be a ({x_t.shape[0]}, code_dim={self.code_dim}) float tensor, got "
                                f"{getattr(code, 'dtype', type(code).__name__)}")
            if code.shape != (x_t.shape[0], self.code_dim):
                raise ValueError(f"code must have shape (B, code_dim) = ({x_t.shape[0]}, {self.code_dim}), got "
                                 f"{tuple(code.shape)}")
            c = c + self.code_embed(code)
        elif code is not None:
            raise ValueError("code was given but the network was built with code_dim=None")

        h, skips, k = self.conv_in(x_t), [], 0
        for level in range(self.num_levels):
            for _ in range(self.num_res_blocks):
                h = self.down_attns[k](self.down_blocks[k](h, c))
                skips.append(h)
                k += 1
            if level < self.num_levels - 1:
                h = self.downs[level](h)
        h = self.mid_block2(self.mid_attn(self.mid_block1(h, c)), c)
        k = 0
        for i in range(self.num_levels):  # deepest level first; each block takes the matching skip
            for _ in range(self.num_res_blocks):
                h = self.up_attns[k](self.up_blocks[k](torch.cat([h, skips.pop()], dim=1), c))
                k += 1
            if i < self.num_levels - 1:
                h = self.ups[i](h)
        return self.out(h)
