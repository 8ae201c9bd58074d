"""Evaluate a policy in simulation through its exported TorchScript: what is evaluated is what the robot runs.

"Seen" vs "unseen" positions: MetaWorld draws the object/goal layout (for button-press, the button
position) from the reset seed, so a layout is identified by its reset seed.
- seen:   reset seeds of the training episodes (recorded in policy.json); the policy saw these layouts.
- unseen: reset seeds drawn from [UNSEEN_SEED_BASE, 2 * UNSEEN_SEED_BASE), minus any seen seed: new
          layouts from the same randomisation ranges (interpolation, not extrapolation).
Success rate comes with a 95% Wilson score interval (sound for small N and rates near 0 or 1).
"""
from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from diffusion_reward.checks import check_int, check_seed, config_field
from diffusion_reward.errors import UserError

from .policy_folder import load_exported

UNSEEN_SEED_BASE = 1_000_000
POSITIONS = ("seen", "unseen")


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def evaluation_seeds(positions: str, episodes: int, seed: int, seen_seeds: list[int]) -> list[int]:
    """Reset seeds of the evaluation episodes (see the module docstring for seen / unseen)."""
    rng = np.random.default_rng(seed)
    if positions == "seen":
        if not seen_seeds:
            raise UserError("the policy's training data recorded no reset seeds, so `positions` seen is "
                            "undefined; use `positions` unseen.")
        order = rng.permutation(len(seen_seeds))
        return [int(seen_seeds[order[i % len(order)]]) for i in range(episodes)]
    if positions != "unseen":
        raise UserError(f"`positions` must be one of {', '.join(POSITIONS)}, got {positions!r}.")
    seen, seeds = set(seen_seeds), []
    while len(seeds) < episodes:
        s = int(rng.integers(UNSEEN_SEED_BASE, 2 * UNSEEN_SEED_BASE))
        if s not in seen and s not in seeds:
            seeds.append(s)
    return seeds


@dataclass
class SimEvalConfig:
    """What `evaluate` does in simulation; its fields are the command's flags (`cli/config_args.py`)."""

    policy: str = config_field(MISSING, "train-policy folder (uses its export/) or export folder", metavar="POLICY")
    task: str | None = config_field(None, "task to run (default: the policy's training task)")
    episodes: int = config_field(10, "simulated episodes (one reset seed each)")
    seed: int = config_field(0, "seed that draws the evaluation layouts (reset seeds) and seeds off-policy FQE")
    positions: str = config_field("unseen", "layouts (reset seeds) from the training data, or new ones",
                                  choices=POSITIONS)
    video: str | None = config_field(None, "write the episodes to an mp4", metavar="OUT.mp4")
    max_steps: int | None = config_field(None, "episode length (default: the task's)")
    show_progress: bool = True

    def __post_init__(self):
        check_int("episodes", self.episodes, 1)
        check_seed("seed", self.seed)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 1)


@dataclass
class SimEvalResult:
    task: str
    positions: str
    episodes: int
    successes: int
    success_rate: float
    ci95: tuple[float, float]
    reset_seeds: list[int] = field(default_factory=list)
    episode_success: list[bool] = field(default_factory=list)
    episode_steps: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.task} ({self.positions} positions): success {self.successes}/{self.episodes} = "
                f"{self.success_rate:.2f}, 95% CI [{self.ci95[0]:.2f}, {self.ci95[1]:.2f}]")


class FrameWindow:
    """The exported policy's inputs from a stream of observations; the first frame fills the window."""

    def __init__(self, k: int):
        self.frames: deque = deque(maxlen=k)

    def reset(self, obs: dict) -> None:
        self.frames.clear()
        self.frames.extend([obs["image"]] * self.frames.maxlen)

    def push(self, obs: dict) -> None:
        self.frames.append(obs["image"])

    def inputs(self, obs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(np.stack(self.frames)[None])  # u8[1, K, H, W, 3]
        state = torch.from_numpy(np.asarray(obs["state"], dtype=np.float32)[None])  # f32[1, D]
        return image, state


def evaluate_in_sim(config: SimEvalConfig) -> SimEvalResult:
    from diffusion_reward.sim import make_env

    policy, meta = load_exported(config.policy)
    task = config.task or meta.get("task")
    if not task:
        raise UserError("the policy does not record its task; pass `task`.")
    seen = meta.get("training_reset_seeds") or []
    seeds = evaluation_seeds(config.positions, config.episodes, config.seed, seen)
    env = make_env(task, seed=config.seed, image_size=meta.get("image_size") or 64,
                   action_repeat=meta.get("action_repeat") or 2, max_episode_steps=config.max_steps,
                   terminate_on_success=True)
    window, frames, results, lengths = FrameWindow(meta["frame_stack"]), [], [], []
    with env, torch.no_grad():
        for reset_seed in tqdm(seeds, desc=f"evaluate {task}", unit="episode", disable=not config.show_progress):
            obs = env.reset(seed=reset_seed)
            window.reset(obs)
            success, steps, done = False, 0, False
            while not done:
                if config.video:
                    frames.append(obs["image"])
                action = policy(*window.inputs(obs))[0].numpy()
                obs, _, terminated, truncated, info = env.step(action)
                window.push(obs)
                success |= bool(info["success"])
                steps += 1
                done = terminated or truncated
            results.append(success)
            lengths.append(steps)
    if config.video:
        write_video(config.video, frames, fps=max(1, round(1.0 / env.control_dt)))
    k = int(sum(results))
    return SimEvalResult(task=task, positions=config.positions, episodes=len(results), successes=k,
                         success_rate=k / len(results), ci95=wilson_interval(k, len(results)),
                         reset_seeds=seeds, episode_success=results, episode_steps=lengths)


def write_video(path: str, frames: list[np.ndarray], fps: int, upscale: int = 4) -> None:
    """mp4 (H.264 via imageio-ffmpeg), frames scaled up `upscale`x (nearest) so 64x64 is watchable."""
    import imageio.v2 as imageio

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".partial" + out.suffix)
    with imageio.get_writer(str(tmp), fps=fps, codec="libx264", macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(np.repeat(np.repeat(frame, upscale, axis=0), upscale, axis=1))
    os.replace(tmp, out)
