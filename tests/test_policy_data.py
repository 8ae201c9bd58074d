"""HDF5 -> d3rlpy MDP: observations, frame stacking, Eq. 5 rewards, terminals vs timeouts, label errors.

`write_dataset` is the tiny real dataset (DatasetWriter, real HDF5) the other policy tests train on.
"""
import numpy as np
import pytest

from diffusion_reward.data import DatasetWriter
from diffusion_reward.errors import UserError
from diffusion_reward.offline.mdp import MDPSpec, build_mdp, frame_windows, stack_frames

TASK = "button-press-topdown-v3"


def write_dataset(path, episodes=4, steps=10, labels=("entropy",), seed=0):
    """Even episodes succeed on their last step (terminal); odd ones hit the time limit."""
    rng = np.random.default_rng(seed)
    with DatasetWriter(path, env_args={"task": TASK, "image_size": 64, "action_repeat": 2}) as w:
        for e in range(episodes):
            success = e % 2 == 0
            sparse = np.zeros(steps, np.float32)
            sparse[-1] = float(success)
            extra = {f"reward_labels/{name}/{key}": rng.normal(size=steps).astype(np.float32)
                     for name in labels for key in ("reward", "raw")}
            w.write_episode(
                obs={"image": rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8),
                     "state": rng.normal(size=(steps, 39)).astype(np.float32)},
                actions=rng.uniform(-1.2, 1.2, (steps, 4)).astype(np.float32), rewards=sparse,
                success=success, attrs={"reset_seed": 100 + e},
                extra=extra, extra_attrs={f"reward_labels/{name}": {"reward_type": name} for name in labels})
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("mdp") / "labelled.hdf5")


def test_frame_stack_oldest_first_with_first_frame_repeated():
    frames = np.arange(4, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # frame t == t
    windows = frame_windows(frames, 3)
    assert windows.shape == (4, 3, 2, 2, 3)
    assert windows[:, :, 0, 0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3]]
    stacked = stack_frames(frames, 3)
    assert stacked.shape == (4, 9, 2, 2)
    assert stacked[3, :, 0, 0].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_counts_terminals_and_timeouts(data):
    buffer, info = build_mdp(data, MDPSpec(obs="state", reward="sparse"))
    assert [ep.terminated for ep in buffer.episodes] == [True, False, True, False]
    assert info.steps == 40 and info.terminal_episodes == 2 and info.timeout_episodes == 2
    assert info.transitions == buffer.transition_count == 40 - 2  # only the time-limited last steps
    assert all(ep.size() == 10 for ep in buffer.episodes)  # no step dropped
    assert info.reset_seeds == [100, 101, 102, 103]
    assert info.clipped_action_values > 0
    assert all(np.abs(ep.actions).max() <= 1.0 for ep in buffer.episodes)


def test_eq5_reward_from_stored_components(data):
    from diffusion_reward.data import Dataset

    buffer, info = build_mdp(data, MDPSpec(obs="image", reward="diffusion", alpha=0.9, beta=2.0))
    with Dataset(data) as ds, ds[0] as ep:
        expected = 0.1 * ep.reward_labels["entropy"]["datasets"]["reward"] + 2.0 * ep.rewards
    np.testing.assert_allclose(buffer.episodes[0].rewards[:, 0], expected, rtol=1e-6)
    assert info.label == "entropy" and "r_rnd = 0" in info.reward_formula and info.rnd.startswith("off")
    sparse, _ = build_mdp(data, MDPSpec(obs="state", reward="sparse", beta=2.0))
    np.testing.assert_allclose(sparse.episodes[0].rewards[:, 0], 2.0 * np.eye(10)[-1])


def test_observation_modes(data):
    image, info = build_mdp(data, MDPSpec(obs="image", frame_stack=3, reward="sparse"))
    assert image.episodes[0].observations.shape == (10, 9, 64, 64) and image.episodes[0].observations.dtype == np.uint8
    both, _ = build_mdp(data, MDPSpec(obs="both", frame_stack=2, reward="sparse"))
    img, state = both.episodes[0].observations
    assert img.shape == (10, 6, 64, 64) and state.shape == (10, 39)
    assert info.image_size == 64 and info.state_dim == 39 and info.action_dim == 4


def test_missing_label_lists_labels_present(tmp_path, data):
    unlabelled = write_dataset(tmp_path / "raw.hdf5", episodes=1, labels=())
    with pytest.raises(UserError, match="labels present: none"):
        build_mdp(unlabelled, MDPSpec(reward="diffusion"))
    with pytest.raises(UserError, match=r"labels present: entropy \(entropy\)"):
        build_mdp(data, MDPSpec(reward="likelihood"))
    with pytest.raises(UserError, match="`obs` must be one of"):
        MDPSpec(obs="pixels")


def test_diffusion_reward_takes_either_diffusion_label_but_never_guesses_between_two(tmp_path):
    only_likelihood = write_dataset(tmp_path / "lik.hdf5", episodes=1, labels=("likelihood",))
    assert build_mdp(only_likelihood, MDPSpec(obs="state", reward="diffusion"))[1].label == "likelihood"
    both = write_dataset(tmp_path / "both.hdf5", episodes=1, labels=("entropy", "likelihood"))
    with pytest.raises(UserError, match="matches several labels"):
        build_mdp(both, MDPSpec(obs="state", reward="diffusion"))
    assert build_mdp(both, MDPSpec(obs="state", reward="likelihood"))[1].label == "likelihood"
