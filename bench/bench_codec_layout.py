"""Codec encoding (tokenising) speed: NCHW vs channels-last input, interleaved in one run, tokens compared.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_codec_layout.py [--frames 128] [--reps 6]

`RewardModel.tokenize` feeds the codec channels-last input (oneDNN's convolutions are faster on that layout);
this prints the median time per frame of both layouts on the shipped models' codecs and the paper preset's
(random weights), their ratio, and the fraction of tokens that differ (0 means the same tokens).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from diffusion_reward.models import RewardModel
from diffusion_reward.models.model_file import frames_to_input
from diffusion_reward.models.pretrained import PRETRAINED_DIR
from diffusion_reward.models.presets import get_preset


def frames(n: int, seed: int = 0) -> torch.Tensor:
    """A moving square on a noisy background (stands in for robot frames), (n, 64, 64, 3) uint8."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
    for i in range(n):
        y, x = (4 + 2 * i) % 48, (8 + 3 * i) % 48
        out[i, y:y + 16, x:x + 16] = (230, 40, 30)
    return torch.as_tensor(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128, help="frames encoded per call")
    parser.add_argument("--reps", type=int, default=6, help="interleaved repetitions per layout")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    models = {name: RewardModel.load(PRETRAINED_DIR / f"{name}.safetensors") for name in ("metaworld", "adroit")}
    models["paper (random)"] = RewardModel.from_config(get_preset("paper"))
    print(f"command: bench/bench_codec_layout.py --frames {args.frames} --reps {args.reps}; threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'codec':<16} {'NCHW ms/frame':>14} {'channels-last':>14} {'speed-up':>9} {'tokens differ':>14}")
    for name, model in models.items():
        size = model.image_size
        x = frames_to_input(torch.nn.functional.interpolate(
            frames(args.frames).permute(0, 3, 1, 2).float(), size=size).permute(0, 2, 3, 1).to(torch.uint8))
        xc = x.contiguous(memory_format=torch.channels_last)
        times = {"nchw": [], "cl": []}
        with torch.no_grad():
            ref, fast = model.codec.encode(x), model.codec.encode(xc)  # warm-up, and the tokens compared
            for _ in range(args.reps):
                for key, inp in (("nchw", x), ("cl", xc)):
                    t0 = time.perf_counter()
                    model.codec.encode(inp)
                    times[key].append(time.perf_counter() - t0)
        nchw, cl = (np.median(times[k]) / args.frames * 1e3 for k in ("nchw", "cl"))
        print(f"{name:<16} {nchw:>14.2f} {cl:>14.2f} {nchw / cl:>8.2f}x {(ref != fast).float().mean().item():>14.4f}")


if __name__ == "__main__":
    main()
