"""`diffusion-reward train-policy`: offline RL (d3rlpy) on a reward-labelled dataset."""
from __future__ import annotations

import argparse

from ..offline.mdp import OBS_MODES
from ..offline.train_policy import ALGOS


EXAMPLES = """examples:
  diffusion-reward train-policy --data labelled.hdf5 --algo iql --obs state --out runs/iql
  diffusion-reward train-policy --data labelled.hdf5 --reward sparse --obs image --frame-stack 3 --out runs/sparse
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.add_argument("--data", required=True, metavar="LABELLED", help="dataset with reward labels (`relabel` output)")
    p.add_argument("--out", required=True, metavar="POLICY_DIR", help="new policy folder (never overwritten)")
    p.add_argument("--algo", choices=ALGOS, default="iql", help="d3rlpy algorithm")
    p.add_argument("--reward", default="diffusion",
                   help="diffusion (the dataset's diffusion-reward label, entropy or likelihood) | entropy | "
                        "likelihood | sparse | <label name> (default: diffusion)")
    p.add_argument("--alpha", type=float, default=0.95,
                   help="Eq. 5 weight of the RND term; the diffusion term gets (1 - alpha). RND itself is off "
                        "offline (r_rnd = 0). Use 0 for pen-like tasks (default: 0.95)")
    p.add_argument("--beta", type=float, default=1.0, help="weight of the sparse success reward (default: 1)")
    p.add_argument("--obs", choices=OBS_MODES, default="image",
                   help="what the policy sees: camera frames, the state vector, or both")
    p.add_argument("--frame-stack", type=int, default=1, metavar="K",
                   help="frames stacked along channels for image observations (oldest first)")
    p.add_argument("--steps", type=int, default=10_000, metavar="N", help="gradient steps (default: 10000)")
    p.add_argument("--batch-size", type=int, default=64, help="transitions per gradient step")
    p.add_argument("--checkpoint-every", type=int, default=1_000, metavar="N",
                   help="save checkpoints/step_N.pt and a metrics line every N steps (default: 1000)")
    p.add_argument("--mask", help="train only on the episodes of this filter key (e.g. train)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch sampling")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda or cuda:N")
    p.add_argument("--onnx", action="store_true", help="also export export/policy.onnx")


def run(args: argparse.Namespace) -> int:
    from ..offline.train_policy import TrainPolicyConfig, quiet_d3rlpy_logs, train_policy

    quiet_d3rlpy_logs()
    config = TrainPolicyConfig(
        data=args.data, out=args.out, algo=args.algo, reward=args.reward, alpha=args.alpha, beta=args.beta,
        obs=args.obs, frame_stack=args.frame_stack, steps=args.steps, batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every, mask=args.mask, seed=args.seed, device=args.device,
        onnx=args.onnx)
    out = train_policy(config)
    print(f"policy written to {out} (TorchScript for the robot: {out / 'export' / 'policy.ts'})")
    return 0
