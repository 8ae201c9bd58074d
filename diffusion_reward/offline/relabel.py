"""Label recorded episodes with learned rewards, into a NEW dataset (the source is never modified).

Every episode of the source (HDF5, rosbag2, RealSense, LeRobot, PNG folders; see `sources`) streams through in
chunks: read, scored with `RewardScorer.chunked()` and written with `DatasetWriter.write_episode_chunks`
as the rewards come out, so memory does not grow with the episode's length. Written: observations
(`image` at the model's resolution, `image_full` when frames were resized, `state` and `gripper` when present:
a bag's in the live recorder's layout, FORMAT.md "Robot state layout"), actions,
sparse rewards, dones, timestamps, per-stream stamps, and the label group `reward_labels/<name>/` holding
`reward` (standardised diffusion term), `raw` (model score) and `sparse` (the source's task reward), with
the provenance as attributes. A robomimic source's `next_obs` (the camera's in the layout of `obs`), `states`
and filter keys (`mask/train`, `mask/valid`, ...) are kept. `resume=True` continues an interrupted run: episodes already labelled with
the same provenance are skipped, a different provenance is refused.

A LeRobot source may instead get a sidecar: `out` ending in `.parquet` writes one Parquet file of per-frame
rewards (`episode_index`, `frame_index`, `timestamp`, `reward`, `raw`; the provenance as JSON in the schema
metadata key `diffusion_reward`) and leaves the dataset as it is. It goes beside the dataset, or inside it only
as a new file outside LeRobot's own `meta/`, `data/`, `videos/`, `images/`; an existing sidecar is replaced
only with `force`, a file of the dataset never (SIDECAR below).

>>> summary = relabel(RelabelConfig(model="reward.safetensors", input="bags/ep_001", out="labelled.hdf5",
...                                 task="button-press-v3", resize=True))
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import MISSING, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import __version__
from ..checks import config_field
from ..data import Dataset, DatasetWriter
from ..data.writer import episode_columns
from ..errors import UserError
from ..models import RewardModel
from ..models.model_file import TOKENIZE_BATCH
from ..outputs import check_output, check_writable, refuse_writing_into_inputs
from ..reward import RewardScorer
from ..scoring_options import ScoreConfig, option_field, scoring_options
from ..data import Episode
from ..data.labels import LabelProvenance
from ..data.sources import SourceOptions, detect_kind, open_source
from ..data.sources.folder import png_folders

READ_CHUNK = TOKENIZE_BATCH  # source rows read, resized and scored at a time: memory does not grow with T
# provenance keys that must agree for --resume (paths and software version may change between runs)
SAME_LABEL_KEYS = ("model_hash", "task", "reward_type", "skip_step", "num_samples", "noise", "seed", "stats", "resize",
                   "image_size", "source_kind", "source_options")
SIDECAR_SUFFIX = ".parquet"  # --out with this suffix: a sidecar of per-frame rewards beside a LeRobot dataset
SIDECAR_METADATA_KEY = b"diffusion_reward"
SIDECAR = {  # column -> meaning (also in the file's metadata)
    "episode_index": "the LeRobot episode_index of the row",
    "frame_index": "the LeRobot frame_index of the row (0 .. length - 1)",
    "timestamp": "the row's LeRobot timestamp (s from the episode start)",
    "reward": "standardised diffusion term (raw - stats.mean) / stats.std",
    "raw": "model score",
}


@dataclass
class RelabelConfig:
    """What `relabel` does; its fields are the command's flags (scoring options: `scoring_options.py`; how the
    recording is read: `data.sources.SourceOptions`)."""

    input: str = config_field(
        MISSING, "our/robomimic HDF5, rosbag2 directory, .mcap, .db3 (rosbag2 or RealSense), RealSense .bag, a LeRobot "
                 "dataset folder (meta/info.json; v2.0, v2.1, v3.0), or a folder of PNG frames "
                 "(<domain>/<task>/<split>/<episode>/<i>.png)", metavar="SRC")
    out: str = config_field(
        MISSING, "new dataset to write (HDF5; never overwritten). For LeRobot input, a path ending in .parquet writes "
                 "a sidecar of per-frame rewards instead (episode_index, frame_index, timestamp, reward, raw; "
                 "provenance in its metadata) and leaves the dataset as it is", metavar="DST")
    model: str | None = config_field(
        None, "reward model file (.safetensors; default: the shipped model of the task's domain for MetaWorld / Adroit "
              "tasks)")
    task: str | None = config_field(
        None, "statistics to standardise with (default: the source's task, else the model's only task)")
    source: SourceOptions = field(default_factory=SourceOptions)
    resize: bool = config_field(False, "center-crop frames to a square and resize them to the model's input size")
    resume: bool = config_field(
        False, "continue an interrupted run: skip episodes already labelled with the same settings")
    force: bool = config_field(
        False, "replace an existing .parquet sidecar (never a file of the input; an HDF5 --out is continued with "
               "--resume instead)")
    reward_type: str = option_field("reward_type")  # the scoring options (scoring_options.py)
    skip_step: int = option_field("skip_step")
    num_samples: int = option_field("num_samples")
    noise: bool = option_field("noise")
    seed: int = option_field("seed")
    chunk_size: int = option_field("chunk_size")
    dtype: str = option_field("dtype")
    label_name: str | None = config_field(
        None, "name of the label group reward_labels/<name> (default: the reward type)")
    device: str = config_field("cpu", "torch device: cpu, cuda or cuda:N")
    progress: bool = True

    def __post_init__(self):  # bad numbers fail before the model loads or anything is read
        ScoreConfig(**scoring_options(self))


@dataclass(frozen=True)
class Shard:
    """One of `count` relabelling processes (`relabel_shards`): it labels the source's episodes i (in the source's
    order) with i % count == index, into its own part dataset `part_path(out, shard)`."""
    index: int
    count: int

    def owns(self, i: int) -> bool:
        return i % self.count == self.index


def part_path(out: Path, shard: Shard) -> Path:
    return out.with_name(f"{out.name}.parts") / f"rank-{shard.index}-of-{shard.count}.hdf5"


@dataclass
class RelabelSummary:
    out: Path
    written: list[str] = field(default_factory=list)  # new episode names in `out` (a shard: in its part)
    skipped: list[str] = field(default_factory=list)  # source episodes already labelled (resume)
    frames: int = 0
    seconds: float = 0.0
    camera: str | None = None  # LeRobot input: the image feature that was scored
    source_order: list[str] = field(default_factory=list)  # every source episode's name, in the source's order


def relabel(cfg: RelabelConfig, model: RewardModel | None = None, shard: Shard | None = None) -> RelabelSummary:
    """Label `cfg.input` into `cfg.out`; with `shard`, only that shard's episodes, into its part of `out`."""
    src, dst = Path(cfg.input).resolve(), Path(cfg.out).resolve()
    target = part_path(dst, shard) if shard else dst  # the dataset this process writes
    kind = detect_kind(src)
    sidecar = Path(cfg.out).suffix.lower() == SIDECAR_SUFFIX
    if sidecar and shard:
        raise UserError("a .parquet sidecar is written by one process; run relabel without torchrun for it")
    if sidecar:
        _check_sidecar_output(cfg, src, kind)
    else:
        if cfg.force:
            raise UserError("`force` replaces an existing .parquet sidecar; an HDF5 `out` is never replaced (continue "
                            "it with `resume`, or choose another `out`)")
        refuse_writing_into_inputs(cfg.out, {"`input`": cfg.input, "`model`": cfg.model})
        check_writable(cfg.out)
        for existing in {dst, target}:
            if existing.exists() and not cfg.resume:
                raise UserError(f"{existing} already exists; pass `resume` to continue labelling it, or choose "
                                "another `out`")
    camera, camera_note = _lerobot_camera(src, cfg) if kind == "lerobot" else (None, None)  # fails before the model
    source_task = None if cfg.task else _source_task(src, kind)
    if model is None:
        from ..models.pretrained import resolve_model_path

        cfg = replace(cfg, model=resolve_model_path(cfg.model, cfg.task or source_task, src))
        model = RewardModel.load(cfg.model, device=cfg.device)
    cfg = replace(cfg, reward_type=model.resolve_reward_type(cfg.reward_type))  # "auto": the model's own type
    task = cfg.task or source_task or _model_task(model, cfg)
    scorer = RewardScorer(model, ScoreConfig(**scoring_options(cfg), task=task, resize=cfg.resize))
    mean, std = scorer.stats
    label = cfg.label_name or cfg.reward_type
    source_options = cfg.source.recorded(kind)  # an output read another way cannot be continued with resume
    if kind == "lerobot":
        source_options["camera"] = camera
    provenance = LabelProvenance(
        model_hash=model.weights_hash, task=task, reward_type=cfg.reward_type, skip_step=cfg.skip_step,
        num_samples=cfg.num_samples, noise=cfg.noise, seed=cfg.seed, stats_mean=mean, stats_std=std,
        dtype=scorer.cfg.dtype, image_size=model.image_size, source="relabel", model_path=str(cfg.model),
        extra={"resize": cfg.resize, "source_path": str(src), "source_kind": kind, "source_options": source_options,
               "datasets": "reward = standardised diffusion term (raw - stats.mean) / stats.std, raw = model score, "
                           "sparse = the source's task reward"}).attrs()
    if camera_note and cfg.progress:  # said on stderr where the progress bar goes, once every check has passed
        print(camera_note, file=sys.stderr)
    if sidecar:
        return _write_sidecar(cfg, src, dst, scorer, label, provenance, camera)
    done = {}  # source name -> output name, of the episodes `out` (or this shard's part) already holds
    for existing in {dst, target}:
        if existing.exists():
            done.update(labelled_sources(existing, provenance["source_path"], label, provenance))
    summary = RelabelSummary(out=target)
    started = time.perf_counter()
    episodes = open_source(src, cfg.source)
    summary.camera = camera
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.closing(episodes))
        writer = bar = None
        expected = _expected_frames(src, kind, set(done), shard)  # None: the source cannot tell before it is read

        def open_output(env_args: dict | None):  # marked incomplete until the last episode is written
            output = stack.enter_context(DatasetWriter(target, env_args=env_args))
            output.begin_job("relabel", resume_command(cfg, shard))
            return output, stack.enter_context(_progress(cfg.progress, expected, shard))

        if target.exists():
            writer, bar = open_output(None)
        for i, ep in enumerate(episodes):
            summary.source_order.append(ep.name)
            if shard and not shard.owns(i):
                continue
            if ep.name in done:
                summary.skipped.append(ep.name)
                continue
            _model_frames(scorer, ep.name, ep.frames[:1])  # checks the size before anything is written
            if writer is None:  # first episode that passed every check: only now create the output
                writer, bar = open_output(_env_args(src, kind, task, model, ep))
            if expected is None:  # known per episode once synchronised: the total grows episode by episode
                bar.total = (bar.total or 0) + len(ep.frames)
                bar.refresh()
            bar.set_postfix_str(ep.name)
            try:
                summary.written.append(writer.write_episode_chunks(
                    _labelled_rows(scorer, ep, label, bar.update), success=bool(ep.success), attrs=ep.attrs,
                    extra_attrs={f"reward_labels/{label}": provenance}))
            except _NonFiniteRewards:
                raise UserError(f"episode {ep.name}: the model gave NaN / infinite rewards; nothing of this "
                                f"episode was written (the {len(summary.written)} before it are kept)") from None
            done[ep.name] = summary.written[-1]
            summary.frames += len(ep.frames)
        if writer is not None:
            if kind == "hdf5" and not shard:  # a sharded run's merge carries them
                carry_masks(writer, src, done)
            writer.end_job()
    summary.seconds = time.perf_counter() - started
    return summary


