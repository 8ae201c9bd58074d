"""Write a d3rlpy 2.x dataset file (FORMATS.md, "d3rlpy"): `ReplayBuffer.dump` of the buffer `train-policy`
trains on, plus our provenance as one root attribute that d3rlpy's loader ignores."""
from __future__ import annotations

import json
from pathlib import Path

import h5py

from ... import __version__
from . import ConvertConfig, ConvertSummary

LOAD = 'd3rlpy.dataset.ReplayBuffer.load(open(PATH, "rb"), d3rlpy.dataset.InfiniteBuffer())'


def write_d3rlpy(cfg: ConvertConfig, tmp: Path) -> ConvertSummary:
    from ..mdp import MDPSpec, build_mdp

    buffer, info = build_mdp(cfg.input, MDPSpec(obs=cfg.obs, frame_stack=cfg.frame_stack, reward=cfg.reward,
                                                alpha=cfg.alpha, beta=cfg.beta))
    with open(tmp, "w+b") as f:  # d3rlpy dumps through h5py, which reads back; one call, seconds: the episodes are already in memory
        buffer.dump(f)
    with h5py.File(tmp, "a") as f:  # d3rlpy's loader reads only its own datasets
        f.attrs["diffusion_reward"] = json.dumps({
            "software_version": __version__, "obs": cfg.obs, "frame_stack": cfg.frame_stack,
            "alpha": cfg.alpha, "beta": cfg.beta, "mdp": info.to_dict(),
            "load": LOAD}, sort_keys=True, default=str)
    return ConvertSummary(out=tmp, episodes=info.episodes, steps=info.steps, label=info.label,
                          details={"transitions": info.transitions, "terminal_episodes": info.terminal_episodes})
