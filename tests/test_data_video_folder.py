"""The authors' PNG video folders: layout levels, numeric order, RGB, filters and errors."""
import json

import cv2
import numpy as np
import pytest

from diffusion_reward.cli import main
from diffusion_reward.data.video_folder import read_video_folder
from diffusion_reward.errors import UserError


def write_episode(folder, episode_id, frames=3, size=8):
    """Frame i of episode e is filled with RGB (e, i, 200) so order and channels can be checked."""
    folder = folder / str(episode_id)
    folder.mkdir(parents=True)
    for i in range(frames):
        rgb = np.empty((size, size, 3), np.uint8)
        rgb[...] = (episode_id, i, 200)
        assert cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture
def video_dataset(tmp_path):
    root = tmp_path / "video_dataset"
    for episode_id in (0, 1, 2, 10):
        write_episode(root / "metaworld" / "button-press-v2" / "train", episode_id, frames=12)
    write_episode(root / "metaworld" / "button-press-v2" / "test", 0)
    write_episode(root / "metaworld" / "door-open-v2" / "train", 5)
    write_episode(root / "adroit" / "door" / "train", 3)
    return root


def test_reads_every_task_from_the_top_folder_in_numeric_order(video_dataset):
    episodes = list(read_video_folder(video_dataset))
    assert [(e.attrs["domain"], e.task, e.name) for e in episodes] == [
        ("adroit", "door", "adroit/door/train/3"),
        ("metaworld", "button-press-v2", "metaworld/button-press-v2/train/0"),
        ("metaworld", "button-press-v2", "metaworld/button-press-v2/train/1"),
        ("metaworld", "button-press-v2", "metaworld/button-press-v2/train/2"),
        ("metaworld", "button-press-v2", "metaworld/button-press-v2/train/10"),
        ("metaworld", "door-open-v2", "metaworld/door-open-v2/train/5"),
    ]
    ten = episodes[4]
    assert ten.frames.shape == (12, 8, 8, 3) and ten.frames.dtype == np.uint8 and ten.attrs["split"] == "train"
    np.testing.assert_array_equal(ten.frames[:, 0, 0, 1], np.arange(12))  # 10.png after 9.png, not after 1.png
    np.testing.assert_array_equal(ten.frames[0, 0, 0], [10, 0, 200])  # RGB, not OpenCV's BGR


def test_root_may_be_a_domain_or_a_task_folder(video_dataset):
    by_domain = read_video_folder(video_dataset / "metaworld", task="button-press-v2")
    assert len(by_domain) == 4 and by_domain.tasks == ["button-press-v2"]
    by_task = read_video_folder(video_dataset / "metaworld" / "button-press-v2", split="test")
    assert [(e.attrs["domain"], e.task, e.attrs["split"], e.name) for e in by_task] == [
        ("metaworld", "button-press-v2", "test", "metaworld/button-press-v2/test/0")]


def test_nothing_matching_lists_what_exists(video_dataset):
    with pytest.raises(UserError) as info:
        read_video_folder(video_dataset, task="drawer-open-v2")
    message = str(info.value)
    assert "task 'drawer-open-v2'" in message and "metaworld/button-press-v2 (test, train)" in message
    assert "adroit/door (train)" in message and "\n" not in message
    with pytest.raises(UserError, match="split 'valid'"):
        read_video_folder(video_dataset / "adroit", split="valid")
    with pytest.raises(UserError, match="does not exist"):
        read_video_folder(video_dataset / "nope")
    with pytest.raises(UserError, match="has no <domain>/<task>/<split>"):
        read_video_folder(video_dataset / "adroit" / "door" / "train" / "3")


def test_frame_size_change_inside_an_episode_is_refused(video_dataset):
    episode = video_dataset / "adroit" / "door" / "train" / "3"
    cv2.imwrite(str(episode / "3.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UserError, match="3.png is 16x16 but the episode's first frame is 8x8"):
        list(read_video_folder(episode.parents[2]))


def test_info_summarises_a_video_folder(video_dataset, capsys):
    assert main(["info", str(video_dataset / "metaworld"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 5 and summary["frames"] == 4 * 12 + 3 and summary["image_size"] == [8, 8]
    assert summary["tasks"] == {"metaworld/button-press-v2": 4, "metaworld/door-open-v2": 1}
    assert main(["info", str(video_dataset), "--split", "test"]) == 0
    assert "button-press-v2: 1 episodes" in capsys.readouterr().out
    assert main(["info", str(video_dataset), "--split", "valid"]) == 2
    assert capsys.readouterr().err.startswith("error: no episodes for split 'valid'")