class _NonFiniteRewards(Exception):
    pass


def _lerobot_camera(src: Path, cfg: RelabelConfig) -> tuple[str, str]:
    """(the camera a LeRobot source is scored on, the line that says so). Checks the metadata, the camera and
    that every file the episodes need exists, so a bad dataset fails before the model loads."""
    from ..data.sources.lerobot import check_files, episode_refs, pick_camera, read_meta

    meta = read_meta(src)
    camera = pick_camera(meta, cfg.source.camera)
    check_files(meta, episode_refs(meta), camera)
    how = "chosen with --camera" if cfg.source.camera else "the first image feature; pick another with --camera"
    return camera, (f"LeRobot {meta.version} dataset: scoring camera {camera} ({meta.features[camera]['dtype']}, "
                    f"{how}; cameras: {', '.join(meta.cameras)})")


def _check_sidecar_output(cfg: RelabelConfig, src: Path, kind: str) -> None:
    """A sidecar goes beside the dataset, or inside it as a new file outside LeRobot's own folders; an earlier
    sidecar is replaced only with --force, never a file of the dataset."""
    from ..data.sources.lerobot import LEROBOT_FOLDERS

    if kind != "lerobot":
        raise UserError(f"`out` {cfg.out}: a {SIDECAR_SUFFIX} sidecar of per-frame rewards is written for LeRobot "
                        f"datasets only; label {kind} input into an HDF5 `out`")
    if cfg.resume:
        raise UserError("`resume` continues an HDF5 `out`; a .parquet sidecar is written in one go (`force` "
                        "replaces an earlier one)")
    refuse_writing_into_inputs(cfg.out, {"`model`": cfg.model})
    target = Path(cfg.out).resolve()
    if target == src or src in target.parents:
        part = target.relative_to(src).parts[0]
        if part in LEROBOT_FOLDERS:
            raise UserError(f"`out` {cfg.out} is inside the dataset's {part}/ folder, which LeRobot reads; write the "
                            "sidecar beside the dataset or at its top level (nothing was written)")
        if os.path.lexists(cfg.out) or os.path.lexists(target):
            raise UserError(f"`out` {cfg.out} is a file of the input dataset {cfg.input}; a sidecar inside the "
                            "dataset must be a new file (`force` never replaces an input; nothing was written)")
        check_writable(cfg.out)
    else:
        check_output(cfg.out, {"`input`": cfg.input, "`model`": cfg.model}, force=cfg.force)
        if Path(cfg.out).is_dir():
            raise UserError(f"`out` {cfg.out} is a folder; a sidecar is one .parquet file (nothing was written)")


