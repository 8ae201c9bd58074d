"""`diffusion-reward relabel` end to end with a random-weight tiny model, through the real CLI."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin
from rosbags.typesys import Stores, get_typestore
from test_sources_files import read_episodes, write_png_folder
from test_sources_rosbag import bag_messages, make_frames, write_bag

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset, DatasetWriter
from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.reward import ChunkedScore, RewardScorer, ScoreConfig

TASK = "button-press-v3"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = RewardModel.from_preset("tiny", seed=0)
    for skip in (9, 49):
        model.set_stats(TASK, "entropy", skip, 1, mean=-400.0, std=20.0)
    return model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def write_source(path, episodes=2, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    with DatasetWriter(path, env_args={"task": TASK, "image_size": 64, "camera": "corner"}) as w:
        for _ in range(episodes):
            w.write_episode(obs={"image": rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8),
                                 "state": rng.normal(size=(steps, 4)).astype(np.float32)},
                            actions=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
                            rewards=np.eye(steps, dtype=np.float32)[-1], success=True)
    return path


def tree_hash(path):
    """Hash of every file under a dataset (index + episode files) or a bag directory."""
    files = [path] if path.is_file() else []
    files += sorted(p for p in path.parent.glob(path.name + "*/**/*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()


def relabel(capsys, *args):
    rc = main(["relabel", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def direct_scores(model_path, frames, resize=False, seed=0, skip=9):
    model = RewardModel.load(model_path)
    scorer = RewardScorer(model, ScoreConfig(task=TASK, seed=seed, skip_step=skip, resize=resize))
    return scorer.score_episode(frames)


def test_dtype_auto_is_recorded_as_the_precision_it_ran_in(tmp_path, capsys, model_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"architecture": "x86_64", "avx2": True})
    src = write_source(tmp_path / "src.hdf5", episodes=1)
    rc, _, err = relabel(capsys, "--model", model_path, "--input", src, "--out", tmp_path / "out.hdf5",
                         "--dtype", "auto")
    assert rc == 0, err
    with Dataset(tmp_path / "out.hdf5") as ds:
        assert ds[0].reward_labels["entropy"]["attrs"]["dtype"] == "float32"  # no native bf16 on this "CPU"


def test_hdf5_relabel_equals_direct_scoring(tmp_path, capsys, model_path):
    src = write_source(tmp_path / "src.hdf5")
    before = tree_hash(src)
    rc, out, err = relabel(capsys, "--model", model_path, "--input", src, "--out", tmp_path / "out.hdf5",
                           "--seed", 3)
    assert rc == 0, err
    assert "relabelled 2 episode(s), 12 frames" in out
    assert tree_hash(src) == before  # source untouched
    with Dataset(src) as s, Dataset(tmp_path / "out.hdf5") as ds:
        assert ds.env_args["task"] == TASK and ds.env_args["camera"] == "corner" and len(ds) == 2
        for src_ep, ep in zip(s, ds):
            frames = src_ep.obs["image"][()]
            expected = direct_scores(model_path, frames, seed=3)
            label = ep.reward_labels["entropy"]
            np.testing.assert_array_equal(label["datasets"]["raw"], expected.raw)
            np.testing.assert_array_equal(label["datasets"]["reward"], expected.reward)
            np.testing.assert_allclose(expected.reward, (expected.raw + 400.0) / 20.0, rtol=1e-5)
            np.testing.assert_array_equal(label["datasets"]["sparse"], src_ep.rewards)
            np.testing.assert_array_equal(ep.rewards, src_ep.rewards)
            np.testing.assert_array_equal(ep.obs["image"][()], frames)
            np.testing.assert_array_equal(ep.obs["state"][()], src_ep.obs["state"][()])
            np.testing.assert_array_equal(ep.actions, src_ep.actions)
            assert "image_full" not in ep.obs and ep.success
            attrs = label["attrs"]
            assert attrs["model_hash"] == RewardModel.load(model_path).weights_hash
            assert (attrs["reward_type"], attrs["skip_step"], attrs["num_samples"], attrs["noise"], attrs["seed"]) == \
                ("entropy", 9, 1, True, 3)
            assert (attrs["task"], attrs["stats"], attrs["source"]) == (TASK, {"mean": -400.0, "std": 20.0}, "relabel")
            assert "transition that starts at frame i" in attrs["alignment"] and attrs["software_version"]
            assert attrs["source_path"] == str(src.resolve()) and attrs["source_kind"] == "hdf5"
            assert ep.attrs["source_episode"] == src_ep.name


def test_resume_skips_labelled_and_refuses_other_settings(tmp_path, capsys, model_path):
    src = write_source(tmp_path / "src.hdf5", episodes=1)
    out = tmp_path / "out.hdf5"
    assert relabel(capsys, "--model", model_path, "--input", src, "--out", out)[0] == 0
    write_source(src, episodes=1, seed=1)  # the source grew by one episode since
    rc, stdout, err = relabel(capsys, "--model", model_path, "--input", src, "--out", out, "--resume")
    assert rc == 0, err
    assert "relabelled 1 episode(s)" in stdout and "skipped 1 already labelled" in stdout
    with Dataset(out) as ds:
        assert [ep.attrs["source_episode"] for ep in ds] == ["demo_0", "demo_1"]
    labelled = tree_hash(out)
    rc, _, err = relabel(capsys, "--model", model_path, "--input", src, "--out", out, "--resume",
                         "--skip-step", 49)
    assert rc == 2 and err.count("\n") == 1 and "different settings (skip_step: 9 -> 49)" in err
    assert tree_hash(out) == labelled


def test_bag_relabel_with_resize(tmp_path, capsys, model_path):
    ts = get_typestore(Stores.ROS2_JAZZY)
    frames = make_frames(5, height=60, width=80)
    bag = write_bag(tmp_path / "ep_001", bag_messages(ts, frames, "bgr8", 4), ts, StoragePlugin.MCAP, 9)
    before = tree_hash(bag)
    out = tmp_path / "robot.hdf5"
    rc, _, err = relabel(capsys, "--model", model_path, "--input", bag, "--out", out, "--task", TASK)
    assert rc == 2 and err.startswith("error: episode ep_001: frames must have shape (T, 64, 64, 3)")
    assert "--resize" in err and not out.exists()
    rc, _, err = relabel(capsys, "--model", model_path, "--input", bag, "--out", out, "--resize")
    assert rc == 0, err
    assert tree_hash(bag) == before
    [source_ep] = read_episodes(bag)
    expected = direct_scores(model_path, source_ep.frames, resize=True)
    with Dataset(out) as ds:
        [ep] = list(ds)
        assert ep.obs["image"].shape == (11, 64, 64, 3) and ep.obs["image_full"].shape == (11, 60, 80, 3)
        np.testing.assert_array_equal(ep.obs["image_full"][()], source_ep.frames)
        np.testing.assert_array_equal(ep.reward_labels["entropy"]["datasets"]["reward"], expected.reward)
        np.testing.assert_array_equal(ep.obs["state"][()], source_ep.obs["state"])
        np.testing.assert_array_equal(ep.actions, source_ep.actions)
        np.testing.assert_array_equal(ep.timestamps, source_ep.timestamps)
        np.testing.assert_array_equal(ep.stamps["state"], source_ep.stamps["state"])
        assert ep.attrs["sync"]["dropped"] == {"stale_image": 1}  # the camera's repeat of frame 8
        assert ep.reward_labels["entropy"]["attrs"]["resize"] is True
        assert ds.env_args["camera"] == "/camera/camera/color/image_raw"


def test_score_reads_a_bag_as_relabel_does(tmp_path, capsys, model_path):
    """`score --data` takes every recording kind relabel reads, with the same recording options."""
    ts = get_typestore(Stores.ROS2_JAZZY)
    frames = make_frames(5, height=60, width=80)
    bag = write_bag(tmp_path / "ep_001", bag_messages(ts, frames, "bgr8", 4), ts, StoragePlugin.MCAP, 9)
    [source_ep] = read_episodes(bag)
    one = tmp_path / "ep.npy"
    assert main(["score", "--model", str(model_path), "--data", str(bag), "--task", TASK, "--resize", "--episode",
                 "0", "--out", str(one)]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(one), direct_scores(model_path, source_ep.frames, resize=True).reward)
    every = tmp_path / "all.npz"  # every episode, resampled with --rate as relabel would
    assert main(["score", "--model", str(model_path), "--data", str(bag), "--task", TASK, "--resize", "--rate", "5",
                 "--out", str(every)]) == 0, capsys.readouterr().err
    [resampled] = read_episodes(bag, rate_hz=5.0)
    with np.load(every) as scores:
        assert list(scores) == ["ep_001"]
        np.testing.assert_array_equal(scores["ep_001"], direct_scores(model_path, resampled.frames, resize=True).reward)
    assert main(["score", "--model", str(model_path), "--data", str(bag), "--task", TASK, "--out",
                 str(tmp_path / "no_resize.npy"), "--episode", "ep_001"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--resize" in err and "`" not in err, err  # the CLI names its flags


def test_png_folders_take_the_task_from_the_folder(tmp_path, capsys, model_path):
    videos = write_png_folder(tmp_path / "video_dataset", episodes=1)
    rc, out, err = relabel(capsys, "--model", model_path, "--input", tmp_path / "video_dataset",
                           "--out", tmp_path / "out.hdf5", "--no-noise")
    assert rc == 0, err
    with Dataset(tmp_path / "out.hdf5") as ds:
        assert ds.env_args["task"] == TASK and len(ds) == len(videos)
        for ep in ds:
            video = videos[ep.attrs["source_episode"]]
            expected = RewardScorer(RewardModel.load(model_path), ScoreConfig(task=TASK, noise=False)).score_episode(video)
            np.testing.assert_array_equal(ep.reward_labels["entropy"]["datasets"]["reward"], expected.reward)
            assert ep.reward_labels["entropy"]["attrs"]["noise"] is False and ep.actions is None


@pytest.mark.parametrize("case", ["out_is_in", "out_exists", "no_stats", "missing_topic", "unknown_encoding"])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, model_path, case):
    src = write_source(tmp_path / "src.hdf5", episodes=1, steps=2)
    out = tmp_path / "out.hdf5"
    args = ["--model", model_path, "--input", src, "--out", out]
    expected = {"out_is_in": "would write into --input", "out_exists": "already exists; pass --resume",
                "no_stats": "`diffusion-reward stats --model", "missing_topic": "has no topic '/nope'; topics: ",
                "unknown_encoding": "unsupported image encoding 'yuv422'"}[case]
    if case == "out_is_in":
        args[-1] = src
    elif case == "out_exists":
        out.write_bytes(b"keep me")
    elif case == "no_stats":
        args += ["--task", "door-open-v3"]
    else:
        ts = get_typestore(Stores.ROS2_HUMBLE)
        encoding = "yuv422" if case == "unknown_encoding" else "rgb8"
        args[3] = write_bag(tmp_path / "bag", bag_messages(ts, make_frames(), encoding), ts)
        args += ["--task", TASK] + (["--image-topic", "/nope"] if case == "missing_topic" else [])
    before = tree_hash(src)
    rc, stdout, err = relabel(capsys, *args)
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
    assert tree_hash(src) == before
    assert (out.read_bytes() == b"keep me") if case == "out_exists" else not out.exists()
    if case == "missing_topic":
        assert "/franka/joint_states (sensor_msgs/msg/JointState)" in err


def nan_on_the_second_episode(monkeypatch, row: int):
    """Make the model give NaN at `row` of the second episode it scores; returns the real
    `ChunkedScore.finish` (short episodes: every row comes out when the episode is finished)."""
    real = ChunkedScore.finish
    calls = []

    def second_is_nan(self):
        result = real(self)
        calls.append(1)
        if len(calls) == 2:
            result.raw[row] = np.nan
        return result

    monkeypatch.setattr(ChunkedScore, "finish", second_is_nan)
    return real


def test_nan_rewards_are_never_written(tmp_path, capsys, model_path, monkeypatch):
    """A model that gives NaN on the second episode: one error line, the first episode stays labelled."""
    nan_on_the_second_episode(monkeypatch, row=2)
    src = write_source(tmp_path / "src.hdf5", episodes=2)
    rc, _, err = relabel(capsys, "--model", model_path, "--input", src, "--out", tmp_path / "out.hdf5")
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after the progress bar
    assert rc == 2 and len(errors) == 1 and "demo_1: the model gave NaN / infinite rewards" in errors[0], err
    with Dataset(tmp_path / "out.hdf5") as ds:
        assert len(ds) == 1 and np.isfinite(ds[0].reward_labels["entropy"]["datasets"]["raw"]).all()


def test_a_stopped_relabel_is_marked_incomplete_until_resumed(tmp_path, capsys, model_path, monkeypatch):
    """Stopped by a bad episode: `info` marks the output, `info --verify` and `train-policy` refuse it with the
    resume hint; `relabel --resume` finishes the job and clears the mark."""
    real = nan_on_the_second_episode(monkeypatch, row=0)
    src, out = write_source(tmp_path / "src.hdf5", episodes=3), tmp_path / "out.hdf5"
    assert relabel(capsys, "--model", model_path, "--input", src, "--out", out)[0] == 2
    with Dataset(out) as ds:
        assert len(ds) == 1 and ds.incomplete["job"] == "relabel"
    assert main(["info", str(out)]) == 0 and "INCOMPLETE" in capsys.readouterr().out
    for argv in (["info", str(out), "--verify"], ["train-policy", "--data", str(out), "--out", str(tmp_path / "p")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is incomplete" in err and "relabel" in err and "--resume" in err, err
    monkeypatch.setattr(ChunkedScore, "finish", real)
    rc, _, err = relabel(capsys, "--model", model_path, "--input", src, "--out", out, "--resume")
    assert rc == 0, err
    with Dataset(out) as ds:
        assert len(ds) == 3 and ds.incomplete is None
        ds.verify()


@pytest.mark.slow  # relabels a dataset twice with a real kill in between
def test_sigkill_during_relabel_leaves_an_incomplete_output_that_resume_finishes(tmp_path, model_path):
    """A real relabel process killed once its first episode is committed: nothing committed is lost, the output
    is marked incomplete, and the resumed run labels exactly what one uninterrupted run would."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src, out = write_source(tmp_path / "src.hdf5", episodes=12, steps=24), tmp_path / "out.hdf5"
    argv = [sys.executable, "-m", "diffusion_reward", "relabel", "--model", str(model_path), "--input", str(src),
            "--out", str(out)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300  # generous: only a hung child reaches it
    def committed() -> int:  # episodes the index links (a reader never disturbs the writer)
        try:
            with Dataset(out) as ds:
                return len(ds)
        except UserError:  # the index does not exist yet (or is not yet a whole HDF5 file)
            return 0

    while committed() == 0:
        assert child.poll() is None and time.monotonic() < deadline, "relabel ended before its first commit"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    with Dataset(out) as ds:
        assert 1 <= len(ds) < 12 and ds.incomplete is not None
        kept = {ep.name: np.asarray(ep.reward_labels["entropy"]["datasets"]["raw"]) for ep in ds}
    assert subprocess.run(argv + ["--resume"], capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
                          ).returncode == 0
    with Dataset(out) as ds, Dataset(src) as source:
        assert len(ds) == 12 and ds.incomplete is None
        ds.verify()
        for name, raw in kept.items():
            np.testing.assert_array_equal(ds.episode(name).reward_labels["entropy"]["datasets"]["raw"], raw)
        by_source = {ep.attrs["source_episode"]: ep.reward_labels["entropy"]["datasets"]["raw"][()] for ep in ds}
        for ep in source:
            np.testing.assert_allclose(by_source[ep.name], direct_scores(model_path, ep.obs["image"][()]).raw,
                                       atol=1e-4)
