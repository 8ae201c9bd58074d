"""The paper's real-robot offline-RL study (its Fig. 10), in simulation: does the diffusion reward help an
offline learner, and more than VIPER's?

Pipeline (every stage is the `diffusion-reward` subcommand a user would type, run as a subprocess; a stage
whose output exists is skipped, so an interrupted study resumes where it stopped):

1. reward models (unless --reward-model / --viper-model): expert videos of the task (50, ending 30 agent steps
   after success: the reward-quality recipe of the shipped models) -> two video models on the same frozen codec
   (the shipped MetaWorld model's, --codec-from): VQ-Diffusion (Diffusion Reward) and VideoGPT (VIPER), `base`
   preset, frame skip 4 -> their standardisation statistics on the same videos
2. a teleop-like dataset on button-press-topdown-v3 (`--mix`, default 10 expert + 10 with epsilon 0.5 +
   10 with epsilon 0.9 episodes; epsilon = probability of a uniformly random action per step, so the 0.9
   group mostly fails within the 100-step time limit). Like a teleoperator, collection stops an episode at
   its first success (terminal); failures run to the time limit (timeout).
3. label it three ways with relabel: Diffusion Reward's entropy (the paper's Eq. 3) and likelihood (what the
   shipped models score), VIPER's likelihood; the sparse baseline uses the dataset's own success rewards
4. train the same algorithm with the same budget for every reward and seed (Eq. 5; RND off offline: r_rnd = 0):
   sparse:            r = beta * r_sparse
   dr-entropy:        r = (1 - alpha) * r_ce_bar + beta * r_sparse
   dr-likelihood:     r = (1 - alpha) * r_lik_bar + beta * r_sparse
   viper:             r = (1 - alpha) * r_viper_bar + beta * r_sparse
5. evaluate each policy in simulation on layouts seen in the data and on held-out ones.

Seen vs unseen: MetaWorld draws the button position from the reset seed. The dataset's episodes use reset
seeds from collect's --seed; "seen" evaluation replays those seeds, "unseen" draws seeds from
[1e6, 2e6) that no training episode used (see diffusion_reward.offline.evaluate).

    python bench/button_press_study.py --workdir runs/bps --obs state --alpha 0 --jobs 2   # README table
    python bench/button_press_study.py --workdir runs/study                          # image obs (GPU-sized)
    nice -n 10 python bench/button_press_study.py --workdir runs/study_small --reduced   # minutes: plumbing

Prints a table: success rate (mean over training seeds +- standard error over seeds, and a Wilson 95 %
interval over the pooled evaluation episodes) per reward and split. Measured results: README, "Button-press
study".
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from diffusion_reward.offline.evaluate import wilson_interval

TASK = "button-press-topdown-v3"
# reward -> (reward model, reward type it is labelled with); sparse uses the dataset's own success rewards
REWARDS = {"sparse": None, "dr-entropy": ("diffusion", "entropy"), "dr-likelihood": ("diffusion", "likelihood"),
           "viper": ("viper", "viper")}
VIDEO_MODELS = {"diffusion": "vqdiffusion", "viper": "videogpt"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--reward-model", type=Path, help="trained Diffusion Reward model with entropy and likelihood "
                                                     "statistics for this task (default: train one in the workdir)")
    p.add_argument("--viper-model", type=Path, help="trained VideoGPT (VIPER) model with statistics for this task "
                                                    "(default: train one in the workdir)")
    p.add_argument("--rewards", default=",".join(REWARDS), help=f"which of {', '.join(REWARDS)} (default: all)")
    p.add_argument("--mix", help="epsilon:episodes groups of the dataset (default 0:10,0.5:10,0.9:10)")
    p.add_argument("--expert-episodes", type=int, help="expert videos for the reward models (default 50)")
    p.add_argument("--steps-after-success", type=int, default=30,
                   help="expert videos end this many agent steps after success (default 30)")
    p.add_argument("--reward-preset", help="default base")
    p.add_argument("--reward-steps", type=int, help="video-model (and codec, without --codec-from) steps "
                                                    "(default: preset)")
    p.add_argument("--codec-from", type=Path, help="frozen codec of both reward models (default: the shipped "
                                                   "MetaWorld model's; 'none' trains one)")
    p.add_argument("--algo", default="iql")
    p.add_argument("--obs", choices=("state", "image", "both"), help="policy observations (default image)")
    p.add_argument("--frame-stack", type=int, default=1)
    p.add_argument("--steps", type=int, help="gradient steps per policy (default 20000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--alpha", type=float, default=0.95)
    p.add_argument("--seeds", type=int, default=3, help="training seeds per reward (>= 3 for a standard error)")
    p.add_argument("--eval-episodes", type=int, help="per policy and split (default 20)")
    p.add_argument("--max-steps", type=int, help="evaluation episode length (default: the task's)")
    p.add_argument("--jobs", type=int, default=1, help="stages run side by side (reward models, policies), "
                                                       "each one thread (default 1)")
    p.add_argument("--reduced", action="store_true",
                   help="CPU-minutes plumbing check: mix 0:6,0.5:6,0.9:6, 10 expert videos, tiny reward models "
                        "trained 300 steps with their own codec, state observations, 2000 steps, 10 evaluation "
                        "episodes (explicit flags still win)")
    args = p.parse_args(argv)
    if args.reduced:
        defaults = {"mix": "0:6,0.5:6,0.9:6", "expert_episodes": 10, "reward_preset": "tiny", "reward_steps": 300,
                    "codec_from": "none", "obs": "state", "steps": 2_000, "eval_episodes": 10}
    else:
        defaults = {"mix": "0:10,0.5:10,0.9:10", "expert_episodes": 50, "reward_preset": "base", "obs": "image",
                    "steps": 20_000, "eval_episodes": 20}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.rewards = [r.strip() for r in args.rewards.split(",") if r.strip()]
    unknown = set(args.rewards) - set(REWARDS)
    if unknown:
        p.error(f"unknown --rewards {', '.join(sorted(unknown))}; choose from {', '.join(REWARDS)}")
    if args.codec_from is None:
        from diffusion_reward.models.pretrained import PRETRAINED_DIR
        args.codec_from = PRETRAINED_DIR / "metaworld.safetensors"
    return args


def cli(*argv: str, log: Path) -> None:
    """Run one `diffusion-reward` subcommand on one thread; its output goes to the stage's log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ diffusion-reward {' '.join(argv)}", flush=True)
    start = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "a") as f:
        code = subprocess.call([sys.executable, "-m", "diffusion_reward", *argv], stdout=f, stderr=subprocess.STDOUT,
                               env=env)
    if code != 0:
        raise SystemExit(f"stage failed (exit {code}); see {log}")
    print(f"  done in {time.time() - start:.0f} s: {log.stem}", flush=True)


