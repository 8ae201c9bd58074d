"""Long episodes stream through scoring, `score --data`, `relabel` and the bag reader in bounded memory, with the
same rewards bit for bit as the whole episode at once. Memory is checked by counting what is held or read at a
time (frames, rows), never by timing or RSS."""
from __future__ import annotations

import dataclasses
import weakref

import h5py
import numpy as np
import pytest
import torch
from rosbags.typesys import Stores, get_typestore
from test_sources_rosbag import bag_messages, make_frames, write_bag

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset, DatasetWriter
from diffusion_reward.data.writer import EpisodeStream
from diffusion_reward.models import RewardModel
from diffusion_reward.models.model_file import TOKENIZE_BATCH
from diffusion_reward.models.presets import get_preset
from diffusion_reward.offline import relabel as relabel_module
from diffusion_reward.data.sources import open_source
from diffusion_reward.data.sources import rosbag
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.reward.scorer import ChunkedScore

TASK = "toy"
SKIP = 98  # 2 network evaluations per row: the fastest chain, the same code path as skip 9


def tiny(context_embedding="learned", context_padding="token", context_copy=True):
    cfg = get_preset("tiny")
    video = dataclasses.replace(cfg.video, context_embedding=context_embedding, context_padding=context_padding,
                                context_copy=context_copy)
    model = RewardModel.from_config(dataclasses.replace(cfg, video=video), seed=1)
    for reward_type, compat in (("entropy", False), ("likelihood", False), ("likelihood", True)):
        model.set_stats(TASK, reward_type, SKIP, 1, mean=-50.0, std=4.0, likelihood_compat=compat)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny()


@pytest.fixture(scope="module")
def frames():
    """Longer than one codec batch, so pieces cross its boundary."""
    rng = np.random.default_rng(0)
    drift = rng.integers(-8, 9, (TOKENIZE_BATCH + 21, 64, 64, 3))
    return np.clip(128 + np.cumsum(drift, 0), 0, 255).astype(np.uint8)


def unchunked_raw(scorer: RewardScorer, frames: np.ndarray) -> np.ndarray:
    """The reference: tokenise the whole episode, score rows [0, cs), [cs, 2cs), ... from the full token array."""
    tokens = scorer.model.tokenize(frames)
    scored = scorer.num_scored_rows(len(frames))
    raw = np.zeros(len(frames), np.float32)
    for start in range(0, scored, scorer.cfg.chunk_size):
        rows = np.arange(start, min(start + scorer.cfg.chunk_size, scored))
        raw[rows] = scorer.score_tokens(*scorer.condition_rows(tokens, rows), rows)
    raw[scored:] = raw[scored - 1]
    return raw


@pytest.mark.parametrize("reward_type,compat", [pytest.param("entropy", False, marks=pytest.mark.slow),
                                                ("likelihood", False),
                                                pytest.param("likelihood", True, marks=pytest.mark.slow)])
def test_small_chunks_give_the_rewards_of_one_big_chunk_bit_for_bit(frames, reward_type, compat):
    model = tiny("upstream", "repeat") if compat else tiny()
    scorer = RewardScorer(model, ScoreConfig(reward_type=reward_type, skip_step=SKIP, task=TASK, chunk_size=16,
                                             likelihood_compat=compat))
    whole = scorer.score_chunks([frames])
    np.testing.assert_array_equal(whole.raw, unchunked_raw(scorer, frames))
    np.testing.assert_array_equal(whole.reward, scorer.standardize(whole.raw))
    for piece in (1, 7, 100, TOKENIZE_BATCH):
        result = scorer.score_chunks(frames[i:i + piece] for i in range(0, len(frames), piece))
        np.testing.assert_array_equal(result.raw, whole.raw)
        np.testing.assert_array_equal(result.reward, whole.reward)


