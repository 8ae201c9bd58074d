"""Franka FR3 bringup with the joint trajectory controller the policy runner commands.

    ros2 launch diffusion_reward_ros franka_arm.launch.py robot_ip:=172.16.0.2
    ros2 launch diffusion_reward_ros franka_arm.launch.py robot_ip:=dont-care use_fake_hardware:=true

franka_bringup's franka.launch.py starts the robot but not `fr3_arm_controller` (only the MoveIt
configuration defines it). This file starts franka.launch.py with this package's
config/fr3_arm_controller.yaml as `controllers_yaml` (franka_ros2 v2.x: `robot_type`, `controllers_yaml`)
and spawns `fr3_arm_controller`, so `/fr3_arm_controller/joint_trajectory` exists. deploy.launch.py
includes it with arm_controller:=franka. On franka_ros2 v1.x (`arm_id` instead of `robot_type`, no
`controllers_yaml` argument) start the MoveIt configuration instead (README, "Franka arm").
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "diffusion_reward_ros"
CONTROLLERS = os.path.join(get_package_share_directory(PACKAGE), "config", "fr3_arm_controller.yaml")
FORWARDED = ("robot_ip", "robot_type", "namespace", "load_gripper", "use_fake_hardware", "fake_sensor_commands",
             "use_rviz")


def generate_launch_description():
    namespace = LaunchConfiguration("namespace")
    return LaunchDescription([
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.2", description="FCI address of the arm"),
        DeclareLaunchArgument("robot_type", default_value="fr3", description="franka_bringup robot_type"),
        DeclareLaunchArgument("namespace", default_value="", description="franka_bringup namespace"),
        DeclareLaunchArgument("load_gripper", default_value="true", description="start franka_gripper too"),
        DeclareLaunchArgument("use_fake_hardware", default_value="false",
                              description="ros2_control mock hardware instead of the arm"),
        DeclareLaunchArgument("fake_sensor_commands", default_value="false",
                              description="with use_fake_hardware: command the mock sensors"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="start RViz"),
        DeclareLaunchArgument("arm_controllers_yaml", default_value=CONTROLLERS,
                              description="controller_manager configuration that defines fr3_arm_controller"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(
                get_package_share_directory("franka_bringup"), "launch", "franka.launch.py")),
            launch_arguments={**{name: LaunchConfiguration(name) for name in FORWARDED},
                              "controllers_yaml": LaunchConfiguration("arm_controllers_yaml")}.items()),
        Node(package="controller_manager", executable="spawner", namespace=namespace, output="screen",
             arguments=["fr3_arm_controller", "--controller-manager", "controller_manager"]),
    ])
