"""diffusion_reward: Diffusion Reward for real robots (ROS-free core library).

The Python API (the CLI and the ROS nodes are thin layers over it), imported on first use so that
`import diffusion_reward` stays light:

    import diffusion_reward as dr
    model = dr.RewardModel.from_preset("tiny")        # or .from_config(dr.RewardModelConfig(...)), .load(path)
    model.fit(dr.TrainConfig(data=["experts.hdf5"], out="reward.safetensors"))
    model.compute_stats("experts.hdf5", task="button-press-v3")
    rewards = model.scorer(task="button-press-v3").score_episode(frames).reward
    model.save("reward.safetensors")
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("diffusion-reward")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"

_API = {"RewardModel": "models", "RewardModelConfig": "models.presets", "TrainConfig": "training",
        "ScoreConfig": "scoring_options", "RewardScorer": "reward", "RewardStats": "reward.stats"}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