@pytest.mark.parametrize("reward_type", ["entropy", "likelihood"])
def test_frames_held_do_not_grow_with_the_episode(model, monkeypatch, reward_type):
    """The codec and the network are replaced by counting fakes: what is held depends on the chunk sizes only."""
    scorer = RewardScorer(model, ScoreConfig(reward_type=reward_type, skip_step=SKIP, task=TASK, chunk_size=16))
    batches = {"codec": 0, "network": 0}

    def tokenize(frames):
        batches["codec"] = max(batches["codec"], len(frames))
        return torch.zeros(len(frames), model.video.num_tokens, dtype=torch.long)

    def score_tokens(cond, target, rows):
        batches["network"] = max(batches["network"], len(rows))
        return np.zeros(len(rows), np.float32)

    monkeypatch.setattr(model, "tokenize", tokenize)
    monkeypatch.setattr(scorer, "score_tokens", score_tokens)
    bound = TOKENIZE_BATCH + scorer.cfg.chunk_size + scorer.lookahead + scorer.context_reach
    piece = np.zeros((40, 64, 64, 3), np.uint8)  # smaller than a codec batch: frames wait for the next one
    for length in (1_000, 10_000):
        scoring, held, rows = scorer.chunked(), 0, 0
        for _ in range(length // len(piece)):
            rows += len(scoring.push(piece).raw)
            held = max(held, scoring.frames_held)
        rows += len(scoring.finish().raw)
        assert rows == length and held <= bound, (length, held, bound)
    assert batches == {"codec": TOKENIZE_BATCH, "network": 16}


def write_long_episode(path, frames):
    with DatasetWriter(path, env_args={"task": TASK, "image_size": 64}) as w:
        w.write_episode(obs={"image": frames, "state": np.zeros((len(frames), 3), np.float32)},
                        actions=np.zeros((len(frames), 2), np.float32), success=True)
    return path


@pytest.fixture
def largest_reads(monkeypatch):
    """Largest number of frames (4-d arrays) read from any HDF5 dataset, and of rows appended to an episode."""
    largest = {"frames read": 0, "rows appended": 0}
    read, append = h5py.Dataset.__getitem__, EpisodeStream.append

    def counting_read(self, index):
        out = read(self, index)
        if getattr(out, "ndim", 0) == 4:
            largest["frames read"] = max(largest["frames read"], len(out))
        return out

    def counting_append(self, columns):
        largest["rows appended"] = max(largest["rows appended"], len(next(iter(columns.values()))))
        return append(self, columns)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting_read)
    monkeypatch.setattr(EpisodeStream, "append", counting_append)
    return largest


def test_score_data_reads_a_chunk_at_a_time(tmp_path, model, frames, largest_reads, capsys):
    data = write_long_episode(tmp_path / "long.hdf5", frames)
    model_path = model.save(tmp_path / "tiny.safetensors")
    out = tmp_path / "rewards.npy"
    argv = ["score", "--model", str(model_path), "--data", str(data), "--episode", "0", "--out", str(out),
            "--task", TASK, "--reward-type", "likelihood", "--skip-step", str(SKIP)]
    assert main(argv) == 0, capsys.readouterr().err
    assert 0 < largest_reads["frames read"] <= TOKENIZE_BATCH
    scorer = RewardScorer(model, ScoreConfig(reward_type="likelihood", skip_step=SKIP, task=TASK))
    np.testing.assert_array_equal(np.load(out), scorer.score_episode(frames).reward)


