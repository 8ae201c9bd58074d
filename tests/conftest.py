import os

# Offscreen rendering on a CPU-only machine; must be set before mujoco is imported anywhere.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# One OpenMP thread per process, inherited by the subprocesses tests start (DDP ranks, DDS nodes): the 2 cores
# are shared, and contended threads make the tiny models many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import importlib.util  # noqa: E402

import pytest  # noqa: E402

HAS_RCLPY = importlib.util.find_spec("rclpy") is not None


def pytest_collection_modifyitems(config, items):
    skip_ros = pytest.mark.skip(reason="needs rclpy (ROS 2 install); not installable on this machine")
    for item in items:
        if "ros" in item.keywords and not HAS_RCLPY:
            item.add_marker(skip_ros)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The 2 cores of the test machine are shared with MuJoCo and subprocesses: one torch thread is many times
    faster than two contended ones for the tiny models the tests use."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model_file(tmp_path):
    """`make(task, skip_step)` -> path of a random-weight tiny reward model with entropy statistics for that task
    (weights are random: tests compare live and offline scoring of the same file, not reward quality)."""

    def make(task: str, skip_step: int = 9) -> str:
        from diffusion_reward.models import RewardModel

        model = RewardModel.from_preset("tiny", seed=0)
        model.set_stats(task, "entropy", skip_step, 1, mean=-400.0, std=20.0)
        return str(model.save(tmp_path / "tiny.safetensors"))

    return make
