"""Relabelling throughput: reading + synchronising rosbag2 recordings, end-to-end `relabel`, and scale-out.

    .venv/bin/python bench/bench_relabel.py [--frames 300] [--width 640 --height 480] [--preset tiny]
    .venv/bin/python bench/bench_relabel.py --scale-out --ranks 1,2 --episodes 8 --episode-frames 60

Writes a synthetic recording (camera at 30 Hz with stamp jitter, JointState at 200 Hz) with rosbags in
mcap and sqlite3 storage, then prints one table row per measurement. Frames are random noise, the worst
case for PNG; raw rgb8 is what realsense-ros publishes.

`--scale-out`: an HDF5 dataset of --episodes episodes relabelled by 1, 2, ... processes (torchrun, one thread
each; `offline/relabel_shards.py`), the rank counts alternating over --rounds rounds, against the scorer's own
streaming rate (one frame pushed at a time, one thread) measured in the same run; every sharded output is checked
equal to the one-process output.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from diffusion_reward.data import Dataset, DatasetWriter
from diffusion_reward.data.sources import open_source
from diffusion_reward.models import RewardModel
from diffusion_reward.offline.relabel import RelabelConfig, relabel
from diffusion_reward.reward import RewardScorer, ScoreConfig

TASK = "bench-task"


def write_recording(path: Path, storage, frames: int, width: int, height: int, seed: int = 0) -> Path:
    ts = get_typestore(Stores.ROS2_HUMBLE)
    rng = np.random.default_rng(seed)
    Image, JointState = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/JointState"]
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]

    def header(t):
        return Header(stamp=Time(sec=int(t), nanosec=int((t % 1) * 1e9)), frame_id="cam")

    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8).reshape(-1)
    messages = []
    for i in range(frames):
        t = 1000.0 + i / 30 + rng.uniform(-0.003, 0.003)
        messages.append(("/camera/camera/color/image_raw", Image.__msgtype__, t, Image(
            header=header(t), height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
            data=np.roll(image, i))))
    for k in range(int(frames / 30 * 200)):
        t = 1000.0 + k / 200
        messages.append(("/franka/joint_states", JointState.__msgtype__, t, JointState(
            header=header(t), name=[f"fr3_joint{j}" for j in range(1, 8)], position=np.full(7, t),
            velocity=np.zeros(7), effort=np.zeros(0))))
    with Writer(path, version=8, storage_plugin=storage) as writer:
        connections = {}
        for topic, msgtype, t, msg in sorted(messages, key=lambda m: m[2]):
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=ts)
            writer.write(connections[topic], int(t * 1e9), ts.serialize_cdr(msg, msgtype))
    return path


def streaming_fps(model_path: Path, frames: np.ndarray) -> float:
    """The scorer's own rate with one frame pushed at a time (what the labeller node does), one thread."""
    torch.set_num_threads(1)
    stream = RewardScorer(RewardModel.load(model_path), ScoreConfig(task=TASK)).stream()
    stream.push(frames[0])
    started = time.perf_counter()
    for f in frames[1:]:
        stream.push(f)
    return (len(frames) - 1) / (time.perf_counter() - started)


def labels(path: Path) -> list[np.ndarray]:
    with Dataset(path) as ds:
        return [np.asarray(ep.reward_labels["entropy"]["datasets"]["raw"]) for ep in ds]


