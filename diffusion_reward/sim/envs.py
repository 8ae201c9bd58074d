"""MetaWorld v3 and Adroit tasks behind one small interface: 64x64 camera image + state vector.

`SimEnv` owns the seeding, the action repeat, the episode length and the rendering, so both
domains behave the same way: `reset(seed)` fully determines the episode (same seed, same frames),
the reward is the sparse 0/1 success of the agent step, and the image comes from one fixed camera.
"""
from __future__ import annotations

import atexit
import os
import warnings
import weakref

import numpy as np

from diffusion_reward.checks import check_int, check_seed
from diffusion_reward.errors import UserError

from .tasks import TaskSpec, task_spec

os.environ.setdefault("MUJOCO_GL", "egl")

# Offscreen buffer big enough for the full-resolution stream of the sim bridge.
MAX_RENDER_WIDTH, MAX_RENDER_HEIGHT = 1280, 960
MAX_PHYSICS_STEPS = 10**6  # per episode (action repeat x agent steps): minutes of CPU, far above any task's


def _quiet_import(domain: str):
    """Import the simulators without their import-time deprecation noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gymnasium as gym
        import mujoco

        if domain == "adroit":
            import gymnasium_robotics

            gym.register_envs(gymnasium_robotics)
    return gym, mujoco


class SimEnv:
    """One simulated task. Observations: `{"image": u8[S,S,3], "state": f32[D]}`.

    With `render=False` observations hold only the state (fast expert evaluation).
    `step` repeats the action `action_repeat` times; reward = 1.0 if the task was solved on any of
    those physics steps, else 0.0 (also `info["success"]`). `truncated` after `max_episode_steps`
    agent steps; `terminated` `steps_after_success` agent steps after the first success (0 = on it, the same as
    `terminate_on_success`; None = never: every episode runs to its full length). `info["time"]` is the simulated time
    in seconds since `reset`.
    """

    def __init__(self, spec: TaskSpec, seed: int = 0, image_size: int = 64, action_repeat: int = 2,
                 max_episode_steps: int | None = None, terminate_on_success: bool = False,
                 render: bool = True, steps_after_success: int | None = None):
        check_seed("seed", seed)
        check_int("image_size", image_size, 8, MAX_RENDER_HEIGHT)  # the offscreen framebuffer's bound
        check_int("action_repeat", action_repeat, 1)
        if max_episode_steps is not None:
            check_int("max_episode_steps", max_episode_steps, 1)
        if steps_after_success is not None:
            check_int("steps_after_success", steps_after_success, 0)
        self.max_episode_steps = max_episode_steps or spec.episode_steps
        if self.max_episode_steps * action_repeat > MAX_PHYSICS_STEPS:
            raise UserError(f"`max_episode_steps` {self.max_episode_steps} x `action_repeat` {action_repeat} physics steps "
                            f"per episode is more than {MAX_PHYSICS_STEPS:.0e} (hours of simulation per episode)")
        gym, self._mujoco = _quiet_import(spec.domain)
        self.spec = spec
        self.task = spec.name
        self.seed = seed
        self.image_size = image_size
        self.action_repeat = action_repeat
        self.steps_after_success = 0 if terminate_on_success else steps_after_success
        self.renders = render
        self._seeds = np.random.default_rng(seed)  # episode seeds when reset() gets none
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec.domain == "metaworld":
                self._gym = _make_metaworld(spec.env_id)
                self._gym.max_path_length = self.max_episode_steps * action_repeat
            else:
                self._gym = gym.make(spec.env_id)
        self.raw = self._gym.unwrapped
        self.model, self.data = self.raw.model, self.raw.data
        # Fast offscreen rendering on a CPU: must be set before the GL context exists.
        self.model.vis.quality.shadowsize = 0
        self.model.vis.quality.offsamples = 0
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, MAX_RENDER_WIDTH)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, MAX_RENDER_HEIGHT)
        self.action_space = self.raw.action_space
        self.action_dim = int(self.action_space.shape[0])
        self.state_dim = int(self.raw.observation_space.shape[0])
        self._renderers: dict[tuple[int, int], object] = {}
        self._camera = self._make_camera()
        self._steps = 0
        self._t0 = 0.0
        self._state: np.ndarray | None = None

    # -- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        if seed is None:
            seed = int(self._seeds.integers(2**31))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.spec.domain == "metaworld":
                self.raw.seed(seed)  # MetaWorld's reset() ignores its seed argument
                state, _ = self.raw.reset()
            else:
                state, _ = self.raw.reset(seed=seed)
        self.reset_seed = seed  # the seed of the current episode
        self._steps = 0
        self._first_success: int | None = None  # agent step of the first success in this episode
        self._t0 = float(self.data.time)
        self._state = np.asarray(state, dtype=np.float32)
        return self._observation()

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_dim), -1.0, 1.0)
        success = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(self.action_repeat):
                state, _, _, _, info = self.raw.step(action)
                success |= bool(info.get("success", False))
        self._steps += 1
        self._state = np.asarray(state, dtype=np.float32)
        if success and self._first_success is None:
            self._first_success = self._steps
        terminated = (self.steps_after_success is not None and self._first_success is not None
                      and self._steps - self._first_success >= self.steps_after_success)
        truncated = self._steps >= self.max_episode_steps and not terminated
        info = {"success": success, "time": self.time}
        return self._observation(), float(success), terminated, truncated, info

    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return float(self.data.time) - self._t0

    @property
    def control_dt(self) -> float:
        """Simulated seconds per agent step."""
        return float(self.raw.dt) * self.action_repeat

    @property
    def state(self) -> np.ndarray:
        return self._state

    def _observation(self) -> dict[str, np.ndarray]:
        if not self.renders:
            return {"state": self._state.copy()}
        return {"image": self.render(), "state": self._state.copy()}

    # -- rendering -----------------------------------------------------------------------------
    def _make_camera(self):
        mj = self._mujoco
        if self.spec.free_camera:
            cam = mj.MjvCamera()
            cam.type = mj.mjtCamera.mjCAMERA_FREE
            for key, value in self.spec.free_camera.items():
                if key == "lookat":
                    cam.lookat[:] = value
                else:
                    setattr(cam, key, value)
            return cam
        if mj.mj_name2id(self.model, mj.mjtObj.mjOBJ_CAMERA, self.spec.camera) < 0:
            raise UserError(f"camera {self.spec.camera!r} does not exist in {self.spec.env_id}")
        return self.spec.camera

    def render(self, height: int | None = None, width: int | None = None) -> np.ndarray:
        """The task camera as u8[H,W,3] (default: image_size x image_size), upright."""
        height = height or self.image_size
        width = width or height
        key = (height, width)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = self._renderers[key] = self._mujoco.Renderer(self.model, height=height, width=width)
            # Free the GL context before EGL's own atexit terminates the display (registered at the
            # first context, so ours, registered later, runs earlier); else __del__ raises at exit.
            atexit.register(_close_renderers, weakref.ref(self))
        renderer.update_scene(self.data, camera=self._camera)
        image = renderer.render()
        return np.ascontiguousarray(image[::-1, ::-1]) if self.spec.rotate_180 else image

    # -- metadata ------------------------------------------------------------------------------
    @property
    def episode_end(self) -> str:
        """How episodes end, as recorded with the data: "full" or "success+K" (K agent steps after success)."""
        return "full" if self.steps_after_success is None else f"success+{self.steps_after_success}"

    def env_args(self) -> dict:
        """What a dataset records about how its episodes were made."""
        from diffusion_reward import __version__

        return {
            "task": self.task, "domain": self.spec.domain, "env_id": self.spec.env_id,
            "camera": self.spec.camera, "camera_rotate_180": self.spec.rotate_180,
            "free_camera": dict(self.spec.free_camera), "image_size": self.image_size,
            "image_key": "image", "action_repeat": self.action_repeat,
            "max_episode_steps": self.max_episode_steps, "episode_end": self.episode_end, "state_dim": self.state_dim,
            "action_dim": self.action_dim, "control_dt": self.control_dt, "seed": self.seed,
            "reward": "sparse success (0/1) per agent step", "software_version": __version__,
        }

    def close(self) -> None:
        self.close_renderers()
        self._gym.close()

    def close_renderers(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def episode_seed(seed: int, index: int) -> int:
    """Reset seed of the index-th episode of a run seeded `seed` (independent streams per seed)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] % 2**31)


