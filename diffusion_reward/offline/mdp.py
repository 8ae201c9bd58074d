"""Our HDF5 dataset -> a d3rlpy replay buffer, with the reward of Eq. 5 built from the stored components.

Observations (what the policy sees; the exported policy rebuilds exactly this from raw frames):
- `state`: float32[D]
- `image`: uint8[3K, H, W], K frames stacked oldest first along channels; the first K-1 steps of an episode
  repeat the episode's first frame (the policy runner does the same after a reset)
- `both`:  the tuple (image, state); d3rlpy 2.x trains on tuple observations

Reward per step i (it scores the transition that starts at frame i, the same alignment as d3rlpy's reward
for (o_i, a_i, o_i+1)):  r = (1 - alpha) * r_ce_bar + alpha * r_rnd + beta * r_sparse.
r_ce_bar is the chosen label's standardised `reward`, r_sparse the dataset's `rewards`. Offline d3rlpy has
no hook to compute RND on its own batches, so r_rnd = 0 here; the diffusion term keeps its (1 - alpha) scale.

Episode ends: an episode that ended in success (last step done and solving the task) is terminal
(no bootstrap past it); any other end is a time limit / operator stop (timeout). d3rlpy keeps every step of
both kinds; a timeout episode's last step has no next observation, so it yields one transition fewer. The
counts are checked, never silently dropped.
"""
from __future__ import annotations

from . import legacy_gym  # noqa: F401, I001  (before d3rlpy: swallows legacy gym's import notice)

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import Episode, InfiniteBuffer, ReplayBuffer

from diffusion_reward.checks import check_int, check_memory, config_field
from diffusion_reward.errors import UserError
from diffusion_reward.reward.combine import RewardMix
from diffusion_reward.reward_types import REWARD_TYPES

OBS_MODES = ("state", "image", "both")
RESET_SEED_ATTRS = ("reset_seed", "episode_seed")  # episode attrs naming the sim layout (see offline.evaluate)
# --reward shorthand -> the label reward types it accepts (diffusion: whichever one the dataset carries)
LABEL_TYPES = {"diffusion": REWARD_TYPES, **{t: (t,) for t in REWARD_TYPES}}


@dataclass
class MDPSpec:
    """What an offline learner sees and is rewarded with; `train-policy` and `convert` carry these fields
    (`mdp_field`), so each is defined, documented and checked here once."""

    obs: str = config_field("image", "what the policy sees: camera frames, the state vector, or both",
                            choices=OBS_MODES)
    frame_stack: int = config_field(1, "frames stacked along channels for image observations (oldest first)",
                                    metavar="K")
    reward: str = config_field("diffusion", "reward label for Eq. 5: diffusion (the dataset's label of entropy, "
                                            "likelihood or likelihood_ratio type), one of those types, a label name, "
                                            "or sparse (beta * success only) (default: diffusion)", metavar="LABEL")
    alpha: float = config_field(0.95, "Eq. 5 weight of the RND term; the diffusion term gets (1 - alpha) and r_rnd = 0 "
                                      "on a fixed dataset. 0 puts the diffusion term at full weight (pen-like tasks) "
                                      "(default: 0.95)")
    beta: float = config_field(1.0, "Eq. 5 weight of the sparse success reward (default: 1)")

    def __post_init__(self):
        if self.obs not in OBS_MODES:
            raise UserError(f"`obs` must be one of {', '.join(OBS_MODES)}, got {self.obs!r}.")
        check_int("frame_stack", self.frame_stack, 1)
        RewardMix(self.alpha, self.beta)  # validates


def mdp_field(name: str, **override):
    """A config field carrying MDPSpec's option `name`: its default, help and flag settings, each overridable
    (`default=`, `help=`) where a command differs."""
    f = next(f for f in fields(MDPSpec) if f.name == name)
    default = override.pop("default", f.default)
    return field(default=default, metadata={**f.metadata, **override})