def scale_out(args, tmp: Path, model_path: Path) -> int:
    rng = np.random.default_rng(0)
    data = tmp / "episodes.hdf5"
    with DatasetWriter(data, env_args={"task": TASK, "image_size": 64}) as w:
        for _ in range(args.episodes):
            w.write_episode(obs={"image": rng.integers(0, 256, (args.episode_frames, 64, 64, 3), dtype=np.uint8)})
    frames = args.episodes * args.episode_frames
    ranks = [int(r) for r in args.ranks.split(",")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    seconds: dict[int, list[float]] = {r: [] for r in ranks}
    stream = []
    reference = None
    for round_ in range(args.rounds):
        stream.append(streaming_fps(model_path, np.asarray(rng.integers(0, 256, (24, 64, 64, 3), dtype=np.uint8))))
        for r in ranks:
            out = tmp / f"out_{r}_{round_}.hdf5"
            launcher = ([sys.executable, "-m", "diffusion_reward"] if r == 1 else
                        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(r),
                         "-m", "diffusion_reward"])
            started = time.perf_counter()
            subprocess.run([*launcher, "relabel", "--model", str(model_path), "--input", str(data), "--out", str(out),
                            "--task", TASK], env=env, check=True, capture_output=True)
            seconds[r].append(time.perf_counter() - started)
            result = labels(out)
            reference = reference or result
            assert all(np.array_equal(a, b) for a, b in zip(result, reference)), f"{r} ranks: different rewards"
    base = np.median(seconds[ranks[0]])
    print(f"\n{args.episodes} episodes x {args.episode_frames} frames, {args.preset} preset, entropy, skip 9; one thread "
          f"per process, medians of {args.rounds} rounds (process start and model load included); load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"| {'processes':<10} | {'seconds':>8} | {'frames/s':>9} | {'speed-up':>8} | {'vs streaming':>12} |")
    print(f"|{'-' * 12}|{'-' * 10}|{'-' * 11}|{'-' * 10}|{'-' * 14}|")
    for r in ranks:
        sec = float(np.median(seconds[r]))
        print(f"| {r:<10} | {sec:>8.1f} | {frames / sec:>9.1f} | {base / sec:>7.2f}x | "
              f"{frames / sec / np.median(stream):>11.2f}x |")
    print(f"streaming (push one frame at a time, one thread): {np.median(stream):.1f} frames/s; every sharded "
          "output has the one-process rewards")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--scale-out", action="store_true", help="relabel with 1, 2, ... torchrun processes instead")
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--episode-frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.scale_out:
        with tempfile.TemporaryDirectory() as tmp:
            model = RewardModel.from_preset(args.preset, seed=0)
            model.set_stats(TASK, "entropy", 9, 1, mean=0.0, std=1.0)
            return scale_out(args, Path(tmp), model.save(Path(tmp) / "model.safetensors"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = RewardModel.from_preset(args.preset, seed=0)
        model.set_stats(TASK, "entropy", 9, 1, mean=0.0, std=1.0)
        model_path = model.save(tmp / "model.safetensors")
        for storage in (StoragePlugin.MCAP, StoragePlugin.SQLITE3):
            started = time.perf_counter()
            bag = write_recording(tmp / f"bag_{storage.name.lower()}", storage, args.frames, args.width, args.height)
            write_s = time.perf_counter() - started
            started = time.perf_counter()
            [episode] = list(open_source(bag))
            read_s = time.perf_counter() - started
            rows.append((f"read+sync {storage.name.lower()}", len(episode.frames), read_s, f"write {write_s:.2f} s"))
        started = time.perf_counter()
        summary = relabel(RelabelConfig(model=str(model_path), input=str(bag), out=str(tmp / "out.hdf5"),
                                        task=TASK, resize=True, progress=False))
        rows.append((f"relabel --resize ({args.preset})", summary.frames, time.perf_counter() - started,
                     f"{args.threads} torch thread(s)"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.frames} frames {args.width}x{args.height} rgb8 @30 Hz + JointState @200 Hz; peak RSS {peak_mb:.0f} MB")
    print(f"| {'step':<28} | {'frames':>6} | {'seconds':>8} | {'frames/s':>9} | note")
    print(f"|{'-' * 30}|{'-' * 8}|{'-' * 10}|{'-' * 11}|------")
    for name, frames, seconds, note in rows:
        print(f"| {name:<28} | {frames:>6} | {seconds:>8.2f} | {frames / seconds:>9.1f} | {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
