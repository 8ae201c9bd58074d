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

from diffusion_reward.nodes.camera import CameraParams
from diffusion_reward.nodes.episode_recorder import EpisodeRecorderParams
from diffusion_reward.nodes.params import launch_node_parameters, node_launch_arguments, param_names
from diffusion_reward.nodes.reward_labeller import RewardLabellerParams

PACKAGE = "diffusion_reward_ros"
SHARE = get_package_share_directory(PACKAGE)


def recorder_actions(context):
    return [Node(package=PACKAGE, executable="episode_recorder", name="episode_recorder", output="screen",
                 parameters=launch_node_parameters(EpisodeRecorderParams, context.launch_configurations,
                                                   "recorder_params_file"))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("recorder_params_file", default_value=os.path.join(SHARE, "config", "episode_recorder.yaml"),
                              description="episode recorder parameter file"),
        *(DeclareLaunchArgument(name, default_value="", description=text)
          for name, text in node_launch_arguments(EpisodeRecorderParams, skip=param_names(RewardLabellerParams, CameraParams))),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "label.launch.py"))),
        OpaqueFunction(function=recorder_actions),
    ])
