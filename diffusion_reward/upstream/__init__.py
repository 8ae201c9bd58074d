"""Import of the authors' checkpoints (TEA-Lab/diffusion_reward) into one RewardModel file: their VQ-Diffusion
model (importer.py) and their VIPER VideoGPT (viper.py)."""
from .importer import config_from_hydra, import_upstream, read_upstream_stats
from .viper import config_from_videogpt_hydra, import_upstream_videogpt, read_viper_stats, upstream_video_model

__all__ = ["config_from_hydra", "config_from_videogpt_hydra", "import_upstream", "import_upstream_videogpt",
           "read_upstream_stats", "read_viper_stats", "upstream_video_model"]
