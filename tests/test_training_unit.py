"""Reward-model training on small synthetic videos (a square moving on a plain background): losses fall,
resume is bit-for-bit, 2-process gloo training keeps identical weights, bad input exits 2 with one line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from diffusion_reward.cli import main as cli_main
from diffusion_reward.data import DatasetWriter
from diffusion_reward.data.sources import load_episodes
from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.training import TrainConfig, train_reward_model
from diffusion_reward.training.checkpoint import EMA
from diffusion_reward.training.data import WindowSampler, context_indices, split_by_episode

REPO = Path(__file__).resolve().parents[1]


def square_video(seed: int, steps: int = 10, size: int = 64) -> np.ndarray:
    """A 12x12 square moving with a constant, seed-dependent velocity: an easily predictable 'expert'."""
    rng = np.random.default_rng(seed)
    pos, vel = rng.integers(8, 40, 2), rng.choice([-3, 3], 2)
    color = rng.integers(80, 255, 3)
    frames = np.full((steps, size, size, 3), 30, np.uint8)
    for t in range(steps):
        y, x = np.clip(pos + t * vel, 0, size - 12)
        frames[t, y:y + 12, x:x + 12] = color
    return frames


def write_dataset(path: Path, task: str, episodes: int, steps: int = 10, size: int = 64, seed: int = 0,
                  success: bool = True) -> Path:
    with DatasetWriter(path, env_args={"task": task, "image_size": size}) as w:
        for i in range(episodes):
            w.write_episode(obs={"image": square_video(seed + i, steps, size)}, success=success)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("train_data")
    return [str(write_dataset(root / "a.h5", "squares-a", 4, seed=0)),
            str(write_dataset(root / "b.h5", "squares-b", 3, seed=10))]


def tiny_config(data: list[str], out: Path, **kw) -> TrainConfig:
    base = dict(data=data, out=str(out), preset="tiny", codec_steps=4, video_steps=4, codec_batch_size=4,
                batch_size=4, disc_start=2, val_every=2, checkpoint_every=2, warmup_steps=2, progress=False,
                val_fraction=0.3, keep_checkpoints=10)
    return TrainConfig(**(base | kw))


def test_context_windows_match_the_scorer_row_layout():
    assert context_indices(1, 2, 1) == [0, 0]  # row 0 is scored on (f0, f0) -> f1
    assert context_indices(2, 2, 1) == [0, 1]
    assert context_indices(3, 2, 2) == [1, 1]
    assert context_indices(6, 3, 2) == [0, 2, 4]
    tokens = [torch.arange(5).repeat_interleave(4).view(5, 4)]  # frame i has all tokens == i
    x0, cond = WindowSampler(tokens, 2, 1, seed=0).all_windows()
    assert x0[:, 0].tolist() == [1, 2, 3, 4]
    assert cond[:, ::4].tolist() == [[0, 0], [0, 1], [1, 2], [2, 3]]


def test_split_holds_out_episodes_of_every_task(data):
    episodes, provenance = load_episodes(data, 64)
    train, val = split_by_episode(episodes, 0.3, seed=0)
    assert {e.task for e in val} == {"squares-a", "squares-b"}
    assert not {(e.attrs["source_path"], e.name) for e in train} & {(e.attrs["source_path"], e.name) for e in val}
    assert len(train) + len(val) == 7
    assert [p["episodes"] for p in provenance] == [4, 3] and len(provenance[0]["sha256"]) == 64


def test_ema_averages_parameters_and_copies_buffers():
    net = torch.nn.BatchNorm1d(2)
    ema = EMA(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.running_mean.fill_(float("-inf"))
    ema.update(net)
    assert torch.isfinite(ema.state["weight"]).all() and 1.0 < ema.state["weight"][0] < 3.0
    assert torch.equal(ema.state["running_mean"], net.running_mean)


def test_training_reduces_both_losses_and_writes_a_model_with_provenance(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "m.safetensors", codec_steps=12, video_steps=12, disc_start=8,
                      codec_batch_size=8, batch_size=8, val_every=6, checkpoint_every=12, warmup_steps=3)
    path = train_reward_model(cfg)
    log = [json.loads(line) for line in (tmp_path / "m.safetensors.ckpt" / "log.jsonl").open()]
    codec_val = [r["val_rec"] for r in log if "val_rec" in r]
    video_val = [r["val_loss"] for r in log if "val_loss" in r]
    assert codec_val[-1] < 0.9 * codec_val[0]
    assert video_val[-1] < video_val[0]
    assert any("gan_weight" in r for r in log)  # the discriminator switched on at disc_start
    model = RewardModel.load(path)
    p = model.provenance
    assert p["tasks"] == ["squares-a", "squares-b"] and p["seed"] == 0 and p["training_steps"] == 24
    assert [d["sha256"] for d in p["data"]] == [d["sha256"] for d in load_episodes(data, 64)[1]]
    assert p["video_val_loss"] == min(video_val) and p["codec_val_rec_l1"] == min(codec_val)


def test_resume_from_a_mid_run_checkpoint_is_bit_for_bit(data, tmp_path):
    full = train_reward_model(tiny_config(data, tmp_path / "full.safetensors"))
    ckpts = tmp_path / "full.safetensors.ckpt"
    names = sorted(p.name for p in ckpts.glob("ckpt-*.pt"))
    assert names == ["ckpt-codec-00000002.pt", "ckpt-codec-00000004.pt", "ckpt-video-00000002.pt",
                     "ckpt-video-00000004.pt"]
    for mid_run in (["ckpt-codec-00000002.pt"], ["ckpt-codec-00000002.pt", "ckpt-codec-00000004.pt",
                                                  "ckpt-video-00000002.pt"]):
        crashed = tmp_path / f"crashed{len(mid_run)}"
        crashed.mkdir()
        for name in mid_run:  # what a run killed after that checkpoint leaves behind
            shutil.copy(ckpts / name, crashed / name)
        resumed = train_reward_model(tiny_config(data, tmp_path / f"resumed{len(mid_run)}.safetensors",
                                                 checkpoint_dir=str(crashed), resume=True))
        a, b = RewardModel.load(full).weight_tensors(), RewardModel.load(resumed).weight_tensors()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), f"resume from {mid_run[-1]} differs"


def test_a_fresh_run_refuses_a_checkpoint_dir_with_checkpoints(data, tmp_path):
    cfg = tiny_config(data, tmp_path / "m.safetensors", codec_steps=2, video_steps=0)
    train_reward_model(cfg)
    with pytest.raises(UserError, match="pass `resume`"):
        train_reward_model(cfg)


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
from diffusion_reward.training import TrainConfig, RewardTrainer
data, out = sys.argv[1].split(","), sys.argv[2]
trainer = RewardTrainer(TrainConfig(data=data, out=out, preset="tiny", codec_steps=4, video_steps=4,
    codec_batch_size=4, batch_size=4, disc_start=2, val_every=1, checkpoint_every=2, warmup_steps=2,
    progress=False, val_fraction=0.3))
trainer.fit()
flat = torch.cat([v.float().flatten() for v in trainer.model.weight_tensors().values()])
gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, flat)
assert trainer.dist.world_size == 2
summaries = [None] * dist.get_world_size()
dist.all_gather_object(summaries, trainer.summary)  # every rank kept the same best-by-validation weights
same = all(torch.equal(gathered[0], g) for g in gathered) and all(s == summaries[0] for s in summaries)
assert summaries[0]["video_val_loss"] is not None
print(f"rank {trainer.dist.rank} identical={same}", flush=True)
dist.destroy_process_group()
"""


