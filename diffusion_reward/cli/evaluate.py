"""`diffusion-reward evaluate`: success rate in simulation (exported policy), or off-policy on held-out data."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


EXAMPLES = """examples:
  diffusion-reward evaluate --policy runs/iql --episodes 20 --video iql.mp4        # success rate in simulation
  diffusion-reward evaluate --policy runs/iql --positions seen
  diffusion-reward evaluate --policy runs/iql --data heldout.hdf5 --ope --mask valid   # no robot, no simulator
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EXAMPLES
    p.add_argument("--policy", required=True, metavar="POLICY", help="train-policy folder or export folder")
    sim = p.add_argument_group("simulation (default)")
    sim.add_argument("--task", help="task to run (default: the policy's training task)")
    sim.add_argument("--episodes", type=int, default=10, help="simulated episodes (one reset seed each)")
    sim.add_argument("--positions", choices=("seen", "unseen"), default="unseen",
                     help="layouts (reset seeds) from the training data, or new ones (default: unseen)")
    sim.add_argument("--max-steps", type=int, help="episode length (default: the task's)")
    sim.add_argument("--video", metavar="OUT.mp4", help="write the episodes to an mp4")
    ope = p.add_argument_group("off-policy evaluation on held-out data (no robot, no simulator)")
    ope.add_argument("--data", metavar="HELDOUT", help="held-out dataset (with the policy's reward label)")
    ope.add_argument("--ope", action="store_true", help="FQE estimate, initial-state value, action difference")
    ope.add_argument("--mask", help="evaluate only the episodes of this filter key (e.g. valid)")
    ope.add_argument("--checkpoint", help="weights inside POLICY to evaluate, e.g. checkpoints/step_5000.pt")
    ope.add_argument("--fqe-steps", type=int, default=2_000, help="gradient steps of fitted Q evaluation")
    p.add_argument("--seed", type=int, default=0, help="seed that draws the evaluation layouts (reset seeds) and seeds FQE")
    p.add_argument("--json", metavar="OUT.json", help="also write the result as JSON")
    p.add_argument("--force", action="store_true", help="replace an existing --json / --video (never an input)")


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..outputs import check_output

    inputs = {"--policy": args.policy, "--data": args.data}
    for flag, path in (("--json", args.json), ("--video", args.video)):
        if path:
            check_output(path, inputs, force=args.force, flag=flag)
    if args.ope or args.data:
        if not (args.ope and args.data):
            raise UserError("off-policy evaluation needs both --ope and --data HELDOUT.")
        from ..offline.ope import OPEConfig, off_policy_evaluate
        from ..offline.train_policy import quiet_d3rlpy_logs

        quiet_d3rlpy_logs()
        result = off_policy_evaluate(OPEConfig(policy=args.policy, data=args.data, mask=args.mask,
                                               checkpoint=args.checkpoint, fqe_steps=args.fqe_steps,
                                               seed=args.seed))
    else:
        from ..offline.evaluate import SimEvalConfig, evaluate_in_sim

        result = evaluate_in_sim(SimEvalConfig(policy=args.policy, task=args.task, episodes=args.episodes,
                                               seed=args.seed, positions=args.positions, video=args.video,
                                               max_steps=args.max_steps))
    print(result.summary())
    if args.json:
        _write_json(Path(args.json), result.to_dict())
    return 0


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
