"""What sim.launch.py starts, on one in-process graph: sim bridge (MuJoCo, /clock) -> labeller -> recorder,
all on simulated time. Recorded episodes follow the bridge's episode markers, carry sim-time stamps, and
their rewards equal offline scoring of the recorded frames."""
import numpy as np

from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel
from diffusion_reward.nodes.episode_recorder import EpisodeRecorderNode
from diffusion_reward.nodes.reward_labeller import RewardLabellerNode
from diffusion_reward.nodes.sim_bridge import SimBridgeNode
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.transport.inprocess import InProcessBus, InProcessTransport

TASK, SKIP, STEPS = "button-press-v3", 49, 5


def test_sim_episodes_are_labelled_and_recorded_on_sim_time(tmp_path, tiny_model_file):
    model_path = tiny_model_file(TASK, SKIP)
    bus = InProcessBus()
    bridge = SimBridgeNode(InProcessTransport("sim_bridge", bus, params={
        "task": TASK, "max_episode_steps": STEPS, "episodes": 2}))
    labeller = RewardLabellerNode(InProcessTransport("reward_labeller", bus, params={
        "model_path": model_path, "task": TASK, "skip_step": SKIP, "synchronous": True, "use_sim_time": True}))
    recorder = EpisodeRecorderNode(InProcessTransport("episode_recorder", bus, params={
        "output": str(tmp_path / "sim.hdf5"), "task": TASK, "action_topic": "none", "store_full_image": False,
        "use_sim_time": True}))
    control_dt = bridge.control_dt_ns / 1e9
    for _ in range(3 * (STEPS + 2)):
        if bridge.finished:
            break
        bus.advance(control_dt)
    assert bridge.finished
    labeller.close()
    recorder.close()
    bridge.close()

    ds = Dataset(tmp_path / "sim.hdf5")
    ds.verify()
    scorer = RewardScorer(RewardModel.load(model_path), ScoreConfig(skip_step=SKIP, task=TASK, seed=0))
    assert len(ds) == 2
    for ep in ds:
        assert ep.num_samples == STEPS + 1  # the reset frame and one per step
        stamps = ep.stamps["image"]
        np.testing.assert_allclose(np.diff(stamps), control_dt, atol=1e-9)  # simulated time, not wall time
        np.testing.assert_allclose(ep.stamps["state"], stamps)
        np.testing.assert_array_equal(ep.obs["state"][()][:, 7:], 0.0)  # the bridge reports zero velocity
        assert ep.obs["gripper"].shape == (STEPS + 1, 2)
        label = ep.reward_labels["entropy"]
        np.testing.assert_allclose(label["datasets"]["raw"], scorer.score_episode(ep.obs["image"][()]).raw, rtol=1e-5)
        assert label["attrs"]["task"] == TASK