@pytest.mark.slow  # two torch.distributed processes (DDP over gloo): the slow tier, which CI runs
def test_two_process_gloo_training_keeps_identical_weights(data, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), ",".join(data), str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 identical=True" in proc.stdout and "rank 1 identical=True" in proc.stdout
    model = RewardModel.load(out)  # only rank 0 wrote it
    assert model.provenance["world_size"] == 2


@pytest.mark.parametrize("case", ["missing", "empty", "no_frames", "wrong_size", "preset", "unsuccessful"])
def test_bad_input_prints_one_line_and_exits_2(case, tmp_path, capsys):
    data = {
        "missing": lambda: tmp_path / "nope.h5",
        "empty": lambda: write_dataset(tmp_path / "empty.h5", "t", 0),
        "no_frames": lambda: (tmp_path / "videos" / "metaworld" / "t" / "train" / "0").mkdir(parents=True)
        or tmp_path / "videos",
        "wrong_size": lambda: write_dataset(tmp_path / "small.h5", "t", 2, size=32),
        "preset": lambda: write_dataset(tmp_path / "ok.h5", "t", 2),
        "unsuccessful": lambda: write_dataset(tmp_path / "fail.h5", "t", 2, success=False),
    }[case]()
    out = tmp_path / "m.safetensors"
    code = cli_main(["train-reward", "--data", str(data), "--out", str(out), "--no-progress",
                     "--preset", "huge" if case == "preset" else "tiny", "--codec-steps", "1", "--video-steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists()


def test_lpips_loads_both_weight_layouts_from_a_file_and_feeds_the_codec_loss(data, tmp_path):
    from safetensors.torch import save_file

    from diffusion_reward.models.lpips import LPIPS

    torch.manual_seed(0)
    reference = LPIPS()
    for p in reference.parameters():
        p.data.normal_(0, 0.05).abs_()
    state = {k: v for k, v in reference.state_dict().items() if k not in ("shift", "scale")}
    # richzhang `lpips` layout: net.slice<k>.<torchvision index>.*, lin<k>.model.1.weight (torch file)
    slices = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}
    lpips_layout = {f"net.slice{slices[int(k.split('.')[1])]}.{k.split('.', 1)[1]}" if k.startswith("features")
                    else f"lin{k.split('.')[1]}.model.1.weight": v for k, v in state.items()}
    torch.save(lpips_layout, tmp_path / "vgg_lpips.pth")
    save_file(state, str(tmp_path / "vgg_lpips.safetensors"))
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    for name in ("vgg_lpips.pth", "vgg_lpips.safetensors"):
        net = LPIPS.from_file(tmp_path / name)
        assert torch.allclose(net(a, b), reference(a, b))
        assert torch.all(net(a, a) == 0) and torch.all(net(a, b) > 0)
    torch.save({"lin0.model.1.weight": state["lins.0.weight"]}, tmp_path / "lin_only.pth")
    with pytest.raises(UserError, match="VGG16"):
        LPIPS.from_file(tmp_path / "lin_only.pth")
    path = train_reward_model(tiny_config(data, tmp_path / "m.safetensors", codec_steps=2, video_steps=0,
                                          lpips_weights=str(tmp_path / "vgg_lpips.pth")))
    assert RewardModel.load(path).provenance["config"]["lpips_weights"].endswith("vgg_lpips.pth")


def test_trains_on_the_authors_png_video_folders(tmp_path):
    for task, seed in (("task-a", 0), ("task-b", 5)):
        for episode in range(2):
            folder = tmp_path / "video_dataset" / "metaworld" / task / "train" / str(episode)
            folder.mkdir(parents=True)
            for i, frame in enumerate(square_video(seed + episode, steps=6)):
                cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    path = train_reward_model(tiny_config([str(tmp_path / "video_dataset")], tmp_path / "m.safetensors",
                                          codec_steps=2, video_steps=2, val_fraction=0.0))
    p = RewardModel.load(path).provenance
    assert p["tasks"] == ["task-a", "task-b"] and p["data"][0]["kind"] == "png"
    assert p["data"][0]["episodes"] == 4 and p["data"][0]["frames"] == 24


def test_context_indices_with_token_padding_match_the_scorer_rows():
    assert context_indices(1, 2, 1, "token") == [-1, 0]  # row 0 trains on ([PAD], f0) -> f1
    assert context_indices(2, 2, 1, "token") == [0, 1]
    tokens = [torch.arange(4 * 64).view(4, 64)]
    x0, cond = WindowSampler(tokens, 2, 1, seed=0, pad_id=999).all_windows()
    assert (cond[0, :64] == 999).all() and (cond[0, 64:] == tokens[0][0]).all() and (x0[0] == tokens[0][1]).all()
    assert (cond[1:] != 999).all()


def test_codec_from_reuses_a_trained_codec_and_trains_only_the_video_model(data, tmp_path):
    first = train_reward_model(tiny_config(data, tmp_path / "first.safetensors", video_steps=2))
    second = train_reward_model(tiny_config(data, tmp_path / "second.safetensors", codec_from=str(first), seed=5))
    a, b = RewardModel.load(first), RewardModel.load(second)
    for k, v in a.codec.state_dict().items():
        assert torch.equal(v, b.codec.state_dict()[k]), k
    assert b.provenance["codec_from_hash"] == a.weights_hash
    log = [json.loads(line) for line in (tmp_path / "second.safetensors.ckpt" / "log.jsonl").read_text().splitlines()]
    assert log and all(r["phase"] == "video" for r in log)
    usage = a.provenance["codebook_usage"]
    assert 0 < usage["codes_used"] <= usage["num_codes"] and usage["codes_per_frame"] <= 64
    with pytest.raises(UserError, match="`codec_from` file"):
        tiny_config(data, tmp_path / "x.safetensors", codec_from=str(tmp_path / "missing.safetensors")).resolved()


def test_frame_skip_override_reaches_the_model_file_and_its_rows(data, tmp_path):
    from diffusion_reward.reward import RewardScorer, ScoreConfig

    out = train_reward_model(tiny_config(data, tmp_path / "k3.safetensors", frame_skip=3))
    model = RewardModel.load(out)
    assert model.config.video.frame_skip == 3 and model.config.preset == "tiny"
    scorer = RewardScorer(model, ScoreConfig(standardize=False, reward_type="likelihood", noise=False))
    assert scorer.row_frames([5], 10)[1].tolist() == [8]  # the successor scored is 3 frames ahead
    assert np.isfinite(scorer.score_episode(square_video(0, 10, model.image_size)).raw).all()
    with pytest.raises(UserError, match="`frame_skip` must be >= 1"):
        tiny_config(data, tmp_path / "x.safetensors", frame_skip=0).resolved()


def test_diverging_training_stops_with_a_clear_error_and_writes_no_model(data, tmp_path):
    out = tmp_path / "diverged.safetensors"
    with pytest.raises(UserError, match="codec training diverged at step"):
        train_reward_model(tiny_config(data, out, codec_lr=1e30, codec_steps=6))
    assert not out.exists()


def test_a_model_file_with_nan_weights_is_refused_at_load(tmp_path):
    model = RewardModel.from_preset("tiny", seed=0)
    with torch.no_grad():
        next(model.video.parameters())[0] = float("nan")
    path = model.save(tmp_path / "nan.safetensors")
    with pytest.raises(UserError, match="NaN or infinite weights in video."):
        RewardModel.load(path)


def test_trains_and_computes_statistics_on_a_rosbag_through_the_one_reader(tmp_path):
    """The reader relabel uses (data.sources) feeds training and statistics too: a rosbag2 of 16x20 camera frames
    trains with resize (the scorer's center-crop + resize) and is refused without it, naming the option."""
    from rosbags.typesys import Stores, get_typestore
    from test_sources_rosbag import bag_messages, make_frames, write_bag

    from diffusion_reward.data.frames import resize_frames
    from diffusion_reward.data.sources import open_source
    from diffusion_reward.reward import ScoreConfig
    from diffusion_reward.reward.stats import stats_from_data

    ts = get_typestore(Stores.ROS2_HUMBLE)
    bag = str(write_bag(tmp_path / "teleop", bag_messages(ts, make_frames()), ts))
    with pytest.raises(UserError, match="resize"):
        load_episodes([bag], 64)
    [episode], [provenance] = load_episodes([bag], 64, resize=True)
    [streamed] = [resize_frames(ep.frames[0:len(ep.frames)], 64) for ep in open_source(bag)]
    np.testing.assert_array_equal(episode.frames, streamed)
    assert (episode.task, provenance["kind"], provenance["frames"]) == ("teleop", "rosbag2", len(streamed))
    path = train_reward_model(tiny_config([bag], tmp_path / "m.safetensors", codec_steps=2, video_steps=2,
                                          val_fraction=0.0, resize=True))
    model = RewardModel.load(path)
    assert model.provenance["data"] == [provenance]
    stats = stats_from_data(model, bag, options=ScoreConfig(resize=True), progress=False)
    assert (stats.task, stats.episodes, stats.frames) == ("teleop", 1, len(streamed))


def test_png_training_keeps_the_authors_test_split_out(tmp_path):
    for split, episodes in (("train", 2), ("test", 1)):
        for episode in range(episodes):
            folder = tmp_path / "video_dataset" / "metaworld" / "task-a" / split / str(episode)
            folder.mkdir(parents=True)
            for i, frame in enumerate(square_video(episode, steps=4)):
                cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    episodes, [provenance] = load_episodes([str(tmp_path / "video_dataset")], 64)
    assert sorted(e.name for e in episodes) == ["metaworld/task-a/train/0", "metaworld/task-a/train/1"]
    assert provenance["tasks"] == ["task-a"] and provenance["kind"] == "png"
