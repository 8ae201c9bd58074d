"""Typed checks of configuration values, shared by the config dataclasses and the CLI: each rule is written once.

Every check raises a UserError naming the option: `name` is its config field (written `name` in the message,
which the CLI shows as the flag), or a phrase such as "parameter skip_step" (ROS parameters) written as it is. `check_memory` compares an estimate of what a setting will
allocate with MEMORY_CAP_FRACTION of the machine's physical memory (of the GPU's for a CUDA device), so a
flag that scales memory (`--batch-size 100000`, `--rate 1e9`) fails before anything is allocated.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import field

from .errors import UserError, named

SEED_MAX = 2**32 - 1  # numpy's legacy seeding (d3rlpy, MuJoCo layouts) takes no more
MEMORY_CAP_FRACTION = 0.5  # one job may plan to use at most half of the memory of the device it runs on


def config_field(default, help: str, **flag):
    """A config dataclass field that is also a command-line flag (`cli/config_args.py`), written once: its default,
    help and flag settings (`flag`: the name where it is not the field's, `metavar`, `choices`, `flag_help`). A
    `dataclasses.MISSING` default makes a required flag."""
    return field(default=default, metadata={"help": help, **flag})


def flag_name(f) -> str:
    """The command-line flag of a config field (`config_field`): its `flag`, else `--` + the name with dashes."""
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """An integer (not a bool, not a float) in [low, high]."""
    name = named(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{name} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise UserError(f"{name} must be {_bounds(low, high, above=False)}, got {value}")
    return int(value)


def check_float(name: str, value, low: float | None = None, high: float | None = None, above: bool = False) -> float:
    """A finite number in [low, high] (in (low, high] with `above`)."""
    name = named(name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and (value <= low if above else value < low)) or (high is not None and value > high):
        raise UserError(f"{name} must be {_bounds(low, high, above)}, got {value}")
    return float(value)


def check_seed(name: str, value) -> int:
    return check_int(name, value, 0, SEED_MAX)


def _bounds(low, high, above: bool) -> str:
    if high is None:
        return f"{'>' if above else '>='} {low}"
    if low is None:
        return f"<= {high}"
    return f"in {'(' if above else '['}{low}, {high}]"


def check_device(name: str, device: str) -> None:
    """A torch device this build and machine have: cpu, cuda or cuda:N."""
    import torch

    name = named(name)
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"{name} {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if parsed.type == "cpu":
        return
    if parsed.type != "cuda":
        raise UserError(f"{name} {device}: only cpu and cuda devices are supported")
    if not torch.cuda.is_available():
        raise UserError(f"{name} {device}: this torch build ({torch.__version__}) or machine has no CUDA device; "
                        f"use {name} cpu")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise UserError(f"{name} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def check_memory(nbytes: float, what: str, hint: str, device: str = "cpu") -> None:
    """UserError when `what` would need more than MEMORY_CAP_FRACTION of the device's memory."""
    if str(device).startswith("cuda"):
        import torch

        total, where = torch.cuda.get_device_properties(torch.device(device)).total_memory, "GPU"
    else:
        total, where = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "machine"
    cap = total * MEMORY_CAP_FRACTION
    if nbytes > cap:
        raise UserError(f"{what} would need about {_gib(nbytes)} of memory, more than the cap of {_gib(cap)} "
                        f"({MEMORY_CAP_FRACTION:.0%} of this {where}'s {_gib(total)}); {hint}")


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"
