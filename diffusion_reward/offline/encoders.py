"""Pixel (+ proprioception) encoder for d3rlpy with DrQ-style random-shift augmentation.

d3rlpy 2.x has no image augmentation, so the shift lives inside the encoder and runs only in training mode
(d3rlpy switches its modules to train() for updates and eval() for predict / export, so inference and the
exported TorchScript are deterministic). Observations reach the encoder after d3rlpy's observation scaler:
image float[B, 3K, H, W] in [0, 1] (K stacked frames, oldest first), state float[B, D] standardised.

Registered with d3rlpy under the type name "drq_pixel": import this module before rebuilding a saved
policy from its params.json. Keep it importing torch and d3rlpy only: `export --d3rlpy` copies this file into
the bundles of image + state policies as `drq_pixel.py`, for users without this package (`d3rlpy_bundle.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from d3rlpy.dataset import is_tuple_shape
from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory
from d3rlpy.models.torch import Encoder, EncoderWithAction
from d3rlpy.types import Shape


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad each image by `pad` (replicate) and crop back at a random integer offset per sample (DrQ-v2)."""
    n, _, h, w = x.shape
    assert h == w, "random shift expects square images"
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    eps = 1.0 / (h + 2 * pad)
    arange = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad, device=x.device, dtype=x.dtype)[:h]
    arange = arange.unsqueeze(0).repeat(h, 1).unsqueeze(2)
    base_grid = torch.cat([arange, arange.transpose(1, 0)], dim=2).unsqueeze(0).repeat(n, 1, 1, 1)  # [n,h,w,2]
    shift = torch.randint(0, 2 * pad + 1, (n, 1, 1, 2), device=x.device).to(x.dtype) * (2.0 / (h + 2 * pad))
    return F.grid_sample(x, base_grid + shift, padding_mode="zeros", align_corners=False)


class _ImageStateBody(nn.Module):
    """shift -> convs -> flatten, concat [state, action] -> Linear -> ReLU: float[B, feature_size]."""

    def __init__(self, observation_shape: Shape, filters, feature_size: int, shift_pad: int, action_size: int):
        super().__init__()
        if is_tuple_shape(observation_shape):
            image_shape, state_shape = observation_shape
            state_dim = int(state_shape[0])
        else:
            image_shape, state_dim = observation_shape, 0
        self.shift_pad = shift_pad
        layers, channels = [], image_shape[0]
        for out_channels, kernel, stride in filters:
            layers += [nn.Conv2d(channels, out_channels, kernel, stride=stride), nn.ReLU()]
            channels = out_channels
        self.convs = nn.Sequential(*layers, nn.Flatten())
        flat = self.convs(torch.zeros(1, *image_shape)).shape[1]
        self.head = nn.Sequential(nn.Linear(flat + state_dim + action_size, feature_size), nn.ReLU())

    def forward(self, x, action: torch.Tensor | None = None) -> torch.Tensor:
        image, extra = (x[0], [x[1]]) if isinstance(x, (list, tuple)) else (x, [])
        if self.training and self.shift_pad > 0:
            image = random_shift(image, self.shift_pad)
        if action is not None:
            extra.append(action)
        return self.head(torch.cat([self.convs(image), *extra], dim=1))


class DrQPixelEncoder(Encoder):
    def __init__(self, **kwargs):
        super().__init__()
        self.body = _ImageStateBody(action_size=0, **kwargs)

    def forward(self, x) -> torch.Tensor:
        return self.body(x)


class DrQPixelEncoderWithAction(EncoderWithAction):
    def __init__(self, action_size: int, **kwargs):
        super().__init__()
        self.body = _ImageStateBody(action_size=action_size, **kwargs)

    def forward(self, x, action: torch.Tensor) -> torch.Tensor:
        return self.body(x, action)


@dataclass()
class DrQPixelEncoderFactory(EncoderFactory):
    """Image (CHW, K stacked frames) or (image, state) tuple observations; random shift in training only."""

    # 64x64 input: 64 -> 15 -> 6 -> 4, i.e. 1024 conv features (the Nature-DQN stack d3rlpy uses for pixels)
    filters: list[list[int]] = field(default_factory=lambda: [[32, 8, 4], [64, 4, 2], [64, 3, 1]])
    feature_size: int = 256
    shift_pad: int = 4

    def _kwargs(self, observation_shape: Shape) -> dict:
        return dict(observation_shape=observation_shape, filters=self.filters, feature_size=self.feature_size,
                    shift_pad=self.shift_pad)

    def create(self, observation_shape: Shape) -> DrQPixelEncoder:
        return DrQPixelEncoder(**self._kwargs(observation_shape))

    def create_with_action(self, observation_shape: Shape, action_size: int,
                           discrete_action: bool = False) -> DrQPixelEncoderWithAction:
        assert not discrete_action, "continuous actions only"
        return DrQPixelEncoderWithAction(action_size=action_size, **self._kwargs(observation_shape))

    @staticmethod
    def get_type() -> str:
        return "drq_pixel"


register_encoder_factory(DrQPixelEncoderFactory)
