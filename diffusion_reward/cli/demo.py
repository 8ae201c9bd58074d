"""The whole loop on an embedded default, on a CPU, in minutes.

collect expert videos -> the shipped MetaWorld reward model (models/pretrained; `--train-reward-model` trains a
tiny one on the expert videos instead) -> standardisation statistics for the task -> reward QA report -> collect
a teleop-like mixed dataset -> relabel it with the learned reward -> train an offline policy -> evaluate it in
simulation. Every stage calls the same subcommand a user would type, and a finished stage is skipped
(its output exists; for the dataset stages, which take `--resume`, a `.done` file written after them), so
an interrupted demo resumes, finishing a half-written dataset, and nothing written before is overwritten.
"""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from ..errors import UserError

TASK = "button-press-topdown-v3"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="working folder (default: %(default)s)")
    p.add_argument("--task", default=TASK, help="MetaWorld task (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of every stage (collection layouts, training, evaluation)")
    p.add_argument("--expert-episodes", type=int, default=6, metavar="N",
                   help="expert episodes collected for the reward model and its statistics")
    p.add_argument("--train-reward-model", action="store_true",
                   help="train a tiny reward model on the expert videos instead of using the shipped one")
    p.add_argument("--codec-steps", type=int, default=150,
                   help="with --train-reward-model: codec training steps (default: %(default)s)")
    p.add_argument("--video-steps", type=int, default=600,
                   help="with --train-reward-model: video-model steps (default: %(default)s)")
    p.add_argument("--policy-steps", type=int, default=300, help="offline RL steps (default: %(default)s)")


def stages(a: argparse.Namespace) -> list[tuple[str, Path, list[str]]]:
    d, t, s = a.out, a.task, a.seed
    expert, mixed = d / "expert.hdf5", d / "teleop.hdf5"
    model, labelled, policy = d / "reward_model.safetensors", d / "teleop_labelled.hdf5", d / "policy"
    collect_experts = ("collect expert videos", d / "expert.done",
                       ["collect", "--task", t, "--episodes", str(a.expert_episodes), "--epsilon", "0", "--seed",
                        str(s), "--out", str(expert), "--resume"])
    if a.train_reward_model:
        reward_model = [
            ("train the reward model (tiny preset)", d / "reward_model_trained.safetensors",
             ["train-reward", "--data", str(expert), "--preset", "tiny", "--codec-steps", str(a.codec_steps),
              "--video-steps", str(a.video_steps), "--codec-batch-size", "16", "--batch-size", "16", "--seed", str(s),
              "--out", str(d / "reward_model_trained.safetensors")]),
            ("reward statistics over the expert videos", model,
             ["stats", "--model", str(d / "reward_model_trained.safetensors"), "--data", str(expert), "--task", t,
              "--out", str(model)])]
    else:
        from ..models.pretrained import shipped_model_path

        reward_model = [("reward statistics of the shipped model over the expert videos", model,
                         ["stats", "--model", str(shipped_model_path(t)), "--data", str(expert), "--task", t,
                          "--out", str(model)])]
    return [
        collect_experts, *reward_model,
        ("reward QA report", d / "report" / "metrics.json",
         ["report", "--model", str(model), "--task", t, "--episodes", "2", "--max-steps", "40",
          "--out", str(d / "report"), "--force"]),  # an interrupted report (no metrics.json yet) is redone
        ("collect a teleop-like dataset (expert + degraded)", mixed.with_suffix(".expert.done"),
         ["collect", "--task", t, "--episodes", "3", "--epsilon", "0", "--seed", str(s + 1000), "--out", str(mixed),
          "--resume"]),
        ("", mixed.with_suffix(".degraded.done"),
         ["collect", "--task", t, "--episodes", "3", "--epsilon", "0.75", "--seed", str(s + 2000),
          "--out", str(mixed), "--resume"]),
        ("relabel it with the learned reward", labelled.with_suffix(".done"),
         ["relabel", "--model", str(model), "--input", str(mixed), "--out", str(labelled), "--task", t,
          "--dtype", "auto", "--resume"]),
        ("train an offline policy (IQL, diffusion reward + sparse)", policy / "policy.json",
         ["train-policy", "--data", str(labelled), "--algo", "iql", "--reward", "diffusion", "--obs", "state",
          "--steps", str(a.policy_steps), "--seed", str(s), "--out", str(policy)]),
        ("evaluate the policy in simulation", d / "evaluation.done",
         ["evaluate", "--policy", str(policy), "--task", t, "--episodes", "5", "--seed", str(s + 5000)]),
        ("summary of the labelled dataset", d / "info.done", ["info", str(labelled)]),
    ]


def run(args: argparse.Namespace) -> int:
    from ..outputs import check_writable
    from . import main as cli_main

    check_writable(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    plan = stages(args)
    started = time.monotonic()
    for i, (title, done_marker, argv) in enumerate(plan, 1):
        label = title or "(continued)"
        if done_marker.exists():
            print(f"[{i}/{len(plan)}] {label}: already done ({done_marker})")
            continue
        print(f"\n[{i}/{len(plan)}] {label}\n$ diffusion-reward {shlex.join(argv)}", flush=True)
        code = cli_main(argv)
        if code != 0:
            raise UserError(f"demo stage '{label}' failed (exit {code}); fix it and re-run: finished stages are kept")
        if done_marker.suffix == ".done":
            done_marker.touch()
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; everything is in {args.out}/")
    return 0
