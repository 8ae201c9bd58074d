"""Reward quality benchmark: does a reward model trained on expert videos rank expert behaviour first?

The evaluation protocol of the issue "A reward that works" (the paper's reward analysis, Fig. 3 / Table 2):
- training data as the authors': MetaWorld assembly, coffee-push, dial-turn, door-close, lever-pull,
  peg-unplug-side, reach x 20 expert episodes; Adroit door, hammer, pen x 50; each episode ends
  --steps-after-success (1) agent step after its first success (the authors' videos end shortly after success;
  a longer still tail teaches the model that standing still is predictable, i.e. rewarded);
- one model per domain (`base` preset), trained on this CPU within the budget;
- per task (seen, unseen MetaWorld, Adroit): 10 episodes at each epsilon 0, 0.25, 0.5, 0.75, 1 on reset seeds
  disjoint from training, the same seeds at every epsilon (paired), plus the frozen controls (zero-action rollout,
  expert's first frame repeated); full-length episodes;
- AUROC(expert vs epsilon=1 / controls) and Spearman(epsilon, episode-mean reward) with bootstrap 95 % intervals,
  on the rows while the task is being done ("task") and on whole episodes; stillness diagnostics and per-row SNR
  (`diffusion_reward/report/quality.py`).

Every stage writes into --work and is skipped when its output exists, so an interrupted run continues
(training resumes from its last checkpoint):
    1. collect expert episodes          work/data/<task>.h5
    2. train one model per domain       work/<domain>.safetensors (checkpoints in work/<domain>.safetensors.ckpt/)
    3. evaluation episodes per task     work/eval/<task>.npz
    4. score + analyse per task         work/scores/<domain>-<reward type>/<task>.json
    5. print the tables (and write work/summary.json)
    6. with --ship: the model with bf16 weights and statistics of every --reward-types type (the first becomes
       the model's own, `--reward-type auto`) for the seen and unseen tasks, into
       diffusion_reward/models/pretrained/<domain>.safetensors, after checking bf16 against float32 rewards

    python bench/bench_reward_quality.py --work runs/quality                    # the issue's protocol, both domains
    python bench/bench_reward_quality.py --work runs/quality --domains metaworld --reward-types likelihood,entropy
    python bench/bench_reward_quality.py --work runs/quality --model-metaworld M.safetensors   # evaluate a given model
    python bench/bench_reward_quality.py --work runs/quality --codec-metaworld M.safetensors   # train on M's codec
    python bench/bench_reward_quality.py --work runs/viper --video-model videogpt --reward-types likelihood,entropy \
        --codec-metaworld M.safetensors   # the VIPER baseline on Diffusion Reward's codec
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

DOMAINS = {
    "metaworld": dict(train="assembly-v3,coffee-push-v3,dial-turn-v3,door-close-v3,lever-pull-v3,peg-unplug-side-v3,"
                            "reach-v3", episodes=20,
                      unseen="button-press-v3,coffee-button-v3,drawer-open-v3,handle-press-v3,window-open-v3"),
    "adroit": dict(train="adroit-door,adroit-hammer,adroit-pen", episodes=50, unseen=""),
}
TRAIN_SEED = 0
EVAL_SEED = 10_000  # evaluation reset seeds are EVAL_SEED + i; training seeds are episode_seed(TRAIN_SEED, i)
TARGETS = {"frozen_auroc": 0.95, "seen_metaworld_mean": 0.95, "seen_metaworld_each": 0.9,
           "seen_metaworld_spearman": -0.8, "adroit_mean": 0.9, "unseen_metaworld_mean": 0.8}


def task_family(task: str) -> str:
    """A MetaWorld task's scene family: its first word (button-press-topdown-v3 -> button, handle-pull-v3 -> handle)."""
    return task.split("-")[0]


def extra_tasks(domain: str) -> list[str]:
    """Every task of the domain with an expert that is neither seen nor unseen nor in an unseen task's family
    (its scene, e.g. drawer-close for drawer-open): more scenes to train on, none that an unseen task shows."""
    from diffusion_reward.sim import list_tasks, task_spec

    spec = DOMAINS[domain]
    seen, unseen = spec["train"].split(","), [t for t in spec["unseen"].split(",") if t]
    families = {task_family(t) for t in unseen}
    return [t for t in list_tasks(domain) if t not in seen and task_family(t) not in families
            and task_spec(t).has_expert]


