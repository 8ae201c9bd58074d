"""Write a Minari dataset folder (FORMATS.md, "minari"): Minari 0.5's HDF5 storage, written with h5py.

Every step is kept: an episode of T steps has T actions, rewards, terminations and truncations and T + 1
observations, the last one being the observation after the final action (the input's own `next_obs` when it has
them, else the last recorded observation repeated: nothing was recorded after the last action).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from ... import __version__
from ...errors import UserError
from ...reward.combine import RewardMix
from . import ConvertConfig, ConvertSummary, labelled_input, progress_bar
from .robomimic import RND_NOTE, SLAB

MINARI_VERSION = "0.5.4"  # the Minari release whose storage layout this writes (and which the tests load it with)


def dataset_id(out: Path) -> str:
    """`diffusion_reward/<OUT name>` (with `-v0` added unless the name ends in `-vN`), Minari's id form."""
    name = out.name if re.search(r"-v\d+$", out.name) else f"{out.name}-v0"
    return f"diffusion_reward/{name}"


def write_minari(cfg: ConvertConfig, tmp: Path, out: Path) -> ConvertSummary:
    from ..mdp import episode_rewards, is_terminal

    mix = RewardMix(cfg.alpha, cfg.beta)
    (tmp / "data").mkdir(parents=True)
    with labelled_input(cfg) as (ds, label, label_attrs):
        names = ds.episode_names
        total, spaces = 0, None
        for name in names:
            with ds.episode(name) as ep:
                total += ep.require_steps()
                spaces = spaces or _spaces(ep)
        with h5py.File(tmp / "data" / "main_data.hdf5", "w", track_order=True) as f, \
                progress_bar(total, "convert to minari", cfg.progress) as bar:
            for index, name in enumerate(names):
                with ds.episode(name) as ep:
                    if ep.actions is None or ep.rewards is None:
                        raise UserError(f"episode {ep.name} has no actions or no rewards; Minari stores both")
                    steps = ep.num_samples
                    group = f.create_group(f"episode_{index}")
                    group.attrs.update({"id": index, "total_steps": steps, "diffusion_reward_episode": ep.name})
                    seed = ep.attrs.get("reset_seed", ep.attrs.get("episode_seed"))
                    if seed is not None:
                        group.attrs["seed"] = int(seed)
                    observations = group.create_group("observations")
                    source_next = ep.group.get("next_obs")
                    for key in ep.obs:
                        last = source_next[key] if source_next is not None and key in source_next else ep.obs[key]
                        _observation_rows(ep.obs[key], last, observations, key, steps)
                    actions = np.asarray(ep.actions)
                    if actions.shape[1:] != spaces["action"]["shape"]:
                        raise UserError(f"episode {ep.name} has actions of shape {list(actions.shape[1:])}, the "
                                        f"first episode {spaces['action']['shape']}")
                    group.create_dataset("actions", data=actions.astype(np.float32))
                    group.create_dataset("rewards", data=episode_rewards(ep, label, mix))
                    terminal = is_terminal(ep)
                    ends = np.arange(steps) == steps - 1
                    group.create_dataset("terminations", data=ends & terminal)
                    group.create_dataset("truncations", data=ends & (not terminal))
                    success = np.concatenate([[False], np.asarray(ep.rewards) > 0])  # reset info, then per step
                    group.create_group("infos").create_dataset("success", data=success)
                    bar.update(steps)
    metadata = {
        "dataset_id": dataset_id(out), "minari_version": MINARI_VERSION, "data_format": "hdf5",
        "jpeg_encoding": False, "total_episodes": len(names), "total_steps": total,
        "observation_space": json.dumps(spaces["observation"]), "action_space": json.dumps(spaces["action_json"]),
        "dataset_size": round(sum(p.stat().st_size for p in (tmp / "data").iterdir()) / 1e6, 1),
        "description": f"converted by diffusion_reward {__version__} from {Path(cfg.input).resolve()}",
        "diffusion_reward": {"label": label, "label_attrs": label_attrs, "alpha": mix.alpha, "beta": mix.beta,
                             "formula": ("beta * r_sparse" if label is None else
                                         "(1 - alpha) * r_ce_bar + alpha * r_rnd + beta * r_sparse"),
                             "rnd": RND_NOTE, "env_args": dict(ds.env_args)},
    }
    (tmp / "data" / "metadata.json").write_text(json.dumps(metadata, default=str))
    return ConvertSummary(out=tmp, episodes=len(names), steps=total, label=label,
                          details={"dataset_id": metadata["dataset_id"]})


def _spaces(ep) -> dict:
    """Minari's serialised spaces: a Dict of one Box per observation key, and a Box of the actions."""
    subspaces = {}
    for key in ep.obs:
        dataset = ep.obs[key]
        if dataset.dtype == np.uint8:
            low, high = 0, 255
        elif np.issubdtype(dataset.dtype, np.integer):
            info = np.iinfo(dataset.dtype)
            low, high = int(info.min), int(info.max)
        else:
            low, high = -np.inf, np.inf
        shape = list(dataset.shape[1:])
        size = int(np.prod(shape, dtype=np.int64))
        subspaces[key] = {"type": "Box", "dtype": str(dataset.dtype), "shape": shape,
                          "low": np.full(shape, low).tolist() if size else [], "high": np.full(shape, high).tolist()
                          if size else []}
    actions = np.asarray(ep.actions)
    bound = 1.0 if np.abs(actions).max(initial=0) <= 1.0 else np.inf  # MetaWorld / Adroit act in [-1, 1]
    width = actions.shape[1]
    return {"observation": {"type": "Dict", "subspaces": subspaces},
            "action": {"shape": actions.shape[1:]},
            "action_json": {"type": "Box", "dtype": "float32", "shape": [width], "low": [-bound] * width,
                            "high": [bound] * width}}


def _observation_rows(src, last, group: h5py.Group, key: str, steps: int) -> None:
    """T + 1 rows: the T recorded observations and the one after the last action (`last[T - 1]`)."""
    dst = group.create_dataset(key, shape=(steps + 1, *src.shape[1:]), dtype=src.dtype,
                               chunks=(1, *src.shape[1:]) if src.ndim >= 3 else True,
                               compression=src.compression if src.ndim >= 3 else None)
    for start in range(0, steps, SLAB):
        stop = min(steps, start + SLAB)
        dst[start:stop] = np.asarray(src[start:stop])
    dst[steps] = np.asarray(last[steps - 1])
