"""Robot-free evaluation on held-out episodes, for choosing a checkpoint before it touches a robot.

- FQE (Le et al. 2019, d3rlpy's implementation): a Q function fitted to the policy's own actions on the
  held-out data; its value at the episodes' initial states estimates the policy's return.
- the policy's own critic at the initial states (IQL / CQL / TD3+BC; BC has none): optimistic, but free.
- action difference to the logged actions (mean squared and mean absolute, per action dimension).
- the logged behaviour's discounted return from the initial states, as a reference scale.
The held-out data is read exactly as the policy's training data was (same observation, frame stack and
reward settings, from policy.json).
"""
from __future__ import annotations

from . import legacy_gym  # noqa: F401, I001  (before d3rlpy: swallows legacy gym's import notice)

from dataclasses import asdict, dataclass

import d3rlpy
import numpy as np
from d3rlpy.logging import NoopAdapterFactory
from d3rlpy.models.encoders import VectorEncoderFactory

from diffusion_reward.checks import check_float, check_int, check_seed, config_field
from diffusion_reward.errors import UserError

from .encoders import DrQPixelEncoderFactory
from .mdp import MDPSpec, build_mdp
from .train_policy import load_policy


@dataclass
class OPEConfig:
    """What `evaluate --ope` does; its fields are the command's flags (`cli/config_args.py`)."""

    policy: str
    data: str | None = config_field(None, "held-out dataset (with the policy's reward label)", metavar="HELDOUT")
    mask: str | None = config_field(None, "evaluate only the episodes of this filter key (e.g. valid)")
    checkpoint: str | None = config_field(None, "weights inside POLICY to evaluate, e.g. checkpoints/step_5000.pt "
                                                "(default: the final weights)")
    fqe_steps: int = config_field(2_000, "gradient steps of fitted Q evaluation")
    batch_size: int = 64
    gamma: float = 0.99
    seed: int = 0
    show_progress: bool = True

    def __post_init__(self):
        if not self.data:
            raise UserError("off-policy evaluation needs `data`: a held-out dataset")
        check_int("fqe_steps", self.fqe_steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_seed("seed", self.seed)


@dataclass
class OPEResult:
    episodes: int
    transitions: int
    fqe_initial_value: float
    critic_initial_value: float | None
    action_mse: float
    action_l1: float
    logged_initial_return: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        critic = "n/a" if self.critic_initial_value is None else f"{self.critic_initial_value:.3f}"
        return (f"held-out: {self.episodes} episodes, {self.transitions} transitions\n"
                f"FQE initial-state value     {self.fqe_initial_value:.3f}\n"
                f"policy critic initial value {critic}\n"
                f"logged discounted return    {self.logged_initial_return:.3f}\n"
                f"action MSE / L1 vs logged   {self.action_mse:.4f} / {self.action_l1:.4f}")


def off_policy_evaluate(config: OPEConfig) -> OPEResult:
    algo, meta = load_policy(config.policy, checkpoint=config.checkpoint)
    train = meta["train_config"]
    spec = MDPSpec(obs=train["obs"], frame_stack=train["frame_stack"], reward=train["reward"],
                   alpha=train["alpha"], beta=train["beta"])
    dataset, info = build_mdp(config.data, spec, config.mask)

    d3rlpy.seed(config.seed)
    encoder = VectorEncoderFactory(hidden_units=[256, 256]) if spec.obs == "state" else DrQPixelEncoderFactory()
    fqe = d3rlpy.ope.FQE(algo=algo, config=d3rlpy.ope.FQEConfig(
        encoder_factory=encoder, batch_size=config.batch_size, gamma=config.gamma,
        observation_scaler=algo.config.observation_scaler, action_scaler=algo.config.action_scaler))
    fqe.fit(dataset, n_steps=config.fqe_steps, n_steps_per_epoch=config.fqe_steps,
            logger_adapter=NoopAdapterFactory(), show_progress=config.show_progress)
    first = _initial_observations(dataset.episodes)
    first_actions = algo.predict(first)
    critic = None if train["algo"] == "bc" else float(algo.predict_value(first, first_actions).mean())

    squared, absolute, returns = [], [], []
    for episode in dataset.episodes:
        predicted = algo.predict(episode.observations)
        squared.append(((predicted - episode.actions) ** 2).mean(axis=1))
        absolute.append(np.abs(predicted - episode.actions).mean(axis=1))
        rewards = episode.rewards[:, 0]
        returns.append(float(np.sum(rewards * config.gamma ** np.arange(len(rewards)))))
    return OPEResult(
        episodes=info.episodes, transitions=info.transitions,
        fqe_initial_value=float(fqe.predict_value(first, first_actions).mean()), critic_initial_value=critic,
        action_mse=float(np.concatenate(squared).mean()), action_l1=float(np.concatenate(absolute).mean()),
        logged_initial_return=float(np.mean(returns)),
    )


def _initial_observations(episodes):
    """The first observation of every episode, batched (a list of batches for tuple observations).
    (d3rlpy's InitialStateValueEstimationEvaluator indexes tuple observations wrongly, hence our own.)"""
    if isinstance(episodes[0].observations, (list, tuple)):
        parts = len(episodes[0].observations)
        return [np.stack([ep.observations[i][0] for ep in episodes]) for i in range(parts)]
    return np.stack([ep.observations[0] for ep in episodes])
