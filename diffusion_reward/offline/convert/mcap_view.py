"""A dataset as an MCAP file of ROS 2 messages that Foxglove opens as it is (FORMATS.md, "view").

    summary = write_view(ViewConfig(data="labelled.hdf5", out="labelled.mcap"))

Profile `ros2`; every channel has a `ros2msg` schema (the message definition, as rosbag2 stores it) and `cdr`
messages, which Foxglove decodes natively. Topics:

- `/camera/<key>` sensor_msgs/msg/Image (rgb8), one per uint8 [T,H,W,3] observation (`image`, `image_full`, ...)
- `/reward_labels/<label>` geometry_msgs/msg/Vector3Stamped per label: x = standardised reward, y = raw score,
  z = 0 (the live labeller's `/reward_labeller/reward` has the same x / y; its z is the latency)
- `/reward/eq5` std_msgs/msg/Float64: Eq. 5 of `--reward` (with `--alpha` / `--beta`) when a label is chosen
- `/reward/sparse` std_msgs/msg/Float64: the episode's sparse task reward (`rewards`)
- `/obs/<key>` std_msgs/msg/Float32MultiArray: every vector observation (`state`, ...)
- `/action` std_msgs/msg/Float32MultiArray
- `/episode` std_msgs/msg/String: the episode's name and success, once at its first step

Time: each step is logged (and stamped) at its `timestamps` value. Episodes follow one another: one whose own
times start after the previous episode's end (robot recordings) keeps them; otherwise (simulation, where each
episode starts at 0) it is shifted to start `EPISODE_GAP_S` after the previous one ends.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import __version__
from ...errors import UserError
from . import progress_bar

EPISODE_GAP_S = 1.0
CAMERA_FRAME = "camera"
TYPES = {"image": "sensor_msgs/msg/Image", "label": "geometry_msgs/msg/Vector3Stamped",
         "scalar": "std_msgs/msg/Float64", "vector": "std_msgs/msg/Float32MultiArray", "text": "std_msgs/msg/String"}


@dataclass
class ViewConfig:
    data: str
    out: str
    episodes: list[str] | None = None  # default: all
    reward: str | None = "diffusion"  # the label for /reward/eq5 (None: no Eq. 5 channel)
    alpha: float = 0.95
    beta: float = 1.0
    force: bool = False
    progress: bool = True


@dataclass
class ViewSummary:
    out: Path
    episodes: int = 0
    steps: int = 0
    messages: dict[str, int] = field(default_factory=dict)  # topic -> count


def write_view(cfg: ViewConfig) -> ViewSummary:
    import os

    from ...data import Dataset
    from ...outputs import check_output
    from ...reward.combine import RewardMix

    mix = RewardMix(cfg.alpha, cfg.beta)
    check_output(cfg.out, {"DATASET": cfg.data}, force=cfg.force)
    out = Path(cfg.out)
    tmp = out.with_name(f".{out.name}.partial")
    with Dataset(cfg.data) as ds:
        names = _episodes(ds, cfg.episodes)
        label = _label(ds, cfg.reward)
        total = 0
        for name in names:
            with ds.episode(name) as ep:
                total += ep.require_steps()
        try:
            with open(tmp, "wb") as f, progress_bar(total, "view", cfg.progress) as bar:
                writer = _Writer(f, {"source": str(Path(cfg.data).resolve()), "software_version": __version__,
                                     "reward": json.dumps({"label": label, "alpha": mix.alpha, "beta": mix.beta})})
                end_ns = None
                for name in names:
                    with ds.episode(name) as ep:
                        end_ns = _write_episode(writer, ep, label, mix, end_ns, bar)
                writer.finish()
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return ViewSummary(out=out, episodes=len(names), steps=total, messages=dict(writer.counts))


def _episodes(ds, wanted: list[str] | None) -> list[str]:
    if not ds.episode_names:
        raise UserError(f"{ds.path} has no episodes")
    if not wanted:
        return ds.episode_names
    unknown = [n for n in wanted if n not in ds.episode_names]
    if unknown:
        raise UserError(f"{ds.path} has no episode {unknown[0]}; episodes: {', '.join(ds.episode_names[:10])}"
                        + (" ..." if len(ds.episode_names) > 10 else ""))
    return wanted


def _label(ds, reward: str | None) -> str | None:
    """The label Eq. 5 is built from: None for no Eq. 5 channel, or when `diffusion` finds no label at all."""
    if reward is None or reward == "sparse":
        return None
    from ..mdp import resolve_label

    try:
        return resolve_label(ds, reward, ds.path)[0]
    except UserError:
        if reward == "diffusion":  # the default: an unlabelled dataset still shows its video, state and sparse reward
            return None
        raise


class _Writer:
    """The mcap writer with one ros2msg schema per type and one cdr channel per topic, created on first use."""

    def __init__(self, f, metadata: dict[str, str]):
        from mcap.writer import CompressionType, Writer
        from rosbags.typesys import Stores, get_typestore

        self.typestore = get_typestore(Stores.ROS2_HUMBLE)
        self.mcap = Writer(f, compression=CompressionType.ZSTD)
        self.mcap.start(profile="ros2", library=f"diffusion_reward {__version__}")
        self.mcap.add_metadata("diffusion_reward", metadata)
        self.schemas: dict[str, int] = {}
        self.channels: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msgtype: str, msg, log_ns: int) -> None:
        if topic not in self.channels:
            if msgtype not in self.schemas:
                text = self.typestore.generate_msgdef(msgtype, ros_version=2)[0]
                self.schemas[msgtype] = self.mcap.register_schema(msgtype, "ros2msg", text.encode())
            self.channels[topic] = self.mcap.register_channel(topic, "cdr", self.schemas[msgtype])
            self.counts[topic] = 0
        data = bytes(self.typestore.serialize_cdr(msg, msgtype))
        self.mcap.add_message(self.channels[topic], log_time=log_ns, data=data, publish_time=log_ns,
                              sequence=self.counts[topic])
        self.counts[topic] += 1

    def finish(self) -> None:
        self.mcap.finish()


def _write_episode(w: _Writer, ep, label: str | None, mix, prev_end_ns: int | None, bar) -> int:
    """All messages of one episode; returns the log time of its last step (ns)."""
    steps = ep.require_steps()
    times = np.asarray(ep.timestamps if ep.timestamps is not None else np.arange(steps), dtype=np.float64)
    ns = np.round(times * 1e9).astype(np.int64)
    if prev_end_ns is not None and ns[0] <= prev_end_ns:  # each sim episode starts at 0: follow the previous one
        ns = ns - ns[0] + prev_end_ns + int(EPISODE_GAP_S * 1e9)
    if ns[0] < 0:
        ns = ns - ns[0]
    t = w.typestore.types
    cameras = [k for k in ep.obs if ep.obs[k].dtype == np.uint8 and ep.obs[k].ndim == 4 and ep.obs[k].shape[-1] == 3]
    vectors = [k for k in ep.obs if k not in cameras and ep.obs[k].ndim <= 2]
    labels = {name: value["datasets"] for name, value in ep.reward_labels.items()}
    sparse = None if ep.rewards is None else np.asarray(ep.rewards, dtype=np.float64)
    eq5 = None
    if label is not None:
        from ..mdp import episode_rewards

        eq5 = episode_rewards(ep, label, mix)
    vector_rows = {k: np.asarray(ep.obs[k], dtype=np.float32).reshape(steps, -1) for k in vectors}
    actions = None if ep.actions is None else np.asarray(ep.actions, dtype=np.float32).reshape(steps, -1)

    def header(i):
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
            sec=int(ns[i] // 1_000_000_000), nanosec=int(ns[i] % 1_000_000_000)), frame_id=CAMERA_FRAME)

    def array(values):
        layout = t["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        return t["std_msgs/msg/Float32MultiArray"](layout=layout, data=values)

    w.write("/episode", TYPES["text"], t["std_msgs/msg/String"](
        data=json.dumps({"episode": ep.name, "success": ep.success, "steps": steps})), int(ns[0]))
    for start in range(0, steps, 64):  # frames a slab at a time: memory does not grow with the episode
        stop = min(steps, start + 64)
        frames = {k: np.asarray(ep.obs[k][start:stop]) for k in cameras}
        for i in range(start, stop):
            for key, rows in frames.items():
                frame = np.ascontiguousarray(rows[i - start])
                h, width = frame.shape[:2]
                w.write(f"/camera/{key}", TYPES["image"], t["sensor_msgs/msg/Image"](
                    header=header(i), height=h, width=width, encoding="rgb8", is_bigendian=0, step=width * 3,
                    data=frame.reshape(-1)), int(ns[i]))
            for name, datasets in labels.items():
                x = float(datasets["reward"][i]) if "reward" in datasets else 0.0
                y = float(datasets["raw"][i]) if "raw" in datasets else 0.0
                w.write(f"/reward_labels/{name}", TYPES["label"], t["geometry_msgs/msg/Vector3Stamped"](
                    header=header(i), vector=t["geometry_msgs/msg/Vector3"](x=x, y=y, z=0.0)), int(ns[i]))
            if eq5 is not None:
                w.write("/reward/eq5", TYPES["scalar"], t["std_msgs/msg/Float64"](data=float(eq5[i])), int(ns[i]))
            if sparse is not None:
                w.write("/reward/sparse", TYPES["scalar"], t["std_msgs/msg/Float64"](data=float(sparse[i])),
                        int(ns[i]))
            for key, rows in vector_rows.items():
                w.write(f"/obs/{key}", TYPES["vector"], array(rows[i]), int(ns[i]))
            if actions is not None:
                w.write("/action", TYPES["vector"], array(actions[i]), int(ns[i]))
        bar.update(stop - start)
    return int(ns[-1])
