"""`franka_gripper_bridge`: the policy runner's gripper targets -> franka_gripper action goals (rclpy only).

Subscribes `command_topic` (`std_msgs/Float64MultiArray` [width m, speed m/s, force N], from the policy
runner, which sends one only when the open/closed state changes) and sends
`franka_msgs/action/Move(width, speed)` for force == 0, or `Grasp(width, epsilon 0.005/0.08, speed, force)`
for force > 0, to `<gripper_namespace>/{move,grasp}`. A failed goal is logged; the next command is sent as is.
"""
from __future__ import annotations

import sys

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionClient
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray

GRASP_EPSILON_INNER, GRASP_EPSILON_OUTER = 0.005, 0.08  # m: any width below the target counts as grasped


class FrankaGripperBridge(Node):
    def __init__(self):
        super().__init__("franka_gripper_bridge")
        from franka_msgs.action import Grasp, Move  # franka_ros2: an optional dependency of this package

        self.Grasp, self.Move = Grasp, Move
        startup_only = ParameterDescriptor(read_only=True)  # read here only: `ros2 param set` must refuse
        topic = self.declare_parameter("command_topic", "/policy_runner/gripper_command", startup_only).value
        namespace = self.declare_parameter("gripper_namespace", "/franka_gripper", startup_only).value.rstrip("/")
        self.move = (ActionClient(self, Move, f"{namespace}/move"), f"{namespace}/move")
        self.grasp = (ActionClient(self, Grasp, f"{namespace}/grasp"), f"{namespace}/grasp")
        self.create_subscription(Float64MultiArray, topic, self.on_command, 10)
        self.get_logger().info(f"{topic} -> {namespace}/move, {namespace}/grasp")

    def on_command(self, msg: Float64MultiArray) -> None:
        if len(msg.data) != 3:
            self.get_logger().error(f"gripper command needs [width, speed, force], got {len(msg.data)} values")
            return
        width, speed, force = (float(v) for v in msg.data)
        if force > 0:
            goal = self.Grasp.Goal(width=width, speed=speed, force=force)
            goal.epsilon.inner, goal.epsilon.outer = GRASP_EPSILON_INNER, GRASP_EPSILON_OUTER
            client, name = self.grasp
        else:
            goal, (client, name) = self.Move.Goal(width=width, speed=speed), self.move
        if not client.server_is_ready():
            self.get_logger().error(f"{name} is not available: gripper command dropped")
            return
        client.send_goal_async(goal).add_done_callback(self.on_accepted)

    def on_accepted(self, future) -> None:
        handle = future.result()
        if not handle.accepted:
            self.get_logger().error("the gripper rejected the command")
            return
        handle.get_result_async().add_done_callback(self.on_result)

    def on_result(self, future) -> None:
        result = future.result().result
        if not result.success:
            self.get_logger().error(f"gripper command failed: {result.error}")


def main() -> None:
    rclpy.init(args=sys.argv)
    node = FrankaGripperBridge()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