def collect_experts(task: str, episodes: int, steps_after_success: int | None, path: Path) -> None:
    """`diffusion-reward collect` of expert episodes; an interrupted collection starts over."""
    import shutil

    from diffusion_reward.cli import main as cli

    for stale in (path, path.with_name(path.name + ".episodes")):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    args = ["collect", "--task", task, "--episodes", str(episodes), "--epsilon", "0", "--seed", str(TRAIN_SEED),
            "--out", str(path)]
    if steps_after_success is not None:
        args += ["--steps-after-success", str(steps_after_success)]
    if cli(args) != 0:
        raise SystemExit(f"collecting {task} failed")
    path.with_name(path.name + ".done").touch()


def eval_episodes(task: str, episodes: int, seed: int, path: Path, max_steps: int | None = None) -> list:
    """The evaluation episodes of a task (epsilons + frozen controls), rolled out once and cached in `path` (npz)."""
    import numpy as np

    from diffusion_reward.report.episodes import ScoredEpisode, collect

    if not path.exists():
        eps = collect(task, episodes, seed=seed, max_steps=max_steps, controls=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, frames=np.concatenate([e.frames for e in eps]),
                            lengths=[len(e.frames) for e in eps], seeds=[e.seed for e in eps],
                            epsilons=[np.nan if e.epsilon is None else e.epsilon for e in eps],
                            first_success=[-1 if e.first_success is None else e.first_success for e in eps],
                            success=[e.success for e in eps], kinds=[e.kind for e in eps])
        os.replace(tmp, path)
    z = dict(np.load(path, allow_pickle=False))  # read every array once (NpzFile re-reads on each access)
    bounds = np.cumsum(np.r_[0, z["lengths"]])
    return [ScoredEpisode(None if np.isnan(e) else float(e), int(s), bool(ok), z["frames"][a:b].copy(),
                          first_success=None if f < 0 else int(f), kind=str(k))
            for a, b, e, s, ok, f, k in zip(bounds[:-1], bounds[1:], z["epsilons"], z["seeds"], z["success"],
                                            z["first_success"], z["kinds"])]


