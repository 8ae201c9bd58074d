"""LeRobot datasets: `relabel --input <LeRobot dir>` (HDF5 or a .parquet sidecar) and `convert --to lerobot`.

Three kinds of LeRobot folder are read: one written by LeRobot's own writer (`fixtures/lerobot/`, made by the
standalone lerobot-dataset 0.4.4, which does not install beside requirements.txt: see make_fixture.py), and v2.1
and v3.0 folders this file writes from the documented layout (data/sources/lerobot.py), with AV1 video encoded
by imageio-ffmpeg's own writer. Frames for the comparisons are decoded independently of the reader, with
imageio-ffmpeg's `read_frames` (whole files, split by episode length, no timestamps).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset, DatasetWriter
from diffusion_reward.models import RewardModel
from diffusion_reward.data.sources import detect_kind, open_source
from diffusion_reward.reward.combine import RewardMix

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot"
WRITTEN_BY_LEROBOT = FIXTURES / "v30_written_by_lerobot"
sys.path.insert(0, str(FIXTURES))
import make_fixture  # noqa: E402  (the frames and vectors that went into the fixture)

TASK = "button-press-v3"
FPS = 10
LENGTHS = (7, 5)
TOP, WRIST = "observation.images.top", "observation.images.wrist"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "likelihood", 9, 1, mean=-400.0, std=20.0)
    return model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(autouse=True)
def quiet_svt(monkeypatch):
    monkeypatch.setenv("SVT_LOG", "1")


def tree_md5(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


# --- LeRobot folders written from the documented layout -------------------------------------------------------

def episode_data(episode: int, steps: int) -> dict:
    return {"top": np.stack([make_fixture.frame("top", episode, i) for i in range(steps)]),
            "wrist": np.stack([make_fixture.frame("wrist", episode, i) for i in range(steps)]),
            "state": np.stack([make_fixture.state(episode, i) for i in range(steps)]),
            "action": np.stack([make_fixture.action(episode, i) for i in range(steps)]),
            "reward": (np.arange(steps) == steps - 1).astype(np.float32) * (episode == 0),
            "done": np.arange(steps) == steps - 1}


def encode(path: Path, frames: np.ndarray) -> None:
    """AV1 (libsvtav1, LeRobot's default) through imageio-ffmpeg's writer: not the project's encoder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=FPS, codec="libsvtav1",
                                         quality=None, macro_block_size=1, ffmpeg_log_level="error",
                                         output_params=["-g", "2", "-crf", "30", "-preset", "12"])
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def decode(path: Path) -> np.ndarray:
    """Every frame of an MP4, in order (imageio-ffmpeg's reader: no seeking, no timestamps)."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    width, height = meta["size"]
    return np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])


def png(frame: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", frame[..., ::-1])[1].tobytes()


FEATURES = {
    TOP: {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"],
          "info": {"video.height": 64, "video.width": 64, "video.codec": "av1", "video.pix_fmt": "yuv420p",
                   "video.is_depth_map": False, "video.fps": FPS, "video.channels": 3, "has_audio": False}},
    WRIST: {"dtype": "image", "shape": [3, 64, 64], "names": ["channels", "height", "width"]},
    "observation.state": {"dtype": "float32", "shape": [4], "names": None},
    "action": {"dtype": "float32", "shape": [4], "names": None},
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
    **{k: {"dtype": d, "shape": [1], "names": None} for k, d in (
        ("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
        ("task_index", "int64"))},
}


def data_table(episodes: list[dict], first_episode: int = 0, first_index: int = 0) -> pa.Table:
    columns = {k: [] for k in ("wrist", "state", "action", "reward", "done", "ts", "frame", "episode", "index")}
    index = first_index
    for offset, ep in enumerate(episodes):
        steps = len(ep["state"])
        columns["wrist"] += [{"bytes": png(f), "path": f"frame_{i:06d}.png"} for i, f in enumerate(ep["wrist"])]
        columns["state"] += list(ep["state"])
        columns["action"] += list(ep["action"])
        columns["reward"] += list(ep["reward"])
        columns["done"] += list(ep["done"])
        columns["ts"] += list((np.arange(steps) / FPS).astype(np.float32))
        columns["frame"] += list(range(steps))
        columns["episode"] += [first_episode + offset] * steps
        columns["index"] += list(range(index, index + steps))
        index += steps
    vector = pa.list_(pa.float32(), 4)
    return pa.table({
        WRIST: pa.array(columns["wrist"], pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "observation.state": pa.array([list(v) for v in columns["state"]], vector),
        "action": pa.array([list(v) for v in columns["action"]], vector),
        "next.reward": pa.array(columns["reward"], pa.float32()), "next.done": pa.array(columns["done"], pa.bool_()),
        "timestamp": pa.array(columns["ts"], pa.float32()), "frame_index": pa.array(columns["frame"], pa.int64()),
        "episode_index": pa.array(columns["episode"], pa.int64()), "index": pa.array(columns["index"], pa.int64()),
        "task_index": pa.array([0] * len(columns["frame"]), pa.int64())})


def write_v21(root: Path) -> Path:
    """data/chunk-000/episode_{i:06d}.parquet, videos/chunk-000/<key>/episode_{i:06d}.mp4, meta/*.jsonl."""
    episodes = [episode_data(e, n) for e, n in enumerate(LENGTHS)]
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": "v2.1", "robot_type": "sim", "total_episodes": len(episodes),
            "total_frames": sum(LENGTHS), "total_tasks": 1, "total_videos": len(episodes), "total_chunks": 1,
            "chunks_size": 1000, "fps": FPS, "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": FEATURES}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (root / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "press the button"}) + "\n")
    (root / "meta" / "episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": e, "tasks": ["press the button"], "length": n}) + "\n"
        for e, n in enumerate(LENGTHS)))
    (root / "meta" / "episodes_stats.jsonl").write_text("".join(
        json.dumps({"episode_index": e, "stats": {}}) + "\n" for e in range(len(LENGTHS))))
    first = 0
    for e, ep in enumerate(episodes):
        path = root / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data_table([ep], e, first), path)
        encode(root / f"videos/chunk-000/{TOP}/episode_{e:06d}.mp4", ep["top"])
        first += len(ep["state"])
    return root


def write_v30(root: Path) -> Path:
    """One data file and one MP4 holding both episodes; meta/episodes parquet with from/to timestamps."""
    episodes = [episode_data(e, n) for e, n in enumerate(LENGTHS)]
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": "v3.0", "robot_type": "sim", "total_episodes": len(episodes),
            "total_frames": sum(LENGTHS), "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 200, "fps": FPS, "splits": {"train": f"0:{len(episodes)}"},
            "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            "features": FEATURES}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    path = root / "data/chunk-000/file-000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(data_table(episodes), path)
    encode(root / f"videos/{TOP}/chunk-000/file-000.mp4", np.concatenate([ep["top"] for ep in episodes]))
    rows, start = [], 0
    for e, n in enumerate(LENGTHS):
        rows.append({"episode_index": e, "tasks": ["press the button"], "length": n, "data/chunk_index": 0,
                     "data/file_index": 0, "dataset_from_index": start, "dataset_to_index": start + n,
                     f"videos/{TOP}/chunk_index": 0, f"videos/{TOP}/file_index": 0,
                     f"videos/{TOP}/from_timestamp": start / FPS, f"videos/{TOP}/to_timestamp": (start + n) / FPS,
                     "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        start += n
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "__index_level_0__": ["press the button"]}),
                   root / "meta/tasks.parquet")
    return root


def decoded_top(root: Path) -> list[np.ndarray]:
    """The camera's frames per episode, decoded without the reader (v2.1: one file each; v3.0: split by length)."""
    v21 = sorted(root.glob(f"videos/chunk-*/{TOP}/episode_*.mp4"))
    if v21:
        return [decode(p) for p in v21]
    frames = decode(next(root.glob(f"videos/{TOP}/chunk-*/file-*.mp4")))
    return np.split(frames, np.cumsum(LENGTHS)[:-1])


