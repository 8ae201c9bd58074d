"""Dataset writer/reader speed and size per image compression, on real MetaWorld frames.

    .venv/bin/python bench/bench_dataset.py [--task button-press-v3] [--episodes 10] [--steps 200]

Renders one expert episode once (MuJoCo), then writes `--episodes` copies of it step by step through
`DatasetWriter` for each compression, and reads every image back through `Dataset`. Prints a table:
steps/s written (incl. the per-episode fsync + rename + index rewrite), MB on disk, steps/s read; then
the end_episode (commit) latency as the dataset grows.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def render_episode(task: str, steps: int, seed: int) -> dict[str, np.ndarray]:
    from diffusion_reward.sim import make_env, make_policy

    env = make_env(task, seed=seed, image_size=64, action_repeat=2)
    policy = make_policy(task, env, epsilon=0.25, seed=seed)
    obs = env.reset(seed=seed)
    images, states, actions = [], [], []
    for _ in range(steps):
        action = np.asarray(policy(obs), np.float32)
        images.append(obs["image"])
        states.append(obs["state"])
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:  # keep rendering real frames until `steps` are collected
            obs = env.reset(seed=seed + len(images))
    env.close()
    return {"image": np.stack(images), "state": np.stack(states), "actions": np.stack(actions)}


def bench(episode: dict[str, np.ndarray], episodes: int, compression: str | None, folder: Path) -> dict:
    from diffusion_reward.data import Dataset, DatasetWriter

    path = folder / f"{compression}.hdf5"
    steps = len(episode["actions"])
    start = time.perf_counter()
    with DatasetWriter(path, env_args={"task": "bench", "image_size": 64}, compression=compression) as writer:
        for _ in range(episodes):
            stream = writer.begin_episode()
            for t in range(steps):
                stream.add_step(obs={"image": episode["image"][t], "state": episode["state"][t]},
                                action=episode["actions"][t], timestamp=t * 0.05)
            writer.end_episode(stream, success=True)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    with Dataset(path) as ds:
        for ep in ds:
            with ep:
                assert ep.obs["image"][()].shape == (steps, 64, 64, 3)
    read_s = time.perf_counter() - start
    total = episodes * steps
    return {"compression": str(compression), "write steps/s": total / write_s,
            "MB": _dataset_mb(path),
            "read steps/s": total / read_s}


def commit_latency(folder: Path, sizes: list[int]) -> list[tuple[int, float]]:
    """end_episode time (fsync, rename, index rewrite) as the dataset grows: the index is O(episodes)."""
    from diffusion_reward.data import DatasetWriter

    rows = []
    with DatasetWriter(folder / "commit.hdf5", env_args={"task": "bench", "image_size": 8}) as writer:
        for count in range(1, max(sizes) + 1):
            stream = writer.begin_episode()
            stream.add_step(obs={"image": np.zeros((8, 8, 3), np.uint8)})
            start = time.perf_counter()
            writer.end_episode(stream)
            if count in sizes:
                rows.append((count, (time.perf_counter() - start) * 1e3))
    return rows


def _dataset_mb(path: Path) -> float:
    files = [path, *path.with_name(path.name + ".episodes").glob("*.h5")]
    return sum(p.stat().st_size for p in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="button-press-v3")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commit-sizes", default="10,100,1000",
                        help="dataset sizes (episodes) at which to time end_episode")
    args = parser.parse_args()

    episode = render_episode(args.task, args.steps, args.seed)
    raw_mb = episode["image"].nbytes * args.episodes / 1e6
    rows = []
    sizes = sorted(int(n) for n in args.commit_sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("lzf", "gzip", None):
            rows.append(bench(episode, args.episodes, compression, Path(tmp)))
        latencies = commit_latency(Path(tmp), sizes)
    print(f"{args.episodes} episodes x {args.steps} steps of {args.task} 64x64 frames "
          f"(raw images {raw_mb:.1f} MB); gzip = level 1")
    print(f"{'compression':<12} {'write steps/s':>14} {'MB on disk':>11} {'read steps/s':>13}")
    for row in rows:
        print(f"{row['compression']:<12} {row['write steps/s']:>14.0f} {row['MB']:>11.2f} {row['read steps/s']:>13.0f}")
    print()
    print(f"{'episodes in dataset':<20} {'end_episode ms':>15}")
    for count, ms in latencies:
        print(f"{count:<20} {ms:>15.1f}")


if __name__ == "__main__":
    main()
