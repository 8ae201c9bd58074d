"""Import of the authors' checkpoints (TEA-Lab/diffusion_reward) into one RewardModel file."""
from .importer import config_from_hydra, import_upstream, read_upstream_stats

__all__ = ["config_from_hydra", "import_upstream", "read_upstream_stats"]
