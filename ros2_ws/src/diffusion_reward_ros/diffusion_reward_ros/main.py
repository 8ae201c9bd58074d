"""Node executables (`ros2 run diffusion_reward_ros <name>`): a `diffusion_reward.nodes` class on rclpy."""
from __future__ import annotations

import sys


def run(name: str, args: list[str] | None = None) -> int:
    """Build node `name` from `diffusion_reward.nodes.NODES` on an rclpy transport and spin until Ctrl-C."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from diffusion_reward.errors import UserError
    from diffusion_reward.nodes import node_class

    from .rclpy_transport import RclpyTransport

    rclpy.init(args=args)
    transport = RclpyTransport(name)
    node = None
    try:
        node = node_class(name)(transport)
        transport.spin()
        return 0
    except UserError as exc:  # bad parameters or files: one line, no traceback
        transport.log("fatal", str(exc))
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        if hasattr(node, "close"):
            node.close()
        transport.shutdown()
        rclpy.try_shutdown()


def reward_labeller() -> None:
    sys.exit(run("reward_labeller", sys.argv))


def episode_recorder() -> None:
    sys.exit(run("episode_recorder", sys.argv))


def camera() -> None:
    sys.exit(run("camera", sys.argv))


def policy_runner() -> None:
    sys.exit(run("policy_runner", sys.argv))


def sim_bridge() -> None:
    sys.exit(run("sim_bridge", sys.argv))
