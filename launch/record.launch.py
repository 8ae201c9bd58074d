"""Camera + reward labeller + episode recorder: labelled robot episodes into a crash-safe dataset.

    ros2 launch diffusion_reward_ros record.launch.py model_path:=/models/reward.safetensors \\
        task:=button-press-v3 output:=/data/button.hdf5
    ros2 topic pub --once /episode/start std_msgs/msg/Empty     # ... /episode/stop, /episode/discard

Takes every argument of label.launch.py (camera, labeller) plus the recorder's; task, image_topic and
crop are shared, so the recorder stores frames exactly as the labeller scored them. labeller:=false
records without learned rewards (set reward_topic:=none too).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import Node

from diffusion_reward.nodes.episode_recorder import EpisodeRecorderParams
from diffusion_reward.nodes.params import describe_params, launch_node_parameters

PACKAGE = "diffusion_reward_ros"
SHARE = get_package_share_directory(PACKAGE)
RECORDER = describe_params(EpisodeRecorderParams)


def recorder_actions(context):
    return [Node(package=PACKAGE, executable="episode_recorder", name="episode_recorder", output="screen",
                 parameters=launch_node_parameters(EpisodeRecorderParams, context.launch_configurations,
                                                   "recorder_params_file"))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("recorder_params_file", default_value=os.path.join(SHARE, "config", "episode_recorder.yaml"),
                              description="episode recorder parameter file"),
        DeclareLaunchArgument("output", default_value="", description=RECORDER["output"]),
        DeclareLaunchArgument("image_size", default_value="", description=RECORDER["image_size"]),
        DeclareLaunchArgument("store_full_image", default_value="", description=RECORDER["store_full_image"]),
        DeclareLaunchArgument("state_topic", default_value="", description=RECORDER["state_topic"]),
        DeclareLaunchArgument("joint_names", default_value="", description=RECORDER["joint_names"]),
        DeclareLaunchArgument("state_fields", default_value="", description=RECORDER["state_fields"]),
        DeclareLaunchArgument("gripper_topic", default_value="", description=RECORDER["gripper_topic"]),
        DeclareLaunchArgument("gripper_joint_names", default_value="", description=RECORDER["gripper_joint_names"]),
        DeclareLaunchArgument("robot_state_topic", default_value="", description=RECORDER["robot_state_topic"]),
        DeclareLaunchArgument("action_topic", default_value="", description=RECORDER["action_topic"]),
        DeclareLaunchArgument("action_type", default_value="", description=RECORDER["action_type"]),
        DeclareLaunchArgument("reward_topic", default_value="", description=RECORDER["reward_topic"]),
        DeclareLaunchArgument("sync_tolerance_s", default_value="", description=RECORDER["sync_tolerance_s"]),
        DeclareLaunchArgument("wait_timeout_s", default_value="", description=RECORDER["wait_timeout_s"]),
        DeclareLaunchArgument("button_topic", default_value="", description=RECORDER["button_topic"]),
        DeclareLaunchArgument("compression", default_value="", description=RECORDER["compression"]),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "label.launch.py"))),
        OpaqueFunction(function=recorder_actions),
    ])
