"""Reward model: VQ-GAN codec, a video model (VQ-Diffusion, or VIPER's VideoGPT), presets and the one-file format."""
from .codec import Codec, frames_to_input
from .model_file import RewardModel, stats_key
from .presets import PRESETS, CodecConfig, RewardModelConfig, VideoConfig, VideoGPTConfig, get_preset
from .video import VideoModel
from .videogpt import VideoGPT

__all__ = ["Codec", "CodecConfig", "PRESETS", "RewardModel", "RewardModelConfig", "VideoConfig", "VideoGPT",
           "VideoGPTConfig", "VideoModel", "frames_to_input", "get_preset", "stats_key"]
