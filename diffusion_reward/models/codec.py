"""VQ-GAN codec (the authors' dome272-derived VQGAN): 64x64 RGB <-> 8x8 grid of codebook indices.

Module and parameter names equal the upstream state_dict keys (`encoder.model.N...`, `decoder.model.N...`,
`codebook.embedding.weight`, `quant_conv`, `post_quant_conv`) so the authors' checkpoints load unchanged.
Pixels are uint8 / 127.5 - 1 (float32); tokens are the latent grid flattened row-major (index = h * W + w).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .presets import CodecConfig


class GroupNorm(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.gn = nn.GroupNorm(groups, channels, eps=1e-6, affine=True)

    def forward(self, x):
        return self.gn(x)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.block = nn.Sequential(
            GroupNorm(in_channels, groups), Swish(), nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            GroupNorm(out_channels, groups), Swish(), nn.Conv2d(out_channels, out_channels, 3, 1, 1),
        )
        self.channel_up = nn.Conv2d(in_channels, out_channels, 1, 1, 0) if in_channels != out_channels else None

    def forward(self, x):
        skip = x if self.channel_up is None else self.channel_up(x)
        return skip + self.block(x)


class UpSample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0))  # nearest


class DownSample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class NonLocalBlock(nn.Module):
    """Single-head spatial self-attention. `proj_out` exists in upstream checkpoints but upstream never applies it
    (dome272 returns x + A); we match that so imported weights give the authors' numbers."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.gn = GroupNorm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1, 1, 0)
        self.k = nn.Conv2d(channels, channels, 1, 1, 0)
        self.v = nn.Conv2d(channels, channels, 1, 1, 0)
        self.proj_out = nn.Conv2d(channels, channels, 1, 1, 0)

    def forward(self, x):
        b, c, h, w = x.shape
        h_ = self.gn(x)
        q = self.q(h_).reshape(b, c, h * w).permute(0, 2, 1)  # (b, hw, c)
        k = self.k(h_).reshape(b, c, h * w)  # (b, c, hw)
        v = self.v(h_).reshape(b, c, h * w)  # (b, c, hw)
        attn = F.softmax(torch.bmm(q, k) * c ** -0.5, dim=2)  # (b, hw_q, hw_k)
        a = torch.bmm(v, attn.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + a


class Encoder(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        ch, g = cfg.channels, cfg.norm_groups
        layers = [nn.Conv2d(3, ch[0], 3, 1, 1)]
        resolution = cfg.image_size
        for i in range(len(ch) - 1):
            in_ch, out_ch = ch[i], ch[i + 1]
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(in_ch, out_ch, g))
                in_ch = out_ch
                if resolution in cfg.attn_resolutions:
                    layers.append(NonLocalBlock(in_ch, g))
            layers.append(DownSample(out_ch))  # after every level: 64 -> 8 for 4 channel entries
            resolution //= 2
        layers += [ResidualBlock(ch[-1], ch[-1], g), NonLocalBlock(ch[-1], g), ResidualBlock(ch[-1], ch[-1], g),
                   GroupNorm(ch[-1], g), Swish(), nn.Conv2d(ch[-1], cfg.latent_dim, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):  # (B, 3, H, W) -> (B, latent_dim, H/2^n, W/2^n)
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        ch, g = tuple(reversed(cfg.channels)), cfg.norm_groups
        in_ch = ch[0]
        layers = [nn.Conv2d(cfg.latent_dim, in_ch, 3, 1, 1),
                  ResidualBlock(in_ch, in_ch, g), NonLocalBlock(in_ch, g), ResidualBlock(in_ch, in_ch, g)]
        resolution = cfg.latent_size
        for i, out_ch in enumerate(ch):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(in_ch, out_ch, g))
                in_ch = out_ch
                if resolution in cfg.attn_resolutions:
                    layers.append(NonLocalBlock(in_ch, g))
            if i != len(ch) - 1:
                layers.append(UpSample(in_ch))
                resolution *= 2
        layers += [GroupNorm(in_ch, g), Swish(), nn.Conv2d(in_ch, 3, 3, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, z):  # (B, latent_dim, h, w) -> (B, 3, H, W), nominal range [-1, 1]
        return self.model(z)


class Codebook(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.beta = cfg.beta
        self.embedding = nn.Embedding(cfg.num_codes, cfg.latent_dim)
        self.embedding.weight.data.uniform_(-1.0 / cfg.num_codes, 1.0 / cfg.num_codes)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, h*w) indices of the nearest code (first index on ties)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        e = self.embedding.weight
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()  # (B*h*w, K)
        return dist.argmin(1).view(b, h * w)

    def forward(self, z):
        """Returns (straight-through z_q (B, D, h, w), tokens (B, h*w), quantisation loss)."""
        tokens = self.nearest(z)
        z_q = self.lookup(tokens, z.shape[2], z.shape[3])
        # upstream quirk: beta weights the codebook term, not the commitment term
        loss = torch.mean((z_q.detach() - z) ** 2) + self.beta * torch.mean((z_q - z.detach()) ** 2)
        return z + (z_q - z).detach(), tokens, loss

    def lookup(self, tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return self.embedding(tokens).view(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)


class Codec(nn.Module):
    def __init__(self, cfg: CodecConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.codebook = Codebook(cfg)
        self.quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 1)

    @property
    def num_tokens(self) -> int:
        return self.config.latent_size ** 2

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> pre-quantisation latent (B, D, h, w)."""
        return self.quant_conv(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> tokens (B, h*w) int64."""
        return self.codebook.nearest(self.encode_latent(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z_q))

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, h*w) -> (B, 3, H, W), nominal range [-1, 1]."""
        s = self.config.latent_size
        return self.decode(self.codebook.lookup(tokens, s, s))

    def forward(self, x):
        """Training pass: (B, 3, H, W) -> (reconstruction, tokens, quantisation loss)."""
        z_q, tokens, q_loss = self.codebook(self.encode_latent(x))
        return self.decode(z_q), tokens, q_loss


def frames_to_input(frames_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1], exactly as upstream (x / 127.5 - 1)."""
    return (frames_u8.float() / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
