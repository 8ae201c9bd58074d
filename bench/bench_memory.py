"""Peak memory (RSS) of `score --data`, `relabel` and the reward labeller node against episode length.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_memory.py [--frames 500 5000 50000] [--json bench_memory.json]

Writes one synthetic episode per length (64x64 frames at the model's resolution, a 39-d state, 4-d actions)
into an HDF5 dataset, then runs each case in a fresh subprocess and reads that child's peak RSS
(`ru_maxrss` from `os.wait4`): `diffusion-reward score --data` (all episodes -> .npz), `diffusion-reward
relabel` (HDF5 source -> new dataset) and the labeller node (synchronous, in-process transport, one 64x64
rgb8 Image per frame, generated on the fly). Model: the `tiny` preset with random weights and statistics
set; scoring runs the real code path with the fastest settings (skip step 98: 2 network evaluations per
row). The last column is the growth from the shortest to the longest episode; the same case varies by about
+-5 % from run to run (the codec's batch of TOKENIZE_BATCH frames and its activations set the peak).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TASK = "bench-task"
REWARD_TYPE = "likelihood"  # the shipped models' type: rows wait k frames for their successor
SKIP_STEP = 98  # 100 diffusion steps -> evaluations at t = 99 and 0
IMAGE_SIZE = 64
STATE_DIM, ACTION_DIM = 39, 4
SLAB = 1000  # synthetic frames generated at a time
TOPIC = "/camera/camera/color/image_raw"
CASES = ("score", "relabel", "labeller")


def synthetic_frames(start: int, count: int) -> np.ndarray:
    """u8[count,64,64,3]: a fixed gradient with a square that moves with the frame number (compresses like video)."""
    ramp = np.linspace(0, 255, IMAGE_SIZE, dtype=np.float32)
    base = np.stack([ramp[None, :].repeat(IMAGE_SIZE, 0), ramp[:, None].repeat(IMAGE_SIZE, 1),
                     np.full((IMAGE_SIZE, IMAGE_SIZE), 96.0)], -1).astype(np.uint8)
    frames = np.repeat(base[None], count, 0)
    for j, i in enumerate(range(start, start + count)):
        y, x = (i // 7) % (IMAGE_SIZE - 8), (i * 3) % (IMAGE_SIZE - 8)
        frames[j, y:y + 8, x:x + 8] = 255
    return frames


def write_dataset(path: Path, frames: int) -> Path:
    from diffusion_reward.data import DatasetWriter

    with DatasetWriter(path, env_args={"task": TASK, "image_size": IMAGE_SIZE}) as writer:
        episode = writer.begin_episode()
        for start in range(0, frames, SLAB):
            n = min(SLAB, frames - start)
            steps = np.arange(start, start + n)
            episode.append({"obs/image": synthetic_frames(start, n),
                            "obs/state": np.repeat(np.sin(steps / 50.0)[:, None], STATE_DIM, 1).astype(np.float32),
                            "actions": np.repeat(np.cos(steps / 50.0)[:, None], ACTION_DIM, 1).astype(np.float32),
                            "rewards": np.zeros(n, np.float32), "dones": (steps == frames - 1).astype(np.uint8),
                            "timestamps": steps / 20.0})
        writer.end_episode(episode, success=True)
    return path


def write_model(path: Path) -> Path:
    from diffusion_reward.models import RewardModel

    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, REWARD_TYPE, SKIP_STEP, 1, mean=0.0, std=1.0)
    return model.save(path)


def case_command(case: str, frames: int, model: Path, data: Path, work: Path) -> list[str]:
    scoring = ["--model", str(model), "--task", TASK, "--reward-type", REWARD_TYPE, "--skip-step", str(SKIP_STEP)]
    cli = [sys.executable, "-m", "diffusion_reward"]
    if case == "score":
        return cli + ["score", "--data", str(data), "--out", str(work / f"score_{frames}.npz"), *scoring]
    if case == "relabel":
        return cli + ["relabel", "--input", str(data), "--out", str(work / f"relabel_{frames}.hdf5"), *scoring]
    return [sys.executable, __file__, "--labeller-child", str(frames), "--model", str(model)]


def peak_rss_mb(command: list[str], log: Path) -> tuple[float, float]:
    """(peak RSS of the child in MB, seconds); raises with the child's last output if it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    with open(log, "wb") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({child.returncode}):\n{log.read_text()[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # Linux: ru_maxrss in KiB


