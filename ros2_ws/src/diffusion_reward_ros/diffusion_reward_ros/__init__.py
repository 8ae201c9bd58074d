"""ROS 2 (rclpy) front end of `diffusion_reward`: the rclpy transport and the node executables.

The nodes themselves are the transport-agnostic classes of `diffusion_reward.nodes` (pip-installed).
"""
