"""Reward model: VQ-GAN codec, VQ-Diffusion video model, presets and the one-file model format."""
from .codec import Codec, frames_to_input
from .model_file import RewardModel, stats_key
from .presets import PRESETS, CodecConfig, RewardModelConfig, VideoConfig, get_preset
from .video import VideoModel

__all__ = ["Codec", "CodecConfig", "PRESETS", "RewardModel", "RewardModelConfig", "VideoConfig", "VideoModel",
           "frames_to_input", "get_preset", "stats_key"]