def our_dataset(path: Path, frames: list[np.ndarray]) -> Path:
    with DatasetWriter(path, env_args={"task": TASK, "image_size": 64}) as w:
        for e, video in enumerate(frames):
            ep = episode_data(e, len(video))
            w.write_episode(obs={"image": video, "state": ep["state"]}, actions=ep["action"], rewards=ep["reward"],
                            success=e == 0)
    return path


# --- reading ---------------------------------------------------------------------------------------------------

def test_a_dataset_written_by_lerobot_reads_back_as_it_went_in():
    assert detect_kind(WRITTEN_BY_LEROBOT) == "lerobot"
    for camera in (TOP, WRIST):
        episodes = list(open_source(WRITTEN_BY_LEROBOT, camera=camera))
        assert [e.name for e in episodes] == ["episode_000000", "episode_000001"]
        for e, ep in enumerate(episodes):
            steps = make_fixture.EPISODES[e]
            frames = np.concatenate([ep.frames[0:5], ep.frames[5:steps]])  # two slices, as relabel reads them
            sent = np.stack([make_fixture.frame(camera.split(".")[-1], e, i) for i in range(steps)])
            if camera == WRIST:  # PNG in the Parquet: lossless
                assert np.array_equal(frames, sent)
            else:  # AV1 at LeRobot's crf 30, each row its own frame (the wrong frame would be far off)
                error = np.abs(frames.astype(int) - sent).mean(axis=(1, 2, 3))
                assert error.max() < 6, error
            assert np.array_equal(ep.obs["state"], [make_fixture.state(e, i) for i in range(steps)])
            assert np.array_equal(ep.actions, [make_fixture.action(e, i) for i in range(steps)])
            assert np.allclose(ep.timestamps, np.arange(steps) / make_fixture.FPS)
            assert ep.dones.tolist() == [i == steps - 1 for i in range(steps)]
            assert ep.rewards[-1] == float(e == 0) and ep.rewards[:-1].sum() == 0
            assert ep.attrs["tasks"] == [make_fixture.TASKS[e]] and ep.attrs["image_key"] == camera
            assert ep.attrs["lerobot_codebase_version"] == "v3.0"


