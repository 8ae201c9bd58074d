"""Episode dataset: writer/reader round trip, append, lazy reading, robomimic files, bad input, verify."""
import json
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_reward.data import FORMAT_VERSION, Dataset, DatasetWriter
from diffusion_reward.errors import UserError

ENV_ARGS = {"task": "button-press-v3", "camera": "corner", "image_size": 16, "action_repeat": 2, "seed": 0}


def make_episode(rng, steps=6, size=16):
    return {
        "obs": {"image": rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8),
                "state": rng.normal(size=(steps, 5)).astype(np.float32)},
        "actions": rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
        "rewards": (np.arange(steps) == steps - 1).astype(np.float32),
        "dones": (np.arange(steps) == steps - 1),
        "timestamps": 100.0 + 0.05 * np.arange(steps),
    }


def record(writer, episode, success, **end_kwargs):
    """Write `episode` step by step through the streaming API."""
    stream = writer.begin_episode()
    for t in range(len(episode["actions"])):
        stream.add_step(obs={k: v[t] for k, v in episode["obs"].items()}, action=episode["actions"][t],
                        reward=episode["rewards"][t], done=episode["dones"][t], timestamp=episode["timestamps"][t],
                        stamps={"camera": episode["timestamps"][t] - 0.01})
    return writer.end_episode(stream, success=success, **end_kwargs)


def assert_episode_equal(ep, expected):
    for key, value in expected["obs"].items():
        np.testing.assert_array_equal(ep.obs[key][()], value)
    np.testing.assert_array_equal(ep.actions, expected["actions"])
    np.testing.assert_array_equal(ep.rewards, expected["rewards"])
    np.testing.assert_array_equal(ep.dones, expected["dones"].astype(np.uint8))
    np.testing.assert_array_equal(ep.timestamps, expected["timestamps"])
    assert ep.num_samples == len(expected["actions"])


