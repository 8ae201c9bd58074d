"""`diffusion-reward`: one entry point, one subcommand per job.

Each subcommand lives in its own module under `diffusion_reward.cli` exposing
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only when their command runs,
so `diffusion-reward info` does not pay for importing torch or MuJoCo.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys

from ..errors import UserError

# name -> (module, one-line help). Order is the order `--help` lists them: the pipeline, left to right.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the whole pipeline end to end on an embedded default (CPU, minutes)"),
    "collect": ("collect", "collect simulated episodes (expert / epsilon-degraded) into a dataset"),
    "info": ("info", "summarise a dataset; --verify reads every episode"),
    "train-reward": ("train_reward", "train the reward model (VQ-GAN codec, then VQ-Diffusion video model)"),
    "stats": ("stats", "compute reward standardisation statistics over expert episodes"),
    "score": ("score", "score frames or a dataset with a reward model"),
    "import-upstream": ("import_upstream", "convert the authors' checkpoints into a model file"),
    "report": ("report", "reward QA report: expert vs epsilon-degraded episodes, metrics and plots"),
    "relabel": ("relabel", "label recorded data (HDF5, rosbag2, RealSense, PNG folders) with learned rewards"),
    "convert": ("convert", "write a dataset as robomimic, d3rlpy or Minari files (Eq. 5 rewards, next_obs, masks)"),
    "view": ("view", "write a dataset as an MCAP (video, rewards, state) to open in Foxglove"),
    "train-policy": ("train_policy", "train an offline policy with d3rlpy on a labelled dataset"),
    "evaluate": ("evaluate", "evaluate a policy in simulation or off-policy on held-out data"),
    "export": ("export", "export a trained policy to TorchScript / ONNX for the robot"),
    "live": ("live", "run pipeline nodes on ROS 2 DDS without a ROS install"),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """`--help` shows every flag's default (unless its text already says it) and keeps the examples epilog as
    written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is argparse.SUPPRESS or action.nargs == 0
                or action.required or default == []):
            return text  # on/off switches and flags without a value need no default shown
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse's own errors (unknown flag, bad value, missing argument) as a UserError: one `error:` line and
    exit 2 like every other bad input, instead of a usage block. Subparsers inherit the class."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="diffusion-reward",
        description="Diffusion Reward: dense rewards from expert videos, from simulation to real robots.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    command = _requested_command(sys.argv[1:])
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if name == command:  # only the command that runs needs its (possibly heavy) module
            mod = importlib.import_module(f"{__name__}.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run, _flags=flag_names(p))
    return parser


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{config field: its flag} of a command (the flag's `dest` is the field it sets; its long spelling wins)."""
    return {a.dest: max(a.option_strings, key=len) for a in parser._actions if a.option_strings}


def in_flag_names(message: str, flags: dict[str, str]) -> str:
    """A library message on the command line: each `field` the command has a flag for, named by that flag."""
    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)`", lambda m: flags.get(m.group(1), m.group(0)), message)


def _requested_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv[1:] = argv
    os.environ.setdefault("MUJOCO_GL", "egl")
    flags: dict[str, str] = {}
    try:
        args = build_parser().parse_args()
        flags = args._flags
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a reader that stopped early (`info --json | head`) shows up here, not at exit
        return code
    except UserError as exc:
        print(f"error: {in_flag_names(str(exc), flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away: nothing to report, as for other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit flush must not fail again
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
