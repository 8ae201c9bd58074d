"""`report --video`: one MP4 per epsilon of one reset seed, the episode over its reward curve with a moving cursor."""
from __future__ import annotations

import json

import imageio_ffmpeg
import numpy as np
import pytest

from diffusion_reward.cli import main
from diffusion_reward.models import RewardModel
from diffusion_reward.report.video import CURSOR_RGB, PLOT_HEIGHT

TASK = "button-press-v3"
STEPS = 5  # agent steps: 6 frames (the reset frame first) and 6 rewards per episode


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return RewardModel.from_preset("tiny", seed=0).save(tmp_path_factory.mktemp("video") / "tiny.safetensors")


def decode(path) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
    return frames


def cursor_columns(frames: np.ndarray) -> list[float]:
    """Mean column of the red cursor's pixels in the plot strip of each frame."""
    plot = frames[:, -PLOT_HEIGHT:].astype(int)
    red = (plot[..., 0] > 150) & (plot[..., 1] < 90) & (plot[..., 2] < 90)
    assert red.any(axis=(1, 2)).all(), "every frame shows the cursor"
    return [float(np.nonzero(mask)[1].mean()) for mask in red]


def test_report_video_per_epsilon_decodes_with_a_moving_cursor(tmp_path, capsys, model_path):
    out = tmp_path / "qa"
    rc = main(["report", "--model", str(model_path), "--task", TASK, "--episodes", "1", "--max-steps", str(STEPS),
               "--out", str(out), "--no-progress", "--video"])
    assert rc == 0, capsys.readouterr().err
    names = [f"episode_eps{eps:g}_seed0.mp4" for eps in (0, 0.25, 0.5, 0.75, 1)]
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(names) and not list(out.glob("*.tmp*"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["videos"] == names and "episode_eps1_seed0.mp4" in (out / "report.md").read_text()
    assert "videos: episode_eps0_seed0.mp4" in capsys.readouterr().out
    for name in names:
        frames = decode(out / name)
        assert len(frames) == STEPS + 1  # one video frame per episode frame
        assert frames.shape[2] == 256 and frames.shape[1] == 256 + PLOT_HEIGHT  # 64 px frames scaled up 4x
        columns = cursor_columns(frames)
        assert all(b > a + 5 for a, b in zip(columns, columns[1:])), columns  # moves right, frame by frame
        # the plot strip changes between frames only around the cursor
        diff = np.abs(frames[-1, -PLOT_HEIGHT:].astype(int) - frames[0, -PLOT_HEIGHT:].astype(int)).sum(axis=2)
        assert diff.max() > 200
    # the top of each frame is the episode's camera frame, scaled up: 4 x 4 blocks of one colour (up to H.264)
    frame = decode(out / names[0])[0, :256].astype(int)
    blocks = frame.reshape(64, 4, 64, 4, 3)
    assert np.abs(blocks - blocks.mean(axis=(1, 3), keepdims=True)).mean() < 4
    assert CURSOR_RGB[0] > 150


@pytest.mark.parametrize("args,message", [
    (["--video-seed", "0"], "--video-seed picks the episodes of the --video MP4s; pass --video too"),
    (["--video", "--video-seed", "7"], "--video-seed 7: no episode of the report has that reset seed (seeds: 0"),
])
def test_bad_video_options_are_one_error_line_and_write_nothing(tmp_path, capsys, model_path, args, message):
    out = tmp_path / "qa"
    rc = main(["report", "--model", str(model_path), "--task", TASK, "--episodes", "1", "--max-steps", "2",
               "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and message in err, err
    assert not out.exists()
