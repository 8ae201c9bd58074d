"""The ament_python package in ros2_ws: manifest, colcon build/install layout, entry points, config files."""
import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from diffusion_reward.nodes import NODES
from diffusion_reward.nodes.camera import CameraParams
from diffusion_reward.nodes.episode_recorder import EpisodeRecorderParams
from diffusion_reward.nodes.params import load_parameter_file
from diffusion_reward.nodes.policy_runner import PolicyRunnerParams
from diffusion_reward.nodes.reward_labeller import RewardLabellerParams
from diffusion_reward.nodes.sim_bridge import SimBridgeParams

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "ros2_ws" / "src" / "diffusion_reward_ros"
COLCON = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "colcon"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # catkin_pkg's pyparsing calls
LAUNCH_FILES = sorted(p.name for p in (REPO / "launch").glob("*.launch.py"))


def _setup_executables() -> list[str]:
    tree = ast.parse((PKG / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXECUTABLES":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no EXECUTABLES list")


def test_package_xml_is_valid_format_3_with_every_dependency():
    package = parse_package(str(PKG / "package.xml"))
    package.validate()  # raises on a missing maintainer, bad version, ...
    assert package.package_format == 3 and package.get_build_type() == "ament_python"
    exec_deps = {d.name for d in package.exec_depends}
    assert {"rclpy", "rosidl_runtime_py", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs",
            "diagnostic_msgs", "rosgraph_msgs", "builtin_interfaces", "launch", "launch_ros",
            "ament_index_python", "python3-numpy", "python3-yaml"} <= exec_deps
    assert {d.name for d in package.test_depends} >= {"launch_testing", "launch_testing_ros", "python3-pytest"}
    optional = {d.name: d.condition for d in package.exec_depends if d.condition}
    assert set(optional) == {"realsense2_camera", "franka_msgs", "franka_bringup"}
    package.evaluate_conditions({})  # optional by default ...
    assert not any(d.evaluated_condition for d in package.exec_depends if d.name in optional)
    package.evaluate_conditions({"DIFFUSION_REWARD_WITH_REALSENSE": "1"})  # ... and on request
    assert [d.name for d in package.exec_depends if d.condition and d.evaluated_condition] == ["realsense2_camera"]


def test_msgs_packages_cover_every_message_the_nodes_speak():
    from diffusion_reward.msgs import ALL_MESSAGES

    exec_deps = {d.name for d in parse_package(str(PKG / "package.xml")).exec_depends}
    assert {m.__msgtype__.split("/")[0] for m in ALL_MESSAGES} <= exec_deps


def test_executables_are_the_node_registry():
    assert sorted(_setup_executables()) == sorted(NODES)
    main = ast.parse((PKG / "diffusion_reward_ros" / "main.py").read_text())
    functions = {n.name for n in main.body if isinstance(n, ast.FunctionDef)}
    assert set(NODES) <= functions


def test_ament_module_ships_no_copy_of_the_core():
    files = {p.name for p in (PKG / "diffusion_reward_ros").glob("*.py")}
    assert files == {"__init__.py", "main.py", "rclpy_transport.py", "franka_gripper.py"}
    assert not (PKG / "diffusion_reward").exists()


def test_rclpy_transport_implements_the_whole_interface():
    """It cannot be imported here (rclpy): check its source implements every abstract method."""
    from diffusion_reward.transport.base import Publisher, Timer, Transport

    source = PKG / "diffusion_reward_ros" / "rclpy_transport.py"
    compile(source.read_text(), str(source), "exec")  # syntax only; writes no __pycache__ into the package
    classes = {n.name: n for n in ast.parse(source.read_text()).body if isinstance(n, ast.ClassDef)}
    for name, base in (("RclpyTransport", Transport), ("_RclpyPublisher", Publisher), ("_RclpyTimer", Timer)):
        methods = {f.name for f in classes[name].body if isinstance(f, ast.FunctionDef)}
        assert base.__abstractmethods__ <= methods, (name, base.__abstractmethods__ - methods)
    for module in ("main.py", "franka_gripper.py"):
        path = PKG / "diffusion_reward_ros" / module
        compile(path.read_text(), str(path), "exec")


@pytest.mark.parametrize("node,params_cls", [
    ("reward_labeller", RewardLabellerParams), ("episode_recorder", EpisodeRecorderParams), ("camera", CameraParams),
    ("policy_runner", PolicyRunnerParams), ("sim_bridge", SimBridgeParams)])
def test_config_files_set_only_declared_parameters_with_the_right_types(node, params_cls):
    values = load_parameter_file(PKG / "config" / f"{node}.yaml", node)
    defaults = vars(params_cls())
    assert values and set(values) <= set(defaults)
    for name, value in values.items():
        assert type(value) is type(defaults[name]), name


@pytest.fixture(scope="module")
def colcon_builds(tmp_path_factory):
    if not COLCON.exists():
        pytest.fail(f"{COLCON} missing: colcon-common-extensions is in requirements.txt")
    builds = {}
    for mode in ("copy", "symlink"):
        root = tmp_path_factory.mktemp(f"ws_{mode}") / "ros2_ws"  # a copy: builds must not touch the repo
        shutil.copytree(REPO / "ros2_ws" / "src", root / "src", symlinks=True)
        os.symlink(REPO / "launch", root.parent / "launch")  # the package's launch link is ../../../launch
        cmd = [str(COLCON), "--log-base", str(root / "log"), "build", "--base-paths", str(root / "src"),
               "--build-base", str(root / "build"), "--install-base", str(root / "install")]
        if mode == "symlink":
            cmd.append("--symlink-install")
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        builds[mode] = root / "install"
    return builds


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_colcon_build_installs_launch_config_and_executables(colcon_builds, mode):
    install = colcon_builds[mode]
    share = install / "diffusion_reward_ros" / "share" / "diffusion_reward_ros"
    for name in LAUNCH_FILES:
        path = share / "launch" / name
        assert path.is_file() and path.read_text() == (REPO / "launch" / name).read_text()
    assert sorted(p.name for p in (share / "config").glob("*.yaml")) == sorted(
        p.name for p in (PKG / "config").glob("*.yaml"))
    assert (share / "package.xml").is_file()
    assert (install / "diffusion_reward_ros" / "share" / "ament_index" / "resource_index" / "packages" /
            "diffusion_reward_ros").is_file()
    lib = install / "diffusion_reward_ros" / "lib" / "diffusion_reward_ros"
    assert sorted(p.name for p in lib.iterdir()) == sorted([*NODES, "franka_gripper_bridge"])
    site = next((install / "diffusion_reward_ros" / "lib").glob("python3*/site-packages"))
    assert not (site / "diffusion_reward").exists()  # the core comes from the pip-installed library


def test_installed_executable_runs_our_entry_point(colcon_builds):
    """Sourced like `ros2 run` would; here it stops at the one thing missing on this machine: rclpy."""
    install = colcon_builds["copy"]
    script = install / "diffusion_reward_ros" / "lib" / "diffusion_reward_ros" / "reward_labeller"
    result = subprocess.run(["bash", "-c", f"source {install}/setup.bash && {script}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "diffusion_reward_ros/main.py" in result.stderr and "No module named 'rclpy'" in result.stderr


@pytest.mark.ros
def test_rclpy_transport_round_trips_messages():
    import rclpy

    from diffusion_reward.msgs import DiagnosticStatus, Image, Header, Time
    from diffusion_reward_ros.rclpy_transport import from_ros, to_ros

    rclpy.init()
    try:
        image = Image(header=Header(stamp=Time(3, 4), frame_id="cam"), height=2, width=3, encoding="rgb8",
                      step=9, data=bytes(range(18)))
        assert from_ros(to_ros(image), Image) == image
        status = DiagnosticStatus(level=DiagnosticStatus.WARN, name="x")
        assert from_ros(to_ros(status), DiagnosticStatus) == status
    finally:
        rclpy.shutdown()