@dataclass
class MDPInfo:
    """What was built; saved in policy.json so the policy can be rebuilt and evaluated the same way."""
    source_dataset: str
    label: str | None
    label_attrs: dict[str, Any]
    reward_formula: str
    rnd: str
    episodes: int
    steps: int
    transitions: int
    terminal_episodes: int
    timeout_episodes: int
    clipped_action_values: int
    image_size: int | None
    state_dim: int | None
    action_dim: int
    env_args: dict[str, Any] = field(default_factory=dict)
    reset_seeds: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_label(dataset, reward: str, path) -> tuple[str | None, dict[str, Any]]:
    """Name and provenance attrs of the reward label `reward` refers to; (None, {}) for sparse."""
    if reward == "sparse":
        return None, {}
    per_episode = {}
    for ep in dataset:
        with ep:
            per_episode[ep.name] = {name: label["attrs"] for name, label in ep.reward_labels.items()}
    labels: dict[str, dict] = {}
    for episode_labels in per_episode.values():
        for name, attrs in episode_labels.items():
            labels.setdefault(name, attrs)
    if reward in labels:
        name = reward
    else:
        wanted = LABEL_TYPES.get(reward, ())
        matches = [n for n, a in labels.items() if a.get("reward_type") in wanted]
        present = ", ".join(f"{n} ({a.get('reward_type', '?')})" for n, a in labels.items()) or "none"
        if not matches:
            raise UserError(f"{path} has no reward label "
                            f"for `reward` {reward}; labels present: {present}; run `diffusion-reward relabel`.")
        if len(matches) > 1:
            raise UserError(f"`reward` {reward} matches several labels ({', '.join(matches)}); pass one by name.")
        name = matches[0]
    missing = [ep_name for ep_name, episode_labels in per_episode.items() if name not in episode_labels]
    if missing:
        raise UserError(f"reward label {name!r} is missing in {len(missing)} episode(s), e.g. {missing[0]}; "
                        "relabel the whole dataset.")
    return name, labels[name]


def frame_windows(images: np.ndarray, k: int) -> np.ndarray:
    """uint8[T, H, W, 3] -> uint8[T, k, H, W, 3]: step t holds frames t-k+1..t (oldest first), the episode's
    first frame repeated before its start. This is the exported policy's `image` input."""
    padded = np.concatenate([np.repeat(images[:1], k - 1, axis=0), images], axis=0)  # [T+k-1, H, W, 3]
    return np.stack([padded[j:j + len(images)] for j in range(k)], axis=1)


def stack_frames(images: np.ndarray, k: int) -> np.ndarray:
    """uint8[T, H, W, 3] -> uint8[T, 3k, H, W], the frame windows as d3rlpy's CHW channel stack."""
    windows = frame_windows(images, k)  # [T, k, H, W, 3]
    t, _, h, w, c = windows.shape
    return np.ascontiguousarray(windows.transpose(0, 1, 4, 2, 3).reshape(t, k * c, h, w))


def is_terminal(ep) -> bool:
    """An episode that ends in success (its last step is done and solved the task) is terminal; any other
    end (time limit, operator stop, a success that was lost again) is a timeout."""
    if "terminated" in ep.attrs:  # written by producers that know why the episode ended
        return bool(ep.attrs["terminated"])
    return bool(ep.success) and bool(np.asarray(ep.dones)[-1]) and float(np.asarray(ep.rewards)[-1]) > 0


def reset_seed(attrs: dict) -> int | None:
    """The sim layout seed of an episode (relabelled episodes carry their source episode's attributes)."""
    for key in RESET_SEED_ATTRS:
        if key in attrs:
            return int(attrs[key])
    return None


def episode_observations(ep, spec: MDPSpec, image_key: str = "image"):
    """The d3rlpy observation sequence of one episode (an array, or [image, state] for `both`)."""
    parts = []
    if spec.obs in ("image", "both"):
        parts.append(stack_frames(np.asarray(ep.obs[image_key]), spec.frame_stack))
    if spec.obs in ("state", "both"):
        if "state" not in ep.obs:
            raise UserError(f"episode {ep.name} has no 'state' observation; use `obs` image.")
        parts.append(np.asarray(ep.obs["state"], dtype=np.float32))
    return parts[0] if len(parts) == 1 else parts


def episode_rewards(ep, label: str | None, mix: RewardMix) -> np.ndarray:
    sparse = np.asarray(ep.rewards, dtype=np.float32)
    if label is None:
        return mix.beta * sparse
    stored = ep.reward_labels[label]["datasets"]
    if "reward" not in stored:
        raise UserError(f"reward label {label!r} of episode {ep.name} has no standardised 'reward' "
                        "(it was scored without statistics); run `diffusion-reward stats`, then relabel.")
    return mix.combine(diffusion=np.asarray(stored["reward"]), sparse=sparse)