def test_score_frames_memory_maps_the_npy_and_scores_it_a_codec_batch_at_a_time(tmp_path, model, frames, monkeypatch,
                                                                              capsys):
    npy = tmp_path / "frames.npy"
    np.save(npy, frames)
    model_path = model.save(tmp_path / "tiny.safetensors")
    pushed = []
    original = ChunkedScore.push
    monkeypatch.setattr(ChunkedScore, "push", lambda self, f: pushed.append(type(f)) or original(self, f))
    loaded = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: loaded.append(k.get("mmap_mode")) or real_load(*a, **k))
    out = tmp_path / "rewards.npy"
    argv = ["score", "--model", str(model_path), "--frames", str(npy), "--out", str(out), "--task", TASK,
            "--reward-type", "likelihood", "--skip-step", str(SKIP)]
    assert main(argv) == 0, capsys.readouterr().err
    assert loaded[0] == "r" and pushed and all(t is np.ndarray for t in pushed)  # copies of memory-mapped slices
    assert len(pushed) == -(-len(frames) // TOKENIZE_BATCH)
    scorer = RewardScorer(model, ScoreConfig(reward_type="likelihood", skip_step=SKIP, task=TASK))
    np.testing.assert_array_equal(np.load(out), scorer.score_episode(frames).reward)


def test_relabel_reads_and_writes_a_chunk_at_a_time(tmp_path, model, frames, largest_reads, capsys):
    data = write_long_episode(tmp_path / "long.hdf5", frames)
    model_path = model.save(tmp_path / "tiny.safetensors")
    out = tmp_path / "labelled.hdf5"
    argv = ["relabel", "--model", str(model_path), "--input", str(data), "--out", str(out), "--task", TASK,
            "--reward-type", "likelihood", "--skip-step", str(SKIP)]
    assert main(argv) == 0, capsys.readouterr().err
    assert 0 < largest_reads["frames read"] <= TOKENIZE_BATCH
    scorer = RewardScorer(model, ScoreConfig(reward_type="likelihood", skip_step=SKIP, task=TASK))
    # a read's rows, plus the rows that waited for it (their successor frame): bounded, whatever the length
    assert 0 < largest_reads["rows appended"] <= TOKENIZE_BATCH + scorer.cfg.chunk_size
    expected = scorer.score_episode(frames)
    with Dataset(out) as ds:
        [ep] = list(ds)
        with ep:
            np.testing.assert_array_equal(ep.obs["image"][()], frames)
            np.testing.assert_array_equal(ep.reward_labels["likelihood"]["datasets"]["raw"], expected.raw)
            np.testing.assert_array_equal(ep.reward_labels["likelihood"]["datasets"]["reward"], expected.reward)
            assert ep.dones[-1] == 1 and ep.dones[:-1].sum() == 0 and ep.actions.shape == (len(frames), 2)
        ds.verify()


def test_bag_frames_are_decoded_once_and_released_after_their_slice(tmp_path, monkeypatch):
    """12 camera frames with one dropped and one recorded twice, read in slices of 3: the frames equal a whole
    read, every image message is decoded at most once, and at most one slice of decoded frames is alive."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    bag = write_bag(tmp_path / "bag", bag_messages(ts, make_frames()), ts)
    [whole] = [ep.frames[:] for ep in open_source(bag)]

    class Decoded(np.ndarray):  # an ndarray subclass can be weakly referenced
        pass

    decoded: list[weakref.ref] = []
    real = rosbag.image_to_rgb

    def tracked(msg):
        frame = real(msg).view(Decoded)
        decoded.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(rosbag, "image_to_rgb", tracked)
    for ep in open_source(bag):
        first_decode = len(decoded)  # the first pass decodes one image to check its encoding
        pieces, alive = [], 0
        for start in range(0, len(ep.frames), 3):
            pieces.append(ep.frames[start:start + 3])
            alive = max(alive, sum(ref() is not None for ref in decoded[first_decode:]))
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
        assert len(decoded) - first_decode <= len(np.unique(whole, axis=0)) and alive <= 3


def test_bag_relabel_in_small_chunks_equals_whole_episode_scoring(tmp_path, monkeypatch, capsys):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    frames = make_frames(height=60, width=80)
    bag = write_bag(tmp_path / "bag", bag_messages(ts, frames), ts)
    model = tiny()
    model_path = model.save(tmp_path / "tiny.safetensors")
    monkeypatch.setattr(relabel_module, "READ_CHUNK", 5)
    out = tmp_path / "robot.hdf5"
    argv = ["relabel", "--model", str(model_path), "--input", str(bag), "--out", str(out), "--task", TASK,
            "--reward-type", "likelihood", "--skip-step", str(SKIP), "--chunk-size", "2", "--resize"]
    assert main(argv) == 0, capsys.readouterr().err
    [source] = [dataclasses.replace(ep, frames=ep.frames[:]) for ep in open_source(bag)]
    scorer = RewardScorer(model, ScoreConfig(reward_type="likelihood", skip_step=SKIP, task=TASK, resize=True,
                                             chunk_size=2))
    expected = scorer.score_episode(source.frames)
    with Dataset(out) as ds:
        [ep] = list(ds)
        with ep:
            np.testing.assert_array_equal(ep.obs["image_full"][()], source.frames)
            np.testing.assert_array_equal(ep.reward_labels["likelihood"]["datasets"]["reward"], expected.reward)
            np.testing.assert_array_equal(ep.obs["state"][()], source.obs["state"])
            np.testing.assert_array_equal(ep.timestamps, source.timestamps)
