"""`diffusion-reward export`: TorchScript (and ONNX) policy with its preprocessing baked in, for the robot."""
from __future__ import annotations

import argparse
import os

from ..errors import UserError
from ..outputs import check_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, metavar="POLICY_DIR", help="folder written by train-policy")
    p.add_argument("--out", required=True, metavar="EXPORT_DIR", help="folder for policy.ts + policy.json")
    p.add_argument("--checkpoint", help="weights inside POLICY_DIR to export, e.g. checkpoints/step_5000.pt "
                                        "(default: the final weights)")
    p.add_argument("--onnx", action="store_true", help="also write policy.onnx")
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from ..offline.export import export_policy
    from ..offline.train_policy import quiet_d3rlpy_logs

    check_output(args.out, {"--policy": args.policy}, force=args.force)
    if os.path.lexists(args.out) and not os.path.isdir(args.out):  # --force replaces a folder's files, not a file
        raise UserError(f"--out {args.out} is a file; export writes a folder (choose a folder path)")
    quiet_d3rlpy_logs()
    out = export_policy(args.policy, args.out, onnx=args.onnx, checkpoint=args.checkpoint)
    print(f"exported {out / 'policy.ts'}" + (f" and {out / 'policy.onnx'}" if args.onnx else ""))
    return 0
