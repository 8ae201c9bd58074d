"""Reward labeller on the in-process transport, with a real (tiny, random-weight) reward model."""
import cv2
import numpy as np
import pytest

from diffusion_reward.data.frames import resize_frames, rgb_to_image
from diffusion_reward.data.labels import LabelProvenance
from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.msgs import CompressedImage, DiagnosticArray, Empty, Header, Image, String, Time, Vector3Stamped
from diffusion_reward.nodes.reward_labeller import STAGES, RewardLabellerNode
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.transport import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

SKIP = 49  # 3 network evaluations per frame: fast tests, same code path as skip 9
TOPIC = "/camera/camera/color/image_raw"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = RewardModel.from_preset("tiny", seed=0)
    for reward_type in ("entropy", "likelihood", "likelihood_ratio"):
        model.set_stats("button-press-v3", reward_type, SKIP, 1, mean=-400.0, std=20.0)
    return str(model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors"))


def _frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 64, 3), dtype=np.uint8)


def _offline(model_path, frames, reward_type="entropy"):
    scorer = RewardScorer(RewardModel.load(model_path), ScoreConfig(
        reward_type=reward_type, skip_step=SKIP, task="button-press-v3", seed=0))
    return scorer.score_episode(resize_frames(frames, 64))


class Graph:
    def __init__(self, model_path, /, **params):
        self.bus = InProcessBus()
        self.cam = InProcessTransport("camera", self.bus)
        self.image_pub = self.cam.create_publisher(Image, TOPIC, SENSOR_DATA_QOS)
        self.reset_pub = self.cam.create_publisher(Empty, "/episode/start", DEFAULT_QOS)
        self.rewards, self.diagnostics = [], []
        self.cam.create_subscription(Vector3Stamped, "/reward_labeller/reward", self.rewards.append)
        self.cam.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append)
        overrides = {"model_path": model_path, "task": "button-press-v3", "skip_step": SKIP, **params}
        self.labeller = RewardLabellerNode(InProcessTransport("reward_labeller", self.bus, params=overrides))

    def publish(self, frames, start_ns=5_000_000_000, encoding="rgb8"):
        stamps = []
        for i, frame in enumerate(frames):
            stamps.append(start_ns + i * 33_000_000)
            self.image_pub.publish(rgb_to_image(frame, stamps[-1], f"cam_{i}", encoding))
            self.bus.spin_until_idle()
        return stamps

    def settle(self):
        assert self.labeller.wait_idle(60)
        self.bus.spin_until_idle()


def test_synchronous_rewards_carry_image_stamps_and_equal_offline_scoring(model_path):
    g = Graph(model_path, synchronous=True, use_sim_time=True)
    frames = _frames(5)
    stamps = g.publish(frames, encoding="bgr8")  # stamps far from the (unset) sim clock: copied, not "now"
    g.settle()
    assert [r.header.stamp.to_ns() for r in g.rewards] == stamps
    assert [r.header.frame_id for r in g.rewards] == [f"cam_{i}" for i in range(5)]
    offline = _offline(model_path, frames)
    np.testing.assert_allclose([r.vector.y for r in g.rewards], offline.raw, rtol=1e-5)
    np.testing.assert_allclose([r.vector.x for r in g.rewards], offline.reward, rtol=1e-4, atol=1e-5)
    assert all(r.vector.z >= 0 for r in g.rewards)
    g.labeller.close()


def test_a_videogpt_model_file_labels_with_the_viper_reward(tmp_path):
    model = RewardModel.from_preset("tiny", seed=0, video_model="videogpt")
    model.set_stats("button-press-v3", "likelihood", 0, 1, mean=-300.0, std=20.0)
    path = str(model.save(tmp_path / "viper.safetensors"))
    g = Graph(path, synchronous=True, reward_type="viper")
    frames = _frames(5)
    g.publish(frames)
    g.settle()
    offline = RewardScorer(RewardModel.load(path), ScoreConfig(reward_type="viper", task="button-press-v3"))
    offline = offline.score_episode(resize_frames(frames, 64))
    np.testing.assert_allclose([r.vector.y for r in g.rewards], offline.raw, rtol=1e-5)
    np.testing.assert_allclose([r.vector.x for r in g.rewards], offline.reward, rtol=1e-4, atol=1e-5)
    g.labeller.close()


