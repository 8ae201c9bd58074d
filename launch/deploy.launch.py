"""Deploy a trained policy on the arm: camera + policy runner (safety envelope inside), labeller optional.

    ros2 launch diffusion_reward_ros deploy.launch.py policy_path:=/policies/button/export
    ros2 topic pub --once /policy_runner/reset std_msgs/msg/Empty      # arm it (it starts disarmed)
    ros2 topic pub --once /policy_runner/estop std_msgs/msg/Bool "{data: true}"   # software e-stop

Takes every argument of label.launch.py (camera:=auto|realsense|ours|none; labeller:=true also scores
the run live) plus the policy runner's. The runner's gripper command topic is the launch argument
`gripper_command_topic` (the recorder's `gripper_topic` is the gripper's joint state). With franka_msgs
installed, franka_gripper:=auto (default) also starts `franka_gripper_bridge`, which turns the runner's
gripper commands into franka_gripper Move/Grasp action goals. The runner commands
`/fr3_arm_controller/joint_trajectory`, which a stock franka_bringup does not start: arm_controller:=franka
also starts the arm with that controller (franka_arm.launch.py; robot_ip:=..., use_fake_hardware:=true);
the default `none` expects it running already (your own bringup, or the MoveIt configuration).

    ros2 launch diffusion_reward_ros deploy.launch.py policy_path:=... arm_controller:=franka robot_ip:=172.16.0.2
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from diffusion_reward.nodes.camera import CameraParams
from diffusion_reward.nodes.params import launch_node_parameters, node_launch_arguments, param_names
from diffusion_reward.nodes.policy_runner import PolicyRunnerParams
from diffusion_reward.nodes.reward_labeller import RewardLabellerParams

PACKAGE = "diffusion_reward_ros"
SHARE = get_package_share_directory(PACKAGE)
RENAMED = {"gripper_topic": "gripper_command_topic"}


def policy_actions(context):
    configurations = context.launch_configurations
    arm = configurations["arm_controller"]
    if arm not in ("none", "franka"):
        raise RuntimeError(f"arm_controller:={arm}: choose none or franka")
    actions = [IncludeLaunchDescription(PythonLaunchDescriptionSource(
        os.path.join(SHARE, "launch", "franka_arm.launch.py")))] if arm == "franka" else []
    actions += [Node(package=PACKAGE, executable="policy_runner", name="policy_runner", output="screen",
                    parameters=launch_node_parameters(PolicyRunnerParams, configurations, "policy_params_file",
                                                      renamed=RENAMED))]
    choice = configurations["franka_gripper"]
    if choice == "auto":
        try:
            get_package_share_directory("franka_msgs")
            choice = "true"
        except PackageNotFoundError:
            choice = "false"
    command_topic = configurations.get("gripper_command_topic") or PolicyRunnerParams.gripper_topic
    if choice == "true" and command_topic.lower() != "none":
        actions.append(Node(package=PACKAGE, executable="franka_gripper_bridge", name="franka_gripper_bridge",
                            output="screen", parameters=[{
                                "command_topic": command_topic.replace("~", "/policy_runner", 1),
                                "gripper_namespace": configurations["gripper_namespace"]}]))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("labeller", default_value="false", description="also score the run live"),
        DeclareLaunchArgument("label", default_value="true",
                              description="include label.launch.py (false when the including launch file does)"),
        DeclareLaunchArgument("arm_controller", default_value="none",
                              description="none (fr3_arm_controller already running) | franka: start franka_bringup "
                                          "with it (franka_arm.launch.py, which takes robot_ip, use_fake_hardware)"),
        DeclareLaunchArgument("franka_gripper", default_value="auto",
                              description="auto | true | false: bridge gripper commands to franka_gripper actions"),
        DeclareLaunchArgument("gripper_namespace", default_value="/franka_gripper",
                              description="franka_gripper node (v0.x/v1.x: /fr3_gripper)"),
        DeclareLaunchArgument("policy_params_file", default_value=os.path.join(SHARE, "config", "policy_runner.yaml"),
                              description="policy runner parameter file"),
        *(DeclareLaunchArgument(name, default_value="", description=text)
          for name, text in node_launch_arguments(PolicyRunnerParams, renamed=RENAMED,
                                                   skip=param_names(RewardLabellerParams, CameraParams))),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "label.launch.py")),
                                 condition=IfCondition(LaunchConfiguration("label"))),
        OpaqueFunction(function=policy_actions),
    ])
