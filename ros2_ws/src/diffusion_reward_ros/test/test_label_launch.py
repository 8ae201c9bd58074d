"""launch_testing on a ROS 2 install: label.launch.py (camera:=none) + a publisher of synthetic frames;
every reward must carry the stamp and frame_id of the image it scores. Skipped where rclpy is missing.

    colcon test --packages-select diffusion_reward_ros && colcon test-result --verbose
"""
import os
import tempfile
import time
import unittest

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs a ROS 2 install (rclpy)")
launch_testing = pytest.importorskip("launch_testing", reason="needs launch_testing")

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from geometry_msgs.msg import Vector3Stamped  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

TASK, SKIP = "button-press-v3", 49


def tiny_model() -> str:
    """A random-weight tiny reward model with statistics, as a real model file."""
    from diffusion_reward.models import RewardModel

    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "entropy", SKIP, 1, mean=-400.0, std=20.0)
    return str(model.save(os.path.join(tempfile.mkdtemp(), "tiny.safetensors")))


@pytest.mark.launch_test
def generate_test_description():
    label = os.path.join(get_package_share_directory("diffusion_reward_ros"), "launch", "label.launch.py")
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(label), launch_arguments={
            "camera": "none", "model_path": tiny_model(), "task": TASK, "skip_step": str(SKIP),
            "synchronous": "true"}.items()),
        launch_testing.actions.ReadyToTest(),
    ])


class TestRewardStamps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("reward_probe")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_rewards_carry_the_source_image_stamp(self):
        rewards = []
        self.node.create_subscription(Vector3Stamped, "/reward_labeller/reward", rewards.append, 10)
        publisher = self.node.create_publisher(Image, "/camera/camera/color/image_raw", qos_profile_sensor_data)
        rng = np.random.default_rng(0)
        sent = set()
        deadline = time.monotonic() + 120  # model loading takes a while on a cold machine
        while time.monotonic() < deadline and len(rewards) < 5:
            msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3,
                        data=rng.integers(0, 256, 48 * 64 * 3, dtype=np.uint8).tobytes())
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + len(sent), 123
            msg.header.frame_id = "camera_color_optical_frame"
            publisher.publish(msg)
            sent.add((msg.header.stamp.sec, 123))
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                rclpy.spin_once(self.node, timeout_sec=0.05)
        self.assertGreaterEqual(len(rewards), 5)
        for reward in rewards:
            self.assertIn((reward.header.stamp.sec, reward.header.stamp.nanosec), sent)
            self.assertEqual(reward.header.frame_id, "camera_color_optical_frame")
            self.assertTrue(np.isfinite(reward.vector.x) and np.isfinite(reward.vector.y))


@launch_testing.post_shutdown_test()
class TestCleanShutdown(unittest.TestCase):
    def test_exit_codes(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
