"""The policy folder, written by `train-policy` and read by `evaluate`, `export` and the robot's policy runner.

    POLICY_DIR/
        policy.json         format, versions, the `PolicySpec` (what the policy observes and outputs), training
                            config and dataset summary (`POLICY_KEYS` are required)
        params.json         d3rlpy's own config (with observation/action shapes and fitted scalers)
        model.pt            final weights (torch state dicts, loadable with weights_only=True)
        checkpoints/step_N.pt, metrics.jsonl   every `checkpoint_every` steps
        export/policy.ts    TorchScript policy for the robot, preprocessing baked in (`offline.export`)
        export/policy.json  the `PolicySpec` again, what the runner checks against its robot, and the seen layouts
        export/policy.onnx  optional

This module needs torch only (no d3rlpy, no gym), so a robot that runs an exported policy installs nothing else.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffusion_reward.errors import UserError

POLICY_FORMAT = "diffusion_reward.policy"
POLICY_KEYS = ("algo", "train_config", "params", "model")  # what evaluating and exporting read, besides the spec
ACTION_SPACE = "ee_delta_xyz_gripper"
OBS_KINDS = ("state", "image", "both")


@dataclass(frozen=True)
class PolicySpec:
    """What a policy observes and outputs, written once: `train-policy` writes it into policy.json, `export` and the
    d3rlpy bundle copy it, and every reader (export, evaluate, the robot's policy runner) gets it checked here."""

    obs: str                    # state | image | both
    frame_stack: int            # K frames per observation, oldest first
    image_size: int | None      # frames are image_size x image_size RGB (None: the policy sees no image)
    state_dim: int | None       # (None: the policy sees no state)
    action_dim: int
    action_space: str = ACTION_SPACE  # [dx, dy, dz, grip] in [-1, 1] (+ hand joints)
    frame_padding: str = "repeat_first"  # the first frames' missing history
    algo: str | None = None
    task: str | None = None
    action_repeat: int | None = None
    camera: str | None = None
    source_dataset: str | None = None
    software_version: str | None = None

    @classmethod
    def from_meta(cls, meta: dict, where: str | Path) -> "PolicySpec":
        """The spec in a policy.json dict, checked; UserError naming `where` and what is wrong."""
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in meta]
        if missing:
            raise UserError(f"{where} is damaged: it lacks {', '.join(missing)}")
        spec = cls(**{f.name: meta[f.name] for f in fields if f.name in meta})
        if spec.obs not in OBS_KINDS:
            raise UserError(f"{where}: obs must be one of {', '.join(OBS_KINDS)}, got {spec.obs!r}")
        needed = {"frame_stack": True, "action_dim": True, "image_size": spec.obs != "state",
                  "state_dim": spec.obs != "image"}  # an input the policy does not see may be None
        for name, required in needed.items():
            value = getattr(spec, name)
            if (required or value is not None) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise UserError(f"{where}: {name} must be a positive integer, got {value!r}")
        if spec.action_space != ACTION_SPACE or spec.action_dim < 4:
            raise UserError(f"{where}: the policy's actions are {spec.action_space!r} with {spec.action_dim} values; "
                            f"this package's policies output {ACTION_SPACE} [dx, dy, dz, grip]")
        return spec

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_json_object(path: Path) -> dict:
    """A policy folder's JSON file (policy.json, params.json) as a dict; UserError when it is missing or damaged."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is damaged: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} is damaged: not a JSON object")
    return value


def read_policy_meta(policy_dir: str | Path) -> dict[str, Any]:
    """policy.json of a training folder, checked: our format, every `POLICY_KEYS` entry present, a valid spec."""
    path = Path(policy_dir) / "policy.json"
    if not path.is_file():
        raise UserError(f"{policy_dir} is not a policy folder (no policy.json); train one with "
                        "`diffusion-reward train-policy`.")
    meta = read_json_object(path)
    if meta.get("format") != POLICY_FORMAT:
        raise UserError(f"{path} is not a diffusion_reward policy file.")
    missing = [key for key in POLICY_KEYS if key not in meta]
    if missing:
        raise UserError(f"{path} is damaged: it lacks {', '.join(missing)}")
    PolicySpec.from_meta(meta, path)
    return meta


def load_exported(export_dir: str | Path) -> tuple[torch.jit.ScriptModule, dict]:
    """(TorchScript policy, its policy.json with a checked `PolicySpec`) of an export folder, or of a training
    folder's export/."""
    export_dir = Path(export_dir)
    if (export_dir / "export" / "policy.ts").is_file():  # a training folder: use its export
        export_dir = export_dir / "export"
    if not (export_dir / "policy.ts").is_file():
        raise UserError(f"{export_dir} has no policy.ts; run `diffusion-reward export`.")
    meta = read_json_object(export_dir / "policy.json")
    PolicySpec.from_meta(meta, export_dir / "policy.json")
    return torch.jit.load(str(export_dir / "policy.ts"), map_location="cpu").eval(), meta