def _write_sidecar(cfg: RelabelConfig, src: Path, dst: Path, scorer: RewardScorer, label: str, provenance: dict,
                   camera: str) -> RelabelSummary:
    """The per-frame rewards of every episode of a LeRobot dataset into one Parquet file (SIDECAR columns,
    provenance in the schema metadata), written under a temporary name and renamed when complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..data.sources.lerobot import episode_lengths, read_meta

    meta = read_meta(src)
    lengths = episode_lengths(src)
    metadata = {"label": label, "provenance": provenance, "columns": SIDECAR,
                "dataset": {"path": str(src), "codebase_version": meta.version, "fps": meta.fps, "camera": camera,
                            "total_episodes": len(lengths), "robot_type": meta.info.get("robot_type")},
                "software_version": __version__}
    schema = pa.schema([("episode_index", pa.int64()), ("frame_index", pa.int64()), ("timestamp", pa.float32()),
                        ("reward", pa.float32()), ("raw", pa.float32())],
                       metadata={SIDECAR_METADATA_KEY: json.dumps(metadata, default=str).encode()})
    summary = RelabelSummary(out=dst, camera=camera)
    started = time.perf_counter()
    tmp = dst.with_name(f".{dst.name}.partial")
    expected = None if any(n is None for n in lengths.values()) else sum(lengths.values())
    episodes = open_source(src, replace(cfg.source, camera=camera))
    try:
        with contextlib.closing(episodes), _progress(cfg.progress, expected) as bar, \
                pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for ep in episodes:
                if expected is None:
                    bar.total = (bar.total or 0) + len(ep.frames)
                    bar.refresh()
                bar.set_postfix_str(ep.name)
                raw, reward = _episode_rewards(scorer, ep, bar.update)
                steps = len(raw)
                writer.write_table(pa.table({
                    "episode_index": np.full(steps, ep.attrs["lerobot_episode_index"], np.int64),
                    "frame_index": np.arange(steps, dtype=np.int64),
                    "timestamp": np.asarray(ep.timestamps, np.float32), "reward": reward, "raw": raw}, schema=schema))
                summary.written.append(ep.name)
                summary.frames += steps
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    summary.seconds = time.perf_counter() - started
    return summary


def _episode_rewards(scorer: RewardScorer, ep: Episode, progress) -> tuple[np.ndarray, np.ndarray]:
    """(raw, standardised) rewards of one episode, its frames read and scored a chunk at a time."""
    scoring = scorer.chunked(progress)
    results = []
    for start in range(0, len(ep.frames), READ_CHUNK):
        results.append(scoring.push(_model_frames(scorer, ep.name, ep.frames[start:start + READ_CHUNK])))
    results.append(scoring.finish())
    raw = np.concatenate([r.raw for r in results]).astype(np.float32)
    reward = np.concatenate([r.reward for r in results]).astype(np.float32)
    if not (np.isfinite(raw).all() and np.isfinite(reward).all()):
        raise UserError(f"episode {ep.name}: the model gave NaN / infinite rewards; no sidecar was written")
    if len(raw) != len(ep.frames):
        raise UserError(f"episode {ep.name}: {len(raw)} rewards for {len(ep.frames)} frames")
    return raw, reward


def _labelled_rows(scorer: RewardScorer, ep: Episode, label: str, progress) -> Iterator[dict[str, np.ndarray]]:
    """The output rows of one episode, `{dataset path: rows}` a chunk at a time, each row written once its
    reward is out. Layout (FORMAT.md): `obs/image` = the frames at the model's resolution, `obs/image_full` =
    the source frames when they were resized, the source's other observations, actions, sparse rewards, dones,
    timestamps, stamps, and `reward_labels/<label>/{reward, raw, sparse}`. Memory: one chunk of source rows
    plus the rows waiting for their rewards (fewer than a network batch and the frame skip)."""
    steps = len(ep.frames)
    columns = episode_columns(steps, ep.obs, ep.actions, ep.rewards, ep.dones, ep.timestamps, ep.stamps, ep.extra)
    if ep.next_frames is not None and len(ep.next_frames) != steps:
        raise UserError(f"episode {ep.name}: next_obs of the camera has {len(ep.next_frames)} rows, not {steps}")
    scoring = scorer.chunked(progress)
    waiting: dict[str, np.ndarray] = {}  # source rows whose rewards are not out yet
    for start in range(0, steps, READ_CHUNK):
        rows = {k: np.asarray(v[start:start + READ_CHUNK]) for k, v in columns.items()}
        frames = np.asarray(ep.frames[start:start + READ_CHUNK])
        rows["obs/image"] = _model_frames(scorer, ep.name, frames)
        if frames.shape[1:3] != rows["obs/image"].shape[1:3]:
            rows["obs/image_full"] = frames
        if ep.next_frames is not None:  # a robomimic source's next_obs, in the same layout as obs
            next_frames = np.asarray(ep.next_frames[start:start + READ_CHUNK])
            rows["next_obs/image"] = _model_frames(scorer, ep.name, next_frames)
            if "obs/image_full" in rows:
                rows["next_obs/image_full"] = next_frames
        waiting = {k: np.concatenate([waiting[k], v]) if waiting else v for k, v in rows.items()}
        labelled, waiting = _label(waiting, scoring.push(rows["obs/image"]), label)
        yield labelled
    yield _label(waiting, scoring.finish(), label)[0]


def _label(waiting: dict[str, np.ndarray], result, label: str) -> tuple[dict, dict]:
    """(the first rows of `waiting` with the rewards in `result`, the rows still waiting)."""
    if not (np.isfinite(result.raw).all() and np.isfinite(result.reward).all()):
        raise _NonFiniteRewards
    n = len(result.raw)
    labelled = {k: v[:n] for k, v in waiting.items()}
    labelled.update({f"reward_labels/{label}/reward": result.reward, f"reward_labels/{label}/raw": result.raw,
                     f"reward_labels/{label}/sparse": labelled["rewards"]})
    return labelled, {k: v[n:] for k, v in waiting.items()}


def _model_frames(scorer: RewardScorer, name: str, frames) -> np.ndarray:
    """Frames at the model's resolution (center-cropped and resized with --resize)."""
    try:
        return scorer.prepare_frames(frames)
    except UserError as exc:
        raise UserError(f"episode {name}: {exc}") from None


