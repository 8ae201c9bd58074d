"""Transports: how a node talks to the ROS 2 graph.

Nodes (`diffusion_reward.nodes`) are written against `Transport` only. Implementations:
- `inprocess.InProcessTransport`: in one process, for tests and offline replays;
- `dds.DdsTransport`: ROS 2 wire-compatible DDS (cyclonedds) without a ROS install;
- the rclpy transport in the colcon package `diffusion_reward_ros` (ros2_ws/), for ROS 2 installs.
"""
from .base import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS, Publisher, QoS, Subscription, Timer, Transport

__all__ = ["DEFAULT_QOS", "LATCHED_QOS", "SENSOR_DATA_QOS", "Publisher", "QoS", "Subscription", "Timer", "Transport"]
