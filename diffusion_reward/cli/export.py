"""`diffusion-reward export`: TorchScript (and ONNX) policy with its preprocessing baked in, for the robot; or, with
`--d3rlpy`, a params.json + model.pt bundle that plain d3rlpy loads (`offline/d3rlpy_bundle.py`)."""
from __future__ import annotations

import argparse
import os

from ..errors import UserError
from ..outputs import check_output


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, metavar="POLICY_DIR", help="folder written by train-policy")
    p.add_argument("--out", required=True, metavar="EXPORT_DIR",
                   help="folder for policy.ts + policy.json (with --d3rlpy: params.json, model.pt, policy.json, "
                        "README.md)")
    p.add_argument("--checkpoint", help="weights inside POLICY_DIR to export, e.g. checkpoints/step_5000.pt "
                                        "(default: the final weights)")
    p.add_argument("--onnx", action="store_true", help="also write policy.onnx")
    p.add_argument("--d3rlpy", action="store_true",
                   help="write a bundle that d3rlpy 2.8 alone loads, without a .d3 pickle or this package, instead of "
                        "TorchScript: d3rlpy.algos.IQL.from_json('EXPORT_DIR/params.json'), then "
                        "algo.load_model('EXPORT_DIR/model.pt'); image policies use d3rlpy's standard pixel encoder, "
                        "image + state policies ship drq_pixel.py to import first (see EXPORT_DIR/README.md)")
    p.add_argument("--force", action="store_true", help="write into an existing, non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from ..offline.export import export_policy
    from ..offline.train_policy import quiet_d3rlpy_logs

    check_output(args.out, {"--policy": args.policy}, force=args.force)
    if os.path.lexists(args.out) and not os.path.isdir(args.out):  # --force replaces a folder's files, not a file
        raise UserError(f"--out {args.out} is a file; export writes a folder (choose a folder path)")
    if args.d3rlpy and args.onnx:
        raise UserError("--onnx is written with the TorchScript export; --d3rlpy writes a d3rlpy bundle instead "
                        "(run export twice for both)")
    quiet_d3rlpy_logs()
    if args.d3rlpy:
        from ..offline.d3rlpy_bundle import export_d3rlpy

        out = export_d3rlpy(args.policy, args.out, checkpoint=args.checkpoint)
        print(f"exported a d3rlpy bundle to {out}: params.json + model.pt (load: see {out / 'README.md'})")
        return 0
    out = export_policy(args.policy, args.out, onnx=args.onnx, checkpoint=args.checkpoint)
    print(f"exported {out / 'policy.ts'}" + (f" and {out / 'policy.onnx'}" if args.onnx else ""))
    return 0
