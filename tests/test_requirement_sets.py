"""The pinned requirement sets resolve for the Python they are for: 3.11 (requirements.txt, what this project
installs), 3.10 (ROS 2 Humble) and 3.12 (ROS 2 Jazzy), checked against PyPI as pip would choose wheels for that
interpreter (`requirement_sets.py`); only 3.11 runs here. Skipped, with the reason, when PyPI cannot be reached."""
from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version
from requirement_sets import TARGETS, IndexUnreachable, check_set, read_pins

ROOT = Path(__file__).resolve().parents[1]
SETS = {"requirements.txt": "3.11", "requirements-py3.10.txt": "3.10", "requirements-py3.12.txt": "3.12",
        "requirements-robomimic.txt": "3.11"}


def checked(path: Path, python: str) -> list[str]:
    try:
        return check_set(path, TARGETS[python])
    except IndexUnreachable as exc:
        pytest.skip(f"PyPI unreachable, requirement sets not checked: {exc}")


@pytest.mark.parametrize("name", sorted(SETS))
def test_requirement_set_resolves_for_its_python(name):
    assert checked(ROOT / name, SETS[name]) == []


def test_the_check_finds_a_missing_wheel_and_a_conflicting_pin(tmp_path):
    """It can fail: requirements.txt itself does not install on 3.10 (no numpy 2.4.6 wheel), and opencv 5 requires
    numpy 2."""
    problems = checked(ROOT / "requirements.txt", "3.10")
    assert any(p.startswith("numpy==2.4.6: no wheel for Python 3.10") for p in problems), problems
    conflict = tmp_path / "conflict.txt"
    conflict.write_text("numpy==1.26.4\nopencv-python-headless==5.0.0.93\n")
    assert checked(conflict, "3.12") == [
        "opencv-python-headless==5.0.0.93 requires numpy>=2, the set pins numpy==1.26.4"]


@pytest.mark.parametrize("name", ["requirements-py3.10.txt", "requirements-py3.12.txt"])
def test_ros_sets_keep_numpy_1_and_every_package(name):
    """ROS's binary packages (cv_bridge) are built against numpy 1: a --system-site-packages venv must not shadow
    them with numpy 2. The ROS sets pin the same packages as requirements.txt, less the numpy-2-only test tool minari."""
    python = SETS[name]
    pins = read_pins(ROOT / name, TARGETS[python])
    assert pins["numpy"] < Version("2")
    assert set(pins) == set(read_pins(ROOT / "requirements.txt", TARGETS[python])) - {"minari"}
