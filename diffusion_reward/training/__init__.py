"""Reward-model training: VQ-GAN codec, then the VQ-Diffusion video model on its tokens (DDP-ready)."""
from .config import PRESET_DEFAULTS, TrainConfig
from .trainer import RewardTrainer, train_reward_model

__all__ = ["PRESET_DEFAULTS", "RewardTrainer", "TrainConfig", "train_reward_model"]
