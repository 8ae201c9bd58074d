"""Our HDF5 datasets and robomimic-layout files, read through `diffusion_reward.data.Dataset`."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..reader import Dataset
from ...errors import UserError
from ..episode import Episode

STRUCTURAL_ATTRS = ("num_samples", "success", "env_args", "format_version")
KEPT_DATASETS = ("states",)  # robomimic's simulator states: kept as they are, like next_obs


def read_hdf5(path: Path, image_key: str | None = None) -> Iterator[Episode]:
    """One Episode per `data/demo_N`; `image_key` picks the camera (default: the dataset's image key).
    Frames and observations stay lazy h5py datasets, open until the next episode is asked for. A robomimic
    file's `next_obs` and `states` come along (`next_frames`, `extra`), so relabelling keeps them."""
    with Dataset(path) as ds:
        key = image_key or ds.image_key
        if key is None:
            raise UserError(f"{path} has no uint8 image observation; pass `image_topic` with the obs key")
        task = ds.env_args.get("task") or None
        for ep in ds:
            with ep:
                ep.require_steps()
                if key not in ep.obs:
                    raise UserError(f"{path}:{ep.name} has no observation {key!r}; obs keys: {sorted(ep.obs)}")
                frames = ep.obs[key]  # h5py datasets: read a chunk at a time by the consumer
                if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                    raise UserError(f"{path}:{ep.name} obs {key!r} is {frames.dtype}{list(frames.shape)}, "
                                    "not RGB frames u8[T,H,W,3]")
                next_obs = ep.group.get("next_obs", {})
                extra = {f"next_obs/{k}": v for k, v in next_obs.items() if k != key}
                extra.update({k: ep.group[k] for k in KEPT_DATASETS if k in ep.group})
                yield Episode(
                    name=ep.name, frames=frames, task=task, obs={k: ep.obs[k] for k in ep.obs if k != key},
                    actions=ep.actions, rewards=ep.rewards, dones=ep.dones, timestamps=ep.timestamps,
                    success=ep.success, stamps=ep.stamps, attrs={**carried_attrs(ep.attrs), "image_key": key},
                    next_frames=next_obs[key] if key in next_obs else None, extra=extra)


def carried_attrs(attrs: dict) -> dict:
    """Episode attributes the relabelled copy keeps (reset seed, epsilon, policy, ...); the structural ones are
    rewritten by the writer."""
    return {k: v for k, v in attrs.items() if k not in STRUCTURAL_ATTRS}
