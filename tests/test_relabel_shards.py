"""`relabel` sharded over torchrun ranks: two CPU processes write the dataset one process writes, and a run killed
during the merge is finished by `--resume`."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset, DatasetWriter
from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.offline.relabel import RelabelConfig, Shard, part_path, relabel
from diffusion_reward.offline.relabel_shards import merge_parts

TASK = "button-press-v3"
LENGTHS = (7, 3, 12, 5, 9)  # five episodes: rank 0 labels three, rank 1 two


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "entropy", 9, 1, mean=-400.0, std=20.0)
    return model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "mixed.hdf5"
    rng = np.random.default_rng(0)
    with DatasetWriter(path, env_args={"task": TASK, "image_size": 64, "camera": "corner"}) as w:
        for i, steps in enumerate(LENGTHS):
            w.write_episode(obs={"image": rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8),
                                 "state": rng.normal(size=(steps, 4)).astype(np.float32)},
                            actions=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
                            rewards=np.eye(steps, dtype=np.float32)[-1], success=i % 2 == 0)
        w.split_train_valid(valid_fraction=0.4, seed=0)
    return path


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, model_path, source):
    out = tmp_path_factory.mktemp("ref") / "labelled.hdf5"
    assert main(["relabel", "--model", str(model_path), "--input", str(source), "--out", str(out)]) == 0
    return out


def contents(path):
    """Everything a consumer reads of a labelled dataset, episode by episode in the dataset's order."""
    with Dataset(path) as ds:
        assert ds.incomplete is None
        episodes = []
        for ep in ds:
            with ep:
                label = ep.reward_labels["entropy"]
                episodes.append((ep.attrs["source_episode"], bool(ep.success), np.asarray(ep.obs["image"]),
                                 np.asarray(ep.actions), np.asarray(label["datasets"]["reward"]),
                                 np.asarray(label["datasets"]["raw"]), label["attrs"]["model_hash"]))
        return episodes, ds.masks


def assert_same_dataset(a, b):
    (eps_a, masks_a), (eps_b, masks_b) = contents(a), contents(b)
    assert [e[0] for e in eps_a] == [e[0] for e in eps_b] == [f"demo_{i}" for i in range(len(LENGTHS))]
    for x, y in zip(eps_a, eps_b):
        assert x[1] == y[1] and x[6] == y[6]
        for u, v in zip(x[2:6], y[2:6]):
            np.testing.assert_array_equal(u, v)
    assert masks_a == masks_b and set(masks_a) >= {"success", "train", "valid"}


def test_two_torchrun_processes_write_what_one_process_writes(tmp_path, model_path, source, one_process):
    out = tmp_path / "sharded.hdf5"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "diffusion_reward", "relabel", "--model", str(model_path), "--input", str(source), "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rank 0: labelled 28 frames" in result.stdout  # episodes 0, 2, 4: 7 + 12 + 9 rows
    assert "rank 1: labelled 8 frames" in result.stdout  # episodes 1, 3: 3 + 5 rows
    assert f"merged {len(LENGTHS)} episode(s)" in result.stdout
    assert not part_path(out, Shard(0, 2)).parent.exists()
    assert_same_dataset(out, one_process)


def test_a_merge_killed_midway_is_finished_by_resume(tmp_path, model_path, source, one_process, monkeypatch):
    out = tmp_path / "sharded.hdf5"
    cfg = RelabelConfig(input=str(source), out=str(out), model=str(model_path), progress=False)
    shards = [Shard(r, 2) for r in range(2)]
    orders = [relabel(cfg, shard=s).source_order for s in shards]
    assert orders[0] == orders[1] == [f"demo_{i}" for i in range(len(LENGTHS))]

    adopt, adopted = DatasetWriter.adopt_episode, []

    def dies_after_two(self, episode_file):
        if len(adopted) == 2:
            raise KeyboardInterrupt  # killed in the middle of the merge
        adopted.append(episode_file)
        return adopt(self, episode_file)

    monkeypatch.setattr(DatasetWriter, "adopt_episode", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        merge_parts(cfg, orders[0], shards[0])
    monkeypatch.setattr(DatasetWriter, "adopt_episode", adopt)
    with Dataset(out) as ds:  # what was merged is committed, and the output says it is not finished
        assert len(ds.episode_names) == 2 and ds.incomplete["job"] == "relabel"
        assert "torchrun --nproc_per_node 2" in ds.incomplete["resume"]
    with pytest.raises(UserError, match="already exists; pass `resume`"):
        relabel(cfg, shard=shards[1])

    resumed = [relabel(RelabelConfig(**{**cfg.__dict__, "resume": True}), shard=s) for s in shards]
    assert [s.written for s in resumed] == [[], []]  # every episode is in `out` or in its part: nothing rescored
    merge_parts(cfg, resumed[0].source_order, shards[0])
    assert_same_dataset(out, one_process)
    assert not part_path(out, shards[0]).parent.exists()


def test_a_sidecar_is_not_sharded(tmp_path, model_path, source):
    cfg = RelabelConfig(input=str(source), out=str(tmp_path / "r.parquet"), model=str(model_path), progress=False)
    with pytest.raises(UserError, match="sidecar is written by one process"):
        relabel(cfg, shard=Shard(1, 2))
    assert not any(tmp_path.iterdir())