def test_compressed_topic_gives_the_same_rewards_as_raw(model_path):
    frames = _frames(3, seed=5)
    raw_graph = Graph(model_path, synchronous=True)
    raw_graph.publish(frames)
    g = Graph(model_path, synchronous=True, image_topic=TOPIC + "/compressed")
    pub = g.cam.create_publisher(CompressedImage, TOPIC + "/compressed", SENSOR_DATA_QOS)
    for i, frame in enumerate(frames):  # png: lossless, so the model sees the same pixels
        pub.publish(CompressedImage(header=Header(stamp=Time(7, i)), format="png",
                                    data=cv2.imencode(".png", frame[..., ::-1])[1].tobytes()))
        g.bus.spin_until_idle()
    g.settle()
    raw_graph.settle()
    assert [r.header.stamp.nanosec for r in g.rewards] == [0, 1, 2]
    assert [r.vector.y for r in g.rewards] == [r.vector.y for r in raw_graph.rewards]
    g.labeller.close()
    raw_graph.labeller.close()


def test_episode_start_resets_context(model_path):
    g = Graph(model_path, synchronous=True)
    frames = _frames(4, seed=1)
    g.publish(frames[:3])
    g.reset_pub.publish(Empty())
    g.bus.spin_until_idle()
    g.publish(frames[2:4], start_ns=9_000_000_000)
    g.settle()
    np.testing.assert_allclose([r.vector.y for r in g.rewards[:3]], _offline(model_path, frames[:3]).raw, rtol=1e-5)
    # after the reset, frame 2 is row 0 again: conditioned on (f2, f2) with row 0's noise
    np.testing.assert_allclose([r.vector.y for r in g.rewards[3:]], _offline(model_path, frames[2:4]).raw, rtol=1e-5)
    assert g.rewards[3].vector.y != pytest.approx(g.rewards[2].vector.y)
    g.labeller.close()


@pytest.mark.parametrize("reward_type", ["likelihood", "likelihood_ratio"])
def test_likelihood_rows_lag_but_keep_their_image_stamps(model_path, reward_type):
    g = Graph(model_path, synchronous=True, reward_type=reward_type)
    frames = _frames(4, seed=2)
    stamps = g.publish(frames)
    g.settle()
    assert len(g.rewards) == 3  # the last frame's row needs its successor ...
    g.reset_pub.publish(Empty())  # ... or the episode's end, which carries the previous row
    g.bus.spin_until_idle()
    assert [r.header.stamp.to_ns() for r in g.rewards] == stamps
    # the ratio is a small difference of two large bounds: float32 batch-vs-row rounding shows up absolutely
    np.testing.assert_allclose([r.vector.y for r in g.rewards], _offline(model_path, frames, reward_type).raw,
                               rtol=1e-5, atol=1e-4)
    g.labeller.close()


def test_live_mode_reset_releases_likelihood_rows_without_a_new_frame(model_path):
    g = Graph(model_path, reward_type="likelihood", queue_size=8)
    stamps = g.publish(_frames(3, seed=3))
    g.settle()
    g.reset_pub.publish(Empty())
    g.bus.spin_until_idle()
    g.settle()
    assert [r.header.stamp.to_ns() for r in g.rewards] == stamps
    g.labeller.close()


def test_live_mode_keeps_queued_frames_in_the_episode_they_arrived_in(model_path):
    g = Graph(model_path, queue_size=8)  # room for everything: no drops
    frames = _frames(5, seed=4)
    g.publish(frames[:3])
    g.reset_pub.publish(Empty())  # arrives while the worker is still busy with the first episode
    g.bus.spin_until_idle()
    g.publish(frames[3:], start_ns=9_000_000_000)
    g.settle()
    raw = [r.vector.y for r in g.rewards]
    np.testing.assert_allclose(raw[:3], _offline(model_path, frames[:3]).raw, rtol=1e-5)
    np.testing.assert_allclose(raw[3:], _offline(model_path, frames[3:]).raw, rtol=1e-5)
    assert g.labeller.skipped == 0
    g.labeller.close()


