"""Reward labeller node: per-frame latency and how many camera frames it keeps up with.

    .venv/bin/python bench/bench_labeller.py [--presets tiny small paper] [--frames 20] [--camera-hz 30]

For each preset (random weights, statistics set) and precision, runs the labeller node on the in-process
transport: first synchronous (every frame scored: latency = the model's cost per frame, 640x480 rgb8 in,
conversion + crop + resize + streaming reward), then live (worker thread, queue_size 1) with a camera
publishing at `--camera-hz` for `--frames` frames, which shows the fraction of frames the node drops.
One warm-up frame per run is not timed.
Prints one table row per configuration. Uses the torch threads it is given (set OMP_NUM_THREADS).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from diffusion_reward.scoring_options import ScoreConfig


def run(preset: str, dtype: str, frames: int, camera_hz: float, skip_step: int, workdir: Path) -> dict:
    from diffusion_reward.models import RewardModel
    from diffusion_reward.msgs import Image, Vector3Stamped
    from diffusion_reward.data.frames import rgb_to_image
    from diffusion_reward.nodes.reward_labeller import RewardLabellerNode
    from diffusion_reward.transport import SENSOR_DATA_QOS
    from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

    model = RewardModel.from_preset(preset, seed=0)
    model.set_stats("bench", "entropy", skip_step, 1, mean=0.0, std=1.0)
    path = str(model.save(workdir / f"{preset}.safetensors"))
    rng = np.random.default_rng(0)
    images = [rgb_to_image(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), i * 10**9 // 30, "cam")
              for i in range(frames)]
    row = {"preset": preset, "dtype": dtype}
    for mode in ("synchronous", "live"):
        bus = InProcessBus()
        camera = InProcessTransport("camera", bus)
        pub = camera.create_publisher(Image, "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
        rewards = []
        camera.create_subscription(Vector3Stamped, "/reward_labeller/reward", rewards.append)
        node = RewardLabellerNode(InProcessTransport("reward_labeller", bus, params={
            "model_path": path, "task": "bench", "skip_step": skip_step, "dtype": dtype,
            "synchronous": mode == "synchronous", "queue_size": 1}))
        pub.publish(images[0])  # warm-up (lazy initialisation, caches): not timed
        bus.spin_until_idle()
        node.wait_idle(600)
        bus.spin_until_idle()
        rewards.clear()
        node.processed = node.skipped = node.received = 0
        start = time.perf_counter()
        for i, image in enumerate(images):
            pub.publish(image)
            bus.spin_until_idle()
            if mode == "live":  # a camera does not wait for the model
                time.sleep(max(0.0, start + (i + 1) / camera_hz - time.perf_counter()))
        node.wait_idle(600)
        elapsed = time.perf_counter() - start
        bus.spin_until_idle()
        node.close()
        latency_ms = np.array([r.vector.z for r in rewards]) * 1000
        if mode == "synchronous":
            row.update(sync_fps=frames / elapsed, p50_ms=np.percentile(latency_ms, 50),
                       p99_ms=np.percentile(latency_ms, 99))
        else:
            row.update(live_scored=node.processed, live_dropped=node.skipped,
                       live_p50_ms=np.percentile(latency_ms, 50))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--camera-hz", type=float, default=30.0)
    parser.add_argument("--skip-step", type=int, default=ScoreConfig.skip_step)
    args = parser.parse_args()
    import torch

    print(f"torch threads: {torch.get_num_threads()}, frames: {args.frames}, camera: {args.camera_hz:g} Hz, "
          f"skip_step: {args.skip_step}, input 640x480 rgb8")
    header = (f"{'preset':<8}{'dtype':<10}{'sync fps':>9}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'live scored':>13}{'dropped':>9}{'live p50 ms':>13}")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for dtype in args.dtypes:
                r = run(preset, dtype, args.frames, args.camera_hz, args.skip_step, Path(tmp))
                print(f"{r['preset']:<8}{r['dtype']:<10}{r['sync_fps']:>9.2f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                      f"{r['live_scored']:>13d}{r['live_dropped']:>9d}{r['live_p50_ms']:>13.1f}")


if __name__ == "__main__":
    main()