@pytest.mark.parametrize("layout", ["v2.1", "v3.0"])
def test_relabel_equals_relabelling_the_same_frames_from_our_hdf5(layout, tmp_path, capsys, model_path):
    """Sidecar and HDF5 output of a LeRobot folder carry the rewards of the same frames relabelled from our
    HDF5, and the LeRobot folder is byte for byte as it was."""
    root = (write_v21 if layout == "v2.1" else write_v30)(tmp_path / "lerobot")
    before = tree_md5(root)
    common = ["--model", model_path, "--task", TASK, "--reward-type", "likelihood", "--seed", 3]
    rc, out, err = cli(capsys, "relabel", "--input", root, "--out", tmp_path / "rewards.parquet", *common)
    assert rc == 0, err
    assert f"LeRobot {layout} dataset: scoring camera {TOP} (video, the first image feature" in err
    assert f"relabelled 2 episode(s), {sum(LENGTHS)} frames" in out and f"(camera {TOP})" in out
    rc, _, err = cli(capsys, "relabel", "--input", root, "--out", tmp_path / "lerobot.hdf5", *common)
    assert rc == 0, err
    ours = our_dataset(tmp_path / "ours.hdf5", decoded_top(root))
    rc, _, err = cli(capsys, "relabel", "--input", ours, "--out", tmp_path / "ours_labelled.hdf5", *common)
    assert rc == 0, err
    assert tree_md5(root) == before

    sidecar = pq.read_table(tmp_path / "rewards.parquet")
    assert sidecar.schema.names == ["episode_index", "frame_index", "timestamp", "reward", "raw"]
    meta = json.loads(sidecar.schema.metadata[b"diffusion_reward"])
    provenance = meta["provenance"]
    assert provenance["model_hash"] == RewardModel.load(model_path).weights_hash
    assert (provenance["reward_type"], provenance["stats"]) == ("likelihood", {"mean": -400, "std": 20})
    assert provenance["seed"] == 3 and provenance["source_kind"] == "lerobot"
    assert provenance["source_options"]["camera"] == TOP and meta["label"] == "likelihood"
    assert meta["dataset"]["codebase_version"] == layout and meta["dataset"]["camera"] == TOP
    rows = sidecar.to_pydict()
    with Dataset(tmp_path / "lerobot.hdf5") as via_lerobot, Dataset(tmp_path / "ours_labelled.hdf5") as via_ours:
        assert via_lerobot.env_args["camera"] == TOP and via_lerobot.env_args["lerobot_codebase_version"] == layout
        for e, steps in enumerate(LENGTHS):
            mine = np.asarray(rows["episode_index"]) == e
            assert np.array_equal(np.asarray(rows["frame_index"])[mine], np.arange(steps))
            assert np.allclose(np.asarray(rows["timestamp"])[mine], np.arange(steps) / FPS)
            expected = via_ours[e].reward_labels["likelihood"]["datasets"]
            for key in ("reward", "raw"):
                assert np.array_equal(np.asarray(rows[key], np.float32)[mine], expected[key][()]), (layout, e, key)
                assert np.array_equal(via_lerobot[e].reward_labels["likelihood"]["datasets"][key][()],
                                      expected[key][()])
            assert np.array_equal(via_lerobot[e].obs["state"][()], via_ours[e].obs["state"][()])
            assert np.array_equal(via_lerobot[e].actions[()], via_ours[e].actions[()])
            assert np.array_equal(via_lerobot[e].rewards[()], via_ours[e].rewards[()])


