"""A full disk (a real 2 MiB tmpfs) while collecting and relabelling: one `error:` line, exit 2, and every
episode committed before it intact. (Before: an HDF5 traceback, then a segfault at exit, code 139.)"""
import subprocess
import sys

import numpy as np
import pytest
from test_relabel_cli import model_path, write_source  # noqa: F401 (fixture)

from diffusion_reward.data import Dataset


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip() or 'mount failed'}); "
                    "the full-disk behaviour is untested on this machine")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def run(*argv):
    """The real CLI in a child process: a crash at interpreter exit (the old failure) shows in the exit code."""
    done = subprocess.run([sys.executable, "-m", "diffusion_reward", *map(str, argv)], capture_output=True,
                          text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "MUJOCO_GL": "egl"})
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("error:")], done.stderr


def test_collect_onto_a_full_disk_stops_in_one_line_and_keeps_committed_episodes(small_disk):
    out = small_disk / "d.hdf5"
    code, errors, err = run("collect", "--task", "reach-v3", "--episodes", "30", "--out", out)
    assert code == 2 and len(errors) == 1 and "not enough disk space" in errors[0], err
    assert "Traceback" not in err
    with Dataset(out) as ds:
        assert 1 <= len(ds) < 30 and ds.incomplete["job"] == "collect"
        for ep in ds:
            with ep:
                assert len(ep.obs["image"][()]) == len(ep.actions[()]) == ep.num_samples > 0


def test_relabel_onto_a_full_disk_leaves_an_incomplete_output_with_intact_episodes(small_disk, tmp_path,
                                                                                    model_path):  # noqa: F811
    src = write_source(tmp_path / "src.hdf5", episodes=12, steps=30)
    out = small_disk / "out.hdf5"
    code, errors, err = run("relabel", "--model", model_path, "--input", src, "--out", out)
    assert code == 2 and len(errors) == 1 and "not enough disk space" in errors[0], err
    assert "Traceback" not in err
    with Dataset(out) as ds:
        assert 1 <= len(ds) < 12 and ds.incomplete["job"] == "relabel"
        for ep in ds:
            with ep:
                assert np.isfinite(ep.reward_labels["entropy"]["datasets"]["raw"][()]).all()