def build_mdp(path: str | Path, spec: MDPSpec, mask: str | None = None) -> tuple[ReplayBuffer, MDPInfo]:
    """The replay buffer of all episodes (or of the robomimic filter key `mask`, e.g. "train")."""
    from diffusion_reward.data import Dataset

    with Dataset(path) as dataset:
        return _build(dataset, path, spec, mask)


def _build(dataset, path, spec: MDPSpec, mask: str | None) -> tuple[ReplayBuffer, MDPInfo]:
    dataset.require_complete()
    names = dataset.episode_names
    if mask is not None:
        if mask not in dataset.masks:
            raise UserError(f"{path} has no mask {mask!r}; masks present: {', '.join(dataset.masks) or 'none'}.")
        names = dataset.masks[mask]
    if not names:
        raise UserError(f"{path} has no episodes" + (f" under mask {mask!r}." if mask else "."))
    if spec.obs != "state" and dataset.image_key is None:
        raise UserError(f"{path} has no image observations; use `obs` state.")
    check_memory(_stacked_image_bytes(dataset, names, spec), f"`frame_stack` {spec.frame_stack} over {len(names)} "
                 "episodes", "use a smaller `frame_stack` (or train on fewer episodes with `mask`)")
    label, label_attrs = resolve_label(dataset, spec.reward, path)
    mix = RewardMix(spec.alpha, spec.beta)
    episodes, clipped, steps, terminal, seeds = [], 0, 0, 0, []
    for name in names:
        with dataset.episode(name) as ep:
            episodes.append(_episode(ep, spec, label, mix, dataset.image_key))
            seed = reset_seed(ep.attrs)
            if seed is not None:
                seeds.append(int(seed))
            if name == names[0]:
                image_key = dataset.image_key
                image_size = int(ep.obs[image_key].shape[1]) if image_key in ep.obs else None
                state_dim = int(ep.obs["state"].shape[1]) if "state" in ep.obs else None
                action_dim = int(ep.actions.shape[1])
            clipped += int(np.count_nonzero(np.abs(ep.actions) > 1.0))
        steps += episodes[-1].actions.shape[0]
        terminal += int(episodes[-1].terminated)
    buffer = ReplayBuffer(InfiniteBuffer(), episodes=episodes, action_space=ActionSpace.CONTINUOUS,
                          action_size=action_dim)  # never guessed from the values: all-integer actions are no code
    expected = steps - (len(episodes) - terminal)
    assert buffer.transition_count == expected, (buffer.transition_count, expected)  # no step silently dropped
    info = MDPInfo(
        source_dataset=str(Path(path).resolve()),
        label=label,
        label_attrs=label_attrs,
        reward_formula=("beta * r_sparse" if label is None else
                        "(1 - alpha) * r_ce_bar + alpha * r_rnd + beta * r_sparse, r_rnd = 0"),
        rnd="off: offline d3rlpy cannot compute the online RND bonus on its batches, so r_rnd = 0 "
            "(the diffusion term keeps its (1 - alpha) scale, as stored in the paper)",
        episodes=len(episodes), steps=steps, transitions=buffer.transition_count,
        terminal_episodes=terminal, timeout_episodes=len(episodes) - terminal,
        clipped_action_values=clipped, image_size=image_size, state_dim=state_dim, action_dim=action_dim,
        env_args=dict(dataset.env_args), reset_seeds=sorted(set(seeds)),
    )
    return buffer, info


def _stacked_image_bytes(dataset, names: list[str], spec: MDPSpec) -> int:
    """Bytes of the stacked image observations the replay buffer will hold (0 for state observations)."""
    if spec.obs == "state":
        return 0
    steps = 0
    for name in names:
        with dataset.episode(name) as ep:
            steps += ep.num_samples
    return steps * spec.frame_stack * int(np.prod(dataset.obs_keys[dataset.image_key]["shape"]))


def _episode(ep, spec: MDPSpec, label: str | None, mix: RewardMix, image_key: str | None) -> Episode:
    ep.require_steps()
    actions = np.asarray(ep.actions, dtype=np.float32)
    if not len(actions) == len(ep.rewards) == ep.num_samples:
        raise UserError(f"episode {ep.name} has {ep.num_samples} steps but {len(actions)} actions and "
                        f"{len(ep.rewards)} rewards.")
    return Episode(
        observations=episode_observations(ep, spec, image_key),
        actions=np.clip(actions, -1.0, 1.0),  # the action space is [-1, 1]; tanh policies cannot exceed it
        rewards=episode_rewards(ep, label, mix)[:, None],
        terminated=is_terminal(ep),
    )
