"""Command-line flags generated from a config dataclass (as LeRobot's configs are its CLI): a field's name, type,
default and `metadata` (`help`, and optionally `choices`, `metavar`, `flag`) are written once, in the dataclass.

    --skip-step N          int / float / str fields (None default: the flag may be left out)
    --resume               bool fields defaulting to False (store_true); True: `--no-<name>` (store_false)
    --bf16 / --no-bf16     bool | None fields (None: decided later)
    --data X --data Y      list[str] fields (repeat the flag)
    --joint-names A,B      tuple[str, ...] fields (comma-separated)
    IN                     a field with `positional=True` in its metadata
A field whose default is a config dataclass (`source: SourceOptions`) contributes that dataclass's flags.
"""
from __future__ import annotations

import argparse
import dataclasses

from ..checks import flag_name

def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (joints, JointState fields)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list[str]": list, "tuple[str, ...]": names}


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, only: tuple[str, ...] | None = None) -> None:
    """The flags of `cls`'s fields that have a `help` (of those named in `only`), on `parser` or an argument group."""
    for f in dataclasses.fields(cls):
        if _nested(f):
            add_config_arguments(parser, f.default_factory)
            continue
        if "help" not in f.metadata or (only is not None and f.name not in only):
            continue
        kind, optional = field_type(f)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else f.default
        flag = flag_name(f)
        common = dict(dest=f.name, help=f.metadata.get("flag_help", f.metadata["help"]))
        if f.metadata.get("positional"):
            parser.add_argument(f.name, type=kind, metavar=f.metadata.get("metavar"), help=common["help"])
        elif kind is bool:
            if optional:
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, **common)
            elif default:
                parser.add_argument(f.metadata.get("flag", "--no-" + f.name.replace("_", "-")), action="store_false",
                                    **common)
            else:
                parser.add_argument(flag, action="store_true", **common)
        elif kind is list:
            parser.add_argument(flag, action="append", required=required, metavar=f.metadata.get("metavar"), **common)
        else:
            parser.add_argument(flag, type=kind, default=default, required=required, choices=f.metadata.get("choices"),
                                metavar=f.metadata.get("metavar"), **common)


def config_from_args(cls: type, args: argparse.Namespace):
    """`cls` from the parsed flags of `add_config_arguments` (fields without a flag keep their defaults)."""
    values = {f.name: config_from_args(f.default_factory, args) if _nested(f) else getattr(args, f.name)
              for f in dataclasses.fields(cls) if _nested(f) or hasattr(args, f.name)}
    return cls(**values)


def _nested(f: dataclasses.Field) -> bool:
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)


def field_type(f: dataclasses.Field) -> tuple[type, bool]:
    """(base type, whether None is allowed) of a field annotated `T` or `T | None` (annotations are strings)."""
    parts = [part.strip() for part in str(f.type).split("|")]
    names = [part for part in parts if part != "None"]
    if len(names) != 1 or names[0] not in TYPES:
        raise TypeError(f"{f.name}: no command-line flag for a field of type {f.type}")
    return TYPES[names[0]], len(names) < len(parts)