def test_drops_oldest_frames_under_load_and_reports(model_path):
    g = Graph(model_path, queue_size=1)
    received = 12
    g.publish(_frames(received))  # each callback only enqueues; the model needs far longer per frame
    g.settle()
    lab = g.labeller
    assert lab.received == received and lab.skipped > 0
    assert lab.processed + lab.skipped == received
    assert len(g.rewards) == lab.processed
    g.bus.advance(1.0)  # the diagnostics timer
    status = g.diagnostics[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == status.WARN and status.name == "reward_labeller: reward"
    assert (int(values["processed"]), int(values["skipped"])) == (lab.processed, lab.skipped)
    assert float(values["latency_p99_ms"]) >= float(values["latency_p50_ms"]) > 0
    stages = {stage: float(values[f"{stage}_p50_ms"]) for stage in STAGES}  # where the time goes
    assert min(stages.values()) >= 0 and stages["encode"] > 0 and stages["chain"] > 0
    assert status.hardware_id == RewardModel.load(model_path).weights_hash and "stats_mean" not in values
    assert any(level == "warn" and "slower than the camera" in m for level, m in lab.transport.logs)
    late = []  # the provenance is latched beside the reward stream: a subscriber joining now still gets it
    InProcessTransport("late_recorder", g.bus).create_subscription(
        String, "/reward_labeller/reward_provenance", late.append, LATCHED_QOS)
    g.bus.spin_until_idle()
    [provenance] = [LabelProvenance.from_json(m.data) for m in late]
    assert (provenance.model_hash, provenance.task, provenance.skip_step) == (
        RewardModel.load(model_path).weights_hash, lab.params.task, lab.params.skip_step)
    assert provenance.stats_mean == lab.scorer.stats[0] and provenance.source == "ros2"
    lab.close()


def test_max_wait_drops_frames_that_waited_too_long(model_path, monkeypatch):
    """Latency over throughput: a frame that waited longer than max_wait_s for the worker is dropped, counted as
    skipped, and never scored. The labeller's clock is replaced, so what counts as a long wait is not timing."""
    import itertools
    import types

    from diffusion_reward.nodes import reward_labeller

    clock = {"now": lambda: 100.0}  # frozen: no frame waits
    monkeypatch.setattr(reward_labeller, "time", types.SimpleNamespace(monotonic=lambda: clock["now"]()))
    g = Graph(model_path, queue_size=8, max_wait_s=0.5)
    g.publish(_frames(3, seed=5))
    g.settle()
    assert (g.labeller.processed, g.labeller.skipped, len(g.rewards)) == (3, 0, 3)
    ticks = itertools.count(200)
    clock["now"] = lambda: float(next(ticks))  # every read 1 s later: each frame has waited > 0.5 s when taken
    g.publish(_frames(3, seed=6), start_ns=9_000_000_000)
    g.settle()
    lab = g.labeller
    assert (lab.received, lab.processed, lab.skipped, len(g.rewards)) == (6, 3, 3, 3)
    lab.close()


def test_bad_encoding_logs_one_error_and_keeps_running(model_path):
    g = Graph(model_path, synchronous=True)
    bad = Image(height=4, width=4, encoding="yuv422", step=8, data=bytes(32))
    for _ in range(3):
        g.image_pub.publish(bad)
        g.bus.spin_until_idle()
    g.publish(_frames(1))
    g.settle()
    errors = [m for level, m in g.labeller.transport.logs if level == "error"]
    assert len(errors) == 1 and "yuv422" in errors[0]
    assert g.labeller.errors == 3 and len(g.rewards) == 1
    g.labeller.close()


@pytest.mark.parametrize("params,match", [
    ({"model_path": "/nonexistent/model.safetensors"}, "does not exist"),
    ({"model_path": "", "task": "franka-kitchen-wipe"}, "no reward model given and 'franka-kitchen-wipe' is not"),
    ({"task": "door-open-v3"}, "diffusion-reward stats"),
    ({"reward_type": "entropyy"}, "reward_type must be one of"),
    ({"skip_step": -1}, "parameter skip_step must be >= 0"),  # the bounds of ScoreConfig (scoring_options.py)
    ({"num_samples": 0}, "parameter num_samples must be >= 1"),
    ({"crop": "10,10"}, "crop must be"),
    ({"queue_size": 0}, "queue_size must be >= 1"),
    ({"max_wait_s": -0.1}, "max_wait_s must be >= 0"),
    ({"num_threads": -1}, "num_threads must be >= 0"),
])
def test_parameter_validation(model_path, params, match):
    with pytest.raises(UserError, match=match):
        Graph(model_path, **params)
