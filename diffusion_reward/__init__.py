"""diffusion_reward: Diffusion Reward for real robots (ROS-free core library)."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("diffusion-reward")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
