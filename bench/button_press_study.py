"""The paper's real-robot offline-RL study, in simulation: does the diffusion reward help an offline learner?

Pipeline (every stage is the `diffusion-reward` subcommand a user would type, run as a subprocess; a stage
whose output exists is skipped, so an interrupted study resumes where it stopped):

1. reward model (unless --reward-model): collect expert videos -> train-reward -> stats (entropy, likelihood)
2. a teleop-like dataset on button-press-topdown-v3 (`--mix`, default 10 expert + 10 with epsilon 0.5 +
   10 with epsilon 0.9 episodes; epsilon = probability of a uniformly random action per step, so the 0.9
   group mostly fails within the 100-step time limit). Like a teleoperator, collection stops an episode at
   its first success (terminal); failures run to the time limit (timeout). Expert videos for the reward
   model stop at success too (the paper's videos are short).
3. label it two ways with relabel: entropy (Diffusion Reward) and likelihood (VIPER-style); the sparse
   baseline uses the dataset's own success rewards
4. train the same algorithm with the same budget for every reward and seed:
   sparse:     r = beta * r_sparse
   diffusion:  r = (1 - alpha) * r_ce_bar + beta * r_sparse      (RND off offline: r_rnd = 0)
   likelihood: r = (1 - alpha) * r_lik_bar + beta * r_sparse
5. evaluate each policy in simulation on layouts seen in the data and on held-out ones.

Seen vs unseen: MetaWorld draws the button position from the reset seed. The dataset's episodes use reset
seeds from collect's --seed; "seen" evaluation replays those seeds, "unseen" draws seeds from
[1e6, 2e6) that no training episode used (see diffusion_reward.offline.evaluate).

    python bench/button_press_study.py --workdir runs/study            # full
    nice -n 10 python bench/button_press_study.py --workdir runs/study_small --reduced

Prints a table: success rate (mean over training seeds +- standard error over seeds) per reward and split.

Measured (CPU, shared 2-core machine, `--reduced`: tiny reward model trained 300+300 steps on 10 expert
videos; 18-episode dataset, 12 successful; 10 evaluation episodes per split and seed):
    iql, state, 2000 steps, alpha 0.95   seen / unseen: sparse .73+-.03 / .47+-.13, diffusion .73+-.03 / .47+-.13,
                                         likelihood .73+-.03 / .47+-.13 (2000 IQL steps are ~BC: actions
                                         differ by 0.015 between rewards, so the reward does not matter yet)
    iql, state, 2000 steps, alpha 0      sparse .73+-.03 / .47+-.13, diffusion .57+-.09 / .37+-.03,
                                         likelihood .67+-.09 / .53+-.07
    td3plusbc, state, 5000 steps         sparse .50+-.25 / .40+-.15, diffusion .00+-.00 / .00+-.00,
                                         likelihood .37+-.12 / .33+-.18
With this barely trained reward model the dense terms do not help (TD3+BC exploits the diffusion term and
fails); the paper's claim needs the full run (trained reward model, image observations, 20000 steps).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TASK = "button-press-topdown-v3"
REWARDS = ("sparse", "diffusion", "likelihood")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--reward-model", type=Path, help="trained reward model with stats for this task "
                                                     "(default: train a tiny one in the workdir)")
    p.add_argument("--mix", help="epsilon:episodes groups of the dataset (default 0:10,0.5:10,0.9:10)")
    p.add_argument("--expert-episodes", type=int, help="expert videos for the reward model (default 20)")
    p.add_argument("--reward-preset", default="tiny")
    p.add_argument("--reward-steps", type=int, help="codec and video-model steps (default: preset)")
    p.add_argument("--algo", default="iql")
    p.add_argument("--obs", choices=("state", "image", "both"), help="policy observations (default image)")
    p.add_argument("--frame-stack", type=int, default=1)
    p.add_argument("--steps", type=int, help="gradient steps per policy (default 20000)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--alpha", type=float, default=0.95)
    p.add_argument("--seeds", type=int, default=3, help="training seeds per reward (>= 3 for a standard error)")
    p.add_argument("--eval-episodes", type=int, help="per policy and split (default 20)")
    p.add_argument("--max-steps", type=int, help="evaluation episode length (default: the task's)")
    p.add_argument("--reduced", action="store_true",
                   help="CPU-sized defaults: mix 0:6,0.5:6,0.9:6, 10 expert videos, 300 reward-model steps, state "
                        "observations, 2000 steps, 10 evaluation episodes (explicit flags still win)")
    args = p.parse_args(argv)
    defaults = (dict(mix="0:6,0.5:6,0.9:6", expert_episodes=10, reward_steps=300, obs="state", steps=2_000,
                     eval_episodes=10) if args.reduced else
                dict(mix="0:10,0.5:10,0.9:10", expert_episodes=20, obs="image", steps=20_000, eval_episodes=20))
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def cli(*argv: str, log: Path) -> None:
    """Run one `diffusion-reward` subcommand; its output goes to the stage's log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ diffusion-reward {' '.join(argv)}", flush=True)
    start = time.time()
    with open(log, "a") as f:
        code = subprocess.call([sys.executable, "-m", "diffusion_reward", *argv], stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"stage failed (exit {code}); see {log}")
    print(f"  done in {time.time() - start:.0f} s", flush=True)


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


