"""Simulated stand-ins for the robot: MetaWorld v3 and Adroit tasks at 64x64, scripted experts.

    from diffusion_reward.sim import make_env, list_tasks, make_policy
    env = make_env("button-press-v3", seed=0, image_size=64, action_repeat=2)
    obs = env.reset(seed=3)                     # {"image": u8[64,64,3], "state": f32[39]}
    policy = make_policy("button-press-v3", env, epsilon=0.25, seed=0)
    obs, reward, terminated, truncated, info = env.step(policy(obs))

Tasks, cameras and state vectors are listed in README.md next to this file.
"""
from .envs import SimEnv, episode_seed, make_env
from .experts import EpsilonPolicy, make_policy
from .tasks import TASKS, TaskSpec, list_tasks, task_spec

__all__ = ["SimEnv", "episode_seed", "make_env", "EpsilonPolicy", "make_policy", "TASKS", "TaskSpec", "list_tasks",
           "task_spec"]