def labelled_sources(dst: Path, source_path: str, label: str | None = None,
                     provenance: dict | None = None) -> dict[str, str]:
    """{source episode name: its name in `dst`} of the episodes from `source_path` that `dst` holds; with `label`
    and `provenance` (resume), UserError if one of them was labelled differently."""
    done = {}
    with Dataset(dst) as ds:
        for ep in ds:
            with ep:
                attrs = ep.attrs
                if attrs.get("source_path") != source_path:
                    continue
                if provenance is not None:
                    old = ep.reward_labels.get(label, {}).get("attrs", {})
                    if "stats_mean" in old:  # written before the one `stats` object (data.labels)
                        old = LabelProvenance.from_attrs(old).attrs()
                    changed = [k for k in SAME_LABEL_KEYS if old.get(k) != provenance[k]]
                    if changed:
                        raise UserError(f"{dst} episode {ep.name} was labelled {label!r} with different settings "
                                        f"({', '.join(f'{k}: {old.get(k)!r} -> {provenance[k]!r}' for k in changed)}"
                                        "); use another `out` (or `label_name`)")
                done[attrs.get("source_episode")] = ep.name
    return done


def resume_command(cfg: RelabelConfig, shard: Shard | None) -> str:
    """What the incomplete mark of an interrupted output tells the user to run."""
    launcher = f"torchrun --nproc_per_node {shard.count} -m diffusion_reward" if shard else "diffusion-reward"
    return f"{launcher} relabel --input {cfg.input} --out {cfg.out} --resume (same options)"


