"""Label recorded episodes with learned rewards, into a NEW dataset (the source is never modified).

Every episode of the source (HDF5, rosbag2, RealSense, PNG folders; see `sources`) is scored with
`RewardScorer` and written with `DatasetWriter.write_episode`: observations (`image` at the model's
resolution, `image_full` when frames were resized, `state` when present), actions, sparse rewards,
dones, timestamps, per-stream stamps, and the label group `reward_labels/<name>/` holding `reward`
(standardised diffusion term), `raw` (model score) and `sparse` (the source's task reward), with the
provenance as attributes. `resume=True` continues an interrupted run: episodes already labelled with
the same provenance are skipped, a different provenance is refused.

>>> summary = relabel(RelabelConfig(model="reward.safetensors", input="bags/ep_001", out="labelled.hdf5",
...                                 task="button-press-v3", resize=True))
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..data import Dataset, DatasetWriter
from ..errors import UserError
from ..models import RewardModel
from ..outputs import refuse_writing_into_inputs
from ..data.format import REWARD_ALIGNMENT
from ..reward import RewardScorer, ScoreConfig
from .sources import SourceEpisode, detect_kind, open_source
from .sources.folder import png_folders
from .sources.rosbag import DEFAULT_GAP_S

TOKENIZE_CHUNK = 256  # frames resized + tokenised at a time: bounds memory on long episodes
# provenance keys that must agree for --resume (paths and software version may change between runs)
SAME_LABEL_KEYS = ("model_hash", "task", "reward_type", "skip_step", "num_samples", "noise", "seed", "stats_mean",
                   "stats_std", "resize", "image_size", "source_kind", "source_options")


@dataclass
class RelabelConfig:
    model: str | None  # None: the shipped model of the task's domain (models/pretrained)
    input: str
    out: str
    task: str | None = None  # default: the source's task (HDF5 env_args), else the model's only task
    image_topic: str | None = None  # rosbag2 topic, or the obs key of an HDF5 source
    state_topic: str | None = None
    action_topic: str | None = None
    episode_topic: str | None = None
    rate_hz: float | None = None
    tolerance_s: float | None = None
    gap_s: float = DEFAULT_GAP_S
    resize: bool = False
    resume: bool = False
    reward_type: str = "auto"  # entropy | likelihood | auto (the model's own, RewardModel.reward_type)
    skip_step: int = 9
    num_samples: int = 1
    noise: bool = True
    seed: int = 0
    label_name: str | None = None  # default: the reward type
    chunk_size: int = 64
    dtype: str = "float32"
    device: str = "cpu"
    progress: bool = True


@dataclass
class RelabelSummary:
    out: Path
    written: list[str] = field(default_factory=list)  # new episode names in `out`
    skipped: list[str] = field(default_factory=list)  # source episodes already labelled (resume)
    frames: int = 0
    seconds: float = 0.0


def relabel(cfg: RelabelConfig, model: RewardModel | None = None) -> RelabelSummary:
    src, dst = Path(cfg.input).resolve(), Path(cfg.out).resolve()
    kind = detect_kind(src)
    refuse_writing_into_inputs(cfg.out, {"--input": cfg.input, "--model": cfg.model})
    if dst.exists() and not cfg.resume:
        raise UserError(f"{cfg.out} already exists; pass --resume to continue labelling it, or choose another --out")
    source_task = None if cfg.task else _source_task(src, kind)
    if model is None:
        from ..models.pretrained import resolve_model_path

        cfg = replace(cfg, model=resolve_model_path(cfg.model, cfg.task or source_task))
        model = RewardModel.load(cfg.model, device=cfg.device)
    cfg = replace(cfg, reward_type=model.resolve_reward_type(cfg.reward_type))  # "auto": the model's own type
    task = cfg.task or source_task or _model_task(model, cfg)
    scorer = RewardScorer(model, ScoreConfig(
        reward_type=cfg.reward_type, skip_step=cfg.skip_step, num_samples=cfg.num_samples, noise=cfg.noise,
        seed=cfg.seed, task=task, standardize=True, chunk_size=cfg.chunk_size, dtype=cfg.dtype, resize=cfg.resize))
    mean, std = scorer.stats
    label = cfg.label_name or cfg.reward_type
    provenance = {
        "model_path": str(cfg.model), "model_hash": model.weights_hash, "task": task, "reward_type": cfg.reward_type,
        "skip_step": cfg.skip_step, "num_samples": cfg.num_samples, "noise": cfg.noise, "seed": cfg.seed,
        "stats_mean": mean, "stats_std": std, "resize": cfg.resize, "image_size": model.image_size,
        "dtype": scorer.cfg.dtype, "alignment": REWARD_ALIGNMENT, "software_version": __version__,
        "source_path": str(src), "source_kind": kind,
        "source_options": {"image_topic": cfg.image_topic, "state_topic": cfg.state_topic,
                           "action_topic": cfg.action_topic, "episode_topic": cfg.episode_topic,
                           "rate_hz": cfg.rate_hz, "tolerance_s": cfg.tolerance_s, "gap_s": cfg.gap_s},
        "datasets": "reward = standardised diffusion term (raw - stats_mean) / stats_std, raw = model score, "
                    "sparse = the source's task reward",
    }
    done = _already_labelled(dst, label, provenance) if dst.exists() else set()
    summary = RelabelSummary(out=dst)
    started = time.perf_counter()
    episodes = open_source(src, cfg.image_topic, cfg.state_topic, cfg.action_topic, cfg.rate_hz,
                           cfg.episode_topic, cfg.gap_s, cfg.tolerance_s)
    resume_command = f"diffusion-reward relabel --input {cfg.input} --out {cfg.out} --resume (same options)"
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.closing(episodes))
        bar = stack.enter_context(_progress(cfg.progress))
        writer = stack.enter_context(DatasetWriter(dst)) if dst.exists() else None
        if writer is not None:
            writer.begin_job("relabel", resume_command)
        for ep in episodes:
            if ep.name in done:
                summary.skipped.append(ep.name)
                continue
            model_frames = _model_frames(scorer, ep)  # validates the size before anything is written
            if writer is None:  # first episode that passed every check: only now create the output
                writer = stack.enter_context(DatasetWriter(dst, env_args=_env_args(src, kind, task, model, ep)))
                writer.begin_job("relabel", resume_command)  # until the last episode: marked incomplete
            bar.set_postfix_str(ep.name)
            result = scorer.score_token_episode(model.tokenize(model_frames), progress=bar.update)
            if not (np.isfinite(result.raw).all() and np.isfinite(result.reward).all()):
                raise UserError(f"episode {ep.name}: the model gave NaN / infinite rewards; nothing of this "
                                f"episode was written (the {len(summary.written)} before it are kept)")
            summary.written.append(_write(writer, ep, model_frames, result, label, provenance))
            summary.frames += len(model_frames)
        if writer is not None:
            writer.end_job()
    summary.seconds = time.perf_counter() - started
    return summary


def _model_frames(scorer: RewardScorer, ep: SourceEpisode) -> np.ndarray:
    """Frames at the model's resolution (center-cropped and resized with --resize), a chunk at a time."""
    try:
        return np.concatenate([scorer.prepare_frames(ep.frames[i:i + TOKENIZE_CHUNK])
                               for i in range(0, len(ep.frames), TOKENIZE_CHUNK)])
    except UserError as exc:
        raise UserError(f"episode {ep.name}: {exc}") from None