def score_and_analyse(model_path: Path, task: str, episodes: list, reward_type: str, out: Path,
                      dtype: str = "auto", num_samples: int = 1) -> dict:
    """Raw rewards of every evaluation episode (AUROC and Spearman do not depend on the standardisation), their
    analysis, and the rewards themselves (`episodes`: group, reset seed, first success, per-row raw reward)."""
    from diffusion_reward.models import RewardModel
    from diffusion_reward.report.quality import analyse, strip_replicates
    from diffusion_reward.reward import RewardScorer, ScoreConfig

    if out.exists():
        return json.loads(out.read_text())
    scorer = RewardScorer(RewardModel.load(model_path),
                          ScoreConfig(reward_type=reward_type, seed=EVAL_SEED, standardize=False, dtype=dtype,
                                      chunk_size=128, num_samples=num_samples))
    for e in episodes:
        e.reward = scorer.score_episode(e.frames).raw
    q = analyse(episodes)
    result = {"name": task, "reward_type": reward_type, "model": str(model_path), "dtype": dtype,
              "num_samples": num_samples,
              "replicates": {v: q[v]["auroc_expert_vs"]["1.0"]["replicates"] for v in ("task_rows", "whole")},
              **strip_replicates(q),
              "episodes": [{"group": str(e.epsilon) if e.kind == "epsilon" else e.kind, "seed": e.seed,
                            "first_success": e.first_success, "reward": [round(float(r), 3) for r in e.reward]}
                           for e in episodes]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


def bf16_accuracy(full, half, frames, reward_type: str) -> dict:
    """How much rounding the weights to bf16 moves the reward of one episode, in nats. With sampling noise a
    rounded logit can flip one Gumbel-max draw and send that row's chain elsewhere (rows jump by tens of nats
    from frame to frame anyway), so the per-row comparison is made on the argmax chain (noise off), and the
    noisy reward is compared as the episode mean."""
    import numpy as np

    from diffusion_reward.reward import RewardScorer, ScoreConfig

    def raw(model, noise):
        cfg = ScoreConfig(reward_type=reward_type, standardize=False, noise=noise, dtype="float32")
        return RewardScorer(model, cfg).score_episode(frames).raw

    a, b = raw(full, False), raw(half, False)
    c, d = raw(full, True), raw(half, True)
    return {"noise_off_row_mean_abs": float(np.abs(a - b).mean()), "noise_off_row_max_abs": float(np.abs(a - b).max()),
            "noise_on_episode_mean_abs": float(abs(c.mean() - d.mean())), "noise_on_row_std": float(c.std())}


STATS_EPISODES = 8  # expert episodes per task for the shipped statistics


def ship(model_path: Path, domain: str, tasks: list[str], work: Path, out: Path, steps_after_success: int | None,
         reward_types: list[str]) -> dict:
    """bf16 copy of the model + statistics (skip 9, 1 sample) of every reward type for `tasks`, from the first
    STATS_EPISODES expert episodes collected with the training seed (seen tasks: the training data; unseen tasks:
    expert episodes of those seeds collected here, never trained on); the first reward
    type becomes the model's own (`reward_type: auto`). Returns the bf16-vs-float32 reward accuracy of the weights
    on one episode per task. A model whose weights are bf16 already (a shipped file) keeps its weights, its
    provenance and its other statistics: the types given get statistics and the first becomes its own."""

    from diffusion_reward.models import RewardModel
    from diffusion_reward.reward import ScoreConfig
    from diffusion_reward.reward.stats import compute_stats, store_stats
    from diffusion_reward.data.sources import load_episodes

    full = RewardModel.load(model_path)
    already_bf16 = full.provenance.get("weights_dtype") == "bfloat16"
    tmp = out.with_name(out.name + ".bf16.tmp")
    full.save(tmp, weights_dtype="bfloat16")
    half = RewardModel.load(tmp)
    if already_bf16:
        half.provenance["reward_type"] = reward_types[0]
    else:
        half.stats = {}
        half.provenance |= {"weights_dtype": "bfloat16", "shipped_from": str(model_path),
                            "weights_hash_float32": full.weights_hash, "reward_type": reward_types[0]}
    accuracy = []
    for task in tasks:
        data = work / "data" / f"{task}.h5"
        if not data.with_name(data.name + ".done").exists():
            collect_experts(task, DOMAINS[domain]["episodes"] // 2, steps_after_success, data)
        episodes, provenance = load_episodes([str(data)], half.image_size)
        frames = [e.frames for e in episodes][:STATS_EPISODES]
        for reward_type in reward_types:
            stats = compute_stats(half, frames, task, ScoreConfig(reward_type=reward_type), progress=False)
            store_stats(half, stats, source=f"{data.name} sha256:{provenance[0]['sha256']} first {stats.episodes} "
                                            f"episodes frames:{stats.frames} seed:0")
            print(f"ship {domain} {task} {reward_type}: stats mean {stats.mean:.2f} std {stats.std:.2f}", flush=True)
            if already_bf16:
                continue
            accuracy.append({"task": task, "reward_type": reward_type, "reward_std_nats": stats.std,
                             **bf16_accuracy(full, half, frames[0], reward_type)})
            print(f"ship {domain} {task} {reward_type}: bf16 vs float32 weights: " +
                  ", ".join(f"{k} {v:.3f}" for k, v in accuracy[-1].items() if k not in ("task", "reward_type")),
                  flush=True)
    if not already_bf16:
        half.provenance["bf16_accuracy"] = accuracy
    half.save(out, weights_dtype="bfloat16")
    tmp.unlink()
    return {"out": str(out), "size_mb": out.stat().st_size / 2**20, "accuracy": accuracy}


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


def _fmt(x, spec=".2f") -> str:
    return "  -  " if x is None else format(x, spec)


def _auroc_cell(a: dict) -> str:
    lo, hi = a["ci"]
    return f"{_fmt(a['value'])} [{_fmt(lo)},{_fmt(hi)}]"


def print_table(title: str, results: list[dict]) -> dict:
    """One row per task; returns the mean AUROC (task rows, expert vs epsilon 1) with its bootstrap interval."""
    import numpy as np

    header = (f"{'task':<20} {'AUROC e1 task rows':>19} {'AUROC e1 whole':>17} {'paired':>6} {'Spearman task':>19} "
              f"{'zero-act':>8} {'frozen':>7} {'static e0/e1':>12} {'rho motion':>10} {'pre/post':>13} {'SNR':>5}")
    print(f"\n{title}\n{header}\n{'-' * len(header)}")
    for r in results:
        t, w, st = r["task_rows"], r["whole"], r["stillness"]
        sp = t["spearman_epsilon"]
        print(f"{r['name']:<20} {_auroc_cell(t['auroc_expert_vs']['1.0']):>19} {_auroc_cell(w['auroc_expert_vs']['1.0']):>17} "
              f"{_fmt(t['paired_win_rate_expert_vs'].get('1.0')):>6} "
              f"{_fmt(sp['value']):>6} [{_fmt(sp['ci'][0])},{_fmt(sp['ci'][1])}] "
              f"{_fmt(t['auroc_expert_vs']['zero-action']['value']):>8} "
              f"{_fmt(t['auroc_expert_vs']['frozen-first-frame']['value']):>7} "
              f"{st['static_fraction'].get('0.0', 0):>5.2f}/{st['static_fraction'].get('1.0', 0):<5.2f} "
              f"{_fmt(st['spearman_reward_vs_motion_rows']):>10} "
              f"{_fmt(st['expert_pre_success_mean'], '.0f'):>6}/{_fmt(st['expert_post_success_mean'], '.0f'):<6} "
              f"{_fmt(r['signal_to_noise']['smooth_1']):>5}")
    reps = np.array([r["replicates"]["task_rows"] for r in results], float)
    mean = float(np.mean([r["task_rows"]["auroc_expert_vs"]["1.0"]["value"] for r in results]))
    ci = np.nanpercentile(reps.mean(axis=0), [2.5, 97.5]).tolist()
    rho = float(np.mean([r["task_rows"]["spearman_epsilon"]["value"] for r in results]))
    frozen = min(min(r["task_rows"]["auroc_expert_vs"][c]["value"] for c in ("zero-action", "frozen-first-frame"))
                 for r in results)
    print(f"{'mean':<20} {mean:>5.2f} [{ci[0]:.2f},{ci[1]:.2f}]   Spearman {rho:.2f}   min frozen AUROC {frozen:.2f}")
    return {"mean_auroc": mean, "ci": ci, "mean_spearman": rho, "min_frozen_auroc": frozen,
            "min_auroc": min(r["task_rows"]["auroc_expert_vs"]["1.0"]["value"] for r in results)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/reward_quality"))
    p.add_argument("--domains", default="metaworld,adroit")
    p.add_argument("--preset", default="base")
    p.add_argument("--video-model", default="vqdiffusion", choices=("vqdiffusion", "videogpt"),
                   help="videogpt: train and evaluate the VIPER baseline (with --codec-*: on the same codec)")
    p.add_argument("--steps-after-success", type=int, default=1,
                   help="expert training episodes end this many agent steps after success (-1: full length)")
    p.add_argument("--frame-skip", type=int, help="video-model frame skip (default: the preset's)")
    p.add_argument("--train-episodes", type=int, help="expert episodes per training task (default: the domain's)")
    p.add_argument("--extra-train-tasks", default="",
                   help="comma-separated tasks trained on but not evaluated (never one of the unseen tasks), or "
                        "'all': every other task of the domain outside the unseen tasks' families (extra_tasks())")
    p.add_argument("--extra-train-episodes", type=int, default=10, help="expert episodes per extra training task")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per epsilon and task")
    p.add_argument("--reward-types", default="likelihood,entropy",
                   help="comma-separated, evaluated and (--ship) given statistics; the first is the shipped "
                        "model's own reward type (what --reward-type auto scores)")
    p.add_argument("--codec-steps", type=int, help="default: the preset's")
    p.add_argument("--video-steps", type=int, help="default: the preset's")
    p.add_argument("--model-metaworld", type=Path, help="evaluate this model instead of training one")
    p.add_argument("--model-adroit", type=Path, help="evaluate this model instead of training one")
    p.add_argument("--codec-metaworld", type=Path, help="train only the video model, on this model file's codec")
    p.add_argument("--codec-adroit", type=Path, help="train only the video model, on this model file's codec")
    p.add_argument("--num-samples", type=int, default=1,
                   help="sampling chains averaged per frame when scoring (scores go to <domain>-<type>-n<N>/ if > 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="auto", choices=("float32", "bfloat16", "auto"),
                   help="network precision for scoring (auto: bf16 where the hardware has it; the codec stays "
                        "float32; see --ship for the bf16 accuracy)")
    p.add_argument("--tasks", help="only these comma-separated tasks (default: every task of the domains)")
    p.add_argument("--cached-only", action="store_true", help="print the tables of the tasks already scored")
    p.add_argument("--ship", action="store_true",
                   help="write the trained models (bf16, with statistics) into diffusion_reward/models/pretrained/")
    p.add_argument("--speed", action="store_true", help="only time one training step, float32 vs bf16, and exit")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.speed:
        training_step_speed(args.preset, 32)
        return 0
    from diffusion_reward.sim import episode_seed, task_spec
    from diffusion_reward.training import TrainConfig, train_reward_model

    work = args.work
    (work / "data").mkdir(parents=True, exist_ok=True)
    (work / "eval").mkdir(parents=True, exist_ok=True)
    timings = json.loads((work / "timings.json").read_text()) if (work / "timings.json").exists() else {}

    def timed(name, fn):
        start = time.time()
        result = fn()
        timings[name] = timings.get(name, 0.0) + time.time() - start
        (work / "timings.json").write_text(json.dumps(timings, indent=2))
        return result

    most = max([d["episodes"] for d in DOMAINS.values()] + [args.train_episodes or 0])
    train_seeds = {episode_seed(TRAIN_SEED, i) for i in range(most)}
    assert not train_seeds & set(range(EVAL_SEED, EVAL_SEED + args.eval_episodes)), "eval seeds overlap training"
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "tables": {}}
    for domain in args.domains.split(","):
        spec = DOMAINS[domain]
        seen, unseen = spec["train"].split(","), [t for t in spec["unseen"].split(",") if t]
        extra = (extra_tasks(domain) if args.extra_train_tasks == "all" else
                 [t for t in args.extra_train_tasks.split(",") if t and task_spec(t).domain == domain])
        if set(extra) & set(unseen + seen):
            raise SystemExit(f"--extra-train-tasks may not name a seen or unseen task: {set(extra) & set(unseen + seen)}")
        model = getattr(args, f"model_{domain}")
        if model is None:
            model = work / f"{domain}.safetensors"
            if not model.exists():  # collect the training videos (those not collected yet) and train
                data = []
                for task in seen + extra:
                    path = work / "data" / f"{task}.h5"
                    if not path.with_name(path.name + ".done").exists():
                        episodes = (args.extra_train_episodes if task in extra
                                    else args.train_episodes or spec["episodes"])
                        timed(f"collect {task}", lambda: collect_experts(
                            task, episodes, None if args.steps_after_success < 0 else args.steps_after_success, path))
                    data.append(str(path))
                ckpt, codec = Path(str(model) + ".ckpt"), getattr(args, f"codec_{domain}")
                cfg = TrainConfig(data=data, out=str(model), preset=args.preset, video_model=args.video_model,
                                  codec_steps=args.codec_steps,
                                  video_steps=args.video_steps, frame_skip=args.frame_skip, seed=TRAIN_SEED,
                                  codec_from=str(codec) if codec else None,
                                  checkpoint_dir=str(ckpt), resume=ckpt.is_dir() and any(ckpt.glob("ckpt-*.pt")))
                timed(f"train {domain}", lambda: train_reward_model(cfg))
        for reward_type in args.reward_types.split(","):
            results = {}
            scores = work / "scores" / (f"{domain}-{reward_type}" +
                                        (f"-n{args.num_samples}" if args.num_samples > 1 else ""))
            for task in [t for t in seen + unseen if not args.tasks or t in args.tasks.split(",")]:
                if args.cached_only and not (scores / f"{task}.json").exists():
                    continue
                episodes = timed(f"eval episodes {task}", lambda: eval_episodes(
                    task, args.eval_episodes, EVAL_SEED, work / "eval" / f"{task}.npz"))
                results[task] = timed(f"score {domain} {reward_type} {task}", lambda: score_and_analyse(
                    model, task, episodes, reward_type, scores / f"{task}.json", args.dtype, args.num_samples))
            for split, tasks in (("seen", seen), ("unseen", unseen)):
                done = [t for t in tasks if t in results]
                if done:
                    title = (f"{domain} {split} tasks ({len(done)} of {len(tasks)} evaluated), {reward_type} reward, "
                             f"model {model}")
                    summary["tables"][f"{domain}/{split}/{reward_type}"] = print_table(title, [results[t] for t in done])
        if args.ship:
            from diffusion_reward.models.pretrained import PRETRAINED_DIR

            summary[f"ship/{domain}"] = ship(model, domain, seen + unseen, work,
                                             PRETRAINED_DIR / f"{domain}.safetensors",
                                             None if args.steps_after_success < 0 else args.steps_after_success,
                                             args.reward_types.split(","))
    print("\ncolumns: AUROC(expert vs epsilon=1) [bootstrap 95 %] on the task rows and whole episodes; paired = "
          "same-seed expert win rate; Spearman(epsilon, task-row mean); AUROC vs the zero-action and frozen-first-"
          "frame controls (task rows); static-transition fraction at epsilon 0 / 1; Spearman(row reward, context "
          "motion); expert reward before / after success; per-row SNR")
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items() if k.startswith(("train", "collect"))))
    summary["targets"] = TARGETS
    (work / "summary.json").write_text(json.dumps(summary | {"timings_s": timings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
