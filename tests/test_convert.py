"""`diffusion-reward convert` (robomimic / d3rlpy files) and relabelling robomimic files, read back with h5py and
plain d3rlpy. robomimic's own trainer runs on the converted file in tests/test_robomimic_train.py."""
from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from test_policy_data import write_dataset
from test_relabel_cli import tree_hash

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel

TASK = "button-press-topdown-v3"


def run(capsys, *args):
    rc = main([*map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def write_robomimic_source(path, steps=(7, 5, 6), names=("demo_0", "demo_1", "demo_3"), seed=0):
    """A robomimic file as robomimic's own dataset scripts write it: obs and next_obs (the true next observation:
    the last row is the state after the final action), states, float64 rewards / int dones, train/valid masks."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        for name, t in zip(names, steps):
            ep = data.create_group(name)
            ep.attrs["num_samples"] = t
            images = rng.integers(0, 256, (t + 1, 64, 64, 3), dtype=np.uint8)
            eef = rng.normal(size=(t + 1, 3))
            ep["obs/agentview_image"], ep["next_obs/agentview_image"] = images[:-1], images[1:]
            ep["obs/robot0_eef_pos"], ep["next_obs/robot0_eef_pos"] = eef[:-1], eef[1:]
            ep["states"] = rng.normal(size=(t, 32))
            ep["actions"] = rng.uniform(-1, 1, (t, 7))
            ep["rewards"] = np.eye(t)[-1]
            ep["dones"] = np.eye(t, dtype=np.int64)[-1]
        data.attrs["total"] = sum(steps)
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}})
        f["mask/train"] = np.array(names[:2], dtype="S")
        f["mask/valid"] = np.array(names[2:], dtype="S")
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("convert") / "labelled.hdf5", episodes=6, steps=12,
                         labels=("likelihood",))


def test_robomimic_file_has_eq5_rewards_next_obs_dones_masks_env_meta(tmp_path, capsys, labelled):
    before = tree_hash(labelled)
    out = tmp_path / "robomimic.hdf5"
    rc, stdout, err = run(capsys, "convert", labelled, "--to", "robomimic", "--reward", "diffusion",
                          "--alpha", "0.9", "--beta", "2", "--valid-fraction", "0.34", "--seed", "3", "--out", out)
    assert rc == 0, err
    assert "6 episode(s), 72 steps" in stdout and "label 'likelihood'" in stdout
    assert tree_hash(labelled) == before  # the input is never written
    assert not list(tmp_path.glob(".*partial"))
    with h5py.File(out, "r") as f, Dataset(labelled) as src:
        env = json.loads(f["data"].attrs["env_args"])
        assert env["env_name"] == TASK and env["type"] == 2 and env["env_kwargs"] == {} and env["image_size"] == 64
        assert int(f["data"].attrs["total"]) == 72
        reward = json.loads(f.attrs["reward"])
        assert (reward["label"], reward["alpha"], reward["beta"]) == ("likelihood", 0.9, 2.0)
        assert reward["label_attrs"]["reward_type"] == "likelihood"
        train, valid = (sorted(n.decode() for n in f["mask"][k][()]) for k in ("train", "valid"))
        assert len(valid) == 2 and sorted(train + valid) == sorted(src.episode_names)  # round(0.34 * 6)
        assert [n.decode() for n in f["mask/success"][()]] == ["demo_0", "demo_2", "demo_4"]
        for ep in src:
            with ep:
                g = f["data"][ep.name]
                t = ep.num_samples
                assert g.attrs["num_samples"] == t
                label = ep.reward_labels["likelihood"]["datasets"]["reward"]
                np.testing.assert_allclose(g["rewards"][()], 0.1 * label + 2.0 * ep.rewards, rtol=1e-6)
                for key in ("image", "state"):
                    obs = ep.obs[key][()]
                    np.testing.assert_array_equal(g["obs"][key][()], obs)
                    np.testing.assert_array_equal(g["next_obs"][key][:-1], obs[1:])
                    np.testing.assert_array_equal(g["next_obs"][key][-1], obs[-1])  # no frame after the last step
                np.testing.assert_array_equal(g["actions"][()], ep.actions)  # as recorded, not clipped
                np.testing.assert_array_equal(g["dones"][()], np.eye(t, dtype=np.uint8)[-1])
                np.testing.assert_array_equal(g["reward_labels/likelihood/reward"][()], label)
    # the converted file reads as a robomimic file again (our reader, version 0)
    with Dataset(out) as back:
        assert back.format_version == 0 and back.image_key == "image" and len(back) == 6
        assert back.verify()["episodes"] == 6


def test_robomimic_input_keeps_its_next_obs_states_masks_and_env_meta(tmp_path, capsys):
    src = write_robomimic_source(tmp_path / "lift.hdf5")
    out = tmp_path / "out.hdf5"
    rc, _, err = run(capsys, "convert", src, "--to", "robomimic", "--reward", "sparse", "--beta", "3", "--out", out)
    assert rc == 0, err
    with h5py.File(out, "r") as f, h5py.File(src, "r") as s:
        assert json.loads(f["data"].attrs["env_args"])["type"] == 1  # robomimic's own metadata stays
        for key in ("train", "valid"):
            np.testing.assert_array_equal(f["mask"][key][()], s["mask"][key][()])
        for name in ("demo_0", "demo_1", "demo_3"):
            for path in ("next_obs/agentview_image", "next_obs/robot0_eef_pos", "states", "obs/robot0_eef_pos"):
                np.testing.assert_array_equal(f["data"][name][path][()], s["data"][name][path][()])
            np.testing.assert_allclose(f["data"][name]["rewards"][()], 3 * s["data"][name]["rewards"][()])


def test_relabel_of_a_robomimic_file_keeps_next_obs_states_and_masks(tmp_path, capsys):
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats("Lift", "entropy", 9, 1, mean=-400.0, std=20.0)
    model_path = model.save(tmp_path / "tiny.safetensors")
    src = write_robomimic_source(tmp_path / "lift.hdf5")
    labelled = tmp_path / "labelled.hdf5"
    rc, _, err = run(capsys, "relabel", "--model", model_path, "--input", src, "--out", labelled, "--task", "Lift",
                     "--reward-type", "entropy")
    assert rc == 0, err
    with Dataset(labelled) as out, h5py.File(src, "r") as s:
        assert out.masks["train"] == ["demo_0", "demo_1"] and out.masks["valid"] == ["demo_2"]  # demo_3 -> demo_2
        out.verify()
        for new, old in (("demo_0", "demo_0"), ("demo_1", "demo_1"), ("demo_2", "demo_3")):
            with out.episode(new) as ep:
                g, o = ep.group, s["data"][old]
                assert ep.attrs["source_episode"] == old
                np.testing.assert_array_equal(g["next_obs/image"][()], o["next_obs/agentview_image"][()])
                np.testing.assert_array_equal(g["next_obs/robot0_eef_pos"][()], o["next_obs/robot0_eef_pos"][()])
                np.testing.assert_array_equal(g["states"][()], o["states"][()])
    # and a robomimic file made from the labelled one keeps the source's true last next_obs (not obs repeated)
    out = tmp_path / "robomimic.hdf5"
    rc, _, err = run(capsys, "convert", labelled, "--to", "robomimic", "--reward", "entropy", "--out", out)
    assert rc == 0, err
    with h5py.File(out, "r") as f, h5py.File(src, "r") as s:
        last = f["data/demo_2/next_obs/image"][-1]
        np.testing.assert_array_equal(last, s["data/demo_3/next_obs/agentview_image"][-1])
        assert not np.array_equal(last, f["data/demo_2/obs/image"][-1])
        assert [n.decode() for n in f["mask/valid"][()]] == ["demo_2"]


BLOCK_OUR_PACKAGE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "diffusion_reward":
            raise ImportError("diffusion_reward must not be needed to load the file")
sys.meta_path.insert(0, Block())
import d3rlpy, numpy as np
from d3rlpy.dataset import InfiniteBuffer, ReplayBuffer
with open(sys.argv[1], "rb") as f:
    buffer = ReplayBuffer.load(f, InfiniteBuffer())
ep = buffer.episodes[0]
obs = ep.observations
print({"episodes": len(buffer.episodes), "transitions": buffer.transition_count,
       "obs": [list(o.shape) for o in obs] if isinstance(obs, list) else list(obs.shape),
       "rewards0": ep.rewards[:, 0].tolist(), "terminated": [bool(e.terminated) for e in buffer.episodes],
       "continuous": buffer.dataset_info.action_space == d3rlpy.constants.ActionSpace.CONTINUOUS,
       "loaded": sorted(m for m in sys.modules if m.startswith("diffusion_reward"))})
"""


@pytest.mark.parametrize("obs,frame_stack,shape", [  # the image + state layout in the slow tier
    ("state", 1, [12, 39]), pytest.param("both", 2, [[12, 6, 64, 64], [12, 39]], marks=pytest.mark.slow)])
def test_d3rlpy_file_loads_with_plain_d3rlpy(tmp_path, capsys, labelled, obs, frame_stack, shape):
    out = tmp_path / "dataset.h5"
    rc, _, err = run(capsys, "convert", labelled, "--to", "d3rlpy", "--obs", obs, "--frame-stack", frame_stack,
                     "--alpha", "0.5", "--out", out)
    assert rc == 0, err
    proc = subprocess.run([sys.executable, "-c", BLOCK_OUR_PACKAGE, str(out)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = eval(proc.stdout.strip().splitlines()[-1])  # the dict printed above: literals only
    assert got["loaded"] == [] and got["continuous"]
    assert got["episodes"] == 6 and got["transitions"] == 72 - 3  # 3 time-limit ends have no last transition
    assert got["obs"] == shape and got["terminated"] == [True, False] * 3
    with Dataset(labelled) as src, src[0] as ep:
        expected = 0.5 * ep.reward_labels["likelihood"]["datasets"]["reward"] + ep.rewards
    np.testing.assert_allclose(got["rewards0"], expected, rtol=1e-6)
    with h5py.File(out, "r") as f:
        info = json.loads(f.attrs["diffusion_reward"])
        assert info["mdp"]["label"] == "likelihood" and info["alpha"] == 0.5 and "ReplayBuffer.load" in info["load"]


@pytest.mark.parametrize("args,message", [
    (["--to", "robomimic", "--reward", "entropy"], "has no reward label for --reward entropy"),
    (["--to", "rlds"], "argument --to: invalid choice"),
    (["--to", "robomimic", "--alpha", "1.5"], "alpha must be"),
    (["--to", "robomimic", "--valid-fraction", "1"], "--valid-fraction must be below 1"),
    (["--to", "lerobot", "--fps", "0"], "--fps must be a whole number >= 1, got 0"),
])
def test_bad_conversions_are_one_error_line_and_write_nothing(tmp_path, capsys, labelled, args, message):
    out = tmp_path / "out.hdf5"
    rc, _, err = run(capsys, "convert", labelled, *args, "--out", out)
    assert rc == 2 and err.count("error:") == 1 and message in err, err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_existing_output_needs_force_and_input_is_never_the_output(tmp_path, capsys, labelled):
    out = tmp_path / "out.hdf5"
    out.write_bytes(b"earlier")
    rc, _, err = run(capsys, "convert", labelled, "--to", "robomimic", "--out", out)
    assert rc == 2 and "already exists; pass --force" in err and out.read_bytes() == b"earlier"
    rc, _, err = run(capsys, "convert", labelled, "--to", "robomimic", "--out", out, "--force")
    assert rc == 0 and h5py.is_hdf5(out)
    before = tree_hash(labelled)
    rc, _, err = run(capsys, "convert", labelled, "--to", "robomimic", "--out", labelled, "--force")
    assert rc == 2 and "would write into" in err and tree_hash(labelled) == before
    rc, _, err = run(capsys, "convert", tmp_path / "missing.hdf5", "--to", "d3rlpy", "--out", tmp_path / "d.h5")
    assert rc == 2 and err.count("error:") == 1 and "missing.hdf5 is not a dataset file (it does not exist)" in err


def test_minari_dataset_keeps_every_step_and_loads_with_minari(tmp_path, capsys, labelled, monkeypatch):
    import minari

    out = tmp_path / "diffusion_reward" / "button-v0"
    rc, stdout, err = run(capsys, "convert", labelled, "--to", "minari", "--alpha", "0.5", "--out", out)
    assert rc == 0, err
    assert "dataset_id diffusion_reward/button-v0" in stdout
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset = minari.load_dataset("diffusion_reward/button-v0")
    assert dataset.total_episodes == 6 and dataset.total_steps == 72
    assert dataset.observation_space["image"].shape == (64, 64, 3) and dataset.action_space.shape == (4,)
    episodes = list(dataset.iterate_episodes())
    metadata = list(dataset.storage.get_episode_metadata(range(6)))
    with Dataset(labelled) as src:
        for e, (episode, name) in enumerate(zip(episodes, src.episode_names)):
            with src.episode(name) as ep:
                t = ep.num_samples
                assert len(episode) == t and len(episode.actions) == t  # no step lost
                for key in ("image", "state"):
                    obs = ep.obs[key][()]
                    assert episode.observations[key].shape == (t + 1, *obs.shape[1:])
                    np.testing.assert_array_equal(episode.observations[key][:t], obs)
                    np.testing.assert_array_equal(episode.observations[key][t], obs[-1])
                np.testing.assert_array_equal(episode.actions, ep.actions)
                label = ep.reward_labels["likelihood"]["datasets"]["reward"]
                np.testing.assert_allclose(episode.rewards, 0.5 * label + ep.rewards, rtol=1e-6)
                success_end = e % 2 == 0  # write_dataset: even episodes succeed on their last step
                assert episode.terminations.tolist() == [False] * (t - 1) + [success_end]
                assert episode.truncations.tolist() == [False] * (t - 1) + [not success_end]
                assert episode.infos["success"].tolist() == [False] + (ep.rewards > 0).tolist()
                assert metadata[e]["seed"] == 100 + e


def test_minari_last_observation_is_a_robomimic_inputs_next_obs(tmp_path, capsys):
    import minari

    src = write_robomimic_source(tmp_path / "lift.hdf5")
    out = tmp_path / "lift-v1"
    rc, _, err = run(capsys, "convert", src, "--to", "minari", "--reward", "sparse", "--out", out)
    assert rc == 0, err
    dataset = minari.MinariDataset(out / "data")
    assert dataset.spec.dataset_id == "diffusion_reward/lift-v1"
    with h5py.File(src, "r") as s:
        for episode, name in zip(dataset.iterate_episodes(), ("demo_0", "demo_1", "demo_3")):
            images = episode.observations["agentview_image"]
            np.testing.assert_array_equal(images[:-1], s["data"][name]["obs/agentview_image"][()])
            np.testing.assert_array_equal(images[-1], s["data"][name]["next_obs/agentview_image"][-1])


def test_force_never_removes_a_folder_that_holds_the_input(tmp_path, capsys):
    folder = tmp_path / "data"
    labelled = write_dataset(folder / "labelled.hdf5", episodes=2, steps=5, labels=("likelihood",))
    before = tree_hash(labelled)
    rc, _, err = run(capsys, "convert", labelled, "--to", "minari", "--out", folder, "--force")
    assert rc == 2 and err.count("error:") == 1 and "holds the input" in err, err
    assert tree_hash(labelled) == before
    rc, _, err = run(capsys, "convert", labelled, "--to", "minari", "--out", tmp_path / "m-v0")
    assert rc == 0, err
    rc, _, err = run(capsys, "convert", labelled, "--to", "minari", "--out", tmp_path / "m-v0", "--force")
    assert rc == 0 and sorted(p.name for p in (tmp_path / "m-v0" / "data").iterdir()) == ["main_data.hdf5",
                                                                                         "metadata.json"]
