"""Transport-agnostic pipeline nodes (see `diffusion_reward.transport.Transport`).

Each node is a class constructed as `NodeClass(transport)`: it declares its parameters, creates its
publishers/subscriptions/timers, and from then on only reacts to callbacks. The same classes run
under rclpy (colcon package in ros2_ws/), over DDS without ROS (`diffusion-reward live`) and
in-process in tests.
"""
import importlib

# node name -> "module:Class" (imported on demand: the labeller pulls in torch, the sim bridge MuJoCo)
NODES = {
    "reward_labeller": "diffusion_reward.nodes.reward_labeller:RewardLabellerNode",
    "episode_recorder": "diffusion_reward.nodes.episode_recorder:EpisodeRecorderNode",
    "camera": "diffusion_reward.nodes.camera:CameraNode",
    "policy_runner": "diffusion_reward.nodes.policy_runner:PolicyRunnerNode",
    "sim_bridge": "diffusion_reward.nodes.sim_bridge:SimBridgeNode",
}


def node_class(name: str) -> type:
    module, cls = NODES[name].split(":")
    return getattr(importlib.import_module(module), cls)
