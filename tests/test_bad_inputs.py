"""Hostile command lines: each gives exit 2, one `error:` line, and leaves every file already written untouched.

One small world of real files (a dataset, a reward model, frames, upstream files, a trained policy folder with
a damaged, a malicious and an outside checkpoint) is built once; every case runs the real CLI in-process on it
and compares the md5 of every file in the world before and after.
"""
import hashlib
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_policy_data import TASK, write_dataset

from diffusion_reward.cli import main


class _RunsCodeWhenUnpickled:
    """A checkpoint payload that creates a file when torch.load unpickles it without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from diffusion_reward.models import RewardModel
    from diffusion_reward.offline.train_policy import TrainPolicyConfig, train_policy

    root = tmp_path_factory.mktemp("world")
    w = SimpleNamespace(root=root, data=write_dataset(root / "expert.hdf5", episodes=2, steps=6),
                        model=root / "model.safetensors", frames=root / "frames.npy", marker=root / "code_ran")
    w.episodes = root / "expert.hdf5.episodes"
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "entropy", 9, 1, mean=-400.0, std=20.0)
    model.save(w.model)
    np.save(w.frames, np.zeros((3, 64, 64, 3), np.uint8))
    w.ckpt, w.config = root / "best.pth", root / "config.yaml"
    w.ckpt.write_bytes(b"an upstream checkpoint")
    w.config.write_text("model: {}\n")
    w.policy = train_policy(TrainPolicyConfig(data=str(w.data), out=str(root / "policy"), algo="bc", obs="state",
                                              steps=2, batch_size=4, checkpoint_every=2, show_progress=False))
    w.outside = root / "outside.pt"
    shutil.copy(w.policy / "model.pt", w.outside)
    checkpoints = w.policy / "checkpoints"
    (checkpoints / "link.pt").symlink_to(w.outside)
    (checkpoints / "empty.pt").write_bytes(b"")
    torch.save({"policy": _RunsCodeWhenUnpickled(w.marker)}, checkpoints / "evil.pt")
    w.existing_model, w.existing_npy, w.existing_json = (root / n for n in ("old.safetensors", "old.npy", "old.json"))
    for path in (w.existing_model, w.existing_npy, w.existing_json):
        path.write_bytes(b"an earlier output")
    w.existing_dir = root / "old_dir"
    w.existing_dir.mkdir()
    (w.existing_dir / "keep.txt").write_text("an earlier output")
    return w


def _md5s(root: Path) -> dict[str, str]:
    """md5 of every file under root (a symlink: of its target path), keyed by relative path."""
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            digests[str(path.relative_to(root))] = hashlib.md5(content).hexdigest()
    return digests


INTO = "would write into"
EXISTS = "already exists; pass --force"
CASES = {
    # stats
    "stats --out the expert data": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{data}"],
                                    f"{INTO} --data"),
    "stats --out inside its episodes": (["stats", "--model", "{model}", "--data", "{data}",
                                         "--out", "{episodes}/m.safetensors"], f"{INTO} --data"),
    "stats --force onto the data": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{data}",
                                     "--force"], f"{INTO} --data"),
    "stats --out existing": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{existing_model}"],
                             EXISTS),
    # train-reward
    "train-reward --out the data": (["train-reward", "--data", "{data}", "--out", "{data}"], f"{INTO} --data"),
    "train-reward --force onto the data": (["train-reward", "--data", "{data}", "--out", "{data}", "--force"],
                                           f"{INTO} --data"),
    "train-reward --out existing": (["train-reward", "--data", "{data}", "--out", "{existing_model}"], EXISTS),
    "train-reward --checkpoint-dir in the episodes": (
        ["train-reward", "--data", "{data}", "--out", "{root}/new.safetensors", "--checkpoint-dir", "{episodes}"],
        f"--checkpoint-dir {{episodes}} {INTO} --data"),
    "train-reward --force onto --codec-from": (["train-reward", "--data", "{data}", "--codec-from", "{model}",
                                                "--out", "{model}", "--force"], f"{INTO} --codec-from"),
    # score
    "score --out the frames": (["score", "--model", "{model}", "--frames", "{frames}", "--out", "{frames}"],
                               f"{INTO} --frames"),
    "score --force onto the frames": (["score", "--model", "{model}", "--frames", "{frames}", "--out", "{frames}",
                                       "--force"], f"{INTO} --frames"),
    "score --out inside the episodes": (["score", "--model", "{model}", "--data", "{data}",
                                         "--out", "{episodes}/r.npz"], f"{INTO} --data"),
    "score --out existing": (["score", "--model", "{model}", "--frames", "{frames}", "--out", "{existing_npy}"],
                             EXISTS),
    # import-upstream
    "import-upstream --force onto its checkpoint": (
        ["import-upstream", "--video-checkpoint", "{ckpt}", "--video-config", "{config}", "--out", "{ckpt}",
         "--force"], f"{INTO} --video-checkpoint"),
    "import-upstream --force onto its config": (
        ["import-upstream", "--video-checkpoint", "{ckpt}", "--video-config", "{config}", "--out", "{config}",
         "--force"], f"{INTO} --video-config"),
    "import-upstream --out existing": (
        ["import-upstream", "--video-checkpoint", "{ckpt}", "--video-config", "{config}",
         "--out", "{existing_model}"], EXISTS),
    # report
    "report --out the episodes folder": (["report", "--model", "{model}", "--task", TASK, "--data", "{data}",
                                          "--out", "{episodes}"], f"{INTO} --data"),
    "report --out the model": (["report", "--model", "{model}", "--task", TASK, "--out", "{model}", "--force"],
                               f"{INTO} --model"),
    "report --out existing folder": (["report", "--model", "{model}", "--task", TASK, "--out", "{existing_dir}"],
                                     EXISTS),
    # relabel
    "relabel --out inside the source's episodes": (["relabel", "--model", "{model}", "--input", "{data}",
                                                    "--out", "{episodes}/x.h5"], f"{INTO} --input"),
    "relabel --out the source": (["relabel", "--model", "{model}", "--input", "{data}", "--out", "{data}"],
                                 f"{INTO} --input"),
    "relabel --out the model": (["relabel", "--model", "{model}", "--input", "{data}", "--out", "{model}"],
                                f"{INTO} --model"),
    "relabel --out existing": (["relabel", "--model", "{model}", "--input", "{data}", "--out", "{existing_model}"],
                               "already exists; pass --resume"),
    # train-policy
    "train-policy --out inside the episodes": (["train-policy", "--data", "{data}", "--out", "{episodes}/p"],
                                               f"{INTO} --data"),
    "train-policy --out the data": (["train-policy", "--data", "{data}", "--out", "{data}"], f"{INTO} --data"),
    # export
    "export --out the policy folder": (["export", "--policy", "{policy}", "--out", "{policy}"],
                                       f"{INTO} --policy"),
    "export --force onto the policy folder": (["export", "--policy", "{policy}", "--out", "{policy}", "--force"],
                                              f"{INTO} --policy"),
    "export --out inside the policy folder": (["export", "--policy", "{policy}", "--out", "{policy}/export",
                                               "--force"], f"{INTO} --policy"),
    "export --out existing folder": (["export", "--policy", "{policy}", "--out", "{existing_dir}"], EXISTS),
    "export --force onto an existing file": (["export", "--policy", "{policy}", "--out", "{existing_json}", "--force"],
                                             "is a file; export writes a folder"),
    "export --checkpoint ../outside": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                        "--checkpoint", "../outside.pt"], "outside the policy folder"),
    "export --checkpoint /absolute/outside": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                               "--checkpoint", "{outside}"], "outside the policy folder"),
    "export --checkpoint symlink to outside": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                                "--checkpoint", "checkpoints/link.pt"], "outside the policy folder"),
    "export --checkpoint empty file": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                        "--checkpoint", "checkpoints/empty.pt"], "not a readable weights-only"),
    "export --checkpoint malicious pickle": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                              "--checkpoint", "checkpoints/evil.pt"], "not a readable weights-only"),
    # evaluate
    "evaluate --json into the policy": (["evaluate", "--policy", "{policy}", "--json", "{policy}/policy.json"],
                                        f"--json {{policy}}/policy.json {INTO} --policy"),
    "evaluate --video into the data's episodes": (["evaluate", "--policy", "{policy}", "--video",
                                                   "{episodes}/x.mp4", "--data", "{data}", "--ope"],
                                                  f"{INTO} --data"),
    "evaluate --json existing": (["evaluate", "--policy", "{policy}", "--json", "{existing_json}"], EXISTS),
    "evaluate --ope malicious checkpoint": (["evaluate", "--policy", "{policy}", "--data", "{data}", "--ope",
                                             "--checkpoint", "checkpoints/evil.pt"], "not a readable weights-only"),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_command_line_fails_in_one_line_and_modifies_nothing(case, world, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # what once let a malicious checkpoint run code
    argv, expected = CASES[case]
    paths = {k: str(v) for k, v in vars(world).items()}
    before = _md5s(world.root)
    capsys.readouterr()
    code = main([a.format(**paths) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected.format(**paths) in lines[0], err
    assert "weights_only" not in err  # never torch's advice to unpickle anyway
    assert _md5s(world.root) == before  # nothing changed, nothing added (no malicious code ran)
    assert not world.marker.exists()


def test_force_replaces_an_earlier_output_but_not_an_input(world, tmp_path, capsys):
    out = tmp_path / "rewards.npy"
    out.write_bytes(b"an earlier output")
    argv = ["score", "--model", str(world.model), "--frames", str(world.frames), "--raw", "--out", str(out)]
    assert main(argv) == 2 and out.read_bytes() == b"an earlier output"
    assert main([*argv, "--force"]) == 0, capsys.readouterr().err
    assert np.load(out).shape == (3,)