def test_image_camera_of_v21_and_a_sidecar_inside_the_dataset(tmp_path, capsys, model_path):
    """--camera picks the PNG-in-Parquet camera (shape given channels first); a sidecar may be a new file at the
    dataset's top level, never in LeRobot's own folders and never over one of its files, not even with --force."""
    root = write_v21(tmp_path / "lerobot")
    before = tree_md5(root)
    common = ["--model", model_path, "--task", TASK, "--reward-type", "likelihood"]
    rc, out, err = cli(capsys, "relabel", "--input", root, "--camera", WRIST, "--out", root / "rewards.parquet",
                       *common)
    assert rc == 0, err
    assert f"scoring camera {WRIST} (image, chosen with --camera" in err
    after = tree_md5(root)
    assert after.pop("rewards.parquet") and after == before
    frames = [episode_data(e, n)["wrist"] for e, n in enumerate(LENGTHS)]
    assert [ep.frames[0:len(ep.frames)].tolist() for ep in open_source(root, camera=WRIST)] == \
        [f.tolist() for f in frames]
    for out_path, force, message in (
            (root / "meta" / "rewards.parquet", False, "inside the dataset's meta/ folder, which LeRobot reads"),
            (root / "data" / "x.parquet", True, "inside the dataset's data/ folder"),
            (root / "rewards.parquet", True, "is a file of the input dataset"),
            (root / "rewards.parquet", False, "is a file of the input dataset")):
        rc, _, err = cli(capsys, "relabel", "--input", root, "--out", out_path, *common, *(["--force"] * force))
        assert rc == 2 and err.strip().splitlines() == [err.strip()] and message in err, err
    beside = tmp_path / "beside.parquet"
    beside.write_bytes(b"an earlier sidecar")
    rc, _, err = cli(capsys, "relabel", "--input", root, "--out", beside, *common)
    assert rc == 2 and "already exists; pass --force" in err and beside.read_bytes() == b"an earlier sidecar"
    rc, _, err = cli(capsys, "relabel", "--input", root, "--out", beside, *common, "--force")
    assert rc == 0, err
    assert pq.read_table(beside).num_rows == sum(LENGTHS)
    assert tree_md5(root) == {**before, "rewards.parquet": tree_md5(root)["rewards.parquet"]}


# --- convert --to lerobot -----------------------------------------------------------------------------------------