def labeller_child(frames: int, model: str) -> None:
    """Publish `frames` synthetic images to a synchronous labeller; every one must come back as a reward."""
    import torch

    from diffusion_reward.msgs import Image, Vector3Stamped
    from diffusion_reward.data.frames import rgb_to_image
    from diffusion_reward.nodes.reward_labeller import RewardLabellerNode
    from diffusion_reward.transport import SENSOR_DATA_QOS
    from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

    torch.set_num_threads(1)
    bus = InProcessBus()
    camera = InProcessTransport("camera", bus)
    image_pub = camera.create_publisher(Image, TOPIC, SENSOR_DATA_QOS)
    rewards = []
    camera.create_subscription(Vector3Stamped, "/reward_labeller/reward", lambda _msg: rewards.append(None))
    node = RewardLabellerNode(InProcessTransport("reward_labeller", bus, params={
        "model_path": model, "task": TASK, "reward_type": REWARD_TYPE, "skip_step": SKIP_STEP, "synchronous": True}))
    for start in range(0, frames, SLAB):
        for i, frame in enumerate(synthetic_frames(start, min(SLAB, frames - start)), start):
            image_pub.publish(rgb_to_image(frame, 10**9 + i * 50_000_000, "cam"))
            bus.spin_until_idle()
    node.close()
    bus.spin_until_idle()
    if len(rewards) != frames:
        raise SystemExit(f"labeller published {len(rewards)} rewards for {frames} frames")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--json", type=Path, default=Path("bench_memory.json"), help="results file")
    parser.add_argument("--work", type=Path, help="folder for datasets and outputs (default: a temporary one)")
    parser.add_argument("--labeller-child", type=int, metavar="FRAMES", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.labeller_child is not None:
        labeller_child(args.labeller_child, args.model)
        return 0

    command = shlex.join(["OMP_NUM_THREADS=1", sys.executable, *sys.argv])
    settings = {"preset": "tiny", "image": f"{IMAGE_SIZE}x{IMAGE_SIZE} rgb8", "reward_type": REWARD_TYPE,
                "skip_step": SKIP_STEP, "num_samples": 1, "chunk_size": 64, "threads": 1}
    print(f"command: {command}")
    print("settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = write_model(work / "tiny.safetensors")
        for frames in args.frames:
            data = write_dataset(work / f"episode_{frames}.hdf5", frames)
            for case in args.cases:
                rss, seconds = peak_rss_mb(case_command(case, frames, model, data, work), work / f"{case}_{frames}.log")
                results.append({"case": case, "frames": frames, "peak_rss_mb": round(rss, 1),
                                "seconds": round(seconds, 1)})
                print(f"  {case:<9}{frames:>7} frames: {rss:7.1f} MB peak RSS, {seconds:6.1f} s", flush=True)
    print_table(command, results, args.frames, args.cases)
    load = os.getloadavg()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in load)}")
    args.json.write_text(json.dumps({"command": command, "settings": settings, "load_average_end": load,
                                     "results": results}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def print_table(command: str, results: list[dict], lengths: list[int], cases: list[str]) -> None:
    rss = {(r["case"], r["frames"]): r["peak_rss_mb"] for r in results}
    header = f"{'peak RSS (MB)':<15}" + "".join(f"{f'{n} frames':>15}" for n in lengths) + f"{'growth':>9}"
    print(f"\n{command}\n{header}\n" + "-" * len(header))
    for case in cases:
        first, last = rss[case, lengths[0]], rss[case, lengths[-1]]
        print(f"{case:<15}" + "".join(f"{rss[case, n]:>15.1f}" for n in lengths) + f"{(last / first - 1):>9.1%}")


if __name__ == "__main__":
    sys.exit(main())
