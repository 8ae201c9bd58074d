"""THE crash test: SIGKILL a writer process at many points; every committed episode must survive intact.

The child writes episodes in a loop and prints "committed demo_N" after `end_episode` returns. Some kills
land after random delays; others are aimed at the dangerous moments by pausing the child inside the
writer (mid-episode after rows were flushed into the `.partial` file, just before an episode file is
renamed, while the temporary index is half written, just before the index is replaced).
"""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from diffusion_reward.data import Dataset, DatasetWriter

CHILD = r"""
import sys, time
import numpy as np
from diffusion_reward.data import DatasetWriter
import diffusion_reward.data.writer as writer_module

path, pause_at = sys.argv[1], sys.argv[2]
commits = 0  # pause only once this run has committed work that must survive the kill
real_fsync = writer_module.fsync_file

def fsync_and_maybe_pause(file_path):
    real_fsync(file_path)
    phase = "index" if file_path.name.endswith(".tmp") else "episode"
    if phase == pause_at and commits:
        print(f"pausing {phase}", flush=True)
        time.sleep(30)

def link_and_maybe_pause(filename, path):  # called while the temporary index file is being written
    if pause_at == "index-writing" and commits:
        print("pausing index-writing", flush=True)
        time.sleep(30)
    return real_link(filename, path)

writer_module.fsync_file = fsync_and_maybe_pause
real_link = writer_module.h5py.ExternalLink
writer_module.h5py.ExternalLink = link_and_maybe_pause
with DatasetWriter(path, env_args={"task": "crash-test", "image_size": 16}, flush_every=4) as writer:
    print("ready", flush=True)
    while True:
        episode = writer.begin_episode()
        number = int(episode.name.split("_")[1])
        for t in range(12):
            episode.add_step(obs={"image": np.full((16, 16, 3), (number * 13 + t) % 256, np.uint8),
                                  "state": np.full(3, number + t / 100, np.float32)},
                             action=np.full(2, t, np.float32), reward=float(t == 11), done=t == 11,
                             timestamp=number * 100.0 + t)
            if t == 9 and pause_at == "mid-episode" and commits:
                print("pausing mid-episode", flush=True)
                time.sleep(30)
        name = writer.end_episode(episode, success=number % 2 == 0)
        print(f"committed {name}", flush=True)
        commits += 1
"""

CHILD_TIMEOUT_S = 30
# (pause point or None, delay in s after the child reports it): random delays plus aimed kills
KILLS = [(None, 0.15), ("mid-episode", 0.0), ("episode", 0.0), (None, 0.4), ("index", 0.0),
         (None, 0.05), ("index-writing", 0.0), (None, 0.25), ("mid-episode", 0.0)]


def run_and_kill(path, pause_at, delay, rng):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), pause_at or "-"],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    watchdog = threading.Timer(CHILD_TIMEOUT_S, child.kill)  # a stuck child must fail the test, not hang it
    watchdog.start()
    committed, lines = [], []
    wait_for = f"pausing {pause_at}" if pause_at else "ready"
    for line in child.stdout:
        line = line.strip()
        lines.append(line)
        if line.startswith("committed "):
            committed.append(line.split()[1])
        if line == wait_for:
            break
    else:
        watchdog.cancel()
        pytest.fail(f"child exited or hung before {wait_for!r}: {lines[-5:]}")
    watchdog.cancel()
    time.sleep(delay + rng.uniform(0, 0.05))
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate()
    committed += [line.split()[1] for line in rest.splitlines() if line.startswith("committed ")]
    assert child.returncode == -signal.SIGKILL
    return committed


def check_episode(ep):
    number = int(ep.name.split("_")[1])
    assert ep.num_samples == 12
    np.testing.assert_array_equal(ep.obs["image"][:, 0, 0, 0], (number * 13 + np.arange(12)) % 256)
    np.testing.assert_array_equal(ep.actions[:, 0], np.arange(12))
    np.testing.assert_array_equal(ep.timestamps, number * 100.0 + np.arange(12))
    assert ep.success == (number % 2 == 0)


def test_sigkill_never_loses_committed_episodes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "crash.hdf5"
    committed: set[str] = set()
    for pause_at, delay in KILLS:
        committed |= set(run_and_kill(path, pause_at, delay, rng))
        with Dataset(path) as ds:  # readable right after the crash, before any recovery ran
            assert committed <= set(ds.episode_names)
            ds.verify()
            for ep in ds:
                with ep:
                    check_episode(ep)
            if pause_at in ("index", "index-writing"):  # renamed but not yet linked: reported, linked on the next append
                assert ds.unindexed
            if pause_at == "index-writing":  # killed with the temporary index half written
                assert path.with_name(f".{path.name}.tmp").exists()
    assert len(committed) >= sum(pause_at is not None for pause_at, _ in KILLS)  # aimed kills follow a commit

    episodes = path.with_name(path.name + ".episodes")
    leftover_partials = sorted(p.name for p in episodes.glob("*.partial"))
    assert leftover_partials, "the last kill was mid-episode, so a partial file must be left"
    with DatasetWriter(path) as writer:  # the next append recovers and works
        assert [p.name.split(".")[0] for p in writer.interrupted] == [n.split(".")[0] for n in leftover_partials]
        name = writer.write_episode(obs={"image": np.zeros((3, 16, 16, 3), np.uint8),
                                         "state": np.zeros((3, 3), np.float32)}, actions=np.zeros((3, 2)))
    assert not list(episodes.glob("*.partial"))
    interrupted = list((episodes / "interrupted").iterdir())
    assert len(interrupted) >= 3  # two aimed mid-episode kills plus the random ones that hit mid-episode
    with Dataset(path) as ds:
        assert committed | {name} <= set(ds.episode_names)
        assert len(ds.interrupted) == len(interrupted)
        ds.verify()
