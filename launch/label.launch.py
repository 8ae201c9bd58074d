"""Camera + reward labeller: dense Diffusion Rewards on `/reward_labeller/reward`.

    ros2 launch diffusion_reward_ros label.launch.py model_path:=/models/reward.safetensors task:=button-press-v3

camera:=auto starts realsense-ros (`realsense2_camera rs_launch.py`) when it is installed and our
pyrealsense2 camera node otherwise (which also plays .db3 recordings, videos and PNG folders:
camera:=ours playback_file:=...); realsense | ours force one, none starts no camera (bag replay,
simulation); labeller:=false starts the camera only. Every node parameter is a launch argument; an
empty value keeps the value from the node's parameter file (`*_params_file`, default: this package's
config/) or the node's own default.
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from diffusion_reward.nodes.camera import CameraParams
from diffusion_reward.nodes.params import launch_node_parameters, node_launch_arguments
from diffusion_reward.nodes.reward_labeller import RewardLabellerParams

PACKAGE = "diffusion_reward_ros"
CONFIG = os.path.join(get_package_share_directory(PACKAGE), "config")


def camera_actions(context):
    choice = LaunchConfiguration("camera").perform(context)
    if choice not in ("auto", "realsense", "ours", "none"):
        raise RuntimeError(f"camera:={choice}: choose auto, realsense, ours or none")
    if choice == "auto":
        try:
            get_package_share_directory("realsense2_camera")
            choice = "realsense"
        except PackageNotFoundError:
            choice = "ours"
    if choice == "realsense":
        width, height, fps = (LaunchConfiguration(n).perform(context) or str(getattr(CameraParams, n))
                              for n in ("width", "height", "fps"))
        return [IncludeLaunchDescription(PythonLaunchDescriptionSource(
            os.path.join(get_package_share_directory("realsense2_camera"), "launch", "rs_launch.py")), launch_arguments={
            "camera_name": "camera", "camera_namespace": "camera",  # -> /camera/camera/color/image_raw
            "rgb_camera.color_profile": f"{width}x{height}x{fps}", "enable_depth": "false",
            "serial_no": LaunchConfiguration("serial_no").perform(context),
            "initial_reset": LaunchConfiguration("initial_reset").perform(context)}.items())]
    if choice == "ours":
        return [Node(package=PACKAGE, executable="camera", name="camera", output="screen",
                     parameters=launch_node_parameters(CameraParams, context.launch_configurations,
                                                       "camera_params_file"))]
    return []


def labeller_actions(context):
    if LaunchConfiguration("labeller").perform(context).lower() != "true":
        return []
    return [Node(package=PACKAGE, executable="reward_labeller", name="reward_labeller", output="screen",
                 parameters=launch_node_parameters(RewardLabellerParams, context.launch_configurations,
                                                   "labeller_params_file"))]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="auto", description="auto | realsense | ours | none"),
        DeclareLaunchArgument("labeller", default_value="true", description="start the reward labeller"),
        DeclareLaunchArgument("initial_reset", default_value="false", description="realsense-ros: reset the device first"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock (bag replay, simulation)"),
        DeclareLaunchArgument("labeller_params_file", default_value=os.path.join(CONFIG, "reward_labeller.yaml"),
                              description="reward labeller parameter file"),
        DeclareLaunchArgument("camera_params_file", default_value=os.path.join(CONFIG, "camera.yaml"),
                              description="camera node parameter file (camera:=ours)"),
        # reward labeller
        *(DeclareLaunchArgument(name, default_value="", description=text)
          for name, text in node_launch_arguments(RewardLabellerParams, CameraParams)),
        # camera (realsense-ros takes width, height, fps, serial_no; our node all of these)
        OpaqueFunction(function=camera_actions),
        OpaqueFunction(function=labeller_actions),
    ])
