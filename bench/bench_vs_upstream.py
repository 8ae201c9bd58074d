"""Our scorer against the authors' `DiffusionReward.calc_reward`, paper size, the same weights and frames.

    pip install omegaconf einops # what the authors' reward module imports (hydra is stubbed: unused for scoring)
    git clone https://github.com/TEA-Lab/diffusion_reward /path/upstream     # their repository, as it is
    OMP_NUM_THREADS=2 python bench/bench_vs_upstream.py --upstream /path/upstream --threads 2 --dtype bfloat16
    OMP_NUM_THREADS=2 python bench/bench_vs_upstream.py --upstream /path/upstream --threads 2 --training  # a step

Nothing of their code is copied into this project: it is imported at run time from --upstream. A scratch copy of
their package gets a paper-size model config (their `configs/models/video_models/vqdiffusion/dataset/
metaworld.yaml`, on the CPU), random weights saved in their checkpoint format (seeded), unit statistics and the
reward config they use in RL (`configs/rl/reward/diffusion_reward.yaml`: entropy, skip 9, noise on); their
`.cuda()` calls on tensors are made no-ops, as for the parity fixtures. Our model is
`import-upstream` of that checkpoint, so both sides hold the same weights. The two implementations run in fresh
processes, alternating for --rounds rounds (their package and ours share the name `diffusion_reward`, so they never
share a process); each times one --frames-frame episode --repeats times after a warm-up. Their side runs under
`torch.autocast(bfloat16)` for --dtype bfloat16 (the issue's reference), ours with `ScoreConfig(dtype=...)`.

Printed: seconds per episode (median), frames/s, the speed-up, and the accuracy with the noise off (max |ours -
theirs| of the raw rewards, float32 both sides) next to the rewards' spread; a matmul calibration of the same
moment, and the floor it implies for our FLOPs per frame.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))  # bench_reward_speed, imported by the main process only
MODEL_YAML = "diffusion_reward/configs/models/video_models/vqdiffusion/dataset/metaworld.yaml"
REWARD_YAML = "diffusion_reward/configs/rl/reward/diffusion_reward.yaml"
CODEC_PT = "/exp_local/codec_models/vqgan/paper/results/checkpoints/vqgan.pt"
VIDEO_CKPT = "/exp_local/video_models/vqdiffusion/paper/checkpoint/best.pth"
VIDEO_CFG = "/exp_local/video_models/vqdiffusion/paper/.hydra/config.yaml"
STATS = "/statistics/diffusion_reward/entropy/paper.yaml"
FRAMES = "frames.npy"
TASK = "bench"


def scratch_root(upstream: Path, root: Path) -> None:
    """Their package and the files their loader reads (paths are glued onto the package's parent folder)."""
    shutil.copytree(upstream / "diffusion_reward", root / "diffusion_reward")
    model = yaml.safe_load((upstream / MODEL_YAML).read_text())["model"]
    model["params"]["content_codec_config"]["params"]["args"]["device"] = "cpu"
    model["params"]["content_codec_config"]["params"]["ckpt_path"] = CODEC_PT
    (root / VIDEO_CFG[1:]).parent.mkdir(parents=True)
    (root / VIDEO_CFG[1:]).write_text(yaml.safe_dump({"model": model}))
    (root / STATS[1:]).parent.mkdir(parents=True)
    (root / STATS[1:]).write_text(yaml.safe_dump({TASK: {9: [0.0, 1.0]}}))


def their_modules(root: Path):
    import torch

    sys.path.insert(0, str(root))
    torch.Tensor.cuda = lambda self, *a, **k: self  # their transformer calls t.cuda(); the CPU run keeps t where it is
    sys.modules["hydra"] = types.ModuleType("hydra")  # imported by their reward module, used only for RND
    from diffusion_reward.models.codec_models.vqgan.vqgan import VQGAN
    from diffusion_reward.models.reward_models.diffusion_reward import DiffusionReward
    from diffusion_reward.models.video_models.vqdiffusion.modeling.build import build_model
    from diffusion_reward.models.video_models.vqdiffusion.utils.io import load_yaml_config

    return VQGAN, DiffusionReward, build_model, load_yaml_config


def worker_make(root: Path) -> None:
    """Random weights (seed 0) in their formats: vqgan.pt, then best.pth with `model` and `ema`."""
    import torch

    VQGAN, _, build_model, load_yaml_config = their_modules(root)
    torch.manual_seed(0)
    config = load_yaml_config(str(root / VIDEO_CFG[1:]))
    codec_args = config["model"]["params"]["content_codec_config"]["params"]["args"]
    (root / CODEC_PT[1:]).parent.mkdir(parents=True)
    torch.save(VQGAN(types.SimpleNamespace(**codec_args)).state_dict(), root / CODEC_PT[1:])
    model = build_model(config)
    (root / VIDEO_CKPT[1:]).parent.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "ema": model.transformer.state_dict(), "last_epoch": 0},
               root / VIDEO_CKPT[1:])


