"""The policy folder, written by `train-policy` and read by `evaluate`, `export` and the robot's policy runner.

    POLICY_DIR/
        policy.json         format, versions, what the policy observes and outputs (`POLICY_KEYS` are required)
        params.json         d3rlpy's own config (with observation/action shapes and fitted scalers)
        model.pt            final weights (torch state dicts, loadable with weights_only=True)
        checkpoints/step_N.pt, metrics.jsonl   every `checkpoint_every` steps
        export/policy.ts    TorchScript policy for the robot, preprocessing baked in (`offline.export`)
        export/policy.json  the `EXPORT_KEYS` of policy.json, what the runner checks against its robot
        export/policy.onnx  optional

This module needs torch only (no d3rlpy, no gym), so a robot that runs an exported policy installs nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from diffusion_reward.errors import UserError

POLICY_FORMAT = "diffusion_reward.policy"
POLICY_KEYS = ("algo", "obs", "frame_stack", "image_size", "state_dim", "action_dim", "train_config", "params",
               "model")  # what evaluating and exporting read from policy.json
EXPORT_KEYS = ("obs", "frame_stack", "frame_padding", "image_size", "state_dim", "action_dim", "task", "algo",
               "action_space", "action_repeat", "camera", "source_dataset", "software_version")
ACTION_SPACE = "ee_delta_xyz_gripper"


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
    """policy.json of a training folder, checked: our format, every `POLICY_KEYS` entry present."""
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
    return meta


def load_exported(export_dir: str | Path) -> tuple[torch.jit.ScriptModule, dict]:
    """(TorchScript policy, its policy.json) of an export folder, or of a training folder's export/."""
    export_dir = Path(export_dir)
    if (export_dir / "export" / "policy.ts").is_file():  # a training folder: use its export
        export_dir = export_dir / "export"
    if not (export_dir / "policy.ts").is_file():
        raise UserError(f"{export_dir} has no policy.ts; run `diffusion-reward export`.")
    meta = read_json_object(export_dir / "policy.json")
    return torch.jit.load(str(export_dir / "policy.ts"), map_location="cpu").eval(), meta
