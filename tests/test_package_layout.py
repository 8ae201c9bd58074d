"""The folder tree is the package tree, and the robot side of a policy needs torch only."""
import subprocess
import sys
from pathlib import Path

import diffusion_reward

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_lives_in_its_own_folder():
    import diffusion_reward.offline
    import diffusion_reward.data.sources
    import diffusion_reward.sim
    root = Path(diffusion_reward.__file__).parent
    for module in (diffusion_reward.sim, diffusion_reward.offline, diffusion_reward.data.sources):
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


# Layers of the package, lowest first: a module imports only from layers below its own (or its own package).
LAYERS = (
    {"__version__", "errors"},
    {"checks", "reward_types", "msgs", "precision", "robot_state"},
    {"scoring_options"},
    {"data", "sim", "safety", "transport"},
    {"models", "outputs"},
    {"reward", "training"},
    {"report", "offline", "upstream"},
    {"nodes"},
    {"live"},
    {"cli"},
    {"__main__"},
)
# RewardModel's API methods (fit, compute_stats, scorer; d3rlpy style) reach up into the layers that implement them,
# importing when called, never when the model module loads.
CALL_TIME_EDGES = {("models", "training"), ("models", "reward")}


def package_imports():
    """(importing package, imported package, file, inside a function) for every import inside diffusion_reward."""
    import ast

    root = Path(diffusion_reward.__file__).parent
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        module = parts[:-1] if parts[-1] == "__init__" else parts
        package = module if path.name == "__init__.py" else module[:-1]
        tree, stack = ast.parse(path.read_text()), []

        def visit(node, in_function):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    target = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
                else:
                    target = node.module.split(".") if node.module else []
                if target[:1] == ["diffusion_reward"]:
                    names = [target + [a.name] for a in node.names] if len(target) == 1 else [target]
                    stack.extend((n, in_function) for n in names)
            elif isinstance(node, ast.Import):
                stack.extend((a.name.split("."), in_function) for a in node.names
                             if a.name.startswith("diffusion_reward"))
            inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            for child in ast.iter_child_nodes(node):
                visit(child, inner)

        visit(tree, False)
        for target, in_function in stack:
            src = module[1] if len(module) > 1 else "__init__"
            dst = target[1] if len(target) > 1 else "__init__"
            if src != dst and "__init__" not in (src, dst):
                yield src, dst, str(path.relative_to(root.parent)), in_function


def test_import_graph_has_no_upward_edge_and_no_cycle():
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    edges = list(package_imports())
    unknown = {name for src, dst, _, _ in edges for name in (src, dst)} - set(layer)
    assert not unknown, f"packages missing from LAYERS: {unknown}"
    upward = [(src, dst, f) for src, dst, f, in_function in edges
              if layer[dst] >= layer[src] and not (in_function and (src, dst) in CALL_TIME_EDGES)]
    assert not upward, f"imports that are not from a lower layer: {upward}"
    assert {(s, d) for s, d, _, _ in edges} >= {("data", "msgs"), ("reward", "data"), ("training", "data")}