def test_round_trip_streamed_and_whole_episodes(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [make_episode(rng, steps=s) for s in (5, 40, 7)]
    path = tmp_path / "runs" / "d.hdf5"  # parent folder is created
    provenance = {"model_hash": "abc123", "reward_type": "entropy", "skip_step": 9,
                  "stats": {"mean": -174.8, "std": 31.4}, "alignment": "row i scores frames i -> i+1"}
    with DatasetWriter(path, env_args=ENV_ARGS, flush_every=8) as writer:
        assert record(writer, episodes[0], success=True, attrs={"operator": "a", "seeds": [1, 2]}) == "demo_0"
        assert record(writer, episodes[1], success=False) == "demo_1"
        label = rng.normal(size=7).astype(np.float32)
        name = writer.write_episode(**episodes[2], success=True,
                                    extra={"reward_labels/entropy/reward": label},
                                    extra_attrs={"reward_labels/entropy": provenance})
        assert name == "demo_2"
    with Dataset(path) as ds:
        assert len(ds) == 3 and ds.episode_names == ["demo_0", "demo_1", "demo_2"]
        assert ds.image_key == "image"
        assert ds.env_args["task"] == "button-press-v3" and ds.env_args["software_version"]
        assert ds.obs_keys == {"image": {"shape": [16, 16, 3], "dtype": "uint8"},
                               "state": {"shape": [5], "dtype": "float32"}}
        for ep, expected in zip(ds, episodes):
            assert_episode_equal(ep, expected)
        assert [ep.success for ep in ds] == [True, False, True]
        np.testing.assert_allclose(ds[0].stamps["camera"], episodes[0]["timestamps"] - 0.01)
        assert ds[0].attrs["operator"] == "a" and ds[0].attrs["seeds"] == [1, 2]
        labels = ds["demo_2"].reward_labels
        np.testing.assert_array_equal(labels["entropy"]["datasets"]["reward"], label)
        assert labels["entropy"]["attrs"] == provenance
        assert ds.masks["success"] == ["demo_0", "demo_2"]
        summary = ds.verify()
    assert summary["episodes"] == 3 and summary["frames"] == 52
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["reward_labels"] == {"entropy": 1}


def test_plain_h5py_reads_through_the_index(tmp_path):
    rng = np.random.default_rng(1)
    episode = make_episode(rng)
    with DatasetWriter(tmp_path / "d.hdf5", env_args=ENV_ARGS) as writer:
        writer.write_episode(**episode, success=True)
    with h5py.File(tmp_path / "d.hdf5", "r") as f:  # what any robomimic-style reader does
        np.testing.assert_array_equal(f["data/demo_0/obs/image"][()], episode["obs"]["image"])
        assert f["data/demo_0"].attrs["num_samples"] == 6
        assert f["data"].attrs["total"] == 6
        assert json.loads(f["data"].attrs["env_args"])["image_size"] == 16
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert list(f["mask/success"][()]) == [b"demo_0"]


def test_reader_is_lazy(tmp_path):
    rng = np.random.default_rng(2)
    with DatasetWriter(tmp_path / "d.hdf5", env_args=ENV_ARGS) as writer:
        writer.write_episode(**make_episode(rng, steps=30))
    with Dataset(tmp_path / "d.hdf5") as ds:
        ep = ds[0]
        image = ep.obs["image"]
        assert isinstance(image, h5py.Dataset)  # not loaded: sliced on demand
        assert image.chunks == (1, 16, 16, 3) and image.compression == "lzf"
        assert image[10:12].shape == (2, 16, 16, 3)
        # copying into a new dataset (what relabelling does) streams from the h5py dataset in slabs
        with DatasetWriter(tmp_path / "copy.hdf5", env_args=ENV_ARGS) as writer:
            writer.write_episode(obs={"image": image}, actions=ep.actions, extra={"reward_labels/x/reward": ep.rewards})
    with Dataset(tmp_path / "copy.hdf5") as copy, Dataset(tmp_path / "d.hdf5") as ds:
        np.testing.assert_array_equal(copy[0].obs["image"][()], ds[0].obs["image"][()])


def test_append_continues_numbering_and_keeps_masks(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "d.hdf5"
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        for _ in range(4):
            writer.write_episode(**make_episode(rng), success=True)
        writer.split_train_valid(valid_fraction=0.25, seed=0)
        first_split = (writer._masks["train"], writer._masks["valid"])
    # same seed -> same split; a different session seed is allowed, the task is not
    with DatasetWriter(path, env_args={**ENV_ARGS, "seed": 7}) as writer:
        assert writer.env_args["seed"] == 0  # the dataset keeps its creation env_args
        assert writer.write_episode(**make_episode(rng)) == "demo_4"
        writer.split_train_valid(valid_fraction=0.25, seed=0)
    with Dataset(path) as ds:
        assert ds[0].attrs["env_args"]["seed"] == 0 and ds[4].attrs["env_args"]["seed"] == 7
        assert len(ds) == 5 and ds.masks["success"] == ["demo_0", "demo_1", "demo_2", "demo_3"]
        assert len(ds.masks["valid"]) == 1 and len(ds.masks["train"]) == 4
        assert first_split[1][0] in ds.episode_names
        ds.verify()
    with DatasetWriter(path) as writer:  # env_args may be omitted when appending
        assert writer.episode_names[-1] == "demo_4"


@pytest.mark.parametrize("key,value", [("task", "door-open-v3"), ("image_size", 64), ("image_key", "rgb")])
def test_append_with_incompatible_env_args_is_refused(tmp_path, key, value):
    path = tmp_path / "d.hdf5"
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        writer.write_episode(**make_episode(np.random.default_rng(4)))
    before = path.read_bytes()
    with pytest.raises(UserError, match=key):
        DatasetWriter(path, env_args={**ENV_ARGS, key: value})
    assert path.read_bytes() == before


def test_second_writer_is_refused_while_first_is_open(tmp_path):
    path = tmp_path / "d.hdf5"
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        with pytest.raises(UserError, match="another process"):
            DatasetWriter(path)
        writer.begin_episode()
        with Dataset(path) as ds:  # reading while recording: the open episode is in progress, not interrupted
            assert ds.recording and ds.interrupted == [] and len(ds) == 0
    with Dataset(path) as ds:
        assert not ds.recording and len(ds.interrupted) == 1


def test_close_with_open_episode_moves_it_aside(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "d.hdf5"
    episode = make_episode(rng)
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        writer.write_episode(**episode)
        stream = writer.begin_episode()
        stream.add_step(obs={k: v[0] for k, v in episode["obs"].items()}, action=episode["actions"][0])
    assert [p.name.split(".")[0] for p in writer.interrupted] == ["demo_1"]
    with Dataset(path) as ds:
        assert len(ds) == 1
        assert len(ds.interrupted) == 1 and "interrupted/demo_1.h5.partial" in ds.interrupted[0]
    with DatasetWriter(path) as writer:
        stream = writer.begin_episode()
        writer.discard_episode(stream)
        assert not stream.partial_path.exists()
        assert writer.write_episode(**episode) == "demo_1"


def test_robomimic_file_from_others_is_readable(tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "robomimic.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for i, steps in enumerate((9, 4)):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = steps
            demo["obs/robot0_eef_pos"] = rng.normal(size=(steps, 3))
            demo["obs/agentview_image"] = rng.integers(0, 256, (steps, 12, 12, 3), dtype=np.uint8)
            demo["actions"] = rng.normal(size=(steps, 7))
            demo["rewards"] = np.zeros(steps)
            demo["dones"] = np.zeros(steps, dtype=np.int64)
        data.attrs["total"] = 13
        f["mask/train"] = np.array([b"demo_0"])
    with Dataset(path) as ds:
        assert ds.format_version == 0 and ds.image_key == "agentview_image"
        assert ds.episode_names == ["demo_0", "demo_1"] and ds[1].num_samples == 4
        assert ds[0].success is None and ds[0].timestamps is None
        summary = ds.verify()
        assert summary["frames"] == 13 and summary["success_rate"] is None
        assert summary["env_args"]["env_name"] == "Lift"
    with pytest.raises(UserError, match="not a diffusion_reward dataset"):
        DatasetWriter(path)


def test_export_to_single_file(tmp_path):
    rng = np.random.default_rng(7)
    episodes = [make_episode(rng) for _ in range(2)]
    with DatasetWriter(tmp_path / "d.hdf5", env_args=ENV_ARGS) as writer:
        for episode in episodes:
            writer.write_episode(**episode, success=True)
    with Dataset(tmp_path / "d.hdf5") as ds:
        out = ds.export(tmp_path / "single.hdf5")
        with pytest.raises(UserError, match="already exists"):
            ds.export(out)
    with h5py.File(out, "r") as f:
        assert isinstance(f["data"].get("demo_0", getlink=True), h5py.HardLink)
    with Dataset(out) as single:
        assert single.layout == "single"
        for ep, expected in zip(single, episodes):
            assert_episode_equal(ep, expected)
        single.verify()
    with pytest.raises(UserError, match="read-only"):
        DatasetWriter(out)


# -- bad input -----------------------------------------------------------------------------------


def test_not_our_files_are_refused_with_one_line(tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("hello")
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    for path in (text, other):
        before = path.read_bytes()
        with pytest.raises(UserError) as info:
            DatasetWriter(path, env_args=ENV_ARGS)
        assert "\n" not in str(info.value)
        assert path.read_bytes() == before
    with pytest.raises(UserError, match="not an HDF5 file"):
        Dataset(text)
    with pytest.raises(UserError, match="no 'data' group"):
        Dataset(other)
    with pytest.raises(UserError, match="does not exist"):
        Dataset(tmp_path / "missing.hdf5")


def test_newer_format_version_is_refused_for_reading_and_appending(tmp_path):
    path = tmp_path / "d.hdf5"
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        writer.write_episode(**make_episode(np.random.default_rng(8)))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    message = f"version {FORMAT_VERSION + 1}, newer than version {FORMAT_VERSION}"
    with pytest.raises(UserError, match=message):
        Dataset(path)
    with pytest.raises(UserError, match=message):
        DatasetWriter(path)


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create output folder"):
        DatasetWriter(blocker / "d.hdf5", env_args=ENV_ARGS)
    with pytest.raises(UserError, match="is a directory"):
        DatasetWriter(tmp_path, env_args=ENV_ARGS)


@pytest.mark.parametrize("change,match", [
    ({"image": np.zeros((8, 8, 3), np.uint8)}, "'obs/image' is uint8\\[8, 8, 3\\] but the episode started with"),
    ({"state": np.zeros(5, np.float64)}, "'obs/state' is float64"),
    ({"extra": np.zeros(2)}, "unexpected \\['obs/extra'\\]"),
])
def test_inconsistent_steps_are_refused(tmp_path, change, match):
    with DatasetWriter(tmp_path / "d.hdf5", env_args=ENV_ARGS) as writer:
        stream = writer.begin_episode()
        obs = {"image": np.zeros((16, 16, 3), np.uint8), "state": np.zeros(5, np.float32)}
        stream.add_step(obs=obs, action=np.zeros(4))
        with pytest.raises(UserError, match=match):
            stream.add_step(obs={**obs, **change}, action=np.zeros(4))
        writer.discard_episode(stream)
        assert writer.episode_names == []


def test_bad_main_image_and_lengths_are_refused(tmp_path):
    with DatasetWriter(tmp_path / "d.hdf5", env_args=ENV_ARGS) as writer:
        with pytest.raises(UserError, match="image_size is 16"):
            writer.write_episode(obs={"image": np.zeros((3, 32, 32, 3), np.uint8)})
        with pytest.raises(UserError, match="must be uint8"):
            writer.write_episode(obs={"image": np.zeros((3, 16, 16, 3), np.float32)})
        with pytest.raises(UserError, match="different lengths"):
            writer.write_episode(obs={"image": np.zeros((3, 16, 16, 3), np.uint8)}, actions=np.zeros((4, 2)))
        assert not list(writer.episodes_path.glob("*.partial"))  # failed writes leave nothing behind
        stream = writer.begin_episode()
        with pytest.raises(UserError, match="no steps"):
            writer.end_episode(stream)
        writer.discard_episode(stream)
        assert writer.episode_names == []


# -- verify --------------------------------------------------------------------------------------


def corrupt(path, edit):
    """Write a clean 2-episode dataset, then damage demo_1 with `edit(h5py group)` (simulates bugs/bit rot)."""
    rng = np.random.default_rng(9)
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        writer.write_episode(**make_episode(rng))
        writer.write_episode(**make_episode(rng), extra={"reward_labels/entropy/reward": np.zeros(6, np.float32)})
    with h5py.File(path.with_name(path.name + ".episodes") / "demo_1.h5", "r+") as f:
        edit(f)


def _replace(group, name, values):
    del group[name]
    group[name] = values


@pytest.mark.parametrize("edit,match", [
    (lambda f: _replace(f, "rewards", np.zeros(5, np.float32)), "demo_1: 'rewards' has 5 rows but 'actions' has 6"),
    (lambda f: _replace(f, "obs/state", np.zeros((7, 5), np.float32)), "demo_1: 'obs/state' has 7 rows"),
    (lambda f: f["actions"].__setitem__((3, 0), np.nan), "demo_1: actions contain NaN or inf at step 3"),
    (lambda f: f["timestamps"].__setitem__(4, 0.0), "demo_1: timestamps go backwards at step 4"),
    (lambda f: f.attrs.__setitem__("num_samples", 9), "demo_1: num_samples attribute is 9"),
    (lambda f: _replace(f, "reward_labels/entropy/reward", np.zeros(4)), "demo_1: 'reward_labels/entropy/reward'"),
])
def test_verify_names_episode_and_problem(tmp_path, edit, match):
    path = tmp_path / "d.hdf5"
    corrupt(path, edit)
    with Dataset(path) as ds:
        with pytest.raises(UserError, match=match):
            ds.verify()


def test_verify_detects_missing_episode_file_and_total_mismatch(tmp_path):
    path = tmp_path / "d.hdf5"
    corrupt(path, lambda f: None)
    with h5py.File(path, "r+") as f:
        f["data"].attrs["total"] = 99
    with Dataset(path) as ds:
        with pytest.raises(UserError, match="total attribute is 99 but the episodes hold 12"):
            ds.verify()
    (tmp_path / "d.hdf5.episodes" / "demo_0.h5").unlink()
    with Dataset(path) as ds:
        with pytest.raises(UserError, match="demo_0: episode file .*demo_0.h5 is missing"):
            ds.verify()


def test_episode_committed_but_not_indexed_is_recovered_on_append(tmp_path):
    """A kill between the episode rename and the index replace: the episode is found and linked later."""
    rng = np.random.default_rng(10)
    path = tmp_path / "d.hdf5"
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        writer.write_episode(**make_episode(rng))
        index_before_second = path.read_bytes()
        writer.write_episode(**make_episode(rng))
    path.write_bytes(index_before_second)  # the index as it was when the kill struck
    with Dataset(path) as ds:
        assert ds.episode_names == ["demo_0"] and ds.unindexed == ["demo_1"]
    with DatasetWriter(path) as writer:
        assert writer.recovered == ["demo_1"]
        assert writer.write_episode(**make_episode(rng)) == "demo_2"
    with Dataset(path) as ds:
        assert ds.episode_names == ["demo_0", "demo_1", "demo_2"] and ds.unindexed == []
        assert ds.verify()["frames"] == 18


def test_append_refused_when_index_was_moved_without_its_folder(tmp_path):
    with DatasetWriter(tmp_path / "d.hdf5", env_args=ENV_ARGS) as writer:
        writer.write_episode(**make_episode(np.random.default_rng(11)))
    moved = tmp_path / "elsewhere" / "d.hdf5"
    moved.parent.mkdir()
    moved.write_bytes((tmp_path / "d.hdf5").read_bytes())
    with pytest.raises(UserError, match="links 1 episode\\(s\\) missing .*demo_0; was the index moved"):
        DatasetWriter(moved)
    assert not (tmp_path / "elsewhere" / "d.hdf5.episodes").exists()  # nothing created or rewritten


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=3), flush_every=st.integers(1, 9),
       seed=st.integers(0, 2**16))
def test_round_trip_any_lengths_and_flush_sizes(lengths, flush_every, seed):
    """Buffer flushes at every possible boundary keep rows in order."""
    rng = np.random.default_rng(seed)
    episodes = [make_episode(rng, steps=n) for n in lengths]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.hdf5"
        with DatasetWriter(path, env_args=ENV_ARGS, flush_every=flush_every) as writer:
            for episode in episodes:
                record(writer, episode, success=False)
        with Dataset(path) as ds:
            assert ds.verify()["frames"] == sum(lengths)
            for ep, expected in zip(ds, episodes):
                with ep:
                    assert_episode_equal(ep, expected)


def test_appending_to_a_dataset_with_a_damaged_episode_warns_and_keeps_it_indexed(tmp_path):
    """A committed episode damaged on disk (here: truncated) is never silently dropped by the next writer."""
    path = tmp_path / "d.hdf5"
    corrupt(path, lambda f: None)
    damaged = tmp_path / "d.hdf5.episodes" / "demo_1.h5"
    damaged.write_bytes(damaged.read_bytes()[:600])
    with pytest.warns(UserWarning, match="committed episode demo_1 cannot be read"):
        with DatasetWriter(path) as writer:
            assert writer.damaged == ["demo_1"]
            assert writer.write_episode(**make_episode(np.random.default_rng(1))) == "demo_2"
    assert damaged.exists() and not (tmp_path / "d.hdf5.episodes" / "interrupted").exists()
    with Dataset(path) as ds:
        assert ds.episode_names == ["demo_0", "demo_1", "demo_2"]
        with pytest.raises(UserError, match="demo_1: cannot open episode file"):
            ds.verify()


def test_a_job_marks_the_dataset_incomplete_until_it_ends_even_across_appends(tmp_path):
    path = tmp_path / "d.hdf5"
    with DatasetWriter(path, env_args=ENV_ARGS) as writer:
        writer.begin_job("relabel", "diffusion-reward relabel ... --resume")
        writer.write_episode(**make_episode(np.random.default_rng(0)))
    with DatasetWriter(path) as writer:  # another writer appends: the unfinished job's mark stays
        writer.write_episode(**make_episode(np.random.default_rng(1)))
    with Dataset(path) as ds:
        assert ds.incomplete == {"job": "relabel", "resume": "diffusion-reward relabel ... --resume"}
        assert ds.summary()["incomplete"] == ds.incomplete
        with pytest.raises(UserError, match=r"is incomplete: its relabel stopped .* `diffusion-reward relabel"):
            ds.verify()
    with DatasetWriter(path) as writer:
        writer.begin_job("relabel", "again")
        writer.end_job()
    with Dataset(path) as ds:
        assert ds.incomplete is None
        ds.verify()