def labelled_dataset(path: Path, lengths=(6, 4)) -> Path:
    """Our dataset with a reward label, as relabel writes it (label attrs included)."""
    rng = np.random.default_rng(0)
    with DatasetWriter(path, env_args={"task": TASK, "image_size": 64, "robot_type": "sim"}) as w:
        for e, steps in enumerate(lengths):
            frames = np.stack([make_fixture.frame("top", e, i) for i in range(steps)])
            reward = rng.normal(size=steps).astype(np.float32)
            w.write_episode(obs={"image": frames, "state": rng.normal(size=(steps, 3)).astype(np.float32)},
                            actions=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
                            rewards=(np.arange(steps) == steps - 1).astype(np.float32) * (e == 0),
                            timestamps=np.arange(steps) * 0.025, success=e == 0,
                            extra={"reward_labels/likelihood/reward": reward,
                                   "reward_labels/likelihood/raw": reward * 20 - 400,
                                   "reward_labels/likelihood/sparse": np.zeros(steps, np.float32)},
                            extra_attrs={"reward_labels/likelihood": {"reward_type": "likelihood", "model_hash": "x"}})
    return path


@pytest.mark.parametrize("codec", ["auto", "h264"])
def test_convert_to_lerobot_round_trip(codec, tmp_path, capsys):
    src = labelled_dataset(tmp_path / "labelled.hdf5")
    out = tmp_path / "lerobot" / "button"
    rc, stdout, err = cli(capsys, "convert", src, "--to", "lerobot", "--out", out, "--reward", "likelihood",
                          "--video-codec", codec)
    assert rc == 0, err
    assert "LeRobot v3.0, fps 40" in stdout and ("av1" if codec == "auto" else "h264") in stdout
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 40 and info["total_frames"] == 10
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    camera = "observation.images.image"
    assert info["features"][camera]["info"]["video.codec"] == ("av1" if codec == "auto" else "h264")
    assert {"observation.state", "action", "next.reward", "next.done", "next.success", "timestamp", "frame_index",
            "episode_index", "index", "task_index"} <= set(info["features"])
    assert (out / f"videos/{camera}/chunk-000/file-000.mp4").is_file()
    assert (out / "data/chunk-000/file-000.parquet").is_file()
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert np.array(stats[camera]["mean"]).shape == (3, 1, 1) and stats["next.reward"]["count"] == [10]
    tasks = pq.read_table(out / "meta" / "tasks.parquet")
    assert tasks.to_pydict() == {"task_index": [0], "__index_level_0__": [TASK]}
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    episodes_meta = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [(r["episode_index"], r["length"], r["dataset_from_index"], r[f"videos/{camera}/from_timestamp"])
            for r in episodes_meta] == [(0, 6, 0, 0.0), (1, 4, 6, 6 / 40)]

    mix = RewardMix(0.95, 1.0)
    episodes = list(open_source(out))
    with Dataset(src) as ds:
        for e, ep in enumerate(episodes):
            source = ds[e]
            frames = ep.frames[0:len(ep.frames)]
            error = np.abs(frames.astype(int) - source.obs["image"][()]).mean(axis=(1, 2, 3))
            assert error.max() < 6, error
            assert np.array_equal(ep.obs["state"], source.obs["state"][()])
            assert np.array_equal(ep.actions, source.actions[()])
            label = source.reward_labels["likelihood"]["datasets"]["reward"][()]
            assert np.allclose(ep.rewards, mix.combine(diffusion=label, sparse=source.rewards[()]), atol=1e-6)
            assert ep.dones.tolist() == [e == 0 and i == len(frames) - 1 for i in range(len(frames))]
            assert ep.success == (e == 0) and ep.attrs["tasks"] == [TASK]
            assert np.allclose(ep.timestamps, np.arange(len(frames)) / 40)
    rc, _, err = cli(capsys, "convert", src, "--to", "lerobot", "--out", out, "--reward", "likelihood")
    assert rc == 2 and "already exists; pass --force" in err


