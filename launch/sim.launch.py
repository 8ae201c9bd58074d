"""The whole loop in simulation: sim bridge (MetaWorld/Adroit on the robot's topics, publishing /clock)
+ reward labeller + episode recorder, and optionally the policy runner.

    ros2 launch diffusion_reward_ros sim.launch.py task:=button-press-v3 model_path:=reward.safetensors \\
        output:=sim_episodes.hdf5 policy:=true policy_path:=policies/button/export
    ros2 topic pub --once /policy_runner/reset std_msgs/msg/Empty      # arm the policy

Every node runs on simulated time (use_sim_time defaults to true); the bridge marks episodes on
/episode/start and /episode/result, which the labeller and recorder follow. Takes every argument of
record.launch.py and deploy.launch.py (camera defaults to none: the bridge is the camera) plus the
bridge's. Bridge arguments whose names other nodes use differently carry a `sim_` prefix: sim_seed,
sim_stamp_source, sim_max_joint_velocity, sim_max_ee_speed. Without a policy nothing commands the arm:
record with action_topic:=none then.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from diffusion_reward.nodes.params import launch_node_parameters, node_launch_arguments
from diffusion_reward.nodes.sim_bridge import SimBridgeParams

PACKAGE = "diffusion_reward_ros"
SHARE = get_package_share_directory(PACKAGE)
RENAMED = {"seed": "sim_seed", "stamp_source": "sim_stamp_source", "max_joint_velocity": "sim_max_joint_velocity",
           "max_ee_speed": "sim_max_ee_speed"}


def sim_actions(context):
    parameters = launch_node_parameters(SimBridgeParams, context.launch_configurations, "sim_params_file",
                                        renamed=RENAMED)
    parameters[-1]["use_sim_time"] = False  # the bridge makes /clock: its own timer runs on wall time
    return [Node(package=PACKAGE, executable="sim_bridge", name="sim_bridge", output="screen",
                 parameters=parameters)]


def generate_launch_description():
    return LaunchDescription([
        # defaults for the included launch files: declared first, so they win
        DeclareLaunchArgument("camera", default_value="none", description="the sim bridge is the camera"),
        DeclareLaunchArgument("use_sim_time", default_value="true", description="follow the bridge's /clock"),
        DeclareLaunchArgument("franka_gripper", default_value="false", description="no franka_gripper in sim"),
        DeclareLaunchArgument("policy", default_value="false", description="also run the policy runner"),
        DeclareLaunchArgument("sim_params_file", default_value=os.path.join(SHARE, "config", "sim_bridge.yaml"),
                              description="sim bridge parameter file"),
        *(DeclareLaunchArgument(name, default_value="", description=text)
          for name, text in node_launch_arguments(SimBridgeParams, renamed=RENAMED)),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "record.launch.py"))),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "deploy.launch.py")),
                                 launch_arguments={"label": "false"}.items(),  # record.launch.py has it
                                 condition=IfCondition(LaunchConfiguration("policy"))),
        OpaqueFunction(function=sim_actions),
    ])
