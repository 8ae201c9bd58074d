"""Write a robomimic-layout HDF5 (FORMATS.md, "robomimic") that robomimic's own `train.py` trains on.

Every per-step array is copied a slab at a time through the checked reader, so a damaged chunk in the input is
one error line (never copied on silently) and memory does not grow with the episode's length.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import h5py
import numpy as np

from ... import __version__
from ...data.format import sort_demo_names
from ...errors import UserError
from ...reward.combine import RewardMix
from . import ConvertConfig, ConvertSummary, labelled_input, progress_bar

SLAB = 256  # rows read and written at a time
GYM_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE: a gym(nasium)-style environment named env_name
CARRIED = ("states", "timestamps")  # per-step datasets copied as they are when the input has them
CARRIED_GROUPS = ("stamps", "reward_labels")  # groups of per-step datasets copied as they are
RND_NOTE = "r_rnd = 0: RND is an online bonus that a fixed dataset cannot hold"


def write_robomimic(cfg: ConvertConfig, tmp: Path) -> ConvertSummary:
    mix = RewardMix(cfg.alpha, cfg.beta)
    with labelled_input(cfg) as (ds, label, label_attrs):
        names = ds.episode_names
        reward_info = {"label": label, "label_attrs": label_attrs, "alpha": mix.alpha, "beta": mix.beta,
                       "formula": ("beta * r_sparse" if label is None else
                                   "(1 - alpha) * r_ce_bar + alpha * r_rnd + beta * r_sparse"),
                       "rnd": RND_NOTE}
        total = 0
        for name in names:
            with ds.episode(name) as ep:
                total += ep.require_steps()
        with h5py.File(tmp, "w") as f, progress_bar(total, "convert to robomimic", cfg.progress) as bar:
            f.attrs["converted_by"] = f"diffusion_reward {__version__}"
            f.attrs["converted_from"] = str(Path(cfg.input).resolve())
            f.attrs["reward"] = json.dumps(reward_info, sort_keys=True, default=str)
            data = f.create_group("data")
            for name in names:
                with ds.episode(name) as ep:
                    bar.update(_write_episode(ep, data.create_group(name), label, mix, reward_info))
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(robomimic_env_args(ds.env_args), sort_keys=True)
            masks = split_masks(ds.masks, names, cfg.valid_fraction, cfg.seed)
            group = f.create_group("mask")
            for key, members in masks.items():
                group.create_dataset(key, data=np.array(members, dtype="S"))
    return ConvertSummary(out=tmp, episodes=len(names), steps=total, label=label,
                          details={"train": len(masks["train"]), "valid": len(masks["valid"])})


def robomimic_env_args(env_args: dict) -> dict:
    """robomimic's env metadata (`env_name`, `type`, `env_kwargs`) plus our env_args keys, which robomimic
    ignores and our reader uses (task, image_key, ...). A robomimic input's own metadata is kept."""
    out = dict(env_args)
    out.setdefault("env_name", env_args.get("task") or "unknown")
    out.setdefault("type", GYM_TYPE)
    out.setdefault("env_kwargs", {})
    return out


def split_masks(masks: dict[str, list[str]], names: list[str], valid_fraction: float, seed: int) -> dict:
    """The input's masks, with `train` / `valid` kept when it has them (one of them: the other is the rest),
    else a seeded split with round(valid_fraction * N) (at least 1 when N > 1 and valid_fraction > 0) in valid."""
    out = {k: sort_demo_names(v) for k, v in masks.items()}
    if "train" in out and "valid" not in out:
        out["valid"] = sort_demo_names(set(names) - set(out["train"]))
    elif "valid" in out and "train" not in out:
        out["train"] = sort_demo_names(set(names) - set(out["valid"]))
    elif "train" not in out:
        shuffled = list(names)
        random.Random(seed).shuffle(shuffled)
        valid = max(1, round(len(names) * valid_fraction)) if len(names) > 1 and valid_fraction > 0 else 0
        out["valid"], out["train"] = sort_demo_names(shuffled[:valid]), sort_demo_names(shuffled[valid:])
    return out


def _write_episode(ep, group: h5py.Group, label: str | None, mix: RewardMix, reward_info: dict) -> int:
    """One episode into `group`; returns its number of steps."""
    from ..mdp import episode_rewards

    steps = ep.require_steps()
    if ep.actions is None:
        raise UserError(f"episode {ep.name} has no actions (a video-only episode); robomimic trains on actions")
    if ep.rewards is None:
        raise UserError(f"episode {ep.name} has no rewards; robomimic's offline RL needs them")
    if "obs" not in ep.group:
        raise UserError(f"episode {ep.name} has no observations (a states-only robomimic file? extract them with "
                        "robomimic's dataset_states_to_obs.py first)")
    for key, value in ep.group.attrs.items():
        group.attrs[key] = value
    group.attrs["num_samples"] = steps
    for key in ep.obs:
        copy_rows(ep.obs[key], group.require_group("obs"), key, steps)
    source_next = ep.group.get("next_obs")
    for key in ep.obs:  # the input's own next_obs when it has them, else obs shifted by one (last row repeated)
        if source_next is not None and key in source_next:
            copy_rows(source_next[key], group.require_group("next_obs"), key, steps)
        else:
            copy_rows(ep.obs[key], group.require_group("next_obs"), key, steps, shift=1)
    copy_rows(ep.group["actions"], group, "actions", steps)
    rewards = group.create_dataset("rewards", data=episode_rewards(ep, label, mix))
    rewards.attrs.update({"label": label or "", "alpha": mix.alpha, "beta": mix.beta,
                          "formula": reward_info["formula"]})
    dones = ep.dones if ep.dones is not None else (np.arange(steps) == steps - 1)
    group.create_dataset("dones", data=np.asarray(dones).astype(np.uint8))
    for key in CARRIED:
        if key in ep.group:
            copy_rows(ep.group[key], group, key, steps)
    for name in CARRIED_GROUPS:
        if name in ep.group:
            _copy_group(ep.group[name], group.require_group(name), steps)
    return steps


def _copy_group(src: h5py.Group, dst: h5py.Group, steps: int) -> None:
    dst.attrs.update(src.attrs)
    for key, item in src.items():
        if isinstance(item, h5py.Group):
            _copy_group(item, dst.require_group(key), steps)
        else:
            copy_rows(item, dst, key, steps)


def copy_rows(src, group: h5py.Group, name: str, steps: int, shift: int = 0) -> h5py.Dataset:
    """`src` (T rows) into a new `group[name]` with its chunking and compression, a slab at a time. shift=1
    gives next_obs: row i holds src[i + 1], the last row repeats src[T - 1] (no frame after the last step)."""
    if len(src) != steps:
        raise UserError(f"{src.name} has {len(src)} rows but its episode has {steps} steps")
    chunks = None if src.chunks is None else tuple(min(c, n) for c, n in zip(src.chunks, src.shape))
    dst = group.create_dataset(name, shape=src.shape, dtype=src.dtype, chunks=chunks,
                               compression=src.compression, compression_opts=src.compression_opts)
    dst.attrs.update(src.attrs)
    for start in range(0, steps, SLAB):
        stop = min(steps, start + SLAB)
        rows = np.asarray(src[start + shift:stop + shift])
        if len(rows) < stop - start:
            rows = np.concatenate([rows, np.asarray(src[steps - 1:steps])])
        dst[start:stop] = rows
    return dst
