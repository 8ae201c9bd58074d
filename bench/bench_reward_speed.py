"""Reward scoring speed per preset, video model and dtype (random weights). Diffusion Reward (vqdiffusion):
entropy mode, skip 9 = 11 network evaluations; VIPER (videogpt): its likelihood, one teacher-forced pass per frame.

    .venv/bin/python bench/bench_reward_speed.py                 # tiny, small, paper; both models; fp32 and bf16
    .venv/bin/python bench/bench_reward_speed.py --presets paper --frames 32 --device cuda

Prints a table: batch frames/s (one episode of --frames frames scored in one call), streaming p50 / p99 ms per pushed
frame (push API, context cached, --stream-frames pushes),
GFLOP per frame (torch.utils.flop_counter: 2 per multiply-add; encode + chain, context K/V computed once), and the
bf16 error: max |raw_bf16 - raw_fp32| with noise off, relative to the fp32 spread over the episode.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_reward.models import RewardModel
from diffusion_reward.reward import RewardScorer, ScoreConfig


def episode(n: int, seed: int = 0) -> np.ndarray:
    """A smooth moving-square video (stands in for a robot episode)."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, 64, 64, 3), np.uint8)
    frames[:] = rng.integers(40, 200, 3, dtype=np.uint8)
    for i in range(n):
        y, x = (4 + 2 * i) % 48, (8 + 3 * i) % 48
        frames[i, y:y + 16, x:x + 16] = (230, 40, 30)
    return frames


def measure(model: RewardModel, frames: np.ndarray, dtype: str, stream_frames: int) -> dict:
    cfg = ScoreConfig(standardize=False, dtype=dtype, skip_step=9, seed=0)
    scorer = RewardScorer(model, cfg)
    scorer.score_episode(frames[:2])  # warm-up
    t0 = time.perf_counter()
    scorer.score_episode(frames)
    batch_fps = len(frames) / (time.perf_counter() - t0)
    stream = scorer.stream()
    stream.push(frames[0])
    pushes = []  # ms per pushed frame (each completes one row once the context is full)
    for f in np.concatenate([frames[1:]] * (1 + stream_frames // max(1, len(frames) - 1)))[:stream_frames]:
        t0 = time.perf_counter()
        stream.push(f)
        pushes.append((time.perf_counter() - t0) * 1000)
    return {"batch_fps": batch_fps, "stream_p50": float(np.percentile(pushes, 50)),
            "stream_p99": float(np.percentile(pushes, 99))}


def flops_per_frame(model: RewardModel, frames: np.ndarray) -> float:
    scorer = RewardScorer(model, ScoreConfig(standardize=False, noise=False))
    with FlopCounterMode(display=False) as counter:
        scorer.score_episode(frames[:4])
    return counter.get_total_flops() / 4 / 1e9


def bf16_error(model: RewardModel, frames: np.ndarray) -> tuple[float, float]:
    kw = dict(standardize=False, noise=False, skip_step=9)
    f32 = RewardScorer(model, ScoreConfig(**kw)).score_episode(frames).raw
    bf16 = RewardScorer(model, ScoreConfig(dtype="bfloat16", **kw)).score_episode(frames).raw
    return float(np.abs(bf16 - f32).max()), float(f32.max() - f32.min())


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 512, reps: int = 20) -> float:
    """Calibration: what this machine delivers right now (shared machines are often far below nominal)."""
    a = torch.randn(n, n).to(dtype)
    a @ a
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ a
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--video-models", nargs="+", default=["vqdiffusion", "videogpt"])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                   help="float32 only on a CPU without native bf16 (emulated bf16 is ~20x slower)")
    p.add_argument("--frames", type=int, default=24, help="episode length for the batch measurement")
    p.add_argument("--stream-frames", type=int, default=40, help="frames pushed one at a time for the streaming p50 / p99")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    frames = episode(args.frames)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, load average "
          f"{os.getloadavg()[0]:.1f}, episode {args.frames} frames; vqdiffusion: entropy skip 9, noise on; "
          "videogpt: likelihood (VIPER)")
    if args.device == "cpu":
        print(f"calibration: 512x512 matmul {matmul_gflops():.0f} GFLOP/s fp32, "
              f"{matmul_gflops(torch.bfloat16):.0f} GFLOP/s bf16")
    header = f"{'preset':<7} {'model':<11} {'params':>7} {'GFLOP/frame':>11} {'dtype':>8} {'batch frames/s':>14} " \
             f"{'stream p50 / p99 ms':>19} {'bf16 max err / spread':>22}"
    print(header)
    print("-" * len(header))
    for name in args.presets:
        for video_model in args.video_models:
            model = RewardModel.from_preset(name, seed=0, video_model=video_model).to(args.device)
            params = sum(p.numel() for p in model.parameters()) / 1e6
            gflop = flops_per_frame(model, frames)
            err, spread = bf16_error(model, frames[:8]) if "bfloat16" in args.dtypes else (float("nan"),) * 2
            for dtype in args.dtypes:
                r = measure(model, frames, dtype, args.stream_frames)
                note = f"{err:.3g} / {spread:.3g}" if dtype == "bfloat16" else ""
                stream = f"{r['stream_p50']:.1f} / {r['stream_p99']:.1f}"
                print(f"{name:<7} {video_model:<11} {params:>6.1f}M {gflop:>11.1f} {dtype:>8} {r['batch_fps']:>14.2f} "
                      f"{stream:>19} {note:>22}")


if __name__ == "__main__":
    main()