def _make_metaworld(name: str):
    """A MetaWorld v3 env whose object and goal layout is drawn from its own seeded generator.

    `gym.make("Meta-World/MT1")` would pre-sample 50 frozen layouts (1.7 s) and pick one from a
    generator that `reset(seed)` does not reseed; we set one task (MT1's keyword arguments, fully
    observable like MT1) and unfreeze the layout so that `seed()` + `reset()` determine it.
    """
    import pickle

    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, ML1_ARGS_KWARGS
    from metaworld.types import Task

    env_cls = ALL_V3_ENVIRONMENTS[name]
    env = env_cls()
    task_kwargs = {k: v for k, v in ML1_ARGS_KWARGS[name]["kwargs"].items() if k != "task_id"}
    task_kwargs.update(env_cls=env_cls, partially_observable=False,
                       rand_vec=np.zeros_like(env._random_reset_space.low))
    env.set_task(Task(env_name=name, data=pickle.dumps(task_kwargs)))
    env._freeze_rand_vec, env.seeded_rand_vec = False, True
    return env


def _close_renderers(env_ref) -> None:
    env = env_ref()
    if env is not None:
        env.close_renderers()


def make_env(task: str, seed: int = 0, image_size: int = 64, action_repeat: int = 2,
             max_episode_steps: int | None = None, terminate_on_success: bool = False,
             render: bool = True, steps_after_success: int | None = None) -> SimEnv:
    """Build a task by name (see `list_tasks()`); UserError for unknown names."""
    return SimEnv(task_spec(task), seed=seed, image_size=image_size, action_repeat=action_repeat,
                  max_episode_steps=max_episode_steps, terminate_on_success=terminate_on_success,
                  render=render, steps_after_success=steps_after_success)
