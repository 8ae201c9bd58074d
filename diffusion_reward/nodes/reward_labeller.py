"""Reward labeller: camera frames in, one dense Diffusion Reward per processed frame out.

Subscribes to `image_topic` (sensor-data QoS; a topic ending in `/compressed` is read as
`sensor_msgs/CompressedImage`), crops and resizes each frame exactly like training and offline scoring,
pushes it through the streaming reward (`RewardScorer.stream()`) and publishes `~/reward`
(`geometry_msgs/Vector3Stamped`, reliable depth 10): header = the source image's header (stamp and
frame_id, whatever the clock), x = standardised reward, y = raw score, z = latency in s from receiving
the image to publishing its reward.

Live mode (default): the model runs in a worker thread behind a bounded queue of `queue_size` newest
frames. When the model is slower than the camera the oldest waiting frames are dropped, counted and
reported (warning + `/diagnostics`); each reward then conditions on the previous *processed* frame.
The newest frame has then waited up to one camera period for the model when the worker takes it; with
`max_wait_s` > 0 a frame that waited longer is dropped too and the worker scores the next one to arrive:
camera-to-reward latency close to the scorer's own time, for fewer rewards per second (a choice of latency
over throughput; off by default).
`synchronous: true` processes every frame inside its callback instead, in order: use it for replays and
for rewards that must equal offline relabelling exactly. While the model catches up, up to
`replay_queue_size` frames wait in the subscription's queue (sized for bursts and stalls of a loaded
machine; the replay must still be no faster than the model on average); a frame arriving at a full queue
or lost on the way is counted (`lost_in_transport` in `/diagnostics`, and a warning), never silently gone.

Episode boundaries (`/episode/start`, `/episode/stop`, `~/reset`: std_msgs/Empty; `/episode/result`:
std_msgs/Bool) restart the temporal context, so the first frame of an episode is scored on (f0, f0) like
row 0 offline, and release the rows likelihood mode holds back for its last frames. They are handled in
arrival order: frames queued before a boundary still belong to the episode that ends. Diagnostics
(`/diagnostics`, about 1 Hz) report counts (received = processed + skipped + errors + queued), latency
percentiles and the median time of each stage of a processed frame (`STAGES`). The labelling provenance (model
hash, statistics, reward settings: `data.labels.LabelProvenance`) goes beside the reward stream, latched on
`~/reward_provenance`, so a recorder that starts later still gets it and stores it with the rewards.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..data.labels import LabelProvenance, provenance_topic
from ..errors import UserError
from ..reward_types import REWARD_TYPE_CHOICES
from ..scoring_options import ScoreConfig, check_options, option_field, scoring_options
from ..msgs import Bool, CompressedImage, DiagnosticArray, DiagnosticStatus, Empty, Header, Image, KeyValue, String, \
    Time, Vector3, Vector3Stamped
from ..transport.base import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS, QoS, Transport
from ..data.frames import Crop, ImageConversionError, image_to_rgb, to_model_frame
from .params import declare_params

# every episode boundary restarts the temporal context (and releases likelihood mode's last rows)
EPISODE_END = object()
EPISODE_BOUNDARIES = {"/episode/start": Empty, "/episode/stop": Empty, "/episode/result": Bool, "~/reset": Empty}


# where a processed frame's time goes, in order (each reported as <stage>_p50_ms in /diagnostics): waiting in the
# queue, decode + crop + resize, the codec, the reverse chain, publishing its reward
STAGES = ("wait", "convert", "encode", "chain", "publish")
LABELLER_OPTIONS = ("reward_type", "skip_step", "num_samples", "noise", "seed", "dtype")  # its scoring parameters


@dataclass
class RewardLabellerParams:
    model_path: str = field(default="", metadata={"help": "reward model file (.safetensors); empty: the shipped "
                                                          "model of the task's domain (MetaWorld / Adroit)"})
    task: str = field(default="", metadata={"help": "task whose standardisation statistics to use"})
    reward_type: str = option_field("reward_type")  # the scoring options (scoring_options.py)
    skip_step: int = option_field("skip_step")
    num_samples: int = option_field("num_samples")
    noise: bool = option_field("noise")
    seed: int = option_field("seed")
    device: str = field(default="cpu", metadata={"help": "torch device: cpu, cuda, cuda:1"})
    num_threads: int = field(default=0, metadata={
        "help": "torch CPU threads of this process (0: torch's default, one per core)"})
    dtype: str = option_field("dtype")
    crop: str = field(default="center", metadata={"help": "center | none | x,y,w,h (pixels) before resize"})
    image_topic: str = field(default="/camera/camera/color/image_raw",
                             metadata={"help": "colour image topic (…/compressed: CompressedImage)"})
    queue_size: int = field(default=1, metadata={"help": "newest frames waiting for the model; older are dropped"})
    max_wait_s: float = field(default=0.0, metadata={
        "help": "live: a frame that waited longer for the model is dropped and the next one scored (0 = off)"})
    synchronous: bool = field(default=False, metadata={"help": "score every frame in its callback (replays, no drops)"})
    replay_queue_size: int = field(default=300, metadata={
        "help": "synchronous: frames that may wait for the model (300 = 10 s at 30 Hz); more are lost, counted"})
    late_after_s: float = field(default=0.2, metadata={"help": "a reward published later than this is counted late"})
    diagnostics_period_s: float = field(default=1.0, metadata={"help": "period of /diagnostics updates"})

    def validate(self) -> None:
        if not self.task:
            raise UserError("parameter task is empty: set it to the task whose statistics the model holds")
        if self.reward_type not in REWARD_TYPE_CHOICES:
            raise UserError(f"parameter reward_type must be one of {', '.join(REWARD_TYPE_CHOICES)}, "
                            f"got '{self.reward_type}'")
        check_options(scoring_options(self, LABELLER_OPTIONS), label=lambda name: f"parameter {name}")
        if self.num_threads < 0:
            raise UserError(f"parameter num_threads must be >= 0, got {self.num_threads}")
        for name in ("queue_size", "replay_queue_size"):
            if getattr(self, name) < 1:
                raise UserError(f"parameter {name} must be >= 1, got {getattr(self, name)}")
        if not self.max_wait_s >= 0:
            raise UserError(f"parameter max_wait_s must be >= 0, got {self.max_wait_s}")
        if self.late_after_s <= 0 or self.diagnostics_period_s <= 0:
            raise UserError("parameters late_after_s and diagnostics_period_s must be > 0")
        Crop.parse(self.crop)


class RewardLabellerNode:
    def __init__(self, transport: Transport):
        self.transport = transport
        self.params = p = declare_params(transport, RewardLabellerParams)
        self.crop = Crop.parse(p.crop)
        self.model, self.scorer, self.provenance = _load_scorer(p)
        self.stream = self.scorer.stream()
        self._unscored: deque[tuple[Header, float]] = deque()  # frames pushed whose reward is not out yet

        self.received = self.processed = self.skipped = self.late = self.errors = 0
        self._latencies: deque[float] = deque(maxlen=1000)
        self._stages = {stage: deque(maxlen=1000) for stage in STAGES}  # seconds per processed frame
        self._skipped_reported = self._lost_reported = 0
        self._error_messages: set[str] = set()
        self._queue: deque = deque()  # (image message, receive time) or EPISODE_END, in arrival order
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False

        self.reward_pub = transport.create_publisher(Vector3Stamped, "~/reward", DEFAULT_QOS)
        self.provenance_pub = transport.create_publisher(String, provenance_topic("~/reward"), LATCHED_QOS)
        self.provenance_pub.publish(String(data=self.provenance.to_json()))  # kept for subscribers joining later
        self.diagnostics_pub = transport.create_publisher(DiagnosticArray, "/diagnostics", DEFAULT_QOS)
        image_type = CompressedImage if p.image_topic.rstrip("/").endswith("/compressed") else Image
        # synchronous replays must not lose frames to a short keep-last queue
        image_qos = QoS(reliable=False, depth=p.replay_queue_size) if p.synchronous else SENSOR_DATA_QOS
        self.image_subscription = transport.create_subscription(image_type, p.image_topic, self._on_image, image_qos)
        for topic, msg_type in EPISODE_BOUNDARIES.items():
            transport.create_subscription(msg_type, topic, self._on_reset, DEFAULT_QOS)
        transport.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self._worker = None
        if not p.synchronous:
            self._worker = threading.Thread(target=self._work, name=f"{transport.name}-model", daemon=True)
            self._worker.start()
        transport.log("info", f"scoring {p.image_topic} with {p.model_path} (task {p.task}, "
                              f"{self.scorer.cfg.reward_type}, "
                              f"skip {p.skip_step}, {p.num_samples} sample(s), "
                              f"{'synchronous' if p.synchronous else f'queue {p.queue_size}'})")

    # -- callbacks ------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._enqueue_or_run((msg, time.monotonic()))

    def _on_reset(self, _msg: Empty | Bool) -> None:
        self._enqueue_or_run(EPISODE_END)

    def _enqueue_or_run(self, item) -> None:
        """Live: queue the frame (dropping the oldest waiting frame when full) or the episode end, in
        arrival order, for the worker. Synchronous: handle it here."""
        with self._cond:
            if item is not EPISODE_END:
                self.received += 1
            if self.params.synchronous:
                self._busy = True
            else:
                frames = [i for i, queued in enumerate(self._queue) if queued is not EPISODE_END]
                if item is not EPISODE_END and len(frames) >= self.params.queue_size:
                    del self._queue[frames[0]]
                    self.skipped += 1
                self._queue.append(item)
                self._cond.notify_all()
                return
        try:
            self._handle(item)
        finally:
            with self._cond:
                self._busy = False

    def _handle(self, item) -> None:
        self._end_episode() if item is EPISODE_END else self._process(*item)

    # -- scoring ----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._queue.popleft()
                if self._stale(item):
                    self.skipped += 1
                    continue
                self._busy = True
            try:
                self._handle(item)
            except Exception as exc:  # a bug must not silently kill the labeller thread
                self.transport.log("error", f"reward worker failed on a frame: {exc!r}")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _stale(self, item) -> bool:
        """A frame that waited longer than `max_wait_s` for the worker (live mode; episode ends never are)."""
        return (item is not EPISODE_END and self.params.max_wait_s > 0
                and time.monotonic() - item[1] > self.params.max_wait_s)

    def _process(self, msg: Image | CompressedImage, received_at: float) -> None:
        start = time.monotonic()
        try:
            frame = to_model_frame(image_to_rgb(msg), self.crop, self.model.image_size)
        except ImageConversionError as exc:
            with self._cond:
                self.errors += 1
                first = str(exc) not in self._error_messages
                self._error_messages.add(str(exc))
            if first:  # one line per kind of problem, not one per frame at 30 Hz
                self.transport.log("error", f"skipping frames from {self.params.image_topic}: {exc}")
            return
        converted = time.monotonic()
        self._unscored.append((msg.header, received_at))
        row = self.stream.push(frame)
        published = self._publish(*self._unscored.popleft(), *row) if row is not None else 0.0
        with self._cond:
            self.processed += 1
            for stage, seconds in zip(STAGES, (start - received_at, converted - start, self.stream.timings["encode"],
                                               self.stream.timings["chain"], published)):
                self._stages[stage].append(seconds)

    def _publish(self, header: Header, received_at: float, raw: float, reward: float) -> float:
        """The reward of the frame with `header` (the stream's rows may lag its input: likelihood mode); returns
        the seconds `publish` took."""
        start = time.monotonic()
        latency = start - received_at
        self.reward_pub.publish(Vector3Stamped(
            header=Header(stamp=Time(header.stamp.sec, header.stamp.nanosec), frame_id=header.frame_id),
            vector=Vector3(x=float(reward), y=float(raw), z=latency)))
        with self._cond:
            self.late += latency > self.params.late_after_s
            self._latencies.append(latency)
        return time.monotonic() - start

    def _end_episode(self) -> None:
        """Publish the rows the stream still holds (likelihood mode's last frames), then start afresh."""
        for row in self.stream.finish():
            self._publish(*self._unscored.popleft(), *row)
        self._unscored.clear()
        self.stream.reset()

    # -- diagnostics ------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        with self._cond:
            counts = dict(received=self.received, processed=self.processed, skipped=self.skipped,
                          late=self.late, errors=self.errors,
                          queued=sum(item is not EPISODE_END for item in self._queue),
                          lost_in_transport=self.image_subscription.dropped + self.image_subscription.lost)
            latencies = np.array(self._latencies) if self._latencies else np.zeros(1)
            stages = {f"{stage}_p50_ms": f"{np.median(times) * 1000:.2f}" for stage, times in self._stages.items()
                      if times}
            new_skips = self.skipped - self._skipped_reported
            self._skipped_reported = self.skipped
            new_losses = counts["lost_in_transport"] - self._lost_reported
            self._lost_reported = counts["lost_in_transport"]
        p50, p99 = np.percentile(latencies, [50, 99]) * 1000
        if new_skips:
            self.transport.log("warn", f"dropped {new_skips} frame(s) in the last {self.params.diagnostics_period_s:g} s: "
                                       f"the model (p50 {p50:.0f} ms/frame) is slower than the camera")
        if new_losses and not self.transport.warns_on_missed_messages:  # else the transport has said it
            self.transport.log("warn", f"{new_losses} frame(s) never reached the labeller (its subscription queue "
                                       "was full, or they were lost on the way)")
        level = DiagnosticStatus.WARN if (new_skips or new_losses or counts["errors"]) else DiagnosticStatus.OK
        message = (f"{counts['processed']} frames scored, {counts['skipped']} dropped, "
                   f"{counts['lost_in_transport']} lost in transport, {counts['errors']} unreadable; "
                   f"latency p50 {p50:.1f} ms p99 {p99:.1f} ms")
        values = {**counts, "latency_p50_ms": f"{p50:.2f}", "latency_p99_ms": f"{p99:.2f}", **stages}
        self.diagnostics_pub.publish(DiagnosticArray(
            header=Header(stamp=Time.from_ns(self.transport.now_ns())),
            status=[DiagnosticStatus(level=level, name=f"{self.transport.name}: reward", message=message,
                                     hardware_id=self.provenance.model_hash,
                                     values=[KeyValue(k, str(v)) for k, v in values.items()])]))

    # -- lifecycle --------------------------------------------------------------------------------
    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every queued frame is scored (tests, replays). False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join()
        self._end_episode()  # likelihood mode: the last frames' rows


def _load_scorer(p: RewardLabellerParams):
    """Model + scorer for the parameters, and the provenance the recorder stores with each reward label."""
    import torch

    from ..models import RewardModel
    from ..models.pretrained import resolve_model_path
    from ..reward import RewardScorer

    if p.num_threads:  # on a CPU shared with the camera driver and DDS, fewer threads than cores can score faster
        torch.set_num_threads(p.num_threads)
    p.model_path = resolve_model_path(p.model_path, p.task)
    model = RewardModel.load(p.model_path, device=p.device)
    options = ScoreConfig(**scoring_options(p, LABELLER_OPTIONS), task=p.task)
    scorer = RewardScorer(model, options)  # UserError when the task has no statistics
    mean, std = scorer.stats
    provenance = LabelProvenance(
        model_hash=model.weights_hash, task=p.task, reward_type=scorer.cfg.reward_type,  # "auto" resolved
        skip_step=p.skip_step, num_samples=p.num_samples, noise=p.noise, seed=p.seed, stats_mean=mean, stats_std=std,
        dtype=scorer.cfg.dtype, image_size=model.image_size, source="ros2", model_path=p.model_path,  # dtype: "auto"
        extra={"crop": p.crop, "synchronous": p.synchronous})                                 # resolved for this machine
    return model, scorer, provenance
