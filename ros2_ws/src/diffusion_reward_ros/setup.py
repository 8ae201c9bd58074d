"""ament_python package: rclpy transport + node executables. The nodes themselves come from the
pip-installed `diffusion_reward` library (no copy of it is shipped here)."""
import os
from glob import glob

from setuptools import setup

PACKAGE = "diffusion_reward_ros"
# The nodes of diffusion_reward.nodes.NODES (checked by tests/test_ros_package.py), plus the rclpy-only
# franka_gripper_bridge (franka_gripper actions have no place in the transport-agnostic nodes).
EXECUTABLES = ["reward_labeller", "episode_recorder", "camera", "policy_runner", "sim_bridge"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        # launch/ is a link to the repository's top-level launch/ folder
        (os.path.join("share", PACKAGE, "launch"), sorted(glob(os.path.join("launch", "*.launch.py")))),
        (os.path.join("share", PACKAGE, "config"), sorted(glob(os.path.join("config", "*.yaml")))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="diffusion_reward_ros maintainers",
    maintainer_email="maintainers@diffusion-reward.org",
    description="Diffusion Reward ROS 2 nodes: reward labeller, episode recorder, camera, policy runner, sim bridge",
    license="MIT",
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": [f"{name} = {PACKAGE}.main:{name}" for name in EXECUTABLES]
                  + [f"franka_gripper_bridge = {PACKAGE}.franka_gripper:main"]},
)
