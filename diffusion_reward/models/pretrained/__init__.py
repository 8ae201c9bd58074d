"""The reward models shipped with the package: one per simulated domain, trained here (MODEL_CARD.md).

    path = shipped_model_path("door-close-v3")          # .../pretrained/metaworld.safetensors
    model = resolve_model_path(None, "adroit-door")      # what every command uses when no model is given

`relabel`, `score`, `report`, the reward-labeller node and `demo` fall back to these when no model is given and
the task is a MetaWorld v3 or Adroit task. Statistics are stored for the evaluated tasks (MODEL_CARD.md); a task
without them needs `diffusion-reward stats` (or raw scores) as with any other model.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError

PRETRAINED_DIR = Path(__file__).parent


def shipped_model_path(task: str) -> Path:
    """The shipped model of `task`'s domain; UserError for unknown tasks or a domain without one."""
    from ...sim.tasks import task_spec

    domain = task_spec(task).domain
    path = PRETRAINED_DIR / f"{domain}.safetensors"
    if not path.is_file():
        raise UserError(f"no shipped reward model for {domain} tasks ({path} is missing); pass a model file")
    return path


def resolve_model_path(model: str | Path | None, task: str | None) -> str:
    """`model` when given, else the shipped model of `task`'s domain (one clear error when neither is known)."""
    if model:
        return str(model)
    from ...sim.tasks import TASKS

    if not task or task not in TASKS:
        raise UserError(f"no reward model given{f' and {task!r} is not a MetaWorld / Adroit task' if task else ''}: "
                        "pass a reward model file (the shipped models cover the simulated MetaWorld / Adroit tasks)")
    return str(shipped_model_path(task))
