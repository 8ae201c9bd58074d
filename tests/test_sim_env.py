"""Simulated tasks: real MuJoCo rendering, seeding, sparse success, scripted experts."""
import numpy as np
import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.report.episodes import collect
from diffusion_reward.sim import list_tasks, make_env, make_policy
from diffusion_reward.sim.tasks import task_spec

PAPER_METAWORLD = ["button-press-v3", "button-press-topdown-v3", "door-open-v3", "drawer-open-v3", "reach-v3",
                   "coffee-push-v3", "dial-turn-v3", "door-close-v3", "lever-pull-v3", "peg-unplug-side-v3",
                   "assembly-v3"]


def _rollout(env, seed, steps=5):
    policy = make_policy("button-press-v3", env, epsilon=0.5, seed=seed)
    obs = env.reset(seed=seed)
    frames, states = [obs["image"]], [obs["state"]]
    for _ in range(steps):
        obs, *_ = env.step(policy(obs))
        frames.append(obs["image"])
        states.append(obs["state"])
    return np.stack(frames), np.stack(states)


def test_same_seed_same_frames_different_seed_different_episode():
    env, fresh_env = make_env("button-press-v3", seed=0), make_env("button-press-v3", seed=0)
    frames_a, states_a = _rollout(env, seed=7)
    frames_c, states_c = _rollout(env, seed=8)
    frames_b, states_b = _rollout(env, seed=7)  # history of the env must not matter
    frames_d, states_d = _rollout(fresh_env, seed=7)
    assert frames_a.shape == (6, 64, 64, 3) and frames_a.dtype == np.uint8
    assert states_a.shape == (6, 39) and states_a.dtype == np.float32
    for frames, states in [(frames_b, states_b), (frames_d, states_d)]:
        np.testing.assert_array_equal(frames_a, frames)
        np.testing.assert_array_equal(states_a, states)
    assert not np.array_equal(states_a[0], states_c[0])  # the button position follows the seed
    assert frames_a[1:].std(axis=0).max() > 0  # the arm moves in the picture
    env.close()
    fresh_env.close()


def test_task_list_and_unknown_task():
    tasks = list_tasks()
    assert set(PAPER_METAWORLD) <= set(tasks)
    assert {"adroit-door", "adroit-hammer", "adroit-pen", "adroit-relocate"} <= set(tasks)
    with pytest.raises(UserError, match="button-press-v3"):
        make_env("buton-press-v3")


def _success_rate(epsilon, episodes=10):
    env = make_env("button-press-v3", seed=0, terminate_on_success=True, render=False)
    policy = make_policy("button-press-v3", env, epsilon=epsilon, seed=1)
    successes = 0
    for episode in range(episodes):
        obs = env.reset(seed=100 + episode)
        policy.reset(seed=100 + episode)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            assert reward == float(info["success"])
            done = terminated or truncated
        successes += int(terminated)
    env.close()
    return successes / episodes


def test_episode_ends_k_steps_after_first_success():
    with make_env("reach-v3", seed=0, render=False, steps_after_success=3) as env:
        assert env.episode_end == "success+3" and env.env_args()["episode_end"] == "success+3"
        policy = make_policy("reach-v3", env, epsilon=0.0, seed=0)
        obs = env.reset(seed=5)
        policy.reset(5)
        rewards, terminated = [], False
        while not terminated:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            rewards.append(reward)
            assert not truncated
        first = rewards.index(1.0)
        assert len(rewards) == first + 1 + 3
    assert make_env("reach-v3", render=False).episode_end == "full"
    with pytest.raises(UserError, match="`steps_after_success` must be >= 0"):
        make_env("reach-v3", render=False, steps_after_success=-1)


def test_expert_solves_button_press_and_random_actions_do_not():
    assert _success_rate(0.0) >= 0.9
    assert _success_rate(1.0) <= 0.3


def test_episode_length_and_action_repeat():
    env = make_env("reach-v3", seed=0, action_repeat=3, max_episode_steps=4, render=False)
    env.reset(seed=0)
    dones = [env.step(np.zeros(4))[3] for _ in range(4)]
    assert dones == [False, False, False, True]
    assert env.time == pytest.approx(4 * env.control_dt)
    assert env.control_dt == pytest.approx(3 * env.raw.dt)
    env.close()
    assert make_env("adroit-pen").max_episode_steps == 50
    assert make_env("button-press-v3").max_episode_steps == 100


@pytest.mark.parametrize("task", ["adroit-door", "adroit-hammer", "adroit-pen", "adroit-relocate"])
def test_adroit_renders(task):
    env = make_env(task, seed=0)
    obs = env.reset(seed=1)
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["image"].std() > 5  # a real picture, not a blank buffer
    assert obs["state"].shape == (env.state_dim,)
    random_policy = make_policy(task, env, epsilon=1.0, seed=0)
    obs2, reward, *_ = env.step(random_policy(obs))
    assert reward in (0.0, 1.0)
    assert not np.array_equal(obs["image"], obs2["image"])
    assert env.render(48, 64).shape == (48, 64, 3)
    env.close()


@pytest.mark.parametrize("task", ["adroit-door", "adroit-hammer", "adroit-pen", "adroit-relocate"])
def test_adroit_dapg_expert_solves_and_random_does_not(task):
    """The shipped DAPG policies solve every task (state only, fast); epsilon=1 on the same seeds does not."""
    with make_env(task, seed=0, render=False, steps_after_success=0) as env:
        for epsilon, expect in ((0.0, True), (1.0, False)):
            policy = make_policy(task, env, epsilon=epsilon, seed=0)
            for seed in (1, 2):
                obs = env.reset(seed=seed)
                policy.reset(seed)
                solved = False
                for _ in range(env.max_episode_steps):
                    obs, reward, terminated, truncated, _ = env.step(policy(obs))
                    solved |= reward == 1.0
                    if terminated or truncated:
                        break
                assert solved is expect, (epsilon, seed)
                assert terminated is expect  # steps_after_success=0 ends the episode on its success


def test_pen_camera_shows_the_pen_turn():
    """From the paper's `vil_camera` a turning pen changes ~1 % of the 64x64 pixels per 4-step transition (the
    reward model's frame skip), too few to tell it from a frozen hand; `pen_close` frames hand and pen (~7 %)."""
    (expert,) = collect("adroit-pen", 1, seed=1, max_steps=12, epsilons=(0.0,), progress=False)  # its first turn
    frames = expert.frames.astype(np.int16)
    changed = (np.abs(frames[4:] - frames[:-4]).max(axis=-1) > 25).mean()
    assert task_spec("adroit-pen").camera == "pen_close" and changed > 0.04, changed