def _write(writer: DatasetWriter, ep: SourceEpisode, model_frames, result, label: str, provenance: dict) -> str:
    steps = len(model_frames)
    obs = {**ep.obs, "image": model_frames}
    if ep.frames.shape[1:3] != model_frames.shape[1:3]:
        obs["image_full"] = ep.frames
    sparse = np.zeros(steps, np.float32) if ep.rewards is None else np.asarray(ep.rewards, np.float32)
    return writer.write_episode(
        obs=obs, actions=ep.actions, rewards=sparse, dones=ep.dones, timestamps=ep.timestamps,
        success=bool(ep.success), stamps=ep.stamps, attrs=ep.attrs,
        extra={f"reward_labels/{label}/reward": result.reward, f"reward_labels/{label}/raw": result.raw,
               f"reward_labels/{label}/sparse": sparse},
        extra_attrs={f"reward_labels/{label}": provenance})


def _already_labelled(dst: Path, label: str, provenance: dict) -> set[str]:
    """Source episode names already in `dst` from this source; UserError if labelled differently."""
    done = set()
    with Dataset(dst) as ds:
        for ep in ds:
            with ep:
                attrs = ep.attrs
                if attrs.get("source_path") != provenance["source_path"]:
                    continue
                old = ep.reward_labels.get(label, {}).get("attrs", {})
                changed = [k for k in SAME_LABEL_KEYS if old.get(k) != provenance[k]]
                if changed:
                    raise UserError(f"{dst} episode {ep.name} was labelled {label!r} with different settings "
                                    f"({', '.join(f'{k}: {old.get(k)!r} -> {provenance[k]!r}' for k in changed)}); "
                                    "use another --out (or --label-name)")
                done.add(attrs.get("source_episode"))
    return done


def _source_task(src: Path, kind: str) -> str | None:
    """The task the source names: HDF5 env_args, or the only task of a PNG video folder."""
    if kind == "hdf5":
        with Dataset(src) as ds:
            if ds.env_args.get("task"):
                return ds.env_args["task"]
    if kind == "png":
        tasks = sorted({t for folder in png_folders(src) for t in folder.tasks})
        if len(tasks) == 1:
            return tasks[0]
    return None


def _model_task(model: RewardModel, cfg: RelabelConfig) -> str:
    """The model's only task with statistics for these scoring options (the source names none)."""
    tasks = sorted({s["task"] for s in model.stats.values() if s["reward_type"] == cfg.reward_type
                    and s["skip_step"] == cfg.skip_step and s["num_samples"] == cfg.num_samples})
    if len(tasks) != 1:
        raise UserError(f"pass --task: the source names no task and the model has statistics for "
                        f"{', '.join(tasks) or 'no task'} ({cfg.reward_type}, skip {cfg.skip_step}, "
                        f"{cfg.num_samples} sample(s)); compute them with `diffusion-reward stats`")
    return tasks[0]


def _env_args(src: Path, kind: str, task: str, model: RewardModel, ep: SourceEpisode) -> dict:
    env_args = {}
    if kind == "hdf5":
        with Dataset(src) as ds:
            env_args = dict(ds.env_args)
    camera = env_args.get("camera") or ep.attrs.get("topics", {}).get("image") or ep.attrs.get("image_key")
    env_args.update(task=task, image_size=model.image_size, image_key="image", camera=camera,
                    source=kind, source_path=str(src), software_version=__version__)
    return env_args


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit="frame", desc="relabel", disable=not enabled, dynamic_ncols=True)
