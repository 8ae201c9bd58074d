"""The reward models shipped with the package: one per simulated domain, trained here (MODEL_CARD.md).

    path = shipped_model_path("door-close-v3")          # .../pretrained/metaworld.safetensors
    model = resolve_model_path(None, "adroit-door")      # what every command uses when no model is given

`relabel`, `score`, `report`, the reward-labeller node and `demo` fall back to these when no model is given and
the task is a MetaWorld v3 or Adroit task. Statistics are stored for the evaluated tasks (MODEL_CARD.md); a task
without them needs `diffusion-reward stats` (or raw scores) as with any other model.
"""
from __future__ import annotations

import json
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


def resolve_model_path(model: str | Path | None, task: str | None, recording: str | Path | None = None) -> str:
    """`model` when given, else the shipped model of `task`'s domain (one clear error when neither is known).
    `recording`: the source the model will score; a simulated recording of `task` rendered from another camera
    than the one the shipped models were trained on is refused (`check_recorded_camera`)."""
    if model:
        return str(model)
    from ...sim.tasks import TASKS

    if not task or task not in TASKS:
        raise UserError(f"no reward model given{f' and {task!r} is not a MetaWorld / Adroit task' if task else ''}: "
                        "pass a reward model file (the shipped models cover the simulated MetaWorld / Adroit tasks)")
    if recording is not None:
        check_recorded_camera(task, Path(recording))
    return str(shipped_model_path(task))


def check_recorded_camera(task: str, recording: Path) -> None:
    """UserError if `recording` (one of our HDF5 datasets) holds `task` rendered from another camera than the task
    renders from now, which is what the shipped models were trained on (e.g. `adroit-pen` before its `pen_close`
    camera): the model would score a view it has never seen. Other sources record no camera and are not checked."""
    from ...data.reader import Dataset
    from ...data.sources import detect_kind
    from ...sim.tasks import task_spec

    if detect_kind(recording) != "hdf5":
        return
    with Dataset(recording) as ds:
        env_args = ds.env_args
    if env_args.get("task") != task or "camera" not in env_args:
        return
    spec = task_spec(task)

    def view(camera, free_camera) -> str:
        return json.dumps([camera, dict(free_camera or {})], sort_keys=True)

    if view(env_args["camera"], env_args.get("free_camera")) != view(spec.camera, spec.free_camera):
        raise UserError(f"{recording} shows {task} from camera {env_args['camera']!r}, and the shipped reward model "
                        f"was trained on {task} rendered from {spec.camera!r}: re-collect the episodes, or pass a "
                        "reward model trained on recordings like these")
