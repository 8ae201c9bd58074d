"""Camera frames -> labeller -> recorder on one in-process graph: recorded rewards == offline relabelling."""
import numpy as np

from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel
from diffusion_reward.msgs import Bool, Empty, Header, Image, JointState, Time
from diffusion_reward.nodes.episode_recorder import FR3_JOINTS, EpisodeRecorderNode
from diffusion_reward.data.frames import rgb_to_image
from diffusion_reward.nodes.reward_labeller import RewardLabellerNode
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.transport import SENSOR_DATA_QOS
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

SKIP, TASK = 49, "button-press-v3"


def test_recorded_rewards_equal_offline_relabelling(tmp_path, tiny_model_file):
    model_path = tiny_model_file(TASK, SKIP)
    bus = InProcessBus()
    labeller = RewardLabellerNode(InProcessTransport("reward_labeller", bus, params={
        "model_path": model_path, "task": TASK, "skip_step": SKIP, "synchronous": True}))
    recorder = EpisodeRecorderNode(InProcessTransport("episode_recorder", bus, params={
        "output": str(tmp_path / "robot.hdf5"), "task": TASK, "gripper_topic": "", "action_topic": ""}))
    robot = InProcessTransport("robot", bus)
    image_pub = robot.create_publisher(Image, "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
    joints_pub = robot.create_publisher(JointState, "/franka/joint_states")
    start_pub = robot.create_publisher(Empty, "/episode/start")
    result_pub = robot.create_publisher(Bool, "/episode/result")

    rng = np.random.default_rng(0)
    for episode in range(2):
        start_pub.publish(Empty())
        bus.advance(1.0)  # labeller diagnostics (provenance) reach the recorder
        for i in range(4):
            stamp = robot.now_ns()
            joints_pub.publish(JointState(header=Header(stamp=Time.from_ns(stamp)), name=FR3_JOINTS,
                                          position=np.full(7, float(i)), velocity=np.zeros(7)))
            image_pub.publish(rgb_to_image(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8), stamp, "cam"))
            bus.advance(0.1)
        result_pub.publish(Bool(data=episode == 1))
        bus.advance(0.5)
    labeller.close()
    recorder.close()

    ds = Dataset(tmp_path / "robot.hdf5")
    ds.verify()
    scorer = RewardScorer(RewardModel.load(model_path), ScoreConfig(skip_step=SKIP, task=TASK, seed=0))
    assert [ep.success for ep in ds] == [False, True]
    for ep in ds:
        label = ep.reward_labels["entropy"]
        offline = scorer.score_episode(ep.obs["image"][()])
        assert ep.num_samples == 4
        np.testing.assert_allclose(label["datasets"]["raw"], offline.raw, rtol=1e-5)
        np.testing.assert_allclose(label["datasets"]["reward"], offline.reward, rtol=1e-4, atol=1e-5)
        assert label["attrs"]["model_hash"] == scorer.model.weights_hash
        assert label["attrs"]["skip_step"] == SKIP and label["attrs"]["synchronous"] is True
