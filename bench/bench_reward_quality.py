"""Reward quality benchmark: does a reward model trained on expert videos rank expert behaviour first?

Target (issue "Reward model"): the `small` preset trained on 20 expert episodes of each of >= 5 MetaWorld
tasks reaches, averaged over the training tasks, AUROC(expert vs epsilon=1) >= 0.95 and
Spearman(epsilon, episode-mean reward) <= -0.8; two held-out tasks are reported beside them.

Every stage writes into --work and is skipped when its output exists, so an interrupted run continues
where it stopped (training resumes from its last checkpoint):
    1. collect expert episodes per training task      work/data/<task>.h5
    2. train the reward model                          work/model.safetensors (checkpoints in work/model.ckpt/)
    3. QA report per task (train + held-out), on       work/reports/<task>/metrics.json
       episodes with other seeds than the training data, at epsilon 0, 0.25, 0.5, 0.75, 1
    4. print the table (and write work/summary.json)

    python bench/bench_reward_quality.py --work runs/quality                           # the issue's target
    python bench/bench_reward_quality.py --work /tmp/q --preset tiny --tasks button-press-v3,door-close-v3,reach-v3 \
        --heldout drawer-open-v3 --episodes 8 --eval-episodes 3 --max-steps 50         # reduced, CPU
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

TRAIN_TASKS = "door-close-v3,coffee-push-v3,dial-turn-v3,lever-pull-v3,reach-v3"  # upstream's MetaWorld training set
HELDOUT_TASKS = "button-press-v3,drawer-open-v3"  # in upstream's "unseen task" statistics
EVAL_SEED_OFFSET = 10_000  # evaluation episodes never share reset seeds with the training data


def collect_experts(task: str, episodes: int, max_steps: int | None, seed: int, path: Path) -> dict:
    """Successful expert episodes only (up to 3x attempts); `<path>.done` marks a finished collection."""
    import shutil

    from diffusion_reward.data import DatasetWriter
    from diffusion_reward.report.episodes import rollout
    from diffusion_reward.sim import make_env, make_policy

    for stale in (path, path.with_name(path.name + ".episodes")):  # an interrupted collection starts over
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    kept = attempts = 0
    with make_env(task, seed=seed) as env, DatasetWriter(path, env_args={"task": task, "image_size": 64}) as w:
        policy = make_policy(task, env, epsilon=0.0, seed=seed)
        while kept < episodes and attempts < 3 * episodes:
            frames, success = rollout(env, policy, seed=seed + attempts, max_steps=max_steps)
            if success:
                w.write_episode(obs={"image": frames}, success=True, attrs={"epsilon": 0.0, "seed": seed + attempts})
                kept += 1
            attempts += 1
    if kept == 0:
        raise SystemExit(f"the scripted expert never solved {task} in {attempts} attempts")
    path.with_name(path.name + ".done").touch()
    return {"task": task, "episodes": kept, "attempts": attempts}


def training_step_speed(preset: str, batch_size: int, steps: int = 5) -> None:
    """Seconds per training step (forward + backward) of the codec and the video model, float32 vs bf16 autocast."""
    import torch

    from diffusion_reward.models import RewardModel
    from diffusion_reward.models.discriminator import PatchDiscriminator

    model = RewardModel.from_preset(preset, seed=0)
    codec, video = model.codec.train(), model.video.train()
    disc = PatchDiscriminator(base_channels=codec.config.channels[0] // 2)
    x = torch.rand(batch_size, 3, model.image_size, model.image_size) * 2 - 1
    n, per_frame = codec.config.num_codes, codec.num_tokens
    x0 = torch.randint(0, n, (batch_size, per_frame))
    cond = torch.randint(0, n, (batch_size, video.config.num_cond_frames * per_frame))

    def codec_step():
        recon, _, q_loss = codec(x)
        ((recon.float() - x).abs().mean() + q_loss.float() - disc(recon).float().mean()).backward()

    def video_step():
        video.training_loss(x0, cond)[0].float().backward()

    print(f"preset {preset}, batch {batch_size}, {torch.get_num_threads()} threads: seconds per training step")
    print(f"{'network':<8} {'float32':>9} {'bf16':>9} {'speed-up':>9}")
    for name, step in (("codec", codec_step), ("video", video_step)):
        times = {}
        for bf16 in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                step()  # warm-up
                start = time.perf_counter()
                for _ in range(steps):
                    step()
            times[bf16] = (time.perf_counter() - start) / steps
        print(f"{name:<8} {times[False]:>9.3f} {times[True]:>9.3f} {times[False] / times[True]:>8.2f}x")


def _null_to_nan(d: dict) -> dict:
    return {k: float("nan") if v is None else v for k, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/reward_quality"))
    p.add_argument("--preset", default="small")
    p.add_argument("--tasks", default=TRAIN_TASKS, help="comma-separated training tasks")
    p.add_argument("--heldout", default=HELDOUT_TASKS, help="comma-separated held-out tasks ('' for none)")
    p.add_argument("--episodes", type=int, default=20, help="expert episodes per training task")
    p.add_argument("--eval-episodes", type=int, default=5, help="episodes per epsilon and task in the reports")
    p.add_argument("--max-steps", type=int, help="agent steps per episode (default: the task's, 100)")
    p.add_argument("--codec-steps", type=int, help="default: the preset's")
    p.add_argument("--video-steps", type=int, help="default: the preset's")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--speed", action="store_true", help="only time one training step, float32 vs bf16, and exit")
    args = p.parse_args(argv)
    if args.speed:
        training_step_speed(args.preset, args.batch_size or 32)
        return 0

    from diffusion_reward.report import ReportConfig, build_report
    from diffusion_reward.training import TrainConfig, train_reward_model

    tasks = [t for t in args.tasks.split(",") if t]
    heldout = [t for t in args.heldout.split(",") if t]
    work = args.work
    (work / "data").mkdir(parents=True, exist_ok=True)
    timings = json.loads((work / "timings.json").read_text()) if (work / "timings.json").exists() else {}

    def timed(name, fn):
        start = time.time()
        result = fn()
        timings[name] = timings.get(name, 0.0) + time.time() - start
        (work / "timings.json").write_text(json.dumps(timings, indent=2))
        return result

    data = []
    for task in tasks:
        path = work / "data" / f"{task}.h5"
        if not path.with_name(path.name + ".done").exists():
            info = timed(f"collect {task}", lambda: collect_experts(task, args.episodes, args.max_steps, args.seed, path))
            print(f"collected {info['episodes']} expert episodes of {task} ({info['attempts']} attempts)", flush=True)
        data.append(str(path))

    model = work / "model.safetensors"
    if not model.exists():
        ckpt = work / "model.ckpt"
        resume = ckpt.is_dir() and any(ckpt.glob("ckpt-*.pt"))
        cfg = TrainConfig(data=data, out=str(model), preset=args.preset, codec_steps=args.codec_steps,
                          video_steps=args.video_steps, batch_size=args.batch_size, seed=args.seed,
                          checkpoint_dir=str(ckpt), resume=resume, device=args.device)
        timed("train", lambda: train_reward_model(cfg))

    rows = []
    for task in tasks + heldout:
        out = work / "reports" / task
        if not (out / "metrics.json").exists():
            timed(f"report {task}", lambda: build_report(ReportConfig(
                model=str(model), task=task, out=str(out), episodes=args.eval_episodes, max_steps=args.max_steps,
                seed=args.seed + EVAL_SEED_OFFSET, device=args.device)))
        m = json.loads((out / "metrics.json").read_text(), object_hook=_null_to_nan)
        per = m["per_epsilon"]
        rows.append({"task": task, "split": "train" if task in tasks else "held-out",
                     "auroc_eps1": m["auroc_expert_vs"].get("1.0", float("nan")),
                     "auroc_eps0.5": m["auroc_expert_vs"].get("0.5", float("nan")),
                     "paired_win_eps1": m.get("paired_win_rate_expert_vs", {}).get("1.0", float("nan")),
                     "spearman": m["spearman_epsilon_vs_mean_reward"],
                     "reward_eps0": per["0.0"]["mean"], "reward_eps1": per.get("1.0", {}).get("mean", float("nan")),
                     "expert_success": per["0.0"]["success_rate"]})

    train_rows = [r for r in rows if r["split"] == "train"]
    mean_auroc = sum(r["auroc_eps1"] for r in train_rows) / len(train_rows)
    mean_rho = sum(r["spearman"] for r in train_rows) / len(train_rows)
    header = f"{'task':<22} {'split':<9} {'AUROC e0-e1':>11} {'AUROC e0-e.5':>12} {'paired e0>e1':>12} " \
             f"{'Spearman':>9} {'R(e=0)':>9} {'R(e=1)':>9} {'expert ok':>9}"
    print(f"\npreset {args.preset}, {len(tasks)} training tasks x {args.episodes} expert episodes, "
          f"{args.eval_episodes} eval episodes per epsilon, max steps {args.max_steps or 'task default'}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['task']:<22} {r['split']:<9} {r['auroc_eps1']:>11.3f} {r['auroc_eps0.5']:>12.3f} "
              f"{r['paired_win_eps1']:>12.2f} {r['spearman']:>9.3f} {r['reward_eps0']:>9.2f} "
              f"{r['reward_eps1']:>9.2f} {r['expert_success']:>9.2f}")
    print("-" * len(header))
    ok = mean_auroc >= 0.95 and mean_rho <= -0.8
    print(f"{'training-task mean':<32} {mean_auroc:>11.3f} {'':>12} {'':>12} {mean_rho:>9.3f}   "
          f"target AUROC >= 0.95 and Spearman <= -0.8: {'MET' if ok else 'NOT MET'}")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    (work / "summary.json").write_text(json.dumps({"rows": rows, "mean_auroc_eps1": mean_auroc,
                                                   "mean_spearman": mean_rho, "target_met": ok,
                                                   "timings_s": timings, "args": vars(args) | {"work": str(work)}},
                                                  indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