def carry_masks(writer: DatasetWriter, src: Path, renamed: dict[str, str]) -> None:
    """The HDF5 source's filter keys (robomimic's `mask/train`, `mask/valid`, ...) on the output, naming the
    output's episodes (`success` is the writer's own)."""
    with Dataset(src) as ds:
        masks = ds.masks
    for name, members in masks.items():
        if name != "success":
            writer.set_mask(name, [renamed[m] for m in members if m in renamed])


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
        raise UserError(f"pass `task`: the source names no task and the model has statistics for "
                        f"{', '.join(tasks) or 'no task'} ({cfg.reward_type}, skip {cfg.skip_step}, "
                        f"{cfg.num_samples} sample(s)); compute them with `diffusion-reward stats`")
    return tasks[0]


def _env_args(src: Path, kind: str, task: str, model: RewardModel, ep: Episode) -> dict:
    env_args = {}
    if kind == "hdf5":
        with Dataset(src) as ds:
            env_args = dict(ds.env_args)
    if kind == "lerobot":
        from ..data.sources.lerobot import read_meta

        meta = read_meta(src)
        env_args = {"fps": meta.fps, "robot_type": meta.info.get("robot_type"),
                    "lerobot_codebase_version": meta.version}
    # a bag's robot-state layout, under the live recorder's env_args names (FORMAT.md, "Robot state layout")
    env_args.update({k: ep.attrs[k] for k in ("joint_names", "state_fields", "gripper_joint_names") if k in ep.attrs})
    camera = env_args.get("camera") or ep.attrs.get("topics", {}).get("image") or ep.attrs.get("image_key")
    env_args.update(task=task, image_size=model.image_size, image_key="image", camera=camera,
                    source=kind, source_path=str(src), software_version=__version__)
    return env_args


def _expected_frames(src: Path, kind: str, done: set[str], shard: Shard | None) -> int | None:
    """Frames still to label (by this shard), for the progress bar's total: an HDF5 source knows it before it is
    read; other sources tell it episode by episode (None): rosbag2 and RealSense streams once synchronised to a
    control rate."""
    def todo(i: int, name: str) -> bool:
        return name not in done and (shard is None or shard.owns(i))

    if kind == "lerobot":  # from the episode metadata, when it lists lengths
        from ..data.sources.lerobot import episode_lengths

        lengths = [n for i, (name, n) in enumerate(episode_lengths(src).items()) if todo(i, name)]
        return None if any(n is None for n in lengths) else sum(lengths)
    if kind != "hdf5":
        return None
    frames = 0
    with Dataset(src) as ds:
        for i, name in enumerate(ds.episode_names):
            if todo(i, name):
                with ds.episode(name) as ep:
                    frames += ep.num_samples
    return frames


def _progress(enabled: bool, total: int | None, shard: Shard | None = None):
    from tqdm import tqdm

    desc = f"relabel rank {shard.index}/{shard.count}" if shard else "relabel"
    return tqdm(total=total, unit="frame", desc=desc, disable=not enabled, dynamic_ncols=True)
