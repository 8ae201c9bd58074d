"""`diffusion-reward evaluate`: success rate in simulation (exported policy), or off-policy on held-out data."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .config_args import add_config_arguments, config_from_args


EXAMPLES = """examples:
  diffusion-reward evaluate --policy runs/iql --episodes 20 --video iql.mp4        # success rate in simulation
  diffusion-reward evaluate --policy runs/iql --positions seen
  diffusion-reward evaluate --policy runs/iql --data heldout.hdf5 --ope --mask valid   # no robot, no simulator
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..offline.evaluate import SimEvalConfig
    from ..offline.ope import OPEConfig

    p.epilog = EXAMPLES
    add_config_arguments(p, SimEvalConfig, only=("policy",))
    add_config_arguments(p.add_argument_group("simulation (default)"), SimEvalConfig,
                         only=("task", "episodes", "positions", "max_steps", "video"))
    ope = p.add_argument_group("off-policy evaluation on held-out data (no robot, no simulator)")
    ope.add_argument("--ope", action="store_true", help="FQE estimate, initial-state value, action difference")
    add_config_arguments(ope, OPEConfig, only=("data", "mask", "checkpoint", "fqe_steps"))
    add_config_arguments(p, SimEvalConfig, only=("seed",))
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
        result = off_policy_evaluate(config_from_args(OPEConfig, args))
    else:
        from ..offline.evaluate import SimEvalConfig, evaluate_in_sim

        result = evaluate_in_sim(config_from_args(SimEvalConfig, args))
    print(result.summary())
    if args.json:
        _write_json(Path(args.json), result.to_dict())
    return 0


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)
