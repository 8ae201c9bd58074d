"""Node parameters: typed declaration through any `Transport`, validation, ROS 2 parameter YAML files.

A node describes its parameters once, as a dataclass whose field defaults are the ROS defaults and whose
`metadata["help"]` is the ROS parameter description:

    @dataclass
    class LabellerParams:
        model_path: str = field(default="", metadata={"help": "reward model file (.safetensors)"})
        queue_size: int = field(default=1, metadata={"help": "frames waiting for the model; oldest dropped"})

        def validate(self) -> None:          # optional; raise UserError("one clear sentence")
            ...

    params = declare_params(transport, LabellerParams)

The launch files generate their node arguments from the same dataclasses (`node_launch_arguments`), so a new
parameter is a launch argument, with its description and default, without touching a launch file.

Parameter files use the ROS 2 format that `ros2 run --ros-args --params-file` and launch files read:

    reward_labeller:            # node name, `/ns/node`, or a wildcard: `/**`, `/**/reward_labeller`, `/*/x`
      ros__parameters:
        model_path: /models/reward.safetensors
        camera: {fps: 30}       # nested maps flatten to dotted names: camera.fps
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, TypeVar

import yaml

from ..errors import UserError

P = TypeVar("P")


def declare_params(transport, params_cls: type[P]) -> P:
    """Declare every field of `params_cls` on `transport` (default + help) and return the validated values.

    The nodes read their parameters once, at start-up, so every one is declared read-only: `ros2 param set`
    is refused instead of reporting success and changing nothing."""
    values = {}
    for f in dataclasses.fields(params_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        value = transport.declare_parameter(f.name, default, f.metadata.get("help", ""), read_only=True)
        values[f.name] = coerce_parameter(f.name, value, default)
    params = params_cls(**values)
    if hasattr(params, "validate"):
        params.validate()
    return params


def coerce_parameter(name: str, value: Any, default: Any) -> Any:
    """Check an override against the type of its declared default (as rclpy does; int -> float is allowed)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
    else:
        return value
    raise UserError(
        f"parameter '{name}' must be of type {type(default).__name__} (default {default!r}), got {value!r}"
    )


def describe_params(params_cls: type) -> dict[str, str]:
    """`{name: "help (default: value)"}`: launch-argument descriptions, written once in the dataclass."""
    described = {}
    for f in dataclasses.fields(params_cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        described[f.name] = f"{f.metadata.get('help', f.name)} (default: {default!r})"
    return described


def node_launch_arguments(*params_classes: type, renamed: dict[str, str] | None = None,
                          skip: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(launch argument, description) for every parameter of the nodes a launch file starts, generated from their
    parameter dataclasses (an argument left empty keeps the node's parameter file or default). `renamed`
    {parameter: argument} where two nodes of one launch use a name differently; `skip`: parameters an included
    launch file already declares. The first node's description wins for a shared name."""
    arguments: dict[str, str] = {}
    for params_cls in params_classes:
        for name, text in describe_params(params_cls).items():
            argument = (renamed or {}).get(name, name)
            if name not in skip and argument not in arguments:
                arguments[argument] = text
    return list(arguments.items())


def param_names(*params_classes: type) -> set[str]:
    return {f.name for params_cls in params_classes for f in dataclasses.fields(params_cls)}


def parse_launch_values(params_cls: type, values: dict[str, str]) -> dict[str, Any]:
    """Typed parameter overrides from launch-argument strings; empty strings mean "not set" and are left out."""
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
                for f in dataclasses.fields(params_cls)}
    typed = {}
    for name, text in values.items():
        if name not in defaults or text == "":
            continue
        default = defaults[name]
        if isinstance(default, str):
            typed[name] = text
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UserError(f"launch argument {name}:='{text}' is not a valid value") from None
        typed[name] = coerce_parameter(name, value, default)
    return typed


def launch_node_parameters(params_cls: type, configurations: dict[str, str], params_file_arg: str,
                           renamed: dict[str, str] | None = None) -> list:
    """`parameters=` of a launch_ros Node: its parameter file (the launch argument `params_file_arg`), then
    typed overrides for the launch arguments that were set, and `use_sim_time`. `renamed` maps a parameter
    to the launch argument that sets it, where two nodes of one launch use the name differently."""
    values = dict(configurations)
    for param, argument in (renamed or {}).items():
        values[param] = configurations.get(argument, "")
    overrides = parse_launch_values(params_cls, values)
    overrides["use_sim_time"] = configurations.get("use_sim_time", "false").lower() == "true"
    files = [configurations[params_file_arg]] if configurations.get(params_file_arg) else []
    return files + [overrides]


# -- ROS 2 parameter YAML ---------------------------------------------------------------------------

def load_parameter_file(path: str | os.PathLike, node_name: str, namespace: str = "") -> dict[str, Any]:
    """Parameters for node `namespace/node_name` from a ROS 2 parameter YAML file (wildcards first, then exact)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"parameter file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # UnicodeDecodeError: a binary file
        raise UserError(f"parameter file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UserError(f"parameter file {path} must map node names to 'ros__parameters'")
    fqn = "/" + "/".join(p for p in (namespace.strip("/"), node_name) if p)
    matches = []
    for key, section in doc.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise UserError(f"parameter file {path}: section '{key}' has no 'ros__parameters' map")
        if _node_pattern(str(key)).fullmatch(fqn):
            is_exact = "*" not in str(key)
            matches.append((is_exact, section["ros__parameters"] or {}))
    merged: dict[str, Any] = {}
    for _, params in sorted(matches, key=lambda m: m[0]):  # wildcard sections first, the node's own wins
        if not isinstance(params, dict):
            raise UserError(f"parameter file {path}: 'ros__parameters' must be a map")
        merged.update(_flatten(params))
    return merged


def _node_pattern(key: str) -> re.Pattern:
    """ROS 2 node-name wildcards: `*` = one name token, `**` = any number of tokens (also none)."""
    tokens = [t for t in key.strip("/").split("/") if t]
    regex = ""
    for token in tokens:
        if token == "**":
            regex += r"(?:/[^/]+)*"
        elif token == "*":
            regex += r"/[^/]+"
        else:
            regex += "/" + re.escape(token)
    return re.compile(regex or "/")


def _flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
