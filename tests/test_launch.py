"""Launch files: syntax, declared arguments (each file's generate_launch_description run against stand-ins for
`launch`, `launch_ros` and `ament_index_python`, which are not installed here), and the typed launch-argument ->
node-parameter conversion they use."""
import ast
import dataclasses
import runpy
import sys
import types
from pathlib import Path

import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.nodes.camera import CameraParams
from diffusion_reward.nodes.episode_recorder import EpisodeRecorderParams
from diffusion_reward.nodes.params import describe_params, launch_node_parameters, parse_launch_values
from diffusion_reward.nodes.policy_runner import PolicyRunnerParams
from diffusion_reward.nodes.reward_labeller import RewardLabellerParams
from diffusion_reward.nodes.sim_bridge import SimBridgeParams

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
CONFIG = REPO / "ros2_ws" / "src" / "diffusion_reward_ros" / "config"
SETUP = REPO / "ros2_ws" / "src" / "diffusion_reward_ros" / "setup.py"


def _calls(path: Path, name: str) -> list[ast.Call]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


class _Action:
    """Stands in for any launch action or substitution: keeps what it was built with."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class DeclareLaunchArgument(_Action):
    pass


def _launch_stand_ins() -> dict[str, types.ModuleType]:
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    return {
        "launch": module("launch", LaunchDescription=lambda actions: list(actions)),
        "launch.actions": module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                                 IncludeLaunchDescription=_Action, OpaqueFunction=_Action),
        "launch.conditions": module("launch.conditions", IfCondition=_Action),
        "launch.launch_description_sources": module("launch.launch_description_sources",
                                                    PythonLaunchDescriptionSource=_Action),
        "launch.substitutions": module("launch.substitutions", LaunchConfiguration=_Action),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=_Action),
        "ament_index_python": module("ament_index_python"),
        "ament_index_python.packages": module("ament_index_python.packages", PackageNotFoundError=LookupError,
                                              get_package_share_directory=lambda package: f"/share/{package}"),
    }


def declared_arguments(path: Path) -> dict[str, DeclareLaunchArgument]:
    """The arguments `path`'s generate_launch_description declares (literal or generated), by name."""
    stand_ins = _launch_stand_ins()
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        actions = runpy.run_path(str(path))["generate_launch_description"]()
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
    args = {}
    for action in actions:
        if isinstance(action, DeclareLaunchArgument):
            name = action.args[0]
            assert name not in args, f"{path.name}: {name} declared twice"
            args[name] = action
    return args


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _field_names(params_cls) -> set[str]:
    return {f.name for f in dataclasses.fields(params_cls)}


