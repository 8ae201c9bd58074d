"""Our datasets (and robomimic files) -> the files other tools train on. Layouts: FORMATS.md beside this file.

    summary = convert(ConvertConfig(input="labelled.hdf5", to="robomimic", out="robomimic.hdf5", reward="diffusion"))

- `robomimic`: one self-contained HDF5 that robomimic's own `train.py` trains on (BC and IQL tested):
  `rewards` = Eq. 5 of the chosen label (alpha, beta recorded), `next_obs`, `dones`, `mask/train|valid`,
  `env_args` with `env_name` / `type` / `env_kwargs`.
- `d3rlpy`: a d3rlpy 2.x `ReplayBuffer.dump` file (the observations and Eq. 5 rewards of `train-policy`), loadable
  with d3rlpy alone: `ReplayBuffer.load(open(OUT, "rb"), InfiniteBuffer())`.
- `minari`: a Minari 0.5 dataset folder (`OUT/data/main_data.hdf5` + `metadata.json`) with every step kept:
  `minari.MinariDataset("OUT/data")`.
- `lerobot`: a LeRobot v3.0 dataset folder (`meta/info.json`, Parquet data, AV1 MP4 videos) with the Eq. 5 reward
  as `next.reward`: `LeRobotDataset("diffusion_reward/<name>", root=OUT)`.

The input is never modified; the output is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field
from pathlib import Path

from ...checks import check_float, check_seed, config_field
from ...errors import UserError
from ...outputs import check_output
from ..mdp import mdp_field

TARGETS = ("robomimic", "d3rlpy", "minari", "lerobot")
VIDEO_CODEC_CHOICES = ("auto", "av1", "h264")


@dataclass
class ConvertConfig:
    """What `convert` does; its fields are the command's flags (`cli/config_args.py`)."""

    input: str = config_field(MISSING, "our dataset (relabel output) or a robomimic HDF5 file", metavar="IN",
                              positional=True)
    to: str = config_field(MISSING, "the tool whose file to write", choices=TARGETS)
    out: str = config_field(MISSING, "file to write (minari: a dataset folder; Minari's id is diffusion_reward/<folder "
                                     "name>; lerobot: a LeRobot v3.0 dataset folder); replaced only with --force",
                            metavar="OUT")
    reward: str = mdp_field("reward")
    alpha: float = mdp_field("alpha")
    beta: float = mdp_field("beta")
    valid_fraction: float = config_field(0.1, "robomimic: share of episodes in mask/valid when the input has no "
                                              "train/valid masks", metavar="F")
    seed: int = config_field(0, "robomimic: seed of the train/valid shuffle")
    obs: str = mdp_field("obs", default="state", help="d3rlpy: observations (state vector, image stack, or both as "
                                                      "a tuple)")
    frame_stack: int = mdp_field("frame_stack", help="d3rlpy: frames stacked for image observations")
    fps: int | None = config_field(None, "lerobot: frames per second of the dataset (default: from the input's "
                                         "timestamps, their median step); row i gets timestamp i / fps, LeRobot's "
                                         "rule", metavar="N")
    video_codec: str = config_field("auto", "lerobot: video codec of the camera MP4s; auto = AV1 (libsvtav1, "
                                            "LeRobot's default, or libaom-av1), else H.264 where the ffmpeg binary has "
                                            "no AV1 encoder", choices=VIDEO_CODEC_CHOICES)
    force: bool = config_field(False, "replace an existing OUT (never the input)")
    progress: bool = True

    def __post_init__(self):
        if self.to not in TARGETS:
            raise UserError(f"`to` must be one of {', '.join(TARGETS)}, got {self.to!r}")
        from ...reward.combine import RewardMix

        RewardMix(self.alpha, self.beta)  # validates both
        check_float("valid_fraction", self.valid_fraction, 0.0, 1.0)
        if not self.valid_fraction < 1.0:
            raise UserError("`valid_fraction` must be below 1 (some episodes must be left to train on)")
        check_seed("seed", self.seed)
        if self.fps is not None and (isinstance(self.fps, bool) or not isinstance(self.fps, int) or self.fps < 1):
            raise UserError(f"`fps` must be a whole number >= 1, got {self.fps!r}")
        if self.video_codec not in VIDEO_CODEC_CHOICES:
            raise UserError(f"`video_codec` must be one of {', '.join(VIDEO_CODEC_CHOICES)}, got {self.video_codec!r}")


@dataclass
class ConvertSummary:
    out: Path
    episodes: int = 0
    steps: int = 0
    label: str | None = None
    details: dict = field(default_factory=dict)


def convert(cfg: ConvertConfig) -> ConvertSummary:
    src = Path(cfg.input)
    if not src.is_file():
        raise UserError(f"IN {cfg.input} is not a dataset file" + ("" if src.exists() else " (it does not exist)"))
    check_output(cfg.out, {"IN": cfg.input}, force=cfg.force)
    out = Path(cfg.out)
    if out.is_dir() and src.resolve().is_relative_to(out.resolve()):  # --force would delete the input with it
        raise UserError(f"`out` {cfg.out} holds the input {cfg.input}; choose another path (nothing was written)")
    tmp = out.with_name(f".{out.name}.partial")
    _remove(tmp)  # left by a killed earlier run of ours: never linked, never an input
    try:
        if cfg.to == "robomimic":
            from .robomimic import write_robomimic

            summary = write_robomimic(cfg, tmp)
        elif cfg.to == "d3rlpy":
            from .d3rlpy_dataset import write_d3rlpy

            summary = write_d3rlpy(cfg, tmp)
        elif cfg.to == "minari":
            from .minari import write_minari

            summary = write_minari(cfg, tmp, out)
        else:
            from .lerobot import write_lerobot

            summary = write_lerobot(cfg, tmp, out)
        _remove(out)  # an earlier output (--force) or an empty folder: check_output allowed replacing it
        os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise
    summary.out = out
    return summary


@contextmanager
def labelled_input(cfg: ConvertConfig):
    """(dataset, label, label attrs): the input dataset, open, complete and with episodes, and the reward label
    `cfg.reward` resolves to by train-policy's rules (`offline/mdp.resolve_label`: diffusion | <name> | sparse)."""
    from ...data import Dataset
    from ..mdp import resolve_label

    with Dataset(cfg.input) as ds:
        ds.require_complete()
        if not ds.episode_names:
            raise UserError(f"{cfg.input} has no episodes")
        yield (ds, *resolve_label(ds, cfg.reward, cfg.input))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc=desc, disable=not enabled, dynamic_ncols=True)
