"""Scripted experts with epsilon-random degradation.

At every step the policy takes a uniformly random action with probability `epsilon`, otherwise the
expert's action: epsilon = 0 is the expert, epsilon = 1 is a random policy. MetaWorld's experts are its
scripted policies (`metaworld.policies`); Adroit's are the published DAPG policies (`adroit_experts/`, Apache
2.0, see the README there), small tanh MLPs run in numpy. Both read the env's state vector.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from diffusion_reward.checks import check_float
from diffusion_reward.errors import UserError

from .envs import SimEnv
from .tasks import task_spec


class EpsilonPolicy:
    """`policy(obs) -> f32[A]`: expert action, or with probability epsilon a uniform random one."""

    def __init__(self, expert, action_dim: int, epsilon: float, seed: int = 0, name: str = "random"):
        check_float("epsilon", epsilon, 0.0, 1.0)
        if expert is None and epsilon < 1.0:
            raise UserError("this task has no expert policy; use epsilon 1 (random actions)")
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


ADROIT_EXPERTS = Path(__file__).with_name("adroit_experts")


class DAPGPolicy:
    """A published DAPG Adroit policy: obs -> tanh MLP -> the Gaussian's mean action (network in adroit_experts/)."""

    def __init__(self, path: Path):
        w = np.load(path, allow_pickle=False)
        self.layers = [(w[f"fc{i}.weight"].astype(np.float64), w[f"fc{i}.bias"].astype(np.float64)) for i in range(3)]
        self.in_shift, self.in_scale = w["in_shift"].astype(np.float64), w["in_scale"].astype(np.float64)
        self.out_shift, self.out_scale = w["out_shift"].astype(np.float64), w["out_scale"].astype(np.float64)
        self.obs_dim = self.layers[0][0].shape[1]

    def get_action(self, obs: np.ndarray) -> np.ndarray:
        if obs.shape != (self.obs_dim,):
            raise UserError(f"the DAPG expert expects a {self.obs_dim}-d observation, got shape {obs.shape}")
        x = (obs - self.in_shift) / (self.in_scale + 1e-8)
        for weight, bias in self.layers[:2]:
            x = np.tanh(weight @ x + bias)
        weight, bias = self.layers[2]
        return (weight @ x + bias) * self.out_scale + self.out_shift


def make_policy(task: str, env: SimEnv, epsilon: float = 0.0, seed: int = 0) -> EpsilonPolicy:
    """The task's expert degraded by epsilon-random actions (see module docstring)."""
    spec = task_spec(task)
    expert, name = None, "random"
    if spec.has_expert and epsilon < 1.0:
        if spec.domain == "adroit":
            expert = DAPGPolicy(ADROIT_EXPERTS / f"{spec.expert}.npz")
            name = f"dapg.{spec.expert}"
        else:
            import metaworld.policies

            expert = getattr(metaworld.policies, spec.expert)()
            name = f"metaworld.policies.{spec.expert}"
    return EpsilonPolicy(expert, env.action_dim, epsilon, seed=seed, name=name)