def worker_theirs(root: Path, frames: np.ndarray, dtype: str, noise: bool, repeats: int) -> dict:
    import torch
    from omegaconf import OmegaConf

    _, DiffusionReward, _, _ = their_modules(root)
    cfg = yaml.safe_load((root / REWARD_YAML).read_text())
    cfg.update(task_name=TASK, obs_shape=[3, 64, 64], action_shape=[4], ckpt_path=str(root) + VIDEO_CKPT,
               cfg_path=str(root) + VIDEO_CFG,
               stat_path=STATS, noise=noise, use_expl_reward=False, expl_reward=None, expl_lr=1e-4, expl_scale=0.0)
    rm = DiffusionReward(OmegaConf.create(cfg))
    x = torch.from_numpy(frames)[None].float() / 127.5 - 1.0  # what their replay cache hands calc_reward

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            return rm.calc_reward(x)

    return timed(run, repeats)


def worker_ours(root: Path, frames: np.ndarray, dtype: str, noise: bool, repeats: int) -> dict:
    sys.path.insert(0, str(HERE.parents[1]))
    from diffusion_reward.reward import RewardScorer, ScoreConfig
    from diffusion_reward.upstream import import_upstream

    model = import_upstream(root / VIDEO_CKPT[1:], root / VIDEO_CFG[1:], root / CODEC_PT[1:])
    scorer = RewardScorer(model, ScoreConfig(standardize=False, dtype=dtype, skip_step=9, noise=noise, seed=0))
    return timed(lambda: scorer.score_episode(frames).raw, repeats)


def worker_train_theirs(root: Path, dtype: str, batch: int, repeats: int) -> dict:
    """Their training step as their solver takes it: `model(batch=..., return_loss=True)` tokenises the batch's
    frames with the frozen codec (no grad) and returns the transformer's loss; backward, clip 0.5, AdamW."""
    import torch

    _, _, build_model, load_yaml_config = their_modules(root)
    model = build_model(load_yaml_config(str(root / VIDEO_CFG[1:]))).train()
    g = torch.Generator().manual_seed(0)
    frames = {"image": torch.randint(0, 256, (batch, 3, 64, 64), generator=g).float(),  # their dataset's keys
              "frame": torch.randint(0, 256, (batch, 2, 3, 64, 64), generator=g).float()}
    params = [p for p in model.transformer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.96), weight_decay=0.045)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = model(batch=frames, return_loss=True)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        torch.nn.utils.clip_grad_norm_(params, 0.5)
        opt.step()
    return timed_steps(step, repeats)


def worker_train_ours(root: Path, dtype: str, batch: int, repeats: int) -> dict:
    """Our trainer's step on the same weights: `training_loss` on token windows the frozen codec computed once."""
    import torch

    sys.path.insert(0, str(HERE.parents[1]))
    from bench_training_speed import video_step
    from diffusion_reward.upstream import import_upstream

    model = import_upstream(root / VIDEO_CKPT[1:], root / VIDEO_CFG[1:], root / CODEC_PT[1:])
    return timed_steps(video_step(model, batch, torch.bfloat16 if dtype == "bfloat16" else None), repeats)


def timed_steps(step, repeats: int) -> dict:
    step()  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds}


def timed(run, repeats: int) -> dict:
    """`timed_steps` of a scoring call without gradients, plus the rewards of its last call."""
    import torch

    rewards = []
    with torch.no_grad():
        out = timed_steps(lambda: rewards.append(run()), repeats)
    return {**out, "rewards": np.asarray(rewards[-1], dtype=np.float64).reshape(-1).tolist()}