def reward_model(args, w: Path) -> Path:
    if args.reward_model:
        return args.reward_model
    expert, model = w / "expert.hdf5", w / "reward_model.safetensors"
    stage(w, "expert", expert, "collect", "--task", TASK, "--episodes", str(args.expert_episodes),
          "--epsilon", "0", "--seed", "0", "--stop-on-success", "--out", str(expert))
    steps = [] if args.reward_steps is None else ["--codec-steps", str(args.reward_steps),
                                                  "--video-steps", str(args.reward_steps)]
    stage(w, "train_reward", model, "train-reward", "--data", str(expert), "--preset", args.reward_preset,
          "--seed", "0", "--out", str(model), *steps)
    for kind in ("entropy", "likelihood"):
        stage(w, f"stats_{kind}", None, "stats", "--model", str(model), "--data", str(expert), "--task", TASK,
              "--reward-type", kind, "--in-place")
    return model


def dataset(args, w: Path) -> Path:
    data = w / "teleop.hdf5"
    for i, group in enumerate(args.mix.split(",")):
        epsilon, episodes = group.split(":")
        # the groups append to one dataset (an interrupted group re-runs and appends again); collect seeds
        # 1000, 2000, ... keep the groups' layouts distinct
        stage(w, f"teleop_group{i}", None, "collect", "--task", TASK, "--episodes", episodes,
              "--epsilon", epsilon, "--seed", str(1000 * (i + 1)), "--stop-on-success", "--out", str(data))
    return data


def labelled_path(w: Path, kind: str) -> Path:
    return w / f"labelled_{kind}.hdf5"


def run_name(args) -> str:
    """Policies and evaluations of one learner configuration live under runs/<run_name>/, so several
    configurations share the collected and labelled data of one workdir."""
    return f"{args.algo}_{args.obs}_k{args.frame_stack}_{args.steps}steps_alpha{args.alpha:g}"


def train_and_evaluate(args, w: Path, labelled: dict[str, Path]) -> dict:
    results, run = {}, w / "runs" / run_name(args)
    for reward in REWARDS:
        for seed in range(args.seeds):
            name = f"{reward}_seed{seed}"
            policy = run / "policies" / name
            stage(w, f"{run.name}/train_{name}", policy, "train-policy", "--data", str(labelled[reward]),
                  "--algo", args.algo, "--reward", reward, "--alpha", str(args.alpha), "--obs", args.obs,
                  "--frame-stack", str(args.frame_stack), "--steps", str(args.steps),
                  "--batch-size", str(args.batch_size), "--checkpoint-every", str(args.steps),
                  "--seed", str(seed), "--out", str(policy))
            for split in ("seen", "unseen"):
                out = run / "eval" / f"{name}_{split}.json"
                extra = [] if args.max_steps is None else ["--max-steps", str(args.max_steps)]
                stage(w, f"{run.name}/eval_{name}_{split}", out, "evaluate", "--policy", str(policy),
                      "--episodes", str(args.eval_episodes), "--positions", split, "--seed", str(10_000 + seed),
                      "--json", str(out), *extra)
                results[(reward, seed, split)] = json.loads(out.read_text())
    return results


def table(results: dict, args) -> str:
    lines = [f"button-press-topdown-v3, {args.algo} on {args.obs} obs, {args.steps} steps, alpha {args.alpha:g}, "
             f"{args.seeds} seeds, {args.eval_episodes} episodes per split; mix {args.mix}",
             f"{'reward':<12}{'seen':>20}{'unseen':>20}"]
    for reward in REWARDS:
        cells = []
        for split in ("seen", "unseen"):
            rates = np.array([results[(reward, s, split)]["success_rate"] for s in range(args.seeds)])
            se = rates.std(ddof=1) / np.sqrt(len(rates)) if len(rates) > 1 else float("nan")
            cells.append(f"{rates.mean():.2f} +- {se:.2f}")
        lines.append(f"{reward:<12}{cells[0]:>20}{cells[1]:>20}")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    w = args.workdir
    w.mkdir(parents=True, exist_ok=True)
    model = reward_model(args, w)
    data = dataset(args, w)
    labelled = {"sparse": labelled_path(w, "entropy"), "diffusion": labelled_path(w, "entropy"),
                "likelihood": labelled_path(w, "likelihood")}
    for kind in ("entropy", "likelihood"):
        stage(w, f"relabel_{kind}", labelled_path(w, kind), "relabel", "--model", str(model), "--input", str(data),
              "--out", str(labelled_path(w, kind)), "--task", TASK, "--reward-type", kind, resume_flag="--resume")
    results = train_and_evaluate(args, w, labelled)
    text = table(results, args)
    (w / "runs" / run_name(args) / "table.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
