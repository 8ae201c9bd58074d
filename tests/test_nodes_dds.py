"""The labeller in its own process on real DDS (loopback), driven frame by frame from this process:
rewards come back with the source image stamps and equal offline scoring of the same frames."""
import os
import subprocess
import sys
import time

import numpy as np

from diffusion_reward.models import RewardModel
from diffusion_reward.msgs import Empty, Image, Vector3Stamped
from diffusion_reward.nodes.image_conv import rgb_to_image
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.reward.scorer import resize_frames
from diffusion_reward.transport import DEFAULT_QOS, SENSOR_DATA_QOS
from diffusion_reward.transport.dds import DdsTransport

DOMAIN = 150 + os.getpid() % 50
TASK, SKIP = "button-press-v3", 49


def test_cross_process_rewards_equal_offline_scoring(tmp_path, tiny_model_file):
    model_path = tiny_model_file(TASK, SKIP)
    node = subprocess.Popen(
        [sys.executable, "-m", "diffusion_reward", "live", "labeller", "--network", "loopback",
         "--domain-id", str(DOMAIN), "--param", f"model_path:={model_path}", "--param", f"task:={TASK}",
         "--param", f"skip_step:={SKIP}", "--param", "synchronous:=true"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    probe = DdsTransport("probe", domain_id=DOMAIN, config="loopback")
    try:
        rewards: dict[int, Vector3Stamped] = {}
        probe.create_subscription(Vector3Stamped, "/reward_labeller/reward",
                                  lambda m: rewards.__setitem__(m.header.stamp.to_ns(), m))
        images = probe.create_publisher(Image, "/camera/camera/color/image_raw", SENSOR_DATA_QOS)
        episode_start = probe.create_publisher(Empty, "/episode/start", DEFAULT_QOS)

        def score(frame, stamp_ns, timeout_s, resend_s):
            """Send a frame and wait for its reward; resend after `resend_s` (warm-up: discovery, loading)."""
            deadline = time.monotonic() + timeout_s
            while stamp_ns not in rewards:
                assert node.poll() is None, node.stdout.read()
                assert time.monotonic() < deadline, "no reward came back"
                images.publish(rgb_to_image(frame, stamp_ns, "camera_color_optical_frame"))
                probe.spin_until(lambda: stamp_ns in rewards, timeout_s=resend_s)
            return rewards[stamp_ns]

        frames = np.random.default_rng(0).integers(0, 256, size=(4, 48, 64, 3), dtype=np.uint8)
        score(frames[0], 1, timeout_s=120, resend_s=1.0)
        episode_start.publish(Empty())  # reliable: the labeller restarts its context before the next frame
        probe.spin_until(lambda: False, timeout_s=0.5)
        # one frame at a time, each sent once: a resend would be scored as a frame of its own
        got = [score(f, 10**9 * (i + 1), timeout_s=60, resend_s=60) for i, f in enumerate(frames)]
    finally:
        probe.shutdown()
        node.terminate()
        node.wait(30)
    offline = RewardScorer(RewardModel.load(model_path), ScoreConfig(skip_step=SKIP, task=TASK, seed=0))
    expected = offline.score_episode(resize_frames(frames, 64))
    assert [r.header.frame_id for r in got] == ["camera_color_optical_frame"] * 4
    np.testing.assert_allclose([r.vector.y for r in got], expected.raw, rtol=1e-5)
    np.testing.assert_allclose([r.vector.x for r in got], expected.reward, rtol=1e-4, atol=1e-5)

