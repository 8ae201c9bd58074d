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
from diffusion_reward.nodes.params import describe_params, launch_node_parameters
from diffusion_reward.nodes.reward_labeller import RewardLabellerParams

PACKAGE = "diffusion_reward_ros"
CONFIG = os.path.join(get_package_share_directory(PACKAGE), "config")
LABELLER = describe_params(RewardLabellerParams)
CAMERA = describe_params(CameraParams)


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
        DeclareLaunchArgument("model_path", default_value="", description=LABELLER["model_path"]),
        DeclareLaunchArgument("task", default_value="", description=LABELLER["task"]),
        DeclareLaunchArgument("reward_type", default_value="", description=LABELLER["reward_type"]),
        DeclareLaunchArgument("skip_step", default_value="", description=LABELLER["skip_step"]),
        DeclareLaunchArgument("num_samples", default_value="", description=LABELLER["num_samples"]),
        DeclareLaunchArgument("noise", default_value="", description=LABELLER["noise"]),
        DeclareLaunchArgument("seed", default_value="", description=LABELLER["seed"]),
        DeclareLaunchArgument("device", default_value="", description=LABELLER["device"]),
        DeclareLaunchArgument("dtype", default_value="", description=LABELLER["dtype"]),
        DeclareLaunchArgument("crop", default_value="", description=LABELLER["crop"]),
        DeclareLaunchArgument("image_topic", default_value="", description=LABELLER["image_topic"]),
        DeclareLaunchArgument("queue_size", default_value="", description=LABELLER["queue_size"]),
        DeclareLaunchArgument("synchronous", default_value="", description=LABELLER["synchronous"]),
        DeclareLaunchArgument("replay_queue_size", default_value="", description=LABELLER["replay_queue_size"]),
        DeclareLaunchArgument("late_after_s", default_value="", description=LABELLER["late_after_s"]),
        DeclareLaunchArgument("diagnostics_period_s", default_value="", description=LABELLER["diagnostics_period_s"]),
        # camera (realsense-ros takes width, height, fps, serial_no; our node all of these)
        DeclareLaunchArgument("playback_file", default_value="", description=CAMERA["playback_file"]),
        DeclareLaunchArgument("serial_no", default_value="", description=CAMERA["serial_no"]),
        DeclareLaunchArgument("width", default_value="", description=CAMERA["width"]),
        DeclareLaunchArgument("height", default_value="", description=CAMERA["height"]),
        DeclareLaunchArgument("fps", default_value="", description=CAMERA["fps"]),
        DeclareLaunchArgument("color_format", default_value="", description=CAMERA["color_format"]),
        DeclareLaunchArgument("camera_info_topic", default_value="", description=CAMERA["camera_info_topic"]),
        DeclareLaunchArgument("frame_id", default_value="", description=CAMERA["frame_id"]),
        DeclareLaunchArgument("stamp_source", default_value="", description=CAMERA["stamp_source"]),
        DeclareLaunchArgument("realtime", default_value="", description=CAMERA["realtime"]),
        DeclareLaunchArgument("loop", default_value="", description=CAMERA["loop"]),
        OpaqueFunction(function=camera_actions),
        OpaqueFunction(function=labeller_actions),
    ])