def stage(w: Path, name: str, output: Path | None, *argv: str, resume_flag: str | None = None) -> None:
    """Run a stage once: its marker `done/<name>` is written only after it succeeds. An output left by an
    interrupted run is resumed (`resume_flag`) or moved aside, never overwritten."""
    marker = w / "done" / name
    if marker.exists():
        print(f"cached: {name}")
        return
    if output is not None and output.exists():
        if resume_flag:
            argv = (*argv, resume_flag)
        else:
            output.rename(output.with_name(f"{output.name}.stale-{int(time.time())}"))
    cli(*argv, log=w / "logs" / f"{name}.log")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def side_by_side(jobs: int, units: list) -> list:
    """Run independent stage groups (callables) `jobs` at a time; the first failure stops the study."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [f.result() for f in [pool.submit(u) for u in units]]


def reward_models(args, w: Path) -> dict[str, Path]:
    """The Diffusion Reward and VIPER models the chosen rewards need, trained on the same videos and codec."""
    needed = {REWARDS[r][0] for r in args.rewards if REWARDS[r]}
    given = {"diffusion": args.reward_model, "viper": args.viper_model}
    models = {kind: given[kind] or w / f"reward_{kind}.safetensors" for kind in needed}
    expert = w / "expert.hdf5"
    if any(not given[kind] for kind in needed):
        stage(w, "expert", expert, "collect", "--task", TASK, "--episodes", str(args.expert_episodes),
              "--epsilon", "0", "--seed", "0", "--steps-after-success", str(args.steps_after_success),
              "--out", str(expert))
    steps = [] if args.reward_steps is None else ["--video-steps", str(args.reward_steps)]
    codec = [] if str(args.codec_from) == "none" else ["--codec-from", str(args.codec_from)]
    if not codec and args.reward_steps is not None:
        steps += ["--codec-steps", str(args.reward_steps)]

    def train(kind: str):
        def run():
            if given[kind]:
                return
            stage(w, f"train_{kind}", models[kind], "train-reward", "--data", str(expert), "--preset",
                  args.reward_preset, "--video-model", VIDEO_MODELS[kind], "--seed", "0", "--out", str(models[kind]),
                  *codec, *steps)
            for reward, spec in REWARDS.items():
                if spec and spec[0] == kind and reward in args.rewards:
                    stage(w, f"stats_{reward}", None, "stats", "--model", str(models[kind]), "--data", str(expert),
                          "--task", TASK, "--reward-type", spec[1], "--in-place")
        return run

    side_by_side(args.jobs, [train(kind) for kind in sorted(needed)])
    return models


def dataset(args, w: Path) -> Path:
    data = w / "teleop.hdf5"
    for i, group in enumerate(args.mix.split(",")):
        epsilon, episodes = group.split(":")
        # the groups append to one dataset (an interrupted group re-runs and appends again); collect seeds
        # 1000, 2000, ... keep the groups' layouts distinct
        stage(w, f"teleop_group{i}", None, "collect", "--task", TASK, "--episodes", episodes,
              "--epsilon", epsilon, "--seed", str(1000 * (i + 1)), "--stop-on-success", "--out", str(data))
    return data


def label(args, w: Path, models: dict[str, Path], data: Path) -> dict[str, Path]:
    """One labelled copy of the dataset per dense reward; sparse reads any copy's success rewards."""
    labelled = {}

    def relabel(reward: str):
        kind, reward_type = REWARDS[reward]
        out = labelled[reward] = w / f"labelled_{reward}.hdf5"
        return lambda: stage(w, f"relabel_{reward}", out, "relabel", "--model", str(models[kind]), "--input",
                             str(data), "--out", str(out), "--task", TASK, "--reward-type", reward_type,
                             resume_flag="--resume")

    side_by_side(args.jobs, [relabel(r) for r in args.rewards if REWARDS[r]])
    return labelled