@pytest.mark.parametrize("path", sorted(LAUNCH.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_compile_and_describe_every_argument(path):
    compile(path.read_text(), str(path), "exec")  # syntax; writes no __pycache__ next to the launch files
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    assert ast.get_docstring(tree), f"{path.name} needs a docstring with a usage example"
    for name, argument in declared_arguments(path).items():
        assert isinstance(argument.kwargs.get("default_value"), str), name
        assert argument.kwargs.get("description"), name


def _renamed(path: Path) -> dict[str, str]:
    """The launch file's RENAMED = {parameter: launch argument} (where two nodes use a name differently)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RENAMED":
            return ast.literal_eval(node.value)
    return {}


def included(path: Path) -> list[Path]:
    """The launch file and every launch file of ours it includes, recursively."""
    found = [path]
    for call in _calls(path, "PythonLaunchDescriptionSource"):
        for name in _strings(call) & {p.name for p in LAUNCH.glob("*.launch.py")}:
            found += [p for p in included(LAUNCH / name) if p not in found]
    return found


@pytest.mark.parametrize("launch_file,params_classes", [
    ("label.launch.py", [RewardLabellerParams, CameraParams]),
    ("record.launch.py", [EpisodeRecorderParams]),
    ("deploy.launch.py", [PolicyRunnerParams]),
    ("sim.launch.py", [SimBridgeParams]),
])
def test_every_node_parameter_is_a_launch_argument(launch_file, params_classes):
    declared = set()
    for path in included(LAUNCH / launch_file):  # included files share their arguments
        declared |= set(declared_arguments(path))
    renamed = _renamed(LAUNCH / launch_file)
    assert set(renamed.values()) <= declared
    for params_cls in params_classes:
        expected = {renamed.get(name, name) for name in _field_names(params_cls)}
        assert expected <= declared, (params_cls.__name__, expected - declared)


def test_launch_files_start_installed_executables_with_installed_params_files():
    setup = ast.parse(SETUP.read_text())
    executables = set(ast.literal_eval(next(
        n.value for n in ast.walk(setup) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "EXECUTABLES")))
    executables |= {n.values[0].value.split(" = ")[0] for n in ast.walk(setup)  # f"name = {PACKAGE}.module:main"
                    if isinstance(n, ast.JoinedStr) and isinstance(n.values[0], ast.Constant) and " = " in n.values[0].value}
    configs = {p.name for p in CONFIG.glob("*.yaml")}
    for path in LAUNCH.glob("*.launch.py"):
        for call in _calls(path, "Node"):
            package, executable = _keyword(call, "package"), _keyword(call, "executable")
            assert isinstance(executable, ast.Constant), path.name
            if isinstance(package, ast.Constant) and package.value == "controller_manager":
                assert executable.value == "spawner", path.name  # ros2_control's own, in franka_arm.launch.py
            else:
                assert executable.value in executables, path.name
        for name, argument in declared_arguments(path).items():
            if name.endswith("_params_file"):
                assert Path(argument.kwargs["default_value"]).name in configs, (path.name, name)
        launch_files = {p.name for p in LAUNCH.glob("*.launch.py")} | {"rs_launch.py", "franka.launch.py"}
        for include in _calls(path, "PythonLaunchDescriptionSource"):
            assert _strings(include) & launch_files, ast.unparse(include)


def test_all_launch_files_exist_and_sim_includes_the_rest():
    assert {p.name for p in LAUNCH.glob("*.launch.py")} == {
        "label.launch.py", "record.launch.py", "deploy.launch.py", "sim.launch.py", "franka_arm.launch.py"}
    assert {p.name for p in included(LAUNCH / "sim.launch.py")} == {p.name for p in LAUNCH.glob("*.launch.py")}


def test_label_launch_camera_choice_and_realsense_topics():
    text = (LAUNCH / "label.launch.py").read_text()
    assert declared_arguments(LAUNCH / "label.launch.py")["camera"].kwargs["default_value"] == "auto"
    assert '"realsense2_camera"' in text and '"camera_namespace": "camera"' in text
    assert RewardLabellerParams.image_topic == CameraParams.image_topic == "/camera/camera/color/image_raw"


def test_launch_values_become_typed_parameters():
    values = {"skip_step": "4", "noise": "false", "late_after_s": "1", "task": "123", "crop": "80,0,480,480",
              "model_path": "", "camera": "auto", "device": "cuda:0"}
    assert parse_launch_values(RewardLabellerParams, values) == {
        "skip_step": 4, "noise": False, "late_after_s": 1.0, "task": "123", "crop": "80,0,480,480", "device": "cuda:0"}
    recorder = parse_launch_values(EpisodeRecorderParams, {"joint_names": "[a, b]", "gripper_topic": "none"})
    assert recorder == {"joint_names": ["a", "b"], "gripper_topic": "none"}
    assert EpisodeRecorderParams(gripper_topic="none").gripper_topic == ""  # `none` disables the stream
    with pytest.raises(UserError, match="'skip_step' must be of type int"):
        parse_launch_values(RewardLabellerParams, {"skip_step": "four"})
    configurations = {"use_sim_time": "true", "labeller_params_file": "/share/labeller.yaml", "seed": "7"}
    assert launch_node_parameters(RewardLabellerParams, configurations, "labeller_params_file") == [
        "/share/labeller.yaml", {"seed": 7, "use_sim_time": True}]
    # the policy runner's gripper_topic (a command output) is set by deploy's gripper_command_topic, so the
    # recorder's gripper_topic (the gripper's joint state) can share the launch
    configurations = {"gripper_topic": "/franka_gripper/joint_states", "gripper_command_topic": "/grip"}
    assert launch_node_parameters(PolicyRunnerParams, configurations, "x", renamed={
        "gripper_topic": "gripper_command_topic"})[-1]["gripper_topic"] == "/grip"


def test_descriptions_come_from_the_parameter_dataclasses():
    described = describe_params(RewardLabellerParams)
    assert described["queue_size"].startswith("newest frames waiting") and "(default: 1)" in described["queue_size"]
    assert set(described) == _field_names(RewardLabellerParams)


def test_franka_arm_controller_config_defines_the_controller_the_runner_commands():
    """deploy.launch.py arm_controller:=franka starts franka_bringup with config/fr3_arm_controller.yaml:
    the controller the policy runner and the recorder address must be in it, for the runner's joints, with
    franka.launch.py's broadcasters kept (the file replaces franka's controller list), under a `/**` key."""
    import yaml
    doc = yaml.safe_load((CONFIG / "fr3_arm_controller.yaml").read_text())
    assert list(doc) == ["/**"]
    nodes = doc["/**"]
    manager = nodes["controller_manager"]["ros__parameters"]
    controller = PolicyRunnerParams.trajectory_topic.strip("/").split("/")[0]
    assert controller == EpisodeRecorderParams.action_topic.strip("/").split("/")[0] == "fr3_arm_controller"
    assert manager[controller]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    assert {"joint_state_broadcaster", "franka_robot_state_broadcaster"} <= set(manager)
    params = nodes[controller]["ros__parameters"]
    assert params["joints"] == PolicyRunnerParams().joint_names == EpisodeRecorderParams().joint_names
    assert set(params["gains"]) == set(params["joints"]) and params["cmd_timeout"] > 0
    deploy = declared_arguments(LAUNCH / "deploy.launch.py")
    assert deploy["arm_controller"].kwargs["default_value"] == "none"
    arm = declared_arguments(LAUNCH / "franka_arm.launch.py")
    assert "fr3_arm_controller.yaml" in (LAUNCH / "franka_arm.launch.py").read_text()
    assert {"robot_ip", "use_fake_hardware", "load_gripper", "namespace"} <= set(arm)