def spawn(mode: str, args, root: Path, dtype: str, noise: bool, repeats: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, str(HERE), "--worker", mode, "--root", str(root), "--frames", str(args.frames),
           "--dtype", dtype, "--repeats", str(repeats), "--threads", str(args.threads),
           "--train-batch", str(args.train_batch)] + (["--noise-off"] if not noise else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    if out.returncode != 0:
        raise SystemExit(f"{mode} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibration(threads: int) -> dict:
    """The matmul rates of this moment (main process only: bench_reward_speed imports our package)."""
    import torch
    from bench_reward_speed import matmul_gflops

    torch.set_num_threads(threads)
    return {"float32": matmul_gflops(torch.float32), "bfloat16": matmul_gflops(torch.bfloat16)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--upstream", type=Path, help="the authors' repository (holds diffusion_reward/)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    p.add_argument("--gflop-per-frame", type=float, default=29.6,
                   help="our FLOPs per frame at the paper preset (bench_reward_speed.py), for the floor")
    p.add_argument("--training", action="store_true",
                   help="time the video model's training step instead of scoring (their step tokenises frames)")
    p.add_argument("--train-batch", type=int, default=4, help="training batch (their metaworld config: 4)")
    p.add_argument("--worker", choices=("make", "theirs", "ours", "train_theirs", "train_ours"),
                   help=argparse.SUPPRESS)
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--noise-off", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.worker == "make":
            worker_make(args.root)
            print("{}")
        elif args.worker.startswith("train_"):
            run = worker_train_theirs if args.worker == "train_theirs" else worker_train_ours
            print(json.dumps(run(args.root, args.dtype, args.train_batch, args.repeats)))
        else:
            run = worker_theirs if args.worker == "theirs" else worker_ours
            frames = np.load(args.root / FRAMES)  # written by the main process (see `main`)
            print(json.dumps(run(args.root, frames, args.dtype, not args.noise_off, args.repeats)))
        return 0
    if not args.upstream or not (args.upstream / "diffusion_reward" / "models" / "reward_models").is_dir():
        p.error("--upstream must be the authors' repository (it holds diffusion_reward/models/reward_models)")
    from bench_reward_speed import episode  # the main process never imports their package, so ours may load here

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scratch_root(args.upstream, root)
        np.save(root / FRAMES, episode(args.frames))  # the workers' frames: bench_reward_speed's moving square
        spawn("make", args, root, "float32", True, 1)
        if args.training:
            return training_table(args, root)
        exact = {side: spawn(side, args, root, "float32", False, 1)["rewards"] for side in ("theirs", "ours")}
        seconds, calib = alternate(args, root, ("theirs", "ours"))
    theirs, ours = np.asarray(exact["theirs"]), np.asarray(exact["ours"])
    n = min(len(theirs), len(ours))
    err, spread = float(np.abs(theirs[:n] - ours[:n]).max()), float(np.ptp(theirs))
    flops = {k: float(np.median([c[k] for c in calib])) for k in ("float32", "bfloat16")}
    floor_fps = flops[args.dtype] / args.gflop_per_frame
    print(f"paper preset, entropy, skip 9, noise on, {args.frames}-frame episode, {args.threads} thread(s), "
          f"{args.dtype}; {args.rounds} rounds x {args.repeats} in fresh processes; load average "
          f"{os.getloadavg()[0]:.1f}; calibration 512x512 matmul {flops['float32']:.0f} GFLOP/s fp32, "
          f"{flops['bfloat16']:.0f} bf16")
    print(f"| {'implementation':<34} | {'s / episode':>11} | {'frames/s':>8} | {'vs authors':>10} | {'vs floor':>8} |")
    print(f"|{'-' * 36}|{'-' * 13}|{'-' * 10}|{'-' * 12}|{'-' * 10}|")
    base = float(np.median(seconds["theirs"]))
    for side, label in (("theirs", "authors' calc_reward"), ("ours", "diffusion_reward_ros RewardScorer")):
        sec = float(np.median(seconds[side]))
        fps = args.frames / sec
        print(f"| {label:<34} | {sec:>11.2f} | {fps:>8.2f} | {base / sec:>9.2f}x | {floor_fps / fps:>7.1f}x |")
    print(f"floor: {floor_fps:.1f} frames/s ({args.gflop_per_frame} GFLOP/frame at the {args.dtype} matmul rate); "
          f"accuracy, noise off, float32: max |ours - theirs| = {err:.2e} nats over {n} rows (spread {spread:.3g})")
    return 0


def alternate(args, root: Path, sides: tuple[str, str]) -> tuple[dict[str, list[float]], list[dict]]:
    """--rounds rounds, each a matmul calibration and then every side's worker in a fresh process, in turn:
    ({side: seconds of every timed call}, the calibrations)."""
    seconds, calib = {side: [] for side in sides}, []
    for _ in range(args.rounds):
        calib.append(calibration(args.threads))
        for side in sides:
            seconds[side] += spawn(side, args, root, args.dtype, True, args.repeats)["seconds"]
    return seconds, calib


def training_table(args, root: Path) -> int:
    seconds, calib = alternate(args, root, ("train_theirs", "train_ours"))
    rate = float(np.median([c[args.dtype] for c in calib]))
    print(f"paper preset VQ-Diffusion training step, batch {args.train_batch}, {args.threads} thread(s), {args.dtype} "
          f"(autocast both sides); {args.rounds} rounds x {args.repeats} steps in fresh processes; load average "
          f"{os.getloadavg()[0]:.1f}; calibration 512x512 matmul {rate:.0f} GFLOP/s {args.dtype}")
    print(f"| {'implementation':<50} | {'ms / step':>9} | {'samples/s':>9} | {'vs authors':>10} |")
    print(f"|{'-' * 52}|{'-' * 11}|{'-' * 11}|{'-' * 12}|")
    base = float(np.median(seconds["train_theirs"]))
    for side, label in (("train_theirs", "authors' model(batch) (tokenises 3 frames/sample)"),
                        ("train_ours", "diffusion_reward_ros training_loss (on tokens)")):
        sec = float(np.median(seconds[side]))
        print(f"| {label:<50} | {sec * 1e3:>9.0f} | {args.train_batch / sec:>9.1f} | {base / sec:>9.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
