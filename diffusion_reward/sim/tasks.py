"""The task table: which simulator, camera and episode length each task name means.

MetaWorld v3 tasks render from `corner4` (rotated 180 degrees: the `corner*` cameras are defined
upside down in MetaWorld's XML); it frames the gripper and the task object for every task at 64x64.
Adroit (gymnasium-robotics 1.4) has no `top` camera, which the paper used for door and hammer: we
render those from a free camera placed above and in front of the table (`top`, values below), the
closest equivalent; relocate uses `top` too (the paper stacked three cameras, which would not fit a
3-channel image model). Pen renders from `pen_close`, a free camera in the direction of the paper's
`vil_camera` but 3x closer: from `vil_camera` the hand and pen fill about 10 x 15 of the 64 x 64 pixels and a
turning pen changes too few of them for the reward model to tell it from a frozen hand (MODEL_CARD.md).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from diffusion_reward.errors import UserError

METAWORLD_CAMERA = "corner4"
# The `top` stand-in for Adroit: mujoco.MjvCamera fields of a free camera that never moves.
ADROIT_TOP_CAMERA = {"lookat": (0.0, -0.1, 0.2), "distance": 1.2, "azimuth": 90.0, "elevation": -60.0}
# Pen: hand, pen and goal pen fill the frame (the fixed wrist is at y = -0.27, the goal pen at x = 0.2).
ADROIT_PEN_CAMERA = {"lookat": (0.08, -0.22, 0.27), "distance": 0.45, "azimuth": 90.0, "elevation": -45.0}
_ADROIT_FREE_CAMERAS = {"top": ADROIT_TOP_CAMERA, "pen_close": ADROIT_PEN_CAMERA}

# All MetaWorld v3 tasks (metaworld 3.1.1). Scripted experts exist for every one of them.
METAWORLD_TASKS = (
    "assembly basketball bin-picking box-close button-press-topdown button-press-topdown-wall button-press "
    "button-press-wall coffee-button coffee-pull coffee-push dial-turn disassemble door-close door-lock "
    "door-open door-unlock drawer-close drawer-open faucet-close faucet-open hammer hand-insert "
    "handle-press-side handle-press handle-pull-side handle-pull lever-pull peg-insert-side peg-unplug-side "
    "pick-out-of-hole pick-place pick-place-wall plate-slide-back-side plate-slide-back plate-slide-side "
    "plate-slide push-back push push-wall reach reach-wall shelf-place soccer stick-pull stick-push "
    "sweep-into sweep window-close window-open"
).split()

# The expert class name does not follow the env name for this one task.
_POLICY_NAME_EXCEPTIONS = {"peg-insert-side-v3": "SawyerPegInsertionSideV3Policy"}


@dataclass(frozen=True)
class TaskSpec:
    name: str  # our task name, e.g. "button-press-v3", "adroit-door"
    domain: str  # "metaworld" | "adroit"
    env_id: str  # what gymnasium builds
    camera: str
    episode_steps: int  # default agent steps per episode (at the paper's action repeat 2)
    rotate_180: bool = False  # camera defined upside down in the XML
    free_camera: dict = field(default_factory=dict)  # non-empty: render from this free camera
    expert: str | None = None  # metaworld.policies class name, or the adroit_experts/<name>.npz DAPG policy

    @property
    def has_expert(self) -> bool:
        return self.expert is not None


def _metaworld_spec(short: str) -> TaskSpec:
    name = f"{short}-v3"
    expert = _POLICY_NAME_EXCEPTIONS.get(name) or (
        "Sawyer" + "".join(w.capitalize() for w in short.split("-")) + "V3Policy"
    )
    return TaskSpec(name, "metaworld", name, METAWORLD_CAMERA, episode_steps=100, rotate_180=True, expert=expert)


def _adroit_spec(short: str, camera: str, episode_steps: int) -> TaskSpec:
    free = _ADROIT_FREE_CAMERAS.get(camera, {})
    return TaskSpec(f"adroit-{short}", "adroit", f"AdroitHand{short.capitalize()}-v1", camera, episode_steps,
                    free_camera=free, expert=short)


TASKS: dict[str, TaskSpec] = {s.name: s for s in map(_metaworld_spec, METAWORLD_TASKS)}
TASKS.update({s.name: s for s in [
    _adroit_spec("door", "top", 100),
    _adroit_spec("hammer", "top", 100),
    _adroit_spec("pen", "pen_close", 50),
    _adroit_spec("relocate", "top", 100),
]})


def list_tasks(domain: str | None = None) -> list[str]:
    """Task names, optionally of one domain ("metaworld" | "adroit")."""
    return [name for name, spec in TASKS.items() if domain is None or spec.domain == domain]


def task_spec(task: str) -> TaskSpec:
    """The spec of `task`; UserError naming the closest task names for a typo."""
    if task in TASKS:
        return TASKS[task]
    close = difflib.get_close_matches(task, TASKS, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `diffusion_reward.sim.list_tasks()`"
    raise UserError(f"unknown task {task!r}{hint}")
