"""Scripted experts with epsilon-random degradation.

At every step the policy takes a uniformly random action with probability `epsilon`, otherwise the
expert's action: epsilon = 0 is the expert, epsilon = 1 is a random policy. MetaWorld's scripted
policies (`metaworld.policies`) read the state vector; Adroit has no scripted expert here, so only
epsilon = 1 (random actions) is available for it.
"""
from __future__ import annotations

import warnings

import numpy as np

from diffusion_reward.errors import UserError

from .envs import SimEnv
from .tasks import task_spec


class EpsilonPolicy:
    """`policy(obs) -> f32[A]`: expert action, or with probability epsilon a uniform random one."""

    def __init__(self, expert, action_dim: int, epsilon: float, seed: int = 0, name: str = "random"):
        if not 0.0 <= epsilon <= 1.0:
            raise UserError(f"epsilon must be in [0, 1], got {epsilon}")
        if expert is None and epsilon < 1.0:
            raise UserError("this task has no scripted expert (Adroit); use epsilon 1 (random actions)")
        self.expert = expert
        self.action_dim = action_dim
        self.epsilon = float(epsilon)
        self.name = name
        self.reset(seed)

    def reset(self, seed: int) -> None:
        """Reseed the random choices (call once per episode with the episode's seed)."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        # Draw both numbers every step so the random stream does not depend on the expert.
        explore = self._rng.random() < self.epsilon
        random_action = self._rng.uniform(-1.0, 1.0, self.action_dim)
        if explore:
            return random_action.astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Constant(s) may be too high": we clip below
            action = self.expert.get_action(np.asarray(obs["state"], dtype=np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def make_policy(task: str, env: SimEnv, epsilon: float = 0.0, seed: int = 0) -> EpsilonPolicy:
    """The task's scripted expert degraded by epsilon-random actions (see module docstring)."""
    spec = task_spec(task)
    expert, name = None, "random"
    if spec.has_expert and epsilon < 1.0:
        import metaworld.policies

        expert = getattr(metaworld.policies, spec.expert)()
        name = f"metaworld.policies.{spec.expert}"
    return EpsilonPolicy(expert, env.action_dim, epsilon, seed=seed, name=name)
