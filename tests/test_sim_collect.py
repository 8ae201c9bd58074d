"""`diffusion-reward collect`: real MuJoCo episodes into a real dataset, appending, refusals, resuming."""
from pathlib import Path

import numpy as np
import pytest

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset


def _collect(out, *extra):
    return main(["collect", "--task", "button-press-v3", "--episodes", "2", "--max-steps", "5",
                 "--out", str(out), *extra])


def test_collect_round_trip_and_append(tmp_path, capsys):
    out = tmp_path / "runs" / "bp.hdf5"
    assert _collect(out, "--epsilon", "0", "--seed", "0") == 0
    assert "collected 2 episodes of button-press-v3" in capsys.readouterr().out
    assert _collect(out, "--epsilon", "1", "--seed", "1") == 0  # appends
    with Dataset(out) as ds:
        assert len(ds) == 4
        assert ds.env_args["task"] == "button-press-v3" and ds.env_args["action_repeat"] == 2
        episodes = list(ds)
        for ep in episodes:
            assert ep.obs["image"].shape == (5, 64, 64, 3) and ep.obs["image"].dtype == np.uint8
            assert ep.obs["state"].shape == (5, 39)
            assert ep.actions.shape == (5, 4) and np.abs(ep.actions).max() <= 1
            assert list(ep.dones) == [0, 0, 0, 0, 1]
            assert np.all(np.diff(ep.timestamps) > 0) and ep.timestamps[0] == 0
            assert ep.success == bool(np.any(ep.rewards))
        seeds = [ep.attrs["reset_seed"] for ep in episodes]
        assert len(set(seeds)) == 4  # another --seed gives new layouts
        assert [ep.attrs["epsilon"] for ep in episodes] == [0.0, 0.0, 1.0, 1.0]
        assert episodes[0].attrs["policy"].endswith("SawyerButtonPressV3Policy")
        assert episodes[2].attrs["policy"] == "random"
        first_frames = np.asarray(episodes[0].obs["image"])
    # the same --seed reproduces the same episode, frame for frame
    again = tmp_path / "again.hdf5"
    assert _collect(again, "--epsilon", "0", "--seed", "0") == 0
    with Dataset(again) as ds:
        np.testing.assert_array_equal(np.asarray(next(iter(ds)).obs["image"]), first_frames)


def test_unknown_task_is_one_line_error(tmp_path, capsys):
    out = tmp_path / "x.hdf5"
    assert main(["collect", "--task", "buton-press-v3", "--episodes", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown task") and "button-press-v3" in err[0]
    assert not out.exists()


def test_unwritable_or_foreign_output_is_refused_and_untouched(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert _collect(blocker / "bp.hdf5") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --out {blocker / 'bp.hdf5'} cannot be written: {blocker} is a file"), err
    foreign = tmp_path / "foreign.hdf5"
    foreign.write_bytes(b"precious bytes")
    assert _collect(foreign) == 2
    assert "error:" in capsys.readouterr().err
    assert foreign.read_bytes() == b"precious bytes"


def test_adroit_expert_episodes_end_k_steps_after_success(tmp_path, capsys):
    out = tmp_path / "door.hdf5"
    assert main(["collect", "--task", "adroit-door", "--episodes", "1", "--epsilon", "0", "--seed", "0",
                 "--steps-after-success", "2", "--out", str(out)]) == 0
    assert "success 1/1" in capsys.readouterr().out
    with Dataset(out) as ds:
        assert ds.env_args["episode_end"] == "success+2"
        ep = next(iter(ds))
        assert ep.success and ep.attrs["policy"] == "dapg.door"
        first = int(np.flatnonzero(ep.rewards)[0])
        assert ep.num_samples == first + 1 + 2 < 100  # ends 2 agent steps after the first success


def test_sigkill_during_collect_leaves_an_incomplete_dataset_that_resume_finishes(tmp_path, capsys):
    """A real collect process killed once its first episode is committed: the committed episodes are intact,
    the dataset is marked incomplete (info, info --verify and a plain append say so and name --resume), and the
    resumed run adds exactly the episodes the killed run had left, leaving the kept ones byte for byte."""
    import hashlib
    import signal
    import subprocess
    import sys
    import time

    from diffusion_reward.data.format import episodes_dir
    from diffusion_reward.errors import UserError
    from diffusion_reward.sim import episode_seed

    def md5(name: str) -> str:
        return hashlib.md5((episodes_dir(out) / f"{name}.h5").read_bytes()).hexdigest()

    out = tmp_path / "bp.hdf5"
    options = ["collect", "--task", "button-press-v3", "--episodes", "12", "--max-steps", "10", "--out", str(out)]
    child = subprocess.Popen([sys.executable, "-m", "diffusion_reward", *options],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # generous: only a hung child reaches it

    def committed() -> int:  # episodes the index links (a reader never disturbs the writer)
        try:
            with Dataset(out) as ds:
                return len(ds)
        except UserError:  # the index does not exist yet (or is not yet a whole HDF5 file)
            return 0

    while committed() == 0:
        assert child.poll() is None and time.monotonic() < deadline, "collect ended before its first commit"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    with Dataset(out) as ds:
        assert 1 <= len(ds) < 12 and ds.incomplete["job"] == "collect"
        kept = {name: md5(name) for name in ds.episode_names}
    assert main(["info", str(out)]) == 0 and "INCOMPLETE" in capsys.readouterr().out
    before = out.read_bytes()
    for argv in (["info", str(out), "--verify"], options):  # a plain append would hide the unfinished run
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is incomplete" in err and "collect" in err and "--resume" in err, err
    assert out.read_bytes() == before
    assert main([*options, "--resume"]) == 0
    assert f"collected {12 - len(kept)} episodes" in capsys.readouterr().out
    with Dataset(out) as ds:
        assert len(ds) == 12 and ds.incomplete is None
        ds.verify()
        assert [ep.attrs["reset_seed"] for ep in ds] == [episode_seed(0, i) for i in range(12)]
        assert {name: md5(name) for name in kept} == kept


def test_a_demo_stopped_in_a_dataset_stage_finishes_that_stage_when_run_again(tmp_path, monkeypatch):
    """The stage's dataset exists but the stage did not finish: the next demo runs it again, with --resume, instead
    of taking the half-written dataset as done."""
    import argparse

    from diffusion_reward import cli
    from diffusion_reward.cli import demo
    from diffusion_reward.errors import UserError

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "demo")])
    calls = []

    def stopped_in_the_first_stage(argv):  # each stage writes (part of) its output; the first one then fails
        calls.append(argv)
        if "--out" in argv:
            Path(argv[argv.index("--out") + 1]).touch()
        return 2 if len(calls) == 1 else 0

    monkeypatch.setattr(cli, "main", stopped_in_the_first_stage)
    with pytest.raises(UserError, match="demo stage 'collect expert videos' failed"):
        demo.run(args)
    assert demo.run(args) == 0
    assert calls[1] == calls[0] and calls[0][:2] == ["collect", "--task"] and calls[0][-1] == "--resume"
    collects_and_relabels = [argv for argv in calls[1:] if argv[0] in ("collect", "relabel")]
    assert len(collects_and_relabels) == 4 and all(argv[-1] == "--resume" for argv in collects_and_relabels)
    before = len(calls)
    assert demo.run(args) == 0 and not [argv for argv in calls[before:] if argv[0] in ("collect", "relabel")]
