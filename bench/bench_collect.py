"""Simulation speed and scripted-expert quality.

    python bench/bench_collect.py                       # paper tasks + Adroit, 5 episodes each
    python bench/bench_collect.py --tasks reach-v3 --episodes 10 --frames 200

Table 1: agent steps per second at 64x64 (step with action repeat 2 + render), wall clock and per
CPU-second (the machine may be shared; CPU time counts all of this process's threads, llvmpipe's too).
Table 2: expert success rate per task (`--episodes` seeded episodes, stop at success) and the mean
number of agent steps to success.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

PAPER_TASKS = ["assembly-v3", "button-press-v3", "button-press-topdown-v3", "coffee-push-v3", "dial-turn-v3",
               "door-close-v3", "door-open-v3", "drawer-open-v3", "lever-pull-v3", "peg-unplug-side-v3",
               "reach-v3"]
ADROIT_TASKS = ["adroit-door", "adroit-hammer", "adroit-pen", "adroit-relocate"]


def render_speed(task: str, frames: int, image_size: int) -> tuple[float, float]:
    from diffusion_reward.sim import make_env, make_policy

    with make_env(task, seed=0, image_size=image_size) as env:
        policy = make_policy(task, env, epsilon=1.0, seed=0)  # actions are cheap either way
        obs = env.reset(seed=0)
        env.step(policy(obs))  # GL context creation is not part of the steady state
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(frames):
            obs, _, _, truncated, _ = env.step(policy(obs))
            if truncated:
                obs = env.reset()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return frames / wall, frames / cpu


def expert_success(task: str, episodes: int) -> tuple[float, float]:
    from diffusion_reward.sim import make_env, make_policy

    with make_env(task, seed=0, terminate_on_success=True, render=False) as env:
        policy = make_policy(task, env, epsilon=0.0, seed=0)
        results, steps_to_success = [], []
        for episode in range(episodes):
            obs, done, steps = env.reset(seed=episode), False, 0
            policy.reset(episode)
            while not done:
                obs, _, terminated, truncated, _ = env.step(policy(obs))
                done, steps = terminated or truncated, steps + 1
            results.append(terminated)
            if terminated:
                steps_to_success.append(steps)
    return float(np.mean(results)), float(np.mean(steps_to_success)) if steps_to_success else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=None, help="default: the paper's MetaWorld tasks + Adroit")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--frames", type=int, default=100, help="agent steps timed per task")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    from diffusion_reward.sim import task_spec

    tasks = args.tasks or PAPER_TASKS + ADROIT_TASKS
    print(f"| task | steps/s (wall) | steps/s (per CPU-s) | expert success ({args.episodes} ep) | steps to success |")
    print("|---|---|---|---|---|")
    for task in tasks:
        wall_fps, cpu_fps = render_speed(task, args.frames, args.image_size)
        if task_spec(task).has_expert:
            rate, steps = expert_success(task, args.episodes)
            quality = f"{rate:.0%} | {steps:.1f}"
        else:
            quality = "no scripted expert | -"
        print(f"| {task} | {wall_fps:.0f} | {cpu_fps:.0f} | {quality} |", flush=True)


if __name__ == "__main__":
    main()