def run_name(args) -> str:
    """Policies and evaluations of one learner configuration live under runs/<run_name>/, so several
    configurations share the collected and labelled data of one workdir."""
    return f"{args.algo}_{args.obs}_k{args.frame_stack}_{args.steps}steps_alpha{args.alpha:g}"


def train_and_evaluate(args, w: Path, labelled: dict[str, Path], data: Path) -> dict:
    results, run = {}, w / "runs" / run_name(args)

    def unit(reward: str, seed: int):
        def go():
            name = f"{reward}_seed{seed}"
            policy = run / "policies" / name
            stage(w, f"{run.name}/train_{name}", policy, "train-policy", "--data", str(labelled.get(reward, data)),
                  "--algo", args.algo, "--reward", "sparse" if reward == "sparse" else "diffusion",
                  "--alpha", str(args.alpha), "--obs", args.obs, "--frame-stack", str(args.frame_stack),
                  "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                  "--checkpoint-every", str(args.steps), "--seed", str(seed), "--out", str(policy))
            for split in ("seen", "unseen"):
                out = run / "eval" / f"{name}_{split}.json"
                extra = [] if args.max_steps is None else ["--max-steps", str(args.max_steps)]
                stage(w, f"{run.name}/eval_{name}_{split}", out, "evaluate", "--policy", str(policy),
                      "--episodes", str(args.eval_episodes), "--positions", split, "--seed", str(10_000 + seed),
                      "--json", str(out), *extra)
                results[(reward, seed, split)] = json.loads(out.read_text())
        return go

    side_by_side(args.jobs, [unit(r, s) for s in range(args.seeds) for r in args.rewards])
    return results


def table(results: dict, args) -> str:
    lines = [(f"button-press-topdown-v3, {args.algo} on {args.obs} obs, {args.steps} steps, alpha {args.alpha:g}, "
             f"{args.seeds} seeds, {args.eval_episodes} episodes per split; mix {args.mix}"),
             "success rate: mean over seeds +- standard error [Wilson 95 % interval over the pooled episodes]",
             f"{'reward':<15}{'seen':>28}{'unseen':>28}"]
    for reward in args.rewards:
        cells = []
        for split in ("seen", "unseen"):
            runs = [results[(reward, s, split)] for s in range(args.seeds)]
            rates = np.array([r["success_rate"] for r in runs])
            se = rates.std(ddof=1) / np.sqrt(len(rates)) if len(rates) > 1 else float("nan")
            pooled = [ok for r in runs for ok in r["episode_success"]]
            lo, hi = wilson_interval(sum(pooled), len(pooled))
            cells.append(f"{rates.mean():.2f} +- {se:.2f} [{lo:.2f}, {hi:.2f}]")
        lines.append(f"{reward:<15}{cells[0]:>28}{cells[1]:>28}")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    w = args.workdir
    w.mkdir(parents=True, exist_ok=True)
    models = reward_models(args, w)
    data = dataset(args, w)
    labelled = label(args, w, models, data)
    results = train_and_evaluate(args, w, labelled, data)
    text = table(results, args)
    (w / "runs" / run_name(args) / "table.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
