"""The folder tree is the package tree, and the robot side of a policy needs torch only."""
import subprocess
import sys
from pathlib import Path

import diffusion_reward

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_lives_in_its_own_folder():
    import diffusion_reward.offline
    import diffusion_reward.offline.sources
    import diffusion_reward.sim
    root = Path(diffusion_reward.__file__).parent
    for module in (diffusion_reward.sim, diffusion_reward.offline, diffusion_reward.offline.sources):
        assert Path(module.__file__).parent == root.joinpath(*module.__name__.split(".")[1:])
    assert "package_dir" not in (REPO / "setup.py").read_text()
    assert not (REPO / "sim").exists() and not (REPO / "offline").exists()


def test_policy_runner_and_exported_policy_loader_import_neither_gym_nor_d3rlpy():
    code = ("import sys; import diffusion_reward.nodes.policy_runner, diffusion_reward.offline.policy_folder; "
            "from diffusion_reward.nodes.policy_runner import PolicyRunnerNode; "
            "bad = sorted(m for m in ('gym', 'gymnasium', 'd3rlpy') if m in sys.modules); print(bad); "
            "sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
