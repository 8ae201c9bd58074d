"""Training throughput per preset: codec and video-model steps against the same run's matmul floor.

    OMP_NUM_THREADS=2 python bench/bench_training_speed.py --threads 2 [--presets tiny base small paper]

One training step as `training/trainer.py` takes it (the same model calls: codec `encode_latent` -> `codebook` ->
`decode`, L1 + codebook loss, Adam; video model `training_loss` on token windows, AdamW; both with gradient clipping),
on random inputs of the preset's batch size, in the precision training uses (`precision.py`: bf16 autocast where the
CPU has native bf16, else float32). The codec step is timed without the PatchGAN term (off in `base`; the
other presets switch it on after `disc_start` steps, which roughly doubles their codec step). Printed per preset and
network: batch, ms per step (median of --steps after --warmup), steps/s, samples/s, GFLOP per step
(torch.utils.flop_counter, forward + backward, 2 per multiply-add), the GFLOP/s achieved, and the floor: that
many GFLOP at the matmul rate of this moment (512x512, calibrated between the measurements, same dtype).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusion_reward.models import RewardModel
from diffusion_reward.models.model_file import frames_to_input
from diffusion_reward.precision import bf16_is_fast
from diffusion_reward.training.config import PRESET_DEFAULTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_reward_speed import matmul_gflops  # noqa: E402  (the same calibration as the scoring benchmark)


def codec_step(model: RewardModel, batch: int, dtype: torch.dtype | None):
    codec = model.codec.train()
    opt = torch.optim.Adam(codec.parameters(), lr=1e-4, betas=(0.5, 0.9))
    frames = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, 64, 64, 3), dtype=np.uint8).copy())
    x = frames_to_input(frames)

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            z = codec.encode_latent(x)
            z_q, _, q_loss = codec.codebook(z)
            recon = codec.decode(z_q).float()
            loss = (x - recon).abs().mean() + q_loss.float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 0.5)
        opt.step()
    return step


def video_step(model: RewardModel, batch: int, dtype: torch.dtype | None):
    video, vcfg = model.video.train(), model.config.video
    params = [p for p in video.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.96), weight_decay=0.045)
    g = torch.Generator().manual_seed(0)
    tokens, codes = video.num_tokens, model.codec.config.num_codes
    x0 = torch.randint(0, codes, (batch, tokens), generator=g)
    cond = torch.randint(0, codes, (batch, vcfg.num_cond_frames * tokens), generator=g)

    def step():
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss, _ = video.training_loss(x0, cond)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
    return step


def measure(step, steps: int, warmup: int) -> tuple[float, float]:
    """(median seconds per step, GFLOP per step)."""
    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return float(np.median(seconds)), counter.get_total_flops() / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tiny", "base", "small", "paper"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="auto: what training uses on this machine (bf16 autocast only with native bf16)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dtype == "auto":
        args.dtype = "bfloat16" if bf16_is_fast("cpu") else "float32"
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else None
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, {args.dtype} "
          f"({'autocast' if dtype is not None else 'no autocast'}); medians of {args.steps} steps")
    header = (f"| {'preset':<6} | {'network':<11} | {'batch':>5} | {'ms/step':>8} | {'steps/s':>7} | {'samples/s':>9} | "
              f"{'GFLOP/step':>10} | {'GFLOP/s':>7} | {'floor ms':>8} | {'x floor':>7} |")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for preset in args.presets:
        defaults = PRESET_DEFAULTS[preset]
        cases = [("codec", "vqdiffusion", defaults["codec_batch_size"], codec_step),
                 ("vqdiffusion", "vqdiffusion", defaults["batch_size"], video_step),
                 ("videogpt", "videogpt", defaults["batch_size"], video_step)]
        for network, video_model, batch, make in cases:
            model = RewardModel.from_preset(preset, seed=0, video_model=video_model)
            sec, gflop = measure(make(model, batch, dtype), args.steps, args.warmup)
            rate = matmul_gflops(dtype or torch.float32)
            floor = gflop / rate
            print(f"| {preset:<6} | {network:<11} | {batch:>5} | {sec * 1e3:>8.1f} | {1 / sec:>7.2f} | "
                  f"{batch / sec:>9.1f} | {gflop:>10.1f} | {gflop / sec:>7.0f} | {floor * 1e3:>8.1f} | "
                  f"{sec / floor:>6.1f}x |")


if __name__ == "__main__":
    main()