def test_convert_starts_new_files_past_lerobots_file_sizes(tmp_path, capsys, monkeypatch):
    """Past data_files_size_in_mb / video_files_size_in_mb the next episode goes to the next file, and after
    chunks_size files to the next chunk (limits shrunk here so that every episode crosses them)."""
    import diffusion_reward.offline.convert.lerobot as writer

    monkeypatch.setattr(writer, "DATA_FILE_MB", 0)
    monkeypatch.setattr(writer, "VIDEO_FILE_MB", 0)
    monkeypatch.setattr(writer, "CHUNKS_SIZE", 2)
    src = labelled_dataset(tmp_path / "labelled.hdf5", lengths=(3, 4, 2))
    out = tmp_path / "lerobot"
    rc, _, err = cli(capsys, "convert", src, "--to", "lerobot", "--out", out, "--reward", "likelihood")
    assert rc == 0, err
    rows = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    camera = "observation.images.image"
    places = [(0, 0), (0, 1), (1, 0)]
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == places
    assert [(r[f"videos/{camera}/chunk_index"], r[f"videos/{camera}/file_index"]) for r in rows] == places
    assert [r[f"videos/{camera}/from_timestamp"] for r in rows] == [0.0, 0.0, 0.0]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 3), (3, 7), (7, 9)]
    assert (out / f"videos/{camera}/chunk-001/file-000.mp4").is_file()
    assert (out / "data/chunk-001/file-000.parquet").is_file()
    with Dataset(src) as ds:
        for e, ep in enumerate(open_source(out)):
            frames = ep.frames[0:len(ep.frames)]
            assert np.abs(frames.astype(int) - ds[e].obs["image"][()]).mean() < 6
            assert np.array_equal(ep.actions, ds[e].actions[()])


# --- bad inputs: one error line, exit 2, nothing written ---------------------------------------------------------

def _break(kind: str, root: Path) -> tuple[list[str], str]:
    if kind == "missing info.json":
        (root / "meta" / "info.json").unlink()
        return [], "no meta/info.json"
    if kind == "unknown codebase_version":
        info = json.loads((root / "meta" / "info.json").read_text())
        (root / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v9.9"}))
        return [], "unknown LeRobot codebase_version 'v9.9'; supported: v2.0, v2.1, v3.0"
    if kind == "info.json not JSON":
        (root / "meta" / "info.json").write_text("{nope")
        return [], "is not readable JSON"
    if kind == "missing video file":
        next(root.glob("videos/**/*.mp4")).unlink()
        return [], "video file"
    if kind == "camera not found":
        return ["--camera", "observation.images.side"], \
            f"has no camera 'observation.images.side'; its image and video features: {TOP}, {WRIST}"
    if kind == "sidecar for HDF5 input":
        return ["--input-is-hdf5"], "sidecar of per-frame rewards is written for LeRobot datasets only"
    raise AssertionError(kind)


@pytest.mark.parametrize("layout", ["v2.1", "v3.0"])
@pytest.mark.parametrize("kind", ["missing info.json", "unknown codebase_version", "info.json not JSON",
                                  "missing video file", "camera not found", "sidecar for HDF5 input"])
def test_bad_lerobot_input_is_one_error_line(kind, layout, tmp_path, capsys, model_path):
    world = tmp_path / "world"
    root = (write_v21 if layout == "v2.1" else write_v30)(world / "lerobot")
    extra, expected = _break(kind, root)
    source = root
    if extra == ["--input-is-hdf5"]:
        source, extra = our_dataset(world / "ours.hdf5", [episode_data(0, 3)["top"]]), []
    before = tree_md5(world)
    for out in (tmp_path / "out.hdf5", tmp_path / "out.parquet"):
        if kind == "sidecar for HDF5 input" and out.suffix == ".hdf5":
            continue
        rc, stdout, err = cli(capsys, "relabel", "--model", model_path, "--task", TASK, "--input", source, "--out",
                              out, *extra)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
        assert not os.path.lexists(out) and not list(tmp_path.glob(".out*"))
    assert tree_md5(world) == before


def test_the_fixture_was_written_by_lerobot():
    """The committed fixture is what LeRobot's writer produced (its stamps), not a copy of our own writer's."""
    info = json.loads((WRITTEN_BY_LEROBOT / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["features"][TOP]["info"]["video.codec"] == "av1"
    schema = pq.read_schema(WRITTEN_BY_LEROBOT / "data/chunk-000/file-000.parquet")
    assert b"huggingface" in schema.metadata  # written through HF datasets, which our converter never uses
