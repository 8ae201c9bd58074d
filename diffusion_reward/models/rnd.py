"""Random Network Distillation (Burda et al. 2018), with the Diffusion Reward authors' network shapes.

A fixed random target network embeds an observation; a predictor learns to match it on the observations it
is trained on. The squared prediction error is large on novel observations and shrinks on familiar ones:
that is the exploration bonus r_rnd of Eq. 5 (see `diffusion_reward.reward.combine`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class RNDConfig:
    image_size: int = 64
    channels: int = 3
    feature_dim: int = 512
    lr: float = 1e-4
    seed: int = 0


def _conv_trunk(channels: int) -> nn.Sequential:
    # 64x64 input: 64 -> 20 -> 9 -> 7, so 64*7*7 = 3136 features as upstream
    return nn.Sequential(
        nn.Conv2d(channels, 32, 6, stride=3), nn.LeakyReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.LeakyReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.LeakyReLU(),
        nn.Flatten(),
    )


def _orthogonal_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.orthogonal_(module.weight, gain=2 ** 0.5)
        nn.init.zeros_(module.bias)


class RND(nn.Module):
    def __init__(self, config: RNDConfig | None = None):
        super().__init__()
        self.config = config = config or RNDConfig()
        with torch.random.fork_rng(devices=[]):  # same seed -> same weights, global RNG untouched
            torch.manual_seed(config.seed)
            flat = _conv_trunk(config.channels)(
                torch.zeros(1, config.channels, config.image_size, config.image_size)).shape[1]
            self.target = nn.Sequential(_conv_trunk(config.channels), nn.Linear(flat, config.feature_dim))
            self.predictor = nn.Sequential(
                _conv_trunk(config.channels),
                nn.Linear(flat, config.feature_dim), nn.ReLU(),
                nn.Linear(config.feature_dim, config.feature_dim), nn.ReLU(),
                nn.Linear(config.feature_dim, config.feature_dim),
            )
            self.apply(_orthogonal_init)
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.predictor.parameters(), lr=config.lr)

    @staticmethod
    def preprocess(obs_u8: torch.Tensor) -> torch.Tensor:
        """uint8[B,C,H,W] -> float[B,C,H,W] in [-0.5, 0.5], as upstream."""
        return obs_u8.float() / 255.0 - 0.5

    def _error(self, obs_u8: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(obs_u8)
        return 0.5 * (self.target(x) - self.predictor(x)).pow(2).sum(dim=1)  # [B]

    @torch.no_grad()
    def bonus(self, obs_u8: torch.Tensor) -> torch.Tensor:
        """r_rnd = 0.5 * ||target(o) - predictor(o)||^2, float[B]."""
        return self._error(obs_u8)

    def update(self, obs_u8: torch.Tensor) -> float:
        """One Adam step of the predictor towards the target on this batch; returns the loss."""
        loss = self._error(obs_u8).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def forward(self, obs_u8: torch.Tensor) -> torch.Tensor:
        return self.bonus(obs_u8)

